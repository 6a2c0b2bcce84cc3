// A small Kubernetes API client: authenticated GETs, and ListWatch, which keeps a local copy
// of one resource collection in step with the server the way client-go's reflector does:
//   1. LIST (paged with limit/continue) -> items and the list's resourceVersion;
//   2. WATCH ?watch=1&resourceVersion=RV&allowWatchBookmarks=true: newline-delimited JSON
//      events {type: ADDED|MODIFIED|DELETED|BOOKMARK|ERROR, object}, each moving RV on;
//   3. when the watch ends (server timeout, connection lost), watch again from RV after a
//      backoff; when RV is too old (an ERROR event whose Status has code 410, or HTTP 410
//      Gone), LIST again and diff the new list against the copy, so every object deleted or
//      changed during the gap is reported and none that still exists is lost.
import type { K8sConfig } from "./config.ts";
import { readFileSync } from "node:fs";

export interface ObjectMeta {
  name?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  ownerReferences?: { kind?: string; name?: string; controller?: boolean }[];
  [k: string]: unknown;
}

export interface K8sObject {
  apiVersion?: string;
  kind?: string;
  metadata?: ObjectMeta;
  [k: string]: unknown;
}

export class K8sApiError extends Error {
  override name = "K8sApiError";
  readonly code = "k8s_api";
  constructor(
    readonly status: number,
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`GET ${path}: ${status ? `HTTP ${status}: ` : ""}${message}`, options);
  }
}

/** What the client needs from fetch (tests may pass their own). */
export type Fetch = (url: string, init: RequestInit & { tls?: Record<string, unknown> }) => Promise<Response>;

export class K8sClient {
  #tokenCache: { value: string; at: number } | undefined;

  constructor(
    readonly config: K8sConfig,
    private readonly doFetch: Fetch = fetch as unknown as Fetch,
  ) {}

  /** The bearer token: inline, or re-read from its file at most once a minute (rotation). */
  #token(): string | undefined {
    if (this.config.token !== undefined) return this.config.token;
    if (this.config.tokenFile === undefined) return undefined;
    const now = Date.now();
    if (this.#tokenCache === undefined || now - this.#tokenCache.at > 60_000) {
      this.#tokenCache = { value: readFileSync(this.config.tokenFile, "utf8").trim(), at: now };
    }
    return this.#tokenCache.value;
  }

  /** GET path (with its query); the response is returned whatever its status. */
  async get(path: string, signal?: AbortSignal): Promise<Response> {
    const headers: Record<string, string> = { Accept: "application/json" };
    const token = this.#token();
    if (token) headers.Authorization = `Bearer ${token}`;
    const c = this.config;
    const tls: Record<string, unknown> = {};
    if (c.ca !== undefined) tls.ca = c.ca;
    if (c.cert !== undefined) tls.cert = c.cert;
    if (c.key !== undefined) tls.key = c.key;
    if (c.insecureSkipTlsVerify) tls.rejectUnauthorized = false;
    try {
      return await this.doFetch(`${c.server}${path}`, { headers, ...(signal ? { signal } : {}), ...(Object.keys(tls).length > 0 ? { tls } : {}) });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new K8sApiError(0, path, (err as Error).message, { cause: err });
    }
  }

  /** GET path as JSON; a non-2xx status is a K8sApiError carrying the Status message. */
  async getJson(path: string, signal?: AbortSignal): Promise<unknown> {
    const r = await this.get(path, signal);
    const text = await r.text();
    if (!r.ok) throw new K8sApiError(r.status, path, statusMessage(text));
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new K8sApiError(r.status, path, "response is not JSON");
    }
  }
}

function statusMessage(text: string): string {
  try {
    const s = JSON.parse(text) as { message?: unknown };
    if (typeof s.message === "string") return s.message;
  } catch {
    // not a Status object
  }
  return text.slice(0, 200) || "(empty body)";
}

/** Gone: the resourceVersion (or continue token) asked for is older than the server keeps. */
class GoneError extends Error {}

export interface WatchHandlers<T extends K8sObject> {
  added?(obj: T): void;
  modified?(obj: T, old: T): void;
  deleted?(obj: T): void;
  /** After each complete LIST has been applied (first sync and every re-list). */
  synced?(): void;
  /** A failure that will be retried (the watch keeps going). */
  error?(err: Error): void;
}

export interface ListWatchOptions {
  /** Collection path, e.g. "/api/v1/pods" or "/apis/cilium.io/v1alpha1/tracingpolicies". */
  path: string;
  /** Extra query parameters (fieldSelector, labelSelector). */
  query?: Record<string, string>;
  /** Page size for LIST. */
  limit?: number;
  /** Server-side watch timeout; the watch is then renewed from the last resourceVersion. */
  timeoutSeconds?: number;
  backoff?: { initialMs: number; maxMs: number };
}

/** Counters, for status and tests. */
export interface ListWatchStats {
  lists: number;
  /** Watch requests made. */
  watches: number;
  gone: number;
  bookmarks: number;
  errors: number;
}

const keyOf = (o: K8sObject): string => `${o.metadata?.namespace ?? ""}/${o.metadata?.name ?? ""}`;

/**
 * ListWatch mirrors one collection. start() runs the loop in the background; stop() ends it
 * and waits. `items` is the current copy keyed "namespace/name". Handlers run synchronously
 * in event order; a handler that throws is reported through `error` and does not stop the watch.
 */
export class ListWatch<T extends K8sObject> {
  readonly items = new Map<string, T>();
  readonly stats: ListWatchStats = { lists: 0, watches: 0, gone: 0, bookmarks: 0, errors: 0 };
  /** The last failure (kept after recovery, with its time, so status can say what happened). */
  lastError: { message: string; at: string } | undefined;
  #rv = "";
  #isSynced = false;
  #watching = false;
  /** True from a LIST until the first watch event: a 410 then means the list itself was stale. */
  #listedNoEvents = false;
  #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #synced: Promise<void>;
  #resolveSynced!: () => void;

  constructor(
    private readonly client: K8sClient,
    private readonly opts: ListWatchOptions,
    private readonly handlers: WatchHandlers<T>,
  ) {
    this.#synced = new Promise((r) => (this.#resolveSynced = r));
  }

  /** The collection path. */
  get path(): string {
    return this.opts.path;
  }

  /** The resourceVersion the next watch starts from. */
  get resourceVersion(): string {
    return this.#rv;
  }

  /** Resolves once the first LIST has been applied. */
  get synced(): Promise<void> {
    return this.#synced;
  }

  /** True once the first LIST has been applied. */
  get isSynced(): boolean {
    return this.#isSynced;
  }

  /** True while a watch request is open (false between a watch ending and the next one). */
  get watching(): boolean {
    return this.#watching;
  }

  start(): void {
    if (this.#loop !== undefined) return;
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  #url(extra: Record<string, string>): string {
    const q = new URLSearchParams({ ...(this.opts.query ?? {}), ...extra });
    return `${this.opts.path}?${q.toString()}`;
  }

  #call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#fail(err instanceof Error ? err : new Error(String(err)));
    }
  }

  #fail(err: Error): void {
    this.stats.errors++;
    this.lastError = { message: err.message, at: new Date().toISOString() };
    try {
      this.handlers.error?.(err);
    } catch {
      // an error handler that throws must not end the loop
    }
  }

  async #run(): Promise<void> {
    const signal = this.#abort.signal;
    const { initialMs, maxMs } = this.opts.backoff ?? { initialMs: 500, maxMs: 30_000 };
    let delay = initialMs;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.#list(signal);
          needList = false;
        }
        await this.#watch(signal);
        // A watch the server ended normally: renew at once.
        delay = initialMs;
        continue;
      } catch (err) {
        if (signal.aborted) break;
        if (err instanceof GoneError) {
          this.stats.gone++;
          // Re-list at once, unless the list we just made is already too old: a server that
          // keeps answering 410 must not be hammered in a loop, so that goes through backoff.
          const again = needList || this.#listedNoEvents;
          needList = true;
          if (!again) continue;
          this.#fail(new K8sApiError(410, this.opts.path, "410 Gone right after a list (its resourceVersion already compacted); re-listing after backoff"));
        } else {
          this.#fail(err as Error);
        }
      }
      // Backoff with jitter: many agents reconnecting at once must not stampede the server.
      await sleep(delay * (0.75 + Math.random() * 0.5), signal);
      delay = Math.min(maxMs, delay * 2);
    }
  }

  async #list(signal: AbortSignal): Promise<void> {
    const fresh = new Map<string, T>();
    let cont = "";
    let rv = "";
    for (;;) {
      const path = this.#url({ limit: String(this.opts.limit ?? 500), ...(cont ? { continue: cont } : {}) });
      const r = await this.client.get(path, signal);
      const text = await r.text();
      // An expired continue token: the list must start over.
      if (r.status === 410) throw new GoneError();
      if (!r.ok) throw new K8sApiError(r.status, path, statusMessage(text));
      const list = JSON.parse(text) as { metadata?: { resourceVersion?: string; continue?: string }; items?: T[] };
      for (const item of list.items ?? []) fresh.set(keyOf(item), item);
      rv = list.metadata?.resourceVersion ?? rv;
      cont = list.metadata?.continue ?? "";
      if (!cont) break;
    }
    this.stats.lists++;
    // Diff against the copy: what vanished was deleted while we were not watching.
    for (const [k, old] of this.items) {
      const now = fresh.get(k);
      if (now === undefined || now.metadata?.uid !== old.metadata?.uid) {
        this.items.delete(k);
        this.#call(() => this.handlers.deleted?.(old));
      }
    }
    for (const [k, obj] of fresh) {
      const old = this.items.get(k);
      this.items.set(k, obj);
      if (old === undefined) this.#call(() => this.handlers.added?.(obj));
      else if (old.metadata?.resourceVersion !== obj.metadata?.resourceVersion) this.#call(() => this.handlers.modified?.(obj, old));
    }
    this.#rv = rv;
    this.#listedNoEvents = true;
    this.#isSynced = true;
    this.#call(() => this.handlers.synced?.());
    this.#resolveSynced();
  }

  async #watch(signal: AbortSignal): Promise<void> {
    const path = this.#url({ watch: "1", resourceVersion: this.#rv, allowWatchBookmarks: "true", timeoutSeconds: String(this.opts.timeoutSeconds ?? 300) });
    this.stats.watches++;
    // From the request on: a server may send the headers of a watch only with its first event.
    this.#watching = true;
    try {
      const r = await this.client.get(path, signal);
      if (r.status === 410) {
        await r.body?.cancel();
        throw new GoneError();
      }
      if (!r.ok) throw new K8sApiError(r.status, path, statusMessage(await r.text()));
      if (r.body === null) return;
      const reader = r.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl).trim();
            buf = buf.slice(nl + 1);
            if (line !== "") this.#event(line, path);
          }
        }
        if (buf.trim() !== "") this.#event(buf.trim(), path);
      } finally {
        reader.releaseLock();
      }
    } finally {
      this.#watching = false;
    }
  }

  #event(line: string, path: string): void {
    let ev: { type?: string; object?: T & { code?: number; message?: string } };
    try {
      ev = JSON.parse(line) as typeof ev;
    } catch {
      throw new K8sApiError(200, path, `watch event is not JSON: ${line.slice(0, 100)}`);
    }
    const obj = ev.object;
    if (obj === undefined) throw new K8sApiError(200, path, `watch event without object: ${line.slice(0, 100)}`);
    const rv = obj.metadata?.resourceVersion;
    if (ev.type !== "ERROR") this.#listedNoEvents = false;
    switch (ev.type) {
      case "ADDED":
      case "MODIFIED": {
        const k = keyOf(obj);
        const old = this.items.get(k);
        this.items.set(k, obj);
        if (old === undefined) this.#call(() => this.handlers.added?.(obj));
        else this.#call(() => this.handlers.modified?.(obj, old));
        break;
      }
      case "DELETED": {
        const k = keyOf(obj);
        const old = this.items.get(k);
        this.items.delete(k);
        this.#call(() => this.handlers.deleted?.(old ?? obj));
        break;
      }
      case "BOOKMARK":
        this.stats.bookmarks++;
        break;
      case "ERROR":
        // A Status object: 410 means our resourceVersion has been compacted away.
        if (obj.code === 410) throw new GoneError();
        throw new K8sApiError(typeof obj.code === "number" ? obj.code : 0, path, `watch ERROR: ${obj.message ?? line.slice(0, 100)}`);
      default:
        throw new K8sApiError(200, path, `unknown watch event type ${JSON.stringify(ev.type)}`);
    }
    if (rv) this.#rv = rv;
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}
