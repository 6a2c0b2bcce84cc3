// A problem with a policy document, as the agent's store, the API and `ward policy` report it.

export interface PolicyDiagnostic {
  message: string;
  /** Field path inside the document, e.g. "spec.kprobes[0].selectors[1].matchArgs[0].operator". */
  path?: string;
  file?: string;
  line?: number;
  column?: number;
}

/** `file:line:col: path: message`, as `ward policy validate` prints it (editors and CI logs read it). */
export function formatDiagnostic(d: PolicyDiagnostic): string {
  const where = [d.file, d.line, d.column].filter((x) => x !== undefined).join(":");
  return `${where ? `${where}: ` : ""}${d.path ? `${d.path}: ` : ""}${d.message}`;
}
