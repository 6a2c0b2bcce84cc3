// Resolution on a kernel with BPF LSM (a literal HookFeatures: Debian's 6.1 cloud kernel) and
// on this host kind without it: which hooks BPF LSM holds, the mechanism each one names, how
// Override (argError), Sigkill and Post are honored there, and that the refusals with their
// substitutes stay where BPF LSM does not load.
import { describe, expect, test } from "bun:test";
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
