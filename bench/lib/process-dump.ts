// Recorded ring buffer dumps of the process sensor: real clone/exec/exit records captured from
// bpf/process.c on this kernel during a short exec storm, stored the way the kernel's ring
// holds them (8-byte header with the length, payload, padding to 8), and replayed through the
// ring buffer reader's own consume loop. Benchmarks replay them many times: each round moves
// the recorded processes' times forward so every round's images are new to the process cache
// (pids repeat, as they do on a busy host), while the seeded processes keep their identity.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { RINGBUF_HDR_SZ } from "../../src/bpf/constants.ts";
import { readObject } from "../../src/bpf/objects.ts";
import { consume, type RingViews } from "../../src/bpf/ringbuf.ts";
import type { SeedProcess } from "../../src/events/process-cache.ts";
import { ProcessRecordDecoder } from "../../src/events/process-record.ts";
import { bootNs } from "../../src/events/time.ts";

export class DumpError extends Error {
  override name = "DumpError";
}

export interface ProcessDump {
  /** sha256 of the process.o that produced the records (its BTF gives their layout). */
  object: string;
  /** Boot-clock ns when recording began: ktimes at or after it are recorded processes. */
  t0: bigint;
  /** Boot-clock ns of the last record. */
  t1: bigint;
  /** The /proc scan at the start, for seeding the replay's process cache. */
  seeds: SeedProcess[];
  /** The records as the kernel ring lays them out: header (len, pg_off), payload, pad to 8. */
  ring: Uint8Array;
  records: number;
  /** Records lost in the kernel while recording (ring buffer full); 0 for a usable dump. */
  kernelLost: number;
}

const MAGIC = "WARDPD01";

export function objectHash(object: Uint8Array = readObject("process")): string {
  return createHash("sha256").update(object).digest("hex");
}

function roundup8(n: number): number {
  return (n + 7) & ~7;
}

/** Packs payloads into ring layout. */
export function ringOf(records: readonly Uint8Array[]): Uint8Array {
  let size = 0;
  for (const r of records) size += roundup8(r.length + RINGBUF_HDR_SZ);
  const ring = new Uint8Array(size);
  const v = new DataView(ring.buffer);
  let off = 0;
  for (const r of records) {
    v.setUint32(off, r.length, true);
    ring.set(r, off + RINGBUF_HDR_SZ);
    off += roundup8(r.length + RINGBUF_HDR_SZ);
  }
  return ring;
}

/** Payload views of every record in a ring-layout buffer, in order. */
export function recordsOf(ring: Uint8Array): DataView[] {
  const out: DataView[] = [];
  const v = new DataView(ring.buffer, ring.byteOffset, ring.byteLength);
  for (let off = 0; off + RINGBUF_HDR_SZ <= ring.length; ) {
    const len = v.getUint32(off, true) & 0x3fffffff;
    if (off + RINGBUF_HDR_SZ + len > ring.length) throw new DumpError(`dump: record at ${off} runs past the end (${len} bytes)`);
    out.push(new DataView(ring.buffer, ring.byteOffset + off + RINGBUF_HDR_SZ, len));
    off += roundup8(len + RINGBUF_HDR_SZ);
  }
  return out;
}

// bigint-safe JSON for the metadata (seeds carry ktimes and capability masks).
const replacer = (_k: string, v: unknown): unknown => (typeof v === "bigint" ? { $bigint: v.toString() } : v);
const reviver = (_k: string, v: unknown): unknown =>
  typeof v === "object" && v !== null && typeof (v as { $bigint?: unknown }).$bigint === "string" ? BigInt((v as { $bigint: string }).$bigint) : v;

export function saveDump(path: string, d: ProcessDump): void {
  const meta = new TextEncoder().encode(
    JSON.stringify({ object: d.object, t0: d.t0, t1: d.t1, seeds: d.seeds, records: d.records, kernelLost: d.kernelLost }, replacer),
  );
  const out = new Uint8Array(MAGIC.length + 4 + meta.length + d.ring.length);
  out.set(new TextEncoder().encode(MAGIC), 0);
  new DataView(out.buffer).setUint32(MAGIC.length, meta.length, true);
  out.set(meta, MAGIC.length + 4);
  out.set(d.ring, MAGIC.length + 4 + meta.length);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, out);
}

export function loadDump(path: string): ProcessDump {
  const b = readFileSync(path);
  if (new TextDecoder().decode(b.subarray(0, MAGIC.length)) !== MAGIC) throw new DumpError(`${path}: not a process dump (magic)`);
  const metaLen = new DataView(b.buffer, b.byteOffset, b.byteLength).getUint32(MAGIC.length, true);
  const metaEnd = MAGIC.length + 4 + metaLen;
  if (metaEnd > b.length) throw new DumpError(`${path}: truncated metadata`);
  const meta = JSON.parse(new TextDecoder().decode(b.subarray(MAGIC.length + 4, metaEnd)), reviver) as Omit<ProcessDump, "ring">;
  const ring = new Uint8Array(b.subarray(metaEnd));
  if (recordsOf(ring).length !== meta.records) throw new DumpError(`${path}: ${meta.records} records in the metadata, ${recordsOf(ring).length} in the data`);
  return { ...meta, ring };
}

export interface CaptureOptions {
  /** Storm iterations; each runs four programs (one of them an exec chain). */
  iterations: number;
  log?: (msg: string) => void;
}

/**
 * Records the process sensor's raw records during an exec storm (root). The storm runs in a
 * directory with a non-ASCII name and passes arguments with spaces, quotes, tabs, non-ASCII
 * text and bytes that are not UTF-8, so the dump holds what real hosts send.
 */
export async function captureProcessDump(opts: CaptureOptions): Promise<ProcessDump> {
  const { ProcessSensor } = await import("../../src/sensors/process.ts");
  const { scanProc } = await import("../../src/sensors/process-procfs.ts");
  const payloads: Uint8Array[] = [];
  const t0 = bootNs();
  const sensor = new ProcessSensor({
    nodeName: "dump",
    onEvent: () => {},
    onRecord: (v) => void payloads.push(new Uint8Array(v.buffer, v.byteOffset, v.byteLength).slice()),
    log: opts.log ?? (() => {}),
  });
  const seeds = scanProc();
  const dir = mkdtempSync(join(tmpdir(), "ward-dump-"));
  const cwd = join(dir, "prøject dir ☃");
  mkdirSync(cwd);
  await sensor.start();
  try {
    const TRUE = realpathSync("/bin/true");
    const ECHO = realpathSync("/bin/echo");
    const ENV = realpathSync("/usr/bin/env");
    const script = [
      `i=0; while [ $i -lt ${opts.iterations} ]; do`,
      `  ${TRUE} "arg $i" --flag=value plain`,
      `  ${ECHO} -n "$(printf 'bad\\377\\376utf8')" "naïve 日本語" 'say "hi"' "tab\there" >/dev/null`,
      `  ${ENV} WARD_DUMP=$i ${TRUE} chained`,
      `  i=$((i+1))`,
      `done`,
    ].join("\n");
    const r = spawnSync("/bin/sh", ["-c", script], { cwd, stdio: ["ignore", "ignore", "pipe"] });
    if (r.status !== 0) throw new DumpError(`exec storm failed (${r.status ?? r.signal}): ${r.stderr}`);
    await Bun.sleep(300);
  } finally {
    await sensor.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const c = sensor.counters();
  const ring = ringOf(payloads);
  const dec = new ProcessRecordDecoder(sensor.spec.btf!);
  let t1 = t0;
  for (const v of recordsOf(ring)) {
    const t = v.getBigUint64(dec.hdr.offset("time"), true);
    if (t > t1) t1 = t;
  }
  return {
    object: objectHash(),
    t0,
    t1,
    seeds,
    ring,
    records: payloads.length,
    kernelLost: c.kernelLost.exec + c.kernelLost.clone + c.kernelLost.exit,
  };
}

/** The dump for the current process.o from .cache/, recording one first when there is none. */
export async function cachedProcessDump(iterations: number, log: (msg: string) => void = () => {}): Promise<ProcessDump> {
  const hash = objectHash();
  const path = join(import.meta.dir, "..", "..", ".cache", `process-dump-${hash.slice(0, 16)}-${iterations}.bin`);
  if (existsSync(path)) {
    const d = loadDump(path);
    if (d.object === hash) return d;
  }
  if (process.getuid?.() !== 0) throw new DumpError(`no recorded dump at ${path}, and recording one needs root`);
  log(`recording ${iterations} storm iterations from the process sensor into ${path}`);
  const d = await captureProcessDump({ iterations, log });
  if (d.kernelLost > 0) throw new DumpError(`recording lost ${d.kernelLost} records in the kernel; not saving a partial dump`);
  saveDump(path, d);
  return d;
}

/**
 * Replays a dump through the ring buffer reader's consume loop over an in-memory ring (the
 * same code path, the same per-record DataView, as a live drain). After each round every
 * recorded time (event time, ktime, parent ktime at or after t0) moves by the dump's span, so
 * the next round's processes are new images.
 */
export class DumpReplayer {
  readonly records: number;
  private readonly ring: RingViews;
  private readonly views: DataView[];
  private readonly shift: bigint;
  private readonly t0: bigint;

  constructor(
    dump: ProcessDump,
    private readonly dec: ProcessRecordDecoder,
    filter?: (op: "exec" | "clone" | "exit" | undefined) => boolean,
  ) {
    let views = recordsOf(dump.ring);
    if (filter) views = views.filter((v) => filter(dec.opOf(v)));
    const ring = filter ? ringOf(views.map((v) => new Uint8Array(v.buffer, v.byteOffset, v.byteLength))) : dump.ring.slice();
    this.views = recordsOf(ring);
    this.records = this.views.length;
    this.ring = {
      consumerPos: new BigUint64Array(1),
      producerPos: new BigUint64Array([BigInt(ring.length)]),
      data: ring.buffer as ArrayBuffer,
      dataOffset: ring.byteOffset,
      // Larger than the data, so positions never wrap: one pass delivers everything in order.
      size: ring.length + 8,
    };
    this.t0 = dump.t0;
    this.shift = dump.t1 - dump.t0 + 1_000_000_000n;
  }

  /** Delivers every record once, then moves the times for the next round; returns how many. */
  round(cb: (rec: DataView) => void): number {
    const n = this.deliver(cb);
    this.advance();
    return n;
  }

  /** Delivers every record once, as they are now (benchmarks time this part alone). */
  deliver(cb: (rec: DataView) => void): number {
    this.ring.consumerPos[0] = 0n;
    return consume(this.ring, cb);
  }

  /** Moves every recorded time forward by the dump's span, so the next round's images are new. */
  advance(): void {
    const d = this.dec;
    const move = (v: DataView, off: number): void => {
      const t = v.getBigUint64(off, true);
      if (t >= this.t0) v.setBigUint64(off, t + this.shift, true);
    };
    const time = d.hdr.offset("time");
    for (const v of this.views) {
      move(v, time);
      const op = d.opOf(v);
      const l = op === "exec" ? d.exec : op === "clone" ? d.clone : op === "exit" ? d.exit : undefined;
      if (!l) continue;
      move(v, l.offset("ktime"));
      if (l.has("parent_ktime")) move(v, l.offset("parent_ktime"));
    }
  }
}
