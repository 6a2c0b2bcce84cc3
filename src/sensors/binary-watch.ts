// Watches for matchBinaries entries that do not exist yet. The file guard matches a binary by
// its inode; an entry that is missing when its rule is written is matched by path instead
// (guard.ts, bpf/file_guard.c) and handed to a BinaryWatch, which tells the guard the moment
// the file appears so its (dev, ino) can be added to the rule without reloading anything.
//
// One inotify instance per watch (per guard, that is per policy), opened only while some entry
// is missing and closed when none is, so a deleted policy leaves no watch behind. Each missing
// entry's nearest existing ancestor directory is watched: when a directory on the way is
// created, renamed into place or removed, the watch moves down or up; when the file itself is
// created, hard-linked or renamed into place, it has appeared. Every event (and a slow
// backstop tick, for what inotify cannot see: a filesystem mounted over an ancestor, a
// symlinked ancestor retargeted) re-evaluates every entry by stat(), so the events are only
// hints and none can be missed by a misread mask. The non-blocking fd is drained on a 50 ms
// timer, and refresh() drains it at once (status and explain call it before reporting).
import { realpathSync, statSync } from "node:fs";
import { dirname, posix } from "node:path";
import { close, inotifyAddWatch, inotifyInit, inotifyRmWatch, readNonBlocking } from "../bpf/sys.ts";
import type { BinaryMatchReport, ResolvedHook } from "./resolve.ts";

/** The identity the guard keys a binary by: the kernel's s_dev and the inode number. */
export interface BinaryIdentity {
  dev: number;
  ino: bigint;
}

/**
 * The kernel's dev_t (MKDEV: 12-bit major << 20 | 20-bit minor) from stat's st_dev, which uses
 * glibc's userspace encoding (major in bits 8-19 and 32-43, minor in bits 0-7 and 20-31).
 */
export function kernelDev(stDev: bigint): number {
  const major = Number(((stDev >> 8n) & 0xfffn) | ((stDev >> 32n) & ~0xfffn));
  const minor = Number((stDev & 0xffn) | ((stDev >> 12n) & ~0xffn));
  return ((major << 20) | (minor & 0xfffff)) >>> 0;
}

/**
 * (dev, ino) of a path (symlinks followed, as exec does), or undefined when it does not exist
 * (ENOENT, or ENOTDIR: a component on the way is a file). Other errors (EACCES, ELOOP) throw:
 * "cannot tell" must not read as "missing".
 */
export function presentIdentity(path: string): BinaryIdentity | undefined {
  try {
    const st = statSync(path, { bigint: true });
    return { dev: kernelDev(st.dev), ino: st.ino };
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw e;
  }
}

function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** The deepest existing directory on the way to path ("/" at worst). */
export function nearestDirectory(path: string): string {
  let d = dirname(path);
  for (;;) {
    if (isDirectory(d) || d === "/") return d;
    d = dirname(d);
  }
}

/**
 * The path the kernel would record for path once it exists: the nearest existing ancestor
 * with its symlinks resolved, plus the rest as written. Equal to path when no ancestor is a
 * symlink.
 */
export function resolvedForm(path: string): string {
  const present = presentIdentity(path);
  if (present !== undefined) {
    try {
      return realpathSync(path);
    } catch {
      return path;
    }
  }
  const dir = nearestDirectory(path);
  let real = dir;
  try {
    real = realpathSync(dir);
  } catch {
    // keep the written form
  }
  return posix.join(real, path.slice(dir === "/" ? 1 : dir.length + 1));
}

/** How one matchBinaries entry is matched right now, for explain and /v1/status. */
export interface BinaryEntryStatus {
  path: string;
  op: "In" | "NotIn";
  match: "inode" | "path";
  /** set when matched by inode */
  dev?: number;
  ino?: bigint;
  /** In entries: the path match that stays on besides the inode (never weaker than a path match) */
  alsoPath?: boolean;
  /** set when matched by path: the directory watched for the file to appear */
  watching?: string;
  /** matched by path, and stat'ed at each decision instead of watched (the fanotify backend) */
  atDecision?: boolean;
  /** why the path match could not be kept or the inode not added, if that happened */
  error?: string;
  /** "inode (dev:ino)", "inode (dev:ino) and path", "path (not present; watching DIR)" */
  text: string;
}

export function binaryMatchText(s: Omit<BinaryEntryStatus, "text">): string {
  if (s.match === "inode") return `inode (${s.dev}:${s.ino})${s.alsoPath ? " and path" : ""}`;
  const how = s.atDecision ? "inode-matched from the first decision after it appears" : `watching ${s.watching ?? "?"}`;
  return `path (not present; ${how})${s.error ? `; ${s.error}` : ""}`;
}

/**
 * What the agent would do with an entry if the policy were applied now (policy explain,
 * and /v1/status of a disabled policy): the same rules as FileGuard, without a guard.
 */
export function predictBinaryEntry(path: string, op: "In" | "NotIn", atDecision = false): BinaryEntryStatus {
  let id: BinaryIdentity | undefined;
  try {
    id = presentIdentity(path);
  } catch (e) {
    const s = { path, op, match: "path" as const, error: `refused: cannot tell whether it exists (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})` };
    return { ...s, text: `path (${s.error})` };
  }
  const s: Omit<BinaryEntryStatus, "text"> = id !== undefined
    ? { path, op, match: "inode", dev: id.dev, ino: id.ino, ...(op === "In" ? { alsoPath: true } : {}) }
    : atDecision ? { path, op, match: "path", atDecision } : { path, op, match: "path", watching: nearestDirectory(path) };
  return { ...s, text: binaryMatchText(s) };
}

/** One entry as explain and /v1/status show it (JSON-safe: no bigint). */
export function binaryReportEntry(s: BinaryEntryStatus): BinaryMatchReport["entries"][number] {
  return { path: s.path, by: s.match, match: s.text, ...(s.watching !== undefined ? { watching: s.watching } : {}) };
}

/**
 * The entries of a guard or fanotify hook's matchBinaries as applying the policy now would
 * match them. fanotify decides in userspace, so its status is this prediction at any time:
 * its decision thread stats a missing entry at each decision, as this does now.
 */
export function predictHookBinaries(hook: Pick<ResolvedHook, "guard" | "fanotify">): BinaryMatchReport[] {
  const atDecision = hook.fanotify !== undefined;
  return (hook.guard?.rules ?? hook.fanotify?.rules ?? []).flatMap((r) => {
    const b = r.binaries;
    if (b === undefined) return [];
    const paths = [...new Set(b.paths.map((p) => (p.startsWith("/") ? posix.normalize(p) : p)))];
    return [{ selector: r.selector, op: b.op, entries: paths.map((p) => binaryReportEntry(predictBinaryEntry(p, b.op, atDecision))) }];
  });
}

// inotify(7) masks.
const IN_MOVED_FROM = 0x40;
const IN_MOVED_TO = 0x80;
const IN_CREATE = 0x100;
const IN_DELETE = 0x200;
const IN_DELETE_SELF = 0x400;
const IN_MOVE_SELF = 0x800;
const IN_ONLYDIR = 0x01000000;
/** Anything that can make a missing path (or a directory on its way) appear or disappear. */
const WATCH_MASK = IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF | IN_ONLYDIR;

const DRAIN_MS = 50;
/** Every this many drains the entries are re-evaluated even without an event. */
const BACKSTOP_TICKS = 20;
/** Re-evaluation passes after watches moved (a file created between a stat and its watch). */
const MAX_PASSES = 8;

export class BinaryWatch {
  /** missing path -> the directory watched for it */
  readonly #entries = new Map<string, string | undefined>();
  /** watched directory -> watch descriptor */
  readonly #wds = new Map<string, number>();
  #fd: number | undefined;
  #timer: ReturnType<typeof setInterval> | undefined;
  #ticks = 0;
  #closed = false;
  readonly #buf = new Uint8Array(64 * 1024);

  /**
   * onAppear runs (synchronously, from add(), refresh() or the timer) once per path that
   * came into existence; the path is no longer watched after it. If it throws, the path stays
   * watched and is tried again at the next event (onError says why).
   */
  constructor(
    private readonly onAppear: (path: string, id: BinaryIdentity) => void,
    private readonly onError: (path: string, err: unknown) => void = () => {},
  ) {}

  /** Watch a path that does not exist (yet); if it exists by now, onAppear runs at once. */
  add(path: string): void {
    if (this.#closed) throw new Error("binary watch: closed");
    if (this.#entries.has(path)) return;
    this.#entries.set(path, undefined);
    this.#evaluate();
  }

  /** Stop watching a path (its rule went away). */
  remove(path: string): void {
    if (!this.#entries.delete(path)) return;
    this.#syncWatches();
  }

  /** The directory watched for path; undefined when path is not (or no longer) watched. */
  watching(path: string): string | undefined {
    return this.#entries.get(path);
  }

  /** Paths still missing. */
  missing(): string[] {
    return [...this.#entries.keys()];
  }

  /** Live inotify watches (distinct directories). */
  watchCount(): number {
    return new Set(this.#wds.values()).size;
  }

  /** Whether the inotify fd is open (only while some path is missing). */
  get open(): boolean {
    return this.#fd !== undefined;
  }

  /** Read pending events now and act on them. */
  refresh(): void {
    if (this.#fd === undefined) return;
    let got = false;
    while (readNonBlocking(this.#fd, this.#buf) > 0) got = true;
    if (got || ++this.#ticks % BACKSTOP_TICKS === 0) this.#evaluate();
  }

  close(): void {
    this.#closed = true;
    this.#entries.clear();
    this.#closeFd();
  }

  #evaluate(): void {
    // A path whose onAppear failed waits for the next event, not for the next pass.
    const failed = new Set<string>();
    for (let pass = 0; pass < MAX_PASSES && !this.#closed; pass++) {
      let changed = false;
      for (const [path, dir] of [...this.#entries]) {
        if (failed.has(path)) continue;
        let id: BinaryIdentity | undefined;
        try {
          id = presentIdentity(path);
        } catch (e) {
          this.onError(path, e);
        }
        if (id !== undefined) {
          this.#entries.delete(path);
          try {
            this.onAppear(path, id);
          } catch (e) {
            // Still wanted: keep its directory watched, so the next event (or the backstop
            // tick) tries again.
            this.#entries.set(path, dir ?? nearestDirectory(path));
            failed.add(path);
            this.onError(path, e);
            continue;
          }
          changed = true;
          continue;
        }
        const now = nearestDirectory(path);
        if (now !== dir) {
          this.#entries.set(path, now);
          changed = true;
        }
      }
      if (this.#syncWatches()) changed = true;
      if (!changed) return;
    }
  }

  /** Watch exactly the directories entries need; true when a watch was added or moved. */
  #syncWatches(): boolean {
    const needed = new Set<string>();
    for (const d of this.#entries.values()) if (d !== undefined) needed.add(d);
    if (needed.size === 0) {
      this.#closeFd();
      return false;
    }
    if (this.#fd === undefined) {
      this.#fd = inotifyInit();
      this.#timer = setInterval(() => {
        try {
          this.refresh();
        } catch (e) {
          for (const p of this.#entries.keys()) this.onError(p, e);
        }
      }, DRAIN_MS);
      this.#timer.unref?.();
    }
    const fd = this.#fd;
    let changed = false;
    for (const [dir, wd] of [...this.#wds]) {
      if (needed.has(dir)) continue;
      this.#wds.delete(dir);
      if (![...this.#wds.values()].includes(wd)) inotifyRmWatch(fd, wd);
    }
    for (const dir of needed) {
      let wd: number;
      try {
        // Adding a watch on an inode already watched returns its wd: this also notices a
        // directory replaced under the same name (a new inode, a new wd).
        wd = inotifyAddWatch(fd, dir, WATCH_MASK);
      } catch (e) {
        // Gone between the stat and the watch: the next pass looks again. Still there (out of
        // watches, ENOSPC): say so; the backstop tick keeps re-evaluating by stat.
        if (isDirectory(dir)) {
          for (const [p, d] of this.#entries) if (d === dir) this.onError(p, e);
        } else {
          changed = true;
        }
        continue;
      }
      const prev = this.#wds.get(dir);
      if (prev === wd) continue;
      changed = true;
      this.#wds.set(dir, wd);
      if (prev !== undefined && ![...this.#wds.values()].includes(prev)) inotifyRmWatch(fd, prev);
    }
    return changed;
  }

  #closeFd(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.#wds.clear();
    if (this.#fd !== undefined) close(this.#fd); // closing the instance drops every watch
    this.#fd = undefined;
  }
}
