/*
 * How a file comes in (loop thread): the watcher's events and the checks that find a candidate
 * ready, the claim that renames it into work/ (the trust boundary, docs/architecture.md), the
 * files a stopped or crashed daemon left in work/, and the sweeps of patchdrop's own folders.
 */
#include "daemon_internal.h"

#include "pd_error.h"
#include "pd_judge.h"
#include "pd_fsutil.h"
#include "pd_log.h"
#include "pd_metrics.h"
#include "pd_zone.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- noticing and readiness (loop thread) ------------------------------------------------ */

/* Looks at one candidate now: gone, not a file, still settling, or ready. */
void cand_check(struct dwatch *w, struct cand *c, uint64_t now)
{
    char qb[PATH_MAX + 16];
    struct stat st;
    int rc;

    c->due_ms = NEVER;
    if (w->root_fd < 0)
        return;
    if ((rc = pd_zone_stat(w->root_fd, c->name, &st))) {
        /* Gone, or reached only through a symlink: either way nothing of the drop folder. */
        if (rc == -ENOENT || rc == -ENOTDIR || rc == -ELOOP || rc == -EXDEV)
            cand_remove(w, c);
        return;
    }
    if (!S_ISREG(st.st_mode)) {
        if (!c->warned)
            pd_log(PD_LOG_WARN,
                   "event=ignored watch=%s file=%s reason=\"%s: patchdrop only sends regular "
                   "files and never follows links\"",
                   w->cfg->name, dw_q(c->name, qb, sizeof(qb)), pd_judge_kind(st.st_mode));
        c->warned = true;
        return;
    }
    c->warned = false;
    struct pd_ready_obs before = c->obs;
    uint64_t wait = pd_ready_observe(&w->rules, &c->obs, &st, now, dw_wall_ms(w->d));
    if (wait) {
        cand_due(w, c, now + wait);
        return;
    }
    /* Seen new or changed at this very look (the event of its creation, its first write): look
     * once more at the next wake, however short settle is, so a file is never taken in the
     * moment between its creation and its writer's first bytes. */
    if (!before.seen || before.size != c->obs.size || before.mtime_ns != c->obs.mtime_ns ||
        before.ino != c->obs.ino) {
        cand_due(w, c, now);
        return;
    }
    if (w->rules.done_marker) {
        char marker[NAME_MAX + 1], mrel[PATH_MAX];
        const char *slash = strrchr(c->name, '/');
        const char *base = slash ? slash + 1 : c->name;
        struct stat mst;
        if (!pd_ready_marker_name(&w->rules, base, marker, sizeof(marker)))
            return;
        snprintf(mrel, sizeof(mrel), "%.*s%s", slash ? (int)(slash - c->name + 1) : 0, c->name,
                 marker);
        if (pd_zone_stat(w->root_fd, mrel, &mst))
            return; /* the marker's arrival is an event (or the next rescan) */
    }
    if (dw_heap_push(w, c) == 0)
        dw_dispatch(w->d);
}

/* The candidate whose done marker NAME is, if NAME is a marker. */
static struct cand *marker_owner(struct dwatch *w, const char *name)
{
    const char *t = w->rules.done_marker, *hole;
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    char owner[PATH_MAX];
    size_t pre, post, len = strlen(base);

    if (!t || !(hole = strstr(t, "{name}")))
        return NULL;
    pre = (size_t)(hole - t);
    post = strlen(hole + 6);
    if (len <= pre + post || strncmp(base, t, pre) || strcmp(base + len - post, hole + 6))
        return NULL;
    snprintf(owner, sizeof(owner), "%.*s%.*s", slash ? (int)(slash - name + 1) : 0, name,
             (int)(len - pre - post), base + pre);
    return cand_find(w, owner);
}

/*
 * Opens the drop folder again when its path now names another folder (deleted and made
 * again): names are resolved beneath the descriptor, never through the path.
 */
static void root_refresh(struct dwatch *w)
{
    struct stat now, held;
    if (w->root_fd >= 0 && stat(w->cfg->path, &now) == 0 && fstat(w->root_fd, &held) == 0 &&
        now.st_ino == held.st_ino && now.st_dev == held.st_dev)
        return;
    int fd = pd_zone_open_root(w->cfg->path);
    if (fd < 0)
        return;
    if (w->root_fd >= 0)
        close(w->root_fd);
    w->root_fd = fd;
}

void dw_on_watch_event(void *arg, enum pd_watch_event ev, const char *name)
{
    struct dwatch *w = arg;
    struct pd_daemon *d = w->d;

    if (d->stopping)
        return;
    if (ev == PD_WATCH_ERROR) {
        pd_log(PD_LOG_ERROR, "event=folder_error watch=%s reason=\"%s\"", w->cfg->name, name);
        w->scanned = true; /* nothing to wait for in --once */
        if (d->opts.once && dw_is_once_idle(d))
            pd_daemon_stop(d, 0);
        return;
    }
    if (ev == PD_WATCH_SKIPPED) {
        /* Names too long to reach (deeper than PATH_MAX): said once per scan, never silent. */
        pd_log(PD_LOG_WARN,
               "event=skipped watch=%s reason=\"%s\" action=\"not sent; move the files to a "
               "shorter path\"",
               w->cfg->name, name);
        d->sum.skipped++;
        return;
    }
    if (ev != PD_WATCH_SEEN && ev != PD_WATCH_SCAN_DONE)
        return; /* an event this daemon does not know: nothing to deliver */
    if (ev == PD_WATCH_SCAN_DONE) {
        /* Names not seen by this scan are gone; forget them (unless queued for a claim). */
        for (size_t i = 0; i < w->nbuckets; i++) {
            for (struct cand *c = w->buckets[i], *next; c; c = next) {
                next = c->next;
                if (c->gen != w->gen && !c->queued)
                    cand_remove(w, c);
            }
        }
        w->gen++;
        w->scanned = true;
        root_refresh(w);
        dw_resume_orphans(w, true);
        dw_dispatch(d);
        return;
    }
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    if (!pd_ready_name_wanted(&w->rules, base)) {
        struct cand *owner = marker_owner(w, name);
        if (owner && !owner->queued)
            cand_due(w, owner, 0);
        return;
    }
    struct cand *c = cand_find(w, name);
    if (!c && !(c = cand_add(w, name)))
        return;
    c->gen = w->gen;
    /* Written, closed, renamed or its mode changed: looked at now, so settle counts from the
     * last change an event told of, not from a look that found it still being written. */
    if (!c->queued)
        cand_due(w, c, 0);
}

/* ---- claim, resume orphans, sweeps --------------------------------------------------- */

static bool job_holds(struct dwatch *w, const char *work_name)
{
    for (struct job *j = w->d->jobs; j; j = j->next) {
        if (j->w != w)
            continue;
        const char *n = strrchr(j->work_path, '/') + 1;
        if (!strcmp(n, work_name))
            return true;
    }
    return false;
}

/*
 * Removes delivery records whose file has left work/ (a crash between the final move and the
 * record's removal) and temp files a crash left half written.
 */
/*
 * Removes temp files (PD_FS_TEMP_PREFIX + six characters) that a crash left in one of
 * patchdrop's own folders once they are a minute old. Never run on an archive or failed folder:
 * a partner's file there may have any name.
 */
static bool is_temp_name(const char *name)
{
    size_t n = strlen(PD_FS_TEMP_PREFIX);
    return !strncmp(name, PD_FS_TEMP_PREFIX, n) && strlen(name) == n + 6;
}

/* Removes our temp files in PATH left by a crash (a minute old or more). */
void dw_sweep_temps(struct pd_daemon *d, const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *de;
    time_t now = (time_t)(dw_wall_ms(d) / 1000);

    if (!dir)
        return;
    while ((de = readdir(dir))) {
        struct stat st;
        if (!is_temp_name(de->d_name) || pd_fs_temp_live(de->d_name))
            continue; /* not a temp, or one of ours being written now */
        /* A writer links or renames its temp within moments; an old one is a crash's. */
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
            now - st.st_mtime > 60)
            unlinkat(dirfd(dir), de->d_name, 0);
    }
    closedir(dir);
}

static void sweep_state_dir(struct dwatch *w)
{
    DIR *dir = opendir(w->state_dir);
    struct dirent *de;

    dw_sweep_temps(w->d, w->state_dir);
    dw_sweep_temps(w->d, w->work_dir);
    if (!dir)
        return;
    while ((de = readdir(dir))) {
        char work[PATH_MAX];
        struct stat st;
        size_t n = strlen(de->d_name);
        if (is_temp_name(de->d_name))
            continue;
        if (n < 6 || strcmp(de->d_name + n - 5, ".json"))
            continue;
        if ((size_t)snprintf(work, sizeof(work), "%s/%.*s", w->work_dir, (int)(n - 5),
                             de->d_name) >= sizeof(work))
            continue;
        if (lstat(work, &st) && errno == ENOENT)
            unlinkat(dirfd(dir), de->d_name, 0);
    }
    closedir(dir);
}

/*
 * Something in work/ that is not a file (patchdrop only ever renames files there; a person
 * put it there) is never opened or retried: one line says what it is and what to do.
 */
static void odd_item(struct dwatch *w, const char *name, mode_t mode)
{
    char qb[PATH_MAX + 16], qd[PATH_MAX + 16];
    for (size_t i = 0; i < w->nodd; i++)
        if (!strcmp(w->odd[i], name))
            return;
    char **grown = realloc(w->odd, (w->nodd + 1) * sizeof(*grown));
    if (!grown)
        return;
    w->odd = grown;
    if (!(w->odd[w->nodd] = strdup(name)))
        return;
    w->nodd++;
    pd_log(PD_LOG_ERROR,
           "event=ignored watch=%s file=%s folder=%s reason=\"%s in patchdrop's work folder\" "
           "action=\"never opened or retried; remove it\"",
           w->cfg->name, dw_q(name, qb, sizeof(qb)), dw_q(w->work_dir, qd, sizeof(qd)),
           pd_judge_kind(mode));
}

static bool orphan_tried(const struct dwatch *w, const char *name)
{
    for (size_t i = 0; i < w->norphans_tried; i++)
        if (!strcmp(w->orphans_tried[i], name))
            return true;
    return false;
}

static void orphans_forget(struct dwatch *w)
{
    for (size_t i = 0; i < w->norphans_tried; i++)
        free(w->orphans_tried[i]);
    free(w->orphans_tried);
    w->orphans_tried = NULL;
    w->norphans_tried = 0;
}

/* Whether the watch may start one more job now (the daemon's and the watch's slots). */
static bool slot_free(const struct dwatch *w)
{
    const struct pd_daemon *d = w->d;
    return !d->stopping && d->active < d->max_active && w->active < w->max_jobs &&
           !(w->cfg->ordered && w->active);
}

/*
 * Picks up files left in work/ by a stopped or crashed daemon (ours or another's), as many as
 * there are free slots: each holds one, as a claim does, so no more chunks are acknowledged and
 * not yet recorded at a kill than while running (at most one per slot). NEW_ROUND (a scan)
 * looks at every file again; otherwise only at those not tried since the last scan.
 */
void dw_resume_orphans(struct dwatch *w, bool new_round)
{
    if (new_round) {
        orphans_forget(w);
        sweep_state_dir(w);
    }
    w->orphans_left = false;
    DIR *dir = opendir(w->work_dir);
    struct dirent *de;
    if (!dir)
        return;
    while ((de = readdir(dir))) {
        struct stat st;
        /* Every name a partner can give a file is resumed; only our own temp files are not. */
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || is_temp_name(de->d_name))
            continue;
        if (job_holds(w, de->d_name) || orphan_tried(w, de->d_name))
            continue;
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
            continue;
        if (!S_ISREG(st.st_mode)) {
            odd_item(w, de->d_name, st.st_mode);
            continue;
        }
        if (!slot_free(w)) {
            w->orphans_left = true; /* resumed when a slot frees (dw_dispatch) */
            break;
        }
        char **grown = realloc(w->orphans_tried, (w->norphans_tried + 1) * sizeof(*grown));
        if (!grown)
            break;
        w->orphans_tried = grown;
        if (!(w->orphans_tried[w->norphans_tried] = strdup(de->d_name)))
            break;
        w->norphans_tried++;
        struct job *j = job_new(w, de->d_name, NULL, true);
        if (!j)
            break;
        j->counted = true;
        w->d->active++;
        w->active++;
        job_set(j, STEP_PREPARE);
        job_run(j, work_prepare);
    }
    closedir(dir);
}

void dw_orphans_free(struct dwatch *w)
{
    orphans_forget(w);
}

/* Says once per candidate why it stays in the drop folder, and looks again at the next rescan. */
static void leave_in_place(struct dwatch *w, struct cand *c, bool *said, const char *event,
                           const char *why, const char *action)
{
    char qb[PATH_MAX + 16];
    if (!*said)
        pd_log(PD_LOG_ERROR, "event=%s watch=%s file=%s reason=\"%s\" action=\"%s\"", event,
               w->cfg->name, dw_q(c->name, qb, sizeof(qb)), why, action);
    if (w->d->opts.once) {
        /* --once does not wait for a person: the file counts as not delivered (exit 1). */
        if (!*said)
            w->d->sum.stuck++;
        *said = true;
        c->due_ms = NEVER;
        return;
    }
    *said = true;
    cand_due(w, c, dw_now_ms(w->d) + w->cfg->rescan_ms);
}

/*
 * Renames C (checked as ST) into work/ under a free name, put in WORK_NAME (LEN bytes).
 * Returns 0 or what pd_zone_claim() said.
 */
static int claim_rename(struct dwatch *w, struct cand *c, struct stat *st, char *work_name,
                        size_t len)
{
    const char *slash = strrchr(c->name, '/');
    const char *base = slash ? slash + 1 : c->name;
    char to[PATH_MAX], qb[PATH_MAX + 16];
    int rc;

    /* A partner's file may be named like patchdrop's own temp files (.pdtmp-XXXXXX): in work/
     * it takes a numbered name, so that it is never swept or skipped as one. */
    for (unsigned start = is_temp_name(base) ? 1 : 0, remade = 0;; start++) {
        rc = pd_fs_unique_name(w->work_dir, base, NULL, start, work_name, len - 8);
        if (rc)
            break;
        snprintf(to, sizeof(to), "%s/%s", w->work_dir, work_name);
        unsigned flags = (w->cfg->allow_hard_links ? PD_ZONE_ALLOW_LINKS : 0) |
                         (w->d->lease && !w->no_lease ? PD_ZONE_LEASE : 0);
        rc = pd_zone_claim(w->root_fd, c->name, st, flags, to, NULL);
        if (rc == -ENOLCK) {
            /* No leases on this file system (NFS, FUSE): settle alone judges, said once. */
            pd_log(PD_LOG_WARN,
                   "event=lease_unavailable watch=%s reason=\"the file system of %s takes no "
                   "leases\" action=\"a file still open for writing is judged by settle "
                   "alone; make uploads rename a finished temp file, or use done_marker\"",
                   w->cfg->name, dw_q(w->cfg->path, qb, sizeof(qb)));
            w->no_lease = true;
            start--;
            continue;
        }
        if (rc == -ENOENT && !remade++ && pd_zone_stat(w->root_fd, c->name, st) == 0) {
            /* The file is there, so our folder is not (removed by hand): make it again. */
            char *why = NULL;
            if (pd_zone_own_dir(w->work_dir, 0700, true, &why) == 0 &&
                pd_zone_own_dir(w->state_dir, 0700, true, &why) == 0) {
                start--;
                continue;
            }
            free(why);
        }
        if (rc != -EEXIST)
            break;
    }
    return rc;
}

/*
 * Claims one ready candidate by renaming it into work/, then starts its job. The name is
 * resolved beneath the drop folder's descriptor and the file checked again through its own
 * descriptor, so a partner swapping a folder or the file for a symlink gains nothing.
 */
void dw_claim(struct dwatch *w, struct cand *c)
{
    char work_name[NAME_MAX + 1], qb[PATH_MAX + 16];
    struct stat st;
    int rc;

    /* Changed since it was found ready? Then it was not done after all. */
    if (w->root_fd < 0 || pd_zone_stat(w->root_fd, c->name, &st) || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != c->obs.size || (uint64_t)st.st_ino != c->obs.ino ||
        (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != c->obs.mtime_ns) {
        cand_due(w, c, 0);
        return;
    }
    rc = claim_rename(w, c, &st, work_name, sizeof(work_name));
    if (rc == -EBUSY) {
        /* A writer still holds it open (a stalled upload): not done, whatever settle says. */
        if (!c->busy_said)
            pd_log(PD_LOG_INFO,
                   "event=still_open watch=%s file=%s reason=\"a process still has the file "
                   "open for writing\" action=\"claimed once the writer closes it\"",
                   w->cfg->name, dw_q(c->name, qb, sizeof(qb)));
        c->busy_said = true;
        cand_due(w, c, dw_now_ms(w->d) + (w->cfg->settle_ms > 500 ? w->cfg->settle_ms : 500));
        return;
    }
    if (rc == -EACCES || rc == -EPERM) {
        /* A file we may not read stays where it is, with one clear line, until its mode is
         * fixed: claiming it would only move the problem out of the user's sight. */
        leave_in_place(w, c, &c->unreadable, "unreadable", strerror(-rc),
                       "left in place; give patchdrop's user read permission and it is sent at "
                       "the next rescan");
        return;
    }
    if (rc == -EMLINK) {
        leave_in_place(w, c, &c->linked, "refused",
                       "the file has other names (hard links), and one may be a file the "
                       "sender could not read",
                       "left untouched; drop a copy instead of a link, or set "
                       "allow_hard_links = yes for this watch");
        return;
    }
    c->unreadable = c->linked = false;
    if (rc == -EAGAIN) {
        cand_due(w, c, 0); /* changed, or swapped for something else: look again */
        return;
    }
    if (rc == -ENOENT) {
        cand_remove(w, c); /* another daemon claimed it first */
        return;
    }
    if (rc) {
        pd_log(PD_LOG_ERROR,
               "event=claim_failed watch=%s file=%s reason=\"%s\" action=\"left in place, "
               "tried again at the next rescan\"",
               w->cfg->name, dw_q(c->name, qb, sizeof(qb)), pd_strerror(rc));
        cand_due(w, c, dw_now_ms(w->d) + w->cfg->rescan_ms);
        return;
    }
    recent_check(w, c->name);
    pd_log(PD_LOG_INFO, "event=claimed watch=%s file=%s bytes=%" PRIu64, w->cfg->name,
           dw_q(c->name, qb, sizeof(qb)), c->obs.size);
    pd_metrics_file_event(w->d->opts.metrics, w->cfg->name, PD_METRICS_CLAIMED, c->obs.size);
    struct job *j = job_new(w, work_name, c->name, false);
    cand_remove(w, c);
    if (!j)
        return; /* stays in work/: resumed at the next rescan */
    j->counted = true;
    w->d->active++;
    w->active++;
    job_set(j, STEP_PREPARE);
    job_run(j, work_prepare);
}
