// Per-thread CPU time of this process (/proc/self/task/*/stat utime+stime, clock ticks), for
// telling a worker's CPU from the runtime's helper threads (GC, JIT) in a bench.
import { readdirSync, readFileSync } from "node:fs";

export interface ThreadCpu {
  tid: number;
  comm: string;
  /** user + system, in clock ticks (1/100 s) */
  ticks: number;
}

export function threadCpu(): ThreadCpu[] {
  const out: ThreadCpu[] = [];
  for (const t of readdirSync("/proc/self/task")) {
    let text: string;
    try {
      text = readFileSync(`/proc/self/task/${t}/stat`, "latin1");
    } catch {
      continue; // the thread ended
    }
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const f = text.slice(close + 2).split(" ");
    out.push({ tid: Number(t), comm, ticks: Number(f[11]) + Number(f[12]) });
  }
  return out;
}

/** CPU ticks each thread used between two snapshots, busiest first (threads that used none left out). */
export function threadCpuDelta(before: ThreadCpu[], after: ThreadCpu[]): { tid: number; comm: string; ticks: number }[] {
  const was = new Map(before.map((t) => [t.tid, t.ticks]));
  return after
    .map((t) => ({ tid: t.tid, comm: t.comm, ticks: t.ticks - (was.get(t.tid) ?? 0) }))
    .filter((t) => t.ticks > 0)
    .sort((a, b) => b.ticks - a.ticks);
}
