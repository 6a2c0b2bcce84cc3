// perf_event_open plumbing for tracepoint, kprobe and uprobe attachment (loader.md §2.6):
// tracefs lookup, dynamic PMU types, and the perf_event_attr layout.
import { existsSync, readFileSync } from "node:fs";
import { PERF_ATTR_SIZE, PERF_FLAG_FD_CLOEXEC, PERF_SAMPLE_RAW, PERF_TYPE_TRACEPOINT } from "./constants.ts";
import { Fd } from "./fd.ts";
import { addr, perfEventOpen } from "./sys.ts";

/** A kernel feature this machine lacks; `feature` names it for reports. */
export class UnsupportedFeatureError extends Error {
  override name = "UnsupportedFeatureError";
  constructor(
    readonly feature: string,
    message: string,
  ) {
    super(message);
  }
}

let tracefs: string | undefined;
/** The tracefs root (/sys/kernel/tracing, or the old debugfs location). */
export function tracefsRoot(): string {
  if (tracefs !== undefined) return tracefs;
  for (const p of ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"]) {
    if (existsSync(`${p}/events`)) {
      tracefs = p;
      return p;
    }
  }
  throw new UnsupportedFeatureError("tracefs", "find tracefs: neither /sys/kernel/tracing nor /sys/kernel/debug/tracing is mounted");
}

/** The perf id of tracepoint category/name (tracefs events/<cat>/<name>/id). */
export function tracepointId(category: string, name: string): number {
  if (!/^[A-Za-z0-9_.-]+$/.test(category) || !/^[A-Za-z0-9_.-]+$/.test(name)) {
    throw new RangeError(`tracepoint ${category}/${name}: invalid name`);
  }
  const path = `${tracefsRoot()}/events/${category}/${name}/id`;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch {
    throw new UnsupportedFeatureError("tracepoint", `find tracepoint ${category}/${name}: ${path} does not exist`);
  }
  const id = Number.parseInt(text.trim(), 10);
  if (!Number.isInteger(id)) throw new Error(`read tracepoint id ${path}: "${text.trim()}"`);
  return id;
}

const PMU_DIR = "/sys/bus/event_source/devices";

/** The dynamic PMU type of "kprobe" or "uprobe", or undefined when this kernel has no such PMU. */
export function pmuType(pmu: "kprobe" | "uprobe"): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(`${PMU_DIR}/${pmu}/type`, "utf8").trim(), 10);
    return Number.isInteger(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** The config bit that marks a return probe ("config:0" in format/retprobe). */
export function retprobeBit(pmu: "kprobe" | "uprobe"): number {
  const text = readFileSync(`${PMU_DIR}/${pmu}/format/retprobe`, "utf8").trim();
  const m = /^config:(\d+)$/.exec(text);
  if (m === null) throw new Error(`parse ${PMU_DIR}/${pmu}/format/retprobe: "${text}"`);
  return Number(m[1]);
}

export interface PerfAttr {
  type: number;
  config: bigint;
  config1?: bigint;
  config2?: bigint;
  samplePeriod?: bigint;
  sampleType?: bigint;
  wakeupEvents?: number;
}

/** A zeroed perf_event_attr with the fields the BPF attach paths use. */
export function encodePerfAttr(a: PerfAttr): Uint8Array {
  const b = new Uint8Array(PERF_ATTR_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, a.type, true);
  v.setUint32(4, PERF_ATTR_SIZE, true);
  v.setBigUint64(8, a.config, true);
  v.setBigUint64(16, a.samplePeriod ?? 0n, true);
  v.setBigUint64(24, a.sampleType ?? 0n, true);
  v.setUint32(48, a.wakeupEvents ?? 0, true);
  v.setBigUint64(56, a.config1 ?? 0n, true);
  v.setBigUint64(64, a.config2 ?? 0n, true);
  return b;
}

/** Open the perf event of a tracepoint on all CPUs (pid -1, cpu 0: BPF runs wherever it fires). */
export function openTracepointEvent(category: string, name: string): Fd {
  const attr = encodePerfAttr({
    type: PERF_TYPE_TRACEPOINT,
    config: BigInt(tracepointId(category, name)),
    samplePeriod: 1n,
    sampleType: BigInt(PERF_SAMPLE_RAW),
    wakeupEvents: 1,
  });
  return new Fd(perfEventOpen(attr, -1, 0, -1, PERF_FLAG_FD_CLOEXEC));
}

/**
 * Open a kprobe/uprobe perf event through its PMU. `target` is the symbol (kprobe) or binary path
 * (uprobe), `offset` the symbol offset or file offset.
 */
export function openProbeEvent(
  pmu: "kprobe" | "uprobe",
  target: string,
  offset: bigint,
  opts: { retprobe?: boolean; pid?: number; refCtrOffset?: bigint } = {},
): Fd {
  const type = pmuType(pmu);
  if (type === undefined) {
    throw new UnsupportedFeatureError(
      pmu,
      pmu === "kprobe"
        ? "attach kprobe: this kernel has no kprobe PMU (/sys/bus/event_source/devices/kprobe is absent; kprobes are not built in), use a tp_btf or tracepoint hook instead"
        : "attach uprobe: this kernel has no uprobe PMU (/sys/bus/event_source/devices/uprobe is absent)",
    );
  }
  let config = 0n;
  if (opts.retprobe === true) config |= 1n << BigInt(retprobeBit(pmu));
  if (opts.refCtrOffset !== undefined) config |= opts.refCtrOffset << 32n;
  const str = new TextEncoder().encode(`${target}\0`);
  const attr = encodePerfAttr({
    type,
    config,
    config1: BigInt(addr(str)),
    config2: offset,
    samplePeriod: 1n,
    wakeupEvents: 1,
  });
  const pid = opts.pid ?? -1;
  const fd = perfEventOpen(attr, pid, pid === -1 ? 0 : -1, -1, PERF_FLAG_FD_CLOEXEC);
  void str; // keep the string referenced until the syscall returned
  return new Fd(fd);
}
