// fanotify decision bench (issue 9): open/close of the PROTECTED file by the allowed binary,
// so every open is a FAN_OPEN_PERM event the agent's decision thread answers (allow).
// Prints, in one run:
//  - opens per wall second with the group (= decisions per second) and without it;
//  - the per-open wall-time ratio on/off (median of alternating rounds, with the spread);
//  - the decision thread's own figures (mean and slowest answer, late and undecided counts);
//  - CPU time per open (medians over the rounds): the agent's (this process's CPU time over
//    a round, which is the decision thread's: the main thread sleeps in spawnSync) per
//    decision, and the opener's with and without the group (its own rusage). On one core
//    these add up to the cycle, so they say where a decision's time goes even when other
//    work on the machine makes the wall-clock rates noisy.
// The load is test/kernel/fanotify-helper.c `flood` pinned to CPU 0 (wall-clock loop: a
// decision costs the opener its wait, which CPU time would not show). The decision thread
// runs wherever this process runs: `taskset -c 0 bun run bench/fanotify.ts` puts the
// opener and the agent on one core, `taskset -c 1 ...` gives the agent the other one.
//
// --engine: the rule is decided by the policy engine instead (matchBinaries Postfix, which the
// inode rules cannot hold), on the opener's exec record in the kernel process map of a
// process sensor started here, as the agent runs it.
//
// Usage (root): bun run bench/fanotify.ts [--rounds 7] [--seconds 1] [--scheduling realtime|default] [--profile] [--engine] [--json]
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../build/system.ts";
import { validatePolicyText } from "../src/policy/validate.ts";
import { FanotifyGuard } from "../src/sensors/fanotify.ts";
import { ProcessSensor } from "../src/sensors/process.ts";
import { summarizeRatios } from "./lib/stats.ts";
import { threadCpu, threadCpuDelta } from "./lib/threads.ts";

class FanotifyBenchError extends Error {
  override name = "FanotifyBenchError";
}

function numArg(name: string, dflt: number): number {
  const i = process.argv.indexOf(`--${name}`);
  const v = i >= 0 ? Number(process.argv[i + 1]) : Number.NaN;
  return Number.isFinite(v) && v > 0 ? v : dflt;
}

const rounds = Math.max(1, Math.floor(numArg("rounds", 7)));
const seconds = numArg("seconds", 1);
const asJson = process.argv.includes("--json");
const log = (msg: string) => {
  if (!asJson) process.stdout.write(`${msg}\n`);
};
if (process.getuid?.() !== 0) throw new FanotifyBenchError("bench/fanotify.ts needs root (fanotify permission events need CAP_SYS_ADMIN)");

ensureSystemPackages([
  ["/usr/bin/cc", "gcc"],
  ["/usr/bin/taskset", "util-linux"],
  ["/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"],
]);
const dir = mkdtempSync("/tmp/ward-fanbench-");
const secret = join(dir, "secret");
writeFileSync(secret, "I love pizza!\n");
const helper = join(dir, "fan-helper");
const cc = spawnSync("cc", ["-O2", "-static", "-pthread", "-o", helper, join(import.meta.dir, "..", "test", "kernel", "fanotify-helper.c")], { encoding: "utf8" });
if (cc.status !== 0) throw new FanotifyBenchError(`cc fanotify-helper.c: ${cc.stderr}`);
const allowed = join(dir, "allowed-helper");
copyFileSync(helper, allowed);

/** CPU µs per open: the agent's (this process) and the opener's, per round. */
const agentCpuUs: number[] = [];
const openerCpuOnUs: number[] = [];
const openerCpuOffUs: number[] = [];

/** One flood round on CPU 0: opens per wall second, recording the CPU per open of both sides. */
function flood(path: string, agent: number[] | undefined, opener: number[]): number {
  const c0 = process.cpuUsage();
  const r = spawnSync("taskset", ["-c", "0", allowed, "flood", String(seconds), path], { encoding: "utf8", timeout: (seconds + 30) * 1000 });
  const c = process.cpuUsage(c0);
  const m = /opens (\d+) cpu_us (\d+)/.exec(r.stdout);
  const n = Number(m?.[1]);
  if (r.status !== 0 || !Number.isFinite(n) || n === 0) throw new FanotifyBenchError(`flood failed: ${r.stdout}${r.stderr}`);
  opener.push(Number(m?.[2]) / n);
  agent?.push((c.user + c.system) / n);
  return n / seconds;
}

/** Opens per wall second of the allowed binary's open/close loop on CPU 0. */
function opensPerSecond(): number {
  return flood(secret, agentCpuUs, openerCpuOnUs);
}

function denied(): boolean {
  const r = spawnSync(helper, ["dirfd", dir, "secret"], { encoding: "utf8" });
  return r.stdout.includes("ERR openat 1");
}

// --scheduling default: the decision thread without real-time priority (what SCHED_FIFO buys)
const schedIdx = process.argv.indexOf("--scheduling");
const scheduling = schedIdx >= 0 && process.argv[schedIdx + 1] === "default" ? "default" : "realtime";
// --profile: the decision thread accounts its CPU time per phase (a few clock reads per decision)
const profile = process.argv.includes("--profile");
const engine = process.argv.includes("--engine");
const procs = engine ? new ProcessSensor({ nodeName: "bench", onEvent: () => {}, log: () => {} }) : undefined;
await procs?.start();
const processMap = procs?.processMap;
const guard = FanotifyGuard.create({ scheduling, profile, ...(processMap !== undefined ? { processMap } : {}) });
if (engine) {
  // binaries named .../fan-helper are denied: the helper is, allowed-helper is not
  const yaml = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: fanbench
spec:
  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["${secret}"]
      matchBinaries:
      - operator: Postfix
        values: ["/fan-helper"]
      matchActions:
      - action: Override
        argError: -1
`;
  const policy = validatePolicyText(yaml, "fanbench.yaml").policies[0]?.policy;
  if (policy === undefined) throw new FanotifyBenchError("the bench's engine policy does not validate");
  guard.setEngine({ policy, mode: "enforce" });
  guard.addRule({ action: "deny", post: false, target: "open", engine: { hookIndex: 0, selector: 0, fileSlot: 0 } }, [secret]);
} else {
  guard.addRule({ action: "deny", post: false, target: "open", binaries: { op: "NotIn", paths: [allowed] } }, [secret]);
}
let on: FanotifyGuard | undefined;
let threads0: ReturnType<typeof threadCpu> = [];
let threadsOn: ReturnType<typeof threadCpuDelta> = [];
let eventsOn = 0;
let phasesOn: Record<string, number> = {};
let phasesBase: Record<string, number> = {};
const offRates: number[] = [];
const onRates: number[] = [];
const pairs: { off: number; on: number }[] = [];
try {
  // One group for the whole run: its decision thread warms up once, like the agent's.
  guard.start((why) => process.stderr.write(`${why}\n`));
  await guard.ready();
  on = guard;
  if (!denied()) throw new FanotifyBenchError("the rule is not in force: the other binary was not denied");
  // The off rounds open an unmarked file of the same size on the same filesystem: the group
  // stays up (its thread stays warm) and only marked inodes reach it.
  const plain = join(dir, "plain");
  writeFileSync(plain, "I love pizza!\n");
  const offRate = (): number => flood(plain, undefined, openerCpuOffUs);
  opensPerSecond(); // warm the decision thread's JIT
  agentCpuUs.length = 0;
  openerCpuOnUs.length = 0;
  const cz = guard.counters();
  const events0 = cz.events;
  const phases0: Record<string, number> = { wait: cz.cpuWaitUs, read: cz.cpuReadUs, decide: cz.cpuDecideUs, answer: cz.cpuAnswerUs, close: cz.cpuCloseUs };
  phasesBase = phases0;
  threads0 = threadCpu();
  for (let i = 0; i < rounds; i++) {
    // A and B alternate: off then on, then on then off
    let off: number;
    let onr: number;
    if (i % 2 === 0) {
      off = offRate();
      onr = opensPerSecond();
    } else {
      onr = opensPerSecond();
      off = offRate();
    }
    offRates.push(off);
    onRates.push(onr);
    // per-open wall time (1 / rate), on over off
    pairs.push({ off: 1 / off, on: 1 / onr });
  }
  threadsOn = threadCpuDelta(threads0, threadCpu());
  const c1 = guard.counters();
  phasesOn = { wait: c1.cpuWaitUs, read: c1.cpuReadUs, decide: c1.cpuDecideUs, answer: c1.cpuAnswerUs, close: c1.cpuCloseUs };
  eventsOn = guard.counters().events - events0;
} finally {
  on?.close();
  await procs?.stop();
  rmSync(dir, { recursive: true, force: true });
}
const c = guard.counters();
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
const s = summarizeRatios(pairs);
const result = {
  rounds,
  seconds,
  evaluator: engine ? "engine (process map)" : "rules (inode)",
  mapFacts: c.mapFacts,
  procFallbacks: c.procFallbacks,
  decisionsPerSecond: Math.round(median(onRates)),
  opensPerSecondWithoutGroup: Math.round(median(offRates)),
  perOpenRatio: s,
  meanAnswerUs: c.events > 0 ? Math.round((c.totalAnswerUs / c.events) * 10) / 10 : 0,
  maxAnswerUs: c.maxAnswerUs,
  events: c.events,
  timeouts: c.timeouts,
  undecided: c.undecided,
  cpus: spawnSync("taskset", ["-p", String(process.pid)], { encoding: "utf8" }).stdout.trim(),
  /** CPU µs per decision by thread of this process over the measured rounds (both kinds: the off rounds cost the agent nothing) */
  threadCpuUsPerDecision: threadsOn.slice(0, 5).map((t) => ({ thread: `${t.comm}/${t.tid}`, us: eventsOn > 0 ? Math.round((t.ticks * 10_000 * 100) / eventsOn) / 100 : 0 })),
  /** --profile: the decision thread's CPU µs per decision by phase (epoll_wait, read, decide, write answer, close fds) */
  ...(profile ? { phaseCpuUsPerDecision: Object.fromEntries(Object.entries(phasesOn).map(([k, v]) => [k, eventsOn > 0 ? Math.round(((v - (phasesBase[k] ?? 0)) / eventsOn) * 100) / 100 : 0])) } : {}),
  cpuUsPerOpen: {
    agent: Math.round(median(agentCpuUs) * 100) / 100,
    openerWithGroup: Math.round(median(openerCpuOnUs) * 100) / 100,
    openerWithoutGroup: Math.round(median(openerCpuOffUs) * 100) / 100,
  },
};
if (asJson) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  log(`fanotify decisions (open/close of the protected file by the allowed binary, load on CPU 0; this process: ${result.cpus}; evaluator: ${result.evaluator}${engine ? `, map facts ${result.mapFacts}, /proc fallbacks ${result.procFallbacks}` : ""})`);
  log(`  decisions/s (median of ${rounds} rounds of ${seconds} s): ${result.decisionsPerSecond}`);
  log(`  opens/s of an unmarked file, same loop: ${result.opensPerSecondWithoutGroup}`);
  log(`  per-open wall time ratio on/off: median ${s.median.toFixed(3)} (spread ${s.min.toFixed(3)}-${s.max.toFixed(3)})`);
  log(`  answer time: mean ${result.meanAnswerUs} us, slowest ${result.maxAnswerUs} us; late ${result.timeouts}, undecided ${result.undecided} of ${result.events}`);
  log(`  agent CPU per decision by thread: ${result.threadCpuUsPerDecision.map((t) => `${t.thread} ${t.us} us`).join(", ")}`);
  if (result.phaseCpuUsPerDecision !== undefined) log(`  decision thread CPU per decision by phase: ${Object.entries(result.phaseCpuUsPerDecision).map(([k, v]) => `${k} ${v} us`).join(", ")}`);
  log(`  CPU per open (medians): agent ${result.cpuUsPerOpen.agent} us per decision; opener ${result.cpuUsPerOpen.openerWithGroup} us with the group, ${result.cpuUsPerOpen.openerWithoutGroup} us without`);
}
