// The HTTP API as a Hono app. createApp wires small route modules; it holds no state and
// starts no server (the agent serves app.fetch; tests call app.request).
import { Hono } from "hono";
import { bearerAuth } from "./auth.ts";
import { ApiError, errorBody, sendError } from "./errors.ts";
import { eventRoutes } from "./routes/events.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { policyRoutes } from "./routes/policies.ts";
import { healthRoutes, statusRoutes } from "./routes/status.ts";
import { workloadRoutes } from "./routes/workloads.ts";
import { workloadHookRoutes } from "./routes/workload-hook.ts";
import type { ApiDeps } from "./deps.ts";

export function createApp(deps: ApiDeps): Hono {
  const app = new Hono();
  app.onError((err, c) => {
    if (err instanceof ApiError) return sendError(c, err);
    return c.json(errorBody("internal", err instanceof Error ? err.message : String(err)), 500);
  });
  app.notFound((c) => c.json(errorBody("not_found", `no route for ${c.req.method} ${c.req.path}`), 404));

  app.route("/", healthRoutes(deps));
  app.route("/", metricsRoutes(deps));

  // Auth runs for every /v1 path, matched or not, so a 404 never tells an
  // unauthenticated caller which routes exist.
  app.use("/v1/*", bearerAuth(deps.token));
  app.use("/v1", bearerAuth(deps.token));
  app.route("/v1", statusRoutes(deps));
  app.route("/v1", eventRoutes(deps));
  app.route("/v1/policies", policyRoutes(deps));
  app.route("/v1/workloads", workloadRoutes(deps));
  app.route("/v1/workloads", workloadHookRoutes(deps));
  return app;
}
