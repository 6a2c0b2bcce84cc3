// JSON lines (or compact lines) to standard output, as a QueuedSink: write() only queues,
// batches go out through the thread pool (fd-write.ts), so a stalled reader of stdout costs
// this sink's queue (oldest dropped, counted) and never the agent's event loop.
import { writevAll } from "./fd-write.ts";
import { lineRuns, lineText } from "./lines.ts";
import { QueuedSink, type QueueOptions } from "./queued.ts";
import { SendError, type Batch, type Transport } from "./sink.ts";

class FdTransport implements Transport {
  readonly kind = "stdout";
  constructor(
    private readonly fd: number,
    private readonly map?: (line: string) => string | undefined,
  ) {}
  async send(batch: Batch): Promise<void> {
    // Lines go out as they came (bytes untouched); only a rewrite (compact) needs the text.
    let lines: Batch = batch;
    if (this.map) {
      const out: string[] = [];
      for (const l of batch) {
        const m = this.map(lineText(l));
        if (m !== undefined) out.push(m);
      }
      lines = out;
    }
    if (lines.length === 0) return;
    try {
      await writevAll(this.fd, lineRuns(lines));
    } catch (err) {
      throw new SendError(`write fd ${this.fd}: ${(err as Error).message}`, true, { cause: err });
    }
  }
}

export interface StdoutOptions extends QueueOptions {
  name?: string;
  /** Rewrites each line before it is printed (the compact form); undefined skips the line. */
  map?: (line: string) => string | undefined;
}

export class StdoutSink extends QueuedSink {
  constructor(fd = 1, opts: StdoutOptions = {}) {
    super(opts.name ?? "stdout", new FdTransport(fd, opts.map), { lingerMs: 50, ...opts });
  }
}
