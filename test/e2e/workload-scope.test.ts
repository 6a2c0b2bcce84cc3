// Workload scopes through the real agent (`ward agent`), as root: containers are found from
// the cgroup v2 tree (one cgroup made before the agent starts, found by the start scan; one
// made while it runs, found by inotify), listed by GET /v1/workloads; a policy scoped with
// containerSelector id=<container> holds only in that container's cgroup: before the
// container exists it enforces nothing and status says so; once its cgroup appears, a
// shell moved into it gets EPERM on the protected file while the same shell elsewhere reads
// it; events from inside carry Tetragon's `docker` field; when the cgroup goes, the scope is
// empty again.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { agentReady, waitFor } from "../lib/agent.ts";
import { cgroup2Mount } from "../lib/cgroup.ts";
import { withDriver } from "../lib/cgroup-shell.ts";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const dir = mkdtempSync(join(tmpdir(), "ward-scope-e2e-"));
const bpfDir = `/sys/fs/bpf/ward-scope-e2e-${process.pid}`;
const SECRET = "I love pizza!\n";
const secret = join(dir, "secret");
// 64-hex container ids as docker names its systemd scopes (docker-<id>.scope)
const hex = (seed: number): string => Array.from({ length: 64 }, (_, i) => ((seed * 7 + i * 13) % 16).toString(16)).join("");
const ID_EARLY = hex(process.pid);
const ID_LATE = hex(process.pid + 1);
let parent = "";

beforeAll(() => {
  if (kernelUnavailable() !== undefined) return;
  writeFileSync(secret, SECRET);
  const mount = cgroup2Mount();
  if (mount === undefined) throw new Error("no cgroup2 mount");
  parent = join(mount, `ward-scope-e2e-${process.pid}`);
  mkdirSync(parent);
  mkdirSync(join(parent, `docker-${ID_EARLY}.scope`));
});

afterAll(() => {
  for (const d of [`docker-${ID_LATE}.scope`, `docker-${ID_EARLY}.scope`, ""]) {
    const p = join(parent, d);
    if (parent !== "" && existsSync(p)) {
      try {
        rmdirSync(p);
      } catch {
        // a process still inside (the test failed midway): left for the host to clean
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
});

interface Status {
  policies: { name: string; state: string; scope?: { scope: string; members: number; workloads: string[]; note?: string } }[];
  workloads?: { total: number; by_source: Record<string, number>; watched_cgroups?: number };
}

describe("workload scopes through the agent", () => {
  kernelTest(
    "cgroup-scan feeder + containerSelector id: enforces nothing until the container's cgroup appears, then only inside it; docker field in events",
    async () => {
      const stateFile = join(dir, "state.json");
      const tokenFile = join(dir, "token");
      const exportFile = join(dir, "events.log");
      const agent = Bun.spawn([process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", exportFile, "--bpf-dir", bpfDir], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
      const stderr = new Response(agent.stderr).text();
      try {
        const { state, token } = await agentReady(agent, { stateFile, tokenFile }, stderr);
        const api = (path: string, init: RequestInit = {}): Promise<Response> => fetch(`${state.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
        const workloads = async (): Promise<{ key: string; cgroup_path: string; runtime: string; source: string; container_id?: string }[]> =>
          ((await (await api("/v1/workloads")).json()) as { workloads: { key: string; cgroup_path: string; runtime: string; source: string }[] }).workloads;
        const status = async (): Promise<Status> => (await (await api("/v1/status")).json()) as Status;

        // The start scan found the container made before the agent.
        const early = (await workloads()).find((w) => w.key === ID_EARLY);
        expect(early).toMatchObject({ runtime: "docker", source: "cgroup-scan", container_id: ID_EARLY, cgroup_path: `/ward-scope-e2e-${process.pid}/docker-${ID_EARLY}.scope` });
        expect((await status()).workloads?.by_source["cgroup-scan"]).toBeGreaterThanOrEqual(1);

        const yaml = secureOpenPolicy({ name: "scoped-secret", file: secret, allowed: "/nonexistent/cat", action: "Override\n        argError: -1" })
          .replace("spec:\n", `spec:\n  containerSelector:\n    matchLabels:\n      id: ${ID_LATE}\n`);
        const add = await api("/v1/policies", { method: "POST", body: yaml, headers: { "Content-Type": "application/yaml" } });
        expect(add.status).toBe(201);
        let p = (await status()).policies.find((x) => x.name === "scoped-secret");
        expect(p?.scope).toMatchObject({ scope: `containerSelector id=${ID_LATE}`, members: 0 });
        expect(p?.scope?.note).toContain("enforces nothing");
        expect(p?.state).toContain("0 workloads");

        await withDriver(async (d) => {
          // In the other container's cgroup: not in scope.
          writeFileSync(join(parent, `docker-${ID_EARLY}.scope`, "cgroup.procs"), `${d.pid}\n`);
          expect(await d.run(`cat ${secret}`)).toEqual({ out: SECRET, rc: 0 });

          // The scoped container's cgroup appears while the agent runs: inotify feeds it.
          mkdirSync(join(parent, `docker-${ID_LATE}.scope`));
          await waitFor("the new container in /v1/workloads", async () => ((await workloads()).some((w) => w.key === ID_LATE) ? true : undefined), 10_000, agent);
          p = (await status()).policies.find((x) => x.name === "scoped-secret");
          expect(p?.scope).toMatchObject({ members: 1, workloads: [ID_LATE] });
          expect(p?.scope?.note).toBeUndefined();
          const metrics = (await (await fetch(`${state.url}/metrics`)).text()).split("\n");
          expect(metrics).toContain('ward_policy_scope_members{policy="scoped-secret"} 1');
          expect(metrics.some((l) => l.startsWith('ward_workloads{source="cgroup-scan"} '))).toBe(true);

          writeFileSync(join(parent, `docker-${ID_LATE}.scope`, "cgroup.procs"), `${d.pid}\n`);
          const denied = await d.run(`cat ${secret}`);
          expect(denied.rc).toBe(1);
          expect(denied.out).toContain("Operation not permitted");
          // A sub-cgroup the container made itself is in scope too (the fanotify thread walks
          // the opener's ancestors), and its processes' events still name the container.
          const sub = join(parent, `docker-${ID_LATE}.scope`, "init");
          mkdirSync(sub);
          writeFileSync(join(sub, "cgroup.procs"), `${d.pid}\n`);
          expect((await d.run(`cat ${secret}`)).out).toContain("Operation not permitted");
          writeFileSync(join(parent, `docker-${ID_EARLY}.scope`, "cgroup.procs"), `${d.pid}\n`);
          // The sub-cgroup stays until the cat's exec event is out: a cgroup removed before its
          // exited process's event is written can no longer be traced to its container
          // (src/workloads/identity.ts), which is a limit of userspace resolution, not this test.
          await waitFor("the sub-cgroup cat's process_exec", () => {
            const n = existsSync(exportFile) ? readFileSync(exportFile, "utf8").split("\n").filter((l) => l.includes('"process_exec"') && l.includes(secret)).length : 0;
            return n >= 3 ? true : undefined;
          }, 10_000, agent);
          rmdirSync(sub);
          // Moved out again: reads.
          writeFileSync(join(parent, `docker-${ID_EARLY}.scope`, "cgroup.procs"), `${d.pid}\n`);
          expect(await d.run(`cat ${secret}`)).toEqual({ out: SECRET, rc: 0 });
        });

        // Events of processes in the container carry its id as Tetragon's docker field.
        const ev = await waitFor("the denied open's process_kprobe with docker", () => {
          if (!existsSync(exportFile)) return undefined;
          return readFileSync(exportFile, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, Record<string, unknown>>)
            .map((e) => e.process_kprobe).find((k) => k?.policy_name === "scoped-secret");
        }, 10_000, agent);
        expect((ev.process as { docker?: string }).docker).toBe(ID_LATE.slice(0, 31));
        // The export file is written as the pipeline goes: wait for all four cats' exec events.
        const execs = await waitFor("the four cats' process_exec events", () => {
          const lines = readFileSync(exportFile, "utf8").split("\n").filter((l) => l.includes('"process_exec"') && l.includes(secret));
          return lines.length >= 4 ? lines.map((l) => JSON.parse(l) as { process_exec: { process: { docker?: string } } }) : undefined;
        }, 10_000, agent);
        expect(execs.map((e) => e.process_exec.process.docker).sort()).toEqual([ID_EARLY.slice(0, 31), ID_EARLY.slice(0, 31), ID_LATE.slice(0, 31), ID_LATE.slice(0, 31)].sort());

        // The container's cgroup goes: the workload and the scope member go with it.
        rmdirSync(join(parent, `docker-${ID_LATE}.scope`));
        await waitFor("the container gone from /v1/workloads", async () => ((await workloads()).some((w) => w.key === ID_LATE) ? undefined : true), 10_000, agent);
        expect((await status()).policies.find((x) => x.name === "scoped-secret")?.scope?.members).toBe(0);
        expect((await api("/v1/policies/scoped-secret", { method: "DELETE" })).status).toBe(200);
      } finally {
        if (agent.exitCode === null) agent.kill("SIGTERM");
        const code = await agent.exited;
        if (code !== 0) process.stderr.write(await stderr);
      }
    },
    120_000,
  );
});
