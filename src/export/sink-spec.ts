// Sink specifications: the `--sink` flag and the config file's `sinks:` list, parsed and
// validated without touching the network or the disk, with errors that say where and what.
//
// Flag form (one sink per --sink, repeatable):
//   --sink stdout[?format=compact]
//   --sink file=/var/log/ward/events.log[?max_bytes=10485760&max_backups=5]
//   --sink syslog://127.0.0.1:514?proto=tcp|udp    (default tcp)
//   --sink syslog:///run/rsyslog/ward.sock           (unix stream socket, octet-counted)
//   --sink loki=http://127.0.0.1:3100[?tenant=ID]
//   --sink clickhouse=http://127.0.0.1:8123?table=ward_events[&database=default]
// Every sink also takes name= (its label in /metrics; default its kind, unique) and the queue
// settings queue=, queue_bytes=, batch=, batch_bytes=, linger=, retry_budget=, backoff=,
// max_backoff=, flush_timeout= (durations with a unit: 500ms, 30s, 2m).
//
// Config form: each entry of `sinks:` is either that same string or a mapping with `type`,
// `url` (or `path` for file), and the same settings as keys:
//   sinks:
//   - type: syslog
//     url: syslog://127.0.0.1:514?proto=tcp
//     facility: local0
//   - type: loki
//     url: http://127.0.0.1:3100
//     retry_budget: 2m
import type { QueueOptions } from "./queued.ts";
import { IDENTIFIER } from "./sinks/clickhouse.ts";
import { FACILITIES, SEVERITIES, type SyslogProto } from "./sinks/syslog.ts";

/**
 * A bad sink specification. The message is "WHERE: DETAIL"; `detail` and `path` (entry index,
 * then the key inside the entry, when one is to blame) let a config loader report the error
 * at that node's own line and column.
 */
export class SinkConfigError extends Error {
  override name = "SinkConfigError";
  constructor(
    readonly where: string,
    readonly detail: string,
    readonly path: readonly (string | number)[] = [],
  ) {
    super(`${where}: ${detail}`);
  }
}

export type SinkKind = "stdout" | "file" | "syslog" | "loki" | "clickhouse";
export const SINK_KINDS: readonly SinkKind[] = ["stdout", "file", "syslog", "loki", "clickhouse"];

interface Common {
  name: string;
  queue: QueueOptions;
}
export type SinkSpec =
  | (Common & { kind: "stdout"; format: "json" | "compact" })
  | (Common & { kind: "file"; path: string; maxBytes?: number; maxBackups?: number })
  | (Common & { kind: "syslog"; proto: SyslogProto; host?: string; port?: number; path?: string; facility: string; severity: string; appName: string })
  | (Common & { kind: "loki"; url: string; tenant?: string })
  | (Common & { kind: "clickhouse"; url: string; database: string; table: string });

/** A spec before names are assigned (Omit distributed over the union). */
type Unnamed = SinkSpec extends infer S ? (S extends SinkSpec ? Omit<S, "name"> & { name?: string } : never) : never;

const QUEUE_KEYS: Record<string, { key: keyof QueueOptions; unit: "count" | "bytes" | "duration" }> = {
  queue: { key: "maxQueue", unit: "count" },
  queue_bytes: { key: "maxQueueBytes", unit: "bytes" },
  batch: { key: "maxBatch", unit: "count" },
  batch_bytes: { key: "maxBatchBytes", unit: "bytes" },
  linger: { key: "lingerMs", unit: "duration" },
  retry_budget: { key: "retryBudgetMs", unit: "duration" },
  backoff: { key: "backoffMs", unit: "duration" },
  max_backoff: { key: "maxBackoffMs", unit: "duration" },
  flush_timeout: { key: "flushTimeoutMs", unit: "duration" },
};

/** Keys each kind takes besides name and the queue settings. */
const KIND_KEYS: Record<SinkKind, readonly string[]> = {
  stdout: ["format"],
  file: ["max_bytes", "max_backups"],
  syslog: ["proto", "facility", "severity", "app_name"],
  loki: ["tenant"],
  clickhouse: ["database", "table"],
};

const DURATION = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

type Params = Map<string, string>;

function fail(where: string, msg: string, key?: string): never {
  throw new SinkConfigError(where, msg, key === undefined ? [] : [key]);
}

function count(where: string, key: string, v: string, min: number): number {
  if (!/^\d+$/.test(v)) fail(where, `${key} "${v}": want a whole number`, key);
  const n = Number(v);
  if (n < min || !Number.isSafeInteger(n)) fail(where, `${key} ${v}: want at least ${min}`, key);
  return n;
}

function duration(where: string, key: string, v: string): number {
  const m = DURATION.exec(v);
  if (!m) fail(where, `${key} "${v}": want a duration with a unit, like 500ms, 30s or 2m`, key);
  return Number(m[1]) * UNIT_MS[m[2]!]!;
}

function queueOptions(where: string, params: Params): QueueOptions {
  const q: QueueOptions = {};
  for (const [k, def] of Object.entries(QUEUE_KEYS)) {
    const v = params.get(k);
    if (v === undefined) continue;
    (q as Record<string, number>)[def.key] = def.unit === "duration" ? duration(where, k, v) : count(where, k, v, 1);
  }
  if (q.backoffMs !== undefined && q.maxBackoffMs !== undefined && q.backoffMs > q.maxBackoffMs) fail(where, "backoff is larger than max_backoff", "backoff");
  return q;
}

function checkKeys(where: string, kind: SinkKind, params: Params): void {
  const allowed = new Set(["name", ...Object.keys(QUEUE_KEYS), ...KIND_KEYS[kind]]);
  for (const k of params.keys()) {
    if (!allowed.has(k)) fail(where, `unknown setting "${k}" for a ${kind} sink (known: ${[...allowed].sort().join(", ")})`, k);
  }
}

function httpUrl(where: string, kind: string, raw: string): URL {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    fail(where, `${kind} wants an http:// or https:// URL, not "${raw}"`);
  }
  if (u.protocol !== "http:" && u.protocol !== "https:") fail(where, `${kind} wants an http:// or https:// URL, not "${raw}"`);
  return u;
}

/** Moves a URL's query into params (the sink's settings) and returns the URL without it. */
function takeQuery(where: string, u: URL, params: Params): string {
  for (const [k, v] of u.searchParams) {
    if (params.has(k)) fail(where, `setting "${k}" given twice`);
    params.set(k, v);
  }
  u.search = "";
  return u.toString();
}

function build(where: string, kind: SinkKind, target: string | undefined, params: Params): Unnamed {
  checkKeys(where, kind, params);
  const queue = queueOptions(where, params);
  const name = params.get("name");
  if (name !== undefined && !/^[A-Za-z0-9_.:-]{1,64}$/.test(name)) fail(where, `name "${name}": letters, digits, _ . : - only (it is a metrics label)`, "name");
  switch (kind) {
    case "stdout": {
      if (target !== undefined && target !== "") fail(where, `stdout takes no target (got "${target}")`);
      const format = params.get("format") ?? "json";
      if (format !== "json" && format !== "compact") fail(where, `format "${format}": want json or compact`, "format");
      return { kind, name, queue, format };
    }
    case "file": {
      if (target === undefined || target === "") fail(where, "file needs a path (file=/var/log/ward/events.log)");
      const mb = params.get("max_bytes");
      const bk = params.get("max_backups");
      return { kind, name, queue, path: target, maxBytes: mb === undefined ? undefined : count(where, "max_bytes", mb, 1024), maxBackups: bk === undefined ? undefined : count(where, "max_backups", bk, 0) };
    }
    case "syslog": {
      if (target === undefined) fail(where, "syslog needs an address (syslog://HOST:PORT?proto=tcp|udp or syslog:///path/to/socket)");
      const facility = params.get("facility") ?? "local0";
      if (FACILITIES[facility] === undefined) fail(where, `facility "${facility}": want one of ${Object.keys(FACILITIES).join(", ")}`, "facility");
      const severity = params.get("severity") ?? "info";
      if (SEVERITIES[severity] === undefined) fail(where, `severity "${severity}": want one of ${Object.keys(SEVERITIES).join(", ")}`, "severity");
      const appName = params.get("app_name") ?? "ward";
      if (!/^[\x21-\x7e]{1,48}$/.test(appName)) fail(where, `app_name "${appName}": 1 to 48 printable ASCII characters, no spaces`, "app_name");
      const m = /^syslog:\/\/(?:\[([0-9a-fA-F:.]+)\]|([^/:[\]]*))(?::(\d{1,5}))?(\/.*)?$/.exec(target);
      if (!m) fail(where, `syslog address "${target}": want syslog://HOST:PORT or syslog:///path/to/socket`);
      const host = m[1] ?? m[2] ?? "";
      const proto = params.get("proto");
      if (host === "") {
        if (m[3] !== undefined || m[4] === undefined) fail(where, `syslog address "${target}": a unix socket is syslog:///absolute/path`);
        if (proto !== undefined && proto !== "unix") fail(where, `proto ${proto} with a socket path: a unix socket is always a stream (octet-counted)`);
        return { kind, name, queue, proto: "unix", path: decodeURIComponent(m[4]), facility, severity, appName };
      }
      if (m[4] !== undefined && m[4] !== "/") fail(where, `syslog address "${target}": no path after HOST:PORT`);
      if (proto !== undefined && proto !== "tcp" && proto !== "udp") fail(where, `proto "${proto}": want tcp or udp`, "proto");
      const port = m[3] === undefined ? 514 : Number(m[3]);
      if (port < 1 || port > 65535) fail(where, `port ${port} is out of range`);
      return { kind, name, queue, proto: (proto ?? "tcp") as "tcp" | "udp", host, port, facility, severity, appName };
    }
    case "loki": {
      if (target === undefined) fail(where, "loki needs a URL (loki=http://HOST:3100)");
      httpUrl(where, "loki", target);
      const tenant = params.get("tenant");
      return { kind, name, queue, url: target, ...(tenant ? { tenant } : {}) };
    }
    case "clickhouse": {
      if (target === undefined) fail(where, "clickhouse needs a URL (clickhouse=http://HOST:8123?table=ward_events)");
      httpUrl(where, "clickhouse", target);
      const database = params.get("database") ?? "default";
      const table = params.get("table") ?? "ward_events";
      if (!IDENTIFIER.test(database)) fail(where, `database "${database}": want a plain identifier (letters, digits, _)`, "database");
      if (!IDENTIFIER.test(table)) fail(where, `table "${table}": want a plain identifier (letters, digits, _)`, "table");
      return { kind, name, queue, url: target, database, table };
    }
  }
}

function isKind(k: string): k is SinkKind {
  return (SINK_KINDS as readonly string[]).includes(k);
}

/** One --sink value. */
function parseOne(value: string, where: string): Unnamed {
  const params: Params = new Map();
  if (value.startsWith("syslog://")) {
    const q = value.indexOf("?");
    const target = q < 0 ? value : value.slice(0, q);
    if (q >= 0) for (const [k, v] of new URLSearchParams(value.slice(q + 1))) params.set(k, v);
    return build(where, "syslog", target, params);
  }
  const eq = value.indexOf("=");
  const q = value.indexOf("?");
  const head = eq >= 0 && (q < 0 || eq < q) ? value.slice(0, eq) : q >= 0 ? value.slice(0, q) : value;
  if (!isKind(head)) fail(where, `unknown sink "${head}" (want ${SINK_KINDS.join(", ")}; e.g. loki=http://127.0.0.1:3100 or syslog://127.0.0.1:514)`);
  let target = eq >= 0 && (q < 0 || eq < q) ? value.slice(eq + 1) : undefined;
  if (head === "loki" || head === "clickhouse") {
    if (target === undefined) return build(where, head, undefined, params);
    const u = httpUrl(where, head, target);
    target = takeQuery(where, u, params);
    return build(where, head, target, params);
  }
  // stdout?format=compact, file=/path?max_bytes=...
  const rest = target ?? value.slice(head.length);
  const qi = rest.indexOf("?");
  if (qi >= 0) for (const [k, v] of new URLSearchParams(rest.slice(qi + 1))) params.set(k, v);
  return build(where, head, target === undefined ? undefined : qi >= 0 ? rest.slice(0, qi) : rest, params);
}

function scalar(v: unknown): string | undefined {
  if (typeof v === "string") return v;
  if (typeof v === "number" && Number.isFinite(v)) return String(v);
  if (typeof v === "boolean") return String(v);
  return undefined;
}

/** One `sinks:` mapping entry. */
function parseEntry(e: Record<string, unknown>, where: string): Unnamed {
  const type = e.type;
  if (typeof type !== "string" || !isKind(type)) fail(where, `type: want one of ${SINK_KINDS.join(", ")}${type === undefined ? " (missing)" : `, not ${JSON.stringify(type)}`}`, type === undefined ? undefined : "type");
  const params: Params = new Map();
  let target: string | undefined;
  for (const [k, v] of Object.entries(e)) {
    if (k === "type") continue;
    const sv = scalar(v);
    if (sv === undefined) fail(where, `${k}: want a string or number, not ${v === null ? "null" : typeof v}`, k);
    if (k === "url" || (k === "path" && type === "file")) {
      if (target !== undefined) fail(where, "give url or path, not both");
      target = sv;
      continue;
    }
    if (typeof v === "number" && QUEUE_KEYS[k]?.unit === "duration") fail(where, `${k}: ${v} has no unit; write e.g. ${v}ms or ${v}s`, k);
    params.set(k, sv);
  }
  if (type === "stdout" && target !== undefined) fail(where, "stdout takes no url or path");
  if (type === "file" && target === undefined) fail(where, "file needs path: /var/log/ward/events.log");
  if (type === "syslog" && target === undefined) fail(where, "syslog needs url: syslog://HOST:PORT?proto=tcp (or syslog:///path/to/socket)");
  if ((type === "loki" || type === "clickhouse") && target === undefined) fail(where, `${type} needs url: http://HOST:PORT`);
  if (type === "syslog") {
    const q = target!.indexOf("?");
    if (q >= 0) {
      for (const [k, v] of new URLSearchParams(target!.slice(q + 1))) {
        if (params.has(k)) fail(where, `setting "${k}" given twice (in the url and as a key)`, k);
        params.set(k, v);
      }
      target = target!.slice(0, q);
    }
  } else if (type === "loki" || type === "clickhouse") {
    target = takeQuery(where, httpUrl(where, type, target!), params);
  }
  return build(where, type, target, params);
}

/** Gives every spec a unique name (its kind by default); a clash of explicit names is an error. */
function named(specs: Array<Unnamed>, where: (i: number) => string): SinkSpec[] {
  const taken = new Map<string, number>();
  specs.forEach((s, i) => {
    if (s.name === undefined) return;
    const prev = taken.get(s.name);
    if (prev !== undefined) throw new SinkConfigError(where(i), `name "${s.name}" is already used by sink ${prev + 1}`, [i]);
    taken.set(s.name, i);
  });
  return specs.map((s) => {
    if (s.name !== undefined) return s as SinkSpec;
    let name: string = s.kind;
    for (let n = 2; taken.has(name); n++) name = `${s.kind}-${n}`;
    taken.set(name, -1);
    return { ...s, name } as SinkSpec;
  });
}

/** The config file's `sinks:` list. `where(i)` names entry i for errors (file:line:col). */
/**
 * Runs `f` for entry i; a SinkConfigError gets the entry index in front of its path. A key
 * that is not in a mapping entry (it came from the url's query) points at `url` instead.
 */
function atEntry<T>(i: number, entry: unknown, f: () => T): T {
  try {
    return f();
  } catch (err) {
    if (!(err instanceof SinkConfigError)) throw err;
    let path = err.path;
    const isMap = entry !== null && typeof entry === "object" && !Array.isArray(entry);
    if (typeof path[0] === "string" && (!isMap || !(path[0] in entry))) path = isMap && "url" in entry ? ["url"] : [];
    throw new SinkConfigError(err.where, err.detail, [i, ...path]);
  }
}

/**
 * The config file's `sinks:` list. `where(i)` names entry i for the message (file:line:col);
 * errors are SinkConfigError with `path` [i, key?] into the list.
 */
export function parseSinkConfig(entries: unknown[], where: (i: number) => string): SinkSpec[] {
  const out = entries.map((e, i) =>
    atEntry(i, e, () => {
      if (typeof e === "string") return parseOne(e, where(i));
      if (e !== null && typeof e === "object" && !Array.isArray(e)) return parseEntry(e as Record<string, unknown>, where(i));
      fail(where(i), `a sink is a string like "loki=http://127.0.0.1:3100" or a mapping with type and url, not ${e === null ? "null" : Array.isArray(e) ? "a list" : typeof e}`);
    }),
  );
  return atNames(out, where, entries);
}

function atNames(specs: Unnamed[], where: (i: number) => string, entries: readonly unknown[]): SinkSpec[] {
  try {
    return named(specs, where);
  } catch (err) {
    if (!(err instanceof SinkConfigError) || typeof err.path[0] !== "number") throw err;
    const i = err.path[0];
    const e = entries[i];
    const hasName = e !== null && typeof e === "object" && !Array.isArray(e) && "name" in e;
    throw new SinkConfigError(err.where, err.detail, hasName ? [i, "name"] : [i]);
  }
}

/** The --sink flags, in order; errors are SinkConfigError with `path` [i]. */
export function parseSinkFlags(values: readonly string[]): SinkSpec[] {
  const where = (i: number) => `--sink "${values[i]}"`;
  return named(
    values.map((v, i) =>
      atEntry(i, v, () => parseOne(v, where(i))),
    ),
    where,
  );
}

/**
 * A spec as the string form parseSinkConfig and --sink read back to the same spec (for
 * `ward agent --print-config`).
 */
export function formatSinkSpec(spec: SinkSpec): string {
  const q = new URLSearchParams();
  q.set("name", spec.name);
  const rev = new Map(Object.entries(QUEUE_KEYS).map(([k, d]) => [d.key, { k, unit: d.unit }]));
  for (const [key, v] of Object.entries(spec.queue)) {
    const d = rev.get(key as keyof QueueOptions);
    if (d === undefined || v === undefined) continue;
    q.set(d.k, d.unit === "duration" ? `${v}ms` : String(v));
  }
  let head: string;
  switch (spec.kind) {
    case "stdout":
      if (spec.format !== "json") q.set("format", spec.format);
      head = "stdout";
      break;
    case "file":
      if (spec.maxBytes !== undefined) q.set("max_bytes", String(spec.maxBytes));
      if (spec.maxBackups !== undefined) q.set("max_backups", String(spec.maxBackups));
      head = `file=${spec.path}`;
      break;
    case "syslog":
      q.set("facility", spec.facility);
      q.set("severity", spec.severity);
      q.set("app_name", spec.appName);
      if (spec.proto === "unix") head = `syslog://${spec.path}`;
      else {
        q.set("proto", spec.proto);
        head = `syslog://${spec.host!.includes(":") ? `[${spec.host}]` : spec.host}:${spec.port}`;
      }
      break;
    case "loki":
      if (spec.tenant !== undefined) q.set("tenant", spec.tenant);
      head = `loki=${spec.url}`;
      break;
    case "clickhouse":
      q.set("database", spec.database);
      q.set("table", spec.table);
      head = `clickhouse=${spec.url}`;
      break;
  }
  return `${head}?${q.toString()}`;
}
