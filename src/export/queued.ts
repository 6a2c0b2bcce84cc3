// QueuedSink: the one implementation of EventSink every export sink uses (src/export/sink.ts
// says why). It owns what all sinks share: the bounded queue, batching, retry with
// exponential backoff and the counters; a Transport only knows how to deliver one batch.
//
// Memory is bounded by maxQueue events and maxQueueBytes plus the one batch in flight. A line
// given as bytes counts its exact byte length; a string counts its .length (UTF-16 code
// units), not Buffer.byteLength: on this host that costs 300-500 ns for a 1.3 KB line, as much
// as the rest of write(), and the two agree for the ASCII JSON the encoder writes (a non-ASCII
// character in an argument or path makes the string count low by at most 3x for that
// character). The process pipeline's lines, the hot path, are bytes, borrowed for the call:
// write() copies them into the sink's line store (line-store.ts), whose chunks are reused
// once their lines were sent or dropped, so the memory held is what is queued. When the queue is full the
// OLDEST queued event is dropped (reason queue_full): during a long outage the queue then
// holds the most recent events, which are the ones that matter when the server comes back
// (what a process is doing now), and a burst never silently stops the newest events from
// being exported. Every drop is counted; sent + dropped + queued = written at all times.
//
// One batch is in flight per sink, so a transport sees batches in write order (Loki wants
// ordered timestamps per stream, syslog readers expect order). A failing batch is retried
// after 100 ms, 200 ms, 400 ms ... (capped at maxBackoffMs, with jitter) until retryBudgetMs
// has passed since its first failure; then it is dropped (retry_budget) and the next one is
// tried. Events written meanwhile wait in the queue, so an outage shorter than the budget
// loses nothing as long as the queue holds what arrives during it.
import { LineStore, type StoreChunk } from "./line-store.ts";
import { DROP_REASONS, SendError, type Batch, type CountedSink, type DropReason, type Line, type SinkStats, type Transport } from "./sink.ts";

export interface QueueOptions {
  /** Events the queue holds before the oldest is dropped (default 20,000). */
  maxQueue?: number;
  /** Queued bytes before the oldest is dropped (default 32 MiB). */
  maxQueueBytes?: number;
  /** Events per batch (default 1,000). */
  maxBatch?: number;
  /** Bytes per batch (default 1 MiB; a single larger line still goes out, alone). */
  maxBatchBytes?: number;
  /** How long the first event of a batch waits for company before the batch is sent (default 100 ms). */
  lingerMs?: number;
  /** How long one batch is retried after its first failure before it is dropped (default 60 s). */
  retryBudgetMs?: number;
  /** First retry delay; doubles per attempt (default 100 ms). */
  backoffMs?: number;
  /** Largest retry delay (default 5 s). */
  maxBackoffMs?: number;
  /** How long flush() (and so the agent's stop) waits for a slow or absent server (default 5 s). */
  flushTimeoutMs?: number;
}

export const QUEUE_DEFAULTS: Required<QueueOptions> = {
  maxQueue: 20_000,
  maxQueueBytes: 32 << 20,
  maxBatch: 1_000,
  maxBatchBytes: 1 << 20,
  lingerMs: 100,
  retryBudgetMs: 60_000,
  backoffMs: 100,
  maxBackoffMs: 5_000,
  flushTimeoutMs: 5_000,
};

function zeroDrops(): Record<DropReason, number> {
  const d = {} as Record<DropReason, number>;
  for (const r of DROP_REASONS) d[r] = 0;
  return d;
}

export class QueuedSink implements CountedSink {
  readonly opts: Required<QueueOptions>;
  // Ring buffer: #len lines starting at #head. Fixed capacity, so write() never reallocates.
  readonly #ring: (Line | undefined)[];
  /** For each queued byte line, the store chunk its copy lives in. */
  readonly #chunkOf: (StoreChunk | undefined)[];
  /** Copies of byte lines: the hub's are borrowed, valid only during write(). */
  readonly #store = new LineStore();
  /** The chunks of the batch in flight, released when it is delivered or dropped. */
  #batchChunks: StoreChunk[] = [];
  #head = 0;
  #len = 0;
  #bytes = 0;
  #inflight = 0;
  readonly #stats: SinkStats;
  #timer: ReturnType<typeof setTimeout> | undefined;
  /** The pending timer is the 0 ms one of a full batch. */
  #timerNow = false;
  #loop: Promise<void> | undefined;
  #flushWaiters: Array<() => void> = [];
  #flushing = 0;
  #closed = false;
  /** Set when close() gives up on a server: the loop drops what it holds instead of retrying. */
  #abort = false;
  #wakeSleep: (() => void) | undefined;
  #transportClosed = false;
  /** The last flush() timed out with the server down. */
  #flushGaveUp = false;

  constructor(
    readonly name: string,
    readonly transport: Transport,
    opts: QueueOptions = {},
  ) {
    this.opts = { ...QUEUE_DEFAULTS, ...stripUndefined(opts) };
    this.opts.maxQueue = Math.max(1, Math.floor(this.opts.maxQueue));
    this.opts.maxBatch = Math.max(1, Math.floor(this.opts.maxBatch));
    this.#ring = new Array<Line | undefined>(this.opts.maxQueue);
    this.#chunkOf = new Array<StoreChunk | undefined>(this.opts.maxQueue);
    this.#stats = { name, kind: transport.kind, sent: 0, retried: 0, dropped: zeroDrops(), written: 0, queued: 0, up: true };
  }

  get kind(): string {
    return this.transport.kind;
  }

  stats(): SinkStats {
    return { ...this.#stats, dropped: { ...this.#stats.dropped }, queued: this.#len + this.#inflight };
  }

  write(line: Line): void {
    const s = this.#stats;
    s.written++;
    if (this.#closed) {
      s.dropped.shutdown++;
      return;
    }
    const cap = this.opts.maxQueue;
    const n = queuedBytes(line);
    // Make room by dropping the oldest; each line is dropped at most once, so this is O(1) amortized.
    while (this.#len > 0 && (this.#len === cap || this.#bytes + n > this.opts.maxQueueBytes)) this.#dropOldest("queue_full");
    const tail = (this.#head + this.#len) % cap;
    if (typeof line === "string") this.#ring[tail] = line;
    else {
      this.#ring[tail] = this.#store.copy(line);
      this.#chunkOf[tail] = this.#store.lastChunk;
    }
    this.#len++;
    this.#bytes += n;
    if (this.#loop === undefined) {
      // Once a batch is full the loop starts on the next tick; a burst of writes in one tick
      // sets that timer once, not once per write (clearTimeout + setTimeout cost ~0.5 µs).
      if (this.#len >= this.opts.maxBatch) {
        if (!this.#timerNow) this.#schedule(0);
      } else if (this.#timer === undefined) this.#schedule(this.opts.lingerMs);
    }
  }

  #dropOldest(reason: DropReason): void {
    const line = this.#ring[this.#head]!;
    this.#ring[this.#head] = undefined;
    const c = this.#chunkOf[this.#head];
    if (c !== undefined) {
      this.#chunkOf[this.#head] = undefined;
      this.#store.release(c);
    }
    this.#head = (this.#head + 1) % this.opts.maxQueue;
    this.#len--;
    this.#bytes -= queuedBytes(line);
    this.#stats.dropped[reason]++;
  }

  #schedule(ms: number): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timerNow = ms === 0;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#timerNow = false;
      this.#start();
    }, ms);
  }

  #start(): void {
    if (this.#loop !== undefined) return;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#timerNow = false;
    }
    this.#loop = this.#run().finally(() => {
      this.#loop = undefined;
      // Lines written while the last batch was being sent get their own timer.
      if (this.#len > 0 && !this.#abort) this.#schedule(this.#flushing > 0 ? 0 : this.opts.lingerMs);
      else this.#wakeFlushers();
    });
  }

  #take(): Line[] {
    const out: Line[] = [];
    let bytes = 0;
    const cap = this.opts.maxQueue;
    while (this.#len > 0 && out.length < this.opts.maxBatch) {
      const line = this.#ring[this.#head]!;
      const n = queuedBytes(line);
      if (out.length > 0 && bytes + n > this.opts.maxBatchBytes) break;
      this.#ring[this.#head] = undefined;
      const c = this.#chunkOf[this.#head];
      if (c !== undefined) {
        this.#chunkOf[this.#head] = undefined;
        this.#batchChunks.push(c);
      }
      this.#head = (this.#head + 1) % cap;
      this.#len--;
      this.#bytes -= n;
      bytes += n;
      out.push(line);
    }
    return out;
  }

  async #run(): Promise<void> {
    while (this.#len > 0 && !this.#abort) {
      const batch = this.#take();
      this.#inflight = batch.length;
      try {
        await this.#deliver(batch);
      } finally {
        this.#inflight = 0;
        // Sent or given up on: the transport is done with the batch's views.
        const chunks = this.#batchChunks;
        this.#batchChunks = [];
        for (const c of chunks) this.#store.release(c);
      }
      // Under steady load the loop may never pause; a flush is done once what it waited for is out.
      if (this.#len === 0) this.#wakeFlushers();
    }
  }

  async #deliver(batch: Batch): Promise<void> {
    const s = this.#stats;
    const n = batch.length;
    let attempt = 0;
    let firstFailure = 0;
    for (;;) {
      try {
        await this.transport.send(batch);
        s.sent += n;
        s.up = true;
        return;
      } catch (err) {
        s.up = false;
        s.lastError = err instanceof Error ? err.message : String(err);
        // Anything but a SendError saying "rejected" is treated as transient: a transport
        // that threw something unexpected gets the retry budget, not an instant drop.
        if (err instanceof SendError && !err.retryable) {
          s.dropped.rejected += n;
          return;
        }
      }
      if (this.#abort) {
        s.dropped.shutdown += n;
        return;
      }
      const now = Date.now();
      if (attempt === 0) firstFailure = now;
      const base = Math.min(this.opts.maxBackoffMs, this.opts.backoffMs * 2 ** attempt);
      const delay = base / 2 + Math.random() * (base / 2);
      attempt++;
      if (now + delay - firstFailure > this.opts.retryBudgetMs) {
        s.dropped.retry_budget += n;
        return;
      }
      s.retried += n;
      await this.#sleep(delay);
      if (this.#abort) {
        s.dropped.shutdown += n;
        return;
      }
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wakeSleep = undefined;
        resolve();
      }, ms);
      this.#wakeSleep = () => {
        clearTimeout(t);
        this.#wakeSleep = undefined;
        resolve();
      };
    });
  }

  #wakeFlushers(): void {
    const w = this.#flushWaiters;
    this.#flushWaiters = [];
    for (const f of w) f();
  }

  /** Sends everything queued now; resolves when the queue is empty or after flushTimeoutMs. */
  async flush(timeoutMs = this.opts.flushTimeoutMs): Promise<void> {
    if (this.#len === 0 && this.#loop === undefined) return;
    this.#flushing++;
    try {
      const done = new Promise<void>((resolve) => this.#flushWaiters.push(resolve));
      this.#start();
      let timer: ReturnType<typeof setTimeout> | undefined;
      let timedOut = false;
      await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(() => ((timedOut = true), resolve()), timeoutMs)))]);
      clearTimeout(timer);
      this.#flushGaveUp = timedOut && !this.#stats.up;
    } finally {
      this.#flushing--;
    }
  }

  /**
   * Flushes (bounded by flushTimeoutMs), then drops and counts what is still queued and
   * closes the transport. Later writes are counted as dropped (shutdown).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    // The agent calls flush() and then close(): a flush that just gave up on a server that is
    // down is not waited out a second time.
    if (!this.#flushGaveUp || this.#stats.up) await this.flush();
    this.#abort = true;
    this.#wakeSleep?.();
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerNow = false;
    await this.#loop;
    while (this.#len > 0) this.#dropOldest("shutdown");
    this.#wakeFlushers();
    if (!this.#transportClosed) {
      this.#transportClosed = true;
      await this.transport.close?.();
    }
  }
}

/** What a queued line counts against maxQueueBytes and maxBatchBytes (the header says why strings count .length). */
function queuedBytes(l: Line): number {
  return typeof l === "string" ? l.length : l.byteLength;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  const out: Partial<T> = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) (out as Record<string, unknown>)[k] = v;
  return out;
}
