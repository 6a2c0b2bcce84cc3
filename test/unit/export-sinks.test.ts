// Export sinks: rotation keeps N files and loses no line, close flushes, stdout sink writes
// whole lines, compact rendering matches tetra's format.
import { afterEach, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { compactLine } from "../../src/export/compact.ts";
import { JsonlFileSink } from "../../src/export/jsonl-file.ts";
import { StdoutSink } from "../../src/export/stdout.ts";

const dirs: string[] = [];
function tmp(): string {
  const d = mkdtempSync(join(tmpdir(), "ward-export-"));
  dirs.push(d);
  return d;
}
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

describe("jsonl file sink", () => {
  test("rotates by size, keeps maxBackups files, loses no line", async () => {
    const dir = tmp();
    const path = join(dir, "events.log");
    const sink = new JsonlFileSink(path, { maxBytes: 4096, maxBackups: 3 });
    const lines = Array.from({ length: 400 }, (_, i) => JSON.stringify({ n: i, pad: "x".repeat(40) }));
    for (const l of lines) sink.write(l);
    await sink.close();
    const files = readdirSync(dir).sort();
    expect(files).toEqual(["events.log", "events.log.1", "events.log.2", "events.log.3"]);
    for (const f of files) expect(readFileSync(join(dir, f)).length).toBeLessThanOrEqual(4096);
    // The kept files hold the newest lines, contiguous and in order.
    const kept = ["events.log.3", "events.log.2", "events.log.1", "events.log"]
      .flatMap((f) => readFileSync(join(dir, f), "utf8").split("\n").filter((l) => l !== ""))
      .map((l) => (JSON.parse(l) as { n: number }).n);
    expect(kept[kept.length - 1]).toBe(399);
    kept.forEach((n, i) => i > 0 && expect(n).toBe(kept[i - 1]! + 1));
    expect(sink.rotations).toBeGreaterThan(3);
  });

  test("appends to an existing file and flushes on flush()", async () => {
    const dir = tmp();
    const path = join(dir, "e.jsonl");
    const a = new JsonlFileSink(path);
    a.write('{"a":1}');
    await a.flush();
    expect(readFileSync(path, "utf8")).toBe('{"a":1}\n');
    await a.close();
    const b = new JsonlFileSink(path);
    b.write('{"b":2}');
    await b.close();
    b.write('{"dropped":true}');
    expect(readFileSync(path, "utf8")).toBe('{"a":1}\n{"b":2}\n');
    expect(existsSync(`${path}.1`)).toBe(false);
  });
});

describe("stdout sink", () => {
  test("writes newline-terminated lines to its fd on flush", async () => {
    const dir = tmp();
    const path = join(dir, "out");
    const fd = openSync(path, "w");
    const s = new StdoutSink(fd);
    s.write("one");
    s.write("two");
    expect(readFileSync(path, "utf8")).toBe(""); // buffered
    await s.close();
    closeSync(fd);
    expect(readFileSync(path, "utf8")).toBe("one\ntwo\n");
  });
});

describe("compact", () => {
  const proc = { binary: "/usr/bin/true", arguments: 'a "b c"' };
  test("exec and exit lines", () => {
    expect(compactLine({ process_exec: { process: proc }, node_name: "n1", time: "t" })).toBe('🚀 process n1 /usr/bin/true a "b c"');
    expect(compactLine({ process_exit: { process: proc, signal: "SIGKILL" }, node_name: "n1" })).toBe(
      '💥 exit    n1 /usr/bin/true a "b c" SIGKILL',
    );
    expect(compactLine({ process_exit: { process: proc, status: 3 }, node_name: "n1" })).toBe('💥 exit    n1 /usr/bin/true a "b c" 3');
    expect(compactLine({ process_exit: { process: { binary: "/bin/x" } }, node_name: "n1" })).toBe("💥 exit    n1 /bin/x  0");
  });
  test("pod source and unknown types", () => {
    const p = { ...proc, pod: { namespace: "kube-system", name: "tetragon" }, binary: "/usr/bin/curl", arguments: "cilium.io" };
    expect(compactLine({ process_exec: { process: p }, node_name: "n1" })).toBe("🚀 process kube-system/tetragon /usr/bin/curl cilium.io");
    expect(compactLine({ process_kprobe: {} })).toBeUndefined();
  });
});
