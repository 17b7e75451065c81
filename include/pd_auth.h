/*
 * Credentials for Patchworks requests (docs/patchworks-api.md, "Authentication").
 *
 * Password mode: logs in once, keeps the token until shortly before it expires, and keeps it in
 * <state dir>/token (mode 0600, written atomically) so a restart does not log in again. When
 * data requests get 401, the token they used is dropped and exactly one login runs, however many
 * requests got the 401: they all wait in one queue and continue with the new token. A 401 or 422
 * to the login itself is a configuration error that names the refused credential, never its value.
 *
 * API-key mode: the raw key is the Authorization header; a 401 is a configuration error.
 */
#ifndef PD_AUTH_H
#define PD_AUTH_H

#include <stdbool.h>
#include <stdint.h>

struct pd_auth;
struct pd_client;
struct pd_clock;
struct pd_patchworks;

/* err 0: a token is ready. PD_EAUTH: credentials refused (MESSAGE says which). Others: login
 * failed otherwise (PD_ELIMIT, PD_ECONFIG, PD_ECANCELED) with MESSAGE. */
typedef void (*pd_auth_ready_fn)(void *arg, int err, const char *message);

struct pd_auth_wait {
    pd_auth_ready_fn ready;
    void *arg;
    struct pd_auth_wait *next, *prev;
    bool queued;
};

int pd_auth_create(struct pd_client *client, const struct pd_patchworks *pw, const char *state_dir,
                   const struct pd_clock *clock, struct pd_auth **out);
/* Waiters still queued are called with PD_ECANCELED. NULLs *A. NULL is a no-op. */
void pd_auth_destroy(struct pd_auth **a);

/*
 * The Authorization header value to send now and its generation, or NULL when a login is
 * needed first (then use pd_auth_wait).
 */
const char *pd_auth_header(struct pd_auth *a, unsigned *generation);

/*
 * A data request sent with GENERATION's credentials got 401. Password mode: that token is
 * dropped (only if still current, so 50 such answers drop it once); returns 0 and the request
 * should wait for a new one. *SUSPECT counts the tokens in a row refused before any request
 * succeeded with them: 0 means retry at once; more means wait (backoff) before logging in
 * again, so an account whose tokens are refused at once is not hammered with logins.
 * API-key mode: returns PD_EAUTH (*message says so).
 */
int pd_auth_refused(struct pd_auth *a, unsigned generation, const char **message,
                    unsigned *suspect);

/* A request sent with GENERATION's credentials succeeded: the token works. */
void pd_auth_proven(struct pd_auth *a, unsigned generation);

/* Queues W until a token is ready; starts the login unless one is running. */
void pd_auth_wait(struct pd_auth *a, struct pd_auth_wait *w, pd_auth_ready_fn ready, void *arg);
void pd_auth_cancel_wait(struct pd_auth *a, struct pd_auth_wait *w);

/*
 * [cluster] (password mode): the account's token is shared with the other hosts through
 * CLUSTER (pd_cluster.h): taken from Redis when there, else one host logs in for all. CLUSTER
 * must outlive A.
 */
struct pd_cluster;
void pd_auth_set_cluster(struct pd_auth *a, struct pd_cluster *cluster);

/* Forgets the current token (memory and file) so the next request logs in: `patchdrop login`. */
void pd_auth_forget(struct pd_auth *a);

/* When the current token expires (ms since the epoch), 0 when there is none or in key mode. */
uint64_t pd_auth_expires_at(const struct pd_auth *a);

/* Whether the current token came from the state dir instead of a login in this process. */
bool pd_auth_from_cache(const struct pd_auth *a);

#endif
