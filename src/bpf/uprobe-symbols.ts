// Symbol -> file offset for uprobes: the uprobe PMU wants the offset of the instruction in the
// file, so a function's virtual address from .symtab/.dynsym is mapped through the PT_LOAD
// segment that contains it. Only what uprobes need: 64-bit little-endian ELF, no relocations.
import { readFileSync } from "node:fs";

export class SymbolError extends Error {
  override name = "SymbolError";
}

const SHT_SYMTAB = 2;
const SHT_DYNSYM = 11;
const PT_LOAD = 1;
const STT_FUNC = 2;
const STT_GNU_IFUNC = 10;

/** File offset of function `symbol` in the ELF file at `path` (for attachUprobe). */
export function symbolFileOffset(path: string, symbol: string): bigint {
  const b = readFileSync(path);
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 64 || v.getUint32(0, false) !== 0x7f454c46) throw new SymbolError(`resolve ${symbol} in ${path}: not an ELF file`);
  if (b[4] !== 2 || b[5] !== 1) throw new SymbolError(`resolve ${symbol} in ${path}: only 64-bit little-endian ELF is supported`);
  const phoff = Number(v.getBigUint64(32, true));
  const shoff = Number(v.getBigUint64(40, true));
  const phentsize = v.getUint16(54, true);
  const phnum = v.getUint16(56, true);
  const shentsize = v.getUint16(58, true);
  const shnum = v.getUint16(60, true);
  const want = new TextEncoder().encode(symbol);

  const section = (i: number) => {
    const o = shoff + i * shentsize;
    return { type: v.getUint32(o + 4, true), offset: Number(v.getBigUint64(o + 24, true)), size: Number(v.getBigUint64(o + 32, true)), link: v.getUint32(o + 40, true), entsize: Number(v.getBigUint64(o + 56, true)) };
  };
  const nameIs = (strOff: number, nameOff: number): boolean => {
    const at = strOff + nameOff;
    for (let i = 0; i < want.length; i++) if (b[at + i] !== want[i]) return false;
    return b[at + want.length] === 0;
  };

  let vaddr: bigint | undefined;
  // .symtab first (complete), then .dynsym (what stripped binaries keep).
  for (const kind of [SHT_SYMTAB, SHT_DYNSYM]) {
    for (let i = 0; i < shnum && vaddr === undefined; i++) {
      const s = section(i);
      if (s.type !== kind || s.entsize === 0) continue;
      const strtab = section(s.link);
      for (let o = s.offset; o + 24 <= s.offset + s.size; o += s.entsize) {
        const type = b[o + 4]! & 0xf;
        const shndx = v.getUint16(o + 6, true);
        const value = v.getBigUint64(o + 8, true);
        if ((type !== STT_FUNC && type !== STT_GNU_IFUNC) || shndx === 0 || value === 0n) continue;
        if (nameIs(strtab.offset, v.getUint32(o, true))) {
          vaddr = value;
          break;
        }
      }
    }
    if (vaddr !== undefined) break;
  }
  if (vaddr === undefined) throw new SymbolError(`resolve ${symbol} in ${path}: no such function symbol`);

  for (let i = 0; i < phnum; i++) {
    const o = phoff + i * phentsize;
    if (v.getUint32(o, true) !== PT_LOAD) continue;
    const off = v.getBigUint64(o + 8, true);
    const va = v.getBigUint64(o + 16, true);
    const filesz = v.getBigUint64(o + 32, true);
    if (vaddr >= va && vaddr < va + filesz) return vaddr - va + off;
  }
  throw new SymbolError(`resolve ${symbol} in ${path}: address 0x${vaddr.toString(16)} is in no loadable segment`);
}
