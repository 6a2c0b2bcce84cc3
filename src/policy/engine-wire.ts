// Encoders for the two inputs the WASM engine reads: the "policy wire" (a flattened
// TracingPolicy, engine-as/assembly/model.ts) and the "event wire" (one event to
// evaluate, engine-as/assembly/evaluate.ts). Only flattening happens here; the engine
// decides what everything means.
import type {
  ActionSelector, ArgSelector, BinarySelector, CapabilitiesSelector, KProbeArg, KProbeSelector,
  NamespaceType, TracingPolicy,
} from "./types.ts";
import { NAMESPACE_TYPES } from "./types.ts";
import { CAPABILITY_NAMES } from "./values.ts";

export const POLICY_WIRE_MAGIC = 0x4e495057; // "WPIN"
export const POLICY_WIRE_VERSION = 1;
export const EVENT_WIRE_MAGIC = 0x54564557; // "WEVT"

const enc = new TextEncoder();

/** Little-endian growable byte writer. */
export class WireWriter {
  private buf: Uint8Array;
  private view: DataView;
  len = 0;

  constructor(initial = 1024) {
    this.buf = new Uint8Array(initial);
    this.view = new DataView(this.buf.buffer);
  }

  private reserve(n: number): void {
    if (this.len + n <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < this.len + n) cap *= 2;
    const nb = new Uint8Array(cap);
    nb.set(this.buf.subarray(0, this.len));
    this.buf = nb;
    this.view = new DataView(nb.buffer);
  }

  u8(v: number): void { this.reserve(1); this.view.setUint8(this.len, v); this.len += 1; }
  u16(v: number): void { this.reserve(2); this.view.setUint16(this.len, v, true); this.len += 2; }
  u32(v: number): void { this.reserve(4); this.view.setUint32(this.len, v >>> 0, true); this.len += 4; }
  i32(v: number): void { this.reserve(4); this.view.setInt32(this.len, v | 0, true); this.len += 4; }
  u64(v: bigint): void { this.reserve(8); this.view.setBigUint64(this.len, BigInt.asUintN(64, v), true); this.len += 8; }
  raw(b: Uint8Array): void { this.reserve(b.length); this.buf.set(b, this.len); this.len += b.length; }
  bytes(b: Uint8Array): void { this.u32(b.length); this.raw(b); }
  str(s: string): void { this.bytes(enc.encode(s)); }
  strs(list: readonly string[]): void { this.u32(list.length); for (const s of list) this.str(s); }
  done(): Uint8Array { return this.buf.slice(0, this.len); }
}

/** Process-wide binary ids: the kernel's process map stores one id per exec'd path, so
 * every policy loaded into the same maps must agree on them. */
export class BinaryInterner {
  private ids = new Map<string, number>();
  private next = 1;
  id(path: string): number {
    let v = this.ids.get(path);
    if (v === undefined) {
      v = this.next++;
      this.ids.set(path, v);
    }
    return v;
  }

  /**
   * Takes over an id a previous agent gave `path` (its policies are adopted from pins, and
   * the kernel maps hold that id): new paths get ids above every seeded one. Throws when
   * `path` or `id` is already taken otherwise.
   */
  seed(path: string, id: number): void {
    const have = this.ids.get(path);
    if (have === id) return;
    if (have !== undefined) throw new Error(`binary ${path} is interned as ${have}, a pinned policy has it as ${id}`);
    for (const [p, v] of this.ids) if (v === id) throw new Error(`binary id ${id} is ${p}'s, a pinned policy has it for ${path}`);
    this.ids.set(path, id);
    this.next = Math.max(this.next, id + 1);
  }
}

export interface PolicyWireOptions {
  setIdBase: number;
  hookIdBase: number;
  followBitBase: number;
  monitor: boolean;
  hostNamespaces: Partial<Record<NamespaceType, number>>;
  binaries: BinaryInterner;
  /** Resolved `list:NAME` values for InMap/NotInMap (syscall numbers). */
  lists: ReadonlyMap<string, readonly bigint[]>;
}

/** Hook kind codes (enum ward_hook_kind). */
export const HOOK_KIND_CODES = { kprobes: 1, fentries: 2, tracepoints: 3, rawTracepoints: 4, uprobes: 5, usdts: 6, lsmhooks: 7 } as const;

export interface WireHook {
  kind: number;
  list: "kprobes" | "fentries" | "tracepoints" | "uprobes" | "usdts" | "lsmhooks";
  specIndex: number;
  name: string;
  syscall: boolean;
  ret: boolean;
  returnArgAction: string;
  args: readonly KProbeArg[];
  data: readonly KProbeArg[];
  returnArg: KProbeArg | undefined;
  selectors: readonly KProbeSelector[];
}

/** Every hook of a policy in engine order: kprobes, fentries, tracepoints, uprobes, usdts, lsmhooks. */
export function policyHooks(p: TracingPolicy): WireHook[] {
  const out: WireHook[] = [];
  const s = p.spec;
  s.kprobes.forEach((k, i) => out.push({ kind: HOOK_KIND_CODES.kprobes, list: "kprobes", specIndex: i, name: k.call, syscall: k.syscall, ret: k.return, returnArgAction: k.returnArgAction ?? "", args: k.args, data: k.data, returnArg: k.returnArg, selectors: k.selectors }));
  s.fentries.forEach((k, i) => out.push({ kind: HOOK_KIND_CODES.fentries, list: "fentries", specIndex: i, name: k.call, syscall: k.syscall, ret: k.return, returnArgAction: k.returnArgAction ?? "", args: k.args, data: k.data, returnArg: k.returnArg, selectors: k.selectors }));
  s.tracepoints.forEach((t, i) => out.push({ kind: t.raw ? HOOK_KIND_CODES.rawTracepoints : HOOK_KIND_CODES.tracepoints, list: "tracepoints", specIndex: i, name: `${t.subsystem}/${t.event}`, syscall: false, ret: false, returnArgAction: "", args: t.args, data: [], returnArg: undefined, selectors: t.selectors }));
  s.uprobes.forEach((u, i) => {
    const where = u.symbols.length > 0 ? u.symbols.join(",") : u.offsets.length > 0 ? u.offsets.map((o) => `+0x${o.toString(16)}`).join(",") : u.addrs.map((a) => `@0x${a.toString(16)}`).join(",");
    out.push({ kind: HOOK_KIND_CODES.uprobes, list: "uprobes", specIndex: i, name: `${u.path}:${where}`, syscall: false, ret: u.return, returnArgAction: "", args: u.args, data: u.data, returnArg: u.returnArg, selectors: u.selectors });
  });
  s.usdts.forEach((u, i) => out.push({ kind: HOOK_KIND_CODES.usdts, list: "usdts", specIndex: i, name: `${u.path}:${u.provider}:${u.name}`, syscall: false, ret: false, returnArgAction: "", args: u.args, data: [], returnArg: undefined, selectors: u.selectors }));
  s.lsmhooks.forEach((l, i) => out.push({ kind: HOOK_KIND_CODES.lsmhooks, list: "lsmhooks", specIndex: i, name: l.hook, syscall: false, ret: false, returnArgAction: "", args: l.args, data: [], returnArg: undefined, selectors: l.selectors }));
  return out;
}

function writeArg(w: WireWriter, a: KProbeArg): void {
  w.str(a.type);
  w.u32(a.index);
  w.u8(a.source === "pt_regs" ? 2 : a.source === "current_task" ? 1 : 0);
  w.u32(a.sizeArgIndex);
  w.u8((a.returnCopy ? 1 : 0) | (a.maxData ? 2 : 0) | (a.resolve !== "" ? 4 : 0) | (a.btfType ? 8 : 0));
}

function writeArgMatch(w: WireWriter, origin: number, m: ArgSelector): void {
  w.u8(origin);
  w.u32(m.index);
  w.u32(m.args.length);
  for (const a of m.args) w.u32(a);
  w.str(m.operator);
  w.strs(m.values);
}

function writeBinaries(w: WireWriter, list: readonly BinarySelector[]): void {
  w.u32(list.length);
  for (const b of list) {
    w.str(b.operator);
    w.u8(b.followChildren ? 1 : 0);
    w.u32(b.values.length);
    for (const v of b.values) w.str(v);
  }
}

function writeCaps(w: WireWriter, list: readonly CapabilitiesSelector[]): void {
  w.u32(list.length);
  for (const c of list) {
    w.str(c.type);
    w.str(c.operator);
    w.u8(c.isNamespaceCapability ? 1 : 0);
    w.strs(c.values);
  }
}

function writeAction(w: WireWriter, a: ActionSelector): void {
  w.str(a.action);
  const present = (a.argError !== undefined ? 1 : 0) | (a.argSig !== undefined ? 2 : 0) | (a.argSock !== undefined ? 4 : 0) |
    (a.argIndex !== undefined ? 8 : 0) | (a.argValue !== undefined ? 16 : 0) | (a.rateLimitMs !== undefined ? 32 : 0);
  w.u32(present);
  w.i32(a.argError ?? 0);
  w.u32(a.argSig ?? 0);
  w.u32(a.argSock ?? 0);
  w.u32(a.argIndex ?? 0);
  w.u32(a.argValue ?? 0);
  w.u64(BigInt(a.rateLimitMs ?? 0));
  w.str(a.rateLimitScope ?? "");
  w.u8((a.kernelStackTrace ? 1 : 0) | (a.userStackTrace ? 2 : 0) | (a.imaHash ? 4 : 0));
  w.str(a.argUrl ?? "");
  w.str(a.argFqdn ?? "");
}

function writeSelector(w: WireWriter, s: KProbeSelector): void {
  w.str(s.label ?? "");
  w.u8(s.matchWorkloads !== undefined ? 1 : 0);
  w.u32(s.matchPIDs.length);
  for (const p of s.matchPIDs) {
    w.str(p.operator);
    w.u8((p.isNamespacePID ? 1 : 0) | (p.followForks ? 2 : 0));
    w.u32(p.values.length);
    for (const v of p.values) w.u32(v);
  }
  const argMatches: [number, ArgSelector][] = [
    ...s.matchArgs.map((m): [number, ArgSelector] => [0, m]),
    ...s.matchData.map((m): [number, ArgSelector] => [1, m]),
    ...s.matchReturnArgs.map((m): [number, ArgSelector] => [2, m]),
  ];
  w.u32(argMatches.length);
  for (const [o, m] of argMatches) writeArgMatch(w, o, m);
  writeBinaries(w, s.matchBinaries);
  writeBinaries(w, s.matchParentBinaries);
  w.u32(s.matchNamespaces.length);
  for (const n of s.matchNamespaces) { w.str(n.namespace); w.str(n.operator); w.strs(n.values); }
  w.u32(s.matchNamespaceChanges.length);
  for (const n of s.matchNamespaceChanges) { w.str(""); w.str(n.operator); w.strs(n.values); }
  writeCaps(w, s.matchCapabilities);
  writeCaps(w, s.matchCapabilityChanges);
  w.u32(s.matchActions.length);
  for (const a of s.matchActions) writeAction(w, a);
  w.u32(s.matchReturnActions.length);
  for (const a of s.matchReturnActions) writeAction(w, a);
}

/** Binary paths named by In/NotIn matchers, in first-seen order (they get interned ids). */
function collectBinaries(hooks: readonly WireHook[]): string[] {
  const seen = new Set<string>();
  for (const h of hooks) for (const s of h.selectors) {
    for (const b of [...s.matchBinaries, ...s.matchParentBinaries]) {
      if (b.operator === "In" || b.operator === "NotIn") for (const v of b.values) seen.add(v);
    }
  }
  return [...seen];
}

export function encodePolicy(hooks: readonly WireHook[], o: PolicyWireOptions): Uint8Array {
  const w = new WireWriter();
  w.u32(POLICY_WIRE_MAGIC);
  w.u32(POLICY_WIRE_VERSION);
  w.u32(o.setIdBase);
  w.u32(o.hookIdBase);
  w.u32(o.followBitBase);
  w.u32(o.monitor ? 1 : 0);
  for (const ns of NAMESPACE_TYPES) w.u32(o.hostNamespaces[ns] ?? 0);
  const bins = collectBinaries(hooks);
  w.u32(bins.length);
  for (const b of bins) { w.str(b); w.u32(o.binaries.id(b)); }
  w.u32(o.lists.size);
  for (const [name, values] of o.lists) {
    w.str(name);
    w.u32(values.length);
    for (const v of values) w.u64(v);
  }
  w.u32(hooks.length);
  for (const h of hooks) {
    w.u8(h.kind);
    w.u32(h.specIndex);
    w.str(h.name);
    w.u8((h.syscall ? 1 : 0) | (h.ret ? 2 : 0));
    w.str(h.returnArgAction);
    w.u32(h.args.length);
    for (const a of h.args) writeArg(w, a);
    w.u32(h.data.length);
    for (const a of h.data) writeArg(w, a);
    w.u8(h.returnArg !== undefined ? 1 : 0);
    if (h.returnArg !== undefined) writeArg(w, h.returnArg);
    w.u32(h.selectors.length);
    for (const s of h.selectors) writeSelector(w, s);
  }
  return w.done();
}

// ---------------------------------------------------------------- events

/** File types as the kernel's S_IFMT >> 12. */
export const FILE_TYPE_CODES = { fifo: 1, chr: 2, dir: 4, blk: 6, reg: 8, lnk: 10, sock: 12 } as const;
export type FileTypeName = keyof typeof FILE_TYPE_CODES;

/** One argument value as the hook read it. */
export type EventArg =
  | { int: number | bigint }
  | { string: string | Uint8Array }
  | { file: { path: string | Uint8Array; type?: FileTypeName | number } }
  | { sock: { family: number; protocol?: number; state?: number; saddr?: string | Uint8Array; daddr?: string | Uint8Array; sport?: number; dport?: number } };

export interface CapSets {
  effective?: bigint;
  inheritable?: bigint;
  permitted?: bigint;
}

/** What the kernel knows at a hook: the task, its process-map entry, and the arguments. */
export interface EngineEvent {
  pid: number;
  /** The pid as seen in the task's pid namespace (defaults to pid). */
  nspid?: number;
  binary: string;
  parentBinary?: string;
  /** Parent, grandparent, ... (nearest first; at most 8 are consulted). */
  ancestors?: readonly { pid: number; nspid?: number; binary: string }[];
  namespaces?: Partial<Record<NamespaceType, number>>;
  /** The host's namespace inodes (init_task's), for host_ns values compiled unresolved. */
  hostNamespaces?: Partial<Record<NamespaceType, number>>;
  /** Namespaces recorded at exec (defaults to namespaces). */
  namespacesAtExec?: Partial<Record<NamespaceType, number>>;
  caps?: CapSets;
  /** Capabilities recorded at exec (defaults to caps). */
  capsAtExec?: CapSets;
  /** Whether the task is in the host user namespace (default true). */
  inHostUserNs?: boolean;
  /** By slot: the hook's args in spec order, then its data entries. */
  args?: readonly (EventArg | undefined)[];
  /** Present when the event is the call's return: matchReturnArgs are then evaluated. */
  returnValue?: EventArg;
}

export class EventEncodeError extends Error {
  override name = "EventEncodeError";
}

function bytesOf(v: string | Uint8Array): Uint8Array {
  return typeof v === "string" ? enc.encode(v) : v;
}

/** An IP address as 16 bytes (IPv4 in the first four). */
export function addressBytes(a: string | Uint8Array | undefined): Uint8Array {
  const out = new Uint8Array(16);
  if (a === undefined) return out;
  if (typeof a !== "string") { out.set(a.subarray(0, 16)); return out; }
  if (!a.includes(":")) {
    const parts = a.split(".").map(Number);
    if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new EventEncodeError(`not an IPv4 address: ${a}`);
    out.set(parts);
    return out;
  }
  let tail4: number[] = [];
  let s = a;
  const lastColon = s.lastIndexOf(":");
  if (s.slice(lastColon + 1).includes(".")) {
    tail4 = s.slice(lastColon + 1).split(".").map(Number);
    s = `${s.slice(0, lastColon + 1)}0:0`;
  }
  const [head = "", rest] = s.split("::");
  const h = head === "" ? [] : head.split(":");
  const t = rest === undefined || rest === "" ? [] : rest.split(":");
  const fill = rest === undefined ? 0 : 8 - h.length - t.length;
  const groups = [...h, ...new Array<string>(fill).fill("0"), ...t].map((g) => Number.parseInt(g, 16));
  if (groups.length !== 8 || groups.some((g) => !Number.isInteger(g) || g < 0 || g > 0xffff)) throw new EventEncodeError(`not an IPv6 address: ${a}`);
  groups.forEach((g, i) => { out[2 * i] = g >> 8; out[2 * i + 1] = g & 0xff; });
  if (tail4.length === 4) out.set(tail4, 12);
  return out;
}

function writeEventArg(w: WireWriter, slot: number, a: EventArg): void {
  w.u8(slot);
  if ("int" in a) { w.u8(1); w.u64(BigInt(a.int)); return; }
  if ("string" in a) { w.u8(2); w.bytes(bytesOf(a.string)); return; }
  if ("file" in a) {
    w.u8(4);
    w.bytes(bytesOf(a.file.path));
    const t = a.file.type;
    w.u32(t === undefined ? 0 : typeof t === "number" ? t : FILE_TYPE_CODES[t]);
    return;
  }
  const s = a.sock;
  w.u8(3);
  w.u16(s.family);
  w.u16(s.protocol ?? 0);
  w.u8(s.state ?? 0);
  w.u8(0);
  w.u16(s.sport ?? 0);
  w.u16(s.dport ?? 0);
  w.raw(addressBytes(s.saddr));
  w.raw(addressBytes(s.daddr));
}

export function encodeEvent(e: EngineEvent): Uint8Array {
  const w = new WireWriter(256);
  w.u32(EVENT_WIRE_MAGIC);
  w.u32(e.pid);
  w.u32(e.nspid ?? e.pid);
  w.u32((e.inHostUserNs ?? true ? 1 : 0) | (e.returnValue !== undefined ? 2 : 0));
  w.str(e.binary);
  w.str(e.parentBinary ?? "");
  const anc = e.ancestors ?? [];
  w.u32(anc.length);
  for (const a of anc) { w.u32(a.pid); w.u32(a.nspid ?? a.pid); w.str(a.binary); }
  const ns = e.namespaces ?? {};
  const nsExec = e.namespacesAtExec ?? ns;
  for (const t of NAMESPACE_TYPES) w.u32(ns[t] ?? 0);
  for (const t of NAMESPACE_TYPES) w.u32(nsExec[t] ?? 0);
  const host = e.hostNamespaces ?? {};
  for (const t of NAMESPACE_TYPES) w.u32(host[t] ?? 0);
  const caps = e.caps ?? {};
  const capsExec = e.capsAtExec ?? caps;
  for (const c of [caps, capsExec]) { w.u64(c.effective ?? 0n); w.u64(c.inheritable ?? 0n); w.u64(c.permitted ?? 0n); }
  const args = e.args ?? [];
  const slots: [number, EventArg][] = [];
  args.forEach((a, i) => { if (a !== undefined) slots.push([i, a]); });
  if (e.returnValue !== undefined) slots.push([5, e.returnValue]);
  if (slots.length > 6 || args.length > 5) throw new EventEncodeError("an event has at most 5 argument slots plus the return value");
  w.u32(slots.length);
  for (const [i, a] of slots) writeEventArg(w, i, a);
  return w.done();
}

/** Bit mask of capability names (Tetragon spelling; CAP_DAC_OVERRIDE accepted too), for
 * EngineEvent.caps. Bit numbers are the kernel's (the proto enum order). */
export function capabilityMask(names: readonly string[], order: readonly string[] = CAPABILITY_NAMES): bigint {
  let m = 0n;
  for (const n of names) {
    const i = order.indexOf(n === "CAP_DAC_OVERRIDE" ? "DAC_OVERRIDE" : n);
    if (i < 0) throw new EventEncodeError(`unknown capability ${n}`);
    m |= 1n << BigInt(i);
  }
  return m;
}
