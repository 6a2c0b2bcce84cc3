// `npm run bench`: the whole suite in one run. Each bench runs in its own process (so one
// bench's maps, programs and JIT state do not colour the next) with --json and returns one
// BenchSection (bench/lib/results.ts) on stdout; this writes bench/results.json and
// bench/results.md from them: every metric with its target, median and min-max over rounds,
// the machine, kernel, date and commit, the mechanisms that were active, and for every
// missed target the measured profile and a hand-written why.
//
//   bun run bench/run.ts                 the full suite, results into bench/
//   bun run bench/run.ts --quick         1 round, tiny counts: checks every bench still runs
//                                        (results into /tmp/ward-bench-quick unless --out)
//   bun run bench/run.ts enforce policy  only those benches
//   --out DIR                            where results.json and results.md go
//   --note TEXT                          a line for results.md (e.g. what else ran meanwhile)
// Exits non-zero when any bench failed, after running the rest; the results then list the
// failure in place of its metrics.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { join } from "node:path";
import { wardBinary } from "./lib/agent.ts";
import { BENCHES, formatTarget, formatValue, type BenchSection, type Metric } from "./lib/results.ts";
import { FINDINGS, WHY } from "./lib/why.ts";

const root = join(import.meta.dir, "..");
const argv = process.argv.slice(2);
const quick = argv.includes("--quick");
const optValue = (name: string): string | undefined => {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
};
const outDir = optValue("out") ?? (quick ? "/tmp/ward-bench-quick" : import.meta.dir);
const note = optValue("note");
const valued = new Set([optValue("out"), optValue("note")]);
const only = argv.filter((a, i) => !a.startsWith("-") && !(valued.has(a) && argv[i - 1]?.startsWith("--")));
const unknown = only.filter((n) => !(BENCHES as readonly string[]).includes(n));
if (unknown.length > 0) {
  process.stderr.write(`bench: no bench named ${unknown.join(", ")} (have: ${BENCHES.join(", ")})\n`);
  process.exit(2);
}
const selected = BENCHES.filter((b) => only.length === 0 || only.includes(b));

interface Failure {
  bench: string;
  error: string;
}

function git(args: string[]): string {
  const r = spawnSync("git", args, { cwd: root, encoding: "utf8" });
  return r.status === 0 ? r.stdout.trim() : "";
}

function cpuModel(): string {
  const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync("/proc/cpuinfo", "utf8"));
  return m?.[1]?.trim() ?? cpus()[0]?.model ?? "unknown";
}

const started = new Date();
const load0 = loadavg();
const t0 = performance.now();
// The suite measures the tree it reports the commit of: rebuild dist/ward once (full runs).
await wardBinary({ fresh: !quick });

const sections: BenchSection[] = [];
const failures: Failure[] = [];
for (const name of selected) {
  process.stderr.write(`\n=== bench/${name}.ts${quick ? " --quick" : ""} ===\n`);
  const t = performance.now();
  const r = spawnSync(process.execPath, ["run", join(import.meta.dir, `${name}.ts`), "--json", ...(quick ? ["--quick"] : [])], {
    cwd: root,
    encoding: "utf8",
    stdio: ["ignore", "pipe", "inherit"],
    maxBuffer: 64 << 20,
    timeout: 30 * 60_000,
  });
  const secs = ((performance.now() - t) / 1000).toFixed(1);
  if (r.status !== 0) {
    failures.push({ bench: name, error: `exit ${r.status ?? r.signal}${r.error ? `: ${r.error.message}` : ""}` });
    process.stderr.write(`=== bench/${name}.ts failed (exit ${r.status ?? r.signal}) after ${secs} s ===\n`);
    continue;
  }
  try {
    sections.push(JSON.parse(r.stdout) as BenchSection);
    process.stderr.write(`=== bench/${name}.ts done in ${secs} s ===\n`);
  } catch (e) {
    failures.push({ bench: name, error: `stdout is not one JSON document (${(e as Error).message}): ${r.stdout.slice(0, 300)}` });
  }
}

const report = {
  generated_by: "bench/run.ts",
  quick,
  date: started.toISOString(),
  seconds: (performance.now() - t0) / 1000,
  machine: { cpu: cpuModel(), cores: cpus().length, kernel: release(), bun: Bun.version },
  commit: git(["rev-parse", "HEAD"]),
  dirty: git(["status", "--porcelain", "--untracked-files=no"]) !== "",
  load_average: { start: load0, end: loadavg() },
  note,
  sections,
  failures,
};
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, "results.json"), `${JSON.stringify(report, null, 2)}\n`);
writeFileSync(join(outDir, "results.md"), markdown());
process.stderr.write(`\nbench: wrote ${join(outDir, "results.md")} and results.json (${(report.seconds / 60).toFixed(1)} min)\n`);
if (failures.length > 0) {
  process.stderr.write(`bench: ${failures.length} of ${selected.length} failed: ${failures.map((f) => f.bench).join(", ")}\n`);
  process.exit(1);
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

function markdown(): string {
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
  // This bench's own load keeps one core busy; more than that means other work shared the machine.
  const busiest = Math.max(report.load_average.start[0]!, report.load_average.end[0]!);
  if (report.load_average.start[0]! > 0.5 || busiest > report.machine.cores)
    L.push(
      `**The machine was not quiet:** the 1-minute load average was ${report.load_average.start[0]!.toFixed(2)} when the run began and ${report.load_average.end[0]!.toFixed(2)} when it ended (${report.machine.cores} cores). Other work disturbs CPU time and wall time alike; the per-round spreads show how much. Rerun on a quiet machine for figures to quote.`,
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
    const why = WHY[m.id];
    L.push(`- **Why:** ${why?.why ?? "no explanation written yet for this metric."}`);
    if (why?.close) L.push(`- **What would close it:** ${why.close}`);
    L.push("");
  }

  const findings = sections.flatMap((s) => s.metrics.filter((m) => FINDINGS[m.id] !== undefined));
  if (findings.length > 0) {
    L.push("## Findings", "");
    for (const m of findings) L.push(`- **${m.name}: ${formatValue(m.median, m.unit)}** (${formatValue(m.min, m.unit)} – ${formatValue(m.max, m.unit)}). ${FINDINGS[m.id]!(m)}`);
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
