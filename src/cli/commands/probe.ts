// Placeholder until the owning issue lands: says so plainly and fails.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write("ward probe: not built yet\n");
  return 1;
}
