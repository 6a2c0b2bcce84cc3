// The agent's PolicyParser: H4's parser and validator, adapted to the store's shape.
// Warnings do not block a policy; errors do, each with file, line, column and path.
import { parsePolicyText } from "../policy/parse.ts";
import type { PolicyError } from "../policy/types.ts";
import type { ParseOutcome, PolicyDiagnostic, PolicyMode } from "./policy-store.ts";

function diagnostic(e: PolicyError): PolicyDiagnostic {
  return { file: e.file, line: e.line, column: e.column, path: e.path, message: e.message };
}

/** Interim: syntax plus the envelope (kind, metadata.name) until src/policy/validate.ts lands. */
export function parsePolicies(text: string, file: string): ParseOutcome {
  const parsed = parsePolicyText(text, file);
  const errors = parsed.errors.filter((e) => e.severity === "error").map(diagnostic);
  const policies = [];
  for (const doc of parsed.documents) {
    const root = doc.root;
    if (root.kind !== "map") {
      errors.push({ file, line: root.pos.line, column: root.pos.column, path: "", message: "a policy must be a mapping" });
      continue;
    }
    const get = (k: string) => root.entries.find((e) => e.key === k)?.value;
    const kind = get("kind");
    const meta = get("metadata");
    const name = meta?.kind === "map" ? meta.entries.find((e) => e.key === "name")?.value : undefined;
    if (kind?.kind !== "scalar" || (kind.value !== "TracingPolicy" && kind.value !== "TracingPolicyNamespaced")) {
      errors.push({ file, line: (kind ?? root).pos.line, column: (kind ?? root).pos.column, path: "kind", message: "kind must be TracingPolicy or TracingPolicyNamespaced" });
      continue;
    }
    if (name?.kind !== "scalar" || typeof name.value !== "string" || name.value === "") {
      errors.push({ file, line: (name ?? meta ?? root).pos.line, column: (name ?? meta ?? root).pos.column, path: "metadata.name", message: "metadata.name is required" });
      continue;
    }
    policies.push({ name: name.value, kind: kind.value, mode: undefined as PolicyMode | undefined, document: root });
  }
  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, policies };
}
