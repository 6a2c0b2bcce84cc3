// SPDX-License-Identifier: GPL-2.0
/*
 * generic.c: Tetragon's generic hooks (kprobes with syscall: true, tracepoints) decided in
 * the kernel from the policy engine's tables (include/ward_filter.h).
 *
 * Programs:
 *   gen_sys_enter   tp_btf/sys_enter   syscall hooks, looked up by syscall number
 *   gen_sys_exit    tp_btf/sys_exit    hooks with return: true / matchReturnArgs
 *   gen_open_exit   tracepoint/syscalls/sys_exit_{open,openat,openat2,creat,open_by_handle_at}
 *                                      the same return hooks on the open family only, where
 *                                      userspace chose them (no 32-bit processes possible):
 *                                      runs at the exit of those syscalls, not of every one
 *   gen_tracepoint  tracepoint/        any tracefs event; the record's common_type names it
 *   gen_uprobe      uprobe             user functions (spec.uprobes), one link per path:offset
 *                                      whose cookie is the dispatch key; the function's argument
 *                                      registers laid out as a syscall's, strings from user memory
 *   gen_lsm_<hook>  lsm/<hook>         BPF LSM hooks (lsmhooks, kprobes on security_<hook>):
 *                                      socket_connect/bind, path_unlink/rename/truncate/chmod/
 *                                      mkdir, task_kill, bpf, kernel_read_file/load_data; loaded
 *                                      only where BPF LSM is active and a policy needs one; their
 *                                      own slot and action callbacks (lsm_slot_cb), so the walk
 *                                      the other programs verify is not grown by them
 *
 * Built a second time as generic_kprobe.o (GEN_KPROBES, bpf/generic_kprobe.c) with the
 * kernel-function programs instead: gen_kprobe, gen_kprobe_override, gen_kretprobe,
 * gen_kprobe_multi, gen_kretprobe_multi. They share this object's maps (userspace hands them
 * in) and its evaluation; what only they need (function arguments, sock/skb/cred objects
 * read with CO-RE, entry records kept for the return, Override) is compiled in only there,
 * so the tracepoint programs stay within the verifier's budget (they use ~90% of it).
 *
 * A hook slot is a ward_hook_config (gen_hooks) plus a gen_slot (gen_slots: where each
 * argument is read from, on/off, monitor). Userspace writes both, then the dispatch entry
 * that points an attach point at the slot; removing goes the other way round.
 *
 * Evaluation: arguments are read once into a per-CPU scratch record; selectors and their
 * matchers are walked with bpf_loop so each callback is verified once, whatever the limits.
 * Selectors are ORed, the first that matches wins; matchers are ANDed (ward_filter.h).
 *
 * Actions happen here: Sigkill and Signal with bpf_send_signal(), which from these
 * tracepoints queues the signal at once, so a process killed at sys_enter/sys_exit dies on
 * its way back to user space, before the call's result reaches it. The call itself still
 * runs (a write is written, a read fills the buffer nobody will use): only return-phase
 * hooks see its result, and only Override could prevent it: the BPF LSM programs fail the
 * call with its argError (a Sigkill there fails it with EPERM too), and a kprobe's entry
 * (gen_kprobe_override: bpf_override_return, on functions the kernel allows error injection
 * for) makes the call return it without running. Post sends a gen_event (rate-limited per
 * selector, scope and argument digest); NoPost suppresses it. Override elsewhere cannot be
 * done (no fmod_ret): userspace rejects it.
 * The agent's tgid (and its test runner) sit in gen_exempt, checked before any action.
 */
#include "vmlinux.h"
#include "ward_bpf.h"
#include "ward_filter.h"
#include "process.h"
#include "generic.h"
#include "scope.h"

char LICENSE[] SEC("license") = "GPL";

#define SIGKILL 9
#define AF_INET 2
#define AF_INET6 10

/* ---------------------------------------------------------------- maps */

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, GEN_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct ward_hook_config);
} gen_hooks SEC(".maps");

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, GEN_MAX_HOOKS);
	__type(key, __u32);
	__type(value, struct gen_slot);
} gen_slots SEC(".maps");

struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, 1024);
	__type(key, struct gen_dispatch_key);
	__type(value, struct gen_dispatch_val);
} gen_dispatch SEC(".maps");

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_globals);
} gen_globals SEC(".maps");

/* tgids no policy may act on: the agent and whoever it vouches for. */
struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} gen_exempt SEC(".maps");

/* The process map of bpf/process.c (same definition): userspace passes the process
 * sensor's map in (replaceMaps), so binaries are judged by what that sensor saw at exec. */
WARD_PROCS_MAP;

/* Value sets, one map per kind, shared by every policy (disjoint set ids). */
#define STR_EQ_MAP(N, ENTRIES) \
	struct { \
		__uint(type, WARD_MAP_HASH); \
		__uint(max_entries, ENTRIES); \
		__uint(map_flags, WARD_F_NO_PREALLOC); \
		__type(key, struct ward_str_eq_key_##N); \
		__type(value, __u8); \
	} gen_str_eq_##N SEC(".maps")
STR_EQ_MAP(16, 4096);
STR_EQ_MAP(32, 4096);
STR_EQ_MAP(64, 4096);
STR_EQ_MAP(128, 4096);
STR_EQ_MAP(256, 4096);
STR_EQ_MAP(512, 1024);
STR_EQ_MAP(1024, 1024);
STR_EQ_MAP(2048, 512);
STR_EQ_MAP(4096, 512);

struct {
	__uint(type, WARD_MAP_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct ward_str_prefix_key);
	__type(value, __u8);
} gen_str_prefix SEC(".maps");

struct {
	__uint(type, WARD_MAP_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct ward_str_postfix_key);
	__type(value, __u8);
} gen_str_postfix SEC(".maps");

struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct ward_int_key);
	__type(value, __u8);
} gen_int_set SEC(".maps");

struct {
	__uint(type, WARD_MAP_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct ward_addr_key);
	__type(value, __u8);
} gen_addr_lpm SEC(".maps");

/* Binary path (zero padded, as ward_proc.bin holds it) -> interned binary id. */
struct gen_bin_path {
	char path[WARD_BIN_PATH_MAX];
};

struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct gen_bin_path);
	__type(value, __u32);
} gen_bin_names SEC(".maps");

struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct ward_bin_set_key);
	__type(value, __u8);
} gen_bin_set SEC(".maps");

/* Post rate limits: last post time per (slot, selector, scope id, argument digest). */
struct gen_rate_key {
	__u32 slot;
	__u32 selector;
	__u64 scope;
	__u64 digest;
};

struct {
	__uint(type, WARD_MAP_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, struct gen_rate_key);
	__type(value, __u64);
} gen_rate SEC(".maps");

struct {
	__uint(type, WARD_MAP_RINGBUF);
	__uint(max_entries, 1024 * 1024);
} gen_events SEC(".maps");

struct {
	__uint(type, WARD_MAP_PERCPU_ARRAY);
	__uint(max_entries, GEN_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} gen_counters SEC(".maps");

/* Per-CPU scratch: the arguments as read (bytes at data[slot * GEN_STR_MAX]), the record
 * sent (bytes packed), lookup keys, and a zero block that is never written. */
struct gen_scratch {
	char path[GEN_STR_MAX * 2]; /* a path built backwards, ending at GEN_STR_MAX */
	struct ward_str_eq_key_4096 eq;
	struct ward_str_prefix_key prefix;
	struct ward_str_postfix_key postfix;
	struct ward_addr_key addr;
	__u32 override;      /* Override asked for at this kprobe (gen_kprobe_override) */
	__s32 override_err;
	struct gen_net net;  /* match_sock's view of a sock/skb argument */
	char zeros[GEN_STR_MAX];
	/* a BPF LSM program's arguments, copied from its ctx at entry (lsm_hook): read from
	 * here, the global functions need no stack for them (6.1's 512-byte chain limit) */
	__u64 lsm_args[8];
};

struct {
	__uint(type, WARD_MAP_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_scratch);
} gen_scratch SEC(".maps");

/* Per-CPU values are capped at 32 KiB, so the records get a map each. */
struct {
	__uint(type, WARD_MAP_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_event);
} gen_ev_scratch SEC(".maps");

struct {
	__uint(type, WARD_MAP_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_event);
} gen_out_scratch SEC(".maps");

/* Never read or written: puts the record and enums userspace decodes into the BTF. */
struct gen_layouts {
	struct gen_event event;
	struct gen_slot slot;
	struct gen_dispatch_key dkey;
	struct gen_dispatch_val dval;
	struct gen_globals globals;
	struct gen_bin_path bin;
	struct gen_ret_key ret_key;
	struct gen_sock_rec sock;
	struct gen_skb_rec skb;
	struct gen_cred_rec cred;
	enum gen_obj obj;
	enum gen_from from;
	enum gen_point point;
	enum gen_counter counter;
};

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_layouts);
} gen_layouts SEC(".maps");

/* ---------------------------------------------------------------- helpers */

#define RD(dst, src, field) ward_core_read(&(dst), sizeof(dst), &(src)->field)
#define OPAQUE(x) asm volatile("" : "+r"(x))
/* An index the verifier can bound: the mask stays in the code (power-of-two n). */
#define BOUND(x, n) ({ __u64 __b = (x); OPAQUE(__b); __b & ((n) - 1); })

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&gen_counters, &idx);
	if (c)
		*c += 1;
}

static __always_inline struct gen_scratch *scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&gen_scratch, &zero);
}

static __always_inline struct gen_event *ev_scratch(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&gen_ev_scratch, &zero);
}

/* What the walk knows about the current call; passed to every bpf_loop callback. */
struct gen_state {
	void *ctx;          /* tracepoint record (GEN_POINT_TP) or tp_btf ctx */
	struct pt_regs *regs;
	__s64 ret;          /* sys_exit: the syscall's return; BPF LSM: what the program returns */
	__u32 point;
	__u32 nr;           /* syscall number / tracepoint id */
	__u32 slot;
	__u32 sel;          /* selector under test */
	__s32 matched;      /* matching selector, -2 none */
	__u32 ok;           /* matchers so far held */
	__u32 ret_ok;       /* return matchers held */
	__u32 tgid;
	/* lazily filled process facts */
	__u32 have_proc;
	__u32 bin_id;
	__u32 parent_bin_id;
	__u32 nspid;
	/* No more fields: the programs are near the verifier's stack limit (512 bytes over the
	 * bpf_loop frames). A kprobe's registers are `ctx`; Override's request is in gen_scratch. */
};

#ifdef GEN_KPROBES
/* Evaluated at a call's return: sys_exit (gen_open_exit uses that point too) or a kretprobe. */
#define GEN_AT_RETURN(st) ((st)->point == GEN_POINT_SYS_EXIT || (st)->point == GEN_POINT_KRETPROBE)

/* The function's own registers at a kprobe's entry (its arguments), else NULL. */
static __always_inline struct pt_regs *func_regs(const struct gen_state *st)
{
	return st->point == GEN_POINT_KPROBE ? (struct pt_regs *)st->ctx : 0;
}

/* A kernel function's argument i (x86_64 calling convention: di si dx cx r8 r9). The switch
 * picks only the offset and one read follows: an offset table on the stack indexed by i would
 * be a variable-offset stack read, which the 6.1 verifier refuses ("invalid variable-offset
 * read from stack"); the paths join again at the read. */
static __always_inline __u64 func_arg(struct pt_regs *regs, __u32 i)
{
	__u64 off, v = 0;

	switch (i) {
	case 0: off = bpf_core_field_offset(regs->di); break;
	case 1: off = bpf_core_field_offset(regs->si); break;
	case 2: off = bpf_core_field_offset(regs->dx); break;
	case 3: off = bpf_core_field_offset(regs->cx); break;
	case 4: off = bpf_core_field_offset(regs->r8); break;
	case 5: off = bpf_core_field_offset(regs->r9); break;
	default: return 0;
	}
	bpf_probe_read_kernel(&v, 8, (char *)regs + off);
	return v;
}
#else
#define GEN_AT_RETURN(st) ((st)->point == GEN_POINT_SYS_EXIT)
#endif

/* The syscall argument registers in order: x86_64 ABI, or i386's for a compat syscall
 * (number with bit 31 set). */
static __always_inline __u64 syscall_arg(struct pt_regs *regs, __u32 i, __u32 nr)
{
	__u64 v = 0;
	if (nr & 0x80000000u) {
		switch (i) {
		case 0: RD(v, regs, bx); break;
		case 1: RD(v, regs, cx); break;
		case 2: RD(v, regs, dx); break;
		case 3: RD(v, regs, si); break;
		case 4: RD(v, regs, di); break;
		case 5: RD(v, regs, bp); break;
		}
		return v & 0xffffffff;
	}
	switch (i) {
	case 0: RD(v, regs, di); break;
	case 1: RD(v, regs, si); break;
	case 2: RD(v, regs, dx); break;
	case 3: RD(v, regs, r10); break;
	case 4: RD(v, regs, r8); break;
	case 5: RD(v, regs, r9); break;
	}
	return v;
}

/* The raw 64-bit value a source names; returns 0 on success. */
/* ---- BPF LSM arguments (GEN_FROM_LSM_ARG): ctx[i] of the hook, as lsm_hook copied it ---- */

static __always_inline __u64 lsm_ctx_arg(struct gen_state *st, __u32 i)
{
	struct gen_scratch *s = scratch();
	return s ? s->lsm_args[i & 7] : 0;
}

/* An integer argument keeps only its declared width (the register's upper bits are not the
 * value); a task argument is read as its tgid (task_kill's target). */
static __always_inline int lsm_arg_value(struct gen_state *st, const struct gen_src *src, __u64 *out)
{
	__u64 v = lsm_ctx_arg(st, src->offset);
	int sgn = (src->flags & GEN_SRC_SIGNED) != 0;

	if (src->flags & GEN_SRC_TASK_TGID) {
		struct task_struct *t = (struct task_struct *)v;
		__u32 tgid = 0;
		if (!t)
			return -1;
		RD(tgid, t, tgid);
		*out = tgid;
		return 0;
	}
	if (src->size == 1)
		v = sgn ? (__u64)(__s64)(__s8)v : (__u8)v;
	else if (src->size == 2)
		v = sgn ? (__u64)(__s64)(__s16)v : (__u16)v;
	else if (src->size == 4)
		v = sgn ? (__u64)(__s64)(__s32)v : (__u32)v;
	*out = v;
	return 0;
}

static __always_inline int source_value(struct gen_state *st, const struct gen_src *src, __u64 *out)
{
	__u64 v = 0;
	switch (src->from) {
	case GEN_FROM_SYSCALL_ARG:
		if (!st->regs)
			return -1;
		*out = syscall_arg(st->regs, src->offset, st->nr);
		return 0;
	case GEN_FROM_SYSCALL_NR:
		*out = st->nr;
		return 0;
#ifdef GEN_KPROBES
	case GEN_FROM_FUNC_ARG:
		if (!func_regs(st))
			return -1;
		*out = func_arg(func_regs(st), src->offset);
		return 0;
#endif
	case GEN_FROM_RETURN:
		*out = (__u64)st->ret;
		return 0;
	case GEN_FROM_TP_ARRAY:
		/* a char array inside the record: its address, read as a kernel string */
		*out = (__u64)st->ctx + (src->offset & 0xfff);
		return 0;
	case GEN_FROM_TP_FIELD:
	case GEN_FROM_TP_DATALOC: {
		__u32 size = src->from == GEN_FROM_TP_DATALOC ? 4 : src->size;
		void *at = (char *)st->ctx + (src->offset & 0xfff);
		if (size == 1) {
			__u8 b = 0;
			if (bpf_probe_read_kernel(&b, 1, at))
				return -1;
			v = (src->flags & GEN_SRC_SIGNED) ? (__u64)(__s64)(__s8)b : b;
		} else if (size == 2) {
			__u16 h = 0;
			if (bpf_probe_read_kernel(&h, 2, at))
				return -1;
			v = (src->flags & GEN_SRC_SIGNED) ? (__u64)(__s64)(__s16)h : h;
		} else if (size == 4) {
			__u32 w = 0;
			if (bpf_probe_read_kernel(&w, 4, at))
				return -1;
			v = (src->flags & GEN_SRC_SIGNED) ? (__u64)(__s64)(__s32)w : w;
		} else {
			if (bpf_probe_read_kernel(&v, 8, at))
				return -1;
		}
		*out = v;
		return 0;
	}
	}
	return -1;
}

/* ---------------------------------------------------------------- argument reading */

static __always_inline int is_int_type(__u16 t)
{
	return (t >= WARD_ARG_S8 && t <= WARD_ARG_U64) || t == WARD_ARG_SYSCALL64 || t == WARD_ARG_CAPS;
}

/* Bytes of a string argument into ev->data[i * GEN_STR_MAX]. */
static __always_inline void read_string(struct gen_state *st, struct gen_event *ev, __u32 i,
					const struct gen_src *src, __u64 raw)
{
	char *dst = &ev->data[(i & 7) * GEN_STR_MAX];
	const void *p = (const void *)raw;
	long n;

	if (i >= GEN_ARG_SLOTS)
		return;
	if (src->from == GEN_FROM_TP_DATALOC) {
		/* __data_loc: offset in the low 16 bits, length in the high 16, inside the record */
		p = (char *)st->ctx + (raw & 0xffff);
		n = bpf_probe_read_kernel_str(dst, GEN_STR_MAX, p);
	} else if (src->flags & GEN_SRC_USER) {
		n = bpf_probe_read_user_str(dst, GEN_STR_MAX, p);
	} else {
		n = bpf_probe_read_kernel_str(dst, GEN_STR_MAX, p);
	}
	if (n <= 0) {
		ev->arg_state[i] = GEN_ARG_ERROR;
		count(GEN_CNT_READ_ERRORS);
		return;
	}
	ev->arg_len[i] = n - 1; /* without the NUL, like Tetragon's string */
	ev->arg_state[i] = n == GEN_STR_MAX ? GEN_ARG_TRUNC : GEN_ARG_BYTES;
}

/* char_iovec: the buffers of an iovec array (count from sizeArgIndex), concatenated up to
 * GEN_STR_MAX bytes. */
struct iov_ctx {
	struct gen_event *ev;
	const struct iovec *iov;
	__u64 count;
	__u32 base;   /* i * GEN_STR_MAX */
	__u32 pos;
	__u32 trunc;
	__u32 err;
};

static long iov_cb(__u32 k, struct iov_ctx *c)
{
	struct iovec v = {};
	__u64 len;
	__u32 pos = c->pos, n;

	if (k >= c->count)
		return 1;
	if (bpf_probe_read_user(&v, sizeof(v), &c->iov[k])) {
		c->err = 1;
		return 1;
	}
	len = v.iov_len;
	if (pos >= GEN_STR_MAX) {
		c->trunc = len > 0;
		return 1;
	}
	n = len > GEN_STR_MAX - pos ? GEN_STR_MAX - pos : (__u32)len;
	if (len > GEN_STR_MAX - pos)
		c->trunc = 1;
	OPAQUE(n);
	n &= GEN_STR_MAX * 2 - 1;
	if (n > GEN_STR_MAX)
		n = GEN_STR_MAX;
	OPAQUE(pos);
	pos &= GEN_STR_MAX - 1;
	if (n && bpf_probe_read_user(&c->ev->data[(c->base & (GEN_STR_MAX * 4 - 1)) + pos], n, v.iov_base)) {
		c->err = 1;
		return 1;
	}
	c->pos = pos + n;
	return 0;
}

static __always_inline void read_iovec(struct gen_event *ev, __u32 i, __u64 raw, __u64 iovcnt)
{
	struct iov_ctx c = { .ev = ev, .iov = (const struct iovec *)raw, .count = iovcnt, .base = i * GEN_STR_MAX };

	if (i >= GEN_ARG_SLOTS)
		return;
	bpf_loop(64, (void *)iov_cb, &c, 0);
	if (c.err) {
		ev->arg_state[i] = GEN_ARG_ERROR;
		count(GEN_CNT_READ_ERRORS);
		return;
	}
	ev->arg_len[i] = c.pos;
	ev->arg_state[i] = c.trunc || iovcnt > 64 ? GEN_ARG_TRUNC : GEN_ARG_BYTES;
}

/* char_buf with sizeArgIndex: min(size, GEN_STR_MAX) bytes from a user pointer. */
static __always_inline void read_buf(struct gen_event *ev, __u32 i, const struct gen_src *src,
				     __u64 raw, __u64 size)
{
	char *dst = &ev->data[(i & 7) * GEN_STR_MAX];
	__u32 n = size > GEN_STR_MAX ? GEN_STR_MAX : (__u32)size;
	long err;

	if (i >= GEN_ARG_SLOTS)
		return;
	OPAQUE(n);
	n &= GEN_STR_MAX * 2 - 1;
	if (n > GEN_STR_MAX)
		n = GEN_STR_MAX;
	if (src->flags & GEN_SRC_USER)
		err = bpf_probe_read_user(dst, n, (const void *)raw);
	else
		err = bpf_probe_read_kernel(dst, n, (const void *)raw);
	if (err) {
		ev->arg_state[i] = GEN_ARG_ERROR;
		count(GEN_CNT_READ_ERRORS);
		return;
	}
	ev->arg_len[i] = n;
	ev->arg_state[i] = size > GEN_STR_MAX ? GEN_ARG_TRUNC : GEN_ARG_BYTES;
}

/* sockaddr from a user pointer (connect, bind, sendto): the bytes as given, at most 28. */
static __always_inline void read_sockaddr(struct gen_event *ev, __u32 i, __u64 raw, __u64 len)
{
	char *dst = &ev->data[(i & 7) * GEN_STR_MAX];
	__u32 n = len > 28 ? 28 : (__u32)len;

	if (i >= GEN_ARG_SLOTS)
		return;
	OPAQUE(n);
	n &= 31;
	if (n > 28)
		n = 28;
	if (n < 2 || bpf_probe_read_user(dst, n, (const void *)raw)) {
		ev->arg_state[i] = GEN_ARG_ERROR;
		count(GEN_CNT_READ_ERRORS);
		return;
	}
	ev->arg_len[i] = n;
	ev->arg_state[i] = GEN_ARG_BYTES;
}

#ifdef GEN_KPROBES
/* ---- kernel objects (kprobe arguments): sock, socket, skb, cred, read with CO-RE ---- */

#define GEN_IPPROTO_TCP 6
#define GEN_IPPROTO_UDP 17

static __noinline void read_sock_rec(struct gen_sock_rec *r, struct sock *sk)
{
	__u16 num = 0, dport = 0;

	if (!r || !sk)
		return;
	RD(r->family, sk, __sk_common.skc_family);
	ward_core_read(&r->state, 1, &sk->__sk_common.skc_state);
	RD(r->type, sk, sk_type);
	RD(r->protocol, sk, sk_protocol);
	RD(r->mark, sk, sk_mark);
	RD(r->priority, sk, sk_priority);
	RD(num, sk, __sk_common.skc_num);
	RD(dport, sk, __sk_common.skc_dport);
	r->sport = num;
	r->dport = ward_ntohs(dport);
	ward_core_read(&r->cookie, 8, &sk->__sk_common.skc_cookie);
	if (r->family == AF_INET) {
		ward_core_read(r->saddr, 4, &sk->__sk_common.skc_rcv_saddr);
		ward_core_read(r->daddr, 4, &sk->__sk_common.skc_daddr);
	} else if (r->family == AF_INET6) {
		ward_core_read(r->saddr, 16, &sk->__sk_common.skc_v6_rcv_saddr);
		ward_core_read(r->daddr, 16, &sk->__sk_common.skc_v6_daddr);
	}
}

/* The IP and transport headers of a packet, from skb->head (the headers the stack set). */
static __noinline void read_skb_rec(struct gen_skb_rec *r, struct sk_buff *skb)
{
	unsigned char *head = 0;
	__u16 nh = 0, th = 0, proto = 0;
	__u8 vb = 0;
	__u32 l4 = 0;

	if (!r || !skb)
		return;
	RD(r->hash, skb, hash);
	RD(r->len, skb, len);
	RD(r->priority, skb, priority);
	RD(r->mark, skb, mark);
	RD(proto, skb, protocol);
	r->protocol = ward_ntohs(proto);
	RD(head, skb, head);
	RD(nh, skb, network_header);
	RD(th, skb, transport_header);
	if (!head || nh == 0xffff)
		return;
	bpf_probe_read_kernel(&vb, 1, head + nh);
	if ((vb >> 4) == 4) {
		r->family = AF_INET;
		bpf_probe_read_kernel(&r->proto, 1, head + nh + 9);
		bpf_probe_read_kernel(r->saddr, 4, head + nh + 12);
		bpf_probe_read_kernel(r->daddr, 4, head + nh + 16);
		l4 = nh + (vb & 0xf) * 4;
	} else if ((vb >> 4) == 6) {
		r->family = AF_INET6;
		bpf_probe_read_kernel(&r->proto, 1, head + nh + 6);
		bpf_probe_read_kernel(r->saddr, 16, head + nh + 8);
		bpf_probe_read_kernel(r->daddr, 16, head + nh + 24);
		l4 = nh + 40;
	} else {
		return;
	}
	/* the transport header once the stack set it, else right behind the IP header */
	if (th != 0xffff && th > nh)
		l4 = th;
	if (r->proto == GEN_IPPROTO_TCP || r->proto == GEN_IPPROTO_UDP) {
		__u16 ports[2] = {};
		bpf_probe_read_kernel(ports, 4, head + l4);
		r->sport = ward_ntohs(ports[0]);
		r->dport = ward_ntohs(ports[1]);
	}
}

static __noinline void read_cred_rec(struct gen_cred_rec *r, struct cred *c)
{
	struct user_namespace *u = 0;

	if (!r || !c)
		return;
	RD(r->uid, c, uid.val);
	RD(r->gid, c, gid.val);
	RD(r->suid, c, suid.val);
	RD(r->sgid, c, sgid.val);
	RD(r->euid, c, euid.val);
	RD(r->egid, c, egid.val);
	RD(r->fsuid, c, fsuid.val);
	RD(r->fsgid, c, fsgid.val);
	RD(r->securebits, c, securebits);
	/* kernel_cap_t: { u64 val } since 6.3, { u32 cap[2] } before; the same 8 bytes */
	ward_core_read(&r->cap_permitted, 8, &c->cap_permitted);
	ward_core_read(&r->cap_effective, 8, &c->cap_effective);
	ward_core_read(&r->cap_inheritable, 8, &c->cap_inheritable);
	RD(u, c, user_ns);
	if (u) {
		RD(r->userns_level, u, level);
		RD(r->userns_uid, u, owner.val);
		RD(r->userns_gid, u, group.val);
		RD(r->userns_inum, u, ns.inum);
	}
}

/* One kernel object argument into the record: its gen_*_rec in data[i * GEN_STR_MAX].
 * Global, so verified once (like read_args). */
__noinline int read_object(struct gen_event *ev, __u32 slot, __u32 obj, __u64 raw)
{
	/* one bounded copy of the slot, used for every access (the verifier bounds registers,
	 * not values: a check on one copy does not bound another) */
	__u64 i = slot;
	struct gen_scratch *s = scratch();
	char *dst;
	__u32 n = 0;

	OPAQUE(i);
	if (!ev || !s || i >= GEN_ARG_SLOTS)
		return 0;
	dst = &ev->data[i * GEN_STR_MAX];
	/* the record is built in place (the stack is spoken for), from zeros */
	bpf_probe_read_kernel(dst, sizeof(struct gen_cred_rec) > sizeof(struct gen_sock_rec) ? sizeof(struct gen_cred_rec) : sizeof(struct gen_sock_rec), s->zeros);
	if (!raw) {
		ev->arg_state[i] = GEN_ARG_ERROR;
		count(GEN_CNT_READ_ERRORS);
		return 0;
	}
	if (obj == GEN_OBJ_SOCKET) {
		struct sock *sk = 0;
		RD(sk, (struct socket *)raw, sk);
		read_sock_rec((struct gen_sock_rec *)dst, sk);
		n = sizeof(struct gen_sock_rec);
	} else if (obj == GEN_OBJ_SOCK) {
		read_sock_rec((struct gen_sock_rec *)dst, (struct sock *)raw);
		n = sizeof(struct gen_sock_rec);
	} else if (obj == GEN_OBJ_SKB) {
		read_skb_rec((struct gen_skb_rec *)dst, (struct sk_buff *)raw);
		n = sizeof(struct gen_skb_rec);
	} else if (obj == GEN_OBJ_CRED) {
		read_cred_rec((struct gen_cred_rec *)dst, (struct cred *)raw);
		n = sizeof(struct gen_cred_rec);
	} else {
		ev->arg_state[i] = GEN_ARG_ERROR;
		return 0;
	}
	ev->arg_len[i] = n;
	ev->arg_state[i] = GEN_ARG_BYTES;
	return 0;
}
#endif /* GEN_KPROBES */

/* ---- paths: (dentry, vfsmount) to an absolute path, the way d_path walks ---- */

struct walk_ctx {
	struct gen_scratch *s;
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	__u64 mnt_off;
	__u32 pos;
	__u32 done;
};

static long walk_cb(__u32 i, struct walk_ctx *c)
{
	struct dentry *dentry = c->dentry;
	struct vfsmount *vfsmnt = c->vfsmnt;
	struct mount *mnt = c->mnt;
	struct dentry *mnt_root = 0, *up = 0;
	const unsigned char *name = 0;
	__u32 len = 0, pos;

	if (dentry == c->root_dentry && vfsmnt == c->root_mnt) {
		c->done = 1;
		return 1;
	}
	RD(mnt_root, vfsmnt, mnt_root);
	if (dentry == mnt_root) {
		struct mount *parent = 0;
		struct dentry *mp = 0;
		RD(parent, mnt, mnt_parent);
		if (!parent || parent == mnt) {
			c->done = 1; /* top of this mount tree */
			return 1;
		}
		RD(mp, mnt, mnt_mountpoint);
		c->dentry = mp;
		c->mnt = parent;
		c->vfsmnt = (struct vfsmount *)((__u64)parent + c->mnt_off);
		return 0;
	}
	RD(up, dentry, d_parent);
	if (!up || up == dentry) {
		c->done = 1;
		return 1;
	}
	RD(len, dentry, d_name.len);
	RD(name, dentry, d_name.name);
	pos = c->pos;
	if (len > 255 || pos > GEN_STR_MAX || pos < len + 1)
		return 1; /* too long: truncated at the start */
	pos -= len;
	bpf_probe_read_kernel(&c->s->path[pos & (GEN_STR_MAX - 1)], len & 255, name);
	pos -= 1;
	c->s->path[pos & (GEN_STR_MAX - 1)] = '/';
	c->pos = pos;
	c->dentry = up;
	return 0;
}

/* Resolves a struct path's parts into ev->data[i * GEN_STR_MAX] (relative to the task's
 * root, like d_path); arg_int gets the inode's i_mode (FileType, permission). */
static __always_inline void read_path(struct gen_scratch *s, struct gen_event *ev, __u32 i,
				      struct dentry *dentry, struct vfsmount *vfsmnt)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fs_struct *fs = 0;
	struct inode *inode = 0;
	struct walk_ctx c = {};
	__u16 mode = 0;
	__u32 len;

	if (i >= GEN_ARG_SLOTS)
		return;
	if (!dentry || !vfsmnt) {
		ev->arg_state[i] = GEN_ARG_ERROR;
		count(GEN_CNT_READ_ERRORS);
		return;
	}
	RD(fs, task, fs);
	if (fs) {
		RD(c.root_dentry, fs, root.dentry);
		RD(c.root_mnt, fs, root.mnt);
	}
	c.s = s;
	c.dentry = dentry;
	c.vfsmnt = vfsmnt;
	c.mnt_off = bpf_core_field_offset(((struct mount *)0)->mnt);
	c.mnt = (struct mount *)((__u64)vfsmnt - c.mnt_off);
	c.pos = GEN_STR_MAX;
	bpf_loop(256, (void *)walk_cb, &c, 0);
	if (c.pos >= GEN_STR_MAX) {
		c.pos = GEN_STR_MAX - 1;
		s->path[GEN_STR_MAX - 1] = '/';
	}
	len = GEN_STR_MAX - c.pos;
	OPAQUE(len);
	len &= GEN_STR_MAX * 2 - 1;
	if (len > GEN_STR_MAX)
		len = GEN_STR_MAX;
	bpf_probe_read_kernel(&ev->data[i * GEN_STR_MAX], len, &s->path[c.pos & (GEN_STR_MAX - 1)]);
	RD(inode, dentry, d_inode);
	if (inode)
		RD(mode, inode, i_mode);
	ev->arg_int[i] = mode;
	ev->arg_len[i] = len;
	ev->arg_state[i] = c.done ? GEN_ARG_BYTES : GEN_ARG_TRUNC;
}

/* current->files->fdt->fd[fd]; NULL when out of range or unreadable. */
static __always_inline struct file *fd_file(__u64 fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct files_struct *files = 0;
	struct fdtable *fdt = 0;
	struct file **fds = 0;
	struct file *file = 0;
	unsigned int max_fds = 0;

	RD(files, task, files);
	if (!files)
		return 0;
	RD(fdt, files, fdt);
	if (!fdt)
		return 0;
	RD(max_fds, fdt, max_fds);
	RD(fds, fdt, fd);
	if (!fds || (__s64)fd < 0 || fd >= max_fds)
		return 0;
	bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]);
	return file;
}

static __always_inline void read_file(struct gen_scratch *s, struct gen_event *ev, __u32 i,
				      const struct gen_src *src, __u64 raw, __u16 type)
{
	struct file *file = 0;
	struct dentry *dentry = 0;
	struct vfsmount *vfsmnt = 0;

	if (type == WARD_ARG_PATH && !(src->flags & GEN_SRC_FD)) {
		struct path *p = (struct path *)raw;
		if (p) {
			RD(dentry, p, dentry);
			RD(vfsmnt, p, mnt);
		}
	} else {
		/* a syscall's file argument is an fd; a tracepoint's is a struct file pointer unless
		 * userspace says it is an fd */
		if (src->from == GEN_FROM_SYSCALL_ARG || (src->flags & GEN_SRC_FD))
			file = fd_file(raw);
		else
			file = (struct file *)raw;
		if (file) {
			RD(dentry, file, f_path.dentry);
			RD(vfsmnt, file, f_path.mnt);
		}
	}
	read_path(s, ev, i, dentry, vfsmnt);
}

/* A BPF LSM dentry argument (path_unlink, path_mkdir, path_rename): its full path, walked
 * from the dentry under the mount of the directory's struct path in ctx[src->aux]. The
 * dentry of a name being created has no inode yet but its name and parent, so the walk gives
 * the path it would get. bpf_d_path is refused on these hooks (its allowlist has none of
 * them), hence the walk. */
static __always_inline void read_lsm_dentry(struct gen_state *st, struct gen_scratch *s, struct gen_event *ev,
					    __u32 i, const struct gen_src *src, __u64 raw)
{
	struct path *dir = (struct path *)lsm_ctx_arg(st, src->aux);

	if (i >= GEN_ARG_SLOTS)
		return;
	/* the mount goes through arg_int[i] (read_path then puts i_mode there): no stack slot
	 * for it in read_args, whose frame is at the limit of 6.1's 512-byte call chain */
	ev->arg_int[i] = 0;
	if (dir)
		RD(ev->arg_int[i], dir, mnt);
	read_path(s, ev, i, (struct dentry *)raw, (struct vfsmount *)ev->arg_int[i]);
}

#define GEN_O_PATH 010000000 /* x86 (include/uapi/asm-generic/fcntl.h) */

/* An open-family syscall's return is an fd of a file that security_file_open saw: ret >= 0
 * and not O_PATH (the LSM hook is not called for those; the file guard skips them too). */
static __always_inline int opened_file(long ret)
{
	struct file *file;
	unsigned int flags = 0;

	if (ret < 0)
		return 0;
	file = fd_file((__u64)ret);
	if (!file)
		return 0;
	RD(flags, file, f_flags);
	return (flags & GEN_O_PATH) == 0;
}

/* The size argument of char_buf (1-based prototype index) or of sockaddr (the next one). */
static __always_inline __u64 size_of(struct gen_state *st, const struct ward_hook_config *cfg,
				     const struct gen_slot *gs, struct gen_event *ev, __u32 want)
{
#ifdef GEN_KPROBES
	if (func_regs(st) && !st->regs && want < 6)
		return func_arg(func_regs(st), want);
#endif
	if (st->point != GEN_POINT_TP && st->regs && want < 6)
		return syscall_arg(st->regs, want, st->nr);
	for (int j = 0; j < WARD_MAX_SLOTS; j++)
		if (cfg->args[j].present && cfg->args[j].index == want && ev->arg_state[j] == GEN_ARG_INT)
			return ev->arg_int[j];
	return 0;
}

/* Global, so verified once (see match_one). */
__noinline int read_args(struct gen_state *st, const struct ward_hook_config *cfg,
			 const struct gen_slot *gs, struct gen_event *ev)
{
	if (!st || !cfg || !gs || !ev)
		return 0;
	/* ints first: a char_buf's size argument may come later in the list */
	for (int i = 0; i < WARD_MAX_SLOTS; i++) {
		__u64 v = 0;
		__u16 t = cfg->args[i].type;
		ev->arg_state[i] = GEN_ARG_ABSENT;
		ev->arg_type[i] = t;
		ev->arg_len[i] = 0;
		ev->arg_int[i] = 0;
		if (!cfg->args[i].present || gs->src[i].from == GEN_FROM_NONE)
			continue;
		if (source_value(st, &gs->src[i], &v)) {
			ev->arg_state[i] = GEN_ARG_ERROR;
			count(GEN_CNT_READ_ERRORS);
			continue;
		}
		ev->arg_int[i] = v;
		if (is_int_type(t))
			ev->arg_state[i] = GEN_ARG_INT;
	}
	for (int i = 0; i < GEN_ARG_SLOTS; i++) {
		__u16 t = cfg->args[i].type;
		__u64 raw = ev->arg_int[i];
		if (!cfg->args[i].present || gs->src[i].from == GEN_FROM_NONE || ev->arg_state[i] != GEN_ARG_ABSENT)
			continue;
		if (t == WARD_ARG_STRING) {
			read_string(st, ev, i, &gs->src[i], raw);
		} else if (t == WARD_ARG_BUF) {
			__u64 size = GEN_STR_MAX;
			if ((cfg->args[i].flags & WARD_ARGF_RETURN_COPY) && GEN_AT_RETURN(st))
				size = st->ret > 0 ? (__u64)st->ret : 0;
			else if (cfg->args[i].size_arg)
				size = size_of(st, cfg, gs, ev, cfg->args[i].size_arg - 1);
			if (gs->src[i].flags & GEN_SRC_IOVEC)
				read_iovec(ev, i, raw, cfg->args[i].size_arg ? size : 0);
			else
				read_buf(ev, i, &gs->src[i], raw, size);
		} else if (t == WARD_ARG_SOCKADDR) {
			read_sockaddr(ev, i, raw, size_of(st, cfg, gs, ev, cfg->args[i].index + 1));
		} else if (t == WARD_ARG_FILE || t == WARD_ARG_PATH) {
			struct gen_scratch *s = scratch();
			if (s)
				read_file(s, ev, i, &gs->src[i], raw, t);
#ifdef GEN_KPROBES
		} else if (gs->src[i].obj != GEN_OBJ_NONE) {
			read_object(ev, i, gs->src[i].obj, raw);
#endif
		} else {
			/* sock, cred, ... outside kprobes, bpf_attr, module, ...: not read by this
			 * program; matchers on them fail (userspace rejects policies that do) */
			ev->arg_state[i] = GEN_ARG_ERROR;
		}
	}
	return 0;
}

/*
 * read_args for a BPF LSM program: integers from its arguments (lsm_arg_value), the kernel's
 * copy of a sockaddr, struct path and dentry arguments walked to full paths, a task as its
 * tgid. A function of its own, so read_args' frame stays as it was: the deepest call chain
 * is at 6.1's 512-byte stack limit.
 */
__noinline int read_lsm_args(struct gen_state *st, const struct ward_hook_config *cfg,
			     const struct gen_slot *gs, struct gen_event *ev)
{
	if (!st || !cfg || !gs || !ev)
		return 0;
	for (int i = 0; i < GEN_ARG_SLOTS; i++) {
		__u16 t = cfg->args[i].type;
		__u64 v = 0;

		ev->arg_state[i] = GEN_ARG_ABSENT;
		ev->arg_type[i] = t;
		ev->arg_len[i] = 0;
		ev->arg_int[i] = 0;
		if (!cfg->args[i].present || gs->src[i].from != GEN_FROM_LSM_ARG)
			continue;
		if (lsm_arg_value(st, &gs->src[i], &v)) {
			ev->arg_state[i] = GEN_ARG_ERROR;
			count(GEN_CNT_READ_ERRORS);
			continue;
		}
		ev->arg_int[i] = v;
		if (is_int_type(t)) {
			ev->arg_state[i] = GEN_ARG_INT;
		} else if (t == WARD_ARG_SOCKADDR) {
			/* a sockaddr_storage holding the caller's bytes: the first 28 hold any in/in6 address */
			read_buf(ev, i, &gs->src[i], v, 28);
		} else if (t == WARD_ARG_FILE || t == WARD_ARG_PATH) {
			struct gen_scratch *s = scratch();
			if (!s)
				continue;
			if (gs->src[i].flags & GEN_SRC_DENTRY)
				read_lsm_dentry(st, s, ev, i, &gs->src[i], v);
			else
				read_file(s, ev, i, &gs->src[i], v, t);
		} else {
			ev->arg_state[i] = GEN_ARG_ERROR;
		}
	}
	for (int i = GEN_ARG_SLOTS; i < WARD_MAX_SLOTS; i++) {
		ev->arg_state[i] = GEN_ARG_ABSENT;
		ev->arg_type[i] = 0;
		ev->arg_len[i] = 0;
		ev->arg_int[i] = 0;
	}
	return 0;
}

/* ---------------------------------------------------------------- process facts */

/* A process map entry by the current tgid. The key goes through the stack: 6.1's verifier
 * takes map keys only from the stack or a map value, and inside a global function (match_one,
 * read_args) st is plain memory. */
static __always_inline struct ward_proc *proc_of(const struct gen_state *st)
{
	__u32 tgid = st->tgid;
	return bpf_map_lookup_elem(&ward_procs, &tgid);
}


static __always_inline __u32 bin_id_of(struct ward_proc *p)
{
	__u32 *id;
	if (!p || p->bin_len >= WARD_BIN_PATH_MAX)
		return 0;
	id = bpf_map_lookup_elem(&gen_bin_names, p->bin);
	return id ? *id : 0;
}

/* The task's pid struct for its thread group (the leader's). */
static __always_inline struct pid *tgid_pid(struct task_struct *task)
{
	struct task_struct *leader = 0;
	struct pid *p = 0;
	RD(leader, task, group_leader);
	if (!leader)
		return 0;
	RD(p, leader, thread_pid);
	return p;
}

/* The number of `p` in namespace level `level` if that level's ns is `ns`, else 0. */
static __always_inline __u32 pid_nr_in(struct pid *p, unsigned int level, struct pid_namespace *ns)
{
	unsigned int plevel = 0;
	struct upid up = {};
	__u64 at;

	if (!p)
		return 0;
	RD(plevel, p, level);
	if (plevel < level)
		return 0;
	at = (__u64)p + bpf_core_field_offset(p->numbers) + (__u64)(level & 31) * sizeof(struct upid);
	if (bpf_probe_read_kernel(&up, sizeof(up), (void *)at))
		return 0;
	if (up.ns != ns)
		return 0;
	return up.nr;
}

/* The current tgid's level and pid namespace. */
static __always_inline struct pid_namespace *own_ns(struct task_struct *task, unsigned int *level)
{
	struct pid *p = tgid_pid(task);
	struct upid up = {};
	__u64 at;

	*level = 0;
	if (!p)
		return 0;
	RD(*level, p, level);
	at = (__u64)p + bpf_core_field_offset(p->numbers) + (__u64)(*level & 31) * sizeof(struct upid);
	bpf_probe_read_kernel(&up, sizeof(up), (void *)at);
	return up.ns;
}

static __always_inline void load_proc(struct gen_state *st)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct task_struct *parent = 0;
	struct ward_proc *p;
	struct pid_namespace *ns;
	unsigned int level = 0;
	__u32 ptgid = 0;

	if (st->have_proc)
		return;
	st->have_proc = 1;
	p = proc_of(st);
	st->bin_id = bin_id_of(p);
	RD(parent, task, real_parent);
	if (parent)
		RD(ptgid, parent, tgid);
	p = bpf_map_lookup_elem(&ward_procs, &ptgid);
	st->parent_bin_id = bin_id_of(p);
	ns = own_ns(task, &level);
	st->nspid = pid_nr_in(tgid_pid(task), level, ns);
}

/* ---------------------------------------------------------------- value-set lookups */

static __always_inline int str_eq_has(struct gen_scratch *s, __u32 set_id, const char *p, __u32 n)
{
	__u32 len = n;
	void *hit = 0;

	if (len > GEN_STR_MAX)
		return 0;
	s->eq.set_id = set_id;
	s->eq.len = len;
	/* The key is padded with zeros to the class size, as the engine wrote it. The sizes
	 * are masked opaquely: clang drops a mask it proves redundant after the branch, and
	 * 6.1's verifier does not carry the branch's bound to the register it reads. */
	if (len <= 16) {
		bpf_probe_read_kernel(s->eq.data, 16, s->zeros);
		bpf_probe_read_kernel(s->eq.data, BOUND(len, 32), p);
		hit = bpf_map_lookup_elem(&gen_str_eq_16, &s->eq);
	} else if (len <= 32) {
		bpf_probe_read_kernel(s->eq.data, 32, s->zeros);
		bpf_probe_read_kernel(s->eq.data, BOUND(len, 64), p);
		hit = bpf_map_lookup_elem(&gen_str_eq_32, &s->eq);
	} else if (len <= 64) {
		bpf_probe_read_kernel(s->eq.data, 64, s->zeros);
		bpf_probe_read_kernel(s->eq.data, BOUND(len, 128), p);
		hit = bpf_map_lookup_elem(&gen_str_eq_64, &s->eq);
	} else if (len <= 128) {
		bpf_probe_read_kernel(s->eq.data, 128, s->zeros);
		bpf_probe_read_kernel(s->eq.data, BOUND(len, 256), p);
		hit = bpf_map_lookup_elem(&gen_str_eq_128, &s->eq);
	} else if (len <= 256) {
		bpf_probe_read_kernel(s->eq.data, 256, s->zeros);
		bpf_probe_read_kernel(s->eq.data, BOUND(len, 512), p);
		hit = bpf_map_lookup_elem(&gen_str_eq_256, &s->eq);
	} else if (len <= 512) {
		bpf_probe_read_kernel(s->eq.data, 512, s->zeros);
		bpf_probe_read_kernel(s->eq.data, BOUND(len, 1024), p);
		hit = bpf_map_lookup_elem(&gen_str_eq_512, &s->eq);
	} else if (len <= 1024) {
		bpf_probe_read_kernel(s->eq.data, 1024, s->zeros);
		bpf_probe_read_kernel(s->eq.data, BOUND(len, 2048), p);
		hit = bpf_map_lookup_elem(&gen_str_eq_1024, &s->eq);
	} else if (len <= 2048) {
		bpf_probe_read_kernel(s->eq.data, 2048, s->zeros);
		bpf_probe_read_kernel(s->eq.data, BOUND(len, 4096), p);
		hit = bpf_map_lookup_elem(&gen_str_eq_2048, &s->eq);
	} else {
		bpf_probe_read_kernel(s->eq.data, 4096, s->zeros);
		bpf_probe_read_kernel(s->eq.data, BOUND(len, 8192), p);
		hit = bpf_map_lookup_elem(&gen_str_eq_4096, &s->eq);
	}
	return hit != 0;
}

static __always_inline int prefix_has(struct gen_scratch *s, __u32 set_id, const char *p, __u32 n)
{
	__u32 len = n > WARD_PREFIX_MAX ? WARD_PREFIX_MAX : n;
	OPAQUE(len);
	len &= 511;
	if (len > WARD_PREFIX_MAX)
		len = WARD_PREFIX_MAX;
	s->prefix.prefixlen = 32 + 8 * len;
	s->prefix.set_id = set_id;
	bpf_probe_read_kernel(s->prefix.data, len, p);
	return bpf_map_lookup_elem(&gen_str_prefix, &s->prefix) != 0;
}

struct rev_ctx {
	struct gen_scratch *s;
	const char *p;
	__u32 n;
	__u32 k;
};

static long rev_cb(__u32 i, struct rev_ctx *c)
{
	__u32 from = c->n - 1 - i;
	char ch = 0;
	if (i >= c->k)
		return 1;
	bpf_probe_read_kernel(&ch, 1, c->p + from);
	c->s->postfix.data[i & (WARD_POSTFIX_MAX - 1)] = ch;
	return 0;
}

static __always_inline int postfix_has(struct gen_scratch *s, __u32 set_id, const char *p, __u32 n)
{
	struct rev_ctx c = { .s = s, .p = p, .n = n, .k = n > WARD_POSTFIX_MAX ? WARD_POSTFIX_MAX : n };
	bpf_loop(WARD_POSTFIX_MAX, (void *)rev_cb, &c, 0);
	s->postfix.prefixlen = 32 + 8 * c.k;
	s->postfix.set_id = set_id;
	return bpf_map_lookup_elem(&gen_str_postfix, &s->postfix) != 0;
}

static __always_inline int int_set_has(__u32 set_id, __u64 v)
{
	struct ward_int_key k = { .set_id = set_id, .pad = 0, .value = v };
	return bpf_map_lookup_elem(&gen_int_set, &k) != 0;
}

static __always_inline int bin_set_has(__u32 set_id, __u32 bin_id)
{
	struct ward_bin_set_key k = { .set_id = set_id, .bin_id = bin_id };
	if (!bin_id)
		return 0;
	return bpf_map_lookup_elem(&gen_bin_set, &k) != 0;
}

/* ---------------------------------------------------------------- matchers */

static __always_inline int negated(__u8 op)
{
	return op == WARD_OP_NEQ || op == WARD_OP_NOTIN || op == WARD_OP_NOTPREFIX ||
	       op == WARD_OP_NOTPOSTFIX || op == WARD_OP_NOTINMAP || op == WARD_OP_NOTSPORT ||
	       op == WARD_OP_NOTDPORT || op == WARD_OP_NOTSPORTPRIV || op == WARD_OP_NOTDPORTPRIV ||
	       op == WARD_OP_NOTSADDR || op == WARD_OP_NOTDADDR || op == WARD_OP_NOTINRANGE ||
	       op == WARD_OP_NOTFILETYPE;
}

static __always_inline __u64 normalize(__u16 t, __u64 v)
{
	switch (t) {
	case WARD_ARG_S8: return (__u64)(__s64)(__s8)v;
	case WARD_ARG_S16: return (__u64)(__s64)(__s16)v;
	case WARD_ARG_S32: return (__u64)(__s64)(__s32)v;
	case WARD_ARG_U8: return v & 0xff;
	case WARD_ARG_U16: return v & 0xffff;
	case WARD_ARG_U32: return v & 0xffffffff;
	}
	return v;
}

static __always_inline int inline_any(const struct ward_matcher *m, __u64 v)
{
	int hit = 0;
	for (int i = 0; i < WARD_MAX_INLINE; i++)
		if (i < m->nvalues && m->values[i] == v)
			hit = 1;
	return hit;
}

static __always_inline int range_any(const struct ward_matcher *m, __u64 v, int sg)
{
	int hit = 0;
	for (int i = 0; i < WARD_MAX_INLINE / 2; i++) {
		__u64 lo = m->values[2 * i], hi = m->values[2 * i + 1];
		if (i >= m->nvalues)
			break;
		if (sg ? ((__s64)v >= (__s64)lo && (__s64)v <= (__s64)hi) : (v >= lo && v <= hi))
			hit = 1;
	}
	return hit;
}

static __always_inline int match_int(const struct ward_matcher *m, __u16 t, __u64 raw)
{
	__u64 v = normalize(t, raw);
	int sg = t >= WARD_ARG_S8 && t <= WARD_ARG_S64;
	int hit = 0;

	switch (m->op) {
	case WARD_OP_EQ:
	case WARD_OP_NEQ:
		hit = inline_any(m, v);
		break;
	case WARD_OP_GT:
		for (int i = 0; i < WARD_MAX_INT_VALUES; i++)
			if (i < m->nvalues && (sg ? (__s64)v > (__s64)m->values[i] : v > m->values[i]))
				hit = 1;
		break;
	case WARD_OP_LT:
		for (int i = 0; i < WARD_MAX_INT_VALUES; i++)
			if (i < m->nvalues && (sg ? (__s64)v < (__s64)m->values[i] : v < m->values[i]))
				hit = 1;
		break;
	case WARD_OP_MASK:
		for (int i = 0; i < WARD_MAX_INT_VALUES; i++)
			if (i < m->nvalues && (v & m->values[i]))
				hit = 1;
		break;
	case WARD_OP_INMAP:
	case WARD_OP_NOTINMAP:
		hit = int_set_has(m->set_id, v);
		break;
	case WARD_OP_INRANGE:
	case WARD_OP_NOTINRANGE:
		hit = range_any(m, v, sg);
		break;
	default:
		return 0;
	}
	return negated(m->op) ? !hit : hit;
}

static __always_inline int match_bytes(struct gen_scratch *s, const struct ward_matcher *m,
				       const char *p, __u32 n)
{
	int hit;
	switch (m->value_kind) {
	case WARD_VK_STR_EQ: hit = str_eq_has(s, m->set_id, p, n); break;
	case WARD_VK_STR_PREFIX: hit = prefix_has(s, m->set_id, p, n); break;
	case WARD_VK_STR_POSTFIX: hit = postfix_has(s, m->set_id, p, n); break;
	default:
		/* SubString needs bpf_strnstr (kfunc); userspace rejects it for this program */
		return 0;
	}
	return negated(m->op) ? !hit : hit;
}

/* sockaddr bytes: family u16, then in/in6 port (network order) and address. */
static __always_inline int match_sockaddr(struct gen_scratch *s, const struct ward_matcher *m,
					  const char *p, __u32 n)
{
	__u16 family = 0, port = 0;
	int hit = 0;

	bpf_probe_read_kernel(&family, 2, p);
	if (m->op == WARD_OP_FAMILY)
		return inline_any(m, family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	bpf_probe_read_kernel(&port, 2, p + 2);
	port = ward_ntohs(port);
	switch (m->op) {
	case WARD_OP_SPORT:
	case WARD_OP_NOTSPORT:
		hit = m->value_kind == WARD_VK_INT_SET ? int_set_has(m->set_id, port) : range_any(m, port, 0);
		break;
	case WARD_OP_SPORTPRIV:
	case WARD_OP_NOTSPORTPRIV:
		hit = port < 1024;
		break;
	case WARD_OP_SADDR:
	case WARD_OP_NOTSADDR:
		__builtin_memset(s->addr.addr, 0, 16);
		s->addr.family = family == AF_INET ? 4 : 6;
		s->addr.pad[0] = s->addr.pad[1] = s->addr.pad[2] = 0;
		s->addr.set_id = m->set_id;
		if (family == AF_INET) {
			bpf_probe_read_kernel(s->addr.addr, 4, p + 4);
			s->addr.prefixlen = 64 + 32;
		} else {
			bpf_probe_read_kernel(s->addr.addr, 16, p + 8);
			s->addr.prefixlen = 64 + 128;
		}
		hit = bpf_map_lookup_elem(&gen_addr_lpm, &s->addr) != 0;
		break;
	default:
		return 0;
	}
	return negated(m->op) ? !hit : hit;
}

#ifdef GEN_KPROBES

static __always_inline int addr_in(struct gen_scratch *s, __u32 set_id, __u16 family, const __u8 *a)
{
	__builtin_memset(s->addr.addr, 0, 16);
	s->addr.family = family == AF_INET ? 4 : 6;
	s->addr.pad[0] = s->addr.pad[1] = s->addr.pad[2] = 0;
	s->addr.set_id = set_id;
	if (family == AF_INET) {
		bpf_probe_read_kernel(s->addr.addr, 4, a);
		s->addr.prefixlen = 64 + 32;
	} else {
		bpf_probe_read_kernel(s->addr.addr, 16, a);
		s->addr.prefixlen = 64 + 128;
	}
	return bpf_map_lookup_elem(&gen_addr_lpm, &s->addr) != 0;
}

static __always_inline int port_in(const struct ward_matcher *m, __u16 port)
{
	return m->value_kind == WARD_VK_INT_SET ? int_set_has(m->set_id, port) : range_any(m, port, 0);
}

/* Family Protocol State SAddr DAddr SPort DPort (+Not*, *Priv) on a sock/socket/skb. */
__noinline int match_net(const struct ward_matcher *m)
{
	struct gen_scratch *s;
	struct gen_net *n;
	int hit = 0;

	/* The scratch map is looked up here, not passed in: a global function's pointer
	 * arguments are plain memory to the verifier, and 6.1 takes a map key only from the
	 * stack or a map value (addr_in's LPM key is s->addr). */
	s = scratch();
	if (!s || !m)
		return 0;
	n = &s->net;
	switch (m->op) {
	case WARD_OP_FAMILY: return inline_any(m, n->family);
	case WARD_OP_PROTOCOL: return inline_any(m, n->proto);
	case WARD_OP_STATE: return inline_any(m, n->state);
	}
	if (n->family != AF_INET && n->family != AF_INET6)
		return 0;
	switch (m->op) {
	case WARD_OP_SPORT:
	case WARD_OP_NOTSPORT:
		hit = port_in(m, n->sport);
		break;
	case WARD_OP_DPORT:
	case WARD_OP_NOTDPORT:
		hit = port_in(m, n->dport);
		break;
	case WARD_OP_SPORTPRIV:
	case WARD_OP_NOTSPORTPRIV:
		hit = n->sport < 1024;
		break;
	case WARD_OP_DPORTPRIV:
	case WARD_OP_NOTDPORTPRIV:
		hit = n->dport < 1024;
		break;
	case WARD_OP_SADDR:
	case WARD_OP_NOTSADDR:
		hit = addr_in(s, m->set_id, n->family, n->saddr);
		break;
	case WARD_OP_DADDR:
	case WARD_OP_NOTDADDR:
		hit = addr_in(s, m->set_id, n->family, n->daddr);
		break;
	default:
		return 0;
	}
	return negated(m->op) ? !hit : hit;
}

/* A sock/socket/skb argument's record (data[slot]) as gen_net, by the slot's object kind. */
static __always_inline int match_sock(struct gen_state *st, struct gen_scratch *s,
				      const struct ward_matcher *m, const char *p)
{
	__u32 slot = st->slot;
	struct gen_slot *gs = bpf_map_lookup_elem(&gen_slots, &slot);
	struct gen_net *n = &s->net;
	__u32 i = m->slot;

	if (!gs || i >= GEN_ARG_SLOTS)
		return 0;
	/* field by field into the scratch map: no room on the stack for a record */
	n->state = 0;
	if (gs->src[i & 7].obj == GEN_OBJ_SKB) {
		bpf_probe_read_kernel(&n->family, 2, p + __builtin_offsetof(struct gen_skb_rec, family));
		n->proto = 0;
		bpf_probe_read_kernel(&n->proto, 1, p + __builtin_offsetof(struct gen_skb_rec, proto));
		bpf_probe_read_kernel(&n->sport, 2, p + __builtin_offsetof(struct gen_skb_rec, sport));
		bpf_probe_read_kernel(&n->dport, 2, p + __builtin_offsetof(struct gen_skb_rec, dport));
		bpf_probe_read_kernel(n->saddr, 16, p + __builtin_offsetof(struct gen_skb_rec, saddr));
		bpf_probe_read_kernel(n->daddr, 16, p + __builtin_offsetof(struct gen_skb_rec, daddr));
	} else {
		bpf_probe_read_kernel(&n->family, 2, p + __builtin_offsetof(struct gen_sock_rec, family));
		bpf_probe_read_kernel(&n->proto, 2, p + __builtin_offsetof(struct gen_sock_rec, protocol));
		bpf_probe_read_kernel(&n->state, 1, p + __builtin_offsetof(struct gen_sock_rec, state));
		bpf_probe_read_kernel(&n->sport, 2, p + __builtin_offsetof(struct gen_sock_rec, sport));
		bpf_probe_read_kernel(&n->dport, 2, p + __builtin_offsetof(struct gen_sock_rec, dport));
		bpf_probe_read_kernel(n->saddr, 16, p + __builtin_offsetof(struct gen_sock_rec, saddr));
		bpf_probe_read_kernel(n->daddr, 16, p + __builtin_offsetof(struct gen_sock_rec, daddr));
	}
	return match_net(m);
}
#endif /* GEN_KPROBES */

static __always_inline int match_arg(struct gen_state *st, struct gen_scratch *s,
				     const struct ward_hook_config *cfg, const struct ward_matcher *m)
{
	struct gen_event *ev = ev_scratch();
	__u32 i = m->slot;
	__u8 state;

	if (!ev || i >= WARD_MAX_SLOTS)
		return 0;
	state = ev->arg_state[i];
	/* an argument that could not be read matches nothing, negated operators included */
	if (state == GEN_ARG_ABSENT || state == GEN_ARG_ERROR)
		return 0;
	if (m->op == WARD_OP_CAPSGAINED) {
		__u32 j = m->slot2;
		if (j >= WARD_MAX_SLOTS || ev->arg_state[j] != GEN_ARG_INT)
			return 0;
		return ((ev->arg_int[i] & ~ev->arg_int[j]) & m->values[0]) != 0;
	}
	if (state == GEN_ARG_INT)
		return match_int(m, cfg->args[i].type, ev->arg_int[i]);
	if (i >= GEN_ARG_SLOTS)
		return 0;
	if (cfg->args[i].type == WARD_ARG_SOCKADDR)
		return match_sockaddr(s, m, &ev->data[i * GEN_STR_MAX], ev->arg_len[i]);
#ifdef GEN_KPROBES
	if (cfg->args[i].type == WARD_ARG_SOCK)
		return match_sock(st, s, m, &ev->data[i * GEN_STR_MAX]);
#endif
	if (m->op == WARD_OP_FILETYPE || m->op == WARD_OP_NOTFILETYPE) {
		/* file/path args keep i_mode in arg_int; values are (i_mode & S_IFMT) >> 12 */
		int hit = inline_any(m, (ev->arg_int[i] & 0xf000) >> 12);
		return m->op == WARD_OP_NOTFILETYPE ? !hit : hit;
	}
	return match_bytes(s, m, &ev->data[i * GEN_STR_MAX], ev->arg_len[i]);
}

/* matchPIDs: the tgid (or its pid in its own namespace), with followForks its ancestors
 * too, up to WARD_MAX_ANCESTORS. By namespace pid, an ancestor is compared as the task's
 * namespace sees it, and the walk stops at the first one that namespace cannot see: a
 * process entering a pid namespace from outside (setns) has no visible parent there. */
static __always_inline int match_pid(struct gen_state *st, const struct ward_matcher *m)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	int ns_pid = (m->flags & WARD_MF_NS_PID) != 0;
	int follow = (m->flags & WARD_MF_FOLLOW) != 0;
	unsigned int level = 0;
	struct pid_namespace *ns = own_ns(task, &level);
	__u32 v = ns_pid ? pid_nr_in(tgid_pid(task), level, ns) : st->tgid;
	int hit;

	if (follow && ns_pid && level == 0)
		return 0; /* following forks by namespace pid needs a task in a pid namespace */
	hit = v && inline_any(m, v);
	if (follow) {
		for (int a = 0; a < WARD_MAX_ANCESTORS && !hit; a++) {
			struct task_struct *up = 0;
			struct task_struct *leader = 0;
			RD(leader, task, group_leader);
			if (leader)
				task = leader;
			RD(up, task, real_parent);
			if (!up || up == task)
				break;
			task = up;
			if (ns_pid)
				v = pid_nr_in(tgid_pid(task), level, ns);
			else
				RD(v, task, tgid);
			if (!v)
				break;
			hit = inline_any(m, v);
		}
	}
	return m->op == WARD_OP_NOTIN ? !hit : hit;
}

static __always_inline __u32 ns_inum_of(void *nsc)
{
	struct ns_common *ns = nsc;
	__u32 v = 0;
	if (ns)
		RD(v, ns, inum);
	return v;
}

/* A task's namespace inode of a type (enum ward_ns_index order). */
static __always_inline __u32 task_ns(struct task_struct *task, __u32 type)
{
	struct nsproxy *nsp = 0;
	unsigned int level = 0;

	if (type == WARD_NS_PID)
		return ns_inum_of(&own_ns(task, &level)->ns);
	if (type == WARD_NS_USER) {
		const struct cred *cred = 0;
		struct user_namespace *u = 0;
		RD(cred, task, cred);
		if (cred)
			RD(u, cred, user_ns);
		return u ? ns_inum_of(&u->ns) : 0;
	}
	RD(nsp, task, nsproxy);
	if (!nsp)
		return 0;
	switch (type) {
	case WARD_NS_UTS: return ns_inum_of(&BPF_CORE_READ(nsp, uts_ns)->ns);
	case WARD_NS_IPC: return ns_inum_of(&BPF_CORE_READ(nsp, ipc_ns)->ns);
	case WARD_NS_MNT: return ns_inum_of(&BPF_CORE_READ(nsp, mnt_ns)->ns);
	case WARD_NS_PID_FOR_CHILDREN: return ns_inum_of(&BPF_CORE_READ(nsp, pid_ns_for_children)->ns);
	case WARD_NS_NET: return ns_inum_of(&BPF_CORE_READ(nsp, net_ns)->ns);
	case WARD_NS_TIME:
		if (bpf_core_field_exists(nsp->time_ns))
			return ns_inum_of(&BPF_CORE_READ(nsp, time_ns)->ns);
		return 0;
	case WARD_NS_TIME_FOR_CHILDREN:
		if (bpf_core_field_exists(nsp->time_ns_for_children))
			return ns_inum_of(&BPF_CORE_READ(nsp, time_ns_for_children)->ns);
		return 0;
	case WARD_NS_CGROUP: return ns_inum_of(&BPF_CORE_READ(nsp, cgroup_ns)->ns);
	}
	return 0;
}

static __always_inline __u32 current_ns(__u32 type)
{
	return task_ns((struct task_struct *)bpf_get_current_task(), type);
}

struct top_ctx {
	struct task_struct *task;
};

static long top_cb(__u32 i, struct top_ctx *c)
{
	struct task_struct *task = c->task;
	struct task_struct *up = 0;
	RD(up, task, real_parent);
	if (!up || up == task)
		return 1;
	c->task = up;
	return 0;
}

/*
 * The host's namespace of a type: init_task's, found by walking real_parent to the top
 * (pid 1's parent is init_task). Userspace fills gen_globals.host_ns from /proc/1/ns when it
 * may read it; where it may not (no CAP_SYS_PTRACE), the kernel finds it here.
 */
static __always_inline __u32 host_ns(__u32 type)
{
	__u32 zero = 0;
	struct gen_globals *g = bpf_map_lookup_elem(&gen_globals, &zero);
	struct top_ctx c = { .task = (struct task_struct *)bpf_get_current_task() };
	__u32 *cached = 0;
	__u32 v;

	/* The slot's address right after its own check (opaque, so clang cannot reuse a
	 * check hoisted out of the caller's loop): a spilled index loses its bounds on 6.1's
	 * verifier, a pointer keeps them. */
	__u64 t = type;
	OPAQUE(t);
	if (t >= WARD_NS_TYPES)
		return 0;
	if (g)
		cached = &g->host_ns[t];
	if (cached && *cached)
		return *cached;
	bpf_loop(256, (void *)top_cb, &c, 0);
	v = task_ns(c.task, type);
	if (cached && v)
		*cached = v;
	return v;
}

static __always_inline int match_ns(const struct ward_matcher *m)
{
	__u32 type = m->slot;
	__u32 cur = current_ns(type);
	int hit = 0;

	for (int i = 0; i < WARD_MAX_INT_VALUES; i++) {
		__u64 v = m->values[i];
		if (i >= m->nvalues)
			break;
		if ((m->flags & WARD_MF_HOST_NS) && (m->aux & (1u << i)))
			v = host_ns(type);
		if (v && v == cur)
			hit = 1;
	}
	return m->op == WARD_OP_NOTIN ? !hit : hit;
}

static __always_inline __u64 current_caps(__u32 set)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	const struct cred *cred = 0;
	__u64 v = 0;

	RD(cred, task, cred);
	if (!cred)
		return 0;
	/* the whole kernel_cap_t: { u64 val } from 6.3, { u32 cap[2] } before (same bytes) */
	if (set == 0)
		RD(v, cred, cap_effective);
	else if (set == 1)
		RD(v, cred, cap_inheritable);
	else
		RD(v, cred, cap_permitted);
	return v;
}

/* isNamespaceCapability: the task is in the host (initial) user namespace. */
static __always_inline int in_host_userns(void)
{
	return host_ns(WARD_NS_USER) == current_ns(WARD_NS_USER);
}

static __always_inline int match_caps(const struct ward_matcher *m, int change, struct gen_state *st)
{
	__u64 caps = current_caps(m->slot);
	int hit;

	if ((m->flags & WARD_MF_NS_CAP) && in_host_userns())
		return 0;
	if (change) {
		struct ward_proc *p = proc_of(st);
		__u64 at_exec;
		__u64 changed;
		if (!p)
			return 0;
		at_exec = m->slot == 0 ? p->creds.cap_effective : m->slot == 1 ? p->creds.cap_inheritable : p->creds.cap_permitted;
		changed = caps ^ at_exec;
		if (m->op == WARD_OP_NOTIN)
			return (changed & m->values[0]) == 0 && changed != 0;
		return (changed & m->values[0]) != 0;
	}
	hit = (caps & m->values[0]) != 0;
	return m->op == WARD_OP_NOTIN ? !hit : hit;
}

struct nsc_ctx {
	struct ward_proc *p;
	__u64 changed;
};

static long ns_change_cb(__u32 i, struct nsc_ctx *c)
{
	__u32 was;
	if (i >= WARD_NS_COUNT)
		return 1;
	was = c->p->creds.ns[i];
	if (was && current_ns(i) != was)
		c->changed |= 1ull << i;
	return 0;
}

static __always_inline int match_ns_change(const struct ward_matcher *m, struct gen_state *st)
{
	struct nsc_ctx c = { .p = proc_of(st), .changed = 0 };
	if (!c.p)
		return 0;
	bpf_loop(WARD_NS_COUNT, (void *)ns_change_cb, &c, 0);
	if (m->op == WARD_OP_NOTIN)
		return (c.changed & ~m->values[0]) != 0;
	return (c.changed & m->values[0]) != 0;
}

/* matchBinaries / matchParentBinaries. followChildren: the binary or one of its ancestors
 * (by the process map's parent links) is in the set. */
static __always_inline int match_binary(struct gen_state *st, struct gen_scratch *s,
					const struct ward_matcher *m, int parent)
{
	__u32 id;
	int hit = 0;

	load_proc(st);
	id = parent ? st->parent_bin_id : st->bin_id;
	if (m->value_kind == WARD_VK_BIN_SET) {
		hit = bin_set_has(m->set_id, id);
		if (!hit && (m->flags & WARD_MF_FOLLOW)) {
			__u32 pid = st->tgid;
			for (int a = 0; a < WARD_MAX_ANCESTORS && !hit; a++) {
				struct ward_proc *p = bpf_map_lookup_elem(&ward_procs, &pid);
				if (!p || p->ppid == pid || !p->ppid)
					break;
				pid = p->ppid;
				hit = bin_set_has(m->set_id, bin_id_of(bpf_map_lookup_elem(&ward_procs, &pid)));
			}
		}
	} else {
		__u32 pid = st->tgid;
		struct ward_proc *p;
		if (parent) {
			struct task_struct *task = (struct task_struct *)bpf_get_current_task();
			struct task_struct *up = 0;
			RD(up, task, real_parent);
			pid = 0;
			if (up)
				RD(pid, up, tgid);
		}
		p = bpf_map_lookup_elem(&ward_procs, &pid);
		if (!p)
			return 0;
		if (m->value_kind == WARD_VK_STR_PREFIX)
			hit = prefix_has(s, m->set_id, p->bin, p->bin_len < WARD_BIN_KEEP ? p->bin_len : WARD_BIN_KEEP - 1);
		else if (m->value_kind == WARD_VK_STR_POSTFIX)
			hit = postfix_has(s, m->set_id, p->bin, p->bin_len < WARD_BIN_KEEP ? p->bin_len : WARD_BIN_KEEP - 1);
	}
	return negated(m->op) ? !hit : hit;
}

/*
 * Global (not static): the verifier checks it once on its own instead of once per call
 * site and path, which keeps the selector walk far below the instruction limit. Its
 * pointer arguments are plain memory of their type's size there, hence the NULL check.
 */
__noinline int match_one(struct gen_state *st, struct gen_scratch *s,
			 const struct ward_hook_config *cfg, const struct ward_matcher *m)
{
	if (!st || !s || !cfg || !m)
		return 0;
	/* The scratch map value itself, not the argument: matchers use its buffers as map
	 * keys (string sets, LPM), which 6.1's verifier refuses from plain memory. */
	s = scratch();
	if (!s)
		return 0;
	switch (m->kind) {
	case WARD_MK_ARG: return match_arg(st, s, cfg, m);
	case WARD_MK_PID: return match_pid(st, m);
	case WARD_MK_NS: return match_ns(m);
	case WARD_MK_CAPS: return match_caps(m, 0, st);
	case WARD_MK_CAP_CHANGE: return match_caps(m, 1, st);
	case WARD_MK_NS_CHANGE: return match_ns_change(m, st);
	case WARD_MK_BINARY: return match_binary(st, s, m, 0);
	case WARD_MK_PARENT_BINARY: return match_binary(st, s, m, 1);
	}
	return 0;
}

/* ---------------------------------------------------------------- selector walk */

static long matcher_cb(__u32 j, struct gen_state *st)
{
	__u32 slot = st->slot;
	struct ward_hook_config *cfg = bpf_map_lookup_elem(&gen_hooks, &slot);
	struct gen_scratch *s = scratch();
	struct ward_selector *sel;
	struct ward_matcher *m;
	__u32 sel_i;

	if (!cfg || !s || st->sel >= WARD_MAX_SELECTORS || j >= WARD_MAX_MATCHERS)
		return 1;
	sel_i = st->sel;
	OPAQUE(sel_i);
	if (sel_i >= WARD_MAX_SELECTORS)
		return 1;
	sel = &cfg->selectors[sel_i];
	if (j >= sel->n_matchers)
		return 1;
	m = &sel->matchers[BOUND(j, WARD_MAX_MATCHERS)];
	if (m->flags & WARD_MF_RETURN) {
		/* matchReturnArgs: only at the return, and they decide only the return actions */
		if (GEN_AT_RETURN(st) && st->ret_ok && !match_one(st, s, cfg, m))
			st->ret_ok = 0;
		return 0;
	}
#ifdef GEN_KPROBES
	/* a kretprobe re-checks only the return matchers: the entry chose the selector */
	if (st->point == GEN_POINT_KRETPROBE)
		return 0;
#endif
	if (!match_one(st, s, cfg, m)) {
		st->ok = 0;
		return 1;
	}
	return 0;
}

static long selector_cb(__u32 i, struct gen_state *st)
{
	__u32 slot = st->slot;
	struct ward_hook_config *cfg = bpf_map_lookup_elem(&gen_hooks, &slot);

	if (!cfg || i >= WARD_MAX_SELECTORS || i >= cfg->n_selectors)
		return 1;
	st->sel = i;
	st->ok = 1;
	st->ret_ok = 1;
	bpf_loop(WARD_MAX_MATCHERS, (void *)matcher_cb, st, 0);
	if (st->ok) {
		st->matched = i;
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- actions */

/* A digest of the arguments for rate limiting: ints and the first 16 bytes of each string
 * (Tetragon compares the first 40 bytes of each argument). */
__noinline __u64 arg_digest(struct gen_event *ev)
{
	__u64 h = 14695981039346656037ull;
	if (!ev)
		return 0;
	for (int i = 0; i < WARD_MAX_SLOTS; i++) {
		__u64 a = ev->arg_int[i], b = 0;
		if (i < GEN_ARG_SLOTS && (ev->arg_state[i] == GEN_ARG_BYTES || ev->arg_state[i] == GEN_ARG_TRUNC)) {
			bpf_probe_read_kernel(&a, 8, &ev->data[i * GEN_STR_MAX]);
			bpf_probe_read_kernel(&b, 8, &ev->data[i * GEN_STR_MAX + 8]);
			a ^= (__u64)ev->arg_len[i] << 56;
		}
		h = (h ^ a) * 1099511628211ull;
		h = (h ^ b) * 1099511628211ull;
	}
	return h;
}

/* True when this post is within the action's rate limit of the previous one. */
static __always_inline int rate_limited(struct gen_state *st, struct gen_event *ev,
					const struct ward_action *a)
{
	struct gen_rate_key k = {};
	__u64 now = bpf_ktime_get_ns();
	__u64 *last;

	if (!a->rate_limit_ms)
		return 0;
	k.slot = st->slot;
	k.selector = st->matched;
	k.scope = a->rate_limit_scope == WARD_RATE_GLOBAL ? 0 :
		  a->rate_limit_scope == WARD_RATE_PROCESS ? st->tgid : (__u32)bpf_get_current_pid_tgid();
	k.digest = arg_digest(ev);
	last = bpf_map_lookup_elem(&gen_rate, &k);
	if (last && now - *last < a->rate_limit_ms * 1000000ull)
		return 1;
	bpf_map_update_elem(&gen_rate, &k, &now, 0);
	return 0;
}

/* Pack the arguments' bytes behind the fixed part and send the record. */
__noinline int post(struct gen_event *ev)
{
	__u32 zero = 0;
	struct gen_event *out = bpf_map_lookup_elem(&gen_out_scratch, &zero);
	__u32 pos = 0;
	__u64 size;

	if (!out || !ev)
		return 0;
	bpf_probe_read_kernel(out, __builtin_offsetof(struct gen_event, data), ev);
	for (int i = 0; i < GEN_ARG_SLOTS; i++) {
		__u32 len = ev->arg_len[i];
		out->arg_off[i] = pos;
		if (ev->arg_state[i] != GEN_ARG_BYTES && ev->arg_state[i] != GEN_ARG_TRUNC)
			continue;
		OPAQUE(len);
		len &= GEN_STR_MAX * 2 - 1;
		if (len > GEN_STR_MAX)
			len = GEN_STR_MAX;
		OPAQUE(pos);
		pos &= GEN_DATA_MAX * 2 - 1;
		if (pos > GEN_DATA_MAX)
			pos = GEN_DATA_MAX;
		bpf_probe_read_kernel(&out->data[pos], len, &ev->data[i * GEN_STR_MAX]);
		pos += len;
	}
	OPAQUE(pos);
	pos &= GEN_DATA_MAX * 2 - 1;
	if (pos > GEN_DATA_MAX)
		pos = GEN_DATA_MAX;
	size = __builtin_offsetof(struct gen_event, data) + pos;
	out->size = size;
	if (bpf_ringbuf_output(&gen_events, out, size, 0))
		count(GEN_CNT_RB_DROPS);
	else
		count(GEN_CNT_POSTS);
	return 0;
}

/*
 * In a BPF LSM program the call fails with `err` (Override's argError; 0 means -EPERM). A
 * Sigkill there fails it too: the process dies on its way back to user space either way, and
 * refusing first means the unlink, connect or kill never happens. The first failure stands.
 */
static __always_inline void lsm_fail(struct gen_state *st, struct gen_event *ev, __s32 err)
{
	if (st->ret == 0)
		st->ret = err < 0 && err >= -4095 ? err : -1 /* EPERM */;
	ev->flags |= GEN_EF_OVERRIDE;
}

struct act_ctx {
	struct gen_state *st;
	__u32 ret_phase;   /* run the return actions */
	__u32 do_post;
	__u32 monitor;
};

/*
 * One action. `lsm` is a constant: the BPF LSM programs have callbacks of their own
 * (lsm_action_cb, lsm_slot_cb), so the syscall and tracepoint programs' code is what it was
 * without them (gen_sys_enter is close to 6.1's 1M-instruction verifier limit).
 */
static __always_inline long action_at(__u32 i, struct act_ctx *c, const int lsm)
{
	struct gen_state *st = c->st;
	__u32 slot = st->slot;
	struct ward_hook_config *cfg = bpf_map_lookup_elem(&gen_hooks, &slot);
	struct gen_event *ev = ev_scratch();
	struct ward_selector *sel;
	struct ward_action *a;
	__u32 n, sel_i = st->matched;
	__u64 ai;

	if (!cfg || !ev || sel_i >= WARD_MAX_SELECTORS || i >= WARD_MAX_ACTIONS)
		return 1;
	OPAQUE(sel_i);
	if (sel_i >= WARD_MAX_SELECTORS)
		return 1;
	sel = &cfg->selectors[sel_i];
	n = c->ret_phase ? sel->n_return_actions : sel->n_actions;
	if (i >= n)
		return 1;
	if (i >= WARD_MAX_ACTIONS)
		return 1;
	ai = i;
	OPAQUE(ai);
	if (ai >= WARD_MAX_ACTIONS)
		return 1;
	a = c->ret_phase ? &sel->return_actions[ai] : &sel->actions[ai];
	ev->actions |= 1u << (a->kind & 31);
	switch (a->kind) {
	case WARD_ACT_POST:
		if (rate_limited(st, ev, a)) {
			count(GEN_CNT_RATE_LIMITED);
			c->do_post = 0;
		}
		break;
	case WARD_ACT_NOPOST:
		c->do_post = 0;
		break;
	case WARD_ACT_SIGKILL:
	case WARD_ACT_SIGNAL:
		if (c->monitor || (a->flags & WARD_AF_MONITOR)) {
			ev->flags |= GEN_EF_MONITOR;
			count(GEN_CNT_MONITOR);
			break;
		}
		if (a->kind == WARD_ACT_SIGKILL) {
			ev->signal_err = bpf_send_signal(SIGKILL);
			if (!ev->signal_err) {
				ev->flags |= GEN_EF_KILLED;
				count(GEN_CNT_KILLS);
			}
			if (lsm)
				lsm_fail(st, ev, 0);
		} else {
			ev->signal_err = bpf_send_signal(a->arg_sig);
			if (!ev->signal_err) {
				ev->flags |= GEN_EF_SIGNALED;
				count(GEN_CNT_SIGNALS);
			}
		}
		break;
#ifdef GEN_KPROBES
	case WARD_ACT_OVERRIDE:
		/* only a kprobe's entry can make the call return early: gen_kprobe_override
		 * calls bpf_override_return once the walk is done */
		if (st->point != GEN_POINT_KPROBE) {
			count(GEN_CNT_NOT_TAKEN);
			break;
		}
		if (c->monitor || (a->flags & WARD_AF_MONITOR)) {
			ev->flags |= GEN_EF_MONITOR;
			count(GEN_CNT_MONITOR);
			break;
		}
		{
			struct gen_scratch *s = scratch();
			if (s) {
				s->override = 1;
				s->override_err = a->arg_error;
			}
		}
		ev->flags |= GEN_EF_OVERRIDE;
		break;
#else
	case WARD_ACT_OVERRIDE:
		if (!lsm) {
			count(GEN_CNT_NOT_TAKEN);
		} else if (c->monitor || (a->flags & WARD_AF_MONITOR)) {
			ev->flags |= GEN_EF_MONITOR;
			count(GEN_CNT_MONITOR);
		} else {
			lsm_fail(st, ev, a->arg_error);
		}
		break;
#endif
	default:
		/* NotifyEnforcer, TrackSock, ... (and Override off BPF LSM and kprobes): not taken
		 * here; GetUrl/DnsLookup are userspace's, from the record */
		if (a->kind != WARD_ACT_GETURL && a->kind != WARD_ACT_DNSLOOKUP)
			count(GEN_CNT_NOT_TAKEN);
		break;
	}
	return 0;
}

static long action_cb(__u32 i, struct act_ctx *c)
{
	return action_at(i, c, 0);
}

static long lsm_action_cb(__u32 i, struct act_ctx *c)
{
	return action_at(i, c, 1);
}

#ifdef GEN_KPROBES
/* ---------------------------------------------------------------- kretprobe records */

/* A return hook's record from its entry to its return, per thread and slot. Not
 * preallocated: only calls in flight take memory. A recursive call of the same function on
 * the same thread replaces the outer call's record (the outer return then finds none). */
struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, 1024);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct gen_ret_key);
	__type(value, struct gen_event);
} gen_ret_entries SEC(".maps");

static __always_inline void keep_entry(struct gen_state *st, struct gen_event *ev, __u32 do_post)
{
	struct gen_ret_key k = { .pid_tgid = bpf_get_current_pid_tgid(), .slot = st->slot, .pad = 0 };

	if (do_post)
		ev->flags |= GEN_EF_DEFER_POST;
	else
		ev->flags &= ~GEN_EF_DEFER_POST;
	if (bpf_map_update_elem(&gen_ret_entries, &k, ev, 0))
		count(GEN_CNT_RET_LOST);
}

/* An entry that did not match leaves nothing behind for its return. */
static __always_inline void forget_entry(struct gen_state *st, __u32 slot)
{
	struct gen_ret_key k = { .pid_tgid = bpf_get_current_pid_tgid(), .slot = slot, .pad = 0 };
	bpf_map_delete_elem(&gen_ret_entries, &k);
}
#endif /* GEN_KPROBES */

/* Evaluate one hook slot for the current call (`lsm` a constant, as in action_at). */
static __always_inline void run_slot(struct gen_state *st, __u32 slot, const int lsm)
{
	struct ward_hook_config *cfg = bpf_map_lookup_elem(&gen_hooks, &slot);
	struct gen_slot *gs = bpf_map_lookup_elem(&gen_slots, &slot);
	struct gen_event *ev = ev_scratch();
	struct act_ctx ac = {};
	int is_exit = st->point == GEN_POINT_SYS_EXIT;
#ifdef GEN_KPROBES
	/* a kretprobe hook is walked at the entry (its arguments exist only there) and its
	 * record kept for the return (run_return_slot) */
	int keep = st->point == GEN_POINT_KPROBE && gs && (gs->flags & GEN_SLOT_RETURN);
#else
	const int keep = 0;
#endif

	if (!cfg || !gs || !ev || !(gs->flags & GEN_SLOT_ACTIVE))
		return;
	/* the policy's workload scope first: outside it nothing else is read */
	if (!ward_in_scope(gs->scope))
		return;
	/* return hooks are evaluated once, at the return; the others at the entry */
	if (st->point != GEN_POINT_TP && !keep && !!(gs->flags & GEN_SLOT_RETURN) != is_exit)
		return;
	/* a file-open rule on the returned fd: failed and O_PATH opens are not file opens */
	if ((gs->flags & GEN_SLOT_OPENED_FD) && (!is_exit || !opened_file(st->ret)))
		return;
	count(GEN_CNT_EVALS);
	st->slot = slot;
	st->matched = -2;
	if (lsm)
		read_lsm_args(st, cfg, gs, ev);
	else
		read_args(st, cfg, gs, ev);
	if (cfg->flags & WARD_HF_NO_SELECTORS)
		st->matched = -1;
	else
		bpf_loop(WARD_MAX_SELECTORS, (void *)selector_cb, st, 0);
	if (st->matched == -2) {
#ifdef GEN_KPROBES
		if (keep)
			forget_entry(st, slot);
#endif
		return;
	}
	/* At the return, a selector whose matchReturnArgs fail is no match (Tetragon posts
	 * the return event only when they hold). */
	if (is_exit && st->matched >= 0 && !st->ret_ok)
		return;
	count(GEN_CNT_MATCHES);
	if (bpf_map_lookup_elem(&gen_exempt, &st->tgid)) {
		count(GEN_CNT_EXEMPT);
#ifdef GEN_KPROBES
		if (keep)
			forget_entry(st, slot);
#endif
		return;
	}
	load_proc(st);
	ev->slot = slot;
	ev->hook_id = cfg->hook_id;
	ev->selector = st->matched;
	ev->policy = gs->policy;
	ev->pid = (__u32)bpf_get_current_pid_tgid();
	ev->tgid = st->tgid;
	ev->nspid = st->nspid;
	ev->ktime = bpf_ktime_get_boot_ns();
	ev->actions = 0;
	ev->flags = (is_exit ? GEN_EF_RETURN : 0) | (st->matched == -1 ? GEN_EF_NO_SELECTORS : 0);
	ev->ret = is_exit ? st->ret : 0;
	ev->signal_err = 0;
	ev->syscall = st->nr;
	ev->pad = 0;
	ac.st = st;
	ac.do_post = 1;
	ac.monitor = (gs->flags & GEN_SLOT_MONITOR) != 0;
	if (st->matched >= 0 && lsm) {
		bpf_loop(WARD_MAX_ACTIONS, (void *)lsm_action_cb, &ac, 0);
	} else if (st->matched >= 0) {
		bpf_loop(WARD_MAX_ACTIONS, (void *)action_cb, &ac, 0);
		if (is_exit && st->ret_ok) {
			ac.ret_phase = 1;
			bpf_loop(WARD_MAX_ACTIONS, (void *)action_cb, &ac, 0);
		}
	} else {
		ev->actions = 1u << WARD_ACT_POST;
	}
#ifdef GEN_KPROBES
	if (keep) {
		keep_entry(st, ev, ac.do_post);
		return;
	}
#endif
	if (ac.do_post)
		post(ev);
}

struct slot_ctx {
	struct gen_state *st;
	struct gen_dispatch_val *d;
};

static long slot_cb(__u32 i, struct slot_ctx *c)
{
	__u32 slot;
	if (i >= GEN_DISPATCH_MAX || i >= c->d->n)
		return 1;
	slot = c->d->slots[BOUND(i, GEN_DISPATCH_MAX)];
	run_slot(c->st, slot, 0);
	return 0;
}

#ifndef GEN_KPROBES /* the LSM programs are generic.o's only */
static long lsm_slot_cb(__u32 i, struct slot_ctx *c)
{
	__u32 slot;
	if (i >= GEN_DISPATCH_MAX || i >= c->d->n)
		return 1;
	slot = c->d->slots[BOUND(i, GEN_DISPATCH_MAX)];
	run_slot(c->st, slot, 1);
	return 0;
}
#endif

static __always_inline void dispatch_at(struct gen_state *st, __u32 point, __u32 id)
{
	struct gen_dispatch_key k = { .point = point, .id = id };
	struct slot_ctx c = { .st = st };

	c.d = bpf_map_lookup_elem(&gen_dispatch, &k);
	if (!c.d)
		return;
	bpf_loop(GEN_DISPATCH_MAX, (void *)slot_cb, &c, 0);
}

static __always_inline void dispatch(struct gen_state *st, __u32 id)
{
	dispatch_at(st, st->point, id);
}

#ifndef GEN_KPROBES
/* ---------------------------------------------------------------- syscall and tracepoint programs */

#define TS_COMPAT 0x0002 /* arch/x86/include/asm/thread_info.h */

static __always_inline int in_compat_syscall(void)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 status = 0;

	if (!bpf_core_field_exists(task->thread_info.status))
		return 0;
	RD(status, task, thread_info.status);
	return (status & TS_COMPAT) != 0;
}

static __always_inline void syscall_hook(unsigned long long *ctx, __u32 point)
{
	struct gen_state st = {};
	struct pt_regs *regs = (struct pt_regs *)ctx[0];

	st.regs = regs;
	st.ctx = ctx;
	st.point = point;
	if (point == GEN_POINT_SYS_ENTER) {
		st.nr = (__u32)ctx[1];
	} else {
		st.ret = (long)ctx[1];
		/* the low 32 bits of orig_ax, read in place: a stack temporary here pushed the
		 * deepest bpf_loop chain past 512 bytes on 6.1 (frames count rounded to 32) */
		RD(st.nr, regs, orig_ax);
	}
	/* A 32-bit task's syscall numbers are the i386 table's: keyed with bit 31 set, like
	 * Tetragon's syscall64 ids, so an x64 hook never fires on an unrelated i386 number. */
	if (in_compat_syscall())
		st.nr |= 0x80000000u;
	st.tgid = bpf_get_current_pid_tgid() >> 32;
	dispatch(&st, st.nr);
	dispatch(&st, GEN_ALL_SYSCALLS);
}

SEC("tp_btf/sys_enter")
int gen_sys_enter(unsigned long long *ctx)
{
	syscall_hook(ctx, GEN_POINT_SYS_ENTER);
	return 0;
}

SEC("tp_btf/sys_exit")
int gen_sys_exit(unsigned long long *ctx)
{
	syscall_hook(ctx, GEN_POINT_SYS_EXIT);
	return 0;
}

/* bpf_task_pt_regs (helper 175, 5.15+): the task's user registers, the syscall's arguments. */
static struct pt_regs *(*gen_task_pt_regs)(struct task_struct *task) = (void *)175;

/*
 * The record the kernel hands a syscalls/sys_exit_* program: the first 8 bytes are a
 * pt_regs pointer, but of the tracing code's caller (perf_fetch_caller_regs), not the
 * syscall's, so the arguments come from the task's own registers instead.
 */
struct gen_sys_exit_record {
	__u64 regs;
	__s32 nr;
	__u32 pad;
	__s64 ret; /* offset 16: SYSCALL_EXIT_RET_OFFSET in src/sensors/open-exit.ts */
};

SEC("tracepoint/syscalls/sys_exit_openat")
int gen_open_exit(struct gen_sys_exit_record *ctx)
{
	struct gen_state st = {};

	st.regs = gen_task_pt_regs(bpf_get_current_task_btf());
	st.ctx = ctx;
	st.point = GEN_POINT_SYS_EXIT;
	st.ret = ctx->ret;
	/* x86 never fires syscalls/ tracepoints for compat syscalls: the number is x86_64's */
	st.nr = (__u32)ctx->nr;
	st.tgid = bpf_get_current_pid_tgid() >> 32;
	dispatch_at(&st, GEN_POINT_OPEN_EXIT, st.nr);
	return 0;
}

/*
 * Attached to every tracefs event a policy names, with the event's id as the link's
 * cookie. (The record's common_type cannot say it: for syscalls/ events the kernel hands
 * BPF a record whose first 8 bytes hold the pt_regs pointer instead.)
 */
SEC("tracepoint/syscalls/sys_enter_openat")
int gen_tracepoint(void *ctx)
{
	struct gen_state st = {};
	__u32 id = (__u32)bpf_get_attach_cookie(ctx);

	st.ctx = ctx;
	st.point = GEN_POINT_TP;
	st.nr = id;
	st.tgid = bpf_get_current_pid_tgid() >> 32;
	dispatch(&st, id);
	return 0;
}

/* Per-CPU: the probed function's registers in the syscall argument layout (gen_uprobe). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct pt_regs);
} gen_uregs SEC(".maps");

/*
 * A user function (spec.uprobes): the uprobe PMU stops the caller at the function's first
 * instruction, in its own context, so ctx is its user registers and bpf_send_signal's
 * SIGKILL is delivered when the trap returns to user space: the function body never runs.
 * The link's cookie names the attached path:offset (the dispatch key). The SysV function
 * arguments (di si dx cx r8 r9) differ from a syscall's (di si dx r10 r8 r9) only in the
 * fourth: with cx copied into r10 the slots are read as syscall arguments and evaluated as
 * at a syscall entry, so no code shared with the syscall programs changes (gen_sys_enter is
 * close to the verifier's 1M-instruction limit).
 */
SEC("uprobe")
int gen_uprobe(struct pt_regs *ctx)
{
	struct gen_state st = {};
	__u32 zero = 0;
	__u32 id = (__u32)bpf_get_attach_cookie(ctx);
	struct pt_regs *regs = bpf_map_lookup_elem(&gen_uregs, &zero);

	if (!regs)
		return 0;
	if (bpf_probe_read_kernel(regs, sizeof(*regs), ctx))
		return 0;
	regs->r10 = regs->cx;
	st.regs = regs;
	st.ctx = ctx;
	st.point = GEN_POINT_SYS_ENTER;
	st.nr = id; /* no bit 31: read as x86_64 argument registers */
	st.tgid = bpf_get_current_pid_tgid() >> 32;
	dispatch_at(&st, GEN_POINT_UPROBE, id);
	return 0;
}

/* ---------------------------------------------------------------- BPF LSM entry points
 *
 * lsmhooks policies, and kprobes on the matching security_* functions, where BPF LSM loads.
 * Each program evaluates the hook slots dispatched on (GEN_POINT_LSM, its gen_lsm_hook id)
 * with the same selector walk as the syscall and tracepoint programs; an Override (or a
 * Sigkill) makes it return the error, so the call fails before it has any effect. The sensor
 * loads these only when BPF LSM is active and a policy needs one: where LSM loads are refused
 * (this project's host), the other programs load as before.
 */
static __always_inline int lsm_hook(unsigned long long *ctx, __u32 hook, __u32 nargs)
{
	struct gen_scratch *s = scratch();
	struct gen_state st = {};

	if (!s)
		return 0;
	/* ctx[i] past the hook's arguments is refused by the verifier: nargs is a constant */
	for (__u32 i = 0; i < 6; i++)
		s->lsm_args[i] = i < nargs ? ctx[i] : 0;

	st.ctx = ctx;
	st.point = GEN_POINT_LSM;
	st.nr = hook;
	st.tgid = bpf_get_current_pid_tgid() >> 32;
	{
		struct gen_dispatch_key k = { .point = GEN_POINT_LSM, .id = hook };
		struct slot_ctx c = { .st = &st };

		c.d = bpf_map_lookup_elem(&gen_dispatch, &k);
		if (c.d)
			bpf_loop(GEN_DISPATCH_MAX, (void *)lsm_slot_cb, &c, 0);
	}
	/* newer kernels refuse an LSM program whose return may fall outside [-MAX_ERRNO, 0] */
	return st.ret < 0 && st.ret >= -4095 ? (int)st.ret : 0;
}

SEC("lsm/socket_connect")
int gen_lsm_socket_connect(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_SOCKET_CONNECT, 3); }

SEC("lsm/socket_bind")
int gen_lsm_socket_bind(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_SOCKET_BIND, 3); }

SEC("lsm/path_unlink")
int gen_lsm_path_unlink(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_PATH_UNLINK, 2); }

SEC("lsm/path_rename")
int gen_lsm_path_rename(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_PATH_RENAME, 4); }

SEC("lsm/path_truncate")
int gen_lsm_path_truncate(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_PATH_TRUNCATE, 1); }

SEC("lsm/path_chmod")
int gen_lsm_path_chmod(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_PATH_CHMOD, 2); }

SEC("lsm/path_mkdir")
int gen_lsm_path_mkdir(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_PATH_MKDIR, 3); }

SEC("lsm/task_kill")
int gen_lsm_task_kill(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_TASK_KILL, 4); }

SEC("lsm/bpf")
int gen_lsm_bpf(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_BPF, 3); }

/* finit_module (and firmware, kexec, policy reads: the id says which) and init_module's blob */
SEC("lsm/kernel_read_file")
int gen_lsm_kernel_read_file(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_KERNEL_READ_FILE, 3); }

SEC("lsm/kernel_load_data")
int gen_lsm_kernel_load_data(unsigned long long *ctx) { return lsm_hook(ctx, GEN_LSM_KERNEL_LOAD_DATA, 2); }

#endif /* !GEN_KPROBES */

#ifdef GEN_KPROBES
/* ---------------------------------------------------------------- kprobes
 *
 * Loaded only where the kernel has them (userspace probes the kprobe PMU, kprobe.multi links
 * and bpf_override_return first): the leading "?" keeps them out of the default load.
 * Every attachment carries its probe id as the cookie (the dispatch key). A syscall
 * wrapper's (__x64_sys_X, GEN_PROBE_SYSCALL) one argument is the user pt_regs, from which
 * syscall arguments are read as at sys_enter.
 */
/*
 * A kretprobe hook at the call's return: the record its entry kept (arguments as they were
 * at the entry, the selector that matched there) gets the return value; the selector's
 * matchReturnArgs decide, then its return actions run and the record is posted if the
 * entry's actions left it to post.
 */
static __always_inline void run_return_slot(struct gen_state *st, __u32 slot)
{
	struct ward_hook_config *cfg = bpf_map_lookup_elem(&gen_hooks, &slot);
	struct gen_slot *gs = bpf_map_lookup_elem(&gen_slots, &slot);
	struct gen_event *ev = ev_scratch();
	struct gen_ret_key k = { .pid_tgid = bpf_get_current_pid_tgid(), .slot = slot, .pad = 0 };
	struct gen_event *kept;
	struct act_ctx ac = {};
	__u16 t;

	if (!cfg || !gs || !ev || !(gs->flags & GEN_SLOT_ACTIVE) || !(gs->flags & GEN_SLOT_RETURN))
		return;
	kept = bpf_map_lookup_elem(&gen_ret_entries, &k);
	if (!kept)
		return;
	bpf_probe_read_kernel(ev, sizeof(*ev), kept);
	bpf_map_delete_elem(&gen_ret_entries, &k);
	st->slot = slot;
	st->matched = ev->selector;
	st->ret_ok = 1;
	t = cfg->args[WARD_SLOT_RETURN].type;
	if (cfg->args[WARD_SLOT_RETURN].present) {
		ev->arg_type[WARD_SLOT_RETURN] = t;
		ev->arg_len[WARD_SLOT_RETURN] = 0;
		ev->arg_int[WARD_SLOT_RETURN] = (__u64)st->ret;
		ev->arg_state[WARD_SLOT_RETURN] = is_int_type(t) ? GEN_ARG_INT : GEN_ARG_ERROR;
	}
	if (st->matched >= 0) {
		st->sel = st->matched;
		st->ok = 1;
		bpf_loop(WARD_MAX_MATCHERS, (void *)matcher_cb, st, 0);
		if (!st->ret_ok)
			return;
	}
	ev->flags |= GEN_EF_RETURN;
	ev->ret = st->ret;
	ac.st = st;
	ac.do_post = (ev->flags & GEN_EF_DEFER_POST) != 0;
	ac.monitor = (gs->flags & GEN_SLOT_MONITOR) != 0;
	if (st->matched >= 0) {
		ac.ret_phase = 1;
		bpf_loop(WARD_MAX_ACTIONS, (void *)action_cb, &ac, 0);
	}
	if (ac.do_post)
		post(ev);
}


static long ret_slot_cb(__u32 i, struct slot_ctx *c)
{
	__u32 slot;
	if (i >= GEN_DISPATCH_MAX || i >= c->d->n)
		return 1;
	slot = c->d->slots[BOUND(i, GEN_DISPATCH_MAX)];
	run_return_slot(c->st, slot);
	return 0;
}

static __always_inline void dispatch_return(struct gen_state *st, __u32 id)
{
	struct gen_dispatch_key k = { .point = GEN_POINT_KRETPROBE, .id = id };
	struct slot_ctx c = { .st = st };

	c.d = bpf_map_lookup_elem(&gen_dispatch, &k);
	if (!c.d)
		return;
	bpf_loop(GEN_DISPATCH_MAX, (void *)ret_slot_cb, &c, 0);
}

/* bpf_override_return (helper 58, CONFIG_BPF_KPROBE_OVERRIDE) */
static long (*bpf_override_return)(struct pt_regs *regs, __u64 rc) = (void *)58;

static __always_inline void kprobe_hook(struct pt_regs *ctx, __u32 point, struct gen_state *st)
{
	__u32 id = (__u32)bpf_get_attach_cookie(ctx);

	st->ctx = ctx;
	st->point = point;
	st->nr = id;
	st->tgid = bpf_get_current_pid_tgid() >> 32;
	if (point == GEN_POINT_KRETPROBE) {
		__u64 rc = 0;
		RD(rc, ctx, ax);
		st->ret = (__s64)rc;
	} else if (id & GEN_PROBE_SYSCALL) {
		st->regs = (struct pt_regs *)func_arg(ctx, 0);
	}
	if (point == GEN_POINT_KRETPROBE)
		dispatch_return(st, id);
	else
		dispatch(st, id);
}

SEC("?kprobe/gen")
int gen_kprobe(struct pt_regs *ctx)
{
	struct gen_state st = {};
	kprobe_hook(ctx, GEN_POINT_KPROBE, &st);
	return 0;
}

/* The same, for hooks with Override: only functions on the kernel's error-injection list
 * accept it (the kernel refuses the attach elsewhere), and only this program calls the
 * helper, so kernels without CONFIG_BPF_KPROBE_OVERRIDE still load the others. */
SEC("?kprobe/gen_override")
int gen_kprobe_override(struct pt_regs *ctx)
{
	struct gen_state st = {};
	struct gen_scratch *s = scratch();

	if (!s)
		return 0;
	s->override = 0;
	kprobe_hook(ctx, GEN_POINT_KPROBE, &st);
	/* the walk may have looked the scratch up again: read the request from the map */
	s = scratch();
	if (s && s->override) {
		count(GEN_CNT_OVERRIDES);
		bpf_override_return(ctx, (__u64)(__s64)s->override_err);
	}
	return 0;
}

SEC("?kretprobe/gen")
int gen_kretprobe(struct pt_regs *ctx)
{
	struct gen_state st = {};
	kprobe_hook(ctx, GEN_POINT_KRETPROBE, &st);
	return 0;
}

/* kprobe.multi (5.18+): one link for many functions, a cookie per function. */
SEC("?kprobe.multi/gen")
int gen_kprobe_multi(struct pt_regs *ctx)
{
	struct gen_state st = {};
	kprobe_hook(ctx, GEN_POINT_KPROBE, &st);
	return 0;
}

SEC("?kretprobe.multi/gen")
int gen_kretprobe_multi(struct pt_regs *ctx)
{
	struct gen_state st = {};
	kprobe_hook(ctx, GEN_POINT_KRETPROBE, &st);
	return 0;
}
#endif /* GEN_KPROBES */
