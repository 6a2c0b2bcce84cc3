// Byte-level reading of the inputs the TS wrapper writes and writing of the blob.
// Everything is little-endian, as on every host ward targets (x86_64, arm64).

export class Reader {
  pos: usize;
  end: usize;
  /** Set when a read ran past the end; callers check it once at the end. */
  overrun: bool = false;

  constructor(public base: usize, public len: usize) {
    this.pos = base;
    this.end = base + len;
  }

  private need(n: usize): bool {
    if (this.pos + n > this.end) {
      this.overrun = true;
      this.pos = this.end;
      return false;
    }
    return true;
  }

  u8(): u8 {
    if (!this.need(1)) return 0;
    const v = load<u8>(this.pos);
    this.pos += 1;
    return v;
  }

  u16(): u16 {
    if (!this.need(2)) return 0;
    const v = load<u16>(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): u32 {
    if (!this.need(4)) return 0;
    const v = load<u32>(this.pos);
    this.pos += 4;
    return v;
  }

  i32(): i32 {
    return <i32>this.u32();
  }

  u64(): u64 {
    if (!this.need(8)) return 0;
    const v = load<u64>(this.pos);
    this.pos += 8;
    return v;
  }

  /** [u32 len][bytes] as a fresh byte array. */
  bytes(): Uint8Array {
    const n = <usize>this.u32();
    if (!this.need(n)) return new Uint8Array(0);
    const out = new Uint8Array(<i32>n);
    memory.copy(out.dataStart, this.pos, n);
    this.pos += n;
    return out;
  }

  /** [u32 len][utf-8 bytes] as a string. */
  str(): string {
    const n = <usize>this.u32();
    if (!this.need(n)) return "";
    const s = String.UTF8.decodeUnsafe(this.pos, n);
    this.pos += n;
    return s;
  }

  /** Raw bytes at the cursor without copying: returns their address. */
  skip(n: usize): usize {
    if (!this.need(n)) return this.end;
    const p = this.pos;
    this.pos += n;
    return p;
  }
}

/** A growable byte buffer; writes at a cursor, may seek back to patch fields. */
export class Writer {
  buf: Uint8Array;
  len: i32 = 0;

  constructor(initial: i32 = 256) {
    this.buf = new Uint8Array(initial);
  }

  reserve(n: i32): void {
    const need = this.len + n;
    if (need <= this.buf.length) return;
    let cap = this.buf.length * 2;
    while (cap < need) cap *= 2;
    const nb = new Uint8Array(cap);
    memory.copy(nb.dataStart, this.buf.dataStart, <usize>this.len);
    this.buf = nb;
  }

  /** Appends n zero bytes and returns their offset. */
  zeros(n: i32): i32 {
    this.reserve(n);
    const off = this.len;
    memory.fill(this.buf.dataStart + <usize>off, 0, <usize>n);
    this.len += n;
    return off;
  }

  align(a: i32): void {
    const r = this.len % a;
    if (r != 0) this.zeros(a - r);
  }

  u8(v: u8): void { this.reserve(1); store<u8>(this.buf.dataStart + <usize>this.len, v); this.len += 1; }
  u16(v: u16): void { this.reserve(2); store<u16>(this.buf.dataStart + <usize>this.len, v); this.len += 2; }
  u32(v: u32): void { this.reserve(4); store<u32>(this.buf.dataStart + <usize>this.len, v); this.len += 4; }
  i32(v: i32): void { this.u32(<u32>v); }
  u64(v: u64): void { this.reserve(8); store<u64>(this.buf.dataStart + <usize>this.len, v); this.len += 8; }

  bytes(b: Uint8Array): void {
    this.reserve(b.length);
    memory.copy(this.buf.dataStart + <usize>this.len, b.dataStart, <usize>b.length);
    this.len += b.length;
  }

  /** [u32 len][bytes]. */
  lenBytes(b: Uint8Array): void {
    this.u32(<u32>b.length);
    this.bytes(b);
  }

  str(s: string): void {
    this.lenBytes(Uint8Array.wrap(String.UTF8.encode(s)));
  }

  // Patching at an absolute offset (the writer must already cover it).
  putU8(off: i32, v: u8): void { store<u8>(this.buf.dataStart + <usize>off, v); }
  putU16(off: i32, v: u16): void { store<u16>(this.buf.dataStart + <usize>off, v); }
  putU32(off: i32, v: u32): void { store<u32>(this.buf.dataStart + <usize>off, v); }
  putI32(off: i32, v: i32): void { store<i32>(this.buf.dataStart + <usize>off, v); }
  putU64(off: i32, v: u64): void { store<u64>(this.buf.dataStart + <usize>off, v); }
  putBytes(off: i32, b: Uint8Array, n: i32): void {
    memory.copy(this.buf.dataStart + <usize>off, b.dataStart, <usize>n);
  }

  /** The written bytes as an exact-length copy. */
  finish(): Uint8Array {
    const out = new Uint8Array(this.len);
    memory.copy(out.dataStart, this.buf.dataStart, <usize>this.len);
    return out;
  }
}

/** UTF-8 bytes of a string. */
export function utf8(s: string): Uint8Array {
  return Uint8Array.wrap(String.UTF8.encode(s));
}

/** A Map key for raw bytes: one UTF-16 unit per byte, prefixed by the set id, so distinct
 * byte strings never collide (unlike a UTF-8 decode, which folds invalid sequences). */
export function bytesKey(setId: u32, p: usize, n: i32): string {
  const s = changetype<string>(__new(<usize>(n + 2) << 1, idof<string>()));
  const d = changetype<usize>(s);
  store<u16>(d, <u16>(setId & 0xffff));
  store<u16>(d + 2, <u16>(setId >>> 16));
  for (let i = 0; i < n; i++) store<u16>(d + 4 + (<usize>i << 1), <u16>load<u8>(p + <usize>i));
  return s;
}
