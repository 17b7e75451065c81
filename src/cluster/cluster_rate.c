/*
 * The account's rate shared by the hosts (include/pd_cluster.h): the gate pd_client asks
 * before each request, answered by the ACQUIRE script in Redis, or by the local share while
 * Redis is away. This host's own permits are kept in a table (pd_cluster_permits) either way:
 * the local share counts them, and on rejoining they are written into Redis (CARRY) so that
 * Redis counts what this host sent meanwhile, and what Redis forgot if it restarted empty.
 */
#include "cluster_internal.h"

#include "pd_log.h"
#include "pd_metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A host waiting for its turn asks again at least this often (ms), so the queue in Redis
 * knows it still waits; one that did not ask for STALE_MS leaves the queue. */
#define ASK_CAP_MS 1000u
#define STALE_MS (3 * ASK_CAP_MS)
/* While permits are all in flight the local share looks again this often (ms). */
#define LOCAL_POLL_MS 50u
/* Before Redis first answers (or fails), asks wait this long. */
#define CONNECTING_MS 50u

static void pending_unlink(struct pd_cluster *c, struct pd_cluster_pending *p)
{
    if (p->prev)
        p->prev->next = p->next;
    else if (c->pending == p)
        c->pending = p->next;
    if (p->next)
        p->next->prev = p->prev;
    p->next = p->prev = NULL;
}

/* Gives the answer to the ask that is still waiting for it, and forgets the ask. */
static void answer(struct pd_cluster *c, struct pd_cluster_pending *p, int64_t wait,
                   uint64_t permit)
{
    struct pd_cluster_ask *a = p->owner;
    pending_unlink(c, p);
    free(p);
    if (a) {
        a->pending = NULL;
        a->answer(a, wait, permit);
    }
}

/* The local share: at most stats.share permits of this host count at once. */
static int64_t local_try(struct pd_cluster *c, uint64_t id)
{
    uint64_t now = cluster_now(c);
    if (!c->fallback)
        return CONNECTING_MS;
    if (now < c->fallback_open_ms)
        return (int64_t)(c->fallback_open_ms - now);
    if (pd_cluster_permits_expire(&c->permits, now) >= c->stats.share) {
        uint64_t end = pd_cluster_permits_next_end(&c->permits);
        return end == UINT64_MAX ? LOCAL_POLL_MS : (int64_t)(end - now);
    }
    if (pd_cluster_permits_add(&c->permits, id, false))
        return LOCAL_POLL_MS;
    c->stats.granted_local++;
    return 0;
}

static void local_answer(struct pd_cluster *c, struct pd_cluster_pending *p)
{
    int64_t wait = local_try(c, p->id);
    answer(c, p, wait, wait ? 0 : p->id);
}

static void release_member(struct pd_cluster *c, uint64_t id, uint64_t count_ms);

static void on_acquired(struct pd_cluster *c, redisReply *reply, void *arg)
{
    struct pd_cluster_pending *p = arg;

    if (c->closing) {
        free(p); /* unlinked by cleanup */
        return;
    }
    if (reply && reply->type == REDIS_REPLY_ERROR) {
        /* Redis answers but refuses the script (an ACL without +@scripting, a read-only
         * replica...): asking again would stall every request, so the share takes over
         * until the next connection. */
        char why[256];
        snprintf(why, sizeof(why), "Redis refused the rate script: %.200s", reply->str);
        cluster_rate_down(c, why);
    }
    if (!reply || reply->type != REDIS_REPLY_INTEGER) {
        local_answer(c, p); /* Redis went away meanwhile: the fallback decides */
        return;
    }
    if (reply->integer > 0) {
        answer(c, p, reply->integer, 0);
        return;
    }
    c->stats.granted++;
    if (!p->owner || pd_cluster_permits_add(&c->permits, p->id, true)) {
        /* Nobody takes it now: it counts as answered at once. */
        release_member(c, p->id, c->window_ms);
        answer(c, p, LOCAL_POLL_MS, 0);
        return;
    }
    answer(c, p, 0, p->id);
}

static bool ask_redis(struct pd_cluster *c, struct pd_cluster_pending *p)
{
    char rate[24], lease[24], member[300], stale[24], cap[24];
    const char *keys[] = {c->k_permits, c->k_pause, c->k_waiters, c->k_asked};
    uint64_t capms = c->window_ms / 4 < ASK_CAP_MS ? c->window_ms / 4 : ASK_CAP_MS;

    snprintf(rate, sizeof(rate), "%" PRIu64, c->rate);
    snprintf(lease, sizeof(lease), "%" PRIu64, c->lease_ms);
    snprintf(stale, sizeof(stale), "%u", STALE_MS);
    snprintf(cap, sizeof(cap), "%" PRIu64, capms ? capms : 1);
    cluster_member(c, p->id, member, sizeof(member));
    const char *argv[] = {rate, lease, c->cfg->cluster.name, member, stale, cap};
    return cluster_eval(c, SCRIPT_ACQUIRE, 4, keys, 6, argv, on_acquired, p);
}

void pd_cluster_gate_ask(struct pd_cluster *c, struct pd_cluster_ask *a)
{
    struct pd_cluster_pending *p = calloc(1, sizeof(*p));
    if (!p) {
        a->pending = NULL;
        a->answer(a, LOCAL_POLL_MS, 0);
        return;
    }
    p->owner = a;
    p->id = ++c->next_id;
    a->pending = p;
    p->next = c->pending;
    if (c->pending)
        c->pending->prev = p;
    c->pending = p;
    if (c->ready && !c->fallback && ask_redis(c, p))
        return;
    local_answer(c, p);
}

void pd_cluster_gate_cancel(struct pd_cluster *c, struct pd_cluster_ask *a)
{
    if (a->pending)
        a->pending->owner = NULL; /* its reply still comes: the permit is then let go */
    a->pending = NULL;
}

/* Redis counts permit ID for COUNT_MS from now (a window: answered now). */
static void release_member(struct pd_cluster *c, uint64_t id, uint64_t count_ms)
{
    char member[300], ms[24];
    const char *keys[] = {c->k_permits};
    cluster_member(c, id, member, sizeof(member));
    snprintf(ms, sizeof(ms), "%" PRIu64, count_ms);
    const char *argv[] = {ms, member};
    cluster_eval(c, SCRIPT_RELEASE, 1, keys, 2, argv, NULL, NULL);
}

void pd_cluster_gate_done(struct pd_cluster *c, uint64_t permit)
{
    bool redis = false;
    for (size_t i = 0; i < c->permits.n; i++)
        if (c->permits.p[i].id == permit)
            redis = c->permits.p[i].redis;
    uint64_t now = cluster_now(c);
    bool known = pd_cluster_permits_answer(&c->permits, permit, now, c->window_ms);
    pd_cluster_permits_expire(&c->permits, now); /* the table holds one window, no more */
    if (!known)
        return;
    /* While Redis is away its entry keeps its lease; rejoining writes the real end. */
    if (redis && c->ready && !c->fallback)
        release_member(c, permit, c->window_ms);
}

void pd_cluster_gate_pause(struct pd_cluster *c, uint64_t ms)
{
    char v[24];
    const char *keys[] = {c->k_pause};
    snprintf(v, sizeof(v), "%" PRIu64, ms ? ms : 1);
    const char *argv[] = {v};
    if (c->ready)
        cluster_eval(c, SCRIPT_PAUSE, 1, keys, 1, argv, NULL, NULL);
}

/*
 * Redis is away: this host's share starts only a window from now, when every permit any host
 * took before has stopped counting at the server (those in flight count in their own host's
 * share). Asks out now get their answer from the share when their reply comes back empty.
 */
void cluster_rate_down(struct pd_cluster *c, const char *why)
{
    if (c->fallback)
        return;
    c->fallback = true;
    c->fallback_open_ms = cluster_now(c) + c->window_ms;
    c->stats.fallbacks++;
    pd_metrics_count(c->metrics, PD_METRICS_CLUSTER_FALLBACKS);
    pd_log(PD_LOG_WARN,
           "event=cluster_fallback share=%" PRIu64 " rate_window_ms=%" PRIu64
           " starts_in_ms=%" PRIu64
           " reason=\"%s\" what=\"Redis cannot be used: this host sends at "
           "most rate_limit / expected_hosts until it is back\"",
           c->stats.share, c->window_ms, c->window_ms, why);
}

/* Writes this host's permits still counting into Redis, then goes back to asking Redis. */
void cluster_rate_up(struct pd_cluster *c)
{
    uint64_t now = cluster_now(c);
    size_t n = pd_cluster_permits_expire(&c->permits, now), argc = 1;
    const char **argv = calloc(1 + 2 * n, sizeof(*argv));
    char *buf = calloc(n ? n : 1, 24 + 300);
    char lease[24];
    const char *keys[] = {c->k_permits};

    if (argv && buf) {
        snprintf(lease, sizeof(lease), "%" PRIu64, c->lease_ms);
        argv[0] = lease;
        for (size_t i = 0; i < n && argc + 2 <= 1000; i++) {
            char *ms = buf + i * (24 + 300), *member = ms + 24;
            uint64_t end = c->permits.p[i].end;
            snprintf(ms, 24, "%" PRIu64, end == UINT64_MAX ? c->lease_ms : end - now);
            cluster_member(c, c->permits.p[i].id, member, 300);
            argv[argc++] = ms;
            argv[argc++] = member;
        }
        cluster_eval(c, SCRIPT_CARRY, 1, keys, (int)argc, argv, NULL, NULL);
    }
    free(argv);
    free(buf);
    for (size_t i = 0; i < c->permits.n; i++)
        c->permits.p[i].redis = true; /* Redis holds them all now */
    if (c->fallback) {
        c->stats.rejoins++;
        pd_metrics_count(c->metrics, PD_METRICS_CLUSTER_REJOINS);
        pd_log(PD_LOG_INFO, "event=cluster_rejoined carried=%zu", n);
    }
    c->fallback = false;
}

void cluster_rate_cleanup(struct pd_cluster *c)
{
    /* The asks with a call out are freed by its reply (NULL on close); the others now. */
    while (c->pending) {
        struct pd_cluster_pending *p = c->pending;
        pending_unlink(c, p);
        if (p->owner)
            p->owner->pending = NULL;
        p->owner = NULL;
    }
    if (!c->closing)
        return;
    pd_cluster_permits_free(&c->permits);
}
