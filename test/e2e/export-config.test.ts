// The agent's configuration and export gate end to end, as root against the real kernel:
// `ward agent --config FILE` with an allow list, a deny list, a field filter and a rate limit
// (a flag and an environment variable overriding the file), real processes run, and the
// export file and stdout hold exactly what the filters say, with a rate_limit_info event
// counting the drops; /v1/events is not gated. Also --print-config without root or kernel.
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelTest } from "../lib/host.ts";
import { agentReady, waitFor } from "../lib/agent.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const dir = mkdtempSync(join(tmpdir(), "ward-e2e-export-"));
const bpfDir = `/sys/fs/bpf/ward-e2e-export-${process.pid}`;
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(bpfDir, { recursive: true, force: true });
});

const marker = `wardexp${process.pid}x${Date.now()}`;
const exportFile = join(dir, "events.log");
const stateFile = join(dir, "agent.json");
const tokenFile = join(dir, "token");
const configFile = join(dir, "ward.yaml");
// Only exec events of our own marked processes; never echo; only binary and arguments; at
// most 5 a minute. The file's node-name and rate limit are overridden below.
writeFileSync(
  configFile,
  `listen: 127.0.0.1:0
token-file: ${tokenFile}
state-file: ${stateFile}
bpf-dir: ${bpfDir}
export-filename: ${exportFile}
export-stdout: true
node-name: from-file
log-level: debug
export-rate-limit: 1000
export-allowlist: |
  {"event_set":["PROCESS_EXEC"],"arguments_regex":["${marker}"]}
export-denylist:
  - {"binary_regex": ["/echo$"]}
field-filters: '{"fields":"process.binary,process.arguments","event_set":["PROCESS_EXEC"],"action":"INCLUDE"}'
`,
);

type Line = { process_exec?: { process: Record<string, unknown> }; rate_limit_info?: { number_of_dropped_process_events: string }; node_name: string; time: string };

describe("export configuration (e2e)", () => {
  test("--print-config shows the file merged with the environment and flags, without starting anything", () => {
    const r = spawnSync(process.execPath, [main, "agent", "--config", configFile, "--node-name", "from-flag", "--print-config"], {
      encoding: "utf8",
      env: { ...process.env, WARD_EXPORT_RATE_LIMIT: "5", WARD_LOG_LEVEL: "warn" },
      timeout: 30_000,
    });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    expect(r.stdout).toContain("\nnode-name: from-flag\n");
    expect(r.stdout).toContain("\nexport-rate-limit: 5\n");
    expect(r.stdout).toContain("\nlog-level: warn\n");
    expect(r.stdout).toContain(`\nexport-filename: ${exportFile}\n`);
    expect(existsSync(stateFile)).toBe(false);
    expect(existsSync(exportFile)).toBe(false);
  }, 30_000);

  test("an unknown key stops the agent before anything starts, naming file, line and column", () => {
    const bad = join(dir, "bad.yaml");
    writeFileSync(bad, `listen: 127.0.0.1:0\nexport-filenam: ${join(dir, "x.log")}\n`);
    const r = spawnSync(process.execPath, [main, "agent", "--config", bad], { encoding: "utf8", timeout: 30_000 });
    expect(r.status).toBe(2);
    expect(r.stderr).toContain(`${bad}:2:1: unknown key "export-filenam"`);
  }, 30_000);

  kernelTest(
    "allow and deny lists, field filters and the rate limit decide what the file and stdout get, from real processes",
    async () => {
      const agent = Bun.spawn([process.execPath, main, "agent", "--config", configFile, "--node-name", "e2e-node"], {
        stdout: "pipe",
        stderr: "pipe",
        stdin: "ignore",
        env: { ...process.env, WARD_EXPORT_RATE_LIMIT: "5" },
      });
      const stdout = new Response(agent.stdout).text();
      const stderr = new Response(agent.stderr).text();
      try {
        const { state, token } = await agentReady(agent, { stateFile, tokenFile });
        const auth = { Authorization: `Bearer ${token}` };
        // An API stream on the same processes: not gated by the export lists.
        const stream = await fetch(`${state.url}/v1/events?event_types=PROCESS_EXEC,PROCESS_EXIT`, { headers: auth });
        await waitFor("stream subscribed", async () => {
          const s = (await (await fetch(`${state.url}/v1/status`, { headers: auth })).json()) as { events: { subscribers: number } };
          return s.events.subscribers > 0 ? true : undefined;
        }, 5_000);

        // Denied (echo), not allowed (no marker), then 8 allowed: 5 pass the limit, 3 are dropped.
        expect(spawnSync("/bin/echo", [`${marker}-denied`]).status).toBe(0);
        expect(spawnSync("/bin/true", ["unmarked"]).status).toBe(0);
        for (let i = 0; i < 8; i++) expect(spawnSync("/bin/true", [`${marker}-${i}`]).status).toBe(0);

        // The stream sees all of them, exits included.
        const reader = stream.body!.getReader();
        let buf = "";
        await waitFor(
          "all marked events on /v1/events",
          async () => {
            const { value, done } = await reader.read();
            if (done) throw new Error("stream ended");
            buf += new TextDecoder().decode(value);
            const mine = buf.split("\n").filter((l) => l.includes(marker));
            return mine.length >= 18 ? mine : undefined;
          },
          15_000,
        );
        await reader.cancel();
        const streamed = buf.split("\n").filter((l) => l.includes(marker)).map((l) => JSON.parse(l) as Line);
        expect(streamed.filter((e) => e.process_exec).length).toBe(9);
        // Full events there: the field filter applies to the sinks only.
        expect(streamed.find((e) => e.process_exec)!.process_exec!.process.exec_id).toBeDefined();

        agent.kill("SIGTERM");
        expect(await agent.exited).toBe(0);
        const fileLines = readFileSync(exportFile, "utf8").trim().split("\n").map((l) => JSON.parse(l) as Line);
        const execs = fileLines.filter((e) => e.process_exec);
        expect(execs.map((e) => e.process_exec!.process)).toEqual([0, 1, 2, 3, 4].map((i) => ({ binary: expect.stringMatching(/\/true$/), arguments: `${marker}-${i}` })));
        expect(execs.every((e) => e.node_name === "e2e-node")).toBe(true);
        // Nothing else passed the allow list, and the drops were reported when the agent stopped.
        const info = fileLines.filter((e) => e.rate_limit_info);
        expect(fileLines.length).toBe(execs.length + info.length);
        expect(info).toHaveLength(1);
        expect(info[0]).toEqual({ rate_limit_info: { number_of_dropped_process_events: "3" }, node_name: "e2e-node", time: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/) });
        // stdout is a sink too and got the same lines.
        const outLines = (await stdout).trim().split("\n").map((l) => JSON.parse(l) as Line);
        expect(outLines).toEqual(fileLines);
        // log-level debug from the file: the debug line is there.
        expect(await stderr).toContain(`debug: configuration read from ${configFile}`);
      } finally {
        if (agent.exitCode === null) agent.kill("SIGKILL");
        await agent.exited;
        if (agent.exitCode !== 0) process.stderr.write(`agent stderr:\n${await stderr}\n`);
      }
    },
    120_000,
  );
});
