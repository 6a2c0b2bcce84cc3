// The engine's ABI, hand-written so no generated glue is needed (the wrapper in
// src/policy/engine.ts is its only caller). Only numbers cross the boundary: the caller
// writes its input into the buffer inputPtr(size) returns, calls an entry point, and
// reads outputLen() bytes at outputPtr(). Buffers are held by globals, so the GC keeps
// them; the caller must re-read memory.buffer after every call (memory may grow).
import { Reader, Writer } from "./io";
import * as L from "./layout";
import { readPolicy } from "./model";
import { Compiler } from "./compile";
import { Tables, loadTables, loadError } from "./tables";
import { readEvent, evaluate as evalEvent } from "./evaluate";

let input = new Uint8Array(4096);
let output = new Writer(4096);
let finished: Uint8Array = new Uint8Array(0);
// True when the output is `finished` (a compiled blob); false when it is `output`.
let useFinished = false;
const loaded: Array<Tables | null> = [];

export function inputPtr(size: u32): usize {
  if (<i32>size > input.length) input = new Uint8Array(<i32>size);
  return input.dataStart;
}

export function outputPtr(): usize {
  return useFinished ? finished.dataStart : output.buf.dataStart;
}

export function outputLen(): u32 {
  return useFinished ? <u32>finished.length : <u32>output.len;
}

function setOutput(b: Uint8Array): void {
  finished = b;
  useFinished = true;
}

function setText(s: string): void {
  useFinished = false;
  output.len = 0;
  output.bytes(Uint8Array.wrap(String.UTF8.encode(s)));
}

/** Compiles the policy wire in the input buffer. 0: blob in the output; 1: policy errors,
 * one "path: message" a line; 2: malformed wire (a wrapper bug). */
export function compile(len: u32): i32 {
  const p = readPolicy(new Reader(input.dataStart, <usize>len));
  if (p == null) { setText("malformed policy wire"); return 2; }
  const c = new Compiler(p);
  const blob = c.run();
  if (blob == null) { setText(c.errors.join("\n")); return 1; }
  setOutput(blob);
  return 0;
}

/** Loads a blob from the input buffer for evaluation; returns a handle, or -1 with the
 * reason in the output. */
export function load(len: u32): i32 {
  const blob = new Uint8Array(<i32>len);
  memory.copy(blob.dataStart, input.dataStart, <usize>len);
  const t = loadTables(blob);
  if (t == null) { setText(loadError); return -1; }
  for (let i = 0; i < loaded.length; i++) {
    if (loaded[i] == null) { loaded[i] = t; return i; }
  }
  loaded.push(t);
  return loaded.length - 1;
}

export function unload(handle: i32): void {
  if (handle >= 0 && handle < loaded.length) loaded[handle] = null;
}

/** Evaluates the event wire in the input buffer against hook hookIndex of a loaded blob.
 * 0: decision in the output; -1: bad handle or hook; -2: malformed event. */
export function evaluate(handle: i32, hookIndex: u32, len: u32): i32 {
  if (handle < 0 || handle >= loaded.length) return -1;
  const t = loaded[handle];
  if (t == null) return -1;
  const ev = readEvent(new Reader(input.dataStart, <usize>len));
  if (ev == null) return -2;
  useFinished = false;
  return evalEvent(t, hookIndex, ev, output) ? 0 : -1;
}

/** Every size and offset the blob relies on, as "name=value" lines, for the layout test. */
export function layoutInfo(): void {
  const lines: string[] = [
    "version=" + L.LAYOUT_VERSION.toString(),
    "magic=" + L.MAGIC.toString(),
    "sizeof.ward_matcher=" + L.MATCHER_SIZE.toString(),
    "ward_matcher.kind=" + L.M_KIND.toString(),
    "ward_matcher.op=" + L.M_OP.toString(),
    "ward_matcher.slot=" + L.M_SLOT.toString(),
    "ward_matcher.slot2=" + L.M_SLOT2.toString(),
    "ward_matcher.value_kind=" + L.M_VALUE_KIND.toString(),
    "ward_matcher.nvalues=" + L.M_NVALUES.toString(),
    "ward_matcher.flags=" + L.M_FLAGS.toString(),
    "ward_matcher.set_id=" + L.M_SET_ID.toString(),
    "ward_matcher.aux=" + L.M_AUX.toString(),
    "ward_matcher.values=" + L.M_VALUES.toString(),
    "sizeof.ward_action=" + L.ACTION_SIZE.toString(),
    "ward_action.kind=" + L.A_KIND.toString(),
    "ward_action.flags=" + L.A_FLAGS.toString(),
    "ward_action.arg_error=" + L.A_ARG_ERROR.toString(),
    "ward_action.arg_sig=" + L.A_ARG_SIG.toString(),
    "ward_action.arg_index=" + L.A_ARG_INDEX.toString(),
    "ward_action.arg_value=" + L.A_ARG_VALUE.toString(),
    "ward_action.rate_limit_ms=" + L.A_RATE_LIMIT_MS.toString(),
    "ward_action.rate_limit_scope=" + L.A_RATE_LIMIT_SCOPE.toString(),
    "ward_action.str_ref=" + L.A_STR_REF.toString(),
    "sizeof.ward_selector=" + L.SELECTOR_SIZE.toString(),
    "ward_selector.n_matchers=" + L.S_N_MATCHERS.toString(),
    "ward_selector.n_actions=" + L.S_N_ACTIONS.toString(),
    "ward_selector.n_return_actions=" + L.S_N_RETURN_ACTIONS.toString(),
    "ward_selector.flags=" + L.S_FLAGS.toString(),
    "ward_selector.label_ref=" + L.S_LABEL_REF.toString(),
    "ward_selector.matchers=" + L.S_MATCHERS.toString(),
    "ward_selector.actions=" + L.S_ACTIONS.toString(),
    "ward_selector.return_actions=" + L.S_RETURN_ACTIONS.toString(),
    "sizeof.ward_arg_cfg=" + L.ARG_CFG_SIZE.toString(),
    "ward_arg_cfg.type=" + L.AC_TYPE.toString(),
    "ward_arg_cfg.source=" + L.AC_SOURCE.toString(),
    "ward_arg_cfg.index=" + L.AC_INDEX.toString(),
    "ward_arg_cfg.size_arg=" + L.AC_SIZE_ARG.toString(),
    "ward_arg_cfg.present=" + L.AC_PRESENT.toString(),
    "ward_arg_cfg.flags=" + L.AC_FLAGS.toString(),
    "sizeof.ward_hook_config=" + L.HOOK_SIZE.toString(),
    "ward_hook_config.hook_id=" + L.H_HOOK_ID.toString(),
    "ward_hook_config.hook_kind=" + L.H_HOOK_KIND.toString(),
    "ward_hook_config.n_args=" + L.H_N_ARGS.toString(),
    "ward_hook_config.n_selectors=" + L.H_N_SELECTORS.toString(),
    "ward_hook_config.flags=" + L.H_FLAGS.toString(),
    "ward_hook_config.return_arg_action=" + L.H_RETURN_ARG_ACTION.toString(),
    "ward_hook_config.name_ref=" + L.H_NAME_REF.toString(),
    "ward_hook_config.spec_index=" + L.H_SPEC_INDEX.toString(),
    "ward_hook_config.args=" + L.H_ARGS.toString(),
    "ward_hook_config.selectors=" + L.H_SELECTORS.toString(),
    "sizeof.ward_str_eq_key_16=" + (L.STR_EQ_HDR + 16).toString(),
    "sizeof.ward_str_eq_key_4096=" + (L.STR_EQ_HDR + 4096).toString(),
    "ward_str_eq_key_16.data=" + L.STR_EQ_HDR.toString(),
    "sizeof.ward_str_prefix_key=" + L.PREFIX_KEY_SIZE.toString(),
    "ward_str_prefix_key.set_id=4",
    "ward_str_prefix_key.data=" + L.LPM_HDR.toString(),
    "sizeof.ward_str_postfix_key=" + L.POSTFIX_KEY_SIZE.toString(),
    "ward_str_postfix_key.data=" + L.LPM_HDR.toString(),
    "sizeof.ward_int_key=" + L.INT_KEY_SIZE.toString(),
    "ward_int_key.value=8",
    "sizeof.ward_addr_key=" + L.ADDR_KEY_SIZE.toString(),
    "ward_addr_key.family=" + L.ADDR_K_FAMILY.toString(),
    "ward_addr_key.addr=" + L.ADDR_K_ADDR.toString(),
    "sizeof.ward_bin_name=" + L.BIN_NAME_SIZE.toString(),
    "ward_bin_name.path=8",
    "sizeof.ward_bin_set_key=" + L.BIN_SET_KEY_SIZE.toString(),
    "sizeof.ward_substr_entry=" + L.SUBSTR_ENTRY_SIZE.toString(),
    "ward_substr_entry.data=8",
    "sizeof.ward_follow_entry=" + L.FOLLOW_ENTRY_SIZE.toString(),
    "ward_follow_entry.op=8",
    "sizeof.ward_file_set=" + L.FILE_SET_SIZE.toString(),
    "sizeof.ward_inode_key=" + L.INODE_KEY_SIZE.toString(),
    "sizeof.ward_proc_filter=" + L.PROC_FILTER_SIZE.toString(),
    "sizeof.ward_blob_header=" + L.HEADER_SIZE.toString(),
    "ward_blob_header.version=" + L.BH_VERSION.toString(),
    "ward_blob_header.header_size=" + L.BH_HEADER_SIZE.toString(),
    "ward_blob_header.total_size=" + L.BH_TOTAL_SIZE.toString(),
    "ward_blob_header.n_hooks=" + L.BH_N_HOOKS.toString(),
    "ward_blob_header.n_sections=" + L.BH_N_SECTIONS.toString(),
    "ward_blob_header.flags=" + L.BH_FLAGS.toString(),
    "ward_blob_header.set_id_base=" + L.BH_SET_ID_BASE.toString(),
    "ward_blob_header.hook_id_base=" + L.BH_HOOK_ID_BASE.toString(),
    "ward_blob_header.set_id_end=" + L.BH_SET_ID_END.toString(),
    "ward_blob_header.n_follow=" + L.BH_N_FOLLOW.toString(),
    "sizeof.ward_section=" + L.SECTION_SIZE.toString(),
    "const.WARD_MAX_SELECTORS=" + L.MAX_SELECTORS.toString(),
    "const.WARD_MAX_MATCHERS=" + L.MAX_MATCHERS.toString(),
    "const.WARD_MAX_ACTIONS=" + L.MAX_ACTIONS.toString(),
    "const.WARD_MAX_SLOTS=" + L.MAX_SLOTS.toString(),
    "const.WARD_MAX_INLINE=" + L.MAX_INLINE.toString(),
    "const.WARD_LPM_DATA_MAX=" + L.LPM_DATA_MAX.toString(),
    "const.WARD_PREFIX_MAX=" + L.PREFIX_MAX.toString(),
    "const.WARD_POSTFIX_MAX=" + L.POSTFIX_MAX.toString(),
    "const.WARD_EQ_MAX=" + L.EQ_MAX.toString(),
    "const.WARD_SEC_COUNT=" + L.SEC_COUNT.toString(),
    "const.WARD_FILTER_LAYOUT_VERSION=" + L.LAYOUT_VERSION.toString(),
    "sec.hooks=" + L.SEC_HOOKS.toString(),
    "sec.strEq=" + L.SEC_STR_EQ_BASE.toString(),
    "sec.strPrefix=" + L.SEC_STR_PREFIX.toString(),
    "sec.strPostfix=" + L.SEC_STR_POSTFIX.toString(),
    "sec.intSet=" + L.SEC_INT_SET.toString(),
    "sec.addrLpm=" + L.SEC_ADDR_LPM.toString(),
    "sec.binNames=" + L.SEC_BIN_NAMES.toString(),
    "sec.binSet=" + L.SEC_BIN_SET.toString(),
    "sec.substr=" + L.SEC_SUBSTR.toString(),
    "sec.follow=" + L.SEC_FOLLOW.toString(),
    "sec.strings=" + L.SEC_STRINGS.toString(),
    "sec.fileSets=" + L.SEC_FILE_SETS.toString(),
  ];
  setText(lines.join("\n"));
}
