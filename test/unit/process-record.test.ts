// Record decoding against the layouts in the committed bpf/obj/process.o (its BTF), and the
// flag table cross-checked with the C enum.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseElf } from "../../src/bpf/elf.ts";
import { argumentsOfBlock, splitArgv } from "../../src/events/args.ts";
import { ProcessFlag, flagEnumerators, type ProcessFlagName } from "../../src/events/flags.ts";
import { enumValues } from "../../src/events/layout.ts";
import { NS_NAMES, ProcessRecordDecoder } from "../../src/events/process-record.ts";
import { emptyCreds } from "../../src/events/process-cache.ts";

const obj = parseElf(new Uint8Array(readFileSync(join(import.meta.dir, "../../bpf/obj/process.o"))), "process");
const btf = obj.btf!;
const dec = new ProcessRecordDecoder(btf);

describe("process records", () => {
  test("flag table matches enum ward_proc_flag", () => {
    const e = enumValues(btf, "ward_proc_flag");
    for (const [name, bit] of Object.entries(ProcessFlag)) {
      expect({ name, bit: e.get(flagEnumerators[name as ProcessFlagName]) }).toEqual({ name, bit });
    }
    expect(e.size).toBe(Object.keys(ProcessFlag).length);
    const ns = enumValues(btf, "ward_ns_index");
    NS_NAMES.forEach((n, i) => expect(ns.get(`WARD_NS_${n.toUpperCase()}`)).toBe(i));
  });

  test("exec record: header, ids, creds, binary/args/cwd from data[]", () => {
    const l = dec.exec;
    const bin = new TextEncoder().encode("/usr/bin/true");
    const args = new TextEncoder().encode("true\0a\0b c\0");
    const cwd = new TextEncoder().encode("/tmp");
    const size = l.offset("data") + bin.length + args.length + cwd.length;
    const buf = new Uint8Array(size);
    const v = new DataView(buf.buffer);
    v.setUint8(dec.hdr.offset("op"), 1);
    v.setUint32(dec.hdr.offset("size"), size, true);
    v.setBigUint64(dec.hdr.offset("time"), 999n, true);
    v.setBigUint64(l.offset("ktime"), 1234n, true);
    v.setBigUint64(l.offset("parent_ktime"), 1000n, true);
    v.setUint32(l.offset("pid"), 77, true);
    v.setUint32(l.offset("tid"), 77, true);
    v.setUint32(l.offset("ppid"), 70, true);
    v.setUint32(l.offset("flags"), ProcessFlag.execve | ProcessFlag.clone, true);
    v.setUint32(l.offset("creds.euid"), 1000, true);
    v.setUint32(l.offset("creds.auid"), 4294967295, true);
    v.setBigUint64(l.offset("creds.cap_effective"), 1n << 21n, true);
    v.setBigUint64(l.offset("creds.cgroup_id"), 4242n, true);
    v.setUint32(l.offset("creds.ns") + 4 * 2, 4026531841, true);
    v.setBigUint64(l.offset("ino"), 55n, true);
    v.setUint16(l.offset("binary_len"), bin.length, true);
    v.setUint16(l.offset("args_len"), args.length, true);
    v.setUint16(l.offset("cwd_len"), cwd.length, true);
    buf.set(bin, l.offset("data"));
    buf.set(args, l.offset("data") + bin.length);
    buf.set(cwd, l.offset("data") + bin.length + args.length);
    const r = dec.decode(v);
    expect(r.op).toBe("exec");
    if (r.op !== "exec") return;
    expect(r).toMatchObject({ time: 999n, ktime: 1234n, parentKtime: 1000n, pid: 77, ppid: 70, binary: "/usr/bin/true", cwd: "/tmp", ino: 55n });
    expect(r.argv).toEqual(["true", "a", "b c"]);
    expect(r.creds.euid).toBe(1000);
    expect(r.creds.auid).toBe(4294967295);
    expect(r.creds.capEffective).toBe(1n << 21n);
    expect(r.creds.cgroupId).toBe(4242n);
    expect(r.creds.ns[2]).toBe(4026531841);
    expect(r.creds.ns.length).toBe(NS_NAMES.length);
  });

  test("arguments from the argv bytes equal argumentsOfBlock over the decoded block, for any bytes", () => {
    // xorshift32: the same blocks on every run.
    let seed = 0x9e3779b9;
    const rnd = (n: number): number => {
      seed ^= seed << 13;
      seed >>>= 0;
      seed ^= seed >>> 17;
      seed ^= seed << 5;
      seed >>>= 0;
      return seed % n;
    };
    // Bytes that matter: NUL (separator), space (quoting), quote, backslash, ASCII, UTF-8
    // leads and continuations in and out of order (invalid sequences), 0xff/0xfe.
    const alphabet = [0, 0, 0, 0x20, 0x20, 0x22, 0x5c, 0x61, 0x7a, 0x09, 0x0a, 0xc3, 0xa9, 0xe2, 0x98, 0x83, 0xf0, 0x9f, 0x98, 0x80, 0xff, 0xfe, 0x80, 0xbf];
    const l = dec.exec;
    const d = l.offset("data");
    // Several records in one buffer at odd offsets, as a drain hands them out of one mapping.
    const buf = new Uint8Array(64 * 1024);
    let off = 0;
    const cases: [DataView, Uint8Array][] = [];
    for (let c = 0; c < 2000; c++) {
      const len = c < 4 ? [0, 1, 2, 3][c]! : rnd(40);
      const args = Uint8Array.from({ length: len }, () => alphabet[rnd(alphabet.length)]!);
      if (off + d + len + 8 > buf.length) {
        off = 0;
        for (const [v, a] of cases) check(v, a);
        cases.length = 0;
      }
      const v = new DataView(buf.buffer, off, d + len);
      v.setUint8(dec.hdr.offset("op"), 1);
      v.setUint16(l.offset("binary_len"), 0, true);
      v.setUint16(l.offset("args_len"), len, true);
      v.setUint16(l.offset("cwd_len"), 0, true);
      buf.set(args, off + d);
      cases.push([v, args]);
      off += d + len + 1 + rnd(7);
    }
    for (const [v, a] of cases) check(v, a);
    function check(v: DataView, args: Uint8Array): void {
      const r = dec.decode(v);
      if (r.op !== "exec") throw new Error(r.op);
      const block = Buffer.from(args).toString("utf8");
      const want = argumentsOfBlock(block);
      if (r.arguments !== want) expect({ bytes: [...args], got: r.arguments }).toEqual({ bytes: [...args], got: want });
      expect(r.argv).toEqual(splitArgv(block));
    }
  });

  test("exit record and the map value encoder", () => {
    const l = dec.exit;
    const buf = new Uint8Array(l.size);
    const v = new DataView(buf.buffer);
    v.setUint8(dec.hdr.offset("op"), 3);
    v.setBigUint64(l.offset("ktime"), 5n, true);
    v.setUint32(l.offset("pid"), 9, true);
    v.setUint32(l.offset("code"), 9, true);
    expect(dec.decode(v)).toMatchObject({ op: "exit", ktime: 5n, pid: 9, code: 9 });

    const val = dec.encodeProc({ ktime: 7n, parentKtime: 3n, pid: 12, ppid: 1, flags: ProcessFlag.procFS, creds: { ...emptyCreds(), euid: 5 }, binary: "/bin/x" });
    expect(val.length).toBe(dec.proc.size);
    const pv = new DataView(val.buffer);
    expect(pv.getBigUint64(dec.proc.offset("ktime"), true)).toBe(7n);
    expect(pv.getUint32(dec.proc.offset("creds.euid"), true)).toBe(5);
    expect(pv.getUint32(dec.proc.offset("creds.auid"), true)).toBe(4294967295);
    expect(pv.getUint32(dec.proc.offset("bin_len"), true)).toBe(6);
    expect(new TextDecoder().decode(val.subarray(dec.proc.offset("bin"), dec.proc.offset("bin") + 6))).toBe("/bin/x");
  });

  test("records with identical credentials share one frozen CredsNs; any differing byte gives its own", () => {
    const l = dec.clone;
    const rec = (euid: number, capEff: bigint, ns2: number): DataView => {
      const v = new DataView(new Uint8Array(l.size).buffer);
      v.setUint8(dec.hdr.offset("op"), 2);
      v.setUint32(l.offset("pid"), 5, true);
      v.setUint32(l.offset("creds.euid"), euid, true);
      v.setBigUint64(l.offset("creds.cap_effective"), capEff, true);
      v.setUint32(l.offset("creds.ns") + 4 * 2, ns2, true);
      return v;
    };
    const creds = (v: DataView) => {
      const r = dec.decode(v);
      if (r.op !== "clone") throw new Error(`decoded ${r.op}`);
      return r.creds;
    };
    const a = creds(rec(1000, 1n << 21n, 4026531841));
    const a2 = creds(rec(1000, 1n << 21n, 4026531841)); // same as the previous record
    const b = creds(rec(1000, 1n << 21n, 4026531842)); // one namespace differs
    const c = creds(rec(1001, 1n << 21n, 4026531841)); // euid differs
    const d = creds(rec(1000, 1n << 22n, 4026531841)); // a capability bit differs
    const a3 = creds(rec(1000, 1n << 21n, 4026531841)); // back to the first, from the table
    expect(a2).toBe(a);
    expect(a3).toBe(a);
    expect(new Set([a, b, c, d]).size).toBe(4);
    expect([a.euid, a.capEffective, a.ns[2]]).toEqual([1000, 1n << 21n, 4026531841]);
    expect([b.euid, b.capEffective, b.ns[2]]).toEqual([1000, 1n << 21n, 4026531842]);
    expect([c.euid, c.capEffective, c.ns[2]]).toEqual([1001, 1n << 21n, 4026531841]);
    expect([d.euid, d.capEffective, d.ns[2]]).toEqual([1000, 1n << 22n, 4026531841]);
    expect(Object.isFrozen(a) && Object.isFrozen(a.ns)).toBe(true);
  });

  test("truncated or unknown records are rejected", () => {
    const v = new DataView(new Uint8Array(dec.hdr.size).buffer);
    v.setUint8(dec.hdr.offset("op"), 42);
    expect(() => dec.decode(v)).toThrow(/unknown op 42/);
    v.setUint8(dec.hdr.offset("op"), 3);
    expect(() => dec.decode(v)).toThrow(/exit record/);
  });
});
