// Record layouts read from an object's BTF: the C header in bpf/include is the only
// place a record's shape is written down; here we ask the compiled object where each
// member ended up, by name, so userspace never keeps a second copy of the offsets.
import { BtfKind, type Btf } from "../bpf/btf.ts";

export class LayoutError extends Error {
  override name = "LayoutError";
}

export interface FieldLayout {
  /** Byte offset from the start of the outermost struct. */
  offset: number;
  /** Byte size of the member (for arrays, of the whole array). */
  size: number;
}

/** A struct's size and every member reachable by a dotted path ("creds.uid", "creds.ns"). */
export class StructLayout {
  constructor(
    readonly name: string,
    readonly size: number,
    private readonly fields: ReadonlyMap<string, FieldLayout>,
  ) {}

  field(path: string): FieldLayout {
    const f = this.fields.get(path);
    if (f === undefined) throw new LayoutError(`read layout of struct ${this.name}: no member ${path}`);
    return f;
  }

  offset(path: string): number {
    return this.field(path).offset;
  }

  has(path: string): boolean {
    return this.fields.has(path);
  }
}

/** Flattens struct `name` from `btf` (nested structs by dotted path; anonymous members inline). */
export function structLayout(btf: Btf, name: string): StructLayout {
  const id = btf.findOne(name, BtfKind.Struct);
  if (id === undefined) throw new LayoutError(`read layout of struct ${name}: not in the object's BTF`);
  const fields = new Map<string, FieldLayout>();
  walk(btf, id, "", 0, fields, 0);
  return new StructLayout(name, btf.sizeOf(id), fields);
}

function walk(btf: Btf, id: number, prefix: string, base: number, out: Map<string, FieldLayout>, depth: number): void {
  if (depth > 8) throw new LayoutError(`read layout: nesting too deep at ${prefix}`);
  const t = btf.type(btf.skipModsAndTypedefs(id));
  if (t.kind !== BtfKind.Struct && t.kind !== BtfKind.Union) return;
  for (const m of t.members) {
    if (m.bitfieldSize !== 0 || m.bitOffset % 8 !== 0) continue; // records use no bitfields
    const offset = base + m.bitOffset / 8;
    const path = m.name === "" ? prefix.replace(/\.$/, "") : `${prefix}${m.name}`;
    if (m.name !== "") out.set(path, { offset, size: btf.sizeOf(m.type) });
    walk(btf, m.type, m.name === "" ? prefix : `${path}.`, offset, out, depth + 1);
  }
}

/** Values of enum `name` from `btf`, by enumerator name. */
export function enumValues(btf: Btf, name: string): Map<string, number> {
  const id = btf.findOne(name, BtfKind.Enum);
  if (id === undefined) throw new LayoutError(`read enum ${name}: not in the object's BTF`);
  const t = btf.type(id);
  if (t.kind !== BtfKind.Enum) throw new LayoutError(`read enum ${name}: not an enum`);
  return new Map(t.values.map((v) => [v.name, Number(v.value)]));
}
