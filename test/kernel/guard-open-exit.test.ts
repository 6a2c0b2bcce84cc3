// Where the file guard checks the open family: the per-syscall tracepoints
// (syscalls/sys_exit_open, _openat, _openat2, _creat, _open_by_handle_at) by default, so no
// other syscall runs it; tp_btf/sys_exit only as the fallback. Both must kill, and the
// kernel's own run counts show which one runs at every syscall.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBpffs } from "../../src/bpf/pin.ts";
import { FileGuard, TRACEPOINT_FILE_PROGRAMS } from "../../src/sensors/guard.ts";
import { OPEN_EXIT_TRACEPOINTS } from "../../src/sensors/open-exit.ts";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";

const SECRET = "I love pizza!\n";
const STATS = "/proc/sys/kernel/bpf_stats_enabled";
let dir = "";
let secret = "";
let allowedCat = "";
let statsBefore: string | undefined;

function run(cmd: string, args: string[]): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: "utf8", timeout: 10_000 });
}

function expectKilled(r: SpawnSyncReturns<string>): void {
  expect(r.error).toBeUndefined();
  expect(r.signal).toBe("SIGKILL");
  expect(r.stdout).not.toContain("pizza");
}

/** The talk's rule: the secret dies for every binary but my/cat. */
function protect(g: FileGuard): void {
  g.protect(secret, { action: "kill", binaries: { op: "NotIn", paths: [allowedCat] } });
}

/** Run counts of the guard's programs across `work` (bpf stats on for the span). */
function runsDuring(g: FileGuard, work: () => void): Record<string, bigint> {
  const before = g.programRuns();
  work();
  const after = g.programRuns();
  const out: Record<string, bigint> = {};
  for (const [name, a] of Object.entries(after)) out[name] = a.runCnt - (before[name]?.runCnt ?? 0n);
  return out;
}

/** ~40000 syscalls that are not opens: dd copies one byte per read/write. */
function manySyscalls(): void {
  const r = run("dd", ["if=/dev/zero", "of=/dev/null", "bs=1", "count=20000", "status=none"]);
  expect(r.status).toBe(0);
}

describe("file guard open-family check placement", () => {
  beforeAll(() => {
    if (kernelUnavailable() !== undefined) return;
    dir = mkdtempSync("/tmp/ward-test-openexit-");
    mkdirSync(join(dir, "my"), { recursive: true });
    secret = join(dir, "secret");
    writeFileSync(secret, SECRET);
    allowedCat = join(dir, "my/cat");
    copyFileSync("/bin/cat", allowedCat);
    statsBefore = readFileSync(STATS, "utf8").trim();
    writeFileSync(STATS, "1");
  });

  afterAll(() => {
    if (statsBefore !== undefined) writeFileSync(STATS, statsBefore);
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("by default it attaches to each open syscall's exit tracepoint, kills there, and never runs for other syscalls", () => {
    const g = FileGuard.open({ programs: TRACEPOINT_FILE_PROGRAMS });
    try {
      const present = OPEN_EXIT_TRACEPOINTS.filter((tp) => existsSync(`/sys/kernel/tracing/events/syscalls/${tp}`));
      expect(present).toContain("sys_exit_openat");
      const m = g.mechanisms();
      expect(m.guard_open_exit).toEqual(present.map((tp) => `syscalls/${tp}`));
      expect(m.guard_sys_exit).toBeUndefined();
      expect(g.openExitFallback()).toBeUndefined();
      protect(g);
      expectKilled(run("cat", [secret]));
      expect(run(allowedCat, [secret]).stdout).toBe(SECRET);
      const runs = runsDuring(g, manySyscalls);
      // dd's handful of opens plus whatever else opened files meanwhile: far below 40000
      expect(runs.guard_open_exit).toBeGreaterThan(0n);
      expect(runs.guard_open_exit).toBeLessThan(5000n);
    } finally {
      g.close();
    }
  });

  kernelTest("the tp_btf/sys_exit fallback kills the same opens and runs at every syscall", () => {
    const g = FileGuard.open({ programs: TRACEPOINT_FILE_PROGRAMS, openExit: "tp_btf" });
    try {
      const m = g.mechanisms();
      expect(m.guard_sys_exit).toEqual(["tp_btf/sys_exit"]);
      expect(m.guard_open_exit).toBeUndefined();
      expect(g.openExitFallback()).toContain("asked for");
      protect(g);
      expectKilled(run("cat", [secret]));
      expect(run(allowedCat, [secret]).stdout).toBe(SECRET);
      const runs = runsDuring(g, manySyscalls);
      expect(runs.guard_sys_exit).toBeGreaterThanOrEqual(40000n);
    } finally {
      g.close();
    }
  });

  kernelTest("pinned, one link per tracepoint survives the agent and adopt() reports where it is attached", () => {
    ensureBpffs();
    const pinDir = `/sys/fs/bpf/ward-test-openexit-${process.pid}`;
    const g = FileGuard.open({ programs: TRACEPOINT_FILE_PROGRAMS, pinDir });
    let adopted: FileGuard | undefined;
    try {
      protect(g);
      const links = readdirSync(pinDir).filter((f) => f.startsWith("link_guard_open_exit@"));
      expect(links).toContain("link_guard_open_exit@sys_exit_openat");
      g.close();
      expectKilled(run("cat", [secret])); // nothing of this process holds it now: the pins do
      adopted = FileGuard.adopt(pinDir);
      expect(adopted.mechanisms().guard_open_exit).toContain("syscalls/sys_exit_openat");
    } finally {
      (adopted ?? g).destroy();
    }
    expect(existsSync(pinDir)).toBe(false);
    expect(run("cat", [secret]).stdout).toBe(SECRET);
  });
});
