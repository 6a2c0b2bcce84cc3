// /metrics scraped by Debian's prometheus server, started here with its own config (scrape
// interval 1 s, the agent as the only target) and a temp storage dir on a loopback port. The
// agent runs for real with a Loki sink (test/lib/servers.ts LokiServer); the counters are
// read back through Prometheus's HTTP API: the target is up, and ward_events_total and the
// sink counters move with the events real processes produce, including while the sink is down.
import { afterAll, describe, expect } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelTest } from "../lib/host.ts";
import { ensureServers, freePort, LokiServer, Prometheus } from "../lib/servers.ts";
import { runMarkers, startAgent, waitFor, type AgentRun } from "../lib/sink-harness.ts";

const dir = mkdtempSync(join(tmpdir(), "ward-sink-prom-"));
const bpfDir = `/sys/fs/bpf/ward-sink-prom-${process.pid}`;
const agents: AgentRun[] = [];
const proms: Prometheus[] = [];
const lokis: LokiServer[] = [];

afterAll(async () => {
  for (const a of agents) await a.stop();
  for (const p of proms) await p.stop();
  for (const l of lokis) await l.stop();
  rmSync(dir, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
}, 30_000);

describe("prometheus scrapes /metrics", () => {
  kernelTest(
    "up == 1; ward_events_total and ward_sink_* counters move with the events produced",
    async () => {
      ensureServers(["prometheus"]);
      const loki = new LokiServer(await freePort());
      lokis.push(loki);
      loki.start();
      const a = await startAgent({ dir, bpfDir, sinks: [`loki=${loki.url}?name=l&retry_budget=1s&backoff=50ms&max_backoff=200ms`] });
      agents.push(a);
      const target = new URL(a.url).host;
      const prom = new Prometheus(join(dir, "prom"), await freePort(), target);
      proms.push(prom);
      prom.start();
      await prom.ready();
      await waitFor("up == 1", async () => ((await prom.query('up{job="ward"} == 1').catch(() => [])).length === 1 ? true : undefined), 20_000, () => prom.dead());

      const execs = async () => (await prom.query('ward_events_total{job="ward",type="PROCESS_EXEC"}'))[0]?.value ?? 0;
      const sent = async () => (await prom.query('ward_sink_events_sent_total{job="ward",sink="l"}'))[0]?.value ?? 0;
      const dropped = async () => (await prom.query('sum(ward_sink_events_dropped_total{job="ward",sink="l"})'))[0]?.value ?? 0;
      const e0 = await waitFor("ward_events_total scraped", async () => (await prom.query('ward_events_total{job="ward",type="PROCESS_EXEC"}')).length === 1 ? await execs() : undefined, 10_000);
      const s0 = await sent();
      const n = 50;
      runMarkers(`ward-prom-${process.pid}`, 0, n);
      // Prometheus sees at least our n execs on top of what it had, and the sink's sent counter follow.
      await waitFor(`ward_events_total grows by >= ${n}`, async () => ((await execs()) - e0 >= n ? true : undefined), 15_000);
      await waitFor(`ward_sink_events_sent_total grows by >= ${n}`, async () => ((await sent()) - s0 >= n ? true : undefined), 15_000);
      // The scraped value is the agent's own (same counter, read straight from /metrics a moment later).
      expect(await a.metric("ward_sink_events_sent_total", { sink: "l" })).toBeGreaterThanOrEqual(await sent());

      // Sink down: the drop counter moves in Prometheus, and the target stays up.
      await loki.stop();
      const d0 = await dropped();
      runMarkers(`ward-prom-${process.pid}`, 100, 20);
      await waitFor("ward_sink_events_dropped_total grows by >= 20", async () => ((await dropped()) - d0 >= 20 ? true : undefined), 20_000);
      await waitFor("ward_sink_up == 0 in prometheus", async () => ((await prom.query('ward_sink_up{job="ward",sink="l"}'))[0]?.value === 0 ? true : undefined), 10_000);
      expect((await prom.query('up{job="ward"}'))[0]?.value).toBe(1);
      expect(await a.stop()).toBe(0);
      await prom.stop();
    },
    60_000,
  );
});
