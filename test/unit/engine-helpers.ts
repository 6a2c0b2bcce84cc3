// Shared by the engine-*.test.ts suites: policies from YAML through the real validator,
// compiled by the real engine.
import { expect } from "bun:test";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { compilePolicy, evaluate, PolicyCompileError, type CompileOptions, type CompiledPolicy, type Decision, type EngineEvent } from "../../src/policy/engine.ts";
import type { KProbeSelector, TracingPolicy } from "../../src/policy/types.ts";

/** A validated policy; fails the test with the diagnostics when the YAML is invalid. */
export function policyFrom(yaml: string): TracingPolicy {
  const r = validatePolicyText(yaml, "test.yaml");
  const errors = r.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0 || r.policies[0] === undefined) {
    throw new Error(`invalid test policy:\n${errors.map((d) => `${d.path}: ${d.message}`).join("\n")}`);
  }
  return r.policies[0].policy;
}

/** One kprobe with the given args and selectors (YAML fragments, indented as under the kprobe). */
export function kprobePolicy(args: string, selectors: string, call = "test_fn"): string {
  return `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: engine-test
spec:
  kprobes:
  - call: "${call}"
    syscall: false
    args:
${args}
    selectors:
${selectors}
`;
}

export function compileYaml(yaml: string, opts?: CompileOptions): CompiledPolicy {
  return compilePolicy(policyFrom(yaml), opts);
}

/** One arg of the given type and one selector with one matchArgs entry. */
export function argMatcher(type: string, operator: string, values: readonly string[]): CompiledPolicy {
  const vals = values.length === 0 ? "        values: []" : `        values:\n${values.map((v) => `        - ${JSON.stringify(v)}`).join("\n")}`;
  return compileYaml(kprobePolicy(
    `    - index: 0\n      type: "${type}"`,
    `    - matchArgs:\n      - index: 0\n        operator: "${operator}"\n${vals}`,
  ));
}

/** x86_64 numbers of the syscalls the corpus lists name, so corpus tests do not depend on
 * the host's kernel headers (bit 31 marks the i386 ABI, as Tetragon's syscall64 does). */
export function corpusSyscalls(name: string): number | undefined {
  const table: Record<string, number> = { sys_dup: 32, sys_dup2: 33, __ia32_sys_dup: (41 | 0x80000000) >>> 0 };
  return table[name];
}

export const proc: EngineEvent = { pid: 1000, binary: "/usr/bin/cat" };

/** Whether hook 0's only selector matches an event with `arg` in slot 0. */
export function hits(c: CompiledPolicy, arg: NonNullable<EngineEvent["args"]>[number], extra: Partial<EngineEvent> = {}): boolean {
  return evaluate(c, 0, { ...proc, ...extra, args: [arg] }).matched;
}

export function decide(c: CompiledPolicy, ev: Partial<EngineEvent>, hook = 0): Decision {
  return evaluate(c, hook, { ...proc, ...ev });
}

/** A validated policy changed through the typed model before compiling: for engine
 * behaviour the validator would refuse to let through (limits, empty lists). */
export function compileMutated(yaml: string, change: (p: TracingPolicy) => void, opts?: CompileOptions): CompiledPolicy {
  const p = policyFrom(yaml);
  change(p);
  return compilePolicy(p, opts);
}

/** The first kprobe's first selector (test policies have that shape). */
export function firstSelector(p: TracingPolicy): KProbeSelector {
  const s = p.spec.kprobes[0]?.selectors[0];
  if (s === undefined) throw new Error("test policy has no selector");
  return s;
}

/** The compile problems of a policy the engine must reject. */
export function compileProblems(p: TracingPolicy, opts?: CompileOptions): { path: string; message: string }[] {
  try {
    compilePolicy(p, opts);
  } catch (e) {
    if (e instanceof PolicyCompileError) return [...e.problems];
    throw e;
  }
  expect.unreachable("the engine accepted a policy it must reject");
  return [];
}

/** A minimal valid selector to mutate in limit tests (bypassing the validator's own checks). */
export function emptySelector(): KProbeSelector {
  return {
    matchPIDs: [], matchArgs: [], matchData: [], matchReturnArgs: [], matchBinaries: [], matchParentBinaries: [],
    matchNamespaces: [], matchNamespaceChanges: [], matchCapabilities: [], matchCapabilityChanges: [],
    matchActions: [], matchReturnActions: [], macros: [],
  };
}
