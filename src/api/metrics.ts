// Prometheus text exposition (format 0.0.4) of the agent's status. Metric names follow
// Tetragon's (reference/tetragon.md §6) with the ward_ prefix.
import { DROP_REASONS, type SinkStats } from "../export/sink.ts";
import type { AgentStatus } from "./deps.ts";

type Labels = Record<string, string>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function sample(name: string, labels: Labels, value: number): string {
  const l = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return `${name}${l.length ? `{${l.join(",")}}` : ""} ${Number.isFinite(value) ? value : 0}`;
}

class Exposition {
  readonly lines: string[] = [];
  metric(name: string, type: "counter" | "gauge", help: string, samples: [Labels, number][]): void {
    this.lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) this.lines.push(sample(name, labels, v));
  }
  text(): string {
    return `${this.lines.join("\n")}\n`;
  }
}

/** Event types are reported as Tetragon names them in filters (PROCESS_EXEC). */
function typeLabel(key: string): string {
  return key.toUpperCase();
}

export function renderMetrics(s: AgentStatus): string {
  const e = new Exposition();
  e.metric("ward_build_info", "gauge", "Build information; always 1.", [[{ version: s.version }, 1]]);
  e.metric("ward_uptime_seconds", "gauge", "Seconds since the agent started.", [[{}, s.uptime_seconds]]);
  e.metric("ward_ready", "gauge", "1 when every sensor is attached.", [[{}, s.ready ? 1 : 0]]);
  e.metric(
    "ward_events_total",
    "counter",
    "Events produced, by type.",
    Object.entries(s.events.by_type).map(([t, n]) => [{ type: typeLabel(t) }, n]),
  );
  e.metric(
    "ward_events_lost_total",
    "counter",
    "Events lost before reaching a consumer, by reason.",
    Object.entries(s.events.lost).map(([reason, n]) => [{ reason }, n]),
  );
  e.metric("ward_event_subscribers", "gauge", "Open /v1/events streams.", [[{}, s.events.subscribers]]);
  const byState = new Map<string, number>([["enabled", 0], ["disabled", 0]]);
  for (const p of s.policies) {
    const st = p.enabled ? "enabled" : "disabled";
    byState.set(st, (byState.get(st) ?? 0) + 1);
  }
  e.metric("ward_policies", "gauge", "Policies loaded, by state (none is enforced in the kernel yet).", [...byState].map(([state, n]) => [{ state }, n]));
  e.metric("ward_sensor_up", "gauge", "1 when the sensor is running.", s.sensors.map((x) => [{ sensor: x.name, state: x.state }, x.state === "running" ? 1 : 0]));
  if (s.sink_stats !== undefined) sinkMetrics(e, s.sink_stats);
  const scoped = s.policies.filter((p) => p.scope !== undefined);
  if (scoped.length > 0) {
    e.metric("ward_policy_scope_members", "gauge", "Workloads in a scoped policy's kernel scope (0: the policy enforces nothing yet).", scoped.map((p) => [{ policy: p.name }, p.scope!.members]));
  }
  if (s.workloads !== undefined) {
    e.metric("ward_workloads", "gauge", "Workloads the agent knows, by who reported them.", Object.entries(s.workloads.by_source).map(([source, n]) => [{ source }, n]));
  }
  if (s.process_cache_size !== undefined) {
    e.metric("ward_process_cache_size", "gauge", "Entries in the user-space process cache.", [[{}, s.process_cache_size]]);
  }
  if (s.kubernetes !== undefined) kubernetesMetrics(e, s.kubernetes);
  return e.text();
}

/** The Kubernetes watches (--enable-k8s-api): alert on a watch not synced or erring, and on refused CRs. */
function kubernetesMetrics(e: Exposition, k: NonNullable<AgentStatus["kubernetes"]>): void {
  const per = (f: (w: (typeof k.watches)[number]) => number): [Labels, number][] => k.watches.map((w) => [{ resource: w.resource }, f(w)]);
  e.metric("ward_k8s_connected", "gauge", "1 once the API server answered at start (0 while the agent waits for it).", [[{}, k.state === "connected" ? 1 : 0]]);
  e.metric("ward_k8s_watch_synced", "gauge", "1 once the watch's first list has been applied.", per((w) => (w.synced ? 1 : 0)));
  e.metric("ward_k8s_watch_up", "gauge", "1 while a watch request is open.", per((w) => (w.watching ? 1 : 0)));
  e.metric("ward_k8s_watch_lists_total", "counter", "Lists made (the first, and each re-list).", per((w) => w.lists));
  e.metric("ward_k8s_watch_relists_total", "counter", "Re-lists after 410 Gone (the watch's resourceVersion was compacted).", per((w) => w.relists));
  e.metric("ward_k8s_watch_errors_total", "counter", "Failed requests and bad watch events (each retried with backoff).", per((w) => w.errors));
  e.metric("ward_k8s_pods", "gauge", "This node's pods in the pod cache.", [[{}, k.pods]]);
  e.metric("ward_k8s_containers", "gauge", "Containers of this node's pods in the workload registry, by whether their cgroup is known.", [
    [{ cgroup: "found" }, k.containers],
    [{ cgroup: "pending" }, k.pending_containers.length],
  ]);
  if (k.policies !== undefined) {
    const by = { applied: 0, error: 0, skipped: 0 };
    for (const p of k.policies) by[p.state]++;
    // Tetragon's tetragon_tracingpolicy_loaded{state}, for the CRs.
    e.metric("ward_k8s_tracingpolicies", "gauge", "TracingPolicy resources: applied, refused (error), or skipped (spec.nodeSelector does not select this node).", Object.entries(by).map(([state, n]) => [{ state }, n]));
  }
}

/** Per-sink counters (src/export/queued.ts): sent + dropped + queued = written, for every sink. */
function sinkMetrics(e: Exposition, sinks: SinkStats[]): void {
  const per = (f: (x: SinkStats) => number): [Labels, number][] => sinks.map((x) => [{ sink: x.name, kind: x.kind }, f(x)]);
  e.metric("ward_sink_events_written_total", "counter", "Events handed to the sink by the agent.", per((x) => x.written));
  e.metric("ward_sink_events_sent_total", "counter", "Events the sink's server accepted (syslog over UDP: handed to the socket).", per((x) => x.sent));
  e.metric("ward_sink_events_retried_total", "counter", "Events in batches that failed and were sent again, once per retry.", per((x) => x.retried));
  e.metric(
    "ward_sink_events_dropped_total",
    "counter",
    "Events the sink gave up on: queue_full (oldest dropped), retry_budget, rejected by the server, shutdown.",
    sinks.flatMap((x) => DROP_REASONS.map((r): [Labels, number] => [{ sink: x.name, kind: x.kind, reason: r }, x.dropped[r]])),
  );
  e.metric("ward_sink_queue_events", "gauge", "Events waiting in the sink's bounded queue or its batch in flight.", per((x) => x.queued));
  e.metric("ward_sink_up", "gauge", "0 while the sink's last send failed.", per((x) => (x.up ? 1 : 0)));
}
