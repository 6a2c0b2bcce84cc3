// The generic sensor's kernel-function kprobes on Debian's 6.1 kernel under qemu (this host
// has no kprobes), without the agent: test/vm/guest/kprobe.ts resolves policies with the
// guest's own hostHookFeatures(), applies them through GenericBackend (the agent's path) and
// triggers them with real processes (file, cred, sock, skb and path arguments and a kretprobe);
// one boot, every step a record with its duration.
import { describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";
import { accelSummary, binaryWithLibs, buildInitramfs, busyboxEntries, compileGuest, ensureVmKernel, ensureVmTools, initScript, runVm, vmCacheDir, type VmRecord, type VmRun } from "../../build/vm.ts";
import { kernelTest } from "../lib/host.ts";
import { HELPER_TOOLCHAIN } from "./image.ts";

const VM_TIMEOUT_MS = 900_000;
let vm: VmRun | undefined;

async function runKprobeVm(): Promise<VmRun> {
  ensureVmTools();
  ensureSystemPackages(HELPER_TOOLCHAIN);
  const kernel = ensureVmKernel();
  const work = mkdtempSync(join(vmCacheDir(), "kprobe-"));
  try {
    const guest = compileGuest(join(import.meta.dir, "guest", "kprobe.ts"), join(work, "ward-kprobe-guest"));
    const helper = join(work, "kprobe-helper");
    const cc = spawnSync("cc", ["-O2", "-static", "-o", helper, join(import.meta.dir, "kprobe-helper.c")], { encoding: "utf8" });
    if (cc.status !== 0) throw new Error(`cc kprobe-helper.c failed: ${cc.stderr}`);
    const initrd = buildInitramfs(
      [
        ...busyboxEntries(),
        ...binaryWithLibs(guest, "/ward/guest"),
        { path: "/bin/kprobe-helper", file: helper, mode: 0o755 },
        { path: "/init", data: initScript("ip link set lo up; /ward/guest"), mode: 0o755 },
      ],
      join(work, "initramfs.cpio.gz"),
    );
    return await runVm({ kernel, initramfs: initrd, timeoutMs: VM_TIMEOUT_MS });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

function record(name: string): VmRecord {
  if (vm === undefined) throw new Error("the VM did not run (see the first test)");
  const r = vm.records.find((x) => x.kind === "check" && x.name === name);
  if (r === undefined) throw new Error(`no record for ${name}; records: ${JSON.stringify(vm.records).slice(-3000)}\nconsole tail:\n${vm.console.slice(-3000)}`);
  if (typeof r.error === "string") throw new Error(`${name} failed in the VM: ${r.error}`);
  return r;
}

type Json = Record<string, unknown>;

function events(policy: string): Json[] {
  return ((record("events").events as Json[] | undefined) ?? []).filter((e) => e.policy === policy);
}

describe("kernel-function kprobes on Debian 6.1 in qemu (generic sensor, no agent)", () => {
  kernelTest(
    "the VM boots and the guest runs to the end",
    async () => {
      vm = await runKprobeVm();
      process.stderr.write(`kprobe VM: ${accelSummary(vm)}; steps: ${JSON.stringify(vm.records.filter((r) => r.kind === "check" && typeof r.ms === "number").map((r) => [r.name, r.ms]))}\n`);
      expect(vm.records.find((r) => r.kind === "boot")?.release).toMatch(/^6\.1\./);
      expect(vm.records.some((r) => r.kind === "guest-end")).toBe(true);
    },
    VM_TIMEOUT_MS + 120_000,
  );

  kernelTest("the guest's kernel has kprobes, no kprobe.multi (CONFIG_FPROBE off) and no bpf_override_return: probed, as resolution sees them", () => {
    const f = record("features");
    expect(f.kprobes).toBe(true);
    expect(f.kprobeMulti).toBe(false);
    expect(f.overrideReturn).toBe(false);
  });

  kernelTest("every policy applies with a kprobe through the kprobe PMU", () => {
    for (const [id, fn] of [["fd-install", "fd_install"], ["commit-creds", "commit_creds"], ["tcp-connect", "tcp_connect"], ["file-permission", "security_file_permission"], ["ip-output", "ip_output"], ["vfs-truncate", "vfs_truncate"]] as const) {
      const r = record(`apply-${id}`);
      expect(String((r.mechanisms as string[])[0])).toContain(`kprobe on ${fn} through the kprobe PMU`);
    }
  });

  kernelTest("fd_install: the helper's fd and the opened file's path (Prefix held in the kernel)", () => {
    const fd = Number(/^fd (\d+)/.exec(String((record("triggers").open as Json).stdout))?.[1]);
    const e = events("fd-install");
    expect(e.length).toBeGreaterThanOrEqual(1);
    expect(e.every((x) => String(((x.args as Json[])[1]!.file_arg as Json).path).startsWith("/tmp/kp-"))).toBe(true);
    expect(e.some((x) => (x.args as Json[])[0]!.int_arg === fd && ((x.args as Json[])[1]!.file_arg as Json).path === "/tmp/kp-file")).toBe(true);
  });

  kernelTest("commit_creds: the setuid's new credentials (cred read with CO-RE on 6.1)", () => {
    const creds = events("commit-creds").map((x) => (x.args as Json[])[0]!.process_credentials_arg as Json);
    expect(creds.some((c) => c.uid === 4321 && c.euid === 4321 && c.suid === 4321 && c.fsuid === 4321)).toBe(true);
  });

  kernelTest("tcp_connect: sock_arg with the helper's addresses and ports", () => {
    const m = /^sport (\d+) dport (\d+)/.exec(String((record("triggers").connect as Json).stdout));
    const e = events("tcp-connect");
    expect(e.length).toBeGreaterThanOrEqual(1);
    expect((e[0]!.args as Json[])[0]!.sock_arg).toMatchObject({ family: "AF_INET", type: "SOCK_STREAM", protocol: "IPPROTO_TCP", saddr: "127.0.0.1", daddr: "127.0.0.1", sport: Number(m?.[1]), dport: Number(m?.[2]), state: "TCP_SYN_SENT" });
  });

  kernelTest("security_file_permission with return: true: the kretprobe's event carries the file, MAY_READ and the return value", () => {
    const e = events("file-permission");
    expect(e.length).toBeGreaterThanOrEqual(1);
    const x = e.find((y) => ((y.args as Json[])[0]!.file_arg as Json).path === "/etc/kp-watched")!;
    expect((x.args as Json[])[1]).toEqual({ int_arg: 4 });
    expect(x.ret).toEqual({ int_arg: 0 });
  });

  kernelTest("ip_output: skb_arg with the datagram's addresses, ports and protocol (DPort held in the kernel)", () => {
    const sport = Number(/^sport (\d+)/.exec(String((record("triggers").udp as Json).stdout))?.[1]);
    expect(sport).toBeGreaterThan(0);
    const e = events("ip-output");
    expect(e.length).toBeGreaterThanOrEqual(1);
    const skbs = e.map((x) => (x.args as Json[])[0]!.skb_arg as Json);
    // only the helper's datagram to 7777 passes the DPort selector
    expect(skbs.every((s) => s.dport === 7777)).toBe(true);
    expect(skbs).toContainEqual(expect.objectContaining({ saddr: "127.0.0.1", daddr: "127.0.0.1", sport, dport: 7777, proto: 17, family: "AF_INET" }));
  });

  kernelTest("vfs_truncate: path_arg with the truncated file's full path and the new length", () => {
    expect(String((record("triggers").truncate as Json).stdout)).toBe("size 3\n");
    const e = events("vfs-truncate");
    expect(e.length).toBeGreaterThanOrEqual(1);
    const x = e[0]!;
    expect(((x.args as Json[])[0]!.path_arg as Json).path).toBe("/tmp/kp-trunc");
    expect((x.args as Json[])[1]).toEqual({ long_arg: "3" });
  });
});
