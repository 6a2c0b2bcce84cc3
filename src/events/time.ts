// Times: the kernel stamps records with the boot clock (bpf_ktime_get_boot_ns, the clock of
// /proc/<pid>/stat starttime); events carry wall-clock RFC 3339 times. The offset between
// the two is read once from clock_gettime through libc.
import { dlopen, FFIType, ptr } from "bun:ffi";

const CLOCK_REALTIME = 0;
const CLOCK_BOOTTIME = 7;

let libc: { symbols: { clock_gettime: (clk: number, ts: number | bigint | null) => number } } | undefined;

function clockNs(clock: number): bigint {
  libc ??= dlopen("libc.so.6", { clock_gettime: { args: [FFIType.i32, FFIType.ptr], returns: FFIType.i32 } }) as unknown as typeof libc;
  const ts = new BigInt64Array(2);
  if (libc!.symbols.clock_gettime(clock, ptr(ts)) !== 0) throw new Error(`clock_gettime(${clock}) failed`);
  return ts[0]! * 1_000_000_000n + ts[1]!;
}

/** Boot-clock nanoseconds now. */
export function bootNs(): bigint {
  return clockNs(CLOCK_BOOTTIME);
}

/** Wall-clock nanoseconds since the epoch now. */
export function wallNs(): bigint {
  return clockNs(CLOCK_REALTIME);
}

/** Converts boot-clock nanoseconds to wall-clock nanoseconds since the epoch. */
export class BootClock {
  readonly offsetNs: bigint;
  constructor(offsetNs?: bigint) {
    if (offsetNs !== undefined) {
      this.offsetNs = offsetNs;
    } else {
      // Bracket the boot reading with two wall readings to halve the error.
      const w0 = wallNs();
      const b = bootNs();
      const w1 = wallNs();
      this.offsetNs = (w0 + w1) / 2n - b;
    }
  }
  toWall(bootTimeNs: bigint): bigint {
    return bootTimeNs + this.offsetNs;
  }
}

// Events come in bursts within the same second: the formatted date part of the last second
// is kept with that second's first nanosecond, so a time in it costs one subtraction.
let lastStart = 0n;
let lastBase = "1970-01-01T00:00:00";

const NS_PER_SEC = 1_000_000_000n;

/**
 * RFC 3339 UTC with 0, 3, 6 or 9 fractional digits, the protojson Timestamp form
 * ("2023-10-06T22:03:57.700327580Z", "2024-04-14T02:17:46Z"). One BigInt subtraction per
 * call inside the cached second; the fraction is zero-padded by adding a power of ten and
 * dropping its leading 1.
 */
export function rfc3339Nano(epochNs: bigint): string {
  let d = epochNs - lastStart;
  if (d < 0n || d >= NS_PER_SEC) {
    let sec = epochNs / NS_PER_SEC;
    if (epochNs % NS_PER_SEC < 0n) sec -= 1n; // floor, for times before the epoch
    lastStart = sec * NS_PER_SEC;
    lastBase = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
    d = epochNs - lastStart;
  }
  const nanos = Number(d);
  const base = lastBase;
  if (nanos === 0) return `${base}Z`;
  if (nanos % 1_000_000 === 0) return `${base}.${String(1000 + nanos / 1_000_000).slice(1)}Z`;
  if (nanos % 1000 === 0) return `${base}.${String(1_000_000 + nanos / 1000).slice(1)}Z`;
  return `${base}.${String(1_000_000_000 + nanos).slice(1)}Z`;
}
