/*
 * One drop folder's watcher (see pd_watch.h). Implements the Linux inotify contract
 * (inotify(7)): events carry a watch descriptor and a name; IN_Q_OVERFLOW means events were
 * lost; IN_IGNORED means a watch is gone (its folder was deleted). None of that is trusted
 * beyond a hint: every loss leads to a full rescan.
 */
#include "pd_watch.h"
#include "pd_error.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#define WATCH_MASK                                                                                 \
    (IN_CLOSE_WRITE | IN_MOVED_TO | IN_CREATE | IN_ATTRIB | IN_DELETE_SELF | IN_MOVE_SELF |        \
     IN_ONLYDIR)
/* Folders deeper than this are not entered: a guard against loops through bind mounts. */
#define MAX_DEPTH 32

struct wdir {
    int wd;
    char *rel; /* "" for the root */
};

struct pd_watcher {
    uv_loop_t *loop;
    char *root;
    char *skip;
    uint64_t rescan_ms;
    bool poll_only;
    bool recursive;
    pd_watch_fn fn;
    void *arg;

    int ifd;
    uv_poll_t ipoll;
    bool ipoll_active;
    uv_timer_t rescan_timer; /* the periodic full scan */
    uv_timer_t soon_timer;   /* a coalesced scan asked for by an event */
    struct wdir *dirs;
    size_t ndirs, capdirs;
    bool root_watched;
    bool closing;
    int pending_closes;
    void (*on_closed)(void *);
    void *closed_arg;
    uint64_t scans, overflows;
    int last_error; /* to report a broken root once, not every scan */
};

static void scan_all(struct pd_watcher *w);

static void emit(struct pd_watcher *w, enum pd_watch_event ev, const char *name)
{
    if (!w->closing)
        w->fn(w->arg, ev, name);
}

static struct wdir *find_wd(struct pd_watcher *w, int wd)
{
    for (size_t i = 0; i < w->ndirs; i++)
        if (w->dirs[i].wd == wd)
            return &w->dirs[i];
    return NULL;
}

static void forget_wd(struct pd_watcher *w, int wd)
{
    for (size_t i = 0; i < w->ndirs; i++) {
        if (w->dirs[i].wd == wd) {
            if (!w->dirs[i].rel[0])
                w->root_watched = false;
            free(w->dirs[i].rel);
            w->dirs[i] = w->dirs[--w->ndirs];
            return;
        }
    }
}

/* Adds an inotify watch on ROOT/REL (REL "" is the root itself). */
static void add_watch(struct pd_watcher *w, const char *rel)
{
    char path[PATH_MAX];
    int wd;

    if (w->ifd < 0)
        return;
    if ((size_t)snprintf(path, sizeof(path), "%s%s%s", w->root, rel[0] ? "/" : "", rel) >=
        sizeof(path))
        return;
    wd = inotify_add_watch(w->ifd, path, WATCH_MASK);
    if (wd < 0)
        return; /* the rescan still sees the folder's files */
    if (find_wd(w, wd))
        return; /* already watched: inotify hands back the same descriptor */
    if (w->ndirs == w->capdirs) {
        size_t cap = w->capdirs ? w->capdirs * 2 : 8;
        struct wdir *grown = realloc(w->dirs, cap * sizeof(*grown));
        if (!grown) {
            inotify_rm_watch(w->ifd, wd);
            return;
        }
        w->dirs = grown;
        w->capdirs = cap;
    }
    w->dirs[w->ndirs].wd = wd;
    w->dirs[w->ndirs].rel = strdup(rel);
    if (!w->dirs[w->ndirs].rel) {
        inotify_rm_watch(w->ifd, wd);
        return;
    }
    w->ndirs++;
    if (!rel[0])
        w->root_watched = true;
}

/* Reports every entry under ROOT/REL; folders are entered when recursive, MAX_DEPTH deep. */
static int scan_dir(struct pd_watcher *w, const char *rel, int depth)
{
    char path[PATH_MAX], child[PATH_MAX];
    DIR *d;
    struct dirent *de;

    if ((size_t)snprintf(path, sizeof(path), "%s%s%s", w->root, rel[0] ? "/" : "", rel) >=
        sizeof(path))
        return -ENAMETOOLONG;
    /* O_NOFOLLOW: a drop folder that is (or was swapped for) a symlink is not followed out. */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC | (depth ? O_NOFOLLOW : 0));
    if (fd < 0)
        return -errno;
    d = fdopendir(fd);
    if (!d) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (w->recursive && depth > 0 && !w->poll_only)
        add_watch(w, rel);
    while ((de = readdir(d))) {
        const char *n = de->d_name;
        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        if ((size_t)snprintf(child, sizeof(child), "%s%s%s", rel, rel[0] ? "/" : "", n) >=
            sizeof(child))
            continue;
        if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
                if (w->skip && !strcmp(n, w->skip))
                    continue;
                if (w->recursive && depth < MAX_DEPTH) {
                    scan_dir(w, child, depth + 1);
                    continue;
                }
            }
        }
        emit(w, PD_WATCH_SEEN, child);
        if (w->closing)
            break;
    }
    closedir(d);
    return 0;
}

static void scan_all(struct pd_watcher *w)
{
    int rc;

    if (w->closing)
        return;
    w->scans++;
    if (!w->poll_only && !w->root_watched)
        add_watch(w, "");
    rc = scan_dir(w, "", 0);
    if (rc) {
        if (rc != w->last_error) {
            char msg[PATH_MAX + 128];
            snprintf(msg, sizeof(msg), "cannot read the folder %s: %s; retrying every rescan",
                     w->root, pd_strerror(rc));
            emit(w, PD_WATCH_ERROR, msg);
        }
        w->last_error = rc;
        return;
    }
    w->last_error = 0;
    emit(w, PD_WATCH_SCAN_DONE, "");
}

static void on_rescan_timer(uv_timer_t *t)
{
    scan_all(t->data);
}

static void on_soon_timer(uv_timer_t *t)
{
    scan_all(t->data);
}

void pd_watcher_rescan(struct pd_watcher *w)
{
    if (!w->closing && !uv_is_active((uv_handle_t *)&w->soon_timer))
        uv_timer_start(&w->soon_timer, on_soon_timer, 10, 0);
}

static void on_inotify_readable(uv_poll_t *h, int status, int events)
{
    struct pd_watcher *w = h->data;
    char buf[16384] __attribute__((aligned(__alignof__(struct inotify_event))));

    if (status < 0) {
        pd_watcher_rescan(w);
        return;
    }
    for (;;) {
        ssize_t n = read(w->ifd, buf, sizeof(buf));
        if (n <= 0)
            break;
        for (char *p = buf; p < buf + n;) {
            struct inotify_event *ev = (struct inotify_event *)(void *)p;
            p += sizeof(*ev) + ev->len;
            if (ev->mask & IN_Q_OVERFLOW) {
                /* Events were lost: only a full scan knows what is there now. */
                w->overflows++;
                pd_watcher_rescan(w);
                continue;
            }
            if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                /* A watched folder went away; the rescan re-adds it if it comes back. */
                if (ev->mask & IN_IGNORED)
                    forget_wd(w, ev->wd);
                pd_watcher_rescan(w);
                continue;
            }
            struct wdir *d = find_wd(w, ev->wd);
            if (!d || !ev->len)
                continue;
            char rel[PATH_MAX];
            if ((size_t)snprintf(rel, sizeof(rel), "%s%s%s", d->rel, d->rel[0] ? "/" : "",
                                 ev->name) >= sizeof(rel))
                continue;
            if (ev->mask & IN_ISDIR) {
                /* A new subfolder: its files may have arrived before the watch, so scan it. */
                if (w->recursive && !(w->skip && !strcmp(ev->name, w->skip)))
                    pd_watcher_rescan(w);
                continue;
            }
            emit(w, PD_WATCH_SEEN, rel);
            if (w->closing)
                return;
        }
    }
}

int pd_watcher_create(uv_loop_t *loop, const struct pd_watch_opts *opts, pd_watch_fn fn,
                      void *arg, struct pd_watcher **out)
{
    struct pd_watcher *w = calloc(1, sizeof(*w));

    *out = NULL;
    if (!w)
        return PD_ENOMEM;
    w->loop = loop;
    w->ifd = -1;
    w->fn = fn;
    w->arg = arg;
    w->rescan_ms = opts->rescan_ms ? opts->rescan_ms : 30000;
    w->poll_only = opts->poll;
    w->recursive = opts->recursive;
    w->root = strdup(opts->root);
    w->skip = opts->skip ? strdup(opts->skip) : NULL;
    if (!w->root || (opts->skip && !w->skip)) {
        free(w->root);
        free(w->skip);
        free(w);
        return PD_ENOMEM;
    }
    uv_timer_init(loop, &w->rescan_timer);
    uv_timer_init(loop, &w->soon_timer);
    w->rescan_timer.data = w;
    w->soon_timer.data = w;
    *out = w;
    return 0;
}

int pd_watcher_start(struct pd_watcher *w)
{
    if (!w->poll_only) {
        w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        /* Without inotify (limit reached) rescans still find everything, just later. */
        if (w->ifd >= 0) {
            uv_poll_init(w->loop, &w->ipoll, w->ifd);
            w->ipoll.data = w;
            w->ipoll_active = true;
            uv_poll_start(&w->ipoll, UV_READABLE, on_inotify_readable);
        }
    }
    uv_timer_start(&w->rescan_timer, on_rescan_timer, 0, w->rescan_ms);
    return 0;
}

uint64_t pd_watcher_scans(const struct pd_watcher *w)
{
    return w->scans;
}

uint64_t pd_watcher_overflows(const struct pd_watcher *w)
{
    return w->overflows;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct pd_watcher *w = h->data;

    if (--w->pending_closes)
        return;
    if (w->ifd >= 0)
        close(w->ifd);
    for (size_t i = 0; i < w->ndirs; i++)
        free(w->dirs[i].rel);
    free(w->dirs);
    free(w->root);
    free(w->skip);
    if (w->on_closed)
        w->on_closed(w->closed_arg);
    free(w);
}

void pd_watcher_close(struct pd_watcher **wp, void (*on_closed)(void *arg), void *arg)
{
    struct pd_watcher *w = wp ? *wp : NULL;

    if (!w)
        return;
    *wp = NULL;
    w->closing = true;
    w->on_closed = on_closed;
    w->closed_arg = arg;
    w->pending_closes = 2 + (w->ipoll_active ? 1 : 0);
    uv_close((uv_handle_t *)&w->rescan_timer, on_handle_closed);
    uv_close((uv_handle_t *)&w->soon_timer, on_handle_closed);
    if (w->ipoll_active)
        uv_close((uv_handle_t *)&w->ipoll, on_handle_closed);
}
