// Tetragon's JSON export form of process_exec and process_exit (reference/tetragon.md §2):
// protojson with proto field names, keys in field-number order, zero values omitted, wrapper
// fields (UInt32Value) present even when 0, 64-bit integers as strings, RFC 3339 times.
import { capabilityNames } from "./capabilities.ts";
import { flagsString } from "./flags.ts";
import type { ProcessEvent, ProcessInfo } from "./model.ts";
import { NS_NAMES } from "./process-record.ts";
import { rfc3339Nano, type BootClock } from "./time.ts";

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
  if (p.ktime !== 0n) o.start_time = rfc3339Nano(opts.clock.toWall(p.ktime));
  o.auid = p.creds.auid;
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
  const time = rfc3339Nano(opts.clock.toWall(ev.time));
  const body: JsonObject = { process: encodeProcess(ev.process, opts, ev.type === "process_exec") };
  if (ev.parent) body.parent = encodeProcess(ev.parent, opts);
  if (ev.type === "process_exit") {
    if (ev.signal) body.signal = ev.signal;
    if (ev.status !== 0) body.status = ev.status;
    body.time = time;
  }
  return { [ev.type]: body, node_name: opts.nodeName, time };
}
