// Ring buffer end to end: a hand-assembled raw tracepoint program bpf_ringbuf_output()s one
// record per syscall of a chosen process; the reader must return them intact and in order,
// count what did not fit (the program counts failed outputs), and wait without spinning.
import { describe, expect } from "bun:test";
import { kernelTest } from "../lib/host.ts";
import { spawnScript } from "../lib/child.ts";
import { syscalls } from "../lib/loader-progs.ts";
import { AluOp, Asm, JmpOp, Reg } from "../../src/bpf/asm.ts";
import { Helper } from "../../src/bpf/constants.ts";
import { attachRawTracepoint, type Link } from "../../src/bpf/link.ts";
import { BpfMap, MapType } from "../../src/bpf/map.ts";
import { BpfProgram, ProgType } from "../../src/bpf/program.ts";
import { RingBufReader } from "../../src/bpf/ringbuf.ts";

const MAGIC = 0xfeedfacecafebeefn;
const GETPPID = process.arch === "arm64" ? 173n : 110n;

interface Rig {
  rb: BpfMap;
  stats: BpfMap;
  prog: BpfProgram;
  link: Link;
  reader: RingBufReader;
  close(): void;
  /** [attempted outputs, failed outputs] from the program's own counters. */
  counts(): [bigint, bigint];
}

/**
 * On sys_enter of the matching task: seq = fetch_add(stats.attempts, 1); record {MAGIC, seq,
 * syscall nr} into the ring; if bpf_ringbuf_output fails, stats.lost += 1.
 * match "thread" compares the whole pid_tgid (one thread: strictly ordered), "process" the tgid.
 */
function rig(size: number, pid: number, match: "thread" | "process", payload: 24 | 40 = 24): Rig {
  const rb = BpfMap.create({ name: "t_rb", type: MapType.RINGBUF, keySize: 0, valueSize: 0, maxEntries: size });
  const stats = BpfMap.create({ name: "t_rb_stats", type: MapType.ARRAY, keySize: 4, valueSize: 16, maxEntries: 1 });
  const a = new Asm().mov64Reg(Reg.R6, Reg.R1).call(Helper.get_current_pid_tgid);
  if (match === "thread") {
    a.ldImm64(Reg.R1, (BigInt(pid) << 32n) | BigInt(pid)).jmpReg(JmpOp.JNE, Reg.R0, Reg.R1, "out");
  } else {
    a.alu64Imm(AluOp.RSH, Reg.R0, 32).jmpImm(JmpOp.JNE, Reg.R0, pid, "out");
  }
  // 24 bytes: {MAGIC, seq, nr}; 40 bytes: {MAGIC, seq, nr, MAGIC, MAGIC} (48-byte slots, which
  // do not divide the ring's size, so records wrap its end).
  const base = payload === 24 ? -32 : -48;
  a.ldx("dw", Reg.R7, Reg.R6, 8) // raw sys_enter args[1]: the syscall number
    .st("w", Reg.R10, -4, 0)
    .ldMapFd(Reg.R1, stats.fd.raw)
    .mov64Reg(Reg.R2, Reg.R10)
    .alu64Imm(AluOp.ADD, Reg.R2, -4)
    .call(Helper.map_lookup_elem)
    .jmpImm(JmpOp.JEQ, Reg.R0, 0, "out")
    .mov64Reg(Reg.R8, Reg.R0)
    .mov64Imm(Reg.R1, 1)
    .atomicFetchAdd("dw", Reg.R8, 0, Reg.R1)
    .ldImm64(Reg.R2, MAGIC)
    .stx("dw", Reg.R10, base, Reg.R2)
    .stx("dw", Reg.R10, base + 8, Reg.R1)
    .stx("dw", Reg.R10, base + 16, Reg.R7);
  if (payload === 40) a.stx("dw", Reg.R10, base + 24, Reg.R2).stx("dw", Reg.R10, base + 32, Reg.R2);
  a.ldMapFd(Reg.R1, rb.fd.raw)
    .mov64Reg(Reg.R2, Reg.R10)
    .alu64Imm(AluOp.ADD, Reg.R2, base)
    .mov64Imm(Reg.R3, payload)
    .mov64Imm(Reg.R4, 0)
    .call(Helper.ringbuf_output)
    .jmpImm(JmpOp.JEQ, Reg.R0, 0, "out")
    .mov64Imm(Reg.R1, 1)
    .atomicAdd("dw", Reg.R8, 8, Reg.R1)
    .label("out")
    .ret(0);
  const prog = BpfProgram.load({ name: "t_rb_out", type: ProgType.RAW_TRACEPOINT, insns: a.bytes(), license: "GPL" });
  const reader = new RingBufReader(rb);
  const link = attachRawTracepoint(prog, "sys_enter");
  return {
    rb,
    stats,
    prog,
    link,
    reader,
    close() {
      link.close();
      reader.close();
      prog.close();
      stats.close();
      rb.close();
    },
    counts() {
      const v = stats.lookup(new Uint8Array(4))!;
      const dv = new DataView(v.buffer);
      return [dv.getBigUint64(0, true), dv.getBigUint64(8, true)];
    },
  };
}

interface Rec {
  magic: bigint;
  seq: bigint;
  nr: bigint;
  len: number;
}

function drainAll(r: RingBufReader): Rec[] {
  const out: Rec[] = [];
  r.drain((d) => out.push({ len: d.byteLength, magic: d.getBigUint64(0, true), seq: d.getBigUint64(8, true), nr: d.getBigUint64(16, true) }));
  return out;
}

describe("ring buffer reader", () => {
  kernelTest("records come back intact and in order", () => {
    const r = rig(64 * 1024, process.pid, "thread");
    try {
      syscalls(200);
      r.link.close(); // freeze the producer so the counts below are final
      const recs = drainAll(r.reader);
      const [attempts, lost] = r.counts();
      expect(lost).toBe(0n);
      expect(BigInt(recs.length)).toBe(attempts);
      expect(recs.length).toBeGreaterThanOrEqual(200);
      for (const [i, rec] of recs.entries()) {
        expect(rec.len).toBe(24);
        expect(rec.magic).toBe(MAGIC);
        expect(rec.seq).toBe(BigInt(i));
      }
      expect(recs.filter((x) => x.nr === GETPPID).length).toBeGreaterThanOrEqual(200);
      // Drained means drained: nothing is delivered twice.
      expect(drainAll(r.reader)).toHaveLength(0);
      expect(r.reader.available()).toBe(false);
    } finally {
      r.close();
    }
  });

  kernelTest("records that wrap the end of the (once mapped) ring come back whole, in order", () => {
    const size = 16 * 1024;
    const r = rig(size, process.pid, "thread", 40);
    try {
      const recs: { len: number; magic: bigint; seq: bigint; tail: [bigint, bigint] }[] = [];
      const drain = (): number =>
        r.reader.drain((d) =>
          recs.push({ len: d.byteLength, magic: d.getBigUint64(0, true), seq: d.getBigUint64(8, true), tail: [d.getBigUint64(24, true), d.getBigUint64(32, true)] }),
        );
      // 48-byte slots from position 0: the stream crosses the ring's end at k * 16384, which
      // is inside a slot unless k is a multiple of 3, so each crossing but every third wraps a
      // record. Draining between bursts keeps the ring from filling.
      while (recs.length * 48 < 7 * size) {
        syscalls(100);
        drain();
      }
      r.link.close();
      drain();
      const [attempts, lost] = r.counts();
      expect(lost).toBe(0n);
      expect(BigInt(recs.length)).toBe(attempts);
      for (const [i, rec] of recs.entries()) {
        if (rec.len !== 40 || rec.magic !== MAGIC || rec.seq !== BigInt(i) || rec.tail[0] !== MAGIC || rec.tail[1] !== MAGIC) {
          expect({ i, ...rec }).toEqual({ i, len: 40, magic: MAGIC, seq: BigInt(i), tail: [MAGIC, MAGIC] });
        }
      }
    } finally {
      r.close();
    }
  });

  kernelTest("a burst larger than the buffer shows up as counted loss, never silent loss", () => {
    const r = rig(4096, process.pid, "thread"); // 4 KiB holds about 128 records of 32 bytes
    try {
      syscalls(1000);
      r.link.close();
      const recs = drainAll(r.reader);
      const [attempts, lost] = r.counts();
      expect(attempts).toBeGreaterThanOrEqual(1000n);
      expect(lost).toBeGreaterThan(0n);
      expect(recs.length).toBeGreaterThan(0);
      expect(BigInt(recs.length) + lost).toBe(attempts);
      // The buffer filled from empty, so what got in is the head of the burst, in order.
      recs.forEach((rec, i) => expect(rec.seq).toBe(BigInt(i)));
    } finally {
      r.close();
    }
  });

  kernelTest("a long drain stays correct once the loop is JIT-hot (headers live on read-only pages)", () => {
    const r = rig(256 * 1024, process.pid, "thread");
    try {
      let delivered = 0;
      let next = 0n;
      let inOrder = true;
      for (let round = 0; round < 100; round++) {
        syscalls(2000);
        delivered += r.reader.drain((d) => {
          const seq = d.getBigUint64(8, true);
          if (seq < next) inOrder = false;
          next = seq + 1n;
        });
      }
      r.link.close();
      delivered += r.reader.drain(() => {});
      const [attempts, lost] = r.counts();
      expect(attempts).toBeGreaterThanOrEqual(200_000n);
      expect(BigInt(delivered) + lost).toBe(attempts);
      expect(inOrder).toBe(true);
    } finally {
      r.close();
    }
  }, 60_000);

  kernelTest("wait() sleeps in epoll without spinning and wakes when the producer writes", async () => {
    const child = spawnScript("echo ready; read go; echo done; read end");
    await child.expectLine("ready");
    const r = rig(16 * 1024, child.pid, "process");
    try {
      // The child may still have been on its way into read(2) when the program attached: let it
      // settle there, then start from an empty ring.
      await Bun.sleep(100);
      drainAll(r.reader);
      expect(r.reader.available()).toBe(false);
      // Nothing produced: a bounded wait takes its whole timeout and burns almost no CPU.
      const cpu0 = process.cpuUsage();
      const t0 = performance.now();
      await r.reader.wait(300);
      const waited = performance.now() - t0;
      const cpu = process.cpuUsage(cpu0);
      expect(waited).toBeGreaterThanOrEqual(250);
      expect((cpu.user + cpu.system) / 1000).toBeLessThan(100);
      expect(r.reader.available()).toBe(false);

      // An unbounded wait stays pending until the child makes syscalls.
      let woke = false;
      const p = r.reader.wait().then(() => {
        woke = true;
      });
      await Bun.sleep(150);
      expect(woke).toBe(false);
      child.send("go");
      await p;
      expect(woke).toBe(true);
      expect(r.reader.ready()).toBeGreaterThan(0);
      await child.expectLine("done");
      const recs = drainAll(r.reader);
      expect(recs.length).toBeGreaterThan(0);
      expect(recs.every((x) => x.magic === MAGIC)).toBe(true);
    } finally {
      child.kill();
      await child.proc.exited;
      r.close();
    }
  });

  kernelTest("reserve/submit/discard: discarded records are skipped, the rest arrive in order", () => {
    const rb = BpfMap.create({ name: "t_rb_disc", type: MapType.RINGBUF, keySize: 0, valueSize: 0, maxEntries: 64 * 1024 });
    const stats = BpfMap.create({ name: "t_rb_dstats", type: MapType.ARRAY, keySize: 4, valueSize: 16, maxEntries: 1 });
    const pid = BigInt(process.pid);
    // seq = fetch_add(stats[0], 1); rec = reserve(16); rec = {seq, MAGIC}; odd seq -> discard, even -> submit.
    const insns = new Asm()
      .call(Helper.get_current_pid_tgid)
      .ldImm64(Reg.R1, (pid << 32n) | pid)
      .jmpReg(JmpOp.JNE, Reg.R0, Reg.R1, "out")
      .st("w", Reg.R10, -4, 0)
      .ldMapFd(Reg.R1, stats.fd.raw)
      .mov64Reg(Reg.R2, Reg.R10)
      .alu64Imm(AluOp.ADD, Reg.R2, -4)
      .call(Helper.map_lookup_elem)
      .jmpImm(JmpOp.JEQ, Reg.R0, 0, "out")
      .mov64Imm(Reg.R9, 1)
      .atomicFetchAdd("dw", Reg.R0, 0, Reg.R9)
      .ldMapFd(Reg.R1, rb.fd.raw)
      .mov64Imm(Reg.R2, 16)
      .mov64Imm(Reg.R3, 0)
      .call(Helper.ringbuf_reserve)
      .jmpImm(JmpOp.JEQ, Reg.R0, 0, "out")
      .mov64Reg(Reg.R7, Reg.R0)
      .stx("dw", Reg.R7, 0, Reg.R9)
      .ldImm64(Reg.R2, MAGIC)
      .stx("dw", Reg.R7, 8, Reg.R2)
      .mov64Reg(Reg.R1, Reg.R7)
      .mov64Imm(Reg.R2, 0)
      .mov64Reg(Reg.R3, Reg.R9)
      .alu64Imm(AluOp.AND, Reg.R3, 1)
      .jmpImm(JmpOp.JNE, Reg.R3, 0, "discard")
      .call(Helper.ringbuf_submit)
      .ja("out")
      .label("discard")
      .call(Helper.ringbuf_discard)
      .label("out")
      .ret(0)
      .bytes();
    const prog = BpfProgram.load({ name: "t_rb_disc", type: ProgType.RAW_TRACEPOINT, insns, license: "GPL" });
    const reader = new RingBufReader(rb);
    const link = attachRawTracepoint(prog, "sys_enter");
    try {
      syscalls(100);
      link.close();
      const seqs: bigint[] = [];
      reader.drain((d) => {
        expect(d.byteLength).toBe(16);
        expect(d.getBigUint64(8, true)).toBe(MAGIC);
        seqs.push(d.getBigUint64(0, true));
      });
      const attempts = new DataView(stats.lookup(new Uint8Array(4))!.buffer).getBigUint64(0, true);
      expect(attempts).toBeGreaterThanOrEqual(100n);
      expect(BigInt(seqs.length)).toBe((attempts + 1n) / 2n);
      seqs.forEach((s, i) => expect(s).toBe(BigInt(2 * i)));
      expect(reader.available()).toBe(false); // the discarded tail was consumed too
    } finally {
      link.close();
      reader.close();
      prog.close();
      stats.close();
      rb.close();
    }
  });

  kernelTest("close() releases a pending wait and the reader refuses further use", async () => {
    const rb = BpfMap.create({ name: "t_rb_close", type: MapType.RINGBUF, keySize: 0, valueSize: 0, maxEntries: 4096 });
    const reader = new RingBufReader(rb);
    try {
      const p = reader.wait();
      await Bun.sleep(50);
      reader.close();
      await p;
      expect(() => reader.drain(() => {})).toThrow(/closed ring buffer/);
      reader.close();
    } finally {
      rb.close();
    }
  });

  kernelTest("only ring buffer maps are accepted", () => {
    const m = BpfMap.create({ name: "t_not_rb", type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 });
    try {
      expect(() => new RingBufReader(m)).toThrow(/is not RINGBUF/);
    } finally {
      m.close();
    }
  });
});
