// Agent: the running ward agent. It owns the lifecycle (policies -> token -> API server ->
// state file -> sensors -> ready, and the reverse on stop) and wires sensors to the event
// hub, the hub to the export sinks and API subscribers. It never calls process.exit; the
// command decides exit codes.
import { readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { listPins, removeEmptyDirs, unpin } from "../bpf/pin.ts";
import { PinManifestError, readManifest, type PinManifest } from "../sensors/pin-manifest.ts";
import { join, resolve } from "node:path";
import { createApp } from "../api/app.ts";
import type { AgentStatus } from "../api/deps.ts";
import { isCountedSink } from "../export/sink.ts";
import { VERSION } from "../version.ts";
import { listenUrl, type AgentConfig } from "./config.ts";
import { EventHub, type EventSink, type HubEvent } from "./event-hub.ts";
import { BurstReclaimer, memoryStatus, releaseStartupMemory } from "./footprint.ts";
import { PolicyStore, type PolicyBackend, type PolicyParser } from "./policy-store.ts";
import { PolicyDir, PolicyPersistError } from "./policy-persist.ts";
import type { Sensor } from "./sensor.ts";
import { pidAlive, readState, removeState, writeState } from "./state-file.ts";
import { loadOrCreateToken } from "./token.ts";
import type { EventJson } from "../events/filter.ts";
import { ExportGate } from "../export/export-gate.ts";
import { WorkloadRegistry } from "../workloads/registry.ts";
import { KubernetesStartError, KubernetesWatch, loadKubernetesConfig } from "./kubernetes.ts";
import { CgroupScanFeed } from "../workloads/cgroup-feed.ts";
import { cgroupV2Mount } from "../workloads/cgroup-identity.ts";

/** What sensors get from the agent: where to pin, how to name the node, where events go. */
export interface SensorContext {
  nodeName: string;
  bpfDir: string;
  /**
   * Persistence: keep is --keep-sensors-on-exit; previous is what an earlier agent left
   * pinned under bpfDir (its manifest), which the sensors adopt instead of loading anew.
   */
  pins: { keep: boolean; previous: PinManifest | undefined };
  publish(ev: EventJson, line?: string): void;
  /**
   * publish for an event that already has its line and type: its object form (`json`) may
   * be a getter that builds it only when a filter or an API client reads it.
   */
  publishEvent(ev: HubEvent): void;
  recordLoss(reason: string, n?: number): void;
  /** Diagnostics (stderr in the agent). */
  log(msg: string): void;
  /** Every workload the agent knows (OCI hook, pod watch, cgroup scan): scopes and events resolve against it. */
  workloads: WorkloadRegistry;
}

export interface AgentParts {
  parser: PolicyParser;
  /** Builds the default sensor set; called once, in start(). */
  sensors(ctx: SensorContext): Sensor[];
  /** Builds the export sinks; called in start() once policies validated, so a failed start creates no export file. */
  sinks(): EventSink[];
  /**
   * Builds what applies policies to the kernel, over the started sensors (the policy
   * manager). Without it policies are stored and reported as not enforced.
   */
  policyBackend?(ctx: SensorContext, sensors: readonly Sensor[]): PolicyBackend;
  /** Encodes events for sinks and streams (the export module's encoder). */
  encode?: (ev: EventJson) => string;
  log(msg: string): void;
  /** Warnings (log when not given). */
  warn?(msg: string): void;
}

export class AgentStartError extends Error {
  override name = "AgentStartError";
  constructor(
    readonly code: "already_running" | "listen" | "policy_files" | "policy_store" | "pins" | "sensor" | "export" | "unsupported" | "kubernetes",
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Files in a policy directory that are read as policies (others are ignored, like editor backups). */
const POLICY_FILE = /\.(ya?ml|json)$/i;

/** policyFilesOf expands --policy and --policy-dir into file names, sorted for a stable order. */
export function policyFilesOf(config: Pick<AgentConfig, "policyFiles" | "policyDir">): string[] {
  const files = [...config.policyFiles];
  if (config.policyDir !== undefined) {
    let names: string[];
    try {
      names = readdirSync(config.policyDir);
    } catch (err) {
      throw new AgentStartError("policy_files", `--policy-dir ${config.policyDir}: ${(err as Error).message}`);
    }
    for (const n of names.filter((n) => POLICY_FILE.test(n)).sort()) {
      const p = join(config.policyDir, n);
      if (statSync(p).isFile()) files.push(p);
    }
  }
  return files;
}

export class Agent {
  readonly hub: EventHub;
  readonly store: PolicyStore;
  /** The workloads the agent knows; policies' scopes follow it (src/workloads/scopes.ts). The cgroup scan and, with --enable-k8s-api, the pod watch feed it. */
  readonly workloads = new WorkloadRegistry();
  #cgroupFeed: CgroupScanFeed | undefined;
  /** The pod and TracingPolicy watches, with --enable-k8s-api. */
  #k8s: KubernetesWatch | undefined;
  #sensors: Sensor[] = [];
  #server: ReturnType<typeof Bun.serve> | undefined;
  #ready = false;
  /** Full collection after event bursts (footprint.ts). */
  #reclaimer: BurstReclaimer | undefined;
  #stopped = false;
  #startedAt = Date.now();
  #url = "";
  /** The token file start() created, until it succeeds (a failed start removes it). */
  #createdToken: string | undefined;
  /** This start found pins of an earlier agent (a failed start leaves them as they were). */
  #adoptedPins = false;

  constructor(
    readonly config: AgentConfig,
    private readonly parts: AgentParts,
  ) {
    this.hub = new EventHub({ encode: parts.encode });
    this.store = new PolicyStore(parts.parser);
  }

  get url(): string {
    return this.#url;
  }

  get ready(): boolean {
    return this.#ready;
  }

  /**
   * start brings the agent up. Policies are validated before anything touches the kernel or
   * the network: a PolicyInvalidError leaves nothing behind. Any later failure undoes what
   * was done (server closed, sensors detached, state file removed, a token file it created
   * deleted) and rethrows.
   */
  async start(): Promise<void> {
    try {
      await this.#start();
    } catch (err) {
      // A token file this start created would outlive an agent that never ran; one that was
      // there already (clients may hold it) is kept.
      if (this.#createdToken !== undefined) rmSync(this.#createdToken, { force: true });
      throw err;
    }
  }

  async #start(): Promise<void> {
    const { config, parts } = this;
    this.#startedAt = Date.now();
    // Pinned policies outlive the agent, so the next one must know which of them are still
    // wanted: the policy set is the --policy files plus the store, and without a store a
    // policy added through the API would be pinned, then removed at the next start as
    // unknown. So persistence needs the store; say so before anything is touched.
    if (config.keepSensorsOnExit && parts.policyBackend && config.policyStoreDir === undefined) {
      throw new AgentStartError(
        "unsupported",
        "--keep-sensors-on-exit needs --policy-store-dir DIR: pinned policies keep enforcing after the agent exits, and the next agent adopts those its policy set (--policy files and the policy store) still names and removes the others; without a store, policies added through the API would be lost at the next start while still pinned",
      );
    }
    const files = policyFilesOf(config);
    const items = files.map((file) => {
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch (err) {
        throw new AgentStartError("policy_files", `--policy ${file}: ${(err as Error).message}`);
      }
      return { text, file, source: `file:${file}` };
    });
    if (items.length > 0) this.store.addAll(items);
    // A kubeconfig that cannot be read stops the start before anything is touched.
    if (config.enableK8sApi) {
      try {
        this.#k8s = new KubernetesWatch(loadKubernetesConfig(config.k8sKubeconfigPath), {
          nodeName: config.nodeName,
          policies: config.enableTracingPolicyCrd,
          attempts: config.k8sControlplaneRetry,
          registry: this.workloads,
          store: this.store,
          log: parts.log,
          warn: parts.warn ?? parts.log,
        });
      } catch (err) {
        if (err instanceof KubernetesStartError) throw new AgentStartError("kubernetes", err.message, { cause: err });
        throw err;
      }
    }

    const previous = readState(config.stateFile);
    if (previous && previous.pid !== process.pid && pidAlive(previous.pid)) {
      throw new AgentStartError(
        "already_running",
        `another agent is running (pid ${previous.pid}, ${previous.url}, state file ${config.stateFile}); stop it or use --state-file`,
      );
    }
    // The policy store directory is read once no other agent can be writing to it (its temp
    // files would look like a crash's leftovers).
    if (config.policyStoreDir !== undefined) this.#restorePolicies(config.policyStoreDir);
    // What an earlier agent left pinned, read before anything is attached (so nothing of it
    // is detached before it has been adopted) and checked now (an incompatible manifest
    // stops the start, naming it, with nothing changed).
    const pinned = parts.policyBackend ? this.#previousPins() : undefined;
    this.#adoptedPins = pinned !== undefined;
    try {
      for (const s of parts.sinks()) this.hub.addSink(s);
    } catch (err) {
      throw new AgentStartError("export", `open export: ${(err as Error).message}`, { cause: err });
    }
    // Allow/deny lists, field filters and the rate limit sit in front of every sink.
    this.hub.setExportGate(
      new ExportGate({
        allow: config.exportAllowlist,
        deny: config.exportDenylist,
        fieldFilters: config.fieldFilters,
        rateLimit: config.exportRateLimit,
        nodeName: config.nodeName,
        encode: parts.encode,
        warn: parts.warn ?? parts.log,
      }),
    );
    const { token, created } = loadOrCreateToken(config.tokenFile);
    if (created) this.#createdToken = config.tokenFile;
    parts.log(`${created ? "created" : "using"} API token file ${config.tokenFile}`);

    const app = createApp({
      token,
      ready: () => this.#ready,
      status: () => this.status(),
      policies: this.store,
      events: this.hub,
      workloads: this.workloads,
      // Reported cgroups are checked against the tree the agent sees (the ids the kernel filters on).
      cgroupRoot: cgroupV2Mount(),
      // The pod watch merges a hook's report with the pod's labels in a registry write of its
      // own; the hook's PUT waits for it, so a podSelector scope holds before the container runs.
      settleWorkloads: async () => {
        await this.#k8s?.feed.settled();
      },
    });
    try {
      // idleTimeout 0: event streams may be quiet for long stretches and must stay open.
      this.#server = Bun.serve({ hostname: config.listen.host, port: config.listen.port, fetch: app.fetch, idleTimeout: 0, maxRequestBodySize: 4 << 20 });
    } catch (err) {
      throw new AgentStartError("listen", `listen on ${config.listen.host}:${config.listen.port}: ${(err as Error).message}`, { cause: err });
    }
    this.#url = listenUrl({ host: config.listen.host, port: this.#server.port ?? config.listen.port });
    writeState(config.stateFile, {
      pid: process.pid,
      url: this.#url,
      token_file: config.tokenFile,
      node_name: config.nodeName,
      version: VERSION,
      started_at: new Date(this.#startedAt).toISOString(),
    });
    parts.log(`API listening on ${this.#url} (state file ${config.stateFile})`);

    try {
      // The API server must answer before any sensor attaches (as Tetragon, the agent does
      // not start without it); the API above already serves /v1/status meanwhile.
      await this.#kubernetes((k) => k.connect());
      const ctx: SensorContext = {
        nodeName: config.nodeName,
        bpfDir: config.bpfDir,
        pins: { keep: config.keepSensorsOnExit, previous: pinned },
        publish: (ev, line) => this.hub.publish(ev, line),
        publishEvent: (ev) => this.hub.publishEvent(ev),
        recordLoss: (reason, n) => this.hub.recordLoss(reason, n),
        log: parts.log,
        workloads: this.workloads,
      };
      this.#sensors = parts.sensors(ctx);
      for (const s of this.#sensors) {
        try {
          await s.start();
        } catch (err) {
          throw new AgentStartError("sensor", `start sensor ${s.name}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
        }
        parts.log(`sensor ${s.name} running`);
      }
      // Containers already running are in the registry before any policy applies, so a
      // scoped policy holds for them from its first moment.
      const cgroupRoot = cgroupV2Mount();
      if (cgroupRoot !== undefined) {
        this.#cgroupFeed = new CgroupScanFeed(this.workloads, { root: cgroupRoot, log: parts.log });
        await this.#cgroupFeed.start();
        parts.log(`workloads: ${this.workloads.all().length} container cgroup(s) found under ${cgroupRoot}, watching ${this.#cgroupFeed.watched} director${this.#cgroupFeed.watched === 1 ? "y" : "ies"}`);
      } else {
        parts.log("workloads: no cgroup v2 hierarchy mounted: containers are known only from the OCI hook and the pod watch, and scoped policies cannot be enforced");
      }
      // This node's pods are in the registry before any policy applies, so a scoped policy
      // holds for them from its first moment.
      await this.#kubernetes((k) => k.startPods());
      // Policies go to the kernel once the sensors they rely on run. All or nothing: when one
      // cannot be applied, the others are still tried (so the error names every refused file
      // and field), then the applied ones are removed and the start stops
      // (PolicyRejectedError) with nothing of any policy attached.
      if (parts.policyBackend) {
        const backend = parts.policyBackend(ctx, this.#sensors);
        try {
          this.store.attachBackend(backend);
        } catch (err) {
          // The store keeps no backend it refused, so stop() would not close it: its sensors
          // (loaded for the policies tried) would keep their readers and the process alive.
          // What was pinned before this start stays pinned.
          backend.close({ keepAttached: config.keepSensorsOnExit || this.#adoptedPins });
          throw err;
        }
        backend.finishStart?.();
        if (this.store.list().length > 0) parts.log(`${this.store.list().length} polic${this.store.list().length === 1 ? "y" : "ies"} applied`);
      }
      // CRs one by one once the store applies to the kernel: a refused CR is reported (log,
      // status) and does not stop the start, unlike a refused --policy file.
      await this.#kubernetes((k) => k.startPolicies());
    } catch (err) {
      // What was pinned before this start (and is still pinned) keeps enforcing: a failed
      // restart must not end the protection the previous agent left.
      await this.stop({ keepAttached: config.keepSensorsOnExit || this.#adoptedPins });
      throw err;
    }
    releaseStartupMemory();
    // WARD_MEMORY_LOG=1: each check's event counts and the heap and allocator figures on the
    // log (diagnosing what holds memory after a burst; off by default).
    this.#reclaimer = new BurstReclaimer(() => this.hub.counters().total, process.env.WARD_MEMORY_LOG === "1" ? { log: parts.log } : {});
    this.#reclaimer.start();
    this.#ready = true;
    this.#createdToken = undefined;
  }

  /**
   * Ends a start that is waiting for the Kubernetes API server (with --k8s-controlplane-retry
   * -1 it may wait long): start() then fails and undoes what it did. A signal calls it.
   */
  interruptStart(): void {
    this.#k8s?.interrupt();
  }

  /** Runs one step of the Kubernetes start; its failure is the agent's start error. */
  async #kubernetes(step: (k: KubernetesWatch) => Promise<void>): Promise<void> {
    if (this.#k8s === undefined) return;
    try {
      await step(this.#k8s);
    } catch (err) {
      if (err instanceof KubernetesStartError) throw new AgentStartError("kubernetes", err.message, { cause: err });
      throw err;
    }
  }

  /**
   * The manifest an earlier agent left under --bpf-dir, if any. Pins without a manifest are
   * reported (they may be enforcing something this agent cannot identify, so they are left
   * alone and the start stops); the process map pin older agents made (a map, nothing
   * attached) is replaced as before.
   */
  #previousPins(): PinManifest | undefined {
    const dir = this.config.bpfDir;
    try {
      const m = readManifest(dir);
      if (m !== undefined) {
        this.parts.log(`${dir}: adopting what ward ${m.ward} pinned at ${m.written_at}: ${Object.keys(m.policies).length} polic${Object.keys(m.policies).length === 1 ? "y" : "ies"} (${Object.keys(m.policies).join(", ")})`);
        return m;
      }
    } catch (err) {
      if (err instanceof PinManifestError) throw new AgentStartError("pins", err.message, { cause: err });
      throw err;
    }
    unpin(join(dir, "process", "ward_procs"));
    const stale = listPins(dir);
    if (stale.length > 0) {
      throw new AgentStartError(
        "pins",
        `--bpf-dir ${dir} holds pinned BPF objects but no ward manifest (${stale.slice(0, 8).join(", ")}${stale.length > 8 ? `, and ${stale.length - 8} more` : ""}): another program's, or left by an agent killed while it pinned them; they may be enforcing, so they are left alone. Remove them (rm -r ${dir}) or give another --bpf-dir`,
      );
    }
    removeEmptyDirs(dir);
    return undefined;
  }

  /**
   * Removes what an interrupted write left (temp files, never applied), reads the saved
   * policies back into the store (all or nothing: a bad record stops the start naming its
   * file) and routes later API changes to the directory.
   */
  #restorePolicies(dirPath: string): void {
    const { config, parts } = this;
    if (config.policyDir !== undefined && resolve(config.policyDir) === resolve(dirPath)) {
      throw new AgentStartError("policy_store", `--policy-store-dir ${dirPath} is also the --policy-dir; give the store a directory of its own`);
    }
    const dir = new PolicyDir(dirPath);
    let saved: ReturnType<PolicyDir["load"]>;
    try {
      for (const t of dir.open()) parts.log(`policy store ${dirPath}: removed ${t}, left by an interrupted write (not applied)`);
      saved = dir.load();
    } catch (err) {
      if (err instanceof PolicyPersistError) throw new AgentStartError("policy_store", err.message, { cause: err });
      throw err;
    }
    if (saved.length > 0) this.store.restore(saved);
    this.store.attachPersistence(dir);
    parts.log(`policy store ${dirPath}: ${saved.length} polic${saved.length === 1 ? "y" : "ies"} restored; API changes are saved there`);
  }

  /**
   * stop detaches every sensor (unless keepAttached, which --keep-sensors-on-exit sets), ends
   * event streams, closes the server, flushes the sinks and removes the state file. Idempotent.
   */
  async stop(opts: { keepAttached?: boolean } = {}): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#ready = false;
    this.#reclaimer?.stop();
    const keepAttached = opts.keepAttached ?? this.config.keepSensorsOnExit;
    const errors: string[] = [];
    // The watches end first: no CR change may reach a store that is detaching.
    try {
      await this.#k8s?.stop();
    } catch (err) {
      errors.push(`stop kubernetes watches: ${(err as Error).message}`);
    }
    this.#cgroupFeed?.close();
    try {
      this.store.detachBackend({ keepAttached });
    } catch (err) {
      errors.push(`detach policies: ${(err as Error).message}`);
    }
    for (const s of [...this.#sensors].reverse()) {
      try {
        await s.stop({ keepAttached });
      } catch (err) {
        errors.push(`stop sensor ${s.name}: ${(err as Error).message}`);
      }
    }
    // Ending the subscriptions lets each stream send its final chunk; a graceful stop then
    // waits for those responses to finish, and only a stuck client is cut off.
    this.hub.closeSubscribers();
    if (this.#server) {
      const server = this.#server;
      await Promise.race([server.stop(false), Bun.sleep(2000)]);
      await server.stop(true);
    }
    // Drops not yet reported get their rate_limit_info before the sinks close.
    this.hub.exportGate?.stop();
    for (const sink of this.hub.sinks) {
      try {
        await sink.flush();
        await sink.close();
        if (isCountedSink(sink)) {
          // The final counters: after close nothing is queued, so sent + dropped = written.
          const st = sink.stats();
          const dropped = Object.entries(st.dropped).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`);
          this.parts.log(`sink ${st.name}: written ${st.written}, sent ${st.sent}, retried ${st.retried}, dropped ${dropped.length ? dropped.join(", ") : "0"}`);
        }
      } catch (err) {
        errors.push(`close sink ${sink.name}: ${(err as Error).message}`);
      }
    }
    if (!keepAttached) removeEmptyDirs(this.config.bpfDir);
    removeState(this.config.stateFile, process.pid);
    for (const e of errors) (this.parts.warn ?? this.parts.log)(e);
  }

  status(): AgentStatus {
    const ev = this.hub.counters();
    const lost: Record<string, number> = { ...ev.lost };
    let cacheSize: number | undefined;
    const sensors = this.#sensors.map((s) => {
      const st = s.status();
      // Sensors report their own losses as counters named lost_<reason>.
      for (const [k, v] of Object.entries(st.counters ?? {})) {
        if (k.startsWith("lost_")) lost[k.slice(5)] = (lost[k.slice(5)] ?? 0) + v;
        if (k === "process_cache_size") cacheSize = (cacheSize ?? 0) + v;
      }
      return { name: s.name, ...st };
    });
    return {
      version: VERSION,
      node_name: this.config.nodeName,
      pid: process.pid,
      started_at: new Date(this.#startedAt).toISOString(),
      uptime_seconds: Math.floor((Date.now() - this.#startedAt) / 1000),
      ready: this.#ready,
      sensors,
      events: { total: ev.total, by_type: ev.byType, lost, subscribers: ev.subscribers, sinks: this.hub.sinks.map((s) => s.name) },
      sink_stats: this.hub.sinks.filter(isCountedSink).map((s) => s.stats()),
      memory: memoryStatus(this.#reclaimer?.runs),
      ...(cacheSize !== undefined ? { process_cache_size: cacheSize } : {}),
      policies: this.store.list(),
      workloads: this.#workloadStatus(),
      ...(this.#k8s !== undefined ? { kubernetes: this.#k8s.status() } : {}),
    };
  }

  #workloadStatus(): NonNullable<AgentStatus["workloads"]> {
    const bySource: Record<string, number> = {};
    const all = this.workloads.all();
    for (const w of all) bySource[w.source] = (bySource[w.source] ?? 0) + 1;
    return { total: all.length, by_source: bySource, ...(this.#cgroupFeed !== undefined ? { watched_cgroups: this.#cgroupFeed.watched } : {}) };
  }
}
