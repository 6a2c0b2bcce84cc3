// PolicyStore holds the policies the agent was given (flags at start, or the API), with
// their enabled flag and mode. Every change is validated first and applied whole or not at
// all. Once the agent attaches a PolicyBackend (the policy manager, src/sensors/manager.ts)
// every policy goes through it: a change the kernel side refuses leaves the store unchanged.
// Before that, the state says plainly that policies are not enforced.
import type { SourceMap } from "../policy/types.ts";
import { locate } from "../policy/validate.ts";
import type { HookStatus } from "../sensors/manager.ts";
import type { ScopeReport } from "../workloads/scopes.ts";
import { formatDiagnostic, type PolicyDiagnostic } from "./policy-diagnostic.ts";
import type { PersistedPolicy, PolicyPersistence } from "./policy-persist.ts";

export type PolicyMode = "enforce" | "monitor";
export const POLICY_MODES: readonly PolicyMode[] = ["enforce", "monitor"];

// One problem found in a policy document, with where it is. Its own module, so the CLI's
// remote policy commands format the agent's diagnostics without loading this store (and yaml).
export { formatDiagnostic, type PolicyDiagnostic } from "./policy-diagnostic.ts";

/** What the parser hands back for a valid document. */
export interface ParsedPolicy {
  name: string;
  kind: string;
  /** Mode the document asks for (spec.options policy-mode), if it says. */
  mode?: PolicyMode;
  /** The typed policy, opaque here; the engine consumes it. */
  document: unknown;
  /** Field path -> line:column in the text, so a refusal at apply time can say where to fix it. */
  positions?: SourceMap;
}

export type ParseOutcome = { ok: true; policies: ParsedPolicy[] } | { ok: false; errors: PolicyDiagnostic[] };

/** Parses and validates policy text (YAML or JSON, maybe several documents). */
export type PolicyParser = (text: string, file: string) => ParseOutcome;

/** The state string reported while no hook sensor can enforce policies. */
export const STATE_NOT_ENFORCED = "loaded (not enforced: hook sensors not built yet)";
export const STATE_DISABLED = "disabled";

export interface PolicyRecord {
  name: string;
  kind: string;
  enabled: boolean;
  mode: PolicyMode;
  /** Where it came from: "file:<path>" or "api". */
  source: string;
  addedAt: string;
  text: string;
  document: unknown;
  positions?: SourceMap;
}

/** The JSON view of a policy, as /v1/policies returns it. */
export interface PolicyInfo {
  name: string;
  kind: string;
  enabled: boolean;
  mode: PolicyMode;
  state: string;
  source: string;
  added_at: string;
  /** Per hook: the kernel mechanism and how each action is honored (once a backend applies policies). */
  hooks?: HookStatus[];
  counters?: Record<string, number>;
  /** bpfDir-relative directory of its pinned objects (--keep-sensors-on-exit) */
  pinned?: string;
  /** taken over from a previous agent's pins at this agent's start */
  adopted?: boolean;
  /** Scoped policies: the scope, its kernel id and the workloads in it now (members 0: it enforces nothing yet). */
  scope?: ScopeReport;
}

/**
 * What applies policies to the kernel. Every method is all-or-nothing and throws (leaving the
 * kernel as it was) when the change cannot be made.
 */
export interface PolicyBackend {
  apply(record: PolicyRecord): void;
  remove(name: string): void;
  setEnabled(name: string, enabled: boolean): void;
  setMode(name: string, mode: PolicyMode): void;
  info(name: string): { state: string; hooks: HookStatus[]; counters?: Record<string, number>; scope?: ScopeReport; pinned?: string; adopted?: boolean };
  /** Once every policy of the start is applied (adoption of pins is settled then). */
  finishStart?(): void;
  /** Detaches everything; keepAttached: what is pinned stays (--keep-sensors-on-exit). */
  close(opts?: { keepAttached?: boolean }): void;
}

export class PolicyInvalidError extends Error {
  override name = "PolicyInvalidError";
  readonly code = "policy_invalid";
  constructor(readonly errors: PolicyDiagnostic[]) {
    super(errors.map(formatDiagnostic).join("\n"));
  }
}

/**
 * The kernel side refused a valid policy (a hook or action this kernel cannot honor, or
 * attaching failed). A PolicyInvalidError, so the API and the CLI report it the same way:
 * with every reason, and nothing applied.
 */
export class PolicyRejectedError extends PolicyInvalidError {
  override name = "PolicyRejectedError";
}

export class PolicyExistsError extends Error {
  override name = "PolicyExistsError";
  readonly code = "policy_exists";
  constructor(readonly policy: string) {
    super(`policy "${policy}" already exists; delete it first`);
  }
}

export class PolicyNotFoundError extends Error {
  override name = "PolicyNotFoundError";
  readonly code = "policy_not_found";
  constructor(readonly policy: string) {
    super(`no policy named "${policy}"`);
  }
}

export interface AddOptions {
  source: string;
  /** File name used in diagnostics. */
  file: string;
  /** Overrides the mode the document asks for. */
  mode?: PolicyMode;
}

/**
 * A problem line of a refusal: a field path, maybe the hook's name, and the reason, as the
 * hook resolution writes them ("spec.kprobes[0] (security_file_permission): no kprobes").
 */
const PROBLEM = /^((?:spec|metadata)(?:\.[A-Za-z_][\w-]*|\[\d+\])*)(?: \(([^)]*)\))?: (.+)$/;

/**
 * The backend's error as diagnostics: one per line of its message (resolution lists one
 * problem a line). With the file and the policy's positions, a line that starts with a field
 * path becomes `file:line:col: path: reason`, and any other line (the "policy X cannot be
 * applied" header, an attach failure) points at the policy's metadata.name.
 */
function rejection(err: unknown, file: string | undefined, positions: SourceMap | undefined): PolicyRejectedError {
  const msg = err instanceof Error ? err.message : String(err);
  const at = (path: string): Pick<PolicyDiagnostic, "line" | "column"> => {
    if (file === undefined || positions === undefined) return {};
    const p = locate(positions, path);
    return { line: p.line, column: p.column };
  };
  const lines = msg.split("\n").map((l) => l.trim()).filter((l) => l !== "");
  return new PolicyRejectedError(
    lines.map((line): PolicyDiagnostic => {
      const where = file !== undefined ? { file } : {};
      const m = PROBLEM.exec(line);
      if (m === null) return { ...where, ...at("metadata.name"), message: line };
      const [, path = "", hook, reason = ""] = m;
      // the path says where; keep the hook's name when the reason does not already say it
      const message = hook !== undefined && !reason.includes(hook) ? `${hook}: ${reason}` : reason;
      return { ...where, ...at(path), path, message };
    }),
  );
}

/**
 * Applies records in order, all or nothing: when the backend refuses one, the ones already
 * applied are removed again (last first) and reject(err, refused record) is thrown.
 */
function applyOrUndo(b: PolicyBackend, records: readonly PolicyRecord[], reject: (err: unknown, r: PolicyRecord) => Error): void {
  const applied: PolicyRecord[] = [];
  for (const r of records) {
    try {
      b.apply(r);
      applied.push(r);
    } catch (err) {
      for (const a of applied.reverse()) b.remove(a.name);
      throw reject(err, r);
    }
  }
}

/** Policies with this source are kept in the policy store directory (file policies have their files). */
const PERSISTED_SOURCE = "api";

export class PolicyStore {
  readonly #byName = new Map<string, PolicyRecord>();
  #backend: PolicyBackend | undefined;
  #persist: PolicyPersistence | undefined;

  constructor(private readonly parse: PolicyParser) {}

  /**
   * From now on API policies are written through `p` (the policy store directory): each
   * change reaches the kernel, then the directory; when the write fails the kernel change is
   * undone and the error thrown, so the directory and the running set never disagree.
   */
  attachPersistence(p: PolicyPersistence): void {
    this.#persist = p;
  }

  /**
   * restore adds policies read back from the policy store directory, with their saved
   * enabled flag, mode, source and time. All or nothing, like addAll; nothing is written back.
   * `file` is the record's file, named in diagnostics.
   */
  restore(items: { file: string; policy: PersistedPolicy }[]): PolicyInfo[] {
    const errors: PolicyDiagnostic[] = [];
    const pending: PolicyRecord[] = [];
    for (const { file, policy: saved } of items) {
      const out = this.parse(saved.text, file);
      if (!out.ok) {
        errors.push(...out.errors.map((e) => ({ ...e, file: e.file ?? file })));
        continue;
      }
      const p = out.policies.find((x) => x.name === saved.name);
      if (p === undefined) {
        errors.push({ file, message: `the saved text holds no policy named "${saved.name}"` });
        continue;
      }
      if (this.#byName.has(p.name) || pending.some((r) => r.name === p.name)) {
        errors.push({ file, path: "metadata.name", message: `policy "${p.name}" is also given by ${this.#byName.get(p.name)?.source ?? "another saved record"}; remove one` });
        continue;
      }
      pending.push({
        name: p.name,
        kind: p.kind,
        enabled: saved.enabled,
        mode: saved.mode,
        source: saved.source,
        addedAt: saved.added_at,
        text: saved.text,
        document: p.document,
        ...(p.positions !== undefined ? { positions: p.positions } : {}),
      });
    }
    if (errors.length > 0) throw new PolicyInvalidError(errors);
    const b = this.#backend;
    if (b !== undefined) applyOrUndo(b, pending, (err) => rejection(err, undefined, undefined));
    for (const r of pending) this.#byName.set(r.name, r);
    return pending.map((r) => this.#infoOf(r));
  }

  #persisted(r: PolicyRecord): PolicyPersistence | undefined {
    return r.source === PERSISTED_SOURCE ? this.#persist : undefined;
  }

  /**
   * Hands every stored policy to the backend (the agent calls this once its sensors run) and
   * routes later changes through it. All or nothing: every policy is tried, so one start
   * reports every refused policy with its reasons; on any refusal the ones applied are
   * removed again, PolicyRejectedError carries all the reasons, and the store keeps no backend.
   */
  attachBackend(backend: PolicyBackend): void {
    const applied: string[] = [];
    const refused: PolicyDiagnostic[] = [];
    for (const r of this.#byName.values()) {
      try {
        backend.apply(r);
        applied.push(r.name);
      } catch (err) {
        const file = r.source.startsWith("file:") ? r.source.slice(5) : undefined;
        refused.push(...rejection(err, file, r.positions).errors);
      }
    }
    if (refused.length > 0) {
      for (const n of applied.reverse()) backend.remove(n);
      throw new PolicyRejectedError(refused);
    }
    this.#backend = backend;
  }

  /** Detaches every policy from the kernel (agent stop); the store keeps them. keepAttached: pinned ones stay. */
  detachBackend(opts: { keepAttached?: boolean } = {}): void {
    const b = this.#backend;
    this.#backend = undefined;
    b?.close(opts);
  }

  /**
   * add validates the text and stores every policy in it. It throws PolicyInvalidError with
   * every diagnostic, or PolicyExistsError, and then the store is unchanged.
   */
  add(text: string, opts: AddOptions): PolicyInfo[] {
    return this.addAll([{ text, ...opts }]);
  }

  /** addAll is add over several files at once: all of them are stored, or none. */
  addAll(items: (AddOptions & { text: string })[]): PolicyInfo[] {
    const errors: PolicyDiagnostic[] = [];
    const pending: PolicyRecord[] = [];
    const seen = new Set<string>();
    const now = new Date().toISOString();
    for (const item of items) {
      const out = this.parse(item.text, item.file);
      if (!out.ok) {
        errors.push(...out.errors.map((e) => ({ ...e, file: e.file ?? item.file })));
        continue;
      }
      if (out.policies.length === 0) {
        errors.push({ file: item.file, message: "no policy in this document" });
        continue;
      }
      for (const p of out.policies) {
        if (seen.has(p.name)) {
          errors.push({ file: item.file, path: "metadata.name", message: `policy name "${p.name}" given twice` });
          continue;
        }
        seen.add(p.name);
        pending.push({
          name: p.name,
          kind: p.kind,
          enabled: true,
          mode: item.mode ?? p.mode ?? "enforce",
          source: item.source,
          addedAt: now,
          text: item.text,
          document: p.document,
          ...(p.positions !== undefined ? { positions: p.positions } : {}),
        });
      }
    }
    if (errors.length > 0) throw new PolicyInvalidError(errors);
    for (const r of pending) if (this.#byName.has(r.name)) throw new PolicyExistsError(r.name);
    const b = this.#backend;
    if (b !== undefined) applyOrUndo(b, pending, (err, r) => rejection(err, items.find((i) => i.source === r.source)?.file, r.positions));
    const saved: PolicyRecord[] = [];
    try {
      for (const r of pending) {
        this.#persisted(r)?.save(r);
        saved.push(r);
      }
    } catch (err) {
      // Not written, so not applied: the running set stays what the directory says.
      for (const r of saved.reverse()) this.#persisted(r)?.remove(r.name);
      if (b !== undefined) for (const r of [...pending].reverse()) b.remove(r.name);
      throw err;
    }
    for (const r of pending) this.#byName.set(r.name, r);
    return pending.map((r) => this.#infoOf(r));
  }

  list(): PolicyInfo[] {
    return [...this.#byName.values()].sort((a, b) => a.name.localeCompare(b.name)).map((r) => this.#infoOf(r));
  }

  get(name: string): PolicyRecord | undefined {
    return this.#byName.get(name);
  }

  info(name: string): PolicyInfo {
    return this.#infoOf(this.#must(name));
  }

  delete(name: string): void {
    const r = this.#must(name);
    // The file goes first: if it cannot be removed, the policy stays applied and saved (a
    // policy that came back after a restart, having been reported deleted, would be worse).
    const p = this.#persisted(r);
    p?.remove(name);
    try {
      this.#backend?.remove(name);
    } catch (err) {
      p?.save(r);
      throw err;
    }
    this.#byName.delete(name);
  }

  setEnabled(name: string, enabled: boolean): PolicyInfo {
    return this.#change(name, "enabled", enabled, (b, v) => b.setEnabled(name, v));
  }

  setMode(name: string, mode: PolicyMode): PolicyInfo {
    return this.#change(name, "mode", mode, (b, v) => b.setMode(name, v));
  }

  /**
   * One field of a stored policy changed in the kernel first (a refusal leaves everything as
   * it was), then in the record and on disk; when the save fails, the record and the kernel
   * get the old value back and the save's error is thrown.
   */
  #change<K extends "enabled" | "mode">(name: string, key: K, value: PolicyRecord[K], kernel: (b: PolicyBackend, v: PolicyRecord[K]) => void): PolicyInfo {
    const r = this.#must(name);
    const was = r[key];
    try {
      if (this.#backend !== undefined) kernel(this.#backend, value);
    } catch (err) {
      throw rejection(err, undefined, undefined);
    }
    r[key] = value;
    try {
      this.#persisted(r)?.save(r);
    } catch (err) {
      r[key] = was;
      if (this.#backend !== undefined) kernel(this.#backend, was);
      throw err;
    }
    return this.#infoOf(r);
  }

  #infoOf(r: PolicyRecord): PolicyInfo {
    const info = infoOf(r);
    if (this.#backend === undefined) return info;
    const k = this.#backend.info(r.name);
    return { ...info, state: k.state, hooks: k.hooks, ...(k.counters ? { counters: k.counters } : {}), ...(k.scope ? { scope: k.scope } : {}), ...(k.pinned !== undefined ? { pinned: k.pinned } : {}), ...(k.adopted ? { adopted: true } : {}) };
  }

  /** Counts by reported state, for /metrics. */
  countByState(): Record<string, number> {
    const out: Record<string, number> = { enabled: 0, disabled: 0 };
    for (const r of this.#byName.values()) out[r.enabled ? "enabled" : "disabled"]!++;
    return out;
  }

  #must(name: string): PolicyRecord {
    const r = this.#byName.get(name);
    if (!r) throw new PolicyNotFoundError(name);
    return r;
  }
}

function infoOf(r: PolicyRecord): PolicyInfo {
  return {
    name: r.name,
    kind: r.kind,
    enabled: r.enabled,
    mode: r.mode,
    state: r.enabled ? STATE_NOT_ENFORCED : STATE_DISABLED,
    source: r.source,
    added_at: r.addedAt,
  };
}
