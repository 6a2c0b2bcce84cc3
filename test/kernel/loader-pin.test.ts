// Pinning on bpffs: objects pinned by a process that has exited are still there, reopened by
// path, and gone once unpinned. A pinned link keeps its program attached after its maker exits.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { kernelTest } from "../lib/host.ts";
import { readCounter, syscalls, u32, getU64 } from "../lib/loader-progs.ts";
import { LinkType } from "../../src/bpf/constants.ts";
import { Link } from "../../src/bpf/link.ts";
import { BpfMap, MapType } from "../../src/bpf/map.ts";
import { ensureBpffs, getPinned, isBpffs, pinObject, unpin } from "../../src/bpf/pin.ts";
import { SyscallError } from "../../src/bpf/sys.ts";

const ROOT = resolve(import.meta.dir, "../..");
const DIR = `/sys/fs/bpf/ward-test-pin-${process.pid}`;

beforeAll(() => {
  if (process.getuid?.() === 0) ensureBpffs();
});
afterAll(() => {
  rmSync(DIR, { recursive: true, force: true });
});

/** Run a TypeScript snippet in a separate bun process; resolves to its exit code and output. */
async function runChild(code: string): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn([process.execPath, "-e", code], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, exit] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code: exit, out, err };
}

function errnoOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    if (e instanceof SyscallError) return e.code;
    throw e;
  }
  return undefined;
}

describe("bpffs", () => {
  kernelTest("bpffs is recognised by its statfs magic", () => {
    ensureBpffs();
    expect(isBpffs("/sys/fs/bpf")).toBe(true);
    expect(isBpffs("/tmp")).toBe(false);
    expect(isBpffs("/proc")).toBe(false);
  });

  kernelTest("ensureBpffs mounts bpffs where there is none, and pins work there", () => {
    const dir = `/tmp/ward-test-bpffs-${process.pid}`;
    try {
      expect(isBpffs("/tmp")).toBe(false);
      ensureBpffs(dir);
      expect(isBpffs(dir)).toBe(true);
      ensureBpffs(dir); // already there: nothing to do
      const m = BpfMap.create({ name: "t_fresh_fs", type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
      m.pin(join(dir, "sub", "m")); // parent directories are created on bpffs
      m.close();
      const again = BpfMap.fromPin(join(dir, "sub", "m"));
      expect(again.spec.name).toBe("t_fresh_fs");
      again.close();
    } finally {
      spawnSync("umount", [dir]);
      rmSync(dir, { recursive: true, force: true });
    }
    expect(existsSync(dir)).toBe(false);
  });

  kernelTest("pinning outside bpffs is EPERM, over an existing pin EEXIST; unpin of nothing is fine", () => {
    const m = BpfMap.create({ name: "t_pin_err", type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    const path = join(DIR, "dup");
    try {
      expect(errnoOf(() => pinObject(m.fd, `/tmp/ward-pin-${process.pid}`))).toBe("EPERM");
      m.pin(path);
      expect(errnoOf(() => m.pin(path))).toBe("EEXIST");
      expect(errnoOf(() => getPinned(join(DIR, "missing")))).toBe("ENOENT");
    } finally {
      unpin(path);
      unpin(path);
      m.close();
    }
    expect(existsSync(path)).toBe(false);
  });
});

describe("pins outlive their maker", () => {
  kernelTest("a map pinned by a child process survives it, reopens by path, and unpins", async () => {
    const path = join(DIR, "child_map");
    const r = await runChild(`
      import { BpfMap, MapType } from "./src/bpf/map.ts";
      const m = BpfMap.create({ name: "t_child_map", type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 8 });
      const v = new Uint8Array(8); new DataView(v.buffer).setBigUint64(0, 0xabcdefn, true);
      m.update(new Uint8Array([7, 0, 0, 0]), v);
      m.pin(${JSON.stringify(path)});
      console.log("pinned", m.info().id);
    `);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const childId = Number(r.out.trim().split(" ")[1]);
    expect(existsSync(path)).toBe(true);
    const m = BpfMap.fromPin(path);
    try {
      expect(m.info().id).toBe(childId);
      expect(m.spec).toMatchObject({ name: "t_child_map", type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 8 });
      expect(getU64(m.lookup(u32(7))!)).toBe(0xabcdefn);
      unpin(path);
      expect(existsSync(path)).toBe(false);
      // Our fd still holds the map after the pin is gone.
      expect(getU64(m.lookup(u32(7))!)).toBe(0xabcdefn);
    } finally {
      m.close();
    }
  });

  kernelTest("a link pinned by a child keeps counting this process's syscalls until it is unpinned", async () => {
    const linkPath = join(DIR, "child_link");
    const mapPath = join(DIR, "child_counter");
    const r = await runChild(`
      import { counterInsns, counterMap } from "./test/lib/loader-progs.ts";
      import { BpfProgram, ProgType } from "./src/bpf/program.ts";
      import { attachRawTracepoint } from "./src/bpf/link.ts";
      const counter = counterMap("t_pin_counter");
      const prog = BpfProgram.load({ name: "t_pin_prog", type: ProgType.RAW_TRACEPOINT, insns: counterInsns(counter.fd.raw, ${process.pid}), license: "GPL" });
      const link = attachRawTracepoint(prog, "sys_enter");
      counter.pin(${JSON.stringify(mapPath)});
      link.pin(${JSON.stringify(linkPath)});
      console.log("attached");
    `);
    expect(r.err).toBe("");
    expect(r.code).toBe(0);
    const counter = BpfMap.fromPin(mapPath);
    const link = Link.fromPin(linkPath);
    try {
      expect(link.info().type).toBe(LinkType.RAW_TRACEPOINT);
      const before = readCounter(counter);
      syscalls(200);
      expect(readCounter(counter) - before).toBeGreaterThanOrEqual(200n);
      // Removing the pin and our fd ends the attachment.
      unpin(linkPath);
      link.close();
      const after = readCounter(counter);
      syscalls(200);
      expect(readCounter(counter)).toBe(after);
    } finally {
      link.close();
      unpin(linkPath);
      unpin(mapPath);
      counter.close();
    }
  });
});
