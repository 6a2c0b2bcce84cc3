// The state file tells the CLI where the running agent listens and where its token is.
// It holds no secret (the token stays in its own 0600 file).
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";

export const DEFAULT_STATE_FILE = "/run/ward/agent.json";
export const DEFAULT_TOKEN_FILE = "/run/ward/token";

export interface AgentState {
  pid: number;
  /** Base URL of the API, e.g. "http://127.0.0.1:54321". */
  url: string;
  token_file: string;
  node_name: string;
  version: string;
  started_at: string;
}

export class StateFileError extends Error {
  override name = "StateFileError";
  readonly code = "state_file";
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`state file ${path}: ${message}`);
  }
}

/** The state file the CLI and agent use: $WARD_STATE_FILE or /run/ward/agent.json. */
export function stateFilePath(): string {
  return process.env.WARD_STATE_FILE || DEFAULT_STATE_FILE;
}

/** readState returns the state in `path`, undefined when there is no file; throws on a corrupt one. */
export function readState(path: string): AgentState | undefined {
  if (!existsSync(path)) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(readFileSync(path, "utf8"));
  } catch (err) {
    throw new StateFileError(path, `unreadable: ${(err as Error).message}`);
  }
  const o = v as Partial<AgentState>;
  if (typeof o !== "object" || o === null || typeof o.pid !== "number" || typeof o.url !== "string" || typeof o.token_file !== "string") {
    throw new StateFileError(path, "missing pid, url or token_file");
  }
  return o as AgentState;
}

/** writeState replaces the file atomically (write + rename), so a reader never sees half of it. */
export function writeState(path: string, state: AgentState): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(state, null, 2)}\n`, { mode: 0o644 });
  renameSync(tmp, path);
}

/** removeState deletes the file if it still belongs to `pid` (a newer agent may own it now). */
export function removeState(path: string, pid: number): void {
  try {
    const s = readState(path);
    if (s && s.pid !== pid) return;
  } catch {
    // A corrupt file is ours to clean up as much as anyone's.
  }
  rmSync(path, { force: true });
}

/** pidAlive says whether a process with this pid exists (signal 0 probes without sending). */
export function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "EPERM";
  }
}
