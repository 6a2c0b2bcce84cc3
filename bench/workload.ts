// A real workload: building a small C project (the bench's own load generator compiled as
// --objects separate programs by `make -j2 -B`) with the default agent plus the talk's secure
// policy, against no agent. Wall time and CPU time (the whole make tree, from getrusage in
// bench/lib/loadgen.c `run`) per round, A/B alternating. The build is not pinned: it is a
// two-job build on this two-core machine, as a user would run it. Tetragon's maintainers
// measured +10.6% wall time on a kernel build with openat/close hooks (reference/peers.md).
// Usage (root): bun run bench/workload.ts [--rounds 7] [--objects 50] [--quick] [--json]
import { copyFileSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../build/system.ts";
import { prepareBenchHost } from "./lib/host.ts";
import { LOADGEN_SOURCE, LoadGenerator } from "./lib/loadgen.ts";
import { bpfRunTime, formatProgRuns, progIdsOf } from "./lib/profile.ts";
import { progress, ratioMetric, runBench, type BenchSection } from "./lib/results.ts";
import { secureTreatment } from "./lib/secure.ts";
import { summarizeRatios, type Pair } from "./lib/stats.ts";

await runBench("workload", "Real workload: a small C project built with make -j2", async (args, section: BenchSection) => {
  const rounds = Math.floor(args.num("rounds", 7, 1));
  const objects = Math.floor(args.num("objects", 50, 2));
  prepareBenchHost("bench/workload.ts");
  ensureSystemPackages([
    ["/usr/bin/make", "make"],
    ["/usr/bin/cc", "gcc"],
  ]);
  const dir = realpathSync(mkdtempSync("/tmp/ward-bench-workload-"));
  try {
    const gen = LoadGenerator.build(dir);
    const allowed = gen.copyTo(join(dir, "allowed-loadgen"));
    const secret = join(dir, "secret/file");
    const project = join(dir, "project");
    mkdirSync(project);
    copyFileSync(LOADGEN_SOURCE, join(project, "loadgen.c"));
    const targets = Array.from({ length: objects }, (_, i) => `out/gen${i}`);
    writeFileSync(
      join(project, "Makefile"),
      `all: ${targets.join(" ")}\n\nout/gen%: loadgen.c\n\t@mkdir -p out\n\tcc -O2 -o $@ loadgen.c\n`,
    );
    const build = () => gen.command(["make", "-s", "-j2", "-B", "-C", project], dir);
    build(); // warm: page cache, cc's own files

    const setup = await secureTreatment(dir, secret, allowed.binary, () => allowed.run({ kind: "open", path: secret }, 10));
    progress("workload", `${rounds} rounds of ${objects} compiles, agent with the secure policy (${setup.variant})`);
    // Wall and CPU come from the same build, so this loop alternates by hand (off->on,
    // then on->off) instead of through ab.ts, whose measures return one number.
    const wall: Pair[] = [];
    const cpu: Pair[] = [];
    for (let r = 0; r < rounds; r++) {
      const got: { off?: { wall: number; cpu: number }; on?: { wall: number; cpu: number } } = {};
      for (const side of r % 2 === 0 ? (["off", "on"] as const) : (["on", "off"] as const)) {
        if (side === "off") {
          got.off = build();
          continue;
        }
        await setup.treatment.start();
        try {
          got.on = build();
        } finally {
          await setup.treatment.stop();
        }
      }
      wall.push({ off: got.off!.wall, on: got.on!.wall });
      cpu.push({ off: got.off!.cpu, on: got.on!.cpu });
      progress("workload", `round ${r + 1}: wall ${(got.on!.wall / got.off!.wall).toFixed(3)}, cpu ${(got.on!.cpu / got.off!.cpu).toFixed(3)}`);
    }
    // Where the build's extra time goes: BPF run time per program over one build, stats on.
    await setup.treatment.start();
    try {
      const ids = progIdsOf(setup.treatment.agent.pid);
      let b = { wall: 0, cpu: 0 };
      const runs = bpfRunTime(ids, objects, () => (b = build()));
      const total = runs.reduce((a, r) => a + r.nsPerIteration, 0) * objects;
      section.profiles.push({
        explains: ["build_wall", "build_cpu"],
        title: `BPF run time over one build of ${objects} programs (stats on)`,
        lines: [
          ...formatProgRuns(runs, "compile"),
          `total ${(total / 1e9).toFixed(3)} s of BPF run time in a build of ${b.cpu.toFixed(2)} CPU s: ${((100 * total) / 1e9 / b.cpu).toFixed(1)}% (run-time accounting alone; entering each program costs more)`,
        ],
      });
    } finally {
      await setup.treatment.stop();
    }
    const w = summarizeRatios(wall);
    const c = summarizeRatios(cpu);
    section.metrics.push(
      ratioMetric("build_wall", `make -j2 of ${objects} C programs, wall time, default agent + secure policy (${setup.variant}) vs none`, w, { op: "<=", value: 1.03 }, `${w.offMedian.toFixed(2)} -> ${w.onMedian.toFixed(2)} s`),
      ratioMetric("build_cpu", `make -j2 of ${objects} C programs, CPU time of the build tree, default agent + secure policy vs none`, c, { op: "<=", value: 1.03 }, `${c.offMedian.toFixed(2)} -> ${c.onMedian.toFixed(2)} CPU s`),
    );
    section.mechanisms["secure policy variant"] = setup.variant;
    if (setup.refusal) section.mechanisms["Override"] = `refused by the agent: ${setup.refusal}`;
    section.mechanisms["file guard placement (/v1/status)"] = setup.mechanism();
    section.notes.push("the build is not pinned (make -j2 on both cores, as a user runs it); CPU time is the whole make tree's user+sys from getrusage(RUSAGE_CHILDREN)");
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
