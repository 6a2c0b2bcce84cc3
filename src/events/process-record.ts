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
  /** argv, argv[0] first. Decoded records: read it while the record is handled (see DecodedExec). */
  argv: string[];
  /** argv[1..] as Tetragon prints them (args.ts); the decoder writes it from the record's block directly. */
  arguments?: string;
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

/** Offsets of struct ward_creds_ns members in the enclosing record (u32: relative to base). */
interface CredsOffsets {
  base: number;
  u32: [keyof CredsNs, number][];
  uid: number;
  gid: number;
  suid: number;
  sgid: number;
  euid: number;
  egid: number;
  fsuid: number;
  fsgid: number;
  auid: number;
  capPermitted: number;
  capEffective: number;
  capInheritable: number;
  cgroupId: number;
  ns: number;
  nsCount: number;
}

const CRED_U32 = ["uid", "gid", "suid", "sgid", "euid", "egid", "fsuid", "fsgid", "auid"] as const;

function credsOffsets(l: StructLayout, prefix: string): CredsOffsets {
  const base = l.offset(prefix);
  const abs = (f: string): number => l.offset(`${prefix}.${f}`);
  return {
    base,
    u32: CRED_U32.map((n) => [n, abs(n) - base] as [keyof CredsNs, number]),
    uid: abs("uid"),
    gid: abs("gid"),
    suid: abs("suid"),
    sgid: abs("sgid"),
    euid: abs("euid"),
    egid: abs("egid"),
    fsuid: abs("fsuid"),
    fsgid: abs("fsgid"),
    auid: abs("auid"),
    capPermitted: abs("cap_permitted"),
    capEffective: abs("cap_effective"),
    capInheritable: abs("cap_inheritable"),
    cgroupId: abs("cgroup_id"),
    ns: abs("ns"),
    nsCount: l.field(`${prefix}.ns`).size / 4,
  };
}

/** Reads struct ward_creds_ns at the record-relative offsets in `o` (one object, one array). */
function readCreds(v: DataView, o: CredsOffsets): CredsNs {
  const ns = new Array<number>(o.nsCount);
  for (let i = 0; i < o.nsCount; i++) ns[i] = v.getUint32(o.ns + i * 4, true);
  return {
    uid: v.getUint32(o.uid, true),
    gid: v.getUint32(o.gid, true),
    suid: v.getUint32(o.suid, true),
    sgid: v.getUint32(o.sgid, true),
    euid: v.getUint32(o.euid, true),
    egid: v.getUint32(o.egid, true),
    fsuid: v.getUint32(o.fsuid, true),
    fsgid: v.getUint32(o.fsgid, true),
    auid: v.getUint32(o.auid, true),
    capPermitted: v.getBigUint64(o.capPermitted, true),
    capEffective: v.getBigUint64(o.capEffective, true),
    capInheritable: v.getBigUint64(o.capInheritable, true),
    cgroupId: v.getBigUint64(o.cgroupId, true),
    ns,
  };
}

/**
 * Shares one CredsNs between records whose ward_creds_ns bytes are identical: a host runs
 * most processes under a few credentials and namespaces, so this saves an object, an array
 * and four BigInts per record. Shared objects are frozen. The key is the struct's bytes as a
 * latin1 string (one native copy); the table is dropped when it passes its bound.
 */
class CredsInterner {
  #ab: ArrayBufferLike | undefined;
  #buf: Buffer = Buffer.alloc(0);
  #words = new Uint32Array(0);
  readonly #table = new Map<string, CredsNs>();
  // The previous record's struct, word by word: consecutive records mostly share it, and
  // comparing words is cheaper than building the key. (Its members are 32 and 64 bits wide,
  // so the size is a multiple of 4; checked.)
  readonly #last: Uint32Array;
  #lastCreds: CredsNs | undefined;

  constructor(
    private readonly o: CredsOffsets,
    private readonly size: number,
  ) {
    if (size % 4 !== 0) throw new RecordError(`decode process records: struct ward_creds_ns is ${size} bytes, not a multiple of 4`);
    this.#last = new Uint32Array(size / 4);
  }

  read(v: DataView): CredsNs {
    const base = this.o.base;
    const last = this.#last;
    const words = last.length;
    if (v.buffer !== this.#ab) {
      this.#ab = v.buffer;
      this.#buf = Buffer.from(v.buffer as ArrayBuffer);
      this.#words = new Uint32Array(v.buffer as ArrayBuffer, 0, v.buffer.byteLength >>> 2);
    }
    let same = this.#lastCreds !== undefined;
    const at = v.byteOffset + base;
    if ((at & 3) === 0) {
      // Ring records are 8-byte aligned: compare through one word view of the whole mapping
      // (host byte order; only equality matters here).
      const w32 = this.#words;
      const w0 = at >>> 2;
      for (let i = 0; i < words; i++) {
        const w = w32[w0 + i]!;
        if (w !== last[i]) {
          same = false;
          last[i] = w;
        }
      }
    } else {
      for (let i = 0; i < words; i++) {
        const w = v.getUint32(base + i * 4, true);
        if (w !== last[i]) {
          same = false;
          last[i] = w;
        }
      }
    }
    if (same) return this.#lastCreds!;
    const start = v.byteOffset + base;
    const key = this.#buf.toString("latin1", start, start + this.size);
    let c = this.#table.get(key);
    if (c === undefined) {
      c = readCreds(v, this.o);
      Object.freeze(c.ns);
      Object.freeze(c);
      if (this.#table.size >= 4096) this.#table.clear();
      this.#table.set(key, c);
    }
    this.#lastCreds = c;
    return c;
  }
}

/** Byte offsets of every member the decoder reads, resolved from the BTF once. */
interface Offsets {
  op: number;
  time: number;
  ktime: number;
  parentKtime: number;
  pid: number;
  tid: number;
  ppid: number;
  flags: number;
}

function offsetsOf(hdr: StructLayout, l: StructLayout): Offsets {
  const opt = (f: string): number => (l.has(f) ? l.offset(f) : -1);
  return {
    op: hdr.offset("op"),
    time: hdr.offset("time"),
    ktime: l.offset("ktime"),
    parentKtime: opt("parent_ktime"),
    pid: l.offset("pid"),
    tid: l.offset("tid"),
    ppid: l.offset("ppid"),
    flags: l.offset("flags"),
  };
}

/**
 * UTF-8 text from the record's bytes. Records of one drain share one ArrayBuffer (the ring's
 * mapping), so the Buffer over it is made once and reused; invalid sequences become U+FFFD,
 * as TextDecoder does.
 */
class TextReader {
  #ab: ArrayBufferLike | undefined;
  #buf: Buffer = Buffer.alloc(0);

  read(v: DataView, at: number, len: number): string {
    if (len === 0) return "";
    if (v.buffer !== this.#ab) {
      this.#ab = v.buffer;
      this.#buf = Buffer.from(v.buffer as ArrayBuffer);
    }
    const start = v.byteOffset + at;
    return this.#buf.toString("utf8", start, start + len);
  }

  /** The text of `len` bytes at `start` of `b` (a view of a whole buffer). */
  readAt(b: Uint8Array, start: number, len: number): string {
    return Buffer.from(b.buffer, b.byteOffset + start, len).toString("utf8");
  }
}

/**
 * `arguments` (argv[1..] as Tetragon prints them, args.ts) straight from the record's
 * NUL-separated argv bytes: the text is laid out in a scratch buffer (each NUL a space, an
 * argument holding a space in double quotes) and decoded once. Equal to
 * argumentsOfBlock(utf8(bytes)): NUL, space and quote are ASCII, so a sequence that is not
 * UTF-8 ends at the same byte and decodes to the same U+FFFD either way. It saves the
 * decoded block, its split into argv and the join (about 5% of the pipeline's CPU).
 */
class ArgsReader {
  #ab: ArrayBufferLike | undefined;
  #bytes = new Uint8Array(0);
  #out = new Uint8Array(1024);
  #outBuf = Buffer.from(this.#out.buffer);

  #view(v: DataView): Uint8Array {
    if (v.buffer !== this.#ab) {
      this.#ab = v.buffer;
      this.#bytes = new Uint8Array(v.buffer as ArrayBuffer);
    }
    return this.#bytes;
  }

  /** The whole memory the record lies in, as bytes (cached per buffer: no view per record). */
  memoryOf(v: DataView): Uint8Array {
    return this.#view(v);
  }

  read(v: DataView, at: number, len: number): string {
    if (len === 0) return "";
    const b = this.#view(v);
    const start = v.byteOffset + at;
    let end = start + len;
    if (b[end - 1] === 0) end--; // the block's closing NUL
    let first = start;
    while (first < end && b[first] !== 0) first++;
    if (first + 1 >= end) return ""; // argv[0] alone
    let space = false;
    for (let i = first + 1; i < end && !space; i++) space = b[i] === 0x20;
    // Quotes add at most two bytes per argument, and there are at most (end - first) arguments.
    const need = space ? 3 * (end - first) : end - first;
    if (need > this.#out.length) {
      this.#out = new Uint8Array(Math.max(need, 2 * this.#out.length));
      this.#outBuf = Buffer.from(this.#out.buffer);
    }
    const out = this.#out;
    let n = 0;
    if (!space) {
      for (let i = first + 1; i < end; i++) {
        const c = b[i]!;
        out[n++] = c === 0 ? 0x20 : c;
      }
    } else {
      let i = first + 1;
      for (;;) {
        let j = i;
        let quoted = false;
        for (; j < end && b[j] !== 0; j++) if (b[j] === 0x20) quoted = true;
        if (quoted) out[n++] = 0x22;
        for (let k = i; k < j; k++) out[n++] = b[k]!;
        if (quoted) out[n++] = 0x22;
        if (j >= end) break;
        out[n++] = 0x20;
        i = j + 1;
      }
    }
    return this.#outBuf.toString("utf8", 0, n);
  }
}

/**
 * One string object per distinct binary path or cwd: the process cache keeps thousands of
 * images that mostly name the same few, and each would otherwise hold its own copy. Looked up
 * by the record's bytes (a hash over them, then a byte comparison), so a path seen before is
 * neither decoded from UTF-8 nor hashed as a new string again.
 */
class PathTable {
  #ab: ArrayBufferLike | undefined;
  #bytes = new Uint8Array(0);
  readonly #table = new Map<number, { bytes: Uint8Array; text: string }[]>();
  #size = 0;

  constructor(private readonly text: TextReader) {}

  get(v: DataView, at: number, len: number): string {
    if (len === 0) return "";
    if (v.buffer !== this.#ab) {
      this.#ab = v.buffer;
      this.#bytes = new Uint8Array(v.buffer as ArrayBuffer);
    }
    const b = this.#bytes;
    const start = v.byteOffset + at;
    // The two paths of the last hit first (an exec's binary and cwd): a host that execs fast
    // mostly runs the same few, and one byte comparison costs less than hashing.
    for (let k = 0; k < 2; k++) {
      const e = this.#recent[k];
      if (e === undefined || e.bytes.length !== len) continue;
      const eb = e.bytes;
      let i = 0;
      while (i < len && eb[i] === b[start + i]) i++;
      if (i === len) return e.text;
    }
    const e = this.#lookup(b, start, len);
    this.#recent[this.#next] = e;
    this.#next ^= 1;
    return e.text;
  }

  readonly #recent: ({ bytes: Uint8Array; text: string } | undefined)[] = [undefined, undefined];
  #next = 0;

  #lookup(b: Uint8Array, start: number, len: number): { bytes: Uint8Array; text: string } {
    let h = 0x811c9dc5 ^ len;
    for (let i = 0; i < len; i++) h = Math.imul(h ^ b[start + i]!, 0x01000193);
    const bucket = this.#table.get(h);
    if (bucket !== undefined) {
      for (const e of bucket) {
        const eb = e.bytes;
        if (eb.length !== len) continue;
        let i = 0;
        while (i < len && eb[i] === b[start + i]) i++;
        if (i === len) return e;
      }
    }
    const text = this.text.readAt(b, start, len);
    if (this.#size >= 8192) {
      this.#table.clear();
      this.#size = 0;
    }
    const entry = { bytes: b.slice(start, start + len), text };
    if (bucket !== undefined && this.#table.has(h)) bucket.push(entry);
    else this.#table.set(h, [entry]);
    this.#size++;
    return entry;
  }
}

/**
 * A decoded exec record. `arguments` is written from the argv bytes directly (ArgsReader);
 * the argv array is decoded from the record's own bytes only when asked for (the pipeline
 * never asks), so it must be asked for while the record is being handled: a ring buffer
 * record's memory is the kernel's again after the drain. Copying the bytes for every exec
 * cost more than all of argv's other uses.
 */
class DecodedExec implements ExecRecord {
  readonly op = "exec";
  readonly arguments: string;
  #argv: string[] | undefined;
  constructor(
    readonly time: bigint,
    readonly ktime: bigint,
    readonly parentKtime: bigint,
    readonly pid: number,
    readonly tid: number,
    readonly ppid: number,
    readonly flags: number,
    readonly creds: CredsNs,
    readonly ino: bigint,
    readonly nlink: number,
    readonly binary: string,
    /** The memory of the record (ArgsReader.memoryOf) and where its argv bytes lie in it. */
    private readonly mem: Uint8Array,
    private readonly argvAt: number,
    private readonly argvLen: number,
    args: string,
    readonly cwd: string,
  ) {
    this.arguments = args;
  }
  get argv(): string[] {
    return (this.#argv ??= splitArgv(Buffer.from(this.mem.buffer, this.mem.byteOffset + this.argvAt, this.argvLen).toString("utf8")));
  }
}

/** Reads records of one compiled bpf/process.c; build it from that object's BTF. */
export class ProcessRecordDecoder {
  readonly hdr: StructLayout;
  readonly exec: StructLayout;
  readonly clone: StructLayout;
  readonly exit: StructLayout;
  readonly proc: StructLayout;
  private readonly ops: { exec: number; clone: number; exit: number };
  private readonly execCreds: CredsInterner;
  private readonly cloneCreds: CredsInterner;
  private readonly execDataOff: number;
  private readonly opOff: number;
  private readonly timeOff: number;
  private readonly eo: Offsets & { ino: number; nlink: number; binaryLen: number; argsLen: number; cwdLen: number };
  private readonly co: Offsets;
  private readonly xo: Offsets & { code: number };
  private readonly text = new TextReader();
  private readonly paths = new PathTable(this.text);
  private readonly args = new ArgsReader();

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
    this.execCreds = new CredsInterner(credsOffsets(this.exec, "creds"), this.exec.field("creds").size);
    this.cloneCreds = new CredsInterner(credsOffsets(this.clone, "creds"), this.clone.field("creds").size);
    this.execDataOff = this.exec.offset("data");
    this.opOff = this.hdr.offset("op");
    this.timeOff = this.hdr.offset("time");
    const e = this.exec;
    this.eo = {
      ...offsetsOf(this.hdr, e),
      ino: e.offset("ino"),
      nlink: e.offset("nlink"),
      binaryLen: e.offset("binary_len"),
      argsLen: e.offset("args_len"),
      cwdLen: e.offset("cwd_len"),
    };
    this.co = offsetsOf(this.hdr, this.clone);
    this.xo = { ...offsetsOf(this.hdr, this.exit), code: this.exit.offset("code") };
  }

  /** The record kind of a raw record, without decoding the rest. */
  opOf(v: DataView): "exec" | "clone" | "exit" | undefined {
    const op = v.getUint8(this.opOff);
    return op === this.ops.exec ? "exec" : op === this.ops.clone ? "clone" : op === this.ops.exit ? "exit" : undefined;
  }

  decode(v: DataView): ProcessRecord {
    if (v.byteLength < this.hdr.size) throw new RecordError(`decode process record: ${v.byteLength} bytes, want at least ${this.hdr.size}`);
    const op = v.getUint8(this.opOff);
    const time = v.getBigUint64(this.timeOff, true);
    if (op === this.ops.exec) return this.decodeExec(v, time);
    if (op === this.ops.clone) {
      if (v.byteLength < this.clone.size) throw new RecordError(`decode clone record: ${v.byteLength} bytes, want ${this.clone.size}`);
      const o = this.co;
      return {
        op: "clone",
        time,
        ktime: v.getBigUint64(o.ktime, true),
        parentKtime: v.getBigUint64(o.parentKtime, true),
        pid: v.getUint32(o.pid, true),
        tid: v.getUint32(o.tid, true),
        ppid: v.getUint32(o.ppid, true),
        flags: v.getUint32(o.flags, true),
        creds: this.cloneCreds.read(v),
      };
    }
    if (op === this.ops.exit) {
      if (v.byteLength < this.exit.size) throw new RecordError(`decode exit record: ${v.byteLength} bytes, want ${this.exit.size}`);
      const o = this.xo;
      return {
        op: "exit",
        time,
        ktime: v.getBigUint64(o.ktime, true),
        pid: v.getUint32(o.pid, true),
        tid: v.getUint32(o.tid, true),
        ppid: v.getUint32(o.ppid, true),
        flags: v.getUint32(o.flags, true),
        code: v.getUint32(o.code, true),
      };
    }
    throw new RecordError(`decode process record: unknown op ${op}`);
  }

  private decodeExec(v: DataView, time: bigint): ExecRecord {
    const o = this.eo;
    const d = this.execDataOff;
    if (v.byteLength < d) throw new RecordError(`decode exec record: ${v.byteLength} bytes, too short`);
    const bl = v.getUint16(o.binaryLen, true);
    const al = v.getUint16(o.argsLen, true);
    const cl = v.getUint16(o.cwdLen, true);
    if (d + bl + al + cl > v.byteLength) {
      throw new RecordError(`decode exec record: lengths ${bl}+${al}+${cl} exceed ${v.byteLength - d} data bytes`);
    }
    return new DecodedExec(
      time,
      v.getBigUint64(o.ktime, true),
      v.getBigUint64(o.parentKtime, true),
      v.getUint32(o.pid, true),
      v.getUint32(o.tid, true),
      v.getUint32(o.ppid, true),
      v.getUint32(o.flags, true),
      this.execCreds.read(v),
      v.getBigUint64(o.ino, true),
      v.getUint32(o.nlink, true),
      this.paths.get(v, d, bl),
      this.args.memoryOf(v),
      v.byteOffset + d + bl,
      al,
      this.args.read(v, d + bl, al),
      this.paths.get(v, d + bl + al, cl),
    );
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
    v.setBigUint64(co.capPermitted, p.creds.capPermitted, true);
    v.setBigUint64(co.capEffective, p.creds.capEffective, true);
    v.setBigUint64(co.capInheritable, p.creds.capInheritable, true);
    v.setBigUint64(co.cgroupId, p.creds.cgroupId, true);
    for (let i = 0; i < co.nsCount; i++) v.setUint32(co.ns + i * 4, p.creds.ns[i] ?? 0, true);
    const bin = l.field("bin");
    const bytes = new TextEncoder().encode(p.binary).subarray(0, bin.size - 1);
    buf.set(bytes, bin.offset);
    v.setUint32(l.offset("bin_len"), bytes.length, true);
    return buf;
  }
}
