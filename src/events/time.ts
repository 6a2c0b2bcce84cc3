// Times: the kernel stamps records with the boot clock (bpf_ktime_get_boot_ns, the clock of
// /proc/<pid>/stat starttime); events carry wall-clock RFC 3339 times. The offset between
// the two is read once from clock_gettime through libc.
import { dlopen, FFIType, ptr } from "bun:ffi";
import type { ByteWriter } from "./byte-writer.ts";

const CLOCK_REALTIME = 0;
const CLOCK_BOOTTIME = 7;
const NS_PER_SEC = 1_000_000_000n;

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

// Boot times up to here take the Number path of BootClock.wall: boot + the offset's
// sub-second part stays an exact integer in a double (2^53 ns is 104 days of uptime).
const FAST_MAX = BigInt(Number.MAX_SAFE_INTEGER) - 2_000_000_000n;
const FAST_MAX_NUM = Number(FAST_MAX);

/** Converts boot-clock nanoseconds to wall-clock nanoseconds since the epoch. */
export class BootClock {
  readonly offsetNs: bigint;
  // The offset as whole seconds plus nanoseconds in [0, 1e9), and the last second formatted.
  readonly #offSec: number;
  readonly #offNs: number;
  #sec = Number.NaN;
  #base = "";
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
    let sec = this.offsetNs / NS_PER_SEC;
    let ns = this.offsetNs % NS_PER_SEC;
    if (ns < 0n) {
      ns += NS_PER_SEC;
      sec -= 1n;
    }
    this.#offSec = Number(sec);
    this.#offNs = Number(ns);
  }
  toWall(bootTimeNs: bigint): bigint {
    return bootTimeNs + this.offsetNs;
  }

  /**
   * rfc3339Nano(toWall(bootTimeNs)) without BigInt arithmetic for boot times below 2^53 ns:
   * every event pays for one of these, and BigInt values are heap objects.
   */
  wall(bootTimeNs: bigint): string {
    if (bootTimeNs < 0n || bootTimeNs > FAST_MAX || !Number.isSafeInteger(this.#offSec)) return rfc3339Nano(this.toWall(bootTimeNs));
    const x = Number(bootTimeNs) + this.#offNs;
    const nanos = x % 1_000_000_000;
    const sec = (x - nanos) / 1_000_000_000 + this.#offSec;
    if (sec !== this.#sec) {
      this.#sec = sec;
      this.#base = new Date(sec * 1000).toISOString().slice(0, 19);
    }
    return withFraction(this.#base, nanos);
  }

  /**
   * Writes wall(bootTimeNs) as bytes (room for 40): the cached second copied, the fraction
   * written digit by digit. The process pipeline's lines and blocks take their times this
   * way. The range check is done on the Number: a BigInt comparison costs more here.
   */
  wallInto(bootTimeNs: bigint, w: ByteWriter): void {
    const t = Number(bootTimeNs);
    if (!(t >= 0 && t <= FAST_MAX_NUM) || !Number.isSafeInteger(this.#offSec)) {
      w.ascii(rfc3339Nano(this.toWall(bootTimeNs)));
      return;
    }
    const x = t + this.#offNs;
    const s = Math.floor(x / 1_000_000_000);
    const nanos = x - s * 1_000_000_000;
    const sec = s + this.#offSec;
    const base = this.#bbase;
    if (sec !== this.#bsec) {
      this.#bsec = sec;
      const iso = new Date(sec * 1000).toISOString();
      for (let i = 0; i < 19; i++) base[i] = iso.charCodeAt(i);
    }
    const b = w.buf;
    let p = w.pos;
    for (let i = 0; i < 19; i++) b[p + i] = base[i]!;
    p += 19;
    if (nanos !== 0) {
      // 3, 6 or 9 digits, as withFraction: trailing groups of three zeros are left out. The
      // parts are below 2^31, so `| 0` divides in integers.
      const ms = (nanos / 1_000_000) | 0;
      const rest = nanos - ms * 1_000_000;
      b[p++] = 0x2e; // "."
      let k = 3 * ms;
      b[p] = DIGIT_BYTES[k]!;
      b[p + 1] = DIGIT_BYTES[k + 1]!;
      b[p + 2] = DIGIT_BYTES[k + 2]!;
      p += 3;
      if (rest !== 0) {
        const us = (rest / 1000) | 0;
        const ns = rest - us * 1000;
        k = 3 * us;
        b[p] = DIGIT_BYTES[k]!;
        b[p + 1] = DIGIT_BYTES[k + 1]!;
        b[p + 2] = DIGIT_BYTES[k + 2]!;
        p += 3;
        if (ns !== 0) {
          k = 3 * ns;
          b[p] = DIGIT_BYTES[k]!;
          b[p + 1] = DIGIT_BYTES[k + 1]!;
          b[p + 2] = DIGIT_BYTES[k + 2]!;
          p += 3;
        }
      }
    }
    b[p++] = 0x5a; // "Z"
    w.pos = p;
  }

  // The second of the last wallInto, as the 19 ASCII bytes of "YYYY-MM-DDTHH:MM:SS".
  #bsec = Number.NaN;
  readonly #bbase = new Uint8Array(19);
}

// Events come in bursts within the same second: the formatted date part of the last second
// is kept with that second's first nanosecond, so a time in it costs one subtraction.
let lastStart = 0n;
let lastBase = "1970-01-01T00:00:00";

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
  return withFraction(lastBase, Number(d));
}

// "000" to "999": a fraction is two or three table entries, no number formatting.
const DIGITS3 = Array.from({ length: 1000 }, (_, i) => String(i).padStart(3, "0"));

/** "000" to "999" as ASCII bytes, three per number: wallInto's fraction digits. */
const DIGIT_BYTES = Uint8Array.from(DIGITS3.join(""), (c) => c.charCodeAt(0));

/** "<base>Z" or "<base>.<3, 6 or 9 digits>Z" for nanos in [0, 1e9). */
function withFraction(base: string, nanos: number): string {
  if (nanos === 0) return `${base}Z`;
  const ms = Math.floor(nanos / 1_000_000);
  const rest = nanos - ms * 1_000_000;
  if (rest === 0) return `${base}.${DIGITS3[ms]}Z`;
  const us = Math.floor(rest / 1000);
  const ns = rest - us * 1000;
  if (ns === 0) return `${base}.${DIGITS3[ms]}${DIGITS3[us]}Z`;
  return `${base}.${DIGITS3[ms]}${DIGITS3[us]}${DIGITS3[ns]}Z`;
}
