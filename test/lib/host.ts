// Host preparation and the kernel-test gate shared by every suite.
import { existsSync, readFileSync } from "node:fs";
import { spawnSync } from "node:child_process";
import { test } from "bun:test";

export const isRoot = process.getuid?.() === 0;
export const inCI = process.env.CI === "true" || process.env.CI === "1";

function mounted(path: string, fstype: string): boolean {
  const mounts = readFileSync("/proc/mounts", "utf8");
  return mounts.split("\n").some((l) => {
    const f = l.split(" ");
    return f[1] === path && f[2] === fstype;
  });
}

function mount(fstype: string, path: string): void {
  if (!existsSync(path) || mounted(path, fstype)) return;
  const r = spawnSync("mount", ["-t", fstype, fstype === "securityfs" ? "none" : fstype, path]);
  if (r.status !== 0) process.stderr.write(`test setup: mount ${fstype} at ${path}: ${r.stderr}\n`);
}

let prepared = false;
export function prepareHost(): void {
  if (prepared || !isRoot) return;
  prepared = true;
  mount("bpf", "/sys/fs/bpf");
  mount("tracefs", "/sys/kernel/tracing");
  mount("securityfs", "/sys/kernel/security");
}

/**
 * Why kernel tests cannot run here, or undefined when they can. In CI a kernel test never
 * skips: kernelTest() turns this reason into a failure.
 */
export function kernelUnavailable(): string | undefined {
  if (!isRoot) return "kernel tests need root";
  if (!existsSync("/sys/kernel/btf/vmlinux")) return "kernel has no BTF (/sys/kernel/btf/vmlinux)";
  return undefined;
}

/** test() for kernel behaviour: skips with a printed reason outside CI, fails in CI. */
export function kernelTest(name: string, fn: () => unknown | Promise<unknown>, timeout?: number): void {
  const why = kernelUnavailable();
  if (why === undefined) {
    test(name, fn as () => Promise<void>, timeout);
  } else if (inCI) {
    test(name, () => {
      throw new Error(`kernel test cannot run in CI: ${why}`);
    });
  } else {
    process.stderr.write(`skip (${why}): ${name}\n`);
    test.skip(name, () => {});
  }
}
