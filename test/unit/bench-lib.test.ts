// bench/lib: ratio summaries, the A/B alternation order the benches rely on, and the result shape.
import { expect, test } from "bun:test";
import { alternate, type Treatment } from "../../bench/lib/ab.ts";
import { BenchArgs, meets, metric, sampleMetric } from "../../bench/lib/results.ts";
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

test("results: a metric says whether it met its target, at the boundary too", () => {
  expect(meets({ op: "<=", value: 1.02 }, 1.02)).toBe(true);
  expect(meets({ op: "<", value: 1 }, 1)).toBe(false);
  expect(meets({ op: ">=", value: 300_000 }, 299_999)).toBe(false);
  expect(meets({ op: "<=", value: 1 }, Number.NaN)).toBe(false);
  const m = sampleMetric("x", "x", "ms", [30, 10, 20], { op: "<=", value: 15 });
  expect([m.median, m.min, m.max, m.rounds, m.met]).toEqual([20, 10, 30, 3, false]);
  expect(metric({ id: "y", name: "y", unit: "MiB", median: 1, min: 1, max: 1, rounds: 1 }).met).toBeUndefined();
  expect(() => sampleMetric("z", "z", "ms", [])).toThrow("metric z: no samples");
});

test("results: options give the full or the quick default, and a bad value is an error naming the flag", () => {
  expect(new BenchArgs([]).num("rounds", 7, 1)).toBe(7);
  expect(new BenchArgs(["--quick"]).num("rounds", 7, 1)).toBe(1);
  expect(new BenchArgs(["--quick", "--rounds", "3"]).num("rounds", 7, 1)).toBe(3);
  expect(() => new BenchArgs(["--rounds", "x"]).num("rounds", 7, 1)).toThrow('--rounds: expected a positive number, not "x"');
});
