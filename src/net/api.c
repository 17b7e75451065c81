/*
 * The Patchworks Core API contract (docs/patchworks-api.md): request URLs and bodies, reading
 * of answers, and pd_api_classify(), the one place that decides what an answer means.
 *
 * The documentation shows several answers only as images, so every reader here is defensive:
 * ids may be numbers or strings, at the top or under `data`; records may be flat or nested under
 * `attributes`; anything unexpected is kept verbatim for the user rather than guessed at.
 * Following a flow run (its record, its log pages, a retry) is read the same way.
 */
#include "pd_api.h"

#include "api_internal.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_lookup.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pd_api_verdict_name(enum pd_api_verdict v)
{
    switch (v) {
    case PD_API_OK:
        return "ok";
    case PD_API_RETRY:
        return "retry";
    case PD_API_REAUTH:
        return "reauth";
    case PD_API_RESPLIT:
        return "resplit";
    case PD_API_REJECT:
        return "reject";
    case PD_API_FATAL:
        return "fatal";
    }
    return "unknown";
}

static char *dup_bounded(const char *s, size_t len)
{
    if (len > TEXT_MAX)
        len = TEXT_MAX;
    char *d = malloc(len + 1);
    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *api_dup_printf(const char *fmt, ...)
{
    va_list ap;
    char *s = NULL;
    va_start(ap, fmt);
    if (vasprintf(&s, fmt, ap) < 0)
        s = NULL;
    va_end(ap);
    return s;
}

cJSON *api_parse_body(const char *body, size_t len)
{
    if (!body || len == 0)
        return NULL;
    return cJSON_ParseWithLength(body, len);
}

/*
 * The one number reader: a JSON number as text, integral values without a decimal point.
 * Converting a double outside long long's range is undefined, so the range is tested first;
 * beyond +-9e15 (where doubles stop being exact integers) the number is printed as it is.
 */
static char *number_text(double d)
{
    if (d > -9.0e15 && d < 9.0e15 && d == (double)(long long)d)
        return api_dup_printf("%lld", (long long)d);
    return api_dup_printf("%.17g", d);
}

/* Whether api_scalar_text() has something to read: a non-empty string or a number. */
bool api_has_text(const cJSON *v)
{
    return cJSON_IsNumber(v) || (cJSON_IsString(v) && v->valuestring && v->valuestring[0]);
}

/* A JSON scalar as text: non-empty strings (bounded), numbers. */
char *api_scalar_text(const cJSON *v)
{
    if (cJSON_IsString(v) && v->valuestring && v->valuestring[0])
        return dup_bounded(v->valuestring, strlen(v->valuestring));
    if (cJSON_IsNumber(v))
        return number_text(v->valuedouble);
    return NULL;
}

const cJSON *api_object_item(const cJSON *obj, const char *key)
{
    return cJSON_IsObject(obj) ? cJSON_GetObjectItemCaseSensitive(obj, key) : NULL;
}

/* The flow-run id of a start answer: flow_run_id, run_id or id, at the top or under data. */
char *api_find_run_id(const cJSON *root)
{
    static const char *const keys[] = {"flow_run_id", "run_id", "id"};
    const cJSON *places[] = {root, api_object_item(root, "data")};
    for (size_t p = 0; p < 2; p++)
        for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
            char *id = api_scalar_text(api_object_item(places[p], keys[k]));
            if (id)
                return id;
        }
    return NULL;
}

/* {"errors": {"field": ["text", ...]}} flattened to "field: text, text; field: text". */
static char *flatten_errors(const cJSON *errors)
{
    char buf[TEXT_MAX];
    size_t used = 0;
    const cJSON *field;
    buf[0] = '\0';
    if (!cJSON_IsObject(errors) && !cJSON_IsArray(errors))
        return NULL;
    cJSON_ArrayForEach(field, errors)
    {
        int n;
        if (field->string)
            n = snprintf(buf + used, sizeof(buf) - used, "%s%s:", used ? "; " : "",
                         field->string);
        else
            n = snprintf(buf + used, sizeof(buf) - used, "%s", used ? ";" : "");
        if (n < 0 || (size_t)n >= sizeof(buf) - used)
            break;
        used += (size_t)n;
        const cJSON *msg;
        if (cJSON_IsArray(field)) {
            bool first = true;
            cJSON_ArrayForEach(msg, field)
            {
                if (!cJSON_IsString(msg))
                    continue;
                n = snprintf(buf + used, sizeof(buf) - used, "%s %s", first ? "" : ",",
                             msg->valuestring);
                if (n < 0 || (size_t)n >= sizeof(buf) - used)
                    goto done;
                used += (size_t)n;
                first = false;
            }
        } else if (cJSON_IsString(field)) {
            n = snprintf(buf + used, sizeof(buf) - used, " %s", field->valuestring);
            if (n < 0 || (size_t)n >= sizeof(buf) - used)
                goto done;
            used += (size_t)n;
        }
    }
done:
    return used ? dup_bounded(buf, strlen(buf)) : NULL;
}

static const char *status_words(long status)
{
    switch (status) {
    case 401:
        return "not authenticated";
    case 408:
        return "request timeout";
    case 413:
        return "request body too large for the server";
    case 422:
        return "payload refused";
    case 429:
        return "too many requests";
    case 500:
        return "server error";
    case 502:
        return "bad gateway";
    case 503:
        return "service unavailable";
    case 504:
        return "gateway timeout";
    default:
        return status >= 500 ? "server error" : "refused";
    }
}

/* Transfer failures that say nothing about the request itself: try again later. */
static bool curl_transient(int code)
{
    switch (code) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_PARTIAL_FILE:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_AGAIN:
    case CURLE_READ_ERROR:
    case CURLE_WRITE_ERROR:
    case CURLE_SEND_FAIL_REWIND:
        return true;
    default:
        return false;
    }
}

static enum pd_api_verdict verdict_of(long status, int curl_code)
{
    if (curl_code != CURLE_OK && curl_code != CURLE_WRITE_ERROR) {
        /* An answer that arrived with a status still decides, even if its body was cut. */
        if (status == 0)
            return curl_transient(curl_code) ? PD_API_RETRY : PD_API_FATAL;
    }
    if (status == 0)
        return PD_API_RETRY;
    if (status == 200 || status == 201)
        return PD_API_OK;
    if (status == 401)
        return PD_API_REAUTH;
    if (status == 413)
        return PD_API_RESPLIT;
    if (status == 408 || status == 429 || status >= 500)
        return PD_API_RETRY;
    if (status >= 200 && status < 300)
        return PD_API_OK;
    return PD_API_REJECT;
}

int pd_api_classify(long status, int curl_code, const char *body, size_t len,
                    struct pd_api_result *out)
{
    int rc = PD_ENOMEM;
    cJSON *root = NULL;

    memset(out, 0, sizeof(*out));
    out->status = status;
    out->curl_code = curl_code;
    out->verdict = verdict_of(status, curl_code);
    root = api_parse_body(body, len);

    if (out->verdict == PD_API_OK) {
        out->run_id = api_find_run_id(root);
        if (!out->run_id && body && len && !(out->body = dup_bounded(body, len)))
            goto fail;
        rc = 0;
        goto done;
    }
    if (status == 0) {
        out->message = api_dup_printf("%s", curl_easy_strerror((CURLcode)curl_code));
    } else {
        const cJSON *msg = api_object_item(root, "message");
        if (!cJSON_IsString(msg))
            msg = api_object_item(root, "error");
        if (cJSON_IsString(msg) && msg->valuestring[0])
            out->message = api_dup_printf("HTTP %ld: %.*s", status, TEXT_MAX, msg->valuestring);
        else if (!root && body && len && len < 200 && out->verdict == PD_API_REJECT)
            out->message = api_dup_printf("HTTP %ld: %.*s", status, (int)len, body);
        else
            out->message = api_dup_printf("HTTP %ld: %s", status, status_words(status));
        out->errors = flatten_errors(api_object_item(root, "errors"));
    }
    if (!out->message)
        goto fail;
    rc = 0;
    goto done;
fail:
    pd_api_result_cleanup(out);
done:
    cJSON_Delete(root);
    return rc;
}

void pd_api_result_cleanup(struct pd_api_result *r)
{
    if (!r)
        return;
    free(r->run_id);
    free(r->body);
    free(r->message);
    free(r->errors);
    r->run_id = r->body = r->message = r->errors = NULL;
}

int pd_api_login_body(const struct pd_patchworks *pw, char **out)
{
    int rc = PD_ENOMEM;
    cJSON *obj = cJSON_CreateObject();
    const char *field = pw->login_field == PD_LOGIN_USERNAME ? "username" : "email";

    *out = NULL;
    if (!pw->email || !pw->password) {
        rc = PD_ECONFIG;
        goto done;
    }
    if (!obj || !cJSON_AddStringToObject(obj, field, pw->email) ||
        !cJSON_AddStringToObject(obj, "password", pw->password))
        goto done;
    *out = cJSON_PrintUnformatted(obj);
    rc = *out ? 0 : PD_ENOMEM;
done:
    cJSON_Delete(obj);
    return rc;
}

/* Path segments are ids: anything else would change the URL's meaning, so it is refused. */
bool api_segment_ok(const char *s)
{
    if (!s || !*s)
        return false;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '-' || *s == '_' || *s == '.'))
            return false;
    return true;
}

int api_base_len(const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return (int)n;
}

int pd_api_start_url(const struct pd_patchworks *pw, const char *flow_id, const char *version_id,
                     char **out)
{
    *out = NULL;
    if (!pw->start_url || !api_segment_ok(flow_id) || (version_id && !api_segment_ok(version_id)))
        return PD_ECONFIG;
    if (version_id)
        *out = api_dup_printf("%.*s/flows/%s/start/%s", api_base_len(pw->start_url), pw->start_url,
                              flow_id, version_id);
    else
        *out = api_dup_printf("%.*s/flows/%s/start", api_base_len(pw->start_url), pw->start_url,
                              flow_id);
    return *out ? 0 : PD_ENOMEM;
}

int pd_api_parse_login(const char *body, size_t len, uint64_t default_ttl_s, char **token,
                       uint64_t *expires_in_s)
{
    int rc = PD_EPROTOCOL;
    cJSON *root = api_parse_body(body, len);
    const cJSON *places[] = {root, api_object_item(root, "data")};

    *token = NULL;
    *expires_in_s = default_ttl_s;
    for (size_t p = 0; p < 2 && !*token; p++) {
        const cJSON *t = api_object_item(places[p], "token");
        if (!cJSON_IsString(t))
            t = api_object_item(places[p], "access_token");
        if (!cJSON_IsString(t) || !t->valuestring[0])
            continue;
        if (!(*token = strdup(t->valuestring))) {
            rc = PD_ENOMEM;
            goto done;
        }
        const cJSON *e = api_object_item(places[p], "expires_in");
        if (cJSON_IsNumber(e) && e->valuedouble > 0)
            /* A year at most: an absurd lifetime must not overflow the conversion. */
            *expires_in_s = e->valuedouble < 31536000.0 ? (uint64_t)e->valuedouble : 31536000;
        else if (cJSON_IsString(e) && atoll(e->valuestring) > 0)
            *expires_in_s = (uint64_t)atoll(e->valuestring);
        rc = 0;
    }
done:
    cJSON_Delete(root);
    return rc;
}

/* ---- cross-reference lookups ---------------------------------------------------------------- */

/* A lookup's id or value as text: strings exactly as sent (empty ones too: a value may be
 * empty), numbers through number_text, booleans as true/false; NULL for anything else. */
static char *value_text(const cJSON *v)
{
    if (cJSON_IsString(v) && v->valuestring)
        return strdup(v->valuestring);
    if (cJSON_IsNumber(v))
        return number_text(v->valuedouble);
    if (cJSON_IsBool(v))
        return strdup(cJSON_IsTrue(v) ? "true" : "false");
    return NULL;
}

/* The readers free what they built themselves, so api.c links without the lookup module (the
 * fuzz target builds it alone). */
static void row_free(struct pd_lookup_row *row)
{
    free(row->id);
    free(row->left);
    free(row->right);
    memset(row, 0, sizeof(*row));
}

static void info_free(struct pd_lookup_info *info)
{
    free(info->id);
    free(info->name);
    free(info->description);
    free(info->default_value);
    memset(info, 0, sizeof(*info));
}

static bool is_text(const cJSON *v)
{
    return cJSON_IsString(v) || cJSON_IsNumber(v) || cJSON_IsBool(v);
}

/* A record's field, flat or under "attributes" (JSON:API style). */
const cJSON *api_record_field(const cJSON *item, const char *key)
{
    const cJSON *v = api_object_item(item, key);
    return v ? v : api_object_item(api_object_item(item, "attributes"), key);
}

/* The record of a one-object answer: under "data", or the answer itself. */
static const cJSON *record_of(const cJSON *root)
{
    const cJSON *d = api_object_item(root, "data");
    return cJSON_IsObject(d) ? d : root;
}

static int read_row(const cJSON *item, struct pd_lookup_row *row)
{
    memset(row, 0, sizeof(*row));
    if (!cJSON_IsObject(item))
        return PD_EPROTOCOL;
    const cJSON *id = api_object_item(item, "id");
    const cJSON *left = api_record_field(item, "left_value"),
                *right = api_record_field(item, "right_value");
    row->id = value_text(id);
    row->left = value_text(left);
    row->right = !right || cJSON_IsNull(right) ? strdup("") : value_text(right);
    if (!row->id || !row->left || !row->right) {
        /* A field that is there and a scalar can only have failed for want of memory. */
        bool bad =
            !is_text(id) || !is_text(left) || (right && !cJSON_IsNull(right) && !is_text(right));
        row_free(row);
        return bad ? PD_EPROTOCOL : PD_ENOMEM;
    }
    return 0;
}

static int read_info(const cJSON *item, struct pd_lookup_info *info)
{
    memset(info, 0, sizeof(*info));
    if (!cJSON_IsObject(item))
        return PD_EPROTOCOL;
    const cJSON *id = api_object_item(item, "id");
    info->id = value_text(id);
    info->name = value_text(api_record_field(item, "name"));
    info->description = value_text(api_record_field(item, "description"));
    info->default_value = value_text(api_record_field(item, "default_value"));
    if (!info->id) {
        info_free(info);
        return is_text(id) ? PD_ENOMEM : PD_EPROTOCOL;
    }
    if (!info->name && !(info->name = strdup(""))) {
        info_free(info);
        return PD_ENOMEM;
    }
    return 0;
}

void pd_api_page_cleanup(struct pd_api_page *pg)
{
    if (!pg)
        return;
    free(pg->next);
    memset(pg, 0, sizeof(*pg));
}

/* A page number: a number (or with STRINGS a numeric string) >= 1, at most PD_API_MAX_PAGES;
 * else 0. */
unsigned long api_page_number(const cJSON *v, bool strings)
{
    double d = cJSON_IsNumber(v)                                   ? v->valuedouble
               : strings && cJSON_IsString(v) && v->valuestring[0] ? strtod(v->valuestring, NULL)
                                                                   : 0;
    if (!(d >= 1)) /* NaN too */
        return 0;
    return d > PD_API_MAX_PAGES ? PD_API_MAX_PAGES : (unsigned long)d;
}

/* The data list of page PAGE and its pagination; *ROOT is to be deleted by the caller. */
int api_read_page(const char *body, size_t len, unsigned long page, cJSON **root,
                  const cJSON **data, struct pd_api_page *pg, char *why, size_t whylen)
{
    memset(pg, 0, sizeof(*pg));
    if (!(*root = api_parse_body(body, len))) {
        snprintf(why, whylen, "page %lu of the list is not JSON", page);
        return PD_EPROTOCOL;
    }
    *data = cJSON_IsArray(*root) ? *root : api_object_item(*root, "data");
    if (!cJSON_IsArray(*data)) {
        snprintf(why, whylen, "page %lu of the list has no \"data\" list", page);
        return PD_EPROTOCOL;
    }
    const cJSON *next = api_object_item(api_object_item(*root, "links"), "next");
    pg->last_page =
        api_page_number(api_object_item(api_object_item(*root, "meta"), "last_page"), false);
    if (cJSON_IsString(next) && next->valuestring[0] && !(pg->next = strdup(next->valuestring)))
        return PD_ENOMEM;
    pg->items = (size_t)cJSON_GetArraySize(*data);
    return 0;
}

int pd_api_parse_lookups_page(const char *body, size_t len, unsigned long page,
                              struct pd_lookup_info **infos, size_t *n, struct pd_api_page *pg,
                              char *why, size_t whylen)
{
    cJSON *root = NULL;
    const cJSON *data = NULL, *item;
    int rc;

    *infos = NULL;
    *n = 0;
    if ((rc = api_read_page(body, len, page, &root, &data, pg, why, whylen)) != 0)
        goto fail;
    if (!(*infos = calloc(pg->items ? pg->items : 1, sizeof(**infos)))) {
        rc = PD_ENOMEM;
        goto fail;
    }
    cJSON_ArrayForEach(item, data)
    {
        if ((rc = read_info(item, &(*infos)[*n])) != 0) {
            if (rc == PD_EPROTOCOL)
                snprintf(why, whylen, "item %zu of page %lu has no id", *n + 1, page);
            goto fail;
        }
        (*n)++;
    }
    cJSON_Delete(root);
    return 0;
fail:
    for (size_t i = 0; *infos && i < *n; i++)
        info_free(&(*infos)[i]);
    free(*infos);
    *infos = NULL;
    *n = 0;
    pd_api_page_cleanup(pg);
    cJSON_Delete(root);
    return rc;
}

int pd_api_parse_rows_page(const char *body, size_t len, unsigned long page,
                           struct pd_lookup_rows *rows, struct pd_api_page *pg, char *why,
                           size_t whylen)
{
    cJSON *root = NULL;
    const cJSON *data = NULL, *item;
    int rc;

    memset(rows, 0, sizeof(*rows));
    if ((rc = api_read_page(body, len, page, &root, &data, pg, why, whylen)) != 0)
        goto fail;
    rows->cap = pg->items ? pg->items : 1;
    if (!(rows->v = calloc(rows->cap, sizeof(*rows->v)))) {
        rc = PD_ENOMEM;
        goto fail;
    }
    cJSON_ArrayForEach(item, data)
    {
        if ((rc = read_row(item, &rows->v[rows->n])) != 0) {
            if (rc == PD_EPROTOCOL)
                snprintf(why, whylen, "item %zu of page %lu has no id, left_value and right_value",
                         rows->n + 1, page);
            goto fail;
        }
        rows->n++;
    }
    cJSON_Delete(root);
    return 0;
fail:
    for (size_t i = 0; i < rows->n; i++)
        row_free(&rows->v[i]);
    free(rows->v);
    memset(rows, 0, sizeof(*rows));
    pd_api_page_cleanup(pg);
    cJSON_Delete(root);
    return rc;
}

static int read_info_into(const cJSON *item, void *out)
{
    return read_info(item, out);
}

static int read_row_into(const cJSON *item, void *out)
{
    return read_row(item, out);
}

/*
 * The record of a one-object answer, read into OUT with READ; PD_EPROTOCOL with WHY when the
 * answer is not JSON or holds no record.
 */
static int read_record(const char *body, size_t len, int (*read)(const cJSON *, void *), void *out,
                       char *why, size_t whylen)
{
    cJSON *root = api_parse_body(body, len);
    int rc;

    if (!root) {
        snprintf(why, whylen, "the answer is not JSON");
        return PD_EPROTOCOL;
    }
    if ((rc = read(record_of(root), out)) == PD_EPROTOCOL)
        snprintf(why, whylen, "the answer does not hold the record (no id)");
    cJSON_Delete(root);
    return rc;
}

int pd_api_parse_lookup(const char *body, size_t len, struct pd_lookup_info *out, char *why,
                        size_t whylen)
{
    memset(out, 0, sizeof(*out));
    return read_record(body, len, read_info_into, out, why, whylen);
}

int pd_api_parse_lookup_row(const char *body, size_t len, struct pd_lookup_row *out, char *why,
                            size_t whylen)
{
    memset(out, 0, sizeof(*out));
    return read_record(body, len, read_row_into, out, why, whylen);
}
