// matchBinaries entries that do not exist when the rule is written (issue 8 item 6), against
// the real kernel with real processes: such a rule loads; the entry is matched by the
// executable's path (as the process sensor records it at exec) until the file appears, and by
// its inode from then on, added by the guard's inotify watch without reloading anything. In
// keeps the path match too (never weaker than Tetragon's path match); NotIn drops it once the
// inode is in. The watch goes away with the guard.
//
// spawnSync blocks this thread, so the guard's watch (a timer on this thread) cannot act
// between two spawnSync calls: that is how the window between "the file appeared" and "its
// inode was added" is exercised deterministically. binaryStatus() reads the pending events.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { FileGuard, GuardError, fileIdentity, type BinaryEntryStatus } from "../../src/sensors/guard.ts";
import type { ProcessSensor } from "../../src/sensors/process.ts";
import { PolicyApplyError, PolicyManager } from "../../src/sensors/manager.ts";
import { hostHookFeatures } from "../../src/sensors/resolve.ts";
import { BootClock } from "../../src/events/time.ts";
import { policyFrom } from "../unit/engine-helpers.ts";

const SECRET = "I love pizza!\n";
let dir = "";
let secret = "";
let sensor: ProcessSensor | undefined;
const guards: FileGuard[] = [];

function run(cmd: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: "utf8", timeout: 10_000 });
}

function expectKilled(r: SpawnSyncReturns<string>): void {
  expect(r.error).toBeUndefined();
  expect(r.signal).toBe("SIGKILL");
  expect(r.stdout).not.toContain("pizza");
}

function expectReads(r: SpawnSyncReturns<string>): void {
  expect(r.error).toBeUndefined();
  expect(r.signal).toBeNull();
  expect(r.status).toBe(0);
  expect(r.stdout).toBe(SECRET);
}

/** inotify instances this process holds (/proc/self/fd links to anon_inode:inotify). */
function inotifyFds(): number {
  let n = 0;
  for (const f of readdirSync("/proc/self/fd")) {
    try {
      if (readlinkSync(`/proc/self/fd/${f}`) === "anon_inode:inotify") n++;
    } catch {
      // closed while listing
    }
  }
  return n;
}

/** A guard with the process sensor's map; the previous test's guard goes (one rule set at a time). */
function open(): FileGuard {
  for (const old of guards.splice(0)) old.close();
  const map = sensor?.processMap;
  if (map === undefined) throw new Error("process sensor not started");
  const g = FileGuard.open({ processMap: map });
  guards.push(g);
  return g;
}

/** Poll binaryStatus until pred holds (bounded): the watch acts within a few tens of ms. */
async function statusUntil(g: FileGuard, rule: number, pred: (s: BinaryEntryStatus[]) => boolean, ms = 3000): Promise<BinaryEntryStatus[]> {
  const end = Date.now() + ms;
  for (;;) {
    const s = g.binaryStatus(rule);
    if (pred(s)) return s;
    if (Date.now() > end) throw new Error(`binary status did not change in ${ms} ms: ${JSON.stringify(s, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v))}`);
    await Bun.sleep(20);
  }
}

describe("file guard: matchBinaries entries that do not exist yet", () => {
  beforeAll(async () => {
    if (kernelUnavailable() !== undefined) return;
    dir = mkdtempSync("/tmp/ward-bins-");
    secret = join(dir, "secret");
    writeFileSync(secret, SECRET);
    const { startProcessSensor } = await import("../../src/sensors/process.ts");
    sensor = await startProcessSensor({ nodeName: "ward-test", onEvent: () => {}, housekeepingMs: 500 });
  });

  afterAll(async () => {
    for (const g of guards) g.close();
    await sensor?.stop();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("NotIn [missing mycat] loads; cat is killed; once mycat is copied in, it reads (path first, then its inode)", async () => {
    const tools = join(dir, "notin");
    mkdirSync(tools);
    const mycat = join(tools, "mycat");
    const g = open();
    const rule = g.protect(secret, { action: "kill", binaries: { op: "NotIn", paths: [mycat] } });
    expect(g.binaryStatus(rule)).toEqual([{ path: mycat, op: "NotIn", match: "path", watching: tools, text: `path (not present; watching ${tools})` }]);
    expect(g.binaryWatches()).toBe(1);
    expectKilled(run("cat", [secret]));

    // The window: the file is there, the watch has not run yet (this thread is blocked in
    // spawnSync). The path match allows it, as Tetragon's would.
    copyFileSync("/bin/cat", mycat);
    expectReads(run(mycat, [secret]));
    expect(g.binaryTables()).toEqual({ inodes: 0, paths: 1, names: 1 }); // it was the path (binaryTables does not read the watch)

    const id = fileIdentity(mycat);
    const s = await statusUntil(g, rule, (x) => x[0]?.match === "inode");
    expect(s).toEqual([{ path: mycat, op: "NotIn", match: "inode", dev: id.dev, ino: id.ino, text: `inode (${id.dev}:${id.ino})` }]);
    expect(g.binaryWatches()).toBe(0);
    expect(g.binaryTables()).toEqual({ inodes: 1, paths: 0, names: 0 });
    expectReads(run(mycat, [secret]));
    expectKilled(run("cat", [secret]));

    // Its inode is what allows now: renamed it still reads; a new file put at the path is
    // not the binary that appeared (the path allowance was dropped: the stricter choice).
    const moved = join(tools, "renamed");
    renameSync(mycat, moved);
    expectReads(run(moved, [secret]));
    copyFileSync("/bin/cat", mycat);
    expectKilled(run(mycat, [secret]));
  });

  kernelTest("In [missing evil] loads; /bin/cat reads; evil run right after it is created is killed (path), and later by inode", async () => {
    const drop = join(dir, "in");
    mkdirSync(drop);
    const evil = join(drop, "evil");
    const g = open();
    const rule = g.protect(secret, { action: "kill", binaries: { op: "In", paths: [evil] } });
    expect(g.binaryStatus(rule)[0]?.text).toBe(`path (not present; watching ${drop})`);
    expectReads(run("/bin/cat", [secret]));

    // The race window: created and run before the watch can add its inode.
    copyFileSync("/bin/cat", evil);
    expectKilled(run(evil, [secret]));
    expect(g.binaryTables()).toEqual({ inodes: 0, paths: 1, names: 1 }); // killed by the path match

    const id = fileIdentity(evil);
    const s = await statusUntil(g, rule, (x) => x[0]?.match === "inode");
    expect(s[0]?.text).toBe(`inode (${id.dev}:${id.ino}) and path`);
    expect(g.binaryWatches()).toBe(0);
    expect(g.binaryTables()).toEqual({ inodes: 1, paths: 1, names: 1 });
    expectKilled(run(evil, [secret]));
    expectReads(run("/bin/cat", [secret]));

    // What the semantics say about other names: the same inode (hard link, rename) is the
    // binary and is killed; a byte copy is another inode at another path and is not listed.
    const hard = join(drop, "hardlink");
    linkSync(evil, hard);
    expectKilled(run(hard, [secret]));
    const copy = join(drop, "copy");
    copyFileSync(evil, copy);
    expectReads(run(copy, [secret]));
    const moved = join(drop, "moved");
    renameSync(evil, moved);
    expectKilled(run(moved, [secret]));
    // A new file at the path is still killed by the path match (the union).
    copyFileSync("/bin/cat", evil);
    expectKilled(run(evil, [secret]));
  });

  kernelTest("the watch follows directories created later: In [a/b/evil] with a/ missing, then mkdir -p and a rename into place", async () => {
    const base = join(dir, "deep");
    mkdirSync(base);
    const evil = join(base, "a", "b", "evil");
    const g = open();
    const rule = g.protect(secret, { action: "kill", binaries: { op: "In", paths: [evil] } });
    expect(g.binaryStatus(rule)[0]?.watching).toBe(base);
    mkdirSync(join(base, "a"));
    await statusUntil(g, rule, (x) => x[0]?.watching === join(base, "a"));
    mkdirSync(join(base, "a", "b"));
    await statusUntil(g, rule, (x) => x[0]?.watching === join(base, "a", "b"));
    // The directory goes away again: the watch moves back up.
    rmSync(join(base, "a"), { recursive: true });
    await statusUntil(g, rule, (x) => x[0]?.watching === base);
    mkdirSync(join(base, "a", "b"), { recursive: true });
    const staged = join(base, "staged");
    copyFileSync("/bin/cat", staged);
    renameSync(staged, evil);
    const id = fileIdentity(evil);
    const s = await statusUntil(g, rule, (x) => x[0]?.match === "inode");
    expect(s[0]?.ino).toBe(id.ino);
    expectKilled(run(evil, [secret]));
  });

  kernelTest("In [link/evil] where link is a symlinked directory: keyed as written and resolved, so the real path is killed before the inode is in", () => {
    const real = join(dir, "real-drop");
    mkdirSync(real);
    symlinkSync(real, join(dir, "link-drop"));
    const evil = join(dir, "link-drop", "evil");
    const g = open();
    const rule = g.protect(secret, { action: "kill", binaries: { op: "In", paths: [evil] } });
    expect(g.binaryTables()).toEqual({ inodes: 0, paths: 2, names: 2 });
    copyFileSync("/bin/cat", join(real, "evil"));
    // The kernel records /…/real-drop/evil for this exec; the watch has not run yet.
    expectKilled(run(join(real, "evil"), [secret]));
    expect(g.binaryTables().inodes).toBe(0);
    expect(g.binaryStatus(rule)[0]?.match).toBe("inode");
  });

  kernelTest("closing the guard closes its watches; an entry that cannot be matched is refused and leaves nothing behind", async () => {
    const before = inotifyFds();
    const g = open();
    const missing = join(dir, "nowhere", "tool");
    const rule = g.protect(secret, { action: "kill", binaries: { op: "NotIn", paths: [missing, "/bin/true"] } });
    expect(g.binaryStatus(rule).map((e) => e.match)).toEqual(["path", "inode"]);
    expect(inotifyFds()).toBe(before + 1);
    expect(g.binaryWatches()).toBe(1);
    // Longer than the 255 bytes of a binary's path the process map keeps: refused, not weakened.
    const tables = g.binaryTables();
    const long = join(dir, "x".repeat(200), "y".repeat(100), "tool");
    expect(() => g.addRule({ action: "kill", binaries: { op: "In", paths: [join(dir, "other-missing"), long] } })).toThrow(GuardError);
    expect(() => g.addRule({ action: "kill", binaries: { op: "In", paths: [long] } })).toThrow(/longer than 255 bytes/);
    expect(g.binaryTables()).toEqual(tables);
    expect(g.binaryWatches()).toBe(1);
    g.close();
    expect(g.binaryWatches()).toBe(0);
    expect(inotifyFds()).toBe(before);
  });

  kernelTest("a pinned guard taken over by adopt() watches its missing entries again and adds the inode when the file appears", async () => {
    for (const old of guards.splice(0)) old.close();
    const map = sensor?.processMap;
    if (map === undefined) throw new Error("process sensor not started");
    const pinDir = `/sys/fs/bpf/ward-bins-${process.pid}`;
    const tools = join(dir, "pinned");
    mkdirSync(tools);
    const tool = join(tools, "mycat");
    const first = FileGuard.open({ processMap: map, pinDir });
    let adopted: FileGuard | undefined;
    try {
      const rule = first.protect(secret, { action: "kill", binaries: { op: "NotIn", paths: [tool] } });
      first.close(); // the pins keep enforcing; nobody watches now
      expectKilled(run("cat", [secret]));
      adopted = FileGuard.adopt(pinDir);
      expect(adopted.binaryStatus(rule)).toEqual([{ path: tool, op: "NotIn", match: "path", watching: tools, text: `path (not present; watching ${tools})` }]);
      expect(adopted.binaryWatches()).toBe(1);
      copyFileSync("/bin/cat", tool);
      const s = await statusUntil(adopted, rule, (x) => x[0]?.match === "inode");
      expect(s[0]?.ino).toBe(fileIdentity(tool).ino);
      expect(adopted.binaryTables()).toEqual({ inodes: 1, paths: 0, names: 0 });
      expectReads(run(tool, [secret]));
      expectKilled(run("cat", [secret]));
    } finally {
      (adopted ?? FileGuard.adopt(pinDir)).destroy();
    }
    expectReads(run("cat", [secret]));
  });

  kernelTest("policy manager: a policy whose second selector's entry is refused attaches nothing and leaves no watch of the first behind", () => {
    for (const old of guards.splice(0)) old.close();
    const map = sensor?.processMap;
    if (map === undefined) throw new Error("process sensor not started");
    const other = join(dir, "secret-b");
    writeFileSync(other, SECRET);
    // Short as written (the validator allows 255 characters), but behind a symlink to a deep
    // directory: the path the kernel would record is longer than the process map keeps.
    const deep = join(dir, "l".repeat(200), "m".repeat(60));
    mkdirSync(deep, { recursive: true });
    symlinkSync(deep, join(dir, "short"));
    const long = join(dir, "short", "tool");
    const policy = policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: half-bad
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
        operator: Equal
        values: ["${secret}"]
      matchBinaries:
      - operator: NotIn
        values: ["${join(dir, "later-ok", "tool")}"]
      matchActions:
      - action: Sigkill
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["${other}"]
      matchBinaries:
      - operator: In
        values: ["${long}"]
      matchActions:
      - action: Sigkill
`);
    const before = inotifyFds();
    // The file guard's refusal is under test: without fanotify in the features the manager
    // places these rules on the guard, as on a kernel without fanotify permission events.
    const { fanotify: _fanotify, ...guardOnly } = hostHookFeatures();
    const m = new PolicyManager({ features: guardOnly, encode: { nodeName: "n", clock: new BootClock() }, publish: () => {}, log: () => {}, processMap: map });
    try {
      expect(() => m.apply(policy, { mode: "enforce" })).toThrow(PolicyApplyError);
      try {
        m.apply(policy, { mode: "enforce" });
      } catch (e) {
        expect((e as Error).message).toContain("spec.kprobes[0] (security_file_open) selector 1: matchBinaries");
        expect((e as Error).message).toContain("longer than 255 bytes");
      }
      expect(m.has("half-bad")).toBe(false);
      expect(inotifyFds()).toBe(before);
      expectReads(run("cat", [secret]));
    } finally {
      m.close();
    }
  });

  kernelTest("without the process sensor's map a missing entry is refused with the reason", () => {
    for (const old of guards.splice(0)) old.close();
    const g = FileGuard.open({});
    guards.push(g);
    expect(() => g.addRule({ action: "kill", binaries: { op: "NotIn", paths: [join(dir, "absent")] } })).toThrow(/does not exist, and matching it by path until it appears needs the process sensor's map/);
    expect(g.binaryWatches()).toBe(0);
  });
});
