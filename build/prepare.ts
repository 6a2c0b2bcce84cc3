// Builds what `bun src/...` needs at run time and is not committed: the engine WASM.
// Each step is skipped when its output is newer than its inputs.
import { existsSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const engineBuild = join(root, "build", "engine.ts");
if (existsSync(engineBuild)) {
  const { buildEngine } = await import(engineBuild);
  await buildEngine({ onlyIfStale: true });
}
