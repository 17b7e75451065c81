/*
 * `patchdrop retry`: a failed file goes back into its drop folder to be taken again as new.
 * The failed folder is patchdrop's own; the drop folder is not: the way back resolves beneath
 * the drop folder's descriptor, never through a symlink, and never replaces a name there. The
 * error file is kept in <failed_dir>/history/ (named as failed copies are, so a later delivery
 * of the file links it: pd_retention_supersede), with "retried_at" and "retried_as" added and
 * its time (the failure's) kept. Nothing here logs; each function returns 0 or a negative code
 * and, where a person must act, words in WHY.
 */
#ifndef PD_REQUEUE_H
#define PD_REQUEUE_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#define PD_REQUEUE_HISTORY "history" /* the folder inside failed_dir */

struct pd_requeue_item {
    char name[NAME_MAX + 1]; /* the file's name in the failed folder */
    char rel[PATH_MAX];      /* where it goes back: its path in the drop folder */
    bool has_error;          /* NAME.error.json exists */
    uint64_t failed_ms;      /* when it failed: the error file's mtime (else the file's ctime) */
    uint64_t size;
    char history[NAME_MAX + 32]; /* after pd_requeue_move: the error file's name in history/ */
};

/*
 * Looks at NAME in the failed folder FAILEDFD: a regular file, and where it came from (the
 * error file's "file", exact bytes from "file_hex"; without an error file, its own name at the
 * top of the drop folder). Returns 0, -ENOENT when there is no such file (or NAME is an error
 * file, a folder, a symlink), or PD_EPARSE when its error file names no usable path.
 */
int pd_requeue_plan(int failedfd, const char *name, struct pd_requeue_item *it, char *why,
                    size_t whylen);

/*
 * Every failed file in FAILEDFD that failed at or after SINCE_MS (0: all), by name. *OUT
 * (free it) gets *N items.
 */
int pd_requeue_list(int failedfd, uint64_t since_ms, struct pd_requeue_item **out, size_t *n);

/*
 * Whether IT's place in the drop folder ROOTFD is free: 0, -EEXIST when a name is there,
 * -ENOENT when its folder is gone, -ELOOP or -ENOTDIR when a symlink is on the way.
 */
int pd_requeue_check(int rootfd, const struct pd_requeue_item *it);

/*
 * Moves IT back: the file to IT->rel beneath ROOTFD (never replacing; -EEXIST and nothing
 * moved when the name is taken), then its error file to history/ (IT->history), marked with
 * the time NOW_MS (wall clock). A failure after the file moved (the error file could not be
 * kept) returns -EIO with words: the file is back either way.
 */
int pd_requeue_move(int failedfd, int rootfd, struct pd_requeue_item *it, uint64_t now_ms,
                    char *why, size_t whylen);

#endif
