// Which declared argument a matchArgs / matchData / matchReturnArgs filter
// refers to. Shared by the validator and the engine so both read an index the
// same way (Tetragon: pkg/selectors/kernel.go argIndexType, and the
// tracepoint remapping in generictracepoint.go).
import type { ArgSelector, HookKind, KProbeArg } from "./types.ts";

export type FilterSource = "args" | "data" | "return";

export interface FilterTarget {
  /** The declared argument the filter reads. */
  arg: KProbeArg;
  /** Its position in the hook's `args` (or `data`) list; 0 for the return value. */
  pos: number;
}

/**
 * - `args: [p, ...]` set: p is a position in the spec list (first one is the filtered argument).
 * - matchData: `index` is a position in `data`.
 * - matchReturnArgs: `index` must equal returnArg.index.
 * - matchArgs: `index` names the declared arg with that prototype index; for tracepoints it may
 *   also be a position in `args` (Tetragon remaps format indexes to positions, and examples use both).
 */
export function resolveFilterTarget(
  hookKind: HookKind,
  hook: { args: readonly KProbeArg[]; data?: readonly KProbeArg[]; returnArg?: KProbeArg | undefined },
  filter: Pick<ArgSelector, "index" | "args">,
  source: FilterSource,
): FilterTarget | undefined {
  if (source === "return") {
    const ra = hook.returnArg;
    return ra !== undefined && filter.index === ra.index ? { arg: ra, pos: 0 } : undefined;
  }
  const list = source === "args" ? hook.args : (hook.data ?? []);
  if (filter.args.length > 0) {
    const p = filter.args[0] ?? -1;
    const a = list[p];
    return a === undefined ? undefined : { arg: a, pos: p };
  }
  if (source === "data") {
    const a = list[filter.index];
    return a === undefined ? undefined : { arg: a, pos: filter.index };
  }
  const byIndex = list.findIndex((a) => a !== null && a.index === filter.index);
  if (byIndex >= 0) return { arg: list[byIndex] as KProbeArg, pos: byIndex };
  if (hookKind === "tracepoints" && filter.index < list.length) return { arg: list[filter.index] as KProbeArg, pos: filter.index };
  return undefined;
}
