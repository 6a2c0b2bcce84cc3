// Where the file guard checks the open family at syscall exit. The per-syscall tracepoints
// (syscalls/sys_exit_openat, ...) run only for those syscalls; tp_btf/sys_exit runs at the
// exit of every syscall (a getppid loop was 10-15% slower with it), so it is only the
// fallback for a machine without tracefs, or one where 32-bit processes can run (their
// syscalls skip the syscalls/ tracepoints). The choice is made once per load and reported.
import { existsSync, readFileSync } from "node:fs";
import { tracefsRoot } from "../bpf/perf.ts";
import { mount } from "../bpf/sys.ts";
import { compatProcessesPossible } from "./compat-abi.ts";

/** The open-family syscalls' exit tracepoints guard_open_exit attaches to (x86_64 names). */
export const OPEN_EXIT_TRACEPOINTS = [
  "sys_exit_open",
  "sys_exit_openat",
  "sys_exit_openat2",
  "sys_exit_creat",
  "sys_exit_open_by_handle_at",
] as const;

/** Offset of `long ret` in every syscalls/sys_exit_* record: what bpf/file_guard.c reads. */
export const SYSCALL_EXIT_RET_OFFSET = 16;

export type OpenExitChoice =
  | { kind: "tracepoint"; tracepoints: string[] }
  /** reason: why the syscall tracepoints could not be used */
  | { kind: "tp_btf"; reason: string };

export class TracefsError extends Error {
  override name = "TracefsError";
}

const DEFAULT_TRACEFS = "/sys/kernel/tracing";

/** tracefs root, mounting tracefs at /sys/kernel/tracing when no tracefs is mounted. */
export function ensureTracefs(): string {
  try {
    return tracefsRoot();
  } catch {
    // tracefsRoot caches only a success, so after the mount it finds the new one.
    if (!existsSync(DEFAULT_TRACEFS)) throw new TracefsError(`no tracefs and no ${DEFAULT_TRACEFS} to mount it on`);
    mount("tracefs", DEFAULT_TRACEFS, "tracefs");
    return tracefsRoot();
  }
}

/** `long ret`'s offset and size in a tracepoint's format file; undefined when absent. */
export function retField(format: string): { offset: number; size: number } | undefined {
  const m = /field:long ret;\s*offset:(\d+);\s*size:(\d+);/.exec(format);
  if (!m) return undefined;
  return { offset: Number(m[1]), size: Number(m[2]) };
}

/**
 * Per-syscall tracepoints when tracefs is (or can be) mounted, they exist, their record
 * puts `ret` where the program reads it and no 32-bit process can run here (x86 never fires
 * syscalls/ tracepoints for compat syscalls, so their opens would go unchecked); else
 * tp_btf/sys_exit, with the reason. allowCompatGap skips the 32-bit check (measurements only).
 */
export function chooseOpenExit(opts: { allowCompatGap?: boolean } = {}): OpenExitChoice {
  if (!opts.allowCompatGap) {
    const compat = compatProcessesPossible();
    if (compat.possible) {
      return { kind: "tp_btf", reason: `32-bit processes may run here (${compat.reason}) and the syscalls/ tracepoints never fire for their syscalls` };
    }
  }
  let root: string;
  try {
    root = ensureTracefs();
  } catch (e) {
    return { kind: "tp_btf", reason: `tracefs unavailable: ${e instanceof Error ? e.message : String(e)}` };
  }
  const found: string[] = [];
  for (const name of OPEN_EXIT_TRACEPOINTS) {
    const format = `${root}/events/syscalls/${name}/format`;
    if (!existsSync(format)) continue; // e.g. no open/creat on arches without them
    let text: string;
    try {
      text = readFileSync(format, "utf8");
    } catch (e) {
      return { kind: "tp_btf", reason: `read ${format}: ${e instanceof Error ? e.message : String(e)}` };
    }
    const ret = retField(text);
    if (ret === undefined || ret.offset !== SYSCALL_EXIT_RET_OFFSET || ret.size !== 8) {
      return { kind: "tp_btf", reason: `${format}: ret is not a long at offset ${SYSCALL_EXIT_RET_OFFSET}` };
    }
    found.push(name);
  }
  // openat is what every libc open() uses: without it the tracepoints would miss nearly all opens.
  if (!found.includes("sys_exit_openat")) return { kind: "tp_btf", reason: `no ${root}/events/syscalls/sys_exit_openat (CONFIG_FTRACE_SYSCALLS off?)` };
  return { kind: "tracepoint", tracepoints: found };
}
