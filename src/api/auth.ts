// Bearer token check for /v1. Any failure answers 401 before a handler runs, so an
// unauthenticated request can neither read nor change anything.
import type { MiddlewareHandler } from "hono";
import { tokensEqual } from "../agent/token.ts";
import { errorBody } from "./errors.ts";

export function bearerAuth(token: string): MiddlewareHandler {
  if (token.length === 0) throw new Error("bearerAuth requires a non-empty token");
  return async function bearerAuthCheck(c, next) {
    const header = c.req.header("authorization") ?? "";
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m || !tokensEqual(m[1]!, token)) {
      c.header("WWW-Authenticate", 'Bearer realm="ward"');
      const message = m ? "invalid token" : "missing Authorization: Bearer <token> header";
      return c.json(errorBody("unauthorized", message), 401);
    }
    await next();
  };
}
