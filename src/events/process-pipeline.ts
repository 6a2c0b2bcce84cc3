// Turns process records into events: decode (process-record.ts), update the cache
// (process-cache.ts), build the event (model.ts) and its Tetragon JSON line (tetragon.ts's
// ProcessEventWriter, which reuses each image's encoded block), hand them to the subscriber;
// the JSON object form is built only when a consumer asks for it. Synchronous and allocation-light: it runs inside the ring buffer
// drain, so there is no userspace queue to overflow; backpressure stays in the kernel's
// ring buffer and shows up there as counted losses.
import { decodeExitCode } from "./signals.ts";
import type { ProcessEvent } from "./model.ts";
import type { ProcessCache } from "./process-cache.ts";
import type { ProcessRecord, ProcessRecordDecoder } from "./process-record.ts";
import { ProcessEventWriter, utf8, type EncodeOptions, type JsonObject } from "./tetragon.ts";

export interface PipelineEvent {
  readonly type: ProcessEvent["type"];
  readonly event: ProcessEvent;
  /** Tetragon export form (encodeEvent's object; its process blocks are shared and frozen). */
  readonly json: JsonObject;
  /** The export line: JSON.stringify(json), written directly. */
  readonly line: string;
  /**
   * The export line's UTF-8 bytes (no newline): what the sinks take. Valid only during the
   * onEvent call that hands the event out, because the next line is written over them; a
   * consumer that keeps the line copies the bytes or reads `line` before returning.
   */
  readonly bytes: Uint8Array;
}

/**
 * An event whose object form and line string are made on first use: the sinks take the
 * line's bytes, so with no filter and no API client neither is ever built. After delivery the
 * pipeline releases the bytes; a line asked for later (an API client reading a queued event)
 * is then decoded from nothing shared: JSON.stringify of the object form, the same text.
 */
class LazyEvent implements PipelineEvent {
  #json: JsonObject | undefined;
  #line: string | undefined;
  #bytes: Uint8Array | undefined;
  constructor(
    readonly event: ProcessEvent,
    bytes: Uint8Array,
    private readonly writer: ProcessEventWriter,
  ) {
    this.#bytes = bytes;
  }
  get type(): ProcessEvent["type"] {
    return this.event.type;
  }
  get bytes(): Uint8Array {
    return this.#bytes ?? Buffer.from(this.line);
  }
  get line(): string {
    return (this.#line ??= this.#bytes !== undefined ? utf8(this.#bytes) : JSON.stringify(this.json));
  }
  get json(): JsonObject {
    return (this.#json ??= this.writer.json(this.event, this.writer.opts.clock.wall(this.event.time)));
  }
  /** The shared bytes are about to be written over. */
  release(): void {
    this.#bytes = undefined;
  }
}

export interface PipelineCounters {
  records: number;
  exec: number;
  clone: number;
  exit: number;
  /** Records that failed to decode. */
  decodeErrors: number;
  /** Subscriber callbacks that threw. */
  deliveryErrors: number;
  /** Kernel ring buffer reservations that failed, by record kind (read from the kernel). */
  kernelLost: { exec: number; clone: number; exit: number };
  cacheSize: number;
  cacheLive: number;
  cacheEvictions: number;
  cacheMisses: number;
}

export class ProcessPipeline {
  private readonly c = { records: 0, exec: 0, clone: 0, exit: 0, decodeErrors: 0, deliveryErrors: 0 };
  kernelLost = { exec: 0, clone: 0, exit: 0 };
  lastError: Error | undefined;

  readonly writer: ProcessEventWriter;

  constructor(
    readonly decoder: ProcessRecordDecoder,
    readonly cache: ProcessCache,
    readonly encode: EncodeOptions,
    private readonly onEvent: (ev: PipelineEvent) => void,
  ) {
    this.writer = new ProcessEventWriter(encode);
  }

  /** One raw ring buffer record (the view is only valid during this call). */
  handle(view: DataView): void {
    this.c.records++;
    let rec: ProcessRecord;
    try {
      rec = this.decoder.decode(view);
    } catch (err) {
      this.c.decodeErrors++;
      this.lastError = err as Error;
      return;
    }
    this.handleRecord(rec);
  }

  handleRecord(rec: ProcessRecord): void {
    let ev: ProcessEvent;
    switch (rec.op) {
      case "clone":
        this.c.clone++;
        this.cache.track(rec);
        return; // clones are tracked, not exported (as in Tetragon)
      case "exec": {
        this.c.exec++;
        // The image this exec replaces ends without an exit event: its block goes now.
        const replaced = this.cache.currentIfBuilt(rec.pid);
        if (replaced !== undefined) this.writer.forget(replaced);
        const { process, parent } = this.cache.exec(rec);
        ev = { type: "process_exec", time: rec.time, process, parent };
        break;
      }
      case "exit": {
        this.c.exit++;
        const { process, parent } = this.cache.exit(rec);
        const { signal, status } = decodeExitCode(rec.code);
        ev = { type: "process_exit", time: rec.time, process, parent, signal, status };
        break;
      }
    }
    try {
      const out = new LazyEvent(ev, this.writer.lineBytes(ev), this.writer);
      try {
        this.onEvent(out);
      } finally {
        out.release();
        // After delivery (a consumer may have asked for the object form, which caches it too).
        if (ev.type === "process_exit") this.writer.forget(ev.process);
      }
    } catch (err) {
      this.c.deliveryErrors++;
      this.lastError = err as Error;
    }
  }

  counters(): PipelineCounters {
    const s = this.cache.stats();
    return {
      ...this.c,
      kernelLost: { ...this.kernelLost },
      cacheSize: s.size,
      cacheLive: s.live,
      cacheEvictions: s.evictions,
      cacheMisses: s.misses,
    };
  }
}
