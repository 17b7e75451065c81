/*
 * A watch's folders set up and checked at every start and, for a disabled watch, every rescan
 * period (docs/architecture.md, "Trust boundary"); the same checks for `check-config`.
 */
#include "daemon_internal.h"

#include "pd_commit.h"
#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_log.h"
#include "pd_metrics.h"
#include "pd_zone.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Checks one of the watch's own folders, creating it if need be. */
static int own_dir(const char *path, bool private_, bool required, char **why)
{
    struct stat st;
    /* An archive or failed folder that cannot be made now (a read-only or full disk) is not a
     * reason to stop the watch: finished files wait in work/ until it can. */
    if (!required && lstat(path, &st) && pd_fs_mkdirs(path, 0750))
        return 0;
    return pd_zone_own_dir(path, private_ ? 0700 : 0750, private_, why);
}

/*
 * Sets up a watch's folders (docs/architecture.md, "Trust boundary"): opens the drop folder,
 * checks that every folder patchdrop keeps is its own and nobody else's, and moves files an
 * older patchdrop left in <drop>/.patchdrop/work into the new work/ (only when that folder is
 * provably patchdrop's own).
 */
static int watch_setup(struct dwatch *w, char **why)
{
    const struct pd_watch *wc = w->cfg;
    char qb[PATH_MAX + 16];
    struct stat drop, mine;
    int rc, fd = pd_zone_open_root(wc->path);

    if (fd < 0) {
        if (asprintf(why,
                     "cannot open the drop folder %s: %s; patchdrop's user (uid %u) needs "
                     "read and search permission on it",
                     wc->path, pd_strerror(fd), (unsigned)geteuid()) < 0)
            *why = NULL;
        return fd;
    }
    if (access(wc->path, W_OK | X_OK)) {
        rc = -errno;
        if (asprintf(why,
                     "patchdrop's user (uid %u) cannot take files out of %s (%s): it "
                     "needs write permission on the folder, e.g. setfacl -m u:%u:rwx %s",
                     (unsigned)geteuid(), wc->path, pd_strerror(rc), (unsigned)geteuid(),
                     wc->path) < 0)
            *why = NULL;
        close(fd);
        return rc;
    }
    if ((rc = own_dir(wc->work_dir, true, true, why)) ||
        (rc = own_dir(w->work_dir, true, true, why)) ||
        (rc = own_dir(w->state_dir, true, true, why)) ||
        (rc = own_dir(wc->archive_dir, false, false, why)) ||
        (rc = own_dir(wc->failed_dir, false, false, why))) {
        close(fd);
        return rc;
    }
    if (fstat(fd, &drop) == 0 && stat(w->work_dir, &mine) == 0 && drop.st_dev != mine.st_dev)
        pd_log(PD_LOG_WARN,
               "event=setup watch=%s folder=%s reason=\"work_dir is on another file system "
               "than the drop folder: every claim copies the file instead of renaming it\" "
               "action=\"set work_dir to a folder on the drop folder's file system\"",
               wc->name, dw_q(wc->work_dir, qb, sizeof(qb)));
    unsigned moved = 0;
    char *mwhy = NULL;
    rc = pd_zone_migrate(fd, w->work_dir, w->state_dir, &moved, &mwhy);
    if (moved || rc)
        pd_log(rc ? PD_LOG_ERROR : PD_LOG_INFO,
               "event=migrated watch=%s files=%u to=%s reason=\"%s\"", wc->name, moved,
               dw_q(w->work_dir, qb, sizeof(qb)),
               rc ? pd_strerror(rc)
                  : "files an older patchdrop left in .patchdrop/work are "
                    "resumed from patchdrop's own folder");
    else if (mwhy)
        pd_log(PD_LOG_WARN,
               "event=legacy_ignored watch=%s reason=\"%s\" action=\"left alone: nothing in "
               "it is read, sent or moved\"",
               wc->name, mwhy);
    free(mwhy);
    if (w->root_fd >= 0)
        close(w->root_fd);
    w->root_fd = fd;
    return 0;
}

int pd_daemon_preflight(const struct pd_config *cfg, char **why)
{
    int rc = pd_zone_own_dir(cfg->state.dir, 0700, true, why);
    for (size_t i = 0; !rc && i < cfg->nwatches; i++) {
        const struct pd_watch *wc = &cfg->watches[i];
        char *work = dw_join(wc->work_dir, "work"), *state = dw_join(wc->work_dir, "state");
        int fd = pd_zone_open_root(wc->path);
        if (fd < 0) {
            rc = fd;
            if (asprintf(why, "[watch:%s]: cannot open the drop folder %s: %s", wc->name, wc->path,
                         pd_strerror(fd)) < 0)
                *why = NULL;
        } else {
            close(fd);
            if (!work || !state)
                rc = PD_ENOMEM;
            else if (!(rc = own_dir(wc->work_dir, true, true, why)) &&
                     !(rc = own_dir(work, true, true, why)) &&
                     !(rc = own_dir(state, true, true, why)) &&
                     !(rc = own_dir(wc->archive_dir, false, false, why)))
                rc = own_dir(wc->failed_dir, false, false, why);
        }
        free(work);
        free(state);
    }
    return rc;
}

/* Starts watching a watch whose folders are set up (at start, or once they can be). */
void dw_watch_begin(struct dwatch *w)
{
    if (w->disabled || !w->d->started || w->watching)
        return;
    w->watching = true;
    dw_resume_orphans(w, true);
    pd_watcher_start(w->watcher);
}

/*
 * One watch whose folders cannot be set up is disabled, never the others: said once per
 * reason, shown in the metrics and /healthz, and tried again every rescan period.
 */
void dw_watch_try_setup(struct dwatch *w)
{
    char *why = NULL;
    int rc = watch_setup(w, &why);

    w->setup_due = dw_now_ms(w->d) + w->cfg->rescan_ms;
    if (rc == 0) {
        if (w->disabled)
            pd_log(PD_LOG_INFO, "event=watch_enabled watch=%s", w->cfg->name);
        w->disabled = false;
        free(w->disabled_why);
        w->disabled_why = NULL;
        free(why);
        pd_metrics_watch_state(w->d->opts.metrics, w->cfg->name, NULL);
        dw_watch_begin(w);
        return;
    }
    if (!why && asprintf(&why, "%s", pd_strerror(rc)) < 0)
        why = NULL;
    if (!w->disabled || !w->disabled_why || !why || strcmp(why, w->disabled_why))
        pd_log(PD_LOG_ERROR,
               "event=watch_disabled watch=%s reason=\"%s\" action=\"the other watches go on; "
               "this one is tried again every %" PRIu64 " s\"",
               w->cfg->name, why ? why : "", (w->cfg->rescan_ms + 999) / 1000);
    w->disabled = true;
    free(w->disabled_why);
    w->disabled_why = why;
    pd_metrics_watch_state(w->d->opts.metrics, w->cfg->name, why ? why : "cannot be set up");
}

/* The group commit (pd_commit.h): from now on the durable steps of all files share rounds. */
void dw_commit_begin(struct pd_daemon *d)
{
    if (d->cfg->state.group_commit && pd_commit_create(NULL, &d->commit) == 0)
        pd_fs_group_commit(d->commit);
}

void dw_commit_end(struct pd_daemon *d)
{
    if (!d->commit)
        return;
    pd_fs_group_commit(NULL);
    pd_commit_destroy(&d->commit);
}
