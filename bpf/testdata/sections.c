// SPDX-License-Identifier: GPL-2.0-only
// Loader test fixture: one program for each section kind the loader classifies, plus the
// object features the linker must handle (map-in-map, bpf-to-bpf calls, .data/.bss/
// .rodata globals). This kernel loads some of them and refuses others (LSM and fentry
// loads get EPERM; kprobes have no PMU); the test checks each outcome.
#include "vmlinux.h"
#include "ward_bpf.h"

/* Global data: one variable in each data section. The raw tracepoint adds rodata_step
 * to bss_counter and data_counter on every syscall of target_tgid. */
volatile const __u32 target_tgid = 0;
volatile const __u64 rodata_step = 1;
__u64 data_counter = 100;
__u64 bss_counter;

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} hits SEC(".maps");

/* Map-in-map: slot 1 of the outer map is the inner map at load time. */
struct inner_map {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} inner SEC(".maps");

struct {
	__uint(type, WARD_MAP_ARRAY_OF_MAPS);
	__uint(max_entries, 2);
	__type(key, __u32);
	__array(values, struct inner_map);
} outer SEC(".maps") = {
	.values = { [1] = &inner },
};

/* A static subprogram (called through the .text section symbol). */
static __noinline __u64 bump(__u32 slot)
{
	__u64 *v = bpf_map_lookup_elem(&hits, &slot);

	if (!v)
		return 0;
	__sync_fetch_and_add(v, 1);
	return *v;
}

/* A global subprogram (called through its own FUNC symbol; verified on its own). */
__noinline int count_hit(__u32 slot)
{
	if (slot >= 8)
		return 0;
	return bump(slot) > 0;
}

static __always_inline int mine(void)
{
	return (__u32)(bpf_get_current_pid_tgid() >> 32) == target_tgid;
}

SEC("raw_tracepoint/sys_enter")
int raw_tp_sys_enter(struct bpf_raw_tracepoint_args *ctx)
{
	if (!mine())
		return 0;
	bss_counter += rodata_step;
	data_counter += rodata_step;
	count_hit(0);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_openat")
int tp_sys_enter_openat(struct trace_event_raw_sys_enter *ctx)
{
	if (!mine())
		return 0;
	count_hit(1);
	return 0;
}

SEC("lsm/file_open")
int lsm_file_open(unsigned long long *ctx)
{
	count_hit(2);
	return 0;
}

SEC("fentry/do_unlinkat")
int fentry_do_unlinkat(unsigned long long *ctx)
{
	count_hit(3);
	return 0;
}

SEC("kprobe/do_unlinkat")
int kprobe_do_unlinkat(struct pt_regs *ctx)
{
	count_hit(4);
	return 0;
}

/* No target in the section name: the test attaches it to a symbol it picks. */
SEC("uprobe")
int uprobe_any(struct pt_regs *ctx)
{
	if (!mine())
		return 0;
	count_hit(5);
	return 0;
}

SEC("cgroup/sock_create")
int cgroup_sock_create(struct bpf_sock *sk)
{
	count_hit(6);
	return 1;
}

/* Socket filter reading through the map-in-map: accepts nothing (returns 0 bytes). */
SEC("socket")
int socket_filter(struct __sk_buff *skb)
{
	__u32 slot = 1, key = 0;
	void *inner_map = bpf_map_lookup_elem(&outer, &slot);
	__u64 *v;

	if (!inner_map)
		return 0;
	v = bpf_map_lookup_elem(inner_map, &key);
	if (v)
		__sync_fetch_and_add(v, 1);
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
