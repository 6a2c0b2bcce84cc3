// The agent as the benches run it: `dist/ward agent` (the single binary users run; built
// when missing), with its state, token, export file and pins in the bench's own places, so
// it never meets an agent of the host or of a concurrent test. start() resolves once
// /healthz answers 200; the API helpers use the token the agent wrote.
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import type { AgentStatus } from "../../src/api/deps.ts";
import { readState } from "../../src/agent/state-file.ts";
import { BenchChild } from "./child.ts";
import { waitFor } from "./host.ts";
import type { Treatment } from "./ab.ts";

export class BenchAgentError extends Error {
  override name = "BenchAgentError";
}

const root = join(import.meta.dir, "..", "..");
export const WARD_BINARY = join(root, "dist", "ward");

let built = false;
/**
 * dist/ward, built (`bun run build/binary.ts`) when missing or when `fresh` asks for it
 * (bench/run.ts does, once, so the suite measures the tree it reports the commit of).
 * The build's output goes to stderr.
 */
export async function wardBinary(opts: { fresh?: boolean } = {}): Promise<string> {
  if (built || (existsSync(WARD_BINARY) && !opts.fresh)) return WARD_BINARY;
  process.stderr.write("bench: building dist/ward\n");
  const { buildBinary } = await import("../../build/binary.ts");
  await buildBinary({ quiet: true });
  built = true;
  return WARD_BINARY;
}

export function wardBinaryBytes(): number {
  return statSync(WARD_BINARY).size;
}

let serial = 0;

export class BenchAgent {
  private child: BenchChild | undefined;
  private endpoint: { url: string; token: string } | undefined;

  constructor(
    readonly label: string,
    /** a scratch directory for state, token and the export file */
    private readonly dir: string,
    private readonly opts: { policies?: string[]; extraArgs?: string[] } = {},
  ) {}

  get exportFile(): string {
    return join(this.dir, `events-${this.tag}.jsonl`);
  }

  private tag = "";

  /** The running agent's state file (where `ward` commands, the OCI hook among them, find it). */
  get stateFile(): string {
    return join(this.dir, `agent-${this.tag}.json`);
  }

  async start(): Promise<void> {
    const bin = await wardBinary();
    this.tag = `${process.pid}-${serial++}`;
    const state = this.stateFile;
    const tokenFile = join(this.dir, "token");
    const args = [
      "agent",
      "--listen",
      "127.0.0.1:0",
      "--state-file",
      state,
      "--token-file",
      tokenFile,
      "--export-file",
      this.exportFile,
      "--bpf-dir",
      `/sys/fs/bpf/ward-bench-${this.tag}`,
      "--node-name",
      "bench",
      ...(this.opts.policies ?? []).flatMap((p) => ["--policy", p]),
      ...(this.opts.extraArgs ?? []),
    ];
    const child = BenchChild.start(this.label, bin, args);
    this.child = child;
    let url: string | undefined;
    const healthy = await waitFor(async () => {
      child.assertRunning();
      url = readState(state)?.url;
      if (url === undefined) return false;
      try {
        return (await fetch(`${url}/healthz`)).status === 200;
      } catch {
        return false;
      }
    }, 60_000);
    if (!healthy || url === undefined) {
      await child.stop();
      throw new BenchAgentError(`${this.label}: /healthz did not answer 200 within 60 s:\n${child.output}`);
    }
    this.endpoint = { url, token: readFileSync(tokenFile, "utf8").trim() };
  }

  get pid(): number {
    const p = this.child?.pid;
    if (p === undefined) throw new BenchAgentError(`${this.label}: not running`);
    return p;
  }

  get output(): string {
    return this.child?.output ?? "";
  }

  assertRunning(): void {
    this.child?.assertRunning();
  }

  async request(method: string, path: string, body?: string): Promise<{ status: number; json: unknown }> {
    const ep = this.endpoint;
    if (!ep) throw new BenchAgentError(`${this.label}: not started`);
    const r = await fetch(`${ep.url}${path}`, {
      method,
      headers: { Authorization: `Bearer ${ep.token}`, ...(body !== undefined ? { "Content-Type": "application/yaml" } : {}) },
      body,
    });
    const text = await r.text();
    let json: unknown = text;
    try {
      json = JSON.parse(text);
    } catch {
      // not JSON: keep the text for the error message
    }
    return { status: r.status, json };
  }

  async status(): Promise<AgentStatus> {
    const r = await this.request("GET", "/v1/status");
    if (r.status !== 200) throw new BenchAgentError(`${this.label}: /v1/status answered ${r.status}: ${JSON.stringify(r.json)}`);
    return r.json as AgentStatus;
  }

  async stop(): Promise<void> {
    await this.child?.stop();
    this.child = undefined;
    this.endpoint = undefined;
  }
}

/** An agent as an A/B treatment: started for the "on" half of each round. */
export class AgentTreatment implements Treatment {
  readonly agent: BenchAgent;
  constructor(
    readonly name: string,
    dir: string,
    opts: { policies?: string[]; extraArgs?: string[] } = {},
    /** runs after /healthz, before measuring: proves the treatment is in effect */
    private readonly ready?: (agent: BenchAgent) => Promise<void>,
  ) {
    this.agent = new BenchAgent(name, dir, opts);
  }
  async start(): Promise<void> {
    await this.agent.start();
    try {
      await this.ready?.(this.agent);
    } catch (e) {
      await this.agent.stop();
      throw e;
    }
  }
  stop(): Promise<void> {
    return this.agent.stop();
  }
}

/** Resident set size of a process in bytes (VmRSS), and its CPU seconds so far (utime + stime). */
export function procUsage(pid: number): { rss: number; cpu: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/^VmRSS:\s+(\d+) kB/m.exec(status)?.[1] ?? Number.NaN);
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // fields after the ")" of comm: state is field 3, utime 14, stime 15
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(f[11]) + Number(f[12]);
  return { rss: kb * 1024, cpu: ticks / 100 };
}

/** VmRSS split as the kernel counts it: anonymous (heaps, JIT), file-backed (the mapped binary and libraries), shmem. */
export function rssBreakdown(pid: number): Record<"RssAnon" | "RssFile" | "RssShmem", number> {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? Number.NaN) * 1024;
  return { RssAnon: kb("RssAnon"), RssFile: kb("RssFile"), RssShmem: kb("RssShmem") };
}
