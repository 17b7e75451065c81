/*
 * What lies between this host and an endpoint, checked step by step for `patchdrop doctor`
 * (src/net/probe.c): the name resolves (getaddrinfo), a TCP connection opens, and for https the
 * TLS handshake passes with the certificate checked as patchdrop's requests check it (TLS 1.2 or
 * later, tls_verify, ca_file), its subject and days left read from it. Blocking, with timeouts:
 * for a command that does one thing at a time, never for the daemon's loop.
 */
#ifndef PD_PROBE_H
#define PD_PROBE_H

#include <stdbool.h>
#include <stddef.h>

struct addrinfo;

struct pd_probe_url {
    char scheme[16]; /* "https", "http" (lower case) */
    char host[256];  /* without brackets */
    char port[8];    /* the URL's port, or the scheme's */
};

/* Reads URL's scheme, host and port. Returns 0, or PD_ECONFIG with WHY. */
int pd_probe_url_parse(const char *url, struct pd_probe_url *out, char *why, size_t whylen);

/* Resolves HOST:PORT (TCP). Returns 0 and *RES (freeaddrinfo), ADDRS the first few addresses as
 * text ("127.0.0.1, ::1"); or -EIO with WHY (the resolver's words). */
int pd_probe_dns(const char *host, const char *port, struct addrinfo **res, char *addrs,
                 size_t addrslen, char *why, size_t whylen);

/* Opens a TCP connection to the addresses of RES in turn, each within TIMEOUT_MS, and closes
 * it. Returns 0 and ADDR (the one that answered), or -EIO with ADDR and WHY (the last
 * address tried, its error). */
int pd_probe_tcp(const struct addrinfo *res, unsigned timeout_ms, char *addr, size_t addrlen,
                 char *why, size_t whylen);

struct pd_probe_cert {
    bool have;         /* the certificate was read */
    char subject[256]; /* RFC 2253: "CN=api.example.com,O=..." */
    char issuer[256];
    long days_left; /* until it expires (negative: expired that long ago) */
};

/*
 * A TLS handshake with URL's host, checking its certificate as configured (VERIFY, CA_FILE or
 * the system's store). Returns 0 with *CERT; PD_ECONFIG when the certificate was refused (WHY:
 * the TLS library's words; *CERT is then read from a second handshake that does not check, so
 * the message can say which certificate was presented); -EIO for any other failure (WHY).
 */
int pd_probe_tls(const char *url, bool verify, const char *ca_file, unsigned timeout_ms,
                 struct pd_probe_cert *cert, char *why, size_t whylen);

#endif
