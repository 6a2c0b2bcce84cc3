// The fanotify decision thread with the policy engine: the same loop as the blob worker
// (fanotifyWorkerMain in fanotify.ts), started by FanotifyGuard when a rule is decided by
// the engine's evaluate(). A module of its own because the engine (WASM and its wire
// format) cannot be stringified into a blob; build/binary.ts compiles it as an entrypoint.
import * as ffi from "bun:ffi";
import * as fs from "node:fs";
import { compilePolicy, evaluate } from "../policy/engine.ts";
import { fanotifyWorkerMain, type WorkerEngine } from "./fanotify.ts";

const engine: WorkerEngine = {
  prepare(e) {
    const compiled = compilePolicy(e.policy, { mode: e.mode });
    return (hookIndex, event) => {
      const d = evaluate(compiled, hookIndex, event);
      return d.matched && d.selector !== null ? d.selector : -1;
    };
  },
};

declare const self: { onmessage: ((e: MessageEvent) => void) | null; postMessage(m: unknown): void };
if (!Bun.isMainThread) fanotifyWorkerMain(ffi, fs, self, engine);
