// Placeholder for `ward policy explain` (owned by the engine work, H5, who replaces
// this file): says so plainly and fails, so the dispatcher in policy.ts has a target.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write("ward policy explain: not built yet\n");
  return 1;
}
