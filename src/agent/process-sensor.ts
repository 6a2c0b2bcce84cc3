// Adapts the process sensor (src/sensors/process.ts: exec/exit/clone tracking, the
// default set's only sensor) to the agent's Sensor interface.
import type { EventJson } from "../events/filter.ts";
import type { Sensor, SensorStatus, StopOptions } from "./sensor.ts";
import type { SensorContext } from "./agent.ts";

/** The shape the process sensor module exports (startProcessSensor). */
export interface ProcessSensorHandle {
  stop(opts?: { keepAttached?: boolean }): Promise<void> | void;
  counters(): Record<string, number>;
}
export type StartProcessSensor = (opts: {
  nodeName: string;
  bpfDir: string;
  onEvent: (ev: EventJson) => void;
}) => Promise<ProcessSensorHandle> | ProcessSensorHandle;

export class ProcessSensor implements Sensor {
  readonly name = "process";
  #handle: ProcessSensorHandle | undefined;
  #state: SensorStatus["state"] = "stopped";
  #error: string | undefined;

  constructor(
    private readonly startFn: StartProcessSensor,
    private readonly ctx: SensorContext,
  ) {}

  async start(): Promise<void> {
    this.#state = "starting";
    try {
      this.#handle = await this.startFn({ nodeName: this.ctx.nodeName, bpfDir: this.ctx.bpfDir, onEvent: (ev) => this.ctx.publish(ev) });
      this.#state = "running";
    } catch (err) {
      this.#state = "error";
      this.#error = err instanceof Error ? err.message : String(err);
      throw err;
    }
  }

  async stop(opts: StopOptions = {}): Promise<void> {
    const h = this.#handle;
    this.#handle = undefined;
    if (!h) return;
    this.#state = "stopping";
    await h.stop({ keepAttached: opts.keepAttached });
    this.#state = "stopped";
  }

  status(): SensorStatus {
    let counters: Record<string, number> | undefined;
    try {
      counters = this.#handle?.counters();
    } catch {
      counters = undefined;
    }
    return { state: this.#state, ...(this.#error ? { error: this.#error } : {}), ...(counters ? { counters } : {}) };
  }
}
