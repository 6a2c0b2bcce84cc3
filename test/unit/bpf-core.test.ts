// CO-RE: synthetic local/target BTF for each relocation kind and instruction form, then the
// clang fixture against the running kernel's vmlinux BTF.
import { describe, expect, test } from "bun:test";
import { BtfKind, loadKernelBtf, type Btf } from "../../src/bpf/btf.ts";
import { CoreReloKind, type CoreReloRecord } from "../../src/bpf/btf-ext.ts";
import { CoreError, CoreTarget, applyCoreRelocations } from "../../src/bpf/core.ts";
import { parseElf } from "../../src/bpf/elf.ts";
import { CORE_POISON_IMM, Insns, OP_CALL } from "../../src/bpf/insn.ts";
import { fixtureBytes } from "../fixtures/bpf/build.ts";
import { BtfBuilder } from "./bpf-btf-builder.ts";

type I = [code: number, dst: number, src: number, off: number, imm: number];
function prog(...insns: I[]): Uint8Array {
  const out = new Uint8Array(insns.length * 8);
  const dv = new DataView(out.buffer);
  insns.forEach(([code, dst, src, off, imm], i) => {
    dv.setUint8(i * 8, code);
    dv.setUint8(i * 8 + 1, dst | (src << 4));
    dv.setInt16(i * 8 + 2, off, true);
    dv.setInt32(i * 8 + 4, imm, true);
  });
  return out;
}
const ADD64_K = 0x07;
const MOV64_K = 0xb7;
const LSH64_K = 0x67;
const RSH64_K = 0x77;
const LDX_W = 0x61;
const LDX_DW = 0x79;
const LD_IMM64 = 0x18;

const relo = (insnOff: number, typeId: number, accessStr: string, kind: CoreReloKind): CoreReloRecord => ({ insnOff, typeId, accessStr, kind });

/** Local (what the program was compiled against) and target (the "kernel") BTF. */
function world(): { local: Btf; target: Btf; l: Record<string, number>; t: Record<string, number> } {
  const lb = new BtfBuilder();
  const l: Record<string, number> = {};
  l.int = lb.int("int", 4, true);
  l.u32 = lb.int("unsigned int", 4);
  l.arr = lb.array(l.u32, l.int, 4);
  l.foo = lb.struct("foo___local", 28, [
    ["a", l.int, 0],
    ["b", l.u32, 32],
    ["gone", l.int, 64],
    ["vals", l.arr, 96],
  ]);
  l.bf = lb.struct("bits", 4, [
    ["x", l.u32, 0, 3],
    ["y", l.u32, 3, 5],
  ]);
  l.en = lb.enum("color___local", 4, [["RED", 0], ["GREEN", 1], ["PURPLE", 7]]);
  l.missingType = lb.struct("not_in_kernel", 4, [["z", l.int, 0]]);
  l.match = lb.struct("shape", 8, [["w", l.u32, 0]]);
  l.nomatch = lb.struct("shape___bad", 8, [["w", l.int, 0]]);
  l.big = lb.enum64("big___local", [["HUGE", 1n]]);
  const tb = new BtfBuilder();
  const t: Record<string, number> = {};
  t.int = tb.int("int", 4, true);
  t.u32 = tb.int("unsigned int", 4);
  t.u64 = tb.int("long unsigned int", 8);
  t.long = tb.int("long", 8, true);
  t.arr = tb.array(t.u32, t.int, 8);
  t.anon = tb.struct("", 8, [["b", t.u64, 0]], true);
  t.foo = tb.struct("foo", 64, [
    ["pad", t.long, 0],
    ["a", t.long, 64],
    ["", t.anon, 128],
    ["vals", t.arr, 192],
  ]);
  t.bf = tb.struct("bits", 4, [
    ["y", t.u32, 10, 5],
    ["x", t.u32, 0, 3],
  ]);
  t.en = tb.enum64("color", [["GREEN", 0x1_0000_0000n], ["RED", 5n]]);
  t.match = tb.struct("shape", 16, [["h", t.u32, 0], ["w", t.u32, 32]]);
  t.big = tb.enum64("big", [["HUGE", 0x1234_5678_9abc_def0n]]);
  return { local: lb.build(), target: tb.build(), l, t };
}

describe("field relocations", () => {
  test("byte offset on ALU and LDX; load size grows for unsigned ints", () => {
    const w = world();
    // r1 += 4 (offset of b) ; r2 = *(u32 *)(r1 + 4) ; r3 = *(u32 *)(r1 + 0) (a: int -> long)
    const code = prog([ADD64_K, 1, 0, 0, 4], [LDX_W, 2, 1, 4, 0], [LDX_W, 3, 1, 0, 0]);
    const fx = applyCoreRelocations(
      code,
      [relo(0, w.l.foo!, "0:1", CoreReloKind.FieldByteOffset), relo(1, w.l.foo!, "0:1", CoreReloKind.FieldByteOffset), relo(2, w.l.foo!, "0:0", CoreReloKind.FieldByteOffset)],
      w.local,
      new CoreTarget(w.target),
    );
    const ins = new Insns(code);
    // b sits in an anonymous union at byte 16 of the target
    expect(ins.imm(0)).toBe(16);
    expect(ins.off(1)).toBe(16);
    expect(ins.code(1)).toBe(LDX_DW); // u32 -> u64: the load was widened
    // a is signed (int -> long): size change not allowed, poisoned
    expect(fx[2]).toMatchObject({ poisoned: true });
    expect(fx[2]!.reason).toMatch(/size changed from 4 to 8/);
    expect(ins.code(2)).toBe(OP_CALL);
    expect(ins.imm(2)).toBe(CORE_POISON_IMM);
    expect(fx.map((f) => f.spec)).toEqual(["foo___local:0:1", "foo___local:0:1", "foo___local:0:0"]);
  });

  test("exists, size, signed; missing fields give 0 for exists and poison otherwise", () => {
    const w = world();
    const code = prog(
      [MOV64_K, 1, 0, 0, 1], // exists(b)
      [MOV64_K, 1, 0, 0, 1], // exists(gone)
      [MOV64_K, 1, 0, 0, 4], // size(b)
      [MOV64_K, 1, 0, 0, 1], // signed(a)
      [MOV64_K, 1, 0, 0, 8], // offset(gone)
      [MOV64_K, 1, 0, 0, 20], // offset(vals[2])
      [MOV64_K, 1, 0, 0, 4], // size(vals[2])
    );
    const fx = applyCoreRelocations(
      code,
      [
        relo(0, w.l.foo!, "0:1", CoreReloKind.FieldExists),
        relo(1, w.l.foo!, "0:2", CoreReloKind.FieldExists),
        relo(2, w.l.foo!, "0:1", CoreReloKind.FieldByteSize),
        relo(3, w.l.foo!, "0:0", CoreReloKind.FieldSigned),
        relo(4, w.l.foo!, "0:2", CoreReloKind.FieldByteOffset),
        relo(5, w.l.foo!, "0:3:2", CoreReloKind.FieldByteOffset),
        relo(6, w.l.foo!, "0:3:2", CoreReloKind.FieldByteSize),
      ],
      w.local,
      new CoreTarget(w.target),
    );
    const ins = new Insns(code);
    expect([0, 1, 2, 3].map((i) => ins.imm(i))).toEqual([1, 0, 8, 1]);
    expect(fx[4]).toMatchObject({ poisoned: true, reason: "field not found in the kernel" });
    expect(ins.imm(4)).toBe(CORE_POISON_IMM);
    expect(ins.imm(5)).toBe(24 + 2 * 4);
    expect(ins.imm(6)).toBe(4);
  });

  test("bitfields: shifts computed from the target's bit offset", () => {
    const w = world();
    // local y: bit 3, 5 bits in a u32 -> lshift 64-(3+5)=56, rshift 59; target y at bit 10 -> 49
    const code = prog([LSH64_K, 1, 0, 0, 56], [RSH64_K, 1, 0, 0, 59], [MOV64_K, 2, 0, 0, 0], [MOV64_K, 2, 0, 0, 4]);
    applyCoreRelocations(
      code,
      [
        relo(0, w.l.bf!, "0:1", CoreReloKind.FieldLShiftU64),
        relo(1, w.l.bf!, "0:1", CoreReloKind.FieldRShiftU64),
        relo(2, w.l.bf!, "0:1", CoreReloKind.FieldByteOffset),
        relo(3, w.l.bf!, "0:1", CoreReloKind.FieldByteSize),
      ],
      w.local,
      new CoreTarget(w.target),
    );
    const ins = new Insns(code);
    expect([ins.imm(0), ins.imm(1), ins.imm(2), ins.imm(3)]).toEqual([49, 59, 0, 4]);
  });

  test("an instruction that disagrees with the local value is an error", () => {
    const w = world();
    const code = prog([ADD64_K, 1, 0, 0, 99]);
    expect(() => applyCoreRelocations(code, [relo(0, w.l.foo!, "0:1", CoreReloKind.FieldByteOffset)], w.local, new CoreTarget(w.target))).toThrow(
      /instruction has imm 99, expected 4/,
    );
  });

  test("candidates that disagree are ambiguous", () => {
    const w = world();
    const tb = new BtfBuilder();
    const i = tb.int("int", 4, true);
    const u = tb.int("unsigned int", 4);
    tb.struct("foo", 8, [["a", i, 0], ["b", u, 32]]);
    tb.struct("foo___v2", 8, [["b", u, 0], ["a", i, 32]]);
    const code = prog([ADD64_K, 1, 0, 0, 4]);
    expect(() => applyCoreRelocations(code, [relo(0, w.l.foo!, "0:1", CoreReloKind.FieldByteOffset)], w.local, new CoreTarget(tb.build()))).toThrow(CoreError);
  });
});

describe("type and enum relocations", () => {
  test("type exists/size/ids, missing type -> 0", () => {
    const w = world();
    const code = prog([MOV64_K, 1, 0, 0, 1], [MOV64_K, 1, 0, 0, 28], [MOV64_K, 1, 0, 0, w.l.foo!], [MOV64_K, 1, 0, 0, 1], [MOV64_K, 1, 0, 0, 4], [MOV64_K, 1, 0, 0, w.l.foo!]);
    applyCoreRelocations(
      code,
      [
        relo(0, w.l.foo!, "0", CoreReloKind.TypeExists),
        relo(1, w.l.foo!, "0", CoreReloKind.TypeSize),
        relo(2, w.l.foo!, "0", CoreReloKind.TypeIdTarget),
        relo(3, w.l.missingType!, "0", CoreReloKind.TypeExists),
        relo(4, w.l.missingType!, "0", CoreReloKind.TypeSize),
        relo(5, w.l.foo!, "0", CoreReloKind.TypeIdLocal),
      ],
      w.local,
      new CoreTarget(w.target),
    );
    const ins = new Insns(code);
    expect([0, 1, 2, 3, 4, 5].map((i) => ins.imm(i))).toEqual([1, 64, w.t.foo!, 0, 0, w.l.foo!]);
  });

  test("type matches: subset of members with the same shapes", () => {
    const w = world();
    const code = prog([MOV64_K, 1, 0, 0, 1], [MOV64_K, 1, 0, 0, 1]);
    applyCoreRelocations(
      code,
      [relo(0, w.l.match!, "0", CoreReloKind.TypeMatches), relo(1, w.l.nomatch!, "0", CoreReloKind.TypeMatches)],
      w.local,
      new CoreTarget(w.target),
    );
    const ins = new Insns(code);
    expect([ins.imm(0), ins.imm(1)]).toEqual([1, 0]);
  });

  test("enum values across enum/enum64, ld_imm64, missing enumerator", () => {
    const w = world();
    const code = prog(
      [MOV64_K, 1, 0, 0, 1], // exists(GREEN)
      [MOV64_K, 1, 0, 0, 1], // exists(PURPLE)
      [LD_IMM64, 1, 0, 0, 1], // value(GREEN) as 64-bit
      [0, 0, 0, 0, 0],
      [LD_IMM64, 1, 0, 0, 7], // value(PURPLE): missing -> poison both slots
      [0, 0, 0, 0, 0],
      [MOV64_K, 1, 0, 0, 0], // value(RED) 0 -> 5
    );
    const fx = applyCoreRelocations(
      code,
      [
        relo(0, w.l.en!, "1", CoreReloKind.EnumvalExists),
        relo(1, w.l.en!, "2", CoreReloKind.EnumvalExists),
        relo(2, w.l.en!, "1", CoreReloKind.EnumvalValue),
        relo(4, w.l.en!, "2", CoreReloKind.EnumvalValue),
        relo(6, w.l.en!, "0", CoreReloKind.EnumvalValue),
      ],
      w.local,
      new CoreTarget(w.target),
    );
    const ins = new Insns(code);
    expect([ins.imm(0), ins.imm(1)]).toEqual([1, 0]);
    expect(ins.imm64(2)).toBe(0x1_0000_0000n);
    expect(fx[3]).toMatchObject({ poisoned: true, reason: "enumerator PURPLE not found in the kernel" });
    expect([ins.code(4), ins.imm(4), ins.code(5), ins.imm(5)]).toEqual([OP_CALL, CORE_POISON_IMM, OP_CALL, CORE_POISON_IMM]);
    expect(ins.imm(6)).toBe(5);
  });

  test("a 64-bit value does not fit an ALU immediate: poisoned, not truncated", () => {
    const w = world();
    const code = prog([MOV64_K, 1, 0, 0, 1]);
    const fx = applyCoreRelocations(code, [relo(0, w.l.big!, "0", CoreReloKind.EnumvalValue)], w.local, new CoreTarget(w.target));
    expect(fx[0]!.poisoned).toBe(true);
    expect(new Insns(code).imm(0)).toBe(CORE_POISON_IMM);
  });

  test("malformed records are errors", () => {
    const w = world();
    const code = prog([MOV64_K, 1, 0, 0, 1]);
    const t = new CoreTarget(w.target);
    expect(() => applyCoreRelocations(code, [relo(0, w.l.foo!, "0:x", CoreReloKind.FieldExists)], w.local, t)).toThrow(/bad CO-RE access string/);
    expect(() => applyCoreRelocations(code, [relo(0, w.l.foo!, "0:9", CoreReloKind.FieldExists)], w.local, t)).toThrow(/member index 9 out of range/);
    expect(() => applyCoreRelocations(code, [relo(5, w.l.foo!, "0:1", CoreReloKind.FieldExists)], w.local, t)).toThrow(/out of range/);
  });
});

describe("against the running kernel's BTF", () => {
  test("task_struct.pid offset matches vmlinux; missing field exists=0; enum value from the kernel", () => {
    const o = parseElf(fixtureBytes("loader-fixture"), "loader-fixture.o");
    const kernel = loadKernelBtf();
    const target = new CoreTarget(kernel);
    const exec = o.programs.on_exec!;
    const code = exec.insns.slice();
    const t0 = performance.now();
    const fx = applyCoreRelocations(code, exec.coreRelos, o.btf!, target, "on_exec");
    process.stderr.write(`CO-RE on_exec: ${fx.length} relocations in ${(performance.now() - t0).toFixed(1)} ms\n`);
    const ts = kernel.findOne("task_struct", BtfKind.Struct)!;
    const pid = kernel.typeOf(ts, BtfKind.Struct).members.find((m) => m.name === "pid")!;
    expect(fx[0]).toMatchObject({ spec: "task_struct___local:0:0", kind: CoreReloKind.FieldByteOffset, local: 0n, target: BigInt(pid.bitOffset / 8), poisoned: false });
    const ins = new Insns(code);
    const at = fx[0]!.insn;
    const patched = (ins.code(at) & 7) === 1 || (ins.code(at) & 7) === 3 ? ins.off(at) : ins.imm(at);
    expect(patched).toBe(pid.bitOffset / 8);
    expect(fx[1]).toMatchObject({ kind: CoreReloKind.FieldExists, target: 0n, poisoned: false });

    const second = o.programs.on_exit_second!;
    const code2 = second.insns.slice();
    const fx2 = applyCoreRelocations(code2, second.coreRelos, o.btf!, target);
    const mapType = kernel.findOne("bpf_map_type", BtfKind.Enum)!;
    const hash = kernel.typeOf(mapType, BtfKind.Enum).values.find((v) => v.name === "BPF_MAP_TYPE_HASH")!;
    expect(fx2[0]).toMatchObject({ kind: CoreReloKind.EnumvalValue, target: hash.value, poisoned: false });
  });

  test("an unguarded read of a missing field is poisoned", () => {
    const o = parseElf(fixtureBytes("loader-fixture"), "loader-fixture.o");
    const bad = o.programs.bad_core!;
    const code = bad.insns.slice();
    const fx = applyCoreRelocations(code, bad.coreRelos, o.btf!, new CoreTarget(loadKernelBtf()));
    expect(fx).toHaveLength(1);
    expect(fx[0]).toMatchObject({ poisoned: true, spec: "task_struct___local:0:2" });
    expect(new Insns(code).imm(fx[0]!.insn)).toBe(CORE_POISON_IMM);
  });
});
