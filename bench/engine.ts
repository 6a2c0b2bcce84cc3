// Policy engine benchmark: (1) validate + compile every corpus policy through the WASM
// engine, reporting the compile share of the total and policies per second; (2) the
// userspace evaluator's rate in events per second for matching and non-matching events,
// raw (pre-encoded event, the engine alone) against full (encode + evaluate + decode),
// so the report gives ratios measured in this run.
// Runs pinned to CPU 0 (it re-executes itself under taskset).
// Usage: bun run bench/engine.ts [--rounds 5] [--events 200000] [--quick] [--json]
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { CORPUS_DIR, CORPUS_SUBSTITUTIONS } from "../build/corpus-table.ts";
import { compilePolicy, encodeEvent, evaluate, evaluateRaw, loadEngine, type CompiledPolicy, type EngineEvent } from "../src/policy/engine.ts";
import { validatePolicyText } from "../src/policy/validate.ts";
import type { TracingPolicy } from "../src/policy/types.ts";
import { pinSelf } from "./lib/host.ts";
import { runBench, sampleMetric, type BenchSection } from "./lib/results.ts";

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] ?? 0) : ((s[m - 1] ?? 0) + (s[m] ?? 0)) / 2;
};
const spread = (xs: number[]): string => `${Math.min(...xs).toFixed(0)}..${Math.max(...xs).toFixed(0)}`;

// The corpus lists name only dup/dup2; x86_64 numbers, bit 31 for the i386 ABI.
const SYSCALLS: Record<string, number> = { sys_dup: 32, sys_dup2: 33, __ia32_sys_dup: (41 | 0x80000000) >>> 0 };

const EVAL_POLICY = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: bench
spec:
  kprobes:
  - call: "security_file_open"
    syscall: false
    args:
    - index: 0
      type: "file"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Prefix"
        values: ["/etc/shadow", "/etc/sudoers", "/root/.ssh/", "/var/lib/secret/", "/boot/"]
      matchBinaries:
      - operator: "NotIn"
        values: ["/usr/bin/sudo", "/usr/sbin/sshd", "/usr/bin/passwd"]
      matchActions:
      - action: Override
        argError: -13
    - matchArgs:
      - index: 0
        operator: "Postfix"
        values: [".pem", ".key", "id_rsa", "id_ed25519"]
  - call: "tcp_connect"
    syscall: false
    args:
    - index: 0
      type: "sock"
    selectors:
    - matchArgs:
      - index: 0
        operator: "NotDAddr"
        values: ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "::1/128", "fd00::/8"]
      - index: 0
        operator: "DPort"
        values: ["1:1023", "8080", "8443"]
`;

export interface EngineBenchReport {
  policies: number;
  compileMsMedian: number;
  validateMsMedian: number;
  compileShare: number;
  policiesPerSecond: number;
  eval: { name: string; rawPerSecond: number; fullPerSecond: number; spread: string; raw: number[]; full: number[] }[];
  validateMs: number[];
  compileMs: number[];
  text: string;
}

/** Runs the benchmark and prints its report (unless print is false); bench/run.ts calls this. */
export async function run(opts: { rounds?: number; events?: number; print?: boolean } = {}): Promise<EngineBenchReport> {
  const rounds = opts.rounds ?? 5;
  const events = opts.events ?? 200_000;
  await loadEngine();

  // (1) corpus: validate then compile, timed separately, several rounds.
  const texts = readdirSync(CORPUS_DIR).filter((f) => /\.ya?ml$/.test(f)).sort().map((f) => readFileSync(join(CORPUS_DIR, f), "utf8"));
  const valMs: number[] = [];
  const compMs: number[] = [];
  let policies = 0;
  for (let r = 0; r < rounds; r++) {
    const models: TracingPolicy[] = [];
    let t = performance.now();
    for (const text of texts) {
      const v = validatePolicyText(text, "corpus.yaml", { substitute: CORPUS_SUBSTITUTIONS });
      for (const lp of v.policies) models.push(lp.policy);
    }
    valMs.push(performance.now() - t);
    t = performance.now();
    for (const m of models) compilePolicy(m, { syscallNumber: (n) => SYSCALLS[n] });
    compMs.push(performance.now() - t);
    policies = models.length;
  }
  const compileMsMedian = median(compMs);
  const validateMsMedian = median(valMs);

  // (2) evaluation rate.
  const v = validatePolicyText(EVAL_POLICY, "bench.yaml");
  const model = v.policies[0]?.policy;
  if (model === undefined) throw new Error("bench policy did not validate");
  const c: CompiledPolicy = compilePolicy(model);
  const cases: { name: string; hook: number; ev: EngineEvent }[] = [
    { name: "file open, prefix hit, binary not exempt (Override)", hook: 0, ev: { pid: 4242, binary: "/usr/bin/cat", args: [{ file: { path: "/etc/shadow" } }] } },
    { name: "file open, no selector matches", hook: 0, ev: { pid: 4242, binary: "/usr/bin/cat", args: [{ file: { path: "/usr/share/doc/readme.txt" } }] } },
    { name: "file open, postfix hit (2nd selector)", hook: 0, ev: { pid: 4242, binary: "/usr/bin/cat", args: [{ file: { path: "/home/u/.ssh/id_ed25519" } }] } },
    { name: "tcp connect, public v4 :443 (match)", hook: 1, ev: { pid: 4242, binary: "/usr/bin/curl", args: [{ sock: { family: 2, protocol: 6, daddr: "93.184.216.34", dport: 443 } }] } },
    { name: "tcp connect, private v6 (no match)", hook: 1, ev: { pid: 4242, binary: "/usr/bin/curl", args: [{ sock: { family: 10, protocol: 6, daddr: "fd00::5", dport: 443 } }] } },
  ];
  const evalRows: EngineBenchReport["eval"] = [];
  for (const k of cases) {
    const encoded = encodeEvent(k.ev);
    // Warm up (and check the case decides what its name says).
    for (let i = 0; i < 1000; i++) evaluateRaw(c, k.hook, encoded);
    const raw: number[] = [];
    const full: number[] = [];
    for (let r = 0; r < rounds; r++) {
      let t = performance.now();
      for (let i = 0; i < events; i++) evaluateRaw(c, k.hook, encoded);
      raw.push(events / ((performance.now() - t) / 1000));
      const nFull = Math.max(1, events >> 2);
      t = performance.now();
      for (let i = 0; i < nFull; i++) evaluate(c, k.hook, k.ev);
      full.push(nFull / ((performance.now() - t) / 1000));
    }
    evalRows.push({ name: k.name, rawPerSecond: median(raw), fullPerSecond: median(full), spread: spread(raw), raw, full });
  }

  const lines: string[] = [];
  lines.push(`engine benchmark (${rounds} rounds, medians)`);
  lines.push(`  corpus: ${policies} policies; validate ${validateMsMedian.toFixed(1)} ms (spread ${spread(valMs)}), compile ${compileMsMedian.toFixed(1)} ms (spread ${spread(compMs)})`);
  lines.push(`  compile share of validate+compile: ${(100 * compileMsMedian / (compileMsMedian + validateMsMedian)).toFixed(1)}%; ${(policies / (compileMsMedian / 1000)).toFixed(0)} policies/s compiled`);
  lines.push(`  userspace evaluation (events/s; raw = pre-encoded event, full = encode+evaluate+decode):`);
  for (const r of evalRows) {
    lines.push(`    ${r.name.padEnd(52)} raw ${r.rawPerSecond.toFixed(0).padStart(9)} (spread ${r.spread})  full ${r.fullPerSecond.toFixed(0).padStart(8)}  raw/full ${(r.rawPerSecond / r.fullPerSecond).toFixed(2)}x`);
  }
  const check = evaluate(c, 0, cases[0]!.ev);
  lines.push(`  sanity: case 1 decided selector ${check.selector} with ${check.actions.map((a) => a.action).join(",")}`);
  const text = `${lines.join("\n")}\n`;
  if (opts.print !== false) process.stdout.write(text);
  return {
    policies, compileMsMedian, validateMsMedian,
    compileShare: compileMsMedian / (compileMsMedian + validateMsMedian),
    policiesPerSecond: policies / (compileMsMedian / 1000),
    eval: evalRows,
    validateMs: valMs,
    compileMs: compMs,
    text,
  };
}

if (import.meta.main) {
  pinSelf(0);
  await runBench("engine", "Policy engine: corpus validate + compile, userspace evaluation", async (args, section: BenchSection) => {
    const r = await run({ rounds: Math.floor(args.num("rounds", 5, 1)), events: Math.floor(args.num("events", 200_000, 2_000)), print: false });
    const total = r.validateMs.map((v, i) => v + r.compileMs[i]!);
    section.metrics.push(
      sampleMetric("engine_corpus_validate_compile", `corpus (${r.policies} policies) validate + compile`, "ms", total, undefined, `validate ${r.validateMsMedian.toFixed(1)} ms, compile ${r.compileMsMedian.toFixed(1)} ms (medians)`),
      sampleMetric("engine_compile_rate", "policies compiled per second", "policies/s", r.compileMs.map((ms) => r.policies / (ms / 1000))),
    );
    r.eval.forEach((e, i) => {
      section.metrics.push(
        sampleMetric(`engine_eval_raw_${i + 1}`, `evaluations/s, pre-encoded event: ${e.name}`, "evaluations/s", e.raw),
        sampleMetric(`engine_eval_full_${i + 1}`, `evaluations/s, encode + evaluate + decode: ${e.name}`, "evaluations/s", e.full),
      );
    });
    section.notes.push("userspace evaluation runs in this process's WASM engine (the kernel evaluates the same tables in BPF); raw = the engine alone, full = with the event encoded and the decision decoded");
  });
}
