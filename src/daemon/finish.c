/*
 * The end of a job: the file placed in its archive or failed folder beside its receipt or
 * error file (thread pool), its done marker removed, and the outcome reported (loop thread).
 */
#include "daemon_internal.h"

#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_log.h"
#include "pd_lookup.h"
#include "pd_metrics.h"
#include "pd_retention.h"
#include "pd_zone.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Our own sidecar left by a crash between writing it and moving the file (its text names this
 * claim): the move is finished under that name. 0 when done (or the directory sync's code), 1
 * when there is none and a new name is to be found.
 */
static int place_leftover(const struct dw_place *pl, const char *base, char **final)
{
    char name[NAME_MAX + 1], *side = NULL, *dest = NULL;

    for (unsigned k = 0; k < 100000; k++) {
        char *text_there = NULL;
        struct stat st;
        bool ours;
        if (pd_fs_numbered_name(base, k, name, sizeof(name) - strlen(pl->sidecar)))
            break;
        dest = dw_join(pl->dir, name);
        if (!dest || asprintf(&side, "%s%s", dest, pl->sidecar) < 0) {
            side = NULL;
            break;
        }
        bool dest_there = lstat(dest, &st) == 0;
        if (!dest_there && lstat(side, &st) != 0)
            break; /* the first free name: no leftover of ours beyond it */
        ours = !dest_there && pd_fs_read_all(side, 1 << 20, &text_there, NULL) == 0 &&
               strstr(text_there, pl->claim_id) != NULL;
        free(text_there);
        if (ours && pd_fs_rename_noreplace(pl->from, dest) == 0) {
            free(side);
            free(*final);
            *final = dest;
            return pd_fs_fsync_dir(pl->dir);
        }
        free(side);
        free(dest);
        side = dest = NULL;
    }
    free(side);
    free(dest);
    return 1;
}

int dw_place(const struct dw_place *pl, char **final)
{
    const char *slash = strrchr(pl->name, '/');
    const char *base = slash ? slash + 1 : pl->name;
    const char *dir = pl->dir, *sidecar = pl->sidecar;
    char name[NAME_MAX + 1], *side = NULL, *dest = NULL;
    int rc;

    /* Made at setup; made again only when gone (a mkdir per file costs a syscall per level). */
    struct stat st;
    if (stat(dir, &st) && (rc = pd_fs_mkdirs(dir, 0750)))
        return rc;
    /* A crash between writing the sidecar and moving the file leaves our own sidecar behind:
     * finish that move instead of starting a second name. */
    if (pl->claim_id && (rc = place_leftover(pl, base, final)) != 1)
        return rc;
    for (unsigned start = 0;; start++) {
        rc = pd_fs_unique_name(dir, base, sidecar, start, name, sizeof(name) - strlen(sidecar));
        if (rc)
            return rc;
        free(side);
        free(dest);
        dest = dw_join(dir, name);
        if (!dest || asprintf(&side, "%s%s", dest, sidecar) < 0) {
            side = NULL;
            rc = PD_ENOMEM;
            break;
        }
        rc = pd_fs_create_durable(side, pl->text, strlen(pl->text), PD_FS_FILE_MODE);
        if (rc == -EEXIST)
            continue; /* another daemon took the name just now */
        if (rc)
            break;
        pd_crashpoint("receipt_written");
        rc = pd_fs_rename_noreplace(pl->from, dest);
        if (rc == -EEXIST) {
            unlink(side);
            continue;
        }
        if (rc) {
            unlink(side);
            break;
        }
        rc = pd_fs_fsync_dir(dir);
        break;
    }
    if (!rc) {
        free(*final);
        *final = dest;
        dest = NULL;
    }
    free(side);
    free(dest);
    return rc;
}

/* The work file into DIR beside its sidecar TEXT (dw_place). */
static int place(struct job *j, const char *dir, const char *sidecar, const char *text)
{
    struct dw_place pl = {.from = j->work_path,
                          .dir = dir,
                          .name = j->js.name,
                          .claim_id = j->js.claim_id,
                          .sidecar = sidecar,
                          .text = text};
    return dw_place(&pl, &j->final_path);
}

static void remove_marker(struct job *j)
{
    const char *slash = strrchr(j->js.name, '/');
    const char *base = slash ? slash + 1 : j->js.name;
    char marker[NAME_MAX + 1], rel[PATH_MAX];

    if (!pd_ready_marker_name(&j->w->rules, base, marker, sizeof(marker)))
        return;
    snprintf(rel, sizeof(rel), "%.*s%s", slash ? (int)(slash - j->js.name + 1) : 0, j->js.name,
             marker);
    /* A thread-pool step: its own descriptor of the drop folder, not the loop's. */
    int root = pd_zone_open_root(j->w->cfg->path);
    if (root >= 0) {
        pd_zone_unlink(root, rel);
        close(root);
    }
}

/*
 * Someone wrote to the file in work/ while it was being sent: what arrived may not be what would
 * be archived. True, with the job failed and saying so, instead of a receipt that does not match
 * the file.
 */
static bool changed_meanwhile(struct job *j)
{
    struct stat st;

    if (j->js.duplicate_of || j->fd < 0)
        return false;
    bool have = fstat(j->fd, &st) == 0;
    if (have && ((uint64_t)st.st_size != j->js.size ||
                 (j->js.mtime_ns && (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec !=
                                        j->js.mtime_ns))) {
        job_fail(j,
                 "the file changed while it was being delivered (%" PRIu64 " bytes when "
                 "claimed, %lld now); %zu chunk(s) were delivered from the file as it was; "
                 "check the flow runs in Patchworks and drop a complete file again",
                 j->js.size, (long long)st.st_size, j->js.nchunks);
        return true;
    }
    /* Same size and mtime is not the same content (a writer may set both back): a file small
     * enough to read again cheaply is compared with what was claimed, byte for byte, unless its
     * ctime, which every write moves and no writer can set, is still what it was when this job
     * opened and hashed it (a resumed job's hash is older than that). */
    if (have && !j->resume && j->ctime_ns &&
        (int64_t)st.st_ctim.tv_sec * 1000000000 + st.st_ctim.tv_nsec == j->ctime_ns)
        return false;
    char again[65];
    bool blank = false;
    if (j->js.sha256 && j->js.size < REHASH_MAX && dw_sha256_file(j->fd, again, &blank) == 0 &&
        strcmp(again, j->js.sha256)) {
        job_fail(j,
                 "the file changed while it was being delivered (same size, other content "
                 "than when it was claimed); %zu chunk(s) were delivered from the file as it "
                 "was; check the flow runs in Patchworks and drop a complete file again",
                 j->js.nchunks);
        return true;
    }
    return false;
}

/* The receipt, or the error file, with a lookup sync's result when there is one. */
static char *finish_text(struct job *j, bool failed)
{
    char *text = failed ? pd_jobstate_error_report(&j->js, &j->js.fail, dw_wall_ms(j->d))
                        : follow_receipt_start(j, pd_jobstate_receipt(&j->js, dw_wall_ms(j->d)));
    if (text && j->lookup_json) {
        char *merged = pd_lookup_receipt(text, j->lookup_json);
        free(text);
        text = merged;
    }
    return text;
}

void work_finish(uv_work_t *wk)
{
    struct job *j = wk->data;
    bool failed = j->step == STEP_FINISH_FAIL;
    char *text;
    int rc;

    if (!failed && changed_meanwhile(j)) {
        job_set(j, STEP_FINISH_FAIL);
        failed = true;
    }
    if (failed && !j->fail_saved && j->js.fail.reason) {
        /* Record the verdict first: after a crash the file goes to the failed folder, it is
         * not sent again. */
        if (j->js.claim_id && (rc = pd_jobstate_save(&j->js, j->state_path))) {
            job_park(j, "save the delivery record", rc);
            return;
        }
        j->fail_saved = true;
    }
    if (!(text = finish_text(j, failed))) {
        job_park(j, "write the receipt", PD_ENOMEM);
        return;
    }
    if (!failed)
        follow_records(j);
    rc = place(j, failed ? j->w->cfg->failed_dir : j->w->cfg->archive_dir,
               failed ? ".error.json" : ".receipt.json", text);
    free(text);
    if (rc) {
        job_park(j,
                 failed ? "move the file to the failed folder"
                        : "move the file to the archive folder",
                 rc);
        return;
    }
    remove_marker(j);
    if (!failed) /* a failed copy of the same file: the receipt and its error file say so */
        pd_retention_supersede(j->w->cfg->name, j->w->cfg->failed_dir, j->w->state_dir, j->js.name,
                               j->final_path, dw_wall_ms(j->d), NULL);
    if (!failed && j->w->cfg->dedupe_ms && !j->js.duplicate_of)
        dedupe_record(j);
    /* The file is safe in its new home (place() synced the move): its record may go, with no
     * sync of its own: a record whose file has left work/ is swept at the next start. */
    pd_crashpoint("archived");
    unlink(j->state_path);
    j->after = AFTER_DONE;
}

void job_report(struct job *j, bool ok)
{
    struct pd_daemon *d = j->d;
    char qb[PATH_MAX + 16], qp[PATH_MAX + 16], qr[2048];

    if (ok && j->js.duplicate_of) {
        d->sum.duplicates++;
        pd_log(PD_LOG_INFO, "event=duplicate watch=%s file=%s archived=%s duplicate_of=%s",
               j->w->cfg->name, dw_q(j->js.name, qb, sizeof(qb)),
               dw_q(j->final_path, qp, sizeof(qp)), dw_q(j->js.duplicate_of, qr, sizeof(qr)));
        if (d->opts.report)
            fprintf(d->opts.report, "%s: duplicate of %s, not sent; archived as %s\n", j->js.name,
                    j->js.duplicate_of, j->final_path);
    } else if (ok && j->lookup_words) {
        d->sum.delivered++;
        pd_log(PD_LOG_INFO,
               "event=lookup_synced watch=%s file=%s lookup_id=%s archived=%s "
               "result=%s",
               j->w->cfg->name, dw_q(j->js.name, qb, sizeof(qb)), j->w->cfg->lookup_id,
               dw_q(j->final_path, qp, sizeof(qp)), dw_q(j->lookup_words, qr, sizeof(qr)));
        if (d->opts.report)
            fprintf(d->opts.report, "%s: synced into lookup %s: %s; archived as %s\n", j->js.name,
                    j->w->cfg->lookup_id, j->lookup_words, j->final_path);
    } else if (ok) {
        d->sum.delivered++;
        recent_add(j->w, j->js.name);
        pd_log(PD_LOG_INFO,
               "event=delivered watch=%s file=%s chunks=%zu bytes=%" PRIu64 " archived=%s",
               j->w->cfg->name, dw_q(j->js.name, qb, sizeof(qb)), j->js.nchunks, j->js.size,
               dw_q(j->final_path, qp, sizeof(qp)));
        if (d->opts.report)
            fprintf(d->opts.report, "%s: delivered in %zu chunk(s); archived as %s\n", j->js.name,
                    j->js.nchunks, j->final_path);
    } else {
        d->sum.rejected++;
        char status[32] = ""; /* none when nothing was sent: the file was refused here */
        if (j->js.fail.status)
            snprintf(status, sizeof(status), " status=%ld", j->js.fail.status);
        pd_log(PD_LOG_ERROR, "event=rejected watch=%s file=%s%s moved=%s reason=%s",
               j->w->cfg->name, dw_q(j->js.name, qb, sizeof(qb)), status,
               dw_q(j->final_path, qp, sizeof(qp)), dw_q(j->js.fail.reason, qr, sizeof(qr)));
        if (d->opts.report)
            fprintf(d->opts.report, "%s: FAILED: %s; moved to %s (reason in %s.error.json)\n",
                    j->js.name, j->js.fail.reason ? j->js.fail.reason : "rejected", j->final_path,
                    j->final_path);
    }
    if (d->opts.report)
        fflush(d->opts.report);
    pd_metrics_file_event(d->opts.metrics, j->w->cfg->name,
                          !ok                  ? PD_METRICS_REJECTED
                          : j->js.duplicate_of ? PD_METRICS_DUPLICATE
                                               : PD_METRICS_DELIVERED,
                          j->js.size);
    status_note(j, ok);
}
