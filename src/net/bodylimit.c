/*
 * The request body the server really accepts, learned from its answers (see pd_bodylimit.h).
 * Kept in <state dir>/body_limit.json (two numbers) so that a restart does not learn it again
 * with a 413 per halving.
 */
#include "pd_bodylimit.h"

#include "pd_error.h"
#include "pd_fsutil.h"

#include <cjson/cJSON.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FILE_NAME "body_limit.json"
#define MIN_CUT 256

static void load(struct pd_bodylimit *l)
{
    char *text = NULL;
    if (!l->path || pd_fs_read_all(l->path, 4096, &text, NULL))
        return;
    cJSON *o = cJSON_Parse(text);
    const cJSON *ok = cJSON_GetObjectItemCaseSensitive(o, "accepted_max");
    const cJSON *no = cJSON_GetObjectItemCaseSensitive(o, "refused_min");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(o, "max_body");
    /* What was learned under another max_body still bounds the server; a damaged file is
     * simply learned again. */
    if (cJSON_IsNumber(ok) && cJSON_IsNumber(no) && ok->valuedouble >= 0 &&
        no->valuedouble > ok->valuedouble && no->valuedouble < 9e15 && cJSON_IsNumber(cfg)) {
        l->ok_max = (uint64_t)ok->valuedouble;
        l->refused_min = (uint64_t)no->valuedouble;
    }
    cJSON_Delete(o);
    free(text);
}

/* Lock held. Best effort: losing it costs a few 413s after a restart, nothing else. */
static void save(const struct pd_bodylimit *l)
{
    char text[160];
    if (!l->path || l->refused_min == UINT64_MAX)
        return;
    int n = snprintf(text, sizeof(text),
                     "{\"max_body\": %" PRIu64 ", \"accepted_max\": %" PRIu64
                     ", \"refused_min\": %" PRIu64 "}\n",
                     l->configured, l->ok_max, l->refused_min);
    (void)pd_fs_write_atomic(l->path, text, (size_t)n, 0600);
}

int pd_bodylimit_init(struct pd_bodylimit *l, uint64_t max_body, const char *state_dir)
{
    memset(l, 0, sizeof(*l));
    pthread_mutex_init(&l->lock, NULL);
    l->configured = max_body;
    l->refused_min = UINT64_MAX;
    if (state_dir && asprintf(&l->path, "%s/" FILE_NAME, state_dir) < 0) {
        l->path = NULL;
        return PD_ENOMEM;
    }
    load(l);
    return 0;
}

void pd_bodylimit_cleanup(struct pd_bodylimit *l)
{
    free(l->path);
    l->path = NULL;
    pthread_mutex_destroy(&l->lock);
}

void pd_bodylimit_accepted(struct pd_bodylimit *l, uint64_t len)
{
    pthread_mutex_lock(&l->lock);
    if (len > l->ok_max) {
        l->ok_max = len;
        /* The server takes more than it once refused: its limit went up. */
        if (l->refused_min <= len)
            l->refused_min = UINT64_MAX;
        save(l);
    }
    pthread_mutex_unlock(&l->lock);
}

void pd_bodylimit_refused(struct pd_bodylimit *l, uint64_t len)
{
    pthread_mutex_lock(&l->lock);
    if (len < l->refused_min) {
        l->refused_min = len;
        /* It refuses what it once took: its limit went down. */
        if (l->ok_max >= len)
            l->ok_max = 0;
        save(l);
    }
    pthread_mutex_unlock(&l->lock);
}

uint64_t pd_bodylimit_budget(struct pd_bodylimit *l)
{
    pthread_mutex_lock(&l->lock);
    uint64_t b = l->configured;
    /* Once a 413 taught a lower limit, new files are cut just below the smallest body
     * refused: a file whose largest record lies between what passed and what was refused must
     * still be tried (a 413 then narrows the bounds for everyone). */
    if (l->refused_min != UINT64_MAX && l->refused_min <= b)
        b = l->refused_min - 1;
    pthread_mutex_unlock(&l->lock);
    return b < MIN_CUT ? MIN_CUT : b;
}

int pd_bodylimit_recut(uint64_t ok_max, uint64_t refused_min, uint64_t refused_len, uint64_t need,
                       uint64_t *budget)
{
    if (refused_min > refused_len)
        refused_min = refused_len;
    if (ok_max >= refused_min)
        ok_max = 0;
    /* Its largest record needs at least what was refused: it can never go. */
    if (need >= refused_min)
        return -1;
    uint64_t hi = refused_min - 1;
    uint64_t cut = ok_max ? ok_max + (hi - ok_max) / 2 : refused_min / 2;
    if (cut < need)
        cut = need; /* never below a record that may still fit */
    if (cut < MIN_CUT)
        cut = MIN_CUT < hi ? MIN_CUT : hi;
    if (cut >= refused_len)
        cut = refused_len - 1;
    *budget = cut;
    return 0;
}

int pd_bodylimit_fits(struct pd_bodylimit *l, uint64_t need, uint64_t *refused)
{
    pthread_mutex_lock(&l->lock);
    int rc = need >= l->refused_min ? -1 : 0;
    *refused = l->refused_min;
    pthread_mutex_unlock(&l->lock);
    return rc;
}

void pd_bodylimit_bounds(struct pd_bodylimit *l, uint64_t *ok_max, uint64_t *refused_min)
{
    pthread_mutex_lock(&l->lock);
    *ok_max = l->ok_max;
    *refused_min = l->refused_min;
    pthread_mutex_unlock(&l->lock);
}
