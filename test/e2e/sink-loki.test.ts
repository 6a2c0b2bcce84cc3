// The Loki sink. Grafana Loki is not in Debian (Debian's `loki` package is unrelated genetics
// software), so what is tested here is the sink against test/lib/servers.ts LokiServer: a
// small HTTP server written from Loki's HTTP API documentation that stores pushes (rejecting
// malformed bodies and entries out of order per stream, as Loki does) and answers
// /loki/api/v1/query_range, through which the events are read back. Events come from real
// processes through the real agent (`ward agent --sink loki=http://...`). HTTP acknowledges
// every push, so the accounting is exact: what the server stored is what the agent counted
// as sent, and sent + dropped = written.
import { describe, expect, test } from "bun:test";
import { kernelTest } from "../lib/host.ts";
import { freePort, LokiServer } from "../lib/servers.ts";
import { droppedTotal, execLinesOf, finalStats, readGuarded, waitSinkUp, runMarkers, startAgent, waitFor } from "../lib/sink-harness.ts";
import { sinkSuite } from "../lib/sink-suite.ts";
import { LineArena } from "../lib/line-arena.ts";
import { LokiSink } from "../../src/export/sinks/loki.ts";

const { dir, bpfDir, secret, allowed, servers, agents } = sinkSuite<LokiServer>("loki");

async function loki(): Promise<LokiServer> {
  const s = new LokiServer(await freePort());
  servers.push(s);
  s.start();
  return s;
}

/** Lines read back through query_range for a stream selector. */
async function queryLines(s: LokiServer, selector: string): Promise<Array<{ stream: Record<string, string>; ts: string; line: string }>> {
  const r = await fetch(`${s.url}/loki/api/v1/query_range?query=${encodeURIComponent(selector)}&limit=100000&direction=forward`);
  const j = (await r.json()) as { status: string; data: { result: Array<{ stream: Record<string, string>; values: [string, string][] }> } };
  expect(j.status).toBe("success");
  return j.data.result.flatMap((x) => x.values.map(([ts, line]) => ({ stream: x.stream, ts, line })));
}

describe("loki sink against a Loki API server", () => {
  test("byte lines as the pipeline hands them (arena views), non-ASCII included: query_range gives back the exact lines with their labels", async () => {
    const srv = await loki();
    const tag = `ward-loki-bytes-${process.pid}`;
    const texts = Array.from({ length: 25 }, (_, i) =>
      JSON.stringify({ process_kprobe: { process: { pid: 3000 + i, arguments: `${tag} ${i} grüße 😀`, pod: { namespace: "nš" } }, policy_name: "pölicy" }, node_name: "bytes-node", time: `2026-12-03T15:53:00.${String(i).padStart(9, "0")}Z` }),
    );
    const arena = new LineArena();
    const s = new LokiSink({ url: srv.url, lingerMs: 1, maxBatch: 10 });
    texts.forEach((t, i) => s.write(i % 3 === 2 ? t : arena.add(t)));
    await s.close();
    expect(s.stats()).toMatchObject({ written: 25, sent: 25 });
    const got = await queryLines(srv, `{node="bytes-node",type="process_kprobe"}`);
    expect(got.map((r) => r.line)).toEqual(texts);
    expect(got[0]!.stream).toEqual({ node: "bytes-node", type: "process_kprobe", policy: "pölicy", namespace: "nš" });
    expect(got.map((r) => r.ts)).toEqual(texts.map((_, i) => String(1796313180000000000n + BigInt(i))));
  });

  kernelTest(
    "markers arrive complete with node/type/policy labels; an outage within the budget loses nothing, past it the drops are exact; enforcement goes on",
    async () => {
      const keep = await loki();
      const short = await loki();
      const a = await startAgent({
        dir,
        bpfDir,
        guard: { file: secret, allowed },
        sinks: [`loki=${keep.url}?name=l_keep&retry_budget=30s&max_backoff=500ms`, `loki=${short.url}/loki/api/v1/push?name=l_short&retry_budget=1s&backoff=50ms&max_backoff=200ms`],
      });
      agents.push(a);
      const tag = `ward-loki-${process.pid}`;
      const before = runMarkers(tag, 0, 10);
      const exported = await waitFor("markers in the export file", () => {
        const m = execLinesOf(a.exportLines(), before);
        return m.size === before.length ? m : undefined;
      }, 15_000);
      const node = (JSON.parse(exported.get(before[0]!)!) as { node_name: string }).node_name;
      const got = await waitFor("markers through query_range", async () => {
        const rows = await queryLines(keep, `{node="${node}",type="process_exec"}`);
        const m = execLinesOf(rows.map((r) => r.line), before);
        return m.size === before.length ? rows : undefined;
      }, 15_000);
      for (const mk of before) expect(execLinesOf(got.map((r) => r.line), [mk]).get(mk)).toBe(exported.get(mk)!);
      // The entry's timestamp is the event's own time (ns), unless it had to move forward to keep the stream ordered.
      const row = got.find((r) => r.line === exported.get(before[0]!))!;
      expect(row.stream).toEqual({ node, type: "process_exec" });
      const t = (JSON.parse(row.line) as { time: string }).time;
      expect(BigInt(row.ts) / 1_000_000n).toBeGreaterThanOrEqual(BigInt(Date.parse(t)));
      // Policy events carry the policy label: the guard's kill.
      expect(readGuarded(secret)).toBe("SIGKILL");
      const kp = await waitFor("process_kprobe with policy label", async () => {
        const rows = await queryLines(keep, `{type="process_kprobe",policy="sink-guard"}`);
        return rows.length > 0 ? rows : undefined;
      }, 15_000);
      expect(kp[0]!.line).toContain('"policy_name":"sink-guard"');

      await keep.stop();
      await short.stop();
      const during = runMarkers(tag, 100, 10);
      // The other sinks do not wait for the one that is down: the export file has the outage's events.
      await waitFor("outage markers in the export file", () => (execLinesOf(a.exportLines(), during).size === during.length ? true : undefined), 10_000);
      expect(readGuarded(secret)).toBe("SIGKILL");
      await waitFor("l_short gives up on the outage's events", async () => ((await a.metric("ward_sink_events_dropped_total", { sink: "l_short", reason: "retry_budget" })) >= during.length ? true : undefined), 15_000);
      await waitSinkUp(a, "l_keep", 0);
      // /v1/status and `ward status` carry the same per-sink counters as /metrics: the sink
      // that gave up is down, with its drops by reason and its last error.
      const st = (await a.status()).sink_stats ?? [];
      const ls = st.find((x) => x.name === "l_short")!;
      const lk = st.find((x) => x.name === "l_keep")!;
      expect(ls).toMatchObject({ kind: "loki", up: false });
      expect(lk).toMatchObject({ kind: "loki", up: false });
      expect(ls.dropped.retry_budget).toBeGreaterThanOrEqual(during.length);
      expect(ls.lastError).toMatch(/./);
      expect(ls.sent + Object.values(ls.dropped).reduce((x, y) => x + y, 0) + ls.queued).toBe(ls.written);
      expect(await a.metric("ward_sink_events_dropped_total", { sink: "l_short", reason: "retry_budget" })).toBeGreaterThanOrEqual(ls.dropped.retry_budget);
      const cli = a.cli(["status"]);
      expect(cli.code).toBe(0);
      const line = cli.stdout.split("\n").find((l) => l.includes("sink l_short"));
      expect(line).toMatch(/^  sink l_short \(loki\) down: written \d+, sent \d+, retried \d+, dropped \d+ \(.*retry_budget \d+.*\), queued \d+; last error: .+/);
      expect(cli.stdout).toContain("sink l_keep (loki) down");
      const json = JSON.parse(a.cli(["status", "-o", "json"]).stdout) as { sink_stats: Array<{ name: string; up: boolean }> };
      expect(json.sink_stats.find((x) => x.name === "l_short")?.up).toBe(false);
      keep.start();
      short.start();
      const after = runMarkers(tag, 200, 10);
      const all = [...before, ...during, ...after];
      await waitFor("every marker in l_keep's Loki", async () => (execLinesOf((await queryLines(keep, `{type="process_exec"}`)).map((r) => r.line), all).size === all.length ? true : undefined), 20_000);
      await waitFor("after-restart markers in l_short's Loki", async () => (execLinesOf((await queryLines(short, `{type="process_exec"}`)).map((r) => r.line), after).size === after.length ? true : undefined), 20_000);
      expect(execLinesOf((await queryLines(short, `{type="process_exec"}`)).map((r) => r.line), during).size).toBe(0);

      expect(await a.stop()).toBe(0);
      const k = finalStats(a.stderr(), "l_keep");
      const s = finalStats(a.stderr(), "l_short");
      // Exact: what each server stored is what the agent counted as sent; the rest was dropped and counted.
      expect(keep.entries).toBe(k.sent);
      expect(short.entries).toBe(s.sent);
      expect(k.sent + droppedTotal(k)).toBe(k.written);
      expect(s.sent + droppedTotal(s)).toBe(s.written);
      expect(droppedTotal(k)).toBe(0);
      expect(k.retried).toBeGreaterThan(0);
      expect(s.dropped.retry_budget ?? 0).toBeGreaterThanOrEqual(during.length);
      expect(s.dropped.rejected ?? 0).toBe(0); // no push was refused: every stream stayed in order
      void lk;
    },
    60_000,
  );
});
