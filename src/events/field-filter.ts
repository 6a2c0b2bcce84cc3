// Field filters: Tetragon's `--field-filters` (reference/tetragon.md §4 `FieldFilter`;
// pkg/filters/fields.go there). Each filter line is a JSON object
//   {"event_set": [...], "fields": "process.binary,parent.exec_id", "action": "INCLUDE"|"EXCLUDE", "invert_event_set": bool}
// and the filters apply one after another to the event body (the object under the event
// type key; the envelope's node_name and time are never touched):
//   - event_set empty: the filter applies to every event; otherwise only to the listed types,
//     or, with invert_event_set, to every type except those;
//   - INCLUDE keeps only the listed paths (a path names a field and everything under it);
//     EXCLUDE removes them; exclusion therefore wins when both name a field;
//   - an empty field list leaves the event as it is (fmutils' empty mask).
// Paths are dotted proto field names in snake_case, as in the JSON export. A list field
// (e.g. args) applies the rest of the path to each element; a map field (pod_labels) takes
// its keys as path elements, the way fmutils treats proto maps.
import { eventTypeOf, FilterError, parseJsonObjectLines, eventTypeKey, type EventJson } from "./filter.ts";

export type FieldFilterAction = "INCLUDE" | "EXCLUDE";

export interface FieldFilterSpec {
  /** Export keys of the event types it applies to ("process_exec"); empty means all. */
  event_set: string[];
  /** Dotted paths relative to the event body. */
  fields: string[];
  action: FieldFilterAction;
  invert_event_set: boolean;
}

const FIELD_FILTER_KEYS = ["event_set", "fields", "action", "invert_event_set"] as const;

/** A tree of path segments; an empty node means "this field and all under it". */
type Mask = Map<string, Mask>;

/**
 * maskOf builds the mask the way fmutils' NestedMaskFromPaths does, quirks included: empty
 * segments are skipped and nodes are only ever added, so "process" together with
 * "process.binary" selects just process.binary (a longer path narrows a shorter one).
 */
function maskOf(paths: readonly string[]): Mask {
  const root: Mask = new Map();
  for (const p of paths) {
    let node = root;
    for (const part of p.split(".")) {
      if (part === "") continue;
      let next = node.get(part);
      if (next === undefined) {
        next = new Map();
        node.set(part, next);
      }
      node = next;
    }
  }
  return root;
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);

/** include returns a copy of `o` holding only what the mask names. */
function include(o: Obj, mask: Mask): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) {
    const sub = mask.get(k);
    if (sub === undefined) continue;
    out[k] = sub.size === 0 ? v : apply(v, sub, include);
  }
  return out;
}

/** exclude returns a copy of `o` without what the mask names. */
function exclude(o: Obj, mask: Mask): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) {
    const sub = mask.get(k);
    if (sub === undefined) out[k] = v;
    else if (sub.size > 0) out[k] = apply(v, sub, exclude);
  }
  return out;
}

function apply(v: unknown, mask: Mask, f: (o: Obj, m: Mask) => Obj): unknown {
  if (isObj(v)) return f(v, mask);
  if (Array.isArray(v)) return v.map((x) => (isObj(x) ? f(x, mask) : x));
  // A scalar under a deeper path: nothing below it to select, keep it as fmutils does.
  return v;
}

export interface CompiledFieldFilter {
  readonly spec: FieldFilterSpec;
  /** Returns the filtered event (a new object) or the same object when the filter does not apply. */
  (ev: EventJson): EventJson;
}

/** compileFieldFilter builds the function for one filter line. */
export function compileFieldFilter(spec: FieldFilterSpec): CompiledFieldFilter {
  const mask = maskOf(spec.fields);
  const types = new Set(spec.event_set);
  const f = ((ev: EventJson): EventJson => {
    const type = eventTypeOf(ev);
    if (types.size > 0) {
      const listed = type !== undefined && types.has(type);
      if (listed === spec.invert_event_set) return ev;
    }
    if (mask.size === 0 || type === undefined) return ev;
    const body = ev[type];
    if (!isObj(body)) return ev;
    const out: EventJson = {};
    // Keep the envelope's key order: the type key first, as the encoder writes it.
    for (const [k, v] of Object.entries(ev)) out[k] = k === type ? (spec.action === "INCLUDE" ? include(body, mask) : exclude(body, mask)) : v;
    return out;
  }) as CompiledFieldFilter;
  Object.defineProperty(f, "spec", { value: spec });
  return f;
}

/** applyFieldFilters runs the filters in order (each sees the previous one's output). */
export function applyFieldFilters(filters: readonly CompiledFieldFilter[], ev: EventJson): EventJson {
  let out = ev;
  for (const f of filters) out = f(out);
  return out;
}

/**
 * parseFieldFilterObject validates one field filter (a parsed JSON line or YAML mapping).
 * `fields` is Tetragon's FieldMask JSON form, one comma-separated string; a list of strings
 * is accepted too. Throws FilterError naming the field.
 */
export function parseFieldFilterObject(v: unknown): FieldFilterSpec {
  if (!isObj(v)) throw new FilterError("", `a field filter must be a JSON object, not ${JSON.stringify(v)}`);
  const spec: FieldFilterSpec = { event_set: [], fields: [], action: "INCLUDE", invert_event_set: false };
  for (const [k, val] of Object.entries(v)) {
    switch (k) {
      case "event_set":
        if (!Array.isArray(val)) throw new FilterError(k, `event_set must be a list of event types, not ${JSON.stringify(val)}`);
        spec.event_set = val.map((t) => {
          if (typeof t !== "string") throw new FilterError(k, `unknown event type ${JSON.stringify(t)} in event_set`);
          try {
            return eventTypeKey(t);
          } catch (err) {
            throw new FilterError(k, (err as Error).message);
          }
        });
        break;
      case "fields": {
        const list = typeof val === "string" ? val.split(",") : Array.isArray(val) && val.every((x) => typeof x === "string") ? (val as string[]) : undefined;
        if (list === undefined) throw new FilterError(k, `fields must be a comma-separated string of paths, not ${JSON.stringify(val)}`);
        spec.fields = list.map((p) => p.trim()).filter((p) => p !== "");
        for (const p of spec.fields) {
          if (!/^[a-z0-9_]+(\.[A-Za-z0-9_-]+)*$/.test(p)) throw new FilterError(k, `bad field path "${p}" (want dotted snake_case names such as process.binary)`);
        }
        break;
      }
      case "action":
        // protojson takes the enum name or its number.
        if (val === "INCLUDE" || val === 0) spec.action = "INCLUDE";
        else if (val === "EXCLUDE" || val === 1) spec.action = "EXCLUDE";
        else throw new FilterError(k, `action must be "INCLUDE" or "EXCLUDE", not ${JSON.stringify(val)}`);
        break;
      case "invert_event_set":
        if (typeof val !== "boolean") throw new FilterError(k, `invert_event_set must be true or false, not ${JSON.stringify(val)}`);
        spec.invert_event_set = val;
        break;
      default:
        throw new FilterError(k, `unknown field filter field "${k}" (known: ${FIELD_FILTER_KEYS.join(", ")})`);
    }
  }
  return spec;
}

/** parseFieldFilterLines reads Tetragon's JSON field filter lines; throws FilterLineError (line, field). */
export function parseFieldFilterLines(text: string): FieldFilterSpec[] {
  return parseJsonObjectLines(text, parseFieldFilterObject);
}
