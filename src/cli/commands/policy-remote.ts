// `ward policy add|list|delete|enable|disable|mode`: the subcommands that act on the running
// agent through /v1/policies. policy.ts (the dispatcher) hands them over by name.
import { readFileSync } from "node:fs";
import { formatDiagnostic, type PolicyDiagnostic } from "../../agent/policy-diagnostic.ts";
import type { PolicyInfo } from "../../agent/policy-store.ts";
import { parseArgs, UsageError } from "../args.ts";
import { AgentClient, ApiRequestError } from "../client.ts";

export const REMOTE_SUBCOMMANDS = ["add", "list", "delete", "enable", "disable", "mode"] as const;
export type RemoteSubcommand = (typeof REMOTE_SUBCOMMANDS)[number];

/** Prints a rejected policy the way `ward policy validate` does: file:line:column: path: message. */
function printRejection(err: ApiRequestError, file: string): void {
  const list = (err.body as { error?: { errors?: PolicyDiagnostic[] } }).error?.errors;
  if (!Array.isArray(list) || list.length === 0) {
    process.stderr.write(`ward policy: ${err.message}\n`);
    return;
  }
  for (const d of list) {
    // The agent names the request "<request>"; the user knows it as the file they gave.
    process.stderr.write(`${formatDiagnostic({ ...d, file: d.file === "<request>" || d.file === undefined ? file : d.file })}\n`);
  }
}

function oneName(sub: string, positionals: string[]): string {
  if (positionals.length !== 1) throw new UsageError(`ward policy ${sub}: want exactly one policy name`);
  return encodeURIComponent(positionals[0]!);
}

export function formatPolicyList(list: PolicyInfo[]): string {
  if (list.length === 0) return "no policies\n";
  const rows = [["NAME", "KIND", "MODE", "STATE", "SOURCE"], ...list.map((p) => [p.name, p.kind, p.mode, p.state, p.source])];
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 3))).join("")).join("\n") + "\n";
}

/** runRemote runs one agent-side policy subcommand; returns the exit code. */
export async function runRemote(sub: RemoteSubcommand, argv: string[]): Promise<number> {
  const spec = {
    mode: { kind: "string" as const, short: "m" },
    output: { kind: "string" as const, short: "o" },
  };
  const { flags, positionals } = parseArgs(`policy ${sub}`, argv, sub === "add" ? { mode: spec.mode } : sub === "list" ? { output: spec.output } : {});
  const client = AgentClient.fromEnv();
  switch (sub) {
    case "add": {
      if (positionals.length !== 1) throw new UsageError("ward policy add: want exactly one FILE");
      const file = positionals[0]!;
      const mode = flags.mode;
      if (mode !== undefined && mode !== "enforce" && mode !== "monitor") throw new UsageError(`ward policy add: --mode must be enforce or monitor, not "${String(mode)}"`);
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch (err) {
        process.stderr.write(`ward policy add: ${(err as Error).message}\n`);
        return 1;
      }
      const contentType = /\.json$/i.test(file) ? "application/json" : "application/yaml";
      try {
        const res = await client.json<{ policies: PolicyInfo[] }>("POST", `/v1/policies${mode ? `?mode=${mode}` : ""}`, { body: text, contentType });
        for (const p of res.policies) process.stdout.write(`added ${p.name} (${p.mode}): ${p.state}\n`);
        return 0;
      } catch (err) {
        if (err instanceof ApiRequestError && err.status === 400) {
          printRejection(err, file);
          return 1;
        }
        throw err;
      }
    }
    case "list": {
      if (positionals.length) throw new UsageError(`ward policy list: unexpected argument "${positionals[0]}"`);
      const output = flags.output ?? "text";
      if (output !== "text" && output !== "json") throw new UsageError(`ward policy list: -o must be text or json, not "${String(output)}"`);
      const res = await client.json<{ policies: PolicyInfo[] }>("GET", "/v1/policies");
      process.stdout.write(output === "json" ? `${JSON.stringify(res.policies, null, 2)}\n` : formatPolicyList(res.policies));
      return 0;
    }
    case "delete": {
      await client.json("DELETE", `/v1/policies/${oneName(sub, positionals)}`);
      process.stdout.write(`deleted ${positionals[0]}\n`);
      return 0;
    }
    case "enable":
    case "disable": {
      const res = await client.json<{ policy: PolicyInfo }>("POST", `/v1/policies/${oneName(sub, positionals)}/${sub}`);
      process.stdout.write(`${res.policy.name}: ${res.policy.state}\n`);
      return 0;
    }
    case "mode": {
      if (positionals.length !== 2) throw new UsageError("ward policy mode: want NAME and enforce|monitor");
      const [name, mode] = positionals as [string, string];
      if (mode !== "enforce" && mode !== "monitor") throw new UsageError(`ward policy mode: mode must be enforce or monitor, not "${mode}"`);
      const res = await client.json<{ policy: PolicyInfo }>("POST", `/v1/policies/${encodeURIComponent(name)}/mode`, {
        body: JSON.stringify({ mode }),
        contentType: "application/json",
      });
      process.stdout.write(`${res.policy.name}: mode ${res.policy.mode}\n`);
      return 0;
    }
  }
}
