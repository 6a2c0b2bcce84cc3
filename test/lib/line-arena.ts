// Byte lines laid out as the process pipeline lays them out (src/events/byte-writer.ts):
// each line's UTF-8 bytes followed by one "\n" byte outside the view, lines one after
// another, a new chunk when the next line does not fit. Unlike the pipeline's (borrowed,
// written over by its next lines) these stay valid, so a test can also hand them to
// joinLines directly. For the sink tests and bench/sinks.ts.
const encoder = new TextEncoder();

export class LineArena {
  #chunk: Uint8Array;
  #off = 0;
  /** Chunks started so far (the first included). */
  chunks = 1;

  constructor(readonly chunkSize = 64 * 1024) {
    this.#chunk = new Uint8Array(chunkSize);
  }

  /** The line's bytes as a view of the current chunk, a "\n" right after it. */
  add(text: string): Uint8Array {
    const max = text.length * 3 + 1;
    if (this.#off + max > this.#chunk.length) {
      // A line longer than a chunk gets a chunk of its own, as large as it needs.
      this.#chunk = new Uint8Array(Math.max(this.chunkSize, max));
      this.#off = 0;
      this.chunks++;
    }
    const start = this.#off;
    const { written } = encoder.encodeInto(text, this.#chunk.subarray(start));
    this.#chunk[start + written] = 0x0a;
    this.#off = start + written + 1;
    return this.#chunk.subarray(start, start + written);
  }

  /** Every text as a view, in order. */
  addAll(texts: readonly string[]): Uint8Array[] {
    return texts.map((t) => this.add(t));
  }
}
