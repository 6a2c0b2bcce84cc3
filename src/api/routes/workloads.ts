// GET /v1/workloads: the agent's workload registry, read-only (the OCI hook's PUT/DELETE
// routes live beside it in their own module). cgroup ids are decimal strings: JSON numbers
// lose precision past 2^53.
import { Hono } from "hono";
import type { Workload } from "../../workloads/registry.ts";
import { onlyQuery } from "../body.ts";
import { ApiError } from "../errors.ts";
import type { ApiDeps } from "../deps.ts";

/** The JSON view of one workload. */
export interface WorkloadJson {
  key: string;
  cgroup_id: string;
  cgroup_path: string;
  runtime: string;
  container_id?: string;
  name?: string;
  image?: string;
  annotations: Readonly<Record<string, string>>;
  pod?: Workload["pod"];
  source: string;
}

export function workloadJson(w: Workload): WorkloadJson {
  return {
    key: w.key,
    cgroup_id: w.cgroupId.toString(),
    cgroup_path: w.cgroupPath,
    runtime: w.runtime,
    ...(w.containerId !== undefined ? { container_id: w.containerId } : {}),
    ...(w.name !== undefined ? { name: w.name } : {}),
    ...(w.image !== undefined ? { image: w.image } : {}),
    annotations: w.annotations,
    ...(w.pod !== undefined ? { pod: w.pod } : {}),
    source: w.source,
  };
}

export function workloadRoutes(deps: ApiDeps): Hono {
  const r = new Hono();
  r.get("/", (c) => {
    onlyQuery(c.req.url, []);
    const reg = deps.workloads;
    if (reg === undefined) throw new ApiError(404, "not_found", "this agent keeps no workload registry");
    return c.json({ workloads: reg.all().sort((a, b) => a.key.localeCompare(b.key)).map(workloadJson) });
  });
  r.get("/:key", (c) => {
    onlyQuery(c.req.url, []);
    const w = deps.workloads?.get(c.req.param("key"));
    if (w === undefined) throw new ApiError(404, "workload_not_found", `no workload ${JSON.stringify(c.req.param("key"))}`);
    return c.json(workloadJson(w));
  });
  return r;
}
