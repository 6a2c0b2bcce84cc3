// test/kernel/sock-helper.c built twice for the socket policy suites (test/kernel/sock-addr,
// test/e2e/enforce-sock): the same static program at two paths, so a matchBinaries entry
// naming one tells them apart while everything else about them is equal.
import { spawnSync } from "node:child_process";
import { copyFileSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";

/** Compiles sock-helper.c to `denied` and copies it to `allowed` (mode 755); throws with cc's stderr. */
export function buildSockHelpers(denied: string, allowed: string): void {
  ensureSystemPackages([
    ["/usr/bin/cc", "gcc"],
    ["/usr/lib/x86_64-linux-gnu/libc.a", "libc6-dev"],
  ]);
  const cc = spawnSync("cc", ["-O2", "-static", "-o", denied, join(import.meta.dir, "..", "kernel", "sock-helper.c")], { encoding: "utf8" });
  if (cc.status !== 0) throw new Error(`cc sock-helper.c failed: ${cc.stderr}`);
  copyFileSync(denied, allowed);
  spawnSync("chmod", ["755", allowed]);
}
