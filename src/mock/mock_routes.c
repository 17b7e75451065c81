/*
 * The endpoints of patchdrop-mock, as docs/patchworks-api.md describes Patchworks: what each
 * answers for a complete request. The server (mock_server.c) does the transport: size and rate
 * checks, latency, and carrying out a drop, a hang or a truncated answer decided here.
 *
 * Bodies copy Laravel's shapes, since Patchworks is a Laravel application: {"message"} for
 * errors, {"message","errors":{field:[...]}} for validation, {"data","meta","links"} for pages,
 * "Unauthenticated." for a missing or bad token.
 */
#include "mock.h"

#include "pd_error.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DEFAULT_PER_PAGE 15
#define MAX_PER_PAGE 100

char *mock_json_print(struct cJSON *o)
{
    char *s = o ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return s;
}

char *mock_json_message(const char *msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", msg);
    return mock_json_print(o);
}

char *mock_json_error(const char *msg, const char *field, const char *field_msg)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "message", msg);
    cJSON *errors = cJSON_AddObjectToObject(o, "errors");
    cJSON *list = cJSON_AddArrayToObject(errors, field);
    cJSON_AddItemToArray(list, cJSON_CreateString(field_msg ? field_msg : msg));
    return mock_json_print(o);
}

void mock_set_answer(struct mock_answer *ans, int status, char *body)
{
    ans->status = status;
    ans->body = body;
}

void mock_answer_message(struct mock_answer *ans, int status, const char *msg)
{
    mock_set_answer(ans, status, mock_json_message(msg));
}

/* {"data": ITEM}. */
static cJSON *with_data(cJSON *item)
{
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(r, "data", item);
    return r;
}

/* Answers STATUS with R, or NONE_STATUS with NONE_MSG when there is no R. */
static void answer_found(struct mock_answer *ans, int status, cJSON *r, int none_status,
                         const char *none_msg)
{
    if (r)
        mock_set_answer(ans, status, mock_json_print(r));
    else
        mock_answer_message(ans, none_status, none_msg);
}

/* ---- routing --------------------------------------------------------------------------- */

#define MAX_SEGMENTS 10

/* Splits PATH at '/' into SEG (pointers into BUF). Returns the count, or -1 when the path
 * has an empty segment (// or a trailing /) or too many. */
static int split_path(const char *path, char *buf, size_t cap, char **seg)
{
    size_t n = strlen(path);
    if (n == 0 || n >= cap || path[0] != '/')
        return -1;
    memcpy(buf, path + 1, n);
    int count = 0;
    char *p = buf;
    for (;;) {
        if (count == MAX_SEGMENTS)
            return -1;
        char *slash = strchr(p, '/');
        if (slash)
            *slash = '\0';
        if (!*p)
            return -1;
        seg[count++] = p;
        if (!slash)
            return count;
        p = slash + 1;
    }
}

static bool parse_id(const char *s, uint64_t *out)
{
    if (!*s || *s == '0' || strlen(s) > 15)
        return false;
    uint64_t v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

static bool copy_seg(char *dst, size_t cap, const char *src)
{
    if (strlen(src) >= cap)
        return false;
    strcpy(dst, src);
    return true;
}

static bool is(const char *a, const char *b)
{
    return !strcmp(a, b);
}

void mock_route_match(const char *method, const char *path, struct mock_route_match *out)
{
    char buf[2048];
    char *seg[MAX_SEGMENTS];
    memset(out, 0, sizeof(*out));
    int n = split_path(path, buf, sizeof(buf), seg);
    int route = MOCK_ROUTE_NONE;
    bool post = is(method, "POST"), get = is(method, "GET");
    bool allowed = false;

    if (n == 3 && is(seg[0], "api") && is(seg[1], "v1") && is(seg[2], "login")) {
        route = MOCK_ROUTE_LOGIN_EMAIL;
        allowed = post;
    } else if (n == 3 && is(seg[0], "fabric") && is(seg[1], "api") && is(seg[2], "login")) {
        route = MOCK_ROUTE_LOGIN_USERNAME;
        allowed = post;
    } else if ((n == 5 || n == 6) && is(seg[0], "api") && is(seg[1], "v1") && is(seg[2], "flows") &&
               (is(seg[4], "start") || is(seg[4], "manual")) &&
               copy_seg(out->flow, sizeof(out->flow), seg[3]) &&
               (n == 5 || copy_seg(out->version, sizeof(out->version), seg[5]))) {
        route = MOCK_ROUTE_START;
        allowed = post;
    } else if ((n == 4 || n == 5) && is(seg[0], "api") && is(seg[1], "v1") &&
               is(seg[2], "flow-runs") && parse_id(seg[3], &out->id)) {
        if (n == 4) {
            route = MOCK_ROUTE_RUN;
            allowed = get;
        } else if (is(seg[4], "flow-run-logs")) {
            route = MOCK_ROUTE_RUN_LOGS;
            allowed = get;
        } else if (is(seg[4], "retry")) {
            route = MOCK_ROUTE_RUN_RETRY;
            allowed = post;
        }
    } else if (n >= 3) {
        /* Lookups live under /core-main/api/v1 (current docs) or /api/v1. */
        int base = -1;
        if (n >= 4 && is(seg[0], "core-main") && is(seg[1], "api") && is(seg[2], "v1") &&
            is(seg[3], "cross-reference-lookups"))
            base = 4;
        else if (is(seg[0], "api") && is(seg[1], "v1") && is(seg[2], "cross-reference-lookups"))
            base = 3;
        int rest = n - base;
        if (base < 0) {
            /* nothing */
        } else if (rest == 0) {
            route = MOCK_ROUTE_LOOKUPS;
            allowed = get || post;
        } else if (rest == 1 && parse_id(seg[base], &out->id)) {
            route = MOCK_ROUTE_LOOKUP;
            allowed = get;
        } else if (rest == 2 && parse_id(seg[base], &out->id) && is(seg[base + 1], "values")) {
            route = MOCK_ROUTE_VALUES;
            allowed = get || post;
        } else if (rest == 3 && parse_id(seg[base], &out->id) && is(seg[base + 1], "values") &&
                   parse_id(seg[base + 2], &out->value_id)) {
            route = MOCK_ROUTE_VALUE;
            allowed = is(method, "PUT") || is(method, "PATCH") || is(method, "DELETE");
        }
    }
    out->path_ok = route != MOCK_ROUTE_NONE;
    out->route = allowed ? route : MOCK_ROUTE_NONE;
}

const char *mock_route_name(int route)
{
    static const char *const names[] = {
        [MOCK_ROUTE_NONE] = "none",
        [MOCK_ROUTE_LOGIN_EMAIL] = "login",
        [MOCK_ROUTE_LOGIN_USERNAME] = "login_username",
        [MOCK_ROUTE_START] = "start",
        [MOCK_ROUTE_RUN] = "run",
        [MOCK_ROUTE_RUN_LOGS] = "run_logs",
        [MOCK_ROUTE_RUN_RETRY] = "run_retry",
        [MOCK_ROUTE_LOOKUPS] = "lookups",
        [MOCK_ROUTE_LOOKUP] = "lookup",
        [MOCK_ROUTE_VALUES] = "values",
        [MOCK_ROUTE_VALUE] = "value",
    };
    return route >= 0 && route < (int)(sizeof(names) / sizeof(names[0])) ? names[route] : "none";
}

/* ---- helpers ------------------------------------------------------------------------- */

static void iso_time(uint64_t epoch_ms, char *buf, size_t cap)
{
    time_t t = (time_t)(epoch_ms / 1000);
    struct tm tm;
    gmtime_r(&t, &tm);
    char base[32];
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf, cap, "%s.%03u000Z", base, (unsigned)(epoch_ms % 1000));
}

void mock_add_time(cJSON *o, const char *key, uint64_t epoch_ms)
{
    char buf[48];
    iso_time(epoch_ms, buf, sizeof(buf));
    cJSON_AddStringToObject(o, key, buf);
}

/* Numeric ids print as numbers, anything else as a string. */
void mock_add_id(cJSON *o, const char *key, const char *value)
{
    uint64_t v;
    if (!value)
        cJSON_AddNullToObject(o, key);
    else if (parse_id(value, &v))
        cJSON_AddNumberToObject(o, key, (double)v);
    else
        cJSON_AddStringToObject(o, key, value);
}

static void add_string_or_null(cJSON *o, const char *key, const char *value)
{
    if (value)
        cJSON_AddStringToObject(o, key, value);
    else
        cJSON_AddNullToObject(o, key);
}

enum auth_kind { AUTH_NONE, AUTH_TOKEN, AUTH_KEY };

/* Who the Authorization header says the client is; the caller holds the lock. TOKEN gets the
 * bearer token (pointing into AUTH) whether or not it is valid. */
static int check_auth(struct pd_mock *m, const char *auth, const char **token)
{
    *token = NULL;
    if (!auth)
        return AUTH_NONE;
    if (!strncmp(auth, "Bearer ", 7)) {
        const char *t = auth + 7;
        while (*t == ' ')
            t++;
        *token = t;
        return mock_store_token_valid(m->store, t, mock_now(m)) ? AUTH_TOKEN : AUTH_NONE;
    }
    if (m->api_key && *m->api_key && !strcmp(auth, m->api_key))
        return AUTH_KEY;
    return AUTH_NONE;
}

static bool authorised(struct pd_mock *m, const struct mock_request *rq)
{
    const char *token;
    pthread_mutex_lock(&m->lock);
    int kind = check_auth(m, rq->auth, &token);
    pthread_mutex_unlock(&m->lock);
    return kind != AUTH_NONE;
}

/* Parses a small JSON object body strictly; NULL with *why when it is not one. */
static cJSON *parse_object(const struct mock_request *rq, char *why, size_t cap)
{
    size_t off;
    const char *what;
    if (rq->len == 0) {
        snprintf(why, cap, "The request body is empty; a JSON object is expected.");
        return NULL;
    }
    if (mock_json_validate(rq->body, rq->len, &off, &what)) {
        snprintf(why, cap, "The request body is not valid JSON: %s at byte %zu.", what, off);
        return NULL;
    }
    cJSON *o = cJSON_ParseWithLength(rq->body, rq->len);
    if (!cJSON_IsObject(o)) {
        cJSON_Delete(o);
        snprintf(why, cap, "The request body must be a JSON object.");
        return NULL;
    }
    return o;
}

static bool blank(const char *s)
{
    for (; *s; s++)
        if (!strchr(" \t\r\n\v", *s))
            return false;
    return true;
}

/* ---- login ----------------------------------------------------------------------------- */

static void answer_login(struct pd_mock *m, const struct mock_request *rq, const char *field,
                         struct mock_answer *ans)
{
    char why[160];
    cJSON *o = parse_object(rq, why, sizeof(why));
    const cJSON *user = o ? cJSON_GetObjectItemCaseSensitive(o, field) : NULL;
    const cJSON *pass = o ? cJSON_GetObjectItemCaseSensitive(o, "password") : NULL;
    bool user_ok = cJSON_IsString(user) && !blank(user->valuestring);
    bool pass_ok = cJSON_IsString(pass) && pass->valuestring[0];

    if (!user_ok || !pass_ok) {
        cJSON *r = cJSON_CreateObject();
        char msg[64];
        cJSON_AddStringToObject(r, "message", o ? "The given data was invalid." : why);
        cJSON *errors = cJSON_AddObjectToObject(r, "errors");
        if (!user_ok) {
            snprintf(msg, sizeof(msg), "The %s field is required.", field);
            cJSON_AddItemToArray(cJSON_AddArrayToObject(errors, field), cJSON_CreateString(msg));
        }
        if (!pass_ok)
            cJSON_AddItemToArray(cJSON_AddArrayToObject(errors, "password"),
                                 cJSON_CreateString("The password field is required."));
        mock_set_answer(ans, 422, mock_json_print(r));
        goto out;
    }
    if (strcmp(user->valuestring, m->user) || strcmp(pass->valuestring, m->password)) {
        mock_answer_message(ans, 401, "These credentials do not match our records.");
        goto out;
    }
    char token[80];
    pthread_mutex_lock(&m->lock);
    int rc =
        mock_store_token_issue(m->store, mock_now(m), m->opt.token_ttl_ms, token, sizeof(token));
    if (!rc)
        m->logins++;
    pthread_mutex_unlock(&m->lock);
    if (rc) {
        mock_answer_message(ans, 500, "Server Error");
        goto out;
    }
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "message", "You have successfully logged in.");
    cJSON_AddStringToObject(r, "token", token);
    cJSON_AddNumberToObject(r, "expires_in", (double)((m->opt.token_ttl_ms + 999) / 1000));
    mock_set_answer(ans, 200, mock_json_print(r));
out:
    cJSON_Delete(o);
}

/* ---- start flow -------------------------------------------------------------------------- */

static const char *status_text(int status)
{
    switch (status) {
    case 401:
        return "Unauthenticated.";
    case 403:
        return "This action is unauthorized.";
    case 404:
        return "Not Found";
    case 408:
        return "Request Timeout";
    case 413:
        return "The request body is too large. Reduce the payload size by splitting the "
               "data and sending over multiple calls.";
    case 422:
        return "The payload field is required.";
    case 429:
        return "Too Many Attempts.";
    case 500:
        return "Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

static void answer_status(struct mock_answer *ans, int status)
{
    if (status == 422)
        mock_set_answer(ans, status, mock_json_error(status_text(status), "payload", NULL));
    else
        mock_answer_message(ans, status, status_text(status));
}

static void start_normal(struct pd_mock *m, const struct mock_request *rq,
                         const struct mock_route_match *rt, struct mock_answer *ans)
{
    struct mock_payload pl;
    char msg[256];

    if (!authorised(m, rq)) {
        mock_answer_message(ans, 401, "Unauthenticated.");
        return;
    }
    switch (mock_payload_extract(rq->body, rq->len, &pl)) {
    case MOCK_PL_OK:
        break;
    case MOCK_PL_NOT_JSON:
        snprintf(msg, sizeof(msg), "The request body is not valid JSON: %s at byte %zu.",
                 pl.err_what, pl.err_off);
        break;
    case MOCK_PL_NOT_OBJECT:
        snprintf(msg, sizeof(msg), "The request body must be a JSON object with a payload field.");
        break;
    case MOCK_PL_NOT_STRING:
        snprintf(msg, sizeof(msg), "The payload must be a string.");
        break;
    case MOCK_PL_EXTRA_KEY:
        snprintf(msg, sizeof(msg),
                 "The request body may only contain the payload field (found \"%s\").",
                 pl.extra_key);
        break;
    default: /* missing or blank */
        snprintf(msg, sizeof(msg), "The payload field is required.");
        break;
    }
    if (pl.status != MOCK_PL_OK) {
        mock_set_answer(ans, 422, mock_json_error(msg, "payload", msg));
        mock_payload_cleanup(&pl);
        return;
    }

    uint64_t id = 0;
    int rc = mock_run_create(m, rt->flow, rt->version, mock_run_marked(m, pl.data, pl.len), 0, &id);
    if (rc) {
        mock_answer_message(ans, 500, "Server Error");
        mock_payload_cleanup(&pl);
        return;
    }
    if (m->record) {
        rc = mock_record_payload(m->record, id, pl.data, pl.len, ans->payload_file,
                                 sizeof(ans->payload_file));
        if (rc) {
            ans->payload_file[0] = '\0';
            pthread_mutex_lock(&m->log_lock);
            fprintf(m->log, "patchdrop-mock: cannot record payload %" PRIu64 ": %s\n", id,
                    pd_strerror(rc));
            pthread_mutex_unlock(&m->log_lock);
        }
    }
    mock_payload_cleanup(&pl);
    ans->flow_run_id = id;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "message", "Flow initialised.");
    cJSON_AddNumberToObject(r, "flow_run_id", (double)id);
    mock_set_answer(ans, 200, mock_json_print(r));
}

enum draw_kind { DRAW_DROP, DRAW_FAIL, DRAW_FAIL_WHICH, DRAW_401 };

static void answer_start(struct pd_mock *m, const struct mock_request *rq,
                         const struct mock_route_match *rt, struct mock_answer *ans)
{
    struct mock_step step;
    const char *token;
    pthread_mutex_lock(&m->lock);
    uint64_t k = ++m->start_flow;
    const struct mock_step *s = mock_script_take(&m->script);
    if (s)
        step = *s;
    int auth = check_auth(m, rq->auth, &token);
    pthread_mutex_unlock(&m->lock);

    if (s) {
        switch (step.kind) {
        case MOCK_STEP_OK:
            start_normal(m, rq, rt, ans);
            return;
        case MOCK_STEP_DROP:
            ans->action = MOCK_DROP;
            ans->outcome = "drop";
            return;
        case MOCK_STEP_HANG:
            ans->action = MOCK_HANG;
            ans->outcome = "hang";
            return;
        case MOCK_STEP_TRUNCATE:
            start_normal(m, rq, rt, ans);
            ans->action = MOCK_TRUNCATE;
            ans->outcome = "truncate";
            return;
        default:
            /* A scripted 401 behaves like an expired token: the token stops working. */
            if (step.status == 401 && token) {
                pthread_mutex_lock(&m->lock);
                mock_store_token_revoke(m->store, token);
                pthread_mutex_unlock(&m->lock);
            }
            answer_status(ans, step.status);
            ans->retry_after = step.retry_after;
            ans->outcome = "scripted";
            return;
        }
    }

    uint64_t seed = m->opt.seed;
    if (m->opt.drop_rate > 0 && mock_draw(seed, k, DRAW_DROP) < m->opt.drop_rate) {
        ans->action = MOCK_DROP;
        ans->outcome = "drop";
        return;
    }
    if (m->opt.fail_rate > 0 && mock_draw(seed, k, DRAW_FAIL) < m->opt.fail_rate) {
        static const int fails[] = {500, 502, 503};
        int which = (int)(mock_draw(seed, k, DRAW_FAIL_WHICH) * 3);
        answer_status(ans, fails[which > 2 ? 2 : which]);
        ans->outcome = "fault";
        return;
    }
    /* Only bearer tokens are revoked: a 401 on an API key means a wrong key to a client. */
    if (m->opt.fail_401_rate > 0 && auth == AUTH_TOKEN &&
        mock_draw(seed, k, DRAW_401) < m->opt.fail_401_rate) {
        pthread_mutex_lock(&m->lock);
        mock_store_token_revoke(m->store, token);
        pthread_mutex_unlock(&m->lock);
        mock_answer_message(ans, 401, "Unauthenticated.");
        ans->outcome = "fault";
        return;
    }
    start_normal(m, rq, rt, ans);
}

/* ---- cross-reference lookups ---------------------------------------------------------- */

static cJSON *lookup_json(const struct mock_lookup *lk)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)lk->id);
    cJSON_AddStringToObject(o, "name", lk->name);
    add_string_or_null(o, "description", lk->description);
    add_string_or_null(o, "default_value", lk->default_value);
    cJSON_AddNullToObject(o, "template_id");
    mock_add_time(o, "created_at", lk->created_ms);
    mock_add_time(o, "updated_at", lk->updated_ms);
    return o;
}

static cJSON *row_json(const struct mock_lookup *lk, const struct mock_row *row)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", (double)row->id);
    cJSON_AddNumberToObject(o, "cross_reference_lookup_id", (double)lk->id);
    cJSON_AddStringToObject(o, "left_value", row->left);
    cJSON_AddStringToObject(o, "right_value", row->right);
    return o;
}

/* Reads ?page= and ?per_page=; false (answer set) when one is not acceptable. */
bool mock_read_page(const struct mock_request *rq, struct mock_page *pg, struct mock_answer *ans)
{
    pg->page = 1;
    pg->per_page = DEFAULT_PER_PAGE;
    if (rq->page && (!parse_id(rq->page, &pg->page))) {
        mock_set_answer(
            ans, 422, mock_json_error("The page must be an integer of at least 1.", "page", NULL));
        return false;
    }
    if (rq->per_page && (!parse_id(rq->per_page, &pg->per_page) || pg->per_page > MAX_PER_PAGE)) {
        mock_set_answer(
            ans, 422,
            mock_json_error("The per page must be an integer from 1 to 100.", "per_page", NULL));
        return false;
    }
    return true;
}

static cJSON *page_url(const struct mock_request *rq, uint64_t page, uint64_t per_page)
{
    char url[2300];
    snprintf(url, sizeof(url), "http://%s%s?page=%" PRIu64 "&per_page=%" PRIu64,
             rq->host ? rq->host : "127.0.0.1", rq->path, page, per_page);
    return cJSON_CreateString(url);
}

/* The Laravel page envelope around DATA for TOTAL items. */
char *mock_paginated(const struct mock_request *rq, const struct mock_page *pg, uint64_t total,
                     cJSON *data)
{
    uint64_t last = total ? (total + pg->per_page - 1) / pg->per_page : 1;
    uint64_t from = (pg->page - 1) * pg->per_page;
    uint64_t to = from + (uint64_t)cJSON_GetArraySize(data);
    cJSON *r = cJSON_CreateObject();
    cJSON_AddItemToObject(r, "data", data);
    cJSON *links = cJSON_AddObjectToObject(r, "links");
    cJSON_AddItemToObject(links, "first", page_url(rq, 1, pg->per_page));
    cJSON_AddItemToObject(links, "last", page_url(rq, last, pg->per_page));
    cJSON_AddItemToObject(links, "prev",
                          pg->page > 1 && pg->page <= last + 1
                              ? page_url(rq, pg->page - 1, pg->per_page)
                              : cJSON_CreateNull());
    cJSON_AddItemToObject(links, "next",
                          pg->page < last ? page_url(rq, pg->page + 1, pg->per_page)
                                          : cJSON_CreateNull());
    cJSON *meta = cJSON_AddObjectToObject(r, "meta");
    cJSON_AddNumberToObject(meta, "current_page", (double)pg->page);
    if (to > from) {
        cJSON_AddNumberToObject(meta, "from", (double)(from + 1));
        cJSON_AddNumberToObject(meta, "to", (double)to);
    } else {
        cJSON_AddNullToObject(meta, "from");
        cJSON_AddNullToObject(meta, "to");
    }
    cJSON_AddNumberToObject(meta, "last_page", (double)last);
    char path[2300];
    snprintf(path, sizeof(path), "http://%s%s", rq->host ? rq->host : "127.0.0.1", rq->path);
    cJSON_AddStringToObject(meta, "path", path);
    cJSON_AddNumberToObject(meta, "per_page", (double)pg->per_page);
    cJSON_AddNumberToObject(meta, "total", (double)total);
    return mock_json_print(r);
}

/* A string member, absent, or wrong: returns false (and sets *bad) when present but not a
 * string (null counts as absent only where NULLABLE). */
static bool get_string(const cJSON *o, const char *key, bool nullable, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *out = NULL;
    if (!v || (nullable && cJSON_IsNull(v)))
        return true;
    if (!cJSON_IsString(v))
        return false;
    *out = v->valuestring;
    return true;
}

static void answer_lookup_create(struct pd_mock *m, const struct mock_request *rq,
                                 struct mock_answer *ans)
{
    char why[160];
    cJSON *o = parse_object(rq, why, sizeof(why));
    const char *name = NULL, *desc = NULL, *def = NULL;
    if (!o) {
        mock_set_answer(ans, 422, mock_json_error(why, "name", "The name field is required."));
        return;
    }
    if (!get_string(o, "name", false, &name) || !name || blank(name)) {
        mock_set_answer(ans, 422, mock_json_error("The name field is required.", "name", NULL));
    } else if (!get_string(o, "description", true, &desc)) {
        mock_set_answer(ans, 422,
                        mock_json_error("The description must be a string.", "description", NULL));
    } else if (!get_string(o, "default_value", true, &def)) {
        mock_set_answer(
            ans, 422,
            mock_json_error("The default value must be a string.", "default_value", NULL));
    } else {
        pthread_mutex_lock(&m->lock);
        struct mock_lookup *lk = mock_store_lookup_add(m->store, name, desc, def, mock_epoch_ms());
        cJSON *r = lk ? with_data(lookup_json(lk)) : NULL;
        pthread_mutex_unlock(&m->lock);
        answer_found(ans, 201, r, 500, "Server Error");
    }
    cJSON_Delete(o);
}

static void answer_lookups(struct pd_mock *m, const struct mock_request *rq,
                           struct mock_answer *ans)
{
    if (is(rq->method, "POST")) {
        answer_lookup_create(m, rq, ans);
        return;
    }
    struct mock_page pg;
    if (!mock_read_page(rq, &pg, ans))
        return;
    cJSON *data = cJSON_CreateArray();
    pthread_mutex_lock(&m->lock);
    uint64_t total = mock_store_lookup_count(m->store);
    for (uint64_t i = (pg.page - 1) * pg.per_page; i < total && i < pg.page * pg.per_page; i++)
        cJSON_AddItemToArray(data, lookup_json(mock_store_lookup_at(m->store, (size_t)i)));
    pthread_mutex_unlock(&m->lock);
    mock_set_answer(ans, 200, mock_paginated(rq, &pg, total, data));
}

static void answer_lookup(struct pd_mock *m, const struct mock_route_match *rt,
                          struct mock_answer *ans)
{
    pthread_mutex_lock(&m->lock);
    struct mock_lookup *lk = mock_store_lookup_get(m->store, rt->id);
    cJSON *r = lk ? with_data(lookup_json(lk)) : NULL;
    pthread_mutex_unlock(&m->lock);
    answer_found(ans, 200, r, 404, "Cross-reference lookup not found.");
}

static void answer_values(struct pd_mock *m, const struct mock_request *rq,
                          const struct mock_route_match *rt, struct mock_answer *ans)
{
    struct mock_page pg = {1, DEFAULT_PER_PAGE};
    cJSON *o = NULL;
    const char *left = NULL, *right = NULL;
    char why[160];
    bool post = is(rq->method, "POST");

    if (!post && !mock_read_page(rq, &pg, ans))
        return;
    if (post) {
        o = parse_object(rq, why, sizeof(why));
        if (!o) {
            mock_set_answer(
                ans, 422, mock_json_error(why, "left_value", "The left value field is required."));
            return;
        }
        if (!get_string(o, "left_value", false, &left) || !left || blank(left)) {
            mock_set_answer(
                ans, 422, mock_json_error("The left value field is required.", "left_value", NULL));
            goto out;
        }
        if (!get_string(o, "right_value", false, &right) || !right) {
            mock_set_answer(
                ans, 422,
                mock_json_error("The right value field is required.", "right_value", NULL));
            goto out;
        }
    }
    pthread_mutex_lock(&m->lock);
    struct mock_lookup *lk = mock_store_lookup_get(m->store, rt->id);
    cJSON *r = NULL;
    cJSON *data = NULL;
    uint64_t total = 0;
    if (lk && post) {
        struct mock_row *row = mock_store_row_add(m->store, lk, left, right, mock_epoch_ms());
        r = row ? with_data(row_json(lk, row)) : NULL;
    } else if (lk) {
        data = cJSON_CreateArray();
        total = lk->nrows;
        for (uint64_t i = (pg.page - 1) * pg.per_page; i < total && i < pg.page * pg.per_page; i++)
            cJSON_AddItemToArray(data, row_json(lk, &lk->rows[i]));
    }
    pthread_mutex_unlock(&m->lock);
    if (!lk)
        mock_answer_message(ans, 404, "Cross-reference lookup not found.");
    else if (post && r)
        mock_set_answer(ans, 201, mock_json_print(r));
    else if (post)
        mock_answer_message(ans, 500, "Server Error");
    else
        mock_set_answer(ans, 200, mock_paginated(rq, &pg, total, data));
out:
    cJSON_Delete(o);
}

static void answer_value(struct pd_mock *m, const struct mock_request *rq,
                         const struct mock_route_match *rt, struct mock_answer *ans)
{
    cJSON *o = NULL;
    const char *left = NULL, *right = NULL;
    char why[160];
    bool del = is(rq->method, "DELETE");

    if (!del) {
        o = parse_object(rq, why, sizeof(why));
        if (!o) {
            mock_set_answer(ans, 422, mock_json_error(why, "left_value", NULL));
            return;
        }
        bool left_ok = get_string(o, "left_value", false, &left);
        bool right_ok = get_string(o, "right_value", false, &right);
        if (!left_ok || !right_ok) {
            mock_set_answer(ans, 422,
                            mock_json_error("The values must be strings.",
                                            left_ok ? "right_value" : "left_value", NULL));
            goto out;
        }
        if (left && blank(left)) {
            mock_set_answer(
                ans, 422, mock_json_error("The left value must not be blank.", "left_value", NULL));
            goto out;
        }
        if (!left && !right) {
            cJSON *r = cJSON_CreateObject();
            const char *msg = "At least one of left_value and right_value must be given.";
            cJSON_AddStringToObject(r, "message", msg);
            cJSON *errors = cJSON_AddObjectToObject(r, "errors");
            cJSON_AddItemToArray(cJSON_AddArrayToObject(errors, "left_value"),
                                 cJSON_CreateString(msg));
            cJSON_AddItemToArray(cJSON_AddArrayToObject(errors, "right_value"),
                                 cJSON_CreateString(msg));
            mock_set_answer(ans, 422, mock_json_print(r));
            goto out;
        }
    }
    pthread_mutex_lock(&m->lock);
    struct mock_lookup *lk = mock_store_lookup_get(m->store, rt->id);
    struct mock_row *row = lk ? mock_store_row_get(lk, rt->value_id) : NULL;
    cJSON *r = NULL;
    int rc = 0;
    if (row && del) {
        mock_store_row_delete(lk, rt->value_id);
        lk->updated_ms = mock_epoch_ms();
    } else if (row) {
        rc = mock_store_row_set(row, left, right);
        if (!rc) {
            lk->updated_ms = mock_epoch_ms();
            r = with_data(row_json(lk, row));
        }
    }
    pthread_mutex_unlock(&m->lock);
    if (!lk)
        mock_answer_message(ans, 404, "Cross-reference lookup not found.");
    else if (!row)
        mock_answer_message(ans, 404, "Cross-reference lookup value not found.");
    else if (del)
        mock_answer_message(ans, 200, "Value deleted.");
    else if (r)
        mock_set_answer(ans, 200, mock_json_print(r));
    else
        mock_answer_message(ans, 500, "Server Error");
out:
    cJSON_Delete(o);
}

/* ---- dispatch ---------------------------------------------------------------------------- */

static void route_answer(struct pd_mock *m, const struct mock_request *rq,
                         const struct mock_route_match *rt, struct mock_answer *ans)
{
    ans->action = MOCK_ANSWER;
    ans->retry_after = -1;
    ans->outcome = "ok";
    switch (rt->route) {
    case MOCK_ROUTE_LOGIN_EMAIL:
        answer_login(m, rq, "email", ans);
        return;
    case MOCK_ROUTE_LOGIN_USERNAME:
        answer_login(m, rq, "username", ans);
        return;
    case MOCK_ROUTE_START:
        answer_start(m, rq, rt, ans);
        return;
    case MOCK_ROUTE_NONE:
        if (rt->path_ok)
            mock_answer_message(ans, 405, "Method not allowed.");
        else
            mock_answer_message(ans, 404, "Not Found");
        return;
    default:
        break;
    }
    if (!authorised(m, rq)) {
        mock_answer_message(ans, 401, "Unauthenticated.");
        return;
    }
    switch (rt->route) {
    case MOCK_ROUTE_RUN:
        mock_run_answer(m, rt, ans);
        break;
    case MOCK_ROUTE_RUN_LOGS:
        mock_run_answer_logs(m, rq, rt, ans);
        break;
    case MOCK_ROUTE_RUN_RETRY:
        mock_run_answer_retry(m, rt, ans);
        break;
    case MOCK_ROUTE_LOOKUPS:
        answer_lookups(m, rq, ans);
        break;
    case MOCK_ROUTE_LOOKUP:
        answer_lookup(m, rt, ans);
        break;
    case MOCK_ROUTE_VALUES:
        answer_values(m, rq, rt, ans);
        break;
    case MOCK_ROUTE_VALUE:
        answer_value(m, rq, rt, ans);
        break;
    default:
        mock_answer_message(ans, 404, "Not Found");
        break;
    }
}

void mock_route_answer(struct pd_mock *m, const struct mock_request *rq,
                       const struct mock_route_match *rt, struct mock_answer *ans)
{
    route_answer(m, rq, rt, ans);
    mock_shape_apply(m, rt->route, rq->method, ans);
}
