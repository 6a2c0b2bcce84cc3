// Hook resolution with --keep-sensors-on-exit (HookFeatures.keepSensors): every resolved hook
// says what holds it after the agent exits; fanotify's enforcing rules get the file guard
// backstop, and an Override rule says up front that the backstop kills instead of failing the
// call; what nothing pinned can hold (a Prefix directory on fanotify) is refused
// with the reason and the substitute. Also the binary ids adopted from pins.
import { describe, expect, test } from "bun:test";
import { BinaryInterner, compilePolicy } from "../../src/policy/engine.ts";
import { explainCompiled } from "../../src/policy/explain.ts";
import { withScope } from "../../src/cli/commands/policy-explain.ts";
import { resolvePolicy, type HookFeatures, type HookResolution, type ResolvedHook } from "../../src/sensors/resolve.ts";
import { policyFrom } from "./engine-helpers.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";

const syscallNumber = (n: string): number | undefined => ({ open: 2, openat: 257, openat2: 437, creat: 85, open_by_handle_at: 304, connect: 42 } as Record<string, number>)[n] ?? 999;
const FAN: HookFeatures = { release: "6.18.44", bpfLsm: false, kprobes: false, overrideReturn: false, tracepoint: () => true, syscallNumber, fanotify: { pidfd: true }, cgroupSockAddr: () => ({ root: "/sys/fs/cgroup/unified" }) };
const KEEP: HookFeatures = { ...FAN, keepSensors: true };
const OVERRIDE = "Override\n        argError: -1";
const talk = (action: string, operator: "Equal" | "Prefix" = "Equal", file = "/my/extremely/secret/file") => policyFrom(secureOpenPolicy({ name: "p", file, allowed: "/my/cat", action, operator }));

function ok(h: HookResolution | undefined): ResolvedHook {
  if (h === undefined || !h.ok) throw new Error(`expected a resolved hook, got ${h === undefined ? "nothing" : h.reason}`);
  return h;
}

const openat = policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: g
spec:
  kprobes:
  - call: sys_openat
    syscall: true
    args:
    - index: 1
      type: string
    selectors:
    - matchArgs:
      - index: 1
        operator: Equal
        values: ["/etc/shadow"]
      matchActions:
      - action: Sigkill
`);

const connect = policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: c
spec:
  kprobes:
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
      matchActions:
      - action: Sigkill
`);

describe("resolution with --keep-sensors-on-exit", () => {
  test("fanotify Override: FAN_DENY while the agent runs; after it exits the backstop kills, said per action and per hook", () => {
    const h = ok(resolvePolicy(talk(OVERRIDE), KEEP).hooks[0]);
    expect(h.backend).toBe("fanotify");
    expect(h.actions[0]?.honored).toStartWith("Override → FAN_DENY");
    expect(h.actions[0]?.afterExit).toContain("cannot fail the open on this kernel (no BPF LSM), so it kills instead: SIGKILL at the exit of the open-family syscall");
    expect(h.actions[0]?.afterExit).toContain("O_TRUNC/creat already truncated the file");
    expect(h.afterExit).toContain("the file guard backstop (pinned under --bpf-dir when the policy was applied) holds the Sigkill and Override rules");
    expect(h.limits[0]).toContain("from then on the file guard backstop");
  });

  test("fanotify Sigkill: a kill before the open while the agent runs, after the open once it exited", () => {
    const h = ok(resolvePolicy(talk("Sigkill"), KEEP).hooks[0]);
    expect(h.actions[0]?.honored).toContain("kill before the answer");
    expect(h.actions[0]?.afterExit).toContain("the pinned file guard backstop sends SIGKILL at the exit of the open-family syscall");
  });

  test("without the flag nothing outlives the agent, and nothing claims to", () => {
    const h = ok(resolvePolicy(talk(OVERRIDE), FAN).hooks[0]);
    expect(h.actions[0]?.afterExit).toBeUndefined();
    expect(h.afterExit).toBe("nothing: the fanotify group ends with the agent (run with --keep-sensors-on-exit for a pinned backstop)");
    expect(ok(resolvePolicy(openat, FAN).hooks[0]).afterExit).toStartWith("nothing: the agent detaches it when it exits");
  });

  test("generic and guard hooks stay pinned as they are", () => {
    expect(ok(resolvePolicy(openat, KEEP).hooks[0]).afterExit).toStartWith("the same: the generic sensor's programs, maps and links are pinned under --bpf-dir");
    const { fanotify: _f, ...guardOnly } = KEEP;
    const g = ok(resolvePolicy(talk("Sigkill"), guardOnly).hooks[0]);
    expect(g.backend).toBe("guard");
    expect(g.afterExit).toStartWith("the same: its file guard's programs, maps and links are pinned");
  });

  test("a Prefix directory on fanotify has no pinned backstop: refused with the flag, with the substitute", () => {
    expect(resolvePolicy(talk(OVERRIDE, "Prefix", "/my/extremely/secret/"), FAN).errors).toEqual([]);
    const r = resolvePolicy(talk(OVERRIDE, "Prefix", "/my/extremely/secret/"), KEEP);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain("a Prefix directory (/my/extremely/secret/) has none; list the files with Equal, or run without --keep-sensors-on-exit");
  });

  test("the cgroup socket hooks are pinned with the flag: resolved, and each says its pinned cgroup links hold it after the agent exits", () => {
    const without = ok(resolvePolicy(connect, FAN).hooks[0]);
    expect(without.afterExit).toStartWith("nothing: the agent detaches it when it exits");
    const r = resolvePolicy(connect, KEEP);
    expect(r.errors).toEqual([]);
    const h = ok(r.hooks[0]);
    expect(h.backend).toBe("sock");
    expect(h.afterExit).toContain("cgroup links, programs and maps are pinned under --bpf-dir");
  });
});

describe("what no pin can hold exactly is refused with the flag", () => {
  const uprobe = policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: u
spec:
  uprobes:
  - path: /bin/bash
    symbols: [readline]
    selectors:
    - matchActions:
      - action: Sigkill
`);
  const UP: HookFeatures = { ...FAN, uprobes: { fileOffset: () => 0xd4f20, digest: (_p, a) => `${a}:${"ab".repeat(32)}` } };

  test("uprobe links are pinned per policy and target: resolved with the flag, and the hook says its pinned link holds it after the agent exits", () => {
    const without = ok(resolvePolicy(uprobe, UP).hooks[0]);
    expect(without.backend).toBe("generic");
    expect(without.afterExit).toStartWith("nothing: the agent detaches it when it exits");
    const r = resolvePolicy(uprobe, { ...UP, keepSensors: true });
    expect(r.errors).toEqual([]);
    const h = ok(r.hooks[0]);
    expect(h.backend).toBe("generic");
    expect(h.event).toBe("process_uprobe");
    expect(h.afterExit).toContain("gen_uprobe, its link on each target (pinned per policy and target)");
  });

  test("a fanotify rule the userspace engine decides has no exact backstop: refused with the flag", () => {
    const parents = policyFrom(secureOpenPolicy({ name: "p", file: "/my/extremely/secret/file", allowed: "/my/cat", action: "Sigkill", operator: "Equal" }).replace("matchBinaries:", "matchParentBinaries:"));
    const h = ok(resolvePolicy(parents, FAN).hooks[0]);
    expect(h.fanotify?.evaluator).toBe("engine");
    const r = resolvePolicy(parents, KEEP);
    expect(r.errors).toHaveLength(1);
    expect(r.errors[0]).toContain("decided by the policy engine in userspace (matchParentBinaries, followChildren, matchNamespaces or matchCapabilities), which no pinned program evaluates");
  });
});

describe("ward policy explain --keep-sensors-on-exit on a scoped policy", () => {
  test("says the agent refuses it under the flag, and why; without the flag the kernel scope as before", () => {
    const yaml = secureOpenPolicy({ name: "p", file: "/my/extremely/secret/file", allowed: "/my/cat" }).replace("spec:\n", "spec:\n  containerSelector:\n    matchLabels:\n      id: 0123456789abcdef\n");
    const policy = policyFrom(yaml);
    const e = explainCompiled(compilePolicy(policy));
    expect(withScope(e, policy, { keepSensors: true }).scope).toEndWith(": refused by an agent run with --keep-sensors-on-exit (the scope's membership is kept by the agent as containers start and stop; after it died the membership would be frozen and later containers silently not covered)");
    expect(withScope(e, policy).scope).toContain("decided in the kernel by cgroup v2 id");
    expect(withScope(e, talk("Sigkill"), { keepSensors: true }).scope).toBeUndefined();
  });
});

describe("binary ids adopted from pins", () => {
  test("seeded ids are kept and new paths get ids above them; a conflicting seed is refused", () => {
    const b = new BinaryInterner();
    b.seed("/usr/bin/a", 7);
    b.seed("/usr/bin/a", 7);
    expect(b.id("/usr/bin/a")).toBe(7);
    expect(b.id("/usr/bin/new")).toBe(8);
    expect(() => b.seed("/usr/bin/a", 3)).toThrow(/interned as 7/);
    expect(() => b.seed("/usr/bin/other", 8)).toThrow(/binary id 8 is \/usr\/bin\/new's/);
  });
});
