// Real OCI containers for tests and benches: Debian's runc (installed on first use), a
// busybox-static rootfs, bundles whose config.json starts from `runc spec` (so it is what this
// runc version writes) with the process, cgroupsPath, annotations and hooks a test sets.
//
// On this host (hybrid cgroups: v1 controllers, v2 at /sys/fs/cgroup/unified, no systemd),
// runc's cgroupfs driver puts a container with linux.cgroupsPath "/a/b" into /a/b of every v1
// hierarchy *and* of the v2 one (probed: /proc/PID/cgroup of the init shows "0::/a/b"), which
// is the cgroup the OCI hook reports. runc removes the container's own cgroup on delete but
// not the parents it created: removeCgroupParents() does.
import { spawnSync } from "node:child_process";
import { chmodSync, closeSync, copyFileSync, openSync, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ensureSystemPackages } from "../../build/system.ts";
import { cgroupV2Mount } from "../../src/workloads/cgroup-identity.ts";

export const RUNC = "/usr/sbin/runc";

export function ensureRunc(): void {
  ensureSystemPackages([
    [RUNC, "runc"],
    ["/bin/busybox", "busybox-static"],
  ]);
}

/** A rootfs with busybox-static and its applets as symlinks (cat, sh, sleep, ...). */
export function makeRootfs(dir: string, files: Record<string, string> = {}): string {
  mkdirSync(join(dir, "bin"), { recursive: true });
  for (const d of ["proc", "sys", "dev", "tmp", "etc"]) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync("/bin/busybox", join(dir, "bin", "busybox"));
  chmodSync(join(dir, "bin", "busybox"), 0o755);
  for (const a of ["cat", "sh", "sleep", "echo", "true"]) if (!existsSync(join(dir, "bin", a))) symlinkSync("busybox", join(dir, "bin", a));
  for (const [p, content] of Object.entries(files)) writeFileSync(join(dir, p), content);
  return dir;
}

export interface OciHookEntry {
  path: string;
  args?: string[];
  env?: string[];
  timeout?: number;
}

export interface BundleSpec {
  rootfs: string;
  args: string[];
  cgroupsPath?: string;
  annotations?: Record<string, string>;
  hooks?: { createRuntime?: OciHookEntry[]; poststop?: OciHookEntry[] };
}

type Json = Record<string, unknown>;
let specTemplate: Json | undefined;

/** `runc spec` once, as the template every bundle edits. */
function template(scratch: string): Json {
  if (specTemplate !== undefined) return structuredClone(specTemplate);
  mkdirSync(scratch, { recursive: true });
  const r = spawnSync(RUNC, ["spec", "--bundle", scratch], { encoding: "utf8" });
  if (r.status !== 0) throw new Error(`runc spec: ${r.stderr}`);
  specTemplate = JSON.parse(readFileSync(join(scratch, "config.json"), "utf8")) as Json;
  return structuredClone(specTemplate);
}

/** Writes DIR/config.json for the spec; the rootfs may be shared by several bundles (read-only). */
export function makeBundle(dir: string, spec: BundleSpec): string {
  mkdirSync(dir, { recursive: true });
  const c = template(join(dir, ".spec"));
  const proc = c.process as Json;
  proc.args = spec.args;
  proc.terminal = false;
  c.root = { path: spec.rootfs, readonly: true };
  const linux = c.linux as Json;
  if (spec.cgroupsPath !== undefined) linux.cgroupsPath = spec.cgroupsPath;
  if (spec.annotations !== undefined) c.annotations = spec.annotations;
  if (spec.hooks !== undefined) c.hooks = spec.hooks;
  writeFileSync(join(dir, "config.json"), JSON.stringify(c, null, 2));
  return dir;
}

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `runc --root ROOT run --bundle DIR ID`, foreground, bounded. */
export function runcRun(root: string, bundle: string, id: string, timeoutMs = 30_000): RunResult {
  const t0 = performance.now();
  const r = spawnSync(RUNC, ["--root", root, "run", "--bundle", bundle, id], { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? "", stderr: r.stderr ?? "", ms: performance.now() - t0 };
}

/** Any runc subcommand under ROOT. */
export function runc(root: string, args: string[], timeoutMs = 30_000): RunResult {
  const t0 = performance.now();
  const r = spawnSync(RUNC, ["--root", root, ...args], { encoding: "utf8", timeout: timeoutMs, stdio: ["ignore", "pipe", "pipe"] });
  return { status: r.status, signal: r.signal, stdout: r.stdout ?? "", stderr: r.stderr ?? "", ms: performance.now() - t0 };
}

/** Forces every container under ROOT away (a failed test must not leave them running). */
export function deleteAll(root: string): void {
  if (!existsSync(root)) return;
  for (const id of readdirSync(root)) runc(root, ["delete", "--force", id], 10_000);
}

/** The cgroup directories of every mounted hierarchy (v1 controllers and v2). */
function hierarchies(): string[] {
  const out: string[] = [];
  const v2 = cgroupV2Mount();
  if (v2 !== undefined) out.push(v2);
  if (existsSync("/sys/fs/cgroup")) {
    for (const d of readdirSync("/sys/fs/cgroup")) {
      const p = join("/sys/fs/cgroup", d);
      if (p !== v2 && existsSync(join(p, "cgroup.procs"))) out.push(p);
    }
  }
  return out;
}

/** Removes PARENT (e.g. "/ward-test-123") below every hierarchy, deepest first; leaves non-empty ones. */
export function removeCgroupParents(parent: string): void {
  const rm = (dir: string): void => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) rm(join(dir, e.name));
    try {
      rmdirSync(dir);
    } catch {
      // still has processes: a container still running; deleteAll() first
    }
  };
  for (const h of hierarchies()) rm(join(h, parent));
}

/** `runc run --detach`: returns once the container runs (stdio not kept: a detached container would hold pipes open). */
export function runcRunDetached(root: string, bundle: string, id: string, timeoutMs = 30_000): RunResult {
  const t0 = performance.now();
  // runc's stderr goes to a file: the container inherits it, and a pipe would stay open until the container exits.
  const errFile = join(bundle, "runc-detach.stderr");
  const fd = openSync(errFile, "w");
  let r: ReturnType<typeof spawnSync>;
  try {
    r = spawnSync(RUNC, ["--root", root, "run", "--detach", "--bundle", bundle, id], { timeout: timeoutMs, stdio: ["ignore", "ignore", fd] });
  } finally {
    closeSync(fd);
  }
  return { status: r.status, signal: r.signal, stdout: "", stderr: readFileSync(errFile, "utf8"), ms: performance.now() - t0 };
}
