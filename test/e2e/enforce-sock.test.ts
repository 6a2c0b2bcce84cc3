// Socket policies through the real agent (`ward agent`), as root against the real kernel: a
// security_socket_connect policy added over the API makes one binary's connect() fail with
// EPERM while another connects, /v1/status names the cgroup mechanism and how each action is
// honored, the export file carries the process_kprobe event with its sock/sockaddr
// arguments, and deleting the policy leaves no cgroup link in the agent and lets the
// connect through again.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { cgroupLinks } from "../lib/bpf-links.ts";
import { buildSockHelpers } from "../lib/sock-helper.ts";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import { agentReady, waitFor } from "../lib/agent.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const dir = mkdtempSync(join(tmpdir(), "ward-sock-e2e-"));
const bpfDir = `/sys/fs/bpf/ward-sock-e2e-${process.pid}`;
const denied = join(dir, "denied-helper");
const allowed = join(dir, "allowed-helper");
let server: Server | undefined;
let port = 0;

beforeAll(async () => {
  if (kernelUnavailable() !== undefined) return;
  buildSockHelpers(denied, allowed);
  server = createServer((c) => c.destroy());
  await new Promise<void>((r) => server!.listen(0, "127.0.0.1", r));
  port = (server.address() as { port: number }).port;
});

afterAll(() => {
  server?.close();
  rmSync(dir, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
});

function connectFrom(bin: string): string {
  const r = spawnSync(bin, ["connect", "tcp", "127.0.0.1", String(port)], { encoding: "utf8", timeout: 10_000 });
  return r.signal ?? r.stdout.trim();
}

function policyYaml(name: string): string {
  return `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: ${name}
spec:
  kprobes:
  - call: security_socket_connect
    syscall: false
    args:
    - index: 0
      type: socket
    - index: 1
      type: sockaddr
    selectors:
    - matchArgs:
      - index: 0
        operator: Protocol
        values: ["IPPROTO_TCP"]
      - index: 1
        operator: Family
        values: ["AF_INET", "AF_INET6"]
      - index: 1
        operator: SAddr
        values: ["127.0.0.1"]
      - index: 1
        operator: SPort
        values: ["${port}"]
      matchBinaries:
      - operator: In
        values: ["${denied}"]
      matchActions:
      - action: Override
        argError: -1
`;
}

describe("socket policies through the agent", () => {
  kernelTest(
    "API: a connect policy denies one binary's connect() with EPERM, status names the cgroup mechanism, delete detaches it",
    async () => {
      const stateFile = join(dir, "state.json");
      const tokenFile = join(dir, "token");
      const exportFile = join(dir, "events.log");
      const agent = Bun.spawn([process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", exportFile, "--bpf-dir", bpfDir], { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
      const stderr = new Response(agent.stderr).text();
      try {
        const { state, token } = await agentReady(agent, { stateFile, tokenFile });
        const api = (path: string, init: RequestInit = {}): Promise<Response> => fetch(`${state.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });

        expect(cgroupLinks(agent.pid)).toEqual([]);
        expect(connectFrom(denied)).toBe("ok");
        const add = await api("/v1/policies", { method: "POST", body: policyYaml("no-local-connect"), headers: { "Content-Type": "application/yaml" } });
        expect(add.status).toBe(201);
        expect(cgroupLinks(agent.pid).length).toBe(2); // connect4 and connect6 at the cgroup v2 root

        expect(connectFrom(denied)).toBe("EPERM");
        expect(connectFrom(allowed)).toBe("ok");

        const st = (await (await api("/v1/status")).json()) as { policies: { name: string; hooks: { hook: string; mechanism: string; actions: { action: string; honored: string }[] }[] }[] };
        const hook = st.policies.find((p) => p.name === "no-local-connect")?.hooks[0];
        expect(hook?.hook).toBe("security_socket_connect");
        expect(hook?.mechanism).toMatch(/^cgroup sock_addr programs cgroup\/connect4 and cgroup\/connect6 at the cgroup v2 root \(\/\S+\)/);
        expect(hook?.actions).toEqual([{ selector: 0, action: "Override(argError=-1)", honored: "connect() fails with EPERM in cgroup/connect4 and cgroup/connect6, before the kernel acts (nothing is sent or bound)" }] as never);

        const ev = await waitFor("the process_kprobe event", () => {
          if (!existsSync(exportFile)) return undefined;
          return readFileSync(exportFile, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, Record<string, unknown>>).map((e) => e.process_kprobe).find((k) => k?.policy_name === "no-local-connect");
        }, 10_000);
        expect(ev.function_name).toBe("security_socket_connect");
        expect(ev.action).toBe("KPROBE_ACTION_OVERRIDE");
        expect((ev.process as { binary: string }).binary).toBe(denied);
        expect(ev.args).toEqual([
          { sock_arg: { family: "AF_INET", type: "SOCK_STREAM", protocol: "IPPROTO_TCP", saddr: "0.0.0.0", daddr: "0.0.0.0", state: "TCP_CLOSE" } },
          { sockaddr_arg: { family: "AF_INET", addr: "127.0.0.1", port } },
        ]);

        expect((await api("/v1/policies/no-local-connect", { method: "DELETE" })).status).toBe(200);
        expect(cgroupLinks(agent.pid)).toEqual([]);
        expect(connectFrom(denied)).toBe("ok");
      } finally {
        if (agent.exitCode === null) agent.kill("SIGTERM");
        const code = await agent.exited;
        if (code !== 0) process.stderr.write(await stderr);
      }
    },
    120_000,
  );
});
