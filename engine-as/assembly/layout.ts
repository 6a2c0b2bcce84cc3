// The blob layout, mirrored from bpf/include/ward_filter.h (the source of truth).
// test/unit/engine-layout.test.ts compiles the header with clang and compares every size
// and offset below with offsetof/sizeof, through layoutInfo() in index.ts.

export const MAGIC: u32 = 0x544c4657;
export const LAYOUT_VERSION: u16 = 2;

export const MAX_SELECTORS = 5;
export const MAX_MATCHERS = 16;
export const MAX_ACTIONS = 3;
export const MAX_ARG_MATCHERS = 5;
export const MAX_SLOTS = 6;
export const SLOT_RETURN = 5;
export const MAX_INLINE = 8;
export const MAX_INT_VALUES = 4;
export const MAX_NS_ITEMS = 10;
export const MAX_FOLLOW = 64;
export const MAX_ANCESTORS = 8;
export const LPM_DATA_MAX = 256; // the kernel's LPM_DATA_SIZE_MAX: key bytes after prefixlen
export const PREFIX_MAX = 252; // LPM_DATA_MAX minus the set id
export const POSTFIX_MAX = 128;
export const EQ_MAX = 4096;
export const BIN_PATH_MAX = 256;
export const SUBSTR_MAX = 128;
export const NS_TYPES = 10;
export const STR_CLASSES = 9;
export const STR_CLASS_MIN = 16;

// section kinds
export const SEC_HOOKS: u32 = 1;
export const SEC_STR_EQ_BASE: u32 = 2;
export const SEC_STR_PREFIX: u32 = 11;
export const SEC_STR_POSTFIX: u32 = 12;
export const SEC_INT_SET: u32 = 13;
export const SEC_ADDR_LPM: u32 = 14;
export const SEC_BIN_NAMES: u32 = 15;
export const SEC_BIN_SET: u32 = 16;
export const SEC_SUBSTR: u32 = 17;
export const SEC_FOLLOW: u32 = 18;
export const SEC_STRINGS: u32 = 19;
export const SEC_FILE_SETS: u32 = 20;
export const SEC_COUNT: u32 = 20;

// argument types
export const ARG_NONE: u16 = 0;
export const ARG_S8: u16 = 1;
export const ARG_S16: u16 = 2;
export const ARG_S32: u16 = 3;
export const ARG_S64: u16 = 4;
export const ARG_U8: u16 = 5;
export const ARG_U16: u16 = 6;
export const ARG_U32: u16 = 7;
export const ARG_U64: u16 = 8;
export const ARG_STRING: u16 = 9;
export const ARG_BUF: u16 = 10;
export const ARG_FILE: u16 = 11;
export const ARG_PATH: u16 = 12;
export const ARG_SOCK: u16 = 13;
export const ARG_SOCKADDR: u16 = 14;
export const ARG_SOCKADDR_UN: u16 = 15;
export const ARG_CAPS: u16 = 16;
export const ARG_SYSCALL64: u16 = 17;
export const ARG_OPAQUE: u16 = 18;
export const ARG_NOP: u16 = 19;

export const SRC_ARG: u8 = 0;
export const SRC_CURRENT_TASK: u8 = 1;
export const SRC_PT_REGS: u8 = 2;
export const SRC_RETURN: u8 = 3;
export const ARGF_RETURN_COPY: u16 = 1;
export const ARGF_MAX_DATA: u16 = 2;
export const ARGF_RESOLVE: u16 = 4;
export const ARGF_BTF_TYPE: u16 = 8;

// matcher kinds
export const MK_ARG: u8 = 1;
export const MK_PID: u8 = 2;
export const MK_NS: u8 = 3;
export const MK_CAPS: u8 = 4;
export const MK_NS_CHANGE: u8 = 5;
export const MK_CAP_CHANGE: u8 = 6;
export const MK_BINARY: u8 = 7;
export const MK_PARENT_BINARY: u8 = 8;

// operators (Tetragon's codes)
export const OP_GT: u8 = 1;
export const OP_LT: u8 = 2;
export const OP_EQ: u8 = 3;
export const OP_NEQ: u8 = 4;
export const OP_IN: u8 = 5;
export const OP_NOTIN: u8 = 6;
export const OP_PREFIX: u8 = 8;
export const OP_POSTFIX: u8 = 9;
export const OP_INMAP: u8 = 10;
export const OP_NOTINMAP: u8 = 11;
export const OP_MASK: u8 = 12;
export const OP_SADDR: u8 = 13;
export const OP_DADDR: u8 = 14;
export const OP_SPORT: u8 = 15;
export const OP_DPORT: u8 = 16;
export const OP_PROTOCOL: u8 = 17;
export const OP_NOTSPORT: u8 = 18;
export const OP_NOTDPORT: u8 = 19;
export const OP_SPORTPRIV: u8 = 20;
export const OP_NOTSPORTPRIV: u8 = 21;
export const OP_DPORTPRIV: u8 = 22;
export const OP_NOTDPORTPRIV: u8 = 23;
export const OP_NOTSADDR: u8 = 24;
export const OP_NOTDADDR: u8 = 25;
export const OP_NOTPREFIX: u8 = 26;
export const OP_NOTPOSTFIX: u8 = 27;
export const OP_FAMILY: u8 = 28;
export const OP_STATE: u8 = 29;
export const OP_CAPSGAINED: u8 = 30;
export const OP_INRANGE: u8 = 31;
export const OP_NOTINRANGE: u8 = 32;
export const OP_SUBSTRING: u8 = 33;
export const OP_SUBSTRING_IGNCASE: u8 = 34;
export const OP_FILETYPE: u8 = 36;
export const OP_NOTFILETYPE: u8 = 37;

// value kinds
export const VK_NONE: u8 = 0;
export const VK_INLINE: u8 = 1;
export const VK_INLINE_RANGE: u8 = 2;
export const VK_STR_EQ: u8 = 3;
export const VK_STR_PREFIX: u8 = 4;
export const VK_STR_POSTFIX: u8 = 5;
export const VK_INT_SET: u8 = 6;
export const VK_ADDR_LPM: u8 = 7;
export const VK_BIN_SET: u8 = 8;
export const VK_SUBSTR: u8 = 9;
export const VK_MASK: u8 = 10;

export const MF_FOLLOW: u16 = 1;
export const MF_NS_PID: u16 = 2;
export const MF_NS_CAP: u16 = 4;
export const MF_RETURN: u16 = 8;
export const MF_DATA: u16 = 16;
export const MF_HOST_NS: u16 = 32;

// actions (Tetragon's KprobeAction numbers)
export const ACT_POST: u32 = 1;
export const ACT_FOLLOWFD: u32 = 2;
export const ACT_SIGKILL: u32 = 3;
export const ACT_UNFOLLOWFD: u32 = 4;
export const ACT_OVERRIDE: u32 = 5;
export const ACT_COPYFD: u32 = 6;
export const ACT_GETURL: u32 = 7;
export const ACT_DNSLOOKUP: u32 = 8;
export const ACT_NOPOST: u32 = 9;
export const ACT_SIGNAL: u32 = 10;
export const ACT_TRACKSOCK: u32 = 11;
export const ACT_UNTRACKSOCK: u32 = 12;
export const ACT_NOTIFYENFORCER: u32 = 13;
export const ACT_CLEANUPENFORCER: u32 = 14;
export const ACT_SET: u32 = 15;
export const AF_KERNEL_STACK: u32 = 1;
export const AF_USER_STACK: u32 = 2;
export const AF_IMA_HASH: u32 = 4;
export const AF_MONITOR: u32 = 8;
export const AF_HAS_ERROR: u32 = 16;
export const AF_HAS_SIG: u32 = 32;

export const SF_RETURN_MATCHERS: u8 = 1;

export const HOOK_KPROBE: u8 = 1;
export const HOOK_FENTRY: u8 = 2;
export const HOOK_TRACEPOINT: u8 = 3;
export const HOOK_RAW_TRACEPOINT: u8 = 4;
export const HOOK_UPROBE: u8 = 5;
export const HOOK_USDT: u8 = 6;
export const HOOK_LSM: u8 = 7;
export const HF_SYSCALL: u8 = 1;
export const HF_RETURN: u8 = 2;
export const HF_NO_SELECTORS: u8 = 4;

export const BF_MONITOR: u32 = 1;

// ---- struct sizes and field offsets ----
// ward_matcher
export const M_KIND = 0;
export const M_OP = 1;
export const M_SLOT = 2;
export const M_SLOT2 = 3;
export const M_VALUE_KIND = 4;
export const M_NVALUES = 5;
export const M_FLAGS = 6;
export const M_SET_ID = 8;
export const M_AUX = 12;
export const M_VALUES = 16;
export const MATCHER_SIZE = 80;
// ward_action
export const A_KIND = 0;
export const A_FLAGS = 4;
export const A_ARG_ERROR = 8;
export const A_ARG_SIG = 12;
export const A_ARG_INDEX = 16;
export const A_ARG_VALUE = 20;
export const A_RATE_LIMIT_MS = 24;
export const A_RATE_LIMIT_SCOPE = 32;
export const A_STR_REF = 36;
export const ACTION_SIZE = 40;
// ward_selector
export const S_N_MATCHERS = 0;
export const S_N_ACTIONS = 1;
export const S_N_RETURN_ACTIONS = 2;
export const S_FLAGS = 3;
export const S_LABEL_REF = 4;
export const S_MATCHERS = 8;
export const S_ACTIONS = S_MATCHERS + MAX_MATCHERS * MATCHER_SIZE;
export const S_RETURN_ACTIONS = S_ACTIONS + MAX_ACTIONS * ACTION_SIZE;
export const SELECTOR_SIZE = S_RETURN_ACTIONS + MAX_ACTIONS * ACTION_SIZE;
// ward_arg_cfg
export const AC_TYPE = 0;
export const AC_SOURCE = 2;
export const AC_INDEX = 3;
export const AC_SIZE_ARG = 4;
export const AC_PRESENT = 5;
export const AC_FLAGS = 6;
export const ARG_CFG_SIZE = 8;
// ward_hook_config
export const H_HOOK_ID = 0;
export const H_HOOK_KIND = 4;
export const H_N_ARGS = 5;
export const H_N_SELECTORS = 6;
export const H_FLAGS = 7;
export const H_RETURN_ARG_ACTION = 8;
export const H_NAME_REF = 12;
export const H_SPEC_INDEX = 16;
export const H_ARGS = 24;
export const H_SELECTORS = H_ARGS + MAX_SLOTS * ARG_CFG_SIZE;
export const HOOK_SIZE = H_SELECTORS + MAX_SELECTORS * SELECTOR_SIZE;
// value-set keys
export const STR_EQ_HDR = 8; // set_id, len; data follows
export const LPM_HDR = 8; // prefixlen, set_id
export const PREFIX_KEY_SIZE = LPM_HDR + PREFIX_MAX;
export const POSTFIX_KEY_SIZE = LPM_HDR + POSTFIX_MAX;
export const INT_KEY_SIZE = 16;
export const ADDR_KEY_SIZE = 28;
export const ADDR_K_FAMILY = 8;
export const ADDR_K_ADDR = 12;
export const BIN_NAME_SIZE = 8 + BIN_PATH_MAX;
export const BIN_SET_KEY_SIZE = 8;
export const SUBSTR_ENTRY_SIZE = 8 + SUBSTR_MAX;
export const FOLLOW_ENTRY_SIZE = 16;
export const FILE_SET_SIZE = 8;
export const INODE_KEY_SIZE = 24;
export const PROC_FILTER_SIZE = 16;
// blob framing
export const HEADER_SIZE = 40;
export const BH_MAGIC = 0;
export const BH_VERSION = 4;
export const BH_HEADER_SIZE = 6;
export const BH_TOTAL_SIZE = 8;
export const BH_N_HOOKS = 12;
export const BH_N_SECTIONS = 16;
export const BH_FLAGS = 20;
export const BH_SET_ID_BASE = 24;
export const BH_HOOK_ID_BASE = 28;
export const BH_SET_ID_END = 32;
export const BH_N_FOLLOW = 36;
export const SECTION_SIZE = 16;

/** Size class (0..8) of an Equal string of n bytes: the smallest 16<<c that holds it. */
export function strClass(n: i32): i32 {
  let c = 0;
  let size = STR_CLASS_MIN;
  while (size < n) {
    size <<= 1;
    c++;
  }
  return c;
}

export function strClassSize(c: i32): i32 {
  return STR_CLASS_MIN << c;
}
