// The watch for matchBinaries entries that do not exist yet (src/sensors/binary-watch.ts), on
// the real filesystem with real inotify: the file appearing by create, rename or hard link is
// reported once with its identity; directories on the way created, removed or renamed move
// the watch; closing it releases the inotify instance. And how explain words an entry.
import { afterAll, describe, expect, test } from "bun:test";
import { linkSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { formatExplained, type ExplainedPolicy } from "../../src/policy/explain.ts";
import { BinaryWatch, kernelDev, nearestDirectory, predictBinaryEntry, resolvedForm, type BinaryIdentity } from "../../src/sensors/binary-watch.ts";

const root = mkdtempSync(join(tmpdir(), "ward-binwatch-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function inotifyFds(): number {
  return readdirSync("/proc/self/fd").filter((f) => {
    try {
      return readlinkSync(`/proc/self/fd/${f}`) === "anon_inode:inotify";
    } catch {
      return false;
    }
  }).length;
}

function identity(path: string): BinaryIdentity {
  const st = statSync(path, { bigint: true });
  return { dev: kernelDev(st.dev), ino: st.ino };
}

async function until(what: string, pred: () => boolean, w: BinaryWatch, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`${what}: not within ${ms} ms`);
    await Bun.sleep(10);
    w.refresh();
  }
}

describe("BinaryWatch", () => {
  test("a file created in the watched directory is reported once with its identity; the instance closes when nothing is missing", async () => {
    const dir = join(root, "create");
    mkdirSync(dir);
    const before = inotifyFds();
    const seen: [string, BinaryIdentity][] = [];
    const w = new BinaryWatch((p, id) => seen.push([p, id]));
    const target = join(dir, "tool");
    w.add(target);
    expect(w.watching(target)).toBe(dir);
    expect(w.watchCount()).toBe(1);
    expect(inotifyFds()).toBe(before + 1);
    writeFileSync(target, "x");
    await until("appeared", () => seen.length > 0, w);
    expect(seen).toEqual([[target, identity(target)]]);
    expect(w.missing()).toEqual([]);
    expect(w.open).toBe(false);
    expect(inotifyFds()).toBe(before);
    w.close();
  });

  test("directories created, removed and renamed on the way move the watch; a rename and a hard link into place count as appearing", async () => {
    const base = join(root, "deep");
    mkdirSync(base);
    const seen: string[] = [];
    const w = new BinaryWatch((p) => seen.push(p));
    const a = join(base, "a", "b", "tool");
    const h = join(base, "h", "tool");
    w.add(a);
    w.add(h);
    expect(w.watching(a)).toBe(base);
    mkdirSync(join(base, "a"));
    await until("watch moved into a", () => w.watching(a) === join(base, "a"), w);
    // b made elsewhere and renamed into place
    mkdirSync(join(base, "stage-b"));
    renameSync(join(base, "stage-b"), join(base, "a", "b"));
    await until("watch moved into a/b", () => w.watching(a) === join(base, "a", "b"), w);
    rmSync(join(base, "a"), { recursive: true });
    await until("watch moved back up", () => w.watching(a) === base, w);
    mkdirSync(join(base, "a", "b"), { recursive: true });
    writeFileSync(join(base, "staged"), "x");
    renameSync(join(base, "staged"), a);
    await until("renamed into place", () => seen.includes(a), w);
    mkdirSync(join(base, "h"));
    linkSync(a, h);
    await until("hard-linked into place", () => seen.includes(h), w);
    expect(seen.sort()).toEqual([a, h].sort());
    w.close();
  });

  test("remove() and close() release the watches of paths nobody waits for", () => {
    const before = inotifyFds();
    const w = new BinaryWatch(() => {});
    w.add(join(root, "r1", "x"));
    w.add(join(root, "r2", "y"));
    expect(w.watchCount()).toBe(1); // both wait in root
    w.remove(join(root, "r1", "x"));
    expect(w.watchCount()).toBe(1);
    w.remove(join(root, "r2", "y"));
    expect(w.watchCount()).toBe(0);
    expect(inotifyFds()).toBe(before);
    w.add(join(root, "r3", "z"));
    expect(inotifyFds()).toBe(before + 1);
    w.close();
    expect(inotifyFds()).toBe(before);
    expect(() => w.add(join(root, "r4"))).toThrow(/closed/);
  });

  test("an onAppear that throws keeps the path watched and is retried at the next look", () => {
    const dir = join(root, "retry");
    mkdirSync(dir);
    let calls = 0;
    const errors: string[] = [];
    const w = new BinaryWatch(() => {
      if (++calls === 1) throw new Error("map full");
    }, (_p, e) => errors.push((e as Error).message));
    const target = join(dir, "t");
    writeFileSync(target, "x");
    w.add(target);
    expect(calls).toBe(1);
    expect(errors).toEqual(["map full"]);
    expect(w.watching(target)).toBe(dir);
    writeFileSync(join(dir, "other"), "y"); // any event in the directory: look again
    w.refresh();
    expect(calls).toBe(2);
    expect(w.missing()).toEqual([]);
    w.close();
  });
});

describe("how an entry is reported", () => {
  test("present: inode (dev:ino), In also by path; missing: path, watching the nearest existing directory", () => {
    const file = join(root, "present");
    writeFileSync(file, "x");
    const id = identity(file);
    expect(predictBinaryEntry(file, "NotIn").text).toBe(`inode (${id.dev}:${id.ino})`);
    expect(predictBinaryEntry(file, "In").text).toBe(`inode (${id.dev}:${id.ino}) and path`);
    const missing = join(root, "no", "such", "bin");
    expect(nearestDirectory(missing)).toBe(root);
    expect(predictBinaryEntry(missing, "NotIn")).toEqual({ path: missing, op: "NotIn", match: "path", watching: root, text: `path (not present; watching ${root})` });
    expect(resolvedForm(missing)).toBe(missing);
  });

  test("explain prints one line per matchBinaries entry", () => {
    const p: ExplainedPolicy = {
      name: "p", layoutVersion: 2, blobBytes: 1, mode: "enforce", tables: {},
      hooks: [{
        path: "spec.kprobes[0]", name: "security_file_open", kind: "kprobe", hookId: 0, args: [], alwaysPost: false, selectors: [], mechanism: "m",
        binaries: [{ selector: 0, op: "NotIn", entries: [{ path: "/my/py", by: "path", match: "path (not present; watching /)", watching: "/" }] }],
      }],
    };
    expect(formatExplained(p)).toContain("    selector 0 matchBinaries NotIn /my/py: path (not present; watching /)\n");
  });
});
