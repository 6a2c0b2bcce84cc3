// ClickHouse sink: batches are inserted over ClickHouse's HTTP interface as
//   POST /?query=INSERT INTO <db>.<table> FORMAT JSONEachRow   (one JSON object per line)
// into a table the sink creates on first use (and again if it was dropped) with
// CLICKHOUSE_SCHEMA below. The schema sticks to types ClickHouse has had since 18.x (the
// Debian bookworm server is 18.16: no DateTime64, no JSON type, LowCardinality still
// experimental), so one table definition works from 18.16 to today: the full event is the
// `event` column (query it with JSONExtract*/visitParamExtract*), and the fields people filter
// on are columns of their own. Inserts are at-least-once: a batch whose response was lost is
// inserted again on retry (a plain MergeTree does not deduplicate).
import { QueuedSink, type QueueOptions } from "../queued.ts";
import { lineText } from "../lines.ts";
import type { Batch, Transport } from "../sink.ts";
import { HttpError, post, splitCredentials } from "./http.ts";
import { eventTimeNs } from "./loki.ts";

export interface ClickHouseOptions extends QueueOptions {
  name?: string;
  /** The HTTP interface, e.g. http://127.0.0.1:8123 (user:password@ for basic auth). */
  url: string;
  database?: string;
  table?: string;
  /** Per-request timeout, ms (default 10 s). */
  timeoutMs?: number;
}

export const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]{0,127}$/;

/** The table, documented in the README. `time` is seconds (DateTime, UTC), `time_ns` exact. */
export function clickhouseSchema(db: string, table: string): string {
  return `CREATE TABLE IF NOT EXISTS ${db}.${table} (
  time DateTime,
  time_ns UInt64,
  node_name String,
  type String,
  policy_name String,
  namespace String,
  pod String,
  binary String,
  arguments String,
  pid UInt32,
  uid UInt32,
  exec_id String,
  parent_exec_id String,
  function_name String,
  action String,
  event String
) ENGINE = MergeTree() PARTITION BY toYYYYMM(time) ORDER BY (type, time)`;
}

interface Proc {
  binary?: unknown;
  arguments?: unknown;
  pid?: unknown;
  uid?: unknown;
  exec_id?: unknown;
  parent_exec_id?: unknown;
  pod?: { namespace?: unknown; name?: unknown };
}

const s = (v: unknown): string => (typeof v === "string" ? v : "");
const u32 = (v: unknown): number => (typeof v === "number" && Number.isInteger(v) && v >= 0 && v <= 0xffffffff ? v : 0);

/** One JSONEachRow row for an event line (an unparsable line still lands, in `event`). */
export function clickhouseRow(line: string): string {
  let ev: Record<string, unknown> = {};
  try {
    ev = JSON.parse(line) as Record<string, unknown>;
  } catch {
    // kept as the raw line below
  }
  let type = "unknown";
  for (const k of Object.keys(ev)) {
    if (k !== "node_name" && k !== "time" && k !== "cluster_name" && k !== "node_labels" && k !== "aggregation_info") {
      type = k;
      break;
    }
  }
  const body = (ev[type] ?? {}) as { process?: Proc; policy_name?: unknown; function_name?: unknown; action?: unknown };
  const p: Proc = body.process ?? {};
  const ns = eventTimeNs(ev.time) ?? BigInt(Date.now()) * 1_000_000n;
  return JSON.stringify({
    time: Number(ns / 1_000_000_000n),
    time_ns: ns.toString(),
    node_name: s(ev.node_name),
    type,
    policy_name: s(body.policy_name),
    namespace: s(p.pod?.namespace),
    pod: s(p.pod?.name),
    binary: s(p.binary),
    arguments: s(p.arguments),
    pid: u32(p.pid),
    uid: u32(p.uid),
    exec_id: s(p.exec_id),
    parent_exec_id: s(p.parent_exec_id),
    function_name: s(body.function_name),
    action: s(body.action),
    event: line,
  });
}

class ClickHouseTransport implements Transport {
  readonly kind = "clickhouse";
  readonly #base: URL;
  readonly #headers: Record<string, string>;
  readonly #db: string;
  readonly #table: string;
  #created = false;

  constructor(private readonly opts: ClickHouseOptions) {
    const { url, headers } = splitCredentials(opts.url);
    url.search = "";
    this.#base = url;
    this.#headers = headers;
    this.#db = opts.database ?? "default";
    this.#table = opts.table ?? "ward_events";
  }

  #url(query: string): string {
    const u = new URL(this.#base);
    u.searchParams.set("query", query);
    return u.toString();
  }

  async #create(): Promise<void> {
    await post("clickhouse create table", this.#url(clickhouseSchema(this.#db, this.#table)), { body: "", headers: this.#headers }, this.opts.timeoutMs ?? 10_000);
    this.#created = true;
  }

  async send(batch: Batch): Promise<void> {
    if (!this.#created) await this.#create();
    const rows: string[] = [];
    // A row's columns come from the parsed event: the text is needed for each line.
    for (const line of batch) rows.push(clickhouseRow(lineText(line)));
    const body = `${rows.join("\n")}\n`;
    try {
      await post(`clickhouse insert into ${this.#db}.${this.#table}`, this.#url(`INSERT INTO ${this.#db}.${this.#table} FORMAT JSONEachRow`), { body, headers: this.#headers }, this.opts.timeoutMs ?? 10_000);
    } catch (err) {
      // Code 60, UNKNOWN_TABLE: someone dropped it; create it again and let the retry insert.
      if (err instanceof HttpError && /^Code: 60\b/.test(err.body)) {
        this.#created = false;
        throw new HttpError(err.message, true, err.status, err.body);
      }
      throw err;
    }
  }
}

export class ClickHouseSink extends QueuedSink {
  constructor(opts: ClickHouseOptions) {
    super(opts.name ?? "clickhouse", new ClickHouseTransport(opts), opts);
  }
}
