// The format-file check that decides whether guard_open_exit can read `ret` where it does.
import { describe, expect, test } from "bun:test";
import { OPEN_EXIT_TRACEPOINTS, SYSCALL_EXIT_RET_OFFSET, retField } from "../../src/sensors/open-exit.ts";

const FORMAT_6_18 = `name: sys_exit_openat
ID: 781
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:int __syscall_nr;\toffset:8;\tsize:4;\tsigned:1;
\tfield:long ret;\toffset:16;\tsize:8;\tsigned:1;

print fmt: "0x%lx", REC->ret
`;

describe("retField", () => {
  test("reads ret's offset and size from a syscalls/sys_exit_* format file", () => {
    expect(retField(FORMAT_6_18)).toEqual({ offset: SYSCALL_EXIT_RET_OFFSET, size: 8 });
  });

  test("a record with ret elsewhere is reported as such, and one without ret as undefined", () => {
    expect(retField(FORMAT_6_18.replace("offset:16;", "offset:24;"))).toEqual({ offset: 24, size: 8 });
    expect(retField(FORMAT_6_18.replace("field:long ret;", "field:long value;"))).toBeUndefined();
  });

  test("the tracepoint list names only open-family syscall exits", () => {
    expect([...OPEN_EXIT_TRACEPOINTS].sort()).toEqual(
      ["sys_exit_creat", "sys_exit_open", "sys_exit_open_by_handle_at", "sys_exit_openat", "sys_exit_openat2"],
    );
  });
});
