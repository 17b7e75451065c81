/*
 * Unit tests of the HTTP engine on a real libuv loop against a tiny HTTP/1.1 server that runs on
 * the same loop (127.0.0.1, port chosen by the kernel): answers, bodies sent from memory,
 * keep-alive reuse, capped answers, Retry-After, timeouts, dropped and refused connections,
 * cancel, and a clean close (uv_loop_close returns 0).
 */
#include "testlib.h"

#include "pd_error.h"
#include "pd_http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- the in-test server --------------------------------------------------------------- */

struct conn {
    uv_tcp_t tcp;
    char buf[512 * 1024];
    size_t len;
};

static uv_tcp_t listener;
static int port;
static int accepted;
static int served;

static void on_conn_closed(uv_handle_t *h)
{
    free(h->data);
}

static void on_write_done(uv_write_t *w, int status)
{
    free(w->data);
    free(w);
}

static void reply(struct conn *c, const char *head, const char *body, size_t body_len)
{
    size_t hl = strlen(head);
    char *out = malloc(hl + body_len + 128);
    int n = sprintf(out, "%sContent-Length: %zu\r\n\r\n", head, body_len);
    memcpy(out + n, body, body_len);
    uv_write_t *w = malloc(sizeof(*w));
    uv_buf_t b = uv_buf_init(out, (unsigned)(n + (int)body_len));
    w->data = out;
    uv_write(w, (uv_stream_t *)&c->tcp, &b, 1, on_write_done);
}

/* Answers one complete request; returns false when the connection was dropped instead. */
static bool answer(struct conn *c, const char *path, const char *body, size_t body_len)
{
    served++;
    if (!strcmp(path, "/ok")) {
        reply(c, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n",
              "{\"flow_run_id\":1}", 17);
    } else if (!strcmp(path, "/echo")) {
        char out[64];
        int n = snprintf(out, sizeof(out), "{\"len\":%zu,\"first\":\"%c\"}", body_len,
                         body_len ? body[0] : '-');
        reply(c, "HTTP/1.1 200 OK\r\n", out, (size_t)n);
    } else if (!strcmp(path, "/big")) {
        static char big[300000];
        memset(big, 'x', sizeof(big));
        reply(c, "HTTP/1.1 200 OK\r\n", big, sizeof(big));
    } else if (!strcmp(path, "/slow-down")) {
        reply(c, "HTTP/1.1 503 Service Unavailable\r\nRetry-After: 7\r\n", "{}", 2);
    } else if (!strcmp(path, "/hang")) {
        /* no answer at all */
    } else if (!strcmp(path, "/drop")) {
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return false;
    } else {
        reply(c, "HTTP/1.1 404 Not Found\r\n", "", 0);
    }
    return true;
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    struct conn *c = h->data;
    *buf = uv_buf_init(c->buf + c->len, (unsigned)(sizeof(c->buf) - c->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct conn *c = s->data;
    if (nread < 0) {
        uv_close((uv_handle_t *)s, on_conn_closed);
        return;
    }
    c->len += (size_t)nread;
    for (;;) {
        char *end = memmem(c->buf, c->len, "\r\n\r\n", 4);
        if (!end)
            return;
        size_t head_len = (size_t)(end - c->buf) + 4, body_len = 0;
        char *cl = strcasestr(c->buf, "content-length:");
        if (cl && cl < end)
            body_len = strtoul(cl + 15, NULL, 10);
        if (c->len < head_len + body_len)
            return;
        char path[128] = "";
        sscanf(c->buf, "%*s %127s", path);
        if (!answer(c, path, c->buf + head_len, body_len))
            return;
        memmove(c->buf, c->buf + head_len + body_len, c->len - head_len - body_len);
        c->len -= head_len + body_len;
    }
}

static void on_connection(uv_stream_t *server, int status)
{
    struct conn *c = calloc(1, sizeof(*c));
    uv_tcp_init(server->loop, &c->tcp);
    c->tcp.data = c;
    assert_int_equal(uv_accept(server, (uv_stream_t *)&c->tcp), 0);
    accepted++;
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
}

static void server_start(uv_loop_t *loop)
{
    struct sockaddr_in addr;
    struct sockaddr_storage name;
    int len = sizeof(name);
    uv_ip4_addr("127.0.0.1", 0, &addr);
    assert_int_equal(uv_tcp_init(loop, &listener), 0);
    assert_int_equal(uv_tcp_bind(&listener, (const struct sockaddr *)&addr, 0), 0);
    assert_int_equal(uv_listen((uv_stream_t *)&listener, 64, on_connection), 0);
    uv_tcp_getsockname(&listener, (struct sockaddr *)&name, &len);
    port = ntohs(((struct sockaddr_in *)&name)->sin_port);
    accepted = served = 0;
}

static void close_all(uv_handle_t *h, void *arg)
{
    if (!uv_is_closing(h))
        uv_close(h, h == (uv_handle_t *)&listener ? NULL : on_conn_closed);
}

/* ---- the client side ------------------------------------------------------------------ */

struct outcome {
    int calls;
    long status;
    int curl_code;
    char body[256];
    size_t body_len;
    bool truncated;
    char retry_after[32];
};

static void on_done(void *arg, const struct pd_http_response *r)
{
    struct outcome *o = arg;
    o->calls++;
    o->status = r->status;
    o->curl_code = r->curl_code;
    o->body_len = r->body_len;
    o->truncated = r->truncated;
    snprintf(o->body, sizeof(o->body), "%s", r->body);
    snprintf(o->retry_after, sizeof(o->retry_after), "%s", r->retry_after ? r->retry_after : "");
}

static char url_buf[128];
static const char *url(const char *path)
{
    snprintf(url_buf, sizeof(url_buf), "http://127.0.0.1:%d%s", port, path);
    return url_buf;
}

static int closed_calls;
static void on_closed(void *arg)
{
    closed_calls++;
}

struct fixture {
    uv_loop_t loop;
    struct pd_http *http;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct pd_http_opts o = {.timeout_ms = 400, .max_response = 100000, .tls_verify = true};
    assert_int_equal(uv_loop_init(&f->loop), 0);
    server_start(&f->loop);
    assert_int_equal(pd_http_create(&f->loop, &o, &f->http), 0);
    *state = f;
    return 0;
}

/* Every test ends here: the engine closes, then the loop must close with nothing left open. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    closed_calls = 0;
    pd_http_close(&f->http, on_closed, NULL);
    assert_null(f->http);
    uv_walk(&f->loop, close_all, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(closed_calls, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    free(f);
    return 0;
}

static void get(struct fixture *f, const char *path, struct outcome *o)
{
    struct pd_http_request req = {.method = "GET", .url = url(path)};
    assert_int_equal(pd_http_send(f->http, &req, on_done, o, NULL), 0);
}

static void answers_arrive(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    get(f, "/ok", &o);
    uv_run(&f->loop, UV_RUN_ONCE);
    while (o.calls == 0)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(o.calls, 1);
    assert_int_equal(o.status, 200);
    assert_int_equal(o.curl_code, CURLE_OK);
    assert_string_equal(o.body, "{\"flow_run_id\":1}");
    assert_int_equal(pd_http_active(f->http), 0);
}

static void run_until(struct fixture *f, int *calls, int want)
{
    while (*calls < want)
        assert_true(uv_run(&f->loop, UV_RUN_ONCE) || *calls >= want);
}

/* GETs PATH and runs the loop until the answer came. */
static struct outcome fetch(struct fixture *f, const char *path)
{
    struct outcome o = {0};
    get(f, path, &o);
    run_until(f, &o.calls, 1);
    return o;
}

static void post_body_from_memory(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    static char body[200000];
    memset(body, 'p', sizeof(body));
    body[0] = '{';
    struct pd_http_request req = {
        .method = "POST", .url = url("/echo"), .body = body, .body_len = sizeof(body)};
    assert_int_equal(pd_http_send(f->http, &req, on_done, &o, NULL), 0);
    run_until(f, &o.calls, 1);
    assert_int_equal(o.status, 200);
    assert_string_equal(o.body, "{\"len\":200000,\"first\":\"{\"}");
}

struct chain {
    struct fixture *f;
    int left, calls;
    struct outcome o;
};

static void on_chain_done(void *arg, const struct pd_http_response *r)
{
    struct chain *c = arg;
    c->calls++;
    assert_int_equal(r->status, 200);
    if (--c->left > 0) {
        struct pd_http_request req = {.method = "GET", .url = url("/ok")};
        assert_int_equal(pd_http_send(c->f->http, &req, on_chain_done, c, NULL), 0);
    }
}

static void connections_are_reused(void **state)
{
    struct fixture *f = *state;
    struct chain c = {.f = f, .left = 20};
    struct pd_http_request req = {.method = "GET", .url = url("/ok")};
    assert_int_equal(pd_http_send(f->http, &req, on_chain_done, &c, NULL), 0);
    run_until(f, &c.calls, 20);
    assert_int_equal(served, 20);
    assert_int_equal(accepted, 1);
}

static void many_at_once(void **state)
{
    struct fixture *f = *state;
    struct outcome o[30];
    int calls = 0;
    memset(o, 0, sizeof(o));
    for (int i = 0; i < 30; i++)
        get(f, "/ok", &o[i]);
    assert_int_equal(pd_http_active(f->http), 30);
    while (calls < 30) {
        uv_run(&f->loop, UV_RUN_ONCE);
        calls = 0;
        for (int i = 0; i < 30; i++)
            calls += o[i].calls;
    }
    for (int i = 0; i < 30; i++)
        assert_int_equal(o[i].status, 200);
    /* The default pool keeps at most 8 connections for reuse. */
    assert_true(accepted <= 30);
}

static void answers_are_capped(void **state)
{
    struct outcome o = fetch(*state, "/big");
    assert_int_equal(o.status, 200);
    assert_int_equal(o.curl_code, CURLE_OK);
    assert_int_equal(o.body_len, 100000);
    assert_true(o.truncated);
}

static void retry_after_is_reported(void **state)
{
    struct outcome o = fetch(*state, "/slow-down");
    assert_int_equal(o.status, 503);
    assert_string_equal(o.retry_after, "7");
}

static void a_hanging_server_times_out(void **state)
{
    struct outcome o = fetch(*state, "/hang");
    assert_int_equal(o.status, 0);
    assert_int_equal(o.curl_code, CURLE_OPERATION_TIMEDOUT);
}

static void a_dropped_connection_fails(void **state)
{
    struct outcome o = fetch(*state, "/drop");
    assert_int_equal(o.status, 0);
    assert_int_equal(o.curl_code, CURLE_GOT_NOTHING);
}

static void a_refused_connection_fails(void **state)
{
    struct fixture *f = *state;
    struct outcome o = {0};
    struct pd_http_request req = {.method = "GET", .url = "http://127.0.0.1:1/ok"};
    assert_int_equal(pd_http_send(f->http, &req, on_done, &o, NULL), 0);
    run_until(f, &o.calls, 1);
    assert_int_equal(o.curl_code, CURLE_COULDNT_CONNECT);
}

static void cancel_and_close_report_every_transfer(void **state)
{
    struct fixture *f = *state;
    struct outcome a = {0}, b = {0}, c = {0};
    struct pd_http_xfer *x = NULL;
    struct pd_http_request req = {.method = "GET", .url = url("/hang")};
    assert_int_equal(pd_http_send(f->http, &req, on_done, &a, &x), 0);
    get(f, "/hang", &b);
    get(f, "/hang", &c);
    for (int i = 0; i < 5; i++)
        uv_run(&f->loop, UV_RUN_NOWAIT);
    pd_http_cancel(x);
    assert_int_equal(a.calls, 1);
    assert_int_equal(a.curl_code, CURLE_ABORTED_BY_CALLBACK);
    /* teardown closes the engine with two transfers in flight: both must be reported. */
    struct pd_http *h = f->http;
    pd_http_close(&f->http, NULL, NULL);
    assert_int_equal(b.calls, 1);
    assert_int_equal(c.calls, 1);
    assert_int_equal(c.curl_code, CURLE_ABORTED_BY_CALLBACK);
    (void)h;
    /* A fresh engine for teardown, so it also proves create/close on a busy loop. */
    struct pd_http_opts o = {.timeout_ms = 400};
    assert_int_equal(pd_http_create(&f->loop, &o, &f->http), 0);
}

int main(void)
{
    return PD_RUN_TESTS(setup, teardown, answers_arrive, post_body_from_memory,
                        connections_are_reused, many_at_once, answers_are_capped,
                        retry_after_is_reported, a_hanging_server_times_out,
                        a_dropped_connection_fails, a_refused_connection_fails,
                        cancel_and_close_report_every_transfer);
}
