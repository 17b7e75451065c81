/*
 * The Patchworks Core API as patchdrop uses it (see shared/patchworks-api.md): the URLs and
 * bodies of its requests, the reading of its answers, and the ONE function that decides what an
 * answer means for the request that got it. Pure: no I/O, no logging.
 */
#ifndef PD_API_H
#define PD_API_H

#include <stddef.h>
#include <stdint.h>

struct pd_patchworks;

enum pd_api_verdict {
    PD_API_OK,      /* 200/201: accepted */
    PD_API_RETRY,   /* 408, 429, 5xx, network failure, timeout: try again later */
    PD_API_REAUTH,  /* 401: log in again, then retry */
    PD_API_RESPLIT, /* 413: the body is too big for the server; cut it smaller */
    PD_API_REJECT,  /* 422 and every other 4xx/3xx: the server refuses this request */
    PD_API_FATAL,   /* the request can never work as configured (bad URL, TLS trust failure) */
};

struct pd_api_result {
    enum pd_api_verdict verdict;
    long status;   /* HTTP status, 0 when no answer arrived */
    int curl_code; /* CURLcode of the transfer */
    char *run_id;  /* OK: the flow-run id as text, NULL when the answer named none */
    char *body;    /* OK without a run id: the answer as received, for the user to read */
    char *message; /* not OK: what went wrong in words (the server's message when it sent one) */
    char *errors;  /* REJECT: the server's field errors as "field: text; field: text", or NULL */
};

const char *pd_api_verdict_name(enum pd_api_verdict v);

/*
 * Decides what an answer means. STATUS is the HTTP status (0 if none), CURL_CODE the transfer's
 * CURLcode, BODY/LEN the answer (may be NULL). Fills *out (release with pd_api_result_cleanup).
 * Returns 0, or PD_ENOMEM.
 */
int pd_api_classify(long status, int curl_code, const char *body, size_t len,
                    struct pd_api_result *out);
void pd_api_result_cleanup(struct pd_api_result *r);

/* Request builders. Each returns 0 and a malloc'd string in *out, or PD_ENOMEM / PD_ECONFIG. */
int pd_api_login_body(const struct pd_patchworks *pw, char **out);
int pd_api_start_url(const struct pd_patchworks *pw, const char *flow_id, const char *version_id,
                     char **out);
int pd_api_run_url(const struct pd_patchworks *pw, const char *run_id, char **out);

/*
 * Reads a login answer: `token` or `access_token`, at the top or under `data`, and `expires_in`
 * (seconds; DEFAULT_TTL_S when absent). Returns 0, or PD_EPROTOCOL when no token is found.
 */
int pd_api_parse_login(const char *body, size_t len, uint64_t default_ttl_s, char **token,
                       uint64_t *expires_in_s);

/*
 * Reads a flow-run record (flat, under `data`, or under `attributes`): its status in words
 * ("running", "success", "failed", "stopped", "partial success", or the server's own string)
 * and the raw status text. Returns 0, or PD_EPROTOCOL when no status is found.
 */
int pd_api_parse_run_status(const char *body, size_t len, char **words, char **raw);

/* Words for a Patchworks flow-run status number, or NULL when unknown. */
const char *pd_api_run_status_name(long status);

#endif
