// Arguments as Tetragon prints them (pkg/process/args.go): argv[1..] joined by spaces, an
// argument that contains a space wrapped in double quotes.

/** Splits a NUL-separated argv block (argv[0] first) into its strings. */
export function splitArgv(block: string): string[] {
  if (block === "") return [];
  const parts = block.split("\0");
  if (parts[parts.length - 1] === "") parts.pop(); // the block ends with a NUL
  return parts;
}

/**
 * args[from..] as Tetragon prints them (from 1 skips argv[0] without copying the array).
 * Joined natively: the result is one flat string, where `+=` would leave a rope of pieces
 * that the process cache would keep for as long as it keeps the image.
 */
export function joinArguments(args: readonly string[], from = 0): string {
  const out = new Array<string>(Math.max(0, args.length - from));
  for (let i = from; i < args.length; i++) {
    const a = args[i]!;
    out[i - from] = a.includes(" ") ? `"${a}"` : a;
  }
  return out.join(" ");
}

/**
 * joinArguments(splitArgv(block), 1) straight from the NUL-separated block: when no argument
 * holds a space (none needs quotes), argv[1..] are the block's text after argv[0] with each
 * NUL a space.
 */
export function argumentsOfBlock(block: string): string {
  const first = block.indexOf("\0");
  if (first < 0) return "";
  const end = block.charCodeAt(block.length - 1) === 0 ? block.length - 1 : block.length;
  if (first >= end) return "";
  const rest = block.slice(first + 1, end);
  if (rest.includes(" ")) return joinArguments(splitArgv(block), 1);
  return rest.replaceAll("\0", " ");
}
