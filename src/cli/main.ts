#!/usr/bin/env bun
// ward's command line. Each command lives in commands/<name>.ts and exports
// `run(argv: string[]): Promise<number>` (the exit code); they load lazily so
// `ward version` does not pay for the loader or the engine.
import { UsageError } from "./args.ts";

type Command = { run(argv: string[]): Promise<number> };
const commands: Record<string, { summary: string; load: () => Promise<Command> }> = {
  agent: { summary: "run the agent in the foreground", load: () => import("./commands/agent.ts") },
  policy: { summary: "add, list, delete, enable, disable, validate, explain policies", load: () => import("./commands/policy.ts") },
  events: { summary: "stream events from the agent, or format JSON lines from stdin", load: () => import("./commands/events.ts") },
  status: { summary: "show the agent's status", load: () => import("./commands/status.ts") },
  "oci-hook": { summary: "OCI runtime hook: report a container to the agent before it starts", load: () => import("./commands/oci-hook.ts") },
  probe: { summary: "show which BPF features this kernel offers", load: () => import("./commands/probe.ts") },
  version: { summary: "print the version", load: () => import("./commands/version.ts") },
};

function usage(): string {
  const lines = Object.entries(commands).map(([n, c]) => `  ${n.padEnd(9)} ${c.summary}`);
  return `usage: ward [--server URL] <command> [flags]\n\ncommands:\n${lines.join("\n")}\n`;
}

export async function main(argv: string[]): Promise<number> {
  const args = [...argv];
  // Global flag --server URL may come before the command.
  while (args[0]?.startsWith("--server")) {
    const a = args.shift()!;
    const v = a.includes("=") ? a.slice(a.indexOf("=") + 1) : args.shift();
    if (!v) throw new UsageError("ward: --server needs a URL");
    process.env.WARD_SERVER = v;
  }
  const name = args.shift();
  if (name === undefined || name === "help" || name === "--help" || name === "-h") {
    process.stdout.write(usage());
    return name === undefined ? 2 : 0;
  }
  const cmd = commands[name];
  if (cmd === undefined) throw new UsageError(`ward: unknown command "${name}"\n\n${usage()}`);
  return (await cmd.load()).run(args);
}

if (import.meta.main) {
  try {
    process.exitCode = await main(process.argv.slice(2));
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`${err.message}\n`);
      process.exitCode = 2;
    } else {
      process.stderr.write(`ward: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    }
  }
}
