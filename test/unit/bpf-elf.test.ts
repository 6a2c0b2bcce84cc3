// ELF reader and linker on clang-built objects (test/fixtures/bpf, compiled at test time).
import { describe, expect, test } from "bun:test";
import { AttachType, MapFlags, MapType, ProgType } from "../../src/bpf/constants.ts";
import { ElfError, classifySection, parseElf, type ObjectSpec } from "../../src/bpf/elf.ts";
import { Insns, OP_CALL, PSEUDO_CALL, PSEUDO_MAP_FD, PSEUDO_MAP_VALUE } from "../../src/bpf/insn.ts";
import { LinkerError, linkProgram } from "../../src/bpf/linker.ts";
import { loadKernelBtf } from "../../src/bpf/btf.ts";
import { CoreTarget } from "../../src/bpf/core.ts";
import { fixtureBytes } from "../fixtures/bpf/build.ts";

const fixture = (): ObjectSpec => parseElf(fixtureBytes("loader-fixture"), "loader-fixture.o");

/** Replace every NUL-delimited occurrence of a string (section names in .strtab and .BTF) with one of the same length. */
function patch(bytes: Uint8Array, from: string, to: string): Uint8Array {
  const a = Buffer.from(`\0${from}\0`);
  const b = Buffer.from(`\0${to}\0`);
  expect(a.length).toBe(b.length);
  const out = Buffer.from(bytes.slice());
  let n = 0;
  for (let at = out.indexOf(a); at >= 0; at = out.indexOf(a, at + 1), n++) b.copy(out, at);
  expect(n).toBeGreaterThan(0);
  return new Uint8Array(out);
}

describe("section names", () => {
  const cases: [string, ProgType, AttachType | undefined, string][] = [
    ["tp_btf/sched_process_exec", ProgType.TRACING, AttachType.TRACE_RAW_TP, "sched_process_exec"],
    ["raw_tracepoint/sys_enter", ProgType.RAW_TRACEPOINT, undefined, "sys_enter"],
    ["raw_tp/sched_switch", ProgType.RAW_TRACEPOINT, undefined, "sched_switch"],
    ["raw_tp.w/sched_switch", ProgType.RAW_TRACEPOINT_WRITABLE, undefined, "sched_switch"],
    ["tracepoint/syscalls/sys_enter_openat", ProgType.TRACEPOINT, undefined, "syscalls/sys_enter_openat"],
    ["tp/sched/sched_switch", ProgType.TRACEPOINT, undefined, "sched/sched_switch"],
    ["lsm/file_open", ProgType.LSM, AttachType.LSM_MAC, "file_open"],
    ["lsm.s/bprm_check_security", ProgType.LSM, AttachType.LSM_MAC, "bprm_check_security"],
    ["fentry/do_unlinkat", ProgType.TRACING, AttachType.TRACE_FENTRY, "do_unlinkat"],
    ["fexit/do_unlinkat", ProgType.TRACING, AttachType.TRACE_FEXIT, "do_unlinkat"],
    ["fmod_ret/security_file_open", ProgType.TRACING, AttachType.MODIFY_RETURN, "security_file_open"],
    ["kprobe/do_sys_openat2", ProgType.KPROBE, undefined, "do_sys_openat2"],
    ["kretprobe/do_sys_openat2", ProgType.KPROBE, undefined, "do_sys_openat2"],
    ["uprobe//usr/bin/bash:readline", ProgType.KPROBE, undefined, "/usr/bin/bash:readline"],
    ["uretprobe//lib/libc.so.6:malloc", ProgType.KPROBE, undefined, "/lib/libc.so.6:malloc"],
    ["cgroup/connect4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_CONNECT, ""],
    ["cgroup/connect6", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET6_CONNECT, ""],
    ["cgroup/sendmsg4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_UDP4_SENDMSG, ""],
    ["cgroup/bind4", ProgType.CGROUP_SOCK_ADDR, AttachType.CGROUP_INET4_BIND, ""],
    ["cgroup/sock_create", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE, ""],
    ["cgroup/sock", ProgType.CGROUP_SOCK, AttachType.CGROUP_INET_SOCK_CREATE, ""],
    ["cgroup/dev", ProgType.CGROUP_DEVICE, AttachType.CGROUP_DEVICE, ""],
    ["cgroup/sysctl", ProgType.CGROUP_SYSCTL, AttachType.CGROUP_SYSCTL, ""],
    ["cgroup/skb", ProgType.CGROUP_SKB, undefined, ""],
    ["cgroup_skb/egress", ProgType.CGROUP_SKB, AttachType.CGROUP_INET_EGRESS, ""],
    ["socket", ProgType.SOCKET_FILTER, undefined, ""],
    ["xdp", ProgType.XDP, AttachType.XDP, ""],
    ["classifier", ProgType.SCHED_CLS, undefined, ""],
  ];
  for (const [sec, type, attach, to] of cases) {
    test(sec, () => {
      expect(classifySection(sec)).toEqual({ type, expectedAttachType: attach, attachTo: to, flags: sec.includes(".s/") ? 16 : 0, autoload: true });
    });
  }
  test("a leading ? turns autoload off; near misses are unknown", () => {
    expect(classifySection("?tp_btf/sched_switch")).toMatchObject({ type: ProgType.TRACING, autoload: false, attachTo: "sched_switch" });
    expect(classifySection("tp_btfx/sched_switch")).toBeUndefined();
    expect(classifySection("wardbogus/x")).toBeUndefined();
    expect(classifySection("cgroup/nonsense")).toBeUndefined();
  });
});

describe("parseElf on a clang object", () => {
  test("programs: several per section, types, attach targets, license", () => {
    const o = fixture();
    expect(o.license).toBe("GPL");
    const summary = Object.values(o.programs)
      .map((p) => [p.name, p.section, p.type, p.attachTo, p.autoload])
      .sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    expect(summary).toEqual([
      ["bad_core", "?tp_btf/sched_process_exec", ProgType.TRACING, "sched_process_exec", false],
      ["on_connect4", "cgroup/connect4", ProgType.CGROUP_SOCK_ADDR, "", true],
      ["on_exec", "tp_btf/sched_process_exec", ProgType.TRACING, "sched_process_exec", true],
      ["on_exit_", "tp_btf/sched_process_exit", ProgType.TRACING, "sched_process_exit", true],
      ["on_exit_second", "tp_btf/sched_process_exit", ProgType.TRACING, "sched_process_exit", true],
      ["on_file_open", "lsm/file_open", ProgType.LSM, "file_open", true],
      ["on_kprobe", "kprobe/do_sys_openat2", ProgType.KPROBE, "do_sys_openat2", true],
      ["on_openat", "tracepoint/syscalls/sys_enter_openat", ProgType.TRACEPOINT, "syscalls/sys_enter_openat", true],
      ["on_switch", "raw_tp/sched_switch", ProgType.RAW_TRACEPOINT, "sched_switch", true],
    ]);
    // .text functions are subprograms, not programs.
    expect(o.programs.bump).toBeUndefined();
    expect(Object.keys(o.programs.on_exec!.functions)).toEqual(expect.arrayContaining(["bump", "global_helper", "on_exec"]));
    // Both programs of the shared section were split at their symbols.
    const a = o.programs.on_exit_!;
    const b = o.programs.on_exit_second!;
    expect(a.section).toBe(b.section);
    expect(new Insns(a.insns).code(a.insns.length / 8 - 1)).toBe(0x95);
    expect(new Insns(b.insns).code(b.insns.length / 8 - 1)).toBe(0x95);
  });

  test("relocations: calls, map references, global data", () => {
    const o = fixture();
    const exec = o.programs.on_exec!;
    const calls = exec.relocations.filter((r) => r.kind === "call").map((r) => (r.kind === "call" ? r.target : ""));
    expect(calls).toEqual(["bump", "global_helper"]);
    const data = exec.relocations.filter((r) => r.kind === "data").map((r) => (r.kind === "data" ? [r.map, r.offset] : []));
    expect(data).toEqual(expect.arrayContaining([[".rodata", 0], [".data", 0], [".bss", 0]]));
    expect(exec.relocations.some((r) => r.kind === "map" && r.map === "pinned_counter")).toBe(true);
    const bump = exec.functions.bump!;
    expect(bump.relocations.filter((r) => r.kind === "map").map((r) => (r.kind === "map" ? r.map : ""))).toEqual(["counts", "counts"]);
    // knob lives at .rodata+8 (after the 4-byte target_pid, aligned).
    const gh = exec.functions.global_helper!;
    expect(gh.relocations).toContainEqual(expect.objectContaining({ kind: "data", map: ".rodata", offset: 8 }));
    // A static variable and a string literal are reached through their section symbols.
    expect(o.programs.on_exit_!.relocations).toContainEqual(expect.objectContaining({ kind: "data", map: ".bss", offset: 8 }));
    expect(o.programs.on_openat!.relocations).toContainEqual(expect.objectContaining({ kind: "data", map: ".rodata.str1.1", offset: 0 }));
    // ext info is per function, in instructions.
    expect(exec.funcInfo).toHaveLength(1);
    expect(exec.funcInfo[0]!.insnOff).toBe(0);
    expect(bump.funcInfo).toHaveLength(1);
    expect(exec.lineInfo.length).toBeGreaterThan(3);
    expect(exec.coreRelos.map((r) => [r.accessStr, r.kind])).toEqual([
      ["0:0", 0],
      ["0:2", 2],
    ]);
  });

  test("maps from .maps: hash, ring buffer, map-in-map with initial slots, pinning", () => {
    const o = fixture();
    expect(o.maps.counts).toMatchObject({ type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 128, flags: 0, pinning: "none" });
    expect(o.maps.counts!.btfValueTypeId).toBeGreaterThan(0);
    expect(o.maps.events).toMatchObject({ type: MapType.RINGBUF, keySize: 0, valueSize: 0, maxEntries: 4096 });
    expect(o.maps.events!.btfValueTypeId).toBeUndefined();
    expect(o.maps.pinned_counter).toMatchObject({ type: MapType.ARRAY, pinning: "by-name" });
    const outer = o.maps.outer!;
    expect(outer).toMatchObject({ type: MapType.ARRAY_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 3 });
    expect(outer.innerMap).toMatchObject({ name: "outer.inner", type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 4 });
    expect(outer.initialRefs).toEqual({ 1: "inner2", 2: "inner1" });
    expect(outer.btfValueTypeId).toBeUndefined();
  });

  test("global data: single-entry arrays with initial contents; variables edit them", () => {
    const o = fixture();
    const rodata = o.maps[".rodata"]!;
    expect(rodata).toMatchObject({ type: MapType.ARRAY, keySize: 4, valueSize: 16, maxEntries: 1, flags: MapFlags.RDONLY_PROG, freeze: true });
    expect(o.maps[".data"]).toMatchObject({ valueSize: 4, flags: 0, freeze: false });
    expect(o.maps[".bss"]!.contents![0]!.value).toEqual(new Uint8Array(16));
    const str = o.maps[".rodata.str1.1"]!;
    expect(str).toMatchObject({ flags: MapFlags.RDONLY_PROG, freeze: true, valueSize: 8 });
    expect(new TextDecoder().decode(str.contents![0]!.value)).toBe("literal\0");
    expect(o.variables.static_hits).toBeUndefined(); // file-local: not a settable variable
    expect(Array.from(o.maps[".data"]!.contents![0]!.value)).toEqual([7, 0, 0, 0]);
    const knob = o.variables.knob!;
    expect(knob).toMatchObject({ section: ".rodata", offset: 8, size: 8, constant: true });
    expect(Array.from(knob.get())).toEqual([42, 0, 0, 0, 0, 0, 0, 0]);
    o.variables.target_pid!.set(0x01020304);
    knob.set(-1n);
    expect(Array.from(rodata.contents![0]!.value)).toEqual([4, 3, 2, 1, 0, 0, 0, 0, 255, 255, 255, 255, 255, 255, 255, 255]);
    expect(() => o.variables.target_pid!.set(1n << 40n)).toThrow(RangeError);
    expect(() => o.variables.target_pid!.set(new Uint8Array(3))).toThrow(RangeError);
    expect(o.variables.hits).toMatchObject({ section: ".bss", constant: false });
    // Each parse gets its own images.
    expect(fixture().variables.knob!.get()[0]).toBe(42);
  });
});

describe("parseElf on a legacy object", () => {
  test('"maps" section definitions, "version" and the license string', () => {
    const o = parseElf(fixtureBytes("legacy-maps"), "legacy-maps.o");
    expect(o.license).toBe("Dual BSD/GPL");
    expect(o.kernVersion).toBe(0x060100);
    expect(o.maps.packets).toMatchObject({ type: MapType.ARRAY, keySize: 4, valueSize: 8, maxEntries: 2, flags: 0 });
    expect(o.maps.flows).toMatchObject({ type: MapType.LRU_HASH, keySize: 16, valueSize: 8, maxEntries: 1024 });
    const p = o.programs.count_packets!;
    expect(p).toMatchObject({ type: ProgType.SOCKET_FILTER, kernVersion: 0x060100, license: "Dual BSD/GPL" });
    expect(p.relocations.map((r) => (r.kind === "map" ? r.map : r.kind))).toEqual(["packets", "flows"]);
  });
});

describe("ELF errors", () => {
  const good = (): Uint8Array => fixtureBytes("loader-fixture");
  test("garbage and non-ELF input", () => {
    expect(() => parseElf(new TextEncoder().encode("hello, this is not an object file at all, but long enough to read"), "x.o")).toThrow(/x\.o: not an ELF file/);
    expect(() => parseElf(new Uint8Array(10), "tiny.o")).toThrow(ElfError);
  });
  test("wrong class and endianness", () => {
    const c32 = good();
    c32[4] = 1;
    expect(() => parseElf(c32, "a.o")).toThrow(/not ELF64/);
    const be = good();
    be[5] = 2;
    expect(() => parseElf(be, "a.o")).toThrow(/big-endian/);
  });
  test("truncated files", () => {
    const bytes = good();
    expect(() => parseElf(bytes.subarray(0, 200), "t.o")).toThrow(/t\.o: truncated/);
    // Section headers intact but a section's data cut off: move the header table's view.
    for (const cut of [0x100, 0x400, 0x800]) {
      const t = bytes.slice();
      // Point e_shoff at the end so headers "fit" but cover garbage: must still fail cleanly.
      new DataView(t.buffer).setBigUint64(0x28, BigInt(t.length - cut), true);
      expect(() => parseElf(t, "t.o")).toThrow(ElfError);
    }
  });
  test("a section whose data runs past the end of the file", () => {
    const t = good();
    const dv = new DataView(t.buffer);
    const shoff = Number(dv.getBigUint64(0x28, true));
    const shnum = dv.getUint16(0x3c, true);
    const strOff = Number(dv.getBigUint64(shoff + dv.getUint16(0x3e, true) * 64 + 24, true));
    let patched = 0;
    for (let i = 0; i < shnum; i++) {
      const h = shoff + i * 64;
      const name = Buffer.from(t.subarray(strOff + dv.getUint32(h, true))).toString("latin1").split("\0")[0];
      if (name === ".BTF") {
        dv.setBigUint64(h + 32, BigInt(t.length), true); // sh_size: far past the end
        patched++;
      }
      if (name === ".bss") {
        dv.setBigUint64(h + 32, 1n << 50n, true); // NOBITS: not bounded by the file, must be capped
        patched++;
      }
    }
    expect(patched).toBe(2);
    expect(() => parseElf(t, "s.o")).toThrow(/s\.o: truncated section \.BTF/);
    // With .BTF intact, the absurd .bss size is refused instead of allocated.
    const u = good();
    const du = new DataView(u.buffer);
    for (let i = 0; i < shnum; i++) {
      const h = shoff + i * 64;
      const name = Buffer.from(u.subarray(strOff + du.getUint32(h, true))).toString("latin1").split("\0")[0];
      if (name === ".bss") du.setBigUint64(h + 32, 1n << 50n, true);
    }
    expect(() => parseElf(u, "s.o")).toThrow(/section \.bss claims \d+ bytes/);
  });
  test("unknown program section", () => {
    const bytes = patch(good(), "kprobe/do_sys_openat2", "kprobX/do_sys_openat2");
    expect(() => parseElf(bytes, "u.o")).toThrow('u.o: unknown program section "kprobX/do_sys_openat2"');
  });
  test("missing license", () => {
    const bytes = patch(good(), "license", "licensX");
    expect(() => parseElf(bytes, "l.o")).toThrow(/l\.o: missing license section/);
  });
  test("relocation against a map that does not exist", () => {
    expect(() => parseElf(fixtureBytes("bad-missing-map"), "m.o")).toThrow(/relocation against map or variable nowhere, which does not exist/);
  });
});

describe("linker", () => {
  const mapFds: Record<string, number> = { counts: 101, pinned_counter: 102, ".rodata": 103, ".data": 104, ".bss": 105 };
  const mapFd = (n: string): number => {
    const fd = mapFds[n];
    if (fd === undefined) throw new Error(`no map ${n}`);
    return fd;
  };

  test("appends each called subprogram once and fixes call offsets, maps and data", () => {
    const o = fixture();
    const p = o.programs.on_exit_!;
    const l = linkProgram(p, { mapFd, btf: o.btf });
    const bumpAt = l.layout.get("bump")!;
    expect([...l.layout.keys()]).toEqual(["on_exit_", "bump"]);
    expect(bumpAt).toBe(p.insns.length / 8);
    const ins = new Insns(l.insns);
    expect(l.insns.length).toBe(p.insns.length + p.functions.bump!.insns.length);
    // the call in on_exit_ lands on bump's first instruction
    const call = p.relocations.find((r) => r.kind === "call")!.insn;
    expect(ins.code(call)).toBe(OP_CALL);
    expect(ins.src(call)).toBe(PSEUDO_CALL);
    expect(call + ins.imm(call) + 1).toBe(bumpAt);
    // bump's map loads now carry the map fd
    for (const r of p.functions.bump!.relocations) {
      const i = bumpAt + r.insn;
      expect(ins.src(i)).toBe(PSEUDO_MAP_FD);
      expect(ins.imm(i)).toBe(101);
    }
    // func_info rebased and sorted, one per function, first at 0
    expect(l.funcInfo.map((f) => f.insnOff)).toEqual([0, bumpAt]);
    expect(l.lineInfo.map((x) => x.insnOff)).toEqual([...l.lineInfo.map((x) => x.insnOff)].sort((a, b) => a - b));
    expect(l.lineInfo.some((x) => x.insnOff >= bumpAt)).toBe(true);
    // the spec's own instructions are not modified
    expect(new Insns(p.functions.bump!.insns).imm(p.functions.bump!.relocations[0]!.insn)).toBe(0);
  });

  test("global data references become PSEUDO_MAP_VALUE with the variable's offset", () => {
    const o = fixture();
    const p = o.programs.on_exit_second!;
    const o2 = o.btf!;
    const l = linkProgram(p, { mapFd, btf: o2, core: new CoreTarget(loadKernelBtf()) });
    const r = p.relocations.find((x) => x.kind === "data")!;
    const ins = new Insns(l.insns);
    expect(ins.src(r.insn)).toBe(PSEUDO_MAP_VALUE);
    expect(ins.imm(r.insn)).toBe(105);
    expect(ins.imm(r.insn + 1)).toBe(0);
  });

  test("CO-RE relocations without kernel BTF are an error, not a silent skip", () => {
    const o = fixture();
    expect(() => linkProgram(o.programs.on_exec!, { mapFd, btf: o.btf })).toThrow(LinkerError);
  });
});
