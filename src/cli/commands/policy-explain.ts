// `ward policy explain FILE... [-o text|json] [--set NAME=VALUE]... [--env] [--keep-sensors-on-exit]`: validates each
// file, compiles every policy through the engine and prints, per hook, what the engine
// produced for the kernel, the mechanism chosen on this kernel (src/sensors/resolve.ts) and
// how each action is honored there, its limits and the bypasses that apply; or why the hook
// cannot run here. A policy with a rejected hook is still explained (exit 0): the agent
// would refuse it, and the report says so.
import { describeScope, isScoped, scopeOfPolicy, type PolicyScope } from "../../workloads/k8s/scope.ts";
import { parseArgs, UsageError } from "../args.ts";
import { compilePolicy, PolicyCompileError } from "../../policy/engine.ts";
import { explainCompiled, formatExplained, type ExplainedPolicy } from "../../policy/explain.ts";
import { hostHookFeatures, resolvePolicy, type HookFeatures, type PolicyResolution } from "../../sensors/resolve.ts";
import { predictHookBinaries } from "../../sensors/binary-watch.ts";
import { formatDiagnostic, locate, validatePolicyFile } from "../../policy/validate.ts";

export async function run(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs("policy explain", argv, {
    output: { kind: "string", short: "o" },
    set: { kind: "list" },
    env: { kind: "bool" },
    "keep-sensors-on-exit": { kind: "bool" },
  });
  // As an agent run with --keep-sensors-on-exit resolves it: what is refused for want of a
  // pinned backstop, and what holds each hook after the agent exits.
  const keepSensors = flags["keep-sensors-on-exit"] === true;
  const format = (flags.output as string | undefined) ?? "text";
  if (format !== "text" && format !== "json") throw new UsageError(`ward policy explain: -o must be text or json, not "${format}"`);
  if (positionals.length === 0) throw new UsageError("usage: ward policy explain FILE... [-o text|json] [--set NAME=VALUE]... [--env] [--keep-sensors-on-exit]");
  // ${NAME} placeholders, as `ward policy validate` substitutes them.
  const substitute: Record<string, string> = {};
  if (flags.env === true) for (const [k, v] of Object.entries(process.env)) if (v !== undefined) substitute[k] = v;
  for (const kv of (flags.set as string[] | undefined) ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`ward policy explain: --set wants NAME=VALUE, got "${kv}"`);
    substitute[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  let failed = false;
  const explained: ExplainedPolicy[] = [];
  let features: HookFeatures | undefined;
  for (const file of positionals) {
    const r = await validatePolicyFile(file, { substitute });
    for (const d of r.diagnostics) if (d.severity === "error") process.stderr.write(`${formatDiagnostic(d)}\n`);
    if (!r.valid) { failed = true; continue; }
    for (const lp of r.policies) {
      try {
        const compiled = compilePolicy(lp.policy);
        features ??= { ...hostHookFeatures(), ...(keepSensors ? { keepSensors: true } : {}) };
        const e = withScope(withResolution(explainCompiled(compiled), resolvePolicy(lp.policy, features, compiled.monitor ? "monitor" : "enforce"), features), lp.policy, { keepSensors });
        explained.push(e);
        if (format === "text") process.stdout.write(formatExplained(e));
      } catch (err) {
        if (!(err instanceof PolicyCompileError)) throw err;
        failed = true;
        for (const p of err.problems) {
          const pos = locate(lp.sourceMap, p.path);
          process.stderr.write(`${formatDiagnostic({ file: lp.file, line: pos.line, column: pos.column, path: p.path, message: p.message, severity: "error" })}\n`);
        }
      }
    }
  }
  if (format === "json") {
    process.stdout.write(`${JSON.stringify(explained, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2)}\n`);
  }
  return failed ? 1 : 0;
}

function kernelText(f: HookFeatures): string {
  return `${f.release} (BPF LSM: ${f.bpfLsm ? "yes" : "no"}, kprobes: ${f.kprobes ? "yes" : "no"}, bpf_override_return: ${f.overrideReturn ? "yes" : "no"})`;
}

/** The engine's report with each hook's resolution on this kernel filled in. */
export function withResolution(e: ExplainedPolicy, r: PolicyResolution, f: HookFeatures): ExplainedPolicy {
  return {
    ...e,
    kernel: kernelText(f),
    hooks: e.hooks.map((h, i) => {
      const res = r.hooks[i];
      if (res === undefined) return h;
      if (!res.ok) return { ...h, applicable: false, rejected: res.reason, mechanism: `rejected on this kernel: ${res.reason}` };
      const binaries = res.backend === "guard" || res.backend === "fanotify" ? predictHookBinaries(res) : [];
      return { ...h, applicable: true, mechanism: res.mechanism, honored: res.actions, limits: res.limits, bypasses: res.bypasses, afterExit: res.afterExit, ...(binaries.length > 0 ? { binaries } : {}) };
    }),
  };
}

/** Adds the policy's workload scope in words (scoped policies only). */
export function withScope(e: ExplainedPolicy, policy: unknown, opts: { keepSensors?: boolean } = {}): ExplainedPolicy {
  let scope: PolicyScope;
  try {
    scope = scopeOfPolicy(policy);
  } catch (err) {
    return { ...e, scope: `invalid: ${(err as Error).message}` };
  }
  if (!isScoped(scope)) return e;
  // The agent's policy manager refuses it (manager.ts #trackScope); explain says so up front.
  const text = scope.hostSelector !== undefined
    ? `${describeScope(scope)}: refused by the agent (hostSelector cannot be a kernel scope: host processes are every cgroup that is not a container's)`
    : opts.keepSensors
      ? `${describeScope(scope)}: refused by an agent run with --keep-sensors-on-exit (the scope's membership is kept by the agent as containers start and stop; after it died the membership would be frozen and later containers silently not covered)`
      : `${describeScope(scope)}: decided in the kernel by cgroup v2 id (sub-cgroups included) before every hook; the running agent's status lists the workloads in it, and with none the policy enforces nothing`;
  return { ...e, scope: text };
}
