// fanotify(7) through bun:ffi: fanotify_init, fanotify_mark and the UAPI constants and record
// layouts (include/uapi/linux/fanotify.h). The decision loop itself runs in a Worker
// (fanotify.ts) with its own dlopen; this module is what the main thread needs to create the
// group, mark the objects and probe the kernel.
import { dlopen, FFIType, ptr, read, type Pointer } from "bun:ffi";
import { SyscallError, cString } from "../bpf/sys.ts";

const isArm64 = process.arch === "arm64";
export const SYS_fanotify_init = isArm64 ? 262 : 300;
export const SYS_fanotify_mark = isArm64 ? 263 : 301;
/** The same number on every architecture (added in 5.1 after the syscall table unification). */
export const SYS_pidfd_send_signal = 424;

// fanotify_init flags
export const FAN_CLOEXEC = 0x1;
export const FAN_NONBLOCK = 0x2;
export const FAN_CLASS_CONTENT = 0x4;
export const FAN_UNLIMITED_QUEUE = 0x10;
export const FAN_UNLIMITED_MARKS = 0x20;
/** 5.15+: each event carries a pidfd of the process that caused it. */
export const FAN_REPORT_PIDFD = 0x80;
export const FAN_CLASS_NOTIF = 0x0;
/** 5.9+: directory entry events carry the parent's file handle and the entry's name. */
export const FAN_REPORT_DFID_NAME = 0x400 | 0x800;

// event masks
export const FAN_OPEN_PERM = 0x10000;
export const FAN_ACCESS_PERM = 0x20000;
export const FAN_OPEN_EXEC_PERM = 0x40000;
export const FAN_EVENT_ON_CHILD = 0x08000000;
export const FAN_MOVED_TO = 0x80;
export const FAN_CREATE = 0x100;
export const FAN_ONDIR = 0x40000000;

// fanotify_mark flags (FAN_MARK_INODE is 0)
export const FAN_MARK_ADD = 0x1;
export const FAN_MARK_REMOVE = 0x2;
export const FAN_MARK_ONLYDIR = 0x8;
export const FAN_MARK_MOUNT = 0x10;
export const FAN_MARK_FILESYSTEM = 0x100;

// responses and record constants
export const FAN_ALLOW = 0x1;
export const FAN_DENY = 0x2;
export const FAN_NOFD = -1;
export const FAN_NOPIDFD = -1;
export const FAN_EPIDFD = -2;
export const FAN_EVENT_INFO_TYPE_PIDFD = 4;
export const FANOTIFY_METADATA_VERSION = 3;
/** struct fanotify_event_metadata: event_len u32, vers u8, reserved u8, metadata_len u16, mask u64, fd s32, pid s32. */
export const FAN_EVENT_METADATA_LEN = 24;
/** struct fanotify_response: fd s32, response u32. */
export const FAN_RESPONSE_LEN = 8;

export const O_RDONLY = 0;
export const O_CLOEXEC = 0o2000000;
/** O_LARGEFILE is 0 in the 64-bit userspace headers but the kernel's value is what the event fd gets. */
export const O_LARGEFILE = isArm64 ? 0o400000 : 0o100000;
export const AT_FDCWD = -100;

const libc = dlopen("libc.so.6", {
  syscall: { args: ["i64", "i64", "i64", "i64", "i64", "i64"], returns: FFIType.i64_fast },
  __errno_location: { args: [], returns: "ptr" },
  close: { args: ["i32"], returns: "i32" },
});
const c = libc.symbols;

function errno(): number {
  const p = c.__errno_location();
  return p === null ? 0 : read.i32(p as Pointer, 0);
}

/** fanotify_init(2); returns the group fd. */
export function fanotifyInit(flags: number, eventFFlags: number): number {
  const r = Number(c.syscall(SYS_fanotify_init, flags, eventFFlags, 0, 0, 0));
  if (r < 0) throw new SyscallError("fanotify_init", `0x${flags.toString(16)}`, errno());
  return r;
}

/** fanotify_mark(2) on a path (relative to AT_FDCWD). */
export function fanotifyMark(fd: number, flags: number, mask: number, path: string): void {
  const p = cString(path);
  const r = Number(c.syscall(SYS_fanotify_mark, fd, flags, mask, AT_FDCWD, ptr(p)));
  if (r < 0) throw new SyscallError("fanotify_mark", path, errno());
}

export function closeFd(fd: number): void {
  c.close(fd);
}

/** What the kernel offers for permission events (probed once: a group is created and closed). */
export interface FanotifySupport {
  /** FAN_CLASS_CONTENT groups can be created (CONFIG_FANOTIFY_ACCESS_PERMISSIONS, CAP_SYS_ADMIN). */
  permissions: boolean;
  /** FAN_REPORT_PIDFD (5.15+): the opener's pid is verified through a pidfd. */
  pidfd: boolean;
  /** Why permissions is false. */
  reason?: string;
}

let support: FanotifySupport | undefined;

export function fanotifySupport(): FanotifySupport {
  if (support !== undefined) return support;
  const base = FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK;
  const ev = O_RDONLY | O_LARGEFILE | O_CLOEXEC;
  try {
    closeFd(fanotifyInit(base | FAN_REPORT_PIDFD, ev));
    support = { permissions: true, pidfd: true };
  } catch {
    try {
      closeFd(fanotifyInit(base, ev));
      support = { permissions: true, pidfd: false };
    } catch (e2) {
      const why = e2 instanceof SyscallError ? e2.code : String(e2);
      support = {
        permissions: false,
        pidfd: false,
        reason: why === "EPERM" ? "fanotify permission events need CAP_SYS_ADMIN (EPERM)" : why === "EINVAL" ? "the kernel has no fanotify permission events (CONFIG_FANOTIFY_ACCESS_PERMISSIONS off: EINVAL)" : `fanotify_init(FAN_CLASS_CONTENT): ${why}`,
      };
    }
  }
  return support;
}
