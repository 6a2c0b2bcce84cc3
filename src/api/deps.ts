// What the HTTP API needs from the agent. The API owns no state: tests hand it fakes,
// the agent hands it the real store, hub and status.
import type { EventSource } from "../agent/event-hub.ts";
import type { PolicyInfo, PolicyStore } from "../agent/policy-store.ts";
import type { SensorState } from "../agent/sensor.ts";
import type { SinkStats } from "../export/sink.ts";
import type { KubernetesStatus } from "../agent/kubernetes.ts";
import type { MemoryStatus } from "../agent/footprint.ts";
import type { WorkloadRegistry } from "../workloads/registry.ts";

export interface SensorReport {
  name: string;
  state: SensorState;
  error?: string;
  counters?: Record<string, number>;
}

/** GET /v1/status body, and the source of /metrics. */
export interface AgentStatus {
  version: string;
  node_name: string;
  pid: number;
  started_at: string;
  uptime_seconds: number;
  /** True once every sensor is attached (the same condition as /healthz 200). */
  ready: boolean;
  sensors: SensorReport[];
  events: {
    total: number;
    by_type: Record<string, number>;
    /** Events lost, by reason (ring buffer overrun, slow API subscriber...). */
    lost: Record<string, number>;
    subscribers: number;
    sinks: string[];
  };
  /** Per export sink: sent, retried, dropped (by reason), queued (src/export/queued.ts). */
  sink_stats?: SinkStats[];
  /** RSS and JS heap figures (src/agent/footprint.ts says how to read them). */
  memory?: MemoryStatus;
  /** Size of the user-space process cache, when the process sensor reports it. */
  process_cache_size?: number;
  policies: PolicyInfo[];
  /** The workload registry: entries by source, and the cgroup directories the scan feeder watches. */
  workloads?: { total: number; by_source: Record<string, number>; watched_cgroups?: number };
  /** With --enable-k8s-api: the watches (synced, resourceVersion, re-lists, errors), pods, refused CRs. */
  kubernetes?: KubernetesStatus;
}

export type PolicyStoreApi = Pick<PolicyStore, "add" | "list" | "info" | "get" | "delete" | "setEnabled" | "setMode" | "countByState">;

export interface ApiDeps {
  /** The bearer token every /v1 request must present. */
  token: string;
  ready(): boolean;
  status(): AgentStatus;
  policies: PolicyStoreApi;
  events: EventSource;
  /** The agent's workload registry (GET /v1/workloads; the OCI hook's PUT/DELETE write it); without it PUT/DELETE answer 503. */
  workloads?: WorkloadRegistry;
  /**
   * The cgroup v2 root the agent sees. When set, a reported workload's cgroup directory must
   * exist there with the reported id (the kernel filters on that id); undefined: trusted as sent.
   */
  cgroupRoot?: string;
  /**
   * Resolves once the registry writes other feeders queued in reaction to a change have
   * settled (the pod watch merging a reported container with its pod's labels). PUT
   * /v1/workloads/:id waits for it before answering.
   */
  settleWorkloads?: () => Promise<void>;
  /** Largest request body accepted, in bytes (default 1 MiB). */
  maxBodyBytes?: number;
  /** Interval of SSE keep-alive comments, in ms (default 15 s). */
  sseKeepAliveMs?: number;
}
