// The loader's fixtures doing their job in the kernel, through the public collection API:
// exact counting of a child's openat calls, a CO-RE read through a deliberately wrong
// header, ring buffer records intact and in order (and counted loss on overflow), a
// cgroup connect4 hook really denying a connection, and a map pinned by one process read
// by another.
import { describe, expect } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import {
  BpfMap,
  type Collection,
  type Link,
  RingBufReader,
  attachProgram,
  ensureBpffs,
  loadCollectionSpec,
  newCollection,
  unpin,
} from "../../src/bpf/index.ts";
import { TestCgroup } from "../lib/cgroup.ts";
import { spawnScript } from "../lib/child.ts";
import { kernelTest } from "../lib/host.ts";

const root = join(import.meta.dir, "..", "..");
const fixture = (name: string): string => join(root, "bpf", "obj", "testdata", `${name}.o`);
const u32 = (n: number): Uint8Array => new Uint8Array(new Uint32Array([n]).buffer);
const u64At = (b: Uint8Array | undefined, off = 0): bigint => {
  if (b === undefined) throw new Error("map lookup found no value");
  return new DataView(b.buffer, b.byteOffset, b.byteLength).getBigUint64(off, true);
};

/** sh loop doing exactly n openat calls (dash opens /dev/null once per `: < /dev/null`). */
const openLoop = (n: number): string => `i=0; while [ $i -lt ${n} ]; do : < /dev/null; i=$((i+1)); done`;

describe("count_openat.o", () => {
  kernelTest("counts exactly the openat calls the target child makes", async () => {
    const n = 25;
    // The child starts, reports ready (its own startup opens are done), and waits; the
    // program is loaded for its pid and attached; then it does n opens and reports done.
    const child = spawnScript(`echo ready; read go; ${openLoop(n)}; echo done; read end`);
    // A second busy process opening files at the same time must not be counted.
    const other = spawnScript(`echo ready; read go; ${openLoop(n)}; echo done; read end`);
    let coll: Collection | undefined;
    let link: Link | undefined;
    try {
      await child.expectLine("ready");
      await other.expectLine("ready");
      const spec = loadCollectionSpec(fixture("count_openat"));
      spec.variables.target_tgid!.set(child.pid);
      coll = newCollection(spec);
      link = attachProgram(coll.programs.count_openat!, spec.programs.count_openat!);
      expect(u64At(coll.maps.openat_count!.lookup(u32(0)))).toBe(0n);
      other.send("go");
      child.send("go");
      await child.expectLine("done");
      await other.expectLine("done");
      expect(u64At(coll.maps.openat_count!.lookup(u32(0)))).toBe(BigInt(n));
    } finally {
      link?.close();
      coll?.close();
      child.kill();
      other.kill();
      await Promise.all([child.finish(), other.finish()]);
    }
  });
});

describe("core_moved.o", () => {
  kernelTest("reads current->tgid and ->pid at the running kernel's offsets, not the header's", async () => {
    const child = spawnScript(`echo ready; read go; echo done; read end`);
    let coll: Collection | undefined;
    let link: Link | undefined;
    try {
      await child.expectLine("ready");
      const spec = loadCollectionSpec(fixture("core_moved"));
      spec.variables.target_tgid!.set(child.pid);
      coll = newCollection(spec);
      // The header puts tgid at 0 and pid at 4; the kernel's task_struct has them far in.
      const fixups = coll.coreFixups.read_tgid ?? [];
      expect(fixups.length).toBeGreaterThanOrEqual(2);
      link = attachProgram(coll.programs.read_tgid!, spec.programs.read_tgid!);
      child.send("go");
      await child.expectLine("done");
      const seen = (i: number) => u64At(coll!.maps.seen!.lookup(u32(i)));
      expect(seen(2)).toBe(BigInt(child.pid)); // helper tgid: the filter matched
      expect(seen(0)).toBe(BigInt(child.pid)); // CO-RE tgid equals the real tgid
      expect(seen(1)).toBe(BigInt(child.pid)); // single-threaded: pid == tgid
      expect(seen(3)).toBe(BigInt(child.pid));
      expect(seen(4)).toBe(1n); // field-exists relocation
      expect(seen(5)).toBe(BigInt(process.pid)); // chained read: the sh's parent is this runner
    } finally {
      link?.close();
      coll?.close();
      child.kill();
      await child.finish();
    }
  });
});

interface RingRun {
  records: Array<{ seq: bigint; tgid: number; len: number; payloadOk: boolean }>;
  sent: bigint;
  lost: bigint;
}

/**
 * Loads ringbuf.o for a child that makes `calls` openat calls (the trigger syscall here),
 * each emitting `perCall` records, and drains the ring only after the child is done, so a
 * burst larger than the ring must overflow.
 */
async function ringRun(calls: number, perCall: number): Promise<RingRun> {
  const child = spawnScript(`echo ready; read go; ${openLoop(calls)}; echo done; read end`);
  let coll: Collection | undefined;
  let link: Link | undefined;
  let reader: RingBufReader | undefined;
  try {
    await child.expectLine("ready");
    const spec = loadCollectionSpec(fixture("ringbuf"));
    spec.variables.target_tgid!.set(child.pid);
    spec.variables.trigger_syscall!.set(257); // openat on x86_64
    spec.variables.records_per_call!.set(perCall);
    coll = newCollection(spec);
    reader = new RingBufReader(coll.maps.events!);
    link = attachProgram(coll.programs.emit!, spec.programs.emit!);
    child.send("go");
    await child.expectLine("done");
    link.close();
    link = undefined;
    const records: RingRun["records"] = [];
    reader.drain((rec) => {
      const seq = rec.getBigUint64(0, true);
      const len = rec.getUint32(12, true);
      let payloadOk = rec.byteLength >= 16 + len;
      for (let i = 0; payloadOk && i < len; i++) payloadOk = rec.getUint8(16 + i) === Number((seq + BigInt(i)) & 0xffn);
      records.push({ seq, tgid: rec.getUint32(8, true), len, payloadOk });
    });
    const stats = coll.maps.stats!;
    return { records, sent: u64At(stats.lookup(u32(0))), lost: u64At(stats.lookup(u32(1))) };
  } finally {
    reader?.close();
    link?.close();
    coll?.close();
    child.kill();
    await child.finish();
  }
}

describe("ringbuf.o", () => {
  kernelTest("records come back intact and in order", async () => {
    const calls = 20;
    const perCall = 2;
    const r = await ringRun(calls, perCall);
    expect(r.sent).toBe(BigInt(calls * perCall));
    expect(r.lost).toBe(0n);
    expect(r.records.length).toBe(calls * perCall);
    r.records.forEach((rec, i) => {
      expect(rec.seq).toBe(BigInt(i));
      expect(rec.len).toBe(48);
      expect(rec.payloadOk).toBe(true);
    });
    expect(new Set(r.records.map((x) => x.tgid)).size).toBe(1);
  });

  kernelTest("a burst bigger than the ring is counted as loss: received + lost == sent", async () => {
    // 4096-byte ring, 72 bytes a record with its header: about 56 fit; 3 x 200 do not.
    const r = await ringRun(3, 200);
    expect(r.sent).toBe(600n);
    expect(r.lost).toBeGreaterThan(0n);
    expect(BigInt(r.records.length) + r.lost).toBe(r.sent);
    // What arrived is still intact and in increasing order (gaps are the lost ones).
    for (let i = 1; i < r.records.length; i++) expect(r.records[i]!.seq > r.records[i - 1]!.seq).toBe(true);
    expect(r.records.every((x) => x.payloadOk)).toBe(true);
  });
});

describe("connect4.o", () => {
  kernelTest("denies the port inside the test cgroup with EPERM, allows it outside", async () => {
    const server = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {}, open(s) { s.end(); } } });
    const port = server.port;
    const other = Bun.listen({ hostname: "127.0.0.1", port: 0, socket: { data() {}, open(s) { s.end(); } } });
    const cg = new TestCgroup("connect4");
    let coll: Collection | undefined;
    let link: Link | undefined;
    // connect() from busybox nc (build/system.ts installs busybox-static): "ok" when it
    // connected, else the strerror text it prints. Spawned asynchronously because the
    // listener lives in this process's event loop.
    const connectFrom = async (inside: boolean, to = port): Promise<string> => {
      const nc = `busybox nc -w 2 127.0.0.1 ${to} </dev/null && echo ok`;
      const cmd = `${inside ? `echo $$ > ${cg.path}/cgroup.procs && ` : ""}${nc}`;
      const p = Bun.spawn(["sh", "-c", cmd], { stdout: "pipe", stderr: "pipe" });
      const [out, err] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
      return out.trim() === "ok" ? "ok" : err.trim();
    };
    try {
      const spec = loadCollectionSpec(fixture("connect4"));
      spec.variables.denied_port!.set(port);
      coll = newCollection(spec);
      // Before attaching, both connect.
      expect(await connectFrom(true)).toBe("ok");
      link = attachProgram(coll.programs.deny_port!, spec.programs.deny_port!, { cgroup: cg.path });
      expect(await connectFrom(true)).toContain("Operation not permitted");
      expect(await connectFrom(false)).toBe("ok");
      expect(await connectFrom(true, other.port)).toBe("ok"); // only the configured port is denied
      link.close();
      link = undefined;
      // Detached: allowed again.
      expect(await connectFrom(true)).toBe("ok");
    } finally {
      link?.close();
      coll?.close();
      server.stop(true);
      other.stop(true);
      cg.remove();
    }
  });
});

describe("pinning", () => {
  kernelTest("a map pinned by a child process that exited is reopened and read, then unpinned", () => {
    ensureBpffs();
    const dir = mkdtempSync("/sys/fs/bpf/ward-test-pin-");
    const pin = join(dir, "counter");
    try {
      // The child creates a map, writes 0x1234 at key 7, pins it, and exits (its fds die).
      const script = `
        import { BpfMap, MapType } from ${JSON.stringify(join(root, "src", "bpf", "index.ts"))};
        const m = BpfMap.create({ name: "pin_test", type: MapType.HASH, keySize: 4, valueSize: 8, maxEntries: 4 });
        m.update(new Uint8Array(new Uint32Array([7]).buffer), new Uint8Array(new BigUint64Array([0x1234n]).buffer));
        m.pin(${JSON.stringify(pin)});
        m.close();
      `;
      const r = spawnSync(process.execPath, ["-e", script], { encoding: "utf8", cwd: "/tmp" });
      expect(r.stderr).toBe("");
      expect(r.status).toBe(0);
      expect(existsSync(pin)).toBe(true);
      const m = BpfMap.fromPin(pin);
      try {
        expect(m.spec.name).toBe("pin_test");
        expect(u64At(m.lookup(u32(7)))).toBe(0x1234n);
        expect(m.lookup(u32(8))).toBeUndefined();
      } finally {
        m.close();
      }
      unpin(pin);
      expect(existsSync(pin)).toBe(false);
      expect(() => BpfMap.fromPin(pin)).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
