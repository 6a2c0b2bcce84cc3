// Event lines as the sinks carry them (src/export/sink.ts `Line`): a string, or the line's
// UTF-8 bytes as a view the producer never writes into again. The process pipeline writes
// its lines one after another into large arena chunks, each followed by one "\n" byte just
// outside the view, so a batch of its lines is mostly a few contiguous runs of one buffer:
// joinLines hands such a run to the transport as one subarray instead of copying line by line.
import type { Batch, Line } from "./sink.ts";

const NL = 0x0a;
const decoder = new TextDecoder();
const EMPTY: Uint8Array = new Uint8Array(0);

/** The line's exact UTF-8 length in bytes (without the newline). */
export function lineByteLength(l: Line): number {
  return typeof l === "string" ? Buffer.byteLength(l, "utf8") : l.byteLength;
}

/** The line as text (bytes decoded as UTF-8; strings pass through). */
export function lineText(l: Line): string {
  return typeof l === "string" ? l : decoder.decode(l);
}

/** A Buffer over the same bytes (no copy): for Buffer's search and latin1 decoding. */
export function asBuffer(b: Uint8Array): Buffer {
  return Buffer.isBuffer(b) ? b : Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/**
 * A run of lines whose bytes lie back to back in one buffer with "\n" between them:
 * [start, end) in `buf`, `nl` when the byte at `end` is inside the buffer and is the last
 * line's "\n" too.
 */
interface Run {
  buf: ArrayBufferLike;
  start: number;
  end: number;
  nl: boolean;
}

/**
 * batch[from, to) as one buffer, every line followed by "\n". Views adjacent in the same
 * ArrayBuffer with a "\n" byte between them are taken as one run (one `set`, no per-line
 * copy); when the whole range is one run ending in its own "\n" the result is a view of the
 * producer's buffer and nothing is copied. The newline bytes are read, never assumed: a view
 * from elsewhere (a Buffer, a pooled slice) has whatever follows it.
 */
export function joinLines(batch: Batch, from = 0, to = batch.length): Uint8Array {
  if (to <= from) return EMPTY;
  // First pass: the runs and the total size. Strings are their own "run" (encoded in pass 2).
  const runs: Array<Run | string> = [];
  let total = 0;
  let cur: Run | undefined;
  // One whole-buffer view per distinct buffer, to read the byte after a line.
  let wholeOf: ArrayBufferLike | undefined;
  let whole = EMPTY;
  for (let i = from; i < to; i++) {
    const l = batch[i]!;
    if (typeof l === "string") {
      cur = undefined;
      runs.push(l);
      total += Buffer.byteLength(l, "utf8") + 1;
      continue;
    }
    total += l.byteLength + 1;
    if (cur !== undefined && cur.nl && l.buffer === cur.buf && l.byteOffset === cur.end + 1) {
      // The previous line's "\n" sits between the two: the run grows over this line.
      cur.end = l.byteOffset + l.byteLength;
    } else {
      cur = { buf: l.buffer, start: l.byteOffset, end: l.byteOffset + l.byteLength, nl: false };
      runs.push(cur);
    }
    if (l.buffer !== wholeOf) {
      wholeOf = l.buffer;
      whole = new Uint8Array(l.buffer);
    }
    cur.nl = cur.end < whole.length && whole[cur.end] === NL;
    // A run whose last line has no "\n" after it cannot grow; the next line starts a new one.
  }
  if (runs.length === 1 && typeof runs[0] !== "string" && runs[0]!.nl) {
    const r = runs[0]!;
    return new Uint8Array(r.buf, r.start, r.end + 1 - r.start);
  }
  const out = Buffer.allocUnsafe(total);
  let off = 0;
  for (const r of runs) {
    if (typeof r === "string") {
      off += out.write(r, off, "utf8");
      out[off++] = NL;
    } else if (r.nl) {
      out.set(new Uint8Array(r.buf, r.start, r.end + 1 - r.start), off);
      off += r.end + 1 - r.start;
    } else {
      out.set(new Uint8Array(r.buf, r.start, r.end - r.start), off);
      off += r.end - r.start;
      out[off++] = NL;
    }
  }
  return out;
}
