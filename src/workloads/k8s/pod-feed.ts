// The pod-watch feeder of the workload registry (source "kubernetes"): every running
// container of every pod of this node becomes a Workload with its kernel cgroup id and its
// pod {namespace, name, uid, labels, container, owner, image, start time}, so podSelector and
// namespace scopes select it and events carry Tetragon's `pod` block. A relabeled pod
// replaces its containers' workloads (scopes recompute on the upsert), a deleted pod or a
// container that stopped removes them.
//
// The pod watch names containers by id ("containerd://<id>"); the kernel filters on cgroup
// ids. The cgroup is found in the registry (another feeder, the OCI hook or the cgroup scan,
// already reported it) or by scanning the cgroup v2 tree (scanContainerCgroups). A running
// container whose cgroup is not found yet (the pod watch can be first) waits: it is
// resolved as soon as another feeder reports the cgroup, and by a rescan with backoff.
import { scanContainerCgroups, type Runtime } from "../cgroup-identity.ts";
import type { Workload, WorkloadChange, WorkloadRegistry } from "../registry.ts";
import type { PodCache, PodChange, PodContainer, PodInfo } from "./pods.ts";

/** A container's cgroup as the scan finds it. */
export interface ContainerCgroupRef {
  cgroupId: bigint;
  /** Relative to the cgroup v2 root, starting with "/". */
  path: string;
  runtime: Runtime;
}

/** Container id -> cgroup, from one walk of the cgroup tree. */
export type CgroupScan = () => ReadonlyMap<string, ContainerCgroupRef>;

export interface PodFeedOptions {
  scan: CgroupScan;
  /** First rescan delay while containers wait for their cgroup (doubles up to maxRetryMs). */
  retryMs?: number;
  maxRetryMs?: number;
  log?: (msg: string) => void;
}

export interface PodFeedStats {
  /** Workloads this feeder holds in the registry. */
  workloads: number;
  /** Running containers whose cgroup is not found yet. */
  pending: number;
  scans: number;
  /** Registry writes that failed (a scope could not apply the change). */
  errors: number;
  lastError?: string;
}

/** What one pod container should be in the registry, before its cgroup is known. */
interface Wanted {
  pod: PodInfo;
  container: PodContainer;
}

const SCHEME_RUNTIME: Record<string, Runtime> = { containerd: "containerd", "cri-o": "cri-o", docker: "docker" };

function runtimeOf(c: PodContainer, fromPath: Runtime): Runtime {
  if (fromPath !== "unknown" && fromPath !== "none") return fromPath;
  const scheme = c.runtimeId.slice(0, Math.max(0, c.runtimeId.indexOf("://")));
  return SCHEME_RUNTIME[scheme] ?? fromPath;
}

/** The registry entry for a pod container whose cgroup is known. */
export function podWorkload(want: Wanted, cg: ContainerCgroupRef, existing?: Workload): Workload {
  const { pod, container: c } = want;
  return {
    key: c.id,
    cgroupId: cg.cgroupId,
    cgroupPath: cg.path,
    runtime: runtimeOf(c, cg.runtime),
    containerId: c.id,
    name: c.name,
    ...(c.image !== undefined ? { image: c.image } : existing?.image !== undefined ? { image: existing.image } : {}),
    // The OCI hook's annotations stay: containerSelector may match on them.
    annotations: existing?.annotations ?? {},
    pod: {
      namespace: pod.namespace,
      name: pod.name,
      uid: pod.uid,
      labels: { ...pod.labels },
      container: c.name,
      workload: pod.workload,
      workloadKind: pod.workloadKind,
      runtimeContainerId: c.runtimeId,
      ...(c.imageId !== undefined ? { imageId: c.imageId } : {}),
      ...(c.startedAt !== undefined ? { startedAt: c.startedAt } : {}),
    },
    source: "kubernetes",
  };
}

function sameWorkload(a: Workload, b: Workload): boolean {
  return (
    a.cgroupId === b.cgroupId &&
    a.source === b.source &&
    JSON.stringify({ ...a, cgroupId: undefined }) === JSON.stringify({ ...b, cgroupId: undefined })
  );
}

export class PodWorkloadFeed {
  /** Running containers of this node's pods, by container id. */
  readonly #wanted = new Map<string, Wanted>();
  /** Ids of wanted containers whose cgroup is not found yet. */
  readonly #pending = new Set<string>();
  #cache: ReadonlyMap<string, ContainerCgroupRef> = new Map();
  #queue: Promise<void> = Promise.resolve();
  #timer: ReturnType<typeof setTimeout> | undefined;
  #delay: number;
  #unsubscribePods: (() => void) | undefined;
  #unsubscribeRegistry: (() => void) | undefined;
  #closed = false;
  readonly stats: PodFeedStats = { workloads: 0, pending: 0, scans: 0, errors: 0 };

  constructor(
    private readonly pods: PodCache,
    private readonly registry: WorkloadRegistry,
    private readonly opts: PodFeedOptions,
  ) {
    this.#delay = opts.retryMs ?? 500;
  }

  /** Feeds the pods the cache holds now and follows its changes; resolves when they are in the registry. */
  async start(): Promise<void> {
    this.#unsubscribePods = this.pods.onChange((c) => this.#podChanged(c));
    // Another feeder reporting a container's cgroup resolves a pending one at once. The
    // subscriber only queues: it runs inside the registry's notify and must not wait on it.
    this.#unsubscribeRegistry = await this.registry.subscribe((c) => this.#registryChanged(c));
    this.#rescan();
    for (const pod of this.pods.pods()) this.#podChanged({ type: "added", pod });
    await this.settled();
  }

  /** Resolves when the registry writes queued so far have settled. */
  async settled(): Promise<void> {
    for (;;) {
      const q = this.#queue;
      await q;
      if (q === this.#queue) return;
    }
  }

  /** Pod containers waiting for their cgroup: "namespace/pod/container (id)". */
  pending(): string[] {
    return [...this.#pending].map((id) => {
      const w = this.#wanted.get(id);
      return w ? `${w.pod.namespace}/${w.pod.name}/${w.container.name} (${id.slice(0, 12)})` : id;
    });
  }

  async stop(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#unsubscribePods?.();
    this.#unsubscribeRegistry?.();
    await this.settled();
  }

  #podChanged(c: PodChange): void {
    if (this.#closed) return;
    const before = c.type === "added" ? [] : (c.type === "updated" ? c.old : c.pod).containers.map((x) => x.id);
    const now = c.type === "deleted" ? [] : c.pod.containers.filter((x) => x.state === "running").map((x) => x.id);
    for (const id of before) {
      if (now.includes(id)) continue;
      this.#wanted.delete(id);
      this.#pending.delete(id);
      this.#enqueue(async () => {
        // Only what this feeder put there: a cgroup-scan or OCI hook entry is theirs.
        if (this.registry.get(id)?.source === "kubernetes") await this.registry.remove(id);
      });
    }
    if (c.type !== "deleted") {
      for (const container of c.pod.containers) {
        if (!now.includes(container.id)) continue;
        this.#wanted.set(container.id, { pod: c.pod, container });
        this.#resolve(container.id);
      }
    }
    this.#count();
  }

  /**
   * Another feeder wrote a container this feeder wants: a pending one gets its cgroup; one
   * already in the registry is written again with the pod watch's metadata merged over the
   * other report (an OCI hook's report has no pod labels, and podSelector needs them).
   */
  #registryChanged(c: WorkloadChange): void {
    for (const w of c.added) {
      if (w.source !== "kubernetes" && w.containerId !== undefined && this.#wanted.has(w.containerId)) this.#resolve(w.containerId);
    }
  }

  /** Puts a wanted container in the registry if its cgroup is known, else marks it pending. */
  #resolve(id: string): void {
    const want = this.#wanted.get(id);
    if (want === undefined) return;
    const existing = this.registry.get(id);
    let cg: ContainerCgroupRef | undefined = existing !== undefined ? { cgroupId: existing.cgroupId, path: existing.cgroupPath, runtime: existing.runtime } : this.#cache.get(id);
    if (cg === undefined && !this.#pending.has(id)) {
      // New and not in the last scan: the tree may have changed since; look once more now.
      this.#rescan();
      cg = this.#cache.get(id);
    }
    if (cg === undefined) {
      if (!this.#pending.has(id)) {
        this.#pending.add(id);
        this.#delay = this.opts.retryMs ?? 500;
        this.#arm();
      }
      this.#count();
      return;
    }
    this.#pending.delete(id);
    const w = podWorkload(want, cg, existing);
    if (existing === undefined || !sameWorkload(existing, w)) this.#enqueue(() => this.registry.upsert(w));
    this.#count();
  }

  #rescan(): void {
    this.stats.scans++;
    try {
      this.#cache = this.opts.scan();
    } catch (err) {
      this.#failed(`scan cgroups: ${(err as Error).message}`);
    }
  }

  /** While containers wait, rescan with backoff (another feeder's report resolves them sooner). */
  #arm(): void {
    if (this.#timer !== undefined || this.#closed) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (this.#closed || this.#pending.size === 0) return;
      this.#rescan();
      for (const id of [...this.#pending]) {
        if (this.#cache.has(id) || this.registry.get(id) !== undefined) {
          this.#pending.delete(id);
          this.#resolve(id);
        }
      }
      this.#delay = Math.min(this.opts.maxRetryMs ?? 30_000, this.#delay * 2);
      if (this.#pending.size > 0) this.#arm();
    }, this.#delay);
    // A wait for a cgroup must not keep a stopping process alive.
    this.#timer.unref?.();
  }

  #enqueue(op: () => Promise<void>): void {
    this.#queue = this.#queue.then(op).then(
      () => this.#count(),
      (err: unknown) => this.#failed(`registry: ${err instanceof Error ? err.message : String(err)}`),
    );
  }

  #failed(msg: string): void {
    this.stats.errors++;
    this.stats.lastError = msg;
    this.opts.log?.(`pod feed: ${msg}`);
  }

  #count(): void {
    this.stats.pending = this.#pending.size;
    this.stats.workloads = this.registry.all().filter((w) => w.source === "kubernetes").length;
  }
}

/** The scan over a cgroup v2 root (undefined: no v2 hierarchy, so no container is ever found). */
export function cgroupTreeScan(root: string | undefined): CgroupScan {
  return () => (root === undefined ? new Map() : scanContainerCgroups(root));
}
