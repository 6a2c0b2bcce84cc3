// `ward policy <sub>`: a dispatcher. Each subcommand loads lazily so `validate`
// does not pay for the engine and `explain` does not pay for the HTTP client.
//   validate  here (src/policy/validate.ts does the work)
//   explain   ./policy-explain.ts (engine side: hook -> kernel mechanism per action)
//   add/list/delete/enable/disable/mode  ./policy-remote.ts (talk to the agent over /v1/policies)
import { parseArgs, UsageError } from "../args.ts";

type Sub = { summary: string; run: (argv: string[]) => Promise<number> };

/** Subcommands that act on the running agent live in ./policy-remote.ts. */
function needsAgent(name: "add" | "list" | "delete" | "enable" | "disable" | "mode", summary: string): Sub {
  return { summary, run: async (argv) => (await import("./policy-remote.ts")).runRemote(name, argv) };
}

export const subcommands: Record<string, Sub> = {
  validate: { summary: "check policy files; print file:line:col: path: message per problem", run: (argv) => runValidate(argv) },
  explain: { summary: "per hook: the kernel mechanism chosen here and how each action is honored", run: async (argv) => (await import("./policy-explain.ts")).run(argv) },
  add: needsAgent("add", "FILE [--mode enforce|monitor]: add a policy to the running agent"),
  list: needsAgent("list", "[-o text|json]: the agent's policies"),
  delete: needsAgent("delete", "NAME: remove a policy from the agent"),
  enable: needsAgent("enable", "NAME: switch a policy on"),
  disable: needsAgent("disable", "NAME: switch a policy off"),
  mode: needsAgent("mode", "NAME enforce|monitor: set a policy's mode"),
};

function usage(): string {
  const lines = Object.entries(subcommands).map(([n, s]) => `  ${n.padEnd(9)} ${s.summary}`);
  return `usage: ward policy <subcommand> [flags]\n\nsubcommands:\n${lines.join("\n")}\n\n` +
    `ward policy validate [--set NAME=VALUE]... [--env] [--quiet] [-o text|json] FILE...\n` +
    `  --set NAME=VALUE  substitute \${NAME} placeholders (repeatable)\n` +
    `  --env             substitute placeholders from the environment\n` +
    `  --quiet, -q       print errors only, not warnings\n` +
    `  -o text|json      output format (json: {valid, files: [{file, valid, policies, diagnostics}]})\n` +
    `  exit status: 0 valid (warnings allowed), 1 invalid, 2 usage\n`;
}

export async function run(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const sub = Object.hasOwn(subcommands, name) ? subcommands[name] : undefined;
  if (sub === undefined) throw new UsageError(`ward policy: unknown subcommand "${name}"\n\n${usage()}`);
  return sub.run(rest);
}

async function runValidate(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs("policy validate", argv, {
    set: { kind: "list" },
    env: { kind: "bool" },
    quiet: { kind: "bool", short: "q" },
    output: { kind: "string", short: "o" },
  });
  if (positionals.length === 0) throw new UsageError("ward policy validate: give at least one policy file\n\n" + usage());
  const output = (flags.output as string | undefined) ?? "text";
  if (output !== "text" && output !== "json") throw new UsageError(`ward policy validate: -o takes text or json, got "${output}"`);
  const vars: Record<string, string> = {};
  if (flags.env === true) {
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined) vars[k] = v;
  }
  for (const kv of (flags.set as string[] | undefined) ?? []) {
    const eq = kv.indexOf("=");
    if (eq <= 0) throw new UsageError(`ward policy validate: --set wants NAME=VALUE, got "${kv}"`);
    vars[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  const { validatePolicyFile, formatDiagnostic, PolicyFileError } = await import("../../policy/validate.ts");
  let invalid = false;
  const report: { file: string; valid: boolean; policies: string[]; diagnostics: unknown[] }[] = [];
  for (const file of positionals) {
    try {
      const r = await validatePolicyFile(file, { substitute: vars });
      const shown = r.diagnostics.filter((d) => !(d.severity === "warning" && flags.quiet === true));
      if (output === "json") report.push({ file, valid: r.valid, policies: r.policies.map((p) => p.policy.metadata.name), diagnostics: shown });
      else for (const d of shown) process.stdout.write(formatDiagnostic(d) + "\n");
      if (!r.valid) invalid = true;
    } catch (e) {
      if (!(e instanceof PolicyFileError)) throw e;
      if (output === "json") report.push({ file, valid: false, policies: [], diagnostics: [{ file, line: 0, column: 0, path: "", message: e.message, severity: "error" }] });
      else process.stdout.write(`${e.message}\n`);
      invalid = true;
    }
  }
  if (output === "json") process.stdout.write(JSON.stringify({ valid: !invalid, files: report }, null, 2) + "\n");
  return invalid ? 1 : 0;
}
