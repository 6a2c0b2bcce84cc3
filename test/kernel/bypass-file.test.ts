// Bypass matrix (docs/bypasses.md) against the file guard, for the techniques of
// reference/peers.md §5 that test/kernel/guard-file.test.ts does not already try: real
// processes try each one against the talk's policy (the secret file, every binary but an
// allowed one is killed). Where ward stops the technique the test asserts the kill and that
// nothing leaked; where this design cannot stop it, the test asserts the documented
// behaviour (the content does get out), so a change in either direction is noticed and
// docs/bypasses.md gets updated with it.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawn, spawnSync, type SpawnSyncReturns } from "node:child_process";
import { copyFileSync, linkSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { FileGuard, fileIdentity } from "../../src/sensors/guard.ts";

const SECRET = "I love pizza!\n";
const LD_SO = "/lib64/ld-linux-x86-64.so.2";
let dir = "";
let secret = "";
let allowedCat = "";
/** the static bypass helper: not allowed */
let helper = "";
/** a second copy of the helper (another inode) that the secret rule allows */
let allowedHelper = "";
let preloadLib = "";
let guard: FileGuard | undefined;
let secretRule = 0;

function g(): FileGuard {
  if (guard === undefined) throw new Error("guard not loaded");
  return guard;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: Record<string, string> } = {}): SpawnSyncReturns<string> {
  return spawnSync(cmd, args, { encoding: "utf8", timeout: 15_000, cwd: opts.cwd, env: opts.env ? { ...process.env, ...opts.env } : process.env });
}

/** Killed by the guard: SIGKILL, and not one byte of the file reached stdout. */
function expectKilled(r: SpawnSyncReturns<string>): void {
  expect(r.error).toBeUndefined();
  expect(r.signal).toBe("SIGKILL");
  expect(r.stdout).not.toContain("pizza");
}

/** Not stopped: exited normally and printed the content (a documented limit). */
function expectLeaked(r: SpawnSyncReturns<string>, content = SECRET): void {
  expect(r.error).toBeUndefined();
  expect(r.signal).toBeNull();
  expect(r.stdout).toContain(content);
}

/** A file with the secret content under its own kill rule (no allowed binary). */
function victim(name: string, rule: Parameters<FileGuard["protect"]>[1] = { action: "kill" }): { path: string; rule: number } {
  const path = join(dir, name);
  writeFileSync(path, SECRET);
  return { path, rule: g().protect(path, rule) };
}

function buildHelpers(): void {
  ensureSystemPackages([
    ["/usr/bin/cc", "gcc"],
    ["/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"],
  ]);
  const src = join(import.meta.dir, "bypass-helper.c");
  for (const args of [
    ["-O2", "-static", "-o", helper, src],
    ["-O2", "-shared", "-fPIC", "-DPRELOAD_LIB", "-o", preloadLib, src],
  ]) {
    const r = spawnSync("cc", args, { encoding: "utf8" });
    if (r.status !== 0) throw new Error(`cc ${args.join(" ")} failed: ${r.stderr}`);
  }
  copyFileSync(helper, allowedHelper);
}

/**
 * Start `helper SUBCOMMAND...` (which prints "ready" and waits for a line), run between()
 * once it is ready, then let it go on; resolves with its output and how it ended.
 */
async function twoStep(bin: string, args: string[], between: () => void): Promise<{ out: string; signal: string | null; code: number | null }> {
  const child = spawn(bin, args, { stdio: ["pipe", "pipe", "inherit"] });
  let out = "";
  child.stdout.setEncoding("utf8");
  const ready = new Promise<void>((resolve) =>
    child.stdout.on("data", (d: string) => {
      out += d;
      if (out.includes("ready")) resolve();
    }),
  );
  const exited = new Promise<{ signal: string | null; code: number | null }>((resolve) => child.on("exit", (code, signal) => resolve({ code, signal })));
  await ready;
  try {
    between();
  } finally {
    child.stdin.write("go\n");
  }
  const end = await exited;
  return { out, ...end };
}

describe("bypass matrix: file rules (peers.md §5 beyond guard-file.test.ts)", () => {
  beforeAll(() => {
    if (kernelUnavailable() !== undefined) return;
    dir = mkdtempSync("/tmp/ward-bypass-");
    mkdirSync(join(dir, "my/extremely/secret"), { recursive: true });
    secret = join(dir, "my/extremely/secret/file");
    writeFileSync(secret, SECRET);
    allowedCat = join(dir, "my/cat");
    copyFileSync("/bin/cat", allowedCat);
    helper = join(dir, "helper");
    allowedHelper = join(dir, "allowed-helper");
    preloadLib = join(dir, "preload.so");
    buildHelpers();
    guard = FileGuard.open();
    secretRule = g().protect(secret, { action: "kill", binaries: { op: "NotIn", paths: [allowedCat, allowedHelper] } });
  });

  afterAll(() => {
    guard?.close();
    if (dir !== "") {
      // a failed bind-mount test must not leave the mount behind (it would block the rm)
      spawnSync("umount", ["-l", join(dir, "mnt")]);
      rmSync(dir, { recursive: true, force: true });
    }
  });

  kernelTest("the policy works: cat is killed (and reported), the allowed cat and the allowed helper read", async () => {
    g().events();
    const killed = run("cat", [secret]);
    expectKilled(killed);
    const ev = (await g().nextEvents(2000)).find((e) => e.tgid === killed.pid);
    expect(ev?.rule).toBe(secretRule);
    expect(ev?.action).toBe("kill");
    expect(ev?.ino).toBe(fileIdentity(secret).ino);
    expectKilled(run(helper, ["read", secret]));
    expect(run(allowedCat, [secret]).stdout).toBe(SECRET);
    expect(run(allowedHelper, ["read", secret]).stdout).toBe(SECRET);
  });

  // --- the file under another name or path -------------------------------------------------

  kernelTest("rename of the protected file after the rule was set: still killed under the new name (the rule follows the inode)", () => {
    const moved = join(dir, "moved-away");
    renameSync(secret, moved);
    try {
      expectKilled(run("cat", [moved]));
    } finally {
      renameSync(moved, secret);
    }
  });

  kernelTest("a new file renamed over the protected path is a new inode: not protected until the rule is re-resolved (documented limit)", () => {
    const v = victim("rotated");
    const oldName = join(dir, "rotated.old");
    linkSync(v.path, oldName); // keep the protected inode reachable
    const fresh = join(dir, "rotated.new");
    writeFileSync(fresh, "I love pizza! v2\n");
    renameSync(fresh, v.path);
    expectLeaked(run("cat", [v.path]), "I love pizza! v2\n");
    // the old inode, wherever it is now, stays protected
    expectKilled(run("cat", [oldName]));
    // re-resolving the path (what a policy reload does) protects the new inode
    g().protect(v.path, v.rule);
    expectKilled(run("cat", [v.path]));
  });

  kernelTest("a bind mount in a private mount namespace (B13) shows the same inode at another path: killed", () => {
    const mnt = join(dir, "mnt");
    mkdirSync(mnt, { recursive: true });
    const r = run("unshare", [
      "--mount",
      "--propagation",
      "private",
      "/bin/sh",
      "-c",
      `mount --bind ${join(dir, "my")} ${mnt} && cat ${mnt}/extremely/secret/file; echo "status $?"`,
    ]);
    expect(r.stdout).not.toContain("pizza");
    expect(r.stdout.trim()).toBe("status 137");
  });

  kernelTest("chroot: the file under another root path is killed", () => {
    const chrootHelper = join(dir, "my/helper-in-root");
    copyFileSync(helper, chrootHelper);
    try {
      expectKilled(run("chroot", [join(dir, "my"), "/helper-in-root", "read", "/extremely/secret/file"]));
    } finally {
      rmSync(chrootHelper);
    }
  });

  kernelTest("a path deeper than a BPF path walk's limit (B12) is killed: the match is on the inode, nothing is truncated", () => {
    // 3600+ characters: longer than the 4096-byte or 20-component walks peers use, in total
    // with the tmp dir; short enough for one open(2) (PATH_MAX 4096).
    let deep = dir;
    for (let i = 0; i < 60; i++) deep = join(deep, `d${i}-${"x".repeat(55)}`);
    mkdirSync(deep, { recursive: true });
    const file = join(deep, "file");
    expect(file.length).toBeGreaterThan(3600);
    writeFileSync(file, SECRET);
    g().protect(file, { action: "kill" });
    try {
      expectKilled(run("cat", [file]));
    } finally {
      g().unprotect(file);
    }
  });

  kernelTest("O_PATH and then a re-open through /proc/self/fd (B7) is killed at the re-open", () => {
    expectKilled(run(helper, ["opath-reopen", secret]));
  });

  // --- other ways to the content ----------------------------------------------------------

  for (const mode of ["mmap", "sendfile", "splice"]) {
    kernelTest(`a fresh open followed by ${mode} (B2) is killed at the open, before any byte moves`, () => {
      expectKilled(run(helper, ["fresh", mode, secret]));
    });
  }

  for (const mode of ["read", "mmap", "sendfile", "splice"]) {
    kernelTest(`an fd opened before the rule existed still gives the content by ${mode} (documented limit: fds are not revoked)`, async () => {
      const path = join(dir, `held-${mode}`);
      writeFileSync(path, SECRET);
      let rule = 0;
      const r = await twoStep(helper, ["hold", mode, path], () => {
        rule = g().protect(path, { action: "kill" });
      });
      try {
        expect(r.signal).toBeNull();
        expect(r.code).toBe(0);
        expect(r.out).toContain(SECRET);
        // the same binary opening it now dies: the rule is in force
        expectKilled(run(helper, ["fresh", mode, path]));
      } finally {
        g().unprotect(path);
        g().disableRule(rule);
      }
    });
  }

  kernelTest("fd passing over a unix socket (SCM_RIGHTS) from the allowed binary to a disallowed one: the receiver reads (documented limit)", () => {
    // allowed-helper opens (allowed), forks, the child execs helper (not allowed) which
    // receives the fd and reads it with no open of its own.
    const r = run(allowedHelper, ["sendfd", secret, helper]);
    expectLeaked(r);
    expect(r.status).toBe(0);
    // the disallowed binary doing the open itself dies before anything is sent
    const self = run(helper, ["sendfd", secret, helper]);
    expectKilled(self);
  });

  kernelTest("truncate(2) by path empties the protected file without an open (documented: open rules do not cover truncate)", () => {
    const v = victim("truncated");
    const r = run(helper, ["truncate", v.path]);
    expect(r.signal).toBeNull();
    expect(r.stdout).toBe("truncated\n");
    expect(statSync(v.path).size).toBe(0);
    g().unprotect(v.path);
  });

  kernelTest("event flooding (B16): with the ring buffer full and undrained, the kill still happens and the drop is counted", () => {
    const flood = join(dir, "flood");
    writeFileSync(flood, "noise\n");
    const report = g().protect(flood, { action: "report" });
    try {
      g().events();
      const before = g().counters().ringbufDrops;
      // ~72-byte records into a 256 KiB ring: 20000 reports overflow it many times
      const r = run(helper, ["loop", "20000", flood]);
      expect(r.stdout).toBe("looped 20000\n");
      expect(g().counters().ringbufDrops).toBeGreaterThan(before);
      expectKilled(run("cat", [secret]));
      expect(g().counters().kills).toBeGreaterThan(0n);
    } finally {
      g().unprotect(flood);
      g().disableRule(report);
      g().events();
    }
  });

  // --- who is asking: matchBinaries is the executable's inode -----------------------------

  kernelTest("a copy of the allowed binary under the allowed name elsewhere is killed (by inode, not by name)", () => {
    const other = join(dir, "elsewhere/my");
    mkdirSync(other, { recursive: true });
    const copy = join(other, "cat");
    copyFileSync(allowedCat, copy);
    expectKilled(run(copy, [secret]));
  });

  kernelTest("a hard link to the allowed binary is the allowed binary (same inode): it reads", () => {
    const hard = join(dir, "hardlinked-cat");
    linkSync(allowedCat, hard);
    expectLeaked(run(hard, [secret]));
  });

  kernelTest("an allowed binary replaced by a new file (new inode) loses its allowance until the policy is reloaded", () => {
    const altDir = join(dir, "alt");
    mkdirSync(altDir, { recursive: true });
    const alt = join(altDir, "cat");
    copyFileSync("/bin/cat", alt);
    const v = victim("alt-secret", { action: "kill", binaries: { op: "NotIn", paths: [alt] } });
    expectLeaked(run(alt, [v.path]));
    // The old file stays alive (renamed aside), so the new one surely gets another inode.
    renameSync(alt, join(altDir, "cat.old"));
    copyFileSync("/bin/cat", alt);
    expectKilled(run(alt, [v.path]));
    g().unprotect(v.path);
  });

  kernelTest("a deleted allowed binary's inode number can be reused by a new file, which inherits the allowance (documented: keys lack i_generation)", () => {
    // ext4 and tmpfs hand a freed inode number to the next file created; the (dev, ino) key
    // cannot tell them apart. Both outcomes are asserted so the test notices either way.
    const altDir = join(dir, "reuse");
    mkdirSync(altDir, { recursive: true });
    const alt = join(altDir, "cat");
    copyFileSync("/bin/cat", alt);
    const oldIno = statSync(alt).ino;
    const v = victim("reuse-secret", { action: "kill", binaries: { op: "NotIn", paths: [alt] } });
    try {
      rmSync(alt);
      const other = join(altDir, "other-program");
      copyFileSync(helper, other);
      if (statSync(other).ino === oldIno) expectLeaked(run(other, ["read", v.path]));
      else expectKilled(run(other, ["read", v.path]));
    } finally {
      g().unprotect(v.path);
    }
  });

  kernelTest("an allowed binary overwritten in place (same inode) runs other code as the allowed binary (documented: protect the allowed binary too)", () => {
    const alt = join(dir, "alt-inplace");
    copyFileSync("/bin/cat", alt);
    const v = victim("inplace-secret", { action: "kill", binaries: { op: "NotIn", paths: [alt] } });
    const ino = statSync(alt).ino;
    // O_TRUNC + write keeps the inode: the helper's code now carries the allowed identity
    writeFileSync(alt, readFileSync(helper));
    expect(statSync(alt).ino).toBe(ino);
    expectLeaked(run(alt, ["read", v.path]));
    // The remedy: a rule on the allowed binary itself. The writer dies at its open, before it
    // writes: no foreign code lands there (O_TRUNC has emptied it, B15: a denial of service,
    // not a bypass; the LSM backend refuses the open instead).
    copyFileSync("/bin/cat", alt);
    g().protect(alt, { action: "kill", hooks: ["open"] });
    try {
      expect(run("cp", [helper, alt]).signal).toBe("SIGKILL");
      expect(statSync(alt).size).toBe(0);
    } finally {
      g().unprotect(alt);
      g().unprotect(v.path);
    }
  });

  kernelTest("LD_PRELOAD into the allowed binary runs attacker code as the allowed binary: it reads (documented limit)", () => {
    const env = { LD_PRELOAD: preloadLib, WARD_PRELOAD_READ: secret };
    expectLeaked(run(allowedCat, ["/dev/null"], { env }));
    // the same library in a binary that is not allowed dies at its open
    expectKilled(run("/bin/cat", ["/dev/null"], { env }));
  });

  kernelTest("the dynamic loader as the program (B11): the process's binary is ld.so, so an In list naming the program misses it (documented)", () => {
    const forbidden = join(dir, "forbidden-cat");
    copyFileSync("/bin/cat", forbidden);
    const v = victim("in-list-secret", { action: "kill", binaries: { op: "In", paths: [forbidden] } });
    expectKilled(run(forbidden, [v.path]));
    expectLeaked(run(LD_SO, [forbidden, v.path]));
    g().unprotect(v.path);
    // with a NotIn allowlist the loader is not the allowed binary: the talk's policy holds
    expectKilled(run(LD_SO, [allowedCat, secret]));
  });

  kernelTest("a fileless (memfd) copy of a binary (B8) is judged by its own inode: even a copy of the allowed cat is killed", () => {
    expectKilled(run(helper, ["memfd-exec", "/bin/cat", secret]));
    expectKilled(run(helper, ["memfd-exec", allowedCat, secret]));
  });

  kernelTest("an O_TMPFILE copy of the allowed cat, executed by fd (B9), is judged by its own inode: killed", () => {
    // the same program works when it opens an unprotected file, so the kill is the rule's
    const unprotected = join(dir, "tmpfile-plain");
    writeFileSync(unprotected, "plain\n");
    expect(run(helper, ["tmpfile-exec", dir, allowedCat, unprotected]).stdout).toBe("plain\n");
    expectKilled(run(helper, ["tmpfile-exec", dir, allowedCat, secret]));
  });

  kernelTest("a process started before the guard existed (B17) is judged by its real binary when it opens", async () => {
    // A second guard, opened after the processes started, with the same kind of rule.
    const late = join(dir, "late-secret");
    writeFileSync(late, SECRET);
    let second: FileGuard | undefined;
    try {
      const denied = twoStep(helper, ["late", late], () => {
        second = FileGuard.open();
        second.protect(late, { action: "kill", binaries: { op: "NotIn", paths: [allowedHelper] } });
      });
      const r = await denied;
      expect(r.signal).toBe("SIGKILL");
      expect(r.out).not.toContain("pizza");
      second?.close();
      second = undefined;
      const allowed = await twoStep(allowedHelper, ["late", late], () => {
        second = FileGuard.open();
        second.protect(late, { action: "kill", binaries: { op: "NotIn", paths: [allowedHelper] } });
      });
      expect(allowed.signal).toBeNull();
      expect(allowed.out).toContain(SECRET);
    } finally {
      second?.close();
    }
  });

  // --- exec rules ---------------------------------------------------------------------------

  kernelTest("execveat through an O_PATH fd (fexecve, no path: B7/B14 for exec) of a protected binary is killed before it runs", () => {
    const forbidden = join(dir, "forbidden-exec");
    copyFileSync("/bin/cat", forbidden);
    g().protect(forbidden, { action: "kill" });
    try {
      const r = run(helper, ["fexec", forbidden, "/etc/hostname"]);
      expect(r.signal).toBe("SIGKILL");
      expect(r.stdout).toBe("");
    } finally {
      g().unprotect(forbidden);
    }
  });

  kernelTest("exec of a protected binary through a symlink, a hard link and a relative path (B4-B6 for exec) is killed", () => {
    const execDir = join(dir, "exec-names");
    mkdirSync(execDir, { recursive: true });
    const forbidden = join(execDir, "forbidden");
    copyFileSync("/bin/cat", forbidden);
    symlinkSync(forbidden, join(execDir, "sym"));
    linkSync(forbidden, join(execDir, "hard"));
    g().protect(forbidden, { action: "kill" });
    try {
      for (const [cmd, cwd] of [
        [join(execDir, "sym"), undefined],
        [join(execDir, "hard"), undefined],
        ["./forbidden", execDir],
        ["../exec-names/./forbidden", execDir],
      ] as const) {
        const r = run(cmd, ["/etc/hostname"], { cwd });
        expect(r.signal).toBe("SIGKILL");
        expect(r.stdout).toBe("");
      }
    } finally {
      g().unprotect(forbidden);
    }
    expect(run(join(execDir, "sym"), ["/etc/hostname"]).status).toBe(0);
  });

  kernelTest("a thread rewriting the exec path during execve (B1 for exec) never runs the protected binary", () => {
    // exec-a is echo (free), exec-b is cat (protected); the argument is a file holding a
    // marker: echo prints the path, cat would print the marker.
    const raceDir = join(dir, "exec-race");
    mkdirSync(raceDir, { recursive: true });
    const free = join(raceDir, "exec-a");
    const forbidden = join(raceDir, "exec-b");
    copyFileSync("/bin/echo", free);
    copyFileSync("/bin/cat", forbidden);
    const marker = join(raceDir, "marker");
    writeFileSync(marker, "FORBIDDEN-RAN\n");
    // without the rule the race reaches the forbidden binary (the helper works) ...
    let reached = false;
    for (let i = 0; i < 100 && !reached; i++) reached = run(helper, ["execrace", free, forbidden, marker]).stdout.includes("FORBIDDEN-RAN");
    expect(reached).toBe(true);
    // ... and with it, every run that resolved the forbidden binary dies before it runs
    g().protect(forbidden, { action: "kill" });
    try {
      let killed = 0;
      for (let i = 0; i < 100; i++) {
        const r = run(helper, ["execrace", free, forbidden, marker]);
        expect(r.stdout).not.toContain("FORBIDDEN-RAN");
        if (r.signal === "SIGKILL") killed++;
        else expect(r.stdout).toBe(`${marker}\n`);
      }
      expect(killed).toBeGreaterThan(0);
    } finally {
      g().unprotect(forbidden);
    }
  });

  kernelTest("copying a protected binary to run the copy dies at the copy (reading it is an open)", () => {
    const forbidden = join(dir, "forbidden-copy-src");
    copyFileSync("/bin/cat", forbidden);
    g().protect(forbidden, { action: "kill" });
    try {
      const r = run("cp", [forbidden, join(dir, "forbidden-copy-dst")]);
      expect(r.signal).toBe("SIGKILL");
      // and a fileless copy cannot be made either
      const m = run(helper, ["memfd-exec", forbidden, "/etc/hostname"]);
      expect(m.signal).toBe("SIGKILL");
      expect(m.stdout).toBe("");
    } finally {
      g().unprotect(forbidden);
    }
  });
});
