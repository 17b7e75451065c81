/*
 * [cluster]'s checks (include/pd_cluster.h): the Redis address, its password file, and the
 * defaults only known once the rest is read: this host's name and the key prefix, which
 * carries the account's fingerprint so two accounts never share keys in one Redis.
 */
#include "config_internal.h"
#include "pd_cluster.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static int cluster_line(struct parser *p, const char *key)
{
    const struct key *k = cfg_find_key(SEC_CLUSTER, key);
    int line = k ? p->cluster_seen.line[k - cfg_keys] : 0;
    return line ? line : p->cluster_line;
}

/* Key names are written into Redis commands: plain printable words only. */
static bool plain_word(const char *s)
{
    for (; *s; s++)
        if (*s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

static void default_name(struct parser *p, struct pd_cluster_cfg *c)
{
    char host[256];
    if (c->name)
        return;
    if (gethostname(host, sizeof(host)) != 0 || !host[0]) {
        cfg_add_error(p, p->cluster_line,
                      "[cluster] name is not set and the hostname cannot be read; set name = "
                      "THIS_HOST");
        return;
    }
    host[sizeof(host) - 1] = '\0';
    if (!(c->name = strdup(host)))
        p->oom = true;
}

/* rediss://'s files: each readable and usable (the key that of the certificate); for another
 * address they would do nothing, which is said rather than ignored. */
static void check_tls(struct parser *p, const struct pd_cluster_cfg *c,
                      const struct pd_redis_addr *addr)
{
    const char *keys[] = {"ca_file", "tls_cert_file", "tls_key_file"};
    const char *paths[] = {c->ca_file, c->tls_cert_file, c->tls_key_file};
    char why[512];
    bool ok = true;

    for (int i = 0; i < 3; i++) {
        if (!paths[i])
            continue;
        if (!addr->tls) {
            cfg_add_error(p, cluster_line(p, keys[i]),
                          "%s is only for TLS: write redis = rediss://HOST:PORT/DB, or remove %s",
                          keys[i], keys[i]);
            ok = false;
        } else if (access(paths[i], R_OK)) {
            cfg_add_error(p, cluster_line(p, keys[i]), "%s = %s cannot be read: %s", keys[i],
                          paths[i], strerror(errno));
            ok = false;
        }
    }
    struct stat st; /* the key is a secret: as password_file, never readable by all */
    if (c->tls_key_file && !stat(c->tls_key_file, &st))
        (void)cfg_secret_private(p, cluster_line(p, "tls_key_file"), "tls_key_file",
                                 c->tls_key_file, &st);
    if (!c->tls_cert_file != !c->tls_key_file) {
        cfg_add_error(p, cluster_line(p, c->tls_cert_file ? "tls_cert_file" : "tls_key_file"),
                      "tls_cert_file and tls_key_file go together: set both (Redis's "
                      "tls-auth-clients) or neither");
        ok = false;
    }
    if (!c->tls_verify && !addr->tls)
        cfg_add_error(p, cluster_line(p, "tls_verify"),
                      "tls_verify is only for TLS (redis = rediss://...): remove it");
    if (ok && addr->tls && pd_cluster_tls_check(c, why, sizeof(why)))
        cfg_add_error(p, cluster_line(p, "redis"), "%s", why);
}

void cfg_check_cluster(struct parser *p)
{
    struct pd_cluster_cfg *c = &p->cfg->cluster;
    struct pd_redis_addr addr;
    char why[512], fp[13];

    if (!c->redis) {
        if (p->cluster_line && (c->password_file || c->name || c->key_prefix))
            cfg_add_error(p, p->cluster_line,
                          "[cluster] needs redis = redis://HOST:PORT/DB (or unix:/PATH); "
                          "without it this host works alone: remove the section");
        return;
    }
    if (pd_cluster_parse_url(c->redis, &addr, why, sizeof(why)))
        cfg_add_error(p, cluster_line(p, "redis"), "%s", why);
    else
        check_tls(p, c, &addr);
    if (c->password_file)
        c->password = cfg_read_secret_file(p, c->password_file, "password_file",
                                           cluster_line(p, "password_file"));
    default_name(p, c);
    if (c->name && (!*c->name || !plain_word(c->name)))
        cfg_add_error(p, cluster_line(p, "name"),
                      "name = '%s': expected one word without spaces, like the hostname", c->name);
    if (c->key_prefix && (!*c->key_prefix || !plain_word(c->key_prefix)))
        cfg_add_error(p, cluster_line(p, "key_prefix"),
                      "key_prefix = '%s': expected one word without spaces, e.g. patchdrop:prod:",
                      c->key_prefix);
    if (!c->key_prefix) {
        pd_cluster_fingerprint(&p->cfg->pw, fp);
        if (asprintf(&c->key_prefix, "patchdrop:%s:", fp) < 0) {
            c->key_prefix = NULL;
            p->oom = true;
        }
    }
}
