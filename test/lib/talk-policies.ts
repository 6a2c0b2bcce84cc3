// The talk's secure enforcement policy (security_file_open, a `file` argument, matchArgs on
// the file, matchBinaries NotIn the allowed reader), as YAML. Suites, the resolver's unit
// tests and bench/enforce.ts all load this one policy, with their own paths.
export interface SecureOpenPolicy {
  name: string;
  /** The protected file (or, with operator Prefix, the directory prefix). */
  file: string;
  /** The binary allowed to open it. */
  allowed: string;
  /** matchArgs operator; the talk's is Equal. */
  operator?: "Equal" | "Prefix";
  /** The action lines after `- action: ` (default Sigkill; e.g. "Override\n        argError: -1"). */
  action?: string;
}

export function secureOpenPolicy(p: SecureOpenPolicy): string {
  return `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${p.name}
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
        operator: ${p.operator ?? "Equal"}
        values:
        - ${p.file}
      matchBinaries:
      - operator: NotIn
        values:
        - ${p.allowed}
      matchActions:
      - action: ${p.action ?? "Sigkill"}
`;
}
