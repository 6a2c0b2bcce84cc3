// The userspace process cache: every process image ward knows, linked to its parent, so an
// event can carry its process and parent even after they are gone from the kernel map.
//
// Lifetime is reference counted, as in Tetragon: an image holds one reference on itself
// while it runs (dropped at exit, or when an exec replaces it) and one on its parent while
// the image itself is cached. An image with no references leaves the cache `retainMs` after
// its end (late events can still resolve it), or sooner when more than `maxRetained` ended
// images wait (the oldest go first); if the cache grows past `maxEntries`, ended images go
// first, oldest first, then the oldest live ones, and each eviction is counted.
import { joinArguments } from "./args.ts";
import { execId, rootParentExecId } from "./exec-id.ts";
import { ProcessFlag } from "./flags.ts";
import type { ProcessInfo } from "./model.ts";
import type { CloneRecord, CredsNs, ExecRecord, ExitRecord } from "./process-record.ts";

export interface ProcessCacheOptions {
  nodeName: string;
  /** Upper bound on cached images (default 65536). */
  maxEntries?: number;
  /** How long an ended, unreferenced image stays (default 30 s). */
  retainMs?: number;
  /**
   * How many ended images wait out their retention at most (default 4096): the oldest leave
   * first. Without it a host that execs fast fills the cache to maxEntries with ended images
   * (30 s at 2,000 execs/s is 60,000 of them, about 1 KiB of heap each), and memory grows
   * with the exec rate instead of with what runs. Late events arrive within a drain or two
   * (milliseconds), far inside 4096 ends even on a host execing 100,000 times a second.
   */
  maxRetained?: number;
  /** Clock for retention, in ms (tests pass their own). */
  now?: () => number;
}

export interface ProcessCacheStats {
  size: number;
  live: number;
  evictions: number;
  /** Exit/clone/exec records whose process or parent was not in the cache. */
  misses: number;
}

/** A seeded process from the /proc scan. */
export interface SeedProcess {
  pid: number;
  ppid: number;
  ktime: bigint;
  binary: string;
  argv: string[];
  cwd: string;
  flags: number;
  creds: CredsNs;
}

/**
 * One cached image. Its ProcessInfo is built on first use for clones: a fork is usually
 * followed at once by an exec that replaces its image, so most clone images are never
 * reported or named as a parent, and their exec_id (a base64 encoding) is never needed.
 */
class Entry {
  refs = 1; // its own liveness
  ended = false;
  endedAt = 0;
  inDeadQueue = false;
  /** In the cache (a removed entry may still be the parent of a cached child). */
  cached = false;
  readonly pid: number;
  readonly ktime: bigint;
  #info: ProcessInfo | undefined;
  // A clone not yet built: its record, the image it copies (the parent's, at clone time) and
  // the node name for its exec_id. Fields of their own rather than one object: a fork storm
  // makes one of these per fork.
  #cloneRec: CloneRecord | undefined;
  #cloneFrom: Entry | undefined;
  #cloneNode = "";
  constructor(
    info: ProcessInfo | undefined,
    public parent: Entry | undefined,
    clone?: CloneRecord,
    from?: Entry,
    nodeName?: string,
  ) {
    this.#info = info;
    this.#cloneRec = clone;
    this.#cloneFrom = from;
    if (nodeName !== undefined) this.#cloneNode = nodeName;
    this.pid = info?.pid ?? clone!.pid;
    this.ktime = info?.ktime ?? clone!.ktime;
  }

  get built(): boolean {
    return this.#info !== undefined;
  }

  get info(): ProcessInfo {
    return (this.#info ??= this.#build());
  }

  set info(v: ProcessInfo) {
    this.#info = v;
  }

  #build(): ProcessInfo {
    const rec = this.#cloneRec!;
    const from = this.#cloneFrom;
    const nodeName = this.#cloneNode;
    this.#cloneRec = undefined;
    this.#cloneFrom = undefined;
    const pinfo = from?.info;
    return {
      execId: execId(nodeName, rec.ktime, rec.pid),
      pid: rec.pid,
      tid: rec.tid,
      ktime: rec.ktime,
      binary: pinfo?.binary ?? "",
      arguments: pinfo?.arguments ?? "",
      cwd: pinfo?.cwd ?? "",
      flags: rec.flags | (from ? 0 : ProcessFlag.miss),
      creds: rec.creds,
      parentExecId: pinfo?.execId ?? (rec.ppid === 0 ? rootParentExecId(nodeName) : execId(nodeName, rec.parentKtime, rec.ppid)),
      ppid: rec.ppid,
    };
  }
}

export function emptyCreds(): CredsNs {
  return {
    uid: 0,
    gid: 0,
    suid: 0,
    sgid: 0,
    euid: 0,
    egid: 0,
    fsuid: 0,
    fsgid: 0,
    auid: 4294967295,
    capPermitted: 0n,
    capEffective: 0n,
    capInheritable: 0n,
    cgroupId: 0n,
    ns: [],
  };
}

export class ProcessCache {
  readonly nodeName: string;
  readonly maxEntries: number;
  readonly retainMs: number;
  readonly maxRetained: number;
  private readonly now: () => number;
  // Images by pid, oldest first: (pid, ktime) is the identity, and a pid has few cached
  // images (its current one, and ended ones inside the retention time), so a short scan from
  // the newest end finds one without building a string key per lookup. A plain array per pid:
  // a fork storm adds one per new pid, and a wrapper object cost more than the scan it saved.
  private readonly images = new Map<number, Entry[]>();
  private count = 0;
  private readonly byPid = new Map<number, Entry>();
  /** Ended images in end order; GC looks at the front. */
  private dead: Entry[] = [];
  private deadHead = 0;
  /** Every inserted image in insertion order (removed ones are skipped lazily), for evicting live images. */
  private order: Entry[] = [];
  private orderHead = 0;
  private evictions = 0;
  private misses = 0;
  // Reading the clock costs about 60 ns here, and an exec storm ends two images per process
  // (the fork's copy, then the exec'd image). With the default clock an end is stamped with
  // a reading at most 64 ends or one gc() old: microseconds under load, and when ends are
  // rare gc() (every 2 s in the sensor) refreshes it, so an image waits out its retention
  // less that at worst. An injected clock (tests) is read at every end.
  private readonly coarse: boolean;
  private stamp = 0;
  private stampUses = 0;

  constructor(opts: ProcessCacheOptions) {
    this.nodeName = opts.nodeName;
    this.maxEntries = Math.max(16, opts.maxEntries ?? 65536);
    this.retainMs = opts.retainMs ?? 30_000;
    this.maxRetained = Math.max(0, Math.floor(opts.maxRetained ?? 4096));
    this.now = opts.now ?? Date.now;
    this.coarse = opts.now === undefined;
  }

  /** The time an end is stamped with (see `coarse`). */
  private endTime(): number {
    if (!this.coarse) return this.now();
    if (this.stampUses-- <= 0) {
      this.stamp = this.now();
      this.stampUses = 63;
    }
    return this.stamp;
  }

  stats(): ProcessCacheStats {
    return { size: this.count, live: this.byPid.size, evictions: this.evictions, misses: this.misses };
  }

  /** The image with this identity, if cached. */
  get(pid: number, ktime: bigint): ProcessInfo | undefined {
    return this.lookup(pid, ktime)?.info;
  }

  /** The image a pid runs now, if known. */
  current(pid: number): ProcessInfo | undefined {
    return this.byPid.get(pid)?.info;
  }

  /**
   * The image a pid runs now if its ProcessInfo was ever handed out (a clone image nobody
   * asked for has none): what an exec replacing it has to let go of.
   */
  currentIfBuilt(pid: number): ProcessInfo | undefined {
    const e = this.byPid.get(pid);
    return e !== undefined && e.built ? e.info : undefined;
  }

  /**
   * The most recently ended image of a pid that is still retained, for events that are read
   * after the pid's exit record (a hook match racing the process's own exit). Looks at the
   * newest ended images only.
   */
  lastEnded(pid: number): ProcessInfo | undefined {
    const stop = Math.max(this.deadHead, this.dead.length - 1024);
    for (let i = this.dead.length - 1; i >= stop; i--) {
      const e = this.dead[i]!;
      if (e.pid === pid && e.cached) return e.info;
    }
    return undefined;
  }

  parentOf(info: ProcessInfo): ProcessInfo | undefined {
    return this.lookup(info.pid, info.ktime)?.parent?.info;
  }

  /** Adds the processes found by the /proc scan, then links each to its parent. */
  seed(list: readonly SeedProcess[]): void {
    const added: [Entry, SeedProcess][] = [];
    for (const p of list) {
      if (this.byPid.has(p.pid)) continue; // the kernel already told us about it
      const info: ProcessInfo = {
        execId: execId(this.nodeName, p.ktime, p.pid),
        pid: p.pid,
        tid: p.pid,
        ktime: p.ktime,
        binary: p.binary,
        arguments: joinArguments(p.argv, 1),
        cwd: p.cwd,
        flags: p.flags,
        creds: p.creds,
        parentExecId: rootParentExecId(this.nodeName),
        ppid: p.ppid,
      };
      const e = this.insert(new Entry(info, undefined), undefined);
      this.byPid.set(p.pid, e);
      added.push([e, p]);
    }
    for (const [e, p] of added) {
      const parent = p.ppid === 0 ? undefined : this.byPid.get(p.ppid);
      if (parent) {
        this.link(e, parent);
        e.info = { ...e.info, parentExecId: parent.info.execId };
      }
    }
    this.enforceBound();
  }

  /** A new thread group: a copy of its parent's image with its own identity (built when first asked for). */
  clone(rec: CloneRecord): ProcessInfo {
    return this.cloneEntry(rec).info;
  }

  /** clone() without building the image's ProcessInfo: the pipeline's path. */
  track(rec: CloneRecord): void {
    this.cloneEntry(rec);
  }

  private cloneEntry(rec: CloneRecord): Entry {
    const parent = this.findParent(rec.ppid, rec.parentKtime);
    const e = this.insert(new Entry(undefined, undefined, rec, parent, this.nodeName), parent);
    this.replaceCurrent(rec.pid, e);
    this.enforceBound();
    return e;
  }

  /** An exec: the new image, linked to the parent the kernel named. */
  exec(rec: ExecRecord): { process: ProcessInfo; parent: ProcessInfo | undefined } {
    const parent = this.findParent(rec.ppid, rec.parentKtime);
    const info: ProcessInfo = {
      execId: execId(this.nodeName, rec.ktime, rec.pid),
      pid: rec.pid,
      tid: rec.tid,
      ktime: rec.ktime,
      binary: rec.binary,
      arguments: rec.arguments ?? joinArguments(rec.argv, 1),
      cwd: rec.cwd,
      flags: rec.flags,
      creds: rec.creds,
      parentExecId: parent?.info.execId ?? this.parentIdFor(rec.ppid, rec.parentKtime),
      ppid: rec.ppid,
      file: { ino: rec.ino, nlink: rec.nlink },
    };
    this.replaceCurrent(rec.pid, this.insert(new Entry(info, undefined), parent));
    this.enforceBound();
    return { process: info, parent: parent?.info };
  }

  /** The end of a thread group. Unknown processes get a minimal image and count as a miss. */
  exit(rec: ExitRecord): { process: ProcessInfo; parent: ProcessInfo | undefined } {
    let e = rec.ktime !== 0n ? this.lookup(rec.pid, rec.ktime) : undefined;
    if (!e && rec.ktime === 0n) e = this.byPid.get(rec.pid);
    if (!e) {
      this.misses++;
      const parent = this.byPid.get(rec.ppid);
      const info: ProcessInfo = {
        execId: execId(this.nodeName, rec.ktime, rec.pid),
        pid: rec.pid,
        tid: rec.tid,
        ktime: rec.ktime,
        binary: "",
        arguments: "",
        cwd: "",
        flags: rec.flags | ProcessFlag.miss,
        creds: emptyCreds(),
        parentExecId: parent?.info.execId ?? rootParentExecId(this.nodeName),
        ppid: rec.ppid,
      };
      return { process: info, parent: parent?.info };
    }
    const out = { process: rec.tid !== e.info.tid ? { ...e.info, tid: rec.tid } : e.info, parent: e.parent?.info };
    if (this.byPid.get(rec.pid) === e) this.byPid.delete(rec.pid);
    this.end(e);
    return out;
  }

  /** Removes ended, unreferenced images older than the retention time. */
  gc(): void {
    const now = this.now();
    this.stamp = now;
    this.stampUses = 63;
    const limit = now - this.retainMs;
    while (this.deadHead < this.dead.length) {
      const e = this.dead[this.deadHead]!;
      if (e.endedAt > limit) break;
      this.deadHead++;
      e.inDeadQueue = false;
      if (e.refs === 0) this.remove(e, false);
    }
    this.compactDeadQueue();
  }

  private parentIdFor(ppid: number, parentKtime: bigint): string {
    if (ppid === 0) return rootParentExecId(this.nodeName);
    return execId(this.nodeName, parentKtime, ppid);
  }

  private findParent(ppid: number, parentKtime: bigint): Entry | undefined {
    if (ppid === 0) return undefined;
    const e = parentKtime !== 0n ? this.lookup(ppid, parentKtime) : this.byPid.get(ppid);
    if (!e) this.misses++;
    return e;
  }

  private lookup(pid: number, ktime: bigint): Entry | undefined {
    const list = this.images.get(pid);
    if (list === undefined) return undefined;
    for (let i = list.length - 1; i >= 0; i--) {
      const e = list[i]!;
      if (e.ktime === ktime) return e;
    }
    return undefined;
  }

  private insert(e: Entry, parent: Entry | undefined): Entry {
    const old = this.lookup(e.pid, e.ktime);
    if (old) this.remove(old, true);
    if (parent) this.link(e, parent);
    e.cached = true;
    const l = this.images.get(e.pid);
    if (l === undefined) this.images.set(e.pid, [e]);
    else l.push(e);
    this.count++;
    this.order.push(e);
    return e;
  }

  private link(child: Entry, parent: Entry): void {
    child.parent = parent;
    parent.refs++;
  }

  private replaceCurrent(pid: number, e: Entry): void {
    const prev = this.byPid.get(pid);
    this.byPid.set(pid, e);
    if (prev && prev !== e) this.end(prev);
  }

  private end(e: Entry): void {
    if (e.ended) return;
    e.ended = true;
    e.endedAt = this.endTime();
    if (!e.inDeadQueue && e.cached) {
      e.inDeadQueue = true;
      this.dead.push(e);
      if (this.dead.length - this.deadHead > this.maxRetained) this.expireOldest();
    }
    this.unref(e);
  }

  /** The oldest waiting ended image leaves now, as gc() would let it go at its retention time. */
  private expireOldest(): void {
    const e = this.dead[this.deadHead]!;
    this.deadHead++;
    e.inDeadQueue = false;
    if (e.refs === 0) this.remove(e, false);
    this.compactDeadQueue();
  }

  private unref(e: Entry): void {
    e.refs--;
    // Past its retention already (GC saw it while still referenced): leave now.
    if (e.refs <= 0 && e.ended && !e.inDeadQueue && e.cached) this.remove(e, false);
  }

  private remove(e: Entry, evicted: boolean): void {
    if (!e.cached) return;
    e.cached = false;
    const list = this.images.get(e.pid);
    if (list !== undefined) {
      // Evictions and retention take the oldest image, which sits at the front.
      const i = list[0] === e ? 0 : list.lastIndexOf(e);
      if (i === 0) list.shift();
      else if (i > 0) list.splice(i, 1);
      if (list.length === 0) this.images.delete(e.pid);
    }
    this.count--;
    if (this.byPid.get(e.pid) === e) this.byPid.delete(e.pid);
    if (evicted) this.evictions++;
    const parent = e.parent;
    // Children that still point here keep this object; dropping our own parent pointer
    // keeps such chains one level deep instead of pinning whole dead ancestries.
    e.parent = undefined;
    if (parent) this.unref(parent);
  }

  private enforceBound(): void {
    if (this.count <= this.maxEntries) {
      this.compactOrder();
      return;
    }
    // Ended images first, oldest first, whatever their references.
    while (this.count > this.maxEntries && this.deadHead < this.dead.length) {
      const e = this.dead[this.deadHead++]!;
      e.inDeadQueue = false;
      this.remove(e, true);
    }
    this.compactDeadQueue();
    // Then the oldest images still running. (Not by iterating the Map: after many deletes
    // at its front, each fresh iteration walks the holes first.)
    while (this.count > this.maxEntries && this.orderHead < this.order.length) {
      const e = this.order[this.orderHead++]!;
      if (e.cached) this.remove(e, true);
    }
    this.compactOrder();
  }

  private compactOrder(): void {
    // Drop entries that already left, once the queue is mostly garbage.
    // In place: a fresh array per compaction was a large allocation every few thousand
    // inserts, and large allocations are what start the collector most often here.
    if (this.order.length > 2 * this.count + 1024) {
      const o = this.order;
      let w = 0;
      for (let i = this.orderHead; i < o.length; i++) {
        const e = o[i]!;
        if (e.cached) o[w++] = e;
      }
      o.length = w;
      this.orderHead = 0;
    }
  }

  private compactDeadQueue(): void {
    if (this.deadHead > 1024 && this.deadHead * 2 > this.dead.length) {
      const d = this.dead;
      d.copyWithin(0, this.deadHead);
      d.length -= this.deadHead;
      this.deadHead = 0;
    }
  }
}
