// Writing JSON as UTF-8 bytes: the process pipeline's lines and blocks (tetragon.ts).
//
// Lines are written one after another into one reused buffer (LineBuffer) and handed out as
// views that are valid only until the next lines are written: the consumer (the event hub's
// sinks) copies what it keeps. Making one flat JS string per ~1 KB line, and joining some
// twenty pieces per process block, was most of the pipeline's time; a fresh buffer per few
// dozen lines instead of a reused one cost another 0.45 µs per event, most of it in the
// collections those allocations started.

/**
 * Node's per-encoding writers, present in Bun but missing from @types/node: no encoding
 * argument to parse on every call.
 */
export type WritableBuffer = Buffer & { latin1Write(s: string, offset: number): number; utf8Write(s: string, offset: number): number };

/** A Buffer of `n` bytes, not zeroed, not a slice of a shared pool. */
export function rawBuffer(n: number): WritableBuffer {
  return Buffer.allocUnsafeSlow(n) as WritableBuffer;
}

/** Bytes of an ASCII string (the writers' constants: keys, punctuation). */
export function asciiBytes(s: string): Uint8Array {
  const b = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0x7f) throw new RangeError(`asciiBytes: ${JSON.stringify(s)} is not ASCII`);
    b[i] = c;
  }
  return b;
}

// Printable ASCII other than quote and backslash: JSON.stringify writes it as it is, and its
// Latin-1 bytes are its UTF-8 bytes.
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;
// What JSON.stringify escapes: quote, backslash, controls, and lone surrogates (anything in
// the surrogate range is checked by JSON.stringify itself). Text with none of these is
// written as its UTF-8 between quotes.
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** The most bytes `json()` writes for a string of n UTF-16 units (a control character is \u00XX). */
export const jsonBound = (n: number): number => 6 * n + 2;

/**
 * A cursor over a buffer. The caller makes room first (the subclasses' begin), then writes;
 * nothing here checks bounds, because the hot callers know their sizes.
 */
export class ByteWriter {
  /** The buffer being written, and a Buffer over the same memory (latin1Write, utf8Write, subarray). */
  buf: Uint8Array;
  bin: WritableBuffer;
  /** Where the next byte goes. */
  pos = 0;

  constructor(size: number) {
    this.bin = rawBuffer(size);
    this.buf = new Uint8Array(this.bin.buffer, this.bin.byteOffset, this.bin.byteLength);
  }

  protected replace(size: number): void {
    this.bin = rawBuffer(size);
    this.buf = new Uint8Array(this.bin.buffer, this.bin.byteOffset, this.bin.byteLength);
  }

  /** Bytes (a block, a long constant): one native copy. */
  put(b: Uint8Array): void {
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }

  /** A short constant (a key, punctuation): a loop costs less than a native call here. */
  key(k: Uint8Array): void {
    const b = this.buf;
    const p = this.pos;
    for (let i = 0; i < k.length; i++) b[p + i] = k[i]!;
    this.pos = p + k.length;
  }

  byte(c: number): void {
    this.buf[this.pos++] = c;
  }

  /** A string known to be ASCII (written as Latin-1, which is the same bytes). */
  ascii(s: string): void {
    this.pos += this.bin.latin1Write(s, this.pos);
  }

  /** A string as UTF-8, through the Latin-1 writer when the caller knows it is ASCII. */
  str(s: string, ascii: boolean): void {
    this.pos += ascii ? this.bin.latin1Write(s, this.pos) : this.bin.utf8Write(s, this.pos);
  }

  /** Any string, as UTF-8 (room for 3 bytes per UTF-16 unit). */
  text(s: string): void {
    this.pos += this.bin.utf8Write(s, this.pos);
  }

  /** JSON.stringify(s) as UTF-8 (room for jsonBound(s.length)). */
  json(s: string): void {
    const b = this.buf;
    if (PLAIN.test(s)) {
      b[this.pos] = 0x22;
      this.pos += 1 + this.bin.latin1Write(s, this.pos + 1);
      b[this.pos++] = 0x22;
    } else if (!NEEDS_ESCAPE.test(s)) {
      b[this.pos] = 0x22;
      this.pos += 1 + this.bin.utf8Write(s, this.pos + 1);
      b[this.pos++] = 0x22;
    } else {
      this.pos += this.bin.utf8Write(JSON.stringify(s), this.pos);
    }
  }

  /** A non-negative safe integer in decimal (room for 16 bytes); others through String(). */
  uint(n: number): void {
    if (!(n >= 0 && n <= Number.MAX_SAFE_INTEGER && Number.isInteger(n))) {
      this.ascii(String(n));
      return;
    }
    const b = this.buf;
    let len = 1;
    for (let x = n; x >= 10; x = Math.floor(x / 10)) len++;
    let x = n;
    const p = this.pos;
    for (let i = p + len - 1; i >= p; i--) {
      const q = Math.floor(x / 10); // exact: x < 2^53
      b[i] = 48 + (x - q * 10);
      x = q;
    }
    this.pos = p + len;
  }
}

const NEWLINE = 0x0a;

/**
 * The pipeline's lines: each is written after the previous one in a reused buffer, followed
 * by one "\n" outside its view (a consumer that copies consecutive lines can take them with
 * their newlines in one piece). When the buffer is full, writing starts over at its front,
 * so a view is valid until about `size` more bytes of lines have been written; callers treat
 * it as valid only until the next line.
 */
export class LineBuffer extends ByteWriter {
  #start = 0;

  constructor(size = 64 << 10) {
    super(size);
  }

  /** Starts a line of at most `max` bytes. */
  begin(max: number): void {
    // Unzeroed: every byte a view covers is written before the view is made.
    if (this.pos + max + 1 > this.buf.length) {
      if (max + 1 > this.buf.length) this.replace(Math.max(2 * this.buf.length, max + 1));
      this.pos = 0;
    }
    this.#start = this.pos;
  }

  /** Ends the line: its newline goes after it, and its view is returned. */
  end(): Uint8Array {
    // Buffer's subarray: about half the cost of a plain Uint8Array's here.
    const view = this.bin.subarray(this.#start, this.pos);
    this.buf[this.pos++] = NEWLINE;
    return view;
  }
}

/** A reused scratch buffer whose content is copied out at the end (blocks of exact size). */
export class ScratchWriter extends ByteWriter {
  constructor() {
    super(4096);
  }

  /** Starts over, with room for `max` bytes. */
  begin(max: number): void {
    if (max > this.buf.length) this.replace(Math.max(max, 2 * this.buf.length));
    this.pos = 0;
  }

  /** A copy of what was written, in an array of its own. */
  take(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}
