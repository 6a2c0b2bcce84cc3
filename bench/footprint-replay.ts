// The agent's memory and idle CPU (root):
//  1. idle: `ward agent` started as a separate process (from source through bun, and the
//     compiled dist/ward when it exists), VmRSS from /proc/<pid>/status 3 s after "ready",
//     then its CPU time (utime+stime from /proc/<pid>/stat) over 10 s of idling;
//  2. under load: an agent started in this process (real sensors attached, the real event hub,
//     a stdout sink writing to /dev/null) gets the recorded process dump
//     (bench/lib/process-dump.ts) replayed into its process sensor's pipeline, round by round
//     with the event loop running in between (housekeeping, sink flushes), and this process's
//     VmRSS is read after 100,000 and after 1,000,000 events: once right at the mark, and
//     settled (the replay paused, the lowest of 12 samples over 3 s, as bench/footprint.ts
//     does; the agent's burst reclaim may run meanwhile, as it would after a real burst).
//     The instant figure lands anywhere in the collector's cycle (it swung between 113 and
//     185 MB at 1M from one run to the next); the settled one is what the events left behind.
//     Then the JS heap before and after one full collection. The in-process figure includes
//     the bench's own dump buffers (a few MB, the same at both points).
//
//   bun run bench/footprint-replay.ts [--json] [--no-binary] [--load-only] [--rate EVENTS_PER_SEC]
//
// (bench/footprint.ts, in the suite, measures the same through the real dist/ward and real
// events; this one replays a recorded dump in-process, to profile the pipeline's memory.)
//
// The replay runs at most --rate events/s (default 20,000: a host execing 10,000 times a
// second; 0 = as fast as the pipeline goes).
import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { prepareBenchHost } from "./lib/host.ts";
import { cachedProcessDump, DumpReplayer } from "./lib/process-dump.ts";
import type { BenchResult } from "./pipeline.ts";

const ROOT = join(import.meta.dir, "..");
const mb = (kb: number): number => Math.round(kb / 102.4) / 10;

function statusKb(pid: number | "self", key: string): number {
  const m = readFileSync(`/proc/${pid}/status`, "utf8").match(new RegExp(`${key}:\\s+(\\d+) kB`));
  if (!m) throw new Error(`/proc/${pid}/status has no ${key}`);
  return Number(m[1]);
}

/** utime + stime of a process, in clock ticks (USER_HZ, 100 on Linux). */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]); // fields 14 and 15, counted from after "(comm)"
}

interface Idle {
  rssKb: number;
  anonKb: number;
  cpuPercent: number;
}

/** Starts `cmd agent ...` with its own state, token, port and bpffs folder; measures; stops it. */
async function idleAgent(cmd: string[], label: string): Promise<Idle> {
  const dir = mkdtempSync(join(tmpdir(), "ward-footprint-"));
  const args = [
    ...cmd,
    "agent",
    "--listen",
    "127.0.0.1:0",
    "--state-file",
    join(dir, "agent.json"),
    "--token-file",
    join(dir, "token"),
    "--bpf-dir",
    `/sys/fs/bpf/ward-footprint-${process.pid}`,
  ];
  const child = spawn(args[0]!, args.slice(1), { stdio: ["ignore", "ignore", "pipe"] });
  let err = "";
  const ready = new Promise<void>((resolve, reject) => {
    child.stderr!.on("data", (d: Buffer) => {
      err += d.toString();
      if (/ready \(node/.test(err)) resolve();
    });
    child.on("exit", (code, sig) => reject(new Error(`${label}: agent exited (${code ?? sig}) before ready: ${err}`)));
  });
  try {
    await Promise.race([ready, Bun.sleep(30_000).then(() => Promise.reject(new Error(`${label}: agent not ready after 30 s: ${err}`)))]);
    await Bun.sleep(3000);
    const pid = child.pid!;
    const rssKb = statusKb(pid, "VmRSS");
    const anonKb = statusKb(pid, "RssAnon");
    const t0 = cpuTicks(pid);
    const w0 = performance.now();
    await Bun.sleep(10_000);
    const cpuPercent = ((cpuTicks(pid) - t0) / 100 / ((performance.now() - w0) / 1000)) * 100;
    return { rssKb, anonKb, cpuPercent };
  } finally {
    child.kill("SIGTERM");
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.on("exit", r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

interface Load {
  startKb: number;
  at100kKb: number;
  at1mKb: number;
  settled100kKb: number;
  settled1mKb: number;
  events: number;
  cacheSize: number;
  heapMB: number;
  afterGcKb: number;
  heapAfterGcMB: number;
}

/** The in-process agent under the replayed dump, at most `rate` events/s (0: as fast as it goes). */
async function underLoad(rate: number): Promise<Load> {
  const dump = await cachedProcessDump(2000, (m) => process.stderr.write(`bench/footprint: ${m}\n`));
  const { Agent } = await import("../src/agent/agent.ts");
  const { parseAgentConfig } = await import("../src/agent/config.ts");
  const { defaultSensors } = await import("../src/agent/default-sensors.ts");
  const { parsePolicies } = await import("../src/agent/policy-parser.ts");
  const { createPolicyBackend } = await import("../src/agent/policy-backend.ts");
  const { ProcessSensor } = await import("../src/agent/process-sensor.ts");
  const { StdoutSink } = await import("../src/export/stdout.ts");
  const dir = mkdtempSync(join(tmpdir(), "ward-footprint-"));
  const config = parseAgentConfig([
    "--listen",
    "127.0.0.1:0",
    "--state-file",
    join(dir, "agent.json"),
    "--token-file",
    join(dir, "token"),
    "--bpf-dir",
    `/sys/fs/bpf/ward-footprint-${process.pid}`,
  ]);
  if (config === "help") throw new Error("unreachable");
  let sensor: InstanceType<typeof ProcessSensor> | undefined;
  const devnull = openSync("/dev/null", "w");
  const agent = new Agent(config, {
    parser: parsePolicies,
    sensors: (ctx) => {
      const s = defaultSensors(ctx);
      sensor = s.find((x): x is InstanceType<typeof ProcessSensor> => x instanceof ProcessSensor);
      return s;
    },
    policyBackend: (ctx, s) => createPolicyBackend(ctx, s),
    sinks: () => [new StdoutSink(devnull)],
    log: () => {},
  });
  await agent.start();
  try {
    const k = sensor?.kernel;
    if (!k) throw new Error("the agent started no process sensor");
    k.cache.seed(dump.seeds);
    const replayer = new DumpReplayer(dump, k.pipeline.decoder);
    const handle = (v: DataView): void => k.pipeline.handle(v);
    const events = (): number => agent.hub.counters().total;
    await Bun.sleep(1000);
    const startKb = statusKb("self", "VmRSS");
    const e0 = events();
    let at100kKb = 0;
    let settled100kKb = 0;
    // The lowest VmRSS over 3 s with the replay paused (timers, sink flushes and GC run).
    const settled = async (): Promise<number> => {
      let low = Number.POSITIVE_INFINITY;
      for (let i = 0; i < 12; i++) {
        await Bun.sleep(250);
        low = Math.min(low, statusKb("self", "VmRSS"));
      }
      return low;
    };
    let paused = 0;
    const t0 = performance.now();
    while (events() - e0 < 1_000_000) {
      replayer.round(handle);
      // Let timers and I/O run between rounds, as the sensor's drain loop does between batches.
      await new Promise<void>((r) => setImmediate(r));
      if (rate > 0) {
        const ahead = ((events() - e0) / rate) * 1000 - (performance.now() - t0 - paused);
        if (ahead > 0) await Bun.sleep(ahead);
      }
      if (at100kKb === 0 && events() - e0 >= 100_000) {
        const p0 = performance.now();
        await Bun.sleep(500);
        at100kKb = statusKb("self", "VmRSS");
        settled100kKb = await settled();
        paused += performance.now() - p0;
      }
    }
    await Bun.sleep(500);
    const at1mKb = statusKb("self", "VmRSS");
    const settled1mKb = await settled();
    const { heapStats } = await import("bun:jsc");
    const heapMB = Math.round(heapStats().heapSize / 1e5) / 10;
    Bun.gc(true);
    await Bun.sleep(1000);
    const afterGcKb = statusKb("self", "VmRSS");
    const heapAfterGcMB = Math.round(heapStats().heapSize / 1e5) / 10;
    return { startKb, at100kKb, at1mKb, settled100kKb, settled1mKb, events: events() - e0, cacheSize: k.cache.stats().size, heapMB, afterGcKb, heapAfterGcMB };
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function measureFootprint(opts: { binary?: boolean; idle?: boolean; rate?: number } = {}): Promise<{ results: BenchResult[]; report: Record<string, unknown> }> {
  prepareBenchHost("bench/footprint-replay.ts");
  const results: BenchResult[] = [];
  const report: Record<string, unknown> = {};
  if (opts.idle !== false) {
    const src = await idleAgent([process.execPath, join(ROOT, "src/cli/main.ts")], "source");
    results.push(
      { name: "footprint_idle_rss_source", unit: "MB", value: mb(src.rssKb) },
      { name: "footprint_idle_cpu_source", unit: "%", value: Math.round(src.cpuPercent * 100) / 100 },
    );
    report.idleSource = { rssMB: mb(src.rssKb), anonMB: mb(src.anonKb), cpuPercent: src.cpuPercent };
    const bin = join(ROOT, "dist/ward");
    if (opts.binary !== false && existsSync(bin)) {
      const b = await idleAgent([bin], "dist/ward");
      results.push(
        { name: "footprint_idle_rss_binary", unit: "MB", value: mb(b.rssKb) },
        { name: "footprint_idle_cpu_binary", unit: "%", value: Math.round(b.cpuPercent * 100) / 100 },
      );
      report.idleBinary = { rssMB: mb(b.rssKb), anonMB: mb(b.anonKb), cpuPercent: b.cpuPercent };
    } else {
      report.idleBinary = `skipped: ${opts.binary === false ? "--no-binary" : `${bin} not built (npm run build)`}`;
    }
  }
  const rate = opts.rate ?? 20_000;
  const l = await underLoad(rate);
  results.push(
    { name: "footprint_rss_in_process_start", unit: "MB", value: mb(l.startKb) },
    { name: "footprint_rss_after_100k_events", unit: "MB", value: mb(l.at100kKb) },
    { name: "footprint_rss_after_1m_events", unit: "MB", value: mb(l.at1mKb) },
    { name: "footprint_rss_growth_100k_to_1m", unit: "%", value: Math.round(((l.at1mKb - l.at100kKb) / l.at100kKb) * 1000) / 10 },
    { name: "footprint_rss_settled_after_100k", unit: "MB", value: mb(l.settled100kKb) },
    { name: "footprint_rss_settled_after_1m", unit: "MB", value: mb(l.settled1mKb) },
    { name: "footprint_rss_settled_1m_over_100k", unit: "ratio", value: Math.round((l.settled1mKb / l.settled100kKb) * 1000) / 1000 },
  );
  report.load = { eventsPerSecCap: rate, events: l.events, cacheSizeAfter: l.cacheSize, heapAt1mMB: l.heapMB, rssAfterFullGcMB: mb(l.afterGcKb), heapAfterFullGcMB: l.heapAfterGcMB };
  return { results, report };
}

/** For the bench suite. */
export async function benchFootprint(): Promise<BenchResult[]> {
  return (await measureFootprint()).results;
}

if (import.meta.main) {
  const i = process.argv.indexOf("--rate");
  const rate = i >= 0 ? Number(process.argv[i + 1]) : undefined;
  if (rate !== undefined && !(Number.isFinite(rate) && rate >= 0)) throw new Error(`--rate: not a number of events per second: ${process.argv[i + 1]}`);
  const { results, report } = await measureFootprint({ binary: !process.argv.includes("--no-binary"), idle: !process.argv.includes("--load-only"), rate });
  if (process.argv.includes("--json")) {
    process.stdout.write(`${JSON.stringify({ results, ...report })}\n`);
  } else {
    for (const x of results) process.stdout.write(`${x.name.padEnd(34)} ${String(x.value).padStart(9)} ${x.unit}\n`);
    process.stdout.write(`${JSON.stringify(report)}\n`);
  }
  process.exit(0);
}
