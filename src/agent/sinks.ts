// Export sinks the agent builds from its flags. Writes are buffered (Bun's FileSink) and
// flushed on a short timer, so a burst of events costs a few write(2) calls, not one each.
import { openSync } from "node:fs";
import type { FileSink } from "bun";
import type { EventSink } from "./event-hub.ts";

const FLUSH_MS = 100;

class WriterSink implements EventSink {
  #timer: ReturnType<typeof setInterval>;
  #closed = false;

  constructor(
    readonly name: string,
    private readonly writer: FileSink,
    private readonly format: (line: string) => string | undefined,
  ) {
    this.#timer = setInterval(() => this.#tryFlush(), FLUSH_MS);
    this.#timer.unref();
  }

  write(line: string): void {
    if (this.#closed) return;
    const out = this.format(line);
    if (out !== undefined) this.writer.write(`${out}\n`);
  }

  #tryFlush(): void {
    try {
      void this.writer.flush();
    } catch {
      // A closed pipe on stdout must not take the agent down; the export file is the record.
    }
  }

  async flush(): Promise<void> {
    try {
      await this.writer.flush();
    } catch {
      // See #tryFlush.
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    await this.flush();
    await this.writer.end();
  }
}

/** stdoutSink prints each event line, formatted by `format` (identity for JSON). */
export function stdoutSink(format: (line: string) => string | undefined = (l) => l): EventSink {
  return new WriterSink("stdout", Bun.stdout.writer(), format);
}

/**
 * appendFileSink appends JSON lines to `path` (mode 0600, like Tetragon's export file). It
 * does not rotate; it stands in until the export module's rotating sink is wired.
 */
export function appendFileSink(path: string): EventSink {
  const fd = openSync(path, "a", 0o600);
  return new WriterSink(`file:${path}`, Bun.file(fd).writer(), (l) => l);
}
