// GET /v1/status and GET /healthz.
import { Hono } from "hono";
import { onlyQuery } from "../body.ts";
import { errorBody } from "../errors.ts";
import type { ApiDeps } from "../deps.ts";

export function statusRoutes(deps: ApiDeps): Hono {
  const r = new Hono();
  r.get("/status", (c) => {
    onlyQuery(c.req.url, []);
    return c.json(deps.status());
  });
  return r;
}

/** /healthz is 200 only once every sensor is attached; before that 503, so scripts can wait on it. */
export function healthRoutes(deps: ApiDeps): Hono {
  const r = new Hono();
  r.get("/healthz", (c) => (deps.ready() ? c.json({ status: "ok" }) : c.json(errorBody("not_ready", "sensors are still attaching"), 503)));
  return r;
}
