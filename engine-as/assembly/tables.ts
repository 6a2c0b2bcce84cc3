// The userspace image of the kernel maps: built from the same blob the kernel maps are
// filled from, and queried the way the kernel queries them (exact-key hash lookups,
// longest-prefix lookups), so a userspace decision is the kernel's decision.
import * as L from "./layout";
import { maskAddr } from "./parse";

const FNV_OFFSET: u64 = 0xcbf29ce484222325;
const FNV_PRIME: u64 = 0x100000001b3;

@inline function mix(h: u64, b: u32): u64 {
  return (h ^ <u64>(b & 0xff)) * FNV_PRIME;
}

/** Hash state after the (tag, aux) header; bytes are mixed in after it. */
@inline function hashHead(tag: u32, aux: u32): u64 {
  let h = FNV_OFFSET;
  h = mix(h, tag); h = mix(h, tag >> 8); h = mix(h, tag >> 16); h = mix(h, tag >> 24);
  h = mix(h, aux); h = mix(h, aux >> 8);
  return h;
}

function hashBytes(h: u64, p: usize, n: i32): u64 {
  for (let i = 0; i < n; i++) h = mix(h, <u32>load<u8>(p + <usize>i));
  return h;
}

/** Exact-key byte strings, as a BPF hash map holds them: (tag, aux, bytes) -> value.
 * Keys point into the loaded blob (AssemblyScript's GC does not move objects), so a
 * lookup hashes the probe and compares bytes, allocating nothing. */
export class ByteTable {
  heads: Map<u64, i32> = new Map();
  next: i32[] = [];
  tag: u32[] = [];
  aux: u32[] = [];
  ptr: usize[] = [];
  len: i32[] = [];
  val: u32[] = [];

  add(tag: u32, aux: u32, p: usize, n: i32, value: u32): void {
    const h = hashBytes(hashHead(tag, aux), p, n);
    const idx = this.ptr.length;
    this.next.push(this.heads.has(h) ? this.heads.get(h) : -1);
    this.heads.set(h, idx);
    this.tag.push(tag);
    this.aux.push(aux);
    this.ptr.push(p);
    this.len.push(n);
    this.val.push(value);
  }

  /** Entry index for a key whose full hash is h, or -1. */
  findHashed(h: u64, tag: u32, aux: u32, p: usize, n: i32): i32 {
    if (!this.heads.has(h)) return -1;
    let i = this.heads.get(h);
    while (i >= 0) {
      if (unchecked(this.tag[i]) == tag && unchecked(this.aux[i]) == aux && unchecked(this.len[i]) == n &&
        memory.compare(unchecked(this.ptr[i]), p, <usize>n) == 0) return i;
      i = unchecked(this.next[i]);
    }
    return -1;
  }

  find(tag: u32, aux: u32, p: usize, n: i32): i32 {
    return this.findHashed(hashBytes(hashHead(tag, aux), p, n), tag, aux, p, n);
  }
}

/** Which prefix lengths a set holds, so a lookup only probes those. */
export class LenSet {
  has: StaticArray<bool> = new StaticArray<bool>(L.PREFIX_MAX + 1);
  lens: i32[] = []; // longest first
  max: i32 = -1;

  add(n: i32): void {
    if (this.has[n]) return;
    this.has[n] = true;
    this.lens.push(n);
    this.lens.sort((a: i32, b: i32): i32 => b - a);
    if (n > this.max) this.max = n;
  }
}

export class FollowEntry {
  constructor(public bit: u32, public setId: u32, public op: u32) {}
}

export class Tables {
  blob: Uint8Array;
  base: usize;
  nHooks: u32 = 0;
  hooksOff: u32 = 0;
  stringsOff: u32 = 0;
  stringsLen: u32 = 0;
  flags: u32 = 0;
  strEq: ByteTable = new ByteTable();
  prefix: ByteTable = new ByteTable();
  prefixLens: Map<u32, LenSet> = new Map();
  postfix: ByteTable = new ByteTable();
  postfixLens: Map<u32, LenSet> = new Map();
  ints: Map<u32, Set<u64>> = new Map();
  addr: ByteTable = new ByteTable(); // aux = family << 8 | prefix bits
  addrLens4: Map<u32, LenSet> = new Map();
  addrLens6: Map<u32, LenSet> = new Map();
  binIds: ByteTable = new ByteTable();
  binSet: Set<u64> = new Set();
  substrOff: u32 = 0;
  substrCount: u32 = 0;
  follow: FollowEntry[] = [];

  constructor(blob: Uint8Array) {
    this.blob = blob;
    this.base = blob.dataStart;
  }

  hookPtr(i: u32): usize {
    return this.base + <usize>this.hooksOff + <usize>i * <usize>L.HOOK_SIZE;
  }

  /** A STRINGS record by reference (offset + 1). */
  stringAt(ref: u32): string {
    if (ref == 0 || ref > this.stringsLen) return "";
    const p = this.base + <usize>this.stringsOff + <usize>(ref - 1);
    const n = load<u32>(p);
    return String.UTF8.decodeUnsafe(p + 4, <usize>n);
  }

  substrPtr(i: u32): usize {
    return this.base + <usize>this.substrOff + <usize>i * <usize>L.SUBSTR_ENTRY_SIZE;
  }
}

function lensOf(m: Map<u32, LenSet>, id: u32): LenSet {
  if (m.has(id)) return m.get(id);
  const s = new LenSet();
  m.set(id, s);
  return s;
}

export let loadError: string = "";

/** Validates the framing and builds the lookup structures; null (with loadError) if the
 * blob is not one this engine wrote. */
export function loadTables(blob: Uint8Array): Tables | null {
  const b = blob.dataStart;
  const len = <u32>blob.length;
  if (len < <u32>L.HEADER_SIZE || load<u32>(b + L.BH_MAGIC) != L.MAGIC) { loadError = "not a ward filter blob (bad magic)"; return null; }
  if (load<u16>(b + L.BH_VERSION) != L.LAYOUT_VERSION) { loadError = "filter layout version " + load<u16>(b + L.BH_VERSION).toString() + ", this engine reads " + L.LAYOUT_VERSION.toString(); return null; }
  if (load<u32>(b + L.BH_TOTAL_SIZE) != len) { loadError = "blob size mismatch"; return null; }
  const t = new Tables(blob);
  t.nHooks = load<u32>(b + L.BH_N_HOOKS);
  t.flags = load<u32>(b + L.BH_FLAGS);
  const ns = load<u32>(b + L.BH_N_SECTIONS);
  for (let i: u32 = 0; i < ns; i++) {
    const sp = b + <usize>L.HEADER_SIZE + <usize>i * <usize>L.SECTION_SIZE;
    const kind = load<u32>(sp);
    const off = load<u32>(sp + 4);
    const count = load<u32>(sp + 8);
    const size = load<u32>(sp + 12);
    if (<u64>off + <u64>count * <u64>size > <u64>len) { loadError = "section " + kind.toString() + " out of bounds"; return null; }
    const p0 = b + <usize>off;
    if (kind == L.SEC_HOOKS) {
      if (count != t.nHooks || size != <u32>L.HOOK_SIZE) { loadError = "hook section mismatch"; return null; }
      t.hooksOff = off;
    } else if (kind == L.SEC_STRINGS) {
      t.stringsOff = off;
      t.stringsLen = count;
    } else if (kind >= L.SEC_STR_EQ_BASE && kind < L.SEC_STR_EQ_BASE + <u32>L.STR_CLASSES) {
      for (let j: u32 = 0; j < count; j++) {
        const e = p0 + <usize>j * <usize>size;
        t.strEq.add(load<u32>(e), 0, e + 8, <i32>load<u32>(e + 4), 1);
      }
    } else if (kind == L.SEC_STR_PREFIX || kind == L.SEC_STR_POSTFIX) {
      const pre = kind == L.SEC_STR_PREFIX;
      for (let j: u32 = 0; j < count; j++) {
        const e = p0 + <usize>j * <usize>size;
        const n = <i32>((load<u32>(e) - 32) / 8);
        const id = load<u32>(e + 4);
        (pre ? t.prefix : t.postfix).add(id, 0, e + 8, n, 1);
        lensOf(pre ? t.prefixLens : t.postfixLens, id).add(n);
      }
    } else if (kind == L.SEC_INT_SET) {
      for (let j: u32 = 0; j < count; j++) {
        const e = p0 + <usize>j * <usize>size;
        const id = load<u32>(e);
        if (!t.ints.has(id)) t.ints.set(id, new Set<u64>());
        t.ints.get(id).add(load<u64>(e + 8));
      }
    } else if (kind == L.SEC_ADDR_LPM) {
      for (let j: u32 = 0; j < count; j++) {
        const e = p0 + <usize>j * <usize>size;
        const bits = <i32>load<u32>(e) - 64;
        const id = load<u32>(e + 4);
        const fam = load<u8>(e + L.ADDR_K_FAMILY);
        t.addr.add(id, (<u32>fam << 8) | <u32>bits, e + L.ADDR_K_ADDR, fam == 4 ? 4 : 16, 1);
        lensOf(fam == 4 ? t.addrLens4 : t.addrLens6, id).add(bits);
      }
    } else if (kind == L.SEC_BIN_NAMES) {
      for (let j: u32 = 0; j < count; j++) {
        const e = p0 + <usize>j * <usize>size;
        t.binIds.add(0, 0, e + 8, <i32>load<u32>(e + 4), load<u32>(e));
      }
    } else if (kind == L.SEC_BIN_SET) {
      for (let j: u32 = 0; j < count; j++) {
        const e = p0 + <usize>j * <usize>size;
        t.binSet.add((<u64>load<u32>(e) << 32) | <u64>load<u32>(e + 4));
      }
    } else if (kind == L.SEC_SUBSTR) {
      t.substrOff = off;
      t.substrCount = count;
    } else if (kind == L.SEC_FOLLOW) {
      for (let j: u32 = 0; j < count; j++) {
        const e = p0 + <usize>j * <usize>size;
        t.follow.push(new FollowEntry(load<u32>(e), load<u32>(e + 4), load<u32>(e + 8)));
      }
    }
  }
  return t;
}

// ---- lookups, shaped like the kernel's map lookups ----

export function strEqHas(t: Tables, setId: u32, p: usize, n: i32): bool {
  if (n > L.EQ_MAX) return false;
  return t.strEq.find(setId, 0, p, n) >= 0;
}

/** LPM lookup over bytes: is any stored prefix of the first min(n, max) bytes in the set?
 * The hash is extended byte by byte and probed only at the lengths the set holds. */
export function lpmHas(tbl: ByteTable, lens: Map<u32, LenSet>, setId: u32, p: usize, n: i32, max: i32): bool {
  if (!lens.has(setId)) return false;
  const ls = lens.get(setId);
  const avail = min(min(n, max), ls.max);
  let h = hashHead(setId, 0);
  if (ls.has[0] && tbl.findHashed(h, setId, 0, p, 0) >= 0) return true;
  for (let i = 0; i < avail; i++) {
    h = mix(h, <u32>load<u8>(p + <usize>i));
    if (unchecked(ls.has[i + 1]) && tbl.findHashed(h, setId, 0, p, i + 1) >= 0) return true;
  }
  return false;
}

export function prefixHas(t: Tables, setId: u32, p: usize, n: i32): bool {
  return lpmHas(t.prefix, t.prefixLens, setId, p, n, L.PREFIX_MAX);
}

const scratch = new Uint8Array(L.POSTFIX_MAX);

/** Postfix: the kernel reverses the last min(n, 128) bytes and does a prefix lookup. */
export function postfixHas(t: Tables, setId: u32, p: usize, n: i32): bool {
  const k = n < L.POSTFIX_MAX ? n : L.POSTFIX_MAX;
  for (let i = 0; i < k; i++) scratch[i] = load<u8>(p + <usize>(n - 1 - i));
  return lpmHas(t.postfix, t.postfixLens, setId, scratch.dataStart, k, L.POSTFIX_MAX);
}

const addrScratch = new Uint8Array(16);

export function addrHas(t: Tables, setId: u32, family: i32, addr: usize): bool {
  const lm = family == 4 ? t.addrLens4 : t.addrLens6;
  if (!lm.has(setId)) return false;
  const ls = lm.get(setId);
  const n = family == 4 ? 4 : 16;
  for (let i = 0; i < ls.lens.length; i++) {
    const l = unchecked(ls.lens[i]);
    for (let j = 0; j < 16; j++) addrScratch[j] = j < n ? load<u8>(addr + <usize>j) : 0;
    maskAddr(addrScratch, l);
    if (t.addr.find(setId, (<u32>family << 8) | <u32>l, addrScratch.dataStart, n) >= 0) return true;
  }
  return false;
}

export function intHas(t: Tables, setId: u32, v: u64): bool {
  return t.ints.has(setId) && t.ints.get(setId).has(v);
}

export function binIdOf(t: Tables, p: usize, n: i32): u32 {
  const i = t.binIds.find(0, 0, p, n);
  return i < 0 ? 0 : unchecked(t.binIds.val[i]);
}

export function binSetHas(t: Tables, setId: u32, binId: u32): bool {
  return binId != 0 && t.binSet.has((<u64>setId << 32) | <u64>binId);
}
