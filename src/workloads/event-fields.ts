// The workload fields of a Tetragon process block: `docker` (the container id from the
// cgroup path, first 31 characters) and `pod` (from the pod cache, when the agent watches
// Kubernetes). The event encoder calls this with what it knows of a process: its cgroup
// path (from /proc/PID/cgroup at procfs scan, or the cgroup name the kernel record carries).
import { dockerField, parseCgroupPath, type PathIdentity } from "./cgroup-identity.ts";
import { podBlock, type PodCache, type TetragonPod } from "./k8s/pods.ts";

export interface WorkloadFields {
  docker?: string;
  pod?: TetragonPod;
}

/** What workloadFields needs to find a pod: the cache's container-id lookup. */
export type PodLookup = Pick<PodCache, "byContainerId">;

/**
 * workloadFields: `docker` when the cgroup names a container (monitor scopes such as
 * conmon are not containers), and `pod` when the pod cache knows that container. `pid` is
 * the process's pid inside the container (the pod block's container.pid), when known.
 */
export function workloadFields(identity: PathIdentity | string, pods?: PodLookup, pid?: number): WorkloadFields {
  const id = typeof identity === "string" ? parseCgroupPath(identity) : identity;
  if (id.containerId === undefined || id.monitor) return {};
  const out: WorkloadFields = { docker: dockerField(id.containerId) };
  const hit = pods?.byContainerId(id.containerId);
  if (hit) out.pod = podBlock(hit.pod, id.containerId, pid);
  return out;
}
