// What this kernel offers, found by trying (loader.md §8). Each probe makes the smallest object
// that answers the question and closes it. Only definitive answers are cached (supported, or
// unsupported from EINVAL/E2BIG and friends); refusals such as EPERM may change with privileges
// or policy, so they are probed again next time.
import { existsSync, mkdirSync, readFileSync, rmdirSync } from "node:fs";
import { arch, release } from "node:os";
import { Asm, retProgram } from "./asm.ts";
import { Attr } from "./attr.ts";
import { BtfKind, loadKernelBtf } from "./btf.ts";
import { AttachType, BpfCmd, Helper, MapFlags, MapType, ProgFlags, ProgType } from "./constants.ts";
import { attachCgroup, attachKprobeMulti, attachRawTracepoint, attachTracepoint, attachTracing, attachUprobe, type Link } from "./link.ts";
import { UprobeElf } from "./uprobe-symbols.ts";
import { BpfMap, type MapSpec } from "./map.ts";
import { pmuType, UnsupportedFeatureError } from "./perf.ts";
import { BpfProgram, VerifierError, type ProgramLoadSpec } from "./program.ts";
import { SyscallError, errnoName, errnoText, mount } from "./sys.ts";

export type FeatureStatus = "supported" | "unsupported" | "refused";

export interface FeatureResult {
  status: FeatureStatus;
  /** The errno behind an unsupported/refused answer, when there was one. */
  errno?: number;
  code?: string;
  reason?: string;
}

export interface FeatureReport {
  kernel: { release: string; arch: string; btf: boolean };
  programTypes: Record<string, FeatureResult>;
  mapTypes: Record<string, FeatureResult>;
  /** Keyed "<program type>/<helper>", e.g. "tracing/send_signal". */
  helpers: Record<string, FeatureResult>;
  /** Attach kinds: tp_btf, raw_tracepoint, tracepoint, cgroup, fentry, fexit, fmod_ret, lsm, kprobe, uprobe, ... */
  attach: Record<string, FeatureResult>;
  lsm: { active: string[] | null; bpfListed: boolean };
}

const EPERM = 1;
const EACCES = 13;
const E2BIG = 7;
const EINVAL = 22;
const EBADF = 9;
const EOPNOTSUPP = 95;
const ENOTSUPP = 524;

const cache = new Map<string, FeatureResult>();

/** Forget cached answers (tests; or after the environment changed). */
export function resetFeatureCache(): void {
  cache.clear();
}

function cached(key: string, probe: () => { result: FeatureResult; definitive: boolean }): FeatureResult {
  const hit = cache.get(key);
  if (hit !== undefined) return hit;
  const { result, definitive } = probe();
  if (definitive) cache.set(key, result);
  return result;
}

const supported = (): { result: FeatureResult; definitive: boolean } => ({ result: { status: "supported" }, definitive: true });

function unsupported(reason: string, errno?: number, definitive = true): { result: FeatureResult; definitive: boolean } {
  const r: FeatureResult = { status: "unsupported", reason };
  if (errno !== undefined) {
    r.errno = errno;
    r.code = errnoName(errno);
  }
  return { result: r, definitive };
}

function refused(reason: string, errno?: number): { result: FeatureResult; definitive: boolean } {
  const r: FeatureResult = { status: "refused", reason };
  if (errno !== undefined) {
    r.errno = errno;
    r.code = errnoName(errno);
  }
  return { result: r, definitive: false };
}

/** Map a failed create/load/attach to an answer: EINVAL/E2BIG/ENOTSUPP mean "not here". */
function classify(e: unknown, what: string): { result: FeatureResult; definitive: boolean } {
  if (e instanceof VerifierError && e.hint !== undefined) return refused(`${what}: ${e.hint}`, e.errno);
  // The attach already told a missing feature from a refusal (attachKprobeMulti's EOPNOTSUPP).
  if (e instanceof UnsupportedFeatureError) return unsupported(`${what}: ${e.message}`);
  if (e instanceof SyscallError) {
    const text = `${what}: ${e.code} (${errnoText(e.errno)})`;
    switch (e.errno) {
      case EINVAL:
      case E2BIG:
      case ENOTSUPP:
      case EOPNOTSUPP:
        return unsupported(text, e.errno);
      case EPERM:
      case EACCES:
        return refused(text, e.errno);
      default:
        return refused(text, e.errno);
    }
  }
  return refused(`${what}: ${e instanceof Error ? e.message : String(e)}`);
}

// ---- kernel BTF ids -----------------------------------------------------------------------

const VMLINUX = "/sys/kernel/btf/vmlinux";

export function haveKernelBtf(): boolean {
  return existsSync(VMLINUX);
}

/** Type id in vmlinux BTF of a TYPEDEF or FUNC by name (undefined when absent). */
export function kernelTypeId(name: string, kind: "typedef" | "func"): number | undefined {
  if (!haveKernelBtf()) return undefined;
  return loadKernelBtf().findByName(name, kind === "typedef" ? BtfKind.Typedef : BtfKind.Func)[0];
}

// ---- program types ------------------------------------------------------------------------

interface TrialTarget {
  expectedAttachType?: AttachType;
  attachBtfId?: number;
  flags?: number;
}

/** Extra attrs some program types need to load at all; undefined when the target is missing. */
function trialTarget(t: ProgType): TrialTarget | string {
  switch (t) {
    case ProgType.CGROUP_SOCK_ADDR:
      return { expectedAttachType: AttachType.CGROUP_INET4_CONNECT };
    case ProgType.CGROUP_SOCKOPT:
      return { expectedAttachType: AttachType.CGROUP_GETSOCKOPT };
    case ProgType.CGROUP_SOCK:
      return { expectedAttachType: AttachType.CGROUP_INET_SOCK_CREATE };
    case ProgType.SK_LOOKUP:
      return { expectedAttachType: AttachType.SK_LOOKUP };
    case ProgType.SYSCALL:
      return { flags: ProgFlags.SLEEPABLE };
    case ProgType.TRACING: {
      const id = kernelTypeId("btf_trace_sched_switch", "typedef");
      return id === undefined ? "no vmlinux BTF type btf_trace_sched_switch" : { expectedAttachType: AttachType.TRACE_RAW_TP, attachBtfId: id };
    }
    case ProgType.LSM: {
      const id = kernelTypeId("bpf_lsm_file_open", "func");
      return id === undefined ? "no vmlinux BTF function bpf_lsm_file_open (kernel built without CONFIG_BPF_LSM)" : { expectedAttachType: AttachType.LSM_MAC, attachBtfId: id };
    }
    default:
      return {};
  }
}

function trialSpec(t: ProgType, target: TrialTarget, insns: Uint8Array, name: string): ProgramLoadSpec {
  const spec: ProgramLoadSpec = { name, type: t, insns, license: "GPL" };
  if (target.expectedAttachType !== undefined) spec.expectedAttachType = target.expectedAttachType;
  if (target.attachBtfId !== undefined) spec.attachBtfId = target.attachBtfId;
  if (target.flags !== undefined) spec.flags = target.flags;
  return spec;
}

/** Can a program of type t be loaded (`r0 = 0; exit`)? */
export function probeProgType(t: ProgType): FeatureResult {
  return cached(`prog:${t}`, () => {
    const what = `load ${ProgType[t] ?? t} program`;
    const target = trialTarget(t);
    if (typeof target === "string") return unsupported(`${what}: ${target}`);
    try {
      BpfProgram.load(trialSpec(t, target, retProgram(0), "probe_prog")).close();
      return supported();
    } catch (e) {
      return classify(e, what);
    }
  });
}

// ---- map types ----------------------------------------------------------------------------

function trialMap(t: MapType): MapSpec | string {
  const base: MapSpec = { name: "probe_map", type: t, keySize: 4, valueSize: 4, maxEntries: 1 };
  switch (t) {
    case MapType.LPM_TRIE:
      return { ...base, keySize: 8, flags: MapFlags.NO_PREALLOC };
    case MapType.RINGBUF:
      return { ...base, keySize: 0, valueSize: 0, maxEntries: 4096 };
    case MapType.QUEUE:
    case MapType.STACK:
      return { ...base, keySize: 0 };
    case MapType.BLOOM_FILTER:
      return { ...base, keySize: 0 };
    case MapType.ARRAY_OF_MAPS:
    case MapType.HASH_OF_MAPS:
      return { ...base, innerMap: { name: "probe_inner", type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 } };
    case MapType.SK_STORAGE:
    case MapType.INODE_STORAGE:
    case MapType.TASK_STORAGE:
    case MapType.CGRP_STORAGE:
      return "local storage maps need BTF for their value and are not probed";
    default:
      return base;
  }
}

export function probeMapType(t: MapType): FeatureResult {
  return cached(`map:${t}`, () => {
    const what = `create ${MapType[t] ?? t} map`;
    const spec = trialMap(t);
    if (typeof spec === "string") return unsupported(`${what}: ${spec}`, undefined, false);
    try {
      BpfMap.create(spec).close();
      return supported();
    } catch (e) {
      return classify(e, what);
    }
  });
}

// ---- helpers ------------------------------------------------------------------------------

// Verifier messages that mean the helper does not exist or is not allowed for this program type.
const HELPER_MISSING = [/invalid func unknown#\d+/, /unknown func \S+#\d+/, /program of this type cannot use helper \S+#\d+/, /helper call is not allowed in probe/];

/** Is helper `id` callable from programs of type t? (`call id; r0 = 0; exit`) */
export function probeHelper(t: ProgType, id: Helper | number): FeatureResult {
  return cached(`helper:${t}:${id}`, () => {
    const what = `call helper ${Helper[id] ?? id} from ${ProgType[t] ?? t}`;
    const target = trialTarget(t);
    if (typeof target === "string") return unsupported(`${what}: ${target}`);
    const insns = new Asm().call(id).ret(0).bytes();
    try {
      BpfProgram.load(trialSpec(t, target, insns, "probe_helper")).close();
      return supported();
    } catch (e) {
      if (e instanceof VerifierError) {
        if (e.hint !== undefined) return refused(`${what}: ${e.hint}`, e.errno);
        const line = e.log.find((l) => HELPER_MISSING.some((re) => re.test(l)));
        if (line !== undefined) return unsupported(`${what}: ${line}`, e.errno);
        // Any other rejection (bad arguments, uninitialised registers) proves the helper exists.
        if (e.log.length > 0) return supported();
      }
      return classify(e, what);
    }
  });
}

// ---- attach kinds -------------------------------------------------------------------------

export type AttachKind =
  | "tp_btf"
  | "raw_tracepoint"
  | "tracepoint"
  | "perf_link"
  | "bpf_link"
  | "cgroup"
  | "fentry"
  | "fexit"
  | "fmod_ret"
  | "lsm"
  | "kprobe"
  | "kprobe_multi"
  | "uprobe";

export const ATTACH_KINDS: readonly AttachKind[] = [
  "tp_btf",
  "raw_tracepoint",
  "tracepoint",
  "perf_link",
  "bpf_link",
  "cgroup",
  "fentry",
  "fexit",
  "fmod_ret",
  "lsm",
  "kprobe",
  "kprobe_multi",
  "uprobe",
];

/** Load a trial program, attach it with `attach`, then close both. */
function loadAndAttach(spec: ProgramLoadSpec, what: string, attach: (p: BpfProgram) => Link, check?: (l: Link) => string | undefined) {
  let prog: BpfProgram;
  try {
    prog = BpfProgram.load(spec);
  } catch (e) {
    return classify(e, `${what}: load`);
  }
  try {
    const link = attach(prog);
    try {
      const problem = check?.(link);
      if (problem !== undefined) return unsupported(`${what}: ${problem}`);
    } finally {
      link.close();
    }
    return supported();
  } catch (e) {
    return classify(e, `${what}: attach`);
  } finally {
    prog.close();
  }
}

/** The cgroup v2 mount point from /proc/mounts (hybrid hosts have it at /sys/fs/cgroup/unified). */
export function cgroup2Root(): string | undefined {
  try {
    for (const l of readFileSync("/proc/mounts", "utf8").split("\n")) {
      const f = l.split(" ");
      if (f[2] === "cgroup2" && f[1] !== undefined) return f[1];
    }
  } catch {
    // no /proc: no answer
  }
  return undefined;
}

function tracingProbe(kind: "fentry" | "fexit" | "fmod_ret", candidates: string[]) {
  const at = kind === "fentry" ? AttachType.TRACE_FENTRY : kind === "fexit" ? AttachType.TRACE_FEXIT : AttachType.MODIFY_RETURN;
  if (!haveKernelBtf()) return unsupported(`${kind}: no ${VMLINUX}`);
  let fn: string | undefined;
  let id: number | undefined;
  for (const c of candidates) {
    id = kernelTypeId(c, "func");
    if (id !== undefined) {
      fn = c;
      break;
    }
  }
  if (id === undefined || fn === undefined) return unsupported(`${kind}: none of ${candidates.join(", ")} in vmlinux BTF`);
  return loadAndAttach(
    { name: `probe_${kind}`, type: ProgType.TRACING, expectedAttachType: at, attachBtfId: id, insns: retProgram(0), license: "GPL" },
    `${kind} on ${fn}`,
    (p) => attachTracing(p),
  );
}

export function probeAttach(kind: AttachKind): FeatureResult {
  return cached(`attach:${kind}`, () => {
    switch (kind) {
      case "tp_btf": {
        if (!haveKernelBtf()) return unsupported(`tp_btf: no ${VMLINUX}`);
        const id = kernelTypeId("btf_trace_sched_switch", "typedef");
        if (id === undefined) return unsupported("tp_btf: no btf_trace_sched_switch in vmlinux BTF");
        return loadAndAttach(
          { name: "probe_tp_btf", type: ProgType.TRACING, expectedAttachType: AttachType.TRACE_RAW_TP, attachBtfId: id, insns: retProgram(0), license: "GPL" },
          "tp_btf on sched_switch",
          (p) => attachTracing(p),
        );
      }
      case "raw_tracepoint":
        return loadAndAttach(
          { name: "probe_raw_tp", type: ProgType.RAW_TRACEPOINT, insns: retProgram(0), license: "GPL" },
          "raw_tracepoint on sched_switch",
          (p) => attachRawTracepoint(p, "sched_switch"),
        );
      case "tracepoint":
      case "perf_link": {
        let tracefsMissing: string | undefined;
        const r = loadAndAttach(
          { name: "probe_tp", type: ProgType.TRACEPOINT, insns: retProgram(0), license: "GPL" },
          "tracepoint sched/sched_switch",
          (p) => attachTracepoint(p, "sched", "sched_switch"),
          (l) => (kind === "perf_link" && l.kind !== "link" ? "perf events attach only through the ioctl (no BPF_PERF_EVENT link)" : undefined),
        );
        if (r.result.status !== "supported" && /tracefs/.test(r.result.reason ?? "")) tracefsMissing = r.result.reason;
        // A missing tracefs mount is a host setup matter, not a kernel answer: do not cache it.
        return tracefsMissing !== undefined ? { result: r.result, definitive: false } : r;
      }
      case "bpf_link": {
        // LINK_CREATE with bad fds: EBADF means the command exists, EINVAL that it does not.
        const a = new Attr().i32(0, -1).i32(4, -1).u32(8, AttachType.CGROUP_INET4_CONNECT);
        const r = a.tryCall(BpfCmd.LINK_CREATE);
        if (r.errno === EBADF) return supported();
        if (r.errno === EINVAL) return unsupported("LINK_CREATE: EINVAL (no bpf_link support)", EINVAL);
        return refused(`LINK_CREATE: ${errnoName(r.errno)}`, r.errno);
      }
      case "cgroup": {
        const root = cgroup2Root();
        if (root === undefined) return unsupported("cgroup: no cgroup2 mount in /proc/mounts", undefined, false);
        // A throwaway child cgroup, so the trial never touches real processes.
        const dir = `${root}/ward-probe-${process.pid}`;
        try {
          mkdirSync(dir);
        } catch (e) {
          return refused(`cgroup: create ${dir}: ${(e as Error).message}`);
        }
        try {
          return loadAndAttach(
            { name: "probe_cgroup", type: ProgType.CGROUP_SOCK_ADDR, expectedAttachType: AttachType.CGROUP_INET4_CONNECT, insns: retProgram(1), license: "GPL" },
            `cgroup/connect4 on ${dir}`,
            (p) => attachCgroup(p, dir, AttachType.CGROUP_INET4_CONNECT),
          );
        } finally {
          rmdirSync(dir);
        }
      }
      case "fentry":
        return tracingProbe("fentry", ["bpf_fentry_test1", "do_unlinkat", "vfs_read"]);
      case "fexit":
        return tracingProbe("fexit", ["bpf_fentry_test1", "do_unlinkat", "vfs_read"]);
      case "fmod_ret":
        return tracingProbe("fmod_ret", ["bpf_modify_return_test", "security_file_open"]);
      case "lsm":
        return lsmProbe();
      case "kprobe":
        if (pmuType("kprobe") !== undefined) return supported();
        return unsupported("no kprobe PMU (/sys/bus/event_source/devices/kprobe is absent; the kernel has no kprobes)");
      case "kprobe_multi": {
        // kprobe.multi links (fprobe, 5.18+): a trial program on a function every kernel has.
        const fns = ["vfs_read", "ksys_read"];
        let last = unsupported("kprobe_multi: no trial function");
        for (const fn of fns) {
          last = loadAndAttach(
            { name: "probe_kp_multi", type: ProgType.KPROBE, expectedAttachType: AttachType.TRACE_KPROBE_MULTI, insns: retProgram(0), license: "GPL" },
            `kprobe.multi on ${fn}`,
            (p) => attachKprobeMulti(p, [fn]),
          );
          if (last.result.status === "supported") return last;
        }
        return last;
      }
      case "uprobe": {
        if (pmuType("uprobe") === undefined) return unsupported("no uprobe PMU (/sys/bus/event_source/devices/uprobe is absent)");
        // The PMU listed is not the attach working: a trial uprobe on the libc this process
        // maps (small, unlike the runtime's own executable), for this process only.
        let lib: string | undefined;
        let off: bigint;
        try {
          lib = /\s(\/\S*\/libc\.so\.6)$/m.exec(readFileSync("/proc/self/maps", "utf8"))?.[1];
          if (lib === undefined) return refused("uprobe: no libc.so.6 mapped in this process to try a uprobe on");
          off = new UprobeElf(lib).symbolOffset("getppid");
        } catch (e) {
          return refused(`uprobe: find a trial target: ${(e as Error).message}`);
        }
        const exe = lib;
        return loadAndAttach(
          { name: "probe_uprobe", type: ProgType.KPROBE, insns: retProgram(0), license: "GPL" },
          `uprobe on ${exe}+0x${off.toString(16)}`,
          (p) => attachUprobe(p, exe, off, { pid: process.pid }),
        );
      }
    }
  });
}

// ---- BPF LSM ------------------------------------------------------------------------------

const SECURITYFS = "/sys/kernel/security";

/** The active LSMs from securityfs (mounting it when root and missing), or null when unreadable. */
export function activeLsms(): string[] | null {
  const read = (): string[] | null => {
    try {
      return readFileSync(`${SECURITYFS}/lsm`, "utf8").trim().split(",").filter((s) => s.length > 0);
    } catch {
      return null;
    }
  };
  let lsms = read();
  if (lsms === null && process.getuid?.() === 0 && existsSync(SECURITYFS)) {
    try {
      mount("securityfs", SECURITYFS, "securityfs");
    } catch {
      // Not mountable here (container, lockdown): report as unknown.
    }
    lsms = read();
  }
  return lsms;
}

/** True when "bpf" is among the active LSMs (without it LSM programs attach but never run). */
export function bpfLsmActive(): boolean {
  return activeLsms()?.includes("bpf") ?? false;
}

function lsmProbe() {
  if (!haveKernelBtf()) return unsupported(`lsm: no ${VMLINUX}`);
  const id = kernelTypeId("bpf_lsm_file_open", "func");
  if (id === undefined) return unsupported("lsm: no bpf_lsm_file_open in vmlinux BTF (kernel built without CONFIG_BPF_LSM)");
  const r = loadAndAttach(
    { name: "probe_lsm", type: ProgType.LSM, expectedAttachType: AttachType.LSM_MAC, attachBtfId: id, insns: retProgram(0), license: "GPL" },
    "lsm on file_open",
    (p) => attachTracing(p),
  );
  if (r.result.status !== "supported") return r;
  const lsms = activeLsms();
  if (lsms === null) return refused("lsm: programs load and attach, but /sys/kernel/security/lsm is unreadable, so whether they run is unknown");
  if (!lsms.includes("bpf")) return unsupported(`lsm: programs load but never run: "bpf" is not an active LSM (${lsms.join(",")})`, undefined, false);
  return r;
}

// ---- the whole report ---------------------------------------------------------------------

const REPORT_PROG_TYPES: ProgType[] = [
  ProgType.SOCKET_FILTER,
  ProgType.KPROBE,
  ProgType.TRACEPOINT,
  ProgType.RAW_TRACEPOINT,
  ProgType.PERF_EVENT,
  ProgType.TRACING,
  ProgType.LSM,
  ProgType.CGROUP_SKB,
  ProgType.CGROUP_SOCK,
  ProgType.CGROUP_SOCK_ADDR,
  ProgType.CGROUP_DEVICE,
  ProgType.CGROUP_SYSCTL,
  ProgType.CGROUP_SOCKOPT,
  ProgType.SCHED_CLS,
  ProgType.XDP,
  ProgType.SYSCALL,
];

const REPORT_MAP_TYPES: MapType[] = [
  MapType.HASH,
  MapType.ARRAY,
  MapType.PROG_ARRAY,
  MapType.PERF_EVENT_ARRAY,
  MapType.PERCPU_HASH,
  MapType.PERCPU_ARRAY,
  MapType.LRU_HASH,
  MapType.LRU_PERCPU_HASH,
  MapType.LPM_TRIE,
  MapType.ARRAY_OF_MAPS,
  MapType.HASH_OF_MAPS,
  MapType.QUEUE,
  MapType.STACK,
  MapType.RINGBUF,
  MapType.BLOOM_FILTER,
];

const REPORT_HELPERS: [ProgType, Helper][] = [
  [ProgType.TRACING, Helper.send_signal],
  [ProgType.TRACING, Helper.probe_read_kernel],
  [ProgType.TRACING, Helper.ringbuf_output],
  [ProgType.TRACING, Helper.get_current_task_btf],
  [ProgType.TRACING, Helper.d_path],
  [ProgType.LSM, Helper.d_path],
  [ProgType.KPROBE, Helper.send_signal],
  [ProgType.KPROBE, Helper.override_return],
  [ProgType.KPROBE, Helper.probe_read_kernel],
  [ProgType.KPROBE, Helper.ringbuf_output],
  [ProgType.KPROBE, Helper.get_current_task_btf],
  [ProgType.TRACEPOINT, Helper.send_signal],
];

function progKey(t: ProgType): string {
  return (ProgType[t] ?? String(t)).toLowerCase();
}

export function probeAll(): FeatureReport {
  const report: FeatureReport = {
    kernel: { release: release(), arch: arch(), btf: haveKernelBtf() },
    programTypes: {},
    mapTypes: {},
    helpers: {},
    attach: {},
    lsm: { active: null, bpfListed: false },
  };
  for (const t of REPORT_PROG_TYPES) report.programTypes[progKey(t)] = probeProgType(t);
  for (const t of REPORT_MAP_TYPES) report.mapTypes[(MapType[t] ?? String(t)).toLowerCase()] = probeMapType(t);
  for (const [t, h] of REPORT_HELPERS) report.helpers[`${progKey(t)}/${Helper[h]}`] = probeHelper(t, h);
  for (const k of ATTACH_KINDS) report.attach[k] = probeAttach(k);
  const lsms = activeLsms();
  report.lsm = { active: lsms, bpfListed: lsms?.includes("bpf") ?? false };
  return report;
}

