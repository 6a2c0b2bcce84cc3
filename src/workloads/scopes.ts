// Workload scopes over the registry: for every applied scoped policy, the set of registry
// workloads its scope selects, kept in the kernel (scope-maps.ts) as workloads come and go.
// The registry calls the subscriber on each upsert/remove and settles only once it
// returned, so when an OCI hook's upsert resolves, the kernel already filters on the new
// container's cgroup.
import { describeScope, isScoped, workloadInScope, type PolicyScope } from "./k8s/scope.ts";
import type { Workload, WorkloadChange, WorkloadRegistry } from "./registry.ts";
import { cgroupLevel, ScopeMapsError, type ScopeMaps } from "./scope-maps.ts";

export class ScopeError extends Error {
  override name = "ScopeError";
}

/** What status and explain show of a policy's scope. */
export interface ScopeReport {
  /** "namespace vendor-app; podSelector app=nginx" */
  scope: string;
  /** The kernel scope id the policy's hooks carry. */
  id: number;
  /** Workloads in scope now (their cgroups, and every cgroup below them, are enforced). */
  members: number;
  /** Keys of up to 20 members. */
  workloads: string[];
  /** Set while the scope selects nothing: the policy enforces nothing. */
  note?: string;
}

interface Tracked {
  id: number;
  scope: PolicyScope;
  members: Workload[];
  /** The last error writing the kernel set (a member too deep), until a write succeeds. */
  error?: string;
}

export class WorkloadScopes {
  readonly #tracked = new Map<string, Tracked>();
  #unsubscribe: (() => void) | undefined;
  #closed = false;

  constructor(
    readonly registry: WorkloadRegistry,
    readonly maps: ScopeMaps,
  ) {}

  /** Subscribes to the registry (the scopes follow every later change). */
  async start(): Promise<void> {
    this.#unsubscribe = await this.registry.subscribe((c) => this.#changed(c));
  }

  /**
   * Gives a policy its kernel scope: a fresh id whose member set is written before this
   * returns. Throws ScopeError for a scope the kernel set cannot express.
   */
  track(policy: string, scope: PolicyScope, opts: { id?: number } = {}): number {
    if (this.#closed) throw new ScopeError("workload scopes closed");
    if (this.#tracked.has(policy)) throw new ScopeError(`policy ${policy} has a scope already`);
    if (!isScoped(scope)) return 0;
    if (scope.hostSelector !== undefined) {
      // Host processes are "not in any container": the complement of a set, which the
      // kernel's include set cannot hold. Refused rather than widened or narrowed silently.
      throw new ScopeError("spec.hostSelector: cannot be enforced as a kernel scope (host processes are every cgroup that is not a container's, and the scope is a set of included cgroups); drop hostSelector to apply the policy to the selected workloads only, or drop every selector to apply it everywhere");
    }
    let id: number;
    try {
      // A restarted agent takes back the id its pinned programs carry (ScopeMaps.fromPins).
      id = opts.id !== undefined ? this.maps.adopt(opts.id) : this.maps.allocate();
    } catch (e) {
      throw new ScopeError((e as Error).message, { cause: e });
    }
    const t: Tracked = { id, scope, members: [] };
    try {
      this.#write(t, true);
    } catch (e) {
      this.maps.release(id);
      throw e;
    }
    this.#tracked.set(policy, t);
    return id;
  }

  /** Drops a policy's scope: its kernel set is emptied and the id freed. */
  untrack(policy: string): void {
    const t = this.#tracked.get(policy);
    if (t === undefined) return;
    this.#tracked.delete(policy);
    this.maps.release(t.id);
  }

  report(policy: string): ScopeReport | undefined {
    const t = this.#tracked.get(policy);
    if (t === undefined) return undefined;
    const r: ScopeReport = { scope: describeScope(t.scope), id: t.id, members: t.members.length, workloads: t.members.slice(0, 20).map((w) => w.key) };
    if (t.error !== undefined) r.note = `kernel scope not updated: ${t.error}`;
    else if (t.members.length === 0) r.note = "no workload is in scope yet: the policy enforces nothing until one is";
    return r;
  }

  /** Workloads in a policy's scope now. */
  members(policy: string): Workload[] {
    return [...(this.#tracked.get(policy)?.members ?? [])];
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unsubscribe?.();
    for (const p of [...this.#tracked.keys()]) this.untrack(p);
  }

  /** Recomputes every scope; throws (so the registry's upsert rejects) when a kernel write failed. */
  #changed(_c: WorkloadChange): void {
    const errors: string[] = [];
    for (const [name, t] of this.#tracked) {
      try {
        this.#write(t, false);
      } catch (e) {
        errors.push(`policy ${name}: ${(e as Error).message}`);
      }
    }
    if (errors.length > 0) throw new ScopeError(`apply workload change to scopes: ${errors.join("; ")}`);
  }

  #write(t: Tracked, first: boolean): void {
    const members = this.registry.all().filter((w) => workloadInScope(t.scope, w));
    try {
      this.maps.set(t.id, members.map((w) => ({ cgroupId: w.cgroupId, level: cgroupLevel(w.cgroupPath) })));
    } catch (e) {
      if (!(e instanceof ScopeMapsError)) throw e;
      // At apply the policy is refused; later the old set stays and status says why.
      if (first) throw new ScopeError(e.message, { cause: e });
      t.error = e.message;
      throw e;
    }
    t.members = members;
    delete t.error;
  }
}
