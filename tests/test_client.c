/*
 * Unit tests of the client (pd_client): it carries out what pd_retry decides. The emulator
 * (pdmock) runs in-process on a free loopback port and answers from a script; the client runs
 * on its own libuv loop with a fake clock whose random source is 0, so every backoff is 0 ms and
 * nothing sleeps beyond the loop's own timers. Each test checks the final result, the event lines
 * and what the emulator received.
 */
#include "testlib.h"

#include "pd_client.h"
#include "pd_clock.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_metrics.h"
#include "pd_mock.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define USER "ops@example.com"
#define PASSWORD "s3cret-pw"
#define BODY "{\"payload\":\"<a/>\"}"
/* Real time a test may take at most: a guard, never a wait. */
#define GUARD_MS 20000

struct fixture {
    struct pd_mock *mock;
    uv_loop_t loop;
    uv_timer_t guard;
    bool timed_out;
    struct pd_patchworks pw;
    struct pd_clock clock;
    uint64_t mono, wall;
    uint64_t bump_on_retry_ms; /* the fake monotonic clock moves this much per retry */
    struct pd_client *client;
    char login_url[128], start_url[160];
    char events[16384];
    size_t events_len;
    /* The last result: */
    bool done, closed;
    int err;
    char message[1024];
    unsigned attempts, ambiguous;
    long status;
    /* Requests sent with send_tagged(): the tags of those answered, in order. */
    char order[16];
    size_t norder;
    unsigned poll_share;
    struct pd_metrics *metrics;
};

static uint64_t fake_mono(void *arg)
{
    return ((struct fixture *)arg)->mono;
}

static uint64_t fake_wall(void *arg)
{
    return ((struct fixture *)arg)->wall;
}

static uint32_t fake_random(void *arg)
{
    (void)arg;
    return 0;
}

static void on_event(void *arg, enum pd_log_level level, const char *line)
{
    struct fixture *f = arg;
    (void)level;
    pd_test_add_line(f->events, sizeof(f->events), &f->events_len, line);
    if (!strncmp(line, "event=retry ", 12))
        f->mono += f->bump_on_retry_ms;
}

static void on_guard(uv_timer_t *t)
{
    ((struct fixture *)t->data)->timed_out = true;
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct pd_mock_options mo;
    char *err = NULL;

    assert_non_null(f);
    pd_mock_options_init(&mo);
    mo.user = USER;
    mo.password = PASSWORD;
    mo.quiet = getenv("PD_TEST_VERBOSE") == NULL;
    if (pd_mock_create(&mo, &f->mock, &err) != 0)
        fail_msg("emulator: %s", err ? err : "?");
    snprintf(f->login_url, sizeof(f->login_url), "http://127.0.0.1:%u/api/v1/login",
             (unsigned)pd_mock_port(f->mock));
    snprintf(f->start_url, sizeof(f->start_url), "http://127.0.0.1:%u/api/v1/flows/7/start",
             (unsigned)pd_mock_port(f->mock));
    f->pw.auth = PD_AUTH_PASSWORD;
    f->pw.email = USER;
    f->pw.password = PASSWORD;
    f->pw.login_url = f->login_url;
    f->pw.login_field = PD_LOGIN_EMAIL;
    f->pw.concurrency = 2;
    f->pw.timeout_ms = 10000;
    f->pw.retry_base_ms = 1000;
    f->pw.retry_cap_ms = 60000;
    f->mono = 1000000;
    f->wall = 1700000000000ull;
    f->clock = (struct pd_clock){fake_mono, fake_wall, fake_random, f};
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->guard), 0);
    f->guard.data = f;
    *state = f;
    return 0;
}

/* Creates the client once the test has set its limits. */
static void start_client(struct fixture *f)
{
    struct pd_client_opts o = {.pw = &f->pw, .clock = &f->clock, .event = on_event, .note_arg = f,
                               .poll_share = f->poll_share, .metrics = f->metrics};
    assert_int_equal(pd_client_create(&f->loop, &o, &f->client), 0);
}

static void on_closed(void *arg)
{
    ((struct fixture *)arg)->closed = true;
}

/* Closes the client and proves the loop closes clean: every handle gone. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->client)
        pd_client_close(&f->client, on_closed, f);
    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    pd_mock_destroy(&f->mock);
    pd_metrics_destroy(&f->metrics);
    free(f);
    return 0;
}

static void on_done(void *arg, const struct pd_client_result *r)
{
    struct fixture *f = arg;
    f->done = true;
    f->err = r->err;
    snprintf(f->message, sizeof(f->message), "%s", r->message ? r->message : "");
    f->attempts = r->attempts;
    f->ambiguous = r->ambiguous;
    f->status = r->api.status;
}

/* Sends one start-flow request to URL (NULL: the emulator's) and runs the loop until it ends. */
static void send_one(struct fixture *f, const char *url)
{
    struct pd_client_request req = {
        .method = "POST",
        .url = url ? url : f->start_url,
        .body = BODY,
        .body_len = strlen(BODY),
        .context = "test=client",
    };
    f->done = false;
    f->timed_out = false;
    assert_int_equal(pd_client_submit(f->client, &req, on_done, f), 0);
    uv_timer_start(&f->guard, on_guard, GUARD_MS, 0);
    while (!f->done && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->guard);
    if (!f->done)
        fail_msg("no result within %d ms; events:\n%s", GUARD_MS, f->events);
}

static void script(struct fixture *f, const char *list)
{
    char *err = NULL;
    if (pd_mock_script_set(f->mock, list, &err) != 0)
        fail_msg("script %s: %s", list, err ? err : "?");
}

static struct pd_mock_stats mock_stats(struct fixture *f)
{
    struct pd_mock_stats s;
    pd_mock_stats(f->mock, &s);
    return s;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* What the emulator counted: start-flow requests, flow runs started and logins. */
static void expect_mock(struct fixture *f, uint64_t start_flow, uint64_t runs, uint64_t logins)
{
    struct pd_mock_stats s = mock_stats(f);
    assert_int_equal(s.start_flow, start_flow);
    assert_int_equal(s.runs, runs);
    assert_int_equal(s.logins, logins);
}

/*
 * Starts the client, has the emulator answer the requests by LIST and sends one; it must end
 * with ERR after ATTEMPTS attempts. Returns F.
 */
static struct fixture *run_script(struct fixture *f, const char *list, int err, unsigned attempts)
{
    start_client(f);
    script(f, list);
    send_one(f, NULL);
    assert_int_equal(f->err, err);
    assert_int_equal(f->attempts, attempts);
    return f;
}

/* 5xx answers are retried until one is accepted; each retry is told. */
static void retry_until_ok(void **state)
{
    struct fixture *f = run_script(*state, "500,502,504", 0, 4);
    assert_int_equal(f->status, 200);
    assert_int_equal(f->ambiguous, 0);
    expect_mock(f, 4, 1, 1);
    assert_int_equal(count(f->events, "event=retry test=client attempt="), 3);
    assert_non_null(strstr(f->events, "attempt=1 delay_ms=0 retry_after=false status=500 "
                                      "reason=\"HTTP 500: Server Error\""));
    assert_non_null(strstr(f->events, "attempt=2 delay_ms=0 retry_after=false status=502"));
    assert_non_null(strstr(f->events, "attempt=3 delay_ms=0 retry_after=false status=504"));
    struct pd_client_stats cs = pd_client_stats(f->client);
    assert_int_equal(cs.retries, 3);
    assert_int_equal(cs.sent, 5); /* the login and four attempts */
    assert_int_equal(cs.waiting + cs.in_flight, 0);
}

/* The server's Retry-After is followed (0 s here, so nothing waits). */
static void retry_after_followed(void **state)
{
    struct fixture *f = run_script(*state, "429:0,503:0", 0, 3);
    assert_non_null(strstr(f->events, "attempt=1 delay_ms=0 retry_after=true status=429"));
    assert_non_null(strstr(f->events, "attempt=2 delay_ms=0 retry_after=true status=503"));
    assert_int_equal(mock_stats(f).start_flow, 3);
}

/* Refusals end the request at once, each with its code and the server's words. */
static void refusals_final(void **state)
{
    struct fixture *f = *state;
    static const struct {
        const char *step;
        int err;
        long status;
    } rows[] = {
        {"422", PD_EREJECTED, 422}, {"413", PD_ETOOBIG, 413}, {"403", PD_EREJECTED, 403},
        {"404", PD_EREJECTED, 404}, {"408", 0, 200}, /* 408 is retried, then ok */
    };
    start_client(f);
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        uint64_t before = mock_stats(f).start_flow;
        script(f, rows[i].step);
        send_one(f, NULL);
        if (f->err != rows[i].err || f->status != rows[i].status)
            fail_msg("%s: err %d status %ld (%s)", rows[i].step, f->err, f->status, f->message);
        assert_int_equal(f->attempts, rows[i].err ? 1 : 2);
        assert_int_equal(mock_stats(f).start_flow - before, f->attempts);
        if (rows[i].err)
            assert_true(strncmp(f->message, "HTTP ", 5) == 0);
    }
}

/* A URL that can never work: fatal at once, in curl's words, never retried. */
static void fatal_url(void **state)
{
    struct fixture *f = *state;
    start_client(f);
    send_one(f, "bogus://127.0.0.1/x");
    assert_int_equal(f->err, PD_ECONFIG);
    assert_int_equal(f->attempts, 1);
    assert_true(f->message[0] != '\0');
    assert_null(strstr(f->events, "event=retry"));
    assert_int_equal(mock_stats(f).start_flow, 0);
}

/* max_retry_time: the fake clock moves 10 s per retry; at 30 s of a 25 s limit it gives up. */
static void max_retry_time(void **state)
{
    struct fixture *f = *state;
    f->pw.max_retry_time_ms = 25000;
    f->bump_on_retry_ms = 10000;
    run_script(f, "500,500,500,500,500,500", PD_ELIMIT, 4);
    assert_string_equal(
        f->message, "gave up after 4 attempts in 30 s (max_retry_time): HTTP 500: Server Error");
    assert_int_equal(count(f->events, "event=retry "), 3);
    struct pd_mock_stats s = mock_stats(f);
    assert_int_equal(s.start_flow, 4);
    assert_int_equal(s.script_left, 2);
}

/* Dropped after the body arrived: ambiguous retries, told every time, bounded. */
static void ambiguous_bounded(void **state)
{
    struct fixture *f = *state;
    f->pw.max_ambiguous = 2;
    run_script(f, "drop,drop,drop,drop", PD_EAMBIGUOUS, 3);
    assert_int_equal(f->ambiguous, 3);
    assert_true(strncmp(f->message, "sent whole 3 times without an answer (", 38) == 0);
    assert_non_null(strstr(f->message, "(max_ambiguous_retries = 2)"));
    assert_int_equal(count(f->events, "ambiguous=true possible_duplicate="), 2);
    /*
     * The emulator got the body exactly 3 times, as counted: when a reused keep-alive
     * connection closes before any answer byte, libcurl would resend the request on a fresh
     * one by itself (it did, 4 times, while the body was POSTFIELDS); pd_http's body can no
     * longer be rewound once read, so every send is the client's own, counted one.
     */
    assert_int_equal(mock_stats(f).start_flow, 3);
    struct pd_client_stats cs = pd_client_stats(f->client);
    assert_int_equal(cs.ambiguous, 3);
    assert_int_equal(cs.retries, 3);
}

/* A 401 to a data request: one new login, then the request is sent again. */
static void relogin_once(void **state)
{
    struct fixture *f = run_script(*state, "401", 0, 2);
    expect_mock(f, 2, 1, 2);
    /* The first token was never proven: its refusal counts, but backs off 0 ms here. */
    assert_non_null(strstr(f->events, "event=token_refused test=client refused_in_row=1 "
                                      "delay_ms=0 url="));
    struct pd_client_stats cs = pd_client_stats(f->client);
    assert_int_equal(cs.reauths, 1);
    assert_int_equal(cs.logins, 2);
}

/* Fresh tokens refused in a row are counted; a proven token's refusal logs in at once. */
static void relogin_suspect_counting(void **state)
{
    struct fixture *f = run_script(*state, "401,401,401", 0, 4);
    assert_non_null(strstr(f->events, "refused_in_row=1 "));
    assert_non_null(strstr(f->events, "refused_in_row=2 "));
    assert_non_null(strstr(f->events, "refused_in_row=3 "));
    assert_int_equal(mock_stats(f).logins, 4);

    /* That token worked: the next 401 is a revocation, not a suspect token. */
    f->events_len = 0;
    f->events[0] = '\0';
    script(f, "401");
    send_one(f, NULL);
    assert_int_equal(f->err, 0);
    assert_int_equal(f->attempts, 2);
    assert_null(strstr(f->events, "event=token_refused"));
    assert_int_equal(mock_stats(f).logins, 5);
}

/* A request sent with send_tagged(): its answer appends TAG to the fixture's order. */
struct tagged {
    struct fixture *f;
    char tag;
};

static void on_tagged(void *arg, const struct pd_client_result *r)
{
    struct tagged *t = arg;
    assert_int_equal(r->err, 0);
    if (t->f->norder < sizeof(t->f->order) - 1)
        t->f->order[t->f->norder++] = t->tag;
}

/* Queues a start request tagged T, a poll when POLL; the loop is not run. */
static void send_tagged(struct fixture *f, struct tagged *t, bool poll)
{
    struct pd_client_request req = {
        .method = "POST",
        .url = f->start_url,
        .body = BODY,
        .body_len = strlen(BODY),
        .poll = poll,
    };
    t->f = f;
    assert_int_equal(pd_client_submit(f->client, &req, on_tagged, t), 0);
}

/* Runs the loop until N tagged requests were answered. */
static void run_until_answered(struct fixture *f, size_t n)
{
    f->timed_out = false;
    uv_timer_start(&f->guard, on_guard, GUARD_MS, 0);
    while (f->norder < n && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->guard);
    if (f->norder < n)
        fail_msg("%zu of %zu answered within %d ms; events:\n%s", f->norder, n, GUARD_MS,
                 f->events);
}

/* One slot: a delivery submitted after a poll still goes before it. */
static void delivery_before_poll(void **state)
{
    struct fixture *f = *state;
    struct tagged t[3] = {{.tag = 'a'}, {.tag = 'p'}, {.tag = 'b'}};
    f->pw.concurrency = 1;
    start_client(f);
    send_one(f, NULL); /* logged in */
    send_tagged(f, &t[0], false); /* takes the slot */
    send_tagged(f, &t[1], true);
    send_tagged(f, &t[2], false);
    run_until_answered(f, 3);
    assert_string_equal(f->order, "abp");
    struct pd_client_stats cs = pd_client_stats(f->client);
    assert_int_equal(cs.polls, 1);
    assert_int_equal(cs.polls_deferred, 0);
}

/*
 * A share of 2% of 80 a minute: 2 polls a window. The third waits for the window, counted
 * deferred once however often it is looked at, and goes once the fake clock moved a window on.
 */
static void poll_share_deferred_once(void **state)
{
    struct fixture *f = *state;
    struct tagged t[4] = {{.tag = '1'}, {.tag = '2'}, {.tag = '3'}, {.tag = 'd'}};
    f->pw.rate_limit = 80; /* burst 4: the login, one delivery and two polls */
    f->poll_share = 2;
    start_client(f);
    send_one(f, NULL);
    for (size_t i = 0; i < 3; i++)
        send_tagged(f, &t[i], true);
    run_until_answered(f, 2);
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT); /* looked at again: still one deferral */
    struct pd_client_stats cs = pd_client_stats(f->client);
    /* The first two polls go at once: either may be answered first. */
    assert_true(!strcmp(f->order, "12") || !strcmp(f->order, "21"));
    assert_int_equal(cs.polls, 2);
    assert_int_equal(cs.polls_deferred, 1);
    assert_int_equal(cs.waiting, 1);
    /* A window later the share is free again; the delivery wakes the queue. */
    f->mono += 60000;
    send_tagged(f, &t[3], false);
    run_until_answered(f, 4);
    cs = pd_client_stats(f->client);
    assert_int_equal(cs.polls, 3);
    assert_int_equal(cs.polls_deferred, 1);
    assert_int_equal(mock_stats(f).start_flow, 5);
}

/* A poll answered 503 is retried as a poll, and both are counted in the metrics. */
static void poll_retry_stays_poll(void **state)
{
    struct fixture *f = *state;
    struct pd_metrics_opts mo = {.clock = &f->clock};
    struct tagged t = {.tag = 'p'};
    char *text = NULL;
    size_t len;
    assert_int_equal(pd_metrics_create(&mo, &f->metrics), 0);
    start_client(f);
    script(f, "503:0");
    send_tagged(f, &t, true);
    run_until_answered(f, 1);
    struct pd_client_stats cs = pd_client_stats(f->client);
    assert_int_equal(cs.retries, 1);
    assert_int_equal(cs.polls, 2);
    assert_int_equal(cs.sent, 3); /* the login is not a poll */
    assert_int_equal(pd_metrics_render(f->metrics, &text, &len), 0);
    assert_non_null(strstr(text, "\npatchdrop_polls_total 2\n"));
    assert_non_null(strstr(text, "\npatchdrop_polls_deferred_total 0\n"));
    free(text);
}

int main(void)
{
    return PD_RUN_TESTS(setup, teardown, retry_until_ok, retry_after_followed, refusals_final,
                        fatal_url, max_retry_time, ambiguous_bounded, relogin_once,
                        relogin_suspect_counting, delivery_before_poll, poll_share_deferred_once,
                        poll_retry_stays_poll);
}
