// The policy store directory (--policy-store-dir): policies added through the API, one file
// each with their enabled flag and mode, so a restarted agent applies the same set. Every
// change is atomic: the new content goes to a temp file in the same directory, is fsynced,
// renamed over the old name, and the directory is fsynced, so after a crash a file is either
// the old version or the new one. A crash between write and rename leaves only a temp file,
// which the next start removes without applying it.
//
// File: <dir>/<encoded name>.wardpolicy, JSON:
//   {"version":1,"name":..,"enabled":..,"mode":..,"source":"api","added_at":..,"text":..}
// `text` is the policy text as the API received it (it may hold several documents; the
// record's name picks one). The suffix is not *.yaml/*.json, so pointing --policy-dir at
// the same directory would not read these as policy files (the agent refuses that anyway).
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import { POLICY_MODES, type PolicyMode, type PolicyRecord } from "./policy-store.ts";

export const POLICY_FILE_SUFFIX = ".wardpolicy";
const TEMP_SUFFIX = ".tmp";

export interface PersistedPolicy {
  name: string;
  enabled: boolean;
  mode: PolicyMode;
  source: string;
  added_at: string;
  text: string;
}

export class PolicyPersistError extends Error {
  override name = "PolicyPersistError";
  readonly code = "policy_persist";
  constructor(
    readonly path: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`policy store ${path}: ${message}`, options);
  }
}

/** What the policy store calls to keep the directory in step (PolicyDir implements it). */
export interface PolicyPersistence {
  save(r: PolicyRecord): void;
  remove(name: string): void;
}

/** fsync a directory, so a rename or unlink in it survives a power loss. */
function fsyncDir(dir: string): void {
  const fd = openSync(dir, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * writeFileAtomic replaces dir/name with data: write a temp file in dir (mode 0600), fsync
 * it, rename it over dir/name, fsync dir. On failure the temp file is removed and the old
 * file is untouched. `beforeRename` runs between the fsync and the rename (tests kill the
 * process there to check what a crash leaves).
 */
export function writeFileAtomic(dir: string, name: string, data: string, opts: { beforeRename?: () => void } = {}): void {
  const final = join(dir, name);
  const tmp = join(dir, `.${name}.${process.pid}.${randomBytes(4).toString("hex")}${TEMP_SUFFIX}`);
  let fd: number | undefined;
  try {
    fd = openSync(tmp, "wx", 0o600);
    const buf = Buffer.from(data, "utf8");
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    opts.beforeRename?.();
    renameSync(tmp, final);
    fsyncDir(dir);
  } catch (err) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // never created, or the directory itself is unusable
    }
    throw new PolicyPersistError(final, `write: ${(err as Error).message}`, { cause: err });
  }
}

/** A policy name as a file name: DNS-1123 names are kept; anything else is percent-encoded. */
export function fileNameOf(policy: string): string {
  const safe = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/.test(policy) ? policy : encodeURIComponent(policy).replace(/\./g, "%2E");
  return `${safe}${POLICY_FILE_SUFFIX}`;
}

function isPersisted(v: unknown): v is PersistedPolicy {
  if (typeof v !== "object" || v === null) return false;
  const r = v as Record<string, unknown>;
  return (
    r.version === 1 &&
    typeof r.name === "string" &&
    typeof r.enabled === "boolean" &&
    typeof r.mode === "string" &&
    (POLICY_MODES as readonly string[]).includes(r.mode) &&
    typeof r.source === "string" &&
    typeof r.added_at === "string" &&
    typeof r.text === "string"
  );
}

export class PolicyDir implements PolicyPersistence {
  constructor(readonly dir: string) {}

  /**
   * open creates the directory (0700: policies may name what is protected) and removes temp
   * files a crash left between write and rename; returns their names. Throws PolicyPersistError.
   */
  open(): string[] {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new PolicyPersistError(this.dir, `create: ${(err as Error).message}`, { cause: err });
    }
    const removed: string[] = [];
    for (const n of this.#names()) {
      if (n.startsWith(".") && n.endsWith(TEMP_SUFFIX)) {
        unlinkSync(join(this.dir, n));
        removed.push(n);
      }
    }
    if (removed.length > 0) fsyncDir(this.dir);
    return removed;
  }

  #names(): string[] {
    try {
      return readdirSync(this.dir).sort();
    } catch (err) {
      throw new PolicyPersistError(this.dir, `read: ${(err as Error).message}`, { cause: err });
    }
  }

  /**
   * load reads every policy file. A file that is not a complete policy record is an error
   * naming it (it cannot come from a crash, which leaves only temp files; so it was edited or
   * damaged, and starting without it would drop enforcement silently).
   */
  load(): { file: string; policy: PersistedPolicy }[] {
    const out: { file: string; policy: PersistedPolicy }[] = [];
    for (const n of this.#names()) {
      if (!n.endsWith(POLICY_FILE_SUFFIX) || n.startsWith(".")) continue;
      const file = join(this.dir, n);
      let v: unknown;
      try {
        v = JSON.parse(readFileSync(file, "utf8"));
      } catch (err) {
        throw new PolicyPersistError(file, `not a policy record: ${(err as Error).message}`, { cause: err });
      }
      if (!isPersisted(v)) throw new PolicyPersistError(file, "not a policy record (want version 1 with name, enabled, mode, source, added_at, text)");
      if (fileNameOf(v.name) !== n) throw new PolicyPersistError(file, `holds policy "${v.name}", whose file would be ${fileNameOf(v.name)}`);
      out.push({ file, policy: v });
    }
    return out;
  }

  save(r: PolicyRecord): void {
    const rec = { version: 1, name: r.name, enabled: r.enabled, mode: r.mode, source: r.source, added_at: r.addedAt, text: r.text };
    writeFileAtomic(this.dir, fileNameOf(r.name), `${JSON.stringify(rec, null, 2)}\n`);
  }

  remove(name: string): void {
    const file = join(this.dir, fileNameOf(name));
    try {
      unlinkSync(file);
      fsyncDir(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return;
      throw new PolicyPersistError(file, `remove: ${(err as Error).message}`, { cause: err });
    }
  }
}
