// Profiles that explain a cost from measured data:
//  - bpfRunTime: the kernel's own accounting of BPF program run time (run_time_ns and run_cnt
//    per program, what kernel.bpf_stats_enabled=1 turns on; `bpftool prog show --json` reads
//    them). Stats are switched on only around the profiled run, never during the A/B rounds,
//    because counting adds its own cost to every program run. They are switched on through
//    BPF_ENABLE_STATS, an fd the kernel counts as a reference, not by writing the sysctl: a
//    concurrent test that sets and restores the sysctl then never sees it flipped under it.
//  - topFunctions: self time per function from a `bun --cpu-prof` .cpuprofile.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { BpfCmd } from "../../src/bpf/constants.ts";
import { bpf, close } from "../../src/bpf/sys.ts";

/** BPF_STATS_RUN_TIME: the one stats type of BPF_ENABLE_STATS */
const BPF_STATS_RUN_TIME = 0;

interface ProgInfo {
  id: number;
  name: string;
  type: string;
  runTimeNs: number;
  runCnt: number;
}

export class ProfileError extends Error {
  override name = "ProfileError";
}

/** Every loaded BPF program with its counters. */
export function bpfPrograms(): ProgInfo[] {
  const r = spawnSync("bpftool", ["prog", "show", "--json"], { encoding: "utf8", maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new ProfileError(`bpftool prog show: ${r.stderr || r.error?.message}`);
  const list = JSON.parse(r.stdout) as Array<{ id: number; name?: string; type: string; run_time_ns?: number; run_cnt?: number }>;
  return list.map((p) => ({ id: p.id, name: p.name ?? "", type: p.type, runTimeNs: p.run_time_ns ?? 0, runCnt: p.run_cnt ?? 0 }));
}

export interface ProgRun {
  id: number;
  name: string;
  type: string;
  runs: number;
  nsPerRun: number;
  /**
   * ns of this program per iteration of the profiled load: all its run time over the
   * iterations, so runs caused by other processes during the load count too (an upper bound)
   */
  nsPerIteration: number;
}

/**
 * Runs `load` (which performs `iterations` iterations of something) with BPF stats on and
 * returns the programs among `ids` (the treatment's, told apart from programs of other work
 * on the machine) that ran, with their ns per run.
 */
export function bpfRunTime(ids: ReadonlySet<number>, iterations: number, load: () => void): ProgRun[] {
  const attr = new Uint8Array(8);
  new DataView(attr.buffer).setUint32(0, BPF_STATS_RUN_TIME, true);
  const statsFd = bpf(BpfCmd.ENABLE_STATS, attr);
  let before: Map<number, ProgInfo>;
  let after: ProgInfo[];
  try {
    before = new Map(bpfPrograms().map((p) => [p.id, p]));
    load();
    after = bpfPrograms();
  } finally {
    close(statsFd);
  }
  const out: ProgRun[] = [];
  for (const p of after) {
    if (!ids.has(p.id)) continue;
    const b = before.get(p.id);
    const runs = p.runCnt - (b?.runCnt ?? 0);
    const ns = p.runTimeNs - (b?.runTimeNs ?? 0);
    if (runs <= 0) continue;
    out.push({ id: p.id, name: p.name, type: p.type, runs, nsPerRun: ns / runs, nsPerIteration: ns / iterations });
  }
  return out.sort((a, b) => b.nsPerIteration - a.nsPerIteration);
}

/**
 * Ids of the BPF programs a process holds (its program and link fds name them in fdinfo as
 * prog_id), so programs that concurrent work on the machine loaded are told apart; bpftool
 * here cannot list owners (its pids field is empty).
 */
export function progIdsOf(pid: number): Set<number> {
  const out = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fdinfo`);
  } catch (e) {
    throw new ProfileError(`read /proc/${pid}/fdinfo: ${(e as Error).message}`);
  }
  for (const fd of fds) {
    let info: string;
    try {
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
    } catch {
      continue; // closed meanwhile
    }
    const m = /^prog_id:\s+(\d+)/m.exec(info);
    if (m) out.add(Number(m[1]));
  }
  return out;
}

function ns(x: number): string {
  return x >= 1e6 ? `${(x / 1e6).toFixed(2)} ms` : x >= 1e4 ? `${(x / 1e3).toFixed(1)} us` : `${x.toFixed(0)} ns`;
}

export function formatProgRuns(runs: readonly ProgRun[], perIteration: string): string[] {
  if (runs.length === 0) return ["no program of the treatment ran during the profiled load"];
  return runs.map(
    (r) => `${r.type} ${r.name || `#${r.id}`}: ${r.runs.toLocaleString("en-US")} runs, ${r.nsPerRun.toFixed(0)} ns/run, ${ns(r.nsPerIteration)} per ${perIteration} (all runs on the machine during the load)`,
  );
}

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string; lineNumber: number } }>;
  samples: number[];
  timeDeltas: number[];
}

/** The `top` functions by self time of a .cpuprofile, as "42.1% name (file:line)". */
export function topFunctions(file: string, top = 8): string[] {
  const p = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const byNode = new Map(p.nodes.map((n) => [n.id, n.callFrame]));
  const self = new Map<string, number>();
  let total = 0;
  p.samples.forEach((id, i) => {
    const f = byNode.get(id);
    const dt = p.timeDeltas[i] ?? 0;
    total += dt;
    if (!f) return;
    const file = f.url.replace(/^.*\/(src|bench|node_modules)\//, "$1/");
    const key = `${f.functionName || "(anonymous)"} (${file || "native"}${f.url ? `:${f.lineNumber + 1}` : ""})`;
    self.set(key, (self.get(key) ?? 0) + dt);
  });
  if (total <= 0) return ["the profile holds no samples"];
  return [...self.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, top)
    .map(([k, v]) => `${((100 * v) / total).toFixed(1)}% ${k}`);
}
