// `ward oci-hook` as the createRuntime and poststop hook of real containers run by Debian's
// runc, against the real agent (root, real cgroups, real kernel):
// - the hook reports the container's cgroup (the v2 directory runc made, with its inode as
//   the id) and its Kubernetes identity from the annotations, the agent registers it before
//   runc lets the container run, poststop makes the agent forget it;
// - agent down: --fail-mode closed makes `runc run` fail (the container never runs), open
//   lets it run and says so in the hook's log;
// - a scoped policy (containerSelector by name; a TracingPolicyNamespaced by the namespace
//   from the annotations) on a file inside the containers' shared rootfs stops the container
//   whose very first instruction opens it (`cat /secret` as the init process: Sigkill kills
//   it, Override makes the open fail with EPERM) while an unscoped container and the host
//   read the same inode.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { cgroupV2Mount, parseProcCgroup } from "../../src/workloads/cgroup-identity.ts";
import { fanotifySupport } from "../../src/sensors/fanotify-sys.ts";
import { agentReady } from "../lib/agent.ts";
import { kernelTest } from "../lib/host.ts";
import { labelScope, secureOpenPolicy } from "../lib/talk-policies.ts";
import { deleteAll, ensureRunc, makeBundle, makeRootfs, removeCgroupParents, runc, runcRun, runcRunDetached, type BundleSpec } from "../lib/runc.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
// Under /tmp (not a per-user tmpdir): runc needs the rootfs on a filesystem it can bind-mount.
const dir = mkdtempSync("/tmp/ward-ocihook-");
const tag = `ward-ocihook-${process.pid}`;
const runcRoot = `/run/${tag}`;
const bpfDir = `/sys/fs/bpf/${tag}`;
const rootfs = join(dir, "rootfs");
const SECRET = "the container's secret\n";
const SECRET2 = "the namespace's secret\n";
const stateFile = join(dir, "state.json");
const tokenFile = join(dir, "token");
const hookLog = join(dir, "hook.log");
const fanotifyHere = fanotifySupport().permissions;

let agent: Subprocess<"ignore", "pipe", "pipe"> | undefined;
let api: (path: string, init?: RequestInit) => Promise<Response>;

beforeAll(() => {
  ensureRunc();
  makeRootfs(rootfs, { secret: SECRET, secret2: SECRET2 });
});

afterAll(async () => {
  deleteAll(runcRoot);
  if (agent && agent.exitCode === null) {
    agent.kill("SIGTERM");
    await agent.exited;
  }
  removeCgroupParents(`/${tag}`);
  rmSync(runcRoot, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
  rmSync(dir, { recursive: true, force: true });
});

async function startAgent(): Promise<void> {
  agent = Bun.spawn([process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", join(dir, "events.log"), "--bpf-dir", bpfDir], {
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
  });
  const stderr = new Response(agent.stderr).text();
  const { state, token } = await agentReady(agent, { stateFile, tokenFile }, stderr);
  api = (path, init = {}) => fetch(`${state.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
}

async function stopAgent(): Promise<void> {
  if (agent && agent.exitCode === null) {
    agent.kill("SIGTERM");
    expect(await agent.exited).toBe(0);
  }
  agent = undefined;
}

/** The hooks object shipped for runc and containerd's base spec (deploy/oci-hook/runc-hooks.json). */
const shipped = JSON.parse(readFileSync(join(root, "deploy", "oci-hook", "runc-hooks.json"), "utf8")) as { createRuntime: { path: string; args: string[]; timeout: number }[] };

/**
 * The hook entry runc runs: the shipped one (its flags and runtime timeout), run as this
 * checkout's CLI under the running bun instead of /usr/local/bin/ward, with this test's agent
 * state file, log file and fail mode, and the empty environment runtimes give hooks.
 */
function hookEntry(failMode: "open" | "closed", opts: { stateFile?: string; timeout?: string } = {}) {
  const h = shipped.createRuntime[0]!;
  const flags = [...h.args.slice(2)];
  const set = (flag: string, value: string): void => {
    const i = flags.indexOf(flag);
    if (i >= 0) flags[i + 1] = value;
    else flags.push(flag, value);
  };
  set("--fail-mode", failMode);
  set("--log-file", hookLog);
  set("--state-file", opts.stateFile ?? stateFile);
  if (opts.timeout !== undefined) set("--timeout", opts.timeout);
  return { path: process.execPath, args: [process.execPath, main, "oci-hook", ...flags], env: ["PATH=/usr/sbin:/usr/bin:/sbin:/bin"], timeout: h.timeout };
}

let seq = 0;
function bundle(args: string[], annotations: Record<string, string>, hook: ReturnType<typeof hookEntry> | undefined): { id: string; dir: string; cgroup: string } {
  const id = `${tag}-${++seq}`;
  const cgroup = `/${tag}/c${seq}`;
  const spec: BundleSpec = { rootfs, args, cgroupsPath: cgroup, annotations, ...(hook ? { hooks: { createRuntime: [hook], poststop: [hook] } } : {}) };
  return { id, dir: makeBundle(join(dir, "bundles", id), spec), cgroup };
}

const containerd = (ns: string, pod: string, container: string) => ({
  "io.kubernetes.cri.container-type": "container",
  "io.kubernetes.cri.sandbox-namespace": ns,
  "io.kubernetes.cri.sandbox-name": pod,
  "io.kubernetes.cri.sandbox-uid": "5b0c1a2e-0000-4000-8000-00000000000a",
  "io.kubernetes.cri.container-name": container,
});
const crio = (ns: string, pod: string, container: string) => ({
  "io.kubernetes.cri-o.ContainerType": "container",
  "io.kubernetes.pod.namespace": ns,
  "io.kubernetes.pod.name": pod,
  "io.kubernetes.pod.uid": "5b0c1a2e-0000-4000-8000-00000000000b",
  "io.kubernetes.container.name": container,
});

const logLines = (): string[] => (existsSync(hookLog) ? readFileSync(hookLog, "utf8").split("\n").filter((l) => l !== "") : []);

describe("ward oci-hook with runc (e2e)", () => {
  kernelTest(
    "runc runs containers on this host: cgroupfs driver, the init in cgroupsPath of the v2 hierarchy too",
    () => {
      const b = bundle(["sleep", "30"], {}, undefined);
      const r = runcRunDetached(runcRoot, b.dir, b.id);
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      const st = JSON.parse(runc(runcRoot, ["state", b.id]).stdout) as { pid: number; status: string };
      expect(st.status).toBe("running");
      const v2 = parseProcCgroup(readFileSync(`/proc/${st.pid}/cgroup`, "utf8")).find((l) => l.hierarchy === 0);
      expect(v2?.path).toBe(b.cgroup);
      expect(existsSync(join(cgroupV2Mount()!, b.cgroup))).toBe(true);
      expect(runc(runcRoot, ["delete", "--force", b.id]).status).toBe(0);
      const cat = runcRun(runcRoot, bundle(["cat", "/secret"], {}, undefined).dir, `${tag}-plain`);
      expect(cat.stdout).toBe(SECRET);
      expect(cat.status).toBe(0);
    },
    60_000,
  );

  kernelTest(
    "createRuntime reports the container's v2 cgroup and pod before it runs; poststop forgets it",
    async () => {
      await startAgent();
      try {
        const b = bundle(["sleep", "30"], containerd("shop", "nginx-1", "web"), hookEntry("closed"));
        const r = runcRunDetached(runcRoot, b.dir, b.id);
        expect(r.stderr).toBe("");
        expect(r.status).toBe(0);
        const st = JSON.parse(runc(runcRoot, ["state", b.id]).stdout) as { pid: number };
        const ino = statSync(join(cgroupV2Mount()!, b.cgroup), { bigint: true }).ino;
        expect(parseProcCgroup(readFileSync(`/proc/${st.pid}/cgroup`, "utf8")).find((l) => l.hierarchy === 0)?.path).toBe(b.cgroup);
        const reported = logLines().find((l) => l.includes(`container ${b.id}: reported`));
        expect(reported).toContain(`reported cgroup ${b.cgroup} (id ${ino}, pod shop/nginx-1, container web)`);
        expect(reported).toContain("scopes applied in");
        // The agent's registry holds it as the hook reported it (GET /v1/workloads/:key).
        const got = await api(`/v1/workloads/${b.id}`);
        expect(got.status).toBe(200);
        expect(await got.json()).toMatchObject({
          key: b.id,
          cgroup_id: String(ino),
          cgroup_path: b.cgroup,
          container_id: b.id,
          name: "web",
          source: "oci-hook",
          pod: { namespace: "shop", name: "nginx-1", uid: "5b0c1a2e-0000-4000-8000-00000000000a", container: "web" },
        });
        expect(runc(runcRoot, ["kill", b.id, "KILL"]).status).toBe(0);
        await Bun.sleep(200);
        expect(runc(runcRoot, ["delete", "--force", b.id]).status).toBe(0);
        expect(logLines().some((l) => l.includes(`container ${b.id} (poststop): forgotten by the agent`))).toBe(true);
        // Gone from the registry.
        expect((await api(`/v1/workloads/${b.id}`)).status).toBe(404);
        expect((await api(`/v1/workloads/${b.id}`, { method: "DELETE" })).status).toBe(404);

        // A foreground run: the hook holds the start, the container runs, poststop forgets.
        const f = bundle(["cat", "/secret"], crio("shop", "nginx-2", "web"), hookEntry("closed"));
        const fr = runcRun(runcRoot, f.dir, f.id);
        expect(fr.stdout).toBe(SECRET);
        expect(fr.status).toBe(0);
        expect(logLines().some((l) => l.includes(`container ${f.id}: reported cgroup ${f.cgroup}`) && l.includes("pod shop/nginx-2, container web"))).toBe(true);
        expect(logLines().some((l) => l.includes(`container ${f.id} (poststop): forgotten by the agent`))).toBe(true);
      } finally {
        await stopAgent();
      }
    },
    90_000,
  );

  kernelTest(
    "agent down: --fail-mode closed makes runc run fail before the first instruction (but for --fail-allow-namespace); open lets it run and logs why",
    () => {
      // No agent: the state file names none (a stopped agent removes its state file).
      const gone = join(dir, "no-agent-state.json");
      expect(existsSync(gone)).toBe(false);
      const c = bundle(["cat", "/secret"], containerd("shop", "p", "web"), hookEntry("closed", { stateFile: gone }));
      const closed = runcRun(runcRoot, c.dir, c.id);
      expect(closed.status).not.toBe(0);
      expect(closed.stdout).toBe("");
      expect(closed.stderr).toContain(`ward oci-hook: container ${c.id}: no agent found: ${gone} does not exist`);
      expect(closed.stderr).toContain("--fail-mode closed: refusing to start it");
      // runc tore the container down: nothing left under its root, no cgroup.
      expect(runc(runcRoot, ["state", c.id]).status).not.toBe(0);
      expect(existsSync(join(cgroupV2Mount()!, c.cgroup))).toBe(false);

      const o = bundle(["cat", "/secret"], containerd("shop", "p", "web"), hookEntry("open", { stateFile: gone }));
      const open = runcRun(runcRoot, o.dir, o.id);
      expect(open.stdout).toBe(SECRET);
      expect(open.status).toBe(0);
      expect(logLines().some((l) => l.includes(`container ${o.id}: no agent found`) && l.includes("--fail-mode open: letting it start"))).toBe(true);

      // The shipped config's --fail-allow-namespace ward: the agent's own pods start while it is down.
      const own = bundle(["cat", "/secret"], containerd("ward", "ward-agent-x", "agent"), hookEntry("closed", { stateFile: gone }));
      const ownRun = runcRun(runcRoot, own.dir, own.id);
      expect(ownRun.stdout).toBe(SECRET);
      expect(ownRun.status).toBe(0);
      expect(logLines().some((l) => l.includes(`container ${own.id}: no agent found`) && l.includes("namespace ward is in --fail-allow-namespace"))).toBe(true);

      // An agent URL nothing listens on (the agent died without removing its state file).
      const stale = join(dir, "stale-state.json");
      writeFileSync(stale, JSON.stringify({ pid: process.pid, url: "http://127.0.0.1:9", token_file: tokenFile }));
      writeFileSync(tokenFile, `${"x".repeat(40)}\n`, { mode: 0o600 });
      const s = bundle(["cat", "/secret"], {}, hookEntry("closed", { stateFile: stale }));
      const sr = runcRun(runcRoot, s.dir, s.id);
      expect(sr.status).not.toBe(0);
      expect(sr.stdout).toBe("");
      expect(sr.stderr).toContain("cannot reach the agent");
      rmSync(tokenFile);
    },
    90_000,
  );

  kernelTest(
    "agent not answering (SIGSTOP): the hook gives up after --timeout; closed refuses the container, open starts it; the late report of the refused one is not registered",
    async () => {
      await startAgent();
      try {
        agent!.kill("SIGSTOP");
        const c = bundle(["cat", "/secret"], containerd("shop", "p", "web"), hookEntry("closed", { timeout: "1s" }));
        const closed = runcRun(runcRoot, c.dir, c.id);
        expect(closed.status).not.toBe(0);
        expect(closed.stdout).toBe("");
        expect(closed.stderr).toContain(`ward oci-hook: container ${c.id}: PUT `);
        expect(closed.stderr).toContain("no answer in time (--timeout 1000 ms); --fail-mode closed: refusing to start it");
        // Bounded: the hook's 1 s (and its 1 s withdrawal), not the runtime's 10 s hook timeout.
        expect(closed.ms).toBeLessThan(8000);
        const o = bundle(["cat", "/secret"], containerd("shop", "p", "web"), hookEntry("open", { timeout: "1s" }));
        const open = runcRun(runcRoot, o.dir, o.id);
        expect(open.stdout).toBe(SECRET);
        expect(open.status).toBe(0);
        agent!.kill("SIGCONT");
        // The agent now reads the refused container's PUT: its cgroup is gone (runc removed it), so 422, not registered.
        await Bun.sleep(500);
        expect((await api(`/v1/workloads/${c.id}`)).status).toBe(404);
      } finally {
        agent?.kill("SIGCONT");
        await stopAgent();
      }
    },
    90_000,
  );

  kernelTest(
    "scoped policies hold from the container's first instruction: the scoped container is stopped, an unscoped one and the host read the same file",
    async () => {
      await startAgent();
      try {
        const secret = join(rootfs, "secret");
        const secret2 = join(rootfs, "secret2");
        const byName = secureOpenPolicy({
          name: "oci-victim-kill",
          file: secret,
          scope: labelScope("containerSelector", { name: "victim" }),
        });
        const add = await api("/v1/policies", { method: "POST", body: byName });
        expect({ status: add.status, body: add.status === 201 ? "" : await add.text() }).toEqual({ status: 201, body: "" });
        const ns = `${tag}-ns`;
        const byNamespace = secureOpenPolicy({
          name: "oci-ns-deny",
          namespace: ns,
          file: secret2,
          action: "Override\n        argError: -1",
        });
        const add2 = await api("/v1/policies", { method: "POST", body: byNamespace });
        if (!fanotifyHere) {
          // Without fanotify permission events (and no BPF LSM here) Override cannot be honored: refused, not weakened.
          expect(add2.status).toBe(400);
          expect(await add2.text()).toContain("Override needs");
        } else {
          expect({ status: add2.status, body: add2.status === 201 ? "" : await add2.text() }).toEqual({ status: 201, body: "" });
        }

        // The scoped container's init is `cat /secret`: its first instruction after exec opens the file.
        const victim = bundle(["cat", "/secret"], containerd("shop", "victim-pod", "victim"), hookEntry("closed"));
        const v = runcRun(runcRoot, victim.dir, victim.id);
        expect(v.stdout).toBe("");
        expect(v.status).toBe(137); // runc run exits 128 + the signal that ended the init
        // Same name through CRI-O's spelling.
        const victim2 = bundle(["cat", "/secret"], crio("shop", "victim-pod-2", "victim"), hookEntry("closed"));
        const v2 = runcRun(runcRoot, victim2.dir, victim2.id);
        expect(v2.stdout).toBe("");
        expect(v2.status).toBe(137);

        // The same container without the hook: nothing told the agent about it (its cgroup path
        // names no runtime the cgroup scan knows), so no scope holds it. The kills above are the hook's doing.
        const unreported = bundle(["cat", "/secret"], containerd("shop", "victim-pod-3", "victim"), undefined);
        const u = runcRun(runcRoot, unreported.dir, unreported.id);
        expect(u.stdout).toBe(SECRET);
        expect(u.status).toBe(0);

        // Unscoped: another container name, another namespace; and the host.
        const bystander = bundle(["cat", "/secret"], containerd("shop", "other-pod", "bystander"), hookEntry("closed"));
        const by = runcRun(runcRoot, bystander.dir, bystander.id);
        expect(by.stdout).toBe(SECRET);
        expect(by.status).toBe(0);
        expect(readFileSync(secret, "utf8")).toBe(SECRET);

        if (fanotifyHere) {
          const inNs = bundle(["cat", "/secret2"], crio(ns, "app-1", "app"), hookEntry("closed"));
          const n = runcRun(runcRoot, inNs.dir, inNs.id);
          expect(n.stdout).toBe("");
          expect(n.stderr).toContain("Operation not permitted");
          expect(n.status).toBe(1);
          const outNs = bundle(["cat", "/secret2"], crio("shop", "app-2", "app"), hookEntry("closed"));
          const o = runcRun(runcRoot, outNs.dir, outNs.id);
          expect(o.stdout).toBe(SECRET2);
          expect(o.status).toBe(0);
          expect(readFileSync(secret2, "utf8")).toBe(SECRET2);
        }
      } finally {
        await stopAgent();
      }
    },
    120_000,
  );
});
