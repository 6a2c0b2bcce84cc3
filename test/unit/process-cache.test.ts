// The process cache: parent links, exec chains, clones, exit of unknown processes, retention
// and the size bound with counted evictions.
import { describe, expect, test } from "bun:test";
import { execId } from "../../src/events/exec-id.ts";
import { ProcessFlag } from "../../src/events/flags.ts";
import { ProcessCache, emptyCreds } from "../../src/events/process-cache.ts";
import type { CloneRecord, ExecRecord, ExitRecord } from "../../src/events/process-record.ts";

const node = "n";
const creds = emptyCreds();

function exec(pid: number, ktime: bigint, ppid: number, parentKtime: bigint, binary: string, argv: string[], flags: number = ProcessFlag.execve): ExecRecord {
  return { op: "exec", time: ktime, ktime, parentKtime, pid, tid: pid, ppid, flags, creds, ino: 1n, nlink: 1, binary, argv, cwd: "/" };
}
function clone(pid: number, ktime: bigint, ppid: number, parentKtime: bigint): CloneRecord {
  return { op: "clone", time: ktime, ktime, parentKtime, pid, tid: pid, ppid, flags: ProcessFlag.clone, creds };
}
function exit(pid: number, ktime: bigint, code = 0): ExitRecord {
  return { op: "exit", time: ktime + 1n, ktime, pid, tid: pid, ppid: 0, flags: 0, code };
}

describe("process cache", () => {
  test("seeded processes link to their parents; exec chain makes the replaced image the parent", () => {
    const c = new ProcessCache({ nodeName: node });
    c.seed([
      { pid: 10, ppid: 1, ktime: 100n, binary: "/bin/bash", argv: ["bash"], cwd: "/", flags: ProcessFlag.procFS, creds },
      { pid: 1, ppid: 0, ktime: 1n, binary: "/sbin/init", argv: ["init"], cwd: "/", flags: ProcessFlag.procFS, creds },
    ]);
    expect(c.current(10)?.parentExecId).toBe(execId(node, 1n, 1));
    // bash forks 11, 11 execs sh (parent: bash), sh execs true (parent: sh image).
    c.clone(clone(11, 200n, 10, 100n));
    expect(c.current(11)?.binary).toBe("/bin/bash");
    const sh = c.exec(exec(11, 300n, 10, 100n, "/bin/sh", ["sh", "-c", "x"], ProcessFlag.execve | ProcessFlag.clone));
    expect(sh.parent?.binary).toBe("/bin/bash");
    const t = c.exec(exec(11, 400n, 11, 300n, "/usr/bin/true", ["true", "a", "b c"]));
    expect(t.process.arguments).toBe('a "b c"');
    expect(t.parent?.binary).toBe("/bin/sh");
    expect(t.parent?.execId).toBe(execId(node, 300n, 11));
    const x = c.exit(exit(11, 400n));
    expect(x.process.binary).toBe("/usr/bin/true");
    expect(x.parent?.binary).toBe("/bin/sh");
    expect(c.stats().misses).toBe(0);
  });

  test("fork without exec: own exec_id, parent's binary, exit resolves it", () => {
    const c = new ProcessCache({ nodeName: node });
    c.exec(exec(20, 50n, 0, 0n, "/usr/bin/python3", ["python3", "x.py"]));
    const child = c.clone(clone(21, 60n, 20, 50n));
    expect(child.execId).toBe(execId(node, 60n, 21));
    expect(child.binary).toBe("/usr/bin/python3");
    expect(child.arguments).toBe("x.py");
    expect(child.flags & ProcessFlag.clone).toBe(ProcessFlag.clone);
    const x = c.exit(exit(21, 60n));
    expect(x.process.execId).toBe(child.execId);
    expect(x.parent?.pid).toBe(20);
  });

  test("exit of an unknown process: minimal image, counted miss", () => {
    const c = new ProcessCache({ nodeName: node });
    const x = c.exit(exit(99, 5n));
    expect(x.process.pid).toBe(99);
    expect(x.process.flags & ProcessFlag.miss).toBe(ProcessFlag.miss);
    expect(c.stats().misses).toBe(1);
  });

  test("ended images stay while referenced and leave after retention", () => {
    let now = 0;
    const c = new ProcessCache({ nodeName: node, retainMs: 1000, now: () => now });
    c.exec(exec(30, 10n, 0, 0n, "/bin/p", ["p"]));
    c.clone(clone(31, 20n, 30, 10n));
    c.exit(exit(30, 10n)); // parent ends first
    now = 5000;
    c.gc();
    expect(c.get(30, 10n)).toBeDefined(); // child still references it
    const x = c.exit(exit(31, 20n));
    expect(x.parent?.pid).toBe(30);
    now = 5500;
    c.gc();
    expect(c.get(31, 20n)).toBeDefined(); // within retention
    now = 7000;
    c.gc();
    expect(c.get(31, 20n)).toBeUndefined();
    expect(c.get(30, 10n)).toBeUndefined(); // released with its last child
    expect(c.stats().size).toBe(0);
  });

  test("at most maxRetained ended images wait out their retention; referenced ones stay", () => {
    const c = new ProcessCache({ nodeName: node, retainMs: 1e9, maxRetained: 3 });
    c.exec(exec(1, 1n, 0, 0n, "/init", ["init"]));
    c.exec(exec(2, 2n, 1, 1n, "/bin/sh", ["sh"]));
    c.clone(clone(3, 3n, 2, 2n)); // a live child of sh
    c.exit(exit(2, 2n)); // sh ends while its child still runs
    for (let i = 0; i < 10; i++) {
      c.clone(clone(100 + i, BigInt(10 + i), 1, 1n));
      c.exit(exit(100 + i, BigInt(10 + i)));
    }
    // The newest three ended images are still there, older ones left without counting as evictions.
    for (let i = 7; i < 10; i++) expect(c.get(100 + i, BigInt(10 + i))).toBeDefined();
    for (let i = 0; i < 7; i++) expect(c.get(100 + i, BigInt(10 + i))).toBeUndefined();
    expect(c.get(2, 2n)?.binary).toBe("/bin/sh"); // ended, but its running child names it
    expect(c.stats()).toEqual({ size: 1 + 1 + 1 + 3, live: 2, evictions: 0, misses: 0 });
    // Its child ends and waits in turn; once three newer ends push the child out, both leave.
    expect(c.exit(exit(3, 3n)).parent?.binary).toBe("/bin/sh");
    for (let i = 0; i < 3; i++) {
      expect(c.get(2, 2n)).toBeDefined();
      c.clone(clone(200 + i, BigInt(100 + i), 1, 1n));
      c.exit(exit(200 + i, BigInt(100 + i)));
    }
    expect(c.get(3, 3n)).toBeUndefined();
    expect(c.get(2, 2n)).toBeUndefined();
    expect(c.stats()).toEqual({ size: 1 + 3, live: 1, evictions: 0, misses: 0 });
  });

  test("bounded: ended images evicted first, evictions counted", () => {
    const c = new ProcessCache({ nodeName: node, maxEntries: 16, retainMs: 1e9 });
    c.exec(exec(1, 1n, 0, 0n, "/init", ["init"]));
    for (let i = 0; i < 100; i++) {
      const pid = 1000 + i;
      c.clone(clone(pid, BigInt(10 + i), 1, 1n));
      c.exit(exit(pid, BigInt(10 + i)));
    }
    const s = c.stats();
    expect(s.size).toBeLessThanOrEqual(16);
    expect(s.evictions).toBe(100 - 15);
    expect(c.current(1)?.binary).toBe("/init"); // the live process survived
    // A flood of live processes evicts the oldest live ones too.
    for (let i = 0; i < 40; i++) c.clone(clone(5000 + i, BigInt(1000 + i), 1, 1n));
    expect(c.stats().size).toBeLessThanOrEqual(16);
  });
});
