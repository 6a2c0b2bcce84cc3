// Assembles the guard VM: Debian's 6.1 kernel (cached), an initramfs with busybox, the
// compiled guest (test/vm/guest/main.ts), the static bypass helper twice (the second copy is
// the allowed binary), the compat-syscall opener (test/kernel/compat-open.c) and one module of that kernel, then boots it once.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";
import {
  binaryWithLibs,
  buildInitramfs,
  busyboxEntries,
  compileGuest,
  ensureVmKernel,
  ensureVmTools,
  initScript,
  runVm,
  vmCacheDir,
  type VmRun,
} from "../../build/vm.ts";

/** cc and a static libc for test/kernel/guard-helper.c. */
export const HELPER_TOOLCHAIN: Array<[string, string]> = [
  ["/usr/bin/cc", "gcc"],
  ["/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"],
];

/** A module of Debian's 6.1 cloud kernel with no dependencies: safe to load and unload. */
const MODULE_REL = "kernel/net/sched/em_u32.ko";

export async function runGuardVm(timeoutMs: number): Promise<VmRun> {
  ensureVmTools();
  ensureSystemPackages(HELPER_TOOLCHAIN);
  const kernel = ensureVmKernel();
  const work = mkdtempSync(join(vmCacheDir(), "run-"));
  try {
    const guest = compileGuest(join(import.meta.dir, "guest", "main.ts"), join(work, "ward-guest"));
    const helper = join(work, "ward-helper");
    const cc = spawnSync("cc", ["-O2", "-static", "-pthread", "-o", helper, join(import.meta.dir, "..", "kernel", "guard-helper.c")], { encoding: "utf8" });
    if (cc.status !== 0) throw new Error(`cc guard-helper.c failed: ${cc.stderr}`);
    const compat = join(work, "ward-compat-open");
    const cc32 = spawnSync("cc", ["-O2", "-static", "-o", compat, join(import.meta.dir, "..", "kernel", "compat-open.c")], { encoding: "utf8" });
    if (cc32.status !== 0) throw new Error(`cc compat-open.c failed: ${cc32.stderr}`);
    const module = join(kernel.modulesDir, MODULE_REL);
    if (!existsSync(module)) throw new Error(`${module} is missing from the extracted kernel package`);
    const initrd = buildInitramfs(
      [
        ...busyboxEntries(),
        ...binaryWithLibs(guest, "/ward/guest"),
        { path: "/bin/ward-helper", file: helper, mode: 0o755 },
        { path: "/allowed/helper", file: helper, mode: 0o755 },
        { path: "/bin/ward-compat-open", file: compat, mode: 0o755 },
        { path: "/ward/em_u32.ko", file: module },
        { path: "/init", data: initScript("/ward/guest"), mode: 0o755 },
      ],
      join(work, "initramfs.cpio.gz"),
    );
    return await runVm({ kernel, initramfs: initrd, timeoutMs });
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}
