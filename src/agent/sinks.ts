// Export sinks the agent builds from its flags and config (src/export/sink-spec.ts parses
// them): stdout, the rotating JSON-lines file, syslog, Loki, ClickHouse. Every one is a
// QueuedSink (src/export/queued.ts), so it has its own bounded queue, batching, retry and
// counters, and none can hold up the event hub or another sink.
import { compactLine } from "../export/compact.ts";
import { JsonlFileSink } from "../export/jsonl-file.ts";
import type { CountedSink } from "../export/sink.ts";
import type { SinkSpec } from "../export/sink-spec.ts";
import { ClickHouseSink } from "../export/sinks/clickhouse.ts";
import { LokiSink } from "../export/sinks/loki.ts";
import { SyslogSink } from "../export/sinks/syslog.ts";
import { StdoutSink } from "../export/stdout.ts";
import type { OutputFormat } from "./config.ts";

export { parseSinkConfig, parseSinkFlags, SinkConfigError, type SinkSpec } from "../export/sink-spec.ts";

/** The compact form needs the parsed event; it is made in the sink's send loop, not in write(). */
function compact(line: string): string | undefined {
  try {
    return compactLine(JSON.parse(line) as Record<string, unknown>);
  } catch {
    return undefined;
  }
}

/** stdoutSink prints JSON lines as encoded, or tetra's compact lines (-o compact). */
export function stdoutSink(format: OutputFormat, name = "stdout"): CountedSink {
  return new StdoutSink(1, { name, ...(format === "compact" ? { map: compact } : {}) });
}

/** fileSink writes JSON lines to `path` (0600), rotating at 10 MiB and keeping 5 backups. */
export function fileSink(path: string): CountedSink {
  return new JsonlFileSink(path);
}

export interface SinkContext {
  /** HOSTNAME of syslog messages. */
  nodeName: string;
}

/** createSink builds one sink from its spec. Opening a file can throw (SinkError); network sinks connect lazily. */
export function createSink(spec: SinkSpec, ctx: SinkContext): CountedSink {
  switch (spec.kind) {
    case "stdout":
      return new StdoutSink(1, { ...spec.queue, name: spec.name, ...(spec.format === "compact" ? { map: compact } : {}) });
    case "file":
      return new JsonlFileSink(spec.path, { ...spec.queue, name: spec.name, maxBytes: spec.maxBytes, maxBackups: spec.maxBackups });
    case "syslog":
      return new SyslogSink({ ...spec.queue, name: spec.name, proto: spec.proto, host: spec.host, port: spec.port, path: spec.path, facility: spec.facility, severity: spec.severity, appName: spec.appName, hostname: ctx.nodeName });
    case "loki":
      return new LokiSink({ ...spec.queue, name: spec.name, url: spec.url, tenant: spec.tenant });
    case "clickhouse":
      return new ClickHouseSink({ ...spec.queue, name: spec.name, url: spec.url, database: spec.database, table: spec.table });
  }
}
