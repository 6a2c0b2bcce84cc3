// Workload scoping: what a scoped policy costs on open/close, for a process outside its
// scope and one inside, against no agent, in the same run.
//  - the policy: a sys_openat syscall hook (the generic sensor on tp_btf/sys_enter, so it
//    runs on every openat of every process) with matchArgs Equal a secret path and Sigkill,
//    scoped with containerSelector id=<container>; the container is a cgroup named as
//    docker's systemd driver names one (docker-<id>.scope), made before the agent starts,
//    which finds it by its cgroup scan;
//  - outside: the load generator in a sibling cgroup at the same depth (the scope check
//    looks up its ancestor at the members' level and misses, then returns);
//  - inside: the load generator in the container's cgroup (the check hits and the hook goes
//    on to read and compare the path, as an unscoped policy always does);
//  - unscoped: the same policy without the selector, for reference.
// Each treatment is proven in effect before it is measured: cat of the secret inside the
// container dies, outside it reads (scoped), or dies everywhere (unscoped).
// Method as bench/enforce.ts: bench/lib/loadgen.c pinned to CPU 0 timed by its own
// CLOCK_PROCESS_CPUTIME_ID, the least of --repeats runs, treatments taking turns per round
// with the off/on order alternating, medians of per-round ratios.
//
// Usage (root): bun run bench/scope.ts [--rounds 7] [--seconds 0.3] [--repeats 3] [--quick] [--json]
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupV2Mount } from "../src/workloads/cgroup-identity.ts";
import { alternate, type Measure, type Treatment } from "./lib/ab.ts";
import { AgentTreatment, type BenchAgent } from "./lib/agent.ts";
import { prepareBenchHost } from "./lib/host.ts";
import { LoadGenerator, type LoadMode } from "./lib/loadgen.ts";
import { bpfRunTime, formatProgRuns, progIdsOf } from "./lib/profile.ts";
import { progress, ratioMetric, runBench, sampleMetric, type BenchSection } from "./lib/results.ts";
import { SECRET_TEXT } from "./lib/secure.ts";
import { summarizeRatios, type Pair } from "./lib/stats.ts";

class ScopeBenchError extends Error {
  override name = "ScopeBenchError";
}

const log = (m: string) => progress("scope", m);
const POLICY = "bench-scoped-openat";

function policyYaml(secret: string, containerId: string | undefined): string {
  const scope = containerId === undefined ? "" : `  containerSelector:\n    matchLabels:\n      id: ${containerId}\n`;
  return `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${POLICY}
spec:
${scope}  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 0
      type: int
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values:
        - ${secret}
      matchActions:
      - action: Sigkill
`;
}

/** How `cat secret` ends when started in cgroup `cg`: "killed" or "read" (or what else happened). */
function catIn(cg: string, secret: string): string {
  const r = spawnSync("sh", ["-c", 'echo $$ > "$0/cgroup.procs" && exec cat "$1"', cg, secret], { encoding: "utf8", timeout: 10_000 });
  if (r.signal === "SIGKILL") return "killed";
  if (r.status === 0 && r.stdout === SECRET_TEXT) return "read";
  return `exit ${r.status ?? r.signal}: ${r.stderr.trim()}`;
}

await runBench("scope", "Workload scoping: open/close with a scoped policy, outside vs inside the scope vs no agent", async (args, section: BenchSection) => {
  const rounds = Math.floor(args.num("rounds", 7, 1));
  const seconds = args.num("seconds", 0.3, 0.02);
  const repeats = Math.floor(args.num("repeats", 3, 1));
  prepareBenchHost("bench/scope.ts");
  const root = cgroupV2Mount();
  if (root === undefined) throw new ScopeBenchError("no cgroup v2 hierarchy mounted: scopes are cgroup v2 ids");

  const dir = realpathSync(mkdtempSync("/tmp/ward-bench-scope-"));
  const parent = join(root, `ward-bench-scope-${process.pid}`);
  const containerId = Array.from({ length: 64 }, (_, i) => ((process.pid + i * 7) % 16).toString(16)).join("");
  const inside = join(parent, `docker-${containerId}.scope`);
  const outside = join(parent, "outside");
  mkdirSync(inside, { recursive: true });
  mkdirSync(outside);
  try {
    const secret = join(dir, "secret");
    writeFileSync(secret, SECRET_TEXT);
    const unrelated = join(dir, "unrelated");
    writeFileSync(unrelated, "not the secret\n");
    const gen = LoadGenerator.build(dir);
    const genIn = gen.inCgroup(inside);
    const genOut = gen.inCgroup(outside);
    const openMode: LoadMode = { kind: "open", path: unrelated };
    const n = genOut.calibrate(openMode, seconds);
    const mOut: Measure = { name: "outside", run: () => genOut.best(openMode, n, repeats) };
    const mIn: Measure = { name: "inside", run: () => genIn.best(openMode, n, repeats) };

    const scopedFile = join(dir, "scoped.yaml");
    writeFileSync(scopedFile, policyYaml(secret, containerId));
    const unscopedFile = join(dir, "unscoped.yaml");
    writeFileSync(unscopedFile, policyYaml(secret, undefined));
    let scopeReport = "";
    const expect = async (a: BenchAgent, want: { inside: string; outside: string }, scoped: boolean): Promise<void> => {
      const got = { inside: catIn(inside, secret), outside: catIn(outside, secret) };
      if (got.inside !== want.inside || got.outside !== want.outside) {
        throw new ScopeBenchError(`policy not in effect as measured: cat of the secret inside ${got.inside}, outside ${got.outside} (want ${want.inside}, ${want.outside})`);
      }
      if (scoped) {
        const p = (await a.status()).policies.find((x) => x.name === POLICY) as { state?: string; scope?: { scope: string; members: number } } | undefined;
        if (p?.scope?.members !== 1) throw new ScopeBenchError(`the scope has ${p?.scope?.members ?? "no"} members in /v1/status (want 1: the container's cgroup)`);
        scopeReport = `${p.scope.scope}; ${p.scope.members} member (${p.state ?? ""})`;
      }
    };
    const scoped = new AgentTreatment("ward agent --policy scoped sys_openat", dir, { policies: [scopedFile] }, (a) => expect(a, { inside: "killed", outside: "read" }, true));
    const unscoped = new AgentTreatment("ward agent --policy unscoped sys_openat", dir, { policies: [unscopedFile] }, (a) => expect(a, { inside: "killed", outside: "killed" }, false));

    const plan: Array<{ key: string; t: Treatment; ms: Measure[] }> = [
      { key: "scoped", t: scoped, ms: [mOut, mIn] },
      { key: "unscoped", t: unscoped, ms: [mOut] },
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
    const us = (k: string, side: "offMedian" | "onMedian") => ((s(k)[side] / n) * 1e6).toFixed(2);
    const out = s("scoped.outside");
    const inn = s("scoped.inside");
    section.metrics.push(
      ratioMetric("scope_open_outside", "open/close of an unrelated file, scoped sys_openat policy, process outside the scope vs no agent", out, undefined, `${n} iterations, ${us("scoped.outside", "offMedian")} -> ${us("scoped.outside", "onMedian")} us/iteration`),
      ratioMetric("scope_open_inside", "open/close of an unrelated file, scoped sys_openat policy, process inside the scope vs no agent", inn, undefined, `${us("scoped.inside", "offMedian")} -> ${us("scoped.inside", "onMedian")} us/iteration`),
      ratioMetric("scope_open_unscoped", "open/close of an unrelated file, the same policy unscoped vs no agent (reference)", s("unscoped.outside"), undefined, `${us("unscoped.outside", "offMedian")} -> ${us("unscoped.outside", "onMedian")} us/iteration`),
      sampleMetric("scope_inside_over_outside", "inside over outside, per round (what being in scope adds)", "ratio", inn.ratios.map((x, i) => x / out.ratios[i]!)),
      sampleMetric("scope_inside_over_unscoped", "inside the scope over the unscoped policy, per round (what the scope check costs a process it applies to)", "ratio", inn.ratios.map((x, i) => x / s("unscoped.outside").ratios[i]!)),
    );

    // Where the time goes: BPF run time of the agent's programs over one loop outside and one
    // inside (not in quick mode: one more agent start, and its generic sensor's verification,
    // for figures a one-round run cannot judge anyway).
    if (!args.quick) {
      await scoped.start();
      try {
        const ids = progIdsOf(scoped.agent.pid);
        for (const [where, g] of [["outside", genOut], ["inside", genIn]] as const) {
          const runs = bpfRunTime(ids, n, () => g.run(openMode, n));
          section.profiles.push({
            explains: [where === "outside" ? "scope_open_outside" : "scope_open_inside", "scope_inside_over_outside"],
            title: `scoped policy, process ${where} the scope: BPF run time over ${n} open/close of an unrelated file`,
            lines: formatProgRuns(runs, "open/close iteration"),
          });
        }
      } finally {
        await scoped.stop();
      }
    }
    section.mechanisms["scoped policy"] = `sys_openat (syscall: true) on the generic sensor, matchArgs Equal + Sigkill, containerSelector id=<container>: ${scopeReport}`;
    section.mechanisms["scope check"] = "bpf/include/scope.h ward_in_scope: level mask lookup, bpf_get_current_ancestor_cgroup_id at each level with members, (scope, cgroup) hash lookup";
    section.notes.push(
      `CPU time (CLOCK_PROCESS_CPUTIME_ID) of bench/lib/loadgen.c pinned to CPU 0, started in the container's cgroup (inside) or a sibling cgroup at the same depth (outside); each measurement the least of ${repeats} runs; treatments take turns per round, off/on order alternating.`,
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
    for (const d of [inside, outside, parent]) {
      try {
        if (existsSync(d)) rmdirSync(d);
      } catch {
        // a load generator still exiting: the directory goes with the next run's cleanup
      }
    }
  }
});
