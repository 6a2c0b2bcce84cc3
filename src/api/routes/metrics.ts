// GET /metrics: Prometheus text. Unauthenticated, like Tetragon's metrics server: it carries
// counts only (no events, no policy contents), and scrapers rarely hold bearer tokens.
// The API listens on loopback unless told otherwise, which bounds who can scrape it.
import { Hono } from "hono";
import { renderMetrics } from "../metrics.ts";
import type { ApiDeps } from "../deps.ts";

export function metricsRoutes(deps: ApiDeps): Hono {
  const r = new Hono();
  r.get("/metrics", (c) => c.body(renderMetrics(deps.status()), 200, { "content-type": "text/plain; version=0.0.4; charset=utf-8" }));
  return r;
}
