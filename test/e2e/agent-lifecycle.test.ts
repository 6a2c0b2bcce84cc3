// `ward agent` end to end, as root against the real kernel: start it as a child, wait for
// /healthz, run a real /bin/true and find its process_exec in the export file and on
// /v1/events, query it through `ward status`, then SIGTERM: exit 0, no state file, and every
// BPF link it created is gone.
import { afterAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, chmodSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { validatePolicyText } from "../../src/policy/validate.ts";
import { hostHookFeatures, resolvePolicy } from "../../src/sensors/resolve.ts";
import { linkIdsOf, systemLinkIds } from "../lib/bpf-links.ts";
import { kernelTest } from "../lib/host.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";
import { agentReady, waitFor } from "../lib/agent.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const dir = mkdtempSync(join(tmpdir(), "ward-e2e-agent-"));
const bpfDir = `/sys/fs/bpf/ward-e2e-${process.pid}`;
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
});

function cli(args: string[], env: Record<string, string>) {
  const r = spawnSync(process.execPath, [main, ...args], { encoding: "utf8", env: { ...process.env, ...env }, timeout: 30_000 });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

describe("ward agent (e2e)", () => {
  kernelTest(
    "start, see /bin/true exec in the export file and /v1/events, status via CLI, SIGTERM cleans up",
    async () => {
      const stateFile = join(dir, "agent.json");
      const tokenFile = join(dir, "token");
      const exportFile = join(dir, "events.log");
      const agent = Bun.spawn(
        [process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", exportFile, "--bpf-dir", bpfDir],
        { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
      );
      const stderr = new Response(agent.stderr).text();
      try {
        const { state, token } = await agentReady<{ url: string; pid: number }>(agent, { stateFile, tokenFile });
        expect(state.pid).toBe(agent.pid);
        expect(token.length).toBeGreaterThanOrEqual(32);
        expect((await fetch(`${state.url}/v1/status`)).status).toBe(401);

        // The agent's own links (its descriptors), for the "nothing attached" check after exit:
        // a system-wide before/after diff would count other suites' links too.
        const created = [...linkIdsOf(agent.pid)];
        expect(created.length).toBeGreaterThan(0);

        const marker = `ward-e2e-${process.pid}-${Date.now()}`;
        const stream = await fetch(`${state.url}/v1/events?event_types=PROCESS_EXEC&process=${encodeURIComponent("/true$")}`, { headers: { Authorization: `Bearer ${token}` } });
        expect(stream.status).toBe(200);
        const reader = stream.body!.getReader();
        await waitFor("stream subscribed", async () => {
          const s = (await (await fetch(`${state.url}/v1/status`, { headers: { Authorization: `Bearer ${token}` } })).json()) as { events: { subscribers: number } };
          return s.events.subscribers > 0 ? true : undefined;
        }, 5_000);
        expect(spawnSync("/bin/true", [marker]).status).toBe(0);

        // From the stream.
        let buf = "";
        const fromStream = await waitFor(
          "process_exec on /v1/events",
          async () => {
            const { value, done } = await reader.read();
            if (done) throw new Error("stream ended");
            buf += new TextDecoder().decode(value);
            return buf.split("\n").find((l) => l.includes(marker));
          },
          15_000,
        );
        await reader.cancel();
        const ev = JSON.parse(fromStream) as { process_exec: { process: { binary: string; arguments: string; pid: number } }; node_name: string };
        expect(ev.process_exec.process.binary).toMatch(/\/true$/);
        expect(ev.process_exec.process.arguments).toBe(marker);

        // From the export file.
        const fromFile = await waitFor("process_exec in the export file", () => (existsSync(exportFile) ? readFileSync(exportFile, "utf8").split("\n").find((l) => l.includes(marker)) : undefined), 10_000);
        expect(JSON.parse(fromFile)).toEqual(JSON.parse(fromStream));

        // `ward status` finds the agent through the state file and its token file.
        const env = { WARD_STATE_FILE: stateFile };
        const sj = cli(["status", "-o", "json"], env);
        expect(sj.stderr).toBe("");
        expect(sj.code).toBe(0);
        const status = JSON.parse(sj.stdout) as { ready: boolean; pid: number; sensors: { name: string; state: string }[]; events: { by_type: Record<string, number> } };
        expect(status.ready).toBe(true);
        expect(status.pid).toBe(agent.pid);
        expect(status.sensors.length).toBeGreaterThan(0);
        expect(status.sensors.every((s) => s.state === "running")).toBe(true);
        expect(status.events.by_type.process_exec ?? 0).toBeGreaterThan(0);
        const st = cli(["status"], env);
        expect(st.code).toBe(0);
        expect(st.stdout).toContain("ready");
        // And through --server with the token from the state file's token file.
        expect(cli(["--server", state.url, "status", "-o", "json"], env).code).toBe(0);

        agent.kill("SIGTERM");
        expect(await agent.exited).toBe(0);
        expect(existsSync(stateFile)).toBe(false);
        const linksAfter = systemLinkIds();
        expect(created.filter((id) => linksAfter.has(id))).toEqual([]);
        expect(existsSync(bpfDir) ? readdirSync(bpfDir) : []).toEqual([]);
        // The token is never printed.
        expect(await stderr).not.toContain(token);
      } finally {
        if (agent.exitCode === null) agent.kill("SIGKILL");
        await agent.exited;
        if (agent.exitCode !== 0) process.stderr.write(`agent stderr:\n${await stderr}\n`);
      }
    },
    120_000,
  );
});

// A tracepoint no kernel has: the policy validates, and only applying it can refuse it.
const NO_SUCH_TRACEPOINT = `apiVersion: cilium.io/v1alpha1
kind: TracingPolicy
metadata:
  name: e2e-no-such-tracepoint
spec:
  tracepoints:
  - subsystem: ward_e2e
    event: no_such_event
    args:
    - index: 4
      type: int
`;

describe("ward agent start with a policy the kernel refuses (e2e)", () => {
  kernelTest(
    "one good and one refused --policy: exit 1, the refused file's line:col and field, nothing applied or left behind",
    () => {
      const d = mkdtempSync(join(tmpdir(), "ward-e2e-refused-"));
      const pins = `/sys/fs/bpf/ward-e2e-refused-${process.pid}`;
      try {
        const secret = join(d, "secret");
        writeFileSync(secret, "refused start\n");
        const myCat = join(d, "my-cat");
        copyFileSync("/bin/cat", myCat);
        chmodSync(myCat, 0o755);
        const good = join(d, "good.yaml");
        const bad = join(d, "bad.yaml");
        writeFileSync(good, secureOpenPolicy({ name: "e2e-refused-good", file: secret, allowed: myCat }));
        writeFileSync(bad, NO_SUCH_TRACEPOINT);
        // What the agent's resolution will say about the bad policy here (the same probes).
        const v = validatePolicyText(NO_SUCH_TRACEPOINT, bad);
        expect(v.diagnostics).toEqual([]);
        const predicted = resolvePolicy(v.policies[0]!.policy, hostHookFeatures(), "enforce").errors;

        const r = spawnSync(
          process.execPath,
          [main, "agent", "--listen", "127.0.0.1:0", "--policy", good, "--policy", bad, "--token-file", join(d, "token"), "--state-file", join(d, "agent.json"), "--bpf-dir", pins],
          { encoding: "utf8", timeout: 90_000 },
        );
        const stderr = r.stderr ?? "";
        expect({ status: r.status, signal: r.signal }).toEqual({ status: 1, signal: null });
        if (predicted.length > 0) {
          // refused by resolution (tracefs says the event does not exist): the hook's position and path
          expect(predicted).toEqual([expect.stringContaining("spec.tracepoints[0] (ward_e2e/no_such_event): tracepoint ward_e2e/no_such_event does not exist")]);
          expect(stderr).toContain(`${bad}:4:9: policy e2e-no-such-tracepoint cannot be applied on this kernel:\n`);
          expect(stderr).toContain(`${bad}:7:5: spec.tracepoints[0]: tracepoint ward_e2e/no_such_event does not exist on this kernel`);
        } else {
          // no tracefs to ask: the attach fails, reported at the policy's name
          expect(stderr).toContain(`${bad}:4:9: policy e2e-no-such-tracepoint could not be attached: `);
        }
        // the closing line names the file to fix, and only that one: the good policy applied
        expect(stderr).toMatch(new RegExp(`ward agent: error: ${bad.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}: cannot be applied on this kernel \\(\\d+ errors? above\\); nothing was applied\\n`));
        expect(stderr).not.toContain(`${good}:`);
        // Nothing applied: the good policy's rule is not in force (cat reads the secret) ...
        const cat = spawnSync("cat", [secret], { encoding: "utf8" });
        expect({ signal: cat.signal, stdout: cat.stdout }).toEqual({ signal: null, stdout: "refused start\n" });
        // ... and nothing is pinned: a link outlives its process only through a pin, so with the
        // agent gone and its bpf dir empty, none of its links is left.
        expect(existsSync(pins) ? readdirSync(pins, { recursive: true }) : []).toEqual([]);
        // nor files: no state file, and the token file this start created is removed again
        expect(existsSync(join(d, "agent.json"))).toBe(false);
        expect(existsSync(join(d, "token"))).toBe(false);
      } finally {
        rmSync(d, { recursive: true, force: true });
        rmSync(pins, { recursive: true, force: true });
      }
    },
    120_000,
  );
});
