// Workload identity from cgroups, without Kubernetes: which runtime started a process, its
// container id, the pod uid when the cgroup is a kubelet one, and the cgroup id the kernel
// reports (bpf_get_current_cgroup_id is the kernfs node id, which is the inode number of the
// cgroup's directory in cgroupfs on 64-bit kernels).
//
// The names come from the runtimes' documented cgroup naming:
//   docker       systemd driver: system.slice/docker-<id>.scope; cgroupfs: /docker/<id>
//   containerd   CRI, systemd driver: ...pod<uid>.slice/cri-containerd-<id>.scope
//   cri-o        crio-<id>.scope (systemd), .../pod<uid>/crio-<id> (cgroupfs);
//                crio-conmon-<id>.scope is the monitor process, not the container
//   podman       libpod-<id>.scope (systemd), /libpod_parent/libpod-<id> (cgroupfs);
//                libpod-conmon-<id>.scope is the monitor
//   kubelet      kubepods.slice/kubepods-<qos>.slice/kubepods-<qos>-pod<uid_with_underscores>.slice
//                (systemd; guaranteed pods sit directly under kubepods.slice as kubepods-pod<uid>.slice),
//                /kubepods/<qos>/pod<uid>/<id> (cgroupfs; guaranteed: /kubepods/pod<uid>/<id>)
// A bare 64-hex directory under a kubepods pod cgroup (cgroupfs driver with containerd or
// cri-dockerd) names a container but not its runtime: runtime "unknown" (the pod's
// containerStatuses say which).
import { readdirSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";

export type Runtime = "docker" | "containerd" | "cri-o" | "podman" | "unknown" | "systemd-scope" | "none";
export type QosClass = "besteffort" | "burstable" | "guaranteed";

/** What a cgroup path says about the workload in it. */
export interface PathIdentity {
  /** The cgroup path as given (relative to the hierarchy root, starting with "/"). */
  path: string;
  runtime: Runtime;
  /** The container id (64 hex for docker, containerd, cri-o and podman). */
  containerId?: string;
  /** The pod uid (dashed form) when the path is under a kubepods pod cgroup. */
  podUid?: string;
  qos?: QosClass;
  /** The systemd unit (a *.scope or *.service) for host workloads. */
  unit?: string;
  /** Set for crio-conmon-/libpod-conmon- scopes: the runtime's monitor of containerId, not the container. */
  monitor?: boolean;
}

export interface CgroupIdentity extends PathIdentity {
  /** The cgroup id: inode of the cgroup directory, as bpf_get_current_cgroup_id returns it. */
  cgroupId?: bigint;
  /** Absolute path of the cgroup directory, when the v2 hierarchy is mounted. */
  dir?: string;
}

export class CgroupIdentityError extends Error {
  override name = "CgroupIdentityError";
  constructor(
    readonly code: "no_cgroup_v2" | "read_failed" | "no_such_process",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

const HEX64 = /^[0-9a-f]{64}$/;
const UID = /^[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}$/;

/** Scope prefixes of container runtimes, longest first so "crio-conmon-" wins over "crio-". */
const SCOPES: readonly { prefix: string; runtime: Runtime; monitor?: boolean }[] = [
  { prefix: "cri-containerd-", runtime: "containerd" },
  { prefix: "crio-conmon-", runtime: "cri-o", monitor: true },
  { prefix: "libpod-conmon-", runtime: "podman", monitor: true },
  { prefix: "crio-", runtime: "cri-o" },
  { prefix: "libpod-", runtime: "podman" },
  { prefix: "docker-", runtime: "docker" },
];

/** One path segment as a container, or undefined. `parent` is the segment before it. */
function containerOf(seg: string, parent: string | undefined, parentIsPod: boolean): Pick<PathIdentity, "runtime" | "containerId" | "monitor"> | undefined {
  const base = seg.endsWith(".scope") ? seg.slice(0, -".scope".length) : seg;
  for (const s of SCOPES) {
    if (!base.startsWith(s.prefix)) continue;
    const id = base.slice(s.prefix.length);
    if (!HEX64.test(id)) continue;
    return { runtime: s.runtime, containerId: id, ...(s.monitor ? { monitor: true } : {}) };
  }
  if (HEX64.test(seg) && parent !== undefined) {
    // docker's cgroupfs driver: /docker/<id>; kubelet's cgroupfs driver: .../pod<uid>/<id>.
    if (parent === "docker") return { runtime: "docker", containerId: seg };
    if (parentIsPod) return { runtime: "unknown", containerId: seg };
  }
  return undefined;
}

/** One path segment as a kubelet pod cgroup: its uid (dashed) and qos, or undefined. */
function podOf(seg: string, parent: string | undefined): { podUid: string; qos: QosClass } | undefined {
  // systemd driver: kubepods-burstable-pod<uid>.slice, kubepods-pod<uid>.slice (guaranteed)
  let m = /^kubepods(?:-(besteffort|burstable))?-pod([0-9a-f_]{36})\.slice$/.exec(seg);
  if (m && UID.test(m[2]!)) return { podUid: m[2]!.replace(/_/g, "-"), qos: (m[1] as QosClass | undefined) ?? "guaranteed" };
  // cgroupfs driver: /kubepods/<qos>/pod<uid> or /kubepods/pod<uid>
  m = /^pod([0-9a-f-]{36})$/.exec(seg);
  if (m && UID.test(m[1]!) && (parent === "kubepods" || parent === "besteffort" || parent === "burstable")) {
    return { podUid: m[1]!, qos: parent === "kubepods" ? "guaranteed" : (parent as QosClass) };
  }
  return undefined;
}

/**
 * parseCgroupPath reads the workload identity from a cgroup path (as /proc/PID/cgroup shows
 * it, relative to the hierarchy root). The deepest container segment wins, so a process in
 * a sub-cgroup a container made for itself (docker-<id>.scope/init) keeps its container's
 * id. Pure: no file is read.
 */
export function parseCgroupPath(path: string): PathIdentity {
  const segs = path.split("/").filter((s) => s !== "");
  const out: PathIdentity = { path, runtime: "none" };
  let container: ReturnType<typeof containerOf>;
  let podAt = -1;
  for (let i = 0; i < segs.length; i++) {
    const seg = segs[i]!;
    const parent = i > 0 ? segs[i - 1] : undefined;
    const pod = podOf(seg, parent);
    if (pod) {
      out.podUid = pod.podUid;
      out.qos = pod.qos;
      podAt = i;
    }
    container = containerOf(seg, parent, podAt === i - 1 && i > 0) ?? container;
  }
  if (container) {
    out.runtime = container.runtime;
    out.containerId = container.containerId!;
    if (container.monitor) out.monitor = true;
    return out;
  }
  // Host workloads: the innermost systemd scope or service names the unit.
  const unit = [...segs].reverse().find((s) => s.endsWith(".scope") || s.endsWith(".service"));
  if (unit !== undefined) {
    out.unit = unit;
    if (unit.endsWith(".scope")) out.runtime = "systemd-scope";
  }
  return out;
}

/** Tetragon's `docker` field: the container id cut to 31 characters (reference/tetragon.md §2.2). */
export function dockerField(containerId: string): string {
  return containerId.slice(0, 31);
}

/** The lines of /proc/PID/cgroup: hierarchy id, controllers, path. */
export interface ProcCgroupLine {
  hierarchy: number;
  controllers: string[];
  path: string;
}

export function parseProcCgroup(text: string): ProcCgroupLine[] {
  const out: ProcCgroupLine[] = [];
  for (const line of text.split("\n")) {
    if (line === "") continue;
    // "hierarchy-ID:controller-list:cgroup-path"; the path itself may contain ':'.
    const a = line.indexOf(":");
    const b = line.indexOf(":", a + 1);
    if (a < 0 || b < 0) continue;
    out.push({ hierarchy: Number(line.slice(0, a)), controllers: line.slice(a + 1, b).split(",").filter(Boolean), path: line.slice(b + 1) });
  }
  return out;
}

/**
 * cgroupV2MountOf finds the root of the cgroup v2 hierarchy in /proc/self/mountinfo text:
 * the cgroup2 mount whose root is "/" (a mount of a subtree, as inside a cgroup namespace,
 * covers only part). Hybrid hosts have it at /sys/fs/cgroup/unified, most at /sys/fs/cgroup.
 */
export function cgroupV2MountOf(mountinfo: string): string | undefined {
  for (const line of mountinfo.split("\n")) {
    // id parent major:minor root mountpoint options [optional...] - fstype source superopts
    const dash = line.indexOf(" - ");
    if (dash < 0) continue;
    const left = line.slice(0, dash).split(" ");
    if (line.slice(dash + 3).split(" ")[0] !== "cgroup2" || left[3] !== "/" || left[4] === undefined) continue;
    return left[4].replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
  }
  return undefined;
}

/** The cgroup v2 mount of this process's mount namespace, or undefined when there is none. */
export function cgroupV2Mount(mountinfoFile = "/proc/self/mountinfo"): string | undefined {
  try {
    return cgroupV2MountOf(readFileSync(mountinfoFile, "utf8"));
  } catch {
    return undefined;
  }
}

/** The cgroup id of a cgroup directory (its inode number). Throws when it cannot be read. */
export function cgroupIdOf(dir: string): bigint {
  return statSync(dir, { bigint: true }).ino;
}

/**
 * identityOfProcCgroup picks the identity from a whole /proc/PID/cgroup: the v2 line
 * ("0::/path") first; on hybrid hosts whose runtime put the container only in v1
 * hierarchies, the first v1 line that names a container. The cgroup id is read from the
 * v2 directory when `v2Root` is given and the directory exists.
 */
export function identityOfProcCgroup(text: string, v2Root: string | undefined): CgroupIdentity {
  const lines = parseProcCgroup(text);
  const v2 = lines.find((l) => l.hierarchy === 0 && l.controllers.length === 0);
  let id: CgroupIdentity = v2 ? parseCgroupPath(v2.path) : { path: "", runtime: "none" };
  if (id.containerId === undefined) {
    for (const l of lines) {
      if (l === v2) continue;
      const p = parseCgroupPath(l.path);
      if (p.containerId !== undefined) {
        // Keep the v2 path (the kernel's cgroup id is of the v2 cgroup) but take the v1 names.
        id = { ...p, path: v2?.path ?? p.path };
        break;
      }
    }
  }
  if (v2 && v2Root !== undefined) {
    const dir = join(v2Root, v2.path);
    try {
      return { ...id, dir, cgroupId: cgroupIdOf(dir) };
    } catch {
      // The cgroup went away between the two reads (the process exited or moved).
    }
  }
  return id;
}

/**
 * identityOfPid reads /proc/PID/cgroup. Throws CgroupIdentityError "no_such_process" when
 * the process is gone.
 */
export function identityOfPid(pid: number, opts: { procRoot?: string; v2Root?: string } = {}): CgroupIdentity {
  const file = join(opts.procRoot ?? "/proc", String(pid), "cgroup");
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    const gone = (err as NodeJS.ErrnoException).code === "ENOENT" || (err as NodeJS.ErrnoException).code === "ESRCH";
    throw new CgroupIdentityError(gone ? "no_such_process" : "read_failed", `read ${file}: ${(err as Error).message}`, { cause: err });
  }
  return identityOfProcCgroup(text, opts.v2Root ?? cgroupV2Mount());
}

/** A container found in the cgroup tree. */
export interface ContainerCgroup extends CgroupIdentity {
  containerId: string;
  dir: string;
  cgroupId: bigint;
}

/**
 * scanContainerCgroups walks the cgroup v2 tree under `root` (bounded depth: kubelet's
 * systemd layout is 4 levels deep) and returns each container cgroup by container id, for
 * resolving container ids (from the pod watch) to the cgroup ids the kernel filters on.
 * Monitor scopes (conmon) are left out; a container's own sub-cgroups are not descended.
 */
export function scanContainerCgroups(root: string, maxDepth = 6): Map<string, ContainerCgroup> {
  const out = new Map<string, ContainerCgroup>();
  const walk = (rel: string, depth: number): void => {
    if (depth > maxDepth) return;
    let names: string[];
    try {
      names = readdirSync(join(root, rel), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      return; // removed while walking
    }
    for (const n of names) {
      const childRel = `${rel}/${n}`;
      const id = parseCgroupPath(childRel);
      if (id.containerId !== undefined && !id.monitor && !out.has(id.containerId)) {
        const dir = join(root, childRel);
        try {
          out.set(id.containerId, { ...id, containerId: id.containerId, dir, cgroupId: cgroupIdOf(dir) });
        } catch {
          // gone meanwhile
        }
        continue;
      }
      walk(childRel, depth + 1);
    }
  };
  walk("", 0);
  return out;
}
