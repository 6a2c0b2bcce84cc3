// /v1/policies: add (YAML or JSON body), list, get, delete, enable, disable, set mode.
// Every change goes through the store, which validates first and changes nothing on error.
import { Hono } from "hono";
import { POLICY_MODES, PolicyExistsError, PolicyInvalidError, PolicyNotFoundError, type PolicyMode } from "../../agent/policy-store.ts";
import { PolicyPersistError } from "../../agent/policy-persist.ts";
import { DEFAULT_MAX_BODY, objectWith, onlyQuery, parseJson, readText } from "../body.ts";
import { ApiError } from "../errors.ts";
import type { ApiDeps } from "../deps.ts";

function isJson(contentType: string | undefined): boolean {
  return /^application\/(?:[\w.+-]+\+)?json\b/i.test(contentType ?? "");
}

function parseMode(v: unknown, where: string): PolicyMode {
  if (typeof v === "string" && (POLICY_MODES as readonly string[]).includes(v)) return v as PolicyMode;
  throw new ApiError(400, "bad_mode", `${where}: mode must be one of ${POLICY_MODES.join(", ")}, not ${JSON.stringify(v)}`);
}

/** Store errors become API errors with stable codes. */
function translate(err: unknown): never {
  if (err instanceof PolicyInvalidError) {
    throw new ApiError(400, err.code, "policy is invalid", { errors: err.errors });
  }
  if (err instanceof PolicyExistsError) throw new ApiError(409, err.code, err.message, { name: err.policy });
  if (err instanceof PolicyNotFoundError) throw new ApiError(404, err.code, err.message, { name: err.policy });
  // The policy store directory could not be written: the change was undone in the kernel too.
  if (err instanceof PolicyPersistError) throw new ApiError(500, err.code, `${err.message} (nothing changed)`);
  throw err;
}

export function policyRoutes(deps: ApiDeps): Hono {
  const r = new Hono();
  const limit = deps.maxBodyBytes ?? DEFAULT_MAX_BODY;

  r.get("/", (c) => {
    onlyQuery(c.req.url, []);
    return c.json({ policies: deps.policies.list() });
  });

  r.post("/", async (c) => {
    const q = onlyQuery(c.req.url, ["mode"]);
    const mode = q.has("mode") ? parseMode(q.get("mode"), "query parameter mode") : undefined;
    const text = await readText(c.req.raw, limit);
    if (text.trim() === "") throw new ApiError(400, "empty_body", "request body is empty; send a TracingPolicy as YAML or JSON");
    // JSON is checked strictly here; the policy parser itself is YAML, which would accept
    // JSON with mistakes YAML tolerates.
    if (isJson(c.req.header("content-type"))) parseJson(text);
    try {
      const added = deps.policies.add(text, { source: "api", file: "<request>", mode });
      return c.json({ policies: added }, 201);
    } catch (err) {
      translate(err);
    }
  });

  r.get("/:name", (c) => {
    onlyQuery(c.req.url, []);
    const name = c.req.param("name");
    try {
      const info = deps.policies.info(name);
      return c.json({ policy: info, text: deps.policies.get(name)?.text ?? "" });
    } catch (err) {
      translate(err);
    }
  });

  r.delete("/:name", (c) => {
    onlyQuery(c.req.url, []);
    const name = c.req.param("name");
    try {
      deps.policies.delete(name);
      return c.json({ deleted: name });
    } catch (err) {
      translate(err);
    }
  });

  // enable/disable take no body; an empty JSON object is tolerated for clients that always send one.
  for (const [action, enabled] of [["enable", true], ["disable", false]] as const) {
    r.post(`/:name/${action}`, async (c) => {
      onlyQuery(c.req.url, []);
      const text = await readText(c.req.raw, limit);
      if (text.trim() !== "") objectWith(parseJson(text), [], `${action} body`);
      try {
        return c.json({ policy: deps.policies.setEnabled(c.req.param("name"), enabled) });
      } catch (err) {
        translate(err);
      }
    });
  }

  r.post("/:name/mode", async (c) => {
    onlyQuery(c.req.url, []);
    const body = objectWith(parseJson(await readText(c.req.raw, limit)), ["mode"], "mode body");
    if (!("mode" in body)) throw new ApiError(400, "missing_field", 'mode body: field "mode" is required ({"mode":"enforce"|"monitor"})');
    const mode = parseMode(body.mode, "mode body");
    try {
      return c.json({ policy: deps.policies.setMode(c.req.param("name"), mode) });
    } catch (err) {
      translate(err);
    }
  });

  return r;
}
