// Adapts the process sensor (src/sensors/process.ts: fork/exec/exit tracking, the default
// set's only sensor) to the agent's Sensor interface, and its counters to the agent's names.
import { startProcessSensor, type PipelineCounters, type ProcessSensor as KernelProcessSensor } from "../sensors/process.ts";
import type { SensorContext } from "./agent.ts";
import { join } from "node:path";
import type { Sensor, SensorStatus, StopOptions } from "./sensor.ts";
import { WorkloadIdentity } from "../workloads/identity.ts";
import { cgroupV2Mount } from "../workloads/cgroup-identity.ts";

/** The agent's counter names for the pipeline's; lost_<reason> feed ward_events_lost_total. */
export function flattenCounters(c: PipelineCounters): Record<string, number> {
  return {
    records: c.records,
    exec: c.exec,
    clone: c.clone,
    exit: c.exit,
    lost_ringbuf_exec: c.kernelLost.exec,
    lost_ringbuf_clone: c.kernelLost.clone,
    lost_ringbuf_exit: c.kernelLost.exit,
    lost_decode_error: c.decodeErrors,
    lost_delivery_error: c.deliveryErrors,
    process_cache_size: c.cacheSize,
    process_cache_live: c.cacheLive,
    process_cache_evictions: c.cacheEvictions,
    process_cache_misses: c.cacheMisses,
  };
}

export type StartProcessSensor = typeof startProcessSensor;

export class ProcessSensor implements Sensor {
  readonly name = "process";
  #sensor: KernelProcessSensor | undefined;
  #state: SensorStatus["state"] = "stopped";
  #error: string | undefined;
  #identity: WorkloadIdentity | undefined;

  constructor(
    private readonly ctx: SensorContext,
    private readonly startFn: StartProcessSensor = startProcessSensor,
  ) {}

  /** The running kernel sensor (its process cache and event encoding), once started. */
  get kernel(): KernelProcessSensor | undefined {
    return this.#sensor;
  }

  async start(): Promise<void> {
    this.#state = "starting";
    try {
      // Every process block (these events' and the policies') gets `docker`/`pod` from the registry.
      this.#identity = new WorkloadIdentity(this.ctx.workloads, cgroupV2Mount());
      await this.#identity.start();
      // What an agent run with --keep-sensors-on-exit pinned is taken over, not loaded again:
      // its programs never stopped, and the pinned policies read its process map.
      const shared = this.ctx.pins.previous?.shared.process;
      this.#sensor = await this.startFn({
        nodeName: this.ctx.nodeName,
        ...(shared !== undefined ? { persist: { dir: join(this.ctx.bpfDir, shared), adopt: true } } : {}),
        onEvent: (ev) => this.ctx.publishEvent(ev),
        log: (msg) => this.ctx.log(`process sensor: ${msg}`),
        workloads: this.#identity,
      });
      this.#state = "running";
    } catch (err) {
      this.#state = "error";
      this.#error = err instanceof Error ? err.message : String(err);
      throw err;
    }
  }

  /**
   * stop detaches and drains. keepAttached (--keep-sensors-on-exit): when pinned (some policy
   * is pinned, and its matchBinaries read the process map) the programs stay attached.
   */
  async stop(opts: StopOptions = {}): Promise<void> {
    const s = this.#sensor;
    this.#sensor = undefined;
    this.#identity?.close();
    this.#identity = undefined;
    if (!s) return;
    this.#state = "stopping";
    await s.stop({ keepPinned: opts.keepAttached === true });
    this.#state = "stopped";
  }

  /** The pins the policy manager asks for while it has pinned policies. */
  readonly pins = {
    pin: (dir: string): void => this.#sensor?.pin(dir),
    unpin: (): void => this.#sensor?.unpin(),
  };

  status(): SensorStatus {
    const s = this.#sensor;
    return {
      state: this.#state,
      ...(this.#error ? { error: this.#error } : {}),
      ...(s ? { counters: flattenCounters(s.counters()) } : {}),
    };
  }
}
