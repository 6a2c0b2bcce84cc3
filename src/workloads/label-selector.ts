// Kubernetes LabelSelector semantics (meta/v1 LabelSelector), used by podSelector and
// containerSelector: matchLabels and matchExpressions are ANDed; an empty selector ({})
// matches everything; In needs the key with one of the values, NotIn matches when the key is
// absent or has none of the values, Exists / DoesNotExist test the key only.
// (A null selector means "no filtering" to a policy; that is the caller's decision, not a
// selector that matches everything.)

export type SelectorOperator = "In" | "NotIn" | "Exists" | "DoesNotExist";
export const SELECTOR_OPERATORS: readonly SelectorOperator[] = ["In", "NotIn", "Exists", "DoesNotExist"];

export interface LabelSelectorRequirement {
  key: string;
  operator: SelectorOperator;
  values?: string[];
}

export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

export type Labels = Readonly<Record<string, string>>;

/** A selector that is not a LabelSelector, with the field path of the problem. */
export class LabelSelectorError extends Error {
  override name = "LabelSelectorError";
  readonly code = "label_selector_invalid";
  constructor(
    readonly path: string,
    message: string,
  ) {
    super(`${path}: ${message}`);
  }
}

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * parseLabelSelector checks an untyped selector (from a policy document or a CR) and returns
 * it typed. `path` prefixes errors ("spec.podSelector"). Throws LabelSelectorError.
 */
export function parseLabelSelector(v: unknown, path: string): LabelSelector {
  if (!isRecord(v)) throw new LabelSelectorError(path, "must be a mapping with matchLabels and/or matchExpressions");
  for (const k of Object.keys(v)) {
    if (k !== "matchLabels" && k !== "matchExpressions") throw new LabelSelectorError(`${path}.${k}`, "unknown field (want matchLabels or matchExpressions)");
  }
  const out: LabelSelector = {};
  if (v.matchLabels !== undefined && v.matchLabels !== null) {
    if (!isRecord(v.matchLabels)) throw new LabelSelectorError(`${path}.matchLabels`, "must be a mapping of label to value");
    const ml: Record<string, string> = {};
    for (const [k, val] of Object.entries(v.matchLabels)) {
      if (typeof val !== "string") throw new LabelSelectorError(`${path}.matchLabels.${k}`, `value must be a string, not ${JSON.stringify(val)}`);
      ml[k] = val;
    }
    out.matchLabels = ml;
  }
  if (v.matchExpressions !== undefined && v.matchExpressions !== null) {
    if (!Array.isArray(v.matchExpressions)) throw new LabelSelectorError(`${path}.matchExpressions`, "must be a list");
    out.matchExpressions = v.matchExpressions.map((e, i): LabelSelectorRequirement => {
      const at = `${path}.matchExpressions[${i}]`;
      if (!isRecord(e)) throw new LabelSelectorError(at, "must be a mapping with key, operator and values");
      if (typeof e.key !== "string" || e.key === "") throw new LabelSelectorError(`${at}.key`, "must be a non-empty string");
      if (typeof e.operator !== "string" || !SELECTOR_OPERATORS.includes(e.operator as SelectorOperator)) {
        throw new LabelSelectorError(`${at}.operator`, `must be one of ${SELECTOR_OPERATORS.join(", ")}, not ${JSON.stringify(e.operator)}`);
      }
      const op = e.operator as SelectorOperator;
      const values = e.values ?? [];
      if (!Array.isArray(values) || values.some((x) => typeof x !== "string")) throw new LabelSelectorError(`${at}.values`, "must be a list of strings");
      if ((op === "In" || op === "NotIn") && values.length === 0) throw new LabelSelectorError(`${at}.values`, `operator ${op} needs at least one value`);
      if ((op === "Exists" || op === "DoesNotExist") && values.length > 0) throw new LabelSelectorError(`${at}.values`, `operator ${op} takes no values`);
      return { key: e.key, operator: op, ...(values.length > 0 ? { values: values as string[] } : {}) };
    });
  }
  return out;
}

/** matchesLabels: does the label set satisfy the selector? Pure. */
export function matchesLabels(sel: LabelSelector, labels: Labels): boolean {
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) {
    if (labels[k] !== v) return false;
  }
  for (const r of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, r.key);
    switch (r.operator) {
      case "In":
        if (!has || !(r.values ?? []).includes(labels[r.key]!)) return false;
        break;
      case "NotIn":
        if (has && (r.values ?? []).includes(labels[r.key]!)) return false;
        break;
      case "Exists":
        if (!has) return false;
        break;
      case "DoesNotExist":
        if (has) return false;
        break;
    }
  }
  return true;
}
