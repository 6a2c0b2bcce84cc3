// The policy manager: applies a validated policy to the kernel. Each hook is resolved
// (resolve.ts) to its backend on this kernel: the generic hook sensor (syscall and tracefs
// tracepoints evaluated in the kernel) or the file guard (file open / exec / module load on
// the file itself); a hook that cannot be honored exactly rejects the whole policy. Apply is
// atomic: either every hook is attached or nothing is (what was attached is undone). Remove
// detaches everything and frees the policy's maps. Disable detaches too (a disabled policy
// holds nothing in the kernel); enable and mode changes re-apply, the new attachment first
// and the old one released after, so enforcement has no gap and a failure keeps the old one.
import { randomBytes } from "node:crypto";
import { realpathSync, statSync } from "node:fs";
import { join } from "node:path";
import { removeEmptyDirs, removePins } from "../bpf/pin.ts";
import { emptyManifest, policyContentHash, policyPinDir, removeManifest, writeManifest, type PinManifest, type PinnedPolicy } from "./pin-manifest.ts";
import type { BpfMap } from "../bpf/map.ts";
import type { TracingPolicy } from "../policy/types.ts";
import { encodeHookMatch, type HookArg } from "../events/kprobe-event.ts";
import type { ProcessInfo } from "../events/model.ts";
import type { EncodeOptions, JsonObject } from "../events/tetragon.ts";
import { FileGuard, GuardError, kernelDev, type GuardEvent, type GuardHook, type GuardProgram } from "./guard.ts";
import { binaryReportEntry, predictHookBinaries } from "./binary-watch.ts";
import { FanotifyGuard, type FanotifyMatch } from "./fanotify.ts";
import { isScoped, scopeOfPolicy, type PolicyScope } from "../workloads/k8s/scope.ts";
import type { ScopeReport, WorkloadScopes } from "../workloads/scopes.ts";
import {
  HookResolutionError, resolvePolicy, type BinaryMatchReport, type HookFeatures, type PolicyResolution, type ResolvedHook,
} from "./resolve.ts";

export type PolicyMode = "enforce" | "monitor";

/** One match of a generic hook, with its arguments typed for the event. */
export interface GenericMatch {
  policyId: string;
  hook: ResolvedHook;
  /** The function the event names when it is not the hook's own (a list hook's syscall). */
  functionName?: string;
  pid: number;
  tgid: number;
  /** Boot-clock ns. */
  time: bigint;
  args: HookArg[];
  ret?: HookArg;
  /** The action the event reports (Post in monitor mode). */
  action: string;
  /** uprobe hooks: the binary and the target that fired (offset reported for offsets/addrs targets). */
  uprobe?: { path: string; symbol: string; offset: bigint };
}

/** The generic hook sensor as the manager uses it (generic-backend.ts adapts src/sensors/generic.ts). */
export interface GenericHooks {
  /**
   * Compile and attach the hooks of one policy, all or nothing; throws having undone its part.
   * `scope` is the policy's workload scope id (0 or absent: every process).
   */
  apply(policyId: string, policy: TracingPolicy, hooks: readonly ResolvedHook[], mode: PolicyMode, scope?: number): void;
  /** Detach and free everything of policyId (idempotent). */
  remove(policyId: string): void;
  /** Matches of every applied policy; returns the unsubscribe function. */
  onMatch(cb: (m: GenericMatch) => void): () => void;
  /** Persistence (--keep-sensors-on-exit); a backend without these cannot be pinned. */
  exportPolicy?(policyId: string): unknown;
  /** Takes over a policy a previous agent pinned (its exported state), writing nothing. */
  adopt?(policyId: string, policy: TracingPolicy, hooks: readonly ResolvedHook[], saved: unknown): void;
  /** Removes a pinned policy this agent does not keep (its exported state). */
  dropPinned?(saved: unknown): void;
  /** Pins the shared sensor under dir / removes its pins (its attachments stay while held). */
  pin?(dir: string): void;
  unpin?(): void;
  /** Adopted attachments no adopted policy uses: detached and unpinned. */
  dropUnusedLinks?(): void;
}

/** Persistence of the policies' kernel objects under --bpf-dir (pin-manifest.ts has the layout). */
export interface PersistOptions {
  bpfDir: string;
  /** --keep-sensors-on-exit: pin what is applied, so it outlives the agent */
  keep: boolean;
  /** what a previous agent left pinned (read at start), adopted or removed by this one */
  previous: PinManifest | undefined;
  /** the process sensor's pins (its map feeds matchBinaries of the pinned programs) */
  process?: { pin(dir: string): void; unpin(): void };
}

/** The socket sensor as the manager uses it (sock-backend.ts adapts src/sensors/sock.ts): the
 * hooks resolve.ts gave backend "sock", on the cgroup sock_addr programs; matches as the generic hooks'. */
export interface SockHooks extends GenericHooks {
  /** Lets go of an adopted policy without touching its pinned entries (a start that failed). */
  forget?(policyId: string): void;
}

/** Where process and parent come from for events. */
export interface ProcessLookup {
  current(pid: number): ProcessInfo | undefined;
  /** The pid's image after its exit record was handled (still retained). */
  lastEnded?(pid: number): ProcessInfo | undefined;
  parentOf(info: ProcessInfo): ProcessInfo | undefined;
}

/**
 * Delays before looking a pid up again when the process cache does not know it yet: the
 * process sensor reads its own ring buffer, so an exec can be handled a little after a match
 * of the new image (a file open right after exec, killed at once).
 */
const LOOKUP_RETRY_MS = [20, 80, 250];

/** events.lost reason: Post matches of a fanotify rule dropped while the main thread was behind (MAX_QUEUED_POSTS). */
export const LOSS_FANOTIFY_QUEUE = "fanotify_queue_full";

export interface ManagerOptions {
  features: HookFeatures;
  encode: EncodeOptions;
  publish(ev: JsonObject): void;
  log(msg: string): void;
  /** Events lost before they were published (the agent's events.lost, by reason). */
  recordLoss?(reason: string, n: number): void;
  processes?: ProcessLookup;
  /** tgids no policy may kill besides this process (which is always exempt). */
  exemptPids?: number[];
  generic?: GenericHooks;
  /**
   * The process sensor's ward_procs map: the file guard matches a matchBinaries entry that
   * does not exist yet by the path recorded there. Without it such a policy is refused.
   */
  processMap?: BpfMap;
  sock?: SockHooks;
  /** For tests: how a guard is opened. */
  openGuard?: (programs: GuardProgram[], exemptPids: number[], processMap: BpfMap | undefined) => FileGuard;
  /** Pinning and adoption (the agent gives it when it has a --bpf-dir). */
  persist?: PersistOptions;
  /**
   * The agent's workload scopes (registry + kernel scope maps). Without them a policy with
   * a namespace, podSelector or containerSelector is refused: applying it everywhere would
   * enforce it on workloads it does not name.
   */
  scopes?: WorkloadScopes;
}

/** Per hook, what /v1/status and `ward policy list` show. */
export interface HookStatus {
  path: string;
  hook: string;
  mechanism: string;
  actions: { selector: number; action: string; honored: string }[];
  limits: string[];
  bypasses: string[];
  /** File guard hooks: per matchBinaries entry, how it is matched right now. */
  binaries?: BinaryMatchReport[];
  /** What holds the hook once the agent has exited. */
  afterExit: string;
}

export interface PolicyKernelState {
  state: "enforcing" | "monitoring" | "disabled";
  hooks: HookStatus[];
  counters?: Record<string, number>;
  /** bpfDir-relative directory of its pinned objects (--keep-sensors-on-exit) */
  pinned?: string;
  /** taken over from a previous agent's pins at start (nothing was attached anew) */
  adopted?: boolean;
  /** Scoped policies: what the scope selects and how many workloads are in it now. */
  scope?: ScopeReport;
}

export class PolicyApplyError extends Error {
  override name = "PolicyApplyError";
  constructor(
    readonly policy: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`policy ${policy} could not be attached: ${message}`, options);
  }
}

interface GuardRuleRef {
  hook: ResolvedHook;
  selector: number;
  post: boolean;
  /** Action reported for a kill / deny / report. */
  names: string[];
  /** "dev:ino" -> the path the policy named. */
  files: Map<string, string>;
}

/** A fanotify rule of an attachment, by the rule id its matches carry. */
interface FanRuleRef {
  hook: ResolvedHook;
  post: boolean;
  names: string[];
  /** "st_dev:ino" (stat's encoding, as the decision thread keys files) -> the path the policy named. */
  files: Map<string, string>;
  /** Prefix directories: a match outside `files` is named by its own path. */
  prefixes: string[];
}

/** One attachment of a policy: its guard, fanotify group and/or generic hooks, and the guard's event loop. */
class Attachment {
  guard: FileGuard | undefined;
  fan: FanotifyGuard | undefined;
  readonly fanRules = new Map<number, FanRuleRef>();
  /** hook path -> "dev:ino (path)" of each inode its fanotify rules marked, for status. */
  readonly fanMarks = new Map<string, string[]>();
  /** Set when the fanotify decision thread failed and its group was closed: status says so. */
  fanFailure: string | undefined;
  genericId: string | undefined;
  sockId: string | undefined;
  readonly rules = new Map<number, GuardRuleRef>();
  /** The file guard holding the fanotify rules after the agent exits (--keep-sensors-on-exit). */
  backstop: FileGuard | undefined;
  readonly backstopRules = new Map<number, GuardRuleRef>();
  /** bpfDir-relative directory of this attachment's pinned guards (keep mode) */
  pinDir: string | undefined;
  adopted = false;
  /** What it was adopted from (kept pinned if the start that adopted it fails). */
  prev: PinnedPolicy | undefined;
  private loops: Promise<void>[] = [];
  private closed = false;

  constructor(
    readonly resolution: PolicyResolution,
    private readonly policy: TracingPolicy,
    private readonly opts: ManagerOptions,
    /** The workload scope id every hook of this attachment carries (0: every process). */
    readonly scope: number,
  ) {}

  startLoop(): void {
    for (const [g, rules] of [[this.guard, this.rules], [this.backstop, this.backstopRules]] as const) {
      if (g === undefined) continue;
      this.loops.push((async () => {
        while (!this.closed) {
          let evs: GuardEvent[];
          try {
            evs = await g.nextEvents(250);
          } catch (e) {
            if (!this.closed) this.opts.log(`policy ${this.policy.metadata.name}: guard events: ${(e as Error).message}`);
            return;
          }
          if (this.closed) return;
          for (const ev of evs) this.publishGuard(ev, rules);
        }
      })());
    }
  }

  private publishGuard(ev: GuardEvent, rules: Map<number, GuardRuleRef>, attempt = 0): void {
    const ref = rules.get(ev.rule);
    if (ref === undefined || !ref.post) return;
    const lookup = this.opts.processes;
    const found = lookup?.current(ev.tgid) ?? lookup?.lastEnded?.(ev.tgid);
    const delay = LOOKUP_RETRY_MS[attempt];
    // The cache may still hold the image before an exec it has not read yet: wait for the
    // one that runs the executable the kernel saw, and settle for what is there at the end.
    const info = found !== undefined && (delay === undefined || sameImage(found, ev)) ? found : undefined;
    if (info === undefined && lookup !== undefined && delay !== undefined) {
      setTimeout(() => this.publishGuard(ev, rules, attempt + 1), delay);
      return;
    }
    let hook = ref.hook;
    // One module rule serves init_module (175) and finit_module (313): name the one called.
    if (ev.hook === "module") {
      const want = ev.result === 175 ? "init_module" : ev.result === 313 ? "finit_module" : undefined;
      const h = this.resolution.hooks.find((x): x is ResolvedHook => x.ok && x.guard?.target === "module" && want !== undefined && x.functionName.endsWith(`sys_${want}`));
      if (h !== undefined) hook = h;
    }
    const args: HookArg[] = [];
    const path = ref.files.get(`${ev.dev}:${ev.ino}`);
    if (path !== undefined) args.push((hook.guard?.target ?? hook.fanotify?.target) === "exec" ? { kind: "linux_binprm", path } : { kind: "file", path });
    // A backstop kill of an Override rule is reported as the kill it was.
    const action = ev.action === "kill" ? (ref.names.find((n) => n === "Sigkill" || n === "Signal") ?? "Sigkill")
      : ev.action === "deny" ? "Override" : "Post";
    // The guard stamps with bpf_ktime_get_ns (monotonic); it equals the boot clock unless the host suspended.
    this.emit(hook, info, ev.pid, ev.tgid, ev.timeNs, args, undefined, action);
  }

  /** A fanotify decision that matched: looked up like the guard's events. */
  publishFan(ev: FanotifyMatch, attempt = 0): void {
    if (this.closed) return;
    const ref = this.fanRules.get(ev.rule);
    if (ref === undefined || !ref.post) return;
    const lookup = this.opts.processes;
    const found = lookup?.current(ev.pid) ?? lookup?.lastEnded?.(ev.pid);
    const delay = LOOKUP_RETRY_MS[attempt];
    const same = found !== undefined && (found.file === undefined || ev.exeIno === 0n || found.file.ino === ev.exeIno);
    const info = found !== undefined && (delay === undefined || same) ? found : undefined;
    if (info === undefined && lookup !== undefined && delay !== undefined) {
      setTimeout(() => this.publishFan(ev, attempt + 1), delay);
      return;
    }
    const args: HookArg[] = [];
    const path = ref.files.get(`${ev.dev}:${ev.ino}`) ?? (ev.path !== "" ? ev.path : undefined);
    if (path !== undefined) args.push(ref.hook.fanotify?.target === "exec" ? { kind: "linux_binprm", path } : { kind: "file", path });
    const action = ev.action === "kill" ? (ref.names.find((n) => n === "Sigkill" || n === "Signal") ?? "Sigkill") : ev.action === "deny" ? "Override" : "Post";
    this.emit(ref.hook, info, ev.pid, ev.pid, ev.timeNs, args, undefined, action);
  }

  /** A generic hook's match: the process is looked up like the guard's (retrying while the cache catches up). */
  publishGeneric(m: GenericMatch, attempt = 0): void {
    const lookup = this.opts.processes;
    const info = lookup?.current(m.tgid) ?? lookup?.lastEnded?.(m.tgid);
    const delay = LOOKUP_RETRY_MS[attempt];
    if (info === undefined && lookup !== undefined && delay !== undefined) {
      setTimeout(() => this.publishGeneric(m, attempt + 1), delay);
      return;
    }
    this.emit(m.functionName !== undefined ? { ...m.hook, functionName: m.functionName } : m.hook, info, m.pid, m.tgid, m.time, m.args, m.ret, m.action, m.uprobe);
  }

  private emit(hook: ResolvedHook, info: ProcessInfo | undefined, pid: number, tgid: number, time: bigint, args: HookArg[], ret: HookArg | undefined, action: string, uprobe?: GenericMatch["uprobe"]): void {
    const process: ProcessInfo = info !== undefined ? (info.tid !== pid ? { ...info, tid: pid } : info) : minimalProcess(pid, tgid);
    const parent = info !== undefined ? this.opts.processes?.parentOf(info) : undefined;
    const message = messageOf(this.policy, hook);
    const [subsys, event] = hook.event === "process_tracepoint" ? hook.name.split("/") : [];
    try {
      this.opts.publish(encodeHookMatch({
        kind: hook.event,
        time,
        process,
        parent,
        ...(hook.event === "process_tracepoint" ? { subsys, event } : hook.event === "process_uprobe" ? uprobeFields(hook, uprobe) : { functionName: hook.functionName }),
        args,
        ...(ret !== undefined ? { ret } : {}),
        action,
        policyName: this.policy.metadata.name,
        ...(message ? { message } : {}),
        tags: tagsOf(this.policy, hook),
      }, this.opts.encode));
    } catch (e) {
      this.opts.log(`policy ${this.policy.metadata.name}: publish: ${(e as Error).message}`);
    }
  }

  /** How the matchBinaries entries of one hook are matched now (the guard's live view). */
  binaries(hook: ResolvedHook): BinaryMatchReport[] {
    const g = this.guard;
    if (g === undefined) return predictHookBinaries(hook);
    const out: BinaryMatchReport[] = [];
    for (const [id, ref] of this.rules) {
      if (ref.hook.path !== hook.path) continue;
      const plan = hook.guard?.rules.find((r) => r.selector === ref.selector);
      if (plan?.binaries === undefined) continue;
      out.push({ selector: ref.selector, op: plan.binaries.op, entries: g.binaryStatus(id).map(binaryReportEntry) });
    }
    return out.sort((a, b) => a.selector - b.selector);
  }

  counters(): Record<string, number> {
    const out: Record<string, number> = {};
    if (this.guard !== undefined) {
      const c = this.guard.counters();
      Object.assign(out, { guard_checks: Number(c.checks), guard_matches: Number(c.matches), guard_kills: Number(c.kills), guard_denies: Number(c.denies), guard_ringbuf_drops: Number(c.ringbufDrops) });
    }
    if (this.fan !== undefined) {
      const c = this.fan.counters();
      Object.assign(out, {
        fanotify_events: c.events, fanotify_allowed: c.allowed, fanotify_denied: c.denied, fanotify_killed: c.killed, fanotify_exempt: c.exempt,
        fanotify_timeouts: c.timeouts, fanotify_undecided: c.undecided, fanotify_max_answer_us: c.maxAnswerUs, fanotify_out_of_scope: c.outOfScope,
        fanotify_mean_answer_us: c.events > 0 ? Math.round(c.totalAnswerUs / c.events) : 0,
        // 1: SCHED_FIFO, 2: nice -20, 3: default scheduling (the decision thread's priority)
        fanotify_scheduling: c.scheduling,
        fanotify_new_dirs: c.newDirs, fanotify_new_dirs_missed: c.newDirsMissed, fanotify_max_dir_mark_us: c.maxDirMarkUs,
        fanotify_failed: this.fanFailure === undefined ? 0 : 1,
        fanotify_map_facts: c.mapFacts, fanotify_proc_fallbacks: c.procFallbacks,
        fanotify_post_dropped: c.postDropped, fanotify_idle_collections: c.idleCollections,
      });
    }
    return out;
  }

  /**
   * Detaches synchronously; the event loop notices and ends by itself (done() waits for it).
   * keepPinned: only this process's hold goes; pinned guards and the generic sensor's entries
   * stay (the agent exits with --keep-sensors-on-exit).
   */
  close(keepPinned = false): void {
    if (this.closed) return;
    this.closed = true;
    if (keepPinned && this.pinDir !== undefined) {
      this.fan?.close();
      this.guard?.close();
      this.backstop?.close();
      return;
    }
    let err: unknown;
    if (this.genericId !== undefined) {
      try {
        this.opts.generic?.remove(this.genericId);
      } catch (e) {
        err = e;
      }
    }
    if (this.sockId !== undefined) {
      try {
        this.opts.sock?.remove(this.sockId);
      } catch (e) {
        err ??= e;
      }
    }
    this.fan?.close();
    // destroy() detaches the programs and frees the maps (and its pins, if any).
    this.guard?.destroy();
    this.backstop?.destroy();
    if (this.pinDir !== undefined && this.opts.persist !== undefined) removePinDir(this.opts.persist.bpfDir, this.pinDir);

    if (err !== undefined) throw err;
  }

  async done(): Promise<void> {
    await Promise.all(this.loops);
  }
}

function sameImage(p: ProcessInfo, ev: GuardEvent): boolean {
  if (p.file !== undefined) return p.file.ino === ev.exeIno;
  const base = p.binary.slice(p.binary.lastIndexOf("/") + 1);
  return base.slice(0, 15) === ev.comm;
}

function minimalProcess(pid: number, tgid: number): ProcessInfo {
  return {
    execId: "", pid: tgid, tid: pid, ktime: 0n, binary: "", arguments: "", cwd: "", flags: 0,
    creds: { uid: 0, gid: 0, suid: 0, sgid: 0, euid: 0, egid: 0, fsuid: 0, fsgid: 0, auid: 4294967295, capPermitted: 0n, capEffective: 0n, capInheritable: 0n, cgroupId: 0n, ns: [] },
    parentExecId: "", ppid: 0,
  };
}

function specOf(policy: TracingPolicy, hook: ResolvedHook): { message?: string; tags: string[] } | undefined {
  const m = /^spec\.(\w+)\[(\d+)\]$/.exec(hook.path);
  if (!m) return undefined;
  const list = (policy.spec as unknown as Record<string, { message?: string; tags: string[] }[]>)[m[1]!];
  return list?.[Number(m[2])];
}

function messageOf(policy: TracingPolicy, hook: ResolvedHook): string | undefined {
  return specOf(policy, hook)?.message;
}

function tagsOf(policy: TracingPolicy, hook: ResolvedHook): string[] {
  return specOf(policy, hook)?.tags ?? [];
}

/**
 * (dev, ino) of a protected file as the guard keys it, with a message that says which path
 * failed. (matchBinaries entries need not exist: the guard matches a missing one by path.)
 */
function identity(path: string, what: string): string {
  try {
    const st = statSync(path, { bigint: true });
    return `${kernelDev(st.dev)}:${st.ino}`;
  } catch (e) {
    throw new Error(`${what} ${path}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message} (the guard matches the file's inode: it must exist when the policy is applied)`);
  }
}

interface Entry {
  id: number;
  policy: TracingPolicy;
  /** Kernel scope id, held from apply to remove (attachments of every mode share it); 0: unscoped. */
  scope: number;
  mode: PolicyMode;
  enabled: boolean;
  attachment: Attachment | undefined;
}

export class PolicyManager {
  readonly #policies = new Map<string, Entry>();
  /** Generic sensor policy id -> the attachment its matches belong to. */
  readonly #byGenericId = new Map<string, Attachment>();
  #nextId = 1;
  #unsubscribe: (() => void) | undefined;
  #unsubscribeSock: (() => void) | undefined;
  /** Policies a previous agent pinned that this one has not adopted or removed yet (start). */
  readonly #adoptable = new Map<string, PinnedPolicy>();
  /**
   * Pinned earlier versions of policies this start re-applied: removed by finishStart, not
   * before, so a start that fails (and undoes what it applied) leaves them enforcing.
   */
  readonly #superseded = new Map<string, PinnedPolicy>();
  /** Until finishStart(): removing a policy keeps what a previous agent pinned of it. */
  #starting = true;

  constructor(private readonly opts: ManagerOptions) {
    for (const [n, p] of Object.entries(opts.persist?.previous?.policies ?? {})) this.#adoptable.set(n, p);
    for (const [n, p] of Object.entries(opts.persist?.previous?.superseded ?? {})) this.#superseded.set(n, p);
    this.#unsubscribe = opts.generic?.onMatch((m) => this.#byGenericId.get(m.policyId)?.publishGeneric(m));
    // Socket ids end in "/sock", so one map serves both sensors.
    this.#unsubscribeSock = opts.sock?.onMatch((m) => this.#byGenericId.get(m.policyId)?.publishGeneric(m));
  }

  /** Resolution without attaching (explain, dry runs). */
  resolve(policy: TracingPolicy, mode: PolicyMode): PolicyResolution {
    return resolvePolicy(policy, this.opts.features, mode);
  }

  /**
   * Attaches a policy, all or nothing. Throws HookResolutionError when a hook cannot be
   * honored on this kernel, PolicyApplyError when attaching failed (nothing stays attached).
   */
  apply(policy: TracingPolicy, opts: { mode: PolicyMode; enabled?: boolean }): PolicyKernelState {
    const name = policy.metadata.name;
    if (this.#policies.has(name)) throw new PolicyApplyError(name, "a policy with this name is attached already");
    const enabled = opts.enabled ?? true;
    const id = this.#nextId++;
    // A disabled policy is still resolved, so it is rejected now rather than when enabled.
    const resolution = this.#check(policy, opts.mode);
    // A scoped policy is refused with --keep-sensors-on-exit inside #trackScope.
    const scope = this.#trackScope(policy);
    // What a previous agent pinned of this policy: adopted when it is the same content and
    // mode (nothing is attached anew, enforcement never paused); otherwise the new version
    // is attached first and the pinned one removed after, so there is no gap either.
    const prev = this.#adoptable.get(name);
    let attachment: Attachment | undefined;
    try {
      if (enabled && scope === 0 && prev !== undefined && prev.hash === policyContentHash(policy) && prev.mode === opts.mode) {
        try {
          attachment = this.#adopt(id, policy, resolution, prev);
        } catch (e) {
          this.opts.log(`policy ${name}: its pinned objects could not be adopted (${(e as Error).message}); applying it anew, then removing them`);
        }
      }
      attachment ??= enabled ? this.#attach(id, policy, resolution, scope) : undefined;
    } catch (e) {
      if (scope !== 0) this.opts.scopes?.untrack(name);
      throw e;
    }
    if (prev !== undefined) {
      this.#adoptable.delete(name);
      if (attachment?.adopted === true) attachment.prev = prev;
      else if (this.#starting && this.opts.persist !== undefined) this.#superseded.set(this.#supersededKey(name), prev);
      else this.#dropPinned(name, prev, enabled ? "re-applied: its content or mode changed" : "disabled in the policy set");
    }
    this.#policies.set(name, { id, policy, scope, mode: opts.mode, enabled, attachment });
    this.#syncPins();
    return this.state(name);
  }

  /**
   * Start is over (every policy of the set was applied): what a previous agent pinned and
   * the set no longer names is removed, and without --keep-sensors-on-exit what was
   * adopted is unpinned (this agent holds it while it runs; nothing stays pinned after).
   */
  finishStart(): void {
    this.#starting = false;
    const p = this.opts.persist;
    if (p === undefined) return;
    // The new versions hold now: the old ones go (the new were attached first: no gap).
    for (const [key, prev] of [...this.#superseded]) {
      this.#superseded.delete(key);
      this.#dropPinned(key.replace(/#\d+$/, ""), prev, "re-applied: its content or mode changed");
    }
    for (const [name, prev] of [...this.#adoptable]) {
      this.#adoptable.delete(name);
      this.#dropPinned(name, prev, "not in the policy set any more");
    }
    if (p.previous?.shared.generic !== undefined) this.opts.generic?.dropUnusedLinks?.();
    if (p.previous?.shared.sock !== undefined) this.opts.sock?.dropUnusedLinks?.();
    if (!p.keep && p.previous !== undefined) {
      for (const e of this.#policies.values()) {
        e.attachment?.guard?.unpin();
        e.attachment?.backstop?.unpin();
        if (e.attachment !== undefined) e.attachment.pinDir = undefined;
      }
      this.opts.generic?.unpin?.();
      this.opts.sock?.unpin?.();
      p.process?.unpin();
      removeManifest(p.bpfDir);
      removeEmptyDirs(p.bpfDir);
      this.opts.log(`${p.bpfDir}: the pins of an agent run with --keep-sensors-on-exit were adopted and removed (this agent runs without it: enforcement ends when it exits)`);
    }
    this.#syncPins();
  }

  /** A manifest key for an earlier version of `name` (several restarts may each leave one). */
  #supersededKey(name: string): string {
    let n = 1;
    while (this.#superseded.has(`${name}#${n}`)) n++;
    return `${name}#${n}`;
  }

  remove(name: string): void {
    const e = this.#policies.get(name);
    if (e === undefined) return;
    this.#policies.delete(name);
    const a = e.attachment;
    if (this.#starting && a?.adopted === true && a.prev !== undefined) {
      // A start undoing what it applied (it is failing): what the previous agent pinned
      // stays pinned and listed, enforcing as before this start.
      this.#adoptable.set(name, a.prev);
      if (a.genericId !== undefined) this.#byGenericId.delete(a.genericId);
      if (a.sockId !== undefined) {
        this.#byGenericId.delete(a.sockId);
        this.opts.sock?.forget?.(a.sockId);
      }
      a.close(true);
      this.#syncPins();
      return;
    }
    try {
      this.#release(a);
    } finally {
      // After the hooks are gone: the scope's members are never dropped under a live hook.
      if (e.scope !== 0) this.opts.scopes?.untrack(name);
    }
    this.#syncPins();
  }

  /** The policy's kernel scope id (0 when unscoped); refuses a scope that cannot be enforced here. */
  #trackScope(policy: TracingPolicy): number {
    const name = policy.metadata.name;
    let scope: PolicyScope;
    try {
      scope = scopeOfPolicy(policy);
    } catch (e) {
      throw new HookResolutionError(name, [(e as Error).message]);
    }
    if (!isScoped(scope)) return 0;
    // Problems start with the scope's field path, so a policy file's error points at it.
    const field = scope.namespace !== undefined ? "metadata.namespace" : scope.podSelector !== undefined ? "spec.podSelector" : scope.containerSelector !== undefined ? "spec.containerSelector" : "spec.hostSelector";
    if (this.opts.scopes === undefined) {
      throw new HookResolutionError(name, [`${field}: the policy is scoped but this agent has no workload scopes (no workload registry, no cgroup v2 hierarchy mounted, or the kernel scope maps could not be created: the agent log says which), so it would apply to every process; refused`]);
    }
    if (this.opts.persist?.keep) {
      // Its workload scope lives in this agent's scope maps, filled by this agent's registry
      // as containers come and go. Pinning the maps would freeze the membership when the
      // agent dies: a container started afterwards would silently be outside the policy.
      throw new HookResolutionError(name, [`${field}: the policy is scoped, and with --keep-sensors-on-exit every policy must keep enforcing exactly after the agent exits; its scope's membership is kept by this agent (its workload registry fills the kernel scope maps as containers start and stop), so after the agent died the membership would be frozen and containers started later would silently not be enforced on; refused. Run without --keep-sensors-on-exit, or apply the policy without a scope`]);
    }
    try {
      return this.opts.scopes.track(name, scope);
    } catch (e) {
      const msg = (e as Error).message;
      throw new HookResolutionError(name, [/^(spec|metadata)\./.test(msg) ? msg : `${field}: ${msg}`]);
    }
  }

  #release(a: Attachment | undefined): void {
    if (a === undefined) return;
    if (a.genericId !== undefined) this.#byGenericId.delete(a.genericId);
    if (a.sockId !== undefined) this.#byGenericId.delete(a.sockId);
    a.close();
  }

  setEnabled(name: string, enabled: boolean): PolicyKernelState {
    const e = this.#must(name);
    if (e.enabled === enabled) return this.state(name);
    if (enabled) {
      e.attachment = this.#attach(e.id, e.policy, this.#check(e.policy, e.mode), e.scope);
    } else {
      const old = e.attachment;
      e.attachment = undefined;
      this.#release(old);
    }
    e.enabled = enabled;
    this.#syncPins();
    return this.state(name);
  }

  /** Re-applies in the new mode: the new attachment comes up before the old one goes. */
  setMode(name: string, mode: PolicyMode): PolicyKernelState {
    const e = this.#must(name);
    if (e.mode === mode) return this.state(name);
    const resolution = this.#check(e.policy, mode);
    if (e.enabled) {
      const id = this.#nextId++;
      const fresh = this.#attach(id, e.policy, resolution, e.scope);
      const old = e.attachment;
      e.attachment = fresh;
      e.id = id;
      this.#release(old);
    }
    e.mode = mode;
    this.#syncPins();
    return this.state(name);
  }

  state(name: string): PolicyKernelState {
    const e = this.#must(name);
    const resolution = e.attachment?.resolution ?? resolvePolicy(e.policy, this.opts.features, e.mode);
    const marks = e.attachment?.fanMarks;
    const failure = e.attachment?.fanFailure;
    const hooks: HookStatus[] = resolution.hooks.flatMap((h) => {
      if (!h.ok) return [];
      const marked = marks?.get(h.path);
      let mechanism = marked !== undefined ? `${h.mechanism}; marked inodes (dev:ino): ${marked.join(", ")}` : h.mechanism;
      // A closed group holds nothing: never let status claim otherwise (its pinned backstop,
      // if it has one, still kills after the open).
      if (failure !== undefined && h.backend === "fanotify") {
        mechanism = e.attachment?.backstop !== undefined
          ? `fanotify NOT ENFORCING: ${failure}; only the pinned file guard backstop holds the Sigkill and Override rules now, by a kill after the open; re-apply the policy (disable, enable). Was: ${mechanism}`
          : `NOT ENFORCING: ${failure}; re-apply the policy (disable, enable). Was: ${mechanism}`;
      }
      const st: HookStatus = { path: h.path, hook: h.name, mechanism, actions: h.actions, limits: h.limits, bypasses: h.bypasses, afterExit: h.afterExit };
      if (h.backend === "guard" && h.guard?.rules.some((r) => r.binaries !== undefined)) {
        st.binaries = e.attachment !== undefined ? e.attachment.binaries(h) : predictHookBinaries(h);
      }
      if (h.backend === "fanotify" && h.fanotify?.rules.some((r) => r.binaries !== undefined)) st.binaries = predictHookBinaries(h);
      return [st];
    });
    const st: PolicyKernelState = { state: !e.enabled ? "disabled" : e.mode === "monitor" ? "monitoring" : "enforcing", hooks };
    if (e.attachment) st.counters = e.attachment.counters();
    if (e.attachment?.pinDir !== undefined) st.pinned = e.attachment.pinDir;
    if (e.attachment?.adopted) st.adopted = true;
    const scope = e.scope !== 0 ? this.opts.scopes?.report(name) : undefined;
    if (scope !== undefined) st.scope = scope;
    return st;
  }

  /**
   * Resolves once every backend of the policy answers: its fanotify decision thread is in
   * its loop (opens of its files made before then wait for it). Rejects when it failed.
   */
  async ready(name: string): Promise<void> {
    await this.#must(name).attachment?.fan?.ready();
  }

  has(name: string): boolean {
    return this.#policies.has(name);
  }

  /**
   * Detaches every policy. keepPinned (the agent exits with --keep-sensors-on-exit, or a
   * start failed after adopting pins): pinned policies keep enforcing, only this process's
   * hold goes, and the manifest stays as it is.
   */
  close(opts: { keepPinned?: boolean } = {}): void {
    const names = [...this.#policies.keys()];
    const errors: string[] = [];
    const keep = opts.keepPinned === true && this.opts.persist !== undefined;
    for (const n of names) {
      try {
        if (keep) {
          this.#policies.get(n)?.attachment?.close(true);
          this.#policies.delete(n);
        } else this.remove(n);
      } catch (e) {
        errors.push(`${n}: ${(e as Error).message}`);
      }
    }
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    this.#unsubscribeSock?.();
    this.#unsubscribeSock = undefined;
    if (errors.length) throw new Error(`detach policies: ${errors.join("; ")}`);
  }

  #must(name: string): Entry {
    const e = this.#policies.get(name);
    if (e === undefined) throw new PolicyApplyError(name, "not attached");
    return e;
  }

  #check(policy: TracingPolicy, mode: PolicyMode): PolicyResolution {
    const r = resolvePolicy(policy, this.opts.features, mode);
    if (r.errors.length > 0) throw new HookResolutionError(policy.metadata.name, r.errors);
    const generic = r.hooks.filter((h) => h.ok && h.backend === "generic");
    if (generic.length > 0 && this.opts.generic === undefined) {
      throw new HookResolutionError(policy.metadata.name, generic.map((h) => `${h.path} (${h.name}): the generic hook sensor is not available in this build, so this hook cannot be attached`));
    }
    const sock = r.hooks.filter((h) => h.ok && h.backend === "sock");
    if (sock.length > 0 && this.opts.sock === undefined) {
      throw new HookResolutionError(policy.metadata.name, sock.map((h) => `${h.path} (${h.name}): the socket sensor (cgroup sock_addr programs) is not available in this build, so this hook cannot be attached`));
    }
    return r;
  }

  /** The pinned records of every policy now pinned, and of those still to be adopted. */
  #syncPins(): void {
    const p = this.opts.persist;
    if (p === undefined || !p.keep) return;
    const policies: Record<string, PinnedPolicy> = Object.fromEntries(this.#adoptable);
    const superseded: Record<string, PinnedPolicy> = Object.fromEntries(this.#superseded);
    for (const [name, e] of this.#policies) {
      const a = e.attachment;
      if (a?.pinDir === undefined) continue;
      policies[name] = {
        hash: policyContentHash(e.policy),
        mode: e.mode,
        dir: a.pinDir,
        ...(a.guard !== undefined ? { guard: `${a.pinDir}/guard` } : {}),
        ...(a.backstop !== undefined ? { backstop: `${a.pinDir}/backstop` } : {}),
        ...(a.genericId !== undefined ? { generic: this.opts.generic?.exportPolicy?.(a.genericId) } : {}),
        ...(a.sockId !== undefined ? { sock: this.opts.sock?.exportPolicy?.(a.sockId) } : {}),
        hooks: a.resolution.hooks.flatMap((h) => (h.ok ? [{ path: h.path, hook: h.name, mechanism: h.mechanism, afterExit: h.afterExit }] : [])),
      };
    }
    const all = [...Object.values(policies), ...Object.values(superseded)];
    const shared: PinManifest["shared"] = {};
    // Pins first, then the manifest that lists them: a crash in between leaves pins the next
    // start reports, never a manifest naming pins that are not there.
    if (all.length > 0) {
      p.process?.pin(join(p.bpfDir, "process"));
      if (p.process !== undefined) shared.process = "process";
    }
    if (all.some((x) => x.generic !== undefined)) {
      this.opts.generic?.pin?.(join(p.bpfDir, "generic"));
      shared.generic = "generic";
    } else {
      // No pinned policy runs on the generic sensor: its pins go (also those of a sensor
      // this agent never loaded), so none is left that no manifest lists.
      this.opts.generic?.unpin?.();
      removePinDir(p.bpfDir, "generic");
    }
    // The socket sensor likewise: pinned while a pinned policy runs on it, else no pin of it stays.
    if (all.some((x) => x.sock !== undefined)) {
      this.opts.sock?.pin?.(join(p.bpfDir, "sock"));
      shared.sock = "sock";
    } else {
      this.opts.sock?.unpin?.();
      removePinDir(p.bpfDir, "sock");
    }
    if (all.length > 0) {
      writeManifest(p.bpfDir, { ...emptyManifest(), shared, policies, ...(this.#superseded.size > 0 ? { superseded } : {}) });
      return;
    }
    removeManifest(p.bpfDir);
    this.opts.generic?.unpin?.();
    this.opts.sock?.unpin?.();
    p.process?.unpin();
    removeEmptyDirs(p.bpfDir);
  }

  /** Takes over what a previous agent pinned of this policy (same content and mode). */
  #adopt(id: number, policy: TracingPolicy, resolution: PolicyResolution, prev: PinnedPolicy): Attachment {
    const p = this.opts.persist!;
    const name = policy.metadata.name;
    const a = new Attachment(resolution, policy, this.opts, 0);
    a.adopted = true;
    const hooks = resolution.hooks.filter((h): h is ResolvedHook => h.ok);
    try {
      const guardHooks = hooks.filter((h) => h.backend === "guard");
      if (guardHooks.length > 0) {
        if (prev.guard === undefined) throw new Error("no file guard is pinned for it");
        a.guard = FileGuard.adopt(join(p.bpfDir, prev.guard), { exemptPids: this.opts.exemptPids ?? [] });
        this.#sameProcessMap(a.guard);
        this.#attachGuard(a, guardHooks, "adopt");
      }
      const fanHooks = hooks.filter((h) => h.backend === "fanotify");
      if (fanHooks.length > 0) {
        // The group itself died with the previous agent: a new one takes the rules over,
        // while the pinned backstop went on holding them.
        if (prev.backstop !== undefined) {
          a.backstop = FileGuard.adopt(join(p.bpfDir, prev.backstop), { exemptPids: this.opts.exemptPids ?? [] });
          this.#sameProcessMap(a.backstop);
        }
        this.#attachFanotify(a, policy, fanHooks, a.backstop !== undefined ? "adopt" : "fresh");
      }
      // Before the generic sensor's: if that fails, forget() below hands the socket entries
      // back untouched (reserved again), to be dropped once the re-applied policy holds.
      const sock = hooks.filter((h) => h.backend === "sock");
      if (sock.length > 0) {
        if (prev.sock === undefined || this.opts.sock?.adopt === undefined) throw new Error("no socket sensor entries are pinned for it");
        const sid = `${name}#${id}/sock`;
        this.opts.sock.adopt(sid, policy, sock, prev.sock);
        a.sockId = sid;
        this.#byGenericId.set(sid, a);
      }
      // Last: adoptPolicy checks everything before it takes anything over, so a failure here
      // or before leaves the generic sensor without this policy (it is re-applied, then dropped).
      const generic = hooks.filter((h) => h.backend === "generic");
      if (generic.length > 0) {
        if (prev.generic === undefined || this.opts.generic?.adopt === undefined) throw new Error("no generic sensor entries are pinned for it");
        const gid = `${name}#${id}`;
        this.opts.generic.adopt(gid, policy, generic, prev.generic);
        a.genericId = gid;
        this.#byGenericId.set(gid, a);
      }
    } catch (e) {
      // Nothing pinned is removed here: the caller applies the policy anew and then drops
      // the pinned objects, so they hold until the new attachment does.
      if (a.genericId !== undefined) this.#byGenericId.delete(a.genericId);
      if (a.sockId !== undefined) {
        this.#byGenericId.delete(a.sockId);
        this.opts.sock?.forget?.(a.sockId);
      }
      a.fan?.close();
      a.guard?.close();
      a.backstop?.close();
      throw e;
    }
    a.pinDir = prev.dir;
    a.startLoop();
    this.opts.log(`policy ${name}: adopted its pinned objects (${prev.dir ?? "shared sensors"}): no new attachment, no gap`);
    return a;
  }

  /** A pinned guard must read the process sensor's map, else its matchBinaries paths go stale. */
  #sameProcessMap(g: FileGuard): void {
    const pm = this.opts.processMap;
    if (pm === undefined) return;
    const mine = pm.info().id, theirs = g.mapId("ward_procs");
    if (theirs !== mine) throw new Error(`its pinned file guard reads process map id ${theirs}, not the process sensor's (id ${mine})`);
  }

  /** Removes what a previous agent pinned of a policy this agent does not adopt. */
  #dropPinned(name: string, prev: PinnedPolicy, why: string): void {
    const p = this.opts.persist!;
    const errors: string[] = [];
    for (const dir of [prev.guard, prev.backstop]) {
      if (dir === undefined) continue;
      try {
        FileGuard.adopt(join(p.bpfDir, dir)).destroy();
      } catch (e) {
        errors.push(`${dir}: ${(e as Error).message}`);
      }
    }
    if (prev.generic !== undefined) {
      try {
        this.opts.generic?.dropPinned?.(prev.generic);
      } catch (e) {
        errors.push(`generic sensor entries: ${(e as Error).message}`);
      }
    }
    if (prev.sock !== undefined) {
      try {
        this.opts.sock?.dropPinned?.(prev.sock);
      } catch (e) {
        errors.push(`socket sensor entries: ${(e as Error).message}`);
      }
    }
    if (prev.dir !== undefined) removePinDir(p.bpfDir, prev.dir);
    this.opts.log(`policy ${name}: removed what an earlier agent pinned of it (${why})${errors.length > 0 ? `; not all of it: ${errors.join("; ")}` : ""}`);
  }

  #attach(id: number, policy: TracingPolicy, resolution: PolicyResolution, scope: number): Attachment {
    const name = policy.metadata.name;
    const a = new Attachment(resolution, policy, this.opts, scope);
    const hooks = resolution.hooks.filter((h): h is ResolvedHook => h.ok);
    const persist = this.opts.persist;
    // --keep-sensors-on-exit: the attachment's own guards get a fresh directory (a pinned
    // earlier version of the policy may still hold its old one until this one is up).
    if (persist?.keep) a.pinDir = `${policyPinDir(name)}/${randomBytes(4).toString("hex")}`;
    try {
      const guardHooks = hooks.filter((h) => h.backend === "guard");
      if (guardHooks.length > 0) this.#attachGuard(a, guardHooks, "fresh");
      const fanHooks = hooks.filter((h) => h.backend === "fanotify");
      if (fanHooks.length > 0) this.#attachFanotify(a, policy, fanHooks, "fresh");
      const generic = hooks.filter((h) => h.backend === "generic");
      if (generic.length > 0) {
        const gid = `${name}#${id}`;
        this.opts.generic!.apply(gid, policy, generic, resolution.mode, scope);
        a.genericId = gid;
        this.#byGenericId.set(gid, a);
      }
      const sock = hooks.filter((h) => h.backend === "sock");
      if (sock.length > 0) {
        const sid = `${name}#${id}/sock`;
        this.opts.sock!.apply(sid, policy, sock, resolution.mode, scope);
        a.sockId = sid;
        this.#byGenericId.set(sid, a);
      }
    } catch (e) {
      try {
        if (a.genericId !== undefined) this.#byGenericId.delete(a.genericId);
        if (a.sockId !== undefined) this.#byGenericId.delete(a.sockId);
        a.close();
      } catch {
        // The attach error is the one worth reporting.
      }
      if (e instanceof HookResolutionError || e instanceof PolicyApplyError) throw e;
      throw new PolicyApplyError(name, e instanceof Error ? e.message : String(e), { cause: e });
    }
    a.startLoop();
    return a;
  }

  #attachFanotify(a: Attachment, policy: TracingPolicy, hooks: ResolvedHook[], backstop: "fresh" | "adopt"): void {
    // Stat everything first: a missing file rejects the policy before the group exists.
    for (const h of hooks) for (const r of h.fanotify!.rules) for (const f of r.files) identity(f, "file");
    if (a.pinDir !== undefined || backstop === "adopt") this.#backstop(a, hooks, backstop);
    // One group per attachment; hooks of one policy share the fail mode and bound (policy options).
    const plan = hooks[0]!.fanotify!;
    const fan = FanotifyGuard.create({
      exemptPids: this.opts.exemptPids ?? [], answerMs: plan.answerMs, failMode: plan.failMode,
      ...(a.scope !== 0 && this.opts.scopes !== undefined ? { scope: { id: a.scope, maps: this.opts.scopes.maps } } : {}),
      ...(this.opts.processMap !== undefined ? { processMap: this.opts.processMap } : {}),
    });
    a.fan = fan;
    // Engine-decided hooks: the decision thread compiles the policy and evaluates it.
    if (hooks.some((h) => h.fanotify!.evaluator === "engine")) fan.setEngine({ policy, mode: a.resolution.mode });
    for (const h of hooks) {
      const marks: string[] = [];
      const plan = h.fanotify!;
      for (const r of plan.rules) {
        const engine = plan.evaluator === "engine" ? { engine: { hookIndex: h.index, selector: r.selector, fileSlot: plan.fileSlot } } : {};
        const id = fan.addRule({ action: r.action, post: r.post, target: plan.target, ...(r.binaries ? { binaries: r.binaries } : {}), ...engine }, r.files, r.prefixes);
        const files = new Map<string, string>();
        for (const p of r.files) {
          const st = statSync(p, { bigint: true });
          files.set(`${st.dev}:${st.ino}`, realPath(p));
          marks.push(`${kernelDev(st.dev) >>> 20}:${kernelDev(st.dev) & 0xfffff}:${st.ino} (${p})`);
        }
        for (const p of r.prefixes) marks.push(`${p} (directory tree)`);
        a.fanRules.set(id, { hook: h, post: r.post, names: r.actionNames, files, prefixes: r.prefixes });
      }
      a.fanMarks.set(h.path, marks);
    }
    fan.onMatch((batch) => {
      for (const m of batch) a.publishFan(m);
    });
    fan.onDropped((n) => this.opts.recordLoss?.(LOSS_FANOTIFY_QUEUE, n));
    fan.start((why) => {
      a.fanFailure = why;
      this.opts.log(`policy ${policy.metadata.name}: ${why}`);
    });
  }

  /**
   * The file guard backing the enforcing fanotify rules once the agent has exited (resolve.ts
   * says so per rule): each Sigkill or Override rule as a kill rule on the same files and
   * binaries, pinned in the attachment's directory. While the agent runs, fanotify answers
   * first (a denied open returns no fd, a killed opener never gets one), so the guard acts
   * only when the group is gone. "adopt": a.backstop is the pinned one; only ids are replayed.
   */
  #backstop(a: Attachment, hooks: ResolvedHook[], mode: "fresh" | "adopt"): void {
    const plans = hooks.flatMap((h) => h.fanotify!.rules.filter((r) => r.action !== "report").map((r) => ({ hook: h, rule: r })));
    if (plans.length === 0) return;
    const seen = new Map<string, string>();
    for (const { rule } of plans) {
      for (const f of rule.files) {
        const k = identity(f, "file");
        if (seen.has(k)) throw new GuardError(`${f}: named by two enforcing rules (also as ${seen.get(k)}); the file guard backstop keeps one rule per file, so with --keep-sensors-on-exit each file may appear in one enforcing selector`);
        seen.set(k, f);
      }
    }
    const targets = new Set(plans.map((x) => x.hook.fanotify!.target));
    const programs: GuardProgram[] = targets.has("open") ? ["guard_sys_exit", "guard_exec", "guard_io_uring"] : ["guard_exec"];
    let g = a.backstop;
    if (mode === "fresh") {
      const processMap = this.opts.processMap;
      g = FileGuard.open({ programs, exemptPids: [process.pid, ...(this.opts.exemptPids ?? [])], ...(processMap !== undefined ? { processMap } : {}), pinDir: join(this.opts.persist!.bpfDir, a.pinDir!, "backstop") });
      a.backstop = g;
    }
    let next = 1;
    for (const { hook, rule } of plans) {
      const hooksOf: GuardHook[] = hook.fanotify!.target === "open" ? ["open", "exec", "io_uring"] : ["exec"];
      const id = mode === "fresh" ? g!.addRule({ action: "kill", hooks: hooksOf, ...(rule.binaries ? { binaries: rule.binaries } : {}) }) : next++;
      if (mode === "fresh") for (const f of rule.files) g!.protect(f, id);
      const files = new Map<string, string>();
      for (const f of rule.files) files.set(identity(f, "file"), realPath(f));
      a.backstopRules.set(id, { hook, selector: rule.selector, post: rule.post, names: rule.actionNames, files });
    }
  }

  #attachGuard(a: Attachment, hooks: ResolvedHook[], mode: "fresh" | "adopt"): void {
    // Stat the protected files first: a missing one rejects the policy before anything loads.
    // A matchBinaries entry may be missing: the guard matches it by path and watches for it
    // (and refuses it, naming the entry, where that cannot be done: no process sensor).
    const plans = hooks.flatMap((h) => h.guard!.rules.map((r) => ({ hook: h, rule: r, files: new Map(r.files.map((p) => [identity(p, "file"), p])) })));
    const programs = [...new Set(hooks.flatMap((h) => h.guard!.programs))];
    const exempt = [process.pid, ...(this.opts.exemptPids ?? [])];
    const processMap = this.opts.processMap;
    const scopeMaps = a.scope !== 0 ? this.opts.scopes?.maps : undefined;
    const pinDir = a.pinDir !== undefined && mode === "fresh" ? join(this.opts.persist!.bpfDir, a.pinDir, "guard") : undefined;
    const guard = mode === "adopt"
      ? a.guard!
      : this.opts.openGuard
        ? this.opts.openGuard(programs, exempt, processMap)
        : FileGuard.open({ programs, exemptPids: exempt, ...(processMap !== undefined ? { processMap } : {}), ...(scopeMaps !== undefined ? { scopeMaps } : {}), ...(pinDir !== undefined ? { pinDir } : {}) });
    a.guard = guard;
    let moduleDone = false;
    // Adopting: the pinned tables hold the rules already; their ids are replayed in the order
    // a fresh apply gives them (addRule counts from 1), so events map back to their hooks.
    let nextId = 1;
    for (const p of plans) {
      if (mode === "adopt") {
        if (p.hook.guard!.target === "module") {
          a.rules.set(0, { hook: p.hook, selector: p.rule.selector, post: p.rule.post, names: p.rule.actionNames, files: new Map() });
          continue;
        }
        const files = new Map<string, string>();
        for (const [k, path] of p.files) files.set(k, realPath(path));
        a.rules.set(nextId++, { hook: p.hook, selector: p.rule.selector, post: p.rule.post, names: p.rule.actionNames, files });
        continue;
      }
      const rule = { action: p.rule.action, hooks: p.rule.hooks, ...(p.rule.binaries ? { binaries: p.rule.binaries } : {}), ...(a.scope !== 0 ? { scope: a.scope } : {}) };
      if (p.hook.guard!.target === "module") {
        // Both module hooks share the guard's single module rule (resolve.ts checked they agree).
        if (!moduleDone) {
          try {
            guard.setModuleRule(rule);
          } catch (e) {
            if (!(e instanceof GuardError)) throw e;
            throw new GuardError(`${p.hook.path} (${p.hook.name}) selector ${p.rule.selector}: ${e.message}`, { cause: e });
          }
        }
        moduleDone = true;
        a.rules.set(0, { hook: p.hook, selector: p.rule.selector, post: p.rule.post, names: p.rule.actionNames, files: new Map() });
        continue;
      }
      let id: number;
      try {
        id = guard.addRule(rule);
      } catch (e) {
        if (!(e instanceof GuardError)) throw e;
        throw new GuardError(`${p.hook.path} (${p.hook.name}) selector ${p.rule.selector}: ${e.message}`, { cause: e });
      }
      for (const path of p.rule.files) guard.protect(path, id);
      // Events name the file as the policy did (its resolved form when it is a symlink).
      const files = new Map<string, string>();
      for (const [k, path] of p.files) files.set(k, realPath(path));
      a.rules.set(id, { hook: p.hook, selector: p.rule.selector, post: p.rule.post, names: p.rule.actionNames, files });
    }
  }
}

function realPath(p: string): string {
  try {
    return realpathSync(p);
  } catch {
    return p;
  }
}

/** Removes an attachment's pin directory and its policy's directory once that is empty. */
function removePinDir(bpfDir: string, dir: string): void {
  try {
    removePins(join(bpfDir, dir));
    removeEmptyDirs(join(bpfDir, dir.split("/").slice(0, 2).join("/")));
  } catch {
    // gone already, or not ours to remove: the manifest no longer names it either way
  }
}

export { GuardError };

/** process_uprobe's path, symbol and (for offsets/addrs targets) offset. */
function uprobeFields(hook: ResolvedHook, u: GenericMatch["uprobe"]): { path: string; symbol: string; offset?: bigint } {
  if (u === undefined) return { path: hook.generic?.[0]?.uprobe?.path ?? "", symbol: hook.functionName };
  return { path: u.path, symbol: u.symbol, ...(u.symbol === "" ? { offset: u.offset } : {}) };
}
