// The `docker` and `pod` fields of a process block, by the process's cgroup id (the process
// records carry it: ward_proc.cgroup_id, bpf_get_current_cgroup_id at exec), from the
// workload registry. Cached per cgroup id; a registry change drops the cache.
//
// A cgroup id the registry does not know (a sub-cgroup a container made itself, or a
// container no feeder reported) is resolved once through the process's /proc/PID/cgroup
// when the caller gives a pid: the cgroup path names the container (parseCgroupPath, the
// deepest container segment), which gives `docker`, and `pod` when the registry has that
// container. The answer is cached for the cgroup id like any other. When /proc cannot say
// (the process exited before its exec event was written, as a short `cat` does), the known
// workloads' own cgroup trees are searched for a directory with that id: a sub-cgroup of a
// container belongs to it. A miss of that search is remembered briefly, so events of
// short-lived host processes in cgroups no workload owns do not walk the trees each time.
// Left: a sub-cgroup removed before the event of its exited process is written cannot be
// traced to its container any more (the event has no docker field); the exec record would
// have to carry the container's ancestor cgroup id from the kernel to close that.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { cgroupIdOf, dockerField, identityOfProcCgroup } from "./cgroup-identity.ts";
import type { TetragonPod } from "./k8s/pods.ts";
import type { Workload, WorkloadRegistry } from "./registry.ts";

export interface WorkloadFields {
  docker?: string;
  pod?: TetragonPod;
}

const NONE: WorkloadFields = Object.freeze({});

/** The prefix Kubernetes puts on containerStatuses[].containerID, by runtime. */
const RUNTIME_SCHEME: Partial<Record<Workload["runtime"], string>> = { containerd: "containerd", "cri-o": "cri-o", docker: "docker", podman: "podman" };

/**
 * Tetragon's `pod` block from a registry workload's pod metadata. The pod watch (source
 * "kubernetes") fills every part: the container id as the kubelet reports it, the image
 * name and digest, the start time, the owner (workload, workload_kind); an OCI hook's
 * workload (Kubernetes annotations only) gives namespace, name, uid and container name.
 * Empty maps are left out, as protojson leaves them out. No container.pid: the block is
 * cached per cgroup, and the pid inside the container is per process.
 */
export function podBlockOf(w: Workload): TetragonPod | undefined {
  const p = w.pod;
  if (p === undefined) return undefined;
  const out: TetragonPod = { namespace: p.namespace, name: p.name, uid: p.uid ?? "" };
  const name = p.container ?? w.name;
  if (w.containerId !== undefined && name !== undefined) {
    const scheme = RUNTIME_SCHEME[w.runtime];
    const image = { ...(p.imageId !== undefined ? { id: p.imageId } : {}), ...(w.image !== undefined ? { name: w.image } : {}) };
    out.container = {
      id: p.runtimeContainerId ?? (scheme !== undefined ? `${scheme}://${w.containerId}` : w.containerId),
      name,
      ...(Object.keys(image).length > 0 ? { image } : {}),
      ...(p.startedAt !== undefined ? { start_time: p.startedAt } : {}),
    };
  }
  if (Object.keys(p.labels).length > 0) out.pod_labels = { ...p.labels };
  if (p.workload !== undefined) out.workload = p.workload;
  if (p.workloadKind !== undefined) out.workload_kind = p.workloadKind;
  return out;
}

export function fieldsOf(w: Workload): WorkloadFields {
  const out: WorkloadFields = {};
  if (w.containerId !== undefined) out.docker = dockerField(w.containerId);
  const pod = podBlockOf(w);
  if (pod !== undefined) out.pod = pod;
  return Object.freeze(out);
}

export class WorkloadIdentity {
  readonly #cache = new Map<bigint, WorkloadFields>();
  /** cgroup id -> when a tree search for it last missed (ms). */
  readonly #treeMisses = new Map<bigint, number>();
  #unsubscribe: (() => void) | undefined;

  constructor(
    private readonly registry: WorkloadRegistry,
    /** The cgroup v2 root, to check a /proc answer is for the cgroup asked about. */
    private readonly cgroupRoot?: string,
  ) {}

  /** Follows the registry (call once; the cache is only correct while subscribed). */
  async start(): Promise<void> {
    // Any change may alter answers cached for other cgroup ids too (a sub-cgroup resolved
    // to its container, a "no workload" answer): workloads change rarely, so start over.
    this.#unsubscribe = await this.registry.subscribe(() => {
      this.#cache.clear();
      this.#treeMisses.clear();
    });
  }

  /**
   * The fields for a process in cgroup `cgroupId` ({} outside any container, and for 0).
   * `pid`, when given, resolves a cgroup id the registry does not know through /proc.
   */
  fields(cgroupId: bigint, pid?: number): WorkloadFields {
    if (cgroupId === 0n) return NONE;
    let f = this.#cache.get(cgroupId);
    if (f === undefined) {
      const w = this.registry.byCgroupId(cgroupId);
      if (w !== undefined) f = fieldsOf(w);
      else if (pid !== undefined) {
        // /proc may not name the container (a sub-cgroup's path, a process already gone):
        // the known containers' trees decide before "no workload" is cached.
        const proc = this.#fromProc(pid, cgroupId);
        f = proc === undefined || proc === NONE ? this.#fromTrees(cgroupId) ?? proc : proc;
      }
      if (f === undefined) return NONE; // not cached: a later call with a pid may resolve it
      // Bounded: a host churning through cgroups must not grow this without end.
      if (this.#cache.size > 65_536) this.#cache.clear();
      this.#cache.set(cgroupId, f);
    }
    return f;
  }

  /** The container a process's cgroup path names; undefined when it cannot be read (gone, moved). */
  #fromProc(pid: number, cgroupId: bigint): WorkloadFields | undefined {
    let text: string;
    try {
      text = readFileSync(`/proc/${pid}/cgroup`, "utf8");
    } catch {
      return undefined;
    }
    const id = identityOfProcCgroup(text, this.cgroupRoot);
    // The process moved since the record: its cgroup now is not the one asked about.
    if (this.cgroupRoot !== undefined && id.cgroupId !== cgroupId) return undefined;
    if (id.containerId === undefined || id.monitor) return NONE;
    const w = this.registry.get(id.containerId);
    return w !== undefined ? fieldsOf(w) : Object.freeze({ docker: dockerField(id.containerId) });
  }

  /** The workload whose cgroup tree holds a directory with this id (its sub-cgroup). */
  #fromTrees(cgroupId: bigint): WorkloadFields | undefined {
    if (this.cgroupRoot === undefined) return undefined;
    const now = Date.now();
    const missed = this.#treeMisses.get(cgroupId);
    if (missed !== undefined && now - missed < TREE_MISS_MS) return undefined;
    for (const w of this.registry.all()) {
      if (w.runtime === "none" || w.runtime === "systemd-scope") continue;
      if (holdsCgroup(join(this.cgroupRoot, w.cgroupPath), cgroupId, TREE_DEPTH)) return fieldsOf(w);
    }
    if (this.#treeMisses.size > 4096) this.#treeMisses.clear();
    this.#treeMisses.set(cgroupId, now);
    return undefined;
  }

  close(): void {
    this.#unsubscribe?.();
    this.#cache.clear();
    this.#treeMisses.clear();
  }
}

const TREE_MISS_MS = 1000;
const TREE_DEPTH = 4;

/** Whether a descendant of dir (not dir itself: the registry knows its id) has this cgroup id. */
function holdsCgroup(dir: string, cgroupId: bigint, depth: number): boolean {
  if (depth === 0) return false;
  let names: string[];
  try {
    names = readdirSync(dir, { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
  } catch {
    return false;
  }
  for (const n of names) {
    const sub = join(dir, n);
    try {
      if (cgroupIdOf(sub) === cgroupId) return true;
    } catch {
      continue;
    }
    if (holdsCgroup(sub, cgroupId, depth - 1)) return true;
  }
  return false;
}
