// GET /v1/events: NDJSON and SSE framing, query filters, bad filters, slow-reader losses,
// and streams ending when the agent closes its subscribers.
import { describe, expect, test } from "bun:test";
import { LOSS_SUBSCRIBER_QUEUE } from "../../src/agent/event-hub.ts";
import { AUTH, execEvent, makeFixture } from "./lib/api-fixture.ts";

/** Reads from a streamed body until `want` frames (split by `sep`) have arrived. */
async function readFrames(res: Response, sep: string, want: number): Promise<string[]> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  const frames: string[] = [];
  while (frames.length < want) {
    const { done, value } = await reader.read();
    if (done) break;
    buf += dec.decode(value, { stream: true });
    let i: number;
    while ((i = buf.indexOf(sep)) >= 0) {
      // NDJSON streams open with a blank line (see routes/events.ts); it is not an event.
      if (i > 0 || sep !== "\n") frames.push(buf.slice(0, i));
      buf = buf.slice(i + sep.length);
    }
  }
  await reader.cancel();
  return frames;
}

/** Waits until the hub has a subscriber (the handler ran), then publishes. */
async function publishWhenSubscribed(f: ReturnType<typeof makeFixture>, events: Record<string, unknown>[]) {
  for (let i = 0; i < 100 && f.hub.counters().subscribers === 0; i++) await Bun.sleep(2);
  for (const e of events) f.hub.publish(e);
}

describe("GET /v1/events", () => {
  test("NDJSON: one export line per event, newline-terminated", async () => {
    const f = makeFixture();
    const res = await f.app.request("/v1/events", { headers: AUTH });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-ndjson");
    await publishWhenSubscribed(f, [execEvent("/bin/true"), execEvent("/bin/ls")]);
    const lines = await readFrames(res, "\n", 2);
    expect(lines.map((l) => JSON.parse(l))).toEqual([execEvent("/bin/true"), execEvent("/bin/ls")]);
  });

  test("SSE with Accept: text/event-stream: event type and one data line per event", async () => {
    const f = makeFixture();
    const res = await f.app.request("/v1/events", { headers: { ...AUTH, Accept: "text/event-stream" } });
    expect(res.headers.get("content-type")).toStartWith("text/event-stream");
    await publishWhenSubscribed(f, [execEvent("/bin/true"), { process_exit: { process: { binary: "/bin/true" } }, node_name: "n" }]);
    const frames = await readFrames(res, "\n\n", 3);
    expect(frames[0]).toStartWith(":");
    expect(frames[1]).toBe(`event: process_exec\ndata: ${JSON.stringify(execEvent("/bin/true"))}`);
    expect(frames[2]).toStartWith("event: process_exit\ndata: {");
  });

  test("SSE keep-alive comments are sent while idle", async () => {
    const f = makeFixture({ sseKeepAliveMs: 10 });
    const res = await f.app.request("/v1/events", { headers: { ...AUTH, Accept: "text/event-stream" } });
    const frames = await readFrames(res, "\n\n", 3);
    expect(frames.slice(1)).toEqual([": keep-alive", ": keep-alive"]);
  });

  test("filters: event_types, process regex, policy_names, namespace, pod", async () => {
    const events = [
      execEvent("/usr/bin/curl"),
      execEvent("/bin/true"),
      { process_exit: { process: { binary: "/usr/bin/curl" } } },
      { process_kprobe: { process: { binary: "/usr/bin/cat" }, policy_name: "files" } },
      { process_kprobe: { process: { binary: "/usr/bin/cat" }, policy_name: "other" } },
      execEvent("/usr/bin/curl", { pod: { namespace: "kube-system", name: "coredns-1" } }),
    ];
    const cases: [string, number[]][] = [
      ["event_types=PROCESS_EXEC", [0, 1, 5]],
      ["event_types=process_exit,PROCESS_KPROBE", [2, 3, 4]],
      ["process=curl$", [0, 2, 5]],
      ["event_types=PROCESS_EXEC&process=curl", [0, 5]],
      ["policy_names=files", [3]],
      ["namespace=kube-system", [5]],
      ["namespace=", [0, 1, 2, 3, 4]],
      ["pod=^coredns", [5]],
    ];
    for (const [query, want] of cases) {
      const f = makeFixture();
      const res = await f.app.request(`/v1/events?${query}`, { headers: AUTH });
      expect(res.status).toBe(200);
      await publishWhenSubscribed(f, events);
      // Order matters: a leaked event ahead of a wanted one shows up as a mismatch. Leaks
      // after the last wanted event are covered by the filter's own tests.
      const lines = await readFrames(res, "\n", want.length);
      expect({ query, got: lines.map((l) => JSON.parse(l)) }).toEqual({ query, got: want.map((i) => events[i]) });
    }
  });

  test("bad filters are 400 and open no subscription", async () => {
    const f = makeFixture();
    for (const [q, field] of [["event_types=PROCESS_EXCE", "event_types"], ["process=(", "process"], ["proccess=x", "proccess"]]) {
      const res = await f.app.request(`/v1/events?${q}`, { headers: AUTH });
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { code: string; field: string } };
      expect(body.error).toMatchObject({ code: "bad_filter", field });
    }
    expect(f.hub.counters().subscribers).toBe(0);
  });

  test("a reader that falls behind loses events, the loss is counted and a lost record says how many", async () => {
    const f = makeFixture({}, 4); // subscriber queue of 4
    const res = await f.app.request("/v1/events", { headers: AUTH });
    await publishWhenSubscribed(f, Array.from({ length: 20 }, (_, i) => execEvent(`/bin/p${i}`)));
    const lost = f.hub.counters().lost[LOSS_SUBSCRIBER_QUEUE] ?? 0;
    expect(lost).toBeGreaterThan(0);
    f.hub.closeSubscribers();
    const lines = (await res.text()).split("\n").filter((l) => l !== "");
    const records = lines.filter((l) => l.startsWith('{"lost":'));
    expect(records).toHaveLength(1);
    const rec = JSON.parse(records[0]!) as { lost: { count: number; reason: string; first_time: string; last_time: string }; time: string };
    expect(rec.lost).toMatchObject({ count: lost, reason: LOSS_SUBSCRIBER_QUEUE });
    expect(rec.time).toBe(rec.lost.last_time);
    expect(lines.length - 1).toBe(20 - lost);
    // The record sits where the events went missing: after the ones that were queued.
    expect(lines.at(-1)).toBe(records[0]!);
  });

  test("SSE names the lost record's event 'lost'", async () => {
    const f = makeFixture({}, 1);
    const res = await f.app.request("/v1/events", { headers: { ...AUTH, Accept: "text/event-stream" } });
    await publishWhenSubscribed(f, [execEvent("/a"), execEvent("/b"), execEvent("/c")]);
    f.hub.closeSubscribers();
    const text = await res.text();
    expect(text).toContain('event: lost\ndata: {"lost":{"count":2,');
  });

  test("closing subscribers ends the stream; cancelling the body unsubscribes", async () => {
    const f = makeFixture();
    const res = await f.app.request("/v1/events", { headers: AUTH });
    await publishWhenSubscribed(f, []);
    f.hub.closeSubscribers();
    expect(await res.text()).toBe("\n");
    const res2 = await f.app.request("/v1/events", { headers: AUTH });
    await publishWhenSubscribed(f, []);
    expect(f.hub.counters().subscribers).toBe(1);
    await res2.body!.cancel();
    expect(f.hub.counters().subscribers).toBe(0);
  });
});
