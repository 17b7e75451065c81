/*
 * DNS, TCP and TLS to one endpoint, one step at a time, for `patchdrop doctor` (include/
 * pd_probe.h). The TLS step goes through libcurl with the options patchdrop's requests use, so
 * it refuses what they would refuse; the certificate it saw is read with libcrypto.
 */
#include "pd_probe.h"

#include "pd_error.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/asn1.h>
#include <openssl/bio.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

int pd_probe_url_parse(const char *url, struct pd_probe_url *out, char *why, size_t whylen)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    int rc = PD_ECONFIG;

    memset(out, 0, sizeof(*out));
    if (!u || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK) {
        snprintf(why, whylen, "not a URL with a scheme and a host");
        goto out;
    }
    if (strcasecmp(scheme, "https") && strcasecmp(scheme, "http")) {
        snprintf(why, whylen, "scheme %s: only http and https are used", scheme);
        goto out;
    }
    for (size_t i = 0; scheme[i] && i + 1 < sizeof(out->scheme); i++)
        out->scheme[i] = (char)(scheme[i] | 0x20);
    /* An IPv6 literal comes bracketed; getaddrinfo wants it bare. */
    snprintf(out->host, sizeof(out->host), "%.*s",
             host[0] == '[' ? (int)strlen(host) - 2 : (int)strlen(host), host + (host[0] == '['));
    snprintf(out->port, sizeof(out->port), "%s", port);
    rc = 0;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

static void addr_text(const struct addrinfo *ai, char *out, size_t len)
{
    if (getnameinfo(ai->ai_addr, ai->ai_addrlen, out, (socklen_t)len, NULL, 0, NI_NUMERICHOST))
        snprintf(out, len, "?");
}

int pd_probe_dns(const char *host, const char *port, struct addrinfo **res, char *addrs,
                 size_t addrslen, char *why, size_t whylen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    size_t used = 0, n = 0;
    int rc = getaddrinfo(host, port, &hints, res);

    if (rc) {
        snprintf(why, whylen, "%s", rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        *res = NULL;
        return -EIO;
    }
    addrs[0] = '\0';
    for (const struct addrinfo *ai = *res; ai && used + 1 < addrslen; ai = ai->ai_next, n++) {
        char a[64];
        if (n == 4) {
            snprintf(addrs + used, addrslen - used, ", ...");
            break;
        }
        addr_text(ai, a, sizeof(a));
        int w = snprintf(addrs + used, addrslen - used, "%s%s", used ? ", " : "", a);
        if (w < 0 || (size_t)w >= addrslen - used)
            break;
        used += (size_t)w;
    }
    return 0;
}

/* One connection attempt within TIMEOUT_MS: 0 or an errno. */
static int connect_one(const struct addrinfo *ai, unsigned timeout_ms)
{
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int err = 0;
    socklen_t len = sizeof(err);

    if (fd < 0)
        return errno;
    if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        if (errno != EINPROGRESS)
            err = errno;
        else if (poll(&p, 1, (int)timeout_ms) == 0)
            err = ETIMEDOUT;
        else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
            err = errno;
    }
    close(fd);
    return err;
}

int pd_probe_tcp(const struct addrinfo *res, unsigned timeout_ms, char *addr, size_t addrlen,
                 char *why, size_t whylen)
{
    for (const struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int err = connect_one(ai, timeout_ms);
        addr_text(ai, addr, addrlen);
        if (!err)
            return 0;
        snprintf(why, whylen, "%s", strerror(err));
    }
    return -EIO;
}

/* Subject, issuer and days left of the PEM certificate curl saw. */
static void read_cert(const char *pem, struct pd_probe_cert *cert)
{
    BIO *bio = BIO_new_mem_buf(pem, -1);
    X509 *x = bio ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    int days = 0, secs = 0;

    if (x) {
        const struct {
            const X509_NAME *name;
            char *out;
        } names[] = {{X509_get_subject_name(x), cert->subject},
                     {X509_get_issuer_name(x), cert->issuer}};
        for (size_t i = 0; i < 2; i++) {
            BIO *m = BIO_new(BIO_s_mem());
            int n = m ? X509_NAME_print_ex(m, names[i].name, 0, XN_FLAG_RFC2253) : -1;
            if (n >= 0)
                n = BIO_read(m, names[i].out, (int)sizeof(cert->subject) - 1);
            names[i].out[n > 0 ? n : 0] = '\0';
            BIO_free(m);
        }
        if (ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)))
            cert->days_left = days;
        cert->have = true;
    }
    X509_free(x);
    BIO_free(bio);
}

/* One handshake; returns the CURLcode, *CERT filled from the leaf certificate when seen. */
static CURLcode handshake(const char *url, bool verify, const char *ca_file, unsigned timeout_ms,
                          struct pd_probe_cert *cert, char *err)
{
    CURL *e = curl_easy_init();
    struct curl_certinfo *ci = NULL;
    CURLcode rc;

    if (!e)
        return CURLE_OUT_OF_MEMORY;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_CONNECT_ONLY, 1L);
    curl_easy_setopt(e, CURLOPT_CERTINFO, 1L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, err);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, verify ? 2L : 0L);
    if (ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, ca_file);
    rc = curl_easy_perform(e);
    if (rc == CURLE_OK && curl_easy_getinfo(e, CURLINFO_CERTINFO, &ci) == CURLE_OK && ci &&
        ci->num_of_certs > 0)
        for (struct curl_slist *s = ci->certinfo[0]; s; s = s->next)
            if (!strncmp(s->data, "Cert:", 5))
                read_cert(s->data + 5, cert);
    curl_easy_cleanup(e);
    return rc;
}

int pd_probe_tls(const char *url, bool verify, const char *ca_file, unsigned timeout_ms,
                 struct pd_probe_cert *cert, char *why, size_t whylen)
{
    char err[CURL_ERROR_SIZE] = "";
    CURLcode rc;

    memset(cert, 0, sizeof(*cert));
    rc = handshake(url, verify, ca_file, timeout_ms, cert, err);
    if (rc == CURLE_OK)
        return 0;
    snprintf(why, whylen, "%s", err[0] ? err : curl_easy_strerror(rc));
    if (rc != CURLE_PEER_FAILED_VERIFICATION && rc != CURLE_SSL_CACERT_BADFILE)
        return -EIO;
    /* Refused: look again without checking, only to say which certificate it was. */
    err[0] = '\0';
    handshake(url, false, NULL, timeout_ms, cert, err);
    return PD_ECONFIG;
}
