// A small flag parser: declared flags only, clear errors naming the command and the flag.
export class UsageError extends Error {
  override name = "UsageError";
}

export interface FlagSpec {
  /** "string" takes a value; "bool" does not; "list" may repeat. */
  kind: "string" | "bool" | "list";
  short?: string;
}

export interface Parsed {
  flags: Record<string, string | boolean | string[] | undefined>;
  positionals: string[];
}

export function parseArgs(command: string, argv: string[], spec: Record<string, FlagSpec>): Parsed {
  const flags: Parsed["flags"] = {};
  const positionals: string[] = [];
  const byShort = new Map(Object.entries(spec).filter(([, s]) => s.short).map(([n, s]) => [s.short!, n]));
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    if (!arg.startsWith("-") || arg === "-") {
      positionals.push(arg);
      continue;
    }
    let name: string;
    let inline: string | undefined;
    if (arg.startsWith("--")) {
      const eq = arg.indexOf("=");
      name = eq < 0 ? arg.slice(2) : arg.slice(2, eq);
      inline = eq < 0 ? undefined : arg.slice(eq + 1);
    } else {
      const long = byShort.get(arg.slice(1));
      if (long === undefined) throw new UsageError(`ward ${command}: unknown flag ${arg}`);
      name = long;
    }
    const s = spec[name];
    if (s === undefined) throw new UsageError(`ward ${command}: unknown flag --${name}`);
    if (s.kind === "bool") {
      // --flag, or --flag=true / --flag=false (how a default-on flag is turned off, as with
      // Tetragon's flags); a separate word after a bool flag is never its value.
      if (inline !== undefined && inline !== "true" && inline !== "false") throw new UsageError(`ward ${command}: flag --${name} takes no value, or =true or =false (not "${inline}")`);
      flags[name] = inline !== "false";
      continue;
    }
    const value = inline ?? argv[++i];
    if (value === undefined) throw new UsageError(`ward ${command}: flag --${name} needs a value`);
    if (s.kind === "list") {
      const prev = flags[name];
      flags[name] = [...(Array.isArray(prev) ? prev : []), value];
    } else {
      flags[name] = value;
    }
  }
  return { flags, positionals };
}
