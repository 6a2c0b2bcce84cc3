// Process sensor benchmark. Prints ratios measured in this run, never bare wall-clock claims:
//  1. fork+exec+exit cost with the sensor on vs. off: a shell loop forks and execs /bin/true
//     N times, pinned to CPU 0 (taskset -c 0); its CPU time (user+sys of the shell and its
//     children, where the tp_btf programs run) is compared between runs with the sensor
//     attached and detached, alternating A/B; reports the median ratio and its spread.
//  2. userspace pipeline throughput: synthetic clone/exec/exit records (layouts from the
//     object's BTF) decoded, cached, encoded to Tetragon JSON and stringified per second.
//  3. this process's memory after the storms, and the cache size.
// Usage (root): bun run bench/process.ts [--rounds 7] [--n 500] [--pipeline 100000]
import { spawnSync } from "node:child_process";
import { realpathSync } from "node:fs";
import { readObject } from "../src/bpf/objects.ts";
import { loadCollectionSpec } from "../src/bpf/collection.ts";
import { ProcessCache } from "../src/events/process-cache.ts";
import { ProcessPipeline } from "../src/events/process-pipeline.ts";
import { ProcessRecordDecoder } from "../src/events/process-record.ts";
import { BootClock } from "../src/events/time.ts";
import { startProcessSensor } from "../src/sensors/process.ts";

function arg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

const rounds = arg("rounds", 7);
const n = arg("n", 500);
const pipelineN = arg("pipeline", 100_000);
const TRUE = realpathSync("/bin/true");
const SH = realpathSync("/bin/sh");

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/**
 * CPU seconds (user+sys, the shell and its children) of a pinned fork/exec loop of n /bin/true,
 * from the shell's own `times` builtin (10 ms ticks; a run is seconds of CPU).
 */
function forkExecCpu(): number {
  const script = `i=0; while [ $i -lt ${n} ]; do ${TRUE}; i=$((i+1)); done; times`;
  const r = spawnSync("taskset", ["-c", "0", SH, "-c", script], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`load generator failed: ${r.stderr}`);
  let total = 0;
  for (const m of r.stdout.matchAll(/(\d+)m([\d.]+)s/g)) total += Number(m[1]) * 60 + Number(m[2]);
  if (total === 0) throw new Error(`load generator: no times in ${JSON.stringify(r.stdout)}`);
  return total;
}

async function overhead(): Promise<{ off: number[]; on: number[]; ratios: number[]; events: number; lost: number }> {
  const off: number[] = [];
  const on: number[] = [];
  let events = 0;
  let lost = 0;
  forkExecCpu(); // warm caches (page cache, dentries) before measuring
  for (let i = 0; i < rounds; i++) {
    off.push(forkExecCpu());
    const s = await startProcessSensor({ nodeName: "bench", onEvent: (ev) => void JSON.stringify(ev.json) });
    on.push(forkExecCpu());
    await Bun.sleep(200);
    await s.stop();
    const c = s.counters();
    events += c.exec + c.exit;
    lost += c.kernelLost.exec + c.kernelLost.exit + c.kernelLost.clone;
  }
  return { off, on, ratios: on.map((v, i) => v / off[i]!), events, lost };
}

/** Decode + cache + encode + stringify throughput over synthetic records. */
function pipelineRate(): { eventsPerSec: number; recordsPerSec: number; cacheSize: number } {
  const spec = loadCollectionSpec(readObject("process"), "process");
  const dec = new ProcessRecordDecoder(spec.btf!);
  const cache = new ProcessCache({ nodeName: "bench", maxEntries: 65536 });
  let bytes = 0;
  const pipe = new ProcessPipeline(dec, cache, { nodeName: "bench", clock: new BootClock() }, (ev) => {
    bytes += JSON.stringify(ev.json).length;
  });
  const enc = new TextEncoder();
  const bin = enc.encode(TRUE);
  const args = enc.encode("true\0--flag\0some argument\0/tmp/x\0");
  const cwd = enc.encode("/home/user/project");
  const ex = new Uint8Array(dec.exec.offset("data") + bin.length + args.length + cwd.length);
  const exv = new DataView(ex.buffer);
  exv.setUint8(dec.hdr.offset("op"), 1);
  exv.setUint16(dec.exec.offset("binary_len"), bin.length, true);
  exv.setUint16(dec.exec.offset("args_len"), args.length, true);
  exv.setUint16(dec.exec.offset("cwd_len"), cwd.length, true);
  exv.setUint32(dec.exec.offset("flags"), 0x1 | 0x4000, true);
  ex.set(bin, dec.exec.offset("data"));
  ex.set(args, dec.exec.offset("data") + bin.length);
  ex.set(cwd, dec.exec.offset("data") + bin.length + args.length);
  const cl = new Uint8Array(dec.clone.size);
  const clv = new DataView(cl.buffer);
  clv.setUint8(dec.hdr.offset("op"), 2);
  clv.setUint32(dec.clone.offset("flags"), 0x4000, true);
  const xt = new Uint8Array(dec.exit.size);
  const xtv = new DataView(xt.buffer);
  xtv.setUint8(dec.hdr.offset("op"), 3);
  // A parent that forks everything.
  exv.setUint32(dec.exec.offset("pid"), 1, true);
  exv.setBigUint64(dec.exec.offset("ktime"), 1n, true);
  pipe.handle(exv);
  const t0 = performance.now();
  for (let i = 0; i < pipelineN; i++) {
    const pid = 1000 + (i % 4_000_000);
    const k = BigInt(10 + i * 3);
    clv.setUint32(dec.clone.offset("pid"), pid, true);
    clv.setUint32(dec.clone.offset("ppid"), 1, true);
    clv.setBigUint64(dec.clone.offset("ktime"), k, true);
    clv.setBigUint64(dec.clone.offset("parent_ktime"), 1n, true);
    pipe.handle(clv);
    exv.setUint32(dec.exec.offset("pid"), pid, true);
    exv.setUint32(dec.exec.offset("ppid"), 1, true);
    exv.setBigUint64(dec.exec.offset("ktime"), k + 1n, true);
    exv.setBigUint64(dec.exec.offset("parent_ktime"), 1n, true);
    pipe.handle(exv);
    xtv.setUint32(dec.exit.offset("pid"), pid, true);
    xtv.setBigUint64(dec.exit.offset("ktime"), k + 1n, true);
    pipe.handle(xtv);
  }
  const secs = (performance.now() - t0) / 1000;
  if (bytes === 0) throw new Error("pipeline produced nothing");
  return { eventsPerSec: (2 * pipelineN) / secs, recordsPerSec: (3 * pipelineN) / secs, cacheSize: cache.stats().size };
}

if (process.getuid?.() !== 0) {
  process.stderr.write("bench/process.ts needs root (it loads BPF programs)\n");
  process.exit(1);
}

const o = await overhead();
const med = median(o.ratios);
const spread = [Math.min(...o.ratios), Math.max(...o.ratios)];
const mem1 = process.memoryUsage();
const p = pipelineRate();
Bun.gc(true);
const mem2 = process.memoryUsage();
const mb = (b: number) => (b / 1048576).toFixed(1);

const report = {
  forkExec: {
    loopsPerRun: n,
    rounds,
    cpuSecondsOff: o.off.map((x) => Number(x.toFixed(2))),
    cpuSecondsOn: o.on.map((x) => Number(x.toFixed(2))),
    medianRatioOnOff: Number(med.toFixed(3)),
    ratioSpread: spread.map((x) => Number(x.toFixed(3))),
    perExecOverheadUs: Number((((median(o.on) - median(o.off)) / n) * 1e6).toFixed(1)),
    eventsDelivered: o.events,
    kernelLost: o.lost,
  },
  pipeline: {
    records: 3 * pipelineN,
    eventsPerSec: Math.round(p.eventsPerSec),
    recordsPerSec: Math.round(p.recordsPerSec),
    cacheSizeAfter: p.cacheSize,
  },
  memory: {
    rssAfterStormsMB: Number(mb(mem1.rss)),
    heapUsedAfterStormsMB: Number(mb(mem1.heapUsed)),
    rssAfterPipelineMB: Number(mb(mem2.rss)),
    heapUsedAfterPipelineMB: Number(mb(mem2.heapUsed)),
  },
};
process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
process.stdout.write(
  `fork+exec+exit CPU time, sensor on/off: median ${med.toFixed(3)} (spread ${spread[0]!.toFixed(3)}-${spread[1]!.toFixed(3)}, ${rounds} A/B rounds of ${n}); pipeline ${Math.round(p.eventsPerSec)} events/s\n`,
);
