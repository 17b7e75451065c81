/*
 * The drop-folder daemon behind `patchdrop run`: watches every [watch:NAME] folder, claims each
 * ready file into its own work/ (outside the drop folder, see pd_zone.h) by rename, delivers it chunk by chunk through the
 * Patchworks client, records progress durably after every acknowledged chunk, and finishes it
 * into the archive (with a receipt) or the failed folder (with the reason).
 *
 * Delivery promise: at least once. A file leaves work/ only after every chunk was acknowledged;
 * a crash repeats at most the chunk that was in flight. Work files are held with flock() while
 * a daemon delivers them, so several daemons can share one folder: rename() decides who claims
 * a file and the lock decides who resumes an orphan.
 */
#ifndef PD_DAEMON_H
#define PD_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <uv.h>

struct pd_clock;
struct pd_config;
struct pd_daemon;
struct pd_metrics;

struct pd_daemon_summary {
    uint64_t delivered;  /* files archived with a receipt */
    uint64_t duplicates; /* files archived as duplicates, not sent */
    uint64_t rejected;   /* files moved to the failed folder */
    uint64_t chunks;     /* chunks acknowledged */
    uint64_t bytes;      /* request body bytes acknowledged */
    uint64_t stuck;      /* files that could not be moved out of work/ (retried later) */
    uint64_t disabled;   /* watches whose folders could not be set up (retried later) */
    uint64_t skipped;    /* folders whose names were too long to reach (once per scan) */
    /* flow runs followed to their end (follow = yes) */
    uint64_t runs_succeeded, runs_failed /* failed, stopped or partial */, runs_unknown;
};

struct pd_daemon_opts {
    const struct pd_config *cfg; /* must outlive the daemon */
    bool once;                   /* stop by itself once everything present is handled */
    FILE *report;                /* a line per chunk and per file, or NULL */
    /* Called when the daemon stopped by itself (--once done, or a fatal configuration error:
     * FATAL is then non-NULL and says why, e.g. credentials refused). */
    void (*on_stopped)(void *arg, const char *fatal);
    void *arg;
    struct pd_metrics *metrics; /* counts files, chunks and requests; NULL: none */
    /* Every time the daemon reads (settle, batches, parking, receipts), passed on to its
     * client and its archive sweeps; must outlive the daemon. NULL: the system clock. The
     * loop's timers still fire on real time: a test's fake clock decides what is due. */
    const struct pd_clock *clock;
    /* --once: leave the runs started to the service (their records stay) instead of waiting
     * for their outcomes. */
    bool no_follow;
};

/*
 * Sets up (creating where needed) and checks every folder CFG needs, as a daemon would at
 * start: the state dir, and each watch's drop folder and own folders. A reload is applied only
 * when this passes; otherwise *WHY says what is wrong and the running configuration stays.
 */
int pd_daemon_preflight(const struct pd_config *cfg, char **why);

int pd_daemon_create(uv_loop_t *loop, const struct pd_daemon_opts *opts, struct pd_daemon **out);
int pd_daemon_start(struct pd_daemon *d);

/*
 * Stops claiming new files; requests in flight may finish for GRACE_MS, then are canceled.
 * Progress is saved; on_stopped runs once every job has ended.
 */
void pd_daemon_stop(struct pd_daemon *d, uint64_t grace_ms);

struct pd_daemon_summary pd_daemon_summary(const struct pd_daemon *d);

/* Hands the metrics what waits now (files per watch, requests); the loop calls it each second. */
void pd_daemon_sample(const struct pd_daemon *d, struct pd_metrics *m);

/*
 * The daemon's state now as one JSON document (README, "Status"), for WATCH only when not NULL;
 * malloc'd, NULL when out of memory. Loop thread only. The same document answers `status` on
 * the control socket `<state dir>/patchdrop.sock` (PD_DAEMON_SOCKET) while the daemon runs.
 */
char *pd_daemon_status_json(const struct pd_daemon *d, const char *watch);
#define PD_DAEMON_SOCKET "patchdrop.sock"

/* Frees everything once every handle closed; then ON_CLOSED(ARG). NULLs *D. */
void pd_daemon_close(struct pd_daemon **d, void (*on_closed)(void *arg), void *arg);

#endif
