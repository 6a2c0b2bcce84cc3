// Tetragon's JSON export form of process_exec and process_exit (reference/tetragon.md §2):
// protojson with proto field names, keys in field-number order, zero values omitted, wrapper
// fields (UInt32Value) present even when 0, 64-bit integers as strings, RFC 3339 times.
import { capabilityNames } from "./capabilities.ts";
import { flagsString } from "./flags.ts";
import { asciiBytes, jsonBound, LineBuffer, ScratchWriter } from "./byte-writer.ts";
import type { ProcessEvent, ProcessInfo } from "./model.ts";
import { NS_NAMES } from "./process-record.ts";
import type { BootClock } from "./time.ts";

export type JsonObject = { [k: string]: JsonValue };
export type JsonValue = string | number | boolean | JsonObject | JsonValue[];

export interface EncodeOptions {
  nodeName: string;
  clock: BootClock;
  /** Add `cap` and `process_credentials` (Tetragon's --enable-process-cred). */
  processCred?: boolean;
  /** Add `ns` (Tetragon's --enable-process-ns). */
  processNs?: boolean;
  /** Namespace inode numbers of pid 1, by NS_NAMES index, for `is_host`. */
  hostNs?: readonly number[];
  /** `pod` and `docker` of a process by its cgroup id (src/workloads/identity.ts). */
  workloads?: { fields(cgroupId: bigint, pid?: number): { docker?: string; pod?: object } };
}

function put(o: JsonObject, k: string, v: string | undefined): void {
  if (v !== undefined && v !== "") o[k] = v;
}

export function encodeProcess(p: ProcessInfo, opts: EncodeOptions, withBinaryProperties = false): JsonObject {
  const o: JsonObject = {};
  put(o, "exec_id", p.execId);
  o.pid = p.pid;
  o.uid = p.creds.euid;
  put(o, "cwd", p.cwd);
  put(o, "binary", p.binary);
  put(o, "arguments", p.arguments);
  put(o, "flags", flagsString(p.flags));
  if (p.ktime !== 0n) o.start_time = opts.clock.wall(p.ktime);
  o.auid = p.creds.auid;
  if (opts.workloads !== undefined) {
    const w = opts.workloads.fields(p.creds.cgroupId, p.pid);
    if (w.pod !== undefined) o.pod = w.pod as JsonObject;
    put(o, "docker", w.docker);
  }
  put(o, "parent_exec_id", p.parentExecId);
  if (opts.processCred) {
    const cap: JsonObject = {};
    const perm = capabilityNames(p.creds.capPermitted);
    const eff = capabilityNames(p.creds.capEffective);
    const inh = capabilityNames(p.creds.capInheritable);
    if (perm.length) cap.permitted = perm;
    if (eff.length) cap.effective = eff;
    if (inh.length) cap.inheritable = inh;
    if (Object.keys(cap).length) o.cap = cap;
  }
  if (opts.processNs) {
    const ns: JsonObject = {};
    NS_NAMES.forEach((name, i) => {
      const inum = p.creds.ns[i] ?? 0;
      if (inum === 0) return;
      const one: JsonObject = { inum };
      if (opts.hostNs && opts.hostNs[i] === inum) one.is_host = true;
      ns[name] = one;
    });
    if (Object.keys(ns).length) o.ns = ns;
  }
  o.tid = p.tid;
  if (opts.processCred) {
    const c = p.creds;
    o.process_credentials = {
      uid: c.uid,
      gid: c.gid,
      euid: c.euid,
      egid: c.egid,
      suid: c.suid,
      sgid: c.sgid,
      fsuid: c.fsuid,
      fsgid: c.fsgid,
    };
  }
  // Tetragon describes the file of an unlinked binary (deleted, memfd) in binary_properties.
  if (withBinaryProperties && p.file && p.file.nlink === 0) {
    o.binary_properties = {
      file: { inode: { number: p.file.ino.toString(), links: p.file.nlink }, path: p.binary },
    };
  }
  return o;
}

/** The full export line object: `{"process_exec": {...}, "node_name": ..., "time": ...}`. */
export function encodeEvent(ev: ProcessEvent, opts: EncodeOptions): JsonObject {
  const time = opts.clock.wall(ev.time);
  const body: JsonObject = { process: encodeProcess(ev.process, opts, ev.type === "process_exec") };
  if (ev.parent) body.parent = encodeProcess(ev.parent, opts);
  if (ev.type === "process_exit") {
    if (ev.signal) body.signal = ev.signal;
    if (ev.status !== 0) body.status = ev.status;
    body.time = time;
  }
  return { [ev.type]: body, node_name: opts.nodeName, time };
}

/**
 * One process block, encoded once per image as UTF-8 bytes, and its frozen object when asked
 * for. The bytes start with `,"parent":`, so a line copies them in one piece where the image
 * is a parent; where it is the event's process the line overwrites those ten bytes with
 * `"process":` (the same length) once they are in the line.
 */
interface Block {
  readonly bytes: Uint8Array;
  /** Where the block's start_time text lies in `bytes` (both 0 without one): an exec event's own time. */
  readonly startAt: number;
  readonly startEnd: number;
  obj?: JsonObject;
  /** The exec event's variant, with binary_properties when the file was unlinked. */
  exec?: Block;
}

const PARENT_KEY = ',"parent":';
const K = {
  parent: asciiBytes(PARENT_KEY),
  process: asciiBytes('"process":'),
  execHead: asciiBytes('{"process_exec":{'),
  exitHead: asciiBytes('{"process_exit":{'),
  execId: asciiBytes('{"exec_id":"'),
  pidAfterId: asciiBytes('","pid":'),
  pid: asciiBytes('{"pid":'),
  uid: asciiBytes(',"uid":'),
  cwd: asciiBytes(',"cwd":'),
  binary: asciiBytes(',"binary":'),
  arguments: asciiBytes(',"arguments":'),
  flags: asciiBytes(',"flags":"'),
  start: asciiBytes(',"start_time":"'),
  auid: asciiBytes(',"auid":'),
  pod: asciiBytes(',"pod":'),
  docker: asciiBytes(',"docker":'),
  parentExecId: asciiBytes(',"parent_exec_id":"'),
  tid: asciiBytes(',"tid":'),
  signal: asciiBytes(',"signal":'),
  status: asciiBytes(',"status":'),
  time: asciiBytes(',"time":"'),
};
/** Longest RFC 3339 time wallInto writes (a five-digit year, nine fraction digits) and then some. */
const TIME_MAX = 40;

/**
 * Writes process_exec / process_exit lines without building the event object first. The
 * `process` block of an image is written once and reused by every later event that names the
 * image: its exit, and each child's exec and exit as `parent`. Per event only the envelope
 * and the time are written, as UTF-8 bytes (byte-writer.ts). The block is written field by
 * field in encodeProcess's order with JSON.stringify's escaping (ByteWriter.json); with
 * process credentials or namespaces enabled it is JSON.stringify(encodeProcess(...)) itself. The object form (json()) is made only on
 * request and shares the cached blocks, so they are frozen; a consumer that edits an event
 * copies it first.
 */
export class ProcessEventWriter {
  // Keyed by the image object: a cache entry's ProcessInfo lives as long as the image is
  // cached, and a copied image (an exit from another thread) simply gets its own block.
  readonly #blocks = new WeakMap<ProcessInfo, Block>();
  readonly #plain: boolean;
  readonly #arena = new LineBuffer();
  readonly #scratch = new ScratchWriter();
  // Binary paths and cwds repeat across images (the decoder interns them): their JSON bytes
  // are made once per distinct string, which saves the escaping checks and, for non-ASCII
  // paths, the UTF-8 encoding per block.
  readonly #paths = new Map<string, Uint8Array>();
  readonly #pathScratch = new ScratchWriter();
  /** `},"node_name":<node>,"time":"`: every line ends with it, its time and `"}`. */
  readonly #tail: Uint8Array;

  constructor(readonly opts: EncodeOptions) {
    this.#plain = !opts.processCred && !opts.processNs;
    this.#tail = new TextEncoder().encode(`},"node_name":${JSON.stringify(opts.nodeName)},"time":"`);
  }

  // The image of the last lookup: an event asks for its process's block two or three times
  // (line, exec variant), and a WeakMap lookup costs more than this comparison.
  #lastP: ProcessInfo | undefined;
  #lastB: Block | undefined;

  #block(p: ProcessInfo): Block {
    if (p === this.#lastP) return this.#lastB!;
    let b = this.#blocks.get(p);
    if (b === undefined) {
      b = this.#plain ? this.#write(p) : this.#fromJson(JSON.stringify(encodeProcess(p, this.opts)));
      this.#blocks.set(p, b);
    }
    this.#lastP = p;
    this.#lastB = b;
    return b;
  }

  /** The wall time of `ev` as written in its line. */
  time(ev: ProcessEvent): string {
    return this.opts.clock.wall(ev.time);
  }

  /** A block from its JSON text (credentials or namespaces on; the binary_properties variant). */
  #fromJson(json: string, startAt = 0, startEnd = 0): Block {
    const w = this.#scratch;
    w.begin(PARENT_KEY.length + 3 * json.length);
    w.key(K.parent);
    w.text(json);
    return { bytes: w.take(), startAt, startEnd };
  }

  /**
   * The block of encodeProcess(p, opts) as bytes, for options without credentials and
   * namespaces: written field by field in its order into a scratch buffer, then copied out at
   * its exact size (the block lives as long as the image).
   */
  #write(p: ProcessInfo): Block {
    const w = this.#scratch;
    let pod: string | undefined;
    let docker: string | undefined;
    if (this.opts.workloads !== undefined) {
      const f = this.opts.workloads.fields(p.creds.cgroupId, p.pid);
      if (f.pod !== undefined) pod = JSON.stringify(f.pod);
      if (f.docker !== undefined && f.docker !== "") docker = f.docker;
    }
    const flags = flagsString(p.flags); // flag words never need escaping
    w.begin(
      256 + p.execId.length + p.parentExecId.length + flags.length + jsonBound(p.cwd.length) + jsonBound(p.binary.length) + jsonBound(p.arguments.length) + 3 * (pod?.length ?? 0) + jsonBound(docker?.length ?? 0),
    );
    w.key(K.parent);
    // exec ids are base64: never escaped, always ASCII.
    if (p.execId !== "") {
      w.key(K.execId);
      w.ascii(p.execId);
      w.key(K.pidAfterId);
    } else w.key(K.pid);
    w.uint(p.pid);
    w.key(K.uid);
    w.uint(p.creds.euid);
    if (p.cwd !== "") {
      w.key(K.cwd);
      w.put(this.#pathJson(p.cwd));
    }
    if (p.binary !== "") {
      w.key(K.binary);
      w.put(this.#pathJson(p.binary));
    }
    if (p.arguments !== "") {
      w.key(K.arguments);
      w.json(p.arguments);
    }
    if (flags !== "") {
      w.key(K.flags);
      w.ascii(flags);
      w.byte(0x22);
    }
    let startAt = 0;
    let startEnd = 0;
    if (p.ktime !== 0n) {
      w.key(K.start);
      startAt = w.pos;
      this.opts.clock.wallInto(p.ktime, w);
      startEnd = w.pos;
      w.byte(0x22);
    }
    w.key(K.auid);
    w.uint(p.creds.auid);
    // Optional fields with a proto number between auid (9) and parent_exec_id (12): pod, docker.
    if (pod !== undefined) {
      w.key(K.pod);
      w.text(pod);
    }
    if (docker !== undefined) {
      w.key(K.docker);
      w.json(docker);
    }
    if (p.parentExecId !== "") {
      w.key(K.parentExecId);
      w.ascii(p.parentExecId);
      w.byte(0x22);
    }
    w.key(K.tid);
    w.uint(p.tid);
    w.byte(0x7d);
    return { bytes: w.take(), startAt, startEnd };
  }

  #pathJson(v: string): Uint8Array {
    let j = this.#paths.get(v);
    if (j === undefined) {
      const w = this.#pathScratch;
      w.begin(jsonBound(v.length));
      w.json(v);
      j = w.take();
      if (this.#paths.size >= 4096) this.#paths.clear();
      this.#paths.set(v, j);
    }
    return j;
  }

  #execBlock(p: ProcessInfo): Block {
    const b = this.#block(p);
    if (b.exec === undefined) {
      if (p.file && p.file.nlink === 0) {
        const bp = encodeProcess(p, this.opts, true).binary_properties;
        const text = utf8(b.bytes.subarray(PARENT_KEY.length, b.bytes.length - 1));
        b.exec = this.#fromJson(`${text},"binary_properties":${JSON.stringify(bp)}}`, b.startAt, b.startEnd);
      } else {
        b.exec = b;
      }
    }
    return b.exec;
  }

  #obj(p: ProcessInfo, b: Block, exec: boolean): JsonObject {
    return (b.obj ??= Object.freeze(encodeProcess(p, this.opts, exec)));
  }

  /**
   * Drops the cached block of an image that ended: its exit was its last own event, and an
   * ended image is rarely a parent again (then its block is written anew). Keeps the blocks
   * of the process cache's retained, ended images from holding memory.
   */
  forget(p: ProcessInfo): void {
    this.#blocks.delete(p);
    if (p === this.#lastP) {
      this.#lastP = undefined;
      this.#lastB = undefined;
    }
  }

  /**
   * The export line of `ev` as UTF-8 bytes, equal to JSON.stringify(encodeEvent(ev, opts)).
   * The view is valid until the next line is written (byte-writer.ts's LineBuffer).
   */
  lineBytes(ev: ProcessEvent): Uint8Array {
    const exec = ev.type === "process_exec";
    const proc = exec ? this.#execBlock(ev.process) : this.#block(ev.process);
    const parent = ev.parent !== undefined ? this.#block(ev.parent) : undefined;
    const signal = !exec ? ev.signal : undefined;
    const clock = this.opts.clock;
    const a = this.#arena;
    a.begin(K.execHead.length + proc.bytes.length + (parent?.bytes.length ?? 0) + jsonBound(signal?.length ?? 0) + 64 + this.#tail.length + 2 * TIME_MAX);
    a.key(exec ? K.execHead : K.exitHead);
    const at = a.pos;
    a.put(proc.bytes);
    const buf = a.buf;
    const pk = K.process;
    for (let i = 0; i < pk.length; i++) buf[at + i] = pk[i]!;
    if (parent !== undefined) a.put(parent.bytes);
    // The time is written once; its second occurrence is a copy of the first.
    let from: Uint8Array | undefined;
    let t0 = 0;
    let t1 = 0;
    if (ev.type === "process_exit") {
      if (signal) {
        a.key(K.signal);
        a.json(signal);
      }
      if (ev.status !== 0) {
        a.key(K.status);
        a.uint(ev.status);
      }
      a.key(K.time);
      t0 = a.pos;
      clock.wallInto(ev.time, a);
      t1 = a.pos;
      from = buf;
      a.byte(0x22);
    } else if (ev.time === ev.process.ktime && proc.startEnd > 0) {
      // An exec happens at its image's start (one clock reading stamps both).
      from = proc.bytes;
      t0 = proc.startAt;
      t1 = proc.startEnd;
    }
    a.key(this.#tail);
    if (from !== undefined) {
      const p = a.pos;
      for (let i = t0; i < t1; i++) buf[p + i - t0] = from[i]!;
      a.pos = p + t1 - t0;
    } else clock.wallInto(ev.time, a);
    a.byte(0x22);
    a.byte(0x7d);
    return a.end();
  }

  /** The export line of `ev` as a string, equal to JSON.stringify(encodeEvent(ev, opts)). */
  line(ev: ProcessEvent): string {
    return utf8(this.lineBytes(ev));
  }

  /** The object form of `ev`, equal to encodeEvent(ev, opts) (its process blocks are shared and frozen). */
  json(ev: ProcessEvent, wallTime?: string): JsonObject {
    const time = wallTime ?? this.time(ev);
    const p = ev.process;
    const body: JsonObject = { process: ev.type === "process_exec" ? this.#obj(p, this.#execBlock(p), true) : this.#obj(p, this.#block(p), false) };
    if (ev.parent) body.parent = this.#obj(ev.parent, this.#block(ev.parent), false);
    if (ev.type === "process_exit") {
      if (ev.signal) body.signal = ev.signal;
      if (ev.status !== 0) body.status = ev.status;
      body.time = time;
    }
    return { [ev.type]: body, node_name: this.opts.nodeName, time };
  }
}

/** The text of UTF-8 bytes. */
export function utf8(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("utf8");
}
