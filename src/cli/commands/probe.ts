// ward probe [--json]: which BPF features this kernel offers, found by trying them.
import { parseArgs } from "../args.ts";
import type { FeatureReport, FeatureResult } from "../../bpf/features.ts";

function section(title: string, rows: Record<string, FeatureResult>): string {
  const names = Object.keys(rows);
  const w = Math.max(...names.map((n) => n.length), 4);
  const lines = names.map((n) => {
    const r = rows[n]!;
    const mark = r.status === "supported" ? "yes" : r.status === "unsupported" ? "no" : `refused${r.code ? ` (${r.code})` : ""}`;
    const why = r.status === "supported" || r.reason === undefined ? "" : `  ${r.reason}`;
    return `  ${n.padEnd(w)}  ${mark}${why}`;
  });
  return `${title}\n${lines.join("\n")}\n`;
}

export function formatReport(r: FeatureReport): string {
  const lsm = r.lsm.active === null ? "unknown (securityfs not readable)" : `${r.lsm.active.join(",")}${r.lsm.bpfListed ? "" : " (bpf not active)"}`;
  return [
    `kernel ${r.kernel.release} (${r.kernel.arch}), BTF ${r.kernel.btf ? "yes" : "no"}, active LSMs: ${lsm}\n`,
    section("attach kinds", r.attach),
    section("program types", r.programTypes),
    section("map types", r.mapTypes),
    section("helpers", r.helpers),
  ].join("\n");
}

export async function run(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs("probe", argv, { json: { kind: "bool" } });
  if (positionals.length > 0) {
    process.stderr.write(`ward probe: unexpected argument ${positionals[0]}\n`);
    return 2;
  }
  // Loaded lazily: the loader pulls in bun:ffi and the kernel BTF only when probing.
  const { probeAll } = await import("../../bpf/features.ts");
  const report = probeAll();
  process.stdout.write(flags.json === true ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  return 0;
}
