// Process sensor and event pipeline benchmark:
//  1. fork+exec+wait of /bin/true (bench/lib/loadgen.c forkexec, pinned to CPU 0, CPU time of
//     the loop and its reaped children from getrusage) with the default agent (process
//     tracking) vs none, alternating A/B.
//  2. the userspace pipeline on one core: ring-buffer records recorded from the real process
//     sensor during an exec storm, replayed through decode + process cache (enrichment) +
//     the Tetragon JSON line (what every sink writes); events/s per round, then one replay under
//     `bun --cpu-prof` whose top functions explain where the time goes.
//  3. end to end through `dist/ward agent` with a Post policy on a file: an exec storm from
//     every core (every exec and exit must arrive, none lost), an open storm on the
//     Post-monitored file from every core (events delivered plus losses counted must account
//     for every open), and paced open rates rising until losses begin.
// Usage (root): bun run bench/process.ts [--rounds 7] [--storm-seconds 30] [--quick] [--json]
//   internal: --replay FILE --records N (one timed replay of a dump; the profiled child)
import { spawnSync } from "node:child_process";
import { cpus } from "node:os";
import { mkdtempSync, readdirSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readObject } from "../src/bpf/objects.ts";
import { loadCollectionSpec } from "../src/bpf/collection.ts";
import { ProcessCache } from "../src/events/process-cache.ts";
import { ProcessPipeline } from "../src/events/process-pipeline.ts";
import { ProcessRecordDecoder } from "../src/events/process-record.ts";
import { BootClock } from "../src/events/time.ts";
import { startProcessSensor } from "../src/sensors/process.ts";
import { secureOpenPolicy } from "../test/lib/talk-policies.ts";
import { alternate } from "./lib/ab.ts";
import { AgentTreatment, BenchAgent } from "./lib/agent.ts";
import { prepareBenchHost, waitFor } from "./lib/host.ts";
import { LoadGenerator } from "./lib/loadgen.ts";
import { bpfRunTime, formatProgRuns, progIdsOf, topFunctions } from "./lib/profile.ts";
import { metric, progress, ratioMetric, runBench, sampleMetric, type BenchSection } from "./lib/results.ts";
import { summarizeRatios } from "./lib/stats.ts";

class ProcessBenchError extends Error {
  override name = "ProcessBenchError";
}

const log = (m: string) => progress("process", m);

/** Voluntary plus involuntary context switches of every thread of pid so far. */
function contextSwitches(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let st: string;
    try {
      st = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
    } catch {
      continue; // the thread ended meanwhile
    }
    for (const m of st.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) n += Number(m[1]);
  }
  return n;
}
const TRUE = realpathSync("/bin/true");

// ---- dumps: length-prefixed raw ring-buffer records ----

function writeDump(file: string, records: Uint8Array[]): void {
  const total = records.reduce((n, r) => n + 4 + r.length, 0);
  const out = new Uint8Array(total);
  const v = new DataView(out.buffer);
  let o = 0;
  for (const r of records) {
    v.setUint32(o, r.length, true);
    out.set(r, o + 4);
    o += 4 + r.length;
  }
  writeFileSync(file, out);
}

function readDump(file: string): DataView[] {
  const b = new Uint8Array(readFileSync(file));
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const out: DataView[] = [];
  for (let o = 0; o + 4 <= b.length; ) {
    const n = v.getUint32(o, true);
    out.push(new DataView(b.buffer, b.byteOffset + o + 4, n));
    o += 4 + n;
  }
  return out;
}

/** Records the process sensor's raw records while `storm` runs. */
async function recordDump(storm: () => Promise<unknown>): Promise<Uint8Array[]> {
  const records: Uint8Array[] = [];
  const s = await startProcessSensor({ nodeName: "bench", onEvent: () => {} });
  const handle = s.pipeline.handle.bind(s.pipeline);
  s.pipeline.handle = (view: DataView) => {
    records.push(new Uint8Array(view.buffer, view.byteOffset, view.byteLength).slice());
    handle(view);
  };
  try {
    await storm();
    await Bun.sleep(300);
  } finally {
    await s.stop();
  }
  return records;
}

/**
 * Replays the dump until `n` records went through; exec + exit events out per second of
 * this process's CPU time (user + system, so other work on a shared CPU does not count),
 * and per second of wall time.
 * Each pass over the dump first moves every ktime (and record time) past the previous
 * pass's, so a pass is new processes that reuse the pids, as on a real host, instead of
 * the same processes seen again (which the cache would treat as duplicates). The shift
 * happens between passes, outside the timed part.
 */
function replay(dump: readonly DataView[], n: number): { eventsPerSec: number; wallPerSec: number; events: number } {
  const spec = loadCollectionSpec(readObject("process"), "process");
  const dec = new ProcessRecordDecoder(spec.btf!);
  const cache = new ProcessCache({ nodeName: "bench", maxEntries: 65536 });
  let events = 0;
  let bytes = 0;
  // The consumer takes what the sinks take: the export line's bytes, read once. The object
  // form and the line string are not asked for, as in the agent with no export filter and no
  // API client (EventHub.publishEvent hands the sinks ev.bytes).
  let check = 0;
  const pipe = new ProcessPipeline(dec, cache, { nodeName: "bench", clock: new BootClock() }, (ev) => {
    events++;
    const line = ev.bytes;
    bytes += line.length;
    check ^= line[line.length >> 1]!;
  });
  const timeFields = dump.map((v) => {
    const kind = dec.opOf(v);
    const l = kind === "exec" ? dec.exec : kind === "clone" ? dec.clone : kind === "exit" ? dec.exit : undefined;
    if (!l) throw new ProcessBenchError(`the dump holds a record of unknown op ${v.getUint8(dec.hdr.offset("op"))}`);
    return [dec.hdr.offset("time"), l.offset("ktime"), ...(l.has("parent_ktime") ? [l.offset("parent_ktime")] : [])];
  });
  let lo = BigInt(Number.MAX_SAFE_INTEGER);
  let hi = 0n;
  dump.forEach((v, i) => {
    for (const o of timeFields[i]!) {
      const t = v.getBigUint64(o, true);
      if (t === 0n) continue;
      if (t < lo) lo = t;
      if (t > hi) hi = t;
    }
  });
  const span = hi - lo + 1_000_000_000n;
  let ms = 0;
  let cpuUs = 0;
  for (let done = 0, pass = 0; done < n; pass++) {
    if (pass > 0) {
      dump.forEach((v, i) => {
        for (const o of timeFields[i]!) {
          const t = v.getBigUint64(o, true);
          if (t !== 0n) v.setBigUint64(o, t + span, true);
        }
      });
    }
    const m = Math.min(dump.length, n - done);
    const t0 = performance.now();
    const c0 = process.cpuUsage();
    for (let i = 0; i < m; i++) pipe.handle(dump[i]!);
    const c1 = process.cpuUsage(c0);
    ms += performance.now() - t0;
    cpuUs += c1.user + c1.system;
    done += m;
  }
  if (bytes === 0 || check < 0) throw new ProcessBenchError("the replay produced no events");
  const c = pipe.counters();
  if (c.decodeErrors > 0) throw new ProcessBenchError(`the replay hit ${c.decodeErrors} decode errors: ${pipe.lastError?.message}`);
  return { eventsPerSec: events / (cpuUs / 1e6), wallPerSec: events / (ms / 1000), events };
}

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

// The replay child (pinned by its parent to one CPU): a warm-up, then --rounds timed
// replays; the rates on stdout.
const replayFile = argValue("replay");
if (replayFile !== undefined) {
  const n = Number(argValue("records") ?? "300000");
  const rounds = Number(argValue("rounds") ?? "1");
  const dump = readDump(replayFile);
  replay(dump, Math.min(n, 20_000)); // JIT warm-up
  const rates: { cpu: number; wall: number }[] = [];
  for (let r = 0; r < rounds; r++) {
    const x = replay(dump, n);
    rates.push({ cpu: x.eventsPerSec, wall: x.wallPerSec });
  }
  process.stdout.write(`${JSON.stringify(rates)}\n`);
  process.exit(0);
}

/** Replays the dump in a child pinned to CPU 0 (under `bun --cpu-prof` when profDir is set). */
function replayPinned(dumpFile: string, records: number, rounds: number, profDir?: string): { cpu: number; wall: number }[] {
  const prof = profDir !== undefined ? ["--cpu-prof", `--cpu-prof-dir=${profDir}`] : [];
  const r = spawnSync("taskset", ["-c", "0", process.execPath, ...prof, import.meta.path, "--replay", dumpFile, "--records", String(records), "--rounds", String(rounds)], {
    encoding: "utf8",
    timeout: 600_000,
  });
  if (r.status !== 0) throw new ProcessBenchError(`replay child failed (exit ${r.status ?? r.signal}): ${r.stderr}`);
  return JSON.parse(r.stdout) as { cpu: number; wall: number }[];
}

/** Counters of the agent summed over what the storms are judged by. */
interface Counts {
  exec: number;
  exit: number;
  kprobe: number;
  lost: number;
  drops: number;
}
async function counts(agent: BenchAgent, policy: string): Promise<Counts> {
  const st = await agent.status();
  const by = st.events.by_type;
  const lost = Object.values(st.events.lost).reduce((a, b) => a + b, 0);
  const pc = st.policies.find((p) => p.name === policy)?.counters ?? {};
  const drops = Object.entries(pc)
    .filter(([k]) => /drop|lost/.test(k))
    .reduce((a, [, v]) => a + v, 0);
  const kprobe = Object.entries(by)
    .filter(([k]) => k !== "process_exec" && k !== "process_exit")
    .reduce((a, [, v]) => a + v, 0);
  return { exec: by.process_exec ?? 0, exit: by.process_exit ?? 0, kprobe, lost, drops };
}
const diff = (a: Counts, b: Counts): Counts => ({ exec: b.exec - a.exec, exit: b.exit - a.exit, kprobe: b.kprobe - a.kprobe, lost: b.lost - a.lost, drops: b.drops - a.drops });

/** Waits until the agent's counters stop moving (it drained what the storm queued). */
async function settled(agent: BenchAgent, policy: string): Promise<Counts> {
  let last = await counts(agent, policy);
  for (let i = 0; i < 100; i++) {
    await Bun.sleep(200);
    const now = await counts(agent, policy);
    if (JSON.stringify(now) === JSON.stringify(last)) return now;
    last = now;
  }
  return last;
}

await runBench("process", "Process tracking and the event pipeline", async (args, section: BenchSection) => {
  const rounds = Math.floor(args.num("rounds", 7, 1));
  const stormSeconds = args.num("storm-seconds", 30, 0.5);
  const pipelineRecords = Math.floor(args.num("pipeline", 300_000, 5_000));
  prepareBenchHost("bench/process.ts");
  const dir = realpathSync(mkdtempSync("/tmp/ward-bench-process-"));
  const ncpu = cpus().length;
  try {
    const gen = LoadGenerator.build(dir);

    // 1. fork+exec+wait, default agent vs none
    const mode = { kind: "forkexec", path: TRUE } as const;
    const n = args.quick ? 20 : gen.calibrate(mode, 0.6, 100);
    const repeats = args.quick ? 1 : 2;
    const t = new AgentTreatment("ward agent, default set (process sensor)", dir);
    log(`fork+exec+wait: ${rounds} rounds of ${n}`);
    const pairs = await alternate(t, [{ name: "forkexec", run: () => gen.best(mode, n, repeats) }], rounds);
    const fe = summarizeRatios(pairs.get("forkexec")!);
    section.metrics.push(
      ratioMetric("forkexec_default", "fork+exec+wait of /bin/true, default agent (process tracking) vs none", fe, { op: "<=", value: 1.05 }, `${n} per run, ${((fe.offMedian / n) * 1e6).toFixed(0)} -> ${((fe.onMedian / n) * 1e6).toFixed(0)} us CPU each`),
    );

    // where the exec cost goes: run time of the process sensor's programs, stats on, and
    // how often the agent was woken (context switches of all its threads): a wakeup per
    // record preempts the forking task and costs it an irq_work each
    await t.start();
    try {
      const sw0 = contextSwitches(t.agent.pid);
      const runs = bpfRunTime(progIdsOf(t.agent.pid), n, () => gen.run(mode, n));
      const sw = contextSwitches(t.agent.pid) - sw0;
      const total = runs.reduce((a, r) => a + r.nsPerIteration, 0);
      section.profiles.push({
        explains: ["forkexec_default"],
        title: `process sensor: BPF run time over ${n} fork+exec+wait of /bin/true`,
        lines: [
          ...formatProgRuns(runs, "fork+exec+wait"),
          `total ${(total / 1000).toFixed(1)} us per fork+exec+wait of BPF run time against ${((fe.offMedian / n) * 1e6).toFixed(0)} us of CPU without the agent: ${((100 * total) / ((fe.offMedian / n) * 1e9)).toFixed(1)}%`,
          `agent context switches (all threads): ${(sw / n).toFixed(2)} per fork+exec+wait (3 records each)`,
        ],
      });
    } finally {
      await t.stop();
    }

    // 2. pipeline from a recorded dump
    log("recording a ring-buffer dump from an exec storm");
    const stormN = args.quick ? 100 : 1000;
    const records = await recordDump(() => Promise.all(Array.from({ length: ncpu }, (_, c) => gen.execStorm(TRUE, stormN, c))));
    if (records.length < stormN) throw new ProcessBenchError(`recorded only ${records.length} records from ${ncpu * stormN} execs`);
    const dumpFile = join(dir, "process.dump");
    writeDump(dumpFile, records);
    const replays = replayPinned(dumpFile, pipelineRecords, Math.max(3, rounds));
    const rates = replays.map((x) => x.cpu);
    const wallMedian = [...replays.map((x) => x.wall)].sort((a, b) => a - b)[replays.length >> 1]!;
    section.metrics.push(
      sampleMetric("pipeline_events_per_s", "event pipeline on one core (CPU 0): records decoded, enriched (process cache), encoded and serialized", "events/s", rates, { op: ">=", value: 300_000 }, `per CPU second of the replaying process; ${records.length} records recorded from ${ncpu} x ${stormN} execs, replayed to ${pipelineRecords} records per round; ${Math.round(wallMedian).toLocaleString("en-US")} events per wall second (median)`),
    );
    const profDir = join(dir, "prof");
    const profiledRate = replayPinned(dumpFile, pipelineRecords, 1, profDir)[0]!.cpu;
    const prof = readdirSync(profDir).find((f) => f.endsWith(".cpuprofile"));
    if (!prof) throw new ProcessBenchError("bun --cpu-prof wrote no profile");
    section.profiles.push({
      explains: ["pipeline_events_per_s"],
      title: `bun --cpu-prof of one replay (${pipelineRecords} records, ${Math.round(profiledRate).toLocaleString("en-US")} events per CPU second profiled), self time`,
      lines: topFunctions(join(profDir, prof), 10),
    });

    // 3. end to end through the agent
    const postFile = join(dir, "monitored");
    writeFileSync(postFile, "watched\n");
    const policyFile = join(dir, "post.yaml");
    writeFileSync(policyFile, secureOpenPolicy({ name: "bench-post", file: postFile, allowed: TRUE, action: "Post" }));
    const agent = new BenchAgent("ward agent --policy post.yaml", dir, { policies: [policyFile] });
    await agent.start();
    try {
      section.mechanisms["Post policy"] = (await agent.status()).policies.find((p) => p.name === "bench-post")?.hooks?.map((h) => h.mechanism.split(" (")[0]).join("; ") ?? "?";
      // exec storm from every core
      // as many execs per core as fill the storm's duration at the CPU cost measured above
      const execN = args.quick ? 50 : Math.max(200, Math.round(stormSeconds / (fe.offMedian / n)));
      let c0 = await settled(agent, "bench-post");
      let t0 = performance.now();
      await Promise.all(Array.from({ length: ncpu }, (_, c) => gen.execStorm(TRUE, execN, c)));
      const execWall = (performance.now() - t0) / 1000;
      const ex = diff(c0, await settled(agent, "bench-post"));
      const want = ncpu * execN;
      const missing = Math.max(0, want - ex.exec) + Math.max(0, want - ex.exit);
      section.metrics.push(
        metric({ id: "exec_storm_lost", name: `exec storm from ${ncpu} cores: exec+exit events missing or lost`, unit: "events", target: { op: "<=", value: 0 }, median: missing + ex.lost, min: missing + ex.lost, max: missing + ex.lost, rounds: 1, detail: `${want} execs in ${execWall.toFixed(1)} s; ${ex.exec} exec and ${ex.exit} exit events arrived, ${ex.lost} counted lost` }),
        metric({ id: "exec_storm_rate", name: `exec storm from ${ncpu} cores: execs per second`, unit: "execs/s", median: want / execWall, min: want / execWall, max: want / execWall, rounds: 1 }),
      );

      // open storm on the Post-monitored file from every core
      c0 = await settled(agent, "bench-post");
      t0 = performance.now();
      const opens = (await Promise.all(Array.from({ length: ncpu }, (_, c) => gen.openStorm(postFile, stormSeconds, { cpu: c })))).reduce((a, b) => a + b, 0);
      const openWall = (performance.now() - t0) / 1000;
      const os = diff(c0, await settled(agent, "bench-post"));
      const counted = os.kprobe + os.drops + os.lost;
      section.metrics.push(
        metric({ id: "open_storm_accounted", name: `open storm on a Post-monitored file from ${ncpu} cores: (events delivered + losses counted) / opens`, unit: "ratio", target: { op: ">=", value: 1 }, median: counted / opens, min: counted / opens, max: counted / opens, rounds: 1, detail: `${opens} opens in ${openWall.toFixed(1)} s (${Math.round(opens / openWall)}/s); ${os.kprobe} events delivered, ${os.drops + os.lost} counted lost` }),
        metric({ id: "open_storm_delivered", name: "open storm: events delivered per second", unit: "events/s", median: os.kprobe / openWall, min: os.kprobe / openWall, max: os.kprobe / openWall, rounds: 1 }),
      );

      // paced rates from one core until losses begin
      const step = args.quick ? 0.3 : Math.min(3, stormSeconds / 3);
      const tried: string[] = [];
      /** one paced step: "clean", "lossy", or "short" when the generator could not keep the pace */
      const trial = async (rate: number): Promise<"clean" | "lossy" | "short"> => {
        const a = await settled(agent, "bench-post");
        const done = await gen.openStorm(postFile, step, { cpu: 0, rate });
        const d = diff(a, await settled(agent, "bench-post"));
        const lost = d.drops + d.lost + Math.max(0, done - d.kprobe - d.drops - d.lost);
        tried.push(`${rate}/s: ${done} opens, ${d.kprobe} events, ${lost} lost`);
        if (done < 0.9 * rate * step) return "short";
        return lost > 0 ? "lossy" : "clean";
      };
      let lastClean = 0;
      let firstLossy = Number.NaN;
      // doubling from 5,000/s until a step loses, then two bisection steps between the last
      // clean rate and the first lossy one
      for (let i = 0, rate = args.quick ? 20_000 : 5_000; i < (args.quick ? 2 : 8); i++, rate *= 2) {
        const r = await trial(rate);
        if (r === "short") {
          tried.push("(the generator could not keep this pace)");
          break;
        }
        if (r === "lossy") {
          firstLossy = rate;
          break;
        }
        lastClean = rate;
      }
      for (let i = 0; i < (args.quick ? 0 : 2) && !Number.isNaN(firstLossy) && lastClean > 0; i++) {
        const mid = Math.round((lastClean + firstLossy) / 2 / 1000) * 1000;
        const r = await trial(mid);
        if (r === "short") break;
        if (r === "lossy") firstLossy = mid;
        else lastClean = mid;
      }
      const onset = Number.isNaN(firstLossy) ? lastClean : firstLossy;
      section.metrics.push(
        metric({ id: "loss_onset_rate", name: Number.isNaN(firstLossy) ? "paced open rate on the monitored file: no loss up to (highest rate reached)" : "paced open rate on the monitored file where loss begins", unit: "opens/s", median: onset, min: lastClean, max: onset, rounds: 1, detail: tried.join("; ") }),
      );
      section.notes.push(
        `end-to-end storms run about ${stormSeconds} s each (the issue asks 60 s; halved to keep the whole suite well inside 20 minutes on 2 cores), paced rates ${step} s per step, doubling from 5,000/s, then two bisection steps`,
      );
    } finally {
      await agent.stop();
    }
    section.notes.push("fork+exec CPU time is getrusage of the loop and its reaped children (the exec and exit programs run in the child), pinned to CPU 0");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
