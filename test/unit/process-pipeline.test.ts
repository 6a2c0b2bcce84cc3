// The pipeline from raw records to exported JSON: clone is tracked but not exported, exec and
// exit are, decode and delivery failures are counted instead of thrown.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parseElf } from "../../src/bpf/elf.ts";
import { ProcessCache, emptyCreds } from "../../src/events/process-cache.ts";
import { ProcessPipeline, type PipelineEvent } from "../../src/events/process-pipeline.ts";
import { ProcessRecordDecoder } from "../../src/events/process-record.ts";
import { enumValues } from "../../src/events/layout.ts";
import { BootClock } from "../../src/events/time.ts";

const btf = parseElf(new Uint8Array(readFileSync(join(import.meta.dir, "../../bpf/obj/process.o"))), "process").btf!;
const dec = new ProcessRecordDecoder(btf);
const ops = enumValues(btf, "ward_proc_op");

function rec(kind: "clone" | "exit", fields: Record<string, number | bigint>): DataView {
  const l = kind === "clone" ? dec.clone : dec.exit;
  const v = new DataView(new ArrayBuffer(l.size));
  v.setUint8(dec.hdr.offset("op"), ops.get(kind === "clone" ? "WARD_OP_CLONE" : "WARD_OP_EXIT")!);
  for (const [k, x] of Object.entries(fields)) {
    if (typeof x === "bigint") v.setBigUint64(l.offset(k), x, true);
    else v.setUint32(l.offset(k), x, true);
  }
  return v;
}

test("clone then exit of a never-exec'd child yields one process_exit; bad records are counted", () => {
  const out: PipelineEvent[] = [];
  const cache = new ProcessCache({ nodeName: "n" });
  cache.seed([{ pid: 5, ppid: 0, ktime: 50n, binary: "/bin/p", argv: ["p", "x"], cwd: "/", flags: 4, creds: emptyCreds() }]);
  const p = new ProcessPipeline(dec, cache, { nodeName: "n", clock: new BootClock(0n) }, (ev) => out.push(ev));
  p.handle(rec("clone", { ktime: 60n, parent_ktime: 50n, pid: 6, tid: 6, ppid: 5, flags: 0x4000 }));
  expect(out.length).toBe(0);
  p.handle(rec("exit", { ktime: 60n, pid: 6, tid: 6, ppid: 5, code: 9 }));
  expect(out.length).toBe(1);
  const ex = out[0]!.json.process_exit as { process: { binary: string; arguments: string; flags: string }; parent: { pid: number }; signal: string };
  expect(ex.process.binary).toBe("/bin/p");
  expect(ex.process.arguments).toBe("x");
  expect(ex.process.flags).toBe("clone");
  expect(ex.parent.pid).toBe(5);
  expect(ex.signal).toBe("SIGKILL");
  // Garbage and a throwing subscriber are counted, not thrown.
  p.handle(new DataView(new ArrayBuffer(4)));
  const bad = new ProcessPipeline(dec, cache, { nodeName: "n", clock: new BootClock(0n) }, () => {
    throw new Error("subscriber broke");
  });
  bad.handle(rec("exit", { ktime: 50n, pid: 5, tid: 5 }));
  expect(p.counters()).toMatchObject({ records: 3, clone: 1, exit: 1, decodeErrors: 1 });
  expect(bad.counters().deliveryErrors).toBe(1);
  expect(bad.lastError?.message).toBe("subscriber broke");
});
