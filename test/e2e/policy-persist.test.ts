// Policies added through the API survive a restart (--policy-store-dir), as root against the
// real kernel with the real agent: add a Sigkill file policy over the API, restart, and the
// protected file still kills its reader; disable, restart, it stays disabled and the file is
// readable; delete, restart, it is gone. A temp file an interrupted write left (a complete
// record that was never renamed) is removed at start and not applied.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelTest } from "../lib/host.ts";
import { secureOpenPolicy } from "../lib/talk-policies.ts";
import { agentReady, waitFor } from "../lib/agent.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const dir = mkdtempSync(join(tmpdir(), "ward-persist-e2e-"));
const storeDir = join(dir, "store");
const bpfDir = `/sys/fs/bpf/ward-persist-${process.pid}`;
const secret = join(dir, "secret", "file");
const myCat = join(dir, "my-cat");
const CONTENT = "persisted?\n";

beforeAll(() => {
  mkdirSync(join(dir, "secret"));
  writeFileSync(secret, CONTENT);
  copyFileSync("/bin/cat", myCat);
  spawnSync("chmod", ["755", myCat]);
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
});

let seq = 0;
async function startAgent() {
  const n = ++seq;
  const stateFile = join(dir, `state-${n}.json`);
  const tokenFile = join(dir, `token-${n}`);
  const agent = Bun.spawn(
    [process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", join(dir, `events-${n}.log`), "--bpf-dir", bpfDir, "--policy-store-dir", storeDir],
    { stdout: "pipe", stderr: "pipe", stdin: "ignore" },
  );
  const stderr = new Response(agent.stderr).text();
  const { state, token } = await agentReady(agent, { stateFile, tokenFile }, stderr);
  return {
    stderr,
    api: (path: string, init: RequestInit = {}) => fetch(`${state.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } }),
    async policies(): Promise<{ name: string; enabled: boolean; mode: string; state: string; source: string }[]> {
      return ((await (await this.api("/v1/policies")).json()) as { policies: { name: string; enabled: boolean; mode: string; state: string; source: string }[] }).policies;
    },
    async stop(): Promise<number> {
      if (agent.exitCode === null) agent.kill("SIGTERM");
      return await agent.exited;
    },
  };
}

function cat(): { stdout: string; signal: NodeJS.Signals | null } {
  const r = spawnSync("cat", [secret], { encoding: "utf8", timeout: 20_000 });
  return { stdout: r.stdout ?? "", signal: r.signal };
}

describe("policy store directory (e2e)", () => {
  kernelTest(
    "add over the API, restart: enforced again; disable, restart: disabled; delete, restart: gone; a crash's temp file is removed, not applied",
    async () => {
      // Without any agent the file is readable (so the kills below are the policy's).
      expect(cat()).toEqual({ stdout: CONTENT, signal: null });

      const a1 = await startAgent();
      try {
        const add = await a1.api("/v1/policies", { method: "POST", body: secureOpenPolicy({ name: "persist-secure", file: secret, allowed: myCat }), headers: { "Content-Type": "application/yaml" } });
        expect(add.status).toBe(201);
        expect(cat()).toEqual({ stdout: "", signal: "SIGKILL" });
        expect(await a1.stop()).toBe(0);
      } finally {
        await a1.stop();
      }
      expect(readdirSync(storeDir)).toEqual(["persist-secure.wardpolicy"]);
      // Agent stopped: nothing enforces (the policy lives as long as an agent runs it).
      expect(cat()).toEqual({ stdout: CONTENT, signal: null });

      const a2 = await startAgent();
      try {
        expect((await a2.policies()).map((p) => [p.name, p.source, p.enabled, p.state])).toEqual([["persist-secure", "api", true, "enforcing"]]);
        expect(cat()).toEqual({ stdout: "", signal: "SIGKILL" });
        expect(spawnSync(myCat, [secret], { encoding: "utf8" }).stdout).toBe(CONTENT);
        expect((await a2.api("/v1/policies/persist-secure/disable", { method: "POST" })).status).toBe(200);
        expect(cat()).toEqual({ stdout: CONTENT, signal: null });
        expect(await a2.stop()).toBe(0);
      } finally {
        await a2.stop();
      }

      const a3 = await startAgent();
      try {
        expect((await a3.policies()).map((p) => [p.name, p.enabled, p.state])).toEqual([["persist-secure", false, "disabled"]]);
        expect(cat()).toEqual({ stdout: CONTENT, signal: null });
        expect((await a3.api("/v1/policies/persist-secure", { method: "DELETE" })).status).toBe(200);
        expect(readdirSync(storeDir)).toEqual([]);
        expect(await a3.stop()).toBe(0);
      } finally {
        await a3.stop();
      }

      // What a crash between write and rename leaves: a complete record under a temp name.
      const leftover = ".persist-crash.wardpolicy.4242.0badf00d.tmp";
      writeFileSync(
        join(storeDir, leftover),
        JSON.stringify({ version: 1, name: "persist-crash", enabled: true, mode: "enforce", source: "api", added_at: new Date().toISOString(), text: secureOpenPolicy({ name: "persist-crash", file: secret, allowed: myCat }) }),
      );
      const a4 = await startAgent();
      try {
        expect(await a4.policies()).toEqual([]);
        expect(cat()).toEqual({ stdout: CONTENT, signal: null });
        expect(readdirSync(storeDir)).toEqual([]);
        expect(await a4.stop()).toBe(0);
      } finally {
        await a4.stop();
      }
      expect(await a4.stderr).toContain(`removed ${leftover}, left by an interrupted write (not applied)`);
    },
    180_000,
  );
});
