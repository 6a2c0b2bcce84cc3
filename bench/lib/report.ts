// results.md from the suite's report (results.json): the header (machine, kernel, date,
// commit, load), the mechanisms that were active, every metric against its target, and for
// each missed target the profile measured in the same run with the hand-written why.
// bench/run.ts writes it after a run; `bun run bench/run.ts --render results.json`
// re-renders it from a saved report (after editing bench/lib/why.ts, say).
import { formatTarget, formatValue, type BenchSection, type Metric } from "./results.ts";
import { FINDINGS, WHY } from "./why.ts";

export interface SuiteReport {
  generated_by: string;
  quick: boolean;
  date: string;
  seconds: number;
  machine: { cpu: string; cores: number; kernel: string; bun: string };
  commit: string;
  dirty: boolean;
  load_average: { start: number[]; end: number[] };
  note?: string;
  sections: BenchSection[];
  failures: { bench: string; error: string }[];
}

function cell(s: string): string {
  return s.replace(/\|/g, "\\|").replace(/\n/g, " ");
}

/** How far a missed target is off, in the metric's own terms, and whether this run's spread straddles it. */
function gap(m: Metric): string {
  const t = m.target!;
  const v = m.median;
  let text: string;
  if (m.unit === "ratio") {
    const over = (v - t.value) * 100;
    text = `${formatValue(v, m.unit)} against ${formatTarget(t, m.unit)}: ${Math.abs(over).toFixed(1)} percentage points ${over > 0 ? "over" : "under"}`;
    if (t.value > 1 && t.op !== ">=") text += ` (a cost of ${((v - 1) * 100).toFixed(1)}% where ${((t.value - 1) * 100).toFixed(0)}% is allowed)`;
  } else if (t.value === 0) {
    text = `${formatValue(v, m.unit)} against ${formatTarget(t, m.unit)}`;
  } else {
    const pct = ((v - t.value) / t.value) * 100;
    text = `${formatValue(v, m.unit)} against ${formatTarget(t, m.unit)}: ${Math.abs(pct).toFixed(0)}% ${pct > 0 ? "over" : "short"}${t.op === ">=" ? ` (${(t.value / v).toFixed(2)}x to go)` : ""}`;
  }
  const inside = t.op === ">=" ? m.max >= t.value : m.min <= t.value;
  if (m.rounds > 1 && inside) text += `; the target lies within this run's min–max (${formatValue(m.min, m.unit)} – ${formatValue(m.max, m.unit)}), so part of the miss may be noise`;
  return text;
}

export function renderMarkdown(report: SuiteReport): string {
  const { quick, note, sections, failures } = report;
  const L: string[] = [];
  const commit = report.commit ? `${report.commit.slice(0, 12)}${report.dirty ? " (with uncommitted changes)" : ""}` : "unknown";
  L.push("# ward benchmark results", "");
  L.push(
    `Written by \`npm run bench\` (bench/run.ts${quick ? " --quick: one round and tiny counts, a smoke test, not a measurement" : ""}); do not edit by hand.`,
    "Ratios are B over A measured in the same run (agent on over agent off, ward over a peer), medians over",
    "rounds with their min-max; CPU-timed loads are pinned to CPU 0 and timed by CLOCK_PROCESS_CPUTIME_ID",
    "(design.md, Performance doctrine).",
    "",
  );
  L.push("| | |", "|---|---|");
  L.push(`| machine | ${report.machine.cpu}, ${report.machine.cores} cores |`);
  L.push(`| kernel | ${report.machine.kernel} |`);
  L.push(`| date | ${report.date} (${(report.seconds / 60).toFixed(1)} min) |`);
  L.push(`| ward commit | ${commit} |`);
  L.push(`| runtime | Bun ${report.machine.bun}, agent run as \`dist/ward agent\` |`);
  L.push(`| load average (1/5/15 min) | start ${report.load_average.start.map((x) => x.toFixed(2)).join(" / ")}, end ${report.load_average.end.map((x) => x.toFixed(2)).join(" / ")} |`);
  L.push("");
  if (note) L.push(`**Note:** ${note}`, "");
  // Only the start tells about other work: the suite's own storms load both cores by the end.
  if (report.load_average.start[0]! > 0.5)
    L.push(
      `**The machine was not quiet:** the 1-minute load average was ${report.load_average.start[0]!.toFixed(2)} when the run began (${report.machine.cores} cores). Other work disturbs CPU time and wall time alike; the per-round spreads show how much. Rerun on a quiet machine for figures to quote.`,
      "",
    );
  else
    L.push(
      `The machine was quiet when the run began (1-minute load average ${report.load_average.start[0]!.toFixed(2)}); the load at the end (${report.load_average.end[0]!.toFixed(2)}) includes the suite's own storms on both cores. The footprint bench's idle windows count the process events of other work, if any.`,
      "",
    );
  const targeted = sections.flatMap((s) => s.metrics.filter((m) => m.target));
  L.push(`**Targets:** ${targeted.filter((m) => m.met).length} of ${targeted.length} met in this run${failures.length ? `; ${failures.length} bench(es) failed` : ""}. Missed targets are explained below with the profile measured in the same run.`, "");

  const mech = new Map<string, string[]>();
  for (const s of sections) for (const [k, v] of Object.entries(s.mechanisms)) mech.set(k, [...(mech.get(k) ?? []), `${v} (${s.bench})`]);
  if (mech.size > 0) {
    L.push("## Mechanisms active in this run", "");
    for (const [k, vs] of mech) {
      const uniq = [...new Set(vs.map((v) => v.replace(/ \(\w+\)$/, "")))];
      const benches = vs.map((v) => /\((\w+)\)$/.exec(v)?.[1]).join(", ");
      L.push(`- **${k}** (${benches}): ${uniq.join(" / ")}`);
    }
    L.push("");
  }

  L.push("## Results", "");
  L.push("| metric | target | median | min–max | rounds | |", "|---|---|---|---|---|---|");
  for (const s of sections) {
    L.push(`| **${cell(s.title)}** (${s.seconds.toFixed(0)} s) | | | | | |`);
    for (const m of s.metrics) {
      const status = m.target ? (m.met ? "met" : "**missed**") : "";
      L.push(`| ${cell(m.name)}${m.detail ? `<br><sub>${cell(m.detail)}</sub>` : ""} | ${formatTarget(m.target, m.unit)} | ${formatValue(m.median, m.unit)} | ${formatValue(m.min, m.unit)} – ${formatValue(m.max, m.unit)} | ${m.rounds} | ${status} |`);
    }
  }
  for (const f of failures) L.push(`| **bench/${f.bench}.ts failed**: ${cell(f.error)} | | | | | |`);
  L.push("");

  const missed = sections.flatMap((s) => s.metrics.filter((m) => m.target && !m.met).map((m) => ({ s, m })));
  L.push("## Targets missed", "");
  if (missed.length === 0) L.push("None in this run.", "");
  for (const { s, m } of missed) {
    L.push(`### ${m.name}`, "");
    L.push(`- **Gap:** ${gap(m)}.`);
    for (const p of s.profiles.filter((p) => p.explains.includes(m.id))) {
      L.push(`- **Measured (${p.title}):**`);
      for (const l of p.lines) L.push(`  - ${l}`);
    }
    const entry = WHY[m.id];
    const why = typeof entry === "function" ? entry(s.mechanisms) : entry;
    L.push(`- **Why:** ${why?.why ?? "no explanation written yet for this metric."}`);
    if (why?.close) L.push(`- **What would close it:** ${why.close}`);
    L.push("");
  }

  const findings = sections.flatMap((s) => s.metrics.filter((m) => FINDINGS[m.id] !== undefined).map((m) => ({ s, m })));
  if (findings.length > 0) {
    L.push("## Findings", "");
    for (const { s, m } of findings) L.push(`- **${m.name}: ${formatValue(m.median, m.unit)}** (${formatValue(m.min, m.unit)} – ${formatValue(m.max, m.unit)}). ${FINDINGS[m.id]!(m, s.mechanisms)}`);
    L.push("");
  }

  const other = sections.flatMap((s) => s.profiles.filter((p) => !missed.some(({ s: ms, m }) => ms === s && p.explains.includes(m.id))).map((p) => ({ s, p })));
  if (other.length > 0) {
    L.push("## Other profiles", "");
    for (const { s, p } of other) {
      L.push(`**${p.title}** (${s.bench})`, "");
      for (const l of p.lines) L.push(`- ${l}`);
      L.push("");
    }
  }

  L.push("## Method notes", "");
  for (const s of sections) for (const n of s.notes) L.push(`- ${s.bench}: ${n}`);
  L.push(`- reproduce: \`npm run bench\` as root (bench/run.ts; \`bun run bench/<name>.ts\` runs one bench and prints a table). results.json holds every figure shown here.`);
  L.push("");
  return L.join("\n");
}
