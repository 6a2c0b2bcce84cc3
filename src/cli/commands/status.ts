// ward status: the agent's status from GET /v1/status, for people or (-o json) for scripts.
import type { AgentStatus } from "../../api/deps.ts";
import { parseArgs, UsageError } from "../args.ts";
import { AgentClient } from "../client.ts";

const USAGE = "usage: ward status [-o text|json]\n";

function duration(seconds: number): string {
  const d = Math.floor(seconds / 86400);
  const h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = seconds % 60;
  return [d && `${d}d`, h && `${h}h`, m && `${m}m`, `${s}s`].filter(Boolean).join("");
}

/** "a 1, b 2" sorted by name; zero counts are left out (a loss counter at 0 is no news). */
function counts(rec: Record<string, number>): string {
  const parts = Object.entries(rec)
    .filter(([, v]) => v !== 0)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([k, v]) => `${k} ${v}`);
  return parts.length ? parts.join(", ") : "none";
}

/** formatStatus renders the human form; exported for tests. */
export function formatStatus(s: AgentStatus): string {
  const out: string[] = [];
  out.push(`ward ${s.version} on ${s.node_name} (pid ${s.pid}), up ${duration(s.uptime_seconds)}, ${s.ready ? "ready" : "not ready"}`);
  out.push("sensors:");
  if (s.sensors.length === 0) out.push("  (none)");
  for (const x of s.sensors) out.push(`  ${x.name.padEnd(16)} ${x.state}${x.error ? `: ${x.error}` : ""}`);
  out.push(`events: ${s.events.total} (${counts(s.events.by_type)})`);
  out.push(`lost: ${counts(s.events.lost)}`);
  out.push(`streams: ${s.events.subscribers}; sinks: ${s.events.sinks.join(", ") || "none"}`);
  // Per sink, the counters /metrics has as ward_sink_*: sent + dropped + queued = written.
  for (const k of s.sink_stats ?? []) {
    const dropped = Object.values(k.dropped).reduce((a, b) => a + b, 0);
    out.push(
      `  sink ${k.name} (${k.kind}) ${k.up ? "up" : "down"}: written ${k.written}, sent ${k.sent}, retried ${k.retried}, dropped ${dropped}${dropped > 0 ? ` (${counts(k.dropped)})` : ""}, queued ${k.queued}${k.lastError ? `; last error: ${k.lastError}` : ""}`,
    );
  }
  if (s.process_cache_size !== undefined) out.push(`process cache: ${s.process_cache_size}`);
  if (s.workloads !== undefined) out.push(`workloads: ${s.workloads.total} (${counts(s.workloads.by_source)})`);
  out.push(`policies: ${s.policies.length}`);
  for (const p of s.policies) {
    out.push(`  ${p.name.padEnd(24)} ${p.mode.padEnd(8)} ${p.state}`);
    if (p.scope !== undefined) out.push(`    scope ${p.scope.scope}: ${p.scope.members} workload${p.scope.members === 1 ? "" : "s"}${p.scope.note ? ` (${p.scope.note})` : ""}`);
    // Per hook: the kernel mechanism on this host and how each action is honored there.
    for (const h of p.hooks ?? []) {
      out.push(`    ${h.path} ${h.hook}: ${h.mechanism}`);
      for (const a of h.actions) out.push(`      selector ${a.selector} ${a.action}: ${a.honored}`);
      for (const b of h.bypasses) out.push(`      BYPASS: ${b}`);
      for (const b of h.binaries ?? []) for (const e of b.entries) out.push(`      selector ${b.selector} matchBinaries ${b.op} ${e.path}: ${e.match}`);
    }
  }
  if (s.kubernetes !== undefined) out.push(...kubernetesLines(s.kubernetes));
  return `${out.join("\n")}\n`;
}

/** The Kubernetes section: each watch's state, the pods fed to the registry, each CR's outcome. */
function kubernetesLines(k: NonNullable<AgentStatus["kubernetes"]>): string[] {
  const out = [`kubernetes: ${k.server} (${k.config}), node ${k.node}`];
  if (k.state === "connecting") out.push(`  connecting (attempt ${k.connect_attempts})${k.connect_error !== undefined ? `: ${k.connect_error}` : ""}`);
  for (const w of k.watches) {
    const state = `${w.synced ? "synced" : "not synced"}, ${w.watching ? "watching" : "not watching"}`;
    const counts = `resourceVersion ${w.resource_version || "-"}, lists ${w.lists} (re-lists after 410 ${w.relists}), watches ${w.watches}, bookmarks ${w.bookmarks}, errors ${w.errors}`;
    out.push(`  ${w.resource.padEnd(36)} ${state}; ${counts}`);
    if (w.last_error !== undefined) out.push(`    last error ${w.last_error_at ?? ""}: ${w.last_error}`);
  }
  out.push(`  pods: ${k.pods}; containers in the workload registry: ${k.containers}${k.pending_containers.length > 0 ? `; waiting for their cgroup: ${k.pending_containers.join(", ")}` : ""}`);
  for (const p of k.policies ?? []) {
    out.push(`  ${p.kind} ${p.namespace !== undefined ? `${p.namespace}/` : ""}${p.name}: ${p.state}${p.error !== undefined ? `: ${p.error}` : ""}${p.reason !== undefined ? `: ${p.reason}` : ""}`);
  }
  return out;
}

export async function run(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs("status", argv, { output: { kind: "string", short: "o" }, help: { kind: "bool", short: "h" } });
  if (flags.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length) throw new UsageError(`ward status: unexpected argument "${positionals[0]}"\n${USAGE}`);
  const output = flags.output ?? "text";
  if (output !== "text" && output !== "json") throw new UsageError(`ward status: -o must be text or json, not "${String(output)}"`);
  const status = await AgentClient.fromEnv().json<AgentStatus>("GET", "/v1/status");
  process.stdout.write(output === "json" ? `${JSON.stringify(status, null, 2)}\n` : formatStatus(status));
  return 0;
}
