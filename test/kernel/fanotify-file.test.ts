// The fanotify backend against the real kernel, through the policy manager (resolution,
// attach, events) with the talk's secure policy: Override makes the open fail with EPERM
// and leaves the file untouched (O_TRUNC included), Override + Sigkill and Sigkill kill the
// opener before the answer, exec rules refuse the exec; and the bypass routes of
// docs/bypasses.md rerun under fanotify with the outcome each one gets.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";
import { BootClock } from "../../src/events/time.ts";
import type { JsonObject } from "../../src/events/tetragon.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { compilePolicy, evaluate } from "../../src/policy/engine.ts";
import type { TracingPolicy } from "../../src/policy/types.ts";
import { fanotifySupport } from "../../src/sensors/fanotify-sys.ts";
import { PolicyManager } from "../../src/sensors/manager.ts";
import { hostHookFeatures, resolvePolicy } from "../../src/sensors/resolve.ts";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";

const SECRET = "I love pizza!\n";
const OVERRIDE = "Override\n        argError: -1";
const OVERRIDE_KILL = "Override\n        argError: -1\n      - action: Sigkill";
let dir = "";
let secret = "";
let allowedCat = "";
let guardHelper = "";
let fanHelper = "";
let manager: PolicyManager | undefined;
const events: JsonObject[] = [];
const logs: string[] = [];

function m(): PolicyManager {
  if (manager === undefined) throw new Error("manager not created");
  return manager;
}

function run(cmd: string, args: string[], opts: { cwd?: string } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: "utf8", timeout: 15_000, ...opts });
}

function policy(yaml: string): TracingPolicy {
  const r = validatePolicyText(yaml, "fanotify-test.yaml");
  const errors = r.diagnostics.filter((d) => d.severity === "error");
  if (errors.length > 0 || r.policies[0] === undefined) throw new Error(`bad test policy: ${errors.map((e) => `${e.path}: ${e.message}`).join("; ")}`);
  return r.policies[0].policy;
}

/** Denied by FAN_DENY: the call failed with EPERM, the process lived, nothing leaked. */
function expectDenied(r: SpawnSyncReturns<string>): void {
  expect(r.error).toBeUndefined();
  expect(r.signal).toBeNull();
  expect(r.stdout).not.toContain("pizza");
  expect(`${r.stdout}${r.stderr}`).toMatch(/Operation not permitted|ERR \S+ 1\b/);
}

function expectKilled(r: SpawnSyncReturns<string>): void {
  expect(r.error).toBeUndefined();
  expect(r.signal).toBe("SIGKILL");
  expect(r.stdout).not.toContain("pizza");
}

function build(src: string, out: string): void {
  const r = spawnSync("cc", ["-O2", "-static", "-pthread", "-o", out, join(import.meta.dir, src)], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`cc ${src} failed: ${r.stderr}`);
}

/** Applies a policy, runs fn, removes it (also on failure). */
async function withPolicy(yaml: string, fn: () => unknown | Promise<unknown>): Promise<void> {
  const p = policy(yaml);
  const st = m().apply(p, { mode: "enforce" });
  expect(st.hooks[0]?.mechanism).toStartWith("fanotify (");
  // This thread blocks in spawnSync below: the decision thread has to be running first.
  await m().ready(p.metadata.name);
  try {
    await fn();
  } finally {
    m().remove(p.metadata.name);
  }
}

const talk = (action: string, file = secret, allowed = allowedCat) => secureOpenPolicy({ name: "fan-talk", file, allowed, action });

const bprm = (file: string, action = OVERRIDE) => `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: fan-exec
spec:
  kprobes:
  - call: security_bprm_check
    syscall: false
    args:
    - index: 0
      type: linux_binprm
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values:
        - ${file}
      matchActions:
      - action: ${action}
`;

describe("fanotify backend (FAN_OPEN_PERM / FAN_OPEN_EXEC_PERM, answered by the agent)", () => {
  beforeAll(() => {
    if (kernelUnavailable() !== undefined) return;
    ensureSystemPackages([
      ["/usr/bin/cc", "gcc"],
      ["/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"],
    ]);
    dir = mkdtempSync("/tmp/ward-fan-");
    mkdirSync(join(dir, "my/extremely/secret"), { recursive: true });
    secret = join(dir, "my/extremely/secret/file");
    writeFileSync(secret, SECRET);
    allowedCat = join(dir, "my/cat");
    copyFileSync("/bin/cat", allowedCat);
    guardHelper = join(dir, "guard-helper");
    fanHelper = join(dir, "fan-helper");
    build("guard-helper.c", guardHelper);
    build("fanotify-helper.c", fanHelper);
    manager = new PolicyManager({
      features: hostHookFeatures(),
      encode: { nodeName: "test", clock: new BootClock(0n) },
      publish: (ev) => events.push(ev),
      log: (msg) => logs.push(msg),
    });
  });

  afterAll(() => {
    manager?.close();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("the probe and the resolution agree: the talk's Override policy goes to fanotify here", () => {
    const s = fanotifySupport();
    const r = resolvePolicy(policy(talk(OVERRIDE)), hostHookFeatures(), "enforce");
    if (!s.permissions) {
      // Without fanotify permission events (and without BPF LSM) Override stays refused.
      expect(r.errors[0]).toContain("Override needs BPF LSM");
      return;
    }
    expect(r.errors).toEqual([]);
    const h = r.hooks[0];
    expect(h?.ok && h.backend).toBe("fanotify");
    if (h?.ok !== true) return;
    expect(h.mechanism).toContain("FAN_OPEN_PERM");
    expect(h.actions.map((a) => a.honored).join(" ")).toContain("FAN_DENY");
    expect(h.limits.join(" ")).toContain("ends with the agent");
    // With Sigkill too the rule stays on fanotify: nothing on tp_btf/sys_exit.
    const k = resolvePolicy(policy(talk("Sigkill")), hostHookFeatures(), "enforce").hooks[0];
    expect(k?.ok && k.backend).toBe("fanotify");
    expect(k?.ok && k.actions[0]?.honored).toContain("kill before the answer");
  });

  kernelTest("Override: cat gets \"Operation not permitted\" and exits 1 (not killed), /my/cat reads, `: >` leaves the content", async () => {
    await withPolicy(talk(OVERRIDE), async () => {
      events.length = 0;
      const cat = run("cat", [secret]);
      expect(cat.signal).toBeNull();
      expect(cat.status).toBe(1);
      expect(cat.stderr).toContain("Operation not permitted");
      expect(cat.stdout).toBe("");
      const mine = run(allowedCat, [secret]);
      expect(mine.status).toBe(0);
      expect(mine.stdout).toBe(SECRET);
      const trunc = run("sh", ["-c", `: > ${secret}`]);
      expect(trunc.status).not.toBe(0);
      expect(trunc.stderr).toContain("Operation not permitted");
      expect(readFileSync(secret, "utf8")).toBe(SECRET);
      // creat(2) (O_CREAT|O_TRUNC) and O_TRUNC from a program: refused before the truncation
      expectDenied(run(guardHelper, ["creat", secret]));
      expect(readFileSync(secret, "utf8")).toBe(SECRET);
      await Bun.sleep(300);
      const ev = events.find((e) => (e.process_kprobe as JsonObject | undefined)?.action === "KPROBE_ACTION_OVERRIDE");
      expect(ev).toBeDefined();
      const kp = ev!.process_kprobe as JsonObject;
      expect(kp.policy_name).toBe("fan-talk");
      expect(kp.function_name).toBe("security_file_open");
      expect(JSON.stringify(kp.args)).toContain(secret);
      const c = m().state("fan-talk").counters!;
      expect(c.fanotify_denied).toBeGreaterThanOrEqual(3);
      expect(c.fanotify_timeouts).toBe(0);
      expect(c.fanotify_undecided).toBe(0);
    });
    // The group is gone with the policy: cat reads again.
    expect(run("cat", [secret]).stdout).toBe(SECRET);
  });

  kernelTest("Override + Sigkill: killed before the answer, the content intact; Sigkill alone too", async () => {
    for (const action of [OVERRIDE_KILL, "Sigkill"]) {
      await withPolicy(talk(action), () => {
        expectKilled(run("cat", [secret]));
        expectKilled(run("sh", ["-c", `: > ${secret}`]));
        expect(readFileSync(secret, "utf8")).toBe(SECRET);
        expect(run(allowedCat, [secret]).stdout).toBe(SECRET);
        expect(m().state("fan-talk").counters!.fanotify_killed).toBeGreaterThanOrEqual(2);
      });
    }
  });

  kernelTest("matchBinaries entries missing at apply: NotIn allows the path until the file appears, then only that file (inode); In matches by path and keeps it beside the inode", async () => {
    const later = join(dir, "later-bins");
    mkdirSync(later, { recursive: true });
    const tool = join(later, "mycat");
    const status = () => m().state("fan-talk").hooks[0]?.binaries?.[0]?.entries[0];
    await withPolicy(talk(OVERRIDE, secret, tool), () => {
      expect(status()).toEqual({ path: tool, by: "path", match: "path (not present; inode-matched from the first decision after it appears)" });
      expectDenied(run("cat", [secret]));
      copyFileSync("/bin/cat", tool);
      // first decision after it appears: allowed, and the entry is the inode from now on
      expect(run(tool, [secret]).stdout).toBe(SECRET);
      expect(status()?.by).toBe("inode");
      // another file put at the same path later is not the allowed binary: the path match is
      // gone. (The first copy stays linked under another name, so the new file cannot reuse
      // its inode number; that reuse is the documented i_generation limit.)
      const first = join(later, "first");
      linkSync(tool, first);
      copyFileSync("/bin/cat", `${tool}.new`);
      renameSync(`${tool}.new`, tool);
      expectDenied(run(tool, [secret]));
      // the first copy, under another name, still is allowed (its inode)
      expect(run(first, [secret]).stdout).toBe(SECRET);
    });
    rmSync(tool, { force: true });
    const evil = join(later, "evil");
    const deny = talk(OVERRIDE, secret, evil).replace("operator: NotIn", "operator: In");
    await withPolicy(deny, () => {
      expect(run("cat", [secret]).stdout).toBe(SECRET);
      copyFileSync("/bin/cat", evil);
      expectDenied(run(evil, [secret]));
      expect(status()?.match).toMatch(/^inode \(\d+:\d+\) and path$/);
      // replaced at the same path (a new inode, the old one still linked): still denied, by the path match
      linkSync(evil, join(later, "evil-first"));
      copyFileSync("/bin/cat", `${evil}.new`);
      renameSync(`${evil}.new`, evil);
      expectDenied(run(evil, [secret]));
      // and the first copy under another name, by its inode
      expectDenied(run(join(later, "evil-first"), [secret]));
      expect(run("cat", [secret]).stdout).toBe(SECRET);
    });
    rmSync(later, { recursive: true, force: true });
  });

  kernelTest("bypass routes under fanotify (Override): relative, .., symlink, hardlink, dirfd, openat2, open_by_handle_at, threads racing the path, io_uring: all EPERM", async () => {
    const link = join(dir, "innocent-link");
    const hard = join(dir, "innocent-hardlink");
    symlinkSync(secret, link);
    linkSync(secret, hard);
    await withPolicy(talk(OVERRIDE), () => {
      const cwd = join(dir, "my/extremely/secret");
      expectDenied(run("cat", ["file"], { cwd }));
      expectDenied(run("cat", ["../secret/./file"], { cwd }));
      expectDenied(run("cat", [link]));
      expectDenied(run("cat", [hard]));
      expectDenied(run(fanHelper, ["dirfd", cwd, "file"]));
      expectDenied(run(guardHelper, ["openat2", secret]));
      expectDenied(run(guardHelper, ["handle", secret]));
      // a sibling thread rewriting the path buffer: whichever name resolved, the inode is held
      const race = run(guardHelper, ["pathrace", secret]);
      expect(race.signal).toBeNull();
      expect(race.stdout).not.toContain("pizza");
      // io_uring: the open inside the ring is held like any other (no syscall needed)
      for (const mode of ["uring", "uring-direct", "uring-chain"]) {
        const r = run(guardHelper, [mode, secret]);
        expect(r.signal).toBeNull();
        expect(r.stdout).not.toContain("pizza");
      }
      // O_PATH gives no access to the content and is not a file open (as with LSM file_open)
      expect(run(guardHelper, ["opath", secret]).signal).toBeNull();
    });
  });

  kernelTest("/proc/self/fd re-open and a process started before the policy: EPERM at the open", async () => {
    const child = spawn(guardHelper, ["procfd", secret], { stdio: ["pipe", "pipe", "pipe"] });
    let out = "";
    child.stdout.setEncoding("utf8");
    const ready = new Promise<void>((resolve) => child.stdout.on("data", (d: string) => {
      out += d;
      if (out.includes("ready")) resolve();
    }));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
    await ready;
    await withPolicy(talk(OVERRIDE), async () => {
      child.stdin.write("go\n");
      const end = await exited;
      expect(end.signal).toBeNull();
      expect(out).not.toContain("pizza");
      expect(out).toMatch(/ERR \S+ 1\b/);
    });
  });

  kernelTest("exec of the protected file under security_file_open fails with EPERM (the exec opens it)", async () => {
    const prog = join(dir, "forbidden-cat");
    copyFileSync("/bin/cat", prog);
    await withPolicy(talk(OVERRIDE, prog, allowedCat), () => {
      const r = run("/bin/sh", ["-c", `${prog} /etc/hostname; echo "status $?"`]);
      expect(r.stderr).toContain("Operation not permitted");
      expect(r.stdout.trim()).toBe("status 126");
    });
  });

  kernelTest("security_bprm_check + Override: exec fails with EPERM through a symlink, a hardlink and a renamed copy (by inode); reading it is allowed", async () => {
    const prog = join(dir, "no-exec-cat");
    copyFileSync("/bin/cat", prog);
    const link = join(dir, "no-exec-link");
    const hard = join(dir, "no-exec-hard");
    symlinkSync(prog, link);
    linkSync(prog, hard);
    await withPolicy(bprm(prog).replace("name: fan-exec", "name: fan-talk"), () => {
      for (const p of [prog, link, hard]) {
        const r = run(p, ["/etc/hostname"]);
        expect(r.error).toBeDefined();
        expect((r.error as NodeJS.ErrnoException).code).toBe("EPERM");
      }
      const renamed = join(dir, "renamed-cat");
      renameSync(prog, renamed);
      const r = run(renamed, ["/etc/hostname"]);
      expect((r.error as NodeJS.ErrnoException | undefined)?.code).toBe("EPERM");
      // an exec rule does not hold plain opens of the file
      expect(run("cat", [renamed]).status).toBe(0);
    });
  });

  kernelTest("Prefix on a directory: files under it (by inode, hardlinks too), files created later in it and in subdirectories made later (nested, moved in) get EPERM", async () => {
    const tree = join(dir, "tree");
    mkdirSync(join(tree, "sub"), { recursive: true });
    writeFileSync(join(tree, "a"), SECRET);
    writeFileSync(join(tree, "sub", "b"), SECRET);
    const outside = join(dir, "tree-hardlink");
    linkSync(join(tree, "sub", "b"), outside);
    const yaml = secureOpenPolicy({ name: "fan-talk", file: `${tree}/`, allowed: allowedCat, action: OVERRIDE, operator: "Prefix" });
    await withPolicy(yaml, async () => {
      expectDenied(run("cat", [join(tree, "a")]));
      expectDenied(run("cat", [join(tree, "sub", "b")]));
      expectDenied(run("cat", [outside]));
      expectDenied(run(guardHelper, ["uring", join(tree, "a")]));
      expect(run(allowedCat, [join(tree, "a")]).stdout).toBe(SECRET);
      // created after the policy in a marked directory (written by this runner, which the
      // manager exempts like the agent's own tgid)
      writeFileSync(join(tree, "later"), SECRET);
      writeFileSync(join(tree, "sub", "later"), SECRET);
      expectDenied(run("cat", [join(tree, "later")]));
      expectDenied(run("cat", [join(tree, "sub", "later")]));
      // A subdirectory made after the policy is marked as its creation is read; nested ones
      // made before that mark lands are found by the scan after it; a tree moved in too.
      mkdirSync(join(tree, "newsub", "x", "y"), { recursive: true });
      writeFileSync(join(tree, "newsub", "c"), SECRET);
      writeFileSync(join(tree, "newsub", "x", "y", "d"), SECRET);
      const outsideTree = join(dir, "moved-in");
      mkdirSync(join(outsideTree, "z"), { recursive: true });
      writeFileSync(join(outsideTree, "z", "e"), SECRET);
      renameSync(outsideTree, join(tree, "sub", "moved"));
      await Bun.sleep(50);
      expectDenied(run("cat", [join(tree, "newsub", "c")]));
      expectDenied(run("cat", [join(tree, "newsub", "x", "y", "d")]));
      expectDenied(run("cat", [join(tree, "sub", "moved", "z", "e")]));
      expect(run(allowedCat, [join(tree, "newsub", "x", "y", "d")]).stdout).toBe(SECRET);
      const c = m().state("fan-talk").counters!;
      expect(c.fanotify_new_dirs).toBeGreaterThanOrEqual(5);
      expect(c.fanotify_new_dirs_missed).toBe(0);
      expect(m().state("fan-talk").hooks[0]?.mechanism).toContain("(directory tree)");
    });
  });

  kernelTest("Prefix: a process that makes a directory in the tree and opens files in it in a tight loop is held within milliseconds (the window before the new directory's mark, measured)", async () => {
    const tree = join(dir, "race-tree");
    mkdirSync(tree, { recursive: true });
    const yaml = secureOpenPolicy({ name: "fan-talk", file: `${tree}/`, allowed: allowedCat, action: OVERRIDE, operator: "Prefix" });
    await withPolicy(yaml, () => {
      const r = run(fanHelper, ["newdir", "200", tree]);
      expect(r.status).toBe(0);
      const [, dirs, held, maxUs, meanUs, leaked] = /dirs (\d+) held (\d+) max_us (\d+) mean_us (\d+) leaked (\d+)/.exec(r.stdout) ?? [];
      // every new directory gets its mark (the helper gives up on one after 1 s)
      expect(Number(dirs)).toBe(200);
      expect(Number(held)).toBe(200);
      const c = m().state("fan-talk").counters!;
      expect(c.fanotify_new_dirs).toBeGreaterThanOrEqual(200);
      expect(c.fanotify_new_dirs_missed).toBe(0);
      process.stderr.write(`fanotify: 200 directories made and opened into at once: ${leaked} opens got through before the mark; mkdir to held: mean ${meanUs} us, max ${maxUs} us; read-to-mark max ${c.fanotify_max_dir_mark_us} us\n`);
      // The window is real (mkdir cannot be held): opens on the other CPU in the ~0.1-4 ms
      // before the mark get through (0 when the decision thread runs on the opener's CPU,
      // thousands over 200 directories when it does not). Bounded: within the decision bound.
      expect(Number(maxUs)).toBeLessThan(100_000);
      expect(Number(meanUs)).toBeLessThan(20_000);
    });
  });

  kernelTest("engine-decided selectors: matchNamespaces, matchCapabilities, matchParentBinaries and followChildren are evaluated by the engine on /proc facts: the opener outside the selector reads, inside it gets EPERM or dies", async () => {
    const file = join(dir, "engine-secret");
    writeFileSync(file, SECRET);
    // nobody (the capability-less reader below) must reach it: mkdtemp made the dir 0700
    spawnSync("chmod", ["755", dir]);
    spawnSync("chmod", ["644", file]);
    const mySh = join(dir, "my/sh");
    copyFileSync("/bin/sh", mySh);
    spawnSync("chmod", ["755", mySh]);
    const hook = (selector: string) => `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: fan-engine
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
        values: ["${file}"]
${selector}`;
    const check = (yaml: string): void => {
      const st = resolvePolicy(policy(yaml), hostHookFeatures()).hooks[0];
      expect(st?.ok && st.backend).toBe("fanotify");
      expect(st?.ok && st.fanotify?.evaluator).toBe("engine");
      expect(st?.ok && st.mechanism).toContain("policy engine's userspace evaluate()");
    };
    // a process in a mount namespace of its own is refused; the host's reads
    const ns = hook(`      matchNamespaces:
      - namespace: Mnt
        operator: NotIn
        values: ["host_ns"]
      matchActions:
      - action: Override
        argError: -1
`);
    check(ns);
    await withPolicy(ns, () => {
      expect(run("cat", [file]).stdout).toBe(SECRET);
      expectDenied(run("unshare", ["-m", "cat", file]));
    });
    // CAP_SYS_ADMIN in the effective set is refused; the same cat without capabilities reads
    const caps = hook(`      matchCapabilities:
      - type: Effective
        operator: In
        values: ["CAP_SYS_ADMIN"]
      matchActions:
      - action: Override
        argError: -1
`);
    check(caps);
    await withPolicy(caps, () => {
      expectDenied(run("cat", [file]));
      expect(run("setpriv", ["--reuid", "65534", "--regid", "65534", "--clear-groups", "cat", file]).stdout).toBe(SECRET);
    });
    // started by my/sh: killed; by sh: reads
    const parent = hook(`      matchParentBinaries:
      - operator: In
        values: ["${mySh}"]
      matchActions:
      - action: Sigkill
`);
    check(parent);
    await withPolicy(parent, () => {
      const r = run(mySh, ["-c", `cat ${file}; echo after $?`]);
      expect(r.stdout).toBe("after 137\n");
      expect(run("sh", ["-c", `cat ${file}`]).stdout).toBe(SECRET);
    });
    // followChildren: any descendant of my/sh (my/sh -> sh -> cat) gets EPERM
    const follow = hook(`      matchBinaries:
      - operator: In
        followChildren: true
        values: ["${mySh}"]
      matchActions:
      - action: Override
        argError: -1
`);
    check(follow);
    await withPolicy(follow, () => {
      const r = run(mySh, ["-c", `sh -c 'cat ${file}'; true`]);
      expect(r.stdout).not.toContain("pizza");
      expect(r.stderr).toContain("Operation not permitted");
      expect(run("sh", ["-c", `sh -c 'cat ${file}'`]).stdout).toBe(SECRET);
      const c = m().state("fan-engine").counters!;
      expect(c.fanotify_undecided).toBe(0);
      expect(c.fanotify_timeouts).toBe(0);
    });
    // matchNamespaceChanges needs exec-time values: not fanotify's (the file guard's, with its mechanism)
    const changes = resolvePolicy(policy(hook(`      matchNamespaceChanges:
      - operator: In
        values: ["Mnt"]
      matchActions:
      - action: Sigkill
`)), hostHookFeatures()).hooks[0];
    expect(changes?.ok && changes.backend).not.toBe("fanotify");
  });

  kernelTest("fanotify and the engine's evaluate() agree: per binary and file, the outcome (EPERM, killed, read) is the selector evaluate() picks", async () => {
    // Two files, three selectors (Tetragon's order: the first matching selector acts):
    // s0 file1 NotIn [allowed] Override; s1 file2 In [other] Sigkill; s2 file2 NotIn [allowed, other] Override.
    const file1 = join(dir, "agree-1");
    const file2 = join(dir, "agree-2");
    writeFileSync(file1, SECRET);
    writeFileSync(file2, SECRET);
    const other = join(dir, "other-cat");
    copyFileSync("/bin/cat", other);
    const sel = (file: string, op: string, bins: string[], action: string) => `    - matchArgs:
      - index: 0
        operator: Equal
        values: ["${file}"]
      matchBinaries:
      - operator: ${op}
        values: [${bins.map((b) => `"${b}"`).join(", ")}]
      matchActions:
      - action: ${action}
`;
    const yaml = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: fan-talk
spec:
  kprobes:
  - call: security_file_open
    syscall: false
    args:
    - index: 0
      type: file
    selectors:
${sel(file1, "NotIn", [allowedCat], OVERRIDE)}${sel(file2, "In", [other], "Sigkill")}${sel(file2, "NotIn", [allowedCat, other], OVERRIDE)}`;
    const compiled = compilePolicy(policy(yaml));
    const rows: string[] = [];
    let disagree = 0;
    await withPolicy(yaml, () => {
      for (const bin of ["/usr/bin/cat", allowedCat, other]) {
        for (const file of [file1, file2]) {
          const r = run(bin, [file]);
          const got = r.signal === "SIGKILL" ? "killed" : r.stdout === SECRET ? "read" : /Operation not permitted/.test(r.stderr) ? "EPERM" : `? ${r.status} ${r.stderr.trim()}`;
          const d = evaluate(compiled, 0, { pid: r.pid ?? 1, binary: bin, args: [{ file: { path: file } }] });
          const names = d.matched ? d.actions.map((a) => a.action) : [];
          const want = !d.matched ? "read" : names.includes("Sigkill") ? "killed" : names.includes("Override") ? "EPERM" : "read";
          if (got !== want) disagree++;
          rows.push(`${got === want ? "  " : "!!"} ${bin} ${file}: fanotify ${got}, evaluate() s${d.selector ?? "-"} -> ${want}`);
        }
      }
    });
    if (disagree > 0) process.stderr.write(`fanotify/engine disagreement:\n${rows.join("\n")}\n`);
    expect(disagree).toBe(0);
    // the table exercises every outcome
    const outcomes = rows.join("\n");
    for (const o of ["fanotify EPERM", "fanotify killed", "fanotify read"]) expect(outcomes).toContain(o);
  });

  kernelTest("1,000 concurrent opens of a watched file are all answered within the bound: EPERM each, none undecided, none late", async () => {
    await withPolicy(talk(OVERRIDE), async () => {
      const r = run(fanHelper, ["concurrent", "1000", secret]);
      expect(r.status).toBe(0);
      const [, ok, eperm, other, maxus] = /ok (\d+) eperm (\d+) other (\d+) maxus (\d+)/.exec(r.stdout) ?? [];
      expect(Number(ok)).toBe(0);
      expect(Number(eperm)).toBe(1000);
      expect(Number(other)).toBe(0);
      // the thread counts an answer just after writing it: give the last ones a moment
      for (let i = 0; i < 50 && (m().state("fan-talk").counters!.fanotify_denied ?? 0) < 1000; i++) await Bun.sleep(20);
      const c = m().state("fan-talk").counters!;
      expect(c.fanotify_events).toBeGreaterThanOrEqual(1000);
      expect(c.fanotify_undecided).toBe(0);
      // The bound (100 ms by default) runs from our read of the event to the answer. The
      // opener's whole wait (maxus) also includes the kernel queue and its own wake-up
      // among 1,000 threads, which the bound does not cover.
      expect(c.fanotify_denied).toBeGreaterThanOrEqual(1000);
      process.stderr.write(`fanotify: 1000 concurrent opens: slowest open ${maxus} us, slowest answer ${c.fanotify_max_answer_us} us, mean ${c.fanotify_mean_answer_us} us, ${c.fanotify_timeouts} late (fail mode), scheduling ${c.fanotify_scheduling}\n`);
      // Root with real-time time left (sched_rt_runtime_us not 0) gets SCHED_FIFO; as a
      // real-time thread the decision thread is not preempted by the openers it wakes, so
      // every decision is made by the rules, none by the fail mode, all within the bound.
      const rtRuntime = Number(readFileSync("/proc/sys/kernel/sched_rt_runtime_us", "utf8").trim());
      expect(c.fanotify_scheduling).toBe(rtRuntime !== 0 ? 1 : 2);
      expect(c.fanotify_timeouts).toBe(0);
      expect(c.fanotify_max_answer_us).toBeLessThan(100_000);
    });
  });

  kernelTest("a flood of allowed opens of a watched file does not starve another decision", async () => {
    const allowedHelper = join(dir, "my/fan-helper");
    copyFileSync(fanHelper, allowedHelper);
    await withPolicy(talk(OVERRIDE, secret, allowedHelper), async () => {
      const flood = spawn(allowedHelper, ["flood", "3", secret], { stdio: ["ignore", "pipe", "inherit"] });
      let out = "";
      flood.stdout.setEncoding("utf8");
      flood.stdout.on("data", (d: string) => {
        out += d;
      });
      const done = new Promise<void>((resolve) => flood.on("exit", () => resolve()));
      await Bun.sleep(500);
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        expectDenied(run("cat", [secret]));
        times.push(performance.now() - t0);
      }
      await done;
      const opens = Number(/opens (\d+)/.exec(out)?.[1] ?? 0);
      expect(opens).toBeGreaterThan(1000);
      const c = m().state("fan-talk").counters!;
      expect(c.fanotify_timeouts).toBe(0);
      // a cat run (fork, exec, the denied open) stays well under a second while the flood runs
      expect(Math.max(...times)).toBeLessThan(1000);
      process.stderr.write(`fanotify: flood of ${opens} allowed opens in 3 s; denied cat took ${times.map((t) => t.toFixed(1)).join(", ")} ms\n`);
    });
  });

  kernelTest("a fail mode of allow with a bound of 1 ms is accepted and stated; monitor mode allows and reports", async () => {
    const yaml = `${talk(OVERRIDE)}  options:\n  - name: fanotify-fail-mode\n    value: allow\n  - name: fanotify-answer-ms\n    value: "1"\n`;
    const r = resolvePolicy(policy(yaml), hostHookFeatures(), "enforce").hooks[0];
    expect(r?.ok && r.limits.join(" ")).toContain("within 1 ms");
    expect(r?.ok && r.limits.join(" ")).toContain("fanotify-fail-mode allow");
    const p = policy(talk(OVERRIDE));
    m().apply(p, { mode: "monitor" });
    await m().ready(p.metadata.name);
    try {
      events.length = 0;
      expect(run("cat", [secret]).stdout).toBe(SECRET);
      await Bun.sleep(300);
      expect(events.some((e) => (e.process_kprobe as JsonObject | undefined)?.policy_name === "fan-talk")).toBe(true);
    } finally {
      m().remove(p.metadata.name);
    }
  });
});
