// Real process sensor records, recorded on this kernel (bench/lib/process-dump.ts): the decoder
// must read back exactly what the exec storm ran (binary, argv with quotes, tabs, non-ASCII and
// invalid UTF-8, the non-ASCII cwd, exec chains on one pid), a dump must survive its file
// format, and every event the replayed records produce must serialize through the direct line
// writer to exactly JSON.stringify(encodeEvent(...)).
import { describe, expect } from "bun:test";
import { mkdtempSync, realpathSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { kernelTest } from "../lib/host.ts";
import { captureProcessDump, DumpReplayer, loadDump, recordsOf, saveDump } from "../../bench/lib/process-dump.ts";
import { loadCollectionSpec } from "../../src/bpf/collection.ts";
import { readObject } from "../../src/bpf/objects.ts";
import { ProcessCache } from "../../src/events/process-cache.ts";
import { ProcessPipeline, type PipelineEvent } from "../../src/events/process-pipeline.ts";
import { ProcessRecordDecoder, type ExecRecord } from "../../src/events/process-record.ts";
import { encodeEvent, type EncodeOptions } from "../../src/events/tetragon.ts";
import { BootClock } from "../../src/events/time.ts";

const TRUE = realpathSync("/bin/true");
const ECHO = realpathSync("/bin/echo");
const ENV = realpathSync("/usr/bin/env");
const SH = realpathSync("/bin/sh");
const N = 25;

describe("recorded process records", () => {
  kernelTest(
    "decode what the storm ran; a saved dump reads back; replayed events serialize as JSON.stringify(encodeEvent)",
    async () => {
      const dump = await captureProcessDump({ iterations: N });
      expect(dump.kernelLost).toBe(0);
      const dec = new ProcessRecordDecoder(loadCollectionSpec(readObject("process"), "process").btf!);
      const recs = recordsOf(dump.ring).map((v) => dec.decode(v));
      expect(recs.length).toBe(dump.records);
      // The sensor sees the whole host (other tests run programs too): the storm's own execs
      // are the ones in its directory, which has a fresh name.
      const inStorm = (cwd: string): boolean => cwd.startsWith(join(realpathSync(tmpdir()), "ward-dump-")) && cwd.endsWith("/prøject dir ☃");
      const execs = recs.filter((r): r is ExecRecord => r.op === "exec" && inStorm(r.cwd));

      const trues = execs.filter((r) => r.binary === TRUE && r.argv[1]?.startsWith("arg "));
      expect(trues.map((r) => r.argv)).toEqual(Array.from({ length: N }, (_, i) => [TRUE, `arg ${i}`, "--flag=value", "plain"]));
      for (const r of trues) {
        expect(r.pid).toBe(r.tid);
        expect(r.ktime).toBeGreaterThanOrEqual(dump.t0);
      }
      const echoes = execs.filter((r) => r.binary === ECHO);
      expect(echoes.length).toBe(N);
      // 0xff and 0xfe are not UTF-8: each becomes U+FFFD, as TextDecoder decodes them.
      for (const r of echoes) expect(r.argv).toEqual([ECHO, "-n", "bad\ufffd\ufffdutf8", "naïve 日本語", 'say "hi"', "tab\there"]);
      // env execs true in the same process: two exec records on one pid, env's first.
      const envs = execs.filter((r) => r.binary === ENV);
      expect(envs.length).toBe(N);
      for (const [i, e] of envs.entries()) {
        expect(e.argv).toEqual([ENV, `WARD_DUMP=${i}`, TRUE, "chained"]);
        const next = execs.find((r) => r.pid === e.pid && r.ktime > e.ktime);
        expect(next?.binary).toBe(TRUE);
        expect(next?.argv).toEqual([TRUE, "chained"]);
      }

      const dir = mkdtempSync(join(tmpdir(), "ward-dump-test-"));
      try {
        const path = join(dir, "d.bin");
        saveDump(path, dump);
        const back = loadDump(path);
        expect(back.ring).toEqual(dump.ring);
        expect({ ...back, ring: undefined }).toEqual({ ...dump, ring: undefined });
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }

      // Two rounds: the second has every recorded time moved, so all its images are new.
      const opts: EncodeOptions = { nodeName: "rec-node", clock: new BootClock() };
      const cache = new ProcessCache({ nodeName: "rec-node" });
      cache.seed(dump.seeds);
      const out: PipelineEvent[] = [];
      const pipe = new ProcessPipeline(dec, cache, opts, (ev) => out.push(ev));
      const replay = new DumpReplayer(dump, dec);
      for (let round = 0; round < 2; round++) replay.round((v) => pipe.handle(v));
      expect(pipe.counters().decodeErrors).toBe(0);
      expect(out.length).toBe(2 * recs.filter((r) => r.op !== "clone").length);
      for (const ev of out) {
        const want = JSON.stringify(encodeEvent(ev.event, opts));
        if (ev.line !== want) expect(ev.line).toBe(want);
        expect(JSON.stringify(ev.json)).toBe(want);
      }
      // Enrichment from the recording: each `true arg i` is a child of the storm's sh.
      const trueExecs = out.filter((e) => e.event.type === "process_exec" && inStorm(e.event.process.cwd) && e.event.process.binary === TRUE && e.event.process.arguments.startsWith('"arg '));
      expect(trueExecs.length).toBe(2 * N);
      for (const e of trueExecs) expect(e.event.parent?.binary).toBe(SH);
    },
    60_000,
  );
});
