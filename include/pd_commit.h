/*
 * Group commit: many durable steps share one sync. A thread that needs a file or folder it
 * wrote to be on disk calls pd_commit_sync(FD) instead of fsync(FD); the first caller of a round
 * (the leader) runs syncfs(2) once for each file system the round's descriptors are on (usually
 * one), while the others wait. Each caller returns once a round that started after its call
 * has synced: everything written before the call is on disk, the promise of its own fsync.
 * Callers that arrive during a round are served together by the next one, as PostgreSQL's WAL
 * flush and Kafka's log flush group their writers.
 *
 * The trade-off: syncfs also writes back what others wrote to the same file system (a
 * partner's upload under way); `[state] group_commit = no` goes back to one fsync per step.
 */
#ifndef PD_COMMIT_H
#define PD_COMMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pd_commit;

struct pd_commit_opts {
    /* The sync of the file system of one descriptor (tests count and hold rounds); NULL:
     * syncfs(2). */
    int (*sync)(int fd, void *arg);
    void *arg;
};

/* 0 or PD_ENOMEM. */
int pd_commit_create(const struct pd_commit_opts *o, struct pd_commit **out);
void pd_commit_destroy(struct pd_commit **c);

/*
 * Blocks until a round that started after this call has synced FD's file system (FD kept open
 * meanwhile): 0, or that sync's -errno (what was written may not be on disk: as a failed
 * fsync). Called from worker threads, never from the event loop.
 */
int pd_commit_sync(struct pd_commit *c, int fd);

struct pd_commit_stats {
    uint64_t waits;  /* durable steps that asked */
    uint64_t rounds; /* rounds run for them */
    uint64_t syncs;  /* syncfs calls in them (one per file system per round) */
};
struct pd_commit_stats pd_commit_stats(struct pd_commit *c);

#endif
