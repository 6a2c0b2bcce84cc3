// Compiles the AssemblyScript policy engine (engine-as/assembly) to engine-as/build/engine.wasm.
// build/prepare.ts calls this before `npm test` / `npm start`; with onlyIfStale it returns
// at once when the .wasm is newer than every source file.
import { existsSync, mkdirSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
export const engineSourceDir = join(root, "engine-as", "assembly");
export const engineWasmPath = join(root, "engine-as", "build", "engine.wasm");

export class EngineBuildError extends Error {
  override name = "EngineBuildError";
}

function newestSource(dir: string): number {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    const t = e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs;
    if (t > newest) newest = t;
  }
  // This file decides the compiler flags, so a change here rebuilds too.
  return Math.max(newest, statSync(import.meta.path).mtimeMs);
}

export function engineIsStale(): boolean {
  if (!existsSync(engineWasmPath)) return true;
  return statSync(engineWasmPath).mtimeMs < newestSource(engineSourceDir);
}

// -O3 for evaluation speed; the incremental GC because the agent compiles and evaluates
// for as long as it runs. No generated bindings: src/policy/engine.ts speaks the raw ABI.
const ascArgs = [
  join(engineSourceDir, "index.ts"),
  "--outFile", engineWasmPath,
  "--optimizeLevel", "3",
  "--shrinkLevel", "0",
  "--runtime", "incremental",
  "--noColors",
];

export async function buildEngine(opts: { onlyIfStale?: boolean } = {}): Promise<void> {
  if (opts.onlyIfStale && !engineIsStale()) return;
  mkdirSync(join(root, "engine-as", "build"), { recursive: true });
  const asc = (await import("assemblyscript/asc")).default;
  let stderr = "";
  const result = await asc.main(ascArgs, {
    stdout: { write: () => true },
    stderr: {
      write: (chunk: string | Uint8Array): boolean => {
        stderr += typeof chunk === "string" ? chunk : new TextDecoder().decode(chunk);
        return true;
      },
    },
  });
  if (result.error) throw new EngineBuildError(`asc failed: ${result.error.message}\n${stderr}`);
}

if (import.meta.main) {
  const force = !process.argv.includes("--if-stale");
  await buildEngine({ onlyIfStale: !force });
  process.stdout.write(`engine: ${engineWasmPath}\n`);
}
