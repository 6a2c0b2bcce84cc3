// The fanotify backend: file open and exec rules answered before the open completes.
//
// One fanotify group (FAN_CLASS_CONTENT) per policy attachment, with FAN_OPEN_PERM /
// FAN_OPEN_EXEC_PERM marks on exactly the inodes the policy names. The kernel holds every
// open of a marked inode until the group answers; other files never reach us (an inode
// without marks costs the open nothing). The answers come from a dedicated Worker thread so
// a busy agent main thread (event decoding, the API) never delays a decision:
// - the opener's executable is /proc/PID/exe (its inode, and its path for matchBinaries
//   entries that do not exist yet), read through the event's pid and, where a rule kills or
//   is engine-decided, verified against the event's pidfd (FAN_REPORT_PIDFD): the pidfd
//   still refers to a live process after the read, so the pid was not reused in between
//   (FanotifyGuard.needsPidfd says why the other rules need no pidfd);
// - engine-decided rules (policy engine's evaluate()) read the opener's and its ancestors'
//   exec records from the process sensor's kernel map (ward_procs) when the agent has it,
//   /proc only for a process it lacks (counted), and the live namespaces, capabilities and
//   parent chain from /proc (the kernel hooks read the current task too);
// - Override answers FAN_DENY (the open fails with EPERM and never happened: O_TRUNC does
//   not truncate); Sigkill sends SIGKILL through the pidfd first, then answers FAN_DENY, so
//   the process dies without the file open;
// - a decision that cannot be made (the executable unreadable, the pidfd stale) or whose
//   event waited in our batch longer than the bound follows the policy's fail mode
//   (default deny) and is counted;
// - the agent's own tgid (and the exempt pids) are always allowed.
// Closing the group (normal exit, or the kernel on SIGKILL of the agent) allows every
// pending event: nothing hangs, and enforcement ends with the group (explain says so).
import { readdirSync, statSync } from "node:fs";
import type { EngineEvent } from "../policy/engine-wire.ts";
import type { TracingPolicy } from "../policy/types.ts";
import { cgroupV2Mount } from "../workloads/cgroup-identity.ts";
import { procMapLayout, type ProcMapLayout } from "./proc-map-layout.ts";
import { NS_PER_TICK } from "./process-procfs.ts";
import { resolvedForm } from "./binary-watch.ts";
import { SyscallError, dup as dupFd, eventFd, eventFdSignal, close as closeSysFd } from "../bpf/sys.ts";
import {
  FAN_CLASS_CONTENT, FAN_CLASS_NOTIF, FAN_CLOEXEC, FAN_CREATE, FAN_EVENT_ON_CHILD, FAN_MOVED_TO, FAN_ONDIR, FAN_REPORT_DFID_NAME, FAN_MARK_ADD, FAN_MARK_ONLYDIR, FAN_NONBLOCK, FAN_OPEN_EXEC_PERM, FAN_OPEN_PERM, FAN_REPORT_PIDFD,
  FAN_UNLIMITED_MARKS, FAN_UNLIMITED_QUEUE, O_CLOEXEC, O_LARGEFILE, O_RDONLY, SYS_pidfd_send_signal, closeFd,
  fanotifyInit, fanotifyMark, fanotifySupport,
} from "./fanotify-sys.ts";

export class FanotifyError extends Error {
  override name = "FanotifyError";
}

export type FanotifyAction = "report" | "deny" | "kill";
/** Which permission events a rule answers: opens (security_file_open, exec's open included) or execs only (security_bprm_check). */
export type FanotifyTarget = "open" | "exec";

export interface FanotifyRule {
  /** What a match does (monitor mode: "report"). */
  action: FanotifyAction;
  /** Post an event on a match. */
  post: boolean;
  /** matchBinaries: In = only these binaries match, NotIn = every binary but these. */
  binaries?: { op: "In" | "NotIn"; paths: string[] };
  target: FanotifyTarget;
  /** Decided by the policy engine's evaluate() (setEngine()): the rule holds when the
   * engine's matching selector of hook `hookIndex` is `selector` (binaries is then unused). */
  engine?: { hookIndex: number; selector: number; fileSlot: number };
}

/** What the engine decides on for engine rules: the policy, compiled in the decision thread. */
export interface FanotifyEngine {
  policy: TracingPolicy;
  mode: "enforce" | "monitor";
}

/** The evaluator the engine decision thread (fanotify-worker.ts) hands the loop. */
export interface WorkerEngine {
  /** Compiles the policy; returns a function giving the matching selector of a hook for an event (-1: none). */
  prepare(e: FanotifyEngine): (hookIndex: number, event: EngineEvent) => number;
}

export interface FanotifyOptions {
  /** tgids always allowed besides this process. */
  exemptPids?: number[];
  /** How long a decision may take before the fail mode answers (ms, default 100). */
  answerMs?: number;
  /** What an undecidable or late event gets (default "deny"). */
  failMode?: "allow" | "deny";
  /** The decision thread's scheduling: "realtime" (default: SCHED_FIFO, else nice -20) or
   * "default" (measurements of what real-time scheduling buys). */
  scheduling?: "realtime" | "default";
  /** Account the decision thread's CPU time per phase (counters cpu*Us; a few clock reads per decision). */
  profile?: boolean;
  /**
   * Posted matches the decision thread may have on their way to the main thread (sent, not
   * yet handed to the onMatch listeners); a Post match beyond it is dropped and counted
   * (postDropped), the decision itself is made and answered as always. Default
   * MAX_QUEUED_POSTS.
   */
  maxQueuedPosts?: number;
  /** Decisions after which the decision thread, once a second passes without events, runs a
   * full collection of its own heap (default 50,000; 0: never). */
  idleCollectAfter?: number;
  /**
   * The policy's workload scope: openers outside it are allowed without looking further.
   * Membership is read from the kernel's scope maps (the same set the BPF programs check),
   * for the opener's cgroup and its ancestors (src/workloads/scope-maps.ts).
   */
  scope?: { id: number; maps: { members: { fd: { raw: number } }; levels: { fd: { raw: number } } }; cgroupRoot?: string };
  /**
   * The process sensor's kernel process map (ward_procs): engine rules read the opener's and
   * its ancestors' exec records there (binary, namespaces and capabilities at exec), as the
   * kernel hooks do. Without it they read /proc, and selectors with matchNamespaceChanges or
   * matchCapabilityChanges (which compare with the exec record) are refused at start().
   */
  processMap?: { fd: { raw: number } };
}

/** What the engine rules' selectors read of the opener, so a decision reads nothing more. */
export interface EngineNeeds {
  /** the ppid chain (matchParentBinaries, matchBinaries followChildren, matchPIDs followForks) */
  ancestors: boolean;
  /** /proc/PID/status: capabilities now, the pid in its namespace (matchCapabilities*, matchPIDs isNamespacePID) */
  status: boolean;
  /** the namespaces now (matchNamespaces*, isNamespaceCapability) */
  ns: boolean;
  /** the exec record's namespaces and capabilities (matchNamespaceChanges, matchCapabilityChanges) */
  atExec: boolean;
}

/** What the selectors of every hook of `policy` read (conservative: hooks fanotify does not hold count too). */
export function engineNeeds(policy: TracingPolicy): EngineNeeds {
  const out: EngineNeeds = { ancestors: false, status: false, ns: false, atExec: false };
  const hooks = [...policy.spec.kprobes, ...policy.spec.fentries, ...policy.spec.tracepoints, ...policy.spec.uprobes, ...policy.spec.usdts, ...policy.spec.lsmhooks];
  for (const h of hooks) {
    for (const sel of h.selectors) {
      if (sel.matchParentBinaries.length > 0 || sel.matchBinaries.some((b) => b.followChildren) || sel.matchPIDs.some((p) => p.followForks)) out.ancestors = true;
      if (sel.matchPIDs.some((p) => p.isNamespacePID)) out.status = true;
      if (sel.matchCapabilities.length > 0 || sel.matchCapabilityChanges.length > 0) {
        out.status = true;
        out.ns = true; // isNamespaceCapability compares the user namespace with the host's
      }
      if (sel.matchNamespaces.length > 0 || sel.matchNamespaceChanges.length > 0) out.ns = true;
      if (sel.matchNamespaceChanges.length > 0 || sel.matchCapabilityChanges.length > 0) out.atExec = true;
    }
  }
  return out;
}

export interface FanotifyMatch {
  rule: number;
  pid: number;
  action: FanotifyAction;
  /** the opened file (st_dev as stat reports it, ino) */
  dev: bigint;
  ino: bigint;
  /** the opener's executable inode, 0n when unknown */
  exeIno: bigint;
  exe: string;
  /** the opened file's path as the kernel resolved it ("" when unknown) */
  path: string;
  /** CLOCK_BOOTTIME ns when the decision was made */
  timeNs: bigint;
  /** "exec" for FAN_OPEN_EXEC_PERM */
  exec: boolean;
}

export interface FanotifyCounters {
  /** permission events read */
  events: number;
  allowed: number;
  denied: number;
  killed: number;
  /** allowed because the opener is the agent or exempt */
  exempt: number;
  /** answered by the fail mode because the decision came later than the bound */
  timeouts: number;
  /** answered by the fail mode because the opener could not be identified */
  undecided: number;
  /** the slowest answer, from reading the batch to writing the response (µs) */
  maxAnswerUs: number;
  /** sum of answer times (µs), for the mean */
  totalAnswerUs: number;
  /** allowed because the opener is outside the policy's workload scope */
  outOfScope: number;
  /** how the decision thread is scheduled: 1 SCHED_FIFO, 2 nice -20, 3 default (0: not started) */
  scheduling: number;
  /** directories created (or moved) under a Prefix tree after the policy, and marked */
  newDirs: number;
  /** a new directory that could not be marked (gone before its mark, unreadable, over the limit) */
  newDirsMissed: number;
  /** the slowest read-to-mark time of a new directory (µs, from reading its FAN_CREATE) */
  maxDirMarkUs: number;
  /** engine decisions whose opener's binary (and exec record) came from the kernel process map */
  mapFacts: number;
  /** processes (openers or ancestors) the process map had no entry for, read from /proc instead */
  procFallbacks: number;
  /** Post matches not sent because maxQueuedPosts were still on their way to the main thread */
  postDropped: number;
  /** full collections of the decision thread's own heap, once idle after a burst */
  idleCollections: number;
  /** FanotifyOptions.profile: the decision thread's CPU time (µs, CLOCK_THREAD_CPUTIME_ID) in
   * epoll_wait, in read (the kernel makes the event's file fd and pidfd there), deciding,
   * writing the answer, and closing the two fds; 0 without profile */
  cpuWaitUs: number;
  cpuReadUs: number;
  cpuDecideUs: number;
  cpuAnswerUs: number;
  cpuCloseUs: number;
}

const COUNTER_NAMES: (keyof FanotifyCounters)[] = ["events", "allowed", "denied", "killed", "exempt", "timeouts", "undecided", "maxAnswerUs", "totalAnswerUs", "outOfScope", "scheduling", "newDirs", "newDirsMissed", "maxDirMarkUs", "mapFacts", "procFallbacks", "cpuWaitUs", "cpuReadUs", "cpuDecideUs", "cpuAnswerUs", "cpuCloseUs", "postDropped", "idleCollections"];

/**
 * The default bound on posted matches in flight to the main thread (FanotifyOptions
 * maxQueuedPosts). The decision thread runs real-time and answers an open in tens of
 * microseconds; the main thread turns each match into an exported event, which costs more
 * and waits for the CPU like any other task. On a busy host it falls behind, and without a
 * bound the difference queued up as messages: in an open storm with the main thread sharing
 * its CPU, 129,000 matches (about 1.3 KB each, 170 MiB) were waiting, and the pages stayed
 * with the allocator after they were read. 8,192 matches is about 10 MiB, as much as the
 * process sensor's 8 MiB ring buffer holds, and over half a second of the main thread's work.
 */
export const MAX_QUEUED_POSTS = 8192;
const POST_DROPPED = COUNTER_NAMES.indexOf("postDropped");

/** The message that starts the worker (structured-cloned; the counters buffer is shared). */
interface WorkerInit {
  fd: number;
  wakeFd: number;
  /** the notification group (FAN_REPORT_DFID_NAME) watching directory creation under the
   * Prefix trees, -1 when no rule has a prefix */
  notifyFd: number;
  /** the Prefix roots (one fd per filesystem for open_by_handle_at) */
  roots: string[];
  /** directory marks left for trees that grow (MAX_PREFIX_ENTRIES minus what start marked) */
  dirBudget: number;
  selfPid: number;
  exempt: number[];
  /** "dev:ino" -> rule id (an inode may have several, first match wins, in selector order) */
  files: [string, number][];
  /** directory prefixes ("/dir/"), for files created after the policy in a marked directory */
  prefixes: { id: number; prefix: string }[];
  /**
   * keys: "dev:ino" of the matchBinaries entries that exist; paths: resolved paths matched
   * against the opener's /proc/PID/exe (In entries always, NotIn ones while missing);
   * pending: entries missing at start, stat'ed at each decision until they exist.
   */
  rules: { id: number; action: FanotifyAction; post: boolean; op: 0 | 1 | 2; keys: string[]; paths: string[]; pending: string[]; exec: boolean; engine?: { hookIndex: number; selector: number; fileSlot: number } }[];
  /** the policy engine rules decide on (engine decision thread only) */
  engine?: FanotifyEngine;
  /** "dev:ino" -> the path the policy named, the file argument engine rules evaluate */
  names: [string, string][];
  answerMs: number;
  failDeny: boolean;
  realtime: boolean;
  pidfd: boolean;
  counters: SharedArrayBuffer;
  control: SharedArrayBuffer;
  sys: { pidfdSendSignal: number; bpf: number };
  /** the workload scope: its id, the scope maps' fds (shared by the process), the cgroup v2 root */
  scope?: { id: number; membersFd: number; levelsFd: number; root: string };
  /** the kernel process map engine rules read (its fd, shared by the process), its value layout, ns per /proc tick */
  procs?: { fd: number; layout: ProcMapLayout; nsPerTick: string };
  /** what the engine rules read of the opener */
  needs?: EngineNeeds;
  profile: boolean;
  /** FanotifyOptions.maxQueuedPosts */
  maxQueued: number;
  /** decisions after which a second without events collects the thread's heap (0: never) */
  idleGcAfter: number;
}

interface WorkerMatch {
  rule: number;
  pid: number;
  action: FanotifyAction;
  dev: string;
  ino: string;
  exeIno: string;
  exe: string;
  path: string;
  timeNs: string;
  exec: boolean;
}

/**
 * The worker's whole program. It is stringified into the worker's source (so the compiled
 * single binary needs no extra file): it must not reference anything outside itself; the
 * FFI module and the worker scope come in as arguments.
 */
export function fanotifyWorkerMain(ffi: typeof import("bun:ffi"), fs: typeof import("node:fs"), scope: { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void }, engine?: WorkerEngine): void {
  const libc = ffi.dlopen("libc.so.6", {
    syscall: { args: ["i64", "i64", "i64", "i64", "i64", "i64"], returns: ffi.FFIType.i64_fast },
    read: { args: ["i32", "ptr", "u64"], returns: ffi.FFIType.i64_fast },
    write: { args: ["i32", "ptr", "u64"], returns: ffi.FFIType.i64_fast },
    close: { args: ["i32"], returns: "i32" },
    readlink: { args: ["ptr", "ptr", "u64"], returns: ffi.FFIType.i64_fast },
    epoll_create1: { args: ["i32"], returns: "i32" },
    epoll_ctl: { args: ["i32", "i32", "i32", "ptr"], returns: "i32" },
    epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" },
    clock_gettime: { args: ["i32", "ptr"], returns: "i32" },
    sched_yield: { args: [], returns: "i32" },
    sched_setscheduler: { args: ["i32", "i32", "ptr"], returns: "i32" },
    setpriority: { args: ["i32", "u32", "i32"], returns: "i32" },
    // Buffers go to libc as typed arrays, resolved at each call: a pointer taken once with
    // ptr() went stale under load (the engine moved the small buffer and the kernel wrote
    // into the old copy, so a decision read the previous opener's executable).
    fstat: { args: ["i32", "ptr"], returns: "i32" },
    fstatat: { args: ["i32", "ptr", "ptr", "i32"], returns: "i32" },
    fanotify_mark: { args: ["i32", "u32", "u64", "i32", "ptr"], returns: "i32" },
    open: { args: ["ptr", "i32"], returns: "i32" },
    open_by_handle_at: { args: ["i32", "ptr", "i32"], returns: "i32" },
    fstatfs: { args: ["i32", "ptr"], returns: "i32" },
  }).symbols;
  scope.onmessage = (msg: MessageEvent) => {
    const init = msg.data as WorkerInit;
    scope.onmessage = null;
    const counters = new Float64Array(init.counters);
    const control = new Int32Array(init.control);
    // [0]: stop asked (main), [1]: left the loop (worker), [2]: the worker has the group fd
    Atomics.store(control, 2, 1);
    const leave = (): void => {
      Atomics.store(control, 1, 1);
      Atomics.notify(control, 1);
    };
    if (Atomics.load(control, 0) !== 0) {
      leave();
      return;
    }
    // The decision thread runs SCHED_FIFO (priority 1, the lowest real-time one): an answer
    // wakes its opener, and under CFS every woken opener preempted this thread, so with
    // 1,000 openers held at once it ran at a thousandth of a CPU and answers took hundreds
    // of ms. As a real-time thread it keeps the CPU while events are queued and sleeps in
    // epoll_wait otherwise (it does not spin, see SPIN_MS). Where
    // real-time scheduling is refused (no CAP_SYS_NICE, RT throttled to 0), nice -20.
    // [1, 2, 3] in counters[10]: SCHED_FIFO, nice -20, neither.
    if (!init.realtime) counters[10] = 3;
    else if (Number(libc.sched_setscheduler(0, 1, new Int32Array([1]))) === 0) counters[10] = 1;
    else if (Number(libc.setpriority(0, 0, -20)) === 0) counters[10] = 2;
    else counters[10] = 3;
    const exempt = new Set<number>([init.selfPid, ...init.exempt]);
    const files = new Map<string, number[]>();
    for (const [k, id] of init.files) files.set(k, [...(files.get(k) ?? []), id]);
    const prefixes = init.prefixes;
    // A group that marks exactly one inode (the talk's policy) knows which file every event
    // is for: no fstat per decision.
    const onlyKey = files.size === 1 && prefixes.length === 0 ? [...files.keys()][0] : undefined;
    const only = onlyKey === undefined ? undefined : { dev: BigInt(onlyKey.slice(0, onlyKey.indexOf(":"))), ino: BigInt(onlyKey.slice(onlyKey.indexOf(":") + 1)), ids: files.get(onlyKey) };
    // "dev:ino" keys are built from numbers, not BigInts (a BigInt template costs about twice
    // as much per decision); the decimal text is the same below 2^53, which device numbers
    // and inode numbers stay under, so keys made with BigInts by the main thread still match.
    const u64 = (v: DataView, at: number): number => v.getUint32(at, true) + v.getUint32(at + 4, true) * 4294967296;
    const enc = new TextEncoder();
    const rules = new Map<number, { action: FanotifyAction; post: boolean; op: number; keys: Set<string>; paths: Set<string>; pending: { path: string; cpath: Uint8Array }[]; exec: boolean; engine?: { hookIndex: number; selector: number; fileSlot: number } }>();
    for (const r of init.rules) {
      const pending = r.pending.map((path) => ({ path, cpath: enc.encode(`${path}\0`) }));
      rules.set(r.id, { action: r.action, post: r.post, op: r.op, keys: new Set(r.keys), paths: new Set(r.paths), pending, exec: r.exec, ...(r.engine ? { engine: r.engine } : {}) });
    }
    // ---- engine rules: the policy engine's evaluate() on the opener as the kernel hooks see
    // it. Its binary and its ancestors' are their exec records in the kernel process map
    // (ward_procs, the map the kernel sensors match binaries on), with the namespaces and
    // capabilities recorded at exec (the *Changes matchers compare with those); the
    // namespaces and capabilities now, the pid in its namespace and the parent chain are the
    // live ones (/proc: the kernel hooks read the current task too, so a process that
    // unshares after exec is judged on where it is, not where it started). A process the map
    // has no entry for (started before the agent and missed by the seed, or aged out of the
    // LRU) is read from /proc (/proc/PID/exe) and counted. Everything is read through the
    // event's pid and verified afterwards: the pidfd still refers to a live process (so the
    // pid was not reused) and each ancestor is still the parent of the one below it (a dead
    // parent's pid could have been reused, but its child would have been reparented).
    const evaluateHook = init.engine !== undefined && engine !== undefined ? engine.prepare(init.engine) : undefined;
    const names = new Map<string, string>(init.names);
    const NS = [["Uts", "uts"], ["Ipc", "ipc"], ["Mnt", "mnt"], ["Pid", "pid"], ["PidForChildren", "pid_for_children"], ["Net", "net"], ["Time", "time"], ["TimeForChildren", "time_for_children"], ["Cgroup", "cgroup"], ["User", "user"]] as const;
    const nsOf = (pid: number): Record<string, number> => {
      const out: Record<string, number> = {};
      for (const [k, f] of NS) {
        try {
          const m = /\[(\d+)\]/.exec(fs.readlinkSync(`/proc/${pid}/ns/${f}`));
          if (m) out[k] = Number(m[1]);
        } catch {
          // a namespace type this kernel lacks
        }
      }
      return out;
    };
    // host_ns means init_task's namespaces: pid 1's where it can be read, else kthreadd's
    // (pid 2; kernel threads live in init_task's namespaces), e.g. where pid 1 is not
    // ptrace-readable (seen on this host)
    const hostNs: Record<string, number> = {};
    if (evaluateHook !== undefined) {
      let kthreadd = false;
      try {
        kthreadd = fs.readFileSync("/proc/2/comm", "latin1").trim() === "kthreadd";
      } catch {
        // no pid 2 here (a pid namespace)
      }
      Object.assign(hostNs, kthreadd ? nsOf(2) : {}, nsOf(1));
    }
    const statusOf = (pid: number): { ppid: number; nspid: number; caps: { effective: bigint; inheritable: bigint; permitted: bigint } } | undefined => {
      let text: string;
      try {
        text = fs.readFileSync(`/proc/${pid}/status`, "latin1");
      } catch {
        return undefined;
      }
      const field = (name: string): string => new RegExp(`^${name}:\\s*(.*)$`, "m").exec(text)?.[1]?.trim() ?? "";
      const nspid = field("NSpid").split(/\s+/).pop() ?? "";
      const cap = (n: string): bigint => BigInt(`0x${field(n) || "0"}`);
      return { ppid: Number(field("PPid")) || 0, nspid: Number(nspid) || pid, caps: { effective: cap("CapEff"), inheritable: cap("CapInh"), permitted: cap("CapPrm") } };
    };
    const exeOfPid = (pid: number): string => {
      try {
        return fs.readlinkSync(`/proc/${pid}/exe`);
      } catch {
        return ""; // a kernel thread, or gone
      }
    };
    // The process map: one BPF_MAP_LOOKUP_ELEM per process into a buffer of its value size.
    const procs = init.procs;
    const needs: EngineNeeds = init.needs ?? { ancestors: true, status: true, ns: true, atExec: false };
    const pattr = new Uint8Array(32);
    const pattrv = new DataView(pattr.buffer);
    const pkey = new Uint8Array(4);
    const pkeyv = new DataView(pkey.buffer);
    const pval = new Uint8Array(procs?.layout.size ?? 8);
    const pvalv = new DataView(pval.buffer);
    const nsPerTick = Number(procs?.nsPerTick ?? "10000000");
    const NS_KEYS = NS.map(([k]) => k);
    /** /proc/PID/stat: the live parent (real_parent's tgid, what the kernel hooks walk) and the start time in ticks. */
    // Read with open/read/close into one buffer and parsed in place: through readFileSync and
    // string splitting it cost a third of an engine decision (21 of 62 µs, profiled).
    const statPath = new Uint8Array(32);
    const statBuf = new Uint8Array(1024);
    const statOf = (pid: number): { ppid: number; start: number } | undefined => {
      let at = 0;
      for (const ch of "/proc/") statPath[at++] = ch.charCodeAt(0);
      const digits = String(pid);
      for (let i = 0; i < digits.length; i++) statPath[at++] = digits.charCodeAt(i);
      for (const ch of "/stat") statPath[at++] = ch.charCodeAt(0);
      statPath[at] = 0;
      const fd = libc.open(statPath, 0o2000000 /* O_RDONLY | O_CLOEXEC */);
      if (fd < 0) return undefined;
      const n = Number(libc.read(fd, statBuf, statBuf.byteLength));
      libc.close(fd);
      if (n <= 0) return undefined;
      // comm may hold spaces and parentheses: the fields start after the last ")"; field 0
      // there is the state, 1 the ppid, 19 the start time (clock ticks since boot)
      let i = n - 1;
      while (i >= 0 && statBuf[i] !== 0x29) i--;
      if (i < 0) return undefined;
      let field = 0;
      let ppid = -1;
      let start = -1;
      let v = 0;
      let digitsSeen = false;
      for (let j = i + 2; j <= n && field <= 19; j++) {
        const c = j < n ? statBuf[j]! : 0x20;
        if (c >= 0x30 && c <= 0x39) {
          v = v * 10 + (c - 0x30);
          digitsSeen = true;
        } else if (c === 0x20) {
          if (field === 1) ppid = digitsSeen ? v : -1;
          if (field === 19) start = digitsSeen ? v : -1;
          field++;
          v = 0;
          digitsSeen = false;
        } else {
          digitsSeen = false; // the state letter, a sign: not a number we read
          v = 0;
        }
      }
      if (ppid < 0 || start < 0) return undefined;
      return { ppid, start };
    };
    // An exec record's decoded parts, by pid, for as long as its ktime says it is the same
    // record (an opener's next open decodes nothing); bounded.
    const recCache = new Map<number, { ktime: number; binary: string; ns: Record<string, number>; caps: { effective: bigint; inheritable: bigint; permitted: bigint } }>();
    /**
     * The exec record of `pid` in the process map, when it is that process's. The record is
     * keyed by the pid number, which an earlier process may have held; this closes that
     * race: the caller verifies afterwards that the pidfd (or, for an ancestor, the parent
     * link) still holds the process whose start time `start` was read, so the number was
     * that process's for the whole lookup. Every record written for that process (at its
     * fork, its execs, or the /proc seed, which writes starttime itself) is at or after its
     * start; a record of an earlier holder was written before that one exited, so before this
     * process was forked. A record older than the start is therefore a stale one and is not
     * used. /proc gives the start in 10 ms ticks: an earlier holder's record from the same
     * tick would pass, which needs the pid number freed and allocated again within 10 ms;
     * pids are handed out cyclically, so that takes pid_max forks in 10 ms.
     */
    const mapped = (pid: number, start: number): { binary: string; ns: Record<string, number>; caps: { effective: bigint; inheritable: bigint; permitted: bigint } } | undefined => {
      if (procs === undefined) return undefined;
      const lo = procs.layout;
      pkeyv.setUint32(0, pid, true);
      pattrv.setUint32(0, procs.fd, true);
      pattrv.setBigUint64(8, BigInt(ffi.ptr(pkey)), true);
      pattrv.setBigUint64(16, BigInt(ffi.ptr(pval)), true);
      if (Number(libc.syscall(init.sys.bpf, 1 /* BPF_MAP_LOOKUP_ELEM */, ffi.ptr(pattr), 32, 0, 0)) !== 0) return undefined;
      // boot-clock ns as a double: exact to 2^53 ns (104 days of uptime), then to a few ns,
      // against a start time in 10 ms ticks
      const ktime = pvalv.getUint32(lo.ktime, true) + pvalv.getUint32(lo.ktime + 4, true) * 4294967296;
      if (ktime < start * nsPerTick) return undefined;
      const hit = recCache.get(pid);
      if (hit !== undefined && hit.ktime === ktime) return hit;
      const binLen = pvalv.getUint32(lo.binLen, true);
      // no binary recorded (a fork whose parent the map missed), or a path longer than the
      // kept prefix: /proc gives the whole path
      if (binLen === 0 || binLen >= lo.binSize) return undefined;
      const ns: Record<string, number> = {};
      for (let i = 0; i < lo.nsCount && i < NS_KEYS.length; i++) {
        const v = pvalv.getUint32(lo.ns + i * 4, true);
        if (v !== 0) ns[NS_KEYS[i]!] = v;
      }
      const rec = {
        ktime,
        binary: dec.decode(pval.subarray(lo.bin, lo.bin + binLen)),
        ns,
        caps: { effective: pvalv.getBigUint64(lo.capEffective, true), inheritable: pvalv.getBigUint64(lo.capInheritable, true), permitted: pvalv.getBigUint64(lo.capPermitted, true) },
      };
      if (recCache.size >= 4096) recCache.clear();
      recCache.set(pid, rec);
      return rec;
    };
    /** The opener as the engine sees it, or undefined when it cannot be read and verified. */
    // A process's start time never changes, and on pidfs (6.9+) a pidfd's inode number names
    // its process for the whole boot (never reused): once a start time read through the pid
    // was verified by the pidfd, it is kept by that inode, and the opener's next decision
    // reads no /proc/PID/stat (about 11 µs of a 47 µs engine decision here, profiled). Where
    // pidfds are anonymous inodes (one inode for all) nothing is kept.
    const PIDFS_MAGIC = 0x50494446;
    let pidfs = false;
    if (init.pidfd && procs !== undefined) {
      const self = Number(libc.syscall(434 /* pidfd_open, the same number on x86-64 and arm64 */, process.pid, 0, 0, 0, 0, 0));
      if (self >= 0) {
        const fsb = new Uint8Array(120);
        // struct statfs: f_type first (a long)
        pidfs = libc.fstatfs(self, fsb) === 0 && new DataView(fsb.buffer).getUint32(0, true) === PIDFS_MAGIC;
        libc.close(self);
      }
    }
    const startByIno = new Map<number, number>();
    const pst2 = new Uint8Array(144);
    const pst2v = new DataView(pst2.buffer);
    const pidfdIno = (pidfd: number): number => (pidfs && pidfd >= 0 && libc.fstat(pidfd, pst2) === 0 ? u64(pst2v, 8) : -1);
    const engineEvent = (pid: number, pidfd: number, fileSlot: number, filePath: string): EngineEvent | undefined => {
      const ino = needs.ancestors ? -1 : pidfdIno(pidfd);
      const known = ino >= 0 ? startByIno.get(ino) : undefined;
      const me = known !== undefined ? { ppid: -1, start: known } : statOf(pid);
      if (me === undefined) return undefined;
      const status = needs.status ? statusOf(pid) : undefined;
      if (needs.status && status === undefined) return undefined;
      const rec = mapped(pid, me.start);
      // the *Changes matchers compare with the exec record: without it they cannot be decided
      if (rec === undefined && needs.atExec) return undefined;
      let binary: string;
      if (rec !== undefined) {
        binary = rec.binary;
        bump(14);
      } else {
        binary = exeOfPid(pid);
        bump(15);
      }
      const namespaces = needs.ns ? nsOf(pid) : {};
      const chain: { pid: number; ppid: number; binary: string }[] = [];
      for (let p = needs.ancestors ? me.ppid : 0; p > 0 && chain.length < 8;) {
        const st = statOf(p);
        if (st === undefined) break;
        const up = mapped(p, st.start);
        if (up === undefined) bump(15);
        chain.push({ pid: p, ppid: st.ppid, binary: up !== undefined ? up.binary : exeOfPid(p) });
        p = st.ppid;
      }
      if (init.pidfd && (pidfd < 0 || Number(libc.syscall(init.sys.pidfdSendSignal, pidfd, 0, 0, 0, 0, 0)) !== 0)) return undefined;
      if (ino >= 0 && known === undefined) {
        if (startByIno.size >= 4096) startByIno.clear();
        startByIno.set(ino, me.start);
      }
      if (needs.ancestors) {
        if ((statOf(pid)?.ppid ?? -1) !== me.ppid) return undefined;
        for (let i = 0; i + 1 < chain.length; i++) {
          if ((statOf(chain[i]!.pid)?.ppid ?? -1) !== chain[i + 1]!.pid) return undefined;
        }
      }
      const args: ({ file: { path: string } } | undefined)[] = [];
      args[fileSlot] = { file: { path: filePath } };
      return {
        pid, nspid: status?.nspid ?? pid, binary,
        ...(chain[0] !== undefined ? { parentBinary: chain[0].binary } : {}),
        ancestors: chain.map((a) => ({ pid: a.pid, binary: a.binary })),
        namespaces, hostNamespaces: hostNs,
        ...(rec !== undefined && needs.atExec ? { namespacesAtExec: rec.ns, capsAtExec: rec.caps } : {}),
        ...(status !== undefined ? { caps: status.caps } : {}),
        inHostUserNs: namespaces.User === undefined || namespaces.User === hostNs.User,
        args,
      };
    };
    // A matchBinaries entry missing at start becomes inode-matched the first decision after it
    // exists (stat at decision time: no window between its creation and its inode counting).
    // In keeps its path match beside the inode; NotIn drops it, so only that file allows.
    const pst = new Uint8Array(144);
    const pstv = new DataView(pst.buffer);
    const promote = (rule: { op: number; keys: Set<string>; paths: Set<string>; pending: { path: string; cpath: Uint8Array }[] }): void => {
      for (let i = rule.pending.length - 1; i >= 0; i--) {
        const p = rule.pending[i]!;
        if (libc.fstatat(-100, p.cpath, pst, 0) !== 0) continue;
        rule.keys.add(`${pstv.getBigUint64(0, true)}:${pstv.getBigUint64(8, true)}`);
        if (rule.op === 2) rule.paths.delete(p.path);
        rule.pending.splice(i, 1);
      }
    };
    const FAN_ALLOW = 1;
    const FAN_DENY = 2;
    const FAN_OPEN_EXEC_PERM = 0x40000;
    // Small reads keep the answer time honest: every event of a batch is timed from its read.
    const buf = new Uint8Array(1024);
    // the largest event this group reads: metadata (24) and the pidfd record (8), with room to spare
    const MAX_EVENT = 64;
    const dv = new DataView(buf.buffer);
    const st = new Uint8Array(144);
    const stv = new DataView(st.buffer);
    const resp = new Uint8Array(8);
    const respv = new DataView(resp.buffer);
    const exePath = new Uint8Array(64);
    const link = new Uint8Array(4096);
    const dec = new TextDecoder();
    const ts = new BigInt64Array(2);
    // CLOCK_BOOTTIME (7): events carry boot-clock ns, like the kernel sensors' records
    const bootNs = (): bigint => {
      libc.clock_gettime(7, ts);
      return ts[0]! * 1000000000n + ts[1]!;
    };
    // epoll on the group fd and the wake eventfd (EPOLLIN = 1; struct epoll_event packed on x86-64)
    const evSize = process.arch === "arm64" ? 16 : 12;
    const epfd = libc.epoll_create1(0o2000000);
    for (const fd of [init.fd, init.wakeFd, ...(init.notifyFd >= 0 ? [init.notifyFd] : [])]) {
      const ev = new Uint8Array(evSize);
      const v = new DataView(ev.buffer);
      v.setUint32(0, 1, true);
      v.setBigUint64(process.arch === "arm64" ? 8 : 4, BigInt(fd), true);
      libc.epoll_ctl(epfd, 1, fd, ev);
    }
    const evs = new Uint8Array(evSize * 4);
    scope.postMessage("ready");
    const fdLink = new Uint8Array(64);
    const fdPath = (fd: number): void => {
      // "/proc/self/fd/<fd>\0"
      let at = 0;
      for (const ch of "/proc/self/fd/") fdLink[at++] = ch.charCodeAt(0);
      const digits = String(fd);
      for (let i = 0; i < digits.length; i++) fdLink[at++] = digits.charCodeAt(i);
      fdLink[at] = 0;
    };
    let exePathPid = -1;
    const procExe = (pid: number): void => {
      // "/proc/<pid>/exe\0" without allocating a string; an opener's next open reuses it
      if (pid === exePathPid) return;
      exePathPid = pid;
      let at = 0;
      for (const ch of "/proc/") exePath[at++] = ch.charCodeAt(0);
      const digits = String(pid);
      for (let i = 0; i < digits.length; i++) exePath[at++] = digits.charCodeAt(i);
      for (const ch of "/exe") exePath[at++] = ch.charCodeAt(0);
      exePath[at] = 0;
    };
    // The opener's executable, read at most once per event (state reset for each event: one
    // pair of functions for the thread rather than two closures allocated per decision).
    let curPid = 0;
    let curPidfd = -1;
    let exeRead = false;
    let exeOk = false;
    let exeIno = 0;
    let exeKey = "";
    let exe: string | undefined;
    const readExe = (): void => {
      if (exeRead) return;
      exeRead = true;
      procExe(curPid);
      if (libc.fstatat(-100, exePath, st, 0) !== 0) return;
      exeIno = u64(stv, 8);
      exeKey = `${u64(stv, 0)}:${exeIno}`;
      // The pid was read while the pidfd held the process: if it is still alive the
      // executable read above was this opener's (a pid is not reused while its process lives).
      exeOk = !init.pidfd || (curPidfd >= 0 && Number(libc.syscall(init.sys.pidfdSendSignal, curPidfd, 0, 0, 0, 0, 0)) === 0);
    };
    const exePathOf = (): string => {
      if (exe === undefined) {
        procExe(curPid);
        const l = Number(libc.readlink(exePath, link, link.byteLength));
        exe = l > 0 ? dec.decode(link.subarray(0, l)) : "";
      }
      return exe;
    };
    const answer = (fd: number, allow: boolean): void => {
      respv.setInt32(0, fd, true);
      respv.setUint32(4, allow ? FAN_ALLOW : FAN_DENY, true);
      libc.write(init.fd, resp, 8);
    };
    const bump = (i: number, by = 1): void => {
      counters[i] = (counters[i] ?? 0) + by;
    };
    // ---- Prefix trees that grow: a directory created (or moved) under a marked directory is
    // marked in the permission group from here, the moment its FAN_CREATE is read (this
    // thread is the real-time one), then scanned: what was created in it before its mark
    // landed (subdirectories) is marked too, files in it are held through its mark and
    // decided by their path. An open in the new directory before its mark is not held:
    // that window is the read-to-mark time (maxDirMarkUs) plus the notification's delivery.
    const FAN_MARK_ADD = 0x1, FAN_MARK_ONLYDIR = 0x8, FAN_OPEN_PERM_MASK = 0x10000, FAN_EVENT_ON_CHILD = 0x08000000;
    const FAN_CREATE = 0x100, FAN_MOVED_TO = 0x80, FAN_ONDIR = 0x40000000;
    const WATCH_MASK = FAN_CREATE | FAN_MOVED_TO | FAN_ONDIR | FAN_EVENT_ON_CHILD;
    const O_PATH = 0o10000000, O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000;
    const mounts: { fsid: string; fd: number }[] = [];
    const sfs = new Uint8Array(120);
    const sfsv = new DataView(sfs.buffer);
    const fsidKey = (v: DataView, at: number): string => `${v.getInt32(at, true)}:${v.getInt32(at + 4, true)}`;
    if (init.notifyFd >= 0) {
      for (const r of init.roots) {
        // open_by_handle_at takes no O_PATH fd as its mount fd (EBADF): a read-only one
        const fd = libc.open(enc.encode(`${r}\0`), O_DIRECTORY | O_CLOEXEC);
        if (fd < 0) continue;
        // struct statfs: f_fsid after seven 8-byte fields (x86_64 and arm64)
        if (libc.fstatfs(fd, sfs) !== 0) {
          libc.close(fd);
          continue;
        }
        const key = fsidKey(sfsv, 56);
        if (mounts.some((m) => m.fsid === key)) libc.close(fd);
        else mounts.push({ fsid: key, fd });
      }
    }
    let dirBudget = init.dirBudget;
    const markTree = (dir: string): void => {
      let mask = 0;
      const slashed = dir.endsWith("/") ? dir : `${dir}/`;
      for (const p of prefixes) {
        if (!slashed.startsWith(p.prefix)) continue;
        mask |= rules.get(p.id)?.exec ? FAN_OPEN_EXEC_PERM : FAN_OPEN_PERM_MASK;
      }
      if (mask === 0) return;
      if (--dirBudget < 0) {
        bump(12);
        return;
      }
      const c = enc.encode(`${dir}\0`);
      if (libc.fanotify_mark(init.fd, FAN_MARK_ADD | FAN_MARK_ONLYDIR, mask | FAN_EVENT_ON_CHILD, -100, c) !== 0) {
        bump(12);
        return;
      }
      libc.fanotify_mark(init.notifyFd, FAN_MARK_ADD | FAN_MARK_ONLYDIR, WATCH_MASK, -100, c);
      bump(11);
      // what appeared in it before the marks above: its subdirectories get theirs now
      let entries: import("node:fs").Dirent[];
      try {
        entries = fs.readdirSync(dir, { withFileTypes: true });
      } catch {
        return;
      }
      for (const e of entries) if (e.isDirectory()) markTree(`${dir}/${e.name}`);
    };
    const nbuf = new Uint8Array(8192);
    const nbv = new DataView(nbuf.buffer);
    const drainDirs = (): void => {
      for (;;) {
        const n = Number(libc.read(init.notifyFd, nbuf, nbuf.byteLength));
        if (n <= 0) return;
        const t0 = performance.now();
        let off = 0;
        while (off + 24 <= n) {
          const len = nbv.getUint32(off, true);
          if (len < 24 || off + len > n) break;
          const metaLen = nbv.getUint16(off + 6, true);
          const mask = Number(nbv.getBigUint64(off + 8, true));
          const end = off + len;
          // info record: FAN_EVENT_INFO_TYPE_DFID_NAME (2): fsid[8], file_handle, name\0
          const at = off + metaLen;
          off = end;
          if ((mask & FAN_ONDIR) === 0 || at + 20 > end || nbuf[at] !== 2) continue;
          const fsid = fsidKey(nbv, at + 4);
          const hbytes = nbv.getUint32(at + 12, true);
          const nameAt = at + 20 + hbytes;
          if (nameAt >= end) continue;
          let nameEnd = nameAt;
          while (nameEnd < end && nbuf[nameEnd] !== 0) nameEnd++;
          const name = dec.decode(nbuf.subarray(nameAt, nameEnd));
          const mount = mounts.find((m) => m.fsid === fsid) ?? mounts[0];
          if (mount === undefined) {
            bump(12);
            continue;
          }
          const dfd = libc.open_by_handle_at(mount.fd, nbuf.slice(at + 12, nameAt), O_PATH | O_CLOEXEC);
          if (dfd < 0) {
            bump(12);
            continue;
          }
          fdPath(dfd);
          const l = Number(libc.readlink(fdLink, link, link.byteLength));
          libc.close(dfd);
          if (l <= 0) {
            bump(12);
            continue;
          }
          const parent = dec.decode(link.subarray(0, l));
          markTree(parent === "/" ? `/${name}` : `${parent}/${name}`);
          const us = (performance.now() - t0) * 1000;
          if (us > (counters[13] ?? 0)) counters[13] = us;
        }
      }
    };
    // Workload scope: 1 in scope, 0 outside, -1 undecidable (the opener's cgroup unreadable,
    // or its pidfd stale after the read: the pid may have been reused meanwhile).
    const sc = init.scope;
    const attr = new Uint8Array(32);
    const attrv = new DataView(attr.buffer);
    const skey = new Uint8Array(16);
    const skeyv = new DataView(skey.buffer);
    const sval = new Uint8Array(4);
    const lookup = (fd: number, key: Uint8Array): boolean => {
      attrv.setUint32(0, fd, true);
      attrv.setBigUint64(8, BigInt(ffi.ptr(key)), true);
      attrv.setBigUint64(16, BigInt(ffi.ptr(sval)), true);
      return Number(libc.syscall(init.sys.bpf, 1 /* BPF_MAP_LOOKUP_ELEM */, ffi.ptr(attr), 32, 0, 0)) === 0;
    };
    const inScope = (pid: number, pidfd: number): number => {
      if (sc === undefined) return 1;
      let text: string;
      try {
        text = fs.readFileSync(`/proc/${pid}/cgroup`, "utf8");
      } catch {
        return -1;
      }
      const at = text.startsWith("0::") ? 0 : text.indexOf("\n0::") + 1;
      if (at === 0 && !text.startsWith("0::")) return -1;
      const end = text.indexOf("\n", at);
      const segs = text.slice(at + 3, end < 0 ? undefined : end).split("/").filter((x) => x !== "");
      if (init.pidfd && (pidfd < 0 || Number(libc.syscall(init.sys.pidfdSendSignal, pidfd, 0, 0, 0, 0, 0)) !== 0)) return -1;
      const lk = new Uint8Array(4);
      new DataView(lk.buffer).setUint32(0, sc.id, true);
      if (!lookup(sc.levelsFd, lk)) return 0;
      const mask = new DataView(sval.buffer).getUint32(0, true);
      skeyv.setUint32(0, sc.id, true);
      for (let l = 0; l <= segs.length && l < 32; l++) {
        if ((mask & (1 << l)) === 0) continue;
        let ino: bigint;
        try {
          ino = fs.statSync(`${sc.root}/${segs.slice(0, l).join("/")}`, { bigint: true }).ino;
        } catch {
          continue; // the ancestor went away: it is no member then
        }
        skeyv.setBigUint64(8, ino, true);
        if (lookup(sc.membersFd, skey)) return 1;
      }
      return 0;
    };
    const matches: WorkerMatch[] = [];
    // Matches posted so far (int32, wrapping like control[3], the count the main thread has
    // handed to its listeners): their difference is what is on its way.
    let posted = 0;
    // profile: CPU time per phase into counters[16..20] (µs)
    const pts = new BigInt64Array(2);
    let pLast = 0;
    const cpuNow = (): number => {
      libc.clock_gettime(3 /* CLOCK_THREAD_CPUTIME_ID */, pts);
      return Number(pts[0]!) * 1e6 + Number(pts[1]!) / 1e3;
    };
    const phase = (slot: number): void => {
      const now = cpuNow();
      counters[slot] = (counters[slot] ?? 0) + (now - pLast);
      pLast = now;
    };
    const prof = init.profile;
    if (prof) pLast = cpuNow();
    // A real-time thread does not spin: its sched_yield gives the CPU to no CFS task, so a
    // spin would hold off the very opener whose next event it waits for (measured: a third
    // of the decisions per second of sleeping in epoll_wait at once).
    const SPIN_MS = counters[10] === 1 ? 0 : 0.05;
    // This thread's heap is its own (a worker's), out of reach of the main thread's
    // collections (agent BurstReclaimer): the garbage of a burst of decisions (the events'
    // keys, paths and posted match objects) waits for this thread's collector, which runs as
    // it allocates and not at all once it sleeps. So after a burst (init.idleGcAfter
    // decisions since the last time) the sleep is bounded: a second without events, and one
    // full collection gives the pages back while nothing waits for an answer. Measured with
    // 135,000 decisions of an open storm and the main thread's full collection after it:
    // RssAnon stayed at 32 MiB without this, 16 MiB with it (8 MiB before the storm).
    let sinceGc = 0;
    for (;;) {
      const burst = init.idleGcAfter > 0 && sinceGc >= init.idleGcAfter;
      if (Number(libc.epoll_wait(epfd, evs, 4, burst ? 1000 : -1)) === 0 && burst) {
        if (Atomics.load(control, 0) !== 0) break;
        sinceGc = 0;
        Bun.gc(true);
        bump(22);
        continue;
      }
      if (prof) phase(16);
      if (Atomics.load(control, 0) !== 0) break;
      let idleSince = 0;
      while (Atomics.load(control, 0) === 0) {
        // new directories first: the sooner their marks land, the shorter the unheld window
        if (init.notifyFd >= 0) drainDirs();
        const n = Number(libc.read(init.fd, buf, buf.byteLength));
        if (prof) phase(17);
        if (n <= 0) {
          // Before sleeping in epoll_wait, poll a little while yielding the CPU: a busy opener
          // sends its next event within microseconds, and a sleeping thread costs a wake-up
          // (an idle vCPU's wake is tens of microseconds here); on one CPU the yield lets
          // the opener run instead of the spin.
          const now = performance.now();
          if (idleSince === 0) idleSince = now;
          if (SPIN_MS === 0 || now - idleSince > SPIN_MS) break;
          libc.sched_yield();
          continue;
        }
        idleSince = 0;
        const t0 = performance.now();
        let off = 0;
        while (off + 24 <= n) {
          const len = dv.getUint32(off, true);
          if (len < 24 || off + len > n) break;
          const metaLen = dv.getUint16(off + 6, true);
          // the low half holds every bit read here (FAN_OPEN_EXEC_PERM); no BigInt per event
          const mask = dv.getUint32(off + 8, true);
          const fd = dv.getInt32(off + 16, true);
          const pid = dv.getInt32(off + 20, true);
          let pidfd = -1;
          for (let i = off + metaLen; i + 4 <= off + len;) {
            const type = buf[i]!;
            const ilen = dv.getUint16(i + 2, true);
            if (type === 4 && ilen >= 8) pidfd = dv.getInt32(i + 4, true);
            if (ilen < 4) break;
            i += ilen;
          }
          off += len;
          if (fd < 0) continue;
          bump(0);
          sinceGc++;
          let allow = true;
          let scoped = 1;
          try {
            if (exempt.has(pid)) {
              bump(4);
            } else if (performance.now() - t0 > init.answerMs) {
              bump(5);
              allow = !init.failDeny;
            } else if (sc !== undefined && (scoped = inScope(pid, pidfd)) !== 1) {
              if (scoped === 0) bump(9);
              else {
                bump(6);
                allow = !init.failDeny;
              }
            } else if (only !== undefined || libc.fstat(fd, st) === 0) {
              const dev = only !== undefined ? only.dev : stv.getBigUint64(0, true);
              const ino = only !== undefined ? only.ino : stv.getBigUint64(8, true);
              const isExec = (mask & FAN_OPEN_EXEC_PERM) !== 0;
              // Rules of the inode (exact files, and the files that were under a Prefix), else
              // a file created later in a marked directory: its path decides (Prefix rules).
              let ids = only !== undefined ? only.ids : files.get(`${u64(stv, 0)}:${u64(stv, 8)}`);
              if (ids === undefined && prefixes.length > 0) {
                fdPath(fd);
                const l = Number(libc.readlink(fdLink, link, link.byteLength));
                const path = l > 0 ? dec.decode(link.subarray(0, l)) : "";
                ids = prefixes.filter((x) => path.startsWith(x.prefix)).map((x) => x.id);
              }
              exeRead = false;
              exeOk = false;
              exeIno = 0;
              exeKey = "";
              exe = undefined;
              curPid = pid;
              curPidfd = pidfd;
              let undecided = false;
              let hit: number | undefined;
              // engine verdicts of this event by hook index (one evaluate() per hook)
              let verdicts: Map<number, number> | undefined;
              let fact: EngineEvent | undefined | null;
              const idList = ids ?? [];
              for (let k = 0; k < idList.length; k++) {
                const id = idList[k]!;
                const rule = rules.get(id);
                // exec-only rules are marked FAN_OPEN_EXEC_PERM only; the check keeps them exact anyway
                if (rule === undefined || (rule.exec && !isExec)) continue;
                if (rule.engine !== undefined) {
                  if (evaluateHook === undefined) {
                    undecided = true;
                    break;
                  }
                  verdicts ??= new Map();
                  let sel = verdicts.get(rule.engine.hookIndex);
                  if (sel === undefined) {
                    if (fact === undefined) {
                      // the file as the policy named it (matched by inode), else its resolved path (Prefix trees)
                      let filePath = names.get(`${dev}:${ino}`);
                      if (filePath === undefined) {
                        fdPath(fd);
                        const l = Number(libc.readlink(fdLink, link, link.byteLength));
                        filePath = l > 0 ? dec.decode(link.subarray(0, l)) : "";
                      }
                      fact = engineEvent(pid, pidfd, rule.engine.fileSlot, filePath) ?? null;
                    }
                    if (fact === null) {
                      undecided = true;
                      break;
                    }
                    sel = evaluateHook(rule.engine.hookIndex, fact);
                    verdicts.set(rule.engine.hookIndex, sel);
                  }
                  if (sel !== rule.engine.selector) continue;
                  hit = id;
                  break;
                }
                if (rule.op !== 0) {
                  readExe();
                  if (!exeOk) {
                    undecided = true;
                    break;
                  }
                  if (rule.pending.length > 0) promote(rule);
                  const inSet = rule.keys.has(exeKey) || (rule.paths.size > 0 && rule.paths.has(exePathOf()));
                  if (rule.op === 1 ? !inSet : inSet) continue;
                }
                hit = id;
                break;
              }
              const rule = hit === undefined ? undefined : rules.get(hit);
              if (undecided) {
                bump(6);
                allow = !init.failDeny;
              } else if (rule !== undefined) {
                if (rule.action === "kill") {
                  if (pidfd >= 0) libc.syscall(init.sys.pidfdSendSignal, pidfd, 9, 0, 0, 0, 0);
                  else process.kill(pid, 9);
                  bump(3);
                  allow = false;
                } else if (rule.action === "deny") {
                  allow = false;
                }
                if (rule.post && ((posted + matches.length - Atomics.load(control, 3)) | 0) >= init.maxQueued) {
                  bump(21); // postDropped, index 21 of COUNTER_NAMES
                } else if (rule.post) {
                  readExe();
                  // the opened file's path as the kernel resolved it (events name it)
                  fdPath(fd);
                  const l = Number(libc.readlink(fdLink, link, link.byteLength));
                  const path = l > 0 ? dec.decode(link.subarray(0, l)) : "";
                  matches.push({ rule: hit!, pid, action: rule.action, dev: String(dev), ino: String(ino), exeIno: String(exeIno), exe: exeIno !== 0 ? exePathOf() : "", path, timeNs: String(bootNs()), exec: isExec });
                }
              }
            } else {
              bump(6);
              allow = !init.failDeny;
            }
          } catch {
            bump(6);
            allow = !init.failDeny;
          }
          if (prof) phase(18);
          answer(fd, allow);
          if (prof) phase(19);
          bump(allow ? 1 : 2);
          libc.close(fd);
          if (pidfd >= 0) libc.close(pidfd);
          if (prof) phase(20);
          const us = (performance.now() - t0) * 1000;
          bump(8, us);
          if (us > (counters[7] ?? 0)) counters[7] = us;
        }
        if (matches.length > 0) {
          posted = (posted + matches.length) | 0;
          scope.postMessage(matches.splice(0));
        }
        // A read that left room for more events emptied the queue: sleep in epoll_wait now
        // (level-triggered: it returns at once for an event queued meanwhile) rather than pay
        // a read that returns EAGAIN, one syscall of the half dozen a decision costs.
        if (SPIN_MS === 0 && buf.byteLength - n >= MAX_EVENT) break;
      }
    }
    libc.close(epfd);
    for (const m of mounts) libc.close(m.fd);
    leave();
    scope.postMessage("stopped");
  };
}

function cgroupRootOrThrow(): string {
  const root = cgroupV2Mount();
  if (root === undefined) throw new FanotifyError("fanotify rule with a workload scope: no cgroup v2 hierarchy is mounted (no cgroup2 mount with root / in /proc/self/mountinfo), so the opener's cgroup cannot be checked");
  return root;
}

const WORKER_SOURCE = `import * as ffi from "bun:ffi";\nimport * as fs from "node:fs";\n(${fanotifyWorkerMain.toString()})(ffi, fs, self);\n`;
let workerUrl: string | undefined;

/**
 * The engine decision thread's module. Under `bun build --compile` (build/binary.ts) it is an
 * entrypoint of its own, stored relative to the entrypoints' common root (src/) as .js.
 */
function engineWorkerUrl(): string {
  if (import.meta.url.startsWith("file:///$bunfs/")) return "./sensors/fanotify-worker.ts";
  return new URL("./fanotify-worker.ts", import.meta.url).href;
}

/** (dev, ino) as stat reports them (st_dev in the userspace encoding), the worker's fstat key. */
function statKey(path: string): string {
  const st = statSync(path, { bigint: true });
  return `${st.dev}:${st.ino}`;
}

interface RuleEntry extends FanotifyRule {
  id: number;
  /** exact files, and the files found under the prefixes when the rule was added */
  files: string[];
  /** directory prefixes ("/dir/") and every directory under them (marked FAN_EVENT_ON_CHILD) */
  prefixes: string[];
  dirs: string[];
  exact: Set<string>;
}

/** Marks one group may place for Prefix trees (directories plus files): beyond it the rule is refused. */
export const MAX_PREFIX_ENTRIES = 10_000;

/** Every directory and file under dir (not following symlinks), bounded. */
function walkTree(dir: string, budget: { left: number }): { dirs: string[]; files: string[] } {
  const dirs: string[] = [];
  const files: string[] = [];
  const stack = [dir.replace(/\/+$/, "") || "/"];
  while (stack.length > 0) {
    const d = stack.pop()!;
    dirs.push(d);
    if (--budget.left < 0) break;
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = d === "/" ? `/${e.name}` : `${d}/${e.name}`;
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) {
        files.push(p);
        if (--budget.left < 0) break;
      }
    }
  }
  return { dirs, files };
}

export class FanotifyGuard {
  /** the permission group, made by start() (its flags depend on the rules), -1 before */
  #fd = -1;
  readonly #wakeFd: number;
  /** the directory-creation watch of the Prefix trees (created by start() when a rule has one) */
  #notifyFd = -1;
  readonly #rules: RuleEntry[] = [];
  readonly #counters = new SharedArrayBuffer(COUNTER_NAMES.length * 8);
  // [0] stop, [1] left the loop, [2] has the group fd, [3] matches handed to the listeners
  readonly #control = new SharedArrayBuffer(16);
  readonly #opts: FanotifyOptions;
  /** FAN_REPORT_PIDFD is available here */
  readonly #pidfdSupported: boolean;
  /** the group reports pidfds (set by start()) */
  #pidfd = false;
  readonly #marks: string[] = [];
  #worker: Worker | undefined;
  #stopped: Promise<void> | undefined;
  #ready: Promise<void> | undefined;
  #listeners: ((m: FanotifyMatch[]) => void)[] = [];
  #dropListeners: ((n: number) => void)[] = [];
  /** postDropped as last reported to the drop listeners */
  #droppedSeen = 0;
  #closed = false;
  #nextRule = 1;
  #prefixEntries = 0;
  /** the decision thread's duplicate of the process map's fd (-1: none) */
  #procsFd = -1;
  #engine: FanotifyEngine | undefined;

  private constructor(pidfdSupported: boolean, opts: FanotifyOptions) {
    this.#pidfdSupported = pidfdSupported;
    this.#opts = opts;
    this.#wakeFd = eventFd();
  }

  /** A new group (no marks yet): add rules with addRule(), then start(). */
  static create(opts: FanotifyOptions = {}): FanotifyGuard {
    const s = fanotifySupport();
    if (!s.permissions) throw new FanotifyError(`fanotify permission events are not available: ${s.reason ?? "unknown"}`);
    return new FanotifyGuard(s.pidfd, opts);
  }

  /**
   * Whether the group takes a pidfd per event (FAN_REPORT_PIDFD): when a rule kills (the
   * signal must reach the opener, never a process that got its pid since), is engine-decided
   * (its facts are verified against it) or the group has a workload scope. Other rules answer
   * through the event alone and skip it: the pidfd is a file the kernel makes and we close
   * for every event, allowed ones included (about 3 µs of the decision thread's CPU per
   * decision here, of 19). A decision reads /proc/PID/exe through the event's pid; the
   * number can be given to another process only once the opener's whole thread group is
   * gone (the event carries the tgid, which stays allocated while any of its threads lives),
   * and the opener's thread is held in its open until the answer, leaving it only by dying:
   * so whenever the read could see another process, the answer goes to an open that never
   * completes. A posted event of such a match would name the process holding the pid then.
   */
  static needsPidfd(rules: readonly FanotifyRule[], scoped: boolean): boolean {
    return scoped || rules.some((r) => r.action === "kill" || r.engine !== undefined);
  }

  /**
   * A rule over files (paths resolved: a symlink names its target's inode). Every file must
   * exist; matchBinaries entries that exist are matched by inode (In ones by path too), the others by the
   * executable's resolved path. Returns the rule id events carry.
   */
  addRule(rule: FanotifyRule, files: readonly string[], prefixes: readonly string[] = []): number {
    if (this.#worker !== undefined) throw new FanotifyError("add rule: the fanotify group is running already (rules are fixed when it starts)");
    const dirs: string[] = [];
    const under: string[] = [];
    for (const p of prefixes) {
      if (!p.startsWith("/") || !p.endsWith("/")) throw new FanotifyError(`prefix ${p}: fanotify holds directory prefixes only (an absolute path ending in "/")`);
      let isDir = false;
      try {
        isDir = statSync(p).isDirectory();
      } catch (e) {
        throw new FanotifyError(`prefix ${p}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (fanotify marks the directory: it must exist when the policy is applied)`);
      }
      if (!isDir) throw new FanotifyError(`prefix ${p}: not a directory`);
      const budget = { left: MAX_PREFIX_ENTRIES - this.#prefixEntries };
      const t = walkTree(p, budget);
      if (budget.left < 0) throw new FanotifyError(`prefix ${p}: more than ${MAX_PREFIX_ENTRIES} directories and files under the policy's prefixes: fanotify would mark each; use a narrower prefix (or the open-exit check: a Prefix value not ending in "/")`);
      this.#prefixEntries += t.dirs.length + t.files.length;
      dirs.push(...t.dirs);
      under.push(...t.files);
    }
    for (const f of files) {
      try {
        statKey(f);
      } catch (e) {
        throw new FanotifyError(`file ${f}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (fanotify marks the file's inode: it must exist when the policy is applied)`);
      }
    }
    const id = this.#nextRule++;
    this.#rules.push({ ...rule, id, files: [...files, ...under], prefixes: [...prefixes], dirs, exact: new Set(files) });
    return id;
  }

  /**
   * Starts the decision thread and marks the files. Synchronous (the policy manager applies
   * atomically without awaiting): an open of a marked file made before the thread is in its
   * loop simply waits for it. ready() resolves once it answers; if it never starts (5 s) or
   * dies, the group is closed (so nothing stays held) and onFailure says so.
   */
  start(onFailure?: (why: string) => void): void {
    if (this.#worker !== undefined) throw new FanotifyError("start: already started");
    if (this.#closed) throw new FanotifyError("start: the group is closed");
    if (this.#rules.some((r) => r.engine !== undefined) && this.#engine === undefined) throw new FanotifyError("start: engine rules need setEngine() first");
    const needs = this.#engine !== undefined ? engineNeeds(this.#engine.policy) : undefined;
    if (needs?.atExec === true && this.#opts.processMap === undefined) throw new FanotifyError("start: matchNamespaceChanges/matchCapabilityChanges compare with the values recorded at exec, which only the process sensor's map (ward_procs) keeps: no process map was given (is the process sensor running?)");
    this.#pidfd = this.#pidfdSupported && FanotifyGuard.needsPidfd(this.#rules, this.#opts.scope !== undefined);
    // Unlimited queue: a bounded one overflows under a flood, and a dropped permission event
    // is not ours to decide any more. Unlimited marks: a Prefix tree takes one mark per
    // entry, which can pass the per-user limit.
    const flags = FAN_CLASS_CONTENT | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS | (this.#pidfd ? FAN_REPORT_PIDFD : 0);
    this.#fd = fanotifyInit(flags, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
    const files: [string, number][] = [];
    const prefixes: WorkerInit["prefixes"] = [];
    const rules: WorkerInit["rules"] = [];
    const names: WorkerInit["names"] = [];
    for (const r of this.#rules) {
      for (const f of r.files) {
        // a file under a prefix may be gone by now: it is simply not there to protect
        const k = statKeyOrUndefined(f);
        if (k !== undefined) files.push([k, r.id]);
      }
      for (const p of r.prefixes) prefixes.push({ id: r.id, prefix: p });
      const keys: string[] = [];
      const paths: string[] = [];
      const pending: string[] = [];
      for (const b of r.binaries?.paths ?? []) {
        // The same semantics as the file guard (binary-watch.ts): an entry that exists is
        // matched by inode, In entries by their path too (never weaker than Tetragon's path
        // match), a missing one by the path the kernel will report for it.
        const key = binaryKeyOrMissing(b);
        if (key !== undefined) keys.push(key);
        else pending.push(resolvedForm(b));
        if (key === undefined || r.binaries!.op === "In") paths.push(resolvedForm(b));
      }
      rules.push({ id: r.id, action: r.action, post: r.post, op: r.binaries === undefined || r.engine !== undefined ? 0 : r.binaries.op === "In" ? 1 : 2, keys, paths, pending, exec: r.target === "exec", ...(r.engine ? { engine: r.engine } : {}) });
      for (const f of r.exact) {
        const k = statKeyOrUndefined(f);
        if (k !== undefined) names.push([k, f]);
      }
    }
    const roots = this.#rules.flatMap((r) => r.prefixes);
    if (roots.length > 0) {
      // A notification group beside the permission one: permission groups cannot report
      // directory entry events (those need file handles, FAN_REPORT_DFID_NAME).
      this.#notifyFd = fanotifyInit(FAN_CLASS_NOTIF | FAN_CLOEXEC | FAN_NONBLOCK | FAN_UNLIMITED_QUEUE | FAN_UNLIMITED_MARKS | FAN_REPORT_DFID_NAME, O_RDONLY | O_LARGEFILE | O_CLOEXEC);
    }
    const init: WorkerInit = {
      fd: this.#fd,
      wakeFd: this.#wakeFd,
      notifyFd: this.#notifyFd,
      roots,
      dirBudget: MAX_PREFIX_ENTRIES - this.#prefixEntries,
      selfPid: process.pid,
      exempt: this.#opts.exemptPids ?? [],
      files,
      prefixes,
      rules,
      answerMs: this.#opts.answerMs ?? 100,
      failDeny: (this.#opts.failMode ?? "deny") === "deny",
      realtime: (this.#opts.scheduling ?? "realtime") === "realtime",
      profile: this.#opts.profile === true,
      maxQueued: this.#opts.maxQueuedPosts ?? MAX_QUEUED_POSTS,
      idleGcAfter: this.#opts.idleCollectAfter ?? 50_000,
      pidfd: this.#pidfd,
      counters: this.#counters,
      control: this.#control,
      sys: { pidfdSendSignal: SYS_pidfd_send_signal, bpf: process.arch === "arm64" ? 280 : 321 },
      names,
      ...(this.#engine !== undefined ? { engine: this.#engine } : {}),
      ...(this.#opts.scope !== undefined ? { scope: { id: this.#opts.scope.id, membersFd: this.#opts.scope.maps.members.fd.raw, levelsFd: this.#opts.scope.maps.levels.fd.raw, root: this.#opts.scope.cgroupRoot ?? cgroupRootOrThrow() } } : {}),
    };
    if (needs !== undefined) {
      init.needs = needs;
      if (this.#opts.processMap !== undefined) {
        // The thread's own fd for the map: the process sensor may close its fd (agent
        // shutdown) while the group still answers, and a lookup through a reused fd number
        // could copy another map's larger value into the thread's buffer. Closed by close()
        // once the thread has left its loop.
        this.#procsFd = dupFd(this.#opts.processMap.fd.raw);
        init.procs = { fd: this.#procsFd, layout: procMapLayout(), nsPerTick: String(NS_PER_TICK) };
      }
    }
    // Engine rules need the policy engine in the decision thread: a module worker that
    // imports it (an entrypoint of its own in the single binary); the others the blob worker.
    let w: Worker;
    if (this.#engine !== undefined) w = new Worker(engineWorkerUrl());
    else {
      workerUrl ??= URL.createObjectURL(new Blob([WORKER_SOURCE], { type: "application/javascript" }));
      w = new Worker(workerUrl);
    }
    this.#worker = w;
    let stopped!: () => void;
    this.#stopped = new Promise<void>((r) => {
      stopped = r;
    });
    let ready!: () => void;
    const isReady = new Promise<void>((r) => {
      ready = r;
    });
    const control = new Int32Array(this.#control);
    w.onmessage = (e: MessageEvent) => {
      if (e.data === "ready") {
        ready();
        return;
      }
      if (e.data === "stopped") {
        stopped();
        return;
      }
      const batch = (e.data as WorkerMatch[]).map((m): FanotifyMatch => ({
        rule: m.rule, pid: m.pid, action: m.action, dev: BigInt(m.dev), ino: BigInt(m.ino), exeIno: BigInt(m.exeIno), exe: m.exe, path: m.path, timeNs: BigInt(m.timeNs), exec: m.exec,
      }));
      try {
        for (const l of this.#listeners) l(batch);
      } finally {
        // Only now are they off the queue the bound counts.
        Atomics.add(control, 3, batch.length);
        // A drop happens while matches are on their way, so a later batch always comes to
        // report it (the counter itself is exact at any time).
        const dropped = new Float64Array(this.#counters)[POST_DROPPED] ?? 0;
        if (dropped > this.#droppedSeen) {
          const n = dropped - this.#droppedSeen;
          this.#droppedSeen = dropped;
          for (const l of this.#dropListeners) l(n);
        }
      }
    };
    let failure: string | undefined;
    w.onerror = (e: ErrorEvent) => {
      failure = e.message;
      stopped();
    };
    w.postMessage(init);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<"timeout" | undefined>((r) => {
      // The timer runs on this thread: when it was blocked (another policy's programs being
      // verified) the timer can fire before the "ready" message queued meanwhile is read.
      // The worker's own flag says whether it took the group over; then it is running.
      timer = setTimeout(() => r(Atomics.load(new Int32Array(this.#control), 2) === 1 ? undefined : "timeout"), 5000);
    });
    this.#ready = Promise.race([isReady, this.#stopped.then(() => "stopped" as const), timeout]).then((got) => {
      clearTimeout(timer);
      if (got === undefined) return;
      const why = `the fanotify decision thread ${got === "timeout" ? "did not start in 5 s" : `stopped (${failure ?? "no reason given"})`}: the group is closed and its rules no longer hold`;
      if (!this.#closed) {
        this.close();
        onFailure?.(why);
      }
      throw new FanotifyError(why);
    });
    // ready() hands the same promise out; a failure nobody awaits is reported through onFailure.
    this.#ready.catch(() => {});
    // A later failure (the thread dies) also closes the group rather than leave opens held.
    void this.#stopped.then(() => {
      if (!this.#closed) {
        this.close();
        onFailure?.(`the fanotify decision thread stopped (${failure ?? "no reason given"}): the group is closed and its rules no longer hold`);
      }
    });
    try {
      for (const r of this.#rules) {
        // An exec opens the file too, so FAN_OPEN_PERM alone holds opens and execs (one event
        // each); exec-only rules take FAN_OPEN_EXEC_PERM, which plain opens never raise.
        const mask = r.target === "exec" ? FAN_OPEN_EXEC_PERM : FAN_OPEN_PERM;
        for (const f of r.files) {
          try {
            fanotifyMark(this.#fd, FAN_MARK_ADD, mask, f);
          } catch (e) {
            // a file found under a prefix and removed since is not there to protect
            if (r.exact.has(f) || !(e instanceof SyscallError && e.code === "ENOENT")) throw e;
            continue;
          }
          this.#marks.push(f);
        }
        // Directories under a Prefix: their children's opens, files created later included;
        // and their new subdirectories, which the decision thread marks as they appear.
        for (const d of r.dirs) {
          fanotifyMark(this.#fd, FAN_MARK_ADD | FAN_MARK_ONLYDIR, mask | FAN_EVENT_ON_CHILD, d);
          fanotifyMark(this.#notifyFd, FAN_MARK_ADD | FAN_MARK_ONLYDIR, FAN_CREATE | FAN_MOVED_TO | FAN_ONDIR | FAN_EVENT_ON_CHILD, d);
          this.#marks.push(`${d}/`);
        }
      }
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /** The policy engine rules (FanotifyRule.engine) are decided with; before start(). */
  setEngine(e: FanotifyEngine): void {
    if (this.#worker !== undefined) throw new FanotifyError("set engine: the fanotify group is running already");
    this.#engine = e;
  }

  /** Resolves once the decision thread answers; rejects when it failed to start. */
  ready(): Promise<void> {
    if (this.#ready === undefined) return Promise.reject(new FanotifyError("not started"));
    return this.#ready;
  }

  onMatch(cb: (m: FanotifyMatch[]) => void): () => void {
    this.#listeners.push(cb);
    return () => {
      this.#listeners = this.#listeners.filter((l) => l !== cb);
    };
  }

  /** Post matches dropped at the bound (maxQueuedPosts), as they are found: n since the last call. */
  onDropped(cb: (n: number) => void): void {
    this.#dropListeners.push(cb);
  }

  counters(): FanotifyCounters {
    const v = new Float64Array(this.#counters);
    const out = {} as FanotifyCounters;
    COUNTER_NAMES.forEach((n, i) => {
      out[n] = Math.round(v[i] ?? 0);
    });
    return out;
  }

  /**
   * Stops the decision thread and closes the group, synchronously: the kernel allows every
   * event still pending, and no open of the files is held after this. The fd is closed only
   * once the thread has said it left its loop (or never entered it), so it never reads a
   * reused fd number; that wait is one batch of decisions at most (bounded at 1 s).
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const control = new Int32Array(this.#control);
    Atomics.store(control, 0, 1);
    eventFdSignal(this.#wakeFd);
    if (this.#worker !== undefined && Atomics.load(control, 2) === 1) Atomics.wait(control, 1, 0, 1000);
    this.#worker?.terminate();
    if (this.#fd >= 0) closeFd(this.#fd);
    if (this.#notifyFd >= 0) closeFd(this.#notifyFd);
    closeSysFd(this.#wakeFd);
    if (this.#procsFd >= 0) closeSysFd(this.#procsFd);
  }
}

/** "dev:ino" of a binary, undefined when it does not exist; other errors throw ("cannot tell" is not "missing"). */
function binaryKeyOrMissing(path: string): string | undefined {
  try {
    return statKey(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new FanotifyError(`matchBinaries ${path}: ${code ?? (e as Error).message}: cannot tell whether it exists`);
  }
}

function statKeyOrUndefined(path: string): string | undefined {
  try {
    return statKey(path);
  } catch {
    return undefined;
  }
}
