// Process event pipeline throughput on one core: real clone/exec/exit records recorded from the
// process sensor on this kernel (bench/lib/process-dump.ts; recorded once per process.o into
// .cache/, which needs root) replayed through the ring buffer consume loop, then decode
// (ProcessRecordDecoder over the object's BTF), enrich (the process cache, seeded with the
// recording's /proc scan) and serialize (each event's Tetragon JSON line). Pinned to CPU 0
// with taskset, so the JIT and GC threads share that core too.
//
//   bun run bench/pipeline.ts [--json] [--events 600000] [--iterations 2000]
//
// Rates are per CPU-second of this process (median of 7 runs, and the best), over the dump as
// recorded: exec and exit events; its clone records are decoded and cached but are not events.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { loadCollectionSpec } from "../src/bpf/collection.ts";
import { readObject } from "../src/bpf/objects.ts";
import { ProcessCache } from "../src/events/process-cache.ts";
import { ProcessPipeline, type PipelineEvent } from "../src/events/process-pipeline.ts";
import { ProcessRecordDecoder } from "../src/events/process-record.ts";
import { BootClock } from "../src/events/time.ts";
import { cachedProcessDump, DumpReplayer, type ProcessDump } from "./lib/process-dump.ts";
import { median } from "./lib/stats.ts";

export interface BenchResult {
  name: string;
  unit: string;
  value: number;
}

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

export interface ReplayFigures {
  eventsPerSec: number;
  recordsPerSec: number;
  bytesPerEvent: number;
  events: number;
  runs: number[];
}

/** The replay's pipeline: decoder from process.o's BTF, a cache seeded from the recording's /proc scan. */
export function replayPipeline(dump: ProcessDump, onEvent: (ev: PipelineEvent) => void): { pipe: ProcessPipeline; dec: ProcessRecordDecoder; cache: ProcessCache } {
  const spec = loadCollectionSpec(readObject("process"), "process");
  const dec = new ProcessRecordDecoder(spec.btf!);
  const cache = new ProcessCache({ nodeName: "bench-node" });
  cache.seed(dump.seeds);
  const pipe = new ProcessPipeline(dec, cache, { nodeName: "bench-node", clock: new BootClock(0n) }, onEvent);
  return { pipe, dec, cache };
}

/** Replays `dump` (or its records passing `filter`) until `events` events, `runs` times. */
export function replay(dump: ProcessDump, events: number, runs: number, filter?: (op: string | undefined) => boolean): ReplayFigures {
  let bytes = 0;
  let count = 0;
  let check = 0;
  const { pipe, dec, cache } = replayPipeline(dump, (ev) => {
    const line = ev.bytes; // the line's UTF-8 bytes: what the sinks take
    bytes += line.length;
    check ^= line[line.length >> 1]!;
    count++;
  });
  const r = new DumpReplayer(dump, dec, filter);
  const handle = (v: DataView): void => pipe.handle(v);
  // Warm up: the JIT's tiers, and the cache at its working size.
  for (let i = 0; i < 3; i++) r.round(handle);
  const rates: number[] = [];
  const recRates: number[] = [];
  for (let run = 0; run < runs; run++) {
    count = 0;
    bytes = 0;
    let records = 0;
    // CPU time of this process (pinned to one core, JIT and GC threads included) rather than
    // wall time: other work on the machine then does not count against the pipeline. The
    // replayer's moving of times between rounds is the harness's work and is left out.
    let micros = 0;
    while (count < events) {
      const c0 = process.cpuUsage();
      records += r.deliver(handle);
      cache.gc(); // the sensor's housekeeping does this every 2 s; here every round, counted
      const cu = process.cpuUsage(c0);
      micros += cu.user + cu.system;
      r.advance();
    }
    const secs = micros / 1e6;
    rates.push(count / secs);
    recRates.push(records / secs);
  }
  const c = pipe.counters();
  if (check < 0) throw new Error("replay: unreachable");
  if (c.decodeErrors > 0 || c.deliveryErrors > 0) throw new Error(`replay: ${c.decodeErrors} decode errors, ${c.deliveryErrors} delivery errors (${pipe.lastError?.message})`);
  return { eventsPerSec: median(rates), recordsPerSec: median(recRates), bytesPerEvent: bytes / count, events: count, runs: rates.map(Math.round) };
}

async function measure(): Promise<{ results: BenchResult[]; report: Record<string, unknown> }> {
  const events = arg("events", 600_000);
  const dump = await cachedProcessDump(arg("iterations", 2000), (m) => process.stderr.write(`bench/pipeline: ${m}\n`));
  const mixed = replay(dump, events, 7);
  const results: BenchResult[] = [
    { name: "pipeline_events_per_sec", unit: "events/s", value: Math.round(mixed.eventsPerSec) },
    { name: "pipeline_events_per_sec_best", unit: "events/s", value: Math.max(...mixed.runs) },
    { name: "pipeline_records_per_sec", unit: "records/s", value: Math.round(mixed.recordsPerSec) },
    { name: "pipeline_ns_per_event", unit: "ns", value: Math.round(1e9 / mixed.eventsPerSec) },
    { name: "pipeline_bytes_per_event", unit: "bytes", value: Math.round(mixed.bytesPerEvent) },
  ];
  return {
    results,
    report: { dumpRecords: dump.records, cpus: readFileSync("/proc/self/status", "utf8").match(/Cpus_allowed_list:\s*(\S+)/)?.[1], runs: mixed.runs },
  };
}

const pinned = (): boolean => readFileSync("/proc/self/status", "utf8").match(/Cpus_allowed_list:\s*(\S+)/)?.[1] === "0";

/** Runs the bench pinned to CPU 0 in its own process; for the bench suite. */
export async function benchPipeline(): Promise<BenchResult[]> {
  const r = spawnSync("taskset", ["-c", "0", process.execPath, "run", import.meta.path, "--json"], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] });
  if (r.status !== 0) throw new Error(`bench/pipeline.ts failed (${r.status ?? r.signal})`);
  return (JSON.parse(r.stdout) as { results: BenchResult[] }).results;
}

if (import.meta.main) {
  if (!pinned()) {
    // Re-run under taskset so the whole process (JIT and GC threads too) shares one core.
    const r = spawnSync("taskset", ["-c", "0", process.execPath, "run", import.meta.path, ...process.argv.slice(2)], { stdio: "inherit" });
    process.exit(r.status ?? 1);
  }
  const { results, report } = await measure();
  if (process.argv.includes("--json")) {
    process.stdout.write(`${JSON.stringify({ results, ...report })}\n`);
  } else {
    for (const x of results) process.stdout.write(`${x.name.padEnd(32)} ${String(x.value).padStart(10)} ${x.unit}\n`);
    process.stdout.write(`${JSON.stringify(report)}\n`);
  }
}
