// The policy store directory: atomic writes (temp file, fsync, rename, fsync dir), what a
// process killed between write and rename leaves (only a temp file, removed at open, never
// loaded), records read back with enabled/mode, and the store writing API changes through
// (file policies are not written; a failed write undoes the change).
import { afterAll, describe, expect, test } from "bun:test";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileNameOf, PolicyDir, PolicyPersistError, writeFileAtomic } from "../../../src/agent/policy-persist.ts";
import { PolicyInvalidError, PolicyStore, type PolicyBackend, type PolicyRecord } from "../../../src/agent/policy-store.ts";
import { parsePolicies } from "../../../src/agent/policy-parser.ts";
import { fakeParse, policyYaml } from "../lib/api-fixture.ts";
import { secureOpenPolicy } from "../../lib/talk-policies.ts";

const secure = (name: string) => secureOpenPolicy({ name, file: "/etc/shadow", allowed: "/usr/bin/passwd" });

const root = mkdtempSync(join(tmpdir(), "ward-persist-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => join(root, `d${++n}`);

describe("writeFileAtomic", () => {
  test("replaces the file; no temp file stays", () => {
    const d = freshDir();
    mkdirSync(d);
    writeFileAtomic(d, "a.wardpolicy", "one");
    writeFileAtomic(d, "a.wardpolicy", "two");
    expect(readFileSync(join(d, "a.wardpolicy"), "utf8")).toBe("two");
    expect(readdirSync(d)).toEqual(["a.wardpolicy"]);
  });

  test("a failure before the rename leaves the old file and no temp file", () => {
    const d = freshDir();
    mkdirSync(d);
    writeFileAtomic(d, "a.wardpolicy", "old");
    let err: unknown;
    try {
      writeFileAtomic(d, "a.wardpolicy", "new", {
        beforeRename: () => {
          throw new Error("disk full");
        },
      });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyPersistError);
    expect((err as Error).message).toContain("disk full");
    expect(readFileSync(join(d, "a.wardpolicy"), "utf8")).toBe("old");
    expect(readdirSync(d)).toEqual(["a.wardpolicy"]);
  });

  test("a process SIGKILLed between write and rename leaves only a temp file; open removes it and the old version loads", async () => {
    const d = freshDir();
    const dir = new PolicyDir(d);
    dir.open();
    const old = rec("crashy", { mode: "enforce" });
    dir.save(old);
    // A real process writes the new version and is killed before its rename.
    const script = join(root, `crash-${n}.ts`);
    writeFileSync(
      script,
      `import { writeFileAtomic, fileNameOf } from ${JSON.stringify(join(import.meta.dir, "../../../src/agent/policy-persist.ts"))};
writeFileAtomic(${JSON.stringify(d)}, fileNameOf("crashy"), JSON.stringify({ version: 1, name: "crashy", enabled: false, mode: "monitor", source: "api", added_at: "x", text: "half" }), {
  beforeRename: () => { process.stdout.write("written\\n"); Bun.sleepSync(60_000); },
});
`,
    );
    const child = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "inherit" });
    const reader = child.stdout.getReader();
    const { value } = await reader.read();
    expect(new TextDecoder().decode(value)).toBe("written\n");
    child.kill("SIGKILL");
    await child.exited;
    expect(child.signalCode).toBe("SIGKILL");
    const left = readdirSync(d);
    expect(left.filter((f) => f.endsWith(".tmp"))).toHaveLength(1);
    // The next start: the temp file is removed, never loaded; the saved version is the old one.
    const removed = new PolicyDir(d).open();
    expect(removed).toHaveLength(1);
    expect(readdirSync(d)).toEqual([fileNameOf("crashy")]);
    const loaded = new PolicyDir(d).load();
    expect(loaded.map((l) => [l.policy.name, l.policy.enabled, l.policy.mode])).toEqual([["crashy", true, "enforce"]]);
  });
});

function rec(name: string, over: Partial<PolicyRecord> = {}): PolicyRecord {
  return { name, kind: "TracingPolicy", enabled: true, mode: "enforce", source: "api", addedAt: "2026-12-03T16:00:00.000Z", text: policyYaml(name), document: {}, ...over };
}

describe("PolicyDir", () => {
  test("save, load, remove; names that are not DNS names are encoded", () => {
    const d = freshDir();
    const dir = new PolicyDir(d);
    expect(dir.open()).toEqual([]);
    dir.save(rec("files"));
    dir.save(rec("Odd/Name..", { enabled: false, mode: "monitor" }));
    expect(fileNameOf("Odd/Name..")).toBe("Odd%2FName%2E%2E.wardpolicy");
    const l = dir.load();
    expect(l.map((x) => [x.policy.name, x.policy.enabled, x.policy.mode])).toEqual([
      ["Odd/Name..", false, "monitor"],
      ["files", true, "enforce"],
    ]);
    dir.remove("files");
    dir.remove("files"); // gone already: fine
    expect(dir.load().map((x) => x.policy.name)).toEqual(["Odd/Name.."]);
  });

  test("a damaged record stops the load naming the file", () => {
    const d = freshDir();
    const dir = new PolicyDir(d);
    dir.open();
    writeFileSync(join(d, "bad.wardpolicy"), '{"version":1,"name":"bad"');
    expect(() => dir.load()).toThrow(/bad\.wardpolicy: not a policy record/);
    writeFileSync(join(d, "bad.wardpolicy"), JSON.stringify({ version: 1, name: "other", enabled: true, mode: "enforce", source: "api", added_at: "x", text: "" }));
    expect(() => dir.load()).toThrow(/holds policy "other"/);
  });

  test("the directory is created 0700", () => {
    const d = join(freshDir(), "nested", "policies");
    new PolicyDir(d).open();
    expect(existsSync(d)).toBe(true);
    expect(statSync(d).mode & 0o777).toBe(0o700);
  });
});

class FakeBackend implements PolicyBackend {
  readonly applied = new Map<string, { enabled: boolean; mode: string }>();
  apply(r: PolicyRecord) {
    this.applied.set(r.name, { enabled: r.enabled, mode: r.mode });
  }
  remove(name: string) {
    this.applied.delete(name);
  }
  setEnabled(name: string, enabled: boolean) {
    this.applied.get(name)!.enabled = enabled;
  }
  setMode(name: string, mode: "enforce" | "monitor") {
    this.applied.get(name)!.mode = mode;
  }
  info() {
    return { state: "enforcing", hooks: [] };
  }
  close() {}
}

describe("PolicyStore with a policy store directory", () => {
  test("API adds, enable/disable, mode and delete are saved; file policies are not; a restart restores the same set", () => {
    const d = freshDir();
    const dir = new PolicyDir(d);
    dir.open();
    // The real parser: one request may hold several documents.
    const store = new PolicyStore(parsePolicies);
    store.attachBackend(new FakeBackend());
    store.attachPersistence(dir);
    store.add(secure("from-file"), { source: "file:/etc/ward/p.yaml", file: "/etc/ward/p.yaml" });
    store.add(`${secure("a")}---\n${secure("b")}`, { source: "api", file: "<request>" });
    expect(dir.load().map((x) => x.policy.name)).toEqual(["a", "b"]);
    store.setEnabled("a", false);
    store.setMode("b", "monitor");
    store.setEnabled("from-file", false);
    store.add(secure("c"), { source: "api", file: "<request>" });
    store.delete("c");
    const saved = dir.load();
    expect(saved.map((x) => [x.policy.name, x.policy.enabled, x.policy.mode])).toEqual([
      ["a", false, "enforce"],
      ["b", true, "monitor"],
    ]);

    // Restart: a new store restores them (each picks its own document out of the shared text).
    const again = new PolicyStore(parsePolicies);
    again.restore(saved);
    const backend = new FakeBackend();
    again.attachBackend(backend);
    expect(again.list().map((p) => [p.name, p.enabled, p.mode, p.source])).toEqual([
      ["a", false, "enforce", "api"],
      ["b", true, "monitor", "api"],
    ]);
    expect(backend.applied.get("a")).toEqual({ enabled: false, mode: "enforce" });
    expect(again.get("a")?.addedAt).toBe(store.get("a")!.addedAt);
  });

  test("restore conflicts and unreadable text are PolicyInvalidErrors naming the record file; nothing is restored", () => {
    const store = new PolicyStore(fakeParse);
    store.add(policyYaml("x"), { source: "file:/p.yaml", file: "/p.yaml" });
    const saved = (name: string, text = policyYaml(name)) => ({ file: `/d/${name}.wardpolicy`, policy: { name, enabled: true, mode: "enforce" as const, source: "api", added_at: "t", text } });
    let err: unknown;
    try {
      store.restore([saved("ok"), saved("x"), saved("y", policyYaml("z"))]);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(PolicyInvalidError);
    const msgs = (err as PolicyInvalidError).errors.map((e) => `${e.file}: ${e.message}`);
    expect(msgs).toEqual(['/d/x.wardpolicy: policy "x" is also given by file:/p.yaml; remove one', '/d/y.wardpolicy: the saved text holds no policy named "y"']);
    expect(store.list().map((p) => p.name)).toEqual(["x"]);
  });

  test("a write that fails undoes the change in the kernel and the store", () => {
    const d = freshDir();
    const dir = new PolicyDir(d);
    dir.open();
    const store = new PolicyStore(fakeParse);
    const backend = new FakeBackend();
    store.attachBackend(backend);
    store.attachPersistence(dir);
    store.add(policyYaml("keep"), { source: "api", file: "<request>" });
    chmodSync(d, 0o500);
    const isRoot = process.getuid?.() === 0;
    try {
      // Root ignores directory permissions; replace the directory by a file so writes fail for everyone.
      if (isRoot) {
        chmodSync(d, 0o700);
        rmSync(d, { recursive: true });
        writeFileSync(d, "not a directory");
      }
      expect(() => store.add(policyYaml("new"), { source: "api", file: "<request>" })).toThrow(PolicyPersistError);
      expect(store.get("new")).toBeUndefined();
      expect(backend.applied.has("new")).toBe(false);
      expect(() => store.setMode("keep", "monitor")).toThrow(PolicyPersistError);
      expect(store.get("keep")?.mode).toBe("enforce");
      expect(backend.applied.get("keep")?.mode).toBe("enforce");
      expect(() => store.setEnabled("keep", false)).toThrow(PolicyPersistError);
      expect(backend.applied.get("keep")?.enabled).toBe(true);
    } finally {
      try {
        rmSync(d, { recursive: true });
      } catch {
        // a file or gone
      }
    }
  });
});
