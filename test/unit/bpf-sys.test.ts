import { describe, expect, test } from "bun:test";
import { openSync } from "node:fs";
import { objName } from "../../src/bpf/attr.ts";
import { Fd } from "../../src/bpf/fd.ts";
import { MapType, parseCpuList, possibleCpus, sumPerCpuU64, valueBufferSize } from "../../src/bpf/map.ts";
import { encodePerfAttr } from "../../src/bpf/perf.ts";
import { EPERM_HINT, VerifierError } from "../../src/bpf/program.ts";
import { SyscallError, errnoName } from "../../src/bpf/sys.ts";

describe("errors", () => {
  test("SyscallError names the syscall, the command and the errno", () => {
    const e = new SyscallError("bpf", "BPF_MAP_CREATE", 1);
    expect(e.message).toBe("bpf(BPF_MAP_CREATE): EPERM (operation not permitted)");
    expect(e.code).toBe("EPERM");
    expect(e.errno).toBe(1);
    expect(e.command).toBe("BPF_MAP_CREATE");
    expect(errnoName(524)).toBe("ENOTSUPP");
    expect(errnoName(9999)).toBe("errno 9999");
  });

  test("VerifierError keeps the log lines and shows the tail", () => {
    const log = Array.from({ length: 20 }, (_, i) => `line ${i}`);
    const e = new VerifierError("count_openat", 13, log);
    expect(e).toBeInstanceOf(SyscallError);
    expect(e.log).toHaveLength(20);
    expect(e.message).toStartWith("load program count_openat: EACCES");
    expect(e.message).toContain("line 19");
    expect(e.message).not.toContain("line 10\n");
    expect(e.hint).toBeUndefined();
  });

  test("EPERM with an empty log carries the not-permitted hint", () => {
    const e = new VerifierError("lsm_open", 1, []);
    expect(e.hint).toBe(EPERM_HINT);
    expect(e.message).toContain("not permitted on this kernel");
    // With a log, EPERM is the verifier's own verdict and gets no hint.
    expect(new VerifierError("x", 1, ["R1 invalid mem access"]).hint).toBeUndefined();
  });
});

describe("sizes", () => {
  test("cpu lists count up to the highest possible cpu", () => {
    expect(parseCpuList("0")).toBe(1);
    expect(parseCpuList("0-7")).toBe(8);
    expect(parseCpuList("0,2-3")).toBe(4);
    expect(parseCpuList("0-1\n")).toBe(2);
    expect(() => parseCpuList("x")).toThrow();
  });

  test("per-cpu value buffers are roundup(value, 8) per possible cpu", () => {
    const n = possibleCpus();
    expect(valueBufferSize(MapType.PERCPU_ARRAY, 4)).toBe(8 * n);
    expect(valueBufferSize(MapType.LRU_PERCPU_HASH, 12)).toBe(16 * n);
    expect(valueBufferSize(MapType.HASH, 12)).toBe(12);
  });

  test("a per-cpu u64 value sums its 8-byte cpu slots, little-endian, beyond 2^53", () => {
    const v = new Uint8Array(8 * 3 + 4); // a trailing partial slot is not a cpu's
    const dv = new DataView(v.buffer);
    dv.setBigUint64(0, 5n, true);
    dv.setBigUint64(8, 1n << 60n, true);
    dv.setBigUint64(16, 7n, true);
    dv.setUint32(24, 0xffffffff, true);
    expect(sumPerCpuU64(v)).toBe((1n << 60n) + 12n);
    expect(sumPerCpuU64(v.subarray(8, 16))).toBe(1n << 60n);
    expect(sumPerCpuU64(new Uint8Array(0))).toBe(0n);
  });

  test("object names keep 15 characters of [A-Za-z0-9_.]", () => {
    expect(objName("count-openat/x")).toBe("count_openat_x");
    expect(objName("a_very_long_program_name")).toBe("a_very_long_pro");
    expect(objName("rb.test")).toBe("rb.test");
  });

  test("perf_event_attr puts config, period and config1/2 at their offsets", () => {
    const b = encodePerfAttr({ type: 2, config: 123n, samplePeriod: 1n, sampleType: 1024n, wakeupEvents: 1, config1: 5n, config2: 6n });
    const v = new DataView(b.buffer);
    expect(v.getUint32(0, true)).toBe(2);
    expect(v.getUint32(4, true)).toBe(b.length);
    expect(v.getBigUint64(8, true)).toBe(123n);
    expect(v.getBigUint64(16, true)).toBe(1n);
    expect(v.getBigUint64(24, true)).toBe(1024n);
    expect(v.getUint32(48, true)).toBe(1);
    expect(v.getBigUint64(56, true)).toBe(5n);
    expect(v.getBigUint64(64, true)).toBe(6n);
  });
});

describe("Fd", () => {
  test("closing twice is a no-op and a closed fd cannot be used", () => {
    const fd = new Fd(openSync("/dev/null", "r"));
    const d = fd.dup();
    expect(d.raw).not.toBe(fd.raw);
    fd.close();
    fd.close();
    expect(fd.closed).toBe(true);
    expect(() => fd.raw).toThrow(/closed fd/);
    d.close();
  });

  test("negative descriptors are rejected", () => {
    expect(() => new Fd(-1)).toThrow(RangeError);
  });
});
