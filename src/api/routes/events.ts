// GET /v1/events: the live event stream, NDJSON by default (blank lines are not events) or Server-Sent Events when the
// client accepts text/event-stream. Filters come as query parameters (src/events/filter.ts).
// The stream pulls from a bounded subscription: a slow reader loses its own events (counted
// as "subscriber_queue_full") and never slows the sensors or the other streams; where it lost
// events its stream carries a `lost` record (src/agent/event-hub.ts has the shape; SSE event
// name "lost") saying how many.
import { Hono } from "hono";
import { compileFilter, filterFromQuery, FilterError, type EventPredicate } from "../../events/filter.ts";
import type { HubEvent } from "../../agent/event-hub.ts";
import { ApiError } from "../errors.ts";
import type { ApiDeps } from "../deps.ts";

const DEFAULT_KEEPALIVE_MS = 15_000;

function wantsSse(accept: string | undefined): boolean {
  return /\btext\/event-stream\b/i.test(accept ?? "");
}

/** SSE frame: the event type names the event, data is the export line (one line, no newlines). */
export function sseFrame(ev: HubEvent): string {
  return `event: ${ev.type}\ndata: ${ev.line}\n\n`;
}

export function ndjsonFrame(ev: HubEvent): string {
  return `${ev.line}\n`;
}

export function eventRoutes(deps: ApiDeps): Hono {
  const r = new Hono();
  r.get("/events", (c) => {
    let filter: EventPredicate;
    try {
      filter = compileFilter(filterFromQuery(new URL(c.req.url).searchParams));
    } catch (err) {
      if (err instanceof FilterError) throw new ApiError(400, err.code, err.message, { field: err.field });
      throw err;
    }
    const sse = wantsSse(c.req.header("accept"));
    const frame = sse ? sseFrame : ndjsonFrame;
    const encoder = new TextEncoder();
    const sub = deps.events.subscribe(filter);
    let keepAlive: ReturnType<typeof setInterval> | undefined;
    const finish = () => {
      if (keepAlive) clearInterval(keepAlive);
      keepAlive = undefined;
      sub.close();
    };
    c.req.raw.signal.addEventListener("abort", finish, { once: true });

    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        // Bun sends the response head only with the first body bytes, so the stream opens
        // with something clients skip: an empty line for NDJSON (parsers may ignore blank
        // lines), a comment for SSE. Without it a client cannot tell "connected, nothing
        // matched yet" from "still connecting".
        if (!sse) {
          controller.enqueue(encoder.encode("\n"));
          return;
        }
        // Periodic comments keep idle connections from being timed out by proxies.
        controller.enqueue(encoder.encode(": ward events\n\n"));
        keepAlive = setInterval(() => {
          try {
            controller.enqueue(encoder.encode(": keep-alive\n\n"));
          } catch {
            finish();
          }
        }, deps.sseKeepAliveMs ?? DEFAULT_KEEPALIVE_MS);
      },
      async pull(controller) {
        const ev = await sub.next();
        if (ev === undefined) {
          finish();
          controller.close();
          return;
        }
        controller.enqueue(encoder.encode(frame(ev)));
      },
      cancel() {
        finish();
      },
    });
    return new Response(body, {
      headers: {
        "content-type": sse ? "text/event-stream; charset=utf-8" : "application/x-ndjson",
        "cache-control": "no-cache",
        "x-content-type-options": "nosniff",
      },
    });
  });
  return r;
}
