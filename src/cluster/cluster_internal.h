/*
 * Private parts of src/cluster/ shared by its files: the cluster's state, the Redis scripts
 * and how they are called. Not a public interface (that is include/pd_cluster.h).
 *
 * cluster.c owns the connection (connect, AUTH, SELECT, reconnect with backoff, close) and
 * calls scripts by EVALSHA, falling back to EVAL when Redis does not know them (after its
 * restart); cluster_rate.c is the shared rate limit and its fallback.
 */
#ifndef PD_CLUSTER_INTERNAL_H
#define PD_CLUSTER_INTERNAL_H

#include "pd_cluster.h"
#include "pd_config.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

enum cluster_script {
    SCRIPT_ACQUIRE,
    SCRIPT_RELEASE,
    SCRIPT_CARRY,
    SCRIPT_PAUSE,
    SCRIPT_TOKEN_GET,
    SCRIPT_TOKEN_PUT,
    SCRIPT_TOKEN_UNLOCK,
    SCRIPT_DEDUPE_CLAIM,
    SCRIPT_DEDUPE_DONE,
    SCRIPT_DEDUPE_DROP,
    SCRIPT_BEAT,
    SCRIPT_COUNT
};

/* How a script's reply comes back: REPLY is NULL when the connection went (or closes). */
typedef void (*cluster_reply_fn)(struct pd_cluster *c, redisReply *reply, void *arg);

/* An ask of pd_cluster_gate_ask() not yet answered. */
struct pd_cluster_pending {
    struct pd_cluster_ask *owner; /* NULL: canceled, the answer is dropped */
    uint64_t id;                  /* the permit asked for */
    struct pd_cluster_pending *next, *prev;
};

struct cluster_tls;

struct pd_cluster {
    uv_loop_t *loop;
    const struct pd_config *cfg;
    const struct pd_clock *clock;
    struct pd_metrics *metrics;
    struct pd_redis_addr addr;
    struct cluster_tls *tls; /* rediss://: hiredis connects to its unix socket */
    redisAsyncContext *ac;   /* NULL while not connected */
    bool ready;              /* connected, authenticated, database selected */
    bool closing;
    bool background;  /* a one-shot command's: its handles never keep the loop alive */
    bool down_told;   /* the failure to reach Redis was logged (once per outage) */
    char refused[64]; /* the connection's AUTH or SELECT was refused: what, else "" */
    uv_timer_t retry; /* the next connection attempt */
    uint64_t backoff_ms;
    char sha[SCRIPT_COUNT][41];
    char k_permits[256], k_pause[256], k_waiters[256], k_asked[256];
    char k_token[256], k_lock[256];
    uint64_t window_ms, lease_ms, rate;
    uint32_t boot;    /* tells this run's permit ids from an earlier run's */
    uint64_t next_id; /* the last permit id given */
    struct pd_cluster_permits permits;
    struct pd_cluster_pending *pending;
    bool fallback;
    uint64_t fallback_open_ms; /* the local share sends from then on (monotonic) */
    struct pd_cluster_stats stats;
    /* The shared login (cluster_auth.c): the one ask of this host's pd_auth, and the timer
     * that asks again while another host logs in. */
    struct pd_cluster_token_ask *token_ask;
    char *token_refused; /* the token this host saw refused (401), or NULL; wiped */
    bool token_call_out; /* a TOKEN_GET is out: its reply answers token_ask */
    uv_timer_t token_timer;
    uv_timer_t probe; /* PINGs: a connection that stops answering is given up */
    bool probe_out;   /* a PING (or the connection itself) waits for its answer */
    uint64_t probe_since_ms;
    unsigned open_handles;    /* the three timers; freed when all are closed */
    char *(*beat)(void *arg); /* this host's summary (malloc'd JSON), or NULL */
    void *beat_arg;
    unsigned ticks; /* of the probe timer: a heartbeat every BEAT_EVERY of them */
};

extern const char *const cluster_scripts[SCRIPT_COUNT];
extern const char *const cluster_script_names[SCRIPT_COUNT]; /* for log lines */

uint64_t cluster_now(const struct pd_cluster *c);
/* Runs script S with NKEYS keys and ARGC values; DONE (NULL: nobody) gets its reply. False:
 * not sent (not connected, or no memory): DONE is not called. */
bool cluster_eval(struct pd_cluster *c, enum cluster_script s, int nkeys, const char **keys,
                  int argc, const char **argv, cluster_reply_fn done, void *arg);
/* A permit's member in the permits set: NAME:BOOT:ID. */
void cluster_member(const struct pd_cluster *c, uint64_t id, char *buf, size_t len);

/* cluster_uv.c: hiredis's events on the loop (hiredis's own adapter, fixed). */
int cluster_uv_attach(redisAsyncContext *ac, uv_loop_t *loop, bool background);
/* The socket's handle no longer keeps the loop alive (pd_cluster_background). */
void cluster_uv_unref(redisAsyncContext *ac);

/* cluster_tls.c: rediss://, a TLS bridge of our own (hiredis 0.14 has no TLS): a thread
 * listening on a unix socket in a private directory (in the state dir, else $TMPDIR or /tmp)
 * takes each connection there to ADDR over TLS. Logs why it cannot start. */
int cluster_tls_start(const struct pd_config *cfg, const struct pd_redis_addr *addr,
                      struct cluster_tls **out);
/* The unix socket hiredis connects to. */
const char *cluster_tls_path(const struct cluster_tls *t);
/* Why the last connection failed (TCP, handshake, certificate), or "" after one that worked. */
void cluster_tls_last_error(struct cluster_tls *t, char *buf, size_t len);
/* Stops the thread, removes the socket and its directory; NULLs *T. NULL is a no-op. */
void cluster_tls_stop(struct cluster_tls **t);
/* cluster_tls_ctx.c: the TLS settings of [cluster] as a new OpenSSL context (an SSL_CTX) in
 * *OUT; 0, or a code with WHY naming the key and file. */
struct ssl_ctx_st;
int cluster_tls_ctx(const struct pd_cluster_cfg *c, struct ssl_ctx_st **out, char *why,
                    size_t len);

/* cluster_beat.c: publishes this host's summary. */
void cluster_beat(struct pd_cluster *c);

/* cluster_rate.c: the connection changed. */
void cluster_rate_up(struct pd_cluster *c);
void cluster_rate_down(struct pd_cluster *c, const char *why);
void cluster_rate_cleanup(struct pd_cluster *c);
/* cluster_auth.c: stops asking, wipes what it held. */
void cluster_auth_cleanup(struct pd_cluster *c);

#endif
