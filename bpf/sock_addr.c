// SPDX-License-Identifier: GPL-2.0
/*
 * sock_addr.c: socket policies (tcp_connect, security_socket_connect, sys_connect, bind,
 * sendto) enforced at the cgroup sock_addr hooks, decided from the policy engine's tables
 * (include/ward_filter.h). Attached at the root of the cgroup v2 hierarchy, so every
 * process of the host runs them; they exist on every kernel with cgroup v2 (4.17+) and need
 * neither BPF LSM nor kprobes.
 *
 * Programs (one per attach point, each a thin wrapper around sock_hook()):
 *   sock_connect4 / sock_connect6  cgroup/connect4, connect6: connect(2) of TCP, UDP and ICMP
 *                                  ping sockets (also TCP fast open's sendto), before any packet
 *   sock_sendmsg4 / sock_sendmsg6  cgroup/sendmsg4, sendmsg6: UDP sends that name an address
 *   sock_bind4 / sock_bind6        cgroup/bind4, bind6: bind(2)
 *
 * Pipeline, per call:
 *   read the call once into the per-CPU record: the address the caller passed (user_*) and
 *   the socket (sk_*, from ctx->sk);
 *   for each active hook slot that runs at this point (bpf_loop over SOCK_MAX_SLOTS):
 *     walk its selectors (first match wins) and their matchers (all must hold): arguments
 *     of type sockaddr read the caller's address, sock/socket the socket; matchBinaries the
 *     interned binary id of the task's process (the process sensor's ward_procs);
 *     skip exempt tgids (the agent); run the actions; post the record unless NoPost.
 *   return 0 (the call fails, EPERM or the Override's argError via bpf_set_retval) when a
 *   slot denied, else 1.
 *
 * Actions: Override denies the call (it never happens: no packet, no bind); Sigkill queues
 * SIGKILL with bpf_send_signal() (the task dies before the call returns) and denies the call
 * too, so nothing leaves the host first; Signal(argSig) only signals (SIGKILL: as Sigkill);
 * Post/NoPost. Monitor mode turns the enforcing ones into Post.
 */
#include "vmlinux.h"
#include "ward_bpf.h"
#include "ward_filter.h"
#include "process.h"
#include "sock.h"
#include "scope.h"

char LICENSE[] SEC("license") = "GPL";

#define SIGKILL 9
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define TCP_SYN_SENT 2
#define EPERM 1

/* Since 5.18 for cgroup programs: the errno a denied call fails with (default EPERM). */
static long (*bpf_set_retval)(int retval) = (void *)187;

/* ---------------------------------------------------------------- maps */

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, SOCK_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct ward_hook_config);
} sock_hooks SEC(".maps");

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, SOCK_MAX_SLOTS);
	__type(key, __u32);
	__type(value, struct sock_slot);
} sock_slots SEC(".maps");

/* tgids no policy may act on: the agent and whoever it vouches for. */
struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, __u32);
} sock_exempt SEC(".maps");

/* The process map of bpf/process.c (same definition): userspace passes the process
 * sensor's map in (replaceMaps), so binaries are judged by what that sensor saw at exec. */
WARD_PROCS_MAP;

/* Value sets, shared by every policy (disjoint set ids), keys exactly as ward_filter.h. */
struct {
	__uint(type, WARD_MAP_LPM_TRIE);
	__uint(max_entries, 4096);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct ward_addr_key);
	__type(value, __u8);
} sock_addr_lpm SEC(".maps");

struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, 16384);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct ward_int_key);
	__type(value, __u8);
} sock_int_set SEC(".maps");

/* Binary path (zero padded, as ward_proc.bin holds it) -> interned binary id. */
struct sock_bin_path {
	char path[WARD_BIN_PATH_MAX];
};

struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct sock_bin_path);
	__type(value, __u32);
} sock_bin_names SEC(".maps");

struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, WARD_F_NO_PREALLOC);
	__type(key, struct ward_bin_set_key);
	__type(value, __u8);
} sock_bin_set SEC(".maps");

struct {
	__uint(type, WARD_MAP_RINGBUF);
	__uint(max_entries, 256 * 1024);
} sock_events SEC(".maps");

struct {
	__uint(type, WARD_MAP_PERCPU_ARRAY);
	__uint(max_entries, SOCK_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} sock_counters SEC(".maps");

/* The call as read at entry, and the record sent (one per CPU: programs do not nest). */
struct {
	__uint(type, WARD_MAP_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sock_event);
} sock_scratch SEC(".maps");

/* Never read or written: puts the record and enums userspace decodes into the BTF. */
struct sock_layouts {
	struct sock_event event;
	struct sock_slot slot;
	struct sock_bin_path bin;
	enum sock_point point;
	enum sock_counter counter;
};

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sock_layouts);
} sock_layouts SEC(".maps");

/* ---------------------------------------------------------------- helpers */

#define OPAQUE(x) asm volatile("" : "+r"(x))
/* An index the verifier can bound: the mask stays in the code (power-of-two n). */
#define BOUND(x, n) ({ __u64 __b = (x); OPAQUE(__b); __b & ((n) - 1); })

static __always_inline void count(__u32 idx)
{
	__u64 *c = bpf_map_lookup_elem(&sock_counters, &idx);
	if (c)
		*c += 1;
}

static __always_inline struct sock_event *call_rec(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&sock_scratch, &zero);
}

/* What the walk knows; passed to every bpf_loop callback. */
struct sock_state {
	__u32 point;
	__u32 tgid;
	__u32 slot;
	__u32 slot_flags;
	__u32 sel;          /* selector under test */
	__s32 matched;      /* matching selector, -1 no selectors, -2 none */
	__u32 ok;           /* matchers so far held */
	__u32 have_proc;
	__u32 bin_id;
	__u32 allow;        /* 0 once a slot denied the call */
	__s32 error;        /* the errno of the denial, negative */
};

static __always_inline __u32 bin_id_of(struct ward_proc *p)
{
	__u32 *id;
	if (!p || p->bin_len >= WARD_BIN_PATH_MAX)
		return 0;
	id = bpf_map_lookup_elem(&sock_bin_names, p->bin);
	return id ? *id : 0;
}

static __always_inline int negated(__u8 op)
{
	return op == WARD_OP_NOTSPORT || op == WARD_OP_NOTDPORT || op == WARD_OP_NOTSPORTPRIV ||
	       op == WARD_OP_NOTDPORTPRIV || op == WARD_OP_NOTSADDR || op == WARD_OP_NOTDADDR ||
	       op == WARD_OP_NOTIN;
}

static __always_inline int inline_any(const struct ward_matcher *m, __u64 v)
{
	int hit = 0;
	for (int i = 0; i < WARD_MAX_INLINE; i++)
		if (i < m->nvalues && m->values[i] == v)
			hit = 1;
	return hit;
}

static __always_inline int range_any(const struct ward_matcher *m, __u64 v)
{
	int hit = 0;
	for (int i = 0; i < WARD_MAX_INLINE / 2; i++) {
		if (i >= m->nvalues)
			break;
		if (v >= m->values[2 * i] && v <= m->values[2 * i + 1])
			hit = 1;
	}
	return hit;
}

static __always_inline int port_in(const struct ward_matcher *m, __u16 port)
{
	struct ward_int_key k = { .set_id = m->set_id, .pad = 0, .value = port };
	if (m->value_kind == WARD_VK_INT_SET)
		return bpf_map_lookup_elem(&sock_int_set, &k) != 0;
	return range_any(m, port);
}

/* An address in the matcher's LPM set (family AF_INET: the first 4 bytes of addr). */
static __always_inline int addr_in(const struct ward_matcher *m, __u32 family, const __u8 *addr)
{
	struct ward_addr_key k = {};

	if (family != AF_INET && family != AF_INET6)
		return 0;
	k.set_id = m->set_id;
	k.family = family == AF_INET ? 4 : 6;
	k.prefixlen = WARD_ADDR_LPM_PREFIXLEN(family == AF_INET ? 32 : 128);
	__builtin_memcpy(k.addr, addr, 16);
	if (family == AF_INET)
		__builtin_memset(&k.addr[4], 0, 12);
	return bpf_map_lookup_elem(&sock_addr_lpm, &k) != 0;
}

/* A sockaddr argument: the address the caller passed (Tetragon: S* operators and Family). */
static __always_inline int match_sockaddr(const struct sock_event *ev, const struct ward_matcher *m)
{
	int hit;
	switch (m->op) {
	case WARD_OP_FAMILY: return inline_any(m, ev->user_family);
	case WARD_OP_SPORT:
	case WARD_OP_NOTSPORT: hit = port_in(m, ev->user_port); break;
	case WARD_OP_SPORTPRIV:
	case WARD_OP_NOTSPORTPRIV: hit = ev->user_port < 1024; break;
	case WARD_OP_SADDR:
	case WARD_OP_NOTSADDR: hit = addr_in(m, ev->user_family, ev->user_addr); break;
	default: return 0; /* userspace refuses the rest */
	}
	return negated(m->op) ? !hit : hit;
}

/* A sock/socket argument. At tcp_connect the socket's peer is the address being connected
 * to and its state TCP_SYN_SENT; elsewhere the socket as it is before the call. */
static __always_inline int match_sock(const struct sock_event *ev, const struct ward_matcher *m, int tcp_connect)
{
	__u16 dport = tcp_connect ? ev->user_port : ev->sk_dport;
	const __u8 *daddr = tcp_connect ? ev->user_addr : ev->sk_daddr;
	__u32 state = tcp_connect ? TCP_SYN_SENT : ev->sk_state;
	int hit;

	switch (m->op) {
	case WARD_OP_FAMILY: return inline_any(m, ev->sk_family);
	case WARD_OP_PROTOCOL: return inline_any(m, ev->sk_protocol);
	case WARD_OP_STATE: return inline_any(m, state);
	case WARD_OP_SPORT:
	case WARD_OP_NOTSPORT: hit = port_in(m, ev->sk_sport); break;
	case WARD_OP_DPORT:
	case WARD_OP_NOTDPORT: hit = port_in(m, dport); break;
	case WARD_OP_SPORTPRIV:
	case WARD_OP_NOTSPORTPRIV: hit = ev->sk_sport < 1024; break;
	case WARD_OP_DPORTPRIV:
	case WARD_OP_NOTDPORTPRIV: hit = dport < 1024; break;
	case WARD_OP_SADDR:
	case WARD_OP_NOTSADDR: hit = addr_in(m, ev->sk_family, ev->sk_saddr); break;
	case WARD_OP_DADDR:
	case WARD_OP_NOTDADDR: hit = addr_in(m, ev->sk_family, daddr); break;
	default: return 0;
	}
	return negated(m->op) ? !hit : hit;
}

/*
 * Global (not static): verified once on its own rather than at every call site, which keeps
 * the selector walk small. Its pointer arguments are plain memory of their type's size
 * there, hence the NULL checks.
 */
__noinline int match_one(struct sock_state *st, const struct sock_event *ev,
			 const struct ward_hook_config *cfg, const struct ward_matcher *m)
{
	__u32 slot;
	__u16 t;

	if (!st || !ev || !cfg || !m)
		return 0;
	if (m->kind == WARD_MK_BINARY) {
		int hit;
		if (!st->have_proc) {
			st->have_proc = 1;
			/* the key through the stack: in this global function st is plain memory,
			 * which 6.1's verifier refuses as a map key */
			__u32 tgid = st->tgid;
			st->bin_id = bin_id_of(bpf_map_lookup_elem(&ward_procs, &tgid));
		}
		if (m->value_kind != WARD_VK_BIN_SET || !st->bin_id) {
			hit = 0;
		} else {
			struct ward_bin_set_key k = { .set_id = m->set_id, .bin_id = st->bin_id };
			hit = bpf_map_lookup_elem(&sock_bin_set, &k) != 0;
		}
		return negated(m->op) ? !hit : hit;
	}
	if (m->kind != WARD_MK_ARG)
		return 0;
	slot = m->slot;
	OPAQUE(slot);
	if (slot >= WARD_MAX_SLOTS)
		return 0;
	t = cfg->args[slot].type;
	if (t == WARD_ARG_SOCKADDR)
		return match_sockaddr(ev, m);
	if (t == WARD_ARG_SOCK)
		return match_sock(ev, m, (st->slot_flags & SOCK_SLOT_TCP_CONNECT) != 0);
	return 0;
}

/* ---------------------------------------------------------------- selector walk */

static long matcher_cb(__u32 j, struct sock_state *st)
{
	__u32 slot = st->slot;
	struct ward_hook_config *cfg = bpf_map_lookup_elem(&sock_hooks, &slot);
	struct sock_event *ev = call_rec();
	struct ward_selector *sel;
	__u32 sel_i = st->sel;

	if (!cfg || !ev || j >= WARD_MAX_MATCHERS)
		return 1;
	OPAQUE(sel_i);
	if (sel_i >= WARD_MAX_SELECTORS)
		return 1;
	sel = &cfg->selectors[sel_i];
	if (j >= sel->n_matchers)
		return 1;
	if (!match_one(st, ev, cfg, &sel->matchers[BOUND(j, WARD_MAX_MATCHERS)])) {
		st->ok = 0;
		return 1;
	}
	return 0;
}

static long selector_cb(__u32 i, struct sock_state *st)
{
	__u32 slot = st->slot;
	struct ward_hook_config *cfg = bpf_map_lookup_elem(&sock_hooks, &slot);

	if (!cfg || i >= WARD_MAX_SELECTORS || i >= cfg->n_selectors)
		return 1;
	st->sel = i;
	st->ok = 1;
	bpf_loop(WARD_MAX_MATCHERS, (void *)matcher_cb, st, 0);
	if (st->ok) {
		st->matched = i;
		return 1;
	}
	return 0;
}

/* ---------------------------------------------------------------- actions */

struct act_ctx {
	struct sock_state *st;
	__u32 do_post;
	__u32 monitor;
};

static __always_inline void deny(struct sock_state *st, struct sock_event *ev, __s32 error)
{
	/* the first denial's errno wins: a later Sigkill keeps an Override's argError */
	if (st->allow)
		st->error = error;
	st->allow = 0;
	if (!(ev->flags & SOCK_EF_DENIED))
		ev->error = error;
	ev->flags |= SOCK_EF_DENIED;
}

static long action_cb(__u32 i, struct act_ctx *c)
{
	struct sock_state *st = c->st;
	__u32 slot = st->slot;
	struct ward_hook_config *cfg = bpf_map_lookup_elem(&sock_hooks, &slot);
	struct sock_event *ev = call_rec();
	struct ward_selector *sel;
	struct ward_action *a;
	__u32 sel_i = st->matched;
	__u64 ai = i;

	if (!cfg || !ev || i >= WARD_MAX_ACTIONS)
		return 1;
	OPAQUE(sel_i);
	if (sel_i >= WARD_MAX_SELECTORS)
		return 1;
	sel = &cfg->selectors[sel_i];
	if (i >= sel->n_actions)
		return 1;
	OPAQUE(ai);
	if (ai >= WARD_MAX_ACTIONS)
		return 1;
	a = &sel->actions[ai];
	ev->actions |= 1u << (a->kind & 31);
	switch (a->kind) {
	case WARD_ACT_POST:
		break;
	case WARD_ACT_NOPOST:
		c->do_post = 0;
		break;
	case WARD_ACT_OVERRIDE:
		if (c->monitor || (a->flags & WARD_AF_MONITOR)) {
			ev->flags |= SOCK_EF_MONITOR;
			count(SOCK_CNT_MONITOR);
			break;
		}
		/* userspace accepts only argError in [-4095, -1] (or none: EPERM) */
		deny(st, ev, (a->flags & WARD_AF_HAS_ERROR) && a->arg_error < 0 ? a->arg_error : -EPERM);
		break;
	case WARD_ACT_SIGKILL:
	case WARD_ACT_SIGNAL: {
		__u32 sig = a->kind == WARD_ACT_SIGKILL ? SIGKILL : a->arg_sig;
		if (c->monitor || (a->flags & WARD_AF_MONITOR)) {
			ev->flags |= SOCK_EF_MONITOR;
			count(SOCK_CNT_MONITOR);
			break;
		}
		ev->signal_err = bpf_send_signal(sig);
		if (sig == SIGKILL) {
			/* dying anyway: the call is denied too, so nothing is sent or bound first */
			deny(st, ev, -EPERM);
			if (!ev->signal_err) {
				ev->flags |= SOCK_EF_KILLED;
				count(SOCK_CNT_KILLS);
			}
		} else if (!ev->signal_err) {
			ev->flags |= SOCK_EF_SIGNALED;
			count(SOCK_CNT_SIGNALS);
		}
		break;
	}
	default:
		count(SOCK_CNT_NOT_TAKEN);
		break;
	}
	return 0;
}

/* ---------------------------------------------------------------- slots */

static long slot_cb(__u32 i, struct sock_state *st)
{
	__u32 slot = i;
	struct sock_slot *ss = bpf_map_lookup_elem(&sock_slots, &slot);
	struct ward_hook_config *cfg = bpf_map_lookup_elem(&sock_hooks, &slot);
	struct sock_event *ev = call_rec();
	struct act_ctx ac = {};

	if (!ss || !cfg || !ev)
		return 1;
	if (!(ss->flags & SOCK_SLOT_ACTIVE) || !(ss->points & (1u << (st->point & 31))))
		return 0;
	if (!ward_in_scope(ss->scope))
		return 0;
	/* tcp_connect() runs for TCP sockets only */
	if ((ss->flags & SOCK_SLOT_TCP_CONNECT) && ev->sk_protocol != IPPROTO_TCP)
		return 0;
	st->slot = slot;
	st->slot_flags = ss->flags;
	st->matched = -2;
	if (cfg->flags & WARD_HF_NO_SELECTORS)
		st->matched = -1;
	else
		bpf_loop(WARD_MAX_SELECTORS, (void *)selector_cb, st, 0);
	if (st->matched == -2)
		return 0;
	count(SOCK_CNT_MATCHES);
	if (bpf_map_lookup_elem(&sock_exempt, &st->tgid)) {
		count(SOCK_CNT_EXEMPT);
		return 0;
	}
	ev->slot = slot;
	ev->hook_id = cfg->hook_id;
	ev->selector = st->matched;
	ev->policy = ss->policy;
	ev->actions = 0;
	ev->flags = st->matched == -1 ? SOCK_EF_NO_SELECTORS : 0;
	ev->signal_err = 0;
	ev->error = 0;
	ac.st = st;
	ac.do_post = 1;
	ac.monitor = (ss->flags & SOCK_SLOT_MONITOR) != 0;
	if (st->matched >= 0)
		bpf_loop(WARD_MAX_ACTIONS, (void *)action_cb, &ac, 0);
	else
		ev->actions = 1u << WARD_ACT_POST;
	if (ev->flags & SOCK_EF_DENIED)
		count(SOCK_CNT_DENIES);
	if (ac.do_post) {
		if (bpf_ringbuf_output(&sock_events, ev, sizeof(*ev), 0))
			count(SOCK_CNT_RB_DROPS);
		else
			count(SOCK_CNT_POSTS);
	}
	return 0;
}

/* ---------------------------------------------------------------- entry */

static __always_inline int sock_hook(struct bpf_sock_addr *ctx, __u32 point, int v6)
{
	struct sock_event *ev = call_rec();
	struct sock_state st = {};
	struct bpf_sock *sk;
	__u64 id = bpf_get_current_pid_tgid();

	if (!ev)
		return 1;
	count(SOCK_CNT_CALLS);
	__builtin_memset(ev, 0, sizeof(*ev));
	ev->point = point;
	ev->pid = (__u32)id;
	ev->tgid = id >> 32;
	ev->ktime = bpf_ktime_get_boot_ns();
	ev->user_family = ctx->user_family;
	/* user_port: network byte order in the low 16 bits */
	ev->user_port = ward_ntohs((__u16)ctx->user_port);
	if (v6) {
		__u32 a0 = ctx->user_ip6[0], a1 = ctx->user_ip6[1], a2 = ctx->user_ip6[2], a3 = ctx->user_ip6[3];
		__builtin_memcpy(&ev->user_addr[0], &a0, 4);
		__builtin_memcpy(&ev->user_addr[4], &a1, 4);
		__builtin_memcpy(&ev->user_addr[8], &a2, 4);
		__builtin_memcpy(&ev->user_addr[12], &a3, 4);
	} else {
		__u32 a = ctx->user_ip4;
		__builtin_memcpy(&ev->user_addr[0], &a, 4);
	}
	sk = ctx->sk;
	if (sk) {
		__u32 fam = sk->family;
		ev->sk_family = fam;
		ev->sk_type = sk->type;
		ev->sk_protocol = sk->protocol;
		ev->sk_state = sk->state;
		ev->sk_sport = sk->src_port;
		ev->sk_dport = ward_ntohs(sk->dst_port);
		if (fam == AF_INET6) {
			__u32 s0 = sk->src_ip6[0], s1 = sk->src_ip6[1], s2 = sk->src_ip6[2], s3 = sk->src_ip6[3];
			__u32 d0 = sk->dst_ip6[0], d1 = sk->dst_ip6[1], d2 = sk->dst_ip6[2], d3 = sk->dst_ip6[3];
			__builtin_memcpy(&ev->sk_saddr[0], &s0, 4);
			__builtin_memcpy(&ev->sk_saddr[4], &s1, 4);
			__builtin_memcpy(&ev->sk_saddr[8], &s2, 4);
			__builtin_memcpy(&ev->sk_saddr[12], &s3, 4);
			__builtin_memcpy(&ev->sk_daddr[0], &d0, 4);
			__builtin_memcpy(&ev->sk_daddr[4], &d1, 4);
			__builtin_memcpy(&ev->sk_daddr[8], &d2, 4);
			__builtin_memcpy(&ev->sk_daddr[12], &d3, 4);
		} else {
			__u32 s = sk->src_ip4, d = sk->dst_ip4;
			__builtin_memcpy(&ev->sk_saddr[0], &s, 4);
			__builtin_memcpy(&ev->sk_daddr[0], &d, 4);
		}
	}
	st.point = point;
	st.tgid = id >> 32;
	st.allow = 1;
	st.error = -EPERM;
	bpf_loop(SOCK_MAX_SLOTS, (void *)slot_cb, &st, 0);
	if (st.allow)
		return 1;
	/* EPERM is what a 0 return means anyway; another errno has to be set */
	if (st.error != -EPERM)
		bpf_set_retval(st.error);
	return 0;
}

SEC("cgroup/connect4")
int sock_connect4(struct bpf_sock_addr *ctx)
{
	return sock_hook(ctx, SOCK_POINT_CONNECT4, 0);
}

SEC("cgroup/connect6")
int sock_connect6(struct bpf_sock_addr *ctx)
{
	return sock_hook(ctx, SOCK_POINT_CONNECT6, 1);
}

SEC("cgroup/sendmsg4")
int sock_sendmsg4(struct bpf_sock_addr *ctx)
{
	return sock_hook(ctx, SOCK_POINT_SENDMSG4, 0);
}

SEC("cgroup/sendmsg6")
int sock_sendmsg6(struct bpf_sock_addr *ctx)
{
	return sock_hook(ctx, SOCK_POINT_SENDMSG6, 1);
}

SEC("cgroup/bind4")
int sock_bind4(struct bpf_sock_addr *ctx)
{
	return sock_hook(ctx, SOCK_POINT_BIND4, 0);
}

SEC("cgroup/bind6")
int sock_bind6(struct bpf_sock_addr *ctx)
{
	return sock_hook(ctx, SOCK_POINT_BIND6, 1);
}
