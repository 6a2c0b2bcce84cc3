// Arguments as Tetragon prints them (pkg/process/args.go): argv[1..] joined by spaces, an
// argument that contains a space wrapped in double quotes.

/** Splits a NUL-separated argv block (argv[0] first) into its strings. */
export function splitArgv(block: string): string[] {
  if (block === "") return [];
  const parts = block.split("\0");
  if (parts[parts.length - 1] === "") parts.pop(); // the block ends with a NUL
  return parts;
}

export function joinArguments(args: readonly string[]): string {
  return args.map((a) => (a.includes(" ") ? `"${a}"` : a)).join(" ");
}
