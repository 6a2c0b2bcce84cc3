// The agent's PolicyParser: src/policy/validate.ts adapted to the store's shape.
// Warnings do not block a policy; errors do, each with file, line, column and path.
import { validatePolicyText } from "../policy/validate.ts";
import type { TracingPolicy } from "../policy/types.ts";
import type { ParsedPolicy, ParseOutcome, PolicyMode } from "./policy-store.ts";

/** The mode a policy asks for itself: spec.options "policy-mode" (Tetragon's option name). */
function modeOf(p: TracingPolicy): PolicyMode | undefined {
  const v = p.spec.options.find((o) => o.name === "policy-mode")?.value.toLowerCase();
  return v === "enforce" || v === "monitor" ? v : undefined;
}

export function parsePolicies(text: string, file: string): ParseOutcome {
  const r = validatePolicyText(text, file);
  if (!r.valid) {
    const errors = r.diagnostics
      .filter((d) => d.severity === "error")
      .map((d) => ({ file: d.file, line: d.line, column: d.column, path: d.path, message: d.message }));
    return { ok: false, errors };
  }
  const policies: ParsedPolicy[] = r.policies.map((lp) => ({
    name: lp.policy.metadata.name,
    kind: lp.policy.kind,
    ...(modeOf(lp.policy) ? { mode: modeOf(lp.policy) } : {}),
    document: lp.policy,
    positions: lp.sourceMap,
  }));
  return { ok: true, policies };
}
