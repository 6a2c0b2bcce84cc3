// Raw BTF: parse, look up, patch and encode (loader.md §3.1, §3.2).
//
// vmlinux BTF (~150k types, 5 MB) is parsed at every agent start, so parsing is lazy:
// one pass records where each type record starts and its kind in typed arrays; names and
// members are decoded only when asked for. Name lookups go through a hash index over the
// raw string bytes (keyed by the essential name, see essentialName) built on first use.
import { readFileSync } from "node:fs";

export enum BtfKind {
  Void = 0,
  Int = 1,
  Ptr = 2,
  Array = 3,
  Struct = 4,
  Union = 5,
  Enum = 6,
  Fwd = 7,
  Typedef = 8,
  Volatile = 9,
  Const = 10,
  Restrict = 11,
  Func = 12,
  FuncProto = 13,
  Var = 14,
  Datasec = 15,
  Float = 16,
  DeclTag = 17,
  TypeTag = 18,
  Enum64 = 19,
}

export const BTF_MAGIC = 0xeb9f;
export const BTF_INT_SIGNED = 1;
export const BTF_INT_CHAR = 2;
export const BTF_INT_BOOL = 4;
export const BTF_FUNC_STATIC = 0;
export const BTF_FUNC_GLOBAL = 1;
export const BTF_FUNC_EXTERN = 2;
export const BTF_VAR_STATIC = 0;
export const BTF_VAR_GLOBAL_ALLOCATED = 1;
export const BTF_VAR_GLOBAL_EXTERN = 2;

/** Malformed BTF or a failed lookup; the message says which type id or offset. */
export class BtfError extends Error {
  override name = "BtfError";
}

export interface BtfMember {
  name: string;
  type: number;
  /** Offset from the start of the composite, in bits. */
  bitOffset: number;
  /** Non-zero for bitfields (only set when the composite's kind_flag is on). */
  bitfieldSize: number;
}
export interface BtfEnumValue {
  name: string;
  value: bigint;
}
export interface BtfParam {
  name: string;
  type: number;
}
export interface BtfVarSecinfo {
  type: number;
  offset: number;
  size: number;
}

interface Base {
  id: number;
  name: string;
}
export type BtfType =
  | (Base & { kind: BtfKind.Void })
  | (Base & { kind: BtfKind.Int; size: number; encoding: number; bitOffset: number; bits: number })
  | (Base & { kind: BtfKind.Ptr | BtfKind.Typedef | BtfKind.Volatile | BtfKind.Const | BtfKind.Restrict | BtfKind.TypeTag; type: number })
  | (Base & { kind: BtfKind.Array; elemType: number; indexType: number; nelems: number })
  | (Base & { kind: BtfKind.Struct | BtfKind.Union; size: number; members: BtfMember[] })
  | (Base & { kind: BtfKind.Enum | BtfKind.Enum64; size: number; signed: boolean; values: BtfEnumValue[] })
  | (Base & { kind: BtfKind.Fwd; union: boolean })
  | (Base & { kind: BtfKind.Func; type: number; linkage: number })
  | (Base & { kind: BtfKind.FuncProto; returnType: number; params: BtfParam[] })
  | (Base & { kind: BtfKind.Var; type: number; linkage: number })
  | (Base & { kind: BtfKind.Datasec; size: number; vars: BtfVarSecinfo[] })
  | (Base & { kind: BtfKind.Float; size: number })
  | (Base & { kind: BtfKind.DeclTag; type: number; componentIdx: number });

/** The member(s) of BtfType that can have kind K (some members cover several kinds). */
export type BtfTypeOf<K extends BtfKind> = BtfType extends infer T ? (T extends { kind: infer TK } ? (K extends TK ? T : never) : never) : never;

const decoder = new TextDecoder();
const encoder = new TextEncoder();

/** Bytes of kind-specific data after the 12-byte common header. */
function trailingSize(kind: number, vlen: number, at: number): number {
  switch (kind) {
    case BtfKind.Int:
    case BtfKind.Var:
    case BtfKind.DeclTag:
      return 4;
    case BtfKind.Array:
      return 12;
    case BtfKind.Struct:
    case BtfKind.Union:
    case BtfKind.Datasec:
    case BtfKind.Enum64:
      return 12 * vlen;
    case BtfKind.Enum:
    case BtfKind.FuncProto:
      return 8 * vlen;
    case BtfKind.Ptr:
    case BtfKind.Fwd:
    case BtfKind.Typedef:
    case BtfKind.Volatile:
    case BtfKind.Const:
    case BtfKind.Restrict:
    case BtfKind.Func:
    case BtfKind.Float:
    case BtfKind.TypeTag:
      return 0;
    default:
      throw new BtfError(`parse btf: unknown kind ${kind} at type offset ${at}`);
  }
}

/**
 * The name without a libbpf "flavor" suffix: "task_struct___local" -> "task_struct".
 * CO-RE matches local and target types on this.
 */
export function essentialName(name: string): string {
  const end = essentialEnd(encoder.encode(name), 0, name.length);
  return end === name.length ? name : name.slice(0, end);
}

/** Length of the essential part of the ASCII string bytes[start, start+len). */
function essentialEnd(bytes: Uint8Array, start: number, len: number): number {
  // libbpf: the last "___" that is preceded by a non-'_' and followed by a non-'_'.
  for (let i = len - 4; i >= 1; i--) {
    if (
      bytes[start + i] === 0x5f &&
      bytes[start + i + 1] === 0x5f &&
      bytes[start + i + 2] === 0x5f &&
      bytes[start + i - 1] !== 0x5f &&
      bytes[start + i + 3] !== 0x5f
    )
      return i;
  }
  return len;
}

function fnv1a(bytes: Uint8Array, start: number, end: number): number {
  let h = 0x811c9dc5;
  for (let i = start; i < end; i++) {
    h ^= bytes[i]!;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

// Words of trailing data per kind: fixed part, and per vlen entry (-1 = unknown kind).
const TRAILING_WORDS_FIXED = [-1, 1, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 1, 0, 0];
const TRAILING_WORDS_PER_VLEN = [0, 0, 0, 0, 3, 3, 2, 0, 0, 0, 0, 0, 0, 2, 0, 3, 0, 0, 0, 3];

export interface BtfParseOptions {
  /** Decoded types are cached per id; off for huge BTF where callers touch few types. */
  cacheTypes?: boolean;
  /** The caller will not touch `raw` again: use it without copying. */
  takeOwnership?: boolean;
}

interface NameTable {
  /** head[hash & mask] = first id in the chain, -1 = empty. */
  head: Int32Array;
  /** next[id] = following id with the same hash bucket, -1 = end. */
  next: Int32Array;
}

export class Btf {
  /** Type section bytes (owned copy; the fix-ups patch it in place). */
  private types: Uint8Array;
  private tv: DataView;
  /** String section bytes, plus strings appended by addString. */
  private strings: Uint8Array;
  private stringsLen: number;
  /** offsets[id] = byte offset of the record in `types`; offsets[0] unused (void). */
  private offsets: Uint32Array;
  private kinds: Uint8Array;
  private _count: number;
  private cache: Map<number, BtfType> | undefined;
  private funcNames: NameTable | undefined;
  private otherNames: NameTable | undefined;
  private strCache = new Map<number, string>();

  private constructor(types: Uint8Array, strings: Uint8Array, cacheTypes: boolean) {
    this.types = types;
    this.tv = new DataView(types.buffer, types.byteOffset, types.byteLength);
    this.strings = strings;
    this.stringsLen = strings.length;
    this.cache = cacheTypes ? new Map() : undefined;
    const idx = this.index();
    this.offsets = idx.offsets;
    this.kinds = idx.kinds;
    this._count = idx.count;
  }

  /** Parse raw BTF (the `.BTF` section or /sys/kernel/btf/vmlinux). Copies the input. */
  static parse(raw: Uint8Array, opts: BtfParseOptions = {}): Btf {
    if (raw.length < 24) throw new BtfError(`parse btf: ${raw.length} bytes is shorter than the header`);
    const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
    const magic = dv.getUint16(0, true);
    if (magic === 0x9feb) throw new BtfError("parse btf: big-endian BTF is not supported");
    if (magic !== BTF_MAGIC) throw new BtfError(`parse btf: bad magic 0x${magic.toString(16)}`);
    const version = dv.getUint8(2);
    if (version !== 1) throw new BtfError(`parse btf: unsupported version ${version}`);
    const hdrLen = dv.getUint32(4, true);
    const typeOff = dv.getUint32(8, true);
    const typeLen = dv.getUint32(12, true);
    const strOff = dv.getUint32(16, true);
    const strLen = dv.getUint32(20, true);
    if (hdrLen < 24 || hdrLen + typeOff + typeLen > raw.length || hdrLen + strOff + strLen > raw.length)
      throw new BtfError(`parse btf: sections run past the end (${raw.length} bytes)`);
    // Fix-ups patch the type section in place, so it is copied unless the caller hands the
    // buffer over (loadKernelBtf: copying 5 MB costs more than indexing it). A u32 view needs
    // 4-byte alignment, so a misaligned section is copied regardless.
    const copy = (a: number, b: number): Uint8Array => {
      const view = new Uint8Array(raw.buffer, raw.byteOffset + a, b - a);
      return opts.takeOwnership && (raw.byteOffset + a) % 4 === 0 ? view : new Uint8Array(view);
    };
    const types = copy(hdrLen + typeOff, hdrLen + typeOff + typeLen);
    const strings = copy(hdrLen + strOff, hdrLen + strOff + strLen);
    if (strings.length > 0 && strings[0] !== 0) throw new BtfError("parse btf: string section does not start with NUL");
    return new Btf(types, strings, opts.cacheTypes ?? true);
  }

  /** Build a Btf from already separated sections (used by tests and the encoder round-trip). */
  static fromSections(types: Uint8Array, strings: Uint8Array): Btf {
    return new Btf(types.slice(), strings.slice(), true);
  }

  private index(): { offsets: Uint32Array; kinds: Uint8Array; count: number } {
    const len = this.types.length;
    if (len % 4 !== 0) throw new BtfError(`parse btf: type section length ${len} is not a multiple of 4`);
    // parse() guarantees 4-byte alignment, so a u32 view works; this loop runs
    // ~150k times at every agent start, so it avoids DataView calls and switch dispatch.
    const u32 = new Uint32Array(this.types.buffer, this.types.byteOffset, len >>> 2);
    const words = u32.length;
    // Records are at least 3 words, so this bounds the count; trimmed after the pass.
    const offsets = new Uint32Array(Math.floor(words / 3) + 2);
    const kinds = new Uint8Array(offsets.length);
    let w = 0;
    let id = 1;
    while (w < words) {
      if (w + 3 > words) throw new BtfError(`parse btf: truncated type ${id} at offset ${w * 4}`);
      const info = u32[w + 1]!;
      const kind = (info >>> 24) & 0x1f;
      const per = TRAILING_WORDS_PER_VLEN[kind];
      const fixed = TRAILING_WORDS_FIXED[kind];
      if (per === undefined || fixed === undefined || fixed < 0) throw new BtfError(`parse btf: unknown kind ${kind} at type offset ${w * 4}`);
      offsets[id] = w * 4;
      kinds[id] = kind;
      w += 3 + fixed + per * (info & 0xffff);
      id++;
    }
    if (w > words) throw new BtfError(`parse btf: truncated type ${id - 1}`);
    return { offsets: offsets.slice(0, id), kinds: kinds.slice(0, id), count: id - 1 };
  }

  /** Number of types, not counting void; valid ids are 1..count. */
  get count(): number {
    return this._count;
  }

  /** String at an offset of the string section. */
  string(off: number): string {
    if (off === 0) return "";
    const cached = this.strCache.get(off);
    if (cached !== undefined) return cached;
    if (off >= this.stringsLen) throw new BtfError(`btf: string offset ${off} out of range`);
    const end = this.strings.indexOf(0, off);
    const s = decoder.decode(this.strings.subarray(off, end < 0 ? this.stringsLen : end));
    this.strCache.set(off, s);
    return s;
  }

  /** Append a string to the string section; returns its offset. */
  addString(s: string): number {
    const bytes = encoder.encode(s);
    const need = this.stringsLen + bytes.length + 1;
    if (need > this.strings.length) {
      const grown = new Uint8Array(Math.max(need, this.strings.length * 2, 64));
      grown.set(this.strings.subarray(0, this.stringsLen));
      this.strings = grown;
    }
    const off = this.stringsLen;
    this.strings.set(bytes, off);
    this.strings[off + bytes.length] = 0;
    this.stringsLen = need;
    return off;
  }

  private check(id: number): number {
    if (!Number.isInteger(id) || id < 1 || id > this._count) throw new BtfError(`btf: type id ${id} out of range 1..${this._count}`);
    return this.offsets[id]!;
  }

  kind(id: number): BtfKind {
    if (id === 0) return BtfKind.Void;
    this.check(id);
    return this.kinds[id]! as BtfKind;
  }

  nameOf(id: number): string {
    if (id === 0) return "";
    return this.string(this.tv.getUint32(this.check(id), true));
  }

  private nameOffOf(id: number): number {
    return this.tv.getUint32(this.offsets[id]!, true);
  }

  /** Decoded type; void for id 0. */
  type(id: number): BtfType {
    if (id === 0) return { id: 0, name: "", kind: BtfKind.Void };
    const hit = this.cache?.get(id);
    if (hit) return hit;
    const t = this.decode(id);
    this.cache?.set(id, t);
    return t;
  }

  /** Decoded type that must be of one of the given kinds. */
  typeOf<K extends BtfKind>(id: number, ...kinds: K[]): BtfTypeOf<K> {
    const t = this.type(id);
    if (!(kinds as BtfKind[]).includes(t.kind)) throw new BtfError(`btf: type ${id} is ${BtfKind[t.kind]}, want ${kinds.map((k) => BtfKind[k]).join("|")}`);
    return t as BtfTypeOf<K>;
  }

  private decode(id: number): BtfType {
    const off = this.check(id);
    const dv = this.tv;
    const name = this.string(dv.getUint32(off, true));
    const info = dv.getUint32(off + 4, true);
    const kind = this.kinds[id]! as BtfKind;
    const vlen = info & 0xffff;
    const kflag = (info >>> 31) === 1;
    const st = dv.getUint32(off + 8, true);
    const d = off + 12;
    switch (kind) {
      case BtfKind.Int: {
        const v = dv.getUint32(d, true);
        return { id, name, kind, size: st, encoding: (v >>> 24) & 0xf, bitOffset: (v >>> 16) & 0xff, bits: v & 0xff };
      }
      case BtfKind.Ptr:
      case BtfKind.Typedef:
      case BtfKind.Volatile:
      case BtfKind.Const:
      case BtfKind.Restrict:
      case BtfKind.TypeTag:
        return { id, name, kind, type: st };
      case BtfKind.Array:
        return { id, name, kind, elemType: dv.getUint32(d, true), indexType: dv.getUint32(d + 4, true), nelems: dv.getUint32(d + 8, true) };
      case BtfKind.Struct:
      case BtfKind.Union: {
        const members: BtfMember[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = d + i * 12;
          const raw = dv.getUint32(m + 8, true);
          members.push({
            name: this.string(dv.getUint32(m, true)),
            type: dv.getUint32(m + 4, true),
            bitOffset: kflag ? raw & 0xffffff : raw,
            bitfieldSize: kflag ? raw >>> 24 : 0,
          });
        }
        return { id, name, kind, size: st, members };
      }
      case BtfKind.Enum: {
        const values: BtfEnumValue[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = d + i * 8;
          const v = kflag ? dv.getInt32(m + 4, true) : dv.getUint32(m + 4, true);
          values.push({ name: this.string(dv.getUint32(m, true)), value: BigInt(v) });
        }
        return { id, name, kind, size: st, signed: kflag, values };
      }
      case BtfKind.Enum64: {
        const values: BtfEnumValue[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = d + i * 12;
          let v = (BigInt(dv.getUint32(m + 8, true)) << 32n) | BigInt(dv.getUint32(m + 4, true));
          if (kflag) v = BigInt.asIntN(64, v);
          values.push({ name: this.string(dv.getUint32(m, true)), value: v });
        }
        return { id, name, kind, size: st, signed: kflag, values };
      }
      case BtfKind.Fwd:
        return { id, name, kind, union: kflag };
      case BtfKind.Func:
        return { id, name, kind, type: st, linkage: vlen };
      case BtfKind.FuncProto: {
        const params: BtfParam[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = d + i * 8;
          params.push({ name: this.string(dv.getUint32(m, true)), type: dv.getUint32(m + 4, true) });
        }
        return { id, name, kind, returnType: st, params };
      }
      case BtfKind.Var:
        return { id, name, kind, type: st, linkage: dv.getUint32(d, true) };
      case BtfKind.Datasec: {
        const vars: BtfVarSecinfo[] = [];
        for (let i = 0; i < vlen; i++) {
          const m = d + i * 12;
          vars.push({ type: dv.getUint32(m, true), offset: dv.getUint32(m + 4, true), size: dv.getUint32(m + 8, true) });
        }
        return { id, name, kind, size: st, vars };
      }
      case BtfKind.Float:
        return { id, name, kind, size: st };
      case BtfKind.DeclTag:
        return { id, name, kind, type: st, componentIdx: dv.getInt32(d, true) };
      default:
        throw new BtfError(`btf: type ${id} has unknown kind ${kind}`);
    }
  }

  // ---- name index ------------------------------------------------------------------

  /**
   * Hash index of names for either the FUNC types or all other kinds. vmlinux has ~56k named
   * FUNCs against ~15k other named types, and CO-RE and tp_btf lookups never need FUNCs, so
   * the agent's start-up path builds only the small table.
   */
  private buildNameIndex(funcs: boolean): NameTable {
    const n = this._count;
    const kinds = this.kinds;
    let members = 0;
    for (let id = 1; id <= n; id++) if ((kinds[id] === BtfKind.Func) === funcs) members++;
    let size = 16;
    while (size < members * 2) size <<= 1;
    const head = new Int32Array(size).fill(-1);
    const next = new Int32Array(n + 1).fill(-1);
    const s = this.strings;
    const u32 = new Uint32Array(this.types.buffer, this.types.byteOffset, this.types.length >>> 2);
    const offs = this.offsets;
    const mask = size - 1;
    const limit = this.stringsLen;
    // One forward pass per name: FNV-1a of the whole name, remembering the hash of the prefix
    // before the last "___flavor" suffix (same rule as essentialEnd), which is the key.
    // Insert in descending id order so each chain lists ids ascending.
    for (let id = n; id >= 1; id--) {
      if ((kinds[id] === BtfKind.Func) !== funcs) continue;
      const no = u32[offs[id]! >>> 2]!;
      if (no === 0) continue;
      let h = 0x811c9dc5;
      let ess = -1;
      for (let i = no; i < limit; i++) {
        const c = s[i]!;
        if (c === 0) break;
        if (c === 0x5f && i > no && s[i - 1] !== 0x5f && s[i + 1] === 0x5f && s[i + 2] === 0x5f) {
          const after = s[i + 3];
          if (after !== undefined && after !== 0x5f && after !== 0) ess = h;
        }
        h ^= c;
        h = Math.imul(h, 0x01000193);
      }
      const key = ((ess === -1 ? h : ess) >>> 0) & mask;
      next[id] = head[key]!;
      head[key] = id;
    }
    return { head, next };
  }

  private table(funcs: boolean): NameTable {
    if (funcs) return (this.funcNames ??= this.buildNameIndex(true));
    return (this.otherNames ??= this.buildNameIndex(false));
  }

  /** Does the string at `off` equal `want` (exactly, or only in its essential part)? */
  private nameMatches(off: number, want: Uint8Array, essential: boolean): boolean {
    const s = this.strings;
    for (let i = 0; i < want.length; i++) if (s[off + i] !== want[i]) return false;
    const after = off + want.length;
    if (s[after] === 0 || after >= this.stringsLen) return true;
    if (!essential) return false;
    // Essential match: the rest must be a "___flavor" suffix that essentialEnd would strip.
    let end = after;
    while (end < this.stringsLen && s[end] !== 0) end++;
    return essentialEnd(s, off, end - off) === want.length;
  }

  private lookup(name: string, essential: boolean, kinds?: readonly BtfKind[]): number[] {
    if (name === "") return [];
    const want = encoder.encode(essential ? essentialName(name) : name);
    // The index is keyed on essential names, so an exact lookup hashes the essential part too.
    const key = essential ? want : encoder.encode(essentialName(name));
    const h = fnv1a(key, 0, key.length);
    const wantFuncs = kinds === undefined || kinds.includes(BtfKind.Func);
    const wantOthers = kinds === undefined || kinds.some((k) => k !== BtfKind.Func);
    const out: number[] = [];
    for (const t of [wantOthers ? this.table(false) : undefined, wantFuncs ? this.table(true) : undefined]) {
      if (!t) continue;
      for (let id = t.head[h & (t.head.length - 1)]!; id !== -1; id = t.next[id]!) {
        if (kinds && !kinds.includes(this.kinds[id]! as BtfKind)) continue;
        if (this.nameMatches(this.nameOffOf(id), want, essential)) out.push(id);
      }
    }
    return wantFuncs && wantOthers ? out.sort((a, b) => a - b) : out;
  }

  /** Ids of types named exactly `name`, optionally of the given kinds, ascending. */
  findByName(name: string, ...kinds: BtfKind[]): number[] {
    return this.lookup(name, false, kinds.length ? kinds : undefined);
  }

  /** The single type named `name` of kind `kind`, or undefined. Throws if ambiguous. */
  findOne(name: string, kind: BtfKind): number | undefined {
    const ids = this.findByName(name, kind);
    if (ids.length > 1) throw new BtfError(`btf: ${ids.length} ${BtfKind[kind]} types named ${name}`);
    return ids[0];
  }

  /** Ids of types whose essential name equals essentialName(name) (CO-RE candidates). */
  findByEssentialName(name: string, ...kinds: BtfKind[]): number[] {
    return this.lookup(name, true, kinds.length ? kinds : undefined);
  }

  // ---- type helpers ----------------------------------------------------------------

  /** Follow const/volatile/restrict/type_tag/typedef to the underlying type id. */
  skipModsAndTypedefs(id: number): number {
    for (let depth = 0; depth < 64; depth++) {
      const k = this.kind(id);
      if (k !== BtfKind.Typedef && k !== BtfKind.Const && k !== BtfKind.Volatile && k !== BtfKind.Restrict && k !== BtfKind.TypeTag) return id;
      id = this.tv.getUint32(this.offsets[id]! + 8, true);
    }
    throw new BtfError(`btf: modifier chain too long at type ${id}`);
  }

  /** Size in bytes of a type (follows modifiers; pointers are 8 bytes on BPF). */
  sizeOf(id: number): number {
    for (let depth = 0; depth < 64; depth++) {
      id = this.skipModsAndTypedefs(id);
      const t = this.type(id);
      switch (t.kind) {
        case BtfKind.Int:
        case BtfKind.Struct:
        case BtfKind.Union:
        case BtfKind.Enum:
        case BtfKind.Enum64:
        case BtfKind.Datasec:
        case BtfKind.Float:
          return t.size;
        case BtfKind.Ptr:
          return 8;
        case BtfKind.Array:
          return t.nelems * this.sizeOf(t.elemType);
        case BtfKind.Var:
          id = t.type;
          continue;
        default:
          throw new BtfError(`btf: type ${id} (${BtfKind[t.kind]}) has no size`);
      }
    }
    throw new BtfError(`btf: size of type ${id} does not resolve`);
  }

  // ---- mutation (fix-ups before BTF_LOAD) ------------------------------------------

  /** Raw record fields, for patching in place. */
  private recordOffset(id: number): number {
    return this.check(id);
  }

  setNameOff(id: number, nameOff: number): void {
    this.tv.setUint32(this.recordOffset(id), nameOff, true);
    this.cache?.delete(id);
  }

  setInfo(id: number, kind: BtfKind, vlen: number, kflag: boolean): void {
    const off = this.recordOffset(id);
    const old = this.tv.getUint32(off + 4, true);
    if (trailingSize(kind, vlen, off) !== trailingSize((old >>> 24) & 0x1f, old & 0xffff, off))
      throw new BtfError(`btf: retyping ${id} would change its record size`);
    this.tv.setUint32(off + 4, ((kflag ? 1 : 0) << 31) | ((kind & 0x1f) << 24) | (vlen & 0xffff), true);
    this.kinds[id] = kind;
    this.cache?.delete(id);
  }

  /** Rewrite a DATASEC's size and secinfos (count must stay the same). */
  setDatasec(id: number, size: number, vars: BtfVarSecinfo[]): void {
    const off = this.recordOffset(id);
    if (this.kinds[id] !== BtfKind.Datasec) throw new BtfError(`btf: type ${id} is not a DATASEC`);
    const vlen = this.tv.getUint32(off + 4, true) & 0xffff;
    if (vars.length !== vlen) throw new BtfError(`btf: DATASEC ${id} has ${vlen} entries, got ${vars.length}`);
    this.tv.setUint32(off + 8, size, true);
    vars.forEach((v, i) => {
      this.tv.setUint32(off + 12 + i * 12, v.type, true);
      this.tv.setUint32(off + 16 + i * 12, v.offset, true);
      this.tv.setUint32(off + 20 + i * 12, v.size, true);
    });
    this.cache?.delete(id);
  }

  /** Set a VAR's or FUNC's linkage. */
  setLinkage(id: number, linkage: number): void {
    const off = this.recordOffset(id);
    const k = this.kinds[id];
    if (k === BtfKind.Var) this.tv.setUint32(off + 12, linkage, true);
    else if (k === BtfKind.Func) this.setInfo(id, BtfKind.Func, linkage, false);
    else throw new BtfError(`btf: type ${id} has no linkage`);
    this.cache?.delete(id);
  }

  /** Append raw type records (already encoded); returns the id of the first one. */
  appendRaw(records: Uint8Array): number {
    const first = this._count + 1;
    const merged = new Uint8Array(this.types.length + records.length);
    merged.set(this.types);
    merged.set(records, this.types.length);
    this.types = merged;
    this.tv = new DataView(merged.buffer);
    const idx = this.index();
    this.offsets = idx.offsets;
    this.kinds = idx.kinds;
    this._count = idx.count;
    this.funcNames = undefined;
    this.otherNames = undefined;
    return first;
  }

  /** A deep copy, so fix-ups do not touch a spec shared with other loads. */
  clone(): Btf {
    return new Btf(this.types.slice(), this.strings.slice(0, this.stringsLen), this.cache !== undefined);
  }

  /** Raw BTF: 24-byte header, types, strings. */
  encode(): Uint8Array {
    const hdr = 24;
    const out = new Uint8Array(hdr + this.types.length + this.stringsLen);
    const dv = new DataView(out.buffer);
    dv.setUint16(0, BTF_MAGIC, true);
    dv.setUint8(2, 1);
    dv.setUint8(3, 0);
    dv.setUint32(4, hdr, true);
    dv.setUint32(8, 0, true);
    dv.setUint32(12, this.types.length, true);
    dv.setUint32(16, this.types.length, true);
    dv.setUint32(20, this.stringsLen, true);
    out.set(this.types, hdr);
    out.set(this.strings.subarray(0, this.stringsLen), hdr + this.types.length);
    return out;
  }
}

/** Encode one type record (used to append dummy types during sanitizing). */
export function encodeRecord(nameOff: number, kind: BtfKind, vlen: number, kflag: boolean, sizeOrType: number, trailing: number[] = []): Uint8Array {
  const out = new Uint8Array(12 + trailing.length * 4);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, nameOff, true);
  dv.setUint32(4, ((kflag ? 1 : 0) << 31) | ((kind & 0x1f) << 24) | (vlen & 0xffff), true);
  dv.setUint32(8, sizeOrType >>> 0, true);
  trailing.forEach((v, i) => dv.setUint32(12 + i * 4, v >>> 0, true));
  return out;
}

/** What the ELF knows about data sections, for the DATASEC fix-ups. */
export interface DatasecLayout {
  /** Size of the ELF section with this name, or undefined when there is none. */
  sectionSize(name: string): number | undefined;
  /** st_value of the symbol `varName` in section `section`, or undefined. */
  symbolOffset(section: string, varName: string): number | undefined;
}

/**
 * A copy of object BTF that the kernel accepts: DATASEC sizes and variable offsets filled
 * in from the ELF (clang leaves them 0), extern VARs/FUNCs given linkages the kernel allows,
 * DATASECs without an ELF section (.kconfig, .ksyms) given a dummy layout, '?' in DATASEC
 * names replaced. Type ids are unchanged (dummy types are appended), so func_info and map
 * BTF ids from the object stay valid.
 */
export function fixupBtfForLoad(btf: Btf, layout: DatasecLayout): Btf {
  const out = btf.clone();
  let dummyInt = 0;
  const count = out.count;
  for (let id = 1; id <= count; id++) {
    const kind = out.kind(id);
    if (kind === BtfKind.Func) {
      const f = out.typeOf(id, BtfKind.Func);
      if (f.linkage === BTF_FUNC_EXTERN) out.setLinkage(id, BTF_FUNC_GLOBAL);
      continue;
    }
    if (kind !== BtfKind.Datasec) continue;
    const ds = out.typeOf(id, BtfKind.Datasec);
    if (ds.name.includes("?")) out.setNameOff(id, out.addString(ds.name.replaceAll("?", "_")));
    const secSize = layout.sectionSize(ds.name);
    if (secSize !== undefined) {
      if (ds.size !== 0) continue;
      const vars = ds.vars.map((v) => {
        const varT = out.type(v.type);
        if (varT.kind !== BtfKind.Var) return v;
        const off = layout.symbolOffset(ds.name, varT.name);
        if (off === undefined) throw new BtfError(`fix up btf: no symbol for variable ${varT.name} in ${ds.name}`);
        return { type: v.type, offset: off, size: v.size };
      });
      vars.sort((a, b) => a.offset - b.offset);
      out.setDatasec(id, secSize, vars);
      continue;
    }
    // No ELF section backs it (.kconfig/.ksyms externs): lay the entries out one after
    // another; FUNC entries (kfuncs) become int VARs because DATASECs may only hold VARs.
    let offset = 0;
    const vars: BtfVarSecinfo[] = [];
    for (const v of ds.vars) {
      const t = out.type(v.type);
      if (t.kind === BtfKind.Var) {
        if (t.linkage === BTF_VAR_GLOBAL_EXTERN) out.setLinkage(v.type, BTF_VAR_GLOBAL_ALLOCATED);
        const size = Math.max(1, out.sizeOf(t.type));
        const align = Math.min(8, size);
        offset = Math.ceil(offset / align) * align;
        vars.push({ type: v.type, offset, size });
        offset += size;
      } else {
        if (dummyInt === 0) dummyInt = out.appendRaw(encodeRecord(out.addString("__ward_dummy_int"), BtfKind.Int, 0, false, 4, [32]));
        const varId = out.appendRaw(encodeRecord(out.addString(t.name), BtfKind.Var, 0, false, dummyInt, [BTF_VAR_GLOBAL_ALLOCATED]));
        offset = Math.ceil(offset / 4) * 4;
        vars.push({ type: varId, offset, size: 4 });
        offset += 4;
      }
    }
    out.setDatasec(id, Math.max(offset, 1), vars);
  }
  return out;
}

let kernelBtf: Btf | undefined;

/**
 * Forgets the parsed vmlinux BTF (about 10 MB of heap once indexed). The agent calls this
 * once its sensors are attached; a later load (a policy that needs CO-RE) parses it again,
 * in about 50 ms.
 */
export function releaseKernelBtf(): void {
  kernelBtf = undefined;
}

/** vmlinux BTF of the running kernel, parsed once per process. */
export function loadKernelBtf(path = "/sys/kernel/btf/vmlinux"): Btf {
  if (path === "/sys/kernel/btf/vmlinux" && kernelBtf) return kernelBtf;
  let raw: Uint8Array;
  try {
    raw = readFileSync(path);
  } catch (e) {
    throw new BtfError(`load kernel btf from ${path}: ${(e as Error).message}`);
  }
  const btf = Btf.parse(raw, { cacheTypes: true, takeOwnership: true });
  if (path === "/sys/kernel/btf/vmlinux") kernelBtf = btf;
  return btf;
}
