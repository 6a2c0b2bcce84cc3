// ELF reader for clang BPF objects (loader.md §4): sections, symbols, relocations, programs
// by SEC() name, BTF-defined maps, global data. Pure: bytes in, an ObjectSpec out.
import { BTF_VAR_GLOBAL_EXTERN, Btf, BtfKind, type BtfType, type DatasecLayout } from "./btf.ts";
import { parseBtfExt, type BtfExt, type CoreReloRecord, type FuncInfoRecord, type LineInfoRecord } from "./btf-ext.ts";
import { AttachType, MapFlags, MapType, ProgFlags, ProgType } from "./constants.ts";
import { INSN_SIZE, Insns, PSEUDO_CALL, PSEUDO_FUNC } from "./insn.ts";
import type { MapSpec } from "./map.ts";

/** The object is not something we can load; the message names the object and the problem. */
export class ElfError extends Error {
  override name = "ElfError";
  readonly object: string;
  constructor(object: string, message: string) {
    super(`${object}: ${message}`);
    this.object = object;
  }
}

// ---- public spec types ---------------------------------------------------------------

/** Why an instruction needs patching at load time. `insn` is an index within its function. */
export type Relocation =
  | { insn: number; kind: "map"; map: string }
  | { insn: number; kind: "data"; map: string; offset: number }
  | { insn: number; kind: "call"; target: string }
  | { insn: number; kind: "func"; target: string }
  | { insn: number; kind: "extern"; symbol: string };

/** One function of a program section or of .text. Ext-info offsets are instruction indices within it. */
export interface FunctionSpec {
  name: string;
  section: string;
  insns: Uint8Array;
  relocations: Relocation[];
  funcInfo: FuncInfoRecord[];
  lineInfo: LineInfoRecord[];
  coreRelos: CoreReloRecord[];
}

export interface ProgramSpec extends FunctionSpec {
  type: ProgType;
  /** Passed at PROG_LOAD when defined (tracing, LSM, cgroup sock_addr ... need it). */
  expectedAttachType: AttachType | undefined;
  /** The SEC() part after the prefix: "sched_process_exec", "syscalls/sys_enter_openat", "" if none. */
  attachTo: string;
  /** PROG_LOAD prog_flags (BPF_F_SLEEPABLE for ".s" sections). */
  flags: number;
  /** False for "?sec" programs: loaded only when asked for by name. */
  autoload: boolean;
  license: string;
  kernVersion: number;
  /** Every function of the object by name, for the linker (shared by all programs of an object). */
  functions: Record<string, FunctionSpec>;
}

export interface MapEntry {
  key: Uint8Array;
  value: Uint8Array;
}

export interface CollectionMapSpec extends MapSpec {
  innerMap?: CollectionMapSpec;
  /** Entries written right after MAP_CREATE (global data: key 0 = the section image). */
  contents?: MapEntry[];
  /** Map-in-map / prog-array slots from `.values = {...}`: index -> map or program name. */
  initialRefs?: Record<number, string>;
  /** Set for global data maps (".rodata", ".data", ".bss", ...). */
  dataSection?: string;
  /** Freeze after writing contents (.rodata), so the verifier can treat it as constant. */
  freeze?: boolean;
}

/** A global variable in a data section; .rodata ones are the knobs to set before load. */
export class VariableSpec {
  readonly name: string;
  readonly section: string;
  readonly offset: number;
  readonly size: number;
  /** BTF type id of the variable's type in the object BTF (0 without BTF). */
  readonly typeId: number;
  private readonly image: Uint8Array;

  constructor(name: string, section: string, offset: number, size: number, typeId: number, image: Uint8Array) {
    this.name = name;
    this.section = section;
    this.offset = offset;
    this.size = size;
    this.typeId = typeId;
    this.image = image;
  }

  get constant(): boolean {
    return this.section.startsWith(".rodata");
  }

  /** Current bytes (a copy). */
  get(): Uint8Array {
    return this.image.slice(this.offset, this.offset + this.size);
  }

  /**
   * Set the initial value. Numbers/bigints are written little endian in the variable's size
   * (1, 2, 4 or 8 bytes); byte arrays must have exactly the variable's size.
   */
  set(value: Uint8Array | number | bigint | boolean): void {
    let bytes: Uint8Array;
    if (value instanceof Uint8Array) {
      bytes = value;
    } else {
      const n = typeof value === "boolean" ? (value ? 1n : 0n) : BigInt(value);
      if (![1, 2, 4, 8].includes(this.size)) throw new RangeError(`set variable ${this.name}: a ${this.size}-byte variable needs a byte array`);
      const bits = BigInt(this.size * 8);
      if (n < -(1n << (bits - 1n)) || n >= 1n << bits) throw new RangeError(`set variable ${this.name}: ${n} does not fit in ${this.size} bytes`);
      bytes = new Uint8Array(this.size);
      let u = BigInt.asUintN(this.size * 8, n);
      for (let i = 0; i < this.size; i++, u >>= 8n) bytes[i] = Number(u & 0xffn);
    }
    if (bytes.length !== this.size) throw new RangeError(`set variable ${this.name}: got ${bytes.length} bytes, want ${this.size}`);
    this.image.set(bytes, this.offset);
  }
}

export interface ObjectSpec {
  name: string;
  license: string;
  kernVersion: number;
  programs: Record<string, ProgramSpec>;
  maps: Record<string, CollectionMapSpec>;
  variables: Record<string, VariableSpec>;
  btf: Btf | undefined;
  btfExt: BtfExt | undefined;
  /** Section sizes and symbol offsets for the DATASEC fix-ups before BTF_LOAD. */
  datasecLayout: DatasecLayout;
}

// ---- section name table (libbpf section_defs subset) ---------------------------------

interface SecDef {
  prefix: string;
  type: ProgType;
  attach?: AttachType;
  flags?: number;
}
const S = ProgFlags.SLEEPABLE;
// Order matters: the first match wins, so longer prefixes come first.
const SECTION_DEFS: SecDef[] = [
  { prefix: "socket", type: ProgType.SOCKET_FILTER },
  { prefix: "sk_reuseport/migrate", type: ProgType.SK_REUSEPORT, attach: AttachType.SK_REUSEPORT_SELECT_OR_MIGRATE },
  { prefix: "sk_reuseport", type: ProgType.SK_REUSEPORT, attach: AttachType.SK_REUSEPORT_SELECT },
  { prefix: "kprobe.multi", type: ProgType.KPROBE, attach: AttachType.TRACE_KPROBE_MULTI },
  { prefix: "kretprobe.multi", type: ProgType.KPROBE, attach: AttachType.TRACE_KPROBE_MULTI },
  { prefix: "kprobe", type: ProgType.KPROBE },
  { prefix: "kretprobe", type: ProgType.KPROBE },
  { prefix: "ksyscall", type: ProgType.KPROBE },
  { prefix: "kretsyscall", type: ProgType.KPROBE },
  { prefix: "uprobe.s", type: ProgType.KPROBE, flags: S },
  { prefix: "uprobe", type: ProgType.KPROBE },
  { prefix: "uretprobe.s", type: ProgType.KPROBE, flags: S },
  { prefix: "uretprobe", type: ProgType.KPROBE },
  { prefix: "tc", type: ProgType.SCHED_CLS },
  { prefix: "classifier", type: ProgType.SCHED_CLS },
  { prefix: "action", type: ProgType.SCHED_ACT },
  { prefix: "tracepoint", type: ProgType.TRACEPOINT },
  { prefix: "tp", type: ProgType.TRACEPOINT },
  { prefix: "raw_tracepoint.w", type: ProgType.RAW_TRACEPOINT_WRITABLE },
  { prefix: "raw_tp.w", type: ProgType.RAW_TRACEPOINT_WRITABLE },
  { prefix: "raw_tracepoint", type: ProgType.RAW_TRACEPOINT },
  { prefix: "raw_tp", type: ProgType.RAW_TRACEPOINT },
  { prefix: "tp_btf", type: ProgType.TRACING, attach: AttachType.TRACE_RAW_TP },
  { prefix: "fentry.s", type: ProgType.TRACING, attach: AttachType.TRACE_FENTRY, flags: S },
  { prefix: "fentry", type: ProgType.TRACING, attach: AttachType.TRACE_FENTRY },
  { prefix: "fexit.s", type: ProgType.TRACING, attach: AttachType.TRACE_FEXIT, flags: S },
  { prefix: "fexit", type: ProgType.TRACING, attach: AttachType.TRACE_FEXIT },
  { prefix: "fmod_ret.s", type: ProgType.TRACING, attach: AttachType.MODIFY_RETURN, flags: S },
  { prefix: "fmod_ret", type: ProgType.TRACING, attach: AttachType.MODIFY_RETURN },
  { prefix: "freplace", type: ProgType.EXT },
  { prefix: "lsm.s", type: ProgType.LSM, attach: AttachType.LSM_MAC, flags: S },
  { prefix: "lsm", type: ProgType.LSM, attach: AttachType.LSM_MAC },
  { prefix: "lsm_cgroup", type: ProgType.LSM, attach: AttachType.LSM_CGROUP },
  { prefix: "iter.s", type: ProgType.TRACING, attach: AttachType.TRACE_ITER, flags: S },
  { prefix: "iter", type: ProgType.TRACING, attach: AttachType.TRACE_ITER },
  { prefix: "syscall", type: ProgType.SYSCALL, flags: S },
  { prefix: "xdp.frags/devmap", type: ProgType.XDP, attach: AttachType.XDP_DEVMAP },
  { prefix: "xdp/devmap", type: ProgType.XDP, attach: AttachType.XDP_DEVMAP },
  { prefix: "xdp.frags/cpumap", type: ProgType.XDP, attach: AttachType.XDP_CPUMAP },
  { prefix: "xdp/cpumap", type: ProgType.XDP, attach: AttachType.XDP_CPUMAP },
  { prefix: "xdp.frags", type: ProgType.XDP, attach: AttachType.XDP },
  { prefix: "xdp", type: ProgType.XDP, attach: AttachType.XDP },
  { prefix: "perf_event", type: ProgType.PERF_EVENT },
  { prefix: "lwt_in", type: ProgType.LWT_IN },
  { prefix: "lwt_out", type: ProgType.LWT_OUT },
  { prefix: "lwt_xmit", type: ProgType.LWT_XMIT },
  { prefix: "lwt_seg6local", type: ProgType.LWT_SEG6LOCAL },
  { prefix: "sockops", type: ProgType.SOCK_OPS, attach: AttachType.CGROUP_SOCK_OPS },
  { prefix: "sk_skb/stream_parser", type: ProgType.SK_SKB, attach: AttachType.SK_SKB_STREAM_PARSER },
  { prefix: "sk_skb/stream_verdict", type: ProgType.SK_SKB, attach: AttachType.SK_SKB_STREAM_VERDICT },
  { prefix: "sk_skb", type: ProgType.SK_SKB },
  { prefix: "sk_msg", type: ProgType.SK_MSG, attach: AttachType.SK_MSG_VERDICT },
  { prefix: "lirc_mode2", type: ProgType.LIRC_MODE2, attach: AttachType.LIRC_MODE2 },
  { prefix: "flow_dissector", type: ProgType.FLOW_DISSECTOR, attach: AttachType.FLOW_DISSECTOR },
  { prefix: "cgroup_skb/ingress", type: ProgType.CGROUP_SKB, attach: AttachType.CGROUP_INET_INGRESS },
  { prefix: "cgroup_skb/egress", type: ProgType.CGROUP_SKB, attach: AttachType.CGROUP_INET_EGRESS },
  { prefix: "cgroup/skb", type: ProgType.CGROUP_SKB },
  { prefix: "cgroup/sock_create", type: ProgType.CGROUP_SOCK, attach: AttachType.CGROUP_INET_SOCK_CREATE },
  { prefix: "cgroup/sock_release", type: ProgType.CGROUP_SOCK, attach: AttachType.CGROUP_INET_SOCK_RELEASE },
  { prefix: "cgroup/sock", type: ProgType.CGROUP_SOCK, attach: AttachType.CGROUP_INET_SOCK_CREATE },
  { prefix: "cgroup/post_bind4", type: ProgType.CGROUP_SOCK, attach: AttachType.CGROUP_INET4_POST_BIND },
  { prefix: "cgroup/post_bind6", type: ProgType.CGROUP_SOCK, attach: AttachType.CGROUP_INET6_POST_BIND },
  { prefix: "cgroup/bind4", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_INET4_BIND },
  { prefix: "cgroup/bind6", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_INET6_BIND },
  { prefix: "cgroup/connect4", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_INET4_CONNECT },
  { prefix: "cgroup/connect6", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_INET6_CONNECT },
  { prefix: "cgroup/connect_unix", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_UNIX_CONNECT },
  { prefix: "cgroup/sendmsg4", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_UDP4_SENDMSG },
  { prefix: "cgroup/sendmsg6", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_UDP6_SENDMSG },
  { prefix: "cgroup/sendmsg_unix", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_UNIX_SENDMSG },
  { prefix: "cgroup/recvmsg4", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_UDP4_RECVMSG },
  { prefix: "cgroup/recvmsg6", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_UDP6_RECVMSG },
  { prefix: "cgroup/recvmsg_unix", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_UNIX_RECVMSG },
  { prefix: "cgroup/getpeername4", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_INET4_GETPEERNAME },
  { prefix: "cgroup/getpeername6", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_INET6_GETPEERNAME },
  { prefix: "cgroup/getsockname4", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_INET4_GETSOCKNAME },
  { prefix: "cgroup/getsockname6", type: ProgType.CGROUP_SOCK_ADDR, attach: AttachType.CGROUP_INET6_GETSOCKNAME },
  { prefix: "cgroup/sysctl", type: ProgType.CGROUP_SYSCTL, attach: AttachType.CGROUP_SYSCTL },
  { prefix: "cgroup/getsockopt", type: ProgType.CGROUP_SOCKOPT, attach: AttachType.CGROUP_GETSOCKOPT },
  { prefix: "cgroup/setsockopt", type: ProgType.CGROUP_SOCKOPT, attach: AttachType.CGROUP_SETSOCKOPT },
  { prefix: "cgroup/dev", type: ProgType.CGROUP_DEVICE, attach: AttachType.CGROUP_DEVICE },
  { prefix: "sk_lookup", type: ProgType.SK_LOOKUP, attach: AttachType.SK_LOOKUP },
  { prefix: "netfilter", type: ProgType.NETFILTER, attach: AttachType.NETFILTER },
];

export interface SectionClass {
  type: ProgType;
  expectedAttachType: AttachType | undefined;
  attachTo: string;
  flags: number;
  autoload: boolean;
}

/**
 * Program type etc. for a SEC() name, or undefined when unknown. A name matches a prefix when
 * it equals it or continues with "/" (the rest is the attach target). A leading "?" means
 * "do not load unless asked for".
 */
export function classifySection(section: string): SectionClass | undefined {
  const autoload = !section.startsWith("?");
  const name = autoload ? section : section.slice(1);
  for (const d of SECTION_DEFS) {
    if (name === d.prefix || name.startsWith(d.prefix + "/")) {
      return {
        type: d.type,
        expectedAttachType: d.attach,
        attachTo: name.length > d.prefix.length ? name.slice(d.prefix.length + 1) : "",
        flags: d.flags ?? 0,
        autoload,
      };
    }
  }
  return undefined;
}

// ---- raw ELF structures --------------------------------------------------------------

const SHT_PROGBITS = 1;
const SHT_SYMTAB = 2;
const SHT_NOBITS = 8;
const SHT_REL = 9;
const SHF_EXECINSTR = 4;
const STT_NOTYPE = 0;
const STT_OBJECT = 1;
const STT_FUNC = 2;
const STT_SECTION = 3;
const STB_LOCAL = 0;
const EM_BPF = 247;
const LIBBPF_PIN_BY_NAME = 1;
const MAX_NOBITS = 1 << 28;

interface Section {
  index: number;
  name: string;
  type: number;
  flags: number;
  offset: number;
  size: number;
  link: number;
  info: number;
  entsize: number;
}
interface Symbol {
  name: string;
  bind: number;
  type: number;
  visibility: number;
  shndx: number;
  value: number;
  size: number;
}

const decoder = new TextDecoder();

function cstr(bytes: Uint8Array, off: number): string {
  let end = off;
  while (end < bytes.length && bytes[end] !== 0) end++;
  return decoder.decode(bytes.subarray(off, end));
}

function isDataSection(name: string): boolean {
  return name === ".bss" || name === ".data" || name === ".rodata" || /^\.(data|rodata|bss)\./.test(name);
}

class Reader {
  readonly obj: string;
  readonly bytes: Uint8Array;
  readonly dv: DataView;
  sections: Section[] = [];
  symbols: Symbol[] = [];

  constructor(bytes: Uint8Array, obj: string) {
    this.obj = obj;
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  fail(msg: string): never {
    throw new ElfError(this.obj, msg);
  }

  header(): void {
    const b = this.bytes;
    if (b.length < 64 || b[0] !== 0x7f || b[1] !== 0x45 || b[2] !== 0x4c || b[3] !== 0x46) this.fail("not an ELF file");
    if (b[4] !== 2) this.fail(`ELF class ${b[4]} is not ELF64`);
    if (b[5] !== 1) this.fail(b[5] === 2 ? "big-endian ELF is not supported" : `bad ELF data encoding ${b[5]}`);
    const machine = this.dv.getUint16(18, true);
    if (machine !== EM_BPF && machine !== 0) this.fail(`e_machine ${machine} is not BPF`);
    const shoff = Number(this.dv.getBigUint64(0x28, true));
    const shentsize = this.dv.getUint16(0x3a, true);
    const shnum = this.dv.getUint16(0x3c, true);
    const shstrndx = this.dv.getUint16(0x3e, true);
    if (shentsize !== 64) this.fail(`section header size ${shentsize}, want 64`);
    if (shoff + shnum * 64 > b.length) this.fail(`truncated: section headers end at ${shoff + shnum * 64}, file has ${b.length} bytes`);
    const raw: Omit<Section, "name">[] = [];
    const nameOffs: number[] = [];
    for (let i = 0; i < shnum; i++) {
      const o = shoff + i * 64;
      nameOffs.push(this.dv.getUint32(o, true));
      raw.push({
        index: i,
        type: this.dv.getUint32(o + 4, true),
        flags: Number(this.dv.getBigUint64(o + 8, true)),
        offset: Number(this.dv.getBigUint64(o + 24, true)),
        size: Number(this.dv.getBigUint64(o + 32, true)),
        link: this.dv.getUint32(o + 40, true),
        info: this.dv.getUint32(o + 44, true),
        entsize: Number(this.dv.getBigUint64(o + 56, true)),
      });
    }
    const shstr = raw[shstrndx];
    if (!shstr) this.fail(`section name table index ${shstrndx} out of range`);
    if (shstr.offset + shstr.size > b.length) this.fail("truncated section name table");
    const names = b.subarray(shstr.offset, shstr.offset + shstr.size);
    this.sections = raw.map((s, i) => ({ ...s, name: cstr(names, nameOffs[i]!) }));
  }

  data(s: Section): Uint8Array {
    // .bss occupies no file bytes, so its size is not bounded by the file; a corrupted header
    // must not make us allocate gigabytes. Map values are far below this anyway.
    if (s.type === SHT_NOBITS) {
      if (s.size > MAX_NOBITS) this.fail(`section ${s.name} claims ${s.size} bytes of zeroed data`);
      return new Uint8Array(s.size);
    }
    if (s.offset + s.size > this.bytes.length) this.fail(`truncated section ${s.name} (needs bytes ${s.offset}..${s.offset + s.size}, file has ${this.bytes.length})`);
    return this.bytes.subarray(s.offset, s.offset + s.size);
  }

  readSymbols(): void {
    const symtab = this.sections.find((s) => s.type === SHT_SYMTAB);
    if (!symtab) this.fail("no symbol table");
    const strtab = this.sections[symtab.link];
    if (!strtab) this.fail("symbol table has no string table");
    const strs = this.data(strtab);
    const d = this.data(symtab);
    const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
    for (let o = 0; o + 24 <= d.length; o += 24) {
      const info = dv.getUint8(o + 4);
      this.symbols.push({
        name: cstr(strs, dv.getUint32(o, true)),
        bind: info >>> 4,
        type: info & 0xf,
        visibility: dv.getUint8(o + 5) & 3,
        shndx: dv.getUint16(o + 6, true),
        value: Number(dv.getBigUint64(o + 8, true)),
        size: Number(dv.getBigUint64(o + 16, true)),
      });
    }
  }

  /** Relocation entries for section `target` as {offset, symbol}. */
  relocsFor(target: Section): { offset: number; type: number; sym: Symbol }[] {
    const out: { offset: number; type: number; sym: Symbol }[] = [];
    for (const s of this.sections) {
      if (s.type !== SHT_REL || s.info !== target.index) continue;
      const d = this.data(s);
      const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
      for (let o = 0; o + 16 <= d.length; o += 16) {
        const info = dv.getBigUint64(o + 8, true);
        const symIdx = Number(info >> 32n);
        const sym = this.symbols[symIdx];
        if (!sym) this.fail(`relocation in ${s.name} refers to symbol ${symIdx}, which does not exist`);
        out.push({ offset: Number(dv.getBigUint64(o, true)), type: Number(info & 0xffffffffn), sym });
      }
    }
    return out;
  }
}

// ---- BTF map definitions -------------------------------------------------------------

interface MapDefFields {
  type?: number;
  keySize?: number;
  valueSize?: number;
  keyTypeId?: number;
  valueTypeId?: number;
  maxEntries?: number;
  flags?: number;
  numaNode?: number;
  mapExtra?: bigint;
  pinning?: number;
  /** Offset of the `values` member in bytes, and its inner definition (struct id) if any. */
  valuesOffset?: number;
  innerDef?: number;
}

function readMapDef(btf: Btf, structId: number, what: string, fail: (m: string) => never): MapDefFields {
  const st = btf.type(btf.skipModsAndTypedefs(structId));
  if (st.kind !== BtfKind.Struct) fail(`map ${what}: definition is ${BtfKind[st.kind]}, want a struct`);
  const out: MapDefFields = {};
  // __uint(name, N) is `int (*name)[N]`; __ulong is an enum with one value.
  const uint = (m: { name: string; type: number }): bigint => {
    const t = btf.type(btf.skipModsAndTypedefs(m.type));
    if (t.kind === BtfKind.Ptr) {
      const arr = btf.type(btf.skipModsAndTypedefs(t.type));
      if (arr.kind === BtfKind.Array) return BigInt(arr.nelems);
    }
    if ((t.kind === BtfKind.Enum || t.kind === BtfKind.Enum64) && t.values.length === 1) return t.values[0]!.value;
    return fail(`map ${what}: member ${m.name} is not a __uint/__ulong`);
  };
  const pointee = (m: { name: string; type: number }): number => {
    const t = btf.type(btf.skipModsAndTypedefs(m.type));
    if (t.kind !== BtfKind.Ptr) fail(`map ${what}: member ${m.name} is not a __type() pointer`);
    return t.type;
  };
  for (const m of st.members) {
    switch (m.name) {
      case "type":
        out.type = Number(uint(m));
        break;
      case "max_entries":
        out.maxEntries = Number(uint(m));
        break;
      case "map_flags":
        out.flags = Number(uint(m));
        break;
      case "numa_node":
        out.numaNode = Number(uint(m));
        break;
      case "map_extra":
        out.mapExtra = uint(m);
        break;
      case "pinning":
        out.pinning = Number(uint(m));
        break;
      case "key_size":
        out.keySize = Number(uint(m));
        break;
      case "value_size":
        out.valueSize = Number(uint(m));
        break;
      case "key": {
        const id = pointee(m);
        out.keyTypeId = id;
        out.keySize = btf.sizeOf(id);
        break;
      }
      case "value": {
        const id = pointee(m);
        out.valueTypeId = id;
        out.valueSize = btf.sizeOf(id);
        break;
      }
      case "values": {
        const arr = btf.type(btf.skipModsAndTypedefs(m.type));
        if (arr.kind !== BtfKind.Array) fail(`map ${what}: values is not an array`);
        const elem = btf.type(btf.skipModsAndTypedefs(arr.elemType));
        if (elem.kind !== BtfKind.Ptr) fail(`map ${what}: values is not an array of pointers`);
        const target = btf.type(btf.skipModsAndTypedefs(elem.type));
        if (target.kind === BtfKind.Struct) out.innerDef = target.id;
        else if (target.kind !== BtfKind.FuncProto) fail(`map ${what}: values points to ${BtfKind[target.kind]}`);
        out.valuesOffset = m.bitOffset / 8;
        out.valueSize = 4;
        break;
      }
      default:
        fail(`map ${what}: unknown map definition member ${m.name}`);
    }
  }
  return out;
}

/** Map types whose MAP_CREATE rejects BTF key/value ids (loader.md §4.6). */
const NO_BTF_KV = new Set<MapType>([
  MapType.PERF_EVENT_ARRAY,
  MapType.CGROUP_ARRAY,
  MapType.STACK_TRACE,
  MapType.ARRAY_OF_MAPS,
  MapType.HASH_OF_MAPS,
  MapType.DEVMAP,
  MapType.DEVMAP_HASH,
  MapType.CPUMAP,
  MapType.XSKMAP,
  MapType.SOCKMAP,
  MapType.SOCKHASH,
  MapType.QUEUE,
  MapType.STACK,
  MapType.ARENA,
  MapType.RINGBUF,
  MapType.USER_RINGBUF,
  MapType.PROG_ARRAY,
]);

function mapSpecFromDef(name: string, def: MapDefFields, fail: (m: string) => never): CollectionMapSpec {
  if (def.type === undefined) fail(`map ${name}: no type`);
  const type = def.type as MapType;
  const spec: CollectionMapSpec = {
    name,
    type,
    keySize: def.keySize ?? 0,
    valueSize: def.valueSize ?? 0,
    maxEntries: def.maxEntries ?? 0,
    flags: def.flags ?? 0,
    pinning: def.pinning === LIBBPF_PIN_BY_NAME ? "by-name" : "none",
  };
  if (def.pinning !== undefined && def.pinning > LIBBPF_PIN_BY_NAME) fail(`map ${name}: unsupported pinning ${def.pinning}`);
  if (def.mapExtra !== undefined) spec.mapExtra = def.mapExtra;
  if (!NO_BTF_KV.has(type) && def.valueTypeId !== undefined) {
    spec.btfKeyTypeId = def.keyTypeId ?? 0;
    spec.btfValueTypeId = def.valueTypeId;
  }
  // Ring buffers and perf arrays take no key/value sizes (BTF types declared anyway are dropped).
  if (type === MapType.RINGBUF || type === MapType.USER_RINGBUF) {
    spec.keySize = 0;
    spec.valueSize = 0;
  }
  if (type === MapType.PERF_EVENT_ARRAY) {
    spec.keySize ||= 4;
    spec.valueSize ||= 4;
  }
  return spec;
}

// ---- the parser ----------------------------------------------------------------------

/** Parse a clang-built BPF object into specs. `name` labels errors (defaults to "object"). */
export function parseElf(bytes: Uint8Array, name = "object"): ObjectSpec {
  const r = new Reader(bytes, name);
  r.header();
  r.readSymbols();
  // Annotated so that TypeScript narrows after calls (never-returning call analysis).
  const fail: (m: string) => never = (m) => r.fail(m);
  const secByName = new Map(r.sections.map((s) => [s.name, s]));

  // license / version
  const licSec = secByName.get("license");
  if (!licSec) fail('missing license section (add: char LICENSE[] SEC("license") = "GPL";)');
  const license = cstr(r.data(licSec), 0);
  if (license === "") fail("license section is empty");
  const verSec = secByName.get("version");
  let kernVersion = 0;
  if (verSec) {
    const d = r.data(verSec);
    if (d.length < 4) fail("version section shorter than 4 bytes");
    kernVersion = new DataView(d.buffer, d.byteOffset, 4).getUint32(0, true);
  }

  // BTF
  let btf: Btf | undefined;
  let btfExt: BtfExt | undefined;
  const btfSec = secByName.get(".BTF");
  if (btfSec) {
    try {
      btf = Btf.parse(r.data(btfSec));
      const extSec = secByName.get(".BTF.ext");
      if (extSec) btfExt = parseBtfExt(r.data(extSec), btf);
    } catch (e) {
      if (e instanceof ElfError) throw e;
      fail(`bad BTF: ${(e as Error).message}`);
    }
  }

  // Maps: BTF-defined (.maps) and legacy (maps*)
  const maps: Record<string, CollectionMapSpec> = {};
  const mapsSec = secByName.get(".maps");
  const mapSyms = (sec: Section): Symbol[] => r.symbols.filter((s) => s.shndx === sec.index && s.type === STT_OBJECT);
  if (mapsSec) {
    if (!btf) fail(".maps section without .BTF (compile with -g)");
    const ds = btf.findByName(".maps", BtfKind.Datasec)[0];
    if (ds === undefined) fail("no DATASEC .maps in BTF");
    const datasec = btf.typeOf(ds, BtfKind.Datasec);
    const syms = new Map(mapSyms(mapsSec).map((s) => [s.name, s]));
    const relos = r.relocsFor(mapsSec);
    for (const v of datasec.vars) {
      const varT = btf.typeOf(v.type, BtfKind.Var);
      const mapName = varT.name;
      if (varT.linkage === BTF_VAR_GLOBAL_EXTERN) continue; // declared only; a use fails below
      const sym = syms.get(mapName);
      if (!sym) fail(`map ${mapName}: no symbol in .maps`);
      if (sym.bind === STB_LOCAL) fail(`map ${mapName}: static map definitions are not supported`);
      const def = readMapDef(btf, varT.type, mapName, fail);
      const spec = mapSpecFromDef(mapName, def, fail);
      if (def.innerDef !== undefined) {
        const inner = readMapDef(btf, def.innerDef, `${mapName}.inner`, fail);
        spec.innerMap = mapSpecFromDef(`${mapName}.inner`, inner, fail);
        spec.innerMap.pinning = "none";
      }
      if (def.valuesOffset !== undefined) {
        const base = sym.value + def.valuesOffset;
        const refs: Record<number, string> = {};
        for (const rel of relos) {
          if (rel.offset < base || rel.offset >= sym.value + sym.size) continue;
          const slot = (rel.offset - base) / 8;
          if (!Number.isInteger(slot)) fail(`map ${mapName}: misaligned values relocation at ${rel.offset}`);
          refs[slot] = rel.sym.name;
        }
        if (Object.keys(refs).length > 0) spec.initialRefs = refs;
      }
      maps[mapName] = spec;
    }
  }
  for (const sec of r.sections) {
    if (sec.name !== "maps" && !sec.name.startsWith("maps/")) continue;
    const d = r.data(sec);
    const dv = new DataView(d.buffer, d.byteOffset, d.byteLength);
    for (const sym of mapSyms(sec)) {
      if (sym.value + 20 > d.length) fail(`legacy map ${sym.name}: definition runs past the section`);
      const u = (i: number): number => dv.getUint32(sym.value + i * 4, true);
      maps[sym.name] = { name: sym.name, type: u(0) as MapType, keySize: u(1), valueSize: u(2), maxEntries: u(3), flags: u(4), pinning: "none" };
    }
  }

  // Global data sections -> single-entry arrays; their symbols -> variables.
  const variables: Record<string, VariableSpec> = {};
  const dataMaps = new Map<number, CollectionMapSpec>();
  for (const sec of r.sections) {
    if (!isDataSection(sec.name) || (sec.type !== SHT_PROGBITS && sec.type !== SHT_NOBITS)) continue;
    if (sec.size === 0) continue;
    const image = new Uint8Array(r.data(sec)); // copy: variables edit it
    const rodata = sec.name.startsWith(".rodata");
    const spec: CollectionMapSpec = {
      name: sec.name,
      type: MapType.ARRAY,
      keySize: 4,
      valueSize: sec.size,
      maxEntries: 1,
      flags: rodata ? MapFlags.RDONLY_PROG : 0,
      pinning: "none",
      contents: [{ key: new Uint8Array(4), value: image }],
      dataSection: sec.name,
      freeze: rodata,
    };
    let datasec: BtfType | undefined;
    const dsId = btf?.findByName(sec.name, BtfKind.Datasec)[0];
    if (btf && dsId !== undefined) {
      spec.btfKeyTypeId = 0;
      spec.btfValueTypeId = dsId;
      datasec = btf.type(dsId);
    }
    maps[sec.name] = spec;
    dataMaps.set(sec.index, spec);
    for (const sym of r.symbols) {
      if (sym.shndx !== sec.index || sym.type !== STT_OBJECT || sym.bind === STB_LOCAL) continue;
      if (sym.value + sym.size > sec.size) fail(`variable ${sym.name} runs past section ${sec.name}`);
      let typeId = 0;
      if (btf && datasec?.kind === BtfKind.Datasec) {
        for (const v of datasec.vars) {
          const vt = btf.type(v.type);
          if (vt.kind === BtfKind.Var && vt.name === sym.name) typeId = vt.type;
        }
      }
      if (variables[sym.name]) fail(`variable ${sym.name} is defined twice`);
      variables[sym.name] = new VariableSpec(sym.name, sec.name, sym.value, sym.size, typeId, image);
    }
  }

  // Functions of every executable section.
  interface Fn {
    spec: FunctionSpec;
    sec: Section;
    start: number; // byte offset in the section
    end: number;
  }
  const fnsBySection = new Map<number, Fn[]>();
  const functions: Record<string, FunctionSpec> = {};
  for (const sec of r.sections) {
    if (sec.type !== SHT_PROGBITS || (sec.flags & SHF_EXECINSTR) === 0 || sec.size === 0) continue;
    if (sec.name !== ".text" && !classifySection(sec.name)) fail(`unknown program section "${sec.name}"`);
    const code = r.data(sec);
    if (code.length % INSN_SIZE !== 0) fail(`section ${sec.name} size ${code.length} is not a multiple of 8`);
    const syms = r.symbols
      .filter((s) => s.shndx === sec.index && (s.type === STT_FUNC || (s.type === STT_NOTYPE && s.bind !== STB_LOCAL)))
      .sort((a, b) => a.value - b.value);
    if (syms.length === 0) fail(`section ${sec.name} has code but no function symbols`);
    const fns: Fn[] = [];
    syms.forEach((s, i) => {
      const next = syms[i + 1]?.value ?? code.length;
      const end = s.size > 0 ? s.value + s.size : next;
      if (s.value % 8 !== 0 || end % 8 !== 0 || end > code.length || end <= s.value) fail(`function ${s.name} in ${sec.name} has bad bounds ${s.value}..${end}`);
      if (functions[s.name]) fail(`function ${s.name} is defined twice`);
      const spec: FunctionSpec = {
        name: s.name,
        section: sec.name,
        insns: code.slice(s.value, end),
        relocations: [],
        funcInfo: [],
        lineInfo: [],
        coreRelos: [],
      };
      functions[s.name] = spec;
      fns.push({ spec, sec, start: s.value, end });
    });
    fnsBySection.set(sec.index, fns);
  }
  const fnAt = (secIdx: number, byteOff: number): Fn | undefined =>
    fnsBySection.get(secIdx)?.find((f) => byteOff >= f.start && byteOff < f.end);
  const fnStartingAt = (secIdx: number, byteOff: number, from: string): string => {
    const f = fnsBySection.get(secIdx)?.find((g) => g.start === byteOff);
    if (!f) fail(`${from}: call target at byte ${byteOff} of section ${r.sections[secIdx]?.name} is not the start of a function`);
    return f.spec.name;
  };

  // Names declared in the .ksyms/.kconfig DATASECs (kfuncs, typed ksyms, kconfig values).
  const externs = new Set<string>();
  for (const secName of [".ksyms", ".kconfig"]) {
    const id = btf?.findByName(secName, BtfKind.Datasec)[0];
    if (btf && id !== undefined) for (const v of btf.typeOf(id, BtfKind.Datasec).vars) externs.add(btf.nameOf(v.type));
  }

  // Relocations of code sections.
  for (const [secIdx, fns] of fnsBySection) {
    const sec = r.sections[secIdx]!;
    const relocated = new Set<number>();
    for (const rel of r.relocsFor(sec)) {
      const fn = fnAt(secIdx, rel.offset);
      if (!fn) fail(`relocation at ${sec.name}+${rel.offset} is outside every function`);
      // A corrupt object can point a relocation between instructions or at the last slot of
      // a function where ld_imm64's second half would be; refuse both before decoding.
      if ((rel.offset - fn.start) % 8 !== 0) fail(`relocation at ${sec.name}+${rel.offset} is not on an instruction boundary`);
      const i = (rel.offset - fn.start) / 8;
      relocated.add(rel.offset);
      const ins = new Insns(fn.spec.insns);
      const where = `${fn.spec.name}+${i}`;
      if (ins.isLdImm64(i) && i + 1 >= ins.length) fail(`${where}: ld_imm64 relocation on the last instruction of the function`);
      const sym = rel.sym;
      if (sym.shndx === 0) {
        // Only .ksyms/.kconfig externs are legitimate; anything else is a declared-but-never-
        // defined map or variable (e.g. an `extern` map in .maps).
        if (!externs.has(sym.name)) {
          if (ins.isLdImm64(i)) fail(`${where}: relocation against map or variable ${sym.name}, which does not exist in the object`);
          fail(`${where}: relocation against undefined symbol ${sym.name}`);
        }
        fn.spec.relocations.push({ insn: i, kind: "extern", symbol: sym.name });
        continue;
      }
      const target = r.sections[sym.shndx];
      if (!target) fail(`${where}: relocation symbol ${sym.name} in section ${sym.shndx}, which does not exist`);
      if (target.name === ".maps" || target.name === "maps" || target.name.startsWith("maps/")) {
        if (!ins.isLdImm64(i)) fail(`${where}: map reference ${sym.name} on an instruction that is not ld_imm64`);
        if (sym.type === STT_SECTION) fail(`${where}: reference to a static map in ${target.name}`);
        if (!maps[sym.name]) fail(`${where}: relocation against map ${sym.name}, which does not exist`);
        fn.spec.relocations.push({ insn: i, kind: "map", map: sym.name });
      } else if (dataMaps.has(target.index)) {
        if (!ins.isLdImm64(i)) fail(`${where}: data reference ${sym.name || target.name} on an instruction that is not ld_imm64`);
        const offset = sym.type === STT_SECTION ? ins.imm(i) : sym.value + ins.imm(i);
        fn.spec.relocations.push({ insn: i, kind: "data", map: target.name, offset });
      } else if (isDataSection(target.name)) {
        fail(`${where}: reference into empty data section ${target.name}`);
      } else if ((target.flags & SHF_EXECINSTR) !== 0) {
        if (ins.isPseudoCall(i)) {
          const byte = sym.value + (ins.imm(i) + 1) * 8;
          fn.spec.relocations.push({ insn: i, kind: "call", target: fnStartingAt(target.index, byte, where) });
        } else if (ins.isLdImm64(i)) {
          const byte = sym.value + ins.imm(i);
          fn.spec.relocations.push({ insn: i, kind: "func", target: fnStartingAt(target.index, byte, where) });
        } else {
          fail(`${where}: relocation against code symbol ${sym.name} on an unsupported instruction`);
        }
      } else {
        fail(`${where}: relocation against ${sym.name || "a symbol"} in unsupported section ${target.name}`);
      }
    }
    // Calls within the section that need no relocation (static callee in the same section).
    for (const fn of fns) {
      const ins = new Insns(fn.spec.insns);
      for (let i = 0; i < ins.length; i++) {
        if (ins.isLdImm64(i)) {
          i++;
          continue;
        }
        if (!ins.isPseudoCall(i) || relocated.has(fn.start + i * 8)) continue;
        const byte = fn.start + (i + ins.imm(i) + 1) * 8;
        fn.spec.relocations.push({ insn: i, kind: "call", target: fnStartingAt(secIdx, byte, `${fn.spec.name}+${i}`) });
      }
      fn.spec.relocations.sort((a, b) => a.insn - b.insn);
    }
    // .BTF.ext records: section-relative bytes -> function-relative instruction indices.
    if (btfExt) {
      const place = <T extends { insnOff: number }>(recs: T[] | undefined, pick: (f: FunctionSpec) => T[]): void => {
        for (const rec of recs ?? []) {
          const fn = fnAt(secIdx, rec.insnOff);
          if (!fn) fail(`.BTF.ext record at ${sec.name}+${rec.insnOff} is outside every function`);
          pick(fn.spec).push({ ...rec, insnOff: (rec.insnOff - fn.start) / 8 });
        }
      };
      place(btfExt.funcInfo.get(sec.name), (f) => f.funcInfo);
      place(btfExt.lineInfo.get(sec.name), (f) => f.lineInfo);
      place(btfExt.coreRelos.get(sec.name), (f) => f.coreRelos);
    }
  }

  // Entry programs: every function of a non-.text code section.
  const programs: Record<string, ProgramSpec> = {};
  for (const [secIdx, fns] of fnsBySection) {
    const sec = r.sections[secIdx]!;
    if (sec.name === ".text") continue;
    const cls = classifySection(sec.name)!;
    for (const fn of fns) {
      const prog: ProgramSpec = Object.assign(fn.spec, {
        type: cls.type,
        expectedAttachType: cls.expectedAttachType,
        attachTo: cls.attachTo,
        flags: cls.flags,
        autoload: cls.autoload,
        license,
        kernVersion,
        functions,
      });
      programs[fn.spec.name] = prog;
    }
  }

  // Check map-in-map references now that all names are known.
  for (const m of Object.values(maps)) {
    for (const [slot, ref] of Object.entries(m.initialRefs ?? {})) {
      if (!maps[ref] && !programs[ref]) fail(`map ${m.name}: slot ${slot} refers to ${ref}, which is neither a map nor a program`);
      if (Number(slot) >= m.maxEntries) fail(`map ${m.name}: slot ${slot} is past max_entries ${m.maxEntries}`);
    }
  }

  const datasecLayout: DatasecLayout = {
    sectionSize: (n) => secByName.get(n)?.size,
    symbolOffset: (secName, varName) => {
      const sec = secByName.get(secName);
      if (!sec) return undefined;
      return r.symbols.find((s) => s.shndx === sec.index && s.name === varName && s.type === STT_OBJECT)?.value;
    },
  };

  return { name, license, kernVersion, programs, maps, variables, btf, btfExt, datasecLayout };
}
