// Policy file -> validated, normalized TracingPolicy models plus diagnostics.
//
// Pipeline per file: parse (YAML/JSON, positions) -> per document: pick the
// policy objects -> structural walk (schema.ts) -> semantic rules (rules.ts,
// lint.ts) -> file-level checks (duplicate names). Every diagnostic carries
// file:line:column and a field path; a policy with any error yields no model.
import { readFile } from "node:fs/promises";
import { checkObject, type Sink } from "./check-structure.ts";
import { buildSourceMap, parsePolicyText, type PNode } from "./parse.ts";
import { checkPolicy } from "./rules.ts";
import { POLICY } from "./schema.ts";
import type { LoadedPolicy, PolicyError, Severity, SourcePos, TracingPolicy } from "./types.ts";

export interface ValidateOptions {
  /** Values for ${NAME} placeholders (envsubst-style), applied before validation. */
  substitute?: Readonly<Record<string, string>>;
}

export interface ValidationResult {
  /** Policies without errors, in file order. */
  policies: LoadedPolicy[];
  /** Errors and warnings, sorted by position. */
  diagnostics: PolicyError[];
  /** True when there is no diagnostic of severity "error". */
  valid: boolean;
}

/** Thrown by validatePolicyFile when the file cannot be read at all. */
export class PolicyFileError extends Error {
  constructor(readonly file: string, message: string) {
    super(`${file}: ${message}`);
    this.name = "PolicyFileError";
  }
}

export function validatePolicyText(text: string, file: string, opts: ValidateOptions = {}): ValidationResult {
  const parsed = parsePolicyText(text, file, opts.substitute === undefined ? {} : { substitute: opts.substitute });
  const diagnostics: PolicyError[] = [...parsed.errors];
  const policies: LoadedPolicy[] = [];
  const names = new Map<string, SourcePos>();
  let candidates = 0;

  for (const doc of parsed.documents) {
    // A JSON array (or a YAML sequence) of policies is accepted as well.
    const roots: { node: PNode; base: string }[] =
      doc.root.kind === "seq" ? doc.root.items.map((n, i) => ({ node: n, base: `[${i}]` })) : [{ node: doc.root, base: "" }];
    for (const { node, base } of roots) {
      const at = (p: string): string => (base === "" ? p : p === "" ? base : `${base}.${p}`);
      if (node.kind !== "map") {
        diagnostics.push({ file, ...node.pos, path: at(""), message: `document ${doc.index}: expected a TracingPolicy (a map with apiVersion, kind, metadata, spec), found ${node.kind === "seq" ? "a list" : "a scalar"}`, severity: "error" });
        continue;
      }
      const apiVersion = node.entries.find((e) => e.key === "apiVersion")?.value;
      const av = apiVersion?.kind === "scalar" && typeof apiVersion.value === "string" ? apiVersion.value : undefined;
      if (av !== undefined && !av.startsWith("cilium.io/")) {
        // kubectl-style bundles mix other objects (e.g. a Pod) with policies; they are not ours to judge.
        const kind = node.entries.find((e) => e.key === "kind")?.value;
        const kn = kind?.kind === "scalar" ? String(kind.value) : "?";
        diagnostics.push({ file, ...node.pos, path: at(""), message: `document ${doc.index} is a ${kn} (apiVersion ${av}), not a TracingPolicy; skipped`, severity: "warning" });
        continue;
      }
      candidates++;
      const local: PolicyError[] = [];
      const errorPaths: string[] = [];
      const sourceMap = buildSourceMap(node);
      const sink: Sink = {
        report(severity: Severity, pos: SourcePos, path: string, message: string): void {
          if (severity === "error") errorPaths.push(path);
          local.push({ file, line: pos.line, column: pos.column, path: at(path), message, severity });
        },
      };
      const model = checkObject(node, POLICY, "", sink);
      if (model !== undefined && typeof model.metadata === "object" && model.metadata !== null) {
        checkPolicy(model as unknown as TracingPolicy, {
          report(severity, path, message) {
            sink.report(severity, locate(sourceMap, path), path, message);
          },
          written(path) {
            return sourceMap.has(path);
          },
          tainted(path) {
            return errorPaths.some((e) => e === path || e.startsWith(`${path}.`) || e.startsWith(`${path}[`));
          },
        });
      }
      const policy = model as unknown as TracingPolicy | undefined;
      // Duplicate names within one file: the second definition would replace the first.
      const name = policy?.metadata?.name;
      if (typeof name === "string" && name !== "") {
        const key = `${policy?.metadata.namespace ?? ""}/${name}`;
        const first = names.get(key);
        const pos = locate(sourceMap, "metadata.name");
        if (first !== undefined) {
          sink.report("error", pos, "metadata.name", `duplicate policy name "${name}" in this file (first defined at ${first.line}:${first.column})`);
        } else names.set(key, pos);
      }
      diagnostics.push(...local);
      if (policy !== undefined && !local.some((d) => d.severity === "error")) {
        policies.push({ policy, file, document: doc.index, sourceMap });
      }
    }
  }
  if (candidates === 0 && parsed.errors.length === 0) {
    diagnostics.push({ file, line: 1, column: 1, path: "", message: "no TracingPolicy found in this file", severity: "error" });
  }
  diagnostics.sort((a, b) => a.line - b.line || a.column - b.column);
  return { policies, diagnostics, valid: !diagnostics.some((d) => d.severity === "error") };
}

export async function validatePolicyFile(path: string, opts: ValidateOptions = {}): Promise<ValidationResult> {
  let text: string;
  try {
    text = await readFile(path, "utf8");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new PolicyFileError(path, code === "ENOENT" ? "no such file" : code === "EISDIR" ? "is a directory" : e instanceof Error ? e.message : String(e));
  }
  return validatePolicyText(text, path, opts);
}

/** Position of `path`, or of its nearest ancestor that exists in the source (defaults, merged macros). */
export function locate(map: ReadonlyMap<string, SourcePos>, path: string): SourcePos {
  let p = path;
  for (;;) {
    const hit = map.get(p);
    if (hit !== undefined) return hit;
    if (p === "") return { line: 1, column: 1 };
    const cut = Math.max(p.lastIndexOf("."), p.lastIndexOf("["));
    p = cut <= 0 ? "" : p.slice(0, cut);
  }
}

/** `file:line:col: path: message`, with `warning: ` in front of warnings. */
export function formatDiagnostic(d: PolicyError): string {
  const head = `${d.file}:${d.line}:${d.column}: ${d.path === "" ? "" : `${d.path}: `}${d.message}`;
  return d.severity === "warning" ? `warning: ${head}` : head;
}
