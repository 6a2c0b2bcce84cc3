// Compact one-line rendering, like `tetra getevents -o compact` (reference/tetragon.md §3.1):
//   🚀 process <source> <binary> <arguments>
//   💥 exit    <source> <binary> <arguments> <signal or status>
// where source is "namespace/pod" for pod processes and the node name otherwise. It works on
// the exported JSON so the same rendering serves the live stream and a saved export file.

type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => typeof v === "object" && v !== null && !Array.isArray(v);
const str = (v: unknown): string => (typeof v === "string" ? v : typeof v === "number" ? String(v) : "");

/** Go's %-7s. */
const label = (s: string): string => s.padEnd(7, " ");

function processInfo(nodeName: string, p: Obj): string {
  const pod = isObj(p.pod) ? p.pod : undefined;
  const source = pod && (str(pod.namespace) || str(pod.name)) ? `${str(pod.namespace)}/${str(pod.name)}` : nodeName;
  return `${source} ${str(p.binary)}`;
}

/** The compact line for an exported event, or undefined for types it does not render. */
export function compactLine(ev: Obj): string | undefined {
  const node = str(ev.node_name);
  const exec = ev.process_exec;
  if (isObj(exec) && isObj(exec.process)) {
    return `🚀 ${label("process")} ${processInfo(node, exec.process)} ${str(exec.process.arguments)}`;
  }
  const exit = ev.process_exit;
  if (isObj(exit) && isObj(exit.process)) {
    const status = str(exit.signal) || String(typeof exit.status === "number" ? exit.status : 0);
    return `💥 ${label("exit")} ${processInfo(node, exit.process)} ${str(exit.process.arguments)} ${status}`;
  }
  return undefined;
}
