// The userspace image of the kernel maps: built from the same blob the kernel maps are
// filled from, and queried the way the kernel queries them (exact-key hash lookups,
// longest-prefix lookups), so a userspace decision is the kernel's decision.
import { bytesKey } from "./io";
import * as L from "./layout";
import { maskAddr } from "./parse";

/** An LPM map restricted to one set: existence of any stored prefix of the key. */
export class LpmSet {
  keys: Set<string> = new Set();
  lens: i32[] = []; // distinct prefix lengths, longest first

  add(key: string, len: i32): void {
    this.keys.add(key);
    if (!this.lens.includes(len)) {
      this.lens.push(len);
      this.lens.sort((a: i32, b: i32): i32 => b - a);
    }
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
  strEq: Set<string> = new Set();
  prefix: Map<u32, LpmSet> = new Map();
  postfix: Map<u32, LpmSet> = new Map();
  ints: Map<u32, Set<u64>> = new Map();
  addr4: Map<u32, LpmSet> = new Map();
  addr6: Map<u32, LpmSet> = new Map();
  binIds: Map<string, u32> = new Map();
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

function lpmOf(m: Map<u32, LpmSet>, id: u32): LpmSet {
  if (m.has(id)) return m.get(id);
  const s = new LpmSet();
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
        t.strEq.add(bytesKey(load<u32>(e), e + 8, <i32>load<u32>(e + 4)));
      }
    } else if (kind == L.SEC_STR_PREFIX || kind == L.SEC_STR_POSTFIX) {
      const m = kind == L.SEC_STR_PREFIX ? t.prefix : t.postfix;
      for (let j: u32 = 0; j < count; j++) {
        const e = p0 + <usize>j * <usize>size;
        const n = <i32>((load<u32>(e) - 32) / 8);
        const id = load<u32>(e + 4);
        lpmOf(m, id).add(bytesKey(id, e + 8, n), n);
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
        lpmOf(fam == 4 ? t.addr4 : t.addr6, id).add(bytesKey(id, e + L.ADDR_K_ADDR, fam == 4 ? 4 : 16) + "/" + bits.toString(), bits);
      }
    } else if (kind == L.SEC_BIN_NAMES) {
      for (let j: u32 = 0; j < count; j++) {
        const e = p0 + <usize>j * <usize>size;
        t.binIds.set(bytesKey(0, e + 8, <i32>load<u32>(e + 4)), load<u32>(e));
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
  return t.strEq.has(bytesKey(setId, p, n));
}

/** LPM lookup over bytes: key data is the first min(n, max) bytes. */
export function lpmHas(m: Map<u32, LpmSet>, setId: u32, p: usize, n: i32, max: i32): bool {
  if (!m.has(setId)) return false;
  const s = m.get(setId);
  const avail = n < max ? n : max;
  for (let i = 0; i < s.lens.length; i++) {
    const l = s.lens[i];
    if (l > avail) continue;
    if (s.keys.has(bytesKey(setId, p, l))) return true;
  }
  return false;
}

const scratch = new Uint8Array(L.POSTFIX_MAX);

/** Postfix: the kernel reverses the last min(n, 128) bytes and does a prefix lookup. */
export function postfixHas(t: Tables, setId: u32, p: usize, n: i32): bool {
  const k = n < L.POSTFIX_MAX ? n : L.POSTFIX_MAX;
  for (let i = 0; i < k; i++) scratch[i] = load<u8>(p + <usize>(n - 1 - i));
  return lpmHas(t.postfix, setId, scratch.dataStart, k, L.POSTFIX_MAX);
}

const addrScratch = new Uint8Array(16);

export function addrHas(t: Tables, setId: u32, family: i32, addr: usize): bool {
  const m = family == 4 ? t.addr4 : t.addr6;
  if (!m.has(setId)) return false;
  const s = m.get(setId);
  const n = family == 4 ? 4 : 16;
  for (let i = 0; i < s.lens.length; i++) {
    const l = s.lens[i];
    for (let j = 0; j < 16; j++) addrScratch[j] = j < n ? load<u8>(addr + <usize>j) : 0;
    maskAddr(addrScratch, l);
    if (s.keys.has(bytesKey(setId, addrScratch.dataStart, n) + "/" + l.toString())) return true;
  }
  return false;
}

export function intHas(t: Tables, setId: u32, v: u64): bool {
  return t.ints.has(setId) && t.ints.get(setId).has(v);
}

export function binIdOf(t: Tables, p: usize, n: i32): u32 {
  const k = bytesKey(0, p, n);
  return t.binIds.has(k) ? t.binIds.get(k) : 0;
}

export function binSetHas(t: Tables, setId: u32, binId: u32): bool {
  return binId != 0 && t.binSet.has((<u64>setId << 32) | <u64>binId);
}
