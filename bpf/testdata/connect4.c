// SPDX-License-Identifier: GPL-2.0-only
// Loader test fixture: cgroup/connect4 that denies (returns 0, the caller sees EPERM)
// connections to denied_port, and allows everything else.
#include "vmlinux.h"
#include "ward_bpf.h"

volatile const __u16 denied_port = 0; /* host byte order */

SEC("cgroup/connect4")
int deny_port(struct bpf_sock_addr *ctx)
{
	/* user_port holds the port in network byte order in its low 16 bits. */
	if (ctx->user_port == (__u32)ward_htons(denied_port))
		return 0;
	return 1;
}

char LICENSE[] SEC("license") = "GPL";
