/*
 * rediss://: a TLS bridge of our own between hiredis and Redis. Debian 12's hiredis (0.14) has
 * no TLS and no Debian library gives it one, and nothing may be vendored: so hiredis talks to
 * a unix socket in a private directory, and one thread of ours takes each connection there to
 * Redis over TLS with OpenSSL (certificate and host name checked), pumping bytes both ways.
 * A connection that fails (TCP, handshake, certificate) is closed on the unix side: hiredis
 * sees its connection fail, and the cluster falls back to its local share as when Redis is away.
 */
#include "cluster_internal.h"

#include "pd_error.h"
#include "pd_log.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define CONNECT_MS 3000
#define BUF 16384

struct cluster_tls {
    SSL_CTX *ctx;
    struct pd_redis_addr addr;
    char dir[100], path[108]; /* the private directory and the socket in it */
    int lfd;                  /* the listening unix socket */
    int stop[2];              /* a byte written to stop[1] stops the thread */
    pthread_t thread;
    pthread_mutex_t lock;
    char told[160]; /* the last failure logged (once per kind), "" after a success */
    char last[400]; /* the last failure, for a one-shot command's message */
};

/* A failure: kept for cluster_tls_last_error(), logged when it differs from the last one. */
static void failed(struct cluster_tls *t, const char *kind, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void failed(struct cluster_tls *t, const char *kind, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&t->lock);
    snprintf(t->last, sizeof(t->last), "%s", msg);
    bool tell = strcmp(t->told, kind) != 0;
    if (tell)
        snprintf(t->told, sizeof(t->told), "%s", kind);
    pthread_mutex_unlock(&t->lock);
    if (tell)
        pd_log(PD_LOG_ERROR, "event=cluster_tls_failed redis=%s:%d reason=\"%s\"", t->addr.host,
               t->addr.port, msg);
}

/* Waits for EVENTS on FD, or the stop. 1: ready, 0: timed out, -1: stop (or poll failed). */
static int wait_fd(struct cluster_tls *t, int fd, short events, int ms)
{
    struct pollfd p[2] = {{.fd = t->stop[0], .events = POLLIN}, {.fd = fd, .events = events}};
    int n;
    while ((n = poll(p, 2, ms)) < 0 && errno == EINTR)
        ;
    if (n < 0 || p[0].revents)
        return -1;
    return n > 0;
}

/* A TCP connection to Redis, non-blocking, within CONNECT_MS; -1 when none. */
static int tcp_connect(struct cluster_tls *t)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res, *ai;
    char port[8];
    int fd = -1, err = 0;

    snprintf(port, sizeof(port), "%d", t->addr.port);
    if ((err = getaddrinfo(t->addr.host, port, &hints, &res))) {
        failed(t, "resolve", "cannot resolve %s: %s; check redis = in [cluster]", t->addr.host,
               gai_strerror(err));
        return -1;
    }
    for (ai = res; ai && fd < 0; ai = ai->ai_next) {
        int w = 1;
        socklen_t l = sizeof(err);
        fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (!connect(fd, ai->ai_addr, ai->ai_addrlen))
            break;
        if (errno != EINPROGRESS)
            err = errno;
        else if ((w = wait_fd(t, fd, POLLOUT, CONNECT_MS)) == 1)
            err = getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &l) ? errno : err;
        else
            err = ETIMEDOUT;
        if (w == 1 && !err)
            break;
        close(fd);
        fd = -1;
        if (w < 0) { /* stopping */
            freeaddrinfo(res);
            return -1;
        }
    }
    freeaddrinfo(res);
    if (fd < 0)
        failed(t, "connect", "cannot connect to %s:%d: %s", t->addr.host, t->addr.port,
               strerror(err ? err : ECONNREFUSED));
    return fd;
}

/* Why a handshake failed, in words that say what to do. */
static void handshake_failed(struct cluster_tls *t, SSL *ssl)
{
    long v = SSL_get_verify_result(ssl);
    unsigned long e = ERR_get_error();
    char err[256];

    ERR_error_string_n(e, err, sizeof(err));
    ERR_clear_error();
    if (v != X509_V_OK)
        failed(t, "verify",
               "TLS verification of %s failed: %s; set [cluster] ca_file to the CA that signed "
               "Redis's certificate (its tls-ca-cert-file) and make sure the certificate names "
               "%s",
               t->addr.host, X509_verify_cert_error_string(v), t->addr.host);
    else
        failed(t, "handshake",
               "TLS handshake with %s:%d failed: %s; is it Redis's tls-port (TLS), and does "
               "Redis ask for a client certificate (set tls_cert_file and tls_key_file)?",
               t->addr.host, t->addr.port, e ? err : "the connection was closed");
}

/* The TLS session over FD: the name (SNI) and the certificate's host or IP checked. */
static SSL *handshake(struct cluster_tls *t, int fd)
{
    unsigned char ip[16];
    bool is_ip =
        inet_pton(AF_INET, t->addr.host, ip) == 1 || inet_pton(AF_INET6, t->addr.host, ip) == 1;
    SSL *ssl = SSL_new(t->ctx);

    if (!ssl || !SSL_set_fd(ssl, fd) ||
        !(is_ip
              ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), t->addr.host)
              : SSL_set1_host(ssl, t->addr.host) && SSL_set_tlsext_host_name(ssl, t->addr.host))) {
        failed(t, "setup", "cannot set up TLS for %s (no memory?)", t->addr.host);
        SSL_free(ssl);
        return NULL;
    }
    for (;;) {
        int r = SSL_connect(ssl), e = SSL_get_error(ssl, r), w = 0;
        if (r == 1)
            return ssl;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            w = wait_fd(t, fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, CONNECT_MS);
        if (w < 0) { /* stopping */
            SSL_free(ssl);
            return NULL;
        }
        if (w == 0) {
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                failed(t, "timeout", "TLS handshake with %s:%d: no answer in %d s", t->addr.host,
                       t->addr.port, CONNECT_MS / 1000);
            else
                handshake_failed(t, ssl);
            SSL_free(ssl);
            return NULL;
        }
    }
}

/* One side of the pump: what an SSL call wants to go on (a POLL bit), or -1: the end. */
static int ssl_wants(SSL *ssl, int r)
{
    int e = SSL_get_error(ssl, r);
    return e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : -1;
}

struct pump {
    char up[BUF], down[BUF]; /* hiredis to Redis, Redis to hiredis */
    size_t upn, downn, downoff;
    bool answered; /* Redis sent something: the session really works */
    bool fatal;    /* an SSL call failed: no close_notify then */
    bool ended;    /* Redis's side ended the session (not hiredis, not our stop) */
};

/* Moves what can move without waiting; the TLS socket's POLL bits, or -1 when a side ended. */
static int pump_step(struct pump *p, int u, SSL *ssl, bool *moved)
{
    int want = 0, r;
    ssize_t n;
    *moved = false;
    if (!p->downn) { /* SSL_read also drains what OpenSSL holds already (SSL_pending) */
        if ((r = SSL_read(ssl, p->down, BUF)) > 0) {
            p->downn = (size_t)r;
            p->downoff = 0;
            *moved = p->answered = true;
        } else if ((r = ssl_wants(ssl, r)) < 0) {
            p->fatal = SSL_get_error(ssl, 0) != SSL_ERROR_ZERO_RETURN;
            p->ended = true;
            return -1;
        } else
            want |= r;
    }
    if (p->downn) {
        n = send(u, p->down + p->downoff, p->downn - p->downoff, MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN)
            return -1;
        if (n > 0 && (p->downoff += (size_t)n) == p->downn)
            p->downn = 0;
        *moved |= n > 0;
    }
    if (!p->upn) {
        n = recv(u, p->up, BUF, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN))
            return -1; /* hiredis closed (or reconnects) */
        if (n > 0)
            p->upn = (size_t)n;
        *moved |= n > 0;
    }
    if (p->upn) { /* retried with the same buffer and length until it goes whole */
        if ((r = SSL_write(ssl, p->up, (int)p->upn)) > 0) {
            p->upn = 0;
            *moved = true;
        } else if ((r = ssl_wants(ssl, r)) < 0) {
            p->fatal = p->ended = true;
            return -1;
        } else
            want |= r;
    }
    return want;
}

static bool gone(short revents)
{
    return (revents & (POLLERR | POLLHUP | POLLNVAL)) && !(revents & POLLIN);
}

/* The session works (Redis answered): the next failure is told again. */
static void tls_ok(struct cluster_tls *t)
{
    pthread_mutex_lock(&t->lock);
    bool was_down = t->told[0];
    t->told[0] = t->last[0] = '\0';
    pthread_mutex_unlock(&t->lock);
    if (was_down)
        pd_log(PD_LOG_INFO, "event=cluster_tls_ok redis=%s:%d", t->addr.host, t->addr.port);
}

/* Why Redis ended a session it had accepted: with TLS 1.3 a client certificate it wants is
 * refused only now, by an alert ("certificate required"). Which of the alert or the closed
 * socket this side sees first is a race: a session Redis ended before its first answer is a
 * failure either way (ANSWERED: it had answered). */
static void session_failed(struct cluster_tls *t, bool answered)
{
    unsigned long e = ERR_get_error();
    char err[256];
    if (!e && answered)
        return; /* a plain close: Redis's timeout, or hiredis reconnecting */
    if (e)
        ERR_error_string_n(e, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "it closed the connection before answering");
    ERR_clear_error();
    failed(t, "session",
           "Redis at %s:%d ended the TLS session: %s; if Redis asks for a client certificate "
           "(tls-auth-clients), set tls_cert_file and tls_key_file to one its CA signed",
           t->addr.host, t->addr.port, err);
}

/* Pumps bytes both ways until either side closes, or the stop. False: the session failed. */
static bool pump(struct cluster_tls *t, int u, int s, SSL *ssl)
{
    struct pump *p = calloc(1, sizeof(*p));
    bool told_ok = false;
    if (!p)
        return true;
    for (;;) {
        bool moved;
        int want;
        do
            want = pump_step(p, u, ssl, &moved);
        while (want >= 0 && moved);
        if (p->answered && !told_ok) {
            tls_ok(t);
            told_ok = true;
        }
        if (want < 0)
            break;
        struct pollfd f[3] = {
            {.fd = t->stop[0], .events = POLLIN},
            {.fd = u, .events = (short)((p->upn ? 0 : POLLIN) | (p->downn ? POLLOUT : 0))},
            {.fd = s, .events = (short)want},
        };
        if (poll(f, 3, -1) < 0 && errno != EINTR)
            break;
        /* A side gone with nothing left to read: polling it again would only spin. */
        p->ended |= !f[0].revents && gone(f[2].revents);
        if (f[0].revents || gone(f[1].revents) || gone(f[2].revents))
            break;
    }
    bool fatal = p->fatal;
    if (fatal || (p->ended && !p->answered))
        session_failed(t, p->answered);
    free(p);
    return !fatal;
}

/* One connection of hiredis: to Redis over TLS, then the pump; U is closed by the caller. */
static void bridge_one(struct cluster_tls *t, int u)
{
    int s = tcp_connect(t);
    SSL *ssl = s >= 0 ? handshake(t, s) : NULL;
    if (ssl) {
        fcntl(u, F_SETFL, fcntl(u, F_GETFL) | O_NONBLOCK);
        if (pump(t, u, s, ssl))
            SSL_shutdown(ssl); /* a close_notify, not waited for */
        SSL_free(ssl);
    }
    ERR_clear_error();
    if (s >= 0)
        close(s);
}

static void *bridge_main(void *arg)
{
    struct cluster_tls *t = arg;
    for (;;) {
        if (wait_fd(t, t->lfd, POLLIN, -1) < 0)
            break;
        int u = accept4(t->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (u < 0)
            continue;
        bridge_one(t, u);
        close(u);
    }
    return NULL;
}

/* A bridge's directory left in the state dir by a process killed outright (SIGKILL, OOM): its
 * socket refuses, and it is older than a minute (never one another process is just setting up,
 * a daemon and a one-shot command may share the state dir). */
static void sweep_stale(const char *state_dir)
{
    DIR *d = state_dir ? opendir(state_dir) : NULL;
    struct dirent *e;
    time_t now = time(NULL);

    while (d && (e = readdir(d))) {
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char dir[100];
        struct stat st;
        int n = snprintf(dir, sizeof(dir), "%s/%s", state_dir, e->d_name);
        if (strncmp(e->d_name, "redis-tls.", 10) || n < 0 || (size_t)n + 3 > sizeof(sa.sun_path) ||
            lstat(dir, &st) || !S_ISDIR(st.st_mode) || now - st.st_mtime < 60)
            continue;
        snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/s", dir);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        bool refused = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
                       (errno == ECONNREFUSED || errno == ENOENT);
        if (fd >= 0)
            close(fd);
        if (refused) {
            unlink(sa.sun_path);
            rmdir(dir);
        }
    }
    if (d)
        closedir(d);
}

/* The private directory (0700) and the listening socket in it: in the state dir if the path
 * fits a unix socket's, else in $TMPDIR or /tmp. */
static int listen_unix(struct cluster_tls *t, const char *state_dir)
{
    const char *tmp = getenv("TMPDIR");
    const char *bases[] = {state_dir, tmp && *tmp ? tmp : NULL, "/tmp"};
    struct sockaddr_un sa = {.sun_family = AF_UNIX};

    sweep_stale(state_dir);
    for (size_t i = 0; i < 3 && !t->dir[0]; i++) {
        int n = bases[i] ? snprintf(t->dir, sizeof(t->dir), "%s/redis-tls.XXXXXX", bases[i]) : 0;
        if (n <= 0 || (size_t)n + 3 > sizeof(sa.sun_path) || !mkdtemp(t->dir))
            t->dir[0] = '\0';
    }
    if (!t->dir[0])
        return -errno;
    snprintf(t->path, sizeof(t->path), "%s/s", t->dir);
    memcpy(sa.sun_path, t->path, strlen(t->path) + 1);
    t->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (t->lfd < 0 || bind(t->lfd, (struct sockaddr *)&sa, sizeof(sa)) || listen(t->lfd, 8))
        return -errno;
    return 0;
}

static void tls_free(struct cluster_tls *t)
{
    if (t->lfd >= 0)
        close(t->lfd);
    if (t->path[0])
        unlink(t->path);
    if (t->dir[0])
        rmdir(t->dir);
    for (int i = 0; i < 2; i++)
        if (t->stop[i] >= 0)
            close(t->stop[i]);
    SSL_CTX_free(t->ctx);
    pthread_mutex_destroy(&t->lock);
    free(t);
}

int cluster_tls_start(const struct pd_config *cfg, const struct pd_redis_addr *addr,
                      struct cluster_tls **out)
{
    struct cluster_tls *t = calloc(1, sizeof(*t));
    char why[512];
    int rc;

    *out = NULL;
    if (!t)
        return PD_ENOMEM;
    t->addr = *addr;
    t->lfd = t->stop[0] = t->stop[1] = -1;
    pthread_mutex_init(&t->lock, NULL);
    if ((rc = cluster_tls_ctx(&cfg->cluster, &t->ctx, why, sizeof(why)))) {
        pd_log(PD_LOG_ERROR, "event=cluster_tls_failed reason=\"%s\"", why);
        tls_free(t);
        return rc;
    }
    /* The thread takes no signal: they stay the loop's, and a closed socket is EPIPE. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    if ((rc = listen_unix(t, cfg->state.dir)) || pipe2(t->stop, O_CLOEXEC) ||
        (rc = -pthread_create(&t->thread, NULL, bridge_main, t))) {
        int e = rc ? -rc : errno;
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pd_log(PD_LOG_ERROR,
               "event=cluster_tls_failed reason=\"cannot start the TLS bridge to "
               "Redis (socket in %s): %s\"",
               t->dir[0] ? t->dir : "$TMPDIR", strerror(e));
        tls_free(t);
        return rc ? rc : -EAGAIN;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (!cfg->cluster.tls_verify)
        pd_log((enum pd_log_level)(PD_LOG_WARN | PD_LOG_EVERY),
               "event=cluster_tls_verify_off redis=%s:%d reason=\"tls_verify = no in [cluster]: "
               "Redis's certificate is NOT checked, anyone on the path can read and change "
               "what the hosts share (the login token); set ca_file instead\"",
               addr->host, addr->port);
    *out = t;
    return 0;
}

const char *cluster_tls_path(const struct cluster_tls *t)
{
    return t->path;
}

void cluster_tls_last_error(struct cluster_tls *t, char *buf, size_t len)
{
    pthread_mutex_lock(&t->lock);
    snprintf(buf, len, "%s", t->last);
    pthread_mutex_unlock(&t->lock);
}

void cluster_tls_stop(struct cluster_tls **tp)
{
    struct cluster_tls *t = tp ? *tp : NULL;
    if (!t)
        return;
    *tp = NULL;
    ssize_t n;
    while ((n = write(t->stop[1], "x", 1)) < 0 && errno == EINTR)
        ;
    pthread_join(t->thread, NULL);
    tls_free(t);
}
