// The socket sensor: loads bpf/sock_addr.c, fills its maps from the engine's compiled tables
// (one CompiledPolicy per policy, several policies sharing the maps with disjoint set ids),
// attaches the cgroup sock_addr programs a policy's hooks need at the root of the cgroup v2
// hierarchy (so every process of the host runs them) and decodes the records of posted
// matches. Selectors and actions run in the kernel; this module writes tables and reads
// results. Hook resolution (resolve.ts) decides which hooks come here and refuses what the
// programs cannot see; check() refuses again, on the compiled tables, anything else.
//
// What the kernel side honors (bpf/sock_addr.c):
// - arguments: sockaddr (the address the caller passed: family, port, address) and
//   sock/socket (the socket before the call; at tcp_connect the address being connected to
//   and state TCP_SYN_SENT). Other argument types are not seen by these hooks.
// - matchers: matchArgs on those (Family, Protocol, State, SAddr/DAddr with CIDR sets in an
//   LPM trie, SPort/DPort ranges or sets, *PortPriv, and their Not* forms) and matchBinaries
//   In/NotIn (the interned binary id of the process map).
// - actions: Post, NoPost, Override (the call fails: EPERM, or argError through
//   bpf_set_retval), Sigkill (bpf_send_signal, and the call is denied too), Signal.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { attachProgram, Collection, loadCollectionSpec, newCollection, type CollectionSpec } from "../bpf/collection.ts";
import type { Btf } from "../bpf/btf.ts";
import { Link } from "../bpf/link.ts";
import { BpfMap } from "../bpf/map.ts";
import { LINK_PIN_PREFIX, MAP_PIN_PREFIX, PROG_PIN_PREFIX, pinMaps, pinName, removePins, unpin } from "../bpf/pin.ts";
import { BpfProgram } from "../bpf/program.ts";
import { readObject } from "../bpf/objects.ts";
import { RingBufReader } from "../bpf/ringbuf.ts";
import { enumValues, structLayout, type StructLayout } from "../events/layout.ts";
import { BinNameRefs, countActiveSlots, countEntries, counterReader, u32Key as u32 } from "./tables.ts";
import type { CompiledPolicy } from "../policy/engine.ts";

export class SockSensorError extends Error {
  override name = "SockSensorError";
}

/** The cgroup sock_addr attach points (enum sock_point). */
export const SOCK_POINTS = ["connect4", "connect6", "sendmsg4", "sendmsg6", "bind4", "bind6"] as const;
export type SockPoint = (typeof SOCK_POINTS)[number];

/** How one compiled hook runs here (from hook resolution). */
export interface SockHookPlan {
  /** CompiledHook.index */
  index: number;
  points: SockPoint[];
  /** tcp_connect: TCP sockets only; the sock argument's peer is the target, state TCP_SYN_SENT */
  tcpConnect?: boolean;
}

export interface SockAddrView {
  family: number;
  port: number;
  /** dotted IPv4 or RFC 5952 IPv6 */
  addr: string;
}

export interface SockView {
  family: number;
  type: number;
  protocol: number;
  state: number;
  sport: number;
  dport: number;
  saddr: string;
  daddr: string;
}

/** One posted match, decoded from struct sock_event. */
export interface SockEvent {
  policyId: string;
  hookIndex: number;
  hookId: number;
  /** matching selector; null when the hook has no selectors */
  selector: number | null;
  point: SockPoint;
  pid: number;
  tgid: number;
  /** bpf_ktime_get_boot_ns() at the match */
  ktime: bigint;
  actions: string[];
  monitor: boolean;
  killed: boolean;
  signaled: boolean;
  /** the call failed with `error` (negative errno) */
  denied: boolean;
  error: number;
  signalErr: number;
  /** the address the caller passed (a sockaddr argument) */
  user: SockAddrView;
  /** the socket as the hook's sock argument sees it */
  sock: SockView;
}

export interface SockCounters {
  calls: bigint;
  matches: bigint;
  posts: bigint;
  ringbufDrops: bigint;
  denies: bigint;
  kills: bigint;
  signals: bigint;
  exempt: bigint;
  monitor: bigint;
  notTaken: bigint;
}

export interface SockSensorOptions {
  /** the process sensor's ward_procs map (matchBinaries); without it binary selectors are refused */
  processMap?: BpfMap;
  /** tgids no policy may act on; this process is always added */
  exemptPids?: number[];
  /** where the programs attach; default the root of the cgroup v2 hierarchy (cgroupV2Root()) */
  cgroup?: string;
  /** object bytes instead of the embedded sock_addr.o (tests) */
  object?: Uint8Array;
  /** the agent's shared workload scope maps (ScopeMaps.replaceMaps()); policies with a scope need them */
  scopeMaps?: { replaceMaps(): Record<string, BpfMap> };
  /**
   * Persistence (--keep-sensors-on-exit): load() takes over the maps, programs and cgroup
   * links a previous agent pinned in this directory (pin()) instead of creating any, so
   * nothing is attached anew and enforcement never pauses.
   */
  adoptFrom?: string;
  /**
   * With adoptFrom: every policy the pins hold (the manifest's). Their slots, policy numbers
   * and set ids stay reserved, and their references on the links held, until each is
   * adopted (adoptPolicy) or removed, so nothing applied meanwhile reuses or detaches them.
   */
  reserve?: readonly SockPinnedPolicy[];
}

/**
 * One applied policy's entries in the shared maps, as the pin manifest keeps them: exactly
 * what remove() takes out again, so a later agent adopts or removes it without recompiling.
 */
export interface SockPinnedPolicy {
  no: number;
  mode: "enforce" | "monitor";
  setIds: { base: number; end: number };
  slots: { slot: number; plan: SockHookPlan }[];
  /** map name and key (base64) of every set entry written */
  written: { map: string; key: string }[];
  /** interned binaries: path and id */
  binPaths: { path: string; id: number }[];
  /** one use of an attach point per hook slot and point (the links' references) */
  points: SockPoint[];
}

/**
 * The root of the cgroup v2 hierarchy as this process's mount namespace shows it, from
 * /proc/self/mountinfo: a cgroup2 mount whose root is "/" (a mount of a subtree, as inside
 * a cgroup namespace, would cover only that subtree). Hybrid hosts have it at
 * /sys/fs/cgroup/unified, most others at /sys/fs/cgroup. Undefined when there is none.
 */
export function cgroupV2Root(mountinfo = "/proc/self/mountinfo"): string | undefined {
  let text: string;
  try {
    text = readFileSync(mountinfo, "utf8");
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superopts
    const dash = line.indexOf(" - ");
    if (dash < 0) continue;
    const left = line.slice(0, dash).split(" ");
    const fstype = line.slice(dash + 3).split(" ")[0];
    if (fstype !== "cgroup2" || left[3] !== "/" || left[4] === undefined) continue;
    return left[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  }
  return undefined;
}

/** Tetragon's KprobeAction numbers, by name. */
const ACTION_NAMES: Readonly<Record<number, string>> = {
  1: "Post", 3: "Sigkill", 5: "Override", 9: "NoPost", 10: "Signal",
};
const ACT = { POST: 1, SIGKILL: 3, OVERRIDE: 5, NOPOST: 9, SIGNAL: 10 } as const;
const MK = { ARG: 1, BINARY: 7 } as const;
const VK_BIN_SET = 8;
const ARG = { SOCK: 13, SOCKADDR: 14 } as const;
const AF_HAS_ERROR = 0x10;
const SLOT_ACTIVE = 1, SLOT_MONITOR = 2, SLOT_TCP_CONNECT = 4;
const EF = { MONITOR: 1, KILLED: 2, SIGNALED: 4, DENIED: 8 } as const;
/** Operators the programs evaluate, by argument type (ward_op). */
const SOCKADDR_OPS = new Set([28, 15, 18, 20, 21, 13, 24]);
const SOCK_OPS = new Set([28, 17, 29, 15, 18, 16, 19, 20, 21, 22, 23, 13, 24, 14, 25]);

/** "127.0.0.1" / "::1" from network-order bytes (family 2 or 10); "" otherwise. */
export function formatAddr(family: number, b: Uint8Array): string {
  if (family === 2) return `${b[0]}.${b[1]}.${b[2]}.${b[3]}`;
  if (family !== 10) return "";
  const g: number[] = [];
  for (let i = 0; i < 8; i++) g.push(((b[2 * i] ?? 0) << 8) | (b[2 * i + 1] ?? 0));
  // ::ffff:a.b.c.d, as Go's net.IP prints a v4-mapped address
  if (g.slice(0, 5).every((x) => x === 0) && g[5] === 0xffff) return `::ffff:${b[12]}.${b[13]}.${b[14]}.${b[15]}`;
  // RFC 5952: the longest run (>1) of zero groups becomes ::
  let best = -1, bestLen = 1;
  for (let i = 0; i < 8;) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = (xs: number[]): string => xs.map((x) => x.toString(16)).join(":");
  if (best < 0) return hex(g);
  return `${hex(g.slice(0, best))}::${hex(g.slice(best + bestLen))}`;
}

interface PolicyState {
  id: string;
  setIds: { base: number; end: number };
  slots: { slot: number; plan: SockHookPlan }[];
  written: { map: string; key: Uint8Array }[];
  binPaths: { path: string; id: number }[];
  /** attach point uses, one per hook slot and point (the programs are refcounted) */
  points: SockPoint[];
  mode: "enforce" | "monitor";
  no: number;
  /** workload scope id every slot carries (sock_slot.scope), 0: every process */
  scope: number;
}

/** The socket hooks: see the module comment. */
export class SockSensor {
  private coll: Collection | undefined;
  private readonly spec: CollectionSpec;
  private readonly btf: Btf;
  private readonly L: Record<"hook" | "selector" | "matcher" | "action" | "argCfg" | "slot" | "event", StructLayout>;
  private readonly counterIdx: Map<string, number>;
  private readonly policies = new Map<string, PolicyState>();
  private readonly freeSlots: number[] = [];
  private readonly links = new Map<SockPoint, { link: Link; refs: number }>();
  private readonly binNames = new BinNameRefs();
  private readonly bySlot = new Map<number, { policy: PolicyState; hookIndex: number }>();
  private reader: RingBufReader | undefined;
  private nextPolicy = 1;
  private readonly listeners = new Set<(e: SockEvent) => void>();
  private loop: Promise<void> | undefined;
  private stopping = false;
  private cgroupPath: string | undefined;
  /** where the maps, programs and links are pinned (pin(), or adopted from), until unpin() */
  private pinDir: string | undefined;
  /** set ids below this may be a reserved pinned policy's (SockSensorOptions.reserve) */
  private reservedSetEnd = 1;
  /** policy numbers of reserved policies not adopted yet (their link references are held) */
  private readonly reserved = new Set<number>();

  constructor(private readonly opts: SockSensorOptions = {}) {
    this.spec = loadCollectionSpec(opts.object ?? readObject("sock_addr"), "sock_addr");
    if (this.spec.btf === undefined) throw new SockSensorError("load socket sensor: sock_addr.o has no BTF (build it with -g)");
    this.btf = this.spec.btf;
    const s = (n: string): StructLayout => structLayout(this.btf, n);
    this.L = {
      hook: s("ward_hook_config"), selector: s("ward_selector"), matcher: s("ward_matcher"), action: s("ward_action"),
      argCfg: s("ward_arg_cfg"), slot: s("sock_slot"), event: s("sock_event"),
    };
    this.counterIdx = enumValues(this.btf, "sock_counter");
    const max = this.spec.maps.sock_hooks?.maxEntries ?? 0;
    for (let i = max - 1; i >= 0; i--) this.freeSlots.push(i);
  }

  private map(name: string): BpfMap {
    const m = this.coll?.maps[name];
    if (m === undefined) throw new SockSensorError(`socket sensor: map ${name} missing (not loaded?)`);
    return m;
  }

  /** Creates the maps and programs (nothing is attached until a policy needs it). */
  load(): void {
    if (this.coll !== undefined) throw new SockSensorError("load socket sensor: already loaded");
    const cg = this.opts.cgroup ?? cgroupV2Root();
    if (cg === undefined) throw new SockSensorError("load socket sensor: no cgroup v2 hierarchy mounted (no cgroup2 mount with root / in /proc/self/mountinfo); the cgroup socket hooks attach at its root");
    this.cgroupPath = cg;
    if (this.opts.adoptFrom !== undefined) {
      this.adopt(this.opts.adoptFrom);
      return;
    }
    const replaceMaps: Record<string, BpfMap> = {};
    if (this.opts.processMap !== undefined) replaceMaps.ward_procs = this.opts.processMap;
    else {
      // No process sensor: binary selectors are refused (check()), so a stub will do.
      const procs = this.spec.maps.ward_procs;
      if (procs !== undefined) procs.maxEntries = 1;
    }
    Object.assign(replaceMaps, this.opts.scopeMaps?.replaceMaps() ?? {});
    this.coll = newCollection(this.spec, { replaceMaps });
    try {
      this.exempt(process.pid);
      for (const p of this.opts.exemptPids ?? []) this.exempt(p);
      this.reader = new RingBufReader(this.map("sock_events"));
    } catch (e) {
      this.close();
      throw e;
    }
  }

  /**
   * load() from pins: every map the object declares is opened from dir/map_<name> (the
   * process map must be the process sensor's), the programs from dir/prog_<name>, and the
   * cgroup links from dir/link_<point>: their attachments are taken over, nothing is
   * attached. Policies come back through adoptPolicy(); links none of them uses go with
   * dropUnusedLinks(). The exempt set is reset to this process and opts.exemptPids.
   */
  private adopt(dir: string): void {
    const maps: Record<string, BpfMap> = {};
    const owned: { close(): void }[] = [];
    try {
      for (const name of Object.keys(this.spec.maps)) {
        const path = join(dir, pinName(MAP_PIN_PREFIX, name));
        if (!existsSync(path)) throw new SockSensorError(`adopt socket sensor: ${path} is missing`);
        const m = BpfMap.fromPin(path);
        owned.push(m);
        maps[name] = m;
      }
      const procs = maps.ward_procs;
      if (this.opts.processMap !== undefined && procs !== undefined && procs.info().id !== this.opts.processMap.info().id) {
        throw new SockSensorError(`adopt socket sensor: its pinned process map (id ${procs.info().id}) is not the process sensor's (id ${this.opts.processMap.info().id}): matchBinaries would read a map nothing updates`);
      }
      const programs: Record<string, BpfProgram> = {};
      for (const name of Object.keys(this.spec.programs)) {
        const path = join(dir, pinName(PROG_PIN_PREFIX, name));
        if (!existsSync(path)) throw new SockSensorError(`adopt socket sensor: ${path} is missing`);
        programs[name] = BpfProgram.fromPin(path);
        owned.push(programs[name]);
      }
      this.coll = new Collection(maps, programs, {}, owned);
      for (const f of readdirSync(dir).sort()) {
        if (!f.startsWith(LINK_PIN_PREFIX)) continue;
        const point = f.slice(LINK_PIN_PREFIX.length) as SockPoint;
        if (!SOCK_POINTS.includes(point)) throw new SockSensorError(`adopt socket sensor: ${join(dir, f)} is not a link this sensor makes`);
        this.links.set(point, { link: Link.fromPin(join(dir, f)), refs: 0 });
      }
      this.pinDir = dir;
      for (const r of this.opts.reserve ?? []) {
        for (const x of r.slots) {
          const i = this.freeSlots.indexOf(x.slot);
          if (i >= 0) this.freeSlots.splice(i, 1);
        }
        this.nextPolicy = Math.max(this.nextPolicy, r.no + 1);
        this.reservedSetEnd = Math.max(this.reservedSetEnd, r.setIds.end);
        this.reserved.add(r.no);
        this.addLinkRefs(r.points);
      }
      const exempt = this.map("sock_exempt");
      for (const k of [...exempt.keys()]) exempt.delete(k);
      this.exempt(process.pid);
      for (const p of this.opts.exemptPids ?? []) this.exempt(p);
      this.reader = new RingBufReader(this.map("sock_events"));
    } catch (e) {
      if (this.coll === undefined) for (const o of owned) o.close();
      this.close({ keepPinned: true });
      throw e;
    }
  }

  private addLinkRefs(points: readonly SockPoint[]): void {
    for (const p of points) {
      const l = this.links.get(p);
      if (l !== undefined) l.refs++;
    }
  }

  /** Pins every map, program and link under dir (on bpffs; created), and the links made from now on. */
  pin(dir: string): void {
    if (this.coll === undefined) throw new SockSensorError("pin socket sensor: not loaded");
    if (this.pinDir === dir) return;
    pinMaps(dir, this.coll.maps);
    for (const [name, p] of Object.entries(this.coll.programs)) p.pin(join(dir, pinName(PROG_PIN_PREFIX, name)));
    this.pinDir = dir;
    for (const [point, l] of this.links) l.link.pin(join(dir, pinName(LINK_PIN_PREFIX, point)));
  }

  /** Removes every pin (what is attached stays attached while this sensor holds it). */
  unpin(): void {
    if (this.pinDir !== undefined) removePins(this.pinDir);
    this.pinDir = undefined;
  }

  /** Where the maps, programs and links are pinned, if they are. */
  get pinnedAt(): string | undefined {
    return this.pinDir;
  }

  /** Kernel link ids of the cgroup attachments held (tests: the same across a takeover). */
  linkIds(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [p, l] of this.links) out[p] = l.link.info().id;
    return out;
  }

  /** Adopted links no adopted or reserved policy uses: detached and unpinned. */
  dropUnusedLinks(): void {
    for (const [p, l] of this.links) {
      if (l.refs > 0) continue;
      this.dropLink(p, l.link);
      this.links.delete(p);
    }
  }

  private dropLink(point: SockPoint, link: Link): void {
    link.close();
    if (this.pinDir !== undefined) unpin(join(this.pinDir, pinName(LINK_PIN_PREFIX, point)));
  }

  /** What the pin manifest keeps of an applied policy (SockPinnedPolicy). */
  exportPolicy(policyId: string): SockPinnedPolicy {
    const st = this.policies.get(policyId);
    if (st === undefined) throw new SockSensorError(`export policy ${policyId}: not applied`);
    return {
      no: st.no,
      mode: st.mode,
      setIds: { ...st.setIds },
      slots: st.slots.map((x) => ({ slot: x.slot, plan: { ...x.plan, points: [...x.plan.points] } })),
      written: st.written.map((w) => ({ map: w.map, key: Buffer.from(w.key).toString("base64") })),
      binPaths: st.binPaths.map((b) => ({ ...b })),
      points: [...st.points],
    };
  }

  /**
   * Takes over a policy a previous agent applied (its pinned state from exportPolicy): its
   * entries are in the maps and its programs attached; nothing is written. Throws, having
   * taken nothing over, when the maps disagree with the saved state (a slot not active for
   * it, a link it runs on missing).
   */
  adoptPolicy(policyId: string, saved: SockPinnedPolicy): void {
    if (this.coll === undefined) throw new SockSensorError("adopt policy: socket sensor not loaded");
    if (this.policies.has(policyId)) throw new SockSensorError(`adopt policy ${policyId}: already applied`);
    const L = this.L.slot;
    for (const x of saved.slots) {
      const v = this.map("sock_slots").lookup(u32(x.slot));
      const dv = v === undefined ? undefined : new DataView(v.buffer, v.byteOffset, v.byteLength);
      if (dv === undefined || (dv.getUint32(L.offset("flags"), true) & SLOT_ACTIVE) === 0 || dv.getUint32(L.offset("policy"), true) !== saved.no) {
        throw new SockSensorError(`adopt policy ${policyId}: hook slot ${x.slot} is not active for policy number ${saved.no} in the pinned maps`);
      }
      if (this.bySlot.has(x.slot)) throw new SockSensorError(`adopt policy ${policyId}: hook slot ${x.slot} is already another policy's`);
    }
    for (const p of new Set(saved.points)) if (!this.links.has(p)) throw new SockSensorError(`adopt policy ${policyId}: cgroup/${p} is not attached`);
    const st: PolicyState = {
      id: policyId, setIds: { ...saved.setIds }, slots: saved.slots.map((x) => ({ slot: x.slot, plan: x.plan })),
      written: saved.written.map((w) => ({ map: w.map, key: new Uint8Array(Buffer.from(w.key, "base64")) })),
      binPaths: saved.binPaths.map((b) => ({ ...b })), points: [...saved.points], mode: saved.mode, no: saved.no, scope: 0,
    };
    for (const b of st.binPaths) this.binNames.adopt(b.path, b.id);
    for (const x of st.slots) {
      this.bySlot.set(x.slot, { policy: st, hookIndex: x.plan.index });
      const i = this.freeSlots.indexOf(x.slot);
      if (i >= 0) this.freeSlots.splice(i, 1);
    }
    // A reserved policy's link references were taken at load; otherwise they are taken now.
    if (!this.reserved.delete(saved.no)) this.addLinkRefs(st.points);
    this.nextPolicy = Math.max(this.nextPolicy, st.no + 1);
    this.reservedSetEnd = Math.max(this.reservedSetEnd, st.setIds.end);
    this.policies.set(policyId, st);
  }

  /**
   * Lets go of an adopted policy without touching the kernel (a start that adopted it
   * failed): it is reserved again, as at load, so its pinned entries and links stay intact
   * for dropping or adopting later.
   */
  forget(policyId: string): void {
    const st = this.policies.get(policyId);
    if (st === undefined) return;
    this.policies.delete(policyId);
    for (const x of st.slots) this.bySlot.delete(x.slot);
    for (const b of st.binPaths) this.binNames.forget(b.path);
    this.reserved.add(st.no);
  }

  /** The cgroup the programs attach to (after load()). */
  get cgroup(): string | undefined {
    return this.cgroupPath;
  }

  /** No policy acts on this tgid (the agent, its test runner). */
  exempt(tgid: number): void {
    this.map("sock_exempt").update(u32(tgid), u32(1));
  }

  unexempt(tgid: number): void {
    this.map("sock_exempt").delete(u32(tgid));
  }

  /** One past the highest set id in use: the setIdBase for the next compilePolicy. */
  nextSetIdBase(): number {
    let end = this.reservedSetEnd;
    for (const p of this.policies.values()) end = Math.max(end, p.setIds.end);
    return end;
  }

  policyIds(): string[] {
    return [...this.policies.keys()];
  }

  /** What is attached now ("cgroup/connect4 at /sys/fs/cgroup/unified"), for status. */
  attachments(): string[] {
    return [...this.links.keys()].map((p) => `cgroup/${p} at ${this.cgroupPath ?? "?"}`);
  }

  /** Kernel ids of the attached programs (tests check nothing is left after remove). */
  attachedProgramIds(): number[] {
    const out: number[] = [];
    for (const p of this.links.keys()) {
      const prog = this.coll?.programs[`sock_${p}`];
      if (prog !== undefined) out.push(prog.info().id);
    }
    return out;
  }

  /**
   * Writes a compiled policy's tables and switches its hooks on, all or nothing: entries go
   * in under the policy's own set ids and slots, the programs are attached, and the active
   * flags are set last; on any failure everything written is removed again.
   */
  apply(policyId: string, compiled: CompiledPolicy, plans: readonly SockHookPlan[], opts: { scope?: number } = {}): void {
    if (this.coll === undefined) throw new SockSensorError("apply policy: socket sensor not loaded");
    const scope = opts.scope ?? 0;
    if (scope !== 0 && this.opts.scopeMaps === undefined) throw new SockSensorError(`apply policy ${policyId}: it has a workload scope but the sensor was loaded without the agent's scope maps (SockSensorOptions.scopeMaps)`);
    if (this.policies.has(policyId)) throw new SockSensorError(`apply policy ${policyId}: already applied`);
    if (scope !== 0 && this.opts.adoptFrom !== undefined) {
      // The adopted programs read the scope maps of the agent that loaded them, which no one
      // fills now: a scoped policy on them would silently enforce nothing.
      const mine = this.opts.scopeMaps?.replaceMaps() ?? {};
      const differ = Object.entries(mine).some(([n, m]) => this.coll?.maps[n]?.info().id !== m.info().id);
      if (differ) throw new SockSensorError(`apply policy ${policyId}: the socket sensor was adopted from pins whose programs read an earlier agent's workload scope maps, which this agent does not fill; a scoped policy would enforce nothing. Remove the pinned socket policies (or restart the agent once they are gone) to apply it`);
    }
    if (compiled.setIds.end > compiled.setIds.base && compiled.setIds.base < this.reservedSetEnd) {
      throw new SockSensorError(`apply policy ${policyId}: set ids [${compiled.setIds.base}, ${compiled.setIds.end}) overlap those of pinned policies; compile with setIdBase ${this.nextSetIdBase()}`);
    }
    for (const p of this.policies.values()) {
      const a = compiled.setIds, b = p.setIds;
      if (a.base < b.end && b.base < a.end && a.end > a.base && b.end > b.base) {
        throw new SockSensorError(`apply policy ${policyId}: set ids [${a.base}, ${a.end}) overlap policy ${p.id}'s; compile with setIdBase ${this.nextSetIdBase()}`);
      }
    }
    this.check(compiled, plans);
    const st: PolicyState = { id: policyId, setIds: { ...compiled.setIds }, slots: [], written: [], binPaths: [], points: [], mode: compiled.monitor ? "monitor" : "enforce", no: this.nextPolicy++, scope };
    try {
      this.writeSets(st, compiled);
      for (const plan of plans) {
        const slot = this.freeSlots.pop();
        if (slot === undefined) throw new SockSensorError(`apply policy ${policyId}: no free socket hook slot (${this.spec.maps.sock_hooks?.maxEntries} in all)`);
        st.slots.push({ slot, plan });
        this.bySlot.set(slot, { policy: st, hookIndex: plan.index });
        this.map("sock_hooks").update(u32(slot), this.hookBytes(compiled, plan.index).slice());
        this.map("sock_slots").update(u32(slot), this.slotValue(plan, st.no, 0, st.scope));
      }
      for (const s of st.slots) for (const p of s.plan.points) this.attach(st, p);
      for (const s of st.slots) this.map("sock_slots").update(u32(s.slot), this.slotValue(s.plan, st.no, SLOT_ACTIVE | (st.mode === "monitor" ? SLOT_MONITOR : 0), st.scope));
      this.policies.set(policyId, st);
    } catch (e) {
      this.undo(st);
      throw e;
    }
  }

  /** Switches a policy's hooks off, removes every entry it wrote, detaches unused programs. */
  remove(policyId: string): void {
    const st = this.policies.get(policyId);
    if (st === undefined) throw new SockSensorError(`remove policy ${policyId}: not applied`);
    this.policies.delete(policyId);
    this.undo(st);
  }

  /** monitor: Override/Sigkill/Signal of every selector become Post (the kernel reads the slot flag). */
  setMode(policyId: string, mode: "enforce" | "monitor"): void {
    const st = this.policies.get(policyId);
    if (st === undefined) throw new SockSensorError(`set mode of policy ${policyId}: not applied`);
    st.mode = mode;
    for (const s of st.slots) this.map("sock_slots").update(u32(s.slot), this.slotValue(s.plan, st.no, SLOT_ACTIVE | (mode === "monitor" ? SLOT_MONITOR : 0), st.scope));
  }

  private undo(st: PolicyState): void {
    const slots = this.map("sock_slots");
    for (const s of st.slots) {
      try { slots.update(u32(s.slot), new Uint8Array(this.L.slot.size)); } catch { /* best effort: keep removing */ }
    }
    for (const s of st.slots) {
      try { this.map("sock_hooks").update(u32(s.slot), new Uint8Array(this.L.hook.size)); } catch { /* best effort */ }
      this.bySlot.delete(s.slot);
      this.freeSlots.push(s.slot);
    }
    for (const w of st.written) {
      try { this.map(w.map).delete(w.key); } catch { /* already gone */ }
    }
    for (const b of st.binPaths) this.binNames.release(() => this.map("sock_bin_names"), b.path);
    for (const p of st.points) {
      const l = this.links.get(p);
      if (l !== undefined && --l.refs === 0) {
        this.dropLink(p, l.link);
        this.links.delete(p);
      }
    }
    st.points = [];
    st.slots = [];
    st.written = [];
    st.binPaths = [];
  }

  private hookBytes(compiled: CompiledPolicy, index: number): Uint8Array {
    const sec = compiled.tables.hooks;
    if (sec.entrySize !== this.L.hook.size) throw new SockSensorError(`the engine's hook configs are ${sec.entrySize} bytes but sock_addr.o's ward_hook_config is ${this.L.hook.size} (engine and BPF object built from different ward_filter.h layouts)`);
    if (index < 0 || index >= sec.count) throw new SockSensorError(`hook index ${index} is not in the compiled policy`);
    return sec.bytes.subarray(index * sec.entrySize, (index + 1) * sec.entrySize);
  }

  /** Refuses what the programs cannot honor, naming why (never a silent drop). */
  private check(compiled: CompiledPolicy, plans: readonly SockHookPlan[]): void {
    const problems: string[] = [];
    const byIndex = new Map(compiled.hooks.map((h) => [h.index, h]));
    for (const plan of plans) {
      const ch = byIndex.get(plan.index);
      if (ch === undefined) { problems.push(`hook index ${plan.index} is not in the compiled policy`); continue; }
      if (plan.points.length === 0) problems.push(`${ch.path}: no attach point`);
      const cfg = this.hookBytes(compiled, plan.index);
      const dv = new DataView(cfg.buffer, cfg.byteOffset, cfg.byteLength);
      const H = this.L.hook, S = this.L.selector, M = this.L.matcher, A = this.L.action;
      const nSel = dv.getUint8(H.offset("n_selectors"));
      const types: number[] = [];
      for (let a = 0; a < 6; a++) types.push(dv.getUint16(H.offset("args") + a * this.L.argCfg.size + this.L.argCfg.offset("type"), true));
      for (let s = 0; s < nSel; s++) {
        const so = H.offset("selectors") + s * S.size;
        const where = `${ch.path}.selectors[${s}]`;
        const nm = dv.getUint8(so + S.offset("n_matchers"));
        for (let m = 0; m < nm; m++) {
          const mo = so + S.offset("matchers") + m * M.size;
          const kind = dv.getUint8(mo + M.offset("kind"));
          const op = dv.getUint8(mo + M.offset("op"));
          if (kind === MK.BINARY) {
            if (this.opts.processMap === undefined) problems.push(`${where}: matchBinaries needs the process sensor's map (SockSensorOptions.processMap)`);
            if (dv.getUint8(mo + M.offset("value_kind")) !== VK_BIN_SET) problems.push(`${where}: matchBinaries Prefix/Postfix are not evaluated by the socket hooks (In/NotIn only)`);
            if (dv.getUint16(mo + M.offset("flags"), true) & 1) problems.push(`${where}: matchBinaries followChildren is not evaluated by the socket hooks`);
            continue;
          }
          if (kind !== MK.ARG) { problems.push(`${where}: matcher kind ${kind} is not evaluated by the socket hooks (matchArgs and matchBinaries only)`); continue; }
          const t = types[dv.getUint8(mo + M.offset("slot"))] ?? 0;
          const ops = t === ARG.SOCKADDR ? SOCKADDR_OPS : t === ARG.SOCK ? SOCK_OPS : undefined;
          if (ops === undefined) problems.push(`${where}: matchArgs on an argument of type ${t} is not seen by the socket hooks (sock, socket and sockaddr only)`);
          else if (!ops.has(op)) problems.push(`${where}: operator ${op} is not evaluated on ${t === ARG.SOCK ? "sock" : "sockaddr"} arguments by the socket hooks`);
        }
        const na = dv.getUint8(so + S.offset("n_actions"));
        for (let a = 0; a < na; a++) {
          const ao = so + S.offset("actions") + a * A.size;
          const kind = dv.getUint32(ao + A.offset("kind"), true);
          if (!Object.values(ACT).includes(kind as 1)) problems.push(`${where}: action ${kind} is not taken by the socket hooks (Post, NoPost, Override, Sigkill, Signal)`);
          if (kind === ACT.OVERRIDE && (dv.getUint32(ao + A.offset("flags"), true) & AF_HAS_ERROR)) {
            const err = dv.getInt32(ao + A.offset("arg_error"), true);
            if (err > -1 || err < -4095) problems.push(`${where}: Override argError ${err}: the socket hooks fail a call with a negative errno (-4095..-1) only`);
          }
          if (kind === ACT.POST && dv.getBigUint64(ao + A.offset("rate_limit_ms"), true) !== 0n) problems.push(`${where}: Post rateLimit is not applied by the socket hooks`);
        }
        if (dv.getUint8(so + S.offset("n_return_actions")) > 0) problems.push(`${where}: matchReturnActions need a return probe`);
      }
    }
    if (problems.length) throw new SockSensorError(`the socket hooks cannot honor this policy: ${problems.join("; ")}`);
  }

  private slotValue(plan: SockHookPlan, policyNo: number, flags: number, scope: number): Uint8Array {
    const L = this.L.slot;
    const v = new Uint8Array(L.size);
    const dv = new DataView(v.buffer);
    let points = 0;
    for (const p of plan.points) points |= 1 << SOCK_POINTS.indexOf(p);
    dv.setUint32(L.offset("flags"), flags | (plan.tcpConnect ? SLOT_TCP_CONNECT : 0), true);
    dv.setUint32(L.offset("policy"), policyNo, true);
    dv.setUint32(L.offset("points"), points, true);
    dv.setUint32(L.offset("scope"), scope, true);
    return v;
  }

  private writeSets(st: PolicyState, compiled: CompiledPolicy): void {
    const t = compiled.tables;
    const put = (name: string, key: Uint8Array): void => {
      const map = this.map(name);
      if (map.lookup(key) !== undefined) return;
      map.update(key, new Uint8Array([1]));
      st.written.push({ map: name, key });
    };
    const each = (sec: { count: number; entrySize: number; bytes: Uint8Array }, f: (b: Uint8Array) => void): void => {
      for (let i = 0; i < sec.count; i++) f(sec.bytes.subarray(i * sec.entrySize, (i + 1) * sec.entrySize));
    };
    each(t.intSet, (b) => put("sock_int_set", b.slice()));
    each(t.addrLpm, (b) => put("sock_addr_lpm", b.slice()));
    each(t.binSet, (b) => put("sock_bin_set", b.slice()));
    const names = this.map("sock_bin_names");
    each(t.binNames, (b) => {
      const { path, id, conflict } = this.binNames.add(names, b);
      if (conflict !== undefined) throw new SockSensorError(`apply policy ${st.id}: binary ${path} interned as ${id} but ${conflict} is in use (compile every policy with the same BinaryInterner)`);
      st.binPaths.push({ path, id });
    });
  }

  private attach(st: PolicyState, point: SockPoint): void {
    const have = this.links.get(point);
    if (have !== undefined) have.refs++;
    else {
      const name = `sock_${point}`;
      const prog = this.coll?.programs[name], spec = this.spec.programs[name];
      if (prog === undefined || spec === undefined) throw new SockSensorError(`sock_addr.o has no program ${name}`);
      const link = attachProgram(prog, spec, { cgroup: this.cgroupPath! });
      this.links.set(point, { link, refs: 1 });
      // A pinned sensor pins what it attaches: else the link would end with this agent.
      if (this.pinDir !== undefined) link.pin(join(this.pinDir, pinName(LINK_PIN_PREFIX, point)));
    }
    st.points.push(point);
  }

  // ---------------------------------------------------------------- events

  /** Subscribe to decoded records; returns the unsubscribe function. Starts the reader. */
  onEvent(cb: (e: SockEvent) => void): () => void {
    this.listeners.add(cb);
    this.loop ??= this.readLoop();
    return () => this.listeners.delete(cb);
  }

  /** Reads what is in the ring buffer now (tests, or callers with their own loop). */
  drain(): SockEvent[] {
    const out: SockEvent[] = [];
    this.reader?.drain((rec) => {
      const e = this.decode(rec);
      if (e !== undefined) out.push(e);
    });
    return out;
  }

  private async readLoop(): Promise<void> {
    while (!this.stopping && this.reader !== undefined) {
      await this.reader.wait(200);
      if (this.stopping) break;
      for (const e of this.drain()) for (const l of this.listeners) l(e);
    }
  }

  /** struct sock_event -> SockEvent; undefined for a slot no longer applied. */
  decode(rec: DataView): SockEvent | undefined {
    const E = this.L.event;
    const g = (f: string): number => rec.getUint32(E.offset(f), true);
    const h = (f: string): number => rec.getUint16(E.offset(f), true);
    const bytes = (f: string): Uint8Array => new Uint8Array(rec.buffer, rec.byteOffset + E.offset(f), 16);
    const owner = this.bySlot.get(g("slot"));
    // A record of a removed policy whose slot was reused since: the policy number tells.
    if (owner === undefined || owner.policy.no !== g("policy")) return undefined;
    const flags = g("flags");
    const bits = g("actions");
    const actions: string[] = [];
    for (let i = 1; i < 32; i++) if (bits & (1 << i)) actions.push(ACTION_NAMES[i] ?? String(i));
    const selector = rec.getInt32(E.offset("selector"), true);
    const userFamily = g("user_family");
    const skFamily = h("sk_family");
    return {
      policyId: owner.policy.id,
      hookIndex: owner.hookIndex,
      hookId: g("hook_id"),
      selector: selector < 0 ? null : selector,
      point: SOCK_POINTS[g("point")] ?? "connect4",
      pid: g("pid"), tgid: g("tgid"),
      ktime: rec.getBigUint64(E.offset("ktime"), true),
      actions,
      monitor: (flags & EF.MONITOR) !== 0,
      killed: (flags & EF.KILLED) !== 0,
      signaled: (flags & EF.SIGNALED) !== 0,
      denied: (flags & EF.DENIED) !== 0,
      error: rec.getInt32(E.offset("error"), true),
      signalErr: rec.getInt32(E.offset("signal_err"), true),
      user: { family: userFamily, port: h("user_port"), addr: formatAddr(userFamily, bytes("user_addr")) },
      sock: {
        family: skFamily, type: h("sk_type"), protocol: h("sk_protocol"), state: g("sk_state"),
        sport: h("sk_sport"), dport: h("sk_dport"),
        saddr: formatAddr(skFamily, bytes("sk_saddr")), daddr: formatAddr(skFamily, bytes("sk_daddr")),
      },
    };
  }

  /** Entries in each table map, for tests: after remove() every count is back where it was. */
  tableSizes(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const name of ["sock_addr_lpm", "sock_int_set", "sock_bin_names", "sock_bin_set"]) {
      out[name] = countEntries(this.map(name));
    }
    out.activeSlots = countActiveSlots(this.map("sock_slots"), this.L.slot.offset("flags"), SLOT_ACTIVE);
    return out;
  }

  /** Kernel counters summed over CPUs. */
  counters(): SockCounters {
    const get = counterReader(this.map("sock_counters"), this.counterIdx);
    return {
      calls: get("SOCK_CNT_CALLS"), matches: get("SOCK_CNT_MATCHES"), posts: get("SOCK_CNT_POSTS"),
      ringbufDrops: get("SOCK_CNT_RB_DROPS"), denies: get("SOCK_CNT_DENIES"), kills: get("SOCK_CNT_KILLS"),
      signals: get("SOCK_CNT_SIGNALS"), exempt: get("SOCK_CNT_EXEMPT"), monitor: get("SOCK_CNT_MONITOR"),
      notTaken: get("SOCK_CNT_NOT_TAKEN"),
    };
  }

  /**
   * Detaches everything and frees the maps. keepPinned (--keep-sensors-on-exit, or an adopt
   * that failed): the policies' entries stay and only this process's fds go, so what is
   * pinned keeps enforcing.
   */
  close(opts: { keepPinned?: boolean } = {}): void {
    this.stopping = true;
    if (opts.keepPinned === true) this.policies.clear();
    for (const id of [...this.policies.keys()]) {
      try { this.remove(id); } catch { /* closing anyway */ }
    }
    for (const l of this.links.values()) l.link.close();
    this.links.clear();
    this.reader?.close();
    this.reader = undefined;
    this.coll?.close();
    this.coll = undefined;
  }
}
