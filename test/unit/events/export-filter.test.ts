// Tetragon Filter lines (export allow/deny lists), one test per field, then the allow/deny
// rule. Expected answers follow Tetragon's pkg/filters (reference/tetragon.md §4).
import { describe, expect, test } from "bun:test";
import { compileExportFilter, compileTetragonFilter, parseFilterLines, parseFilterObject, type EventJson, type TetragonFilter } from "../../../src/events/filter.ts";

type P = Record<string, unknown>;
const proc = (pid: number, binary: string, extra: P = {}): P => ({ pid, binary, ...extra });
const ev = (type: string, body: P): EventJson => ({ [type]: body, node_name: "n", time: "2026-01-01T00:00:00Z" });
const exec = (p: P, parent?: P) => ev("process_exec", { process: p, ...(parent ? { parent } : {}) });
const kprobe = (p: P, policy: string) => ev("process_kprobe", { process: p, function_name: "__x64_sys_openat", policy_name: policy });
const matches = (f: TetragonFilter, e: EventJson) => compileTetragonFilter(f)(e);

describe("filter fields", () => {
  test("binary_regex: any regex found anywhere in process.binary", () => {
    const f = { binary_regex: ["^/usr/bin/cu", "sh$"] };
    expect(matches(f, exec(proc(1, "/usr/bin/curl")))).toBe(true);
    expect(matches(f, exec(proc(1, "/bin/bash")))).toBe(true);
    expect(matches(f, exec(proc(1, "/bin/cat")))).toBe(false);
    // No process: no match (rate_limit_info has none).
    expect(matches(f, ev("rate_limit_info", { number_of_dropped_process_events: "1" }))).toBe(false);
  });

  test("parent_binary_regex: the parent's binary; no parent, no match", () => {
    const f = { parent_binary_regex: ["bash"] };
    expect(matches(f, exec(proc(2, "/bin/ls"), proc(1, "/bin/bash")))).toBe(true);
    expect(matches(f, exec(proc(2, "/bin/ls"), proc(1, "/bin/zsh")))).toBe(false);
    expect(matches(f, exec(proc(2, "/bin/bash")))).toBe(false);
  });

  test('namespace: the pod namespace; "" is a process without a pod', () => {
    const f = { namespace: ["", "default"] };
    expect(matches(f, exec(proc(1, "/x")))).toBe(true);
    expect(matches(f, exec(proc(1, "/x", { pod: { namespace: "default", name: "p" } })))).toBe(true);
    expect(matches(f, exec(proc(1, "/x", { pod: { namespace: "kube-system", name: "p" } })))).toBe(false);
    expect(matches({ namespace: ["kube-system"] }, exec(proc(1, "/x")))).toBe(false);
  });

  test("pod_regex: the pod name; no pod, no match", () => {
    const f = { pod_regex: ["^web-"] };
    expect(matches(f, exec(proc(1, "/x", { pod: { namespace: "d", name: "web-1" } })))).toBe(true);
    expect(matches(f, exec(proc(1, "/x", { pod: { namespace: "d", name: "db-1" } })))).toBe(false);
    expect(matches(f, exec(proc(1, "/x")))).toBe(false);
  });

  test("pid: process.pid is one of them", () => {
    expect(matches({ pid: [5, 7] }, exec(proc(7, "/x")))).toBe(true);
    expect(matches({ pid: [5, 7] }, exec(proc(8, "/x")))).toBe(false);
  });

  test("pid_set: the pids and their descendants, learnt from parent pids as events pass", () => {
    const p = compileTetragonFilter({ pid_set: [100] });
    expect(p(exec(proc(100, "/bin/sh")))).toBe(true);
    expect(p(exec(proc(200, "/bin/ls"), proc(100, "/bin/sh")))).toBe(true); // child: learnt
    expect(p(exec(proc(300, "/bin/cat"), proc(200, "/bin/ls")))).toBe(true); // grandchild via the cache
    expect(p(ev("process_exit", { process: proc(300, "/bin/cat") }))).toBe(true); // cached pid alone
    expect(p(exec(proc(400, "/bin/x"), proc(1, "/sbin/init")))).toBe(false);
    // A grandchild whose parent never passed through this filter is not known, as in Tetragon.
    const q = compileTetragonFilter({ pid_set: [100] });
    expect(q(exec(proc(300, "/bin/cat"), proc(200, "/bin/ls")))).toBe(false);
  });

  test("event_set: the event type, by Tetragon name or number", () => {
    const f = parseFilterObject({ event_set: ["PROCESS_EXIT", 9] });
    expect(f.event_set).toEqual(["process_exit", "process_kprobe"]);
    expect(matches(f, kprobe(proc(1, "/x"), "p"))).toBe(true);
    expect(matches(f, ev("process_exit", { process: proc(1, "/x") }))).toBe(true);
    expect(matches(f, exec(proc(1, "/x")))).toBe(false);
  });

  test("arguments_regex: process.arguments (a missing field reads as empty)", () => {
    expect(matches({ arguments_regex: ["--secret"] }, exec(proc(1, "/x", { arguments: "-a --secret=1" })))).toBe(true);
    expect(matches({ arguments_regex: ["--secret"] }, exec(proc(1, "/x", { arguments: "-a" })))).toBe(false);
    expect(matches({ arguments_regex: ["^$"] }, exec(proc(1, "/x")))).toBe(true);
  });

  test("policy_names: the event's policy_name; events without one never match", () => {
    expect(matches({ policy_names: ["a", "b"] }, kprobe(proc(1, "/x"), "b"))).toBe(true);
    expect(matches({ policy_names: ["a"] }, kprobe(proc(1, "/x"), "b"))).toBe(false);
    expect(matches({ policy_names: ["a"] }, exec(proc(1, "/x")))).toBe(false);
  });

  test("health_check: a process or parent in a container marked maybe_exec_probe", () => {
    const probe = proc(1, "/bin/ping", { pod: { namespace: "d", name: "p", container: { maybe_exec_probe: true } } });
    expect(matches({ health_check: true }, exec(probe))).toBe(true);
    expect(matches({ health_check: true }, exec(proc(2, "/x"), probe))).toBe(true);
    expect(matches({ health_check: false }, exec(probe))).toBe(false);
    expect(matches({ health_check: false }, exec(proc(1, "/x")))).toBe(true);
  });

  test("fields of one line AND; values of one field OR", () => {
    const f = { event_set: ["process_exec"], binary_regex: ["curl", "wget"] };
    expect(matches(f, exec(proc(1, "/usr/bin/wget")))).toBe(true);
    expect(matches(f, kprobe(proc(1, "/usr/bin/wget"), "p"))).toBe(false);
    expect(matches(f, exec(proc(1, "/bin/ls")))).toBe(false);
  });
});

describe("allow and deny lists", () => {
  const lines = (t: string) => parseFilterLines(t);
  const curl = exec(proc(1, "/usr/bin/curl"));
  const ls = exec(proc(2, "/bin/ls"));
  const kp = kprobe(proc(3, "/bin/cat"), "watch");

  test("no lists: no gate at all", () => {
    expect(compileExportFilter([], [])).toBeUndefined();
  });

  test("allow lines OR; an event passes when any line matches", () => {
    const f = compileExportFilter(lines('{"binary_regex":["curl"]}\n{"event_set":["PROCESS_KPROBE"]}'), [])!;
    expect([curl, ls, kp].map(f)).toEqual([true, false, true]);
  });

  test("deny lines OR and win over the allow list", () => {
    const f = compileExportFilter(lines('{"event_set":["PROCESS_EXEC","PROCESS_KPROBE"]}'), lines('{"binary_regex":["curl"]}\n{"policy_names":["watch"]}'))!;
    expect([curl, ls, kp].map(f)).toEqual([false, true, false]);
  });

  test("a deny list alone passes everything else", () => {
    const f = compileExportFilter([], lines('{"binary_regex":["^/bin/"]}'))!;
    expect([curl, ls, kp].map(f)).toEqual([true, false, false]);
  });

  test("filter lines may span lines and be separated by blank lines", () => {
    expect(lines('\n{\n  "pid": [1]\n}\n\n{"pid":[2]}\n')).toEqual([{ pid: [1] }, { pid: [2] }]);
  });

  test("Helm's default deny list parses", () => {
    expect(lines('{"health_check":true}\n{"namespace":["","cilium","kube-system"]}')).toEqual([{ health_check: true }, { namespace: ["", "cilium", "kube-system"] }]);
  });
});
