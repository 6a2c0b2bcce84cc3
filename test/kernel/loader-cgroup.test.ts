// A hand-assembled cgroup/connect4 program that returns 0 denies connect() with EPERM for
// processes in the cgroup it is attached to, and for nobody else.
import { afterAll, beforeAll, describe, expect } from "bun:test";
import { createServer, type Server } from "node:net";
import { kernelTest } from "../lib/host.ts";
import { Child } from "../lib/child.ts";
import { TestCgroup } from "../lib/cgroup.ts";
import { retProgram } from "../../src/bpf/asm.ts";
import { AttachType, LinkType } from "../../src/bpf/constants.ts";
import { attachCgroup, type Link } from "../../src/bpf/link.ts";
import { BpfProgram, ProgType } from "../../src/bpf/program.ts";

// Connects to 127.0.0.1:<port> for each port read from stdin with a blocking libc connect(2)
// (Bun's own sockets report every failed connect as ECONNREFUSED); prints "ok" or the errno.
const CONNECTOR = `
import { dlopen, read } from "bun:ffi";
const c = dlopen("libc.so.6", {
  socket: { args: ["i32", "i32", "i32"], returns: "i32" },
  connect: { args: ["i32", "ptr", "u32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  __errno_location: { args: [], returns: "ptr" },
}).symbols;
const names = { 1: "EPERM", 13: "EACCES", 111: "ECONNREFUSED" };
process.stdout.write("ready\\n");
for await (const line of console) {
  const sa = new Uint8Array(16);
  const v = new DataView(sa.buffer);
  v.setUint16(0, 2, true);
  v.setUint16(2, Number(line), false);
  sa.set([127, 0, 0, 1], 4);
  const fd = c.socket(2, 1, 0);
  const r = c.connect(fd, sa, 16);
  const e = r < 0 ? read.i32(c.__errno_location(), 0) : 0;
  c.close(fd);
  process.stdout.write((r === 0 ? "ok" : names[e] ?? "errno " + e) + "\\n");
}
`;

let server: Server;
let port = 0;
beforeAll(async () => {
  server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const a = server.address();
  port = typeof a === "object" && a !== null ? a.port : 0;
});
afterAll(() => {
  server?.close();
});

async function tryConnect(c: Child): Promise<string> {
  c.send(String(port));
  return c.nextLine(10_000);
}

describe("cgroup/connect4", () => {
  for (const mode of ["auto", "prog-attach"] as const) {
    kernelTest(`return 0 denies connect() with EPERM inside the cgroup only (${mode === "auto" ? "bpf_link" : "PROG_ATTACH"}); detach lifts it`, async () => {
      const cg = new TestCgroup(`connect4-${mode}`);
      const prog = BpfProgram.load({
        name: "t_deny_conn4",
        type: ProgType.CGROUP_SOCK_ADDR,
        expectedAttachType: AttachType.CGROUP_INET4_CONNECT,
        insns: retProgram(0),
        license: "GPL",
      });
      const inside = new Child([process.execPath, "-e", CONNECTOR]);
      const outside = new Child([process.execPath, "-e", CONNECTOR]);
      let link: Link | undefined;
      try {
        await inside.expectLine("ready");
        await outside.expectLine("ready");
        cg.add(inside.pid);
        expect(cg.pids()).toContain(inside.pid);
        // Before attaching, both connect.
        expect(await tryConnect(inside)).toBe("ok");
        link = attachCgroup(prog, cg.path, AttachType.CGROUP_INET4_CONNECT, { mode });
        if (mode === "auto") {
          expect(link.kind).toBe("link");
          expect(link.info().type).toBe(LinkType.CGROUP);
        } else {
          expect(link.kind).toBe("prog-attach");
          expect(() => link!.pin("/sys/fs/bpf/never")).toThrow(/cannot be pinned/);
        }
        expect(await tryConnect(inside)).toBe("EPERM");
        expect(await tryConnect(outside)).toBe("ok");
        link.detach();
        expect(await tryConnect(inside)).toBe("ok");
      } finally {
        link?.close();
        inside.kill();
        outside.kill();
        await inside.proc.exited;
        await outside.proc.exited;
        cg.remove();
        prog.close();
      }
    });
  }
});
