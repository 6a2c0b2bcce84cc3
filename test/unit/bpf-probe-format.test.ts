import { expect, test } from "bun:test";
import { formatReport } from "../../src/cli/commands/probe.ts";
import type { FeatureReport } from "../../src/bpf/features.ts";

test("ward probe's table shows each feature, refusals with their errno and reason", () => {
  const r: FeatureReport = {
    kernel: { release: "6.18.0", arch: "x64", btf: true },
    programTypes: { tracing: { status: "supported" } },
    mapTypes: { ringbuf: { status: "supported" } },
    helpers: { "kprobe/override_return": { status: "unsupported", errno: 22, code: "EINVAL", reason: "cannot use helper" } },
    attach: { lsm: { status: "refused", errno: 1, code: "EPERM", reason: "not permitted" }, tp_btf: { status: "supported" } },
    lsm: { active: ["lockdown", "bpf"], bpfListed: true },
  };
  const text = formatReport(r);
  expect(text).toContain("kernel 6.18.0 (x64), BTF yes, active LSMs: lockdown,bpf");
  expect(text).toMatch(/lsm\s+refused \(EPERM\)\s+not permitted/);
  expect(text).toMatch(/tp_btf\s+yes/);
  expect(text).toMatch(/kprobe\/override_return\s+no\s+cannot use helper/);
});
