// The object layer end to end: a clang-built object (test/fixtures/bpf/loader-fixture.c)
// through loadCollectionSpec -> newCollection -> attachProgram, with real execs counted by
// tp_btf programs that call .text subprograms, use CO-RE, global data and map-in-map.
import { afterAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import { CollectionError, attachProgram, loadCollectionSpec, newCollection, type CollectionSpec } from "../../src/bpf/collection.ts";
import { MapType } from "../../src/bpf/constants.ts";
import { BpfMap } from "../../src/bpf/map.ts";
import { VerifierError } from "../../src/bpf/program.ts";
import { TestCgroup } from "../lib/cgroup.ts";
import { leakedSince, openDescriptors } from "../lib/fds.ts";
import { kernelTest } from "../lib/host.ts";
import { fixturePath } from "../fixtures/bpf/build.ts";

// LSM and kprobe programs are left out: this kernel refuses LSM loads (EPERM) and has no kprobes.
const PROGRAMS = ["on_exec", "on_exit_", "on_exit_second", "on_switch", "on_openat", "on_connect4"];

const spec = (): CollectionSpec => loadCollectionSpec(fixturePath("loader-fixture"));
const key0 = new Uint8Array(4);
const u32 = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);
const u64 = (b: Uint8Array | undefined): bigint => (b === undefined ? -1n : new DataView(b.buffer, b.byteOffset).getBigUint64(0, true));
const runTrue = (n: number): void => {
  for (let i = 0; i < n; i++) expect(spawnSync("/bin/true").status).toBe(0);
};

const pinRoot = join("/sys/fs/bpf", `ward-test-collection-${process.pid}`);
afterAll(() => {
  if (existsSync(pinRoot)) rmSync(pinRoot, { recursive: true, force: true });
});

describe("newCollection + attachProgram", () => {
  kernelTest("tp_btf programs with subprograms, CO-RE and global data count real execs", () => {
    const s = spec();
    const c = newCollection(s, { programs: PROGRAMS });
    const links = [];
    try {
      expect(Object.keys(c.programs).sort()).toEqual([...PROGRAMS].sort());
      expect(c.coreFixups.on_exec!.every((f) => !f.poisoned)).toBe(true);
      // Maps carry the object's BTF (the create-without-BTF fallback must not be what happened).
      expect(c.maps.counts!.info().btfValueTypeId).toBe(s.maps.counts!.btfValueTypeId!);
      expect(c.maps[".rodata"]!.info().btfId).toBeGreaterThan(0);
      for (const n of ["on_exec", "on_exit_", "on_exit_second"]) links.push(attachProgram(c.programs[n]!, s.programs[n]!));
      const before1 = u64(c.maps.counts!.lookup(u32(1)));
      runTrue(5);
      // bump() in .text, called from both sections, counted key 1 (exec) and 2 (exit).
      expect(u64(c.maps.counts!.lookup(u32(1)))).toBeGreaterThanOrEqual((before1 < 0n ? 0n : before1) + 5n);
      expect(u64(c.maps.counts!.lookup(u32(2)))).toBeGreaterThanOrEqual(5n);
      // .bss `hits`: on_exec and on_exit_second both add to it.
      const bss = c.maps[".bss"]!.lookup(key0)!;
      expect(u64(bss)).toBeGreaterThanOrEqual(10n);
      // static_hits (.bss+8, reached through the section symbol): on_exit_ adds 2 per exit.
      expect(u64(bss.subarray(8))).toBeGreaterThanOrEqual(10n);
      // .data `seen_tgid` started at 7 and now holds a pid read through the CO-RE offset.
      const seen = new DataView(c.maps[".data"]!.lookup(key0)!.buffer).getUint32(0, true);
      expect(seen).not.toBe(7);
      expect(seen).toBeGreaterThan(0);
    } finally {
      for (const l of links) l.close();
      c.close();
    }
  });

  kernelTest(".rodata is written before load and frozen: an impossible target_pid silences on_exec", () => {
    const s = spec();
    s.variables.target_pid!.set(0x7ffffffe);
    const c = newCollection(s, { programs: ["on_exec"] });
    const link = attachProgram(c.programs.on_exec!, s.programs.on_exec!);
    try {
      runTrue(3);
      expect(c.maps.counts!.lookup(u32(1))).toBeUndefined();
      expect(new DataView(c.maps[".rodata"]!.lookup(key0)!.buffer).getUint32(0, true)).toBe(0x7ffffffe);
      expect(() => c.maps[".rodata"]!.update(key0, new Uint8Array(16))).toThrow(/EPERM/);
    } finally {
      link.close();
      c.close();
    }
  });

  kernelTest("map-in-map slots, raw tracepoint, tracepoint and cgroup attach", () => {
    const s = spec();
    const c = newCollection(s, { programs: PROGRAMS });
    const cg = new TestCgroup("collection");
    try {
      expect(c.maps.outer!.spec.type).toBe(MapType.ARRAY_OF_MAPS);
      const slot1 = c.maps.outer!.lookup(u32(1));
      const slot2 = c.maps.outer!.lookup(u32(2));
      expect(slot1).toBeDefined();
      // Slots hold inner map ids: inner2 in slot 1, inner1 in slot 2.
      expect(new DataView(slot1!.buffer).getUint32(0, true)).toBe(c.maps.inner2!.info().id);
      expect(new DataView(slot2!.buffer).getUint32(0, true)).toBe(c.maps.inner1!.info().id);
      expect(c.maps.outer!.lookup(u32(0))).toBeUndefined();
      const raw = attachProgram(c.programs.on_switch!, s.programs.on_switch!);
      const tp = attachProgram(c.programs.on_openat!, s.programs.on_openat!);
      expect(() => attachProgram(c.programs.on_connect4!, s.programs.on_connect4!)).toThrow(CollectionError);
      const cgl = attachProgram(c.programs.on_connect4!, s.programs.on_connect4!, { cgroup: cg.path });
      for (const l of [raw, tp, cgl]) {
        expect(l.fd.raw).toBeGreaterThan(0);
        l.close();
      }
    } finally {
      c.close();
      cg.remove();
    }
  });

  kernelTest("maps pinned by name are reused by the next collection; incompatible pins are refused", () => {
    const dir = join(pinRoot, "a");
    mkdirSync(dir, { recursive: true });
    const c1 = newCollection(spec(), { programs: ["on_exit_"], pinDir: dir });
    expect(existsSync(join(dir, "pinned_counter"))).toBe(true);
    c1.maps.pinned_counter!.update(key0, new Uint8Array(new BigUint64Array([12345n]).buffer));
    c1.close();
    const c2 = newCollection(spec(), { programs: ["on_exit_"], pinDir: dir });
    expect(u64(c2.maps.pinned_counter!.lookup(key0))).toBe(12345n);
    c2.close();
    unlinkSync(join(dir, "pinned_counter"));

    const bad = join(pinRoot, "b");
    mkdirSync(bad, { recursive: true });
    const other = BpfMap.create({ name: "pinned_counter", type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    other.pin(join(bad, "pinned_counter"));
    other.close();
    const fds = openDescriptors();
    expect(() => newCollection(spec(), { programs: ["on_exit_"], pinDir: bad })).toThrow(/reuse pinned map pinned_counter .*incompatible \(valueSize 4 != 8\)/);
    expect(leakedSince(fds)).toEqual([]); // everything made before the failure was closed
    unlinkSync(join(bad, "pinned_counter"));
  });

  kernelTest("a legacy object (maps section, version, no CO-RE) loads", () => {
    const c = newCollection(loadCollectionSpec(fixturePath("legacy-maps")));
    try {
      expect(Object.keys(c.programs)).toEqual(["count_packets"]);
      expect(c.maps.flows!.info()).toMatchObject({ type: MapType.LRU_HASH, keySize: 16, valueSize: 8, maxEntries: 1024 });
    } finally {
      c.close();
    }
  });

  kernelTest("an unresolvable CO-RE read fails at the poisoned instruction and says which relocation", () => {
    const fds = openDescriptors();
    let err: unknown;
    try {
      newCollection(spec(), { programs: ["bad_core"] });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(VerifierError);
    const v = err as VerifierError;
    expect(v.message).toContain("load program bad_core");
    expect(v.logText).toContain("unknown#195896080");
    expect(v.message).toMatch(/ward: CO-RE relocation FieldByteOffset task_struct___local:0:2 at insn \d+ failed: field not found in the kernel/);
    expect(leakedSince(fds)).toEqual([]);
  });
});
