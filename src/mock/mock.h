/*
 * Internals of patchdrop-mock shared by its source files (the public face is include/pd_mock.h).
 *
 *   mock_server.c   libmicrohttpd glue: per-request state, size and rate checks, faults,
 *                   latency, hang, drop and truncate, the request log
 *   mock_routes.c   the endpoints: what each answers for a request, as status + JSON body
 *   mock_runs.c     flow runs: their outcome, their life, their logs and retries
 *   mock_store.c    tokens, flow runs and cross-reference lookups held in memory
 *   mock_json.c     a strict JSON reader for request bodies and the start-flow payload
 *   mock_script.c   the --script list and the seeded random draws
 *   mock_record.c   the --record folder: payload files and requests.jsonl
 *   mock_args.c     the command line
 *   mock_shape.c    --shape: answers with a key renamed
 */
#ifndef PD_MOCK_INTERNAL_H
#define PD_MOCK_INTERNAL_H

#include "pd_mock.h"

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- mock_json.c ---------------------------------------------------------------------- */

/* Checks that S[0..N) is one JSON text (RFC 8259) in valid UTF-8, with no raw control
 * characters in strings. Returns 0, or PD_EPARSE with the byte offset and a few words. */
int mock_json_validate(const char *s, size_t n, size_t *err_off, const char **what);

enum mock_payload_status {
    MOCK_PL_OK,
    MOCK_PL_NOT_JSON,
    MOCK_PL_NOT_OBJECT,
    MOCK_PL_MISSING,
    MOCK_PL_NOT_STRING,
    MOCK_PL_BLANK,
    MOCK_PL_EXTRA_KEY,
};

struct mock_payload {
    int status;     /* enum mock_payload_status */
    size_t err_off; /* MOCK_PL_NOT_JSON: where */
    const char *err_what;
    char *data; /* MOCK_PL_OK: the decoded payload string, exactly its bytes */
    size_t len;
    char extra_key[64]; /* MOCK_PL_EXTRA_KEY: the first other key, cut to fit */
};

/* Reads a start-flow body: a JSON object whose only key is "payload", a non-blank string.
 * Returns the status (also in OUT); OUT must be cleaned up whatever the status. */
int mock_payload_extract(const char *s, size_t n, struct mock_payload *out);
void mock_payload_cleanup(struct mock_payload *p);

/* ---- mock_script.c -------------------------------------------------------------------- */

enum mock_step_kind {
    MOCK_STEP_OK,
    MOCK_STEP_STATUS,
    MOCK_STEP_DROP,
    MOCK_STEP_HANG,
    MOCK_STEP_TRUNCATE
};

struct mock_step {
    int kind;        /* enum mock_step_kind */
    int status;      /* MOCK_STEP_STATUS */
    int retry_after; /* seconds, -1: no Retry-After header */
};

struct mock_script {
    struct mock_step *steps;
    size_t n, next;
};

/* Parses LIST into SCRIPT (emptied first on success only). Returns 0 or PD_EUSAGE + *err. */
int mock_script_parse(const char *list, struct mock_script *script, char **err);
/* The next step, or NULL once the script is used up. */
const struct mock_step *mock_script_take(struct mock_script *script);
void mock_script_cleanup(struct mock_script *script);

/* A uniform draw in [0, 1) that depends only on (seed, request number, kind): the k-th
 * start-flow request meets the same fate in every run with the same seed. */
double mock_draw(uint64_t seed, uint64_t k, unsigned kind);

/* ---- mock_store.c --------------------------------------------------------------------- */

struct mock_store;

int mock_store_create(struct mock_store **out);
void mock_store_destroy(struct mock_store **store);

/* Tokens. VALUE receives a fresh random token (NUL terminated, < 80 bytes). */
int mock_store_token_issue(struct mock_store *st, uint64_t now_ms, uint64_t ttl_ms, char *value,
                           size_t cap);
bool mock_store_token_valid(struct mock_store *st, const char *value, uint64_t now_ms);
void mock_store_token_revoke(struct mock_store *st, const char *value);
void mock_store_token_revoke_all(struct mock_store *st);

/* Flow runs: ids count up from 1. */
int mock_store_run_add(struct mock_store *st, const char *flow, const char *version,
                       uint64_t epoch_ms, uint64_t *id);
uint64_t mock_store_run_count(struct mock_store *st);
/* Copies run ID out; false when there is none. Strings are owned by the store. */
struct mock_run {
    uint64_t id;
    char *flow_id;
    char *version_id; /* NULL: none given */
    uint64_t started_ms;
    /* Set by mock_runs.c once added. */
    uint64_t created_now; /* mock_now() at creation: the run is final run_duration_ms later */
    int final_status;     /* 2 success, 3 failed, 4 stopped, 5 partial */
    const char *cause;    /* what decided it: "script", "marker", "rate" or "default" */
    bool marker;          /* the payload holds --run-fail-marker */
    uint64_t retry_of;    /* 0: not a retry */
    unsigned bad_record;  /* the record named by a failed or partial run's log */
    char payload_file[32];
};
bool mock_store_run_get(struct mock_store *st, uint64_t id, struct mock_run *out);
/* The run itself, to finish filling it in; NULL when there is none. */
struct mock_run *mock_store_run_at(struct mock_store *st, uint64_t id);

struct mock_row {
    uint64_t id;
    char *left;
    char *right;
};

struct mock_lookup {
    uint64_t id;
    char *name;
    char *description;   /* NULL: null */
    char *default_value; /* NULL: null */
    uint64_t created_ms;
    uint64_t updated_ms;
    struct mock_row *rows;
    size_t nrows, caprows;
};

/* Lookups and rows; the returned pointers stay valid while the caller holds the mock's lock. */
struct mock_lookup *mock_store_lookup_add(struct mock_store *st, const char *name,
                                          const char *description, const char *default_value,
                                          uint64_t epoch_ms);
struct mock_lookup *mock_store_lookup_get(struct mock_store *st, uint64_t id);
size_t mock_store_lookup_count(struct mock_store *st);
struct mock_lookup *mock_store_lookup_at(struct mock_store *st, size_t index);
struct mock_row *mock_store_row_add(struct mock_store *st, struct mock_lookup *lk, const char *left,
                                    const char *right, uint64_t epoch_ms);
struct mock_row *mock_store_row_get(struct mock_lookup *lk, uint64_t id);
int mock_store_row_set(struct mock_row *row, const char *left, const char *right);
bool mock_store_row_delete(struct mock_lookup *lk, uint64_t id);

/* ---- mock_record.c -------------------------------------------------------------------- */

struct mock_record;

struct mock_logline {
    uint64_t seq;
    uint64_t time_ms; /* epoch */
    const char *method;
    const char *path;
    int status; /* 0: no answer was sent */
    uint64_t body_bytes;
    uint64_t flow_run_id;     /* 0: none */
    const char *payload_file; /* NULL: none */
    const char *outcome;
    uint64_t elapsed_ms;
    const char *route; /* mock_route_name() of the request */
};

int mock_record_open(const char *dir, struct mock_record **out, char **err);
void mock_record_close(struct mock_record **rec);
/* Writes payload ID to DIR/payloads/NNNNNN (through a temporary name, so a reader never sees
 * half a file); NAME receives "payloads/NNNNNN". */
int mock_record_payload(struct mock_record *rec, uint64_t id, const char *data, size_t len,
                        char *name, size_t cap);
/* Appends one line to requests.jsonl and flushes it. */
void mock_record_line(struct mock_record *rec, const struct mock_logline *line);
/* Appends RUN, with the outcome decided for it, to runs.jsonl and flushes it. */
void mock_record_run(struct mock_record *rec, const struct mock_run *run);

/* ---- mock_routes.c -------------------------------------------------------------------- */

/* What the server knows about one request when it asks for an answer. */
struct mock_request {
    const char *method;
    const char *path;
    const char *auth;     /* Authorization header or NULL */
    const char *host;     /* Host header or NULL */
    const char *page;     /* ?page= or NULL */
    const char *per_page; /* ?per_page= or NULL */
    const char *body;
    size_t len;
};

enum mock_action { MOCK_ANSWER, MOCK_DROP, MOCK_HANG, MOCK_TRUNCATE };

struct mock_answer {
    int action; /* enum mock_action */
    int status;
    char *body;      /* JSON, malloc'd */
    int retry_after; /* -1: none */
    uint64_t flow_run_id;
    char payload_file[32];
    const char *outcome;
};

enum mock_route {
    MOCK_ROUTE_NONE,
    MOCK_ROUTE_LOGIN_EMAIL,
    MOCK_ROUTE_LOGIN_USERNAME,
    MOCK_ROUTE_START,
    MOCK_ROUTE_RUN,
    MOCK_ROUTE_RUN_LOGS,
    MOCK_ROUTE_RUN_RETRY,
    MOCK_ROUTE_LOOKUPS,
    MOCK_ROUTE_LOOKUP,
    MOCK_ROUTE_VALUES,
    MOCK_ROUTE_VALUE,
};

struct mock_route_match {
    int route; /* enum mock_route */
    char flow[128];
    char version[128]; /* "" when absent */
    uint64_t id;
    uint64_t value_id;
    bool path_ok; /* the path names something, whatever the method */
};

/* Finds the endpoint for PATH and METHOD. */
void mock_route_match(const char *method, const char *path, struct mock_route_match *out);
/* The route's name in the request log ("start", "run", "run_logs", ...; "none"). */
const char *mock_route_name(int route);

/* Answers one request (body complete, within max_body). Fills ANS; ans->body is always set
 * for MOCK_ANSWER and MOCK_TRUNCATE. */
void mock_route_answer(struct pd_mock *m, const struct mock_request *rq,
                       const struct mock_route_match *rt, struct mock_answer *ans);

/* A JSON body {"message": MSG} (malloc'd); and one with "errors": {FIELD: [MSG]}. */
char *mock_json_message(const char *msg);
char *mock_json_error(const char *msg, const char *field, const char *field_msg);

/* Shared with mock_runs.c: answers and the Laravel page envelope. */
struct cJSON;
struct mock_page {
    uint64_t page, per_page;
};
void mock_set_answer(struct mock_answer *ans, int status, char *body);
void mock_answer_message(struct mock_answer *ans, int status, const char *msg);
char *mock_json_print(struct cJSON *o); /* and frees O */
void mock_add_time(struct cJSON *o, const char *key, uint64_t epoch_ms);
void mock_add_id(struct cJSON *o, const char *key, const char *value);
/* Reads ?page= and ?per_page=; false (answer set) when one is not acceptable. */
bool mock_read_page(const struct mock_request *rq, struct mock_page *pg, struct mock_answer *ans);
char *mock_paginated(const struct mock_request *rq, const struct mock_page *pg, uint64_t total,
                     struct cJSON *data);

/* ---- mock_runs.c ---------------------------------------------------------------------- */

/* Parses a --run-script list (ok fail stop partial) into final statuses (2..5). Returns 0 or
 * PD_EUSAGE with *err (when ERR is not NULL). */
int mock_run_script_parse(const char *list, int **statuses, size_t *n, char **err);
/* Creates a run of FLOW/VERSION and decides its outcome; MARKER: its payload holds the fail
 * marker; RETRY_OF: the run retried, or 0. Takes the lock; records it in runs.jsonl. */
int mock_run_create(struct pd_mock *m, const char *flow, const char *version, bool marker,
                    uint64_t retry_of, uint64_t *id);
/* Whether the payload DATA[0..LEN) holds the fail marker. */
bool mock_run_marked(struct pd_mock *m, const char *data, size_t len);
void mock_run_answer(struct pd_mock *m, const struct mock_route_match *rt, struct mock_answer *ans);
void mock_run_answer_logs(struct pd_mock *m, const struct mock_request *rq,
                          const struct mock_route_match *rt, struct mock_answer *ans);
void mock_run_answer_retry(struct pd_mock *m, const struct mock_route_match *rt,
                           struct mock_answer *ans);

/* ---- mock_shape.c --------------------------------------------------------------------- */

#define MOCK_SHAPE_LOGIN 1u
#define MOCK_SHAPE_LOOKUPS 2u
#define MOCK_SHAPE_RUN 4u

/* Parses a --shape list (login, lookups, run; comma separated) into MOCK_SHAPE_ bits. Returns
 * 0, or PD_EUSAGE with *err (when ERR is not NULL). */
int mock_shape_parse(const char *list, unsigned *out, char **err);
/* Renames the key --shape names in a 200 answer of ROUTE. */
void mock_shape_apply(struct pd_mock *m, int route, const char *method, struct mock_answer *ans);

/* ---- the emulator itself -------------------------------------------------------------- */

struct pd_mock {
    struct pd_mock_options opt; /* strings below are owned copies */
    char *bind;
    char *user;
    char *password;
    char *api_key;
    char *record_dir;
    FILE *log;

    struct MHD_Daemon *daemon;
    uint16_t port;

    pthread_mutex_t lock; /* everything below */
    pthread_cond_t wake;  /* broadcast when stopping */
    bool stopping;
    struct mock_store *store;
    struct mock_script script;
    uint64_t requests;
    uint64_t start_flow;
    uint64_t logins;
    uint64_t retries;
    int *run_script; /* final statuses of the first runs created */
    size_t run_script_n;
    char *run_fail_marker;
    unsigned shape; /* MOCK_SHAPE_ bits */
    uint64_t hangs_active;
    uint64_t window_start;
    uint64_t window_count;
    bool window_open;

    pthread_mutex_t log_lock;
    struct mock_record *record;
};

uint64_t mock_now(struct pd_mock *m); /* the injected clock */
uint64_t mock_epoch_ms(void);

#endif
