// Map helpers shared by the table-driven sensors (generic.ts, sock.ts): both keep policies in
// slot-indexed array maps with a flags word, per-CPU counter arrays indexed by a BTF enum,
// and a table of executable paths keyed as ward_proc.bin holds them.
import { sumPerCpuU64, type BpfMap } from "../bpf/map.ts";

/** A 4-byte little-endian key (array maps, the slot and counter indexes). */
export function u32Key(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

/** The key of a *_bin_names map: the path zero padded to WARD_BIN_PATH_MAX (256), as ward_proc.bin holds it. */
export function binNameKey(path: string): Uint8Array {
  const k = new Uint8Array(256);
  k.set(new TextEncoder().encode(path).subarray(0, 255));
  return k;
}

/** Entries in a hash/LPM map, by walking its keys. */
export function countEntries(map: BpfMap): number {
  let n = 0;
  for (const _ of map.keys()) n++;
  return n;
}

/** Slots of a slot array whose u32 flags word (at flagsOffset) has the active bit set. */
export function countActiveSlots(slots: BpfMap, flagsOffset: number, active: number): number {
  let n = 0;
  for (let i = 0; i < slots.spec.maxEntries; i++) {
    const v = slots.lookup(u32Key(i));
    if (v !== undefined && (new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(flagsOffset, true) & active) !== 0) n++;
  }
  return n;
}

/**
 * A reader of one per-CPU counter array: counter name (an enumerator of the object's BTF enum)
 * to its value summed over CPUs; 0 for a name the object does not have or an entry not there.
 */
export function counterReader(map: BpfMap, index: ReadonlyMap<string, number>): (name: string) => bigint {
  return (name) => {
    const idx = index.get(name);
    if (idx === undefined) return 0n;
    const v = map.lookup(u32Key(idx));
    return v === undefined ? 0n : sumPerCpuU64(v);
  };
}

/**
 * The executable paths in a *_bin_names map, each under the id the engine's BinaryInterner
 * gave it and counted over the policies that use it: the first use writes the entry, the
 * last removes it.
 */
export class BinNameRefs {
  readonly #refs = new Map<string, { id: number; refs: number }>();

  /**
   * One more use of a compiled binNames entry (u32 id, u32 length, the path); returns its
   * path and id, and in conflict the id the path is already interned under when that is a
   * different one (then nothing is written: the caller refuses the policy).
   */
  add(names: Pick<BpfMap, "update">, entry: Uint8Array): { path: string; id: number; conflict?: number } {
    const dv = new DataView(entry.buffer, entry.byteOffset, entry.byteLength);
    const id = dv.getUint32(0, true);
    const len = dv.getUint32(4, true);
    const path = new TextDecoder().decode(entry.subarray(8, 8 + len));
    const r = this.#refs.get(path);
    if (r !== undefined && r.id !== id) return { path, id, conflict: r.id };
    if (r === undefined) {
      names.update(binNameKey(path), u32Key(id));
      this.#refs.set(path, { id, refs: 1 });
    } else r.refs++;
    return { path, id };
  }

  /** One more use of a path a previous agent interned as id (its map entry is there already). */
  adopt(path: string, id: number): void {
    const r = this.#refs.get(path);
    if (r !== undefined && r.id !== id) throw new Error(`binary ${path} is interned as ${r.id}, and a pinned policy uses it as ${id}`);
    if (r === undefined) this.#refs.set(path, { id, refs: 1 });
    else r.refs++;
  }

  /** One use fewer, leaving the map entry (a pinned policy let go of, not removed). */
  forget(path: string): void {
    const r = this.#refs.get(path);
    if (r !== undefined && --r.refs === 0) this.#refs.delete(path);
  }

  /** One use fewer; the last deletes the map entry (best effort: the entry may be gone). */
  release(names: () => Pick<BpfMap, "delete">, path: string): void {
    const r = this.#refs.get(path);
    if (r === undefined) return;
    if (--r.refs === 0) {
      this.#refs.delete(path);
      try { names().delete(binNameKey(path)); } catch { /* already gone */ }
    }
  }
}
