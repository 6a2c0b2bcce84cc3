// A sink's copies of byte lines. The process pipeline hands each line out borrowed (its
// bytes are written over by the next lines, src/events/byte-writer.ts), so a sink that
// queues a line copies it here first. Lines are copied one after another into chunks, each
// followed by "\n" outside its view, so a batch of consecutive lines is one run of a chunk
// (joinLines/lineRuns in lines.ts take it without another copy). A chunk counts the queued
// lines in it and goes back to a small free list when the last of them was sent or dropped:
// the sink's memory is what it holds queued, and a busy sink reuses the same few chunks
// instead of allocating (fresh buffers cost ~0.45 µs per line here, mostly in the
// collections they start).

export class StoreChunk {
  /** Lines copied into this chunk and not yet released. */
  live = 0;
  constructor(readonly buf: Buffer) {}
}

const NEWLINE = 0x0a;

export class LineStore {
  #cur: StoreChunk | undefined;
  #pos = 0;
  readonly #free: StoreChunk[] = [];
  /** The chunk of the last copy(). */
  lastChunk: StoreChunk | undefined;

  constructor(
    readonly chunkSize = 256 << 10,
    /** Empty chunks kept for reuse; more are left to the collector. */
    readonly maxFree = 4,
  ) {}

  /** A copy of `line` that stays valid until release(lastChunk) for it. */
  copy(line: Uint8Array): Uint8Array {
    const n = line.length;
    let c = this.#cur;
    if (c === undefined || this.#pos + n + 1 > c.buf.length) {
      // A line longer than a chunk gets a chunk of its own, not kept for reuse.
      if (n + 1 > this.chunkSize) {
        const own = new StoreChunk(Buffer.allocUnsafeSlow(n + 1));
        own.buf.set(line, 0);
        own.buf[n] = NEWLINE;
        own.live = 1;
        this.lastChunk = own;
        return own.buf.subarray(0, n);
      }
      if (c !== undefined) this.#retire(c);
      c = this.#free.pop() ?? new StoreChunk(Buffer.allocUnsafeSlow(this.chunkSize));
      this.#cur = c;
      this.#pos = 0;
    }
    const p = this.#pos;
    c.buf.set(line, p);
    c.buf[p + n] = NEWLINE;
    this.#pos = p + n + 1;
    c.live++;
    this.lastChunk = c;
    return c.buf.subarray(p, p + n);
  }

  /** One line copied into `c` left the sink (sent, dropped): its bytes may be written over. */
  release(c: StoreChunk): void {
    c.live--;
    if (c.live === 0 && c !== this.#cur) this.#recycle(c);
  }

  /** Chunks held: the one being filled and the free ones (for tests and status). */
  get chunks(): { current: boolean; free: number } {
    return { current: this.#cur !== undefined, free: this.#free.length };
  }

  #retire(c: StoreChunk): void {
    // Filled: it is recycled once its last line leaves (now, if none is queued).
    if (c.live === 0) this.#recycle(c);
  }

  #recycle(c: StoreChunk): void {
    if (c.buf.length === this.chunkSize && this.#free.length < this.maxFree) this.#free.push(c);
  }
}
