// fanotify robustness: an agent holding a permission group is killed with SIGKILL while an
// open of a watched file waits for its answer. The kernel releases the group with the
// process: the waiting open completes (allowed), later opens are not held, nothing hangs.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";

const SECRET = "I love pizza!\n";
let dir = "";
let secret = "";

async function allStopped(pid: number): Promise<void> {
  for (let i = 0; i < 200; i++) {
    const states = readdirSync(`/proc/${pid}/task`).map((t) => {
      try {
        return /^\d+ \(.*\) (\S)/.exec(readFileSync(`/proc/${pid}/task/${t}/stat`, "utf8"))?.[1] ?? "?";
      } catch {
        return "T"; // gone
      }
    });
    if (states.every((st) => st === "T" || st === "t")) return;
    await Bun.sleep(5);
  }
  throw new Error(`process ${pid}: not every thread stopped within 1 s`);
}

function exited(p: ReturnType<typeof spawn>): Promise<{ code: number | null; signal: string | null }> {
  return new Promise((resolve) => p.on("exit", (code, signal) => resolve({ code, signal })));
}

describe("fanotify: the agent killed with SIGKILL", () => {
  beforeAll(() => {
    if (kernelUnavailable() !== undefined) return;
    dir = mkdtempSync("/tmp/ward-fanrobust-");
    secret = join(dir, "secret");
    writeFileSync(secret, SECRET);
  });
  afterAll(() => {
    if (dir !== "") rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("a held open completes once the agent is gone, and the file is no longer held", async () => {
    const script = join(dir, "agent.ts");
    writeFileSync(script, `import { FanotifyGuard } from ${JSON.stringify(join(import.meta.dir, "../../src/sensors/fanotify.ts"))};
const g = FanotifyGuard.create();
g.addRule({ action: "deny", post: false, target: "open" }, [${JSON.stringify(secret)}]);
g.start((why) => console.error(why));
await g.ready();
console.log("ready");
setInterval(() => {}, 1000);
`);
    const agent = spawn(process.execPath, [script], { stdio: ["ignore", "pipe", "inherit"] });
    let out = "";
    agent.stdout.setEncoding("utf8");
    await new Promise<void>((resolve) => agent.stdout.on("data", (d: string) => {
      out += d;
      if (out.includes("ready")) resolve();
    }));
    const agentEnd = exited(agent);
    // The rule holds: a cat is refused.
    const denied = spawn("cat", [secret], { stdio: ["ignore", "pipe", "pipe"] });
    let deniedErr = "";
    denied.stderr.setEncoding("utf8").on("data", (d: string) => (deniedErr += d));
    expect((await exited(denied)).code).toBe(1);
    expect(deniedErr).toContain("Operation not permitted");
    // Stop the agent (every thread, the decision thread too): the next open waits.
    process.kill(agent.pid!, "SIGSTOP");
    // SIGSTOP lands thread by thread: wait until every thread (the real-time decision thread
    // too) is stopped, or an open made now could still be answered.
    await allStopped(agent.pid!);
    const held = spawn("cat", [secret], { stdio: ["ignore", "pipe", "inherit"] });
    let heldOut = "";
    held.stdout.setEncoding("utf8").on("data", (d: string) => (heldOut += d));
    const heldEnd = exited(held);
    let finished = false;
    void heldEnd.then(() => (finished = true));
    await Bun.sleep(300);
    expect(finished).toBe(false);
    // SIGKILL: the kernel closes the group and allows what was pending.
    const t0 = performance.now();
    process.kill(agent.pid!, "SIGKILL");
    expect((await agentEnd).signal).toBe("SIGKILL");
    const end = await Promise.race([heldEnd, Bun.sleep(5000).then(() => "hung" as const)]);
    expect(end).not.toBe("hung");
    expect(heldOut).toBe(SECRET);
    process.stderr.write(`fanotify: held open completed ${(performance.now() - t0).toFixed(1)} ms after SIGKILL of the agent\n`);
    // Nothing stays held.
    const again = spawn("cat", [secret], { stdio: ["ignore", "pipe", "inherit"] });
    let againOut = "";
    again.stdout.setEncoding("utf8").on("data", (d: string) => (againOut += d));
    expect((await exited(again)).code).toBe(0);
    expect(againOut).toBe(SECRET);
  }, 20_000);
});

describe("fanotify: the main thread behind the decision thread", () => {
  let qdir = "";
  beforeAll(() => {
    if (kernelUnavailable() !== undefined) return;
    qdir = mkdtempSync("/tmp/ward-fanqueue-");
    writeFileSync(join(qdir, "watched"), SECRET);
  });
  afterAll(() => {
    if (qdir !== "") rmSync(qdir, { recursive: true, force: true });
  });

  kernelTest("Post matches beyond maxQueuedPosts in flight are dropped and counted; every open is still answered; the bound frees as the main thread reads", async () => {
    const { FanotifyGuard } = await import("../../src/sensors/fanotify.ts");
    const file = join(qdir, "watched");
    const g = FanotifyGuard.create({ maxQueuedPosts: 4 });
    try {
      g.addRule({ action: "report", post: true, target: "open" }, [file]);
      g.start((why) => process.stderr.write(`fanotify: ${why}\n`));
      await g.ready();
      const got: number[] = [];
      const dropped: number[] = [];
      g.onMatch((b) => got.push(...b.map((m) => m.pid)));
      g.onDropped((n) => dropped.push(n));
      // 40 opens by one shell while this thread is blocked in spawnSync: the decision thread
      // answers each one, but no message is read here until it returns.
      const sh = Bun.spawnSync(["sh", "-c", `i=0; while [ $i -lt 40 ]; do read l < '${file}' || exit 3; i=$((i+1)); done; echo $$`]);
      expect(sh.exitCode).toBe(0);
      const shPid = Number(sh.stdout.toString().trim());
      expect(g.counters().events).toBe(40);
      expect(g.counters().allowed).toBe(40);
      expect(g.counters().postDropped).toBe(36);
      for (let i = 0; i < 100 && got.length < 4; i++) await Bun.sleep(10);
      await Bun.sleep(50);
      expect(got).toEqual([shPid, shPid, shPid, shPid]);
      expect(dropped.reduce((a, b) => a + b, 0)).toBe(36);
      // Read: the bound is free again, and matches of later opens all arrive.
      const again = Bun.spawnSync(["sh", "-c", `for i in 1 2 3; do read l < '${file}'; done`]);
      expect(again.exitCode).toBe(0);
      for (let i = 0; i < 100 && got.length < 7; i++) await Bun.sleep(10);
      expect(got.length).toBe(7);
      expect(g.counters().postDropped).toBe(36);
    } finally {
      g.close();
    }
  }, 20_000);
});

describe("fanotify: the decision thread's own heap", () => {
  let gdir = "";
  beforeAll(() => {
    if (kernelUnavailable() !== undefined) return;
    gdir = mkdtempSync("/tmp/ward-fangc-");
    writeFileSync(join(gdir, "watched"), SECRET);
  });
  afterAll(() => {
    if (gdir !== "") rmSync(gdir, { recursive: true, force: true });
  });

  kernelTest("after idleCollectAfter decisions, a second without events runs one collection of the thread's heap; none while it stays idle, none before the count", async () => {
    const { FanotifyGuard } = await import("../../src/sensors/fanotify.ts");
    const file = join(gdir, "watched");
    const g = FanotifyGuard.create({ idleCollectAfter: 20 });
    try {
      g.addRule({ action: "report", post: true, target: "open" }, [file]);
      g.start((why) => process.stderr.write(`fanotify: ${why}\n`));
      await g.ready();
      const opens = (n: number) => expect(Bun.spawnSync(["sh", "-c", `i=0; while [ $i -lt ${n} ]; do read l < '${file}' || exit 3; i=$((i+1)); done`]).exitCode).toBe(0);
      opens(10);
      await Bun.sleep(1500);
      expect(g.counters().idleCollections).toBe(0); // 10 < 20
      opens(15);
      expect(g.counters().events).toBe(25);
      await Bun.sleep(1500);
      expect(g.counters().idleCollections).toBe(1);
      await Bun.sleep(1500);
      expect(g.counters().idleCollections).toBe(1);
    } finally {
      g.close();
    }
  }, 20_000);
});
