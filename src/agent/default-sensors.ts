// The embedded default set: process lifecycle observability (exec, exit), no enforcement.
import type { SensorContext } from "./agent.ts";
import { ProcessSensor } from "./process-sensor.ts";
import type { Sensor } from "./sensor.ts";

export function defaultSensors(ctx: SensorContext): Sensor[] {
  return [new ProcessSensor(ctx)];
}
