/*
 * Seeing all hosts (include/pd_cluster.h): each host's heartbeat, its summary kept in Redis
 * for a while, and the list `patchdrop status --cluster` shows, read with hiredis's blocking
 * API (a command line, no loop).
 */
#include "cluster_internal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

void pd_cluster_set_beat(struct pd_cluster *c, char *(*fn)(void *arg), void *arg)
{
    c->beat = fn;
    c->beat_arg = arg;
    c->ticks = 0; /* the first goes with the next probe */
}

void cluster_beat(struct pd_cluster *c)
{
    char key[400], hosts[300], ttl[24];
    char *summary = c->beat ? c->beat(c->beat_arg) : NULL;
    if (!summary)
        return;
    snprintf(key, sizeof(key), "%shost:%s", c->cfg->cluster.key_prefix, c->cfg->cluster.name);
    snprintf(hosts, sizeof(hosts), "%shosts", c->cfg->cluster.key_prefix);
    snprintf(ttl, sizeof(ttl), "%u", PD_CLUSTER_BEAT_TTL_MS);
    const char *keys[] = {key, hosts};
    const char *argv[] = {summary, ttl, c->cfg->cluster.name};
    cluster_eval(c, SCRIPT_BEAT, 2, keys, 3, argv, NULL, NULL);
    free(summary);
}

/* A reply that is an error (or none) into WHY; true when it is one. */
static bool failed(redisContext *rc, redisReply *r, const char *step, char *why, size_t len)
{
    if (r && r->type != REDIS_REPLY_ERROR)
        return false;
    snprintf(why, len, "%s: %s", step, r ? r->str : rc->errstr[0] ? rc->errstr : "no answer");
    return true;
}

/* rediss://: the bridge (cluster_tls.c) is started into *TLS and stopped by the caller. */
static redisContext *connect_sync(const struct pd_config *cfg, struct cluster_tls **tls, char *why,
                                  size_t len)
{
    struct pd_redis_addr a;
    struct timeval tv = {3, 0};
    redisContext *rc;
    redisReply *r;

    if (pd_cluster_parse_url(cfg->cluster.redis, &a, why, len))
        return NULL;
    if (a.tls && cluster_tls_start(cfg, &a, tls)) {
        snprintf(why, len, "cannot set up TLS to Redis at %s (see the log)", cfg->cluster.redis);
        return NULL;
    }
    if (*tls)
        snprintf(a.path, sizeof(a.path), "%s", cluster_tls_path(*tls));
    rc = a.path[0] ? redisConnectUnixWithTimeout(a.path, tv)
                   : redisConnectWithTimeout(a.host, a.port, tv);
    if (rc && !rc->err && *tls) { /* the bridge answers the connect: a PING shows TLS worked */
        redisSetTimeout(rc, tv);
        freeReplyObject(redisCommand(rc, "PING"));
    }
    if (!rc || rc->err) {
        char tls_why[400] = "";
        if (*tls)
            cluster_tls_last_error(*tls, tls_why, sizeof(tls_why));
        snprintf(why, len, "cannot reach Redis at %s: %s", cfg->cluster.redis,
                 tls_why[0] ? tls_why
                 : rc       ? rc->errstr
                            : "no memory");
        redisFree(rc);
        return NULL;
    }
    redisSetTimeout(rc, tv);
    const char *pw = cfg->cluster.password, *sp = pw ? strchr(pw, ' ') : NULL;
    if (pw) {
        r = sp ? redisCommand(rc, "AUTH %b %s", pw, (size_t)(sp - pw), sp + 1)
               : redisCommand(rc, "AUTH %s", pw);
        bool bad = failed(rc, r, "AUTH", why, len); /* Redis's words, never the password */
        freeReplyObject(r);
        if (bad) {
            redisFree(rc);
            return NULL;
        }
    }
    r = redisCommand(rc, "SELECT %u", a.db);
    bool bad = failed(rc, r, "SELECT", why, len);
    freeReplyObject(r);
    if (bad) {
        redisFree(rc);
        return NULL;
    }
    return rc;
}

/* One host's entry: its summary when its heartbeat is still there. */
static cJSON *host_json(redisContext *rc, const struct pd_config *cfg, const char *name,
                        double seen_s)
{
    cJSON *h = cJSON_CreateObject();
    redisReply *r = redisCommand(rc, "GET %s%s%s", cfg->cluster.key_prefix, "host:", name);
    cJSON *summary = r && r->type == REDIS_REPLY_STRING ? cJSON_Parse(r->str) : NULL;

    freeReplyObject(r);
    if (!h) {
        cJSON_Delete(summary);
        return NULL;
    }
    cJSON_AddStringToObject(h, "name", name);
    cJSON_AddNumberToObject(h, "last_seen_seconds", seen_s);
    cJSON_AddBoolToObject(h, "alive", summary != NULL);
    if (summary)
        cJSON_AddItemToObject(h, "summary", summary);
    else
        cJSON_AddNullToObject(h, "summary");
    return h;
}

static int hosts_list(const struct pd_config *cfg, struct cluster_tls **tls, char **json, char *why,
                      size_t len)
{
    redisContext *rc;
    cJSON *root, *arr;
    redisReply *t, *r;

    *json = NULL;
    why[0] = '\0';
    if (!(rc = connect_sync(cfg, tls, why, len)))
        return -1;
    t = redisCommand(rc, "TIME");
    r = redisCommand(rc, "ZREVRANGE %shosts 0 -1 WITHSCORES", cfg->cluster.key_prefix);
    if (failed(rc, t, "TIME", why, len) || failed(rc, r, "ZREVRANGE", why, len) ||
        t->type != REDIS_REPLY_ARRAY || t->elements != 2 || r->type != REDIS_REPLY_ARRAY) {
        if (!why[0])
            snprintf(why, len, "unexpected answer from Redis");
        freeReplyObject(t);
        freeReplyObject(r);
        redisFree(rc);
        return -1;
    }
    double now = strtod(t->element[0]->str, NULL) * 1000 + strtod(t->element[1]->str, NULL) / 1000;
    root = cJSON_CreateObject();
    arr = cJSON_AddArrayToObject(root, "hosts");
    for (size_t i = 0; arr && i + 1 < r->elements; i += 2) {
        double seen = (now - strtod(r->element[i + 1]->str, NULL)) / 1000;
        cJSON *h = host_json(rc, cfg, r->element[i]->str, seen > 0 ? (double)(long)seen : 0);
        if (h)
            cJSON_AddItemToArray(arr, h);
    }
    *json = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    freeReplyObject(t);
    freeReplyObject(r);
    redisFree(rc);
    if (!*json) {
        snprintf(why, len, "no memory");
        return -1;
    }
    return 0;
}

int pd_cluster_hosts(const struct pd_config *cfg, char **json, char *why, size_t len)
{
    struct cluster_tls *tls = NULL;
    int ret = hosts_list(cfg, &tls, json, why, len);
    cluster_tls_stop(&tls);
    return ret;
}
