// `npm run build`: the single binary dist/ward, `bun build --compile` of src/cli/main.ts.
// The sensor objects (bpf/obj/*.o, through src/bpf/objects.generated.ts) and the engine
// WASM are imported `with { type: "file" }`, so Bun embeds them; the binary needs no
// files next to it and runs from any directory.
//
// Start-up: `ward oci-hook` runs twice per container start and `ward version`/`status`/`policy
// validate` are short-lived, so the binary is compiled for a light start (compileFlags).
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { buildBpf, checkBpf } from "./bpf.ts";

const root = join(import.meta.dir, "..");
export const binaryPath = join(root, "dist", "ward");

export class BinaryBuildError extends Error {
  override name = "BinaryBuildError";
}

function bunPath(): string {
  const local = join(root, "node_modules", ".bin", "bun");
  return existsSync(local) ? local : process.execPath;
}

/**
 * How dist/ward is compiled (test/e2e/binary.test.ts compiles its embed probe the same way).
 * - --bytecode: JSC bytecode made at build time. Without it every start parses the whole
 *   bundle (~650 KB of minified JS) before main runs: ~40 ms of CPU per start, most of a
 *   light command's time. Bytecode needs --format=esm here (main.ts has a top-level await).
 * - --splitting: each lazily imported command (src/cli/main.ts) is its own chunk inside the
 *   binary, so `ward version` or `ward oci-hook` loads its own few KB, not the agent, the
 *   loader, the engine, hono or yaml.
 * - --minify: smaller chunks and bytecode.
 */
export const compileFlags: readonly string[] = ["--compile", "--minify", "--bytecode", "--format=esm", "--splitting"];

/**
 * The entrypoints: the CLI, and the fanotify engine decision thread, a Worker module of its
 * own (src/sensors/fanotify.ts engineWorkerUrl), so the binary holds it as
 * sensors/fanotify-worker.js (it shares the engine's chunks with the agent).
 */
export const binaryEntries: readonly string[] = ["src/cli/main.ts", "src/sensors/fanotify-worker.ts"];

const inCI = process.env.CI === "true" || process.env.CI === "1";

/**
 * Builds dist/ward. Rebuilds changed BPF objects first when clang is here (writes only
 * objects whose bytes differ), so a binary never embeds an object older than its source.
 * In CI nothing is rebuilt: a stale committed object fails the build instead of being
 * fixed silently on the CI machine.
 */
export async function buildBinary(opts: { quiet?: boolean } = {}): Promise<string> {
  if (inCI) {
    const r = await checkBpf();
    const bad = [...r.stale, ...r.missing, ...r.orphans, ...(r.generatedStale ? ["src/bpf/objects.generated.ts"] : [])];
    if (bad.length > 0) throw new BinaryBuildError(`bpf objects out of date (run npm run build:bpf and commit): ${bad.join(", ")}`);
  } else if (existsSync("/usr/bin/clang") || existsSync("/usr/bin/clang-14")) {
    const r = await buildBpf();
    if (!opts.quiet) for (const o of r.written) process.stdout.write(`built ${o}\n`);
  }
  mkdirSync(join(root, "dist"), { recursive: true });
  const r = spawnSync(
    bunPath(),
    ["build", ...compileFlags, ...binaryEntries, "--outfile", binaryPath],
    { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] },
  );
  if (r.status !== 0) throw new BinaryBuildError(`bun build --compile failed (exit ${r.status}):\n${r.stderr}${r.stdout}`);
  if (!opts.quiet) {
    const mb = (statSync(binaryPath).size / 1e6).toFixed(1);
    process.stdout.write(`built dist/ward (${mb} MB)\n`);
  }
  return binaryPath;
}

if (import.meta.main) {
  try {
    await buildBinary();
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  }
}
