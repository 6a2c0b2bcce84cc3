// The compiled sensor objects (bpf/obj/*.o), embedded in the single binary.
// objects.generated.ts (written by build/bpf.ts) imports each one `with { type: "file" }`,
// which gives a path Bun can read both from source and inside `bun build --compile`
// (/$bunfs/...), from any working directory. Test fixtures (bpf/obj/testdata) are not
// embedded; tests read them from the checkout.
import { readFileSync } from "node:fs";
import { objectFiles } from "./objects.generated.ts";

export class UnknownObjectError extends Error {
  override name = "UnknownObjectError";
  constructor(readonly object: string) {
    super(`read bpf object ${object}: no such embedded object (have: ${objectNames().join(", ") || "none"})`);
  }
}

/** Names of the embedded objects ("file_guard" for bpf/obj/file_guard.o), sorted. */
export function objectNames(): string[] {
  return Object.keys(objectFiles).sort();
}

/** The bytes of bpf/obj/<name>.o. Accepts "name" or "name.o". */
export function readObject(name: string): Uint8Array {
  const key = name.endsWith(".o") ? name.slice(0, -2) : name;
  const path = objectFiles[key];
  if (path === undefined) throw new UnknownObjectError(key);
  return new Uint8Array(readFileSync(path));
}
