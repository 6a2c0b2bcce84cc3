// policies/: every library policy validates without errors, is listed in
// policies/README.md, and the embedded defaults never enforce.
import { describe, expect, test } from "bun:test";
import { readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { validatePolicyFile } from "../../src/policy/validate.ts";
import type { TracingPolicy } from "../../src/policy/types.ts";

const DIR = join(import.meta.dir, "..", "..", "policies");
const ENFORCING = ["Sigkill", "Signal", "Override", "NotifyEnforcer", "Set"];

async function yamlFiles(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((f) => /\.ya?ml$/.test(f)).sort();
}

function actions(p: TracingPolicy): string[] {
  const s = p.spec;
  return [...s.kprobes, ...s.fentries, ...s.tracepoints, ...s.uprobes, ...s.usdts, ...s.lsmhooks]
    .flatMap((h) => h.selectors)
    .flatMap((sel) => [...sel.matchActions, ...sel.matchReturnActions].map((a) => a.action));
}

const library = await yamlFiles(DIR);

describe("policy library", () => {
  test("has the promised policies", () => {
    for (const name of ["block-secret-read", "block-module-load", "deny-outbound-connect", "detect-setuid-root", "alert-etc-writes"]) {
      expect(library).toContain(`${name}.yaml`);
    }
  });

  for (const f of library) {
    test(`${f} validates with no errors and no warnings, and is listed in the README`, async () => {
      const r = await validatePolicyFile(join(DIR, f));
      expect(r.diagnostics.map((d) => `${d.severity} ${d.line}:${d.column} ${d.path}: ${d.message}`)).toEqual([]);
      expect(r.policies).toHaveLength(1);
      expect(r.policies[0]?.policy.metadata.name).toBe(f.replace(/\.ya?ml$/, ""));
      const readme = await readFile(join(DIR, "README.md"), "utf8");
      expect(readme).toContain(`\`${f}\``);
    });
  }

  test("block-secret-read matches the opened file, not a path string", async () => {
    const r = await validatePolicyFile(join(DIR, "block-secret-read.yaml"));
    const k = r.policies[0]?.policy.spec.kprobes[0];
    expect(k?.call).toBe("security_file_open");
    expect(k?.args[0]?.type).toBe("file");
    const sel = k?.selectors[0];
    expect(sel?.matchBinaries[0]?.operator).toBe("NotIn");
    expect(sel?.matchActions.map((a) => a.action)).toEqual(["Override", "Sigkill"]);
  });

  test("observability policies do not enforce", async () => {
    for (const f of ["detect-setuid-root.yaml", "alert-etc-writes.yaml"]) {
      const r = await validatePolicyFile(join(DIR, f));
      const used = actions(r.policies[0]!.policy);
      expect(used.filter((a) => ENFORCING.includes(a))).toEqual([]);
    }
  });

  test("the embedded defaults validate and never enforce", async () => {
    const dir = join(DIR, "defaults");
    const readme = await readFile(join(dir, "README.md"), "utf8");
    expect(readme).toContain("no TracingPolicy files");
    for (const f of await yamlFiles(dir)) {
      const r = await validatePolicyFile(join(dir, f));
      expect(r.valid).toBe(true);
      for (const { policy } of r.policies) expect(actions(policy).filter((a) => ENFORCING.includes(a))).toEqual([]);
    }
  });
});
