// Where the pipeline's time goes, stage by stage, over the recorded dump (bench/pipeline.ts's
// replay): consume only (the ring loop and a DataView per record), + decode, + decode and
// cache, + the whole pipeline (the Tetragon line). Each figure is CPU ns per exported event
// (median of 5 runs), so the differences are what each stage costs; pinned to CPU 0.
//
//   bun run bench/pipeline-stages.ts [--events 300000]
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import type { ProcessRecord } from "../src/events/process-record.ts";
import { cachedProcessDump, DumpReplayer } from "./lib/process-dump.ts";
import { replayPipeline } from "./pipeline.ts";
import { median } from "./lib/stats.ts";

const pinned = (): boolean => readFileSync("/proc/self/status", "utf8").match(/Cpus_allowed_list:\s*(\S+)/)?.[1] === "0";
if (!pinned()) {
  const r = spawnSync("taskset", ["-c", "0", process.execPath, "run", import.meta.path, ...process.argv.slice(2)], { stdio: "inherit" });
  process.exit(r.status ?? 1);
}
const i = process.argv.indexOf("--events");
const target = i >= 0 ? Number(process.argv[i + 1]) : 300_000;
const dump = await cachedProcessDump(2000);

let sink = 0;
const { pipe, dec, cache } = replayPipeline(dump, (ev) => {
  const line = ev.bytes; // what the sinks take, as in bench/pipeline.ts
  sink += line[line.length >> 1]!;
});
const r = new DumpReplayer(dump, dec);
// Exported events per round (exec + exit records), to turn records into per-event figures.
let perRound = 0;
r.round((v) => {
  const op = dec.opOf(v);
  if (op === "exec" || op === "exit") perRound++;
});

type Stage = [string, (v: DataView) => void];
let keep: ProcessRecord | undefined;
const stages: Stage[] = [
  ["consume", (v) => void (sink += v.byteLength)],
  ["decode", (v) => void (keep = dec.decode(v))],
  [
    "decode+cache",
    (v) => {
      const rec = dec.decode(v);
      if (rec.op === "clone") cache.track(rec);
      else if (rec.op === "exec") cache.exec(rec);
      else cache.exit(rec);
    },
  ],
  ["pipeline", (v) => pipe.handle(v)],
];

function run(cb: (v: DataView) => void): number {
  let events = 0;
  let micros = 0;
  while (events < target) {
    const c0 = process.cpuUsage();
    r.deliver(cb);
    cache.gc();
    const cu = process.cpuUsage(c0);
    micros += cu.user + cu.system;
    events += perRound;
    r.advance();
  }
  return (micros * 1000) / events;
}

for (const [, cb] of stages) for (let w = 0; w < 3; w++) r.round(cb); // warm every stage's code
const out: Record<string, number[]> = {};
for (let k = 0; k < 5; k++) for (const [name, cb] of stages) (out[name] ??= []).push(run(cb));
let prev = 0;
for (const [name] of stages) {
  const m = median(out[name]!);
  process.stdout.write(`${name.padEnd(14)} ${m.toFixed(0).padStart(6)} ns/event  (+${(m - prev).toFixed(0)})\n`);
  prev = m;
}
if (sink < 0 || keep === null) throw new Error("unreachable");
