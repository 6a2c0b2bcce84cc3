// BPF links for "nothing left attached" checks, without bpftool (a Debian package the
// machine may not have yet) and exact while other suites on the host make links of their own.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { Attr } from "../../src/bpf/attr.ts";
import { BpfCmd } from "../../src/bpf/constants.ts";
import { bpfErrno, errnoName } from "../../src/bpf/sys.ts";

const ENOENT = 2;

/** IDs of every BPF link in the system (BPF_LINK_GET_NEXT_ID from 0 until ENOENT; needs root). */
export function systemLinkIds(): Set<number> {
  const out = new Set<number>();
  let id = 0;
  for (;;) {
    const attr = new Attr().u32(0, id);
    const r = bpfErrno(BpfCmd.LINK_GET_NEXT_ID, attr.bytes);
    if (r.errno === ENOENT) return out;
    if (r.errno !== 0) throw new Error(`BPF_LINK_GET_NEXT_ID after ${id}: ${errnoName(r.errno)}`);
    id = attr.view.getUint32(4, true);
    out.add(id);
  }
}

/** BPF links a process holds through its descriptors (fdinfo link_id): exactly its own. */
export function linkIdsOf(pid: number): Set<number> {
  const out = new Set<number>();
  const dir = `/proc/${pid}/fdinfo`;
  let fds: string[];
  try {
    fds = readdirSync(dir);
  } catch {
    return out; // the process is gone
  }
  for (const fd of fds) {
    let text: string;
    try {
      text = readFileSync(join(dir, fd), "utf8");
    } catch {
      continue; // closed meanwhile
    }
    const m = /^link_id:\s*(\d+)/m.exec(text);
    if (m) out.add(Number(m[1]));
  }
  return out;
}
