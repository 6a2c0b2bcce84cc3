// SPDX-License-Identifier: GPL-2.0-only
// Loader test fixture: counts openat(2) calls made by one process (target_tgid, set in
// .rodata before load). tp_btf/sys_enter gets (struct pt_regs *regs, long id).
#include "vmlinux.h"
#include "ward_bpf.h"

#define NR_OPENAT 257 /* x86_64 */

volatile const __u32 target_tgid = 0;

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} openat_count SEC(".maps");

SEC("tp_btf/sys_enter")
int count_openat(unsigned long long *ctx)
{
	long id = (long)WARD_CTX_ARG(ctx, 1);
	__u32 key = 0;
	__u64 *count;

	if (id != NR_OPENAT)
		return 0;
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	count = bpf_map_lookup_elem(&openat_count, &key);
	if (count)
		__sync_fetch_and_add(count, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
