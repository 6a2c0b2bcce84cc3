// `ward status` text: one line per sink with the counters /metrics has (ward_sink_*).
import { describe, expect, test } from "bun:test";
import type { AgentStatus } from "../../src/api/deps.ts";
import { formatStatus } from "../../src/cli/commands/status.ts";
import type { SinkStats } from "../../src/export/sink.ts";

function status(sinks: SinkStats[]): AgentStatus {
  return {
    version: "t",
    node_name: "n",
    pid: 1,
    started_at: "",
    uptime_seconds: 5,
    ready: true,
    sensors: [],
    events: { total: 0, by_type: {}, lost: {}, subscribers: 0, sinks: sinks.map((s) => s.name) },
    policies: [],
    sink_stats: sinks,
  } as AgentStatus;
}

describe("ward status sinks", () => {
  test("each sink: up or down, written, sent, retried, dropped by reason, queued, last error", () => {
    const text = formatStatus(
      status([
        { name: "file", kind: "file", sent: 10, retried: 0, dropped: { queue_full: 0, retry_budget: 0, rejected: 0, shutdown: 0 }, written: 10, queued: 0, up: true },
        { name: "l", kind: "loki", sent: 5, retried: 7, dropped: { queue_full: 1, retry_budget: 3, rejected: 0, shutdown: 0 }, written: 11, queued: 2, up: false, lastError: "POST http://127.0.0.1:1/loki/api/v1/push: connection refused" },
      ]),
    );
    const lines = text.split("\n");
    expect(lines).toContain("  sink file (file) up: written 10, sent 10, retried 0, dropped 0, queued 0");
    expect(lines).toContain("  sink l (loki) down: written 11, sent 5, retried 7, dropped 4 (queue_full 1, retry_budget 3), queued 2; last error: POST http://127.0.0.1:1/loki/api/v1/push: connection refused");
  });

  test("no sink_stats (an older agent): no sink lines", () => {
    const s = status([]);
    delete s.sink_stats;
    expect(formatStatus(s)).not.toContain("  sink ");
  });
});
