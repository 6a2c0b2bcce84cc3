// The pin manifest: what an agent run with --keep-sensors-on-exit left pinned under --bpf-dir,
// so that the next agent can adopt it exactly. bpffs holds only BPF objects and directories,
// so the manifest is itself a BPF map pinned there (bpfDir/manifest): a hash map of 4 KiB
// chunks of one JSON document. It lives and dies with the pins it describes (a reboot takes
// both). Every write is atomic: a new map is filled, pinned as manifest_new and renamed over
// manifest, so a SIGKILL leaves either the old manifest or the new one.
//
// Layout of bpfDir (every name a pin or a directory on bpffs):
//   manifest              this document
//   process/              the process sensor's maps and links (shared: matchBinaries reads its map)
//   generic/              the generic hook sensor's maps and links (shared by every generic policy)
//   sock/                 the socket sensor's maps, programs and cgroup links (shared by every socket policy)
//   policies/<dir>/guard  a policy's file guard (its own collection: maps and links)
//   policies/<dir>/backstop  the file guard backing a policy's fanotify rules after the agent exits
import { createHash } from "node:crypto";
import { existsSync, renameSync } from "node:fs";
import { join } from "node:path";
import { BpfMap, MapType } from "../bpf/map.ts";
import { readObject } from "../bpf/objects.ts";
import { getPinned, unpin } from "../bpf/pin.ts";
import { VERSION } from "../version.ts";

export const MANIFEST_FORMAT = 1;
const CHUNK = 4096;
const MAX_CHUNKS = 1024;
const LENGTH_KEY = 0xffffffff;
/** The objects whose programs and maps a manifest's pins were made from. */
export const PINNED_OBJECTS = ["process", "generic", "file_guard", "sock_addr"] as const;

/** A manifest that cannot be adopted: damaged, or written by an incompatible ward. */
export class PinManifestError extends Error {
  override name = "PinManifestError";
  readonly code = "pin_manifest";
}

/** What the manifest records of one hook: the mechanism now and after the agent exits. */
export interface PinnedHook {
  path: string;
  hook: string;
  mechanism: string;
  afterExit: string;
}

/** One enforcing policy whose kernel objects are pinned. */
export interface PinnedPolicy {
  /** sha256 of the policy's content (policyContentHash) */
  hash: string;
  mode: "enforce" | "monitor";
  /** bpfDir-relative directory of its own pins (policies/<name>/<id>) */
  dir?: string;
  /** bpfDir-relative directory of its file guard, if it has one */
  guard?: string;
  /** bpfDir-relative directory of the file guard backing its fanotify rules */
  backstop?: string;
  /** its entries in the shared generic sensor (generic.ts GenericPinnedPolicy), opaque here */
  generic?: unknown;
  /** its entries in the shared socket sensor (sock.ts SockPinnedPolicy), opaque here */
  sock?: unknown;
  hooks: PinnedHook[];
}

export interface PinManifest {
  format: number;
  /** the ward that wrote it */
  ward: string;
  /** sha256 of each object the pins were made from */
  objects: Record<string, string>;
  written_at: string;
  /** bpfDir-relative directories of the shared sensors that are pinned */
  shared: { process?: string; generic?: string; sock?: string };
  policies: Record<string, PinnedPolicy>;
  /**
   * Earlier versions of policies, pinned still: a start re-applied those policies with new
   * content and had not finished (it removes them once its whole policy set is applied; a
   * start that fails keeps them, so the protection they give never lapses).
   */
  superseded?: Record<string, PinnedPolicy>;
}

let objectHashes: Record<string, string> | undefined;

/** sha256 of each embedded object the pins depend on (computed once). */
export function currentObjectHashes(): Record<string, string> {
  objectHashes ??= Object.fromEntries(PINNED_OBJECTS.map((o) => [o, createHash("sha256").update(readObject(o)).digest("hex")]));
  return objectHashes;
}

/** A policy's content hash: its typed document (as parsed) and nothing else. */
export function policyContentHash(document: unknown): string {
  return createHash("sha256").update(JSON.stringify(document)).digest("hex");
}

/** bpffs directory name for a policy: bpffs refuses "."; anything outside [a-z0-9-] is hex-escaped. */
export function policyPinDir(name: string): string {
  return `policies/${name.replace(/[^a-z0-9-]/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(2, "0")}`)}`;
}

export function emptyManifest(): PinManifest {
  return { format: MANIFEST_FORMAT, ward: VERSION, objects: currentObjectHashes(), written_at: new Date().toISOString(), shared: {}, policies: {} };
}

function u32(n: number): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n >>> 0, true);
  return b;
}

/** Path of the manifest map under bpfDir. */
export function manifestPath(bpfDir: string): string {
  return join(bpfDir, "manifest");
}

/**
 * Reads bpfDir/manifest; undefined when there is none. Throws PinManifestError when it is
 * damaged or was written by a ward whose objects differ from this one's (its pins cannot be
 * adopted exactly): the message says what and how to remove them.
 */
export function readManifest(bpfDir: string): PinManifest | undefined {
  const path = manifestPath(bpfDir);
  if (!existsSync(path)) return undefined;
  const removeHint = `to end that enforcement and start fresh, stop every ward agent and remove the directory (rm -r ${bpfDir})`;
  let text: string;
  let map: BpfMap | undefined;
  try {
    map = BpfMap.fromFd(getPinned(path));
    if (map.spec.keySize !== 4 || map.spec.valueSize !== CHUNK) throw new PinManifestError(`${path}: not a ward pin manifest (key ${map.spec.keySize} / value ${map.spec.valueSize} bytes)`);
    const len = map.lookup(u32(LENGTH_KEY));
    if (len === undefined) throw new PinManifestError(`${path}: the manifest has no length entry`);
    const total = new DataView(len.buffer, len.byteOffset).getUint32(0, true);
    const bytes = new Uint8Array(total);
    for (let i = 0; i * CHUNK < total; i++) {
      const c = map.lookup(u32(i));
      if (c === undefined) throw new PinManifestError(`${path}: chunk ${i} of the manifest is missing`);
      bytes.set(c.subarray(0, Math.min(CHUNK, total - i * CHUNK)), i * CHUNK);
    }
    text = new TextDecoder().decode(bytes);
  } catch (e) {
    if (e instanceof PinManifestError) throw new PinManifestError(`${e.message}; ${removeHint}`);
    throw new PinManifestError(`${path}: read: ${(e as Error).message}; ${removeHint}`, { cause: e });
  } finally {
    map?.close();
  }
  let m: PinManifest;
  try {
    m = JSON.parse(text) as PinManifest;
  } catch (e) {
    throw new PinManifestError(`${path}: the manifest is not JSON (${(e as Error).message}); ${removeHint}`);
  }
  if (typeof m !== "object" || m === null || m.format !== MANIFEST_FORMAT) {
    throw new PinManifestError(`${path}: manifest format ${JSON.stringify((m as { format?: unknown } | null)?.format)} written by ward ${JSON.stringify((m as { ward?: unknown } | null)?.ward)}; this ward (${VERSION}) reads format ${MANIFEST_FORMAT} only, so it cannot adopt those pins; ${removeHint}`);
  }
  const want = currentObjectHashes();
  const differ = PINNED_OBJECTS.filter((o) => m.objects?.[o] !== undefined && m.objects[o] !== want[o]);
  if (differ.length > 0) {
    throw new PinManifestError(`${path}: pinned by ward ${m.ward} from other BPF objects (${differ.map((o) => `${o}.o`).join(", ")} differ from this ward ${VERSION}'s), so their maps and programs may not match what this agent would adopt; ${removeHint}`);
  }
  if (typeof m.policies !== "object" || m.policies === null || typeof m.shared !== "object" || m.shared === null) {
    throw new PinManifestError(`${path}: the manifest lacks policies or shared; ${removeHint}`);
  }
  return m;
}

/** Writes the manifest atomically (new map, pinned as manifest_new, renamed over manifest). */
export function writeManifest(bpfDir: string, m: PinManifest): void {
  const bytes = new TextEncoder().encode(JSON.stringify({ ...m, ward: VERSION, objects: currentObjectHashes(), written_at: new Date().toISOString() }));
  const chunks = Math.ceil(bytes.length / CHUNK);
  if (chunks + 1 > MAX_CHUNKS) throw new PinManifestError(`pin manifest: ${bytes.length} bytes is more than the ${(MAX_CHUNKS - 1) * CHUNK} a manifest holds`);
  const map = BpfMap.create({ name: "ward_manifest", type: MapType.HASH, keySize: 4, valueSize: CHUNK, maxEntries: MAX_CHUNKS });
  const tmp = join(bpfDir, "manifest_new");
  try {
    for (let i = 0; i < chunks; i++) {
      const v = new Uint8Array(CHUNK);
      v.set(bytes.subarray(i * CHUNK, (i + 1) * CHUNK));
      map.update(u32(i), v);
    }
    const len = new Uint8Array(CHUNK);
    new DataView(len.buffer).setUint32(0, bytes.length, true);
    map.update(u32(LENGTH_KEY), len);
    unpin(tmp);
    map.pin(tmp);
    renameSync(tmp, manifestPath(bpfDir));
  } finally {
    unpin(tmp);
    map.close();
  }
}

/** Removes the manifest (the pins it described are gone or no longer kept). */
export function removeManifest(bpfDir: string): void {
  unpin(manifestPath(bpfDir));
}
