// The syslog header written straight from a byte line (src/export/sinks/syslog.ts has the
// format): TIMESTAMP and MSGID are copied out of the line's own bytes, `"time":"...` found by
// scanning back from the end (the encoder writes time last) and the event type being the
// first key, so a byte line is framed without building a single string for it. On this host
// each string made or Buffer view taken per line costs 0.3-0.7 µs; the string path of
// syslog.ts (regexes over a decoded line) costs 2-3 µs a line in all.
// Byte for byte the same header as SyslogFormatter.header() on the decoded line (the tests
// compare both): the scans here accept exactly what its patterns accept.

const Q = 0x22; // "
const isDigit = (c: number | undefined): boolean => c !== undefined && c >= 0x30 && c <= 0x39;

/** Upper bound of a header's length, LEN and its space included (the longest timestamp is 32, a type 32). */
export function maxHeaderBytes(prefix: number, suffix: number): number {
  return 11 + prefix + 40 + suffix + 32 + 3;
}

/** Where `"time":"` last starts in b, or -1. */
function lastTimeKey(b: Uint8Array): number {
  // "time":"  =  22 74 69 6d 65 22 3a 22
  for (let k = b.length - 8; k >= 0; k--) {
    if (b[k] === Q && b[k + 7] === Q && b[k + 5] === Q && b[k + 6] === 0x3a && b[k + 1] === 0x74 && b[k + 2] === 0x69 && b[k + 3] === 0x6d && b[k + 4] === 0x65) return k;
  }
  return -1;
}

/**
 * The spans of a valid RFC 3339 `time` value starting at p and ending at a `"`:
 * [p, p+19) the date and time, then `fracLen` (1-9) fraction digits at `frac`, then the zone
 * (Z or ±hh:mm) at `zone`, `zoneLen` bytes. Undefined when the value is anything else, as
 * syslogTimestamp's pattern rejects it.
 */
interface TimeSpans {
  p: number;
  frac: number;
  fracLen: number;
  zone: number;
  zoneLen: number;
}

function timeSpans(b: Uint8Array, p: number): TimeSpans | undefined {
  // yyyy-mm-ddThh:mm:ss
  const shape = "dddd-dd-ddTdd:dd:dd";
  for (let k = 0; k < 19; k++) {
    const c = b[p + k];
    const want = shape.charCodeAt(k);
    if (want === 0x64 ? !isDigit(c) : c !== want) return undefined;
  }
  let q = p + 19;
  let frac = 0;
  let fracLen = 0;
  if (b[q] === 0x2e) {
    frac = q + 1;
    while (isDigit(b[frac + fracLen])) fracLen++;
    if (fracLen < 1 || fracLen > 9) return undefined;
    q = frac + fracLen;
  }
  let zoneLen: number;
  if (b[q] === 0x5a) zoneLen = 1;
  else if ((b[q] === 0x2b || b[q] === 0x2d) && isDigit(b[q + 1]) && isDigit(b[q + 2]) && b[q + 3] === 0x3a && isDigit(b[q + 4]) && isDigit(b[q + 5])) zoneLen = 6;
  else return undefined;
  if (b[q + zoneLen] !== Q) return undefined;
  return { p, frac, fracLen, zone: q, zoneLen };
}

/** Length of the event type (the first key: {"name": with name [a-z_]{1,32}), or 0 for none. */
function typeLen(b: Uint8Array): number {
  if (b[0] !== 0x7b || b[1] !== Q) return 0;
  let n = 0;
  for (;;) {
    const c = b[2 + n];
    if (c === undefined || !((c >= 0x61 && c <= 0x7a) || c === 0x5f)) break;
    n++;
    if (n > 32) return 0;
  }
  return n >= 1 && b[2 + n] === Q && b[3 + n] === 0x3a ? n : 0;
}

/** Copies src[from, to) to out at off, byte by byte: cheaper than a subarray view for these few bytes. */
function copy(out: Uint8Array, off: number, src: Uint8Array, from: number, to: number): number {
  for (let i = from; i < to; i++) out[off++] = src[i]!;
  return off;
}

function writeAscii(out: Uint8Array, off: number, s: string): number {
  for (let i = 0; i < s.length; i++) out[off + i] = s.charCodeAt(i);
  return off + s.length;
}

/** Writes n in decimal at off; the new offset. */
function writeDecimal(out: Uint8Array, off: number, n: number): number {
  let digits = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++;
  for (let i = digits - 1, x = n; i >= 0; i--, x = Math.floor(x / 10)) out[off + i] = 0x30 + (x % 10);
  return off + digits;
}

/**
 * Writes one message for a byte line at `off` in `out` (which has room for
 * maxHeaderBytes + the line): `LEN SP` first when `framed` (octet counting), then
 * PREFIX TIMESTAMP SUFFIX MSGID " - " and the line's bytes. Returns the new offset.
 */
export function writeByteMessage(out: Uint8Array, off: number, line: Uint8Array, prefix: Uint8Array, suffix: Uint8Array, framed: boolean, now: () => Date = () => new Date()): number {
  const k = lastTimeKey(line);
  const t = k >= 0 ? timeSpans(line, k + 8) : undefined;
  const fallback = t === undefined ? now().toISOString() : "";
  const frac = t === undefined ? 0 : Math.min(6, t.fracLen);
  const tsLen = t === undefined ? fallback.length : 19 + (t.fracLen > 0 ? 1 + frac : 0) + t.zoneLen;
  const ty = typeLen(line);
  const msgLen = prefix.length + tsLen + suffix.length + (ty > 0 ? ty : 1) + 3 + line.byteLength;
  if (framed) {
    off = writeDecimal(out, off, msgLen);
    out[off++] = 0x20;
  }
  off = copy(out, off, prefix, 0, prefix.length);
  if (t === undefined) off = writeAscii(out, off, fallback);
  else {
    off = copy(out, off, line, t.p, t.p + 19);
    if (t.fracLen > 0) {
      out[off++] = 0x2e;
      off = copy(out, off, line, t.frac, t.frac + frac);
    }
    off = copy(out, off, line, t.zone, t.zone + t.zoneLen);
  }
  off = copy(out, off, suffix, 0, suffix.length);
  if (ty > 0) off = copy(out, off, line, 2, 2 + ty);
  else out[off++] = 0x2d;
  out[off++] = 0x20;
  out[off++] = 0x2d;
  out[off++] = 0x20;
  out.set(line, off);
  return off + line.byteLength;
}
