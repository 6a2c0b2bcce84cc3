// The policy as the TS wrapper encodes it for the engine (the "policy wire", version 1).
// The wrapper only flattens the validated typed model; every meaning (operators, value
// syntax, limits, defaults) is decided in compile.ts.
import { Reader } from "./io";

export const WIRE_MAGIC: u32 = 0x4e495057; // "WPIN"
export const WIRE_VERSION: u32 = 1;

export class ArgSpec {
  type: string = "";
  index: u32 = 0;
  source: u8 = 0;
  sizeArgIndex: u32 = 0;
  flags: u8 = 0; // 1 returnCopy, 2 maxData, 4 resolve, 8 btfType
}

export class ArgMatch {
  origin: u8 = 0; // 0 matchArgs, 1 matchData, 2 matchReturnArgs
  index: u32 = 0;
  args: u32[] = [];
  op: string = "";
  values: string[] = [];
}

export class PidMatch {
  op: string = "";
  flags: u8 = 0; // 1 isNamespacePID, 2 followForks
  values: u32[] = [];
}

export class BinMatch {
  op: string = "";
  follow: bool = false;
  values: Uint8Array[] = [];
}

export class NsMatch {
  ns: string = "";
  op: string = "";
  values: string[] = [];
}

export class CapMatch {
  type: string = "";
  op: string = "";
  isNs: bool = false;
  values: string[] = [];
}

export class ActionSpec {
  name: string = "";
  present: u32 = 0; // bit per optional field: 1 argError 2 argSig 4 argSock 8 argIndex 16 argValue 32 rateLimit
  argError: i32 = 0;
  argSig: u32 = 0;
  argSock: u32 = 0;
  argIndex: u32 = 0;
  argValue: u32 = 0;
  rateLimitMs: u64 = 0;
  scope: string = "";
  flags: u8 = 0; // 1 kernelStackTrace 2 userStackTrace 4 imaHash
  argUrl: string = "";
  argFqdn: string = "";
}

export class SelectorSpec {
  label: string = "";
  pids: PidMatch[] = [];
  args: ArgMatch[] = [];
  bins: BinMatch[] = [];
  parentBins: BinMatch[] = [];
  ns: NsMatch[] = [];
  nsChanges: NsMatch[] = [];
  caps: CapMatch[] = [];
  capChanges: CapMatch[] = [];
  actions: ActionSpec[] = [];
  returnActions: ActionSpec[] = [];
  hasWorkloads: bool = false;
}

export class HookSpec {
  kind: u8 = 0; // HOOK_* in layout.ts
  specIndex: u32 = 0;
  name: string = "";
  flags: u8 = 0; // 1 syscall, 2 return
  returnArgAction: string = "";
  args: ArgSpec[] = [];
  data: ArgSpec[] = [];
  returnArg: ArgSpec | null = null;
  selectors: SelectorSpec[] = [];
}

export class ListValues {
  name: string = "";
  values: u64[] = [];
}

export class PolicySpec {
  setIdBase: u32 = 1;
  hookIdBase: u32 = 0;
  followBitBase: u32 = 0;
  flags: u32 = 0; // 1 monitor mode
  hostNs: u32[] = [];
  binNames: Uint8Array[] = [];
  binIds: u32[] = [];
  lists: ListValues[] = [];
  hooks: HookSpec[] = [];
}

function readStrings(r: Reader): string[] {
  const n = r.u32();
  const out = new Array<string>(0);
  for (let i: u32 = 0; i < n && !r.overrun; i++) out.push(r.str());
  return out;
}

function readArg(r: Reader): ArgSpec {
  const a = new ArgSpec();
  a.type = r.str();
  a.index = r.u32();
  a.source = r.u8();
  a.sizeArgIndex = r.u32();
  a.flags = r.u8();
  return a;
}

function readArgMatch(r: Reader): ArgMatch {
  const m = new ArgMatch();
  m.origin = r.u8();
  m.index = r.u32();
  const n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) m.args.push(r.u32());
  m.op = r.str();
  m.values = readStrings(r);
  return m;
}

function readBin(r: Reader): BinMatch {
  const b = new BinMatch();
  b.op = r.str();
  b.follow = r.u8() != 0;
  const n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) b.values.push(r.bytes());
  return b;
}

function readNs(r: Reader): NsMatch {
  const m = new NsMatch();
  m.ns = r.str();
  m.op = r.str();
  m.values = readStrings(r);
  return m;
}

function readCap(r: Reader): CapMatch {
  const m = new CapMatch();
  m.type = r.str();
  m.op = r.str();
  m.isNs = r.u8() != 0;
  m.values = readStrings(r);
  return m;
}

function readAction(r: Reader): ActionSpec {
  const a = new ActionSpec();
  a.name = r.str();
  a.present = r.u32();
  a.argError = r.i32();
  a.argSig = r.u32();
  a.argSock = r.u32();
  a.argIndex = r.u32();
  a.argValue = r.u32();
  a.rateLimitMs = r.u64();
  a.scope = r.str();
  a.flags = r.u8();
  a.argUrl = r.str();
  a.argFqdn = r.str();
  return a;
}

function readSelector(r: Reader): SelectorSpec {
  const s = new SelectorSpec();
  s.label = r.str();
  s.hasWorkloads = r.u8() != 0;
  let n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) {
    const p = new PidMatch();
    p.op = r.str();
    p.flags = r.u8();
    const k = r.u32();
    for (let j: u32 = 0; j < k && !r.overrun; j++) p.values.push(r.u32());
    s.pids.push(p);
  }
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) s.args.push(readArgMatch(r));
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) s.bins.push(readBin(r));
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) s.parentBins.push(readBin(r));
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) s.ns.push(readNs(r));
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) s.nsChanges.push(readNs(r));
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) s.caps.push(readCap(r));
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) s.capChanges.push(readCap(r));
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) s.actions.push(readAction(r));
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) s.returnActions.push(readAction(r));
  return s;
}

/** Decodes the wire; null when it is malformed (a wrapper bug, not a policy error). */
export function readPolicy(r: Reader): PolicySpec | null {
  if (r.u32() != WIRE_MAGIC || r.u32() != WIRE_VERSION) return null;
  const p = new PolicySpec();
  p.setIdBase = r.u32();
  p.hookIdBase = r.u32();
  p.followBitBase = r.u32();
  p.flags = r.u32();
  for (let i = 0; i < 10; i++) p.hostNs.push(r.u32());
  let n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) {
    p.binNames.push(r.bytes());
    p.binIds.push(r.u32());
  }
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) {
    const l = new ListValues();
    l.name = r.str();
    const k = r.u32();
    for (let j: u32 = 0; j < k && !r.overrun; j++) l.values.push(r.u64());
    p.lists.push(l);
  }
  n = r.u32();
  for (let i: u32 = 0; i < n && !r.overrun; i++) {
    const h = new HookSpec();
    h.kind = r.u8();
    h.specIndex = r.u32();
    h.name = r.str();
    h.flags = r.u8();
    h.returnArgAction = r.str();
    let k = r.u32();
    for (let j: u32 = 0; j < k && !r.overrun; j++) h.args.push(readArg(r));
    k = r.u32();
    for (let j: u32 = 0; j < k && !r.overrun; j++) h.data.push(readArg(r));
    if (r.u8() != 0) h.returnArg = readArg(r);
    k = r.u32();
    for (let j: u32 = 0; j < k && !r.overrun; j++) h.selectors.push(readSelector(r));
    p.hooks.push(h);
  }
  return r.overrun ? null : p;
}
