// Lint: policies that validate but do not protect what their author thinks.
// The main case is a string filter on a path argument read at syscall entry:
// it compares what the caller wrote, not the file the kernel opens
// (reference/peers.md bypasses; the KubeCon talk's "path filtering" problem).
import type { ArgSelector, KProbeArg } from "./types.ts";

export interface LintHook {
  kind: "kprobes" | "fentries" | "tracepoints" | "uprobes" | "usdts" | "lsmhooks";
  syscall: boolean;
  /** kprobes: the call; tracepoints: "subsystem/event". */
  call: string;
}

const STRING_OPS = ["Equal", "NotEqual", "Prefix", "NotPrefix", "Postfix", "NotPostfix", "SubString", "SubStringIgnCase"];
/** Argument types that carry a user-space path string at syscall entry. */
const USER_STRING_TYPES = ["string", "filename", "char_buf", "data_loc", "auto"];

const OPEN_SYSCALLS = ["open", "openat", "openat2", "creat", "open_by_handle_at"];
/** Syscalls that take a path and their robust, object-based alternative. */
const ALTERNATIVES: Record<string, string> = {
  execve: "hook security_bprm_check (or lsmhooks bprm_check_security) with a linux_binprm argument, which names the file actually executed",
  execveat: "hook security_bprm_check (or lsmhooks bprm_check_security) with a linux_binprm argument, which names the file actually executed",
  unlink: "hook security_path_unlink / security_inode_unlink with a path or dentry argument",
  unlinkat: "hook security_path_unlink / security_inode_unlink with a path or dentry argument",
  rename: "hook security_path_rename / security_inode_rename",
  renameat: "hook security_path_rename / security_inode_rename",
  renameat2: "hook security_path_rename / security_inode_rename",
  truncate: "hook security_path_truncate with a path argument",
  chmod: "hook security_path_chmod with a path argument",
  fchmodat: "hook security_path_chmod with a path argument",
  mount: "hook security_sb_mount",
  link: "hook security_path_link",
  linkat: "hook security_path_link",
  symlink: "hook security_path_symlink",
  symlinkat: "hook security_path_symlink",
  mkdir: "hook security_path_mkdir",
  mkdirat: "hook security_path_mkdir",
};

function syscallName(h: LintHook): string | undefined {
  if (h.kind === "kprobes" || h.kind === "fentries") {
    if (!h.syscall) return undefined;
    const m = /^(?:__(?:x64|ia32|arm64|s390x|riscv)_)?(?:sys|ksys)_([a-z0-9_]+)$/.exec(h.call);
    return m?.[1];
  }
  if (h.kind === "tracepoints") {
    const m = /^syscalls\/sys_enter_([a-z0-9_]+)$/.exec(h.call);
    return m?.[1];
  }
  return undefined;
}

/** Types whose matched string is a full path the kernel built (starts with "/"). */
const ABSOLUTE_PATH_TYPES = ["file", "fd", "path", "linux_binprm", "kiocb"];

/** A warning for Equal/Prefix values that can never match a kernel-built absolute path. */
export function lintPathValues(arg: KProbeArg, m: ArgSelector): { index: number; message: string } | undefined {
  if (!ABSOLUTE_PATH_TYPES.includes(arg.type) || !["Equal", "NotEqual", "Prefix", "NotPrefix"].includes(m.operator)) return undefined;
  const i = m.values.findIndex((v) => !v.startsWith("/"));
  if (i < 0) return undefined;
  const v = m.values[i] ?? "";
  return {
    index: i,
    message: `"${v}" is not an absolute path: a ${arg.type} argument carries the full path the kernel resolved, so ${m.operator} "${v}" never ${m.operator.startsWith("Not") ? "excludes anything" : "matches"}; use Postfix to match a file name`,
  };
}

/** A warning text for a string matchArgs on a syscall-entry path argument, or undefined. */
export function lintSelectorArg(h: LintHook, arg: KProbeArg, m: ArgSelector): string | undefined {
  if (!STRING_OPS.includes(m.operator) || !USER_STRING_TYPES.includes(arg.type)) return undefined;
  const sc = syscallName(h);
  if (sc === undefined) return undefined;
  const where = h.kind === "tracepoints" ? `tracepoint ${h.call}` : `syscall ${h.call} (syscall: true)`;
  const common = `${m.operator} on a ${arg.type} argument of ${where} compares the path string the caller passed, read at syscall entry; it can be bypassed by relative paths, "..", symlinks, hardlinks, dirfds and /proc/self/fd paths (the string is not the file the kernel opens), and by TOCTOU: another thread can rewrite the user-memory string after it was checked`;
  if (OPEN_SYSCALLS.includes(sc)) {
    const others = OPEN_SYSCALLS.filter((s) => s !== sc).join(", ");
    return `${common}; other ways to open a file (${others}, io_uring IORING_OP_OPENAT) are not seen by this hook at all. Robust alternative: hook security_file_open (or lsmhooks file_open) with a \`file\` argument and match its resolved path.`;
  }
  const alt = ALTERNATIVES[sc];
  if (alt === undefined && !/(^|_)(path|name|at)$|open|exec|stat|access|chdir|chroot|xattr|mknod/.test(sc)) return undefined;
  return `${common}. Robust alternative: ${alt ?? "hook the LSM/security_* function that receives the resolved file, path or dentry, and match that"}.`;
}
