// The fanotify decision thread with the policy engine: the same loop as the blob worker
// (fanotifyWorkerMain in fanotify.ts), started by FanotifyGuard when a rule is decided by
// the engine's evaluate(). A module of its own because the engine (WASM and its wire
// format) cannot be stringified into a blob; build/binary.ts compiles it as an entrypoint.
import * as ffi from "bun:ffi";
import * as fs from "node:fs";
import { compilePolicy, encodeEvent, evaluateRaw } from "../policy/engine.ts";
import { fanotifyWorkerMain, type WorkerEngine } from "./fanotify.ts";

const engine: WorkerEngine = {
  prepare(e) {
    const compiled = compilePolicy(e.policy, { mode: e.mode });
    // Only the matching selector is needed (the rule's action is the decision thread's):
    // the raw result's head (selector i32, flags u32 with bit 0 "matched") is read in place
    // rather than decoding every action record as evaluate() does.
    return (hookIndex, event) => {
      const out = evaluateRaw(compiled, hookIndex, encodeEvent(event));
      const dv = new DataView(out.buffer, out.byteOffset, 8);
      const selector = dv.getInt32(0, true);
      return (dv.getUint32(4, true) & 1) !== 0 && selector >= 0 ? selector : -1;
    };
  },
};

declare const self: { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };
if (!Bun.isMainThread) fanotifyWorkerMain(ffi, fs, self, engine);
