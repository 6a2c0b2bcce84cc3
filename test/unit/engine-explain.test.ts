// `ward policy explain`: the per-hook report read back from the compiled tables.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compilePolicy } from "../../src/policy/engine.ts";
import { explainCompiled, formatExplained, MECHANISM_PENDING } from "../../src/policy/explain.ts";
import { CORPUS_DIR, CORPUS_SUBSTITUTIONS } from "../../build/corpus-table.ts";
import { corpusSyscalls, policyFrom } from "./engine-helpers.ts";

const root = join(import.meta.dir, "..", "..");
const POLICY = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: explain-me
spec:
  kprobes:
  - call: "security_file_open"
    syscall: false
    args:
    - index: 0
      type: "file"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Prefix"
        values: ["/etc/", "/root/", "/boot/", "/var/lib/", "/srv/"]
      matchBinaries:
      - operator: "NotIn"
        values: ["/usr/bin/sudo"]
      matchActions:
      - action: Override
        argError: -13
      - action: Post
        rateLimit: "10s"
  - call: "tcp_close"
    syscall: false
    args:
    - index: 0
      type: "sock"
`;

describe("explain", () => {
  test("per hook: args, matchers with value storage and sizes, actions, mechanism note", () => {
    const e = explainCompiled(compilePolicy(policyFrom(POLICY)));
    expect(e.hooks.length).toBe(2);
    const [open, close] = e.hooks;
    expect(open?.args).toEqual([{ slot: 0, type: "file", source: "arg", index: 0 }]);
    const [prefix, bin] = open?.selectors[0]?.matchers ?? [];
    expect(prefix).toMatchObject({ field: "matchArgs", operator: "Prefix", storage: "prefix LPM trie", entries: 5 });
    expect(prefix?.sample).toEqual(['"/etc/"', '"/root/"', '"/boot/"', '"/var/lib/"']);
    expect(bin).toMatchObject({ field: "matchBinaries", operator: "NotIn", entries: 1, sample: ['"/usr/bin/sudo"'] });
    expect(open?.selectors[0]?.actions.map((a) => a.action)).toEqual(["Override", "Post"]);
    expect(close?.alwaysPost).toBe(true);
    expect(open?.mechanism).toBe(MECHANISM_PENDING);
    const text = formatExplained(e);
    expect(text).toContain("matchArgs Prefix on arg slot 0 (file): prefix LPM trie");
    expect(text).toContain("(+1 more)");
    expect(text).toContain("Override(argError=-13)");
    expect(text).toContain("Post(rateLimit=10000ms/thread)");
    expect(text).toContain("no selectors: every call posts an event");
  });

  test("ward policy explain FILE prints the report and exits 0; a compile problem exits 1 with file:line:col", () => {
    const dir = mkdtempSync(join(tmpdir(), "ward-explain-"));
    try {
      const good = join(dir, "good.yaml");
      writeFileSync(good, POLICY);
      const r = spawnSync(join(root, "node_modules", ".bin", "bun"), [join(root, "src", "cli", "main.ts"), "policy", "explain", good], { encoding: "utf8" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(r.stdout).toContain("policy explain-me (mode enforce): 2 hook(s)");
      // The command resolves each hook for this kernel (src/sensors/resolve.ts): a mechanism or a rejection.
      expect(r.stdout).toMatch(/on this kernel, .*: /);
      expect(r.stdout).toMatch(/    (mechanism|REJECTED on this kernel): /);
      const json = spawnSync(join(root, "node_modules", ".bin", "bun"), [join(root, "src", "cli", "main.ts"), "policy", "explain", "-o", "json", good], { encoding: "utf8" });
      expect(json.status).toBe(0);
      expect((JSON.parse(json.stdout) as { hooks: unknown[] }[])[0]?.hooks.length).toBe(2);
      // ${NAME} placeholders are substituted with --set, as ward policy validate does.
      const tmpl = join(dir, "tmpl.yaml");
      writeFileSync(tmpl, POLICY.replace('"/srv/"', '"${SECRET_DIR}"'));
      const unset = spawnSync(join(root, "node_modules", ".bin", "bun"), [join(root, "src", "cli", "main.ts"), "policy", "explain", tmpl], { encoding: "utf8" });
      expect(unset.status).toBe(1);
      const set = spawnSync(join(root, "node_modules", ".bin", "bun"), [join(root, "src", "cli", "main.ts"), "policy", "explain", "--set", "SECRET_DIR=/opt/secret/", tmpl], { encoding: "utf8" });
      expect(set.status).toBe(0);
      // CelExpr passes validation but the engine does not implement it.
      const bad = join(dir, "bad.yaml");
      writeFileSync(bad, POLICY.replace('operator: "Prefix"\n        values: ["/etc/", "/root/", "/boot/", "/var/lib/", "/srv/"]', 'operator: "CelExpr"\n        values: ["arg0 == 1"]'));
      const b = spawnSync(join(root, "node_modules", ".bin", "bun"), [join(root, "src", "cli", "main.ts"), "policy", "explain", bad], { encoding: "utf8" });
      expect(b.status).toBe(1);
      expect(b.stderr).toMatch(/bad\.yaml:\d+:\d+: spec\.kprobes\[0\]\.selectors\[0\]\.matchArgs\[0\]/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);

  test("every valid corpus policy explains", async () => {
    const { readdirSync } = await import("node:fs");
    const { validatePolicyFile } = await import("../../src/policy/validate.ts");
    let n = 0;
    for (const f of readdirSync(CORPUS_DIR).filter((x) => /\.ya?ml$/.test(x))) {
      const r = await validatePolicyFile(join(CORPUS_DIR, f), { substitute: CORPUS_SUBSTITUTIONS });
      for (const lp of r.policies) {
        const e = explainCompiled(compilePolicy(lp.policy, { syscallNumber: corpusSyscalls }));
        expect(formatExplained(e)).toContain(`policy ${lp.policy.metadata.name}`);
        n++;
      }
    }
    expect(n).toBeGreaterThanOrEqual(83);
  }, 60_000);
});
