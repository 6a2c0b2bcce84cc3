// The typed wrapper around the AssemblyScript policy engine: the only code that talks to
// the WASM. compilePolicy() turns a validated TracingPolicy into the kernel filter tables
// (bpf/include/ward_filter.h); evaluate() runs the engine's userspace evaluator over the
// same tables, so a userspace decision is the decision the kernel reaches.
import { existsSync, readFileSync } from "node:fs";
import wasmPath from "../../engine-as/build/engine.wasm" with { type: "file" };
import {
  BinaryInterner, encodeEvent, encodePolicy, policyHooks, type EngineEvent, type WireHook,
} from "./engine-wire.ts";
import type { ActionName, NamespaceType, TracingPolicy } from "./types.ts";

export { BinaryInterner, EventEncodeError, type EngineEvent, type EventArg, type CapSets, type FileTypeName, addressBytes, capabilityMask } from "./engine-wire.ts";

// ---------------------------------------------------------------- errors

/** The policy is valid YAML/CRD but the engine cannot compile it (limits, value syntax,
 * operator/type mismatch, unsupported feature). One entry per problem. */
export class PolicyCompileError extends Error {
  override name = "PolicyCompileError";
  constructor(readonly problems: readonly { path: string; message: string }[]) {
    super(problems.map((p) => `${p.path}: ${p.message}`).join("\n"));
  }
}

/** The engine itself failed (trap, malformed wire, bad blob): a bug, not a policy problem. */
export class EngineError extends Error {
  override name = "EngineError";
}

/** The WASM trapped or aborted; the instance that did is discarded. */
export class EngineTrap extends EngineError {
  override name = "EngineTrap";
}

// ---------------------------------------------------------------- the WASM instance

interface EngineExports {
  memory: WebAssembly.Memory;
  inputPtr(size: number): number;
  outputPtr(): number;
  outputLen(): number;
  compile(len: number): number;
  load(len: number): number;
  unload(handle: number): void;
  evaluate(handle: number, hook: number, len: number): number;
  layoutInfo(): void;
}

function isEngineExports(x: unknown): x is EngineExports {
  if (typeof x !== "object" || x === null) return false;
  const r = x as Record<string, unknown>;
  return ["inputPtr", "outputPtr", "outputLen", "compile", "load", "unload", "evaluate", "layoutInfo"].every((k) => typeof r[k] === "function") && r.memory instanceof WebAssembly.Memory;
}

class Engine {
  readonly layout: ReadonlyMap<string, number>;

  constructor(private readonly x: EngineExports) {
    x.layoutInfo();
    const m = new Map<string, number>();
    for (const line of this.outputText().split("\n")) {
      const eq = line.indexOf("=");
      if (eq > 0) m.set(line.slice(0, eq), Number(line.slice(eq + 1)));
    }
    this.layout = m;
  }

  private mem = new Uint8Array(0);

  /** A byte view of the whole memory, renewed when growth replaced the buffer. */
  private bytes(): Uint8Array {
    const b = this.x.memory.buffer;
    if (this.mem.buffer !== b) this.mem = new Uint8Array(b);
    return this.mem;
  }

  private input(bytes: Uint8Array): void {
    const p = this.x.inputPtr(bytes.length);
    this.bytes().set(bytes, p);
  }

  /** The output as a view into WASM memory: valid until the next call into the engine. */
  private outputView(): Uint8Array {
    const p = this.x.outputPtr();
    return this.bytes().subarray(p, p + this.x.outputLen());
  }

  private output(): Uint8Array {
    return this.outputView().slice();
  }

  outputText(): string {
    return new TextDecoder().decode(this.output());
  }

  compile(wire: Uint8Array): { ok: true; blob: Uint8Array } | { ok: false; status: number; text: string } {
    this.input(wire);
    const st = this.x.compile(wire.length);
    return st === 0 ? { ok: true, blob: this.output() } : { ok: false, status: st, text: this.outputText() };
  }

  load(blob: Uint8Array): number {
    this.input(blob);
    const h = this.x.load(blob.length);
    if (h < 0) throw new EngineError(`engine refused the tables: ${this.outputText()}`);
    return h;
  }

  unload(h: number): void {
    this.x.unload(h);
  }

  evaluate(handle: number, hook: number, event: Uint8Array): Uint8Array {
    this.input(event);
    const st = this.x.evaluate(handle, hook, event.length);
    if (st === -1) throw new EngineError(`no hook ${hook} in these tables`);
    if (st !== 0) throw new EngineError("engine rejected the event encoding");
    return this.outputView();
  }

  num(name: string): number {
    const v = this.layout.get(name);
    if (v === undefined) throw new EngineError(`engine layout has no ${name}`);
    return v;
  }
}

let engine: Engine | undefined;

function instantiate(module: WebAssembly.Module): Engine {
  let mem: WebAssembly.Memory | undefined;
  const readAsString = (ptr: number): string => {
    if (mem === undefined || ptr === 0) return "";
    const len = new Uint32Array(mem.buffer, ptr - 4, 1)[0] ?? 0;
    return String.fromCharCode(...new Uint16Array(mem.buffer, ptr, len >>> 1));
  };
  const instance = new WebAssembly.Instance(module, {
    env: {
      abort(msg: number, file: number, line: number, col: number): never {
        throw new EngineTrap(`engine abort: ${readAsString(msg)} at ${readAsString(file)}:${line}:${col}`);
      },
    },
  });
  const x: unknown = instance.exports;
  if (!isEngineExports(x)) throw new EngineError("engine.wasm does not export the engine ABI");
  mem = x.memory;
  return new Engine(x);
}

function getEngine(): Engine {
  if (engine === undefined) {
    const bytes = readFileSync(wasmPath);
    engine = instantiate(new WebAssembly.Module(bytes));
  }
  return engine;
}

/** Runs one engine call; a trap leaves the WASM heap in an unknown state, so the instance
 * is dropped (the next call gets a fresh one) and the trap becomes an EngineError. */
function guarded<T>(f: (e: Engine) => T): T {
  const e = getEngine();
  try {
    return f(e);
  } catch (err) {
    if (err instanceof WebAssembly.RuntimeError || err instanceof EngineTrap) {
      if (engine === e) engine = undefined;
      loadedBy.delete(e);
      throw err instanceof EngineTrap ? err : new EngineTrap(`engine trapped: ${String(err)}`);
    }
    throw err;
  }
}

/** Compiles the embedded engine asynchronously (WebAssembly.compile) ahead of first use. */
export async function loadEngine(): Promise<void> {
  if (engine !== undefined) return;
  const bytes = readFileSync(wasmPath);
  const module = await WebAssembly.compile(bytes);
  engine ??= instantiate(module);
}

/** The layout version this engine writes (WARD_FILTER_LAYOUT_VERSION). */
export function engineLayoutVersion(): number {
  return getEngine().num("version");
}

/** Every size/offset/constant of the blob layout as the engine knows it ("sizeof.X",
 * "X.field", "const.NAME", "sec.NAME"); the layout test compares these with the C header. */
export function engineLayout(): ReadonlyMap<string, number> {
  return getEngine().layout;
}

// ---------------------------------------------------------------- compile

export interface CompileOptions {
  /** First value-set id (several policies can share kernel maps with disjoint ranges). Default 1. */
  setIdBase?: number;
  /** hook_id of the first hook. Default 0. */
  hookIdBase?: number;
  /** First followChildren bit (the process map's follow_mask is shared by every policy;
   * bits [base, base + followBits) belong to this one). Default 0; at most 64 in all. */
  followBitBase?: number;
  /** Policy mode; default from spec.options policy-mode, else enforce. Monitor marks
   * Sigkill/Signal/Override/NotifyEnforcer/Set as count-only (WARD_AF_MONITOR). */
  mode?: "enforce" | "monitor";
  /** Inode numbers of the host's namespaces, to write host_ns values into the tables.
   * Default: none, and host_ns stays a placeholder (WARD_MF_HOST_NS) that the kernel
   * resolves from init_task and evaluate() from EngineEvent.hostNamespaces. */
  hostNamespaces?: Partial<Record<NamespaceType, number>>;
  /** Binary-id interner shared by every policy in the same kernel maps. Default: process-wide. */
  binaries?: BinaryInterner;
  /** Syscall number of a list entry ("sys_dup", "i386/sys_dup"), for InMap "list:NAME".
   * Default: the host's asm/unistd_64.h (and unistd_32.h with bit 31 for i386/). */
  syscallNumber?: (name: string) => number | undefined;
}

export type SectionName =
  | "hooks" | "strEq16" | "strEq32" | "strEq64" | "strEq128" | "strEq256" | "strEq512" | "strEq1024" | "strEq2048" | "strEq4096"
  | "strPrefix" | "strPostfix" | "intSet" | "addrLpm" | "binNames" | "binSet" | "substr" | "follow" | "strings" | "fileSets";

/** One section of the blob: the entries for one kernel map (keys, or configs for "hooks"). */
export interface TableSection {
  kind: number;
  count: number;
  entrySize: number;
  /** count * entrySize bytes (for "strings", count bytes), a view into the blob. */
  bytes: Uint8Array;
}

export interface CompiledHook {
  /** Position in the blob's hook array (the hookIndex evaluate() takes). */
  index: number;
  hookId: number;
  list: WireHook["list"];
  specIndex: number;
  /** "spec.kprobes[0]" etc. */
  path: string;
  /** call / subsystem/event / hook / path:symbols. */
  name: string;
  raw: boolean;
}

export interface CompiledPolicy {
  name: string;
  layoutVersion: number;
  /** The whole blob: header, section directory, sections. */
  blob: Uint8Array;
  hooks: CompiledHook[];
  tables: Record<SectionName, TableSection>;
  monitor: boolean;
  /** Value-set ids this policy uses: [base, end). The next policy sharing the maps starts at end. */
  setIds: { base: number; end: number };
  /** followChildren bits used (bits 0..n-1 of the process map's follow_mask). */
  followBits: number;
}

const defaultInterner = new BinaryInterner();

/** Seeds the process-wide binary ids with one a pinned policy uses (BinaryInterner.seed). */
export function seedBinaryId(path: string, id: number): void {
  defaultInterner.seed(path, id);
}

let syscallTables: { x64: Map<string, number>; i386: Map<string, number> } | undefined;

function loadUnistd(paths: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const p of paths) {
    if (!existsSync(p)) continue;
    for (const line of readFileSync(p, "utf8").split("\n")) {
      const r = /^#define __NR_(\w+)\s+(\d+)/.exec(line);
      if (r?.[1] !== undefined && r[2] !== undefined) m.set(r[1], Number(r[2]));
    }
    break;
  }
  return m;
}

/** Stopgap until the hooks sensor brings its own syscall table: the host's kernel headers. */
export function hostSyscallNumber(name: string): number | undefined {
  syscallTables ??= {
    x64: loadUnistd(["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"]),
    i386: loadUnistd(["/usr/include/x86_64-linux-gnu/asm/unistd_32.h", "/usr/include/asm/unistd_32.h"]),
  };
  const i386 = name.startsWith("i386/") || name.startsWith("__ia32_");
  const bare = name.replace(/^(i386|x64)\//, "").replace(/^__(x64|ia32)_/, "").replace(/^sys_/, "");
  const n = (i386 ? syscallTables.i386 : syscallTables.x64).get(bare);
  return n === undefined ? undefined : i386 ? (n | 0x80000000) >>> 0 : n;
}

function resolveLists(p: TracingPolicy, syscallNumber: (n: string) => number | undefined): Map<string, bigint[]> {
  const out = new Map<string, bigint[]>();
  for (const l of p.spec.lists) {
    if (l.type !== "syscalls" && l.type !== "generated_syscalls") continue;
    const nums: bigint[] = [];
    let ok = true;
    for (const v of l.values) {
      const n = syscallNumber(v);
      if (n === undefined) { ok = false; break; }
      nums.push(BigInt(n));
    }
    // An unresolvable list is left out; the engine reports it where it is used.
    if (ok) out.set(l.name, nums);
  }
  return out;
}

function policyMode(p: TracingPolicy): "enforce" | "monitor" {
  const o = p.spec.options.find((x) => x.name === "policy-mode");
  return o?.value === "monitor" ? "monitor" : "enforce";
}

function splitProblems(text: string): { path: string; message: string }[] {
  return text.split("\n").filter((l) => l !== "").map((l) => {
    const i = l.indexOf(": ");
    return i < 0 ? { path: "", message: l } : { path: l.slice(0, i), message: l.slice(i + 2) };
  });
}

const SECTION_NAMES: readonly [string, SectionName][] = [
  ["hooks", "hooks"], ["strPrefix", "strPrefix"], ["strPostfix", "strPostfix"], ["intSet", "intSet"], ["addrLpm", "addrLpm"],
  ["binNames", "binNames"], ["binSet", "binSet"], ["substr", "substr"], ["follow", "follow"], ["strings", "strings"], ["fileSets", "fileSets"],
];

function splitSections(e: Engine, blob: Uint8Array): Record<SectionName, TableSection> {
  const dv = new DataView(blob.buffer, blob.byteOffset, blob.byteLength);
  const byKind = new Map<number, SectionName>();
  for (const [key, name] of SECTION_NAMES) byKind.set(e.num(`sec.${key}`), name);
  const eqBase = e.num("sec.strEq");
  for (let c = 0; c < 9; c++) byKind.set(eqBase + c, `strEq${16 << c}` as SectionName);
  const headerSize = e.num("sizeof.ward_blob_header");
  const secSize = e.num("sizeof.ward_section");
  const n = dv.getUint32(e.num("ward_blob_header.n_sections"), true);
  const out: Partial<Record<SectionName, TableSection>> = {};
  for (let i = 0; i < n; i++) {
    const o = headerSize + i * secSize;
    const kind = dv.getUint32(o, true);
    const offset = dv.getUint32(o + 4, true);
    const count = dv.getUint32(o + 8, true);
    const entrySize = dv.getUint32(o + 12, true);
    const name = byKind.get(kind);
    if (name === undefined) throw new EngineError(`blob has unknown section kind ${kind}`);
    out[name] = { kind, count, entrySize, bytes: blob.subarray(offset, offset + count * entrySize) };
  }
  const missing = [...byKind.values()].filter((nm) => out[nm] === undefined);
  if (missing.length > 0) throw new EngineError(`blob lacks sections ${missing.join(", ")}`);
  return out as Record<SectionName, TableSection>;
}

/** Compiles a validated policy to kernel filter tables. Throws PolicyCompileError with
 * field paths when the policy exceeds what the tables (and Tetragon) allow. */
export function compilePolicy(policy: TracingPolicy, opts: CompileOptions = {}): CompiledPolicy {
  const hooks = policyHooks(policy);
  const mode = opts.mode ?? policyMode(policy);
  const wire = encodePolicy(hooks, {
    setIdBase: opts.setIdBase ?? 1,
    hookIdBase: opts.hookIdBase ?? 0,
    followBitBase: opts.followBitBase ?? 0,
    monitor: mode === "monitor",
    hostNamespaces: opts.hostNamespaces ?? {},
    binaries: opts.binaries ?? defaultInterner,
    lists: resolveLists(policy, opts.syscallNumber ?? hostSyscallNumber),
  });
  const { r, e } = guarded((e) => ({ r: e.compile(wire), e }));
  if (!r.ok) {
    if (r.status === 1) throw new PolicyCompileError(splitProblems(r.text));
    throw new EngineError(`engine: ${r.text}`);
  }
  const hookIdBase = opts.hookIdBase ?? 0;
  const hv = new DataView(r.blob.buffer, r.blob.byteOffset, r.blob.byteLength);
  return {
    setIds: { base: hv.getUint32(e.num("ward_blob_header.set_id_base"), true), end: hv.getUint32(e.num("ward_blob_header.set_id_end"), true) },
    followBits: hv.getUint32(e.num("ward_blob_header.n_follow"), true),
    name: policy.metadata.name,
    layoutVersion: e.num("version"),
    blob: r.blob,
    hooks: hooks.map((h, i) => ({
      index: i, hookId: hookIdBase + i, list: h.list, specIndex: h.specIndex,
      path: `spec.${h.list}[${h.specIndex}]`, name: h.name, raw: h.kind === 4,
    })),
    tables: splitSections(e, r.blob),
    monitor: mode === "monitor",
  };
}

/** For each Equal set on a file-like argument (WARD_SEC_FILE_SETS), its paths: the loader
 * stats each and adds (set_id, dev, ino) to the inode map, so the kernel matches the file
 * that was opened whatever path reached it. */
export function fileRuleSets(compiled: CompiledPolicy): { setId: number; paths: string[] }[] {
  const fs = compiled.tables.fileSets;
  const dv = new DataView(fs.bytes.buffer, fs.bytes.byteOffset, fs.bytes.byteLength);
  const wanted = new Map<number, string[]>();
  for (let i = 0; i < fs.count; i++) wanted.set(dv.getUint32(i * fs.entrySize, true), []);
  const td = new TextDecoder();
  for (let c = 0; c < 9; c++) {
    const sec = compiled.tables[`strEq${16 << c}` as SectionName];
    const sv = new DataView(sec.bytes.buffer, sec.bytes.byteOffset, sec.bytes.byteLength);
    for (let i = 0; i < sec.count; i++) {
      const o = i * sec.entrySize;
      const list = wanted.get(sv.getUint32(o, true));
      if (list !== undefined) list.push(td.decode(sec.bytes.subarray(o + 8, o + 8 + sv.getUint32(o + 4, true))));
    }
  }
  return [...wanted].map(([setId, paths]) => ({ setId, paths }));
}

// ---------------------------------------------------------------- evaluate

const ACTION_BY_CODE: Readonly<Record<number, ActionName | "FollowFD" | "UnfollowFD" | "CopyFD">> = {
  1: "Post", 2: "FollowFD", 3: "Sigkill", 4: "UnfollowFD", 5: "Override", 6: "CopyFD", 7: "GetUrl", 8: "DnsLookup",
  9: "NoPost", 10: "Signal", 11: "TrackSock", 12: "UntrackSock", 13: "NotifyEnforcer", 14: "CleanupEnforcerNotification", 15: "Set",
};

/** One action record from the tables (struct ward_action), decoded. */
export interface ActionRecord {
  action: ActionName | "FollowFD" | "UnfollowFD" | "CopyFD";
  code: number;
  argError?: number;
  argSig?: number;
  /** argSock (TrackSock/UntrackSock) or argIndex (Set). */
  argIndex: number;
  argValue: number;
  rateLimitMs: number;
  rateLimitScope: "thread" | "process" | "global";
  kernelStackTrace: boolean;
  userStackTrace: boolean;
  imaHash: boolean;
  /** policy-mode monitor: the kernel counts this enforcement action but does not take it. */
  monitorOnly: boolean;
  argUrl?: string;
  argFqdn?: string;
}

export interface Decision {
  /** A selector matched (or the hook has none): the event is seen. */
  matched: boolean;
  /** Index of the matching selector; null when the hook has no selectors or none matched. */
  selector: number | null;
  actions: ActionRecord[];
  /** matched and no NoPost among the actions. */
  post: boolean;
  /** Return phase only: the matching selector's matchReturnArgs held. */
  returnMatched: boolean;
  returnActions: ActionRecord[];
}

/** STRINGS record by reference (offset + 1). */
export function tableString(compiled: CompiledPolicy, ref: number): string | undefined {
  if (ref === 0) return undefined;
  const s = compiled.tables.strings.bytes;
  const dv = new DataView(s.buffer, s.byteOffset, s.byteLength);
  const len = dv.getUint32(ref - 1, true);
  return new TextDecoder().decode(s.subarray(ref + 3, ref + 3 + len));
}

interface ActionOffsets { size: number; kind: number; flags: number; argError: number; argSig: number; argIndex: number; argValue: number; rateLimitMs: number; scope: number; strRef: number }
const actionOffsetCache = new WeakMap<Engine, ActionOffsets>();

function actionOffsets(e: Engine): ActionOffsets {
  let o = actionOffsetCache.get(e);
  if (o === undefined) {
    const f = (n: string): number => e.num(`ward_action.${n}`);
    o = {
      size: e.num("sizeof.ward_action"), kind: f("kind"), flags: f("flags"), argError: f("arg_error"), argSig: f("arg_sig"),
      argIndex: f("arg_index"), argValue: f("arg_value"), rateLimitMs: f("rate_limit_ms"), scope: f("rate_limit_scope"), strRef: f("str_ref"),
    };
    actionOffsetCache.set(e, o);
  }
  return o;
}

/** One struct ward_action at `off` in `bytes`, decoded. */
export function decodeAction(compiled: CompiledPolicy, bytes: Uint8Array, off: number): ActionRecord {
  return decodeActionAt(actionOffsets(getEngine()), compiled, new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), off);
}

function decodeActionAt(o: ActionOffsets, compiled: CompiledPolicy, dv: DataView, off: number): ActionRecord {
  const code = dv.getUint32(off + o.kind, true);
  const flags = dv.getUint32(off + o.flags, true);
  const scope = dv.getUint32(off + o.scope, true);
  const strRef = dv.getUint32(off + o.strRef, true);
  const action = ACTION_BY_CODE[code];
  if (action === undefined) throw new EngineError(`unknown action code ${code} in tables`);
  const rec: ActionRecord = {
    action, code,
    argIndex: dv.getUint32(off + o.argIndex, true),
    argValue: dv.getUint32(off + o.argValue, true),
    rateLimitMs: Number(dv.getBigUint64(off + o.rateLimitMs, true)),
    rateLimitScope: scope === 1 ? "process" : scope === 2 ? "global" : "thread",
    kernelStackTrace: (flags & 1) !== 0,
    userStackTrace: (flags & 2) !== 0,
    imaHash: (flags & 4) !== 0,
    monitorOnly: (flags & 8) !== 0,
  };
  if (flags & 16) rec.argError = dv.getInt32(off + o.argError, true);
  if (flags & 32) rec.argSig = dv.getUint32(off + o.argSig, true);
  if (strRef !== 0) {
    const s = tableString(compiled, strRef);
    if (action === "GetUrl") rec.argUrl = s;
    if (action === "DnsLookup") rec.argFqdn = s;
  }
  return rec;
}

// Tables loaded into an engine instance, per compiled policy (a new instance after a trap
// starts empty, so handles are kept per instance).
const loadedBy = new Map<Engine, WeakMap<CompiledPolicy, number>>();
const releaser = new FinalizationRegistry<{ e: Engine; h: number }>(({ e, h }) => { if (loadedBy.has(e)) e.unload(h); });

function handleFor(e: Engine, compiled: CompiledPolicy): number {
  let m = loadedBy.get(e);
  if (m === undefined) { m = new WeakMap(); loadedBy.set(e, m); }
  let h = m.get(compiled);
  if (h === undefined) {
    h = e.load(compiled.blob);
    m.set(compiled, h);
    releaser.register(compiled, { e, h });
  }
  return h;
}

/** Evaluates one event at hook hookIndex (CompiledHook.index) with the engine's userspace
 * evaluator over the compiled tables. Stateless: rate limits are not applied here. */
export function evaluate(compiled: CompiledPolicy, hookIndex: number, event: EngineEvent): Decision {
  return decodeDecision(compiled, evaluateRaw(compiled, hookIndex, encodeEvent(event)));
}

/** evaluate() on a pre-encoded event (encodeEvent), for hot loops that reuse one event.
 * The result is a view into engine memory, valid until the next engine call: decode it
 * (decodeDecision) or copy it before calling the engine again. */
export function evaluateRaw(compiled: CompiledPolicy, hookIndex: number, encodedEvent: Uint8Array): Uint8Array {
  return guarded((e) => e.evaluate(handleFor(e, compiled), hookIndex, encodedEvent));
}

export { encodeEvent };

export function decodeDecision(compiled: CompiledPolicy, out: Uint8Array): Decision {
  const o = actionOffsets(getEngine());
  const asz = o.size;
  const dv = new DataView(out.buffer, out.byteOffset, out.byteLength);
  const sel = dv.getInt32(0, true);
  const flags = dv.getUint32(4, true);
  let off = 8;
  const na = dv.getUint32(off, true);
  off += 4;
  const actions: ActionRecord[] = [];
  for (let i = 0; i < na; i++, off += asz) actions.push(decodeActionAt(o, compiled, dv, off));
  const nr = dv.getUint32(off, true);
  off += 4;
  const returnActions: ActionRecord[] = [];
  for (let i = 0; i < nr; i++, off += asz) returnActions.push(decodeActionAt(o, compiled, dv, off));
  const matched = (flags & 1) !== 0;
  return {
    matched,
    selector: sel >= 0 ? sel : null,
    actions,
    post: matched && !actions.some((a) => a.action === "NoPost"),
    returnMatched: (flags & 2) !== 0,
    returnActions,
  };
}
