/*
 * Following flow runs (pd_follow.h): the plan, the records in the state dir, the receipts.
 */
#include "pd_follow.h"

#include "pd_clock.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_jsonfmt.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define RECORD_MAX (64u << 10)
#define RECEIPT_MAX (64u << 20)

/* ---- the plan ---------------------------------------------------------------------------- */

const char *pd_run_outcome_name(enum pd_run_outcome o)
{
    static const char *const names[] = {"running", "success", "failed",
                                        "stopped", "partial", "unknown"};
    return (unsigned)o < sizeof(names) / sizeof(names[0]) ? names[o] : "unknown";
}

enum pd_run_outcome pd_run_outcome_of(long status)
{
    switch (status) {
    case 2:
        return PD_RUN_SUCCESS;
    case 3:
        return PD_RUN_FAILED;
    case 4:
        return PD_RUN_STOPPED;
    case 5:
        return PD_RUN_PARTIAL;
    default: /* 1, or a number this version does not know: not final */
        return PD_RUN_RUNNING;
    }
}

bool pd_run_final(enum pd_run_outcome o)
{
    return o != PD_RUN_RUNNING;
}

uint64_t pd_follow_delay(uint64_t prev, uint64_t first, uint64_t cap)
{
    uint64_t next = prev ? (prev > cap / 2 ? cap : prev * 2) : first;
    return next < cap ? next : cap;
}

enum pd_follow_step pd_follow_decide(enum pd_run_outcome o, int on_failure, unsigned retries_used,
                                     unsigned max_retries)
{
    if (o == PD_RUN_SUCCESS)
        return PD_FOLLOW_RECORD;
    /* Unknown is not a failure of the run: nobody knows; said, never acted on. */
    if (o == PD_RUN_UNKNOWN || o == PD_RUN_RUNNING || on_failure == PD_FLOW_REPORT)
        return PD_FOLLOW_REPORT;
    if (on_failure == PD_FLOW_RETRY && retries_used < max_retries)
        return PD_FOLLOW_RETRY;
    return PD_FOLLOW_FAIL;
}

/* ---- records ----------------------------------------------------------------------------- */

const char *pd_follow_run(const struct pd_follow_rec *r)
{
    return r->nruns ? r->runs[r->nruns - 1] : NULL;
}

int pd_follow_add_run(struct pd_follow_rec *r, const char *run_id)
{
    char **grown = realloc(r->runs, (r->nruns + 1) * sizeof(*grown));
    if (!grown)
        return PD_ENOMEM;
    r->runs = grown;
    if (!(r->runs[r->nruns] = strdup(run_id)))
        return PD_ENOMEM;
    r->nruns++;
    return 0;
}

void pd_follow_cleanup(struct pd_follow_rec *r)
{
    for (size_t i = 0; i < r->nruns; i++)
        free(r->runs[i]);
    free(r->runs);
    free(r->watch);
    free(r->file);
    free(r->claim_id);
    free(r->archive_dir);
    free(r->path);
    memset(r, 0, sizeof(*r));
}

int pd_follow_save(struct pd_follow_rec *r, const char *dir)
{
    cJSON *o = cJSON_CreateObject(), *runs = o ? cJSON_AddArrayToObject(o, "runs") : NULL;
    char *text = NULL, *path = NULL;
    int rc = PD_ENOMEM;

    for (size_t i = 0; runs && i < r->nruns; i++)
        cJSON_AddItemToArray(runs, cJSON_CreateString(r->runs[i]));
    if (!runs || !cJSON_AddStringToObject(o, "watch", r->watch) ||
        !cJSON_AddStringToObject(o, "file", r->file) ||
        !cJSON_AddStringToObject(o, "claim_id", r->claim_id) ||
        !cJSON_AddStringToObject(o, "archive_dir", r->archive_dir) ||
        !cJSON_AddNumberToObject(o, "chunk", r->chunk) ||
        !cJSON_AddNumberToObject(o, "started_ms", (double)r->started_ms) ||
        !cJSON_AddNumberToObject(o, "next_ms", (double)r->next_ms) ||
        !cJSON_AddNumberToObject(o, "delay_ms", (double)r->delay_ms) ||
        !(text = cJSON_PrintUnformatted(o)) ||
        asprintf(&path, "%s/%s-%u.json", dir, r->claim_id, r->chunk) < 0) {
        path = NULL;
        goto out;
    }
    if ((rc = pd_fs_mkdirs(dir, 0700)) == 0 &&
        (rc = pd_fs_write_atomic(path, text, strlen(text), 0600)) == 0) {
        free(r->path);
        r->path = path;
        path = NULL;
    }
out:
    free(path);
    free(text);
    cJSON_Delete(o);
    return rc;
}

static char *str_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

static uint64_t num_of(const cJSON *o, const char *key, bool *ok)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9.0e15) {
        *ok = false;
        return 0;
    }
    return (uint64_t)v->valuedouble;
}

int pd_follow_load(const char *path, struct pd_follow_rec *r)
{
    char *text = NULL;
    size_t len;
    bool ok = true;
    int rc;

    memset(r, 0, sizeof(*r));
    if ((rc = pd_fs_read_all(path, RECORD_MAX, &text, &len)))
        return rc;
    cJSON *o = cJSON_ParseWithLength(text, len);
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(o, "runs"), *run;
    r->watch = str_of(o, "watch");
    r->file = str_of(o, "file");
    r->claim_id = str_of(o, "claim_id");
    r->archive_dir = str_of(o, "archive_dir");
    r->chunk = (unsigned)num_of(o, "chunk", &ok);
    r->started_ms = num_of(o, "started_ms", &ok);
    r->next_ms = num_of(o, "next_ms", &ok);
    r->delay_ms = num_of(o, "delay_ms", &ok);
    cJSON_ArrayForEach(run, runs)
    {
        if (!cJSON_IsString(run) || pd_follow_add_run(r, run->valuestring))
            ok = false;
    }
    r->path = strdup(path);
    if (!ok || !r->watch || !r->file || !r->claim_id || !r->archive_dir || !r->nruns || !r->path) {
        pd_follow_cleanup(r);
        rc = PD_ESTATE;
    }
    cJSON_Delete(o);
    free(text);
    return rc;
}

/* ---- receipts ---------------------------------------------------------------------------- */

char *pd_follow_find_receipt(const char *dir, const char *base, const char *claim_id)
{
    return pd_follow_find_sidecar(dir, base, ".receipt.json", claim_id);
}

char *pd_follow_find_sidecar(const char *dir, const char *base, const char *sidecar,
                             const char *claim_id)
{
    char name[NAME_MAX + 1];

    for (unsigned k = 0; k < 100000; k++) {
        char *path = NULL, *text = NULL;
        struct stat st;
        if (pd_fs_numbered_name(base, k, name, sizeof(name) - strlen(sidecar)) ||
            asprintf(&path, "%s/%s%s", dir, name, sidecar) < 0)
            return NULL;
        if (lstat(path, &st)) {
            char *file = NULL;
            /* Past the last name the file could have taken: no receipt of this claim. */
            bool more = asprintf(&file, "%s/%s", dir, name) >= 0 && lstat(file, &st) == 0;
            free(file);
            free(path);
            if (!more)
                return NULL;
            continue;
        }
        bool ours = S_ISREG(st.st_mode) && pd_fs_read_all(path, RECEIPT_MAX, &text, NULL) == 0 &&
                    strstr(text, claim_id) != NULL;
        free(text);
        if (ours)
            return path;
        free(path);
    }
    return NULL;
}

/* Sets KEY of O to ITEM, in place when it is there (the receipt's order stays). */
static bool put(cJSON *o, const char *key, cJSON *item)
{
    if (!item)
        return false;
    if (cJSON_GetObjectItemCaseSensitive(o, key))
        return cJSON_ReplaceItemInObjectCaseSensitive(o, key, item);
    return cJSON_AddItemToObject(o, key, item);
}

/* The receipt's flow_result from its chunks' outcomes (worst first). */
static const char *flow_result(const cJSON *chunks)
{
    static const char *const worst[] = {"failed", "stopped", "partial", "unknown"};
    bool running = false, seen[4] = {false};
    const cJSON *c;

    cJSON_ArrayForEach(c, chunks)
    {
        const cJSON *o = cJSON_GetObjectItemCaseSensitive(c, "outcome");
        if (!cJSON_IsString(o))
            continue; /* no run to follow (an answer without a run id) */
        running |= !strcmp(o->valuestring, "running");
        for (size_t i = 0; i < 4; i++)
            seen[i] |= !strcmp(o->valuestring, worst[i]);
    }
    if (running)
        return "running";
    for (size_t i = 0; i < 4; i++)
        if (seen[i])
            return worst[i];
    return "success";
}

static bool apply_chunk(cJSON *c, const struct pd_follow_result *res)
{
    char when[80];
    bool ok = put(c, "outcome", cJSON_CreateString(res->outcome));
    if (res->finished_ms) {
        pd_clock_iso(res->finished_ms, when, sizeof(when));
        ok = ok && put(c, "finished_at", cJSON_CreateString(when));
    }
    if (res->dashboard)
        ok = ok && put(c, "dashboard", cJSON_CreateString(res->dashboard));
    if (res->nruns > 1)
        ok = ok && put(c, "runs", cJSON_CreateStringArray(res->runs, (int)res->nruns));
    return ok;
}

char *pd_follow_receipt_apply(const char *receipt, const struct pd_follow_result *res)
{
    cJSON *o = cJSON_Parse(receipt);
    cJSON *chunks = cJSON_GetObjectItemCaseSensitive(o, "chunks");
    cJSON *c = cJSON_GetArrayItem(chunks, (int)res->chunk);
    char *text = NULL;

    if (cJSON_IsObject(c) && apply_chunk(c, res) &&
        put(o, "flow_result", cJSON_CreateString(flow_result(chunks))))
        text = pd_jsonfmt_print(o);
    cJSON_Delete(o);
    return text;
}

/* An ISO time as pd_clock_iso writes it (2026-11-30T10:56:55.156Z): ms since the epoch, or 0. */
static uint64_t iso_ms(const char *s)
{
    struct tm tm = {0};
    int ms = 0;

    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &ms) < 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    time_t t = timegm(&tm);
    return t > 0 ? (uint64_t)t * 1000 + (uint64_t)(ms >= 0 && ms < 1000 ? ms : 0) : 0;
}

enum pd_run_outcome pd_follow_receipt_outcome(const char *receipt, size_t len, unsigned chunk,
                                              const char *run_id, uint64_t *finished_ms)
{
    cJSON *o = cJSON_ParseWithLength(receipt, len);
    const cJSON *c = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(o, "chunks"), (int)chunk);
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(c, "runs");
    const cJSON *run = cJSON_IsArray(runs) ? cJSON_GetArrayItem(runs, cJSON_GetArraySize(runs) - 1)
                                           : cJSON_GetObjectItemCaseSensitive(c, "flow_run_id");
    const char *outcome = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "outcome"));
    enum pd_run_outcome found = PD_RUN_RUNNING;

    *finished_ms = 0;
    /* Only the outcome of the run followed now: after a retry an older run's may be there. */
    if (outcome && cJSON_IsString(run) && run_id && !strcmp(run->valuestring, run_id))
        for (enum pd_run_outcome k = PD_RUN_SUCCESS; k <= PD_RUN_UNKNOWN; k++)
            if (!strcmp(outcome, pd_run_outcome_name(k))) {
                found = k;
                *finished_ms = iso_ms(
                    cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(c, "finished_at")));
            }
    cJSON_Delete(o);
    return found;
}

int pd_follow_saved_outcome(const char *path, unsigned chunk, const char *run_id,
                            enum pd_run_outcome *o, uint64_t *finished_ms)
{
    char *text = NULL;
    size_t len;
    int rc = pd_fs_read_all(path, RECEIPT_MAX, &text, &len);

    *o = PD_RUN_RUNNING;
    *finished_ms = 0;
    if (!rc)
        *o = pd_follow_receipt_outcome(text, len, chunk, run_id, finished_ms);
    free(text);
    return rc;
}

int pd_follow_receipt_update(const char *path, const char *tmpdir,
                             const struct pd_follow_result *res)
{
    char *text = NULL, *next;
    size_t len;
    int rc;

    if ((rc = pd_fs_read_all(path, RECEIPT_MAX, &text, &len)))
        return rc;
    next = pd_follow_receipt_apply(text, res);
    free(text);
    if (!next)
        return PD_ESTATE;
    rc = pd_fs_replace_from(tmpdir, path, next, strlen(next), PD_FS_FILE_MODE);
    free(next);
    return rc;
}
