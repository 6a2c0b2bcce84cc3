// Symbol -> file offset for uprobes: the uprobe PMU wants the offset of the instruction in the
// file, so a function's virtual address from .symtab/.dynsym is mapped through the PT_LOAD
// segment that contains it. Only what uprobes need: 64-bit little-endian ELF, no relocations.
// The same mapping holds for executables, PIEs and shared libraries (the kernel places the
// probe in every mapping of the file, wherever it is loaded).
import { readFileSync } from "node:fs";

export class SymbolError extends Error {
  override name = "SymbolError";
}

const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const PT_LOAD = 1;
const PF_X = 1;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;
const ET_EXEC = 2;
const ET_DYN = 3;

interface Segment {
  offset: bigint;
  vaddr: bigint;
  filesz: bigint;
  exec: boolean;
}

interface SymbolHit {
  vaddr: bigint;
  /** STT_GNU_IFUNC: the symbol is the resolver that picks the implementation at load time */
  ifunc: boolean;
  /** defined in the file (shndx != 0); an undefined one is imported from a library */
  defined: boolean;
}

/** What uprobes need of one ELF file: its loadable segments and its function symbols. */
export class UprobeElf {
  readonly type: "executable" | "shared object";
  /** .symtab is present (not stripped) */
  readonly hasSymtab: boolean;
  private readonly segments: Segment[] = [];
  private readonly b: Buffer;
  private readonly v: DataView;
  private readonly tables: { kind: number; offset: number; size: number; entsize: number; strOff: number }[] = [];

  constructor(readonly path: string) {
    let b: Buffer;
    try {
      b = readFileSync(path);
    } catch (e) {
      throw new SymbolError(`read ${path}: ${(e as NodeJS.ErrnoException).code === "ENOENT" ? "no such file" : (e as Error).message}`);
    }
    this.b = b;
    const v = (this.v = new DataView(b.buffer, b.byteOffset, b.byteLength));
    if (b.length < 64 || v.getUint32(0, false) !== 0x7f454c46) throw new SymbolError(`${path}: not an ELF file`);
    if (b[4] !== 2 || b[5] !== 1) throw new SymbolError(`${path}: only 64-bit little-endian ELF is supported`);
    const etype = v.getUint16(16, true);
    if (etype !== ET_EXEC && etype !== ET_DYN) throw new SymbolError(`${path}: ELF type ${etype} is neither an executable nor a shared object`);
    this.type = etype === ET_EXEC ? "executable" : "shared object";
    const phoff = Number(v.getBigUint64(32, true));
    const shoff = Number(v.getBigUint64(40, true));
    const phentsize = v.getUint16(54, true);
    const phnum = v.getUint16(56, true);
    const shentsize = v.getUint16(58, true);
    const shnum = v.getUint16(60, true);
    for (let i = 0; i < phnum; i++) {
      const o = phoff + i * phentsize;
      if (v.getUint32(o, true) !== PT_LOAD) continue;
      this.segments.push({ offset: v.getBigUint64(o + 8, true), vaddr: v.getBigUint64(o + 16, true), filesz: v.getBigUint64(o + 32, true), exec: (v.getUint32(o + 4, true) & PF_X) !== 0 });
    }
    const section = (i: number) => {
      const o = shoff + i * shentsize;
      return { type: v.getUint32(o + 4, true), offset: Number(v.getBigUint64(o + 24, true)), size: Number(v.getBigUint64(o + 32, true)), link: v.getUint32(o + 40, true), entsize: Number(v.getBigUint64(o + 56, true)) };
    };
    // .symtab first (complete), then .dynsym (what stripped binaries keep).
    for (const kind of [SHT_SYMTAB, SHT_DYNSYM]) {
      for (let i = 0; i < shnum; i++) {
        const s = section(i);
        if (s.type !== kind || s.entsize === 0) continue;
        this.tables.push({ kind, offset: s.offset, size: s.size, entsize: s.entsize, strOff: section(s.link).offset });
      }
    }
    this.hasSymtab = this.tables.some((t) => t.kind === SHT_SYMTAB);
  }

  private find(symbol: string): SymbolHit | undefined {
    const want = new TextEncoder().encode(symbol);
    const b = this.b, v = this.v;
    let imported: SymbolHit | undefined;
    for (const t of this.tables) {
      for (let o = t.offset; o + 24 <= t.offset + t.size; o += t.entsize) {
        const type = b[o + 4]! & 0xf;
        if (type !== STT_FUNC && type !== STT_GNU_IFUNC) continue;
        const at = t.strOff + v.getUint32(o, true);
        let same = b[at + want.length] === 0;
        for (let i = 0; same && i < want.length; i++) same = b[at + i] === want[i];
        if (!same) continue;
        const shndx = v.getUint16(o + 6, true);
        const value = v.getBigUint64(o + 8, true);
        if (shndx !== 0 && value !== 0n) return { vaddr: value, defined: true, ifunc: type === STT_GNU_IFUNC };
        imported = { vaddr: 0n, defined: false, ifunc: false };
      }
    }
    return imported;
  }

  /** File offset of function `symbol` (defined in this file). */
  symbolOffset(symbol: string): bigint {
    const hit = this.find(symbol);
    if (hit === undefined) {
      const why = this.hasSymtab ? "" : ` (the file is stripped: no .symtab, only the functions it exports in .dynsym can be named; give offsets or addrs instead)`;
      throw new SymbolError(`resolve ${symbol} in ${this.path}: no such function symbol${why}`);
    }
    if (!hit.defined) throw new SymbolError(`resolve ${symbol} in ${this.path}: ${symbol} is imported from a shared library, not defined here; probe it in the library that defines it (ldd ${this.path})`);
    // A probe there would fire once, when the dynamic linker calls the resolver, never on
    // the calls the policy means: refused rather than silently watching the wrong code.
    if (hit.ifunc) throw new SymbolError(`resolve ${symbol} in ${this.path}: ${symbol} is a GNU indirect function (IFUNC): its symbol is the resolver that picks an implementation at load time, not the code that runs on each call; probe the implementation by name (nm -D ${this.path} | grep ${symbol}) or by offset`);
    return this.addrOffset(hit.vaddr, symbol);
  }

  /** File offset of virtual address `vaddr` (as the ELF headers give it, before any load bias). */
  addrOffset(vaddr: bigint, what = `address 0x${vaddr.toString(16)}`): bigint {
    for (const s of this.segments) {
      if (vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) {
        if (!s.exec) throw new SymbolError(`resolve ${what} in ${this.path}: address 0x${vaddr.toString(16)} is in a segment that is not executable`);
        return vaddr - s.vaddr + s.offset;
      }
    }
    throw new SymbolError(`resolve ${what} in ${this.path}: address 0x${vaddr.toString(16)} is in no loadable segment`);
  }

  /** Checks that a file offset is inside an executable segment; returns it. */
  fileOffset(offset: bigint): bigint {
    for (const s of this.segments) if (s.exec && offset >= s.offset && offset < s.offset + s.filesz) return offset;
    throw new SymbolError(`${this.path}: file offset 0x${offset.toString(16)} is in no executable segment`);
  }
}

/** File offset of function `symbol` in the ELF file at `path` (for attachUprobe). */
export function symbolFileOffset(path: string, symbol: string): bigint {
  return new UprobeElf(path).symbolOffset(symbol);
}
