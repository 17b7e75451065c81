/*
 * The connection to Redis (include/pd_cluster.h): hiredis's async API on the daemon's libuv
 * loop. Connects, authenticates (AUTH from password_file, never logged), selects the database,
 * and reconnects with a doubling backoff (250 ms .. 10 s) whenever the connection goes.
 * Scripts go by EVALSHA; a NOSCRIPT answer (Redis restarted, or flushed its scripts) sends the
 * same call once more by EVAL, which also loads the script for the next EVALSHA.
 */
#include "cluster_internal.h"

#include "pd_clock.h"
#include "pd_error.h"
#include "pd_log.h"

#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BACKOFF_FIRST_MS 250u
#define BACKOFF_MAX_MS 10000u
/* A connection that does not complete, or a PING not answered, this long is given up: a
 * network cut leaves a TCP connection open without an answer ever coming. */
#define PROBE_MS 1000u
#define DEAD_AFTER_MS 3000u
#define ARGV_MAX 1024

/* One script call in flight: kept whole so that a NOSCRIPT answer can send it again by EVAL. */
struct call {
    struct pd_cluster *c;
    enum cluster_script script;
    bool by_eval;
    int argc;
    const char **argv;
    size_t *argvlen;
    char *strings; /* the values, copied */
    cluster_reply_fn done;
    void *arg;
};

static void connect_now(struct pd_cluster *c);

uint64_t cluster_now(const struct pd_cluster *c)
{
    return c->clock->mono_ms(c->clock->arg);
}

void cluster_member(const struct pd_cluster *c, uint64_t id, char *buf, size_t len)
{
    snprintf(buf, len, "%s:%08x:%llu", c->cfg->cluster.name, (unsigned)c->boot,
             (unsigned long long)id);
}

static void call_free(struct call *k)
{
    free(k->argv);
    free(k->argvlen);
    free(k->strings);
    free(k);
}

static bool send_call(struct call *k);

static void on_call_reply(redisAsyncContext *ac, void *r, void *priv)
{
    struct call *k = priv;
    redisReply *reply = r;
    (void)ac;
    if (reply && reply->type == REDIS_REPLY_ERROR && !k->by_eval &&
        !strncmp(reply->str, "NOSCRIPT", 8) && !k->c->closing) {
        k->by_eval = true;
        if (send_call(k))
            return;
        reply = NULL;
    }
    if (reply && reply->type == REDIS_REPLY_ERROR)
        pd_log(PD_LOG_WARN, "event=cluster_error script=%s reason=\"%.200s\"",
               cluster_script_names[k->script], reply->str);
    if (k->done)
        k->done(k->c, k->c->closing ? NULL : reply, k->arg);
    call_free(k);
}

static bool send_call(struct call *k)
{
    struct pd_cluster *c = k->c;
    if (!c->ac || c->closing)
        return false;
    k->argv[0] = k->by_eval ? "EVAL" : "EVALSHA";
    k->argvlen[0] = strlen(k->argv[0]);
    k->argv[1] = k->by_eval ? cluster_scripts[k->script] : c->sha[k->script];
    k->argvlen[1] = strlen(k->argv[1]);
    return redisAsyncCommandArgv(c->ac, on_call_reply, k, k->argc, k->argv, k->argvlen) == REDIS_OK;
}

bool cluster_eval(struct pd_cluster *c, enum cluster_script s, int nkeys, const char **keys,
                  int argc, const char **argv, cluster_reply_fn done, void *arg)
{
    int total = 3 + nkeys + argc;
    size_t bytes = 0, at = 0;
    char num[16];
    struct call *k;

    if (!c->ac || c->closing || total > ARGV_MAX)
        return false;
    snprintf(num, sizeof(num), "%d", nkeys);
    for (int i = 0; i < nkeys; i++)
        bytes += strlen(keys[i]) + 1;
    for (int i = 0; i < argc; i++)
        bytes += strlen(argv[i]) + 1;
    bytes += strlen(num) + 1;
    k = calloc(1, sizeof(*k));
    if (!k || !(k->argv = calloc((size_t)total, sizeof(*k->argv))) ||
        !(k->argvlen = calloc((size_t)total, sizeof(*k->argvlen))) ||
        !(k->strings = malloc(bytes))) {
        if (k)
            call_free(k);
        return false;
    }
    *k = (struct call){.c = c,
                       .script = s,
                       .argc = total,
                       .argv = k->argv,
                       .argvlen = k->argvlen,
                       .strings = k->strings,
                       .done = done,
                       .arg = arg};
    for (int i = 2; i < total; i++) {
        const char *v = i == 2 ? num : i < 3 + nkeys ? keys[i - 3] : argv[i - 3 - nkeys];
        size_t n = strlen(v);
        memcpy(k->strings + at, v, n + 1);
        k->argv[i] = k->strings + at;
        k->argvlen[i] = n;
        at += n + 1;
    }
    if (!send_call(k)) {
        call_free(k);
        return false;
    }
    return true;
}

static void on_retry(uv_timer_t *t)
{
    connect_now(t->data);
}

/* The connection is gone (or never came): try again after the backoff. */
static void lost(struct pd_cluster *c, const char *why)
{
    char tls_why[400] = "";
    if (c->tls) /* rediss://: the bridge's reason (certificate, handshake) says more */
        cluster_tls_last_error(c->tls, tls_why, sizeof(tls_why));
    why = tls_why[0] ? tls_why : why;
    c->ac = NULL;
    c->ready = false;
    if (c->closing)
        return;
    if (!c->down_told) {
        c->down_told = true;
        pd_log(PD_LOG_WARN, "event=cluster_unreachable redis=\"%s\" reason=\"%s\"",
               c->cfg->cluster.redis, why);
    }
    cluster_rate_down(c, why);
    uv_timer_start(&c->retry, on_retry, c->backoff_ms, 0);
    c->backoff_ms = c->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : c->backoff_ms * 2;
}

static void on_connected(const redisAsyncContext *ac, int status)
{
    struct pd_cluster *c = ac->data;
    if (c->ac != ac)
        return; /* given up already (probe) */
    if (status != REDIS_OK)
        lost(c, ac->errstr[0] ? ac->errstr : "cannot connect"); /* hiredis frees AC */
}

static void on_disconnected(const redisAsyncContext *ac, int status)
{
    struct pd_cluster *c = ac->data;
    if (c->ac != ac)
        return; /* closed or given up by us */
    lost(c, c->refused[0]        ? c->refused
            : status == REDIS_OK ? "disconnected"
            : ac->errstr[0]      ? ac->errstr
                                 : "connection lost");
}

/* The last of AUTH and SELECT answered: ready, or the connection is dropped and tried again. */
static void on_hello(redisAsyncContext *ac, void *r, void *priv)
{
    struct pd_cluster *c = ac->data;
    redisReply *reply = r;
    const char *what = priv;

    if (!reply || c->closing || c->refused[0])
        return; /* the disconnect callback tells; after a refusal the rest is noise */
    if (reply->type == REDIS_REPLY_ERROR) {
        snprintf(c->refused, sizeof(c->refused), "Redis refused %s", what);
        /* Only Redis's words: the command (AUTH) is not repeated, its password never shown. */
        pd_log(PD_LOG_ERROR, "event=cluster_refused redis=\"%s\" step=%s reason=\"%.200s\"",
               c->cfg->cluster.redis, what, reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    if (strcmp(what, "select"))
        return;
    c->ready = true;
    c->probe_out = false;
    c->backoff_ms = BACKOFF_FIRST_MS;
    if (c->down_told)
        pd_log(PD_LOG_INFO, "event=cluster_reachable redis=\"%s\"", c->cfg->cluster.redis);
    c->down_told = false;
    cluster_rate_up(c);
}

/* AUTH [user] password from password_file: "USER PASSWORD" for an ACL user. */
static void send_auth(struct pd_cluster *c)
{
    const char *pw = c->cfg->cluster.password;
    const char *sp = strchr(pw, ' ');
    if (sp) {
        const char *argv[] = {"AUTH", pw, sp + 1};
        size_t len[] = {4, (size_t)(sp - pw), strlen(sp + 1)};
        redisAsyncCommandArgv(c->ac, on_hello, "auth", 3, argv, len);
    } else {
        const char *argv[] = {"AUTH", pw};
        size_t len[] = {4, strlen(pw)};
        redisAsyncCommandArgv(c->ac, on_hello, "auth", 2, argv, len);
    }
}

static void connect_now(struct pd_cluster *c)
{
    const char *path = c->tls ? cluster_tls_path(c->tls) : c->addr.path;
    redisAsyncContext *ac =
        path[0] ? redisAsyncConnectUnix(path) : redisAsyncConnect(c->addr.host, c->addr.port);
    if (!ac || ac->err) {
        char why[160];
        snprintf(why, sizeof(why), "%s", ac ? ac->errstr : "no memory");
        if (ac)
            redisAsyncFree(ac);
        lost(c, why);
        return;
    }
    if (cluster_uv_attach(ac, c->loop, c->background) != REDIS_OK) {
        redisAsyncFree(ac);
        lost(c, "cannot watch the socket");
        return;
    }
    ac->data = c;
    c->ac = ac;
    c->refused[0] = '\0';
    c->probe_out = true; /* the connection itself, until SELECT answers */
    c->probe_since_ms = cluster_now(c);
    redisAsyncSetConnectCallback(ac, on_connected);
    redisAsyncSetDisconnectCallback(ac, on_disconnected);
    if (c->cfg->cluster.password)
        send_auth(c);
    redisAsyncCommand(ac, on_hello, "select", "SELECT %u", c->addr.db);
}

static void on_pong(redisAsyncContext *ac, void *r, void *priv)
{
    struct pd_cluster *c = ac->data;
    (void)priv;
    if (r && ac == c->ac)
        c->probe_out = false;
}

/* Every second: a PING, unless one is out; one out too long (or a connection that does not
 * complete) drops the connection, so the fallback takes over and a reconnect begins. */
static void on_probe(uv_timer_t *t)
{
    struct pd_cluster *c = t->data;
    redisAsyncContext *ac = c->ac;
    if (!ac || c->closing)
        return;
    if (c->probe_out && cluster_now(c) - c->probe_since_ms >= DEAD_AFTER_MS) {
        c->ac = NULL; /* its callbacks see it is no longer ours */
        c->ready = false;
        redisAsyncFree(ac);
        lost(c, "no answer from Redis for 3 s");
        return;
    }
    if (!c->probe_out && c->ready && redisAsyncCommand(ac, on_pong, NULL, "PING") == REDIS_OK) {
        c->probe_out = true;
        c->probe_since_ms = cluster_now(c);
    }
    if (c->ready && c->ticks++ % (PD_CLUSTER_BEAT_MS / PROBE_MS) == 0)
        cluster_beat(c);
}

static int keys_init(struct pd_cluster *c)
{
    const char *prefix = c->cfg->cluster.key_prefix;
    if (!pd_cluster_key(prefix, "rate:permits", c->k_permits, sizeof(c->k_permits)) ||
        !pd_cluster_key(prefix, "rate:pause", c->k_pause, sizeof(c->k_pause)) ||
        !pd_cluster_key(prefix, "rate:waiters", c->k_waiters, sizeof(c->k_waiters)) ||
        !pd_cluster_key(prefix, "rate:asked", c->k_asked, sizeof(c->k_asked)) ||
        !pd_cluster_key(prefix, "login:token", c->k_token, sizeof(c->k_token)) ||
        !pd_cluster_key(prefix, "login:lock", c->k_lock, sizeof(c->k_lock)))
        return PD_ECONFIG;
    for (int s = 0; s < SCRIPT_COUNT; s++) {
        unsigned char md[SHA_DIGEST_LENGTH];
        SHA1((const unsigned char *)cluster_scripts[s], strlen(cluster_scripts[s]), md);
        for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
            snprintf(c->sha[s] + 2 * i, 3, "%02x", md[i]);
    }
    return 0;
}

int pd_cluster_create(uv_loop_t *loop, const struct pd_config *cfg, const struct pd_clock *clock,
                      struct pd_metrics *metrics, struct pd_cluster **out)
{
    struct pd_cluster *c;
    char why[512];
    int rc;

    *out = NULL;
    if (!cfg->cluster.redis)
        return PD_ECONFIG;
    if (!(c = calloc(1, sizeof(*c))))
        return PD_ENOMEM;
    c->loop = loop;
    c->cfg = cfg;
    c->metrics = metrics;
    c->clock = clock ? clock : pd_clock_system();
    c->backoff_ms = BACKOFF_FIRST_MS;
    c->rate = cfg->pw.rate_limit;
    c->window_ms = cfg->pw.rate_window_ms;
    /* A request counts at most until its timeout, then a window after. */
    c->lease_ms = cfg->pw.timeout_ms + cfg->pw.rate_window_ms;
    c->boot = c->clock->random(c->clock->arg);
    c->stats.share = pd_cluster_fallback_share(c->rate, cfg->cluster.expected_hosts);
    if ((rc = pd_cluster_parse_url(cfg->cluster.redis, &c->addr, why, sizeof(why))) ||
        (rc = keys_init(c)) || (c->addr.tls && (rc = cluster_tls_start(cfg, &c->addr, &c->tls))) ||
        (rc = uv_timer_init(loop, &c->retry) ? PD_ENOMEM : 0)) {
        cluster_tls_stop(&c->tls);
        free(c);
        return rc;
    }
    uv_timer_init(loop, &c->token_timer); /* cannot fail once the first did */
    uv_timer_init(loop, &c->probe);
    c->retry.data = c;
    c->token_timer.data = c;
    c->probe.data = c;
    c->open_handles = 3;
    uv_timer_start(&c->probe, on_probe, PROBE_MS, PROBE_MS);
    connect_now(c);
    *out = c;
    return 0;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct pd_cluster *c = h->data;
    if (--c->open_handles)
        return;
    cluster_rate_cleanup(c);
    cluster_auth_cleanup(c);
    free(c);
}

void pd_cluster_background(struct pd_cluster *c)
{
    if (!c)
        return;
    c->background = true;
    uv_unref((uv_handle_t *)&c->retry);
    uv_unref((uv_handle_t *)&c->token_timer);
    uv_unref((uv_handle_t *)&c->probe);
    if (c->ac)
        cluster_uv_unref(c->ac);
}

void pd_cluster_close(struct pd_cluster **cp)
{
    struct pd_cluster *c = cp ? *cp : NULL;
    if (!c)
        return;
    *cp = NULL;
    c->closing = true;
    cluster_rate_cleanup(c); /* the asks still out are dropped, never answered */
    cluster_auth_cleanup(c);
    if (c->ac) {
        redisAsyncContext *ac = c->ac;
        c->ac = NULL;
        redisAsyncFree(ac); /* replies still due come back NULL; its poll handle closes */
    }
    cluster_tls_stop(&c->tls);
    uv_timer_stop(&c->retry);
    uv_close((uv_handle_t *)&c->retry, on_handle_closed);
    uv_close((uv_handle_t *)&c->token_timer, on_handle_closed);
    uv_close((uv_handle_t *)&c->probe, on_handle_closed);
}

struct pd_cluster_stats pd_cluster_stats(const struct pd_cluster *c)
{
    struct pd_cluster_stats s = c->stats;
    s.connected = c->ready;
    s.fallback = c->fallback;
    return s;
}
