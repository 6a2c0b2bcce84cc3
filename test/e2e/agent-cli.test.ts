// ward agent's refusals, which need no kernel: bad flags exit 2 with a message naming the
// flag; a non-root user is told why the agent cannot run; invalid policies stop the start
// with file:line:col and nothing is left behind; the CLI says plainly when no agent runs.
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync, chmodSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { isRoot } from "../lib/host.ts";

// Each test spawns bun several times; on a loaded machine one spawn can take seconds.
const SPAWN_TIMEOUT = 60_000;

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");

function ward(args: string[], opts: { env?: Record<string, string>; prefix?: string[] } = {}) {
  const argv = [...(opts.prefix ?? []), process.execPath, main, ...args];
  const r = spawnSync(argv[0]!, argv.slice(1), { encoding: "utf8", env: { ...process.env, ...opts.env }, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

describe("ward agent refusals", () => {
  test("bad flags exit 2 naming the flag", () => {
    for (const [args, want] of [
      [["--listen", "nohost"], "--listen"],
      [["--listen", "127.0.0.1:70000"], "out of range"],
      [["--frobnicate"], "unknown flag --frobnicate"],
      [["-o", "yaml"], 'must be json or compact, not "yaml"'],
      [["--token-file"], "needs a value"],
      [["stray"], 'unexpected argument "stray"'],
    ] as const) {
      const r = ward(["agent", ...args]);
      expect({ args, code: r.code }).toEqual({ args, code: 2 });
      expect(r.stderr).toContain(want);
    }
  }, SPAWN_TIMEOUT);

  test("--help prints usage and exits 0", () => {
    const r = ward(["agent", "--help"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("--export-file FILE");
  }, SPAWN_TIMEOUT);

  // The dropped user may be unable to read the checkout or the bun under node_modules (a
  // clone inside a 0700 directory, as .ci/run makes): it gets ward compiled into a fresh
  // world-readable directory under /tmp, and runs there as its working directory.
  test.skipIf(!isRoot)("as a non-root user it says it must run as root", () => {
    const dir = mkdtempSync("/tmp/ward-nonroot-");
    chmodSync(dir, 0o777); // writable too: the state and token files could be made, and must not be
    try {
      const exe = join(dir, "ward");
      const b = spawnSync(process.execPath, ["build", "--compile", main, "--outfile", exe], { cwd: root, encoding: "utf8", timeout: SPAWN_TIMEOUT });
      expect({ code: b.status, stderr: b.stderr }).toEqual({ code: 0, stderr: "" });
      chmodSync(exe, 0o755);
      const r = spawnSync("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", exe, "agent", "--token-file", join(dir, "t"), "--state-file", join(dir, "s.json")], {
        cwd: dir,
        encoding: "utf8",
        env: { ...process.env, HOME: dir },
        timeout: 30_000,
      });
      expect(r.stderr).toContain("must run as root");
      expect(r.status).toBe(1);
      expect(existsSync(join(dir, "s.json"))).toBe(false);
      expect(existsSync(join(dir, "t"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, SPAWN_TIMEOUT);

  test.skipIf(!isRoot)("an invalid --policy stops the start with file:line:col, nothing written", () => {
    const dir = mkdtempSync(join(tmpdir(), "ward-badpolicy-"));
    try {
      const p = join(dir, "bad.yaml");
      writeFileSync(p, "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bad\nspec:\n  kprobes:\n  - call: fd_install\n    syscal: false\n");
      const r = ward(["agent", "--listen", "127.0.0.1:0", "--policy", p, "--token-file", join(dir, "t"), "--state-file", join(dir, "s.json"), "--export-file", join(dir, "e.log")]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${p}:8:5: spec.kprobes[0].syscal: unknown field "syscal"`);
      expect(r.stderr).toContain(`ward agent: error: ${p}: invalid policy (1 error above); nothing was applied`);
      expect(existsSync(join(dir, "s.json"))).toBe(false);
      expect(existsSync(join(dir, "t"))).toBe(false);
      expect(existsSync(join(dir, "e.log"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, SPAWN_TIMEOUT);

  // All or nothing at start: one bad file among good ones stops the start; the error names
  // the bad file with line:col and field, the closing line names only that file.
  test.skipIf(!isRoot)("one invalid file among two --policy files: exit 1, file:line:col: path of the bad one, nothing written", () => {
    const dir = mkdtempSync(join(tmpdir(), "ward-twopolicies-"));
    try {
      const good = join(dir, "good.yaml");
      const bad = join(dir, "bad.yaml");
      writeFileSync(good, "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: good\nspec:\n  tracepoints:\n  - subsystem: raw_syscalls\n    event: sys_enter\n");
      writeFileSync(bad, "apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: bad\nspec:\n  kprobes:\n  - call: sys_openat\n    call: sys_open\n    syscall: true\n");
      const r = ward(["agent", "--listen", "127.0.0.1:0", "--policy", good, "--policy", bad, "--token-file", join(dir, "t"), "--state-file", join(dir, "s.json"), "--export-file", join(dir, "e.log")]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain(`${bad}:8:5: spec.kprobes[0].call: duplicate key "call" (first at ${bad}:7:5)\n`);
      expect(r.stderr).toContain(`ward agent: error: ${bad}: invalid policy (1 error above); nothing was applied\n`);
      expect(r.stderr).not.toContain(good);
      for (const f of ["s.json", "t", "e.log"]) expect({ f, exists: existsSync(join(dir, f)) }).toEqual({ f, exists: false });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, SPAWN_TIMEOUT);

  // Pinned policies outlive the agent, so the next one must know its policy set: without a
  // policy store the start is refused before anything is created (keep-sensors.test.ts has the rest).
  test.skipIf(!isRoot)("--keep-sensors-on-exit without --policy-store-dir is refused with the reason, nothing written", () => {
    const dir = mkdtempSync(join(tmpdir(), "ward-keep-"));
    try {
      const r = ward(["agent", "--keep-sensors-on-exit", "--listen", "127.0.0.1:0", "--token-file", join(dir, "t"), "--state-file", join(dir, "s.json"), "--export-file", join(dir, "e.log")]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("--keep-sensors-on-exit needs --policy-store-dir DIR");
      expect(existsSync(join(dir, "s.json"))).toBe(false);
      expect(existsSync(join(dir, "t"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, SPAWN_TIMEOUT);
});

describe("CLI without an agent", () => {
  test("ward status says no agent was found and exits 1", () => {
    const r = ward(["status"], { env: { WARD_STATE_FILE: "/nonexistent/ward/agent.json" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("no agent found: /nonexistent/ward/agent.json does not exist");
  }, SPAWN_TIMEOUT);

  test("ward policy list with --server to a closed port says it cannot reach the agent", () => {
    const r = ward(["--server", "http://127.0.0.1:1", "policy", "list"], { env: { WARD_TOKEN: "x".repeat(32), WARD_STATE_FILE: "/nonexistent" } });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("cannot reach the agent at http://127.0.0.1:1");
  }, SPAWN_TIMEOUT);
});
