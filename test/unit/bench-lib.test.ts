// bench/lib: ratio summaries and the A/B alternation order the enforcement bench relies on.
import { expect, test } from "bun:test";
import { alternate, type Treatment } from "../../bench/lib/ab.ts";
import { formatRatio, median, summarizeRatios } from "../../bench/lib/stats.ts";

test("median of odd and even lists, NaN for none", () => {
  expect(median([3, 1, 2])).toBe(2);
  expect(median([4, 1, 3, 2])).toBe(2.5);
  expect(median([])).toBeNaN();
});

test("ratios are per round (on against its own off), then summarized", () => {
  const s = summarizeRatios([
    { off: 1, on: 1.1 },
    { off: 2, on: 2.4 },
    { off: 4, on: 4 },
  ]);
  expect(s.ratios.map((r) => Number(r.toFixed(6)))).toEqual([1.1, 1.2, 1]);
  expect(Number(s.median.toFixed(6))).toBe(1.1);
  expect(s.min).toBe(1);
  expect(Number(s.max.toFixed(6))).toBe(1.2);
  expect(s.offMedian).toBe(2);
  expect(Number(s.floorRatio.toFixed(6))).toBe(1.1); // least on 1.1 over least off 1
  expect(formatRatio(s)).toBe("1.100 (1.000..1.200, 3 rounds)");
});

test("alternate flips the order each round and measures 'on' only while the treatment runs", async () => {
  const trace: string[] = [];
  let running = false;
  const t: Treatment = {
    name: "t",
    start: async () => {
      running = true;
      trace.push("start");
    },
    stop: async () => {
      running = false;
      trace.push("stop");
    },
  };
  const pairs = await alternate(t, [{ name: "m", run: () => (trace.push(running ? "on" : "off"), running ? 2 : 1) }], 3);
  expect(trace).toEqual(["off", "start", "on", "stop", "start", "on", "stop", "off", "off", "start", "on", "stop"]);
  expect(pairs.get("m")).toEqual([
    { off: 1, on: 2 },
    { off: 1, on: 2 },
    { off: 1, on: 2 },
  ]);
});

test("alternate stops the treatment when a measurement throws", async () => {
  let stopped = 0;
  const t: Treatment = { name: "t", start: async () => {}, stop: async () => void stopped++ };
  let calls = 0;
  const failing = () => {
    if (++calls === 2) throw new Error("load failed");
    return 1;
  };
  await expect(alternate(t, [{ name: "m", run: failing }], 2)).rejects.toThrow("load failed");
  expect(stopped).toBe(1);
});
