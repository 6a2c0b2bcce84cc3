// CollectionSpec (pure, from the ELF) -> Collection (kernel objects), in the order that works
// (loader.md §4.9): object BTF, maps (inner first, contents, freeze .rodata, pins), then
// programs (CO-RE, link, attach_btf_id, func/line info). Any failure closes what was made.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Btf, BtfKind, fixupBtfForLoad, loadKernelBtf } from "./btf.ts";
import { loadBtf } from "./btf-load.ts";
import { CoreReloKind, encodeFuncInfo, encodeLineInfo } from "./btf-ext.ts";
import { AttachType, MapType, ProgType } from "./constants.ts";
import { CoreTarget, type CoreFixup } from "./core.ts";
import { parseElf, type CollectionMapSpec, type ObjectSpec, type ProgramSpec } from "./elf.ts";
import type { Fd } from "./fd.ts";
import { attachCgroup, attachKprobe, attachRawTracepoint, attachTracepoint, attachTracing, attachUprobe, type Link } from "./link.ts";
import { linkProgram } from "./linker.ts";
import { BpfMap, type MapSpec } from "./map.ts";
import { BpfProgram, VerifierError } from "./program.ts";
import { CORE_POISON_IMM } from "./insn.ts";

/** The pure description of an object: edit maps/variables before newCollection. */
export type CollectionSpec = ObjectSpec;

/** A spec or its use does not fit together (unknown program, incompatible pin, bad attach target). */
export class CollectionError extends Error {
  override name = "CollectionError";
}

/** Parse an object from bytes or a file path. */
export function loadCollectionSpec(source: Uint8Array | string, name?: string): CollectionSpec {
  if (typeof source === "string") {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(source);
    } catch (e) {
      throw new CollectionError(`read bpf object ${source}: ${(e as Error).message}`);
    }
    return parseElf(bytes, name ?? source);
  }
  return parseElf(source, name);
}

export interface CollectionOptions {
  /** bpffs directory for maps with `pinning: by-name` (LIBBPF_PIN_BY_NAME). */
  pinDir?: string;
  /** Target BTF for CO-RE and attach targets (default: the running kernel's). */
  kernelBtf?: Btf;
  /** Use these already-open maps instead of creating ones with the same name (not closed by the collection). */
  replaceMaps?: Record<string, BpfMap>;
  /** Load only these programs (default: every program whose section has no leading "?"). */
  programs?: string[];
}

export class Collection {
  readonly maps: Record<string, BpfMap>;
  readonly programs: Record<string, BpfProgram>;
  /** CO-RE results per program (for diagnostics). */
  readonly coreFixups: Record<string, CoreFixup[]>;
  readonly #owned: { close(): void }[];

  constructor(maps: Record<string, BpfMap>, programs: Record<string, BpfProgram>, coreFixups: Record<string, CoreFixup[]>, owned: { close(): void }[]) {
    this.maps = maps;
    this.programs = programs;
    this.coreFixups = coreFixups;
    this.#owned = owned;
  }

  /** Close programs and maps made by this collection (replaced maps stay open). Idempotent. */
  close(): void {
    closeAll(this.#owned);
  }
}

function closeAll(objs: { close(): void }[]): void {
  for (const o of objs.splice(0).reverse()) {
    try {
      o.close();
    } catch {
      // Closing is best effort: one failure must not leak the rest.
    }
  }
}

function needsKernelBtf(spec: CollectionSpec, progs: ProgramSpec[]): boolean {
  for (const p of progs) {
    if (p.type === ProgType.TRACING || p.type === ProgType.LSM || p.type === ProgType.EXT) return true;
    if (Object.values(p.functions).some((f) => f.coreRelos.length > 0)) return true;
  }
  return false;
}

/** attach_btf_id for tracing/LSM programs (libbpf btf_get_kernel_prefix_kind). */
export function resolveAttachBtfId(prog: ProgramSpec, kernel: Btf): number | undefined {
  if (prog.type === ProgType.EXT) throw new CollectionError(`load program ${prog.name}: freplace programs (target in another BPF program) are not supported`);
  if (prog.type !== ProgType.TRACING && prog.type !== ProgType.LSM) return undefined;
  if (prog.attachTo === "") throw new CollectionError(`load program ${prog.name}: section ${prog.section} names no attach target`);
  let name = prog.attachTo;
  let kind = BtfKind.Func;
  switch (prog.expectedAttachType) {
    case AttachType.TRACE_RAW_TP:
      name = `btf_trace_${name}`;
      kind = BtfKind.Typedef;
      break;
    case AttachType.LSM_MAC:
    case AttachType.LSM_CGROUP:
      name = `bpf_lsm_${name}`;
      break;
    case AttachType.TRACE_ITER:
      name = `bpf_iter_${name}`;
      break;
    default:
      if (name.includes(":")) throw new CollectionError(`load program ${prog.name}: module BTF targets (${name}) are not supported`);
  }
  const ids = kernel.findByName(name, kind);
  if (ids.length === 0) throw new CollectionError(`load program ${prog.name}: attach target ${name} (${BtfKind[kind]}) not found in kernel BTF`);
  return ids[0]!;
}

function mapsCompatible(want: MapSpec, have: MapSpec): string | undefined {
  const fields: (keyof MapSpec)[] = ["type", "keySize", "valueSize", "maxEntries"];
  for (const f of fields) if (want[f] !== have[f]) return `${f} ${String(have[f])} != ${String(want[f])}`;
  // The kernel adds no flags of its own to what we pass, so flags must match exactly.
  if ((want.flags ?? 0) !== (have.flags ?? 0)) return `flags ${have.flags ?? 0} != ${want.flags ?? 0}`;
  return undefined;
}

function u32le(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

/** Explain poisoned CO-RE relocations when the verifier trips over one. */
function explainPoison(e: VerifierError, fixups: CoreFixup[]): VerifierError {
  const poisoned = fixups.filter((f) => f.poisoned);
  if (poisoned.length === 0 || !e.log.some((l) => l.includes(String(CORE_POISON_IMM)))) return e;
  const lines = poisoned.map((f) => `ward: CO-RE relocation ${CoreReloKind[f.kind]} ${f.spec} at insn ${f.insn} failed: ${f.reason ?? "unresolved"}`);
  return new VerifierError(e.program, e.errno, [...e.log, ...lines], e.truncated);
}

/**
 * Create the maps and load the programs of `spec`. Maps first (inner templates before outer,
 * contents written, .rodata frozen, pinned maps reused when compatible), then programs.
 */
export function newCollection(spec: CollectionSpec, opts: CollectionOptions = {}): Collection {
  const owned: { close(): void }[] = [];
  const maps: Record<string, BpfMap> = {};
  const programs: Record<string, BpfProgram> = {};
  const coreFixups: Record<string, CoreFixup[]> = {};
  let btfFd: Fd | undefined;
  try {
    const wanted = opts.programs ?? Object.values(spec.programs).filter((p) => p.autoload).map((p) => p.name);
    const progSpecs = wanted.map((n) => {
      const p = spec.programs[n];
      if (!p) throw new CollectionError(`load program ${n}: no such program in ${spec.name} (have: ${Object.keys(spec.programs).join(", ")})`);
      return p;
    });
    const kernel = needsKernelBtf(spec, progSpecs) ? (opts.kernelBtf ?? loadKernelBtf()) : undefined;
    const core = kernel ? new CoreTarget(kernel) : undefined;

    if (spec.btf) {
      const fixed = fixupBtfForLoad(spec.btf, spec.datasecLayout);
      try {
        btfFd = loadBtf(fixed.encode());
      } catch (e) {
        throw withPrefix(e, `load btf of ${spec.name}`);
      }
    }

    // Maps: plain ones first so map-in-map slots can refer to them.
    const order = Object.values(spec.maps).sort((a, b) => Number(isMapInMap(a)) - Number(isMapInMap(b)));
    for (const m of order) {
      const replaced = opts.replaceMaps?.[m.name];
      if (replaced) {
        const why = mapsCompatible(m, replaced.spec);
        if (why) throw new CollectionError(`replace map ${m.name}: incompatible (${why})`);
        maps[m.name] = replaced;
        continue;
      }
      const pinPath = m.pinning === "by-name" && opts.pinDir !== undefined ? join(opts.pinDir, m.name) : undefined;
      if (pinPath !== undefined && existsSync(pinPath)) {
        const pinned = BpfMap.fromPin(pinPath);
        owned.push(pinned);
        const why = mapsCompatible(m, pinned.spec);
        if (why) throw new CollectionError(`reuse pinned map ${m.name} at ${pinPath}: incompatible (${why})`);
        // A reused map keeps its contents: that is the point of pinning.
        maps[m.name] = pinned;
        continue;
      }
      const map = createMap(m, btfFd);
      owned.push(map);
      maps[m.name] = map;
      try {
        for (const entry of m.contents ?? []) map.update(entry.key, entry.value);
        for (const [slot, ref] of Object.entries(m.initialRefs ?? {})) {
          const target = maps[ref];
          if (target === undefined) {
            if (spec.programs[ref] && m.type === MapType.PROG_ARRAY) continue; // filled after program load
            throw new CollectionError(`map ${m.name}: slot ${slot} refers to ${ref}, which was not created`);
          }
          map.update(u32le(Number(slot)), u32le(target.fd.raw));
        }
        if (m.freeze) map.freeze();
        if (pinPath !== undefined) map.pin(pinPath);
      } catch (e) {
        throw withPrefix(e, `initialize map ${m.name}`);
      }
    }

    for (const p of progSpecs) {
      const linked = linkProgram(p, {
        mapFd: (n) => {
          const m = maps[n];
          if (!m) throw new CollectionError(`map ${n} was not created`);
          return m.fd.raw;
        },
        btf: spec.btf,
        core,
      });
      coreFixups[p.name] = linked.coreFixups;
      const attachBtfId = kernel ? resolveAttachBtfId(p, kernel) : undefined;
      const withBtf = btfFd !== undefined && linked.funcInfo.length > 0;
      let prog: BpfProgram;
      try {
        prog = BpfProgram.load({
          name: p.name,
          type: p.type,
          expectedAttachType: p.expectedAttachType,
          insns: linked.insns,
          license: p.license,
          attachBtfId,
          btfFd: withBtf ? btfFd!.raw : undefined,
          funcInfo: withBtf ? encodeFuncInfo(linked.funcInfo) : undefined,
          funcInfoCnt: withBtf ? linked.funcInfo.length : undefined,
          lineInfo: withBtf && linked.lineInfo.length > 0 ? encodeLineInfo(linked.lineInfo) : undefined,
          lineInfoCnt: withBtf ? linked.lineInfo.length : undefined,
          kernVersion: p.kernVersion,
          flags: p.flags,
        });
      } catch (e) {
        if (e instanceof VerifierError) throw explainPoison(e, linked.coreFixups);
        throw e;
      }
      owned.push(prog);
      programs[p.name] = prog;
    }

    // Program arrays initialized from `.values = { [i] = &prog }`.
    for (const m of Object.values(spec.maps)) {
      if (m.type !== MapType.PROG_ARRAY || opts.replaceMaps?.[m.name]) continue;
      for (const [slot, ref] of Object.entries(m.initialRefs ?? {})) {
        const prog = programs[ref];
        if (prog) maps[m.name]!.update(u32le(Number(slot)), u32le(prog.fd.raw));
      }
    }
  } catch (e) {
    closeAll(owned);
    throw e;
  } finally {
    // Maps and programs hold their own references to the BTF object.
    btfFd?.close();
  }
  return new Collection(maps, programs, coreFixups, owned);
}

function isMapInMap(m: CollectionMapSpec): boolean {
  return m.type === MapType.ARRAY_OF_MAPS || m.type === MapType.HASH_OF_MAPS;
}

/** MAP_CREATE with the object's BTF; retried without BTF (as libbpf does) when the kernel refuses it. */
function createMap(m: CollectionMapSpec, btfFd: Fd | undefined): BpfMap {
  const base: MapSpec = { ...m };
  delete (base as Partial<CollectionMapSpec>).contents;
  const hasBtf = btfFd !== undefined && m.btfValueTypeId !== undefined;
  if (hasBtf) {
    try {
      return BpfMap.create({ ...base, btfFd: btfFd.raw });
    } catch {
      // Fall through: some map types or kernels refuse BTF ids; the map works without them.
    }
  }
  const plain: MapSpec = { ...base };
  delete plain.btfFd;
  delete plain.btfKeyTypeId;
  delete plain.btfValueTypeId;
  return BpfMap.create(plain);
}

function withPrefix(e: unknown, prefix: string): unknown {
  if (e instanceof Error && !e.message.startsWith(prefix)) {
    e.message = `${prefix}: ${e.message}`;
  }
  return e;
}

export interface AttachOptions {
  /** cgroup v2 directory (or fd) for cgroup/* programs. */
  cgroup?: string | number | Fd;
  /** Override the target taken from the section (tracepoint "cat/name", raw tp name, symbol). */
  target?: string;
  /** uprobe: only this process. */
  pid?: number;
  /** uprobe symbol resolution (see link.ts attachUprobe). */
  resolveSymbol?: (path: string, sym: string) => bigint;
  cookie?: bigint;
}

const CGROUP_TYPES = new Set([
  ProgType.CGROUP_SKB,
  ProgType.CGROUP_SOCK,
  ProgType.CGROUP_SOCK_ADDR,
  ProgType.CGROUP_DEVICE,
  ProgType.CGROUP_SYSCTL,
  ProgType.CGROUP_SOCKOPT,
  ProgType.SOCK_OPS,
]);

/** Attach a loaded program the way its section says. */
export function attachProgram(prog: BpfProgram, spec: ProgramSpec, opts: AttachOptions = {}): Link {
  const target = opts.target ?? spec.attachTo;
  const section = spec.section.replace(/^\?/, "");
  const cookie = opts.cookie !== undefined ? { cookie: opts.cookie } : {};
  switch (spec.type) {
    case ProgType.TRACING:
    case ProgType.LSM:
      return attachTracing(prog, { attachType: spec.expectedAttachType, ...cookie });
    case ProgType.RAW_TRACEPOINT:
    case ProgType.RAW_TRACEPOINT_WRITABLE:
      if (target === "") throw new CollectionError(`attach program ${spec.name}: section ${section} names no raw tracepoint`);
      return attachRawTracepoint(prog, target, cookie);
    case ProgType.TRACEPOINT: {
      const slash = target.indexOf("/");
      if (slash <= 0 || slash === target.length - 1) throw new CollectionError(`attach program ${spec.name}: tracepoint target "${target}" is not category/name`);
      return attachTracepoint(prog, target.slice(0, slash), target.slice(slash + 1), cookie);
    }
    case ProgType.KPROBE: {
      const retprobe = /^(kretprobe|uretprobe|kretsyscall)/.test(section);
      if (section.startsWith("uprobe") || section.startsWith("uretprobe")) {
        // uprobe/PATH:FUNC[+OFF] or uprobe/PATH:OFFSET
        const colon = target.lastIndexOf(":");
        if (colon <= 0) throw new CollectionError(`attach program ${spec.name}: uprobe target "${target}" is not PATH:FUNC or PATH:OFFSET`);
        const path = target.slice(0, colon);
        const what = target.slice(colon + 1);
        const where: string | bigint = /^(0x[0-9a-f]+|\d+)$/i.test(what) ? BigInt(what) : what;
        return attachUprobe(prog, path, where, { retprobe, pid: opts.pid, resolveSymbol: opts.resolveSymbol, ...cookie });
      }
      if (section.startsWith("kprobe.multi") || section.startsWith("kretprobe.multi") || section.startsWith("ksyscall") || section.startsWith("kretsyscall"))
        throw new CollectionError(`attach program ${spec.name}: ${section} attachment is not supported`);
      const m = /^([^+]+)(?:\+(0x[0-9a-f]+|\d+))?$/i.exec(target);
      if (!m) throw new CollectionError(`attach program ${spec.name}: kprobe target "${target}" is not SYMBOL[+OFFSET]`);
      return attachKprobe(prog, m[1]!, { retprobe, offset: m[2] !== undefined ? BigInt(m[2]) : undefined, ...cookie });
    }
    default:
      if (CGROUP_TYPES.has(spec.type)) {
        if (opts.cgroup === undefined) throw new CollectionError(`attach program ${spec.name}: ${section} needs a cgroup (opts.cgroup)`);
        return attachCgroup(prog, opts.cgroup, spec.expectedAttachType ?? AttachType.CGROUP_INET_INGRESS);
      }
      throw new CollectionError(`attach program ${spec.name}: section ${section} (${ProgType[spec.type] ?? spec.type}) cannot be attached by attachProgram`);
  }
}
