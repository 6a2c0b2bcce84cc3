/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * A deliberately wrong kernel header for the CO-RE test: struct task_struct has only
 * tgid, real_parent and pid, in an order and at offsets no real kernel uses. The CO-RE
 * relocations carry the field names, so the loader must move the reads to the running
 * kernel's offsets; compiled offsets (0, 8 and 16) would read garbage.
 */
#ifndef WARD_VMLINUX_MOVED_H
#define WARD_VMLINUX_MOVED_H

typedef unsigned char __u8;
typedef unsigned short __u16;
typedef unsigned int __u32;
typedef unsigned long long __u64;
typedef int __s32;
typedef int pid_t;

struct task_struct {
	pid_t tgid;
	struct task_struct *real_parent;
	pid_t pid;
} __attribute__((preserve_access_index));

#endif
