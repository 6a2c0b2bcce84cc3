// A ring buffer drain that reads the producer side with plain loads.
//
// Why this exists next to src/bpf/ringbuf.ts: JavaScriptCore compiles Atomics.load on a
// Uint32Array into a locked read-modify-write once the code is hot, and the kernel maps a ring
// buffer's producer pages read-only, so RingBufReader.drain() (Atomics.load on the record
// headers) segfaults the process after a few thousand records (reproduced here with bun 1.4.5:
// Atomics.load over a PROT_READ mmap crashes, a plain index read does not). Until the loader
// reads headers with plain loads, the process sensor drains through this class and uses
// RingBufReader only to wait. Ordering: the producer position is read with Atomics.load on a
// BigUint64Array (no crash: JSC takes a plain-load path there), and x86-64 keeps later plain
// loads after it; the consumer position lives on the writable page and is published with
// Atomics.store.
import { toArrayBuffer } from "bun:ffi";
import { RINGBUF_BUSY_BIT, RINGBUF_DISCARD_BIT, RINGBUF_HDR_SZ } from "../bpf/constants.ts";
import type { BpfMap } from "../bpf/map.ts";
import { MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap, pageSize } from "../bpf/sys.ts";

export class RingDrain {
  private readonly size: number;
  private readonly page: number;
  private readonly consAddr: number;
  private readonly prodAddr: number;
  private readonly prodLen: number;
  private readonly consPos: BigUint64Array;
  private readonly prodPos: BigUint64Array;
  private readonly hdr: Uint32Array;
  private readonly data: ArrayBuffer;
  private closed = false;

  constructor(map: BpfMap) {
    this.size = map.spec.maxEntries;
    this.page = pageSize();
    const fd = map.fd.raw;
    this.consAddr = mmap(this.page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    this.prodLen = this.page + 2 * this.size;
    try {
      this.prodAddr = mmap(this.prodLen, PROT_READ, MAP_SHARED, fd, this.page);
    } catch (e) {
      munmap(this.consAddr, this.page);
      throw e;
    }
    this.consPos = new BigUint64Array(toArrayBuffer(this.consAddr, 0, this.page), 0, 1);
    this.data = toArrayBuffer(this.prodAddr, 0, this.prodLen);
    this.prodPos = new BigUint64Array(this.data, 0, 1);
    this.hdr = new Uint32Array(this.data, 0, this.prodLen >>> 2);
  }

  available(): boolean {
    return !this.closed && Atomics.load(this.consPos, 0) < Atomics.load(this.prodPos, 0);
  }

  /** Hands each committed record to cb (view valid only during the call); returns the count. */
  drain(cb: (rec: DataView) => void, max = Infinity): number {
    if (this.closed) return 0;
    let cons = Number(Atomics.load(this.consPos, 0));
    let delivered = 0;
    for (;;) {
      const prod = Number(Atomics.load(this.prodPos, 0));
      if (cons >= prod) break;
      let progressed = false;
      while (cons < prod && delivered < max) {
        const off = this.page + (cons % this.size);
        const len = this.hdr[off >>> 2]!;
        if ((len & RINGBUF_BUSY_BIT) !== 0) break;
        const payload = len & 0x3fffffff;
        const next = cons + ((payload + RINGBUF_HDR_SZ + 7) & ~7);
        try {
          if ((len & RINGBUF_DISCARD_BIT) === 0) {
            delivered++;
            cb(new DataView(this.data, off + RINGBUF_HDR_SZ, payload));
          }
        } finally {
          cons = next;
          Atomics.store(this.consPos, 0, BigInt(cons));
        }
        progressed = true;
      }
      if (!progressed || delivered >= max) break;
    }
    return delivered;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    munmap(this.consAddr, this.page);
    munmap(this.prodAddr, this.prodLen);
  }
}
