// Hook resolution for socket hooks (issue 9 §2): tcp_connect, security_socket_connect/bind and
// sys_connect/bind/sendto with Override run on the cgroup sock_addr programs; what those
// programs cannot see is refused with the reason and a substitute, never narrowed. The
// corpus's connect and egress policies load there (or are refused exactly), and explain
// names the mechanism for every hook and action.
import { describe, expect, test } from "bun:test";
import { join } from "node:path";
import { CORPUS_DIR, CORPUS_SUBSTITUTIONS } from "../../build/corpus-table.ts";
import { hostSyscallNumber } from "../../src/policy/engine.ts";
import type { TracingPolicy } from "../../src/policy/types.ts";
import { validatePolicyFile, validatePolicyText } from "../../src/policy/validate.ts";
import { resolvePolicy, type HookFeatures, type HookResolution, type ResolvedHook } from "../../src/sensors/resolve.ts";

const syscallNumber = (n: string): number | undefined => hostSyscallNumber(n);
const HERE: HookFeatures = {
  release: "6.18.44", bpfLsm: false, kprobes: false, overrideReturn: false, tracepoint: () => true, syscallNumber,
  cgroupSockAddr: () => ({ root: "/sys/fs/cgroup/unified" }),
};

function policyFrom(yaml: string): TracingPolicy {
  const v = validatePolicyText(yaml, "p.yaml");
  const p = v.policies[0];
  if (!v.valid || p === undefined) throw new Error(`invalid: ${v.diagnostics.map((d) => d.message).join("; ")}`);
  return p.policy;
}

function kprobe(body: string): TracingPolicy {
  return policyFrom(`apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: p\nspec:\n  kprobes:\n${body}`);
}

function resolved(h: HookResolution | undefined): ResolvedHook {
  if (h === undefined || !h.ok) throw new Error(`expected a resolution, got ${h === undefined ? "nothing" : h.reason}`);
  return h;
}

function rejected(h: HookResolution | undefined): string {
  if (h === undefined || h.ok) throw new Error(`expected a rejection, got ${h === undefined ? "nothing" : h.mechanism}`);
  return h.reason;
}

async function corpus(file: string): Promise<TracingPolicy> {
  const r = await validatePolicyFile(join(CORPUS_DIR, file), { substitute: CORPUS_SUBSTITUTIONS });
  const p = r.policies[0];
  if (!r.valid || p === undefined) throw new Error(`${file} invalid`);
  return p.policy;
}

const CONNECT = `  - call: security_socket_connect
    syscall: false
    args:
    - index: 0
      type: socket
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 1
        operator: Family
        values: ["AF_INET"]
      - index: 1
        operator: SAddr
        values: ["10.0.0.0/8"]
      matchBinaries:
      - operator: In
        values: ["/usr/bin/curl"]
      matchActions:
      - action: Override
        argError: -1
`;

describe("corpus connect and egress policies on this kernel", () => {
  for (const file of ["tcp-connect-only-local-addrs.yaml", "tcp-connect-only-private-addrs.yaml", "policylibrary__egress.yaml", "quickstart__network_egress_cluster.yaml", "quickstart__network_egress_cluster_enforce.yaml", "security-socket-connect.yaml"]) {
    test(`${file} loads on cgroup connect4/connect6`, async () => {
      const r = resolvePolicy(await corpus(file), HERE);
      expect(r.errors).toEqual([]);
      const h = resolved(r.hooks[0]);
      expect(h.backend).toBe("sock");
      expect(h.mechanism).toBe(`cgroup sock_addr programs cgroup/connect4 and cgroup/connect6 at the cgroup v2 root (/sys/fs/cgroup/unified), decided in the kernel before the connection happens (no BPF LSM or kprobes needed)`);
      expect(h.sock?.points).toEqual(["connect4", "connect6"]);
      expect(h.sock?.tcpConnect).toBe(file !== "security-socket-connect.yaml");
      // every action of every selector names how it is honored there
      expect(h.actions.length).toBeGreaterThan(0);
      for (const a of h.actions) expect(a.honored).toMatch(/cgroup\/connect4 and cgroup\/connect6|no event/);
    });
  }

  test("the Sigkill corpus rules die before connect() returns and send nothing", async () => {
    const h = resolved(resolvePolicy(await corpus("tcp-connect-only-private-addrs.yaml"), HERE).hooks[0]);
    expect(h.actions).toEqual([{ selector: 0, action: "Sigkill", honored: "SIGKILL with bpf_send_signal in cgroup/connect4 and cgroup/connect6: the process dies before connect() returns, and the call is denied too, so nothing leaves first" }]);
  });

  test("tcp-connect.yaml and tcp-connect-with-selectors.yaml: tcp_connect loads, tcp_close/tcp_sendmsg are refused (no kprobes) with their substitutes", async () => {
    for (const file of ["tcp-connect.yaml", "tcp-connect-with-selectors.yaml"]) {
      const r = resolvePolicy(await corpus(file), HERE);
      expect(resolved(r.hooks[0]).backend).toBe("sock");
      expect(rejected(r.hooks[1])).toContain("hook tcp_close cannot run on this kernel: no kprobes (CONFIG_KPROBES off)");
      expect(rejected(r.hooks[2])).toContain("hook tcp_sendmsg cannot run on this kernel: no kprobes (CONFIG_KPROBES off)");
      expect(rejected(r.hooks[1])).toContain("substitute: the tracepoint sock/inet_sock_set_state");
      expect(rejected(r.hooks[2])).toContain("substitute: syscall kprobes on sys_sendto/sys_sendmsg/sys_write");
    }
  });

  test("security-socket-connect-block-others.yaml: Override argError 1 is not an errno, refused exactly", async () => {
    const r = resolvePolicy(await corpus("security-socket-connect-block-others.yaml"), HERE);
    expect(rejected(r.hooks[0])).toBe("selector 1: Override(argError=1): the cgroup socket hooks fail a call with a negative errno (argError -4095..-1, e.g. -1 for EPERM) through bpf_set_retval; 1 is not one (a kprobe override would return it from the call as is), and there is no BPF LSM or fmod_ret here to do that");
  });
});

describe("socket hooks: what the cgroup programs honor", () => {
  test("security_socket_connect + Override: EPERM before the kernel acts; unseen arguments are named", () => {
    const h = resolved(resolvePolicy(kprobe(CONNECT.replace("      type: sockaddr\n", "      type: sockaddr\n    - index: 2\n      type: int\n")), HERE).hooks[0]);
    expect(h.sock).toEqual({ points: ["connect4", "connect6"], tcpConnect: false, seenSlots: [0, 1] });
    expect(h.actions).toEqual([{ selector: 0, action: "Override(argError=-1)", honored: "connect() fails with EPERM in cgroup/connect4 and cgroup/connect6, before the kernel acts (nothing is sent or bound)" }]);
    expect(h.limits).toContain("argument index 2 (int) is not seen by cgroup/connect4 and cgroup/connect6: events omit it");
    expect(h.bypasses.join("\n")).toContain("raw sockets (SOCK_RAW, CAP_NET_RAW)");
  });

  test("another errno goes through bpf_set_retval; monitor mode only posts", () => {
    const p = kprobe(CONNECT.replace("argError: -1", "argError: -13"));
    expect(resolved(resolvePolicy(p, HERE).hooks[0]).actions[0]?.honored).toContain("fails with errno 13");
    expect(resolved(resolvePolicy(p, HERE, "monitor").hooks[0]).actions[0]?.honored).toBe("monitor mode: not enforced, posted as an event in cgroup/connect4 and cgroup/connect6");
  });

  test("sys_connect / sys_bind / sys_sendto with Override run on connect, bind and sendmsg hooks; without Override they stay on the syscall tracepoint", () => {
    const sys = (name: string, idx: number, action: string): TracingPolicy => kprobe(`  - call: ${name}
    syscall: true
    args:
    - index: 0
      type: int
    - index: ${idx}
      type: sockaddr
    selectors:
    - matchArgs:
      - index: ${idx}
        operator: Family
        values: ["AF_INET6"]
      matchActions:
      - action: ${action}
${action === "Override" ? "        argError: -1\n" : ""}`);
    expect(resolved(resolvePolicy(sys("sys_connect", 1, "Override"), HERE).hooks[0]).sock?.points).toEqual(["connect4", "connect6"]);
    expect(resolved(resolvePolicy(sys("sys_bind", 1, "Override"), HERE).hooks[0]).sock?.points).toEqual(["bind4", "bind6"]);
    const send = resolved(resolvePolicy(sys("sys_sendto", 4, "Override"), HERE).hooks[0]);
    expect(send.sock).toEqual({ points: ["sendmsg4", "sendmsg6"], tcpConnect: false, seenSlots: [1] });
    expect(send.functionName).toBe("__x64_sys_sendto");
    expect(send.limits.join("\n")).toContain("a TCP socket ignores the address of sendto");
    const kill = resolved(resolvePolicy(sys("sys_connect", 1, "Sigkill"), HERE).hooks[0]);
    expect(kill.backend).toBe("generic");
  });

  test("a selector that can match non-inet sockets is refused, with the remedy", () => {
    const p = kprobe(CONNECT.replace(`      - index: 1
        operator: Family
        values: ["AF_INET"]
      - index: 1
        operator: SAddr
        values: ["10.0.0.0/8"]
`, `      - index: 0
        operator: Protocol
        values: ["IPPROTO_TCP"]
`));
    expect(rejected(resolvePolicy(p, HERE).hooks[0])).toBe("selector 0: it can match connects of non-inet sockets (AF_UNIX, AF_NETLINK, ...), which cgroup/connect4 and cgroup/connect6 never see (inet sockets only); add matchArgs Family [AF_INET, AF_INET6] (or an address/port selector) on the sockaddr argument, or use BPF LSM socket_connect on a kernel that loads it");
    // Family AF_UNIX is refused too
    expect(rejected(resolvePolicy(kprobe(CONNECT.replace('["AF_INET"]', '["AF_UNIX"]').replace(`      - index: 1
        operator: SAddr
        values: ["10.0.0.0/8"]
`, "")), HERE).hooks[0])).toContain("non-inet sockets");
  });

  test("tcp_connect source selectors: the kernel picks the source after the cgroup hook", () => {
    const p = kprobe(`  - call: tcp_connect
    syscall: false
    args:
    - index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: SPort
        values: ["80"]
      matchActions:
      - action: Sigkill
`);
    expect(rejected(resolvePolicy(p, HERE).hooks[0])).toMatch(/^selector 0: SPort at tcp_connect reads the source address\/port the kernel picks after cgroup\/connect4 and cgroup\/connect6 run .*substitute: /);
  });

  test("matchers and actions the programs do not evaluate are refused", () => {
    expect(rejected(resolvePolicy(kprobe(CONNECT.replace("      matchBinaries:", "      matchPIDs:\n      - operator: In\n        values: [1]\n      matchBinaries:")), HERE).hooks[0])).toMatch(/^selector 0: matchPIDs are not evaluated by the cgroup socket hooks .*substitute: the syscall kprobe sys_connect/);
    expect(rejected(resolvePolicy(kprobe(CONNECT.replace("operator: In", "operator: Prefix")), HERE).hooks[0])).toContain("matchBinaries Prefix");
    expect(rejected(resolvePolicy(kprobe(CONNECT.replace("      - action: Override\n        argError: -1", "      - action: Post\n        rateLimit: 1m")), HERE).hooks[0])).toContain("rateLimit");
    expect(rejected(resolvePolicy(kprobe(CONNECT.replace("    selectors:", "    return: true\n    returnArg:\n      index: 0\n      type: int\n    selectors:")), HERE).hooks[0])).toContain("return: true");
  });

  test("without cgroup sock_addr support the hook is refused with the missing feature", () => {
    const none: HookFeatures = { ...HERE, cgroupSockAddr: () => ({ missing: "no cgroup v2 hierarchy is mounted (no cgroup2 mount with root / in /proc/self/mountinfo)" }) };
    expect(rejected(resolvePolicy(kprobe(CONNECT), none).hooks[0])).toBe("hook security_socket_connect: the cgroup socket hooks (cgroup/connect4 and cgroup/connect6) cannot run: no cgroup v2 hierarchy is mounted (no cgroup2 mount with root / in /proc/self/mountinfo); substitute: BPF LSM (socket_connect/socket_bind) on a kernel that loads it");
  });
});
