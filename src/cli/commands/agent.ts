// ward agent: runs the agent in the foreground until SIGTERM or SIGINT.
// Exit codes: 0 after a clean stop, 1 when it cannot start (among others: a policy given with
// --policy/--policy-dir is invalid or cannot be applied on this kernel; then none is applied),
// 2 for bad flags.
import { Agent, AgentStartError } from "../../agent/agent.ts";
import { AGENT_USAGE, formatConfig, isLoopback, parseAgentConfig } from "../../agent/config.ts";
import { createLogger } from "../../agent/log.ts";
import { JsonlFileSink } from "../../export/jsonl-file.ts";
import { defaultSensors } from "../../agent/default-sensors.ts";
import { parsePolicies } from "../../agent/policy-parser.ts";
import { createPolicyBackend } from "../../agent/policy-backend.ts";
import { PolicyInvalidError, PolicyRejectedError, formatDiagnostic, type PolicyDiagnostic } from "../../agent/policy-store.ts";
import { stdoutSink } from "../../agent/sinks.ts";
import type { EventSink } from "../../agent/event-hub.ts";
import { createSink } from "../../agent/sinks.ts";

/** The files the diagnostics name, in order, for the closing line of a refused start. */
function filesOf(errors: readonly PolicyDiagnostic[]): string {
  const files = [...new Set(errors.map((d) => d.file).filter((f): f is string => f !== undefined))];
  return files.length > 0 ? files.join(", ") : "the policies given";
}

export async function run(argv: string[]): Promise<number> {
  // Every flag, variable and config-file error is reported here, before anything starts.
  const config = parseAgentConfig(argv);
  if (config === "help") {
    process.stdout.write(AGENT_USAGE);
    return 0;
  }
  if (config.printConfig) {
    process.stdout.write(formatConfig(config));
    return 0;
  }
  const logger = createLogger(config.logLevel);
  const log = logger.info;
  if (process.getuid?.() !== 0) {
    logger.error("must run as root: it loads BPF programs and attaches them to the kernel (try: sudo ward agent)");
    return 1;
  }
  if (!isLoopback(config.listen.host)) {
    logger.warn(`API listens on ${config.listen.host}, reachable from the network; every /v1 call still needs the token`);
  }
  if (config.configFile !== undefined) logger.debug(`configuration read from ${config.configFile}`);

  const sinks = (): EventSink[] => {
    const out: EventSink[] = [];
    if (config.exportFile !== undefined) {
      out.push(new JsonlFileSink(config.exportFile, { maxBytes: config.exportFileMaxSizeMb * 1024 * 1024, maxBackups: config.exportFileMaxBackups }));
    }
    if (config.exportStdout) out.push(stdoutSink(config.output));
    for (const spec of config.sinks) out.push(createSink(spec, { nodeName: config.nodeName }));
    return out;
  };
  const agent = new Agent(config, {
    parser: parsePolicies,
    sensors: defaultSensors,
    policyBackend: (ctx, sensors) => createPolicyBackend(ctx, sensors),
    sinks,
    log,
    warn: logger.warn,
  });

  // Signals are handled from the start, so a SIGTERM during start-up still cleans up.
  let stopping: Promise<void> | undefined;
  let signalled = false;
  const done = Promise.withResolvers<void>();
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      logger.warn(`${sig} again: exiting without cleanup`);
      process.exit(1);
    }
    signalled = true;
    log(`${sig}: stopping`);
    // A start still waiting for the Kubernetes API server ends now instead of after it answers.
    agent.interruptStart();
    done.resolve();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  try {
    await agent.start();
  } catch (err) {
    await agent.stop({ keepAttached: false });
    if (signalled && err instanceof AgentStartError && err.code === "kubernetes") {
      log("stopped before the start completed");
      return 0;
    }
    // All or nothing: one invalid or refused policy stops the start with none applied (a
    // security agent that came up with part of its policies would look protected and not be).
    // Every problem is printed as file:line:col: path: message, then one line naming the files.
    if (err instanceof PolicyInvalidError) {
      for (const d of err.errors) process.stderr.write(`${formatDiagnostic(d)}\n`);
      const n = `${err.errors.length} error${err.errors.length === 1 ? "" : "s"} above`;
      if (err instanceof PolicyRejectedError) logger.error(`${filesOf(err.errors)}: cannot be applied on this kernel (${n}); nothing was applied`);
      else logger.error(`${filesOf(err.errors)}: invalid policy (${n}); nothing was applied`);
      return 1;
    }
    logger.error(err instanceof AgentStartError || err instanceof Error ? err.message : String(err));
    return 1;
  }
  if (!signalled) log(`ready (node ${config.nodeName}, ${agent.store.list().length} policies applied)`);
  await done.promise;
  stopping ??= agent.stop();
  await stopping;
  process.off("SIGTERM", onSignal);
  process.off("SIGINT", onSignal);
  log("stopped");
  return 0;
}
