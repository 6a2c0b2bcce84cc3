// BurstReclaimer: one full collection after a burst of events has ended, never during one.
// memoryStatus: the RSS and heap figures the status body carries.
import { expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { BurstReclaimer, memoryStatus } from "../../../src/agent/footprint.ts";

test("collects once after a burst ends, not during it, not while idle", () => {
  let events = 0;
  let runs = 0;
  const r = new BurstReclaimer(() => events, { burstEvents: 1000, quietEvents: 10, heapBytes: () => 0, collect: () => runs++ });
  r.check();
  events += 600; // burst, first half
  r.check();
  events += 600; // still bursting: 1200 since the start, but the interval was busy
  r.check();
  expect(runs).toBe(0);
  events += 3; // quiet interval after >= 1000 events
  r.check();
  expect(runs).toBe(1);
  for (let i = 0; i < 5; i++) r.check(); // idle: nothing new to give back
  expect(runs).toBe(1);
  events += 500;
  r.check();
  r.check(); // quiet, but only 500 since the last collection
  expect(runs).toBe(1);
});

test("collects after a burst that ends into other work's events (a share of the busiest interval), never while the rate holds", () => {
  let events = 0;
  let runs = 0;
  const r = new BurstReclaimer(() => events, { burstEvents: 1000, quietEvents: 10, quietShare: 0.25, heapBytes: () => 0, collect: () => runs++ });
  r.check();
  // Steady work on the host, above quietEvents: no burst ended however long it lasts.
  for (let i = 0; i < 10; i++) {
    events += 200;
    r.check();
  }
  expect(runs).toBe(0);
  // A storm, then back to the host's 200 per interval: under a quarter of the busiest.
  events += 4000;
  r.check();
  events += 3000; // the storm's last interval: more than a quarter still
  r.check();
  expect(runs).toBe(0);
  events += 200;
  r.check();
  expect(runs).toBe(1);
  // The busiest interval starts again after a collection: the steady 200 is not "quiet" now.
  for (let i = 0; i < 10; i++) {
    events += 200;
    r.check();
  }
  expect(runs).toBe(1);
});

test("collects during a burst once the heap grew past its size after the last collection by heapGrowthBytes; the burst's end still collects", () => {
  let events = 0;
  let heap = 100;
  let runs = 0;
  const r = new BurstReclaimer(() => events, {
    burstEvents: 1000, quietEvents: 10, heapGrowthBytes: 50, heapBytes: () => heap,
    collect: () => {
      runs++;
      heap = 110; // what was live: a little more than before the burst
    },
  });
  r.start();
  r.stop();
  events += 5000;
  heap = 140;
  r.check();
  expect(runs).toBe(0);
  heap = 151; // over 100 + 50
  events += 5000;
  r.check();
  expect(runs).toBe(1);
  heap = 150; // under 110 + 50 now
  events += 5000;
  r.check();
  expect(runs).toBe(1);
  events += 5; // the burst ended: the collection at its end runs as well
  r.check();
  expect(runs).toBe(2);
  r.check(); // idle, heap unchanged
  expect(runs).toBe(2);
});

test("memoryStatus: RssAnon as /proc says it, within RSS; the JS heap figure follows what JS retains", () => {
  const procAnon = /^RssAnon:\s+(\d+) kB$/m.exec(readFileSync("/proc/self/status", "utf8"));
  const m0 = memoryStatus();
  expect(m0.rss_anon_bytes).toBeDefined();
  // Same page count give or take what the test itself touched between the two reads.
  expect(Math.abs(m0.rss_anon_bytes! - Number(procAnon![1]) * 1024)).toBeLessThan(4 << 20);
  expect(m0.rss_anon_bytes!).toBeLessThanOrEqual(m0.rss_bytes);
  Bun.gc(true);
  const before = memoryStatus().js_heap_bytes;
  // About 16 MB of live objects the collector cannot free while `kept` is in scope.
  const kept = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `event-${i}-`.padEnd(48, "x") }));
  Bun.gc(true);
  const after = memoryStatus().js_heap_bytes;
  expect(after - before).toBeGreaterThan(8 << 20);
  expect(kept.length).toBe(200_000);
});
