// TracingPolicy (cluster scoped) and TracingPolicyNamespaced custom resources
// (cilium.io/v1alpha1), watched and handed to the agent's policy store through PolicySink.
// A CR added is applied; modified (a new metadata.generation, i.e. the spec changed) is
// applied again; deleted is removed. Metadata-only updates (labels, annotations) keep the
// generation and are not re-applied. The sink's failure (an invalid policy) is reported
// through onError and does not stop the watch: the CR stays refused until it changes.
import { ListWatch, type K8sClient, type K8sObject, type ListWatchOptions } from "./client.ts";

export const CRD_GROUP = "cilium.io";
export const CRD_VERSION = "v1alpha1";

export type PolicyKind = "TracingPolicy" | "TracingPolicyNamespaced";

export interface PolicyRef {
  kind: PolicyKind;
  name: string;
  /** Only for TracingPolicyNamespaced. */
  namespace?: string;
}

/**
 * Where the CRs go (the agent wires it to its policy store). `doc` is the CR cleaned of
 * server fields (apiVersion, kind, metadata {name, namespace, labels, annotations}, spec):
 * JSON.stringify(doc) is a policy document the store's parser reads. `source` is
 * "k8s:<kind>/<namespace>/<name>" (no namespace part for TracingPolicy). apply is called
 * again for a changed CR: the sink replaces the policy it applied before for that ref.
 */
export interface PolicySink {
  apply(doc: K8sObject, ref: PolicyRef, source: string): Promise<void>;
  remove(ref: PolicyRef, source: string): Promise<void>;
}

export function sourceOf(ref: PolicyRef): string {
  return ref.namespace !== undefined ? `k8s:${ref.kind}/${ref.namespace}/${ref.name}` : `k8s:${ref.kind}/${ref.name}`;
}

/** The CR as a policy document: no status, managedFields, uid or resourceVersion. */
export function policyDocOf(o: K8sObject, kind: PolicyKind): K8sObject {
  const m = o.metadata ?? {};
  return {
    apiVersion: `${CRD_GROUP}/${CRD_VERSION}`,
    kind,
    metadata: {
      name: m.name,
      ...(kind === "TracingPolicyNamespaced" && m.namespace ? { namespace: m.namespace } : {}),
      ...(m.labels ? { labels: m.labels } : {}),
      ...(m.annotations ? { annotations: m.annotations } : {}),
    },
    spec: o.spec ?? {},
  };
}

export interface PolicyWatcherOptions extends Pick<ListWatchOptions, "backoff" | "timeoutSeconds"> {
  onError?(err: Error, ref?: PolicyRef): void;
}

/**
 * TracingPolicyWatcher watches both kinds. Sink calls are serialized in event order (one
 * queue), so an add and its delete reach the store in the order the server sent them.
 */
export class TracingPolicyWatcher {
  readonly #watches: ListWatch<K8sObject>[] = [];
  /** Each kind's list/watch, for status (synced, resourceVersion, counters). */
  readonly watches: { kind: PolicyKind; plural: string; watch: ListWatch<K8sObject> }[] = [];
  readonly #applyOf = new Map<PolicyKind, (o: K8sObject) => void>();
  #queue: Promise<void> = Promise.resolve();

  constructor(
    client: K8sClient,
    private readonly sink: PolicySink,
    private readonly opts: PolicyWatcherOptions = {},
  ) {
    const kinds: [PolicyKind, string][] = [
      ["TracingPolicy", "tracingpolicies"],
      ["TracingPolicyNamespaced", "tracingpoliciesnamespaced"],
    ];
    for (const [kind, plural] of kinds) {
      const refOf = (o: K8sObject): PolicyRef => ({ kind, name: o.metadata?.name ?? "", ...(kind === "TracingPolicyNamespaced" ? { namespace: o.metadata?.namespace ?? "" } : {}) });
      const apply = (o: K8sObject) => this.#enqueue(refOf(o), (ref) => this.sink.apply(policyDocOf(o, kind), ref, sourceOf(ref)));
      const path = `/apis/${CRD_GROUP}/${CRD_VERSION}/${plural}`;
      const watch = new ListWatch<K8sObject>(client, { path, ...(opts.backoff ? { backoff: opts.backoff } : {}), ...(opts.timeoutSeconds ? { timeoutSeconds: opts.timeoutSeconds } : {}) }, {
        added: apply,
        modified: (o, old) => {
          // Same generation: only metadata changed; the policy is the same.
          if (o.metadata?.generation !== undefined && o.metadata.generation === old.metadata?.generation) return;
          apply(o);
        },
        deleted: (o) => this.#enqueue(refOf(o), (ref) => this.sink.remove(ref, sourceOf(ref))),
        error: (err) => this.opts.onError?.(err),
      });
      this.#watches.push(watch);
      this.watches.push({ kind, plural, watch });
      this.#applyOf.set(kind, apply);
    }
  }

  #enqueue(ref: PolicyRef, fn: (ref: PolicyRef) => Promise<void>): void {
    this.#queue = this.#queue.then(
      () =>
        fn(ref).catch((err: unknown) => {
          this.opts.onError?.(err instanceof Error ? err : new Error(String(err)), ref);
        }),
    );
  }

  start(): void {
    for (const w of this.#watches) w.start();
  }

  /**
   * Hands every current CR that `which` picks to the sink again, in the same queue as the
   * watch events (e.g. when what decides whether a CR applies here changed: the node's
   * labels for spec.nodeSelector). The sink sees an apply of the CR as it is now.
   */
  reapply(which: (o: K8sObject) => boolean): void {
    for (const { kind, watch } of this.watches) {
      const apply = this.#applyOf.get(kind)!;
      for (const o of watch.items.values()) if (which(o)) apply(o);
    }
  }

  /** Resolves when both kinds are listed and every sink call so far has finished. */
  async synced(): Promise<void> {
    await Promise.all(this.#watches.map((w) => w.synced));
    await this.#queue;
  }

  /** Waits for the sink calls queued so far. */
  idle(): Promise<void> {
    return this.#queue;
  }

  async stop(): Promise<void> {
    await Promise.all(this.#watches.map((w) => w.stop()));
    await this.#queue;
  }
}
