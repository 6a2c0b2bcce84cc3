// Process-side selectors (binaries, PIDs, namespaces, capabilities and their changes)
// and the selector/action logic: OR across selectors with first match winning, AND
// inside a selector, default Post, NoPost, monitor mode, return-phase matching.
import { describe, expect, test } from "bun:test";
import { compileMutated, compileYaml, decide, firstSelector, kprobePolicy } from "./engine-helpers.ts";

const ARG = `    - index: 0\n      type: "int"`;
const sel = (body: string) => compileYaml(kprobePolicy(ARG, body));

describe("matchBinaries", () => {
  test("In / NotIn by exact path", () => {
    const c = sel(`    - matchBinaries:\n      - operator: "In"\n        values: ["/usr/bin/curl", "/usr/bin/wget"]`);
    expect(decide(c, { binary: "/usr/bin/curl" }).matched).toBe(true);
    expect(decide(c, { binary: "/usr/bin/wget" }).matched).toBe(true);
    expect(decide(c, { binary: "/usr/bin/curl2" }).matched).toBe(false);
    const n = sel(`    - matchBinaries:\n      - operator: "NotIn"\n        values: ["/usr/bin/curl"]`);
    expect(decide(n, { binary: "/usr/bin/curl" }).matched).toBe(false);
    expect(decide(n, { binary: "/bin/sh" }).matched).toBe(true);
  });

  test("binaries are interned: names go to binNames, membership to binSet", () => {
    const c = sel(`    - matchBinaries:\n      - operator: "In"\n        values: ["/usr/bin/a", "/usr/bin/b"]`);
    expect(c.tables.binNames.count).toBe(2);
    expect(c.tables.binSet.count).toBe(2);
  });

  test("Prefix / NotPrefix / Postfix / NotPostfix", () => {
    const p = sel(`    - matchBinaries:\n      - operator: "Prefix"\n        values: ["/usr/"]`);
    expect(decide(p, { binary: "/usr/sbin/sshd" }).matched).toBe(true);
    expect(decide(p, { binary: "/bin/sh" }).matched).toBe(false);
    const np = sel(`    - matchBinaries:\n      - operator: "NotPrefix"\n        values: ["/usr/"]`);
    expect(decide(np, { binary: "/tmp/x" }).matched).toBe(true);
    const pf = sel(`    - matchBinaries:\n      - operator: "Postfix"\n        values: ["/bash"]`);
    expect(decide(pf, { binary: "/usr/bin/bash" }).matched).toBe(true);
    expect(decide(pf, { binary: "/usr/bin/dash" }).matched).toBe(false);
    const npf = sel(`    - matchBinaries:\n      - operator: "NotPostfix"\n        values: ["/bash"]`);
    expect(decide(npf, { binary: "/usr/bin/bash" }).matched).toBe(false);
  });

  test("followChildren: descendants of a matched binary match too", () => {
    const c = sel(`    - matchBinaries:\n      - operator: "In"\n        values: ["/usr/sbin/sshd"]\n        followChildren: true`);
    expect(c.tables.follow.count).toBe(1);
    expect(decide(c, { binary: "/usr/sbin/sshd" }).matched).toBe(true);
    expect(decide(c, { binary: "/bin/bash", ancestors: [{ pid: 5, binary: "/usr/sbin/sshd" }] }).matched).toBe(true);
    expect(decide(c, { binary: "/bin/cat", ancestors: [{ pid: 6, binary: "/bin/bash" }, { pid: 5, binary: "/usr/sbin/sshd" }] }).matched).toBe(true);
    expect(decide(c, { binary: "/bin/bash", ancestors: [{ pid: 5, binary: "/sbin/init" }] }).matched).toBe(false);
    const n = sel(`    - matchBinaries:\n      - operator: "NotIn"\n        values: ["/usr/sbin/sshd"]\n        followChildren: true`);
    expect(decide(n, { binary: "/bin/bash", ancestors: [{ pid: 5, binary: "/usr/sbin/sshd" }] }).matched).toBe(false);
    expect(decide(n, { binary: "/bin/bash", ancestors: [{ pid: 5, binary: "/sbin/init" }] }).matched).toBe(true);
  });

  test("followChildren bits start at followBitBase so policies can share the process map", () => {
    const yaml = kprobePolicy(ARG, `    - matchBinaries:\n      - operator: "In"\n        values: ["/usr/sbin/sshd"]\n        followChildren: true`);
    const c = compileYaml(yaml, { followBitBase: 10 });
    expect(c.followBits).toBe(1);
    const f = c.tables.follow.bytes;
    expect(new DataView(f.buffer, f.byteOffset).getUint32(0, true)).toBe(10);
    expect(decide(c, { binary: "/bin/sh", ancestors: [{ pid: 2, binary: "/usr/sbin/sshd" }] }).matched).toBe(true);
    expect(() => compileYaml(yaml, { followBitBase: 64 })).toThrow("followChildren");
  });

  test("matchParentBinaries looks at the parent", () => {
    const c = sel(`    - matchParentBinaries:\n      - operator: "In"\n        values: ["/bin/bash"]`);
    expect(decide(c, { binary: "/bin/cat", parentBinary: "/bin/bash" }).matched).toBe(true);
    expect(decide(c, { binary: "/bin/bash", parentBinary: "/sbin/init" }).matched).toBe(false);
  });
});

describe("matchPIDs", () => {
  test("In / NotIn", () => {
    const c = sel(`    - matchPIDs:\n      - operator: "In"\n        values: [1, 2, 3, 4]`);
    expect(decide(c, { pid: 4 }).matched).toBe(true);
    expect(decide(c, { pid: 5 }).matched).toBe(false);
    const n = sel(`    - matchPIDs:\n      - operator: "NotIn"\n        values: [1]`);
    expect(decide(n, { pid: 1 }).matched).toBe(false);
    expect(decide(n, { pid: 2 }).matched).toBe(true);
  });

  test("isNamespacePID compares the pid inside the task's pid namespace", () => {
    const c = sel(`    - matchPIDs:\n      - operator: "In"\n        values: [1]\n        isNamespacePID: true`);
    expect(decide(c, { pid: 4242, nspid: 1 }).matched).toBe(true);
    expect(decide(c, { pid: 1, nspid: 7 }).matched).toBe(false);
  });

  test("followForks: children of a listed pid match", () => {
    const c = sel(`    - matchPIDs:\n      - operator: "In"\n        values: [100]\n        followForks: true`);
    expect(decide(c, { pid: 200, ancestors: [{ pid: 150, binary: "/bin/sh" }, { pid: 100, binary: "/bin/sh" }] }).matched).toBe(true);
    expect(decide(c, { pid: 200, ancestors: [{ pid: 150, binary: "/bin/sh" }] }).matched).toBe(false);
    const n = sel(`    - matchPIDs:\n      - operator: "In"\n        values: [100]`);
    expect(decide(n, { pid: 200, ancestors: [{ pid: 100, binary: "/bin/sh" }] }).matched).toBe(false);
    const ns = sel(`    - matchPIDs:\n      - operator: "NotIn"\n        values: [1]\n        followForks: true\n        isNamespacePID: true`);
    expect(decide(ns, { pid: 200, nspid: 0 }).matched).toBe(false);
    expect(decide(ns, { pid: 200, nspid: 5, ancestors: [{ pid: 150, nspid: 2, binary: "/bin/sh" }] }).matched).toBe(true);
    expect(decide(ns, { pid: 200, nspid: 5, ancestors: [{ pid: 150, nspid: 1, binary: "/bin/sh" }] }).matched).toBe(false);
  });
});

describe("namespaces", () => {
  test("In / NotIn by inode number", () => {
    const c = sel(`    - matchNamespaces:\n      - namespace: Mnt\n        operator: In\n        values: ["4026531841"]`);
    expect(decide(c, { namespaces: { Mnt: 4026531841 } }).matched).toBe(true);
    expect(decide(c, { namespaces: { Mnt: 4026532000 } }).matched).toBe(false);
    const n = sel(`    - matchNamespaces:\n      - namespace: Net\n        operator: NotIn\n        values: ["4026531840"]`);
    expect(decide(n, { namespaces: { Net: 4026531840 } }).matched).toBe(false);
    expect(decide(n, { namespaces: { Net: 1 } }).matched).toBe(true);
  });

  test("host_ns: resolved at compile time when given, else a placeholder the kernel fills from init_task", () => {
    const yaml = kprobePolicy(ARG, `    - matchNamespaces:\n      - namespace: Pid\n        operator: NotIn\n        values: ["host_ns"]`);
    const known = compileYaml(yaml, { hostNamespaces: { Pid: 4026531836 } });
    expect(decide(known, { namespaces: { Pid: 4026531836 } }).matched).toBe(false);
    expect(decide(known, { namespaces: { Pid: 4026532999 } }).matched).toBe(true);
    const placeholder = compileYaml(yaml);
    expect(decide(placeholder, { namespaces: { Pid: 4026531836 }, hostNamespaces: { Pid: 4026531836 } }).matched).toBe(false);
    expect(decide(placeholder, { namespaces: { Pid: 4026532999 }, hostNamespaces: { Pid: 4026531836 } }).matched).toBe(true);
  });

  test("matchNamespaceChanges: a listed namespace differs from the one at exec", () => {
    const c = sel(`    - matchNamespaceChanges:\n      - operator: In\n        values: ["Mnt", "Net"]`);
    expect(decide(c, { namespaces: { Mnt: 2, Net: 5 }, namespacesAtExec: { Mnt: 1, Net: 5 } }).matched).toBe(true);
    expect(decide(c, { namespaces: { Mnt: 1, Net: 5, Uts: 9 }, namespacesAtExec: { Mnt: 1, Net: 5, Uts: 8 } }).matched).toBe(false);
    // NotIn: a namespace that is not listed changed.
    const n = sel(`    - matchNamespaceChanges:\n      - operator: NotIn\n        values: ["Mnt"]`);
    expect(decide(n, { namespaces: { Mnt: 2, Net: 5 }, namespacesAtExec: { Mnt: 1, Net: 5 } }).matched).toBe(false);
    expect(decide(n, { namespaces: { Mnt: 1, Net: 6 }, namespacesAtExec: { Mnt: 1, Net: 5 } }).matched).toBe(true);
    expect(decide(n, { namespaces: { Mnt: 1, Net: 5 }, namespacesAtExec: { Mnt: 1, Net: 5 } }).matched).toBe(false);
    // A namespace not recorded at exec is not compared.
    expect(decide(c, { namespaces: { Mnt: 2 }, namespacesAtExec: { Mnt: 0 } }).matched).toBe(false);
  });
});

describe("capabilities", () => {
  const admin = 1n << 21n;
  test("In: any listed capability present in the chosen set; NotIn: none", () => {
    const c = sel(`    - matchCapabilities:\n      - type: Effective\n        operator: In\n        values: ["CAP_SYS_ADMIN", "CAP_NET_RAW"]`);
    expect(decide(c, { caps: { effective: admin } }).matched).toBe(true);
    expect(decide(c, { caps: { effective: 1n, permitted: admin } }).matched).toBe(false);
    const p = sel(`    - matchCapabilities:\n      - type: Permitted\n        operator: NotIn\n        values: ["CAP_SYS_ADMIN"]`);
    expect(decide(p, { caps: { permitted: admin } }).matched).toBe(false);
    expect(decide(p, { caps: { effective: admin } }).matched).toBe(true);
  });

  test("capabilityMask() builds event cap sets from names", async () => {
    const { capabilityMask } = await import("../../src/policy/engine.ts");
    expect(capabilityMask(["CAP_SYS_ADMIN", "DAC_OVERRIDE"])).toBe(admin | 2n);
    expect(capabilityMask(["CAP_DAC_OVERRIDE"])).toBe(2n);
    expect(() => capabilityMask(["CAP_NOPE"])).toThrow("CAP_NOPE");
  });

  test("DAC_OVERRIDE (Tetragon's spelling) is bit 1", () => {
    const c = sel(`    - matchCapabilities:\n      - operator: In\n        values: ["DAC_OVERRIDE"]`);
    expect(decide(c, { caps: { effective: 2n } }).matched).toBe(true);
    expect(decide(c, { caps: { effective: 1n } }).matched).toBe(false);
  });

  test("isNamespaceCapability: tasks in the host user namespace match neither In nor NotIn", () => {
    const c = sel(`    - matchCapabilities:\n      - operator: In\n        isNamespaceCapability: true\n        values: ["CAP_SYS_ADMIN"]`);
    expect(decide(c, { caps: { effective: admin }, inHostUserNs: true }).matched).toBe(false);
    expect(decide(c, { caps: { effective: admin }, inHostUserNs: false }).matched).toBe(true);
    const n = sel(`    - matchCapabilities:\n      - operator: NotIn\n        isNamespaceCapability: true\n        values: ["CAP_SYS_ADMIN"]`);
    expect(decide(n, { caps: { effective: 0n }, inHostUserNs: true }).matched).toBe(false);
    expect(decide(n, { caps: { effective: 0n }, inHostUserNs: false }).matched).toBe(true);
  });

  test("matchCapabilityChanges: a listed capability changed since exec", () => {
    const c = sel(`    - matchCapabilityChanges:\n      - type: Effective\n        operator: In\n        values: ["CAP_SYS_ADMIN"]`);
    expect(decide(c, { caps: { effective: admin }, capsAtExec: { effective: 0n } }).matched).toBe(true);
    expect(decide(c, { caps: { effective: admin }, capsAtExec: { effective: admin } }).matched).toBe(false);
    expect(decide(c, { caps: { effective: 1n }, capsAtExec: { effective: 0n } }).matched).toBe(false);
    // NotIn: some other capability changed, none of the listed ones did.
    const n = sel(`    - matchCapabilityChanges:\n      - type: Effective\n        operator: NotIn\n        values: ["CAP_SYS_ADMIN"]`);
    expect(decide(n, { caps: { effective: 1n }, capsAtExec: { effective: 0n } }).matched).toBe(true);
    expect(decide(n, { caps: { effective: admin | 1n }, capsAtExec: { effective: 0n } }).matched).toBe(false);
    expect(decide(n, { caps: { effective: admin }, capsAtExec: { effective: admin } }).matched).toBe(false);
  });
});

describe("selector logic and actions", () => {
  test("selectors are ORed and the first match wins", () => {
    const c = compileYaml(kprobePolicy(ARG, `    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: ["1"]\n      matchActions:\n      - action: Sigkill\n    - matchArgs:\n      - index: 0\n        operator: GreaterThan\n        values: ["0"]\n      matchActions:\n      - action: Override\n        argError: -1`, "security_file_open"));
    const one = decide(c, { args: [{ int: 1 }] });
    expect(one.selector).toBe(0);
    expect(one.actions.map((a) => a.action)).toEqual(["Sigkill"]);
    const two = decide(c, { args: [{ int: 2 }] });
    expect(two.selector).toBe(1);
    expect(two.actions[0]).toMatchObject({ action: "Override", argError: -1 });
    const none = decide(c, { args: [{ int: 0 }] });
    expect(none.matched).toBe(false);
    expect(none.selector).toBeNull();
    expect(none.post).toBe(false);
  });

  test("matchers of different kinds in one selector are ANDed", () => {
    const c = sel(`    - matchArgs:\n      - index: 0\n        operator: Equal\n        values: ["1"]\n      matchBinaries:\n      - operator: In\n        values: ["/bin/sh"]`);
    expect(decide(c, { binary: "/bin/sh", args: [{ int: 1 }] }).matched).toBe(true);
    expect(decide(c, { binary: "/bin/ls", args: [{ int: 1 }] }).matched).toBe(false);
    expect(decide(c, { binary: "/bin/sh", args: [{ int: 2 }] }).matched).toBe(false);
  });

  test("a hook without selectors always posts; a selector without actions posts", () => {
    const c = compileYaml(kprobePolicy(ARG, "    []").replace("    selectors:\n    []\n", "    selectors: []\n"));
    const d = decide(c, {});
    expect(d).toMatchObject({ matched: true, selector: null, post: true });
    expect(d.actions.map((a) => a.action)).toEqual(["Post"]);
    const e = sel(`    - matchPIDs:\n      - operator: NotIn\n        values: [1]`);
    expect(decide(e, { pid: 2 }).actions.map((a) => a.action)).toEqual(["Post"]);
  });

  test("NoPost suppresses the event but keeps other actions", () => {
    const c = sel(`    - matchActions:\n      - action: NoPost\n      - action: Signal\n        argSig: 10`);
    const d = decide(c, {});
    expect(d.matched).toBe(true);
    expect(d.post).toBe(false);
    expect(d.actions[1]).toMatchObject({ action: "Signal", argSig: 10 });
  });

  test("action parameters: rate limit, stack traces, GetUrl, DnsLookup, TrackSock", () => {
    const c = sel(`    - matchActions:\n      - action: Post\n        rateLimit: "1m"\n        rateLimitScope: process\n        kernelStackTrace: true\n      - action: GetUrl\n        argUrl: "http://example.com/x"\n      - action: DnsLookup\n        argFqdn: "example.com"`);
    const a = decide(c, {}).actions;
    expect(a[0]).toMatchObject({ action: "Post", rateLimitMs: 60000, rateLimitScope: "process", kernelStackTrace: true, userStackTrace: false });
    expect(a[1]).toMatchObject({ action: "GetUrl", argUrl: "http://example.com/x" });
    expect(a[2]).toMatchObject({ action: "DnsLookup", argFqdn: "example.com" });
  });

  test("monitor mode marks enforcement actions count-only, not Post", () => {
    const yaml = kprobePolicy(ARG, `    - matchActions:\n      - action: Sigkill\n      - action: Post`);
    const enforce = compileYaml(yaml);
    expect(decide(enforce, {}).actions.map((a) => a.monitorOnly)).toEqual([false, false]);
    const monitor = compileYaml(yaml, { mode: "monitor" });
    expect(monitor.monitor).toBe(true);
    expect(decide(monitor, {}).actions.map((a) => a.monitorOnly)).toEqual([true, false]);
  });

  test("matchReturnArgs are evaluated only in the return phase", () => {
    const yaml = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ret
spec:
  kprobes:
  - call: "test_fn"
    syscall: false
    return: true
    args:
    - index: 0
      type: "int"
    returnArg:
      index: 0
      type: "int"
    selectors:
    - matchReturnArgs:
      - index: 0
        operator: "LessThan"
        values: ["0"]
      matchReturnActions:
      - action: Post
`;
    const c = compileYaml(yaml);
    const entry = decide(c, { args: [{ int: 3 }] });
    expect(entry.matched).toBe(true);
    expect(entry.returnMatched).toBe(false);
    const failed = decide(c, { args: [{ int: 3 }], returnValue: { int: -2 } });
    expect(failed.returnMatched).toBe(true);
    expect(failed.returnActions.map((a) => a.action)).toEqual(["Post"]);
    const okRet = decide(c, { args: [{ int: 3 }], returnValue: { int: 5 } });
    expect(okRet.returnMatched).toBe(false);
    expect(okRet.returnActions).toEqual([]);
  });

  test("matchData slots follow the args", () => {
    const yaml = kprobePolicy(ARG, `    - matchData:\n      - index: 0\n        operator: Prefix\n        values: ["sys"]`).replace(
      "    selectors:", "    data:\n    - index: 0\n      type: \"string\"\n      source: \"current_task\"\n      resolve: \"comm\"\n    selectors:");
    const c = compileYaml(yaml);
    expect(decide(c, { args: [{ int: 0 }, { string: "systemd" }] }).matched).toBe(true);
    expect(decide(c, { args: [{ int: 0 }, { string: "bash" }] }).matched).toBe(false);
  });

  test("tracepoint matchArgs.index names the format field an arg reads", () => {
    const yaml = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: tp
spec:
  tracepoints:
  - subsystem: "raw_syscalls"
    event: "sys_enter"
    args:
    - index: 4
      type: "int64"
    selectors:
    - matchArgs:
      - index: 4
        operator: "Equal"
        values: ["59"]
`;
    const c = compileYaml(yaml);
    expect(decide(c, { args: [{ int: 59 }] }).matched).toBe(true);
    expect(decide(c, { args: [{ int: 60 }] }).matched).toBe(false);
  });

  test("a selector label is kept in the tables", () => {
    const c = compileMutated(kprobePolicy(ARG, `    - matchPIDs:\n      - operator: In\n        values: [1]`), (p) => { firstSelector(p).label = "init-only"; });
    expect(new TextDecoder().decode(c.tables.strings.bytes)).toContain("init-only");
  });
});
