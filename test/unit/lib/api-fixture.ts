// A Hono app over real store and hub with a small stand-in policy parser, for API tests.
// The stand-in reports positions the way the real validator does (file, line, column,
// path), which is all the API relies on.
import { isMap, isScalar, LineCounter, parseDocument } from "yaml";
import { EventHub } from "../../../src/agent/event-hub.ts";
import { PolicyStore, type ParseOutcome, type PolicyDiagnostic } from "../../../src/agent/policy-store.ts";
import { createApp } from "../../../src/api/app.ts";
import type { AgentStatus, ApiDeps } from "../../../src/api/deps.ts";

export const TOKEN = "t0ken-for-tests-0123456789abcdef";
export const AUTH = { Authorization: `Bearer ${TOKEN}` };

const TOP_LEVEL = ["apiVersion", "kind", "metadata", "spec"];

export function fakeParse(text: string, file: string): ParseOutcome {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc });
  const errors: PolicyDiagnostic[] = [];
  const at = (offset: number) => {
    const p = lc.linePos(offset);
    return { line: p.line, column: p.col };
  };
  for (const e of doc.errors) errors.push({ file, ...at(e.pos[0]), path: "", message: e.message.split("\n")[0]! });
  if (errors.length) return { ok: false, errors };
  const root = doc.contents;
  if (!isMap(root)) return { ok: false, errors: [{ file, line: 1, column: 1, path: "", message: "policy must be a mapping" }] };
  let name: string | undefined;
  for (const item of root.items) {
    const key = isScalar(item.key) ? String(item.key.value) : "?";
    if (!TOP_LEVEL.includes(key)) {
      errors.push({ file, ...at(isScalar(item.key) ? item.key.range![0] : 0), path: key, message: `unknown field "${key}"` });
    }
    if (key === "metadata" && isMap(item.value)) {
      const n = item.value.get("name");
      if (typeof n === "string") name = n;
    }
    if (key === "kind" && isScalar(item.value) && item.value.value !== "TracingPolicy") {
      errors.push({ file, ...at(item.value.range![0]), path: "kind", message: `kind must be TracingPolicy, not "${String(item.value.value)}"` });
    }
  }
  if (name === undefined) errors.push({ file, line: 1, column: 1, path: "metadata.name", message: "metadata.name is required" });
  if (errors.length) return { ok: false, errors };
  return { ok: true, policies: [{ name: name!, kind: "TracingPolicy", document: doc.toJS() }] };
}

export function policyYaml(name: string): string {
  return `apiVersion: cilium.io/v1alpha1\nkind: TracingPolicy\nmetadata:\n  name: ${name}\nspec: {}\n`;
}

export interface Fixture {
  app: ReturnType<typeof createApp>;
  store: PolicyStore;
  hub: EventHub;
  deps: ApiDeps;
  setReady(v: boolean): void;
}

export function makeFixture(overrides: Partial<ApiDeps> = {}, subscriberQueue = 64): Fixture {
  const store = new PolicyStore(fakeParse);
  const hub = new EventHub({ subscriberQueue });
  let ready = true;
  const status = (): AgentStatus => {
    const ev = hub.counters();
    return {
      version: "0.0.0-test",
      node_name: "node-a",
      pid: 1,
      started_at: "2026-01-01T00:00:00.000Z",
      uptime_seconds: 5,
      ready,
      sensors: [{ name: "process", state: ready ? "running" : "starting" }],
      events: { total: ev.total, by_type: ev.byType, lost: ev.lost, subscribers: ev.subscribers, sinks: [] },
      process_cache_size: 3,
      policies: store.list(),
    };
  };
  const deps: ApiDeps = { token: TOKEN, ready: () => ready, status, policies: store, events: hub, ...overrides };
  return { app: createApp(deps), store, hub, deps, setReady: (v) => (ready = v) };
}

export function execEvent(binary: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { process_exec: { process: { binary, pid: 42, ...extra } }, node_name: "node-a", time: "2026-01-01T00:00:00Z" };
}
