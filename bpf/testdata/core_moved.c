// SPDX-License-Identifier: GPL-2.0-only
// Loader test fixture for CO-RE: built against vmlinux_moved.h, where task_struct's pid
// and tgid sit at made-up offsets. Records current->tgid and ->pid read through CO-RE,
// next to the values the helper reports, for the first syscall target_tgid makes.
#include "vmlinux_moved.h"
#include "ward_bpf.h"

volatile const __u32 target_tgid = 0;

/* seen[0] = CO-RE tgid, [1] = CO-RE pid, [2] = helper tgid, [3] = helper pid,
 * [4] = 1 when the tgid field exists in the kernel's task_struct, [5] = the parent's tgid
 * read through a two-step chain (BPF_CORE_READ2). */
struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 6);
	__type(key, __u32);
	__type(value, __u64);
} seen SEC(".maps");

static __always_inline void put(__u32 key, __u64 value)
{
	bpf_map_update_elem(&seen, &key, &value, 0);
}

SEC("tp_btf/sys_enter")
int read_tgid(unsigned long long *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct task_struct *task;

	if ((__u32)(pid_tgid >> 32) != target_tgid)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	put(0, (__u32)BPF_CORE_READ(task, tgid));
	put(1, (__u32)BPF_CORE_READ(task, pid));
	put(2, pid_tgid >> 32);
	put(3, (__u32)pid_tgid);
	put(4, bpf_core_field_exists(task->tgid) ? 1 : 0);
	put(5, (__u32)BPF_CORE_READ2(task, real_parent, tgid));
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
