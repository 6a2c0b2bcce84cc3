import { describe, expect, test } from "bun:test";
import { AluOp, Asm, JmpOp, Reg, encode, retProgram } from "../../src/bpf/asm.ts";

const hex = (b: Uint8Array): string => Buffer.from(b).toString("hex");

describe("asm", () => {
  test("r0 = 0; exit is b7 00 .. / 95 00 ..", () => {
    expect(hex(retProgram(0))).toBe("b700000000000000" + "9500000000000000");
  });

  test("registers go in the low (dst) and high (src) nibbles, off and imm little endian", () => {
    const b = new Asm().mov64Reg(Reg.R2, Reg.R10).alu64Imm(AluOp.ADD, Reg.R2, -4).ldx("w", Reg.R3, Reg.R1, 0x10).bytes();
    expect(hex(b.subarray(0, 8))).toBe("bfa2000000000000");
    expect(hex(b.subarray(8, 16))).toBe("07020000fcffffff");
    expect(hex(b.subarray(16, 24))).toBe("6113100000000000");
  });

  test("ld_map_fd is a two-slot ld_imm64 with src = BPF_PSEUDO_MAP_FD", () => {
    const b = new Asm().ldMapFd(Reg.R1, 7).bytes();
    expect(b.length).toBe(16);
    expect(hex(b)).toBe("1811000007000000" + "0000000000000000");
  });

  test("ld_imm64 splits a 64-bit value across both slots", () => {
    const b = new Asm().ldImm64(Reg.R1, 0x1122334455667788n).bytes();
    expect(hex(b)).toBe("1801000088776655" + "0000000044332211");
  });

  test("st, stx and atomics encode their size and mode", () => {
    const b = new Asm()
      .st("w", Reg.R10, -4, 0)
      .stx("dw", Reg.R10, -8, Reg.R1)
      .atomicAdd("dw", Reg.R0, 0, Reg.R1)
      .atomicFetchAdd("dw", Reg.R8, 8, Reg.R1)
      .bytes();
    expect(hex(b.subarray(0, 8))).toBe("620afcff00000000");
    expect(hex(b.subarray(8, 16))).toBe("7b1af8ff00000000");
    expect(hex(b.subarray(16, 24))).toBe("db10000000000000");
    expect(hex(b.subarray(24, 32))).toBe("db18080001000000");
  });

  test("labels resolve to offsets relative to the next instruction, forward and backward", () => {
    const a = new Asm()
      .label("top")
      .jmpImm(JmpOp.JEQ, Reg.R0, 0, "out") // insn 0 -> 3: off 2
      .ldMapFd(Reg.R1, 3) // insns 1-2
      .label("out")
      .ja("top") // insn 3 -> 0: off -4
      .exit();
    const b = a.bytes();
    const dv = new DataView(b.buffer);
    expect(dv.getInt16(2, true)).toBe(2);
    expect(dv.getInt16(3 * 8 + 2, true)).toBe(-4);
  });

  test("an undefined label is an error, not a zero offset", () => {
    expect(() => new Asm().ja("nowhere").bytes()).toThrow(/undefined label nowhere/);
  });

  test("call carries the helper id in imm", () => {
    expect(hex(new Asm().call(130).bytes())).toBe("8500000082000000");
    expect(hex(encode([{ code: 0x95, dst: 0, src: 0, off: 0, imm: 0 }]))).toBe("9500000000000000");
  });
});
