// `npm test`: checks the committed BPF objects are fresh, type-checks, then runs every bun:test
// suite and ends with one line "N passed, N failed" (the form CI reads).
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { ensureSystemPackages } from "./system.ts";

const root = join(import.meta.dir, "..");
const inCI = process.env.CI === "true" || process.env.CI === "1";

function run(cmd: string, args: string[]): number {
  const r = spawnSync(cmd, args, { cwd: root, stdio: "inherit" });
  return r.status ?? 1;
}

ensureSystemPackages();
let failedSteps = 0;
// Committed objects must match their sources; CI fails on a stale object.
if (run("bun", ["run", "build/bpf.ts", "--check"]) !== 0) {
  failedSteps++;
  if (inCI) process.stderr.write("bpf objects are stale: run `npm run build:bpf` and commit bpf/obj\n");
}
if (run(join(root, "node_modules", ".bin", "tsc"), ["--noEmit", "-p", "."]) !== 0) failedSteps++;

const args = ["test", ...process.argv.slice(2)];
const r = spawnSync("bun", args, { cwd: root, stdio: ["inherit", "pipe", "pipe"], encoding: "utf8", maxBuffer: 1 << 30 });
process.stdout.write(r.stdout ?? "");
process.stderr.write(r.stderr ?? "");
const out = `${r.stdout}\n${r.stderr}`;
const passed = Number(/^\s*(\d+) pass$/m.exec(out)?.[1] ?? 0);
const failed = Number(/^\s*(\d+) fail$/m.exec(out)?.[1] ?? 0) + failedSteps;
const skipped = Number(/^\s*(\d+) skip$/m.exec(out)?.[1] ?? 0);
process.stdout.write(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ""}\n`);
process.exit(failed > 0 || r.status !== 0 || passed === 0 ? 1 : 0);
