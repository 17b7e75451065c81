/*
 * The account-wide pace of requests to Patchworks (documented limit: 240 per minute per
 * account) and the number of requests in flight at once. One limiter is shared by every folder
 * and every command of a process.
 *
 * Two rules hold together: a token bucket (burst of max(1, rate/20), refilled at rate per
 * minute) keeps requests evenly spread, and a sliding window: a request may start only while
 * fewer than `rate` requests are in flight or were answered within the last 60 seconds. A
 * request reaches the server somewhere between its start and its answer, so however the server
 * counts its minute, and however long each request took to get there, no minute of the
 * server's ever holds more than `rate` of them (counting starts instead lets a slow request
 * land in the next minute beside the ones started after it: a 429). A 429 or 503 pauses every
 * request until the pause ends.
 *
 * Polls (GETs following flow runs) share the same pace with the other requests (deliveries),
 * and pd_limiter_next() chooses between them: a poll goes only when no other request waits,
 * and polls never take more than poll_share percent of the rate: a poll may start only while
 * fewer than ceil(rate * share / 100) (at least 1) polls are in flight or were answered within
 * the last window (like the rate itself: the server sees a request arrive after it started, so
 * counting starts only let a few more land in one of its windows). So that polls never starve
 * under a full delivery backlog, a poll that has waited longer than one window goes before the
 * waiting deliveries until the polls' share of the window is used.
 *
 * Pure: the caller passes the monotonic time in and owns the waiting (see src/net/client.c).
 */
#ifndef PD_LIMITER_H
#define PD_LIMITER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PD_LIMITER_WINDOW_MS 60000u
/* pd_limiter_try(): every slot is taken; ask again after a pd_limiter_release(). */
#define PD_LIMITER_BUSY (-1)
/* Percent of the rate polls may take when none is set. */
#define PD_LIMITER_POLL_SHARE 25u

struct pd_limiter {
    uint64_t rate;        /* requests per window; 0: unlimited */
    uint64_t window_ms;   /* PD_LIMITER_WINDOW_MS unless set otherwise */
    uint64_t concurrency; /* requests in flight at most; 0: unlimited */
    uint64_t inflight;
    double tokens;
    double burst;
    uint64_t refilled_ms;
    uint64_t pause_until_ms;
    uint64_t *starts; /* ring of the last answers' times (sliding window), oldest first */
    size_t nstarts, head, count;
    /* Polls: at most poll_max in flight or answered within a window (0: no bound); their
     * answer times (in flight: UINT64_MAX). */
    uint64_t poll_max;
    uint64_t *polls;
    size_t poll_count;
};

/* Which request pd_limiter_next() let start. */
enum pd_limiter_pick { PD_LIMITER_NONE, PD_LIMITER_REQUEST, PD_LIMITER_POLL };

/* What waits for the limiter now. */
struct pd_limiter_queue {
    bool requests;          /* a request that is not a poll waits */
    bool polls;             /* a poll waits */
    uint64_t poll_since_ms; /* since when the oldest waiting poll has waited */
};

int pd_limiter_init(struct pd_limiter *l, uint64_t rate_per_min, uint64_t concurrency,
                    uint64_t now_ms);

/*
 * The same with RATE requests per WINDOW_MS instead of per minute (config key rate_window):
 * for a server or emulator that counts over another window, such as a benchmark that scales
 * Patchworks' 240 a minute down to 24 per 6 seconds. Both rules then use that window.
 */
int pd_limiter_init_window(struct pd_limiter *l, uint64_t rate, uint64_t window_ms,
                           uint64_t concurrency, uint64_t now_ms);
void pd_limiter_cleanup(struct pd_limiter *l);

/*
 * Asks to start a request now. Returns 0 when it may start (it then holds a slot until
 * pd_limiter_release), a positive number of milliseconds to wait before asking again, or
 * PD_LIMITER_BUSY when all slots are in use.
 */
int64_t pd_limiter_try(struct pd_limiter *l, uint64_t now_ms);

/*
 * Polls may take PERCENT of the rate (0: PD_LIMITER_POLL_SHARE; above 100: 100). Set to the
 * default by init. Returns 0 or PD_ENOMEM (the share is then left as it was).
 */
int pd_limiter_set_poll_share(struct pd_limiter *l, unsigned percent);

/*
 * Chooses what may start now among what Q says waits (see the rules above) and asks for it as
 * pd_limiter_try() does: 0 with *PICK saying which (it then holds a slot), or what to wait, and
 * *PICK PD_LIMITER_NONE. *SHARE_HELD tells whether the oldest poll was held back by the share
 * (whatever else started instead).
 */
int64_t pd_limiter_next(struct pd_limiter *l, uint64_t now_ms, const struct pd_limiter_queue *q,
                        enum pd_limiter_pick *pick, bool *share_held);

/* A request that held a slot has finished (answered, failed or canceled) at NOW_MS. */
void pd_limiter_release(struct pd_limiter *l, uint64_t now_ms);
/* The same for a poll's share: it counts on until a window after NOW_MS. */
void pd_limiter_poll_done(struct pd_limiter *l, uint64_t now_ms);

/* The server said slow down: nobody starts before NOW_MS + MS (an existing longer pause stays). */
void pd_limiter_pause(struct pd_limiter *l, uint64_t now_ms, uint64_t ms);

#endif
