// The real agent (`ward agent --enable-k8s-api --k8s-kubeconfig-path FILE`) against a local
// Kubernetes API stand-in (test/lib/fake-kube-api.ts, Bun.serve on loopback, speaking list
// and watch as the API reference describes them; no API server exists here), as root on the
// real kernel. Pod containers are real cgroups this test creates under the cgroup v2 root,
// named as containerd's systemd driver names them (cri-containerd-<id>.scope), and the
// processes that open the protected file are really moved into them:
// - the pods and the TracingPolicy CRs are picked up at start; a refused CR is in status
//   with its error and does not stop the start;
// - a pod relabeled out of the CR's podSelector leaves the policy's scope and its process
//   reads the file; relabeled back in, the open fails again (Override, EPERM);
// - a pod whose container cgroup appears only after the pod watch reported it waits, then
//   joins the scope when the cgroup is made;
// - events of a process in a pod's cgroup carry Tetragon's pod block (and docker field);
// - a watch ending in 410 Gone re-lists without losing a pod (the policy keeps holding);
// - a CR modified (another podSelector) moves the enforcement; deleted, it is gone;
// - a CR whose spec.nodeSelector does not select this node is skipped (status says so);
// - start-up errors: a missing kubeconfig, an unreachable API server.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import type { AgentStatus } from "../../src/api/deps.ts";
import type { PolicyInfo } from "../../src/agent/policy-store.ts";
import { cgroupV2Mount } from "../../src/workloads/cgroup-identity.ts";
import { agentReady, waitFor } from "../lib/agent.ts";
import { FakeKubeApi, nodeFixture, podFixture, type FakeObject } from "../lib/fake-kube-api.ts";
import { kernelTest } from "../lib/host.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const PODS = "/api/v1/pods";
const TP = "/apis/cilium.io/v1alpha1/tracingpolicies";
const TPN = "/apis/cilium.io/v1alpha1/tracingpoliciesnamespaced";
const NODES = "/api/v1/nodes";
const KINDS = { [PODS]: "Pod", [TP]: "TracingPolicy", [TPN]: "TracingPolicyNamespaced", [NODES]: "Node" };
const TOKEN = "e2e-kube-token-5f0c";
const NODE = `ward-e2e-node-${process.pid}`;
const SECRET = "pod secret\n";
const T = 120_000;
// Container ids as containerd makes them (64 hex), unique to this run.
const idOf = (n: number) => `${process.pid.toString(16).padStart(8, "0")}${"e2e0".repeat(13)}${n.toString(16).padStart(4, "0")}`;
const ID_NGINX = idOf(1);
const ID_REDIS = idOf(2);
const ID_LATE = idOf(4);

const dir = mkdtempSync(join(tmpdir(), "ward-k8s-e2e-"));
const bpfDir = `/sys/fs/bpf/ward-k8s-e2e-${process.pid}`;
const secret = join(dir, "secret");
const kubeconfig = join(dir, "kubeconfig");
let api: FakeKubeApi | undefined;
let cgParent = "";
const cgroups: Record<string, string> = {};

beforeAll(() => {
  writeFileSync(secret, SECRET);
  api = new FakeKubeApi({ token: TOKEN, kinds: KINDS });
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
current-context: e2e
clusters:
- name: fake
  cluster: {server: "${api.url}"}
contexts:
- name: e2e
  context: {cluster: fake, user: agent}
users:
- name: agent
  user: {token: ${TOKEN}}
`,
  );
  const v2 = cgroupV2Mount();
  if (v2 !== undefined && process.getuid?.() === 0) {
    // A kubepods-like parent of our own, so parallel runs and other suites never share it.
    cgParent = join(v2, `ward-e2e-kubepods-${process.pid}.slice`);
    mkdirSync(cgParent);
    for (const id of [ID_NGINX, ID_REDIS]) {
      cgroups[id] = join(cgParent, `cri-containerd-${id}.scope`);
      mkdirSync(cgroups[id]!);
    }
  }
});

afterAll(() => {
  api?.stop();
  for (const d of Object.values(cgroups)) rmCgroup(d);
  if (cgParent !== "") rmCgroup(cgParent);
  rmSync(dir, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
});

function rmCgroup(d: string): void {
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(d);
      return;
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      if (code === "ENOENT") return;
      if (code !== "EBUSY") throw e;
      Bun.sleepSync(20);
    }
  }
}

const nginxPod = (app: string) => podFixture({ name: "nginx-1", node: NODE, labels: { app }, containers: [{ name: "nginx", id: ID_NGINX, image: "docker.io/library/nginx:1.27" }] });
const redisPod = (labels: Record<string, string>) => podFixture({ name: "redis-1", node: NODE, labels, containers: [{ name: "redis", id: ID_REDIS, image: "docker.io/library/redis:7" }] });

/** The talk's Override policy on the secret, as a TracingPolicy CR scoped by podSelector app=APP. */
function crFor(name: string, app: string): FakeObject {
  const doc = parseYaml(secureOpenPolicy({ name, file: secret, allowed: "/nonexistent/cat", action: "Override\n        argError: -1" })) as FakeObject;
  return { ...doc, spec: { ...doc.spec, podSelector: { matchLabels: { app } } } };
}

/** cat of the secret by a process moved into `cgroup` first (async: the fake API server runs in this process). */
async function catIn(cgroup: string | undefined): Promise<{ out: string; rc: number | null }> {
  const script = cgroup !== undefined ? `echo $$ > ${cgroup}/cgroup.procs && exec cat ${secret}` : `exec cat ${secret}`;
  const p = Bun.spawn(["sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
  const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  await p.exited;
  return { out: out + err, rc: p.exitCode };
}

const denied = (r: { out: string; rc: number | null }) => r.rc === 1 && r.out.includes("Operation not permitted");
const readable = (r: { out: string; rc: number | null }) => r.rc === 0 && r.out === SECRET;

async function startAgent(extra: string[]) {
  const stateFile = join(dir, "state.json");
  const tokenFile = join(dir, "token");
  const agent = Bun.spawn(
    [process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", join(dir, "events.log"), "--bpf-dir", bpfDir, "--node-name", NODE, ...extra],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  const stderr = new Response(agent.stderr).text();
  const { state, token } = await agentReady(agent, { stateFile, tokenFile }, stderr);
  const get = async <B>(path: string): Promise<B> => (await (await fetch(`${state.url}${path}`, { headers: { Authorization: `Bearer ${token}` } })).json()) as B;
  return {
    agent,
    stderr,
    stateFile,
    status: () => get<AgentStatus>("/v1/status"),
    policies: async () => (await get<{ policies: PolicyInfo[] }>("/v1/policies")).policies,
    workloads: async () => (await get<{ workloads: { key: string; cgroup_id: string; source: string; pod?: { name: string; uid?: string; labels: Record<string, string>; container?: string } }[] }>("/v1/workloads")).workloads,
    async stop(): Promise<number> {
      if (agent.exitCode === null) agent.kill("SIGTERM");
      return await agent.exited;
    },
  };
}

describe("Kubernetes: the agent with a kubeconfig pointing at a list/watch server (e2e)", () => {
  kernelTest(
    "pods and CRs picked up; relabel out of the podSelector stops enforcement, back in restores it; 410 re-list loses no pod; CR modified moves it, deleted removes it",
    async () => {
      const k = api!;
      if (cgParent === "") throw new Error("no cgroup v2 hierarchy mounted: the pod containers' cgroups cannot be created");
      k.put(NODES, nodeFixture(NODE, { "topology.kubernetes.io/zone": "a" }));
      k.put(PODS, nginxPod("nginx"));
      k.put(PODS, redisPod({ app: "redis" }));
      k.put(PODS, podFixture({ name: "elsewhere", node: "other-node", containers: [{ name: "c", id: idOf(3) }] }));
      k.put(TP, crFor("k8s-e2e-secret", "nginx"));
      // For another zone's nodes: on this one it is skipped (else it would deny everyone).
      const otherZone = crFor("k8s-e2e-other-zone", "unused");
      k.put(TP, { ...otherZone, spec: { ...otherZone.spec, podSelector: undefined, nodeSelector: { matchLabels: { "topology.kubernetes.io/zone": "b" } } } });
      k.put(TPN, { apiVersion: "cilium.io/v1alpha1", kind: "TracingPolicyNamespaced", metadata: { name: "k8s-e2e-bad", namespace: "default" }, spec: { kprobes: [{ call: "security_file_open", selectors: [{ matchActions: [{ action: "Explode" }] }] }] } });
      // Without the agent the file is readable from both pods' cgroups.
      expect(readable(await catIn(cgroups[ID_NGINX]))).toBe(true);

      const a = await startAgent(["--enable-k8s-api", "--k8s-kubeconfig-path", kubeconfig, "--k8s-controlplane-retry", "3"]);
      try {
        const st = await a.status();
        const ks = st.kubernetes!;
        expect(ks).toMatchObject({ server: k.url, config: `kubeconfig ${kubeconfig} context e2e`, node: NODE, pods: 2, containers: 2, pending_containers: [] });
        expect(ks.watches.map((w) => [w.resource, w.synced, w.lists, w.errors])).toEqual([
          ["pods", true, 1, 0],
          ["tracingpolicies.cilium.io", true, 1, 0],
          ["tracingpoliciesnamespaced.cilium.io", true, 1, 0],
          ["nodes", true, 1, 0],
        ]);
        expect(ks.policies!.map((p) => [p.kind, p.namespace, p.name, p.state])).toEqual([
          ["TracingPolicy", undefined, "k8s-e2e-other-zone", "skipped"],
          ["TracingPolicy", undefined, "k8s-e2e-secret", "applied"],
          ["TracingPolicyNamespaced", "default", "k8s-e2e-bad", "error"],
        ]);
        expect(ks.policies![2]!.error).toContain("Explode");
        expect((await a.policies()).map((p) => p.name)).toEqual(["k8s-e2e-secret"]);
        // The pod watch asked for this node's pods only, with bookmarks.
        expect(k.requests.some((r) => r.startsWith(`${PODS}?fieldSelector=spec.nodeName%3D${NODE}`) && r.includes("watch=1") && r.includes("allowWatchBookmarks=true"))).toBe(true);

        const ws = (await a.workloads()).filter((w) => w.source === "kubernetes");
        expect(ws.map((w) => [w.key, w.pod?.name, w.pod?.container, w.pod?.labels])).toEqual([
          [ID_NGINX, "nginx-1", "nginx", { app: "nginx" }],
          [ID_REDIS, "redis-1", "redis", { app: "redis" }],
        ]);
        // The kernel's cgroup id of the container: its cgroup directory's inode.
        expect(ws[0]!.cgroup_id).toBe(statSync(cgroups[ID_NGINX]!, { bigint: true }).ino.toString());

        const scopeOf = async () => (await a.policies()).find((p) => p.name === "k8s-e2e-secret");
        const p0 = (await scopeOf())!;
        expect(p0.source).toBe("k8s:TracingPolicy/k8s-e2e-secret");
        expect(p0.scope).toMatchObject({ scope: "podSelector app=nginx", members: 1, workloads: [ID_NGINX] });
        expect(denied(await catIn(cgroups[ID_NGINX]))).toBe(true);
        expect(readable(await catIn(cgroups[ID_REDIS]))).toBe(true);
        expect(readable(await catIn(undefined))).toBe(true);
        expect(readFileSync(secret, "utf8")).toBe(SECRET);
        // Events of the process in the pod's cgroup carry Tetragon's pod block from the pod watch.
        const podEvent = await waitFor("process_exec with the pod block", () => {
          for (const line of readFileSync(join(dir, "events.log"), "utf8").split("\n")) {
            if (!line.includes('"process_exec"') || !line.includes(secret) || !line.includes("nginx-1")) continue;
            return JSON.parse(line) as { process_exec: { process: { docker?: string; pod?: unknown } } };
          }
          return undefined;
        }, 10_000, a.agent);
        expect(podEvent.process_exec.process.docker).toBe(ID_NGINX.slice(0, 31));
        expect(podEvent.process_exec.process.pod).toEqual({
          namespace: "default",
          name: "nginx-1",
          uid: ws[0]!.pod!.uid,
          container: {
            id: `containerd://${ID_NGINX}`,
            name: "nginx",
            image: { id: "docker.io/library/busybox@sha256:c3839dd800b9eb7603340509769c43e146a74c63dca3045a8e7dc8ee07e53966", name: "docker.io/library/nginx:1.27" },
            start_time: "2026-12-03T16:00:00Z",
          },
          pod_labels: { app: "nginx" },
          workload: "nginx-1",
          workload_kind: "Pod",
        });

        // A pod the watch reports before the runtime made its container's cgroup: it waits
        // (status lists it), and joins the scope the moment the cgroup appears.
        await waitFor("watches open", () => (k.watching(PODS) === 1 ? true : undefined), 10_000, a.agent);
        k.put(PODS, podFixture({ name: "nginx-late", node: NODE, labels: { app: "nginx" }, containers: [{ name: "nginx", id: ID_LATE }] }));
        await waitFor("late container pending", async () => ((await a.status()).kubernetes!.pending_containers.some((c) => c.startsWith("default/nginx-late/nginx (")) ? true : undefined), 10_000, a.agent);
        expect((await scopeOf())?.scope?.members).toBe(1);
        cgroups[ID_LATE] = join(cgParent, `cri-containerd-${ID_LATE}.scope`);
        mkdirSync(cgroups[ID_LATE]!);
        await waitFor("late container in the scope", async () => ((await scopeOf())?.scope?.members === 2 ? true : undefined), 10_000, a.agent);
        expect((await a.workloads()).find((w) => w.key === ID_LATE)).toMatchObject({ source: "kubernetes", cgroup_id: statSync(cgroups[ID_LATE]!, { bigint: true }).ino.toString(), pod: { name: "nginx-late" } });
        expect((await a.status()).kubernetes!.pending_containers).toEqual([]);
        expect(denied(await catIn(cgroups[ID_LATE]))).toBe(true);
        k.remove(PODS, "nginx-late", "default");
        await waitFor("late pod gone", async () => ((await scopeOf())?.scope?.members === 1 ? true : undefined), 10_000, a.agent);

        // Relabeled out of the selector: out of the scope, the process reads the file.
        await waitFor("watches open", () => (k.watching(PODS) === 1 && k.watching(TP) === 1 ? true : undefined), 10_000, a.agent);
        k.put(PODS, nginxPod("nginx-canary"));
        await waitFor("relabeled out of the scope", async () => ((await scopeOf())?.scope?.members === 0 ? true : undefined), 10_000, a.agent);
        expect(readable(await catIn(cgroups[ID_NGINX]))).toBe(true);
        // And back in: enforced again.
        k.put(PODS, nginxPod("nginx"));
        await waitFor("back in the scope", async () => ((await scopeOf())?.scope?.members === 1 ? true : undefined), 10_000, a.agent);
        expect(denied(await catIn(cgroups[ID_NGINX]))).toBe(true);

        // 410 Gone: a change made while no watcher was told, history compacted, the open
        // watches end with the 410 ERROR event. The agent re-lists: the change arrives and
        // no pod is lost (the policy holds for nginx throughout).
        k.putSilently(PODS, redisPod({ app: "redis", tier: "cache" }));
        k.compact(true);
        await waitFor("re-listed", async () => {
          const w = (await a.status()).kubernetes!.watches[0]!;
          return w.relists >= 1 && w.lists >= 2 && w.watching ? w : undefined;
        }, 10_000, a.agent);
        await waitFor("gap change applied", async () => ((await a.workloads()).find((w) => w.key === ID_REDIS)?.pod?.labels.tier === "cache" ? true : undefined), 10_000, a.agent);
        expect((await a.status()).kubernetes).toMatchObject({ pods: 2, containers: 2 });
        expect((await scopeOf())?.scope).toMatchObject({ members: 1, workloads: [ID_NGINX] });
        expect(denied(await catIn(cgroups[ID_NGINX]))).toBe(true);

        // The CR modified: the policy now selects redis.
        k.put(TP, crFor("k8s-e2e-secret", "redis"));
        await waitFor("CR modified", async () => ((await scopeOf())?.scope?.workloads?.[0] === ID_REDIS ? true : undefined), 10_000, a.agent);
        expect(readable(await catIn(cgroups[ID_NGINX]))).toBe(true);
        expect(denied(await catIn(cgroups[ID_REDIS]))).toBe(true);
        // Deleted: gone from the store, nothing enforced.
        k.remove(TP, "k8s-e2e-secret");
        await waitFor("CR deleted", async () => ((await scopeOf()) === undefined ? true : undefined), 10_000, a.agent);
        expect(readable(await catIn(cgroups[ID_REDIS]))).toBe(true);
        expect((await a.status()).kubernetes!.policies!.map((p) => p.name)).toEqual(["k8s-e2e-other-zone", "k8s-e2e-bad"]);

        // `ward status` shows the watch state.
        const cli = Bun.spawn([process.execPath, main, "status"], { env: { ...process.env, WARD_STATE_FILE: a.stateFile }, stdout: "pipe", stderr: "pipe" });
        const text = await new Response(cli.stdout).text();
        expect(await cli.exited).toBe(0);
        expect(text).toContain(`kubernetes: ${k.url} (kubeconfig ${kubeconfig} context e2e), node ${NODE}`);
        expect(text).toMatch(/ {2}pods +synced, watching; resourceVersion \d+, lists 2 \(re-lists after 410 1\)/);
        expect(text).toContain("  TracingPolicyNamespaced default/k8s-e2e-bad: error: ");
        expect(await a.stop()).toBe(0);
      } finally {
        await a.stop();
      }
      const log = await a.stderr;
      expect(log).toContain("kubernetes: TracingPolicy k8s-e2e-secret applied");
      expect(log).toContain("kubernetes: TracingPolicyNamespaced default/k8s-e2e-bad: not applied: ");
      expect(log).toContain("kubernetes: TracingPolicy k8s-e2e-secret removed");
    },
    T,
  );

  kernelTest(
    "start-up: a missing kubeconfig and an unreachable API server refuse the start, saying what and where",
    async () => {
      const run = async (extra: string[]) => {
        const p = Bun.spawn(
          [process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", join(dir, "token-x"), "--state-file", join(dir, "state-x.json"), "--export-file", join(dir, "events-x.log"), "--bpf-dir", bpfDir, "--node-name", NODE, "--enable-k8s-api", ...extra],
          { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
        );
        const err = await new Response(p.stderr).text();
        return { code: await p.exited, err };
      };
      const missing = await run(["--k8s-kubeconfig-path", join(dir, "no-such-kubeconfig")]);
      expect(missing.code).toBe(1);
      expect(missing.err).toContain(`--k8s-kubeconfig-path kubeconfig: read ${join(dir, "no-such-kubeconfig")}: ENOENT`);
      // A server that is gone: a port that was just listening and no longer is.
      const gone = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
      const url = `http://127.0.0.1:${gone.port}`;
      gone.stop(true);
      const kc = join(dir, "kubeconfig-gone");
      writeFileSync(kc, readFileSync(kubeconfig, "utf8").replace(api!.url, url));
      const unreachable = await run(["--k8s-kubeconfig-path", kc, "--k8s-controlplane-retry", "2"]);
      expect(unreachable.code).toBe(1);
      expect(unreachable.err).toContain(`kubernetes: attempt 1 of 2: cannot reach the API server ${url}`);
      expect(unreachable.err).toContain(`cannot reach the API server ${url}`);
      expect(unreachable.err).toContain("(2 attempts; --k8s-controlplane-retry N tries longer, -1 until it answers)");
      // A refused start leaves no state file (the CLI would look for a dead agent).
      expect(existsSync(join(dir, "state-x.json"))).toBe(false);
    },
    T,
  );

  kernelTest(
    "--k8s-controlplane-retry=-1: the agent waits for the API server (not ready, status says why), starts when it answers; SIGTERM ends the wait",
    async () => {
      // A port nothing listens on yet; the API server comes up there later.
      const probe = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: () => new Response("") });
      const port = probe.port!;
      probe.stop(true);
      const url = `http://127.0.0.1:${port}`;
      const kc = join(dir, "kubeconfig-late");
      writeFileSync(kc, readFileSync(kubeconfig, "utf8").replace(api!.url, url));
      const stateFile = join(dir, "state-late.json");
      const tokenFile = join(dir, "token-late");
      const spawnAgent = () =>
        Bun.spawn(
          [process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", join(dir, "events-late.log"), "--bpf-dir", bpfDir, "--node-name", NODE, "--enable-k8s-api", "--k8s-kubeconfig-path", kc, "--k8s-controlplane-retry=-1"],
          { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
        );
      const agent = spawnAgent();
      const stderr = new Response(agent.stderr).text();
      let late: FakeKubeApi | undefined;
      try {
        const state = await waitFor("state file", () => (existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, "utf8")) as { url: string }) : undefined), 30_000, agent);
        const token = readFileSync(tokenFile, "utf8").trim();
        const status = async () => (await (await fetch(`${state.url}/v1/status`, { headers: { Authorization: `Bearer ${token}` } })).json()) as AgentStatus;
        // Waiting: the API answers, the agent is not ready, and status says what it waits for.
        const waiting = await waitFor("a failed attempt", async () => ((await status()).kubernetes?.connect_error !== undefined ? await status() : undefined), 20_000, agent);
        expect(waiting.ready).toBe(false);
        expect(waiting.kubernetes).toMatchObject({ state: "connecting", server: url });
        expect(waiting.kubernetes!.connect_error).toStartWith(`cannot reach the API server ${url}`);
        expect(waiting.sensors).toEqual([]);
        expect((await fetch(`${state.url}/healthz`)).status).not.toBe(200);
        // The API server comes up: the agent connects, lists, and becomes ready.
        late = new FakeKubeApi({ token: TOKEN, kinds: KINDS, port });
        late.put(PODS, nginxPod("nginx"));
        await waitFor("ready", async () => ((await fetch(`${state.url}/healthz`).catch(() => undefined))?.status === 200 ? true : undefined), 60_000, agent);
        expect((await status()).kubernetes).toMatchObject({ state: "connected", pods: 1, containers: 1 });
        agent.kill("SIGTERM");
        expect(await agent.exited).toBe(0);
      } finally {
        if (agent.exitCode === null) agent.kill("SIGKILL");
        await agent.exited;
        late?.stop();
      }
      expect(await stderr).toContain("kubernetes: attempt 1: cannot reach the API server");

      // Nothing ever answers: SIGTERM ends the wait at once, cleanly.
      const waiter = spawnAgent();
      const waiterErr = new Response(waiter.stderr).text();
      await waitFor("waiting", () => (existsSync(stateFile) ? true : undefined), 30_000, waiter);
      await Bun.sleep(300);
      const t0 = Date.now();
      waiter.kill("SIGTERM");
      expect(await waiter.exited).toBe(0);
      expect(Date.now() - t0).toBeLessThan(10_000);
      expect(await waiterErr).toContain("stopped before the start completed");
      expect(existsSync(stateFile)).toBe(false);
    },
    T,
  );
});
