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

const main = join(import.meta.dir, "..", "..", "src", "cli", "main.ts");

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

  test.skipIf(!isRoot)("as a non-root user it says it must run as root", () => {
    const dir = mkdtempSync(join(tmpdir(), "ward-nonroot-"));
    chmodSync(dir, 0o777);
    try {
      const r = ward(["agent", "--token-file", join(dir, "t"), "--state-file", join(dir, "s.json")], {
        prefix: ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"],
        env: { HOME: dir },
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("must run as root");
      expect(existsSync(join(dir, "s.json"))).toBe(false);
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
      expect(r.stderr).toContain("nothing was applied");
      expect(existsSync(join(dir, "s.json"))).toBe(false);
      expect(existsSync(join(dir, "t"))).toBe(false);
      expect(existsSync(join(dir, "e.log"))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, SPAWN_TIMEOUT);

  // Policy sensors cannot outlive the agent yet; accepting the flag would end enforcement
  // silently at exit, so the start is refused before anything is created.
  test.skipIf(!isRoot)("--keep-sensors-on-exit is refused with the reason, nothing written", () => {
    const dir = mkdtempSync(join(tmpdir(), "ward-keep-"));
    try {
      const r = ward(["agent", "--keep-sensors-on-exit", "--listen", "127.0.0.1:0", "--token-file", join(dir, "t"), "--state-file", join(dir, "s.json"), "--export-file", join(dir, "e.log")]);
      expect(r.code).toBe(1);
      expect(r.stderr).toContain("--keep-sensors-on-exit is not supported yet");
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
