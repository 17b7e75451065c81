/*
 * rediss://: the TLS settings of [cluster] as an OpenSSL context (cluster_tls.c's bridge uses
 * it), and their check at config load. A file of its own so that the config's checks (and
 * fuzz_config) need no bridge, thread or log.
 */
#include "cluster_internal.h"

#include "pd_error.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

static int ctx_fail(char *why, size_t len, const char *what, const char *path)
{
    unsigned long e = ERR_get_error();
    char err[256];
    ERR_error_string_n(e, err, sizeof(err));
    ERR_clear_error();
    snprintf(why, len, "[cluster] %s = %s: %s", what, path, e ? err : "cannot be used");
    return PD_ECONFIG;
}

/* The TLS settings of [cluster]: TLS 1.2 and later, Redis's certificate checked against ca_file
 * (or the system's CAs) unless tls_verify = no, this host's certificate if one is set. */
int cluster_tls_ctx(const struct pd_cluster_cfg *c, SSL_CTX **out, char *why, size_t len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int rc = 0;

    *out = NULL;
    if (!ctx || !SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION)) {
        SSL_CTX_free(ctx);
        snprintf(why, len, "[cluster] rediss://: cannot set up TLS (OpenSSL)");
        return PD_ENOMEM;
    }
    SSL_CTX_set_verify(ctx, c->tls_verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    /* Redis killed or restarted sends no close_notify: a plain close, not a TLS failure. */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (c->ca_file && !SSL_CTX_load_verify_locations(ctx, c->ca_file, NULL))
        rc = ctx_fail(why, len, "ca_file", c->ca_file);
    else if (!c->ca_file && !SSL_CTX_set_default_verify_paths(ctx))
        rc = ctx_fail(why, len, "ca_file", "(the system's CAs)");
    else if (c->tls_cert_file && !SSL_CTX_use_certificate_chain_file(ctx, c->tls_cert_file))
        rc = ctx_fail(why, len, "tls_cert_file", c->tls_cert_file);
    else if (c->tls_key_file &&
             !SSL_CTX_use_PrivateKey_file(ctx, c->tls_key_file, SSL_FILETYPE_PEM))
        rc = ctx_fail(why, len, "tls_key_file", c->tls_key_file);
    else if (c->tls_cert_file && c->tls_key_file && !SSL_CTX_check_private_key(ctx))
        rc = ctx_fail(why, len, "tls_key_file", "(not the key of tls_cert_file)");
    if (rc) {
        SSL_CTX_free(ctx);
        return rc;
    }
    *out = ctx;
    return 0;
}

int pd_cluster_tls_check(const struct pd_cluster_cfg *c, char *why, size_t len)
{
    SSL_CTX *ctx;
    int rc = cluster_tls_ctx(c, &ctx, why, len);
    SSL_CTX_free(ctx);
    return rc;
}
