/*
 * libcurl multi on the libuv loop, after curl's docs/examples/multi-uv.c with its pitfalls
 * fixed: one uv_poll_t per socket attached with curl_multi_assign; one one-shot uv_timer for
 * curl's timeout (0 ms becomes 1 ms, because socket_action must not be called from inside the
 * timer callback curl invokes); poll errors reported to curl as CURL_CSELECT_ERR; and
 * curl_multi_info_read drained after every curl_multi_socket_action, not only while transfers
 * run. Memory of a loop handle is freed only in its close callback.
 */
#include "pd_http.h"

#include "pd_error.h"
#include "pd_list.h"
#include "pd_mem.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_MAX_RESPONSE (1024u * 1024u)
#define DEFAULT_CONNECT_TIMEOUT_MS 10000u
#define DEFAULT_LOW_SPEED_BYTES 1L
#define DEFAULT_LOW_SPEED_TIME_S 30L
#define DEFAULT_MAX_CONNECTIONS 8L
#define RETRY_AFTER_MAX 128

struct sock_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct pd_http *h;
    struct sock_ctx *next, *prev;
};

struct pd_http_xfer {
    struct pd_http *h;
    CURL *easy;
    struct curl_slist *headers;
    pd_http_done_fn done;
    void *arg;
    char *body;
    size_t body_len, body_cap;
    bool truncated;
    char retry_after[RETRY_AFTER_MAX];
    char errbuf[CURL_ERROR_SIZE];
    uint64_t started_ms;
    size_t req_len;       /* the request body's length, to tell whether all of it went */
    const char *req_body; /* borrowed until DONE; handed to curl by on_read */
    size_t req_pos;
    struct pd_http_xfer *next, *prev;
};

struct pd_http {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct pd_http_opts opts;
    struct pd_http_xfer *xfers;
    struct sock_ctx *socks;
    size_t nxfers;
    unsigned open_handles; /* loop handles whose close callback has not run yet */
    bool closing;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void maybe_free(struct pd_http *h)
{
    if (!h->closing || h->open_handles > 0)
        return;
    void (*cb)(void *) = h->on_closed;
    void *arg = h->closed_arg;
    free(h);
    curl_global_cleanup();
    if (cb)
        cb(arg);
}

static void on_handle_closed(uv_handle_t *handle)
{
    struct pd_http *h = handle->data;
    h->open_handles--;
    maybe_free(h);
}

static void on_sock_closed(uv_handle_t *handle)
{
    struct sock_ctx *ctx = (struct sock_ctx *)handle;
    struct pd_http *h = ctx->h;
    free(ctx);
    h->open_handles--;
    maybe_free(h);
}

static void sock_forget(struct sock_ctx *ctx)
{
    PD_LIST_UNLINK(ctx->h->socks, ctx);
    uv_poll_stop(&ctx->poll);
    uv_close((uv_handle_t *)&ctx->poll, on_sock_closed);
}

static void xfer_free(struct pd_http_xfer *x)
{
    if (!x)
        return;
    /* The header list holds the Authorization value: wipe it before it returns to malloc. */
    for (struct curl_slist *s = x->headers; s; s = s->next)
        memset(s->data, 0, strlen(s->data));
    curl_slist_free_all(x->headers);
    if (x->easy)
        curl_easy_cleanup(x->easy);
    free(x->body);
    free(x);
}

static void xfer_unlink(struct pd_http_xfer *x)
{
    PD_LIST_UNLINK(x->h->xfers, x);
    x->h->nxfers--;
}

/* curl asks for the request body piece by piece (see pd_http_send). */
static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
    struct pd_http_xfer *x = arg;
    size_t room = size * n, left = x->req_len - x->req_pos;
    size_t k = left < room ? left : room;
    memcpy(buf, x->req_body + x->req_pos, k);
    x->req_pos += k;
    return k;
}

/* A rewind is allowed only when nothing was read yet: a request is never sent twice silently. */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
    struct pd_http_xfer *x = arg;
    if (origin == SEEK_SET && offset == 0 && x->req_pos == 0)
        return CURL_SEEKFUNC_OK;
    return CURL_SEEKFUNC_CANTSEEK;
}

/* Hands a finished (or canceled) transfer to its owner and frees it. */
static void xfer_finish(struct pd_http_xfer *x, CURLcode code)
{
    struct pd_http_response resp;
    long status = 0;
    memset(&resp, 0, sizeof(resp));
    curl_multi_remove_handle(x->h->multi, x->easy);
    xfer_unlink(x);
    if (code != CURLE_ABORTED_BY_CALLBACK)
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    resp.status = status;
    resp.curl_code = code;
    resp.error = code == CURLE_OK ? "" : x->errbuf[0] ? x->errbuf : curl_easy_strerror(code);
    resp.body = x->body ? x->body : (char *)"";
    resp.body_len = x->body_len;
    resp.truncated = x->truncated;
    resp.retry_after = x->retry_after[0] ? x->retry_after : NULL;
    resp.elapsed_ms = uv_now(x->h->loop) - x->started_ms;
    curl_off_t up = 0;
    if (x->req_len && code != CURLE_ABORTED_BY_CALLBACK &&
        curl_easy_getinfo(x->easy, CURLINFO_SIZE_UPLOAD_T, &up) == CURLE_OK)
        resp.body_sent = (size_t)up >= x->req_len;
    /* curl resets its upload count when it tries a request again on a new connection; what
     * it read of the body says it went out (it can be read only once: on_seek). */
    if (x->req_len && x->req_pos >= x->req_len && code != CURLE_ABORTED_BY_CALLBACK)
        resp.body_sent = true;
    x->done(x->arg, &resp);
    xfer_free(x);
}

static void drain_messages(struct pd_http *h)
{
    CURLMsg *msg;
    int left;
    while (h->multi && (msg = curl_multi_info_read(h->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct pd_http_xfer *x = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        CURLcode code = msg->data.result;
        /* msg points into the easy handle: done with it before the transfer is freed. */
        xfer_finish(x, code);
    }
}

static void on_timer_fire(uv_timer_t *timer)
{
    struct pd_http *h = timer->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    drain_messages(h);
}

static void on_poll_ready(uv_poll_t *poll, int status, int events)
{
    struct sock_ctx *ctx = (struct sock_ctx *)poll;
    struct pd_http *h = ctx->h;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(h->multi, ctx->fd, flags, &running);
    drain_messages(h);
}

static int curl_on_socket(CURL *easy, curl_socket_t s, int action, void *userp, void *socketp)
{
    struct pd_http *h = userp;
    struct sock_ctx *ctx = socketp;
    (void)easy;

    if (action == CURL_POLL_REMOVE) {
        if (ctx) {
            curl_multi_assign(h->multi, s, NULL);
            sock_forget(ctx);
        }
        return 0;
    }
    if (!ctx) {
        ctx = calloc(1, sizeof(*ctx));
        if (!ctx)
            return -1;
        if (uv_poll_init_socket(h->loop, &ctx->poll, s) != 0) {
            free(ctx);
            return -1;
        }
        ctx->fd = s;
        ctx->h = h;
        ctx->next = h->socks;
        if (h->socks)
            h->socks->prev = ctx;
        h->socks = ctx;
        h->open_handles++;
        curl_multi_assign(h->multi, s, ctx);
    }
    int events = 0;
    if (action == CURL_POLL_IN || action == CURL_POLL_INOUT)
        events |= UV_READABLE;
    if (action == CURL_POLL_OUT || action == CURL_POLL_INOUT)
        events |= UV_WRITABLE;
    uv_poll_start(&ctx->poll, events, on_poll_ready);
    return 0;
}

static int curl_on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct pd_http *h = userp;
    (void)multi;
    if (h->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, on_timer_fire, timeout_ms == 0 ? 1 : (uint64_t)timeout_ms, 0);
    return 0;
}

int pd_http_create(uv_loop_t *loop, const struct pd_http_opts *opts, struct pd_http **out)
{
    int rc = PD_ENOMEM;
    struct pd_http *h;

    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return PD_ENOMEM;
    h = calloc(1, sizeof(*h));
    if (!h)
        goto fail_alloc;
    h->loop = loop;
    h->opts = *opts;
    if (!h->opts.max_response)
        h->opts.max_response = DEFAULT_MAX_RESPONSE;
    if (!h->opts.connect_timeout_ms)
        h->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    if (!h->opts.low_speed_bytes && !h->opts.low_speed_time_s) {
        h->opts.low_speed_bytes = DEFAULT_LOW_SPEED_BYTES;
        h->opts.low_speed_time_s = DEFAULT_LOW_SPEED_TIME_S;
    }
    if (!h->opts.max_connections)
        h->opts.max_connections = DEFAULT_MAX_CONNECTIONS;
    h->multi = curl_multi_init();
    if (!h->multi)
        goto fail_multi;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, curl_on_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, curl_on_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_MAXCONNECTS, h->opts.max_connections);
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    if (uv_timer_init(loop, &h->timer) != 0)
        goto fail_timer;
    h->timer.data = h;
    h->open_handles = 1;
    *out = h;
    return 0;

fail_timer:
    curl_multi_cleanup(h->multi);
fail_multi:
    free(h);
fail_alloc:
    curl_global_cleanup();
    return rc;
}

static size_t on_body_data(char *data, size_t size, size_t nmemb, void *userp)
{
    struct pd_http_xfer *x = userp;
    size_t n = size * nmemb, room;
    size_t cap = x->h->opts.max_response;

    room = x->body_len < cap ? cap - x->body_len : 0;
    if (n > room)
        x->truncated = true;
    size_t take = n < room ? n : room;
    if (take == 0)
        return n;
    /* take fits in room, so the body never needs more than cap + 1 */
    if (pd_reserve(&x->body, &x->body_cap, x->body_len + take + 1, 4096, cap + 1))
        return 0; /* fails the transfer with CURLE_WRITE_ERROR: retried later */
    memcpy(x->body + x->body_len, data, take);
    x->body_len += take;
    x->body[x->body_len] = '\0';
    return n;
}

static size_t on_header_line(char *line, size_t size, size_t nitems, void *userp)
{
    struct pd_http_xfer *x = userp;
    size_t n = size * nitems;
    static const char name[] = "retry-after:";

    /* A new status line (after 100 Continue, say) starts a new set of headers. */
    if (n >= 5 && !strncmp(line, "HTTP/", 5))
        x->retry_after[0] = '\0';
    if (n > sizeof(name) - 1 && !strncasecmp(line, name, sizeof(name) - 1)) {
        const char *v = line + sizeof(name) - 1;
        size_t len = n - (sizeof(name) - 1);
        while (len && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len >= sizeof(x->retry_after))
            len = sizeof(x->retry_after) - 1;
        memcpy(x->retry_after, v, len);
        x->retry_after[len] = '\0';
    }
    return n;
}

static int add_header(struct pd_http_xfer *x, const char *name, const char *value)
{
    size_t len = strlen(name) + strlen(value) + 3;
    char *line = malloc(len);
    if (!line)
        return PD_ENOMEM;
    snprintf(line, len, "%s: %s", name, value);
    struct curl_slist *l = curl_slist_append(x->headers, line);
    memset(line, 0, len);
    free(line);
    if (!l)
        return PD_ENOMEM;
    x->headers = l;
    return 0;
}

static int xfer_setup(struct pd_http_xfer *x, const struct pd_http_request *req)
{
    const struct pd_http_opts *o = &x->h->opts;
    CURL *e = x->easy;

    if (add_header(x, "Accept", "application/json") ||
        add_header(x, "Content-Type", "application/json") ||
        add_header(x, "User-Agent", "patchdrop/" PD_VERSION) ||
        (req->authorization && add_header(x, "Authorization", req->authorization)))
        return PD_ENOMEM;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body_data);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header_line);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)o->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)o->timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, o->low_speed_bytes);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, o->low_speed_time_s);
    /* TLS 1.2 at least, whatever the system's OpenSSL configuration allows: older versions
     * are broken, and the password and token go over this connection. */
    curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, o->tls_verify ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, o->tls_verify ? 2L : 0L);
    if (o->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, o->ca_file);
    if (req->method && (!strcmp(req->method, "POST") || !strcmp(req->method, "PUT") ||
                        !strcmp(req->method, "PATCH"))) {
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        x->req_len = req->body_len;
        /* The body goes through a read function that can be rewound only before its first
         * byte: when a reused keep-alive connection dies before any answer, libcurl would
         * otherwise send the whole request again on a new one without telling anybody (a flow
         * run nobody counts). Now it fails (CURLE_SEND_FAIL_REWIND), and the client retries it
         * in the open: logged, counted as ambiguous when the body had gone out whole. */
        x->req_body = req->body ? req->body : "";
        x->req_pos = 0;
        curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
        curl_easy_setopt(e, CURLOPT_READDATA, x);
        curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
        curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
        /* PUT and PATCH send their body the way POST does, under their own name. */
        if (strcmp(req->method, "POST"))
            curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    } else if (req->method && !strcmp(req->method, "DELETE")) {
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, "DELETE");
    } else {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    }
    return 0;
}

int pd_http_send(struct pd_http *h, const struct pd_http_request *req, pd_http_done_fn done,
                 void *arg, struct pd_http_xfer **xfer)
{
    int rc = PD_ENOMEM;
    struct pd_http_xfer *x;

    if (xfer)
        *xfer = NULL;
    if (h->closing)
        return PD_ECANCELED;
    x = calloc(1, sizeof(*x));
    if (!x)
        return PD_ENOMEM;
    x->h = h;
    x->done = done;
    x->arg = arg;
    x->started_ms = uv_now(h->loop);
    x->easy = curl_easy_init();
    if (!x->easy)
        goto fail;
    if ((rc = xfer_setup(x, req)) != 0)
        goto fail;
    if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
        rc = PD_ENOMEM;
        goto fail;
    }
    x->next = h->xfers;
    if (h->xfers)
        h->xfers->prev = x;
    h->xfers = x;
    h->nxfers++;
    if (xfer)
        *xfer = x;
    return 0;
fail:
    xfer_free(x);
    return rc;
}

void pd_http_cancel(struct pd_http_xfer *x)
{
    if (x)
        xfer_finish(x, CURLE_ABORTED_BY_CALLBACK);
}

size_t pd_http_active(const struct pd_http *h)
{
    return h->nxfers;
}

void pd_http_close(struct pd_http **hp, void (*on_closed)(void *arg), void *arg)
{
    struct pd_http *h = hp ? *hp : NULL;
    if (!h)
        return;
    *hp = NULL;
    /* Owners may start new transfers from a cancel callback; closing refuses them. */
    h->closing = true;
    h->on_closed = on_closed;
    h->closed_arg = arg;
    while (h->xfers)
        xfer_finish(h->xfers, CURLE_ABORTED_BY_CALLBACK);
    /* Cleanup closes cached connections and may still report sockets removed. */
    curl_multi_cleanup(h->multi);
    h->multi = NULL;
    while (h->socks)
        sock_forget(h->socks);
    uv_timer_stop(&h->timer);
    uv_close((uv_handle_t *)&h->timer, on_handle_closed);
}
