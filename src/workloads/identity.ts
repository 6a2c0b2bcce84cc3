// The `docker` and `pod` fields of a process block, by the process's cgroup id (the process
// records carry it: ward_proc.cgroup_id, bpf_get_current_cgroup_id at exec), from the
// workload registry. Cached per cgroup id; a registry change drops the cached answers it
// could change (the cgroup ids it adds or removes, and every "not a workload" answer).
//
// Only the cgroup a workload was registered with is matched: a process in a sub-cgroup of a
// container (a cgroup the container made itself) has an id the registry does not know, and
// its events carry no `docker` field. Runtimes put a container's processes in the container
// cgroup itself, so this is the exception.
import { dockerField } from "./cgroup-identity.ts";
import type { TetragonPod } from "./k8s/pods.ts";
import type { Workload, WorkloadRegistry } from "./registry.ts";

export interface WorkloadFields {
  docker?: string;
  pod?: TetragonPod;
}

const NONE: WorkloadFields = Object.freeze({});

/** The prefix Kubernetes puts on containerStatuses[].containerID, by runtime. */
const RUNTIME_SCHEME: Partial<Record<Workload["runtime"], string>> = { containerd: "containerd", "cri-o": "cri-o", docker: "docker", podman: "podman" };

/** Tetragon's `pod` block from a registry workload's pod metadata. */
export function podBlockOf(w: Workload): TetragonPod | undefined {
  const p = w.pod;
  if (p === undefined) return undefined;
  const out: TetragonPod = { namespace: p.namespace, name: p.name, uid: p.uid ?? "" };
  const name = p.container ?? w.name;
  if (w.containerId !== undefined && name !== undefined) {
    const scheme = RUNTIME_SCHEME[w.runtime];
    out.container = {
      id: scheme !== undefined ? `${scheme}://${w.containerId}` : w.containerId,
      name,
      ...(w.image !== undefined ? { image: { name: w.image } } : {}),
    };
  }
  if (Object.keys(p.labels).length > 0) out.pod_labels = { ...p.labels };
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

  constructor(private readonly registry: WorkloadRegistry) {}

  /** Follows the registry (call once; the cache is only correct while subscribed). */
  async start(): Promise<void> {
    this.#unsubscribe = await this.registry.subscribe((c) => {
      for (const w of [...c.added, ...c.removed]) this.#cache.delete(w.cgroupId);
      for (const [k, v] of this.#cache) if (v === NONE) this.#cache.delete(k);
    });
  }

  /** The fields for a process in cgroup `cgroupId` ({} outside any known workload, and for 0). */
  fields(cgroupId: bigint): WorkloadFields {
    if (cgroupId === 0n) return NONE;
    let f = this.#cache.get(cgroupId);
    if (f === undefined) {
      const w = this.registry.byCgroupId(cgroupId);
      f = w === undefined ? NONE : fieldsOf(w);
      // Bounded: a host churning through cgroups must not grow this without end.
      if (this.#cache.size > 65_536) this.#cache.clear();
      this.#cache.set(cgroupId, f);
    }
    return f;
  }

  close(): void {
    this.#unsubscribe?.();
    this.#cache.clear();
  }
}
