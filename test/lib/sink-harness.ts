// Shared by the sink suites (test/e2e/sink-*.test.ts) and bench/sinks.ts: the real agent
// started as `ward agent ... --sink ...` with the talk's Sigkill policy, real processes that
// leave marker events, servers started and stopped as whole processes, and bounded polling
// instead of sleeps.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { AgentStatus } from "../../src/api/deps.ts";
import { secureOpenPolicy } from "./talk-policies.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");

export async function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, alive?: () => string | undefined): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    const dead = alive?.();
    if (dead !== undefined) throw new Error(`${what}: ${dead}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await Bun.sleep(50);
  }
}

/** A loopback TCP port nobody listens on right now (the kernel picks it). */
export async function freePort(): Promise<number> {
  const l = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {} } });
  const port = l.port;
  l.stop(true);
  return port;
}

/** A server process the test owns: stop() ends it (TERM, then KILL) and waits for it. */
export class ServerProcess {
  proc: Subprocess<"ignore", "ignore", "pipe"> | undefined;
  #stderr = "";
  constructor(
    readonly what: string,
    private readonly argv: string[],
    private readonly opts: { cwd?: string; env?: Record<string, string> } = {},
  ) {}

  start(): void {
    if (this.proc && this.dead() === undefined) throw new Error(`${this.what} already running`);
    this.proc = Bun.spawn(this.argv, { stdin: "ignore", stdout: "ignore", stderr: "pipe", cwd: this.opts.cwd, env: this.opts.env ?? (process.env as Record<string, string>) });
    const p = this.proc;
    void new Response(p.stderr).text().then((t) => (this.#stderr = t), () => {});
  }

  /** Why it is not running, or undefined while it is. */
  dead(): string | undefined {
    const p = this.proc;
    if (!p) return `${this.what} not started`;
    return p.exitCode === null && p.signalCode === null ? undefined : `${this.what} exited (${p.exitCode ?? p.signalCode}): ${this.#stderr.slice(-800)}`;
  }

  /** SIGTERM, and SIGKILL after graceMs: a server that takes long to shut down is simply killed. */
  async stop(graceMs = 3_000): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null || p.signalCode !== null) return;
    p.kill("SIGTERM");
    const t = setTimeout(() => p.kill("SIGKILL"), graceMs);
    await p.exited;
    clearTimeout(t);
  }
}

export interface AgentRun {
  url: string;
  exportFile: string;
  agent: Subprocess<"ignore", "pipe", "pipe">;
  /** Lines of the agent's export file. */
  exportLines(): string[];
  metrics(): Promise<string>;
  /** One sample of /metrics, e.g. metric("ward_sink_events_sent_total", {sink: "loki"}). */
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** GET /v1/status with the agent's token. */
  status(): Promise<AgentStatus>;
  /** `ward ARGS` (the real CLI) pointed at this agent through its state file. */
  cli(args: string[]): { code: number; stdout: string; stderr: string };
  stop(): Promise<number>;
  stderr(): string;
}

export interface AgentOpts {
  dir: string;
  bpfDir: string;
  sinks: string[];
  /** A secret file guarded by the talk's Sigkill policy (only `allowed` may read it). */
  guard?: { file: string; allowed: string };
}

let seq = 0;
export async function startAgent(o: AgentOpts): Promise<AgentRun> {
  const n = `${process.pid}-${++seq}`;
  mkdirSync(o.dir, { recursive: true });
  const stateFile = join(o.dir, `state-${n}.json`);
  const tokenFile = join(o.dir, `token-${n}`);
  const exportFile = join(o.dir, `events-${n}.log`);
  const args = [process.execPath, main, "agent", "--listen", "127.0.0.1:0", "--token-file", tokenFile, "--state-file", stateFile, "--export-file", exportFile, "--bpf-dir", o.bpfDir];
  if (o.guard) {
    const pf = join(o.dir, `guard-${n}.yaml`);
    writeFileSync(pf, secureOpenPolicy({ name: "sink-guard", file: o.guard.file, allowed: o.guard.allowed }));
    args.push("--policy", pf);
  }
  for (const s of o.sinks) args.push("--sink", s);
  const agent = Bun.spawn(args, { stdout: "pipe", stderr: "pipe", stdin: "ignore" });
  let err = "";
  void (async () => {
    const dec = new TextDecoder();
    for await (const c of agent.stderr) err += dec.decode(c, { stream: true });
  })();
  void new Response(agent.stdout).text();
  const alive = () => (agent.exitCode !== null ? `agent exited with ${agent.exitCode}: ${err.slice(-1500)}` : undefined);
  const state = await waitFor("agent state file", () => (existsSync(stateFile) ? (JSON.parse(readFileSync(stateFile, "utf8")) as { url: string }) : undefined), 30_000, alive);
  await waitFor("agent /healthz 200", async () => ((await fetch(`${state.url}/healthz`).catch(() => undefined))?.status === 200 ? true : undefined), 60_000, alive);
  const metrics = async () => await (await fetch(`${state.url}/metrics`)).text();
  return {
    url: state.url,
    exportFile,
    agent,
    exportLines: () => (existsSync(exportFile) ? readFileSync(exportFile, "utf8").split("\n").filter((l) => l !== "") : []),
    metrics,
    async metric(name, labels = {}) {
      return sampleOf(await metrics(), name, labels);
    },
    async status() {
      const token = readFileSync(tokenFile, "utf8").trim();
      return (await (await fetch(`${state.url}/v1/status`, { headers: { Authorization: `Bearer ${token}` } })).json()) as AgentStatus;
    },
    cli(cliArgs) {
      const r = Bun.spawnSync([process.execPath, main, ...cliArgs], { env: { ...process.env, WARD_STATE_FILE: stateFile }, stdout: "pipe", stderr: "pipe" });
      return { code: r.exitCode, stdout: r.stdout.toString(), stderr: r.stderr.toString() };
    },
    async stop() {
      if (agent.exitCode === null) agent.kill("SIGTERM");
      return await agent.exited;
    },
    stderr: () => err,
  };
}

/** The value of the first sample of `name` whose labels include `labels` (0 when absent). */
export function sampleOf(text: string, name: string, labels: Record<string, string> = {}): number {
  for (const line of text.split("\n")) {
    if (!line.startsWith(name)) continue;
    const m = /^([a-z_]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map([...(m[2] ?? "").matchAll(/([a-z_]+)="((?:[^"\\]|\\.)*)"/g)].map((x) => [x[1]!, x[2]!]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v)) return Number(m[3]);
  }
  return 0;
}

/** Runs `/bin/true <tag>-<i>` n times: each leaves a process_exec event carrying its tag. */
export function runMarkers(tag: string, from: number, n: number): string[] {
  const out: string[] = [];
  for (let i = from; i < from + n; i++) {
    const m = `${tag}-${i}`;
    const r = spawnSync("/bin/true", [m]);
    if (r.status !== 0) throw new Error(`/bin/true ${m}: ${r.status ?? r.signal}`);
    out.push(m);
  }
  return out;
}

/** The process_exec line of each marker, from a list of JSON lines (undefined where missing). */
export function execLinesOf(lines: readonly string[], markers: readonly string[]): Map<string, string> {
  const want = new Set(markers);
  const out = new Map<string, string>();
  for (const l of lines) {
    if (!l.startsWith('{"process_exec"')) continue;
    const m = /"arguments":"([^"]*)"/.exec(l);
    if (m && want.has(m[1]!)) out.set(m[1]!, l);
  }
  return out;
}

/** Reads a file written by a server, "" while it does not exist. */
export function readIfExists(path: string): string {
  return existsSync(path) ? readFileSync(path, "utf8") : "";
}

/**
 * A process that reads the guarded file: it must be SIGKILLed while the policy enforces.
 * Returns the signal; anything else is thrown with what the process did, to say why.
 */
export function readGuarded(file: string): NodeJS.Signals | null {
  const r = spawnSync("cat", [file], { encoding: "utf8", timeout: 10_000 });
  if (r.signal !== "SIGKILL") throw new Error(`cat ${file} was not killed: status ${r.status}, signal ${r.signal}, stdout ${JSON.stringify(r.stdout)}, stderr ${JSON.stringify(r.stderr)}`);
  return r.signal;
}

/** Waits until the sink's ward_sink_up gauge is `v` (a sink notices an outage on its next send). */
export async function waitSinkUp(a: AgentRun, sink: string, v: 0 | 1, timeoutMs = 15_000): Promise<void> {
  await waitFor(`ward_sink_up{sink="${sink}"} == ${v}`, async () => ((await a.metric("ward_sink_up", { sink })) === v ? true : undefined), timeoutMs, () => (a.agent.exitCode !== null ? `agent exited: ${a.stderr().slice(-1500)}` : undefined));
}

export interface FinalSinkStats {
  written: number;
  sent: number;
  retried: number;
  dropped: Record<string, number>;
}

/** The counters the agent logs for `sink` when it stops ("sink NAME: written N, sent N, ..."). */
export function finalStats(stderr: string, sink: string): FinalSinkStats {
  const esc = sink.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const m = new RegExp(`sink ${esc}: written (\\d+), sent (\\d+), retried (\\d+), dropped (.*)`).exec(stderr);
  if (!m) throw new Error(`no final counters for sink ${sink} in the agent's stderr:\n${stderr.slice(-1500)}`);
  const dropped: Record<string, number> = {};
  if (m[4] !== "0") for (const part of m[4]!.split(", ")) dropped[part.split(" ")[0]!] = Number(part.split(" ")[1]);
  return { written: Number(m[1]), sent: Number(m[2]), retried: Number(m[3]), dropped };
}

export function droppedTotal(s: FinalSinkStats): number {
  return Object.values(s.dropped).reduce((a, b) => a + b, 0);
}
