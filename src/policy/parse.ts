// YAML / JSON text -> a small positioned tree per document.
//
// We do not hand the `yaml` package's toJS() output to the validator because
// every diagnostic must point at a line and column; instead each node keeps
// the 1-based position of its first character (and map entries the position
// of their key). JSON is parsed by the same YAML parser (JSON is a subset of
// YAML 1.2), so both get positions the same way.
import { isAlias, isMap, isScalar, isSeq, LineCounter, parseAllDocuments, Scalar, type Document, type Node as YamlNode } from "yaml";
import { PLACEHOLDER } from "./values.ts";
import type { PolicyError, SourcePos } from "./types.ts";

export type ScalarValue = string | number | bigint | boolean | null;

export type PNode = PMap | PSeq | PScalar;
export interface PMap {
  kind: "map";
  pos: SourcePos;
  entries: PEntry[];
}
export interface PEntry {
  key: string;
  keyPos: SourcePos;
  value: PNode;
}
export interface PSeq {
  kind: "seq";
  pos: SourcePos;
  items: PNode[];
}
export interface PScalar {
  kind: "scalar";
  pos: SourcePos;
  value: ScalarValue;
  /** The scalar's text after YAML unescaping (for plain numbers: "0x10", "080", ...). */
  source: string;
  /** True when written quoted or as a block scalar, i.e. certainly a string. */
  quoted: boolean;
  /** Placeholders still present after substitution, e.g. ["PODCIDR"]. */
  placeholders: string[];
}

export interface ParsedDocument {
  /** 0-based position of the document in the file. */
  index: number;
  root: PNode;
}

export interface ParseResult {
  documents: ParsedDocument[];
  /** Syntax errors (severity "error", path ""), and duplicate keys (path of the second one). */
  errors: PolicyError[];
}

export interface ParseOptions {
  /** Values for ${NAME} placeholders, substituted into string scalars before validation. */
  substitute?: Readonly<Record<string, string>>;
}

/** Upper bound on nodes per document, so alias bombs and giant inputs end in an error, not in memory exhaustion. */
export const MAX_NODES = 200_000;

class TooLarge extends Error {}

export function parsePolicyText(text: string, file: string, opts: ParseOptions = {}): ParseResult {
  const lineCounter = new LineCounter();
  const errors: PolicyError[] = [];
  const posOf = (offset: number): SourcePos => {
    const p = lineCounter.linePos(offset);
    return { line: p.line, column: p.col };
  };
  // intAsBigInt keeps 64-bit values exact. Duplicate keys are errors, like Tetragon's strict
  // unmarshal makes them, but found below rather than by the parser (uniqueKeys): its
  // "Map keys must be unique" names neither the key nor where it was first written.
  const docs = parseAllDocuments(text, { lineCounter, intAsBigInt: true, uniqueKeys: false, prettyErrors: false, strict: true });
  const list: Document.Parsed[] = Array.isArray(docs) ? docs : [];
  const documents: ParsedDocument[] = [];
  list.forEach((doc, index) => {
    let hadError = false;
    for (const e of doc.errors) {
      hadError = true;
      // The parser notices an unterminated quote at the end of the input; point at
      // where the quoted scalar opened instead, which is where the fix goes.
      const quote = /^Missing closing (["'])quote/.exec(e.message)?.[1];
      const opening = quote === undefined ? undefined : findOpeningQuote(text, quote, e.pos[0]);
      const at = posOf(opening ?? e.pos[0]);
      errors.push({ file, line: at.line, column: at.column, path: "", message: `YAML syntax error: ${firstLine(e.message)}`, severity: "error" });
    }
    if (hadError) return;
    const contents = doc.contents;
    // An empty document (e.g. a trailing "---") carries nothing; skip it.
    if (contents === null || (isScalar(contents) && contents.value === null)) return;
    let count = 0;
    // Duplicate keys of this document; it yields no tree when there is one (which value the
    // author meant is unknowable), and every duplicate is reported, not just the first.
    const duplicates: PolicyError[] = [];
    // Aliases share the converted subtree of their anchor (converted once), but
    // their size still counts toward MAX_NODES, so an alias bomb is rejected
    // after O(distinct nodes) work instead of expanding exponentially.
    // Alias.resolve() searches the whole document, so its result is cached too.
    const converted = new Map<unknown, { node: PNode; size: number }>();
    // path: the node's field path in the document, for diagnostics (an alias's subtree is
    // converted once, under the path of its first use).
    const convert = (n: unknown, depth: number, path: string): PNode => {
      if (++count > MAX_NODES || depth > 200) throw new TooLarge();
      if (isAlias(n)) {
        const target = n.resolve(doc);
        if (target === undefined) return scalarNode(null, "", false, posOf(n.range?.[0] ?? 0));
        let hit = converted.get(target);
        if (hit === undefined) {
          const before = count;
          const node = convert(target, depth + 1, path);
          hit = { node, size: count - before };
          converted.set(target, hit);
        } else {
          count += hit.size;
          if (count > MAX_NODES) throw new TooLarge();
        }
        return { ...hit.node, pos: posOf(n.range?.[0] ?? 0) } as PNode;
      }
      if (isMap(n)) {
        const entries: PEntry[] = [];
        const firstAt = new Map<string, SourcePos>();
        for (const pair of n.items) {
          const k = pair.key as YamlNode | null;
          const keyPos = k && k.range ? posOf(k.range[0]) : posOf(n.range?.[0] ?? 0);
          const key = isScalar(k) ? String(k.value) : k === null ? "" : String(k);
          const keyPath = joinPath(path, key);
          const first = firstAt.get(key);
          if (first === undefined) firstAt.set(key, keyPos);
          else {
            duplicates.push({ file, line: keyPos.line, column: keyPos.column, path: keyPath, message: `duplicate key ${JSON.stringify(key)} (first at ${file}:${first.line}:${first.column})`, severity: "error" });
          }
          const v = pair.value as YamlNode | null;
          let value = v === null ? scalarNode(null, "", false, keyPos) : convert(v, depth + 1, keyPath);
          // `key:` with nothing after it: point at the key, not at the empty spot after the colon.
          if (value.kind === "scalar" && value.value === null && value.source === "") value = { ...value, pos: keyPos };
          entries.push({ key, keyPos, value });
        }
        return { kind: "map", pos: posOf(n.range?.[0] ?? 0), entries };
      }
      if (isSeq(n)) {
        const items = n.items.map((it, i) => convert(it, depth + 1, joinPath(path, i)));
        return { kind: "seq", pos: posOf(n.range?.[0] ?? 0), items };
      }
      if (isScalar(n)) {
        const raw = n.value as unknown;
        const source = n.source ?? String(raw);
        const quoted = n.type !== Scalar.PLAIN && n.type !== undefined;
        const pos = posOf(n.range?.[0] ?? 0);
        let value: ScalarValue = typeof raw === "string" || typeof raw === "number" || typeof raw === "bigint" || typeof raw === "boolean" || raw === null ? raw : String(raw);
        if (typeof value === "string") value = substitute(value, opts.substitute);
        const node = scalarNode(value, typeof value === "string" ? value : source, quoted, pos);
        return node;
      }
      return scalarNode(null, "", false, { line: 1, column: 1 });
    };
    try {
      const root = convert(contents, 0, "");
      if (duplicates.length > 0) errors.push(...duplicates);
      else documents.push({ index, root });
    } catch (e) {
      if (!(e instanceof TooLarge)) throw e;
      const at = posOf(contents.range?.[0] ?? 0);
      errors.push({ file, line: at.line, column: at.column, path: "", message: `document ${index} is too large or too deeply nested (more than ${MAX_NODES} nodes or 200 levels, counting alias expansion)`, severity: "error" });
    }
  });
  return { documents, errors };
}

/** Offset of the last quote before `end` that starts a scalar (after ": ", "- ", "[", "," or indentation). */
function findOpeningQuote(text: string, quote: string, end: number): number | undefined {
  for (let i = Math.min(end, text.length) - 1; i >= 0; i--) {
    if (text[i] !== quote) continue;
    const before = text.slice(Math.max(0, text.lastIndexOf("\n", i - 1) + 1), i);
    if (/(^\s*|[:\-]\s+|[[{,]\s*)$/.test(before)) return i;
  }
  return undefined;
}

function scalarNode(value: ScalarValue, source: string, quoted: boolean, pos: SourcePos): PScalar {
  const placeholders = typeof value === "string" ? [...value.matchAll(PLACEHOLDER)].map((m) => m[1] ?? "") : [];
  return { kind: "scalar", pos, value, source, quoted, placeholders };
}

function substitute(s: string, vars: Readonly<Record<string, string>> | undefined): string {
  if (vars === undefined || !s.includes("${")) return s;
  return s.replace(PLACEHOLDER, (whole, name: string) => (Object.hasOwn(vars, name) ? (vars[name] ?? whole) : whole));
}

function firstLine(s: string): string {
  return s.split("\n")[0] ?? s;
}

/** Format a field path segment: `.name` for identifier-like keys, `["odd key"]` otherwise. */
export function joinPath(base: string, key: string | number): string {
  if (typeof key === "number") return `${base}[${key}]`;
  const seg = /^[A-Za-z_][A-Za-z0-9_-]*$/.test(key) ? key : JSON.stringify(key);
  if (seg.startsWith('"')) return `${base}[${seg}]`;
  return base === "" ? seg : `${base}.${seg}`;
}

/** Build path -> position for every node of a document (value positions; keys for null values). */
export function buildSourceMap(root: PNode, base = ""): Map<string, SourcePos> {
  const map = new Map<string, SourcePos>();
  const walk = (n: PNode, path: string): void => {
    map.set(path, n.pos);
    if (n.kind === "map") for (const e of n.entries) walk(e.value, joinPath(path, e.key));
    else if (n.kind === "seq") n.items.forEach((it, i) => walk(it, joinPath(path, i)));
  };
  walk(root, base);
  return map;
}
