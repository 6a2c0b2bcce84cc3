// Host preparation and the kernel-test gate shared by every suite.
import { existsSync } from "node:fs";
import { test } from "bun:test";
import { activeLsms } from "../../src/bpf/features.ts";
import { ensureBpffs } from "../../src/bpf/pin.ts";
import { ensureTracefs } from "../../src/sensors/open-exit.ts";

export const isRoot = process.getuid?.() === 0;
export const inCI = process.env.CI === "true" || process.env.CI === "1";

let prepared = false;
/**
 * bpffs, tracefs and securityfs, mounted by the same code the agent uses (src/bpf/pin.ts,
 * src/sensors/open-exit.ts, src/bpf/features.ts), so the suite exercises it rather than a
 * second copy. A failure is printed, not thrown: the tests that need the mount then say why.
 */
export function prepareHost(): void {
  if (prepared || !isRoot) return;
  prepared = true;
  const steps: Array<[string, () => unknown]> = [
    ["bpffs", () => ensureBpffs()],
    ["tracefs", () => ensureTracefs()],
    ["securityfs", () => activeLsms()],
  ];
  for (const [what, step] of steps) {
    try {
      step();
    } catch (e) {
      process.stderr.write(`test setup: mount ${what}: ${e instanceof Error ? e.message : String(e)}\n`);
    }
  }
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
/** The bound of a kernel test that names none. */
export const KERNEL_TEST_TIMEOUT_MS = 120_000;

export function kernelTest(name: string, fn: () => unknown | Promise<unknown>, timeout?: number): void {
  const why = kernelUnavailable();
  if (why === undefined) {
    // Always explicit: Bun reads an undefined timeout as 5 s, ignores bunfig's, and applies
    // test/setup.ts's setDefaultTimeout only to the first file of a run; a kernel test may
    // verify the generic sensor (10-25 s on this machine kind).
    test(name, fn as () => Promise<void>, timeout ?? KERNEL_TEST_TIMEOUT_MS);
  } else if (inCI) {
    test(name, () => {
      throw new Error(`kernel test cannot run in CI: ${why}`);
    });
  } else {
    process.stderr.write(`skip (${why}): ${name}\n`);
    test.skip(name, () => {});
  }
}
