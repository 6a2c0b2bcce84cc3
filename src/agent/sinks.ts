// Export sinks the agent builds from its flags, over the export module's sinks
// (src/export: buffered stdout, rotating JSON-lines file).
import { compactLine } from "../export/compact.ts";
import { JsonlFileSink } from "../export/jsonl-file.ts";
import { StdoutSink } from "../export/stdout.ts";
import type { OutputFormat } from "./config.ts";
import type { EventSink } from "./event-hub.ts";

/** Rewrites each line before handing it on (the compact form on stdout). */
class MappedSink implements EventSink {
  constructor(
    private readonly inner: EventSink,
    private readonly map: (line: string) => string | undefined,
  ) {}
  get name(): string {
    return this.inner.name;
  }
  write(line: string): void {
    const out = this.map(line);
    if (out !== undefined) this.inner.write(out);
  }
  flush(): Promise<void> {
    return this.inner.flush();
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/** stdoutSink prints JSON lines as encoded, or tetra's compact lines (-o compact). */
export function stdoutSink(format: OutputFormat): EventSink {
  const out = new StdoutSink();
  if (format === "json") return out;
  // Only the compact form needs the parsed event; JSON lines pass through untouched.
  return new MappedSink(out, (line) => compactLine(JSON.parse(line) as Record<string, unknown>));
}

/** fileSink writes JSON lines to `path` (0600), rotating at 10 MiB and keeping 5 backups. */
export function fileSink(path: string): EventSink {
  return new JsonlFileSink(path);
}
