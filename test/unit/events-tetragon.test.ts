// Golden tests of the Tetragon export encoding: key order, omitted zeros, wrapper fields kept
// at 0, 64-bit values as strings, RFC 3339 nano times, exec_id base64, flags words.
import { describe, expect, test } from "bun:test";
import { argumentsOfBlock, joinArguments, splitArgv } from "../../src/events/args.ts";
import { capabilityNames } from "../../src/events/capabilities.ts";
import { execId, rootParentExecId } from "../../src/events/exec-id.ts";
import { ProcessFlag, flagsString } from "../../src/events/flags.ts";
import type { ProcessInfo } from "../../src/events/model.ts";
import { emptyCreds } from "../../src/events/process-cache.ts";
import { decodeExitCode, signalName } from "../../src/events/signals.ts";
import { encodeEvent } from "../../src/events/tetragon.ts";
import { BootClock, rfc3339Nano } from "../../src/events/time.ts";

// Boot time 0 is 2024-04-14T02:00:00Z.
const clock = new BootClock(BigInt(Date.UTC(2024, 3, 14, 2, 0, 0)) * 1_000_000n);
const node = "node-a";

function proc(over: Partial<ProcessInfo>): ProcessInfo {
  return {
    execId: execId(node, 1_000_000_123n, 42),
    pid: 42,
    tid: 42,
    ktime: 1_000_000_123n,
    binary: "/usr/bin/true",
    arguments: 'a "b c"',
    cwd: "/",
    flags: ProcessFlag.execve | ProcessFlag.rootcwd | ProcessFlag.clone,
    creds: { ...emptyCreds(), uid: 0, euid: 0 },
    parentExecId: execId(node, 500n, 41),
    ppid: 41,
    ...over,
  };
}

describe("tetragon encoding", () => {
  test("exec_id is base64 of node:ktime:pid", () => {
    expect(execId("gke-john-632-default-pool-7041cac0-9s95", 13548674321373n, 52699)).toBe(
      Buffer.from("gke-john-632-default-pool-7041cac0-9s95:13548674321373:52699").toString("base64"),
    );
    expect(Buffer.from(execId(node, 7n, 3), "base64").toString()).toBe("node-a:7:3");
    expect(Buffer.from(rootParentExecId(node), "base64").toString()).toBe("node-a:1:0");
  });

  test("exec_id equals Buffer's base64 of the UTF-8 text for every length, node name and number size", () => {
    const nodes = ["", "n", "ab", "abc", "node-a", "nöde \"x\"", "日本", "x".repeat(300)];
    const kt = [0n, 1n, 9n, 10n, 999_999_999n, 13548674321373n, BigInt(Number.MAX_SAFE_INTEGER), BigInt(Number.MAX_SAFE_INTEGER) + 1n, 2n ** 64n - 1n];
    const pids = [0, 1, 9, 10, 52699, 4194304, 2 ** 32 - 1];
    for (const n of nodes) for (const k of kt) for (const p of pids) {
      const want = Buffer.from(`${n}:${k}:${p}`).toString("base64");
      if (execId(n, k, p) !== want) expect({ n, k: String(k), p, id: execId(n, k, p) }).toEqual({ n, k: String(k), p, id: want });
    }
  });

  test("RFC 3339 with 0, 3, 6 or 9 fractional digits", () => {
    const s = BigInt(Date.UTC(2023, 9, 6, 22, 3, 57)) * 1_000_000n;
    expect(rfc3339Nano(s)).toBe("2023-10-06T22:03:57Z");
    expect(rfc3339Nano(s + 700_000_000n)).toBe("2023-10-06T22:03:57.700Z");
    expect(rfc3339Nano(s + 700_327_000n)).toBe("2023-10-06T22:03:57.700327Z");
    expect(rfc3339Nano(s + 700_327_580n)).toBe("2023-10-06T22:03:57.700327580Z");
    expect(rfc3339Nano(s + 5n)).toBe("2023-10-06T22:03:57.000000005Z");
    expect(rfc3339Nano(0n)).toBe("1970-01-01T00:00:00Z");
    expect(rfc3339Nano(-1n)).toBe("1969-12-31T23:59:59.999999999Z");
  });

  test("BootClock.wall equals rfc3339Nano(toWall()) on the Number path and past it", () => {
    for (const off of [BigInt(Date.UTC(2026, 11, 3)) * 1_000_000n + 123_456_789n, 1_000_000_000n, 999_999_999n, -5n]) {
      const c = new BootClock(off);
      let x = 7;
      for (let i = 0; i < 5000; i++) {
        x = (x * 1103515245 + 12345) >>> 0;
        const b = i % 500 === 0 ? BigInt(Number.MAX_SAFE_INTEGER) - BigInt(x) : BigInt(x) * BigInt(1 + (i % 977)) * 1000n + BigInt(i % 3);
        if (c.wall(b) !== rfc3339Nano(c.toWall(b))) expect({ off: String(off), b: String(b), got: c.wall(b) }).toEqual({ off: String(off), b: String(b), got: rfc3339Nano(c.toWall(b)) });
      }
    }
  });

  test("RFC 3339 of any time equals the Date-based reference, in and across cached seconds", () => {
    const ref = (ns: bigint): string => {
      const sec = ns / 1_000_000_000n - (ns % 1_000_000_000n < 0n ? 1n : 0n);
      const nanos = Number(ns - sec * 1_000_000_000n);
      const base = new Date(Number(sec) * 1000).toISOString().slice(0, 19);
      if (nanos === 0) return `${base}Z`;
      let f = String(nanos).padStart(9, "0");
      while (f.length > 3 && f.endsWith("000")) f = f.slice(0, -3);
      return `${base}.${f}Z`;
    };
    let x = 0x2545f491;
    const next = (): number => ((x = (x * 1103515245 + 12345) >>> 0), x);
    let t = BigInt(Date.UTC(2026, 11, 3)) * 1_000_000n;
    for (let i = 0; i < 20000; i++) {
      const kind = next() % 4;
      t += kind === 0 ? BigInt(next()) * 1000n : kind === 1 ? BigInt(next() % 1000) * 1_000_000n : kind === 2 ? BigInt(next() % 3) : -BigInt(next() % 2_000_000_000);
      if (rfc3339Nano(t) !== ref(t)) expect({ t: String(t), got: rfc3339Nano(t) }).toEqual({ t: String(t), got: ref(t) });
    }
  });

  test("flags words in bit order", () => {
    expect(flagsString(ProcessFlag.clone | ProcessFlag.execve | ProcessFlag.rootcwd)).toBe("execve rootcwd clone");
    expect(flagsString(ProcessFlag.procFS)).toBe("procFS");
    expect(flagsString(0)).toBe("");
    expect(flagsString(ProcessFlag.truncFilename | ProcessFlag.truncArgs)).toBe("truncArgs truncFilename");
  });

  test("arguments straight from the argv block equal splitting and joining it", () => {
    const parts = ["", "a", " ", "b c", "\0", "é", "x\ty", '"q"', "  "];
    let x = 99;
    const next = (): number => ((x = (x * 1103515245 + 12345) >>> 0), x);
    for (let i = 0; i < 20000; i++) {
      let block = "";
      for (let k = next() % 7; k > 0; k--) block += parts[next() % parts.length];
      if (argumentsOfBlock(block) !== joinArguments(splitArgv(block), 1)) expect({ block, got: argumentsOfBlock(block) }).toEqual({ block, got: joinArguments(splitArgv(block), 1) });
    }
  });

  test("arguments: argv[1..], spaces quoted", () => {
    expect(joinArguments(splitArgv("/bin/true\0a\0b c\0").slice(1))).toBe('a "b c"');
    expect(joinArguments([])).toBe("");
    expect(splitArgv("")).toEqual([]);
  });

  test("exit codes and signals", () => {
    expect(decodeExitCode(9)).toEqual({ signal: "SIGKILL", status: 0 });
    expect(decodeExitCode(3 << 8)).toEqual({ signal: undefined, status: 3 });
    expect(decodeExitCode(0x8b)).toEqual({ signal: "SIGSEGV", status: 0 }); // core dumped bit
    expect(signalName(15)).toBe("SIGTERM");
    expect(signalName(0)).toBeUndefined();
  });

  test("capability names use Tetragon's spelling", () => {
    expect(capabilityNames((1n << 0n) | (1n << 1n) | (1n << 21n))).toEqual(["CAP_CHOWN", "DAC_OVERRIDE", "CAP_SYS_ADMIN"]);
    expect(capabilityNames(0n)).toEqual([]);
  });

  test("process_exec golden line", () => {
    const parent = proc({
      execId: execId(node, 500n, 41),
      pid: 41,
      tid: 41,
      ktime: 500n,
      binary: "/bin/sh",
      arguments: "-c \"exec /usr/bin/true a 'b c'\"",
      flags: ProcessFlag.execve | ProcessFlag.clone,
      cwd: "/tmp",
      parentExecId: execId(node, 100n, 1),
      ppid: 1,
      file: { ino: 77n, nlink: 1 },
    });
    const p = proc({ file: { ino: 123n, nlink: 1 } });
    const line = JSON.stringify(
      encodeEvent({ type: "process_exec", time: 1_000_000_200n, process: p, parent }, { nodeName: node, clock }),
    );
    expect(line).toBe(
      '{"process_exec":{"process":{"exec_id":"' +
        execId(node, 1_000_000_123n, 42) +
        '","pid":42,"uid":0,"cwd":"/","binary":"/usr/bin/true","arguments":"a \\"b c\\"","flags":"execve rootcwd clone",' +
        '"start_time":"2024-04-14T02:00:01.000000123Z","auid":4294967295,"parent_exec_id":"' +
        execId(node, 500n, 41) +
        '","tid":42},"parent":{"exec_id":"' +
        execId(node, 500n, 41) +
        '","pid":41,"uid":0,"cwd":"/tmp","binary":"/bin/sh","arguments":"-c \\"exec /usr/bin/true a \'b c\'\\"",' +
        '"flags":"execve clone","start_time":"2024-04-14T02:00:00.000000500Z","auid":4294967295,"parent_exec_id":"' +
        execId(node, 100n, 1) +
        '","tid":41}},"node_name":"node-a","time":"2024-04-14T02:00:01.000000200Z"}',
    );
  });

  test("process_exit: signal, status omitted when 0, exit time; empty strings omitted", () => {
    const p = proc({ cwd: "", arguments: "", flags: 0 });
    const killed = encodeEvent(
      { type: "process_exit", time: 2_000_000_000n, process: p, parent: undefined, signal: "SIGKILL", status: 0 },
      { nodeName: node, clock },
    );
    expect(JSON.stringify(killed)).toBe(
      '{"process_exit":{"process":{"exec_id":"' +
        execId(node, 1_000_000_123n, 42) +
        '","pid":42,"uid":0,"binary":"/usr/bin/true","start_time":"2024-04-14T02:00:01.000000123Z","auid":4294967295,' +
        '"parent_exec_id":"' +
        execId(node, 500n, 41) +
        '","tid":42},"signal":"SIGKILL","time":"2024-04-14T02:00:02Z"},"node_name":"node-a","time":"2024-04-14T02:00:02Z"}',
    );
    const failed = encodeEvent(
      { type: "process_exit", time: 2_000_000_000n, process: p, parent: undefined, signal: undefined, status: 3 },
      { nodeName: node, clock },
    ) as { process_exit: Record<string, unknown> };
    expect(failed.process_exit.status).toBe(3);
    expect("signal" in failed.process_exit).toBe(false);
    const ok = encodeEvent(
      { type: "process_exit", time: 2_000_000_000n, process: p, parent: undefined, signal: undefined, status: 0 },
      { nodeName: node, clock },
    ) as { process_exit: Record<string, unknown> };
    expect("status" in ok.process_exit).toBe(false);
  });

  test("unlinked binary: binary_properties with the inode number as a string", () => {
    const p = proc({ binary: "/memfd:x (deleted)", file: { ino: 18446744073709551615n, nlink: 0 } });
    const j = encodeEvent({ type: "process_exec", time: 1n, process: p, parent: undefined }, { nodeName: node, clock }) as {
      process_exec: { process: Record<string, unknown> };
    };
    expect(j.process_exec.process.binary_properties).toEqual({
      file: { inode: { number: "18446744073709551615", links: 0 }, path: "/memfd:x (deleted)" },
    });
  });

  test("cred and ns blocks only when enabled; is_host against pid 1", () => {
    const creds = { ...emptyCreds(), uid: 1000, euid: 1000, gid: 1000, egid: 1000, capEffective: 1n << 21n, ns: [11, 0, 13] };
    const p = proc({ creds });
    const off = encodeEvent({ type: "process_exec", time: 1n, process: p, parent: undefined }, { nodeName: node, clock }) as {
      process_exec: { process: Record<string, unknown> };
    };
    expect(off.process_exec.process.cap).toBeUndefined();
    expect(off.process_exec.process.ns).toBeUndefined();
    expect(off.process_exec.process.uid).toBe(1000);
    const on = encodeEvent(
      { type: "process_exec", time: 1n, process: p, parent: undefined },
      { nodeName: node, clock, processCred: true, processNs: true, hostNs: [11, 0, 99] },
    ) as { process_exec: { process: Record<string, unknown> } };
    expect(on.process_exec.process.cap).toEqual({ effective: ["CAP_SYS_ADMIN"] });
    expect(on.process_exec.process.ns).toEqual({ uts: { inum: 11, is_host: true }, mnt: { inum: 13 } });
    expect(Object.keys(on.process_exec.process)).toEqual([
      "exec_id", "pid", "uid", "cwd", "binary", "arguments", "flags", "start_time", "auid", "parent_exec_id",
      "cap", "ns", "tid", "process_credentials",
    ]);
  });
});

test("exec_id of a non-Latin-1 node name (é is Latin-1, not ASCII) is base64 of its UTF-8 bytes", () => {
  expect(Buffer.from(execId("nœud-ü-é", 5n, 1), "base64").toString("utf8")).toBe("nœud-ü-é:5:1");
});
