// One HTTP request with a timeout, classified for the retry loop: network errors, timeouts,
// 408, 429 and 5xx are transient (retried); any other non-2xx is the server refusing the
// batch, which retrying cannot fix (dropped as "rejected", with the server's words).
import { SendError } from "../sink.ts";

export async function post(what: string, url: string, init: { body: string; headers: Record<string, string> }, timeoutMs: number): Promise<Response> {
  let res: Response;
  try {
    res = await fetch(url, { method: "POST", body: init.body, headers: init.headers, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    throw new SendError(`${what}: ${(err as Error).message}`, true, { cause: err });
  }
  if (res.ok) return res;
  const text = (await res.text().catch(() => "")).trim().slice(0, 300);
  const retryable = res.status === 408 || res.status === 429 || res.status >= 500;
  throw new HttpError(`${what}: HTTP ${res.status}${text ? `: ${text}` : ""}`, retryable, res.status, text);
}

export class HttpError extends SendError {
  override name = "HttpError";
  constructor(
    message: string,
    retryable: boolean,
    readonly status: number,
    readonly body: string,
  ) {
    super(message, retryable);
  }
}

/** Authorization header for user:password in a URL, and the URL without them. */
export function splitCredentials(raw: string): { url: URL; headers: Record<string, string> } {
  const url = new URL(raw);
  const headers: Record<string, string> = {};
  if (url.username !== "" || url.password !== "") {
    headers.authorization = `Basic ${Buffer.from(`${decodeURIComponent(url.username)}:${decodeURIComponent(url.password)}`).toString("base64")}`;
    url.username = "";
    url.password = "";
  }
  return { url, headers };
}
