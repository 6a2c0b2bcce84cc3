// BPF ring buffer consumer (loader.md §2.7). The consumer page is mapped read-write, the producer
// page plus the data area read-only, the data once (a record that wraps is copied together).
// Draining reads positions and headers straight from the mapping (acquire/release ordering,
// see headerLen): no syscall per record. Waiting blocks in epoll_wait on
// a helper thread so the JS thread never spins and never blocks.
import { toArrayBuffer } from "bun:ffi";
import { MapType, RINGBUF_BUSY_BIT, RINGBUF_DISCARD_BIT, RINGBUF_HDR_SZ } from "./constants.ts";
import type { BpfMap } from "./map.ts";
import {
  EPOLLIN,
  EPOLL_EVENT_SIZE,
  MAP_SHARED,
  PROT_READ,
  PROT_WRITE,
  close as closeFd,
  epollAdd,
  epollCreate,
  epollWait,
  eventFd,
  eventFdSignal,
  mmap,
  munmap,
  pageSize,
} from "./sys.ts";

export class RingBufError extends Error {
  override name = "RingBufError";
}

// The waiter thread: blocks in epoll_wait(epfd) and answers with the count. Inline source so the
// compiled single binary needs no extra file.
const WAITER_SOURCE = `
import { dlopen } from "bun:ffi";
const c = dlopen("libc.so.6", { epoll_wait: { args: ["i32", "ptr", "i32", "i32"], returns: "i32" } }).symbols;
const events = new Uint8Array(${EPOLL_EVENT_SIZE} * 4);
self.onmessage = (e) => {
  const { epfd, timeout } = e.data;
  postMessage(c.epoll_wait(epfd, events, 4, timeout));
};
`;
let waiterUrl: string | undefined;

export class RingBufReader {
  readonly size: number;
  readonly #page: number;
  readonly #consAddr: number;
  readonly #prodAddr: number;
  readonly #prodLen: number;
  readonly #consPos: BigUint64Array;
  readonly #prodPos: BigUint64Array;
  readonly #ring: RingViews;
  readonly #epfd: number;
  readonly #wakeFd: number;
  readonly #events: Uint8Array;
  #worker: Worker | undefined;
  #pending: { promise: Promise<void>; resolve: () => void } | undefined;
  #closed = false;

  constructor(map: BpfMap) {
    if (map.spec.type !== MapType.RINGBUF) {
      throw new RingBufError(`read ring buffer ${map.spec.name}: map type ${MapType[map.spec.type] ?? map.spec.type} is not RINGBUF`);
    }
    this.size = map.spec.maxEntries;
    this.#page = pageSize();
    const fd = map.fd.raw;
    this.#consAddr = mmap(this.#page, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    // The data area once, not twice: the kernel maps every page of the mapping at mmap time, so
    // the second copy would add the ring's size to RSS (8 MiB for the process sensor's ring);
    // the rare record that wraps is copied out instead (consume()).
    this.#prodLen = this.#page + this.size;
    try {
      this.#prodAddr = mmap(this.#prodLen, PROT_READ, MAP_SHARED, fd, this.#page);
    } catch (e) {
      munmap(this.#consAddr, this.#page);
      throw e;
    }
    this.#consPos = new BigUint64Array(toArrayBuffer(this.#consAddr, 0, this.#page), 0, 1);
    const data = toArrayBuffer(this.#prodAddr, 0, this.#prodLen);
    this.#prodPos = new BigUint64Array(data, 0, 1);
    this.#ring = { consumerPos: this.#consPos, producerPos: this.#prodPos, data, dataOffset: this.#page, size: this.size, mappedOnce: true };
    this.#epfd = epollCreate();
    this.#wakeFd = eventFd();
    this.#events = new Uint8Array(EPOLL_EVENT_SIZE * 4);
    epollAdd(this.#epfd, fd, EPOLLIN);
    epollAdd(this.#epfd, this.#wakeFd, EPOLLIN);
  }

  #check(): void {
    if (this.#closed) throw new RingBufError("use of a closed ring buffer reader");
  }

  /** True when records (or discarded slots) are waiting. */
  available(): boolean {
    this.#check();
    return Atomics.load(this.#consPos, 0) < Atomics.load(this.#prodPos, 0);
  }

  /** Committed records ready to drain, without consuming them. */
  ready(): number {
    this.#check();
    return countReady(this.#ring);
  }

  /**
   * Wait up to timeoutMs (blocking this thread; 0 = just look) until records are ready; returns
   * how many. Use wait() from async code instead.
   */
  poll(timeoutMs: number): number {
    const n = this.ready();
    if (n > 0 || timeoutMs === 0) return n;
    epollWait(this.#epfd, this.#events, timeoutMs);
    return this.ready();
  }

  /**
   * Deliver every committed record to cb, in order, and release its space. The DataView covers
   * exactly the payload and is valid only during the callback. Returns the count delivered.
   */
  drain(cb: (rec: DataView) => void, max = Infinity): number {
    this.#check();
    return consume(this.#ring, cb, max);
  }

  /**
   * Resolve when records are ready or after timeoutMs (-1: no timeout). Blocks in epoll_wait on a
   * helper thread; resolves at once when data is already there.
   */
  wait(timeoutMs = -1): Promise<void> {
    this.#check();
    if (this.available()) return Promise.resolve();
    if (this.#pending !== undefined) return this.#pending.promise;
    if (this.#worker === undefined) {
      waiterUrl ??= URL.createObjectURL(new Blob([WAITER_SOURCE], { type: "application/javascript" }));
      const w = new Worker(waiterUrl);
      w.onmessage = () => {
        const p = this.#pending;
        this.#pending = undefined;
        w.unref();
        if (this.#closed) this.#release();
        p?.resolve();
      };
      this.#worker = w;
    }
    let resolve!: () => void;
    const promise = new Promise<void>((r) => {
      resolve = r;
    });
    this.#pending = { promise, resolve };
    this.#worker.ref();
    this.#worker.postMessage({ epfd: this.#epfd, timeout: timeoutMs });
    return promise;
  }

  /** Async iteration: drain, then wait, until closed. */
  async *records(copy = true): AsyncGenerator<Uint8Array> {
    while (!this.#closed) {
      const batch: Uint8Array[] = [];
      this.drain((rec) => {
        const b = new Uint8Array(rec.buffer, rec.byteOffset, rec.byteLength);
        batch.push(copy ? b.slice() : b);
      });
      yield* batch;
      if (this.#closed) return;
      await this.wait();
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    // Wake a blocked waiter; its eventfd stays readable so it never blocks again. The fds are
    // released once it answered, so it can never epoll_wait on a reused fd number.
    eventFdSignal(this.#wakeFd);
    if (this.#pending === undefined) this.#release();
  }

  #release(): void {
    this.#worker?.terminate();
    this.#worker = undefined;
    munmap(this.#consAddr, this.#page);
    munmap(this.#prodAddr, this.#prodLen);
    closeFd(this.#epfd);
    closeFd(this.#wakeFd);
  }
}

function roundup8(n: number): number {
  return (n + 7) & ~7;
}

/**
 * The shared state of a ring: the consumer and producer position words and the buffer holding
 * the data area (at dataOffset, `size` bytes mapped twice in a row so records never wrap, or
 * once when mappedOnce is set, and then a record that runs past the end is copied together).
 */
export interface RingViews {
  consumerPos: BigUint64Array;
  producerPos: BigUint64Array;
  data: ArrayBuffer;
  dataOffset: number;
  size: number;
  mappedOnce?: boolean;
}

/** The payload of a record that runs past the end of a singly mapped ring, in one piece. */
function joined(r: RingViews, start: number, len: number): DataView {
  const out = new Uint8Array(len);
  const first = r.size - start;
  out.set(new Uint8Array(r.data, r.dataOffset + start, first), 0);
  out.set(new Uint8Array(r.data, r.dataOffset, len - first), first);
  return new DataView(out.buffer);
}

// Record headers live on pages the kernel maps read-only. JavaScriptCore compiles a hot
// Atomics.load on a Uint32Array into a locked read-modify-write, which faults on a read-only
// page (reproduced with bun 1.4.5; found by the process sensor's author). BigUint64Array
// Atomics.load stays a plain load, so: producer position via Atomics.load on a BigUint64Array
// (acquire), then headers with plain loads on x86-64 (TSO keeps them after that load), and via
// Atomics.load of the whole 8-byte header on other architectures, where plain loads could pass it.
const PLAIN_HEADER_LOADS = process.arch === "x64";

interface HeaderViews {
  u32: Uint32Array;
  u64: BigUint64Array;
}
const headers = new WeakMap<ArrayBuffer, HeaderViews>();
function headerViews(r: RingViews): HeaderViews {
  let h = headers.get(r.data);
  if (h === undefined) {
    h = { u32: new Uint32Array(r.data, 0, r.data.byteLength >>> 2), u64: new BigUint64Array(r.data, 0, r.data.byteLength >>> 3) };
    headers.set(r.data, h);
  }
  return h;
}

/** The len word of the record header at byte offset `off` (8-byte aligned). */
function headerLen(h: HeaderViews, off: number): number {
  if (PLAIN_HEADER_LOADS) return h.u32[off >>> 2]!;
  return Number(Atomics.load(h.u64, off >>> 3) & 0xffffffffn);
}

/** Committed, not discarded records between the consumer and producer positions. */
export function countReady(r: RingViews): number {
  const hdr = headerViews(r);
  let cons = Number(Atomics.load(r.consumerPos, 0));
  const prod = Number(Atomics.load(r.producerPos, 0));
  let n = 0;
  while (cons < prod) {
    const len = headerLen(hdr, r.dataOffset + (cons % r.size));
    if ((len & RINGBUF_BUSY_BIT) !== 0) break;
    if ((len & RINGBUF_DISCARD_BIT) === 0) n++;
    cons += roundup8((len & 0x3fffffff) + RINGBUF_HDR_SZ);
  }
  return n;
}

/**
 * libbpf's consume loop: from the consumer position, hand each committed record to cb, skip
 * discarded ones, stop at the first record still being written (BUSY), and publish the new
 * consumer position after each record so the producer can reuse the space at once.
 */
export function consume(r: RingViews, cb: (rec: DataView) => void, max = Infinity): number {
  const hdr = headerViews(r);
  let cons = Number(Atomics.load(r.consumerPos, 0));
  let delivered = 0;
  for (;;) {
    const prod = Number(Atomics.load(r.producerPos, 0));
    if (cons >= prod) break;
    let progressed = false;
    while (cons < prod && delivered < max) {
      const off = r.dataOffset + (cons % r.size);
      const len = headerLen(hdr, off);
      if ((len & RINGBUF_BUSY_BIT) !== 0) break;
      const payload = len & 0x3fffffff;
      const next = cons + roundup8(payload + RINGBUF_HDR_SZ);
      try {
        if ((len & RINGBUF_DISCARD_BIT) === 0) {
          delivered++;
          if (r.mappedOnce) {
            // Headers are 8-byte aligned and the size a multiple of a page: only the payload wraps.
            let start = (cons % r.size) + RINGBUF_HDR_SZ;
            if (start >= r.size) start -= r.size;
            cb(start + payload > r.size ? joined(r, start, payload) : new DataView(r.data, r.dataOffset + start, payload));
          } else {
            cb(new DataView(r.data, off + RINGBUF_HDR_SZ, payload));
          }
        }
      } finally {
        // Release the space even when the callback throws, so one bad record cannot wedge us.
        cons = next;
        Atomics.store(r.consumerPos, 0, BigInt(cons));
      }
      progressed = true;
    }
    if (!progressed || delivered >= max) break;
  }
  return delivered;
}
