// Preloaded by bun test (bunfig.toml): sets up the kernel filesystems the suite needs
// (bpffs, tracefs, securityfs). Idempotent; only as root.
import { setDefaultTimeout } from "bun:test";
import { prepareHost } from "./lib/host.ts";

// bunfig.toml's [test] timeout is not applied by this Bun (a 6 s test failed at 5 s), so the
// default is set here too (it holds for the first file of a run only: kernelTest passes its
// bound explicitly): kernel tests verify large BPF programs (the generic sensor takes
// 10-25 s on this machine kind), and a machine's speed must not decide a test's outcome.
setDefaultTimeout(60_000);

prepareHost();
