/*
 * Several hosts, one Patchworks account: the hosts share the account's rate limit through one
 * Redis ([cluster] in the config; README "Several hosts"). Without [cluster] none of this runs
 * and a host works alone as before.
 *
 * Rate: every request of every host takes a permit from one sliding window in Redis (a Lua
 * script, atomic, on Redis's own clock): a permit counts from the request's start until a
 * rate_window after its answer, as pd_limiter counts locally. A 429's Retry-After is stored in
 * Redis and pauses every host. Hosts asking queue in Redis in the order they asked, and a host
 * goes to the back of that queue after each permit, so no host starves while it has work; a
 * host with no work asks for nothing.
 *
 * When Redis is away nothing stops: the host waits out one rate_window (the permits every host
 * took before count that long at the server), then sends at most its share, rate_limit /
 * expected_hosts per window, counting its own permits still in the window. When Redis is back
 * it writes the permits it took meanwhile into Redis (so they count there) and asks Redis again.
 */
#ifndef PD_CLUSTER_H
#define PD_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct pd_config;
struct pd_patchworks;
struct pd_clock;
struct pd_metrics;

/* ---- pure parts (cluster_conf.c) ------------------------------------------------------------ */

/* Where Redis is: [cluster] redis parsed. */
struct pd_redis_addr {
    char host[256]; /* "" for a unix socket */
    int port;
    char path[108]; /* the unix socket, or "" */
    unsigned db;
    bool tls; /* rediss://: through the TLS bridge (cluster_tls.c) */
};

/*
 * Parses redis://HOST[:PORT][/DB] (port 6379, db 0 by default; [v6] in brackets) and
 * unix:/PATH[?db=N]; rediss:// is the same with TLS (tls set). Returns 0, or
 * PD_ECONFIG with WHY (LEN bytes) saying what is wrong and what to write instead.
 */
int pd_cluster_parse_url(const char *url, struct pd_redis_addr *out, char *why, size_t len);

/* rediss://: whether [cluster]'s ca_file, tls_cert_file and tls_key_file can be used (read,
 * parsed, the key that of the certificate). Returns 0, or PD_ECONFIG with WHY naming the key. */
struct pd_cluster_cfg;
int pd_cluster_tls_check(const struct pd_cluster_cfg *c, char *why, size_t len);

/*
 * The account's fingerprint: 12 hex digits of a SHA-256 of its login (email) or API key, never
 * the secret itself nor enough of a hash to test guesses of a short one cheaply. OUT: 13 bytes.
 */
void pd_cluster_fingerprint(const struct pd_patchworks *pw, char out[13]);

/* What one host may send per window while Redis is away: RATE / HOSTS, at least 1. */
uint64_t pd_cluster_fallback_share(uint64_t rate, uint64_t hosts);

/* PREFIX + NAME into BUF (LEN bytes): a key of the cluster. Returns BUF, or NULL if too long. */
const char *pd_cluster_key(const char *prefix, const char *name, char *buf, size_t len);

/*
 * The permits this host holds, by id: in flight (end = UINT64_MAX) or answered (end = answer +
 * window, local monotonic ms). They count in the fallback's share and are written into Redis on
 * rejoining. Pure.
 */
struct pd_cluster_permits {
    struct pd_cluster_permit {
        uint64_t id;
        uint64_t end;
        bool redis; /* granted by Redis (else by the fallback share) */
    } * p;
    size_t n, cap;
};
int pd_cluster_permits_add(struct pd_cluster_permits *t, uint64_t id, bool redis);
/* The permit ID was answered at NOW: it counts until NOW + WINDOW. False: unknown id. */
bool pd_cluster_permits_answer(struct pd_cluster_permits *t, uint64_t id, uint64_t now,
                               uint64_t window);
/* Drops the permits whose end is past; returns how many still count. */
size_t pd_cluster_permits_expire(struct pd_cluster_permits *t, uint64_t now);
/* The earliest end of an answered permit still counting, or UINT64_MAX. */
uint64_t pd_cluster_permits_next_end(const struct pd_cluster_permits *t);
void pd_cluster_permits_free(struct pd_cluster_permits *t);

/* ---- the connection and the shared rate (cluster.c, cluster_rate.c) -------------------------- */

struct pd_cluster;

/* What status and metrics show about the cluster. */
struct pd_cluster_stats {
    bool connected;         /* Redis answers now */
    bool fallback;          /* sending on the local share (Redis away) */
    uint64_t fallbacks;     /* times it switched to the local share */
    uint64_t rejoins;       /* times it went back to Redis */
    uint64_t granted;       /* permits from Redis */
    uint64_t granted_local; /* permits from the local share */
    uint64_t share;         /* the local share per window */
};

/*
 * Connects to CFG's [cluster] redis on LOOP (reconnecting with backoff for as long as it
 * lives). CFG (and METRICS, which counts fallbacks and rejoins; NULL: none) must outlive it.
 * Logs as event=cluster_*; no line holds the password.
 */
int pd_cluster_create(uv_loop_t *loop, const struct pd_config *cfg, const struct pd_clock *clock,
                      struct pd_metrics *metrics, struct pd_cluster **out);
/* Drops the connection, frees what is left: every handle is closed by the loop's next run.
 * Callbacks still pending are never called. NULL is a no-op. */
void pd_cluster_close(struct pd_cluster **c);
/* For a one-shot command: the cluster's own timers and socket no longer keep the loop running
 * (the client keeps it alive while it has requests), so the loop ends with the command's work. */
void pd_cluster_background(struct pd_cluster *c);
struct pd_cluster_stats pd_cluster_stats(const struct pd_cluster *c);

/*
 * The gate pd_client passes every request through before it starts (pd_client_opts.gate): one
 * ask at a time per request. ANSWER gets 0 and the permit's id (non-zero), or a wait in ms
 * after which the request asks again. pd_cluster_gate_cancel() guarantees ANSWER will not run.
 */
struct pd_cluster_ask {
    void (*answer)(struct pd_cluster_ask *a, int64_t wait_ms, uint64_t permit);
    struct pd_cluster_pending *pending; /* the cluster's; NULL when no ask is out */
};
void pd_cluster_gate_ask(struct pd_cluster *c, struct pd_cluster_ask *a);
void pd_cluster_gate_cancel(struct pd_cluster *c, struct pd_cluster_ask *a);
/* The request holding PERMIT was answered (or failed, or was canceled) now. */
void pd_cluster_gate_done(struct pd_cluster *c, uint64_t permit);
/* The server said 429/503 with a wait: every host pauses MS from now. */
void pd_cluster_gate_pause(struct pd_cluster *c, uint64_t ms);

/*
 * The shared login (password mode): one token for the account, kept in Redis until it is due for
 * renewal. pd_auth asks before it would log in; ANSWER gets one of:
 * TOKEN: the account's token (TOKEN, its expiry and renewal time, wall ms), take it;
 * LOGIN: this host holds the lock (a lease): log in, then pd_cluster_token_put() (or
 *        pd_cluster_token_failed());
 * ALONE: Redis is away: log in alone, as without a cluster.
 * While another host logs in the cluster asks again every 100 ms; REFUSED (or NULL) is the token
 * this host last saw refused (401), never taken again.
 */
enum pd_cluster_token { PD_CLUSTER_TOKEN, PD_CLUSTER_LOGIN, PD_CLUSTER_ALONE };
struct pd_cluster_token_ask {
    void (*answer)(struct pd_cluster_token_ask *a, enum pd_cluster_token what, const char *token,
                   uint64_t expires_at_ms, uint64_t renew_at_ms);
};
void pd_cluster_token_get(struct pd_cluster *c, struct pd_cluster_token_ask *a,
                          const char *refused);
void pd_cluster_token_cancel(struct pd_cluster *c, struct pd_cluster_token_ask *a);
void pd_cluster_token_put(struct pd_cluster *c, const char *token, uint64_t expires_at_ms,
                          uint64_t renew_at_ms);
void pd_cluster_token_failed(struct pd_cluster *c);

/*
 * Shared dedupe: a content (FLOW and SHA256) is claimed account-wide for WINDOW_MS before it is
 * sent, so a file dropped on two hosts within the window goes once. DONE gets SEND (claimed by
 * this host, or Redis is away: send as a host alone would), DUPLICATE (delivered by another
 * host within the window; WHERE names that host and its receipt) or WAIT (another host is
 * sending it now: ask again later). DONE runs once, never inside this call; ARG must live
 * until then.
 */
enum pd_cluster_dedupe { PD_CLUSTER_SEND, PD_CLUSTER_DUPLICATE, PD_CLUSTER_WAIT };
typedef void (*pd_cluster_dedupe_fn)(void *arg, enum pd_cluster_dedupe what, const char *where);
void pd_cluster_dedupe_claim(struct pd_cluster *c, const char *flow, const char *sha256,
                             uint64_t window_ms, pd_cluster_dedupe_fn done, void *arg);
/* This host delivered the content: RECEIPT is where its receipt is. */
void pd_cluster_dedupe_done(struct pd_cluster *c, const char *flow, const char *sha256,
                            uint64_t window_ms, const char *receipt);
/* This host's claim ends without a delivery (failed, or stopped before): others may send. */
void pd_cluster_dedupe_drop(struct pd_cluster *c, const char *flow, const char *sha256);

/*
 * Seeing all hosts: every 5 s while Redis answers, FN(ARG)'s summary of this host (a JSON
 * object, malloc'd) is published under host:<name> for 15 s, and the host is noted in the
 * hosts set. `patchdrop status --cluster` reads them (pd_cluster_hosts).
 */
void pd_cluster_set_beat(struct pd_cluster *c, char *(*fn)(void *arg), void *arg);
#define PD_CLUSTER_BEAT_MS 5000u
#define PD_CLUSTER_BEAT_TTL_MS 15000u

/*
 * Every host of CFG's cluster, asked of Redis at once (blocking, a 3 s timeout): *JSON gets
 * {"hosts": [{"name", "last_seen_seconds", "alive", "summary"}]}, the most recent first, a
 * host silent for longer than the heartbeat's TTL with alive false and summary null. Returns
 * 0, or -1 with WHY saying what failed (never the password).
 */
int pd_cluster_hosts(const struct pd_config *cfg, char **json, char *why, size_t len);

#endif
