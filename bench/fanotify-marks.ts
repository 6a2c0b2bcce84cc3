// What a fanotify permission group costs the files it does not mark: open/close of an
// unrelated file on the same filesystem (and a getppid control) with and without a group
// holding the talk's rule (FAN_OPEN_PERM on one secret inode), and with a Prefix tree mark
// (the secret's directory, FAN_EVENT_ON_CHILD, plus the directory-creation watch).
//
// Why a bench of its own: bench/enforce.ts compares against no agent, so each of its rounds
// starts and stops an agent (seconds), which leaves 7 rounds whose off and on sides run
// seconds apart on a shared machine: medians of 1.01-1.04 with a min-max of 0.95-1.13, too
// wide to tell a 1% cost from none. A group is made and closed in milliseconds in this
// process, so here every round is a short off/on pair (order flipped each round), many
// rounds, and the report gives the quartiles beside the median and min-max.
// Method: bench/lib/loadgen.c pinned to CPU 0, timed by its own CLOCK_PROCESS_CPUTIME_ID;
// each measurement the least of --repeats runs of --seconds.
//
// Usage (root): bun run bench/fanotify-marks.ts [--rounds 41] [--seconds 0.05] [--repeats 3] [--json]
import { mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FanotifyGuard } from "../src/sensors/fanotify.ts";
import { fanotifySupport } from "../src/sensors/fanotify-sys.ts";
import { alternate, type Measure, type Treatment } from "./lib/ab.ts";
import { prepareBenchHost } from "./lib/host.ts";
import { LoadGenerator, type LoadMode } from "./lib/loadgen.ts";
import { progress, ratioMetric, runBench } from "./lib/results.ts";
import { summarizeRatios, type Pair } from "./lib/stats.ts";

const log = (m: string) => progress("fanotify-marks", m);

class GroupTreatment implements Treatment {
  private guard: FanotifyGuard | undefined;
  constructor(
    readonly name: string,
    private readonly files: string[],
    private readonly prefixes: string[],
  ) {}
  async start(): Promise<void> {
    const g = FanotifyGuard.create();
    g.addRule({ action: "deny", post: false, target: "open" }, this.files, this.prefixes);
    g.start();
    await g.ready();
    this.guard = g;
  }
  async stop(): Promise<void> {
    this.guard?.close();
    this.guard = undefined;
  }
}

/** Quartiles of a sample (linear interpolation), for the spread the median hides. */
function quartiles(xs: readonly number[]): [number, number] {
  const s = [...xs].sort((a, b) => a - b);
  const at = (q: number): number => {
    const i = (s.length - 1) * q;
    const lo = Math.floor(i);
    return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (i - lo);
  };
  return [at(0.25), at(0.75)];
}

await runBench("fanotify-marks", "fanotify: what a permission group costs files it does not mark", async (args, section) => {
  const rounds = Math.floor(args.num("rounds", 41, 3));
  const seconds = args.num("seconds", 0.05, 0.01);
  const repeats = Math.floor(args.num("repeats", 3, 1));
  prepareBenchHost("bench/fanotify-marks.ts");
  const s = fanotifySupport();
  if (!s.permissions) throw new Error(`fanotify permission events are not available here: ${s.reason ?? "unknown"}`);
  const dir = realpathSync(mkdtempSync("/tmp/ward-bench-fanmarks-"));
  try {
    const tree = join(dir, "secret-tree");
    mkdirSync(tree);
    const secret = join(tree, "file");
    writeFileSync(secret, "secret\n");
    const unrelated = join(dir, "unrelated");
    writeFileSync(unrelated, "not the secret\n");
    const gen = LoadGenerator.build(dir);
    // a file on another filesystem (tmpfs): tells a per-superblock cost from a global one
    const otherDir = mkdtempSync("/dev/shm/ward-bench-fanmarks-");
    const other = join(otherDir, "unrelated");
    writeFileSync(other, "on another filesystem\n");
    const otherMode: LoadMode = { kind: "open", path: other };
    const nOther = gen.calibrate(otherMode, seconds);
    const openMode: LoadMode = { kind: "open", path: unrelated };
    const ppidMode: LoadMode = { kind: "getppid" };
    const nOpen = gen.calibrate(openMode, seconds);
    const nPpid = gen.calibrate(ppidMode, seconds, 200_000);
    const measures: Measure[] = [
      { name: "open", run: () => gen.best(openMode, nOpen, repeats) },
      { name: "getppid", run: () => gen.best(ppidMode, nPpid, repeats) },
      { name: "otherfs", run: () => gen.best(otherMode, nOther, repeats) },
    ];
    const plan = [
      { key: "inode", t: new GroupTreatment("a group marking one inode (the talk's rule)", [secret], []) },
      { key: "tree", t: new GroupTreatment("a group marking a Prefix tree (directory with FAN_EVENT_ON_CHILD, creation watch)", [], [`${tree}/`]) },
    ];
    // warm-up: one unrecorded pair each, so the first round does not pay for cold caches
    for (const { t } of plan) await alternate(t, measures, 1, 0);
    const pairs = new Map<string, Pair[]>();
    for (let r = 0; r < rounds; r++) {
      if (r % 10 === 0) log(`round ${r + 1}/${rounds}`);
      for (const { key, t } of plan) {
        for (const [m, ps] of await alternate(t, measures, 1, r)) pairs.set(`${key}.${m}`, [...(pairs.get(`${key}.${m}`) ?? []), ...ps]);
      }
    }
    for (const { key, t } of plan) {
      for (const m of ["open", "otherfs", "getppid"]) {
        const sum = summarizeRatios(pairs.get(`${key}.${m}`)!);
        const [q1, q3] = quartiles(sum.ratios);
        const what = m === "open" ? "open/close of an unrelated file on the same filesystem" : m === "otherfs" ? "open/close of a file on another filesystem (tmpfs)" : "getppid loop (control)";
        section.metrics.push(ratioMetric(`fanmarks_${key}_${m}`, `${what}, ${t.name} vs none`, sum, undefined, `quartiles ${q1.toFixed(3)} – ${q3.toFixed(3)}; ${m === "open" ? nOpen : m === "otherfs" ? nOther : nPpid} iterations per run`));
        section.notes.push(`${key}.${m}: median ${sum.median.toFixed(3)}, quartiles ${q1.toFixed(3)} – ${q3.toFixed(3)}, floor (least on / least off) ${sum.floorRatio.toFixed(3)}`);
      }
    }
    section.notes.push(`CPU time of bench/lib/loadgen.c pinned to CPU 0; each measurement the least of ${repeats} runs of ${seconds} s; ${rounds} rounds of one off/on pair each (order flipped every round) per treatment, after one warm-up pair; the group is created and closed in this process for each on side.`);
    rmSync(otherDir, { recursive: true, force: true });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
