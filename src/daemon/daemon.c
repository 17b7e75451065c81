/*
 * The drop-folder daemon (see pd_daemon.h).
 *
 * The loop thread only keeps books and talks to the network; every step that touches a file's
 * content or the disk's durability (hashing, splitting, saving progress, archiving) runs on
 * libuv's thread pool, one step of a job at a time, so the loop never stalls on a big file or a
 * slow fsync. A job's step changes only in job_set(), which logs the transition.
 *
 *   candidate --ready--> claim (rename into work/) --> PREPARE (lock, hash, state, splitter)
 *     --> chunk --> request --OK--> ACK (save progress) --> next chunk ... --> FINISH (archive)
 *                           --413--> RESPLIT --> chunk
 *                           --refused / gave up--> FAIL (failed folder)
 *
 * With `batch = N` a whole small file's chunk waits in its watch's open batch (pd_batch.h)
 * instead of going at once; the batch goes as one request and each of its files then takes
 * the usual ACK and FINISH steps (see batcher.c).
 *
 * This file holds the life cycle, the wake timer and dispatch; the other files of src/daemon/
 * hold one concern each and share daemon_internal.h.
 */
#include "daemon_internal.h"

#include "pd_cluster.h"
#include "pd_clock.h"
#include "pd_commit.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_lookup.h"
#include "pd_metrics.h"
#include "pd_retention.h"
#include "pd_zone.h"

#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static void stop_when_idle(struct pd_daemon *d);

uint64_t dw_now_ms(const struct pd_daemon *d)
{
    return d->clock->mono_ms(d->clock->arg);
}

uint64_t dw_wall_ms(const struct pd_daemon *d)
{
    return d->clock->wall_ms(d->clock->arg);
}

char *dw_join(const char *a, const char *b)
{
    char *out;
    return asprintf(&out, "%s/%s", a, b) < 0 ? NULL : out;
}

const char *dw_q(const char *v, char *buf, size_t len)
{
    return pd_log_quote(v ? v : "", buf, len);
}

/* ---- waking ------------------------------------------------------------------------------ */

static uint64_t earliest(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static void on_wake(uv_timer_t *t);

/*
 * One timer, armed for the earliest deadline: a candidate's look (settle, a rescan's retry), a
 * batch window's end, a run's poll, a parked job's retry, a stuck warning, a disabled watch's
 * setup. Whoever moves a deadline earlier calls this; on_wake computes them all again. The
 * sleep is capped at WAKE_MAX_MS and ends on a whole second of the loop's clock, where
 * cli_run.c's heartbeat beats too: an idle process wakes once a second, not twice.
 */
void dw_wake(struct pd_daemon *d, uint64_t at)
{
    uint64_t now = dw_now_ms(d), loop_now = uv_now(d->loop);
    uint64_t delay = at > now ? at - now : 0;

    if (!d->started || d->stopping)
        return; /* pd_daemon_start wakes at once; a stop polls on its own */
    if (delay >= WAKE_MAX_MS)
        delay = WAKE_MAX_MS - loop_now % WAKE_MAX_MS;
    if (d->woke_ms + WAKE_GAP_MS > loop_now + delay)
        delay = d->woke_ms + WAKE_GAP_MS - loop_now;
    if (uv_is_active((uv_handle_t *)&d->wake) && uv_timer_get_due_in(&d->wake) <= delay)
        return;
    uv_timer_start(&d->wake, on_wake, delay, 0);
}

/* W's due work: a setup retry, retention, the candidates due. Returns W's next deadline. */
static uint64_t watch_wake(struct dwatch *w, uint64_t now)
{
    if (w->disabled && w->setup_due <= now)
        dw_watch_try_setup(w);
    if (!w->disabled)
        pd_retention_tick(w->retention, now); /* its own schedule (>= 1 s): seen within the cap */
    if (w->next_due <= now) {
        uint64_t next = NEVER;
        for (size_t b = 0; b < w->nbuckets; b++)
            for (struct cand *c = w->buckets[b], *nx; c; c = nx) {
                nx = c->next;
                if (!c->queued && c->due_ms <= now)
                    cand_check(w, c, now); /* may remove c */
            }
        /* Candidates checked just now may be due again soon. */
        for (size_t b = 0; b < w->nbuckets; b++)
            for (struct cand *c = w->buckets[b]; c; c = c->next)
                if (!c->queued && c->due_ms < next)
                    next = c->due_ms;
        w->next_due = next;
    }
    return w->disabled ? earliest(w->setup_due, w->next_due) : w->next_due;
}

/* Parked jobs due are retried; returns the jobs' next deadline (a retry or a stuck warning). */
static uint64_t jobs_wake(struct pd_daemon *d, uint64_t now)
{
    uint64_t next = NEVER, every = d->cfg->daemon.stuck_warning_ms;

    dw_warn_stuck(d, now);
    for (struct job *j = d->jobs; j && !d->stopping; j = j->next) {
        if (j->step == STEP_SENDING && j->sent_ms && every)
            next = earliest(next, j->sent_ms + (j->warned + 1) * every);
        if (j->step != STEP_PARKED || j->busy)
            continue;
        if (j->park_until > now) {
            next = earliest(next, j->park_until);
            continue;
        }
        /* Parked jobs (could not be moved out of work/) are retried now and then. */
        if (j->reprepare) {
            j->reprepare = false;
            j->dedupe_wait = false;
            job_set(j, STEP_PREPARE);
            job_run(j, work_prepare);
            continue;
        }
        job_set(j, j->finish_failed ? STEP_FINISH_FAIL : STEP_FINISH_OK);
        job_run(j, work_finish);
    }
    return next;
}

static void on_wake(uv_timer_t *t)
{
    struct pd_daemon *d = t->data;
    uint64_t now = dw_now_ms(d), next = NEVER;

    d->woke_ms = uv_now(d->loop);
    status_tick(d);
    if (d->stopping) {
        stop_when_idle(d); /* the last request on the wire may have just been answered */
        return;
    }
    for (size_t i = 0; i < d->nwatches && !d->stopping; i++)
        next = earliest(next, watch_wake(&d->watches[i], now));
    next = earliest(next, batch_tick(d, now));
    if (!(d->opts.once && d->opts.no_follow))
        next = earliest(next, follow_tick(d, now));
    next = earliest(next, jobs_wake(d, now));
    if (d->opts.once && dw_is_once_idle(d))
        pd_daemon_stop(d, 0);
    dw_wake(d, next);
}

void dw_dispatch(struct pd_daemon *d)
{
    if (d->stopping)
        return;
    if (d->opts.once)
        dw_wake(d, 0); /* a job ended or a claim went: --once may be done */
    for (size_t tries = 0; tries < d->nwatches && d->active < d->max_active;) {
        struct dwatch *w = &d->watches[d->rr++ % d->nwatches];
        if ((!w->nheap && !w->orphans_left) || (w->cfg->ordered && w->active) ||
            w->active >= w->max_jobs) {
            tries++;
            continue;
        }
        tries = 0;
        if (w->orphans_left) /* files left in work/ by a stop or crash go first */
            dw_resume_orphans(w, false);
        else
            dw_claim(w, dw_heap_pop(w));
    }
}

/* ---- stopping -------------------------------------------------------------------------- */

bool dw_is_once_idle(struct pd_daemon *d)
{
    if (d->stopping || d->jobs || (!d->opts.no_follow && !follow_idle(d)))
        return false;
    for (size_t i = 0; i < d->nwatches; i++) {
        struct dwatch *w = &d->watches[i];
        if (w->disabled)
            continue; /* nothing of it can be handled now; the summary says so */
        if (!w->scanned || w->nheap || w->orphans_left)
            return false;
        for (size_t b = 0; b < w->nbuckets; b++)
            for (struct cand *c = w->buckets[b]; c; c = c->next)
                if (c->due_ms != NEVER || c->queued)
                    return false;
    }
    return true;
}

/* Regular files in DIR: what a stop leaves in a work/ folder. */
static size_t count_files(const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *de;
    size_t n = 0;

    if (!dir)
        return 0;
    while ((de = readdir(dir))) {
        struct stat st;
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode))
            n++;
    }
    closedir(dir);
    return n;
}

void dw_check_stopped(struct pd_daemon *d)
{
    if (d->opts.once)
        dw_wake(d, 0); /* a job or a followed run ended: --once may be done */
    if (!d->stopping || d->stopped_told)
        return;
    for (struct job *j = d->jobs; j; j = j->next)
        if (j->busy)
            return;
    if (follow_busy(d))
        return;
    follow_stop(d); /* their records stay: followed again at the next start */
    size_t left = 0;
    for (size_t i = 0; i < d->nwatches; i++)
        left += count_files(d->watches[i].work_dir);
    /* --once never calls a run done while files sit in work/, whatever held them there. */
    if (d->opts.once && left > d->sum.stuck)
        d->sum.stuck = left;
    struct pd_commit_stats cs = {0};
    if (d->commit)
        cs = pd_commit_stats(d->commit);
    /* Group commit: durable steps, the rounds that served them and the syncs those made. */
    pd_log(PD_LOG_INFO,
           "event=stopped files_left_in_work=%zu durable_steps=%" PRIu64 " rounds=%" PRIu64
           " syncs=%" PRIu64 "%s",
           left, cs.waits, cs.rounds, cs.syncs,
           left ? " action=\"resumed at the next start\"" : "");
    /* Parked jobs keep their files in work/; nothing else holds them. */
    while (d->jobs)
        job_free(d->jobs);
    d->stopped_told = true;
    uv_timer_stop(&d->grace);
    uv_timer_stop(&d->wake);
    if (d->opts.on_stopped)
        d->opts.on_stopped(d->opts.arg, d->fatal);
}

/*
 * Grace is for requests on the wire. Requests only waiting (for their next retry, the rate
 * limit or a token) are canceled at once: their chunks are sent again after the restart, so a
 * stop while Patchworks is down does not wait the whole shutdown_grace for nothing.
 */
static void stop_when_idle(struct pd_daemon *d)
{
    if (!d->stopping || !d->client || pd_client_stats(d->client).in_flight)
        return;
    uv_timer_stop(&d->grace);
    pd_client_close(&d->client, NULL, NULL);
}

static void on_grace_over(uv_timer_t *t)
{
    struct pd_daemon *d = t->data;
    /* Requests still in flight are canceled; their chunks are sent again after the restart. */
    pd_client_close(&d->client, NULL, NULL);
}

void pd_daemon_stop(struct pd_daemon *dd, uint64_t grace_ms)
{
    struct pd_daemon *d = dd;

    if (d->stopping)
        return;
    d->stopping = true;
    atomic_store(&d->cancel_expand, true); /* a long expansion ends now; resumed after a restart */
    /* Until it has stopped, it looks for the last answer on the wire now and then. */
    uv_timer_start(&d->wake, on_wake, STOP_POLL_MS, STOP_POLL_MS);
    for (size_t i = 0; i < d->nwatches; i++) {
        pd_watcher_close(&d->watches[i].watcher, NULL, NULL);
        /* Files waiting in a batch stay in work/ and go after the restart. */
        while (d->watches[i].batches)
            batch_dissolve(d->watches[i].batches);
    }
    /* Syncs start no more changes; what is in flight finishes (or is canceled) as below. */
    for (struct job *j = d->jobs; j; j = j->next)
        pd_lookup_sync_cancel(j->sync);
    if (grace_ms)
        uv_timer_start(&d->grace, on_grace_over, grace_ms, 0);
    else
        pd_client_close(&d->client, NULL, NULL);
    stop_when_idle(d);
    dw_check_stopped(d);
}

/* ---- life cycle ---------------------------------------------------------------------------- */

static void on_client_note(void *arg, enum pd_log_level level, const char *line)
{
    pd_log(level, "%s", line);
}

/* Watch I of the configuration: its rules, folders, share of the jobs, watcher and sweeps. */
static int watch_init(struct pd_daemon *d, size_t i)
{
    const struct pd_config *cfg = d->cfg;
    struct dwatch *w = &d->watches[i];
    const struct pd_watch *wc = &cfg->watches[i];
    int rc;

    w->d = d;
    w->root_fd = -1;
    w->cfg = wc;
    w->next_due = NEVER;
    d->nwatches++;
    if (pd_ready_rules_init(&w->rules, wc->include, wc->exclude, wc->done_marker, wc->settle_ms,
                            wc->min_age_ms))
        return PD_ENOMEM;
    w->work_dir = dw_join(wc->work_dir, "work");
    w->state_dir = dw_join(wc->work_dir, "state");
    if (!w->work_dir || !w->state_dir)
        return PD_ENOMEM;
    /* With several watches, one watch's files may hold at most concurrency - 1 requests
     * (its jobs each hold one while sending): a request slot always stays for the others,
     * even when every request of one partner hangs until its timeout. */
    unsigned share = cfg->pw.concurrency > 1 ? (unsigned)cfg->pw.concurrency - 1 : 1;
    w->max_jobs = wc->max_jobs ? (unsigned)wc->max_jobs : cfg->nwatches > 1 ? share : d->max_active;
    struct pd_watch_opts wo = {.root = wc->path,
                               .rescan_ms = wc->rescan_ms,
                               .poll = wc->poll,
                               .recursive = wc->recursive,
                               .skip = ".patchdrop",
                               .report_skipped = true};
    if ((rc = pd_watcher_create(d->loop, &wo, dw_on_watch_event, w, &w->watcher)))
        return rc;
    /* --once sweeps once at its end instead (cli_run.c) */
    if (!d->opts.once && (rc = pd_retention_create(d->loop, wc, d->clock, &w->retention)))
        return rc;
    dw_watch_try_setup(w);
    return 0;
}

/* The state dir, the body limit learned from 413s, and the client that talks to Patchworks. */
static int daemon_connect(struct pd_daemon *d)
{
    const struct pd_config *cfg = d->cfg;
    char *why = NULL;
    int rc;

    /* The token and the dedupe records live here: only patchdrop's, like work/. */
    if ((rc = pd_zone_own_dir(cfg->state.dir, 0700, true, &why))) {
        pd_log(PD_LOG_ERROR, "event=setup_failed folder=%s reason=\"%s\"", cfg->state.dir,
               why ? why : pd_strerror(rc));
        free(why);
        return rc;
    }
    if ((rc = pd_bodylimit_init(&d->limit, cfg->pw.max_body, cfg->state.dir)))
        return rc;
    d->limit_ready = true;
    struct pd_client_opts co = {.pw = &cfg->pw,
                                .state_dir = cfg->state.dir,
                                .clock = d->clock,
                                .event = on_client_note,
                                .note_arg = d,
                                .metrics = d->opts.metrics,
                                .poll_share = (unsigned)cfg->pw.follow_share};
    /* [cluster]: the account's rate is shared with the other hosts through Redis. */
    if (cfg->cluster.redis &&
        (rc = pd_cluster_create(d->loop, cfg, d->clock, d->opts.metrics, &d->cluster)))
        return rc;
    co.cluster = d->cluster;
    if (d->cluster)
        pd_cluster_set_beat(d->cluster, dw_beat_json, d);
    return pd_client_create(d->loop, &co, &d->client);
}

int pd_daemon_create(uv_loop_t *loop, const struct pd_daemon_opts *opts, struct pd_daemon **out)
{
    struct pd_daemon *d = calloc(1, sizeof(*d));
    const struct pd_config *cfg = opts->cfg;
    int rc = PD_ENOMEM;

    *out = NULL;
    if (!d)
        return PD_ENOMEM;
    d->loop = loop;
    d->cfg = cfg;
    d->opts = *opts;
    d->clock = opts->clock ? opts->clock : pd_clock_system();
    uv_mutex_init(&d->holders_lock);
    d->max_active = (unsigned)cfg->pw.concurrency * 2;
    /* Whether a file is still open for writing is asked with a read lease. Without CAP_LEASE
     * leases work only on files patchdrop's user owns: settle alone judges the others. */
    d->lease = pd_zone_lease_possible();
    if (!d->lease)
        pd_log(PD_LOG_WARN,
               "event=lease_unavailable reason=\"patchdrop's user has no CAP_LEASE\" "
               "action=\"a file a partner still holds open for writing is judged by settle "
               "alone; the packaged unit grants AmbientCapabilities=CAP_LEASE\"");
    /* A writer opening a file in the moment we hold its lease sends us SIGIO (lease break):
     * the lease is released at once anyway, so the signal must not end the process. */
    signal(SIGIO, SIG_IGN);
    d->watches = calloc(cfg->nwatches ? cfg->nwatches : 1, sizeof(*d->watches));
    if (!d->watches)
        goto fail;
    uv_timer_init(loop, &d->wake);
    uv_timer_init(loop, &d->grace);
    d->wake.data = d;
    d->grace.data = d;
    for (size_t i = 0; i < cfg->nwatches; i++)
        if ((rc = watch_init(d, i)))
            goto fail;
    if ((rc = daemon_connect(d)))
        goto fail;
    *out = (struct pd_daemon *)d;
    return 0;
fail:
    pd_daemon_close((struct pd_daemon **)&d, NULL, NULL);
    return rc ? rc : PD_ENOMEM;
}

int pd_daemon_start(struct pd_daemon *dd)
{
    struct pd_daemon *d = dd;

    d->started = true;
    for (size_t i = 0; i < d->nwatches; i++)
        dw_watch_begin(&d->watches[i]);
    dw_commit_begin(d);
    if (!d->opts.once)
        status_load(d);
    if (!(d->opts.once && d->opts.no_follow))
        follow_load(d);
    dw_control_open(d);
    dw_wake(d, 0); /* retention's first sweep, and what the watches found */
    return 0;
}

struct pd_daemon_summary pd_daemon_summary(const struct pd_daemon *dd)
{
    struct pd_daemon_summary s = dd->sum;
    for (size_t i = 0; i < dd->nwatches; i++)
        s.disabled += dd->watches[i].disabled;
    return s;
}

static void daemon_free(struct pd_daemon *d)
{
    follow_stop(d);
    dw_commit_end(d);
    for (size_t i = 0; i < d->nwatches; i++) {
        struct dwatch *w = &d->watches[i];
        for (size_t b = 0; b < w->nbuckets; b++)
            for (struct cand *c = w->buckets[b], *nx; c; c = nx) {
                nx = c->next;
                free(c->name);
                free(c);
            }
        free(w->buckets);
        free(w->heap);
        free(w->work_dir);
        free(w->state_dir);
        free(w->disabled_why);
        for (unsigned k = 0; k < RECENT_NAMES; k++)
            free(w->recent[k].name);
        dw_orphans_free(w);
        for (size_t k = 0; k < w->nodd; k++)
            free(w->odd[k]);
        free(w->odd);
        if (w->root_fd >= 0)
            close(w->root_fd);
        pd_retention_destroy(&w->retention); /* a sweep under way frees it when it is back */
        pd_ready_rules_cleanup(&w->rules);
    }
    free(d->watches);
    free(d->fatal);
    if (d->limit_ready)
        pd_bodylimit_cleanup(&d->limit);
    free(d->holders);
    status_free(d);
    uv_mutex_destroy(&d->holders_lock);
    if (d->on_closed)
        d->on_closed(d->closed_arg);
    free(d);
}

static void on_closed_one(uv_handle_t *h)
{
    struct pd_daemon *d = h->data;

    if (--d->pending_closes == 0)
        daemon_free(d);
}

static void on_client_closed(void *arg)
{
    struct pd_daemon *d = arg;
    on_closed_one((uv_handle_t *)&d->wake);
}

static void on_control_closed(struct pd_daemon *d)
{
    on_client_closed(d);
}

void pd_daemon_close(struct pd_daemon **dp, void (*on_closed)(void *arg), void *arg)
{
    struct pd_daemon *d = dp ? (struct pd_daemon *)*dp : NULL;

    if (!d)
        return;
    *dp = NULL;
    /* Now, while the config is the caller's still: a reload frees it and starts the next
     * daemon, which reads this, before the handles below have closed. */
    if (d->started && !d->opts.once)
        status_save(d);
    d->closing = true;
    d->on_closed = on_closed;
    d->closed_arg = arg;
    d->stopping = true;
    while (d->jobs)
        job_free(d->jobs); /* callers close only after on_stopped: no job is busy */
    for (size_t i = 0; i < d->nwatches; i++)
        pd_watcher_close(&d->watches[i].watcher, NULL, NULL);
    if (!d->watches) {
        daemon_free(d); /* failed before any handle existed */
        return;
    }
    d->pending_closes = 2;
    if (d->client) {
        d->pending_closes++;
        pd_client_close(&d->client, on_client_closed, d);
    }
    pd_cluster_close(&d->cluster); /* after the client: it gives its permits back */
    d->pending_closes += dw_control_close(d, on_control_closed);
    uv_close((uv_handle_t *)&d->wake, on_closed_one);
    uv_close((uv_handle_t *)&d->grace, on_closed_one);
}
