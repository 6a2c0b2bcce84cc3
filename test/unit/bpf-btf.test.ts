// Raw BTF: decoding of every kind, lookups, encode round-trips, DATASEC fix-ups, vmlinux speed.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { Btf, BtfError, BtfKind, essentialName, fixupBtfForLoad, loadKernelBtf } from "../../src/bpf/btf.ts";
import { parseElf } from "../../src/bpf/elf.ts";
import { fixtureBytes } from "../fixtures/bpf/build.ts";
import { BtfBuilder } from "./bpf-btf-builder.ts";

function allKinds(): { b: BtfBuilder; ids: Record<string, number> } {
  const b = new BtfBuilder();
  const ids: Record<string, number> = {};
  ids.int = b.int("int", 4, true);
  ids.u8 = b.int("unsigned char", 1);
  ids.ptr = b.ptr(ids.int);
  ids.arr = b.array(ids.u8, ids.int, 16);
  ids.st = b.struct("s", 24, [
    ["a", ids.int, 0],
    ["flag", ids.int, 32, 3],
    ["p", ids.ptr, 64],
    ["buf", ids.arr, 128],
  ]);
  ids.un = b.struct("u", 8, [["x", ids.int, 0], ["y", ids.ptr, 0]], true);
  ids.en = b.enum("e", 4, [["E_NEG", -5], ["E_ONE", 1]], true);
  ids.fwd = b.fwd("later", true);
  ids.td = b.ref(BtfKind.Typedef, "s_t", ids.st);
  ids.vol = b.ref(BtfKind.Volatile, "", ids.td);
  ids.cst = b.ref(BtfKind.Const, "", ids.vol);
  ids.rst = b.ref(BtfKind.Restrict, "", ids.ptr);
  ids.proto = b.proto(ids.int, [["x", ids.int], ["", 0]]);
  ids.fn = b.func("f", ids.proto, 1);
  ids.v = b.variable("g", ids.int, 1);
  ids.ds = b.datasec(".data", 4, [[ids.v, 0, 4]]);
  ids.fl = b.float("double", 8);
  ids.tag = b.declTag("user", ids.fn, -1);
  ids.ttag = b.ref(BtfKind.TypeTag, "rcu", ids.int);
  ids.e64 = b.enum64("e64", [["BIG", 0x1_0000_0001n], ["MINUS", -2n]], true);
  return { b, ids };
}

describe("btf decode", () => {
  test("every kind decodes with its fields", () => {
    const { b, ids } = allKinds();
    const btf = b.build();
    expect(btf.count).toBe(20);
    expect(btf.type(ids.int!)).toMatchObject({ kind: BtfKind.Int, name: "int", size: 4, encoding: 1, bits: 32 });
    expect(btf.type(ids.ptr!)).toMatchObject({ kind: BtfKind.Ptr, type: ids.int });
    expect(btf.type(ids.arr!)).toMatchObject({ kind: BtfKind.Array, elemType: ids.u8, indexType: ids.int, nelems: 16 });
    const st = btf.typeOf(ids.st!, BtfKind.Struct);
    expect(st.members.map((m) => [m.name, m.bitOffset, m.bitfieldSize])).toEqual([
      ["a", 0, 0],
      ["flag", 32, 3],
      ["p", 64, 0],
      ["buf", 128, 0],
    ]);
    expect(btf.type(ids.un!).kind).toBe(BtfKind.Union);
    expect(btf.typeOf(ids.en!, BtfKind.Enum).values).toEqual([
      { name: "E_NEG", value: -5n },
      { name: "E_ONE", value: 1n },
    ]);
    expect(btf.type(ids.fwd!)).toMatchObject({ kind: BtfKind.Fwd, union: true });
    expect(btf.typeOf(ids.proto!, BtfKind.FuncProto).params).toEqual([
      { name: "x", type: ids.int! },
      { name: "", type: 0 },
    ]);
    expect(btf.type(ids.fn!)).toMatchObject({ kind: BtfKind.Func, linkage: 1, type: ids.proto });
    expect(btf.type(ids.v!)).toMatchObject({ kind: BtfKind.Var, linkage: 1 });
    expect(btf.typeOf(ids.ds!, BtfKind.Datasec).vars).toEqual([{ type: ids.v!, offset: 0, size: 4 }]);
    expect(btf.type(ids.fl!)).toMatchObject({ kind: BtfKind.Float, size: 8 });
    expect(btf.type(ids.tag!)).toMatchObject({ kind: BtfKind.DeclTag, componentIdx: -1 });
    expect(btf.type(ids.ttag!)).toMatchObject({ kind: BtfKind.TypeTag, name: "rcu" });
    expect(btf.typeOf(ids.e64!, BtfKind.Enum64).values).toEqual([
      { name: "BIG", value: 0x1_0000_0001n },
      { name: "MINUS", value: -2n },
    ]);
  });

  test("sizes follow modifiers, typedefs, pointers and arrays", () => {
    const { b, ids } = allKinds();
    const btf = b.build();
    expect(btf.sizeOf(ids.cst!)).toBe(24);
    expect(btf.skipModsAndTypedefs(ids.cst!)).toBe(ids.st!);
    expect(btf.sizeOf(ids.rst!)).toBe(8);
    expect(btf.sizeOf(ids.arr!)).toBe(16);
    expect(btf.sizeOf(ids.v!)).toBe(4);
    expect(() => btf.sizeOf(ids.fn!)).toThrow(BtfError);
  });

  test("lookups by name and kind, exact and essential", () => {
    const b = new BtfBuilder();
    const i = b.int("int", 4, true);
    const a = b.struct("task", 4, [["x", i, 0]]);
    const flavored = b.struct("task___v2", 4, [["x", i, 0]]);
    const td = b.ref(BtfKind.Typedef, "task", a);
    b.struct("task___", 4, []); // not a flavor: nothing follows the ___
    const fn = b.func("task", b.proto(i, []));
    const btf = b.build();
    // FUNCs live in their own name table; a kind-less lookup merges both in id order.
    expect(btf.findByName("task")).toEqual([a, td, fn]);
    expect(btf.findByName("task", BtfKind.Func)).toEqual([fn]);
    expect(btf.findByName("task", BtfKind.Func, BtfKind.Typedef)).toEqual([td, fn]);
    expect(btf.findByName("task", BtfKind.Struct)).toEqual([a]);
    expect(btf.findOne("task___v2", BtfKind.Struct)).toBe(flavored);
    expect(btf.findByEssentialName("task___local", BtfKind.Struct)).toEqual([a, flavored]);
    expect(btf.findByName("nope")).toEqual([]);
    expect(essentialName("task_struct___x")).toBe("task_struct");
    expect(essentialName("a____b")).toBe("a____b");
    expect(essentialName("___x")).toBe("___x");
    expect(essentialName("plain")).toBe("plain");
  });

  test("errors: bad magic, big endian, truncated types, unknown kind", () => {
    const raw = allKinds().b.raw();
    const bad = raw.slice();
    bad[0] = 0;
    expect(() => Btf.parse(bad)).toThrow(/bad magic/);
    const be = raw.slice();
    be[0] = 0xeb;
    be[1] = 0x9f;
    expect(() => Btf.parse(be)).toThrow(/big-endian/);
    expect(() => Btf.parse(raw.slice(0, 30))).toThrow(BtfError);
    const unknown = raw.slice();
    unknown[24 + 7] = 0x1f; // kind 31 in the first record's info
    expect(() => Btf.parse(unknown)).toThrow(/unknown kind/);
  });
});

describe("btf encode", () => {
  test("hand-built BTF round-trips byte for byte and type for type", () => {
    const raw = allKinds().b.raw();
    const a = Btf.parse(raw);
    const enc = a.encode();
    expect(Buffer.from(enc).equals(Buffer.from(raw))).toBe(true);
    const b = Btf.parse(enc);
    for (let id = 1; id <= a.count; id++) expect(b.type(id)).toEqual(a.type(id));
  });

  test("clang object BTF round-trips (parse, encode, parse equal)", () => {
    const obj = parseElf(fixtureBytes("loader-fixture"), "loader-fixture.o");
    const btf = obj.btf!;
    const again = Btf.parse(btf.encode());
    expect(again.count).toBe(btf.count);
    for (let id = 1; id <= btf.count; id++) expect(again.type(id)).toEqual(btf.type(id));
  });

  test("addString and appended records keep existing ids", () => {
    const { b, ids } = allKinds();
    const btf = b.build();
    const off = btf.addString("fresh_name");
    expect(btf.string(off)).toBe("fresh_name");
    btf.setNameOff(ids.int!, off);
    const again = Btf.parse(btf.encode());
    expect(again.nameOf(ids.int!)).toBe("fresh_name");
    expect(again.type(ids.st!)).toEqual(btf.type(ids.st!));
  });
});

describe("btf fix-ups before BTF_LOAD", () => {
  test("DATASEC sizes and variable offsets come from the ELF; the spec's BTF is untouched", () => {
    const obj = parseElf(fixtureBytes("loader-fixture"), "loader-fixture.o");
    const btf = obj.btf!;
    const rodataId = btf.findOne(".rodata", BtfKind.Datasec)!;
    expect(btf.typeOf(rodataId, BtfKind.Datasec).size).toBe(0); // clang leaves it 0
    const fixed = fixupBtfForLoad(btf, obj.datasecLayout);
    const ds = fixed.typeOf(rodataId, BtfKind.Datasec);
    expect(ds.size).toBe(16);
    const vars = ds.vars.map((v) => [fixed.nameOf(v.type), v.offset, v.size]);
    expect(vars).toEqual([
      ["target_pid", 0, 4],
      ["knob", 8, 8],
    ]);
    const bss = fixed.typeOf(fixed.findOne(".bss", BtfKind.Datasec)!, BtfKind.Datasec);
    expect(bss.size).toBe(16);
    expect(bss.vars.map((v) => [fixed.nameOf(v.type), v.offset])).toEqual([
      ["hits", 0],
      ["static_hits", 8],
    ]);
    // .maps has a section; its DATASEC is sized as well.
    expect(fixed.typeOf(fixed.findOne(".maps", BtfKind.Datasec)!, BtfKind.Datasec).size).toBeGreaterThan(0);
    expect(btf.typeOf(rodataId, BtfKind.Datasec).size).toBe(0);
  });

  test("extern-only DATASECs get a dummy layout and allowed linkages", () => {
    const b = new BtfBuilder();
    const i = b.int("int", 4, true);
    const proto = b.proto(i, []);
    const kfunc = b.func("bpf_kfunc_x", proto, 2);
    const cfg = b.variable("CONFIG_X", i, 2);
    const ks = b.datasec(".ksyms", 0, [[kfunc, 0, 0]]);
    const kc = b.datasec(".kconfig", 0, [[cfg, 0, 0]]);
    const btf = b.build();
    const fixed = fixupBtfForLoad(btf, { sectionSize: () => undefined, symbolOffset: () => undefined });
    expect(fixed.typeOf(kfunc, BtfKind.Func).linkage).toBe(1);
    expect(fixed.typeOf(cfg, BtfKind.Var).linkage).toBe(1);
    const ksyms = fixed.typeOf(ks, BtfKind.Datasec);
    expect(ksyms.size).toBe(4);
    expect(fixed.type(ksyms.vars[0]!.type).kind).toBe(BtfKind.Var);
    expect(fixed.typeOf(kc, BtfKind.Datasec)).toMatchObject({ size: 4, vars: [{ type: cfg, offset: 0, size: 4 }] });
    expect(fixed.count).toBe(btf.count + 2); // dummy int + one var, appended
  });
});

describe("vmlinux BTF", () => {
  test("parses fast and agrees with itself", () => {
    const raw = new Uint8Array(readFileSync("/sys/kernel/btf/vmlinux"));
    const t0 = performance.now();
    const btf = Btf.parse(raw, { takeOwnership: false });
    const parseMs = performance.now() - t0;
    const t1 = performance.now();
    const ts = btf.findOne("task_struct", BtfKind.Struct);
    const indexMs = performance.now() - t1;
    process.stderr.write(`vmlinux BTF: ${btf.count} types, parse ${parseMs.toFixed(1)} ms, name index ${indexMs.toFixed(1)} ms\n`);
    expect(btf.count).toBeGreaterThan(50_000);
    expect(parseMs).toBeLessThan(500);
    expect(ts).toBeDefined();
    const pid = btf.typeOf(ts!, BtfKind.Struct).members.find((m) => m.name === "pid");
    expect(pid).toBeDefined();
    expect(btf.sizeOf(pid!.type)).toBe(4);
    expect(btf.findByName("btf_trace_sched_process_exec", BtfKind.Typedef)).toHaveLength(1);
    // Encoding reproduces the kernel's bytes exactly (same header length, no reordering).
    expect(Buffer.from(btf.encode()).equals(Buffer.from(raw))).toBe(true);
  });

  test("loadKernelBtf is cached", () => {
    expect(loadKernelBtf()).toBe(loadKernelBtf());
  });
});
