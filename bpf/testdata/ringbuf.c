// SPDX-License-Identifier: GPL-2.0-only
// Loader test fixture: a ring buffer emitter. Each trigger_syscall made by target_tgid
// emits records_per_call records carrying a sequence number and a payload pattern the
// reader can check; failed reservations are counted so received + lost == sent.
#include "vmlinux.h"
#include "ward_bpf.h"

#define MAX_PER_CALL 512
#define PAYLOAD_LEN 48

struct record {
	__u64 seq;
	__u32 tgid;
	__u32 len;
	__u8 payload[PAYLOAD_LEN];
};

volatile const __u32 target_tgid = 0;
volatile const __s32 trigger_syscall = 110; /* getppid on x86_64 */
volatile const __u32 records_per_call = 1;

struct {
	__uint(type, WARD_MAP_RINGBUF);
	__uint(max_entries, 4096);
} events SEC(".maps");

/* stats[0] = records attempted (sent), stats[1] = reservations that failed (lost). */
struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* The next sequence number. One emitting thread in the tests, so no atomics needed. */
__u64 next_seq = 0;

static __always_inline void emit_one(void)
{
	__u32 key_sent = 0, key_lost = 1;
	__u64 *sent = bpf_map_lookup_elem(&stats, &key_sent);
	__u64 *lost = bpf_map_lookup_elem(&stats, &key_lost);
	struct record *r;
	__u64 seq = next_seq;

	next_seq = seq + 1;
	if (sent)
		__sync_fetch_and_add(sent, 1);
	r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		if (lost)
			__sync_fetch_and_add(lost, 1);
		return;
	}
	r->seq = seq;
	r->tgid = target_tgid;
	r->len = PAYLOAD_LEN;
	for (int i = 0; i < PAYLOAD_LEN; i++)
		r->payload[i] = (__u8)(seq + i);
	bpf_ringbuf_submit(r, 0);
}

SEC("tp_btf/sys_enter")
int emit(unsigned long long *ctx)
{
	long id = (long)WARD_CTX_ARG(ctx, 1);

	if (id != trigger_syscall)
		return 0;
	if ((__u32)(bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	for (__u32 i = 0; i < MAX_PER_CALL; i++) {
		if (i >= records_per_call)
			break;
		emit_one();
	}
	return 0;
}

char LICENSE[] SEC("license") = "GPL";
