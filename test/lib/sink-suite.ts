// The fixture the sink suites with a guarded file (test/e2e/sink-{clickhouse,loki,syslog}.test.ts)
// start from: a temp dir and a BPF pin dir of their own, the secret file the talk's Sigkill
// policy guards and the copy of cat allowed to read it, and an afterAll that stops every agent,
// then every server, the suite started and removes both dirs. Apart from sink-harness.ts
// because bench/sinks.ts uses that one outside bun:test.
import { afterAll, beforeAll } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentRun } from "./sink-harness.ts";

export interface SinkSuite<S> {
  dir: string;
  bpfDir: string;
  /** Guarded by the talk's Sigkill policy when an agent is started with `guard`. */
  secret: string;
  /** A copy of /bin/cat: the one binary the policy lets read `secret`. */
  allowed: string;
  /** Push what the suite starts: afterAll stops them. */
  servers: S[];
  agents: AgentRun[];
}

/** Registers the suite's beforeAll/afterAll; tag names its dirs (ward-sink-TAG-...). */
export function sinkSuite<S extends { stop(): Promise<void> }>(tag: string): SinkSuite<S> {
  const dir = mkdtempSync(join(tmpdir(), `ward-sink-${tag}-`));
  const s: SinkSuite<S> = {
    dir,
    bpfDir: `/sys/fs/bpf/ward-sink-${tag}-${process.pid}`,
    secret: join(dir, "secret"),
    allowed: join(dir, "allowed-cat"),
    servers: [],
    agents: [],
  };
  beforeAll(() => {
    writeFileSync(s.secret, "top secret\n");
    copyFileSync("/bin/cat", s.allowed);
  });
  afterAll(async () => {
    for (const a of s.agents) await a.stop();
    for (const srv of s.servers) await srv.stop();
    rmSync(s.dir, { recursive: true, force: true });
    rmSync(s.bpfDir, { recursive: true, force: true });
  }, 30_000);
  return s;
}
