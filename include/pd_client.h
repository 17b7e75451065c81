/*
 * The one way requests reach Patchworks: every request of a process goes through one client,
 * which waits for a token (pd_auth), for the account's pace and a free slot (pd_limiter), sends
 * (pd_http), classifies the answer (pd_api_classify) and acts on it: retries with backoff
 * (pd_backoff) and Retry-After, pauses the whole account on 429/503, logs in again once on 401,
 * and reports to the caller only final outcomes. Nothing is dropped: RETRY has no attempt limit
 * unless max_retry_time is set.
 *
 * Polls (requests following a flow run, `poll`) share the account's rate with the rest: a
 * poll waits while any other request waits for the pace or a slot, and polls never take more
 * than poll_share percent of the rate window (ceil(rate_limit * share / 100), at least 1, per
 * rate_window). They never starve: when deliveries use less than the whole rate, polls use the
 * rest up to their share, and under a full delivery backlog a poll that has waited longer than
 * one rate window goes before the deliveries until the polls' share of the window is used. A
 * retry of a poll is a poll (see pd_limiter_next).
 */
#ifndef PD_CLIENT_H
#define PD_CLIENT_H

#include "pd_api.h"
#include "pd_log.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct pd_client;
struct pd_auth;
struct pd_clock;
struct pd_patchworks;
struct pd_metrics;

struct pd_client_opts {
    const struct pd_patchworks *pw; /* must outlive the client */
    const char *state_dir;          /* where the login token is kept; NULL: not kept */
    const struct pd_clock *clock;   /* NULL: the system clock */
    /* Optional: a line for a person about retries and logins, in words (never a secret). */
    void (*note)(void *arg, const char *line);
    void *note_arg;
    /*
     * Optional: the same happenings as log events, each at its level (a login is info, a retry
     * a warning). LINE is `event=NAME key=value ...` with its values quoted (pd_log_quote),
     * for pd_log(): `event=login expires_in=S`, `event=retry CONTEXT attempt=N delay_ms=D
     * retry_after=BOOL [status=S] reason=WORDS url=URL`, `event=token_refused CONTEXT
     * refused_in_row=N delay_ms=D url=URL`, `event=token_not_kept path=P step=S reason=WORDS`.
     * A URL is logged without credentials, query or fragment; no line holds a secret. Gets
     * note_arg.
     */
    void (*event)(void *arg, enum pd_log_level level, const char *line);
    struct pd_metrics *metrics; /* counts answers, retries, logins and polls; NULL: none */
    unsigned poll_share;        /* percent of the rate polls may take; 0: 25 */
    /*
     * Optional: the account's rate shared with other hosts (pd_cluster.h). A request that the
     * local limiter lets start also waits for a permit of the cluster; 429/503 pauses go to
     * every host. Must outlive the client. NULL: this host alone.
     */
    struct pd_cluster *cluster;
};

struct pd_client_request {
    const char *method; /* "GET", "POST", "PUT", "PATCH" or "DELETE" */
    const char *url;
    const char *body; /* borrowed until the done callback */
    size_t body_len;
    bool no_auth;     /* the login request itself */
    /*
     * What the request is for, as key=value fields with quoted values (`watch=orders
     * file="a b.xml" chunk=3`), put in every event line about it; copied. NULL: none. The
     * client reads nothing in it: it only passes the caller's words on.
     */
    const char *context;
    bool poll; /* follows a flow run: goes after the others, within poll_share */
};

struct pd_client_result {
    /*
     * 0: answered 2xx (api.verdict OK). PD_EREJECTED: refused (api.message, api.errors).
     * PD_ETOOBIG: 413, cut the body smaller. PD_EAUTH: credentials refused (a configuration
     * error; message says which). PD_ECONFIG: can never work as configured (bad URL, TLS).
     * PD_ELIMIT: still failing when max_retry_time ran out. PD_ECANCELED: client closed.
     */
    int err;
    const char *message;     /* words for a non-zero err, else NULL */
    struct pd_api_result api; /* the last answer, classified */
    const char *body;        /* the last answer's body (capped), valid during the callback */
    size_t body_len;
    unsigned attempts;       /* HTTP requests made for this request */
    unsigned ambiguous;      /* of them: body sent, no answer (each may have started a run) */
};

typedef void (*pd_client_done_fn)(void *arg, const struct pd_client_result *r);

struct pd_client_stats {
    uint64_t sent;    /* HTTP requests started, logins included */
    uint64_t retries; /* RETRY answers */
    uint64_t ambiguous; /* retries of requests whose body was sent without an answer */
    uint64_t logins;  /* login requests started */
    uint64_t reauths; /* 401 answers to data requests */
    uint64_t polls;   /* of the requests started: polls */
    uint64_t polls_deferred; /* polls held back by poll_share (each poll once) */
    /* Now: */
    uint64_t waiting;   /* requests waiting for a token, a slot or a retry */
    uint64_t in_flight; /* requests sent, not answered */
    uint64_t failing_since_ms; /* monotonic: the oldest retrying request's first failure; 0 */
    long last_failure_status;  /* that request's last HTTP status, 0: no answer */
    /* The account's pace (status): requests answered within the window plus those in flight,
     * of rate_limit per window (0: unlimited); paused until (monotonic, 429/503; 0: not). */
    uint64_t window_used, window_limit, window_ms;
    uint64_t paused_until_ms;
};

/* A request waiting for its next attempt after a retryable failure (status). */
struct pd_client_retrying {
    void *arg;           /* the submitter's ARG: tells whose request it is */
    unsigned attempts;   /* HTTP requests made for it so far */
    long last_status;    /* its last answer's HTTP status, 0: no answer */
    uint64_t due_in_ms;  /* when the next attempt goes */
};

int pd_client_create(uv_loop_t *loop, const struct pd_client_opts *opts, struct pd_client **out);

/* Queues a request; DONE runs exactly once, never from inside this call. */
int pd_client_submit(struct pd_client *c, const struct pd_client_request *req,
                     pd_client_done_fn done, void *arg);

struct pd_auth *pd_client_auth(struct pd_client *c);
uv_loop_t *pd_client_loop(struct pd_client *c);
const struct pd_clock *pd_client_clock(struct pd_client *c);
struct pd_client_stats pd_client_stats(const struct pd_client *c);
/* Fills OUT with up to MAX requests waiting to be tried again; returns how many there are. */
size_t pd_client_retrying(const struct pd_client *c, struct pd_client_retrying *out, size_t max);
/*
 * Tells the caller something the client (or its login, pd_auth) did: LINE, an event for the
 * log at LEVEL (opts.event), and WORDS, the same for a person (opts.note).
 */
void pd_client_note(struct pd_client *c, enum pd_log_level level, const char *line,
                    const char *words);

/* Cancels every request (each DONE runs with PD_ECANCELED), closes all handles, frees the
 * client, then calls ON_CLOSED(ARG). NULLs *C. NULL is a no-op. */
void pd_client_close(struct pd_client **c, void (*on_closed)(void *arg), void *arg);

#endif
