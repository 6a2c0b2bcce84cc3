// Where exported event lines go. The agent's event hub writes each line once to every sink
// and flushes/closes them on shutdown (src/agent/event-hub.ts has the same shape).
//
// Every sink is a QueuedSink (src/export/queued.ts) over one Transport: write() appends the
// line to a bounded in-memory queue and returns (O(1), no I/O, never throws), and one async
// loop per sink takes batches off the queue and hands them to the transport, retrying with
// exponential backoff within a bounded budget. A sink whose server is down therefore only
// fills its own queue; the hub, the sensors and the other sinks never wait for it.

/**
 * An event's export line without the trailing newline: either a string or its UTF-8 bytes.
 * Bytes given to write() are borrowed: valid only during the call (the process pipeline
 * writes its next lines over them), so a sink copies what it keeps (QueuedSink does, into
 * recycled chunks: src/export/line-store.ts). Byte lines in a Batch are the sink's own
 * copies, valid until send() settles; consecutive ones are usually adjacent in one chunk
 * with a "\n" between them, which src/export/lines.ts joinLines and lineRuns use.
 */
export type Line = string | Uint8Array;

export { joinLines, lineByteLength, lineRuns, lineText } from "./lines.ts";

export interface EventSink {
  readonly name: string;
  /** One event line, without the trailing newline. Queued; never blocks and never throws. */
  write(line: Line): void;
  /** Delivers everything queued so far (bounded by the sink's flush timeout). */
  flush(): Promise<void>;
  /** Flushes, then releases the sink; later writes are dropped (and counted). */
  close(): Promise<void>;
}

/** Why a sink dropped events (the `reason` label of ward_sink_events_dropped_total). */
export type DropReason =
  /** The bounded queue was full: the oldest queued events made room for new ones. */
  | "queue_full"
  /** A batch kept failing until the retry budget ran out. */
  | "retry_budget"
  /** The server refused the batch for good (a 4xx, a malformed request): retrying cannot help. */
  | "rejected"
  /** Still queued when the agent stopped and the flush timeout passed, or written after close. */
  | "shutdown";

export const DROP_REASONS: readonly DropReason[] = ["queue_full", "retry_budget", "rejected", "shutdown"];

/** Counters of one sink, as /metrics and /v1/status report them. */
export interface SinkStats {
  readonly name: string;
  /** The sink's kind: stdout, file, syslog, loki, clickhouse. */
  readonly kind: string;
  /** Events the transport accepted (for syslog/udp: handed to the socket). */
  sent: number;
  /** Events in batches that failed and were tried again, once per retry. */
  retried: number;
  /** Events given up on, by reason. sent + dropped + queued = events written. */
  dropped: Record<DropReason, number>;
  /** Events written to the sink. */
  written: number;
  /** Events waiting in the queue or in the batch being sent. */
  queued: number;
  /** False while the last attempt to send failed. */
  up: boolean;
  /** The last send error, for ward status. */
  lastError?: string;
}

/** A sink that reports counters; every sink built by src/agent/sinks.ts is one. */
export interface CountedSink extends EventSink {
  readonly kind: string;
  stats(): SinkStats;
}

export function isCountedSink(s: { name: string }): s is CountedSink {
  return typeof (s as Partial<CountedSink>).stats === "function";
}

/** A batch handed to a transport: lines in the order they were written. */
export type Batch = readonly Line[];

/**
 * The I/O half of a sink: delivers one batch or throws a SendError. Called by one loop at
 * a time, so a transport never sees two batches at once and batches arrive in order.
 */
export interface Transport {
  readonly kind: string;
  send(batch: Batch): Promise<void>;
  /** Releases connections, files. Called once, after the last send. */
  close?(): Promise<void>;
}

export class SinkError extends Error {
  override name = "SinkError";
}

/** A send failed. `retryable` false means the server rejected the batch and retrying cannot help. */
export class SendError extends SinkError {
  override name = "SendError";
  constructor(
    message: string,
    readonly retryable: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}
