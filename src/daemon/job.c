/*
 * A job on the loop thread: its one traced step transition (job_set), the thread-pool steps
 * started and their outcome acted on (on_work_done), a chunk's request and its answer
 * (dw_on_request_done), and a job's birth and end.
 */
#include "daemon_internal.h"

#include "pd_api.h"
#include "pd_error.h"
#include "pd_list.h"
#include "pd_log.h"
#include "pd_metrics.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- jobs: loop thread -------------------------------------------------------------------- */

static const char *step_name(enum job_step s)
{
    static const char *const names[] = {"prepare",   "chunk_ready", "sending", "ack",   "resplit",
                                        "finish_ok", "finish_fail", "parked",  "ended", "batched"};
    return names[s];
}

/* The one place a job's step changes, so every transition can be traced. */
void job_set(struct job *j, enum job_step s)
{
    char qb[PATH_MAX + 16];
    if (pd_log_enabled(PD_LOG_DEBUG))
        pd_log(PD_LOG_DEBUG, "event=job_step watch=%s file=%s from=%s to=%s", j->w->cfg->name,
               dw_q(j->js.name ? j->js.name : j->work_path, qb, sizeof(qb)), step_name(j->step),
               step_name(s));
    j->step = s;
}

/* Gives back the daemon's and the watch's slot the job holds, if it holds one. */
static void job_release_slot(struct job *j)
{
    if (j->counted) {
        j->counted = false;
        j->d->active--;
        j->w->active--;
    }
}

void job_free(struct job *j)
{
    struct pd_daemon *d = j->d;

    PD_LIST_UNLINK(d->jobs, j);
    job_release_slot(j);
    if (j->finishing)
        d->finishing--;
    dedupe_release(j);
    dedupe_shared_end(j, false);
    if (j->fd >= 0)
        close(j->fd); /* releases the flock */
    if (j->batch)
        batch_dissolve(j->batch);
    pd_delivery_close(&j->dl);
    pd_jobstate_cleanup(&j->js);
    free(j->label);
    free(j->ack.run_id);
    free(j->ack.answer);
    free(j->ack.batch_id);
    free(j->batch_id);
    free(j->raw);
    free(j->body);
    free(j->work_path);
    free(j->state_path);
    free(j->final_path);
    free(j->park_why);
    free(j->lookup_json);
    free(j->lookup_words);
    for (size_t i = 0; i < j->nfollow; i++)
        pd_follow_cleanup(&j->follow[i]);
    free(j->follow);
    free(j);
}

void job_end(struct job *j)
{
    struct pd_daemon *d = j->d;
    job_set(j, STEP_ENDED);
    job_free(j);
    if (!d->stopping)
        dw_dispatch(d);
    dw_check_stopped(d);
}

void job_send_chunk(struct job *j)
{
    struct pd_client_request req = {.method = "POST", .body = j->body, .body_len = j->body_len};
    char *url = NULL, qb[PATH_MAX + 16], context[PATH_MAX + 300];
    int rc = pd_api_start_url(&j->d->cfg->pw, j->js.flow_id, j->js.version_id, &url);

    snprintf(context, sizeof(context), "watch=%s file=%s chunk=%u", j->w->cfg->name,
             dw_q(j->js.name, qb, sizeof(qb)), j->chunk.index + 1);
    req.context = context;

    if (!rc) {
        req.url = url;
        rc = pd_client_submit(j->d->client, &req, dw_on_request_done, j);
    }
    free(url);
    if (rc) {
        /* Closing, or out of memory: the file stays in work/ for later. */
        job_end(j);
        return;
    }
    job_sending(j);
}

/* The job's request is with the client now (a chunk, or a lookup sync's changes). */
void job_sending(struct job *j)
{
    job_set(j, STEP_SENDING);
    j->busy = true;
    j->in_flight = true;
    j->sent_ms = dw_now_ms(j->d);
    j->warned = 0;
}

/* A file whose request keeps being retried is told every stuck_warning, never silently. */
void dw_warn_stuck(struct pd_daemon *d, uint64_t now)
{
    uint64_t every = d->cfg->daemon.stuck_warning_ms;
    char qb[PATH_MAX + 16];

    for (struct job *j = d->jobs; j && every; j = j->next) {
        if (j->step != STEP_SENDING || !j->sent_ms || now - j->sent_ms < (j->warned + 1) * every)
            continue;
        j->warned++;
        pd_log(PD_LOG_WARN,
               "event=still_retrying watch=%s file=%s chunk=%u waiting_s=%" PRIu64
               " action=\"retried until delivered or max_retry_time (%" PRIu64 " s) gives it "
               "up; see the retry lines for the reason\"",
               j->w->cfg->name, dw_q(j->js.name, qb, sizeof(qb)), j->js.next_index,
               (now - j->sent_ms) / 1000, d->cfg->pw.max_retry_time_ms / 1000);
    }
}

/* Whether another job of ours holds the same file (another hard link to it). */
static bool twin_of(const struct job *j)
{
    for (const struct job *o = j->d->jobs; o; o = o->next)
        if (o != j && o->fd >= 0 && o->ino == j->ino && o->dev == j->dev && !o->reprepare)
            return true;
    return false;
}

/* A disk step failed: said once, and tried again later. */
static void job_parked(struct job *j)
{
    struct pd_daemon *d = j->d;
    char qb[PATH_MAX + 16], qr[1024];

    if (j->step != STEP_PARKED)
        pd_log(PD_LOG_ERROR,
               "event=stuck watch=%s file=%s reason=%s action=\"the file stays in %s and is "
               "tried again every %ds\"",
               j->w->cfg->name, dw_q(j->js.name ? j->js.name : j->work_path, qb, sizeof(qb)),
               dw_q(j->park_why ? j->park_why : "disk error", qr, sizeof(qr)), j->w->work_dir,
               PARK_RETRY_MS / 1000);
    if (j->step == STEP_FINISH_OK || j->step == STEP_FINISH_FAIL) {
        /* A finish waits for the disk: keep the job but free its slot. */
        j->finish_failed = j->step == STEP_FINISH_FAIL;
        job_set(j, STEP_PARKED);
        job_release_slot(j);
        j->park_until = dw_now_ms(d) + PARK_RETRY_MS;
        if (d->opts.once) {
            d->sum.stuck++;
            job_end(j);
            return;
        }
        dw_dispatch(d);
        return;
    }
    /* Any other step: the file stays in work/ and is resumed by a later rescan. */
    d->sum.stuck += d->opts.once ? 1 : 0;
    job_end(j);
}

static void on_work_done(uv_work_t *wk, int status)
{
    struct job *j = wk->data;

    j->busy = false;
    if (j->js.name && (!j->label || strcmp(j->label, j->js.name))) {
        char *label = strdup(j->js.name);
        if (label) {
            free(j->label);
            j->label = label;
        }
    }
    if (status == UV_ECANCELED) {
        job_end(j);
        return;
    }
    job_continue(j);
}

void job_continue(struct job *j)
{
    struct pd_daemon *d = j->d;

    switch (j->after) {
    case AFTER_SEND:
        if (d->stopping) {
            job_end(j); /* progress is saved; the chunk goes after the restart */
            return;
        }
        if (j->batchable && batch_join(j))
            return;
        job_send_chunk(j);
        return;
    case AFTER_FINISH:
        job_set(j, STEP_FINISH_OK);
        /* Every acknowledgement is on disk: while the receipt and the move wait for the disk
         * (syncs shared with other files), the slot goes to the next file, so more files
         * share each sync. Bounded (each holds its file open); an ordered watch keeps its
         * slot, and its order. */
        if (!j->w->cfg->ordered && d->finishing < FINISHING_MAX) {
            j->finishing = true;
            d->finishing++;
            job_release_slot(j);
        }
        job_run(j, work_finish);
        dw_dispatch(d);
        return;
    case AFTER_FAIL:
        job_set(j, STEP_FINISH_FAIL);
        job_run(j, work_finish);
        return;
    case AFTER_DONE:
        if (j->step == STEP_FINISH_OK) {
            follow_adopt(j);
            dedupe_shared_end(j, true);
        }
        job_report(j, j->step == STEP_FINISH_OK);
        job_end(j);
        return;
    case AFTER_LOCKED:
        if (j->dedupe_wait || twin_of(j)) {
            /* Another name of a file our own job holds: its turn comes when that one ends. */
            job_set(j, STEP_PARKED);
            j->reprepare = true;
            j->park_until = dw_now_ms(j->d) + 1000;
            return;
        }
        job_end(j);
        return;
    case AFTER_RELEASE:
        job_end(j);
        return;
    case AFTER_LOOKUP:
        if (d->stopping) {
            job_end(j); /* synced after the restart */
            return;
        }
        job_lookup_start(j);
        return;
    case AFTER_PARK:
        job_parked(j);
        return;
    case AFTER_SHARED_DEDUPE:
        dedupe_shared_ask(j);
        return;
    }
}

void job_run(struct job *j, void (*fn)(uv_work_t *))
{
    j->busy = true;
    j->work.data = j;
    if (uv_queue_work(j->d->loop, &j->work, fn, on_work_done)) {
        j->busy = false;
        job_end(j);
    }
}

/* An acknowledged chunk: recorded, counted, said; then saved durably (work_ack). */
static void chunk_acked(struct job *j, const struct pd_client_result *r)
{
    struct pd_daemon *d = j->d;
    char qb[PATH_MAX + 16], qr[256];

    memset(&j->ack, 0, sizeof(j->ack));
    j->ack.index = j->chunk.index;
    j->ack.start = j->chunk.start;
    j->ack.end = j->chunk.end;
    j->ack.records = j->chunk.records;
    memcpy(j->ack.control, j->chunk.control, sizeof(j->ack.control));
    j->ack.body_bytes = j->body_len;
    j->ack.status = r->api.status;
    j->ack.run_id = r->api.run_id ? strdup(r->api.run_id) : NULL;
    j->ack.answer = !r->api.run_id && r->api.body ? strdup(r->api.body) : NULL;
    j->ack.time_ms = dw_wall_ms(j->d);
    j->ack.attempts = r->attempts;
    j->ack.batch_id = j->batch_id; /* NULL unless it went in a batch */
    j->batch_id = NULL;
    j->ack.batch_files = j->batch_files;
    j->ack.batch_pos = j->batch_pos;
    j->ack.entry = j->dl.entry; /* a compressed file's inner file it is of */
    d->sum.chunks++;
    d->sum.bytes += j->body_len;
    pd_metrics_chunk(d->opts.metrics, j->w->cfg->name, j->body_len);
    char qe[4 * PATH_MAX + 16] = "";
    if (j->dl.cx) /* a compressed file: the inner file the chunk is of */
        snprintf(qe, sizeof(qe), " entry=%s",
                 dw_q(j->dl.cx->x.entries[j->dl.entry].name, qb, sizeof(qb)));
    pd_log(PD_LOG_INFO,
           "event=chunk_delivered watch=%s file=%s chunk=%u range=%" PRIu64 "-%" PRIu64
           " bytes=%zu status=%ld flow_run_id=%s attempts=%u%s",
           j->w->cfg->name, dw_q(j->js.name, qb, sizeof(qb)), j->chunk.index + 1, j->chunk.start,
           j->chunk.end, j->body_len, r->api.status,
           dw_q(r->api.run_id ? r->api.run_id : "none", qr, sizeof(qr)), r->attempts, qe);
    if (d->opts.report) {
        fprintf(d->opts.report,
                "%s: chunk %u (bytes %" PRIu64 "-%" PRIu64 ") -> HTTP %ld, flow run %s\n",
                j->js.name, j->chunk.index + 1, j->chunk.start, j->chunk.end, r->api.status,
                r->api.run_id ? r->api.run_id : "(no id in the answer)");
        fflush(d->opts.report);
    }
    pd_delivery_accepted(&j->dl, j->body_len);
    free(j->body);
    j->body = NULL;
    job_set(j, STEP_ACK);
    job_run(j, work_ack);
}

/* The chunk's job_fail() reason is set: the failure names the chunk, and the file goes to the
 * failed folder. */
static void chunk_failed(struct job *j)
{
    j->js.fail.chunk = (int)j->chunk.index;
    j->js.fail.offset = (int64_t)j->chunk.start;
    job_set(j, STEP_FINISH_FAIL);
    job_run(j, work_finish);
}

/* HTTP 413: the one rule (pd_delivery_refused): cut the chunk again smaller, or refuse the file
 * when its largest record cannot pass. */
static void chunk_too_big(struct job *j)
{
    char qb[PATH_MAX + 16];
    uint64_t ok_max, refused_min;

    if (pd_delivery_refused(&j->dl, &j->chunk, j->body_len, j->chunk.index)) {
        job_fail(j, "%s", j->dl.why);
        j->js.fail.status = j->dl.why_status;
        chunk_failed(j);
        return;
    }
    pd_bodylimit_bounds(&j->d->limit, &ok_max, &refused_min);
    pd_log(PD_LOG_WARN,
           "event=resplit watch=%s file=%s chunk=%u refused_bytes=%zu accepted_max=%" PRIu64
           " new_max_body=%" PRIu64,
           j->w->cfg->name, dw_q(j->js.name, qb, sizeof(qb)), j->chunk.index + 1, j->body_len,
           ok_max, j->dl.budget);
    job_set(j, STEP_RESPLIT);
    job_run(j, work_next);
}

/* A refused chunk, or one sent too often without an answer, or out of retry time. */
static void chunk_refused(struct job *j, const struct pd_client_result *r)
{
    char why[4096];

    pd_delivery_failure(r, &j->chunk, j->chunk.index, why, sizeof(why));
    job_fail(j, "%s", why);
    if (r->err != PD_EAMBIGUOUS)
        j->js.fail.status = r->api.status;
    if (r->err == PD_EREJECTED) {
        j->js.fail.message = r->api.message ? strdup(r->api.message) : NULL;
        j->js.fail.errors = r->api.errors ? strdup(r->api.errors) : NULL;
    }
    chunk_failed(j);
}

/* The client's final answer to the job's chunk, judged once by pd_delivery_verdict. */
void dw_on_request_done(void *arg, const struct pd_client_result *r)
{
    struct job *j = arg;
    struct pd_daemon *d = j->d;
    enum pd_delivery_verdict v = pd_delivery_verdict(r->err);

    j->busy = false;
    j->in_flight = false;
    j->js.attempts += r->attempts;
    j->js.possible_duplicates += r->ambiguous;
    if (v == PD_DL_ACKED) {
        chunk_acked(j, r);
        return;
    }
    free(j->body);
    j->body = NULL;
    switch (v) {
    case PD_DL_RECUT:
        chunk_too_big(j);
        return;
    case PD_DL_FAILED:
        chunk_refused(j, r);
        return;
    case PD_DL_STOP:
        /* Not this file's fault: it stays in work/ and the daemon stops with the reason. */
        if (!d->fatal)
            d->fatal = strdup(r->message ? r->message : pd_strerror(r->err));
        job_end(j);
        if (!d->stopping)
            pd_daemon_stop(d, 0);
        return;
    default: /* canceled at shutdown, or out of memory: resumed later */
        job_end(j);
        return;
    }
}

struct job *job_new(struct dwatch *w, const char *work_name, const char *name, bool resume)
{
    struct job *j = calloc(1, sizeof(*j));
    char *state_name = NULL;

    if (!j)
        return NULL;
    j->d = w->d;
    j->w = w;
    j->since_ms = dw_now_ms(w->d);
    j->fd = -1;
    j->resume = resume;
    pd_failure_clear(&j->js.fail);
    j->work_path = dw_join(w->work_dir, work_name);
    if (asprintf(&state_name, "%s.json", work_name) >= 0)
        j->state_path = dw_join(w->state_dir, state_name);
    free(state_name);
    j->js.name = name ? strdup(name) : NULL;
    j->label = strdup(name ? name : work_name);
    if (!j->work_path || !j->state_path || (name && !j->js.name) || !j->label) {
        free(j->work_path);
        free(j->state_path);
        free(j->js.name);
        free(j->label);
        free(j);
        return NULL;
    }
    j->next = w->d->jobs;
    if (j->next)
        j->next->prev = j;
    w->d->jobs = j;
    return j;
}
