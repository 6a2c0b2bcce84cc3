// Where the fanotify decision thread finds what it reads of a struct ward_proc value (the
// kernel process map, bpf/include/process.h). The offsets come from the process object's
// BTF, like every other reader of the layout (src/events/layout.ts), and travel to the
// worker as plain numbers: the worker source cannot import anything.
import { loadCollectionSpec } from "../bpf/collection.ts";
import { readObject } from "../bpf/objects.ts";
import { structLayout } from "../events/layout.ts";

export class ProcMapLayoutError extends Error {
  override name = "ProcMapLayoutError";
}

/** Byte offsets in a ward_procs value (struct ward_proc). */
export interface ProcMapLayout {
  size: number;
  ktime: number;
  pid: number;
  flags: number;
  binLen: number;
  bin: number;
  /** bytes of bin[] (the kept prefix of the path, NUL included) */
  binSize: number;
  capEffective: number;
  capInheritable: number;
  capPermitted: number;
  /** creds.ns[], u32 inode numbers in enum ward_ns_index order (Tetragon's Namespaces order) */
  ns: number;
  nsCount: number;
}

let cached: ProcMapLayout | undefined;

/** The layout of the embedded bpf/obj/process.o (the object the process sensor loads). */
export function procMapLayout(object?: Uint8Array): ProcMapLayout {
  if (object === undefined && cached !== undefined) return cached;
  const spec = loadCollectionSpec(object ?? readObject("process"), "process");
  if (!spec.btf) throw new ProcMapLayoutError("process map layout: the process object has no BTF");
  const l = structLayout(spec.btf, "ward_proc");
  const ns = l.field("creds.ns");
  const bin = l.field("bin");
  const out: ProcMapLayout = {
    size: l.size,
    ktime: l.offset("ktime"),
    pid: l.offset("pid"),
    flags: l.offset("flags"),
    binLen: l.offset("bin_len"),
    bin: bin.offset,
    binSize: bin.size,
    capEffective: l.offset("creds.cap_effective"),
    capInheritable: l.offset("creds.cap_inheritable"),
    capPermitted: l.offset("creds.cap_permitted"),
    ns: ns.offset,
    nsCount: ns.size / 4,
  };
  if (object === undefined) cached = out;
  return out;
}
