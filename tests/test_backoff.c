/* Unit tests of retry delays: bounds of full jitter with an injected random source, Retry-After. */
#include "testlib.h"

#include "pd_backoff.h"
#include "pd_clock.h"
#include "pd_error.h"

static uint32_t fixed_bits;
static uint32_t fixed_random(void *arg)
{
    return fixed_bits;
}

static uint32_t lcg_state = 12345;
static uint32_t lcg_random(void *arg)
{
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return lcg_state;
}

static const struct pd_clock fixed_clock = {.random = fixed_random};
static const struct pd_clock lcg_clock = {.random = lcg_random};

static void ceiling_doubles_then_caps(void **state)
{
    assert_int_equal(pd_backoff_ceiling(1000, 300000, 0), 1000);
    assert_int_equal(pd_backoff_ceiling(1000, 300000, 1), 2000);
    assert_int_equal(pd_backoff_ceiling(1000, 300000, 8), 256000);
    assert_int_equal(pd_backoff_ceiling(1000, 300000, 9), 300000);
    assert_int_equal(pd_backoff_ceiling(1000, 300000, 5000), 300000);
    assert_int_equal(pd_backoff_ceiling(50, 200, 2), 200);
    assert_int_equal(pd_backoff_ceiling(500, 100, 0), 100);
}

static void jitter_spans_zero_to_ceiling(void **state)
{
    fixed_bits = 0;
    assert_int_equal(pd_backoff_delay(1000, 300000, 3, &fixed_clock), 0);
    fixed_bits = UINT32_MAX;
    assert_int_equal(pd_backoff_delay(1000, 300000, 3, &fixed_clock), 8000);
    assert_int_equal(pd_backoff_delay(1000, 300000, 60, &fixed_clock), 300000);
}

static void jitter_stays_in_bounds_and_spreads(void **state)
{
    for (unsigned attempt = 0; attempt < 12; attempt++) {
        uint64_t ceiling = pd_backoff_ceiling(100, 30000, attempt);
        uint64_t lo = UINT64_MAX, hi = 0, sum = 0;
        for (int i = 0; i < 2000; i++) {
            uint64_t d = pd_backoff_delay(100, 30000, attempt, &lcg_clock);
            assert_true(d <= ceiling);
            lo = d < lo ? d : lo;
            hi = d > hi ? d : hi;
            sum += d;
        }
        /* Full jitter: the whole window is used, the mean sits near its middle. */
        assert_true(lo < ceiling / 10 + 1);
        assert_true(hi > ceiling * 9 / 10);
        uint64_t mean = sum / 2000;
        assert_true(mean > ceiling * 4 / 10 && mean < ceiling * 6 / 10 + 1);
    }
}

static void retry_after_seconds(void **state)
{
    uint64_t d;
    assert_int_equal(pd_backoff_retry_after("120", 0, &d), 0);
    assert_int_equal(d, 120000);
    assert_int_equal(pd_backoff_retry_after(" 0 ", 0, &d), 0);
    assert_int_equal(d, 0);
    assert_int_equal(pd_backoff_retry_after("99999999999", 0, &d), 0);
    assert_int_equal(d, 24ull * 3600 * 1000);
    assert_int_equal(pd_backoff_retry_after("12abc", 0, &d), PD_EPARSE);
    assert_int_equal(pd_backoff_retry_after("", 0, &d), PD_EPARSE);
    assert_int_equal(pd_backoff_retry_after(NULL, 0, &d), PD_EPARSE);
    assert_int_equal(pd_backoff_retry_after("soon", 0, &d), PD_EPARSE);
}

static void retry_after_http_date(void **state)
{
    uint64_t d;
    /* Wed, 21 Oct 2015 07:28:00 GMT is 1445412480 s since the epoch. */
    const uint64_t when = 1445412480ull * 1000;
    assert_int_equal(pd_backoff_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", when - 90000, &d), 0);
    assert_int_equal(d, 90000);
    assert_int_equal(pd_backoff_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", when + 5000, &d), 0);
    assert_int_equal(d, 0);
    /* The obsolete forms HTTP allows are read too. */
    assert_int_equal(pd_backoff_retry_after("Wednesday, 21-Oct-15 07:28:00 GMT", when - 1000, &d),
                     0);
    assert_int_equal(d, 1000);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, ceiling_doubles_then_caps, jitter_spans_zero_to_ceiling,
                        jitter_stays_in_bounds_and_spreads, retry_after_seconds,
                        retry_after_http_date);
}
