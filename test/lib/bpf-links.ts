// BPF links for "nothing left attached" checks, read from /proc/PID/fdinfo and the kernel's
// link-id listing, without bpftool (a Debian package the machine may not have yet) and exact
// while other suites on the host make links of their own. Tests use it to
// show that a policy's programs are attached while it is applied and gone after.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";
import { Attr } from "../../src/bpf/attr.ts";
import { BpfCmd } from "../../src/bpf/constants.ts";
import { bpfErrno, errnoName } from "../../src/bpf/sys.ts";

const ENOENT = 2;

export interface FdLink {
  fd: number;
  linkType: string;
  linkId: number;
  progId: number;
  /** cgroup links: attach type as the kernel prints it ("cgroup_inet4_connect" or a number) */
  attachType?: string;
}

/** Every bpf_link fd of `pid` whose link_type is cgroup. */
export function cgroupLinks(pid: number): FdLink[] {
  return bpfLinks(pid).filter((l) => l.linkType === "cgroup");
}

/** Every bpf_link fd of `pid`. */
export function bpfLinks(pid: number): FdLink[] {
  const out: FdLink[] = [];
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out;
  }
  for (const fd of fds) {
    let target: string;
    let info: string;
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`);
      // A link made by LINK_CREATE shows as bpf_link, one opened from a pin (OBJ_GET) as bpf-link.
      if (target !== "anon_inode:bpf_link" && target !== "anon_inode:bpf-link") continue;
      info = readFileSync(`/proc/${pid}/fdinfo/${fd}`, "utf8");
    } catch {
      continue; // closed meanwhile
    }
    const field = (k: string): string | undefined => new RegExp(`^${k}:\\s*(\\S+)`, "m").exec(info)?.[1];
    const attach = field("attach_type");
    out.push({
      fd: Number(fd),
      linkType: field("link_type") ?? "",
      linkId: Number(field("link_id") ?? 0),
      progId: Number(field("prog_id") ?? 0),
      ...(attach !== undefined ? { attachType: attach } : {}),
    });
  }
  return out;
}

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

/** IDs of the BPF links a process holds through its descriptors: exactly its own. */
export function linkIdsOf(pid: number): Set<number> {
  return new Set(bpfLinks(pid).map((l) => l.linkId));
}
