// The agent's Kubernetes side (--enable-k8s-api): this node's pods feed the workload
// registry (pod metadata for scopes and events) and the TracingPolicy /
// TracingPolicyNamespaced resources go into the policy store.
//
// Start-up follows Tetragon: the configuration (kubeconfig or in-cluster) must load, and the
// API server must answer within --k8s-controlplane-retry attempts, or the agent refuses to
// start, saying what failed (Tetragon returns the error from its start the same way; in a
// DaemonSet the kubelet restarts the pod). Once started, a lost API server never stops
// enforcement: every watch retries with backoff, the last known pods and policies stay
// applied, and /v1/status shows each watch's state and its last error.
import { K8sApiError, K8sClient, ListWatch, type K8sObject } from "../workloads/k8s/client.ts";
import { inClusterConfig, K8sConfigError, kubeconfigConfig, type K8sConfig } from "../workloads/k8s/config.ts";
import { PodCache } from "../workloads/k8s/pods.ts";
import { cgroupTreeScan, PodWorkloadFeed, type CgroupScan } from "../workloads/k8s/pod-feed.ts";
import { CRD_GROUP, CRD_VERSION, TracingPolicyWatcher, type PolicyRef, type PolicySink } from "../workloads/k8s/policies.ts";
import { policyStoreSink } from "../workloads/k8s/store-sink.ts";
import { cgroupV2Mount } from "../workloads/cgroup-identity.ts";
import { LabelSelectorError, matchesLabels, parseLabelSelector } from "../workloads/label-selector.ts";
import type { WorkloadRegistry } from "../workloads/registry.ts";
import { PolicyInvalidError, type PolicyStore } from "./policy-store.ts";

/** Why the Kubernetes side could not start; the agent reports it as its start error. */
export class KubernetesStartError extends Error {
  override name = "KubernetesStartError";
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}

export interface KubernetesWatchStatus {
  resource: string;
  path: string;
  /** The first list has been applied. */
  synced: boolean;
  /** A watch stream is open now. */
  watching: boolean;
  resource_version: string;
  lists: number;
  /** Lists after a 410 Gone (the watch's resourceVersion had been compacted away). */
  relists: number;
  watches: number;
  bookmarks: number;
  errors: number;
  last_error?: string;
  last_error_at?: string;
}

/**
 * One TracingPolicy CR as the agent took it: applied; refused (error, with the reason); or
 * skipped (its spec.nodeSelector does not select this node, as Tetragon's state "skipped").
 */
export interface KubernetesPolicyStatus {
  kind: string;
  namespace?: string;
  name: string;
  state: "applied" | "error" | "skipped";
  error?: string;
  /** Why it is skipped. */
  reason?: string;
}

/** GET /v1/status `kubernetes`. */
export interface KubernetesStatus {
  /** Where the configuration came from ("in-cluster", "kubeconfig FILE context C"). */
  config: string;
  server: string;
  node: string;
  /** "connecting" until the API server has answered at start (the agent attaches nothing before). */
  state: "connecting" | "connected";
  /** Attempts made to reach the API server at start, and the last failure while connecting. */
  connect_attempts: number;
  connect_error?: string;
  watches: KubernetesWatchStatus[];
  pods: number;
  /** Containers of this node's pods in the workload registry (with their cgroup ids). */
  containers: number;
  /** Running containers whose cgroup is not found yet ("namespace/pod/container (id)"). */
  pending_containers: string[];
  /** Only with the CR watch on. */
  policies?: KubernetesPolicyStatus[];
  /**
   * This node's labels (for spec.nodeSelector), with the CR watch on; absent while they
   * cannot be read, and then nodeSelector fails open: the CR is applied (as Tetragon).
   */
  node_labels?: Record<string, string>;
}

export interface KubernetesOptions {
  nodeName: string;
  /** Watch the TracingPolicy CRs (--enable-tracing-policy-crd). */
  policies: boolean;
  /** Attempts to reach the API server at start; negative: until it answers. */
  attempts: number;
  registry: WorkloadRegistry;
  store: Pick<PolicyStore, "add" | "delete" | "get">;
  log(msg: string): void;
  warn(msg: string): void;
  /** Tests: the delay before the second attempt (doubles up to 30 s). Default 1 s. */
  retryDelayMs?: number;
  /** Tests: watch backoff. */
  backoff?: { initialMs: number; maxMs: number };
  /** Tests: where container cgroups are found (default: the cgroup v2 tree). */
  scan?: CgroupScan;
}

/** The configuration: a kubeconfig when given, else the pod's service account (as Tetragon). */
export function loadKubernetesConfig(kubeconfigPath: string | undefined): K8sConfig {
  try {
    return kubeconfigPath !== undefined ? kubeconfigConfig(kubeconfigPath) : inClusterConfig();
  } catch (err) {
    if (err instanceof K8sConfigError) throw new KubernetesStartError(`${kubeconfigPath !== undefined ? "--k8s-kubeconfig-path " : "--enable-k8s-api: "}${err.message}`, { cause: err });
    throw err;
  }
}

/**
 * Why the store refused a CR, in the CR's own terms: the field path and the message of each
 * problem. The line:column the store's parser reports are positions in the JSON text made
 * from the CR, which the user never sees, so they are left out.
 */
function reasonOf(err: unknown): string {
  if (err instanceof PolicyInvalidError) return err.errors.map((d) => `${d.path !== undefined ? `${d.path}: ` : ""}${oneLine(d.message)}`).join("; ");
  return oneLine(err instanceof Error ? err.message : String(err));
}

const oneLine = (s: string): string => s.split("\n").map((l) => l.trim()).filter(Boolean).join("; ");

function label(ref: PolicyRef): string {
  return `${ref.kind} ${ref.namespace !== undefined ? `${ref.namespace}/` : ""}${ref.name}`;
}

/** What a failed request means for someone setting ward up. */
function explain(err: unknown, server: string, what: string): string {
  if (err instanceof K8sApiError) {
    if (err.status === 0) return `cannot reach the API server ${server}: ${err.message}`;
    if (err.status === 401) return `the API server ${server} refused the credentials (401): ${err.message}`;
    if (err.status === 403) return `not allowed to list ${what} (403; is deploy/rbac.yaml applied?): ${err.message}`;
    if (err.status === 404 && what !== "pods") return `${what} not found (404): the TracingPolicy CRDs are not installed (kubectl apply -f deploy/crds.yaml), or run with --enable-tracing-policy-crd=false`;
    return err.message;
  }
  return (err as Error).message;
}

export class KubernetesWatch {
  readonly client: K8sClient;
  readonly pods: PodCache;
  readonly feed: PodWorkloadFeed;
  readonly policies: TracingPolicyWatcher | undefined;
  readonly #crs = new Map<string, KubernetesPolicyStatus>();
  /** The policy text each CR was last applied with (by source), so an unchanged re-apply is a no-op. */
  readonly #appliedText = new Map<string, string>();
  /** This node (metadata.name=NODE), for spec.nodeSelector; only with the CR watch. */
  readonly node: ListWatch<K8sObject> | undefined;
  #nodeLabels: Record<string, string> | undefined;
  readonly #abort = new AbortController();
  #connected = false;
  #attempts = 0;
  #connectError: string | undefined;

  constructor(
    readonly config: K8sConfig,
    private readonly opts: KubernetesOptions,
  ) {
    this.client = new K8sClient(config);
    const backoff = opts.backoff ? { backoff: opts.backoff } : {};
    const podsWarn = repeatLimited(opts.warn);
    this.pods = new PodCache(this.client, { nodeName: opts.nodeName, ...backoff, onError: (e) => podsWarn(`kubernetes: pods: ${oneLine(e.message)}`) });
    this.feed = new PodWorkloadFeed(this.pods, opts.registry, { scan: opts.scan ?? cgroupTreeScan(cgroupV2Mount()), log: opts.warn });
    if (opts.policies) {
      let lastNodeError: string | undefined;
      const crWarn = repeatLimited(opts.warn);
      const nodeChanged = (o: K8sObject | undefined) => {
        const labels = o?.metadata?.labels;
        const before = JSON.stringify(this.#nodeLabels);
        this.#nodeLabels = labels !== undefined ? { ...labels } : o !== undefined ? {} : undefined;
        // CRs with a nodeSelector are judged again (in the CR queue, so in order with their events).
        if (JSON.stringify(this.#nodeLabels) !== before) this.policies?.reapply((cr) => nodeSelectorOf(cr) !== undefined);
      };
      this.node = new ListWatch<K8sObject>(this.client, { path: "/api/v1/nodes", query: { fieldSelector: `metadata.name=${opts.nodeName}` }, ...backoff }, {
        added: nodeChanged,
        modified: nodeChanged,
        deleted: () => nodeChanged(undefined),
        error: (e) => {
          // Once per distinct failure: a cluster whose RBAC predates the nodes rule would
          // otherwise log this at every retry.
          const msg = oneLine(e.message);
          if (msg === lastNodeError) return;
          lastNodeError = msg;
          opts.warn(`kubernetes: node ${opts.nodeName}: its labels are unknown, so CRs with a spec.nodeSelector are applied here (fails open, as in Tetragon): ${msg}`);
        },
      });
      this.policies = new TracingPolicyWatcher(this.client, this.#sink(policyStoreSink(opts.store)), {
        ...backoff,
        // A CR's refusal is news each time; a watch failing while the API server is away is
        // logged once per distinct message a minute.
        onError: (err, ref) => (ref !== undefined ? opts.warn(`kubernetes: ${label(ref)}: not applied: ${oneLine(err.message)}`) : crWarn(`kubernetes: ${oneLine(err.message)}`)),
      });
    }
  }

  /** The sink over the store, recording each CR's outcome for status. */
  #sink(inner: PolicySink): PolicySink {
    return {
      apply: async (doc, ref, source) => {
        const entry = { kind: ref.kind, ...(ref.namespace !== undefined ? { namespace: ref.namespace } : {}), name: ref.name };
        const skip = this.#skipped(doc);
        if (skip !== undefined) {
          const was = this.#crs.get(source)?.state;
          if (this.opts.store.get(ref.name)?.source === source) await inner.remove(ref, source);
          this.#appliedText.delete(source);
          this.#crs.set(source, { ...entry, state: "skipped", reason: skip });
          if (was !== "skipped") this.opts.log(`kubernetes: ${label(ref)} skipped: ${skip}`);
          return;
        }
        const text = JSON.stringify(doc);
        // Judged again and unchanged (a node label changed that it does not depend on): keep it.
        if (this.#appliedText.get(source) === text && this.opts.store.get(ref.name)?.source === source) return;
        try {
          await inner.apply(doc, ref, source);
        } catch (err) {
          // A refused change of a CR that was applied before leaves that version in force.
          const kept = this.opts.store.get(ref.name)?.source === source ? " (the previous version stays applied)" : "";
          const error = `${reasonOf(err)}${kept}`;
          this.#crs.set(source, { ...entry, state: "error", error });
          throw new Error(error, { cause: err });
        }
        this.#appliedText.set(source, text);
        this.#crs.set(source, { ...entry, state: "applied" });
        this.opts.log(`kubernetes: ${label(ref)} applied`);
      },
      remove: async (ref, source) => {
        const was = this.#crs.get(source);
        this.#crs.delete(source);
        this.#appliedText.delete(source);
        await inner.remove(ref, source);
        if (was?.state === "applied") this.opts.log(`kubernetes: ${label(ref)} removed`);
      },
    };
  }

  /**
   * Why a CR does not apply on this node: its spec.nodeSelector does not match the node's
   * labels. Undefined when it applies: no selector, the labels unknown (fail open, as
   * Tetragon), or a selector that does not parse (the store then refuses the CR and says why).
   */
  #skipped(doc: K8sObject): string | undefined {
    const raw = nodeSelectorOf(doc);
    if (raw === undefined || this.#nodeLabels === undefined) return undefined;
    let sel;
    try {
      sel = parseLabelSelector(raw, "spec.nodeSelector");
    } catch (err) {
      if (err instanceof LabelSelectorError) return undefined;
      throw err;
    }
    return matchesLabels(sel, this.#nodeLabels) ? undefined : `spec.nodeSelector does not select node ${this.opts.nodeName}`;
  }

  /**
   * Checks the API server answers for every collection watched (pods of this node, both CR
   * kinds), trying `attempts` times with backoff. Throws KubernetesStartError naming the
   * server, the collection and the reason.
   */
  async connect(): Promise<void> {
    const paths: [string, string][] = [["pods", `/api/v1/pods?${new URLSearchParams({ fieldSelector: `spec.nodeName=${this.opts.nodeName}`, limit: "1" })}`]];
    if (this.opts.policies) {
      for (const plural of ["tracingpolicies", "tracingpoliciesnamespaced"]) paths.push([`${plural}.${CRD_GROUP}`, `/apis/${CRD_GROUP}/${CRD_VERSION}/${plural}?limit=1`]);
    }
    const max = this.opts.attempts < 0 ? Infinity : this.opts.attempts;
    let delay = this.opts.retryDelayMs ?? 1000;
    for (let attempt = 1; ; attempt++) {
      this.#attempts = attempt;
      let failure: string | undefined;
      for (const [what, path] of paths) {
        try {
          await this.client.getJson(path, this.#abort.signal);
        } catch (err) {
          if (this.#abort.signal.aborted) throw new KubernetesStartError("kubernetes: stopped while connecting");
          failure = explain(err, this.config.server, what);
          break;
        }
      }
      this.#connectError = failure;
      if (failure === undefined) {
        this.#connected = true;
        this.opts.log(`kubernetes: API server ${this.config.server} (${this.config.source}) answers; watching pods of node ${this.opts.nodeName}${this.opts.policies ? " and TracingPolicy resources" : ""}`);
        return;
      }
      if (attempt >= max) {
        throw new KubernetesStartError(
          `kubernetes (${this.config.source}): ${failure} (${attempt} attempt${attempt === 1 ? "" : "s"}; --k8s-controlplane-retry N tries longer, -1 until it answers)`,
        );
      }
      this.opts.warn(`kubernetes: attempt ${attempt}${Number.isFinite(max) ? ` of ${max}` : ""}: ${failure}; retrying in ${(delay / 1000).toFixed(1)} s`);
      await abortableSleep(delay, this.#abort.signal);
      if (this.#abort.signal.aborted) throw new KubernetesStartError("kubernetes: stopped while connecting");
      delay = Math.min(30_000, delay * 2);
    }
  }

  /** Starts the pod watch; resolves once the first list is in the registry. */
  async startPods(): Promise<void> {
    this.pods.start();
    await this.#firstSync("pods", this.pods.watch);
    await this.feed.start();
    const st = this.feed.stats;
    this.opts.log(`kubernetes: ${this.pods.pods().length} pod(s) on node ${this.opts.nodeName}, ${st.workloads} container(s) in the workload registry${st.pending > 0 ? `, ${st.pending} waiting for their cgroup` : ""}`);
  }

  /** Starts the CR watch (after the policy store has its backend); resolves once both kinds are listed and applied. */
  async startPolicies(): Promise<void> {
    const w = this.policies;
    if (w === undefined) return;
    // The node's labels first, so a CR with a nodeSelector is judged on them from its first
    // apply; if they cannot be read (no RBAC for nodes), nodeSelector fails open.
    await this.#nodeFirst();
    w.start();
    for (const { plural, watch } of w.watches) await this.#firstSync(`${plural}.${CRD_GROUP}`, watch);
    await w.synced();
    const crs = [...this.#crs.values()];
    const refused = crs.filter((c) => c.state === "error").length;
    this.opts.log(`kubernetes: ${crs.length - refused} TracingPolicy resource(s) applied${refused > 0 ? `, ${refused} refused (see ward status)` : ""}`);
  }

  /** Starts the node watch; resolves at its first list or its first failure. */
  async #nodeFirst(): Promise<void> {
    const n = this.node;
    if (n === undefined) return;
    n.start();
    while (!n.isSynced && n.stats.errors === 0 && !this.#abort.signal.aborted) await Bun.sleep(20);
    if (n.isSynced && n.items.size === 0) this.opts.warn(`kubernetes: node ${this.opts.nodeName} not found, so its labels are unknown: CRs with a spec.nodeSelector are applied here (nodeSelector fails open, as in Tetragon); is --node-name the node's name?`);
  }

  /** Waits for a watch's first list; as many failed attempts as connect() allows are a start error. */
  async #firstSync(what: string, lw: ListWatch<K8sObject>): Promise<void> {
    const max = this.opts.attempts < 0 ? Infinity : this.opts.attempts;
    const errorsBefore = lw.stats.errors;
    while (!lw.isSynced) {
      if (this.#abort.signal.aborted) throw new KubernetesStartError("kubernetes: stopped while listing");
      if (lw.stats.errors - errorsBefore >= max) throw new KubernetesStartError(`kubernetes: list ${what}: ${lw.lastError?.message ?? "failed"}`);
      await Bun.sleep(20);
    }
  }

  status(): KubernetesStatus {
    const all = [
      { resource: "pods", watch: this.pods.watch },
      ...(this.policies?.watches.map((w) => ({ resource: `${w.plural}.${CRD_GROUP}`, watch: w.watch })) ?? []),
      ...(this.node !== undefined ? [{ resource: "nodes", watch: this.node }] : []),
    ];
    const watches: KubernetesWatchStatus[] = all.map(({ resource, watch }) => ({
      resource,
      path: watch.path,
      synced: watch.isSynced,
      watching: watch.watching,
      resource_version: watch.resourceVersion,
      lists: watch.stats.lists,
      relists: watch.stats.gone,
      watches: watch.stats.watches,
      bookmarks: watch.stats.bookmarks,
      errors: watch.stats.errors,
      ...(watch.lastError !== undefined ? { last_error: oneLine(watch.lastError.message), last_error_at: watch.lastError.at } : {}),
    }));
    const out: KubernetesStatus = {
      config: this.config.source,
      server: this.config.server,
      node: this.opts.nodeName,
      state: this.#connected ? "connected" : "connecting",
      connect_attempts: this.#attempts,
      ...(this.#connectError !== undefined ? { connect_error: this.#connectError } : {}),
      watches,
      pods: this.pods.pods().length,
      containers: this.feed.stats.workloads,
      pending_containers: this.feed.pending().slice(0, 20),
    };
    if (this.#nodeLabels !== undefined && this.node?.items.size) out.node_labels = { ...this.#nodeLabels };
    if (this.policies !== undefined) out.policies = [...this.#crs.values()].sort((a, b) => `${a.kind}/${a.namespace ?? ""}/${a.name}`.localeCompare(`${b.kind}/${b.namespace ?? ""}/${b.name}`));
    return out;
  }

  /** Ends a start in progress (connect() or a first list throws KubernetesStartError). */
  interrupt(): void {
    this.#abort.abort();
  }

  /** Ends every watch (CRs first, so no policy change races the store's detach) and the feed. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.policies?.stop();
    await this.node?.stop();
    await this.pods.stop();
    await this.feed.stop();
  }
}

function abortableSleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/** spec.nodeSelector of a CR, when it has one. */
function nodeSelectorOf(o: K8sObject): unknown {
  const spec = o.spec;
  if (typeof spec !== "object" || spec === null) return undefined;
  const sel = (spec as Record<string, unknown>).nodeSelector;
  return sel === null ? undefined : sel;
}

/**
 * A warn that drops a message it let through less than a minute ago: a watch retrying with
 * backoff while the API server is away fails the same way every few seconds. Every failure
 * is still counted in the watch's status.
 */
function repeatLimited(warn: (msg: string) => void, windowMs = 60_000): (msg: string) => void {
  const seen = new Map<string, number>();
  return (msg) => {
    const now = Date.now();
    const at = seen.get(msg);
    if (at !== undefined && now - at < windowMs) return;
    // Bounded: messages carry resourceVersions and ids, so they need not repeat exactly.
    if (seen.size >= 64) seen.clear();
    seen.set(msg, now);
    warn(msg);
  };
}
