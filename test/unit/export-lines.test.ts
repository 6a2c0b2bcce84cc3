// Event lines as bytes through the sinks (src/export/lines.ts, src/export/queued.ts,
// src/agent/event-hub.ts): joinLines coalesces the producer's adjacent arena views without
// copying and checks every "\n" it relies on; byte lengths are exact for bytes; QueuedSink
// accounts mixed string/byte lines exactly; the hub hands sinks the bytes, never reading
// `line`; the export gate keeps the bytes unless a field filter rewrote the event.
import { describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { EventHub, type HubEvent } from "../../src/agent/event-hub.ts";
import type { EventJson } from "../../src/events/filter.ts";
import { parseFieldFilterLines } from "../../src/events/field-filter.ts";
import { ExportGate } from "../../src/export/export-gate.ts";
import { JsonlFileSink } from "../../src/export/jsonl-file.ts";
import { QueuedSink } from "../../src/export/queued.ts";
import { lineRuns } from "../../src/export/lines.ts";
import { joinLines, lineByteLength, lineText, type Batch, type Line, type SinkStats, type Transport } from "../../src/export/sink.ts";
import { LineArena } from "../lib/line-arena.ts";

const text = (b: Uint8Array) => Buffer.from(b).toString("utf8");
const bytes = (s: string) => new TextEncoder().encode(s);

describe("joinLines", () => {
  test("one run of arena views: a view of the same buffer, nothing copied", () => {
    const arena = new LineArena();
    arena.add("before"); // the run need not start at the chunk's beginning
    const views = arena.addAll(['{"a":1}', '{"b":"ü"}', '{"c":3}']);
    const out = joinLines(views);
    expect(out.buffer).toBe(views[0]!.buffer);
    expect(out.byteOffset).toBe(views[0]!.byteOffset);
    expect(out.byteLength).toBe(views.reduce((n, v) => n + v.byteLength + 1, 0));
    expect(text(out)).toBe('{"a":1}\n{"b":"ü"}\n{"c":3}\n');
    // A sub-range is a run too.
    const mid = joinLines(views, 1, 3);
    expect(mid.buffer).toBe(views[0]!.buffer);
    expect(text(mid)).toBe('{"b":"ü"}\n{"c":3}\n');
    expect(joinLines(views, 2, 2).byteLength).toBe(0);
    expect(joinLines([]).byteLength).toBe(0);
  });

  test("runs broken by a foreign view, a string, a view with no newline after it and one at the end of its buffer", () => {
    const arena = new LineArena();
    const [a, b] = arena.addAll(["a1", "a2"]);
    const foreign = bytes("f€"); // its own buffer, nothing after it: the very end of the buffer
    const [c, d] = arena.addAll(["c1", "c2"]);
    // Adjacent views in one buffer with something other than "\n" between them, and no "\n" after the second.
    const raw = bytes("x1Xx2Yz");
    const x1 = raw.subarray(0, 2);
    const x2 = raw.subarray(3, 5);
    const [e] = arena.addAll(["e1"]);
    const batch: Line[] = [a!, b!, foreign, c!, "s-ü", d!, x1, x2, e!];
    const out = joinLines(batch);
    expect(text(out)).toBe("a1\na2\nf€\nc1\ns-ü\nc2\nx1\nx2\ne1\n");
    expect(out.byteLength).toBe(batch.reduce((n: number, l) => n + lineByteLength(l) + 1, 0));
    // A copy: the arena's bytes are not touched, the foreign buffer got no newline written into it.
    expect(out.buffer).not.toBe(a!.buffer);
    expect(text(raw)).toBe("x1Xx2Yz");
    expect(text(new Uint8Array(a!.buffer, a!.byteOffset, 3))).toBe("a1\n");
    // A lone view at the end of its buffer: copied, with the "\n" added.
    expect(text(joinLines([foreign]))).toBe("f€\n");
    expect(joinLines([foreign]).buffer).not.toBe(foreign.buffer);
    // Views of one buffer out of order are not adjacent the right way round.
    expect(text(joinLines([b!, a!]))).toBe("a2\na1\n");
    // Strings alone.
    expect(text(joinLines(["ü", "", "z"]))).toBe("ü\n\nz\n");
  });

  test("a view followed by its newline at the very end of the buffer is still returned without a copy", () => {
    const buf = bytes("l1\nl2\n");
    const out = joinLines([buf.subarray(0, 2), buf.subarray(3, 5)]);
    expect(out.buffer).toBe(buf.buffer);
    expect(text(out)).toBe("l1\nl2\n");
  });

  test("lines across two arena chunks: two runs, one copy", () => {
    const arena = new LineArena(64);
    const views = arena.addAll(Array.from({ length: 6 }, (_, i) => `line-${i}-${"x".repeat(10)}`));
    expect(arena.chunks).toBeGreaterThan(1);
    const out = joinLines(views);
    expect(text(out)).toBe(views.map((v) => `${text(v)}\n`).join(""));
  });
});

describe("lineRuns (for writev)", () => {
  test("one view per run of the arena, nothing copied; a view without its newline gets one; strings are encoded together", () => {
    const arena = new LineArena();
    const [a, b, c] = arena.addAll(["a1", "a2", "a3"]);
    const foreign = bytes("f€");
    const runs = lineRuns([a!, b!, foreign, "s1", "sü", c!]);
    expect(runs.map(text)).toEqual(["a1\na2\n", "f€", "\n", "s1\nsü\n", "a3\n"]);
    expect(runs[0]!.buffer).toBe(a!.buffer);
    expect(runs[1]!.buffer).toBe(foreign.buffer);
    expect(runs[4]!.buffer).toBe(a!.buffer);
    expect(lineRuns([a!, b!, c!])).toHaveLength(1);
    expect(lineRuns([])).toEqual([]);
  });
});

describe("lineByteLength and lineText", () => {
  test("exact UTF-8 lengths and round trips for non-ASCII lines", () => {
    for (const s of ["", "ascii", "ü", "a€b", "😀", '{"arguments":"grüße 😀"}']) {
      const b = bytes(s);
      expect(lineByteLength(s)).toBe(b.byteLength);
      expect(lineByteLength(b)).toBe(b.byteLength);
      expect(lineText(b)).toBe(s);
      expect(lineText(s)).toBe(s);
    }
    expect(lineByteLength("ü")).toBe(2);
    expect(lineByteLength("😀")).toBe(4);
  });
});

class Hold implements Transport {
  readonly kind = "hold";
  got: string[] = [];
  batchBytes: number[] = [];
  async send(batch: Batch): Promise<void> {
    this.batchBytes.push(batch.reduce((n: number, l) => n + (typeof l === "string" ? l.length : l.byteLength), 0));
    for (const l of batch) this.got.push(lineText(l));
  }
}

function invariant(s: SinkStats): void {
  const dropped = Object.values(s.dropped).reduce((a, b) => a + b, 0);
  expect(s.sent + dropped + s.queued).toBe(s.written);
}

describe("QueuedSink with byte lines", () => {
  test("maxQueueBytes counts bytes exactly for bytes and .length for strings; queue_full drops are exact", async () => {
    const t = new Hold();
    // 100 bytes of queue; nothing is sent until flush (linger far away).
    const s = new QueuedSink("q", t, { maxQueueBytes: 100, lingerMs: 60_000 });
    const arena = new LineArena();
    // 10 characters, 20 bytes each: counted 20 as bytes.
    const u = "üüüüüüüüüü";
    expect(lineByteLength(u)).toBe(20);
    const b1 = arena.add(u);
    const b2 = arena.add(u);
    const b3 = arena.add(u);
    s.write(b1);
    s.write(b2);
    s.write(b3); // 60 bytes
    s.write("s".repeat(30)); // 90
    s.write(u); // a string: counted 10 (.length), 100 in all, still fits
    expect(s.stats()).toMatchObject({ written: 5, queued: 5, dropped: { queue_full: 0 } });
    s.write(arena.add("x".repeat(25))); // 125 > 100: b1 and b2 go (40), 85 left
    expect(s.stats()).toMatchObject({ written: 6, queued: 4, dropped: { queue_full: 2 } });
    invariant(s.stats());
    s.write(arena.add("y".repeat(101))); // larger than the whole queue: everything else goes, it stays alone
    expect(s.stats()).toMatchObject({ written: 7, queued: 1, dropped: { queue_full: 6 } });
    invariant(s.stats());
    await s.flush();
    expect(t.got).toEqual(["y".repeat(101)]);
    expect(s.stats()).toMatchObject({ written: 7, sent: 1, queued: 0 });
    invariant(s.stats());
    await s.close();
  });

  test("maxBatchBytes cuts batches by exact bytes; every line arrives once, in order", async () => {
    const t = new Hold();
    const s = new QueuedSink("q", t, { maxBatchBytes: 50, lingerMs: 60_000 });
    const arena = new LineArena();
    const texts = Array.from({ length: 12 }, (_, i) => `${i}:${"é".repeat(7)}`); // 16-17 bytes each
    texts.forEach((x, i) => s.write(i % 3 === 2 ? x : arena.add(x)));
    await s.flush();
    expect(t.got).toEqual(texts);
    for (const n of t.batchBytes) expect(n).toBeLessThanOrEqual(50);
    expect(t.batchBytes.length).toBeGreaterThanOrEqual(4);
    expect(s.stats()).toMatchObject({ written: 12, sent: 12, queued: 0 });
    await s.close();
  });
});

/** An event whose `line` must not be read: the sinks are to get its bytes. */
function bytesOnly(json: EventJson, b: Uint8Array): HubEvent {
  return {
    json,
    type: "process_exec",
    bytes: b,
    get line(): string {
      throw new Error("line read on the sink path");
    },
  };
}

class Collect {
  readonly name = "collect";
  got: Line[] = [];
  write(l: Line) {
    this.got.push(l);
  }
  async flush() {}
  async close() {}
}

describe("hub and gate pass bytes", () => {
  const json = { process_exec: { process: { binary: "/bin/true", arguments: "ü" } }, node_name: "n", time: "2026-12-03T15:53:00Z" };
  const line = JSON.stringify(json);

  test("the hub writes the bytes (the same view) to every sink, never reading line", () => {
    const hub = new EventHub();
    const a = new Collect();
    const b = new Collect();
    hub.addSink(a);
    hub.addSink(b);
    const view = new LineArena().add(line);
    hub.publishEvent(bytesOnly(json, view));
    expect(a.got).toEqual([view]);
    expect(a.got[0]).toBe(view);
    expect(b.got[0]).toBe(view);
    // A string event still goes out as its string.
    hub.publish(json);
    expect(a.got[1]).toBe(line);
  });

  test("a real file sink behind the hub writes the bytes of an event whose line cannot be read", async () => {
    const dir = mkdtempSync(join(tmpdir(), "ward-hub-bytes-"));
    try {
      const hub = new EventHub();
      const file = new JsonlFileSink(join(dir, "e.jsonl"));
      hub.addSink(file);
      const arena = new LineArena();
      for (let i = 0; i < 3; i++) hub.publishEvent(bytesOnly(json, arena.add(line)));
      await file.close();
      expect(readFileSync(join(dir, "e.jsonl"), "utf8")).toBe(`${line}\n${line}\n${line}\n`);
      expect(file.stats()).toMatchObject({ written: 3, sent: 3 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("through the gate: unchanged events keep their bytes; a field filter's rewrite is a new string line", () => {
    const hub = new EventHub();
    const sink = new Collect();
    hub.addSink(sink);
    // A rate limit that lets everything through: the gate is in the path but changes nothing.
    hub.setExportGate(new ExportGate({ rateLimit: 1_000_000, nodeName: "n" }));
    const view = new LineArena().add(line);
    hub.publishEvent(bytesOnly(json, view));
    expect(sink.got[0]).toBe(view);

    const hub2 = new EventHub();
    const sink2 = new Collect();
    hub2.addSink(sink2);
    hub2.setExportGate(new ExportGate({ fieldFilters: parseFieldFilterLines('{"fields":"process.binary","action":"INCLUDE"}'), nodeName: "n" }));
    hub2.publishEvent({ json, type: "process_exec", bytes: new LineArena().add(line), line });
    expect(typeof sink2.got[0]).toBe("string");
    expect(JSON.parse(sink2.got[0] as string)).toEqual({ process_exec: { process: { binary: "/bin/true" } }, node_name: "n", time: "2026-12-03T15:53:00Z" });
  });
});
