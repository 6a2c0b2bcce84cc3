// What the agent lets go of once it is up. Start-up parses the kernel's BTF (vmlinux, about
// 10 MB of heap once indexed) for CO-RE and the feature probes, and leaves garbage from the
// /proc scan and module loading; none of it is needed while the agent runs. A policy added
// later that needs kernel BTF parses it again (about 50 ms).
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

/**
 * Gives memory back after a burst of events. Under a burst the JS heap grows with the
 * garbage of every event (decoded records, lines, objects for filters) faster than the
 * collector, starved of CPU on a busy host, keeps up, and the allocator keeps the pages it
 * grew into: RSS after the burst then depends on how far behind the collector happened to be,
 * not on what the agent holds. So once a burst has ended (at least `burstEvents` events since
 * the last reclaim, then a check interval with fewer than `quietEvents`), one full collection
 * runs and the pages go back. It runs on the agent's thread while events are few, at most
 * once per check interval, and never during a burst. (On 9cd28a4, three footprint-bench 1M runs
 * out of eleven settled with a JS heap of 38-70 MiB and RSS 194-648 MiB; in the two that
 * had the memory.reclaims counter, no collection ran after the 1M storm. Why no quiet
 * interval was seen there is not known yet. A rule counting an interval under a tenth of the busiest as
 * quiet did not prevent it, so it is not here.)
 */
export class BurstReclaimer {
  #timer: ReturnType<typeof setInterval> | undefined;
  #last = 0;
  #since = 0;
  /** Full collections run so far (for tests and status). */
  runs = 0;

  constructor(
    private readonly events: () => number,
    private readonly opts: { intervalMs?: number; burstEvents?: number; quietEvents?: number; collect?: () => void } = {},
  ) {}

  start(): void {
    this.#last = this.events();
    this.#timer = setInterval(() => this.check(), this.opts.intervalMs ?? 2000);
    this.#timer.unref?.();
  }

  /** One check (the timer's work; tests call it directly). */
  check(): void {
    const now = this.events();
    const delta = now - this.#last;
    this.#last = now;
    this.#since += delta;
    if (this.#since >= (this.opts.burstEvents ?? 50_000) && delta < (this.opts.quietEvents ?? 1_000)) {
      this.#since = 0;
      this.runs++;
      (this.opts.collect ?? (() => Bun.gc(true)))();
    }
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
