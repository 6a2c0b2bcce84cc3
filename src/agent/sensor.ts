// The agent's view of a sensor: something that attaches to the kernel, produces events and
// can say how it is doing. Concrete sensors (src/sensors/*) are wrapped to this shape by
// adapters in this folder, so the agent's lifecycle code does not depend on their internals.

export type SensorState = "stopped" | "starting" | "running" | "stopping" | "error";

export interface SensorStatus {
  state: SensorState;
  /** Why the sensor is in state "error". */
  error?: string;
  /** Monotonic counters the sensor keeps (records read, ring buffer losses, cache size...). */
  counters?: Record<string, number>;
}

export interface StopOptions {
  /**
   * Leave pinned programs attached (--keep-sensors-on-exit): enforcement outlives the agent,
   * and a restarted agent adopts the pins.
   */
  keepAttached?: boolean;
}

/**
 * A Sensor is started once and stopped once. start() resolves only when every program the
 * sensor needs is attached (the agent is ready when all sensors are), and rejects, having
 * detached whatever it attached, when it cannot get there. stop() is idempotent.
 */
export interface Sensor {
  readonly name: string;
  start(): Promise<void>;
  stop(opts?: StopOptions): Promise<void>;
  status(): SensorStatus;
}
