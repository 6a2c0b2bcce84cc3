// SPDX-License-Identifier: GPL-2.0-only
// Loader test fixture (must not parse): a program in a section whose name matches no
// program type, so parseElf has to say which section it could not classify.
#include "vmlinux.h"
#include "ward_bpf.h"

SEC("wardbogus/not_a_hook")
int unknown_kind(void *ctx)
{
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
