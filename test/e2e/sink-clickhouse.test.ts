// The ClickHouse sink against Debian's clickhouse-server (18.16 in bookworm), started here
// with its own config dir (HTTP and native ports on loopback, data in a temp dir), not the
// system service. The sink creates its table (CREATE TABLE IF NOT EXISTS, the schema in
// src/export/sinks/clickhouse.ts) and inserts JSONEachRow over HTTP; events from real
// processes through the real agent are read back with SELECT. The server is stopped mid-run
// and started again on the same data: nothing written meanwhile is lost within the retry
// budget, the Sigkill policy keeps killing, and count() equals the agent's sent counter; a
// second sink whose budget is shorter than the outage drops exactly what it could not send.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { kernelTest } from "../lib/host.ts";
import { ClickHouse, ensureServers, freePort } from "../lib/servers.ts";
import { droppedTotal, execLinesOf, finalStats, readGuarded, waitSinkUp, runMarkers, startAgent, waitFor } from "../lib/sink-harness.ts";
import { sinkSuite } from "../lib/sink-suite.ts";
import { LineArena } from "../lib/line-arena.ts";
import { ClickHouseSink } from "../../src/export/sinks/clickhouse.ts";

const { dir, bpfDir, secret, allowed, servers, agents } = sinkSuite<ClickHouse>("ch");

interface Row {
  type: string;
  binary: string;
  arguments: string;
  pid: number;
  node_name: string;
  exec_id: string;
  time: string;
  time_ns: string;
  event: string;
}

async function rows(ch: ClickHouse, table: string, tag: string): Promise<Row[]> {
  const t = await ch.query(`SELECT type, binary, arguments, pid, node_name, exec_id, time, time_ns, event FROM ${table} WHERE type = 'process_exec' AND arguments LIKE '${tag}-%' FORMAT JSONEachRow`);
  return t.split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Row);
}

describe("clickhouse sink against clickhouse-server", () => {
  test(
    "byte lines as the pipeline hands them (arena views), non-ASCII included: every row's event is the exact line, its columns parsed from it",
    async () => {
      ensureServers(["clickhouse-server"]);
      const ch = new ClickHouse(join(dir, "ch-bytes"), await freePort(), await freePort());
      servers.push(ch);
      ch.start();
      await ch.ready();
      const tag = `ward-ch-bytes-${process.pid}`;
      const texts = Array.from({ length: 30 }, (_, i) =>
        JSON.stringify({ process_exec: { process: { pid: 2000 + i, exec_id: `x${i}`, binary: "/usr/bin/echo", arguments: `${tag}-${i} grüße €5 😀` } }, node_name: "bytes-node", time: `2026-12-03T15:53:0${i % 10}.123456789Z` }),
      );
      const arena = new LineArena();
      const s = new ClickHouseSink({ url: ch.url, table: "bytes_events", lingerMs: 1, maxBatch: 8 });
      texts.forEach((t, i) => s.write(i % 4 === 3 ? t : arena.add(t)));
      await s.close();
      expect(s.stats()).toMatchObject({ written: 30, sent: 30 });
      const got = await rows(ch, "bytes_events", tag);
      const byPid = new Map(got.map((r) => [r.pid, r]));
      expect(got).toHaveLength(texts.length);
      texts.forEach((t, i) => {
        const r = byPid.get(2000 + i)!;
        expect(r.event).toBe(t);
        expect(r.arguments).toBe(`${tag}-${i} grüße €5 😀`);
        expect(r.exec_id).toBe(`x${i}`);
        expect(r.node_name).toBe("bytes-node");
      });
      await ch.stop();
    },
    60_000,
  );

  kernelTest(
    "creates its table, inserts markers complete; stopped and restarted mid-run, nothing is lost and count() = sent; enforcement goes on",
    async () => {
      ensureServers(["clickhouse-server"]);
      // The sink logs in as a user with a password (basic auth from the URL).
      const ch = new ClickHouse(join(dir, "ch"), await freePort(), await freePort(), { name: "ward", password: "s3cret" });
      servers.push(ch);
      ch.start();
      await ch.ready();
      // Without the user's credentials the server refuses: the rows below came in through basic auth.
      expect((await fetch(`${ch.url}/?query=SELECT%201`)).ok).toBe(false);
      const a = await startAgent({ dir, bpfDir, guard: { file: secret, allowed }, sinks: [
          `clickhouse=${ch.url.replace("http://", "http://ward:s3cret@")}?table=ward_events&name=ch&retry_budget=45s&max_backoff=1s`,
          // A second sink with a budget shorter than the outage: it must drop (and count) the outage's events.
          `clickhouse=${ch.url.replace("http://", "http://ward:s3cret@")}?table=ward_short&name=ch_short&retry_budget=1s&backoff=50ms&max_backoff=200ms`,
        ],
      });
      agents.push(a);
      const tag = `ward-ch-${process.pid}`;
      const before = runMarkers(tag, 0, 10);
      const exported = await waitFor("markers in the export file", () => {
        const m = execLinesOf(a.exportLines(), before);
        return m.size === before.length ? m : undefined;
      }, 15_000);
      const got = await waitFor("markers in ClickHouse", async () => {
        const r = await rows(ch, "ward_events", tag).catch(() => []);
        return r.length >= before.length ? r : undefined;
      }, 20_000);
      for (const r of got) {
        expect(r.event).toBe(exported.get(r.arguments)!);
        const ev = JSON.parse(r.event) as { node_name: string; time: string; process_exec: { process: { pid: number; exec_id: string; binary: string } } };
        expect(r.binary).toBe(ev.process_exec.process.binary);
        expect(r.pid).toBe(ev.process_exec.process.pid);
        expect(r.exec_id).toBe(ev.process_exec.process.exec_id);
        expect(r.node_name).toBe(ev.node_name);
        // DateTime is rendered in the server's timezone (UTC in this config); time_ns is exact.
        expect(`${r.time.replace(" ", "T")}`).toBe(ev.time.slice(0, 19));
        expect(r.time_ns.slice(0, 10)).toBe(String(Math.floor(Date.parse(ev.time) / 1000)));
      }
      // The documented schema, as the server holds it.
      const cols = (await ch.query("SELECT name, type FROM system.columns WHERE database = 'default' AND table = 'ward_events' FORMAT TSV")).trim().split("\n");
      expect(cols).toContain("time\tDateTime");
      expect(cols).toContain("time_ns\tUInt64");
      expect(cols).toContain("event\tString");

      await ch.stop();
      const during = runMarkers(tag, 100, 10);
      // The other sinks do not wait for the one that is down: the export file has the outage's events.
      await waitFor("outage markers in the export file", () => (execLinesOf(a.exportLines(), during).size === during.length ? true : undefined), 10_000);
      expect(readGuarded(secret)).toBe("SIGKILL");
      await waitSinkUp(a, "ch", 0);
      await waitFor("ch_short gives up on the outage's events", async () => ((await a.metric("ward_sink_events_dropped_total", { sink: "ch_short", reason: "retry_budget" })) >= during.length ? true : undefined), 20_000);
      ch.start();
      await ch.ready();
      const after = runMarkers(tag, 200, 10);
      const all = [...before, ...during, ...after];
      await waitFor("every marker in ClickHouse after the restart", async () => ((await rows(ch, "ward_events", tag).catch(() => [])).length >= all.length ? true : undefined), 30_000);
      const args = new Set((await rows(ch, "ward_events", tag)).map((r) => r.arguments));
      for (const m of all) expect(args.has(m)).toBe(true);
      expect(readGuarded(secret)).toBe("SIGKILL");
      // ch_short: what came after the restart arrives; what it dropped never does.
      await waitFor("after-restart markers in ward_short", async () => ((await rows(ch, "ward_short", tag).catch(() => [])).filter((r) => after.includes(r.arguments)).length >= after.length ? true : undefined), 30_000);
      const shortArgs = new Set((await rows(ch, "ward_short", tag)).map((r) => r.arguments));
      for (const m of during) expect(shortArgs.has(m)).toBe(false);

      expect(await a.stop()).toBe(0);
      const st = finalStats(a.stderr(), "ch");
      expect(droppedTotal(st)).toBe(0);
      expect(st.sent).toBe(st.written);
      expect(st.retried).toBeGreaterThan(0);
      // Every acknowledged event is in the table. Inserts are at-least-once (a batch whose
      // answer was lost to the kill is inserted again), so distinct events are what equals sent.
      const [count, distinct] = (await ch.query("SELECT count(), uniqExact(event) FROM ward_events FORMAT TSV")).trim().split("\t").map(Number);
      expect(distinct).toBe(st.sent);
      expect(count).toBeGreaterThanOrEqual(st.sent);
      const sh = finalStats(a.stderr(), "ch_short");
      expect(sh.dropped.retry_budget ?? 0).toBeGreaterThanOrEqual(during.length);
      expect(sh.sent + droppedTotal(sh)).toBe(sh.written);
      const [, shortDistinct] = (await ch.query("SELECT count(), uniqExact(event) FROM ward_short FORMAT TSV")).trim().split("\t").map(Number);
      expect(shortDistinct).toBe(sh.sent);
      await ch.stop();
    },
    90_000,
  );
});
