/*
 * Dedupe shared by the hosts (include/pd_cluster.h): a content is claimed in Redis under
 * dedupe:<flow>:<sha256> while one host sends it ("sending:<host>"), then names where it was
 * delivered for the dedupe window ("done:<host>:<receipt>"). A claim that ends without a
 * delivery is dropped, so the other hosts send their copy.
 */
#include "cluster_internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct dedupe_call {
    pd_cluster_dedupe_fn done;
    void *arg;
};

static void content_key(const struct pd_cluster *c, const char *flow, const char *sha256, char *buf,
                        size_t len)
{
    snprintf(buf, len, "%sdedupe:%s:%s", c->cfg->cluster.key_prefix, flow ? flow : "", sha256);
}

static void mine(const struct pd_cluster *c, char *buf, size_t len)
{
    snprintf(buf, len, "sending:%s", c->cfg->cluster.name);
}

static void on_claimed(struct pd_cluster *c, redisReply *reply, void *arg)
{
    struct dedupe_call *k = arg;
    enum pd_cluster_dedupe what = PD_CLUSTER_SEND;
    const char *where = NULL;

    if (reply && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER &&
        reply->element[1]->type == REDIS_REPLY_STRING) {
        if (reply->element[0]->integer == 2) {
            what = PD_CLUSTER_DUPLICATE;
            where = reply->element[1]->str;
        } else if (reply->element[0]->integer == 3) {
            what = PD_CLUSTER_WAIT;
        }
    }
    if (!c->closing)
        k->done(k->arg, what, where);
    free(k);
}

static void on_timer_send(uv_timer_t *t)
{
    struct dedupe_call *k = t->data;
    k->done(k->arg, PD_CLUSTER_SEND, NULL);
    free(k);
    uv_close((uv_handle_t *)t, (uv_close_cb)free);
}

/* Redis is away: SEND, from the loop (never inside the caller's call). */
static void send_later(struct pd_cluster *c, struct dedupe_call *k)
{
    uv_timer_t *t = malloc(sizeof(*t));
    if (!t || uv_timer_init(c->loop, t)) {
        free(t);
        k->done(k->arg, PD_CLUSTER_SEND, NULL); /* no memory: the caller copes with it now */
        free(k);
        return;
    }
    t->data = k;
    uv_timer_start(t, on_timer_send, 0, 0);
}

void pd_cluster_dedupe_claim(struct pd_cluster *c, const char *flow, const char *sha256,
                             uint64_t window_ms, pd_cluster_dedupe_fn done, void *arg)
{
    char key[400], me[300], win[24];
    struct dedupe_call *k = malloc(sizeof(*k));
    if (!k) {
        done(arg, PD_CLUSTER_SEND, NULL);
        return;
    }
    *k = (struct dedupe_call){.done = done, .arg = arg};
    content_key(c, flow, sha256, key, sizeof(key));
    mine(c, me, sizeof(me));
    snprintf(win, sizeof(win), "%" PRIu64, window_ms ? window_ms : 1);
    const char *keys[] = {key};
    const char *argv[] = {me, win};
    if (!c->ready || !cluster_eval(c, SCRIPT_DEDUPE_CLAIM, 1, keys, 2, argv, on_claimed, k))
        send_later(c, k);
}

void pd_cluster_dedupe_done(struct pd_cluster *c, const char *flow, const char *sha256,
                            uint64_t window_ms, const char *receipt)
{
    char key[400], value[4400], win[24];
    content_key(c, flow, sha256, key, sizeof(key));
    snprintf(value, sizeof(value), "done:%s:%s", c->cfg->cluster.name, receipt);
    snprintf(win, sizeof(win), "%" PRIu64, window_ms ? window_ms : 1);
    const char *keys[] = {key};
    const char *argv[] = {value, win};
    cluster_eval(c, SCRIPT_DEDUPE_DONE, 1, keys, 2, argv, NULL, NULL);
}

void pd_cluster_dedupe_drop(struct pd_cluster *c, const char *flow, const char *sha256)
{
    char key[400], me[300];
    content_key(c, flow, sha256, key, sizeof(key));
    mine(c, me, sizeof(me));
    const char *keys[] = {key};
    const char *argv[] = {me};
    cluster_eval(c, SCRIPT_DEDUPE_DROP, 1, keys, 1, argv, NULL, NULL);
}
