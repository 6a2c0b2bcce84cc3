// How `ward events` and the agent's stdout print one event: the export line unchanged (json),
// or tetra's one-line compact form.
import type { EventJson } from "../../events/filter.ts";

export type OutputFormat = "json" | "compact";

/** Returns the text to print for an event, or undefined to print nothing. */
export type LineFormatter = (ev: EventJson, line: string) => string | undefined;

export function lineFormatter(output: OutputFormat): LineFormatter {
  if (output === "json") return (_ev, line) => line;
  throw new Error("compact output is not built yet (it comes with the export module)");
}
