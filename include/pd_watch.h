/*
 * Noticing files in one drop folder: a full scan at start and every `rescan`, sped up by
 * inotify (IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_Q_OVERFLOW) read through a uv_poll_t.
 * libuv's uv_fs_event is not used because on Linux it drops the queue-overflow event and never
 * reports close-after-write. Events are hints only: a rescan is the truth, an overflow or a
 * watch error triggers one, and `poll` mode uses rescans alone (NFS/SMB, where inotify sees
 * nothing). With `recursive`, subfolders (new ones included) are scanned and watched too.
 * The folder itself may vanish and come back; the watcher keeps trying.
 *
 * Partners may swap any entry beneath the root for a symlink at any moment: subfolders are
 * opened relative to their parent's descriptor with O_NOFOLLOW, so a symlink is never entered
 * (it is reported by name, like a file). Names are still only hints: whoever opens one must
 * resolve it beneath the root without following symlinks.
 */
#ifndef PD_WATCH_H
#define PD_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct pd_watcher;

/* New events are added at the end; a callback ignores the ones it does not know. */
enum pd_watch_event {
    PD_WATCH_SEEN,      /* NAME (relative to the root) exists or changed: look at it */
    PD_WATCH_SCAN_DONE, /* a full scan ended: every existing name was reported before it */
    PD_WATCH_ERROR,     /* the folder cannot be read; NAME holds the reason */
    /*
     * Only with `report_skipped`. Some names in one folder were not reported because their path
     * from the root would be PATH_MAX bytes or longer (a deep tree): those files are never
     * delivered. NAME is a message naming the folder (relative to the root) and the count. Sent
     * at most once per folder per scan, before that scan's PD_WATCH_SCAN_DONE, so a caller can
     * log it once and count it; it says nothing about the other names of the folder.
     */
    PD_WATCH_SKIPPED,
};

typedef void (*pd_watch_fn)(void *arg, enum pd_watch_event ev, const char *name);

struct pd_watch_opts {
    const char *root;
    uint64_t rescan_ms;
    bool poll;
    bool recursive;
    const char *skip; /* a folder name never entered, e.g. ".patchdrop" */
    /* Send PD_WATCH_SKIPPED. Off by default so that a callback written before that event
     * existed, which takes every other event for PD_WATCH_SEEN, is not handed a message as
     * a file name; such a caller gets nothing for those names, as before. */
    bool report_skipped;
};

int pd_watcher_create(uv_loop_t *loop, const struct pd_watch_opts *opts, pd_watch_fn fn, void *arg,
                      struct pd_watcher **out);
/* Starts watching; the first full scan runs on the next loop iteration. */
int pd_watcher_start(struct pd_watcher *w);
/* Asks for a full scan soon (coalesced). */
void pd_watcher_rescan(struct pd_watcher *w);
/* Counters for tests and metrics. */
uint64_t pd_watcher_scans(const struct pd_watcher *w);
uint64_t pd_watcher_overflows(const struct pd_watcher *w);
/* Stops and frees once every handle is closed; then ON_CLOSED(ARG). NULLs *W. */
void pd_watcher_close(struct pd_watcher **w, void (*on_closed)(void *arg), void *arg);

#endif
