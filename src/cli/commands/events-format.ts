// How `ward events` prints one event: the export line unchanged (json), or tetra's
// one-line compact form (src/export/compact.ts).
import { compactLine } from "../../export/compact.ts";
import type { EventJson } from "../../events/filter.ts";

export type OutputFormat = "json" | "compact";

/**
 * Returns the text to print for an event, or undefined to print nothing. `ev` is the parsed
 * line when the caller already has it; JSON output never needs to parse.
 */
export type LineFormatter = (ev: EventJson | undefined, line: string) => string | undefined;

export function lineFormatter(output: OutputFormat): LineFormatter {
  return output === "json" ? (_ev, line) => line : (ev, line) => compactLine(ev ?? (JSON.parse(line) as EventJson));
}
