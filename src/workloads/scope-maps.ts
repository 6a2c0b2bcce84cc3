// The kernel side of workload scopes (bpf/include/scope.h): the shared pair of maps every
// ward BPF object checks first, and the only code that writes them. One pair per agent,
// handed to each object through replaceMaps, so a workload coming or going is a few map
// writes and never a program reload or re-attach.
//
// ward_scope_members: (scope id, cgroup id) -> 1 for every member cgroup of a scope.
// ward_scope_levels[scope]: bit L set while the scope has a member at cgroup depth L; the
// programs look up the current task's ancestor at each such level, so processes in
// sub-cgroups of a member are in scope too (scope.h says why).
//
// Write order keeps the kernel's view never wider than intended and never missing a member
// that is still wanted: a member's key is written before its level bit, and its level bit
// is cleared only after the last key at that level is gone.
import { existsSync } from "node:fs";
import { join } from "node:path";
import { BpfMap } from "../bpf/map.ts";
import { loadCollectionSpec } from "../bpf/collection.ts";
import { readObject } from "../bpf/objects.ts";

export class ScopeMapsError extends Error {
  override name = "ScopeMapsError";
}

/** One member cgroup: its id (the directory's inode) and depth below the v2 root. */
export interface ScopeCgroup {
  cgroupId: bigint;
  /** Path segments below the cgroup v2 root: "/a/b" is level 2. */
  level: number;
}

/** The depth of a cgroup path relative to the v2 root ("/" is 0, "/a/b" is 2). */
export function cgroupLevel(path: string): number {
  return path.split("/").filter((s) => s !== "").length;
}

const MEMBERS = "ward_scope_members";
const LEVELS = "ward_scope_levels";

export class ScopeMaps {
  readonly members: BpfMap;
  readonly levels: BpfMap;
  /** Scope ids are 1..maxScopes-1 (0 is "unscoped"). */
  readonly maxScopes: number;
  readonly maxLevels = 32;
  readonly #free: number[] = [];
  /** scope id -> cgroup id -> level, as written to the kernel. */
  readonly #written = new Map<number, Map<bigint, number>>();
  /** scope id -> the level mask in the kernel. */
  readonly #masks = new Map<number, number>();
  #closed = false;

  private constructor(members: BpfMap, levels: BpfMap) {
    this.members = members;
    this.levels = levels;
    this.maxScopes = levels.spec.maxEntries;
    for (let i = this.maxScopes - 1; i >= 1; i--) this.#free.push(i);
  }

  /**
   * Creates the pair with the exact definitions the objects declare (read from generic.o,
   * which every object's scope.h matches; replaceMaps checks type, sizes and flags).
   */
  static create(object: Uint8Array = readObject("generic")): ScopeMaps {
    const spec = loadCollectionSpec(object, "generic");
    const m = spec.maps[MEMBERS];
    const l = spec.maps[LEVELS];
    if (m === undefined || l === undefined) throw new ScopeMapsError(`create scope maps: the object has no ${MEMBERS}/${LEVELS} (built without bpf/include/scope.h)`);
    const plain = (s: typeof m) => ({ name: s.name, type: s.type, keySize: s.keySize, valueSize: s.valueSize, maxEntries: s.maxEntries, ...(s.flags !== undefined ? { flags: s.flags } : {}) });
    const members = BpfMap.create(plain(m));
    let levels: BpfMap;
    try {
      levels = BpfMap.create(plain(l));
    } catch (e) {
      members.close();
      throw e;
    }
    return new ScopeMaps(members, levels);
  }

  /**
   * Pins the pair under `dir` (--keep-sensors-on-exit: pinned objects that check scopes
   * keep finding their members after the agent exits).
   */
  pin(dir: string): void {
    this.members.pin(join(dir, MEMBERS));
    this.levels.pin(join(dir, LEVELS));
  }

  /**
   * Takes over a pair pinned by pin(dir), rebuilding which ids are in use and their members
   * from the maps themselves (a scope id is in use while it has members or a level mask).
   * Undefined when nothing is pinned there. The caller re-tracks its policies' scopes and
   * releases the ids no policy claims.
   */
  static fromPins(dir: string): ScopeMaps | undefined {
    if (!existsSync(join(dir, MEMBERS)) || !existsSync(join(dir, LEVELS))) return undefined;
    const members = BpfMap.fromPin(join(dir, MEMBERS));
    let levels: BpfMap;
    try {
      levels = BpfMap.fromPin(join(dir, LEVELS));
    } catch (e) {
      members.close();
      throw e;
    }
    const sm = new ScopeMaps(members, levels);
    const used = new Set<number>();
    for (const [k, v] of levels.entries()) {
      const mask = new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(0, true);
      if (mask === 0) continue;
      const id = new DataView(k.buffer, k.byteOffset, k.byteLength).getUint32(0, true);
      used.add(id);
      sm.#masks.set(id, mask);
    }
    for (const k of members.keys()) {
      const dv = new DataView(k.buffer, k.byteOffset, k.byteLength);
      const id = dv.getUint32(0, true);
      used.add(id);
      // The level is not stored per key: take the lowest bit of the scope's mask. That is
      // exact for the usual single-level scope; otherwise only this bookkeeping is off until
      // the next set(), which rewrites each wanted member with its real level (the kernel's
      // mask is not touched before then).
      const mask = sm.#masks.get(id) ?? 0;
      const level = mask === 0 ? 0 : 31 - Math.clz32(mask & -mask);
      const m = sm.#written.get(id) ?? new Map<bigint, number>();
      m.set(dv.getBigUint64(8, true), level);
      sm.#written.set(id, m);
    }
    for (const id of used) if (!sm.#written.has(id)) sm.#written.set(id, new Map());
    sm.#free.splice(0, sm.#free.length, ...[...Array(sm.maxScopes).keys()].slice(1).reverse().filter((i) => !used.has(i)));
    return sm;
  }

  /** Takes an id found in use by fromPins for a policy that owns it again; throws if it is not in use. */
  adopt(id: number): number {
    if (!this.#written.has(id)) throw new ScopeMapsError(`scope ${id} is not in the pinned maps`);
    return id;
  }

  /** Scope ids in use (allocated, or adopted from pins). */
  ids(): number[] {
    return [...this.#written.keys()].sort((a, b) => a - b);
  }

  /** What an object's newCollection takes to share this pair. */
  replaceMaps(): Record<string, BpfMap> {
    return { [MEMBERS]: this.members, [LEVELS]: this.levels };
  }

  /** A fresh scope id with no members (matches nothing until set()). */
  allocate(): number {
    const id = this.#free.pop();
    if (id === undefined) throw new ScopeMapsError(`no free workload scope id: ${this.maxScopes - 1} scoped policies are applied already`);
    this.#written.set(id, new Map());
    this.#writeMask(id, 0);
    return id;
  }

  /** Removes every member of the scope and frees its id. */
  release(id: number): void {
    if (!this.#written.has(id)) return;
    this.set(id, []);
    this.#written.delete(id);
    this.#masks.delete(id);
    this.#free.push(id);
  }

  /** The members written for a scope now. */
  membersOf(id: number): ScopeCgroup[] {
    return [...(this.#written.get(id) ?? new Map<bigint, number>())].map(([cgroupId, level]) => ({ cgroupId, level }));
  }

  /**
   * Makes the kernel set of `id` exactly `want`: adds first (key, then level bit), removes
   * after (key, then level bits no member needs). Throws ScopeMapsError for a member too
   * deep for the programs' level mask, before writing anything.
   */
  set(id: number, want: readonly ScopeCgroup[]): void {
    if (this.#closed) throw new ScopeMapsError("scope maps closed");
    const have = this.#written.get(id);
    if (have === undefined) throw new ScopeMapsError(`scope ${id} is not allocated`);
    const next = new Map<bigint, number>();
    for (const c of want) {
      if (c.level < 0 || c.level >= this.maxLevels) {
        throw new ScopeMapsError(`cgroup ${c.cgroupId} is ${c.level} levels below the cgroup v2 root; scopes reach ${this.maxLevels - 1} levels (WARD_SCOPE_LEVELS in bpf/include/scope.h)`);
      }
      next.set(c.cgroupId, c.level);
    }
    const mask = (m: Map<bigint, number>): number => {
      let out = 0;
      for (const l of m.values()) out |= 1 << l;
      return out >>> 0;
    };
    const one = new Uint8Array(4);
    new DataView(one.buffer).setUint32(0, 1, true);
    for (const [cg, level] of next) {
      if (have.get(cg) === level) continue;
      this.members.update(this.#key(id, cg), one);
      have.set(cg, level);
    }
    // Between the adds and the removes `have` is the union: its mask covers both.
    this.#writeMask(id, mask(have));
    for (const cg of [...have.keys()]) {
      if (next.has(cg)) continue;
      this.members.delete(this.#key(id, cg));
      have.delete(cg);
    }
    this.#writeMask(id, mask(have));
  }

  #key(id: number, cg: bigint): Uint8Array {
    const k = new Uint8Array(16);
    const dv = new DataView(k.buffer);
    dv.setUint32(0, id, true);
    dv.setBigUint64(8, cg, true);
    return k;
  }

  #writeMask(id: number, mask: number): void {
    if (this.#masks.get(id) === mask) return;
    const k = new Uint8Array(4);
    new DataView(k.buffer).setUint32(0, id, true);
    const v = new Uint8Array(4);
    new DataView(v.buffer).setUint32(0, mask, true);
    this.levels.update(k, v);
    this.#masks.set(id, mask);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.members.close();
    this.levels.close();
  }
}
