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
    return 0;
}

void pd_limiter_cleanup(struct pd_limiter *l)
{
    free(l->starts);
    l->starts = NULL;
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
