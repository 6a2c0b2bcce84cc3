// Adapts the process sensor (src/sensors/process.ts: fork/exec/exit tracking, the default
// set's only sensor) to the agent's Sensor interface, and its counters to the agent's names.
import { startProcessSensor, type PipelineCounters, type ProcessSensor as KernelProcessSensor } from "../sensors/process.ts";
import type { SensorContext } from "./agent.ts";
import type { Sensor, SensorStatus } from "./sensor.ts";
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
      this.#sensor = await this.startFn({
        nodeName: this.ctx.nodeName,
        bpfDir: this.ctx.bpfDir,
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
   * stop detaches and drains. The process sensor only observes, so there is nothing worth
   * keeping attached without an agent to read it; --keep-sensors-on-exit does not apply to it.
   */
  async stop(): Promise<void> {
    const s = this.#sensor;
    this.#sensor = undefined;
    this.#identity?.close();
    this.#identity = undefined;
    if (!s) return;
    this.#state = "stopping";
    await s.stop();
    this.#state = "stopped";
  }

  status(): SensorStatus {
    const s = this.#sensor;
    return {
      state: this.#state,
      ...(this.#error ? { error: this.#error } : {}),
      ...(s ? { counters: flattenCounters(s.counters()) } : {}),
    };
  }
}
