// A second kernel under qemu, for what the host kernel forbids (BPF LSM, kprobes, modules).
// Debian's 6.1 cloud kernel is fetched once with apt and cached under .cache/vm/; an
// initramfs is assembled per run (busybox, a `bun build --compile` guest program and its
// glibc libraries, any extra files); qemu boots it with BPF LSM enabled, the guest prints
// result lines on the serial console after a marker, and the host parses them.
//
// `bun run build/vm.ts` boots a busybox-only VM and prints the boot line: a smoke check.
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { aptUpdateOnce, ensureSystemPackages } from "./system.ts";

const root = join(import.meta.dir, "..");

/** Every result line the guest prints starts with this; the JSON object follows. */
export const VM_MARKER = "@@WARD-VM ";

/**
 * The kernel command line: BPF LSM on (after the defaults Debian's kernel would pick);
 * loglevel=1 keeps kernel messages (a module's taint warning, say) from interleaving with the
 * guest's result lines on the one serial console; panics (KERN_EMERG) still show.
 */
export const VM_APPEND = "console=ttyS0 lsm=lockdown,capability,landlock,yama,bpf quiet loglevel=1 panic=-1";

export class VmError extends Error {
  override name = "VmError";
}

export interface VmKernel {
  /** e.g. "6.1.0-57-cloud-amd64" */
  release: string;
  vmlinuz: string;
  /** /lib/modules/<release> of that kernel, extracted */
  modulesDir: string;
}

export function vmCacheDir(): string {
  const dir = join(root, ".cache", "vm");
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** qemu and busybox-static from Debian, installed when missing. */
export function ensureVmTools(): void {
  ensureSystemPackages([["/usr/bin/qemu-system-x86_64", "qemu-system-x86"]]);
  if (!existsSync("/usr/bin/qemu-system-x86_64")) throw new VmError("qemu-system-x86_64 is missing (apt-get install qemu-system-x86)");
}

function extractedKernel(dir: string): VmKernel | undefined {
  const boot = join(dir, "boot");
  if (!existsSync(boot)) return undefined;
  const image = readdirSync(boot).find((f) => f.startsWith("vmlinuz-"));
  if (image === undefined) return undefined;
  const release = image.slice("vmlinuz-".length);
  return { release, vmlinuz: join(boot, image), modulesDir: join(dir, "lib", "modules", release) };
}

/** Compare Debian ABI numbers in "linux-image-6.1.0-57-cloud-amd64-unsigned". */
function abiOf(pkg: string): number {
  return Number(/^linux-image-6\.1\.0-(\d+)-/.exec(pkg)?.[1] ?? -1);
}

function newestKernelPackage(): string | undefined {
  const search = spawnSync("apt-cache", ["search", "--names-only", "^linux-image-6\\.1\\.0-[0-9]+-cloud-amd64-unsigned$"], { encoding: "utf8" });
  return (search.stdout ?? "")
    .split("\n")
    .map((l) => l.split(" ")[0] ?? "")
    .filter((p) => abiOf(p) >= 0)
    .sort((a, b) => abiOf(b) - abiOf(a))[0];
}

/**
 * The cached 6.1 kernel, downloading and extracting it the first time. Any kernel already
 * extracted in the cache is used as is, so a prepared machine needs no network.
 */
export function ensureVmKernel(): VmKernel {
  const cache = vmCacheDir();
  for (const entry of readdirSync(cache).sort((a, b) => abiOf(b) - abiOf(a))) {
    if (!entry.startsWith("linux-image-")) continue;
    const k = extractedKernel(join(cache, entry));
    if (k !== undefined) return k;
  }
  let pkg = newestKernelPackage();
  if (pkg === undefined && process.getuid?.() === 0) {
    // A fresh machine may have no apt lists yet.
    aptUpdateOnce();
    pkg = newestKernelPackage();
  }
  if (pkg === undefined) throw new VmError("no linux-image-6.1.0-*-cloud-amd64-unsigned package in the apt lists (run apt-get update)");
  const dl = join(cache, "download");
  rmSync(dl, { recursive: true, force: true });
  mkdirSync(dl, { recursive: true });
  const get = spawnSync("apt-get", ["download", pkg], { cwd: dl, encoding: "utf8" });
  const deb = readdirSync(dl).find((f) => f.endsWith(".deb"));
  if (get.status !== 0 || deb === undefined) throw new VmError(`apt-get download ${pkg} failed: ${get.stderr}`);
  const dest = join(cache, pkg);
  const x = spawnSync("dpkg", ["-x", join(dl, deb), dest], { encoding: "utf8" });
  rmSync(dl, { recursive: true, force: true });
  if (x.status !== 0) throw new VmError(`dpkg -x ${deb} failed: ${x.stderr}`);
  const k = extractedKernel(dest);
  if (k === undefined) throw new VmError(`${pkg} has no boot/vmlinuz-*`);
  return k;
}

/** One initramfs member. Exactly one of file, data, symlink, dir. */
export interface InitramfsEntry {
  /** absolute path inside the VM */
  path: string;
  /** host file to copy */
  file?: string;
  data?: string | Uint8Array;
  symlink?: string;
  dir?: true;
  /** permission bits; files copied from the host keep theirs */
  mode?: number;
}

/** newc cpio (the format the kernel unpacks): 110-byte ASCII header, name, data, 4-byte padding. */
export function cpioNewc(entries: Array<{ name: string; mode: number; data: Uint8Array }>): Uint8Array {
  const chunks: Uint8Array[] = [];
  let size = 0;
  const enc = new TextEncoder();
  const push = (b: Uint8Array) => {
    chunks.push(b);
    size += b.length;
  };
  const pad = () => {
    if (size % 4) push(new Uint8Array(4 - (size % 4)));
  };
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  let ino = 1;
  const record = (name: string, mode: number, data: Uint8Array) => {
    const nameBytes = enc.encode(`${name}\0`);
    const fields = [ino++, mode, 0, 0, 1, 0, data.length, 0, 0, 0, 0, nameBytes.length, 0];
    push(enc.encode(`070701${fields.map(hex).join("")}`));
    push(nameBytes);
    pad();
    push(data);
    pad();
  };
  for (const e of entries) record(e.name, e.mode, e.data);
  record("TRAILER!!!", 0, new Uint8Array(0));
  const out = new Uint8Array(size);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

const S_IFDIR = 0o040000;
const S_IFREG = 0o100000;
const S_IFLNK = 0o120000;

/** Write a gzip'd newc archive (gzip -1: the archive is rebuilt each run, speed wins). */
export function buildInitramfs(entries: InitramfsEntry[], out: string): string {
  const dirs = new Set<string>();
  const files: Array<{ name: string; mode: number; data: Uint8Array }> = [];
  const addParents = (path: string) => {
    const parts = path.split("/").filter(Boolean);
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join("/"));
  };
  const enc = new TextEncoder();
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, "");
    addParents(name);
    if (e.dir) dirs.add(name);
    else if (e.symlink !== undefined) files.push({ name, mode: S_IFLNK | 0o777, data: enc.encode(e.symlink) });
    else if (e.file !== undefined) {
      const st = statSync(e.file);
      files.push({ name, mode: S_IFREG | (e.mode ?? st.mode & 0o7777), data: readFileSync(e.file) });
    } else if (e.data !== undefined) {
      files.push({ name, mode: S_IFREG | (e.mode ?? 0o644), data: typeof e.data === "string" ? enc.encode(e.data) : e.data });
    } else throw new VmError(`initramfs entry ${e.path} has no content`);
  }
  const dirEntries = [...dirs].sort().map((name) => ({ name, mode: S_IFDIR | 0o755, data: new Uint8Array(0) }));
  writeFileSync(out, gzipSync(cpioNewc([...dirEntries, ...files]), { level: 1 }));
  return out;
}

/**
 * A dynamically linked host binary and the shared libraries ldd names (the bun-compiled
 * guest links only glibc basics), each at its host path so the ELF interpreter finds them.
 */
export function binaryWithLibs(binary: string, pathInVm: string): InitramfsEntry[] {
  const entries: InitramfsEntry[] = [{ path: pathInVm, file: binary, mode: 0o755 }];
  const ldd = spawnSync("ldd", [binary], { encoding: "utf8" });
  if (ldd.status !== 0) return entries; // static
  for (const line of ldd.stdout.split("\n")) {
    const m = /(?:=>\s*)?(\/\S+)\s+\(0x/.exec(line);
    const lib = m?.[1];
    if (lib === undefined) continue;
    entries.push({ path: lib, file: realpathSync(lib), mode: 0o755 });
  }
  return entries;
}

/** busybox at /bin/busybox; /init runs `busybox --install -s` itself. */
export function busyboxEntries(): InitramfsEntry[] {
  return [{ path: "/bin/busybox", file: "/bin/busybox", mode: 0o755 }];
}

/**
 * /init: mounts what a BPF program needs (proc, sys, devtmpfs, bpffs, tracefs, debugfs,
 * securityfs, tmpfs on /tmp), prints the boot record, runs `command`, prints the done record
 * with its exit status and powers off (-no-reboot makes qemu exit then).
 */
export function initScript(command: string): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin:/sbin:/usr/bin
mkdir -p /proc /sys /dev /tmp /run
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mount -t tmpfs tmp /tmp
mount -t bpf bpf /sys/fs/bpf
mount -t tracefs tracefs /sys/kernel/tracing
mount -t debugfs debugfs /sys/kernel/debug
mount -t securityfs none /sys/kernel/security
echo '${VM_MARKER}{"kind":"boot","release":"'"$(uname -r)"'","lsm":"'"$(cat /sys/kernel/security/lsm)"'"}'
${command}
echo '${VM_MARKER}{"kind":"done","status":'"$?"'}'
poweroff -f
`;
}

/** Compile a TypeScript guest program to one executable (bun build --compile). */
export function compileGuest(entry: string, out: string): string {
  const bun = join(root, "node_modules", ".bin", "bun");
  const r = spawnSync(bun, ["build", "--compile", entry, "--outfile", out], { cwd: root, encoding: "utf8" });
  if (r.status !== 0) throw new VmError(`bun build --compile ${entry} failed: ${r.stderr}${r.stdout}`);
  return out;
}

export type VmRecord = Record<string, unknown> & { kind?: string };

export interface VmRun {
  /** the whole serial console, \r removed */
  console: string;
  /** parsed marker lines, in order */
  records: VmRecord[];
  exitCode: number | null;
  timedOut: boolean;
  durationMs: number;
}

export interface VmOptions {
  kernel: VmKernel;
  initramfs: string;
  append?: string;
  memoryMb?: number;
  timeoutMs: number;
}

export function parseRecords(console: string): VmRecord[] {
  const records: VmRecord[] = [];
  for (const line of console.split("\n")) {
    const at = line.indexOf(VM_MARKER);
    if (at < 0) continue;
    try {
      const v: unknown = JSON.parse(line.slice(at + VM_MARKER.length));
      if (v !== null && typeof v === "object" && !Array.isArray(v)) records.push(v as VmRecord);
    } catch {
      records.push({ kind: "unparsed", line });
    }
  }
  return records;
}

/** Boot the VM and wait for it to power off (or kill it at the timeout). */
export function runVm(opts: VmOptions): Promise<VmRun> {
  const args = [
    "-nographic",
    "-cpu", "max", // bun needs AVX2; qemu64 stops it with "Illegal instruction"
    "-smp", "2",
    "-m", `${opts.memoryMb ?? 2048}M`,
    "-kernel", opts.kernel.vmlinuz,
    "-initrd", opts.initramfs,
    "-append", opts.append ?? VM_APPEND,
    "-no-reboot",
    "-nic", "none",
    "-monitor", "none",
    "-serial", "stdio",
  ];
  // KVM when it works, else software emulation: qemu tries the accelerators in order.
  args.unshift("-accel", "kvm", "-accel", "tcg");
  // -nographic already routes the serial port to stdio; drop the duplicate -serial.
  args.splice(args.indexOf("-serial"), 2);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let timedOut = false;
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", (d: string) => (out += d));
    child.stderr.on("data", (d: string) => (out += d));
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, opts.timeoutMs);
    child.on("error", (e) => {
      clearTimeout(timer);
      reject(new VmError(`start qemu: ${e.message}`));
    });
    child.on("close", (code) => {
      clearTimeout(timer);
      const console = out.replace(/\r/g, "");
      resolve({ console, records: parseRecords(console), exitCode: code, timedOut, durationMs: Date.now() - started });
    });
  });
}

if (import.meta.main) {
  ensureVmTools();
  const kernel = ensureVmKernel();
  const initrd = buildInitramfs(
    [...busyboxEntries(), { path: "/init", data: initScript("echo hello from $(uname -r)"), mode: 0o755 }],
    join(vmCacheDir(), "smoke.cpio.gz"),
  );
  const run = await runVm({ kernel, initramfs: initrd, timeoutMs: 120_000 });
  process.stdout.write(`${JSON.stringify(run.records)}\n${run.durationMs} ms, exit ${run.exitCode}${run.timedOut ? " (timed out)" : ""}\n`);
}
