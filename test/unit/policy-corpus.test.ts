// The compatibility corpus: every Tetragon example policy is accepted (after
// the envsubst placeholders some of them carry are filled in), except the
// files listed in REJECTED with the reason ward gives. docs/corpus.md must be
// the output of build/corpus-table.ts for the committed corpus.
import { describe, expect, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { CORPUS_DIR, CORPUS_DOC, CORPUS_SUBSTITUTIONS, corpusFiles, renderCorpusTable } from "../../build/corpus-table.ts";
import { validatePolicyFile } from "../../src/policy/validate.ts";
import { ACTION_NAMES, ARG_OPERATORS, ARG_TYPES, type TracingPolicy } from "../../src/policy/types.ts";

/** The engine switches on canonical spellings; every accepted policy must use only those. */
function expectCanonical(p: TracingPolicy): void {
  const s = p.spec;
  for (const h of [...s.kprobes, ...s.fentries, ...s.tracepoints, ...s.uprobes, ...s.usdts, ...s.lsmhooks]) {
    const args = [...h.args, ...("data" in h ? h.data : [])];
    for (const a of args) expect(ARG_TYPES).toContain(a.type);
    for (const sel of h.selectors) {
      for (const m of [...sel.matchArgs, ...sel.matchData, ...sel.matchReturnArgs]) expect(ARG_OPERATORS).toContain(m.operator);
      for (const a of [...sel.matchActions, ...sel.matchReturnActions]) expect(ACTION_NAMES).toContain(a.action);
    }
  }
  // The model is plain data: it survives a JSON round trip unchanged (no bigint, no Map).
  expect(JSON.parse(JSON.stringify(p))).toEqual(p);
}

/** Deliberate rejections: file -> a fragment of the first error. Empty: ward accepts the whole corpus. */
const REJECTED: Record<string, string> = {};

/** Files that need placeholders substituted; without it they must fail on exactly that. */
const NEEDS_SUBSTITUTION = [
  "policylibrary__egress.yaml",
  "quickstart__network_egress_cluster.yaml",
  "quickstart__network_egress_cluster_enforce.yaml",
];

const files = await corpusFiles();

describe("tetragon corpus", () => {
  test("has the 83 files the README lists", () => {
    expect(files).toHaveLength(83);
  });

  for (const f of files) {
    test(f, async () => {
      const r = await validatePolicyFile(join(CORPUS_DIR, f), { substitute: CORPUS_SUBSTITUTIONS });
      const errors = r.diagnostics.filter((d) => d.severity === "error");
      const reason = REJECTED[f];
      if (reason === undefined) {
        expect(errors.map((e) => `${e.line}:${e.column} ${e.path}: ${e.message}`)).toEqual([]);
        expect(r.policies.length).toBeGreaterThanOrEqual(1);
        for (const { policy, sourceMap } of r.policies) {
          expect(["TracingPolicy", "TracingPolicyNamespaced"]).toContain(policy.kind);
          expect(sourceMap.get("metadata.name")?.line).toBeGreaterThan(0);
          expectCanonical(policy);
        }
      } else {
        expect(errors[0]?.message).toContain(reason);
      }
      for (const d of r.diagnostics) {
        expect(d.line).toBeGreaterThan(0);
        expect(d.column).toBeGreaterThan(0);
      }
    });
  }

  test("placeholder files are rejected without substitution, naming the placeholder", async () => {
    for (const f of NEEDS_SUBSTITUTION) {
      const r = await validatePolicyFile(join(CORPUS_DIR, f));
      expect(r.valid).toBe(false);
      const errors = r.diagnostics.filter((d) => d.severity === "error");
      expect(errors.length).toBeGreaterThan(0);
      for (const e of errors) expect(e.message).toContain("unsubstituted placeholder ${");
    }
    // And no other corpus file uses placeholders.
    for (const f of files.filter((x) => !NEEDS_SUBSTITUTION.includes(x))) {
      const text = await readFile(join(CORPUS_DIR, f), "utf8");
      expect(text.includes("${")).toBe(false);
    }
  }, 60_000);

  test("the multi-document file yields its policy and skips the Pod with a warning", async () => {
    const r = await validatePolicyFile(join(CORPUS_DIR, "other__file-block-kubectl-exec-access.yaml"));
    expect(r.policies).toHaveLength(1);
    expect(r.diagnostics.some((d) => d.severity === "warning" && d.message.includes("is a Pod"))).toBe(true);
  });

  test("the corpus lint findings include the syscall-entry path filters", async () => {
    const r = await validatePolicyFile(join(CORPUS_DIR, "openat_write.yaml"));
    expect(r.valid).toBe(true);
    expect(r.diagnostics.some((d) => d.severity === "warning" && d.message.includes("security_file_open"))).toBe(true);
  });

  test("docs/corpus.md is current (regenerate: bun run build/corpus-table.ts)", async () => {
    const committed = await readFile(CORPUS_DOC, "utf8");
    expect(committed).toBe(await renderCorpusTable());
  }, 60_000);
});
