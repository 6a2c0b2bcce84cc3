// Makes a fresh clone runnable: installs the npm dependencies (Bun itself comes from the
// npm registry) when they are missing or older than the lockfile. Plain Node, no deps,
// because it runs before anything is installed. Idempotent: a second run does nothing.
import { existsSync, statSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const lock = join(root, "package-lock.json");
const stamp = join(root, "node_modules", ".package-lock.json");
const bun = join(root, "node_modules", ".bin", "bun");

function stale() {
  if (!existsSync(bun) || !existsSync(stamp)) return true;
  return statSync(lock).mtimeMs > statSync(stamp).mtimeMs;
}

if (stale()) {
  process.stderr.write("ward: installing npm dependencies (npm ci)\n");
  execFileSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: "inherit" });
}
// Everything past the npm install is done by Bun scripts.
execFileSync(bun, ["run", join(root, "build", "prepare.ts")], { cwd: root, stdio: "inherit" });
