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
//   --render FILE                        only re-render results.md from a saved results.json
// Exits non-zero when any bench failed, after running the rest; the results then list the
// failure in place of its metrics.
import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, loadavg, release } from "node:os";
import { dirname, join } from "node:path";
import { wardBinary } from "./lib/agent.ts";
import { renderMarkdown, type SuiteReport } from "./lib/report.ts";
import { BENCHES, type BenchSection } from "./lib/results.ts";

const root = join(import.meta.dir, "..");
const argv = process.argv.slice(2);

// --render FILE: only re-render results.md next to a saved results.json.
const renderFrom = argv.indexOf("--render");
if (renderFrom >= 0) {
  const file = argv[renderFrom + 1];
  if (file === undefined) {
    process.stderr.write("bench: --render needs the results.json to render\n");
    process.exit(2);
  }
  const saved = JSON.parse(readFileSync(file, "utf8")) as SuiteReport;
  writeFileSync(join(dirname(file), "results.md"), renderMarkdown(saved));
  process.stderr.write(`bench: rendered ${join(dirname(file), "results.md")}\n`);
  process.exit(0);
}
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

const report: SuiteReport = {
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
writeFileSync(join(outDir, "results.md"), renderMarkdown(report));
process.stderr.write(`\nbench: wrote ${join(outDir, "results.md")} and results.json (${(report.seconds / 60).toFixed(1)} min)\n`);
if (failures.length > 0) {
  process.stderr.write(`bench: ${failures.length} of ${selected.length} failed: ${failures.map((f) => f.bench).join(", ")}\n`);
  process.exit(1);
}

