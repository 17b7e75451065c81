/*
 * Retention of a watch's archive and failed folders, and the supersede link between a file
 * delivered after failing and its failed copy (see pd_retention.h, README "Retention").
 *
 * The folders swept are patchdrop's own (checked at every start by pd_zone_own_dir, and again
 * here through the descriptor that is read): nobody else can write them, but the names in
 * them are the partners' names, so a name is only ever used beneath the folder's descriptor,
 * never followed when it is a symlink, and only regular files are removed.
 */
#include "pd_retention.h"

#include "pd_clock.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_jobstate.h"
#include "pd_log.h"
#include "pd_requeue.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- the planner (pure) ------------------------------------------------------------------- */

static int entry_cmp(const void *a, const void *b)
{
    const struct pd_retention_entry *x = a, *y = b;
    if (x->time_ms != y->time_ms)
        return x->time_ms < y->time_ms ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Whether AGE reached the rule LIMIT (0: the rule is off). */
static bool reached(int64_t age, uint64_t limit)
{
    return limit && age >= 0 && (uint64_t)age >= limit;
}

size_t pd_retention_plan(struct pd_retention_entry *e, size_t n, uint64_t total_bytes,
                         const struct pd_retention_rules *r, int64_t now_ms)
{
    uint64_t remaining = total_bytes;
    size_t going = 0;

    qsort(e, n, sizeof(*e), entry_cmp);
    for (size_t i = 0; i < n; i++) {
        /* A time in the future (a clock set back) counts as now: kept. */
        int64_t age = now_ms > e[i].time_ms ? now_ms - e[i].time_ms : 0;
        e[i].file_why = e[i].sidecar_why = PD_RET_KEEP;
        if (!e[i].has_file) {
            /* A sidecar alone: its own rule, and never while its file may be on its way. */
            if (reached(age, r->sidecar_keep_ms) && reached(age, PD_RETENTION_LONE_GRACE_MS)) {
                e[i].sidecar_why = PD_RET_LONE_AGE;
                going++;
            }
            continue;
        }
        if (reached(age, r->keep_ms))
            e[i].file_why = PD_RET_AGE;
        else if (r->max_bytes && remaining > r->max_bytes)
            e[i].file_why = PD_RET_SIZE; /* oldest first, until the rest fits */
        if (e[i].file_why == PD_RET_KEEP)
            continue;
        going++;
        remaining -= e[i].bytes < remaining ? e[i].bytes : remaining;
        /* The sidecar goes with its file once its own rule allows; else it stays alone (a
         * receipt may outlive its file, never the reverse). */
        if (e[i].has_sidecar && reached(age, r->sidecar_keep_ms)) {
            e[i].sidecar_why = PD_RET_WITH_FILE;
            going++;
        }
    }
    return going;
}

enum pd_retention_role pd_retention_role(const char *name, const char *suffix,
                                         bool (*is_file)(void *arg, const char *name), void *arg,
                                         bool *sidecar)
{
    size_t n = strlen(name), s = strlen(suffix);
    char mine[2 * NAME_MAX + 2], mine2[3 * NAME_MAX + 3], base[NAME_MAX + 1];
    /* NAME + SUFFIX (and that + SUFFIX) as regular files; a name too long cannot exist. */
    bool has_mine = n + s <= NAME_MAX &&
                    (snprintf(mine, sizeof(mine), "%s%s", name, suffix), is_file(arg, mine));
    bool mine_has_own = has_mine && n + 2 * s <= NAME_MAX &&
                        (snprintf(mine2, sizeof(mine2), "%s%s", mine, suffix), is_file(arg, mine2));
    bool ends = n > s && !strcmp(name + n - s, suffix);

    *sidecar = false;
    if (ends && !has_mine) {
        snprintf(base, sizeof(base), "%.*s", (int)(n - s), name);
        if (is_file(arg, base))
            return PD_RET_ROLE_SIDECAR;
    }
    if (has_mine && !mine_has_own) {
        *sidecar = true;
        return PD_RET_ROLE_FILE;
    }
    return ends && !has_mine ? PD_RET_ROLE_LONE_SIDECAR : PD_RET_ROLE_FILE;
}

/* ---- the executor ------------------------------------------------------------------------- */

/* One entry of a sweep: the planner's view and what the removal checks again. */
struct unit {
    struct pd_retention_entry e;
    ino_t ino, sino; /* the file's and the sidecar's, as planned on */
};

struct sweep {
    int fd; /* the folder */
    const struct pd_retention_folder *f;
    struct unit *heap; /* max-heap on (time, name): the newest kept unit on top */
    size_t n, cap;
    bool truncated; /* units were dropped from the heap: the folder holds more */
};

static bool is_file_at(void *arg, const char *name)
{
    struct stat st;
    return fstatat(*(int *)arg, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode);
}

static int64_t ms_of(const struct timespec *ts)
{
    return (int64_t)ts->tv_sec * 1000 + ts->tv_nsec / 1000000;
}

static bool newer(const struct unit *a, const struct unit *b)
{
    return entry_cmp(&a->e, &b->e) > 0;
}

static void heap_down(struct sweep *s, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < s->n && newer(&s->heap[l], &s->heap[m]))
            m = l;
        if (r < s->n && newer(&s->heap[r], &s->heap[m]))
            m = r;
        if (m == i)
            return;
        struct unit t = s->heap[i];
        s->heap[i] = s->heap[m];
        s->heap[m] = t;
        i = m;
    }
}

/* Keeps U when it is among the CAP oldest units seen; takes U's name either way. */
static void keep_oldest(struct sweep *s, struct unit *u)
{
    if (s->n < s->cap) {
        size_t i = s->n++;
        s->heap[i] = *u;
        while (i > 0 && newer(&s->heap[i], &s->heap[(i - 1) / 2])) {
            struct unit t = s->heap[i];
            s->heap[i] = s->heap[(i - 1) / 2];
            s->heap[(i - 1) / 2] = t;
            i = (i - 1) / 2;
        }
        return;
    }
    s->truncated = true;
    if (s->n == 0 || !newer(&s->heap[0], u)) {
        free((char *)u->e.name);
        return;
    }
    free((char *)s->heap[0].e.name);
    s->heap[0] = *u;
    heap_down(s, 0);
}

/* Reads the folder: every regular file or lone sidecar becomes a unit; sidecars go with their
 * file. Counts files and their bytes in RES. */
static int list_units(struct sweep *s, const atomic_bool *cancel, size_t *files, uint64_t *bytes,
                      struct pd_retention_result *res)
{
    const struct pd_retention_folder *f = s->f;
    int dfd = dup(s->fd);
    DIR *dir = dfd >= 0 ? fdopendir(dfd) : NULL;
    struct dirent *de;

    if (!dir) {
        int rc = -errno;
        if (dfd >= 0)
            close(dfd);
        return rc;
    }
    while ((de = readdir(dir))) {
        const char *name = de->d_name;
        struct stat st, side;
        bool has_side = false;

        if (cancel && atomic_load(cancel)) {
            s->truncated = true;
            break;
        }
        if (!strcmp(name, ".") || !strcmp(name, "..") ||
            !strncmp(name, PD_FS_TEMP_PREFIX, strlen(PD_FS_TEMP_PREFIX)))
            continue; /* a durable write under way (pd_fs_write_atomic) */
        if (fstatat(s->fd, name, &st, AT_SYMLINK_NOFOLLOW))
            continue; /* gone meanwhile */
        if (!S_ISREG(st.st_mode)) {
            res->ignored++; /* symlinks, folders, fifos: never followed, never removed */
            continue;
        }
        enum pd_retention_role role =
            pd_retention_role(name, f->suffix, is_file_at, &s->fd, &has_side);
        if (role == PD_RET_ROLE_SIDECAR)
            continue; /* handled with its file */
        struct unit u = {.ino = st.st_ino};
        u.e.name = strdup(name);
        if (!u.e.name) {
            closedir(dir);
            return PD_ENOMEM;
        }
        if (role == PD_RET_ROLE_LONE_SIDECAR) {
            u.e.time_ms = ms_of(&st.st_mtim);
            u.e.sidecar_bytes = (uint64_t)st.st_size;
            u.sino = st.st_ino;
            u.ino = 0;
        } else {
            char sname[2 * NAME_MAX + 2];
            u.e.has_file = true;
            u.e.bytes = (uint64_t)st.st_size;
            u.e.time_ms = ms_of(&st.st_ctim);
            snprintf(sname, sizeof(sname), "%s%s", name, f->suffix);
            if (has_side && fstatat(s->fd, sname, &side, AT_SYMLINK_NOFOLLOW) == 0 &&
                S_ISREG(side.st_mode)) {
                u.e.has_sidecar = true;
                u.e.time_ms = ms_of(&side.st_mtim);
                u.e.sidecar_bytes = (uint64_t)side.st_size;
                u.sino = side.st_ino;
            }
            (*files)++;
            *bytes += u.e.bytes;
        }
        keep_oldest(s, &u);
    }
    closedir(dir);
    return 0;
}

/*
 * Removes NAME when it is still the regular file INO that was planned on: the folder is
 * patchdrop's alone, but another daemon sharing it may have removed the name and archived a
 * new file under it meanwhile. Returns 0, or -ESTALE when the name is no longer that file.
 */
static int remove_planned(int fd, const char *name, ino_t ino, uint64_t *bytes)
{
    struct stat st;
    if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW))
        return -errno;
    if (!S_ISREG(st.st_mode) || st.st_ino != ino)
        return -ESTALE;
    if (unlinkat(fd, name, 0))
        return -errno;
    *bytes = (uint64_t)st.st_size;
    return 0;
}

static const char *why_words(const struct pd_retention_folder *f, enum pd_retention_why why)
{
    return why == PD_RET_SIZE ? f->why_size : why == PD_RET_LONE_AGE ? f->why_lone : f->why_age;
}

static void log_removed(const struct pd_retention_folder *f, const char *name, int64_t age_ms,
                        uint64_t bytes, const char *why)
{
    char qw[256], qn[4 * NAME_MAX + 8];
    pd_log(PD_LOG_INFO,
           "event=retention_removed watch=%s folder=%s file=%s age_s=%" PRId64 " bytes=%" PRIu64
           " reason=%s",
           pd_log_quote(f->watch, qw, sizeof(qw)), f->folder, pd_log_quote(name, qn, sizeof(qn)),
           age_ms / 1000, bytes, why);
}

static void log_failed(const struct pd_retention_folder *f, const char *name, int rc)
{
    char qw[256], qn[4 * NAME_MAX + 8];
    pd_log(PD_LOG_ERROR,
           "event=retention_error watch=%s folder=%s file=%s reason=\"%s\" action=\"tried again "
           "at the next sweep\"",
           pd_log_quote(f->watch, qw, sizeof(qw)), f->folder, pd_log_quote(name, qn, sizeof(qn)),
           pd_strerror(rc));
}

/* Carries out the plan for one unit: the file first, then its sidecar (never a file without
 * its sidecar). Returns whether anything was removed. */
static bool carry_out(struct sweep *s, const struct unit *u, int64_t now_ms, bool *file_gone,
                      uint64_t *file_bytes, struct pd_retention_result *res)
{
    const struct pd_retention_folder *f = s->f;
    const struct pd_retention_entry *e = &u->e;
    int64_t age = now_ms > e->time_ms ? now_ms - e->time_ms : 0;
    uint64_t bytes = 0;
    bool any = false;
    int rc;

    if (e->file_why != PD_RET_KEEP) {
        rc = remove_planned(s->fd, e->name, u->ino, &bytes);
        if (rc) {
            if (rc != -ENOENT && rc != -ESTALE) {
                res->errors++;
                log_failed(f, e->name, rc);
            }
            return false; /* its sidecar stays with it */
        }
        log_removed(f, e->name, age, bytes, why_words(f, e->file_why));
        res->removed++;
        res->removed_bytes += bytes;
        *file_gone = true;
        *file_bytes = bytes;
        any = true;
    }
    if (e->sidecar_why != PD_RET_KEEP) {
        char sname[2 * NAME_MAX + 2];
        const char *side = e->name;
        if (e->has_file) {
            snprintf(sname, sizeof(sname), "%s%s", e->name, f->suffix);
            side = sname;
        }
        rc = remove_planned(s->fd, side, u->sino, &bytes);
        if (rc == 0) {
            log_removed(
                f, side, age, bytes,
                why_words(f, e->sidecar_why == PD_RET_WITH_FILE ? e->file_why : e->sidecar_why));
            res->removed++;
            res->removed_bytes += bytes;
            any = true;
        } else if (rc != -ENOENT && rc != -ESTALE) {
            res->errors++;
            log_failed(f, side, rc);
        }
    }
    return any;
}

/* Whether FD is a folder only this process's user may change (patchdrop's own). */
static bool own_folder(int fd)
{
    struct stat st;
    return fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid == geteuid() &&
           !(st.st_mode & (S_IWGRP | S_IWOTH));
}

int pd_retention_sweep(const struct pd_retention_folder *f, int64_t now_ms, size_t max_entries,
                       const atomic_bool *cancel, struct pd_retention_result *res)
{
    struct sweep s = {.f = f, .cap = max_entries ? max_entries : 1};
    size_t files = 0, files_gone = 0;
    uint64_t bytes = 0, bytes_gone = 0;
    bool removed_any = false;
    int rc = 0;

    s.fd = open(f->dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (s.fd >= 0 && f->sub) {
        int dfd = s.fd;
        s.fd = openat(dfd, f->sub, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        close(dfd);
    }
    if (s.fd < 0)
        return errno == ENOENT ? 0 : -errno; /* made at the first delivery (or retry) */
    if (!own_folder(s.fd)) {
        char qw[256], qd[PATH_MAX + 16];
        pd_log(PD_LOG_ERROR,
               "event=retention_refused watch=%s folder=%s path=%s reason=\"not a folder owned "
               "by patchdrop's user and writable by it alone\" action=\"nothing in it is "
               "removed; patchdrop check-config says how to fix it\"",
               pd_log_quote(f->watch, qw, sizeof(qw)), f->folder,
               pd_log_quote(f->dir, qd, sizeof(qd)));
        close(s.fd);
        return PD_ECONFIG;
    }
    s.heap = calloc(s.cap, sizeof(*s.heap));
    if (!s.heap) {
        close(s.fd);
        return PD_ENOMEM;
    }
    rc = list_units(&s, cancel, &files, &bytes, res);
    if (!rc) {
        struct pd_retention_entry *plan = malloc((s.n ? s.n : 1) * sizeof(*plan));
        if (!plan) {
            rc = PD_ENOMEM;
        } else {
            /* The planner reorders its entries: each names its unit by index. */
            for (size_t i = 0; i < s.n; i++) {
                plan[i] = s.heap[i].e;
                plan[i].id = i;
            }
            pd_retention_plan(plan, s.n, bytes, &f->rules, now_ms);
            for (size_t i = 0; i < s.n && !(cancel && atomic_load(cancel)); i++) {
                struct unit u = s.heap[plan[i].id];
                bool file_gone = false;
                uint64_t fb = 0;
                u.e = plan[i];
                if (carry_out(&s, &u, now_ms, &file_gone, &fb, res))
                    removed_any = true;
                if (file_gone) {
                    files_gone++;
                    bytes_gone += fb;
                }
            }
            free(plan);
        }
    }
    res->files += files - (files_gone < files ? files_gone : files);
    res->bytes += bytes - (bytes_gone < bytes ? bytes_gone : bytes);
    if ((s.truncated && removed_any) || (cancel && atomic_load(cancel)))
        res->more = true;
    for (size_t i = 0; i < s.n; i++)
        free((char *)s.heap[i].e.name);
    free(s.heap);
    close(s.fd);
    return rc;
}

/* ---- a watch's two folders ---------------------------------------------------------------- */

/* What a watch's sweep needs, copied or borrowed from its config. */
struct ret_watch {
    const char *name, *archive_dir, *failed_dir;
    struct pd_retention_rules archive, failed;
};

static void ret_watch_of(const struct pd_watch *w, struct ret_watch *rw)
{
    rw->name = w->name;
    rw->archive_dir = w->archive_dir;
    rw->failed_dir = w->failed_dir;
    rw->archive = (struct pd_retention_rules){.keep_ms = w->archive_keep_ms,
                                              .sidecar_keep_ms = w->receipt_keep_ms,
                                              .max_bytes = w->archive_max_size};
    rw->failed = (struct pd_retention_rules){.keep_ms = w->failed_keep_ms,
                                             .sidecar_keep_ms = w->failed_keep_ms};
}

static bool rules_on(const struct pd_retention_rules *r)
{
    return r->keep_ms || r->sidecar_keep_ms || r->max_bytes;
}

enum { F_ARCHIVE, F_FAILED, F_HISTORY, NFOLDERS };

/* RW's folder K with the keys its reasons name: the archive, the failed folder, and its
 * history/ (the error files `patchdrop retry` kept, lone, going by failed_keep). */
static void folder_of(const struct ret_watch *rw, int k, struct pd_retention_folder *f)
{
    static const struct {
        const char *folder, *suffix, *why_age, *why_size, *why_lone;
    } words[NFOLDERS] = {
        {"archive", PD_RETENTION_RECEIPT, "archive_keep", "archive_max_size", "receipt_keep"},
        {"failed", PD_RETENTION_ERROR, "failed_keep", "failed_keep", "failed_keep"},
        {"failed/" PD_REQUEUE_HISTORY, PD_RETENTION_ERROR, "failed_keep", "failed_keep",
         "failed_keep"},
    };

    *f = (struct pd_retention_folder){.watch = rw->name,
                                      .folder = words[k].folder,
                                      .dir = k == F_ARCHIVE ? rw->archive_dir : rw->failed_dir,
                                      .sub = k == F_HISTORY ? PD_REQUEUE_HISTORY : NULL,
                                      .suffix = words[k].suffix,
                                      .rules = k == F_ARCHIVE ? rw->archive : rw->failed,
                                      .why_age = words[k].why_age,
                                      .why_size = words[k].why_size,
                                      .why_lone = words[k].why_lone};
}

/*
 * One sweep of every folder of RW, with its summary line. UNTIL_DONE: again while a bounded
 * sweep left work (`run --once`); else *MORE says whether it did. Returns the first error.
 */
static int sweep_watch(const struct ret_watch *rw, const struct pd_clock *clock, bool until_done,
                       const atomic_bool *cancel, bool *more)
{
    struct pd_retention_folder folders[NFOLDERS];
    struct pd_retention_result res[NFOLDERS], all;
    uint64_t started = clock->mono_ms(clock->arg);
    size_t removed = 0, errors = 0;
    uint64_t removed_bytes = 0;
    int rc = 0, r;

    for (int k = 0; k < NFOLDERS; k++)
        folder_of(rw, k, &folders[k]);
    do {
        int64_t now = (int64_t)clock->wall_ms(clock->arg);
        memset(res, 0, sizeof(res));
        all = (struct pd_retention_result){0};
        for (size_t i = 0; i < NFOLDERS; i++) {
            const struct pd_retention_folder *f = &folders[i];
            if (rules_on(&f->rules) && f->dir &&
                (r = pd_retention_sweep(f, now, PD_RETENTION_MAX_ENTRIES, cancel, &res[i])) && !rc)
                rc = r;
            all.removed += res[i].removed;
            all.removed_bytes += res[i].removed_bytes;
            all.errors += res[i].errors;
            all.ignored += res[i].ignored;
            all.more |= res[i].more;
        }
        removed += all.removed;
        removed_bytes += all.removed_bytes;
        errors += all.errors;
    } while (until_done && !rc && all.more && !(cancel && atomic_load(cancel)));
    if (more)
        *more = all.more;
    /* Quiet when nothing happened: the daemon sweeps every ten minutes. */
    char qw[256], why[160] = "";
    if (rc)
        snprintf(why, sizeof(why), " reason=\"%s\"",
                 rc == PD_ECONFIG ? "a folder is not patchdrop's own (see event=retention_refused)"
                                  : pd_strerror(rc));
    pd_log(removed || errors || rc ? PD_LOG_INFO : PD_LOG_DEBUG,
           "event=retention_swept watch=%s removed=%zu removed_bytes=%" PRIu64
           " archive_files=%zu archive_bytes=%" PRIu64 " failed_files=%zu ignored=%zu errors=%zu"
           " more=%s elapsed_ms=%" PRIu64 "%s",
           pd_log_quote(rw->name, qw, sizeof(qw)), removed, removed_bytes, res[F_ARCHIVE].files,
           res[F_ARCHIVE].bytes, res[F_FAILED].files, all.ignored, errors,
           all.more ? "yes" : "no", clock->mono_ms(clock->arg) - started, why);
    return rc;
}

int pd_retention_run(const struct pd_watch *w, const struct pd_clock *clock)
{
    struct ret_watch rw;

    ret_watch_of(w, &rw);
    if (!rules_on(&rw.archive) && !rules_on(&rw.failed))
        return 0;
    return sweep_watch(&rw, clock ? clock : pd_clock_system(), true, NULL, NULL);
}

/* ---- the daemon's object: sweeps on the thread pool ---------------------------------------- */

struct pd_retention {
    uv_loop_t *loop;
    uv_work_t work;
    struct ret_watch rw; /* its strings are the copies below */
    char *name, *archive_dir, *failed_dir;
    const struct pd_clock *clock;
    uint64_t due_ms; /* monotonic: the next sweep */
    bool busy;       /* a sweep is on the thread pool */
    bool doomed;     /* destroyed meanwhile: the sweep's return frees it */
    bool more;       /* the last sweep left work: the next one comes soon */
    atomic_bool cancel;
};

static void ret_free(struct pd_retention *r)
{
    free(r->name);
    free(r->archive_dir);
    free(r->failed_dir);
    free(r);
}

int pd_retention_create(uv_loop_t *loop, const struct pd_watch *w, const struct pd_clock *clock,
                        struct pd_retention **out)
{
    struct pd_retention *r;

    *out = NULL;
    r = calloc(1, sizeof(*r));
    if (!r)
        return PD_ENOMEM;
    r->loop = loop;
    r->clock = clock ? clock : pd_clock_system();
    ret_watch_of(w, &r->rw);
    if (!rules_on(&r->rw.archive) && !rules_on(&r->rw.failed)) {
        free(r);
        return 0;
    }
    r->name = strdup(w->name);
    r->archive_dir = w->archive_dir ? strdup(w->archive_dir) : NULL;
    r->failed_dir = w->failed_dir ? strdup(w->failed_dir) : NULL;
    if (!r->name || (w->archive_dir && !r->archive_dir) || (w->failed_dir && !r->failed_dir)) {
        ret_free(r);
        return PD_ENOMEM;
    }
    r->rw.name = r->name;
    r->rw.archive_dir = r->archive_dir;
    r->rw.failed_dir = r->failed_dir;
    atomic_init(&r->cancel, false);
    r->work.data = r;
    *out = r;
    return 0;
}

static void on_sweep(uv_work_t *wk)
{
    struct pd_retention *r = wk->data;
    bool more = false;
    sweep_watch(&r->rw, r->clock, false, &r->cancel, &more);
    r->more = more;
}

static void on_sweep_done(uv_work_t *wk, int status)
{
    struct pd_retention *r = wk->data;
    (void)status;
    r->busy = false;
    if (r->doomed)
        ret_free(r);
}

void pd_retention_tick(struct pd_retention *r, uint64_t now_ms)
{
    if (!r || r->busy)
        return;
    if (r->more) {
        r->more = false;
        r->due_ms = now_ms + PD_RETENTION_AGAIN_MS;
    }
    if (now_ms < r->due_ms)
        return;
    r->due_ms = now_ms + PD_RETENTION_PERIOD_MS;
    if (uv_queue_work(r->loop, &r->work, on_sweep, on_sweep_done) == 0)
        r->busy = true;
}

bool pd_retention_busy(const struct pd_retention *r)
{
    return r && r->busy;
}

void pd_retention_destroy(struct pd_retention **rp)
{
    struct pd_retention *r = rp ? *rp : NULL;

    if (!r)
        return;
    *rp = NULL;
    if (r->busy) {
        atomic_store(&r->cancel, true);
        r->doomed = true;
        return;
    }
    ret_free(r);
}

/* ---- supersede ---------------------------------------------------------------------------- */

#define SIDE_MAX_BYTES (64u << 20) /* a receipt lists every chunk (or lookup row): allow plenty */
#define MAX_COPIES 64              /* failed copies of one name marked at once */
#define MISSES 8                   /* numbered names missing in a row before the search stops */

/* Reads NAME beneath DIRFD (never through a symlink, regular files only) with its stat. */
static int read_at(int dirfd, const char *name, char **out, struct stat *st)
{
    int fd = openat(dirfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    size_t used = 0;
    int rc = 0;
    char *buf = NULL;

    *out = NULL;
    if (fd < 0)
        return -errno;
    if (fstat(fd, st)) {
        rc = -errno;
        goto done;
    }
    if (!S_ISREG(st->st_mode) || (uint64_t)st->st_size > SIDE_MAX_BYTES) {
        rc = !S_ISREG(st->st_mode) ? -EINVAL : -EFBIG;
        goto done;
    }
    if (!(buf = malloc((size_t)st->st_size + 1))) {
        rc = PD_ENOMEM;
        goto done;
    }
    while (used < (size_t)st->st_size) {
        ssize_t n = read(fd, buf + used, (size_t)st->st_size - used);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : 0;
            break;
        }
        used += (size_t)n;
    }
    if (!rc) {
        buf[used] = '\0';
        *out = buf;
        buf = NULL;
    }
done:
    free(buf);
    close(fd);
    return rc;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Whether hex string HEX spells the bytes of NAME (a name that is not UTF-8: "file_hex"). */
static bool hex_is(const char *hex, const char *name)
{
    size_t n = strlen(name);
    if (strlen(hex) != 2 * n)
        return false;
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);
        if (hi < 0 || lo < 0 || (unsigned char)name[i] != (unsigned)(hi << 4 | lo))
            return false;
    }
    return true;
}

/* Whether TEXT is an error file about the original file NAME that no delivery marked yet. */
static bool open_failure_of(const char *text, const char *name)
{
    cJSON *o = cJSON_Parse(text);
    const cJSON *file = cJSON_GetObjectItemCaseSensitive(o, "file");
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(o, "file_hex");
    bool yes = cJSON_IsObject(o) && !cJSON_GetObjectItemCaseSensitive(o, "superseded_by") &&
               (cJSON_IsString(hex) ? hex_is(hex->valuestring, name)
                                    : cJSON_IsString(file) && !strcmp(file->valuestring, name));
    cJSON_Delete(o);
    return yes;
}

/*
 * Replaces PATH's content with TEXT durably (the temp file in TMPDIR, one of our own folders:
 * a kill leaves no temp name in the archive or failed folder) and gives it back ST's times.
 */
static int rewrite_keeping_time(const char *tmpdir, const char *path, const char *text,
                                const struct stat *st)
{
    struct timespec times[2] = {st->st_atim, st->st_mtim};
    int rc = pd_fs_replace_from(tmpdir, path, text, strlen(text), PD_FS_FILE_MODE);
    if (!rc && utimensat(AT_FDCWD, path, times, AT_SYMLINK_NOFOLLOW))
        rc = -errno;
    return rc;
}

struct copy {
    char name[NAME_MAX + 16]; /* the failed copy's name (under history/ for a retried one) */
    char *text;              /* its error file */
    struct stat st;          /* the error file's */
};

static bool later(const struct timespec *a, const struct timespec *b)
{
    return a->tv_sec != b->tv_sec ? a->tv_sec > b->tv_sec : a->tv_nsec > b->tv_nsec;
}

/*
 * The failed copies of NAME (BASE: its last part) in the failed folder FD whose error files no
 * delivery marked yet, added to *OUT, and in *NEWEST which of them failed last. The copies are
 * named as place() names a clash: NAME, then NAME.1.EXT ... A copy may be gone (retention, a
 * person) while later ones stay, so a few gaps are looked past. PREFIX goes before each name
 * found ("history/": the error files `patchdrop retry` kept of files it put back).
 */
static int find_copies(int fd, const char *prefix, const char *name, const char *base,
                       struct copy **out, size_t *count, size_t *newest)
{
    struct copy *copies = *out;
    size_t ncopies = *count;
    int rc = 0;

    if (fd < 0)
        return 0;

    for (unsigned k = 0, misses = 0; k < 100000 && misses < MISSES && ncopies < MAX_COPIES; k++) {
        char cand[NAME_MAX + 1], side[NAME_MAX + 32];
        struct stat st;
        char *etext = NULL;
        if (pd_fs_numbered_name(base, k, cand, sizeof(cand) - strlen(PD_RETENTION_ERROR)))
            break;
        snprintf(side, sizeof(side), "%s%s", cand, PD_RETENTION_ERROR);
        if (read_at(fd, side, &etext, &st)) {
            misses++;
            continue;
        }
        misses = 0;
        if (!open_failure_of(etext, name)) {
            free(etext);
            continue;
        }
        if (!copies && !(copies = calloc(MAX_COPIES, sizeof(*copies)))) {
            free(etext);
            rc = PD_ENOMEM;
            break;
        }
        snprintf(copies[ncopies].name, sizeof(copies[ncopies].name), "%s%s", prefix, cand);
        copies[ncopies].text = etext;
        copies[ncopies].st = st;
        if (ncopies == 0 || !later(&copies[*newest].st.st_mtim, &st.st_mtim))
            *newest = ncopies; /* the latest failure (of equal times, the higher number) */
        ncopies++;
    }
    *out = copies;
    *count = ncopies;
    return rc;
}

/* Names the failed copy COPY in the receipt of ARCHIVED, keeping the receipt's times. */
static int mark_receipt(const char *tmpdir, const char *archived, const char *copy)
{
    struct pd_jobstate_note note = {.key = "supersedes", .text = copy, .name = true};
    char *receipt = NULL, *rpath = NULL, *text = NULL;
    struct stat rst;
    int rc;

    if (asprintf(&rpath, "%s%s", archived, PD_RETENTION_RECEIPT) < 0)
        return PD_ENOMEM;
    rc = read_at(AT_FDCWD, rpath, &receipt, &rst);
    if (!rc && !(text = pd_jobstate_annotate(receipt, &note, 1)))
        rc = PD_EPARSE;
    else if (!rc && strcmp(text, receipt))
        rc = rewrite_keeping_time(tmpdir, rpath, text, &rst);
    free(receipt);
    free(rpath);
    free(text);
    return rc;
}

/* Marks the error file of failed copy C as superseded by ARCHIVED_NAME, with a log line. */
static int mark_copy(const char *watch, const char *failed_dir, const char *tmpdir,
                     const struct copy *c, const char *archived_name, uint64_t now_ms)
{
    struct pd_jobstate_note notes[] = {
        {.key = "superseded_by", .text = archived_name, .name = true},
        {.key = "superseded_at", .time_ms = now_ms},
    };
    char *marked = pd_jobstate_annotate(c->text, notes, 2), *epath = NULL, qw[256],
         qf[4 * NAME_MAX + 8], qa[4 * NAME_MAX + 8];
    int r = marked ? 0 : PD_EPARSE;

    if (!r && asprintf(&epath, "%s/%s%s", failed_dir, c->name, PD_RETENTION_ERROR) < 0) {
        epath = NULL;
        r = PD_ENOMEM;
    }
    if (!r)
        r = rewrite_keeping_time(tmpdir, epath, marked, &c->st);
    pd_log(r ? PD_LOG_ERROR : PD_LOG_INFO, "event=superseded watch=%s failed=%s archived=%s%s%s%s",
           pd_log_quote(watch ? watch : "", qw, sizeof(qw)), pd_log_quote(c->name, qf, sizeof(qf)),
           pd_log_quote(archived_name, qa, sizeof(qa)), r ? " reason=\"" : "",
           r ? pd_strerror(r) : "", r ? "\" action=\"the error file stays unmarked\"" : "");
    free(marked);
    free(epath);
    return r;
}

int pd_retention_supersede(const char *watch, const char *failed_dir, const char *tmpdir,
                           const char *name, const char *archived, uint64_t now_ms,
                           char **superseded)
{
    const char *slash = strrchr(name, '/');
    const char *aslash = strrchr(archived, '/');
    const char *archived_name = aslash ? aslash + 1 : archived;
    struct copy *copies = NULL;
    size_t ncopies = 0, newest = 0;
    int fd, rc;

    if (superseded)
        *superseded = NULL;
    if (!failed_dir)
        return 0;
    fd = open(failed_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    rc = find_copies(fd, "", name, slash ? slash + 1 : name, &copies, &ncopies, &newest);
    /* A file `patchdrop retry` put back: its failure's error file waits in history/. */
    int hfd = openat(fd, "history", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (!rc)
        rc = find_copies(hfd, "history/", name, slash ? slash + 1 : name, &copies, &ncopies,
                         &newest);
    if (hfd >= 0)
        close(hfd);
    /* The receipt first: it is what a reader of the archive opens. */
    if (!rc && ncopies && !(rc = mark_receipt(tmpdir, archived, copies[newest].name))) {
        for (size_t i = 0; i < ncopies; i++) {
            int r = mark_copy(watch, failed_dir, tmpdir, &copies[i], archived_name, now_ms);
            if (r && !rc)
                rc = r;
        }
        if (superseded && !(*superseded = strdup(copies[newest].name)))
            rc = rc ? rc : PD_ENOMEM;
    }
    for (size_t i = 0; i < ncopies; i++)
        free(copies[i].text);
    free(copies);
    close(fd);
    return rc;
}
