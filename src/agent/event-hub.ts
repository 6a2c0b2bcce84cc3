// EventHub fans each event out to the export sinks and to API subscribers, and counts what
// went through and what was lost. Sinks are written synchronously (they buffer on their own);
// subscribers get a bounded queue each, so a slow HTTP client loses its own events (counted)
// instead of stalling the sensors or growing memory without bound.
import { eventTypeOf, type EventJson, type EventPredicate } from "../events/filter.ts";

/** An event as the hub hands it out: the JSON object and its encoded line (no newline). */
export interface HubEvent {
  readonly json: EventJson;
  readonly type: string;
  readonly line: string;
}

/** Where exported lines go (stdout, a rotating file). */
export interface EventSink {
  readonly name: string;
  write(line: string): void;
  /** Writes out anything buffered; the agent calls it on shutdown. */
  flush(): Promise<void>;
  close(): Promise<void>;
}

/** A live subscription: next() resolves with the next matching event, or undefined once closed. */
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

class Subscriber implements EventSubscription {
  #queue: HubEvent[] = [];
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
    if (this.#waiter) {
      const w = this.#waiter;
      this.#waiter = undefined;
      w(ev);
      return;
    }
    if (this.#queue.length >= this.capacity) {
      this.dropped++;
      this.onDrop();
      return;
    }
    this.#queue.push(ev);
  }

  next(): Promise<HubEvent | undefined> {
    const ev = this.#queue.shift();
    if (ev !== undefined) return Promise.resolve(ev);
    if (this.#closed) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      this.#waiter = resolve;
    });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#queue = [];
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

  /** publish sends one event everywhere. The line is encoded once, here, for all consumers. */
  publish(json: EventJson, line?: string): void {
    const type = eventTypeOf(json) ?? "unknown";
    const ev: HubEvent = { json, type, line: line ?? this.#encode(json) };
    this.#total++;
    this.#byType.set(type, (this.#byType.get(type) ?? 0) + 1);
    for (const sink of this.#sinks) sink.write(ev.line);
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
      lost: Object.fromEntries(this.#lost),
      subscribers: this.#subs.size,
    };
  }

  /** closeSubscribers ends every open stream (their next() resolves undefined). */
  closeSubscribers(): void {
    for (const s of [...this.#subs]) s.close();
  }
}
