// JSON lines (or compact lines) to standard output.
import { BufferedFd } from "./buffered-fd.ts";
import type { EventSink } from "./sink.ts";

export class StdoutSink implements EventSink {
  readonly name = "stdout";
  private readonly out: BufferedFd;
  private closed = false;

  constructor(fd = 1) {
    this.out = new BufferedFd(fd);
  }

  write(line: string): void {
    if (this.closed) return;
    this.out.push(line, Buffer.byteLength(line));
  }

  async flush(): Promise<void> {
    this.out.flushSync();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.out.flushSync();
    this.closed = true;
  }
}
