// The generic hooks beyond the talk's first policies, against the real kernel: a tracefs
// tracepoint read by field offset, a syscall hook evaluated at its return with
// matchReturnArgs and return actions, Signal with argSig, matchNamespaces (host_ns) and
// matchCapabilities.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kernelTest, kernelUnavailable, prepareHost } from "../lib/host.ts";
import { tracefsRoot } from "../../src/bpf/perf.ts";
import { compilePolicy, hostSyscallNumber, type CompiledPolicy } from "../../src/policy/engine.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { GenericSensor, syscallHook, type GenericEvent } from "../../src/sensors/generic.ts";

let dir = "";
let sensor: GenericSensor | undefined;
const NR_OPENAT = hostSyscallNumber("sys_openat") ?? 257;

function s(): GenericSensor {
  if (sensor === undefined) throw new Error("generic sensor not loaded");
  return sensor;
}

function run(cmd: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: "utf8", timeout: 15_000 });
}

function compile(yaml: string): CompiledPolicy {
  const v = validatePolicyText(yaml, "test.yaml");
  const p = v.policies[0];
  if (!v.valid || p === undefined) throw new Error(`policy invalid: ${v.diagnostics.map((d) => d.message).join("; ")}`);
  return compilePolicy(p.policy, { setIdBase: s().nextSetIdBase() });
}

function policy(name: string, body: string): string {
  return `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${name}
spec:
${body}`;
}

async function recordsOf(policyId: string): Promise<GenericEvent[]> {
  await Bun.sleep(300);
  return s().drain().filter((e) => e.policyId === policyId);
}

/** offset and size of a field of a tracefs event's format file. */
function formatField(category: string, event: string, field: string): { offset: number; size: number } {
  const text = readFileSync(`${tracefsRoot()}/events/${category}/${event}/format`, "utf8");
  const m = new RegExp(`field:[^;]*\\b${field}(?:\\[\\d+\\])?;\\s*offset:(\\d+);\\s*size:(\\d+);`).exec(text);
  if (m?.[1] === undefined || m[2] === undefined) throw new Error(`no field ${field} in ${category}/${event}`);
  return { offset: Number(m[1]), size: Number(m[2]) };
}

describe("generic hooks: tracepoints, returns, signals, namespaces, capabilities", () => {
  beforeAll(() => {
    if (kernelUnavailable() !== undefined) return;
    prepareHost();
    dir = mkdtempSync("/tmp/ward-generic-hooks-");
    sensor = new GenericSensor();
    sensor.load();
    // Verifying the generic sensor takes 10-25 s on this machine kind.
  }, 180_000);

  afterAll(() => {
    // every test removed its policy: nothing stays attached
    expect(sensor?.attachments() ?? []).toEqual([]);
    sensor?.close();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("tracefs tracepoint syscalls/sys_enter_openat: filename by format offset, Prefix match, Sigkill", async () => {
    const file = join(dir, "tp-secret");
    writeFileSync(file, "tp\n");
    // Tetragon counts every format field, common_* included: filename is field 6.
    const c = compile(policy("tp-openat", `  tracepoints:
  - subsystem: "syscalls"
    event: "sys_enter_openat"
    args:
    - index: 6
      type: "string"
    selectors:
    - matchArgs:
      - index: 6
        operator: "Prefix"
        values:
        - "${dir}/tp-"
      matchActions:
      - action: Sigkill`));
    const f = formatField("syscalls", "sys_enter_openat", "filename");
    expect(f.size).toBe(8);
    s().apply("tp-openat", c, [{ index: 0, attach: { kind: "tracepoint", category: "syscalls", name: "sys_enter_openat" }, sources: [{ from: "tp-field", offset: f.offset, size: 8, user: true }] }]);
    try {
      const r = run("cat", [file]);
      expect(r.signal).toBe("SIGKILL");
      expect(r.stdout).toBe("");
      expect(run("cat", ["/etc/hostname"]).status).toBe(0);
      const recs = await recordsOf("tp-openat");
      const e = recs.find((x) => x.tgid === r.pid);
      expect(e?.killed).toBe(true);
      expect(new TextDecoder().decode(e?.args[0]?.bytes)).toBe(file);
    } finally {
      s().remove("tp-openat");
    }
    expect(run("cat", [file]).stdout).toBe("tp\n");
  });

  kernelTest("two tracefs hooks in one policy: sched_process_exec's __data_loc filename posts, task_rename's char newcomm[16] kills", async () => {
    const bin = join(dir, "wardtpcomm");
    copyFileSync("/usr/bin/true", bin);
    spawnSync("chmod", ["755", bin]);
    const c = compile(policy("tp-exec-rename", `  tracepoints:
  - subsystem: "sched"
    event: "sched_process_exec"
    args:
    - index: 4
      type: "data_loc"
    selectors:
    - matchArgs:
      - index: 4
        operator: "Equal"
        values:
        - "${bin}"
  - subsystem: "task"
    event: "task_rename"
    args:
    - index: 6
      type: "string"
    selectors:
    - matchArgs:
      - index: 6
        operator: "Equal"
        values:
        - "wardtpcomm"
      matchActions:
      - action: Sigkill`));
    const exec = formatField("sched", "sched_process_exec", "filename");
    const rename = formatField("task", "task_rename", "newcomm");
    expect(rename.size).toBe(16);
    s().apply("tp-exec-rename", c, [
      { index: 0, attach: { kind: "tracepoint", category: "sched", name: "sched_process_exec" }, sources: [{ from: "tp-dataloc", offset: exec.offset }] },
      { index: 1, attach: { kind: "tracepoint", category: "task", name: "task_rename" }, sources: [{ from: "tp-array", offset: rename.offset }] },
    ]);
    try {
      const r = run(bin, []);
      // exec renames the task to the binary's name: killed before the new image runs
      expect(r.signal).toBe("SIGKILL");
      expect(run("/usr/bin/true", []).status).toBe(0);
      const recs = (await recordsOf("tp-exec-rename")).filter((e) => e.tgid === r.pid);
      const byHook = new Map(recs.map((e) => [e.hookIndex, e]));
      expect(new TextDecoder().decode(byHook.get(0)?.args[0]?.bytes)).toBe(bin);
      expect(byHook.get(0)?.killed).toBe(false);
      expect(new TextDecoder().decode(byHook.get(1)?.args[0]?.bytes)).toBe("wardtpcomm");
      expect(byHook.get(1)?.killed).toBe(true);
    } finally {
      s().remove("tp-exec-rename");
    }
  });

  kernelTest("return: true + matchReturnArgs Equal -2 (ENOENT): the failed open is reported and killed at the return, a good one is not", async () => {
    const good = join(dir, "ret-good");
    writeFileSync(good, "good\n");
    const missing = join(dir, "ret-missing");
    const c = compile(policy("ret-openat", `  kprobes:
  - call: "sys_openat"
    syscall: true
    return: true
    args:
    - index: 1
      type: "string"
    returnArg:
      index: 0
      type: "int"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "${dir}/ret-"
      matchReturnArgs:
      - index: 0
        operator: "Equal"
        values:
        - "-2"
      matchReturnActions:
      - action: Sigkill`));
    s().apply("ret-openat", c, [syscallHook(c, 0, NR_OPENAT)]);
    try {
      const ok = run("cat", [good]);
      expect(ok.status).toBe(0);
      expect(ok.stdout).toBe("good\n");
      const bad = run("cat", [missing]);
      // killed on the way back from openat: cat never got to print its error
      expect(bad.signal).toBe("SIGKILL");
      expect(bad.stderr).toBe("");
      const recs = await recordsOf("ret-openat");
      expect(recs.filter((e) => e.tgid === ok.pid)).toEqual([]);
      const e = recs.find((x) => x.tgid === bad.pid);
      expect(e?.atReturn).toBe(true);
      expect(e?.ret).toBe(-2n);
      expect(e?.killed).toBe(true);
      expect(new TextDecoder().decode(e?.args.find((a) => a.slot === 0)?.bytes)).toBe(missing);
    } finally {
      s().remove("ret-openat");
    }
  });

  kernelTest("fd argument of sys_read resolves to the opened file's path: a relative open and a symlink are read by path, killed before read returns", async () => {
    const sub = join(dir, "fd");
    mkdirSync(sub, { recursive: true });
    const file = join(sub, "fd-secret");
    writeFileSync(file, "fd secret\n");
    symlinkSync(file, join(sub, "link"));
    const c = compile(policy("fd-read", `  kprobes:
  - call: "sys_read"
    syscall: true
    args:
    - index: 0
      type: "fd"
    - index: 2
      type: "size_t"
    selectors:
    - matchArgs:
      - index: 0
        operator: "Postfix"
        values:
        - "fd/fd-secret"
      matchActions:
      - action: Sigkill`));
    s().apply("fd-read", c, [syscallHook(c, 0, hostSyscallNumber("sys_read") ?? 0)]);
    try {
      const rel = spawnSync("cat", ["fd-secret"], { cwd: sub, encoding: "utf8" });
      expect(rel.signal).toBe("SIGKILL");
      expect(rel.stdout).toBe("");
      const viaLink = run("cat", [join(sub, "link")]);
      expect(viaLink.signal).toBe("SIGKILL");
      expect(viaLink.stdout).toBe("");
      expect(run("cat", ["/etc/hostname"]).status).toBe(0);
      const recs = await recordsOf("fd-read");
      const e = recs.find((x) => x.tgid === rel.pid);
      expect(e?.args[0]?.type).toBe("file");
      expect(new TextDecoder().decode(e?.args[0]?.bytes)).toBe(file);
      // i_mode: a regular file
      expect(Number((e?.args[0]?.int ?? 0n) & 0xf000n)).toBe(0x8000);
    } finally {
      s().remove("fd-read");
    }
  });

  kernelTest("char_iovec with sizeArgIndex: writev's buffers are read concatenated, a Prefix across two iovecs kills", async () => {
    const c = compile(policy("iovec-writev", `  kprobes:
  - call: "sys_writev"
    syscall: true
    args:
    - index: 0
      type: "int"
    - index: 1
      type: "char_iovec"
      sizeArgIndex: 3
    selectors:
    - matchArgs:
      - index: 1
        operator: "Prefix"
        values:
        - "ward-iovec-marker"
      matchActions:
      - action: Sigkill`));
    s().apply("iovec-writev", c, [syscallHook(c, 0, hostSyscallNumber("sys_writev") ?? 0, false, ["int", "char_iovec"])]);
    const bun = process.execPath;
    const writev = (a: string, b: string): SpawnSyncReturns<string> =>
      run(bun, ["-e", `const fs = require("fs"); fs.writevSync(1, [Buffer.from(${JSON.stringify(a)}), Buffer.from(${JSON.stringify(b)})]); fs.writeSync(1, "after\\n")`]);
    try {
      const killed = writev("ward-iovec-", "marker\n");
      expect(killed.signal).toBe("SIGKILL");
      // Sigkill at syscall entry does not undo the call itself (as with Tetragon's kprobe
      // Sigkill without Override): the write happens, the process never runs after it.
      expect(killed.stdout).toBe("ward-iovec-marker\n");
      const fine = writev("ward-iovec-", "other\n");
      expect(fine.status).toBe(0);
      expect(fine.stdout).toBe("ward-iovec-other\nafter\n");
      const e = (await recordsOf("iovec-writev")).find((x) => x.tgid === killed.pid);
      expect(new TextDecoder().decode(e?.args.find((a) => a.slot === 1)?.bytes)).toBe("ward-iovec-marker\n");
    } finally {
      s().remove("iovec-writev");
    }
  });

  kernelTest("without the process sensor's map, binary selectors are rejected instead of matching nothing", () => {
    const c = compile(policy("no-procmap", `  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    selectors:
    - matchBinaries:
      - operator: "NotIn"
        values:
        - "/usr/bin/cat"
      matchActions:
      - action: Sigkill`));
    expect(() => s().apply("no-procmap", c, [syscallHook(c, 0, NR_OPENAT)])).toThrow(/need the process sensor's map/);
    expect(s().policyIds()).toEqual([]);
  });

  kernelTest("sockaddr of sys_connect: SAddr CIDR and SPort select the destination; a connect to it dies", () => {
    const c = compile(policy("connect-kill", `  kprobes:
  - call: "sys_connect"
    syscall: true
    args:
    - index: 0
      type: "int"
    - index: 1
      type: "sockaddr"
    selectors:
    - matchArgs:
      - index: 1
        operator: "SAddr"
        values:
        - "127.0.0.0/8"
      - index: 1
        operator: "SPort"
        values:
        - "9"
      matchActions:
      - action: Sigkill`));
    s().apply("connect-kill", c, [syscallHook(c, 0, hostSyscallNumber("sys_connect") ?? 0)]);
    try {
      const hit = run("bash", ["-c", "exec 3<>/dev/tcp/127.0.0.7/9; echo after"]);
      expect(hit.signal).toBe("SIGKILL");
      expect(hit.stdout).toBe("");
      // another port: connect is refused, bash reports it and goes on
      const other = run("bash", ["-c", "exec 3<>/dev/tcp/127.0.0.7/10 || echo refused"]);
      expect(other.signal).toBeNull();
      expect(other.stdout).toBe("refused\n");
    } finally {
      s().remove("connect-kill");
    }
  });

  kernelTest("Signal with argSig: SIGUSR1 ends the process that opened the file", () => {
    const file = join(dir, "sig-file");
    writeFileSync(file, "sig\n");
    const c = compile(policy("sig-openat", `  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Equal"
        values:
        - "${file}"
      matchActions:
      - action: Signal
        argSig: 10`));
    s().apply("sig-openat", c, [syscallHook(c, 0, NR_OPENAT)]);
    try {
      const r = run("cat", [file]);
      expect(r.signal).toBe("SIGUSR1");
      expect(r.stdout).toBe("");
    } finally {
      s().remove("sig-openat");
    }
  });

  kernelTest("matchNamespaces Mnt NotIn host_ns: a process in its own mount namespace dies, the host's does not", () => {
    const file = join(dir, "ns-file");
    writeFileSync(file, "ns\n");
    const c = compile(policy("ns-openat", `  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Equal"
        values:
        - "${file}"
      matchNamespaces:
      - namespace: Mnt
        operator: NotIn
        values:
        - "host_ns"
      matchActions:
      - action: Sigkill`));
    s().apply("ns-openat", c, [syscallHook(c, 0, NR_OPENAT)]);
    try {
      expect(run("cat", [file]).stdout).toBe("ns\n");
      const r = run("unshare", ["--mount", "cat", file]);
      expect(r.signal).toBe("SIGKILL");
      expect(r.stdout).toBe("");
    } finally {
      s().remove("ns-openat");
    }
  });

  kernelTest("matchCapabilities Effective In CAP_SYS_ADMIN: root dies, a process without capabilities does not", () => {
    const file = join(dir, "cap-file");
    writeFileSync(file, "cap\n");
    spawnSync("chmod", ["644", file]);
    spawnSync("chmod", ["755", dir]);
    const c = compile(policy("cap-openat", `  kprobes:
  - call: "sys_openat"
    syscall: true
    args:
    - index: 1
      type: "string"
    selectors:
    - matchArgs:
      - index: 1
        operator: "Equal"
        values:
        - "${file}"
      matchCapabilities:
      - type: Effective
        operator: In
        values:
        - "CAP_SYS_ADMIN"
      matchActions:
      - action: Sigkill`));
    s().apply("cap-openat", c, [syscallHook(c, 0, NR_OPENAT)]);
    try {
      const root = run("cat", [file]);
      expect(root.signal).toBe("SIGKILL");
      const unpriv = run("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "cat", file]);
      expect(unpriv.signal).toBeNull();
      expect(unpriv.stdout).toBe("cap\n");
    } finally {
      s().remove("cap-openat");
    }
  });
});
