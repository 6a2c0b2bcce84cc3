// Loki sink: batches go to Grafana Loki's push API (POST /loki/api/v1/push, JSON body)
//
//   {"streams":[{"stream":{"node":"n1","type":"process_exec","namespace":"default"},
//                "values":[["1764777069123456789","{\"process_exec\":...}"], ...]}]}
//
// Labels are the node (node_name), the event type, the policy (policy_name, for policy
// events) and the Kubernetes namespace (process.pod.namespace); a label with no value is left
// out, as Loki does not store empty labels. Each entry carries the event's own time in
// nanoseconds. Loki rejects (or, since 2.4, may reject outside a window) entries older than
// the newest one of their stream, so the sink keeps the last timestamp per stream and moves an
// event that would go backwards to last + 1 ns; the exact time stays in the JSON line.
// The per-stream memory is bounded: past MAX_STREAMS the oldest-used stream is forgotten.
import { QueuedSink, type QueueOptions } from "../queued.ts";
import { lineText } from "../lines.ts";
import type { Batch, Transport } from "../sink.ts";
import { post, splitCredentials } from "./http.ts";

export interface LokiOptions extends QueueOptions {
  name?: string;
  /** Base URL (http://host:3100) or the full push URL. */
  url: string;
  /** X-Scope-OrgID, for a multi-tenant Loki. */
  tenant?: string;
  /** Per-request timeout, ms (default 10 s). */
  timeoutMs?: number;
}

const MAX_STREAMS = 10_000;

/** An event's `time` as nanoseconds since the epoch (a decimal string), or undefined. */
export function eventTimeNs(time: unknown): bigint | undefined {
  if (typeof time !== "string") return undefined;
  const m = /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)$/.exec(time);
  if (!m) return undefined;
  const ms = Date.parse(`${m[1]}${m[3]}`);
  if (!Number.isFinite(ms)) return undefined;
  return BigInt(ms / 1000) * 1_000_000_000n + BigInt((m[2] ?? "").padEnd(9, "0"));
}

export interface LokiLabels {
  node?: string;
  type: string;
  policy?: string;
  namespace?: string;
}

/** Labels of one event line, and its time. */
export function lokiLabels(line: string): { labels: LokiLabels; ns: bigint | undefined } {
  let ev: Record<string, unknown>;
  try {
    ev = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return { labels: { type: "unknown" }, ns: undefined };
  }
  let type = "unknown";
  for (const k of Object.keys(ev)) {
    if (k !== "node_name" && k !== "time" && k !== "cluster_name" && k !== "node_labels" && k !== "aggregation_info") {
      type = k;
      break;
    }
  }
  const body = (ev[type] ?? {}) as { policy_name?: unknown; process?: { pod?: { namespace?: unknown } } };
  const labels: LokiLabels = { type };
  if (typeof ev.node_name === "string" && ev.node_name !== "") labels.node = ev.node_name;
  if (typeof body.policy_name === "string" && body.policy_name !== "") labels.policy = body.policy_name;
  const ns = body.process?.pod?.namespace;
  if (typeof ns === "string" && ns !== "") labels.namespace = ns;
  return { labels, ns: eventTimeNs(ev.time) };
}

export class LokiTransport implements Transport {
  readonly kind = "loki";
  readonly #url: string;
  readonly #headers: Record<string, string>;
  /** Newest timestamp sent per stream key; a Map iterates in insertion order, which we keep as recency. */
  readonly #last = new Map<string, bigint>();

  constructor(private readonly opts: LokiOptions) {
    const { url, headers } = splitCredentials(opts.url);
    if (url.pathname === "" || url.pathname === "/") url.pathname = "/loki/api/v1/push";
    this.#url = url.toString();
    this.#headers = { "content-type": "application/json", ...headers, ...(opts.tenant ? { "x-scope-orgid": opts.tenant } : {}) };
  }

  /** The request body for a batch; exported through the sink for tests. */
  body(batch: Batch, now = () => BigInt(Date.now()) * 1_000_000n): string {
    const streams = new Map<string, { stream: LokiLabels; values: [string, string][] }>();
    const pending = new Map<string, bigint>();
    for (const l of batch) {
      // The labels come from the parsed event and the entry is a JSON string: both need the text.
      const line = lineText(l);
      const { labels, ns } = lokiLabels(line);
      const key = `${labels.node ?? ""}\0${labels.type}\0${labels.policy ?? ""}\0${labels.namespace ?? ""}`;
      let s = streams.get(key);
      if (!s) streams.set(key, (s = { stream: labels, values: [] }));
      const prev = pending.get(key) ?? this.#last.get(key);
      let ts = ns ?? now();
      if (prev !== undefined && ts <= prev) ts = prev + 1n;
      pending.set(key, ts);
      s.values.push([ts.toString(), line]);
    }
    this.#pending = pending;
    return JSON.stringify({ streams: [...streams.values()] });
  }

  #pending = new Map<string, bigint>();

  async send(batch: Batch): Promise<void> {
    // The same batch may be sent again after a failure: its body is rebuilt from the last
    // timestamps Loki acknowledged, so a retry carries the same timestamps (Loki drops exact
    // duplicates of an entry it already has).
    const body = this.body(batch);
    await post(`loki ${this.#url}`, this.#url, { body, headers: this.#headers }, this.opts.timeoutMs ?? 10_000);
    for (const [k, v] of this.#pending) {
      this.#last.delete(k);
      this.#last.set(k, v);
    }
    while (this.#last.size > MAX_STREAMS) this.#last.delete(this.#last.keys().next().value!);
  }
}

export class LokiSink extends QueuedSink {
  constructor(opts: LokiOptions) {
    super(opts.name ?? "loki", new LokiTransport(opts), opts);
  }
}
