// SPDX-License-Identifier: GPL-2.0-only
// Loader test fixture: a socket filter the verifier must reject. It indexes a map value
// with the packet length, which is unbounded, so the access may leave the value.
#include "vmlinux.h"
#include "ward_bpf.h"

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[4]);
} table SEC(".maps");

SEC("socket")
int out_of_bounds(struct __sk_buff *skb)
{
	__u32 key = 0;
	__u64 *v = bpf_map_lookup_elem(&table, &key);

	if (!v)
		return 0;
	return (int)v[skb->len];
}

char LICENSE[] SEC("license") = "GPL";
