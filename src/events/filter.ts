// Event filters shared by the agent's /v1/events stream and `ward events` reading stdin.
// They work on the exported JSON form (reference/tetragon.md §2.1), so the same filter
// gives the same answer on a live stream and on a saved export file.
//
// Semantics follow Tetragon's `Filter` allow-list: every given field must match (AND);
// within a list field any value may match (OR). Regexes search anywhere in the string,
// as RE2 does in Tetragon (no implicit anchors).

/** One exported event: `{"<event_type_key>": {...}, "node_name": ..., "time": ...}`. */
export type EventJson = Record<string, unknown>;

/** What a client asks for; every field is optional and absent means "any". */
export interface EventFilterSpec {
  /** Event types, as Tetragon names them (PROCESS_EXEC) or as export keys (process_exec). */
  eventTypes?: string[];
  /** Regex over process.binary. */
  process?: string;
  /** Names of the policies that produced the event (`policy_name` in the event body). */
  policyNames?: string[];
  /** Kubernetes namespaces of process.pod; "" stands for host processes (no pod). */
  namespaces?: string[];
  /** Regex over process.pod.name. */
  pod?: string;
}

/** A filter that could not be built: an unknown event type or a regex that does not compile. */
export class FilterError extends Error {
  override name = "FilterError";
  readonly code = "bad_filter";
  constructor(
    readonly field: string,
    message: string,
  ) {
    super(message);
  }
}

/** Envelope keys that are not the event type key (reference/tetragon.md §2.1). */
const ENVELOPE_KEYS = new Set(["node_name", "time", "cluster_name", "node_labels", "aggregation_info"]);

/** Export keys of every event type Tetragon defines; the filter rejects anything else. */
export const EVENT_TYPE_KEYS: readonly string[] = [
  "process_exec",
  "process_exit",
  "process_kprobe",
  "process_tracepoint",
  "process_loader",
  "process_uprobe",
  "process_throttle",
  "process_lsm",
  "process_usdt",
  "test",
  "rate_limit_info",
];

/** The event's type key (e.g. "process_exec"), or undefined when the object has none. */
export function eventTypeOf(ev: EventJson): string | undefined {
  for (const key of Object.keys(ev)) {
    if (!ENVELOPE_KEYS.has(key)) return key;
  }
  return undefined;
}

/** Normalises "PROCESS_EXEC" and "process_exec" to the export key; throws FilterError otherwise. */
export function eventTypeKey(name: string): string {
  const key = name.trim().toLowerCase();
  if (!EVENT_TYPE_KEYS.includes(key)) {
    throw new FilterError("event_types", `unknown event type "${name}" (known: ${EVENT_TYPE_KEYS.map((k) => k.toUpperCase()).join(", ")})`);
  }
  return key;
}

function record(v: unknown): Record<string, unknown> | undefined {
  return typeof v === "object" && v !== null && !Array.isArray(v) ? (v as Record<string, unknown>) : undefined;
}

function compileRegex(field: string, source: string): RegExp {
  try {
    return new RegExp(source);
  } catch (err) {
    throw new FilterError(field, `bad regex for ${field}: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A compiled filter: call it on each event. */
export type EventPredicate = (ev: EventJson) => boolean;

/**
 * compileFilter turns a spec into a predicate. It throws FilterError for an unknown event
 * type or a bad regex, so a client hears about its mistake instead of seeing no events.
 */
export function compileFilter(spec: EventFilterSpec): EventPredicate {
  const types = spec.eventTypes?.length ? new Set(spec.eventTypes.map(eventTypeKey)) : undefined;
  const binary = spec.process !== undefined ? compileRegex("process", spec.process) : undefined;
  const policies = spec.policyNames?.length ? new Set(spec.policyNames) : undefined;
  const namespaces = spec.namespaces?.length ? new Set(spec.namespaces) : undefined;
  const pod = spec.pod !== undefined ? compileRegex("pod", spec.pod) : undefined;
  if (!types && !binary && !policies && !namespaces && !pod) return () => true;

  return (ev) => {
    const type = eventTypeOf(ev);
    if (types && (type === undefined || !types.has(type))) return false;
    const body = type !== undefined ? record(ev[type]) : undefined;
    const proc = record(body?.process);
    if (binary) {
      const b = proc?.binary;
      if (typeof b !== "string" || !binary.test(b)) return false;
    }
    if (policies) {
      const p = body?.policy_name;
      if (typeof p !== "string" || !policies.has(p)) return false;
    }
    const podInfo = record(proc?.pod);
    if (namespaces) {
      const ns = podInfo?.namespace;
      if (!namespaces.has(typeof ns === "string" ? ns : "")) return false;
    }
    if (pod) {
      const name = podInfo?.name;
      if (typeof name !== "string" || !pod.test(name)) return false;
    }
    return true;
  };
}

/** Query parameter names of GET /v1/events, in the spelling Tetragon's CLI flags use. */
export const FILTER_PARAMS = ["event_types", "process", "policy_names", "namespace", "pod"] as const;

function splitList(values: string[]): string[] {
  return values.flatMap((v) => v.split(",")).map((v) => v.trim()).filter((v) => v.length > 0);
}

/**
 * filterFromQuery reads a spec from URL query parameters. List parameters may repeat or
 * hold comma-separated values. Unknown parameters throw FilterError: a typo must not
 * silently widen the stream.
 */
export function filterFromQuery(params: URLSearchParams): EventFilterSpec {
  const spec: EventFilterSpec = {};
  for (const key of new Set(params.keys())) {
    if (!(FILTER_PARAMS as readonly string[]).includes(key)) {
      throw new FilterError(key, `unknown query parameter "${key}" (known: ${FILTER_PARAMS.join(", ")})`);
    }
  }
  const all = (k: string) => params.getAll(k);
  if (params.has("event_types")) spec.eventTypes = splitList(all("event_types"));
  if (params.has("process")) spec.process = lastOf("process", all("process"));
  if (params.has("policy_names")) spec.policyNames = splitList(all("policy_names"));
  // Namespaces are not split on empty entries: "" is the host namespace.
  if (params.has("namespace")) spec.namespaces = all("namespace").flatMap((v) => v.split(",")).map((v) => v.trim());
  if (params.has("pod")) spec.pod = lastOf("pod", all("pod"));
  return spec;
}

function lastOf(field: string, values: string[]): string {
  if (values.length !== 1) throw new FilterError(field, `query parameter "${field}" given ${values.length} times; give one regex`);
  return values[0]!;
}

/** filterToQuery is the inverse of filterFromQuery, for clients. */
export function filterToQuery(spec: EventFilterSpec): URLSearchParams {
  const q = new URLSearchParams();
  if (spec.eventTypes?.length) q.set("event_types", spec.eventTypes.join(","));
  if (spec.process !== undefined) q.set("process", spec.process);
  if (spec.policyNames?.length) q.set("policy_names", spec.policyNames.join(","));
  if (spec.namespaces?.length) q.set("namespace", spec.namespaces.join(","));
  if (spec.pod !== undefined) q.set("pod", spec.pod);
  return q;
}
