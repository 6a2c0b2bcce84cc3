// Makes a fresh clone runnable: installs the npm dependencies (Bun itself comes from the
// npm registry) when they are missing or older than the lockfile. Plain Node, no deps,
// because it runs before anything is installed. Idempotent: a second run does nothing.
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync } from "node:fs";
import { execFileSync, spawnSync } from "node:child_process";
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

// npm's output goes to the install log, never to stdout: `npm start` prints the agent's JSON
// lines there (build/system.ts does the same for apt).
if (stale()) {
  const log = process.env.WARD_INSTALL_LOG ?? join(root, ".cache", "install.log");
  mkdirSync(dirname(log), { recursive: true });
  appendFileSync(log, "\n$ npm ci --no-audit --no-fund\n");
  process.stderr.write(`ward: installing npm dependencies (npm ci; log: ${log})\n`);
  const fd = openSync(log, "a");
  const r = spawnSync("npm", ["ci", "--no-audit", "--no-fund"], { cwd: root, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  if (r.status !== 0) {
    const tail = readFileSync(log, "utf8").trimEnd().split("\n").slice(-15).join("\n");
    process.stderr.write(`ward: npm ci failed (exit ${r.status ?? r.signal}); last lines of ${log}:\n${tail}\n`);
    process.exit(1);
  }
}
// Everything past the npm install is done by Bun scripts; their stdout is stderr here too.
execFileSync(bun, ["run", join(root, "build", "prepare.ts")], { cwd: root, stdio: ["inherit", 2, 2] });
