// The CLI's way to the agent: find it (--server URL, else the state file the agent wrote),
// read its token, and make authenticated requests. Failures are typed so commands can say
// what to do next (start the agent, run as root, pass --server).
import { DEFAULT_TOKEN_FILE, pidAlive, readState, stateFilePath } from "../agent/state-file.ts";
import { readToken, TokenFileError } from "../agent/token.ts";

/** No agent to talk to: no state file, a stale one, or nothing listening at the URL. */
export class AgentNotFoundError extends Error {
  override name = "AgentNotFoundError";
  readonly code = "agent_not_found";
}

/** The agent answered with an error status; `code` and `body` are from its JSON error. */
export class ApiRequestError extends Error {
  override name = "ApiRequestError";
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

export interface Endpoint {
  url: string;
  token: string;
}

function normaliseUrl(u: string): string {
  const withScheme = /^[a-z]+:\/\//i.test(u) ? u : `http://${u}`;
  return withScheme.replace(/\/+$/, "");
}

function tokenFrom(file: string): string {
  try {
    return readToken(file);
  } catch (err) {
    const why = err instanceof TokenFileError ? err.message : String(err);
    const hint = /EACCES|permission/i.test(why) ? " (run as root, or point WARD_TOKEN_FILE at a copy you can read)" : "";
    throw new AgentNotFoundError(`${why}${hint}`);
  }
}

/**
 * resolveEndpoint finds the agent. With --server (WARD_SERVER) the URL is taken as given and
 * the token comes from WARD_TOKEN, WARD_TOKEN_FILE, the state file's token file or the
 * default token file, in that order. Otherwise the state file names both.
 */
export function resolveEndpoint(env: NodeJS.ProcessEnv = process.env): Endpoint {
  const statePath = env.WARD_STATE_FILE || stateFilePath();
  const state = (() => {
    try {
      return readState(statePath);
    } catch (err) {
      if (env.WARD_SERVER) return undefined;
      throw new AgentNotFoundError((err as Error).message);
    }
  })();
  const token = (fallbackFile: string) => env.WARD_TOKEN || tokenFrom(env.WARD_TOKEN_FILE || fallbackFile);
  if (env.WARD_SERVER) {
    return { url: normaliseUrl(env.WARD_SERVER), token: token(state?.token_file ?? DEFAULT_TOKEN_FILE) };
  }
  if (!state) {
    throw new AgentNotFoundError(`no agent found: ${statePath} does not exist (is \`ward agent\` running? or pass --server URL)`);
  }
  if (!pidAlive(state.pid)) {
    throw new AgentNotFoundError(`no agent found: ${statePath} names pid ${state.pid}, which is not running (stale state file)`);
  }
  return { url: normaliseUrl(state.url), token: token(state.token_file) };
}

export interface RequestOptions {
  body?: string;
  contentType?: string;
  accept?: string;
  signal?: AbortSignal;
}

export class AgentClient {
  constructor(readonly endpoint: Endpoint) {}

  static fromEnv(): AgentClient {
    return new AgentClient(resolveEndpoint());
  }

  /** request sends one call; throws AgentNotFoundError when nothing answers, ApiRequestError on an error status. */
  async request(method: string, path: string, opts: RequestOptions = {}): Promise<Response> {
    const headers: Record<string, string> = { Authorization: `Bearer ${this.endpoint.token}` };
    if (opts.contentType) headers["Content-Type"] = opts.contentType;
    if (opts.accept) headers.Accept = opts.accept;
    let res: Response;
    try {
      res = await fetch(`${this.endpoint.url}${path}`, { method, headers, body: opts.body, signal: opts.signal });
    } catch (err) {
      if ((err as Error).name === "AbortError") throw err;
      throw new AgentNotFoundError(`cannot reach the agent at ${this.endpoint.url}: ${(err as Error).message}`);
    }
    if (!res.ok) throw await errorOf(res);
    return res;
  }

  async json<T>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const res = await this.request(method, path, opts);
    return (await res.json()) as T;
  }
}

async function errorOf(res: Response): Promise<ApiRequestError> {
  const text = await res.text();
  let body: unknown = text;
  let code = `http_${res.status}`;
  let message = text.trim() || res.statusText;
  try {
    body = JSON.parse(text);
    const e = (body as { error?: { code?: unknown; message?: unknown } }).error;
    if (typeof e?.code === "string") code = e.code;
    if (typeof e?.message === "string") message = e.message;
  } catch {
    // Not JSON: keep the raw text as the message.
  }
  return new ApiRequestError(res.status, code, `agent answered ${res.status}: ${message}`, body);
}
