/*
 * The request engine (include/pd_client.h). Each request is a small state machine whose state
 * changes only in set_state(), which traces every transition at debug level
 * (event=request_state):
 *
 *   NEW --submit--> BACKOFF (0 ms, so DONE never runs inside submit) --> WAIT_AUTH ...
 *   WAIT_AUTH --token ready--> WAIT_SLOT --limiter grants--> IN_FLIGHT --answer--> classify
 *   (with a cluster: WAIT_SLOT --limiter grants--> WAIT_GRANT --cluster permit--> IN_FLIGHT)
 *   (pd_api), then do what pd_retry decides:
 *     DONE_OK / REJECT / RESPLIT / GIVE_UP / FATAL -> DONE
 *     RETRY_AFTER -> BACKOFF (own timer; 429/503 also pause the account) -> WAIT_AUTH
 *     RELOGIN     -> drop the token once -> WAIT_AUTH (one shared login) -> ...
 *
 * WAIT_SLOT is two FIFOs, the other requests and the polls; pd_limiter_next chooses between
 * their heads.
 */
#include "pd_client.h"

#include "pd_auth.h"
#include "pd_clock.h"
#include "pd_cluster.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_http.h"
#include "pd_limiter.h"
#include "pd_list.h"
#include "pd_log.h"
#include "pd_metrics.h"
#include "pd_retry.h"

#include <curl/curl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* NEW only until submit hands the request to the loop (as BACKOFF, a zero timer). */
enum req_state { NEW, WAIT_AUTH, WAIT_SLOT, IN_FLIGHT, BACKOFF, DONE, WAIT_GRANT };

struct req {
    uv_timer_t timer; /* backoff; its close callback frees the request */
    struct pd_client *c;
    enum req_state state;
    char *method, *url;
    char *context; /* the caller's key=value fields for event lines, or NULL */
    const char *body;
    size_t body_len;
    bool no_auth;
    bool poll;
    bool deferred; /* a poll held back by the share once: counted */
    pd_client_done_fn done;
    void *arg;
    struct pd_auth_wait auth_wait;
    struct pd_cluster_ask ask; /* WAIT_GRANT: the cluster's permit (timer: the next ask) */
    uint64_t permit;           /* the cluster's permit it holds, 0: none */
    struct pd_http_xfer *xfer;
    unsigned generation; /* of the credentials the request was sent with */
    unsigned attempts, retries;
    unsigned ambiguous;          /* attempts sent whole without an answer */
    uint64_t ambiguous_at[PD_RETRY_AMBIGUOUS_TIMES]; /* wall times of the first of them */
    uint64_t first_ms; /* monotonic time of submission, for max_retry_time */
    uint64_t failing_since_ms; /* monotonic time of its first retryable failure; 0: none */
    long last_status;          /* of its last answer, 0: none */
    uint64_t slot_since_ms;    /* monotonic time it began waiting in WAIT_SLOT */
    struct req *next, *prev;           /* all live requests */
    struct req *slot_next, *slot_prev; /* the limiter's FIFO (of polls for a poll) */
};

struct pd_client {
    uv_loop_t *loop;
    const struct pd_patchworks *pw;
    const struct pd_clock *clock;
    struct pd_http *http;
    struct pd_auth *auth;
    struct pd_limiter limiter;
    uv_timer_t pace_timer;
    uv_timer_t hold; /* active while a request lives: a loop whose other handles (a
                      * one-shot command's cluster) are unref'd runs until they are done */
    struct req *reqs;
    struct req *slot_head, *slot_tail; /* waiting for the limiter, polls aside */
    struct req *poll_head, *poll_tail; /* polls waiting for the limiter */
    struct pd_client_stats stats;
    void (*note_fn)(void *arg, const char *line);
    void (*event_fn)(void *arg, enum pd_log_level level, const char *line);
    void *note_arg;
    struct pd_metrics *metrics;
    struct pd_cluster *cluster;
    unsigned open_handles;
    bool closing;
    bool http_closed;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void advance(struct req *r);
static void pump(struct pd_client *c);

static const char *state_name(enum req_state s)
{
    static const char *const names[] = {"new",     "wait-auth", "wait-slot", "in-flight",
                                        "backoff", "done",      "wait-grant"};
    return names[s];
}

void pd_client_note(struct pd_client *c, enum pd_log_level level, const char *line,
                    const char *words)
{
    if (c->event_fn)
        c->event_fn(c->note_arg, level, line);
    if (c->note_fn)
        c->note_fn(c->note_arg, words);
}

/*
 * URL as it may be logged, quoted for a key=value field: without user:password@ and without
 * its query or fragment, which may carry what is not the log's to keep (the start URL has
 * neither, but start_url and lookups are configured by hand).
 */
static const char *loggable_url(const char *url, char *buf, size_t len)
{
    char plain[1024];
    const char *sep = strstr(url, "://");
    size_t end = strcspn(url, "?#");
    size_t scheme = sep && (size_t)(sep - url) < end ? (size_t)(sep - url) + 3 : 0;
    size_t auth_end = scheme + strcspn(url + scheme, "/?#");
    size_t from = scheme;

    for (size_t i = scheme; i < auth_end; i++)
        if (url[i] == '@')
            from = i + 1;
    snprintf(plain, sizeof(plain), "%.*s%.*s", (int)scheme, url, (int)(end - from), url + from);
    return pd_log_quote(plain, buf, len);
}

/* The caller's fields for an event line about R, or "". */
static const char *context_of(const struct req *r)
{
    return r->context ? r->context : "";
}

static void maybe_free(struct pd_client *c)
{
    if (!c->closing || c->open_handles > 0 || !c->http_closed)
        return;
    void (*cb)(void *) = c->on_closed;
    void *arg = c->closed_arg;
    pd_limiter_cleanup(&c->limiter);
    free(c);
    if (cb)
        cb(arg);
}

static void on_http_closed(void *arg)
{
    struct pd_client *c = arg;
    c->http_closed = true;
    maybe_free(c);
}

static void on_handle_closed(uv_handle_t *h)
{
    struct pd_client *c = h->data;
    c->open_handles--;
    maybe_free(c);
}

static void on_req_closed(uv_handle_t *h)
{
    struct req *r = (struct req *)h;
    struct pd_client *c = r->c;
    free(r->method);
    free(r->url);
    free(r->context);
    free(r);
    c->open_handles--;
    maybe_free(c);
}

static void slot_remove(struct pd_client *c, struct req *r)
{
    struct req **head = r->poll ? &c->poll_head : &c->slot_head;
    struct req **tail = r->poll ? &c->poll_tail : &c->slot_tail;
    if (r->slot_prev)
        r->slot_prev->slot_next = r->slot_next;
    else if (*head == r)
        *head = r->slot_next;
    if (r->slot_next)
        r->slot_next->slot_prev = r->slot_prev;
    else if (*tail == r)
        *tail = r->slot_prev;
    r->slot_next = r->slot_prev = NULL;
}

/*
 * The only place a request changes state: leaving a state undoes what entering it set up
 * (queue membership, timers), so no request is ever in two queues. Each change is traced at
 * debug level.
 */
static void set_state(struct req *r, enum req_state next)
{
    struct pd_client *c = r->c;
    char qurl[1024];

    if (pd_log_enabled(PD_LOG_DEBUG))
        pd_log(PD_LOG_DEBUG, "event=request_state%s%s method=%s from=%s to=%s url=%s",
               r->context ? " " : "", context_of(r), r->method, state_name(r->state),
               state_name(next), loggable_url(r->url, qurl, sizeof(qurl)));
    switch (r->state) {
    case WAIT_AUTH:
        pd_auth_cancel_wait(c->auth, &r->auth_wait);
        break;
    case WAIT_SLOT:
        slot_remove(c, r);
        break;
    case BACKOFF:
        uv_timer_stop(&r->timer);
        break;
    case WAIT_GRANT:
        uv_timer_stop(&r->timer);
        pd_cluster_gate_cancel(c->cluster, &r->ask);
        break;
    case NEW:
    case IN_FLIGHT:
    case DONE:
        break;
    }
    r->state = next;
    if (next == WAIT_SLOT) {
        r->slot_since_ms = c->clock->mono_ms(c->clock->arg);
        if (r->poll)
            PD_LIST_APPEND_BY(c->poll_head, c->poll_tail, r, slot_prev, slot_next);
        else
            PD_LIST_APPEND_BY(c->slot_head, c->slot_tail, r, slot_prev, slot_next);
    }
}

/* The request's slot is free again; a poll's share counts on for a window from now. */
static void release(struct req *r)
{
    struct pd_client *c = r->c;
    uint64_t now = c->clock->mono_ms(c->clock->arg);
    pd_limiter_release(&c->limiter, now);
    if (r->poll)
        pd_limiter_poll_done(&c->limiter, now);
    if (r->permit)
        pd_cluster_gate_done(c->cluster, r->permit);
    r->permit = 0;
}

/* Final outcome: reported once, then the request's memory goes with its timer's close. */
static void finish(struct req *r, int err, const char *message, const struct pd_api_result *api,
                   const char *body, size_t body_len)
{
    struct pd_client *c = r->c;
    struct pd_client_result res;
    if (r->state == DONE)
        return;
    struct pd_http_xfer *x = r->state == IN_FLIGHT ? r->xfer : NULL;
    r->xfer = NULL;
    bool granting = r->state == WAIT_GRANT;
    set_state(r, DONE); /* first: the cancel callback below must not act on this request */
    if (x || granting) {
        if (x)
            pd_http_cancel(x);
        release(r); /* the local slot a request waiting for the cluster holds, too */
    }
    PD_LIST_UNLINK(c->reqs, r);
    if (!c->reqs)
        uv_timer_stop(&c->hold);
    memset(&res, 0, sizeof(res));
    res.err = err;
    res.message = err ? message : NULL;
    if (api)
        res.api = *api;
    res.body = body;
    res.body_len = body_len;
    res.attempts = r->attempts;
    res.ambiguous = r->ambiguous;
    r->done(r->arg, &res);
    uv_close((uv_handle_t *)&r->timer, on_req_closed);
    if (!c->closing)
        pump(c);
}

static void on_auth_ready(void *arg, int err, const char *message)
{
    struct req *r = arg;
    if (err) {
        finish(r, err, message, NULL, NULL, 0);
        return;
    }
    advance(r);
}

/* Waits for credentials, then for the limiter. */
static void advance(struct req *r)
{
    struct pd_client *c = r->c;
    unsigned gen;
    if (!r->no_auth && !pd_auth_header(c->auth, &gen)) {
        set_state(r, WAIT_AUTH);
        pd_auth_wait(c->auth, &r->auth_wait, on_auth_ready, r);
        return;
    }
    set_state(r, WAIT_SLOT);
    pump(c);
}

static void on_backoff_done(uv_timer_t *t)
{
    advance((struct req *)t);
}

static void on_http_done(void *arg, const struct pd_http_response *resp);

static void start(struct req *r)
{
    struct pd_client *c = r->c;
    struct pd_http_request hr = {
        .method = r->method, .url = r->url, .body = r->body, .body_len = r->body_len};
    if (!r->no_auth) {
        hr.authorization = pd_auth_header(c->auth, &r->generation);
        if (!hr.authorization) {
            /* The token expired while waiting for a slot. */
            release(r);
            advance(r);
            return;
        }
    }
    set_state(r, IN_FLIGHT);
    r->attempts++;
    c->stats.sent++;
    if (r->poll) {
        c->stats.polls++;
        pd_metrics_count(c->metrics, PD_METRICS_POLLS);
    }
    int rc = pd_http_send(c->http, &hr, on_http_done, r, &r->xfer);
    if (rc) {
        release(r);
        finish(r, rc, pd_strerror(rc), NULL, NULL, 0);
    }
}

static void ask_cluster(struct req *r);

static void on_grant_timer(uv_timer_t *t)
{
    struct req *r = (struct req *)t;
    pd_cluster_gate_ask(r->c->cluster, &r->ask);
}

/* The cluster's answer: a permit (start now) or how long to wait before asking again. */
static void on_grant(struct pd_cluster_ask *a, int64_t wait_ms, uint64_t permit)
{
    struct req *r = (struct req *)((char *)a - offsetof(struct req, ask));
    if (r->state != WAIT_GRANT)
        return;
    if (wait_ms > 0) {
        uv_timer_start(&r->timer, on_grant_timer, (uint64_t)wait_ms, 0);
        return;
    }
    r->permit = permit;
    start(r);
    /* Not from pump's loop: a request that gave its slot back (its token ran out meanwhile)
     * must let the next one, maybe the login it now waits for, have it. */
    if (r->state != IN_FLIGHT && !r->c->closing)
        pump(r->c);
}

/* R holds a local slot; it starts once the cluster gives it a permit. */
static void ask_cluster(struct req *r)
{
    set_state(r, WAIT_GRANT);
    r->ask.answer = on_grant;
    pd_cluster_gate_ask(r->c->cluster, &r->ask);
}

static void on_pace_timer(uv_timer_t *t)
{
    pump(t->data);
}

/* Starts waiting requests in order, polls after the others, while the limiter allows. */
static void pump(struct pd_client *c)
{
    while ((c->slot_head || c->poll_head) && !c->closing) {
        struct pd_limiter_queue q = {
            .requests = c->slot_head != NULL,
            .polls = c->poll_head != NULL,
            .poll_since_ms = c->poll_head ? c->poll_head->slot_since_ms : 0,
        };
        enum pd_limiter_pick pick;
        bool held;
        int64_t wait =
            pd_limiter_next(&c->limiter, c->clock->mono_ms(c->clock->arg), &q, &pick, &held);
        if (held && !c->poll_head->deferred) {
            c->poll_head->deferred = true;
            c->stats.polls_deferred++;
            pd_metrics_count(c->metrics, PD_METRICS_POLLS_DEFERRED);
        }
        if (wait == PD_LIMITER_BUSY)
            return; /* a release calls pump again */
        if (wait > 0) {
            uv_timer_start(&c->pace_timer, on_pace_timer, (uint64_t)wait, 0);
            return;
        }
        struct req *r = pick == PD_LIMITER_POLL ? c->poll_head : c->slot_head;
        if (c->cluster)
            ask_cluster(r);
        else
            start(r);
    }
}

/* Tells the retry (D: RETRY_AFTER) and waits as decided. */
static void retry_later(struct req *r, const struct pd_api_result *api,
                        const struct pd_retry_decision *d)
{
    struct pd_client *c = r->c;
    char line[4096], words[768], status[32] = "", qreason[1024], qurl[1024];

    if (api->status)
        snprintf(status, sizeof(status), " status=%ld", api->status);
    snprintf(line, sizeof(line),
             "event=retry%s%s attempt=%u delay_ms=%llu retry_after=%s%s%s reason=%s url=%s",
             r->context ? " " : "", context_of(r), r->attempts, (unsigned long long)d->delay_ms,
             d->retry_after ? "true" : "false", status,
             d->ambiguous ? " ambiguous=true possible_duplicate=\"the body was sent whole; the "
                            "server may have started a flow run\""
                          : "",
             pd_log_quote(api->message ? api->message : "no answer", qreason, sizeof(qreason)),
             loggable_url(r->url, qurl, sizeof(qurl)));
    snprintf(words, sizeof(words), "retry in %llu.%03llu s%s: %s",
             (unsigned long long)(d->delay_ms / 1000), (unsigned long long)(d->delay_ms % 1000),
             d->retry_after ? " (Retry-After)" : "", api->message ? api->message : "no answer");
    pd_client_note(c, d->ambiguous ? (enum pd_log_level)(PD_LOG_WARN | PD_LOG_EVERY) : PD_LOG_WARN,
                   line, words);
    set_state(r, BACKOFF);
    uv_timer_start(&r->timer, on_backoff_done, d->delay_ms, 0);
}

/* A 401 to a data request: the token is dropped and the request waits for the next one. */
static void relogin(struct req *r, const struct pd_api_result *api,
                    const struct pd_http_response *resp)
{
    struct pd_client *c = r->c;
    const char *msg;
    unsigned suspect;
    uint64_t delay;

    c->stats.reauths++;
    pd_metrics_count(c->metrics, PD_METRICS_REAUTHS);
    if (pd_auth_refused(c->auth, r->generation, &msg, &suspect) != 0) {
        finish(r, PD_EAUTH, msg, api, resp->body, resp->body_len);
        return;
    }
    if (!pd_retry_relogin_wait(c->pw, suspect, c->clock, &delay)) {
        advance(r);
        return;
    }
    char line[4096], words[160], qurl[1024];
    snprintf(line, sizeof(line), "event=token_refused%s%s refused_in_row=%u delay_ms=%llu url=%s",
             r->context ? " " : "", context_of(r), suspect, (unsigned long long)delay,
             loggable_url(r->url, qurl, sizeof(qurl)));
    snprintf(words, sizeof(words),
             "a fresh token was refused (%u in a row); logging in again in %llu ms", suspect,
             (unsigned long long)delay);
    pd_client_note(c, PD_LOG_WARN, line, words);
    set_state(r, BACKOFF);
    uv_timer_start(&r->timer, on_backoff_done, delay, 0);
}

/* Books what decision D counts (retries, ambiguous attempts, the account's pause). */
static void account_for(struct req *r, const struct pd_retry_decision *d, uint64_t now,
                        uint64_t wall)
{
    struct pd_client *c = r->c;
    if (!d->retryable)
        return;
    c->stats.retries++;
    pd_metrics_count(c->metrics, PD_METRICS_RETRIES);
    r->retries++;
    if (!r->failing_since_ms)
        r->failing_since_ms = now ? now : 1;
    if (d->pause_account) {
        pd_limiter_pause(&c->limiter, now, d->delay_ms);
        if (c->cluster)
            pd_cluster_gate_pause(c->cluster, d->delay_ms);
    }
    if (d->ambiguous) {
        if (r->ambiguous < PD_RETRY_AMBIGUOUS_TIMES)
            r->ambiguous_at[r->ambiguous] = wall;
        r->ambiguous++;
        c->stats.ambiguous++;
        pd_metrics_count(c->metrics, PD_METRICS_AMBIGUOUS);
    }
}

/* Classifies the answer, asks pd_retry what it means, and carries that out. */
static void on_http_done(void *arg, const struct pd_http_response *resp)
{
    struct req *r = arg;
    struct pd_client *c = r->c;
    struct pd_api_result api;
    struct pd_retry_decision d;

    if (r->state != IN_FLIGHT)
        return; /* canceled by finish() */
    r->xfer = NULL;
    release(r);
    if (resp->curl_code == CURLE_ABORTED_BY_CALLBACK) {
        finish(r, PD_ECANCELED, "canceled", NULL, NULL, 0);
        return;
    }
    pd_metrics_response(c->metrics, resp->status);
    r->last_status = resp->status;
    if (pd_api_classify(resp->status, resp->curl_code, resp->body, resp->body_len, &api) != 0) {
        finish(r, PD_ENOMEM, pd_strerror(PD_ENOMEM), NULL, NULL, 0);
        return;
    }
    uint64_t now = c->clock->mono_ms(c->clock->arg), wall = c->clock->wall_ms(c->clock->arg);
    struct pd_retry_input in = {
        .api = &api,
        .curl_error = resp->error,
        .retry_after = resp->retry_after,
        .body_sent = resp->body_sent,
        .login = r->no_auth,
        .attempts = r->attempts,
        .retries = r->retries,
        .ambiguous = r->ambiguous,
        .ambiguous_at = r->ambiguous_at,
        .elapsed_ms = now - r->first_ms,
        .now_wall_ms = wall,
        .clock = c->clock,
    };
    pd_retry_decide(c->pw, &in, &d);
    account_for(r, &d, now, wall);
    switch (d.action) {
    case PD_RETRY_DONE_OK:
        if (!r->no_auth)
            pd_auth_proven(c->auth, r->generation);
        finish(r, 0, NULL, &api, resp->body, resp->body_len);
        break;
    case PD_RETRY_AFTER:
        retry_later(r, &api, &d);
        break;
    case PD_RETRY_RELOGIN:
        relogin(r, &api, resp);
        break;
    case PD_RETRY_RESPLIT:
    case PD_RETRY_REJECT:
    case PD_RETRY_GIVE_UP:
    case PD_RETRY_FATAL:
        finish(r, d.err, d.message, &api, resp->body, resp->body_len);
        break;
    }
    pd_api_result_cleanup(&api);
    if (!c->closing)
        pump(c);
}

int pd_client_create(uv_loop_t *loop, const struct pd_client_opts *opts, struct pd_client **out)
{
    int rc = PD_ENOMEM;
    struct pd_client *c;
    const struct pd_patchworks *pw = opts->pw;

    *out = NULL;
    c = calloc(1, sizeof(*c));
    if (!c)
        return PD_ENOMEM;
    c->loop = loop;
    c->pw = pw;
    c->clock = opts->clock ? opts->clock : pd_clock_system();
    c->note_fn = opts->note;
    c->event_fn = opts->event;
    c->note_arg = opts->note_arg;
    c->metrics = opts->metrics;
    c->cluster = opts->cluster;
    struct pd_http_opts ho = {
        .timeout_ms = pw->timeout_ms,
        .tls_verify = pw->tls_verify,
        .ca_file = pw->ca_file,
        .max_connections = pw->concurrency ? (long)pw->concurrency : 0,
    };
    /* A stall is judged over a window no longer than the whole request may take. */
    if (pw->timeout_ms && pw->timeout_ms / 1000 < 30) {
        ho.low_speed_bytes = 1;
        ho.low_speed_time_s = pw->timeout_ms / 1000 ? (long)(pw->timeout_ms / 1000) : 1;
    }
    if ((rc = pd_limiter_init_window(&c->limiter, pw->rate_limit, pw->rate_window_ms, pw->concurrency,
                              c->clock->mono_ms(c->clock->arg))) != 0)
        goto fail_limiter;
    if ((rc = pd_limiter_set_poll_share(&c->limiter, opts->poll_share)) != 0)
        goto fail_http; /* frees the limiter */
    if ((rc = pd_http_create(loop, &ho, &c->http)) != 0)
        goto fail_http;
    if ((rc = pd_auth_create(c, pw, opts->state_dir, c->clock, &c->auth)) != 0)
        goto fail_auth;
    if (c->cluster)
        pd_auth_set_cluster(c->auth, c->cluster);
    if (uv_timer_init(loop, &c->pace_timer) != 0) {
        rc = PD_ENOMEM;
        goto fail_timer;
    }
    c->pace_timer.data = c;
    uv_timer_init(loop, &c->hold); /* cannot fail once the first did */
    c->hold.data = c;
    c->open_handles = 2;
    *out = c;
    return 0;

fail_timer:
    pd_auth_destroy(&c->auth);
fail_auth:
    /* The engine frees itself from a close callback; the caller's loop run completes it. */
    pd_http_close(&c->http, NULL, NULL);
fail_http:
    pd_limiter_cleanup(&c->limiter);
fail_limiter:
    free(c);
    return rc;
}

#define HOLD_MS 3600000u

static void on_hold(uv_timer_t *t)
{
    (void)t; /* nothing to do: it only keeps the loop alive */
}

int pd_client_submit(struct pd_client *c, const struct pd_client_request *req,
                     pd_client_done_fn done, void *arg)
{
    struct req *r;
    if (c->closing)
        return PD_ECANCELED;
    r = calloc(1, sizeof(*r));
    if (!r)
        return PD_ENOMEM;
    r->method = strdup(req->method ? req->method : "GET");
    r->url = strdup(req->url);
    r->context = req->context && *req->context ? strdup(req->context) : NULL;
    if (!r->method || !r->url || (req->context && *req->context && !r->context) ||
        uv_timer_init(c->loop, &r->timer) != 0) {
        free(r->method);
        free(r->url);
        free(r->context);
        free(r);
        return PD_ENOMEM;
    }
    c->open_handles++;
    r->c = c;
    r->body = req->body;
    r->body_len = req->body_len;
    r->no_auth = req->no_auth;
    r->poll = req->poll && !req->no_auth;
    r->done = done;
    r->arg = arg;
    r->first_ms = c->clock->mono_ms(c->clock->arg);
    set_state(r, BACKOFF);
    r->next = c->reqs;
    if (c->reqs)
        c->reqs->prev = r;
    c->reqs = r;
    if (!uv_is_active((uv_handle_t *)&c->hold))
        uv_timer_start(&c->hold, on_hold, HOLD_MS, HOLD_MS);
    if (r->no_auth) {
        c->stats.logins++;
        pd_metrics_count(c->metrics, PD_METRICS_LOGINS);
    }
    /* Start from the loop, never inside the caller's stack: DONE must not run re-entrantly. */
    uv_timer_start(&r->timer, on_backoff_done, 0, 0);
    return 0;
}

struct pd_auth *pd_client_auth(struct pd_client *c)
{
    return c->auth;
}

uv_loop_t *pd_client_loop(struct pd_client *c)
{
    return c->loop;
}

const struct pd_clock *pd_client_clock(struct pd_client *c)
{
    return c->clock;
}

struct pd_client_stats pd_client_stats(const struct pd_client *c)
{
    struct pd_client_stats s = c->stats;
    for (const struct req *r = c->reqs; r; r = r->next) {
        if (r->state == IN_FLIGHT)
            s.in_flight++;
        else if (r->state != DONE)
            s.waiting++;
        if (r->failing_since_ms && (!s.failing_since_ms || r->failing_since_ms < s.failing_since_ms)) {
            s.failing_since_ms = r->failing_since_ms;
            s.last_failure_status = r->last_status;
        }
    }
    /* The window's answers as pd_limiter counts them, the expired ones left out. */
    uint64_t now = c->clock->mono_ms(c->clock->arg);
    const struct pd_limiter *l = &c->limiter;
    for (size_t i = 0; i < l->count; i++)
        s.window_used += l->starts[(l->head + l->nstarts - l->count + i) % l->nstarts] +
                             l->window_ms > now;
    s.window_used += l->inflight;
    s.window_limit = l->rate;
    s.window_ms = l->window_ms;
    s.paused_until_ms = l->pause_until_ms > now ? l->pause_until_ms : 0;
    return s;
}

size_t pd_client_retrying(const struct pd_client *c, struct pd_client_retrying *out, size_t max)
{
    size_t n = 0;
    for (const struct req *r = c->reqs; r; r = r->next) {
        if (r->state != BACKOFF)
            continue;
        if (n < max)
            out[n] = (struct pd_client_retrying){.arg = r->arg,
                                                 .attempts = r->attempts,
                                                 .last_status = r->last_status,
                                                 .due_in_ms = uv_timer_get_due_in(&r->timer)};
        n++;
    }
    return n;
}

void pd_client_close(struct pd_client **cp, void (*on_closed)(void *arg), void *arg)
{
    struct pd_client *c = cp ? *cp : NULL;
    if (!c)
        return;
    *cp = NULL;
    c->closing = true;
    c->on_closed = on_closed;
    c->closed_arg = arg;
    /* Canceling the login fails its waiters too; the list shrinks on every pass. */
    while (c->reqs)
        finish(c->reqs, PD_ECANCELED, "canceled", NULL, NULL, 0);
    pd_auth_destroy(&c->auth);
    pd_http_close(&c->http, on_http_closed, c);
    uv_timer_stop(&c->pace_timer);
    uv_close((uv_handle_t *)&c->pace_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->hold, on_handle_closed);
}
