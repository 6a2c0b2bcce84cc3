// SPDX-License-Identifier: GPL-2.0-only
// Loader test fixture (must not parse): the program references a map that the object
// declares but never defines (an undefined .maps symbol), so the ld_imm64 relocation
// points at nothing.
#include "vmlinux.h"
#include "ward_bpf.h"

extern struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} missing_map __attribute__((section(".maps")));

SEC("raw_tracepoint/sys_enter")
int uses_missing_map(void *ctx)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&missing_map, &key);

	if (v)
		*v += 1;
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
