// Tetragon's `pod` field of an event (reference/tetragon.md §2.2) from a registry workload:
// what the event encoder puts in the process block of a process whose cgroup is that
// workload's. The pod watch (source "kubernetes") fills every part of it; an OCI hook's
// workload (Kubernetes annotations only) gives namespace, name, uid and container name.
import type { TetragonPod } from "./k8s/pods.ts";
import type { Workload } from "./registry.ts";

/** The container id as Tetragon prints it: the runtime's scheme and the id ("containerd://<id>"). */
function runtimeIdOf(w: Workload): string | undefined {
  if (w.pod?.runtimeContainerId !== undefined) return w.pod.runtimeContainerId;
  if (w.containerId === undefined) return undefined;
  const scheme = w.runtime === "containerd" || w.runtime === "cri-o" || w.runtime === "docker" || w.runtime === "podman" ? w.runtime : undefined;
  return scheme !== undefined ? `${scheme}://${w.containerId}` : w.containerId;
}

/**
 * tetragonPodOf: the `pod` block for a process in workload `w` (undefined when the workload
 * has no pod). `pid` is the process's pid inside the container, when known. Empty maps are
 * left out, as protojson leaves them out.
 */
export function tetragonPodOf(w: Workload, pid?: number): TetragonPod | undefined {
  const p = w.pod;
  if (p === undefined) return undefined;
  const out: TetragonPod = { namespace: p.namespace, name: p.name, uid: p.uid ?? "" };
  const id = runtimeIdOf(w);
  const name = p.container ?? w.name;
  if (id !== undefined && name !== undefined) {
    const image = { ...(p.imageId !== undefined ? { id: p.imageId } : {}), ...(w.image !== undefined ? { name: w.image } : {}) };
    out.container = {
      id,
      name,
      ...(Object.keys(image).length > 0 ? { image } : {}),
      ...(p.startedAt !== undefined ? { start_time: p.startedAt } : {}),
      ...(pid !== undefined ? { pid } : {}),
    };
  }
  if (Object.keys(p.labels).length > 0) out.pod_labels = { ...p.labels };
  if (p.workload !== undefined) out.workload = p.workload;
  if (p.workloadKind !== undefined) out.workload_kind = p.workloadKind;
  return out;
}
