// struct bpf_insn access (loader.md §2.5): 8 bytes, code u8, regs u8 (dst low nibble,
// src high nibble), off s16, imm s32. Shared by the ELF reader, CO-RE and the linker.

export const INSN_SIZE = 8;

export const BPF_LD = 0x00;
export const BPF_LDX = 0x01;
export const BPF_ST = 0x02;
export const BPF_STX = 0x03;
export const BPF_ALU = 0x04;
export const BPF_JMP = 0x05;
export const BPF_JMP32 = 0x06;
export const BPF_ALU64 = 0x07;

export const BPF_K = 0x00;
export const BPF_X = 0x08;
export const BPF_W = 0x00;
export const BPF_H = 0x08;
export const BPF_B = 0x10;
export const BPF_DW = 0x18;
export const BPF_IMM = 0x00;
export const BPF_MEM = 0x60;

export const OP_LD_IMM64 = 0x18;
export const OP_CALL = 0x85;
export const OP_EXIT = 0x95;

export const PSEUDO_MAP_FD = 1;
export const PSEUDO_MAP_VALUE = 2;
export const PSEUDO_BTF_ID = 3;
export const PSEUDO_FUNC = 4;
export const PSEUDO_CALL = 1;
export const PSEUDO_KFUNC_CALL = 2;

/** Marker helper id libbpf uses for instructions a CO-RE relocation could not resolve. */
export const CORE_POISON_IMM = 0xbad2310;

export function insnClass(code: number): number {
  return code & 0x07;
}

/** A view over an instruction buffer (any byte offset). */
export class Insns {
  readonly bytes: Uint8Array;
  private dv: DataView;

  constructor(bytes: Uint8Array) {
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.bytes.length / INSN_SIZE;
  }

  code(i: number): number {
    return this.dv.getUint8(i * 8);
  }
  setCode(i: number, v: number): void {
    this.dv.setUint8(i * 8, v);
  }
  dst(i: number): number {
    return this.dv.getUint8(i * 8 + 1) & 0x0f;
  }
  src(i: number): number {
    return this.dv.getUint8(i * 8 + 1) >>> 4;
  }
  setSrc(i: number, v: number): void {
    const r = this.dv.getUint8(i * 8 + 1);
    this.dv.setUint8(i * 8 + 1, (r & 0x0f) | ((v & 0x0f) << 4));
  }
  setRegs(i: number, dst: number, src: number): void {
    this.dv.setUint8(i * 8 + 1, (dst & 0x0f) | ((src & 0x0f) << 4));
  }
  off(i: number): number {
    return this.dv.getInt16(i * 8 + 2, true);
  }
  setOff(i: number, v: number): void {
    this.dv.setInt16(i * 8 + 2, v, true);
  }
  imm(i: number): number {
    return this.dv.getInt32(i * 8 + 4, true);
  }
  setImm(i: number, v: number): void {
    this.dv.setInt32(i * 8 + 4, v | 0, true);
  }

  isLdImm64(i: number): boolean {
    return this.code(i) === OP_LD_IMM64;
  }
  isCall(i: number): boolean {
    return this.code(i) === OP_CALL;
  }
  /** bpf-to-bpf call (call with src_reg = PSEUDO_CALL). */
  isPseudoCall(i: number): boolean {
    return this.code(i) === OP_CALL && this.src(i) === PSEUDO_CALL;
  }

  /** 64-bit immediate of an ld_imm64 pair. */
  imm64(i: number): bigint {
    const lo = BigInt(this.dv.getUint32(i * 8 + 4, true));
    const hi = BigInt(this.dv.getUint32(i * 8 + 12, true));
    return (hi << 32n) | lo;
  }
  setImm64(i: number, v: bigint): void {
    const u = BigInt.asUintN(64, v);
    this.dv.setUint32(i * 8 + 4, Number(u & 0xffffffffn), true);
    this.dv.setUint32(i * 8 + 12, Number(u >> 32n), true);
  }

  /** Overwrite instruction i with `call 0xbad2310` (r0..r10 zero). */
  poison(i: number): void {
    this.dv.setUint8(i * 8, OP_CALL);
    this.dv.setUint8(i * 8 + 1, 0);
    this.dv.setInt16(i * 8 + 2, 0, true);
    this.dv.setInt32(i * 8 + 4, CORE_POISON_IMM, true);
  }
}
