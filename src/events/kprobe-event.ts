// Tetragon's JSON export form of hook matches: process_kprobe, process_tracepoint,
// process_lsm and process_uprobe (reference/tetragon.md §2.5). Keys follow the proto's field-number order, zero
// values are omitted, 64-bit integers are strings, bytes are base64, as protojson writes
// them. The process and parent come from the process cache through H6's encodeProcess.
import type { ProcessInfo } from "./model.ts";
import { encodeProcess, type EncodeOptions, type JsonObject } from "./tetragon.ts";

/** One argument, by its KprobeArgument variant. */
export type HookArg = (
  | { kind: "string"; value: string }
  | { kind: "int"; value: number }
  | { kind: "uint"; value: number }
  | { kind: "long"; value: bigint }
  | { kind: "size"; value: bigint }
  | { kind: "bytes"; value: Uint8Array; origSize?: number }
  | { kind: "file" | "path" | "linux_binprm"; path: string; mount?: string; flags?: string; permission?: string }
  | { kind: "sock"; family?: string; type?: string; protocol?: string; saddr?: string; daddr?: string; sport?: number; dport?: number; cookie?: bigint; state?: string }
  | { kind: "skb"; hash: number; len: number; priority: number; mark: number; saddr: string; daddr: string; sport: number; dport: number; proto: number; secPathLen: number; protocol: string; family: string }
  | { kind: "process_credentials"; uid: number; gid: number; euid: number; egid: number; suid: number; sgid: number; fsuid: number; fsgid: number; securebits: string[]; caps: { permitted: string[]; effective: string[]; inheritable: string[] }; userNs: { level: number; uid: number; gid: number; inum: number; isHost: boolean } }
  | { kind: "sockaddr"; family: string; addr: string; port: number }
  | { kind: "syscall_id"; id: number; abi: string }
  | { kind: "capability"; value: number; name: string }
  | { kind: "cap_set"; variant: "kernel_cap_t_arg" | "cap_inheritable_arg" | "cap_permitted_arg" | "cap_effective_arg"; value: bigint }
) & { label?: string };

/** What a hook match carries, whatever backend produced it. */
export interface HookMatch {
  kind: "process_kprobe" | "process_tracepoint" | "process_lsm" | "process_uprobe";
  /** Boot-clock ns of the match. */
  time: bigint;
  process: ProcessInfo | undefined;
  parent: ProcessInfo | undefined;
  /** kprobe: arch-prefixed syscall or kernel function; lsm: hook name. */
  functionName?: string;
  /** tracepoint only. */
  subsys?: string;
  event?: string;
  /** uprobe only: the probed binary, the symbol as the policy named it ("" for offsets/addrs),
   * and the file offset when the policy gave offsets/addrs. */
  path?: string;
  symbol?: string;
  offset?: bigint;
  args: HookArg[];
  ret?: HookArg;
  /** Policy action name as written (Sigkill, Post, Override...). */
  action: string;
  returnAction?: string;
  policyName: string;
  message?: string;
  tags?: string[];
}

/** "Sigkill" -> "KPROBE_ACTION_SIGKILL", as Tetragon's KprobeAction enum names it. */
export function kprobeActionName(action: string): string {
  return `KPROBE_ACTION_${action.toUpperCase()}`;
}

function base64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("base64");
}

function fileLike(a: { path: string; mount?: string; flags?: string; permission?: string }): JsonObject {
  const o: JsonObject = {};
  if (a.mount) o.mount = a.mount;
  if (a.path) o.path = a.path;
  if (a.flags) o.flags = a.flags;
  if (a.permission) o.permission = a.permission;
  return o;
}

/** One KprobeArgument in JSON form. */
export function encodeHookArg(a: HookArg): JsonObject {
  const o: JsonObject = {};
  switch (a.kind) {
    case "string":
      o.string_arg = a.value;
      break;
    case "int":
      o.int_arg = a.value | 0;
      break;
    case "uint":
      o.uint_arg = a.value >>> 0;
      break;
    case "long":
      o.long_arg = a.value.toString();
      break;
    case "size":
      o.size_arg = a.value.toString();
      break;
    case "bytes":
      if (a.origSize !== undefined && a.origSize > a.value.length) o.truncated_bytes_arg = { bytes_arg: base64(a.value), orig_size: a.origSize.toString() };
      else o.bytes_arg = base64(a.value);
      break;
    case "file":
      o.file_arg = fileLike(a);
      break;
    case "path":
      o.path_arg = fileLike(a);
      break;
    case "linux_binprm":
      o.linux_binprm_arg = fileLike(a);
      break;
    case "sock": {
      const s: JsonObject = {};
      if (a.family) s.family = a.family;
      if (a.type) s.type = a.type;
      if (a.protocol) s.protocol = a.protocol;
      if (a.saddr) s.saddr = a.saddr;
      if (a.daddr) s.daddr = a.daddr;
      if (a.sport) s.sport = a.sport;
      if (a.dport) s.dport = a.dport;
      if (a.cookie) s.cookie = a.cookie.toString();
      if (a.state) s.state = a.state;
      o.sock_arg = s;
      break;
    }
    case "skb": {
      // skb_arg's proto field order: hash len priority mark saddr daddr sport dport proto sec_path_len sec_path_olen protocol family
      const s: JsonObject = {};
      if (a.hash) s.hash = a.hash;
      if (a.len) s.len = a.len;
      if (a.priority) s.priority = a.priority;
      if (a.mark) s.mark = a.mark;
      if (a.saddr) s.saddr = a.saddr;
      if (a.daddr) s.daddr = a.daddr;
      if (a.sport) s.sport = a.sport;
      if (a.dport) s.dport = a.dport;
      if (a.proto) s.proto = a.proto;
      if (a.secPathLen) s.sec_path_len = a.secPathLen;
      if (a.protocol) s.protocol = a.protocol;
      if (a.family) s.family = a.family;
      o.skb_arg = s;
      break;
    }
    case "process_credentials": {
      // ProcessCredentials: uid gid euid egid suid sgid fsuid fsgid securebits caps user_ns
      const c: JsonObject = { uid: a.uid, gid: a.gid, euid: a.euid, egid: a.egid, suid: a.suid, sgid: a.sgid, fsuid: a.fsuid, fsgid: a.fsgid };
      for (const k of Object.keys(c)) if (c[k] === 0) delete c[k];
      if (a.securebits.length) c.securebits = a.securebits;
      const caps: JsonObject = {};
      if (a.caps.permitted.length) caps.permitted = a.caps.permitted;
      if (a.caps.effective.length) caps.effective = a.caps.effective;
      if (a.caps.inheritable.length) caps.inheritable = a.caps.inheritable;
      if (Object.keys(caps).length) c.caps = caps;
      const ns: JsonObject = {};
      if (a.userNs.inum) ns.inum = a.userNs.inum;
      if (a.userNs.isHost) ns.is_host = true;
      const u: JsonObject = {};
      if (a.userNs.level) u.level = a.userNs.level;
      if (a.userNs.uid) u.uid = a.userNs.uid;
      if (a.userNs.gid) u.gid = a.userNs.gid;
      if (Object.keys(ns).length) u.ns = ns;
      if (Object.keys(u).length) c.user_ns = u;
      o.process_credentials_arg = c;
      break;
    }
    case "sockaddr": {
      const s: JsonObject = { family: a.family };
      if (a.addr) s.addr = a.addr;
      if (a.port) s.port = a.port;
      o.sockaddr_arg = s;
      break;
    }
    case "syscall_id":
      o.syscall_id = a.id === 0 ? { abi: a.abi } : { id: a.id, abi: a.abi };
      break;
    case "capability":
      o.capability_arg = a.value === 0 ? { name: a.name } : { value: a.value, name: a.name };
      break;
    case "cap_set":
      o[a.variant] = `0x${a.value.toString(16).padStart(16, "0")}`;
      break;
  }
  if (a.label) o.label = a.label;
  return o;
}

/** The full export line object for a hook match: `{"process_kprobe": {...}, "node_name": ..., "time": ...}`. */
export function encodeHookMatch(m: HookMatch, opts: EncodeOptions): JsonObject {
  const body: JsonObject = {};
  if (m.process) body.process = encodeProcess(m.process, opts);
  if (m.parent) body.parent = encodeProcess(m.parent, opts);
  const args = m.args.map(encodeHookArg);
  const action = kprobeActionName(m.action);
  const tags = m.tags && m.tags.length > 0 ? m.tags : undefined;
  switch (m.kind) {
    case "process_kprobe":
      if (m.functionName) body.function_name = m.functionName;
      if (args.length) body.args = args;
      if (m.ret) body.return = encodeHookArg(m.ret);
      body.action = action;
      body.policy_name = m.policyName;
      if (m.returnAction) body.return_action = kprobeActionName(m.returnAction);
      if (m.message) body.message = m.message;
      if (tags) body.tags = tags;
      break;
    case "process_tracepoint":
      if (m.subsys) body.subsys = m.subsys;
      if (m.event) body.event = m.event;
      if (args.length) body.args = args;
      body.policy_name = m.policyName;
      body.action = action;
      if (m.message) body.message = m.message;
      if (tags) body.tags = tags;
      break;
    case "process_uprobe":
      if (m.path) body.path = m.path;
      if (m.symbol) body.symbol = m.symbol;
      body.policy_name = m.policyName;
      if (m.message) body.message = m.message;
      if (args.length) body.args = args;
      if (tags) body.tags = tags;
      if (m.offset) body.offset = m.offset.toString();
      body.action = action;
      break;
    case "process_lsm":
      if (m.functionName) body.function_name = m.functionName;
      body.policy_name = m.policyName;
      if (m.message) body.message = m.message;
      if (args.length) body.args = args;
      body.action = action;
      if (tags) body.tags = tags;
      break;
  }
  return { [m.kind]: body, node_name: opts.nodeName, time: opts.clock.wall(m.time) };
}
