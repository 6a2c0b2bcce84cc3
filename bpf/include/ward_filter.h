/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ward_filter.h: the kernel filter tables the policy engine (engine-as/) produces.
 *
 * This header is the one definition of the layout. The engine writes a blob
 *   [struct ward_blob_header][struct ward_section x n_sections][section payloads]
 * and the userspace side (src/policy/engine.ts) hands each section to the map it fills.
 * Every struct is naturally aligned with explicit padding (no implicit holes), so the
 * bytes the engine writes are the bytes a BPF program reads. test/unit/engine-layout
 * compiles this header with clang and checks every size and offset against the engine.
 *
 * Semantics (Tetragon's): selectors are ORed and the first matching one wins; matchers
 * inside a selector are ANDed; the values of one matcher are ORed (Not* operators: none
 * of the values may match). A hook without selectors always posts; a matching selector
 * without actions posts.
 *
 * Bump WARD_FILTER_LAYOUT_VERSION on any change to a struct, a constant's meaning or a
 * section kind; the engine and the BPF objects must agree on it.
 */
#ifndef WARD_FILTER_H
#define WARD_FILTER_H

#ifndef __VMLINUX_H__
#include <linux/types.h>
#endif

#define WARD_FILTER_MAGIC 0x544c4657u /* "WFLT" as little-endian bytes */
#define WARD_FILTER_LAYOUT_VERSION 2

/* ---- limits (Tetragon's where it has one) ---- */
#define WARD_MAX_SELECTORS 5     /* selectors per hook */
#define WARD_MAX_MATCHERS 16     /* matchers per selector, all kinds together */
#define WARD_MAX_ACTIONS 3       /* actions (and return actions) per selector */
#define WARD_MAX_ARG_MATCHERS 5  /* matchArgs + matchData per selector */
#define WARD_MAX_SLOTS 6         /* argument slots: 0..4 args then data, 5 = return value */
#define WARD_SLOT_RETURN 5
#define WARD_MAX_INLINE 8        /* u64 slots in a matcher: 8 values or 4 [lo,hi] ranges */
#define WARD_MAX_INT_VALUES 4    /* Equal/NotEqual/GT/LT/Mask/InRange values, matchPIDs, namespaces */
#define WARD_MAX_NS_ITEMS 10     /* matchNamespaces items per selector */
#define WARD_MAX_FOLLOW 64       /* followChildren selectors (bits of ward_proc_filter.follow_mask) */
#define WARD_MAX_ANCESTORS 8     /* parents walked for followForks */
#define WARD_LPM_DATA_MAX 256    /* kernel LPM_DATA_SIZE_MAX: key bytes after prefixlen */
#define WARD_PREFIX_MAX 252      /* Prefix value length: LPM key data minus the 4-byte set id */
#define WARD_POSTFIX_MAX 128     /* Postfix value length (reversed LPM key data) */
#define WARD_EQ_MAX 4096         /* Equal string value length */
#define WARD_BIN_PATH_MAX 256    /* matchBinaries path length */
#define WARD_SUBSTR_MAX 128      /* SubString entry data (values are < 100 chars) */
#define WARD_NS_TYPES 10

/* Equal-string keys are padded to the smallest class that holds the value. */
#define WARD_STR_CLASSES 9       /* 16 32 64 128 256 512 1024 2048 4096 */
#define WARD_STR_CLASS_MIN 16

/* ---- section kinds ---- */
enum ward_section_kind {
	WARD_SEC_HOOKS = 1,        /* struct ward_hook_config, indexed by hook position */
	WARD_SEC_STR_EQ_BASE = 2,  /* 2 + class (0..8): struct ward_str_eq_key_<16<<class> */
	WARD_SEC_STR_PREFIX = 11,  /* struct ward_str_prefix_key (LPM trie keys) */
	WARD_SEC_STR_POSTFIX = 12, /* struct ward_str_postfix_key (LPM keys over reversed strings) */
	WARD_SEC_INT_SET = 13,     /* struct ward_int_key (hash set) */
	WARD_SEC_ADDR_LPM = 14,    /* struct ward_addr_key (LPM trie keys) */
	WARD_SEC_BIN_NAMES = 15,   /* struct ward_bin_name: path -> interned binary id */
	WARD_SEC_BIN_SET = 16,     /* struct ward_bin_set_key (hash set) */
	WARD_SEC_SUBSTR = 17,      /* struct ward_substr_entry, array; a matcher names a range */
	WARD_SEC_FOLLOW = 18,      /* struct ward_follow_entry: followChildren bit assignments */
	WARD_SEC_STRINGS = 19,     /* bytes: [u32 len][bytes] records for userspace (names, urls) */
	WARD_SEC_FILE_SETS = 20,   /* struct ward_file_set: Equal sets on file-like args, to resolve to inodes */
	WARD_SEC_COUNT = 20,
};

/* ---- argument types (slot types a hook reads) ---- */
enum ward_arg_type {
	WARD_ARG_NONE = 0,
	WARD_ARG_S8 = 1, WARD_ARG_S16 = 2, WARD_ARG_S32 = 3, WARD_ARG_S64 = 4,
	WARD_ARG_U8 = 5, WARD_ARG_U16 = 6, WARD_ARG_U32 = 7, WARD_ARG_U64 = 8,
	WARD_ARG_STRING = 9,      /* string, filename, data_loc, net_device */
	WARD_ARG_BUF = 10,        /* char_buf, char_iovec, iov_iter, const_buf */
	WARD_ARG_FILE = 11,       /* file, fd, kiocb, linux_binprm: resolved path + inode */
	WARD_ARG_PATH = 12,       /* path, dentry */
	WARD_ARG_SOCK = 13,       /* sock, socket, skb */
	WARD_ARG_SOCKADDR = 14,
	WARD_ARG_SOCKADDR_UN = 15,
	WARD_ARG_CAPS = 16,       /* kernel_cap_t, cap_inheritable, cap_permitted, cap_effective */
	WARD_ARG_SYSCALL64 = 17,  /* id, bit 31 set for the 32-bit ABI */
	WARD_ARG_OPAQUE = 18,     /* read for the event only, no operators (cred, bpf_attr, module, ...) */
	WARD_ARG_NOP = 19,
};

enum ward_arg_source {
	WARD_SRC_ARG = 0, WARD_SRC_CURRENT_TASK = 1, WARD_SRC_PT_REGS = 2, WARD_SRC_RETURN = 3,
};
#define WARD_ARGF_RETURN_COPY 0x1
#define WARD_ARGF_MAX_DATA 0x2
#define WARD_ARGF_RESOLVE 0x4  /* has a BTF resolve path (kept in userspace) */
#define WARD_ARGF_BTF_TYPE 0x8

/* ---- matcher kinds ---- */
enum ward_matcher_kind {
	WARD_MK_ARG = 1,           /* slot, op, values */
	WARD_MK_PID = 2,           /* op In/NotIn, inline pids */
	WARD_MK_NS = 3,            /* slot = namespace type, inline inode numbers */
	WARD_MK_CAPS = 4,          /* slot = cap set (0 eff, 1 inh, 2 perm), values[0] = mask:
	                              In: caps & mask; NotIn: !(caps & mask) */
	WARD_MK_NS_CHANGE = 5,     /* values[0] = mask of namespace types; changed = namespaces
	                              whose inode differs from the one at exec (0 at exec: skip).
	                              In: changed & mask; NotIn: changed & ~mask */
	WARD_MK_CAP_CHANGE = 6,    /* slot = cap set, values[0] = mask; changed = caps ^ caps at
	                              exec. In: changed & mask; NotIn: !(changed & mask) && changed */
	WARD_MK_BINARY = 7,        /* current binary */
	WARD_MK_PARENT_BINARY = 8, /* parent's binary */
};

/* ---- operators: Tetragon's numeric codes (pkg/selectors/kernel.go) ---- */
enum ward_op {
	WARD_OP_GT = 1, WARD_OP_LT = 2, WARD_OP_EQ = 3, WARD_OP_NEQ = 4,
	WARD_OP_IN = 5, WARD_OP_NOTIN = 6, WARD_OP_PREFIX = 8, WARD_OP_POSTFIX = 9,
	WARD_OP_INMAP = 10, WARD_OP_NOTINMAP = 11, WARD_OP_MASK = 12,
	WARD_OP_SADDR = 13, WARD_OP_DADDR = 14, WARD_OP_SPORT = 15, WARD_OP_DPORT = 16,
	WARD_OP_PROTOCOL = 17, WARD_OP_NOTSPORT = 18, WARD_OP_NOTDPORT = 19,
	WARD_OP_SPORTPRIV = 20, WARD_OP_NOTSPORTPRIV = 21, WARD_OP_DPORTPRIV = 22,
	WARD_OP_NOTDPORTPRIV = 23, WARD_OP_NOTSADDR = 24, WARD_OP_NOTDADDR = 25,
	WARD_OP_NOTPREFIX = 26, WARD_OP_NOTPOSTFIX = 27, WARD_OP_FAMILY = 28,
	WARD_OP_STATE = 29, WARD_OP_CAPSGAINED = 30, WARD_OP_INRANGE = 31,
	WARD_OP_NOTINRANGE = 32, WARD_OP_SUBSTRING = 33, WARD_OP_SUBSTRING_IGNCASE = 34,
	WARD_OP_FILETYPE = 36, WARD_OP_NOTFILETYPE = 37, /* values: (i_mode & S_IFMT) >> 12 */
};

/* ---- where a matcher's values live ---- */
enum ward_value_kind {
	WARD_VK_NONE = 0,         /* operator takes no values (*PortPriv) */
	WARD_VK_INLINE = 1,       /* values[0..nvalues) */
	WARD_VK_INLINE_RANGE = 2, /* values[2i] = lo, values[2i+1] = hi, inclusive, i < nvalues */
	WARD_VK_STR_EQ = 3,       /* set_id in the STR_EQ class maps; aux = mask of classes used */
	WARD_VK_STR_PREFIX = 4,   /* set_id in the prefix LPM map */
	WARD_VK_STR_POSTFIX = 5,  /* set_id in the postfix LPM map */
	WARD_VK_INT_SET = 6,      /* set_id in the int hash set */
	WARD_VK_ADDR_LPM = 7,     /* set_id in the address LPM map */
	WARD_VK_BIN_SET = 8,      /* set_id in the binary-id hash set */
	WARD_VK_SUBSTR = 9,       /* values[0] = first SUBSTR entry, nvalues = count */
	WARD_VK_MASK = 10,        /* values[0] = bit mask */
};

#define WARD_MF_FOLLOW 0x1    /* followForks (PID: the task or one of WARD_MAX_ANCESTORS parents;
                                 with NS_PID a task without a pid ns fails) / followChildren
                                 (binary: aux = follow bit) */
#define WARD_MF_NS_PID 0x2    /* isNamespacePID: compare the pid seen in the task's pid ns */
#define WARD_MF_NS_CAP 0x4    /* isNamespaceCapability: a task in the host user ns fails the
                                 matcher, whatever the operator */
#define WARD_MF_RETURN 0x8    /* matchReturnArgs: evaluated when the call returns */
#define WARD_MF_DATA 0x10     /* came from matchData (slot is a data slot) */
#define WARD_MF_HOST_NS 0x20  /* WARD_MK_NS: values[i] with bit i of aux set mean "the host's
                                 namespace" (init_task's inode), unknown when compiled */

struct ward_matcher {
	__u8 kind;        /* enum ward_matcher_kind */
	__u8 op;          /* enum ward_op */
	__u8 slot;        /* argument slot / namespace type / cap set */
	__u8 slot2;       /* CapabilitiesGained: slot of the old caps */
	__u8 value_kind;  /* enum ward_value_kind */
	__u8 nvalues;
	__u16 flags;      /* WARD_MF_* */
	__u32 set_id;
	__u32 aux;
	__u64 values[WARD_MAX_INLINE];
};

/* ---- actions: Tetragon's KprobeAction numbers ---- */
enum ward_action_kind {
	WARD_ACT_POST = 1, WARD_ACT_FOLLOWFD = 2, WARD_ACT_SIGKILL = 3, WARD_ACT_UNFOLLOWFD = 4,
	WARD_ACT_OVERRIDE = 5, WARD_ACT_COPYFD = 6, WARD_ACT_GETURL = 7, WARD_ACT_DNSLOOKUP = 8,
	WARD_ACT_NOPOST = 9, WARD_ACT_SIGNAL = 10, WARD_ACT_TRACKSOCK = 11, WARD_ACT_UNTRACKSOCK = 12,
	WARD_ACT_NOTIFYENFORCER = 13, WARD_ACT_CLEANUPENFORCER = 14, WARD_ACT_SET = 15,
};
#define WARD_AF_KERNEL_STACK 0x1
#define WARD_AF_USER_STACK 0x2
#define WARD_AF_IMA_HASH 0x4
#define WARD_AF_MONITOR 0x8     /* policy-mode monitor: count, do not enforce */
#define WARD_AF_HAS_ERROR 0x10
#define WARD_AF_HAS_SIG 0x20
enum ward_rate_scope { WARD_RATE_THREAD = 0, WARD_RATE_PROCESS = 1, WARD_RATE_GLOBAL = 2 };

struct ward_action {
	__u32 kind;          /* enum ward_action_kind */
	__u32 flags;         /* WARD_AF_* */
	__s32 arg_error;     /* Override / NotifyEnforcer */
	__u32 arg_sig;       /* Signal / NotifyEnforcer */
	__u32 arg_index;     /* argSock (TrackSock), argIndex (Set) */
	__u32 arg_value;     /* Set */
	__u64 rate_limit_ms; /* Post; 0 = none */
	__u32 rate_limit_scope;
	__u32 str_ref;       /* GetUrl / DnsLookup: STRINGS offset + 1; 0 = none */
};

#define WARD_SF_RETURN_MATCHERS 0x1

struct ward_selector {
	__u8 n_matchers;
	__u8 n_actions;        /* a selector written without actions gets one Post here */
	__u8 n_return_actions;
	__u8 flags;            /* WARD_SF_* */
	__u32 label_ref;       /* STRINGS offset + 1; 0 = no label */
	struct ward_matcher matchers[WARD_MAX_MATCHERS];
	struct ward_action actions[WARD_MAX_ACTIONS];
	struct ward_action return_actions[WARD_MAX_ACTIONS];
};

struct ward_arg_cfg {
	__u16 type;     /* enum ward_arg_type */
	__u8 source;    /* enum ward_arg_source */
	__u8 index;     /* position in the prototype / tracepoint format */
	__u8 size_arg;  /* char_buf: 1-based size argument, 0 = none */
	__u8 present;
	__u16 flags;    /* WARD_ARGF_* */
};

enum ward_hook_kind {
	WARD_HOOK_KPROBE = 1, WARD_HOOK_FENTRY = 2, WARD_HOOK_TRACEPOINT = 3, WARD_HOOK_RAW_TRACEPOINT = 4,
	WARD_HOOK_UPROBE = 5, WARD_HOOK_USDT = 6, WARD_HOOK_LSM = 7,
};
#define WARD_HF_SYSCALL 0x1
#define WARD_HF_RETURN 0x2
#define WARD_HF_NO_SELECTORS 0x4 /* hook had no selectors: always post */

struct ward_hook_config {
	__u32 hook_id;           /* hookIdBase + position */
	__u8 hook_kind;          /* enum ward_hook_kind */
	__u8 n_args;             /* slots 0..n_args-1 are args then data */
	__u8 n_selectors;
	__u8 flags;              /* WARD_HF_* */
	__u32 return_arg_action; /* 0, WARD_ACT_TRACKSOCK or WARD_ACT_UNTRACKSOCK */
	__u32 name_ref;          /* STRINGS offset + 1: call / subsystem:event / hook / path:symbol */
	__u32 spec_index;        /* position in its spec list */
	__u32 pad;
	struct ward_arg_cfg args[WARD_MAX_SLOTS];
	struct ward_selector selectors[WARD_MAX_SELECTORS];
};

/* ---- value-set keys (map keys exactly as the kernel looks them up) ---- */
#define WARD_STR_EQ_KEY(N) struct ward_str_eq_key_##N { __u32 set_id; __u32 len; __u8 data[N]; }
WARD_STR_EQ_KEY(16);
WARD_STR_EQ_KEY(32);
WARD_STR_EQ_KEY(64);
WARD_STR_EQ_KEY(128);
WARD_STR_EQ_KEY(256);
WARD_STR_EQ_KEY(512);
WARD_STR_EQ_KEY(1024);
WARD_STR_EQ_KEY(2048);
WARD_STR_EQ_KEY(4096);

/* The Equal-string class (0..WARD_STR_CLASSES-1) of a string of len bytes: the smallest
 * 16 << class that holds it. Keys of class c live in the map of section
 * WARD_SEC_STR_EQ_BASE + c. len > WARD_EQ_MAX never matches. Written as a fixed ladder so
 * the verifier sees a bounded result. */
static inline __attribute__((always_inline)) int ward_str_class(__u32 len)
{
	if (len <= 16) return 0;
	if (len <= 32) return 1;
	if (len <= 64) return 2;
	if (len <= 128) return 3;
	if (len <= 256) return 4;
	if (len <= 512) return 5;
	if (len <= 1024) return 6;
	if (len <= 2048) return 7;
	return 8;
}

/* LPM prefix lengths as the engine writes them (bits after the prefixlen field). */
#define WARD_STR_LPM_PREFIXLEN(bytes) (32 + 8 * (bytes))
#define WARD_ADDR_LPM_PREFIXLEN(bits) (64 + (bits))

/* LPM keys: prefixlen counts bits after the prefixlen field, so it is 32 (set_id) + 8 * bytes.
 * The kernel refuses an LPM trie whose key has more than WARD_LPM_DATA_MAX bytes after
 * prefixlen, and the set id is 4 of them: that is why WARD_PREFIX_MAX is 252, and why the
 * engine rejects longer Prefix values rather than writing keys no map can hold. */
struct ward_str_prefix_key {
	__u32 prefixlen;
	__u32 set_id;
	__u8 data[WARD_PREFIX_MAX];
};
/* Postfix: data holds the value reversed; the kernel reverses the tail of the argument. */
struct ward_str_postfix_key {
	__u32 prefixlen;
	__u32 set_id;
	__u8 data[WARD_POSTFIX_MAX];
};

struct ward_int_key {
	__u32 set_id;
	__u32 pad;
	__u64 value;
};

/* prefixlen = 64 (set_id, family, pad) + CIDR bits. IPv4 uses addr[0..4). */
struct ward_addr_key {
	__u32 prefixlen;
	__u32 set_id;
	__u8 family;   /* 4 or 6 */
	__u8 pad[3];
	__u8 addr[16];
};

/* Every LPM key must fit the kernel's limit, or the map cannot be created. */
_Static_assert(sizeof(struct ward_str_prefix_key) - 4 <= WARD_LPM_DATA_MAX, "prefix LPM key data over the kernel limit");
_Static_assert(sizeof(struct ward_str_postfix_key) - 4 <= WARD_LPM_DATA_MAX, "postfix LPM key data over the kernel limit");
_Static_assert(sizeof(struct ward_addr_key) - 4 <= WARD_LPM_DATA_MAX, "address LPM key data over the kernel limit");

/* Interned binaries: the exec path (zero padded) maps to bin_id in the process map. */
struct ward_bin_name {
	__u32 bin_id;
	__u32 len;
	__u8 path[WARD_BIN_PATH_MAX];
};
struct ward_bin_set_key {
	__u32 set_id;
	__u32 bin_id;
};

struct ward_substr_entry {
	__u32 set_id;
	__u32 len;
	__u8 data[WARD_SUBSTR_MAX];
};

/* followChildren: at exec, if the binary is (op In) / is not (op NotIn) in set_id's
 * BIN_SET, set `bit` in follow_mask; forks inherit the mask and later execs keep it. */
struct ward_follow_entry {
	__u32 bit;
	__u32 set_id;
	__u32 op;
	__u32 pad;
};

/* An Equal set on a file-like argument: the loader stats each value and fills the inode
 * map too, so the kernel matches the opened file, not the path string. */
struct ward_file_set {
	__u32 set_id;
	__u32 class_mask;
};
struct ward_inode_key {
	__u32 set_id;
	__u32 pad;
	__u64 dev;
	__u64 ino;
};

/* What the process map must carry per task for the selectors (kernel side). */
struct ward_proc_filter {
	__u32 bin_id;
	__u32 parent_bin_id;
	__u64 follow_mask;
};

/* ---- blob framing ---- */
#define WARD_BF_MONITOR 0x1 /* policy-mode: monitor */

struct ward_blob_header {
	__u32 magic;        /* WARD_FILTER_MAGIC */
	__u16 version;      /* WARD_FILTER_LAYOUT_VERSION */
	__u16 header_size;  /* sizeof(struct ward_blob_header) */
	__u32 total_size;
	__u32 n_hooks;
	__u32 n_sections;
	__u32 flags;        /* WARD_BF_* */
	__u32 set_id_base;  /* set ids are >= this, so policies can share maps */
	__u32 hook_id_base;
	__u32 set_id_end;   /* one past the last set id used: the next policy's base */
	__u32 n_follow;     /* followChildren bits used, from the compile's follow-bit base */
};

struct ward_section {
	__u32 kind;       /* enum ward_section_kind */
	__u32 offset;     /* from the start of the blob, 8-aligned */
	__u32 count;      /* entries */
	__u32 entry_size; /* bytes per entry (1 for STRINGS) */
};

#endif /* WARD_FILTER_H */
