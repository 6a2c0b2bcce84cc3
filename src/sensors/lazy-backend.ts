// What the generic and socket backends (generic-backend.ts, sock-backend.ts) share: one
// sensor, created and loaded when the first policy needs it (its maps cost memory, and most
// agents run file rules only), the applied policies with their hooks by index to read events
// back, and the match listeners. A backend compiles and applies policies its own way and
// turns its sensor's records into GenericMatch.
import type { TracingPolicy } from "../policy/types.ts";
import type { GenericMatch } from "./manager.ts";
import type { ResolvedHook } from "./resolve.ts";

/** The part of a sensor the backend drives. */
export interface LazySensor<E> {
  load(): void;
  onEvent(cb: (e: E) => void): () => void;
  policyIds(): string[];
  remove(policyId: string): void;
  close(opts?: { keepPinned?: boolean }): void;
}

export abstract class LazySensorBackend<S extends LazySensor<E>, E> {
  protected readonly policies = new Map<string, { policy: TracingPolicy; hooks: Map<number, ResolvedHook> }>();
  readonly #listeners = new Set<(m: GenericMatch) => void>();
  #sensor: S | undefined;

  constructor(private readonly create: () => S) {}

  get sensor(): S | undefined {
    return this.#sensor;
  }

  /** The sensor, created, loaded and subscribed on first use. */
  protected loaded(): S {
    if (this.#sensor === undefined) {
      const s = this.create();
      s.load();
      s.onEvent((e) => this.dispatch(e));
      this.#sensor = s;
    }
    return this.#sensor;
  }

  /** Remembers an applied policy's hooks by index, for dispatch(). */
  protected applied(policyId: string, policy: TracingPolicy, hooks: readonly ResolvedHook[]): void {
    this.policies.set(policyId, { policy, hooks: new Map(hooks.map((h) => [h.index, h])) });
  }

  /** One sensor record as a match for every listener (or none, for a policy removed meanwhile). */
  protected abstract dispatch(e: E): void;

  protected emit(m: GenericMatch): void {
    for (const l of this.#listeners) l(m);
  }

  remove(policyId: string): void {
    this.policies.delete(policyId);
    if (this.#sensor?.policyIds().includes(policyId)) this.#sensor.remove(policyId);
  }

  onMatch(cb: (m: GenericMatch) => void): () => void {
    this.#listeners.add(cb);
    return () => this.#listeners.delete(cb);
  }

  /** keepPinned: what the sensor has pinned stays attached (--keep-sensors-on-exit). */
  close(opts: { keepPinned?: boolean } = {}): void {
    this.#sensor?.close(opts);
    this.#sensor = undefined;
  }
}
