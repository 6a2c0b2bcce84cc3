// The agent's PolicyBackend: the policy manager (src/sensors/manager.ts) fed with what the
// running sensors provide (the process cache for events, the agent's event hub), and the
// kernel's hook features probed once at start.
import { join } from "node:path";
import { BootClock } from "../events/time.ts";
import type { TracingPolicy } from "../policy/types.ts";
import { GenericBackend } from "../sensors/generic-backend.ts";
import { GenericSensor, type GenericPinnedPolicy } from "../sensors/generic.ts";
import { PolicyManager, type GenericHooks, type SockHooks } from "../sensors/manager.ts";
import { SockBackend } from "../sensors/sock-backend.ts";
import { SockSensor, type SockPinnedPolicy } from "../sensors/sock.ts";
import { hostHookFeatures, type HookFeatures } from "../sensors/resolve.ts";
import type { SensorContext } from "./agent.ts";
import type { PolicyBackend, PolicyRecord } from "./policy-store.ts";
import { ProcessSensor } from "./process-sensor.ts";
import type { Sensor } from "./sensor.ts";
import { ScopeMaps } from "../workloads/scope-maps.ts";
import { WorkloadScopes } from "../workloads/scopes.ts";
import { cgroupV2Mount } from "../workloads/cgroup-identity.ts";

export class PolicyDocumentError extends Error {
  override name = "PolicyDocumentError";
}

function isTracingPolicy(d: unknown): d is TracingPolicy {
  if (typeof d !== "object" || d === null) return false;
  const r = d as Record<string, unknown>;
  return typeof r.metadata === "object" && r.metadata !== null && typeof r.spec === "object" && r.spec !== null;
}

export interface PolicyBackendOptions {
  features?: HookFeatures;
  /** Default: the generic sensor (generic.o), loaded when a policy first needs it, sharing the process map. */
  generic?: GenericHooks & { close?(opts?: { keepPinned?: boolean }): void };
  /** Default: the socket sensor (sock_addr.o at the cgroup v2 root), loaded when a policy first needs it, sharing the process map. */
  sock?: SockHooks & { close?(opts?: { keepPinned?: boolean }): void };
}

/** Builds the backend over the agent's sensors; the process sensor (if any) enriches events. */
export function createPolicyBackend(ctx: SensorContext, sensors: readonly Sensor[], opts: PolicyBackendOptions = {}): PolicyBackend {
  const ps = sensors.find((s): s is ProcessSensor => s instanceof ProcessSensor)?.kernel;
  const encode = ps?.pipeline.encode ?? { nodeName: ctx.nodeName, clock: new BootClock() };
  const processMap = ps?.processMap;
  // One pair of kernel scope maps for every object; scopes follow the agent's registry.
  // Scopes are cgroup v2 ids: without the hierarchy every process is in its root and no
  // workload can be told apart, so scoped policies are refused instead of never matching.
  let scopes: WorkloadScopes | undefined;
  if (cgroupV2Mount() === undefined) {
    ctx.log("workload scopes unavailable (scoped policies will be refused): no cgroup v2 hierarchy is mounted");
  } else {
    try {
      scopes = new WorkloadScopes(ctx.workloads, ScopeMaps.create());
      scopes.start().catch((e: unknown) => ctx.log(`workload scopes: ${(e as Error).message}`));
    } catch (e) {
      ctx.log(`workload scopes unavailable (scoped policies will be refused): ${(e as Error).message}`);
    }
  }
  const scopeMaps = scopes?.maps;
  const sensorOpts = { ...(processMap ? { processMap } : {}), ...(scopeMaps ? { scopeMaps } : {}) };
  const previous = ctx.pins.previous;
  const adoptFrom = previous?.shared.generic !== undefined ? join(ctx.bpfDir, previous.shared.generic) : undefined;
  const reserve = [...Object.values(previous?.policies ?? {}), ...Object.values(previous?.superseded ?? {})].flatMap((p) => (p.generic !== undefined ? [p.generic as GenericPinnedPolicy] : []));
  const generic = opts.generic ?? new GenericBackend(() => new GenericSensor({ ...sensorOpts, lazyPrograms: true, ...(adoptFrom !== undefined ? { adoptFrom, reserve } : {}) }));
  const processSensor = sensors.find((s): s is ProcessSensor => s instanceof ProcessSensor);
  const persist = ctx.pins.keep || previous !== undefined
    ? { bpfDir: ctx.bpfDir, keep: ctx.pins.keep, previous, ...(processSensor !== undefined ? { process: processSensor.pins } : {}) }
    : undefined;
  const sockFrom = previous?.shared.sock !== undefined ? join(ctx.bpfDir, previous.shared.sock) : undefined;
  const sockReserve = [...Object.values(previous?.policies ?? {}), ...Object.values(previous?.superseded ?? {})].flatMap((p) => (p.sock !== undefined ? [p.sock as SockPinnedPolicy] : []));
  const sock = opts.sock ?? new SockBackend(() => new SockSensor({ ...sensorOpts, ...(sockFrom !== undefined ? { adoptFrom: sockFrom, reserve: sockReserve } : {}) }));
  const manager = new PolicyManager({
    features: withProcessMap(opts.features ?? { ...hostHookFeatures(), ...(ctx.pins.keep ? { keepSensors: true } : {}) }, processMap !== undefined),
    encode,
    publish: (ev) => ctx.publish(ev),
    log: (msg) => ctx.log(msg),
    recordLoss: (reason, n) => ctx.recordLoss(reason, n),
    ...(ps ? { processes: ps.cache } : {}),
    ...(processMap ? { processMap } : {}),
    generic,
    sock,
    ...(persist !== undefined ? { persist } : {}),
    ...(scopes ? { scopes } : {}),
  });
  return {
    apply(record: PolicyRecord): void {
      if (!isTracingPolicy(record.document)) throw new PolicyDocumentError(`policy ${record.name}: the stored document is not a TracingPolicy`);
      manager.apply(record.document, { mode: record.mode, enabled: record.enabled });
    },
    remove: (name) => manager.remove(name),
    setEnabled: (name, enabled) => void manager.setEnabled(name, enabled),
    setMode: (name, mode) => void manager.setMode(name, mode),
    info: (name) => {
      const st = manager.state(name);
      return { ...st, ...(st.scope ? { state: `${st.state} (scope: ${st.scope.scope}; ${st.scope.members} workload${st.scope.members === 1 ? "" : "s"})` } : {}) };
    },
    finishStart: () => manager.finishStart(),
    close: (o = {}) => {
      const keepPinned = o.keepAttached === true;
      try {
        manager.close({ keepPinned });
      } finally {
        try {
          generic.close?.({ keepPinned });
        } finally {
          try {
            sock.close?.({ keepPinned });
          } finally {
            // After every object that shares the maps is gone.
            scopes?.close();
            scopes?.maps.close();
          }
        }
      }
    },
  };
}

/** The features with what the agent runs: fanotify decisions read the process sensor's map when it exists. */
function withProcessMap(f: HookFeatures, processMap: boolean): HookFeatures {
  if (f.fanotify === undefined || !processMap) return f;
  return { ...f, fanotify: { ...f.fanotify, processMap: true } };
}
