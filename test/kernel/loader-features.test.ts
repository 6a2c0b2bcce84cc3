// Feature probes against this kernel, and `ward probe --json` as a user runs it.
import { describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { kernelTest } from "../lib/host.ts";
import { Helper, MapType, ProgType } from "../../src/bpf/constants.ts";
import {
  bpfLsmActive,
  probeAll,
  probeAttach,
  probeHelper,
  probeMapType,
  probeProgType,
  resetFeatureCache,
  type FeatureReport,
} from "../../src/bpf/features.ts";

const ROOT = resolve(import.meta.dir, "../..");

/** What this machine kind is known to offer (design.md, "Kernel facts"). */
function expectThisKernel(r: FeatureReport): void {
  expect(r.attach.tp_btf?.status).toBe("supported");
  expect(r.attach.raw_tracepoint?.status).toBe("supported");
  expect(r.attach.cgroup?.status).toBe("supported");
  expect(r.attach.lsm).toMatchObject({ status: "refused", errno: 1, code: "EPERM" });
  expect(r.attach.fentry).toMatchObject({ status: "refused", code: "EPERM" });
  expect(r.attach.kprobe?.status).toBe("unsupported");
  expect(r.attach.uprobe?.status).toBe("supported");
  expect(r.programTypes.tracing?.status).toBe("supported");
  expect(r.programTypes.cgroup_sock_addr?.status).toBe("supported");
  expect(r.programTypes.lsm).toMatchObject({ status: "refused", code: "EPERM" });
  expect(r.mapTypes.ringbuf?.status).toBe("supported");
  expect(r.mapTypes.lpm_trie?.status).toBe("supported");
  expect(r.helpers["tracing/send_signal"]?.status).toBe("supported");
  expect(r.helpers["kprobe/override_return"]?.status).toBe("unsupported");
  expect(r.kernel.btf).toBe(true);
}

describe("feature probes", () => {
  kernelTest("probeAll reports tp_btf and cgroup supported, LSM refused with EPERM", () => {
    resetFeatureCache();
    const r = probeAll();
    expectThisKernel(r);
    expect(JSON.parse(JSON.stringify(r))).toEqual(r);
    expect(r.lsm.bpfListed).toBe(bpfLsmActive());
  });

  kernelTest("definitive answers are cached, refusals are probed again", () => {
    resetFeatureCache();
    const a = probeAttach("tp_btf");
    expect(probeAttach("tp_btf")).toBe(a);
    const l = probeAttach("lsm");
    const l2 = probeAttach("lsm");
    expect(l2).not.toBe(l);
    expect(l2).toEqual(l);
    const u = probeHelper(ProgType.KPROBE, Helper.override_return);
    expect(u.status).toBe("unsupported");
    expect(probeHelper(ProgType.KPROBE, Helper.override_return)).toBe(u);
  });

  kernelTest("unknown types answer unsupported (EINVAL), not an exception", () => {
    expect(probeProgType(200 as ProgType)).toMatchObject({ status: "unsupported", code: "EINVAL" });
    expect(probeMapType(200 as MapType)).toMatchObject({ status: "unsupported", code: "EINVAL" });
    expect(probeHelper(ProgType.SOCKET_FILTER, 100_000)).toMatchObject({ status: "unsupported" });
  });
});

describe("ward probe", () => {
  kernelTest("--json prints the report; without it a readable table", async () => {
    const json = Bun.spawn([process.execPath, "src/cli/main.ts", "probe", "--json"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(json.stdout).text(), new Response(json.stderr).text(), json.exited]);
    expect(err).toBe("");
    expect(code).toBe(0);
    expectThisKernel(JSON.parse(out) as FeatureReport);

    const table = Bun.spawn([process.execPath, "src/cli/main.ts", "probe"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const text = await new Response(table.stdout).text();
    expect(await table.exited).toBe(0);
    expect(text).toMatch(/tp_btf\s+yes/);
    expect(text).toMatch(/lsm\s+refused \(EPERM\)/);
  });

  test("unknown flags are usage errors", async () => {
    const p = Bun.spawn([process.execPath, "src/cli/main.ts", "probe", "--bogus"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
    const err = await new Response(p.stderr).text();
    expect(await p.exited).toBe(2);
    expect(err).toContain("unknown flag --bogus");
  });
});
