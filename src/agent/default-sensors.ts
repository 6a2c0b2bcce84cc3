// The embedded default set: process lifecycle observability (exec, exit), no enforcement.
import type { SensorContext } from "./agent.ts";
import { ProcessSensor, type StartProcessSensor } from "./process-sensor.ts";
import type { Sensor } from "./sensor.ts";

/** The process sensor module, loaded once; its absence is reported, not hidden. */
async function loadStartProcessSensor(): Promise<StartProcessSensor> {
  // A computed specifier keeps the type checker from requiring the module while it is
  // being written; once src/sensors/process.ts lands this becomes a static import.
  const spec = ["..", "sensors", "process.ts"].join("/");
  let mod: Record<string, unknown>;
  try {
    mod = (await import(spec)) as Record<string, unknown>;
  } catch (err) {
    throw new Error(`process sensor unavailable (src/sensors/process.ts): ${(err as Error).message}`);
  }
  const fn = mod.startProcessSensor;
  if (typeof fn !== "function") throw new Error("src/sensors/process.ts does not export startProcessSensor");
  return fn as StartProcessSensor;
}

/** defaultSensors builds the default set. The module is resolved lazily, inside start(). */
export function defaultSensors(ctx: SensorContext): Sensor[] {
  const lazy: StartProcessSensor = async (opts) => (await loadStartProcessSensor())(opts);
  return [new ProcessSensor(lazy, ctx)];
}
