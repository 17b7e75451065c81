/*
 * Unit tests of the account-wide pace: token bucket, sliding minute, concurrency, pauses, and
 * the polls' share of the rate.
 */
#include "testlib.h"

#include "pd_limiter.h"

/* Runs a greedy client against the limiter on a simulated clock; returns the start times. */
static size_t simulate(struct pd_limiter *l, uint64_t until_ms, uint64_t *starts, size_t max)
{
    size_t n = 0;
    uint64_t now = 0;
    while (now < until_ms && n < max) {
        int64_t w = pd_limiter_try(l, now);
        if (w == 0) {
            starts[n++] = now;
            pd_limiter_release(l, now);
            continue;
        }
        assert_true(w > 0);
        now += (uint64_t)w;
    }
    return n;
}

/* Checks that the N STARTS hold 1150 to 1212 starts, never more than MAX in any WINDOW_MS. */
static void check_sliding(const uint64_t *starts, size_t n, uint64_t window_ms, size_t max)
{
    assert_true(n <= 1200 + 12);
    assert_true(n >= 1150);
    for (size_t i = 0, j = 0; i < n; i++) {
        while (starts[i] - starts[j] >= window_ms)
            j++;
        assert_true(i - j + 1 <= max);
    }
}

static void never_more_than_rate_in_any_minute(void **state)
{
    static uint64_t starts[5000];
    struct pd_limiter l;
    assert_int_equal(pd_limiter_init(&l, 240, 0, 0), 0);
    size_t n = simulate(&l, 5 * 60000, starts, 5000);
    /* Five minutes at 240/min: close to 1200, never more. */
    check_sliding(starts, n, 60000, 240);
    /* A burst is at most rate/20, then requests are spread evenly. */
    size_t at_zero = 0;
    for (size_t i = 0; i < n && starts[i] == 0; i++)
        at_zero++;
    assert_int_equal(at_zero, 12);
    pd_limiter_cleanup(&l);
}

static void bucket_bound_holds_in_every_window(void **state)
{
    static uint64_t starts[2000];
    struct pd_limiter l;
    assert_int_equal(pd_limiter_init(&l, 600, 0, 0), 0);
    size_t n = simulate(&l, 30000, starts, 2000);
    /* Any window of t ms holds at most burst + rate * t / 60 s starts. */
    for (size_t i = 0; i < n; i++)
        for (size_t j = i; j < n; j++) {
            double allowed = 30 + 600.0 * (double)(starts[j] - starts[i]) / 60000.0 + 1;
            assert_true((double)(j - i + 1) <= allowed);
        }
    pd_limiter_cleanup(&l);
}

static void sliding_minute_holds_when_bucket_would_allow_more(void **state)
{
    struct pd_limiter l;
    /* rate 20: the bucket alone would allow 1 + 20 in the first minute; the window keeps 20. */
    assert_int_equal(pd_limiter_init(&l, 20, 0, 0), 0);
    uint64_t now = 0;
    unsigned started = 0;
    while (now < 60000) {
        int64_t w = pd_limiter_try(&l, now);
        if (w == 0) {
            started++;
            pd_limiter_release(&l, now);
        } else {
            now += (uint64_t)w;
        }
    }
    assert_int_equal(started, 20);
    pd_limiter_cleanup(&l);
}

static void concurrency_cap(void **state)
{
    struct pd_limiter l;
    assert_int_equal(pd_limiter_init(&l, 1000000, 3, 0), 0);
    assert_int_equal(pd_limiter_try(&l, 0), 0);
    assert_int_equal(pd_limiter_try(&l, 0), 0);
    assert_int_equal(pd_limiter_try(&l, 0), 0);
    assert_int_equal(pd_limiter_try(&l, 0), PD_LIMITER_BUSY);
    pd_limiter_release(&l, 0);
    assert_int_equal(pd_limiter_try(&l, 0), 0);
    assert_int_equal(l.inflight, 3);
    pd_limiter_cleanup(&l);
}

static void pause_stops_everybody(void **state)
{
    struct pd_limiter l;
    assert_int_equal(pd_limiter_init(&l, 6000, 10, 0), 0);
    assert_int_equal(pd_limiter_try(&l, 0), 0);
    pd_limiter_pause(&l, 100, 2000);
    assert_int_equal(pd_limiter_try(&l, 100), 2000);
    assert_int_equal(pd_limiter_try(&l, 1500), 600);
    /* A shorter pause does not cut a longer one short. */
    pd_limiter_pause(&l, 1500, 10);
    assert_int_equal(pd_limiter_try(&l, 1600), 500);
    assert_int_equal(pd_limiter_try(&l, 2100), 0);
    pd_limiter_cleanup(&l);
}

/* rate_window: 240 per 6 s (a benchmark's scaled-down minute) holds in every 6 s window, and
 * the pace is 40 a second, so a server counting fixed 6 s windows never refuses. */
static void scaled_window_holds(void **state)
{
    static uint64_t starts[3000];
    struct pd_limiter l;
    assert_int_equal(pd_limiter_init_window(&l, 240, 6000, 0, 0), 0);
    size_t n = simulate(&l, 30000, starts, 3000);
    check_sliding(starts, n, 6000, 240);
    /* Fixed windows opening at the first start, as Laravel's throttle counts. */
    for (uint64_t w0 = 0; w0 < 30000; w0 += 6000) {
        size_t in = 0;
        for (size_t i = 0; i < n; i++)
            in += starts[i] >= w0 && starts[i] < w0 + 6000;
        assert_true(in <= 240);
    }
    pd_limiter_cleanup(&l);
}

/* A request counts from its start until a window after its answer: a slow request may reach
 * the server late, in the server's next window, beside the ones started after it. */
static void slow_answers_keep_counting(void **state)
{
    struct pd_limiter l;
    assert_int_equal(pd_limiter_init_window(&l, 2, 1000, 0, 0), 0);
    assert_int_equal(pd_limiter_try(&l, 0), 0);   /* A */
    assert_int_equal(pd_limiter_try(&l, 0), 501); /* the bucket spreads them */
    assert_int_equal(pd_limiter_try(&l, 500), 0); /* B */
    pd_limiter_release(&l, 900);                  /* A answered late */
    pd_limiter_release(&l, 950);
    /* Counting starts would allow one at 1000; A may have arrived as late as 900. */
    assert_int_equal(pd_limiter_try(&l, 1000), 900);
    assert_int_equal(pd_limiter_try(&l, 1900), 0);
    /* Two in flight and none answered: wait for an answer, not a time. */
    struct pd_limiter m;
    assert_int_equal(pd_limiter_init_window(&m, 2, 1000, 0, 0), 0);
    assert_int_equal(pd_limiter_try(&m, 0), 0);
    assert_int_equal(pd_limiter_try(&m, 500), 0);
    assert_int_equal(pd_limiter_try(&m, 5000), PD_LIMITER_BUSY);
    pd_limiter_release(&m, 5100);
    /* ...and that answer counts for a window too. */
    assert_int_equal(pd_limiter_try(&m, 5100), 1000);
    pd_limiter_cleanup(&m);
    pd_limiter_cleanup(&l);
}

/* What waits in a simulation of deliveries and polls, and what started. */
struct mix {
    uint64_t delivery_every_ms; /* a delivery arrives this often; 0: always one waits; */
    bool deliveries;            /* false: none at all */
    bool polls_queued_at_zero;  /* every poll waited from 0 (a backlog), else from now */
    uint64_t polls[2000], deliveries_at[2000];
    size_t npolls, ndeliveries;
};

/* Runs deliveries and polls (one always waits) through pd_limiter_next for UNTIL_MS. */
static void simulate_mix(struct pd_limiter *l, uint64_t until_ms, struct mix *m)
{
    uint64_t now = 0, next_arrival = 0;
    size_t pending = 0;
    while (now < until_ms && m->npolls < 2000 && m->ndeliveries < 2000) {
        for (; m->delivery_every_ms && next_arrival <= now; next_arrival += m->delivery_every_ms)
            pending++;
        struct pd_limiter_queue q = {
            .requests = m->deliveries && (!m->delivery_every_ms || pending > 0),
            .polls = true,
            .poll_since_ms = m->polls_queued_at_zero ? 0 : now,
        };
        enum pd_limiter_pick pick;
        bool held;
        int64_t w = pd_limiter_next(l, now, &q, &pick, &held);
        if (w == 0) {
            assert_int_not_equal(pick, PD_LIMITER_NONE);
            if (pick == PD_LIMITER_POLL)
                m->polls[m->npolls++] = now;
            else
                m->deliveries_at[m->ndeliveries++] = now, pending -= pending > 0;
            pd_limiter_release(l, now); /* answered at once */
            if (pick == PD_LIMITER_POLL)
                pd_limiter_poll_done(l, now);
            continue;
        }
        assert_true(w > 0);
        assert_int_equal(pick, PD_LIMITER_NONE);
        uint64_t step = (uint64_t)w;
        if (m->delivery_every_ms && next_arrival - now < step)
            step = next_arrival - now;
        now += step;
    }
}

/* Never more than MAX of the N sorted TIMES in any WINDOW_MS. */
static void at_most_per_window(const uint64_t *times, size_t n, uint64_t window_ms, size_t max)
{
    for (size_t i = 0, j = 0; i < n; i++) {
        while (times[i] - times[j] >= window_ms)
            j++;
        assert_true(i - j + 1 <= max);
    }
}

/* Both always wait: deliveries go first, but polls that waited a window take their share. */
static void polls_keep_to_share_under_backlog(void **state)
{
    static struct mix m = {.deliveries = true, .polls_queued_at_zero = true};
    struct pd_limiter l;
    assert_int_equal(pd_limiter_init(&l, 240, 0, 0), 0); /* share 25%: 60 polls a minute */
    simulate_mix(&l, 5 * 60000, &m);
    at_most_per_window(m.polls, m.npolls, 60000, 60);
    /* Nothing before the first poll has waited a window; then the share, every window. */
    assert_true(m.npolls > 0 && m.polls[0] >= 60000);
    assert_true(m.npolls >= 4 * 60 - 1);
    assert_true(m.ndeliveries >= 5 * 240 - 4 * 60 - 12);
    /* Together they keep the account's rate. */
    uint64_t all[4000];
    size_t n = 0, i = 0, j = 0;
    while (i < m.npolls || j < m.ndeliveries)
        all[n++] = j >= m.ndeliveries || (i < m.npolls && m.polls[i] < m.deliveries_at[j])
                       ? m.polls[i++]
                       : m.deliveries_at[j++];
    at_most_per_window(all, n, 60000, 240);
    pd_limiter_cleanup(&l);
}

/* Polls alone get their share of every window, never more. */
static void polls_alone_get_share(void **state)
{
    static struct mix m;
    struct pd_limiter l;
    assert_int_equal(pd_limiter_init(&l, 240, 0, 0), 0);
    assert_int_equal(pd_limiter_set_poll_share(&l, 10), 0); /* 24 a minute */
    simulate_mix(&l, 5 * 60000, &m);
    at_most_per_window(m.polls, m.npolls, 60000, 24);
    assert_int_equal(m.npolls, 5 * 24);
    assert_int_equal(m.ndeliveries, 0);
    pd_limiter_cleanup(&l);
}

/* Deliveries that leave part of the rate unused: polls take the rest up to their share. */
static void polls_use_what_deliveries_leave(void **state)
{
    static struct mix m = {.deliveries = true, .delivery_every_ms = 1000};
    struct pd_limiter l;
    assert_int_equal(pd_limiter_init(&l, 240, 0, 0), 0);
    simulate_mix(&l, 5 * 60000, &m);
    assert_int_equal(m.ndeliveries, 5 * 60); /* every delivery at once */
    at_most_per_window(m.polls, m.npolls, 60000, 60);
    assert_int_equal(m.npolls, 5 * 60);
    pd_limiter_cleanup(&l);
}

/* A delivery goes before a poll that waited less than a window, whatever their order. */
static void delivery_before_poll(void **state)
{
    struct pd_limiter l;
    enum pd_limiter_pick pick;
    bool held;
    assert_int_equal(pd_limiter_init(&l, 240, 0, 0), 0);
    struct pd_limiter_queue q = {.requests = true, .polls = true, .poll_since_ms = 0};
    assert_int_equal(pd_limiter_next(&l, 59999, &q, &pick, &held), 0);
    assert_int_equal(pick, PD_LIMITER_REQUEST);
    assert_false(held);
    /* Waited a whole window: the poll goes first. */
    assert_int_equal(pd_limiter_next(&l, 60000, &q, &pick, &held), 0);
    assert_int_equal(pick, PD_LIMITER_POLL);
    /* The share used (1 of rate 4): held, and the delivery goes instead. */
    struct pd_limiter s;
    assert_int_equal(pd_limiter_init(&s, 4, 0, 0), 0);
    q.polls = true;
    q.requests = false;
    assert_int_equal(pd_limiter_next(&s, 0, &q, &pick, &held), 0);
    assert_int_equal(pick, PD_LIMITER_POLL);
    pd_limiter_release(&s, 10);
    pd_limiter_poll_done(&s, 10);
    q.requests = true;
    assert_int_equal(pd_limiter_next(&s, 70000, &q, &pick, &held), 0);
    assert_int_equal(pick, PD_LIMITER_POLL); /* a window later: the share is free again */
    pd_limiter_release(&s, 70000);
    pd_limiter_poll_done(&s, 70000);
    assert_true(pd_limiter_next(&s, 70000, &q, &pick, &held) > 0); /* the bucket: burst 1 */
    assert_true(held);
    assert_int_equal(pick, PD_LIMITER_NONE);
    q.requests = false;
    assert_int_equal(pd_limiter_next(&s, 80000, &q, &pick, &held), 50000); /* the share */
    assert_true(held);
    pd_limiter_cleanup(&s);
    pd_limiter_cleanup(&l);
}

/* A poll counts until a window after its answer (the server may see it that late), and one in
 * flight holds its share until it is answered. */
static void poll_counts_until_a_window_after_its_answer(void **state)
{
    struct pd_limiter l;
    enum pd_limiter_pick pick;
    bool held;
    struct pd_limiter_queue q = {.polls = true};
    assert_int_equal(pd_limiter_init(&l, 4, 0, 0), 0); /* share 25%: one poll a minute */
    assert_int_equal(pd_limiter_next(&l, 0, &q, &pick, &held), 0);
    assert_int_equal(pick, PD_LIMITER_POLL);
    assert_int_equal(pd_limiter_next(&l, 90000, &q, &pick, &held), PD_LIMITER_BUSY);
    assert_true(held);
    pd_limiter_release(&l, 90000);
    pd_limiter_poll_done(&l, 90000);
    assert_int_equal(pd_limiter_next(&l, 100000, &q, &pick, &held), 50000);
    assert_int_equal(pd_limiter_next(&l, 150000, &q, &pick, &held), 0);
    assert_int_equal(pick, PD_LIMITER_POLL);
    pd_limiter_cleanup(&l);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, never_more_than_rate_in_any_minute,
                        bucket_bound_holds_in_every_window,
                        sliding_minute_holds_when_bucket_would_allow_more, concurrency_cap,
                        pause_stops_everybody, scaled_window_holds, slow_answers_keep_counting,
                        polls_keep_to_share_under_backlog, polls_alone_get_share,
                        polls_use_what_deliveries_leave, delivery_before_poll,
                        poll_counts_until_a_window_after_its_answer);
}
