// The pure parts of the VM harness: the newc archive is what cpio (busybox) reads back, and
// result lines are found on a console full of other output. The accelerator choice runs
// against fake qemu binaries (a KVM that aborts, one that never boots the guest, one that
// works), and one real boot checks the reported accelerator against the machine and the
// guest's own view.
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import {
  accelArgs,
  accelSummary,
  buildInitramfs,
  busyboxEntries,
  ensureVmKernel,
  ensureVmTools,
  initScript,
  kvmUnavailable,
  parseRecords,
  runVm,
  vmAccelMode,
  vmCacheDir,
  VM_MARKER,
  VmError,
  type VmOptions,
} from "../../build/vm.ts";
import { kernelTest } from "../lib/host.ts";

const dir = mkdtempSync(join(tmpdir(), "ward-vm-harness-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

type KvmBehaviour = "abort" | "silent" | "works" | "exit";

let fakes = 0;
/**
 * A fake qemu: logs "<accel> <cpu>" per start to its log; under TCG the guest speaks and
 * powers off; under KVM it behaves as asked (abort like nested KVM refusing MSR 0x10a, spin
 * without output, work, or exit silently under either accelerator like a kernel panic).
 */
function fakeQemu(kvm: KvmBehaviour): { qemu: string; log: string; device: string } {
  const n = fakes++;
  const qemu = join(dir, `qemu-${kvm}-${n}`);
  const log = join(dir, `qemu-${kvm}-${n}.log`);
  const device = join(dir, `kvm-${n}`);
  writeFileSync(device, "");
  const speak = `echo '${VM_MARKER}{"kind":"boot","release":"fake"}'; echo '${VM_MARKER}{"kind":"done","status":0}'; exit 0`;
  const onKvm = {
    abort: `echo "qemu-system-x86_64: error: failed to set MSR 0x10a to 0x69" >&2; kill -ABRT $$`,
    silent: "exec sleep 60",
    works: speak,
    exit: "echo 'Kernel panic' >&2; exit 1",
  }[kvm];
  const onTcg = kvm === "exit" ? "exit 1" : speak;
  writeFileSync(
    qemu,
    `#!/bin/sh
accel=; cpu=
while [ $# -gt 0 ]; do
  case "$1" in -accel) accel=$2 ;; -cpu) cpu=$2 ;; esac
  shift
done
echo "$accel $cpu" >> '${log}'
if [ "$accel" = kvm ]; then ${onKvm}; fi
${onTcg}
`,
    { mode: 0o755 },
  );
  return { qemu, log, device };
}

function starts(log: string): string[] {
  return existsSync(log) ? readFileSync(log, "utf8").trim().split("\n") : [];
}

function fakeOptions(fake: { qemu: string; device: string }, extra: Partial<VmOptions> = {}): VmOptions {
  return {
    kernel: { release: "fake", vmlinuz: "/nonexistent/vmlinuz", modulesDir: "/nonexistent" },
    initramfs: "/nonexistent/initramfs",
    timeoutMs: 20_000,
    qemu: fake.qemu,
    kvmDevice: fake.device,
    ...extra,
  };
}

const KVM_ARGS = accelArgs("kvm").join(" ").replace("-accel ", "").replace(" -cpu", "");
const TCG_ARGS = accelArgs("tcg").join(" ").replace("-accel ", "").replace(" -cpu", "");

describe("vm accelerator choice (fake qemu)", () => {
  test("the CPU models: KVM without IA32_ARCH_CAPABILITIES, TCG max", () => {
    expect(accelArgs("kvm")).toEqual(["-accel", "kvm", "-cpu", "host,-arch-capabilities"]);
    expect(accelArgs("tcg")).toEqual(["-accel", "tcg", "-cpu", "max"]);
  });

  test("WARD_VM_ACCEL: unset or empty is auto, kvm/tcg/auto as given, anything else an error naming it", () => {
    expect(vmAccelMode({})).toBe("auto");
    expect(vmAccelMode({ WARD_VM_ACCEL: "" })).toBe("auto");
    for (const v of ["kvm", "tcg", "auto"] as const) expect(vmAccelMode({ WARD_VM_ACCEL: v })).toBe(v);
    expect(() => vmAccelMode({ WARD_VM_ACCEL: "KVM" })).toThrow(VmError);
    expect(() => vmAccelMode({ WARD_VM_ACCEL: "hvf" })).toThrow('WARD_VM_ACCEL="hvf": expected kvm, tcg or auto');
  });

  test("auto with no KVM device runs TCG at once and says why", async () => {
    const fake = fakeQemu("works");
    const missing = join(dir, "no-such-kvm");
    const run = await runVm(fakeOptions(fake, { accel: "auto", kvmDevice: missing }));
    expect(run.accel).toBe("tcg");
    expect(run.accelFallback).toBe(`no ${missing}`);
    expect(starts(fake.log)).toEqual([TCG_ARGS]);
  });

  test("auto with a working KVM runs KVM, no fallback", async () => {
    const fake = fakeQemu("works");
    const run = await runVm(fakeOptions(fake, { accel: "auto" }));
    expect(run.accel).toBe("kvm");
    expect(run.accelFallback).toBeNull();
    expect(run.records.map((r) => r.kind)).toEqual(["boot", "done"]);
    expect(starts(fake.log)).toEqual([KVM_ARGS]);
  });

  test("auto: qemu aborting under KVM falls back to TCG once, with qemu's error; the next boot goes straight to TCG", async () => {
    const fake = fakeQemu("abort");
    const first = await runVm(fakeOptions(fake, { accel: "auto" }));
    expect(first.accel).toBe("tcg");
    expect(first.accelFallback).toContain("qemu exited (SIGABRT) before the guest spoke");
    expect(first.accelFallback).toContain("failed to set MSR 0x10a");
    expect(first.records.find((r) => r.kind === "done")?.status).toBe(0);
    const second = await runVm(fakeOptions(fake, { accel: "auto" }));
    expect(second.accel).toBe("tcg");
    expect(second.accelFallback).toBe(first.accelFallback);
    expect(starts(fake.log)).toEqual([KVM_ARGS, TCG_ARGS, TCG_ARGS]);
    expect(accelSummary(second)).toStartWith(`accel tcg (fallback: ${first.accelFallback})`);
  });

  test("auto: a KVM guest that never speaks is killed at the speak timeout and TCG runs", async () => {
    const fake = fakeQemu("silent");
    const run = await runVm(fakeOptions(fake, { accel: "auto", speakTimeoutMs: 500 }));
    expect(run.accel).toBe("tcg");
    expect(run.accelFallback).toBe("under KVM the guest printed no result line within 0.5 s (qemu killed)");
    expect(run.timedOut).toBe(false);
    expect(run.durationMs).toBeLessThan(10_000);
    expect(starts(fake.log)).toEqual([KVM_ARGS, TCG_ARGS]);
  });

  test("auto: when the guest is silent under TCG too, KVM is not blamed for good", async () => {
    const fake = fakeQemu("exit");
    const first = await runVm(fakeOptions(fake, { accel: "auto" }));
    expect(first.accel).toBe("tcg");
    expect(first.accelFallback).toContain("Kernel panic");
    expect(first.records).toEqual([]);
    await runVm(fakeOptions(fake, { accel: "auto" }));
    expect(starts(fake.log)).toEqual([KVM_ARGS, TCG_ARGS, KVM_ARGS, TCG_ARGS]);
  });

  test("forced kvm fails with the reason instead of falling back", async () => {
    const abort = fakeQemu("abort");
    const err = await runVm(fakeOptions(abort, { accel: "kvm" })).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VmError);
    expect(String(err)).toContain("accel kvm was asked for, but KVM does not boot the guest here: qemu exited (SIGABRT)");
    expect(String(err)).toContain("failed to set MSR 0x10a");
    expect(starts(abort.log)).toEqual([KVM_ARGS]);

    const silent = fakeQemu("silent");
    const err2 = await runVm(fakeOptions(silent, { accel: "kvm", speakTimeoutMs: 500 })).catch((e: unknown) => e);
    expect(String(err2)).toContain("the guest printed no result line within 0.5 s");

    const missing = join(dir, "no-such-kvm");
    const err3 = await runVm(fakeOptions(abort, { accel: "kvm", kvmDevice: missing })).catch((e: unknown) => e);
    expect(String(err3)).toContain(`accel kvm was asked for, but no ${missing}`);
  });

  test("forced kvm via WARD_VM_ACCEL names the variable", async () => {
    const fake = fakeQemu("abort");
    const saved = process.env.WARD_VM_ACCEL;
    process.env.WARD_VM_ACCEL = "kvm";
    try {
      const err = await runVm(fakeOptions(fake)).catch((e: unknown) => e);
      expect(String(err)).toContain("WARD_VM_ACCEL=kvm was asked for");
    } finally {
      if (saved === undefined) delete process.env.WARD_VM_ACCEL;
      else process.env.WARD_VM_ACCEL = saved;
    }
  });

  test("forced tcg never tries KVM", async () => {
    const fake = fakeQemu("abort");
    const run = await runVm(fakeOptions(fake, { accel: "tcg" }));
    expect(run.accel).toBe("tcg");
    expect(run.accelFallback).toBeNull();
    expect(starts(fake.log)).toEqual([TCG_ARGS]);
  });
});

describe("vm accelerator (real qemu)", () => {
  kernelTest(
    "a busybox VM reports the accelerator it ran under, matching WARD_VM_ACCEL, /dev/kvm and the guest's view",
    async () => {
      ensureVmTools();
      const kernel = ensureVmKernel();
      const work = mkdtempSync(join(vmCacheDir(), "accel-"));
      try {
        const initramfs = buildInitramfs([...busyboxEntries(), { path: "/init", data: initScript("true"), mode: 0o755 }], join(work, "initramfs.cpio.gz"));
        const mode = vmAccelMode();
        const run = await runVm({ kernel, initramfs, timeoutMs: 150_000 });
        process.stderr.write(`vm harness (WARD_VM_ACCEL=${mode}): ${accelSummary(run)}\n`);
        const boot = run.records.find((r) => r.kind === "boot");
        expect(boot?.release).toBe(kernel.release);
        expect(run.records.find((r) => r.kind === "done")?.status).toBe(0);
        // The guest's own view: qemu's KVM exposes the KVM CPUID leaves, TCG does not.
        expect(boot?.hypervisor).toBe(run.accel === "kvm" ? "KVM" : "");
        const noKvm = kvmUnavailable();
        if (mode === "auto" && noKvm !== undefined) expect([run.accel, run.accelFallback]).toEqual(["tcg", noKvm]);
        else if (mode === "auto") {
          // KVM is there: either it ran, or TCG did with what KVM did instead.
          if (run.accel === "kvm") expect(run.accelFallback).toBeNull();
          else expect(run.accelFallback).toStartWith("under KVM ");
        } else expect([run.accel, run.accelFallback]).toEqual([mode, null]);
      } finally {
        rmSync(work, { recursive: true, force: true });
      }
    },
    180_000,
  );
});

describe("vm harness", () => {
  test("buildInitramfs writes a gzip'd newc archive that cpio extracts with modes, links and dirs", () => {
    const src = join(dir, "src-file");
    writeFileSync(src, "from the host\n", { mode: 0o750 });
    const archive = buildInitramfs(
      [
        { path: "/init", data: "#!/bin/sh\necho hi\n", mode: 0o755 },
        { path: "/deep/nested/file", file: src },
        { path: "/bin/sh", symlink: "busybox" },
        { path: "/empty", dir: true },
      ],
      join(dir, "initramfs.cpio.gz"),
    );
    const out = join(dir, "out");
    spawnSync("mkdir", ["-p", out]);
    const cpio = spawnSync("busybox", ["cpio", "-i", "-d"], { cwd: out, input: gunzipSync(readFileSync(archive)) });
    expect(cpio.status).toBe(0);
    expect(readFileSync(join(out, "init"), "utf8")).toBe("#!/bin/sh\necho hi\n");
    expect(statSync(join(out, "init")).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(out, "deep/nested/file"), "utf8")).toBe("from the host\n");
    expect(statSync(join(out, "deep/nested/file")).mode & 0o777).toBe(0o750);
    expect(readlinkSync(join(out, "bin/sh"))).toBe("busybox");
    expect(statSync(join(out, "empty")).isDirectory()).toBe(true);
    expect(existsSync(join(out, "TRAILER!!!"))).toBe(false);
  });

  test("parseRecords finds marker lines among kernel and program output", () => {
    const console = [
      "[    0.000000] Linux version 6.1.0",
      `${VM_MARKER}{"kind":"boot","release":"6.1.0-57-cloud-amd64"}`,
      "some program chatter",
      `prefix noise ${VM_MARKER}{"kind":"check","name":"x","ok":true}`,
      `${VM_MARKER}{"kind":"check", broken`,
    ].join("\n");
    const records = parseRecords(console);
    expect(records).toHaveLength(3);
    expect(records[0]).toEqual({ kind: "boot", release: "6.1.0-57-cloud-amd64" });
    expect(records[1]).toEqual({ kind: "check", name: "x", ok: true });
    expect(records[2]?.kind).toBe("unparsed");
  });
});
