/*
 * Group commit: many durable steps share one sync. A thread that needs what it wrote to be on
 * disk calls pd_commit_sync(); the first caller of a round (the leader) runs syncfs(2) once on
 * every file system patchdrop writes to, while the others wait; each caller returns once a round
 * that started after its call has finished, so everything it wrote before the call is durable,
 * exactly as after its own fsync. Callers that arrive during a round are served together by the
 * next one (as PostgreSQL's WAL flush and Kafka's log flush group their writers).
 *
 * The trade-off: syncfs also writes back what others wrote to the same file system (a partner's
 * upload under way). That costs disk time, never correctness; `[state] group_commit = no`
 * goes back to one fsync per file and folder.
 */
#ifndef PD_COMMIT_H
#define PD_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pd_commit;

struct pd_commit_opts {
    const char *const *dirs; /* folders patchdrop writes in: one sync per file system among them */
    size_t ndirs;
    /* The sync of one file system (tests count and hold rounds); NULL: syncfs(2). */
    int (*sync)(int fd, void *arg);
    void *arg;
};

/*
 * Opens one descriptor per file system of O.dirs (a folder that cannot be opened is left out:
 * pd_commit_covers says no for it). 0 or PD_ENOMEM, -EMFILE beyond 16 file systems.
 */
int pd_commit_create(const struct pd_commit_opts *o, struct pd_commit **out);
void pd_commit_destroy(struct pd_commit **c);

/* Whether a sync of C makes FD's writes durable (FD's file system is one of C's). */
bool pd_commit_covers(struct pd_commit *c, int fd);

/*
 * Blocks until a round that started after this call has synced every file system: 0, or the
 * -errno of a failed round (the caller's writes may not be durable: treat as a failed fsync).
 * Called from worker threads, never from the event loop.
 */
int pd_commit_sync(struct pd_commit *c);

struct pd_commit_stats {
    uint64_t waits;  /* durable steps that asked */
    uint64_t rounds; /* syncs run for them */
};
struct pd_commit_stats pd_commit_stats(struct pd_commit *c);

#endif
