// The agent's workload registry: every container (or other workload) the agent knows, keyed
// by its cgroup, whoever told it (the OCI runtime hook, the Kubernetes pod watch, a scan of
// the cgroup v2 tree). Scopes subscribe to it; an upsert resolves only after every
// subscriber has applied the change (for scopes: the kernel's cgroup-id sets are updated),
// which is what lets the OCI hook hold a container until its policies hold.
import type { Runtime } from "./cgroup-identity.ts";

/** Tetragon's pod metadata for a workload (Kubernetes annotations or the pod watch). */
export interface WorkloadPod {
  namespace: string;
  name: string;
  uid?: string;
  labels: Readonly<Record<string, string>>;
  /** The container's name inside the pod. */
  container?: string;
  /** From the pod watch: the pod's owner as Tetragon names it (a ReplicaSet's Deployment). */
  workload?: string;
  workloadKind?: string;
  /** From the pod watch: containerStatuses[].containerID as the kubelet reports it ("containerd://<id>"). */
  runtimeContainerId?: string;
  /** From the pod watch: the image's digest reference (containerStatuses[].imageID). */
  imageId?: string;
  /** From the pod watch: when the container started running (RFC 3339). */
  startedAt?: string;
}

export type WorkloadSource = "oci-hook" | "kubernetes" | "cgroup-scan";

export interface Workload {
  /** Stable key: the container id when there is one, else the cgroup path. */
  key: string;
  /** The cgroup directory's inode: what bpf_get_current_cgroup_id() returns inside it. */
  cgroupId: bigint;
  /** The cgroup path relative to the cgroup v2 root ("/system.slice/docker-ID.scope"). */
  cgroupPath: string;
  runtime: Runtime;
  containerId?: string;
  /** Container name (OCI annotation or runtime name). */
  name?: string;
  image?: string;
  annotations: Readonly<Record<string, string>>;
  pod?: WorkloadPod;
  source: WorkloadSource;
}

export interface WorkloadChange {
  added: readonly Workload[];
  /** Replaced entries appear in both lists: removed (old) and added (new). */
  removed: readonly Workload[];
}

/** A subscriber's promise settles when the change is applied (for scopes: in the kernel). */
export type WorkloadSubscriber = (change: WorkloadChange) => void | Promise<void>;

export class WorkloadRegistry {
  private readonly byKey = new Map<string, Workload>();
  private readonly byCgroup = new Map<bigint, Workload>();
  private readonly subscribers = new Set<WorkloadSubscriber>();

  /** Adds or replaces a workload; resolves when every subscriber applied it (rejects with the first failure). */
  async upsert(w: Workload): Promise<void> {
    const old = this.byKey.get(w.key);
    if (old !== undefined) this.byCgroup.delete(old.cgroupId);
    this.byKey.set(w.key, w);
    this.byCgroup.set(w.cgroupId, w);
    await this.notify({ added: [w], removed: old === undefined ? [] : [old] });
  }

  /** Forgets a workload; resolves when every subscriber applied it. Unknown keys are a no-op. */
  async remove(key: string): Promise<void> {
    const old = this.byKey.get(key);
    if (old === undefined) return;
    this.byKey.delete(key);
    if (this.byCgroup.get(old.cgroupId) === old) this.byCgroup.delete(old.cgroupId);
    await this.notify({ added: [], removed: [old] });
  }

  get(key: string): Workload | undefined {
    return this.byKey.get(key);
  }

  byCgroupId(id: bigint): Workload | undefined {
    return this.byCgroup.get(id);
  }

  all(): Workload[] {
    return [...this.byKey.values()];
  }

  /** Subscribes; the subscriber first receives every known workload as added (if that fails it is not subscribed). Returns the unsubscribe. */
  async subscribe(fn: WorkloadSubscriber): Promise<() => void> {
    this.subscribers.add(fn);
    const known = this.all();
    try {
      if (known.length > 0) await fn({ added: known, removed: [] });
    } catch (e) {
      this.subscribers.delete(fn);
      throw e;
    }
    return () => this.subscribers.delete(fn);
  }

  private async notify(change: WorkloadChange): Promise<void> {
    const results = await Promise.allSettled([...this.subscribers].map(async (s) => s(change)));
    const failed = results.find((r): r is PromiseRejectedResult => r.status === "rejected");
    if (failed !== undefined) throw failed.reason;
  }
}
