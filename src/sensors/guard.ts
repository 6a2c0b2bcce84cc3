// The file/exec/module guard: loads bpf/file_guard.c, keeps its protected (dev, ino) set,
// its rules and their binary sets, and reads its ring buffer. Decisions are taken in the
// kernel on the opened/executed file itself; this module only fills the tables.
import { existsSync, mkdirSync, readdirSync, rmdirSync, statSync } from "node:fs";
import { join, posix } from "node:path";
import { attachProgram, loadCollectionSpec, newCollection, type CollectionSpec } from "../bpf/collection.ts";
import { Link } from "../bpf/link.ts";
import { BpfMap, sumPerCpuU64 } from "../bpf/map.ts";
import type { BpfProgram } from "../bpf/program.ts";
import { removePins, unpin } from "../bpf/pin.ts";
import { readObject } from "../bpf/objects.ts";
import { RingBufReader } from "../bpf/ringbuf.ts";
import { BtfKind, type Btf } from "../bpf/btf.ts";
import { chooseOpenExit, type OpenExitChoice } from "./open-exit.ts";
import { BinaryWatch, binaryMatchText, kernelDev, nearestDirectory, presentIdentity, resolvedForm, type BinaryEntryStatus, type BinaryIdentity } from "./binary-watch.ts";

export { kernelDev, type BinaryEntryStatus } from "./binary-watch.ts";

export class GuardError extends Error {
  override name = "GuardError";
}

/** Program names in file_guard.o, by what they enforce. */
export type GuardProgram =
  | "guard_sys_exit"
  | "guard_open_exit"
  | "guard_exec"
  | "guard_io_uring"
  | "guard_module"
  | "guard_lsm_open"
  | "guard_lsm_exec"
  | "guard_lsm_read_file"
  | "guard_lsm_load_data";

/**
 * The file rules on kernels without BPF LSM (tracepoints + bpf_send_signal): the default.
 * "guard_sys_exit" here stands for the open-family exit check: FileGuard.open attaches
 * guard_open_exit to the per-syscall tracepoints where they exist and the tp_btf/sys_exit
 * program only where they do not (see open-exit.ts; FileGuard.mechanisms() says which).
 * guard_module is not in it: it runs at every syscall entry, so it is loaded only when a
 * module rule is wanted (TRACEPOINT_PROGRAMS).
 */
export const TRACEPOINT_FILE_PROGRAMS: readonly GuardProgram[] = ["guard_sys_exit", "guard_exec", "guard_io_uring"];
/** Every tracepoint program: file rules and the module-load rule. */
export const TRACEPOINT_PROGRAMS: readonly GuardProgram[] = [...TRACEPOINT_FILE_PROGRAMS, "guard_module"];
/** The set for kernels where BPF LSM is active: the call fails with EPERM instead of a kill. */
export const LSM_PROGRAMS: readonly GuardProgram[] = ["guard_lsm_open", "guard_lsm_exec", "guard_lsm_read_file", "guard_lsm_load_data"];

/** How one guard program honors an action on this kind of kernel, for `policy explain` and /v1/status. */
export interface GuardMechanism {
  attach: string;
  /** override: the call fails with EPERM and has no effect; sigkill: the caller dies on its way out */
  honors: "override" | "sigkill";
  /** measured limits, each one sentence (empty: none known) */
  limits: string[];
}

const OPEN_EXIT_LIMITS = [
  "the open has happened: O_TRUNC/creat already truncated the file",
  "a sibling thread reading the guessed fd number can win the race before the kill (8 of 300 runs on 6.18)",
  "fds opened before the rule existed are not revoked",
];

export const GUARD_MECHANISMS: Readonly<Record<GuardProgram, GuardMechanism>> = {
  guard_open_exit: {
    attach: "tracepoint syscalls/sys_exit_{open,openat,openat2,creat,open_by_handle_at}",
    honors: "sigkill",
    limits: [
      ...OPEN_EXIT_LIMITS,
      "32-bit (ia32 compat) syscalls never fire the syscalls/ tracepoints on x86, so this placement is chosen only where the kernel refuses 32-bit executables (else tp_btf/sys_exit, which checks compat opens)",
    ],
  },
  guard_sys_exit: {
    attach: "tp_btf/sys_exit (open, openat, openat2, creat, open_by_handle_at, 64-bit and compat; the fallback without tracefs)",
    honors: "sigkill",
    limits: [...OPEN_EXIT_LIMITS, "runs at the exit of every syscall: a getppid loop was about 10-15% slower with it loaded"],
  },
  guard_exec: { attach: "tp_btf/sched_process_exec (bprm->file and the script)", honors: "sigkill", limits: ["the binary selector sees the parent's executable (the exec has replaced the caller's)"] },
  guard_io_uring: {
    attach: "tp_btf/io_uring_complete (IORING_OP_OPENAT/OPENAT2, fd table and fixed-file slots)",
    honors: "sigkill",
    limits: ["requests linked after the open still run on 6.1 (read+write leaked 10 of 10 runs); cancelled on 6.18"],
  },
  guard_module: {
    attach: "tp_btf/sys_enter (init_module, finit_module)",
    honors: "sigkill",
    limits: ["the module is still loaded and its init runs: the signal is only acted on after the syscall (measured on 6.1)"],
  },
  guard_lsm_open: { attach: "lsm/file_open", honors: "override", limits: [] },
  guard_lsm_exec: { attach: "lsm/bprm_check_security", honors: "override", limits: [] },
  guard_lsm_read_file: { attach: "lsm/kernel_read_file (READING_MODULE)", honors: "override", limits: [] },
  guard_lsm_load_data: { attach: "lsm/kernel_load_data (LOADING_MODULE)", honors: "override", limits: [] },
};

/** The programs for this kernel: LSM where BPF LSM is active, else the tracepoint substitutes. */
export function guardProgramsFor(opts: { bpfLsm: boolean; modules: boolean }): GuardProgram[] {
  if (opts.bpfLsm) return opts.modules ? [...LSM_PROGRAMS] : ["guard_lsm_open", "guard_lsm_exec"];
  return opts.modules ? [...TRACEPOINT_PROGRAMS] : [...TRACEPOINT_FILE_PROGRAMS];
}

/** Where a decision was taken; the values are enum guard_hook in bpf/include/guard.h. */
export const GUARD_HOOKS = ["", "open", "exec", "io_uring", "module", "lsm_open", "lsm_exec", "lsm_module"] as const;
export type GuardHook = Exclude<(typeof GUARD_HOOKS)[number], "">;
export const GUARD_ACTIONS = ["report", "kill", "deny"] as const;
export type GuardAction = (typeof GUARD_ACTIONS)[number];

export interface GuardRule {
  action: GuardAction;
  /** matchBinaries: In = only these binaries match, NotIn = every binary but these. */
  binaries?: { op: "In" | "NotIn"; paths: string[] };
  /** hooks the rule applies at; default: every file hook (open, exec, io_uring, LSM open/exec) */
  hooks?: GuardHook[];
  /** workload scope id (src/workloads/scope-maps.ts); needs GuardOptions.scopeMaps. 0/absent: every process */
  scope?: number;
}

export interface GuardEvent {
  timeNs: bigint;
  pid: number;
  tgid: number;
  rule: number;
  hook: GuardHook;
  action: GuardAction;
  /** open/io_uring: the fd; module: the syscall number or read id; else 0 */
  result: number;
  /** the protected object, dev in the kernel's encoding */
  dev: number;
  ino: bigint;
  exeDev: number;
  exeIno: bigint;
  /** bpf_send_signal's return: 0 when the SIGKILL was queued */
  signalErr: number;
  comm: string;
}

export interface GuardCounters {
  checks: bigint;
  matches: bigint;
  kills: bigint;
  denies: bigint;
  exempt: bigint;
  ringbufDrops: bigint;
  readErrors: bigint;
}

export interface GuardOptions {
  /** programs to load and attach; default TRACEPOINT_FILE_PROGRAMS */
  programs?: readonly GuardProgram[];
  /** tgids no rule may kill; the calling process is always added */
  exemptPids?: number[];
  /** the object bytes; default the embedded file_guard.o */
  object?: Uint8Array;
  /**
   * Where "guard_sys_exit" (the open-family exit check) attaches: "auto" (default) picks the
   * per-syscall tracepoints when tracefs has them and no 32-bit process can run here, else
   * tp_btf/sys_exit; "tp_btf" forces the fallback (tests, and a kernel whose syscall
   * tracepoints misbehave); "tracepoint" forces the tracepoints even where 32-bit processes
   * would slip past them (only to measure that gap).
   */
  openExit?: "auto" | "tp_btf" | "tracepoint";
  /**
   * The process sensor's ward_procs map: matchBinaries entries that do not exist yet are
   * matched by the executable's path recorded there (and In entries by path besides the
   * inode). Without it, a missing entry is refused and In entries match by inode only.
   */
  processMap?: BpfMap;
  /** The agent's shared workload scope maps (ScopeMaps.replaceMaps()): needed for rules with a scope. */
  scopeMaps?: { replaceMaps(): Record<string, BpfMap> };
}

const FILE_HOOKS: GuardHook[] = ["open", "exec", "io_uring", "lsm_open", "lsm_exec"];
const MODULE_HOOKS: GuardHook[] = ["module", "lsm_module"];
const MODULE_RULE = 0;
const MODULE_PROGRAMS: readonly GuardProgram[] = ["guard_module", "guard_lsm_read_file", "guard_lsm_load_data"];
const MAX_RULES = 256;

/** (dev, ino) of a path as the kernel keys it; follows symlinks like open() does. */
export function fileIdentity(path: string): { dev: number; ino: bigint } {
  const st = statSync(path, { bigint: true });
  return { dev: kernelDev(st.dev), ino: st.ino };
}

interface Field {
  offset: number;
  size: number;
}

/** Member offsets of a struct from the object's BTF: the C header stays the only layout. */
export function structLayout(btf: Btf, name: string): { size: number; fields: Map<string, Field> } {
  const id = btf.findOne(name, BtfKind.Struct);
  if (id === undefined) throw new GuardError(`struct ${name} is missing from file_guard.o's BTF`);
  const t = btf.typeOf(id, BtfKind.Struct, BtfKind.Union);
  const fields = new Map<string, Field>();
  for (const m of t.members) fields.set(m.name, { offset: m.bitOffset / 8, size: btf.sizeOf(m.type) });
  return { size: t.size, fields };
}

class Layout {
  constructor(
    readonly size: number,
    private readonly fields: Map<string, Field>,
    private readonly struct: string,
  ) {}
  static of(btf: Btf, name: string): Layout {
    const l = structLayout(btf, name);
    return new Layout(l.size, l.fields, name);
  }
  field(name: string): Field {
    const f = this.fields.get(name);
    if (f === undefined) throw new GuardError(`struct ${this.struct} has no field ${name}`);
    return f;
  }
  u32(v: DataView, name: string): number {
    return v.getUint32(this.field(name).offset, true);
  }
  s32(v: DataView, name: string): number {
    return v.getInt32(this.field(name).offset, true);
  }
  u64(v: DataView, name: string): bigint {
    return v.getBigUint64(this.field(name).offset, true);
  }
  setU32(v: DataView, name: string, value: number): void {
    v.setUint32(this.field(name).offset, value, true);
  }
  setU64(v: DataView, name: string, value: bigint): void {
    v.setBigUint64(this.field(name).offset, value, true);
  }
}

function hookMask(hooks: readonly GuardHook[]): number {
  let mask = 0;
  for (const h of hooks) mask |= 1 << GUARD_HOOKS.indexOf(h);
  return mask;
}

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/**
 * One matchBinaries entry of a rule, as it is matched now. Semantics (docs/bypasses.md):
 * - present when the rule is written: its inode; an In entry also its path (never weaker than
 *   Tetragon's path match: a file put at that path later is still listed);
 * - missing: its path (the executable's resolved path as the process sensor recorded it at
 *   exec), and the BinaryWatch adds its inode the moment it appears, without reloading;
 * - In keeps the path match after that (the union); NotIn drops it once the inode is in: the
 *   inode is the binary that appeared, which stays allowed whatever its name, while a later
 *   file at that path is not (the stricter choice that still allows the real binary: the same
 *   as an entry that existed when the policy was applied).
 */
interface BinaryEntry {
  /** normalized absolute path as the policy names it */
  path: string;
  op: "In" | "NotIn";
  inode?: BinaryIdentity;
  /** the path forms keyed in guard_bin_paths for this entry (as written, and symlinks resolved) */
  pathKeys: string[];
  error?: string;
}

function normalizeBinaryPath(path: string): string {
  if (!path.startsWith("/")) throw new GuardError(`matchBinaries ${JSON.stringify(path)}: not an absolute path`);
  const n = posix.normalize(path);
  return n.length > 1 && n.endsWith("/") ? n.slice(0, -1) : n;
}

/** Pin file names under a pin directory: one per map, one per attached program's link. */
const MAP_PIN_PREFIX = "map_";
const LINK_PIN_PREFIX = "link_";
/**
 * guard_open_exit has one link per tracepoint: link_guard_open_exit@sys_exit_openat, ...
 * ("@" because bpffs refuses names with a "." in them).
 */
const LINK_PIN_SEPARATOR = "@";

/** One attachment to make: a program, optionally at another target than its section's. */
interface Attachment {
  program: GuardProgram;
  target?: string;
  pinName: string;
}

/** The requested programs as attachments, with the open-family check placed per `choice`. */
function attachmentsFor(programs: readonly GuardProgram[], choice: OpenExitChoice | undefined): Attachment[] {
  const out: Attachment[] = [];
  let openExitPlaced = false;
  for (const p of programs) {
    const openExit = p === "guard_sys_exit" || p === "guard_open_exit";
    if (openExit && openExitPlaced) continue; // both names asked for: one check is enough
    openExitPlaced ||= openExit;
    if (openExit && choice?.kind === "tracepoint") {
      for (const tp of choice.tracepoints) {
        out.push({ program: "guard_open_exit", target: `syscalls/${tp}`, pinName: `guard_open_exit${LINK_PIN_SEPARATOR}${tp}` });
      }
    } else if (openExit) {
      out.push({ program: "guard_sys_exit", pinName: "guard_sys_exit" });
    } else {
      out.push({ program: p, pinName: p });
    }
  }
  return out;
}

export class FileGuard {
  private readonly reader: RingBufReader;
  private readonly fileKey: Layout;
  private readonly ruleLayout: Layout;
  private readonly binKey: Layout;
  private readonly event: Layout;
  /** rule id -> binary keys written for it, so a rule can be rewritten cleanly */
  private readonly ruleBinaries = new Map<number, Uint8Array[]>();
  private readonly protectedKeys = new Map<string, Uint8Array>();
  private nextRule = 1;
  private closed = false;
  /** names of the programs attached (by open) or found pinned (by adopt) */
  private readonly attached = new Set<string>();
  /** program -> where it is attached ("syscalls/sys_exit_openat", "tp_btf/sys_exit", ...) */
  private readonly where = new Map<string, string[]>();
  /** why the open-family check fell back to tp_btf/sys_exit, when it did */
  private fallbackReason: string | undefined;
  /** the loaded programs (open() only: adopt holds links, not programs) */
  private programs: Record<string, BpfProgram> = {};
  private readonly binPathKey: Layout;
  /** bytes of a guard_bin_path key: WARD_BIN_KEEP, the binary path prefix ward_procs keeps */
  private readonly binPathSize: number;
  /** rule id -> its matchBinaries entries */
  private readonly ruleEntries = new Map<number, BinaryEntry[]>();
  /** rule id -> path form -> entries of the rule keying it in guard_bin_paths */
  private readonly rulePathRefs = new Map<number, Map<string, number>>();
  /** path form -> interned id in guard_bin_names and how many (rule, path) keys use it */
  private readonly pathNames = new Map<string, { id: number; refs: number }>();
  private nextPathId = 1;
  private watch: BinaryWatch | undefined;
  /** ward_procs is the process sensor's map (not the 1-entry stub): path matching works */
  private byPath = false;
  /** maps passed in (the process sensor's): used, never closed, by this guard */
  private readonly borrowed = new Set<BpfMap>();
  /** Whether the shared scope maps were passed in (rules with a scope need them). */
  private scoped = false;

  private constructor(
    private readonly maps: Record<string, BpfMap>,
    private readonly links: Link[],
    /** closes what the maps/links do not: the collection's programs, or nothing after adopt */
    private readonly closeRest: () => void,
    spec: CollectionSpec,
    /** set when the guard's maps and links are pinned there (enforcement outlives close()) */
    readonly pinDir: string | undefined,
  ) {
    const btf: Btf | undefined = spec.btf;
    if (btf === undefined) throw new GuardError("file_guard.o has no BTF: the record layouts come from it");
    this.fileKey = Layout.of(btf, "guard_file_key");
    this.ruleLayout = Layout.of(btf, "guard_rule");
    this.binKey = Layout.of(btf, "guard_bin_key");
    this.event = Layout.of(btf, "guard_event");
    this.binPathKey = Layout.of(btf, "guard_bin_path_key");
    this.binPathSize = structLayout(btf, "guard_bin_path").size;
    this.reader = new RingBufReader(this.map("guard_events"));
  }

  /**
   * Load file_guard.o, attach the chosen programs and exempt this process. With pinDir (a
   * directory on bpffs, created if missing, which must not already hold a guard) every map
   * and link is pinned there, so enforcement survives close() and the agent's exit;
   * FileGuard.adopt(pinDir) takes it over again.
   */
  static open(opts: GuardOptions & { pinDir?: string } = {}): FileGuard {
    const programs = opts.programs ?? TRACEPOINT_FILE_PROGRAMS;
    const wantsOpenExit = programs.includes("guard_sys_exit") || programs.includes("guard_open_exit");
    let choice: OpenExitChoice | undefined;
    if (wantsOpenExit) {
      // "tracepoint" (or naming guard_open_exit) forces the tracepoints even where 32-bit
      // processes could slip past them: only for measuring that gap (test/vm).
      const forceTracepoint = opts.openExit === "tracepoint" || programs.includes("guard_open_exit");
      choice = opts.openExit === "tp_btf" && !programs.includes("guard_open_exit") ? { kind: "tp_btf", reason: "asked for (openExit: tp_btf)" } : chooseOpenExit({ allowCompatGap: forceTracepoint });
      if (programs.includes("guard_open_exit") && choice.kind !== "tracepoint") throw new GuardError(`open file guard: guard_open_exit needs syscall tracepoints: ${choice.reason}`);
    }
    const attachments = attachmentsFor(programs, choice);
    const loaded = [...new Set(attachments.map((a) => a.program))];
    if (opts.pinDir !== undefined && existsSync(opts.pinDir) && readdirSync(opts.pinDir).length > 0) {
      throw new GuardError(`open file guard: ${opts.pinDir} already holds pinned objects (adopt them with FileGuard.adopt)`);
    }
    const spec = loadCollectionSpec(opts.object ?? readObject("file_guard"));
    const replaceMaps: Record<string, BpfMap> = {};
    if (opts.processMap !== undefined) replaceMaps.ward_procs = opts.processMap;
    else if (spec.maps.ward_procs !== undefined) spec.maps.ward_procs.maxEntries = 1; // a stub nobody fills, not 13 MiB of LRU
    const scopeMaps = opts.scopeMaps?.replaceMaps() ?? {};
    Object.assign(replaceMaps, scopeMaps);
    const coll = newCollection(spec, { programs: loaded, replaceMaps });
    const links: Link[] = [];
    let guard: FileGuard | undefined;
    try {
      guard = new FileGuard(coll.maps, links, () => coll.close(), spec, opts.pinDir);
      guard.byPath = opts.processMap !== undefined;
      if (opts.processMap !== undefined) guard.borrowed.add(opts.processMap);
      for (const m of Object.values(scopeMaps)) guard.borrowed.add(m);
      guard.scoped = opts.scopeMaps !== undefined;
      guard.exempt(process.pid);
      for (const pid of opts.exemptPids ?? []) guard.exempt(pid);
      if (choice?.kind === "tp_btf") guard.fallbackReason = choice.reason;
      guard.programs = coll.programs;
      for (const a of attachments) {
        const prog = coll.programs[a.program];
        const pspec = spec.programs[a.program];
        if (prog === undefined || pspec === undefined) throw new GuardError(`file_guard.o has no program ${a.program}`);
        links.push(attachProgram(prog, pspec, a.target !== undefined ? { target: a.target } : {}));
        guard.attached.add(a.program);
        guard.where.set(a.program, [...(guard.where.get(a.program) ?? []), a.target ?? pspec.section]);
      }
      if (opts.pinDir !== undefined) {
        mkdirSync(opts.pinDir, { recursive: true });
        for (const [name, m] of Object.entries(coll.maps)) m.pin(join(opts.pinDir, MAP_PIN_PREFIX + name));
        attachments.forEach((a, i) => links[i]?.pin(join(opts.pinDir ?? "", LINK_PIN_PREFIX + a.pinName)));
      }
      return guard;
    } catch (e) {
      if (guard !== undefined) guard.destroy();
      else coll.close();
      throw e;
    }
  }

  /**
   * Take over a guard pinned by FileGuard.open({ pinDir }) (by this or an earlier agent):
   * enforcement never stopped; the tables are read back so protect/unprotect/addRule go on
   * where they were. The exempt set is reset to this process (and exemptPids): a pinned tgid
   * of a dead agent could be reused by anyone.
   */
  static adopt(pinDir: string, opts: Pick<GuardOptions, "exemptPids" | "object"> = {}): FileGuard {
    const spec = loadCollectionSpec(opts.object ?? readObject("file_guard"));
    const maps: Record<string, BpfMap> = {};
    const links: Link[] = [];
    const linkNames: string[] = [];
    const closeAll = () => {
      for (const l of links) l.close();
      for (const m of Object.values(maps)) m.close();
    };
    try {
      for (const name of Object.keys(spec.maps)) {
        const path = join(pinDir, MAP_PIN_PREFIX + name);
        if (!existsSync(path)) throw new GuardError(`adopt file guard: ${path} is missing`);
        maps[name] = BpfMap.fromPin(path);
      }
      for (const f of readdirSync(pinDir).sort()) if (f.startsWith(LINK_PIN_PREFIX)) links.push(Link.fromPin(join(pinDir, f)));
      linkNames.push(...readdirSync(pinDir).filter((f) => f.startsWith(LINK_PIN_PREFIX)).map((f) => f.slice(LINK_PIN_PREFIX.length)));
      if (links.length === 0) throw new GuardError(`adopt file guard: no pinned links in ${pinDir} (nothing is enforcing)`);
    } catch (e) {
      closeAll();
      throw e;
    }
    // The maps and links are closed by close() through their own lists; nothing else to free.
    const guard = new FileGuard(maps, links, () => {}, spec, pinDir);
    // Pinned with the process sensor's map (the stub has one entry): its path entries still work.
    guard.byPath = (maps.ward_procs?.spec.maxEntries ?? 0) > 1;
    for (const n of linkNames) {
      // link_<program>[@<tracepoint>]: program names have no "@" in them
      const sep = n.indexOf(LINK_PIN_SEPARATOR);
      const program = sep < 0 ? n : n.slice(0, sep);
      guard.attached.add(program);
      const at = sep < 0 ? (spec.programs[program]?.section ?? "pinned") : `syscalls/${n.slice(sep + 1)}`;
      guard.where.set(program, [...(guard.where.get(program) ?? []), at]);
    }
    guard.restoreState();
    const exempt = guard.map("guard_exempt");
    for (const k of [...exempt.keys()]) exempt.delete(k);
    guard.exempt(process.pid);
    for (const pid of opts.exemptPids ?? []) guard.exempt(pid);
    return guard;
  }

  /** Rebuild the userspace view (rule ids, binary keys, protected keys) from the maps. */
  private restoreState(): void {
    for (const [k, v] of this.map("guard_files").entries()) {
      const dv = new DataView(k.buffer, k.byteOffset, k.byteLength);
      this.protectedKeys.set(`${this.fileKey.u32(dv, "dev")}:${this.fileKey.u64(dv, "ino")}`, k);
      const rule = new DataView(v.buffer, v.byteOffset).getUint32(0, true);
      this.nextRule = Math.max(this.nextRule, rule + 1);
    }
    for (const [k, v] of this.map("guard_rules").entries()) {
      const id = new DataView(k.buffer, k.byteOffset).getUint32(0, true);
      const dv = new DataView(v.buffer, v.byteOffset, v.byteLength);
      if (id > 0 && this.ruleLayout.u32(dv, "active") !== 0) this.nextRule = Math.max(this.nextRule, id + 1);
    }
    for (const k of this.map("guard_binaries").keys()) {
      const rule = this.binKey.u32(new DataView(k.buffer, k.byteOffset, k.byteLength), "rule");
      const list = this.ruleBinaries.get(rule) ?? [];
      list.push(k);
      this.ruleBinaries.set(rule, list);
    }
    // Path entries: each goes back under watch; one that appeared meanwhile gets its inode now.
    const byId = new Map<number, string>();
    for (const [k, v] of this.map("guard_bin_names").entries()) {
      const nul = k.indexOf(0);
      const path = decoder.decode(k.subarray(0, nul < 0 ? k.length : nul));
      const id = new DataView(v.buffer, v.byteOffset).getUint32(0, true);
      byId.set(id, path);
      this.pathNames.set(path, { id, refs: 0 });
      this.nextPathId = Math.max(this.nextPathId, id + 1);
    }
    const missing: string[] = [];
    for (const k of this.map("guard_bin_paths").keys()) {
      const dv = new DataView(k.buffer, k.byteOffset, k.byteLength);
      const rule = this.binPathKey.u32(dv, "rule");
      const path = byId.get(this.binPathKey.u32(dv, "path_id"));
      const value = this.map("guard_rules").lookup(this.u32Key(rule));
      if (path === undefined || value === undefined) continue;
      const op = this.ruleLayout.u32(new DataView(value.buffer, value.byteOffset, value.byteLength), "bin_op") === 1 ? "In" : "NotIn";
      const entries = this.ruleEntries.get(rule) ?? [];
      entries.push({ path, op, pathKeys: [path] });
      this.ruleEntries.set(rule, entries);
      const refs = this.rulePathRefs.get(rule) ?? new Map<string, number>();
      refs.set(path, (refs.get(path) ?? 0) + 1);
      this.rulePathRefs.set(rule, refs);
      this.pathNames.get(path)!.refs++;
      missing.push(path);
    }
    for (const p of missing) this.watcher().add(p);
  }

  /**
   * What is attached where, for status and explain: program name -> attach points. The
   * open-family check shows up as guard_open_exit (per-syscall tracepoints) or
   * guard_sys_exit (tp_btf/sys_exit, the fallback).
   */
  mechanisms(): Record<string, string[]> {
    return Object.fromEntries([...this.where].map(([k, v]) => [k, [...v]]));
  }

  /** Why the open-family check runs on tp_btf/sys_exit instead of the tracepoints (undefined: it does not). */
  openExitFallback(): string | undefined {
    return this.fallbackReason;
  }

  /**
   * How often each loaded program ran and its total run time, as the kernel counts them
   * (only while kernel.bpf_stats_enabled is 1; zeros otherwise). Empty after adopt(); not
   * callable after close().
   */
  programRuns(): Record<string, { runCnt: bigint; runTimeNs: bigint }> {
    const out: Record<string, { runCnt: bigint; runTimeNs: bigint }> = {};
    for (const [name, p] of Object.entries(this.programs)) {
      const info = p.info();
      out[name] = { runCnt: info.runCnt, runTimeNs: info.runTimeNs };
    }
    return out;
  }

  private map(name: string): BpfMap {
    const m = this.maps[name];
    if (m === undefined) throw new GuardError(`file_guard.o has no map ${name}`);
    return m;
  }

  private u32Key(n: number): Uint8Array {
    const k = new Uint8Array(4);
    new DataView(k.buffer).setUint32(0, n, true);
    return k;
  }

  /** A tgid that no rule may kill or deny (the agent, the test runner). */
  exempt(pid: number): void {
    this.map("guard_exempt").update(this.u32Key(pid), this.u32Key(1));
  }

  unexempt(pid: number): void {
    this.map("guard_exempt").delete(this.u32Key(pid));
  }

  private binKeyOf(rule: number, id: BinaryIdentity): Uint8Array {
    const k = new Uint8Array(this.binKey.size);
    const v = new DataView(k.buffer);
    this.binKey.setU32(v, "rule", rule);
    this.binKey.setU32(v, "dev", id.dev);
    this.binKey.setU64(v, "ino", id.ino);
    return k;
  }

  private pathKeyOf(rule: number, pathId: number): Uint8Array {
    const k = new Uint8Array(this.binPathKey.size);
    const v = new DataView(k.buffer);
    this.binPathKey.setU32(v, "rule", rule);
    this.binPathKey.setU32(v, "path_id", pathId);
    return k;
  }

  /** Key (rule, path) in guard_bin_paths, interning the path; counted per rule. */
  private addPathKey(rule: number, path: string): void {
    const refs = this.rulePathRefs.get(rule) ?? new Map<string, number>();
    this.rulePathRefs.set(rule, refs);
    const n = refs.get(path) ?? 0;
    refs.set(path, n + 1);
    if (n > 0) return;
    let name = this.pathNames.get(path);
    if (name === undefined) {
      name = { id: this.nextPathId++, refs: 0 };
      this.map("guard_bin_names").update(this.nameKeyOf(path), this.u32Key(name.id));
      this.pathNames.set(path, name);
    }
    name.refs++;
    this.map("guard_bin_paths").update(this.pathKeyOf(rule, name.id), this.u32Key(1));
  }

  private dropPathKey(rule: number, path: string): void {
    const refs = this.rulePathRefs.get(rule);
    const n = refs?.get(path) ?? 0;
    if (refs === undefined || n === 0) return;
    if (n > 1) {
      refs.set(path, n - 1);
      return;
    }
    refs.delete(path);
    this.unkeyPath(rule, path);
  }

  /** Removes (rule, path) from guard_bin_paths and drops one use of the interned path: the last takes its guard_bin_names entry. */
  private unkeyPath(rule: number, path: string): void {
    const name = this.pathNames.get(path);
    if (name === undefined) return;
    this.map("guard_bin_paths").delete(this.pathKeyOf(rule, name.id));
    if (--name.refs > 0) return;
    this.pathNames.delete(path);
    this.map("guard_bin_names").delete(this.nameKeyOf(path));
  }

  /** guard_bin_names key: the path zero padded, as ward_proc.bin holds it. */
  private nameKeyOf(path: string): Uint8Array {
    const key = new Uint8Array(this.binPathSize);
    key.set(encoder.encode(path));
    return key;
  }

  /** Rewrite bin_paths of a live rule after its path keys changed (one atomic update). */
  private syncRulePaths(rule: number): void {
    const value = this.map("guard_rules").lookup(this.u32Key(rule));
    if (value === undefined) return;
    const v = new DataView(value.buffer, value.byteOffset, value.byteLength);
    this.ruleLayout.setU32(v, "bin_paths", this.rulePathRefs.get(rule)?.size ?? 0);
    if (this.ruleLayout.u32(v, "active") !== 0) this.map("guard_rules").update(this.u32Key(rule), value);
  }

  private watcher(): BinaryWatch {
    this.watch ??= new BinaryWatch(
      (path, id) => this.appeared(path, id),
      (path, err) => {
        for (const es of this.ruleEntries.values()) for (const e of es) if (e.path === path) e.error = (err as Error).message;
      },
    );
    return this.watch;
  }

  /** A watched entry exists now: its inode joins the rule's set; NotIn drops the path match. */
  private appeared(path: string, id: BinaryIdentity): void {
    for (const [rule, entries] of this.ruleEntries) {
      for (const e of entries) {
        if (e.path !== path || e.inode !== undefined) continue;
        const k = this.binKeyOf(rule, id);
        // The inode goes in before the path comes out: the binary is never briefly unlisted.
        this.map("guard_binaries").update(k, this.u32Key(1));
        const list = this.ruleBinaries.get(rule) ?? [];
        if (!list.some((x) => x.join(",") === k.join(","))) list.push(k);
        this.ruleBinaries.set(rule, list);
        e.inode = id;
        delete e.error;
        if (e.op === "NotIn") {
          for (const p of e.pathKeys) this.dropPathKey(rule, p);
          e.pathKeys = [];
          this.syncRulePaths(rule);
        }
      }
    }
  }

  /** The matchBinaries entries of a rule as one would write them now (stat at this moment). */
  private planEntries(binaries: GuardRule["binaries"]): BinaryEntry[] {
    if (binaries === undefined) return [];
    const keep = this.binPathSize - 1;
    return [...new Set(binaries.paths.map(normalizeBinaryPath))].map((path) => {
      let inode: BinaryIdentity | undefined;
      try {
        inode = presentIdentity(path);
      } catch (e) {
        throw new GuardError(`matchBinaries ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (cannot tell whether it exists)`);
      }
      const e: BinaryEntry = { path, op: binaries.op, pathKeys: [] };
      if (inode !== undefined) e.inode = inode;
      if (inode !== undefined && binaries.op === "NotIn") return e;
      if (!this.byPath) {
        if (inode === undefined) throw new GuardError(`matchBinaries ${path}: ENOENT: it does not exist, and matching it by path until it appears needs the process sensor's map (FileGuard.open({ processMap }))`);
        return e; // In by inode only, as without the process sensor
      }
      const forms = [...new Set([path, resolvedForm(path)])];
      const long = forms.find((f) => encoder.encode(f).length > keep);
      if (long !== undefined) {
        if (inode === undefined) throw new GuardError(`matchBinaries ${path}: it does not exist, and ${long} is longer than ${keep} bytes, the most of a binary's path the process map keeps: it cannot be matched by path`);
        return e;
      }
      e.pathKeys = forms;
      return e;
    });
  }

  private writeRule(id: number, rule: GuardRule, defaultHooks: GuardHook[]): void {
    if ((rule.scope ?? 0) !== 0 && !this.scoped) throw new GuardError("rule has a workload scope but the guard was opened without the agent's scope maps (GuardOptions.scopeMaps)");
    // New binary keys go in before the old ones come out and before the rule value changes,
    // so an allowed binary is never briefly missing from a live NotIn rule.
    const entries = this.planEntries(rule.binaries);
    const bins = this.map("guard_binaries");
    const keys: Uint8Array[] = [];
    for (const e of entries) {
      if (e.inode === undefined) continue;
      const k = this.binKeyOf(id, e.inode);
      bins.update(k, this.u32Key(1));
      keys.push(k);
    }
    const oldEntries = this.ruleEntries.get(id) ?? [];
    const oldRefs = this.rulePathRefs.get(id);
    this.rulePathRefs.delete(id);
    for (const e of entries) for (const p of e.pathKeys) this.addPathKey(id, p);
    const fresh = new Set(keys.map((k) => k.join(",")));
    for (const stale of this.ruleBinaries.get(id) ?? []) if (!fresh.has(stale.join(","))) bins.delete(stale);
    this.ruleBinaries.set(id, keys);
    const value = new Uint8Array(this.ruleLayout.size);
    const v = new DataView(value.buffer);
    const binOp = rule.binaries === undefined ? 0 : rule.binaries.op === "In" ? 1 : 2;
    this.ruleLayout.setU32(v, "active", 1);
    this.ruleLayout.setU32(v, "action", GUARD_ACTIONS.indexOf(rule.action));
    this.ruleLayout.setU32(v, "bin_op", binOp);
    this.ruleLayout.setU32(v, "hooks", hookMask(rule.hooks ?? defaultHooks));
    this.ruleLayout.setU32(v, "bin_paths", this.rulePathRefs.get(id)?.size ?? 0);
    if ((rule.scope ?? 0) !== 0) this.ruleLayout.setU32(v, "scope", rule.scope!);
    this.map("guard_rules").update(this.u32Key(id), value);
    // The old path keys go only now, and only those the new rule does not key again.
    if (oldRefs !== undefined) {
      const now = this.rulePathRefs.get(id) ?? new Map<string, number>();
      for (const p of oldRefs.keys()) {
        if (!now.has(p)) this.unkeyPath(id, p);
      }
    }
    this.ruleEntries.set(id, entries);
    // Watches: every entry still missing, by any rule; the ones nothing waits for any more go.
    const waited = new Set<string>();
    for (const es of this.ruleEntries.values()) for (const e of es) if (e.inode === undefined) waited.add(e.path);
    for (const e of oldEntries) if (e.inode === undefined && !waited.has(e.path)) this.watch?.remove(e.path);
    for (const e of entries) if (e.inode === undefined) this.watcher().add(e.path);
  }

  /**
   * How each matchBinaries entry of a rule is matched now (pending watch events are read
   * first, so a binary that appeared shows as inode-matched at once).
   */
  binaryStatus(rule: number): BinaryEntryStatus[] {
    this.watch?.refresh();
    return (this.ruleEntries.get(rule) ?? []).map((e) => {
      const s: Omit<BinaryEntryStatus, "text"> = e.inode !== undefined
        ? { path: e.path, op: e.op, match: "inode", dev: e.inode.dev, ino: e.inode.ino, ...(e.pathKeys.length > 0 ? { alsoPath: true } : {}) }
        : { path: e.path, op: e.op, match: "path", watching: this.watch?.watching(e.path) ?? nearestDirectory(e.path), ...(e.error !== undefined ? { error: e.error } : {}) };
      return { ...s, text: binaryMatchText(s) };
    });
  }

  /** Entries in the kernel's binary tables: inode keys, (rule, path) keys, interned paths. */
  binaryTables(): { inodes: number; paths: number; names: number } {
    const n = (m: string): number => [...this.map(m).keys()].length;
    return { inodes: n("guard_binaries"), paths: n("guard_bin_paths"), names: n("guard_bin_names") };
  }

  /** inotify watches held for binaries that do not exist yet (0 once none is missing). */
  binaryWatches(): number {
    return this.watch?.watchCount() ?? 0;
  }

  /** Define a file rule; returns its id for protect(). */
  addRule(rule: GuardRule): number {
    if (this.nextRule >= MAX_RULES) throw new GuardError(`no room for more than ${MAX_RULES - 1} guard rules`);
    const id = this.nextRule++;
    this.writeRule(id, rule, FILE_HOOKS);
    return id;
  }

  /** Turn a rule off without forgetting its files (disable in the policy sense). */
  disableRule(id: number): void {
    this.map("guard_rules").update(this.u32Key(id), new Uint8Array(this.ruleLayout.size));
  }

  /** The module-load rule (init_module/finit_module); undefined turns it off. */
  setModuleRule(rule: GuardRule | undefined): void {
    if (rule !== undefined && !MODULE_PROGRAMS.some((p) => this.attached.has(p))) {
      throw new GuardError("set module rule: no module program is attached (open the guard with TRACEPOINT_PROGRAMS or LSM_PROGRAMS)");
    }
    if (rule === undefined) this.disableRule(MODULE_RULE);
    else this.writeRule(MODULE_RULE, rule, MODULE_HOOKS);
  }

  /**
   * Protect the file at path (resolved: a symlink protects its target) under a rule. A
   * GuardRule defines a new rule; a number reuses one. Returns the rule id.
   */
  protect(path: string, rule: GuardRule | number): number {
    const id = typeof rule === "number" ? rule : this.addRule(rule);
    const { dev, ino } = fileIdentity(path);
    const key = new Uint8Array(this.fileKey.size);
    const v = new DataView(key.buffer);
    this.fileKey.setU32(v, "dev", dev);
    this.fileKey.setU64(v, "ino", ino);
    this.map("guard_files").update(key, this.u32Key(id));
    this.protectedKeys.set(`${dev}:${ino}`, key);
    return id;
  }

  /** Stop protecting the file at path; false when it was not protected. */
  unprotect(path: string): boolean {
    const { dev, ino } = fileIdentity(path);
    const name = `${dev}:${ino}`;
    const key = this.protectedKeys.get(name);
    this.protectedKeys.delete(name);
    return key !== undefined && this.map("guard_files").delete(key);
  }

  private decode(v: DataView): GuardEvent {
    const e = this.event;
    const comm = e.field("comm");
    const raw = new Uint8Array(v.buffer, v.byteOffset + comm.offset, comm.size);
    const nul = raw.indexOf(0);
    return {
      timeNs: e.u64(v, "time_ns"),
      pid: e.u32(v, "pid"),
      tgid: e.u32(v, "tgid"),
      rule: e.u32(v, "rule"),
      hook: GUARD_HOOKS[e.u32(v, "hook")] || "open",
      action: GUARD_ACTIONS[e.u32(v, "action")] ?? "report",
      result: e.s32(v, "result"),
      dev: e.u32(v, "dev"),
      ino: e.u64(v, "ino"),
      exeDev: e.u32(v, "exe_dev"),
      exeIno: e.u64(v, "exe_ino"),
      signalErr: e.s32(v, "signal_err"),
      comm: decoder.decode(raw.subarray(0, nul < 0 ? raw.length : nul)),
    };
  }

  /** Records ready now (no waiting). */
  events(): GuardEvent[] {
    const out: GuardEvent[] = [];
    this.reader.drain((rec) => out.push(this.decode(rec)));
    return out;
  }

  /** Wait up to timeoutMs for records, then return what is ready. */
  async nextEvents(timeoutMs: number): Promise<GuardEvent[]> {
    const ready = this.events();
    if (ready.length > 0) return ready;
    await this.reader.wait(timeoutMs);
    return this.events();
  }

  /** Per-CPU counters summed over CPUs. */
  counters(): GuardCounters {
    const m = this.map("guard_counters");
    const sum = (idx: number): bigint => {
      const v = m.lookup(this.u32Key(idx));
      return v === undefined ? 0n : sumPerCpuU64(v);
    };
    return {
      checks: sum(0),
      matches: sum(1),
      kills: sum(2),
      denies: sum(3),
      exempt: sum(4),
      ringbufDrops: sum(5),
      readErrors: sum(6),
    };
  }

  /**
   * Release this process's hold. Unpinned: every program is detached and enforcement stops.
   * Pinned: the pins keep the programs attached and the tables alive (adopt() resumes).
   */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.watch?.close();
    for (const l of this.links.splice(0)) l.close();
    this.reader.close();
    for (const m of Object.values(this.maps)) if (!this.borrowed.has(m)) m.close();
    this.closeRest();
  }

  /** Kernel id of one of the guard's maps (ward_procs: whether it is the process sensor's). */
  mapId(name: string): number {
    return this.map(name).info().id;
  }

  /**
   * Remove the pins but keep this process's hold: the guard enforces until close(), as an
   * unpinned one does (an agent without --keep-sensors-on-exit that adopted it).
   */
  unpin(): void {
    if (this.pinDir !== undefined && existsSync(this.pinDir)) removePins(this.pinDir);
  }

  /** Remove the pins (if any) and close: enforcement stops whatever the guard was opened with. */
  destroy(): void {
    if (this.pinDir !== undefined && existsSync(this.pinDir)) {
      for (const f of readdirSync(this.pinDir)) {
        if (f.startsWith(MAP_PIN_PREFIX) || f.startsWith(LINK_PIN_PREFIX)) unpin(join(this.pinDir, f));
      }
      rmdirSync(this.pinDir);
    }
    this.close();
  }
}
