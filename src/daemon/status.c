/*
 * The daemon's live state for the operator (`patchdrop status`, /api/status, the status page):
 * one JSON document built on the loop thread from what the daemon holds, and the two small rings
 * it cannot rebuild, the last files delivered and the last ones failed, per watch, and their
 * history a minute at a time (files delivered and failed per watch, the account's requests and
 * limit) for the status page's charts. The field names are stable: README's "Status" section
 * documents them.
 */
#include "daemon_internal.h"

#include "pd_api.h"
#include "pd_auth.h"
#include "pd_cluster.h"
#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_log.h"

#include <cjson/cJSON.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define RING 10         /* deliveries and failures kept per watch */
#define RING_RUNS 4     /* flow-run ids kept per delivery */
#define RETRYING_MAX 64 /* requests waiting for a retry looked at */
#define HIST_MIN 360    /* minutes of history kept: 6 hours, fixed memory */
#define MINUTE_MS 60000
#define SAMPLE_MS 500   /* the client's counters are read at most this often (loop time) */

struct done_rec {
    char *name, *reason, *moved_to;
    char *runs[RING_RUNS];
    size_t nruns, nchunks;
    uint64_t at_ms, size;
    long status;
    bool duplicate;
};

struct ring {
    struct done_rec rec[RING];
    unsigned next, count;
};

/* Counts per wall-clock minute: minute M is in n[M % HIST_MIN]. */
struct hist {
    uint32_t n[HIST_MIN];
};

struct dstatus {
    size_t nwatches;
    struct ring *delivered, *failed; /* one each per watch, by index */
    struct hist *hdelivered, *hfailed; /* files per minute, one each per watch */
    struct hist requests, limit;       /* the account's requests started, its limit a minute */
    uint64_t minute, first; /* the newest minute counted and the first (wall ms / MINUTE_MS) */
    bool started;
    uint64_t sent, sampled_ms; /* the client's requests started at its last reading; when, on
                                * the loop's clock: the cost is real time, whatever the clock */
};

static void rec_clear(struct done_rec *r)
{
    free(r->name);
    free(r->reason);
    free(r->moved_to);
    for (size_t i = 0; i < r->nruns; i++)
        free(r->runs[i]);
    memset(r, 0, sizeof(*r));
}

void status_free(struct pd_daemon *d)
{
    struct dstatus *s = d->status;

    if (!s)
        return;
    for (size_t w = 0; w < s->nwatches; w++)
        for (unsigned i = 0; i < RING; i++) {
            rec_clear(&s->delivered[w].rec[i]);
            rec_clear(&s->failed[w].rec[i]);
        }
    free(s->delivered);
    free(s->failed);
    free(s->hdelivered);
    free(s->hfailed);
    free(s);
    d->status = NULL;
}

static struct dstatus *status_of(struct pd_daemon *d)
{
    struct dstatus *s = d->status;

    if (s)
        return s;
    if (!(s = calloc(1, sizeof(*s))))
        return NULL;
    s->nwatches = d->nwatches;
    s->delivered = calloc(d->nwatches ? d->nwatches : 1, sizeof(struct ring));
    s->failed = calloc(d->nwatches ? d->nwatches : 1, sizeof(struct ring));
    s->hdelivered = calloc(d->nwatches ? d->nwatches : 1, sizeof(struct hist));
    s->hfailed = calloc(d->nwatches ? d->nwatches : 1, sizeof(struct hist));
    d->status = s;
    if (!s->delivered || !s->failed || !s->hdelivered || !s->hfailed)
        status_free(d);
    return d->status;
}

/* Moves the history on to minute M: the minutes in between had nothing. A clock set back
 * counts in the newest minute. */
static void hist_roll(struct dstatus *s, uint64_t m)
{
    if (!s->started) {
        s->started = true;
        s->first = s->minute = m;
        return;
    }
    for (uint64_t k = s->minute + 1; k <= m && k <= s->minute + HIST_MIN; k++) {
        unsigned slot = (unsigned)(k % HIST_MIN);
        for (size_t w = 0; w < s->nwatches; w++)
            s->hdelivered[w].n[slot] = s->hfailed[w].n[slot] = 0;
        s->requests.n[slot] = s->limit.n[slot] = 0;
    }
    if (m > s->minute)
        s->minute = m;
}

/* H's count for the minute of wall time NOW_MS, after the history moved on to it. */
static uint32_t *hist_at(struct dstatus *s, struct hist *h, uint64_t now_ms)
{
    hist_roll(s, now_ms / MINUTE_MS);
    return &h->n[s->minute % HIST_MIN];
}

void status_tick(struct pd_daemon *d)
{
    struct dstatus *s = d->client ? status_of(d) : NULL;
    uint64_t now = d->woke_ms + 1, per_min;
    struct pd_client_stats cs;
    uint32_t *n;

    if (!s || (s->sampled_ms && now < s->sampled_ms + SAMPLE_MS))
        return;
    s->sampled_ms = now;
    cs = pd_client_stats(d->client);
    n = hist_at(s, &s->requests, dw_wall_ms(d));
    /* Fewer than last time: another client, counting from 0. */
    *n += (uint32_t)(cs.sent >= s->sent ? cs.sent - s->sent : cs.sent);
    s->sent = cs.sent;
    per_min = cs.window_limit && cs.window_ms ? cs.window_limit * MINUTE_MS / cs.window_ms : 0;
    n = &s->limit.n[s->minute % HIST_MIN];
    if (per_min > *n)
        *n = per_min > UINT32_MAX ? UINT32_MAX : (uint32_t)per_min;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void status_note(struct job *j, bool ok)
{
    struct dstatus *s = status_of(j->d);
    size_t wi = (size_t)(j->w - j->d->watches);
    struct ring *ring;
    struct done_rec *r;

    if (!s || wi >= s->nwatches)
        return; /* out of memory: the page only misses this line */
    ring = ok ? &s->delivered[wi] : &s->failed[wi];
    (*hist_at(s, ok ? &s->hdelivered[wi] : &s->hfailed[wi], dw_wall_ms(j->d)))++;
    r = &ring->rec[ring->next];
    rec_clear(r);
    ring->next = (ring->next + 1) % RING;
    if (ring->count < RING)
        ring->count++;
    r->name = dup_or_null(j->js.name);
    r->moved_to = dup_or_null(j->final_path);
    r->at_ms = dw_wall_ms(j->d);
    r->size = j->js.size;
    r->nchunks = j->js.nchunks;
    r->duplicate = j->js.duplicate_of != NULL;
    if (!ok) {
        r->reason = dup_or_null(j->js.fail.reason ? j->js.fail.reason : "rejected");
        r->status = j->js.fail.status;
    }
    for (size_t i = 0; ok && i < j->js.nchunks && r->nruns < RING_RUNS; i++)
        if (j->js.chunks[i].run_id && (r->runs[r->nruns] = strdup(j->js.chunks[i].run_id)))
            r->nruns++;
}

static void add_str(cJSON *o, const char *key, const char *v);

/* ---- kept across restarts and reloads ------------------------------------------------------ */

/* <state dir>/status-history.json: the rings and the history a minute at a time, so that the
 * charts and the last files survive a reload (a new daemon object) or a restart. Written
 * without a sync when the daemon closes: losing it to a power cut only empties the charts. */
#define KEEP_FILE "status-history.json"
#define KEEP_MAX (4u << 20) /* bytes read at most */

static cJSON *hist_keep(const struct dstatus *s, const struct hist *h)
{
    cJSON *arr = cJSON_CreateArray();
    uint64_t from = s->minute + 1 - s->first > HIST_MIN ? s->minute + 1 - HIST_MIN : s->first;

    for (uint64_t m = from; arr && m <= s->minute; m++)
        cJSON_AddItemToArray(arr, cJSON_CreateNumber(h->n[m % HIST_MIN]));
    return arr;
}

static cJSON *ring_keep(const struct ring *r)
{
    cJSON *arr = cJSON_CreateArray();

    for (unsigned k = 0; arr && k < r->count; k++) { /* oldest first */
        const struct done_rec *e = &r->rec[(r->next + RING - r->count + k) % RING];
        cJSON *o = cJSON_CreateObject(), *runs;
        if (!o || !cJSON_AddItemToArray(arr, o))
            break;
        add_str(o, "name", e->name);
        add_str(o, "reason", e->reason);
        add_str(o, "moved_to", e->moved_to);
        cJSON_AddNumberToObject(o, "at_ms", (double)e->at_ms);
        cJSON_AddNumberToObject(o, "size", (double)e->size);
        cJSON_AddNumberToObject(o, "chunks", (double)e->nchunks);
        cJSON_AddNumberToObject(o, "status", (double)e->status);
        cJSON_AddBoolToObject(o, "duplicate", e->duplicate);
        if ((runs = cJSON_AddArrayToObject(o, "runs")))
            for (size_t i = 0; i < e->nruns; i++)
                cJSON_AddItemToArray(runs, cJSON_CreateString(e->runs[i]));
    }
    return arr;
}

void status_save(const struct pd_daemon *d)
{
    const struct dstatus *s = d->status;
    cJSON *root, *ws;
    char *path, *text;

    if (!s || !s->started || !d->cfg->state.dir || !(root = cJSON_CreateObject()))
        return;
    cJSON_AddNumberToObject(root, "schema", 1);
    cJSON_AddNumberToObject(root, "minute", (double)s->minute);
    cJSON_AddNumberToObject(root, "first", (double)s->first);
    cJSON_AddItemToObject(root, "requests", hist_keep(s, &s->requests));
    cJSON_AddItemToObject(root, "limit", hist_keep(s, &s->limit));
    ws = cJSON_AddArrayToObject(root, "watches");
    for (size_t w = 0; ws && w < s->nwatches; w++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(ws, o))
            break;
        cJSON_AddStringToObject(o, "name", d->watches[w].cfg->name);
        cJSON_AddItemToObject(o, "delivered", hist_keep(s, &s->hdelivered[w]));
        cJSON_AddItemToObject(o, "failed", hist_keep(s, &s->hfailed[w]));
        cJSON_AddItemToObject(o, "last_delivered", ring_keep(&s->delivered[w]));
        cJSON_AddItemToObject(o, "last_failed", ring_keep(&s->failed[w]));
    }
    text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text && (path = dw_join(d->cfg->state.dir, KEEP_FILE))) {
        int rc = pd_fs_write_replace(path, text, strlen(text), 0600);
        if (rc)
            pd_log(PD_LOG_DEBUG, "event=status_history_unsaved reason=\"%s\"", pd_strerror(rc));
        free(path);
    }
    free(text);
}

static uint64_t num_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) && v->valuedouble > 0 ? (uint64_t)v->valuedouble : 0;
}

static char *text_of(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

/* ARR's counts into H, for the minutes up to S->minute (the newest last). */
static void hist_restore(const struct dstatus *s, struct hist *h, const cJSON *arr)
{
    int n = cJSON_GetArraySize(arr), i = 0;
    const cJSON *v;

    cJSON_ArrayForEach(v, arr)
    {
        uint64_t back = (uint64_t)(n - 1 - i++);
        if (cJSON_IsNumber(v) && v->valuedouble > 0 && back < HIST_MIN && back <= s->minute)
            h->n[(s->minute - back) % HIST_MIN] =
                v->valuedouble > UINT32_MAX ? UINT32_MAX : (uint32_t)v->valuedouble;
    }
}

static void ring_restore(struct ring *r, const cJSON *arr)
{
    const cJSON *o, *run;

    cJSON_ArrayForEach(o, arr)
    {
        struct done_rec *e = &r->rec[r->next];
        rec_clear(e);
        r->next = (r->next + 1) % RING;
        if (r->count < RING)
            r->count++;
        e->name = text_of(o, "name");
        e->reason = text_of(o, "reason");
        e->moved_to = text_of(o, "moved_to");
        e->at_ms = num_of(o, "at_ms");
        e->size = num_of(o, "size");
        e->nchunks = (size_t)num_of(o, "chunks");
        e->status = (long)num_of(o, "status");
        e->duplicate = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "duplicate"));
        cJSON_ArrayForEach(run, cJSON_GetObjectItemCaseSensitive(o, "runs"))
        {
            if (e->nruns < RING_RUNS && cJSON_IsString(run) &&
                (e->runs[e->nruns] = strdup(run->valuestring)))
                e->nruns++;
        }
    }
}

void status_load(struct pd_daemon *d)
{
    struct dstatus *s;
    char *path = d->cfg->state.dir ? dw_join(d->cfg->state.dir, KEEP_FILE) : NULL, *text = NULL;
    cJSON *root = NULL, *o;

    if (path && pd_fs_read_all(path, KEEP_MAX, &text, NULL) == 0)
        root = cJSON_Parse(text);
    free(path);
    free(text);
    if (!root || num_of(root, "schema") != 1 ||
        !cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(root, "minute")) ||
        !(s = status_of(d))) {
        cJSON_Delete(root); /* none, or not ours: the charts start empty */
        return;
    }
    s->started = true;
    s->minute = num_of(root, "minute");
    s->first = num_of(root, "first");
    if (s->first > s->minute)
        s->first = s->minute;
    hist_restore(s, &s->requests, cJSON_GetObjectItemCaseSensitive(root, "requests"));
    hist_restore(s, &s->limit, cJSON_GetObjectItemCaseSensitive(root, "limit"));
    /* By watch name: a reload may have added, removed or reordered watches. */
    cJSON_ArrayForEach(o, cJSON_GetObjectItemCaseSensitive(root, "watches"))
    {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
        for (size_t w = 0; cJSON_IsString(name) && w < s->nwatches; w++) {
            if (strcmp(d->watches[w].cfg->name, name->valuestring))
                continue;
            hist_restore(s, &s->hdelivered[w], cJSON_GetObjectItemCaseSensitive(o, "delivered"));
            hist_restore(s, &s->hfailed[w], cJSON_GetObjectItemCaseSensitive(o, "failed"));
            ring_restore(&s->delivered[w], cJSON_GetObjectItemCaseSensitive(o, "last_delivered"));
            ring_restore(&s->failed[w], cJSON_GetObjectItemCaseSensitive(o, "last_failed"));
        }
    }
    cJSON_Delete(root);
}

/* ---- the document ----------------------------------------------------------------------- */

/* Unix ms as "2026-11-30T11:45:00Z"; 0 as null. */
static void add_time(cJSON *o, const char *key, uint64_t wall_ms)
{
    char buf[32];
    time_t t = (time_t)(wall_ms / 1000);
    struct tm tm;

    if (!wall_ms || !gmtime_r(&t, &tm)) {
        cJSON_AddNullToObject(o, key);
        return;
    }
    strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(o, key, buf);
}

static void add_str(cJSON *o, const char *key, const char *v)
{
    if (v)
        cJSON_AddStringToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

/* The monotonic time AT (later than now) as wall time. */
static uint64_t mono_to_wall(const struct pd_daemon *d, uint64_t at)
{
    uint64_t now = dw_now_ms(d);
    return dw_wall_ms(d) + (at > now ? at - now : 0);
}

/* "HTTP 503" or what no answer means, for a retry's last error. */
static void last_error(char *buf, size_t len, long status)
{
    if (status)
        snprintf(buf, len, "HTTP %ld", status);
    else
        snprintf(buf, len, "no answer (network error or timeout)");
}

/* [cluster]: how this host shares the account's rate with the others; null: alone. */
static void cluster_json(const struct pd_daemon *d, cJSON *a)
{
    cJSON *o;
    if (!d->cluster) {
        cJSON_AddNullToObject(a, "cluster");
        return;
    }
    struct pd_cluster_stats cs = pd_cluster_stats(d->cluster);
    if (!(o = cJSON_AddObjectToObject(a, "cluster")))
        return;
    add_str(o, "name", d->cfg->cluster.name);
    add_str(o, "redis", d->cfg->cluster.redis);
    cJSON_AddBoolToObject(o, "connected", cs.connected);
    cJSON_AddBoolToObject(o, "fallback", cs.fallback);
    cJSON_AddNumberToObject(o, "fallback_share", (double)cs.share);
    cJSON_AddNumberToObject(o, "fallbacks", (double)cs.fallbacks);
    cJSON_AddNumberToObject(o, "rejoins", (double)cs.rejoins);
    cJSON_AddNumberToObject(o, "permits_shared", (double)cs.granted);
    cJSON_AddNumberToObject(o, "permits_local", (double)cs.granted_local);
}

static void account_json(const struct pd_daemon *d, cJSON *root)
{
    cJSON *a = cJSON_AddObjectToObject(root, "account");
    struct pd_client_stats cs;

    if (!a || !d->client) {
        cJSON_AddNullToObject(root, "account");
        return;
    }
    cs = pd_client_stats(d->client);
    cJSON_AddNumberToObject(a, "requests_used", (double)cs.window_used);
    cJSON_AddNumberToObject(a, "requests_limit", (double)cs.window_limit);
    cJSON_AddNumberToObject(a, "window_seconds", (double)(cs.window_ms / 1000));
    cJSON_AddNumberToObject(a, "requests_in_flight", (double)cs.in_flight);
    cJSON_AddNumberToObject(a, "requests_waiting", (double)cs.waiting);
    add_time(a, "paused_until", cs.paused_until_ms ? mono_to_wall(d, cs.paused_until_ms) : 0);
    add_time(a, "token_valid_until", pd_auth_expires_at(pd_client_auth(d->client)));
    cJSON_AddNumberToObject(a, "failing_seconds",
                            cs.failing_since_ms && dw_now_ms(d) > cs.failing_since_ms
                                ? (double)((dw_now_ms(d) - cs.failing_since_ms) / 1000)
                                : 0);
    cluster_json(d, a);
}

struct counts {
    unsigned settling, ready, claimed, in_flight, retrying, parked, batched, finishing;
    uint64_t oldest_ms; /* monotonic; 0: nothing undelivered */
};

static void oldest(struct counts *n, uint64_t since)
{
    if (since && (!n->oldest_ms || since < n->oldest_ms))
        n->oldest_ms = since;
}

/* The request of J waiting for a retry, or NULL. */
static const struct pd_client_retrying *retry_of(const struct job *j,
                                                 const struct pd_client_retrying *rt, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (rt[i].arg == j)
            return &rt[i];
    return NULL;
}

/* The state word of J and what goes with it; NULL: not shown (ended). */
static const char *job_state(const struct job *j, const struct pd_client_retrying *rt,
                             struct counts *n)
{
    switch (j->step) {
    case STEP_PREPARE:
        n->claimed++;
        return "claimed";
    case STEP_CHUNK_READY:
    case STEP_SENDING:
    case STEP_ACK:
    case STEP_RESPLIT:
        if (rt) {
            n->retrying++;
            return "retrying";
        }
        n->in_flight++;
        return "sending";
    case STEP_FINISH_OK:
    case STEP_FINISH_FAIL:
        n->finishing++;
        return "finishing";
    case STEP_PARKED:
        n->parked++;
        return "parked";
    case STEP_BATCHED:
        n->batched++;
        return "batched";
    case STEP_ENDED:
        break;
    }
    return NULL;
}

static cJSON *job_json(const struct pd_daemon *d, const struct job *j, const char *state,
                       const struct pd_client_retrying *rt)
{
    cJSON *o = cJSON_CreateObject();
    uint64_t now = dw_now_ms(d);
    char err[64];

    if (!o)
        return NULL;
    add_str(o, "name", j->label);
    cJSON_AddStringToObject(o, "state", state);
    cJSON_AddNumberToObject(o, "size", (double)j->js.size);
    cJSON_AddNumberToObject(o, "bytes_done", (double)j->js.next_offset);
    cJSON_AddNumberToObject(
        o, "age_seconds",
        (double)(j->since_ms && now > j->since_ms ? (now - j->since_ms) / 1000 : 0));
    if (!strcmp(state, "sending") || !strcmp(state, "retrying")) {
        cJSON_AddNumberToObject(o, "chunk", j->chunk.index + 1);
        if (j->chunk.last || j->chunk.whole)
            cJSON_AddNumberToObject(o, "chunks", j->chunk.index + 1);
        else
            cJSON_AddNullToObject(o, "chunks");
        cJSON_AddNumberToObject(o, "chunk_end", (double)j->chunk.end);
    }
    cJSON_AddNumberToObject(o, "attempts", j->js.attempts + (rt ? rt->attempts : 0));
    if (rt) {
        last_error(err, sizeof(err), rt->last_status);
        add_time(o, "next_attempt", dw_wall_ms(d) + rt->due_in_ms);
        cJSON_AddStringToObject(o, "last_error", err);
    } else if (j->step == STEP_PARKED) {
        add_time(o, "next_attempt", j->park_until ? mono_to_wall(d, j->park_until) : 0);
        add_str(o, "last_error", j->park_why);
    }
    return o;
}

static void ring_json(const struct pd_daemon *d, cJSON *w, const char *key, const struct ring *r,
                      bool ok)
{
    cJSON *arr = cJSON_AddArrayToObject(w, key);

    /* Newest first. */
    for (unsigned k = 0; arr && k < r->count; k++) {
        const struct done_rec *e = &r->rec[(r->next + RING - 1 - k) % RING];
        cJSON *o = cJSON_CreateObject(), *runs;
        if (!o || !cJSON_AddItemToArray(arr, o))
            break;
        add_str(o, "name", e->name);
        add_time(o, "at", e->at_ms);
        cJSON_AddNumberToObject(o, "size", (double)e->size);
        add_str(o, "moved_to", e->moved_to);
        if (!ok) {
            add_str(o, "reason", e->reason);
            cJSON_AddNumberToObject(o, "status", e->status);
            continue;
        }
        cJSON_AddNumberToObject(o, "chunks", (double)e->nchunks);
        cJSON_AddBoolToObject(o, "duplicate", e->duplicate);
        runs = cJSON_AddArrayToObject(o, "runs");
        for (size_t i = 0; runs && i < e->nruns; i++) {
            cJSON *ro = cJSON_CreateObject();
            char *link = NULL;
            if (!ro || !cJSON_AddItemToArray(runs, ro))
                break;
            cJSON_AddStringToObject(ro, "id", e->runs[i]);
            if (pd_api_dashboard_url(&d->cfg->pw, e->runs[i], &link))
                link = NULL;
            add_str(ro, "dashboard", link);
            free(link);
        }
    }
}

/* Names in the drop folder not yet claimed: settling, or ready and waiting for a slot. */
static void count_cands(const struct dwatch *w, struct counts *n)
{
    for (size_t b = 0; b < w->nbuckets; b++)
        for (const struct cand *c = w->buckets[b]; c; c = c->next) {
            if (!c->obs.seen)
                continue;
            if (c->queued)
                n->ready++;
            else
                n->settling++;
            oldest(n, c->obs.unchanged_since_ms);
        }
}

static void counts_json(const struct pd_daemon *d, cJSON *o, const struct counts *n)
{
    uint64_t now = dw_now_ms(d);

    cJSON_AddNumberToObject(o, "settling", n->settling);
    cJSON_AddNumberToObject(o, "ready", n->ready);
    cJSON_AddNumberToObject(o, "claimed", n->claimed);
    cJSON_AddNumberToObject(o, "in_flight", n->in_flight);
    cJSON_AddNumberToObject(o, "retrying", n->retrying);
    cJSON_AddNumberToObject(o, "parked", n->parked);
    cJSON_AddNumberToObject(o, "batched", n->batched);
    cJSON_AddNumberToObject(o, "finishing", n->finishing);
    if (n->oldest_ms)
        cJSON_AddNumberToObject(o, "oldest_undelivered_seconds",
                                (double)(now > n->oldest_ms ? (now - n->oldest_ms) / 1000 : 0));
    else
        cJSON_AddNullToObject(o, "oldest_undelivered_seconds");
}

/* The minutes one document shows, oldest first: up to now (or the newest counted, after a
 * clock set back), back to the first counted, HIST_MIN at most. Taken once per document, so
 * every series in it has the same length even when a minute ends while it is built. */
struct span {
    uint64_t from, to;
    bool any;
};

static struct span hist_span(const struct pd_daemon *d, uint64_t now_ms)
{
    const struct dstatus *s = d->status;
    uint64_t now = now_ms / MINUTE_MS;
    struct span sp = {0};

    if (!s || !s->started)
        return sp;
    sp.any = true;
    sp.to = s->minute > now ? s->minute : now;
    sp.from = sp.to - s->first + 1 > HIST_MIN ? sp.to + 1 - HIST_MIN : s->first;
    return sp;
}

/* H under KEY: a count per minute of SP, 0 for minutes not counted; in the newest minute EXTRA
 * more (what was not sampled yet), and at least AT_LEAST (the limit now, when no wake has sampled
 * the minute that just began). */
static void hist_json(const struct pd_daemon *d, cJSON *o, const char *key, const struct hist *h,
                      const struct span *sp, uint64_t extra, uint64_t at_least)
{
    cJSON *arr = cJSON_AddArrayToObject(o, key);
    const struct dstatus *s = d->status;

    if (!arr || !sp->any || !h)
        return;
    for (uint64_t m = sp->from; m <= sp->to; m++) {
        bool kept = m <= s->minute && m + HIST_MIN > s->minute;
        double v = (kept ? h->n[m % HIST_MIN] : 0) + (m == sp->to ? (double)extra : 0);
        if (m == sp->to && v < (double)at_least)
            v = (double)at_least;
        if (!cJSON_AddItemToArray(arr, cJSON_CreateNumber(v)))
            break;
    }
}

static void history_json(const struct pd_daemon *d, cJSON *root, const struct span *sp)
{
    cJSON *h = cJSON_AddObjectToObject(root, "history");
    const struct dstatus *s = d->status;
    uint64_t sent = 0, per_min = 0;

    if (!h)
        return;
    if (s && d->client) {
        struct pd_client_stats cs = pd_client_stats(d->client);
        if ((sent = cs.sent) >= s->sent)
            sent -= s->sent; /* the requests started since the last sample */
        per_min = cs.window_limit && cs.window_ms ? cs.window_limit * MINUTE_MS / cs.window_ms : 0;
    }
    add_time(h, "start", sp->from * MINUTE_MS);
    cJSON_AddNumberToObject(h, "minute_seconds", MINUTE_MS / 1000);
    hist_json(d, h, "requests", s ? &s->requests : NULL, sp, sent, 0);
    hist_json(d, h, "limit", s ? &s->limit : NULL, sp, 0, per_min);
}

static cJSON *watch_json(const struct pd_daemon *d, size_t wi, const struct pd_client_retrying *rt,
                         size_t nrt, const struct span *sp)
{
    const struct dwatch *w = &d->watches[wi];
    cJSON *o = cJSON_CreateObject(), *files, *h;
    struct counts n = {0};

    if (!o)
        return NULL;
    cJSON_AddStringToObject(o, "name", w->cfg->name);
    add_str(o, "folder", w->cfg->path);
    add_str(o, "disabled", w->disabled ? (w->disabled_why ? w->disabled_why : "disabled") : NULL);
    count_cands(w, &n);
    files = cJSON_AddArrayToObject(o, "files");
    for (const struct job *j = d->jobs; files && j; j = j->next) {
        const struct pd_client_retrying *r = retry_of(j, rt, nrt);
        const char *state;
        cJSON *jo;
        if (j->w != w || !(state = job_state(j, r, &n)))
            continue;
        oldest(&n, j->since_ms);
        if ((jo = job_json(d, j, state, r)))
            cJSON_AddItemToArray(files, jo);
    }
    counts_json(d, o, &n);
    if (d->status && wi < d->status->nwatches) {
        ring_json(d, o, "failed", &d->status->failed[wi], false);
        ring_json(d, o, "delivered", &d->status->delivered[wi], true);
        if ((h = cJSON_AddObjectToObject(o, "history"))) {
            hist_json(d, h, "delivered", &d->status->hdelivered[wi], sp, 0, 0);
            hist_json(d, h, "failed", &d->status->hfailed[wi], sp, 0, 0);
        }
    } else {
        cJSON_AddArrayToObject(o, "failed");
        cJSON_AddArrayToObject(o, "delivered");
        h = cJSON_AddObjectToObject(o, "history");
        cJSON_AddArrayToObject(h, "delivered");
        cJSON_AddArrayToObject(h, "failed");
    }
    return o;
}

char *pd_daemon_status_json(const struct pd_daemon *d, const char *watch)
{
    cJSON *root = cJSON_CreateObject(), *ws;
    struct pd_client_retrying rt[RETRYING_MAX];
    size_t nrt = d->client ? pd_client_retrying(d->client, rt, RETRYING_MAX) : 0;
    uint64_t now = dw_wall_ms(d);
    struct span sp = hist_span(d, now);
    char *out;

    if (!root)
        return NULL;
    if (nrt > RETRYING_MAX)
        nrt = RETRYING_MAX;
    cJSON_AddNumberToObject(root, "schema", 1);
    cJSON_AddStringToObject(root, "version", PD_VERSION);
    cJSON_AddNumberToObject(root, "pid", (double)getpid());
    add_time(root, "now", now);
    cJSON_AddStringToObject(root, "state", d->stopping ? "stopping" : "running");
    add_str(root, "state_dir", d->cfg->state.dir);
    cJSON_AddNumberToObject(root, "runs_followed", (double)d->nruns);
    account_json(d, root);
    history_json(d, root, &sp);
    ws = cJSON_AddArrayToObject(root, "watches");
    for (size_t i = 0; ws && i < d->nwatches; i++) {
        cJSON *o;
        if (watch && strcmp(watch, d->watches[i].cfg->name))
            continue;
        if ((o = watch_json(d, i, rt, nrt, &sp)))
            cJSON_AddItemToArray(ws, o);
    }
    out = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return out;
}
