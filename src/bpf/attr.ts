// Builder for bpf_attr buffers: a zeroed 168-byte (or larger) little-endian buffer plus the
// buffers its pointer fields refer to, kept referenced until the syscall returns.
import { ATTR_SIZE, BpfCmd } from "./constants.ts";
import { addr, bpf, bpfErrno } from "./sys.ts";

export class Attr {
  readonly bytes: Uint8Array;
  readonly view: DataView;
  /** Buffers pointed to from this attr; holding them here keeps them alive across the call. */
  readonly #refs: ArrayBufferView[] = [];

  constructor(size = ATTR_SIZE) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
  }

  u32(off: number, v: number): this {
    this.view.setUint32(off, v >>> 0, true);
    return this;
  }

  i32(off: number, v: number): this {
    this.view.setInt32(off, v, true);
    return this;
  }

  u64(off: number, v: bigint | number): this {
    this.view.setBigUint64(off, BigInt.asUintN(64, BigInt(v)), true);
    return this;
  }

  /** A pointer field; null/empty writes 0 (NULL). */
  ptr(off: number, buf: ArrayBufferView | null | undefined): this {
    if (buf !== null && buf !== undefined) this.#refs.push(buf);
    this.view.setBigUint64(off, BigInt(addr(buf)), true);
    return this;
  }

  /** A fixed char[len] field (e.g. map_name), NUL-padded and truncated to len-1 bytes. */
  chars(off: number, s: string, len: number): this {
    const b = new TextEncoder().encode(s).subarray(0, len - 1);
    this.bytes.set(b, off);
    return this;
  }

  getU32(off: number): number {
    return this.view.getUint32(off, true);
  }

  call(cmd: BpfCmd): number {
    return bpf(cmd, this.bytes);
  }

  tryCall(cmd: BpfCmd): { result: number; errno: number } {
    return bpfErrno(cmd, this.bytes);
  }
}

/** Kernel object names: at most 15 of [A-Za-z0-9_.]; anything else makes MAP_CREATE/PROG_LOAD fail. */
export function objName(name: string): string {
  return name.replace(/[^A-Za-z0-9_.]/g, "_").slice(0, 15);
}

/** OBJ_GET_INFO_BY_FD into a zeroed buffer of `size` bytes; returns the filled buffer's view. */
export function objInfo(fd: number, size: number, fill?: (info: DataView, keep: ArrayBufferView[]) => void): DataView {
  const info = new Uint8Array(size);
  const dv = new DataView(info.buffer);
  const keep: ArrayBufferView[] = [];
  fill?.(dv, keep);
  const a = new Attr().u32(0, fd).u32(4, size).ptr(8, info);
  a.call(BpfCmd.OBJ_GET_INFO_BY_FD);
  void keep;
  return dv;
}

export function readCString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return new TextDecoder().decode(end < 0 ? bytes : bytes.subarray(0, end));
}
