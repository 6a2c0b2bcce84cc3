// Where exported event lines go. The agent's event hub writes each line once to every sink
// and flushes/closes them on shutdown (src/agent/event-hub.ts has the same shape).

export interface EventSink {
  readonly name: string;
  /** One event line, without the trailing newline. Buffered; never blocks for long. */
  write(line: string): void;
  /** Writes out everything buffered so far. */
  flush(): Promise<void>;
  /** Flushes, then releases the sink; later writes are dropped. */
  close(): Promise<void>;
}

export class SinkError extends Error {
  override name = "SinkError";
}
