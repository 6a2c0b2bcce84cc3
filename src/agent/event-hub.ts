// EventHub fans each event out to the export sinks and to API subscribers, and counts what
// went through and what was lost. Sinks are written synchronously (they buffer on their own),
// behind the export gate (allow/deny lists, field filters, rate limit: src/export/export-gate.ts);
// subscribers get a bounded queue each, so a slow HTTP client loses its own events (counted)
// instead of stalling the sensors or growing memory without bound, and is told how many it
// lost by a `lost` record in its stream at the place the events went missing.
import { eventTypeOf, type EventJson, type EventPredicate } from "../events/filter.ts";
import { rfc3339Nano } from "../events/time.ts";
import type { ExportGate } from "../export/export-gate.ts";
import type { Line } from "../export/sink.ts";

/** An event as the hub hands it out: the JSON object and its encoded line (no newline). */
export interface HubEvent {
  readonly json: EventJson;
  readonly type: string;
  readonly line: string;
  /**
   * The line's UTF-8 bytes, when the producer has them (the process pipeline). Borrowed:
   * valid only during publishEvent, so sinks copy them and a subscriber that queues the event
   * reads `line` first. The sinks get these instead of `line`, which is then never read on
   * the export path (the pipeline's `line` decodes the bytes lazily, for API streams).
   */
  readonly bytes?: Uint8Array;
}

/** Where exported lines go (stdout, a rotating file): src/export/sink.ts EventSink. */
export interface EventSink {
  readonly name: string;
  write(line: Line): void;
  /** Writes out anything buffered; the agent calls it on shutdown. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A live subscription: next() resolves with the next matching event (or a `lost` record, type
 * "lost"), or undefined once closed.
 */
export interface EventSubscription {
  next(): Promise<HubEvent | undefined>;
  close(): void;
  /** Events this subscriber lost because its queue was full. */
  readonly dropped: number;
}

export interface EventSource {
  subscribe(filter: EventPredicate): EventSubscription;
}

export interface EventCounters {
  total: number;
  byType: Record<string, number>;
  lost: Record<string, number>;
  subscribers: number;
}

/** Reason label for events dropped because an API client read too slowly. */
export const LOSS_SUBSCRIBER_QUEUE = "subscriber_queue_full";
/** Reason label for events the export rate limit kept from the sinks. */
export const LOSS_EXPORT_RATE_LIMIT = "export_rate_limit";

/** Type of the record that tells a subscriber how many events it missed. */
export const LOST_TYPE = "lost";

/**
 * The `lost` record a slow subscriber finds in its stream where events went missing:
 *   {"lost":{"count":N,"reason":"subscriber_queue_full","first_time":T0,"last_time":T1},"time":T1}
 * count: matching events dropped for this subscriber since its previous lost record;
 * first_time / last_time: when the first and the last of them were dropped (RFC 3339, ms).
 */
class LostRecord implements HubEvent {
  readonly type = LOST_TYPE;
  count = 0;
  /** Wall-clock ms of the first and last drop; formatted only when the record is read. */
  first = 0;
  last = 0;
  #line: string | undefined;
  add(nowMs: number): void {
    if (this.count === 0) this.first = nowMs;
    this.count++;
    this.last = nowMs;
    this.#line = undefined;
  }
  get json(): EventJson {
    const last = rfc3339Nano(BigInt(this.last) * 1_000_000n);
    return { lost: { count: this.count, reason: LOSS_SUBSCRIBER_QUEUE, first_time: rfc3339Nano(BigInt(this.first) * 1_000_000n), last_time: last }, time: last };
  }
  get line(): string {
    return (this.#line ??= JSON.stringify(this.json));
  }
}

class Subscriber implements EventSubscription {
  /** Matching events and lost records, in stream order. */
  #queue: HubEvent[] = [];
  /** Events (not lost records) in the queue; the capacity bounds this. */
  #events = 0;
  #head = 0;
  #waiter: ((ev: HubEvent | undefined) => void) | undefined;
  #closed = false;
  dropped = 0;

  constructor(
    readonly filter: EventPredicate,
    private readonly capacity: number,
    private readonly onClose: (s: Subscriber) => void,
    private readonly onDrop: () => void,
  ) {}

  offer(ev: HubEvent): void {
    if (this.#closed || !this.filter(ev.json)) return;
    // Decoded while the borrowed bytes are valid (the pipeline's line is made on first read;
    // read later, it would be encoded again from the object form).
    void ev.line;
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w(ev);
      return;
    }
    if (this.#events >= this.capacity) {
      // One lost record per gap: it grows while the queue stays full and is delivered after
      // the events queued before the gap, so the reader knows exactly where it lost them.
      this.dropped++;
      this.onDrop();
      const tail = this.#queue[this.#queue.length - 1];
      let rec: LostRecord;
      if (tail instanceof LostRecord) rec = tail;
      else {
        rec = new LostRecord();
        this.#queue.push(rec);
      }
      rec.add(Date.now());
      return;
    }
    this.#queue.push(ev);
    this.#events++;
  }

  next(): Promise<HubEvent | undefined> {
    if (this.#head < this.#queue.length) {
      const ev = this.#queue[this.#head]!;
      this.#queue[this.#head++] = undefined as unknown as HubEvent;
      // Compact once the consumed prefix dominates, so shift() is not O(n) per event.
      if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
        this.#queue = this.#queue.slice(this.#head);
        this.#head = 0;
      } else if (this.#head === this.#queue.length) {
        this.#queue.length = 0;
        this.#head = 0;
      }
      if (!(ev instanceof LostRecord)) this.#events--;
      return Promise.resolve(ev);
    }
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  /**
   * close stops the subscription: nothing more is queued, what is queued (events and lost
   * records) is still handed out by next(), then next() resolves undefined. A stream that is
   * cancelled drops the subscriber, and its queue with it.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const w = this.#waiter;
    this.#waiter = undefined;
    w?.(undefined);
    this.onClose(this);
  }
}

export interface EventHubOptions {
  /** Queue length per subscriber before events are dropped for it. */
  subscriberQueue?: number;
  /** Encodes an event to its export line; JSON.stringify unless the export module gives one. */
  encode?: (ev: EventJson) => string;
}

export class EventHub implements EventSource {
  readonly #sinks: EventSink[] = [];
  #gate: ExportGate | undefined;
  readonly #subs = new Set<Subscriber>();
  readonly #byType = new Map<string, number>();
  readonly #lost = new Map<string, number>();
  readonly #capacity: number;
  readonly #encode: (ev: EventJson) => string;
  #total = 0;

  constructor(opts: EventHubOptions = {}) {
    this.#capacity = opts.subscriberQueue ?? 10_000;
    this.#encode = opts.encode ?? ((ev) => JSON.stringify(ev));
  }

  addSink(sink: EventSink): void {
    this.#sinks.push(sink);
  }

  get sinks(): readonly EventSink[] {
    return this.#sinks;
  }

  /**
   * setExportGate puts the export gate in front of the sinks (not the API streams) and starts
   * its drop reports, which go to the sinks only.
   */
  setExportGate(gate: ExportGate): void {
    this.#gate = gate.passThrough ? undefined : gate;
    gate.start((ev) => this.#writeSinks(ev));
  }

  get exportGate(): ExportGate | undefined {
    return this.#gate;
  }

  #writeSinks(ev: HubEvent): void {
    const line = ev.bytes ?? ev.line;
    for (const sink of this.#sinks) sink.write(line);
  }

  /** publish sends one event everywhere. The line is encoded once, here, for all consumers. */
  publish(json: EventJson, line?: string): void {
    this.publishEvent({ json, type: eventTypeOf(json) ?? "unknown", line: line ?? this.#encode(json) });
  }

  /**
   * publishEvent sends an event whose type and line are known (the process pipeline's). Its
   * `json` is read only by export filters, field filters and API subscribers, so a lazy one
   * is never built while nobody filters or listens.
   */
  publishEvent(ev: HubEvent): void {
    const type = ev.type;
    this.#total++;
    this.#byType.set(type, (this.#byType.get(type) ?? 0) + 1);
    if (this.#gate === undefined) this.#writeSinks(ev);
    else {
      const out = this.#gate.admit(ev);
      if (out !== undefined) this.#writeSinks(out);
    }
    for (const sub of this.#subs) sub.offer(ev);
  }

  /** recordLoss counts events lost before they reached the hub (ring buffer overruns...). */
  recordLoss(reason: string, n = 1): void {
    this.#lost.set(reason, (this.#lost.get(reason) ?? 0) + n);
  }

  subscribe(filter: EventPredicate): EventSubscription {
    const sub = new Subscriber(
      filter,
      this.#capacity,
      (s) => this.#subs.delete(s),
      () => this.recordLoss(LOSS_SUBSCRIBER_QUEUE),
    );
    this.#subs.add(sub);
    return sub;
  }

  counters(): EventCounters {
    return {
      total: this.#total,
      byType: Object.fromEntries(this.#byType),
      lost: this.#lostWithGate(),
      subscribers: this.#subs.size,
    };
  }

  /** Rate-limited export drops count as losses too ("export_rate_limit"): the sinks never saw them. */
  #lostWithGate(): Record<string, number> {
    const lost = Object.fromEntries(this.#lost);
    const n = this.#gate?.counters.rateLimited ?? 0;
    if (n > 0) lost[LOSS_EXPORT_RATE_LIMIT] = (lost[LOSS_EXPORT_RATE_LIMIT] ?? 0) + n;
    return lost;
  }

  /** closeSubscribers ends every open stream (their next() resolves undefined). */
  closeSubscribers(): void {
    for (const s of [...this.#subs]) s.close();
  }
}
