/*
 * Account-wide request pacing: token bucket + sliding window of answers + concurrency cap.
 * See include/pd_limiter.h for the rules and why both rate rules exist.
 */
#include "pd_limiter.h"

#include "pd_error.h"

#include <stdlib.h>
#include <string.h>

/* Above this many requests per minute the window ring would cost more than it protects. */
#define WINDOW_RING_MAX 65536u

int pd_limiter_init(struct pd_limiter *l, uint64_t rate_per_min, uint64_t concurrency,
                    uint64_t now_ms)
{
    return pd_limiter_init_window(l, rate_per_min, PD_LIMITER_WINDOW_MS, concurrency, now_ms);
}

int pd_limiter_init_window(struct pd_limiter *l, uint64_t rate_per_min, uint64_t window_ms,
                           uint64_t concurrency, uint64_t now_ms)
{
    memset(l, 0, sizeof(*l));
    l->rate = rate_per_min;
    l->window_ms = window_ms ? window_ms : PD_LIMITER_WINDOW_MS;
    l->concurrency = concurrency;
    l->burst = rate_per_min / 20 > 1 ? (double)(rate_per_min / 20) : 1.0;
    l->tokens = l->burst;
    l->refilled_ms = now_ms;
    if (rate_per_min > 0 && rate_per_min <= WINDOW_RING_MAX) {
        l->starts = calloc(rate_per_min, sizeof(*l->starts));
        if (!l->starts)
            return PD_ENOMEM;
        l->nstarts = rate_per_min;
    }
    if (pd_limiter_set_poll_share(l, PD_LIMITER_POLL_SHARE) != 0) {
        pd_limiter_cleanup(l);
        return PD_ENOMEM;
    }
    return 0;
}

int pd_limiter_set_poll_share(struct pd_limiter *l, unsigned percent)
{
    uint64_t max = 0;
    uint64_t *ring = NULL;

    if (!percent)
        percent = PD_LIMITER_POLL_SHARE;
    if (percent > 100)
        percent = 100;
    /* Unlimited rates bound no share either. */
    if (l->rate > 0 && l->rate <= WINDOW_RING_MAX) {
        max = (l->rate * percent + 99) / 100;
        ring = calloc(max, sizeof(*ring));
        if (!ring)
            return PD_ENOMEM;
    }
    free(l->polls);
    l->polls = ring;
    l->poll_max = max;
    l->poll_count = 0;
    return 0;
}

void pd_limiter_cleanup(struct pd_limiter *l)
{
    free(l->starts);
    l->starts = NULL;
    free(l->polls);
    l->polls = NULL;
}

static void refill(struct pd_limiter *l, uint64_t now_ms)
{
    if (now_ms <= l->refilled_ms)
        return;
    l->tokens += (double)(now_ms - l->refilled_ms) * (double)l->rate / (double)l->window_ms;
    if (l->tokens > l->burst)
        l->tokens = l->burst;
    l->refilled_ms = now_ms;
}

/* Forgets the requests answered a whole window ago or earlier. */
static void expire(struct pd_limiter *l, uint64_t now_ms)
{
    while (l->count) {
        size_t oldest = (l->head + l->nstarts - l->count) % l->nstarts;
        if (l->starts[oldest] + l->window_ms > now_ms)
            break;
        l->count--;
    }
}

int64_t pd_limiter_try(struct pd_limiter *l, uint64_t now_ms)
{
    if (l->concurrency && l->inflight >= l->concurrency)
        return PD_LIMITER_BUSY;
    if (now_ms < l->pause_until_ms)
        return (int64_t)(l->pause_until_ms - now_ms);
    if (l->rate) {
        refill(l, now_ms);
        if (l->tokens < 1.0) {
            double wait = (1.0 - l->tokens) * (double)l->window_ms / (double)l->rate;
            return (int64_t)wait + 1;
        }
        /* `rate` requests in flight or answered within the last window: wait until the
         * oldest answer is a window old (or, when all are in flight, for an answer). */
        if (l->starts) {
            expire(l, now_ms);
            if (l->count + l->inflight >= l->nstarts) {
                if (!l->count)
                    return PD_LIMITER_BUSY;
                uint64_t oldest = l->starts[(l->head + l->nstarts - l->count) % l->nstarts];
                return (int64_t)(oldest + l->window_ms - now_ms);
            }
        }
        l->tokens -= 1.0;
    }
    l->inflight++;
    return 0;
}

#define POLL_IN_FLIGHT UINT64_MAX

/*
 * 0 when the polls' share allows one more poll now, else how long until it does. A poll counts
 * from its start until a window after its answer, as every request does for the rate: the
 * server sees it arrive somewhat after patchdrop started it, so counting starts alone let a few
 * more than the share land in one of the server's windows.
 */
static int64_t poll_share_wait(struct pd_limiter *l, uint64_t now_ms)
{
    uint64_t first_free = POLL_IN_FLIGHT;
    size_t kept = 0;

    if (!l->polls)
        return 0;
    for (size_t i = 0; i < l->poll_count; i++) {
        uint64_t end = l->polls[i];
        if (end != POLL_IN_FLIGHT && end + l->window_ms <= now_ms)
            continue; /* answered a window ago: no longer counted */
        l->polls[kept++] = end;
        if (end != POLL_IN_FLIGHT && end + l->window_ms < first_free)
            first_free = end + l->window_ms;
    }
    l->poll_count = kept;
    if (kept < l->poll_max)
        return 0;
    return first_free == POLL_IN_FLIGHT ? PD_LIMITER_BUSY : (int64_t)(first_free - now_ms);
}

static void poll_started(struct pd_limiter *l)
{
    if (l->polls && l->poll_count < l->poll_max)
        l->polls[l->poll_count++] = POLL_IN_FLIGHT;
}

void pd_limiter_poll_done(struct pd_limiter *l, uint64_t now_ms)
{
    for (size_t i = 0; l->polls && i < l->poll_count; i++)
        if (l->polls[i] == POLL_IN_FLIGHT) {
            l->polls[i] = now_ms;
            return;
        }
}

int64_t pd_limiter_next(struct pd_limiter *l, uint64_t now_ms, const struct pd_limiter_queue *q,
                        enum pd_limiter_pick *pick, bool *share_held)
{
    int64_t wait;

    *pick = PD_LIMITER_NONE;
    *share_held = false;
    /* A poll goes when nothing else waits, or before the others once it waited a window. */
    if (q->polls && (!q->requests || now_ms >= q->poll_since_ms + l->window_ms)) {
        wait = poll_share_wait(l, now_ms);
        if (wait == 0) {
            wait = pd_limiter_try(l, now_ms);
            if (wait == 0) {
                poll_started(l);
                *pick = PD_LIMITER_POLL;
            }
            return wait;
        }
        *share_held = true;
        if (!q->requests)
            return wait;
    }
    if (!q->requests)
        return PD_LIMITER_BUSY;
    wait = pd_limiter_try(l, now_ms);
    if (wait == 0)
        *pick = PD_LIMITER_REQUEST;
    return wait;
}

void pd_limiter_release(struct pd_limiter *l, uint64_t now_ms)
{
    if (l->inflight > 0)
        l->inflight--;
    if (l->starts) {
        if (l->count == l->nstarts)
            l->count--; /* cannot happen: try() keeps count + inflight below nstarts */
        l->starts[l->head] = now_ms;
        l->head = (l->head + 1) % l->nstarts;
        l->count++;
    }
}

void pd_limiter_pause(struct pd_limiter *l, uint64_t now_ms, uint64_t ms)
{
    if (now_ms + ms > l->pause_until_ms)
        l->pause_until_ms = now_ms + ms;
}
