/* SPDX-License-Identifier: Apache-2.0 */
/*
 * scope.h: the workload scope of a policy, checked first by every ward hook (generic.c,
 * file_guard.c, sock_addr.c; src/sensors/fanotify.ts reads the same maps from userspace).
 *
 * A scoped policy (a TracingPolicyNamespaced's namespace, spec.podSelector,
 * spec.containerSelector) gets a scope id > 0; its hook slots / rules carry it, 0 means
 * unscoped (every process). The scope's members are cgroup v2 ids (the kernfs id
 * bpf_get_current_cgroup_id returns: the cgroup directory's inode), one key per
 * (scope, cgroup) in ward_scope_members. src/workloads/scope-maps.ts writes both maps; the
 * agent shares one pair between all objects (replaceMaps), so a workload that starts or
 * stops changes map entries only: no program is reloaded or re-attached.
 *
 * Descendants count: a process in a sub-cgroup of a member (a container's own init.scope,
 * a nested cgroup a pod's runtime made, a process that moved itself deeper) is in scope.
 * Checking only the current cgroup would let any process with write access to its own
 * cgroup escape the policy with one mkdir. The check asks, per level where the scope has
 * members, for the current task's ancestor at that level
 * (bpf_get_current_ancestor_cgroup_id: an O(1) array read in the kernel) and looks that up.
 * ward_scope_levels[scope] is the bit mask of those levels (bit L: members at depth L below
 * the root), so a scope whose containers all sit at one depth costs one array lookup plus
 * one hash lookup, whatever the depth, and a process whose cgroup is shallower than the
 * members' level gets id 0 and no lookup. Members deeper than WARD_SCOPE_LEVELS - 1 are
 * refused by userspace (with the reason), never silently ignored.
 *
 * A scope with no members matches nothing: a scoped policy with no workload yet enforces
 * nothing (explain and status say so).
 */
#ifndef WARD_SCOPE_H
#define WARD_SCOPE_H

#define WARD_SCOPE_MAX 256        /* scope ids 1..255 (0 = unscoped) */
#define WARD_SCOPE_MEMBERS 16384  /* (scope, cgroup) keys, every scope together */
#define WARD_SCOPE_LEVELS 32      /* cgroup depths checked: bits of ward_scope_levels */

struct ward_scope_key {
	__u32 scope;
	__u32 pad;
	__u64 cgroup; /* cgroup v2 id of a member */
};

/*
 * The two maps, defined here so every object's definition is identical (userspace
 * replaces them with the agent's shared pair, which must match exactly). Include this
 * header once per object, after ward_bpf.h.
 */
struct {
	__uint(type, WARD_MAP_HASH);
	__uint(max_entries, WARD_SCOPE_MEMBERS);
	__type(key, struct ward_scope_key);
	__type(value, __u32);
} ward_scope_members SEC(".maps");

struct {
	__uint(type, WARD_MAP_ARRAY);
	__uint(max_entries, WARD_SCOPE_MAX);
	__type(key, __u32);
	__type(value, __u32); /* bit L: the scope has members at cgroup depth L */
} ward_scope_levels SEC(".maps");

/*
 * ward_in_scope: 1 when the current task is in scope `scope` (always for 0).
 *
 * A global (non-static, noinline) function: the verifier checks it once, on its own,
 * instead of once per call site and caller state. Inlined (unrolled, or with bpf_loop) it
 * made generic.o's verification ~45% slower, or pushed gen_sys_enter past the 1M
 * instruction limit. The cost per call is one bpf-to-bpf call.
 */
__noinline int ward_in_scope(__u32 scope)
{
	struct ward_scope_key k = {};
	__u32 *levels;
	__u32 mask;

	if (scope == 0)
		return 1;
	levels = bpf_map_lookup_elem(&ward_scope_levels, &scope);
	if (!levels)
		return 0;
	mask = *levels;
	k.scope = scope;
	for (int l = 0; l < WARD_SCOPE_LEVELS; l++) {
		/* past the deepest level with members: done */
		if (!(mask >> l))
			break;
		if (!(mask & (1u << l)))
			continue;
		k.cgroup = bpf_get_current_ancestor_cgroup_id(l);
		if (k.cgroup && bpf_map_lookup_elem(&ward_scope_members, &k))
			return 1;
	}
	return 0;
}

#endif /* WARD_SCOPE_H */
