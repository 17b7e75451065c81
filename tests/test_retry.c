/*
 * Unit tests of the retry policy (pd_retry_decide): every HTTP status class and transfer failure
 * the API can give, through the real classifier (pd_api_classify), with the request's history,
 * Retry-After and the limits, to the one decision. Jitter comes from fake random sources (all
 * zeros, all ones, a sequence), so each row checks its delay bounds without sleeping.
 */
#include "testlib.h"

#include "pd_api.h"
#include "pd_clock.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_retry.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#define BASE_MS 1000
#define CAP_MS 60000
#define MAX_TIME_MS 3600000
#define MAX_AMBIGUOUS 3
/* Wed, 21 Oct 2015 07:28:00.123 GMT */
#define WALL_MS 1445412480123ull

static const struct pd_patchworks limits = {
    .retry_base_ms = BASE_MS,
    .retry_cap_ms = CAP_MS,
    .max_retry_time_ms = MAX_TIME_MS,
    .max_ambiguous = MAX_AMBIGUOUS,
};
/* max_retry_time = 0 and max_ambiguous_retries = 0: retry forever. */
static const struct pd_patchworks unlimited = {.retry_base_ms = BASE_MS, .retry_cap_ms = CAP_MS};

/* Random sources: the two ends of the jitter range and a sequence in between. */
struct rnd {
    uint32_t value;
    bool step;
};

static uint32_t rnd_next(void *arg)
{
    struct rnd *r = arg;
    if (r->step)
        r->value = r->value * 1664525u + 1013904223u;
    return r->value;
}

static uint64_t no_time(void *arg)
{
    (void)arg;
    fail_msg("pd_retry must take time as input, not read the clock");
    return 0;
}

struct row {
    long status;
    int curl;
    const char *body;
    const char *retry_after;
    bool body_sent;
    bool login;
    unsigned retries;   /* before this answer; attempts is retries + 1 */
    unsigned ambiguous; /* earlier ambiguous attempts */
    uint64_t elapsed_ms;
    const struct pd_patchworks *pw; /* NULL: limits */
    /* Expected: */
    enum pd_retry_action action;
    int err;
    uint64_t delay_lo, delay_hi; /* for retryable answers: bounds of the wait */
    bool pause, ambig, told;
};

#define RETRY(lo, hi) .action = PD_RETRY_AFTER, .delay_lo = (lo), .delay_hi = (hi)
#define JITTER RETRY(0, BASE_MS)
#define REJECT .action = PD_RETRY_REJECT, .err = PD_EREJECTED
#define FATAL .action = PD_RETRY_FATAL, .err = PD_ECONFIG

static const struct row rows[] = {
    /* 2xx: done. */
    {200, CURLE_OK, "{\"flow_run_id\":7}", .action = PD_RETRY_DONE_OK},
    {201, CURLE_OK, "{}", .action = PD_RETRY_DONE_OK},
    {202, CURLE_OK, "", .action = PD_RETRY_DONE_OK},
    {204, CURLE_OK, NULL, .action = PD_RETRY_DONE_OK},
    {200, CURLE_PARTIAL_FILE, "{\"flow_run_id\":1", .action = PD_RETRY_DONE_OK},
    /* Redirects are never followed: refused as they are. */
    {301, CURLE_OK, "", REJECT},
    {302, CURLE_OK, "", REJECT},
    /* 4xx. */
    {400, CURLE_OK, "{\"message\":\"Bad\"}", REJECT},
    {401, CURLE_OK, "{\"message\":\"Unauthenticated.\"}", .action = PD_RETRY_RELOGIN},
    {401, CURLE_OK, "", .login = true, .action = PD_RETRY_REJECT, .err = PD_EAUTH},
    {403, CURLE_OK, "{\"message\":\"Forbidden\"}", REJECT},
    {404, CURLE_OK, "", REJECT},
    {408, CURLE_OK, "", JITTER},
    {409, CURLE_OK, "", REJECT},
    {413, CURLE_OK, "<html>too large</html>", .action = PD_RETRY_RESPLIT, .err = PD_ETOOBIG},
    {422, CURLE_OK, "{\"message\":\"The payload field is required.\"}", REJECT},
    {429, CURLE_OK, "", JITTER, .pause = true},
    {429, CURLE_OK, "", "120", RETRY(120000, 120000), .pause = true, .told = true},
    {429, CURLE_OK, "", "Wed, 21 Oct 2015 07:28:30 GMT", RETRY(29877, 29877), .pause = true,
     .told = true},
    {429, CURLE_OK, "", "Wed, 21 Oct 2015 07:00:00 GMT", RETRY(0, 0), .pause = true, .told = true},
    {429, CURLE_OK, "", "soon", JITTER, .pause = true},
    /* More than a day is taken as a day (with no time limit, else that would give up). */
    {429, CURLE_OK, "", "999999999", .pw = &unlimited, RETRY(86400000, 86400000), .pause = true,
     .told = true},
    {405, CURLE_OK, "", REJECT},
    {418, CURLE_OK, "I'm a teapot", REJECT},
    {451, CURLE_OK, "", REJECT},
    /* 5xx: retried; 503 pauses the account like 429. */
    {500, CURLE_OK, "{\"message\":\"Server Error\"}", JITTER},
    {502, CURLE_OK, "bad gateway", JITTER},
    {503, CURLE_OK, "", JITTER, .pause = true},
    {503, CURLE_OK, "", "5", RETRY(5000, 5000), .pause = true, .told = true},
    {503, CURLE_PARTIAL_FILE, "{\"mess", "5", RETRY(5000, 5000), .pause = true, .told = true},
    {504, CURLE_OK, "", JITTER},
    {505, CURLE_OK, "", JITTER},
    {599, CURLE_OK, "", JITTER},
    /* 500 with Retry-After: the hint is followed, but only 429/503 pause the account. */
    {500, CURLE_OK, "", "2", RETRY(2000, 2000), .told = true},
    /* No answer. Not sent whole: the server cannot have acted on it. */
    {0, CURLE_COULDNT_CONNECT, NULL, JITTER},
    {0, CURLE_COULDNT_RESOLVE_HOST, NULL, JITTER},
    {0, CURLE_OPERATION_TIMEDOUT, NULL, JITTER},
    {0, CURLE_SEND_ERROR, NULL, JITTER},
    /* Sent whole, then a timeout or a reset: ambiguous. The login is never ambiguous. */
    {0, CURLE_OPERATION_TIMEDOUT, NULL, .body_sent = true, JITTER, .ambig = true},
    {0, CURLE_RECV_ERROR, NULL, .body_sent = true, JITTER, .ambig = true},
    {0, CURLE_GOT_NOTHING, NULL, .body_sent = true, JITTER, .ambig = true},
    {0, CURLE_OPERATION_TIMEDOUT, NULL, .body_sent = true, .login = true, JITTER},
    /* TLS: a failed handshake is transient, a certificate that is not trusted never works. */
    {0, CURLE_SSL_CONNECT_ERROR, NULL, JITTER},
    {0, CURLE_PEER_FAILED_VERIFICATION, NULL, FATAL},
    {0, CURLE_SSL_CACERT_BADFILE, NULL, FATAL},
    {0, CURLE_URL_MALFORMAT, NULL, FATAL},
    {0, CURLE_UNSUPPORTED_PROTOCOL, NULL, FATAL},
    /* Backoff grows with the retries, up to the cap. */
    {500, CURLE_OK, "", .retries = 3, RETRY(0, 8 * BASE_MS)},
    {500, CURLE_OK, "", .retries = 10, RETRY(0, CAP_MS)},
    {500, CURLE_OK, "", .retries = 1000, RETRY(0, CAP_MS)},
    /* max_retry_time: elapsed + the wait may reach it, not pass it. A 429 still pauses. */
    {429, CURLE_OK, "", "10", .elapsed_ms = MAX_TIME_MS - 10000, RETRY(10000, 10000), .pause = true,
     .told = true},
    {429, CURLE_OK, "", "10", .elapsed_ms = MAX_TIME_MS - 9999, .action = PD_RETRY_GIVE_UP,
     .err = PD_ELIMIT, .delay_lo = 10000, .delay_hi = 10000, .pause = true, .told = true},
    {500, CURLE_OK, "", .elapsed_ms = MAX_TIME_MS - BASE_MS, JITTER},
    {500, CURLE_OK, "", .elapsed_ms = MAX_TIME_MS + 1, .action = PD_RETRY_GIVE_UP, .err = PD_ELIMIT,
     .delay_lo = 0, .delay_hi = BASE_MS},
    {500, CURLE_OK, "", .elapsed_ms = 100ull * MAX_TIME_MS, .pw = &unlimited, JITTER},
    /* max_ambiguous_retries: 3 ambiguous retries, the 4th such failure gives up. */
    {0, CURLE_OPERATION_TIMEDOUT, NULL, .body_sent = true, .ambiguous = MAX_AMBIGUOUS - 1, JITTER,
     .ambig = true},
    {0, CURLE_OPERATION_TIMEDOUT, NULL, .body_sent = true, .ambiguous = MAX_AMBIGUOUS,
     .action = PD_RETRY_GIVE_UP, .err = PD_EAMBIGUOUS, .delay_lo = 0, .delay_hi = BASE_MS,
     .ambig = true},
    /* ... before max_retry_time is looked at. */
    {0, CURLE_RECV_ERROR, NULL, .body_sent = true, .ambiguous = MAX_AMBIGUOUS,
     .elapsed_ms = MAX_TIME_MS + 1, .action = PD_RETRY_GIVE_UP, .err = PD_EAMBIGUOUS, .delay_lo = 0,
     .delay_hi = BASE_MS, .ambig = true},
    /* Failures that were not sent whole do not count against it. */
    {0, CURLE_COULDNT_CONNECT, NULL, .ambiguous = MAX_AMBIGUOUS, JITTER},
    {0, CURLE_OPERATION_TIMEDOUT, NULL, .body_sent = true, .ambiguous = 100, .pw = &unlimited,
     JITTER, .ambig = true},
};

static void decide_row(const struct row *w, size_t i, struct rnd *rnd, struct pd_retry_decision *d)
{
    struct pd_clock clock = {
        .mono_ms = no_time, .wall_ms = no_time, .random = rnd_next, .arg = rnd};
    struct pd_api_result api;
    uint64_t at[PD_RETRY_AMBIGUOUS_TIMES] = {0};
    assert_int_equal(
        pd_api_classify(w->status, w->curl, w->body, w->body ? strlen(w->body) : 0, &api), 0);
    struct pd_retry_input in = {
        .api = &api,
        .curl_error = w->status ? "" : curl_easy_strerror((CURLcode)w->curl),
        .retry_after = w->retry_after,
        .body_sent = w->body_sent,
        .login = w->login,
        .attempts = w->retries + 1,
        .retries = w->retries,
        .ambiguous = w->ambiguous,
        .ambiguous_at = at,
        .elapsed_ms = w->elapsed_ms,
        .now_wall_ms = WALL_MS,
        .clock = &clock,
    };
    pd_retry_decide(w->pw ? w->pw : &limits, &in, d);
    if (d->action != w->action || d->err != w->err)
        fail_msg("row %zu (status %ld curl %d): got %s err %d, want %s err %d", i, w->status,
                 w->curl, pd_retry_action_name(d->action), d->err, pd_retry_action_name(w->action),
                 w->err);
    if (d->err) {
        assert_non_null(d->message);
        assert_true(d->message[0] != '\0');
        if (d->action == PD_RETRY_FATAL)
            assert_string_equal(d->message, curl_easy_strerror((CURLcode)w->curl));
        else if (d->action != PD_RETRY_GIVE_UP)
            assert_string_equal(d->message, api.message);
    } else {
        assert_null(d->message);
    }
    pd_api_result_cleanup(&api);
}

static void decide_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        const struct row *w = &rows[i];
        bool retryable = w->action == PD_RETRY_AFTER || w->action == PD_RETRY_GIVE_UP;
        struct rnd sources[] = {{0, false}, {UINT32_MAX, false}, {12345, true}};
        for (size_t s = 0; s < sizeof(sources) / sizeof(sources[0]); s++) {
            struct pd_retry_decision d;
            decide_row(w, i, &sources[s], &d);
            if (d.retryable != retryable || d.pause_account != w->pause ||
                d.ambiguous != w->ambig || d.retry_after != w->told)
                fail_msg("row %zu (status %ld curl %d): retryable %d pause %d ambiguous %d "
                         "retry_after %d",
                         i, w->status, w->curl, d.retryable, d.pause_account, d.ambiguous,
                         d.retry_after);
            if (d.delay_ms < w->delay_lo || d.delay_ms > w->delay_hi)
                fail_msg("row %zu (status %ld curl %d): delay %llu outside [%llu, %llu]", i,
                         w->status, w->curl, (unsigned long long)d.delay_ms,
                         (unsigned long long)w->delay_lo, (unsigned long long)w->delay_hi);
            /* Full jitter: the random source's two ends give the two ends of the range. */
            if (s == 0 && !w->told)
                assert_int_equal(d.delay_ms, w->delay_lo);
            if (s == 1)
                assert_int_equal(d.delay_ms, w->delay_hi);
        }
    }
}

/* Attempt ATTEMPTS, sent whole, after as many retries, all without an answer (times AT). */
static struct pd_retry_input ambiguous_input(const struct pd_api_result *api, unsigned attempts,
                                             const uint64_t *at, const struct pd_clock *clock)
{
    return (struct pd_retry_input){.api = api,
                                   .body_sent = true,
                                   .attempts = attempts,
                                   .retries = attempts - 1,
                                   .ambiguous = attempts - 1,
                                   .ambiguous_at = at,
                                   .now_wall_ms = WALL_MS,
                                   .clock = clock};
}

/* The words of the two limits, as the user reads them in the failure and the receipt. */
static void give_up_words(void **state)
{
    (void)state;
    struct rnd rnd = {0, false};
    struct pd_clock clock = {
        .mono_ms = no_time, .wall_ms = no_time, .random = rnd_next, .arg = &rnd};
    struct pd_api_result api;
    struct pd_retry_decision d;
    uint64_t at[PD_RETRY_AMBIGUOUS_TIMES] = {WALL_MS - 3000, WALL_MS - 2000, WALL_MS - 1000};
    char want[900];

    assert_int_equal(pd_api_classify(429, CURLE_OK, "", 0, &api), 0);
    struct pd_retry_input in = {
        .api = &api,
        .curl_error = "",
        .retry_after = "30",
        .attempts = 5,
        .retries = 4,
        .elapsed_ms = MAX_TIME_MS - 10000,
        .now_wall_ms = WALL_MS,
        .clock = &clock,
    };
    pd_retry_decide(&limits, &in, &d);
    assert_int_equal(d.action, PD_RETRY_GIVE_UP);
    assert_string_equal(d.message,
                        "gave up after 5 attempts in 3590 s (max_retry_time): HTTP 429: too many "
                        "requests");
    pd_api_result_cleanup(&api);

    assert_int_equal(pd_api_classify(0, CURLE_OPERATION_TIMEDOUT, NULL, 0, &api), 0);
    in = ambiguous_input(&api, 4, at, &clock);
    in.curl_error = curl_easy_strerror(CURLE_OPERATION_TIMEDOUT);
    pd_retry_decide(&limits, &in, &d);
    assert_int_equal(d.action, PD_RETRY_GIVE_UP);
    assert_int_equal(d.err, PD_EAMBIGUOUS);
    snprintf(want, sizeof(want),
             "sent whole 4 times without an answer (%s: at 07:27:57.123Z, 07:27:58.123Z, "
             "07:27:59.123Z, 07:28:00.123Z, UTC), so each may have started a flow run; not sent "
             "again (max_ambiguous_retries = 3): check the flow runs in Patchworks around those "
             "times",
             curl_easy_strerror(CURLE_OPERATION_TIMEDOUT));
    assert_string_equal(d.message, want);
    pd_api_result_cleanup(&api);
}

/* More ambiguous attempts than times kept: the first PD_RETRY_AMBIGUOUS_TIMES are named. */
static void give_up_names_first_times(void **state)
{
    (void)state;
    struct rnd rnd = {0, false};
    struct pd_clock clock = {
        .mono_ms = no_time, .wall_ms = no_time, .random = rnd_next, .arg = &rnd};
    struct pd_patchworks pw = limits;
    struct pd_api_result api;
    struct pd_retry_decision d;
    uint64_t at[PD_RETRY_AMBIGUOUS_TIMES];

    for (size_t i = 0; i < PD_RETRY_AMBIGUOUS_TIMES; i++)
        at[i] = WALL_MS - 60000 + i * 1000;
    pw.max_ambiguous = 9;
    assert_int_equal(pd_api_classify(0, CURLE_RECV_ERROR, NULL, 0, &api), 0);
    struct pd_retry_input in = ambiguous_input(&api, 10, at, &clock);
    pd_retry_decide(&pw, &in, &d);
    assert_int_equal(d.err, PD_EAMBIGUOUS);
    assert_non_null(strstr(d.message, "sent whole 10 times"));
    assert_non_null(strstr(d.message, "at 07:27:00.123Z, "));
    assert_non_null(strstr(d.message, ", 07:27:07.123Z, UTC)"));
    assert_null(strstr(d.message, "07:28:00.123Z"));
    pd_api_result_cleanup(&api);
}

/* After a 401: the first refusal logs in at once, fresh tokens refused in a row back off. */
static void relogin_wait(void **state)
{
    (void)state;
    struct rnd max = {UINT32_MAX, false}, zero = {0, false};
    struct pd_clock hi = {.mono_ms = no_time, .wall_ms = no_time, .random = rnd_next, .arg = &max};
    struct pd_clock lo = {.mono_ms = no_time, .wall_ms = no_time, .random = rnd_next, .arg = &zero};
    uint64_t delay = 99;

    assert_false(pd_retry_relogin_wait(&limits, 0, &hi, &delay));
    assert_int_equal(delay, 0);
    assert_true(pd_retry_relogin_wait(&limits, 1, &hi, &delay));
    assert_int_equal(delay, BASE_MS);
    assert_true(pd_retry_relogin_wait(&limits, 1, &lo, &delay));
    assert_int_equal(delay, 0);
    assert_true(pd_retry_relogin_wait(&limits, 3, &hi, &delay));
    assert_int_equal(delay, 4 * BASE_MS);
    assert_true(pd_retry_relogin_wait(&limits, 40, &hi, &delay));
    assert_int_equal(delay, CAP_MS);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, decide_table, give_up_words, give_up_names_first_times,
                        relogin_wait);
}
