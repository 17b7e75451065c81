/*
 * Credentials for Patchworks requests: the token life cycle of password mode (one login shared
 * by every waiting request, a token file in the state dir so restarts reuse it) and the raw key
 * of API-key mode. See include/pd_auth.h and docs/patchworks-api.md, "Authentication".
 */
#include "pd_auth.h"

#include "pd_api.h"
#include "pd_client.h"
#include "pd_clock.h"
#include "pd_cluster.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_list.h"
#include "pd_log.h"

#include <cjson/cJSON.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Patchworks documents 24 h tokens; when a login answer omits expires_in, that is assumed. */
#define DEFAULT_TTL_S (24u * 3600u)
/* A token is renewed this long before it runs out (at most a tenth of its life). */
#define RENEW_MARGIN_MS (5u * 60u * 1000u)

struct pd_auth {
    struct pd_client *client;
    const struct pd_patchworks *pw;
    const struct pd_clock *clock;
    char *token_path; /* NULL: tokens are not kept across runs */
    char *header;     /* Authorization value in use, or NULL */
    uint64_t expires_at_ms, renew_at_ms;
    unsigned generation;
    bool from_cache;
    bool logging_in;
    bool proven;       /* a request succeeded with the current token */
    unsigned suspect;  /* tokens refused in a row before any success */
    char *login_body; /* holds the password while the login is in flight */
    struct pd_auth_wait *head, *tail;
    char message[768];
    /* [cluster]: the account's token is shared through Redis (pd_cluster.h). */
    struct pd_cluster *cluster;
    struct pd_cluster_token_ask shared;
    bool holds_lock; /* this host logs in for all of them */
    char *refused;   /* the last token a 401 refused, never taken from Redis again; wiped */
};

static void wipe_free(char *s)
{
    if (!s)
        return;
    memset(s, 0, strlen(s));
    free(s);
}

static char *bearer(const char *token)
{
    size_t n = strlen(token) + 8;
    char *h = malloc(n);
    if (h)
        snprintf(h, n, "Bearer %s", token);
    return h;
}

static uint64_t renew_time(uint64_t now_ms, uint64_t expires_at_ms)
{
    uint64_t life = expires_at_ms > now_ms ? expires_at_ms - now_ms : 0;
    uint64_t margin = life / 10 < RENEW_MARGIN_MS ? life / 10 : RENEW_MARGIN_MS;
    return expires_at_ms - margin;
}

static void json_delete_wiped_strings(cJSON *node)
{
    for (cJSON *c = node->child; c; c = c->next)
        json_delete_wiped_strings(c);
    if (node->valuestring)
        memset(node->valuestring, 0, strlen(node->valuestring));
}

/* Frees a parsed tree that held a token, wiping every string first. */
static void json_delete_wiped(cJSON *node)
{
    if (node)
        json_delete_wiped_strings(node);
    cJSON_Delete(node);
}

/* Reads <state>/token when it belongs to this account and login URL and is still usable. */
static void load_cached(struct pd_auth *a)
{
    char buf[16384];
    ssize_t n;
    cJSON *root = NULL;
    int fd = open(a->token_path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        goto done;
    buf[n] = '\0';
    root = cJSON_Parse(buf);
    memset(buf, 0, sizeof(buf));
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(root, "login_url");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(root, "user");
    const cJSON *tok = cJSON_GetObjectItemCaseSensitive(root, "token");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(root, "expires_at_ms");
    const cJSON *renew = cJSON_GetObjectItemCaseSensitive(root, "renew_at_ms");
    if (!cJSON_IsString(url) || !cJSON_IsString(user) || !cJSON_IsString(tok) ||
        !cJSON_IsNumber(exp) || !cJSON_IsNumber(renew))
        goto done;
    if (strcmp(url->valuestring, a->pw->login_url) || strcmp(user->valuestring, a->pw->email))
        goto done;
    uint64_t now = a->clock->wall_ms(a->clock->arg);
    if ((uint64_t)renew->valuedouble <= now)
        goto done;
    a->header = bearer(tok->valuestring);
    if (!a->header)
        goto done;
    a->expires_at_ms = (uint64_t)exp->valuedouble;
    a->renew_at_ms = (uint64_t)renew->valuedouble;
    a->from_cache = true;
    a->generation++;
done:
    json_delete_wiped(root);
}

/* A durable save (pd_fs_write_atomic: temp, fsync, rename, fsync the folder), mode 0600. */
static int save_cached(struct pd_auth *a, const char *token, const char **step)
{
    int rc = PD_ENOMEM;
    char *text = NULL, *dir = NULL, *slash;
    cJSON *root = cJSON_CreateObject();

    *step = "build";
    if (!root || !cJSON_AddNumberToObject(root, "version", 1) ||
        !cJSON_AddStringToObject(root, "login_url", a->pw->login_url) ||
        !cJSON_AddStringToObject(root, "user", a->pw->email) ||
        !cJSON_AddStringToObject(root, "token", token) ||
        !cJSON_AddNumberToObject(root, "expires_at_ms", (double)a->expires_at_ms) ||
        !cJSON_AddNumberToObject(root, "renew_at_ms", (double)a->renew_at_ms) ||
        !(text = cJSON_PrintUnformatted(root)) || !(dir = strdup(a->token_path)))
        goto done;
    if ((slash = strrchr(dir, '/')))
        *slash = '\0';
    *step = "create the state folder";
    if ((rc = pd_fs_mkdirs(dir, 0700)) != 0)
        goto done;
    *step = "write the token file";
    rc = pd_fs_write_atomic(a->token_path, text, strlen(text), 0600);
done:
    wipe_free(text);
    json_delete_wiped(root);
    free(dir);
    return rc;
}

int pd_auth_create(struct pd_client *client, const struct pd_patchworks *pw, const char *state_dir,
                   const struct pd_clock *clock, struct pd_auth **out)
{
    struct pd_auth *a = calloc(1, sizeof(*a));
    *out = NULL;
    if (!a)
        return PD_ENOMEM;
    a->client = client;
    a->pw = pw;
    a->clock = clock;
    if (pw->auth == PD_AUTH_API_KEY) {
        if (!pw->api_key || !(a->header = strdup(pw->api_key)))
            goto fail;
    } else if (state_dir && pw->login_url && pw->email) {
        if (asprintf(&a->token_path, "%s/token", state_dir) < 0) {
            a->token_path = NULL;
            goto fail;
        }
        load_cached(a);
    }
    *out = a;
    return 0;
fail:
    free(a);
    return PD_ENOMEM;
}

static void drop_token(struct pd_auth *a)
{
    a->proven = false;
    wipe_free(a->header);
    a->header = NULL;
    a->expires_at_ms = a->renew_at_ms = 0;
    a->from_cache = false;
}

/* Hands the outcome of a login to everybody who waited for it. */
static void notify_all(struct pd_auth *a, int err, const char *message)
{
    struct pd_auth_wait *w = a->head;
    char text[sizeof(a->message)];
    /* A callback may close the client and with it this module: keep the words on the stack. */
    snprintf(text, sizeof(text), "%s", message ? message : "");
    message = message ? text : NULL;
    a->head = a->tail = NULL;
    /* Detach every waiter before calling any: a callback may cancel others (closing the
     * client), and a cancel must not touch a list that is no longer the queue. Waiters live in
     * requests whose memory is released only by a later close callback, so the chain stays
     * valid for this walk; requests already finished ignore the call. */
    for (struct pd_auth_wait *i = w; i; i = i->next)
        i->queued = false;
    while (w) {
        struct pd_auth_wait *next = w->next;
        w->next = w->prev = NULL;
        w->ready(w->arg, err, message);
        w = next;
    }
}

void pd_auth_destroy(struct pd_auth **ap)
{
    struct pd_auth *a = ap ? *ap : NULL;
    if (!a)
        return;
    *ap = NULL;
    notify_all(a, PD_ECANCELED, "canceled");
    pd_cluster_token_cancel(a->cluster, &a->shared);
    drop_token(a);
    wipe_free(a->refused);
    wipe_free(a->login_body);
    free(a->token_path);
    free(a);
}

const char *pd_auth_header(struct pd_auth *a, unsigned *generation)
{
    *generation = a->generation;
    if (!a->header)
        return NULL;
    if (a->pw->auth == PD_AUTH_PASSWORD && a->clock->wall_ms(a->clock->arg) >= a->renew_at_ms)
        return NULL;
    return a->header;
}

int pd_auth_refused(struct pd_auth *a, unsigned generation, const char **message,
                    unsigned *suspect)
{
    *suspect = 0;
    if (a->pw->auth == PD_AUTH_API_KEY) {
        snprintf(a->message, sizeof(a->message),
                 "Patchworks refused the API key (HTTP 401) from %s: check api_key / "
                 "api_key_file / PATCHDROP_API_KEY",
                 a->pw->secret_source ? a->pw->secret_source : "the configuration");
        *message = a->message;
        return PD_EAUTH;
    }
    /* Many requests may have been sent with the same token: only the first 401 drops it. */
    if (generation == a->generation && a->header) {
        a->suspect = a->proven ? 0 : a->suspect + 1;
        if (a->cluster && !strncmp(a->header, "Bearer ", 7)) {
            wipe_free(a->refused);
            a->refused = strdup(a->header + 7);
        }
        drop_token(a);
    }
    if (generation == a->generation)
        *suspect = a->suspect;
    *message = NULL;
    return 0;
}

void pd_auth_proven(struct pd_auth *a, unsigned generation)
{
    if (generation == a->generation && a->header) {
        a->proven = true;
        a->suspect = 0;
    }
}

/* The login failed: the other hosts may try (the lock goes), the waiters hear why. */
static void login_failed(struct pd_auth *a, int err)
{
    if (a->holds_lock)
        pd_cluster_token_failed(a->cluster);
    a->holds_lock = false;
    notify_all(a, err, a->message);
}

/* TOKEN is the one to send from now on (a login's, or the cluster's when SHARED). */
static int take_token(struct pd_auth *a, const char *token, uint64_t expires_at_ms,
                      uint64_t renew_at_ms, bool shared)
{
    drop_token(a);
    a->header = bearer(token);
    if (!a->header)
        return PD_ENOMEM;
    a->expires_at_ms = expires_at_ms;
    a->renew_at_ms = renew_at_ms;
    a->generation++;
    if (a->token_path) {
        const char *step;
        int rc = save_cached(a, token, &step);
        if (rc) {
            char line[2560], words[2048], qp[2048], qs[128], qr[256];
            snprintf(line, sizeof(line), "event=token_not_kept path=%s step=%s reason=%s",
                     pd_log_quote(a->token_path, qp, sizeof(qp)),
                     pd_log_quote(step, qs, sizeof(qs)),
                     pd_log_quote(pd_strerror(rc), qr, sizeof(qr)));
            snprintf(words, sizeof(words),
                     "could not keep the token in %s (%s: %s); logging in again after a restart",
                     a->token_path, step, pd_strerror(rc));
            pd_client_note(a->client, PD_LOG_WARN, line, words);
        }
    }
    char line[96], words[128];
    uint64_t now = a->clock->wall_ms(a->clock->arg);
    unsigned long long ttl_s = expires_at_ms > now ? (expires_at_ms - now) / 1000 : 0;
    snprintf(line, sizeof(line), "event=%s expires_in=%llu", shared ? "login_shared" : "login",
             ttl_s);
    snprintf(words, sizeof(words), "%s; the token expires in %llu s",
             shared ? "took the account's token from the cluster" : "logged in", ttl_s);
    pd_client_note(a->client, PD_LOG_INFO, line, words);
    return 0;
}

/* Words for a login that failed with ERR (R: its outcome); 0 when it did not. */
static int login_error(struct pd_auth *a, const struct pd_client_result *r, int err)
{
    if (err == PD_EAUTH || (err == PD_EREJECTED && r->api.status == 422)) {
        /* Which credential, never its value: the password may be right and the name wrong. */
        snprintf(a->message, sizeof(a->message),
                 "Patchworks refused the login at %s (%s): check %s \"%s\" and the password "
                 "from %s",
                 a->pw->login_url, r->api.message ? r->api.message : "refused",
                 a->pw->login_field == PD_LOGIN_USERNAME ? "the username" : "the email",
                 a->pw->email, a->pw->secret_source ? a->pw->secret_source : "the configuration");
        return PD_EAUTH;
    }
    if (err == PD_EREJECTED || err == PD_ETOOBIG || err == PD_ECONFIG) {
        /* Not the credentials: the login request itself cannot work as configured. */
        snprintf(a->message, sizeof(a->message), "the login at %s failed: %s; check login_url",
                 a->pw->login_url, r->message ? r->message : pd_strerror(err));
        return PD_ECONFIG;
    }
    if (err)
        snprintf(a->message, sizeof(a->message), "login failed: %s",
                 r->message ? r->message : pd_strerror(err));
    return err;
}

static void on_login_done(void *arg, const struct pd_client_result *r)
{
    struct pd_auth *a = arg;
    char *token = NULL;
    uint64_t ttl_s;
    int err;

    a->logging_in = false;
    wipe_free(a->login_body);
    a->login_body = NULL;
    if ((err = login_error(a, r, r->err))) {
        login_failed(a, err);
        return;
    }
    if (pd_api_parse_login(r->body, r->body_len, DEFAULT_TTL_S, &token, &ttl_s) != 0) {
        snprintf(a->message, sizeof(a->message),
                 "the login at %s answered HTTP %ld without a token", a->pw->login_url,
                 r->api.status);
        login_failed(a, PD_EPROTOCOL);
        return;
    }
    uint64_t now = a->clock->wall_ms(a->clock->arg);
    uint64_t expires = now + ttl_s * 1000;
    if (take_token(a, token, expires, renew_time(now, expires), false)) {
        wipe_free(token);
        snprintf(a->message, sizeof(a->message), "%s", pd_strerror(PD_ENOMEM));
        login_failed(a, PD_ENOMEM);
        return;
    }
    if (a->holds_lock)
        pd_cluster_token_put(a->cluster, token, a->expires_at_ms, a->renew_at_ms);
    a->holds_lock = false;
    wipe_free(token);
    notify_all(a, 0, NULL);
}

static void login_now(struct pd_auth *a)
{
    int rc;
    struct pd_client_request req = {.method = "POST", .url = a->pw->login_url, .no_auth = true};
    if ((rc = pd_api_login_body(a->pw, &a->login_body)) != 0) {
        snprintf(a->message, sizeof(a->message), "cannot log in: %s (email and password needed)",
                 pd_strerror(rc));
        notify_all(a, rc == PD_ECONFIG ? PD_EAUTH : rc, a->message);
        return;
    }
    req.body = a->login_body;
    req.body_len = strlen(a->login_body);
    if ((rc = pd_client_submit(a->client, &req, on_login_done, a)) != 0) {
        wipe_free(a->login_body);
        a->login_body = NULL;
        notify_all(a, rc, pd_strerror(rc));
        return;
    }
    a->logging_in = true;
}

/* The cluster's answer: the account's token, or log in (for all hosts, or alone). */
static void on_shared(struct pd_cluster_token_ask *t, enum pd_cluster_token what, const char *token,
                      uint64_t expires_at_ms, uint64_t renew_at_ms)
{
    struct pd_auth *a = (struct pd_auth *)((char *)t - offsetof(struct pd_auth, shared));
    a->logging_in = false;
    if (what == PD_CLUSTER_TOKEN && renew_at_ms > a->clock->wall_ms(a->clock->arg)) {
        if (take_token(a, token, expires_at_ms, renew_at_ms, true) == 0) {
            notify_all(a, 0, NULL);
            return;
        }
    }
    a->holds_lock = what == PD_CLUSTER_LOGIN;
    login_now(a);
}

/* With a cluster the account's token is asked for first; one host logs in for all. */
static void start_login(struct pd_auth *a)
{
    if (!a->cluster) {
        login_now(a);
        return;
    }
    a->logging_in = true;
    a->shared.answer = on_shared;
    pd_cluster_token_get(a->cluster, &a->shared, a->refused);
}

void pd_auth_set_cluster(struct pd_auth *a, struct pd_cluster *cluster)
{
    if (a->pw->auth == PD_AUTH_PASSWORD)
        a->cluster = cluster;
}

void pd_auth_wait(struct pd_auth *a, struct pd_auth_wait *w, pd_auth_ready_fn ready, void *arg)
{
    w->ready = ready;
    w->arg = arg;
    w->next = NULL;
    PD_LIST_APPEND(a->head, a->tail, w);
    w->queued = true;
    if (a->pw->auth == PD_AUTH_API_KEY) {
        notify_all(a, PD_EAUTH, "no API key configured");
        return;
    }
    if (!a->logging_in)
        start_login(a);
}

void pd_auth_cancel_wait(struct pd_auth *a, struct pd_auth_wait *w)
{
    if (!a || !w->queued)
        return;
    PD_LIST_UNLINK_TAIL(a->head, a->tail, w);
    w->next = w->prev = NULL;
    w->queued = false;
}

void pd_auth_forget(struct pd_auth *a)
{
    if (a->pw->auth != PD_AUTH_PASSWORD)
        return;
    drop_token(a);
    if (a->token_path)
        unlink(a->token_path);
}

uint64_t pd_auth_expires_at(const struct pd_auth *a)
{
    return a->pw->auth == PD_AUTH_PASSWORD && a->header ? a->expires_at_ms : 0;
}

bool pd_auth_from_cache(const struct pd_auth *a)
{
    return a->from_cache;
}
