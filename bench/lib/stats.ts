// Summaries for A/B measurements: the median and its spread, never a single run.

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return Number.NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** One A/B pair: the same load measured without (off) and with (on) the thing under test. */
export interface Pair {
  off: number;
  on: number;
}

export interface RatioSummary {
  rounds: number;
  /** median of the per-round on/off ratios */
  median: number;
  min: number;
  max: number;
  ratios: number[];
  offMedian: number;
  onMedian: number;
  /**
   * least "on" over least "off" across all rounds: the two least-disturbed measurements,
   * a second estimate that interference bursts hitting one side of a round cannot move
   */
  floorRatio: number;
}

/**
 * Ratios are taken per round (each "on" against the "off" measured next to it), so slow
 * drift of the machine cancels instead of landing on one side.
 */
export function summarizeRatios(pairs: readonly Pair[]): RatioSummary {
  const ratios = pairs.map((p) => p.on / p.off);
  return {
    rounds: pairs.length,
    median: median(ratios),
    min: Math.min(...ratios),
    max: Math.max(...ratios),
    ratios,
    offMedian: median(pairs.map((p) => p.off)),
    onMedian: median(pairs.map((p) => p.on)),
    floorRatio: Math.min(...pairs.map((p) => p.on)) / Math.min(...pairs.map((p) => p.off)),
  };
}

/** "1.083 (1.041..1.120, 7 rounds)" */
export function formatRatio(s: RatioSummary): string {
  return `${s.median.toFixed(3)} (${s.min.toFixed(3)}..${s.max.toFixed(3)}, ${s.rounds} rounds)`;
}

/** "1.083 (1.041..1.120, 7 rounds), floor 1.079" */
export function formatRatioWithFloor(s: RatioSummary): string {
  return `${formatRatio(s)}, floor ${s.floorRatio.toFixed(3)}`;
}

export function round(x: number, digits = 3): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
