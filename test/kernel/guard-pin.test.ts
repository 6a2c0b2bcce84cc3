// Persistent enforcement: a pinned guard keeps killing after its maker lets go (a separate
// process that exits), and a new owner adopts it without a gap and can remove it.
import { afterAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kernelTest } from "../lib/host.ts";
import { FileGuard } from "../../src/sensors/guard.ts";

const SECRET = "I love pizza!\n";
const root = join(import.meta.dir, "..", "..");
const bun = join(root, "node_modules", ".bin", "bun");
let dir = "";
let pinDir = "";
let adopted: FileGuard | undefined;

function cat(path: string) {
  return spawnSync("cat", [path], { encoding: "utf8", timeout: 10_000 });
}

afterAll(() => {
  // Whatever happened, leave no pinned guard behind: it would kill cats on this host.
  if (pinDir !== "" && existsSync(pinDir)) {
    try {
      (adopted ?? FileGuard.adopt(pinDir)).destroy();
    } catch {
      rmSync(pinDir, { recursive: true, force: true });
    }
  }
  if (dir !== "") rmSync(dir, { recursive: true, force: true });
});

describe("pinned file guard", () => {
  kernelTest(
    "a guard pinned by a process that exited keeps killing; adopt resumes; destroy ends it",
    async () => {
      dir = mkdtempSync("/tmp/ward-test-");
      const secret = join(dir, "secret");
      const later = join(dir, "later");
      writeFileSync(secret, SECRET);
      writeFileSync(later, SECRET);
      pinDir = `/sys/fs/bpf/ward-test-guard-${process.pid}`;
      // The maker: pins the guard, protects the file, exits without destroying it.
      const maker = `
        import { FileGuard } from ${JSON.stringify(join(root, "src/sensors/guard.ts"))};
        const g = FileGuard.open({ pinDir: ${JSON.stringify(pinDir)} });
        g.protect(${JSON.stringify(secret)}, { action: "kill" });
        g.close();
        console.log("pinned");
      `;
      const made = spawnSync(bun, ["-e", maker], { encoding: "utf8", cwd: root, timeout: 60_000 });
      expect(made.stderr).toBe("");
      expect(made.stdout.trim()).toBe("pinned");

      // Nobody holds an fd now: the pins alone enforce.
      const r1 = cat(secret);
      expect(r1.signal).toBe("SIGKILL");
      expect(r1.stdout).toBe("");

      // A second open on the same pins is refused rather than doubling the programs.
      expect(() => FileGuard.open({ pinDir })).toThrow(/already holds pinned objects/);

      adopted = FileGuard.adopt(pinDir);
      adopted.events();
      const r2 = cat(secret);
      expect(r2.signal).toBe("SIGKILL");
      const ev = (await adopted.nextEvents(2000)).find((e) => e.tgid === r2.pid);
      expect(ev?.action).toBe("kill");
      // The adopted guard's tables continue: a new rule gets a fresh id, unprotect finds the old key.
      const rule = adopted.protect(later, { action: "kill" });
      expect(rule).toBe(2);
      expect(cat(later).signal).toBe("SIGKILL");
      expect(adopted.unprotect(secret)).toBe(true);
      expect(cat(secret).stdout).toBe(SECRET);

      adopted.destroy();
      adopted = undefined;
      expect(existsSync(pinDir)).toBe(false);
      expect(cat(later).stdout).toBe(SECRET);
    },
    90_000,
  );
});
