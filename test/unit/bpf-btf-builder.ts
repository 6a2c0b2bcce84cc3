// A tiny raw-BTF writer for the loader unit tests: types are appended in order (first = id 1),
// so tests can build exactly the local/target shapes a CO-RE case needs.
import { Btf, BtfKind, encodeRecord } from "../../src/bpf/btf.ts";

export class BtfBuilder {
  private strs: number[] = [0];
  private strIndex = new Map<string, number>([["", 0]]);
  private recs: Uint8Array[] = [];

  str(s: string): number {
    const hit = this.strIndex.get(s);
    if (hit !== undefined) return hit;
    const off = this.strs.length;
    for (const b of new TextEncoder().encode(s)) this.strs.push(b);
    this.strs.push(0);
    this.strIndex.set(s, off);
    return off;
  }

  private add(rec: Uint8Array): number {
    this.recs.push(rec);
    return this.recs.length;
  }

  int(name: string, size: number, signed = false, bits = size * 8): number {
    return this.add(encodeRecord(this.str(name), BtfKind.Int, 0, false, size, [((signed ? 1 : 0) << 24) | bits]));
  }
  ptr(type: number): number {
    return this.add(encodeRecord(0, BtfKind.Ptr, 0, false, type));
  }
  array(elem: number, index: number, nelems: number): number {
    return this.add(encodeRecord(0, BtfKind.Array, 0, false, 0, [elem, index, nelems]));
  }
  /** members: [name, type, bitOffset, bitfieldSize?]; kind_flag is set when any has a bitfield size. */
  struct(name: string, size: number, members: [string, number, number, number?][], union = false): number {
    const kflag = members.some((m) => (m[3] ?? 0) > 0);
    const trailing = members.flatMap(([n, t, off, bf]) => [this.str(n), t, kflag ? ((bf ?? 0) << 24) | off : off]);
    return this.add(encodeRecord(this.str(name), union ? BtfKind.Union : BtfKind.Struct, members.length, kflag, size, trailing));
  }
  enum(name: string, size: number, values: [string, number][], signed = false): number {
    return this.add(encodeRecord(this.str(name), BtfKind.Enum, values.length, signed, size, values.flatMap(([n, v]) => [this.str(n), v >>> 0])));
  }
  enum64(name: string, values: [string, bigint][], signed = false): number {
    const trailing = values.flatMap(([n, v]) => {
      const u = BigInt.asUintN(64, v);
      return [this.str(n), Number(u & 0xffffffffn), Number(u >> 32n)];
    });
    return this.add(encodeRecord(this.str(name), BtfKind.Enum64, values.length, signed, 8, trailing));
  }
  fwd(name: string, union = false): number {
    return this.add(encodeRecord(this.str(name), BtfKind.Fwd, 0, union, 0));
  }
  ref(kind: BtfKind.Typedef | BtfKind.Volatile | BtfKind.Const | BtfKind.Restrict | BtfKind.TypeTag, name: string, type: number): number {
    return this.add(encodeRecord(this.str(name), kind, 0, false, type));
  }
  func(name: string, proto: number, linkage = 1): number {
    return this.add(encodeRecord(this.str(name), BtfKind.Func, linkage, false, proto));
  }
  proto(ret: number, params: [string, number][]): number {
    return this.add(encodeRecord(0, BtfKind.FuncProto, params.length, false, ret, params.flatMap(([n, t]) => [this.str(n), t])));
  }
  variable(name: string, type: number, linkage = 1): number {
    return this.add(encodeRecord(this.str(name), BtfKind.Var, 0, false, type, [linkage]));
  }
  datasec(name: string, size: number, vars: [number, number, number][]): number {
    return this.add(encodeRecord(this.str(name), BtfKind.Datasec, vars.length, false, size, vars.flat()));
  }
  float(name: string, size: number): number {
    return this.add(encodeRecord(this.str(name), BtfKind.Float, 0, false, size));
  }
  declTag(name: string, type: number, component: number): number {
    return this.add(encodeRecord(this.str(name), BtfKind.DeclTag, 0, false, type, [component]));
  }

  /** Raw BTF bytes (header + types + strings). */
  raw(): Uint8Array {
    const types = this.recs.reduce((n, r) => n + r.length, 0);
    const out = new Uint8Array(24 + types + this.strs.length);
    const dv = new DataView(out.buffer);
    dv.setUint16(0, 0xeb9f, true);
    dv.setUint8(2, 1);
    dv.setUint32(4, 24, true);
    dv.setUint32(8, 0, true);
    dv.setUint32(12, types, true);
    dv.setUint32(16, types, true);
    dv.setUint32(20, this.strs.length, true);
    let p = 24;
    for (const r of this.recs) {
      out.set(r, p);
      p += r.length;
    }
    out.set(this.strs, p);
    return out;
  }

  build(): Btf {
    return Btf.parse(this.raw());
  }
}
