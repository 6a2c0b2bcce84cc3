// The pure parts of the VM harness: the newc archive is what cpio (busybox) reads back, and
// result lines are found on a console full of other output.
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { gunzipSync } from "node:zlib";
import { buildInitramfs, parseRecords, VM_MARKER } from "../../build/vm.ts";

const dir = mkdtempSync(join(tmpdir(), "ward-vm-harness-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("vm harness", () => {
  test("buildInitramfs writes a gzip'd newc archive that cpio extracts with modes, links and dirs", () => {
    const src = join(dir, "src-file");
    writeFileSync(src, "from the host\n", { mode: 0o750 });
    const archive = buildInitramfs(
      [
        { path: "/init", data: "#!/bin/sh\necho hi\n", mode: 0o755 },
        { path: "/deep/nested/file", file: src },
        { path: "/bin/sh", symlink: "busybox" },
        { path: "/empty", dir: true },
      ],
      join(dir, "initramfs.cpio.gz"),
    );
    const out = join(dir, "out");
    spawnSync("mkdir", ["-p", out]);
    const cpio = spawnSync("busybox", ["cpio", "-i", "-d"], { cwd: out, input: gunzipSync(readFileSync(archive)) });
    expect(cpio.status).toBe(0);
    expect(readFileSync(join(out, "init"), "utf8")).toBe("#!/bin/sh\necho hi\n");
    expect(statSync(join(out, "init")).mode & 0o777).toBe(0o755);
    expect(readFileSync(join(out, "deep/nested/file"), "utf8")).toBe("from the host\n");
    expect(statSync(join(out, "deep/nested/file")).mode & 0o777).toBe(0o750);
    expect(readlinkSync(join(out, "bin/sh"))).toBe("busybox");
    expect(statSync(join(out, "empty")).isDirectory()).toBe(true);
    expect(existsSync(join(out, "TRAILER!!!"))).toBe(false);
  });

  test("parseRecords finds marker lines among kernel and program output", () => {
    const console = [
      "[    0.000000] Linux version 6.1.0",
      `${VM_MARKER}{"kind":"boot","release":"6.1.0-57-cloud-amd64"}`,
      "some program chatter",
      `prefix noise ${VM_MARKER}{"kind":"check","name":"x","ok":true}`,
      `${VM_MARKER}{"kind":"check", broken`,
    ].join("\n");
    const records = parseRecords(console);
    expect(records).toHaveLength(3);
    expect(records[0]).toEqual({ kind: "boot", release: "6.1.0-57-cloud-amd64" });
    expect(records[1]).toEqual({ kind: "check", name: "x", ok: true });
    expect(records[2]?.kind).toBe("unparsed");
  });
});
