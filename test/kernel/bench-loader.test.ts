// bench/loader.ts keeps working: one iteration in JSON, every loadable object timed, kernel
// time measured for each (the wrapped BpfProgram.load/BpfMap.create saw calls).
import { expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { kernelTest } from "../lib/host.ts";

const root = join(import.meta.dir, "..", "..");

interface Report {
  iterations: number;
  objects: Array<{ object: string; programs: number; refused: string[]; median: { parse: number; kernel: number; ours: number } }>;
}

kernelTest("bench/loader.ts --json times every loadable object", () => {
  const r = spawnSync(process.execPath, ["run", "bench/loader.ts", "--iterations", "1", "--json"], { cwd: root, encoding: "utf8", timeout: 120_000 });
  expect(r.stderr).toBe("");
  expect(r.status).toBe(0);
  const report = JSON.parse(r.stdout) as Report;
  expect(report.iterations).toBe(1);
  const names = report.objects.map((o) => o.object);
  expect(names).toContain("bpf/obj/testdata/count_openat.o");
  expect(names).not.toContain("bpf/obj/testdata/rejected.o");
  for (const o of report.objects) {
    expect({ o: o.object, programs: o.programs > 0 }).toEqual({ o: o.object, programs: true });
    expect(o.median.kernel).toBeGreaterThan(0);
    expect(o.median.parse).toBeGreaterThan(0);
  }
  // LSM and fentry programs are refused on this kernel and reported, not timed.
  const sections = report.objects.find((o) => o.object.endsWith("/sections.o"));
  expect(sections?.refused.join(" ")).toContain("lsm_file_open (EPERM)");
}, 120_000);
