// Debian packages the build and the suite need. Installed only when missing, as root,
// so a fresh CI machine gets them and a prepared one pays nothing.
//
// Install output never reaches stdout: commands like `bench/enforce.ts --json` and the agent
// itself (`npm start` prints JSON lines) own their stdout, and a first-use install used to
// print apt's progress into it. Every install step goes through runInstallStep(), which sends
// the tool's stdout and stderr to a log file and writes one line to stderr; on failure the
// log's tail is in the error.
import { spawnSync } from "node:child_process";
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");

/** Where install steps log (under the ignored .cache/). Tests point it elsewhere. */
export function installLogPath(): string {
  return process.env.WARD_INSTALL_LOG ?? join(root, ".cache", "install.log");
}

export class InstallError extends Error {
  override name = "InstallError";
}

/** command or file that proves the package is there -> Debian package name */
const needed: Array<[probe: string, pkg: string]> = [
  ["/usr/bin/clang", "clang"],
  ["/usr/bin/llvm-strip", "llvm"],
  ["/usr/sbin/bpftool", "bpftool"],
  ["/bin/busybox", "busybox-static"],
];

/**
 * Runs one install command with stdin closed and its stdout and stderr appended to the
 * install log. Returns the exit status; the caller decides whether that is fatal.
 */
export function runInstallStep(cmd: string, args: string[], env: NodeJS.ProcessEnv = process.env): number {
  const log = installLogPath();
  mkdirSync(join(log, ".."), { recursive: true });
  appendFileSync(log, `\n$ ${cmd} ${args.join(" ")}\n`);
  const fd = openSync(log, "a");
  try {
    const r = spawnSync(cmd, args, { stdio: ["ignore", fd, fd], env });
    if (r.error) appendFileSync(log, `${r.error.message}\n`);
    return r.status ?? 1;
  } finally {
    closeSync(fd);
  }
}

function logTail(lines: number): string {
  try {
    return readFileSync(installLogPath(), "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "";
  }
}

let aptUpdated = false;

/** `apt-get update`, once per process: a fresh machine has no package lists. */
export function aptUpdateOnce(): void {
  if (aptUpdated) return;
  aptUpdated = true;
  runInstallStep("apt-get", ["update", "-qq"], { ...process.env, DEBIAN_FRONTEND: "noninteractive" });
}

/** The packages among `probes` whose probe path is missing. */
export function missingPackages(extra: Array<[string, string]> = []): string[] {
  return [...new Set([...needed, ...extra].filter(([probe]) => !existsSync(probe)).map(([, pkg]) => pkg))];
}

export function ensureSystemPackages(extra: Array<[string, string]> = []): void {
  const missing = missingPackages(extra);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0) {
    process.stderr.write(`missing packages (install as root): ${missing.join(" ")}\n`);
    return;
  }
  process.stderr.write(`ward: installing Debian packages: ${missing.join(" ")} (log: ${installLogPath()})\n`);
  const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
  aptUpdateOnce();
  const status = runInstallStep("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...missing], env);
  if (status !== 0) {
    throw new InstallError(`apt-get install ${missing.join(" ")} failed (exit ${status}); last lines of ${installLogPath()}:\n${logTail(15)}`);
  }
}
