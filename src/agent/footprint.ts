// What the agent lets go of once it is up. Start-up parses the kernel's BTF (vmlinux, about
// 10 MB of heap once indexed) for CO-RE and the feature probes, and leaves garbage from the
// /proc scan and module loading; none of it is needed while the agent runs. A policy added
// later that needs kernel BTF parses it again (about 50 ms).
import { releaseKernelBtf } from "../bpf/btf.ts";

export function releaseStartupMemory(): void {
  releaseKernelBtf();
  // One full collection (a few ms on this heap) so the released pages go back now rather
  // than whenever allocation pressure next triggers one; idle agents have none.
  Bun.gc(true);
}
