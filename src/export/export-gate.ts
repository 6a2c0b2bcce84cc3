// The export gate: what every export sink sees, decided once per event in front of all of
// them (Tetragon applies the same three steps to its JSON export, in this order):
//   1. allow/deny lists (`export-allowlist`, `export-denylist`; src/events/filter.ts);
//   2. field filters (`field-filters`; src/events/field-filter.ts), which rewrite the event,
//      so the line is encoded again only when a filter changed something;
//   3. the rate limit (`export-rate-limit`, events per minute): a token bucket holding one
//      minute's worth (golang.org/x/time/rate with burst = the limit, as Tetragon builds it).
//      Dropped events are counted, and once a minute, when some were dropped, a
//      `rate_limit_info` event saying how many goes to the sinks, past the filters and the
//      limit (Tetragon writes it straight to its encoder).
// API streams (/v1/events) are not gated: like Tetragon's gRPC clients they bring their own
// filters (reference/tetragon.md §9 item 12).
import type { EventJson, EventPredicate } from "../events/filter.ts";
import { compileExportFilter, type TetragonFilter } from "../events/filter.ts";
import { applyFieldFilters, compileFieldFilter, type CompiledFieldFilter, type FieldFilterSpec } from "../events/field-filter.ts";
import { rfc3339Nano, wallNs } from "../events/time.ts";

/**
 * An event on its way to the sinks: its JSON object, type key and encoded line, and the
 * line's bytes when the producer has them (src/agent/event-hub.ts HubEvent).
 */
export interface GateEvent {
  readonly json: EventJson;
  readonly type: string;
  readonly line: string;
  readonly bytes?: Uint8Array;
}

export interface ExportGateOptions {
  allow?: readonly TetragonFilter[];
  deny?: readonly TetragonFilter[];
  fieldFilters?: readonly FieldFilterSpec[];
  /** Events per minute; -1 (or undefined) means no limit, 0 exports nothing. */
  rateLimit?: number;
  nodeName: string;
  /** How often drops are reported (Tetragon: one minute, the same as the limit's window). */
  reportIntervalMs?: number;
  /** Milliseconds clock for the token bucket (tests pass their own). */
  now?: () => number;
  /** Wall-clock ns for the rate_limit_info time (tests pass their own). */
  wallNs?: () => bigint;
  encode?: (ev: EventJson) => string;
  /** Diagnostics (the pid_set descendant cache growing). */
  warn?: (msg: string) => void;
}

/** A token bucket: `perMinute` tokens a minute, holding at most `perMinute`, starting full. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly #perMs: number;
  constructor(
    readonly perMinute: number,
    private readonly now: () => number,
  ) {
    this.#tokens = perMinute;
    this.#last = now();
    this.#perMs = perMinute / 60_000;
  }
  take(): boolean {
    const t = this.now();
    if (t > this.#last) {
      this.#tokens = Math.min(this.perMinute, this.#tokens + (t - this.#last) * this.#perMs);
      this.#last = t;
    }
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return true;
    }
    return false;
  }
}

export interface ExportGateCounters {
  /** Events the allow/deny lists kept from the sinks. */
  filtered: number;
  /** Events the rate limit dropped, in all. */
  rateLimited: number;
  /** rate_limit_info events emitted. */
  rateLimitReports: number;
}

export class ExportGate {
  readonly #filter: EventPredicate | undefined;
  readonly #fields: CompiledFieldFilter[];
  readonly #bucket: TokenBucket | undefined;
  readonly #encode: (ev: EventJson) => string;
  readonly #opts: ExportGateOptions;
  #timer: ReturnType<typeof setInterval> | undefined;
  #pendingDrops = 0;
  #emit: ((ev: GateEvent) => void) | undefined;
  readonly counters: ExportGateCounters = { filtered: 0, rateLimited: 0, rateLimitReports: 0 };

  constructor(opts: ExportGateOptions) {
    this.#opts = opts;
    this.#filter = compileExportFilter(opts.allow ?? [], opts.deny ?? [], {
      onPidSetGrowth: (n) => opts.warn?.(`pid_set filter cache has reached ${n} entries; pid_set is meant for testing, consider removing it`),
    });
    this.#fields = (opts.fieldFilters ?? []).map(compileFieldFilter);
    const limit = opts.rateLimit ?? -1;
    this.#bucket = limit >= 0 ? new TokenBucket(limit, opts.now ?? Date.now) : undefined;
    this.#encode = opts.encode ?? ((ev) => JSON.stringify(ev));
  }

  /** True when the gate lets everything through unchanged (the hub can skip it). */
  get passThrough(): boolean {
    return this.#filter === undefined && this.#fields.length === 0 && this.#bucket === undefined;
  }

  /**
   * start begins the periodic drop report; `emit` writes an event to every sink. The timer
   * is unref'd: it never keeps the agent alive.
   */
  start(emit: (ev: GateEvent) => void): void {
    this.#emit = emit;
    if (this.#bucket === undefined || this.#timer !== undefined) return;
    this.#timer = setInterval(() => this.report(), this.#opts.reportIntervalMs ?? 60_000);
    this.#timer.unref?.();
  }

  /** stop ends the timer and reports drops not yet reported, so none goes unmentioned. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
    this.report();
  }

  /** admit returns what the sinks get for `ev`, or undefined when it is not exported. */
  admit(ev: GateEvent): GateEvent | undefined {
    if (this.#filter !== undefined && !this.#filter(ev.json)) {
      this.counters.filtered++;
      return undefined;
    }
    let out = ev;
    if (this.#fields.length > 0) {
      const json = applyFieldFilters(this.#fields, ev.json);
      // A rewritten event is a new line, as a string; the old bytes would be the old event.
      // Unchanged, the event goes on as it came, bytes and all (and `line` is not read).
      if (json !== ev.json) out = { json, type: ev.type, line: this.#encode(json) };
    }
    if (this.#bucket !== undefined && !this.#bucket.take()) {
      this.counters.rateLimited++;
      this.#pendingDrops++;
      return undefined;
    }
    return out;
  }

  /** report emits one rate_limit_info event when events were dropped since the last one. */
  report(): void {
    if (this.#pendingDrops === 0 || this.#emit === undefined) return;
    const n = this.#pendingDrops;
    this.#pendingDrops = 0;
    this.counters.rateLimitReports++;
    this.#emit(rateLimitInfoEvent(n, this.#opts.nodeName, (this.#opts.wallNs ?? wallNs)(), this.#encode));
  }
}

/**
 * The rate_limit_info event as Tetragon exports it: number_of_dropped_process_events is a
 * uint64, which protojson writes as a string.
 */
export function rateLimitInfoEvent(dropped: number, nodeName: string, nowNs: bigint, encode: (ev: EventJson) => string = JSON.stringify): GateEvent {
  const json: EventJson = {
    rate_limit_info: { number_of_dropped_process_events: String(dropped) },
    node_name: nodeName,
    time: rfc3339Nano(nowNs),
  };
  return { json, type: "rate_limit_info", line: encode(json) };
}
