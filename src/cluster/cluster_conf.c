/*
 * The cluster's pure parts (include/pd_cluster.h): the Redis address, the account's
 * fingerprint, key names, the fallback's share and the table of this host's permits.
 */
#include "pd_cluster.h"

#include "pd_config.h"
#include "pd_error.h"
#include "pd_mem.h"

#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REDIS_PORT 6379

static int fail(char *why, size_t len, const char *url, const char *what)
{
    snprintf(why, len, "redis = %s: %s", url, what);
    return PD_ECONFIG;
}

static bool parse_uint(const char *s, size_t n, unsigned long max, unsigned long *out)
{
    unsigned long v = 0;
    if (!n)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(s[i] - '0');
        if (v > max)
            return false;
    }
    *out = v;
    return true;
}

static int parse_unix(const char *url, struct pd_redis_addr *out, char *why, size_t len)
{
    const char *path = url + 5, *q = strchr(path, '?');
    size_t n = q ? (size_t)(q - path) : strlen(path);
    unsigned long db = 0;

    if (n == 0 || path[0] != '/')
        return fail(why, len, url, "expected unix:/PATH with an absolute path to the socket");
    if (n >= sizeof(out->path))
        return fail(why, len, url, "the socket's path is too long (at most 107 bytes)");
    if (q && (strncmp(q, "?db=", 4) || !parse_uint(q + 4, strlen(q + 4), 1000000, &db)))
        return fail(why, len, url, "after the path only ?db=N (a number) may follow");
    memcpy(out->path, path, n);
    out->path[n] = '\0';
    out->db = (unsigned)db;
    return 0;
}

/* HOST[:PORT] or [V6][:PORT], up to the '/' or the end. */
static int parse_hostport(const char *url, const char *hp, size_t n, struct pd_redis_addr *out,
                          char *why, size_t len)
{
    const char *host = hp, *colon;
    size_t hn;
    unsigned long port = REDIS_PORT;

    if (memchr(hp, '@', n))
        return fail(why, len, url,
                    "no password in the URL (it would show in logs and ps): put it in "
                    "[cluster] password_file");
    if (n && hp[0] == '[') {
        const char *close = memchr(hp, ']', n);
        if (!close)
            return fail(why, len, url, "an IPv6 address needs its closing ]");
        host = hp + 1;
        hn = (size_t)(close - host);
        colon = close + 1 < hp + n && close[1] == ':' ? close + 1 : NULL;
        if (!colon && close + 1 != hp + n)
            return fail(why, len, url, "after ] only :PORT may follow");
    } else {
        colon = memchr(hp, ':', n);
        hn = colon ? (size_t)(colon - hp) : n;
    }
    if (colon && (!parse_uint(colon + 1, (size_t)(hp + n - colon - 1), 65535, &port) || !port))
        return fail(why, len, url, "the port must be a number from 1 to 65535");
    if (!hn)
        return fail(why, len, url, "expected redis://HOST:PORT/DB, e.g. redis://10.0.0.5:6379/0");
    if (hn >= sizeof(out->host))
        return fail(why, len, url, "the host name is too long");
    memcpy(out->host, host, hn);
    out->host[hn] = '\0';
    out->port = (int)port;
    return 0;
}

int pd_cluster_parse_url(const char *url, struct pd_redis_addr *out, char *why, size_t len)
{
    memset(out, 0, sizeof(*out));
    if (!strncmp(url, "unix:", 5))
        return parse_unix(url, out, why, len);
    /* rediss://: TLS through our own bridge (cluster_tls.c), hiredis 0.14 has none. */
    out->tls = !strncmp(url, "rediss://", 9);
    if (!out->tls && strncmp(url, "redis://", 8))
        return fail(why, len, url,
                    "expected redis://HOST:PORT/DB, rediss://HOST:PORT/DB (TLS) "
                    "or unix:/PATH");
    const char *hp = url + (out->tls ? 9 : 8), *slash = strchr(hp, '/');
    size_t n = slash ? (size_t)(slash - hp) : strlen(hp);
    int rc = parse_hostport(url, hp, n, out, why, len);
    if (rc)
        return rc;
    if (slash && slash[1]) {
        unsigned long db;
        if (!parse_uint(slash + 1, strlen(slash + 1), 1000000, &db))
            return fail(why, len, url, "the database after / must be a number, e.g. /0");
        out->db = (unsigned)db;
    }
    return 0;
}

void pd_cluster_fingerprint(const struct pd_patchworks *pw, char out[13])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdlen = 0;
    const char *who = pw->auth == PD_AUTH_API_KEY ? pw->api_key : pw->email;
    const char *kind = pw->auth == PD_AUTH_API_KEY ? "patchdrop-key:" : "patchdrop-login:";
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();

    memset(md, 0, sizeof(md));
    if (ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) &&
        EVP_DigestUpdate(ctx, kind, strlen(kind)) &&
        EVP_DigestUpdate(ctx, who ? who : "", who ? strlen(who) : 0))
        EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    for (int i = 0; i < 6; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

uint64_t pd_cluster_fallback_share(uint64_t rate, uint64_t hosts)
{
    uint64_t share = hosts ? rate / hosts : rate;
    return share ? share : 1;
}

const char *pd_cluster_key(const char *prefix, const char *name, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s%s", prefix, name);
    return n < 0 || (size_t)n >= len ? NULL : buf;
}

int pd_cluster_permits_add(struct pd_cluster_permits *t, uint64_t id, bool redis)
{
    char *buf = (char *)t->p;
    size_t bytes = t->cap * sizeof(*t->p);
    if (pd_reserve(&buf, &bytes, (t->n + 1) * sizeof(*t->p), 16 * sizeof(*t->p), UINT64_MAX))
        return PD_ENOMEM;
    t->p = (struct pd_cluster_permit *)(void *)buf;
    t->cap = bytes / sizeof(*t->p);
    t->p[t->n++] = (struct pd_cluster_permit){.id = id, .end = UINT64_MAX, .redis = redis};
    return 0;
}

bool pd_cluster_permits_answer(struct pd_cluster_permits *t, uint64_t id, uint64_t now,
                               uint64_t window)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->p[i].id == id && t->p[i].end == UINT64_MAX) {
            t->p[i].end = now + window;
            return true;
        }
    return false;
}

size_t pd_cluster_permits_expire(struct pd_cluster_permits *t, uint64_t now)
{
    size_t kept = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->p[i].end > now)
            t->p[kept++] = t->p[i];
    t->n = kept;
    return kept;
}

uint64_t pd_cluster_permits_next_end(const struct pd_cluster_permits *t)
{
    uint64_t first = UINT64_MAX;
    for (size_t i = 0; i < t->n; i++)
        if (t->p[i].end < first)
            first = t->p[i].end;
    return first;
}

void pd_cluster_permits_free(struct pd_cluster_permits *t)
{
    free(t->p);
    memset(t, 0, sizeof(*t));
}

void pd_cluster_cfg_wipe(struct pd_cluster_cfg *c)
{
    if (c->password) {
        explicit_bzero(c->password, strlen(c->password));
        free(c->password);
        c->password = NULL;
    }
}
