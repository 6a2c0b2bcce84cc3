// The only place that talks to libc: a bun:ffi shim over syscall(2) and the few libc calls the
// loader needs (mmap, ioctl, close, epoll, setrlimit, statfs, mount), and inotify for the file
// guard's watch of binaries that do not exist yet (src/sensors/binary-watch.ts). Every failure becomes a
// SyscallError carrying the errno, read through __errno_location right after the failing call
// so nothing in between can overwrite it.
import { FFIType, dlopen, ptr, read, type Pointer } from "bun:ffi";
import { BpfCmd } from "./constants.ts";

const libc = dlopen("libc.so.6", {
  syscall: { args: ["i64", "i64", "i64", "i64", "i64", "i64"], returns: FFIType.i64_fast },
  __errno_location: { args: [], returns: "ptr" },
  mmap: { args: ["u64", "u64", "i32", "i32", "i32", "i64"], returns: FFIType.i64_fast },
  munmap: { args: ["u64", "u64"], returns: "i32" },
  ioctl: { args: ["i32", "u64", "u64"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  dup: { args: ["i32"], returns: "i32" },
  fcntl: { args: ["i32", "i32", "i32"], returns: "i32" },
  epoll_create1: { args: ["i32"], returns: "i32" },
  epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
  epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
  setrlimit: { args: ["i32", "ptr"], returns: "i32" },
  statfs: { args: ["ptr", "ptr"], returns: "i32" },
  mount: { args: ["ptr", "ptr", "ptr", "u64", "u64"], returns: "i32" },
  sysconf: { args: ["i32"], returns: "i64" },
  eventfd: { args: ["u32", "i32"], returns: "i32" },
  write: { args: ["i32", "ptr", "u64"], returns: "i64" },
  read: { args: ["i32", "ptr", "u64"], returns: "i64" },
  inotify_init1: { args: ["i32"], returns: "i32" },
  inotify_add_watch: { args: ["i32", "ptr", "u32"], returns: "i32" },
  inotify_rm_watch: { args: ["i32", "i32"], returns: "i32" },
});
const c = libc.symbols;

const isArm64 = process.arch === "arm64";
const SYS_bpf = isArm64 ? 280 : 321;
const SYS_perf_event_open = isArm64 ? 241 : 298;

const ERRNO: Record<number, [string, string]> = {
  1: ["EPERM", "operation not permitted"],
  2: ["ENOENT", "no such file or directory"],
  3: ["ESRCH", "no such process"],
  4: ["EINTR", "interrupted system call"],
  5: ["EIO", "input/output error"],
  6: ["ENXIO", "no such device or address"],
  7: ["E2BIG", "argument list too long"],
  9: ["EBADF", "bad file descriptor"],
  11: ["EAGAIN", "resource temporarily unavailable"],
  12: ["ENOMEM", "cannot allocate memory"],
  13: ["EACCES", "permission denied"],
  14: ["EFAULT", "bad address"],
  16: ["EBUSY", "device or resource busy"],
  17: ["EEXIST", "file exists"],
  19: ["ENODEV", "no such device"],
  20: ["ENOTDIR", "not a directory"],
  21: ["EISDIR", "is a directory"],
  22: ["EINVAL", "invalid argument"],
  24: ["EMFILE", "too many open files"],
  25: ["ENOTTY", "inappropriate ioctl for device"],
  28: ["ENOSPC", "no space left on device"],
  30: ["EROFS", "read-only file system"],
  34: ["ERANGE", "numerical result out of range"],
  38: ["ENOSYS", "function not implemented"],
  84: ["EILSEQ", "invalid or incomplete multibyte or wide character"],
  95: ["EOPNOTSUPP", "operation not supported"],
  110: ["ETIMEDOUT", "connection timed out"],
  111: ["ECONNREFUSED", "connection refused"],
  524: ["ENOTSUPP", "operation not supported by the kernel (ENOTSUPP)"],
};

/** Symbolic name of an errno ("EPERM"), or "errno N" when unknown. */
export function errnoName(n: number): string {
  return ERRNO[n]?.[0] ?? `errno ${n}`;
}

/** Lowercase description of an errno, as strerror would say it. */
export function errnoText(n: number): string {
  return ERRNO[n]?.[1] ?? "unknown error";
}

export class SyscallError extends Error {
  override name = "SyscallError";
  readonly code: string;
  constructor(
    readonly syscall: string,
    readonly command: string | undefined,
    readonly errno: number,
    message?: string,
  ) {
    const code = errnoName(errno);
    const what = command === undefined ? syscall : `${syscall}(${command})`;
    super(message ?? `${what}: ${code} (${errnoText(errno)})`);
    this.code = code;
  }
}

function errno(): number {
  const p = c.__errno_location();
  return p === null ? 0 : read.i32(p as Pointer, 0);
}

/** Pointer of a buffer for a syscall argument or an attr field; 0 for none. */
export function addr(buf: ArrayBufferView | null | undefined): number {
  if (buf === null || buf === undefined || buf.byteLength === 0) return 0;
  return ptr(buf as NodeJS.TypedArray | DataView);
}

/**
 * bpf(2) with a zero-padded attr buffer. Returns the result (an fd, or 0). The caller keeps every
 * buffer the attr points to referenced until this returns.
 */
export function bpf(cmd: BpfCmd, attr: Uint8Array): number {
  const r = Number(c.syscall(SYS_bpf, cmd, ptr(attr), attr.byteLength, 0, 0));
  if (r < 0) throw new SyscallError("bpf", `BPF_${BpfCmd[cmd] ?? cmd}`, errno());
  return r;
}

/** bpf(2) returning the errno instead of throwing; probes use it to classify failures. */
export function bpfErrno(cmd: BpfCmd, attr: Uint8Array): { result: number; errno: number } {
  const r = Number(c.syscall(SYS_bpf, cmd, ptr(attr), attr.byteLength, 0, 0));
  if (r < 0) return { result: -1, errno: errno() };
  return { result: r, errno: 0 };
}

export function perfEventOpen(attr: Uint8Array, pid: number, cpu: number, groupFd: number, flags: number): number {
  const r = Number(c.syscall(SYS_perf_event_open, ptr(attr), pid, cpu, groupFd, flags));
  if (r < 0) throw new SyscallError("perf_event_open", undefined, errno());
  return r;
}

export function ioctl(fd: number, req: number, arg: number): number {
  const r = c.ioctl(fd, req, arg);
  if (r < 0) throw new SyscallError("ioctl", `0x${req.toString(16)}`, errno());
  return r;
}

export function close(fd: number): void {
  // close(2) releases the fd even when it reports an error, so there is nothing to retry.
  c.close(fd);
}

const F_DUPFD_CLOEXEC = 1030;
/** Duplicate an fd (close-on-exec, at or above 3 so it never lands on stdio). */
export function dup(fd: number): number {
  const r = c.fcntl(fd, F_DUPFD_CLOEXEC, 3);
  if (r < 0) throw new SyscallError("fcntl", "F_DUPFD_CLOEXEC", errno());
  return r;
}

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;

/** mmap(2); returns the address as a number (x86-64/arm64 user addresses fit in 53 bits). */
export function mmap(length: number, prot: number, flags: number, fd: number, offset: number): number {
  const r = Number(c.mmap(0, length, prot, flags, fd, offset));
  if (r === -1) throw new SyscallError("mmap", undefined, errno());
  return r;
}

export function munmap(address: number, length: number): void {
  if (c.munmap(address, length) < 0) throw new SyscallError("munmap", undefined, errno());
}

export const EPOLLIN = 1;
const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
/** struct epoll_event is packed (12 bytes) on x86-64 and naturally aligned (16) on arm64. */
export const EPOLL_EVENT_SIZE = isArm64 ? 16 : 12;
const EPOLL_DATA_OFF = isArm64 ? 8 : 4;

export function epollCreate(): number {
  const r = c.epoll_create1(EPOLL_CLOEXEC);
  if (r < 0) throw new SyscallError("epoll_create1", undefined, errno());
  return r;
}

/** Register fd for `events`; `data` comes back in epoll_wait (we use the fd itself). */
export function epollAdd(epfd: number, fd: number, events: number, data = fd): void {
  const ev = new Uint8Array(EPOLL_EVENT_SIZE);
  const dv = new DataView(ev.buffer);
  dv.setUint32(0, events, true);
  dv.setBigUint64(EPOLL_DATA_OFF, BigInt(data), true);
  if (c.epoll_ctl(epfd, EPOLL_CTL_ADD, fd, ev) < 0) throw new SyscallError("epoll_ctl", "EPOLL_CTL_ADD", errno());
}

export function epollDel(epfd: number, fd: number): void {
  const ev = new Uint8Array(EPOLL_EVENT_SIZE);
  if (c.epoll_ctl(epfd, EPOLL_CTL_DEL, fd, ev) < 0) throw new SyscallError("epoll_ctl", "EPOLL_CTL_DEL", errno());
}

/**
 * epoll_wait(2) into `events` (EPOLL_EVENT_SIZE bytes per slot). Blocks the calling thread up to
 * timeoutMs (-1 forever, 0 poll). EINTR counts as "nothing ready".
 */
export function epollWait(epfd: number, events: Uint8Array, timeoutMs: number): number {
  const max = Math.max(1, Math.floor(events.byteLength / EPOLL_EVENT_SIZE));
  const r = c.epoll_wait(epfd, events, max, timeoutMs);
  if (r < 0) {
    const e = errno();
    if (e === 4) return 0;
    throw new SyscallError("epoll_wait", undefined, e);
  }
  return r;
}

export const RLIMIT_MEMLOCK = 8;
/** Raise RLIMIT_MEMLOCK to infinity: kernels before 5.11 charge BPF memory to it. */
export function removeMemlockLimit(): void {
  const rl = new BigUint64Array([~0n, ~0n]);
  if (c.setrlimit(RLIMIT_MEMLOCK, rl) < 0) throw new SyscallError("setrlimit", "RLIMIT_MEMLOCK", errno());
}

export function cString(s: string): Uint8Array {
  const b = new TextEncoder().encode(s);
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  return out;
}

/** statfs(2) f_type of a path (the filesystem magic). */
export function statfsType(path: string): number {
  const buf = new BigInt64Array(15); // struct statfs is 120 bytes on 64-bit; f_type is the first word
  const p = cString(path);
  if (c.statfs(p, buf) < 0) throw new SyscallError("statfs", path, errno());
  return Number(BigInt.asUintN(32, buf[0]!));
}

export function mount(source: string, target: string, fstype: string, flags = 0): void {
  const s = cString(source);
  const t = cString(target);
  const f = cString(fstype);
  if (c.mount(ptr(s), ptr(t), ptr(f), flags, 0) < 0) throw new SyscallError("mount", `${fstype} on ${target}`, errno());
}

/** The same failure with a lowercase verb phrase in front ("attach program x: bpf(...): EPERM ..."). */
export function withContext(e: unknown, what: string): unknown {
  if (e instanceof SyscallError && e.constructor === SyscallError) {
    return new SyscallError(e.syscall, e.command, e.errno, `${what}: ${e.message}`);
  }
  return e;
}

const SC_PAGESIZE = 30;
let page: number | undefined;
export function pageSize(): number {
  page ??= Number(c.sysconf(SC_PAGESIZE));
  return page;
}

const EFD_CLOEXEC = 0o2000000;
const EFD_NONBLOCK = 0o4000;
/** A non-blocking eventfd, used to wake a thread blocked in epoll_wait. */
export function eventFd(): number {
  const r = c.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (r < 0) throw new SyscallError("eventfd", undefined, errno());
  return r;
}

/** Add 1 to an eventfd counter (makes it readable). */
export function eventFdSignal(fd: number): void {
  const one = new BigUint64Array([1n]);
  if (Number(c.write(fd, one, 8)) < 0) throw new SyscallError("write", "eventfd", errno());
}

const IN_NONBLOCK = 0o4000;
const IN_CLOEXEC = 0o2000000;
const EAGAIN = 11;

/** A non-blocking, close-on-exec inotify instance. */
export function inotifyInit(): number {
  const r = c.inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (r < 0) throw new SyscallError("inotify_init1", undefined, errno());
  return r;
}

/** Watch path (a directory when mask has IN_ONLYDIR); returns the watch descriptor. */
export function inotifyAddWatch(fd: number, path: string, mask: number): number {
  const r = c.inotify_add_watch(fd, cString(path), mask >>> 0);
  if (r < 0) throw new SyscallError("inotify_add_watch", path, errno());
  return r;
}

/** Remove a watch; false when the kernel had already dropped it (its directory went away). */
export function inotifyRmWatch(fd: number, wd: number): boolean {
  return c.inotify_rm_watch(fd, wd) === 0;
}

/** read(2) on a non-blocking fd: the byte count, 0 when nothing is ready (EAGAIN). */
export function readNonBlocking(fd: number, buf: Uint8Array): number {
  const r = Number(c.read(fd, ptr(buf), buf.byteLength));
  if (r >= 0) return r;
  const e = errno();
  if (e === EAGAIN) return 0;
  throw new SyscallError("read", undefined, e);
}
