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

/**
 * tetra's --timestamps prefix: the event time in UTC with exactly nine fractional digits
 * (Go layout 2006-01-02T15:04:05.000000000Z07:00); an event without a time prints the zero
 * Timestamp, 1970-01-01T00:00:00.000000000Z, as a nil protobuf Timestamp does.
 */
export function compactTimestamp(time: unknown): string {
  const m = typeof time === "string" ? /^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?Z$/.exec(time) : null;
  if (!m) return "1970-01-01T00:00:00.000000000Z";
  return `${m[1]}.${(m[2] ?? "").padEnd(9, "0")}Z`;
}

export function lineFormatter(output: OutputFormat, opts: { timestamps?: boolean } = {}): LineFormatter {
  if (output === "json") return (_ev, line) => line;
  return (ev, line) => {
    const e = ev ?? (JSON.parse(line) as EventJson);
    const out = compactLine(e);
    return out !== undefined && opts.timestamps ? `${compactTimestamp(e.time)} ${out}` : out;
  };
}
