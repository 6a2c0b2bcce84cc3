// `ward policy explain FILE... [-o text|json] [--set NAME=VALUE]... [--env]`: validates each
// file, compiles every policy through the engine and prints, per hook, what the engine
// produced for the kernel.
import { parseArgs, UsageError } from "../args.ts";
import { compilePolicy, PolicyCompileError } from "../../policy/engine.ts";
import { explainCompiled, formatExplained, type ExplainedPolicy } from "../../policy/explain.ts";
import { formatDiagnostic, locate, validatePolicyFile } from "../../policy/validate.ts";

export async function run(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs("policy explain", argv, {
    output: { kind: "string", short: "o" },
    set: { kind: "list" },
    env: { kind: "bool" },
  });
  const format = (flags.output as string | undefined) ?? "text";
  if (format !== "text" && format !== "json") throw new UsageError(`ward policy explain: -o must be text or json, not "${format}"`);
  if (positionals.length === 0) throw new UsageError("usage: ward policy explain FILE... [-o text|json] [--set NAME=VALUE]... [--env]");
  // ${NAME} placeholders, as `ward policy validate` substitutes them.
  const substitute: Record<string, string> = {};
  if (flags.env === true) for (const [k, v] of Object.entries(process.env)) if (v !== undefined) substitute[k] = v;
  for (const kv of (flags.set as string[] | undefined) ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`ward policy explain: --set wants NAME=VALUE, got "${kv}"`);
    substitute[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  let failed = false;
  const explained: ExplainedPolicy[] = [];
  for (const file of positionals) {
    const r = await validatePolicyFile(file, { substitute });
    for (const d of r.diagnostics) if (d.severity === "error") process.stderr.write(`${formatDiagnostic(d)}\n`);
    if (!r.valid) { failed = true; continue; }
    for (const lp of r.policies) {
      try {
        const e = explainCompiled(compilePolicy(lp.policy));
        explained.push(e);
        if (format === "text") process.stdout.write(formatExplained(e));
      } catch (err) {
        if (!(err instanceof PolicyCompileError)) throw err;
        failed = true;
        for (const p of err.problems) {
          const pos = locate(lp.sourceMap, p.path);
          process.stderr.write(`${formatDiagnostic({ file: lp.file, line: pos.line, column: pos.column, path: p.path, message: p.message, severity: "error" })}\n`);
        }
      }
    }
  }
  if (format === "json") {
    process.stdout.write(`${JSON.stringify(explained, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 2)}\n`);
  }
  return failed ? 1 : 0;
}
