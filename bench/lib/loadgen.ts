// The pinned load generator (loadgen.c, compiled at bench time with the system cc): a loop of
// one syscall kind that reports its own CPU time (CLOCK_PROCESS_CPUTIME_ID). It is pinned to
// CPU 0 with taskset because the two vCPUs of these VMs differ in speed (design.md,
// Performance doctrine): the A and B runs must meet the same CPU.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";

export class LoadGenError extends Error {
  override name = "LoadGenError";
}

export type LoadMode = { kind: "open"; path: string } | { kind: "getppid" };

export class LoadGenerator {
  private constructor(
    readonly binary: string,
    /** the CPU every run is pinned to */
    readonly cpu: number,
  ) {}

  /** Compile loadgen.c into dir (gcc from Debian when missing). */
  static build(dir: string, cpu = 0): LoadGenerator {
    ensureSystemPackages([["/usr/bin/cc", "gcc"]]);
    if (!existsSync("/usr/bin/taskset")) throw new LoadGenError("taskset is missing (Debian util-linux): runs cannot be pinned");
    const out = join(dir, "loadgen");
    const r = spawnSync("cc", ["-O2", "-o", out, join(import.meta.dir, "loadgen.c")], { encoding: "utf8" });
    if (r.status !== 0) throw new LoadGenError(`cc loadgen.c failed: ${r.stderr || r.error?.message}`);
    return new LoadGenerator(out, cpu);
  }

  /** CPU seconds the loop of n iterations took, measured by the loop itself. */
  run(mode: LoadMode, n: number): number {
    const args = mode.kind === "open" ? ["open", String(n), mode.path] : ["getppid", String(n)];
    const r = spawnSync("taskset", ["-c", String(this.cpu), this.binary, ...args], { encoding: "utf8", timeout: 120_000 });
    if (r.signal !== null) throw new LoadGenError(`load generator ${args.join(" ")} died by ${r.signal} (a rule under test that matches the load itself would do this)`);
    if (r.status !== 0) throw new LoadGenError(`load generator ${args.join(" ")} failed (exit ${r.status}): ${r.stderr}`);
    const ns = Number(r.stdout.trim());
    if (!Number.isFinite(ns) || ns <= 0) throw new LoadGenError(`load generator printed ${JSON.stringify(r.stdout)}`);
    return ns / 1e9;
  }

  /**
   * The least CPU time of `repeats` runs. Interference from other work on the machine
   * (interrupts, cache and TLB pollution, frequency changes) only ever adds CPU time to a
   * run, so the minimum of a few short runs is steadier than one long run.
   */
  best(mode: LoadMode, n: number, repeats: number): number {
    let min = Number.POSITIVE_INFINITY;
    for (let i = 0; i < repeats; i++) min = Math.min(min, this.run(mode, n));
    return min;
  }

  /**
   * Iterations that take about targetSeconds of CPU, from a short calibration run, so the
   * bench stays within its time budget on faster or slower machines.
   */
  calibrate(mode: LoadMode, targetSeconds: number, probe = 20_000): number {
    this.run(mode, probe); // warm the page cache, dentries and the binary
    const secs = this.run(mode, probe);
    return Math.max(probe, Math.round((probe * targetSeconds) / secs));
  }
}
