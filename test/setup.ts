// Preloaded by bun test (bunfig.toml): sets up the kernel filesystems the suite needs
// (bpffs, tracefs, securityfs). Idempotent; only as root.
import { prepareHost } from "./lib/host.ts";

prepareHost();
