/*
 * The Patchworks Core API as patchdrop uses it (see docs/patchworks-api.md): the URLs and
 * bodies of its requests, the reading of its answers, and the ONE function that decides what an
 * answer means for the request that got it. Pure: no I/O, no logging.
 */
#ifndef PD_API_H
#define PD_API_H

#include <stddef.h>
#include <stdint.h>

struct pd_patchworks;
struct pd_lookup_info;
struct pd_lookup_row;
struct pd_lookup_rows;

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

/* ---- following a flow run ------------------------------------------------------------------- */

/* The paths of a flow run: flow_run_path, flow_run_logs_path, flow_run_retry_path. */
enum pd_api_run_path { PD_API_RUN, PD_API_RUN_LOGS, PD_API_RUN_RETRY };

/*
 * core_url and the path's template with every {id} replaced by RUN_ID (letters, digits, '-',
 * '_', '.'; anything else is PD_ECONFIG, as is a missing core_url). A template the config left
 * NULL is the default ("/flow-runs/{id}" ...). Returns 0 and a malloc'd *URL, or PD_ENOMEM.
 * pd_api_run_url() is the PD_API_RUN case.
 */
int pd_api_flow_run_url(const struct pd_patchworks *pw, enum pd_api_run_path which,
                        const char *run_id, char **url);

/* Log entries asked for in one page, the most the API serves. */
#define PD_API_RUN_LOGS_PER_PAGE 100

/* The logs' URL for page PAGE (1 ...): "?page=PAGE&per_page=100" after PD_API_RUN_LOGS. */
int pd_api_run_logs_page_url(const struct pd_patchworks *pw, const char *run_id, unsigned page,
                             char **url);

/* dashboard_url (or its default) with {id} replaced; RUN_ID checked as above. */
int pd_api_dashboard_url(const struct pd_patchworks *pw, const char *run_id, char **url);

struct pd_api_run {
    long status;       /* 1 running, 2 success, 3 failed, 4 stopped, 5 partial; 0: none found */
    char *started_at;  /* as sent (bounded), or NULL */
    char *finished_at; /* NULL while running or when null */
};

/*
 * Reads a flow-run record: flat, under `attributes`, under `data` or `data.attributes`. The
 * status is a number, a numeric string or one of the words; anything else leaves it 0. Returns
 * 0, or PD_EPROTOCOL when the answer is not a JSON object (*OUT is then empty); PD_ENOMEM.
 */
int pd_api_parse_run(const char *body, size_t len, struct pd_api_run *out);
void pd_api_run_cleanup(struct pd_api_run *r);

/* "running", "success", "failed", "stopped", "partial" for 1..5; NULL for others. */
const char *pd_api_run_outcome(long status);

/* Bounds of what one logs page yields: entries read, bytes of one message. */
#define PD_API_RUN_LOGS_MAX 100
#define PD_API_RUN_LOG_MESSAGE_MAX 1000

struct pd_api_run_log {
    char *time;    /* created_at or time, as sent; NULL when absent */
    char *level;   /* NULL when absent */
    char *message; /* at most PD_API_RUN_LOG_MESSAGE_MAX bytes, cut at a character; or NULL */
};

/*
 * Reads one page of a run's log entries (the answer itself when a list, else its `data` list;
 * each entry flat or under `attributes`; entries that are not objects or hold none of the three
 * fields are skipped; at most PD_API_RUN_LOGS_MAX). *NEXT_PAGE is the page after this one from
 * meta (current_page, last_page) or links.next's page=, 0 on the last page. Returns 0, or
 * PD_EPROTOCOL (not JSON, no list) / PD_ENOMEM with the outputs empty. Free with
 * pd_api_run_logs_free.
 */
int pd_api_parse_run_logs(const char *body, size_t len, struct pd_api_run_log **entries, size_t *n,
                          unsigned *next_page);
void pd_api_run_logs_free(struct pd_api_run_log *e, size_t n);

/*
 * Reads a retry answer like a start answer: flow_run_id, run_id or id, at the top or under
 * `data`. Returns 0 and the new run's id (malloc'd), or PD_EPROTOCOL when it names none.
 */
int pd_api_parse_retry(const char *body, size_t len, char **new_run_id);

/* ---- cross-reference lookups: reading the answers ------------------------------------------ */

/* A list claiming more pages than this is read this far only: a server that never stops paging. */
#define PD_API_MAX_PAGES 100000

/* What one page of a list answer says about the list. */
struct pd_api_page {
    unsigned long last_page; /* meta.last_page (1..PD_API_MAX_PAGES), 0 when absent or not >= 1 */
    char *next;              /* links.next when a non-empty string (malloc'd), else NULL */
    size_t items;            /* entries in the page's data list */
};

void pd_api_page_cleanup(struct pd_api_page *pg);

/*
 * Reads page PAGE of a list answer: the list of lookups (LOOKUPS_PAGE, into *INFOS / *N, release
 * each with pd_lookup_info_cleanup and the array with free) or of a lookup's rows (ROWS_PAGE, into
 * *ROWS, release with pd_lookup_rows_cleanup). The items are the answer itself when it is a JSON
 * list, else its "data" list; every item must be an object with an "id" (rows also a left_value
 * and a right_value, flat or under "attributes"; a null or missing right_value is ""). Ids and
 * values are text: strings exactly as sent, numbers through the one range-guarded number reader
 * (integral values within +-9e15 without a fraction, others as %.17g, so 1e300 is
 * "1.0000000000000001e+300"), booleans as true/false. *PG gets the pagination.
 * Returns 0, PD_EPROTOCOL with WHY (a sentence naming the page and item), or PD_ENOMEM; on
 * failure the outputs are empty.
 */
int pd_api_parse_lookups_page(const char *body, size_t len, unsigned long page,
                              struct pd_lookup_info **infos, size_t *n, struct pd_api_page *pg,
                              char *why, size_t whylen);
int pd_api_parse_rows_page(const char *body, size_t len, unsigned long page,
                           struct pd_lookup_rows *rows, struct pd_api_page *pg, char *why,
                           size_t whylen);

/*
 * Reads a one-record answer (the record under "data", or the answer itself): a lookup (show,
 * create; a missing name is "", a missing description or default_value NULL) or a row (add,
 * update). Returns 0, PD_EPROTOCOL with WHY, or PD_ENOMEM; on failure *OUT is empty.
 */
int pd_api_parse_lookup(const char *body, size_t len, struct pd_lookup_info *out, char *why,
                        size_t whylen);
int pd_api_parse_lookup_row(const char *body, size_t len, struct pd_lookup_row *out, char *why,
                            size_t whylen);

#endif
