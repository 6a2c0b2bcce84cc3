// The ring buffer consume loop on a synthetic ring laid out like the kernel's mapping (data
// area mapped twice), so busy/discard bits and wrap-around are checked byte for byte.
import { describe, expect, test } from "bun:test";
import { consume, countReady, type RingViews } from "../../src/bpf/ringbuf.ts";

const BUSY = 0x80000000;
const DISCARD = 0x40000000;
const OFF = 64;

class FakeRing {
  readonly views: RingViews;
  readonly bytes: Uint8Array;
  prod = 0;

  constructor(
    readonly size: number,
    start = 0,
    readonly mappedOnce = false,
  ) {
    const data = new ArrayBuffer(OFF + (mappedOnce ? 1 : 2) * size);
    this.bytes = new Uint8Array(data);
    this.views = { consumerPos: new BigUint64Array([BigInt(start)]), producerPos: new BigUint64Array(data, 0, 1), data, dataOffset: OFF, size, mappedOnce };
    this.prod = start;
    this.views.producerPos[0] = BigInt(start);
  }

  /** Write through both mappings of the data area, as the kernel's double mapping shows it. */
  #put(pos: number, b: Uint8Array): void {
    for (let j = 0; j < b.length; j++) {
      const i = (pos + j) % this.size;
      this.bytes[OFF + i] = b[j]!;
      if (!this.mappedOnce) this.bytes[OFF + this.size + i] = b[j]!;
    }
  }

  /** Append a record; returns its position. */
  push(payload: Uint8Array, flags = 0): number {
    const pos = this.prod;
    const hdr = new Uint8Array(8);
    new DataView(hdr.buffer).setUint32(0, (payload.length | flags) >>> 0, true);
    this.#put(pos, hdr);
    this.#put(pos + 8, payload);
    this.prod += (payload.length + 8 + 7) & ~7;
    this.views.producerPos[0] = BigInt(this.prod);
    return pos;
  }

  setFlags(pos: number, len: number, flags: number): void {
    const hdr = new Uint8Array(4);
    new DataView(hdr.buffer).setUint32(0, (len | flags) >>> 0, true);
    this.#put(pos, hdr);
  }

  get cons(): number {
    return Number(this.views.consumerPos[0]);
  }
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);
const read = (v: DataView): string => new TextDecoder().decode(new Uint8Array(v.buffer, v.byteOffset, v.byteLength));

describe("ring buffer consume", () => {
  test("delivers committed records in order, skips discarded ones, advances past both", () => {
    const r = new FakeRing(256);
    r.push(text("first"));
    r.push(text("dropped"), DISCARD);
    r.push(text("third!"));
    expect(countReady(r.views)).toBe(2);
    const got: string[] = [];
    expect(consume(r.views, (v) => got.push(read(v)))).toBe(2);
    expect(got).toEqual(["first", "third!"]);
    expect(r.cons).toBe(r.prod);
    expect(r.cons).toBe(16 + 16 + 16);
    expect(consume(r.views, () => got.push("again"))).toBe(0);
  });

  test("stops at a record still being written and resumes once it is committed", () => {
    const r = new FakeRing(256);
    r.push(text("a"));
    const busy = r.push(text("bb"), BUSY);
    r.push(text("ccc"));
    const got: string[] = [];
    expect(consume(r.views, (v) => got.push(read(v)))).toBe(1);
    expect(r.cons).toBe(busy);
    expect(countReady(r.views)).toBe(0);
    r.setFlags(busy, 2, 0);
    expect(consume(r.views, (v) => got.push(read(v)))).toBe(2);
    expect(got).toEqual(["a", "bb", "ccc"]);
  });

  test("a record that wraps the end of the ring is read contiguously through the second mapping", () => {
    const r = new FakeRing(64, 1000 * 64 + 48); // free-running positions far past the size
    r.push(text("0123456789abcdefghij")); // header at 48, payload runs to 76 -> wraps
    let got = "";
    consume(r.views, (v) => {
      got = read(v);
    });
    expect(got).toBe("0123456789abcdefghij");
    expect(r.cons).toBe(1000 * 64 + 48 + 32);
  });

  test("mapped once: a wrapping record is copied together, records around it are read in place", () => {
    const r = new FakeRing(128, 1000 * 128 + 40, true);
    r.push(text("abcdefgh")); // header at 40, payload 48..56
    r.push(text("0123456789abcdefghij")); // header at 56, payload 64..84
    r.push(text("xyz")); // header at 88, payload 96..99
    r.push(text("wrapping across the end")); // header at 104, payload 112..135 -> wraps
    const got: string[] = [];
    const inPlace: boolean[] = [];
    const collect = (v: DataView): void => {
      got.push(read(v));
      inPlace.push(v.buffer === r.views.data);
    };
    expect(consume(r.views, collect)).toBe(4);
    expect(got).toEqual(["abcdefgh", "0123456789abcdefghij", "xyz", "wrapping across the end"]);
    expect(inPlace).toEqual([true, true, true, false]);
    // A header in the last 8 bytes: its payload starts at the beginning, in place.
    const e = new FakeRing(128, 7 * 128 + 120, true);
    e.push(text("at the start"));
    got.length = 0;
    inPlace.length = 0;
    const collectEdge = (v: DataView): void => {
      got.push(read(v));
      inPlace.push(v.buffer === e.views.data);
    };
    expect(consume(e.views, collectEdge)).toBe(1);
    expect(got).toEqual(["at the start"]);
    expect(inPlace).toEqual([true]);
  });

  test("max bounds one drain; the rest stays for the next", () => {
    const r = new FakeRing(256);
    for (let i = 0; i < 5; i++) r.push(text(`r${i}`));
    const got: string[] = [];
    expect(consume(r.views, (v) => got.push(read(v)), 2)).toBe(2);
    expect(consume(r.views, (v) => got.push(read(v)))).toBe(3);
    expect(got).toEqual(["r0", "r1", "r2", "r3", "r4"]);
  });

  test("a throwing callback still releases its record", () => {
    const r = new FakeRing(256);
    r.push(text("bad"));
    r.push(text("good"));
    expect(() =>
      consume(r.views, () => {
        throw new Error("decode failed");
      }),
    ).toThrow("decode failed");
    const got: string[] = [];
    consume(r.views, (v) => got.push(read(v)));
    expect(got).toEqual(["good"]);
  });
});
