/*
 * The account's login shared by the hosts (include/pd_cluster.h): one token in Redis, kept
 * until it is due for renewal; the host that finds none (or only the one it saw refused) takes
 * a lock with a lease and logs in, the others ask again every 100 ms until the new token is
 * there. Redis away: every host logs in alone, as without a cluster.
 */
#include "cluster_internal.h"

#include "pd_clock.h"
#include "pd_log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOKEN_POLL_MS 100u
/* The lock outlives a login that takes the whole request timeout by this much. */
#define LOCK_SLACK_MS 5000u

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

static void give(struct pd_cluster *c, enum pd_cluster_token what, const char *token,
                 uint64_t expires_at, uint64_t renew_at)
{
    struct pd_cluster_token_ask *a = c->token_ask;
    c->token_ask = NULL;
    if (a)
        a->answer(a, what, token, expires_at, renew_at);
}

static bool ask_token(struct pd_cluster *c);
static void on_token_timer(uv_timer_t *t);

/* Still connecting (not connected, not fallen back yet): a token is asked for again soon rather
 * than logging in alone. A one-shot command asks at once, before Redis has answered. */
static bool connecting(struct pd_cluster *c)
{
    if (c->ready || c->fallback || c->closing)
        return false;
    uv_timer_start(&c->token_timer, on_token_timer, TOKEN_POLL_MS, 0);
    return true;
}

static void on_token_timer(uv_timer_t *t)
{
    struct pd_cluster *c = t->data;
    if (c->token_ask && !ask_token(c) && !connecting(c))
        give(c, PD_CLUSTER_ALONE, NULL, 0, 0);
}

static uint64_t reply_u64(const redisReply *r)
{
    if (r->type == REDIS_REPLY_INTEGER)
        return r->integer > 0 ? (uint64_t)r->integer : 0;
    return r->type == REDIS_REPLY_STRING ? strtoull(r->str, NULL, 10) : 0;
}

static void on_token(struct pd_cluster *c, redisReply *reply, void *arg)
{
    (void)arg;
    c->token_call_out = false;
    if (c->closing || !c->token_ask)
        return;
    if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER) {
        give(c, PD_CLUSTER_ALONE, NULL, 0, 0);
        return;
    }
    long long what = reply->element[0]->integer;
    if (what == 1 && reply->elements == 4 && reply->element[1]->type == REDIS_REPLY_STRING) {
        give(c, PD_CLUSTER_TOKEN, reply->element[1]->str, reply_u64(reply->element[2]),
             reply_u64(reply->element[3]));
        return;
    }
    if (what == 2) {
        give(c, PD_CLUSTER_LOGIN, NULL, 0, 0);
        return;
    }
    uv_timer_start(&c->token_timer, on_token_timer, TOKEN_POLL_MS, 0);
}

static bool ask_token(struct pd_cluster *c)
{
    char lease[24];
    const char *keys[] = {c->k_token, c->k_lock};
    snprintf(lease, sizeof(lease), "%" PRIu64, c->cfg->pw.timeout_ms + LOCK_SLACK_MS);
    const char *argv[] = {c->cfg->cluster.name, c->token_refused ? c->token_refused : "", lease};
    if (!c->ready || c->token_call_out)
        return c->ready;
    if (!cluster_eval(c, SCRIPT_TOKEN_GET, 2, keys, 3, argv, on_token, NULL))
        return false;
    c->token_call_out = true;
    return true;
}

void pd_cluster_token_get(struct pd_cluster *c, struct pd_cluster_token_ask *a, const char *refused)
{
    if (refused && (!c->token_refused || strcmp(c->token_refused, refused))) {
        wipe_free(c->token_refused);
        c->token_refused = strdup(refused);
    }
    c->token_ask = a;
    if (!ask_token(c) && !connecting(c))
        give(c, PD_CLUSTER_ALONE, NULL, 0, 0);
}

void pd_cluster_token_cancel(struct pd_cluster *c, struct pd_cluster_token_ask *a)
{
    if (c && c->token_ask == a) {
        c->token_ask = NULL;
        uv_timer_stop(&c->token_timer);
    }
}

void pd_cluster_token_put(struct pd_cluster *c, const char *token, uint64_t expires_at_ms,
                          uint64_t renew_at_ms)
{
    char exp[24], renew[24], ttl[24];
    const char *keys[] = {c->k_token, c->k_lock};
    uint64_t now = c->clock->wall_ms(c->clock->arg);

    if (renew_at_ms <= now)
        return;
    snprintf(exp, sizeof(exp), "%" PRIu64, expires_at_ms);
    snprintf(renew, sizeof(renew), "%" PRIu64, renew_at_ms);
    snprintf(ttl, sizeof(ttl), "%" PRIu64, renew_at_ms - now);
    const char *argv[] = {c->cfg->cluster.name, token, exp, renew, ttl};
    cluster_eval(c, SCRIPT_TOKEN_PUT, 2, keys, 5, argv, NULL, NULL);
}

void pd_cluster_token_failed(struct pd_cluster *c)
{
    const char *keys[] = {c->k_lock};
    const char *argv[] = {c->cfg->cluster.name};
    cluster_eval(c, SCRIPT_TOKEN_UNLOCK, 1, keys, 1, argv, NULL, NULL);
}

void cluster_auth_cleanup(struct pd_cluster *c)
{
    c->token_ask = NULL;
    uv_timer_stop(&c->token_timer);
    wipe_free(c->token_refused);
    c->token_refused = NULL;
}
