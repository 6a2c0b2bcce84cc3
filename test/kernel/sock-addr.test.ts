// Socket policies on the cgroup sock_addr programs (bpf/sock_addr.c) against the real kernel:
// real processes (two copies of a small C helper, so matchBinaries tells them apart) connect,
// send and bind, and the denied one gets EPERM (or the Override's errno) from the kernel
// while the other succeeds; Sigkill kills; IPv6 and CIDR lists (LPM) decide; removing the
// policy leaves no program attached and the calls work again. Hooks are resolved by
// resolve.ts on this host exactly as the agent does, then applied through SockSensor.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, createServer, type Server } from "node:net";
import { createSocket, type Socket } from "node:dgram";
import { join } from "node:path";
import { AttachType } from "../../src/bpf/constants.ts";
import { kernelTest, kernelUnavailable, prepareHost } from "../lib/host.ts";
import { cgroupLinks } from "../lib/bpf-links.ts";
import { buildSockHelpers } from "../lib/sock-helper.ts";
import { compilePolicy } from "../../src/policy/engine.ts";
import type { TracingPolicy } from "../../src/policy/types.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { ProcessSensor } from "../../src/sensors/process.ts";
import { hostHookFeatures, resolvePolicy, type ResolvedHook } from "../../src/sensors/resolve.ts";
import { cgroupV2Root, SockSensor, type SockEvent } from "../../src/sensors/sock.ts";
import { sockArg } from "../../src/sensors/sock-backend.ts";

let dir = "";
let denied = "";
let allowed = "";
let sensor: SockSensor | undefined;
let procs: ProcessSensor | undefined;
let tcp4: Server | undefined;
let tcp6: Server | undefined;
let udp4: Socket | undefined;
let port4 = 0;
let port6 = 0;
let portU = 0;
const features = hostHookFeatures();

function s(): SockSensor {
  if (sensor === undefined) throw new Error("socket sensor not loaded");
  return sensor;
}

function run(bin: string, ...args: string[]): SpawnSyncReturns<string> {
  return spawnSync(bin, args, { encoding: "utf8", timeout: 10_000 });
}

/** The helper's verdict ("ok", "EPERM", ...); fails the test on a crash or setup error. */
function outcome(bin: string, ...args: string[]): string {
  const r = run(bin, ...args);
  if (r.signal !== null) return r.signal;
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  return r.stdout.trim();
}

function parse(yaml: string): TracingPolicy {
  const v = validatePolicyText(yaml, "test.yaml");
  const p = v.policies[0];
  if (!v.valid || p === undefined) throw new Error(`policy invalid: ${v.diagnostics.map((d) => d.message).join("; ")}`);
  return p.policy;
}

function policy(name: string, body: string): string {
  return `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: ${name}\nspec:\n${body}`;
}

/** Resolves on this host (the hooks must go to the socket sensor) and applies; returns the hooks. */
function apply(id: string, yaml: string): ResolvedHook[] {
  const p = parse(yaml);
  const r = resolvePolicy(p, features);
  expect(r.errors).toEqual([]);
  const hooks = r.hooks.filter((h): h is ResolvedHook => h.ok);
  for (const h of hooks) expect(h.backend).toBe("sock");
  const compiled = compilePolicy(p, { setIdBase: s().nextSetIdBase() });
  s().apply(id, compiled, hooks.map((h) => ({ index: h.index, points: h.sock!.points, tcpConnect: h.sock!.tcpConnect })));
  return hooks;
}

async function records(policyId: string): Promise<SockEvent[]> {
  await Bun.sleep(200);
  return s().drain().filter((e) => e.policyId === policyId);
}

const binaries = (op: string): string => `      matchBinaries:\n      - operator: ${op}\n        values: ["${denied}"]\n`;

describe("cgroup sock_addr socket policies", () => {
  beforeAll(async () => {
    if (kernelUnavailable() !== undefined) return;
    prepareHost();
    dir = mkdtempSync("/tmp/ward-sock-");
    denied = join(dir, "denied-helper");
    allowed = join(dir, "allowed-helper");
    buildSockHelpers(denied, allowed);
    tcp4 = createServer((c) => c.destroy());
    await new Promise<void>((r) => tcp4!.listen(0, "0.0.0.0", r));
    port4 = (tcp4.address() as { port: number }).port;
    tcp6 = createServer((c) => c.destroy());
    await new Promise<void>((r, j) => { tcp6!.once("error", j); tcp6!.listen(0, "::1", r); });
    port6 = (tcp6.address() as { port: number }).port;
    udp4 = createSocket("udp4");
    await new Promise<void>((r) => udp4!.bind(0, "127.0.0.1", r));
    portU = udp4.address().port;
    procs = new ProcessSensor({ nodeName: "test", onEvent: () => {}, log: () => {} });
    await procs.start();
    sensor = new SockSensor({ processMap: procs.processMap! });
    sensor.load();
  });

  afterAll(async () => {
    sensor?.close();
    await procs?.stop();
    tcp4?.close();
    tcp6?.close();
    udp4?.close();
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("the programs attach at the cgroup v2 root found in /proc/self/mountinfo", () => {
    const root = cgroupV2Root();
    expect(root).toBeDefined();
    expect(s().cgroup).toBe(root!);
    const mountinfo = spawnSync("cat", ["/proc/self/mountinfo"], { encoding: "utf8" }).stdout;
    expect(mountinfo).toContain(` ${root} `);
  });

  kernelTest("security_socket_connect + Override: the denied binary's connect() to 127.0.0.1:PORT fails with EPERM, the other binary connects; removed, nothing stays attached", async () => {
    expect(outcome(denied, "connect", "tcp", "127.0.0.1", String(port4))).toBe("ok");
    apply("tcp", policy("tcp", `  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 0
      type: socket
    - index: 1
      type: sockaddr
    - index: 2
      type: int
    selectors:
    - matchArgs:
      - index: 0
        operator: Protocol
        values: ["IPPROTO_TCP"]
      - index: 1
        operator: SAddr
        values: ["127.0.0.1"]
      - index: 1
        operator: SPort
        values: ["${port4}"]
${binaries("In")}      matchActions:
      - action: Override
        argError: -1
`));
    try {
      // fdinfo prints the attach type as its number (BPF_CGROUP_INET4_CONNECT, _INET6_CONNECT)
      const links = cgroupLinks(process.pid);
      expect(links.map((l) => l.attachType).sort()).toEqual([String(AttachType.CGROUP_INET4_CONNECT), String(AttachType.CGROUP_INET6_CONNECT)].sort());
      expect(links.map((l) => l.progId).sort()).toEqual(s().attachedProgramIds().sort());
      expect(outcome(denied, "connect", "tcp", "127.0.0.1", String(port4))).toBe("EPERM");
      expect(outcome(allowed, "connect", "tcp", "127.0.0.1", String(port4))).toBe("ok");
      // another port is not the rule's
      expect(outcome(denied, "connect", "tcp", "127.0.0.1", "1")).toBe("ECONNREFUSED");
      // the rule names TCP: a UDP connect to the same address passes
      expect(outcome(denied, "connect", "udp", "127.0.0.1", String(port4))).toBe("ok");
      const evs = await records("tcp");
      expect(evs.length).toBe(1);
      const ev = evs[0]!;
      expect(ev.denied).toBe(true);
      expect(ev.error).toBe(-1);
      expect(ev.actions).toEqual(["Override"]);
      expect(ev.point).toBe("connect4");
      expect(sockArg(ev, { index: 0, type: "socket" } as never, false)).toMatchObject({ kind: "sock", family: "AF_INET", type: "SOCK_STREAM", protocol: "IPPROTO_TCP", state: "TCP_CLOSE" });
      expect(sockArg(ev, { index: 1, type: "sockaddr" } as never, false)).toEqual({ kind: "sockaddr", family: "AF_INET", addr: "127.0.0.1", port: port4 });
    } finally {
      s().remove("tcp");
    }
    expect(s().attachedProgramIds()).toEqual([]);
    expect(cgroupLinks(process.pid)).toEqual([]);
    expect(s().tableSizes()).toEqual({ sock_addr_lpm: 0, sock_int_set: 0, sock_bin_names: 0, sock_bin_set: 0, activeSlots: 0 });
    expect(outcome(denied, "connect", "tcp", "127.0.0.1", String(port4))).toBe("ok");
  });

  kernelTest("io_uring IORING_OP_CONNECT (B3) and TCP fast open's sendto(MSG_FASTOPEN) connect without connect(2) and are denied all the same", async () => {
    apply("routes", policy("routes", `  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 1
        operator: SAddr
        values: ["127.0.0.1"]
      - index: 1
        operator: SPort
        values: ["${port4}"]
${binaries("In")}      matchActions:
      - action: Override
        argError: -1
`));
    try {
      expect(outcome(allowed, "uring-connect", "tcp", "127.0.0.1", String(port4))).toBe("ok");
      expect(outcome(allowed, "fastopen", "tcp", "127.0.0.1", String(port4))).toBe("ok");
      expect(outcome(denied, "uring-connect", "tcp", "127.0.0.1", String(port4))).toBe("EPERM");
      expect(outcome(denied, "fastopen", "tcp", "127.0.0.1", String(port4))).toBe("EPERM");
      const evs = await records("routes");
      expect(evs.map((e) => e.point)).toEqual(["connect4", "connect4"]);
      expect(evs.every((e) => e.denied)).toBe(true);
    } finally {
      s().remove("routes");
    }
  });

  kernelTest("security_socket_connect + Override argError -13 on the sockaddr: connect() fails with EACCES (bpf_set_retval)", async () => {
    apply("ssc", policy("ssc", `  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 0
      type: socket
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 0
        operator: Protocol
        values: ["IPPROTO_TCP"]
      - index: 1
        operator: Family
        values: ["AF_INET", "AF_INET6"]
      - index: 1
        operator: SAddr
        values: ["127.0.0.1"]
      - index: 1
        operator: SPort
        values: ["${port4}"]
${binaries("In")}      matchActions:
      - action: Override
        argError: -13
`));
    try {
      expect(outcome(denied, "connect", "tcp", "127.0.0.1", String(port4))).toBe("EACCES");
      expect(outcome(allowed, "connect", "tcp", "127.0.0.1", String(port4))).toBe("ok");
      const ev = (await records("ssc"))[0];
      expect(ev?.error).toBe(-13);
      expect(sockArg(ev!, { index: 1, type: "sockaddr" } as never, false)).toEqual({ kind: "sockaddr", family: "AF_INET", addr: "127.0.0.1", port: port4 });
      expect(sockArg(ev!, { index: 0, type: "socket" } as never, false)).toMatchObject({ kind: "sock", protocol: "IPPROTO_TCP", state: "TCP_CLOSE" });
    } finally {
      s().remove("ssc");
    }
  });

  kernelTest("sys_sendto + Override: the denied binary's UDP sendto() to 127.0.0.1:PORT fails with EPERM (cgroup/sendmsg4), the other's arrives", async () => {
    const got: string[] = [];
    udp4!.on("message", (m) => got.push(m.toString()));
    apply("udp", policy("udp", `  kprobes:
  - call: sys_sendto
    syscall: true
    args:
    - index: 0
      type: int
    - index: 4
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 4
        operator: Family
        values: ["AF_INET"]
      - index: 4
        operator: SAddr
        values: ["127.0.0.1"]
      - index: 4
        operator: SPort
        values: ["${portU}"]
${binaries("In")}      matchActions:
      - action: Override
        argError: -1
`));
    try {
      expect(outcome(denied, "sendto", "udp", "127.0.0.1", String(portU))).toBe("EPERM");
      expect(outcome(allowed, "sendto", "udp", "127.0.0.1", String(portU))).toBe("ok");
      await Bun.sleep(100);
      expect(got).toEqual(["ward"]);
      const ev = (await records("udp"))[0];
      expect(ev?.point).toBe("sendmsg4");
      expect(ev?.denied).toBe(true);
    } finally {
      s().remove("udp");
    }
  });

  kernelTest("tcp_connect + Post: an event with the socket as tcp_connect sees it (peer set, TCP_SYN_SENT); the connect goes through", async () => {
    apply("post", policy("post", `  kprobes:
  - call: tcp_connect
    syscall: false
    args:
    - index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: DAddr
        values: ["127.0.0.1"]
      - index: 0
        operator: DPort
        values: ["${port4}"]
${binaries("In")}`));
    try {
      expect(outcome(denied, "connect", "tcp", "127.0.0.1", String(port4))).toBe("ok");
      expect(outcome(allowed, "connect", "tcp", "127.0.0.1", String(port4))).toBe("ok");
      // UDP connects are not tcp_connect
      expect(outcome(denied, "connect", "udp", "127.0.0.1", String(port4))).toBe("ok");
      const evs = await records("post");
      expect(evs.length).toBe(1);
      expect(evs[0]?.denied).toBe(false);
      expect(evs[0]?.actions).toEqual(["Post"]);
      expect(sockArg(evs[0]!, { index: 0, type: "sock" } as never, true)).toMatchObject({ kind: "sock", family: "AF_INET", type: "SOCK_STREAM", protocol: "IPPROTO_TCP", daddr: "127.0.0.1", dport: port4, state: "TCP_SYN_SENT" });
    } finally {
      s().remove("post");
    }
  });

  kernelTest("IPv6: SAddr ::1 on the sockaddr denies the denied binary's connect() to [::1]:PORT (cgroup/connect6)", async () => {
    apply("v6", policy("v6", `  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 1
        operator: SAddr
        values: ["::1/128"]
${binaries("In")}      matchActions:
      - action: Override
        argError: -1
`));
    try {
      expect(outcome(denied, "connect", "tcp", "::1", String(port6))).toBe("EPERM");
      expect(outcome(allowed, "connect", "tcp", "::1", String(port6))).toBe("ok");
      // IPv4 is not in the set
      expect(outcome(denied, "connect", "tcp", "127.0.0.1", String(port4))).toBe("ok");
      const ev = (await records("v6"))[0];
      expect(ev?.point).toBe("connect6");
      expect(sockArg(ev!, { index: 1, type: "sockaddr" } as never, false)).toEqual({ kind: "sockaddr", family: "AF_INET6", addr: "::1", port: port6 });
    } finally {
      s().remove("v6");
    }
  });

  kernelTest("CIDR lists (LPM trie): SAddr [10.0.0.0/8, 127.0.0.0/30] denies 127.0.0.2 and not 127.0.0.5; NotSAddr the reverse", async () => {
    const rule = (op: string): string => policy(`cidr-${op.toLowerCase()}`, `  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 1
        operator: Family
        values: ["AF_INET"]
      - index: 1
        operator: ${op}
        values: ["10.0.0.0/8", "127.0.0.0/30"]
${binaries("In")}      matchActions:
      - action: Override
        argError: -1
`);
    apply("cidr-in", rule("SAddr"));
    try {
      expect(outcome(denied, "connect", "tcp", "127.0.0.2", String(port4))).toBe("EPERM");
      expect(outcome(denied, "connect", "tcp", "127.0.0.5", String(port4))).toBe("ok");
    } finally {
      s().remove("cidr-in");
    }
    apply("cidr-out", rule("NotSAddr"));
    try {
      expect(outcome(denied, "connect", "tcp", "127.0.0.2", String(port4))).toBe("ok");
      expect(outcome(denied, "connect", "tcp", "127.0.0.5", String(port4))).toBe("EPERM");
      expect(outcome(allowed, "connect", "tcp", "127.0.0.5", String(port4))).toBe("ok");
    } finally {
      s().remove("cidr-out");
    }
  });

  kernelTest("security_socket_bind + Override: the denied binary's bind() to the port fails with EPERM, the other binds", async () => {
    const port = 40000 + (process.pid % 20000);
    apply("bind", policy("bind", `  kprobes:
  - call: security_socket_bind
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
        operator: SPort
        values: ["${port}"]
${binaries("In")}      matchActions:
      - action: Override
        argError: -1
`));
    try {
      expect(outcome(denied, "bind", "tcp", "127.0.0.1", String(port))).toBe("EPERM");
      expect(outcome(denied, "bind", "udp", "127.0.0.1", String(port))).toBe("EPERM");
      expect(outcome(denied, "bind", "tcp", "127.0.0.1", "0")).toBe("ok");
      expect(outcome(allowed, "bind", "tcp", "127.0.0.1", String(port))).toBe("ok");
      expect((await records("bind"))[0]?.point).toBe("bind4");
    } finally {
      s().remove("bind");
    }
  });

  kernelTest("Sigkill (corpus tcp-connect-only-local-addrs shape): the denied binary dies with SIGKILL and its connect is denied; monitor mode only posts", async () => {
    const yaml = policy("kill", `  kprobes:
  - call: tcp_connect
    syscall: false
    args:
    - index: 0
      type: sock
    selectors:
    - matchArgs:
      - index: 0
        operator: NotDAddr
        values: ["127.0.0.0/30"]
${binaries("In")}      matchActions:
      - action: Sigkill
`);
    apply("kill", yaml);
    try {
      expect(outcome(denied, "connect", "tcp", "127.0.0.5", String(port4))).toBe("SIGKILL");
      expect(outcome(denied, "connect", "tcp", "127.0.0.1", String(port4))).toBe("ok");
      expect(outcome(allowed, "connect", "tcp", "127.0.0.5", String(port4))).toBe("ok");
      const ev = (await records("kill"))[0];
      expect(ev?.killed).toBe(true);
      expect(ev?.denied).toBe(true);
      s().setMode("kill", "monitor");
      expect(outcome(denied, "connect", "tcp", "127.0.0.5", String(port4))).toBe("ok");
      const mon = (await records("kill"))[0];
      expect(mon?.monitor).toBe(true);
      expect(mon?.denied).toBe(false);
    } finally {
      s().remove("kill");
    }
  });

  kernelTest("the exempt agent process is never denied", async () => {
    apply("exempt", policy("exempt", `  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 1
        operator: SPort
        values: ["${port4}"]
      matchActions:
      - action: Override
        argError: -1
`));
    try {
      // this process (exempt) connects; any other binary is denied
      await new Promise<void>((r, j) => {
        const c = connect(port4, "127.0.0.1", () => { c.destroy(); r(); });
        c.once("error", j);
      });
      expect(outcome(allowed, "connect", "tcp", "127.0.0.1", String(port4))).toBe("EPERM");
      expect(s().counters().exempt).toBeGreaterThan(0n);
    } finally {
      s().remove("exempt");
    }
  });
});
