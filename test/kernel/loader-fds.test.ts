// The loader must not leak descriptors, on success or on failure paths: every map, program,
// link, perf event, epoll and eventfd it opens is closed by close() or by the failing call.
import { expect } from "bun:test";
import { leakedSince, openDescriptors } from "../lib/fds.ts";
import { kernelTest } from "../lib/host.ts";
import { counterInsns, counterMap } from "../lib/loader-progs.ts";
import { Asm, retProgram } from "../../src/bpf/asm.ts";
import { attachRawTracepoint, attachTracepoint, attachKprobe } from "../../src/bpf/link.ts";
import { BpfMap, MapType } from "../../src/bpf/map.ts";
import { BpfProgram, ProgType } from "../../src/bpf/program.ts";
import { RingBufReader } from "../../src/bpf/ringbuf.ts";

kernelTest("no descriptor leaks across create/load/attach/read and their failures", async () => {
  const round = async (): Promise<void> => {
    const counter = counterMap();
    const prog = BpfProgram.load({ name: "t_fds", type: ProgType.RAW_TRACEPOINT, insns: counterInsns(counter.fd.raw, process.pid), license: "GPL" });
    attachRawTracepoint(prog, "sys_enter").close();
    const tp = BpfProgram.load({ name: "t_fds_tp", type: ProgType.TRACEPOINT, insns: retProgram(0), license: "GPL" });
    attachTracepoint(tp, "sched", "sched_switch").close();
    attachTracepoint(tp, "sched", "sched_switch", { mode: "ioctl" }).close();
    expect(() => attachTracepoint(tp, "sched", "no_such_event")).toThrow();
    expect(() => attachKprobe(tp, "vfs_read")).toThrow();
    tp.close();
    expect(() => BpfProgram.load({ name: "t_fds_bad", type: ProgType.SOCKET_FILTER, insns: new Asm().exit().bytes(), license: "GPL" })).toThrow();
    expect(() => BpfMap.create({ name: "t_fds_bad", type: MapType.ARRAY, keySize: 8, valueSize: 4, maxEntries: 1 })).toThrow();
    const outer = BpfMap.create({ name: "t_fds_outer", type: MapType.HASH_OF_MAPS, keySize: 4, valueSize: 4, maxEntries: 1, innerMap: { name: "i", type: MapType.ARRAY, keySize: 4, valueSize: 4, maxEntries: 1 } });
    outer.close();
    const rb = BpfMap.create({ name: "t_fds_rb", type: MapType.RINGBUF, keySize: 0, valueSize: 0, maxEntries: 4096 });
    const reader = new RingBufReader(rb);
    await reader.wait(20);
    reader.close();
    rb.close();
    prog.close();
    counter.close();
  };
  await round(); // warm up: lazily created process-wide descriptors (tracefs, workers) settle here
  await Bun.sleep(50);
  const before = openDescriptors();
  for (let i = 0; i < 3; i++) await round();
  await Bun.sleep(50);
  // Compared by what each descriptor is, not by count: one an earlier test left behind and
  // that is closed meanwhile neither hides a leak nor counts as one.
  expect(leakedSince(before)).toEqual([]);
});
