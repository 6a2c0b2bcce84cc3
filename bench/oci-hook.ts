// The OCI hook's added container start time: `runc run` of a busybox container whose process
// is `true`, with and without `ward oci-hook` (dist/ward, as users install it) as its
// createRuntime and poststop hook, against one running agent that holds a policy scoped by
// containerSelector to that container's name (so every report is a scope update the hook
// waits for). Same run, alternating sides each round (off->on, then on->off), several starts
// per side per round. Wall time of `runc run` from spawn to exit: create, the hooks, the
// container's run, teardown. The agent-side share (PUT until every scope applied it) is the
// hook's own measure, from its --log-file. The hook's process alone: `dist/ward version`
// (the single binary's start-up, paid twice per container) and one `dist/ward oci-hook`
// poststop against the same agent, each spawn to exit, a few per round between the sides.
// Usage (root): bun run bench/oci-hook.ts [--rounds 7] [--starts 10] [--quick] [--json]
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, realpathSync, rmSync } from "node:fs";
import { join } from "node:path";
import { deleteAll, ensureRunc, makeBundle, makeRootfs, removeCgroupParents, runcRun } from "../test/lib/runc.ts";
import { labelScope, secureOpenPolicy } from "../test/lib/talk-policies.ts";
import { AgentTreatment, wardBinary } from "./lib/agent.ts";
import { prepareBenchHost } from "./lib/host.ts";
import { progress, ratioMetric, runBench, sampleMetric, type BenchSection } from "./lib/results.ts";
import { median, summarizeRatios, type Pair } from "./lib/stats.ts";

await runBench("oci-hook", "OCI runtime hook: added container start time (runc run with ward oci-hook vs without)", async (args, section: BenchSection) => {
  const rounds = Math.floor(args.num("rounds", 7, 1));
  const starts = Math.floor(args.num("starts", 10, 2));
  prepareBenchHost("bench/oci-hook.ts");
  ensureRunc();
  const ward = await wardBinary();
  const dir = realpathSync(mkdtempSync("/tmp/ward-bench-ocihook-"));
  const tag = `ward-bench-ocihook-${process.pid}`;
  const runcRoot = `/run/${tag}`;
  const rootfs = makeRootfs(join(dir, "rootfs"), { secret: "scoped\n" });
  const hookLog = join(dir, "hook.log");
  const policy = join(dir, "scoped.yaml");
  await Bun.write(
    policy,
    secureOpenPolicy({
      name: "bench-oci-scoped",
      file: join(rootfs, "secret"),
      scope: labelScope("containerSelector", { name: "bench" }),
    }),
  );
  const agent = new AgentTreatment("agent", dir, { policies: [policy] });
  const annotations = {
    "io.kubernetes.cri.container-type": "container",
    "io.kubernetes.cri.sandbox-namespace": "bench",
    "io.kubernetes.cri.sandbox-name": "bench-pod",
    "io.kubernetes.cri.container-name": "bench",
  };
  try {
    await agent.start();
    const hook = { path: ward, args: ["ward", "oci-hook", "--state-file", agent.agent.stateFile, "--fail-mode", "closed", "--timeout", "5s", "--log-file", hookLog], timeout: 10 };
    const off = makeBundle(join(dir, "off"), { rootfs, args: ["true"], cgroupsPath: `/${tag}/c`, annotations });
    const on = makeBundle(join(dir, "on"), { rootfs, args: ["true"], cgroupsPath: `/${tag}/c`, annotations, hooks: { createRuntime: [hook], poststop: [hook] } });
    let n = 0;
    const startOnce = (bundle: string): number => {
      const r = runcRun(runcRoot, bundle, `${tag}-${n++}`);
      if (r.status !== 0) throw new Error(`runc run ${bundle}: exit ${r.status}${r.signal ? ` (${r.signal})` : ""}: ${r.stderr.trim()}`);
      return r.ms;
    };
    // Warm: page cache for runc, busybox and dist/ward; the agent's first report.
    startOnce(off);
    startOnce(on);
    progress("oci-hook", `${rounds} rounds of ${starts} container starts per side`);
    // One short-lived process of the binary, spawn to exit; a failing one would measure an error path.
    const spawnMs = (args: string[], input?: string): number => {
      const t0 = performance.now();
      const r = spawnSync(ward, args, { input, encoding: "utf8", timeout: 30_000, stdio: ["pipe", "ignore", "pipe"] });
      const ms = performance.now() - t0;
      if (r.status !== 0) throw new Error(`${ward} ${args.join(" ")}: exit ${r.status}${r.signal ? ` (${r.signal})` : ""}: ${r.stderr.trim()}`);
      if (r.stderr !== "") throw new Error(`${ward} ${args.join(" ")}: ${r.stderr.trim()}`);
      return ms;
    };
    // A poststop for a container the agent does not know: the hook's whole path (read the
    // state, find the agent, one request) with the agent's side next to nothing.
    const poststop = JSON.stringify({ ociVersion: "1.0.2", id: `${tag}-unknown`, status: "stopped", pid: 0, bundle: dir, annotations: {} });
    const versionMs: number[] = [];
    const hookProcessMs: number[] = [];
    const pairs: Pair[] = [];
    const added: number[] = [];
    for (let r = 0; r < rounds; r++) {
      const got: { off?: number; on?: number } = {};
      for (const side of r % 2 === 0 ? (["off", "on"] as const) : (["on", "off"] as const)) {
        const ms: number[] = [];
        for (let i = 0; i < starts; i++) ms.push(startOnce(side === "off" ? off : on));
        got[side] = median(ms);
      }
      for (let i = 0; i < starts; i++) {
        versionMs.push(spawnMs(["version"]));
        hookProcessMs.push(spawnMs(["oci-hook", "--state-file", agent.agent.stateFile, "--fail-mode", "closed", "--timeout", "5s"], poststop));
      }
      pairs.push({ off: got.off!, on: got.on! });
      added.push(got.on! - got.off!);
      progress("oci-hook", `round ${r + 1}: ${got.off!.toFixed(1)} -> ${got.on!.toFixed(1)} ms`);
    }
    // Every hooked start must have been reported and confirmed, else the "on" side measured a failing hook.
    const lines = existsSync(hookLog) ? readFileSync(hookLog, "utf8").split("\n") : [];
    const applied = lines.map((l) => /scopes applied in ([\d.]+) ms/.exec(l)?.[1]).filter((x): x is string => x !== undefined).map(Number);
    const failures = lines.filter((l) => l.includes("refusing") || l.includes("letting it start"));
    if (failures.length > 0) throw new Error(`the hook failed during the bench: ${failures[0]}`);
    const hookedStarts = rounds * starts + 1;
    if (applied.length !== hookedStarts) throw new Error(`hook log has ${applied.length} confirmed reports for ${hookedStarts} hooked starts`);
    const s = summarizeRatios(pairs);
    section.metrics.push(
      sampleMetric("oci_hook_start_added_ms", "container start (runc run of `true`), added by ward oci-hook (createRuntime + poststop), per container", "ms", added, undefined, `${s.offMedian.toFixed(1)} -> ${s.onMedian.toFixed(1)} ms, medians of ${starts} starts per side per round`),
      ratioMetric("oci_hook_start_ratio", "container start wall time with the hook vs without", s),
      sampleMetric("oci_hook_report_ms", "the hook's PUT /v1/workloads until every scope applied it (the agent's share)", "ms", applied, undefined, `${applied.length} reports`),
      sampleMetric("oci_hook_cli_start_ms", "`dist/ward version`, spawn to exit (the single binary's start-up, paid by each hook run)", "ms", versionMs, undefined, `${versionMs.length} runs`),
      sampleMetric("oci_hook_process_ms", "one `dist/ward oci-hook` poststop against the agent, spawn to exit", "ms", hookProcessMs, undefined, `${hookProcessMs.length} runs; a container the agent does not know, so the agent's share is one lookup`),
    );
    const st = await agent.agent.status();
    const p = st.policies.find((x) => x.name === "bench-oci-scoped");
    section.mechanisms["hook"] = `dist/ward oci-hook (the single binary), createRuntime and poststop, --fail-mode closed`;
    section.mechanisms["scoped policy"] = `containerSelector name=bench, Sigkill on a file in the rootfs: ${p?.state ?? "missing"}`;
    section.notes.push(
      "wall time of runc run from spawn to exit (create, hooks, the container's `true`, teardown); not pinned: runc, the hook and the agent spread over both cores",
      "the hook's time is mostly starting dist/ward (a Bun single binary, compiled with --bytecode --splitting so a hook run loads only its own chunk) twice per container: oci_hook_cli_start_ms; the agent's share is oci_hook_report_ms",
    );
  } finally {
    deleteAll(runcRoot);
    await agent.stop();
    removeCgroupParents(`/${tag}`);
    rmSync(runcRoot, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  }
});
