// Seeded mutation fuzzing of the corpus: 10,000 mutated policies (field
// deletes, duplicates, retypes, swaps, random scalars, renamed keys, text
// truncations and byte edits). The validator must return a result for each
// (never throw), finish each case quickly, keep memory bounded, and either
// accept the policy or report at least one error with a real position.
import { describe, expect, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { CORPUS_DIR, corpusFiles } from "../../build/corpus-table.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";

const TOTAL = 10_000;
const BATCHES = 10;
/** Per-case bound: far above the ~1-3 ms a case takes, so only a hang or super-linear blowup trips it, not a loaded CI machine. */
const CASE_MS = 2000;

/** mulberry32: small, fast, seedable. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

const SCALARS: Json[] = [
  "", "x", "list:nope", "${PODCIDR}", "/etc/shadow", "a".repeat(5000), "0x10", "-1", "1:2", "10.0.0.0/33", "::1",
  "CAP_SYS_ADMIN", "host_ns", "Equal", "Sigkill", "In", "file", "ünïcødé", "\u0000", "1m", "sys_openat",
  0, -1, 1, 4, 5, 255, 65536, 2 ** 32, 2 ** 53, 1.5, -(2 ** 63), true, false, null,
];
const KEYS = ["index", "type", "operator", "values", "action", "call", "args", "selectors", "matchArgs", "bogus", "argError", "namespace"];

function pick<T>(r: () => number, xs: readonly T[]): T {
  return xs[Math.floor(r() * xs.length)] as T;
}

function randomValue(r: () => number, depth = 0): Json {
  const k = r();
  if (depth > 2 || k < 0.6) return pick(r, SCALARS);
  if (k < 0.8) return Array.from({ length: Math.floor(r() * 4) }, () => randomValue(r, depth + 1));
  const o: Record<string, Json> = {};
  for (let i = 0; i < Math.floor(r() * 4); i++) o[pick(r, KEYS)] = randomValue(r, depth + 1);
  return o;
}

/** All containers in the tree, with a way to reach them. */
function containers(v: Json, out: (Json[] | Record<string, Json>)[] = []): (Json[] | Record<string, Json>)[] {
  if (Array.isArray(v)) {
    out.push(v);
    for (const x of v) containers(x, out);
  } else if (v !== null && typeof v === "object") {
    out.push(v);
    for (const x of Object.values(v)) containers(x, out);
  }
  return out;
}

function mutateObject(doc: Json, r: () => number): Json {
  const copy = structuredClone(doc);
  const edits = 1 + Math.floor(r() * 3);
  for (let e = 0; e < edits; e++) {
    const cs = containers(copy);
    if (cs.length === 0) return randomValue(r);
    const c = pick(r, cs);
    const op = Math.floor(r() * 7);
    if (Array.isArray(c)) {
      if (c.length === 0 || op === 0) c.push(randomValue(r));
      else {
        const i = Math.floor(r() * c.length);
        if (op === 1) c.splice(i, 1);
        else if (op === 2) c.push(structuredClone(c[i] as Json));
        else if (op === 3) c[i] = randomValue(r);
        else if (op === 4) for (let k = 0; k < 6; k++) c.push(structuredClone(c[i] as Json));
        else {
          const j = Math.floor(r() * c.length);
          [c[i], c[j]] = [c[j] as Json, c[i] as Json];
        }
      }
    } else {
      const keys = Object.keys(c);
      if (keys.length === 0 || op === 0) {
        c[pick(r, KEYS)] = randomValue(r);
        continue;
      }
      const key = pick(r, keys);
      if (op === 1) delete c[key];
      else if (op === 2) c[key] = randomValue(r);
      else if (op === 3) {
        const other = pick(r, keys);
        [c[key], c[other]] = [c[other] as Json, c[key] as Json];
      } else if (op === 4) {
        // rename: typo or case change
        const v = c[key] as Json;
        delete c[key];
        c[r() < 0.5 ? key.toUpperCase() : key.slice(0, -1)] = v;
      } else if (op === 5) c[key] = pick(r, SCALARS);
      else c[key] = [c[key] as Json];
    }
  }
  return copy;
}

function mutateText(text: string, r: () => number): string {
  const op = Math.floor(r() * 5);
  const at = Math.floor(r() * (text.length + 1));
  if (op === 0) return text.slice(0, at);
  if (op === 1) return text.slice(0, at) + pick(r, ["\t", ":", "-", "[", "{", "'", '"', "&a", "*a", "!!int", "\n  ", "#", "---\n", "? "]) + text.slice(at);
  if (op === 2) return text.slice(0, at) + text.slice(at + 1 + Math.floor(r() * 20));
  const lines = text.split("\n");
  const li = Math.floor(r() * lines.length);
  if (op === 3) lines.splice(li, 1);
  else lines.splice(li, 0, lines[li] ?? "");
  return lines.join("\n");
}

const corpus: { name: string; text: string; docs: Json[] }[] = [];
for (const f of await corpusFiles()) {
  const text = (await readFile(join(CORPUS_DIR, f), "utf8")).replaceAll("${PODCIDR}", "10.0.0.0/8").replaceAll("${SERVICECIDR}", "10.96.0.0/12");
  const docs = text.split(/^---$/m).map((d) => parse(d) as Json).filter((d) => d !== null);
  corpus.push({ name: f, text, docs });
}

function runCase(i: number): void {
  const r = rng(0x5eed + i);
  const base = pick(r, corpus);
  let text: string;
  if (r() < 0.7) {
    const docs = base.docs.map((d) => (r() < 0.8 ? mutateObject(d, r) : d));
    text = docs.map((d) => stringify(d)).join("---\n");
  } else {
    text = mutateText(base.text, r);
  }
  const t0 = performance.now();
  let res: ReturnType<typeof validatePolicyText>;
  try {
    res = validatePolicyText(text, `fuzz-${i}.yaml`);
  } catch (e) {
    throw new Error(`case ${i} (from ${base.name}) threw: ${e instanceof Error ? e.stack : String(e)}\n--- input ---\n${text.slice(0, 2000)}`);
  }
  const ms = performance.now() - t0;
  if (ms > CASE_MS) throw new Error(`case ${i} (from ${base.name}) took ${ms.toFixed(0)} ms`);
  const errors = res.diagnostics.filter((d) => d.severity === "error");
  if (res.valid) {
    if (errors.length !== 0 || res.policies.length === 0) throw new Error(`case ${i}: valid but errors=${errors.length} policies=${res.policies.length}`);
  } else {
    if (errors.length === 0) throw new Error(`case ${i}: invalid without an error`);
    for (const e of errors) {
      if (!(e.line >= 1 && e.column >= 1 && Number.isInteger(e.line) && Number.isInteger(e.column))) {
        throw new Error(`case ${i}: error without a position: ${JSON.stringify(e)}`);
      }
      if (e.message === "") throw new Error(`case ${i}: error without a message`);
    }
  }
}

describe("policy fuzz", () => {
  const heapBefore = process.memoryUsage().heapUsed;
  const per = TOTAL / BATCHES;
  for (let b = 0; b < BATCHES; b++) {
    test(`mutations ${b * per}..${(b + 1) * per - 1}`, () => {
      for (let i = b * per; i < (b + 1) * per; i++) runCase(i);
    }, 120_000);
  }

  test("memory stays bounded", () => {
    Bun.gc(true);
    const grown = process.memoryUsage().heapUsed - heapBefore;
    expect(grown).toBeLessThan(256 * 1024 * 1024);
  });

  test("alias expansion bombs end in an error, not a hang", () => {
    const lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"];
    for (let i = 1; i < 12; i++) lines.push(`a${i}: &a${i} [${Array(10).fill(`*a${i - 1}`).join(", ")}]`);
    const text = `x:\n${lines.map((l) => "  " + l).join("\n")}\napiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bomb\nspec:\n  lists:\n  - name: l\n    values: *a11\n`;
    const t0 = performance.now();
    const r = validatePolicyText(text, "bomb.yaml");
    // Takes ~0.1 s; exponential expansion would take minutes.
    expect(performance.now() - t0).toBeLessThan(10_000);
    expect(r.valid).toBe(false);
    expect(r.diagnostics[0]?.message).toContain("too large");
  }, 60_000);

  test("a mutation that is valid yields a model; the corpus mutations produce both outcomes", () => {
    let valid = 0;
    let invalid = 0;
    for (let i = 0; i < 500; i++) {
      const r = rng(0xbeef + i);
      const base = pick(r, corpus);
      const text = base.docs.map((d) => stringify(mutateObject(d, r))).join("---\n");
      if (validatePolicyText(text, "x.yaml").valid) valid++;
      else invalid++;
    }
    // A fuzzer that only ever produces one outcome is not exercising the validator.
    expect(valid).toBeGreaterThan(0);
    expect(invalid).toBeGreaterThan(0);
  }, 120_000);
});
