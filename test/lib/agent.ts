// The real agent (`ward agent`) as the child of an e2e test: bounded polling that stops as soon
// as the agent has died, and the wait every suite does after spawning it with its own flags
// (state file, then /healthz 200, then the API token).
import { existsSync, readFileSync } from "node:fs";
import type { Subprocess } from "bun";
import { waitFor as poll } from "./sink-harness.ts";

/**
 * fn every 50 ms until it returns a value; throws "<what>: not within N ms" after timeoutMs,
 * or "<what>: agent exited with CODE" at once when child (given) has exited.
 */
export function waitFor<T>(what: string, fn: () => Promise<T | undefined> | T | undefined, timeoutMs: number, child?: Subprocess): Promise<T> {
  return poll(what, fn, timeoutMs, child && (() => (child.exitCode !== null ? `agent exited with ${child.exitCode}` : undefined)));
}

/**
 * Wait until the spawned agent is serving: its state file written (30 s), /healthz answering
 * 200 (60 s); then read its token. stderr, when given, is appended to a state-file failure
 * (the agent failed at start and said why).
 */
export async function agentReady<S extends { url: string } = { url: string }>(
  agent: Subprocess,
  files: { stateFile: string; tokenFile: string },
  stderr?: Promise<string>,
): Promise<{ state: S; token: string }> {
  const stateWait = waitFor("state file", () => (existsSync(files.stateFile) ? (JSON.parse(readFileSync(files.stateFile, "utf8")) as S) : undefined), 30_000, agent);
  const state = await (stderr === undefined ? stateWait : stateWait.catch(async (e: Error) => {
    throw new Error(`${e.message}\n${await stderr}`);
  }));
  await waitFor("healthz 200", async () => ((await fetch(`${state.url}/healthz`).catch(() => undefined))?.status === 200 ? true : undefined), 60_000, agent);
  return { state, token: readFileSync(files.tokenFile, "utf8").trim() };
}
