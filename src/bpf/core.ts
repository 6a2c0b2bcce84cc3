// CO-RE: rewrite instructions compiled against bpf/include/vmlinux.h so they match the running
// kernel's BTF (loader.md §3.4, after libbpf relo_core.c). Field offsets/sizes/existence, type
// existence/size/ids, enum values. A relocation that cannot be resolved poisons its instruction
// with `call 0xbad2310`: dead code (behind a bpf_core_field_exists guard) is pruned by the
// verifier, live code makes it fail at that instruction.
import { BTF_INT_SIGNED, Btf, BtfKind, essentialName, type BtfMember } from "./btf.ts";
import { CoreReloKind, type CoreReloRecord } from "./btf-ext.ts";
import { BPF_ALU, BPF_ALU64, BPF_B, BPF_DW, BPF_H, BPF_K, BPF_LDX, BPF_ST, BPF_STX, BPF_W, Insns, insnClass } from "./insn.ts";

/** A relocation that is malformed or ambiguous (not merely "missing on this kernel"). */
export class CoreError extends Error {
  override name = "CoreError";
}

export interface CoreFixup {
  /** Instruction index within the relocated buffer. */
  insn: number;
  kind: CoreReloKind;
  /** Local root type name and access string, e.g. "task_struct:0:92". */
  spec: string;
  /** What the compiler put in the instruction. */
  local: bigint;
  /** The value written, or undefined when poisoned. */
  target: bigint | undefined;
  poisoned: boolean;
  /** Why it was poisoned. */
  reason?: string;
}

const MAX_ACCESS = 64;
const MAX_DEPTH = 32;

const FIELD_KINDS = new Set([
  CoreReloKind.FieldByteOffset,
  CoreReloKind.FieldByteSize,
  CoreReloKind.FieldExists,
  CoreReloKind.FieldSigned,
  CoreReloKind.FieldLShiftU64,
  CoreReloKind.FieldRShiftU64,
]);
const TYPE_KINDS = new Set([CoreReloKind.TypeIdLocal, CoreReloKind.TypeIdTarget, CoreReloKind.TypeExists, CoreReloKind.TypeSize, CoreReloKind.TypeMatches]);
const ENUM_KINDS = new Set([CoreReloKind.EnumvalExists, CoreReloKind.EnumvalValue]);

function isComposite(k: BtfKind): boolean {
  return k === BtfKind.Struct || k === BtfKind.Union;
}
function kindsCompatible(a: BtfKind, b: BtfKind): boolean {
  const e = (k: BtfKind): BtfKind => (k === BtfKind.Enum64 ? BtfKind.Enum : k);
  return e(a) === e(b);
}

/** One step of the high-level spec: a named member, or an array index. */
interface Accessor {
  idx: number;
  name?: string;
}

interface FieldSpec {
  rootId: number;
  /** Raw indices (local only). */
  raw: number[];
  /** High-level accessors: [0] is the root array index, then named members / array indices. */
  access: Accessor[];
  bitOffset: number;
  /** Type of the final field (or array element). */
  fieldType: number;
  bitfieldSize: number;
  /** The last accessor was an array index (not a member). */
  lastIsArray: boolean;
  /** For enum kinds: the enumerator name and value. */
  enumName?: string;
  enumValue?: bigint;
}

function parseAccess(s: string): number[] {
  const parts = s.split(":");
  if (parts.length > MAX_ACCESS || parts.some((p) => !/^\d+$/.test(p))) throw new CoreError(`bad CO-RE access string "${s}"`);
  return parts.map(Number);
}

function isFlexArray(btf: Btf, parentId: number | undefined, memberIdx: number | undefined, nelems: number): boolean {
  if (nelems !== 0 || parentId === undefined || memberIdx === undefined) return false;
  const p = btf.type(parentId);
  return isComposite(p.kind) && p.kind !== BtfKind.Void && "members" in p && memberIdx === p.members.length - 1;
}

/** Walk the local access string (libbpf bpf_core_parse_spec). */
function parseLocalSpec(btf: Btf, rootId: number, accessStr: string, kind: CoreReloKind): FieldSpec {
  const raw = parseAccess(accessStr);
  const spec: FieldSpec = { rootId, raw, access: [], bitOffset: 0, fieldType: rootId, bitfieldSize: 0, lastIsArray: false };
  if (TYPE_KINDS.has(kind)) {
    if (accessStr !== "0") throw new CoreError(`type relocation with access string "${accessStr}"`);
    return spec;
  }
  if (ENUM_KINDS.has(kind)) {
    const t = btf.type(btf.skipModsAndTypedefs(rootId));
    if ((t.kind !== BtfKind.Enum && t.kind !== BtfKind.Enum64) || raw.length !== 1) throw new CoreError(`enum relocation on ${BtfKind[t.kind]} "${accessStr}"`);
    const v = t.values[raw[0]!];
    if (!v) throw new CoreError(`enum relocation index ${raw[0]} out of range`);
    spec.enumName = v.name;
    spec.enumValue = v.value;
    return spec;
  }
  let cur = btf.skipModsAndTypedefs(rootId);
  spec.bitOffset = raw[0]! * btf.sizeOf(cur) * 8;
  spec.access.push({ idx: raw[0]! });
  spec.fieldType = cur;
  let parent: number | undefined;
  let parentMember: number | undefined;
  for (let i = 1; i < raw.length; i++) {
    const idx = raw[i]!;
    const t = btf.type(cur);
    if (t.kind === BtfKind.Struct || t.kind === BtfKind.Union) {
      const m = t.members[idx];
      if (!m) throw new CoreError(`member index ${idx} out of range in ${t.name || "anonymous " + BtfKind[t.kind]}`);
      spec.bitOffset += m.bitOffset;
      spec.bitfieldSize = m.bitfieldSize;
      spec.lastIsArray = false;
      if (m.name !== "") spec.access.push({ idx, name: m.name });
      parent = cur;
      parentMember = idx;
      spec.fieldType = m.type;
      cur = btf.skipModsAndTypedefs(m.type);
    } else if (t.kind === BtfKind.Array) {
      if (idx >= t.nelems && !isFlexArray(btf, parent, parentMember, t.nelems)) throw new CoreError(`array index ${idx} out of range (${t.nelems})`);
      spec.bitOffset += idx * btf.sizeOf(t.elemType) * 8;
      spec.bitfieldSize = 0;
      spec.lastIsArray = true;
      spec.access.push({ idx });
      parent = undefined;
      spec.fieldType = t.elemType;
      cur = btf.skipModsAndTypedefs(t.elemType);
    } else {
      throw new CoreError(`access "${accessStr}" steps into ${BtfKind[t.kind]}`);
    }
  }
  return spec;
}

function fieldsCompatible(lb: Btf, lid: number, tb: Btf, tid: number, depth = 0): boolean {
  if (depth > MAX_DEPTH) return false;
  const l = lb.type(lb.skipModsAndTypedefs(lid));
  const t = tb.type(tb.skipModsAndTypedefs(tid));
  if (isComposite(l.kind) && isComposite(t.kind)) return true;
  if (!kindsCompatible(l.kind, t.kind)) return false;
  switch (l.kind) {
    case BtfKind.Ptr:
    case BtfKind.Float:
      return true;
    case BtfKind.Fwd:
    case BtfKind.Enum:
    case BtfKind.Enum64:
      return l.name === "" || t.name === "" || essentialName(l.name) === essentialName(t.name);
    case BtfKind.Int:
      return l.bitOffset === 0 && t.kind === BtfKind.Int && t.bitOffset === 0;
    case BtfKind.Array:
      return t.kind === BtfKind.Array && fieldsCompatible(lb, l.elemType, tb, t.elemType, depth + 1);
    default:
      return false;
  }
}

function typesCompatible(lb: Btf, lid: number, tb: Btf, tid: number, depth = 0): boolean {
  if (depth > MAX_DEPTH) return false;
  const l = lb.type(lb.skipModsAndTypedefs(lid));
  const t = tb.type(tb.skipModsAndTypedefs(tid));
  if (!kindsCompatible(l.kind, t.kind)) return false;
  switch (l.kind) {
    case BtfKind.Struct:
    case BtfKind.Union:
    case BtfKind.Enum:
    case BtfKind.Enum64:
    case BtfKind.Fwd:
    case BtfKind.Float:
    case BtfKind.Void:
      return true;
    case BtfKind.Int:
      return l.bitOffset === 0 && t.kind === BtfKind.Int && t.bitOffset === 0;
    case BtfKind.Ptr:
      return t.kind === BtfKind.Ptr && typesCompatible(lb, l.type, tb, t.type, depth + 1);
    case BtfKind.Array:
      return t.kind === BtfKind.Array && typesCompatible(lb, l.elemType, tb, t.elemType, depth + 1);
    case BtfKind.FuncProto:
      return (
        t.kind === BtfKind.FuncProto &&
        l.params.length === t.params.length &&
        l.params.every((p, i) => typesCompatible(lb, p.type, tb, t.params[i]!.type, depth + 1)) &&
        typesCompatible(lb, l.returnType, tb, t.returnType, depth + 1)
      );
    default:
      return false;
  }
}

/** libbpf bpf_core_types_match: stricter shape equality for bpf_core_type_matches(). */
function typesMatch(lb: Btf, lid: number, tb: Btf, tid: number, behindPtr: boolean, depth = 0): boolean {
  if (depth > MAX_DEPTH) return false;
  const l = lb.type(lb.skipModsAndTypedefs(lid));
  const t = tb.type(tb.skipModsAndTypedefs(tid));
  if (l.name !== "" && t.name !== "" && essentialName(l.name) !== essentialName(t.name)) return false;
  if (l.kind === BtfKind.Fwd || t.kind === BtfKind.Fwd) {
    // Behind a pointer a forward declaration matches a complete type of the same name.
    if (!behindPtr) return l.kind === t.kind;
    return l.name !== "" && essentialName(l.name) === essentialName(t.name);
  }
  if (!kindsCompatible(l.kind, t.kind)) return false;
  switch (l.kind) {
    case BtfKind.Void:
    case BtfKind.Float:
      return true;
    case BtfKind.Int:
      return t.kind === BtfKind.Int && l.size === t.size && (l.encoding & BTF_INT_SIGNED) === (t.encoding & BTF_INT_SIGNED);
    case BtfKind.Enum:
    case BtfKind.Enum64: {
      if (t.kind !== BtfKind.Enum && t.kind !== BtfKind.Enum64) return false;
      if (l.size !== t.size) return false;
      return l.values.every((v) => t.values.some((w) => essentialName(w.name) === essentialName(v.name)));
    }
    case BtfKind.Struct:
    case BtfKind.Union: {
      if (t.kind !== l.kind) return false;
      if (behindPtr) return true;
      return l.members.every((m) => {
        const tm = t.members.find((x) => x.name === m.name);
        return tm !== undefined && m.bitfieldSize === tm.bitfieldSize && typesMatch(lb, m.type, tb, tm.type, false, depth + 1);
      });
    }
    case BtfKind.Ptr:
      return t.kind === BtfKind.Ptr && typesMatch(lb, l.type, tb, t.type, true, depth + 1);
    case BtfKind.Array:
      return t.kind === BtfKind.Array && l.nelems === t.nelems && typesMatch(lb, l.elemType, tb, t.elemType, behindPtr, depth + 1);
    case BtfKind.FuncProto:
      return (
        t.kind === BtfKind.FuncProto &&
        l.params.length === t.params.length &&
        l.params.every((p, i) => typesMatch(lb, p.type, tb, t.params[i]!.type, behindPtr, depth + 1)) &&
        typesMatch(lb, l.returnType, tb, t.returnType, behindPtr, depth + 1)
      );
    default:
      return false;
  }
}

/** Find member `name` in a composite, looking through anonymous struct/union members. */
function findMember(btf: Btf, compId: number, name: string, depth = 0): { member: BtfMember; bitOffset: number } | undefined {
  if (depth > MAX_DEPTH) return undefined;
  const t = btf.type(compId);
  if (t.kind !== BtfKind.Struct && t.kind !== BtfKind.Union) return undefined;
  for (const m of t.members) {
    if (m.name === name) return { member: m, bitOffset: m.bitOffset };
    if (m.name === "") {
      const inner = btf.skipModsAndTypedefs(m.type);
      if (isComposite(btf.kind(inner))) {
        const hit = findMember(btf, inner, name, depth + 1);
        if (hit) return { member: hit.member, bitOffset: m.bitOffset + hit.bitOffset };
      }
    }
  }
  return undefined;
}

/** Match the local field spec against one target candidate (libbpf bpf_core_spec_match). */
function matchField(local: FieldSpec, lb: Btf, tb: Btf, targetRoot: number): FieldSpec | undefined {
  let cur = tb.skipModsAndTypedefs(targetRoot);
  const out: FieldSpec = { rootId: targetRoot, raw: [], access: [], bitOffset: 0, fieldType: cur, bitfieldSize: 0, lastIsArray: false };
  const a0 = local.access[0]!;
  out.bitOffset = a0.idx * tb.sizeOf(cur) * 8;
  out.access.push(a0);
  // The local type each accessor lands on, to check compatibility along the way.
  let localCur = lb.skipModsAndTypedefs(local.rootId);
  let parent: number | undefined;
  let parentMember: number | undefined;
  for (let i = 1; i < local.access.length; i++) {
    const acc = local.access[i]!;
    const t = tb.type(cur);
    if (acc.name !== undefined) {
      const lm = findMember(lb, localCur, acc.name);
      if (!lm) throw new CoreError(`local member ${acc.name} vanished`);
      if (!isComposite(t.kind)) return undefined;
      const hit = findMember(tb, cur, acc.name);
      if (!hit) return undefined;
      if (!fieldsCompatible(lb, lm.member.type, tb, hit.member.type)) return undefined;
      out.bitOffset += hit.bitOffset;
      out.bitfieldSize = hit.member.bitfieldSize;
      out.lastIsArray = false;
      out.fieldType = hit.member.type;
      out.access.push(acc);
      parent = cur;
      parentMember = t.kind === BtfKind.Struct || t.kind === BtfKind.Union ? t.members.indexOf(hit.member) : undefined;
      if (parentMember === -1) parent = undefined; // found inside an anonymous member: not "last"
      cur = tb.skipModsAndTypedefs(hit.member.type);
      localCur = lb.skipModsAndTypedefs(lm.member.type);
    } else {
      if (t.kind !== BtfKind.Array) return undefined;
      const lt = lb.type(localCur);
      if (lt.kind !== BtfKind.Array) throw new CoreError("local array accessor on a non-array");
      if (acc.idx >= t.nelems && !isFlexArray(tb, parent, parentMember, t.nelems)) return undefined;
      out.bitOffset += acc.idx * tb.sizeOf(t.elemType) * 8;
      out.bitfieldSize = 0;
      out.lastIsArray = true;
      out.fieldType = t.elemType;
      out.access.push(acc);
      parent = undefined;
      cur = tb.skipModsAndTypedefs(t.elemType);
      localCur = lb.skipModsAndTypedefs(lt.elemType);
    }
  }
  return out;
}

interface Calc {
  value: bigint;
  /** Bitfield values are not checked against the instruction (libbpf does the same). */
  validate: boolean;
  /** Size of the accessed field, for LDX/ST/STX size adjustment. */
  fieldSize?: number;
}

function calcField(btf: Btf, spec: FieldSpec, kind: CoreReloKind): Calc {
  if (kind === CoreReloKind.FieldExists) return { value: 1n, validate: true };
  const fieldT = btf.type(btf.skipModsAndTypedefs(spec.fieldType));
  if (spec.lastIsArray && kind !== CoreReloKind.FieldByteOffset && kind !== CoreReloKind.FieldByteSize)
    throw new CoreError(`relocation kind ${CoreReloKind[kind]} on an array element`);
  const bitOff = spec.bitOffset;
  let byteSz: number;
  let byteOff: number;
  let bitSz: number;
  let validate = true;
  if (spec.bitfieldSize > 0) {
    validate = false;
    bitSz = spec.bitfieldSize;
    byteSz = btf.sizeOf(spec.fieldType);
    byteOff = Math.floor(bitOff / 8 / byteSz) * byteSz;
    while (bitOff + bitSz - byteOff * 8 > byteSz * 8) {
      if (byteSz >= 8) throw new CoreError("bitfield does not fit in 8 bytes");
      byteSz *= 2;
      byteOff = Math.floor(bitOff / 8 / byteSz) * byteSz;
    }
  } else {
    byteSz = btf.sizeOf(spec.fieldType);
    byteOff = Math.floor(bitOff / 8);
    bitSz = byteSz * 8;
  }
  switch (kind) {
    case CoreReloKind.FieldByteOffset:
      return { value: BigInt(byteOff), validate, fieldSize: spec.bitfieldSize > 0 ? undefined : byteSz };
    case CoreReloKind.FieldByteSize:
      return { value: BigInt(byteSz), validate };
    case CoreReloKind.FieldSigned: {
      const signed = (fieldT.kind === BtfKind.Int && (fieldT.encoding & BTF_INT_SIGNED) !== 0) || ((fieldT.kind === BtfKind.Enum || fieldT.kind === BtfKind.Enum64) && fieldT.signed);
      return { value: signed ? 1n : 0n, validate };
    }
    case CoreReloKind.FieldLShiftU64:
      return { value: BigInt(64 - (bitOff + bitSz - byteOff * 8)), validate };
    case CoreReloKind.FieldRShiftU64:
      return { value: BigInt(64 - bitSz), validate };
    default:
      throw new CoreError(`not a field relocation: ${kind}`);
  }
}

/** Target candidates for a local root type: same essential name, compatible kind (cached). */
export class CoreTarget {
  readonly btf: Btf;
  private cands = new Map<string, number[]>();

  constructor(btf: Btf) {
    this.btf = btf;
  }

  candidates(local: Btf, localId: number): number[] {
    const lt = local.type(localId);
    if (lt.name === "") throw new CoreError(`local type ${localId} (${BtfKind[lt.kind]}) is anonymous`);
    const key = `${essentialName(lt.name)}/${lt.kind === BtfKind.Enum64 ? BtfKind.Enum : lt.kind}`;
    let c = this.cands.get(key);
    if (!c) {
      const kinds = lt.kind === BtfKind.Enum || lt.kind === BtfKind.Enum64 ? [BtfKind.Enum, BtfKind.Enum64] : [lt.kind];
      c = this.btf.findByEssentialName(lt.name, ...kinds);
      this.cands.set(key, c);
    }
    return c;
  }
}

const SIZE_BITS: Record<number, number> = { 1: BPF_B, 2: BPF_H, 4: BPF_W, 8: BPF_DW };
const BITS_SIZE: Record<number, number> = { [BPF_B]: 1, [BPF_H]: 2, [BPF_W]: 4, [BPF_DW]: 8 };

interface Resolution {
  local: Calc;
  target: Calc | undefined;
  poisonReason?: string;
  /** Target field type id, to decide whether a load size may be adjusted. */
  localFieldType?: number;
  targetFieldType?: number;
}

function resolve(relo: CoreReloRecord, local: Btf, target: CoreTarget): Resolution {
  const kind = relo.kind;
  if (kind === CoreReloKind.TypeIdLocal) {
    const v = { value: BigInt(relo.typeId), validate: true };
    return { local: v, target: v };
  }
  if (!FIELD_KINDS.has(kind) && !TYPE_KINDS.has(kind) && !ENUM_KINDS.has(kind)) throw new CoreError(`unknown CO-RE relocation kind ${kind}`);
  const lspec = parseLocalSpec(local, relo.typeId, relo.accessStr, kind);
  const tb = target.btf;
  const localRoot = local.skipModsAndTypedefs(relo.typeId);

  // Local ("orig") value: what the compiler assumed.
  let lcalc: Calc;
  if (FIELD_KINDS.has(kind)) lcalc = calcField(local, lspec, kind);
  else if (ENUM_KINDS.has(kind)) lcalc = { value: kind === CoreReloKind.EnumvalExists ? 1n : lspec.enumValue!, validate: true };
  else if (kind === CoreReloKind.TypeSize) lcalc = { value: BigInt(local.sizeOf(localRoot)), validate: true };
  else if (kind === CoreReloKind.TypeIdTarget) lcalc = { value: BigInt(relo.typeId), validate: false };
  else lcalc = { value: 1n, validate: true };

  const results: { calc: Calc; fieldType?: number; id: number }[] = [];
  for (const cand of target.candidates(local, relo.typeId)) {
    if (FIELD_KINDS.has(kind)) {
      const tspec = matchField(lspec, local, tb, cand);
      if (tspec) results.push({ calc: calcField(tb, tspec, kind), fieldType: tspec.fieldType, id: cand });
    } else if (ENUM_KINDS.has(kind)) {
      const t = tb.type(tb.skipModsAndTypedefs(cand));
      if (t.kind !== BtfKind.Enum && t.kind !== BtfKind.Enum64) continue;
      const want = essentialName(lspec.enumName!);
      const v = t.values.find((x) => essentialName(x.name) === want);
      if (v) results.push({ calc: { value: kind === CoreReloKind.EnumvalExists ? 1n : v.value, validate: true }, id: cand });
    } else {
      const ok = kind === CoreReloKind.TypeMatches ? typesMatch(local, relo.typeId, tb, cand, false) : typesCompatible(local, relo.typeId, tb, cand);
      if (!ok) continue;
      let value = 1n;
      if (kind === CoreReloKind.TypeSize) value = BigInt(tb.sizeOf(cand));
      else if (kind === CoreReloKind.TypeIdTarget) value = BigInt(cand);
      results.push({ calc: { value, validate: true }, id: cand });
    }
  }
  const res: Resolution = { local: lcalc, target: undefined, localFieldType: FIELD_KINDS.has(kind) ? lspec.fieldType : undefined };
  if (results.length === 0) {
    if (kind === CoreReloKind.FieldExists || kind === CoreReloKind.EnumvalExists || TYPE_KINDS.has(kind)) {
      res.target = { value: 0n, validate: true };
    } else {
      res.poisonReason = ENUM_KINDS.has(kind) ? `enumerator ${lspec.enumName} not found in the kernel` : "field not found in the kernel";
    }
    return res;
  }
  const first = results[0]!;
  // Candidates must agree (TYPE_ID_TARGET can legitimately differ per candidate: take the first).
  if (kind !== CoreReloKind.TypeIdTarget) {
    const other = results.find((r) => r.calc.value !== first.calc.value);
    if (other) throw new CoreError(`ambiguous: candidates ${first.id} and ${other.id} give ${first.calc.value} and ${other.calc.value}`);
  }
  res.target = first.calc;
  res.targetFieldType = first.fieldType;
  return res;
}

/** Unsigned int or pointer, the only field types whose load size may be rewritten. */
function sizeAdjustable(btf: Btf, id: number): "ptr" | "uint" | undefined {
  const t = btf.type(btf.skipModsAndTypedefs(id));
  if (t.kind === BtfKind.Ptr) return "ptr";
  if (t.kind === BtfKind.Int && (t.encoding & BTF_INT_SIGNED) === 0) return "uint";
  if ((t.kind === BtfKind.Enum || t.kind === BtfKind.Enum64) && !t.signed) return "uint";
  return undefined;
}

/**
 * Apply the CO-RE relocations of one function to its instructions (in place).
 * `relos[].insnOff` are instruction indices within `insns`. Returns what each did.
 */
export function applyCoreRelocations(insns: Uint8Array, relos: readonly CoreReloRecord[], local: Btf, target: CoreTarget, where = "program"): CoreFixup[] {
  const ins = new Insns(insns);
  const out: CoreFixup[] = [];
  for (const relo of relos) {
    const i = relo.insnOff;
    if (i < 0 || i >= ins.length) throw new CoreError(`${where}: CO-RE relocation at instruction ${i} is out of range`);
    const rootName = local.nameOf(relo.typeId) || `#${relo.typeId}`;
    const specStr = `${rootName}:${relo.accessStr}`;
    const label = `${where}: CO-RE ${CoreReloKind[relo.kind]} ${specStr} at insn ${i}`;
    let res: Resolution;
    try {
      res = resolve(relo, local, target);
    } catch (e) {
      if (e instanceof CoreError) throw new CoreError(`${label}: ${e.message}`);
      throw e;
    }
    const fix: CoreFixup = { insn: i, kind: relo.kind, spec: specStr, local: res.local.value, target: res.target?.value, poisoned: false };
    out.push(fix);
    const poison = (reason: string): void => {
      fix.poisoned = true;
      fix.target = undefined;
      fix.reason = reason;
      const wide = ins.isLdImm64(i);
      ins.poison(i);
      // Keep the ld_imm64 width: its second slot must not become a stray instruction.
      if (wide) ins.poison(i + 1);
    };
    if (res.target === undefined) {
      poison(res.poisonReason ?? "unresolved");
      continue;
    }
    const orig = res.local.value;
    const next = res.target.value;
    const code = ins.code(i);
    const cls = insnClass(code);
    if ((cls === BPF_ALU || cls === BPF_ALU64) && (code & 0x08) === BPF_K) {
      if (res.local.validate && BigInt(ins.imm(i)) !== BigInt.asIntN(32, orig)) throw new CoreError(`${label}: instruction has imm ${ins.imm(i)}, expected ${orig}`);
      if (next > 0xffffffffn || next < -0x80000000n) {
        poison(`value ${next} does not fit in 32 bits`);
        continue;
      }
      ins.setImm(i, Number(BigInt.asIntN(32, next)));
    } else if (cls === BPF_LDX || cls === BPF_ST || cls === BPF_STX) {
      if (res.local.validate && BigInt(ins.off(i)) !== orig) throw new CoreError(`${label}: instruction has offset ${ins.off(i)}, expected ${orig}`);
      if (next > 32767n) {
        poison(`offset ${next} does not fit in 16 bits`);
        continue;
      }
      if (relo.kind === CoreReloKind.FieldByteOffset && res.local.fieldSize !== undefined && res.target.fieldSize !== undefined) {
        const insnSize = BITS_SIZE[code & 0x18]!;
        if (insnSize === res.local.fieldSize && res.local.fieldSize !== res.target.fieldSize) {
          const lk = sizeAdjustable(local, res.localFieldType!);
          const tk = sizeAdjustable(target.btf, res.targetFieldType!);
          const bits = SIZE_BITS[res.target.fieldSize];
          if (!lk || lk !== tk || bits === undefined) {
            poison(`field size changed from ${res.local.fieldSize} to ${res.target.fieldSize}`);
            continue;
          }
          ins.setCode(i, (code & ~0x18) | bits);
        }
      }
      ins.setOff(i, Number(next));
    } else if (ins.isLdImm64(i)) {
      if (i + 1 >= ins.length) throw new CoreError(`${label}: truncated ld_imm64`);
      if (res.local.validate && ins.imm64(i) !== BigInt.asUintN(64, orig)) throw new CoreError(`${label}: instruction has imm64 ${ins.imm64(i)}, expected ${orig}`);
      ins.setImm64(i, next);
    } else {
      throw new CoreError(`${label}: cannot relocate instruction with opcode 0x${code.toString(16)}`);
    }
  }
  return out;
}
