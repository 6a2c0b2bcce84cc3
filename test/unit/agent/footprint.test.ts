// BurstReclaimer: one full collection after a burst of events has ended, never during one.
import { expect, test } from "bun:test";
import { BurstReclaimer } from "../../../src/agent/footprint.ts";

test("collects once after a burst ends, not during it, not while idle", () => {
  let events = 0;
  let runs = 0;
  const r = new BurstReclaimer(() => events, { burstEvents: 1000, quietEvents: 10, collect: () => runs++ });
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
