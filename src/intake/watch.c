/*
 * One drop folder's watcher (see pd_watch.h). Implements the Linux inotify contract
 * (inotify(7)): events carry a watch descriptor and a name; IN_Q_OVERFLOW means events were
 * lost; IN_IGNORED means a watch is gone (its folder was deleted). None of that is trusted
 * beyond a hint: every loss leads to a full rescan.
 *
 * Drop folders are written by partners we do not trust, who can rename or exchange
 * (renameat2 RENAME_EXCHANGE) any entry at any moment. So nothing beneath the root is ever
 * reached by a joined path: each scan opens the root once, and every subfolder relative to its
 * parent's descriptor with O_NOFOLLOW; watches are added through that descriptor too. A symlink,
 * also one swapped in for a folder mid-scan, is never entered.
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
    bool moved;    /* renamed since the last scan entered it: its name is not trusted */
    uint64_t scan; /* the last scan that entered this folder; older watches are dropped */
    char *rel;     /* "" for the root */
};

struct pd_watcher {
    uv_loop_t *loop;
    char *root;
    char *skip;
    uint64_t rescan_ms;
    bool poll_only;
    bool recursive;
    bool report_skipped;
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

/* Removes the entry I of the table (its watch is already gone or removed by the caller). */
static void drop_entry(struct pd_watcher *w, size_t i)
{
    if (!w->dirs[i].rel[0])
        w->root_watched = false;
    free(w->dirs[i].rel);
    w->dirs[i] = w->dirs[--w->ndirs];
}

static void forget_wd(struct pd_watcher *w, int wd)
{
    for (size_t i = 0; i < w->ndirs; i++) {
        if (w->dirs[i].wd == wd) {
            drop_entry(w, i);
            return;
        }
    }
}

/*
 * The subfolder watched as WD was renamed (IN_MOVE_SELF): its name, and that of every folder
 * beneath it, may now lead somewhere else (a partner's symlink after RENAME_EXCHANGE). Their
 * events are not reported until a scan has found them again; that scan also reports whatever
 * arrived meanwhile. inotify queues IN_MOVE_SELF before any event that followed the rename.
 */
static void mark_moved(struct pd_watcher *w, int wd)
{
    struct wdir *d = find_wd(w, wd);
    size_t len;

    if (!d || !d->rel[0])
        return; /* the root is the admin's: a rescan opens it by its path again */
    len = strlen(d->rel);
    for (size_t i = 0; i < w->ndirs; i++) {
        const char *r = w->dirs[i].rel;
        if (!strncmp(r, d->rel, len) && (r[len] == '\0' || r[len] == '/'))
            w->dirs[i].moved = true;
    }
}

/*
 * Adds an inotify watch on PATH (with FLAGS beside the usual mask) for the folder REL ("" is the
 * root). A folder already watched, perhaps under an older name (renamed, or exchanged with
 * another entry), keeps its watch descriptor and takes the name this scan found it under.
 */
static void add_watch(struct pd_watcher *w, const char *path, uint32_t flags, const char *rel)
{
    struct wdir *d;
    int wd;

    if (w->ifd < 0)
        return;
    wd = inotify_add_watch(w->ifd, path, WATCH_MASK | flags);
    if (wd < 0)
        return; /* the rescan still sees the folder's files */
    if ((d = find_wd(w, wd))) {
        if (d->rel[0] && strcmp(d->rel, rel)) {
            char *now = strdup(rel);
            if (!now) {
                /* Better no watch than one that reports names under a stale path. */
                inotify_rm_watch(w->ifd, wd);
                drop_entry(w, (size_t)(d - w->dirs));
                return;
            }
            free(d->rel);
            d->rel = now;
        }
        d->scan = w->scans;
        d->moved = false;
        return;
    }
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
    w->dirs[w->ndirs].moved = false;
    w->dirs[w->ndirs].scan = w->scans;
    w->dirs[w->ndirs].rel = strdup(rel);
    if (!w->dirs[w->ndirs].rel) {
        inotify_rm_watch(w->ifd, wd);
        return;
    }
    w->ndirs++;
    if (!rel[0])
        w->root_watched = true;
}

/*
 * Watches the subfolder REL through FD, the descriptor the scan opened it with, so the watch
 * lands on that very folder and not on whatever the name leads to a moment later. The path is
 * "/proc/self/fd/N/.": the kernel resolves the magic link N to the open folder itself (no lookup
 * by name), and the last component "." is no symlink, so IN_DONT_FOLLOW holds. Plain
 * "/proc/self/fd/N" would not do: with IN_DONT_FOLLOW the watch would go on the link in /proc
 * (ENOTDIR with IN_ONLYDIR). Without /proc the folder is not watched; rescans still find its files.
 */
static void add_dir_watch(struct pd_watcher *w, int fd, const char *rel)
{
    char path[64];

    snprintf(path, sizeof(path), "/proc/self/fd/%d/.", fd);
    add_watch(w, path, IN_DONT_FOLLOW, rel);
}

/*
 * After a complete scan, drops the watches of subfolders it did not enter (moved away, swapped
 * for a symlink, unreadable): a watch only ever speaks for a folder the last scan opened beneath
 * the root. inotify then sends IN_IGNORED for a descriptor no longer known, which is skipped.
 */
static void drop_stale_watches(struct pd_watcher *w)
{
    for (size_t i = 0; i < w->ndirs;) {
        struct wdir *d = &w->dirs[i];
        if (!d->rel[0] || d->scan == w->scans) {
            i++;
            continue;
        }
        inotify_rm_watch(w->ifd, d->wd);
        drop_entry(w, i);
    }
}

/* Tells the caller that COUNT names in the folder REL (LEN bytes) were too long to report. */
static void emit_skipped(struct pd_watcher *w, const char *rel, size_t len, size_t count)
{
    char msg[PATH_MAX + 256];

    if (!w->report_skipped)
        return;
    snprintf(msg, sizeof(msg),
             "skipped %zu name%s in the folder %s: the path from the drop folder would be longer "
             "than PATH_MAX (%d bytes)",
             count, count == 1 ? "" : "s", len ? rel : ".", PATH_MAX);
    emit(w, PD_WATCH_SKIPPED, msg);
}

/*
 * Reports every entry of the folder open as FD (taken: closed here), whose name relative to the
 * root is the first LEN bytes of REL, a PATH_MAX buffer shared by the whole scan: a child's name
 * is appended in place and cut off again. Subfolders are entered when recursive, MAX_DEPTH deep,
 * each opened relative to FD with O_NOFOLLOW, never by a joined path.
 */
static int scan_dir(struct pd_watcher *w, int fd, char *rel, size_t len, int depth)
{
    struct dirent *de;
    size_t skipped = 0;
    DIR *d = fdopendir(fd);

    if (!d) {
        int e = -errno;
        close(fd);
        return e;
    }
    if (w->recursive && depth > 0 && !w->poll_only)
        add_dir_watch(w, fd, rel);
    while (!w->closing && (de = readdir(d))) {
        const char *n = de->d_name;
        size_t clen;

        if (!strcmp(n, ".") || !strcmp(n, ".."))
            continue;
        clen = len + (len ? 1 : 0) + strlen(n);
        if (clen >= PATH_MAX) {
            /* No name the caller could use: told once for this folder below, not dropped. */
            skipped++;
            continue;
        }
        if (de->d_type == DT_DIR || de->d_type == DT_UNKNOWN) {
            struct stat st;
            if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode)) {
                if (w->skip && !strcmp(n, w->skip))
                    continue;
                if (w->recursive && depth < MAX_DEPTH) {
                    /* The entry may have been swapped since the fstatat: O_NOFOLLOW decides. */
                    int cfd = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                    if (cfd >= 0) {
                        snprintf(rel + len, PATH_MAX - len, "%s%s", len ? "/" : "", n);
                        scan_dir(w, cfd, rel, clen, depth + 1);
                        rel[len] = '\0';
                        continue;
                    }
                    if (errno != ELOOP && errno != ENOTDIR)
                        continue; /* gone or unreadable: the next scan tries again */
                    /* No longer a folder (a symlink now): reported like any other such entry. */
                }
            }
        }
        snprintf(rel + len, PATH_MAX - len, "%s%s", len ? "/" : "", n);
        emit(w, PD_WATCH_SEEN, rel);
        rel[len] = '\0';
    }
    if (skipped)
        emit_skipped(w, rel, len, skipped);
    closedir(d);
    return 0;
}

static void scan_all(struct pd_watcher *w)
{
    char rel[PATH_MAX] = "";
    int fd, rc;

    if (w->closing)
        return;
    w->scans++;
    if (!w->poll_only && !w->root_watched)
        add_watch(w, w->root, 0, "");
    /* The root is the admin's path and may go through symlinks; what lies beneath may not. */
    fd = open(w->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    rc = fd < 0 ? -errno : scan_dir(w, fd, rel, 0, 0);
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
    if (w->closing)
        return; /* cut short: not every folder was entered */
    drop_stale_watches(w);
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
            if ((ev->mask & IN_IGNORED) && !find_wd(w, ev->wd))
                continue; /* a watch drop_stale_watches() removed */
            if (ev->mask & IN_MOVE_SELF)
                mark_moved(w, ev->wd);
            if (ev->mask & (IN_IGNORED | IN_DELETE_SELF | IN_MOVE_SELF)) {
                /* A watched folder went away; the rescan re-adds it if it comes back. */
                if (ev->mask & IN_IGNORED)
                    forget_wd(w, ev->wd);
                pd_watcher_rescan(w);
                continue;
            }
            struct wdir *d = find_wd(w, ev->wd);
            if (!d || !ev->len || d->moved)
                continue; /* a moved folder waits for the rescan its IN_MOVE_SELF asked for */
            char rel[PATH_MAX];
            if ((size_t)snprintf(rel, sizeof(rel), "%s%s%s", d->rel, d->rel[0] ? "/" : "",
                                 ev->name) >= sizeof(rel))
                continue; /* too long to report: every scan says so (PD_WATCH_SKIPPED) */
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

int pd_watcher_create(uv_loop_t *loop, const struct pd_watch_opts *opts, pd_watch_fn fn, void *arg,
                      struct pd_watcher **out)
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
    w->report_skipped = opts->report_skipped;
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
