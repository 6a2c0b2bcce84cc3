// A line buffer in front of a file descriptor: lines are encoded straight into one reused
// byte buffer and go out in one write(2) when it passes `highWater` bytes, on a short timer,
// or on flush(). Reusing the buffer matters at event rates: joining strings and copying them
// into a fresh Buffer per write left a large string and a large Buffer of garbage per flush.
import { writeSync } from "node:fs";

export class BufferedFd {
  private readonly buf: Buffer;
  private used = 0;
  private timer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    private fd: number,
    private readonly highWater = 64 * 1024,
    private readonly delayMs = 50,
  ) {
    // Room for a line of up to highWater bytes past the mark, so a line is rarely split off.
    this.buf = Buffer.allocUnsafe(2 * highWater);
  }

  /** Bytes buffered and not yet written. */
  get pending(): number {
    return this.used;
  }

  setFd(fd: number): void {
    this.fd = fd;
  }

  /** Buffers `line` and a newline; byteLength is the line's UTF-8 length (Buffer.byteLength). */
  push(line: string, byteLength: number): void {
    if (this.used + byteLength + 1 > this.buf.length) {
      this.flushSync();
      if (byteLength + 1 > this.buf.length) {
        // Longer than the whole buffer: out on its own.
        this.writeAll(Buffer.from(`${line}\n`));
        return;
      }
    }
    this.used += this.buf.write(line, this.used, "utf8");
    this.buf[this.used++] = 0x0a;
    if (this.used >= this.highWater) this.flushSync();
    else this.timer ??= setTimeout(() => this.flushSync(), this.delayMs);
  }

  flushSync(): void {
    if (this.timer !== undefined) {
      clearTimeout(this.timer);
      this.timer = undefined;
    }
    if (this.used === 0) return;
    const n = this.used;
    this.used = 0;
    this.writeAll(this.buf.subarray(0, n));
  }

  private writeAll(data: Uint8Array): void {
    let off = 0;
    while (off < data.length) off += writeSync(this.fd, data, off, data.length - off);
  }
}
