// Hook resolution for the fanotify backend (src/sensors/resolve.ts): on a kernel described
// with fanotify permission events and no BPF LSM, exact-file open and exec rules go to
// fanotify, with Override and Sigkill honored before the open; what fanotify cannot express
// keeps its earlier mechanism (and refusals); BPF LSM stays first where it loads.
import { describe, expect, test } from "bun:test";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { resolvePolicy, type HookFeatures, type HookResolution, type ResolvedHook } from "../../src/sensors/resolve.ts";
import { policyFrom } from "./engine-helpers.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";

const syscallNumber = (n: string): number | undefined => ({ open: 2, openat: 257, openat2: 437, creat: 85, open_by_handle_at: 304 } as Record<string, number>)[n] ?? 999;
const FAN: HookFeatures = { release: "6.18.44", bpfLsm: false, kprobes: false, overrideReturn: false, tracepoint: () => true, syscallNumber, fanotify: { pidfd: true } };
const LSM: HookFeatures = { ...FAN, release: "6.1.0-30-cloud-amd64", bpfLsm: true };
const NO_FAN: HookFeatures = { release: "6.18.44", bpfLsm: false, kprobes: false, overrideReturn: false, tracepoint: () => true, syscallNumber };

const OVERRIDE = "Override\n        argError: -1";
const talk = (action: string, operator: "Equal" | "Prefix" = "Equal") => policyFrom(secureOpenPolicy({ name: "p", file: "/my/extremely/secret/file", allowed: "/my/cat", action, operator }));

function ok(h: HookResolution | undefined): ResolvedHook {
  if (h === undefined || !h.ok) throw new Error(`expected a resolved hook, got ${h === undefined ? "nothing" : h.reason}`);
  return h;
}

describe("resolution: fanotify for exact-file rules without BPF LSM", () => {
  test("the talk's Override policy: fanotify, FAN_DENY/EPERM, the mechanism and limits say where and how long", () => {
    const r = resolvePolicy(talk(OVERRIDE), FAN);
    expect(r.errors).toEqual([]);
    const h = ok(r.hooks[0]);
    expect(h.backend).toBe("fanotify");
    expect(h.guard).toBeUndefined();
    expect(h.generic).toBeUndefined();
    expect(h.mechanism).toStartWith("fanotify (FAN_OPEN_PERM on the inode of each file");
    expect(h.fanotify).toEqual({ target: "open", failMode: "deny", answerMs: 100, rules: [{ selector: 0, action: "deny", post: true, actionNames: ["Override"], binaries: { op: "NotIn", paths: ["/my/cat"] }, files: ["/my/extremely/secret/file"], prefixes: [] }], evaluator: "rules", fileSlot: 0 });
    expect(h.actions[0]?.honored).toStartWith("Override → FAN_DENY: the open fails with EPERM");
    expect(h.limits.join("\n")).toContain("ends with the agent");
    // no rule kills: the group takes no pidfd per event, and says why that verifies nothing lost
    expect(h.limits.join("\n")).toContain("no pidfd is taken");
    const kill = ok(resolvePolicy(talk("Sigkill"), FAN).hooks[0]);
    expect(kill.limits.join("\n")).toContain("verified against the event's pidfd");
  });

  test("Override + Sigkill (the talk's secure policy as written) and Sigkill alone: kill before the answer", () => {
    for (const action of [`${OVERRIDE}\n      - action: Sigkill`, "Sigkill", "Signal\n        argSig: 9"]) {
      const h = ok(resolvePolicy(talk(action), FAN).hooks[0]);
      expect(h.backend).toBe("fanotify");
      expect(h.fanotify?.rules[0]?.action).toBe("kill");
      expect(h.actions.some((a) => a.honored.startsWith("Sigkill → kill before the answer: SIGKILL through the opener's pidfd"))).toBe(true);
    }
  });

  test("without FAN_REPORT_PIDFD the limits say the pid is not verified", () => {
    const h = ok(resolvePolicy(talk(OVERRIDE), { ...FAN, fanotify: { pidfd: false } }).hooks[0]);
    expect(h.limits.join("\n")).toContain("not verified against a pidfd");
    expect(h.actions[0]?.honored).toContain("FAN_DENY");
  });

  test("monitor mode: the rule reports and allows", () => {
    const h = ok(resolvePolicy(talk(OVERRIDE), FAN, "monitor").hooks[0]);
    expect(h.fanotify?.rules[0]?.action).toBe("report");
    expect(h.actions[0]?.honored).toContain("monitor mode");
  });

  test("security_bprm_check: FAN_OPEN_EXEC_PERM only", () => {
    const p = policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: x
spec:
  kprobes:
  - call: security_bprm_check
    syscall: false
    args:
    - index: 0
      type: linux_binprm
    selectors:
    - matchArgs:
      - index: 0
        operator: Equal
        values: ["/usr/bin/nc"]
      matchActions:
      - action: Override
        argError: -1
`);
    const h = ok(resolvePolicy(p, FAN).hooks[0]);
    expect(h.backend).toBe("fanotify");
    expect(h.fanotify?.target).toBe("exec");
    expect(h.mechanism).toContain("FAN_OPEN_EXEC_PERM");
    expect(h.actions[0]?.honored).toContain("the exec fails with EPERM");
  });

  test("what fanotify cannot express keeps its mechanism: Prefix to the open-exit sensor, argError -2 and rate limits to the guard (refused there)", () => {
    // a string prefix (not a directory, no trailing "/") is compared as a path by the open-exit check
    expect(ok(resolvePolicy(talk("Sigkill", "Prefix"), FAN).hooks[0]).backend).toBe("generic");
    const e2 = resolvePolicy(talk("Override\n        argError: -2"), FAN);
    expect(e2.errors[0]).toContain("Override needs BPF LSM or fmod_ret");
    expect(e2.errors[0]).toContain("fanotify (available here) holds Override for rules it can express");
    // a rate-limited Post is not fanotify's either: the guard takes it, and says it cannot
    expect(resolvePolicy(talk("Post\n        rateLimit: 1m"), FAN).errors[0]).toContain("not supported by the file guard");
  });

  test("Prefix on a directory (\"/dir/\"): fanotify, directory marks, new subdirectories marked as they appear (and the window before)", () => {
    const p = policyFrom(secureOpenPolicy({ name: "p", file: "/my/extremely/", allowed: "/my/cat", action: OVERRIDE, operator: "Prefix" }));
    const h = ok(resolvePolicy(p, FAN).hooks[0]);
    expect(h.backend).toBe("fanotify");
    expect(h.fanotify?.rules[0]?.prefixes).toEqual(["/my/extremely/"]);
    expect(h.fanotify?.rules[0]?.files).toEqual([]);
    expect(h.mechanism).toContain("FAN_EVENT_ON_CHILD");
    expect(h.mechanism).toContain("FAN_CREATE/FAN_MOVED_TO watch");
    expect(h.limits.join("\n")).toContain("a subdirectory made after the policy is marked when its creation event is read");
    expect(h.limits.join("\n")).toContain("before that mark lands is not held");
  });

  test("BPF LSM stays first where it loads; without fanotify Override is refused as before", () => {
    expect(ok(resolvePolicy(talk(OVERRIDE), LSM).hooks[0]).backend).toBe("guard");
    expect(resolvePolicy(talk(OVERRIDE), NO_FAN).errors[0]).toContain("Override needs BPF LSM or fmod_ret");
  });

  test("spec.options fanotify-fail-mode and fanotify-answer-ms set the plan and are validated", () => {
    const yaml = `${secureOpenPolicy({ name: "p", file: "/f", allowed: "/my/cat", action: OVERRIDE })}  options:\n  - name: fanotify-fail-mode\n    value: allow\n  - name: fanotify-answer-ms\n    value: "250"\n`;
    const h = ok(resolvePolicy(policyFrom(yaml), FAN).hooks[0]);
    expect(h.fanotify?.failMode).toBe("allow");
    expect(h.fanotify?.answerMs).toBe(250);
    expect(h.limits.join("\n")).toContain("within 250 ms");
    const bad = validatePolicyText(yaml.replace("value: allow", "value: maybe").replace('value: "250"', 'value: "0"'), "bad.yaml");
    const msgs = bad.diagnostics.filter((d) => d.severity === "error").map((d) => `${d.path}: ${d.message}`);
    expect(msgs).toEqual([
      'spec.options[0].value: option fanotify-fail-mode takes "deny" or "allow", found "maybe"',
      'spec.options[1].value: option fanotify-answer-ms takes a whole number of milliseconds from 1 to 99999, found "0"',
    ]);
  });

  test("namespaces, capabilities, parents, followChildren: the engine evaluator; *Changes matchers: the file guard, saying why", () => {
    const sel = (extra: string) => policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: p
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
        values: ["/my/extremely/secret/file"]
${extra}      matchActions:
      - action: Override
        argError: -1
`);
    for (const extra of [
      "      matchNamespaces:\n      - namespace: Mnt\n        operator: NotIn\n        values: [host_ns]\n",
      "      matchCapabilities:\n      - type: Effective\n        operator: In\n        values: [CAP_SYS_ADMIN]\n",
      "      matchParentBinaries:\n      - operator: In\n        values: [/bin/sh]\n",
      "      matchBinaries:\n      - operator: In\n        followChildren: true\n        values: [/bin/sh]\n",
    ]) {
      const h = ok(resolvePolicy(sel(extra), FAN).hooks[0]);
      expect(h.backend).toBe("fanotify");
      expect(h.fanotify?.evaluator).toBe("engine");
      expect(h.fanotify?.rules[0]?.binaries).toBeUndefined();
      expect(h.mechanism).toContain("policy engine's userspace evaluate()");
    }
    const simple = ok(resolvePolicy(sel("      matchBinaries:\n      - operator: NotIn\n        values: [/my/cat]\n"), FAN).hooks[0]);
    expect(simple.fanotify?.evaluator).toBe("rules");
    const changes = resolvePolicy(sel("      matchNamespaceChanges:\n      - operator: In\n        values: [Mnt]\n"), FAN);
    const r = changes.hooks[0]!;
    if (r.ok) {
      expect(r.backend).not.toBe("fanotify");
      expect(r.limits[0]).toContain("not held by fanotify (which holds file rules here): selector 0: matchNamespaceChanges/matchCapabilityChanges compare with the values recorded at exec");
    } else {
      // the fallback refuses Override here; the reason says why fanotify did not take it either
      expect(r.reason).toContain("(not held by fanotify either: selector 0: matchNamespaceChanges/matchCapabilityChanges compare with the values recorded at exec");
    }
  });

  test("with the process sensor's map: matchPIDs and the *Changes matchers on fanotify's engine, each selector's sources named; isNamespacePID with followForks stays at the syscall exit", () => {
    const MAP: HookFeatures = { ...FAN, fanotify: { pidfd: true, processMap: true } };
    const sel = (extra: string) => policyFrom(`apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: p
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
        values: ["/my/extremely/secret/file"]
${extra}      matchActions:
      - action: Override
        argError: -1
`);
    const cases: [string, string][] = [
      ["      matchPIDs:\n      - operator: In\n        values: [42]\n", "matchPIDs: the event's pid, verified by its pidfd"],
      ["      matchPIDs:\n      - operator: NotIn\n        followForks: true\n        values: [42]\n", "followForks over the /proc ppid chain"],
      ["      matchNamespaceChanges:\n      - operator: In\n        values: [Mnt]\n", "matchNamespaceChanges: /proc/PID/ns/* now against the exec record's namespaces in ward_procs"],
      ["      matchCapabilityChanges:\n      - type: Effective\n        operator: In\n        values: [CAP_SYS_ADMIN]\n", "matchCapabilityChanges: /proc/PID/status now against the exec record's capabilities in ward_procs"],
      ["      matchBinaries:\n      - operator: Prefix\n        values: [/usr/]\n", "matchBinaries: the exec record's binary in ward_procs (/proc/PID/exe when the map has none)"],
    ];
    for (const [extra, names] of cases) {
      const h = ok(resolvePolicy(sel(extra), MAP).hooks[0]);
      expect(h.backend).toBe("fanotify");
      expect(h.fanotify?.evaluator).toBe("engine");
      expect(h.mechanism).toContain("exec records in the kernel process map ward_procs");
      expect(h.limits.find((l) => l.startsWith("selector 0: "))).toContain(names);
    }
    // without the map, matchPIDs is still the engine's (the pid needs no exec record); the *Changes matchers are not
    expect(ok(resolvePolicy(sel(cases[0]![0]), FAN).hooks[0]).backend).toBe("fanotify");
    expect(ok(resolvePolicy(sel(cases[0]![0]), FAN).hooks[0]).mechanism).toContain("the opener's binary from /proc/PID/exe");
    const noMap = resolvePolicy(sel(cases[2]![0]), FAN).hooks[0]!;
    if (noMap.ok) expect(noMap.backend).not.toBe("fanotify");
    // under --keep-sensors-on-exit they stay where they were held before, pinned (engine-decided fanotify rules are refused there)
    const kept = resolvePolicy(sel(cases[0]![0]), { ...MAP, keepSensors: true }).hooks[0]!;
    if (kept.ok) {
      expect(kept.backend).not.toBe("fanotify");
      expect(kept.limits[0]).toContain("with --keep-sensors-on-exit, matchPIDs/matchNamespaceChanges/matchCapabilityChanges stay at the open-family syscall exit");
    } else {
      expect(kept.reason).toContain("with --keep-sensors-on-exit, matchPIDs/matchNamespaceChanges/matchCapabilityChanges stay at the open-family syscall exit");
    }
    const nsFollow = resolvePolicy(sel("      matchPIDs:\n      - operator: In\n        isNamespacePID: true\n        followForks: true\n        values: [1]\n"), MAP).hooks[0]!;
    if (nsFollow.ok) {
      expect(nsFollow.backend).not.toBe("fanotify");
      expect(nsFollow.limits[0]).toContain("matchPIDs isNamespacePID with followForks is held at the open-family syscall exit");
    } else {
      expect(nsFollow.reason).toContain("matchPIDs isNamespacePID with followForks is held at the open-family syscall exit");
    }
  });
});
