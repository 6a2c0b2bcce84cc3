// The generic-hook sensor: loads bpf/generic.c, fills its maps from the engine's compiled
// tables (one CompiledPolicy per policy, several policies sharing the maps with disjoint
// set ids), attaches the programs a policy's hooks need and decodes the records of posted
// matches. Selectors and actions run in the kernel; this module only writes tables and
// reads results. Hook resolution (which mechanism a Tetragon hook uses here) is the
// caller's: it hands in a ResolvedHook per compiled hook.
//
// What the kernel side honors here (bpf/generic.c), and what apply() rejects instead:
// - arguments: ints of every width, syscall64, capability masks, string (user or kernel
//   pointer, __data_loc, char arrays), char_buf (sizeArgIndex, returnCopy at the return),
//   char_iovec, fd/file/path (resolved absolute path + i_mode), sockaddr (family, port,
//   address); at kernel-function kprobes also sock/socket/skb/cred records (gen_*_rec,
//   CO-RE). Other kernel objects are not read: matchers on them are rejected. A file slot
//   can also read the file an open-family syscall returned (source "return" with fd, hook
//   openedFd: security_file_open's substitute), evaluated only for real opens.
// - return hooks on the open family run on gen_open_exit at syscalls/sys_exit_<name> when
//   chooseOpenExit() allows it (no 32-bit processes possible: x86 skips those tracepoints
//   for compat syscalls), under their own dispatch point so tp_btf/sys_exit, still attached
//   for other return hooks, never runs them too; else on tp_btf/sys_exit. openExitPlacement()
//   says which and why.
// - every matcher kind of ward_filter.h except SubString (needs a kfunc); Prefix values are
//   at most WARD_PREFIX_MAX (252) bytes, the LPM key limit, rejected at compile. Binary and change selectors need the process map.
// - actions: Post (rateLimit by selector, scope and an argument digest), NoPost, Sigkill,
//   Signal; GetUrl/DnsLookup are userspace's, from the record; Override only at a kprobe
//   hook resolved with override (gen_kprobe_override, bpf_override_return). TrackSock,
//   UntrackSock, NotifyEnforcer and Set are rejected with the reason.
// - kernel-function hooks (attach kind "kprobe") run on generic_kprobe.o, loaded on this
//   object's maps at the first such hook: a perf kprobe (kretprobe) per function with its
//   probe id as the cookie, or kprobe.multi links; a return hook's entry record is kept per
//   thread (gen_ret_entries) and posted at the return.
// - Sigkill at syscall entry: the process dies before it returns to user space, but the
//   call itself runs (a write is written). Return hooks run every action at the return.
// - uprobes (attach kind "uprobe"): gen_uprobe on each file offset of a user binary, the
//   function's arguments from its argument registers (ints, strings and char_buf from the
//   caller's memory); Sigkill there kills the caller before the function's first instruction.
//   Each target's link is its own (its cookie is the target's dispatch id); pinned, it is
//   link_up_<policy number>_<dispatch id>, and GenericPinnedPolicy.uprobes maps it back.
import { attachProgram, Collection, loadCollectionSpec, newCollection, type CollectionSpec } from "../bpf/collection.ts";
import { BpfProgram } from "../bpf/program.ts";
import type { ProgramSpec } from "../bpf/elf.ts";
import { attachKprobe, attachKprobeMulti, Link } from "../bpf/link.ts";
import { probeAttach, probeHelper } from "../bpf/features.ts";
import { Helper, ProgType } from "../bpf/constants.ts";
import { BpfMap } from "../bpf/map.ts";
import { readObject } from "../bpf/objects.ts";
import { RingBufReader } from "../bpf/ringbuf.ts";
import { tracepointId } from "../bpf/perf.ts";
import { attachUprobe } from "../bpf/link.ts";
import type { Btf } from "../bpf/btf.ts";
import { enumValues, structLayout, type StructLayout } from "../events/layout.ts";
import { BinNameRefs, countActiveSlots, countEntries, counterReader, u32Key as u32 } from "./tables.ts";
import type { CompiledPolicy, SectionName } from "../policy/engine.ts";
import { existsSync, readdirSync, readFileSync, readlinkSync } from "node:fs";
import { join } from "node:path";
import { LINK_PIN_PREFIX, MAP_PIN_PREFIX, PROG_PIN_PREFIX, pinMaps, pinName, removePins, unpin } from "../bpf/pin.ts";
import { chooseOpenExit, OPEN_EXIT_TRACEPOINTS, type OpenExitChoice } from "./open-exit.ts";

export class GenericSensorError extends Error {
  override name = "GenericSensorError";
}

/** A policy needs something this program cannot do on this kernel (the message says what and why). */
export class GenericUnsupportedError extends GenericSensorError {
  override name = "GenericUnsupportedError";
}

// ---------------------------------------------------------------- hook resolution input

/** Where the kernel reads one argument slot (enum gen_from in bpf/include/generic.h). */
export type ArgSource =
  /** syscall argument 0..5 from pt_regs (di si dx r10 r8 r9) */
  | { from: "syscall-arg"; index: number; iovec?: boolean }
  /** the syscall number */
  | { from: "syscall-nr" }
  /** the syscall's return value (only for hooks evaluated at the return); fd: a file/fd/path
   * slot reads the file the returned fd names (an open-family syscall's opened file) */
  | { from: "return"; fd?: boolean }
  /** a tracefs tracepoint field: offset/size from the format file; pointers to user memory
   * (syscalls/ tracepoints) need user: true to be read as strings/buffers */
  | { from: "tp-field"; offset: number; size: 1 | 2 | 4 | 8; signed?: boolean; user?: boolean; fd?: boolean; iovec?: boolean }
  /** a tracefs __data_loc string field */
  | { from: "tp-dataloc"; offset: number }
  /** a char array inside a tracefs record (comm[16], ...), read as a string */
  | { from: "tp-array"; offset: number }
  /** a kernel function's argument 0..5 from the kprobe's registers; obj: what a pointer
   * points at (enum gen_obj); fd: a file argument given as an fd number */
  | { from: "func-arg"; index: number; obj?: ArgObject; fd?: boolean }
  /**
   * argument `index` of a BPF LSM hook (ctx[index]); integers keep `size` bytes. dentryOf:
   * the argument is a struct dentry *, its full path taken under the mount of the struct
   * path * at that index; taskTgid: a struct task_struct *, read as its tgid.
   */
  | { from: "lsm-arg"; index: number; size: 1 | 2 | 4 | 8; signed?: boolean; dentryOf?: number; taskTgid?: boolean };

/** Kernel objects a kprobe argument can point at (enum gen_obj in bpf/include/generic.h). */
export type ArgObject = "sock" | "socket" | "skb" | "cred";
const OBJ: Record<ArgObject, number> = { sock: 1, socket: 2, skb: 3, cred: 4 };

/** One place a uprobe hook is attached: a file offset in its binary, with what the policy named. */
export interface UprobeTarget {
  /** file offset of the instruction (what the uprobe PMU takes) */
  offset: bigint;
  /** the symbol as written, "" for offsets/addrs targets */
  symbol: string;
}

export type HookAttach =
  /** tp_btf/sys_enter (or sys_exit when evaluated at return); "all" for raw_syscalls; i386
   * numbers with bit 31 set (hostSyscallNumber("i386/...")) */
  | { kind: "syscall"; nr: number | "all" }
  /** a tracefs event: the generic tracepoint program is attached to category/name */
  | { kind: "tracepoint"; category: string; name: string }
  /** a user function: gen_uprobe on each target of the binary (one link and dispatch id each) */
  | { kind: "uprobe"; path: string; targets: readonly UprobeTarget[] }
  /** kernel functions (generic_kprobe.o): a kprobe on each (one kprobe.multi link where the
   * kernel has them and there are several), a kretprobe too with atReturn. syscall: the
   * functions are syscall wrappers (__x64_sys_X) whose arguments are read from the user
   * pt_regs (syscall-arg sources). override: the selectors may Override (gen_kprobe_override,
   * single kprobes: the kernel allows it only on error-injectable functions). */
  | { kind: "kprobe"; symbols: string[]; syscall: boolean; override: boolean }
  /** a BPF LSM hook ("socket_connect"): its gen_lsm_* program, loaded and attached on first use */
  | { kind: "lsm"; hook: LsmHookName };

/** The BPF LSM hooks generic.o has programs for, and their dispatch ids (enum gen_lsm_hook). */
export const LSM_HOOK_IDS = {
  socket_connect: 1, socket_bind: 2, path_unlink: 3, path_rename: 4, path_truncate: 5, path_chmod: 6, path_mkdir: 7, task_kill: 8, bpf: 9, kernel_read_file: 10, kernel_load_data: 11,
} as const;
export type LsmHookName = keyof typeof LSM_HOOK_IDS;

export function isLsmHookName(name: string): name is LsmHookName {
  return Object.hasOwn(LSM_HOOK_IDS, name);
}

/** How one compiled hook runs here: given by hook resolution (I5-U), one per CompiledHook. */
export interface ResolvedHook {
  /** CompiledHook.index */
  index: number;
  attach: HookAttach;
  /** by argument slot (ward_filter.h: 0..4 args/data, 5 the return value); missing = not read */
  sources: (ArgSource | undefined)[];
  /** evaluate when the call returns (return: true, matchReturnArgs): syscall and kprobe hooks */
  atReturn?: boolean;
  /** security_file_open on an open-family syscall's exit: evaluated only when the call
   * returned the fd of a real open (ret >= 0, not O_PATH); needs atReturn */
  openedFd?: boolean;
}

// ---------------------------------------------------------------- records

/** ward_arg_type names (ward_filter.h), as the record's arg types. */
export const ARG_TYPE_NAMES = [
  "none", "s8", "s16", "s32", "s64", "u8", "u16", "u32", "u64", "string", "buf", "file", "path",
  "sock", "sockaddr", "sockaddr_un", "caps", "syscall64", "opaque", "nop",
] as const;
export type ArgTypeName = (typeof ARG_TYPE_NAMES)[number];

export interface GenericArg {
  /** argument slot (5 = return value) */
  slot: number;
  type: ArgTypeName;
  /** sock/socket/skb/cred arguments: the kernel object's record, decoded */
  object?: SockRecord | SkbRecord | CredRecord;
  /** int: value in `int`; bytes: `bytes` (truncated: cut at 4096); error: could not be read */
  state: "int" | "bytes" | "truncated" | "error";
  /** ints: the raw 64-bit value read (before sign/width normalization); file/path args:
   * the inode's i_mode (file type and permission bits), bytes: the resolved path */
  int: bigint;
  bytes?: Uint8Array;
}

/** struct gen_sock_rec: addresses as text, ports in host order. */
export interface SockRecord { kind: "sock"; family: number; type: number; protocol: number; state: number; mark: number; priority: number; saddr: string; daddr: string; sport: number; dport: number; cookie: bigint }
/** struct gen_skb_rec. */
export interface SkbRecord { kind: "skb"; hash: number; len: number; priority: number; mark: number; family: number; protocol: number; proto: number; saddr: string; daddr: string; sport: number; dport: number; secPathLen: number }
/** struct gen_cred_rec. */
export interface CredRecord {
  kind: "cred"; uid: number; gid: number; suid: number; sgid: number; euid: number; egid: number; fsuid: number; fsgid: number;
  securebits: number; capPermitted: bigint; capEffective: bigint; capInheritable: bigint;
  userns: { level: number; uid: number; gid: number; inum: number };
}

/** Tetragon's KprobeAction numbers, by name, for GenericEvent.actions. */
export const ACTION_NAMES: Readonly<Record<number, string>> = {
  1: "Post", 2: "FollowFD", 3: "Sigkill", 4: "UnfollowFD", 5: "Override", 6: "CopyFD", 7: "GetUrl", 8: "DnsLookup",
  9: "NoPost", 10: "Signal", 11: "TrackSock", 12: "UntrackSock", 13: "NotifyEnforcer", 14: "CleanupEnforcerNotification", 15: "Set",
};

/** One posted match, decoded from struct gen_event. */
export interface GenericEvent {
  policyId: string;
  /** CompiledHook.index of the hook in its policy */
  hookIndex: number;
  hookId: number;
  /** matching selector; null when the hook has no selectors */
  selector: number | null;
  /** thread id, thread group id, and the tgid in its own pid namespace */
  pid: number;
  tgid: number;
  nspid: number;
  /** bpf_ktime_get_boot_ns() at the match (the process records' clock) */
  ktime: bigint;
  /** names of the actions of the matching selector (and return actions at the return) that ran */
  actions: string[];
  /** evaluated at the return; ret holds the return value */
  atReturn: boolean;
  ret: bigint;
  /** an enforcing action was turned into Post by monitor mode */
  monitor: boolean;
  killed: boolean;
  signaled: boolean;
  /** bpf_send_signal's return, 0 = queued */
  signalErr: number;
  /** syscall number (syscall hooks; bit 31 set for a 32-bit task's i386 number, whose
   * arguments are read from the i386 registers), tracefs event id, uprobe id; kprobes: the probe id */
  syscall: number;
  /** uprobe hooks: the attached binary and target that fired */
  uprobe?: { path: string; symbol: string; offset: bigint };
  /** kprobe hooks: the kernel function that fired */
  function?: string;
  /** Override was taken at the kprobe: the call returned argError without running */
  overridden: boolean;
  args: GenericArg[];
}

export interface GenericCounters {
  evaluations: bigint;
  matches: bigint;
  posts: bigint;
  ringbufDrops: bigint;
  kills: bigint;
  signals: bigint;
  exempt: bigint;
  rateLimited: bigint;
  readErrors: bigint;
  monitor: bigint;
  notTaken: bigint;
  overrides: bigint;
  returnRecordsLost: bigint;
}

export interface GenericSensorOptions {
  /** the process sensor's ward_procs map (matchBinaries, changes); without it binaries never match */
  processMap?: BpfMap;
  /** tgids no policy may act on; this process is always added */
  exemptPids?: number[];
  /** object bytes instead of the embedded generic.o (tests) */
  object?: Uint8Array;
  /** where open-family return hooks run; default chooseOpenExit() on first use (tests force one) */
  openExit?: OpenExitChoice;
  /**
   * Persistence (--keep-sensors-on-exit): adopt takes over the maps and links a previous
   * agent pinned in dir (load() then opens them instead of creating maps; the programs are
   * loaded again over those maps for attachments still to come). Pinning itself is pin(dir).
   */
  /** the agent's shared workload scope maps (ScopeMaps.replaceMaps()); policies with a scope need them */
  scopeMaps?: { replaceMaps(): Record<string, BpfMap> };
  adoptFrom?: string;
  /**
   * With adoptFrom: every policy the pins hold (the manifest's states). Their slots, policy
   * numbers and set ids stay reserved until each is adopted or removed, so a policy applied
   * meanwhile (a changed version, applied before the old one goes) never reuses them.
   */
  reserve?: readonly GenericPinnedPolicy[];
  /** what the kernel has for kernel-function hooks; default: probed on first use */
  kprobes?: KprobeSupport;
  /** load each program when the first hook needs it rather than all in load() (the agent:
   * verifying a program costs seconds, minutes under emulation, and most policies need few) */
  lazyPrograms?: boolean;
}

/**
 * One applied policy's entries in the shared maps, as the pin manifest keeps them: exactly
 * what remove() takes out again, so a later agent can adopt or remove the policy without
 * recompiling it.
 */
export interface GenericPinnedPolicy {
  no: number;
  mode: "enforce" | "monitor";
  setIds: { base: number; end: number };
  /** keys: the dispatch entries (point and key) that run the slot */
  slots: { slot: number; point: number; keys: { point: number; key: number }[]; hook: ResolvedHook }[];
  /** map name and key (base64) of every value-set entry written */
  written: { map: string; key: string }[];
  /** interned binaries: path and id */
  binPaths: { path: string; id: number }[];
  tracepoints: string[];
  sys: ("enter" | "exit")[];
  openExits: string[];
  /** uprobe hooks: each target's dispatch id (the link cookie), what it names for the records
   * (offset in decimal: JSON has no bigint) and its link's pin key; the slots' uprobe hooks
   * are kept with targets [] and rebuilt from these */
  uprobes?: { key: number; path: string; symbol: string; offset: string; pin: string }[];
  /** BPF LSM hooks, one per hook slot (their links are shared and refcounted like the tracepoints') */
  lsms?: LsmHookName[];
}

/** The kernel's kprobe facilities, as the sensor uses them. */
export interface KprobeSupport {
  /** the kprobe PMU (perf_event_open kprobes and kretprobes) */
  pmu: boolean;
  /** kprobe.multi links (5.18+, fprobe) */
  multi: boolean;
  /** bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE) */
  override: boolean;
}

/** This kernel's kprobe facilities, probed (cached by the feature probes). */
export function probeKprobeSupport(): KprobeSupport {
  const pmu = probeAttach("kprobe").status === "supported";
  return {
    pmu,
    multi: pmu && probeAttach("kprobe_multi").status === "supported",
    override: pmu && probeHelper(ProgType.KPROBE, Helper.override_return).status === "supported",
  };
}

// ---------------------------------------------------------------- constants mirrored from the headers

const ARG = { S8: 1, U64: 8, STRING: 9, BUF: 10, FILE: 11, PATH: 12, SOCK: 13, SOCKADDR: 14, CAPS: 16, SYSCALL64: 17 } as const;
const MK_ARG = 1;
/** matcher kinds that read the process map: NS_CHANGE, CAP_CHANGE, BINARY, PARENT_BINARY */
const PROCESS_MAP_KINDS = new Set([5, 6, 7, 8]);
const VK_SUBSTR = 9;
const ACT = { POST: 1, SIGKILL: 3, OVERRIDE: 5, NOPOST: 9, SIGNAL: 10, GETURL: 7, DNSLOOKUP: 8 } as const;
const SLOT_ACTIVE = 1, SLOT_MONITOR = 2, SLOT_RETURN = 4, SLOT_OPENED_FD = 8;
const POINT = { SYS_ENTER: 1, SYS_EXIT: 2, TP: 3, OPEN_EXIT: 4, UPROBE: 5, LSM: 6, KPROBE: 7, KRETPROBE: 8 } as const;
/** GEN_PROBE_SYSCALL / GEN_PROBE_ID_MASK (generic.h) */
const PROBE_SYSCALL = 0x40000000, PROBE_ID_MASK = 0x3fffffff;
const EF_OVERRIDE = 0x20;

/** x86_64 numbers of the open family, to their exit tracepoint (gen_open_exit's targets). */
const OPEN_EXIT_BY_NR: ReadonlyMap<number, (typeof OPEN_EXIT_TRACEPOINTS)[number]> = new Map([
  [2, "sys_exit_open"], [85, "sys_exit_creat"], [257, "sys_exit_openat"], [304, "sys_exit_open_by_handle_at"], [437, "sys_exit_openat2"],
]);
const ALL_SYSCALLS = 0xffffffff;
const UPROBE_PROGRAM = "gen_uprobe";
const FROM = { "syscall-arg": 1, "syscall-nr": 2, return: 3, "tp-field": 4, "tp-dataloc": 5, "tp-array": 6, "lsm-arg": 7, "func-arg": 8 } as const;
const SRC_SIGNED = 0x1, SRC_DENTRY = 0x10, SRC_TASK_TGID = 0x20;
const NS_NAMES = ["uts", "ipc", "mnt", "pid", "pid_for_children", "net", "time", "time_for_children", "cgroup", "user"];

/** An address as text: AF_INET's first 4 bytes dotted, AF_INET6 as RFC 5952 text; "" for other families. */
export function ipText(b: Uint8Array, family: number): string {
  if (family === 2) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (family !== 10) return "";
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  // the longest run of two or more zero groups becomes "::"
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (g: number[]): string => g.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(groups);
  return `${hex(groups.slice(0, best))}::${hex(groups.slice(best + bestLen))}`;
}

function readable(type: number): boolean {
  return (type >= ARG.S8 && type <= ARG.U64) || type === ARG.STRING || type === ARG.BUF || type === ARG.FILE || type === ARG.PATH ||
    type === ARG.SOCKADDR || type === ARG.CAPS || type === ARG.SYSCALL64;
}

interface PolicyState {
  id: string;
  setIds: { base: number; end: number };
  /** keys: the dispatch entries pointing at the slot (one; a uprobe hook has one per target,
   * a kprobe hook one per function and point) */
  slots: { slot: number; hook: ResolvedHook; point: number; keys: { point: number; key: number }[] }[];
  written: { name: string; key: Uint8Array }[];
  binPaths: { path: string; id: number }[];
  mode: "enforce" | "monitor";
  tracepoints: string[];
  /** sys_enter/sys_exit uses, one per hook slot (the programs are refcounted) */
  sys: ("enter" | "exit")[];
  /** gen_open_exit targets ("syscalls/sys_exit_openat"), one per hook slot (refcounted) */
  openExits: string[];
  /** gen_uprobe links, one per uprobe target (not shared: each has its own cookie), with the
   * key of their pin (uprobePinKey: policy number and dispatch id) */
  uprobeLinks: { link: Link; pin: string }[];
  /** BPF LSM hooks ("socket_connect"), one per hook slot (refcounted) */
  lsms: LsmHookName[];
  /** the number the kernel records carry (gen_slot.policy) */
  no: number;
  /** kprobe links of this policy's hooks (not shared) and the probe ids they own */
  kprobeLinks: Link[];
  probeIds: number[];
  /** workload scope id every slot carries (gen_slot.scope), 0: every process */
  scope: number;
}

/** The generic hooks: see the module comment. */
export class GenericSensor {
  private coll: Collection | undefined;
  private readonly spec: CollectionSpec;
  private readonly btf: Btf;
  private readonly L: Record<"hook" | "selector" | "matcher" | "action" | "argCfg" | "slot" | "src" | "dval" | "event", StructLayout>;
  private readonly counterIdx: Map<string, number>;
  private readonly policies = new Map<string, PolicyState>();
  private readonly freeSlots: number[] = [];
  private readonly sysLinks: { enter?: Link; exit?: Link } = {};
  /** hook slots using sys_enter / sys_exit: the program is detached when none does */
  private readonly sysRefs = { enter: 0, exit: 0 };
  private readonly tpLinks = new Map<string, { link: Link; refs: number }>();
  private readonly openExitLinks = new Map<string, { link: Link; refs: number }>();
  /** gen_lsm_* programs: loaded on first use against the loaded maps, with their links */
  private readonly lsmLinks = new Map<LsmHookName, { coll: Collection | undefined; link: Link; refs: number }>();
  private openExitChoice: OpenExitChoice | undefined;
  private readonly binNames = new BinNameRefs();
  private readonly bySlot = new Map<number, { policy: PolicyState; hookIndex: number }>();
  private reader: RingBufReader | undefined;
  private nextPolicy = 1;
  /** uprobe dispatch ids (link cookies) -> what they name, for records */
  private readonly uprobeIds = new Map<number, { path: string; symbol: string; offset: bigint }>();
  private nextUprobeId = 1;
  /** uprobe links taken over from the pins (pin key -> link), until a policy adopts them */
  private readonly adoptedUprobes = new Map<string, Link>();
  /** generic.o programs loaded so far, and the collections that own them (maps are this.coll's) */
  private readonly loadedPrograms = new Map<string, BpfProgram>();
  private readonly programColls: Collection[] = [];
  /** generic_kprobe.o on generic.o's maps, loaded at the first kernel-function hook */
  private kcoll: Collection | undefined;
  private kspec: CollectionSpec | undefined;
  private kprobeSupport: KprobeSupport | undefined;
  private nextProbeId = 1;
  /** probe id -> kernel function, for the records' function name */
  private readonly probeNames = new Map<number, string>();
  private readonly listeners = new Set<(e: GenericEvent) => void>();
  private loop: Promise<void> | undefined;
  private stopping = false;
  /** where the maps and links are pinned (pin(), or adopted from), until unpin() */
  private pinDir: string | undefined;
  /** maps opened from pins (adopt): the collection does not own them */
  private readonly pinnedMaps: BpfMap[] = [];
  /** set ids below this may be a pinned policy's not adopted yet (GenericSensorOptions.reserve) */
  private reservedSetEnd = 1;
  /**
   * Policy numbers of reserved policies not adopted yet: each holds its references on the
   * adopted links (so a policy applied and removed meanwhile never detaches a link a pinned
   * one still runs on); adoptPolicy takes them over.
   */
  private readonly reserved = new Set<number>();

  constructor(private readonly opts: GenericSensorOptions = {}) {
    this.spec = loadCollectionSpec(opts.object ?? readObject("generic"), "generic");
    if (this.spec.btf === undefined) throw new GenericSensorError("load generic sensor: generic.o has no BTF (build it with -g)");
    this.btf = this.spec.btf;
    const s = (n: string): StructLayout => structLayout(this.btf, n);
    this.L = {
      hook: s("ward_hook_config"), selector: s("ward_selector"), matcher: s("ward_matcher"), action: s("ward_action"),
      argCfg: s("ward_arg_cfg"), slot: s("gen_slot"), src: s("gen_src"), dval: s("gen_dispatch_val"), event: s("gen_event"),
    };
    this.counterIdx = enumValues(this.btf, "gen_counter");
    const max = this.spec.maps.gen_hooks?.maxEntries ?? 0;
    for (let i = max - 1; i >= 0; i--) this.freeSlots.push(i);
  }

  private map(name: string): BpfMap {
    const m = this.coll?.maps[name];
    if (m === undefined) throw new GenericSensorError(`generic sensor: map ${name} missing (not loaded?)`);
    return m;
  }

  /**
   * A program of generic.o, loaded on this sensor's maps the first time a hook needs it:
   * each one costs the verifier seconds (under emulation, minutes), and most policies need
   * one or two of them.
   */
  private program(name: string): { prog: BpfProgram; spec: ProgramSpec } {
    const spec = this.spec.programs[name];
    if (spec === undefined || this.coll === undefined) throw new GenericSensorError(`generic.o has no program ${name}${this.coll === undefined ? " (sensor not loaded)" : ""}`);
    let prog = this.loadedPrograms.get(name);
    if (prog === undefined) {
      const c = newCollection(this.spec, { replaceMaps: { ...this.coll.maps }, programs: [name] });
      this.programColls.push(c);
      prog = c.programs[name];
      if (prog === undefined) throw new GenericSensorError(`load generic.o program ${name}: not in the collection`);
      this.loadedPrograms.set(name, prog);
      // A pinned sensor pins what it loads later too: a restarted agent adopts it without verifying it again.
      if (this.pinDir !== undefined) prog.pin(join(this.pinDir, pinName(PROG_PIN_PREFIX, name)));
    }
    return { prog, spec };
  }

  /** Creates the maps (programs load when a hook needs them; nothing is attached until then). */
  load(): void {
    if (this.coll !== undefined) throw new GenericSensorError("load generic sensor: already loaded");
    if (this.opts.adoptFrom !== undefined) {
      this.adopt(this.opts.adoptFrom);
      return;
    }
    const replaceMaps: Record<string, BpfMap> = {};
    if (this.opts.processMap !== undefined) replaceMaps.ward_procs = this.opts.processMap;
    else {
      // No process sensor: policies needing it are rejected (check()), so a stub will do
      // instead of 13 MiB of LRU entries nobody fills.
      const procs = this.spec.maps.ward_procs;
      if (procs !== undefined) procs.maxEntries = 1;
    }
    Object.assign(replaceMaps, this.opts.scopeMaps?.replaceMaps() ?? {});
    // Eager by default (every tracepoint program verified here, as callers expect of load());
    // lazyPrograms leaves each to the first hook that needs it. gen_uprobe always waits for
    // its first hook, and so do the BPF LSM programs (where LSM loads are refused, the rest
    // of the sensor must still load).
    const programs = this.opts.lazyPrograms === true ? [] : Object.values(this.spec.programs).filter((p) => p.autoload && p.name !== UPROBE_PROGRAM && !p.section.startsWith("lsm/")).map((p) => p.name);
    this.coll = newCollection(this.spec, { replaceMaps, programs });
    for (const [name, prog] of Object.entries(this.coll.programs)) this.loadedPrograms.set(name, prog);
    try {
      this.exempt(process.pid);
      for (const p of this.opts.exemptPids ?? []) this.exempt(p);
      this.writeHostNamespaces();
      this.reader = new RingBufReader(this.map("gen_events"));
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /**
   * load() from pins: every map the object declares is opened from dir/map_<name> (the
   * process map must be the process sensor's, the one given in opts), the programs are
   * loaded again over them (for attachments still to come), and the pinned links are taken
   * over without attaching anything. Policies come back through adoptPolicy(); links none
   * of them uses go with dropUnusedLinks(). The exempt set is reset to this process.
   */
  private adopt(dir: string): void {
    const replaceMaps: Record<string, BpfMap> = {};
    try {
      for (const name of Object.keys(this.spec.maps)) {
        const path = join(dir, pinName(MAP_PIN_PREFIX, name));
        if (!existsSync(path)) throw new GenericSensorError(`adopt generic sensor: ${path} is missing`);
        const m = BpfMap.fromPin(path);
        this.pinnedMaps.push(m);
        replaceMaps[name] = m;
      }
      const procs = replaceMaps.ward_procs;
      if (this.opts.processMap !== undefined && procs !== undefined && procs.info().id !== this.opts.processMap.info().id) {
        throw new GenericSensorError(`adopt generic sensor: its pinned process map (id ${procs.info().id}) is not the process sensor's (id ${this.opts.processMap.info().id}): matchBinaries would read a map nothing updates`);
      }
      // The programs were pinned with the maps: taken over too, so adopting costs no
      // verification (loading generic.o's programs takes seconds on a busy machine).
      const programs: Record<string, BpfProgram> = {};
      for (const name of Object.keys(this.spec.programs)) {
        const path = join(dir, pinName(PROG_PIN_PREFIX, name));
        if (existsSync(path)) programs[name] = BpfProgram.fromPin(path);
      }
      this.coll = new Collection(replaceMaps, programs, {}, Object.values(programs));
      for (const [name, prog] of Object.entries(programs)) this.loadedPrograms.set(name, prog);
      for (const f of readdirSync(dir).sort()) {
        if (!f.startsWith(LINK_PIN_PREFIX)) continue;
        const key = f.slice(LINK_PIN_PREFIX.length);
        const link = Link.fromPin(join(dir, f));
        if (key === "sys_enter" || key === "sys_exit") this.sysLinks[key === "sys_enter" ? "enter" : "exit"] = link;
        else if (key.startsWith("tp_")) this.tpLinks.set(key.slice(3).replace("@", "/"), { link, refs: 0 });
        else if (key.startsWith("oe_")) this.openExitLinks.set(key.slice(3).replace("@", "/"), { link, refs: 0 });
        else if (key.startsWith("lsm_") && isLsmHookName(key.slice(4))) {
          // its program came back from the pins with the others (this.coll owns it)
          this.lsmLinks.set(key.slice(4) as LsmHookName, { coll: undefined, link, refs: 0 });
        } else if (parseUprobePinKey(key) !== undefined) {
          this.adoptedUprobes.set(key, link);
          // dispatch ids stay unique across agents: a new hook never reuses a pinned one's cookie
          this.nextUprobeId = Math.max(this.nextUprobeId, parseUprobePinKey(key)!.id + 1);
        }
        else {
          link.close();
          throw new GenericSensorError(`adopt generic sensor: ${join(dir, f)} is not a link this sensor makes`);
        }
      }
      this.pinDir = dir;
      for (const r of this.opts.reserve ?? []) {
        for (const x of r.slots) {
          const i = this.freeSlots.indexOf(x.slot);
          if (i >= 0) this.freeSlots.splice(i, 1);
        }
        this.nextPolicy = Math.max(this.nextPolicy, r.no + 1);
        this.reservedSetEnd = Math.max(this.reservedSetEnd, r.setIds.end);
        this.reserved.add(r.no);
        this.addLinkRefs(r);
        for (const u of r.uprobes ?? []) this.nextUprobeId = Math.max(this.nextUprobeId, u.key + 1);
      }
      const exempt = this.map("gen_exempt");
      for (const k of [...exempt.keys()]) exempt.delete(k);
      this.exempt(process.pid);
      for (const p of this.opts.exemptPids ?? []) this.exempt(p);
      this.writeHostNamespaces();
      this.reader = new RingBufReader(this.map("gen_events"));
    } catch (e) {
      this.close({ keepPinned: true });
      throw e;
    }
  }

  /** Pins every map and link under dir (on bpffs; created), and the links made from now on. */
  pin(dir: string): void {
    if (this.coll === undefined) throw new GenericSensorError("pin generic sensor: not loaded");
    if (this.pinDir === dir) return;
    const withKprobes = [...this.policies.values()].filter((p) => p.kprobeLinks.length > 0).map((p) => p.id);
    if (withKprobes.length > 0) throw new GenericUnsupportedError(`pin generic sensor: polic${withKprobes.length === 1 ? "y" : "ies"} ${withKprobes.join(", ")} run on kernel-function kprobes, whose links are not pinned (they would end with the agent while the rest kept enforcing)`);
    pinMaps(dir, this.coll.maps);
    // Only what is loaded is pinned; program() pins what loads later (lazyPrograms).
    for (const [name, p] of this.loadedPrograms) p.pin(join(dir, pinName(PROG_PIN_PREFIX, name)));
    this.pinDir = dir;
    if (this.sysLinks.enter !== undefined) this.pinned(this.sysLinks.enter, "sys_enter");
    if (this.sysLinks.exit !== undefined) this.pinned(this.sysLinks.exit, "sys_exit");
    for (const [t, l] of this.tpLinks) this.pinned(l.link, tpPinKey(t));
    for (const [t, l] of this.openExitLinks) this.pinned(l.link, openExitPinKey(t));
    for (const p of this.policies.values()) for (const u of p.uprobeLinks) this.pinned(u.link, u.pin);
    for (const [hook, l] of this.lsmLinks) {
      const prog = l.coll?.programs[`gen_lsm_${hook}`];
      if (prog !== undefined) prog.pin(join(dir, pinName(PROG_PIN_PREFIX, `gen_lsm_${hook}`)));
      this.pinned(l.link, lsmPinKey(hook));
    }
  }

  /** Removes every pin (what is attached stays attached while this sensor holds it). */
  unpin(): void {
    if (this.pinDir !== undefined) removePins(this.pinDir);
    this.pinDir = undefined;
  }

  /** Where the maps and links are pinned, if they are. */
  get pinnedAt(): string | undefined {
    return this.pinDir;
  }

  private pinned(link: Link, key: string): Link {
    if (this.pinDir !== undefined) link.pin(join(this.pinDir, pinName(LINK_PIN_PREFIX, key)));
    return link;
  }

  /** An LSM hook no slot uses: detached, its collection closed, link and program unpinned (a
   * later attach loads and pins the program again). */
  private dropLsm(hook: LsmHookName, l: { coll: Collection | undefined; link: Link }): void {
    this.dropLink(l.link, lsmPinKey(hook));
    l.coll?.close();
    if (this.pinDir !== undefined) unpin(join(this.pinDir, pinName(PROG_PIN_PREFIX, `gen_lsm_${hook}`)));
    this.lsmLinks.delete(hook);
  }

  private dropLink(link: Link, key: string): void {
    link.close();
    if (this.pinDir !== undefined) unpin(join(this.pinDir, pinName(LINK_PIN_PREFIX, key)));
  }

  /** Adopted links no adopted policy uses (a policy that was not adopted): detached and unpinned. */
  dropUnusedLinks(): void {
    for (const which of ["enter", "exit"] as const) {
      const l = this.sysLinks[which];
      if (l !== undefined && this.sysRefs[which] === 0) {
        this.dropLink(l, `sys_${which}`);
        this.sysLinks[which] = undefined;
      }
    }
    for (const [t, l] of this.tpLinks) if (l.refs === 0) { this.dropLink(l.link, tpPinKey(t)); this.tpLinks.delete(t); }
    for (const [t, l] of this.openExitLinks) if (l.refs === 0) { this.dropLink(l.link, openExitPinKey(t)); this.openExitLinks.delete(t); }
    for (const [hook, l] of this.lsmLinks) if (l.refs === 0) this.dropLsm(hook, l);
    // A reserved policy (adopted or dropped later) keeps its uprobe links until then.
    for (const [pin, link] of this.adoptedUprobes) {
      if (this.reserved.has(parseUprobePinKey(pin)?.no ?? -1)) continue;
      this.dropLink(link, pin);
      this.adoptedUprobes.delete(pin);
    }
  }

  /** One pinned policy's references on the links it runs on (those that are attached). */
  private addLinkRefs(p: Pick<GenericPinnedPolicy, "sys" | "tracepoints" | "openExits" | "lsms">): void {
    for (const t of p.lsms ?? []) { const l = this.lsmLinks.get(t); if (l !== undefined) l.refs++; }
    for (const which of p.sys) if (this.sysLinks[which] !== undefined) this.sysRefs[which]++;
    for (const t of p.tracepoints) { const l = this.tpLinks.get(t); if (l !== undefined) l.refs++; }
    for (const t of p.openExits) { const l = this.openExitLinks.get(t); if (l !== undefined) l.refs++; }
  }

  /** What the pin manifest keeps of an applied policy (GenericPinnedPolicy). */
  exportPolicy(policyId: string): GenericPinnedPolicy {
    const st = this.policies.get(policyId);
    if (st === undefined) throw new GenericSensorError(`export policy ${policyId}: not applied`);
    if (st.kprobeLinks.length > 0) throw new GenericUnsupportedError(`export policy ${policyId}: it runs on kernel-function kprobes, whose links are not pinned`);
    return {
      no: st.no,
      mode: st.mode,
      setIds: { ...st.setIds },
      slots: st.slots.map((x) => ({ slot: x.slot, point: x.point, keys: x.keys.map((k) => ({ ...k })), hook: x.hook.attach.kind === "uprobe" ? { ...x.hook, attach: { ...x.hook.attach, targets: [] } } : x.hook })),
      written: st.written.map((w) => ({ map: w.name, key: Buffer.from(w.key).toString("base64") })),
      binPaths: st.binPaths.map((b) => ({ ...b })),
      tracepoints: [...st.tracepoints],
      sys: [...st.sys],
      openExits: [...st.openExits],
      ...(st.uprobeLinks.length > 0 ? { uprobes: this.exportUprobes(st) } : {}),
      ...(st.lsms.length > 0 ? { lsms: [...st.lsms] } : {}),
    };
  }

  /** A policy's uprobe targets by dispatch id, with their links' pin keys (GenericPinnedPolicy.uprobes). */
  private exportUprobes(st: PolicyState): NonNullable<GenericPinnedPolicy["uprobes"]> {
    return st.slots.filter((s) => s.point === POINT.UPROBE).flatMap((s) => s.keys.map((k) => {
      const u = this.uprobeIds.get(k.key);
      if (u === undefined) throw new GenericSensorError(`export policy ${st.id}: uprobe dispatch id ${k.key} names no target`);
      return { key: k.key, path: u.path, symbol: u.symbol, offset: u.offset.toString(), pin: uprobePinKey(st.no, k.key) };
    }));
  }

  /**
   * Takes over a policy a previous agent applied (its pinned state from exportPolicy): its
   * entries are in the maps already and its hooks are running; nothing is written. Throws
   * when the maps disagree with the saved state (a slot not active, a link missing), having
   * taken nothing over.
   */
  adoptPolicy(policyId: string, saved: GenericPinnedPolicy): void {
    if (this.coll === undefined) throw new GenericSensorError("adopt policy: generic sensor not loaded");
    if (this.policies.has(policyId)) throw new GenericSensorError(`adopt policy ${policyId}: already applied`);
    const slotFlags = this.L.slot.offset("flags"), slotPolicy = this.L.slot.offset("policy");
    for (const x of saved.slots) {
      const v = this.map("gen_slots").lookup(u32(x.slot));
      const dv = v === undefined ? undefined : new DataView(v.buffer, v.byteOffset, v.byteLength);
      if (dv === undefined || (dv.getUint32(slotFlags, true) & SLOT_ACTIVE) === 0 || dv.getUint32(slotPolicy, true) !== saved.no) {
        throw new GenericSensorError(`adopt policy ${policyId}: hook slot ${x.slot} is not active for policy number ${saved.no} in the pinned maps`);
      }
      if (this.bySlot.has(x.slot)) throw new GenericSensorError(`adopt policy ${policyId}: hook slot ${x.slot} is already another policy's`);
    }
    for (const which of saved.sys) if (this.sysLinks[which] === undefined) throw new GenericSensorError(`adopt policy ${policyId}: tp_btf/sys_${which} is not attached`);
    for (const t of saved.tracepoints) if (!this.tpLinks.has(t)) throw new GenericSensorError(`adopt policy ${policyId}: tracepoint ${t} is not attached`);
    for (const t of saved.openExits) if (!this.openExitLinks.has(t)) throw new GenericSensorError(`adopt policy ${policyId}: tracepoint ${t} (gen_open_exit) is not attached`);
    for (const t of saved.lsms ?? []) if (!this.lsmLinks.has(t)) throw new GenericSensorError(`adopt policy ${policyId}: lsm/${t} (gen_lsm_${t}) is not attached`);
    const uprobes = saved.uprobes ?? [];
    for (const u of uprobes) if (!this.adoptedUprobes.has(u.pin)) throw new GenericSensorError(`adopt policy ${policyId}: uprobe ${u.path}:${u.symbol !== "" ? u.symbol : `0x${BigInt(u.offset).toString(16)}`} (pin ${pinName(LINK_PIN_PREFIX, u.pin)}) is not attached`);
    const byKey = new Map(uprobes.map((u) => [u.key, u]));
    for (const x of saved.slots) {
      if (x.point !== POINT.UPROBE) continue;
      for (const k of x.keys) if (!byKey.has(k.key)) throw new GenericSensorError(`adopt policy ${policyId}: hook slot ${x.slot} runs uprobe dispatch id ${k.key}, which the saved state does not name`);
    }
    // the uprobe hooks were saved without their targets (bigint offsets): rebuilt in dispatch order
    const hookOf = (x: GenericPinnedPolicy["slots"][number]): ResolvedHook => x.point === POINT.UPROBE && x.hook.attach.kind === "uprobe"
      ? { ...x.hook, attach: { ...x.hook.attach, targets: x.keys.map((k) => { const u = byKey.get(k.key)!; return { symbol: u.symbol, offset: BigInt(u.offset) }; }) } }
      : x.hook;
    const st: PolicyState = {
      id: policyId, setIds: { ...saved.setIds }, slots: saved.slots.map((x) => ({ slot: x.slot, hook: hookOf(x), point: x.point, keys: x.keys.map((k) => ({ ...k })) })),
      written: saved.written.map((w) => ({ name: w.map, key: new Uint8Array(Buffer.from(w.key, "base64")) })),
      binPaths: saved.binPaths.map((b) => ({ ...b })), mode: saved.mode, tracepoints: [...saved.tracepoints], sys: [...saved.sys],
      openExits: [...saved.openExits], uprobeLinks: [], lsms: [...(saved.lsms ?? [])], kprobeLinks: [], probeIds: [], no: saved.no, scope: 0,
    };
    for (const x of st.slots) {
      this.bySlot.set(x.slot, { policy: st, hookIndex: x.hook.index });
      const i = this.freeSlots.indexOf(x.slot);
      if (i >= 0) this.freeSlots.splice(i, 1);
    }
    // A reserved policy's references were taken at load; otherwise they are taken now.
    if (!this.reserved.delete(saved.no)) this.addLinkRefs(saved);
    for (const b of st.binPaths) this.binNames.adopt(b.path, b.id);
    for (const u of uprobes) {
      st.uprobeLinks.push({ link: this.adoptedUprobes.get(u.pin)!, pin: u.pin });
      this.adoptedUprobes.delete(u.pin);
      this.uprobeIds.set(u.key, { path: u.path, symbol: u.symbol, offset: BigInt(u.offset) });
      this.nextUprobeId = Math.max(this.nextUprobeId, u.key + 1);
    }
    this.nextPolicy = Math.max(this.nextPolicy, st.no + 1);
    this.policies.set(policyId, st);
  }

  /** No policy acts on this tgid (the agent, its test runner). */
  exempt(tgid: number): void {
    this.map("gen_exempt").update(u32(tgid), u32(1));
  }

  unexempt(tgid: number): void {
    this.map("gen_exempt").delete(u32(tgid));
  }

  private writeHostNamespaces(): void {
    const v = new Uint8Array(40);
    const dv = new DataView(v.buffer);
    // init_task's namespaces: pid 1's, or kthreadd's (pid 2: kernel threads live in
    // init_task's namespaces) where pid 1's links cannot be read (not ptrace-readable)
    let kthreadd = false;
    try {
      kthreadd = readFileSync("/proc/2/comm", "latin1").trim() === "kthreadd";
    } catch {
      // no pid 2 here
    }
    NS_NAMES.forEach((n, i) => {
      for (const pid of kthreadd ? [1, 2] : [1]) {
        try {
          const m = /\[(\d+)\]/.exec(readlinkSync(`/proc/${pid}/ns/${n}`));
          if (m?.[1] !== undefined) dv.setUint32(i * 4, Number(m[1]), true);
          break;
        } catch {
          // unreadable, or a namespace type this kernel lacks: host_ns never matches it
        }
      }
    });
    this.map("gen_globals").update(u32(0), v);
  }

  /** One past the highest set id in use: the setIdBase for the next compilePolicy. */
  nextSetIdBase(): number {
    let end = this.reservedSetEnd;
    for (const p of this.policies.values()) end = Math.max(end, p.setIds.end);
    return end;
  }

  /** What is attached now ("tp_btf/sys_enter", "tracepoint/syscalls/sys_enter_openat"), for status. */
  attachments(): string[] {
    const out: string[] = [];
    if (this.sysLinks.enter !== undefined) out.push("tp_btf/sys_enter");
    if (this.sysLinks.exit !== undefined) out.push("tp_btf/sys_exit");
    for (const t of this.tpLinks.keys()) out.push(`tracepoint/${t}`);
    for (const t of this.openExitLinks.keys()) out.push(`tracepoint/${t} (gen_open_exit)`);
    for (const u of this.uprobeIds.values()) out.push(`uprobe/${u.path}:${u.symbol !== "" ? u.symbol : `0x${u.offset.toString(16)}`}`);
    for (const p of this.policies.values()) for (const l of p.kprobeLinks) out.push(l.description);
    for (const t of this.lsmLinks.keys()) out.push(`lsm/${t}`);
    return out;
  }

  /**
   * Where return hooks on the open-family syscalls run: their per-syscall exit tracepoints,
   * or tp_btf/sys_exit (the exit of every syscall) with the reason. Decided once, on first use.
   */
  openExitPlacement(): OpenExitChoice {
    this.openExitChoice ??= this.opts.openExit ?? chooseOpenExit();
    return this.openExitChoice;
  }

  /** The exit tracepoint a return hook runs on instead of tp_btf/sys_exit, if any. */
  private openExitTracepoint(h: ResolvedHook): string | undefined {
    if (!h.atReturn || h.attach.kind !== "syscall" || h.attach.nr === "all") return undefined;
    const name = OPEN_EXIT_BY_NR.get(h.attach.nr);
    if (name === undefined) return undefined;
    const choice = this.openExitPlacement();
    return choice.kind === "tracepoint" && choice.tracepoints.includes(name) ? name : undefined;
  }

  /** Hooks one syscall or tracepoint can carry (GEN_DISPATCH_MAX). */
  get dispatchLimit(): number {
    return (this.L.dval.field("slots").size / 4) | 0;
  }

  /** Ids of the applied policies. */
  policyIds(): string[] {
    return [...this.policies.keys()];
  }

  /**
   * Writes a compiled policy's tables and switches its hooks on, all or nothing: entries go
   * in under the policy's own set ids and slots, the dispatch entries and the active flags
   * last; on any failure everything written is removed again.
   */
  apply(policyId: string, compiled: CompiledPolicy, hooks: readonly ResolvedHook[], opts: { scope?: number } = {}): void {
    if (this.coll === undefined) throw new GenericSensorError("apply policy: generic sensor not loaded");
    const scope = opts.scope ?? 0;
    if (scope !== 0 && this.opts.scopeMaps === undefined) throw new GenericSensorError(`apply policy ${policyId}: it has a workload scope but the sensor was loaded without the agent's scope maps (GenericSensorOptions.scopeMaps)`);
    if (scope !== 0 && this.opts.scopeMaps !== undefined && this.pinnedMaps.length > 0) {
      const mine = this.opts.scopeMaps.replaceMaps();
      const differ = Object.entries(mine).some(([n, m]) => this.coll?.maps[n] !== undefined && this.coll.maps[n]!.info().id !== m.info().id);
      if (differ) throw new GenericUnsupportedError(`apply policy ${policyId}: the generic sensor was adopted from pins whose programs read an earlier agent's workload scope maps, which this agent does not fill; a scoped policy would enforce nothing. Remove the pinned generic policies (or restart the agent once they are gone) to apply it`);
    }
    if (this.policies.has(policyId)) throw new GenericSensorError(`apply policy ${policyId}: already applied`);
    for (const p of this.policies.values()) {
      const a = compiled.setIds, b = p.setIds;
      if (a.base < b.end && b.base < a.end && a.end > a.base && b.end > b.base) {
        throw new GenericSensorError(`apply policy ${policyId}: set ids [${a.base}, ${a.end}) overlap policy ${p.id}'s; compile with setIdBase ${this.nextSetIdBase()}`);
      }
    }
    this.check(compiled, hooks);
    const policyNo = this.nextPolicy++;
    const st: PolicyState = { id: policyId, setIds: { ...compiled.setIds }, slots: [], written: [], binPaths: [], mode: compiled.monitor ? "monitor" : "enforce", tracepoints: [], sys: [], openExits: [], uprobeLinks: [], no: policyNo, scope, kprobeLinks: [], probeIds: [], lsms: [] };
    try {
      this.writeSets(st, compiled);
      for (const h of hooks) {
        const slot = this.freeSlots.pop();
        if (slot === undefined) throw new GenericSensorError(`apply policy ${policyId}: no free hook slot (${this.spec.maps.gen_hooks?.maxEntries} in all)`);
        if (h.attach.kind === "kprobe") {
          const ids = h.attach.symbols.map((sym) => this.newProbeId(sym, h.attach.kind === "kprobe" && h.attach.syscall));
          st.probeIds.push(...ids);
          const keys = ids.flatMap((id) => [{ point: POINT.KPROBE, key: id }, ...(h.atReturn ? [{ point: POINT.KRETPROBE, key: id }] : [])]);
          st.slots.push({ slot, hook: h, point: POINT.KPROBE, keys });
        } else if (h.attach.kind === "lsm") {
          const key = LSM_HOOK_IDS[h.attach.hook];
          st.slots.push({ slot, hook: h, point: POINT.LSM, keys: [{ point: POINT.LSM, key }] });
        } else if (h.attach.kind === "uprobe") {
          const a = h.attach;
          const keys = a.targets.map((t) => {
            const id = this.nextUprobeId++;
            this.uprobeIds.set(id, { path: a.path, symbol: t.symbol, offset: t.offset });
            return { point: POINT.UPROBE, key: id };
          });
          st.slots.push({ slot, hook: h, point: POINT.UPROBE, keys });
        } else {
          const point = h.attach.kind === "tracepoint" ? POINT.TP : this.openExitTracepoint(h) !== undefined ? POINT.OPEN_EXIT : h.atReturn ? POINT.SYS_EXIT : POINT.SYS_ENTER;
          let key: number;
          if (h.attach.kind === "tracepoint") key = tracepointId(h.attach.category, h.attach.name);
          else key = h.attach.nr === "all" ? ALL_SYSCALLS : h.attach.nr;
          st.slots.push({ slot, hook: h, point, keys: [{ point, key }] });
        }
        this.bySlot.set(slot, { policy: st, hookIndex: h.index });
        this.map("gen_hooks").update(u32(slot), this.hookConfig(compiled, h.index));
        this.map("gen_slots").update(u32(slot), this.slotValue(h, policyNo, 0, scope));
      }
      // Dispatch entries before the links: a uprobe or kprobe fires from the moment it is attached.
      for (const s of st.slots) for (const k of s.keys) this.dispatchAdd(k.point, k.key, s.slot);
      for (const s of st.slots) this.attachFor(st, s.hook, s.point, s.keys);
      for (const s of st.slots) this.map("gen_slots").update(u32(s.slot), this.slotValue(s.hook, policyNo, SLOT_ACTIVE | (st.mode === "monitor" ? SLOT_MONITOR : 0), scope));
      this.policies.set(policyId, st);
    } catch (e) {
      this.undo(st);
      throw e;
    }
  }

  /** Switches a policy's hooks off and removes every entry it wrote. */
  remove(policyId: string): void {
    const st = this.policies.get(policyId);
    if (st === undefined) throw new GenericSensorError(`remove policy ${policyId}: not applied`);
    this.policies.delete(policyId);
    this.undo(st);
  }

  /** monitor: Sigkill/Signal of every selector become Post (the kernel reads the slot flag). */
  setMode(policyId: string, mode: "enforce" | "monitor"): void {
    const st = this.policies.get(policyId);
    if (st === undefined) throw new GenericSensorError(`set mode of policy ${policyId}: not applied`);
    st.mode = mode;
    for (const s of st.slots) this.map("gen_slots").update(u32(s.slot), this.slotValue(s.hook, st.no, SLOT_ACTIVE | (mode === "monitor" ? SLOT_MONITOR : 0), st.scope));
  }

  mode(policyId: string): "enforce" | "monitor" | undefined {
    return this.policies.get(policyId)?.mode;
  }

  private undo(st: PolicyState): void {
    const slots = this.map("gen_slots");
    for (const s of st.slots) {
      try { slots.update(u32(s.slot), new Uint8Array(this.L.slot.size)); } catch { /* best effort: keep removing */ }
    }
    for (const u of st.uprobeLinks) {
      try { this.dropLink(u.link, u.pin); } catch { /* best effort: keep removing */ }
    }
    st.uprobeLinks = [];
    for (const s of st.slots) {
      for (const k of s.keys) {
        try { this.dispatchRemove(k.point, k.key, s.slot); } catch { /* already gone */ }
        if (k.point === POINT.UPROBE) this.uprobeIds.delete(k.key);
      }
      try { this.map("gen_hooks").update(u32(s.slot), new Uint8Array(this.L.hook.size)); } catch { /* best effort */ }
      this.bySlot.delete(s.slot);
      this.freeSlots.push(s.slot);
    }
    for (const w of st.written) {
      try { this.map(w.name).delete(w.key); } catch { /* already gone */ }
    }
    for (const p of st.binPaths) this.binNames.release(() => this.map("gen_bin_names"), p.path);
    for (const t of st.tracepoints) {
      const l = this.tpLinks.get(t);
      if (l !== undefined && --l.refs === 0) {
        this.dropLink(l.link, tpPinKey(t));
        this.tpLinks.delete(t);
      }
    }
    st.tracepoints = [];
    for (const t of st.openExits) {
      const l = this.openExitLinks.get(t);
      if (l !== undefined && --l.refs === 0) {
        this.dropLink(l.link, openExitPinKey(t));
        this.openExitLinks.delete(t);
      }
    }
    st.openExits = [];
    for (const t of st.lsms) {
      const l = this.lsmLinks.get(t);
      if (l !== undefined && --l.refs === 0) this.dropLsm(t, l);
    }
    st.lsms = [];
    for (const which of st.sys) {
      if (--this.sysRefs[which] === 0) {
        const l = this.sysLinks[which];
        if (l !== undefined) this.dropLink(l, `sys_${which}`);
        this.sysLinks[which] = undefined;
      }
    }
    st.sys = [];
    for (const l of st.kprobeLinks) {
      try { l.close(); } catch { /* detaching anyway */ }
    }
    st.kprobeLinks = [];
    for (const id of st.probeIds) this.probeNames.delete(id & PROBE_ID_MASK);
    st.probeIds = [];
    st.slots = [];
    st.written = [];
  }

  /** Rejects what this program cannot honor, naming why (never a silent drop). */
  private check(compiled: CompiledPolicy, hooks: readonly ResolvedHook[]): void {
    const problems: string[] = [];
    if (compiled.tables.substr.count > 0) problems.push("SubString/SubStringIgnCase need bpf_strnstr (kernel kfunc) which this program does not use");
    // Both sides use ward_filter.h's ward_str_prefix_key (the engine already rejects Prefix
    // values the kernel's LPM key cannot hold); a size mismatch means a stale engine or object.
    const pre = compiled.tables.strPrefix;
    const keySize = this.spec.maps.gen_str_prefix?.keySize;
    if (pre.count > 0 && keySize !== pre.entrySize) problems.push(`the engine's Prefix keys are ${pre.entrySize} bytes but generic.o's gen_str_prefix key is ${keySize ?? "missing"} (engine and BPF object built from different ward_filter.h layouts)`);
    const byIndex = new Map(compiled.hooks.map((h) => [h.index, h]));
    for (const h of hooks) {
      const ch = byIndex.get(h.index);
      if (ch === undefined) { problems.push(`hook index ${h.index} is not in the compiled policy`); continue; }
      const cfg = this.hookBytes(compiled, h.index);
      const dv = new DataView(cfg.buffer, cfg.byteOffset, cfg.byteLength);
      const nSel = dv.getUint8(this.L.hook.offset("n_selectors"));
      const types: number[] = [];
      for (let a = 0; a < 6; a++) types.push(dv.getUint16(this.L.hook.offset("args") + a * this.L.argCfg.size + this.L.argCfg.offset("type"), true));
      if (h.atReturn && h.attach.kind !== "syscall" && h.attach.kind !== "kprobe") problems.push(`${ch.path}: return values are read only for syscall and kprobe hooks here`);
      if (h.attach.kind === "uprobe") {
        if (h.attach.targets.length === 0) problems.push(`${ch.path}: a uprobe hook needs at least one target`);
        h.sources.forEach((src, i) => {
          // gen_uprobe lays the function's argument registers out as a syscall's
          if (src !== undefined && src.from !== "syscall-arg") problems.push(`${ch.path}: argument slot ${i} of a uprobe is read from the function's registers only`);
          else if (src !== undefined && (types[i] === ARG.FILE || types[i] === ARG.PATH || types[i] === ARG.SOCKADDR)) problems.push(`${ch.path}: argument slot ${i} (${ARG_TYPE_NAMES[types[i]!]}) is a kernel object; a user function has none`);
        });
      }
      if (h.attach.kind === "kprobe" && !this.kprobes().pmu) problems.push(`${ch.path}: kernel-function hooks need kprobes, which this kernel does not have`);
      if (h.attach.kind === "kprobe" && h.attach.override && !this.kprobes().override) problems.push(`${ch.path}: Override needs bpf_override_return (CONFIG_BPF_KPROBE_OVERRIDE), which this kernel does not have`);
      if (h.attach.kind === "lsm" && this.spec.programs[`gen_lsm_${h.attach.hook}`] === undefined) problems.push(`${ch.path}: generic.o has no program for lsm/${h.attach.hook}`);
      if (h.openedFd && (!h.atReturn || h.attach.kind !== "syscall")) problems.push(`${ch.path}: a file read from the returned fd needs a syscall hook evaluated at the return`);
      h.sources.forEach((src, i) => {
        if (src?.from === "return" && !h.atReturn) problems.push(`${ch.path}: argument slot ${i} reads the return value, which needs evaluation at the return`);
      });
      for (let s = 0; s < nSel; s++) {
        const so = this.L.hook.offset("selectors") + s * this.L.selector.size;
        const nm = dv.getUint8(so + this.L.selector.offset("n_matchers"));
        for (let m = 0; m < nm; m++) {
          const mo = so + this.L.selector.offset("matchers") + m * this.L.matcher.size;
          const kind = dv.getUint8(mo + this.L.matcher.offset("kind"));
          if (PROCESS_MAP_KINDS.has(kind) && this.opts.processMap === undefined) {
            problems.push(`${ch.path}.selectors[${s}]: matchBinaries/matchParentBinaries/matchNamespaceChanges/matchCapabilityChanges need the process sensor's map (GenericSensorOptions.processMap)`);
          }
          if (kind !== MK_ARG) continue;
          const slot = dv.getUint8(mo + this.L.matcher.offset("slot"));
          const t = types[slot] ?? 0;
          const src = slot < 5 ? h.sources[slot] : undefined;
          const objectArg = src?.from === "func-arg" && src.obj !== undefined && (t === ARG.SOCK || src.obj !== "cred");
          if ((!readable(t) && !objectArg) || (slot < 5 && h.sources[slot] === undefined) || (slot === 5 && !h.atReturn)) {
            problems.push(`${ch.path}.selectors[${s}]: argument slot ${slot} (${ARG_TYPE_NAMES[t] ?? t}) is not read by the generic syscall/tracepoint program here`);
          }
          if (dv.getUint8(mo + this.L.matcher.offset("value_kind")) === VK_SUBSTR) problems.push(`${ch.path}.selectors[${s}]: SubString is not available here`);
        }
        for (const [field, n] of [["actions", "n_actions"], ["return_actions", "n_return_actions"]] as const) {
          const na = dv.getUint8(so + this.L.selector.offset(n));
          for (let a = 0; a < na; a++) {
            const kind = dv.getUint32(so + this.L.selector.offset(field) + a * this.L.action.size + this.L.action.offset("kind"), true);
            const override = kind === ACT.OVERRIDE && field === "actions" && h.attach.kind === "kprobe" && h.attach.override;
            const ok = override || kind === ACT.POST || kind === ACT.NOPOST || kind === ACT.SIGKILL || kind === ACT.SIGNAL || kind === ACT.GETURL || kind === ACT.DNSLOOKUP ||
              (kind === ACT.OVERRIDE && h.attach.kind === "lsm");
            if (!ok) {
              const name = ACTION_NAMES[kind] ?? String(kind);
              const why = name === "Override"
                ? "this kernel has no fmod_ret, BPF LSM or bpf_override_return, so a syscall cannot be made to fail; use Sigkill, or a security_* hook where the file guard or a cgroup hook can deny"
                : "the generic program does not implement it";
              problems.push(`${ch.path}.selectors[${s}]: action ${name} cannot run here: ${why}`);
            }
          }
        }
      }
    }
    if (problems.length > 0) throw new GenericUnsupportedError(`policy ${compiled.name}: ${[...new Set(problems)].join("; ")}`);
  }

  private hookBytes(compiled: CompiledPolicy, index: number): Uint8Array {
    const sec = compiled.tables.hooks;
    if (sec.entrySize !== this.L.hook.size) throw new GenericSensorError(`engine hook config is ${sec.entrySize} bytes, generic.o expects ${this.L.hook.size}: layouts disagree`);
    if (index < 0 || index >= sec.count) throw new GenericSensorError(`hook index ${index} out of range`);
    return sec.bytes.subarray(index * sec.entrySize, (index + 1) * sec.entrySize);
  }

  private hookConfig(compiled: CompiledPolicy, index: number): Uint8Array {
    return this.hookBytes(compiled, index).slice();
  }

  private slotValue(h: ResolvedHook, policyNo: number, flags: number, scope: number): Uint8Array {
    const L = this.L;
    const v = new Uint8Array(L.slot.size);
    const dv = new DataView(v.buffer);
    dv.setUint32(L.slot.offset("scope"), scope, true);
    dv.setUint32(L.slot.offset("flags"), flags | (h.atReturn ? SLOT_RETURN : 0) | (h.openedFd ? SLOT_OPENED_FD : 0), true);
    dv.setUint32(L.slot.offset("policy"), policyNo, true);
    for (let i = 0; i < 6; i++) {
      const s = h.sources[i];
      if (s === undefined) continue;
      const o = L.slot.offset("src") + i * L.src.size;
      dv.setUint8(o + L.src.offset("from"), FROM[s.from]);
      if (s.from === "syscall-arg") dv.setUint16(o + L.src.offset("offset"), s.index, true);
      if (s.from === "tp-field") {
        dv.setUint8(o + L.src.offset("size"), s.size);
        dv.setUint16(o + L.src.offset("offset"), s.offset, true);
        dv.setUint8(o + L.src.offset("flags"), (s.signed ? 1 : 0) | (s.user ? 2 : 0) | (s.fd ? 4 : 0) | (s.iovec ? 8 : 0));
      }
      if (s.from === "tp-dataloc" || s.from === "tp-array") dv.setUint16(o + L.src.offset("offset"), s.offset, true);
      if (s.from === "lsm-arg") {
        dv.setUint8(o + L.src.offset("size"), s.size);
        dv.setUint16(o + L.src.offset("offset"), s.index, true);
        dv.setUint8(o + L.src.offset("flags"), (s.signed ? SRC_SIGNED : 0) | (s.dentryOf !== undefined ? SRC_DENTRY : 0) | (s.taskTgid ? SRC_TASK_TGID : 0));
        if (s.dentryOf !== undefined) dv.setUint8(o + L.src.offset("aux"), s.dentryOf);
      }
      if (s.from === "syscall-arg") dv.setUint8(o + L.src.offset("flags"), 2 | (s.iovec ? 8 : 0));
      if (s.from === "func-arg") {
        dv.setUint16(o + L.src.offset("offset"), s.index, true);
        dv.setUint8(o + L.src.offset("flags"), s.fd ? 4 : 0);
        if (s.obj !== undefined) dv.setUint8(o + L.src.offset("obj"), OBJ[s.obj]);
      }
      // GEN_SRC_FD: read_file takes the value as an fd of the current task
      if (s.from === "return" && s.fd) dv.setUint8(o + L.src.offset("flags"), 4);
    }
    return v;
  }

  /** Value-set keys: the engine's section entries are the map keys (Prefix re-packed). */
  private writeSets(st: PolicyState, compiled: CompiledPolicy): void {
    const t = compiled.tables;
    const put = (name: string, key: Uint8Array): void => {
      const map = this.map(name);
      if (map.lookup(key) !== undefined) return; // another policy's identical key: set ids differ, so it cannot happen; keep it
      map.update(key, new Uint8Array([1]));
      st.written.push({ name, key });
    };
    const each = (sec: { count: number; entrySize: number; bytes: Uint8Array }, f: (b: Uint8Array) => void): void => {
      for (let i = 0; i < sec.count; i++) f(sec.bytes.subarray(i * sec.entrySize, (i + 1) * sec.entrySize));
    };
    for (let c = 0; c < 9; c++) {
      const n = 16 << c;
      each(t[`strEq${n}` as SectionName], (b) => put(`gen_str_eq_${n}`, b.slice()));
    }
    each(t.strPrefix, (b) => put("gen_str_prefix", b.slice()));
    each(t.strPostfix, (b) => put("gen_str_postfix", b.slice()));
    each(t.intSet, (b) => put("gen_int_set", b.slice()));
    each(t.addrLpm, (b) => put("gen_addr_lpm", b.slice()));
    each(t.binSet, (b) => put("gen_bin_set", b.slice()));
    const names = this.map("gen_bin_names");
    each(t.binNames, (b) => {
      const { path, id, conflict } = this.binNames.add(names, b);
      if (conflict !== undefined) throw new GenericSensorError(`apply policy ${st.id}: binary ${path} interned as ${id} but ${conflict} is in use (compile every policy with the same BinaryInterner)`);
      st.binPaths.push({ path, id });
    });
  }

  private attachFor(st: PolicyState, h: ResolvedHook, point: number, keys: readonly { point: number; key: number }[]): void {
    if (h.attach.kind === "kprobe") {
      this.attachKprobes(st, h.attach, keys.filter((k) => k.point === POINT.KPROBE).map((k) => k.key), h.atReturn === true);
      return;
    }
    if (point === POINT.UPROBE) {
      if (h.attach.kind !== "uprobe") throw new GenericSensorError(`hook ${h.index}: uprobe point without a uprobe attach`);
      const { prog } = this.program(UPROBE_PROGRAM);
      const { path, targets } = h.attach;
      targets.forEach((t, i) => {
        const where = t.symbol !== "" ? t.symbol : `0x${t.offset.toString(16)}`;
        try {
          const key = keys[i]?.key ?? 0;
          // Pinned (when the sensor is) under a name a restarted agent maps back to the policy
          // and target: the policy number and the dispatch id, which the manifest records.
          const pin = uprobePinKey(st.no, key);
          const link = attachUprobe(prog, path, t.offset, { cookie: BigInt(key) });
          st.uprobeLinks.push({ link, pin });
          this.pinned(link, pin);
        } catch (e) {
          throw new GenericSensorError(`attach uprobe ${path}:${where} (file offset 0x${t.offset.toString(16)}): ${(e as Error).message}`);
        }
      });
      return;
    }
    if (point === POINT.LSM && h.attach.kind === "lsm") {
      const hook = h.attach.hook;
      const have = this.lsmLinks.get(hook);
      if (have !== undefined) have.refs++;
      else {
        // Its own collection over the loaded maps (same tables, ring buffer and scratch).
        const name = `gen_lsm_${hook}`;
        const spec = this.spec.programs[name];
        if (spec === undefined || this.coll === undefined) throw new GenericSensorError(`generic.o has no program ${name}`);
        const coll = newCollection(this.spec, { programs: [name], replaceMaps: { ...this.coll.maps } });
        try {
          const prog = coll.programs[name];
          if (prog === undefined) throw new GenericSensorError(`load ${name}: not in the collection`);
          const link = attachProgram(prog, spec);
          // Pinned (when the sensor is) as prog_gen_lsm_<hook> and link_lsm_<hook>: a restarted
          // agent takes both over from the pins like the tracepoint programs and links.
          try {
            if (this.pinDir !== undefined) prog.pin(join(this.pinDir, pinName(PROG_PIN_PREFIX, name)));
            this.pinned(link, lsmPinKey(hook));
          } catch (e) {
            link.close();
            if (this.pinDir !== undefined) unpin(join(this.pinDir, pinName(PROG_PIN_PREFIX, name)));
            throw e;
          }
          this.lsmLinks.set(hook, { coll, link, refs: 1 });
        } catch (e) {
          coll.close();
          throw e;
        }
      }
      st.lsms.push(hook);
      return;
    }
    if (point === POINT.OPEN_EXIT) {
      const name = this.openExitTracepoint(h);
      if (name === undefined) throw new GenericSensorError(`hook ${h.index}: no open-family exit tracepoint`);
      const target = `syscalls/${name}`;
      const have = this.openExitLinks.get(target);
      if (have !== undefined) have.refs++;
      else {
        const { prog, spec } = this.program("gen_open_exit");
        this.openExitLinks.set(target, { link: this.pinned(attachProgram(prog, spec, { target }), openExitPinKey(target)), refs: 1 });
      }
      st.openExits.push(target);
      return;
    }
    if (point === POINT.SYS_ENTER || point === POINT.SYS_EXIT) {
      const which = point === POINT.SYS_ENTER ? "enter" : "exit";
      this.sysRefs[which]++;
      st.sys.push(which);
      if (this.sysLinks[which] === undefined) {
        const name = `gen_sys_${which}`;
        const { prog, spec } = this.program(name);
        this.sysLinks[which] = this.pinned(attachProgram(prog, spec), `sys_${which}`);
      }
      return;
    }
    if (h.attach.kind !== "tracepoint") return;
    const target = `${h.attach.category}/${h.attach.name}`;
    const have = this.tpLinks.get(target);
    if (have !== undefined) have.refs++;
    else {
      const { prog, spec } = this.program("gen_tracepoint");
      // The event id rides along as the link's cookie: the program's dispatch key.
      const cookie = BigInt(tracepointId(h.attach.category, h.attach.name));
      this.tpLinks.set(target, { link: this.pinned(attachProgram(prog, spec, { target, cookie }), tpPinKey(target)), refs: 1 });
    }
    st.tracepoints.push(target);
  }

  /** A fresh probe id (the links' cookie, the dispatch key) for one kernel function. */
  private newProbeId(symbol: string, syscall: boolean): number {
    for (let n = 0; n < PROBE_ID_MASK; n++) {
      const id = this.nextProbeId;
      this.nextProbeId = id >= PROBE_ID_MASK ? 1 : id + 1;
      if (!this.probeNames.has(id)) {
        this.probeNames.set(id, symbol);
        return syscall ? (id | PROBE_SYSCALL) >>> 0 : id;
      }
    }
    throw new GenericSensorError("no free kprobe id");
  }

  /** What the kernel has for kernel-function hooks (probed once). */
  kprobes(): KprobeSupport {
    this.kprobeSupport ??= this.opts.kprobes ?? probeKprobeSupport();
    return this.kprobeSupport;
  }

  /** generic_kprobe.o's programs, on this sensor's maps; loaded once, at the first kprobe hook. */
  private kprobePrograms(): Collection {
    if (this.kcoll !== undefined) return this.kcoll;
    const k = this.kprobes();
    if (!k.pmu) throw new GenericUnsupportedError("kernel-function hooks need kprobes: this kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe is absent)");
    if (this.coll === undefined) throw new GenericSensorError("generic sensor not loaded");
    this.kspec ??= loadCollectionSpec(readObject("generic_kprobe"), "generic_kprobe");
    const programs = ["gen_kprobe", "gen_kretprobe", ...(k.multi ? ["gen_kprobe_multi", "gen_kretprobe_multi"] : []), ...(k.override ? ["gen_kprobe_override"] : [])];
    // Every map is generic.o's: one set of hook slots, value sets and one ring buffer.
    const replaceMaps: Record<string, BpfMap> = { ...this.coll.maps };
    delete replaceMaps.gen_ret_entries;
    // generic.o's maps may have been sized at load (ward_procs is a one-entry stub without a
    // process sensor): the live map's size is the one the kprobe object must declare.
    for (const [name, m] of Object.entries(replaceMaps)) {
      const want = this.kspec.maps[name];
      if (want !== undefined) want.maxEntries = m.spec.maxEntries;
    }
    this.kcoll = newCollection(this.kspec, { replaceMaps, programs });
    return this.kcoll;
  }

  /**
   * Attaches a kprobe hook's functions: one kprobe.multi link (and a kretprobe.multi one)
   * where the kernel has them and there are several functions without Override, else a
   * perf kprobe (and kretprobe) per function, through the kprobe PMU. The probe id rides
   * as the cookie, which needs the BPF_PERF_EVENT link (5.15+): an ioctl attachment has no
   * cookie and is refused.
   */
  private attachKprobes(st: PolicyState, a: Extract<HookAttach, { kind: "kprobe" }>, ids: readonly number[], atReturn: boolean): void {
    const coll = this.kprobePrograms();
    const prog = (name: string) => {
      const p = coll.programs[name];
      if (p === undefined) throw new GenericUnsupportedError(`generic_kprobe.o program ${name} is not loaded here${name === "gen_kprobe_override" ? " (no bpf_override_return: CONFIG_BPF_KPROBE_OVERRIDE is off)" : ""}`);
      return p;
    };
    const cookies = ids.map((x) => BigInt(x));
    if (this.kprobes().multi && a.symbols.length > 1 && !a.override) {
      st.kprobeLinks.push(attachKprobeMulti(prog("gen_kprobe_multi"), a.symbols, { cookies }));
      if (atReturn) st.kprobeLinks.push(attachKprobeMulti(prog("gen_kretprobe_multi"), a.symbols, { retprobe: true, cookies }));
      return;
    }
    const entry = prog(a.override ? "gen_kprobe_override" : "gen_kprobe");
    a.symbols.forEach((sym, i) => {
      const cookie = cookies[i]!;
      for (const ret of atReturn ? [false, true] : [false]) {
        const l = attachKprobe(ret ? prog("gen_kretprobe") : entry, sym, { retprobe: ret, cookie });
        st.kprobeLinks.push(l);
        if (l.kind !== "link") throw new GenericUnsupportedError(`${ret ? "kretprobe" : "kprobe"} ${sym}: attached through the perf ioctl, which carries no cookie (kernel before 5.15); the generic sensor needs the BPF_PERF_EVENT link`);
      }
    });
  }

  private dkey(point: number, id: number): Uint8Array {
    const k = new Uint8Array(8);
    const dv = new DataView(k.buffer);
    dv.setUint32(0, point, true);
    dv.setUint32(4, id >>> 0, true);
    return k;
  }

  private dispatchAdd(point: number, id: number, slot: number): void {
    const m = this.map("gen_dispatch");
    const k = this.dkey(point, id);
    const v = m.lookup(k) ?? new Uint8Array(this.L.dval.size);
    const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
    const n = dv.getUint32(0, true);
    const max = (this.L.dval.field("slots").size / 4) | 0;
    if (n >= max) throw new GenericSensorError(`more than ${max} hooks on one syscall/tracepoint`);
    // The slot goes in before the count grows, so the kernel never reads an unset entry.
    dv.setUint32(this.L.dval.offset("slots") + n * 4, slot, true);
    m.update(k, v);
    dv.setUint32(0, n + 1, true);
    m.update(k, v);
  }

  private dispatchRemove(point: number, id: number, slot: number): void {
    const m = this.map("gen_dispatch");
    const k = this.dkey(point, id);
    const v = m.lookup(k);
    if (v === undefined) return;
    const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
    const n = dv.getUint32(0, true);
    const rest: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = dv.getUint32(this.L.dval.offset("slots") + i * 4, true);
      if (s !== slot) rest.push(s);
    }
    if (rest.length === 0) { m.delete(k); return; }
    const out = new Uint8Array(this.L.dval.size);
    const ov = new DataView(out.buffer);
    ov.setUint32(0, rest.length, true);
    rest.forEach((s, i) => ov.setUint32(this.L.dval.offset("slots") + i * 4, s, true));
    m.update(k, out);
  }

  // ---------------------------------------------------------------- events

  /** Subscribe to decoded records; returns the unsubscribe function. Starts the reader. */
  onEvent(cb: (e: GenericEvent) => void): () => void {
    this.listeners.add(cb);
    this.loop ??= this.readLoop();
    return () => this.listeners.delete(cb);
  }

  /** Decoded records as an async stream (ends at close()). */
  async *events(): AsyncGenerator<GenericEvent> {
    const queue: GenericEvent[] = [];
    let wake: (() => void) | undefined;
    const off = this.onEvent((e) => { queue.push(e); wake?.(); });
    try {
      while (!this.stopping) {
        const e = queue.shift();
        if (e !== undefined) { yield e; continue; }
        await new Promise<void>((r) => { wake = r; setTimeout(r, 200); });
        wake = undefined;
      }
    } finally {
      off();
    }
  }

  /** Reads what is in the ring buffer now (tests, or callers with their own loop). */
  drain(): GenericEvent[] {
    const out: GenericEvent[] = [];
    this.reader?.drain((rec) => {
      const e = this.decode(rec);
      if (e !== undefined) out.push(e);
    });
    return out;
  }

  private async readLoop(): Promise<void> {
    while (!this.stopping && this.reader !== undefined) {
      await this.reader.wait(200);
      if (this.stopping) break;
      for (const e of this.drain()) for (const l of this.listeners) l(e);
    }
  }

  /** struct gen_event -> GenericEvent; undefined for a slot no longer applied. */
  decode(rec: DataView): GenericEvent | undefined {
    const E = this.L.event;
    const g = (f: string): number => rec.getUint32(E.offset(f), true);
    const slot = g("slot");
    const owner = this.bySlot.get(slot);
    if (owner === undefined) return undefined;
    const flags = g("flags");
    const actionBits = g("actions");
    const actions: string[] = [];
    for (let i = 1; i < 32; i++) if (actionBits & (1 << i)) actions.push(ACTION_NAMES[i] ?? String(i));
    const dataOff = E.offset("data");
    const args: GenericArg[] = [];
    const hookOf = owner.policy.slots.find((x) => x.slot === slot)?.hook;
    for (let i = 0; i < 6; i++) {
      const state = rec.getUint8(E.offset("arg_state") + i);
      if (state === 0) continue;
      const type = rec.getUint16(E.offset("arg_type") + 2 * i, true);
      const a: GenericArg = {
        slot: i, type: ARG_TYPE_NAMES[type] ?? "opaque",
        state: state === 1 ? "int" : state === 2 ? "bytes" : state === 4 ? "truncated" : "error",
        int: rec.getBigUint64(E.offset("arg_int") + 8 * i, true),
      };
      if (state === 2 || state === 4) {
        const off = rec.getUint16(E.offset("arg_off") + 2 * i, true);
        const len = rec.getUint16(E.offset("arg_len") + 2 * i, true);
        const start = rec.byteOffset + dataOff + off;
        a.bytes = new Uint8Array(rec.buffer.slice(start, start + Math.min(len, rec.byteLength - dataOff - off)));
        const src = hookOf?.sources[i];
        if (src?.from === "func-arg" && src.obj !== undefined && state === 2) a.object = this.decodeObject(src.obj, a.bytes);
      }
      args.push(a);
    }
    return {
      policyId: owner.policy.id,
      hookIndex: owner.hookIndex,
      hookId: g("hook_id"),
      selector: rec.getInt32(E.offset("selector"), true) < 0 ? null : rec.getInt32(E.offset("selector"), true),
      pid: g("pid"), tgid: g("tgid"), nspid: g("nspid"),
      ktime: rec.getBigUint64(E.offset("ktime"), true),
      actions,
      atReturn: (flags & 1) !== 0,
      ret: rec.getBigInt64(E.offset("ret"), true),
      monitor: (flags & 2) !== 0,
      killed: (flags & 4) !== 0,
      signaled: (flags & 8) !== 0,
      signalErr: rec.getInt32(E.offset("signal_err"), true),
      syscall: g("syscall"),
      ...(this.uprobeIds.has(g("syscall")) && owner.policy.slots.some((s) => s.slot === slot && s.point === POINT.UPROBE) ? { uprobe: this.uprobeIds.get(g("syscall"))! } : {}),
      ...(hookOf?.attach.kind === "kprobe" ? { function: this.probeNames.get(g("syscall") & PROBE_ID_MASK) ?? "" } : {}),
      overridden: (flags & EF_OVERRIDE) !== 0,
      args,
    };
  }

  /** A gen_sock_rec / gen_skb_rec / gen_cred_rec from a record's bytes, through the BTF layouts. */
  private decodeObject(obj: ArgObject, b: Uint8Array): SockRecord | SkbRecord | CredRecord | undefined {
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    const name = obj === "cred" ? "gen_cred_rec" : obj === "skb" ? "gen_skb_rec" : "gen_sock_rec";
    const L = structLayout(this.btf, name);
    if (b.byteLength < L.size) return undefined;
    const u = (f: string, size = L.field(f).size): number => (size === 1 ? dv.getUint8(L.offset(f)) : size === 2 ? dv.getUint16(L.offset(f), true) : dv.getUint32(L.offset(f), true));
    const u64 = (f: string): bigint => dv.getBigUint64(L.offset(f), true);
    const addr = (f: string, family: number): string => ipText(b.subarray(L.offset(f), L.offset(f) + 16), family);
    if (obj === "cred") {
      return {
        kind: "cred", uid: u("uid"), gid: u("gid"), suid: u("suid"), sgid: u("sgid"), euid: u("euid"), egid: u("egid"), fsuid: u("fsuid"), fsgid: u("fsgid"),
        securebits: u("securebits"), capPermitted: u64("cap_permitted"), capEffective: u64("cap_effective"), capInheritable: u64("cap_inheritable"),
        userns: { level: u("userns_level"), uid: u("userns_uid"), gid: u("userns_gid"), inum: u("userns_inum") },
      };
    }
    if (obj === "skb") {
      const family = u("family");
      return {
        kind: "skb", hash: u("hash"), len: u("len"), priority: u("priority"), mark: u("mark"), family, protocol: u("protocol"), proto: u("proto"),
        saddr: addr("saddr", family), daddr: addr("daddr", family), sport: u("sport"), dport: u("dport"), secPathLen: u("sec_path_len"),
      };
    }
    const family = u("family");
    return {
      kind: "sock", family, type: u("type"), protocol: u("protocol"), state: u("state"), mark: u("mark"), priority: u("priority"),
      saddr: addr("saddr", family), daddr: addr("daddr", family), sport: u("sport"), dport: u("dport"), cookie: u64("cookie"),
    };
  }

  /** Entries in each table map (hash/LPM maps and the dispatch map), for status and tests:
   * after remove() every count is back where it was before apply(). */
  tableSizes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of ["gen_dispatch", "gen_str_prefix", "gen_str_postfix", "gen_int_set", "gen_addr_lpm", "gen_bin_names", "gen_bin_set", ...[0, 1, 2, 3, 4, 5, 6, 7, 8].map((c) => `gen_str_eq_${16 << c}`)]) {
      out[name] = countEntries(this.map(name));
    }
    out.activeSlots = countActiveSlots(this.map("gen_slots"), this.L.slot.offset("flags"), SLOT_ACTIVE);
    return out;
  }

  /** Kernel counters summed over CPUs. */
  counters(): GenericCounters {
    const get = counterReader(this.map("gen_counters"), this.counterIdx);
    return {
      evaluations: get("GEN_CNT_EVALS"), matches: get("GEN_CNT_MATCHES"), posts: get("GEN_CNT_POSTS"),
      ringbufDrops: get("GEN_CNT_RB_DROPS"), kills: get("GEN_CNT_KILLS"), signals: get("GEN_CNT_SIGNALS"),
      exempt: get("GEN_CNT_EXEMPT"), rateLimited: get("GEN_CNT_RATE_LIMITED"), readErrors: get("GEN_CNT_READ_ERRORS"),
      monitor: get("GEN_CNT_MONITOR"), notTaken: get("GEN_CNT_NOT_TAKEN"),
      overrides: get("GEN_CNT_OVERRIDES"), returnRecordsLost: get("GEN_CNT_RET_LOST"),
    };
  }

  /**
   * Detaches everything and frees the maps. keepPinned (--keep-sensors-on-exit): the policies'
   * entries stay and only this process's hold goes, so whatever is pinned keeps enforcing.
   */
  close(opts: { keepPinned?: boolean } = {}): void {
    this.stopping = true;
    const keep = opts.keepPinned === true && this.pinDir !== undefined;
    if (!keep) {
      for (const id of [...this.policies.keys()]) {
        try { this.remove(id); } catch { /* closing anyway */ }
      }
      this.unpin();
    }
    // kept pinned: only this process's references go (the pins keep the uprobes attached)
    for (const p of this.policies.values()) for (const u of p.uprobeLinks) u.link.close();
    this.policies.clear();
    for (const l of this.adoptedUprobes.values()) l.close();
    this.adoptedUprobes.clear();
    this.sysLinks.enter?.close();
    this.sysLinks.exit?.close();
    this.sysLinks.enter = this.sysLinks.exit = undefined;
    for (const l of this.tpLinks.values()) l.link.close();
    this.tpLinks.clear();
    for (const l of this.openExitLinks.values()) l.link.close();
    this.openExitLinks.clear();
    this.uprobeIds.clear();
    for (const l of this.lsmLinks.values()) {
      l.link.close();
      l.coll?.close();
    }
    this.lsmLinks.clear();
    this.reader?.close();
    this.reader = undefined;
    this.kcoll?.close();
    this.kcoll = undefined;
    for (const c of this.programColls) c.close();
    this.programColls.length = 0;
    this.loadedPrograms.clear();
    this.coll?.close();
    this.coll = undefined;
    for (const m of this.pinnedMaps.splice(0)) m.close();
    this.pinDir = undefined;
  }
}

/** Pin keys of the shared links (the file is link_<key>, "/" and "." as "@"). */
function tpPinKey(target: string): string {
  return `tp_${target}`;
}
function openExitPinKey(target: string): string {
  return `oe_${target}`;
}
function lsmPinKey(hook: LsmHookName): string {
  return `lsm_${hook}`;
}
/** A uprobe link's pin key: its policy's number and its dispatch id (the link cookie). */
function uprobePinKey(policyNo: number, id: number): string {
  return `up_${policyNo}_${id}`;
}
function parseUprobePinKey(key: string): { no: number; id: number } | undefined {
  const m = /^up_(\d+)_(\d+)$/.exec(key);
  return m === null ? undefined : { no: Number(m[1]), id: Number(m[2]) };
}

/**
 * The plain resolution of a `syscall: true` kprobe on this kernel (no kprobes): slot i of
 * the compiled hook reads syscall argument args[i].index from pt_regs, slot 5 the return
 * value; evaluated at the return when the hook has return: true or matchReturnArgs.
 * Hook resolution (I5-U) may build ResolvedHook itself; this is the common case.
 */
export function syscallHook(
  compiled: CompiledPolicy,
  index: number,
  nr: number | "all",
  atReturn?: boolean,
  /** the declared Tetragon type by slot: "char_iovec" is a BUF slot read as an iovec array */
  declaredTypes?: readonly (string | undefined)[],
): ResolvedHook {
  const sec = compiled.tables.hooks;
  const b = sec.bytes.subarray(index * sec.entrySize, (index + 1) * sec.entrySize);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  // ward_hook_config.args is at byte 24 and ward_arg_cfg is 8 bytes (type u16, source u8,
  // index u8, size_arg u8, present u8, flags u16): checked against the BTF in the tests.
  const sources: (ArgSource | undefined)[] = [];
  for (let i = 0; i < 6; i++) {
    const o = 24 + i * 8;
    const present = dv.getUint8(o + 5) !== 0;
    if (!present) { sources.push(undefined); continue; }
    const iovec = declaredTypes?.[i] === "char_iovec";
    sources.push(i === 5 ? { from: "return" } : { from: "syscall-arg", index: dv.getUint8(o + 3), ...(iovec ? { iovec } : {}) });
  }
  // WARD_HF_RETURN (flags at byte 7): return: true
  return { index, attach: { kind: "syscall", nr }, sources, atReturn: atReturn ?? (dv.getUint8(7) & 2) !== 0 };
}

/**
 * A uprobe hook: slot i reads function argument args[i].index from the caller's registers
 * (SysV x86_64: the first six integer/pointer arguments), at each target of `path`.
 */
export function uprobeHook(compiled: CompiledPolicy, index: number, path: string, targets: readonly UprobeTarget[]): ResolvedHook {
  const sec = compiled.tables.hooks;
  const b = sec.bytes.subarray(index * sec.entrySize, (index + 1) * sec.entrySize);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  // ward_arg_cfg layout as in syscallHook (checked against the BTF in the tests)
  const sources: (ArgSource | undefined)[] = [];
  for (let i = 0; i < 5; i++) {
    const o = 24 + i * 8;
    // gen_uprobe puts the function's registers in the syscall layout (cx into r10), and a
    // syscall argument source reads pointers as user pointers: the caller's memory
    sources.push(dv.getUint8(o + 5) !== 0 ? { from: "syscall-arg", index: dv.getUint8(o + 3) } : undefined);
  }
  return { index, attach: { kind: "uprobe", path, targets }, sources };
}
