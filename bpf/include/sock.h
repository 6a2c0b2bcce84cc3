/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sock.h: the layouts bpf/sock_addr.c shares with src/sensors/sock.ts that are not the
 * engine's (those are in ward_filter.h): the per-slot switch, the ring buffer record and the
 * counters. Userspace reads member offsets from the object's BTF, so this header is the only
 * definition. Fixed-width types, natural alignment, explicit padding.
 */
#ifndef WARD_SOCK_H
#define WARD_SOCK_H

#define SOCK_MAX_SLOTS 32 /* hook slots (every policy's socket hooks together) */

/* The cgroup sock_addr attach points, as bits of sock_slot.points. */
enum sock_point {
	SOCK_POINT_CONNECT4 = 0,
	SOCK_POINT_CONNECT6 = 1,
	SOCK_POINT_SENDMSG4 = 2,
	SOCK_POINT_SENDMSG6 = 3,
	SOCK_POINT_BIND4 = 4,
	SOCK_POINT_BIND6 = 5,
	SOCK_POINT_COUNT = 6,
};

#define SOCK_SLOT_ACTIVE 0x1   /* switched on: written last by apply(), cleared first by remove() */
#define SOCK_SLOT_MONITOR 0x2  /* policy mode monitor: Override/Sigkill/Signal become Post */
/* tcp_connect: only TCP sockets; its sock argument is the socket as tcp_connect() sees it:
 * state TCP_SYN_SENT and the peer the address being connected to */
#define SOCK_SLOT_TCP_CONNECT 0x4

/* Per hook slot, next to its ward_hook_config in sock_hooks. */
struct sock_slot {
	__u32 flags;   /* SOCK_SLOT_* */
	__u32 policy;  /* userspace policy number, for the record */
	__u32 points;  /* 1 << enum sock_point for each attach point the hook runs at */
	__u32 scope;   /* workload scope id (scope.h), 0: every process */
};

/* Record flags. */
#define SOCK_EF_MONITOR 0x1      /* an enforcing action was turned into Post (monitor mode) */
#define SOCK_EF_KILLED 0x2       /* SIGKILL was queued */
#define SOCK_EF_SIGNALED 0x4     /* Signal(argSig) was queued */
#define SOCK_EF_DENIED 0x8       /* the call fails (the program returned 0) */
#define SOCK_EF_NO_SELECTORS 0x10

/*
 * One ring buffer record per posted match. Two views of the call: the address the caller
 * passed (user_*: a sockaddr argument) and the socket (sk_*: a sock/socket argument).
 * Ports are in host byte order, addresses in network byte order (IPv4 in the first 4 bytes).
 */
struct sock_event {
	__u32 slot;
	__u32 hook_id;     /* ward_hook_config.hook_id */
	__s32 selector;    /* matching selector, -1: the hook has no selectors */
	__u32 policy;      /* sock_slot.policy */
	__u32 point;       /* enum sock_point */
	__u32 pid;         /* thread id */
	__u32 tgid;
	__u32 actions;     /* bit (1 << ward_action_kind) per action of the selector that ran */
	__u64 ktime;       /* bpf_ktime_get_boot_ns() */
	__u32 flags;       /* SOCK_EF_* */
	__s32 signal_err;  /* bpf_send_signal's return for Sigkill/Signal, 0 = queued */
	__s32 error;       /* the errno the call fails with (SOCK_EF_DENIED), negative */
	__u32 user_family;
	__u16 user_port;
	__u16 sk_family;
	__u16 sk_type;
	__u16 sk_protocol;
	__u16 sk_sport;
	__u16 sk_dport;
	__u32 sk_state;
	__u8 user_addr[16];
	__u8 sk_saddr[16];
	__u8 sk_daddr[16];
};

/* Per-CPU counters (sock_counters index). */
enum sock_counter {
	SOCK_CNT_CALLS = 0,     /* program runs */
	SOCK_CNT_MATCHES = 1,   /* a selector matched (or the hook has none) */
	SOCK_CNT_POSTS = 2,     /* records sent */
	SOCK_CNT_RB_DROPS = 3,  /* ring buffer full: record lost (the action still happened) */
	SOCK_CNT_DENIES = 4,
	SOCK_CNT_KILLS = 5,
	SOCK_CNT_SIGNALS = 6,
	SOCK_CNT_EXEMPT = 7,    /* a match on an exempt tgid: nothing done */
	SOCK_CNT_MONITOR = 8,   /* enforcing actions turned into Post */
	SOCK_CNT_NOT_TAKEN = 9, /* an action this program cannot take: userspace rejects them */
	SOCK_CNT_MAX = 10,
};

#endif /* WARD_SOCK_H */
