// What the agent lets go of once it is up. Start-up parses the kernel's BTF (vmlinux, about
// 10 MB of heap once indexed) for CO-RE and the feature probes, and leaves garbage from the
// /proc scan and module loading; none of it is needed while the agent runs. A policy added
// later that needs kernel BTF parses it again (about 50 ms).
import { releaseKernelBtf } from "../bpf/btf.ts";

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
 * once per check interval, and never during a burst. (Measured on a shared machine, it does
 * not remove the footprint bench's growth from 100k to 1M events: RssAnon still went from 50
 * to 125 MiB, so part of that growth is memory the agent holds, still to be found.)
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
