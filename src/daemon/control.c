/*
 * The control socket `<state dir>/patchdrop.sock`, served on the daemon's loop: a client writes
 * one line, `status` or `status WATCH`, and gets one JSON document (pd_daemon_status_json), then
 * the daemon closes. Anything else gets {"error": ...}. The socket is 0660, so only the daemon's
 * user and group can connect, and each connection's SO_PEERCRED is checked again (a socket
 * someone made wider, a copy of its descriptor). A client can cost little: CTL_LINE_MAX bytes,
 * CTL_TIMEOUT_MS for the whole exchange; beyond CTL_CONNS at once the oldest silent one goes;
 * the loop never waits for one.
 */
#include "daemon_internal.h"

#include "pd_log.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CTL_LINE_MAX 256    /* `status ` and a watch name */
#define CTL_TIMEOUT_MS 3000 /* to send the line and read the whole answer */
#define CTL_CONNS 16        /* connections served at once; more are closed at once */
#define CTL_GROUPS_MAX 256  /* a peer's groups looked at */

struct dconn {
    uv_pipe_t pipe;
    uv_timer_t timer;
    uv_write_t wr;
    struct dcontrol *ctl;
    struct dconn *next, *prev;
    char line[CTL_LINE_MAX];
    size_t len;
    char *out;
    bool answered, closing;
    bool refused; /* not patchdrop's user or group: its line gets a refusal */
    int open_handles;
};

struct dcontrol {
    struct pd_daemon *d;
    uv_pipe_t server;
    char *path;
    dev_t dev;
    ino_t ino;
    struct dconn *conns;
    unsigned nconns;
    bool closing, server_closed;
    void (*done)(struct pd_daemon *d);
};

static void ctl_maybe_done(struct dcontrol *c)
{
    if (!c->closing || !c->server_closed || c->conns)
        return;
    void (*done)(struct pd_daemon *) = c->done;
    struct pd_daemon *d = c->d;
    free(c->path);
    free(c);
    if (done)
        done(d);
}

static void on_conn_closed(uv_handle_t *h)
{
    struct dconn *k = h->data;
    struct dcontrol *c = k->ctl;

    if (--k->open_handles)
        return;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->conns = k->next;
    if (k->next)
        k->next->prev = k->prev;
    c->nconns--;
    free(k);
    ctl_maybe_done(c);
}

static void conn_close(struct dconn *k)
{
    if (k->closing)
        return;
    k->closing = true;
    uv_close((uv_handle_t *)&k->pipe, on_conn_closed);
    uv_close((uv_handle_t *)&k->timer, on_conn_closed);
}

static void on_written(uv_write_t *wr, int status)
{
    struct dconn *k = wr->data;
    (void)status;
    free(k->out);
    k->out = NULL;
    conn_close(k);
}

/* Sends TEXT (taken) and a newline, then closes. */
static void conn_answer(struct dconn *k, char *text)
{
    uv_buf_t b;
    size_t n;

    k->answered = true;
    uv_read_stop((uv_stream_t *)&k->pipe);
    if (!text) {
        conn_close(k);
        return;
    }
    n = strlen(text);
    text[n] = '\n'; /* the terminator's place: the answer is one line */
    k->out = text;
    b = uv_buf_init(text, (unsigned)n + 1);
    k->wr.data = k;
    if (uv_write(&k->wr, (uv_stream_t *)&k->pipe, &b, 1, on_written)) {
        free(k->out);
        k->out = NULL;
        conn_close(k);
    }
}

static void conn_error(struct dconn *k, const char *why)
{
    char *t = NULL;
    if (asprintf(&t, "{\"error\":\"%s\"}", why) < 0)
        t = NULL;
    conn_answer(k, t);
}

/* One whole line: `status` or `status WATCH`. */
static void conn_request(struct dconn *k)
{
    char *line = k->line;
    size_t n = k->len;

    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
        n--;
    line[n] = '\0';
    if (k->refused)
        conn_error(k, "refused: only patchdrop's user and group may ask for its status");
    else if (!strcmp(line, "status"))
        conn_answer(k, pd_daemon_status_json(k->ctl->d, NULL));
    else if (!strncmp(line, "status ", 7) && line[7])
        conn_answer(k, pd_daemon_status_json(k->ctl->d, line + 7));
    else
        conn_error(k, "unknown request: send one line, status or status WATCH");
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
    struct dconn *k = h->data;
    (void)hint;
    /* One byte stays for the terminator. */
    *b = uv_buf_init(k->line + k->len, (unsigned)(sizeof(k->line) - 1 - k->len));
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
    struct dconn *k = s->data;
    (void)b;

    if (k->answered || k->closing)
        return;
    if (nread < 0) {
        if (nread == UV_EOF && k->len)
            conn_request(k); /* a line without its newline */
        else
            conn_close(k);
        return;
    }
    k->len += (size_t)nread;
    if (memchr(k->line, '\n', k->len)) {
        k->len = (size_t)((char *)memchr(k->line, '\n', k->len) - k->line);
        conn_request(k);
    } else if (k->len >= sizeof(k->line) - 1) {
        conn_error(k, "request too long: send one line, status or status WATCH");
    }
}

static void on_timeout(uv_timer_t *t)
{
    conn_close(t->data);
}

/* Closes the oldest connection still waiting for its line. */
static void evict_oldest(struct dcontrol *c)
{
    struct dconn *old = NULL;

    for (struct dconn *k = c->conns->next; k; k = k->next) /* newest first: skip the new one */
        if (!k->answered && !k->closing)
            old = k;
    if (old)
        conn_close(old);
}

/* Whether the peer of FD is the daemon's user, root, or in the daemon's group. */
static bool peer_allowed(int fd, uid_t *uid)
{
    struct ucred cr;
    socklen_t len = sizeof(cr);
    gid_t groups[CTL_GROUPS_MAX];

    if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &len))
        return false;
    *uid = cr.uid;
    if (cr.uid == 0 || cr.uid == geteuid() || cr.gid == getegid())
        return true;
    len = sizeof(groups);
    if (getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &len))
        return false;
    for (size_t i = 0; i < len / sizeof(gid_t); i++)
        if (groups[i] == getegid())
            return true;
    return false;
}

static void on_connection(uv_stream_t *server, int status)
{
    struct dcontrol *c = server->data;
    struct dconn *k;
    uv_os_fd_t fd;
    uid_t uid = 0;

    if (status < 0 || c->closing || !(k = calloc(1, sizeof(*k))))
        return;
    k->ctl = c;
    uv_pipe_init(c->d->loop, &k->pipe, 0);
    uv_timer_init(c->d->loop, &k->timer);
    k->pipe.data = k->timer.data = k;
    k->open_handles = 2;
    k->next = c->conns;
    if (c->conns)
        c->conns->prev = k;
    c->conns = k;
    c->nconns++;
    if (uv_accept(server, (uv_stream_t *)&k->pipe)) {
        conn_close(k);
        return;
    }
    if (c->nconns > CTL_CONNS)
        evict_oldest(c); /* a newcomer always gets a slot: clients that stay silent lose theirs */
    uv_timer_start(&k->timer, on_timeout, CTL_TIMEOUT_MS, 0);
    if (uv_fileno((uv_handle_t *)&k->pipe, &fd) || !peer_allowed(fd, &uid)) {
        pd_log(PD_LOG_WARN, "event=control_refused uid=%u reason=\"not patchdrop's user or group\"",
               (unsigned)uid);
        k->refused = true; /* answered once its line is read: closing on unread bytes resets */
    }
    uv_read_start((uv_stream_t *)&k->pipe, on_alloc, on_read);
}

/* Clears the way for a new socket at PATH: a stale one left by a crash goes; anything else
 * (a live daemon's socket, a symlink, a file) stays and 0 is returned. */
static bool path_free(const char *path)
{
    struct stat st;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd, rc;

    if (lstat(path, &st))
        return errno == ENOENT;
    if (!S_ISSOCK(st.st_mode)) {
        pd_log(PD_LOG_WARN,
               "event=control_unavailable path=%s reason=\"something that is not a socket (a "
               "symlink or a file) is there; left alone\" action=\"remove it and restart "
               "patchdrop for patchdrop status\"",
               path);
        return false;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return false;
    rc = connect(fd, (struct sockaddr *)&sa, sizeof(sa));
    close(fd);
    if (rc == 0) {
        pd_log(PD_LOG_WARN,
               "event=control_unavailable path=%s reason=\"another patchdrop answers there "
               "(same state dir)\" action=\"give each daemon its own [state] dir\"",
               path);
        return false;
    }
    return unlink(path) == 0 || errno == ENOENT;
}

static void on_server_closed(uv_handle_t *h)
{
    struct dcontrol *c = h->data;
    c->server_closed = true;
    ctl_maybe_done(c);
}

static int ctl_listen(struct dcontrol *c)
{
    struct stat st;
    int rc;

    if ((rc = uv_pipe_bind(&c->server, c->path)) ||
        (rc = uv_listen((uv_stream_t *)&c->server, CTL_CONNS, on_connection)))
        return rc;
    /* Bound just now, so the name is ours; 0660: the service's group may ask too. */
    if (lstat(c->path, &st) || !S_ISSOCK(st.st_mode) || chmod(c->path, 0660))
        return -errno;
    c->dev = st.st_dev;
    c->ino = st.st_ino;
    return 0;
}

/* The state dir is private (0700, pd_zone_own_dir): the group gets the right to pass through
 * it (0710), so its members reach the socket by name; they can list and read nothing in it. */
static void let_group_pass(const char *dir)
{
    struct stat st;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

    if (fd < 0)
        return;
    if (!fstat(fd, &st) && st.st_uid == geteuid() && (st.st_mode & 0777) == 0700)
        fchmod(fd, 0710);
    close(fd);
}

void dw_control_open(struct pd_daemon *d)
{
    struct dcontrol *c;
    int rc;

    if (d->control || !d->cfg->state.dir || !(c = calloc(1, sizeof(*c))))
        return;
    c->d = d;
    c->path = dw_join(d->cfg->state.dir, PD_DAEMON_SOCKET);
    if (!c->path || strlen(c->path) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
        pd_log(PD_LOG_WARN, "event=control_unavailable reason=\"the state dir's path is too long "
                            "for a unix socket\" action=\"use a shorter [state] dir\"");
        free(c->path);
        free(c);
        return;
    }
    if (!path_free(c->path)) {
        free(c->path);
        free(c);
        return;
    }
    uv_pipe_init(d->loop, &c->server, 0);
    c->server.data = c;
    d->control = c;
    if ((rc = ctl_listen(c))) {
        pd_log(PD_LOG_WARN, "event=control_unavailable path=%s error=\"%s\"", c->path,
               uv_strerror(rc));
        dw_control_close(d, NULL);
        return;
    }
    let_group_pass(d->cfg->state.dir);
    pd_log(PD_LOG_DEBUG, "event=control_listening path=%s", c->path);
}

bool dw_control_close(struct pd_daemon *d, void (*done)(struct pd_daemon *d))
{
    struct dcontrol *c = d->control;
    struct stat st;

    if (!c)
        return false;
    d->control = NULL;
    c->closing = true;
    c->done = done;
    /* Only the socket this daemon made: a newer daemon's stays. */
    if (c->ino && !lstat(c->path, &st) && st.st_dev == c->dev && st.st_ino == c->ino)
        unlink(c->path);
    for (struct dconn *k = c->conns; k; k = k->next)
        conn_close(k);
    uv_close((uv_handle_t *)&c->server, on_server_closed);
    return true;
}
