// fanotify decisions from the kernel process map (issue 9): engine-decided selectors read the
// opener's binary and its exec record from ward_procs (the process sensor's map), not from
// /proc; matchPIDs and the *Changes matchers are decided there too. Real processes against
// the real kernel, through the policy manager with a running process sensor.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawn, spawnSync, type ChildProcessWithoutNullStreams, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";
import { BootClock } from "../../src/events/time.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import type { TracingPolicy } from "../../src/policy/types.ts";
import { PolicyManager } from "../../src/sensors/manager.ts";
import { procMapLayout } from "../../src/sensors/proc-map-layout.ts";
import { ProcessSensor } from "../../src/sensors/process.ts";
import { hostHookFeatures, type HookFeatures } from "../../src/sensors/resolve.ts";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";

const SECRET = "I love pizza!\n";
let dir = "";
let secret = "";
let helper = "";
let procs: ProcessSensor | undefined;
let manager: PolicyManager | undefined;

function m(): PolicyManager {
  if (manager === undefined) throw new Error("manager not created");
  return manager;
}

function run(cmd: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: "utf8", timeout: 15_000 });
}

function expectDenied(r: { stdout: string; stderr: string; signal: NodeJS.Signals | null }): void {
  expect(r.signal).toBeNull();
  expect(r.stdout).not.toContain("pizza");
  expect(`${r.stdout}${r.stderr}`).toMatch(/Operation not permitted|ERR open 1\b/);
}

function policy(selector: string, name = "fan-map"): TracingPolicy {
  const yaml = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${name}
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
${selector}      matchActions:
      - action: Override
        argError: -1
`;
  const r = validatePolicyText(yaml, "fanotify-procmap.yaml");
  const errors = r.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0 || r.policies[0] === undefined) throw new Error(`bad test policy: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
  return r.policies[0].policy;
}

/** Applies the policy (asserting fanotify's engine holds it), runs fn, removes it. */
async function withPolicy(p: TracingPolicy, fn: () => unknown | Promise<unknown>): Promise<Record<string, number>> {
  const st = m().apply(p, { mode: "enforce" });
  const h = st.hooks[0];
  expect(h?.mechanism).toStartWith("fanotify (");
  expect(h?.mechanism).toContain("exec records in the kernel process map ward_procs");
  await m().ready(p.metadata.name);
  try {
    await fn();
    return { ...m().state(p.metadata.name).counters };
  } finally {
    m().remove(p.metadata.name);
  }
}

/** A process started with stdin held open: it runs (exec done) and waits; end() lets it go on. */
function held(cmd: string, args: string[]): { child: ChildProcessWithoutNullStreams; pid: number; end(line?: string): Promise<{ stdout: string; stderr: string; code: number | null; signal: NodeJS.Signals | null }> } {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
  child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
  const done = new Promise<{ stdout: string; stderr: string; code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on("close", (code, signal) => resolve({ stdout, stderr, code, signal }));
  });
  if (child.pid === undefined) throw new Error(`spawn ${cmd} failed`);
  const pid = child.pid;
  return {
    child,
    pid,
    end(line?: string) {
      if (line !== undefined) child.stdin.write(line);
      child.stdin.end();
      return done;
    },
  };
}

/**
 * Waits until the process sensor's record of pid names `exe`. /proc/PID/exe changes before
 * sched_process_exec fires (the exec switches the mm first), so a test that renames the
 * binary right after /proc shows it could race the record's path resolution.
 */
async function execed(pid: number, exe: string): Promise<void> {
  const map = procs?.processMap;
  if (map === undefined) throw new Error("no process map");
  const lo = procMapLayout();
  const key = new Uint8Array(4);
  new DataView(key.buffer).setUint32(0, pid, true);
  for (let i = 0; i < 500; i++) {
    const v = map.lookup(key);
    if (v !== undefined) {
      const len = new DataView(v.buffer, v.byteOffset).getUint32(lo.binLen, true);
      if (new TextDecoder().decode(v.subarray(lo.bin, lo.bin + Math.min(len, lo.binSize))) === exe) return;
    }
    await Bun.sleep(10);
  }
  throw new Error(`pid ${pid}: the process map never recorded its exec of ${exe}`);
}

describe("fanotify decisions from the kernel process map (ward_procs)", () => {
  beforeAll(async () => {
    if (kernelUnavailable() !== undefined) return;
    ensureSystemPackages([
      ["/usr/bin/cc", "gcc"],
      ["/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"],
    ]);
    dir = mkdtempSync("/tmp/ward-fanmap-");
    secret = join(dir, "secret");
    writeFileSync(secret, SECRET);
    helper = join(dir, "fan-helper");
    const cc = spawnSync("cc", ["-O2", "-static", "-pthread", "-o", helper, join(import.meta.dir, "fanotify-helper.c")], { encoding: "utf8" });
    if (cc.status !== 0) throw new Error(`cc fanotify-helper.c failed: ${cc.stderr}`);
    mkdirSync(join(dir, "tools"));
    mkdirSync(join(dir, "held"));
    procs = new ProcessSensor({ nodeName: "test", onEvent: () => {}, log: () => {} });
    await procs.start();
    const host = hostHookFeatures();
    if (host.fanotify === undefined) throw new Error("fanotify permission events are not available here");
    const features: HookFeatures = { ...host, fanotify: { ...host.fanotify, processMap: true } };
    manager = new PolicyManager({
      features,
      encode: { nodeName: "test", clock: new BootClock(0n) },
      publish: () => {},
      log: () => {},
      ...(procs.processMap !== undefined ? { processMap: procs.processMap } : {}),
    });
  }, 60_000);

  afterAll(async () => {
    manager?.close();
    await procs?.stop();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("the binary is the one recorded at exec: a binary renamed after its exec (so /proc/PID/exe names the new path) is judged on the path it ran from", async () => {
    // Override for binaries under held/: a cat that ran from held/ and was moved to tools/
    // is still denied (the /proc view would allow it), and one that ran from tools/ and was
    // moved into held/ still reads (the /proc view would deny it).
    const p = policy(`      matchBinaries:
      - operator: Prefix
        values: ["${dir}/held/"]
`);
    const c = await withPolicy(p, async () => {
      const inHeld = join(dir, "held/cat-a");
      copyFileSync("/bin/cat", inHeld);
      expectDenied(run(inHeld, [secret]));
      const a = held(inHeld, ["-", secret]);
      await execed(a.pid, inHeld);
      const movedOut = join(dir, "tools/cat-a");
      renameSync(inHeld, movedOut);
      // the probe the test depends on: /proc now disagrees with the exec record
      expect(readlinkSync(`/proc/${a.pid}/exe`)).toBe(movedOut);
      expectDenied(await a.end());
      expect(run(movedOut, [secret]).stdout).toBe(SECRET); // a new exec from tools/ reads

      const inTools = join(dir, "tools/cat-b");
      copyFileSync("/bin/cat", inTools);
      const b = held(inTools, ["-", secret]);
      await execed(b.pid, inTools);
      const movedIn = join(dir, "held/cat-b");
      renameSync(inTools, movedIn);
      expect(readlinkSync(`/proc/${b.pid}/exe`)).toBe(movedIn);
      const rb = await b.end();
      expect(rb.stdout).toBe(SECRET);
      expect(rb.code).toBe(0);
      expectDenied(run(movedIn, [secret])); // a new exec from held/ is denied

      // one process, two images: sh (not under held/) opens the file, then execs a cat from
      // held/ in the same pid, whose open is judged on the new exec record
      const heldCat = join(dir, "held/cat-e");
      copyFileSync("/bin/cat", heldCat);
      const r = run("sh", ["-c", `exec 3< ${secret} && echo opened; exec ${heldCat} ${secret}`]);
      expect(r.stdout).toBe("opened\n");
      expect(r.stderr).toContain("Operation not permitted");
    });
    // every decision had its opener in the map: none came from /proc
    expect(c.fanotify_map_facts).toBe(7);
    expect(c.fanotify_proc_fallbacks).toBe(0);
    expect(c.fanotify_undecided).toBe(0);
  });

  kernelTest("a process the map has no entry for is read from /proc and counted; a *Changes rule cannot be decided without it (fail mode, counted)", async () => {
    const map = procs?.processMap;
    if (map === undefined) throw new Error("no process map");
    const key = (pid: number): Uint8Array => {
      const k = new Uint8Array(4);
      new DataView(k.buffer).setUint32(0, pid, true);
      return k;
    };
    const p = policy(`      matchBinaries:
      - operator: Prefix
        values: ["${dir}/held/"]
`);
    const c = await withPolicy(p, async () => {
      const inTools = join(dir, "tools/cat-c");
      copyFileSync("/bin/cat", inTools);
      const a = held(inTools, ["-", secret]);
      await execed(a.pid, inTools);
      const movedIn = join(dir, "held/cat-c");
      renameSync(inTools, movedIn);
      // without its exec record, the decision falls back to /proc/PID/exe, which names held/
      expect(map.delete(key(a.pid))).toBe(true);
      expectDenied(await a.end());
    });
    expect(c.fanotify_proc_fallbacks).toBe(1);
    expect(c.fanotify_map_facts).toBe(0);
    const changes = policy(`      matchNamespaceChanges:
      - operator: In
        values: ["Mnt"]
`, "fan-map-changes");
    const c2 = await withPolicy(changes, async () => {
      const b = held("/bin/cat", ["-", secret]);
      await execed(b.pid, realExe("/bin/cat"));
      expect(map.delete(key(b.pid))).toBe(true);
      expectDenied(await b.end());
    });
    expect(c2.fanotify_undecided).toBe(1);
  });

  kernelTest("matchPIDs on fanotify: In denies exactly the pid, NotIn everyone else, followForks the pid's children", async () => {
    const inPid = held("/bin/cat", ["-", secret]);
    await execed(inPid.pid, realExe("/bin/cat"));
    const p = policy(`      matchPIDs:
      - operator: In
        values: [${inPid.pid}]
`);
    await withPolicy(p, async () => {
      const h = m().state(p.metadata.name).hooks[0];
      expect(h?.limits.some((l) => l.startsWith("selector 0: matchArgs: the fanotify mark on the file's inode; matchPIDs: the event's pid, verified by its pidfd"))).toBe(true);
      expect(run("cat", [secret]).stdout).toBe(SECRET);
      expectDenied(await inPid.end());
      expect(run("cat", [secret]).stdout).toBe(SECRET);
    });
    const notIn = held("/bin/cat", ["-", secret]);
    await execed(notIn.pid, realExe("/bin/cat"));
    await withPolicy(policy(`      matchPIDs:
      - operator: NotIn
        values: [${notIn.pid}]
`), async () => {
      expectDenied(run("cat", [secret]));
      const r = await notIn.end();
      expect(r.stdout).toBe(SECRET);
    });
    const sh = held("/bin/sh", ["-c", `read x; cat ${secret}`]);
    await execed(sh.pid, realExe("/bin/sh"));
    await withPolicy(policy(`      matchPIDs:
      - operator: In
        followForks: true
        values: [${sh.pid}]
`), async () => {
      expect(run("sh", ["-c", `cat ${secret}`]).stdout).toBe(SECRET);
      expectDenied(await sh.end("\n"));
    });
  });

  kernelTest("matchNamespaceChanges and matchCapabilityChanges on fanotify: compared with the exec record in the map", async () => {
    const ns = policy(`      matchNamespaceChanges:
      - operator: In
        values: ["Mnt"]
`);
    const c = await withPolicy(ns, () => {
      expect(run(helper, ["after", "none", secret]).stdout).toBe(SECRET);
      expectDenied(run(helper, ["after", "mnt", secret]));
      // unshare(1) unshares and then execs: the new image's record has the new namespace
      expect(run("unshare", ["-m", "cat", secret]).stdout).toBe(SECRET);
    });
    expect(c.fanotify_undecided).toBe(0);
    expect(c.fanotify_map_facts).toBe(3);
    const caps = policy(`      matchCapabilityChanges:
      - type: Effective
        operator: In
        values: ["CAP_SYS_ADMIN"]
`);
    await withPolicy(caps, () => {
      expect(run(helper, ["after", "none", secret]).stdout).toBe(SECRET);
      expectDenied(run(helper, ["after", "capdrop", secret]));
    });
  });

  // Last: it stops the process sensor.
  kernelTest("the decision thread holds its own fd for the map: with the process sensor stopped, records made before still decide; a process started after has none (/proc, counted)", async () => {
    const p = policy(`      matchBinaries:
      - operator: Prefix
        values: ["${dir}/held/"]
`, "fan-map-stopped");
    const c = await withPolicy(p, async () => {
      const inHeld = join(dir, "held/cat-s");
      copyFileSync("/bin/cat", inHeld);
      const a = held(inHeld, ["-", secret]);
      await execed(a.pid, inHeld);
      const movedOut = join(dir, "tools/cat-s");
      renameSync(inHeld, movedOut);
      await procs?.stop(); // closes the sensor's map fd
      // a's record (held/) is still read through the thread's own fd: denied, though /proc says tools/
      expect(readlinkSync(`/proc/${a.pid}/exe`)).toBe(movedOut);
      expectDenied(await a.end());
      // nothing records execs any more: a new process is read from /proc
      const again = join(dir, "held/cat-t");
      copyFileSync("/bin/cat", again);
      expectDenied(run(again, [secret]));
    });
    expect(c.fanotify_map_facts).toBe(1);
    expect(c.fanotify_proc_fallbacks).toBe(1);
  });
});

/** The path /proc/PID/exe shows for a binary run by this path (symlinks resolved). */
function realExe(path: string): string {
  return spawnSync("readlink", ["-f", path], { encoding: "utf8" }).stdout.trim();
}
