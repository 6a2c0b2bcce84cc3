// .BTF.ext: per-section func_info, line_info and CO-RE relocation records (loader.md §3.3).
// insn offsets in the section are bytes from the start of the ELF section; they are kept as
// such here and converted to instruction indices by the ELF reader when it splits functions.
import { BtfError, type Btf } from "./btf.ts";

export enum CoreReloKind {
  FieldByteOffset = 0,
  FieldByteSize = 1,
  FieldExists = 2,
  FieldSigned = 3,
  FieldLShiftU64 = 4,
  FieldRShiftU64 = 5,
  TypeIdLocal = 6,
  TypeIdTarget = 7,
  TypeExists = 8,
  TypeSize = 9,
  EnumvalExists = 10,
  EnumvalValue = 11,
  TypeMatches = 12,
}

export interface FuncInfoRecord {
  /** Byte offset in the section (in the ELF), later an instruction index. */
  insnOff: number;
  typeId: number;
}
export interface LineInfoRecord {
  insnOff: number;
  fileNameOff: number;
  lineOff: number;
  lineCol: number;
}
export interface CoreReloRecord {
  insnOff: number;
  typeId: number;
  accessStr: string;
  kind: CoreReloKind;
}

export interface BtfExt {
  funcInfo: Map<string, FuncInfoRecord[]>;
  lineInfo: Map<string, LineInfoRecord[]>;
  coreRelos: Map<string, CoreReloRecord[]>;
}

export const FUNC_INFO_SIZE = 8;
export const LINE_INFO_SIZE = 16;

/** Parse `.BTF.ext`; section names and access strings live in the object's `.BTF` strings. */
export function parseBtfExt(raw: Uint8Array, btf: Btf): BtfExt {
  if (raw.length < 24) throw new BtfError(`parse btf.ext: ${raw.length} bytes is shorter than the header`);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  const magic = dv.getUint16(0, true);
  if (magic !== 0xeb9f) throw new BtfError(`parse btf.ext: bad magic 0x${magic.toString(16)}`);
  const hdrLen = dv.getUint32(4, true);
  const ext: BtfExt = { funcInfo: new Map(), lineInfo: new Map(), coreRelos: new Map() };
  const sub = (offAt: number): [number, number] | undefined => {
    if (hdrLen < offAt + 8) return undefined;
    const off = dv.getUint32(offAt, true);
    const len = dv.getUint32(offAt + 4, true);
    if (len === 0) return undefined;
    if (hdrLen + off + len > raw.length) throw new BtfError("parse btf.ext: sub-section runs past the end");
    return [hdrLen + off, len];
  };
  const walk = (range: [number, number] | undefined, minRec: number, what: string, rec: (sec: string, at: number) => void): void => {
    if (!range) return;
    const [start, len] = range;
    const end = start + len;
    const recSize = dv.getUint32(start, true);
    if (recSize < minRec || recSize > 256) throw new BtfError(`parse btf.ext: ${what} record size ${recSize}`);
    let p = start + 4;
    while (p < end) {
      if (p + 8 > end) throw new BtfError(`parse btf.ext: truncated ${what} block`);
      const sec = btf.string(dv.getUint32(p, true));
      const n = dv.getUint32(p + 4, true);
      p += 8;
      if (p + n * recSize > end) throw new BtfError(`parse btf.ext: ${what} for ${sec} runs past the end`);
      for (let i = 0; i < n; i++, p += recSize) rec(sec, p);
    }
  };
  const push = <T>(m: Map<string, T[]>, k: string, v: T): void => {
    const a = m.get(k);
    if (a) a.push(v);
    else m.set(k, [v]);
  };
  walk(sub(8), FUNC_INFO_SIZE, "func_info", (sec, p) =>
    push(ext.funcInfo, sec, { insnOff: dv.getUint32(p, true), typeId: dv.getUint32(p + 4, true) }),
  );
  walk(sub(16), LINE_INFO_SIZE, "line_info", (sec, p) =>
    push(ext.lineInfo, sec, {
      insnOff: dv.getUint32(p, true),
      fileNameOff: dv.getUint32(p + 4, true),
      lineOff: dv.getUint32(p + 8, true),
      lineCol: dv.getUint32(p + 12, true),
    }),
  );
  walk(sub(24), 16, "core_relo", (sec, p) =>
    push(ext.coreRelos, sec, {
      insnOff: dv.getUint32(p, true),
      typeId: dv.getUint32(p + 4, true),
      accessStr: btf.string(dv.getUint32(p + 8, true)),
      kind: dv.getUint32(p + 12, true) as CoreReloKind,
    }),
  );
  return ext;
}

/** PROG_LOAD func_info array: {insn_off (instructions), type_id} per record. */
export function encodeFuncInfo(recs: readonly FuncInfoRecord[]): Uint8Array {
  const out = new Uint8Array(recs.length * FUNC_INFO_SIZE);
  const dv = new DataView(out.buffer);
  recs.forEach((r, i) => {
    dv.setUint32(i * 8, r.insnOff, true);
    dv.setUint32(i * 8 + 4, r.typeId, true);
  });
  return out;
}

/** PROG_LOAD line_info array (instruction offsets). */
export function encodeLineInfo(recs: readonly LineInfoRecord[]): Uint8Array {
  const out = new Uint8Array(recs.length * LINE_INFO_SIZE);
  const dv = new DataView(out.buffer);
  recs.forEach((r, i) => {
    dv.setUint32(i * 16, r.insnOff, true);
    dv.setUint32(i * 16 + 4, r.fileNameOff, true);
    dv.setUint32(i * 16 + 8, r.lineOff, true);
    dv.setUint32(i * 16 + 12, r.lineCol, true);
  });
  return out;
}
