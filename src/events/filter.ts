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
 * A spec is one Tetragon `Filter` line (the CLI builds one allow-list filter the same way),
 * so /v1/events, `ward events` and the export allow/deny lists share one set of matchers.
 */
export function compileFilter(spec: EventFilterSpec): EventPredicate {
  const f: TetragonFilter = {};
  if (spec.eventTypes?.length) f.event_set = spec.eventTypes.map((t) => eventTypeKeyFor("event_types", t));
  if (spec.process !== undefined) f.binary_regex = [spec.process];
  if (spec.policyNames?.length) f.policy_names = spec.policyNames;
  if (spec.namespaces?.length) f.namespace = spec.namespaces;
  if (spec.pod !== undefined) f.pod_regex = [spec.pod];
  return compileTetragonFilter(f, { regexField: { binary_regex: "process", pod_regex: "pod" } });
}

// ---------------------------------------------------------------------------------------
// Tetragon `Filter` lines (reference/tetragon.md §4 "Filter fields"; pkg/filters in Tetragon):
// the export allow/deny lists (`--export-allowlist`, `--export-denylist`) are JSON objects,
// one a line. Within one object every given field must match (AND); within a list field any
// value may match (OR); a list of objects matches when any object does (OR).

/** One parsed filter line. Event types are held as export keys ("process_exec"). */
export interface TetragonFilter {
  binary_regex?: string[];
  parent_binary_regex?: string[];
  health_check?: boolean;
  namespace?: string[];
  pid?: number[];
  pid_set?: number[];
  event_set?: string[];
  arguments_regex?: string[];
  pod_regex?: string[];
  policy_names?: string[];
}

/** The fields ward implements, in the order Tetragon evaluates them (pkg/filters Filters). */
export const FILTER_FIELDS = [
  "binary_regex",
  "parent_binary_regex",
  "health_check",
  "namespace",
  "pid",
  "pid_set",
  "event_set",
  "arguments_regex",
  "pod_regex",
  "policy_names",
] as const;

/** Tetragon `EventType` numbers (reference/tetragon.md §2.1), for filters that give numbers. */
const EVENT_TYPE_NUMBERS: Record<number, string> = {
  1: "process_exec",
  5: "process_exit",
  9: "process_kprobe",
  10: "process_tracepoint",
  11: "process_loader",
  12: "process_uprobe",
  27: "process_throttle",
  28: "process_lsm",
  29: "process_usdt",
  40000: "test",
  40001: "rate_limit_info",
};

function eventTypeKeyFor(field: string, name: string): string {
  try {
    return eventTypeKey(name);
  } catch (err) {
    throw new FilterError(field, (err as Error).message);
  }
}

function stringList(field: string, v: unknown): string[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) throw new FilterError(field, `${field} must be a list of strings, not ${JSON.stringify(v)}`);
  return v as string[];
}

function pidList(field: string, v: unknown): number[] {
  if (!Array.isArray(v) || v.some((x) => typeof x !== "number" || !Number.isInteger(x) || x < 0 || x > 0xffffffff)) {
    throw new FilterError(field, `${field} must be a list of process ids (integers 0..4294967295), not ${JSON.stringify(v)}`);
  }
  return v as number[];
}

/**
 * parseFilterObject validates one filter object (a parsed JSON line or a YAML mapping).
 * Unknown fields are errors (Tetragon's JSON decoder ignores them, which turns a typo into a
 * filter that matches everything); so are regexes that do not compile. Throws FilterError
 * naming the field.
 */
export function parseFilterObject(v: unknown, opts: { pidSet?: boolean } = {}): TetragonFilter {
  const obj = record(v);
  if (!obj) throw new FilterError("", `a filter must be a JSON object, not ${JSON.stringify(v)}`);
  const f: TetragonFilter = {};
  for (const [k, val] of Object.entries(obj)) {
    switch (k) {
      case "binary_regex":
      case "parent_binary_regex":
      case "arguments_regex":
      case "pod_regex":
        f[k] = stringList(k, val);
        for (const r of f[k]!) compileRegex(k, r);
        break;
      case "namespace":
      case "policy_names":
        f[k] = stringList(k, val);
        break;
      case "health_check":
        if (typeof val !== "boolean") throw new FilterError(k, `health_check must be true or false, not ${JSON.stringify(val)}`);
        f.health_check = val;
        break;
      case "pid":
        f.pid = pidList(k, val);
        break;
      case "pid_set":
        f.pid_set = pidList(k, val);
        // Tetragon refuses pid_set without --enable-pid-set-filter: the descendant cache only
        // grows, so it is a testing aid, not a production filter.
        if (f.pid_set.length > 0 && !opts.pidSet) {
          throw new FilterError(k, "pid_set filters track descendants in a cache that only grows (testing and development only); set enable-pid-set-filter to allow them");
        }
        break;
      case "event_set":
        if (!Array.isArray(val)) throw new FilterError(k, `event_set must be a list of event types, not ${JSON.stringify(val)}`);
        f.event_set = val.map((t) => {
          if (typeof t === "number" && EVENT_TYPE_NUMBERS[t] !== undefined) return EVENT_TYPE_NUMBERS[t]!;
          if (typeof t === "string") return eventTypeKeyFor(k, t);
          throw new FilterError(k, `unknown event type ${JSON.stringify(t)} in event_set`);
        });
        break;
      default:
        throw new FilterError(k, `unknown filter field "${k}" (known: ${FILTER_FIELDS.join(", ")})`);
    }
  }
  return f;
}

/**
 * splitJsonObjects cuts text holding JSON objects one after another (newline-separated, as
 * Tetragon's flags take them; an object may span lines) into each object's text and the
 * 1-based line it starts on. Anything between objects other than whitespace is an error.
 */
export function splitJsonObjects(text: string): { text: string; line: number }[] {
  const out: { text: string; line: number }[] = [];
  let line = 1;
  let depth = 0;
  let start = -1;
  let startLine = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === "\n") line++;
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
      continue;
    }
    if (depth === 0) {
      if (c === "{") {
        start = i;
        startLine = line;
        depth = 1;
      } else if (!/\s/.test(c)) {
        throw new FilterError("", `line ${line}: expected a JSON object starting with "{", found ${JSON.stringify(c)}`);
      }
      continue;
    }
    if (c === '"') inString = true;
    else if (c === "{" || c === "[") depth++;
    else if (c === "}" || c === "]") {
      depth--;
      if (depth === 0) out.push({ text: text.slice(start, i + 1), line: startLine });
    }
  }
  if (depth !== 0) throw new FilterError("", `line ${startLine}: JSON object is not closed`);
  return out;
}

/** A filter line that could not be parsed: which line of the setting, which field. */
export class FilterLineError extends FilterError {
  override name = "FilterLineError";
  constructor(
    readonly line: number,
    field: string,
    message: string,
  ) {
    super(field, message);
  }
}

/** parseFilterLines reads Tetragon's JSON filter lines; throws FilterLineError (line, field). */
export function parseFilterLines(text: string, opts: { pidSet?: boolean } = {}): TetragonFilter[] {
  return parseJsonObjectLines(text, (v) => parseFilterObject(v, opts));
}

/**
 * Each JSON object of text (as splitJsonObjects cuts it) through parse. A split or JSON
 * error, or a FilterError from parse, comes back as FilterLineError naming the object's
 * line; any other error passes through.
 */
export function parseJsonObjectLines<T>(text: string, parse: (v: unknown) => T): T[] {
  let chunks: { text: string; line: number }[];
  try {
    chunks = splitJsonObjects(text);
  } catch (err) {
    const m = /^line (\d+): /.exec((err as Error).message);
    throw new FilterLineError(m ? Number(m[1]) : 1, "", (err as Error).message.replace(/^line \d+: /, ""));
  }
  return chunks.map(({ text: t, line }) => {
    let v: unknown;
    try {
      v = JSON.parse(t);
    } catch (err) {
      throw new FilterLineError(line, "", `not valid JSON: ${(err as Error).message}`);
    }
    try {
      return parse(v);
    } catch (err) {
      if (err instanceof FilterError) throw new FilterLineError(line, err.field, err.message);
      throw err;
    }
  });
}

/** The `process` of an event body (every type that has one), like Tetragon's ResponseGetProcess. */
function processOf(ev: EventJson): { body: Record<string, unknown> | undefined; proc: Record<string, unknown> | undefined; parent: Record<string, unknown> | undefined; type: string | undefined } {
  const type = eventTypeOf(ev);
  const body = type !== undefined ? record(ev[type]) : undefined;
  return { body, proc: record(body?.process), parent: record(body?.parent), type };
}

const strOf = (v: unknown): string => (typeof v === "string" ? v : "");
const anyMatch = (res: RegExp[], s: string): boolean => res.some((r) => r.test(s));

function maybeExecProbe(p: Record<string, unknown> | undefined): boolean {
  const container = record(record(p?.pod)?.container);
  return container?.maybe_exec_probe === true;
}

/**
 * compileTetragonFilter builds the predicate for one filter line. Absent proto fields read as
 * their zero values, as in Tetragon (a missing binary is "", a missing pid 0). pid_set keeps a
 * per-line cache of descendants: an event whose parent pid is in the set or the cache adds its
 * own pid, exactly as Tetragon's PidSetFilter (which only sees process and parent).
 */
export function compileTetragonFilter(f: TetragonFilter, opts: { regexField?: Partial<Record<string, string>>; onPidSetGrowth?: (size: number) => void } = {}): EventPredicate {
  const re = (k: keyof TetragonFilter, list: string[] | undefined) => list?.map((s) => compileRegex(opts.regexField?.[k] ?? k, s));
  const checks: EventPredicate[] = [];
  const binary = re("binary_regex", f.binary_regex);
  if (binary) checks.push((ev) => { const { proc } = processOf(ev); return proc !== undefined && anyMatch(binary, strOf(proc.binary)); });
  const parentBinary = re("parent_binary_regex", f.parent_binary_regex);
  if (parentBinary) checks.push((ev) => { const { parent } = processOf(ev); return parent !== undefined && anyMatch(parentBinary, strOf(parent.binary)); });
  if (f.health_check !== undefined) {
    const want = f.health_check;
    checks.push((ev) => {
      const { proc, parent } = processOf(ev);
      const hc = maybeExecProbe(proc) || maybeExecProbe(parent);
      return want ? hc : !hc;
    });
  }
  if (f.namespace) {
    const nss = f.namespace;
    checks.push((ev) => {
      const { proc } = processOf(ev);
      if (!proc) return false;
      const pod = record(proc.pod);
      return nss.some((ns) => (pod === undefined ? ns === "" : ns === strOf(pod.namespace)));
    });
  }
  if (f.pid) {
    const pids = new Set(f.pid);
    checks.push((ev) => { const { proc } = processOf(ev); return proc !== undefined && pids.has(typeof proc.pid === "number" ? proc.pid : 0); });
  }
  if (f.pid_set) {
    const set = new Set(f.pid_set);
    const children = new Set<number>();
    let warnAt = 8192;
    const pidOf = (p: Record<string, unknown>) => (typeof p.pid === "number" ? p.pid : 0);
    checks.push((ev) => {
      const { proc, parent } = processOf(ev);
      if (!proc) return false;
      const pid = pidOf(proc);
      if (set.has(pid) || children.has(pid)) return true;
      if (!parent) return false;
      const ppid = pidOf(parent);
      if (!set.has(ppid) && !children.has(ppid)) return false;
      children.add(pid);
      if (children.size === warnAt) {
        opts.onPidSetGrowth?.(warnAt);
        warnAt *= 2;
      }
      return true;
    });
  }
  if (f.event_set) {
    const types = new Set(f.event_set);
    checks.push((ev) => { const t = eventTypeOf(ev); return t !== undefined && types.has(t); });
  }
  const args = re("arguments_regex", f.arguments_regex);
  if (args) checks.push((ev) => { const { proc } = processOf(ev); return proc !== undefined && anyMatch(args, strOf(proc.arguments)); });
  const pod = re("pod_regex", f.pod_regex);
  if (pod) {
    checks.push((ev) => {
      const p = record(processOf(ev).proc?.pod);
      return p !== undefined && anyMatch(pod, strOf(p.name));
    });
  }
  if (f.policy_names) {
    const names = new Set(f.policy_names);
    checks.push((ev) => { const n = strOf(processOf(ev).body?.policy_name); return n !== "" && names.has(n); });
  }
  if (checks.length === 0) return () => true;
  // Short-circuit in Tetragon's order, so pid_set's cache sees the same events it would there.
  return (ev) => {
    for (const c of checks) if (!c(ev)) return false;
    return true;
  };
}

/**
 * compileExportFilter is Tetragon's allow/deny rule (hubble filters.Apply): an event passes
 * when the allow list is empty or any allow line matches, and no deny line matches.
 */
export function compileExportFilter(allow: readonly TetragonFilter[], deny: readonly TetragonFilter[], opts: { onPidSetGrowth?: (size: number) => void } = {}): EventPredicate | undefined {
  if (allow.length === 0 && deny.length === 0) return undefined;
  const a = allow.map((f) => compileTetragonFilter(f, opts));
  const d = deny.map((f) => compileTetragonFilter(f, opts));
  return (ev) => (a.length === 0 || a.some((p) => p(ev))) && !d.some((p) => p(ev));
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
