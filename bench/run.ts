// `npm run bench`: runs every bench/*.ts (except this file) one after another, each in its
// own process so one bench's maps, programs and JIT state do not colour the next, and
// prints each report under a header. `bun run bench/run.ts loader process` runs only those.
// Exits non-zero when any bench failed, after running the rest.
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { basename, join } from "node:path";

const dir = import.meta.dir;
const only = process.argv.slice(2).filter((a) => !a.startsWith("-"));
const benches = readdirSync(dir)
  .filter((f) => f.endsWith(".ts") && f !== "run.ts" && !f.endsWith(".d.ts"))
  .map((f) => basename(f, ".ts"))
  .filter((n) => only.length === 0 || only.includes(n))
  .sort();

if (benches.length === 0) {
  process.stderr.write(`bench: nothing to run${only.length ? ` (no bench named ${only.join(", ")})` : ""}\n`);
  process.exit(2);
}

const failed: string[] = [];
for (const name of benches) {
  process.stdout.write(`\n=== bench/${name}.ts ===\n`);
  const t = performance.now();
  const r = spawnSync(process.execPath, ["run", join(dir, `${name}.ts`)], { stdio: "inherit" });
  const secs = ((performance.now() - t) / 1000).toFixed(1);
  if (r.status !== 0) {
    failed.push(name);
    process.stdout.write(`=== bench/${name}.ts failed (exit ${r.status ?? r.signal}) after ${secs} s ===\n`);
  } else {
    process.stdout.write(`=== bench/${name}.ts done in ${secs} s ===\n`);
  }
}
if (failed.length > 0) {
  process.stderr.write(`bench: ${failed.length} of ${benches.length} failed: ${failed.join(", ")}\n`);
  process.exit(1);
}
