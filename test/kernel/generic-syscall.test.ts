// The generic syscall hooks against the real kernel: the talk's first policies, compiled by
// the engine from Tetragon YAML, decided in the kernel at sys_enter of openat. Real
// processes open a secret file and are killed before the call returns (or are not, as the
// selectors say); Post records carry the arguments; rate limits, monitor mode and the
// exempt set hold.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { compilePolicy, hostSyscallNumber, type CompiledPolicy } from "../../src/policy/engine.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { GenericSensor, syscallHook, type GenericEvent } from "../../src/sensors/generic.ts";
import { ProcessSensor } from "../../src/sensors/process.ts";

const SECRET = "I love pizza!\n";
let dir = "";
let secret = "";
let myCat = "";
let sensor: GenericSensor | undefined;
let procs: ProcessSensor | undefined;
const NR_OPENAT = hostSyscallNumber("sys_openat") ?? 257;

function s(): GenericSensor {
  if (sensor === undefined) throw new Error("generic sensor not loaded");
  return sensor;
}

function run(cmd: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: "utf8", timeout: 15_000 });
}

function expectKilled(r: SpawnSyncReturns<string>): void {
  expect(r.error).toBeUndefined();
  expect(r.signal).toBe("SIGKILL");
  expect(r.status).toBeNull();
  expect(r.stdout).toBe("");
}

function expectPrinted(r: SpawnSyncReturns<string>, text: string): void {
  expect(r.signal).toBeNull();
  expect(r.status).toBe(0);
  expect(r.stdout).toBe(text);
}

function compile(yaml: string): CompiledPolicy {
  const v = validatePolicyText(yaml, "test.yaml");
  const p = v.policies[0];
  if (!v.valid || p === undefined) throw new Error(`policy invalid: ${v.diagnostics.map((d) => d.message).join("; ")}`);
  return compilePolicy(p.policy, { setIdBase: s().nextSetIdBase() });
}

/** Compiles and applies a one-hook openat policy; returns the policy id. */
function applyOpenat(id: string, selectors: string, extraArgs = ""): string {
  const yaml = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${id}
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"${extraArgs}
${selectors}`;
  const c = compile(yaml);
  s().apply(id, c, [syscallHook(c, 0, NR_OPENAT)]);
  return id;
}

const eqSecret = (path: string): string => `      matchArgs:
      - index: 1
        operator: "Equal"
        values:
        - "${path}"`;

/** Records of one policy posted so far (the reader is drained synchronously). */
async function recordsOf(policyId: string, wait = 300): Promise<GenericEvent[]> {
  await Bun.sleep(wait);
  return s().drain().filter((e) => e.policyId === policyId);
}

describe("generic syscall hooks (sys_enter openat)", () => {
  beforeAll(async () => {
    if (kernelUnavailable() !== undefined) return;
    dir = mkdtempSync("/tmp/ward-generic-");
    mkdirSync(join(dir, "my/extremely/secret"), { recursive: true });
    secret = join(dir, "my/extremely/secret/file");
    writeFileSync(secret, SECRET);
    myCat = join(dir, "my/cat");
    copyFileSync("/usr/bin/cat", myCat);
    spawnSync("chmod", ["755", myCat]);
    procs = new ProcessSensor({ nodeName: "test", onEvent: () => {}, log: () => {} });
    await procs.start();
    sensor = new GenericSensor({ processMap: procs.processMap });
    sensor.load();
  }, 180_000); // loading generic.o verifies its programs: 24 s on a quiet machine since the scope checks, minutes on a busy one

  afterAll(async () => {
    sensor?.close();
    await procs?.stop();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("Equal on the path + Sigkill: cat of the secret dies before printing, other files print", async () => {
    const id = applyOpenat("kill-secret", `    selectors:
    - ${eqSecret(secret).trimStart()}
      matchActions:
      - action: Sigkill`);
    try {
      expectKilled(run("cat", [secret]));
      expectPrinted(run("cat", ["/etc/hostname"]), readFileSync("/etc/hostname", "utf8"));
      const recs = await recordsOf(id);
      const kill = recs.find((e) => e.killed);
      expect(kill).toBeDefined();
      expect(kill?.actions).toContain("Sigkill");
      expect(new TextDecoder().decode(kill?.args[0]?.bytes)).toBe(secret);
      expect(s().counters().kills).toBeGreaterThan(0n);
    } finally {
      s().remove(id);
    }
    // removed: the same cat reads the file again
    expectPrinted(run("cat", [secret]), SECRET);
  });

  kernelTest("matchBinaries NotIn [my/cat]: my/cat prints, cat dies", () => {
    const id = applyOpenat("kill-secret-but-mycat", `    selectors:
    - ${eqSecret(secret).trimStart()}
      matchBinaries:
      - operator: "NotIn"
        values:
        - "${myCat}"
      matchActions:
      - action: Sigkill`);
    try {
      expectPrinted(run(myCat, [secret]), SECRET);
      expectKilled(run("cat", [secret]));
    } finally {
      s().remove(id);
    }
  });

  kernelTest("matchParentBinaries In [my/sh]: a cat started by my/sh dies, one started by sh reads; matchBinaries followChildren reaches the grandchild", () => {
    const mySh = join(dir, "my/sh");
    copyFileSync("/bin/sh", mySh);
    spawnSync("chmod", ["755", mySh]);
    const id = applyOpenat("kill-secret-parent", `    selectors:
    - ${eqSecret(secret).trimStart()}
      matchParentBinaries:
      - operator: "In"
        values:
        - "${mySh}"
      matchActions:
      - action: Sigkill`);
    try {
      const r = run(mySh, ["-c", `cat ${secret}; true`]);
      expect(r.stdout).toBe("");
      expect(r.status).toBe(0); // the shell lives on: its child died
      expectPrinted(run("sh", ["-c", `cat ${secret}; true`]), SECRET);
    } finally {
      s().remove(id);
    }
    const id2 = applyOpenat("kill-secret-follow", `    selectors:
    - ${eqSecret(secret).trimStart()}
      matchBinaries:
      - operator: "In"
        followChildren: true
        values:
        - "${mySh}"
      matchActions:
      - action: Sigkill`);
    try {
      // my/sh -> sh -> cat: cat is a descendant of my/sh
      const r = run(mySh, ["-c", `sh -c 'cat ${secret}; true'; true`]);
      expect(r.stdout).toBe("");
      expectPrinted(run("sh", ["-c", `sh -c 'cat ${secret}; true'; true`]), SECRET);
    } finally {
      s().remove(id2);
    }
  });

  kernelTest("matchCapabilityChanges / matchNamespaceChanges: a process that dropped its capabilities or left a namespace since exec dies, an unchanged one reads", () => {
    // one bun child per case: it changes (or not) without exec'ing, then reads the secret
    const script = join(dir, "change.js");
    writeFileSync(script, `const { dlopen } = require("bun:ffi");
const c = dlopen("libc.so.6", { unshare: { args: ["i32"], returns: "i32" }, setresuid: { args: ["u32", "u32", "u32"], returns: "i32" } });
const mode = process.argv[2];
if (mode === "ns" && c.symbols.unshare(0x04000000) !== 0) process.exit(3);
if (mode === "caps" && c.symbols.setresuid(65534, 65534, 65534) !== 0) process.exit(3);
process.stdout.write(require("fs").readFileSync(${JSON.stringify(secret)}, "utf8"));
`);
    const bun = process.execPath;
    const capId = applyOpenat("kill-cap-change", `    selectors:
    - ${eqSecret(secret).trimStart()}
      matchCapabilityChanges:
      - type: Effective
        operator: In
        values:
        - "CAP_SYS_ADMIN"
      matchActions:
      - action: Sigkill`);
    try {
      expectPrinted(run(bun, [script, "none"]), SECRET);
      expectKilled(run(bun, [script, "caps"]));
    } finally {
      s().remove(capId);
    }
    const nsId = applyOpenat("kill-ns-change", `    selectors:
    - ${eqSecret(secret).trimStart()}
      matchNamespaceChanges:
      - operator: In
        values:
        - "Uts"
      matchActions:
      - action: Sigkill`);
    try {
      expectPrinted(run(bun, [script, "none"]), SECRET);
      expectKilled(run(bun, [script, "ns"]));
    } finally {
      s().remove(nsId);
    }
  });

  kernelTest("matchPIDs NotIn [1] followForks isNamespacePID: namespace init and its children open, a process entering from outside dies", async () => {
    const id = applyOpenat("kill-secret-pidns", `    selectors:
    - ${eqSecret(secret).trimStart()}
      matchPIDs:
      - operator: NotIn
        followForks: true
        isNamespacePID: true
        values:
        - 1
      matchActions:
      - action: Sigkill`);
    const holder = spawn("unshare", ["--pid", "--fork", "--mount-proc", "sleep", "30"], { stdio: "ignore" });
    let target = 0;
    try {
      // the namespace's init (cat is pid 1 there)
      expectPrinted(run("unshare", ["--pid", "--fork", "--mount-proc", "cat", secret]), SECRET);
      // a child of the namespace's init (sh is pid 1, cat pid 2 with parent 1)
      expectPrinted(run("unshare", ["--pid", "--fork", "--mount-proc", "sh", "-c", `cat ${secret}; true`]), SECRET);
      // a process entering the namespace from outside: no parent visible inside, pid != 1
      for (let i = 0; i < 50 && target === 0; i++) {
        await Bun.sleep(50);
        const r = run("pgrep", ["-P", String(holder.pid), "sleep"]);
        target = Number(r.stdout.trim().split("\n")[0] ?? 0) || 0;
      }
      expect(target).toBeGreaterThan(0);
      const r = run("nsenter", ["--target", String(target), "--pid", "--", "cat", secret]);
      expect(r.signal).toBe("SIGKILL");
      expect(r.stdout).toBe("");
    } finally {
      // the namespace's init (sleep) outlives unshare unless killed itself
      if (target > 0) process.kill(target, "SIGKILL");
      holder.kill("SIGKILL");
      s().remove(id);
    }
  });

  kernelTest("a Post-only selector yields a record with the arguments", async () => {
    const probe = join(dir, "post-probe");
    writeFileSync(probe, "x");
    const id = applyOpenat("post-probe", `    - index: 2
      type: "int"
    selectors:
    - ${eqSecret(probe).trimStart()}`);
    try {
      const r = spawnSync("cat", [probe], { encoding: "utf8" });
      expectPrinted(r, "x");
      const recs = await recordsOf(id);
      const mine = recs.filter((e) => e.tgid === r.pid);
      expect(mine.length).toBe(1);
      const e = mine[0];
      expect(e?.selector).toBe(0);
      expect(e?.actions).toEqual(["Post"]);
      expect(e?.killed).toBe(false);
      expect(e?.syscall).toBe(NR_OPENAT);
      expect(e?.args[0]?.type).toBe("string");
      expect(new TextDecoder().decode(e?.args[0]?.bytes)).toBe(probe);
      // flags of cat's open: O_RDONLY (0) plus whatever the libc adds, never O_WRONLY/O_RDWR
      expect(e?.args[1]?.type).toBe("s32");
      expect(Number((e?.args[1]?.int ?? 1n) & 3n)).toBe(0);
    } finally {
      s().remove(id);
    }
  });

  kernelTest("rateLimit (global scope) posts once for repeated identical opens", async () => {
    const probe = join(dir, "rate-probe");
    writeFileSync(probe, "y");
    const id = applyOpenat("rate-probe", `    selectors:
    - ${eqSecret(probe).trimStart()}
      matchActions:
      - action: Post
        rateLimit: "1m"
        rateLimitScope: "global"`);
    try {
      for (let i = 0; i < 4; i++) expectPrinted(run("cat", [probe]), "y");
      const recs = await recordsOf(id);
      expect(recs.length).toBe(1);
      expect(s().counters().rateLimited).toBeGreaterThanOrEqual(3n);
    } finally {
      s().remove(id);
    }
  });

  kernelTest("monitor mode posts instead of killing; back to enforce kills", async () => {
    const id = applyOpenat("kill-secret-monitor", `    selectors:
    - ${eqSecret(secret).trimStart()}
      matchActions:
      - action: Sigkill`);
    try {
      s().setMode(id, "monitor");
      const r = run("cat", [secret]);
      expectPrinted(r, SECRET);
      const recs = (await recordsOf(id)).filter((e) => e.tgid === r.pid);
      expect(recs.length).toBe(1);
      expect(recs[0]?.monitor).toBe(true);
      expect(recs[0]?.killed).toBe(false);
      expect(recs[0]?.actions).toContain("Sigkill");
      s().setMode(id, "enforce");
      expectKilled(run("cat", [secret]));
    } finally {
      s().remove(id);
    }
  });

  kernelTest("Sigkill on every openat of a binary: an exempt tgid survives it, others die", async () => {
    const id = applyOpenat("kill-every-open", `    selectors:
    - matchBinaries:
      - operator: "In"
        values:
        - "${myCat}"
      matchActions:
      - action: Sigkill`);
    try {
      expectKilled(run(myCat, ["/etc/hostname"]));
      // the same binary under an exempt tgid: sh waits for a line, is exempted, then execs my/cat
      const child = spawn("sh", ["-c", `read x; exec ${myCat} /etc/hostname`], { stdio: ["pipe", "pipe", "ignore"] });
      let out = "";
      child.stdout.on("data", (b: Buffer) => { out += b.toString(); });
      const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.on("exit", (code, signal) => res({ code, signal })));
      if (child.pid === undefined) throw new Error("spawn failed");
      s().exempt(child.pid);
      try {
        child.stdin.write("go\n");
        const st = await done;
        expect(st.signal).toBeNull();
        expect(st.code).toBe(0);
        expect(out).toBe(readFileSync("/etc/hostname", "utf8"));
      } finally {
        s().unexempt(child.pid);
      }
      expect(s().counters().exempt).toBeGreaterThan(0n);
    } finally {
      s().remove(id);
    }
  });

  kernelTest("apply is all or nothing: a policy that fails half way leaves no entry behind, remove frees everything", () => {
    const before = s().tableSizes();
    // Fill openat's dispatch list (dispatchLimit hooks per syscall) with one policy, then a
    // second policy fails at its dispatch entry, after its sets and configs were written.
    const hooks = (name: string, n: number, path: string): string => {
      let y = `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: ${name}\nspec:\n  kprobes:\n`;
      for (let i = 0; i < n; i++) {
        y += `  - call: "sys_openat"\n    syscall: true\n    args:\n    - index: 1\n      type: "string"\n    selectors:\n    - matchArgs:\n      - index: 1\n        operator: "Equal"\n        values:\n        - "${path}${i}"\n      matchBinaries:\n      - operator: In\n        values:\n        - "${myCat}${i}"\n`;
      }
      return y;
    };
    const limit = s().dispatchLimit;
    const full = compile(hooks("fill", limit, `${dir}/fill-`));
    s().apply("fill", full, full.hooks.map((h) => syscallHook(full, h.index, NR_OPENAT)));
    expect(s().attachments()).toEqual(["tp_btf/sys_enter"]);
    const during = s().tableSizes();
    expect(during.activeSlots).toBe((before.activeSlots ?? 0) + limit);
    const extra = compile(hooks("extra", 1, `${dir}/extra-`));
    expect(() => s().apply("extra", extra, [syscallHook(extra, 0, NR_OPENAT)])).toThrow(new RegExp(`more than ${limit} hooks`));
    expect(s().tableSizes()).toEqual(during);
    expect(s().policyIds()).not.toContain("extra");
    s().remove("fill");
    expect(s().tableSizes()).toEqual(before);
    // nothing needs the syscall programs any more: detached
    expect(s().attachments()).toEqual([]);
  });

  kernelTest("a file read from the returned fd at sys_exit (security_file_open's substitute): the opened file's path, only for real opens", async () => {
    const yaml = (name: string, selector: string): string => `apiVersion: cilium.io/v1alpha1
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
${selector}`;
    const opened = (c: CompiledPolicy) => {
      const h = syscallHook(c, 0, NR_OPENAT, true);
      return { ...h, sources: [{ from: "return" as const, fd: true }, ...h.sources.slice(1)], openedFd: true };
    };
    // Post on a Postfix of the file: a relative path is reported as the absolute path opened.
    const c = compile(yaml("ret-fd", `    - matchArgs:
      - index: 0
        operator: Postfix
        values: ["/secret/file"]`));
    // Without evaluation at the return the returned fd cannot be read: refused.
    expect(() => s().apply("ret-fd", c, [{ ...opened(c), atReturn: false }])).toThrow(/needs a syscall hook evaluated at the return/);
    s().apply("ret-fd", c, [opened(c)]);
    try {
      const r = spawnSync("cat", ["extremely/secret/file"], { encoding: "utf8", cwd: join(dir, "my") });
      expectPrinted(r, SECRET);
      const mine = (await recordsOf("ret-fd")).filter((e) => e.tgid === r.pid);
      expect(mine.length).toBe(1);
      expect(mine[0]?.atReturn).toBe(true);
      expect(mine[0]?.ret).toBeGreaterThanOrEqual(0n);
      expect(mine[0]?.args[0]?.type).toBe("file");
      expect(new TextDecoder().decode(mine[0]?.args[0]?.bytes)).toBe(secret);
    } finally {
      s().remove("ret-fd");
    }
    // No matchArgs: every open of my/cat is reported, but a failed open is not a file open,
    // so it is never evaluated (O_PATH opens likewise: the e2e Prefix test shows it).
    const all = compile(yaml("ret-fd-all", `    - matchBinaries:
      - operator: In
        values: ["${myCat}"]`));
    s().apply("ret-fd-all", all, [opened(all)]);
    try {
      const missing = join(dir, "missing");
      const r = spawnSync(myCat, [secret, missing], { encoding: "utf8" });
      expect(r.stdout).toBe(SECRET);
      expect(r.status).toBe(1);
      const mine = (await recordsOf("ret-fd-all")).filter((e) => e.tgid === r.pid);
      const paths = mine.map((e) => new TextDecoder().decode(e.args[0]?.bytes));
      expect(paths).toContain(secret);
      expect(paths).not.toContain(missing);
      for (const e of mine) expect(e.ret).toBeGreaterThanOrEqual(0n);
    } finally {
      s().remove("ret-fd-all");
    }
  });

  kernelTest("Override is rejected with the reason; nothing of the policy stays in the maps", () => {
    const c = compile(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: override-openat
spec:
  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    selectors:
    - ${eqSecret(secret).trimStart()}
      matchActions:
      - action: Override
        argError: -1`);
    expect(() => s().apply("override-openat", c, [syscallHook(c, 0, NR_OPENAT)])).toThrow(/Override cannot run here: this kernel has no fmod_ret/);
    expect(s().policyIds()).not.toContain("override-openat");
    expectPrinted(run("cat", [secret]), SECRET);
  });
});
