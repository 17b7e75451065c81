/*
 * What to do with an answer: the one place that turns a classified answer (pd_api_classify)
 * and the request's history into a decision: report success, wait and send again (backoff or
 * the server's Retry-After, pausing the whole account on 429/503), log in again, cut the body
 * smaller, report a refusal, give up (max_retry_time, max_ambiguous_retries) or report that the
 * request can never work. The client (pd_client) only carries out what this module decides.
 * Pure: no I/O, no logging; time comes in as values and jitter from the clock's random source.
 */
#ifndef PD_RETRY_H
#define PD_RETRY_H

#include <stdbool.h>
#include <stdint.h>

struct pd_api_result;
struct pd_clock;
struct pd_patchworks;

/* Wall times of this many ambiguous attempts are named when giving up on them. */
#define PD_RETRY_AMBIGUOUS_TIMES 8

enum pd_retry_action {
    PD_RETRY_DONE_OK, /* 2xx: report success (err 0) */
    PD_RETRY_AFTER,   /* wait delay_ms, then send again */
    PD_RETRY_RELOGIN, /* 401 to a data request: drop the token, log in, send again */
    PD_RETRY_RESPLIT, /* 413: report PD_ETOOBIG, the caller cuts the body smaller */
    PD_RETRY_REJECT,  /* refused: PD_EREJECTED, or PD_EAUTH for the login's own 401 */
    PD_RETRY_GIVE_UP, /* still failing at a limit: PD_ELIMIT or PD_EAMBIGUOUS, words say which */
    PD_RETRY_FATAL,   /* can never work as configured: PD_ECONFIG (bad URL, TLS trust) */
};

struct pd_retry_input {
    const struct pd_api_result *api; /* the answer, classified: verdict, status, message */
    const char *curl_error;          /* curl's words for a failed transfer, or NULL */
    const char *retry_after;         /* the Retry-After header's value, or NULL */
    bool body_sent;                  /* the whole body was handed to the server */
    bool login;                      /* the login request itself (sent without credentials) */
    unsigned attempts;               /* HTTP requests made, this one included */
    unsigned retries;                /* retries before this answer (the backoff exponent) */
    unsigned ambiguous;              /* earlier attempts sent whole without an answer */
    /* Wall times (ms since the epoch) of the first min(ambiguous, PD_RETRY_AMBIGUOUS_TIMES)
     * of them; may be NULL when ambiguous is 0. */
    const uint64_t *ambiguous_at;
    uint64_t elapsed_ms;          /* since the request was submitted (monotonic) */
    uint64_t now_wall_ms;         /* now, for Retry-After dates and the ambiguous times */
    const struct pd_clock *clock; /* only its random source is used: the backoff's jitter */
};

struct pd_retry_decision {
    enum pd_retry_action action;
    /* What the caller is told when the action ends the request: 0, PD_EREJECTED, PD_ETOOBIG,
     * PD_EAUTH, PD_ECONFIG, PD_ELIMIT or PD_EAMBIGUOUS. 0 for AFTER and RELOGIN. */
    int err;
    /* Words for a non-zero err: the server's message, curl's words, or words[] below. Points
     * into the input's strings or into this struct (do not copy the struct while using it). */
    const char *message;
    /*
     * The answer was a transient failure (verdict RETRY): it counts as a retry even when a
     * limit makes the action GIVE_UP. Then delay_ms is the wait that was chosen (the
     * server's when retry_after), pause_account says that the whole account waits delay_ms
     * (429/503, also when this request gives up), and ambiguous says the body was sent whole
     * without an answer (the server may have acted on it), so it is counted as such.
     */
    bool retryable;
    uint64_t delay_ms;
    bool retry_after;
    bool pause_account;
    bool ambiguous;
    char words[900];
};

/* Decides what IN's answer means for its request. Fills *OUT. */
void pd_retry_decide(const struct pd_patchworks *pw, const struct pd_retry_input *in,
                     struct pd_retry_decision *out);

/*
 * After RELOGIN: SUSPECT is the number of fresh tokens refused in a row (pd_auth_refused).
 * Returns false when the login may run at once (0), else true and *DELAY_MS, the backoff that
 * keeps an account whose tokens are refused at once from being hammered with logins.
 */
bool pd_retry_relogin_wait(const struct pd_patchworks *pw, unsigned suspect,
                           const struct pd_clock *clock, uint64_t *delay_ms);

const char *pd_retry_action_name(enum pd_retry_action a);

#endif
