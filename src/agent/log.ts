// The agent's own diagnostics: one line each on stderr, filtered by --log-level:
// `ward agent: message` (info), `ward agent: debug: message`, `ward agent: warn: message`,
// `ward agent: error: message`.
import type { LogLevel } from "./config.ts";

const RANK: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
  readonly level: LogLevel;
}

/** createLogger writes lines at `level` and above through `write` (stderr by default). */
export function createLogger(level: LogLevel, write: (line: string) => void = (l) => process.stderr.write(l)): Logger {
  const at = (l: LogLevel) => (msg: string) => {
    if (RANK[l] < RANK[level]) return;
    write(`ward agent: ${l === "warn" || l === "error" ? `${l}: ` : l === "debug" ? "debug: " : ""}${msg}\n`);
  };
  return { debug: at("debug"), info: at("info"), warn: at("warn"), error: at("error"), level };
}
