// Walks a positioned document tree against the schema descriptors: unknown
// fields, wrong types, missing required fields, enum values (with aliases
// normalized to the canonical spelling), and CRD defaults filled in. The
// result is a plain object shaped like types.ts; it is only trusted as a
// TracingPolicy once this walk and rules.ts reported no error.
import type { PMap, PNode, PScalar } from "./parse.ts";
import { joinPath } from "./parse.ts";
import type { FieldDesc, FieldType, ObjectDesc } from "./schema.ts";
import type { Severity, SourcePos } from "./types.ts";

export interface Sink {
  report(severity: Severity, pos: SourcePos, path: string, message: string): void;
}

export function describe(n: PNode): string {
  if (n.kind === "map") return "a map";
  if (n.kind === "seq") return "a list";
  const v = n.value;
  if (v === null) return "nothing (null)";
  if (typeof v === "string") return `the string ${JSON.stringify(v)}`;
  if (typeof v === "boolean") return `the boolean ${v}`;
  return `the number ${n.source}`;
}

export function checkObject(node: PNode, desc: ObjectDesc, path: string, sink: Sink): Record<string, unknown> | undefined {
  if (node.kind !== "map") {
    sink.report("error", node.pos, path, `expected a ${desc.name} (a map), found ${describe(node)}`);
    return undefined;
  }
  return checkMap(node, desc, path, sink);
}

function checkMap(node: PMap, desc: ObjectDesc, path: string, sink: Sink): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const seen = new Set<string>();
  for (const e of node.entries) {
    const fieldPath = joinPath(path, e.key);
    const fd = Object.hasOwn(desc.fields, e.key) ? desc.fields[e.key] : undefined;
    if (fd === undefined) {
      const gone = desc.removed !== undefined && Object.hasOwn(desc.removed, e.key) ? desc.removed[e.key] : undefined;
      if (gone !== undefined) {
        sink.report("error", e.keyPos, fieldPath, gone);
        continue;
      }
      const hint = suggest(e.key, Object.keys(desc.fields));
      sink.report("error", e.keyPos, fieldPath, `unknown field "${e.key}" in ${desc.name}${hint}; allowed fields: ${Object.keys(desc.fields).filter((k) => desc.fields[k]?.type.t !== "ignored").join(", ")}`);
      continue;
    }
    seen.add(e.key);
    if (fd.type.t === "ignored") continue;
    if (e.value.kind === "scalar" && e.value.value === null) {
      // null means "not set" in Go's decoding; required fields still need a value.
      if (fd.required) sink.report("error", e.value.pos, fieldPath, `${desc.name}.${e.key} is required but has no value`);
      else applyDefault(out, e.key, fd, fieldPath, sink, e.value.pos);
      continue;
    }
    const v = checkValue(e.value, fd.type, fieldPath, sink);
    // On failure fall back to the default so the object keeps its shape; the
    // error already taints this path.
    if (v !== undefined) out[e.key] = v;
    else applyDefault(out, e.key, fd, fieldPath, sink, e.value.pos);
  }
  for (const [name, fd] of Object.entries(desc.fields)) {
    if (seen.has(name)) continue;
    if (fd.required) {
      sink.report("error", node.pos, joinPath(path, name), `missing required field "${name}" in ${desc.name}`);
    } else {
      applyDefault(out, name, fd, joinPath(path, name), sink, node.pos);
    }
  }
  return out;
}

function applyDefault(out: Record<string, unknown>, name: string, fd: FieldDesc, path: string, sink: Sink, pos: SourcePos): void {
  if (fd.default !== undefined) out[name] = fd.default;
  else if (fd.type.t === "array") out[name] = [];
  else if (fd.type.t === "stringMap" || fd.type.t === "objectMap") out[name] = {};
  else if (fd.type.t === "object" && fd.fillEmpty === true) out[name] = checkMap({ kind: "map", pos, entries: [] }, fd.type.obj, path, sink);
}

function checkValue(n: PNode, type: FieldType, path: string, sink: Sink): unknown {
  switch (type.t) {
    case "ignored":
      return undefined;
    case "string":
      return checkString(n, path, sink);
    case "int": {
      if (n.kind !== "scalar" || (typeof n.value !== "bigint" && typeof n.value !== "number")) {
        sink.report("error", n.pos, path, `expected an integer, found ${describe(n)}`);
        return undefined;
      }
      if (typeof n.value === "number" && !Number.isInteger(n.value)) {
        sink.report("error", n.pos, path, `expected an integer, found ${describe(n)}`);
        return undefined;
      }
      const v = BigInt(n.value);
      if (v < type.min || v > type.max) {
        sink.report("error", n.pos, path, `${n.source} is out of range (${type.min}..${type.max})`);
        return undefined;
      }
      return Number(v);
    }
    case "bool":
      if (n.kind !== "scalar" || typeof n.value !== "boolean") {
        sink.report("error", n.pos, path, `expected true or false, found ${describe(n)}`);
        return undefined;
      }
      return n.value;
    case "enum": {
      const s = n.kind === "scalar" && typeof n.value === "string" ? n.value : undefined;
      if (s === undefined) {
        sink.report("error", n.pos, path, `expected one of ${type.values.join(", ")}; found ${describe(n)}`);
        return undefined;
      }
      if (type.values.includes(s)) return s;
      const alias = type.aliases !== undefined && Object.hasOwn(type.aliases, s) ? type.aliases[s] : undefined;
      if (alias !== undefined) {
        if (alias.note !== undefined) sink.report("warning", n.pos, path, alias.note);
        return alias.to;
      }
      if (type.caseInsensitive === true) {
        const hit = type.values.find((v) => v.toLowerCase() === s.toLowerCase());
        if (hit !== undefined) return hit;
      }
      const gone = Object.entries(type.removed ?? {}).find(([k]) => k.toLowerCase() === s.toLowerCase())?.[1];
      if (gone !== undefined) {
        sink.report("error", n.pos, path, gone);
        return undefined;
      }
      const hint = suggest(s, [...type.values, ...Object.keys(type.aliases ?? {})]);
      sink.report("error", n.pos, path, `"${s}" is not allowed here${hint}; allowed: ${type.values.join(", ")}`);
      return undefined;
    }
    case "array": {
      if (n.kind !== "seq") {
        sink.report("error", n.pos, path, `expected a list, found ${describe(n)}`);
        return undefined;
      }
      // Failed items become null so indexes stay aligned with the source; the
      // recorded error taints this path and rules.ts skips tainted subtrees.
      return n.items.map((it, i) => checkValue(it, type.of, joinPath(path, i), sink) ?? null);
    }
    case "object":
      return checkObject(n, type.obj, path, sink);
    case "stringMap": {
      if (n.kind !== "map") {
        sink.report("error", n.pos, path, `expected a map of strings, found ${describe(n)}`);
        return undefined;
      }
      const out: Record<string, string> = {};
      for (const e of n.entries) {
        const v = checkString(e.value, joinPath(path, e.key), sink);
        if (v !== undefined) out[e.key] = v;
      }
      return out;
    }
    case "objectMap": {
      if (n.kind !== "map") {
        sink.report("error", n.pos, path, `expected a map of ${type.obj.name}, found ${describe(n)}`);
        return undefined;
      }
      const out: Record<string, unknown> = {};
      for (const e of n.entries) {
        const v = checkObject(e.value, type.obj, joinPath(path, e.key), sink);
        if (v !== undefined) out[e.key] = v;
      }
      return out;
    }
  }
}

/** Go's sigs.k8s.io/yaml turns a YAML number or boolean into a string when the
 * target field is a string, so `values: [80]` works; we do the same with the
 * number's source text ("0x10" stays "0x10"). Maps and lists are errors. */
function checkString(n: PNode, path: string, sink: Sink): string | undefined {
  if (n.kind !== "scalar" || n.value === null) {
    sink.report("error", n.pos, path, `expected a string, found ${describe(n)}`);
    return undefined;
  }
  const s = typeof n.value === "string" ? n.value : (n as PScalar).source;
  if (n.placeholders.length > 0) {
    const names = n.placeholders.map((p) => "${" + p + "}").join(", ");
    sink.report("error", n.pos, path, `unsubstituted placeholder ${names} in ${JSON.stringify(s)}; substitute it first (ward policy validate --set ${n.placeholders[0]}=VALUE, or envsubst)`);
    return undefined;
  }
  return s;
}

/** " (did you mean "x"?)" when a known name is close to what was written. */
export function suggest(s: string, known: readonly string[]): string {
  const lower = s.toLowerCase();
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const d = k.toLowerCase() === lower ? 0 : editDistance(lower, k.toLowerCase());
    if (d < bestD) [best, bestD] = [k, d];
  }
  return best !== undefined && bestD <= Math.max(1, Math.floor(s.length / 4)) ? ` (did you mean "${best}"?)` : "";
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 3) return 99;
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) {
      cur[j] = Math.min((prev[j] ?? 0) + 1, (cur[j - 1] ?? 0) + 1, (prev[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = cur;
  }
  return prev[b.length] ?? 99;
}
