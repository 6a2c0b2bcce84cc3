// `ward policy validate` as a user runs it: output lines and exit codes.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

const ROOT = join(import.meta.dir, "..", "..");
const tmp = mkdtempSync(join(tmpdir(), "ward-policy-cli-"));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

function ward(...args: string[]): { code: number; out: string; err: string } {
  const p = Bun.spawnSync([process.execPath, join(ROOT, "src/cli/main.ts"), ...args], { cwd: tmp, env: { ...process.env, NO_COLOR: "1" } });
  return { code: p.exitCode ?? -1, out: p.stdout.toString(), err: p.stderr.toString() };
}

const BAD = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: bad
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
        operator: DPort
        values: ["80"]
`;

const WARN = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: warn
spec:
  kprobes:
  - call: sys_openat
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: [/etc/shadow]
`;

describe("ward policy validate", () => {
  test("valid files exit 0 and print nothing", () => {
    const r = ward("policy", "validate", join(ROOT, "policies/block-secret-read.yaml"), join(ROOT, "policies/detect-setuid-root.yaml"));
    expect(r.out).toBe("");
    expect(r.code).toBe(0);
  }, 30_000);

  test("an invalid file exits 1 with file:line:col: path: message", () => {
    writeFileSync(join(tmp, "bad.yaml"), BAD);
    const r = ward("policy", "validate", "bad.yaml");
    expect(r.code).toBe(1);
    expect(r.out).toBe("bad.yaml:15:19: spec.kprobes[0].selectors[0].matchArgs[0].operator: operator DPort cannot be applied to argument 0 of type file; allowed for file: CelExpr, Equal, NotEqual, Prefix, NotPrefix, Postfix, NotPostfix, SubString, SubStringIgnCase, FileType, NotFileType\n");
  }, 30_000);

  test("warnings are printed with a warning: prefix and do not fail; --quiet hides them", () => {
    writeFileSync(join(tmp, "warn.yaml"), WARN);
    const r = ward("policy", "validate", "warn.yaml");
    expect(r.code).toBe(0);
    expect(r.out.startsWith("warning: warn.yaml:13:9: spec.kprobes[0].selectors[0].matchArgs[0]: ")).toBe(true);
    const q = ward("policy", "validate", "-q", "warn.yaml");
    expect(q.code).toBe(0);
    expect(q.out).toBe("");
  }, 30_000);

  test("one invalid file among valid ones makes the run fail", () => {
    writeFileSync(join(tmp, "bad.yaml"), BAD);
    const r = ward("policy", "validate", join(ROOT, "policies/alert-etc-writes.yaml"), "bad.yaml");
    expect(r.code).toBe(1);
  }, 30_000);

  test("--set substitutes placeholders", () => {
    writeFileSync(join(tmp, "ph.yaml"), WARN.replace("[/etc/shadow]", '["${SECRET}"]').replace("name: warn", "name: ph"));
    expect(ward("policy", "validate", "-q", "ph.yaml").code).toBe(1);
    expect(ward("policy", "validate", "-q", "--set", "SECRET=/srv/x", "ph.yaml").code).toBe(0);
  }, 30_000);

  test("-o json gives the same diagnostics as data", () => {
    writeFileSync(join(tmp, "bad.yaml"), BAD);
    const r = ward("policy", "validate", "-o", "json", "bad.yaml", join(ROOT, "policies/alert-etc-writes.yaml"));
    expect(r.code).toBe(1);
    const out = JSON.parse(r.out) as { valid: boolean; files: { file: string; valid: boolean; policies: string[]; diagnostics: { line: number; column: number; path: string }[] }[] };
    expect(out.valid).toBe(false);
    expect(out.files.map((f) => [f.valid, f.policies])).toEqual([[false, []], [true, ["alert-etc-writes"]]]);
    expect(out.files[0]?.diagnostics[0]).toMatchObject({ line: 15, column: 19, path: "spec.kprobes[0].selectors[0].matchArgs[0].operator" });
    expect(ward("policy", "validate", "-o", "yaml", "bad.yaml").code).toBe(2);
  }, 30_000);

  test("a missing file is reported and exits 1", () => {
    const r = ward("policy", "validate", "nope.yaml");
    expect(r.code).toBe(1);
    expect(r.out).toBe("nope.yaml: no such file\n");
  }, 30_000);

  test("usage errors exit 2", () => {
    expect(ward("policy", "validate").code).toBe(2);
    expect(ward("policy", "validate", "--bogus", "x.yaml").code).toBe(2);
    expect(ward("policy", "frobnicate").code).toBe(2);
    expect(ward("policy").code).toBe(2);
  }, 30_000);
});
