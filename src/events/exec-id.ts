// exec_id: Tetragon's cluster-unique process id, base64("<node>:<ktime>:<pid>")
// (reference/tetragon.md §2.3). ktime is the boot-clock nanosecond time of the exec or clone.
//
// Every exec makes one, so it is written by hand: the bytes of "<node>:<ktime>:<pid>" go
// into a scratch buffer (the node part copied, the numbers written digit by digit) and are
// base64-encoded there, one string made at the end. A BigInt-to-string conversion plus btoa
// cost several times more. Node names are UTF-8 bytes, as Go encodes them.

const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const CODES = Uint8Array.from(ALPHABET, (c) => c.charCodeAt(0));
const PAD = 0x3d; // "="
const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

let scratch = new Uint8Array(256);
let out = Buffer.alloc(344);
let node = "";
let prefix = new Uint8Array(0); // UTF-8 of `${node}:`

/** Writes the decimal digits of a non-negative safe integer at `at`; returns the end. */
function digits(n: number, at: number): number {
  let len = 1;
  for (let x = n; x >= 10; x = Math.floor(x / 10)) len++;
  let x = n;
  for (let i = at + len - 1; i >= at; i--) {
    const q = Math.floor(x / 10); // exact: x < 2^53, so x/10 rounds below the next integer
    scratch[i] = 48 + (x - q * 10);
    x = q;
  }
  return at + len;
}

function ascii(s: string, at: number): number {
  for (let i = 0; i < s.length; i++) scratch[at + i] = s.charCodeAt(i);
  return at + s.length;
}

export function execId(nodeName: string, ktime: bigint, pid: number): string {
  if (nodeName !== node) {
    node = nodeName;
    prefix = new TextEncoder().encode(`${nodeName}:`);
    if (prefix.length + 48 > scratch.length) {
      scratch = new Uint8Array(prefix.length + 48);
      out = Buffer.alloc(Math.ceil(scratch.length / 3) * 4);
    }
  }
  const buf = scratch;
  buf.set(prefix, 0);
  let n = prefix.length;
  n = ktime >= 0n && ktime <= MAX_SAFE ? digits(Number(ktime), n) : ascii(ktime.toString(), n);
  buf[n++] = 0x3a; // ":"
  n = Number.isSafeInteger(pid) && pid >= 0 ? digits(pid, n) : ascii(String(pid), n);
  let o = 0;
  let i = 0;
  for (; i + 2 < n; i += 3) {
    const v = (buf[i]! << 16) | (buf[i + 1]! << 8) | buf[i + 2]!;
    out[o++] = CODES[v >> 18]!;
    out[o++] = CODES[(v >> 12) & 63]!;
    out[o++] = CODES[(v >> 6) & 63]!;
    out[o++] = CODES[v & 63]!;
  }
  if (i < n) {
    const two = i + 1 < n;
    const v = (buf[i]! << 16) | (two ? buf[i + 1]! << 8 : 0);
    out[o++] = CODES[v >> 18]!;
    out[o++] = CODES[(v >> 12) & 63]!;
    out[o++] = two ? CODES[(v >> 6) & 63]! : PAD;
    out[o++] = PAD;
  }
  return out.toString("latin1", 0, o);
}

/** The parent id Tetragon gives a process whose parent pid is 0. */
export function rootParentExecId(nodeName: string): string {
  return execId(nodeName, 1n, 0);
}
