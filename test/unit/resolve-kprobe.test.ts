// Kernel-function kprobes in hook resolution (src/sensors/resolve.ts), against described
// kernels: this host (no kprobes), Debian's 6.1 cloud kernel (kprobes; no kprobe.multi, no
// bpf_override_return, no error injection) and a kernel with all three. What each gets:
// the mechanism, or the refusal with the missing feature and the substitute.
import { describe, expect, test } from "bun:test";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { encodeHookArg } from "../../src/events/kprobe-event.ts";
import { typedArg } from "../../src/sensors/generic-backend.ts";
import { resolvePolicy, type HookFeatures, type ResolvedHook, type RejectedHook } from "../../src/sensors/resolve.ts";
import { ipText, type GenericArg } from "../../src/sensors/generic.ts";
import { policyFrom } from "./engine-helpers.ts";

const syscallNumber = (n: string): number | undefined => ({ openat: 257, connect: 42, setuid: 105 })[n] ?? 999;
const base = { release: "6.1.0-57-cloud-amd64", bpfLsm: false, tracepoint: () => true, syscallNumber, kernelFunction: (fn: string) => fn !== "no_such_function" };
const HERE: HookFeatures = { ...base, release: "6.18.44", kprobes: false, overrideReturn: false };
/** Debian 6.1 cloud: CONFIG_KPROBES=y, CONFIG_FPROBE off, CONFIG_FUNCTION_ERROR_INJECTION off. */
const DEB61: HookFeatures = { ...base, kprobes: true, overrideReturn: false, kprobeMulti: false, errorInjectable: () => undefined };
const FULL: HookFeatures = { ...base, kprobes: true, overrideReturn: true, kprobeMulti: true, errorInjectable: (fn) => fn.startsWith("__x64_sys_") || fn === "security_task_prctl" };

function policy(spec: string): ReturnType<typeof policyFrom> {
  const text = `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n${spec}`;
  const v = validatePolicyText(text, "p.yaml");
  if (!v.valid) throw new Error(JSON.stringify(v));
  return policyFrom(text);
}

function ok(h: unknown): ResolvedHook {
  const r = h as ResolvedHook | RejectedHook;
  if (!r.ok) throw new Error(`rejected: ${r.reason}`);
  return r;
}

function rejected(h: unknown): string {
  const r = h as ResolvedHook | RejectedHook;
  if (r.ok) throw new Error(`resolved: ${r.mechanism}`);
  return r.reason;
}

const FD_INSTALL = (extra = "") => policy(`  kprobes:
  - call: fd_install
    syscall: false
    args:
    - index: 0
      type: int
    - index: 1
      type: file
${extra}`);

describe("kernel-function kprobes", () => {
  test("no kprobes here: refused with the reason and the substitute", () => {
    expect(rejected(resolvePolicy(FD_INSTALL(), HERE).hooks[0])).toBe(
      "hook fd_install cannot run on this kernel: no kprobes (CONFIG_KPROBES off); substitute: security_file_open with a file argument (decided on the opened file: Equal files by the file guard, by inode; prefixes and other matchers at the open-family syscall exit, by its resolved path)",
    );
  });

  test("with kprobes: a kprobe through the kprobe PMU, arguments from the function's registers", () => {
    const h = ok(resolvePolicy(FD_INSTALL(), DEB61).hooks[0]);
    expect(h.backend).toBe("generic");
    expect(h.event).toBe("process_kprobe");
    expect(h.functionName).toBe("fd_install");
    expect(h.mechanism).toContain("kprobe on fd_install through the kprobe PMU (perf_event_open + BPF_PERF_EVENT link)");
    expect(h.generic).toEqual([{ kind: "kprobe", subsystem: "kprobe", event: "fd_install", raw: false, symbols: ["fd_install"], syscallAbi: false, override: false, withExit: false }]);
    expect(h.limits.join(" ")).toContain("CO-RE");
  });

  test("with --keep-sensors-on-exit a kernel-function kprobe is refused (its links are not pinned), not kept only while the agent runs", () => {
    const h = resolvePolicy(FD_INSTALL(), { ...DEB61, keepSensors: true }).hooks[0];
    expect(h?.ok).toBe(false);
    expect(rejected(h)).toContain("ward does not pin kernel-function kprobe links");
  });

  test("return: true with an int returnArg: a kretprobe too; the entry's record is kept for the return", () => {
    const p = policy(`  kprobes:
  - call: security_file_permission
    syscall: false
    return: true
    args:
    - index: 0
      type: file
    returnArg:
      index: 0
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Prefix
        values: ["/etc/"]
      matchReturnArgs:
      - index: 0
        operator: Equal
        values: ["0"]
`);
    const h = ok(resolvePolicy(p, DEB61).hooks[0]);
    expect(h.generic?.[0]?.withExit).toBe(true);
    expect(h.mechanism).toContain("and a kretprobe for the return");
    expect(h.limits.join(" ")).toContain("recursive call");
  });

  test("returnArgAction TrackSock, a non-integer returnArg, data, unread types: refused with the reason", () => {
    const track = policy(`  kprobes:
  - call: sk_alloc
    syscall: false
    return: true
    args:
    - index: 1
      type: int
    returnArg:
      index: 0
      type: sock
    returnArgAction: TrackSock
`);
    expect(rejected(resolvePolicy(track, DEB61).hooks[0])).toContain("returnArgAction TrackSock: socket tracking (TrackSock/UntrackSock) is not implemented");
    const sockRet = policy(`  kprobes:
  - call: sk_alloc
    syscall: false
    return: true
    returnArg:
      index: 0
      type: sock
`);
    expect(rejected(resolvePolicy(sockRet, DEB61).hooks[0])).toContain("returnArg of type sock: the kretprobe reads the return value as an integer only");
    const dentry = policy(`  kprobes:
  - call: security_inode_unlink
    syscall: false
    args:
    - index: 1
      type: dentry
`);
    expect(rejected(resolvePolicy(dentry, DEB61).hooks[0])).toContain("dentry (a path within its mount) is not read");
    const missing = policy(`  kprobes:\n  - call: no_such_function\n    syscall: false\n`);
    expect(rejected(resolvePolicy(missing, DEB61).hooks[0])).toContain("no_such_function is not a kernel function here (not in /proc/kallsyms)");
  });

  test("Override: refused without bpf_override_return (6.1 cloud), refused on a function without error injection, honored on one with it", () => {
    const over = (call: string) => policy(`  kprobes:
  - call: ${call}
    syscall: false
    selectors:
    - matchActions:
      - action: Override
        argError: -12
`);
    // (the policy validator already allows Override only on syscalls and security_* functions, as Tetragon)
    expect(rejected(resolvePolicy(over("security_inode_mkdir"), DEB61).hooks[0])).toContain("Override on security_inode_mkdir needs bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE), which this kernel does not have; substitute: Sigkill");
    expect(rejected(resolvePolicy(over("security_inode_mkdir"), FULL).hooks[0])).toContain("the kernel allows bpf_override_return only on functions marked for error injection (ALLOW_ERROR_INJECTION, /sys/kernel/debug/error_injection/list) and security_inode_mkdir is not one");
    const h = ok(resolvePolicy(over("security_task_prctl"), FULL).hooks[0]);
    expect(h.generic?.[0]).toMatchObject({ kind: "kprobe", override: true });
    expect(h.actions[0]?.honored).toContain("the call returns argError without running (bpf_override_return");
    expect(h.mechanism).toContain("Override by bpf_override_return");
  });

  test("Override on a syscall: a kprobe on __x64_sys_X where bpf_override_return exists; the tracepoint's refusal elsewhere", () => {
    const p = policy(`  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: ["/tmp/x"]
      matchActions:
      - action: Override
        argError: -1
`);
    const h = ok(resolvePolicy(p, FULL).hooks[0]);
    expect(h.generic?.[0]).toMatchObject({ kind: "kprobe", symbols: ["__x64_sys_openat"], syscallAbi: true, override: true });
    expect(h.functionName).toBe("__x64_sys_openat");
    expect(h.bypasses.join(" ")).toContain("32-bit processes");
    expect(rejected(resolvePolicy(p, DEB61).hooks[0])).toContain("Override needs bpf_override_return (kprobes with CONFIG_BPF_KPROBE_OVERRIDE)");
    // without Override the syscall stays on its tracepoint (it also sees 32-bit callers)
    const post = policy(`  kprobes:\n  - call: sys_openat\n    syscall: true\n    args:\n    - index: 1\n      type: string\n`);
    expect(ok(resolvePolicy(post, FULL).hooks[0]).generic?.[0]?.kind).toBe("syscall");
  });

  test("a list of kernel functions: one kprobe.multi link where the kernel has them, a kprobe each elsewhere", () => {
    const p = policy(`  lists:
  - name: fns
    values: ["fd_install", "commit_creds"]
  kprobes:
  - call: list:fns
    syscall: false
`);
    expect(ok(resolvePolicy(p, FULL).hooks[0]).mechanism).toContain("kprobe.multi link on 2 functions (fd_install, commit_creds)");
    const d = ok(resolvePolicy(p, DEB61).hooks[0]);
    expect(d.mechanism).toContain("kprobe on 2 functions (fd_install, commit_creds) through the kprobe PMU");
    expect(d.generic?.[0]?.symbols).toEqual(["fd_install", "commit_creds"]);
    expect(rejected(resolvePolicy(p, HERE).hooks[0])).toContain("names kernel functions, which need kprobes: no kprobes (CONFIG_KPROBES off)");
  });

  test("tcp_connect: a kprobe where there are kprobes (it sees the source port); the cgroup hook here", () => {
    const post = policy(`  kprobes:\n  - call: tcp_connect\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: SPort\n        values: ["40000:50000"]\n`);
    expect(ok(resolvePolicy(post, DEB61).hooks[0]).generic?.[0]?.kind).toBe("kprobe");
    // here the cgroup hook would run before the kernel picks the source port: refused
    expect(rejected(resolvePolicy(post, HERE).hooks[0])).toContain("SPort at tcp_connect reads the source address/port the kernel picks after cgroup/connect4");
    // Sigkill stays on the cgroup hooks even with kprobes: they deny the connect, a kprobe
    // would let the SYN leave before the kill
    const kill = policy(`  kprobes:\n  - call: tcp_connect\n    syscall: false\n    args:\n    - index: 0\n      type: sock\n    selectors:\n    - matchArgs:\n      - index: 0\n        operator: DPort\n        values: ["7000"]\n      matchActions:\n      - action: Sigkill\n`);
    const k = ok(resolvePolicy(kill, DEB61).hooks[0]);
    expect(k.backend).not.toBe("generic");
    expect(k.mechanism).toStartWith("cgroup sock_addr programs");
    expect(k.actions[0]?.honored).toContain("the call is denied too");
  });

  test("security_* functions no LSM backend holds are kprobes with kprobes; refused without", () => {
    const p = policy(`  kprobes:\n  - call: security_path_truncate\n    syscall: false\n    args:\n    - index: 0\n      type: path\n`);
    expect(ok(resolvePolicy(p, DEB61).hooks[0]).mechanism).toContain("kprobe on security_path_truncate");
    expect(rejected(resolvePolicy(p, HERE).hooks[0])).toContain("security_path_truncate cannot run on this kernel");
  });
});

describe("kernel object arguments in events", () => {
  const arg = (object: GenericArg["object"]): GenericArg => ({ slot: 0, type: "sock", state: "bytes", int: 0n, object });

  test("sock_arg: Tetragon's names for family, type, protocol, state", () => {
    const a = typedArg(arg({ kind: "sock", family: 2, type: 1, protocol: 6, state: 2, mark: 0, priority: 0, saddr: "127.0.0.1", daddr: "10.0.0.1", sport: 40000, dport: 80, cookie: 7n }), { index: 0, type: "sock" } as never);
    expect(encodeHookArg(a)).toEqual({ sock_arg: { family: "AF_INET", type: "SOCK_STREAM", protocol: "IPPROTO_TCP", saddr: "127.0.0.1", daddr: "10.0.0.1", sport: 40000, dport: 80, cookie: "7", state: "TCP_SYN_SENT" } });
  });

  test("process_credentials_arg: ids, capability names, user namespace", () => {
    const a = typedArg(arg({ kind: "cred", uid: 1000, gid: 1000, suid: 1000, sgid: 1000, euid: 0, egid: 0, fsuid: 1000, fsgid: 1000, securebits: 0, capPermitted: 1n | (1n << 21n), capEffective: 1n, capInheritable: 0n, userns: { level: 1, uid: 0, gid: 0, inum: 4026532000 } }), { index: 0, type: "cred" } as never);
    expect(encodeHookArg(a)).toEqual({
      process_credentials_arg: {
        uid: 1000, gid: 1000, suid: 1000, sgid: 1000, fsuid: 1000, fsgid: 1000,
        caps: { permitted: ["CAP_CHOWN", "CAP_SYS_ADMIN"], effective: ["CAP_CHOWN"] },
        user_ns: { level: 1, ns: { inum: 4026532000 } },
      },
    });
  });

  test("addresses as text", () => {
    expect(ipText(new Uint8Array([127, 0, 0, 1, ...new Array(12).fill(0)]), 2)).toBe("127.0.0.1");
    expect(ipText(new Uint8Array([0x20, 1, 0xd, 0xb8, ...new Array(11).fill(0), 1]), 10)).toBe("2001:db8::1");
    expect(ipText(new Uint8Array(16), 1)).toBe("");
  });
});
