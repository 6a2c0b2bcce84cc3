// The syslog sink against Debian's rsyslog, started here with its own config (TCP with
// octet-counted framing, UDP, and a unix stream socket through imptcp) on a loopback port,
// writing what it receives to files that are read back. Events come from real processes
// through the real agent (`ward agent --sink syslog://...`). With rsyslog stopped mid-run
// and started again, the events produced meanwhile arrive (within the retry budget) while
// the Sigkill policy keeps killing; past the budget, the drop counter counts what was lost.
import { describe, expect, test } from "bun:test";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kernelTest } from "../lib/host.ts";
import { ensureServers, freePort, Rsyslog, RSYSLOGD } from "../lib/servers.ts";
import { ServerProcess, execLinesOf, readGuarded, waitSinkUp, readIfExists, runMarkers, sampleOf, startAgent, waitFor } from "../lib/sink-harness.ts";
import { sinkSuite } from "../lib/sink-suite.ts";
import { LineArena } from "../lib/line-arena.ts";
import { SyslogSink } from "../../src/export/sinks/syslog.ts";

const { dir, bpfDir, secret, allowed, servers, agents } = sinkSuite<ServerProcess>("syslog");

/** Received MSG parts (the event JSON lines) of a file rsyslog wrote, with their header fields. */
function received(file: string): Array<{ pri: string; msgid: string; app: string; host: string; procid: string; time: string; msg: string }> {
  return readIfExists(file)
    .split("\n")
    .filter((l) => l !== "")
    .map((l) => {
      const [pri, msgid, app, host, procid, time, ...rest] = l.split(" ");
      return { pri: pri!, msgid: msgid!, app: app!, host: host!, procid: procid!, time: time!, msg: rest.join(" ") };
    });
}

async function rsyslog(name: string): Promise<Rsyslog> {
  ensureServers(["rsyslog"]);
  const s = new Rsyslog(join(dir, name), await freePort());
  servers.push(s);
  s.start();
  await s.ready();
  return s;
}

describe("syslog sink against rsyslog", () => {
  test(
    "byte lines as the pipeline hands them (arena views), non-ASCII included: TCP, UDP and unix deliver each MSG byte-exact, framed by its octet count",
    async () => {
      const rs = await rsyslog("bytes");
      const tag = `ward-syslog-bytes-${process.pid}`;
      // ü, € and 😀 are 2, 3 and 4 bytes: a LEN counted in characters would cut the frame short
      // and rsyslog would read the rest as the start of a garbled next frame.
      const texts = Array.from({ length: 40 }, (_, i) =>
        JSON.stringify({ process_exec: { process: { pid: 1000 + i, binary: "/usr/bin/echo", arguments: `${tag} ${i} grüße €5 😀` } }, node_name: "bytes-node", time: `2026-12-03T15:53:00.${String(i).padStart(6, "0")}123Z` }),
      );
      const arena = new LineArena();
      const lines = texts.map((t, i) => (i % 5 === 4 ? t : arena.add(t)));
      for (const proto of ["tcp", "udp", "unix"] as const) {
        const s = new SyslogSink({ proto, host: "127.0.0.1", port: rs.port, path: rs.socket, hostname: "bytes-node", lingerMs: 1, maxBatch: 16 });
        for (const l of lines) s.write(l);
        await s.close();
        expect(s.stats()).toMatchObject({ written: 40, sent: 40 });
        const file = proto === "tcp" ? rs.tcpFile : proto === "udp" ? rs.udpFile : rs.unixFile;
        const got = await waitFor(`40 messages via ${proto}`, () => {
          const r = received(file).filter((m) => m.msg.includes(tag));
          return r.length === texts.length ? r : undefined;
        }, 15_000);
        if (proto === "udp") got.sort((a, b) => texts.indexOf(a.msg) - texts.indexOf(b.msg));
        expect(got.map((r) => r.msg)).toEqual(texts);
        for (const r of got) expect(r.msgid).toBe("process_exec");
        // Nothing else in the file: no frame was split into a stray message.
        expect(received(file).length).toBe(texts.length);
      }
      await rs.stop();
    },
    60_000,
  );

  kernelTest(
    "the README's rsyslog configuration and sink command, as written (port and file moved into the test's own), deliver the events",
    async () => {
      ensureServers(["rsyslog"]);
      const readme = readFileSync(join(import.meta.dir, "..", "..", "README.md"), "utf8");
      const block = /```\n(ward agent --sink 'syslog:[^\n]*)\n# \/etc\/rsyslog\.d\/ward\.conf\n([\s\S]*?)```/.exec(readme)!;
      const spec = /--sink '([^']+)'/.exec(block[1]!)![1]!;
      const port = await freePort();
      const home = join(dir, "readme");
      mkdirSync(home, { recursive: true });
      const out = join(home, "ward-events.log");
      const conf = join(home, "ward.conf");
      // Only the port and the output file change; everything else is the README's text.
      writeFileSync(conf, block[2]!.replace('port="514"', `port="${port}"`).replace("/var/log/ward-events.log", out));
      const rs = new ServerProcess("rsyslogd (README config)", [RSYSLOGD, "-n", "-f", conf, "-i", join(home, "pid")]);
      servers.push(rs);
      rs.start();
      await waitFor("rsyslog listening", async () => (await Bun.connect({ hostname: "127.0.0.1", port, socket: { data() {} } }).then((c) => (c.end(), true), () => undefined)), 15_000, () => rs.dead());
      const a = await startAgent({ dir, bpfDir, sinks: [spec.replace(":514", `:${port}`)] });
      agents.push(a);
      const markers = runMarkers(`ward-syslog-readme-${process.pid}`, 0, 5);
      const exported = await waitFor("markers in the export file", () => {
        const m = execLinesOf(a.exportLines(), markers);
        return m.size === markers.length ? m : undefined;
      }, 15_000);
      // The template writes the MSG alone: each line of the file is an event's JSON line.
      const got = await waitFor("markers in rsyslog's file", () => {
        const m = execLinesOf(readIfExists(out).split("\n"), markers);
        return m.size === markers.length ? m : undefined;
      }, 15_000);
      for (const mk of markers) expect(got.get(mk)).toBe(exported.get(mk)!);
      expect(await a.stop()).toBe(0);
      await rs.stop();
    },
    60_000,
  );

  kernelTest(
    "TCP, UDP and a unix socket: every marker's process_exec arrives complete, as RFC 5424 with the event type as MSGID",
    async () => {
      const rs = await rsyslog("all");
      const a = await startAgent({
        dir,
        bpfDir,
        sinks: [`syslog://127.0.0.1:${rs.port}?proto=tcp&name=s_tcp`, `syslog://127.0.0.1:${rs.port}?proto=udp&name=s_udp`, `syslog://${rs.socket}?name=s_unix`],
      });
      agents.push(a);
      const markers = runMarkers(`ward-syslog-${process.pid}`, 0, 20);
      const exported = await waitFor("markers in the export file", () => {
        const m = execLinesOf(a.exportLines(), markers);
        return m.size === markers.length ? m : undefined;
      }, 15_000);
      for (const [file, sink] of [[rs.tcpFile, "s_tcp"], [rs.udpFile, "s_udp"], [rs.unixFile, "s_unix"]] as const) {
        const got = await waitFor(`markers via ${sink}`, () => {
          const m = execLinesOf(received(file).map((r) => r.msg), markers);
          return m.size === markers.length ? m : undefined;
        }, 15_000);
        // Complete: byte for byte the line the export file has.
        for (const mk of markers) expect(got.get(mk)).toBe(exported.get(mk)!);
        const recs = received(file).filter((r) => r.msg.startsWith('{"process_exec"') && r.msg.includes(markers[0]!));
        expect(recs[0]!.msgid).toBe("process_exec");
        expect(recs[0]!.app).toBe("ward");
        expect(recs[0]!.pri).toBe("134"); // local0.info
        expect(Number(recs[0]!.procid)).toBe(a.agent.pid);
        const ev = JSON.parse(recs[0]!.msg) as { node_name: string; time: string };
        expect(recs[0]!.host).toBe(ev.node_name);
        // rsyslog's rendering of TIMESTAMP is the event's time to the microsecond.
        expect(Date.parse(recs[0]!.time)).toBe(Date.parse(ev.time));
      }
      await waitFor("sent counters", async () => ((await a.metric("ward_sink_events_sent_total", { sink: "s_unix" })) >= markers.length ? true : undefined), 10_000);
      expect(await a.metric("ward_sink_events_dropped_total", { sink: "s_tcp", reason: "queue_full" })).toBe(0);
      expect(await a.stop()).toBe(0);
      await rs.stop();
    },
    60_000,
  );

  kernelTest(
    "rsyslog stopped and restarted: TCP events from the outage arrive, enforcement goes on; past the retry budget the drops are counted",
    async () => {
      const rs = await rsyslog("outage");
      // s_keep retries for 30 s; s_short gives up after 1 s.
      const a = await startAgent({
        dir,
        bpfDir,
        guard: { file: secret, allowed },
        sinks: [`syslog://127.0.0.1:${rs.port}?proto=tcp&name=s_keep&retry_budget=30s&max_backoff=500ms`, `syslog://${rs.socket}?name=s_short&retry_budget=1s&backoff=50ms&max_backoff=200ms`],
      });
      agents.push(a);
      const tag = `ward-syslog-out-${process.pid}`;
      const before = runMarkers(tag, 0, 5);
      await waitFor("markers before the outage", () => (execLinesOf(received(rs.tcpFile).map((r) => r.msg), before).size === 5 && execLinesOf(received(rs.unixFile).map((r) => r.msg), before).size === 5 ? true : undefined), 15_000);

      await rs.stop();
      const during = runMarkers(tag, 100, 10);
      // The other sinks do not wait for the one that is down: the export file has the outage's events.
      await waitFor("outage markers in the export file", () => (execLinesOf(a.exportLines(), during).size === during.length ? true : undefined), 10_000);
      // The agent keeps enforcing while its sinks are down.
      expect(readGuarded(secret)).toBe("SIGKILL");
      // s_short gives up on the outage's events within its 1 s budget and says how many.
      await waitFor("s_short drops the outage's events", async () => ((await a.metric("ward_sink_events_dropped_total", { sink: "s_short", reason: "retry_budget" })) >= during.length ? true : undefined), 15_000);
      await waitSinkUp(a, "s_keep", 0);
      expect(await a.metric("ward_sink_events_retried_total", { sink: "s_keep" })).toBeGreaterThan(0);

      rs.start();
      await rs.ready();
      const after = runMarkers(tag, 200, 5);
      const all = [...before, ...during, ...after];
      await waitFor("every marker via TCP after the restart", () => (execLinesOf(received(rs.tcpFile).map((r) => r.msg), all).size === all.length ? true : undefined), 20_000);
      expect(await a.metric("ward_sink_events_dropped_total", { sink: "s_keep", reason: "retry_budget" })).toBe(0);
      await waitSinkUp(a, "s_keep", 1);
      // s_short: what came after the restart arrives; what it dropped never does.
      await waitFor("markers after the restart via unix", () => (execLinesOf(received(rs.unixFile).map((r) => r.msg), after).size === after.length ? true : undefined), 15_000);
      expect(execLinesOf(received(rs.unixFile).map((r) => r.msg), during).size).toBe(0);
      // Accounting: every event written is sent, dropped or still queued.
      const m = await a.metrics();
      for (const sink of ["s_keep", "s_short"]) {
        const dropped = ["queue_full", "retry_budget", "rejected", "shutdown"].reduce((n, r) => n + sampleOf(m, "ward_sink_events_dropped_total", { sink, reason: r }), 0);
        expect(sampleOf(m, "ward_sink_events_sent_total", { sink }) + dropped + sampleOf(m, "ward_sink_queue_events", { sink })).toBe(sampleOf(m, "ward_sink_events_written_total", { sink }));
      }
      expect(readGuarded(secret)).toBe("SIGKILL");
      expect(await a.stop()).toBe(0);
      await rs.stop();
    },
    60_000,
  );
});
