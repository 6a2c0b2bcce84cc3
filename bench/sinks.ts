// Sink throughput: events per second from write() until the server holds them, per sink,
// measured in this run against the real servers where they are installed (rsyslog,
// clickhouse-server; started here on loopback ports with their own config, as the tests do)
// and against test/lib/servers.ts LokiServer for Loki (not packaged by Debian; it runs in this
// process, so its JSON parsing shares the core with the sink and the figure is a lower bound).
// Run alone, a sink whose server is not installed is skipped with a line on stderr, never
// faked; as part of the suite (--json) the servers are installed first from Debian's packages.
// Also the cost of write() itself (the hub's synchronous part): ns per event into a queue.
//
// The events are a real process_exec line (Tetragon's shape, ~1.3 KB) with its pid, exec_id
// and time varied per event, fed as UTF-8 bytes as the process pipeline feeds them (each
// line's bytes followed by "\n" in a 64 KiB chunk, test/lib/line-arena.ts), the views made
// before the clock starts (that is the producer's cost); write() copies each into the sink's
// line store, as it must for the pipeline's borrowed lines, and that copy is timed. Two figures
// are also taken with the same lines as strings, write() and the file sink, so the gain of
// bytes over strings shows in the same run.
//
// Usage: bun run bench/sinks.ts [--events 50000] [--only file,loki,...]
//        bun run bench/sinks.ts --json [--quick] [--events N]   (one suite section, as bench/run.ts runs it)
// benchSinks() is the same run as a function, for bench/run.ts.
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync, readSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { JsonlFileSink } from "../src/export/jsonl-file.ts";
import { QueuedSink } from "../src/export/queued.ts";
import type { CountedSink, Line } from "../src/export/sink.ts";
import { ClickHouseSink } from "../src/export/sinks/clickhouse.ts";
import { LokiSink } from "../src/export/sinks/loki.ts";
import { SyslogSink } from "../src/export/sinks/syslog.ts";
import { StdoutSink } from "../src/export/stdout.ts";
import { CLICKHOUSE, ClickHouse, ensureServers, LokiServer, RSYSLOGD, Rsyslog } from "../test/lib/servers.ts";
import { LineArena } from "../test/lib/line-arena.ts";
import { freePort, waitFor } from "../test/lib/sink-harness.ts";
import { metric, progress, runBench, type BenchSection } from "./lib/results.ts";

export interface BenchResult {
  name: string;
  unit: string;
  value: number;
  /** For rates: events per wall second of the same span (value is per CPU second). */
  wall?: number;
}

export interface BenchSinksOptions {
  /** Events per sink (default 50,000). */
  events?: number;
  /** Sinks to run (default all): write, file, stdout, syslog_tcp, syslog_udp, syslog_unix, loki, clickhouse (write and file also fed strings). */
  only?: string[];
  /** Progress and skip notes (default stderr). */
  log?: (msg: string) => void;
}

const SAMPLE =
  '{"process_exec":{"process":{"exec_id":"dm06MTA4ODAzMTg2MDM3NjozMTk2","pid":3196,"uid":0,"cwd":"/work/ward","binary":"/usr/bin/curl","arguments":"-s https://example.com/api/v1/items?page=2","flags":"execve clone","start_time":"2026-12-03T16:01:14.010384201Z","auid":4294967295,"parent_exec_id":"dm06MTA4NzQ1MDAwMDAwMDozMTU2","tid":3196},"parent":{"exec_id":"dm06MTA4NzQ1MDAwMDAwMDozMTU2","pid":3156,"uid":0,"cwd":"/work/ward","binary":"/usr/bin/bash","arguments":"-c for i in $(seq 1 100); do curl -s https://example.com/api/v1/items?page=$i; done","flags":"procFS","start_time":"2026-12-03T16:01:13.428523825Z","auid":4294967295,"parent_exec_id":"dm06MTA4NzI0MDAwMDAwMDozMDkz","tid":3156}},"node_name":"bench","time":"TIME"}';

function lines(n: number): string[] {
  const t0 = Date.now();
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    const ms = t0 + Math.floor(i / 1000);
    const time = `${new Date(ms).toISOString().slice(0, 19)}.${String((ms % 1000) * 1_000_000 + (i % 1000) * 1000).padStart(9, "0")}Z`;
    out.push(SAMPLE.replace("TIME", time).replace('"pid":3196', `"pid":${10_000 + i}`).replace("MTA4ODAzMTg2MDM3NjozMTk2", Buffer.from(`bench:${i}`).toString("base64")));
  }
  return out;
}

/**
 * Writes every line, then waits until `held()` reaches n. Events per CPU second of this
 * process (the sending side: the agent's share of a core, queue, batching, encoding and
 * transport included) and per wall second over that span. Servers in their own process
 * (rsyslog, clickhouse-server) do not count against the CPU figure; the in-process Loki
 * stand-in does, so its figure is a lower bound.
 */
async function measure(sink: CountedSink, evs: readonly Line[], held: () => Promise<number> | number, timeoutMs = 120_000): Promise<Rate> {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  for (const l of evs) sink.write(l);
  await waitFor(`${sink.name}: ${evs.length} events held by the server`, async () => ((await held()) >= evs.length ? true : undefined), timeoutMs, () => {
    const st = sink.stats();
    const dropped = Object.values(st.dropped).reduce((a, b) => a + b, 0);
    return dropped > 0 ? `${dropped} dropped (${st.lastError ?? ""})` : undefined;
  });
  const secs = (performance.now() - t0) / 1000;
  const cu = process.cpuUsage(c0);
  await sink.close();
  return { perCpuSecond: evs.length / ((cu.user + cu.system) / 1e6), perWallSecond: evs.length / secs };
}

interface Rate {
  perCpuSecond: number;
  perWallSecond: number;
}

function rate(name: string, r: Rate): BenchResult {
  return { name, unit: "events/s", value: r.perCpuSecond, wall: r.perWallSecond };
}

function countLines(path: string): number {
  if (!existsSync(path)) return 0;
  const b = readFileSync(path);
  let n = 0;
  for (let i = 0; i < b.length; i++) if (b[i] === 10) n++;
  return n;
}

/**
 * Lines in a file that only grows, counting only what was appended since the last call:
 * the bench polls rsyslog's file while the sink sends, and re-reading tens of MB per poll
 * would charge the sender's CPU figure with the bench's own work.
 */
function lineCounter(path: string, onStop: (stop: () => Promise<void>) => void): () => number {
  let fd: number | undefined;
  onStop(async () => {
    if (fd !== undefined) closeSync(fd);
  });
  let n = 0;
  const buf = Buffer.allocUnsafe(1 << 20);
  return () => {
    if (fd === undefined) {
      if (!existsSync(path)) return 0;
      fd = openSync(path, "r");
    }
    for (;;) {
      const got = readSync(fd, buf, 0, buf.length, null);
      if (got === 0) return n;
      n += countNewlines(buf.subarray(0, got));
    }
  };
}

function countNewlines(b: Buffer): number {
  let n = 0;
  for (let i = b.indexOf(10); i >= 0; i = b.indexOf(10, i + 1)) n++;
  return n;
}

const big = (n: number) => ({ maxQueue: n + 1, maxQueueBytes: 2 ** 31, retryBudgetMs: 60_000 });

export async function benchSinks(opts: BenchSinksOptions = {}): Promise<BenchResult[]> {
  const n = opts.events ?? 50_000;
  const log = opts.log ?? ((m: string) => process.stderr.write(`bench/sinks: ${m}\n`));
  const want = (name: string) => !opts.only || opts.only.includes(name);
  const strs = lines(n);
  // A fresh arena per sink, so each sink's lines are as new to the cache as the pipeline's would be.
  const bytes = (): Uint8Array[] => new LineArena().addAll(strs);
  const out: BenchResult[] = [];
  const dir = mkdtempSync(join(tmpdir(), "ward-bench-sinks-"));
  const stops: Array<() => Promise<void>> = [];
  try {
    if (want("write")) {
      // write() alone: the queue takes the line; the transport never completes during the loop.
      const writeNs = async (evs: readonly Line[]): Promise<number> => {
        const s = new QueuedSink("bench", { kind: "null", send: async () => {} }, { ...big(n), lingerMs: 60_000 });
        const t0 = performance.now();
        for (const l of evs) s.write(l);
        const ns = ((performance.now() - t0) * 1e6) / n;
        await s.close();
        return ns;
      };
      // Both kinds once untimed first, so neither figure carries the JIT's warm-up for the other.
      await writeNs(bytes());
      await writeNs(strs);
      out.push({ name: "sink_write_ns_per_event", unit: "ns/event", value: await writeNs(bytes()) });
      out.push({ name: "sink_write_strings_ns_per_event", unit: "ns/event", value: await writeNs(strs) });
    }
    if (want("file")) {
      // Warm-up, untimed: a few thousand lines of each kind through a file sink of its own.
      const warm = Math.min(n, 3_000);
      for (const evs of [bytes().slice(0, warm), strs.slice(0, warm)]) {
        const s = new JsonlFileSink(join(dir, "warm.log"), { ...big(n), maxBytes: 2 ** 40 });
        await measure(s, evs, () => s.stats().sent);
      }
      for (const [name, evs] of [["sink_file_events_per_s", bytes()], ["sink_file_strings_events_per_s", strs]] as const) {
        const path = join(dir, `${name}.log`);
        const s = new JsonlFileSink(path, { ...big(n), maxBytes: 2 ** 40 });
        out.push(rate(name, await measure(s, evs, () => s.stats().sent)));
      }
    }
    if (want("stdout")) {
      const fd = openSync("/dev/null", "w");
      const s = new StdoutSink(fd, big(n));
      out.push(rate("sink_stdout_events_per_s", await measure(s, bytes(), () => s.stats().sent)));
      closeSync(fd);
    }
    const syslogs = ["syslog_tcp", "syslog_udp", "syslog_unix"].filter(want);
    if (syslogs.length > 0) {
      if (!existsSync(RSYSLOGD)) log(`skip ${syslogs.join(", ")}: ${RSYSLOGD} is not installed (apt-get install rsyslog)`);
      else {
        const rs = new Rsyslog(join(dir, "rsyslog"), await freePort());
        rs.start();
        stops.push(() => rs.stop());
        await rs.ready();
        for (const name of syslogs) {
          const proto = name.slice(7) as "tcp" | "udp" | "unix";
          const file = proto === "tcp" ? rs.tcpFile : proto === "udp" ? rs.udpFile : rs.unixFile;
          const s = new SyslogSink({ ...big(n), name, proto, host: "127.0.0.1", port: rs.port, path: rs.socket, hostname: "bench" });
          if (proto === "udp") {
            // UDP has no acknowledgement: measure until sent, then report how much rsyslog got.
            const v = await measure(s, bytes(), () => s.stats().sent);
            await waitFor("udp settles", async () => {
              const a = countLines(file);
              await Bun.sleep(300);
              return countLines(file) === a ? true : undefined;
            }, 30_000);
            out.push(rate("sink_syslog_udp_events_per_s", v));
            out.push({ name: "sink_syslog_udp_received", unit: "%", value: (100 * countLines(file)) / n });
          } else {
            out.push(rate(`sink_${name}_events_per_s`, await measure(s, bytes(), lineCounter(file, (stop) => stops.push(stop)))));
          }
        }
      }
    }
    if (want("loki")) {
      const srv = new LokiServer(await freePort());
      srv.start();
      stops.push(() => srv.stop());
      const s = new LokiSink({ ...big(n), url: srv.url });
      out.push(rate("sink_loki_events_per_s", await measure(s, bytes(), () => srv.entries)));
    }
    if (want("clickhouse")) {
      if (!existsSync(CLICKHOUSE)) log(`skip clickhouse: ${CLICKHOUSE} is not installed (apt-get install clickhouse-server)`);
      else {
        const ch = new ClickHouse(join(dir, "clickhouse"), await freePort(), await freePort());
        ch.start();
        stops.push(() => ch.stop());
        await ch.ready();
        const s = new ClickHouseSink({ ...big(n), url: ch.url, table: "bench_events", maxBatch: 5_000, maxBatchBytes: 8 << 20 });
        out.push(rate("sink_clickhouse_events_per_s", await measure(s, bytes(), async () => Number((await ch.query("SELECT count() FROM bench_events").catch(() => "0")).trim()))));
      }
    }
  } finally {
    for (const stop of stops.reverse()) await stop();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}

const NAMES: Record<string, string> = {
  sink_write_ns_per_event: "write() into a sink's queue (the hub's synchronous part), lines as bytes",
  sink_write_strings_ns_per_event: "write() into a sink's queue, the same lines as strings",
  sink_file_events_per_s: "JSON lines to a file, per CPU second of the sender",
  sink_file_strings_events_per_s: "JSON lines to a file, the same lines as strings, per CPU second of the sender",
  sink_stdout_events_per_s: "JSON lines to stdout (/dev/null), per CPU second of the sender",
  sink_syslog_tcp_events_per_s: "syslog RFC 5424 over TCP (octet-counted) into Debian's rsyslog, until in its file, per CPU second of the sender",
  sink_syslog_udp_events_per_s: "syslog RFC 5424 over UDP to Debian's rsyslog, until sent, per CPU second of the sender",
  sink_syslog_udp_received: "syslog over UDP: share of the events rsyslog wrote to its file",
  sink_syslog_unix_events_per_s: "syslog RFC 5424 over a unix stream socket into Debian's rsyslog, until in its file, per CPU second of the sender",
  sink_loki_events_per_s: "Loki push API into the stand-in server (in this process: a lower bound), until stored, per CPU second",
  sink_clickhouse_events_per_s: "ClickHouse over HTTP (INSERT ... FORMAT JSONEachRow) into Debian's clickhouse-server, until SELECT count() sees them, per CPU second of the sender",
};

if (import.meta.main && process.argv.includes("--json")) {
  // As part of `npm run bench` (bench/run.ts): one section, the real servers installed first.
  await runBench("sinks", "Sinks: events per second into each real server, same run", async (args, section: BenchSection) => {
    const events = Math.floor(args.num("events", 50_000, 2_000));
    ensureServers(["rsyslog", "clickhouse-server"]);
    const results = await benchSinks({ events, log: (m) => progress("sinks", m) });
    for (const r of results) {
      const detail = r.wall !== undefined ? `${events.toLocaleString("en-US")} process_exec lines (~1.3 KB each, as bytes unless the name says strings); ${Math.round(r.wall).toLocaleString("en-US")} events per wall second` : `${events.toLocaleString("en-US")} lines`;
      section.metrics.push(metric({ id: r.name, name: NAMES[r.name] ?? r.name, unit: r.unit, median: r.value, min: r.value, max: r.value, rounds: 1, detail }));
    }
    const debVersion = (pkg: string): string => Bun.spawnSync(["dpkg-query", "-W", "-f", "${Version}", pkg]).stdout.toString().trim() || "?";
    section.mechanisms.rsyslog = `rsyslogd ${debVersion("rsyslog")} (Debian package)`;
    section.mechanisms["clickhouse-server"] = `clickhouse-server ${debVersion("clickhouse-server")} (Debian package)`;
    section.mechanisms.loki = "stand-in server (test/lib/servers.ts LokiServer): Grafana Loki is not packaged by Debian";
  });
} else if (import.meta.main) {
  const argv = process.argv.slice(2);
  const val = (k: string) => {
    const i = argv.indexOf(`--${k}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const events = Number(val("events") ?? 50_000);
  if (!Number.isInteger(events) || events < 1) {
    process.stderr.write(`bench/sinks: --events wants a positive whole number\n`);
    process.exit(2);
  }
  const results = await benchSinks({ events, only: val("only")?.split(",") });
  process.stdout.write(`sinks, ${events} process_exec events each (same run):\n`);
  for (const r of results) process.stdout.write(`  ${r.name.padEnd(32)} ${r.value.toFixed(r.unit === "%" ? 1 : 0).padStart(10)} ${r.unit}${r.wall !== undefined ? ` (${r.wall.toFixed(0)} per wall second)` : ""}\n`);
}
