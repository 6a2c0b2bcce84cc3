// The API token: read from the token file, or created there (mode 0600, random) when the
// file is missing. The token itself is never printed; logs name the file instead.
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { randomBytes, timingSafeEqual } from "node:crypto";

export class TokenFileError extends Error {
  override name = "TokenFileError";
  readonly code = "token_file";
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`token file ${path}: ${message}`);
  }
}

/** Shortest token we accept from a file a user wrote: anything shorter is guessable. */
const MIN_TOKEN_LENGTH = 16;

/**
 * loadOrCreateToken returns the token in `path`, creating the file (and its directory,
 * 0700) with 32 random bytes in hex when it does not exist. A file readable by group or
 * others is tightened to 0600, since anyone who can read it controls the agent.
 */
export function loadOrCreateToken(path: string): { token: string; created: boolean } {
  if (!existsSync(path)) {
    try {
      mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
      const token = randomBytes(32).toString("hex");
      // "wx" fails if another process created the file meanwhile; then we read theirs.
      writeFileSync(path, `${token}\n`, { mode: 0o600, flag: "wx" });
      return { token, created: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw new TokenFileError(path, `create: ${(err as Error).message}`);
    }
  }
  let text: string;
  try {
    if ((statSync(path).mode & 0o077) !== 0) chmodSync(path, 0o600);
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new TokenFileError(path, `read: ${(err as Error).message}`);
  }
  const token = text.trim();
  if (token.length < MIN_TOKEN_LENGTH) throw new TokenFileError(path, `token is shorter than ${MIN_TOKEN_LENGTH} characters`);
  if (/\s/.test(token)) throw new TokenFileError(path, "token contains whitespace");
  return { token, created: false };
}

/** readToken reads an existing token file (the CLI side); throws TokenFileError. */
export function readToken(path: string): string {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new TokenFileError(path, `read: ${(err as Error).message}`);
  }
  return text.trim();
}

/**
 * tokensEqual compares in time independent of where the strings differ, so the answer
 * time does not leak a prefix of the token.
 */
export function tokensEqual(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  // Compare against b even when lengths differ, so a wrong length costs the same time.
  const same = timingSafeEqual(a.length === b.length ? a : b, b);
  return same && a.length === b.length;
}
