// One error shape for every API failure: {"error": {"code", "message", ...details}}.
// Codes are stable strings clients can switch on; messages are for people.
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";

export class ApiError extends Error {
  override name = "ApiError";
  constructor(
    readonly status: ContentfulStatusCode,
    readonly code: string,
    message: string,
    readonly details?: Record<string, unknown>,
  ) {
    super(message);
  }
}

export function errorBody(code: string, message: string, details?: Record<string, unknown>): { error: Record<string, unknown> } {
  return { error: { code, message, ...details } };
}

export function sendError(c: Context, err: ApiError): Response {
  return c.json(errorBody(err.code, err.message, err.details), err.status);
}
