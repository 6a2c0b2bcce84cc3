// The `docker` and `pod` fields of a process block, by the process's cgroup id (the process
// records carry it: ward_proc.cgroup_id, bpf_get_current_cgroup_id at exec), from the
// workload registry. Cached per cgroup id; a registry change drops the cache.
//
// A cgroup id the registry does not know (a sub-cgroup a container made itself, or a
// container no feeder reported) is resolved once through the process's /proc/PID/cgroup
// when the caller gives a pid: the cgroup path names the container (parseCgroupPath, the
// deepest container segment), which gives `docker`, and `pod` when the registry has that
// container. The answer is cached for the cgroup id like any other.
import { readFileSync } from "node:fs";
import { dockerField, identityOfProcCgroup } from "./cgroup-identity.ts";
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
    this.#unsubscribe = await this.registry.subscribe(() => this.#cache.clear());
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
      f = w !== undefined ? fieldsOf(w) : pid !== undefined ? this.#fromProc(pid, cgroupId) : undefined;
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

  close(): void {
    this.#unsubscribe?.();
    this.#cache.clear();
  }
}
