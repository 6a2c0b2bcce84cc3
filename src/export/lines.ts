// Event lines as the sinks carry them (src/export/sink.ts `Line`): a string, or the line's
// UTF-8 bytes. A sink's queued byte lines are its own copies in its line store
// (line-store.ts), laid out one after another in chunks, each followed by one "\n" byte just
// outside the view, so a batch of them is mostly a few contiguous runs of one buffer.
// lineRuns gives those runs as views for writev(2) (the file and stdout sinks: no copy at
// all); joinLines gives one buffer, which is a run itself when the batch is one, else one
// allocation and one `set` per run.
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

const NL_BYTE: Uint8Array = new Uint8Array([NL]);

/**
 * batch[from, to) as pieces that, written one after another, give every line followed by
 * "\n": a view of a run of the producer's buffer (its last "\n" included when that byte is
 * inside the buffer, else followed by NL_BYTE), or a string line, which the caller encodes
 * and follows with "\n". Views adjacent in the same ArrayBuffer with a "\n" byte between them
 * make one run. The newline bytes are read, never assumed: a view from elsewhere (a Buffer, a
 * pooled slice) has whatever follows it.
 */
function pieces(batch: Batch, from: number, to: number): Array<Uint8Array | string> {
  const out: Array<Uint8Array | string> = [];
  // The open run: [start, end) of `buf`; `nl` when the byte at `end` is the last line's "\n".
  let buf: ArrayBufferLike | undefined;
  let start = 0;
  let end = 0;
  let nl = false;
  // One whole-buffer view per distinct buffer, to read the byte after a line.
  let whole = EMPTY;
  for (let i = from; i < to; i++) {
    const l = batch[i]!;
    if (typeof l !== "string" && buf !== undefined && nl && l.buffer === buf && l.byteOffset === end + 1) {
      // The previous line's "\n" sits between the two: the run grows over this line.
      end = l.byteOffset + l.byteLength;
      nl = end < whole.length && whole[end] === NL;
      continue;
    }
    if (buf !== undefined) {
      out.push(new Uint8Array(buf, start, end + (nl ? 1 : 0) - start));
      if (!nl) out.push(NL_BYTE);
      buf = undefined;
    }
    if (typeof l === "string") {
      out.push(l);
      continue;
    }
    buf = l.buffer;
    start = l.byteOffset;
    end = start + l.byteLength;
    if (whole.buffer !== buf) whole = new Uint8Array(buf);
    nl = end < whole.length && whole[end] === NL;
  }
  if (buf !== undefined) {
    out.push(new Uint8Array(buf, start, end + (nl ? 1 : 0) - start));
    if (!nl) out.push(NL_BYTE);
  }
  return out;
}

/** Bytes of the pieces once written: strings as UTF-8 with their "\n". */
function piecesBytes(ps: ReadonlyArray<Uint8Array | string>, from = 0, to = ps.length): number {
  let total = 0;
  for (let i = from; i < to; i++) {
    const p = ps[i]!;
    total += typeof p === "string" ? Buffer.byteLength(p, "utf8") + 1 : p.byteLength;
  }
  return total;
}

/** Writes the pieces into `out` at `off`, strings encoded and followed by "\n"; the new offset. */
function writePieces(out: Buffer, off: number, ps: ReadonlyArray<Uint8Array | string>, from = 0, to = ps.length): number {
  for (let i = from; i < to; i++) {
    const p = ps[i]!;
    if (typeof p === "string") {
      off += out.write(p, off, "utf8");
      out[off++] = NL;
    } else {
      out.set(p, off);
      off += p.byteLength;
    }
  }
  return off;
}

/**
 * batch[from, to) as buffers that, written one after another (writev), give every line
 * followed by "\n": runs of the producer's buffer as views, nothing copied; consecutive
 * strings encoded together into one buffer.
 */
export function lineRuns(batch: Batch, from = 0, to = batch.length): Uint8Array[] {
  const ps = pieces(batch, from, to);
  const out: Uint8Array[] = [];
  for (let i = 0; i < ps.length; i++) {
    const p = ps[i]!;
    if (typeof p !== "string") {
      out.push(p);
      continue;
    }
    let j = i + 1;
    while (j < ps.length && typeof ps[j] === "string") j++;
    const b = Buffer.allocUnsafe(piecesBytes(ps, i, j));
    writePieces(b, 0, ps, i, j);
    out.push(b);
    i = j - 1;
  }
  return out;
}

/**
 * batch[from, to) as one buffer, every line followed by "\n". When the whole range is one
 * run ending in its own "\n" the result is that view of the producer's buffer and nothing is
 * copied; otherwise one buffer of the total size, one `set` per run, strings encoded into it.
 */
export function joinLines(batch: Batch, from = 0, to = batch.length): Uint8Array {
  if (to <= from) return EMPTY;
  const ps = pieces(batch, from, to);
  if (ps.length === 1 && typeof ps[0] !== "string") return ps[0]!;
  const out = Buffer.allocUnsafe(piecesBytes(ps));
  writePieces(out, 0, ps);
  return out;
}
