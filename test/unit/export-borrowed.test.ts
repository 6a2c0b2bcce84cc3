// Borrowed byte lines (src/export/sink.ts `Line`): the process pipeline writes its next lines
// over the bytes it handed out, so a queue must copy them (src/export/line-store.ts, used by
// QueuedSink), its chunks are reused once their lines left, and an event an API subscriber
// queued keeps the right line after the pipeline moved on.
import { describe, expect, test } from "bun:test";
import { EventHub, type HubEvent } from "../../src/agent/event-hub.ts";
import { ProcessCache } from "../../src/events/process-cache.ts";
import { ProcessPipeline, type PipelineEvent } from "../../src/events/process-pipeline.ts";
import type { ExecRecord, ExitRecord } from "../../src/events/process-record.ts";
import { emptyCreds } from "../../src/events/process-cache.ts";
import { encodeEvent } from "../../src/events/tetragon.ts";
import { BootClock } from "../../src/events/time.ts";
import { LineStore } from "../../src/export/line-store.ts";
import { QueuedSink } from "../../src/export/queued.ts";
import { joinLines, lineText, type Batch, type Transport } from "../../src/export/sink.ts";

const enc = new TextEncoder();
const text = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString("utf8");

/** A transport that keeps the decoded lines, and the batches' joined bytes as they were at send time. */
class Keep implements Transport {
  readonly kind = "keep";
  lines: string[] = [];
  joined: string[] = [];
  async send(batch: Batch): Promise<void> {
    for (const l of batch) this.lines.push(lineText(l));
    this.joined.push(text(joinLines(batch)));
  }
}

describe("LineStore", () => {
  test("copies outlive their source, sit back to back with a newline, and chunks are reused once released", () => {
    const st = new LineStore(64, 2);
    const src = new Uint8Array(16);
    const views: Uint8Array[] = [];
    const chunks = [];
    for (let i = 0; i < 12; i++) {
      src.fill(0x61 + i, 0, 10); // "aaaaaaaaaa", "bbbbbbbbbb", ...
      views.push(st.copy(src.subarray(0, 10)));
      chunks.push(st.lastChunk!);
    }
    src.fill(0); // the producer writes over its buffer
    views.forEach((v, i) => expect(text(v)).toBe(String.fromCharCode(0x61 + i).repeat(10)));
    // 11 bytes per line (its newline), 5 per 64-byte chunk: 3 chunks so far.
    expect(new Set(chunks).size).toBe(3);
    expect(new Uint8Array(views[0]!.buffer, views[0]!.byteOffset + 10, 1)[0]).toBe(0x0a);
    expect(views[1]!.byteOffset).toBe(views[0]!.byteOffset + 11);
    // Release the first chunk's five lines: it is free, and the next new chunk is that one.
    for (let i = 0; i < 5; i++) st.release(chunks[i]!);
    expect(st.chunks.free).toBe(1);
    for (let i = 0; i < 3; i++) st.copy(src.subarray(0, 10)); // fills the third chunk
    const reused = st.copy(src.subarray(0, 10));
    expect(reused.buffer).toBe(views[0]!.buffer);
    expect(st.chunks.free).toBe(0);
  });

  test("a line longer than a chunk gets its own, never reused; at most maxFree chunks are kept", () => {
    const st = new LineStore(32, 1);
    const long = enc.encode("x".repeat(100));
    const v = st.copy(long);
    expect(text(v)).toBe("x".repeat(100));
    st.release(st.lastChunk!);
    expect(st.chunks.free).toBe(0);
    const cs = [];
    for (let i = 0; i < 9; i++) {
      st.copy(enc.encode("0123456789"));
      cs.push(st.lastChunk!);
    }
    for (const c of cs) st.release(c);
    expect(st.chunks.free).toBe(1);
  });
});

describe("QueuedSink with borrowed bytes", () => {
  test("what arrives is what was written, though the producer wrote over its buffer after each write; batches are one run", async () => {
    const t = new Keep();
    const s = new QueuedSink("q", t, { lingerMs: 60_000, maxBatch: 10_000 });
    const shared = new Uint8Array(256);
    const want: string[] = [];
    for (let i = 0; i < 500; i++) {
      const line = `{"n":${i},"text":"ü ${"z".repeat(i % 40)}"}`;
      const { written } = enc.encodeInto(line, shared);
      s.write(shared.subarray(0, written));
      shared.fill(0x21); // the next line goes over it
      want.push(line);
    }
    await s.flush();
    expect(t.lines).toEqual(want);
    expect(t.joined.join("")).toBe(want.map((l) => `${l}\n`).join(""));
    expect(s.stats()).toMatchObject({ written: 500, sent: 500, queued: 0 });
    await s.close();
  });

  test("chunks of delivered and dropped lines are reused: a long stream holds a bounded number of buffers", async () => {
    const t = new Keep();
    const s = new QueuedSink("q", t, { lingerMs: 0, maxQueue: 100 });
    const buffers = new Set<ArrayBufferLike>();
    // Watch the store's buffers through the batches the transport gets.
    const send = t.send.bind(t);
    t.send = async (b: Batch) => {
      for (const l of b) if (typeof l !== "string") buffers.add(l.buffer);
      await send(b);
    };
    const line = enc.encode(`{"x":"${"q".repeat(1000)}"}`);
    for (let round = 0; round < 20; round++) {
      for (let i = 0; i < 150; i++) s.write(line); // 50 of each 150 are dropped (queue_full)
      await s.flush();
    }
    expect(t.lines.length + s.stats().dropped.queue_full).toBe(3000);
    // 3 MB went through; 256 KiB chunks, recycled: a handful of buffers, not one per 256 lines.
    expect(buffers.size).toBeLessThanOrEqual(6);
    await s.close();
  });
});

describe("the pipeline's borrowed lines", () => {
  const node = "n1";
  const clock = new BootClock(1_700_000_000_000_000_000n);
  const creds = emptyCreds();
  const exec = (pid: number, ktime: bigint): ExecRecord => ({
    op: "exec", time: ktime, ktime, parentKtime: 0n, pid, tid: pid, ppid: 1, flags: 1, creds,
    ino: 5n, nlink: 1, binary: "/bin/true", argv: ["true", `arg ${pid}`], arguments: `"arg ${pid}"`, cwd: "/tmp",
  });
  const exit = (pid: number, ktime: bigint): ExitRecord => ({ op: "exit", time: ktime + 5n, ktime, pid, tid: pid, ppid: 1, flags: 1, code: 0 });

  test("bytes are valid during delivery; after it the event's line and bytes are still the event's (re-encoded)", () => {
    const kept: PipelineEvent[] = [];
    const during: string[] = [];
    const pipe = new ProcessPipeline(null as never, new ProcessCache({ nodeName: node }), { nodeName: node, clock }, (ev) => {
      during.push(text(ev.bytes));
      kept.push(ev);
    });
    for (let i = 0; i < 300; i++) {
      pipe.handleRecord(exec(1000 + i, BigInt(1e9 + i * 1000)));
      pipe.handleRecord(exit(1000 + i, BigInt(1e9 + i * 1000)));
    }
    expect(kept.length).toBe(600);
    kept.forEach((ev, i) => {
      const want = JSON.stringify(encodeEvent(ev.event, { nodeName: node, clock }));
      expect(during[i]).toBe(want);
      expect(ev.line).toBe(want);
      expect(text(ev.bytes)).toBe(want);
    });
  });

  test("an API subscriber's queued events keep their lines while the pipeline writes over the shared buffer", async () => {
    const hub = new EventHub();
    const sub = hub.subscribe(() => true);
    const pipe = new ProcessPipeline(null as never, new ProcessCache({ nodeName: node }), { nodeName: node, clock }, (ev) => hub.publishEvent(ev as HubEvent));
    const want: string[] = [];
    const seen = new ProcessPipeline(null as never, new ProcessCache({ nodeName: node }), { nodeName: node, clock }, (ev) => want.push(ev.line));
    for (let i = 0; i < 200; i++) {
      for (const p of [pipe, seen]) {
        p.handleRecord(exec(2000 + i, BigInt(2e9 + i * 1000)));
        p.handleRecord(exit(2000 + i, BigInt(2e9 + i * 1000)));
      }
    }
    const got: string[] = [];
    for (let i = 0; i < 400; i++) got.push((await sub.next())!.line);
    expect(got).toEqual(want);
    sub.close();
  });
});
