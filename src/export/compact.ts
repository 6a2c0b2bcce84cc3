// Compact one-line rendering, as `tetra getevents -o compact --color never` prints it
// (reference/tetragon.md §3.1; Tetragon's pkg/encoder CompactEncoder.EventToString):
//   <emoji> <label as Go's %-7s> <source> <binary> <details>
// where source is "namespace/pod" when the process has a pod and the event's node_name
// otherwise. It works on the exported JSON, so the same rendering serves the live stream and
// a saved export file. Absent proto fields read as their zero values, the way Go's getters
// return them (a missing status prints 0, a missing size_arg 0).
// Types tetra does not render (rate_limit_info and unknown ones) give undefined; tetra skips
// them with an error on its log.

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === "string" ? v : typeof v === "number" ? String(v) : "");
const num = (v: unknown): string => (typeof v === "number" ? String(v) : typeof v === "string" && /^-?\d+$/.test(v) ? v : "0");
const obj = (v: unknown): Obj => (isObj(v) ? v : {});

/** Go's %-7s: pad to 7 code points, never cut. */
function label(emoji: string, name: string): string {
  const n = [...name].length;
  return `${emoji} ${n < 7 ? name + " ".repeat(7 - n) : name}`;
}

/** CAP_SYS_ADMIN is number 21 in Tetragon's CapabilitiesType. */
const CAP_SYS_ADMIN_INDEX = 21;

/**
 * The capability trailer, quirk included: Tetragon ranges over the indices of the effective
 * list and prints CAP_SYS_ADMIN when index 21 exists, i.e. when more than 21 capabilities are
 * effective (`cap` is only present with --enable-process-cred).
 */
function capsOf(p: Obj): string {
  const eff = obj(p.cap).effective;
  return Array.isArray(eff) && eff.length > CAP_SYS_ADMIN_INDEX ? "🛑 CAP_SYS_ADMIN" : "";
}

/** Tetragon's CapTrailorPrinter: `%s %*s` with the width 120 - len(str) in bytes (Go's len). */
function withCaps(line: string, caps: string): string {
  if (caps === "") return line;
  const bytes = Buffer.byteLength(line);
  const width = bytes < 120 ? 120 - bytes : 0;
  const runes = [...caps].length;
  return `${line} ${" ".repeat(Math.max(0, width - runes))}${caps}`;
}

function processInfo(nodeName: string, p: Obj): string {
  const source = isObj(p.pod) ? `${str(p.pod.namespace)}/${str(p.pod.name)}` : nodeName;
  return `${source} ${str(p.binary)}`;
}

/** Arch prefixes Tetragon cuts before matching syscall names (pkg/arch CutSyscallPrefix). */
const SYSCALL_PREFIXES = ["__x64_", "__ia32_", "__arm64_", "__riscv_"];

function cutSyscallPrefix(fn: string): string {
  for (const p of SYSCALL_PREFIXES) if (fn.startsWith(p)) return fn.slice(p.length);
  return fn;
}

/** Namespace names for setns's nstype argument (Tetragon's nsId map). */
const NS_BY_FLAG: Record<number, string> = {
  0: "any",
  0x2000000: "cgroup",
  0x8000000: "ipc",
  0x40000000: "net",
  0x20000: "mnt",
  0x20000000: "pid",
  0x80: "time",
  0x10000000: "user",
  0x4000000: "uts",
};

type Args = Obj[];
const argsOf = (v: unknown): Args => (Array.isArray(v) ? v.map(obj) : []);
const fileArgPath = (a: Obj | undefined): string => (a && isObj(a.file_arg) ? str(a.file_arg.path) : "");
const stringArg = (a: Obj | undefined): string => str(a?.string_arg);
const intArg = (a: Obj | undefined): string => num(a?.int_arg);
const sock = (a: Obj | undefined): string => {
  const s = obj(a?.sock_arg);
  return `tcp ${str(s.saddr)}:${num(s.sport)} -> ${str(s.daddr)}:${num(s.dport)}`;
};

function kprobeLine(node: string, k: Obj): string {
  const p = obj(k.process);
  const info = processInfo(node, p);
  const caps = capsOf(p);
  const args = argsOf(k.args);
  const fn = str(k.function_name);
  const line = (ev: string, ...rest: string[]) => withCaps([ev, info, ...rest].join(" "), caps);
  switch (cutSyscallPrefix(fn)) {
    case "sys_write":
    case "sys_read": {
      const ev = fn.endsWith("sys_write") ? label("📝", "write") : label("📚", "read");
      const bytes = args.length > 2 ? `${num(args[2]!.size_arg)} bytes` : "";
      return line(ev, fileArgPath(args[0]), bytes);
    }
    case "fd_install":
      return line(label("📬", "open"), args.length > 1 ? fileArgPath(args[1]) : "");
    case "sys_openat":
      return line(label("📬️", "openat"), args.length > 1 ? stringArg(args[1]) : "");
    case "sys_open":
      return line(label("📬️", "open"), args.length > 1 ? stringArg(args[1]) : "");
    case "sys_close":
      return line(label("📪", "close"), fileArgPath(args[0]));
    case "sys_mount":
      return line(label("💾", "mount"), stringArg(args[0]), args.length > 1 ? stringArg(args[1]) : "");
    case "sys_setuid":
      return line(label("🔑", "setuid"), args.length > 0 ? intArg(args[0]) : "");
    case "sys_clock_settime":
      return line(label("⏰", "clock_settime"));
    case "sys_pivot_root":
      return line(label("💾", "pivot_root"), stringArg(args[0]), args.length > 1 ? stringArg(args[1]) : "");
    case "proc_exec_connector":
      return line(label("🔧", "proc_exec_connector"));
    case "sys_setns":
      return line(label("🔧", "setns"), args.length > 1 ? (NS_BY_FLAG[Number(intArg(args[1]))] ?? "") : "");
    case "tcp_connect":
      return line(label("🔌", "connect"), args.length > 0 ? sock(args[0]) : "");
    case "tcp_close":
      return line(label("🧹", "close"), args.length > 0 ? sock(args[0]) : "");
    case "tcp_sendmsg":
      return line(label("📤", "sendmsg"), args.length > 0 ? sock(args[0]) : "", "bytes", args.length > 1 ? intArg(args[1]) : "0");
    case "bpf_check": {
      const b = obj(args[0]?.bpf_attr_arg);
      return line(label("🐝", "bpf_load"), args.length > 0 ? `${str(b.ProgType)} ${str(b.ProgName)} instruction count ${num(b.InsnCnt)}` : "");
    }
    case "security_perf_event_alloc": {
      const e = obj(args[0]?.perf_event_arg);
      return line(label("🐝", "perf_event_alloc"), args.length > 0 ? `${str(e.Type)} ${str(e.KprobeFunc)}` : "");
    }
    case "security_bpf_map_alloc": {
      const m = obj(args[0]?.bpf_map_arg);
      return line(
        label("🗺", "bpf_map_create"),
        args.length > 0 ? `${str(m.MapType)} ${str(m.MapName)} key size ${num(m.KeySize)} value size ${num(m.ValueSize)} max entries ${num(m.MaxEntries)}` : "",
      );
    }
    case "security_file_permission": {
      if (args.length <= 1) return line(label("❓", "security_file_permission"), "");
      const action = Number(intArg(args[1]));
      const ev = action === 0x02 ? label("📝", "write") : action === 0x04 ? label("📚", "read") : label("❓", "security_file_permission");
      return line(ev, fileArgPath(args[0]));
    }
    case "security_mmap_file": {
      if (args.length <= 1) return line(label("❓", "security_mmap_file"), "");
      const prot = Number(num(args[1]!.uint_arg));
      const tag = `mmap-${prot & 1 ? "r" : ""}${prot & 2 ? "w" : ""}${prot & 4 ? "x" : ""}`;
      return line(label("📝", tag), fileArgPath(args[0]));
    }
    case "security_path_truncate":
      if (args.length === 0) return line(label("❓", "security_path_truncate"), "");
      return line(label("📝", "truncate"), str(obj(args[0]!.path_arg).path));
    default:
      return line(label("❓", "syscall"), fn);
  }
}

/** The compact line for an exported event, or undefined for types tetra does not render. */
export function compactLine(ev: Obj): string | undefined {
  const node = str(ev.node_name);
  if (isObj(ev.process_exec)) {
    const p = ev.process_exec.process;
    if (!isObj(p)) return undefined;
    return withCaps(`${label("🚀", "process")} ${processInfo(node, p)} ${str(p.arguments)}`, capsOf(p));
  }
  if (isObj(ev.process_exit)) {
    const exit = ev.process_exit;
    const p = exit.process;
    if (!isObj(p)) return undefined;
    const status = str(exit.signal) || num(exit.status);
    return withCaps(`${label("💥", "exit")} ${processInfo(node, p)} ${str(p.arguments)} ${status}`, capsOf(p));
  }
  if (isObj(ev.process_kprobe)) {
    if (!isObj(ev.process_kprobe.process)) return undefined;
    return kprobeLine(node, ev.process_kprobe);
  }
  if (isObj(ev.process_tracepoint)) {
    const tp = ev.process_tracepoint;
    const p = tp.process;
    if (!isObj(p)) return undefined;
    // raw_syscalls/sys_enter gets a syscall name with its signature in tetra, from a table
    // ward does not carry; the other tracepoints print subsys and event.
    return withCaps(`${label("⁉️", "tracepoint")} ${processInfo(node, p)} ${str(tp.subsys)} ${str(tp.event)}`, capsOf(p));
  }
  if (isObj(ev.process_lsm)) {
    const l = ev.process_lsm;
    const p = l.process;
    if (!isObj(p)) return undefined;
    return withCaps(`${label("🔒", "LSM")} ${processInfo(node, p)} ${str(l.function_name)}`, capsOf(p));
  }
  if (isObj(ev.process_uprobe)) {
    const u = ev.process_uprobe;
    const p = u.process;
    if (!isObj(p)) return undefined;
    return withCaps(`${label("🕵️", "uprobe")} ${processInfo(node, p)} ${str(u.path)} ${str(u.symbol)}`, capsOf(p));
  }
  if (isObj(ev.process_throttle)) {
    const t = ev.process_throttle;
    const typ = t.type === "THROTTLE_START" ? "START" : t.type === "THROTTLE_STOP" ? "STOP " : "";
    return `${label("🧬", "throttle")} ${typ} ${str(t.cgroup)}`;
  }
  if (isObj(ev.test)) return "TEST EVENT";
  return undefined;
}
