// The socket sensor (sock.ts) behind the policy manager's SockHooks: compiles a policy with
// set ids that do not collide with the socket policies already applied, hands each resolved
// socket hook (resolve.ts) to the sensor with its cgroup attach points, and turns the
// sensor's records into matches whose arguments are Tetragon's sock_arg / sockaddr_arg.
import type { HookArg } from "../events/kprobe-event.ts";
import { compilePolicy, seedBinaryId } from "../policy/engine.ts";
import type { KProbeArg, TracingPolicy } from "../policy/types.ts";
import { ADDRESS_FAMILIES, IPPROTO, TCP_STATES } from "../policy/values.ts";
import type { GenericMatch, SockHooks } from "./manager.ts";
import type { ResolvedHook } from "./resolve.ts";
import { LazySensorBackend } from "./lazy-backend.ts";
import { SockSensor, type SockEvent, type SockPinnedPolicy } from "./sock.ts";

const SOCK_TYPES: Record<string, number> = {
  SOCK_STREAM: 1, SOCK_DGRAM: 2, SOCK_RAW: 3, SOCK_RDM: 4, SOCK_SEQPACKET: 5, SOCK_DCCP: 6, SOCK_PACKET: 10,
};

function invert(names: Record<string, number>): Map<number, string> {
  const out = new Map<number, string>();
  for (const [k, v] of Object.entries(names)) if (!out.has(v)) out.set(v, k);
  return out;
}

const FAMILY_NAMES = invert(ADDRESS_FAMILIES);
const PROTOCOL_NAMES = invert(IPPROTO);
const STATE_NAMES = invert(TCP_STATES);
const TYPE_NAMES = invert(SOCK_TYPES);
const TCP_SYN_SENT = 2;

/** Tetragon prints unknown values as decimal strings (pkg/reader/network/inet.go). */
const named = (m: Map<number, string>, v: number): string => m.get(v) ?? String(v);

/** Socket facts as Tetragon names them (AF_INET, SOCK_STREAM, IPPROTO_TCP, TCP_ESTABLISHED). */
export const sockNames = {
  family: (v: number): string => named(FAMILY_NAMES, v),
  type: (v: number): string => named(TYPE_NAMES, v),
  protocol: (v: number): string => named(PROTOCOL_NAMES, v),
  state: (v: number): string => named(STATE_NAMES, v),
};

/** One argument of a socket hook's event, as Tetragon reports it for the declared type. */
export function sockArg(e: SockEvent, decl: KProbeArg, tcpConnect: boolean): HookArg {
  const label = decl.label ? { label: decl.label } : {};
  if (decl.type === "sockaddr") return { kind: "sockaddr", family: named(FAMILY_NAMES, e.user.family), addr: e.user.addr, port: e.user.port, ...label };
  const s = e.sock;
  return {
    kind: "sock",
    family: named(FAMILY_NAMES, s.family),
    type: named(TYPE_NAMES, s.type),
    protocol: named(PROTOCOL_NAMES, s.protocol),
    saddr: s.saddr,
    // tcp_connect's socket has the peer set and is in SYN_SENT (bpf/sock_addr.c matches it so)
    daddr: tcpConnect ? e.user.addr : s.daddr,
    sport: s.sport,
    dport: tcpConnect ? e.user.port : s.dport,
    state: named(STATE_NAMES, tcpConnect ? TCP_SYN_SENT : s.state),
    ...label,
  };
}

function hookArgs(policy: TracingPolicy, h: ResolvedHook): readonly KProbeArg[] {
  const m = /^spec\.(kprobes|lsmhooks)\[(\d+)\]$/.exec(h.path);
  if (!m) return [];
  const list = m[1] === "kprobes" ? policy.spec.kprobes : policy.spec.lsmhooks;
  return list[Number(m[2])]?.args ?? [];
}

/** SockHooks over one shared SockSensor, created and loaded when the first policy needs it. */
export class SockBackend extends LazySensorBackend<SockSensor, SockEvent> implements SockHooks {
  apply(policyId: string, policy: TracingPolicy, hooks: readonly ResolvedHook[], mode: "enforce" | "monitor", scope = 0): void {
    const sensor = this.loaded();
    const compiled = compilePolicy(policy, { mode, setIdBase: sensor.nextSetIdBase() });
    const plans = hooks.map((h) => {
      if (h.sock === undefined) throw new Error(`${h.path}: not a socket hook`);
      return { index: h.index, points: h.sock.points, tcpConnect: h.sock.tcpConnect };
    });
    sensor.apply(policyId, compiled, plans, { scope });
    this.applied(policyId, policy, hooks);
  }

  /** The policy's entries as the pin manifest keeps them (SockPinnedPolicy). */
  exportPolicy(policyId: string): SockPinnedPolicy {
    return this.loaded().exportPolicy(policyId);
  }

  /**
   * Takes over a policy a previous agent applied and pinned (the sensor loads from the pins,
   * SockSensorOptions.adoptFrom): its binary ids join the process-wide interner first, so
   * policies compiled from now on agree with the pinned maps.
   */
  adopt(policyId: string, policy: TracingPolicy, hooks: readonly ResolvedHook[], saved: unknown): void {
    const st = saved as SockPinnedPolicy;
    const sensor = this.loaded();
    for (const b of st.binPaths) seedBinaryId(b.path, b.id);
    sensor.adoptPolicy(policyId, st);
    this.applied(policyId, policy, hooks);
  }

  /** Lets go of an adopted policy, leaving its pinned entries as they are (a failed start). */
  forget(policyId: string): void {
    this.policies.delete(policyId);
    this.sensor?.forget(policyId);
  }

  /** Removes a pinned policy no one adopts: taken over under a private id, then removed. */
  dropPinned(saved: unknown): void {
    const sensor = this.loaded();
    const id = `pinned#${++this.#dropped}`;
    sensor.adoptPolicy(id, saved as SockPinnedPolicy);
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

  protected dispatch(e: SockEvent): void {
    const p = this.policies.get(e.policyId);
    const hook = p?.hooks.get(e.hookIndex);
    if (p === undefined || hook?.sock === undefined) return;
    const declared = hookArgs(p.policy, hook);
    const args: HookArg[] = [];
    for (const slot of hook.sock.seenSlots) {
      const decl = declared[slot];
      if (decl !== undefined) args.push(sockArg(e, decl, hook.sock.tcpConnect));
    }
    const enforcing = e.actions.find((x) => x !== "Post" && x !== "NoPost");
    const m: GenericMatch = {
      policyId: e.policyId,
      hook,
      pid: e.pid,
      tgid: e.tgid,
      time: e.ktime,
      args,
      action: e.monitor ? "Post" : (enforcing ?? e.actions[0] ?? "Post"),
    };
    this.emit(m);
  }
}
