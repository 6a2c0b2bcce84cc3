// What the fanotify decision thread reads per decision (engineNeeds) and when its group takes
// a pidfd per event (needsPidfd): the facts a selector needs are read, nothing else.
import { describe, expect, test } from "bun:test";
import { FanotifyGuard, engineNeeds, type FanotifyRule } from "../../src/sensors/fanotify.ts";
import { policyFrom } from "./engine-helpers.ts";

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

describe("fanotify: what a decision reads", () => {
  test("engineNeeds follows the matchers: binaries alone read no status, namespaces or ancestors", () => {
    expect(engineNeeds(sel("      matchBinaries:\n      - operator: Prefix\n        values: [/usr/]\n"))).toEqual({ ancestors: false, status: false, ns: false, atExec: false });
    expect(engineNeeds(sel("      matchBinaries:\n      - operator: In\n        followChildren: true\n        values: [/bin/sh]\n")).ancestors).toBe(true);
    expect(engineNeeds(sel("      matchParentBinaries:\n      - operator: In\n        values: [/bin/sh]\n")).ancestors).toBe(true);
    expect(engineNeeds(sel("      matchPIDs:\n      - operator: In\n        values: [1]\n"))).toEqual({ ancestors: false, status: false, ns: false, atExec: false });
    expect(engineNeeds(sel("      matchPIDs:\n      - operator: In\n        followForks: true\n        values: [1]\n")).ancestors).toBe(true);
    expect(engineNeeds(sel("      matchPIDs:\n      - operator: In\n        isNamespacePID: true\n        values: [1]\n")).status).toBe(true);
    expect(engineNeeds(sel("      matchNamespaces:\n      - namespace: Mnt\n        operator: NotIn\n        values: [host_ns]\n"))).toEqual({ ancestors: false, status: false, ns: true, atExec: false });
    expect(engineNeeds(sel("      matchCapabilities:\n      - type: Effective\n        operator: In\n        values: [CAP_SYS_ADMIN]\n"))).toEqual({ ancestors: false, status: true, ns: true, atExec: false });
    expect(engineNeeds(sel("      matchNamespaceChanges:\n      - operator: In\n        values: [Mnt]\n"))).toEqual({ ancestors: false, status: false, ns: true, atExec: true });
    expect(engineNeeds(sel("      matchCapabilityChanges:\n      - type: Effective\n        operator: In\n        values: [CAP_SYS_ADMIN]\n"))).toEqual({ ancestors: false, status: true, ns: true, atExec: true });
  });

  test("needsPidfd: kill, engine and scoped groups take a pidfd; deny and report rules (posting or not) do not", () => {
    const rule = (r: Partial<FanotifyRule>): FanotifyRule => ({ action: "deny", post: true, target: "open", ...r });
    expect(FanotifyGuard.needsPidfd([rule({})], false)).toBe(false);
    expect(FanotifyGuard.needsPidfd([rule({ action: "report" })], false)).toBe(false);
    expect(FanotifyGuard.needsPidfd([rule({}), rule({ action: "kill" })], false)).toBe(true);
    expect(FanotifyGuard.needsPidfd([rule({ engine: { hookIndex: 0, selector: 0, fileSlot: 0 } })], false)).toBe(true);
    expect(FanotifyGuard.needsPidfd([rule({})], true)).toBe(true);
  });
});
