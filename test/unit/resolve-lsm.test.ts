// Resolution on a kernel with BPF LSM (a literal HookFeatures: Debian's 6.1 cloud kernel) and
// on this host kind without it: which hooks BPF LSM holds, the mechanism each one names, how
// Override (argError), Sigkill and Post are honored there, and that the refusals with their
// substitutes stay where BPF LSM does not load.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { resolvePolicy, type HookFeatures, type RejectedHook, type ResolvedHook } from "../../src/sensors/resolve.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";
import { policyFrom } from "./engine-helpers.ts";

const syscallNumber = (n: string): number | undefined => ({ openat: 257, connect: 42, bind: 49, unlinkat: 263, kill: 62, bpf: 321 })[n] ?? 999;
const LSM: HookFeatures = { release: "6.1.0-57-cloud-amd64", bpfLsm: true, kprobes: true, overrideReturn: true, tracepoint: () => true, syscallNumber };
const HERE: HookFeatures = { release: "6.18.44", bpfLsm: false, kprobes: false, overrideReturn: false, tracepoint: () => true, syscallNumber };

function ok(h: unknown): ResolvedHook {
  const r = h as ResolvedHook | RejectedHook;
  if (!r.ok) throw new Error(`expected a mechanism, got rejection: ${r.reason}`);
  return r;
}

function rejected(h: unknown): string {
  const r = h as ResolvedHook | RejectedHook;
  if (r.ok) throw new Error(`expected a rejection, got ${r.mechanism}`);
  return r.reason;
}

const OVERRIDE_KILL = "Override\n        argError: -1\n      - action: Sigkill";

describe("the file guard on BPF LSM", () => {
  test("the talk's Override + Sigkill is one rule: kill, and the open fails with EPERM before it happens", () => {
    const p = policyFrom(secureOpenPolicy({ name: "p", file: "/my/extremely/secret/file", allowed: "/my/cat", action: OVERRIDE_KILL }));
    const h = ok(resolvePolicy(p, LSM).hooks[0]);
    expect(h.mechanism).toStartWith("BPF LSM lsm/file_open");
    expect(h.guard?.rules[0]?.action).toBe("kill");
    expect(h.guard?.rules[0]?.actionNames).toEqual(["Override", "Sigkill"]);
    expect(h.actions.map((a) => a.action)).toEqual(["Override(argError=-1)", "Sigkill"]);
    expect(h.actions[1]?.honored).toContain("the call fails with EPERM there");
    expect(h.actions[1]?.honored).toContain("O_TRUNC/creat do not truncate");
  });

  test("without BPF LSM (and without fanotify) Override + Sigkill stays refused with the substitute", () => {
    const p = policyFrom(secureOpenPolicy({ name: "p", file: "/my/extremely/secret/file", allowed: "/my/cat", action: OVERRIDE_KILL }));
    expect(rejected(resolvePolicy(p, HERE).hooks[0])).toContain("Override needs BPF LSM");
  });
});

const lsm = (hook: string, args: string, selectors: string, list: "lsmhooks" | "kprobes" = "lsmhooks") => policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: p
spec:
  ${list}:
  - ${list === "lsmhooks" ? `hook: "${hook}"` : `call: security_${hook}\n    syscall: false`}
    args:
${args}
    selectors:
${selectors}
`);

const UNLINK_ARGS = `    - index: 0
      type: path
    - index: 1
      type: dentry`;
const PREFIX_OVERRIDE = (index: number, value: string) => `    - matchArgs:
      - index: ${index}
        operator: Prefix
        values:
        - ${value}
      matchActions:
      - action: Override
        argError: -1`;

describe("the generic sensor's BPF LSM programs", () => {
  test("path_unlink (lsmhooks) runs on lsm/path_unlink with the generic engine; events are process_lsm", () => {
    const h = ok(resolvePolicy(lsm("path_unlink", UNLINK_ARGS, PREFIX_OVERRIDE(1, "/etc/")), LSM).hooks[0]);
    expect(h.backend).toBe("generic");
    expect(h.event).toBe("process_lsm");
    expect(h.mechanism).toStartWith("BPF LSM lsm/path_unlink");
    expect(h.generic).toEqual([{ kind: "lsm", subsystem: "lsm", event: "path_unlink", raw: false }]);
    expect(h.actions[0]?.honored).toBe("lsm/path_unlink returns -EPERM: the call fails with EPERM and has no effect");
    expect(h.limits.join(" ")).toContain("bpf_d_path is not allowed on this hook");
  });

  test("with --keep-sensors-on-exit a generic LSM hook is resolved, and says its pinned program and link hold it after the agent exits", () => {
    const r = resolvePolicy(lsm("path_unlink", UNLINK_ARGS, PREFIX_OVERRIDE(1, "/etc/")), { ...LSM, keepSensors: true });
    expect(r.errors).toEqual([]);
    const h = ok(r.hooks[0]);
    expect(h.mechanism).toStartWith("BPF LSM lsm/path_unlink");
    expect(h.afterExit).toContain("lsm/path_unlink, its link (generic/link_lsm_path_unlink, shared by the policies on the hook)");
    expect(ok(resolvePolicy(lsm("path_unlink", UNLINK_ARGS, PREFIX_OVERRIDE(1, "/etc/")), LSM).hooks[0]).afterExit).toStartWith("nothing: the agent detaches it");
  });

  test("a kprobe on security_path_unlink takes the same program and reports process_kprobe", () => {
    const h = ok(resolvePolicy(lsm("path_unlink", UNLINK_ARGS, PREFIX_OVERRIDE(1, "/etc/"), "kprobes"), LSM).hooks[0]);
    expect(h.mechanism).toStartWith("BPF LSM lsm/path_unlink");
    expect(h.event).toBe("process_kprobe");
  });

  test("without BPF LSM the path hooks stay refused with the syscall substitute", () => {
    const why = rejected(resolvePolicy(lsm("path_unlink", UNLINK_ARGS, PREFIX_OVERRIDE(1, "/etc/")), HERE).hooks[0]);
    expect(why).toContain("no BPF LSM");
    expect(why).toContain("sys_unlinkat");
  });

  test("socket_connect: BPF LSM where it loads, the cgroup connect hooks where it does not", () => {
    const args = `    - index: 0
      type: sock
    - index: 1
      type: sockaddr`;
    const sel = `    - matchArgs:
      - index: 1
        operator: SPort
        values:
        - "7000"
      matchActions:
      - action: Override
        argError: -13`;
    const h = ok(resolvePolicy(lsm("socket_connect", args, sel), LSM).hooks[0]);
    expect(h.mechanism).toStartWith("BPF LSM lsm/socket_connect");
    expect(h.actions[0]?.honored).toBe("lsm/socket_connect returns -13: the call fails with errno 13 and has no effect");
    expect(ok(resolvePolicy(lsm("socket_connect", args, sel), { ...HERE, cgroupSockAddr: () => ({ root: "/sys/fs/cgroup" }) }).hooks[0]).mechanism).toStartWith("cgroup sock_addr programs");
    // the socket argument is not read by the LSM program: refused, with the substitute
    const onSock = sel.replace("index: 1\n        operator: SPort", "index: 0\n        operator: DPort");
    expect(rejected(resolvePolicy(lsm("socket_connect", args, onSock), LSM).hooks[0])).toContain("substitute: SAddr/SPort/Family on the sockaddr argument");
  });

  test("task_kill, bpf; Sigkill fails the call too; a positive argError and a wrong argument type are refused", () => {
    const kill = lsm("task_kill", `    - index: 0
      type: int
    - index: 2
      type: int`, `    - matchArgs:
      - index: 2
        operator: Equal
        values:
        - "9"
      matchActions:
      - action: Sigkill`);
    const k = ok(resolvePolicy(kill, LSM).hooks[0]);
    expect(k.mechanism).toStartWith("BPF LSM lsm/task_kill");
    expect(k.actions[0]?.honored).toContain("fails the call with EPERM");
    const bpf = (err: string) => lsm("bpf", `    - index: 0
      type: int`, `    - matchArgs:
      - index: 0
        operator: Equal
        values:
        - "0"
      matchActions:
      - action: Override
        argError: ${err}`);
    expect(ok(resolvePolicy(bpf("-1"), LSM).hooks[0]).mechanism).toStartWith("BPF LSM lsm/bpf");
    expect(rejected(resolvePolicy(bpf("1"), LSM).hooks[0])).toContain("argError -4095..-1");
    expect(rejected(resolvePolicy(bpf("-1"), HERE).hooks[0])).toContain("no BPF LSM");
    const wrong = lsm("path_unlink", `    - index: 1
      type: int`, `    - matchActions:
      - action: Post`);
    expect(rejected(resolvePolicy(wrong, LSM).hooks[0])).toContain("declare it as dentry (or path)");
  });
});

describe("module loads on the generic sensor's BPF LSM programs", () => {
  const blockModules = policyFrom(readFileSync(join(import.meta.dir, "..", "..", "policies", "block-module-load.yaml"), "utf8"));

  test("policies/block-module-load.yaml: matchArgs on the read id and the load id run on lsm/kernel_read_file and lsm/kernel_load_data", () => {
    const [read, load, request] = resolvePolicy(blockModules, LSM).hooks;
    const r = ok(read), l = ok(load);
    expect(r.backend).toBe("generic");
    expect(r.mechanism).toStartWith("BPF LSM lsm/kernel_read_file");
    expect(r.generic).toEqual([{ kind: "lsm", subsystem: "lsm", event: "kernel_read_file", raw: false }]);
    expect(r.actions[0]?.honored).toBe("lsm/kernel_read_file returns -EPERM: the call fails with EPERM and has no effect");
    expect(r.event).toBe("process_kprobe");
    expect(l.mechanism).toStartWith("BPF LSM lsm/kernel_load_data");
    expect(l.limits.join(" ")).toContain("LOADING_MODULE 2");
    // nothing holds module autoload requests: refused with the substitute
    expect(rejected(request)).toContain("does not hook kernel_module_request");
  });

  test("a matchBinaries-only kernel_read_file rule stays with the module guard (both loads, pinned)", () => {
    const p = lsm("kernel_read_file", `    - index: 1
      type: int`, `    - matchBinaries:
      - operator: In
        values:
        - /usr/sbin/insmod
      matchActions:
      - action: Override
        argError: -1`, "kprobes");
    const h = ok(resolvePolicy(p, LSM).hooks[0]);
    expect(h.backend).toBe("guard");
    expect(h.guard?.programs).toEqual(["guard_lsm_read_file", "guard_lsm_load_data"]);
  });

  test("the file argument of kernel_read_file must be declared as file; without BPF LSM both are refused with the module guard's substitute", () => {
    const wrong = lsm("kernel_read_file", `    - index: 0
      type: path`, `    - matchArgs:
      - index: 0
        operator: Prefix
        values:
        - /tmp/`);
    expect(rejected(resolvePolicy(wrong, LSM).hooks[0])).toContain("declare it as file");
    const [read, load] = resolvePolicy(blockModules, HERE).hooks;
    for (const h of [read, load]) {
      expect(rejected(h)).toContain("no BPF LSM");
      expect(rejected(h)).toContain("substitute: kprobes on sys_finit_module and sys_init_module");
    }
  });
});

describe("without BPF LSM: what holds the generic LSM hooks instead, or why nothing does", () => {
  const bindArgs = `    - index: 1
      type: sockaddr`;
  const bindSel = `    - matchArgs:
      - index: 1
        operator: SPort
        values:
        - "7001"
      matchActions:
      - action: Override
        argError: -13`;

  test("socket_bind goes to the cgroup bind programs where they attach", () => {
    const h = ok(resolvePolicy(lsm("socket_bind", bindArgs, bindSel), { ...HERE, cgroupSockAddr: () => ({ root: "/sys/fs/cgroup" }) }).hooks[0]);
    expect(h.mechanism).toStartWith("cgroup sock_addr programs");
    expect(ok(resolvePolicy(lsm("socket_bind", bindArgs, bindSel), LSM).hooks[0]).mechanism).toStartWith("BPF LSM lsm/socket_bind");
  });

  test("task_kill and bpf are refused: a syscall kprobe reports, but only BPF LSM fails the call", () => {
    const kill = rejected(resolvePolicy(lsm("task_kill", `    - index: 2
      type: int`, `    - matchActions:
      - action: Override
        argError: -1`), HERE).hooks[0]);
    expect(kill).toContain("no BPF LSM");
    expect(kill).toContain("substitute: syscall kprobes on sys_kill, sys_tkill and sys_tgkill");
    expect(kill).toContain("the signal is still delivered");
    const bpf = rejected(resolvePolicy(lsm("bpf", `    - index: 0
      type: int`, `    - matchActions:
      - action: Post`, "kprobes"), HERE).hooks[0]);
    expect(bpf).toContain("substitute: a syscall kprobe on sys_bpf");
  });
});
