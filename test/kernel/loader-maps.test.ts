// Every map type the sensors use, against the real kernel: create, update, lookup, delete,
// iterate, batch (or its fallback), freeze, info.
import { afterEach, describe, expect } from "bun:test";
import { kernelTest } from "../lib/host.ts";
import { getU32, getU64, u32, u64 } from "../lib/loader-progs.ts";
import { MapFlags, UpdateFlags } from "../../src/bpf/constants.ts";
import { BpfMap, MapType, possibleCpus, type MapSpec } from "../../src/bpf/map.ts";
import { SyscallError } from "../../src/bpf/sys.ts";
import { BpfProgram, ProgType } from "../../src/bpf/program.ts";
import { retProgram } from "../../src/bpf/asm.ts";

const open: BpfMap[] = [];
function make(spec: MapSpec): BpfMap {
  const m = BpfMap.create(spec);
  open.push(m);
  return m;
}
afterEach(() => {
  for (const m of open.splice(0)) m.close();
});

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof SyscallError) return e.code;
    throw e;
  }
  return undefined;
}

const sorted = (keys: Uint8Array[]): number[] => keys.map((k) => getU32(k)).sort((a, b) => a - b);

describe("hash", () => {
  kernelTest("update, lookup, delete, iterate; NOEXIST/EXIST; full map is E2BIG", () => {
    const m = make({ name: "t_hash", type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 4 });
    expect(m.lookup(u32(1))).toBeUndefined();
    m.update(u32(1), u64(100));
    m.update(u32(2), u64(200), UpdateFlags.NOEXIST);
    expect(getU64(m.lookup(u32(1))!)).toBe(100n);
    expect(errnoOf(() => m.update(u32(2), u64(5), UpdateFlags.NOEXIST))).toBe("EEXIST");
    expect(errnoOf(() => m.update(u32(9), u64(5), UpdateFlags.EXIST))).toBe("ENOENT");
    m.update(u32(3), u64(300));
    m.update(u32(4), u64(400));
    expect(errnoOf(() => m.update(u32(5), u64(500)))).toBe("E2BIG");
    expect(sorted([...m.keys()])).toEqual([1, 2, 3, 4]);
    expect(new Map([...m.entries()].map(([k, v]) => [getU32(k), getU64(v)]))).toEqual(
      new Map([[1, 100n], [2, 200n], [3, 300n], [4, 400n]]),
    );
    expect(m.delete(u32(3))).toBe(true);
    expect(m.delete(u32(3))).toBe(false);
    expect(sorted([...m.keys()])).toEqual([1, 2, 4]);
  });

  kernelTest("batch update, lookup and delete move many entries per syscall", () => {
    const m = make({ name: "t_hash_batch", type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 1000 });
    const keys = Array.from({ length: 600 }, (_, i) => u32(i + 1));
    const values = keys.map((k) => u64(getU32(k) * 3));
    m.updateBatch(keys, values);
    expect(getU64(m.lookup(u32(600))!)).toBe(1800n);
    expect(m.batchMode).toBe("batch");
    const got = m.lookupBatch(64);
    expect(got.keys).toHaveLength(600);
    for (let i = 0; i < got.keys.length; i++) expect(getU64(got.values[i]!)).toBe(BigInt(getU32(got.keys[i]!) * 3));
    // A missing key in the middle: the rest are still deleted, the count says how many went.
    expect(m.deleteBatch([u32(1), u32(2), u32(5000), u32(3)])).toBe(3);
    expect(m.lookup(u32(3))).toBeUndefined();
    expect([...m.keys()]).toHaveLength(597);
  });

  kernelTest("a wrong key size is refused before the syscall", () => {
    const m = make({ name: "t_hash_ks", type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 4 });
    expect(() => m.lookup(new Uint8Array(8))).toThrow(/key is 8 bytes, map wants 4/);
  });
});

describe("array", () => {
  kernelTest("all entries exist, delete is refused, batch works", () => {
    const m = make({ name: "t_array", type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 8 });
    expect([...m.keys()]).toHaveLength(8);
    expect(getU32(m.lookup(u32(7))!)).toBe(0);
    expect(m.lookup(u32(8))).toBeUndefined();
    m.update(u32(3), u32(33));
    expect(errnoOf(() => m.delete(u32(3)))).toBe("EINVAL");
    m.updateBatch([u32(0), u32(1)], [u32(10), u32(11)]);
    const b = m.lookupBatch(3);
    expect(b.keys.map((k) => getU32(k))).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(b.values.map((v) => getU32(v))).toEqual([10, 11, 0, 33, 0, 0, 0, 0]);
    expect(m.batchMode).toBe("batch");
  });

  kernelTest("array keys must be 4 bytes: EINVAL as a typed error naming the map", () => {
    let err: unknown;
    try {
      make({ name: "bad_array", type: MapType.ARRAY, keySize: 8, valueSize: 4, maxEntries: 1 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(SyscallError);
    expect((err as SyscallError).code).toBe("EINVAL");
    expect((err as SyscallError).command).toBe("BPF_MAP_CREATE");
    expect((err as Error).message).toBe("create map bad_array: bpf(BPF_MAP_CREATE): EINVAL (invalid argument)");
  });

  kernelTest("freeze: userspace writes fail with EPERM afterwards, reads still work", () => {
    const m = make({ name: "t_frozen", type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    m.update(u32(0), u32(42));
    m.freeze();
    expect(errnoOf(() => m.update(u32(0), u32(1)))).toBe("EPERM");
    expect(getU32(m.lookup(u32(0))!)).toBe(42);
  });
});

describe("lru hash", () => {
  kernelTest("inserting past max_entries evicts instead of failing", () => {
    const m = make({ name: "t_lru", type: MapType.LRU_HASH, keySize: 4, valueSize: 4, maxEntries: 64 });
    for (let i = 0; i < 1000; i++) m.update(u32(i), u32(i));
    const keys = [...m.keys()];
    expect(keys.length).toBeGreaterThan(0);
    expect(keys.length).toBeLessThanOrEqual(64);
    // The newest entry survives.
    expect(getU32(m.lookup(u32(999))!)).toBe(999);
    expect(m.lookupBatch().keys.length).toBe(keys.length);
  });
});

describe("per-cpu maps", () => {
  const n = possibleCpus();
  const perCpu = (vals: number[]): Uint8Array => {
    const b = new Uint8Array(8 * n);
    const dv = new DataView(b.buffer);
    vals.forEach((v, i) => dv.setUint32(i * 8, v, true));
    return b;
  };
  const cpuVals = (b: Uint8Array): number[] => Array.from({ length: n }, (_, i) => getU32(b, i * 8));

  for (const type of [MapType.PERCPU_ARRAY, MapType.PERCPU_HASH, MapType.LRU_PERCPU_HASH]) {
    kernelTest(`${MapType[type]}: one value slot per possible cpu, 8-byte stride, batch too`, () => {
      const m = make({ name: "t_percpu", type, keySize: 4, valueSize: 4, maxEntries: 16 });
      expect(m.valueBufferSize).toBe(8 * n);
      const want = Array.from({ length: n }, (_, i) => 100 + i);
      m.update(u32(2), perCpu(want));
      expect(cpuVals(m.lookup(u32(2))!)).toEqual(want);
      expect(() => m.update(u32(2), new Uint8Array(4))).toThrow(/map wants/);
      m.updateBatch([u32(3)], [perCpu(want.map((v) => v * 2))]);
      const b = m.lookupBatch();
      const i3 = b.keys.findIndex((k) => getU32(k) === 3);
      expect(cpuVals(b.values[i3]!)).toEqual(want.map((v) => v * 2));
      if (type !== MapType.PERCPU_ARRAY) {
        expect(m.delete(u32(2))).toBe(true);
        expect(m.lookup(u32(2))).toBeUndefined();
      }
    });
  }
});

describe("lpm trie", () => {
  const key = (prefix: number, ip: [number, number, number, number]): Uint8Array => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setUint32(0, prefix, true);
    b.set(ip, 4);
    return b;
  };

  kernelTest("longest prefix wins; iterate, batch, delete", () => {
    expect(() => make({ name: "t_lpm_bad", type: MapType.LPM_TRIE, keySize: 8, valueSize: 4, maxEntries: 16 })).toThrow(/EINVAL/);
    const m = make({ name: "t_lpm", type: MapType.LPM_TRIE, keySize: 8, valueSize: 4, maxEntries: 16, flags: MapFlags.NO_PREALLOC });
    m.update(key(8, [10, 0, 0, 0]), u32(8));
    m.update(key(16, [10, 1, 0, 0]), u32(16));
    expect(getU32(m.lookup(key(32, [10, 1, 2, 3]))!)).toBe(16);
    expect(getU32(m.lookup(key(32, [10, 2, 0, 1]))!)).toBe(8);
    expect(m.lookup(key(32, [11, 0, 0, 1]))).toBeUndefined();
    expect([...m.keys()]).toHaveLength(2);
    expect(m.lookupBatch().keys).toHaveLength(2);
    expect(m.batchMode).toBe("batch");
    expect(m.delete(key(16, [10, 1, 0, 0]))).toBe(true);
    expect(getU32(m.lookup(key(32, [10, 1, 2, 3]))!)).toBe(8);
  });
});

describe("maps of maps", () => {
  for (const type of [MapType.HASH_OF_MAPS, MapType.ARRAY_OF_MAPS]) {
    kernelTest(`${MapType[type]}: inner map fds go in, inner map ids come out`, () => {
      const innerSpec: MapSpec = { name: "t_inner", type: MapType.HASH, keySize: 4, valueSize: 4, maxEntries: 4 };
      const outer = make({ name: "t_outer", type, keySize: 4, valueSize: 4, maxEntries: 4, innerMap: innerSpec });
      const inner = make(innerSpec);
      inner.update(u32(1), u32(11));
      outer.update(u32(1), u32(inner.fd.raw));
      expect(getU32(outer.lookup(u32(1))!)).toBe(inner.info().id);
      // An inner map of a different shape is refused.
      const wrong = make({ name: "t_wrong", type: MapType.HASH, keySize: 8, valueSize: 4, maxEntries: 4 });
      expect(errnoOf(() => outer.update(u32(2), u32(wrong.fd.raw)))).toBe("EINVAL");
      if (type === MapType.HASH_OF_MAPS) {
        expect([...outer.keys()].map((k) => getU32(k))).toEqual([1]);
        expect(outer.delete(u32(1))).toBe(true);
        expect(outer.lookup(u32(1))).toBeUndefined();
      } else {
        expect(outer.delete(u32(1))).toBe(true);
        expect(outer.lookup(u32(1))).toBeUndefined();
      }
    });
  }

  kernelTest("a map of maps without an inner map spec is a clear error", () => {
    expect(() => make({ name: "t_noinner", type: MapType.HASH_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 1 })).toThrow(/needs an inner map spec/);
  });
});

describe("queue, ring buffer", () => {
  kernelTest("queue: push with an empty key, pop in FIFO order", () => {
    const q = make({ name: "t_queue", type: MapType.QUEUE, keySize: 0, valueSize: 4, maxEntries: 4 });
    q.update(new Uint8Array(0), u32(1));
    q.update(new Uint8Array(0), u32(2));
    expect(getU32(q.lookupAndDelete(new Uint8Array(0))!)).toBe(1);
    expect(getU32(q.lookupAndDelete(new Uint8Array(0))!)).toBe(2);
    expect(q.lookupAndDelete(new Uint8Array(0))).toBeUndefined();
  });

  kernelTest("ring buffer: size must be a power-of-two multiple of the page size", () => {
    const rb = make({ name: "t_rb", type: MapType.RINGBUF, keySize: 0, valueSize: 0, maxEntries: 8192 });
    expect(rb.info().type).toBe(MapType.RINGBUF);
    expect(rb.info().maxEntries).toBe(8192);
    expect(() => make({ name: "t_rb_bad", type: MapType.RINGBUF, keySize: 0, valueSize: 0, maxEntries: 3 * 4096 })).toThrow(/EINVAL/);
  });
});

describe("batch fallback", () => {
  kernelTest("a map type without batch commands (prog array) falls back to per-element calls", () => {
    const m = make({ name: "t_progs", type: MapType.PROG_ARRAY, keySize: 4, valueSize: 4, maxEntries: 4 });
    const p = BpfProgram.load({ name: "t_tail", type: ProgType.SOCKET_FILTER, insns: retProgram(0), license: "GPL" });
    try {
      m.update(u32(1), u32(p.fd.raw));
      const b = m.lookupBatch();
      expect(m.batchMode).toBe("per-element");
      expect(b.keys.map((k) => getU32(k))).toEqual([1]);
      expect(getU32(b.values[0]!)).toBe(p.info().id);
      m.updateBatch([u32(2)], [u32(p.fd.raw)]);
      expect(getU32(m.lookup(u32(2))!)).toBe(p.info().id);
      expect(m.deleteBatch([u32(1), u32(2)])).toBe(2);
      expect(m.lookupBatch().keys).toHaveLength(0);
    } finally {
      p.close();
    }
  });
});

describe("info and fromFd", () => {
  kernelTest("the spec of a map opened by fd comes from the kernel's map info", () => {
    const m = make({ name: "t_info.x", type: MapType.HASH, keySize: 4, valueSize: 12, maxEntries: 7, flags: MapFlags.NO_PREALLOC });
    const again = BpfMap.fromFd(m.fd.dup());
    open.push(again);
    expect(again.spec).toMatchObject({ name: "t_info.x", type: MapType.HASH, keySize: 4, valueSize: 12, maxEntries: 7, flags: MapFlags.NO_PREALLOC });
    expect(again.info().id).toBe(m.info().id);
    m.update(u32(1), new Uint8Array(12).fill(9));
    expect(again.lookup(u32(1))).toEqual(new Uint8Array(12).fill(9));
  });
});
