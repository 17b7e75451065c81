/*
 * Noticing files in one drop folder: a full scan at start and every `rescan`, sped up by
 * inotify (IN_CLOSE_WRITE, IN_MOVED_TO, IN_CREATE, IN_Q_OVERFLOW) read through a uv_poll_t.
 * libuv's uv_fs_event is not used because on Linux it drops the queue-overflow event and never
 * reports close-after-write. Events are hints only: a rescan is the truth, an overflow or a
 * watch error triggers one, and `poll` mode uses rescans alone (NFS/SMB, where inotify sees
 * nothing). With `recursive`, subfolders (new ones included) are scanned and watched too.
 * The folder itself may vanish and come back; the watcher keeps trying.
 */
#ifndef PD_WATCH_H
#define PD_WATCH_H

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

struct pd_watcher;

enum pd_watch_event {
    PD_WATCH_SEEN,      /* NAME (relative to the root) exists or changed: look at it */
    PD_WATCH_SCAN_DONE, /* a full scan ended: every existing name was reported before it */
    PD_WATCH_ERROR,     /* the folder cannot be read; NAME holds the reason */
};

typedef void (*pd_watch_fn)(void *arg, enum pd_watch_event ev, const char *name);

struct pd_watch_opts {
    const char *root;
    uint64_t rescan_ms;
    bool poll;
    bool recursive;
    const char *skip; /* a folder name never entered, e.g. ".patchdrop" */
};

int pd_watcher_create(uv_loop_t *loop, const struct pd_watch_opts *opts, pd_watch_fn fn,
                      void *arg, struct pd_watcher **out);
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
