// Which containers a policy applies to, from its workload scope (reference/tetragon.md §1.2,
// "Workload filtering semantics"): a TracingPolicyNamespaced's namespace, spec.podSelector and
// spec.containerSelector. The resolver keeps the set live over the pod cache and reports each
// change, with the cgroup ids the kernel filters on, so the agent can update the policy's
// kernel scope map without reloading programs.
import { matchesContainer, type ContainerInfo } from "../container-selector.ts";
import { matchesLabels, parseLabelSelector, type LabelSelector } from "../label-selector.ts";
import type { PodCache, PodContainer, PodInfo } from "./pods.ts";
import type { Workload } from "../registry.ts";

/** The implicit pod label Tetragon adds for podSelector: the pod's namespace. */
export const NAMESPACE_LABEL = "k8s:io.kubernetes.pod.namespace";

export interface PolicyScope {
  /** Set for TracingPolicyNamespaced: only pods in this namespace. */
  namespace?: string;
  /** null/undefined: no pod filter. */
  podSelector?: LabelSelector;
  containerSelector?: LabelSelector;
  /** {} includes host (non-pod) workloads as well. */
  hostSelector?: LabelSelector;
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * scopeOfPolicy reads the scope from a policy document (kind, metadata.namespace and the
 * three selectors of spec). Throws LabelSelectorError with the field path of a bad selector.
 */
export function scopeOfPolicy(doc: unknown): PolicyScope {
  if (!isRecord(doc)) return {};
  const spec = isRecord(doc.spec) ? doc.spec : {};
  const meta = isRecord(doc.metadata) ? doc.metadata : {};
  const out: PolicyScope = {};
  if (doc.kind === "TracingPolicyNamespaced" && typeof meta.namespace === "string") out.namespace = meta.namespace;
  for (const k of ["podSelector", "containerSelector", "hostSelector"] as const) {
    if (spec[k] !== undefined && spec[k] !== null) out[k] = parseLabelSelector(spec[k], `spec.${k}`);
  }
  return out;
}

/**
 * isScoped: does the policy apply to a subset of processes? A policy with no namespace and
 * no selectors applies everywhere (host and all pods) and needs no kernel scope.
 */
export function isScoped(s: PolicyScope): boolean {
  return s.namespace !== undefined || s.podSelector !== undefined || s.containerSelector !== undefined || s.hostSelector !== undefined;
}

/**
 * includesHost: whether processes outside any pod are in scope. Any pod or container
 * selector (or a namespace) excludes them unless hostSelector: {} is also given.
 */
export function includesHost(s: PolicyScope): boolean {
  if (!isScoped(s)) return true;
  return s.hostSelector !== undefined && s.namespace === undefined;
}

/** podInScope: namespace and podSelector (with the implicit namespace label). */
export function podInScope(s: PolicyScope, pod: PodInfo): boolean {
  if (s.namespace !== undefined && pod.namespace !== s.namespace) return false;
  // hostSelector alone selects host workloads only.
  if (s.podSelector === undefined && s.containerSelector === undefined && s.namespace === undefined) return false;
  if (s.podSelector !== undefined && !matchesLabels(s.podSelector, { ...pod.labels, [NAMESPACE_LABEL]: pod.namespace })) return false;
  return true;
}

export function containerInScope(s: PolicyScope, pod: PodInfo, c: PodContainer): boolean {
  if (!podInScope(s, pod)) return false;
  return s.containerSelector === undefined || matchesContainer(s.containerSelector, { name: c.name, id: c.id, ...(c.image ? { image: c.image } : {}) });
}

export interface ScopeMember {
  containerId: string;
  podUid: string;
  namespace: string;
  pod: string;
  container: string;
  /** Undefined while the container's cgroup is not known (not created yet, or not found). */
  cgroupId?: bigint;
}

export interface ScopeChange {
  policy: string;
  added: ScopeMember[];
  removed: ScopeMember[];
  /** The whole set after the change. */
  members: ScopeMember[];
}

/** Finds a container's cgroup id (e.g. over scanContainerCgroups, or the OCI hook's report). */
export type CgroupLookup = (containerId: string) => bigint | undefined;

/**
 * ScopeResolver keeps, per policy, the set of containers in its scope, recomputed on every
 * pod change and on refresh() (call it when cgroups appear, so members get their ids).
 * Listeners see only real changes: a member added, removed, or whose cgroup id changed
 * (reported as removed + added).
 */
export class ScopeResolver {
  readonly #policies = new Map<string, { scope: PolicyScope; members: Map<string, ScopeMember>; listener: (c: ScopeChange) => void }>();
  readonly #unsubscribe: () => void;

  constructor(
    private readonly pods: PodCache,
    private readonly cgroupOf: CgroupLookup,
  ) {
    this.#unsubscribe = pods.onChange(() => this.refresh());
  }

  /**
   * Tracks a policy's scope; the listener gets the first set at once (when not empty) and
   * every change after. Returns the function that stops tracking it.
   */
  track(policy: string, scope: PolicyScope, listener: (c: ScopeChange) => void): () => void {
    this.#policies.set(policy, { scope, members: new Map(), listener });
    this.#recompute(policy);
    return () => this.untrack(policy);
  }

  untrack(policy: string): void {
    this.#policies.delete(policy);
  }

  members(policy: string): ScopeMember[] {
    return [...(this.#policies.get(policy)?.members.values() ?? [])];
  }

  /** Recomputes every tracked policy. */
  refresh(): void {
    for (const name of this.#policies.keys()) this.#recompute(name);
  }

  close(): void {
    this.#unsubscribe();
    this.#policies.clear();
  }

  #recompute(policy: string): void {
    const p = this.#policies.get(policy);
    if (!p) return;
    const next = new Map<string, ScopeMember>();
    for (const pod of this.pods.pods()) {
      for (const c of pod.containers) {
        if (!containerInScope(p.scope, pod, c)) continue;
        const cg = this.cgroupOf(c.id);
        next.set(c.id, { containerId: c.id, podUid: pod.uid, namespace: pod.namespace, pod: pod.name, container: c.name, ...(cg !== undefined ? { cgroupId: cg } : {}) });
      }
    }
    const added: ScopeMember[] = [];
    const removed: ScopeMember[] = [];
    for (const [id, m] of p.members) {
      const n = next.get(id);
      if (n === undefined || n.cgroupId !== m.cgroupId) removed.push(m);
    }
    for (const [id, m] of next) {
      const o = p.members.get(id);
      if (o === undefined || o.cgroupId !== m.cgroupId) added.push(m);
    }
    p.members.clear();
    for (const [id, m] of next) p.members.set(id, m);
    if (added.length > 0 || removed.length > 0) p.listener({ policy, added, removed, members: [...next.values()] });
  }
}

/**
 * workloadInScope: membership of one registry workload, whoever reported it. A workload
 * with pod metadata (OCI annotations, the pod watch) is judged like a pod's container:
 * namespace, podSelector (with the implicit namespace label) and containerSelector. One
 * without (a container found in the cgroup tree, a runtime without Kubernetes) can only be
 * selected by a containerSelector alone; a namespace or podSelector never matches it.
 */
export function workloadInScope(s: PolicyScope, w: Workload): boolean {
  if (!isScoped(s)) return true;
  const name = w.pod?.container ?? w.name;
  const container: ContainerInfo = { ...(name !== undefined ? { name } : {}), ...(w.containerId !== undefined ? { id: w.containerId } : {}), ...(w.image !== undefined ? { image: w.image } : {}), annotations: w.annotations };
  if (w.pod !== undefined) {
    const pod = w.pod;
    if (s.namespace !== undefined && pod.namespace !== s.namespace) return false;
    if (s.podSelector === undefined && s.containerSelector === undefined && s.namespace === undefined) return false;
    if (s.podSelector !== undefined && !matchesLabels(s.podSelector, { ...pod.labels, [NAMESPACE_LABEL]: pod.namespace })) return false;
    return s.containerSelector === undefined || matchesContainer(s.containerSelector, container);
  }
  if (s.namespace !== undefined || s.podSelector !== undefined || s.containerSelector === undefined) return false;
  return matchesContainer(s.containerSelector, container);
}

const selectorText = (sel: LabelSelector): string => {
  const parts = Object.entries(sel.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`);
  for (const e of sel.matchExpressions ?? []) parts.push(`${e.key} ${e.operator}${e.values?.length ? ` (${e.values.join(", ")})` : ""}`);
  return parts.length > 0 ? parts.join(", ") : "everything";
};

/** A one-line description of a scope, for status and explain ("namespace vendor-app; podSelector app=nginx"). */
export function describeScope(s: PolicyScope): string {
  if (!isScoped(s)) return "every process";
  const out: string[] = [];
  if (s.namespace !== undefined) out.push(`namespace ${s.namespace}`);
  if (s.podSelector !== undefined) out.push(`podSelector ${selectorText(s.podSelector)}`);
  if (s.containerSelector !== undefined) out.push(`containerSelector ${selectorText(s.containerSelector)}`);
  if (s.hostSelector !== undefined) out.push("hostSelector {}");
  return out.join("; ");
}
