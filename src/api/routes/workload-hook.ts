// PUT and DELETE /v1/workloads/:id: the OCI runtime hook reports a container before it
// starts and forgets it after it stopped (the read-only GET routes are workloads.ts). PUT
// answers only once every subscriber of the registry applied the workload: for scoped
// policies that means the kernel's cgroup-id sets hold it, so the hook can let the container
// start knowing its first instruction is covered.
import { statSync } from "node:fs";
import { join } from "node:path";
import { Hono } from "hono";
import { CONTAINER_ID } from "../../workloads/oci-spec.ts";
import { validateReport, workloadOfReport } from "../../workloads/report.ts";
import type { WorkloadRegistry } from "../../workloads/registry.ts";
import { DEFAULT_MAX_BODY, onlyQuery, parseJson, readText } from "../body.ts";
import { ApiError } from "../errors.ts";
import type { ApiDeps } from "../deps.ts";

function registryOf(deps: ApiDeps): WorkloadRegistry {
  if (deps.workloads === undefined) throw new ApiError(503, "workloads_unavailable", "this agent keeps no workload registry");
  return deps.workloads;
}

function idOf(raw: string): string {
  if (!CONTAINER_ID.test(raw)) throw new ApiError(400, "bad_id", `path: ${JSON.stringify(raw)} is not a container id (1-1024 of letters, digits, _ + . -)`);
  return raw;
}

/** The reported cgroup must be the one the agent sees: same directory, same inode. */
function checkCgroup(root: string, path: string, id: string): void {
  const dir = join(root, path);
  let ino: bigint;
  try {
    ino = statSync(dir, { bigint: true }).ino;
  } catch (err) {
    throw new ApiError(422, "cgroup_not_found", `body.cgroup_path: ${dir} cannot be read by the agent (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); the workload is not registered`, { path: dir });
  }
  if (String(ino) !== id) {
    throw new ApiError(422, "cgroup_mismatch", `body.cgroup_id: ${id}, but ${dir} has id ${ino} as the agent sees it (different cgroup namespace or a reused path?); the workload is not registered`, { path: dir, agent_cgroup_id: String(ino) });
  }
}

export function workloadHookRoutes(deps: ApiDeps): Hono {
  const r = new Hono();
  const limit = deps.maxBodyBytes ?? DEFAULT_MAX_BODY;

  r.put("/:id", async (c) => {
    onlyQuery(c.req.url, []);
    const registry = registryOf(deps);
    const id = idOf(c.req.param("id"));
    const text = await readText(c.req.raw, limit);
    if (text.trim() === "") throw new ApiError(400, "empty_body", "request body is empty; send the workload as JSON ({\"cgroup_path\", \"cgroup_id\", ...})");
    const checked = validateReport(parseJson(text));
    if ("errors" in checked) {
      const list = checked.errors.map((e) => `${e.path}: ${e.message}`).join("; ");
      throw new ApiError(400, "invalid_workload", `workload is invalid: ${list}`, { errors: checked.errors });
    }
    const { report } = checked;
    if (deps.cgroupRoot !== undefined) checkCgroup(deps.cgroupRoot, report.cgroup_path, report.cgroup_id);
    let w = workloadOfReport(id, report);
    const old = registry.get(id);
    // The hook sees no pod labels (annotations carry none); an entry the pod watch made for the
    // same pod has them, and dropping them would take the container out of a podSelector scope.
    if (old?.pod !== undefined && Object.keys(old.pod.labels).length > 0 && (w.pod === undefined || (w.pod.namespace === old.pod.namespace && w.pod.name === old.pod.name))) {
      w = { ...w, pod: { ...old.pod, ...(w.pod ?? {}), labels: old.pod.labels } };
    }
    try {
      await registry.upsert(w);
      // Feeders that enrich the report (the pod watch) write after it: wait for them too.
      await deps.settleWorkloads?.();
    } catch (err) {
      // A scope could not take it: put the registry back as it was, so no scope holds half of it.
      await (old !== undefined ? registry.upsert(old) : registry.remove(id)).catch(() => undefined);
      throw new ApiError(500, "scope_apply_failed", `workload ${id}: a policy scope could not apply it: ${err instanceof Error ? err.message : String(err)}`, { id });
    }
    return c.json({ workload: { key: w.key, cgroup_id: String(w.cgroupId), cgroup_path: w.cgroupPath }, replaced: old !== undefined, applied: true }, old === undefined ? 201 : 200);
  });

  r.delete("/:id", async (c) => {
    onlyQuery(c.req.url, []);
    const registry = registryOf(deps);
    const id = idOf(c.req.param("id"));
    if (registry.get(id) === undefined) throw new ApiError(404, "workload_not_found", `no workload ${JSON.stringify(id)}`, { id });
    try {
      await registry.remove(id);
    } catch (err) {
      throw new ApiError(500, "scope_apply_failed", `workload ${id}: a policy scope could not drop it: ${err instanceof Error ? err.message : String(err)}`, { id });
    }
    return c.json({ deleted: id });
  });

  return r;
}
