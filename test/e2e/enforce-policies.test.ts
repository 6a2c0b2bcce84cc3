// The talk's policies through the real agent (`ward agent --policy ...`), as root against
// the real kernel: processes are really killed, the allowed binary really reads the file,
// the export file carries process_kprobe events with policy_name and action, and the
// policy lifecycle over the API (add, disable, enable, mode, delete) changes what the
// kernel does. A policy that cannot be honored here stops the start with its reason and
// leaves nothing attached.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { ensureSystemPackages } from "../../build/system.ts";
import { kernelTest } from "../lib/host.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";
import { fanotifySupport } from "../../src/sensors/fanotify-sys.ts";
import { agentReady, waitFor } from "../lib/agent.ts";

/**
 * Whether fanotify holds file rules here (no BPF LSM loads on this host, so the probe decides
 * between fanotify and the file guard, exactly as src/sensors/resolve.ts does).
 */
const fanotifyHere = fanotifySupport().permissions;

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const dir = mkdtempSync(join(tmpdir(), "ward-enforce-"));
const bpfDir = `/sys/fs/bpf/ward-enforce-${process.pid}`;
const secret = join(dir, "my", "extremely", "secret", "file");
const myCat = join(dir, "my", "cat");
const otherCat = join(dir, "other", "cat");
const CONTENT = "I love pizza!\n";

beforeAll(() => {
  mkdirSync(join(dir, "my", "extremely", "secret"), { recursive: true });
  mkdirSync(join(dir, "other"));
  writeFileSync(secret, CONTENT);
  copyFileSync("/bin/cat", myCat);
  copyFileSync("/bin/cat", otherCat);
  spawnSync("chmod", ["755", myCat, otherCat]);
  symlinkSync(secret, join(dir, "symlink"));
  linkSync(secret, join(dir, "hardlink"));
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
});

function secureYaml(name: string, action = "Sigkill"): string {
  return secureOpenPolicy({ name, file: secret, allowed: myCat, action });
}

/**
 * BPF links a process holds, from its fds' fdinfo (link_id): exact for one agent even while
 * other suites on the host create links of their own.
 */
function readlinkOf(pid: number, fd: string): string {
  try {
    return readlinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return "";
  }
}

function linkIdsOf(pid: number): Set<number> {
  const out = new Set<number>();
  const dirPath = `/proc/${pid}/fdinfo`;
  for (const fd of readdirSync(dirPath)) {
    let text: string;
    try {
      text = readFileSync(join(dirPath, fd), "utf8");
    } catch {
      continue; // closed meanwhile
    }
    const m = /^link_id:\s*(\d+)/m.exec(text);
    if (m) out.add(Number(m[1]));
  }
  return out;
}

interface Running {
  url: string;
  token: string;
  exportFile: string;
  agent: Subprocess<"ignore", "pipe", "pipe">;
  stderr: Promise<string>;
  api(path: string, init?: RequestInit): Promise<Response>;
  events(): Record<string, unknown>[];
  stop(): Promise<number>;
}

let seq = 0;
async function startAgent(policies: string[], runtime = process.execPath): Promise<Running> {
  const n = ++seq;
  const stateFile = join(dir, `state-${n}.json`);
  const tokenFile = join(dir, `token-${n}`);
  const exportFile = join(dir, `events-${n}.log`);
  const args = [runtime, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", exportFile, "--bpf-dir", bpfDir];
  for (const p of policies) args.push("--policy", p);
  const agent = Bun.spawn(args, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  const stderr = new Response(agent.stderr).text();
  const { state, token } = await agentReady(agent, { stateFile, tokenFile });
  return {
    url: state.url,
    token,
    exportFile,
    agent,
    stderr,
    api: (path, init = {}) => fetch(`${state.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } }),
    events: () => (existsSync(exportFile) ? readFileSync(exportFile, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>) : []),
    async stop() {
      if (agent.exitCode === null) agent.kill("SIGTERM");
      return await agent.exited;
    },
  };
}

/** Runs argv; returns stdout and how it ended (signal name when killed). */
function run(argv: string[], opts: { cwd?: string } = {}) {
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", cwd: opts.cwd, timeout: 20_000 });
  return { stdout: r.stdout ?? "", stderr: r.stderr ?? "", status: r.status, signal: r.signal };
}

function killed(r: { stdout: string; status: number | null; signal: NodeJS.Signals | null }): void {
  expect(r.signal).toBe("SIGKILL");
  expect(r.stdout).toBe("");
}

interface KprobeEvent {
  process?: { binary?: string; pid?: number };
  function_name?: string;
  args?: { file_arg?: { path?: string } }[];
  action?: string;
  policy_name?: string;
}

function kprobes(a: Running, policy: string): KprobeEvent[] {
  return a.events().map((e) => e.process_kprobe as KprobeEvent | undefined).filter((e): e is KprobeEvent => e !== undefined && e.policy_name === policy);
}

describe("enforcement through the agent (e2e)", () => {
  kernelTest(
    "security_file_open + NotIn [my/cat] + Sigkill: cat, copies, relative paths, symlinks and hardlinks die; my/cat prints the file; events say so",
    async () => {
      const policyFile = join(dir, "secure.yaml");
      writeFileSync(policyFile, secureYaml("secure-files"));
      // Without the agent every way in reads the file (so the kills below are the policy's).
      expect(run(["cat", secret]).stdout).toBe(CONTENT);
      // A process started before the agent: it opens the file when told to, after the policy is in.
      const early = Bun.spawn(["python3", "-c", `import sys; sys.stdin.readline(); print(open(${JSON.stringify(secret)}).read(), end="")`], { stdin: "pipe", stdout: "pipe", stderr: "ignore" });
      const a = await startAgent([policyFile]);
      try {
        early.stdin.write("go\n");
        await early.stdin.end();
        expect(await early.exited).toBe(137);
        expect(early.signalCode).toBe("SIGKILL");
        expect(await new Response(early.stdout).text()).toBe("");
        killed(run(["cat", secret]));
        killed(run([otherCat, secret]));
        killed(run(["cat", "extremely/secret/file"], { cwd: join(dir, "my") }));
        killed(run(["cat", "../my/extremely/secret/./file"], { cwd: join(dir, "other") }));
        killed(run(["cat", join(dir, "symlink")]));
        killed(run(["cat", join(dir, "hardlink")]));
        killed(run(["python3", "-c", `import os; fd = os.open("secret/file", os.O_RDONLY, dir_fd=os.open(${JSON.stringify(join(dir, "my", "extremely"))}, os.O_RDONLY)); print(os.read(fd, 100))`]));
        const allowed = run([myCat, secret]);
        expect(allowed.stdout).toBe(CONTENT);
        expect(allowed.status).toBe(0);
        expect(run(["cat", "/etc/hostname"]).status).toBe(0);
        // process_kprobe events, with policy name and action, the file, and the process from the cache.
        const evs = await waitFor("8 process_kprobe events", () => {
          const e = kprobes(a, "secure-files");
          return e.length >= 8 ? e : undefined;
        }, 10_000);
        for (const e of evs) {
          expect(e.function_name).toBe("security_file_open");
          expect(e.action).toBe("KPROBE_ACTION_SIGKILL");
          expect(e.args?.[0]?.file_arg?.path).toBe(secret);
        }
        expect(evs.some((e) => e.process?.binary === "/usr/bin/cat")).toBe(true);
        expect(evs.some((e) => e.process?.binary === otherCat)).toBe(true);
        expect(evs.some((e) => e.process?.binary === myCat)).toBe(false);
        // Status: per hook the mechanism and how the action is honored.
        const st = (await (await a.api("/v1/status")).json()) as { policies: { name: string; state: string; hooks: { mechanism: string; actions: { action: string; honored: string }[]; limits: string[] }[] }[] };
        const p = st.policies.find((x) => x.name === "secure-files");
        expect(p?.state).toBe("enforcing");
        expect(p?.hooks[0]?.mechanism).toContain(fanotifyHere ? "fanotify (FAN_OPEN_PERM on the inode" : "file guard substitute for security_file_open");
        expect(p?.hooks[0]?.actions[0]?.action).toBe("Sigkill");
        expect(p?.hooks[0]?.actions[0]?.honored).toContain("SIGKILL");
        expect(p?.hooks[0]?.limits.join("\n")).toContain(fanotifyHere ? "ends with the agent" : "io_uring");
        expect(await a.stop()).toBe(0);
      } finally {
        if (early.exitCode === null) early.kill("SIGKILL");
        await a.stop();
      }
      // Stopping the agent detached the guard.
      expect(run(["cat", secret]).stdout).toBe(CONTENT);
    },
    120_000,
  );

  kernelTest(
    "through the agent, open(2), openat2, open_by_handle_at, /proc/self/fd, io_uring (plain, linked, direct) and a path-buffer race never get the content",
    async () => {
      ensureSystemPackages([
        ["/usr/bin/cc", "gcc"],
        ["/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"],
      ]);
      const helper = join(dir, "other", "helper");
      const cc = spawnSync("cc", ["-O2", "-static", "-pthread", "-o", helper, join(root, "test", "kernel", "guard-helper.c")], { encoding: "utf8" });
      expect(cc.stderr).toBe("");
      expect(run([helper, "read", secret]).stdout).toBe(CONTENT);
      expect(run([helper, "uring", secret]).stdout).toContain("pizza");
      const policyFile = join(dir, "secure-helper.yaml");
      writeFileSync(policyFile, secureYaml("secure-helper"));
      const a = await startAgent([policyFile]);
      try {
        for (const how of ["read", "openat2", "handle", "procfd", "uring", "uring-chain", "uring-direct", "pathrace"]) {
          const r = run([helper, how, secret]);
          if (r.signal !== "SIGKILL") {
            const st = (await (await a.api("/v1/status")).json()) as { policies: { name: string; counters?: Record<string, number> }[] };
            process.stderr.write(`${how}: not killed (status ${r.status}, ${r.stdout.length} bytes out, ${JSON.stringify(r.stdout.slice(-200))}); counters ${JSON.stringify(st.policies[0]?.counters)}\n`);
          }
          expect({ how, signal: r.signal }).toEqual({ how, signal: "SIGKILL" });
          expect(r.stdout).not.toContain("pizza");
        }
        await waitFor("8 events", () => (kprobes(a, "secure-helper").length >= 8 ? true : undefined), 10_000);
      } finally {
        await a.stop();
      }
    },
    120_000,
  );

  kernelTest(
    "security_file_open + matchPIDs NotIn [1] followForks isNamespacePID (generic sensor at the open exit): a pid namespace's init and its children read the file, a process entering with nsenter dies",
    async () => {
      const policyFile = join(dir, "pidns.yaml");
      writeFileSync(policyFile, `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: pidns-secret
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
        values:
        - ${secret}
      matchPIDs:
      - operator: NotIn
        followForks: true
        isNamespacePID: true
        values:
        - 1
      matchActions:
      - action: Sigkill
`);
      const unshare = ["unshare", "--pid", "--fork", "--mount-proc"];
      // A namespace to enter from outside: its init sleeps; the test kills it at the end.
      const holder = Bun.spawn([...unshare, "sleep", "120"], { stdout: "ignore", stderr: "ignore", stdin: "ignore" });
      const a = await startAgent([policyFile]);
      try {
        const init = await waitFor("the namespace's init", () => {
          try {
            const kids = readFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`, "utf8").trim();
            return kids === "" ? undefined : Number(kids.split(" ")[0]);
          } catch {
            return undefined;
          }
        }, 10_000);
        // Without the agent the entering process reads the file: checked after the agent is
        // stopped below, so the kill here is the policy's.
        const asInit = run([...unshare, "cat", secret]);
        expect(asInit.stdout).toBe(CONTENT);
        expect(asInit.status).toBe(0);
        // sh is the namespace's pid 1; cat is its child (followForks), and so is cat's grandchild.
        const forked = run([...unshare, "sh", "-c", `cat ${secret}; sh -c 'cat ${secret}; true'; true`]);
        expect(forked.stdout).toBe(CONTENT + CONTENT);
        expect(forked.status).toBe(0);
        const entered = run(["nsenter", "--target", String(init), "--pid", "cat", secret]);
        expect(entered.stdout).toBe("");
        expect(entered.signal === "SIGKILL" || entered.status === 137).toBe(true);
        // On the host (not in a pid namespace) the selector never matches: nothing is killed.
        expect(run(["cat", secret]).stdout).toBe(CONTENT);
        const ev = await waitFor("the kill's process_kprobe", () => kprobes(a, "pidns-secret")[0], 10_000);
        expect(ev.function_name).toBe("security_file_open");
        expect(ev.action).toBe("KPROBE_ACTION_SIGKILL");
        expect(ev.args?.[0]?.file_arg?.path).toBe(secret);
        expect(kprobes(a, "pidns-secret")).toHaveLength(1);
        const st = (await (await a.api("/v1/status")).json()) as { policies: { name: string; hooks: { mechanism: string; limits: string[]; bypasses: string[] }[] }[] };
        const hook = st.policies.find((x) => x.name === "pidns-secret")?.hooks[0];
        expect(hook?.mechanism).toStartWith("generic: open-family syscall exit, file from the returned fd");
        expect(hook?.bypasses.join("\n")).toContain("io_uring_setup");
        expect(await a.stop()).toBe(0);
        const free = run(["nsenter", "--target", String(init), "--pid", "cat", secret]);
        expect(free.stdout).toBe(CONTENT);
      } finally {
        await a.stop();
        holder.kill("SIGKILL");
        await holder.exited;
      }
    },
    120_000,
  );

  kernelTest(
    "security_file_open + Prefix on a path string (generic sensor at the open exit): cat through a relative path, a symlink, .. and /proc/self/fd dies; my/cat and other files are fine",
    async () => {
      const policyFile = join(dir, "prefix.yaml");
      // A string prefix (no trailing "/"): compared as a path by the open-exit check. A
      // directory prefix ("/dir/") goes to fanotify (test/kernel/fanotify-file.test.ts).
      writeFileSync(policyFile, secureOpenPolicy({ name: "prefix-secret", operator: "Prefix", file: join(dir, "my", "extremely"), allowed: myCat }));
      const a = await startAgent([policyFile]);
      try {
        killed(run(["cat", "extremely/secret/file"], { cwd: join(dir, "my") }));
        killed(run(["cat", join(dir, "symlink")]));
        killed(run(["cat", "../my/extremely/secret/./file"], { cwd: join(dir, "other") }));
        killed(run(["python3", "-c", `import os; p = os.open(${JSON.stringify(secret)}, os.O_PATH); fd = os.open(f"/proc/self/fd/{p}", os.O_RDONLY); print(os.read(fd, 100))`]));
        // An O_PATH open is not a file open (security_file_open never sees one): not killed.
        expect(run(["python3", "-c", `import os; os.open(${JSON.stringify(secret)}, os.O_PATH); print("ok")`]).stdout).toBe("ok\n");
        // Failed opens are not file opens either.
        expect(run(["cat", join(dir, "my", "extremely", "missing")]).status).toBe(1);
        const allowed = run([myCat, secret]);
        expect(allowed.stdout).toBe(CONTENT);
        expect(allowed.status).toBe(0);
        expect(run(["cat", "/etc/hostname"]).status).toBe(0);
        const evs = await waitFor("4 process_kprobe events", () => {
          const e = kprobes(a, "prefix-secret");
          return e.length >= 4 ? e : undefined;
        }, 10_000);
        for (const e of evs) {
          expect(e.function_name).toBe("security_file_open");
          expect(e.action).toBe("KPROBE_ACTION_SIGKILL");
          expect(e.args?.[0]?.file_arg?.path).toBe(secret);
        }
        expect(kprobes(a, "prefix-secret")).toHaveLength(4);
        const st = (await (await a.api("/v1/status")).json()) as { policies: { name: string; hooks: { mechanism: string; limits: string[] }[] }[] };
        const hook = st.policies.find((x) => x.name === "prefix-secret")?.hooks[0];
        expect(hook?.mechanism).toStartWith("generic: open-family syscall exit, file from the returned fd");
        expect(hook?.limits.join("\n")).toContain("a hardlink is matched by its own path");
      } finally {
        await a.stop();
      }
      expect(run(["cat", join(dir, "symlink")]).stdout).toBe(CONTENT);
    },
    120_000,
  );

  kernelTest(
    "Prefix rule (generic sensor at the open exit): open(2), openat2, open_by_handle_at, creat, /proc/self/fd and a path-buffer race die; io_uring bypasses it, as explain says",
    async () => {
      ensureSystemPackages([
        ["/usr/bin/cc", "gcc"],
        ["/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"],
      ]);
      const helper = join(dir, "other", "helper-prefix");
      const cc = spawnSync("cc", ["-O2", "-static", "-pthread", "-o", helper, join(root, "test", "kernel", "guard-helper.c")], { encoding: "utf8" });
      expect(cc.stderr).toBe("");
      const policyFile = join(dir, "prefix-helper.yaml");
      // a string prefix, held by the open-exit check (a "/dir/" prefix would go to fanotify)
      writeFileSync(policyFile, secureOpenPolicy({ name: "prefix-helper", operator: "Prefix", file: join(dir, "my", "extremely"), allowed: myCat }));
      const created = join(dir, "my", "extremely", "created");
      // open_by_handle_at names the inode: a file with one name (secret also has a hardlink
      // outside the prefix, whose name the dentry cache may hand back: a documented bypass).
      const single = join(dir, "my", "extremely", "single");
      writeFileSync(single, CONTENT);
      const a = await startAgent([policyFile]);
      try {
        for (const [how, path] of [["read", secret], ["openat2", secret], ["handle", single], ["procfd", secret], ["pathrace", secret]] as const) {
          const r = run([helper, how, path]);
          expect({ how, signal: r.signal }).toEqual({ how, signal: "SIGKILL" });
          expect(r.stdout).not.toContain("pizza");
        }
        // creat under the prefix: killed at the exit (the file exists by then, as the limits say).
        expect(run([helper, "creat", created]).signal).toBe("SIGKILL");
        // io_uring opens without an open syscall: the documented bypass of this mechanism.
        expect(run([helper, "uring", secret]).stdout).toContain("pizza");
        await waitFor("6 events", () => (kprobes(a, "prefix-helper").length >= 6 ? true : undefined), 10_000);
        expect(kprobes(a, "prefix-helper").map((e) => e.args?.[0]?.file_arg?.path).sort()).toEqual([created, single, ...Array<string>(4).fill(secret)].sort());
      } finally {
        await a.stop();
        rmSync(created, { force: true });
        rmSync(single, { force: true });
      }
    },
    120_000,
  );

  kernelTest(
    "sys_openat (syscall: true) string Equal + Sigkill: cat of the path dies, cat /etc/hostname works, the event names __x64_sys_openat",
    async () => {
      const policyFile = join(dir, "openat.yaml");
      writeFileSync(policyFile, `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: openat-secret
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 0
      type: int
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values:
        - ${secret}
      matchBinaries:
      - operator: NotIn
        values:
        - ${myCat}
      matchActions:
      - action: Sigkill
`);
      const a = await startAgent([policyFile]);
      try {
        killed(run(["cat", secret]));
        expect(run([myCat, secret]).stdout).toBe(CONTENT);
        expect(run(["cat", "/etc/hostname"]).status).toBe(0);
        const ev = await waitFor("process_kprobe", () => kprobes(a, "openat-secret")[0], 10_000);
        expect(ev.function_name).toBe("__x64_sys_openat");
        expect(ev.action).toBe("KPROBE_ACTION_SIGKILL");
        expect(JSON.stringify(ev.args)).toContain(`{"string_arg":"${secret}"}`);
      } finally {
        await a.stop();
      }
    },
    120_000,
  );

  kernelTest(
    "a tracefs tracepoint (args by format index) and a list:NAME of syscalls run through the generic hooks",
    async () => {
      const tp = join(dir, "tp.yaml");
      writeFileSync(tp, `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: tp-openat
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_openat
    args:
    - index: 6
      type: string
    selectors:
    - matchArgs:
      - index: 6
        operator: Equal
        values:
        - ${secret}
      matchActions:
      - action: Sigkill
`);
      const py = join(dir, "other", "py");
      copyFileSync(spawnSync("readlink", ["-f", "/usr/bin/python3"], { encoding: "utf8" }).stdout.trim(), py);
      spawnSync("chmod", ["755", py]);
      const list = join(dir, "list.yaml");
      writeFileSync(list, `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: list-dup
spec:
  lists:
  - name: dups
    type: syscalls
    values: ["sys_dup", "sys_dup2"]
  kprobes:
  - call: "list:dups"
    selectors:
    - matchBinaries:
      - operator: In
        values: ["${py}"]
      matchActions:
      - action: Sigkill
`);
      const dupScript = "import os; print('before', flush=True); os.dup2(1, 5); print('after')";
      expect(run([py, "-c", dupScript]).stdout).toBe("before\nafter\n");
      const a = await startAgent([tp, list]);
      try {
        killed(run(["cat", secret]));
        const r = run([py, "-c", dupScript]);
        expect(r.signal).toBe("SIGKILL");
        expect(r.stdout).toBe("before\n");
        expect(run(["python3", "-c", "import os; os.dup(1); print('ok')"]).stdout).toBe("ok\n");
        const tpEv = await waitFor("process_tracepoint", () => a.events().map((e) => e.process_tracepoint as { subsys?: string; event?: string; policy_name?: string; action?: string; args?: unknown[] } | undefined).find((e) => e?.policy_name === "tp-openat"), 10_000);
        expect(tpEv).toMatchObject({ subsys: "syscalls", event: "sys_enter_openat", action: "KPROBE_ACTION_SIGKILL", args: [{ string_arg: secret }] });
        const listEv = await waitFor("process_kprobe of the list", () => kprobes(a, "list-dup")[0], 10_000);
        expect(listEv.function_name).toBe("__x64_sys_dup2");
        expect(listEv.action).toBe("KPROBE_ACTION_SIGKILL");
      } finally {
        await a.stop();
      }
    },
    120_000,
  );

  kernelTest(
    "module loading policy (init_module/finit_module, Sigkill) kills a process calling finit_module",
    async () => {
      const policyFile = join(dir, "modules.yaml");
      writeFileSync(policyFile, `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: no-modules
spec:
  kprobes:
  - call: sys_init_module
    syscall: true
    selectors:
    - matchActions:
      - action: Sigkill
  - call: sys_finit_module
    syscall: true
    selectors:
    - matchActions:
      - action: Sigkill
`);
      const helper = ["python3", "-c", "import ctypes; libc = ctypes.CDLL(None, use_errno=True); r = libc.syscall(313, -1, b'', 0); print('returned', r, ctypes.get_errno())"];
      // Without the policy the syscall returns (an error here: bad fd or no module support).
      const before = run(helper);
      expect(before.status).toBe(0);
      expect(before.stdout).toStartWith("returned -1");
      const a = await startAgent([policyFile]);
      try {
        killed(run(helper));
        const ev = await waitFor("process_kprobe", () => kprobes(a, "no-modules")[0], 10_000);
        expect(ev.function_name).toBe("__x64_sys_finit_module");
        expect(ev.action).toBe("KPROBE_ACTION_SIGKILL");
        const st = (await (await a.api("/v1/status")).json()) as { policies: { hooks: { actions: { honored: string }[] }[] }[] };
        expect(st.policies[0]?.hooks[0]?.actions[0]?.honored).toContain("the module may still load");
      } finally {
        await a.stop();
      }
    },
    120_000,
  );

  kernelTest(
    "API lifecycle: add, disable, enable, monitor, enforce and delete change what the kernel does; delete detaches",
    async () => {
      const a = await startAgent([]);
      try {
        const linksIdle = linkIdsOf(a.agent.pid);
        const add = await a.api("/v1/policies", { method: "POST", body: secureYaml("secure-api"), headers: { "Content-Type": "application/yaml" } });
        expect(add.status).toBe(201);
        killed(run(["cat", secret]));
        const linksAdded = [...linkIdsOf(a.agent.pid)].filter((id) => !linksIdle.has(id));
        // fanotify holds the rule without a BPF program; the file guard attaches links
        if (fanotifyHere) expect(linksAdded).toEqual([]);
        else expect(linksAdded.length).toBeGreaterThan(0);

        expect((await a.api("/v1/policies/secure-api/disable", { method: "POST" })).status).toBe(200);
        expect(run(["cat", secret]).stdout).toBe(CONTENT);
        expect(((await (await a.api("/v1/policies/secure-api")).json()) as { policy: { state: string } }).policy.state).toBe("disabled");

        expect((await a.api("/v1/policies/secure-api/enable", { method: "POST" })).status).toBe(200);
        killed(run(["cat", secret]));

        const mon = await a.api("/v1/policies/secure-api/mode", { method: "POST", body: JSON.stringify({ mode: "monitor" }), headers: { "Content-Type": "application/json" } });
        expect(mon.status).toBe(200);
        expect(((await mon.json()) as { policy: { state: string } }).policy.state).toBe("monitoring");
        expect(run(["cat", secret]).stdout).toBe(CONTENT);
        await waitFor("a Post event in monitor mode", () => kprobes(a, "secure-api").find((e) => e.action === "KPROBE_ACTION_POST"), 10_000);

        expect((await a.api("/v1/policies/secure-api/mode", { method: "POST", body: JSON.stringify({ mode: "enforce" }), headers: { "Content-Type": "application/json" } })).status).toBe(200);
        killed(run(["cat", secret]));

        expect((await a.api("/v1/policies/secure-api", { method: "DELETE" })).status).toBe(200);
        expect(run(["cat", secret]).stdout).toBe(CONTENT);
        // Everything the policy attached is gone.
        expect([...linkIdsOf(a.agent.pid)].filter((id) => !linksIdle.has(id))).toEqual([]);
        const st = (await (await a.api("/v1/status")).json()) as { policies: unknown[] };
        expect(st.policies).toEqual([]);

        // Override on security_file_open: fanotify answers FAN_DENY where it exists; without it
        // (and without BPF LSM) it is rejected with the reason, nothing attached.
        const over = await a.api("/v1/policies", { method: "POST", body: secureYaml("secure-override", "Override\n        argError: -1") });
        if (fanotifyHere) {
          expect(over.status).toBe(201);
          const denied = run(["cat", secret]);
          expect(denied.status).toBe(1);
          expect(denied.signal).toBeNull();
          expect(denied.stderr).toContain("Operation not permitted");
          expect((await a.api("/v1/policies/secure-override", { method: "DELETE" })).status).toBe(200);
        } else {
          expect(over.status).toBe(400);
          const body = (await over.json()) as { error: { code: string; errors: { message: string }[] } };
          expect(body.error.code).toBe("policy_invalid");
          expect(body.error.errors.map((e) => e.message).join("\n")).toContain("Override needs BPF LSM or fmod_ret");
        }
        expect(((await (await a.api("/v1/policies")).json()) as { policies: unknown[] }).policies).toEqual([]);
        expect(run(["cat", secret]).stdout).toBe(CONTENT);
      } finally {
        await a.stop();
      }
    },
    120_000,
  );

  kernelTest(
    "the talk's first policy (Sigkill on every openat) never kills the agent: its own opens pass, the same binary outside it dies",
    async () => {
      // The agent runs from a copy of bun, so the policy can name the agent's binary without
      // touching the test runner (which runs the original).
      const bunCopy = join(dir, "other", "bun-agent");
      copyFileSync(process.execPath, bunCopy);
      spawnSync("chmod", ["755", bunCopy]);
      const a = await startAgent([], bunCopy);
      try {
        const every = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: kill-every-openat
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    selectors:
    - matchBinaries:
      - operator: In
        values: ["${bunCopy}"]
      matchActions:
      - action: Sigkill
`;
        expect((await a.api("/v1/policies", { method: "POST", body: every })).status).toBe(201);
        // The same binary outside the agent dies at its first openat.
        killed(run([bunCopy, "-e", "console.log(require('fs').readFileSync('/etc/hostname', 'utf8'))"]));
        // The agent opens files to apply a tracepoint policy (tracefs format file) and lives on.
        const tp = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: tp-any
spec:
  tracepoints:
  - subsystem: syscalls
    event: sys_enter_openat
    args:
    - index: 6
      type: string
    selectors:
    - matchArgs:
      - index: 6
        operator: Equal
        values: ["/nonexistent/ward-e2e"]
`;
        expect((await a.api("/v1/policies", { method: "POST", body: tp })).status).toBe(201);
        expect(a.agent.exitCode).toBeNull();
        expect((await fetch(`${a.url}/healthz`)).status).toBe(200);
        const ev = await waitFor("the kill's event", () => kprobes(a, "kill-every-openat")[0], 10_000);
        expect(ev.action).toBe("KPROBE_ACTION_SIGKILL");
      } finally {
        expect(await a.stop()).toBe(0);
        rmSync(bunCopy, { force: true });
      }
    },
    120_000,
  );

  kernelTest(
    "the talk's secure policy unchanged (Override -1 + Sigkill) loads and holds through fanotify: cat killed, `: >` leaves the content, /my/cat reads; Override alone: EPERM, exit 1",
    async () => {
      const policyFile = join(dir, "secure-override-kill.yaml");
      writeFileSync(policyFile, secureYaml("secure-talk", "Override\n        argError: -1\n      - action: Sigkill"));
      if (!fanotifyHere) {
        const r = spawnSync(process.execPath, [main, "policy", "explain", policyFile], { encoding: "utf8" });
        expect(`${r.stdout}${r.stderr}`).toContain("Override needs BPF LSM");
        return;
      }
      const a = await startAgent([policyFile]);
      try {
        killed(run(["cat", secret]));
        const trunc = run(["sh", "-c", `: > ${secret}`]);
        expect(trunc.signal).toBe("SIGKILL");
        // read by the allowed binary: this runner opening it would be killed by the policy
        expect(run([myCat, secret]).stdout).toBe(CONTENT);
        expect(run([myCat, secret]).stdout).toBe(CONTENT);
        const evs = await waitFor("2 process_kprobe events", () => {
          const e = kprobes(a, "secure-talk");
          return e.length >= 2 ? e : undefined;
        }, 10_000);
        expect(evs.every((e) => e.action === "KPROBE_ACTION_SIGKILL")).toBe(true);
        expect(evs.some((e) => e.process?.binary === "/usr/bin/cat")).toBe(true);
        const st = (await (await a.api("/v1/status")).json()) as { policies: { name: string; hooks: { mechanism: string; actions: { action: string; honored: string }[] }[]; counters?: Record<string, number> }[] };
        const p = st.policies.find((x) => x.name === "secure-talk");
        expect(p?.hooks[0]?.mechanism).toContain("fanotify (FAN_OPEN_PERM on the inode");
        expect(p?.hooks[0]?.mechanism).toContain("marked inodes (dev:ino)");
        expect(p?.hooks[0]?.actions.map((x) => x.honored).join("\n")).toContain("Override → FAN_DENY");
        expect(p?.hooks[0]?.actions.map((x) => x.honored).join("\n")).toContain("kill before the answer");
        expect(p?.counters?.fanotify_killed).toBeGreaterThanOrEqual(2);
        // Override alone, added through the API: EPERM, exit 1, not killed, content intact.
        const only = await a.api("/v1/policies", { method: "POST", body: secureYaml("secure-deny", "Override\n        argError: -1") });
        expect(only.status).toBe(201);
        expect((await a.api("/v1/policies/secure-talk", { method: "DELETE" })).status).toBe(200);
        const cat = run(["cat", secret]);
        expect(cat.signal).toBeNull();
        expect(cat.status).toBe(1);
        expect(cat.stderr).toContain("Operation not permitted");
        const sh = run(["sh", "-c", `: > ${secret}`]);
        expect(sh.stderr).toContain("Operation not permitted");
        // read by the allowed binary: this runner opening it would be killed by the policy
        expect(run([myCat, secret]).stdout).toBe(CONTENT);
        expect(run([myCat, secret]).stdout).toBe(CONTENT);
        expect(await a.stop()).toBe(0);
      } finally {
        await a.stop();
      }
      // The group ended with the agent.
      expect(run(["cat", secret]).stdout).toBe(CONTENT);
    },
    120_000,
  );

  kernelTest(
    "a policy that cannot be applied stops the start with its reason; the other policies are not left attached",
    async () => {
      const good = join(dir, "good.yaml");
      const bad = join(dir, "override.yaml");
      writeFileSync(good, secureYaml("secure-good"));
      // Unappliable here: Override with an errno fanotify cannot give (it denies with EPERM only),
      // so the file guard gets the rule and refuses Override without BPF LSM.
      writeFileSync(bad, secureYaml("secure-override", "Override\n        argError: -2"));
      const stateFile = join(dir, "state-fail.json");
      const r = spawnSync(process.execPath, [main, "agent", "--listen", "127.0.0.1:0", "--token-file", join(dir, "token-fail"), "--state-file", stateFile, "--export-file", join(dir, "fail.log"), "--bpf-dir", bpfDir, "--policy", good, "--policy", bad], { encoding: "utf8", timeout: 60_000 });
      expect(r.status).toBe(1);
      expect(r.stderr).toContain("Override needs BPF LSM or fmod_ret, refused here");
      expect(existsSync(stateFile)).toBe(false);
      // Nothing pinned, so nothing of either policy outlives the failed start.
      expect(existsSync(bpfDir) ? readdirSync(bpfDir) : []).toEqual([]);
      expect(run(["cat", secret]).stdout).toBe(CONTENT);
    },
    120_000,
  );

  kernelTest(
    "matchBinaries entries that do not exist yet load (issue 8 item 6): a NotIn tool installed later reads, an In binary dropped later dies; status follows; a deleted policy leaves no watch",
    async () => {
      type Binaries = { selector: number; op: string; entries: { path: string; by: string; match: string; watching?: string }[] }[];
      type Status = { policies: { name: string; state: string; hooks: { binaries?: Binaries; limits: string[]; mechanism: string }[] }[] };
      // Where fanotify permission events exist (and no BPF LSM), it holds these rules and stats a
      // missing entry at each decision; the file guard watches its directory instead.
      const viaFanotify = fanotifySupport().permissions;
      const missingEntry = (path: string, watching: string) =>
        viaFanotify
          ? { path, by: "path", match: "path (not present; inode-matched from the first decision after it appears)" }
          : { path, by: "path", match: `path (not present; watching ${watching})`, watching };
      const base = join(dir, "missing-bins");
      mkdirSync(join(base, "drop"), { recursive: true });
      const secret2 = join(base, "secret2");
      writeFileSync(secret2, CONTENT);
      const tool = join(base, "later", "mycat"); // its directory does not exist either
      const evil = join(base, "drop", "evil");
      const allowFile = join(base, "allow.yaml");
      writeFileSync(allowFile, secureOpenPolicy({ name: "allow-later", file: secret, allowed: tool }));
      const denyFile = join(base, "deny.yaml");
      writeFileSync(denyFile, secureOpenPolicy({ name: "deny-later", file: secret2, allowed: evil }).replace("operator: NotIn", "operator: In"));
      const entryOf = async (a: Running, name: string) => {
        const st = (await (await a.api("/v1/status")).json()) as Status;
        return st.policies.find((x) => x.name === name)?.hooks[0]?.binaries?.[0]?.entries[0];
      };
      // inotify instances the agent holds (each guard with a missing entry has one).
      const inotifyFds = (pid: number) => readdirSync(`/proc/${pid}/fd`).filter((f) => readlinkOf(pid, f) === "anon_inode:inotify").length;
      // Both given at start: before, the missing binary refused every policy ("nothing was applied").
      const a = await startAgent([allowFile, denyFile]);
      try {
        const st = (await (await a.api("/v1/status")).json()) as Status;
        expect(st.policies.map((p) => [p.name, p.state]).sort()).toEqual([["allow-later", "enforcing"], ["deny-later", "enforcing"]]);
        for (const p of st.policies) expect(p.hooks[0]?.mechanism.startsWith("fanotify")).toBe(viaFanotify);
        expect(await entryOf(a, "allow-later")).toEqual(missingEntry(tool, base));
        expect(await entryOf(a, "deny-later")).toEqual(missingEntry(evil, join(base, "drop")));
        expect(st.policies[0]?.hooks[0]?.limits.join("\n")).toContain("matchBinaries");

        // NotIn: cat dies; the tool is installed; once status says inode, it reads.
        killed(run(["cat", secret]));
        mkdirSync(join(base, "later"));
        copyFileSync("/bin/cat", tool);
        const allowed = await waitFor("allow-later inode match", async () => {
          const e = await entryOf(a, "allow-later");
          return e?.by === "inode" ? e : undefined;
        }, 10_000, a.agent);
        const id = spawnSync("stat", ["-c", "%i", tool], { encoding: "utf8" }).stdout.trim();
        expect(allowed.match).toMatch(new RegExp(`^inode \\(\\d+:${id}\\)$`));
        const r = run([tool, secret]);
        expect(r.signal).toBeNull();
        expect(r.stdout).toBe(CONTENT);
        killed(run(["cat", secret]));

        // In: /bin/cat reads secret2; evil, dropped later, dies at once (path) and by inode after.
        expect(run(["cat", secret2]).stdout).toBe(CONTENT);
        copyFileSync("/bin/cat", evil);
        killed(run([evil, secret2]));
        const denied = await waitFor("deny-later inode match", async () => {
          const e = await entryOf(a, "deny-later");
          return e?.by === "inode" ? e : undefined;
        }, 10_000, a.agent);
        expect(denied.match).toMatch(/^inode \(\d+:\d+\) and path$/);
        killed(run([evil, secret2]));
        expect(run(["cat", secret2]).stdout).toBe(CONTENT);

        // A policy added over the API with a missing entry: the guard holds one inotify instance
        // for it (fanotify none: it stats at decision time); deleting the policy closes it.
        const idle = inotifyFds(a.agent.pid);
        const add = await a.api("/v1/policies", { method: "POST", body: secureOpenPolicy({ name: "watch-api", file: secret2, allowed: join(base, "nowhere", "x") }), headers: { "Content-Type": "application/yaml" } });
        expect(add.status).toBe(201);
        expect(inotifyFds(a.agent.pid)).toBe(viaFanotify ? idle : idle + 1);
        expect(await entryOf(a, "watch-api")).toEqual(missingEntry(join(base, "nowhere", "x"), base));
        expect((await a.api("/v1/policies/watch-api", { method: "DELETE" })).status).toBe(200);
        expect(inotifyFds(a.agent.pid)).toBe(idle);
      } finally {
        await a.stop();
      }
    },
    120_000,
  );
});
