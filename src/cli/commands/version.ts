import { VERSION } from "../../version.ts";

export async function run(_argv: string[]): Promise<number> {
  process.stdout.write(`ward ${VERSION}\n`);
  return 0;
}
