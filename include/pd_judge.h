/*
 * One look at a name in a drop folder, and what patchdrop would make of it now: take it, or
 * skip it and why (excluded by the globs, a done marker missing, still settling, a symlink or
 * other non-regular file, a file with other names). The rules are the daemon's (pd_ready.h,
 * the candidate checks of src/daemon/intake.c, the claim's hard-link refusal in pd_zone.h);
 * the difference is time: the daemon measures settle on its own clock over several looks,
 * one look can only compare the file's mtime with the wall clock. Reads nothing but metadata,
 * changes nothing.
 */
#ifndef PD_JUDGE_H
#define PD_JUDGE_H

#include "pd_ready.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

enum pd_judgement {
    PD_JUDGE_TAKE,           /* ready: it would be claimed */
    PD_JUDGE_EXCLUDED,       /* its name is not included, excluded, or a done marker */
    PD_JUDGE_SETTLING,       /* changed too recently (settle, min_age) */
    PD_JUDGE_MARKER_MISSING, /* done_marker configured and absent */
    PD_JUDGE_NOT_REGULAR,    /* a symlink, fifo, device, socket or folder */
    PD_JUDGE_HARD_LINK,      /* other names too, allow_hard_links = no */
    PD_JUDGE_GONE,           /* vanished, or reached only through a symlink */
    PD_JUDGE_WRITING,        /* some process holds it open for writing (pd_judge_writing) */
};

struct pd_judge_opts {
    const struct pd_ready_rules *rules;
    bool allow_hard_links;
    uint64_t now_wall_ms; /* wall clock */
};

/*
 * Judges REL (a relative path) beneath the drop folder ROOTFD, never through a symlink. *ST
 * gets its lstat (when it has one), WHY words for a skip (empty for TAKE). Returns the verdict.
 */
enum pd_judgement pd_judge(int rootfd, const char *rel, const struct pd_judge_opts *o,
                           struct stat *st, char *why, size_t whylen);

/*
 * Whether some process holds FD's file (opened read-only, lstat ST) open for writing, as the
 * claim's read lease would find (pd_zone.h, PD_ZONE_LEASE): the lease is taken and given back
 * at once. False where no lease can be taken (NFS, another user's file without CAP_LEASE).
 */
bool pd_judge_writing(int fd, const struct stat *st);

/* The verdict's short word: "take", "excluded", "settling", ... */
const char *pd_judge_word(enum pd_judgement j);

/* What a file of mode M is, in words: "a symbolic link", "a fifo" ... */
const char *pd_judge_kind(mode_t m);

#endif
