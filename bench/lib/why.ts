// Hand-written explanations bench/run.ts puts under a missed target, next to the profile
// measured in the same run. They say what the mechanism costs and why, from the design and
// earlier measurements (design.md, Performance doctrine; issue notes); the numbers in the
// report come from the run, not from here.
import type { Metric } from "./results.ts";

interface Explain {
  why: string;
  close?: string;
}
/** The mechanisms a bench section reported (BenchSection.mechanisms). */
type Mechanisms = Record<string, string>;

/**
 * fanotify holds the secure rule in this run (the agent's /v1/status names the mechanism):
 * no BPF program runs for other files, so the texts about the guard's syscall-exit check do
 * not apply.
 */
const viaFanotify = (mech: Mechanisms): boolean => Object.values(mech).some((v) => v.startsWith("fanotify"));

const GUARD_OPEN_WHY =
  "the file guard's open check runs at the exit of the open syscalls. Where the kernel runs i386 processes (IA32 emulation on, probed by src/sensors/compat-abi.ts) the per-syscall syscalls/sys_exit_open* tracepoints never fire for compat syscalls, so the guard keeps tp_btf/sys_exit, which runs at the exit of every syscall of every process (the close of the loop too) and only then looks at the syscall number. The profile splits the measured difference into the guard program's own run time (at the exit of the open and of the close) and the cost of reaching it; design.md measured an empty tp_btf/sys_exit program alone at +7-13% on this loop, so even a check that returned at once would miss the target. Where IA32 emulation is off the guard moves to the per-syscall tracepoints, which skip close and getppid but cost about the same per open: attaching anything to a syscall tracepoint (raw sys_enter/sys_exit or a per-syscall one) makes the kernel mark every thread for the syscall tracepoint slow path (syscall_regfunc sets SYSCALL_WORK_SYSCALL_TRACEPOINT), so every syscall of every process pays that path; bpftrace's sys_enter_openat takes the same path (compare its getppid control).";

export const WHY: Record<string, Explain | ((mech: Mechanisms) => Explain)> = {
  open_unrelated_secure: (mech) =>
    viaFanotify(mech)
      ? {
          why:
            "fanotify holds the talk's rule here (see Mechanisms): only the protected file's inode carries a mark, no BPF program runs for other files (the profile shows no BPF run time per iteration besides the process sensor's, which runs on exec/fork/exit only), and the decision thread is asleep. What is left is the kernel's fsnotify check on each open, which walks the marks of the opened inode's superblock once any inode on it is marked (the unrelated file sits on the same filesystem as the protected one); the median is within this run's spread of the target and of the process-sensor-only row.",
          close: "more rounds on a quiet machine to tell the remaining cost from noise; if it is real, a perf profile of fsnotify_open on this kernel, and the protected files on a filesystem of their own.",
        }
      : {
          why: GUARD_OPEN_WHY,
          close:
            "a hook that runs only on opens of protected files: BPF LSM file_open (used where `bpf` is in the active LSMs, e.g. the Debian 6.1 VM), or fanotify marks on the protected inodes (zero cost for other files) with the syscall-exit check kept only as a backstop; on this kernel, booting with ia32_emulation=0 lets the guard use the open-only tracepoints.",
        },
  open_unrelated_ward_over_bpftrace: (mech) =>
    viaFanotify(mech)
      ? { why: "bpftrace's sys_enter_openat filter puts every thread on the syscall tracepoint slow path and runs a string compare on every openat; fanotify's inode mark costs other files next to nothing." }
      : {
          why:
            "bpftrace's filter runs on sys_enter_openat only (one tracepoint, no close), while ward's guard here sits on tp_btf/sys_exit (every syscall, see the open/close row) because IA32 emulation is on; bpftrace also misses what the guard covers (openat2, open_by_handle_at, io_uring, compat syscalls, relative paths and links).",
          close: "the same as for the open/close row: an open-only hook (BPF LSM or fanotify), or the per-syscall tracepoints where IA32 emulation is off.",
        },
  open_protected_allowed: (mech) =>
    viaFanotify(mech)
      ? { why: "every open of the protected file by the allowed binary waits in the kernel for the agent's fanotify decision thread: read the event, stat /proc/PID/exe, check the pidfd, answer FAN_ALLOW; a few microseconds of userspace per open." }
      : { why: "every open of the protected file runs the full decision: inode lookup, then the binary check against the allowed list." },
  getppid_default: {
    why:
      "the default set is the process sensor (fork, exec and exit programs); none runs on getppid, so a ratio above 1 here is noise from other work on the machine: compare its min-max with the target.",
    close: "a quiet machine and more rounds.",
  },
  forkexec_default: {
    why:
      "the process sensor's exec, fork and exit programs run in the child and record the binary (resolved through mounts), argv, cwd, credentials, capabilities, namespaces and cgroup; the profile gives their run time per fork+exec. fork+exec of /bin/true is itself only a few hundred microseconds here, so tens of microseconds of BPF are a visible share.",
    close: "move the heavier reads (argv, cwd, namespaces) to userspace on demand or cache per exec_id, and skip the path walk when the binary's inode was seen before.",
  },
  build_wall: (mech) =>
    viaFanotify(mech)
      ? {
          why: "fanotify holds the secure rule, so the compiler's opens pay no BPF; every exec, fork and exit pays the process sensor (the profile gives its run time per compile), and wall time of a two-job build on this shared 2-vCPU VM swings by about 15% run to run (design.md): compare the min-max and the CPU-time row.",
          close: "a cheaper exec path in the process sensor (see the fork+exec row), and more rounds on a quiet machine.",
        }
      : {
          why:
            "a compile does many syscalls (opens of headers, mmap, read, stat); with the guard on tp_btf/sys_exit (IA32 emulation on) every one of them pays the program entry, and every exec and exit pays the process sensor. Wall time on this shared 2-vCPU VM also swings by about 15% run to run (design.md), so compare the min-max.",
          close: "as for the open/close row (an open-only hook), plus a cheaper exec path in the process sensor.",
        },
  build_cpu: (mech) =>
    viaFanotify(mech)
      ? { why: "the process sensor's exec, fork and exit work, charged to the compiler processes (fanotify costs their opens nothing).", close: "a cheaper exec path in the process sensor." }
      : {
          why: "as for the wall time: the guard's per-syscall entry cost and the process sensor's exec and exit work, charged to the compiler processes.",
          close: "as for the open/close row (an open-only hook), plus a cheaper exec path in the process sensor.",
        },
  pipeline_events_per_s: {
    why:
      "the pipeline is TypeScript on one core: each record is decoded through BTF-derived offsets (resolved once), enriched from the process cache (per-pid image lists; clone images are built only when asked for) and written as a JSON line whose process block is written once per image (exec_id written byte by byte, times formatted from a cached second on Numbers). What is left in the CPU profile is that per-image block, the per-event envelope, the cache's insert and eviction bookkeeping and the decoder's objects; on a loaded shared machine the same work takes up to twice the CPU time (the figure is per CPU second, but caches and the core's other thread are shared).",
    close: "a quiet machine for the measurement, and then fewer objects per record (the cache's Entry and the image in one object, the block written into a reused byte buffer).",
  },
  idle_rss: {
    why:
      "the single binary maps the Bun runtime plus the embedded BPF objects, engine WASM and bundled modules; file-backed pages the agent touched count in RSS (RssFile in the profile), on top of the JS heap, the WASM engine's memory and the ring-buffer mappings (RssAnon).",
    close: "load the engine WASM and the policy sensors' objects only when a policy needs them, drop the parsed kernel BTF after start, and run the heap with Bun's --smol (smaller JSC heap).",
  },
  idle_cpu: {
    why: "the agent's housekeeping timers (process cache expiry every 2 s) and ring-buffer waits; at 10 ms tick resolution over short windows a single tick is 0.5% of a core.",
    close: "longer idle windows for a finer figure, and fewer wake-ups when nothing arrives.",
  },
  rss_growth_1m_over_100k: {
    why: "memory that keeps growing with events points at a queue or cache without a bound, or at pages kept after a burst. Found on eb0903b: the fanotify decision thread's Post matches queued without a bound while the main thread was behind (129,000 matches, RSS 360 MiB in the storm, 227 MiB settled: ratio 2.1; now at most 8,192, the rest dropped and counted as fanotify_queue_full); no collection after the storm when other work on the host kept every interval above 1,000 events (3 of 6 runs); the storm's heap high-water mark growing with its length, live objects then pinning more blocks (16-20% more RSS after 1M than after 100k with collections after both); and the decision thread's own heap, which no main-thread collection reaches (16 MiB kept after 135,000 decisions).",
    close: "fewer allocations per event, in the decision thread and the main thread's encoding, so the high-water marks, and the pages kept after them, are lower; the profile's reclaims and lost events say which rule ran and what was dropped.",
  },
  js_heap_growth_1m_over_100k: {
    why: "the agent's JS heap growing between the marks is state the events left behind: a cache, queue or per-policy table without a bound.",
    close: "a heap snapshot (bun:jsc heapStats objectTypeCounts) at both marks to name the type that grew, then a bound on the structure holding it.",
  },
  policy_add_1: {
    why: "adding a policy validates and compiles it, then loads and attaches the guard's BPF programs (verifier time dominates) before the API answers.",
    close: "reuse one guard instance across policies (update its maps instead of loading programs per policy).",
  },
  exec_storm_lost: {
    why: "exec and exit records are lost when the ring buffer fills faster than the agent drains it.",
    close: "a larger ring buffer for the process sensor, or draining on every wake-up instead of in batches.",
  },
  open_storm_accounted: {
    why: "some opens produced neither an event nor a counted loss: a loss path that is not counted.",
    close: "find the uncounted path (rate limit drops, ring buffer reserve failures, decode errors) and count it.",
  },
};

/**
 * Notes for metrics without a target that a reader should not miss; bench/run.ts prints
 * them with the measured value under "Findings". Each reads the measured metric, so the
 * text never claims what this run did not show.
 */
export const FINDINGS: Record<string, (m: Metric, mech: Mechanisms) => string> = {
  policy_open_cost_100: (m, mech) =>
    m.median > 1.1 && viaFanotify(mech)
      ? "each file policy held by fanotify has its own group and decision thread; no BPF program runs for other files, so what grows with the count is the kernel's fsnotify walk over the marks of the superblock the files share."
      : m.median > 1.1
      ? "each file policy attaches its own guard programs (the policy bench lists how many programs the agent holds), so every loaded policy adds another program run at each syscall exit the guard hooks (every syscall of every process while it sits on tp_btf/sys_exit); one guard instance shared by all policies (a rule map keyed by inode, updated per policy) would keep the cost flat."
      : "the loaded policies cost unrelated opens little in this run.",
  getppid_secure: (m) =>
    m.median > 1.02
      ? "the guard at every syscall exit also taxes syscalls no rule can match; getppid is the cheapest syscall, so it shows the per-syscall entry cost at its largest."
      : "no measurable cost on a syscall no rule matches in this run.",
  getppid_bpftrace: (m) =>
    m.median > 1.02
      ? "bpftrace only attaches to sys_enter_openat, yet getppid pays too: any syscall tracepoint puts every thread on the syscall tracepoint slow path."
      : "no measurable cost on getppid in this run.",
  open_protected_decisions: (_m, mech) =>
    viaFanotify(mech)
      ? "every open of the protected file by the allowed binary is decided by the agent's fanotify decision thread before the open completes (the issue's floor for this is 50,000 decisions/s on one core)."
      : "every open of the protected file by the allowed binary is decided in the kernel (inode match, then the binary check), without userspace.",
};
