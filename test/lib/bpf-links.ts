// The BPF links a process holds, read from /proc/PID/fdinfo (no bpftool): tests use it to
// show that a policy's cgroup programs are attached while it is applied and gone after.
import { readdirSync, readFileSync, readlinkSync } from "node:fs";

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
      if (target !== "anon_inode:bpf_link") continue;
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
