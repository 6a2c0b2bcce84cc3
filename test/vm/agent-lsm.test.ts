// BPF LSM hooks of the generic sensor through the real agent (dist/ward) on Debian's 6.1
// kernel: lsmhooks policies on socket_connect, socket_bind, path_unlink, path_rename,
// path_truncate, path_chmod, path_mkdir, task_kill and bpf, and kprobes on security_path_unlink,
// security_kernel_read_file and security_kernel_load_data (which take the same programs), make
// the call fail with the errno the policy names, before it has any effect (no connection
// reaches the listener, the file stays, the signal is not delivered, no module is read); the
// allowed binary and unprotected objects are not touched; events carry the arguments. One boot runs every check (test/vm/agent-image.ts).
import { describe, expect } from "bun:test";
import { join } from "node:path";
import { accelSummary } from "../../build/vm.ts";
import { kernelTest } from "../lib/host.ts";
import { runAgentVm, type AgentVmCheck, type AgentVmResult } from "./agent-image.ts";

const VM_TIMEOUT_MS = 420_000;
const HELPER = "/bin/lsm-helper";
const ALLOWED = "/allowed/lsm-helper";
const CONTENT = "I love pizza!\n";

function policy(name: string, body: string): string {
  return `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: ${name}\nspec:\n${body}`;
}

const override = (err = -1) => `      matchActions:
      - action: Override
        argError: ${err}`;

const connectPolicy = policy("lsm-connect", `  lsmhooks:
  - hook: socket_connect
    args:
    - index: 0
      type: sock
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 1
        operator: SPort
        values:
        - "7000"
      matchBinaries:
      - operator: NotIn
        values:
        - ${ALLOWED}
${override()}
`);

const bindPolicy = policy("lsm-bind", `  lsmhooks:
  - hook: socket_bind
    args:
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 1
        operator: SPort
        values:
        - "7001"
${override(-13)}
`);

/** One selector per path hook, each on the full path under /protected/. */
const pathHook = (hook: string, argIndex: number, args: string) => `  - hook: ${hook}
    args:
${args}
    selectors:
    - matchArgs:
      - index: ${argIndex}
        operator: Prefix
        values:
        - /protected/
${override()}
`;
const DIR_DENTRY = `    - index: 0
      type: path
    - index: 1
      type: dentry`;
const ONE_PATH = `    - index: 0
      type: path`;
const pathsPolicy = policy("lsm-paths", `  lsmhooks:
${pathHook("path_rename", 1, DIR_DENTRY)}${pathHook("path_truncate", 0, ONE_PATH)}${pathHook("path_chmod", 0, ONE_PATH)}${pathHook("path_mkdir", 1, DIR_DENTRY)}`);

const unlinkKprobe = policy("lsm-unlink-kprobe", `  kprobes:
  - call: security_path_unlink
    syscall: false
    args:
    - index: 0
      type: path
    - index: 1
      type: dentry
    selectors:
    - matchArgs:
      - index: 1
        operator: Postfix
        values:
        - /keep.txt
${override()}
`);

/** The victim's pid is known only in the guest: setup substitutes it. */
const killPolicy = policy("lsm-kill", `  lsmhooks:
  - hook: task_kill
    args:
    - index: 0
      type: int
    - index: 2
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values:
        - "@VICTIM@"
${override()}
`);

const bpfPolicy = policy("lsm-bpf", `  lsmhooks:
  - hook: bpf
    args:
    - index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values:
        - "0"
      matchBinaries:
      - operator: In
        values:
        - ${HELPER}
${override()}
`);

/** Module loads refused for every binary but the allowed one, on the read id and the load id. */
const modulesPolicy = policy("lsm-modules", `  kprobes:
  - call: security_kernel_read_file
    syscall: false
    args:
    - index: 0
      type: file
    - index: 1
      type: int
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values:
        - "2"
      matchBinaries:
      - operator: NotIn
        values:
        - ${ALLOWED}
${override()}
  - call: security_kernel_load_data
    syscall: false
    args:
    - index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values:
        - "2"
      matchBinaries:
      - operator: NotIn
        values:
        - ${ALLOWED}
${override()}
`);

const setup = `
mkdir -p /protected/sub /other
printf '${CONTENT.replace("\n", "\\n")}' > /protected/file
printf 'x' > /protected/keep.txt
printf 'x' > /other/keep.txt
printf 'x' > /other/file
# longer than an ELF header: init_module refuses a shorter blob (ENOEXEC) before kernel_load_data
printf 'not a module: %s\\n' 0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef > /other/bogus.ko
# listeners on [::] (IPv4 too) that log every accepted connection: which connects got through
${HELPER} serve 7000 /tmp/accepts > /tmp/serve-7000.log 2>&1 &
${HELPER} serve 7002 /tmp/accepts > /tmp/serve-7002.log 2>&1 &
sleep 100000 &
echo $! > /tmp/victim.pid
sleep 100000 &
echo $! > /tmp/other.pid
sed -i "s/@VICTIM@/$(cat /tmp/victim.pid)/" /ward/policies/lsm-kill.yaml
`;

const script = `
check connect-denied ${HELPER} connect 127.0.0.1 7000
check listening cat /tmp/serve-7000.log /tmp/serve-7002.log
check connect-allowed-binary ${ALLOWED} connect 127.0.0.1 7000
check connect-other-port ${HELPER} connect 127.0.0.1 7002
check connect-v6-denied ${HELPER} connect ::1 7000
sleep 1
check accepts sort /tmp/accepts
check bind-denied ${HELPER} bind 127.0.0.1 7001
check bind-other-port ${HELPER} bind 127.0.0.1 7003
check rename-denied ${HELPER} rename /protected/file /other/moved
check truncate-denied ${HELPER} truncate /protected/file
check chmod-denied ${HELPER} chmod /protected/file 0600
check mkdir-denied ${HELPER} mkdir /protected/newdir
check mkdir-nested-denied ${HELPER} mkdir /protected/sub/newdir
check unlink-denied ${HELPER} unlink /protected/keep.txt
check unlink-other-keep-denied ${HELPER} unlink /other/keep.txt
check content ${ALLOWED} exec /bin/cat /protected/file
check mode stat -c %a /protected/file
check listing ls /protected /other
check rename-other ${HELPER} rename /other/file /other/moved
check mkdir-other ${HELPER} mkdir /other/newdir
check kill-denied ${HELPER} kill $(cat /tmp/victim.pid) 15
check victim-alive test -d /proc/$(cat /tmp/victim.pid)
check kill-other ${HELPER} kill $(cat /tmp/other.pid) 15
sleep 1
check victim-state grep ^State: /proc/$(cat /tmp/victim.pid)/status
check other-gone sh -c 'test ! -e /proc/$(cat /tmp/other.pid)/status || grep -q "^State:.*[ZX]" /proc/$(cat /tmp/other.pid)/status'
check bpf-denied ${HELPER} bpf 0
check bpf-other-cmd ${HELPER} bpf 1
check bpf-allowed-binary ${ALLOWED} bpf 0
check bogus-size stat -c %s /other/bogus.ko
check finit-denied ${HELPER} finit /other/bogus.ko
check init-denied ${HELPER} init /other/bogus.ko
check finit-allowed-binary ${ALLOWED} finit /other/bogus.ko
check init-allowed-binary ${ALLOWED} init /other/bogus.ko
note victim-pid "$(cat /tmp/victim.pid)"
`;

let vm: AgentVmResult | undefined;

function r(): AgentVmResult {
  if (vm === undefined) throw new Error("the VM did not run (see the first test)");
  return vm;
}

function out(name: string): string {
  const c: AgentVmCheck = r().check(name);
  expect(c.signal).toBeNull();
  return c.stdout;
}

interface LsmEvent {
  process?: { binary?: string };
  function_name?: string;
  policy_name?: string;
  action?: string;
  args?: Record<string, unknown>[];
}

function events(policy: string, kind: "process_lsm" | "process_kprobe" = "process_lsm"): LsmEvent[] {
  return r()
    .events.map((e) => e[kind] as LsmEvent | undefined)
    .filter((e): e is LsmEvent => e !== undefined && e.policy_name === policy);
}

describe("BPF LSM hooks of the generic sensor through dist/ward on Debian 6.1", () => {
  kernelTest(
    "the VM boots with BPF LSM and the agent applies the LSM policies",
    async () => {
      vm = await runAgentVm({
        policies: {
          "lsm-connect.yaml": connectPolicy,
          "lsm-bind.yaml": bindPolicy,
          "lsm-paths.yaml": pathsPolicy,
          "lsm-unlink-kprobe.yaml": unlinkKprobe,
          "lsm-kill.yaml": killPolicy,
          "lsm-bpf.yaml": bpfPolicy,
          "lsm-modules.yaml": modulesPolicy,
        },
        helpers: [
          { source: join(import.meta.dir, "lsm-helper.c"), path: HELPER },
          { source: join(import.meta.dir, "lsm-helper.c"), path: ALLOWED },
        ],
        files: [{ path: "/bin/cat", file: "/usr/bin/cat", mode: 0o755 }],
        setup,
        script,
        timeoutMs: VM_TIMEOUT_MS,
      });
      process.stderr.write(`lsm VM: ${accelSummary(vm.vm)}, agent ready after ${vm.readySeconds ?? "?"} s\n`);
      expect(vm.vm.timedOut).toBe(false);
      expect(String(vm.vm.records.find((x) => x.kind === "boot")?.lsm)).toContain("bpf");
      if (!vm.ready) throw new Error(`the agent did not become ready:\n${vm.agentLog}\n${vm.files.get("setup-log") ?? ""}`);
      expect(vm.agentLog).toContain("7 policies applied");
      expect(vm.agentExit).toBe(0);
    },
    VM_TIMEOUT_MS + 120_000,
  );

  kernelTest("socket_connect: EPERM for the port and no connection reaches its listener; the allowed binary and another port connect; IPv6 too", () => {
    expect(out("listening")).toBe("LISTEN 7000\nLISTEN 7002\n");
    expect(out("connect-denied")).toBe("ERR connect 1\n");
    expect(out("connect-allowed-binary")).toBe("OK connect\n");
    expect(out("connect-other-port")).toBe("OK connect\n");
    expect(out("connect-v6-denied")).toBe("ERR connect 1\n");
    // the listeners accepted the two allowed connects only
    expect(out("accepts")).toBe("7000\n7002\n");
    const ev = events("lsm-connect");
    const hit = ev.find((e) => e.process?.binary === HELPER);
    expect(hit?.function_name).toBe("socket_connect");
    expect(hit?.action).toBe("KPROBE_ACTION_OVERRIDE");
    // the socket argument is not read by lsm/socket_connect: the event carries the sockaddr only
    expect(hit?.args).toEqual([{ sockaddr_arg: { family: "AF_INET", addr: "127.0.0.1", port: 7000 } }]);
    expect(ev.some((e) => (e.args?.[0] as { sockaddr_arg?: { addr?: string } } | undefined)?.sockaddr_arg?.addr === "::1")).toBe(true);
    expect(ev.some((e) => e.process?.binary === ALLOWED)).toBe(false);
  });

  kernelTest("socket_bind: the argError the policy names (-13: EACCES); another port binds", () => {
    expect(out("bind-denied")).toBe("ERR bind 13\n");
    expect(out("bind-other-port")).toBe("OK bind\n");
  });

  kernelTest("path hooks: rename, truncate, chmod, mkdir under /protected/ fail with EPERM and change nothing", () => {
    const denied: [string, string][] = [["rename-denied", "rename"], ["truncate-denied", "truncate"], ["chmod-denied", "chmod"], ["mkdir-denied", "mkdir"], ["mkdir-nested-denied", "mkdir"]];
    for (const [name, call] of denied) {
      expect({ name, out: out(name) }).toEqual({ name, out: `ERR ${call} 1\n` });
    }
    // the allowed helper execs cat: the content is intact, the mode unchanged, nothing created or moved
    expect(out("content")).toBe(CONTENT);
    expect(out("mode")).toBe("644\n");
    expect(out("listing")).toBe("/other:\nbogus.ko\nfile\nkeep.txt\n\n/protected:\nfile\nkeep.txt\nsub\n");
    expect(out("rename-other")).toBe("OK rename\n");
    expect(out("mkdir-other")).toBe("OK mkdir\n");
    const ev = events("lsm-paths");
    const paths = (fn: string, i: number) => ev.filter((e) => e.function_name === fn).map((e) => {
      const a = e.args?.[i] as { path_arg?: { path?: string }; file_arg?: { path?: string } } | undefined;
      return a?.path_arg?.path ?? a?.file_arg?.path ?? JSON.stringify(a);
    });
    expect(paths("path_rename", 1)).toEqual(["/protected/file"]);
    expect(paths("path_truncate", 0)).toEqual(["/protected/file"]);
    expect(paths("path_chmod", 0)).toEqual(["/protected/file"]);
    expect(paths("path_mkdir", 1).sort()).toEqual(["/protected/newdir", "/protected/sub/newdir"]);
  });

  kernelTest("a kprobe on security_path_unlink runs on lsm/path_unlink: both keep.txt files stay, process_kprobe events", () => {
    expect(out("unlink-denied")).toBe("ERR unlink 1\n");
    expect(out("unlink-other-keep-denied")).toBe("ERR unlink 1\n");
    const ev = events("lsm-unlink-kprobe", "process_kprobe");
    expect(ev.map((e) => e.function_name)).toEqual(["security_path_unlink", "security_path_unlink"]);
    expect(ev.map((e) => (e.args?.[1] as { file_arg?: { path?: string }; path_arg?: { path?: string } })).map((a) => a.path_arg?.path ?? a.file_arg?.path).sort()).toEqual(["/other/keep.txt", "/protected/keep.txt"]);
  });

  kernelTest("task_kill: the protected process survives a SIGTERM (EPERM), another is killed", () => {
    expect(out("kill-denied")).toBe("ERR kill 1\n");
    expect(r().check("victim-alive").status).toBe(0);
    expect(out("kill-other")).toBe("OK kill\n");
    // a second later the victim still sleeps; the other one is gone (or a zombie)
    expect(out("victim-state")).toMatch(/^State:\s+S/);
    expect(r().check("other-gone").status).toBe(0);
    const victim = Number(r().files.get("victim-pid"));
    const ev = events("lsm-kill");
    expect(ev.some((e) => e.process?.binary === HELPER && (e.args?.[0] as { int_arg?: number } | undefined)?.int_arg === victim && (e.args?.[1] as { int_arg?: number } | undefined)?.int_arg === 15)).toBe(true);
  });

  kernelTest("bpf: BPF_MAP_CREATE (cmd 0) is refused with EPERM for the helper; another command reaches the kernel's own checks", () => {
    expect(out("bpf-denied")).toBe("ERR bpf 1\n");
    expect(out("bpf-other-cmd")).not.toBe("ERR bpf 1\n");
    // another binary's BPF_MAP_CREATE reaches map_create, which refuses the all-zero attribute
    expect(out("bpf-allowed-binary")).toBe("ERR bpf 22\n");
    const ev = events("lsm-bpf");
    expect(ev.some((e) => (e.args?.[0] as { int_arg?: number } | undefined)?.int_arg === 0)).toBe(true);
  });

  kernelTest("module loads: finit_module and init_module fail with EPERM before the file is looked at; the allowed binary reaches the kernel's ELF checks", () => {
    expect(Number(out("bogus-size"))).toBeGreaterThan(64); // past init_module's own length check
    expect(out("finit-denied")).toBe("ERR finit 1\n");
    expect(out("init-denied")).toBe("ERR init 1\n");
    // not a module: the kernel itself refuses it (ENOEXEC), so the LSM programs let it through
    for (const call of ["finit", "init"]) {
      const o = out(`${call}-allowed-binary`);
      expect(o).toMatch(new RegExp(`^ERR ${call} \\d+\n$`));
      expect(o).not.toBe(`ERR ${call} 1\n`);
    }
    const ev = events("lsm-modules", "process_kprobe");
    const read = ev.find((e) => e.function_name === "security_kernel_read_file" && e.process?.binary === HELPER);
    expect(read?.action).toBe("KPROBE_ACTION_OVERRIDE");
    expect((read?.args?.[0] as { file_arg?: { path?: string } } | undefined)?.file_arg?.path).toBe("/other/bogus.ko");
    expect((read?.args?.[1] as { int_arg?: number } | undefined)?.int_arg).toBe(2);
    const load = ev.find((e) => e.function_name === "security_kernel_load_data" && e.process?.binary === HELPER);
    expect((load?.args?.[0] as { int_arg?: number } | undefined)?.int_arg).toBe(2);
    expect(ev.some((e) => e.process?.binary === ALLOWED)).toBe(false);
  });

  kernelTest("/v1/status and explain in the guest name the BPF LSM program of each hook", () => {
    const s = r().status as { policies?: { name: string; state: string; hooks?: { hook?: string; mechanism?: string }[] }[] };
    const mech = (p: string) => s.policies?.find((x) => x.name === p)?.hooks?.map((h) => h.mechanism?.split(",")[0]);
    expect(mech("lsm-connect")).toEqual(["BPF LSM lsm/socket_connect"]);
    expect(mech("lsm-paths")).toEqual(["BPF LSM lsm/path_rename", "BPF LSM lsm/path_truncate", "BPF LSM lsm/path_chmod", "BPF LSM lsm/path_mkdir"]);
    expect(mech("lsm-unlink-kprobe")).toEqual(["BPF LSM lsm/path_unlink"]);
    expect(mech("lsm-kill")).toEqual(["BPF LSM lsm/task_kill"]);
    expect(mech("lsm-bpf")).toEqual(["BPF LSM lsm/bpf"]);
    expect(mech("lsm-modules")).toEqual(["BPF LSM lsm/kernel_read_file", "BPF LSM lsm/kernel_load_data"]);
    for (const p of s.policies ?? []) expect({ p: p.name, state: p.state }).toEqual({ p: p.name, state: "enforcing" });
    const e = r().explain as { name?: string; hooks?: { mechanism?: string }[] }[];
    expect(e.find((x) => x.name === "lsm-bind")?.hooks?.[0]?.mechanism).toStartWith("BPF LSM lsm/socket_bind");
  });
});
