// Decodes bpf/process.c's ring buffer records into typed values. Offsets come from the
// object's BTF (struct ward_exec_event and friends in bpf/include/process.h), read once.
import type { Btf } from "../bpf/btf.ts";
import { splitArgv } from "./args.ts";
import { enumValues, structLayout, type StructLayout } from "./layout.ts";

export class RecordError extends Error {
  override name = "RecordError";
}

/** Credentials, capabilities, cgroup and namespaces at exec/clone time (struct ward_creds_ns). */
export interface CredsNs {
  uid: number;
  gid: number;
  suid: number;
  sgid: number;
  euid: number;
  egid: number;
  fsuid: number;
  fsgid: number;
  auid: number;
  capPermitted: bigint;
  capEffective: bigint;
  capInheritable: bigint;
  cgroupId: bigint;
  /** Namespace inode numbers by NS_NAMES order (enum ward_ns_index); 0 = unknown. */
  ns: number[];
}

/** Namespace names in enum ward_ns_index order, also Tetragon's Namespaces field names. */
export const NS_NAMES = [
  "uts",
  "ipc",
  "mnt",
  "pid",
  "pid_for_children",
  "net",
  "time",
  "time_for_children",
  "cgroup",
  "user",
] as const;

export interface ExecRecord {
  op: "exec";
  time: bigint;
  ktime: bigint;
  parentKtime: bigint;
  pid: number;
  tid: number;
  ppid: number;
  flags: number;
  creds: CredsNs;
  ino: bigint;
  nlink: number;
  binary: string;
  /** argv, argv[0] first. */
  argv: string[];
  cwd: string;
}

export interface CloneRecord {
  op: "clone";
  time: bigint;
  ktime: bigint;
  parentKtime: bigint;
  pid: number;
  tid: number;
  ppid: number;
  flags: number;
  creds: CredsNs;
}

export interface ExitRecord {
  op: "exit";
  time: bigint;
  ktime: bigint;
  pid: number;
  tid: number;
  ppid: number;
  flags: number;
  /** Wait status: signal in bits 0-6, exit status in bits 8-15. */
  code: number;
}

export type ProcessRecord = ExecRecord | CloneRecord | ExitRecord;

const utf8 = new TextDecoder("utf-8");

/** Offsets of struct ward_creds_ns members relative to the struct. */
interface CredsOffsets {
  base: number;
  u32: [keyof CredsNs, number][];
  capPermitted: number;
  capEffective: number;
  capInheritable: number;
  cgroupId: number;
  ns: number;
  nsCount: number;
}

function credsOffsets(l: StructLayout, prefix: string): CredsOffsets {
  const base = l.offset(prefix);
  const rel = (f: string): number => l.offset(`${prefix}.${f}`) - base;
  const u32Names = ["uid", "gid", "suid", "sgid", "euid", "egid", "fsuid", "fsgid", "auid"] as const;
  return {
    base,
    u32: u32Names.map((n) => [n, rel(n)] as [keyof CredsNs, number]),
    capPermitted: rel("cap_permitted"),
    capEffective: rel("cap_effective"),
    capInheritable: rel("cap_inheritable"),
    cgroupId: rel("cgroup_id"),
    ns: rel("ns"),
    nsCount: l.field(`${prefix}.ns`).size / 4,
  };
}

function readCreds(v: DataView, at: number, o: CredsOffsets): CredsNs {
  const c: CredsNs = {
    uid: 0,
    gid: 0,
    suid: 0,
    sgid: 0,
    euid: 0,
    egid: 0,
    fsuid: 0,
    fsgid: 0,
    auid: 0,
    capPermitted: v.getBigUint64(at + o.capPermitted, true),
    capEffective: v.getBigUint64(at + o.capEffective, true),
    capInheritable: v.getBigUint64(at + o.capInheritable, true),
    cgroupId: v.getBigUint64(at + o.cgroupId, true),
    ns: [],
  };
  for (const [name, off] of o.u32) (c as unknown as Record<string, number>)[name] = v.getUint32(at + off, true);
  for (let i = 0; i < o.nsCount; i++) c.ns.push(v.getUint32(at + o.ns + i * 4, true));
  return c;
}

function bytesToString(v: DataView, at: number, len: number): string {
  return utf8.decode(new Uint8Array(v.buffer, v.byteOffset + at, len));
}

/** Reads records of one compiled bpf/process.c; build it from that object's BTF. */
export class ProcessRecordDecoder {
  readonly hdr: StructLayout;
  readonly exec: StructLayout;
  readonly clone: StructLayout;
  readonly exit: StructLayout;
  readonly proc: StructLayout;
  private readonly ops: { exec: number; clone: number; exit: number };
  private readonly execCreds: CredsOffsets;
  private readonly cloneCreds: CredsOffsets;
  private readonly execDataOff: number;

  constructor(btf: Btf) {
    this.hdr = structLayout(btf, "ward_event_hdr");
    this.exec = structLayout(btf, "ward_exec_event");
    this.clone = structLayout(btf, "ward_clone_event");
    this.exit = structLayout(btf, "ward_exit_event");
    this.proc = structLayout(btf, "ward_proc");
    const ops = enumValues(btf, "ward_proc_op");
    const op = (n: string): number => {
      const v = ops.get(n);
      if (v === undefined) throw new RecordError(`decode process records: enum ward_proc_op has no ${n}`);
      return v;
    };
    this.ops = { exec: op("WARD_OP_EXEC"), clone: op("WARD_OP_CLONE"), exit: op("WARD_OP_EXIT") };
    this.execCreds = credsOffsets(this.exec, "creds");
    this.cloneCreds = credsOffsets(this.clone, "creds");
    this.execDataOff = this.exec.offset("data");
  }

  /** The record kind of a raw record, without decoding the rest. */
  opOf(v: DataView): "exec" | "clone" | "exit" | undefined {
    const op = v.getUint8(this.hdr.offset("op"));
    return op === this.ops.exec ? "exec" : op === this.ops.clone ? "clone" : op === this.ops.exit ? "exit" : undefined;
  }

  decode(v: DataView): ProcessRecord {
    const kind = this.opOf(v);
    const time = v.getBigUint64(this.hdr.offset("time"), true);
    if (kind === "exec") return this.decodeExec(v, time);
    if (kind === "clone") {
      const l = this.clone;
      if (v.byteLength < l.size) throw new RecordError(`decode clone record: ${v.byteLength} bytes, want ${l.size}`);
      return {
        op: "clone",
        time,
        ktime: v.getBigUint64(l.offset("ktime"), true),
        parentKtime: v.getBigUint64(l.offset("parent_ktime"), true),
        pid: v.getUint32(l.offset("pid"), true),
        tid: v.getUint32(l.offset("tid"), true),
        ppid: v.getUint32(l.offset("ppid"), true),
        flags: v.getUint32(l.offset("flags"), true),
        creds: readCreds(v, this.cloneCreds.base, this.cloneCreds),
      };
    }
    if (kind === "exit") {
      const l = this.exit;
      if (v.byteLength < l.size) throw new RecordError(`decode exit record: ${v.byteLength} bytes, want ${l.size}`);
      return {
        op: "exit",
        time,
        ktime: v.getBigUint64(l.offset("ktime"), true),
        pid: v.getUint32(l.offset("pid"), true),
        tid: v.getUint32(l.offset("tid"), true),
        ppid: v.getUint32(l.offset("ppid"), true),
        flags: v.getUint32(l.offset("flags"), true),
        code: v.getUint32(l.offset("code"), true),
      };
    }
    throw new RecordError(`decode process record: unknown op ${v.getUint8(this.hdr.offset("op"))}`);
  }

  private decodeExec(v: DataView, time: bigint): ExecRecord {
    const l = this.exec;
    if (v.byteLength < this.execDataOff) throw new RecordError(`decode exec record: ${v.byteLength} bytes, too short`);
    const bl = v.getUint16(l.offset("binary_len"), true);
    const al = v.getUint16(l.offset("args_len"), true);
    const cl = v.getUint16(l.offset("cwd_len"), true);
    const d = this.execDataOff;
    if (d + bl + al + cl > v.byteLength) {
      throw new RecordError(`decode exec record: lengths ${bl}+${al}+${cl} exceed ${v.byteLength - d} data bytes`);
    }
    const argv = splitArgv(bytesToString(v, d + bl, al));
    return {
      op: "exec",
      time,
      ktime: v.getBigUint64(l.offset("ktime"), true),
      parentKtime: v.getBigUint64(l.offset("parent_ktime"), true),
      pid: v.getUint32(l.offset("pid"), true),
      tid: v.getUint32(l.offset("tid"), true),
      ppid: v.getUint32(l.offset("ppid"), true),
      flags: v.getUint32(l.offset("flags"), true),
      creds: readCreds(v, this.execCreds.base, this.execCreds),
      ino: v.getBigUint64(l.offset("ino"), true),
      nlink: v.getUint32(l.offset("nlink"), true),
      binary: bytesToString(v, d, bl),
      argv,
      cwd: bytesToString(v, d + bl + al, cl),
    };
  }

  /** Encodes a struct ward_proc map value (for seeding the kernel map from /proc). */
  encodeProc(p: {
    ktime: bigint;
    parentKtime: bigint;
    pid: number;
    ppid: number;
    flags: number;
    creds: CredsNs;
    binary: string;
  }): Uint8Array {
    const l = this.proc;
    const buf = new Uint8Array(l.size);
    const v = new DataView(buf.buffer);
    v.setBigUint64(l.offset("ktime"), p.ktime, true);
    v.setBigUint64(l.offset("parent_ktime"), p.parentKtime, true);
    v.setUint32(l.offset("pid"), p.pid, true);
    v.setUint32(l.offset("ppid"), p.ppid, true);
    v.setUint32(l.offset("flags"), p.flags, true);
    const co = credsOffsets(l, "creds");
    for (const [name, off] of co.u32) v.setUint32(co.base + off, (p.creds as unknown as Record<string, number>)[name] ?? 0, true);
    v.setBigUint64(co.base + co.capPermitted, p.creds.capPermitted, true);
    v.setBigUint64(co.base + co.capEffective, p.creds.capEffective, true);
    v.setBigUint64(co.base + co.capInheritable, p.creds.capInheritable, true);
    v.setBigUint64(co.base + co.cgroupId, p.creds.cgroupId, true);
    for (let i = 0; i < co.nsCount; i++) v.setUint32(co.base + co.ns + i * 4, p.creds.ns[i] ?? 0, true);
    const bin = l.field("bin");
    const bytes = new TextEncoder().encode(p.binary).subarray(0, bin.size - 1);
    buf.set(bytes, bin.offset);
    v.setUint32(l.offset("bin_len"), bytes.length, true);
    return buf;
  }
}
