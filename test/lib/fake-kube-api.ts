// A Kubernetes API server stand-in on loopback (Bun.serve) that speaks list and watch as the
// API reference describes them, for the k8s client tests (no API server exists here):
// - LIST returns {kind: <Kind>List, metadata: {resourceVersion, continue?}, items}, paged
//   by limit/continue; an expired continue token is HTTP 410;
// - WATCH (?watch=1&resourceVersion=RV&allowWatchBookmarks=true) streams newline-delimited
//   JSON events {type, object} over chunked transfer encoding: first every change after RV,
//   then live ones; BOOKMARK events carry only metadata.resourceVersion;
// - a watch from a resourceVersion older than the compaction point gets one ERROR event
//   whose object is a Status with code 410 ("too old resource version"), then the stream ends;
//   httpGoneOnWatch makes it answer HTTP 410 instead (some servers and proxies do);
// - fieldSelector spec.nodeName=NODE filters pods, metadata.name=NAME any kind (how one
//   node is watched); Bearer token checked when set.
// resourceVersions are one increasing counter, as etcd revisions are.

export interface FakeObject {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; namespace?: string; uid?: string; resourceVersion?: string; generation?: number; labels?: Record<string, string>; [k: string]: unknown };
  spec?: Record<string, unknown>;
  [k: string]: unknown;
}

interface Change {
  rv: number;
  type: "ADDED" | "MODIFIED" | "DELETED";
  object: FakeObject;
}

interface Watcher {
  path: string;
  fields: FieldSelector | undefined;
  bookmarks: boolean;
  send(line: string): void;
  /** Raw bytes as one chunk of the stream. */
  sendBytes(b: Uint8Array): void;
  close(): void;
}

/** One `field=value` of a fieldSelector (the two the agent uses). */
type FieldSelector = { field: "spec.nodeName" | "metadata.name"; value: string };

const keyOf = (o: FakeObject) => `${o.metadata.namespace ?? ""}/${o.metadata.name}`;

export class FakeKubeApi {
  #rv = 100;
  #compactedBelow = 0;
  readonly #objects = new Map<string, Map<string, FakeObject>>();
  readonly #history = new Map<string, Change[]>();
  readonly #watchers = new Set<Watcher>();
  readonly requests: string[] = [];
  httpGoneOnWatch = false;
  /** The next N requests answer HTTP 500 (to test reconnect with backoff). */
  failNext = 0;
  readonly server: ReturnType<typeof Bun.serve>;
  #uid = 0;

  /** `port`: a fixed loopback port (a server that comes up where a kubeconfig already points); default a free one. */
  constructor(readonly opts: { token?: string; kinds: Record<string, string>; port?: number }) {
    this.server = Bun.serve({ hostname: "127.0.0.1", port: opts.port ?? 0, idleTimeout: 0, fetch: (req) => this.#handle(req) });
  }

  get url(): string {
    return `http://127.0.0.1:${this.server.port}`;
  }

  get resourceVersion(): string {
    return String(this.#rv);
  }

  /** Active watch streams, by collection path. */
  watching(path: string): number {
    return [...this.#watchers].filter((w) => w.path === path).length;
  }

  #store(path: string): Map<string, FakeObject> {
    let m = this.#objects.get(path);
    if (!m) this.#objects.set(path, (m = new Map()));
    return m;
  }

  #record(path: string, type: Change["type"], obj: FakeObject): void {
    const c: Change = { rv: this.#rv, type, object: structuredClone(obj) };
    let h = this.#history.get(path);
    if (!h) this.#history.set(path, (h = []));
    h.push(c);
    for (const w of this.#watchers) if (w.path === path && this.#visible(w.fields, c.object)) w.send(JSON.stringify({ type, object: c.object }));
  }

  #visible(fields: FieldSelector | undefined, o: FakeObject): boolean {
    if (fields === undefined) return true;
    if (fields.field === "metadata.name") return o.metadata.name === fields.value;
    return (o.spec as { nodeName?: string } | undefined)?.nodeName === fields.value;
  }

  /** Creates (or replaces) an object; returns it with uid and resourceVersion set. */
  put(path: string, obj: FakeObject): FakeObject {
    const store = this.#store(path);
    const old = store.get(keyOf(obj));
    this.#rv++;
    const o = structuredClone(obj);
    o.metadata.uid = old?.metadata.uid ?? o.metadata.uid ?? `00000000-0000-4000-8000-${String(++this.#uid).padStart(12, "0")}`;
    o.metadata.resourceVersion = String(this.#rv);
    const specChanged = old === undefined || JSON.stringify(old.spec) !== JSON.stringify(o.spec);
    o.metadata.generation = (old?.metadata.generation ?? 0) + (specChanged ? 1 : 0);
    const kind = this.opts.kinds[path];
    if (kind !== undefined) o.kind = kind;
    store.set(keyOf(o), o);
    this.#record(path, old ? "MODIFIED" : "ADDED", o);
    return o;
  }

  remove(path: string, name: string, namespace?: string): void {
    const store = this.#store(path);
    const k = `${namespace ?? ""}/${name}`;
    const old = store.get(k);
    if (!old) throw new Error(`fake api: no ${k} in ${path}`);
    store.delete(k);
    this.#rv++;
    this.#record(path, "DELETED", { ...old, metadata: { ...old.metadata, resourceVersion: String(this.#rv) } });
  }

  /** Changes an object without telling the watchers: as if it happened during a gap. */
  putSilently(path: string, obj: FakeObject): void {
    const ws = [...this.#watchers];
    for (const w of ws) this.#watchers.delete(w);
    this.put(path, obj);
    for (const w of ws) this.#watchers.add(w);
  }

  removeSilently(path: string, name: string, namespace?: string): void {
    const ws = [...this.#watchers];
    for (const w of ws) this.#watchers.delete(w);
    this.remove(path, name, namespace);
    for (const w of ws) this.#watchers.add(w);
  }

  /** Sends a BOOKMARK at the current resourceVersion to the watches that asked for them. */
  bookmark(path: string, rv = this.#rv): void {
    for (const w of this.#watchers) {
      if (w.path !== path || !w.bookmarks) continue;
      w.send(JSON.stringify({ type: "BOOKMARK", object: { kind: this.opts.kinds[path], apiVersion: "v1", metadata: { resourceVersion: String(rv) } } }));
    }
  }

  /**
   * Changes objects as put() does, but delivers the watch events to the open watches of
   * `path` cut into pieces, `gapMs` apart, each its own chunk of the chunked stream: `cuts`
   * are byte offsets into the events' newline-delimited JSON, or a function of those bytes
   * that returns them (so one event can end mid-way,
   * several can share a chunk, and a multi-byte character can be split), as a proxy or a
   * busy server cuts a stream. Returns the objects stored.
   */
  async putChunked(path: string, objs: FakeObject[], cuts: number[] | ((stream: Uint8Array) => number[]), gapMs = 5): Promise<FakeObject[]> {
    const ws = [...this.#watchers].filter((w) => w.path === path);
    for (const w of ws) this.#watchers.delete(w);
    const stored = objs.map((o) => this.put(path, o));
    for (const w of ws) this.#watchers.add(w);
    const h = this.#history.get(path) ?? [];
    const events = h.slice(-objs.length).map((c) => `${JSON.stringify({ type: c.type, object: c.object })}\n`);
    const bytes = new TextEncoder().encode(events.join(""));
    const offsets = typeof cuts === "function" ? cuts(bytes) : cuts;
    const at = [0, ...offsets.filter((c) => c > 0 && c < bytes.length).sort((a, b) => a - b), bytes.length];
    for (let i = 0; i + 1 < at.length; i++) {
      for (const w of ws) w.sendBytes(bytes.slice(at[i], at[i + 1]));
      if (i + 2 < at.length) await Bun.sleep(gapMs);
    }
    return stored;
  }

  /** Advances the resourceVersion without a change to `path` (other collections move it). */
  bump(n = 1): void {
    this.#rv += n;
  }

  /**
   * Compacts history: watches from an older resourceVersion will get 410. With `endWatches`,
   * open watches receive the 410 ERROR event now and end (as when the server drops its watch cache).
   */
  compact(endWatches: boolean): void {
    // A list now returns this revision, and a watch from it must work (as with etcd compaction).
    this.#compactedBelow = this.#rv;
    for (const h of this.#history.values()) h.length = 0;
    if (!endWatches) return;
    for (const w of [...this.#watchers]) {
      w.send(JSON.stringify(goneEvent(0, this.#rv)));
      w.close();
    }
  }

  /** Ends every open watch stream cleanly (as a server-side timeout does). */
  endWatches(): void {
    for (const w of [...this.#watchers]) w.close();
  }

  stop(): void {
    this.endWatches();
    this.server.stop(true);
  }

  #handle(req: Request): Response {
    const url = new URL(req.url);
    this.requests.push(`${url.pathname}${url.search}`);
    if (this.opts.token !== undefined && req.headers.get("authorization") !== `Bearer ${this.opts.token}`) {
      return Response.json({ kind: "Status", apiVersion: "v1", status: "Failure", message: "Unauthorized", reason: "Unauthorized", code: 401 }, { status: 401 });
    }
    if (this.failNext > 0) {
      this.failNext--;
      return Response.json({ kind: "Status", apiVersion: "v1", status: "Failure", message: "etcdserver: leader changed", reason: "InternalError", code: 500 }, { status: 500 });
    }
    const path = url.pathname;
    const kind = this.opts.kinds[path];
    if (kind === undefined) return Response.json({ kind: "Status", apiVersion: "v1", status: "Failure", message: `the server could not find the requested resource`, reason: "NotFound", code: 404 }, { status: 404 });
    const fs = url.searchParams.get("fieldSelector");
    let fields: FieldSelector | undefined;
    if (fs) {
      const m = /^(spec\.nodeName|metadata\.name)=(.*)$/.exec(fs);
      if (m === null) return Response.json({ kind: "Status", apiVersion: "v1", status: "Failure", message: `fake api: fieldSelector ${fs} not supported`, reason: "BadRequest", code: 400 }, { status: 400 });
      fields = { field: m[1] as FieldSelector["field"], value: m[2]! };
    }
    if (url.searchParams.get("watch") === "1" || url.searchParams.get("watch") === "true") return this.#watch(path, fields, url.searchParams);
    return this.#list(path, kind, fields, url.searchParams);
  }

  #list(path: string, kind: string, fields: FieldSelector | undefined, q: URLSearchParams): Response {
    const all = [...this.#store(path).values()].filter((o) => this.#visible(fields, o)).sort((a, b) => keyOf(a).localeCompare(keyOf(b)));
    const limit = Number(q.get("limit") ?? "0");
    let offset = 0;
    let rv = this.#rv;
    const cont = q.get("continue");
    if (cont) {
      const [o, r] = cont.split(":").map(Number) as [number, number];
      if (r < this.#compactedBelow) {
        return Response.json({ kind: "Status", apiVersion: "v1", status: "Failure", message: "The provided continue parameter is too old", reason: "Expired", code: 410 }, { status: 410 });
      }
      offset = o;
      rv = r;
    }
    const items = limit > 0 ? all.slice(offset, offset + limit) : all.slice(offset);
    const next = limit > 0 && offset + limit < all.length ? `${offset + limit}:${rv}` : undefined;
    return Response.json({ kind: `${kind}List`, apiVersion: "v1", metadata: { resourceVersion: String(rv), ...(next ? { continue: next } : {}) }, items });
  }

  #watch(path: string, fields: FieldSelector | undefined, q: URLSearchParams): Response {
    const from = Number(q.get("resourceVersion") ?? "0");
    if (from !== 0 && from < this.#compactedBelow) {
      if (this.httpGoneOnWatch) {
        return Response.json({ kind: "Status", apiVersion: "v1", status: "Failure", message: `too old resource version: ${from} (${this.#compactedBelow})`, reason: "Expired", code: 410 }, { status: 410 });
      }
      return new Response(`${JSON.stringify(goneEvent(from, this.#compactedBelow))}\n`, { headers: { "Content-Type": "application/json" } });
    }
    const enc = new TextEncoder();
    let w: Watcher | undefined;
    const stream = new ReadableStream<Uint8Array>({
      start: (controller) => {
        let open = true;
        w = {
          path,
          fields,
          bookmarks: q.get("allowWatchBookmarks") === "true",
          send: (line) => {
            if (open) controller.enqueue(enc.encode(`${line}\n`));
          },
          sendBytes: (b) => {
            if (open) controller.enqueue(b);
          },
          close: () => {
            if (!open) return;
            open = false;
            this.#watchers.delete(w!);
            controller.close();
          },
        };
        for (const c of this.#history.get(path) ?? []) {
          if (c.rv > from && this.#visible(fields, c.object)) w.send(JSON.stringify({ type: c.type, object: c.object }));
        }
        this.#watchers.add(w);
      },
      cancel: () => {
        if (w) this.#watchers.delete(w);
      },
    });
    return new Response(stream, { headers: { "Content-Type": "application/json", "Transfer-Encoding": "chunked" } });
  }
}

function goneEvent(from: number, oldest: number) {
  return { type: "ERROR", object: { kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message: `too old resource version: ${from} (${oldest})`, reason: "Expired", code: 410 } };
}

/** A pod object as the API returns it (the fields the pod cache reads). */
export function podFixture(p: {
  name: string;
  namespace?: string;
  node: string;
  labels?: Record<string, string>;
  /** state: the ContainerState the kubelet reports (default running; terminated as after exit 0). */
  containers?: { name: string; id: string; image?: string; state?: "running" | "terminated" }[];
  owner?: { kind: string; name: string };
}): FakeObject {
  return {
    apiVersion: "v1",
    kind: "Pod",
    metadata: {
      name: p.name,
      namespace: p.namespace ?? "default",
      labels: p.labels ?? {},
      ...(p.owner ? { ownerReferences: [{ apiVersion: "apps/v1", kind: p.owner.kind, name: p.owner.name, controller: true, uid: "11111111-2222-4333-8444-555555555555" }] } : {}),
    },
    spec: { nodeName: p.node, containers: (p.containers ?? []).map((c) => ({ name: c.name, image: c.image ?? "docker.io/library/busybox:1.36" })) },
    status: {
      phase: "Running",
      containerStatuses: (p.containers ?? []).map((c) => ({
        name: c.name,
        containerID: `containerd://${c.id}`,
        image: c.image ?? "docker.io/library/busybox:1.36",
        imageID: "docker.io/library/busybox@sha256:c3839dd800b9eb7603340509769c43e146a74c63dca3045a8e7dc8ee07e53966",
        ready: true,
        restartCount: 0,
        started: c.state !== "terminated",
        state:
          c.state === "terminated"
            ? { terminated: { exitCode: 0, reason: "Completed", startedAt: "2026-12-03T16:00:00Z", finishedAt: "2026-12-03T16:05:00Z", containerID: `containerd://${c.id}` } }
            : { running: { startedAt: "2026-12-03T16:00:00Z" } },
      })),
    },
  };
}

/** A Node object as the API returns it (metadata with its labels; the agent reads nothing else). */
export function nodeFixture(name: string, labels: Record<string, string>): FakeObject {
  return { apiVersion: "v1", kind: "Node", metadata: { name, labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", ...labels } }, spec: {} };
}
