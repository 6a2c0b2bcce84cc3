// A second kernel under qemu, for what the host kernel forbids (BPF LSM, kprobes, modules).
// Debian's 6.1 cloud kernel is fetched once with apt and cached under .cache/vm/; an
// initramfs is assembled per run (busybox, a `bun build --compile` guest program and its
// glibc libraries, any extra files); qemu boots it with BPF LSM enabled, the guest prints
// result lines on the serial console after a marker, and the host parses them.
//
// The accelerator: KVM when /dev/kvm is there and the guest speaks under it, else TCG (a
// nested KVM may abort qemu or never run the guest); WARD_VM_ACCEL=kvm|tcg|auto forces it, and
// every run says which one ran (runVm below).
//
// `bun run build/vm.ts` boots a busybox-only VM and prints the boot line: a smoke check.
import { spawn, spawnSync } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, readdirSync, realpathSync, rmSync, statSync, writeFileSync } from "node:fs";
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
 * with its exit status and powers off (-no-reboot makes qemu exit then). The boot record
 * carries the guest's own view of the accelerator: `hypervisor` is what the kernel logged as
 * "Hypervisor detected: ..." ("KVM" under qemu's KVM, which exposes the KVM CPUID leaves;
 * empty under TCG, which does not).
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
hv=$(dmesg | sed -n 's/.*Hypervisor detected: //p' | head -n 1 | tr -cd 'A-Za-z0-9 .-')
echo '${VM_MARKER}{"kind":"boot","release":"'"$(uname -r)"'","lsm":"'"$(cat /sys/kernel/security/lsm)"'","hypervisor":"'"$hv"'"}'
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

/** The qemu accelerator a run used. */
export type VmAccel = "kvm" | "tcg";
/** What to use: one accelerator, or auto (KVM when it boots the guest, else TCG). */
export type VmAccelMode = VmAccel | "auto";

/** Forces the accelerator for every VM of the process: kvm, tcg or auto (the default). */
export const VM_ACCEL_ENV = "WARD_VM_ACCEL";

/** The accelerator mode WARD_VM_ACCEL asks for; a value other than kvm, tcg, auto is an error. */
export function vmAccelMode(env: Record<string, string | undefined> = process.env): VmAccelMode {
  const v = env[VM_ACCEL_ENV];
  if (v === undefined || v === "") return "auto";
  if (v === "auto" || v === "kvm" || v === "tcg") return v;
  throw new VmError(`${VM_ACCEL_ENV}=${JSON.stringify(v)}: expected kvm, tcg or auto`);
}

/** Why KVM cannot even be tried (no device, no access), or undefined when qemu may try it. */
export function kvmUnavailable(device = "/dev/kvm"): string | undefined {
  if (!existsSync(device)) return `no ${device}`;
  try {
    accessSync(device, constants.R_OK | constants.W_OK);
  } catch (e) {
    return `${device} is not usable: ${(e as NodeJS.ErrnoException).code ?? String(e)}`;
  }
  return undefined;
}

/**
 * The accelerator and CPU model arguments. Bun needs AVX2, and qemu64 stops it with "Illegal
 * instruction", so both models have it:
 * - KVM: the host CPU without IA32_ARCH_CAPABILITIES. With `max` or `host` as is, qemu writes
 *   that MSR (0x10a) at start-up; a nested hypervisor that advertises the feature but refuses
 *   the write makes qemu abort at once ("failed to set MSR 0x10a to 0x69", kvm_buf_set_msrs
 *   assertion; measured with qemu 7.2). Without the feature qemu never writes it and the
 *   guest kernel assumes an older CPU (it only enables mitigations it would otherwise skip).
 * - TCG: `max`, which has AVX2 in software from qemu 7.2 on.
 */
export function accelArgs(accel: VmAccel): string[] {
  return accel === "kvm" ? ["-accel", "kvm", "-cpu", "host,-arch-capabilities"] : ["-accel", "tcg", "-cpu", "max"];
}

export interface VmRun {
  /** the whole serial console (and qemu's stderr), \r removed */
  console: string;
  /** parsed marker lines, in order */
  records: VmRecord[];
  exitCode: number | null;
  timedOut: boolean;
  /** of the whole call, a failed KVM attempt included */
  durationMs: number;
  /** the accelerator this run booted under */
  accel: VmAccel;
  /** auto mode on TCG: why not KVM (no device, or what the KVM attempt did); null otherwise */
  accelFallback: string | null;
}

export interface VmOptions {
  kernel: VmKernel;
  initramfs: string;
  append?: string;
  memoryMb?: number;
  /** for the whole call, a failed KVM attempt included */
  timeoutMs: number;
  /** default: vmAccelMode() (WARD_VM_ACCEL, else auto) */
  accel?: VmAccelMode;
  /**
   * How long a KVM boot may go without a marker line before it counts as broken (auto falls
   * back to TCG, forced kvm fails). A working KVM guest speaks within seconds; a nested KVM
   * that cannot run the guest kernel spins silently, so waiting for the whole timeout would
   * only delay the fallback. Measured on a machine whose /dev/kvm is the kvm_pvm module
   * (pagetable-based nested KVM): with the MSR fixed (accelArgs) qemu starts, but the 6.1
   * kernel printed nothing after its decompressor in 2 minutes, qemu burning CPU in the host
   * kernel; the same guest under TCG prints its boot record in about 4 s. Default 30 s.
   */
  speakTimeoutMs?: number;
  /** the qemu binary; tests substitute a fake */
  qemu?: string;
  /** the KVM device whose presence decides whether KVM is tried; tests substitute a file */
  kvmDevice?: string;
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

/** One line for a test log: the accelerator and, on a fallback, why. */
export function accelSummary(run: Pick<VmRun, "accel" | "accelFallback" | "durationMs">): string {
  const why = run.accelFallback === null ? "" : ` (fallback: ${run.accelFallback})`;
  return `accel ${run.accel}${why}, ${seconds(run.durationMs)}`;
}

const DEFAULT_SPEAK_TIMEOUT_MS = 30_000;

/**
 * What auto mode settled on, per qemu binary and KVM device: the first boot of a process that
 * finds KVM broken pays for the failed attempt, the others go straight to TCG. Only a
 * conclusive outcome is kept: an attempt that booted (KVM) or a KVM failure followed by a TCG
 * boot that spoke. When neither spoke the guest itself is at fault, and nothing is learned.
 */
const accelDecisions = new Map<string, { accel: VmAccel; fallback: string | null }>();

interface Attempt {
  run: Omit<VmRun, "accel" | "accelFallback" | "durationMs">;
  /** set when the guest never printed a marker line: what happened instead */
  silent: string | undefined;
}

function seconds(ms: number): string {
  return `${ms < 10_000 ? (ms / 1000).toFixed(1) : (ms / 1000).toFixed(0)} s`;
}

/** Last lines qemu wrote to stderr, for a reason string. */
function stderrTail(stderr: string): string {
  const lines = stderr.replace(/\r/g, "").split("\n").map((l) => l.trim()).filter(Boolean);
  const tail = lines.slice(-2).join(" / ");
  return tail.length > 400 ? `${tail.slice(0, 400)}...` : tail;
}

/**
 * Run qemu once. With speakTimeoutMs, a guest that prints no marker line by then is killed
 * and the attempt reports it as silent; a qemu that exits before any marker line (an abort
 * at start-up, a kernel panic) is silent too.
 */
function attempt(qemu: string, args: string[], timeoutMs: number, speakTimeoutMs: number | undefined): Promise<Attempt> {
  return new Promise((resolve, reject) => {
    const child = spawn(qemu, args, { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    let stderr = "";
    let spoke = false;
    let timedOut = false;
    let mute = false;
    const onData = (d: string) => {
      // A marker may straddle two chunks: search from just before the new data.
      const from = Math.max(0, out.length - VM_MARKER.length);
      out += d;
      if (!spoke && out.indexOf(VM_MARKER, from) >= 0) {
        spoke = true;
        if (speakTimer !== undefined) clearTimeout(speakTimer);
      }
    };
    child.stdout.setEncoding("utf8");
    child.stderr.setEncoding("utf8");
    child.stdout.on("data", onData);
    child.stderr.on("data", (d: string) => {
      stderr += d;
      onData(d);
    });
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill("SIGKILL");
    }, timeoutMs);
    const speakTimer =
      speakTimeoutMs === undefined || speakTimeoutMs >= timeoutMs
        ? undefined
        : setTimeout(() => {
            if (spoke) return;
            mute = true;
            child.kill("SIGKILL");
          }, speakTimeoutMs);
    const stop = () => {
      clearTimeout(timer);
      if (speakTimer !== undefined) clearTimeout(speakTimer);
    };
    child.on("error", (e) => {
      stop();
      reject(new VmError(`start ${qemu}: ${e.message}`));
    });
    child.on("close", (code, signal) => {
      stop();
      const console = out.replace(/\r/g, "");
      let silent: string | undefined;
      if (!spoke) {
        const tail = stderrTail(stderr);
        if (mute) silent = `the guest printed no result line within ${seconds(speakTimeoutMs ?? 0)} (qemu killed)`;
        else if (timedOut) silent = `the guest printed no result line within the ${seconds(timeoutMs)} timeout`;
        else silent = `qemu exited (${signal ?? `code ${code}`}) before the guest spoke${tail ? `: ${tail}` : ""}`;
      }
      resolve({ run: { console, records: parseRecords(console), exitCode: code, timedOut: timedOut || mute }, silent });
    });
  });
}

/**
 * Boot the VM and wait for it to power off (or kill it at the timeout). The accelerator is
 * chosen here, not by qemu's own `-accel kvm -accel tcg` fallback: that one only covers a KVM
 * that fails to initialise, not a qemu that aborts a moment later or a guest that never runs,
 * and it would not say which accelerator ran.
 * - tcg: TCG.
 * - kvm: KVM; no usable device, a qemu that dies or a guest that stays silent is a VmError.
 * - auto: KVM when the device is there; if the guest does not speak under it, once more under
 *   TCG, with the reason in accelFallback. The outcome is remembered for the process.
 */
export async function runVm(opts: VmOptions): Promise<VmRun> {
  const mode = opts.accel ?? vmAccelMode();
  const qemu = opts.qemu ?? "qemu-system-x86_64";
  const device = opts.kvmDevice ?? "/dev/kvm";
  const speakTimeoutMs = opts.speakTimeoutMs ?? DEFAULT_SPEAK_TIMEOUT_MS;
  const base = [
    "-nographic", // routes the serial port to stdio
    "-smp", "2",
    "-m", `${opts.memoryMb ?? 2048}M`,
    "-kernel", opts.kernel.vmlinuz,
    "-initrd", opts.initramfs,
    "-append", opts.append ?? VM_APPEND,
    "-no-reboot",
    "-nic", "none",
    "-monitor", "none",
  ];
  const started = Date.now();
  const finish = (a: Attempt, accel: VmAccel, accelFallback: string | null): VmRun => ({ ...a.run, accel, accelFallback, durationMs: Date.now() - started });
  const forced = opts.accel === undefined ? `${VM_ACCEL_ENV}=kvm` : "accel kvm";

  if (mode === "tcg") return finish(await attempt(qemu, [...accelArgs("tcg"), ...base], opts.timeoutMs, undefined), "tcg", null);

  if (mode === "kvm") {
    const why = kvmUnavailable(device);
    if (why !== undefined) throw new VmError(`${forced} was asked for, but ${why}`);
    const a = await attempt(qemu, [...accelArgs("kvm"), ...base], opts.timeoutMs, speakTimeoutMs);
    if (a.silent !== undefined) throw new VmError(`${forced} was asked for, but KVM does not boot the guest here: ${a.silent}; use ${VM_ACCEL_ENV}=auto or tcg`);
    return finish(a, "kvm", null);
  }

  const key = `${qemu}\0${device}`;
  const known = accelDecisions.get(key);
  if (known !== undefined) {
    return finish(await attempt(qemu, [...accelArgs(known.accel), ...base], opts.timeoutMs, undefined), known.accel, known.fallback);
  }
  const why = kvmUnavailable(device);
  if (why !== undefined) {
    accelDecisions.set(key, { accel: "tcg", fallback: why });
    return finish(await attempt(qemu, [...accelArgs("tcg"), ...base], opts.timeoutMs, undefined), "tcg", why);
  }
  // At most half the time goes to finding out that KVM does not work.
  const kvm = await attempt(qemu, [...accelArgs("kvm"), ...base], opts.timeoutMs, Math.min(speakTimeoutMs, opts.timeoutMs / 2));
  if (kvm.silent === undefined) {
    accelDecisions.set(key, { accel: "kvm", fallback: null });
    return finish(kvm, "kvm", null);
  }
  const left = Math.max(1, opts.timeoutMs - (Date.now() - started));
  const fallback = `under KVM ${kvm.silent}`;
  const tcg = await attempt(qemu, [...accelArgs("tcg"), ...base], left, undefined);
  if (tcg.silent === undefined) accelDecisions.set(key, { accel: "tcg", fallback });
  return finish(tcg, "tcg", fallback);
}

if (import.meta.main) {
  ensureVmTools();
  const kernel = ensureVmKernel();
  const initrd = buildInitramfs(
    [...busyboxEntries(), { path: "/init", data: initScript("echo hello from $(uname -r)"), mode: 0o755 }],
    join(vmCacheDir(), "smoke.cpio.gz"),
  );
  const run = await runVm({ kernel, initramfs: initrd, timeoutMs: 120_000 });
  process.stdout.write(`${JSON.stringify(run.records)}\n${accelSummary(run)}, exit ${run.exitCode}${run.timedOut ? " (timed out)" : ""}\n`);
}
