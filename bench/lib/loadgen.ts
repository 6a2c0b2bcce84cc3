// The pinned load generator (loadgen.c, compiled at bench time with the system cc): loops of
// one kind of work that report their own CPU time (CLOCK_PROCESS_CPUTIME_ID, or getrusage
// where children do the work). CPU-timed runs are pinned to one CPU with taskset because
// the two vCPUs of these VMs differ in speed (design.md, Performance doctrine): the A and
// B runs must meet the same CPU.
import { spawn, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";

export class LoadGenError extends Error {
  override name = "LoadGenError";
}

/** The CPU-timed loops: each prints the CPU nanoseconds it spent. */
export type LoadMode = { kind: "open"; path: string } | { kind: "getppid" } | { kind: "forkexec"; path: string };

export const LOADGEN_SOURCE = join(import.meta.dir, "loadgen.c");

function argsOf(mode: LoadMode, n: number): string[] {
  switch (mode.kind) {
    case "open":
      return ["open", String(n), mode.path];
    case "getppid":
      return ["getppid", String(n)];
    case "forkexec":
      return ["forkexec", String(n), mode.path];
  }
}

export class LoadGenerator {
  private constructor(
    readonly binary: string,
    /** the CPU every timed run is pinned to */
    readonly cpu: number,
    /** a cgroup v2 directory every run starts in (its pid written to cgroup.procs before the exec) */
    readonly cgroup?: string,
  ) {}

  /** The same generator, each run started inside the cgroup directory `dir`. */
  inCgroup(dir: string): LoadGenerator {
    return new LoadGenerator(this.binary, this.cpu, dir);
  }

  /** argv of one pinned run: taskset, or a shell that first moves itself into the cgroup. */
  private argv(args: string[]): [string, string[]] {
    const pinned = ["taskset", "-c", String(this.cpu), this.binary, ...args];
    if (this.cgroup === undefined) return [pinned[0]!, pinned.slice(1)];
    return ["sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', this.cgroup, ...pinned]];
  }

  /** Compile loadgen.c into dir (gcc from Debian when missing; apt's output goes to stderr). */
  static build(dir: string, cpu = 0): LoadGenerator {
    ensureSystemPackages([["/usr/bin/cc", "gcc"]]);
    if (!existsSync("/usr/bin/taskset")) throw new LoadGenError("taskset is missing (Debian util-linux): runs cannot be pinned");
    const out = join(dir, "loadgen");
    const r = spawnSync("cc", ["-O2", "-o", out, LOADGEN_SOURCE], { encoding: "utf8" });
    if (r.status !== 0) throw new LoadGenError(`cc loadgen.c failed: ${r.stderr || r.error?.message}`);
    return new LoadGenerator(out, cpu);
  }

  /** The same generator under another path (a policy can then name it as its allowed binary). */
  copyTo(path: string): LoadGenerator {
    mkdirSync(dirname(path), { recursive: true });
    copyFileSync(this.binary, path);
    return new LoadGenerator(path, this.cpu, this.cgroup);
  }

  private check(args: string[], r: ReturnType<typeof spawnSync>): string {
    if (r.error) throw new LoadGenError(`load generator ${args.join(" ")}: ${r.error.message}`);
    if (r.signal !== null) throw new LoadGenError(`load generator ${args.join(" ")} died by ${r.signal} (a rule under test that matches the load itself would do this)`);
    if (r.status !== 0) throw new LoadGenError(`load generator ${args.join(" ")} failed (exit ${r.status}): ${String(r.stderr)}`);
    return String(r.stdout).trim();
  }

  /** CPU seconds the loop of n iterations took, measured by the loop itself. */
  run(mode: LoadMode, n: number): number {
    const args = argsOf(mode, n);
    const [cmd, argv] = this.argv(args);
    const r = spawnSync(cmd, argv, { encoding: "utf8", timeout: 300_000 });
    const out = this.check(args, r);
    const ns = Number(out);
    if (!Number.isFinite(ns) || ns <= 0) throw new LoadGenError(`load generator printed ${JSON.stringify(out)}`);
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
    return Math.max(1, Math.round((probe * targetSeconds) / secs));
  }

  /** Runs a command once (not pinned: a real workload uses every core); wall and CPU seconds of its whole tree. */
  command(argv: string[], cwd: string): { wall: number; cpu: number } {
    const args = ["run", ...argv];
    const r = spawnSync(this.binary, args, { cwd, encoding: "utf8", timeout: 600_000 });
    const out = this.check(args, r);
    const [wall, cpu] = out.split(/\s+/).map(Number);
    if (!Number.isFinite(wall) || !Number.isFinite(cpu) || wall! <= 0) throw new LoadGenError(`load generator run printed ${JSON.stringify(out)}`);
    return { wall: wall! / 1e9, cpu: cpu! / 1e9 };
  }

  /**
   * An open storm on `cpu`: as fast as it can (rate undefined) or paced at `rate` opens per
   * second, for `seconds` of wall time; resolves to the opens done.
   */
  openStorm(path: string, seconds: number, opts: { cpu: number; rate?: number }): Promise<number> {
    const args = opts.rate === undefined ? ["openfor", String(seconds), path] : ["openrate", String(opts.rate), String(seconds), path];
    return this.async(args, opts.cpu).then(Number);
  }

  /** n fork+exec+wait of `path` on `cpu`, as a storm (not timed by CPU). */
  execStorm(path: string, n: number, cpu: number): Promise<number> {
    return this.async(["forkexec", String(n), path], cpu).then(() => n);
  }

  /** The probe: opens `path` every 100 us until something kills it. */
  probe(path: string): { pid: number; ended: Promise<string> } {
    const child = spawn(this.binary, ["probe", path], { stdio: ["ignore", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (d: Buffer) => (err += d.toString()));
    const ended = new Promise<string>((resolve) => child.on("exit", (code, sig) => resolve(sig ?? `exit ${code}: ${err.trim()}`)));
    if (child.pid === undefined) throw new LoadGenError("probe did not start");
    return { pid: child.pid, ended };
  }

  private async(args: string[], cpu: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const child = spawn("taskset", ["-c", String(cpu), this.binary, ...args], { stdio: ["ignore", "pipe", "pipe"] });
      let out = "";
      let err = "";
      child.stdout.on("data", (d: Buffer) => (out += d.toString()));
      child.stderr.on("data", (d: Buffer) => (err += d.toString()));
      child.on("error", (e) => reject(new LoadGenError(`load generator ${args.join(" ")}: ${e.message}`)));
      child.on("exit", (code, sig) => {
        if (sig !== null) reject(new LoadGenError(`load generator ${args.join(" ")} died by ${sig}`));
        else if (code !== 0) reject(new LoadGenError(`load generator ${args.join(" ")} failed (exit ${code}): ${err}`));
        else resolve(out.trim());
      });
    });
  }
}
