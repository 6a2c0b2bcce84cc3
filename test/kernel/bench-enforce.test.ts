// bench/enforce.ts keeps working: one short round in JSON. The bench itself refuses to
// measure a treatment that is not in effect (cat of the secret must die under the secure
// policy and under bpftrace; the allowed cat must read), so a passing run also says the
// agent enforces the talk's secure policy from --policy.
import { expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { kernelTest } from "../lib/host.ts";

const root = join(import.meta.dir, "..", "..");

interface Ratio {
  medianRatio: number;
  spread: number[];
  ratios: number[];
}
interface Report {
  rounds: number;
  secureBackend: string;
  agentNotUsedBecause?: string;
  results: Array<{ treatment: string; open: Ratio; getppid: Ratio }>;
}

kernelTest(
  "bench/enforce.ts --json measures the secure policy, bpftrace and the process sensor",
  () => {
    const r = spawnSync(process.execPath, ["run", "bench/enforce.ts", "--rounds", "1", "--seconds", "0.02", "--repeats", "1", "--json"], {
      cwd: root,
      encoding: "utf8",
      timeout: 170_000,
    });
    expect(r.status).toBe(0);
    const report = JSON.parse(r.stdout) as Report;
    expect(report.rounds).toBe(1);
    expect(report.results.map((x) => x.treatment)).toHaveLength(3);
    // the agent enforces policies now (src/sensors/manager.ts): the bench must use it
    expect(report.secureBackend).toBe("ward agent --policy");
    for (const x of report.results) {
      for (const m of [x.open, x.getppid]) {
        expect(m.ratios).toHaveLength(1);
        expect(m.medianRatio).toBeGreaterThan(0.3);
        expect(m.medianRatio).toBeLessThan(5);
      }
    }
  },
  180_000,
);
