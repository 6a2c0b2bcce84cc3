// /v1/events over a real HTTP server (Bun.serve, loopback TCP): a client that stops reading
// does not stall the publisher or another client, and when it reads again its stream tells
// it, with a `lost` record, exactly how many of its events it missed.
import { afterEach, expect, test } from "bun:test";
import { LOSS_SUBSCRIBER_QUEUE } from "../../src/agent/event-hub.ts";
import { AUTH, execEvent, makeFixture } from "./lib/api-fixture.ts";

let server: ReturnType<typeof Bun.serve> | undefined;
afterEach(() => {
  server?.stop(true);
  server = undefined;
});

/** Splits a stream into lines as they arrive. */
function lineReader(res: Response) {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let buf = "";
  return {
    async next(): Promise<string | undefined> {
      for (;;) {
        const i = buf.indexOf("\n");
        if (i >= 0) {
          const line = buf.slice(0, i);
          buf = buf.slice(i + 1);
          if (line === "") continue; // the stream's opening blank line
          return line;
        }
        const { done, value } = await reader.read();
        if (done) return undefined;
        buf += dec.decode(value, { stream: true });
      }
    },
  };
}

test("a stalled client loses only its own events and is told how many; a second client with another filter gets exactly its own", async () => {
  const QUEUE = 64;
  const f = makeFixture({}, QUEUE);
  server = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: f.app.fetch, idleTimeout: 0 });
  const url = `http://127.0.0.1:${server.port}/v1/events`;
  const slowRes = await fetch(`${url}?process=${encodeURIComponent("^/slow/")}`, { headers: AUTH });
  const fastRes = await fetch(`${url}?process=${encodeURIComponent("^/fast/")}`, { headers: AUTH });
  for (let i = 0; i < 200 && f.hub.counters().subscribers < 2; i++) await Bun.sleep(5);
  expect(f.hub.counters().subscribers).toBe(2);

  // 4 KiB of arguments per event, so the stalled client's socket buffers fill up quickly.
  const pad = "x".repeat(4096);
  const N = 3200;
  const fast = lineReader(fastRes);
  const fastGot: string[] = [];
  const fastDone = (async () => {
    for (;;) {
      const l = await fast.next();
      if (l === undefined) return;
      fastGot.push(l);
    }
  })();
  // Publishing never waits for a reader: each batch returns at once even though the slow
  // client reads nothing. Between batches the test lets the fast client catch up (it reads
  // as fast as it can; the batch is below its backlog), so it must lose nothing.
  const BATCH = 32;
  let maxBatchMs = 0;
  for (let i = 0; i < N; i += BATCH) {
    const t0 = performance.now();
    for (let j = i; j < i + BATCH; j++) {
      f.hub.publish(execEvent(`/slow/${j}`, { arguments: pad }));
      f.hub.publish(execEvent(`/fast/${j}`, { arguments: pad }));
    }
    maxBatchMs = Math.max(maxBatchMs, performance.now() - t0);
    const deadline = Date.now() + 10_000;
    while (fastGot.length < i + BATCH && Date.now() < deadline) await Bun.sleep(1);
  }
  expect(fastGot.length).toBe(N);
  expect(fastGot.every((l, j) => (JSON.parse(l) as { process_exec: { process: { binary: string } } }).process_exec.process.binary === `/fast/${j}`)).toBe(true);
  expect(maxBatchMs).toBeLessThan(1000);

  const lost = f.hub.counters().lost[LOSS_SUBSCRIBER_QUEUE] ?? 0;
  // Far more than the backlog and the socket buffers can hold was published for the slow client.
  expect(lost).toBeGreaterThan(0);
  // The streams end (as at agent shutdown); each still delivers what is queued for it.
  f.hub.closeSubscribers();
  await fastDone;

  // The slow client resumes: every event it was sent arrives in order, then one lost record
  // at the gap, then whatever came after; events + count == N.
  const slow = lineReader(slowRes);
  let events = 0;
  let lostCount = 0;
  let records = 0;
  let expectNext = 0;
  for (;;) {
    const l = await slow.next();
    if (l === undefined) break;
    const j = JSON.parse(l) as { lost?: { count: number }; process_exec?: { process: { binary: string } } };
    if (j.lost) {
      records++;
      lostCount += j.lost.count;
      expectNext += j.lost.count;
      continue;
    }
    expect(j.process_exec!.process.binary).toBe(`/slow/${expectNext}`);
    expectNext++;
    events++;
  }
  if (process.env.WARD_TEST_VERBOSE) process.stderr.write(`slow client: ${events} events, ${lostCount} lost in ${records} record(s); publish batch max ${maxBatchMs.toFixed(1)} ms\n`);
  expect(records).toBeGreaterThanOrEqual(1);
  expect(lostCount).toBe(lost);
  expect(events + lostCount).toBe(N);
  // What it did get is bounded: the backlog plus what the kernel and the HTTP layer buffered.
  expect(events).toBeLessThan(N);
}, 60_000);
