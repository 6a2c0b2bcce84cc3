// build/bpf.ts: committed objects are fresh, byte-identical from another checkout folder,
// and --check names each stale, missing or source-less object. Needs clang (CI installs it
// through build/system.ts), so a missing compiler fails here rather than skipping.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { appendFileSync, readdirSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { clangArgs, generatedObjectsModule, listSources } from "../../build/bpf.ts";

const root = join(import.meta.dir, "..", "..");
const bun = process.execPath;

/**
 * A fresh clone stand-in: the committed files build/bpf.ts reads and writes (git archive
 * of HEAD), unpacked in a folder with a different path than the checkout.
 */
function copyCheckout(): string {
  const dir = mkdtempSync(join(tmpdir(), "ward-bpf-clone-"));
  const r = spawnSync("sh", ["-c", `git archive HEAD bpf build/bpf.ts src/bpf/objects.generated.ts | tar -x -C '${dir}'`], { cwd: root, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`git archive failed: ${r.stderr}`);
  return dir;
}

function check(dir: string): { code: number; stderr: string } {
  const r = spawnSync(bun, ["run", "build/bpf.ts", "--check"], { cwd: dir, encoding: "utf8" });
  return { code: r.status ?? 1, stderr: r.stderr ?? "" };
}

describe("build/bpf.ts", () => {
  test("lists every bpf/*.c and bpf/testdata/*.c with its object path", () => {
    const s = listSources();
    expect(s).toContainEqual({ source: "bpf/testdata/count_openat.c", object: "bpf/obj/testdata/count_openat.o" });
    for (const { source, object } of s) {
      expect(source.startsWith("bpf/testdata/") ? object.startsWith("bpf/obj/testdata/") : /^bpf\/obj\/[^/]+\.o$/.test(object)).toBe(true);
    }
  });

  test("compiles with relative paths only (no checkout folder in the command)", () => {
    const args = clangArgs({ source: "bpf/x.c", object: "bpf/obj/x.o" }, "/tmp/out.o");
    expect(args).toContain("-fdebug-compilation-dir=.");
    expect(args.slice(0, 6)).toEqual(["-target", "bpf", "-O2", "-g", "-Wall", "-Werror"]);
    expect(args).toContain("bpf/x.c");
  });

  test("generated import list names exactly the sensor objects", () => {
    const text = generatedObjectsModule();
    const sensors = listSources().filter((s) => !s.object.includes("/testdata/"));
    expect(text).not.toContain("testdata");
    for (const s of sensors) expect(text).toContain(`"../../${s.object}"`);
  });

  test("a copy in another folder rebuilds byte-identical objects, and --check names each problem", () => {
    const dir = copyCheckout();
    try {
      const fresh = check(dir);
      expect(fresh.stderr).toBe("");
      expect(fresh.code).toBe(0);

      // Stale: a new function changes the object. Missing: delete one. Orphan: add one.
      appendFileSync(join(dir, "bpf/testdata/connect4.c"), '\nSEC("socket") int extra(void *ctx) { return 0; }\n');
      unlinkSync(join(dir, "bpf/obj/testdata/ringbuf.o"));
      writeFileSync(join(dir, "bpf/obj/testdata/ghost.o"), "x");
      const bad = check(dir);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toContain("stale: bpf/obj/testdata/connect4.o");
      expect(bad.stderr).toContain("missing: bpf/obj/testdata/ringbuf.o");
      expect(bad.stderr).toContain("no source: bpf/obj/testdata/ghost.o");
      expect(bad.stderr).not.toContain("count_openat");
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  test("objects keep .BTF and .BTF.ext and lose DWARF", () => {
    const objects = ["bpf/obj", "bpf/obj/testdata"].flatMap((d) =>
      readdirSync(join(root, d)).filter((f) => f.endsWith(".o")).map((f) => join(root, d, f)),
    );
    expect(objects.length).toBeGreaterThan(5);
    for (const object of objects) {
      const bytes = readFileSync(object);
      const text = bytes.toString("latin1");
      expect(text.includes(".BTF.ext")).toBe(true);
      expect(text.includes(".debug_info")).toBe(false);
    }
  });
});

describe("bpf/include/ward_bpf.h", () => {
  test("every helper id matches enum bpf_func_id in vmlinux.h", () => {
    const header = readFileSync(join(root, "bpf/include/ward_bpf.h"), "utf8");
    const vmlinux = readFileSync(join(root, "bpf/include/vmlinux.h"), "utf8");
    const decls = [...header.matchAll(/\(\*bpf_(\w+)\)\(.*\) = \(void \*\)(\d+);/g)];
    expect(decls.length).toBeGreaterThan(30);
    for (const [, name, id] of decls) {
      const m = new RegExp(`\\bBPF_FUNC_${name} = (\\d+),`).exec(vmlinux);
      expect({ name, id: m?.[1] }).toEqual({ name, id });
    }
  });
});
