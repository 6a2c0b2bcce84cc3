// The process sensor against the real kernel: real processes are started, exec'd, killed,
// and the events must say exactly what happened.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, statSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelTest, kernelUnavailable } from "../lib/host.ts";
import type { PipelineEvent, ProcessSensor } from "../../src/sensors/process.ts";

type P = Record<string, unknown> & { pid: number; binary?: string; arguments?: string; flags?: string; exec_id: string; parent_exec_id?: string };
interface Ev {
  type: string;
  process: P;
  parent?: P;
  signal?: string;
  status?: number;
}

const events: Ev[] = [];
let sensor: ProcessSensor | undefined;
let dir = "";
let early: ChildProcess | undefined;
const TRUE = realpathSync("/bin/true");
const SH = realpathSync("/bin/sh");
const SLEEP = realpathSync("/bin/sleep");
const PERL = realpathSync("/usr/bin/perl");

function onEvent(ev: PipelineEvent): void {
  const body = ev.json[ev.type] as unknown as Ev;
  events.push({ ...body, type: ev.type });
}

async function waitFor<T>(what: string, find: () => T | undefined, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = find();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await Bun.sleep(20);
  }
}

const execOf = (pid: number, binary?: string): Ev | undefined =>
  events.find((e) => e.type === "process_exec" && e.process.pid === pid && (binary === undefined || e.process.binary === binary));
const exitOf = (pid: number): Ev | undefined => events.find((e) => e.type === "process_exit" && e.process.pid === pid);

/** Runs a command to completion and returns its pid. */
async function run(cmd: string, args: string[]): Promise<{ pid: number; code: number | null; signal: string | null; out: string }> {
  const c = spawn(cmd, args, { stdio: ["ignore", "pipe", "inherit"] });
  let out = "";
  c.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  const [code, signal] = await new Promise<[number | null, string | null]>((res) => c.on("exit", (a, b) => res([a, b])));
  return { pid: c.pid!, code, signal, out };
}

describe("process sensor", () => {
  beforeAll(async () => {
    if (kernelUnavailable() !== undefined) return;
    dir = mkdtempSync(join(tmpdir(), "ward-proc-"));
    // Started before the sensor: only the /proc scan can know it.
    early = spawn(SH, ["-c", "read x; exec /bin/true after-scan"], { stdio: ["pipe", "ignore", "inherit"] });
    await Bun.sleep(100);
    const { startProcessSensor } = await import("../../src/sensors/process.ts");
    sensor = await startProcessSensor({ nodeName: "ward-test", onEvent, housekeepingMs: 200 });
  });

  afterAll(async () => {
    early?.kill("SIGKILL");
    await sensor?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  kernelTest("exec via sh: resolved binary, quoted arguments, parent is the sh image, exit status 0", async () => {
    const r = await run(SH, ["-c", 'exec /bin/true a "b c"']);
    expect(r.code).toBe(0);
    const ex = await waitFor("exec of true", () => execOf(r.pid, TRUE));
    expect(ex.process.arguments).toBe('a "b c"');
    expect(ex.process.flags).toBe("execve");
    expect(ex.parent?.binary).toBe(SH);
    expect(ex.parent?.pid).toBe(r.pid);
    expect(ex.process.parent_exec_id).toBe(ex.parent!.exec_id);
    expect(Buffer.from(ex.process.exec_id, "base64").toString()).toMatch(new RegExp(`^ward-test:\\d+:${r.pid}$`));
    const sh = execOf(r.pid, SH)!;
    expect(sh.process.flags).toContain("clone");
    expect(sh.process.exec_id).toBe(ex.parent!.exec_id);
    const x = await waitFor("exit of true", () => exitOf(r.pid));
    expect(x.process.exec_id).toBe(ex.process.exec_id);
    expect(x.parent?.exec_id).toBe(sh.process.exec_id);
    expect(x.signal).toBeUndefined();
    expect(x.status).toBeUndefined(); // 0 is omitted
  });

  kernelTest("SIGKILL: exit carries the signal", async () => {
    const c = spawn(SLEEP, ["30"], { stdio: "ignore" });
    await waitFor("exec of sleep", () => execOf(c.pid!, SLEEP));
    c.kill("SIGKILL");
    const x = await waitFor("exit of sleep", () => exitOf(c.pid!));
    expect(x.signal).toBe("SIGKILL");
    expect(x.status).toBeUndefined();
    expect(x.process.binary).toBe(SLEEP);
  });

  kernelTest("nonzero exit status", async () => {
    const r = await run(SH, ["-c", "exit 3"]);
    expect(r.code).toBe(3);
    const x = await waitFor("exit", () => exitOf(r.pid));
    expect(x.status).toBe(3);
    expect(x.signal).toBeUndefined();
  });

  kernelTest("relative path, symlink and .. resolve to the real file", async () => {
    const link = join(dir, "true-link");
    symlinkSync("/bin/true", link);
    const rel = await run(SH, ["-c", "cd /usr/bin && exec ./true rel"]);
    const sym = await run(SH, ["-c", `exec ${link} sym`]);
    const dots = await run(SH, ["-c", "exec /usr/lib/../bin/true dots"]);
    for (const r of [rel, sym, dots]) {
      const ex = await waitFor("exec", () => events.find((e) => e.type === "process_exec" && e.process.pid === r.pid && e.process.binary !== SH));
      expect(ex.process.binary).toBe(TRUE);
    }
    expect(execOf(rel.pid, TRUE)?.process.cwd).toBe("/usr/bin");
  });

  kernelTest("a binary under a bind mount is named through the mount, as d_path names it", async () => {
    const src = join(dir, "src");
    const mnt = join(dir, "mnt");
    mkdirSync(src);
    mkdirSync(mnt);
    copyFileSync(SLEEP, join(src, "s"));
    chmodSync(join(src, "s"), 0o755);
    expect(spawnSync("mount", ["--bind", src, mnt]).status).toBe(0);
    try {
      const c = spawn(join(mnt, "s"), ["5"], { stdio: "ignore" });
      const ex = await waitFor("exec under bind mount", () => execOf(c.pid!));
      const kernelView = readlinkSync(`/proc/${c.pid}/exe`);
      c.kill("SIGKILL");
      await new Promise((res) => c.on("exit", res));
      expect(kernelView).toBe(join(mnt, "s"));
      expect(ex.process.binary).toBe(kernelView);
    } finally {
      spawnSync("umount", [mnt]);
    }
  });

  kernelTest("deleted binary is reported as the kernel's d_path shows it", async () => {
    const bin = join(dir, "gone");
    copyFileSync(SLEEP, bin);
    chmodSync(bin, 0o755);
    const c = spawn(SH, ["-c", `exec 3<${bin}; rm ${bin}; exec /proc/self/fd/3 5`], { stdio: "ignore" });
    const ex = await waitFor("exec of deleted", () => events.find((e) => e.type === "process_exec" && e.process.pid === c.pid && e.process.binary !== SH));
    const kernelView = readlinkSync(`/proc/${c.pid}/exe`);
    c.kill("SIGKILL");
    expect(kernelView).toBe(`${bin} (deleted)`);
    expect(ex.process.binary).toBe(kernelView);
    expect((ex.process.binary_properties as { file: { inode: { links: number } } }).file.inode.links).toBe(0);
  });

  kernelTest("memfd exec is reported as /memfd:name (deleted)", async () => {
    const script = [
      'my $name = "ward-memfd";',
      "my $fd = syscall(319, $name, 0); die qq(memfd: $!) if $fd < 0;",
      'open(my $out, ">&=", $fd) or die; binmode $out;',
      `open(my $in, "<", "${SLEEP}") or die; binmode $in; local $/; my $bytes = <$in>; print {$out} $bytes; close $in; $out->flush;`,
      'exec { "/proc/self/fd/$fd" } "sleep", "5" or die qq(exec: $!);',
    ].join("\n");
    const c = spawn(PERL, ["-e", script], { stdio: ["ignore", "ignore", "inherit"] });
    const ex = await waitFor("exec of memfd", () => events.find((e) => e.type === "process_exec" && e.process.pid === c.pid && e.process.binary !== PERL));
    const kernelView = readlinkSync(`/proc/${c.pid}/exe`);
    c.kill("SIGKILL");
    expect(kernelView).toBe("/memfd:ward-memfd (deleted)");
    expect(ex.process.binary).toBe(kernelView);
    expect(ex.process.arguments).toBe("5");
  });

  kernelTest("fork without exec: own exec_id, parent's binary, flag clone", async () => {
    const r = await run(PERL, ["-e", "my $p = fork(); if ($p == 0) { select(undef, undef, undef, 0.05); exit 7 } print $p; waitpid($p, 0);"]);
    const child = Number(r.out.trim());
    expect(child).toBeGreaterThan(0);
    const x = await waitFor("exit of forked child", () => exitOf(child));
    const parentExec = execOf(r.pid, PERL)!;
    expect(x.process.binary).toBe(PERL);
    expect(x.process.flags).toContain("clone");
    expect(x.process.exec_id).not.toBe(parentExec.process.exec_id);
    expect(x.process.parent_exec_id).toBe(parentExec.process.exec_id);
    expect(x.parent?.pid).toBe(r.pid);
    expect(x.status).toBe(7);
    expect(execOf(child)).toBeUndefined(); // a clone is not an exec
  });

  kernelTest("a process from before the sensor is found by the /proc scan; its exec and exit link to it", async () => {
    const pid = early!.pid!;
    const seeded = sensor!.cache.current(pid);
    expect(seeded?.binary).toBe(SH);
    expect(seeded!.flags & 0x4).toBe(0x4); // procFS
    early!.stdin!.end("go\n");
    const ex = await waitFor("exec after scan", () => execOf(pid, TRUE));
    expect(ex.process.arguments).toBe("after-scan");
    expect(ex.parent?.exec_id).toBe(seeded!.execId);
    expect(ex.parent?.flags).toContain("procFS");
    const x = await waitFor("exit after scan", () => exitOf(pid));
    expect(x.process.exec_id).toBe(ex.process.exec_id);
    expect(x.parent?.exec_id).toBe(seeded!.execId);
  });

  kernelTest("a script runs its interpreter: binary is the interpreter, arguments start with the script", async () => {
    const script = join(dir, "hello.sh");
    await Bun.write(script, "#!/bin/sh\nexit 0\n");
    chmodSync(script, 0o755);
    const r = await run(script, ["x"]);
    expect(r.code).toBe(0);
    const ex = await waitFor("exec of script", () => execOf(r.pid));
    expect(ex.process.binary).toBe(SH);
    expect(ex.process.arguments).toBe(`${script} x`);
  });

  kernelTest("over-long arguments and over-deep paths are truncated and flagged", async () => {
    const long = "y".repeat(5000);
    const r = await run(TRUE, ["a", long]);
    const ex = await waitFor("exec with long args", () => execOf(r.pid, TRUE));
    expect(ex.process.flags).toContain("truncArgs");
    expect(ex.process.arguments!.startsWith(`a ${"y".repeat(100)}`)).toBe(true);
    expect(ex.process.arguments!.length).toBeLessThan(4096);
    // 140 nested directories: deeper than the kernel walk's 128 components.
    let deep = dir;
    for (let i = 0; i < 140; i++) deep = join(deep, "d");
    mkdirSync(deep, { recursive: true });
    copyFileSync(TRUE, join(deep, "t"));
    chmodSync(join(deep, "t"), 0o755);
    const d = await run(join(deep, "t"), []);
    expect(d.code).toBe(0);
    const dx = await waitFor("exec of deep binary", () => execOf(d.pid));
    expect(dx.process.flags).toContain("truncFilename");
    expect(dx.process.binary!.endsWith("/d/d/d/t")).toBe(true);
    expect(dx.process.binary!.length).toBeLessThan(join(deep, "t").length);
  });

  kernelTest("credentials, capabilities, namespaces and cgroup match what /proc says", async () => {
    const c = spawn("setpriv", ["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", SLEEP, "5"], { stdio: "ignore" });
    await waitFor("exec of sleep as nobody", () => execOf(c.pid!, SLEEP));
    const info = sensor!.cache.current(c.pid!)!;
    const status = readFileSync(`/proc/${c.pid}/status`, "utf8");
    const field = (k: string) => new RegExp(`^${k}:\\s+(.*)$`, "m").exec(status)![1]!.trim();
    const ids = (k: string) => field(k).split(/\s+/).map(Number);
    const hex = (k: string) => BigInt(`0x${field(k)}`);
    const ns = ["uts", "ipc", "mnt", "pid", "pid_for_children", "net", "time", "time_for_children", "cgroup", "user"].map((n) =>
      Number(/\[(\d+)\]/.exec(readlinkSync(`/proc/${c.pid}/ns/${n}`))![1]),
    );
    const cg = /^0::(.*)$/m.exec(readFileSync(`/proc/${c.pid}/cgroup`, "utf8"))![1]!;
    const cgRoot = readFileSync("/proc/mounts", "utf8").split("\n").map((l) => l.split(" ")).find((f) => f[2] === "cgroup2")![1]!;
    const cgIno = statSync(join(cgRoot, cg), { bigint: true }).ino;
    const auid = Number(readFileSync(`/proc/${c.pid}/loginuid`, "utf8"));
    c.kill("SIGKILL");
    const [uid, euid, suid, fsuid] = ids("Uid");
    const [gid, egid, sgid, fsgid] = ids("Gid");
    expect(info.creds).toMatchObject({ uid, euid, suid, fsuid, gid, egid, sgid, fsgid, auid });
    expect(info.creds.euid).toBe(65534);
    expect(info.creds.capEffective).toBe(hex("CapEff"));
    expect(info.creds.capPermitted).toBe(hex("CapPrm"));
    expect(info.creds.capInheritable).toBe(hex("CapInh"));
    expect(info.creds.ns).toEqual(ns);
    expect(info.creds.cgroupId).toBe(cgIno);
    const ex = execOf(c.pid!, SLEEP)!;
    expect(ex.process.uid).toBe(65534);
  });

  kernelTest(
    "exec storm: 2,000 processes on both CPUs give one exec and one exit each, or counted losses",
    async () => {
      const before = sensor!.counters().kernelLost;
      const loop = (cpu: number) => run("taskset", ["-c", String(cpu), SH, "-c", "i=0; while [ $i -lt 1000 ]; do /bin/true; i=$((i+1)); done"]);
      const [a, b] = await Promise.all([loop(0), loop(1)]);
      expect(a.code).toBe(0);
      expect(b.code).toBe(0);
      // The loops' shells: taskset execs sh in place, so the loop pid is the shell.
      const shells = new Set([a.pid, b.pid]);
      const count = () => {
        const execs = new Map<number, number>();
        const exits = new Map<number, number>();
        for (const e of events) {
          if (e.process.binary !== TRUE || !e.parent || !shells.has(e.parent.pid)) continue;
          const m = e.type === "process_exec" ? execs : exits;
          m.set(e.process.pid, (m.get(e.process.pid) ?? 0) + 1);
        }
        return { execs, exits };
      };
      const lost = () => {
        const l = sensor!.counters().kernelLost;
        return { exec: l.exec - before.exec, exit: l.exit - before.exit, clone: l.clone - before.clone };
      };
      await waitFor(
        "storm events",
        () => {
          const { execs, exits } = count();
          const l = lost();
          return execs.size + l.exec >= 2000 && exits.size + l.exit >= 2000 ? true : undefined;
        },
        60_000,
      ).catch(() => undefined);
      await Bun.sleep(500); // one more housekeeping pass for the loss counters
      const { execs, exits } = count();
      const l = lost();
      for (const n of execs.values()) expect(n).toBe(1);
      for (const n of exits.values()) expect(n).toBe(1);
      expect(execs.size + l.exec).toBe(2000);
      expect(exits.size + l.exit + l.clone).toBeGreaterThanOrEqual(2000);
      expect(exits.size + l.exit).toBe(2000);
    },
    120_000,
  );

  kernelTest("stop() detaches: no events after it", async () => {
    const s = sensor!;
    await s.stop();
    const n = events.length;
    await run(TRUE, []);
    await Bun.sleep(200);
    expect(events.length).toBe(n);
    sensor = undefined;
  });
});
