/*
 * What the daemon hands out about itself, besides the status document: the gauges of
 * /metrics (pd_daemon_sample, once a beat) and, with [cluster], this host's heartbeat summary
 * (pd_cluster_set_beat), cut from the status document: per watch its backlog, its failures
 * lately and its last delivery, and whether the host is on Redis's shared rate or its own
 * share. `patchdrop status --cluster` shows it.
 */
#include "daemon_internal.h"

#include "pd_daemon.h"
#include "pd_metrics.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static const char *const backlog_keys[] = {"settling", "ready",  "claimed", "in_flight",
                                           "retrying", "parked", "batched", "finishing"};

/* What one watch of the status document comes to. */
static cJSON *watch_summary(const cJSON *w)
{
    cJSON *o = cJSON_CreateObject();
    const cJSON *e, *delivered = cJSON_GetObjectItemCaseSensitive(w, "delivered");
    const char *last = NULL;
    double backlog = 0;

    if (!o)
        return NULL;
    cJSON_AddItemToObject(o, "name", cJSON_Duplicate(cJSON_GetObjectItem(w, "name"), 1));
    for (size_t i = 0; i < sizeof(backlog_keys) / sizeof(backlog_keys[0]); i++)
        backlog += cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(w, backlog_keys[i]));
    cJSON_AddNumberToObject(o, "backlog", backlog);
    cJSON_AddNumberToObject(o, "failed_lately",
                            cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(w, "failed")));
    cJSON_ArrayForEach(e, delivered)
    {
        const char *at = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "at"));
        if (at && (!last || strcmp(at, last) > 0))
            last = at; /* ISO 8601 UTC: the latest sorts last */
    }
    if (last)
        cJSON_AddStringToObject(o, "last_delivery", last);
    else
        cJSON_AddNullToObject(o, "last_delivery");
    return o;
}

char *dw_beat_json(void *arg)
{
    const struct pd_daemon *d = arg;
    char *doc = pd_daemon_status_json(d, NULL), *out = NULL;
    cJSON *full = doc ? cJSON_Parse(doc) : NULL, *o = cJSON_CreateObject(), *ws;
    const cJSON *w, *account = cJSON_GetObjectItemCaseSensitive(full, "account");
    static const char *const copied[] = {"version", "pid", "now", "state"};

    free(doc);
    if (full && o && (ws = cJSON_CreateArray())) {
        for (size_t i = 0; i < sizeof(copied) / sizeof(copied[0]); i++)
            cJSON_AddItemToObject(o, copied[i],
                                  cJSON_Duplicate(cJSON_GetObjectItem(full, copied[i]), 1));
        cJSON_AddItemToObject(
            o, "requests_in_flight",
            cJSON_Duplicate(cJSON_GetObjectItem(account, "requests_in_flight"), 1));
        cJSON_AddItemToObject(o, "cluster",
                              cJSON_Duplicate(cJSON_GetObjectItem(account, "cluster"), 1));
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(full, "watches"))
        {
            cJSON *s = watch_summary(w);
            if (s)
                cJSON_AddItemToArray(ws, s);
        }
        cJSON_AddItemToObject(o, "watches", ws);
        out = cJSON_PrintUnformatted(o);
    }
    cJSON_Delete(full);
    cJSON_Delete(o);
    return out;
}

/* ---- metrics ------------------------------------------------------------------------------ */

void pd_daemon_sample(const struct pd_daemon *d, struct pd_metrics *m)
{
    struct pd_metrics_watch_sample *ws = calloc(d->nwatches ? d->nwatches : 1, sizeof(*ws));
    struct pd_metrics_sample s = {.watches = ws};
    struct pd_client_stats cs;

    if (!m || !ws) {
        free(ws);
        return;
    }
    if (d->client) {
        cs = pd_client_stats(d->client);
        s.requests_waiting = cs.waiting;
        s.requests_in_flight = cs.in_flight;
        s.failing_since_ms = cs.failing_since_ms;
        s.last_failure_status = cs.last_failure_status;
    }
    s.runs_followed = d->nruns;
    /* A candidate's age counts from when its content last changed, so a file still being
     * uploaded looks young; names never observed (not regular files) do not count. */
    for (size_t i = 0; i < d->nwatches; i++) {
        const struct dwatch *w = &d->watches[i];
        struct pd_metrics_watch_sample *o = &ws[s.nwatches++];
        o->watch = w->cfg->name;
        for (size_t b = 0; b < w->nbuckets; b++) {
            for (const struct cand *c = w->buckets[b]; c; c = c->next) {
                if (!c->obs.seen)
                    continue;
                o->files_pending++;
                if (!o->oldest_since_ms || c->obs.unchanged_since_ms < o->oldest_since_ms)
                    o->oldest_since_ms = c->obs.unchanged_since_ms;
            }
        }
        for (const struct job *j = d->jobs; j; j = j->next) {
            if (j->w != w)
                continue;
            o->files_pending++;
            if (!o->oldest_since_ms || j->since_ms < o->oldest_since_ms)
                o->oldest_since_ms = j->since_ms;
        }
    }
    pd_metrics_sample(m, &s);
    free(ws);
}
