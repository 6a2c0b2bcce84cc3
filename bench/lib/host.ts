// Host preparation for benches that load BPF: root, bpffs and tracefs mounted.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { ensureBpffs } from "../../src/bpf/pin.ts";
import { ensureTracefs } from "../../src/sensors/open-exit.ts";

export class BenchHostError extends Error {
  override name = "BenchHostError";
}

/**
 * Throws unless root; mounts bpffs and tracefs where they are missing (bpftrace needs
 * tracefs) with the agent's own helpers, so the benches exercise the code the agent runs.
 */
export function prepareBenchHost(bench: string): void {
  if (process.getuid?.() !== 0) throw new BenchHostError(`${bench} needs root (it loads BPF programs)`);
  try {
    ensureBpffs();
    ensureTracefs();
  } catch (e) {
    throw new BenchHostError(`${bench}: prepare the host: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Wait until check() is true, polling; false after timeoutMs. */
export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, everyMs = 50): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= end) return false;
    await Bun.sleep(everyMs);
  }
}

/**
 * Re-runs this bench pinned to `cpu` (taskset) unless it already is, and exits with the
 * pinned run's status: for benches whose measured work is this process itself (the loader,
 * the engine), so it meets the same vCPU every time (design.md, Performance doctrine).
 * Without taskset it runs unpinned and says so on stderr.
 */
export function pinSelf(cpu = 0): void {
  if (process.env.WARD_BENCH_PINNED !== undefined) return;
  if (!existsSync("/usr/bin/taskset")) {
    process.stderr.write("bench: taskset is missing (Debian util-linux); running unpinned\n");
    return;
  }
  const r = spawnSync("taskset", ["-c", String(cpu), process.execPath, ...process.argv.slice(1)], {
    stdio: "inherit",
    env: { ...process.env, WARD_BENCH_PINNED: String(cpu) },
  });
  process.exit(r.status ?? 1);
}
