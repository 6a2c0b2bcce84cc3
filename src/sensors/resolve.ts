// Hook resolution: for each hook of a validated policy, the strongest kernel mechanism this
// kernel has for it (issue 5 §2), how each of its actions is honored there, and what can
// still get past it; or a rejection naming the missing kernel feature and the substitute
// that would work. Pure: the kernel is described by a HookFeatures value (hostHookFeatures()
// for this machine, a literal in tests), so `ward policy explain`, the agent's status and
// the policy manager all print and apply the same decision.
import { createHash } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { mount } from "../bpf/sys.ts";
import { release as osRelease } from "node:os";
import { bpfLsmActive, probeAttach, probeHelper } from "../bpf/features.ts";
import { Helper, ProgType } from "../bpf/constants.ts";
import { tracefsRoot } from "../bpf/perf.ts";
import { UprobeElf } from "../bpf/uprobe-symbols.ts";
import { policyHooks, type WireHook } from "../policy/engine-wire.ts";
import { hostSyscallNumber } from "../policy/engine.ts";
import { ADDRESS_FAMILIES } from "../policy/values.ts";
import type { ActionSelector, KProbeArg, KProbeSelector, ListSpec, TracingPolicy, UProbeSpec } from "../policy/types.ts";
import type { GuardAction, GuardHook, GuardProgram } from "./guard.ts";
import { chooseOpenExit, type OpenExitChoice } from "./open-exit.ts";
import { cgroupV2Root, type SockPoint } from "./sock.ts";
import { fanotifySupport } from "./fanotify-sys.ts";
import type { FanotifyAction } from "./fanotify.ts";

// ---------------------------------------------------------------- kernel description

/** What resolution needs to know about a kernel. */
export interface HookFeatures {
  release: string;
  /** BPF LSM programs load and attach (bpf in the active LSM list, and loads allowed). */
  bpfLsm: boolean;
  /** kprobes exist (CONFIG_KPROBES). */
  kprobes: boolean;
  /** bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE) for Override on syscalls. */
  overrideReturn: boolean;
  /** kprobe.multi links (5.18+): one link for a hook's many functions. Not given: false. */
  kprobeMulti?: boolean;
  /** Whether the kernel allows error injection (Override) on a function (its
   * /sys/kernel/debug/error_injection/list); undefined: the list cannot be read. */
  errorInjectable?(fn: string): boolean | undefined;
  /** Whether a kernel function exists (/proc/kallsyms); undefined: unknown. */
  kernelFunction?(fn: string): boolean | undefined;
  /** Whether tracefs has subsystem/event; undefined when tracefs cannot be read here. */
  tracepoint(subsystem: string, event: string): boolean | undefined;
  /** x86_64 syscall number of a syscall name ("openat"), undefined when unknown. */
  syscallNumber(name: string): number | undefined;
  /** Where the file guard's open-exit check attaches here (and why); undefined: not known. */
  guardOpenExit?(): string;
  /** cgroup sock_addr programs (connect4/6, sendmsg4/6, bind4/6): the cgroup v2 root they
   * attach at, or why they cannot run here. Not given: assumed present (cgroup v2, 4.17+). */
  cgroupSockAddr?(): { root: string } | { missing: string };
  /**
   * fanotify permission events (FAN_CLASS_CONTENT groups can be made here); undefined or
   * false: not available. pidfd: FAN_REPORT_PIDFD (5.15+) verifies the opener. processMap:
   * the agent runs the process sensor, whose kernel process map (ward_procs) the decision
   * thread reads the opener's exec record from (the *Changes matchers need it).
   */
  fanotify?: { pidfd: boolean; processMap?: boolean };
  /** The uprobe PMU exists; undefined: it does not (no uprobes). */
  uprobes?: UprobeLookup;
  /**
   * --keep-sensors-on-exit: every hook must keep enforcing after the agent exits (pinned
   * programs; fanotify rules also on the file guard's pinned backstop), and a hook that
   * nothing pinned can hold is refused.
   */
  keepSensors?: boolean;
}

/** What uprobe resolution reads of the binaries a policy names (host: uprobe-symbols.ts). */
export interface UprobeLookup {
  /** The file offset a target names; throws an Error saying why it cannot be probed. */
  fileOffset(path: string, target: { symbol: string } | { offset: number } | { addr: number }): number;
  /** The file's digest in Tetragon's binaryDigests form ("sha256:<hex>"); throws when unreadable. */
  digest(path: string, algorithm: "sha1" | "sha256" | "sha384" | "sha512"): string;
}

/** This machine's kernel, probed (root gives definitive answers; otherwise loads are refused and read as absent). */
export function hostHookFeatures(): HookFeatures {
  const kprobes = probeAttach("kprobe").status === "supported";
  let root: string | undefined;
  try {
    root = tracefsRoot();
  } catch {
    root = undefined;
  }
  return {
    release: osRelease(),
    // Listed in /sys/kernel/security/lsm is not enough: this host lists bpf and still refuses
    // LSM program loads (EPERM), so the load itself is the test.
    bpfLsm: bpfLsmActive() && probeAttach("lsm").status === "supported",
    kprobes,
    overrideReturn: kprobes && probeHelper(ProgType.KPROBE, Helper.override_return).status === "supported",
    kprobeMulti: kprobes && probeAttach("kprobe_multi").status === "supported",
    errorInjectable: (fn) => errorInjectionList()?.has(fn),
    kernelFunction: (fn) => {
      const k = kallsyms();
      return k === undefined ? undefined : k.has(fn);
    },
    tracepoint: (subsystem, event) => (root === undefined ? undefined : existsSync(`${root}/events/${subsystem}/${event}`)),
    syscallNumber: (name) => hostSyscallNumber(name),
    ...fanotifyFeature(),
    ...(probeAttach("uprobe").status === "supported" ? { uprobes: hostUprobeLookup } : {}),
    guardOpenExit: () => {
      // The same choice FileGuard.open makes (it may mount tracefs and exec the i386 probe).
      guardOpenExitText ??= describeOpenExit(chooseOpenExit());
      return guardOpenExitText;
    },
    cgroupSockAddr: () => {
      const root = cgroupV2Root();
      if (root === undefined) return { missing: "no cgroup v2 hierarchy is mounted (no cgroup2 mount with root / in /proc/self/mountinfo)" };
      const cg = probeAttach("cgroup");
      if (cg.status !== "supported") return { missing: `cgroup programs do not attach here (${cg.reason ?? cg.status})` };
      return { root };
    },
  };
}

let guardOpenExitText: string | undefined;

const hostUprobeLookup: UprobeLookup = {
  fileOffset(path, target) {
    const elf = new UprobeElf(path);
    if ("symbol" in target) return Number(elf.symbolOffset(target.symbol));
    if ("addr" in target) return Number(elf.addrOffset(BigInt(target.addr)));
    return Number(elf.fileOffset(BigInt(target.offset)));
  },
  digest(path, algorithm) {
    return `${algorithm}:${createHash(algorithm).update(readFileSync(path)).digest("hex")}`;
  },
};

let injectable: Set<string> | null | undefined;
/** The functions bpf_override_return may act on (debugfs error_injection/list; mounted when missing). */
function errorInjectionList(): Set<string> | undefined {
  if (injectable !== undefined) return injectable ?? undefined;
  const path = "/sys/kernel/debug/error_injection/list";
  const read = (): Set<string> | null => {
    try {
      return new Set(readFileSync(path, "utf8").split("\n").map((l) => l.split(/\s+/)[0] ?? "").filter((x) => x.length > 0));
    } catch {
      return null;
    }
  };
  injectable = read();
  if (injectable === null && process.getuid?.() === 0 && existsSync("/sys/kernel/debug")) {
    try {
      mount("debugfs", "/sys/kernel/debug", "debugfs");
    } catch {
      // not mountable here: the list stays unknown and Override on kernel functions is refused
    }
    injectable = read();
  }
  return injectable ?? undefined;
}

let symbols: Set<string> | null | undefined;
/** Function names in /proc/kallsyms (text symbols), or undefined when unreadable. */
function kallsyms(): Set<string> | undefined {
  if (symbols === undefined) {
    try {
      const out = new Set<string>();
      for (const l of readFileSync("/proc/kallsyms", "utf8").split("\n")) {
        const f = l.split(" ");
        if (f[1] === "t" || f[1] === "T") out.add(f[2] ?? "");
      }
      symbols = out;
    } catch {
      symbols = null;
    }
  }
  return symbols ?? undefined;
}

function fanotifyFeature(): { fanotify?: { pidfd: boolean } } {
  const s = fanotifySupport();
  return s.permissions ? { fanotify: { pidfd: s.pidfd } } : {};
}

function describeOpenExit(c: OpenExitChoice): string {
  return c.kind === "tracepoint" ? `here on the per-syscall exit tracepoints (${c.tracepoints.map((t) => `syscalls/${t}`).join(", ")})` : `here on tp_btf/sys_exit, at every syscall's exit (${c.reason})`;
}

// ---------------------------------------------------------------- results

/** The event a hook's matches become (reference/tetragon.md §2.5). */
export type EventKind = "process_kprobe" | "process_tracepoint" | "process_lsm" | "process_uprobe";

/** How one action of a selector is carried out on this kernel. */
export interface ActionHonor {
  selector: number;
  action: string;
  /** One sentence: what happens, where, and when. */
  honored: string;
  /**
   * Where it differs from `honored` once the agent has exited (--keep-sensors-on-exit: the
   * pinned backstop honors it differently); absent when nothing changes or nothing is kept.
   */
  afterExit?: string;
}

/** One tracepoint the generic sensor attaches for a hook. */
export interface GenericAttach {
  /** "syscall": a syscall kprobe run on tp_btf/sys_enter (tp_btf/sys_exit for return) filtered on its number; "tracepoint": spec.tracepoints;
   * "kprobe": kprobes on kernel functions (symbols; a kretprobe too with withExit); "uprobe": spec.uprobes (subsystem "uprobes", event the hook's name); "lsm": the generic sensor's BPF LSM program for the hook (subsystem "lsm", event the hook name) */
  kind: "syscall" | "tracepoint" | "kprobe" | "uprobe" | "lsm";
  /** kind "kprobe": the functions */
  symbols?: string[];
  /** kind "kprobe": syscall wrappers (__x64_sys_X), arguments read from the user pt_regs */
  syscallAbi?: boolean;
  /** kind "kprobe": selectors Override (bpf_override_return, single kprobes) */
  override?: boolean;
  subsystem: string;
  event: string;
  raw: boolean;
  /** Syscall name without prefix (kind "syscall"); "*" for every syscall (a generated_syscalls list). */
  syscall?: string;
  /** sys_exit_X is needed too (return: true, matchReturnArgs). */
  withExit?: boolean;
  /** security_file_open substitute: evaluated at sys_exit only when the syscall returned an
   * fd of a real open, and the file argument is read from that fd (the opened file). */
  openedFd?: boolean;
  /** uprobe: the binary and each target's file offset (the symbol as written, "" for offsets/addrs). */
  uprobe?: { path: string; targets: { symbol: string; offset: number }[] };
}

/** One FileGuard rule derived from one selector. */
export interface GuardRulePlan {
  selector: number;
  /** The enforcing action in the kernel (monitor mode already applied). */
  action: GuardAction;
  /** Post an event on a match (false with NoPost). */
  post: boolean;
  /** The policy's action names, for the event's `action` field. */
  actionNames: string[];
  binaries?: { op: "In" | "NotIn"; paths: string[] };
  /** Paths to protect (open/exec rules); empty for the module rule. */
  files: string[];
  hooks: GuardHook[];
}

/** How the entries of one selector's matchBinaries are matched (explain, /v1/status). */
export interface BinaryMatchReport {
  selector: number;
  op: "In" | "NotIn";
  entries: {
    path: string;
    by: "inode" | "path";
    /** "inode (dev:ino)", "inode (dev:ino) and path", "path (not present; watching DIR)" */
    match: string;
    /** the directory watched while the entry is missing */
    watching?: string;
  }[];
}

/** One fanotify rule derived from one selector. */
export interface FanotifyRulePlan {
  selector: number;
  action: FanotifyAction;
  post: boolean;
  actionNames: string[];
  binaries?: { op: "In" | "NotIn"; paths: string[] };
  /** matchArgs Equal: the files */
  files: string[];
  /** matchArgs Prefix: directory prefixes, each an absolute path ending in "/" */
  prefixes: string[];
}

export interface FanotifyPlan {
  /** "open": FAN_OPEN_PERM (opens, and the open an exec makes); "exec": FAN_OPEN_EXEC_PERM only. */
  target: "open" | "exec";
  rules: FanotifyRulePlan[];
  /** What a decision not ready within answerMs (or not decidable) gets. */
  failMode: "allow" | "deny";
  answerMs: number;
  /** "rules": file inode + one matchBinaries per selector, decided by the decision thread
   * itself; "engine": the policy engine's evaluate() on the opener's facts from /proc
   * (namespaces, capabilities, ancestors...), the rule's action when its selector matches. */
  evaluator: "rules" | "engine";
  /** The file argument's slot in the hook's args (what the engine reads the file from). */
  fileSlot: number;
}

export interface GuardPlan {
  target: "open" | "exec" | "module";
  programs: GuardProgram[];
  rules: GuardRulePlan[];
}

interface HookBase {
  /** Position in the engine's hook list (CompiledHook.index). */
  index: number;
  /** "spec.kprobes[0]". */
  path: string;
  /** As written: call, subsystem/event, hook. */
  name: string;
}

/** A hook the socket sensor (bpf/sock_addr.c) holds: its cgroup attach points. */
export interface SockPlan {
  points: SockPoint[];
  /** tcp_connect: TCP sockets only, the sock argument seen as tcp_connect() sees it */
  tcpConnect: boolean;
  /** slots of the compiled hook that are sock/socket or sockaddr arguments (the others are not seen, and events omit them) */
  seenSlots: number[];
}

export interface ResolvedHook extends HookBase {
  ok: true;
  backend: "generic" | "guard" | "sock" | "fanotify";
  event: EventKind;
  /** function_name in events (arch-prefixed for syscalls, as Tetragon reports). */
  functionName: string;
  /** The kernel mechanism, one line. */
  mechanism: string;
  generic?: GenericAttach[];
  guard?: GuardPlan;
  sock?: SockPlan;
  fanotify?: FanotifyPlan;
  actions: ActionHonor[];
  /** Measured limits of the mechanism, each one sentence. */
  limits: string[];
  /** Ways around the rule on this kernel, with the remedy where there is one. */
  bypasses: string[];
  /** What holds the hook once the agent has exited (SIGKILL included), one sentence. */
  afterExit: string;
}

/** What a backend's resolution gives; afterExit defaults to its backend's (afterExitOf). */
type HookPlan = Omit<ResolvedHook, keyof HookBase | "ok" | "afterExit"> & { afterExit?: string };

/** What holds a hook of `backend` once the agent has exited. */
function afterExitOf(backend: ResolvedHook["backend"], f: HookFeatures): string {
  if (!f.keepSensors) return "nothing: the agent detaches it when it exits, on SIGKILL too (run with --keep-sensors-on-exit to keep it pinned under --bpf-dir)";
  if (backend === "guard") return "the same: its file guard's programs, maps and links are pinned under --bpf-dir and keep deciding in the kernel; events wait in its pinned ring buffer for the next agent";
  if (backend === "generic") return "the same: the generic sensor's programs, maps and links are pinned under --bpf-dir and keep evaluating this hook; events wait in the pinned ring buffer for the next agent";
  if (backend === "sock") return "the same: the socket sensor's cgroup links, programs and maps are pinned under --bpf-dir and keep deciding at the cgroup v2 root; events wait in its pinned ring buffer for the next agent";
  return "nothing pinned holds it";
}

export interface RejectedHook extends HookBase {
  ok: false;
  /** Why it cannot run here: the missing kernel feature and the substitute. */
  reason: string;
}

export type HookResolution = ResolvedHook | RejectedHook;

export interface PolicyResolution {
  name: string;
  mode: "enforce" | "monitor";
  hooks: HookResolution[];
  /** Every rejection, "spec.kprobes[0] (security_path_unlink): reason". */
  errors: string[];
}

// ---------------------------------------------------------------- helpers

const ENFORCING = new Set(["Sigkill", "Signal", "Override", "NotifyEnforcer", "Set"]);
const SIGKILL = 9;

/** Canonical syscall name of a syscall kprobe call, or undefined (32-bit ABI, not a syscall symbol). */
export function syscallName(call: string): string | undefined {
  const m = /^(?:__x64_sys_|__se_sys_|__do_sys_|sys_)(\w+)$/.exec(call);
  return m?.[1];
}

const OPEN_FAMILY = new Set(["open", "openat", "openat2", "creat", "open_by_handle_at"]);

function isModuleSyscall(s: string | undefined): boolean {
  return s === "init_module" || s === "finit_module";
}

/** LSM hook name of a kprobe call or lsmhooks entry ("security_bprm_check" -> "bprm_check_security"). */
function lsmName(h: WireHook): string | undefined {
  if (h.list === "lsmhooks") return h.name;
  if (h.list !== "kprobes" && h.list !== "fentries") return undefined;
  if (!h.name.startsWith("security_")) return undefined;
  const bare = h.name.slice("security_".length);
  return bare === "bprm_check" ? "bprm_check_security" : bare;
}

/** Selector actions; a selector without actions posts (Tetragon's default). */
function actionsOf(sel: KProbeSelector): ActionSelector[] {
  return sel.matchActions.length > 0 ? sel.matchActions : [{ action: "Post", argRegs: [], kernelStackTrace: false, userStackTrace: false, imaHash: false }];
}

function actionLabel(a: ActionSelector): string {
  if (a.action === "Signal") return `Signal(argSig=${a.argSig ?? "?"})`;
  if (a.action === "Override") return `Override(argError=${a.argError ?? "?"})`;
  return a.action;
}

class Reject extends Error {}

function reject(msg: string): never {
  throw new Reject(msg);
}

function ioUringNote(release: string): { limit: string; bypass?: string } {
  const [maj, min] = release.split(".").map((x) => Number.parseInt(x, 10));
  const measuredExact = (maj ?? 0) > 6 || ((maj ?? 0) === 6 && (min ?? 0) >= 18);
  if (measuredExact) {
    return { limit: "io_uring IORING_OP_OPENAT/OPENAT2 is stopped at io_uring_complete: the ring's task is killed and requests linked after the open are cancelled (measured on 6.18)" };
  }
  return {
    limit: "io_uring IORING_OP_OPENAT/OPENAT2 is caught at io_uring_complete and the task is killed",
    bypass: `io_uring: on ${release} requests linked after the open (read, write) may still run before the kill (measured on 6.1: a linked read+write leaked the content); remedy: add a rule in the same scope that kills io_uring_setup (kprobes call sys_io_uring_setup, syscall: true, action Sigkill)`,
  };
}

// ---------------------------------------------------------------- the FileGuard substitute

/** The file argument of a guard hook: its declared index in args. */
function fileArgIndex(args: readonly KProbeArg[], types: readonly string[]): number | undefined {
  return args.find((a) => types.includes(a.type))?.index;
}

interface GuardActionChoice {
  action: GuardAction;
  post: boolean;
  honors: { action: string; honored: string }[];
  names: string[];
}

function guardActions(sel: KProbeSelector, si: number, target: "open" | "exec" | "module", f: HookFeatures, monitor: boolean): GuardActionChoice {
  let action: GuardAction = "report";
  let post = true;
  const honors: { action: string; honored: string }[] = [];
  const names: string[] = [];
  const where = target === "open"
    ? f.bpfLsm ? "in lsm/file_open" : "at the exit of the open-family syscall (or io_uring completion, or sched_process_exec for an exec of the file)"
    : target === "exec" ? f.bpfLsm ? "in lsm/bprm_check_security" : "at sched_process_exec, before the new image runs"
    : f.bpfLsm ? "in lsm/kernel_read_file and lsm/kernel_load_data" : "at init_module/finit_module syscall entry";
  // With BPF LSM a kill also fails the call (bpf/file_guard.c), so Override + Sigkill is
  // one rule: kill. Without it, Override is refused below before this matters.
  const setEnforcing = (a: GuardAction): void => {
    if (action === "kill" || (action === "deny" && a === "kill")) {
      action = "kill";
      return;
    }
    if (action !== "report" && action !== a) reject(`selector ${si}: both Sigkill and Override: the guard takes one enforcing action per rule`);
    action = a;
  };
  for (const a of actionsOf(sel)) {
    const label = actionLabel(a);
    if (a.rateLimit !== undefined || a.kernelStackTrace || a.userStackTrace || a.imaHash) {
      reject(`selector ${si}: ${a.action} with rateLimit/stack traces/imaHash is not supported by the file guard (it reports every match without them)`);
    }
    const isKill = a.action === "Sigkill" || (a.action === "Signal" && a.argSig === SIGKILL);
    if (monitor && ENFORCING.has(a.action)) {
      names.push(a.action);
      honors.push({ action: label, honored: `monitor mode: not enforced, posted as an event ${where}` });
      continue;
    }
    switch (a.action) {
      case "Post":
        names.push("Post");
        honors.push({ action: label, honored: `event posted ${where}` });
        break;
      case "NoPost":
        post = false;
        names.push("NoPost");
        honors.push({ action: label, honored: "no event is posted (the kernel still counts the match)" });
        break;
      case "Sigkill":
      case "Signal":
        if (!isKill) reject(`selector ${si}: ${label}: the file guard can only send SIGKILL; use Sigkill`);
        setEnforcing("kill");
        names.push(a.action);
        honors.push({
          action: label,
          honored: f.bpfLsm
            ? `SIGKILL ${where}, and the call fails with EPERM there: the process dies before it returns to user space and the ${target === "module" ? "module is not loaded" : target === "exec" ? "new image never runs" : "file is never opened (O_TRUNC/creat do not truncate)"}`
            : target === "module" ? MODULE_SIGKILL : `SIGKILL ${where}: the process dies before it returns to user space`,
        });
        break;
      case "Override": {
        if (!f.bpfLsm) {
          reject(target === "module"
            ? `selector ${si}: Override needs BPF LSM (lsm/kernel_read_file, lsm/kernel_load_data) or bpf_override_return (kprobes), neither is available here (LSM loads are refused; CONFIG_KPROBES off); refused: SIGKILL at the syscall's entry would not stop the module from loading. Use Sigkill only if killing the caller is enough (the module may still load), or run on a kernel with BPF LSM`
            : `selector ${si}: Override needs BPF LSM or fmod_ret, refused here (LSM/fmod_ret program loads fail with EPERM); SIGKILL ${where} is available: use action Sigkill, or run on a kernel with BPF LSM${f.fanotify !== undefined ? `; fanotify (available here) holds Override for rules it can express: matchArgs Equal on files or Prefix on a directory ("/dir/"), at most one matchBinaries In/NotIn, argError -1 (EPERM), no rate limits` : ""}`);
        }
        if (a.argError !== undefined && a.argError !== -1) reject(`selector ${si}: ${label}: the LSM guard fails the call with EPERM (argError -1) only`);
        setEnforcing("deny");
        names.push("Override");
        honors.push({ action: label, honored: `the call fails with EPERM ${where} and has no effect` });
        break;
      }
      default:
        reject(`selector ${si}: action ${a.action} is not available on the file guard (it honors Post, NoPost, Sigkill${f.bpfLsm ? ", Override" : ""})`);
    }
  }
  return { action, post, honors, names };
}

function guardBinaries(sel: KProbeSelector, si: number): GuardRulePlan["binaries"] {
  if (sel.matchBinaries.length > 1) reject(`selector ${si}: more than one matchBinaries: the guard keeps one binary set per rule`);
  const b = sel.matchBinaries[0];
  if (b === undefined) return undefined;
  if (b.operator !== "In" && b.operator !== "NotIn") reject(`selector ${si}: matchBinaries ${b.operator}: the guard matches executables by inode or exact path (In/NotIn of exact paths)`);
  if (b.followChildren) reject(`selector ${si}: matchBinaries followChildren is not supported by the guard`);
  return { op: b.operator, paths: [...b.values] };
}

/**
 * What matchBinaries means on the file guard (the semantics guard.ts implements), for the
 * rules that have one. Per-entry state ("inode (dev:ino)" / "path (not present; watching
 * DIR)") is reported separately, live (BinaryMatchReport).
 */
function binaryLimits(rules: readonly GuardRulePlan[]): string[] {
  const ops = new Set(rules.flatMap((r) => (r.binaries ? [r.binaries.op] : [])));
  if (ops.size === 0) return [];
  const out = [
    "matchBinaries: an entry that exists when the policy is applied is matched by the executable's inode (mm->exe_file); one that does not exist yet is matched by the executed file's resolved path as the process sensor recorded it at exec, and the agent watches its nearest existing directory (inotify) and adds its inode when it appears, without reloading programs",
    "matchBinaries path matching compares the first 255 bytes of a binary's path the process map keeps (a longer missing entry is refused) and needs the process's entry in that map (an LRU of 32768): a process it does not hold is matched by inode only",
  ];
  if (ops.has("In")) out.push("matchBinaries In: the path match stays on besides the inode, before and after the file appears (never weaker than Tetragon's path match: a file put at that path later is listed too); in the window between the file appearing and its inode being added, the path match already covers it");
  if (ops.has("NotIn")) out.push("matchBinaries NotIn: while the entry is missing the path allows it (as Tetragon's path match), including in the window between the file appearing and its inode being added; from then on its inode allows (renamed or hard-linked too) and the path allowance is dropped, so a different file put at that path later is not allowed until the policy is re-applied");
  return out;
}

function unsupportedMatchers(sel: KProbeSelector, si: number): void {
  const extra: string[] = [];
  if (sel.matchPIDs.length) extra.push("matchPIDs");
  if (sel.matchData.length) extra.push("matchData");
  if (sel.matchReturnArgs.length) extra.push("matchReturnArgs");
  if (sel.matchParentBinaries.length) extra.push("matchParentBinaries");
  if (sel.matchNamespaces.length) extra.push("matchNamespaces");
  if (sel.matchNamespaceChanges.length) extra.push("matchNamespaceChanges");
  if (sel.matchCapabilities.length) extra.push("matchCapabilities");
  if (sel.matchCapabilityChanges.length) extra.push("matchCapabilityChanges");
  if (sel.matchWorkloads !== undefined) extra.push("matchWorkloads");
  if (sel.matchReturnActions.length) extra.push("matchReturnActions");
  if (extra.length) {
    reject(`selector ${si}: ${extra.join(", ")} cannot be evaluated by the file guard (it matches the file's inode and the executable (inode, or path for matchBinaries entries not present yet) only); substitute: the same selector on a syscall kprobe (sys_openat with a string path, syscall: true), which evaluates every matcher in the kernel but decides on the path string the caller passed`);
  }
}

function guardFileHook(h: WireHook, target: "open" | "exec", f: HookFeatures, monitor: boolean): HookPlan {
  if (h.ret) reject("return: true needs a return probe (kretprobe/fexit), which this kernel does not have");
  if (h.selectors.length === 0) reject("no selectors: every file open would match; the guard protects listed files (matchArgs Equal on the file argument)");
  const fileIdx = fileArgIndex(h.args, target === "open" ? ["file", "fd", "path"] : ["linux_binprm", "file"]);
  if (fileIdx === undefined) reject(`no ${target === "open" ? "file" : "linux_binprm"} argument: the guard decides on the ${target === "open" ? "opened" : "executed"} file`);
  const hooks: GuardHook[] = f.bpfLsm ? (target === "open" ? ["lsm_open"] : ["lsm_exec"]) : target === "open" ? ["open", "exec", "io_uring"] : ["exec"];
  const rules: GuardRulePlan[] = [];
  const actions: ActionHonor[] = [];
  const seen = new Set<string>();
  h.selectors.forEach((sel, si) => {
    unsupportedMatchers(sel, si);
    if (sel.matchArgs.length !== 1) reject(`selector ${si}: the guard needs exactly one matchArgs, Equal on the file argument (found ${sel.matchArgs.length})`);
    const m = sel.matchArgs[0]!;
    const on = m.args.length > 0 ? h.args[m.args[0]!]?.index : m.index;
    if (on !== fileIdx) reject(`selector ${si}: matchArgs index ${m.index} is not the file argument (index ${fileIdx})`);
    if (m.operator !== "Equal") {
      reject(`selector ${si}: matchArgs ${m.operator} on a file: the guard matches exact files by inode (Equal); ${m.operator === "Prefix" ? "a directory prefix needs a path walk in an LSM hook (BPF LSM is not available here); list the files with Equal" : "use Equal with the files' paths"}`);
    }
    for (const v of m.values) {
      if (!v.startsWith("/")) reject(`selector ${si}: value ${JSON.stringify(v)} is not an absolute path`);
      if (seen.has(v)) reject(`selector ${si}: ${v} is named by two selectors: the guard keeps one rule per file`);
      seen.add(v);
    }
    const act = guardActions(sel, si, target, f, monitor);
    const binaries = guardBinaries(sel, si);
    rules.push({ selector: si, action: act.action, post: act.post, actionNames: act.names, ...(binaries ? { binaries } : {}), files: [...m.values], hooks });
    for (const a of act.honors) actions.push({ selector: si, ...a });
  });
  const limits: string[] = [
    "files are matched by inode when the policy is applied: a file created or replaced later (new inode) under the same path is not covered until the policy is re-applied",
    // test/kernel/bypass-file.test.ts asserts both outcomes; keys lack i_generation.
    "keys are (device, inode number) without the inode generation: if a protected file or an allowed binary is deleted, a new file that reuses its inode number inherits the rule or the allowance",
  ];
  limits.push(...binaryLimits(rules));
  const bypasses: string[] = [];
  let mechanism: string;
  let programs: GuardProgram[];
  if (f.bpfLsm) {
    programs = target === "open" ? ["guard_lsm_open"] : ["guard_lsm_exec"];
    mechanism = target === "open"
      ? "BPF LSM lsm/file_open, decided on the opened file's inode (every open path, io_uring and exec included)"
      : "BPF LSM lsm/bprm_check_security, decided on the executed file's inode";
  } else if (target === "open") {
    programs = ["guard_sys_exit", "guard_exec", "guard_io_uring"];
    mechanism = `file guard substitute for security_file_open (no BPF LSM): the exit of open, openat, openat2, creat, open_by_handle_at${f.guardOpenExit ? ` (${f.guardOpenExit()})` : ""} decided on the opened file's inode (relative paths, .., symlinks, hardlinks, dirfds and /proc/self/fd resolve to it), tp_btf/sched_process_exec for an exec of the file, tp_btf/io_uring_complete for IORING_OP_OPENAT/OPENAT2`;
    limits.push(
      "the open has happened before the kill: O_TRUNC/creat already truncated the file",
      "a sibling thread reading the guessed fd number can win the race before the kill (8 of 300 runs on 6.18)",
      "fds opened before the policy was applied are not revoked",
    );
    const io = ioUringNote(f.release);
    limits.push(io.limit);
    if (io.bypass !== undefined) bypasses.push(io.bypass);
  } else {
    programs = ["guard_exec"];
    mechanism = "file guard substitute for security_bprm_check (no BPF LSM): tp_btf/sched_process_exec on bprm->file (and the script), decided on its inode";
    limits.push("matchBinaries sees the executable that called exec (the image being replaced), as security_bprm_check does");
  }
  return { backend: "guard", event: h.list === "lsmhooks" ? "process_lsm" : "process_kprobe", functionName: h.name, mechanism, guard: { target, programs, rules }, actions, limits, bypasses };
}

/**
 * Whether the file guard can hold every selector of a file-open hook: matchArgs Equal on the
 * file argument plus at most one matchBinaries In/NotIn of exact paths, nothing else. Those
 * rules stay with the guard (inode-exact, io_uring and exec included); the others go to the
 * generic sensor at the open-family syscall exit (openExitHook). Action problems are not
 * judged here: the guard names them (Override, Signal) with the right remedy.
 */
function guardExpresses(h: WireHook): boolean {
  if (h.selectors.length === 0) return false;
  const fileIdx = fileArgIndex(h.args, ["file", "fd", "path"]);
  return h.selectors.every((sel) => {
    try {
      unsupportedMatchers(sel, 0);
      guardBinaries(sel, 0);
    } catch (e) {
      if (e instanceof Reject) return false;
      throw e;
    }
    const m = sel.matchArgs[0];
    if (sel.matchArgs.length !== 1 || m === undefined || m.operator !== "Equal") return false;
    const on = m.args.length > 0 ? h.args[m.args[0]!]?.index : m.index;
    return on === fileIdx && m.values.every((v) => v.startsWith("/"));
  });
}

const OPEN_EXIT_SYSCALLS = ["open", "openat", "openat2", "creat", "open_by_handle_at"] as const;

/**
 * security_file_open without BPF LSM, for rules the file guard cannot hold (matchPIDs,
 * Prefix/Postfix, matchNamespaces, ...): the generic sensor at the exit of every
 * open-family syscall (their syscalls/sys_exit_* tracepoints, or tp_btf/sys_exit where
 * 32-bit processes can run: the same chooseOpenExit() choice as the file guard), evaluated only when the call returned an fd of a real open, with the
 * file argument read from that fd, so the decision is on the opened file's resolved path,
 * whatever path string, dirfd or link the caller went through; every selector kind and
 * action runs there and SIGKILL lands before the process returns to user space.
 */
function openExitHook(h: WireHook, f: HookFeatures, monitor: boolean): HookPlan {
  if (h.ret) reject("return: true on security_file_open: the substitute (open-family syscall exit) sees the syscall's return, not the LSM hook's; drop return: true");
  const file = h.args.find((a) => a.index === 0);
  if (file === undefined || !["file", "fd", "path"].includes(file.type)) {
    reject("the substitute for security_file_open (open-family syscall exit) needs the file argument at index 0 (type file): it is read from the returned fd");
  }
  const other = h.args.find((a) => a.index !== 0);
  if (other !== undefined) reject(`argument index ${other.index}: security_file_open has one argument (the file); the substitute reads only that one`);
  h.selectors.forEach((sel, si) => {
    if (sel.matchReturnArgs.length > 0 || sel.matchReturnActions.length > 0) {
      reject(`selector ${si}: matchReturnArgs/matchReturnActions on security_file_open: the substitute sees the syscall's return, not the LSM hook's`);
    }
  });
  const generic: GenericAttach[] = OPEN_EXIT_SYSCALLS.map((name) => {
    if (f.syscallNumber(name) === undefined) reject(`${name} is not a known x86_64 syscall here: the open-family syscall exit cannot be covered`);
    return { kind: "syscall", subsystem: "raw_syscalls", event: "sys_exit", raw: false, syscall: name, withExit: true, openedFd: true };
  });
  const placed = f.guardOpenExit ? `; ${f.guardOpenExit()}` : "";
  const where = `at the exit of the open-family syscall that opened the file${placed}, before it returns to user space`;
  const actions = genericActions(h, f, monitor, where, undefined);
  const io = "io_uring IORING_OP_OPENAT/OPENAT2 opens the file without an open syscall and bypasses this rule on this kernel; remedy: a rule in the same scope that kills io_uring_setup (kprobes call sys_io_uring_setup, syscall: true, action Sigkill), or matchArgs Equal on the files with at most one matchBinaries In/NotIn, which the file guard enforces including io_uring";
  return {
    backend: "generic",
    event: h.list === "lsmhooks" ? "process_lsm" : "process_kprobe",
    functionName: h.name,
    mechanism: `generic: open-family syscall exit, file from the returned fd (the exit of open, openat, openat2, creat, open_by_handle_at when they return an fd${placed}; no BPF LSM here, and the file guard matches only Equal files with one matchBinaries; every selector is evaluated in the kernel)`,
    generic,
    actions,
    limits: [
      "path-based: the file is matched by the absolute path it was opened through, resolved from the returned fd (relative paths, .., symlinks, dirfds and /proc/self/fd re-opens resolve to it); a hardlink is matched by its own path, not by the file's other names",
      "the open has happened before the kill: O_TRUNC/creat already truncated the file",
      "a sibling thread reading the guessed fd number can win the race before the kill",
      "failed opens and O_PATH opens are not file opens and never match (security_file_open does not see them either)",
      "an exec of the file (which security_file_open also sees) is not an open-family syscall and is not matched here; for executables add a security_bprm_check rule (the file guard decides it at sched_process_exec, by inode)",
      "fds opened before the policy was applied are not revoked",
      "io_uring opens are not seen (see bypasses)",
    ],
    bypasses: [
      io,
      "a hardlink to a matched file made under a path the rule does not match (same filesystem, write access to a directory there) opens the same inode unmatched; remedy: matchArgs Equal on the files, which the file guard matches by inode",
      "open_by_handle_at (CAP_DAC_READ_SEARCH) names an inode, not a path: for a file with several hardlinks the opened file's path is whichever name the dentry cache holds, which may be one the rule does not match (measured on 6.18); remedy: matchArgs Equal on the files (file guard, by inode)",
    ],
  };
}

// ---------------------------------------------------------------- fanotify

/** The policy's fanotify options (spec.options fanotify-fail-mode, fanotify-answer-ms; validated in rules.ts). */
interface FanotifyOptionsOf {
  failMode: "allow" | "deny";
  answerMs: number;
}

export const FANOTIFY_ANSWER_MS = 100;

function fanotifyOptions(policy: TracingPolicy): FanotifyOptionsOf {
  const opt = (n: string): string | undefined => policy.spec.options.findLast((o) => o.name === n)?.value;
  const ms = Number.parseInt(opt("fanotify-answer-ms") ?? "", 10);
  return { failMode: opt("fanotify-fail-mode") === "allow" ? "allow" : "deny", answerMs: Number.isInteger(ms) && ms > 0 ? ms : FANOTIFY_ANSWER_MS };
}

/** The actions fanotify honors exactly: Post, NoPost, Sigkill (Signal 9), Override with argError -1 (EPERM), with no rate limit or stack traces. */
function fanotifyActionsOk(sel: KProbeSelector): boolean {
  return actionsOf(sel).every((a) => {
    if (a.rateLimit !== undefined || a.kernelStackTrace || a.userStackTrace || a.imaHash) return false;
    if (a.action === "Override") return a.argError === undefined || a.argError === -1;
    if (a.action === "Signal") return a.argSig === SIGKILL;
    return a.action === "Post" || a.action === "NoPost" || a.action === "Sigkill";
  }) && sel.matchReturnActions.length === 0;
}

/**
 * Whether fanotify can hold every selector of a file-open or exec hook: matchArgs Equal on
 * the file argument with absolute paths, at most one matchBinaries In/NotIn of paths, and
 * actions it honors exactly. What it cannot hold goes to the file guard or the open-exit
 * substitute as before (which name their own limits, and refuse Override here).
 */
/** fanotify's evaluator for a hook, or why fanotify cannot hold it (for explain). */
function fanotifyFit(h: WireHook, target: "open" | "exec", processMap: boolean, keepSensors: boolean): "rules" | "engine" | { why: string } {
  if (h.ret) return { why: "return: true (fanotify answers before the call, there is no return value)" };
  if (h.selectors.length === 0) return { why: "no selectors (every file would be held)" };
  const fileIdx = fileArgIndex(h.args, target === "open" ? ["file", "fd", "path"] : ["linux_binprm", "file"]);
  if (fileIdx === undefined) return { why: `no ${target === "open" ? "file" : "linux_binprm"} argument` };
  let engine = false;
  let why = "";
  const all = h.selectors.every((sel, si) => {
    const no = (w: string): boolean => {
      why = `selector ${si}: ${w}`;
      return false;
    };
    // The *Changes matchers compare with the values recorded at exec: the decision thread
    // reads them from the process sensor's map, so they need it running.
    if ((sel.matchNamespaceChanges.length || sel.matchCapabilityChanges.length) && !processMap) return no("matchNamespaceChanges/matchCapabilityChanges compare with the values recorded at exec, which only the process sensor's map keeps (the process sensor is not running), and /proc shows only the present");
    // matchPIDs isNamespacePID with followForks compares each ancestor's number in the
    // opener's pid namespace, which the kernel computes (pid_nr_in) and the open-exit check
    // already holds; the decision thread has the opener's own number (its NSpid) only
    if (sel.matchPIDs.some((p) => p.isNamespacePID && p.followForks)) return no("matchPIDs isNamespacePID with followForks is held at the open-family syscall exit, where the kernel numbers each ancestor in the opener's pid namespace");
    // Under --keep-sensors-on-exit an engine-decided fanotify rule is refused (it has no
    // pinned backstop); the matchers the open-exit check held before fanotify's engine took
    // them stay there, pinned, rather than be refused.
    if (keepSensors && (sel.matchPIDs.length || sel.matchNamespaceChanges.length || sel.matchCapabilityChanges.length)) return no("with --keep-sensors-on-exit, matchPIDs/matchNamespaceChanges/matchCapabilityChanges stay at the open-family syscall exit, whose pinned programs outlive the agent (fanotify's engine-decided rules have no pinned backstop)");
    // The engine's evaluate() decides what the rules cannot: namespaces, capabilities, their
    // changes since exec, parents and ancestors (followChildren), pids, several or pattern
    // matchBinaries (engineFacts says where each is read). Not the call's return.
    if (sel.matchData.length || sel.matchReturnArgs.length || sel.matchWorkloads !== undefined || sel.matchReturnActions.length) return no("matchData/matchReturnArgs/matchReturnActions/matchWorkloads are not evaluated at a fanotify decision");
    try {
      unsupportedMatchers(sel, 0);
      guardBinaries(sel, 0);
    } catch (e) {
      if (!(e instanceof Reject)) throw e;
      engine = true;
    }
    const m = sel.matchArgs[0];
    if (sel.matchArgs.length !== 1 || m === undefined) return no("fanotify marks the files of exactly one matchArgs on the file argument");
    // Prefix only on directories ("/dir/"): those are marked (FAN_EVENT_ON_CHILD); a string
    // prefix like "/etc/sha" stays with the open-exit check, which compares the path.
    if (m.operator !== "Equal" && !(m.operator === "Prefix" && m.values.every((v) => v.endsWith("/")))) return no(`matchArgs ${m.operator}${m.operator === "Prefix" ? " of a value not ending in \"/\" (a string prefix, not a directory to mark)" : ""}: fanotify marks exact files (Equal) or directory trees (Prefix "/dir/")`);
    const on = m.args.length > 0 ? h.args[m.args[0]!]?.index : m.index;
    // A file may appear in several selectors: the decision thread tries them in order and
    // the first that matches acts, as Tetragon does.
    if (on !== fileIdx || !m.values.every((v) => v.startsWith("/"))) return no("matchArgs must be on the file argument with absolute paths");
    if (!fanotifyActionsOk(sel)) return no("an action fanotify cannot honor exactly (rateLimit, stack traces, imaHash, Override with an argError other than -1, Signal other than 9)");
    return true;
  });
  if (!all) return { why };
  return engine ? "engine" : "rules";
}

/** What the engine evaluator reads of the opener, for explain (one sentence). */
function engineFacts(processMap: boolean): string {
  const binaries = processMap
    ? "the opener's binary and its ancestors' binaries from their exec records in the kernel process map ward_procs (the path the kernel resolved at exec, as the kernel hooks match it; a process the map has no entry for, or whose path is longer than the 255 bytes it keeps, is read from /proc/PID/exe and counted in fanotify_proc_fallbacks), the record verified to be this process's (recorded at or after its start time, and the pidfd still alive after the lookup, so the pid was not reused)"
    : "the opener's binary from /proc/PID/exe, its ancestors' from theirs (no process sensor: no exec records)";
  return `decided by the policy engine's userspace evaluate() (the same compiled selectors the kernel tables hold) on ${binaries}; the parent chain by /proc/PID/stat's ppid (the live real_parent, up to 8 ancestors: matchParentBinaries, followChildren, followForks); the namespaces and capabilities now from /proc/PID/ns/* and /proc/PID/status (matchNamespaces, matchCapabilities: the kernel hooks read the current task too)${processMap ? ", compared with the exec record's (matchNamespaceChanges, matchCapabilityChanges)" : ""}; matchPIDs on the event's pid (isNamespacePID: its NSpid); read through the event's pid and verified afterwards (the pidfd still refers to a live process, each ancestor is still the parent of the one below it)`;
}

/** Per selector of an engine-decided hook: which mechanism decides each of its matchers (explain). */
function engineSelectorFacts(sel: KProbeSelector, si: number, processMap: boolean): string {
  const parts: string[] = ["matchArgs: the fanotify mark on the file's inode"];
  if (sel.matchBinaries.length) parts.push(`matchBinaries: ${processMap ? "the exec record's binary in ward_procs (/proc/PID/exe when the map has none)" : "/proc/PID/exe"}${sel.matchBinaries.some((b) => b.followChildren) ? ", followChildren over the ancestors' records" : ""}`);
  if (sel.matchParentBinaries.length) parts.push(`matchParentBinaries: ${processMap ? "the parent's exec record in ward_procs" : "the parent's /proc/PID/exe"} (the parent by /proc ppid)`);
  if (sel.matchPIDs.length) parts.push(`matchPIDs: the event's pid, verified by its pidfd${sel.matchPIDs.some((p) => p.isNamespacePID) ? " (isNamespacePID: NSpid of /proc/PID/status)" : ""}${sel.matchPIDs.some((p) => p.followForks) ? ", followForks over the /proc ppid chain" : ""}`);
  if (sel.matchNamespaces.length) parts.push("matchNamespaces: /proc/PID/ns/* now");
  if (sel.matchCapabilities.length) parts.push("matchCapabilities: /proc/PID/status now");
  if (sel.matchNamespaceChanges.length) parts.push("matchNamespaceChanges: /proc/PID/ns/* now against the exec record's namespaces in ward_procs");
  if (sel.matchCapabilityChanges.length) parts.push("matchCapabilityChanges: /proc/PID/status now against the exec record's capabilities in ward_procs");
  return `selector ${si}: ${parts.join("; ")}`;
}

function fanotifyFileHook(h: WireHook, target: "open" | "exec", f: HookFeatures, monitor: boolean, options: FanotifyOptionsOf, evaluator: "rules" | "engine"): HookPlan {
  const fileIdx = fileArgIndex(h.args, target === "open" ? ["file", "fd", "path"] : ["linux_binprm", "file"]);
  const fileSlot = h.args.findIndex((a) => a.index === fileIdx);
  const rules: FanotifyRulePlan[] = [];
  const actions: ActionHonor[] = [];
  const event = target === "open" ? "FAN_OPEN_PERM" : "FAN_OPEN_EXEC_PERM";
  const what = target === "open" ? "open" : "exec";
  h.selectors.forEach((sel, si) => {
    const m = sel.matchArgs[0]!;
    let kill = false;
    let deny = false;
    let post = true;
    const names: string[] = [];
    for (const a of actionsOf(sel)) {
      const label = actionLabel(a);
      if (monitor && ENFORCING.has(a.action)) {
        names.push(a.action);
        actions.push({ selector: si, action: label, honored: `monitor mode: not enforced; the ${what} is allowed and posted as an event by the agent's fanotify decision thread` });
        continue;
      }
      switch (a.action) {
        case "Post":
          names.push("Post");
          actions.push({ selector: si, action: label, honored: `event posted by the agent's fanotify decision thread when it answers the ${event} event` });
          break;
        case "NoPost":
          post = false;
          names.push("NoPost");
          actions.push({ selector: si, action: label, honored: "no event is posted (the fanotify counters still count the decision)" });
          break;
        case "Override":
          deny = true;
          names.push("Override");
          actions.push({ selector: si, action: label, honored: `Override → FAN_DENY: the ${what} fails with EPERM before it happens and has no effect (nothing is opened; O_TRUNC/creat do not truncate)` });
          break;
        default:
          // Sigkill, Signal(9): fanotifyActionsOk admitted nothing else
          kill = true;
          names.push(a.action);
          actions.push({ selector: si, action: label, honored: `Sigkill → kill before the answer: SIGKILL through the opener's ${f.fanotify?.pidfd ? "pidfd" : "pid"}, then FAN_DENY, so the process dies and the file is never opened` });
      }
    }
    const action: FanotifyAction = monitor ? "report" : kill ? "kill" : deny ? "deny" : "report";
    const binaries = evaluator === "rules" ? guardBinaries(sel, si) : undefined;
    const prefix = m.operator === "Prefix";
    if (f.keepSensors && action !== "report") {
      // The fanotify group ends with the agent: the rule also goes on the file guard, pinned,
      // which holds exact files only (by inode), and can only kill after the open here.
      // The engine evaluator reads the opener's ancestors, namespaces and capabilities from
      // /proc in userspace; the guard has none of those, so its backstop would kill openers
      // the policy lets through (or, with NotIn, spare ones it refuses).
      if (evaluator === "engine") reject(`selector ${si}: with --keep-sensors-on-exit an enforcing fanotify rule also needs its pinned backstop, the file guard, which matches only files and the opener's own binary; this selector is decided by the policy engine in userspace (matchParentBinaries, followChildren, matchNamespaces or matchCapabilities), which no pinned program evaluates; narrow it to matchArgs and matchBinaries, or run without --keep-sensors-on-exit (the rule then lasts while the agent runs)`);
      if (prefix) reject(`selector ${si}: with --keep-sensors-on-exit an enforcing fanotify rule also needs its pinned backstop, the file guard, which matches exact files by inode: a Prefix directory (${m.values.join(", ")}) has none; list the files with Equal, or run without --keep-sensors-on-exit (the rule then lasts while the agent runs)`);
      const where = target === "open" ? "at the exit of the open-family syscall (io_uring completion, sched_process_exec for an exec of the file)" : "at sched_process_exec, before the new image runs";
      for (const x of actions) {
        if (x.selector !== si) continue;
        if (x.action.startsWith("Override")) x.afterExit = `after the agent exits: the pinned file guard backstop cannot fail the ${what} on this kernel (no BPF LSM), so it kills instead: SIGKILL ${where}; the caller dies before it returns to user space, but the ${what} has happened (O_TRUNC/creat already truncated the file)`;
        else if (x.action.startsWith("Sigkill") || x.action.startsWith("Signal")) x.afterExit = `after the agent exits: the pinned file guard backstop sends SIGKILL ${where}: the caller dies before it returns to user space, but the ${what} has happened (O_TRUNC/creat already truncated the file)`;
      }
    }
    rules.push({ selector: si, action, post, actionNames: names, ...(binaries ? { binaries } : {}), files: prefix ? [] : [...m.values], prefixes: prefix ? [...m.values] : [] });
  });
  const hasPrefix = rules.some((r) => r.prefixes.length > 0);
  // FanotifyGuard.needsPidfd: the same test per hook (a policy whose other hook needs the pidfd gets it for all)
  const needsPidfd = evaluator === "engine" || rules.some((r) => r.action === "kill");
  const verify = !f.fanotify?.pidfd
    ? "the opener's executable is its /proc/PID/exe, read through the event's pid (no FAN_REPORT_PIDFD before 5.15: not verified against a pidfd)"
    : needsPidfd
      ? "the opener's executable is its /proc/PID/exe, read through the event's pid and verified against the event's pidfd (the process still lives, so the pid was not reused)"
      : "the opener's executable is its /proc/PID/exe, read through the event's pid; no pidfd is taken (FAN_REPORT_PIDFD costs the decision thread about 3 µs an event, allowed ones included) as these rules do not kill: the pid can go to another process only once the opener's whole thread group is gone, and the opener is held in its open until the answer, so a read that could see another process answers an open that never completes (a posted event of that match would name the process holding the pid then: that needs the opener killed during its own decision and its pid handed out again within it)";
  const marks = `${event} on the inode of each file, FAN_MARK_INODE${hasPrefix ? `; under a Prefix directory, on each file and on each directory with FAN_EVENT_ON_CHILD, so files created there later are held too, and a FAN_CREATE/FAN_MOVED_TO watch (a notification group) on the same directories, so a subdirectory created or moved in later is marked the moment the real-time decision thread reads its creation, then scanned for what appeared in it first` : ""}`;
  const mechanism = `fanotify (${marks}; ${target === "open" ? "an exec of the file opens it too" : "plain opens are not held"}): the kernel holds the ${what} until the agent's decision thread answers${evaluator === "engine" ? `, ${engineFacts(f.fanotify?.processMap === true)}` : ""}; no BPF LSM here, and unlike the file guard the call is refused before it happens; other files cost nothing`;
  const enforcing = rules.some((r) => r.action !== "report");
  const limits = [
    f.keepSensors && enforcing
      ? `the fanotify group ends with the agent (on any exit, SIGKILL included, the kernel allows pending and later ${what}s); from then on the file guard backstop, pinned when the policy was applied, holds the Sigkill and Override rules, by killing after the ${what}`
      : `enforcement lasts while the agent runs: the fanotify group ends with the agent (on any exit, SIGKILL included, the kernel allows pending and later ${what}s); no BPF backstop is attached for this rule`,
    `every ${what} of a protected file waits for the agent's answer; a decision not made within ${options.answerMs} ms, or that cannot be made (the opener's executable unreadable), is answered ${options.failMode === "deny" ? "FAN_DENY" : "FAN_ALLOW"} (fanotify-fail-mode ${options.failMode}) and counted`,
    "the decision thread runs SCHED_FIFO (lowest real-time priority; nice -20 where real-time scheduling is refused, said in the fanotify_scheduling counter), so openers it wakes do not preempt it: 1,000 opens held at once are answered in milliseconds, not hundreds of them",
    verify,
    evaluator === "engine"
      ? `engine-decided selectors match binaries by path (Tetragon's semantics: a renamed or hard-linked copy is another path), ${f.fanotify?.processMap === true ? "the path recorded at exec (renaming the binary afterwards changes nothing)" : "as /proc/PID/exe resolves it now (no process sensor)"}, the protected files by inode (the engine sees the path the policy named for a marked inode)${f.fanotify?.processMap === true ? "" : "; matchNamespaceChanges and matchCapabilityChanges need the values recorded at exec, which only the process sensor's map keeps: such selectors stay with the file guard"}`
      : "matchBinaries entries that exist are matched by inode (In entries by their resolved path too, never weaker than a path match); one that does not exist yet is matched by the executable's resolved path and becomes inode-matched at the first decision after it appears (NotIn then allows only that file, In keeps the path match)",
    "files are matched by inode when the policy is applied: a file created or replaced later (new inode) under the same path is not covered until the policy is re-applied",
    "keys are (device, inode number) without the inode generation: if a protected file or an allowed binary is deleted, a new file that reuses its inode number inherits the rule or the allowance",
    "fds opened before the policy was applied are not revoked (FAN_ACCESS_PERM would put every read of the file through the agent; it is not used)",
  ];
  if (target === "exec") limits.push("matchBinaries sees the executable that called exec (the image being replaced), as security_bprm_check does");
  if (evaluator === "engine") h.selectors.forEach((sel, si) => limits.push(engineSelectorFacts(sel, si, f.fanotify?.processMap === true)));
  if (hasPrefix) {
    limits.push(
      "Prefix directories: the files under them are matched by inode (a hardlink or a rename elsewhere stays held); a file created later in the tree is held through its directory's mark and matched by its path; a subdirectory made after the policy is marked when its creation event is read (measured here: 0.1-0.25 ms after mkdir on average, at most a few ms), and an open inside it before that mark lands is not held: a process on another CPU that opens files in a directory it just made gets through in that window (the directory creation itself cannot be held: fanotify has no permission event for mkdir)",
      "Prefix trees are marked entry by entry: more than 10,000 directories and files under a policy's prefixes are refused when the policy is applied",
    );
  }
  return {
    backend: "fanotify",
    event: h.list === "lsmhooks" ? "process_lsm" : "process_kprobe",
    functionName: h.name,
    mechanism,
    fanotify: { target, rules, failMode: options.failMode, answerMs: options.answerMs, evaluator, fileSlot },
    actions,
    limits,
    bypasses: f.keepSensors && enforcing
      ? ["a root process that kills the agent turns Override into a kill after the open (the pinned backstop); run the agent under a supervisor that restarts it, or on a kernel with BPF LSM"]
      : ["a root process that kills the agent ends the rule (the group closes with it); run the agent under a supervisor that restarts it, or on a kernel with BPF LSM, whose pinned programs outlive it"],
    afterExit: f.keepSensors
      ? enforcing
        ? `the fanotify group ends with the agent; the file guard backstop (pinned under --bpf-dir when the policy was applied) holds the Sigkill and Override rules: SIGKILL after the ${what} (Override cannot fail the call without BPF LSM); Post-only rules are not held`
        : `nothing: the fanotify group ends with the agent, and a rule that only posts has no backstop`
      : "nothing: the fanotify group ends with the agent (run with --keep-sensors-on-exit for a pinned backstop)",
  };
}

/**
 * Module loading (kprobes on sys_init_module/sys_finit_module; kernel_read_file with BPF
 * LSM). The decision, documented here because it is a judgment call:
 * - With BPF LSM the load is denied in lsm/kernel_read_file and lsm/kernel_load_data, so
 *   Override is honored exactly (EPERM, nothing loaded).
 * - Without it the syscall tracepoint (generic hooks, moduleSyscallHook) queues SIGKILL at
 *   syscall entry, and H8 measured that load_module still completes (the module is loaded
 *   and its init runs; the caller dies on the way out). Override would claim "the call fails and has no effect", which this cannot give:
 *   it is rejected, naming the missing features. Sigkill is accepted because Tetragon's own
 *   Sigkill on a syscall kprobe means the same thing (the signal is sent at entry and the
 *   syscall runs): the kill is exact, and explain/status say in so many words that the
 *   module may still load.
 * - The LSM guard has one module rule for both loads: a policy naming only one syscall is
 *   enforced on both (stricter, never weaker), and two module hooks must agree on it.
 */
function guardModuleHook(h: WireHook, f: HookFeatures, monitor: boolean): HookPlan {
  if (h.ret) reject("return: true needs a return probe (kretprobe/fexit), which this kernel does not have");
  if (h.selectors.length > 1) reject("more than one selector: the module guard keeps one rule");
  const sel = h.selectors[0];
  const actions: ActionHonor[] = [];
  let rule: GuardRulePlan;
  const hooks: GuardHook[] = f.bpfLsm ? ["lsm_module"] : ["module"];
  if (sel === undefined) {
    rule = { selector: 0, action: "report", post: true, actionNames: ["Post"], files: [], hooks };
    actions.push({ selector: 0, action: "Post", honored: "event posted at every module load" });
  } else {
    unsupportedMatchers(sel, 0);
    if (sel.matchArgs.length > 0) reject("selector 0: matchArgs on a module load cannot be evaluated by the module guard (it matches the caller's executable only)");
    const act = guardActions(sel, 0, "module", f, monitor);
    const binaries = guardBinaries(sel, 0);
    rule = { selector: 0, action: act.action, post: act.post, actionNames: act.names, ...(binaries ? { binaries } : {}), files: [], hooks };
    for (const a of act.honors) actions.push({ selector: 0, ...a });
  }
  const programs: GuardProgram[] = f.bpfLsm ? ["guard_lsm_read_file", "guard_lsm_load_data"] : ["guard_module"];
  const mechanism = f.bpfLsm
    ? "BPF LSM lsm/kernel_read_file (READING_MODULE) and lsm/kernel_load_data (LOADING_MODULE): both init_module and finit_module"
    : "module guard: tp_btf/sys_enter on init_module and finit_module (both, whichever the policy names)";
  const limits = f.bpfLsm ? [] : ["SIGKILL at syscall entry does not stop load_module: the module still loads and its init runs; the caller dies on its way out (measured on 6.1)"];
  limits.push(...binaryLimits([rule]));
  return { backend: "guard", event: h.list === "lsmhooks" ? "process_lsm" : "process_kprobe", functionName: functionNameOf(h), mechanism, guard: { target: "module", programs, rules: [rule] }, actions, limits, bypasses: [] };
}

// ---------------------------------------------------------------- the generic sensor

function genericActions(h: WireHook, f: HookFeatures, monitor: boolean, where: string, canOverride: string | undefined): ActionHonor[] {
  const out: ActionHonor[] = [];
  const sels = h.selectors.length > 0 ? h.selectors : [undefined];
  sels.forEach((sel, si) => {
    const acts = sel === undefined ? [{ action: "Post", argRegs: [], kernelStackTrace: false, userStackTrace: false, imaHash: false } as ActionSelector] : actionsOf(sel);
    const all = sel === undefined ? acts : [...acts, ...sel.matchReturnActions];
    for (const a of all) {
      const label = actionLabel(a);
      if (monitor && ENFORCING.has(a.action)) {
        out.push({ selector: si, action: label, honored: `monitor mode: not enforced, posted as an event ${where}` });
        continue;
      }
      switch (a.action) {
        case "Post":
          out.push({ selector: si, action: label, honored: `event posted ${where}${a.rateLimit ? `, at most one per ${a.rateLimit} (${a.rateLimitScope ?? "thread"})` : ""}` });
          break;
        case "NoPost":
          out.push({ selector: si, action: label, honored: "no event; the other actions still run" });
          break;
        case "Sigkill":
          out.push({ selector: si, action: label, honored: `SIGKILL with bpf_send_signal ${where}: the syscall still runs, the process dies on its way back to user space (Tetragon's Sigkill semantics)` });
          break;
        case "Signal":
          out.push({ selector: si, action: label, honored: `signal ${a.argSig ?? "?"} with bpf_send_signal ${where}` });
          break;
        case "Override":
          if (canOverride === undefined) {
            reject(`selector ${si}: Override needs bpf_override_return (kprobes with CONFIG_BPF_KPROBE_OVERRIDE)${f.kprobes ? "" : "; this kernel has no kprobes (CONFIG_KPROBES off)"}, refused here; substitute: Sigkill ${where} (the call still runs, its caller dies before returning), or for files a security_file_open rule with a file argument`);
          }
          out.push({ selector: si, action: label, honored: canOverride });
          break;
        default:
          reject(`selector ${si}: action ${a.action} is not implemented by ward's generic hooks (they honor Post, NoPost, Sigkill, Signal)`);
      }
    }
  });
  return out;
}

/** Argument types the generic hooks read at a syscall or tracepoint (the others are kernel objects a syscall entry does not have). */
const GENERIC_READABLE = new Set([
  "auto", "int", "sint8", "int8", "uint8", "sint16", "int16", "uint16", "uint32", "sint32", "int32", "ulong", "uint64", "size_t", "long", "sint64", "int64",
  "string", "filename", "char_buf", "char_iovec", "sockaddr", "syscall64", "kernel_cap_t", "cap_inheritable", "cap_permitted", "cap_effective", "data_loc", "nop",
  // an fd (or a file/path the generic program resolves from one) is read as its absolute path
  "fd", "file", "path",
]);

/** matchArgs on an argument the generic hooks cannot read is refused here (explain shows it before the agent would). */
function checkGenericArgs(h: WireHook): void {
  h.selectors.forEach((sel, si) => {
    for (const m of [...sel.matchArgs, ...sel.matchData]) {
      const decl = m.args.length > 0 ? h.args[m.args[0]!] : h.args.find((a) => a.index === m.index);
      if (decl !== undefined && !GENERIC_READABLE.has(decl.type)) {
        reject(`selector ${si}: matchArgs on argument ${decl.index} of type ${decl.type}: a ${h.list === "tracepoints" ? "tracepoint" : "syscall entry"} has no ${decl.type} to read (the kernel object exists only inside the kernel function); substitute: security_file_open with a file argument for files, or match the raw value (int)`);
      }
    }
  });
}

function syscallHook(h: WireHook, name: string, f: HookFeatures, monitor: boolean): HookPlan {
  checkGenericArgs(h);
  // The generic hooks run syscall kprobes on tp_btf/sys_enter filtered by number: that also
  // covers syscalls without a syscalls/sys_enter_X tracepoint (init_module here).
  const nr = f.syscallNumber(name);
  if (nr === undefined) reject(`${name} is not a known x86_64 syscall (no __NR_${name})`);
  const withExit = h.ret || h.selectors.some((s) => s.matchReturnArgs.length > 0 || s.matchReturnActions.length > 0);
  const where = `at the entry of ${name} (tp_btf/sys_enter)`;
  const actions = genericActions(h, f, monitor, where, undefined);
  const limits = ["arguments are read at syscall entry, as the caller passed them"];
  const bypasses: string[] = [];
  const strings = h.args.some((a) => a.type === "string" || a.type === "char_buf" || a.type === "filename");
  if (strings) limits.push("string arguments are read from user memory at entry: a sibling thread can change the buffer after the check (TOCTOU on the user pointer)");
  if (OPEN_FAMILY.has(name) && strings) {
    bypasses.push(
      `a path string rule on ${name} is bypassed by relative paths, "..", symlinks, hardlinks, dirfds and /proc/self/fd, by the other open syscalls (${[...OPEN_FAMILY].filter((x) => x !== name).join(", ")}) and by io_uring IORING_OP_OPENAT (no syscall at all); remedy: security_file_open with a file argument, which decides on the opened file`,
    );
  }
  return {
    backend: "generic",
    event: "process_kprobe",
    functionName: functionNameOf(h),
    mechanism: `syscall tracepoint tp_btf/${withExit ? "sys_exit" : "sys_enter"} filtered on syscall ${nr} (${name}), evaluated in the kernel (no kprobes on this kernel; Tetragon's semantics for a syscall kprobe)`,
    generic: [{ kind: "syscall", subsystem: "raw_syscalls", event: withExit ? "sys_exit" : "sys_enter", raw: false, syscall: name, withExit }],
    actions,
    limits,
    bypasses,
  };
}

const MODULE_SIGKILL = "SIGKILL queued at init_module/finit_module entry: the caller is killed, but the syscall runs to completion first, so the module may still load (Tetragon's Sigkill on a syscall kprobe behaves the same)";

/** init_module/finit_module without BPF LSM: the syscall tracepoint, said plainly that a kill does not stop the load. */
function moduleSyscallHook(h: WireHook, name: string, f: HookFeatures, monitor: boolean): HookPlan {
  if (!monitor) {
    h.selectors.forEach((sel, si) => {
      if ([...sel.matchActions, ...sel.matchReturnActions].some((a) => a.action === "Override")) {
        reject(`selector ${si}: Override needs BPF LSM (lsm/kernel_read_file, lsm/kernel_load_data) or bpf_override_return (kprobes), neither is available here (LSM loads are refused; CONFIG_KPROBES off); refused: SIGKILL at the syscall's entry would not stop the module from loading. Use Sigkill only if killing the caller is enough (the module may still load), or run on a kernel with BPF LSM`);
      }
    });
  }
  const r = syscallHook(h, name, f, monitor);
  return {
    ...r,
    actions: r.actions.map((a) => (a.action === "Sigkill" || a.action === "Signal(argSig=9)" ? { ...a, honored: MODULE_SIGKILL } : a)),
    limits: [...r.limits, "SIGKILL at syscall entry does not stop load_module: the module still loads and its init runs; the caller dies on its way out (measured on 6.1)"],
  };
}

/** A kprobe on list:NAME of syscalls: one syscall tracepoint per entry, the same selectors. */
function listHook(h: WireHook, lists: readonly ListSpec[], f: HookFeatures, monitor: boolean): HookPlan {
  checkGenericArgs(h);
  const name = h.name.slice("list:".length);
  const list = lists.find((l) => l.name === name);
  if (list === undefined) reject(`list ${name} is not defined in spec.lists`);
  if (list.type !== "syscalls" && list.type !== "generated_syscalls") {
    if (!f.kprobes) reject(`call ${h.name}: list ${name} (${list.type ?? "untyped"}) names kernel functions, which need kprobes: ${NO_KPROBES}; substitute: a list of type syscalls, which runs on the syscall tracepoints`);
    if (list.type === "generated_ftrace") reject(`call ${h.name}: list ${name} is generated_ftrace (a pattern over available_filter_functions): not expanded by ward; list the functions (a list without type)`);
    if (list.values.length === 0) reject(`call ${h.name}: list ${name} is empty`);
    return kernelKprobeHook(h, f, monitor, list.values, false);
  }
  const withExit = h.ret || h.selectors.some((s) => s.matchReturnArgs.length > 0 || s.matchReturnActions.length > 0);
  let generic: GenericAttach[];
  if (list.type === "generated_syscalls") {
    generic = [{ kind: "syscall", subsystem: "raw_syscalls", event: "sys_enter", raw: false, syscall: "*", withExit }];
  } else {
    generic = list.values.map((v) => {
      const s = syscallName(v);
      if (s === undefined) reject(`call ${h.name}: list entry ${v} is not a 64-bit syscall symbol (sys_X or __x64_sys_X)`);
      if (f.syscallNumber(s) === undefined) reject(`call ${h.name}: ${s} is not a known x86_64 syscall`);
      return { kind: "syscall", subsystem: "raw_syscalls", event: withExit ? "sys_exit" : "sys_enter", raw: false, syscall: s, withExit };
    });
  }
  const where = list.type === "generated_syscalls" ? "at every syscall entry (tp_btf/sys_enter)" : `at the entry of ${generic.map((g) => g.syscall).join(", ")} (tp_btf/sys_enter)`;
  return {
    backend: "generic",
    event: "process_kprobe",
    functionName: h.name,
    mechanism: `syscall tracepoint tp_btf/${withExit ? "sys_exit" : "sys_enter"} for list ${name}: ${list.type === "generated_syscalls" ? "every syscall" : generic.map((g) => g.syscall).join(", ")} (no kprobes on this kernel; each event names the syscall called)`,
    generic,
    actions: genericActions(h, f, monitor, where, undefined),
    limits: ["arguments are read at syscall entry, as the caller passed them"],
    bypasses: [],
  };
}

function tracepointHook(h: WireHook, f: HookFeatures, monitor: boolean): HookPlan {
  checkGenericArgs(h);
  const [subsystem = "", event = ""] = h.name.split("/");
  const raw = h.kind === 4;
  const exists = f.tracepoint(subsystem, event);
  if (exists === false && !raw) reject(`tracepoint ${subsystem}/${event} does not exist on this kernel (no events/${subsystem}/${event} in tracefs)`);
  const where = `at ${raw ? "raw tracepoint" : "tracepoint"} ${subsystem}/${event}`;
  return {
    backend: "generic",
    event: "process_tracepoint",
    functionName: h.name,
    mechanism: `${raw ? "raw tracepoint" : "tracefs tracepoint"} ${subsystem}/${event}${raw ? "" : " (arguments by index per its format file)"}`,
    generic: [{ kind: "tracepoint", subsystem, event, raw }],
    actions: genericActions(h, f, monitor, where, undefined),
    limits: [],
    bypasses: [],
  };
}

// ---------------------------------------------------------------- uprobes

/** Argument types a uprobe reads: integers from the argument registers, strings and buffers from the caller's memory. */
const UPROBE_READABLE = new Set([
  "auto", "int", "sint8", "int8", "uint8", "sint16", "int16", "uint16", "uint32", "sint32", "int32", "ulong", "uint64", "size_t", "long", "sint64", "int64",
  "string", "char_buf", "nop",
]);
const DIGEST_ALGORITHMS = new Set(["sha1", "sha256", "sha384", "sha512"]);

/**
 * spec.uprobes on the generic sensor's gen_uprobe: one uprobe PMU event per target, each
 * link's cookie the dispatch key, so the same selector evaluation as the syscall and
 * tracepoint hooks runs at the function's first instruction, with the caller's registers.
 */
function uprobeHook(h: WireHook, u: UProbeSpec, f: HookFeatures, monitor: boolean): HookPlan {
  const lookup = f.uprobes;
  if (lookup === undefined) reject(`hook ${h.name}: this kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe is absent, CONFIG_UPROBE_EVENTS off); no substitute attaches to a user function`);
  if (u.return || u.returnArg !== undefined) reject("return: uretprobes are not attached by ward's uprobe sensor: only the call is hooked (drop return/returnArg; the arguments are reported at the call)");
  if (u.data.length > 0) reject("data: extra data (pt_regs/current_task sources) is not read by ward's uprobe sensor; declare the values as args");
  if (u.refCtrOffsets.length > 0) reject("refCtrOffsets: USDT semaphores are not set by ward's uprobe sensor");
  u.args.forEach((a, i) => {
    if (!UPROBE_READABLE.has(a.type)) reject(`args[${i}]: type ${a.type} is a kernel object or kernel-only type; a uprobe sees the function's registers and the caller's memory (int, uint64, string, char_buf...)`);
    if (a.index > 5) reject(`args[${i}]: index ${a.index}: only the first six arguments (the x86_64 argument registers) are read; later ones are on the stack`);
    if (a.source !== undefined) reject(`args[${i}]: source ${a.source} is not read by ward's uprobe sensor`);
    if (a.returnCopy) reject(`args[${i}]: returnCopy needs the return probe, which ward does not attach`);
    if (a.resolve !== "") reject(`args[${i}]: resolve is not supported for uprobes (as in Tetragon)`);
  });
  h.selectors.forEach((sel, si) => {
    if (sel.matchReturnArgs.length > 0 || sel.matchReturnActions.length > 0) reject(`selectors[${si}]: matchReturnArgs/matchReturnActions need the return probe, which ward does not attach`);
    for (const m of [...sel.matchArgs]) {
      const decl = m.args.length > 0 ? u.args[m.args[0]!] : u.args.find((a) => a.index === m.index);
      if (decl === undefined) reject(`selectors[${si}].matchArgs: index ${m.index} names no declared argument`);
    }
    for (const a of [...sel.matchActions]) {
      if (a.action === "Override" && !monitor) {
        reject(`selectors[${si}]: Override on a uprobe cannot be honored: it means changing the caller's registers and return address from the probe (Tetragon's argRegs/argNew*), which ward's uprobe program does not do, and bpf_override_return works on kernel functions only (kprobes with CONFIG_BPF_KPROBE_OVERRIDE${f.kprobes ? "" : ", absent here"}); substitute: Sigkill, which kills the caller before the function's first instruction runs`);
      }
    }
  });
  if (u.binaryDigests.length > 0) {
    let actual: string[];
    try {
      actual = u.binaryDigests.map((d) => {
        const algo = d.split(":")[0] ?? "";
        if (!DIGEST_ALGORITHMS.has(algo)) reject(`binaryDigests: ${d}: only sha1, sha256, sha384 and sha512 digests are checked by ward (not ${algo})`);
        return lookup.digest(u.path, algo as "sha1");
      });
    } catch (e) {
      if (e instanceof Reject) throw e;
      reject(`path ${u.path}: ${(e as Error).message}`);
    }
    if (!u.binaryDigests.some((d, i) => d.toLowerCase() === actual[i])) {
      reject(`binaryDigests: ${u.path} matches none of the digests (it is ${[...new Set(actual)].join(", ")})${u.ignore.digestVerificationFailure ? "; ignore.digestVerificationFailure would skip only this hook, which ward does not do (the policy would be partially enabled): remove the hook or fix the digest" : ""}`);
    }
  }
  const named: { field: string; target: { symbol: string } | { offset: number } | { addr: number }; label: string }[] = [
    ...u.symbols.map((sym, i) => ({ field: `symbols[${i}]`, target: { symbol: sym }, label: sym })),
    ...u.offsets.map((o, i) => ({ field: `offsets[${i}]`, target: { offset: o }, label: "" })),
    ...u.addrs.map((a, i) => ({ field: `addrs[${i}]`, target: { addr: a }, label: "" })),
  ];
  const targets = named.map((n) => {
    try {
      return { symbol: n.label, offset: lookup.fileOffset(u.path, n.target) };
    } catch (e) {
      const msg = (e as Error).message;
      // the file itself (missing, unreadable, not ELF) is the path's problem, not one target's
      if (msg.startsWith(`read ${u.path}:`) || msg.startsWith(`${u.path}:`)) reject(`path: ${msg}`);
      reject(`${n.field}: ${msg}`);
    }
  });
  const where = `at the first instruction of ${u.symbols.length > 0 ? u.symbols.join(", ") : `file offset${targets.length > 1 ? "s" : ""} ${targets.map((t) => `0x${t.offset.toString(16)}`).join(", ")}`} in ${u.path} (uprobe)`;
  const actions = genericActions(h, f, monitor, where, undefined).map((a) =>
    a.action === "Sigkill" ? { ...a, honored: `SIGKILL with bpf_send_signal ${where}: delivered as the breakpoint trap returns, so the caller dies before the function body runs` } : a,
  );
  return {
    backend: "generic",
    event: "process_uprobe",
    functionName: u.symbols.join(","),
    mechanism: `uprobe PMU on ${u.path} at file offset${targets.length > 1 ? "s" : ""} ${targets.map((t) => `0x${t.offset.toString(16)}${t.symbol ? ` (${t.symbol})` : ""}`).join(", ")}, evaluated in the kernel by the generic sensor's gen_uprobe (every process mapping the file, system-wide)`,
    generic: [{ kind: "uprobe", subsystem: "uprobes", event: h.name, raw: false, uprobe: { path: u.path, targets } }],
    actions,
    limits: [
      "arguments are the first six integer/pointer arguments of the x86_64 calling convention, read at the function's first instruction; strings and buffers from the caller's memory",
      "the probe is on the file's inode: a copy of the binary elsewhere, or a statically linked duplicate of the function, is not probed",
    ],
    bypasses: u.args.some((a) => a.type === "string" || a.type === "char_buf") ? ["a sibling thread can change a string or buffer argument after the probe read it (TOCTOU on the user pointer)"] : [],
    // Each target's link is pinned as generic/link_up_<policy number>_<dispatch id>, which the
    // manifest maps back to the policy and target: a restarted agent adopts or removes it.
    ...(f.keepSensors ? { afterExit: "the same: gen_uprobe, its link on each target (pinned per policy and target) and the generic sensor's maps are pinned under --bpf-dir and keep evaluating this hook; events wait in the pinned ring buffer for the next agent" } : {}),
  };
}

function functionNameOf(h: WireHook): string {
  if (h.list === "kprobes" && h.syscall) {
    const s = syscallName(h.name);
    if (s !== undefined) return `__x64_sys_${s}`;
  }
  return h.name;
}

// ---------------------------------------------------------------- the socket sensor (cgroup sock_addr)

/** Which cgroup hooks stand for a socket hook, and which arguments they see. */
interface SockKind {
  /** "connect": security_socket_connect, sys_connect; "tcp_connect"; "bind"; "sendto" */
  what: "connect" | "tcp_connect" | "bind" | "sendto";
  points: SockPoint[];
  /** prototype index -> role of the argument the hooks supply */
  roles: Map<number, "sock" | "sockaddr">;
}

const AF_INET = 2, AF_INET6 = 10;
const SOCK_ADDR_OPS = new Set(["Family", "SAddr", "NotSAddr", "SPort", "NotSPort", "SPortPriv", "NotSportPriv", "NotSPortPriv"]);
const SOCK_SOURCE_OPS = new Set(["SAddr", "NotSAddr", "SPort", "NotSPort", "SPortPriv", "NotSportPriv", "NotSPortPriv"]);
const SOCK_OPS_ALL = new Set(["Family", "Protocol", "State", "SAddr", "NotSAddr", "DAddr", "NotDAddr", "SPort", "NotSPort", "DPort", "NotDPort", "SPortPriv", "NotSportPriv", "NotSPortPriv", "DPortPriv", "NotDPortPriv"]);
const POSITIVE_INET_OPS = new Set(["SAddr", "DAddr", "SPort", "DPort", "SPortPriv", "DPortPriv"]);

/** The socket hook a kprobe/lsm hook maps to, or undefined when it is not one. */
function sockKind(h: WireHook, lsm: string | undefined): SockKind | undefined {
  const both = (a: SockPoint, b: SockPoint): SockPoint[] => [a, b];
  if (lsm === "socket_connect") return { what: "connect", points: both("connect4", "connect6"), roles: new Map([[0, "sock"], [1, "sockaddr"]]) };
  if (lsm === "socket_bind") return { what: "bind", points: both("bind4", "bind6"), roles: new Map([[0, "sock"], [1, "sockaddr"]]) };
  if (h.list !== "kprobes") return undefined;
  if (!h.syscall && h.name === "tcp_connect") return { what: "tcp_connect", points: both("connect4", "connect6"), roles: new Map([[0, "sock"]]) };
  const s = h.syscall ? syscallName(h.name) : undefined;
  // Syscall kprobes go to the cgroup hooks only for Override, which the syscall tracepoint
  // cannot honor; Post/Sigkill stay at the syscall entry (the arguments as passed, every family).
  const override = h.selectors.some((sel) => sel.matchActions.some((a) => a.action === "Override"));
  if (!override) return undefined;
  if (s === "connect") return { what: "connect", points: both("connect4", "connect6"), roles: new Map([[1, "sockaddr"]]) };
  if (s === "bind") return { what: "bind", points: both("bind4", "bind6"), roles: new Map([[1, "sockaddr"]]) };
  if (s === "sendto") return { what: "sendto", points: both("sendmsg4", "sendmsg6"), roles: new Map([[4, "sockaddr"]]) };
  return undefined;
}

function sockPointsText(k: SockKind): string {
  return k.points.map((p) => `cgroup/${p}`).join(" and ");
}

/**
 * A socket hook on the cgroup sock_addr programs (bpf/sock_addr.c), attached at the cgroup
 * v2 root so every process runs them. They exist on every kernel with cgroup v2 and decide
 * before the kernel acts: a denied connect sends no packet, a denied bind binds nothing, a
 * denied UDP send sends nothing. They see inet sockets only (TCP, UDP, ICMP ping; not raw
 * sockets, not AF_UNIX), the address the caller passed and the socket before the call: a
 * selector that could match something else is refused, never narrowed silently.
 */
function sockHook(h: WireHook, k: SockKind, f: HookFeatures, monitor: boolean): HookPlan {
  const where = `in ${sockPointsText(k)}`;
  const cg = f.cgroupSockAddr?.() ?? { root: "" };
  if ("missing" in cg) reject(`hook ${h.name}: the cgroup socket hooks (${sockPointsText(k)}) cannot run: ${cg.missing}; substitute: BPF LSM (socket_connect/socket_bind) on a kernel that loads it`);
  if (h.ret) reject(`return: true: ${sockPointsText(k)} run before the call and see no return value; drop return: true`);
  if (h.data.length > 0) reject("data: the cgroup socket hooks read no extra data (current_task/pt_regs)");
  const at = cg.root ? ` (${cg.root})` : "";
  const inetHint = `add matchArgs Family [AF_INET, AF_INET6] (or an address/port selector) on the ${[...k.roles.values()].includes("sockaddr") ? "sockaddr" : "socket"} argument, or use BPF LSM socket_${k.what === "bind" ? "bind" : "connect"} on a kernel that loads it`;
  const calls = k.what === "sendto" ? "sends" : k.what === "bind" ? "binds" : "connects";
  if (h.selectors.length === 0 && k.what !== "tcp_connect") reject(`no selectors: every ${calls.slice(0, -1)} would match, those of non-inet sockets (AF_UNIX, AF_NETLINK, ...) too, which ${sockPointsText(k)} never see (inet sockets only); ${inetHint}`);
  const seenSlots: number[] = [];
  const unseen: string[] = [];
  h.args.forEach((a, slot) => {
    const role = k.roles.get(a.index);
    const sockType = a.type === "sock" || a.type === "socket" ? "sock" : a.type === "sockaddr" ? "sockaddr" : undefined;
    if (role !== undefined && sockType !== undefined && role !== sockType) reject(`argument index ${a.index} is declared ${a.type}, but ${h.name}'s argument ${a.index} is a ${role === "sock" ? "socket" : "sockaddr"}`);
    if (role !== undefined && sockType === role) seenSlots.push(slot);
    else unseen.push(`index ${a.index} (${a.type})`);
  });
  const bins = (sel: KProbeSelector, si: number): void => {
    if (sel.matchBinaries.length > 1) reject(`selector ${si}: more than one matchBinaries`);
    const b = sel.matchBinaries[0];
    if (b === undefined) return;
    if (b.operator !== "In" && b.operator !== "NotIn") reject(`selector ${si}: matchBinaries ${b.operator}: the cgroup socket hooks match the process's binary by its interned path (In/NotIn); substitute: list the binaries with In/NotIn`);
    if (b.followChildren) reject(`selector ${si}: matchBinaries followChildren is not evaluated by the cgroup socket hooks`);
  };
  h.selectors.forEach((sel, si) => {
    const extra: string[] = [];
    if (sel.matchPIDs.length) extra.push("matchPIDs");
    if (sel.matchData.length) extra.push("matchData");
    if (sel.matchReturnArgs.length) extra.push("matchReturnArgs");
    if (sel.matchReturnActions.length) extra.push("matchReturnActions");
    if (sel.matchParentBinaries.length) extra.push("matchParentBinaries");
    if (sel.matchNamespaces.length) extra.push("matchNamespaces");
    if (sel.matchNamespaceChanges.length) extra.push("matchNamespaceChanges");
    if (sel.matchCapabilities.length) extra.push("matchCapabilities");
    if (sel.matchCapabilityChanges.length) extra.push("matchCapabilityChanges");
    if (sel.matchWorkloads !== undefined) extra.push("matchWorkloads");
    if (extra.length) reject(`selector ${si}: ${extra.join(", ")} are not evaluated by the cgroup socket hooks (they match the socket, the address and the binary); substitute: the syscall kprobe sys_${k.what === "tcp_connect" ? "connect" : k.what} (syscall: true) with Sigkill, which evaluates every matcher at the syscall's entry`);
    bins(sel, si);
    let inetOnly = k.what === "tcp_connect";
    for (const m of sel.matchArgs) {
      const decl = m.args.length > 0 ? h.args[m.args[0]!] : h.args.find((a) => a.index === m.index);
      const role = decl !== undefined ? k.roles.get(decl.index) : undefined;
      if (decl === undefined || role === undefined) reject(`selector ${si}: matchArgs index ${m.index}: ${sockPointsText(k)} see only ${[...k.roles].map(([i, r]) => `argument ${i} (${r})`).join(" and ")} of ${h.name}; the others are not available there`);
      if (role === "sockaddr" && !SOCK_ADDR_OPS.has(m.operator)) reject(`selector ${si}: ${m.operator} on a sockaddr argument is not evaluated by the cgroup socket hooks (Family, SAddr, SPort and their Not/Priv forms)`);
      if (role === "sock" && !SOCK_OPS_ALL.has(m.operator)) reject(`selector ${si}: ${m.operator} on a socket argument is not evaluated by the cgroup socket hooks`);
      if (k.what === "tcp_connect" && SOCK_SOURCE_OPS.has(m.operator)) {
        reject(`selector ${si}: ${m.operator} at tcp_connect reads the source address/port the kernel picks after ${sockPointsText(k)} run (they see it only when the socket was bound first), and there are no kprobes here (${NO_KPROBES}); substitute: DAddr/DPort/Protocol/Family selectors, or a security_socket_bind/sys_bind rule on the source`);
      }
      if (m.operator === "Family") {
        const fams = m.values.map((v) => ADDRESS_FAMILIES[v] ?? Number.parseInt(v, 10));
        if (fams.every((x) => x === AF_INET || x === AF_INET6)) inetOnly = true;
      }
      if (POSITIVE_INET_OPS.has(m.operator)) inetOnly = true;
    }
    if (!inetOnly) {
      reject(`selector ${si}: it can match ${calls} of non-inet sockets (AF_UNIX, AF_NETLINK, ...), which ${sockPointsText(k)} never see (inet sockets only); ${inetHint}`);
    }
  });
  const actions = sockActions(h, k, monitor, where);
  const limits: string[] = [];
  const bypasses: string[] = [];
  if (unseen.length) limits.push(`${unseen.length === 1 ? "argument" : "arguments"} ${unseen.join(", ")} ${unseen.length === 1 ? "is" : "are"} not seen by ${sockPointsText(k)}: events omit ${unseen.length === 1 ? "it" : "them"}`);
  limits.push(`the programs are attached at the cgroup v2 root${at}, so every process runs them; they see the address the caller passed, before any other cgroup program of a descendant cgroup rewrites it`);
  if (k.what === "tcp_connect") {
    limits.push(
      "tcp_connect is decided at the connect(2) of a TCP socket (and TCP fast open's sendto), before the kernel picks the source address and port: events carry them only when the socket was bound first; the socket's state is TCP_SYN_SENT as at tcp_connect",
      "the hook runs before routing: a connect that then fails (ENETUNREACH, EADDRNOTAVAIL) and never reaches tcp_connect is matched too",
    );
  } else if (k.what === "connect") {
    limits.push(
      "connect(2) of TCP, UDP and ICMP ping sockets (and TCP fast open's sendto) is decided; the socket argument is the socket before the call",
      "a connect(2) on a TCP socket that is already connected or connecting fails (EISCONN, EALREADY) before the hook: no event for it",
    );
    bypasses.push("raw sockets (SOCK_RAW, CAP_NET_RAW) do not run the cgroup connect/sendmsg hooks: their connects and sends are not seen; remedy: a rule that kills socket(2) of SOCK_RAW (sys_socket, syscall: true, matchArgs on the type), or BPF LSM");
  } else if (k.what === "bind") {
    limits.push("bind(2) of TCP, UDP and ICMP ping sockets is decided; the kernel's implicit bind at connect/send (an ephemeral port) runs no bind hook");
    bypasses.push("raw sockets (SOCK_RAW) do not run the cgroup bind hooks");
  } else {
    limits.push("UDP (and ICMP ping) sends that name an address are decided in cgroup/sendmsg4/6, whichever syscall sends them (sendto, sendmsg, sendmmsg, io_uring); a TCP socket ignores the address of sendto (the data goes to its peer, decided at connect)");
    bypasses.push("sends on a connected UDP socket without an address go to the peer chosen at connect(2): cover it with the same rule on sys_connect (Override)", "raw sockets (SOCK_RAW) do not run the cgroup sendmsg hooks");
  }
  return {
    backend: "sock",
    event: h.list === "lsmhooks" ? "process_lsm" : "process_kprobe",
    functionName: functionNameOf(h),
    mechanism: `cgroup sock_addr programs ${sockPointsText(k)} at the cgroup v2 root${at}, decided in the kernel before the ${k.what === "bind" ? "bind" : k.what === "sendto" ? "send" : "connection"} happens (no BPF LSM or kprobes needed)`,
    sock: { points: k.points, tcpConnect: k.what === "tcp_connect", seenSlots },
    actions,
    limits,
    bypasses,
  };
}

function sockActions(h: WireHook, k: SockKind, monitor: boolean, where: string): ActionHonor[] {
  const out: ActionHonor[] = [];
  const call = k.what === "bind" ? "bind()" : k.what === "sendto" ? "the send" : "connect()";
  const sels = h.selectors.length > 0 ? h.selectors : [undefined];
  sels.forEach((sel, si) => {
    const acts = sel === undefined ? [{ action: "Post", argRegs: [], kernelStackTrace: false, userStackTrace: false, imaHash: false } as ActionSelector] : actionsOf(sel);
    for (const a of acts) {
      const label = actionLabel(a);
      if (a.rateLimit !== undefined || a.kernelStackTrace || a.userStackTrace || a.imaHash) {
        reject(`selector ${si}: ${a.action} with rateLimit/stack traces/imaHash is not supported by the cgroup socket hooks (they report every match without them)`);
      }
      if (monitor && ENFORCING.has(a.action)) {
        out.push({ selector: si, action: label, honored: `monitor mode: not enforced, posted as an event ${where}` });
        continue;
      }
      switch (a.action) {
        case "Post":
          out.push({ selector: si, action: label, honored: `event posted ${where}` });
          break;
        case "NoPost":
          out.push({ selector: si, action: label, honored: "no event; the other actions still run" });
          break;
        case "Override": {
          const e = a.argError;
          if (e !== undefined && (e > -1 || e < -4095)) {
            reject(`selector ${si}: ${label}: the cgroup socket hooks fail a call with a negative errno (argError -4095..-1, e.g. -1 for EPERM) through bpf_set_retval; ${e} is not one (a kprobe override would return it from the call as is), and there is no BPF LSM or fmod_ret here to do that`);
          }
          out.push({ selector: si, action: label, honored: `${call} fails with ${e === undefined || e === -1 ? "EPERM" : `errno ${-e}`} ${where}, before the kernel acts (nothing is sent or bound)` });
          break;
        }
        case "Sigkill":
          out.push({ selector: si, action: label, honored: `SIGKILL with bpf_send_signal ${where}: the process dies before ${call} returns, and the call is denied too, so nothing leaves first` });
          break;
        case "Signal":
          out.push({ selector: si, action: label, honored: a.argSig === SIGKILL ? `SIGKILL with bpf_send_signal ${where}; the call is denied too` : `signal ${a.argSig ?? "?"} with bpf_send_signal ${where}; the call proceeds` });
          break;
        default:
          reject(`selector ${si}: action ${a.action} is not taken by the cgroup socket hooks (they honor Post, NoPost, Override, Sigkill, Signal)`);
      }
    }
  });
  return out;
}

// ---------------------------------------------------------------- kernel-function kprobes


/** Argument types the kprobe programs read from a kernel function's arguments. */
const KPROBE_READABLE = new Set([
  "int", "sint8", "int8", "uint8", "sint16", "int16", "uint16", "uint32", "sint32", "int32", "ulong", "uint64", "size_t", "long", "sint64", "int64",
  "string", "filename", "char_buf", "const_buf", "file", "fd", "path", "sock", "socket", "skb", "cred",
  "kernel_cap_t", "cap_inheritable", "cap_permitted", "cap_effective", "capability", "nop",
]);

const INT_TYPES = new Set(["int", "sint8", "int8", "uint8", "sint16", "int16", "uint16", "uint32", "sint32", "int32", "ulong", "uint64", "size_t", "long", "sint64", "int64", "capability"]);

function hasOverride(h: WireHook): boolean {
  return h.selectors.some((sel) => sel.matchActions.some((a) => a.action === "Override"));
}

/**
 * A kprobe (and with return: true a kretprobe) on kernel functions, Tetragon's semantics:
 * arguments read from the function's registers at its entry (file/path/sock/skb/cred objects
 * with CO-RE), every selector kind evaluated in the kernel at the entry, matchReturnArgs at
 * the return, Override by bpf_override_return on functions the kernel allows error injection
 * for. `symbols` are the functions (a list hook's entries); syscallAbi: syscall wrappers.
 */
function kernelKprobeHook(h: WireHook, f: HookFeatures, monitor: boolean, symbols: readonly string[], syscallAbi: boolean): HookPlan {
  // A kernel-function kprobe link is per policy and per function (perf kprobe or kprobe.multi),
  // not among the pins a restarted agent adopts: refused rather than kept only while the agent runs.
  if (f.keepSensors) reject(`hook ${h.name}: with --keep-sensors-on-exit every hook must stay enforced after the agent exits, and ward does not pin kernel-function kprobe links (one per policy and function, not adoptable by a restarted agent); run without --keep-sensors-on-exit (the hook then lasts while the agent runs)`);
  const shown = symbols.length === 1 ? symbols[0]! : `${symbols.length} functions (${symbols.slice(0, 3).join(", ")}${symbols.length > 3 ? ", ..." : ""})`;
  if (!f.kprobes) reject(`hook ${h.name} cannot run on this kernel: ${NO_KPROBES}; substitute: ${substituteFor(h.name)}`);
  for (const sym of symbols) {
    if (f.kernelFunction?.(sym) === false) reject(`${sym} is not a kernel function here (not in /proc/kallsyms); kprobes attach to existing functions only`);
  }
  if (h.data.length > 0) reject("data (source current_task / pt_regs): not read by ward's kprobe programs; substitute: arguments of the function (args)");
  if (h.returnArgAction !== "" && h.returnArgAction !== "Post") {
    reject(`returnArgAction ${h.returnArgAction}: socket tracking (TrackSock/UntrackSock) is not implemented by ward's kprobe programs; the return is posted (Post, the default) or nothing`);
  }
  if (h.ret && h.returnArg !== undefined && !INT_TYPES.has(h.returnArg.type)) {
    reject(`returnArg of type ${h.returnArg.type}: the kretprobe reads the return value as an integer only (int, long, uint64, ...); declare it as one (a pointer prints as its address)`);
  }
  for (const a of h.args) {
    if (syscallAbi) {
      if (!GENERIC_READABLE.has(a.type)) reject(`argument index ${a.index} of type ${a.type}: a syscall's arguments are user values (read as at sys_enter); ${a.type} is not read there`);
      continue;
    }
    if (!KPROBE_READABLE.has(a.type)) {
      const why = a.type === "dentry" ? "dentry (a path within its mount) is not read; declare the struct path (path) or file argument instead"
        : a.type === "sockaddr" || a.type === "char_iovec" || a.type === "linux_binprm" || a.type === "kiocb" ? `${a.type} is read from syscall arguments only here`
        : `${a.type} is not read by ward's kprobe programs`;
      reject(`argument index ${a.index} of type ${a.type}: ${why}`);
    }
    if (a.returnCopy) reject(`argument index ${a.index}: returnCopy is not read at a kretprobe here (the buffer is read at the entry)`);
  }
  h.selectors.forEach((sel, si) => {
    if ((sel.matchReturnArgs.length > 0 || sel.matchReturnActions.length > 0) && !h.ret) reject(`selector ${si}: matchReturnArgs/matchReturnActions need return: true (a kretprobe)`);
    if (sel.matchReturnActions.some((a) => a.action === "Override")) reject(`selector ${si}: Override in matchReturnActions: the call has already run at its return; put Override in matchActions`);
    for (const m of sel.matchArgs) {
      const decl = m.args.length > 0 ? h.args[m.args[0]!] : h.args.find((a) => a.index === m.index);
      if (decl?.type === "cred") reject(`selector ${si}: matchArgs on a cred argument: Tetragon has no operators on cred; use matchCapabilities or match the uid through the process`);
    }
  });
  const override = hasOverride(h) && !monitor;
  let canOverride: string | undefined;
  if (override) {
    if (!f.overrideReturn) reject(`Override on ${shown} needs bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE), which this kernel does not have; substitute: Sigkill at the kprobe (the call still runs, its caller dies before returning)`);
    for (const sym of symbols) {
      const ok = f.errorInjectable?.(sym);
      if (ok === undefined) reject(`Override on ${sym}: the kernel's error-injection list (/sys/kernel/debug/error_injection/list) cannot be read, so whether bpf_override_return may act on it is unknown; refused rather than attached blind`);
      if (!ok) {
        reject(`Override on ${sym}: the kernel allows bpf_override_return only on functions marked for error injection (ALLOW_ERROR_INJECTION, /sys/kernel/debug/error_injection/list) and ${sym} is not one; substitute: Sigkill at the kprobe (the call still runs), a syscall kprobe (sys_X, syscall: true) with Override, or the security_* hook's rule (BPF LSM / fanotify / the file guard) for files`);
      }
    }
    canOverride = `the call returns argError without running (bpf_override_return at the entry of ${shown}, which the kernel lists for error injection); other actions of the selector run first`;
  }
  const ret = h.ret || h.selectors.some((sel) => sel.matchReturnArgs.length > 0);
  const multi = f.kprobeMulti === true && symbols.length > 1 && !override;
  const where = `at the entry of ${shown} (kprobe${ret ? ", the event sent at its return from a kretprobe" : ""})`;
  const actions = genericActions(h, f, monitor, where, canOverride);
  const limits = [
    syscallAbi ? "arguments are the syscall's, read from its user registers at the entry of the syscall function" : "arguments are read at the function's entry from its registers (x86_64 calling convention); objects (file, path, sock, skb, cred) are read from kernel memory with CO-RE relocations for this kernel",
    "Sigkill and Signal are queued at the entry: the function still runs, the process dies on its way back to user space",
  ];
  if (ret) {
    limits.push(
      "return: true keeps the entry's record per thread until the return (the event carries the arguments as they were at the entry); a recursive call of the same function on the same thread replaces the outer call's record, whose return then posts nothing",
      "a kretprobe misses returns when more calls are in flight than the kernel's kretprobe instances (maxactive); the entry then posts nothing",
    );
  }
  if (syscallAbi) limits.push("32-bit (int 0x80) callers enter through the compat syscall functions, which this kprobe does not cover");
  const bypasses: string[] = [];
  if (syscallAbi && override) bypasses.push(`32-bit processes call the i386 entry of the syscall, not ${shown}: the Override does not apply to them; remedy: a rule that kills them at the syscall tracepoint (the same hook without Override runs on tp_btf/sys_enter, which sees compat calls), or a kernel without IA32 emulation`);
  const mechanism = multi
    ? `kprobe.multi link on ${shown}${ret ? " and a kretprobe.multi link" : ""} (generic kprobe programs, every selector in the kernel)`
    : `kprobe on ${shown} through the kprobe PMU (perf_event_open + BPF_PERF_EVENT link)${ret ? " and a kretprobe for the return" : ""}${override ? "; Override by bpf_override_return" : ""} (generic kprobe programs, every selector in the kernel)`;
  return {
    backend: "generic",
    event: "process_kprobe",
    functionName: syscallAbi && symbols.length === 1 ? symbols[0]! : h.name,
    mechanism,
    generic: [{ kind: "kprobe", subsystem: "kprobe", event: symbols.join(","), raw: false, symbols: [...symbols], syscallAbi, override, withExit: ret }],
    actions,
    limits,
    bypasses,
  };
}

// ---------------------------------------------------------------- BPF LSM on the generic sensor

/** What each argument of an LSM hook the generic sensor holds is, by prototype index. */
export interface LsmArgRole {
  role: "int" | "sockaddr" | "path" | "file" | "dentry" | "task" | "unread";
  /** int: bytes of the value */
  size?: 1 | 2 | 4 | 8;
  signed?: boolean;
  /** dentry: the argument index of the directory's struct path, whose mount completes it */
  dentryOf?: number;
  /** as the kernel declares it, for messages */
  decl: string;
}

const INT = (decl: string, size: 1 | 2 | 4 | 8, signed = false): LsmArgRole => ({ role: "int", size, signed, decl });
const UNREAD = (decl: string): LsmArgRole => ({ role: "unread", decl });
const PATH: LsmArgRole = { role: "path", decl: "const struct path *" };
const DENTRY = (dir: number): LsmArgRole => ({ role: "dentry", dentryOf: dir, decl: "struct dentry *" });

/** The hooks of bpf/generic.c's gen_lsm_* programs and their prototypes (6.1's security_* hooks). */
export const LSM_GENERIC: Readonly<Record<string, readonly LsmArgRole[]>> = {
  socket_connect: [UNREAD("struct socket *"), { role: "sockaddr", decl: "struct sockaddr *" }, INT("int addrlen", 4, true)],
  socket_bind: [UNREAD("struct socket *"), { role: "sockaddr", decl: "struct sockaddr *" }, INT("int addrlen", 4, true)],
  path_unlink: [PATH, DENTRY(0)],
  path_rename: [PATH, DENTRY(0), PATH, DENTRY(2), INT("unsigned int flags", 4)],
  path_truncate: [PATH],
  path_chmod: [PATH, INT("umode_t mode", 2)],
  path_mkdir: [PATH, DENTRY(0), INT("umode_t mode", 2)],
  task_kill: [{ role: "task", decl: "struct task_struct *" }, UNREAD("struct kernel_siginfo *"), INT("int sig", 4, true), UNREAD("const struct cred *")],
  bpf: [INT("int cmd", 4, true), UNREAD("union bpf_attr *"), INT("unsigned int size", 4)],
  // ids: READING_MODULE 2, READING_FIRMWARE 1, READING_KEXEC_IMAGE 3, ... (kernel_read_file.h); LOADING_MODULE 2
  kernel_read_file: [{ role: "file", decl: "struct file *" }, INT("enum kernel_read_file_id id", 4), INT("bool contents", 1)],
  kernel_load_data: [INT("enum kernel_load_data_id id", 4), INT("bool contents", 1)],
};

const INT_DECLS = new Set(["int", "sint8", "int8", "uint8", "sint16", "int16", "uint16", "uint32", "sint32", "int32", "ulong", "uint64", "size_t", "long", "sint64", "int64", "auto", "bpf_cmd"]);

/** Which policy argument types fit a role (Tetragon's names). */
function lsmTypeFits(role: LsmArgRole, type: string): boolean {
  switch (role.role) {
    case "int":
    case "task":
      return INT_DECLS.has(type);
    case "sockaddr":
      return type === "sockaddr";
    case "path":
      return type === "path";
    case "file":
      return type === "file";
    case "dentry":
      return type === "dentry" || type === "path";
    case "unread":
      return true;
  }
}

/**
 * A BPF LSM hook on the generic sensor (lsmhooks, or a kprobe on the security_* function):
 * the gen_lsm_<hook> program evaluates the policy's selectors with the same engine as the
 * syscall and tracepoint hooks, and Override or Sigkill make the hook return the error, so
 * the call fails before it has any effect.
 */
function lsmGenericHook(h: WireHook, lsm: string, f: HookFeatures, monitor: boolean): HookPlan {
  const roles = LSM_GENERIC[lsm]!;
  const prog = `lsm/${lsm}`;
  if (h.ret) reject(`return: true on ${h.name}: the BPF LSM program runs before the call and sees no return value; drop return: true`);
  for (const a of h.args) {
    const role = roles[a.index];
    if (role === undefined) reject(`argument index ${a.index}: ${h.name} has ${roles.length} arguments (${roles.map((r) => r.decl).join(", ")})`);
    if (!lsmTypeFits(role, a.type)) reject(`argument index ${a.index} of type ${a.type}: ${h.name}'s argument ${a.index} is ${role.decl}; declare it as ${role.role === "dentry" ? "dentry (or path)" : role.role === "task" ? "int (the target's tgid)" : role.role === "int" ? "an integer type" : role.role}`);
  }
  h.selectors.forEach((sel, si) => {
    if (sel.matchReturnArgs.length > 0 || sel.matchReturnActions.length > 0) reject(`selector ${si}: matchReturnArgs/matchReturnActions on ${h.name}: the BPF LSM program decides before the call returns`);
    for (const m of sel.matchArgs) {
      const decl = m.args.length > 0 ? h.args[m.args[0]!] : h.args.find((a) => a.index === m.index);
      const role = decl === undefined ? undefined : roles[decl.index];
      if (role?.role === "unread") {
        reject(`selector ${si}: matchArgs on argument ${decl!.index} (${role.decl}) of ${h.name}: ${prog} does not read it${lsm.startsWith("socket_") ? "; substitute: SAddr/SPort/Family on the sockaddr argument (index 1)" : ""}`);
      }
    }
    for (const a of actionsOf(sel)) {
      if (a.action !== "Override" || monitor) continue;
      const e = a.argError;
      if (e !== undefined && (e > -1 || e < -4095)) reject(`selector ${si}: ${actionLabel(a)}: ${prog} fails the call with the negative errno it returns (argError -4095..-1, -1 for EPERM); ${e} is not one`);
    }
  });
  const where = `in ${prog}, before the call has any effect`;
  const base = genericActions(h, f, monitor, where, "");
  const actions = base.map((a) => {
    if (a.honored.startsWith("monitor mode")) return a;
    const err = /argError=(-?\d+)/.exec(a.action)?.[1];
    if (a.action.startsWith("Override")) return { ...a, honored: `${prog} returns ${err === undefined || err === "-1" ? "-EPERM" : err}: the call fails with ${err === undefined || err === "-1" ? "EPERM" : `errno ${-Number(err)}`} and has no effect` };
    if (a.action === "Sigkill" || a.action === "Signal(argSig=9)") return { ...a, honored: `SIGKILL with bpf_send_signal ${where}, and ${prog} fails the call with EPERM: the process dies before it returns to user space and the call has no effect` };
    return a;
  });
  const limits: string[] = [];
  const bypasses: string[] = [];
  if (lsm.startsWith("path_")) {
    limits.push(
      `paths are the full path (absolute, relative to the caller's root, through mount points) walked from the ${h.args.some((a) => roles[a.index]?.role === "dentry") ? "dentry under its directory's mount" : "struct path"} in ${prog}: bpf_d_path is not allowed on this hook, so the walk follows d_parent like d_path, at most 256 components (a longer path is reported truncated at its start)`,
      "a hardlink is matched by the name it is reached through, not by the file's other names",
    );
    if (lsm === "path_truncate") limits.push("path_truncate sees truncate(2) and ftruncate(2); O_TRUNC at open goes through security_file_open (a file_open rule covers it)");
    bypasses.push("the path hooks need CONFIG_SECURITY_PATH; they see operations through the VFS, so a file reached under a path the rule does not name (a bind mount elsewhere, another hardlink) is not matched; remedy: Prefix on every name, or a security_file_open rule with Equal files (by inode)");
  } else if (lsm.startsWith("socket_")) {
    limits.push(`the socket argument is not read by ${prog} (events omit it); selectors use the sockaddr (index 1): Family, SAddr, SPort and their Not/Priv forms, as the caller passed it`);
  } else if (lsm === "task_kill") {
    limits.push("the task argument is read as the target's tgid; a signal to a process group or to -1 is decided once per target task, as the kernel checks it");
  } else if (lsm === "bpf") {
    limits.push("cmd is the bpf(2) command number (BPF_MAP_CREATE 0, BPF_PROG_LOAD 5, ...); the attribute is not read");
  } else if (lsm === "kernel_read_file") {
    limits.push("every kernel read of a file passes here (modules through finit_module, firmware, kexec images, IMA policies): select on the id (index 1, READING_MODULE 2) to decide module loads only; init_module's blob goes through kernel_load_data instead");
  } else if (lsm === "kernel_load_data") {
    limits.push("init_module's blob (LOADING_MODULE 2) and other in-memory loads (firmware, kexec, policies) pass here, with no file: select on the id (index 0); finit_module goes through kernel_read_file instead");
  }
  return {
    backend: "generic",
    event: h.list === "lsmhooks" ? "process_lsm" : "process_kprobe",
    functionName: h.name,
    mechanism: `BPF LSM ${prog}, evaluated in the kernel by the generic selector engine (every selector kind); Override and Sigkill fail the call there, before it has any effect`,
    generic: [{ kind: "lsm", subsystem: "lsm", event: lsm, raw: false }],
    actions,
    limits,
    bypasses,
    // The hook's program and link are pinned as generic/prog_gen_lsm_<hook> and
    // generic/link_lsm_<hook> (shared by every policy on the hook) and adopted from there.
    ...(f.keepSensors ? { afterExit: `the same: ${prog}, its link (generic/link_lsm_${lsm}, shared by the policies on the hook) and the generic sensor's maps are pinned under --bpf-dir and keep deciding, failing the call as before; events wait in the pinned ring buffer for the next agent` } : {}),
  };
}

// ---------------------------------------------------------------- dispatch

const NO_KPROBES = "no kprobes (CONFIG_KPROBES off)";

function substituteFor(name: string): string {
  if (/^(fd_install|do_sys_open|do_filp_open|vfs_open|security_file_permission)$/.test(name)) return "security_file_open with a file argument (decided on the opened file: Equal files by the file guard, by inode; prefixes and other matchers at the open-family syscall exit, by its resolved path)";
  if (/^(tcp_v4_connect|tcp_v6_connect|inet_stream_connect)$/.test(name)) return "a tcp_connect or security_socket_connect kprobe, which ward runs on the cgroup connect4/connect6 programs, or the syscall kprobe sys_connect (syscall: true), which runs on its tracepoint";
  if (/^(tcp_close|tcp_set_state|tcp_v4_destroy_sock)$/.test(name)) return "the tracepoint sock/inet_sock_set_state (spec.tracepoints), which reports every TCP state change including the close, with addresses and ports";
  if (/^(tcp_sendmsg|udp_sendmsg|tcp_sendpage)$/.test(name)) return "syscall kprobes on sys_sendto/sys_sendmsg/sys_write (syscall: true), which run on their tracepoints; for UDP sends to an address, sys_sendto with Override runs on cgroup/sendmsg4/6";
  if (/^(commit_creds|__sys_setuid|__sys_setresuid)$/.test(name)) return "syscall kprobes on the set*id syscalls (syscall: true), which run on their tracepoints";
  if (/^(security_)?task_kill$/.test(name)) return "syscall kprobes on sys_kill, sys_tkill and sys_tgkill (syscall: true), which run on their tracepoints: Post reports the signal; Sigkill kills the sender at the syscall's entry but the signal is still delivered (failing the call needs BPF LSM)";
  if (/^(security_)?bpf$/.test(name)) return "a syscall kprobe on sys_bpf (syscall: true), which runs on its tracepoint: Post reports the command; Sigkill kills the caller at the syscall's entry but the command still runs (failing the call needs BPF LSM)";
  if (/^(do_init_module|load_module|free_module)$/.test(name)) return "kprobes on sys_init_module and sys_finit_module (syscall: true), which the module guard watches";
  return "a syscall kprobe (syscall: true), which runs on the syscall's tracepoint, or a tracepoint (spec.tracepoints) for the same event";
}

/** Whether guardModuleHook can hold a module hook as written: one selector at most, no matchArgs. */
function moduleGuardHolds(h: WireHook): boolean {
  return h.selectors.length <= 1 && h.selectors.every((s) => s.matchArgs.length === 0);
}

function resolveOne(h: WireHook, f: HookFeatures, monitor: boolean, lists: readonly ListSpec[], options: FanotifyOptionsOf, uprobe?: UProbeSpec): HookPlan {
  const lsm = lsmName(h);
  // Where BPF LSM loads, the generic sensor's LSM programs hold these hooks exactly: the
  // call fails before it has any effect, every selector kind evaluated in the kernel.
  // kernel_read_file stays with the module guard where it holds the rule (a matchBinaries-only
  // selector, enforced on both module loads, whose pinned programs outlive the agent); the
  // generic program takes the rest (matchArgs on the id or the file, several selectors).
  if (lsm !== undefined && f.bpfLsm && Object.hasOwn(LSM_GENERIC, lsm) && !(lsm === "kernel_read_file" && moduleGuardHolds(h))) return lsmGenericHook(h, lsm, f, monitor);
  const sk = sockKind(h, lsm);
  // tcp_connect reporting only (Post, NoPost): a kprobe, where there are kprobes, sees what
  // the cgroup hooks cannot (the source address and port, every selector kind). An enforcing
  // action stays on the cgroup hooks: they deny the connect before the SYN leaves, while a
  // Sigkill at the kprobe lets tcp_connect send it first (enforcement never weakens silently).
  const kprobeTcp = sk?.what === "tcp_connect" && f.kprobes && !h.selectors.some((sel) => [...sel.matchActions, ...sel.matchReturnActions].some((a) => ENFORCING.has(a.action)));
  if (sk !== undefined && !kprobeTcp) return sockHook(h, sk, f, monitor);
  if (kprobeTcp) return kernelKprobeHook(h, f, monitor, [h.name], false);
  if (lsm !== undefined) {
    // Without BPF LSM, fanotify holds the file rules it can express (exact files, one
    // matchBinaries): the call fails or the caller dies before the open happens, and other
    // files cost nothing. BPF LSM stays first where it loads (it can outlive the agent).
    const fan = (lsm === "file_open" || lsm === "bprm_check_security") && !f.bpfLsm && f.fanotify !== undefined ? fanotifyFit(h, lsm === "file_open" ? "open" : "exec", f.fanotify.processMap === true, f.keepSensors === true) : undefined;
    if (typeof fan === "string") return fanotifyFileHook(h, lsm === "file_open" ? "open" : "exec", f, monitor, options, fan);
    // Where fanotify exists but cannot hold this rule, the substitute says why it holds it instead.
    const notFan = <T extends { limits: string[] }>(make: () => T): T => {
      if (fan === undefined) return make();
      let r: T;
      try {
        r = make();
      } catch (e) {
        if (e instanceof Reject) reject(`${e.message} (not held by fanotify either: ${fan.why})`);
        throw e;
      }
      return { ...r, limits: [`not held by fanotify (which holds file rules here): ${fan.why}`, ...r.limits] };
    };
    if (lsm === "file_open") return notFan(() => (!f.bpfLsm && !guardExpresses(h) ? openExitHook(h, f, monitor) : guardFileHook(h, "open", f, monitor)));
    if (lsm === "bprm_check_security") return notFan(() => guardFileHook(h, "exec", f, monitor));
    if (lsm === "kernel_read_file" || lsm === "kernel_load_data") {
      if (f.bpfLsm) return guardModuleHook(h, f, monitor);
      reject(`hook ${h.name} cannot run on this kernel: no BPF LSM (LSM program loads are refused) and ${NO_KPROBES}; substitute: kprobes on sys_finit_module and sys_init_module (syscall: true) with matchBinaries and Sigkill/Post, watched at the syscall's entry by the module guard`);
    }
    // security_* functions ward's LSM backends do not hold: a kprobe where there are kprobes.
    // When the kprobe cannot hold the rule either (Override without bpf_override_return, say),
    // the refusal says both why not as LSM and why not as a kprobe.
    let noKprobe = NO_KPROBES;
    if (h.list === "kprobes" && f.kprobes && lsm !== "kernel_read_file") {
      try {
        return kernelKprobeHook(h, f, monitor, [h.name], false);
      } catch (e) {
        if (!(e instanceof Reject)) throw e;
        noKprobe = `not as a kprobe either (${e.message})`;
      }
    }
    const kp = noKprobe === NO_KPROBES ? "" : `, ${noKprobe}`;
    if (lsm === "kernel_module_request") {
      reject(`hook ${h.name} cannot run on this kernel: ${f.bpfLsm ? `ward's LSM backend does not hook kernel_module_request${kp}` : `no BPF LSM and ${noKprobe}`}; substitute: kprobes on sys_finit_module and sys_init_module (syscall: true): the module autoload runs modprobe, which calls them`);
    }
    if (lsm.startsWith("path_")) {
      reject(`hook ${h.name} cannot run on this kernel: ${f.bpfLsm ? `ward's LSM backend hooks ${Object.keys(LSM_GENERIC).filter((k) => k.startsWith("path_")).join(", ")} of the security_path_* hooks, not ${lsm}${kp}` : `no BPF LSM and ${noKprobe}`}; substitute: the syscall kprobes of the operation (e.g. sys_unlinkat, sys_renameat2, syscall: true; path strings as the caller wrote them), or security_file_open for opens`);
    }
    reject(`hook ${h.name} cannot run on this kernel: ${f.bpfLsm ? `ward's LSM backend covers file_open, bprm_check_security, kernel_read_file and ${Object.keys(LSM_GENERIC).join(", ")} only${kp}` : `no BPF LSM (LSM program loads are refused) and ${noKprobe}`}; substitute: ${substituteFor(h.name)}`);
  }
  switch (h.list) {
    case "kprobes": {
      if (h.name.startsWith("list:")) return listHook(h, lists, f, monitor);
      const s = h.syscall ? syscallName(h.name) : undefined;
      if (s !== undefined) {
        if (isModuleSyscall(s)) return f.bpfLsm ? guardModuleHook(h, f, monitor) : moduleSyscallHook(h, s, f, monitor);
        // Override on a syscall: only a kprobe on its syscall function can make it fail
        // (bpf_override_return; syscalls are error-injectable), so it goes there where it
        // can; the rest stays on the syscall tracepoint, which also sees 32-bit callers.
        if (hasOverride(h) && !monitor && f.kprobes && f.overrideReturn) return kernelKprobeHook(h, f, monitor, [`__x64_sys_${s}`], true);
        return syscallHook(h, s, f, monitor);
      }
      if (h.syscall) reject(`call ${h.name} is marked syscall: true but is not a syscall symbol (sys_X or __x64_sys_X); 32-bit syscalls are not supported`);
      return kernelKprobeHook(h, f, monitor, [h.name], false);
    }
    case "fentries":
      reject(`hook ${h.name} cannot run on this kernel: fentry program loads are refused (EPERM); substitute: ${substituteFor(h.name)}`);
    case "tracepoints":
      return tracepointHook(h, f, monitor);
    case "uprobes":
      if (uprobe === undefined) reject(`hook ${h.name}: uprobe spec missing`);
      return uprobeHook(h, uprobe, f, monitor);
    case "usdts":
      reject(`hook ${h.name}: ward has no USDT sensor (USDT probes need their ELF notes' argument specs read; ${f.uprobes !== undefined ? "the uprobe PMU exists here: a uprobes entry on the probe's function works" : "and this kernel has no uprobe PMU"})`);
  }
  reject(`hook kind ${h.list} is not supported`);
}

/** Resolves every hook of a policy for a kernel; rejected hooks carry the reason. */
export function resolvePolicy(policy: TracingPolicy, f: HookFeatures, mode?: "enforce" | "monitor"): PolicyResolution {
  const m = mode ?? (policy.spec.options.find((o) => o.name === "policy-mode")?.value === "monitor" ? "monitor" : "enforce");
  const hooks: HookResolution[] = [];
  const errors: string[] = [];
  const options = fanotifyOptions(policy);
  policyHooks(policy).forEach((h, index) => {
    const base: HookBase = { index, path: `spec.${h.list}[${h.specIndex}]`, name: h.name };
    try {
      const plan = resolveOne(h, f, m === "monitor", policy.spec.lists, options, h.list === "uprobes" ? policy.spec.uprobes[h.specIndex] : undefined);
      hooks.push({ ...base, ok: true, ...plan, afterExit: plan.afterExit ?? afterExitOf(plan.backend, f) });
    } catch (e) {
      if (!(e instanceof Reject)) throw e;
      hooks.push({ ...base, ok: false, reason: e.message });
      errors.push(`${base.path} (${h.name}): ${e.message}`);
    }
  });
  // The module guard has one rule for both syscalls: two module hooks must agree on it, and
  // a policy naming only one of them is still enforced on both (said in the mechanism).
  const modules = hooks.filter((h): h is ResolvedHook => h.ok && h.guard?.target === "module");
  if (modules.length > 1) {
    const first = JSON.stringify(modules[0]!.guard!.rules.map((r) => ({ ...r, selector: 0 })));
    for (const h of modules.slice(1)) {
      if (JSON.stringify(h.guard!.rules.map((r) => ({ ...r, selector: 0 }))) !== first) {
        const i = hooks.indexOf(h);
        const reason = "the module guard keeps one rule for init_module and finit_module: give both hooks the same selector";
        hooks[i] = { index: h.index, path: h.path, name: h.name, ok: false, reason };
        errors.push(`${h.path} (${h.name}): ${reason}`);
      }
    }
  }
  return { name: policy.metadata.name, mode: m, hooks, errors };
}

/** Thrown by the policy manager when a policy cannot be applied on this kernel. */
export class HookResolutionError extends Error {
  override name = "HookResolutionError";
  constructor(
    readonly policy: string,
    readonly problems: readonly string[],
  ) {
    super(`policy ${policy} cannot be applied on this kernel:\n${problems.map((p) => `  ${p}`).join("\n")}`);
  }
}
