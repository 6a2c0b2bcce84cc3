// The compiled binary for end-to-end tests: dist/ward, rebuilt when any input is newer.
import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { binaryPath, buildBinary } from "../../build/binary.ts";

const root = join(import.meta.dir, "..", "..");

/** Newest modification time under the given paths (files and folders, recursively). */
function newest(paths: string[]): number {
  let max = 0;
  const walk = (p: string): void => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) {
      for (const e of readdirSync(p)) walk(join(p, e));
    } else if (st.mtimeMs > max) {
      max = st.mtimeMs;
    }
  };
  for (const p of paths) walk(join(root, p));
  return max;
}

/** What the binary is built from: sources, embedded objects and policies, the engine, the build's flags. */
const inputs = ["src", "bpf/obj", "policies", "engine-as/build", "package.json", "build/binary.ts"];

/** Path of a dist/ward at least as new as its inputs; builds it when it is not. */
export async function ensureBinary(): Promise<string> {
  const fresh = existsSync(binaryPath) && statSync(binaryPath).mtimeMs >= newest(inputs);
  if (!fresh) await buildBinary({ quiet: true });
  return binaryPath;
}
