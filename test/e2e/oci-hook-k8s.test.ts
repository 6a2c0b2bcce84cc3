// The OCI hook with the pod watch (root, real kernel, real runc containers): the agent runs
// with --enable-k8s-api against the loopback list/watch stand-in (test/lib/fake-kube-api.ts),
// which serves this node's pods with their labels. A policy scoped by podSelector (labels
// the OCI annotations never carry) must hold from the container's first instruction: the
// hook's report has no labels, the pod watch merges them in a registry write of its own, and
// the hook's PUT answers only after that write (so the scope holds before runc starts the
// container). The pod's container ids are the runc container ids, its cgroup is named as
// containerd's systemd driver names it.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { agentReady, waitFor } from "../lib/agent.ts";
import { FakeKubeApi, nodeFixture, podFixture } from "../lib/fake-kube-api.ts";
import { kernelTest } from "../lib/host.ts";
import { labelScope, secureOpenPolicy } from "../lib/talk-policies.ts";
import { deleteAll, ensureRunc, makeBundle, makeRootfs, RUNC, removeCgroupParents } from "../lib/runc.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const PODS = "/api/v1/pods";
const TP = "/apis/cilium.io/v1alpha1/tracingpolicies";
const TPN = "/apis/cilium.io/v1alpha1/tracingpoliciesnamespaced";
const NODES = "/api/v1/nodes";
const TOKEN = "e2e-ocihook-kube-token-7d1e";
const NODE = `ward-ocihook-node-${process.pid}`;
const SECRET = "labelled secret\n";
const idOf = (n: number) => `${process.pid.toString(16).padStart(8, "0")}${"0c1b".repeat(13)}${n.toString(16).padStart(4, "0")}`;
const ID_WEB = idOf(1);
const ID_OTHER = idOf(2);

const dir = mkdtempSync("/tmp/ward-ocihook-k8s-");
const tag = `ward-ocihook-k8s-${process.pid}`;
const runcRoot = `/run/${tag}`;
const bpfDir = `/sys/fs/bpf/${tag}`;
const rootfs = join(dir, "rootfs");
const stateFile = join(dir, "state.json");
const tokenFile = join(dir, "token");
const hookLog = join(dir, "hook.log");
const kubeconfig = join(dir, "kubeconfig");
const slice = `/${tag}.slice`;
let kube: FakeKubeApi | undefined;
let agent: Subprocess<"ignore", "pipe", "pipe"> | undefined;

beforeAll(() => {
  ensureRunc();
  makeRootfs(rootfs, { secret: SECRET });
  kube = new FakeKubeApi({ token: TOKEN, kinds: { [PODS]: "Pod", [TP]: "TracingPolicy", [TPN]: "TracingPolicyNamespaced", [NODES]: "Node" } });
  writeFileSync(
    kubeconfig,
    `apiVersion: v1
kind: Config
current-context: e2e
clusters:
- name: fake
  cluster: {server: "${kube.url}"}
contexts:
- name: e2e
  context: {cluster: fake, user: agent}
users:
- name: agent
  user: {token: ${TOKEN}}
`,
  );
});

afterAll(async () => {
  deleteAll(runcRoot);
  if (agent && agent.exitCode === null) {
    agent.kill("SIGTERM");
    await agent.exited;
  }
  kube?.stop();
  removeCgroupParents(slice);
  rmSync(runcRoot, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

/** `runc run`, asynchronously: the list/watch stand-in is served by this process and must keep answering. */
async function runcRun(bundle: string, id: string): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const p = Bun.spawn([RUNC, "--root", runcRoot, "run", "--bundle", bundle, id], { stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
  const [stdout, stderr] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text()]);
  const status = await p.exited;
  clearTimeout(timer);
  return { status, stdout, stderr };
}

function bundle(id: string, pod: string, container: string, hooked: boolean): string {
  const hook = { path: process.execPath, args: [process.execPath, main, "oci-hook", "--state-file", stateFile, "--fail-mode", "closed", "--timeout", "10s", "--log-file", hookLog], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], timeout: 20 };
  return makeBundle(join(dir, "bundles", id), {
    rootfs,
    args: ["cat", "/secret"],
    // As containerd's systemd cgroup driver names it; runc's cgroupfs driver creates it as given.
    cgroupsPath: `${slice}/cri-containerd-${id}.scope`,
    annotations: {
      "io.kubernetes.cri.container-type": "container",
      "io.kubernetes.cri.sandbox-namespace": "default",
      "io.kubernetes.cri.sandbox-name": pod,
      "io.kubernetes.cri.container-name": container,
    },
    ...(hooked ? { hooks: { createRuntime: [hook], poststop: [hook] } } : {}),
  });
}

describe("ward oci-hook with the pod watch (e2e)", () => {
  kernelTest(
    "a podSelector scope (labels only the pod watch knows) holds from the first instruction of a hooked container; another pod's container reads",
    async () => {
      const k = kube!;
      k.put(NODES, nodeFixture(NODE, {}));
      k.put(PODS, podFixture({ name: "web-1", node: NODE, labels: { app: "web" }, containers: [{ name: "web", id: ID_WEB }] }));
      k.put(PODS, podFixture({ name: "other-1", node: NODE, labels: { app: "other" }, containers: [{ name: "web", id: ID_OTHER }] }));
      agent = Bun.spawn(
        [process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", join(dir, "events.log"), "--bpf-dir", bpfDir, "--node-name", NODE, "--enable-k8s-api", "--k8s-kubeconfig-path", kubeconfig],
        { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
      );
      const { state, token } = await agentReady(agent, { stateFile, tokenFile }, new Response(agent.stderr).text());
      const api = (path: string, init: RequestInit = {}) => fetch(`${state.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}` } });
      const policy = secureOpenPolicy({
        name: "oci-k8s-web",
        file: join(rootfs, "secret"),
        scope: labelScope("podSelector", { app: "web" }),
      });
      const add = await api("/v1/policies", { method: "POST", body: policy });
      expect({ status: add.status, body: add.status === 201 ? "" : await add.text() }).toEqual({ status: 201, body: "" });
      // The pods are known, their containers' cgroups do not exist yet: nothing is in scope.
      await waitFor("pod watch synced", async () => {
        const st = (await (await api("/v1/status")).json()) as { kubernetes?: { pods?: number } };
        return (st.kubernetes?.pods ?? 0) >= 2 ? true : undefined;
      }, 30_000, agent);

      const web = await runcRun(bundle(ID_WEB, "web-1", "web", true), ID_WEB);
      expect({ stdout: web.stdout, status: web.status }).toEqual({ stdout: "", status: 137 });
      const line = readFileSync(hookLog, "utf8").split("\n").find((l) => l.includes(`container ${ID_WEB}: reported`));
      expect(line).toContain("pod default/web-1, container web");

      const other = await runcRun(bundle(ID_OTHER, "other-1", "web", true), ID_OTHER);
      expect({ stdout: other.stdout, status: other.status }).toEqual({ stdout: SECRET, status: 0 });
      expect(existsSync(hookLog)).toBe(true);
    },
    120_000,
  );
});
