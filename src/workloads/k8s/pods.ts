// The pods of this node, from a list/watch of /api/v1/pods?fieldSelector=spec.nodeName=NODE:
// name, namespace, uid, labels and the container ids (status.containerStatuses[].containerID,
// "containerd://<id>"), looked up by pod uid or container id. Also renders Tetragon's `pod`
// block for an event (reference/tetragon.md §2.2).
import { bareContainerId } from "../container-selector.ts";
import { ListWatch, type K8sClient, type K8sObject, type ListWatchOptions } from "./client.ts";

export interface PodContainer {
  name: string;
  /** The bare container id (64 hex for containerd, cri-o, docker). */
  id: string;
  /** containerStatuses[].containerID as the kubelet reports it, e.g. "containerd://<id>". */
  runtimeId: string;
  image?: string;
  imageId?: string;
  startedAt?: string;
  /** The container's current state; only a running one has a cgroup to scope. */
  state?: "running" | "waiting" | "terminated" | "unknown";
}

export interface PodInfo {
  uid: string;
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  nodeName?: string;
  /** Running (or once-run) containers with an id; containers not yet created have none. */
  containers: PodContainer[];
  workload: string;
  workloadKind: string;
  resourceVersion?: string;
}

interface ContainerStatus {
  name?: string;
  containerID?: string;
  image?: string;
  imageID?: string;
  state?: { running?: { startedAt?: string }; waiting?: unknown; terminated?: unknown };
}

interface PodObject extends K8sObject {
  spec?: { nodeName?: string };
  status?: { containerStatuses?: ContainerStatus[]; initContainerStatuses?: ContainerStatus[]; ephemeralContainerStatuses?: ContainerStatus[] };
}

/**
 * The workload that owns a pod, as Tetragon names it: a ReplicaSet carrying the
 * pod-template-hash label is its Deployment (the name without "-<hash>"); other controllers
 * by their own kind and name; a bare pod is itself.
 */
function workloadOf(meta: NonNullable<K8sObject["metadata"]>): { workload: string; workloadKind: string } {
  const owner = meta.ownerReferences?.find((o) => o.controller) ?? meta.ownerReferences?.[0];
  const hash = meta.labels?.["pod-template-hash"];
  if (owner?.kind === "ReplicaSet" && owner.name && hash && owner.name.endsWith(`-${hash}`)) {
    return { workload: owner.name.slice(0, -hash.length - 1), workloadKind: "Deployment" };
  }
  if (owner?.kind && owner.name) return { workload: owner.name, workloadKind: owner.kind };
  return { workload: meta.name ?? "", workloadKind: "Pod" };
}

/** podInfoOf turns a Pod object into PodInfo; undefined for an object without uid or name. */
export function podInfoOf(o: K8sObject): PodInfo | undefined {
  const p = o as PodObject;
  const m = p.metadata;
  if (!m?.uid || !m.name) return undefined;
  const containers: PodContainer[] = [];
  const st = p.status ?? {};
  for (const cs of [...(st.initContainerStatuses ?? []), ...(st.containerStatuses ?? []), ...(st.ephemeralContainerStatuses ?? [])]) {
    if (!cs.containerID || !cs.name) continue;
    containers.push({
      name: cs.name,
      id: bareContainerId(cs.containerID),
      runtimeId: cs.containerID,
      ...(cs.image ? { image: cs.image } : {}),
      ...(cs.imageID ? { imageId: cs.imageID } : {}),
      ...(cs.state?.running?.startedAt ? { startedAt: cs.state.running.startedAt } : {}),
      state: cs.state?.running ? "running" : cs.state?.terminated ? "terminated" : cs.state?.waiting ? "waiting" : "unknown",
    });
  }
  return {
    uid: m.uid,
    name: m.name,
    namespace: m.namespace ?? "",
    labels: { ...(m.labels ?? {}) },
    annotations: { ...(m.annotations ?? {}) },
    ...(p.spec?.nodeName ? { nodeName: p.spec.nodeName } : {}),
    containers,
    ...workloadOf(m),
    ...(m.resourceVersion ? { resourceVersion: m.resourceVersion } : {}),
  };
}

export type PodChange = { type: "added"; pod: PodInfo } | { type: "updated"; pod: PodInfo; old: PodInfo } | { type: "deleted"; pod: PodInfo };

/**
 * PodCache: this node's pods. start() lists and watches; `synced` resolves after the first
 * list. Listeners get every change after it is applied to the cache.
 */
export class PodCache {
  readonly #byUid = new Map<string, PodInfo>();
  readonly #byContainer = new Map<string, { pod: PodInfo; container: PodContainer }>();
  readonly #listeners = new Set<(c: PodChange) => void>();
  readonly watch: ListWatch<K8sObject>;

  constructor(client: K8sClient, opts: { nodeName: string; onError?: (err: Error) => void } & Pick<ListWatchOptions, "backoff" | "timeoutSeconds" | "limit">) {
    this.watch = new ListWatch(
      client,
      { path: "/api/v1/pods", query: { fieldSelector: `spec.nodeName=${opts.nodeName}` }, ...pick(opts) },
      {
        added: (o) => this.#put(o),
        modified: (o) => this.#put(o),
        deleted: (o) => this.#drop(o),
        ...(opts.onError ? { error: opts.onError } : {}),
      },
    );
  }

  start(): void {
    this.watch.start();
  }

  stop(): Promise<void> {
    return this.watch.stop();
  }

  get synced(): Promise<void> {
    return this.watch.synced;
  }

  pods(): PodInfo[] {
    return [...this.#byUid.values()];
  }

  byUid(uid: string): PodInfo | undefined {
    return this.#byUid.get(uid);
  }

  /** The pod and container with this container id (bare or "runtime://id"). */
  byContainerId(id: string): { pod: PodInfo; container: PodContainer } | undefined {
    return this.#byContainer.get(bareContainerId(id));
  }

  /** Subscribes to changes; returns the unsubscribe function. */
  onChange(fn: (c: PodChange) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  #emit(c: PodChange): void {
    for (const l of this.#listeners) l(c);
  }

  #put(o: K8sObject): void {
    const pod = podInfoOf(o);
    if (pod === undefined) return;
    const old = this.#byUid.get(pod.uid);
    if (old) for (const c of old.containers) this.#byContainer.delete(c.id);
    this.#byUid.set(pod.uid, pod);
    for (const c of pod.containers) this.#byContainer.set(c.id, { pod, container: c });
    this.#emit(old ? { type: "updated", pod, old } : { type: "added", pod });
  }

  #drop(o: K8sObject): void {
    const uid = o.metadata?.uid;
    const pod = uid ? this.#byUid.get(uid) : undefined;
    if (!pod) return;
    this.#byUid.delete(pod.uid);
    for (const c of pod.containers) this.#byContainer.delete(c.id);
    this.#emit({ type: "deleted", pod });
  }
}

function pick(o: Pick<ListWatchOptions, "backoff" | "timeoutSeconds" | "limit">): Pick<ListWatchOptions, "backoff" | "timeoutSeconds" | "limit"> {
  return { ...(o.backoff ? { backoff: o.backoff } : {}), ...(o.timeoutSeconds ? { timeoutSeconds: o.timeoutSeconds } : {}), ...(o.limit ? { limit: o.limit } : {}) };
}

/** Tetragon's `pod` block (protojson names) for a process in this container. */
export interface TetragonPod {
  namespace: string;
  name: string;
  uid: string;
  container?: { id: string; name: string; image?: { id?: string; name?: string }; start_time?: string; pid?: number };
  pod_labels?: Record<string, string>;
  workload?: string;
  workload_kind?: string;
}

/**
 * podBlock renders the `pod` field of an event for a process whose cgroup names
 * `containerId`; `pid` is the process's pid inside the container when known. Empty maps
 * are left out, as protojson leaves them out.
 */
export function podBlock(pod: PodInfo, containerId: string, pid?: number): TetragonPod {
  const c = pod.containers.find((x) => x.id === bareContainerId(containerId));
  const out: TetragonPod = { namespace: pod.namespace, name: pod.name, uid: pod.uid };
  if (c) {
    const image = { ...(c.imageId ? { id: c.imageId } : {}), ...(c.image ? { name: c.image } : {}) };
    out.container = {
      id: c.runtimeId,
      name: c.name,
      ...(Object.keys(image).length > 0 ? { image } : {}),
      ...(c.startedAt ? { start_time: c.startedAt } : {}),
      ...(pid !== undefined ? { pid } : {}),
    };
  }
  if (Object.keys(pod.labels).length > 0) out.pod_labels = { ...pod.labels };
  if (pod.workload) out.workload = pod.workload;
  if (pod.workloadKind) out.workload_kind = pod.workloadKind;
  return out;
}
