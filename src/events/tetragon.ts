// Tetragon's JSON export form of process_exec and process_exit (reference/tetragon.md §2):
// protojson with proto field names, keys in field-number order, zero values omitted, wrapper
// fields (UInt32Value) present even when 0, 64-bit integers as strings, RFC 3339 times.
import { capabilityNames } from "./capabilities.ts";
import { flagsString } from "./flags.ts";
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

/** One process block, encoded once per image: its JSON, and its frozen object when asked for. */
interface Block {
  readonly text: string;
  /** The image's start_time as written in the block ("" for ktime 0): an exec event's own time. */
  readonly start: string;
  obj?: JsonObject;
  /** The exec event's variant, with binary_properties when the file was unlinked. */
  exec?: Block;
}

/**
 * Writes process_exec / process_exit lines without building the event object first. The
 * `process` block of an image is written once and reused by every later event that names the
 * image: its exit, and each child's exec and exit as `parent`. Per event only the envelope
 * and the time are written. The block is written field by field in encodeProcess's order
 * with JSON.stringify's escaping (quote()); with process credentials or namespaces enabled it
 * is JSON.stringify(encodeProcess(...)) itself. The object form (json()) is made only on
 * request and shares the cached blocks, so they are frozen; a consumer that edits an event
 * copies it first.
 */
export class ProcessEventWriter {
  // Keyed by the image object: a cache entry's ProcessInfo lives as long as the image is
  // cached, and a copied image (an exit from another thread) simply gets its own block.
  readonly #blocks = new WeakMap<ProcessInfo, Block>();
  readonly #node: string;
  readonly #plain: boolean;

  constructor(readonly opts: EncodeOptions) {
    this.#node = JSON.stringify(opts.nodeName);
    this.#plain = !opts.processCred && !opts.processNs;
  }

  // The image of the last lookup: an event asks for its process's block two or three times
  // (time, line, exec variant), and a WeakMap lookup costs more than this comparison.
  #lastP: ProcessInfo | undefined;
  #lastB: Block | undefined;

  #block(p: ProcessInfo): Block {
    if (p === this.#lastP) return this.#lastB!;
    let b = this.#blocks.get(p);
    if (b === undefined) {
      const start = p.ktime !== 0n ? this.opts.clock.wall(p.ktime) : "";
      b = { text: this.#plain ? this.#write(p, start) : JSON.stringify(encodeProcess(p, this.opts)), start };
      this.#blocks.set(p, b);
    }
    this.#lastP = p;
    this.#lastB = b;
    return b;
  }

  /**
   * The wall time of `ev` as written in its line. An exec event happens at its image's start
   * (the sensor stamps both with one clock reading), so its time is the block's start_time,
   * formatted once for both.
   */
  time(ev: ProcessEvent): string {
    if (ev.type === "process_exec" && ev.time === ev.process.ktime && ev.time !== 0n) return this.#block(ev.process).start;
    return this.opts.clock.wall(ev.time);
  }

  /**
   * encodeProcess(p, opts) as JSON, for options without credentials and namespaces. Pieces
   * are joined natively into one flat string (the block is kept with the image; a `+=` rope
   * would keep every piece).
   */
  #write(p: ProcessInfo, start: string): string {
    const s: string[] = [];
    const pid = String(p.pid);
    if (p.execId !== "") s.push('{"exec_id":', quote(p.execId), ',"pid":');
    else s.push('{"pid":');
    s.push(pid, ',"uid":', smallNumber(p.creds.euid));
    if (p.cwd !== "") s.push(',"cwd":', quote(p.cwd));
    if (p.binary !== "") s.push(',"binary":', quote(p.binary));
    if (p.arguments !== "") s.push(',"arguments":', quote(p.arguments));
    const flags = flagsString(p.flags);
    if (flags !== "") s.push(',"flags":"', flags, '"'); // flag words never need escaping
    if (start !== "") s.push(',"start_time":"', start, '"');
    s.push(',"auid":', smallNumber(p.creds.auid));
    // Optional fields with a proto number between auid (9) and parent_exec_id (12): pod, docker.
    if (this.opts.workloads !== undefined) {
      const w = this.opts.workloads.fields(p.creds.cgroupId, p.pid);
      if (w.pod !== undefined) s.push(',"pod":', JSON.stringify(w.pod));
      if (w.docker !== undefined && w.docker !== "") s.push(',"docker":', quote(w.docker));
    }
    if (p.parentExecId !== "") s.push(',"parent_exec_id":', quote(p.parentExecId));
    s.push(',"tid":', p.tid === p.pid ? pid : String(p.tid), "}");
    return s.join("");
  }

  #execBlock(p: ProcessInfo): Block {
    const b = this.#block(p);
    if (b.exec === undefined) {
      if (p.file && p.file.nlink === 0) {
        const bp = encodeProcess(p, this.opts, true).binary_properties;
        b.exec = { text: `${b.text.slice(0, -1)},"binary_properties":${JSON.stringify(bp)}}`, start: b.start };
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

  /** The export line of `ev`, equal to JSON.stringify(encodeEvent(ev, opts)). */
  line(ev: ProcessEvent, wallTime?: string): string {
    const time = wallTime ?? this.time(ev);
    const proc = ev.type === "process_exec" ? this.#execBlock(ev.process).text : this.#block(ev.process).text;
    let s = `{"${ev.type}":{"process":${proc}`;
    if (ev.parent) s += `,"parent":${this.#block(ev.parent).text}`;
    if (ev.type === "process_exit") {
      if (ev.signal) s += `,"signal":${quote(ev.signal)}`;
      if (ev.status !== 0) s += `,"status":${ev.status}`;
      s += `,"time":"${time}"`;
    }
    return `${s}},"node_name":${this.#node},"time":"${time}"}`;
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

// uids and auids take a handful of values on a host; their decimal text is made once each.
const numbers = new Map<number, string>();

function smallNumber(n: number): string {
  let t = numbers.get(n);
  if (t === undefined) {
    t = String(n);
    if (numbers.size < 1024) numbers.set(n, t);
  }
  return t;
}

// Characters JSON.stringify writes escaped: quote, backslash, controls, and (for lone
// surrogates) anything in the surrogate range; strings with none are written as they are.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** JSON.stringify(s), without the native call for the common plain string. */
export function quote(s: string): string {
  return NEEDS_ESCAPE.test(s) ? JSON.stringify(s) : `"${s}"`;
}
