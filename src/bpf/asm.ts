// A tiny eBPF assembler for feature probes and tests: builds instructions without an ELF object.
// Encoding per loader.md §2.5 (8-byte struct bpf_insn; ld_imm64 takes two slots).

export enum Reg {
  R0 = 0,
  R1 = 1,
  R2 = 2,
  R3 = 3,
  R4 = 4,
  R5 = 5,
  R6 = 6,
  R7 = 7,
  R8 = 8,
  R9 = 9,
  R10 = 10,
}

export interface Insn {
  code: number;
  dst: number;
  src: number;
  off: number;
  imm: number;
}

// Classes, sizes, modes, sources.
const LD = 0x00, LDX = 0x01, ST = 0x02, STX = 0x03, JMP = 0x05, ALU64 = 0x07;
const IMM = 0x00, MEM = 0x60, ATOMIC = 0xc0;
const K = 0x00, X = 0x08;
const BPF_FETCH = 0x01;
export type Size = "b" | "h" | "w" | "dw";
const SIZE: Record<Size, number> = { w: 0x00, h: 0x08, b: 0x10, dw: 0x18 };

export enum AluOp {
  ADD = 0x00,
  SUB = 0x10,
  MUL = 0x20,
  DIV = 0x30,
  OR = 0x40,
  AND = 0x50,
  LSH = 0x60,
  RSH = 0x70,
  NEG = 0x80,
  MOD = 0x90,
  XOR = 0xa0,
  MOV = 0xb0,
  ARSH = 0xc0,
}

export enum JmpOp {
  JA = 0x00,
  JEQ = 0x10,
  JGT = 0x20,
  JGE = 0x30,
  JSET = 0x40,
  JNE = 0x50,
  JSGT = 0x60,
  JSGE = 0x70,
  CALL = 0x80,
  EXIT = 0x90,
  JLT = 0xa0,
  JLE = 0xb0,
  JSLT = 0xc0,
  JSLE = 0xd0,
}

/** src_reg values of ld_imm64. */
export const PSEUDO_MAP_FD = 1;
export const PSEUDO_MAP_VALUE = 2;

export function encodeInsn(i: Insn, out: DataView, at: number): void {
  out.setUint8(at, i.code);
  out.setUint8(at + 1, (i.dst & 0x0f) | ((i.src & 0x0f) << 4));
  out.setInt16(at + 2, i.off, true);
  out.setInt32(at + 4, i.imm | 0, true);
}

export function encode(insns: Insn[]): Uint8Array {
  const bytes = new Uint8Array(insns.length * 8);
  const dv = new DataView(bytes.buffer);
  insns.forEach((i, n) => encodeInsn(i, dv, n * 8));
  return bytes;
}

const insn = (code: number, dst = 0, src = 0, off = 0, imm = 0): Insn => ({ code, dst, src, off, imm });

/**
 * Builder with forward/backward labels: `a.jmpImm(JmpOp.JEQ, Reg.R0, 0, "out") ... a.label("out")`.
 * Jump offsets are resolved in bytes().
 */
export class Asm {
  readonly insns: Insn[] = [];
  readonly #labels = new Map<string, number>();
  readonly #fixups: { at: number; label: string }[] = [];

  label(name: string): this {
    if (this.#labels.has(name)) throw new Error(`asm: label ${name} defined twice`);
    this.#labels.set(name, this.insns.length);
    return this;
  }

  raw(i: Insn): this {
    this.insns.push(i);
    return this;
  }

  mov64Imm(dst: Reg, imm: number): this {
    return this.raw(insn(ALU64 | AluOp.MOV | K, dst, 0, 0, imm));
  }

  mov64Reg(dst: Reg, src: Reg): this {
    return this.raw(insn(ALU64 | AluOp.MOV | X, dst, src));
  }

  alu64Imm(op: AluOp, dst: Reg, imm: number): this {
    return this.raw(insn(ALU64 | op | K, dst, 0, 0, imm));
  }

  alu64Reg(op: AluOp, dst: Reg, src: Reg): this {
    return this.raw(insn(ALU64 | op | X, dst, src));
  }

  /** dst = 64-bit immediate (two slots). */
  ldImm64(dst: Reg, value: bigint, src = 0): this {
    const v = BigInt.asUintN(64, value);
    this.raw(insn(LD | SIZE.dw | IMM, dst, src, 0, Number(BigInt.asIntN(32, v & 0xffffffffn))));
    return this.raw(insn(0, 0, 0, 0, Number(BigInt.asIntN(32, v >> 32n))));
  }

  /** dst = pointer to the map behind `mapFd` (ld_imm64 with BPF_PSEUDO_MAP_FD). */
  ldMapFd(dst: Reg, mapFd: number): this {
    this.raw(insn(LD | SIZE.dw | IMM, dst, PSEUDO_MAP_FD, 0, mapFd));
    return this.raw(insn(0));
  }

  /** dst = pointer into the value of array map `mapFd` at `offset` (BPF_PSEUDO_MAP_VALUE). */
  ldMapValue(dst: Reg, mapFd: number, offset = 0): this {
    this.raw(insn(LD | SIZE.dw | IMM, dst, PSEUDO_MAP_VALUE, 0, mapFd));
    return this.raw(insn(0, 0, 0, 0, offset));
  }

  /** dst = *(size *)(src + off) */
  ldx(size: Size, dst: Reg, src: Reg, off: number): this {
    return this.raw(insn(LDX | SIZE[size] | MEM, dst, src, off));
  }

  /** *(size *)(dst + off) = src */
  stx(size: Size, dst: Reg, off: number, src: Reg): this {
    return this.raw(insn(STX | SIZE[size] | MEM, dst, src, off));
  }

  /** *(size *)(dst + off) = imm */
  st(size: Size, dst: Reg, off: number, imm: number): this {
    return this.raw(insn(ST | SIZE[size] | MEM, dst, 0, off, imm));
  }

  /** lock *(size *)(dst + off) += src (size "w" or "dw"). */
  atomicAdd(size: "w" | "dw", dst: Reg, off: number, src: Reg): this {
    return this.raw(insn(STX | SIZE[size] | ATOMIC, dst, src, off, 0));
  }

  /** src = atomic_fetch_add((size *)(dst + off), src): src receives the old value. */
  atomicFetchAdd(size: "w" | "dw", dst: Reg, off: number, src: Reg): this {
    return this.raw(insn(STX | SIZE[size] | ATOMIC, dst, src, off, BPF_FETCH));
  }

  jmpImm(op: JmpOp, dst: Reg, imm: number, target: string | number): this {
    return this.#jump(insn(JMP | op | K, dst, 0, 0, imm), target);
  }

  jmpReg(op: JmpOp, dst: Reg, src: Reg, target: string | number): this {
    return this.#jump(insn(JMP | op | X, dst, src), target);
  }

  ja(target: string | number): this {
    return this.#jump(insn(JMP | JmpOp.JA), target);
  }

  #jump(i: Insn, target: string | number): this {
    if (typeof target === "number") i.off = target;
    else this.#fixups.push({ at: this.insns.length, label: target });
    return this.raw(i);
  }

  /** Call helper `id` (enum bpf_func_id). */
  call(id: number): this {
    return this.raw(insn(JMP | JmpOp.CALL, 0, 0, 0, id));
  }

  exit(): this {
    return this.raw(insn(JMP | JmpOp.EXIT));
  }

  /** r0 = value; exit */
  ret(value: number): this {
    return this.mov64Imm(Reg.R0, value).exit();
  }

  bytes(): Uint8Array {
    for (const f of this.#fixups) {
      const to = this.#labels.get(f.label);
      if (to === undefined) throw new Error(`asm: undefined label ${f.label}`);
      this.insns[f.at]!.off = to - f.at - 1;
    }
    return encode(this.insns);
  }
}

/** `r0 = value; exit` as bytes: the smallest valid program. */
export function retProgram(value = 0): Uint8Array {
  return new Asm().ret(value).bytes();
}
