// ward events: stream events from the agent (GET /v1/events), or, when stdin is a pipe or a
// file, read exported JSON lines from it and filter/format them offline. Both paths use the
// same filter module, so a filter gives the same answer live and on a saved export.
import { fstatSync } from "node:fs";
import { createInterface } from "node:readline";
import { compileFilter, filterToQuery, FilterError, type EventFilterSpec, type EventJson, type EventPredicate } from "../../events/filter.ts";
import { parseArgs, UsageError } from "../args.ts";
import { AgentClient } from "../client.ts";
import { lineFormatter, type LineFormatter, type OutputFormat } from "./events-format.ts";

const USAGE = `usage: ward events [-o json|compact] [--timestamps] [--event-types T,...] [--process REGEX]
                   [--policy-names N,...] [--namespace NS]... [--pod REGEX]

Streams events from the running agent. When stdin is a pipe or a file, reads JSON lines
from it instead (e.g. \`ward events -o compact < /var/log/ward/events.log\`).
-o json prints Tetragon's JSON lines as they are; -o compact prints tetra's compact lines,
with --timestamps prefixed by the event time as tetra prints it.
When the agent had to drop events because this client read too slowly, a line on stderr
says how many.
`;

const FLAGS = {
  output: { kind: "string", short: "o" },
  timestamps: { kind: "bool" },
  "event-types": { kind: "list", short: "e" },
  process: { kind: "string" },
  "policy-names": { kind: "list" },
  namespace: { kind: "list", short: "n" },
  pod: { kind: "string" },
  help: { kind: "bool", short: "h" },
} as const;

function commaList(v: unknown): string[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v.flatMap((x: string) => x.split(",")).map((x) => x.trim()).filter((x) => x.length > 0);
}

/**
 * stdinHasData: like tetra, read stdin only when it is a pipe, a file or a socket. A terminal
 * or /dev/null (a character device, as under systemd or `< /dev/null`) means "stream".
 */
function stdinHasData(): boolean {
  try {
    const st = fstatSync(0);
    return st.isFIFO() || st.isFile() || st.isSocket();
  } catch {
    return false;
  }
}

async function fromStdin(filter: EventPredicate, format: LineFormatter): Promise<number> {
  const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
  let n = 0;
  let bad = 0;
  for await (const line of rl) {
    n++;
    if (line.trim() === "") continue;
    let ev: unknown;
    try {
      ev = JSON.parse(line);
    } catch {
      ev = undefined;
    }
    if (typeof ev !== "object" || ev === null || Array.isArray(ev)) {
      if (++bad <= 10) process.stderr.write(`ward events: stdin line ${n}: not a JSON object, skipped\n`);
      continue;
    }
    if (!filter(ev as EventJson)) continue;
    const out = format(ev as EventJson, line);
    if (out !== undefined) process.stdout.write(`${out}\n`);
  }
  if (bad > 10) process.stderr.write(`ward events: ${bad} malformed lines skipped in all\n`);
  return 0;
}

/** lostMessage words a `lost` record for stderr. */
export function lostMessage(line: string): string {
  let count: unknown;
  try {
    count = (JSON.parse(line) as { lost?: { count?: unknown } }).lost?.count;
  } catch {
    count = undefined;
  }
  return `${typeof count === "number" ? count : "some"} events lost: this client read more slowly than events arrived (the agent keeps a bounded backlog per client)`;
}

async function fromAgent(spec: EventFilterSpec, format: LineFormatter): Promise<number> {
  const client = AgentClient.fromEnv();
  const abort = new AbortController();
  const onSignal = () => abort.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const q = filterToQuery(spec).toString();
    const res = await client.request("GET", `/v1/events${q ? `?${q}` : ""}`, { accept: "application/x-ndjson", signal: abort.signal });
    const reader = res.body!.getReader();
    const dec = new TextDecoder();
    let buf = "";
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value, { stream: true });
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line === "") continue;
        // The agent's `lost` record (this client read too slowly) is not an event: it goes to
        // stderr so stdout stays exactly Tetragon's JSON lines (or tetra's compact lines).
        if (line.startsWith('{"lost":')) {
          process.stderr.write(`ward events: ${lostMessage(line)}\n`);
          continue;
        }
        const out = format(undefined, line);
        if (out !== undefined) process.stdout.write(`${out}\n`);
      }
    }
    process.stderr.write("ward events: the agent closed the stream\n");
    return 0;
  } catch (err) {
    if (abort.signal.aborted) return 0;
    throw err;
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

export async function run(argv: string[]): Promise<number> {
  const { flags, positionals } = parseArgs("events", argv, FLAGS);
  if (flags.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length) throw new UsageError(`ward events: unexpected argument "${positionals[0]}"\n${USAGE}`);
  const output = (flags.output ?? "json") as string;
  if (output !== "json" && output !== "compact") throw new UsageError(`ward events: -o must be json or compact, not "${output}"`);
  const spec: EventFilterSpec = {
    eventTypes: commaList(flags["event-types"]),
    process: typeof flags.process === "string" ? flags.process : undefined,
    policyNames: commaList(flags["policy-names"]),
    namespaces: Array.isArray(flags.namespace) ? flags.namespace.flatMap((x: string) => x.split(",")) : undefined,
    pod: typeof flags.pod === "string" ? flags.pod : undefined,
  };
  let filter: EventPredicate;
  try {
    filter = compileFilter(spec);
  } catch (err) {
    if (err instanceof FilterError) throw new UsageError(`ward events: ${err.message}`);
    throw err;
  }
  // --timestamps prefixes compact lines with the event time, as tetra's does (JSON has its own).
  const format = lineFormatter(output as OutputFormat, { timestamps: flags.timestamps === true });
  return stdinHasData() ? fromStdin(filter, format) : fromAgent(spec, format);
}
