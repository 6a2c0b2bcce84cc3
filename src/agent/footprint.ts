// What the agent lets go of once it is up. Start-up parses the kernel's BTF (vmlinux, about
// 10 MB of heap once indexed) for CO-RE and the feature probes, and leaves garbage from the
// /proc scan and module loading; none of it is needed while the agent runs. A policy added
// later that needs kernel BTF parses it again (about 50 ms).
import { heapStats, memoryUsage as allocatorUsage } from "bun:jsc";
import { readFileSync } from "node:fs";
import { releaseKernelBtf } from "../bpf/btf.ts";

/**
 * Where the agent's memory is, in the status body: RSS split by the kernel, and the JS heap
 * the collector counts as in use. The two disagree on purpose: after an event storm the live
 * heap returns to its idle size while RssAnon stays higher, because the allocator keeps pages
 * it grew into (bench/footprint.ts shows both at each event mark). A heap that grows with
 * the events seen is ours to fix; anonymous RSS above a flat heap is the runtime's.
 */
export interface MemoryStatus {
  rss_bytes: number;
  /** Anonymous resident pages (heap, allocator arenas, buffers); the rest is mostly the binary's file pages. */
  rss_anon_bytes?: number;
  /** JS heap in use as of the last collection plus what was allocated since. */
  js_heap_bytes: number;
  /** Memory outside the JS heap that JS objects own (ArrayBuffers, WASM memory, native buffers). */
  js_external_bytes: number;
  /** Full collections the burst reclaimer ran (BurstReclaimer). */
  reclaims?: number;
}

/** RssAnon from /proc/self/status; undefined where the file or the line is missing. */
function rssAnonBytes(): number | undefined {
  let text: string;
  try {
    text = readFileSync("/proc/self/status", "utf8");
  } catch {
    return undefined;
  }
  const m = /^RssAnon:\s+(\d+) kB$/m.exec(text);
  return m ? Number(m[1]) * 1024 : undefined;
}

/** Cheap enough for every status request: no heap walk, one small procfs read. */
export function memoryStatus(reclaims?: number): MemoryStatus {
  const u = process.memoryUsage();
  const anon = rssAnonBytes();
  return {
    rss_bytes: u.rss,
    ...(anon !== undefined ? { rss_anon_bytes: anon } : {}),
    js_heap_bytes: u.heapUsed,
    js_external_bytes: u.external,
    ...(reclaims !== undefined ? { reclaims } : {}),
  };
}

export function releaseStartupMemory(): void {
  releaseKernelBtf();
  // One full collection (a few ms on this heap) so the released pages go back now rather
  // than whenever allocation pressure next triggers one; idle agents have none.
  Bun.gc(true);
}

/** One line of the collector's and the allocator's figures (WARD_MEMORY_LOG). */
export function memoryDetail(types = false): string {
  const h = heapStats();
  const top = types
    ? `; most objects: ${Object.entries(h.objectTypeCounts).sort((a, b) => b[1] - a[1]).slice(0, 12).map(([k, v]) => `${k} ${v}`).join(", ")}`
    : "";
  const mi = allocatorUsage();
  const MiB = (n: number) => (n / 1048576).toFixed(1);
  return `heap ${MiB(h.heapSize)} of ${MiB(h.heapCapacity)} MiB, extra ${MiB(h.extraMemorySize)} MiB, ${h.objectCount} objects; mimalloc ${MiB(mi.current)} MiB in use, ${MiB(mi.currentCommit)} committed (peak ${MiB(mi.peakCommit)}); RssAnon ${MiB(rssAnonBytes() ?? 0)} MiB${top}`;
}

/**
 * Keeps the JS heap near what the agent holds, under a burst of events and after it. Under a
 * burst the heap grows with the garbage of every event (decoded records, lines, objects for
 * filters) faster than the collector, starved of CPU on a busy host, keeps up; the
 * collector does not move objects, so the few that stay alive (process cache entries of the
 * host's other processes, interned strings) end up spread over the blocks the heap grew
 * into, and those pages stay resident after the garbage around them is gone. RSS after a
 * burst then depends on how far the heap grew, which is how long the burst lasted and how
 * far behind the collector happened to be, not on what the agent holds. Two rules, checked
 * once per interval on the agent's thread, run one full collection (Bun.gc(true)):
 * - the heap grew `heapGrowthBytes` over its size after the last full collection (during a
 *   burst: the heap's high-water mark stays within that of its live size, whatever the
 *   burst's length). Measured in the footprint bench's open storm (15,000 events/s):
 *   one collection every 3-4 s, 11-30 ms each when the CPU is free (0.5-1% of the agent's
 *   CPU), and the heap's high-water mark 30-48 MiB instead of 60-77 MiB;
 * - a burst ended: at least `burstEvents` events since the last burst-end collection, then
 *   an interval with fewer than `quietEvents` or under `quietShare` of the busiest interval
 *   since then. The share is needed because the agent sees every process on the host: on a
 *   shared build host other work alone kept every 2 s interval after an open storm above
 *   1,000 events (2,000-4,000), and with the absolute rule alone no collection ran after
 *   the 1M-event storm in 3 of 6 footprint-bench runs on eb0903b (and after the 100k one
 *   in another), leaving the JS heap at 20-45 MiB and RSS at 118-227 MiB where the runs
 *   that collected settled at 107-117 MiB. With the share rule but not the growth rule, two
 *   runs collected after both storms and still settled 16-20% higher after 1M events than
 *   after 100k (heap 18 MiB live in 27-32 MiB of blocks, against 16 in 19 after 100k). The share
 *   rule was tried before, on 9cd28a4, and a run still settled at 575 MiB without a
 *   collection: there the fanotify decision thread's matches queued without a bound while
 *   the main thread was behind, and the main thread kept reading them at its full rate for
 *   seconds after the storm, so no interval was quieter than the storm (MAX_QUEUED_POSTS in
 *   fanotify.ts bounds that queue now).
 */
export class BurstReclaimer {
  #timer: ReturnType<typeof setInterval> | undefined;
  #last = 0;
  #since = 0;
  #busiest = 0;
  /** the JS heap after the last full collection */
  #baseline = 0;
  readonly #log: ((m: string) => void) | undefined;
  /** Full collections run so far (for tests and status). */
  runs = 0;

  constructor(
    private readonly events: () => number,
    private readonly opts: {
      intervalMs?: number;
      burstEvents?: number;
      quietEvents?: number;
      quietShare?: number;
      /** Heap growth over its size after the last full collection that makes one run, burst or not. */
      heapGrowthBytes?: number;
      heapBytes?: () => number;
      collect?: () => void;
      log?: (m: string) => void;
    } = {},
  ) {
    this.#log = opts.log;
  }

  #heap(): number {
    return (this.opts.heapBytes ?? (() => process.memoryUsage().heapUsed))();
  }

  start(): void {
    this.#last = this.events();
    this.#baseline = this.#heap();
    this.#timer = setInterval(() => this.check(), this.opts.intervalMs ?? 2000);
    this.#timer.unref?.();
  }

  /** One check (the timer's work; tests call it directly). */
  check(): void {
    const now = this.events();
    const delta = now - this.#last;
    this.#last = now;
    this.#since += delta;
    if (delta > this.#busiest) this.#busiest = delta;
    const quiet = delta < Math.max(this.opts.quietEvents ?? 1_000, this.#busiest * (this.opts.quietShare ?? 0.25));
    const ended = this.#since >= (this.opts.burstEvents ?? 50_000) && quiet;
    const grown = !ended && this.#heap() > this.#baseline + (this.opts.heapGrowthBytes ?? 16 * 1048576);
    if (this.#log !== undefined) this.#log(`memory: ${delta} events in the interval, ${this.#since} since the last collection (busiest ${this.#busiest})${ended ? ", burst ended: collecting" : grown ? ", heap grown: collecting" : ""}; ${memoryDetail()}`);
    if (!ended && !grown) return;
    // A collection for growth leaves the burst's counts: the one at its end still runs.
    if (ended) {
      this.#since = 0;
      this.#busiest = 0;
    }
    this.runs++;
    const t0 = performance.now();
    (this.opts.collect ?? (() => Bun.gc(true)))();
    this.#baseline = this.#heap();
    if (this.#log !== undefined) this.#log(`memory: full collection ${(performance.now() - t0).toFixed(1)} ms; ${memoryDetail(true)}`);
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
