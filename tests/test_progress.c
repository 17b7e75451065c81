/* The progress bar's time left: never a guess from the first second, never absurd. */
#include "testlib.h"

#include "pd_progress.h"

#include <stdio.h>
#include <string.h>

#define T0 5000000ULL /* the injected monotonic clock at the start */
#define MB 1000000ULL

static struct pd_progress bar_at(uint64_t start_ms)
{
    struct pd_progress p;
    memset(&p, 0, sizeof(p));
    p.start_ms = start_ms;
    return p;
}

/* The ETA part of the bar's line at NOW_MS. */
static const char *eta_shown(const struct pd_progress *p, const struct pd_progress_state *s,
                             uint64_t now_ms)
{
    static char line[256];
    pd_progress_line(p, s, now_ms, line, sizeof(line));
    const char *e = strstr(line, "ETA ");
    assert_non_null(e);
    static char eta[32];
    snprintf(eta, sizeof(eta), "%s", e + 4);
    eta[strcspn(eta, " ")] = '\0';
    return eta;
}

static void no_eta_until_the_rate_is_measurable(void **state)
{
    (void)state;
    struct pd_progress p = bar_at(T0);
    /* A 1 kB file done in the first second, a 44 MB one still to go: that rate promised 12 h. */
    struct pd_progress_state s = {
        .files_done = 1, .files_total = 2, .bytes_done = 1000, .bytes_total = 44 * MB + 1000};
    assert_int_equal(pd_progress_eta(&p, &s, T0 + 1000), -1);
    assert_string_equal(eta_shown(&p, &s, T0 + 1000), "--:--");
    /* Nor later while under 1% is done: one small file's rate says nothing of a big one. */
    assert_int_equal(pd_progress_eta(&p, &s, T0 + 60000), -1);
    /* Half done in the first second is still too early to tell. */
    s.bytes_done = 22 * MB;
    s.bytes_total = 44 * MB;
    assert_int_equal(pd_progress_eta(&p, &s, T0 + 1000), -1);
    assert_int_equal(pd_progress_eta(&p, &s, T0 + PD_PROGRESS_ETA_WARMUP_MS - 1), -1);
    /* Nothing done, or no byte total: nothing to measure. */
    s.bytes_done = 0;
    assert_int_equal(pd_progress_eta(&p, &s, T0 + 10000), -1);
    s.bytes_total = 0;
    s.files_total = 4;
    assert_string_equal(eta_shown(&p, &s, T0 + 10000), "--:--");
    /* A clock that reads before the start is the start. */
    s.bytes_done = 1 * MB;
    s.bytes_total = 2 * MB;
    assert_int_equal(pd_progress_eta(&p, &s, T0 - 5000), -1);
}

static void eta_from_the_rate_since_the_start(void **state)
{
    (void)state;
    struct pd_progress p = bar_at(T0);
    struct pd_progress_state s = {.bytes_done = 11 * MB, .bytes_total = 44 * MB};
    /* 11 MB in 4 s: 33 MB more take 12 s. */
    assert_int_equal(pd_progress_eta(&p, &s, T0 + 4000), 12);
    assert_string_equal(eta_shown(&p, &s, T0 + 4000), "0:12");
    /* Exactly 1% done after 10 s: 990 s more. */
    s.bytes_done = 440000;
    assert_int_equal(pd_progress_eta(&p, &s, T0 + 10000), 990);
    assert_string_equal(eta_shown(&p, &s, T0 + 10000), "16:30");
    /* Hours are shown as such. */
    assert_int_equal(pd_progress_eta(&p, &s, T0 + 100000), 9900);
    assert_string_equal(eta_shown(&p, &s, T0 + 100000), "2:45:00");
    /* All done: 0:00, whatever the time. */
    s.bytes_done = s.bytes_total;
    assert_int_equal(pd_progress_eta(&p, &s, T0 + 10), 0);
    assert_string_equal(eta_shown(&p, &s, T0 + 10), "0:00");
}

static void absurd_values_are_capped(void **state)
{
    (void)state;
    struct pd_progress p = bar_at(T0);
    /* 1% in 2 days: 198 days more are shown as more than 99:59:59. */
    struct pd_progress_state s = {.bytes_done = 1 * MB, .bytes_total = 100 * MB};
    uint64_t now = T0 + 2ULL * 86400 * 1000;
    assert_int_equal(pd_progress_eta(&p, &s, now), PD_PROGRESS_ETA_MAX_S);
    assert_string_equal(eta_shown(&p, &s, now), ">99:59:59");
    /* Just under the cap is shown as it is. */
    s.bytes_done = 10 * MB;
    now = T0 + 40000ULL * 1000; /* 10% in 40000 s: 360000 s more, over the cap by one */
    assert_int_equal(pd_progress_eta(&p, &s, now), PD_PROGRESS_ETA_MAX_S);
    now = T0 + 39999ULL * 1000; /* 359991 s */
    assert_int_equal(pd_progress_eta(&p, &s, now), 359991);
    assert_string_equal(eta_shown(&p, &s, now), "99:59:51");
}

/* The summary table as a terminal would show it. */
static char *summary_of(const struct pd_progress_state *s)
{
    static char text[2048];
    struct pd_progress p = bar_at(T0);
    p.tty = tmpfile();
    assert_non_null(p.tty);
    pd_progress_summary(&p, s, T0 + 2000);
    rewind(p.tty);
    text[fread(text, 1, sizeof(text) - 1, p.tty)] = '\0';
    fclose(p.tty);
    return text;
}

/* With followed flow runs, the table gains their outcomes; without, no such rows. */
static void summary_shows_run_outcomes(void **state)
{
    struct pd_progress_state s = {.files_done = 5, .files_total = 5, .files_failed = 1};
    assert_null(strstr(summary_of(&s), "flow runs"));
    s.runs_succeeded = 3;
    s.runs_failed = 1;
    const char *t = summary_of(&s);
    assert_non_null(strstr(t, "  delivered           4\n"));
    assert_non_null(strstr(t, "  flow runs      chunks\n"));
    assert_non_null(strstr(t, "  succeeded           3\n"));
    assert_non_null(strstr(t, "  not success         1\n"));
    assert_non_null(strstr(t, "  unknown             0\n"));
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, no_eta_until_the_rate_is_measurable,
                        eta_from_the_rate_since_the_start, absurd_values_are_capped,
                        summary_shows_run_outcomes);
}
