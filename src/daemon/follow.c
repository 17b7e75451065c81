/*
 * Following the flow runs of delivered files to their end (pd_follow.h). An archived file's
 * chunks with a run id get a durable record each (follow_records, on the thread pool, before the
 * file's delivery record goes); the loop then holds one `struct frun` per run and polls it
 * through the client as a low-priority request (`poll`: deliveries first, at most follow_share
 * of the account's rate), first after follow_first, then doubling up to follow_cap, until a
 * final status or follow_timeout. The outcome is written into every receipt naming the run
 * (a batch's files share one), then on_flow_failure acts: report (one warning with the run's
 * last log messages), fail (the file and its receipt move to the failed folder with an error
 * file holding the run's log entries) or retry (a new run, followed in turn). A record is
 * removed only once its outcome is in the receipt, so a restart or a kill goes on following;
 * while it polls or acts on a run, the daemon holds a lock on one of the run's records (the
 * first by name), so two daemons sharing a state dir never poll the same run at once.
 */
#include "daemon_internal.h"

#include "pd_api.h"
#include "pd_error.h"
#include "pd_follow.h"
#include "pd_fsutil.h"
#include "pd_jsonfmt.h"
#include "pd_log.h"
#include "pd_metrics.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define LOG_LINES_SAID 3  /* of a failed run's log, in its warning line */
#define LOG_LINES_KEPT 50 /* in its error file */

enum fstep { F_POLL, F_LOGS, F_RETRY, F_APPLY, F_CHECK }; /* the first three index run_request's paths */

struct frun {
    struct frun *next;
    struct pd_daemon *d;
    const struct pd_watch *cfg;
    char *run_id;
    struct pd_follow_rec *recs; /* every chunk naming the run */
    size_t nrecs;
    /* While the thread pool writes the outcome (F_APPLY) recs is the worker's: records adopted
     * meanwhile wait here, and applied[i] says which of recs the worker finished. */
    struct pd_follow_rec *later;
    size_t nlater;
    bool *applied;
    uint64_t due_ms;        /* monotonic: the next poll */
    uint64_t delay_ms;      /* the wait before it */
    uint64_t deadline_wall; /* follow_timeout after the start was acknowledged */
    bool busy;              /* a request or a thread-pool step under way */
    bool unchecked;         /* loaded at start: its receipts are read before the first poll */
    enum pd_run_outcome saved; /* what they said (F_CHECK) */
    uint64_t saved_ms;
    int lock_fd;            /* the first record, locked while this daemon acts on the run */
    enum fstep step;
    enum pd_run_outcome outcome;
    long status; /* Patchworks' status number, as last read; 0: none */
    enum pd_follow_step act;
    uint64_t finished_ms;
    char *why; /* why the outcome is unknown, or NULL */
    struct pd_api_run_log *logs;
    size_t nlogs;
    uv_work_t work;
};

static char *follow_dir(const struct pd_daemon *d)
{
    return dw_join(d->cfg->state.dir, "follow");
}

static const char *base_of(const char *name)
{
    const char *slash = strrchr(name, '/');
    return slash ? slash + 1 : name;
}

/* ---- records, made when a file is archived (thread pool) ---------------------------------- */

/*
 * Every chunk of J's file with a run id gets a durable record, before the file is archived (a
 * record finds its receipt by the claim id, whichever name the file takes): a crash at any point
 * after leaves the run followed. A failure to save one is said, and that run goes unfollowed:
 * the file is delivered all the same.
 */
void follow_records(struct job *j)
{
    const struct pd_watch *w = j->w->cfg;
    char *dir = NULL;

    for (size_t i = 0; i < j->nfollow; i++) /* made before a finish that was parked */
        pd_follow_cleanup(&j->follow[i]);
    j->nfollow = 0;
    if (!w->follow || !w->flow_id || j->js.duplicate_of || !(dir = follow_dir(j->d)))
        return;
    for (size_t i = 0; i < j->js.nchunks; i++) {
        const struct pd_chunk_rec *c = &j->js.chunks[i];
        struct pd_follow_rec r = {.chunk = (unsigned)i, .started_ms = c->time_ms};
        if (!c->run_id)
            continue;
        r.watch = strdup(w->name);
        r.file = strdup(j->js.name);
        r.claim_id = strdup(j->js.claim_id);
        r.archive_dir = strdup(w->archive_dir);
        r.delay_ms = w->follow_first_ms;
        r.next_ms = dw_wall_ms(j->d) + r.delay_ms;
        int rc = r.watch && r.file && r.claim_id && r.archive_dir ? pd_follow_add_run(&r, c->run_id)
                                                                  : PD_ENOMEM;
        if (!rc)
            rc = pd_follow_save(&r, dir);
        if (rc) {
            char qb[PATH_MAX + 16];
            pd_log(PD_LOG_ERROR,
                   "event=follow_not_saved watch=%s file=%s flow_run_id=%s reason=\"%s\" "
                   "action=\"the run is not followed; check it in Patchworks\"",
                   w->name, dw_q(j->js.name, qb, sizeof(qb)), c->run_id, pd_strerror(rc));
            pd_follow_cleanup(&r);
            continue;
        }
        struct pd_follow_rec *grown = realloc(j->follow, (j->nfollow + 1) * sizeof(*grown));
        if (!grown) {
            pd_follow_cleanup(&r);
            continue;
        }
        j->follow = grown;
        j->follow[j->nfollow++] = r;
    }
    pd_fs_fsync_dir(dir);
    free(dir);
    if (j->nfollow)
        pd_crashpoint("follow_saved");
}

/* The receipt as first written: each chunk with a run is running, with its dashboard link. */
char *follow_receipt_start(struct job *j, char *text)
{
    if (!j->w->cfg->follow || !j->w->cfg->flow_id || j->js.duplicate_of)
        return text;
    for (size_t i = 0; text && i < j->js.nchunks; i++) {
        char *link = NULL;
        if (!j->js.chunks[i].run_id)
            continue;
        pd_api_dashboard_url(&j->d->cfg->pw, j->js.chunks[i].run_id, &link);
        struct pd_follow_result res = {
            .chunk = (unsigned)i, .outcome = "running", .dashboard = link};
        char *next = pd_follow_receipt_apply(text, &res);
        free(link);
        free(text);
        text = next;
    }
    return text;
}

/* ---- runs in memory (loop thread) ------------------------------------------------------- */

static struct frun *run_find(struct pd_daemon *d, const char *run_id)
{
    for (struct frun *f = d->runs; f; f = f->next)
        if (!strcmp(f->run_id, run_id))
            return f;
    return NULL;
}

static void run_free(struct frun *f)
{
    for (size_t i = 0; i < f->nrecs; i++)
        pd_follow_cleanup(&f->recs[i]);
    for (size_t i = 0; i < f->nlater; i++)
        pd_follow_cleanup(&f->later[i]);
    free(f->recs);
    free(f->later);
    free(f->applied);
    free(f->run_id);
    free(f->why);
    pd_api_run_logs_free(f->logs, f->nlogs);
    if (f->lock_fd >= 0)
        close(f->lock_fd);
    free(f);
}

static void run_unlink(struct frun *f)
{
    for (struct frun **pp = &f->d->runs; *pp; pp = &(*pp)->next)
        if (*pp == f) {
            *pp = f->next;
            f->d->nruns--;
            return;
        }
}

static bool has_path(const struct pd_follow_rec *recs, size_t n, const char *path)
{
    for (size_t i = 0; path && i < n; i++)
        if (recs[i].path && !strcmp(recs[i].path, path))
            return true;
    return false;
}

/* Appends R (moved) to *RECS, unless a record kept at the same path is there already (a file
 * resumed after a kill saves its chunks' records again, at the same names): then R goes. */
static void recs_add(struct pd_follow_rec **recs, size_t *n, struct pd_follow_rec *r)
{
    struct pd_follow_rec *grown;

    if (has_path(*recs, *n, r->path) || !(grown = realloc(*recs, (*n + 1) * sizeof(*grown)))) {
        pd_follow_cleanup(r);
        return;
    }
    *recs = grown;
    (*recs)[(*n)++] = *r;
    memset(r, 0, sizeof(*r));
}

/* Takes record R (moved) into the run it names, made when new. */
static void run_adopt(struct pd_daemon *d, const struct pd_watch *cfg, struct pd_follow_rec *r)
{
    struct frun *f = run_find(d, pd_follow_run(r));
    uint64_t now = dw_now_ms(d), wall = dw_wall_ms(d);

    if (!f) {
        if (!(f = calloc(1, sizeof(*f))) || !(f->run_id = strdup(pd_follow_run(r)))) {
            free(f);
            pd_follow_cleanup(r);
            return;
        }
        f->d = d;
        f->cfg = cfg;
        f->lock_fd = -1;
        f->delay_ms = r->delay_ms ? r->delay_ms : cfg->follow_first_ms;
        f->due_ms = now + (r->next_ms > wall ? r->next_ms - wall : 0);
        f->deadline_wall = r->started_ms + cfg->follow_timeout_ms;
        f->next = d->runs;
        d->runs = f;
        d->nruns++;
        dw_wake(d, f->due_ms);
    }
    /* The worker reads recs while it reads or writes receipts: a record for the run waits. */
    if (f->busy && (f->step == F_APPLY || f->step == F_CHECK))
        recs_add(&f->later, &f->nlater, r);
    else
        recs_add(&f->recs, &f->nrecs, r);
}

/* Loop thread, once J's file is archived: its records join the runs followed. */
void follow_adopt(struct job *j)
{
    for (size_t i = 0; i < j->nfollow; i++)
        run_adopt(j->d, j->w->cfg, &j->follow[i]);
    free(j->follow);
    j->follow = NULL;
    j->nfollow = 0;
}

static const struct pd_watch *watch_named(struct pd_daemon *d, const char *name)
{
    for (size_t i = 0; i < d->nwatches; i++)
        if (!strcmp(d->watches[i].cfg->name, name))
            return d->watches[i].cfg;
    return NULL;
}

/* At start: every run a stopped or killed daemon (or another one) was following. */
void follow_load(struct pd_daemon *d)
{
    char *dir = follow_dir(d);
    DIR *dh;
    struct dirent *de;

    if (dir)
        dw_sweep_temps(d, dir); /* a record half-written when the last daemon was killed */
    dh = dir ? opendir(dir) : NULL;

    while (dh && (de = readdir(dh))) {
        struct pd_follow_rec r;
        size_t n = strlen(de->d_name);
        char *path;
        if (n < 6 || strcmp(de->d_name + n - 5, ".json") || !(path = dw_join(dir, de->d_name)))
            continue;
        int rc = pd_follow_load(path, &r);
        const struct pd_watch *cfg = rc ? NULL : watch_named(d, r.watch);
        if (rc || !cfg) {
            char qp[PATH_MAX + 16];
            pd_log(PD_LOG_WARN,
                   "event=follow_record_skipped path=%s reason=\"%s\" action=\"left as it is\"",
                   dw_q(path, qp, sizeof(qp)),
                   rc ? pd_strerror(rc) : "its watch is no longer in the configuration");
            if (!rc)
                pd_follow_cleanup(&r);
        } else {
            run_adopt(d, cfg, &r);
        }
        free(path);
    }
    /* A kill may have come after a run's outcome was written and before its record went: the
     * receipts say so before a poll is spent on it (run_check). */
    for (struct frun *f = d->runs; f; f = f->next)
        f->unchecked = true;
    if (dh)
        closedir(dh);
    free(dir);
    if (d->nruns)
        pd_log(PD_LOG_INFO, "event=following runs=%zu", d->nruns);
}

/* ---- polling ------------------------------------------------------------------------------ */

static void run_context(const struct frun *f, char *buf, size_t len)
{
    char qb[PATH_MAX + 16];
    snprintf(buf, len, "watch=%s file=%s flow_run_id=%s", f->cfg->name,
             dw_q(f->recs[0].file, qb, sizeof(qb)), f->run_id);
}

static void on_answer(void *arg, const struct pd_client_result *r);
static bool run_check(struct frun *f);

/* Submits the run's next request (a poll, its logs, or a retry). False: it could not go. */
static bool run_request(struct frun *f, enum fstep step)
{
    static const enum pd_api_run_path paths[] = {PD_API_RUN, PD_API_RUN_LOGS, PD_API_RUN_RETRY};
    char *url = NULL, context[PATH_MAX + 200];
    struct pd_client_request req = {.method = step == F_RETRY ? "POST" : "GET", .poll = true};
    /* The log's first page (the API's page size): a run's log is short, and its last entries
     * say why it failed; the error file keeps the last LOG_LINES_KEPT. */
    int rc = step == F_LOGS ? pd_api_run_logs_page_url(&f->d->cfg->pw, f->run_id, 1, &url)
                            : pd_api_flow_run_url(&f->d->cfg->pw, paths[step], f->run_id, &url);

    run_context(f, context, sizeof(context));
    req.url = url;
    req.context = context;
    if (!rc && step == F_RETRY) {
        req.body = "{}";
        req.body_len = 2;
    }
    if (!rc)
        rc = pd_client_submit(f->d->client, &req, on_answer, f);
    free(url);
    if (rc)
        return false;
    f->step = step;
    f->busy = true;
    return true;
}

/* The run's record with the first name, locked: every daemon on the same state dir picks the
 * same one for the run (a batch's run has a record per file), so only one polls it at a time. */
static int run_lock(struct frun *f)
{
    const char *first = f->recs[0].path;
    if (f->lock_fd >= 0)
        return 0;
    for (size_t i = 1; i < f->nrecs; i++)
        if (strcmp(f->recs[i].path, first) < 0)
            first = f->recs[i].path;
    int fd = open(first, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        close(fd);
        return -EWOULDBLOCK;
    }
    f->lock_fd = fd;
    return 0;
}

static void run_unlock(struct frun *f)
{
    if (f->lock_fd >= 0)
        close(f->lock_fd);
    f->lock_fd = -1;
}

uint64_t follow_tick(struct pd_daemon *d, uint64_t now)
{
    uint64_t due = NEVER;
    for (struct frun *f = d->runs, *next; f && !d->stopping; f = next) {
        next = f->next;
        if (f->busy)
            continue;
        if (f->due_ms > now) {
            due = f->due_ms < due ? f->due_ms : due;
            continue;
        }
        int rc = run_lock(f);
        if (rc == -ENOENT) { /* another daemon recorded its outcome */
            run_unlink(f);
            run_free(f);
            continue;
        }
        if (rc || !(f->unchecked ? run_check(f) : run_request(f, F_POLL))) {
            run_unlock(f);
            f->due_ms = now + f->delay_ms;
            due = f->due_ms < due ? f->due_ms : due;
        }
    }
    return due;
}

bool follow_idle(const struct pd_daemon *d)
{
    return d->nruns == 0;
}

bool follow_busy(const struct pd_daemon *d)
{
    for (const struct frun *f = d->runs; f; f = f->next)
        if (f->busy)
            return true;
    return false;
}

void follow_stop(struct pd_daemon *d)
{
    for (struct frun *f = d->runs, *next; f; f = next) {
        next = f->next;
        if (f->busy)
            continue; /* its answer or step ends it */
        run_unlink(f);
        run_free(f);
    }
}

/* ---- answers ------------------------------------------------------------------------------ */

static void run_apply(struct frun *f);

/* Reschedules a run still going (or a poll that could not be judged now). */
static void run_later(struct frun *f, bool grow)
{
    if (grow)
        f->delay_ms = pd_follow_delay(f->delay_ms, f->cfg->follow_first_ms, f->cfg->follow_cap_ms);
    f->due_ms = dw_now_ms(f->d) + f->delay_ms;
    run_unlock(f);
    dw_wake(f->d, f->due_ms);
}

/* A final outcome, seen final at FINISHED_MS (wall): what it leads to, and the requests that
 * takes first. */
static void run_final_at(struct frun *f, enum pd_run_outcome o, uint64_t finished_ms)
{
    f->outcome = o;
    f->finished_ms = finished_ms;
    f->act = pd_follow_decide(o, f->cfg->on_flow_failure, (unsigned)(f->recs[0].nruns - 1),
                              (unsigned)f->cfg->flow_retries);
    if (f->act == PD_FOLLOW_RETRY && run_request(f, F_RETRY))
        return;
    if (f->act == PD_FOLLOW_RETRY)
        f->act = PD_FOLLOW_FAIL;
    /* Why it failed is in the run's log: read it for the warning or the error file. */
    if (o != PD_RUN_SUCCESS && o != PD_RUN_UNKNOWN && run_request(f, F_LOGS))
        return;
    run_apply(f);
}

static void run_final(struct frun *f, enum pd_run_outcome o)
{
    run_final_at(f, o, dw_wall_ms(f->d));
}

static void poll_answered(struct frun *f, const struct pd_client_result *r, bool ok)
{
    struct pd_api_run run = {0};
    enum pd_run_outcome o = PD_RUN_UNKNOWN;

    if (ok && pd_api_parse_run(r->body, r->body_len, &run) == 0) {
        o = pd_run_outcome_of(run.status);
        f->status = run.status;
    } else if (ok) /* an answer this version cannot read: asked again, until follow_timeout */
        o = PD_RUN_RUNNING;
    else
        f->why = strdup(r->message ? r->message : pd_strerror(r->err));
    pd_api_run_cleanup(&run);
    if (o == PD_RUN_RUNNING && dw_wall_ms(f->d) >= f->deadline_wall) {
        o = PD_RUN_UNKNOWN;
        f->why = strdup("still not final after follow_timeout");
    }
    if (o == PD_RUN_RUNNING) {
        run_later(f, true);
        return;
    }
    run_final(f, o);
}

/* A retry started a new run: every record follows it now, from the beginning. */
static void retry_answered(struct frun *f, const struct pd_client_result *r, bool ok)
{
    char *id = NULL, qb[PATH_MAX + 16], *dir = follow_dir(f->d);

    if (!ok || pd_api_parse_retry(r->body, r->body_len, &id) || !dir) {
        free(dir);
        free(id);
        f->act = PD_FOLLOW_FAIL;
        if (!run_request(f, F_LOGS))
            run_apply(f);
        return;
    }
    f->delay_ms = f->cfg->follow_first_ms;
    for (size_t i = 0; i < f->nrecs; i++) {
        struct pd_follow_rec *rec = &f->recs[i];
        rec->delay_ms = f->delay_ms;
        rec->next_ms = dw_wall_ms(f->d) + f->delay_ms;
        if (pd_follow_add_run(rec, id) || pd_follow_save(rec, dir))
            pd_log(PD_LOG_ERROR, "event=follow_not_saved watch=%s file=%s flow_run_id=%s",
                   f->cfg->name, dw_q(rec->file, qb, sizeof(qb)), id);
    }
    pd_log(PD_LOG_WARN,
           "event=flow_run_retried watch=%s file=%s flow_run_id=%s outcome=%s new_flow_run_id=%s "
           "retry=%zu",
           f->cfg->name, dw_q(f->recs[0].file, qb, sizeof(qb)), f->run_id,
           pd_run_outcome_name(f->outcome), id, f->recs[0].nruns - 1);
    free(f->run_id);
    f->run_id = id;
    f->deadline_wall = dw_wall_ms(f->d) + f->cfg->follow_timeout_ms;
    free(dir);
    run_later(f, false);
}

static void on_answer(void *arg, const struct pd_client_result *r)
{
    struct frun *f = arg;
    struct pd_daemon *d = f->d;
    enum pd_delivery_verdict v = pd_delivery_verdict(r->err);

    f->busy = false;
    if (d->stopping || v == PD_DL_LATER) {
        /* Its record stays: followed again after the restart. */
        if (d->stopping) {
            run_unlink(f);
            run_free(f);
            dw_check_stopped(d);
        } else {
            run_later(f, false);
        }
        return;
    }
    if (v == PD_DL_STOP) {
        if (!d->fatal)
            d->fatal = strdup(r->message ? r->message : pd_strerror(r->err));
        run_later(f, false);
        pd_daemon_stop(d, 0);
        return;
    }
    switch (f->step) {
    case F_POLL:
        poll_answered(f, r, v == PD_DL_ACKED);
        return;
    case F_RETRY:
        retry_answered(f, r, v == PD_DL_ACKED);
        return;
    default: /* F_LOGS: without them, the outcome is recorded all the same */
        if (v == PD_DL_ACKED) {
            unsigned next_page;
            pd_api_parse_run_logs(r->body, r->body_len, &f->logs, &f->nlogs, &next_page);
        }
        run_apply(f);
        return;
    }
}

/* ---- recording the outcome (thread pool) ------------------------------------------------- */

/* The error file of an archived file whose run failed: its receipt plus the run's facts. */
static char *error_text(struct frun *f, const char *receipt_path, const char *dashboard)
{
    char *text = NULL, *out = NULL;
    size_t len;
    cJSON *o = NULL, *logs;

    if (pd_fs_read_all(receipt_path, 64u << 20, &text, &len) ||
        !(o = cJSON_ParseWithLength(text, len))) {
        free(text);
        return NULL;
    }
    cJSON_ReplaceItemInObjectCaseSensitive(o, "result", cJSON_CreateString("failed"));
    char reason[512];
    snprintf(reason, sizeof(reason),
             "flow run %s ended %s in Patchworks%s; the file was delivered, the flow did not "
             "process it: see the run's log below or on the dashboard, fix the cause, then drop "
             "the file again",
             f->run_id, pd_run_outcome_name(f->outcome),
             f->recs[0].nruns > 1 ? " after its retries" : "");
    cJSON_AddStringToObject(o, "reason", reason);
    cJSON_AddStringToObject(o, "flow_run_id", f->run_id);
    cJSON_AddStringToObject(o, "flow_run_outcome", pd_run_outcome_name(f->outcome));
    if (f->status)
        cJSON_AddNumberToObject(o, "flow_run_status", (double)f->status);
    if (dashboard)
        cJSON_AddStringToObject(o, "dashboard", dashboard);
    logs = cJSON_AddArrayToObject(o, "flow_run_logs");
    size_t from = f->nlogs > LOG_LINES_KEPT ? f->nlogs - LOG_LINES_KEPT : 0;
    for (size_t i = from; logs && i < f->nlogs; i++) {
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "time", f->logs[i].time ? f->logs[i].time : "");
        cJSON_AddStringToObject(e, "level", f->logs[i].level ? f->logs[i].level : "");
        cJSON_AddStringToObject(e, "message", f->logs[i].message ? f->logs[i].message : "");
        cJSON_AddItemToArray(logs, e);
    }
    out = pd_jsonfmt_print(o);
    cJSON_Delete(o);
    free(text);
    return out;
}

/* The error file of REC's file in the failed folder, when on_flow_failure = fail moved it there
 * (before a kill, or another daemon did): its path, or NULL. */
static char *failed_already(const struct frun *f, const struct pd_follow_rec *rec)
{
    return pd_follow_find_sidecar(f->cfg->failed_dir, base_of(rec->file), ".error.json",
                                  rec->claim_id);
}

/* on_flow_failure = fail: the archived file goes to the failed folder beside an error file. */
static int move_to_failed(struct frun *f, const struct pd_follow_rec *rec, const char *receipt,
                          const char *dashboard)
{
    size_t n = strlen(receipt) - strlen(".receipt.json");
    char *archived = strndup(receipt, n), *text = NULL, *final = NULL, *moved = NULL;
    struct stat st;
    int rc = archived ? 0 : PD_ENOMEM;

    /* Moved already, and a kill came before its receipt went: only the receipt is left to go. */
    if (!rc && lstat(archived, &st) && errno == ENOENT && (moved = failed_already(f, rec))) {
        free(moved);
        free(archived);
        unlink(receipt);
        return pd_fs_fsync_dir(rec->archive_dir);
    }
    if (!rc && !(text = error_text(f, receipt, dashboard)))
        rc = PD_ENOMEM;
    if (!rc) {
        struct dw_place pl = {.from = archived,
                              .dir = f->cfg->failed_dir,
                              .name = rec->file,
                              .claim_id = NULL,
                              .sidecar = ".error.json",
                              .text = text};
        rc = dw_place(&pl, &final);
    }
    if (!rc) {
        pd_crashpoint("failed_moved");
        unlink(receipt);
        pd_fs_fsync_dir(rec->archive_dir);
        pd_crashpoint("failed_receipt_gone");
    }
    free(final);
    free(archived);
    free(text);
    return rc;
}

/* Every record of the run: its outcome into the receipt (and the file moved on fail); then the
 * record goes. A record whose receipt is gone (retention) goes too: there is nothing to write. */
static void work_apply(uv_work_t *wk)
{
    struct frun *f = wk->data;
    char *dir = follow_dir(f->d), *dashboard = NULL;
    /* Receipts are replaced through the watch's own state folder: a kill leaves no temp name
     * in the archive. */
    char *tmpdir = dw_join(f->cfg->work_dir, "state");

    pd_api_dashboard_url(&f->d->cfg->pw, f->run_id, &dashboard);
    for (size_t i = 0; i < f->nrecs; i++) {
        struct pd_follow_rec *rec = &f->recs[i];
        /* The chunks of one file are different runs, ending together: their receipt is read,
         * changed and replaced by one of them at a time (threads and daemons alike). */
        int lock = open(rec->archive_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (lock >= 0)
            flock(lock, LOCK_EX);
        char *receipt = pd_follow_find_receipt(rec->archive_dir, base_of(rec->file), rec->claim_id);
        struct pd_follow_result res = {.chunk = rec->chunk,
                                       .outcome = pd_run_outcome_name(f->outcome),
                                       .finished_ms = f->finished_ms,
                                       .dashboard = dashboard,
                                       .runs = (const char *const *)rec->runs,
                                       .nruns = rec->nruns};
        /* No receipt yet (the file is archived after its records are made: a crash between
         * the two is finished by the restart) or none any more (retention): kept until
         * follow_timeout, then let go. */
        int rc = 0;
        char *moved = receipt ? NULL : failed_already(f, rec);
        if (receipt)
            rc = pd_follow_receipt_update(receipt, tmpdir, &res);
        else if (!moved && dw_wall_ms(f->d) < f->deadline_wall)
            rc = -ENOENT; /* (moved: the file and its outcome are in the failed folder) */
        free(moved);
        if (!rc && receipt)
            pd_crashpoint("outcome_written");
        if (!rc && receipt && f->act == PD_FOLLOW_FAIL)
            rc = move_to_failed(f, rec, receipt, dashboard);
        if (lock >= 0)
            close(lock);
        if (rc) {
            /* Kept: tried again at the next poll. */
            f->why = f->why ? f->why : strdup(pd_strerror(rc));
            free(receipt);
            continue;
        }
        unlink(rec->path);
        f->applied[i] = true;
        free(receipt);
    }
    if (dir)
        pd_fs_fsync_dir(dir);
    free(tmpdir);
    free(dir);
    free(dashboard);
}

/* ---- after the outcome (loop thread) ------------------------------------------------------ */

/* The run's last log messages, for its warning line. */
static void last_messages(const struct frun *f, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = f->nlogs > LOG_LINES_SAID ? f->nlogs - LOG_LINES_SAID : 0; i < f->nlogs; i++)
        if (f->logs[i].message && used < len)
            used += (size_t)snprintf(buf + used, len - used, "%s%s", used ? " | " : "",
                                     f->logs[i].message);
}

static void say_outcome(struct frun *f, const struct pd_follow_rec *rec)
{
    struct pd_daemon *d = f->d;
    char qb[PATH_MAX + 16], msgs[1024], qm[2048], qw[600];
    static const char *const actions[] = {"recorded", "reported", "moved to the failed folder",
                                          "retried"};
    bool bad = f->outcome != PD_RUN_SUCCESS;

    last_messages(f, msgs, sizeof(msgs));
    /* One line per file, never folded with the other files of its run (a batch). */
    pd_log(
        bad ? (enum pd_log_level)(PD_LOG_WARN | PD_LOG_EVERY) : PD_LOG_INFO,
        "event=flow_run_finished watch=%s file=%s flow_run_id=%s outcome=%s action=\"%s\"%s%s%s%s",
        f->cfg->name, dw_q(rec->file, qb, sizeof(qb)), f->run_id, pd_run_outcome_name(f->outcome),
        actions[f->act], msgs[0] ? " last_messages=" : "",
        msgs[0] ? dw_q(msgs, qm, sizeof(qm)) : "", f->why ? " reason=" : "",
        f->why ? dw_q(f->why, qw, sizeof(qw)) : "");
    if (d->opts.report)
        fprintf(d->opts.report, "%s: flow run %s %s%s%s\n", rec->file, f->run_id,
                pd_run_outcome_name(f->outcome), f->act == PD_FOLLOW_FAIL ? "; moved to " : "",
                f->act == PD_FOLLOW_FAIL ? f->cfg->failed_dir : "");
    pd_metrics_flow_run(d->opts.metrics, f->cfg->name, pd_run_outcome_name(f->outcome),
                        f->finished_ms > rec->started_ms ? f->finished_ms - rec->started_ms : 0);
    switch (f->outcome) {
    case PD_RUN_SUCCESS:
        d->sum.runs_succeeded++;
        break;
    case PD_RUN_UNKNOWN:
        d->sum.runs_unknown++;
        break;
    default:
        d->sum.runs_failed++;
        break;
    }
}

/* The records adopted while the thread pool had the run join it; how many did. */
static size_t take_later(struct frun *f)
{
    size_t fresh = 0;
    for (size_t i = 0; i < f->nlater; i++)
        if (f->later[i].path) {
            recs_add(&f->recs, &f->nrecs, &f->later[i]);
            fresh++;
        }
    free(f->later);
    f->later = NULL;
    f->nlater = 0;
    return fresh;
}

static void on_applied(uv_work_t *wk, int status)
{
    struct frun *f = wk->data;
    struct pd_daemon *d = f->d;
    size_t kept = 0;

    f->busy = false;
    /* Adopted while the outcome was written: one at a path just written is done (its record
     * was saved before its file was archived, so before the worker found the receipt). */
    for (size_t i = 0; i < f->nlater; i++)
        for (size_t k = 0; k < f->nrecs; k++)
            if (f->applied[k] && !strcmp(f->recs[k].path, f->later[i].path)) {
                pd_follow_cleanup(&f->later[i]);
                break;
            }
    for (size_t i = 0; i < f->nrecs; i++) {
        if (!f->applied[i]) {
            f->recs[kept++] = f->recs[i]; /* not written yet: tried again later */
            continue;
        }
        say_outcome(f, &f->recs[i]);
        pd_follow_cleanup(&f->recs[i]);
    }
    f->nrecs = kept;
    size_t fresh = take_later(f);
    free(f->applied);
    f->applied = NULL;
    if (f->d->opts.report)
        fflush(f->d->opts.report);
    if (f->nrecs && status != UV_ECANCELED && !f->d->stopping) {
        /* The outcome is known: records that came meanwhile are written soon, records whose
         * receipt was missing are tried again after follow_cap. */
        f->delay_ms = fresh ? f->cfg->follow_first_ms : f->cfg->follow_cap_ms;
        run_later(f, false);
        return;
    }
    run_unlink(f);
    run_free(f);
    dw_check_stopped(d);
}

static void run_apply(struct frun *f)
{
    free(f->applied);
    if (!(f->applied = calloc(f->nrecs ? f->nrecs : 1, sizeof(*f->applied)))) {
        run_later(f, false);
        return;
    }
    f->step = F_APPLY;
    f->busy = true;
    f->work.data = f;
    if (uv_queue_work(f->d->loop, &f->work, work_apply, on_applied)) {
        f->busy = false;
        run_later(f, false);
    }
}

/* ---- a run loaded at start: its receipts first (thread pool, then loop thread) ------------ */

static void work_check(uv_work_t *wk)
{
    struct frun *f = wk->data;

    f->saved = PD_RUN_RUNNING;
    f->saved_ms = 0;
    for (size_t i = 0; i < f->nrecs && !pd_run_final(f->saved); i++) {
        const struct pd_follow_rec *rec = &f->recs[i];
        char *receipt = pd_follow_find_receipt(rec->archive_dir, base_of(rec->file), rec->claim_id);
        /* on_flow_failure = fail moved it, and a kill came before its record went: the error
         * file holds the receipt with the outcome. */
        if (!receipt)
            receipt = failed_already(f, rec);
        if (receipt)
            (void)pd_follow_saved_outcome(receipt, rec->chunk, f->run_id, &f->saved, &f->saved_ms);
        free(receipt);
    }
}

/* An outcome a receipt already holds is not asked again: it is written into the receipts that
 * lack it and acted on; else the run is polled now. */
static void on_checked(uv_work_t *wk, int status)
{
    struct frun *f = wk->data;
    struct pd_daemon *d = f->d;

    f->busy = false;
    f->unchecked = false;
    take_later(f);
    if (status == UV_ECANCELED || d->stopping) {
        run_unlink(f);
        run_free(f);
        dw_check_stopped(d);
        return;
    }
    if (pd_run_final(f->saved)) {
        char context[PATH_MAX + 200];
        run_context(f, context, sizeof(context));
        pd_log(PD_LOG_INFO, "event=flow_run_outcome_found %s outcome=%s action=\"not polled again\"",
               context, pd_run_outcome_name(f->saved));
        run_final_at(f, f->saved, f->saved_ms ? f->saved_ms : dw_wall_ms(d));
        return;
    }
    f->due_ms = dw_now_ms(d);
    run_unlock(f);
    dw_wake(d, f->due_ms);
}

static bool run_check(struct frun *f)
{
    f->step = F_CHECK;
    f->busy = true;
    f->work.data = f;
    if (uv_queue_work(f->d->loop, &f->work, work_check, on_checked)) {
        f->busy = false;
        f->unchecked = false; /* polled instead */
        return false;
    }
    return true;
}
