// The talk's secure enforcement policy (security_file_open, a `file` argument, matchArgs on
// the file, matchBinaries NotIn the allowed reader), as YAML. Suites, the resolver's unit
// tests and the benches all load this one policy, with their own paths, and the workload
// suites with their own scope (a selector block under spec, or a namespaced kind).
export interface SecureOpenPolicy {
  name: string;
  /** The protected file (or, with operator Prefix, the directory prefix). */
  file: string;
  /** The binary allowed to open it; without one the selector has no matchBinaries. */
  allowed?: string;
  /** matchArgs operator; the talk's is Equal. */
  operator?: "Equal" | "Prefix";
  /** The action lines after `- action: ` (default Sigkill; e.g. "Override\n        argError: -1"). */
  action?: string;
  /** TracingPolicyNamespaced in this namespace instead of a cluster-wide TracingPolicy. */
  namespace?: string;
  /** Lines placed under `spec:` before the hooks, indented two spaces (e.g. a containerSelector). */
  scope?: string;
}

export function secureOpenPolicy(p: SecureOpenPolicy): string {
  const kind = p.namespace === undefined ? "TracingPolicy" : "TracingPolicyNamespaced";
  const namespace = p.namespace === undefined ? "" : `  namespace: ${p.namespace}\n`;
  const binaries =
    p.allowed === undefined ? "" : `      matchBinaries:\n      - operator: NotIn\n        values:\n        - ${p.allowed}\n`;
  return `apiVersion: cilium.io/v1alpha1
kind: ${kind}
metadata:
  name: ${p.name}
${namespace}spec:
${p.scope ?? ""}  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
    - matchArgs:
      - index: 0
        operator: ${p.operator ?? "Equal"}
        values:
        - ${p.file}
${binaries}      matchActions:
      - action: ${p.action ?? "Sigkill"}
`;
}

/** A selector block for SecureOpenPolicy.scope: `containerSelector` or `podSelector` by labels. */
export function labelScope(selector: "containerSelector" | "podSelector", labels: Record<string, string>): string {
  const lines = Object.entries(labels).map(([k, v]) => `      ${k}: ${v}\n`);
  return `  ${selector}:\n    matchLabels:\n${lines.join("")}`;
}
