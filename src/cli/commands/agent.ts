// ward agent: runs the agent in the foreground until SIGTERM or SIGINT.
// Exit codes: 0 after a clean stop, 1 when it cannot start, 2 for bad flags.
import { Agent, AgentStartError } from "../../agent/agent.ts";
import { AGENT_USAGE, isLoopback, parseAgentConfig } from "../../agent/config.ts";
import { defaultSensors } from "../../agent/default-sensors.ts";
import { parsePolicies } from "../../agent/policy-parser.ts";
import { createPolicyBackend } from "../../agent/policy-backend.ts";
import { PolicyInvalidError, formatDiagnostic } from "../../agent/policy-store.ts";
import { fileSink, stdoutSink } from "../../agent/sinks.ts";
import type { EventSink } from "../../agent/event-hub.ts";
import { createSink } from "../../agent/sinks.ts";

function log(msg: string): void {
  process.stderr.write(`ward agent: ${msg}\n`);
}

export async function run(argv: string[]): Promise<number> {
  const config = parseAgentConfig(argv);
  if (config === "help") {
    process.stdout.write(AGENT_USAGE);
    return 0;
  }
  if (process.getuid?.() !== 0) {
    log("must run as root: it loads BPF programs and attaches them to the kernel (try: sudo ward agent)");
    return 1;
  }
  if (!isLoopback(config.listen.host)) {
    log(`API listens on ${config.listen.host}, reachable from the network; every /v1 call still needs the token`);
  }

  const sinks = (): EventSink[] => {
    const out: EventSink[] = [];
    if (config.exportFile !== undefined) out.push(fileSink(config.exportFile));
    if (config.exportStdout) out.push(stdoutSink(config.output));
    for (const spec of config.sinks) out.push(createSink(spec, { nodeName: config.nodeName }));
    return out;
  };
  const agent = new Agent(config, { parser: parsePolicies, sensors: defaultSensors, policyBackend: (ctx, sensors) => createPolicyBackend(ctx, sensors), sinks, log });

  // Signals are handled from the start, so a SIGTERM during start-up still cleans up.
  let stopping: Promise<void> | undefined;
  let signalled = false;
  const done = Promise.withResolvers<void>();
  const onSignal = (sig: NodeJS.Signals) => {
    if (signalled) {
      log(`${sig} again: exiting without cleanup`);
      process.exit(1);
    }
    signalled = true;
    log(`${sig}: stopping`);
    done.resolve();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);

  try {
    await agent.start();
  } catch (err) {
    await agent.stop({ keepAttached: false });
    if (err instanceof PolicyInvalidError) {
      for (const d of err.errors) process.stderr.write(`${formatDiagnostic(d)}\n`);
      log(`${err.errors.length} policy error${err.errors.length === 1 ? "" : "s"}; nothing was applied`);
      return 1;
    }
    log(err instanceof AgentStartError || err instanceof Error ? err.message : String(err));
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
