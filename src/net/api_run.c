/*
 * Following a flow run (docs/patchworks-api.md, "Following a flow run"): the URLs of a run, its
 * logs and its retry, built from templates of the config, and the reading of their answers,
 * as defensive as src/net/api.c: records flat or under data and attributes, numbers or strings.
 */
#include "pd_api.h"

#include "api_internal.h"
#include "pd_config.h"
#include "pd_error.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

int pd_api_run_url(const struct pd_patchworks *pw, const char *run_id, char **out)
{
    return pd_api_flow_run_url(pw, PD_API_RUN, run_id, out);
}

const char *pd_api_run_status_name(long status)
{
    switch (status) {
    case 1:
        return "running";
    case 2:
        return "success";
    case 3:
        return "failed";
    case 4:
        return "stopped";
    case 5:
        return "partial success";
    default:
        return NULL;
    }
}

/*
 * A flow-run record's field KEY holding a scalar: flat, under attributes, under data or under
 * data.attributes, the first place that has one (an empty string says nothing).
 */
static const cJSON *run_field(const cJSON *root, const char *key)
{
    const cJSON *data = api_object_item(root, "data");
    const cJSON *places[] = {root, api_object_item(root, "attributes"), data,
                             api_object_item(data, "attributes")};
    for (size_t p = 0; p < sizeof(places) / sizeof(places[0]); p++) {
        const cJSON *v = api_object_item(places[p], key);
        if (api_has_text(v))
            return v;
    }
    return NULL;
}

/* A status as its number: a number, a numeric string or the words; 0 for anything else. */
static long status_number(const cJSON *s)
{
    if (cJSON_IsNumber(s))
        return s->valuedouble >= 1 && s->valuedouble <= 5 && s->valuedouble == (long)s->valuedouble
                   ? (long)s->valuedouble
                   : 0;
    if (!cJSON_IsString(s))
        return 0;
    char *end;
    long n = strtol(s->valuestring, &end, 10);
    if (end != s->valuestring && !*end)
        return n >= 1 && n <= 5 ? n : 0;
    for (long i = 1; i <= 5; i++)
        if (!strcmp(s->valuestring, pd_api_run_status_name(i)) ||
            !strcmp(s->valuestring, pd_api_run_outcome(i)))
            return i;
    return 0;
}

int pd_api_parse_run_status(const char *body, size_t len, char **words, char **raw)
{
    int rc = PD_EPROTOCOL;
    cJSON *root = api_parse_body(body, len);
    const cJSON *s = run_field(root, "status");

    *words = *raw = NULL;
    if (!s)
        goto done;
    rc = PD_ENOMEM;
    if (!(*raw = api_scalar_text(s)))
        goto done;
    const char *name = pd_api_run_status_name(status_number(s));
    if (!(*words = strdup(name ? name : *raw))) {
        free(*raw);
        *raw = NULL;
        goto done;
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

/* BASE without its trailing '/' and TMPL with every {id} replaced by ID (checked). */
static int expand_id(const char *base, const char *tmpl, const char *id, char **url)
{
    *url = NULL;
    if (!base || !tmpl || !api_segment_ok(id))
        return PD_ECONFIG;
    size_t count = 0, idlen = strlen(id);
    for (const char *t = strstr(tmpl, "{id}"); t; t = strstr(t + 4, "{id}"))
        count++;
    size_t blen = (size_t)api_base_len(base), len = blen + strlen(tmpl) + count * idlen;
    char *out = malloc(len + 1), *o = out;
    if (!out)
        return PD_ENOMEM;
    memcpy(o, base, blen);
    o += blen;
    for (const char *t = tmpl, *hit; *t; t = hit + 4) {
        if (!(hit = strstr(t, "{id}"))) {
            strcpy(o, t);
            o += strlen(t);
            break;
        }
        memcpy(o, t, (size_t)(hit - t));
        o += hit - t;
        memcpy(o, id, idlen);
        o += idlen;
    }
    *o = '\0';
    *url = out;
    return 0;
}

int pd_api_flow_run_url(const struct pd_patchworks *pw, enum pd_api_run_path which,
                        const char *run_id, char **url)
{
    /* The defaults, for a config built without the keys (tests, tools). */
    const char *tmpl = which == PD_API_RUN_LOGS    ? pw->flow_run_logs_path
                       : which == PD_API_RUN_RETRY ? pw->flow_run_retry_path
                                                   : pw->flow_run_path;
    if (!tmpl)
        tmpl = which == PD_API_RUN_LOGS    ? "/flow-runs/{id}/flow-run-logs"
               : which == PD_API_RUN_RETRY ? "/flow-runs/{id}/retry"
                                           : "/flow-runs/{id}";
    return expand_id(pw->core_url, tmpl, run_id, url);
}

int pd_api_run_logs_page_url(const struct pd_patchworks *pw, const char *run_id, unsigned page,
                             char **url)
{
    char *path = NULL;
    int rc = pd_api_flow_run_url(pw, PD_API_RUN_LOGS, run_id, &path);
    if (rc)
        return rc;
    *url =
        api_dup_printf("%s?page=%u&per_page=%d", path, page ? page : 1, PD_API_RUN_LOGS_PER_PAGE);
    free(path);
    return *url ? 0 : PD_ENOMEM;
}

int pd_api_dashboard_url(const struct pd_patchworks *pw, const char *run_id, char **url)
{
    const char *d = pw->dashboard_url ? pw->dashboard_url
                                      : "https://app.wearepatchworks.com/flow-run-logs/{id}";
    return expand_id("", d, run_id, url);
}

const char *pd_api_run_outcome(long status)
{
    return status == 5 ? "partial" : pd_api_run_status_name(status);
}

void pd_api_run_cleanup(struct pd_api_run *r)
{
    if (!r)
        return;
    free(r->started_at);
    free(r->finished_at);
    memset(r, 0, sizeof(*r));
}

int pd_api_parse_run(const char *body, size_t len, struct pd_api_run *out)
{
    cJSON *root = api_parse_body(body, len);
    const cJSON *started, *finished;
    int rc = PD_EPROTOCOL;

    memset(out, 0, sizeof(*out));
    if (!cJSON_IsObject(root))
        goto done;
    out->status = status_number(run_field(root, "status"));
    started = run_field(root, "started_at");
    finished = run_field(root, "finished_at");
    out->started_at = started ? api_scalar_text(started) : NULL;
    out->finished_at = finished ? api_scalar_text(finished) : NULL;
    rc = 0;
    if ((started && !out->started_at) || (finished && !out->finished_at)) {
        pd_api_run_cleanup(out);
        rc = PD_ENOMEM;
    }
done:
    cJSON_Delete(root);
    return rc;
}

/* A scalar as text of at most MAX bytes, cut before a UTF-8 continuation byte. */
static char *capped_text(const cJSON *v, size_t max)
{
    char *t = api_scalar_text(v);
    if (t && strlen(t) > max) {
        size_t n = max;
        while (n > 0 && ((unsigned char)t[n] & 0xC0) == 0x80)
            n--;
        t[n] = '\0';
    }
    return t;
}

/* One log entry; 1 when it holds none of its fields (skipped), or PD_ENOMEM. */
static int read_log(const cJSON *item, struct pd_api_run_log *e)
{
    const cJSON *time = api_record_field(item, "created_at");
    const cJSON *f[] = {api_has_text(time) ? time : api_record_field(item, "time"),
                        api_record_field(item, "level"), api_record_field(item, "message")};
    char **dst[] = {&e->time, &e->level, &e->message};
    const size_t max[] = {TEXT_MAX, TEXT_MAX, PD_API_RUN_LOG_MESSAGE_MAX};
    bool any = false;

    memset(e, 0, sizeof(*e));
    for (size_t i = 0; i < 3; i++) {
        if (!api_has_text(f[i]))
            continue;
        any = true;
        if (!(*dst[i] = capped_text(f[i], max[i]))) {
            free(e->time);
            free(e->level);
            memset(e, 0, sizeof(*e));
            return PD_ENOMEM;
        }
    }
    return any ? 0 : 1;
}

/*
 * The page after this one: from meta's current_page and last_page, else links.next's page=
 * (only forward, so a server naming the same page again cannot loop a reader); 0: the last.
 */
static unsigned next_page_of(const cJSON *root, const struct pd_api_page *pg)
{
    const cJSON *meta = api_object_item(root, "meta");
    unsigned long cur = api_page_number(api_object_item(meta, "current_page"), true);
    unsigned long last = api_page_number(api_object_item(meta, "last_page"), true);
    if (cur && last)
        return cur < last ? (unsigned)cur + 1 : 0;
    const char *q = pg->next ? strstr(pg->next, "page=") : NULL;
    while (q && q > pg->next && q[-1] != '?' && q[-1] != '&')
        q = strstr(q + 5, "page=");
    if (!q)
        return 0;
    unsigned long n = strtoul(q + 5, NULL, 10);
    if (n < 1 || n > PD_API_MAX_PAGES || (cur && n <= cur))
        return 0;
    return (unsigned)n;
}

int pd_api_parse_run_logs(const char *body, size_t len, struct pd_api_run_log **entries, size_t *n,
                          unsigned *next_page)
{
    cJSON *root = NULL;
    const cJSON *data = NULL, *item;
    struct pd_api_page pg;
    char why[128];
    int rc;

    *entries = NULL;
    *n = 0;
    *next_page = 0;
    if ((rc = api_read_page(body, len, 1, &root, &data, &pg, why, sizeof(why))) != 0)
        goto fail;
    size_t cap = pg.items < PD_API_RUN_LOGS_MAX ? pg.items : PD_API_RUN_LOGS_MAX;
    if (!(*entries = calloc(cap ? cap : 1, sizeof(**entries)))) {
        rc = PD_ENOMEM;
        goto fail;
    }
    cJSON_ArrayForEach(item, data)
    {
        if (*n == cap)
            break;
        rc = read_log(item, &(*entries)[*n]);
        if (rc == PD_ENOMEM)
            goto fail;
        *n += rc == 0;
    }
    *next_page = next_page_of(root, &pg);
    pd_api_page_cleanup(&pg);
    cJSON_Delete(root);
    return 0;
fail:
    pd_api_run_logs_free(*entries, *n);
    *entries = NULL;
    *n = 0;
    pd_api_page_cleanup(&pg);
    cJSON_Delete(root);
    return rc;
}

void pd_api_run_logs_free(struct pd_api_run_log *e, size_t n)
{
    for (size_t i = 0; e && i < n; i++) {
        free(e[i].time);
        free(e[i].level);
        free(e[i].message);
    }
    free(e);
}

int pd_api_parse_retry(const char *body, size_t len, char **new_run_id)
{
    cJSON *root = api_parse_body(body, len);
    *new_run_id = api_find_run_id(root);
    cJSON_Delete(root);
    return *new_run_id ? 0 : PD_EPROTOCOL;
}
