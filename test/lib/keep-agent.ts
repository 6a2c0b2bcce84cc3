// The agent as the --keep-sensors-on-exit suites run it: from source, on loopback, with its own
// state, token and export files per start, a bpf dir and a policy store given by the test. The
// suites kill it with SIGKILL and start it again over the same pins, so every start is tracked
// and the suite's afterAll kills whatever is still running.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { listPins } from "../../src/bpf/pin.ts";
import { agentReady } from "./agent.ts";

const main = join(import.meta.dir, "..", "..", "src", "cli", "main.ts");

export interface KeepAgentOptions {
  bpfDir: string;
  store?: string;
  /** --keep-sensors-on-exit; default true */
  keep?: boolean;
  policies?: string[];
}

/** What GET /v1/policies says of a policy, as far as these suites read it. */
export interface KeptPolicy {
  name: string;
  state: string;
  adopted?: boolean;
  pinned?: string;
  hooks?: { mechanism: string; afterExit: string; actions: { action: string; honored: string; afterExit?: string }[] }[];
}

export type KeepAgent = Awaited<ReturnType<KeepAgents["start"]>>;

/** The agents one suite starts, under its temporary directory. */
export class KeepAgents {
  private readonly running: Subprocess[] = [];
  private seq = 0;

  constructor(private readonly dir: string) {}

  async start(o: KeepAgentOptions) {
    const n = ++this.seq;
    const stateFile = join(this.dir, `state-${n}.json`);
    const tokenFile = join(this.dir, `token-${n}`);
    const exportFile = join(this.dir, `events-${n}.log`);
    const args = [process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", exportFile, "--bpf-dir", o.bpfDir];
    if (o.keep !== false) args.push("--keep-sensors-on-exit");
    if (o.store !== undefined) args.push("--policy-store-dir", o.store);
    for (const p of o.policies ?? []) args.push("--policy", p);
    const agent = Bun.spawn(args, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
    this.running.push(agent);
    const stderr = new Response(agent.stderr).text();
    const { state, token } = await agentReady(agent, { stateFile, tokenFile }, stderr);
    const api = (path: string, init: RequestInit = {}) => fetch(`${state.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
    return {
      agent,
      stderr,
      api,
      async add(yaml: string): Promise<void> {
        const r = await api("/v1/policies", { method: "POST", body: yaml, headers: { "Content-Type": "application/yaml" } });
        if (r.status !== 201) throw new Error(`add policy: ${r.status} ${await r.text()}`);
      },
      async policies(): Promise<KeptPolicy[]> {
        return ((await (await api("/v1/policies")).json()) as { policies: KeptPolicy[] }).policies;
      },
      /** Every event exported so far, parsed. */
      events(): Record<string, unknown>[] {
        if (!existsSync(exportFile)) return [];
        return readFileSync(exportFile, "utf8").split("\n").filter((l) => l !== "").map((l) => JSON.parse(l) as Record<string, unknown>);
      },
      async kill9(): Promise<void> {
        agent.kill("SIGKILL");
        await agent.exited;
      },
      async stop(): Promise<number> {
        if (agent.exitCode === null) agent.kill("SIGTERM");
        return await agent.exited;
      },
    };
  }

  /** For afterAll: SIGKILL every agent still running and wait for them. */
  async killAll(): Promise<void> {
    for (const a of this.running) if (a.exitCode === null) a.kill("SIGKILL");
    await Promise.all(this.running.map((a) => a.exited));
  }
}

/** Every pin below d (none when d does not exist). */
export function pinsUnder(d: string): string[] {
  return existsSync(d) ? listPins(d) : [];
}
