// Enforcement benchmark: what a file rule costs, as on/off CPU-time ratios of the same
// pinned load measured in this run.
//  - open/close of an unrelated file with the talk's secure policy (security_file_open, file
//    Equal a secret path, matchBinaries NotIn an allowed binary) loaded through
//    `dist/ward agent --policy`, against no agent. The Override variant is tried first;
//    where the kernel refuses it (no BPF LSM) the Sigkill variant runs and the report says so.
//  - the same loop under bpftrace (Debian's) filtering sys_enter_openat by the same path and
//    killing the opener: the peer, in the same rounds. ward's ratio over bpftrace's is a metric.
//  - open/close of the protected file by the allowed binary (a copy of the load generator
//    the policy names): the guard decides "allowed" on every open; ratio and decisions/s.
//  - a getppid loop under the default agent (process sensor only): no file hook looks at it.
// Method (design.md, Performance doctrine): bench/lib/loadgen.c pinned to CPU 0, timed by its
// own CLOCK_PROCESS_CPUTIME_ID; each measurement is the least of --repeats short runs; the
// treatments take turns round by round and each round alternates the order of off and on;
// median of the per-round ratios with min-max. Each treatment is checked to be in effect
// before it is measured (cat of the secret is killed, the allowed binary reads it).
// After the rounds, bpf run time per program is read with kernel.bpf_stats_enabled on.
//
// Usage (root): bun run bench/enforce.ts [--rounds 7] [--seconds 0.3] [--repeats 3] [--quick] [--json]
import { mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../build/system.ts";
import { compatProcessesPossible } from "../src/sensors/compat-abi.ts";
import { alternate, type Measure, type Treatment } from "./lib/ab.ts";
import { AgentTreatment } from "./lib/agent.ts";
import { BenchChild } from "./lib/child.ts";
import { prepareBenchHost } from "./lib/host.ts";
import { LoadGenerator, type LoadMode } from "./lib/loadgen.ts";
import { bpfRunTime, formatProgRuns, progIdsOf } from "./lib/profile.ts";
import { assertKills, secureTreatment } from "./lib/secure.ts";
import { progress, ratioMetric, runBench, sampleMetric, type BenchSection } from "./lib/results.ts";
import { summarizeRatios, type Pair } from "./lib/stats.ts";

/** Quartiles (linear interpolation) of a sample. */
function quartiles(xs: readonly number[]): [number, number] {
  const v = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => {
    const i = (v.length - 1) * q;
    const lo = Math.floor(i);
    return v[lo]! + (v[Math.min(lo + 1, v.length - 1)]! - v[lo]!) * (i - lo);
  };
  return [at(0.25), at(0.75)];
}

class EnforceBenchError extends Error {
  override name = "EnforceBenchError";
}

const log = (m: string) => progress("enforce", m);

class BpftraceTreatment implements Treatment {
  readonly name = "bpftrace sys_enter_openat path filter";
  private child: BenchChild | undefined;
  readonly program: string;
  constructor(private readonly secret: string) {
    this.program = `tracepoint:syscalls:sys_enter_openat /str(args->filename) == "${secret}"/ { signal("SIGKILL"); }`;
  }
  async start(): Promise<void> {
    const child = BenchChild.start("bpftrace", "bpftrace", ["--unsafe", "-e", this.program]);
    this.child = child;
    await assertKills("bpftrace", this.secret, 60_000, () => child.assertRunning());
  }
  async stop(): Promise<void> {
    await this.child?.stop();
    this.child = undefined;
  }
  get pid(): number {
    const p = this.child?.pid;
    if (p === undefined) throw new EnforceBenchError("bpftrace is not running");
    return p;
  }
}

await runBench("enforce", "Enforcement: file rule cost on open/close, against no agent and bpftrace", async (args, section: BenchSection) => {
  const rounds = Math.floor(args.num("rounds", 7, 1));
  const seconds = args.num("seconds", 0.3, 0.02);
  const repeats = Math.floor(args.num("repeats", 3, 1));
  prepareBenchHost("bench/enforce.ts");
  ensureSystemPackages([["/usr/bin/bpftrace", "bpftrace"]]);

  const dir = realpathSync(mkdtempSync("/tmp/ward-bench-enforce-"));
  try {
    const secret = join(dir, "my/extremely/secret/file");
    const unrelated = join(dir, "unrelated");
    writeFileSync(unrelated, "not the secret\n");
    const gen = LoadGenerator.build(dir);
    // The allowed binary is the load generator itself, under the path the policy names.
    const allowed = gen.copyTo(join(dir, "my/loadgen"));

    const openMode: LoadMode = { kind: "open", path: unrelated };
    const secretMode: LoadMode = { kind: "open", path: secret };
    const ppidMode: LoadMode = { kind: "getppid" };
    const nOpen = gen.calibrate(openMode, seconds);
    const nPpid = gen.calibrate(ppidMode, seconds * 0.6, 200_000);
    const mOpen: Measure = { name: "open", run: () => gen.best(openMode, nOpen, repeats) };
    const mPpid: Measure = { name: "getppid", run: () => gen.best(ppidMode, nPpid, repeats) };
    const mAllowed: Measure = { name: "allowed", run: () => allowed.best(secretMode, nOpen, repeats) };

    const setup = await secureTreatment(dir, secret, allowed.binary, () => allowed.run(secretMode, 10));
    const secure = setup.treatment;
    const variant = setup.variant;
    const refusals = setup.refusal ? [`Override refused: ${setup.refusal}`] : [];
    log(`secure policy variant: ${variant}${refusals.length ? ` (${refusals.join("; ")})` : ""}`);

    const bpftrace = new BpftraceTreatment(secret);
    const dflt = new AgentTreatment("ward agent, default set (process sensor only)", dir);
    const plan: Array<{ key: string; t: Treatment; ms: Measure[] }> = [
      { key: "secure", t: secure, ms: [mOpen, mAllowed, mPpid] },
      { key: "bpftrace", t: bpftrace, ms: [mOpen, mPpid] },
      { key: "default", t: dflt, ms: [mOpen, mPpid] },
    ];
    const pairs = new Map<string, Pair[]>();
    for (let r = 0; r < rounds; r++) {
      for (const { key, t, ms } of plan) {
        log(`round ${r + 1}/${rounds}: ${t.name}`);
        const got = await alternate(t, ms, 1, r);
        for (const [m, ps] of got) pairs.set(`${key}.${m}`, [...(pairs.get(`${key}.${m}`) ?? []), ...ps]);
      }
    }
    const s = (k: string) => summarizeRatios(pairs.get(k)!);
    const sec = s("secure.open");
    const bt = s("bpftrace.open");
    const us = (k: string, side: "offMedian" | "onMedian") => ((s(k)[side] / nOpen) * 1e6).toFixed(2);
    section.metrics.push(
      ratioMetric("open_unrelated_secure", `open/close of an unrelated file, secure policy (${variant}) vs none`, sec, { op: "<=", value: 1.02 }, `${nOpen} iterations, ${us("secure.open", "offMedian")} -> ${us("secure.open", "onMedian")} us/iteration`),
      ratioMetric("open_unrelated_bpftrace", "open/close of an unrelated file, bpftrace path filter vs none (peer)", bt, undefined, `${us("bpftrace.open", "offMedian")} -> ${us("bpftrace.open", "onMedian")} us/iteration`),
    );
    // ward over bpftrace, paired by round (both measured in the same round, one after the other)
    const wb = sec.ratios.map((x, i) => x / bt.ratios[i]!);
    section.metrics.push(sampleMetric("open_unrelated_ward_over_bpftrace", "ward's open/close ratio over bpftrace's, per round", "ratio", wb, { op: "<=", value: 1.0 }));
    const al = s("secure.allowed");
    section.metrics.push(
      ratioMetric("open_protected_allowed", "open/close of the protected file by the allowed binary, secure policy vs none", al, undefined, `${us("secure.allowed", "offMedian")} -> ${us("secure.allowed", "onMedian")} us/iteration`),
      sampleMetric("open_protected_decisions", "guard decisions (allowed opens of the protected file) per CPU second", "decisions/s", pairs.get("secure.allowed")!.map((p) => nOpen / p.on)),
      ratioMetric("getppid_default", "getppid loop, default agent vs none", s("default.getppid"), { op: "<=", value: 1.01 }, `${nPpid} iterations`),
      ratioMetric("open_unrelated_default", "open/close of an unrelated file, default agent (process sensor only) vs none", s("default.open")),
      ratioMetric("getppid_secure", "getppid loop, secure policy vs none (control)", s("secure.getppid")),
      ratioMetric("getppid_bpftrace", "getppid loop, bpftrace vs none (control)", s("bpftrace.getppid")),
    );

    // Where the time goes: run time per BPF program over one open loop, stats on.
    for (const { key, t, pid, title } of [
      { key: "secure", t: secure as Treatment, pid: () => secure.agent.pid, title: `ward secure policy (${variant}): BPF run time over ${nOpen} open/close of an unrelated file` },
      { key: "bpftrace", t: bpftrace as Treatment, pid: () => bpftrace.pid, title: `bpftrace: BPF run time over ${nOpen} open/close of an unrelated file` },
    ]) {
      await t.start();
      try {
        const ids = progIdsOf(pid());
        const runs = bpfRunTime(ids, nOpen, () => gen.run(openMode, nOpen));
        const sum = s(`${key}.open`);
        const offNs = (sum.offMedian / nOpen) * 1e9;
        const diffNs = ((sum.onMedian - sum.offMedian) / nOpen) * 1e9;
        // Runs the loop itself causes per iteration: a program at every syscall exit runs for
        // the open and the close; one on the open syscalls' own tracepoints runs once.
        const perIteration = (name: string): number => (/sys_exit$/.test(name) ? 2 : /open_exit|sys_exit_open|sys_enter_open/.test(name) ? 1 : 0);
        const own = runs.reduce((n, r) => n + r.nsPerRun * perIteration(r.name), 0);
        section.profiles.push({
          explains: key === "secure" ? ["open_unrelated_secure", "open_unrelated_ward_over_bpftrace"] : ["open_unrelated_bpftrace"],
          title,
          lines: [
            ...formatProgRuns(runs, "open/close iteration"),
            `the loop's own runs (2 per iteration for a program at every syscall exit, 1 for one on the open syscalls only): ${own.toFixed(0)} ns of BPF run time per iteration, ${((100 * own) / offNs).toFixed(1)}% of the ${offNs.toFixed(0)} ns iteration without it`,
            diffNs > own
              ? `measured on - off in the A/B rounds: ${diffNs.toFixed(0)} ns per iteration; the ${(diffNs - own).toFixed(0)} ns not in the programs' run time is the cost of reaching them (the trampoline or tracepoint dispatch on the syscall path) and of what they disturb (caches, branch predictors)`
              : `measured on - off in the A/B rounds: ${diffNs.toFixed(0)} ns per iteration, less than the run time counted with stats on (counting adds its own cost per run, and the A/B medians carry this run's noise)`,
          ],
        });
      } finally {
        await t.stop();
      }
    }

    const compat = compatProcessesPossible();
    section.mechanisms["secure policy variant"] = variant;
    if (setup.refusal) section.mechanisms["Override"] = `refused by the agent: ${setup.refusal}`;
    section.mechanisms["IA32 emulation probe (src/sensors/compat-abi.ts)"] = compat.reason;
    // the short form: where the open check sits ("here on ..." in the status line)
    const placement = /here on (.+?), (?:at|decided)/.exec(setup.mechanism())?.[1] ?? /\bon ([\w/]+sys_exit[\w*]*)/.exec(setup.mechanism())?.[1];
    section.mechanisms["guard open check attached to"] = placement ?? "(not stated in /v1/status)";
    section.mechanisms["file guard placement (/v1/status)"] = setup.mechanism();
    section.mechanisms["bpftrace program"] = bpftrace.program;
    section.notes.push(
      `CPU time (CLOCK_PROCESS_CPUTIME_ID) of bench/lib/loadgen.c pinned to CPU 0; each measurement the least of ${repeats} runs; treatments take turns per round, off/on order alternating.`,
      // The spread the median hides: with an agent started and stopped per round, rounds are
      // few and their sides seconds apart; bench/fanotify-marks.ts measures the fanotify part
      // of the unrelated-file cost with many short in-process rounds.
      ...["secure.open", "default.getppid", "secure.getppid", "bpftrace.open"].map((k) => {
        const q = quartiles(s(k).ratios);
        return `${k}: quartiles of the per-round ratios ${q[0].toFixed(3)} – ${q[1].toFixed(3)} (median ${s(k).median.toFixed(3)}, floor ${s(k).floorRatio.toFixed(3)})`;
      }),
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
