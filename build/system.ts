// Debian packages the build and the suite need. Installed only when missing, as root,
// so a fresh CI machine gets them and a prepared one pays nothing.
import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";

/** command or file that proves the package is there -> Debian package name */
const needed: Array<[probe: string, pkg: string]> = [
  ["/usr/bin/clang", "clang"],
  ["/usr/bin/llvm-strip", "llvm"],
  ["/usr/sbin/bpftool", "bpftool"],
  ["/bin/busybox", "busybox-static"],
];

export function ensureSystemPackages(extra: Array<[string, string]> = []): void {
  const missing = [...needed, ...extra].filter(([probe]) => !existsSync(probe)).map(([, pkg]) => pkg);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    process.stderr.write(`missing packages (install as root): ${missing.join(" ")}\n`);
    return;
  }
  process.stderr.write(`installing Debian packages: ${missing.join(" ")}\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  spawnSync("apt-get", ["update", "-qq"], { stdio: "inherit", env });
  const r = spawnSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], { stdio: "inherit", env });
  if (r.status !== 0) throw new Error(`apt-get install ${missing.join(" ")} failed (exit ${r.status})`);
}
