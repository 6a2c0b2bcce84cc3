// `npm run bench` keeps working: the whole suite in quick mode (one round, tiny counts) must
// exit 0 and write results.json and results.md with every metric present and finite. It
// never judges timing: a missed target is the report's business, not a test failure. The
// benches themselves refuse to measure a treatment that is not in effect (the secret's
// reader must die or be refused, the allowed binary must read, bpftrace must kill), so a
// passing run also says each treatment enforced what it was measured with.
import { expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BENCHES, type BenchSection } from "../../bench/lib/results.ts";
import { kernelTest } from "../lib/host.ts";

const root = join(import.meta.dir, "..", "..");

/** The figures issue 12 asks for, by metric id. */
const REQUIRED = [
  "open_unrelated_secure",
  "open_unrelated_bpftrace",
  "open_unrelated_ward_over_bpftrace",
  "open_protected_allowed",
  "open_protected_decisions",
  "scope_open_outside",
  "scope_open_inside",
  "scope_open_unscoped",
  "scope_inside_over_outside",
  "scope_inside_over_unscoped",
  "getppid_default",
  "forkexec_default",
  "build_wall",
  "build_cpu",
  "pipeline_events_per_s",
  "exec_storm_lost",
  "open_storm_accounted",
  "loss_onset_rate",
  "policy_add_1",
  "policy_add_10",
  "policy_add_100",
  "policy_open_cost_1",
  "policy_open_cost_100",
  "oci_hook_start_added_ms",
  "oci_hook_start_ratio",
  "oci_hook_report_ms",
  "oci_hook_cli_start_ms",
  "oci_hook_process_ms",
  "idle_rss",
  "idle_cpu",
  "rss_after_100k",
  "rss_after_1m",
  "rss_growth_1m_over_100k",
  "js_heap_growth_1m_over_100k",
  "binary_size",
  "loader_process",
  "loader_generic",
  "loader_file_guard",
  "engine_corpus_validate_compile",
  "engine_eval_raw_1",
  "engine_eval_full_1",
  // issue 10: per sink, against the real servers (Loki: the stand-in)
  "sink_write_ns_per_event",
  "sink_write_strings_ns_per_event",
  "sink_file_events_per_s",
  "sink_file_strings_events_per_s",
  "sink_stdout_events_per_s",
  "sink_syslog_tcp_events_per_s",
  "sink_syslog_udp_events_per_s",
  "sink_syslog_unix_events_per_s",
  "sink_loki_events_per_s",
  "sink_clickhouse_events_per_s",
];

interface Report {
  quick: boolean;
  machine: { cpu: string; cores: number; kernel: string };
  commit: string;
  sections: BenchSection[];
  failures: { bench: string; error: string }[];
}

kernelTest(
  "bench/run.ts --quick runs every bench and reports every metric with a finite value",
  () => {
    const out = mkdtempSync(join(tmpdir(), "ward-bench-suite-"));
    try {
      const r = spawnSync(process.execPath, ["run", "bench/run.ts", "--quick", "--out", out], { cwd: root, encoding: "utf8", timeout: 460_000 });
      const report = JSON.parse(readFileSync(join(out, "results.json"), "utf8")) as Report;
      expect({ failures: report.failures, tail: r.status === 0 ? "" : r.stderr.slice(-3000) }).toEqual({ failures: [], tail: "" });
      expect(r.status).toBe(0);
      expect(report.quick).toBe(true);
      expect(report.machine.cores).toBeGreaterThan(0);
      expect(report.commit).toMatch(/^[0-9a-f]{40}$/);
      expect(report.sections.map((s) => s.bench)).toEqual([...BENCHES]);
      const metrics = report.sections.flatMap((s) => s.metrics);
      const ids = metrics.map((m) => m.id);
      expect(REQUIRED.filter((id) => !ids.includes(id))).toEqual([]);
      expect(new Set(ids).size).toBe(ids.length);
      const notFinite = metrics.filter((m) => ![m.median, m.min, m.max].every(Number.isFinite) || m.rounds < 1).map((m) => m.id);
      expect(notFinite).toEqual([]);
      // a metric with a target says whether it met it
      expect(metrics.filter((m) => m.target !== undefined && typeof m.met !== "boolean").map((m) => m.id)).toEqual([]);
      // the mechanisms the figures depend on are named
      const mech = Object.assign({}, ...report.sections.map((s) => s.mechanisms)) as Record<string, string>;
      expect(mech["secure policy variant"]).toMatch(/^(Override|Sigkill)$/);
      expect(mech["file guard placement (/v1/status)"]).toContain("file guard");
      expect(mech["hook"]).toContain("oci-hook");
      expect(mech["clickhouse-server"]).toMatch(/\d+\.\d+/);
      expect(mech.rsyslog).toMatch(/rsyslogd/);
      const md = readFileSync(join(out, "results.md"), "utf8");
      for (const m of metrics) expect(md).toContain(m.name.replace(/\|/g, "\\|"));
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
  },
  480_000,
);
