// Request body helpers: a hard size limit (counted while reading, not trusted from
// Content-Length), strict JSON with positions, and unknown-field checks.
import { parseDocument } from "yaml";
import { ApiError } from "./errors.ts";

export const DEFAULT_MAX_BODY = 1 << 20;

/** readText reads the body as UTF-8, failing with 400 once it passes `limit` bytes. */
export async function readText(req: Request, limit: number): Promise<string> {
  const declared = Number(req.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > limit) throw tooLarge(limit);
  if (!req.body) return "";
  const chunks: Uint8Array[] = [];
  let size = 0;
  const reader = req.body.getReader();
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      throw tooLarge(limit);
    }
    chunks.push(value);
  }
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(Buffer.concat(chunks));
  } catch {
    throw new ApiError(400, "bad_encoding", "request body is not valid UTF-8");
  }
}

function tooLarge(limit: number): ApiError {
  return new ApiError(400, "body_too_large", `request body is larger than ${limit} bytes`, { limit });
}

/**
 * parseJson parses strictly; a syntax error becomes 400 "bad_json". The runtime's message
 * carries no position, so the position comes from the YAML parser (JSON is YAML's flow
 * syntax) when it also finds the mistake.
 */
export function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    const message = err instanceof Error ? err.message.replace(/^JSON Parse error: /, "") : String(err);
    const first = parseDocument(text).errors[0]?.linePos?.[0];
    const where = first ? { line: first.line, column: first.col } : undefined;
    const at = where ? ` at line ${where.line}, column ${where.column}` : "";
    throw new ApiError(400, "bad_json", `malformed JSON${at}: ${message}`, { errors: [{ message, ...where }] });
  }
}

/** objectWith checks `v` is a plain object holding only `allowed` keys; 400 otherwise. */
export function objectWith(v: unknown, allowed: readonly string[], what: string): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ApiError(400, "bad_body", `${what} must be a JSON object`);
  }
  const unknown = Object.keys(v).filter((k) => !allowed.includes(k));
  if (unknown.length > 0) {
    throw new ApiError(400, "unknown_field", `${what}: unknown field${unknown.length > 1 ? "s" : ""} ${unknown.map((k) => `"${k}"`).join(", ")} (allowed: ${allowed.join(", ")})`, { fields: unknown });
  }
  return v as Record<string, unknown>;
}

/** onlyQuery rejects query parameters a route does not take. */
export function onlyQuery(url: string, allowed: readonly string[]): URLSearchParams {
  const q = new URL(url).searchParams;
  for (const k of q.keys()) {
    if (!allowed.includes(k)) throw new ApiError(400, "unknown_parameter", `unknown query parameter "${k}"${allowed.length ? ` (allowed: ${allowed.join(", ")})` : ""}`);
  }
  return q;
}
