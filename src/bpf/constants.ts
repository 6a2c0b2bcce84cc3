// Numbers from the kernel uAPI (include/uapi/linux/bpf.h), as listed in loader.md §2.
// Plain numeric enums so attr builders can write them straight into a DataView.

export enum BpfCmd {
  MAP_CREATE = 0,
  MAP_LOOKUP_ELEM = 1,
  MAP_UPDATE_ELEM = 2,
  MAP_DELETE_ELEM = 3,
  MAP_GET_NEXT_KEY = 4,
  PROG_LOAD = 5,
  OBJ_PIN = 6,
  OBJ_GET = 7,
  PROG_ATTACH = 8,
  PROG_DETACH = 9,
  PROG_TEST_RUN = 10,
  PROG_GET_NEXT_ID = 11,
  MAP_GET_NEXT_ID = 12,
  PROG_GET_FD_BY_ID = 13,
  MAP_GET_FD_BY_ID = 14,
  OBJ_GET_INFO_BY_FD = 15,
  PROG_QUERY = 16,
  RAW_TRACEPOINT_OPEN = 17,
  BTF_LOAD = 18,
  BTF_GET_FD_BY_ID = 19,
  TASK_FD_QUERY = 20,
  MAP_LOOKUP_AND_DELETE_ELEM = 21,
  MAP_FREEZE = 22,
  BTF_GET_NEXT_ID = 23,
  MAP_LOOKUP_BATCH = 24,
  MAP_LOOKUP_AND_DELETE_BATCH = 25,
  MAP_UPDATE_BATCH = 26,
  MAP_DELETE_BATCH = 27,
  LINK_CREATE = 28,
  LINK_UPDATE = 29,
  LINK_GET_FD_BY_ID = 30,
  LINK_GET_NEXT_ID = 31,
  ENABLE_STATS = 32,
  ITER_CREATE = 33,
  LINK_DETACH = 34,
  PROG_BIND_MAP = 35,
  TOKEN_CREATE = 36,
}

export enum MapType {
  UNSPEC = 0,
  HASH = 1,
  ARRAY = 2,
  PROG_ARRAY = 3,
  PERF_EVENT_ARRAY = 4,
  PERCPU_HASH = 5,
  PERCPU_ARRAY = 6,
  STACK_TRACE = 7,
  CGROUP_ARRAY = 8,
  LRU_HASH = 9,
  LRU_PERCPU_HASH = 10,
  LPM_TRIE = 11,
  ARRAY_OF_MAPS = 12,
  HASH_OF_MAPS = 13,
  DEVMAP = 14,
  SOCKMAP = 15,
  CPUMAP = 16,
  XSKMAP = 17,
  SOCKHASH = 18,
  CGROUP_STORAGE = 19,
  REUSEPORT_SOCKARRAY = 20,
  PERCPU_CGROUP_STORAGE = 21,
  QUEUE = 22,
  STACK = 23,
  SK_STORAGE = 24,
  DEVMAP_HASH = 25,
  STRUCT_OPS = 26,
  RINGBUF = 27,
  INODE_STORAGE = 28,
  TASK_STORAGE = 29,
  BLOOM_FILTER = 30,
  USER_RINGBUF = 31,
  CGRP_STORAGE = 32,
  ARENA = 33,
}

export enum ProgType {
  UNSPEC = 0,
  SOCKET_FILTER = 1,
  KPROBE = 2,
  SCHED_CLS = 3,
  SCHED_ACT = 4,
  TRACEPOINT = 5,
  XDP = 6,
  PERF_EVENT = 7,
  CGROUP_SKB = 8,
  CGROUP_SOCK = 9,
  LWT_IN = 10,
  LWT_OUT = 11,
  LWT_XMIT = 12,
  SOCK_OPS = 13,
  SK_SKB = 14,
  CGROUP_DEVICE = 15,
  SK_MSG = 16,
  RAW_TRACEPOINT = 17,
  CGROUP_SOCK_ADDR = 18,
  LWT_SEG6LOCAL = 19,
  LIRC_MODE2 = 20,
  SK_REUSEPORT = 21,
  FLOW_DISSECTOR = 22,
  CGROUP_SYSCTL = 23,
  RAW_TRACEPOINT_WRITABLE = 24,
  CGROUP_SOCKOPT = 25,
  TRACING = 26,
  STRUCT_OPS = 27,
  EXT = 28,
  LSM = 29,
  SK_LOOKUP = 30,
  SYSCALL = 31,
  NETFILTER = 32,
}

export enum AttachType {
  CGROUP_INET_INGRESS = 0,
  CGROUP_INET_EGRESS = 1,
  CGROUP_INET_SOCK_CREATE = 2,
  CGROUP_SOCK_OPS = 3,
  SK_SKB_STREAM_PARSER = 4,
  SK_SKB_STREAM_VERDICT = 5,
  CGROUP_DEVICE = 6,
  SK_MSG_VERDICT = 7,
  CGROUP_INET4_BIND = 8,
  CGROUP_INET6_BIND = 9,
  CGROUP_INET4_CONNECT = 10,
  CGROUP_INET6_CONNECT = 11,
  CGROUP_INET4_POST_BIND = 12,
  CGROUP_INET6_POST_BIND = 13,
  CGROUP_UDP4_SENDMSG = 14,
  CGROUP_UDP6_SENDMSG = 15,
  LIRC_MODE2 = 16,
  FLOW_DISSECTOR = 17,
  CGROUP_SYSCTL = 18,
  CGROUP_UDP4_RECVMSG = 19,
  CGROUP_UDP6_RECVMSG = 20,
  CGROUP_GETSOCKOPT = 21,
  CGROUP_SETSOCKOPT = 22,
  TRACE_RAW_TP = 23,
  TRACE_FENTRY = 24,
  TRACE_FEXIT = 25,
  MODIFY_RETURN = 26,
  LSM_MAC = 27,
  TRACE_ITER = 28,
  CGROUP_INET4_GETPEERNAME = 29,
  CGROUP_INET6_GETPEERNAME = 30,
  CGROUP_INET4_GETSOCKNAME = 31,
  CGROUP_INET6_GETSOCKNAME = 32,
  XDP_DEVMAP = 33,
  CGROUP_INET_SOCK_RELEASE = 34,
  XDP_CPUMAP = 35,
  SK_LOOKUP = 36,
  XDP = 37,
  SK_SKB_VERDICT = 38,
  SK_REUSEPORT_SELECT = 39,
  SK_REUSEPORT_SELECT_OR_MIGRATE = 40,
  PERF_EVENT = 41,
  TRACE_KPROBE_MULTI = 42,
  LSM_CGROUP = 43,
  STRUCT_OPS = 44,
  NETFILTER = 45,
  TCX_INGRESS = 46,
  TCX_EGRESS = 47,
  TRACE_UPROBE_MULTI = 48,
  CGROUP_UNIX_CONNECT = 49,
  CGROUP_UNIX_SENDMSG = 50,
  CGROUP_UNIX_RECVMSG = 51,
  CGROUP_UNIX_GETPEERNAME = 52,
  CGROUP_UNIX_GETSOCKNAME = 53,
  NETKIT_PRIMARY = 54,
  NETKIT_PEER = 55,
  TRACE_KPROBE_SESSION = 56,
  TRACE_UPROBE_SESSION = 57,
}

export enum LinkType {
  UNSPEC = 0,
  RAW_TRACEPOINT = 1,
  TRACING = 2,
  CGROUP = 3,
  ITER = 4,
  NETNS = 5,
  XDP = 6,
  PERF_EVENT = 7,
  KPROBE_MULTI = 8,
  STRUCT_OPS = 9,
  NETFILTER = 10,
  TCX = 11,
  UPROBE_MULTI = 12,
  NETKIT = 13,
  SOCKMAP = 14,
}

/** Helper function ids (enum bpf_func_id) the sensors and probes use. */
export enum Helper {
  map_lookup_elem = 1,
  map_update_elem = 2,
  map_delete_elem = 3,
  probe_read = 4,
  ktime_get_ns = 5,
  trace_printk = 6,
  get_smp_processor_id = 8,
  tail_call = 12,
  get_current_pid_tgid = 14,
  get_current_uid_gid = 15,
  get_current_comm = 16,
  perf_event_output = 25,
  get_current_task = 35,
  override_return = 58,
  send_signal = 109,
  probe_read_user = 112,
  probe_read_kernel = 113,
  probe_read_user_str = 114,
  probe_read_kernel_str = 115,
  send_signal_thread = 117,
  ringbuf_output = 130,
  ringbuf_reserve = 131,
  ringbuf_submit = 132,
  ringbuf_discard = 133,
  ringbuf_query = 134,
  d_path = 147,
  get_current_task_btf = 158,
  get_func_ip = 173,
  get_attach_cookie = 174,
  loop = 181,
}

/** map_flags for MAP_CREATE. */
export const MapFlags = {
  NO_PREALLOC: 1,
  NO_COMMON_LRU: 2,
  NUMA_NODE: 4,
  RDONLY: 8,
  WRONLY: 16,
  STACK_BUILD_ID: 32,
  ZERO_SEED: 64,
  RDONLY_PROG: 128,
  WRONLY_PROG: 256,
  CLONE: 512,
  MMAPABLE: 1024,
  PRESERVE_ELEMS: 2048,
  INNER_MAP: 4096,
  LINK: 8192,
  PATH_FD: 1 << 14,
} as const;

/** Flags for MAP_UPDATE_ELEM. */
export enum UpdateFlags {
  ANY = 0,
  NOEXIST = 1,
  EXIST = 2,
  LOCK = 4,
}

/** prog_flags for PROG_LOAD. */
export const ProgFlags = {
  STRICT_ALIGNMENT: 1,
  ANY_ALIGNMENT: 2,
  SLEEPABLE: 16,
} as const;

/** attach_flags for PROG_ATTACH. */
export const AttachFlags = {
  ALLOW_OVERRIDE: 1,
  ALLOW_MULTI: 2,
  REPLACE: 4,
} as const;

/** file_flags for OBJ_GET. */
export const ObjFlags = {
  RDONLY: 8,
  WRONLY: 16,
} as const;

/** BPF_OBJ_NAME_LEN: 15 characters plus NUL. */
export const OBJ_NAME_LEN = 16;
/** sizeof(union bpf_attr) on current uAPI; zero tail bytes are accepted by older kernels. */
export const ATTR_SIZE = 168;

// perf_event_open(2)
export const PERF_TYPE_SOFTWARE = 1;
export const PERF_TYPE_TRACEPOINT = 2;
export const PERF_SAMPLE_RAW = 1024;
export const PERF_FLAG_FD_CLOEXEC = 8;
export const PERF_EVENT_IOC_ENABLE = 0x2400;
export const PERF_EVENT_IOC_DISABLE = 0x2401;
export const PERF_EVENT_IOC_SET_BPF = 0x40042408;
export const PERF_ATTR_SIZE = 128;

// Ring buffer record header bits.
export const RINGBUF_BUSY_BIT = 0x80000000;
export const RINGBUF_DISCARD_BIT = 0x40000000;
export const RINGBUF_HDR_SZ = 8;

export const BPF_FS_MAGIC = 0xcafe4a11;
