// The one result shape every bench returns: bench/run.ts collects a BenchSection from each
// bench (`bun run bench/<name>.ts --json` prints exactly one on stdout) and writes
// bench/results.json and bench/results.md from them. A metric is a median with its min-max
// over the rounds of the same run, and the target it is held to, if any.
import type { RatioSummary } from "./stats.ts";
import { median } from "./stats.ts";

/** The suite bench/run.ts runs, in order: cheap and self-contained first, agent-heavy after. */
export const BENCHES = ["loader", "engine", "enforce", "scope", "process", "workload", "policy", "oci-hook", "footprint", "sinks"] as const;

export interface Target {
  op: "<=" | ">=" | "<";
  value: number;
}

export interface Metric {
  /** stable key (results.json consumers and the quick-mode test look metrics up by it) */
  id: string;
  name: string;
  /** "ratio" (B over A, CPU time unless the name says wall), or a rate or size unit */
  unit: string;
  target?: Target;
  median: number;
  min: number;
  max: number;
  rounds: number;
  /** target met; absent without a target */
  met?: boolean;
  /** one line of context (iterations, what A and B were) */
  detail?: string;
}

/** Measured explanation of a cost: bpf run time per program, a CPU profile's top functions. */
export interface Profile {
  /** metric ids this profile explains */
  explains: string[];
  title: string;
  lines: string[];
}

export interface BenchSection {
  bench: string;
  title: string;
  quick: boolean;
  seconds: number;
  metrics: Metric[];
  /** mechanism name -> what was active in this bench (guard placement, policy variant...) */
  mechanisms: Record<string, string>;
  profiles: Profile[];
  /** method and deviations, one sentence each */
  notes: string[];
}

export function meets(t: Target, v: number): boolean {
  if (!Number.isFinite(v)) return false;
  return t.op === "<=" ? v <= t.value : t.op === ">=" ? v >= t.value : v < t.value;
}

export function metric(m: Omit<Metric, "met">): Metric {
  return m.target ? { ...m, met: meets(m.target, m.median) } : { ...m };
}

/** A metric from A/B pairs' on/off ratios. */
export function ratioMetric(id: string, name: string, s: RatioSummary, target?: Target, detail?: string): Metric {
  // The floor (least "on" over least "off" of the run) is a second estimate that bursts of
  // other work hitting one side of a round cannot move; it is shown, never judged.
  const floor = s.rounds > 1 ? `floor (least on / least off) ${s.floorRatio.toFixed(3)}` : undefined;
  const text = [detail, floor].filter((x) => x !== undefined).join("; ");
  return metric({ id, name, unit: "ratio", target, median: s.median, min: s.min, max: s.max, rounds: s.rounds, detail: text || undefined });
}

/** A metric from per-round samples of a value (a rate, a latency, a size). */
export function sampleMetric(id: string, name: string, unit: string, samples: readonly number[], target?: Target, detail?: string): Metric {
  if (samples.length === 0) throw new Error(`metric ${id}: no samples`);
  return metric({ id, name, unit, target, median: median(samples), min: Math.min(...samples), max: Math.max(...samples), rounds: samples.length, detail });
}

export class BenchArgs {
  readonly quick: boolean;
  readonly json: boolean;
  constructor(private readonly argv: readonly string[] = process.argv.slice(2)) {
    this.quick = argv.includes("--quick");
    this.json = argv.includes("--json");
  }
  /** --name N, else the quick or the full default */
  num(name: string, full: number, quick: number): number {
    const i = this.argv.indexOf(`--${name}`);
    const v = i >= 0 ? Number(this.argv[i + 1]) : Number.NaN;
    if (i >= 0 && !(Number.isFinite(v) && v > 0)) throw new Error(`--${name}: expected a positive number, not ${JSON.stringify(this.argv[i + 1])}`);
    return i >= 0 ? v : this.quick ? quick : full;
  }
}

/** Progress goes to stderr so a bench's --json stdout stays one JSON document. */
export function progress(bench: string, msg: string): void {
  process.stderr.write(`[${bench}] ${msg}\n`);
}

/**
 * Finishes a bench: with --json prints the section as the only thing on stdout, else a
 * readable table. bench/run.ts reads the JSON.
 */
export function emit(section: BenchSection, args: BenchArgs): void {
  if (args.json) {
    process.stdout.write(`${JSON.stringify(section)}\n`);
    return;
  }
  const lines = [`${section.title} (${section.seconds.toFixed(1)} s${section.quick ? ", quick" : ""})`];
  for (const m of section.metrics) lines.push(`  ${formatMetricLine(m)}`);
  for (const [k, v] of Object.entries(section.mechanisms)) lines.push(`  mechanism ${k}: ${v}`);
  for (const p of section.profiles) lines.push(`  profile: ${p.title}`, ...p.lines.map((l) => `    ${l}`));
  for (const n of section.notes) lines.push(`  note: ${n}`);
  process.stdout.write(`${lines.join("\n")}\n`);
}

export function formatValue(v: number, unit: string): string {
  if (!Number.isFinite(v)) return String(v);
  if (unit === "ratio") return v.toFixed(3);
  const abs = Math.abs(v);
  const s = Number.isInteger(v) || abs >= 1000 ? Math.round(v).toLocaleString("en-US") : abs >= 100 ? v.toFixed(0) : abs >= 10 ? v.toFixed(1) : v.toFixed(2);
  return unit === "" ? s : `${s} ${unit}`;
}

export function formatTarget(t: Target | undefined, unit: string): string {
  return t ? `${t.op === "<=" ? "≤" : t.op === ">=" ? "≥" : "<"} ${formatValue(t.value, unit)}` : "";
}

export function formatMetricLine(m: Metric): string {
  const t = m.target ? ` target ${formatTarget(m.target, m.unit)} ${m.met ? "met" : "MISSED"}` : "";
  return `${m.name}: ${formatValue(m.median, m.unit)} (${formatValue(m.min, m.unit)}..${formatValue(m.max, m.unit)}, ${m.rounds} rounds)${t}`;
}

/** Runs a bench's body, timing it; a failure is printed with its message and exits 1. */
export async function runBench(name: string, title: string, body: (args: BenchArgs, section: BenchSection) => Promise<void>): Promise<void> {
  const args = new BenchArgs();
  const section: BenchSection = { bench: name, title, quick: args.quick, seconds: 0, metrics: [], mechanisms: {}, profiles: [], notes: [] };
  const t0 = performance.now();
  try {
    await body(args, section);
  } catch (e) {
    process.stderr.write(`bench/${name}.ts failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  }
  section.seconds = (performance.now() - t0) / 1000;
  emit(section, args);
}
