// The process sensor: loads bpf/process.c, attaches its fork/exec/exit programs, seeds the
// kernel map and the cache from /proc, and turns ring buffer records into process_exec and
// process_exit events for a subscriber. stop() detaches everything and drains what is left.
//
//   const s = await startProcessSensor({ nodeName, onEvent: (ev) => hub.publishEvent(ev) });
//   ... s.counters() ...
//   await s.stop();
import type { EncodeOptions } from "../events/tetragon.ts";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { BtfKind, loadKernelBtf, type Btf } from "../bpf/btf.ts";
import { UpdateFlags } from "../bpf/constants.ts";
import { attachProgram, Collection, loadCollectionSpec, newCollection, type CollectionSpec } from "../bpf/collection.ts";
import { Link } from "../bpf/link.ts";
import { BpfMap, sumPerCpuU64 } from "../bpf/map.ts";
import { readObject } from "../bpf/objects.ts";
import { LINK_PIN_PREFIX, MAP_PIN_PREFIX, ensureBpffs, pinMaps, pinName, removePins } from "../bpf/pin.ts";
import { RingBufReader } from "../bpf/ringbuf.ts";
import { enumValues, structLayout } from "../events/layout.ts";
import { ProcessCache, type SeedProcess } from "../events/process-cache.ts";
import { ProcessPipeline, type PipelineCounters, type PipelineEvent } from "../events/process-pipeline.ts";
import { ProcessRecordDecoder } from "../events/process-record.ts";
import { BootClock } from "../events/time.ts";
import { readNamespaces, scanProc } from "./process-procfs.ts";

export type { PipelineEvent, PipelineCounters } from "../events/process-pipeline.ts";

export class ProcessSensorError extends Error {
  override name = "ProcessSensorError";
}

export interface ProcessSensorOptions {
  /** Node name for exec_id and node_name (Tetragon: NODE_NAME, else the hostname). */
  nodeName: string;
  /**
   * Persistence (--keep-sensors-on-exit): the directory on bpffs where every map and link is
   * pinned, so the programs keep tracking processes (and the process map stays current for the
   * pinned policies' matchBinaries) after the agent exits; with adopt, a previous agent's pins
   * there are taken over instead of loading anew (no gap, no second attachment).
   */
  persist?: { dir: string; adopt: boolean };
  /** Called for every process_exec / process_exit, synchronously, in kernel order. */
  onEvent: (ev: PipelineEvent) => void;
  /** Object bytes to load instead of the embedded bpf/obj/process.o (tests). */
  object?: Uint8Array;
  /** Process cache bounds. */
  cacheMaxEntries?: number;
  cacheRetainMs?: number;
  /** Add cap/process_credentials, ns to events (Tetragon's --enable-process-cred / -ns). */
  processCred?: boolean;
  processNs?: boolean;
  /** Seed from this /proc (default /proc). */
  procRoot?: string;
  /** How often kernel loss counters are read (and logged when they grew) and the cache is collected (ms, default 2000). */
  housekeepingMs?: number;
  /** Diagnostics, one message a call without a prefix (default: stderr, "process sensor: " prefixed). */
  log?: (msg: string) => void;
  /** Sees every raw ring buffer record before it is decoded (bench/lib/process-dump.ts records them); the view is valid only during the call. */
  onRecord?: (rec: DataView) => void;
  /** `docker` and `pod` of process blocks by cgroup id (the agent's WorkloadIdentity). */
  workloads?: EncodeOptions["workloads"];
}

/**
 * The exit program for this kernel: sched_process_exit gained its group_dead argument in
 * newer kernels (6.18 has it, 6.1 does not), and the verifier refuses a read of an argument
 * the tracepoint lacks, so kernels with only the task get the program that reads
 * signal->live instead. Decided from the tracepoint's prototype in the kernel's BTF.
 */
export function exitProgramFor(kernel: Btf): "ward_process_exit" | "ward_process_exit_live" {
  const id = kernel.findByName("btf_trace_sched_process_exit", BtfKind.Typedef)[0];
  if (id === undefined) return "ward_process_exit";
  const t = kernel.type(kernel.skipModsAndTypedefs(id));
  const proto = t.kind === BtfKind.Ptr ? kernel.type(kernel.skipModsAndTypedefs(t.type)) : undefined;
  // (void *ctx, struct task_struct *p[, bool group_dead])
  return proto?.kind === BtfKind.FuncProto && proto.params.length < 3 ? "ward_process_exit_live" : "ward_process_exit";
}

function programsFor(kernel: Btf): string[] {
  return ["ward_process_fork", "ward_process_exec", exitProgramFor(kernel)];
}
/** Records drained before yielding to the event loop, so a storm cannot starve other I/O. */
const DRAIN_BATCH = 4096;
/**
 * While records come the reader looks at the ring this often (ms) instead of being woken
 * per record (bpf/process.c wake_flags): the most a record waits while the host is busy.
 */
export const PROCESS_POLL_MS = 2;
/** The ward_events_ctl map (optional: programs pinned by an older agent have none, and wake per record). */
const CTL_MAP = "ward_events_ctl";

export class ProcessSensor {
  readonly cache: ProcessCache;
  readonly pipeline: ProcessPipeline;
  readonly spec: CollectionSpec;
  private readonly decoder: ProcessRecordDecoder;
  private readonly log: (msg: string) => void;
  private coll: Collection | undefined;
  private links: Link[] = [];
  /** the programs this kernel gets (programsFor), in the order of links */
  private programs: string[] = [];
  private reader: RingBufReader | undefined;
  private loop: Promise<void> | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private stopping = false;
  /** where the maps and links are pinned (persist), until unpinned */
  private pinDir: string | undefined;
  private lostSlots: { exec: number; clone: number; exit: number };
  private seeded = 0;
  private loggedEvictions = 0;
  private loggedMisses = 0;
  /** key and value that set ward_ring_ctl.sleeping (offset from the object's BTF) */
  private readonly sleepKey = new Uint8Array(4);
  private readonly sleepValue: Uint8Array | undefined;

  constructor(private readonly opts: ProcessSensorOptions) {
    this.log = opts.log ?? ((m) => process.stderr.write(`process sensor: ${m}\n`));
    this.spec = loadCollectionSpec(opts.object ?? readObject("process"), "process");
    if (!this.spec.btf) throw new ProcessSensorError("load process sensor: object has no BTF (build it with -g)");
    this.decoder = new ProcessRecordDecoder(this.spec.btf);
    const ops = enumValues(this.spec.btf, "ward_proc_op");
    this.lostSlots = { exec: ops.get("WARD_OP_EXEC") ?? 1, clone: ops.get("WARD_OP_CLONE") ?? 2, exit: ops.get("WARD_OP_EXIT") ?? 3 };
    // An object without the control map (an older build) wakes per record: nothing to set.
    if (this.spec.maps[CTL_MAP] !== undefined) {
      const ctl = structLayout(this.spec.btf, "ward_ring_ctl");
      this.sleepValue = new Uint8Array(ctl.size);
      new DataView(this.sleepValue.buffer).setUint32(ctl.offset("sleeping"), 1, true);
    }
    this.cache = new ProcessCache({ nodeName: opts.nodeName, maxEntries: opts.cacheMaxEntries, retainMs: opts.cacheRetainMs });
    this.pipeline = new ProcessPipeline(
      this.decoder,
      this.cache,
      {
        nodeName: opts.nodeName,
        clock: new BootClock(),
        processCred: opts.processCred,
        processNs: opts.processNs,
        hostNs: readNamespaces(opts.procRoot ?? "/proc", 1),
        ...(opts.workloads !== undefined ? { workloads: opts.workloads } : {}),
      },
      opts.onEvent,
    );
  }

  /** The in-kernel process map (tgid -> struct ward_proc), for sensors that match binaries. */
  get processMap(): BpfMap | undefined {
    return this.coll?.maps.ward_procs;
  }

  /** Processes seeded from /proc at start. */
  get seededCount(): number {
    return this.seeded;
  }

  /** Loads, attaches, seeds and starts reading. Rejects (having undone everything) on failure. */
  async start(): Promise<void> {
    if (this.coll) throw new ProcessSensorError("start process sensor: already started");
    const persist = this.opts.persist;
    try {
      this.programs = programsFor(loadKernelBtf());
      if (persist?.adopt) this.adopt(persist.dir);
      else {
        this.coll = newCollection(this.spec, { programs: this.programs });
        this.reader = new RingBufReader(this.eventsMap());
        // Attach before the scan: a process born during the scan is then seen by the kernel
        // programs, and the scan never overwrites what they recorded (NOEXIST).
        for (const name of this.programs) {
          const prog = this.coll.programs[name];
          const pspec = this.spec.programs[name];
          if (!prog || !pspec) throw new ProcessSensorError(`start process sensor: program ${name} missing`);
          this.links.push(attachProgram(prog, pspec));
        }
        if (persist !== undefined) this.pin(persist.dir);
      }
      this.seed(scanProc({ procRoot: this.opts.procRoot }));
    } catch (err) {
      this.teardown(persist?.adopt !== true);
      throw err;
    }
    this.stopping = false;
    this.loop = this.readLoop();
    this.timer = setInterval(() => this.housekeeping(), this.opts.housekeepingMs ?? 2000);
    this.timer.unref?.();
  }

  private eventsMap(): BpfMap {
    const events = this.coll?.maps.ward_events;
    if (!events) throw new ProcessSensorError("start process sensor: object has no ward_events ring buffer");
    return events;
  }

  /**
   * Pins every map and link under dir (on bpffs; created), so the programs stay attached and
   * the process map current after this process exits. Pinned already there: nothing to do.
   */
  pin(dir: string): void {
    if (this.pinDir === dir) return;
    if (this.coll === undefined) throw new ProcessSensorError("pin process sensor: not started");
    ensureBpffs(dir.startsWith("/sys/fs/bpf") ? "/sys/fs/bpf" : dir);
    pinMaps(dir, this.coll!.maps);
    this.pinDir = dir;
    this.programs.forEach((name, i) => this.links[i]!.pin(join(dir, pinName(LINK_PIN_PREFIX, name))));
  }

  /**
   * Takes over the maps and links a previous agent pinned under dir: the programs never
   * stopped, and the ring buffer holds what they recorded meanwhile (read like any record).
   */
  private adopt(dir: string): void {
    const maps: Record<string, BpfMap> = {};
    const owned: BpfMap[] = [];
    try {
      for (const name of Object.keys(this.spec.maps)) {
        const path = join(dir, pinName(MAP_PIN_PREFIX, name));
        if (name === CTL_MAP && !existsSync(path)) continue;
        if (!existsSync(path)) throw new ProcessSensorError(`adopt process sensor: ${path} is missing`);
        const m = BpfMap.fromPin(path);
        owned.push(m);
        maps[name] = m;
      }
      for (const name of this.programs) {
        const path = join(dir, pinName(LINK_PIN_PREFIX, name));
        if (!existsSync(path)) throw new ProcessSensorError(`adopt process sensor: ${path} is missing (its program is not attached)`);
        this.links.push(Link.fromPin(path));
      }
    } catch (e) {
      for (const l of this.links.splice(0)) l.close();
      for (const m of owned) m.close();
      throw e;
    }
    this.coll = new Collection(maps, {}, {}, owned);
    this.pinDir = dir;
    this.reader = new RingBufReader(this.eventsMap());
  }

  /** Removes the pins (the programs stay attached while this sensor holds them: until stop). */
  unpin(): void {
    if (this.pinDir !== undefined) removePins(this.pinDir);
    this.pinDir = undefined;
  }

  /**
   * Detaches the programs, delivers the records already in the ring buffer, releases
   * everything. keepPinned (--keep-sensors-on-exit): only this process's hold goes; the pins
   * keep the programs attached for the next agent.
   */
  async stop(opts: { keepPinned?: boolean } = {}): Promise<void> {
    if (!this.coll) return;
    const keep = opts.keepPinned === true && this.pinDir !== undefined;
    this.stopping = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    for (const l of this.links) l.close();
    this.links = [];
    // Links are closed: what is in the ring buffer now is all there will be.
    while (this.reader?.available() && this.drainOnce() > 0);
    this.reader?.close(); // wakes the waiting loop, which sees `stopping` and ends
    await this.loop;
    this.loop = undefined;
    this.housekeeping();
    this.teardown(!keep);
  }

  counters(): PipelineCounters {
    return this.pipeline.counters();
  }

  private seed(procs: SeedProcess[]): void {
    const map = this.coll?.maps.ward_procs;
    const byPid = new Map(procs.map((p) => [p.pid, p]));
    const key = new Uint8Array(4);
    const kv = new DataView(key.buffer);
    for (const p of procs) {
      if (!map) break;
      const parent = byPid.get(p.ppid);
      kv.setUint32(0, p.pid, true);
      const value = this.decoder.encodeProc({
        ktime: p.ktime,
        parentKtime: parent?.ktime ?? 0n,
        pid: p.pid,
        ppid: p.ppid,
        flags: p.flags,
        creds: p.creds,
        binary: p.binary,
      });
      try {
        map.update(key, value, UpdateFlags.NOEXIST);
      } catch {
        // Already recorded by the kernel programs (born after attach): theirs is newer.
      }
    }
    // The cache first: records already queued (processes born after attach) then find
    // their parents, and replace the scanned image of their own pid where both exist.
    this.cache.seed(procs);
    this.seeded = procs.length;
  }

  private drainOnce(): number {
    const r = this.reader;
    if (!r) return 0;
    const tap = this.opts.onRecord;
    if (tap) {
      return r.drain((v) => {
        tap(v);
        this.pipeline.handle(v);
      }, DRAIN_BATCH);
    }
    return r.drain((v) => this.pipeline.handle(v), DRAIN_BATCH);
  }

  private async readLoop(): Promise<void> {
    try {
      await this.readRecords();
    } catch (err) {
      // The reader broke (it should not): say so once; counters stop moving from here on.
      this.log(`ring buffer reader stopped: ${(err as Error).message}`);
    }
  }

  private async readRecords(): Promise<void> {
    const r = this.reader;
    if (!r) return;
    while (!this.stopping) {
      const n = this.drainOnce();
      if (this.stopping) break;
      if (n >= DRAIN_BATCH) {
        await new Promise<void>((res) => setImmediate(res)); // let other work run
        continue;
      }
      if (n > 0) {
        // Busy: the programs commit without waking us (unless the ring fills); look again soon.
        await r.wait(PROCESS_POLL_MS);
        continue;
      }
      // Quiet since the last look: ask the next record for a wakeup, then look once more, so
      // a record committed before the programs saw the flag is not left waiting.
      this.askWakeup();
      if (r.available()) continue;
      await r.wait(500);
    }
  }

  /** Sets ward_ring_ctl.sleeping (programs without the map wake per record anyway). */
  private askWakeup(): void {
    if (this.sleepValue !== undefined) this.coll?.maps[CTL_MAP]?.update(this.sleepKey, this.sleepValue);
  }

  private readLost(): { exec: number; clone: number; exit: number } {
    const map = this.coll?.maps.ward_proc_lost;
    const out = { exec: 0, clone: 0, exit: 0 };
    if (!map) return out;
    const key = new Uint8Array(4);
    for (const kind of ["exec", "clone", "exit"] as const) {
      new DataView(key.buffer).setUint32(0, this.lostSlots[kind], true);
      const v = map.lookup(key);
      if (!v) continue;
      out[kind] = Number(sumPerCpuU64(v));
    }
    return out;
  }

  private housekeeping(): void {
    if (!this.coll) return;
    const before = this.pipeline.kernelLost;
    const now = this.readLost();
    const grew = (["exec", "clone", "exit"] as const).filter((k) => now[k] > before[k]);
    if (grew.length) {
      this.log(
        `kernel ring buffer full, records lost: ${grew.map((k) => `${k} +${now[k] - before[k]}`).join(", ")}`,
      );
    }
    this.pipeline.kernelLost = now;
    this.cache.gc();
    const { evictions, misses } = this.cache.stats();
    if (evictions > this.loggedEvictions) {
      this.log(`process cache full, ${evictions - this.loggedEvictions} entries evicted (bound ${this.cache.maxEntries})`);
      this.loggedEvictions = evictions;
    }
    if (misses > this.loggedMisses) {
      this.log(`${misses - this.loggedMisses} records referred to processes not in the cache`);
      this.loggedMisses = misses;
    }
    const err = this.pipeline.lastError;
    if (err) {
      this.log(`${err.message}`);
      this.pipeline.lastError = undefined;
    }
  }

  /** Closes what this process holds; unpin: the pins go too (the programs are detached). */
  private teardown(unpin = true): void {
    for (const l of this.links) {
      try {
        l.close();
      } catch {
        // closing is best effort during teardown
      }
    }
    this.links = [];
    this.reader?.close();
    this.reader = undefined;
    if (unpin) this.unpin();
    this.pinDir = undefined;
    this.coll?.close();
    this.coll = undefined;
  }
}

/** Creates and starts the process sensor (H7's `ward agent` entry point). */
export async function startProcessSensor(opts: ProcessSensorOptions): Promise<ProcessSensor> {
  const s = new ProcessSensor(opts);
  await s.start();
  return s;
}
