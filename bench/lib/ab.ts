// A/B alternation around a treatment that must be started and stopped (an agent, a guard,
// a bpftrace): each round measures every load once without and once with it, and the
// order flips each round (off->on, then on->off), so neither side always runs first.
import type { Pair } from "./stats.ts";

export interface Treatment {
  readonly name: string;
  /** attach; resolves once it is in effect */
  start(): Promise<void>;
  /** detach; resolves once nothing of it runs any more */
  stop(): Promise<void>;
}

export interface Measure {
  readonly name: string;
  /** one measurement (CPU seconds of the load) */
  run(): number;
}

/**
 * Pairs per measure name, one per round. firstRound sets the parity of the first round's
 * order, for callers that interleave treatments one round at a time.
 */
export async function alternate(treatment: Treatment, measures: readonly Measure[], rounds: number, firstRound = 0): Promise<Map<string, Pair[]>> {
  const out = new Map<string, Pair[]>(measures.map((m) => [m.name, []]));
  for (let r = firstRound; r < firstRound + rounds; r++) {
    const off = new Map<string, number>();
    const on = new Map<string, number>();
    const measureAll = (into: Map<string, number>) => {
      for (const m of measures) into.set(m.name, m.run());
    };
    const measureOn = async () => {
      await treatment.start();
      try {
        measureAll(on);
      } finally {
        await treatment.stop();
      }
    };
    if (r % 2 === 0) {
      measureAll(off);
      await measureOn();
    } else {
      await measureOn();
      measureAll(off);
    }
    for (const m of measures) out.get(m.name)!.push({ off: off.get(m.name)!, on: on.get(m.name)! });
  }
  return out;
}
