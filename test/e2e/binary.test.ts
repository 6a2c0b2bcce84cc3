// The single binary: dist/ward runs from another directory with nothing next to it, and
// the sensor objects are embedded (read back byte-identical from a compiled entry point).
import { describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { objectNames } from "../../src/bpf/objects.ts";
import { VERSION } from "../../src/version.ts";
import { ensureBinary } from "../lib/binary.ts";
import { kernelTest } from "../lib/host.ts";

const root = join(import.meta.dir, "..", "..");

function runIn(cwd: string, cmd: string, args: string[]) {
  const r = spawnSync(cmd, args, { cwd, encoding: "utf8", timeout: 60_000 });
  return { code: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

describe("dist/ward", () => {
  test("`ward version` runs from /tmp", async () => {
    const ward = await ensureBinary();
    const r = runIn("/tmp", ward, ["version"]);
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout.trim()).toBe(`ward ${VERSION}`);
  }, 120_000);

  test("embedded sensor objects read back byte-identical from a compiled binary in /tmp", () => {
    // A tiny entry compiled the same way as dist/ward (bun build --compile) that prints
    // each embedded object's size and hash; run from /tmp so no checkout path can help.
    const dir = mkdtempSync(join(tmpdir(), "ward-embed-"));
    try {
      const entry = join(dir, "entry.ts");
      writeFileSync(
        entry,
        `import { objectNames, readObject } from ${JSON.stringify(join(root, "src", "bpf", "objects.ts"))};\n` +
          `const out: Record<string, string> = {};\n` +
          `for (const n of objectNames()) out[n] = new Bun.CryptoHasher("sha256").update(readObject(n)).digest("hex");\n` +
          `process.stdout.write(JSON.stringify(out));\n`,
      );
      const exe = join(dir, "embed");
      const b = runIn(root, process.execPath, ["build", "--compile", entry, "--outfile", exe]);
      expect(b.stderr).not.toContain("error");
      expect(b.code).toBe(0);
      rmSync(entry);
      const r = runIn("/tmp", exe, []);
      expect(r.code).toBe(0);
      const got = JSON.parse(r.stdout) as Record<string, string>;
      const names = objectNames();
      expect(names.length).toBeGreaterThan(0);
      expect(Object.keys(got).sort()).toEqual(names);
      for (const n of names) {
        const want = new Bun.CryptoHasher("sha256").update(readFileSync(join(root, "bpf", "obj", `${n}.o`))).digest("hex");
        expect({ n, sha: got[n] }).toEqual({ n, sha: want });
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  // The machine facts from design.md: tp_btf and cgroup programs work, LSM loads are
  // refused with EPERM. The probe runs real loads, so this needs root.
  kernelTest("`ward probe --json` from /tmp reports tp_btf and cgroup supported, LSM refused", async () => {
    const ward = await ensureBinary();
    const r = runIn("/tmp", ward, ["probe", "--json"]);
    expect(r.code).toBe(0);
    type Status = { status: string; code?: string };
    const report = JSON.parse(r.stdout) as {
      kernel: { release: string; btf: boolean };
      programTypes: Record<string, Status>;
      attach: Record<string, Status>;
    };
    expect(report.kernel.btf).toBe(true);
    expect(report.attach.tp_btf?.status).toBe("supported");
    expect(report.attach.cgroup?.status).toBe("supported");
    expect(report.programTypes.cgroup_sock_addr?.status).toBe("supported");
    expect(report.programTypes.tracing?.status).toBe("supported");
    expect(report.attach.lsm).toMatchObject({ status: "refused", code: "EPERM" });
    expect(report.programTypes.lsm).toMatchObject({ status: "refused", code: "EPERM" });
  }, 120_000);
});
