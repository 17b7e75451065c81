/*
 * A job's steps on libuv's thread pool, up to the request: PREPARE (lock, check, hash, record,
 * open the splitter), the next chunk, the durable acknowledgement of a chunk, and a re-split
 * after HTTP 413. Each sets j->after for the loop thread (job.c, on_work_done).
 */
#include "daemon_internal.h"

#include "pd_error.h"
#include "pd_zone.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- jobs: thread-pool steps -------------------------------------------------------------- */

/* Marks the job for the failed folder with a reason in words (thread-pool or loop thread). */
void job_fail(struct job *j, const char *fmt, ...)
{
    va_list ap;
    free(j->js.fail.reason);
    va_start(ap, fmt);
    if (vasprintf(&j->js.fail.reason, fmt, ap) < 0)
        j->js.fail.reason = NULL;
    va_end(ap);
    j->after = AFTER_FAIL;
}

void job_park(struct job *j, const char *step, int rc)
{
    free(j->park_why);
    if (asprintf(&j->park_why, "%s: %s", step, pd_strerror(rc)) < 0)
        j->park_why = NULL;
    j->after = AFTER_PARK;
}

/* The file's delivery (pd_deliver.h): the splitter with the watch's settings, cutting to the
 * budget its record holds, continuing where the record says. */
int open_delivery(struct job *j)
{
    struct pd_delivery_opts o = {
        .fd = j->fd,
        .name = j->js.name,
        .watch = j->w->cfg,
        .max_body = j->d->cfg->pw.max_body,
        .budget = j->js.max_body,
        .limit = &j->d->limit,
        .resume_offset = j->js.next_offset,
        .resume_index = j->js.next_index,
        .mem = j->raw,
        .mem_len = j->raw_len,
        .expand_dir = j->w->state_dir, /* a compressed file's expansion: no name, ours */
        .resume_entry = j->js.next_entry,
        .cancel = &j->d->cancel_expand,
    };
    for (size_t e = 0; e < j->js.nentries && e < j->js.next_entry; e++)
        o.expanded_before += j->js.entries[e].size;
    int rc = pd_delivery_open(&j->dl, &o);
    if (rc)
        job_fail(j, "%s", j->dl.why);
    return rc;
}

/* What a file goes to: the flow id, or "lookup:<id>" for a lookup watch. */
static char *target_id(const struct pd_watch *w)
{
    char *out;
    if (w->flow_id)
        return strdup(w->flow_id);
    return asprintf(&out, "lookup:%s", w->lookup_id) < 0 ? NULL : out;
}

/*
 * A file over max_file_size, or a sparse one (a 20 GB file of 16 kB on disk), would hold a
 * job slot while its zeros are hashed and scanned: it goes to the failed folder unread.
 */
static bool refuse_shape(struct job *j, const struct stat *st)
{
    const struct pd_watch *wc = j->w->cfg;
    if ((uint64_t)st->st_size > wc->max_file_size) {
        job_fail(j,
                 "the file is %lld bytes, over max_file_size (%" PRIu64 " bytes), so nothing "
                 "was read or sent; split it upstream or raise max_file_size for this watch",
                 (long long)st->st_size, wc->max_file_size);
        return true;
    }
    if (!wc->allow_sparse && pd_zone_sparse(st)) {
        job_fail(j,
                 "the file is sparse: %lld bytes long but only %lld bytes on disk, mostly holes "
                 "that read as zeros, so nothing was read or sent; drop a real export, or set "
                 "allow_sparse = yes for this watch",
                 (long long)st->st_size, (long long)st->st_blocks * 512);
        return true;
    }
    return false;
}

/*
 * Opens the claimed file in work/ and locks it. False, with the job's next step set, when it is
 * gone, held by another daemon (or by our own job on another name of it), or has other names.
 */
static bool prepare_open(struct job *j, struct stat *st)
{
    if (j->fd >= 0)
        close(j->fd); /* a job waiting for its twin (below) comes back here */
    j->fd = open(j->work_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (j->fd < 0) {
        /* Gone: another daemon finished it, or it was never ours. */
        j->after = errno == ENOENT ? AFTER_LOCKED : AFTER_RELEASE;
        if (j->after == AFTER_RELEASE)
            job_park(j, "open the claimed file", -errno);
        return false;
    }
    if (flock(j->fd, LOCK_EX | LOCK_NB)) {
        /* Held: by another daemon, or by our own job on another name of the same file (hard
         * links, allow_hard_links = yes): that one is a file of its own and waits its turn. */
        j->after = fstat(j->fd, st) == 0 ? AFTER_LOCKED : AFTER_RELEASE;
        j->ino = st->st_ino;
        j->dev = st->st_dev;
        return false;
    }
    if (fstat(j->fd, st) == 0) {
        j->ino = st->st_ino;
        j->dev = st->st_dev;
    }
    /* Still there after we locked it? A daemon that finished it moved it away first. */
    if (fstat(j->fd, st) || st->st_nlink == 0 || !S_ISREG(st->st_mode)) {
        j->after = AFTER_LOCKED;
        return false;
    }
    j->ctime_ns = (int64_t)st->st_ctim.tv_sec * 1000000000 + st->st_ctim.tv_nsec;
    /* A file in work/ with other names (an old layout's work/, or a link made meanwhile) is
     * never read: its other name may be a file the partner could not read. Only this name
     * goes; the file stays under its others. */
    if (st->st_nlink > 1 && !j->w->cfg->allow_hard_links) {
        char qb[PATH_MAX + 16];
        pd_log(PD_LOG_ERROR,
               "event=refused watch=%s file=%s reason=\"the file in work/ has %lu names (hard "
               "links)\" action=\"not read or sent; this name is removed, the file stays "
               "under its other names\"",
               j->w->cfg->name, dw_q(j->work_path, qb, sizeof(qb)), (unsigned long)st->st_nlink);
        unlink(j->work_path);
        unlink(j->state_path);
        j->after = AFTER_LOCKED;
        return false;
    }
    return true;
}

/* A resumed file's delivery record, unreadable: a person must decide (failed folder). */
static void record_unreadable(struct job *j, const struct stat *st, int rc, char *why)
{
    pd_jobstate_cleanup(&j->js);
    j->js.name = strdup(strrchr(j->work_path, '/') + 1);
    j->js.work_name = strdup(j->js.name);
    j->js.watch = strdup(j->w->cfg->name);
    j->js.flow_id = target_id(j->w->cfg);
    j->js.size = (uint64_t)st->st_size;
    job_fail(j,
             "its delivery record %s is unreadable (%s), so which chunks already arrived is "
             "unknown; check the flow runs in Patchworks, then drop the file again if needed",
             j->state_path, why ? why : pd_strerror(rc));
    free(why);
}

/*
 * The job's delivery record: read back for a resumed file (which must not have changed size),
 * or made new for a claimed one. False, with the next step set, when the job cannot go on.
 */
static bool prepare_record(struct job *j, const struct stat *st)
{
    char *why = NULL;
    int rc;

    if (j->resume) {
        rc = pd_jobstate_load(j->state_path, &j->js, &why);
        if (rc == -ENOENT) {
            j->resume = false; /* claimed, then a crash before its record was written */
        } else if (rc) {
            /* Without its record nobody knows which chunks arrived. */
            record_unreadable(j, st, rc, why);
            return false;
        }
    }
    if (j->resume) {
        if ((uint64_t)st->st_size == j->js.size)
            return true;
        job_fail(j,
                 "the file changed size while being delivered (%" PRIu64 " bytes when claimed, "
                 "%lld now); %u chunk(s) were delivered; drop a complete file again",
                 j->js.size, (long long)st->st_size, j->js.next_index);
        return false;
    }
    char id[33];
    const char *name = j->js.name;
    j->js.name = NULL;
    pd_jobstate_cleanup(&j->js);
    if (pd_jobstate_new_claim_id(id)) {
        job_park(j, "make a claim id", -errno);
        free((char *)name);
        return false;
    }
    j->js.claim_id = strdup(id);
    j->js.name = name ? (char *)name : strdup(strrchr(j->work_path, '/') + 1);
    j->js.work_name = strdup(strrchr(j->work_path, '/') + 1);
    j->js.watch = strdup(j->w->cfg->name);
    j->js.flow_id = target_id(j->w->cfg);
    j->js.version_id = j->w->cfg->version_id ? strdup(j->w->cfg->version_id) : NULL;
    j->js.size = (uint64_t)st->st_size;
    j->js.mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    j->js.claimed_ms = dw_wall_ms(j->d);
    j->js.max_body = pd_bodylimit_budget(&j->d->limit);
    return true;
}

/* Hashes the file (a resumed big one was hashed when claimed) and saves a new claim's record. */
static bool prepare_hash(struct job *j, const struct stat *st, bool *blank)
{
    int rc;

    *blank = true;
    /* A small file that may join a batch is read once, here: hashed, split and batched from
     * memory. */
    if (batch_enabled(j->w) && j->js.nchunks == 0 && st->st_size > 0 &&
        (uint64_t)st->st_size <= j->js.max_body)
        batch_read(j); /* else (a short read: the file changed) it is read from the file */
    if (!j->js.sha256 || st->st_size < 65536) {
        char hex[65];
        rc = j->raw ? dw_sha256_mem(j->raw, j->raw_len, hex, blank)
                    : dw_sha256_file(j->fd, hex, blank);
        if (rc) {
            job_park(j, "read the file to hash it", rc);
            return false;
        }
        if (!j->js.sha256)
            j->js.sha256 = strdup(hex);
    } else {
        *blank = false; /* a resumed big file: checked when it was claimed */
    }
    if (!j->resume && (rc = pd_jobstate_save_claim(&j->js, j->state_path))) {
        job_park(j, "save the delivery record", rc);
        return false;
    }
    return true;
}

/*
 * Where a prepared file goes next when it is not simply sent: a judgement recorded before a
 * crash, a finished delivery, a lookup sync, an empty or blank file, a duplicate (dedupe), or
 * waiting for the same content in flight. True when its chunks are to be cut and sent.
 */
static bool prepare_route(struct job *j, const struct stat *st, bool blank)
{
    if (j->js.fail.reason) {
        j->fail_saved = true; /* judged before a restart: finish the move */
        j->after = AFTER_FAIL;
        return false;
    }
    if (j->js.finished) {
        j->after = AFTER_FINISH;
        return false;
    }
    if (j->w->cfg->lookup_id) {
        /* A sync compares the file with the lookup, so repeating it after a crash is safe. */
        j->after = AFTER_LOOKUP;
        return false;
    }
    if (st->st_size == 0) {
        job_fail(j, "the file is empty; Patchworks refuses a blank payload, so nothing was sent");
        return false;
    }
    if (blank) {
        job_fail(j,
                 "the file holds only whitespace (%lld bytes); Patchworks refuses a blank "
                 "payload, so nothing was sent",
                 (long long)st->st_size);
        return false;
    }
    if (j->w->cfg->dedupe_ms && j->js.nchunks == 0) {
        dedupe_check(j);
        if (j->js.duplicate_of) {
            j->after = AFTER_FINISH;
            return false;
        }
        /* The same content already on its way to the same flow (identical files dropped
         * together): wait for it, then this one is its duplicate. */
        if (!dedupe_hold(j)) {
            j->after = AFTER_LOCKED;
            j->dedupe_wait = true;
            return false;
        }
        /* And not on its way from another host (Redis is asked on the loop thread). */
        if (j->d->cluster && !j->shared_claim) {
            j->after = AFTER_SHARED_DEDUPE;
            return false;
        }
    }
    return true;
}

/* Lock, check, hash, record the claim, open the splitter; then cut the first chunk. */
void work_prepare(uv_work_t *wk)
{
    struct job *j = wk->data;
    struct stat st;
    bool blank;

    if (!prepare_open(j, &st) || !prepare_record(j, &st))
        return;
    /* Shapes that cost everyone else's turn are refused before a byte is read. */
    if (!j->js.fail.reason && !j->js.finished && j->js.nchunks == 0 && refuse_shape(j, &st))
        return;
    if (!prepare_hash(j, &st, &blank) || !prepare_route(j, &st, blank))
        return;
    work_open(wk);
}

void work_open(uv_work_t *wk)
{
    struct job *j = wk->data;
    if (open_delivery(j))
        return;
    work_next(wk);
}

/* A compressed file whose every chunk is acknowledged: its expansion's disk space goes now, not
 * once it is archived (up to FINISHING_MAX files wait for that at once). */
static void finished_expansion(struct job *j)
{
    if (j->dl.cx)
        pd_delivery_close(&j->dl);
}

/* Cuts the next chunk (the refused one again after a 413): AFTER_SEND with a body,
 * AFTER_FINISH at the end, or a failure. */
void work_next(uv_work_t *wk)
{
    struct job *j = wk->data;

    free(j->body);
    j->body = NULL;
    int rc = pd_delivery_next(&j->dl, &j->chunk, &j->body, &j->body_len);
    if (rc > 0) {
        j->js.max_body = j->dl.budget; /* what a restart cuts to */
        j->after = AFTER_SEND;
        /* A batch takes the file's bytes: only when they are what the splitter sends (not
         * transcoded, by configuration or encoding = auto; no XML declaration rewritten). */
        if (j->raw && !j->dl.cx && j->chunk.whole && pd_split_verbatim(j->dl.sp)) {
            j->batchable = true;
            j->format = pd_split_format(j->dl.sp);
        }
        return;
    }
    if (rc == 0) {
        j->js.finished = true;
        if ((rc = pd_delivery_note_entries(&j->dl, &j->js)) ||
            (rc = pd_jobstate_save(&j->js, j->state_path))) {
            job_park(j, "save the delivery record", rc);
            return;
        }
        finished_expansion(j);
        j->after = AFTER_FINISH;
        return;
    }
    if (rc == PD_ECANCELED) {
        j->after = AFTER_RELEASE; /* shutting down mid-expansion: it stays in work/ */
        return;
    }
    if (pd_delivery_transient(rc)) {
        job_park(j, "read the file", rc);
        return;
    }
    job_fail(j, "%s", j->dl.why);
    (void)pd_delivery_note_entries(&j->dl, &j->js); /* which entries the error file lists */
    j->js.fail.status = j->dl.why_status;
    j->js.fail.chunk = (int)j->js.next_index;
    /* The byte the reason names, where it names one; else where the unsent part starts. */
    j->js.fail.offset = j->dl.why_offset >= 0 ? j->dl.why_offset : (int64_t)j->js.next_offset;
}

/* Records an acknowledged chunk durably, then cuts the next one. */
void work_ack(uv_work_t *wk)
{
    struct job *j = wk->data;
    int rc = pd_delivery_note_entries(&j->dl, &j->js);

    rc = rc ? rc : pd_jobstate_add_chunk(&j->js, &j->ack);

    free(j->ack.run_id);
    free(j->ack.answer);
    free(j->ack.batch_id);
    memset(&j->ack, 0, sizeof(j->ack));
    /* After the last chunk, "acknowledged" and "finished" are one durable save, not two:
     * small files are bound by fsync, not by the network. */
    bool last = j->chunk.last;
    if (!rc && last)
        j->js.finished = true;
    if (!rc)
        rc = pd_jobstate_save(&j->js, j->state_path);
    if (rc) {
        /* The chunk arrived but its record did not: a restart would send it again. */
        job_park(j, "save the delivery record", rc);
        return;
    }
    if (last) {
        finished_expansion(j);
        j->after = AFTER_FINISH;
        return;
    }
    work_next(wk);
}
