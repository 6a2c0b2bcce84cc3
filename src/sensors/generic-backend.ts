// The generic hook sensor (generic.ts) behind the policy manager's GenericHooks: compiles a
// policy with set ids that do not collide with the policies already applied, turns each
// resolved hook (resolve.ts) into the sensor's attach + argument sources (syscall arguments
// from pt_regs, tracefs fields by index per the event's format file), and turns the
// sensor's records into matches with typed arguments for the event encoder.
import { readFileSync, readlinkSync } from "node:fs";
import { tracefsRoot } from "../bpf/perf.ts";
import type { HookArg } from "../events/kprobe-event.ts";
import { compilePolicy, hostSyscallNumber, seedBinaryId } from "../policy/engine.ts";
import type { KProbeArg, TracingPolicy } from "../policy/types.ts";
import { GenericSensor, isLsmHookName, syscallHook, uprobeHook, type ArgObject, type ArgSource, type GenericArg, type GenericEvent, type GenericPinnedPolicy, type ResolvedHook as GenericHook } from "./generic.ts";
import { CAPABILITY_NAMES } from "../policy/values.ts";
import { sockNames } from "./sock-backend.ts";
import type { GenericHooks, GenericMatch } from "./manager.ts";
import { LSM_GENERIC, type ResolvedHook } from "./resolve.ts";
import { LazySensorBackend } from "./lazy-backend.ts";
import { ADDRESS_FAMILIES } from "../policy/values.ts";
import { formatAddr } from "./sock.ts";

export class TracepointFormatError extends Error {
  override name = "TracepointFormatError";
}

export interface FormatField {
  /** Position in the format's field list, common_* fields included (Tetragon's args[].index). */
  index: number;
  decl: string;
  name: string;
  offset: number;
  size: number;
  signed: boolean;
}

/** The fields of a tracefs event's format file, in order. */
export function parseFormat(text: string): FormatField[] {
  const out: FormatField[] = [];
  for (const line of text.split("\n")) {
    const m = /^\s*field:(.+?);\s*offset:(\d+);\s*size:(\d+);\s*signed:(\d+);/.exec(line);
    if (!m) continue;
    const decl = m[1]!.trim();
    const name = /([A-Za-z_]\w*)\s*(?:\[[^\]]*\])?$/.exec(decl)?.[1] ?? decl;
    out.push({ index: out.length, decl, name, offset: Number(m[2]), size: Number(m[3]), signed: m[4] === "1" });
  }
  return out;
}

export function readFormat(category: string, event: string): FormatField[] {
  const path = `${tracefsRoot()}/events/${category}/${event}/format`;
  try {
    return parseFormat(readFileSync(path, "utf8"));
  } catch (e) {
    throw new TracepointFormatError(`read ${path}: ${(e as Error).message}`);
  }
}

/** Where the kernel reads a tracepoint argument declared at format index `index` (with the policy's type). */
export function fieldSource(fields: readonly FormatField[], index: number, category: string, declType?: string): ArgSource {
  const f = fields[index];
  if (f === undefined) throw new TracepointFormatError(`tracepoint argument index ${index} is past the format's ${fields.length} fields`);
  if (f.decl.startsWith("__data_loc")) return { from: "tp-dataloc", offset: f.offset };
  // char comm[16] and friends: the bytes are in the record itself.
  if (/^(?:unsigned\s+)?char\s+\w+\[\d+\]$/.test(f.decl)) return { from: "tp-array", offset: f.offset };
  if (f.size !== 1 && f.size !== 2 && f.size !== 4 && f.size !== 8) throw new TracepointFormatError(`tracepoint field ${f.name} has size ${f.size}: only 1, 2, 4 and 8 byte fields are read`);
  // Pointer fields of the syscalls/ events point into the caller's memory.
  const user = category === "syscalls" && f.decl.includes("*");
  const fd = declType === "fd";
  const iovec = declType === "char_iovec";
  return { from: "tp-field", offset: f.offset, size: f.size, ...(f.signed ? { signed: true } : {}), ...(user ? { user: true } : {}), ...(fd ? { fd } : {}), ...(iovec ? { iovec } : {}) };
}

const FILE_TYPES = new Set(["file", "fd", "path"]);

/** The generic sensor's hooks for a resolved generic hook of a compiled policy (several for a syscall list). */
function toGenericHooks(compiledHooks: ReturnType<typeof compilePolicy>, h: ResolvedHook, args: readonly KProbeArg[]): GenericHook[] {
  const attaches = h.generic ?? [];
  if (attaches.length === 0) throw new TracepointFormatError(`${h.path}: not a generic hook`);
  return attaches.map((a) => {
    if (a.kind === "kprobe") return kprobeHook(compiledHooks, h, a, args);
    if (a.kind === "syscall") {
      // Slot i reads args[i]; the declared types tell char_iovec from char_buf.
      const types = args.map((x) => x.type);
      if (a.syscall === "*") return syscallHook(compiledHooks, h.index, "all", a.withExit === true ? true : undefined, types);
      const nr = a.syscall !== undefined ? hostSyscallNumber(a.syscall) : undefined;
      if (nr === undefined) throw new TracepointFormatError(`${h.path}: no syscall number for ${a.syscall ?? h.name} on this host`);
      const base = syscallHook(compiledHooks, h.index, nr, a.withExit === true ? true : undefined, types);
      if (a.openedFd !== true) return base;
      // security_file_open's substitute: the file/fd/path slots read the opened file from the
      // returned fd, and only a returned fd of a real open is evaluated.
      const sources = base.sources.map((src, i) => (src !== undefined && FILE_TYPES.has(types[i] ?? "") ? { from: "return" as const, fd: true } : src));
      return { ...base, sources, atReturn: true, openedFd: true };
    }
    if (a.kind === "uprobe") {
      if (a.uprobe === undefined) throw new TracepointFormatError(`${h.path}: uprobe attach without targets`);
      return uprobeHook(compiledHooks, h.index, a.uprobe.path, a.uprobe.targets.map((t) => ({ symbol: t.symbol, offset: BigInt(t.offset) })));
    }
    if (a.kind === "lsm") return lsmHook(h, a.event, args);
    return tracepointHook(h, a, args);
  });
}

/** The kernel object a pointer argument of this declared type is, for the kprobe program. */
function objectOf(type: string): ArgObject | undefined {
  if (type === "sock" || type === "socket" || type === "skb" || type === "cred") return type;
  return undefined;
}

/**
 * A kernel-function hook: slot i reads the function's argument args[i].index from its
 * registers (a syscall wrapper's: from the user pt_regs, as at sys_enter), slot 5 the
 * return value (kretprobe).
 */
function kprobeHook(compiled: ReturnType<typeof compilePolicy>, h: ResolvedHook, a: NonNullable<ResolvedHook["generic"]>[number], args: readonly KProbeArg[]): GenericHook {
  const types = args.map((x) => x.type);
  const base = syscallHook(compiled, h.index, 0, a.withExit === true ? true : undefined, types);
  const sources: (ArgSource | undefined)[] = base.sources.map((src, i) => {
    if (src === undefined || src.from !== "syscall-arg" || a.syscallAbi === true) return src;
    const t = types[i] ?? "";
    const obj = objectOf(t);
    return { from: "func-arg", index: src.index, ...(obj !== undefined ? { obj } : {}), ...(t === "fd" ? { fd: true } : {}) };
  });
  return {
    index: h.index,
    attach: { kind: "kprobe", symbols: [...(a.symbols ?? [])], syscall: a.syscallAbi === true, override: a.override === true },
    sources,
    ...(a.withExit === true ? { atReturn: true } : {}),
  };
}

/** A BPF LSM hook: slot i reads the hook's argument args[i].index as its prototype says (resolve.ts LSM_GENERIC). */
function lsmHook(h: ResolvedHook, hook: string, args: readonly KProbeArg[]): GenericHook {
  const roles = LSM_GENERIC[hook];
  if (roles === undefined || !isLsmHookName(hook)) throw new TracepointFormatError(`${h.path}: the generic sensor has no BPF LSM program for ${hook}`);
  const sources: (ArgSource | undefined)[] = args.map((x) => {
    const r = roles[x.index];
    if (r === undefined || r.role === "unread") return undefined;
    if (r.role === "int") return { from: "lsm-arg", index: x.index, size: r.size ?? 8, ...(r.signed ? { signed: true } : {}) };
    if (r.role === "task") return { from: "lsm-arg", index: x.index, size: 4, taskTgid: true };
    if (r.role === "dentry") return { from: "lsm-arg", index: x.index, size: 8, ...(r.dentryOf !== undefined ? { dentryOf: r.dentryOf } : {}) };
    return { from: "lsm-arg", index: x.index, size: 8 };
  });
  return { index: h.index, attach: { kind: "lsm", hook }, sources };
}

function tracepointHook(h: ResolvedHook, a: NonNullable<ResolvedHook["generic"]>[number], args: readonly KProbeArg[]): GenericHook {
  if (a.raw) throw new TracepointFormatError(`${h.path}: raw tracepoints are not attached by the generic sensor (use the tracefs tracepoint ${a.subsystem}/${a.event})`);
  const fields = readFormat(a.subsystem, a.event);
  const sources: (ArgSource | undefined)[] = args.map((x) => fieldSource(fields, x.index, a.subsystem, x.type));
  return { index: h.index, attach: { kind: "tracepoint", category: a.subsystem, name: a.event }, sources };
}

let syscallNames: Map<number, string> | undefined;

/** x86_64 syscall name by number, from the host's headers (for events of list and raw hooks). */
function syscallNameOf(nr: number): string | undefined {
  if (syscallNames === undefined) {
    syscallNames = new Map();
    for (const p of ["/usr/include/x86_64-linux-gnu/asm/unistd_64.h", "/usr/include/asm/unistd_64.h"]) {
      let text: string;
      try {
        text = readFileSync(p, "utf8");
      } catch {
        continue;
      }
      for (const m of text.matchAll(/^#define __NR_(\w+)\s+(\d+)/gm)) syscallNames.set(Number(m[2]), m[1]!);
      break;
    }
  }
  return syscallNames.get(nr);
}

function hookArgs(policy: TracingPolicy, h: ResolvedHook): KProbeArg[] {
  const m = /^spec\.(kprobes|tracepoints|uprobes|lsmhooks)\[(\d+)\]$/.exec(h.path);
  if (!m) return [];
  const i = Number(m[2]);
  const spec = m[1] === "kprobes" ? policy.spec.kprobes[i] : m[1] === "uprobes" ? policy.spec.uprobes[i] : m[1] === "lsmhooks" ? policy.spec.lsmhooks[i] : policy.spec.tracepoints[i];
  return spec?.args ?? [];
}

function returnArg(policy: TracingPolicy, h: ResolvedHook): KProbeArg | undefined {
  const m = /^spec\.kprobes\[(\d+)\]$/.exec(h.path);
  return m ? policy.spec.kprobes[Number(m[1])]?.returnArg : undefined;
}

const td = new TextDecoder();

/** "-rw-r--r--" from i_mode, as Tetragon prints file permissions; "" when there is no mode. */
export function permissionString(mode: number): string {
  if (mode === 0) return "";
  const kinds: Record<number, string> = { 0o140000: "s", 0o120000: "l", 0o100000: "-", 0o060000: "b", 0o040000: "d", 0o020000: "c", 0o010000: "p" };
  let out = kinds[mode & 0o170000] ?? "?";
  const rwx = "rwxrwxrwx";
  for (let i = 0; i < 9; i++) out += mode & (1 << (8 - i)) ? rwx[i] : "-";
  return out;
}

function capNames(mask: bigint): string[] {
  const out: string[] = [];
  CAPABILITY_NAMES.forEach((n, i) => {
    if (mask & (1n << BigInt(i))) out.push(n);
  });
  return out;
}

const SECUREBITS = ["SecBitNoRoot", "SecBitNoRootLocked", "SecBitNoSetUidFixup", "SecBitNoSetUidFixupLocked", "SecBitKeepCaps", "SecBitKeepCapsLocked", "SecBitNoCapAmbientRaise", "SecBitNoCapAmbientRaiseLocked"];

let hostUserNs: number | undefined;
function hostUserNsInum(): number {
  if (hostUserNs === undefined) {
    try {
      hostUserNs = Number(/\[(\d+)\]/.exec(readlinkSync("/proc/1/ns/user"))?.[1] ?? 0);
    } catch {
      hostUserNs = 0;
    }
  }
  return hostUserNs;
}

/** A sock/skb/cred record as its Tetragon variant (sock_arg, skb_arg, process_credentials_arg). */
function objectArg(o: NonNullable<GenericArg["object"]>, label: { label?: string }): HookArg {
  if (o.kind === "sock") {
    return {
      kind: "sock", family: sockNames.family(o.family), type: sockNames.type(o.type), protocol: sockNames.protocol(o.protocol),
      saddr: o.saddr, daddr: o.daddr, sport: o.sport, dport: o.dport, cookie: o.cookie, state: sockNames.state(o.state), ...label,
    };
  }
  if (o.kind === "skb") {
    return {
      kind: "skb", hash: o.hash, len: o.len, priority: o.priority, mark: o.mark, saddr: o.saddr, daddr: o.daddr, sport: o.sport, dport: o.dport,
      proto: o.proto, secPathLen: o.secPathLen, protocol: `0x${o.protocol.toString(16).padStart(4, "0")}`, family: o.family ? sockNames.family(o.family) : "", ...label,
    };
  }
  return {
    kind: "process_credentials", uid: o.uid, gid: o.gid, euid: o.euid, egid: o.egid, suid: o.suid, sgid: o.sgid, fsuid: o.fsuid, fsgid: o.fsgid,
    securebits: SECUREBITS.filter((_, i) => (o.securebits & (1 << i)) !== 0),
    caps: { permitted: capNames(o.capPermitted), effective: capNames(o.capEffective), inheritable: capNames(o.capInheritable) },
    userNs: { level: o.userns.level, uid: o.userns.uid, gid: o.userns.gid, inum: o.userns.inum, isHost: o.userns.inum !== 0 && o.userns.inum === hostUserNsInum() },
    ...label,
  };
}

const FAMILY_NAMES = new Map(Object.entries(ADDRESS_FAMILIES).map(([k, v]) => [v, k] as const).reverse());

/** A sockaddr's bytes (family, then the in/in6 port and address in network order) as Tetragon's sockaddr_arg. */
export function sockaddrArg(b: Uint8Array): Extract<HookArg, { kind: "sockaddr" }> {
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const family = b.length >= 2 ? dv.getUint16(0, true) : 0;
  const inet = family === 2 || family === 10;
  const port = inet && b.length >= 4 ? dv.getUint16(2, false) : 0;
  const addr = family === 2 ? formatAddr(2, b.subarray(4, 8)) : family === 10 ? formatAddr(10, b.subarray(8, 24)) : "";
  return { kind: "sockaddr", family: FAMILY_NAMES.get(family) ?? String(family), addr, port };
}

/** One record argument as its Tetragon variant, by the type the policy declared. */
export function typedArg(a: GenericArg, decl: KProbeArg | undefined): HookArg {
  const label = decl?.label ? { label: decl.label } : {};
  const t = decl?.type ?? "auto";
  if (a.object !== undefined) return objectArg(a.object, label);
  if ((a.type === "file" || a.type === "path") && (a.state === "bytes" || a.state === "truncated")) {
    // fd/file/path: the resolved path, and i_mode in `int` for the permission string.
    const b = a.bytes ?? new Uint8Array();
    const nul = b.indexOf(0);
    const path = td.decode(nul < 0 ? b : b.subarray(0, nul));
    const perm = permissionString(Number(a.int));
    return { kind: a.type === "path" ? "path" : "file", path, ...(perm ? { permission: perm } : {}), ...label };
  }
  if (t === "sockaddr" && a.state === "bytes") return { ...sockaddrArg(a.bytes ?? new Uint8Array()), ...label };
  if (a.state === "bytes" || a.state === "truncated") {
    const b = a.bytes ?? new Uint8Array();
    if (t === "char_buf" || t === "char_iovec" || t === "const_buf") return { kind: "bytes", value: b, ...label };
    const nul = b.indexOf(0);
    return { kind: "string", value: td.decode(nul < 0 ? b : b.subarray(0, nul)), ...label };
  }
  if (a.state === "error") return { kind: "string", value: "", ...label };
  const v = a.int;
  switch (t) {
    case "uint8": case "uint16": case "uint32":
      return { kind: "uint", value: Number(BigInt.asUintN(32, v)), ...label };
    case "size_t": case "uint64": case "ulong":
      return { kind: "size", value: BigInt.asUintN(64, v), ...label };
    case "long": case "int64": case "sint64":
      return { kind: "long", value: BigInt.asIntN(64, v), ...label };
    case "syscall64": {
      const n = Number(BigInt.asUintN(32, v));
      return { kind: "syscall_id", id: n & 0x7fffffff, abi: n & 0x80000000 ? "i386" : "x64", ...label };
    }
    default:
      return { kind: "int", value: Number(BigInt.asIntN(32, v)), ...label };
  }
}

/**
 * GenericHooks over one shared GenericSensor, created and loaded when the first policy needs
 * it (its maps cost memory, and most agents run file rules only).
 */
export class GenericBackend extends LazySensorBackend<GenericSensor, GenericEvent> implements GenericHooks {
  apply(policyId: string, policy: TracingPolicy, hooks: readonly ResolvedHook[], mode: "enforce" | "monitor", scope = 0): void {
    const sensor = this.loaded();
    const compiled = compilePolicy(policy, { mode, setIdBase: sensor.nextSetIdBase() });
    const gh = hooks.flatMap((h) => toGenericHooks(compiled, h, hookArgs(policy, h)));
    sensor.apply(policyId, compiled, gh, { scope });
    this.applied(policyId, policy, hooks);
  }

  /** The policy's entries as the pin manifest keeps them (GenericPinnedPolicy). */
  exportPolicy(policyId: string): GenericPinnedPolicy {
    return this.loaded().exportPolicy(policyId);
  }

  /**
   * Takes over a policy a previous agent applied and pinned (the sensor loads from the pins,
   * GenericSensorOptions.adoptFrom): its binary ids join the process-wide interner first, so
   * policies compiled from now on agree with the pinned maps.
   */
  adopt(policyId: string, policy: TracingPolicy, hooks: readonly ResolvedHook[], saved: unknown): void {
    const st = saved as GenericPinnedPolicy;
    const sensor = this.loaded();
    for (const b of st.binPaths) seedBinaryId(b.path, b.id);
    sensor.adoptPolicy(policyId, st);
    this.applied(policyId, policy, hooks);
  }

  /** Removes a pinned policy no one adopts: taken over under a private id, then removed. */
  dropPinned(saved: unknown): void {
    const sensor = this.loaded();
    const id = `pinned#${++this.#dropped}`;
    sensor.adoptPolicy(id, saved as GenericPinnedPolicy);
    sensor.remove(id);
  }

  #dropped = 0;

  pin(dir: string): void {
    this.loaded().pin(dir);
  }

  unpin(): void {
    this.sensor?.unpin();
  }

  dropUnusedLinks(): void {
    this.loaded().dropUnusedLinks();
  }

  protected dispatch(e: GenericEvent): void {
    {
      const p = this.policies.get(e.policyId);
      const hook = p?.hooks.get(e.hookIndex);
      if (p === undefined || hook === undefined) return;
      const declared = hookArgs(p.policy, hook);
      const args: HookArg[] = [];
      let ret: HookArg | undefined;
      for (const a of e.args) {
        if (a.slot === 5) ret = typedArg(a, returnArg(p.policy, hook));
        else if (a.slot < declared.length) args.push(typedArg(a, declared[a.slot]));
      }
      const enforcing = e.actions.find((x) => x !== "Post" && x !== "NoPost");
      // A list hook reports the syscall that was called, as Tetragon's one-kprobe-per-entry does.
      const called = e.function !== undefined ? undefined : hook.name.startsWith("list:") ? syscallNameOf(e.syscall) : undefined;
      const m: GenericMatch = {
        policyId: e.policyId,
        hook,
        ...(called !== undefined ? { functionName: `__x64_sys_${called}` } : {}),
        ...(e.function !== undefined && e.function !== "" ? { functionName: e.function } : {}),
        pid: e.pid,
        tgid: e.tgid,
        time: e.ktime,
        args,
        ...(ret !== undefined && e.atReturn ? { ret } : {}),
        action: e.monitor ? "Post" : (enforcing ?? e.actions[0] ?? "Post"),
        ...(e.uprobe !== undefined ? { uprobe: e.uprobe } : {}),
      };
      this.emit(m);
    }
  }
}
