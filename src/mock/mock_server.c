/*
 * patchdrop-mock's transport: libmicrohttpd with one thread per connection, so a latency, a
 * hang or a slow client holds only its own connection and never the others.
 *
 * Per request, in this order: a 413 when Content-Length is over --max-body (the body read and
 * thrown away first, as a front proxy's lingering close lets the client read the answer; closing
 * on an unread body resets the connection, and the client sees a failed send instead), the rate
 * limit (429 + Retry-After, counted over every request), the body collected up to max_body (a
 * longer chunked body becomes a 413 at its end),
 * then the endpoint's answer (mock_routes.c), which may also ask for a drop, a hang or a
 * truncated answer. Every request ends as one line in the request log.
 */
#include "mock.h"

#include "pd_error.h"
#include "pd_mem.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* What one request carries between the handler's calls. */
struct conn_req {
    uint64_t seq;
    uint64_t t0_ms; /* monotonic, for elapsed_ms */
    char method[16];
    char *path;
    char *body;
    size_t len, cap;
    uint64_t received; /* bytes of body seen, kept or not */
    uint64_t declared; /* Content-Length, 0 when absent */
    bool too_big;
    bool answered;
    bool logged;
    bool rate_limited;
    uint64_t rl_remaining;
    int rl_retry_after;
};

static uint64_t clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t monotonic_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

uint64_t mock_epoch_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

uint64_t mock_now(struct pd_mock *m)
{
    return m->opt.clock_ms ? m->opt.clock_ms(m->opt.clock_ud) : monotonic_ms();
}

/* Sleeps MS unless the server is stopping. */
static void pause_ms(struct pd_mock *m, uint64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&m->lock);
    while (!m->stopping) {
        if (pthread_cond_timedwait(&m->wake, &m->lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&m->lock);
}

static bool stopping(struct pd_mock *m)
{
    pthread_mutex_lock(&m->lock);
    bool s = m->stopping;
    pthread_mutex_unlock(&m->lock);
    return s;
}

/* ---- the request log ---------------------------------------------------------------------- */

static void log_request(struct pd_mock *m, struct conn_req *r, int status, const char *outcome,
                        uint64_t run_id, const char *payload_file)
{
    if (r->logged)
        return;
    r->logged = true;
    struct mock_logline line = {
        .seq = r->seq,
        .time_ms = mock_epoch_ms(),
        .method = r->method,
        .path = r->path ? r->path : "",
        .status = status,
        .body_bytes = r->received ? r->received : r->declared,
        .flow_run_id = run_id,
        .payload_file = payload_file && *payload_file ? payload_file : NULL,
        .outcome = outcome,
        .elapsed_ms = monotonic_ms() - r->t0_ms,
    };
    struct mock_route_match rt;
    mock_route_match(r->method, line.path, &rt);
    line.route = mock_route_name(rt.route);
    if (m->record)
        mock_record_line(m->record, &line);
    if (m->opt.quiet)
        return;
    char run[40] = "";
    if (run_id)
        snprintf(run, sizeof(run), " run=%" PRIu64, run_id);
    pthread_mutex_lock(&m->log_lock);
    fprintf(
        m->log, "patchdrop-mock: #%" PRIu64 " %s %s -> %d %s (%" PRIu64 " B, %" PRIu64 " ms)%s\n",
        line.seq, line.method, line.path, status, outcome, line.body_bytes, line.elapsed_ms, run);
    fflush(m->log);
    pthread_mutex_unlock(&m->log_lock);
}

/* ---- answers -------------------------------------------------------------------------------- */

struct truncated {
    char *body;
    size_t len;
    size_t cut; /* bytes actually sent */
};

static ssize_t on_truncated_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct truncated *t = cls;
    if (pos >= t->cut)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = t->cut - (size_t)pos;
    if (n > max)
        n = max;
    memcpy(buf, t->body + pos, n);
    return (ssize_t)n;
}

static void on_truncated_free(void *cls)
{
    struct truncated *t = cls;
    free(t->body);
    free(t);
}

static void add_headers(struct MHD_Response *resp, struct pd_mock *m, struct conn_req *r,
                        int retry_after)
{
    char num[32];
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (m->opt.rate_limit) {
        snprintf(num, sizeof(num), "%" PRIu64, m->opt.rate_limit);
        MHD_add_response_header(resp, "X-RateLimit-Limit", num);
        snprintf(num, sizeof(num), "%" PRIu64, r->rl_remaining);
        MHD_add_response_header(resp, "X-RateLimit-Remaining", num);
    }
    if (retry_after >= 0) {
        snprintf(num, sizeof(num), "%d", retry_after);
        MHD_add_response_header(resp, "Retry-After", num);
    }
}

/* Ends a request without an answer: frees BODY, logs OUTCOME, and has libmicrohttpd close
 * the connection. */
static enum MHD_Result no_answer(struct pd_mock *m, struct conn_req *r, char *body,
                                 const char *outcome)
{
    free(body);
    log_request(m, r, 0, outcome, 0, NULL);
    return MHD_NO;
}

/* Holds connection C, answering nothing, until the client gives up or we stop. */
static enum MHD_Result hang(struct pd_mock *m, struct MHD_Connection *c, struct conn_req *r,
                            struct mock_answer *ans)
{
    no_answer(m, r, ans->body, ans->outcome);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    int fd = ci ? ci->connect_fd : -1;
    pthread_mutex_lock(&m->lock);
    m->hangs_active++;
    pthread_mutex_unlock(&m->lock);
    while (fd >= 0 && !stopping(m)) {
        struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
        int k = poll(&p, 1, 100);
        if (k < 0 && errno != EINTR)
            break;
        if (k <= 0)
            continue;
        if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
            break;
        char b;
        ssize_t got = recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
            break;
        pause_ms(m, 100); /* the client sent more: keep ignoring it, without spinning */
    }
    pthread_mutex_lock(&m->lock);
    m->hangs_active--;
    pthread_mutex_unlock(&m->lock);
    return MHD_NO;
}

/* The response for BODY (LEN bytes, taken on success): whole, or cut in half for
 * MOCK_TRUNCATE. NULL when out of memory. */
static struct MHD_Response *make_response(int action, char *body, size_t len)
{
    if (action != MOCK_TRUNCATE)
        return MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    struct truncated *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->body = body;
    t->len = len;
    t->cut = len / 2;
    struct MHD_Response *resp =
        MHD_create_response_from_callback(len, 1024, on_truncated_read, t, on_truncated_free);
    if (!resp)
        free(t);
    return resp;
}

/*
 * Carries out ANS on connection C: waits the configured latency, then answers, truncates,
 * drops or hangs. Takes ans->body. Returns what the handler must return to libmicrohttpd.
 */
static enum MHD_Result deliver(struct pd_mock *m, struct MHD_Connection *c, struct conn_req *r,
                               struct mock_answer *ans)
{
    r->answered = true;
    if (ans->action == MOCK_HANG)
        return hang(m, c, r, ans);
    if (m->opt.latency_ms)
        pause_ms(m, m->opt.latency_ms);
    if (ans->action == MOCK_DROP)
        return no_answer(m, r, ans->body, ans->outcome);
    if (!ans->body) {
        ans->body = mock_json_message("Server Error");
        ans->status = 500;
        if (!ans->body)
            return no_answer(m, r, NULL, "aborted");
    }
    struct MHD_Response *resp = make_response(ans->action, ans->body, strlen(ans->body));
    if (!resp)
        return no_answer(m, r, ans->body, "aborted");
    ans->body = NULL;
    add_headers(resp, m, r, ans->retry_after);
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)ans->status, resp);
    MHD_destroy_response(resp);
    log_request(m, r, ret == MHD_YES ? ans->status : 0, ans->outcome, ans->flow_run_id,
                ans->payload_file);
    return ret;
}

static enum MHD_Result deliver_simple(struct pd_mock *m, struct MHD_Connection *c,
                                      struct conn_req *r, int status, char *body, int retry_after,
                                      const char *outcome)
{
    struct mock_answer ans = {.action = MOCK_ANSWER,
                              .status = status,
                              .body = body,
                              .retry_after = retry_after,
                              .outcome = outcome};
    return deliver(m, c, r, &ans);
}

/* The answer to a body over --max-body. */
static enum MHD_Result too_large(struct pd_mock *m, struct MHD_Connection *c, struct conn_req *r)
{
    return deliver_simple(m, c, r, 413,
                          mock_json_message("The request body is too large. Reduce the payload "
                                            "size by splitting the data and sending over "
                                            "multiple calls."),
                          -1, "ok");
}

/* ---- the handler ---------------------------------------------------------------------------- */

static void check_rate(struct pd_mock *m, struct conn_req *r)
{
    if (!m->opt.rate_limit)
        return;
    pthread_mutex_lock(&m->lock);
    uint64_t now = mock_now(m);
    /* Laravel's throttle: a fixed window that opens with the first request after the last one
     * closed; refused requests do not count. */
    if (!m->window_open || now >= m->window_start + m->opt.rate_window_ms) {
        m->window_open = true;
        m->window_start = now;
        m->window_count = 0;
    }
    if (m->window_count >= m->opt.rate_limit) {
        uint64_t left = m->window_start + m->opt.rate_window_ms - now;
        r->rate_limited = true;
        r->rl_retry_after = (int)((left + 999) / 1000);
        if (r->rl_retry_after < 1)
            r->rl_retry_after = 1;
        r->rl_remaining = 0;
    } else {
        m->window_count++;
        r->rl_remaining = m->opt.rate_limit - m->window_count;
    }
    pthread_mutex_unlock(&m->lock);
}

static bool append_body(struct pd_mock *m, struct conn_req *r, const char *data, size_t n)
{
    r->received += n;
    if (r->too_big || r->received > m->opt.max_body) {
        r->too_big = true; /* keep reading to the end, keep nothing */
        free(r->body);
        r->body = NULL;
        r->len = r->cap = 0;
        return true;
    }
    if (pd_reserve(&r->body, &r->cap, r->len + n + 1, 4096, UINT64_MAX))
        return false;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return true;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct pd_mock *m = cls;
    struct conn_req *r = *con_cls;

    if (!r) {
        r = calloc(1, sizeof(*r));
        if (!r)
            return MHD_NO;
        *con_cls = r;
        r->t0_ms = monotonic_ms();
        snprintf(r->method, sizeof(r->method), "%s", method);
        r->path = strdup(url);
        pthread_mutex_lock(&m->lock);
        r->seq = ++m->requests;
        pthread_mutex_unlock(&m->lock);

        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        if (cl) {
            char *end;
            unsigned long long v = strtoull(cl, &end, 10);
            r->declared = (*end || end == cl) ? 0 : v;
        }
        if (r->declared > m->opt.max_body) {
            r->too_big = true; /* answered at the body's end (append_body keeps nothing) */
            return MHD_YES;
        }
        check_rate(m, r);
        if (r->rate_limited)
            return deliver_simple(m, c, r, 429, mock_json_message("Too Many Attempts."),
                                  r->rl_retry_after, "rate_limited");
        return MHD_YES;
    }
    if (r->answered) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!append_body(m, r, upload_data, *upload_data_size))
            return MHD_NO;
        *upload_data_size = 0;
        return MHD_YES;
    }

    if (r->too_big)
        return too_large(m, c, r);

    struct mock_request rq = {
        .method = method,
        .path = url,
        .auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization"),
        .host = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Host"),
        .page = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "page"),
        .per_page = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "per_page"),
        .body = r->body ? r->body : "",
        .len = r->len,
    };
    struct mock_route_match rt;
    struct mock_answer ans;
    memset(&ans, 0, sizeof(ans));
    mock_route_match(method, url, &rt);
    mock_route_answer(m, &rq, &rt, &ans);
    return deliver(m, c, r, &ans);
}

static void on_request_done(void *cls, struct MHD_Connection *c, void **con_cls,
                            enum MHD_RequestTerminationCode toe)
{
    struct pd_mock *m = cls;
    struct conn_req *r = *con_cls;
    if (!r)
        return;
    /* A client that went away mid-request still leaves a line, so a test can see it. */
    log_request(m, r, 0, "aborted", 0, NULL);
    free(r->body);
    free(r->path);
    free(r);
    *con_cls = NULL;
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    struct pd_mock *m = cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    /* A drop or a hang ends with the handler refusing the connection on purpose; the request
     * line already says so, libmicrohttpd's complaint about it would only be noise. */
    if (strstr(msg, "Application reported internal error"))
        return;
    pthread_mutex_lock(&m->log_lock);
    fprintf(m->log, "patchdrop-mock: libmicrohttpd: %s%s", msg,
            msg[0] && msg[strlen(msg) - 1] == '\n' ? "" : "\n");
    fflush(m->log);
    pthread_mutex_unlock(&m->log_lock);
}

/* ---- lifecycle --------------------------------------------------------------------------------
 */

void pd_mock_options_init(struct pd_mock_options *o)
{
    memset(o, 0, sizeof(*o));
    o->bind = "127.0.0.1";
    o->user = "demo@example.com";
    o->password = "demo";
    o->token_ttl_ms = 24ULL * 3600 * 1000;
    o->max_body = 8000000;
    o->rate_window_ms = 60000;
}

static void set_err(char **err, const char *msg, const char *arg)
{
    if (err && asprintf(err, "%s%s", msg, arg ? arg : "") < 0)
        *err = NULL;
}

static bool bad_rate(double p)
{
    return !(p >= 0.0 && p <= 1.0);
}

union sock_addr {
    struct sockaddr_in v4;
    struct sockaddr_in6 v6;
};

/* The address to listen on; MHD_USE_IPv6 added to FLAGS for an IPv6 one. */
static int resolve_bind(const char *bind, uint16_t port, union sock_addr *addr, unsigned *flags,
                        char **err)
{
    memset(addr, 0, sizeof(*addr));
    if (inet_pton(AF_INET, bind, &addr->v4.sin_addr) == 1) {
        addr->v4.sin_family = AF_INET;
        addr->v4.sin_port = htons(port);
    } else if (inet_pton(AF_INET6, bind, &addr->v6.sin6_addr) == 1) {
        addr->v6.sin6_family = AF_INET6;
        addr->v6.sin6_port = htons(port);
        *flags |= MHD_USE_IPv6;
    } else {
        set_err(err, "--bind: not an IPv4 or IPv6 address: ", bind);
        return PD_EUSAGE;
    }
    return 0;
}

/* The emulator's own state from OPTS, strings copied; NULL when out of memory. */
static struct pd_mock *mock_new(const struct pd_mock_options *opts, const char *bind)
{
    struct pd_mock *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->opt = *opts;
    m->log = opts->log ? opts->log : stderr;
    pthread_mutex_init(&m->lock, NULL);
    pthread_mutex_init(&m->log_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->wake, &ca);
    pthread_condattr_destroy(&ca);
    m->bind = strdup(bind);
    m->user = strdup(opts->user);
    m->password = strdup(opts->password);
    m->api_key = opts->api_key ? strdup(opts->api_key) : NULL;
    m->run_fail_marker = opts->run_fail_marker ? strdup(opts->run_fail_marker) : NULL;
    if (!m->bind || !m->user || !m->password || (opts->api_key && !m->api_key) ||
        (opts->run_fail_marker && !m->run_fail_marker)) {
        pd_mock_destroy(&m);
        return NULL;
    }
    m->opt.bind = m->bind;
    m->opt.user = m->user;
    m->opt.password = m->password;
    m->opt.api_key = m->api_key;
    m->opt.script = NULL;
    m->opt.run_script = NULL;
    m->opt.shape = NULL;
    m->opt.run_fail_marker = m->run_fail_marker;
    m->opt.record_dir = NULL;
    m->opt.log = m->log;
    if (!m->opt.rate_window_ms)
        m->opt.rate_window_ms = 60000;
    return m;
}

int pd_mock_create(const struct pd_mock_options *opts, struct pd_mock **out, char **err)
{
    struct pd_mock *m = NULL;
    int rc = PD_ENOMEM;
    union sock_addr addr;
    unsigned flags = MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION;

    if (err)
        *err = NULL;
    if (bad_rate(opts->fail_rate) || bad_rate(opts->fail_401_rate) || bad_rate(opts->drop_rate) ||
        bad_rate(opts->run_fail_rate) || bad_rate(opts->run_stop_rate) ||
        bad_rate(opts->run_partial_rate)) {
        set_err(err, "fail, 401, drop and run rates are probabilities from 0 to 1", NULL);
        return PD_EUSAGE;
    }
    if (!opts->user || !opts->password || !opts->max_body) {
        set_err(err, "a user, a password and a max body above 0 are needed", NULL);
        return PD_EUSAGE;
    }
    const char *bind = opts->bind ? opts->bind : "127.0.0.1";
    if (resolve_bind(bind, opts->port, &addr, &flags, err))
        return PD_EUSAGE;
    m = mock_new(opts, bind);
    if (!m)
        goto fail;
    if ((rc = mock_store_create(&m->store)))
        goto fail;
    if ((rc = mock_script_parse(opts->script, &m->script, err)))
        goto fail;
    if ((rc = mock_run_script_parse(opts->run_script, &m->run_script, &m->run_script_n, err)))
        goto fail;
    if ((rc = mock_shape_parse(opts->shape, &m->shape, err)))
        goto fail;
    if (opts->record_dir && (rc = mock_record_open(opts->record_dir, &m->record, err)))
        goto fail;

    if (!opts->quiet)
        flags |= MHD_USE_ERROR_LOG;
    m->daemon = MHD_start_daemon(
        flags, opts->port, NULL, NULL, on_request, m, MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, m,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED,
        on_request_done, m, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)300, MHD_OPTION_END);
    if (!m->daemon) {
        rc = -EADDRINUSE;
        if (err) {
            char where[128];
            snprintf(where, sizeof(where), "%s port %u", bind, (unsigned)opts->port);
            set_err(err, "cannot listen (port in use, or not an address of this host): ", where);
        }
        goto fail;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(m->daemon, MHD_DAEMON_INFO_BIND_PORT);
    m->port = di ? di->port : opts->port;
    *out = m;
    return 0;
fail:
    if (rc == PD_ENOMEM && err && !*err)
        set_err(err, "out of memory", NULL);
    pd_mock_destroy(&m);
    return rc;
}

void pd_mock_destroy(struct pd_mock **mp)
{
    if (!mp || !*mp)
        return;
    struct pd_mock *m = *mp;
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    pthread_cond_broadcast(&m->wake);
    pthread_mutex_unlock(&m->lock);
    if (m->daemon)
        MHD_stop_daemon(m->daemon);
    mock_record_close(&m->record);
    mock_script_cleanup(&m->script);
    mock_store_destroy(&m->store);
    pthread_cond_destroy(&m->wake);
    pthread_mutex_destroy(&m->lock);
    pthread_mutex_destroy(&m->log_lock);
    if (m->password)
        memset(m->password, 0, strlen(m->password));
    if (m->api_key)
        memset(m->api_key, 0, strlen(m->api_key));
    free(m->bind);
    free(m->user);
    free(m->password);
    free(m->api_key);
    free(m->run_fail_marker);
    free(m->run_script);
    free(m);
    *mp = NULL;
}

uint16_t pd_mock_port(const struct pd_mock *m)
{
    return m->port;
}

int pd_mock_script_set(struct pd_mock *m, const char *list, char **err)
{
    struct mock_script fresh = {0};
    int rc = mock_script_parse(list, &fresh, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&m->lock);
    mock_script_cleanup(&m->script);
    m->script = fresh;
    pthread_mutex_unlock(&m->lock);
    return 0;
}

void pd_mock_revoke_tokens(struct pd_mock *m)
{
    pthread_mutex_lock(&m->lock);
    mock_store_token_revoke_all(m->store);
    pthread_mutex_unlock(&m->lock);
}

void pd_mock_stats(struct pd_mock *m, struct pd_mock_stats *out)
{
    pthread_mutex_lock(&m->lock);
    out->requests = m->requests;
    out->logins = m->logins;
    out->runs = mock_store_run_count(m->store);
    out->retries = m->retries;
    out->start_flow = m->start_flow;
    out->hangs_active = m->hangs_active;
    out->script_left = m->script.n - m->script.next;
    pthread_mutex_unlock(&m->lock);
}
