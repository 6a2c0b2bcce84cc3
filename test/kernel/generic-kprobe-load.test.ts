// generic_kprobe.o on this kernel, which may have no kprobes to attach (this host has none;
// test/vm/kprobe-vm.test.ts and agent-kprobe.test.ts attach them on Debian's 6.1): its
// programs still verify wherever BPF_PROG_TYPE_KPROBE programs load (uprobes use the same
// type), so a verifier regression in the kernel-function code shows up on every run, not
// only in the VM. What the kernel lacks is probed and asserted as the probe predicts: with no
// kprobe PMU a kernel-function policy is refused at resolution with the substitute named,
// and the sensor refuses it too; without bpf_override_return the Override program is refused
// by the verifier for that helper.
import { describe, expect } from "bun:test";
import { loadCollectionSpec, newCollection } from "../../src/bpf/collection.ts";
import { Helper, ProgType } from "../../src/bpf/constants.ts";
import { probeAttach, probeHelper, probeProgType } from "../../src/bpf/features.ts";
import { readObject } from "../../src/bpf/objects.ts";
import { VerifierError } from "../../src/bpf/program.ts";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { hostHookFeatures, resolvePolicy } from "../../src/sensors/resolve.ts";
import { kernelTest } from "../lib/host.ts";

const KPROBE_PROGRAMS = ["gen_kprobe", "gen_kretprobe", "gen_kprobe_multi", "gen_kretprobe_multi"];

const fdInstall = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: fd-install
spec:
  kprobes:
  - call: fd_install
    syscall: false
    args:
    - index: 0
      type: int
    - index: 1
      type: file
`;

describe("generic_kprobe.o on this kernel", () => {
  kernelTest("kprobe-type programs load here (what the rest of this file relies on)", () => {
    expect(probeProgType(ProgType.KPROBE).status).toBe("supported");
  });

  kernelTest("every kernel-function program verifies on generic.o's map layout (loaded, not attached)", () => {
    const spec = loadCollectionSpec(readObject("generic_kprobe"), "generic_kprobe");
    for (const name of KPROBE_PROGRAMS) {
      expect(spec.programs[name]).toBeDefined();
      const c = newCollection(spec, { programs: [name] });
      try {
        expect(c.programs[name]!.info().verifiedInsns).toBeGreaterThan(0);
      } finally {
        c.close();
      }
    }
  }, 60_000);

  kernelTest("gen_kprobe_override loads exactly when the kernel has bpf_override_return", () => {
    const spec = loadCollectionSpec(readObject("generic_kprobe"), "generic_kprobe");
    const has = probeHelper(ProgType.KPROBE, Helper.override_return).status === "supported";
    let err: unknown;
    try {
      newCollection(spec, { programs: ["gen_kprobe_override"] }).close();
    } catch (e) {
      err = e;
    }
    if (has) expect(err).toBeUndefined();
    else {
      expect(err).toBeInstanceOf(VerifierError);
      expect((err as VerifierError).logText).toContain("bpf_override_return");
    }
  }, 60_000);

  kernelTest("a kernel-function policy resolves to the kprobe PMU where there is one, else is refused with the substitute", () => {
    const v = validatePolicyText(fdInstall, "fd-install.yaml");
    const p = v.policies[0];
    if (!v.valid || p === undefined) throw new Error(JSON.stringify(v.diagnostics));
    const r = resolvePolicy(p.policy, hostHookFeatures());
    const h = r.hooks[0]!;
    if (probeAttach("kprobe").status === "supported") {
      expect(h.ok).toBe(true);
      if (h.ok) expect(h.mechanism).toStartWith("kprobe on fd_install through the kprobe PMU");
    } else {
      expect(h.ok).toBe(false);
      if (!h.ok) {
        expect(h.reason).toContain("no kprobes (CONFIG_KPROBES off)");
        expect(h.reason).toContain("substitute: security_file_open with a file argument");
      }
    }
  });
});
