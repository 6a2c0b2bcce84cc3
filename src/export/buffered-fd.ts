// A line buffer in front of a file descriptor: lines collect in memory and go out in one
// write(2) when the buffer passes `highWater` bytes, on a short timer, or on flush().
import { writeSync } from "node:fs";

export class BufferedFd {
  private parts: string[] = [];
  private bytes = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private fd: number,
    private readonly highWater = 64 * 1024,
    private readonly delayMs = 50,
  ) {}

  /** Bytes buffered and not yet written. */
  get pending(): number {
    return this.bytes;
  }

  setFd(fd: number): void {
    this.fd = fd;
  }

  push(line: string, byteLength: number): void {
    this.parts.push(line, "\n");
    this.bytes += byteLength + 1;
    if (this.bytes >= this.highWater) this.flushSync();
    else this.timer ??= setTimeout(() => this.flushSync(), this.delayMs);
  }

  flushSync(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.bytes === 0) return;
    const data = Buffer.from(this.parts.join(""));
    this.parts = [];
    this.bytes = 0;
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off, data.length - off);
  }
}
