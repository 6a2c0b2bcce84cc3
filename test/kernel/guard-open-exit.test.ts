// Where the file guard checks the open family: the per-syscall tracepoints
// (syscalls/sys_exit_open, _openat, _openat2, _creat, _open_by_handle_at), so no other
// syscall runs it, unless 32-bit processes can run here (x86 never fires those tracepoints
// for their syscalls) or tracefs lacks them: then tp_btf/sys_exit, at every syscall's exit.
// The default is asserted against what the probes (compat-abi.ts, open-exit.ts) say this
// host should get; each placement is then tested by forcing it. Both must kill, and the
// kernel's own run counts show which one runs at every syscall.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureBpffs } from "../../src/bpf/pin.ts";
import { compatProcessesPossible, i386ExitElf } from "../../src/sensors/compat-abi.ts";
import { FileGuard, TRACEPOINT_FILE_PROGRAMS } from "../../src/sensors/guard.ts";
import { chooseOpenExit, OPEN_EXIT_TRACEPOINTS, type OpenExitChoice } from "../../src/sensors/open-exit.ts";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { writeCompatOpener } from "../lib/i386.ts";

const SECRET = "I love pizza!\n";
const STATS = "/proc/sys/kernel/bpf_stats_enabled";
let dir = "";
let secret = "";
let allowedCat = "";
let statsBefore: string | undefined;
/** What the default (openExit "auto") must choose here, and what forcing "tracepoint" gives. */
let expectedDefault: OpenExitChoice | undefined;
let expectedTracepoints: OpenExitChoice | undefined;

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

function must(c: OpenExitChoice | undefined): OpenExitChoice {
  if (c === undefined) throw new Error("beforeAll did not probe the placement");
  return c;
}

/** The guard is attached where `c` says, and reports the fallback's reason exactly when it falls back. */
function expectPlacement(g: FileGuard, c: OpenExitChoice, reason?: string): void {
  const m = g.mechanisms();
  if (c.kind === "tracepoint") {
    expect(m.guard_open_exit).toEqual(c.tracepoints.map((tp) => `syscalls/${tp}`));
    expect(m.guard_sys_exit).toBeUndefined();
    expect(g.openExitFallback()).toBeUndefined();
  } else {
    expect(m.guard_sys_exit).toEqual(["tp_btf/sys_exit"]);
    expect(m.guard_open_exit).toBeUndefined();
    expect(g.openExitFallback()).toBe(reason ?? c.reason);
  }
}

/** The secret dies for cat, my/cat reads it, and the check runs as often as its placement implies. */
function expectEnforcedAt(g: FileGuard, c: OpenExitChoice): void {
  protect(g);
  expectKilled(run("cat", [secret]));
  expect(run(allowedCat, [secret]).stdout).toBe(SECRET);
  const runs = runsDuring(g, manySyscalls);
  if (c.kind === "tracepoint") {
    // dd's handful of opens plus whatever else opened files meanwhile: far below 40000
    expect(runs.guard_open_exit).toBeGreaterThan(0n);
    expect(runs.guard_open_exit).toBeLessThan(5000n);
  } else {
    expect(runs.guard_sys_exit).toBeGreaterThanOrEqual(40000n);
  }
}

/** Whether this kernel runs an i386 executable, asked directly (not through the probe under test). */
function i386Runs(): boolean {
  const f = join(dir, "exit32");
  writeFileSync(f, i386ExitElf());
  spawnSync("chmod", ["755", f]);
  const r = spawnSync(f, []);
  const code = (r.error as NodeJS.ErrnoException | undefined)?.code;
  if (code === "ENOEXEC") return false;
  if (r.status === 0) return true;
  throw new Error(`i386 exit program: neither ran nor was refused (${code ?? r.signal ?? r.status})`);
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
    expectedDefault = chooseOpenExit();
    expectedTracepoints = chooseOpenExit({ allowCompatGap: true });
  });

  afterAll(() => {
    if (statsBefore !== undefined) writeFileSync(STATS, statsBefore);
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("by default it attaches where the probes say this host needs: tp_btf/sys_exit if 32-bit processes can run, else each open syscall's exit tracepoint", () => {
    const want = must(expectedDefault);
    const compat = compatProcessesPossible();
    if (compat.possible) {
      expect(want).toEqual({ kind: "tp_btf", reason: expect.stringContaining(compat.reason) });
    } else {
      expect(want).toEqual(must(expectedTracepoints));
    }
    const g = FileGuard.open({ programs: TRACEPOINT_FILE_PROGRAMS });
    try {
      expectPlacement(g, want);
      expectEnforcedAt(g, want);
    } finally {
      g.close();
    }
  });

  kernelTest("forced onto the per-syscall tracepoints (openExit: tracepoint) it kills there and never runs for other syscalls", () => {
    const want = must(expectedTracepoints);
    if (want.kind === "tracepoint") {
      // every open-family tracepoint tracefs has, openat always among them
      const present = OPEN_EXIT_TRACEPOINTS.filter((tp) => existsSync(`/sys/kernel/tracing/events/syscalls/${tp}`));
      expect(want.tracepoints).toEqual(present);
      expect(present).toContain("sys_exit_openat");
    }
    const g = FileGuard.open({ programs: TRACEPOINT_FILE_PROGRAMS, openExit: "tracepoint" });
    try {
      expectPlacement(g, want);
      expectEnforcedAt(g, want);
    } finally {
      g.close();
    }
  });

  kernelTest("forced onto the tp_btf/sys_exit fallback (openExit: tp_btf) it kills the same opens and runs at every syscall", () => {
    const g = FileGuard.open({ programs: TRACEPOINT_FILE_PROGRAMS, openExit: "tp_btf" });
    try {
      const want: OpenExitChoice = { kind: "tp_btf", reason: "asked for (openExit: tp_btf)" };
      expectPlacement(g, want);
      expectEnforcedAt(g, want);
    } finally {
      g.close();
    }
  });

  kernelTest("32-bit (int 0x80) opens: where i386 programs run, the default placement kills them and the tracepoints alone would not; where they cannot, the exec is refused", () => {
    const openers = (["open", "openat"] as const).map((call) => {
      const f = join(dir, `compat-${call}`);
      writeCompatOpener(f, secret, call);
      return f;
    });
    const runs32 = i386Runs();
    expect(compatProcessesPossible().possible).toBe(runs32);
    if (!runs32) {
      // nothing can open through the compat ABI here, so the tracepoints miss nothing
      for (const f of openers) expect((spawnSync(f, []).error as NodeJS.ErrnoException | undefined)?.code).toBe("ENOEXEC");
      expect(must(expectedDefault)).toEqual(must(expectedTracepoints));
      return;
    }
    // unguarded, the openers really open the file: a kill below is the guard's
    for (const f of openers) expect(spawnSync(f, []).status).toBe(3);
    const g = FileGuard.open({ programs: TRACEPOINT_FILE_PROGRAMS });
    try {
      expect(g.mechanisms().guard_sys_exit).toEqual(["tp_btf/sys_exit"]);
      protect(g);
      for (const f of openers) expect({ f, signal: spawnSync(f, []).signal }).toEqual({ f, signal: "SIGKILL" });
    } finally {
      g.close();
    }
    if (must(expectedTracepoints).kind !== "tracepoint") return;
    // The gap the default avoids: the syscalls/ tracepoints never see a compat open.
    const tp = FileGuard.open({ programs: TRACEPOINT_FILE_PROGRAMS, openExit: "tracepoint" });
    try {
      protect(tp);
      expectKilled(run("cat", [secret]));
      for (const f of openers) expect({ f, status: spawnSync(f, []).status }).toEqual({ f, status: 3 });
    } finally {
      tp.close();
    }
  });

  for (const placement of ["tracepoint", "tp_btf"] as const) {
    kernelTest(`pinned (openExit: ${placement}), its links survive the agent and adopt() reports where they are attached`, () => {
      ensureBpffs();
      const want: OpenExitChoice = placement === "tp_btf" ? { kind: "tp_btf", reason: "asked for (openExit: tp_btf)" } : must(expectedTracepoints);
      const pinDir = `/sys/fs/bpf/ward-test-openexit-${process.pid}-${placement}`;
      const g = FileGuard.open({ programs: TRACEPOINT_FILE_PROGRAMS, pinDir, openExit: placement });
      let adopted: FileGuard | undefined;
      try {
        protect(g);
        const links = readdirSync(pinDir).filter((f) => f.startsWith("link_guard_open_exit@") || f === "link_guard_sys_exit").sort();
        // one link per tracepoint ("@" joins program and tracepoint: bpffs refuses ".")
        expect(links).toEqual(want.kind === "tracepoint" ? want.tracepoints.map((tp) => `link_guard_open_exit@${tp}`).sort() : ["link_guard_sys_exit"]);
        g.close();
        expectKilled(run("cat", [secret])); // nothing of this process holds it now: the pins do
        adopted = FileGuard.adopt(pinDir);
        const m = adopted.mechanisms();
        if (want.kind === "tracepoint") expect([...(m.guard_open_exit ?? [])].sort()).toEqual(want.tracepoints.map((tp) => `syscalls/${tp}`).sort());
        else expect(m.guard_sys_exit).toEqual(["tp_btf/sys_exit"]);
      } finally {
        (adopted ?? g).destroy();
      }
      expect(existsSync(pinDir)).toBe(false);
      expect(run("cat", [secret]).stdout).toBe(SECRET);
    });
  }
});
