// Policy add latency: from POST /v1/policies until the rule is in force, observed from the
// outside: a probe process (bench/lib/loadgen.c probe) opens the protected file every 100 us
// and the time is taken when it is stopped (killed by the Sigkill variant, or its open
// refused with the Override variant), not when the API answers. Measured with 1, 10 and
// 100 policies already loaded (other files, same shape), to show how it grows; each round
// adds one policy and deletes it again. At each level it also times an open/close loop on an
// unrelated file (CPU time, pinned) against the loop with no agent: what the loaded policies
// cost everything else.
// Usage (root): bun run bench/policy.ts [--rounds 7] [--quick] [--json]
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { secureOpenPolicy } from "../test/lib/talk-policies.ts";
import { BenchAgent } from "./lib/agent.ts";
import { prepareBenchHost } from "./lib/host.ts";
import { LoadGenerator } from "./lib/loadgen.ts";
import { progIdsOf } from "./lib/profile.ts";
import { metric, progress, runBench, sampleMetric, type BenchSection } from "./lib/results.ts";
import { policyMechanism } from "./lib/secure.ts";

class PolicyBenchError extends Error {
  override name = "PolicyBenchError";
}

const log = (m: string) => progress("policy", m);

await runBench("policy", "Policy add: POST /v1/policies until a probe process is stopped, and what loaded policies cost", async (args, section: BenchSection) => {
  const rounds = Math.floor(args.num("rounds", 7, 1));
  const levels = args.quick ? [1, 2, 3] : [1, 10, 100];
  prepareBenchHost("bench/policy.ts");
  const dir = realpathSync(mkdtempSync("/tmp/ward-bench-policy-"));
  const agent = new BenchAgent("ward agent (policy add)", dir);
  try {
    const gen = LoadGenerator.build(dir);
    const allowed = gen.copyTo(join(dir, "allowed-loadgen")).binary;
    const probeFile = join(dir, "probe/file");
    mkdirSync(join(dir, "probe"));
    writeFileSync(probeFile, "probe\n");
    // What the loaded policies cost an unrelated open/close (each policy brings its own
    // programs): CPU time of the pinned loop without any agent, before and after, against
    // the same loop at each level.
    const unrelated = join(dir, "unrelated");
    writeFileSync(unrelated, "unrelated\n");
    const openMode = { kind: "open", path: unrelated } as const;
    const nOpen = gen.calibrate(openMode, args.quick ? 0.02 : 0.3);
    const repeats = args.quick ? 1 : 3;
    const offBefore = gen.best(openMode, nOpen, repeats);
    const openAt = new Map<number, number>();
    await agent.start();

    // Override where the agent accepts it (the probe's open then fails: exit 3), else Sigkill.
    let action = "Override\n        argError: -1";
    let variant = "Override";
    const tryOverride = await agent.request("POST", "/v1/policies", secureOpenPolicy({ name: "bench-variant", file: probeFile, allowed, action }));
    if (tryOverride.status === 201) {
      section.mechanisms["file policy mechanism (/v1/status)"] = await policyMechanism(agent, "bench-variant");
      await agent.request("DELETE", "/v1/policies/bench-variant");
    } else {
      action = "Sigkill";
      variant = "Sigkill";
      const errs = (tryOverride.json as { error?: { errors?: { message: string }[] } }).error?.errors ?? [];
      const line = errs.map((e) => e.message).find((m) => /override/i.test(m)) ?? JSON.stringify(tryOverride.json);
      section.mechanisms["Override"] = `refused by the agent: ${line.replace(/^.*?: spec\./, "spec.").slice(0, 400)}`;
    }
    section.mechanisms["secure policy variant"] = variant;

    let loaded = 0;
    const addBackground = async (upTo: number): Promise<void> => {
      for (; loaded < upTo; loaded++) {
        const f = join(dir, `bg/${loaded}/file`);
        mkdirSync(join(dir, `bg/${loaded}`), { recursive: true });
        writeFileSync(f, "background\n");
        const r = await agent.request("POST", "/v1/policies", secureOpenPolicy({ name: `bench-bg-${loaded}`, file: f, allowed, action }));
        if (r.status !== 201) throw new PolicyBenchError(`background policy ${loaded}: ${r.status} ${JSON.stringify(r.json)}`);
      }
    };

    for (const level of levels) {
      await addBackground(level);
      const enforced: number[] = [];
      const answered: number[] = [];
      for (let r = 0; r < rounds; r++) {
        const probe = gen.probe(probeFile);
        await Bun.sleep(30); // it runs and opens the file
        const name = `bench-probe-${level}-${r}`;
        const t0 = performance.now();
        const res = await agent.request("POST", "/v1/policies", secureOpenPolicy({ name, file: probeFile, allowed, action }));
        const tAnswer = performance.now();
        if (res.status !== 201) {
          process.kill(probe.pid, "SIGKILL");
          throw new PolicyBenchError(`POST ${name}: ${res.status} ${JSON.stringify(res.json)}`);
        }
        let timer: ReturnType<typeof setTimeout> | undefined;
        const how = await Promise.race([probe.ended, new Promise<string>((resolve) => (timer = setTimeout(() => resolve("timeout"), 10_000)))]);
        clearTimeout(timer);
        const tStop = performance.now();
        if (how === "timeout") {
          process.kill(probe.pid, "SIGKILL");
          throw new PolicyBenchError(`${name}: the probe was not stopped within 10 s of the POST`);
        }
        const expected = variant === "Sigkill" ? how === "SIGKILL" : how.startsWith("exit 3");
        if (!expected) throw new PolicyBenchError(`${name}: the probe ended "${how}", not by the ${variant} rule`);
        enforced.push(tStop - t0);
        answered.push(tAnswer - t0);
        const del = await agent.request("DELETE", `/v1/policies/${name}`);
        if (del.status !== 200) throw new PolicyBenchError(`DELETE ${name}: ${del.status} ${JSON.stringify(del.json)}`);
      }
      const id = `policy_add_${[1, 10, 100][levels.indexOf(level)]}`;
      section.metrics.push(
        sampleMetric(id, `policy add to enforced, ${level} polic${level === 1 ? "y" : "ies"} loaded${args.quick ? " (quick: fewer loaded)" : ""}`, "ms", enforced, level === levels[0] ? { op: "<=", value: 150 } : undefined, `API answered after ${answered.map((x) => x.toFixed(0)).sort((a, b) => Number(a) - Number(b))[answered.length >> 1]} ms (median)`),
      );
      log(`${level} loaded: ${enforced.map((x) => x.toFixed(0)).join(", ")} ms`);
      // fewer iterations as the cost grows, so the loop stays short: ratios are per iteration
      const n = Math.max(2000, Math.round(nOpen / level));
      openAt.set(level, gen.best(openMode, n, repeats) / n);
    }
    const programsAtEnd = progIdsOf(agent.pid).size;
    await agent.stop();
    const off = (offBefore + gen.best(openMode, nOpen, repeats)) / 2;
    levels.forEach((level, i) => {
      const ratio = openAt.get(level)! / (off / nOpen);
      section.metrics.push(
        metric({
          id: `policy_open_cost_${[1, 10, 100][i]}`,
          name: `open/close of an unrelated file with ${level} polic${level === 1 ? "y" : "ies"} loaded vs no agent${args.quick ? " (quick: fewer loaded)" : ""}`,
          unit: "ratio",
          median: ratio,
          min: ratio,
          max: ratio,
          rounds: 1,
          detail: `${((openAt.get(level)! * 1e6)).toFixed(2)} us per iteration against ${((off / nOpen) * 1e6).toFixed(2)} without an agent (measured before and after, averaged); least of ${repeats} runs`,
        }),
      );
    });
    section.mechanisms[`BPF programs the agent holds with ${loaded} policies loaded`] = String(programsAtEnd);
    section.notes.push("the time runs from sending the POST until the probe process is stopped (observed through its exit), so it includes the API, validation, compile, BPF load and attach");
  } finally {
    await agent.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
