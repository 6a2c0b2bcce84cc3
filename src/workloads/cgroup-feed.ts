// The cgroup-scan feeder: containers found in the cgroup v2 tree go into the workload
// registry (source "cgroup-scan"), at start and as their cgroups appear and disappear, so
// containerSelector scopes (by container id) and the events' `docker` field work on a host
// without Kubernetes and without the OCI hook.
//
// Mechanism: inotify (fs.watch) on the directories of the tree. A runtime creates a
// container's cgroup with mkdir(2) before it moves the container's first process in, and
// cgroupfs reports that mkdir to inotify like any directory (measured here: the event
// arrives ~0.6 ms after mkdir returns), so the scope is usually in the kernel before the
// container runs anything. Alternatives considered: the process sensor's exec records
// carry the cgroup id, but only once a process in it execs, which is always too late;
// tp_btf/cgroup_mkdir would need another BPF program and ring buffer for what one watch per
// directory gives. Watches cost one inotify watch per cgroup directory that is not inside a
// container (containers' own sub-cgroups are not watched); depth is bounded like
// scanContainerCgroups. The guarantee "before the first instruction" comes from the OCI
// hook, which waits for the scope; this feeder is the best effort for everything else.
import { existsSync, readdirSync, statSync, watch, type FSWatcher } from "node:fs";
import { join } from "node:path";
import { cgroupIdOf, parseCgroupPath } from "./cgroup-identity.ts";
import type { Workload, WorkloadRegistry } from "./registry.ts";

export interface CgroupFeedOptions {
  /** The cgroup v2 root (cgroupV2Mount()). */
  root: string;
  /** Directories watched below the root (default 6, as scanContainerCgroups). */
  maxDepth?: number;
  log?: (msg: string) => void;
}

export class CgroupScanFeed {
  readonly #watchers = new Map<string, FSWatcher>();
  readonly #maxDepth: number;
  #closed = false;
  /** Registry writes in flight, so tests and stop can wait for them. */
  #pending = new Set<Promise<void>>();

  constructor(
    private readonly registry: WorkloadRegistry,
    private readonly opts: CgroupFeedOptions,
  ) {
    this.#maxDepth = opts.maxDepth ?? 6;
  }

  /** Scans the tree and starts watching it; resolves once every container found is in the registry. */
  async start(): Promise<void> {
    this.#visit("", 0);
    await this.settled();
  }

  /** Resolves when the registry writes caused so far have settled. */
  async settled(): Promise<void> {
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
  }

  /** Number of directories watched (status). */
  get watched(): number {
    return this.#watchers.size;
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watchers.values()) w.close();
    this.#watchers.clear();
  }

  /** A directory of the tree (relative path, "" = root): a container, or a directory to watch and descend. */
  #visit(rel: string, depth: number): void {
    if (this.#closed) return;
    if (rel !== "") {
      const id = parseCgroupPath(rel);
      if (id.containerId !== undefined) {
        if (!id.monitor) this.#found(rel, id.containerId, id.runtime);
        return;
      }
    }
    if (depth > this.#maxDepth) return;
    this.#watch(rel, depth);
    let names: string[];
    try {
      names = readdirSync(join(this.opts.root, rel), { withFileTypes: true }).filter((d) => d.isDirectory()).map((d) => d.name);
    } catch {
      return; // removed meanwhile
    }
    for (const n of names) this.#visit(`${rel}/${n}`, depth + 1);
  }

  #watch(rel: string, depth: number): void {
    if (this.#watchers.has(rel)) return;
    let w: FSWatcher;
    try {
      // "rename" is a name created or removed; "change" a write to a file (cgroup.procs...).
      w = watch(join(this.opts.root, rel || "/"), (ev, name) => {
        if (ev === "rename" && typeof name === "string" && name !== "") this.#changed(`${rel}/${name}`, depth + 1);
      });
    } catch (e) {
      this.opts.log?.(`cgroup feed: watch ${join(this.opts.root, rel)}: ${(e as Error).message}`);
      return;
    }
    w.on("error", () => this.#unwatch(rel));
    this.#watchers.set(rel, w);
  }

  #unwatch(rel: string): void {
    for (const [k, w] of this.#watchers) {
      if (k === rel || k.startsWith(`${rel}/`)) {
        w.close();
        this.#watchers.delete(k);
      }
    }
  }

  /** inotify said a name under a watched directory was created or removed. */
  #changed(rel: string, depth: number): void {
    if (this.#closed) return;
    const dir = join(this.opts.root, rel);
    let isDir = false;
    try {
      isDir = existsSync(dir) && statSync(dir).isDirectory();
    } catch {
      isDir = false;
    }
    if (isDir) {
      this.#visit(rel, depth);
      return;
    }
    // Gone: forget what this feeder found at or below it.
    this.#unwatch(rel);
    for (const w of this.registry.all()) {
      if (w.source === "cgroup-scan" && (w.cgroupPath === rel || w.cgroupPath.startsWith(`${rel}/`))) this.#track(this.registry.remove(w.key), `remove ${w.key}`);
    }
  }

  #found(rel: string, containerId: string, runtime: Workload["runtime"]): void {
    const known = this.registry.get(containerId);
    // The OCI hook and the pod watch know more (names, annotations, pod): never overwrite them.
    if (known !== undefined && known.source !== "cgroup-scan") return;
    let cgroupId: bigint;
    try {
      cgroupId = cgroupIdOf(join(this.opts.root, rel));
    } catch {
      return; // removed meanwhile
    }
    if (known !== undefined && known.cgroupId === cgroupId && known.cgroupPath === rel) return;
    const w: Workload = { key: containerId, cgroupId, cgroupPath: rel, runtime, containerId, annotations: {}, source: "cgroup-scan" };
    this.#track(this.registry.upsert(w), `add ${containerId}`);
  }

  #track(p: Promise<void>, what: string): void {
    const q = p.catch((e: unknown) => this.opts.log?.(`cgroup feed: ${what}: ${(e as Error).message}`)).finally(() => this.#pending.delete(q));
    this.#pending.add(q);
  }
}
