// src/events/filter.ts: the allow-list semantics shared by /v1/events and `ward events`.
import { describe, expect, test } from "bun:test";
import { compileFilter, eventTypeOf, filterFromQuery, filterToQuery, FilterError, type EventFilterSpec } from "../../../src/events/filter.ts";

const exec = (binary: string, pod?: { namespace: string; name: string }) => ({
  process_exec: { process: { binary, ...(pod ? { pod } : {}) } },
  node_name: "n",
  time: "t",
});

describe("compileFilter", () => {
  test("an empty spec passes everything", () => {
    expect(compileFilter({})(exec("/x"))).toBe(true);
    expect(compileFilter({})({})).toBe(true);
  });

  test("fields AND, values OR", () => {
    const f = compileFilter({ eventTypes: ["PROCESS_EXEC", "process_exit"], process: "^/usr/bin/" });
    expect(f(exec("/usr/bin/curl"))).toBe(true);
    expect(f(exec("/bin/curl"))).toBe(false);
    expect(f({ process_exit: { process: { binary: "/usr/bin/x" } } })).toBe(true);
    expect(f({ process_kprobe: { process: { binary: "/usr/bin/x" } } })).toBe(false);
  });

  test("regexes search anywhere (no implicit anchors), like RE2 in Tetragon", () => {
    expect(compileFilter({ process: "curl" })(exec("/usr/bin/curl-x"))).toBe(true);
  });

  test("events without the field do not match a filter on it", () => {
    expect(compileFilter({ process: "." })({ process_exec: {} })).toBe(false);
    expect(compileFilter({ policyNames: ["p"] })(exec("/x"))).toBe(false);
    expect(compileFilter({ pod: "." })(exec("/x"))).toBe(false);
  });

  test('namespace "" means host processes', () => {
    const f = compileFilter({ namespaces: [""] });
    expect(f(exec("/x"))).toBe(true);
    expect(f(exec("/x", { namespace: "default", name: "p" }))).toBe(false);
  });

  test("unknown event types and bad regexes throw FilterError naming the field", () => {
    const bad: [EventFilterSpec, string][] = [
      [{ eventTypes: ["PROCESS_EXECC"] }, "event_types"],
      [{ process: "[" }, "process"],
      [{ pod: "(" }, "pod"],
    ];
    for (const [spec, field] of bad) {
      try {
        compileFilter(spec);
        throw new Error("no error");
      } catch (err) {
        expect(err).toBeInstanceOf(FilterError);
        expect((err as FilterError).field).toBe(field);
      }
    }
  });
});

describe("query round trip", () => {
  test("filterToQuery and filterFromQuery are inverse", () => {
    const spec: EventFilterSpec = { eventTypes: ["PROCESS_EXEC", "PROCESS_EXIT"], process: "a,b", policyNames: ["x", "y"], namespaces: ["", "kube-system"], pod: "^c" };
    expect(filterFromQuery(filterToQuery(spec))).toEqual(spec);
  });

  test("repeated list parameters accumulate", () => {
    expect(filterFromQuery(new URLSearchParams("event_types=A&event_types=B,C")).eventTypes).toEqual(["A", "B", "C"]);
  });

  test("unknown or repeated regex parameters throw", () => {
    expect(() => filterFromQuery(new URLSearchParams("procss=x"))).toThrow(FilterError);
    expect(() => filterFromQuery(new URLSearchParams("process=a&process=b"))).toThrow(FilterError);
  });
});

test("eventTypeOf skips envelope keys", () => {
  expect(eventTypeOf({ node_name: "n", time: "t", process_exit: {} })).toBe("process_exit");
  expect(eventTypeOf({ node_name: "n" })).toBeUndefined();
});
