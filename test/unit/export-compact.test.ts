// `ward events -o compact` against tetra's compact lines for exec, exit and kprobe events
// (test/fixtures/compact: expected lines written from Tetragon's CompactEncoder, see its
// README), and `-o json` passing Tetragon's JSON through byte for byte.
import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { compactTimestamp } from "../../src/cli/commands/events-format.ts";
import { compactLine } from "../../src/export/compact.ts";

const root = join(import.meta.dir, "..", "..");
const main = join(root, "src", "cli", "main.ts");
const fixtures = join(root, "test", "fixtures", "compact");
const input = readFileSync(join(fixtures, "tetragon-events.jsonl"), "utf8");
const expected = readFileSync(join(fixtures, "tetragon-events.compact"), "utf8");

async function wardEvents(args: string[], stdin: string) {
  const p = Bun.spawn([process.execPath, main, "events", ...args], { stdin: new TextEncoder().encode(stdin), stdout: "pipe", stderr: "pipe", env: { ...process.env, WARD_STATE_FILE: "/nonexistent" } });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { stdout, stderr, code };
}

describe("compact output", () => {
  test("ward events -o compact prints tetra's lines, line for line", async () => {
    const r = await wardEvents(["-o", "compact"], input);
    expect(r.code).toBe(0);
    const got = r.stdout.split("\n");
    const want = expected.split("\n");
    // Compare line by line first, so a failure names the line.
    for (let i = 0; i < Math.max(got.length, want.length); i++) expect({ line: i + 1, text: got[i] }).toEqual({ line: i + 1, text: want[i] });
    expect(r.stdout).toBe(expected);
  }, 30_000);

  test("every fixture event tetra renders gives its line; rate_limit_info gives none", () => {
    const events = input.trim().split("\n").map((l) => JSON.parse(l) as Record<string, unknown>);
    const lines = events.map(compactLine);
    expect(lines.filter((l) => l === undefined)).toHaveLength(1);
    expect(compactLine(events.find((e) => "rate_limit_info" in e)!)).toBeUndefined();
    expect(`${lines.filter((l) => l !== undefined).join("\n")}\n`).toBe(expected);
  });

  test("the capability trailer is padded to column 120 in bytes (Go's len), counted in code points (fmt's width)", () => {
    const line = expected.split("\n").find((l) => l.includes("🛑"))!;
    const head = "🚀 process node-a /bin/bash -i"; // 32 bytes: the rocket is 4
    expect(Buffer.byteLength(head)).toBe(32);
    // fmt.Sprintf("%s %*s", head, 120-32, "🛑 CAP_SYS_ADMIN"): 88 code points, the trailer's 15 right-aligned.
    expect(line).toBe(`${head} ${" ".repeat(88 - 15)}🛑 CAP_SYS_ADMIN`);
  });

  test("events without a process are not rendered (tetra reports an error and skips them)", () => {
    expect(compactLine({ process_exec: {}, node_name: "n" })).toBeUndefined();
    expect(compactLine({ process_kprobe: { function_name: "x" }, node_name: "n" })).toBeUndefined();
    expect(compactLine({ node_name: "n" })).toBeUndefined();
  });
});

describe("--timestamps", () => {
  test("prefixes the event time in UTC with nine fractional digits, as tetra's", async () => {
    const r = await wardEvents(["-o", "compact", "--timestamps"], input);
    expect(r.code).toBe(0);
    const first = r.stdout.split("\n")[0];
    expect(first).toBe("2026-01-01T00:00:01.123456789Z 🚀 process node-a /usr/bin/curl cilium.io");
    expect(compactTimestamp("2024-04-14T02:17:46Z")).toBe("2024-04-14T02:17:46.000000000Z");
    expect(compactTimestamp("2024-04-14T02:17:46.5Z")).toBe("2024-04-14T02:17:46.500000000Z");
    expect(compactTimestamp(undefined)).toBe("1970-01-01T00:00:00.000000000Z");
  }, 30_000);
});

describe("json output", () => {
  test("ward events -o json passes Tetragon's JSON lines through unchanged", async () => {
    const r = await wardEvents(["-o", "json"], input);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(input);
  }, 30_000);
});
