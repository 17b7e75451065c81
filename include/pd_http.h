/*
 * The HTTP engine: libcurl's multi interface driven by the libuv loop, so that every request to
 * Patchworks runs concurrently on the one loop thread. Connections are kept alive and reused
 * (HTTP/2 multiplexing when the server offers it over TLS, never below TLS 1.2, whatever the
 * system's OpenSSL configuration allows). Each transfer has a connect timeout,
 * a total timeout and a low-speed limit, so a stalled upload fails (and is retried by the
 * caller) instead of hanging. Bodies are sent from the caller's memory; answers are kept in a
 * capped buffer. This module decides nothing about what an answer means (see pd_api.h).
 */
#ifndef PD_HTTP_H
#define PD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct pd_http;
struct pd_http_xfer;

struct pd_http_opts {
    uint64_t timeout_ms;         /* whole transfer; 0: none */
    uint64_t connect_timeout_ms; /* 0: 10 s */
    long low_speed_bytes;        /* fail a transfer slower than this many bytes/s... */
    long low_speed_time_s;       /* ...for this many seconds (0: 30 s; both 0 in opts: defaults) */
    size_t max_response;         /* bytes of an answer kept; the rest is dropped (0: 1 MiB) */
    long max_connections;        /* connections kept open for reuse (0: 8) */
    bool tls_verify;             /* false only when configured so: the caller warns */
    const char *ca_file;         /* NULL: the system's trust store */
};

struct pd_http_request {
    const char *method;        /* "GET", "POST", "PUT", "PATCH" or "DELETE" */
    const char *url;
    const char *authorization; /* the Authorization header's value, or NULL */
    const char *body;          /* POST/PUT/PATCH body, owned by the caller until the done callback */
    size_t body_len;
};

struct pd_http_response {
    long status;           /* 0 when no answer arrived */
    int curl_code;         /* CURLcode; CURLE_ABORTED_BY_CALLBACK when canceled */
    const char *error;     /* curl's words for a failed transfer, "" otherwise */
    char *body;            /* NUL-terminated answer (capped); valid during the callback only */
    size_t body_len;
    bool truncated;        /* the answer was longer than max_response */
    const char *retry_after; /* the Retry-After header's value, or NULL */
    uint64_t elapsed_ms;
    /* The whole request body was handed to the server (a failure after that is ambiguous: the
     * server may have acted on it without answering). */
    bool body_sent;
};

/* Called once per transfer, on the loop thread, also when the transfer is canceled. */
typedef void (*pd_http_done_fn)(void *arg, const struct pd_http_response *resp);

int pd_http_create(uv_loop_t *loop, const struct pd_http_opts *opts, struct pd_http **out);

/*
 * Starts a transfer. *XFER (optional) can be passed to pd_http_cancel until DONE has run.
 * Returns 0, PD_ENOMEM, or PD_ECANCELED when the engine is closing.
 */
int pd_http_send(struct pd_http *h, const struct pd_http_request *req, pd_http_done_fn done,
                 void *arg, struct pd_http_xfer **xfer);

/* Stops a transfer; its DONE runs before this returns, with curl_code CURLE_ABORTED_BY_CALLBACK. */
void pd_http_cancel(struct pd_http_xfer *x);

/* Transfers in flight. */
size_t pd_http_active(const struct pd_http *h);

/*
 * Cancels every transfer (each DONE runs), closes every loop handle and frees the engine once
 * the last close callback ran; then ON_CLOSED(ARG) is called. NULLs *H. NULL is a no-op.
 */
void pd_http_close(struct pd_http **h, void (*on_closed)(void *arg), void *arg);

#endif
