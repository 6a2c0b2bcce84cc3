// BPF maps: MAP_CREATE and the element commands. Keys and values are raw bytes; typed views
// belong to the callers that know the layout (sensors read layouts from BTF).
import { readFileSync } from "node:fs";
import { Attr, objInfo, objName, readCString } from "./attr.ts";
import { BpfCmd, MapFlags, MapType, UpdateFlags } from "./constants.ts";
import { Fd } from "./fd.ts";
import { getPinned, pinObject } from "./pin.ts";
import { SyscallError } from "./sys.ts";

export { MapType, UpdateFlags };

export interface MapSpec {
  name: string;
  type: MapType;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags?: number;
  /** Template for the inner maps of ARRAY_OF_MAPS / HASH_OF_MAPS. */
  innerMap?: MapSpec;
  btfFd?: number;
  btfKeyTypeId?: number;
  btfValueTypeId?: number;
  mapExtra?: bigint;
  pinning?: "none" | "by-name";
}

export interface MapInfo {
  type: MapType;
  id: number;
  keySize: number;
  valueSize: number;
  maxEntries: number;
  flags: number;
  name: string;
  btfId: number;
  btfKeyTypeId: number;
  btfValueTypeId: number;
  mapExtra: bigint;
}

export interface BatchResult {
  keys: Uint8Array[];
  values: Uint8Array[];
}

let cpuCount: number | undefined;
/** Number of possible CPUs (/sys/devices/system/cpu/possible, e.g. "0-7" or "0,2-3"). */
export function possibleCpus(): number {
  if (cpuCount !== undefined) return cpuCount;
  const text = readFileSync("/sys/devices/system/cpu/possible", "utf8").trim();
  cpuCount = parseCpuList(text);
  return cpuCount;
}

/** Count of CPUs in a kernel cpu list; the highest index + 1, as the kernel sizes per-CPU data. */
export function parseCpuList(text: string): number {
  let max = -1;
  for (const part of text.split(",")) {
    const p = part.trim();
    if (p === "") continue;
    const [a, b] = p.split("-");
    const hi = Number(b ?? a);
    if (!Number.isInteger(hi)) throw new Error(`parse cpu list "${text}"`);
    max = Math.max(max, hi);
  }
  return max + 1;
}

export function isPerCpu(t: MapType): boolean {
  return (
    t === MapType.PERCPU_HASH ||
    t === MapType.PERCPU_ARRAY ||
    t === MapType.LRU_PERCPU_HASH ||
    t === MapType.PERCPU_CGROUP_STORAGE
  );
}

/** Bytes of a userspace value buffer: per-CPU maps carry roundup(value_size, 8) per possible CPU. */
export function valueBufferSize(type: MapType, valueSize: number): number {
  return isPerCpu(type) ? Math.ceil(valueSize / 8) * 8 * possibleCpus() : valueSize;
}

/**
 * A per-CPU u64 value (as lookup() returns it: one 8-byte slot per possible CPU) summed over
 * its CPUs; counters are kept per CPU so the programs never contend for one cache line.
 */
export function sumPerCpuU64(value: Uint8Array): bigint {
  const dv = new DataView(value.buffer, value.byteOffset, value.byteLength);
  let sum = 0n;
  for (let o = 0; o + 8 <= value.byteLength; o += 8) sum += dv.getBigUint64(o, true);
  return sum;
}

function isEnoent(e: unknown): boolean {
  return e instanceof SyscallError && e.errno === 2;
}

/** Errnos that mean "this map type has no batch command": fall back to per-element calls. */
function batchUnsupported(e: unknown): boolean {
  return e instanceof SyscallError && (e.errno === 22 || e.errno === 95 || e.errno === 524);
}

export class MapError extends Error {
  override name = "MapError";
}

const MAP_INFO_SIZE = 104;

export class BpfMap {
  readonly fd: Fd;
  readonly spec: MapSpec;
  #batchOk: boolean | undefined;

  private constructor(fd: Fd, spec: MapSpec) {
    this.fd = fd;
    this.spec = spec;
  }

  /** MAP_CREATE. Map-of-maps need an inner map: opts.innerMapFd, or one made from spec.innerMap. */
  static create(spec: MapSpec, opts: { innerMapFd?: number } = {}): BpfMap {
    let inner: BpfMap | undefined;
    let innerFd = opts.innerMapFd ?? 0;
    const outer = spec.type === MapType.ARRAY_OF_MAPS || spec.type === MapType.HASH_OF_MAPS;
    if (outer && opts.innerMapFd === undefined) {
      if (spec.innerMap === undefined) throw new MapError(`create map ${spec.name}: map-of-maps needs an inner map spec`);
      inner = BpfMap.create(spec.innerMap);
      innerFd = inner.fd.raw;
    }
    try {
      const a = new Attr()
        .u32(0, spec.type)
        .u32(4, spec.keySize)
        .u32(8, spec.valueSize)
        .u32(12, spec.maxEntries)
        .u32(16, spec.flags ?? 0)
        .u32(20, innerFd)
        .chars(28, objName(spec.name), 16);
      if (spec.btfFd !== undefined && spec.btfFd > 0) {
        a.u32(48, spec.btfFd).u32(52, spec.btfKeyTypeId ?? 0).u32(56, spec.btfValueTypeId ?? 0);
      }
      if (spec.mapExtra !== undefined) a.u64(64, spec.mapExtra);
      let fd: number;
      try {
        fd = a.call(BpfCmd.MAP_CREATE);
      } catch (e) {
        if (e instanceof SyscallError) {
          throw new SyscallError(e.syscall, e.command, e.errno, `create map ${spec.name}: ${e.message}`);
        }
        throw e;
      }
      return new BpfMap(new Fd(fd), { ...spec });
    } finally {
      // The kernel copies what it needs from the inner template; the template fd can go.
      inner?.close();
    }
  }

  /** Open a pinned map; its spec comes from the kernel's map info. */
  static fromPin(path: string, flags = 0): BpfMap {
    return BpfMap.fromFd(getPinned(path, flags));
  }

  /** Wrap an fd that refers to a map (takes ownership). */
  static fromFd(fd: Fd): BpfMap {
    const i = readMapInfo(fd.raw);
    return new BpfMap(fd, {
      name: i.name,
      type: i.type,
      keySize: i.keySize,
      valueSize: i.valueSize,
      maxEntries: i.maxEntries,
      flags: i.flags,
      mapExtra: i.mapExtra,
    });
  }

  /** How batch calls ran on this map so far: kernel batch commands, the per-element fallback, or not yet known. */
  get batchMode(): "batch" | "per-element" | "unknown" {
    return this.#batchOk === undefined ? "unknown" : this.#batchOk ? "batch" : "per-element";
  }

  /** Bytes of a value buffer for lookups/updates (per-CPU maps: one slot per possible CPU). */
  get valueBufferSize(): number {
    return valueBufferSize(this.spec.type, this.spec.valueSize);
  }

  #checkKey(key: Uint8Array): void {
    if (key.byteLength !== this.spec.keySize) {
      throw new MapError(`map ${this.spec.name}: key is ${key.byteLength} bytes, map wants ${this.spec.keySize}`);
    }
  }

  lookup(key: Uint8Array): Uint8Array | undefined {
    this.#checkKey(key);
    const value = new Uint8Array(this.valueBufferSize);
    try {
      new Attr().u32(0, this.fd.raw).ptr(8, key).ptr(16, value).call(BpfCmd.MAP_LOOKUP_ELEM);
    } catch (e) {
      if (isEnoent(e)) return undefined;
      throw e;
    }
    return value;
  }

  /** MAP_LOOKUP_AND_DELETE_ELEM (queues/stacks take an empty key). */
  lookupAndDelete(key: Uint8Array): Uint8Array | undefined {
    const value = new Uint8Array(this.valueBufferSize);
    try {
      new Attr().u32(0, this.fd.raw).ptr(8, key).ptr(16, value).call(BpfCmd.MAP_LOOKUP_AND_DELETE_ELEM);
    } catch (e) {
      if (isEnoent(e)) return undefined;
      throw e;
    }
    return value;
  }

  update(key: Uint8Array, value: Uint8Array, flags: UpdateFlags = UpdateFlags.ANY): void {
    this.#checkKey(key);
    if (value.byteLength !== this.valueBufferSize) {
      throw new MapError(`map ${this.spec.name}: value is ${value.byteLength} bytes, map wants ${this.valueBufferSize}`);
    }
    new Attr().u32(0, this.fd.raw).ptr(8, key).ptr(16, value).u64(24, flags).call(BpfCmd.MAP_UPDATE_ELEM);
  }

  /** Delete a key; false when it was not there. */
  delete(key: Uint8Array): boolean {
    this.#checkKey(key);
    try {
      new Attr().u32(0, this.fd.raw).ptr(8, key).call(BpfCmd.MAP_DELETE_ELEM);
      return true;
    } catch (e) {
      if (isEnoent(e)) return false;
      throw e;
    }
  }

  /** The key after `key` (the first key for undefined), or undefined at the end. */
  nextKey(key: Uint8Array | undefined): Uint8Array | undefined {
    const next = new Uint8Array(this.spec.keySize);
    try {
      new Attr().u32(0, this.fd.raw).ptr(8, key).ptr(16, next).call(BpfCmd.MAP_GET_NEXT_KEY);
    } catch (e) {
      if (isEnoent(e)) return undefined;
      throw e;
    }
    return next;
  }

  /** Iterate keys with GET_NEXT_KEY. A hash map changed during iteration may restart or skip keys. */
  *keys(): Generator<Uint8Array> {
    let k = this.nextKey(undefined);
    while (k !== undefined) {
      yield k;
      k = this.nextKey(k);
    }
  }

  /** Iterate [key, value]; keys that vanish between the two calls are skipped. */
  *entries(): Generator<[Uint8Array, Uint8Array]> {
    for (const k of this.keys()) {
      const v = this.lookup(k);
      if (v !== undefined) yield [k, v];
    }
  }

  /**
   * Every entry through MAP_LOOKUP_BATCH, `chunk` entries per call; falls back to keys()/lookup()
   * on map types without batch support.
   */
  lookupBatch(chunk = 256): BatchResult {
    const out: BatchResult = { keys: [], values: [] };
    if (this.#batchOk !== false) {
      try {
        this.#lookupBatch(chunk, out);
        this.#batchOk = true;
        return out;
      } catch (e) {
        if (!batchUnsupported(e) || this.#batchOk === true || out.keys.length > 0) throw e;
        this.#batchOk = false;
      }
    }
    for (const [k, v] of this.entries()) {
      out.keys.push(k);
      out.values.push(v);
    }
    return out;
  }

  #lookupBatch(chunk: number, out: BatchResult): void {
    const ks = this.spec.keySize;
    const vs = this.valueBufferSize;
    // Hash maps return a whole bucket per call; ENOSPC means the bucket did not fit, so grow.
    let n = Math.max(1, Math.min(chunk, Math.max(1, this.spec.maxEntries)));
    const token = new Uint8Array(Math.max(ks, 8));
    const next = new Uint8Array(Math.max(ks, 8));
    let first = true;
    for (;;) {
      const keys = new Uint8Array(ks * n);
      const values = new Uint8Array(vs * n);
      const a = new Attr()
        .ptr(0, first ? null : token)
        .ptr(8, next)
        .ptr(16, keys)
        .ptr(24, values)
        .u32(32, n)
        .u32(36, this.fd.raw);
      const r = a.tryCall(BpfCmd.MAP_LOOKUP_BATCH);
      const got = a.getU32(32);
      if (r.errno === 28 && got === 0) {
        n *= 2;
        continue;
      }
      if (r.errno !== 0 && r.errno !== 2) {
        throw new SyscallError("bpf", "BPF_MAP_LOOKUP_BATCH", r.errno);
      }
      for (let i = 0; i < got; i++) {
        out.keys.push(keys.slice(i * ks, (i + 1) * ks));
        out.values.push(values.slice(i * vs, (i + 1) * vs));
      }
      if (r.errno === 2) return; // ENOENT: the last chunk
      token.set(next);
      first = false;
    }
  }

  /** MAP_UPDATE_BATCH of parallel key/value lists; falls back to update() per element. */
  updateBatch(keys: Uint8Array[], values: Uint8Array[], flags: UpdateFlags = UpdateFlags.ANY): void {
    if (keys.length !== values.length) throw new MapError(`map ${this.spec.name}: ${keys.length} keys but ${values.length} values`);
    if (keys.length === 0) return;
    const ks = this.spec.keySize;
    const vs = this.valueBufferSize;
    if (this.#batchOk !== false) {
      const kb = new Uint8Array(ks * keys.length);
      const vb = new Uint8Array(vs * keys.length);
      keys.forEach((k, i) => {
        this.#checkKey(k);
        kb.set(k, i * ks);
      });
      values.forEach((v, i) => {
        if (v.byteLength !== vs) throw new MapError(`map ${this.spec.name}: value is ${v.byteLength} bytes, map wants ${vs}`);
        vb.set(v, i * vs);
      });
      const a = new Attr().ptr(16, kb).ptr(24, vb).u32(32, keys.length).u32(36, this.fd.raw).u64(40, flags);
      const r = a.tryCall(BpfCmd.MAP_UPDATE_BATCH);
      if (r.errno === 0) {
        this.#batchOk = true;
        return;
      }
      const done = a.getU32(32);
      if (!(done === 0 && (r.errno === 22 || r.errno === 95 || r.errno === 524)) || this.#batchOk === true) {
        throw new SyscallError("bpf", "BPF_MAP_UPDATE_BATCH", r.errno);
      }
      this.#batchOk = false;
    }
    keys.forEach((k, i) => this.update(k, values[i]!, flags));
  }

  /** MAP_DELETE_BATCH; returns how many keys were deleted (missing keys stop the kernel's batch, so
   * the rest are deleted one by one). Falls back to delete() per key. */
  deleteBatch(keys: Uint8Array[]): number {
    if (keys.length === 0) return 0;
    const ks = this.spec.keySize;
    let deleted = 0;
    let start = 0;
    if (this.#batchOk !== false) {
      const kb = new Uint8Array(ks * keys.length);
      keys.forEach((k, i) => {
        this.#checkKey(k);
        kb.set(k, i * ks);
      });
      const a = new Attr().ptr(16, kb).u32(32, keys.length).u32(36, this.fd.raw);
      const r = a.tryCall(BpfCmd.MAP_DELETE_BATCH);
      const done = a.getU32(32);
      if (r.errno === 0) {
        this.#batchOk = true;
        return keys.length;
      }
      if (r.errno === 2) {
        // Stopped at a missing key: count what went, skip the missing one, finish per element.
        deleted = done;
        start = done + 1;
      } else if (done === 0 && (r.errno === 22 || r.errno === 95 || r.errno === 524) && this.#batchOk !== true) {
        this.#batchOk = false;
      } else {
        throw new SyscallError("bpf", "BPF_MAP_DELETE_BATCH", r.errno);
      }
    }
    for (let i = start; i < keys.length; i++) if (this.delete(keys[i]!)) deleted++;
    return deleted;
  }

  /** MAP_FREEZE: no more writes from userspace (programs may still write unless RDONLY_PROG). */
  freeze(): void {
    new Attr().u32(0, this.fd.raw).call(BpfCmd.MAP_FREEZE);
  }

  pin(path: string): void {
    pinObject(this.fd, path);
  }

  info(): MapInfo {
    return readMapInfo(this.fd.raw);
  }

  close(): void {
    this.fd.close();
  }
}

export function readMapInfo(fd: number): MapInfo {
  const v = objInfo(fd, MAP_INFO_SIZE);
  return {
    type: v.getUint32(0, true),
    id: v.getUint32(4, true),
    keySize: v.getUint32(8, true),
    valueSize: v.getUint32(12, true),
    maxEntries: v.getUint32(16, true),
    flags: v.getUint32(20, true),
    name: readCString(new Uint8Array(v.buffer, 24, 16)),
    btfId: v.getUint32(64, true),
    btfKeyTypeId: v.getUint32(68, true),
    btfValueTypeId: v.getUint32(72, true),
    mapExtra: v.getBigUint64(80, true),
  };
}

export { MapFlags };
