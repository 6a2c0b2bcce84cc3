// containerSelector: a LabelSelector over a container's own labels. Tetragon's keys are
// `name` (the container name) and `repo` (the image without its tag or digest); ward adds
// `id` (the container id, without a "containerd://"-style prefix) and the container's
// annotations under their own keys (e.g. io.kubernetes.container.name, as an OCI hook sees
// them). The three reserved keys win over an annotation of the same name.
import { matchesLabels, type LabelSelector } from "./label-selector.ts";

export interface ContainerInfo {
  name?: string;
  id?: string;
  /** Image reference, e.g. "docker.io/library/nginx:1.27" or "...@sha256:...". */
  image?: string;
  annotations?: Readonly<Record<string, string>>;
}

/** "docker.io/library/nginx:1.27@sha256:..." -> "docker.io/library/nginx"; a registry port stays. */
export function imageRepo(image: string): string {
  let s = image;
  const at = s.indexOf("@");
  if (at >= 0) s = s.slice(0, at);
  const slash = s.lastIndexOf("/");
  const colon = s.lastIndexOf(":");
  if (colon > slash) s = s.slice(0, colon);
  return s;
}

/** "containerd://<id>" -> "<id>" (the form containerStatuses[].containerID uses). */
export function bareContainerId(id: string): string {
  const i = id.indexOf("://");
  return i >= 0 ? id.slice(i + 3) : id;
}

/** The label set a containerSelector is matched against. */
export function containerLabels(c: ContainerInfo): Record<string, string> {
  const out: Record<string, string> = { ...(c.annotations ?? {}) };
  if (c.name !== undefined) out.name = c.name;
  else delete out.name;
  if (c.image !== undefined) out.repo = imageRepo(c.image);
  else delete out.repo;
  if (c.id !== undefined) out.id = bareContainerId(c.id);
  else delete out.id;
  return out;
}

/** matchesContainer: does the container satisfy the containerSelector? Pure. */
export function matchesContainer(sel: LabelSelector, c: ContainerInfo): boolean {
  return matchesLabels(sel, containerLabels(c));
}
