// src/export/export-gate.ts and src/events/field-filter.ts: what the sinks get.
import { describe, expect, test } from "bun:test";
import { EventHub } from "../../src/agent/event-hub.ts";
import { applyFieldFilters, compileFieldFilter, parseFieldFilterLines } from "../../src/events/field-filter.ts";
import { parseFilterLines, type EventJson } from "../../src/events/filter.ts";
import { ExportGate, rateLimitInfoEvent, TokenBucket } from "../../src/export/export-gate.ts";

const exec = (pid: number, binary: string): EventJson => ({
  process_exec: {
    process: { exec_id: `e${pid}`, pid, binary, arguments: "-x", parent_exec_id: "p", pod: { namespace: "d", name: "w", pod_labels: { app: "a", tier: "t" } } },
    parent: { exec_id: "p", pid: 1, binary: "/sbin/init" },
  },
  node_name: "n",
  time: "2026-01-01T00:00:00Z",
});
const exit = (pid: number): EventJson => ({ process_exit: { process: { exec_id: `e${pid}`, pid, binary: "/bin/x" }, status: 1 }, node_name: "n", time: "t" });
const kprobe = (): EventJson => ({
  process_kprobe: { process: { pid: 3, binary: "/bin/cat" }, function_name: "__x64_sys_openat", args: [{ int_arg: -100 }, { string_arg: "/etc/passwd", label: "path" }], policy_name: "p" },
  node_name: "n",
  time: "t",
});

describe("field filters", () => {
  const ff = (t: string) => parseFieldFilterLines(t).map(compileFieldFilter);

  test("INCLUDE keeps only the listed paths of the body; the envelope stays", () => {
    const out = applyFieldFilters(ff('{"fields":"process.binary,process.pid,parent.exec_id","action":"INCLUDE"}'), exec(7, "/bin/ls"));
    expect(out).toEqual({ process_exec: { process: { pid: 7, binary: "/bin/ls" }, parent: { exec_id: "p" } }, node_name: "n", time: "2026-01-01T00:00:00Z" });
  });

  test("EXCLUDE removes the listed paths; map keys and list elements are path elements", () => {
    const out = applyFieldFilters(ff('{"fields":"process.exec_id,process.pod.pod_labels.tier,parent","action":"EXCLUDE"}'), exec(7, "/bin/ls")) as { process_exec: { process: Record<string, unknown> } };
    expect(out.process_exec).toEqual({ process: { pid: 7, binary: "/bin/ls", arguments: "-x", parent_exec_id: "p", pod: { namespace: "d", name: "w", pod_labels: { app: "a" } } } });
    const k = applyFieldFilters(ff('{"fields":"args.label","action":"EXCLUDE"}'), kprobe()) as { process_kprobe: { args: unknown[] } };
    expect(k.process_kprobe.args).toEqual([{ int_arg: -100 }, { string_arg: "/etc/passwd" }]);
  });

  test("event_set limits a filter to its types; invert_event_set to the others (Tetragon's example)", () => {
    const f = ff('{"fields":"process.exec_id,process.parent_exec_id","event_set":["PROCESS_EXEC"],"invert_event_set":true,"action":"INCLUDE"}');
    expect(applyFieldFilters(f, exec(7, "/bin/ls"))).toEqual(exec(7, "/bin/ls"));
    expect(applyFieldFilters(f, exit(7))).toEqual({ process_exit: { process: { exec_id: "e7" } }, node_name: "n", time: "t" });
    const g = ff('{"fields":"process.pid","event_set":["PROCESS_EXIT"]}');
    expect(applyFieldFilters(g, exec(7, "/bin/ls"))).toEqual(exec(7, "/bin/ls"));
    expect(applyFieldFilters(g, exit(7))).toEqual({ process_exit: { process: { pid: 7 } }, node_name: "n", time: "t" });
  });

  test("filters apply in order, so exclusion after inclusion wins", () => {
    const f = ff('{"fields":"process","action":"INCLUDE"}\n{"fields":"process.arguments,process.pod","action":"EXCLUDE"}');
    expect(applyFieldFilters(f, exec(7, "/bin/ls"))).toEqual({ process_exec: { process: { exec_id: "e7", pid: 7, binary: "/bin/ls", parent_exec_id: "p" } }, node_name: "n", time: "2026-01-01T00:00:00Z" });
  });

  test("a longer path narrows a shorter one (fmutils' mask), an empty field list changes nothing", () => {
    const f = ff('{"fields":"process,process.pid"}');
    expect(applyFieldFilters(f, exec(7, "/bin/ls"))).toEqual({ process_exec: { process: { pid: 7 } }, node_name: "n", time: "2026-01-01T00:00:00Z" });
    const e = exec(7, "/x");
    expect(applyFieldFilters(ff('{"fields":""}'), e)).toBe(e);
  });

  test("the input event is never changed (subscribers share it)", () => {
    const e = exec(7, "/bin/ls");
    const copy = structuredClone(e);
    applyFieldFilters(ff('{"fields":"process.pod.pod_labels.app","action":"EXCLUDE"}'), e);
    expect(e).toEqual(copy);
  });

  test("unknown fields and bad values name the line and field", () => {
    expect(() => parseFieldFilterLines('{"fields":"a"}\n{"feilds":"a"}')).toThrow('unknown field filter field "feilds"');
    let caught: unknown;
    try {
      parseFieldFilterLines('{"fields":"a"}\n{"invert_event_set":"yes"}');
    } catch (err) {
      caught = err;
    }
    expect(caught).toMatchObject({ line: 2, field: "invert_event_set" });
    expect(() => parseFieldFilterLines('{"fields":"process binary"}')).toThrow("bad field path");
  });
});

describe("rate limit", () => {
  test("a token bucket of one minute's worth, starting full, refilling continuously", () => {
    let t = 0;
    const b = new TokenBucket(60, () => t);
    let ok = 0;
    for (let i = 0; i < 100; i++) if (b.take()) ok++;
    expect(ok).toBe(60);
    t += 1000; // one token a second
    expect(b.take()).toBe(true);
    expect(b.take()).toBe(false);
    t += 10 * 60_000; // never more than the burst
    ok = 0;
    for (let i = 0; i < 100; i++) if (b.take()) ok++;
    expect(ok).toBe(60);
    expect(new TokenBucket(0, () => t).take()).toBe(false);
  });

  test("drops are counted and reported by a rate_limit_info event, shaped as Tetragon's", async () => {
    const emitted: EventJson[] = [];
    let t = 0;
    const gate = new ExportGate({ rateLimit: 5, nodeName: "n1", now: () => t, wallNs: () => 1_700_000_000_123_000_000n, reportIntervalMs: 20 });
    gate.start((e) => emitted.push(e.json));
    let passed = 0;
    for (let i = 0; i < 12; i++) if (gate.admit({ json: exec(i, "/x"), type: "process_exec", line: "{}" })) passed++;
    expect(passed).toBe(5);
    expect(gate.counters.rateLimited).toBe(7);
    await Bun.sleep(60);
    expect(emitted).toEqual([{ rate_limit_info: { number_of_dropped_process_events: "7" }, node_name: "n1", time: "2023-11-14T22:13:20.123Z" }]);
    // Nothing dropped since: no further report.
    await Bun.sleep(60);
    expect(emitted).toHaveLength(1);
    t += 60_000;
    for (let i = 0; i < 8; i++) gate.admit({ json: exec(i, "/x"), type: "process_exec", line: "{}" });
    // stop() reports what the timer has not yet, so no drop goes unreported.
    gate.stop();
    expect(emitted.at(-1)).toMatchObject({ rate_limit_info: { number_of_dropped_process_events: "3" } });
    expect(JSON.stringify(rateLimitInfoEvent(2, "n", 0n).json)).toBe('{"rate_limit_info":{"number_of_dropped_process_events":"2"},"node_name":"n","time":"1970-01-01T00:00:00Z"}');
  });

  test("0 exports nothing, -1 is no limit", () => {
    const none = new ExportGate({ rateLimit: 0, nodeName: "n" });
    expect(none.admit({ json: exec(1, "/x"), type: "process_exec", line: "{}" })).toBeUndefined();
    expect(new ExportGate({ rateLimit: -1, nodeName: "n" }).passThrough).toBe(true);
  });
});

describe("the gate in the hub", () => {
  class Collect {
    readonly name = "collect";
    lines: string[] = [];
    write(l: string) {
      this.lines.push(l);
    }
    async flush() {}
    async close() {}
  }

  test("sinks get the allowed, filtered events; API subscribers still get everything", async () => {
    const hub = new EventHub();
    const sink = new Collect();
    hub.addSink(sink);
    hub.setExportGate(
      new ExportGate({
        allow: parseFilterLines('{"event_set":["PROCESS_EXEC"]}'),
        deny: parseFilterLines('{"binary_regex":["^/bin/ls$"]}'),
        fieldFilters: parseFieldFilterLines('{"fields":"process.binary","action":"INCLUDE"}'),
        nodeName: "n",
      }),
    );
    const sub = hub.subscribe(() => true);
    hub.publish(exec(1, "/bin/cat"));
    hub.publish(exec(2, "/bin/ls"));
    hub.publish(exit(1));
    expect(sink.lines.map((l) => JSON.parse(l))).toEqual([{ process_exec: { process: { binary: "/bin/cat" } }, node_name: "n", time: "2026-01-01T00:00:00Z" }]);
    const got = [await sub.next(), await sub.next(), await sub.next()].map((e) => e!.type);
    expect(got).toEqual(["process_exec", "process_exec", "process_exit"]);
    expect(hub.exportGate!.counters.filtered).toBe(2);
  });

  test("rate-limited events show as lost export_rate_limit in the counters", () => {
    const hub = new EventHub();
    hub.addSink(new Collect());
    hub.setExportGate(new ExportGate({ rateLimit: 1, nodeName: "n" }));
    for (let i = 0; i < 4; i++) hub.publish(exec(i, "/x"));
    expect(hub.counters().lost).toEqual({ export_rate_limit: 3 });
    hub.exportGate!.stop();
  });
});
