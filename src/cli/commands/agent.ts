// Placeholder until the owning issue lands: says so plainly and fails.
export async function run(_argv: string[]): Promise<number> {
  process.stderr.write("ward agent: not built yet\n");
  return 1;
}
