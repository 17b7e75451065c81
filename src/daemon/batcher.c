/*
 * Open batches (batch = N): several small files' chunks in one request (pd_batch.h builds the
 * body). See the comment on struct dbatch.
 */
#include "daemon_internal.h"
#include "pd_format.h"

#include "pd_api.h"
#include "pd_batch.h"
#include "pd_error.h"
#include "pd_log.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- batching (batch = N) ----------------------------------------------------------------- */

#define BINS_PER_KIND 2 /* open batches of one format and header or root, per watch */

/*
 * A whole small file's chunk, instead of going at once, joins an open batch of its watch: the
 * file's text is added to one combined body (pd_batch.h), the job's own copies are freed and
 * it gives up its active slot so that more files are claimed meanwhile. The batch goes as one
 * request when it holds `batch` files, when a file fits none of the open batches of its kind
 * and this one is the fullest (batch_place), when `batch_window` has passed since it opened,
 * or (run --once) when nothing else of its watch is on the way. Its answer is then every
 * member's answer: each takes the usual ACK step (its receipt names the batch's request id and
 * flow run) and FINISH. A refused batch (422, 413) is sent again file by file, each cut again
 * from its file, so one bad file cannot sink the others. A batch of one goes as a plain
 * request.
 */
struct dbatch {
    struct dbatch *next; /* the watch's open batches */
    struct dwatch *w;
    struct pd_batch *b;
    struct job *jobs, *last; /* members in the order added */
    unsigned n;
    int format;
    uint64_t opened_ms;
    bool pending; /* no body: the watch's files ready together, waiting to be packed */
    size_t pending_bytes;
    bool in_flight;
    bool counted; /* holds one active slot while in flight */
    char *body;
    size_t body_len;
    char id[33];
};

bool batch_enabled(const struct dwatch *w)
{
    /* Ordered watches go one at a time; transcoded files are left out one by one in work_next. */
    return w->cfg->batch > 1 && !w->cfg->ordered && w->cfg->flow_id;
}

/* Thread pool: reads a small file whole, once, into j->raw (see prepare_hash). False: the
 * read failed or came short (the file changed: its size is checked again later). */
bool batch_read(struct job *j)
{
    size_t n = (size_t)j->js.size, got = 0;
    char *buf = n ? malloc(n) : NULL;

    while (buf && got < n) {
        ssize_t r = pread(j->fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    if (!buf || got != n) {
        free(buf);
        return false;
    }
    free(j->raw);
    j->raw = buf;
    j->raw_len = n;
    return true;
}

/* A member's own copies of its bytes go once they are in a batch's body: its single-file body
 * and its splitter (whose buffers are far larger than a small file), and with RAW its read. The
 * body's length stays, for the receipt and the counts. Should it have to go alone after all,
 * the file is cut again from work/ (batch_alone). */
static void batch_shed(struct job *j, bool raw)
{
    pd_delivery_close(&j->dl);
    free(j->body);
    j->body = NULL;
    if (raw) {
        free(j->raw);
        j->raw = NULL;
        j->raw_len = 0;
    }
}

/* Thread pool: a file that was to go in a batch is cut again from its file, to go on its own
 * (with no bytes in memory it cannot join a batch again). */
static void work_alone(uv_work_t *wk)
{
    struct job *j = wk->data;

    pd_delivery_close(&j->dl);
    if (!open_delivery(j))
        work_next(wk);
}

/* A file of a refused batch, or one no batch took, goes as a plain request: with its own body
 * when it still has one, else cut again. */
static void batch_alone(struct job *j)
{
    if (j->body) {
        job_send_chunk(j);
        return;
    }
    batch_shed(j, true);
    job_set(j, STEP_RESPLIT);
    job_run(j, work_alone);
}

/* Takes an open batch off its watch's list (no-op once sent). */
static void batch_unlink(struct dbatch *bt)
{
    for (struct dbatch **pp = &bt->w->batches; *pp; pp = &(*pp)->next)
        if (*pp == bt) {
            *pp = bt->next;
            break;
        }
    bt->next = NULL;
}

static void batch_free(struct dbatch *bt)
{
    if (bt->counted) {
        bt->w->d->active--;
        bt->w->active--;
    }
    batch_unlink(bt);
    pd_batch_destroy(&bt->b);
    free(bt->body);
    free(bt);
}

/* An open batch is given up (shutdown, or a member freed): its files stay in work/. */
void batch_dissolve(struct dbatch *bt)
{
    if (bt->in_flight)
        return; /* its members are busy: never freed before the answer */
    for (struct job *j = bt->jobs; j; j = j->batch_next)
        j->batch = NULL;
    batch_free(bt);
}

/* A new open batch (or, with format -1, the watch's pending files), counting its window from
 * SINCE. */
static struct dbatch *batch_open(struct dwatch *w, int format, uint64_t since)
{
    struct dbatch *bt = calloc(1, sizeof(*bt));
    struct pd_batch_opts o = {.format = format,
                              .max_body = pd_bodylimit_budget(&w->d->limit),
                              .header_lines = (unsigned)w->cfg->header_lines,
                              .max_files = (unsigned)w->cfg->batch};
    if (!bt || (format >= 0 && pd_batch_create(&o, &bt->b))) {
        free(bt);
        return NULL;
    }
    bt->w = w;
    bt->format = format;
    bt->pending = format < 0;
    bt->opened_ms = since;
    /* Oldest first: first fit tries the fullest bodies before the newer ones. */
    struct dbatch **pp = &w->batches;
    while (*pp)
        pp = &(*pp)->next;
    *pp = bt;
    dw_wake(w->d, bt->opened_ms + w->cfg->batch_window_ms); /* its window's end */
    return bt;
}

static void on_batch_done(void *arg, const struct pd_client_result *r);

/* Sends an open batch as one request (a batch of one as a plain request). */
static void batch_send(struct dbatch *bt)
{
    struct dwatch *w = bt ? bt->w : NULL;
    struct pd_client_request req = {.method = "POST"};
    char *url = NULL, context[300];
    int rc;

    if (!bt)
        return;
    batch_unlink(bt);
    if (bt->n == 1) {
        struct job *j = bt->jobs;
        j->batch = NULL;
        batch_free(bt);
        batch_alone(j);
        return;
    }
    bt->body = pd_batch_take_body(bt->b, &bt->body_len);
    rc = bt->body ? pd_jobstate_new_claim_id(bt->id) : PD_ENOMEM;
    if (!rc)
        rc = pd_api_start_url(&w->d->cfg->pw, w->cfg->flow_id, w->cfg->version_id, &url);
    if (!rc) {
        snprintf(context, sizeof(context), "watch=%s request_id=%s files=%u", w->cfg->name, bt->id,
                 bt->n);
        req.url = url;
        req.body = bt->body;
        req.body_len = bt->body_len;
        req.context = context;
        rc = pd_client_submit(w->d->client, &req, on_batch_done, bt);
    }
    free(url);
    if (rc) {
        /* Closing, or out of memory: the files stay in work/ for later. */
        for (struct job *j = bt->jobs, *next; j; j = next) {
            next = j->batch_next;
            j->batch = NULL;
            job_end(j);
        }
        batch_free(bt);
        return;
    }
    bt->in_flight = true;
    /* In flight, it holds one of the slots its members gave up: when the account's rate holds
     * requests back, claims wait for answers instead of piling bodies up in memory. */
    bt->counted = true;
    w->d->active++;
    w->active++;
    char qb[PATH_MAX + 16];
    pd_log(PD_LOG_INFO, "event=batch_sent watch=%s request_id=%s files=%u bytes=%zu first=%s",
           w->cfg->name, bt->id, bt->n, bt->body_len, dw_q(bt->jobs->js.name, qb, sizeof(qb)));
    for (struct job *j = bt->jobs; j; j = j->batch_next) {
        job_set(j, STEP_SENDING);
        j->busy = true;
        j->in_flight = true;
    }
}

/*
 * Where a file goes: first fit over the open batches of its format, oldest first (a file that
 * does not fit one body may fit another of the same header or root). Only when none takes it
 * does another open (its window counted from SINCE): then, with BINS_PER_KIND batches of its
 * kind open already, the fullest of them goes first, and with MAX_OPEN_BATCHES open in all,
 * the oldest; so the watch holds at most BINS_PER_KIND bodies per kind, each at most max_body.
 * NULL: send it alone.
 */
static struct dbatch *batch_place(struct job *j, uint64_t since)
{
    struct dwatch *w = j->w;
    struct dbatch *fullest = NULL, *oldest = NULL;
    unsigned open = 0, same = 0;
    int rc;

    for (struct dbatch *o = w->batches; o; o = o->next) {
        if (o->pending)
            continue;
        open++;
        oldest = oldest ? oldest : o;
        if (o->format != j->format)
            continue;
        rc = pd_batch_add(o->b, j->raw, j->raw_len);
        if (rc == 0)
            return o;
        if (rc == PD_ETOOBIG) {
            same++;
            if (!fullest || pd_batch_body_len(o->b) > pd_batch_body_len(fullest->b))
                fullest = o;
        } else if (rc != PD_ESTATE) {
            return NULL; /* it can never join a batch, or out of memory */
        }
    }
    if (same >= BINS_PER_KIND)
        batch_send(fullest);
    else if (open >= MAX_OPEN_BATCHES)
        batch_send(oldest);
    struct dbatch *bt = batch_open(w, j->format, since);
    if (bt && pd_batch_add(bt->b, j->raw, j->raw_len)) {
        batch_free(bt);
        bt = NULL;
    }
    return bt;
}

/* The job is in BT's body now: it waits there, holding no slot (more files are claimed to
 * join); its own copies go once it shares the body. BT goes when it holds `batch` files. */
static void batch_link(struct dbatch *bt, struct job *j)
{
    struct pd_daemon *d = j->d;

    if (bt->last)
        bt->last->batch_next = j;
    else
        bt->jobs = j;
    bt->last = j;
    bt->n++;
    j->batch = bt;
    j->batch_next = NULL;
    /* A batch of one keeps its member's own body: it goes as a plain request. (Pending files
     * keep their read, for batch_pack.) */
    if (bt->n == 2 && !bt->pending)
        batch_shed(bt->jobs, true);
    if (bt->n >= 2 && !bt->pending)
        batch_shed(j, true);
    if (j->step != STEP_BATCHED)
        job_set(j, STEP_BATCHED);
    if (j->counted) {
        j->counted = false;
        d->active--;
        j->w->active--;
    }
}

static struct dbatch *batch_pending(struct dwatch *w)
{
    for (struct dbatch *o = w->batches; o; o = o->next)
        if (o->pending)
            return o;
    return NULL;
}

/* Is a file of W other than J being prepared (claimed, soon ready)? */
static bool batch_preparing(struct dwatch *w, const struct job *j)
{
    for (struct job *o = w->d->jobs; o; o = o->next)
        if (o != j && o->w == w && o->step == STEP_PREPARE)
            return true;
    return false;
}

struct staged {
    struct job *j;
    size_t order;
};

/* Larger first; in the order they came when of one size. */
static int larger_first(const void *a, const void *b)
{
    const struct staged *x = a, *y = b;
    if (x->j->raw_len != y->j->raw_len)
        return x->j->raw_len > y->j->raw_len ? -1 : 1;
    return x->order < y->order ? -1 : 1;
}

/* First fit decreasing: the watch's files that were ready together go into its open batches,
 * the larger first, so that the small ones fill the room the large ones leave. */
static void batch_pack(struct dwatch *w)
{
    struct dbatch *p = batch_pending(w);
    if (!p)
        return;
    size_t n = 0;
    struct staged *v = calloc(p->n, sizeof(*v));
    for (struct job *j = p->jobs; j && v; j = j->batch_next, n++)
        v[n] = (struct staged){j, n};
    if (v)
        qsort(v, n, sizeof(*v), larger_first);
    uint64_t since = p->opened_ms;
    struct job *j = p->jobs; /* out of memory: in the order they came */
    for (struct job *m = j; m; m = m->batch_next)
        m->batch = NULL;
    batch_free(p);
    for (size_t i = 0; v ? i < n : j != NULL; i++) {
        struct job *m = v ? v[i].j : j;
        j = m->batch_next;
        m->batch_next = NULL;
        struct dbatch *bt = batch_place(m, since);
        if (!bt) {
            batch_alone(m);
            continue;
        }
        batch_link(bt, m);
        if (bt->n >= w->cfg->batch)
            batch_send(bt);
    }
    free(v);
}

/*
 * Loop thread: the job's whole chunk joins a batch of its watch. A file alone in time is placed
 * at once; files ready together (others of the watch being prepared) wait, holding only their
 * read, until the last of them is ready (or they make a body's worth), then are packed larger
 * first (batch_pack). False: send it alone.
 */
bool batch_join(struct job *j)
{
    struct dwatch *w = j->w;
    struct pd_batch_opts o = {.format = j->format, .header_lines = (unsigned)w->cfg->header_lines};
    struct dbatch *p = batch_pending(w);

    j->batchable = false;
    if (pd_batch_check(&o, j->raw, j->raw_len))
        return false; /* a format or shape that never batches */
    if (!p && !batch_preparing(w, j)) {
        struct dbatch *bt = batch_place(j, dw_now_ms(j->d));
        if (!bt)
            return false;
        batch_link(bt, j);
        if (bt->n >= w->cfg->batch)
            batch_send(bt);
        dw_dispatch(j->d);
        return true;
    }
    if (!p && !(p = batch_open(w, -1, dw_now_ms(j->d))))
        return false;
    batch_shed(j, false);
    batch_link(p, j);
    p->pending_bytes += j->raw_len;
    /* Waiting files are bounded as open batches are: BINS_PER_KIND bodies' worth. */
    if (p->n >= w->cfg->batch ||
        p->pending_bytes >= BINS_PER_KIND * pd_bodylimit_budget(&j->d->limit) ||
        !batch_preparing(w, j))
        batch_pack(w);
    dw_dispatch(j->d);
    return true;
}

/* Is any file of W on its way to a batch: not scanned yet, settling, ready to claim, or
 * claimed and being prepared? */
static bool batch_more_coming(struct dwatch *w)
{
    if (w->nheap || !w->scanned)
        return true;
    for (size_t b = 0; b < w->nbuckets; b++)
        for (struct cand *c = w->buckets[b]; c; c = c->next)
            if (c->due_ms != NEVER)
                return true;
    for (struct job *j = w->d->jobs; j; j = j->next)
        if (j->w == w && j->step == STEP_PREPARE)
            return true;
    return false;
}

uint64_t batch_tick(struct pd_daemon *d, uint64_t now)
{
    uint64_t due = NEVER;
    for (size_t i = 0; i < d->nwatches && !d->stopping; i++) {
        struct dwatch *w = &d->watches[i];
        /* Files that waited for others ready with them: packed once none is being prepared
         * (the last one ready packs them itself, batch_join, unless it goes alone), or when
         * their window is over. */
        struct dbatch *p = batch_pending(w);
        if (p && (!batch_preparing(w, NULL) || now >= p->opened_ms + w->cfg->batch_window_ms))
            batch_pack(w);
        bool idle = d->opts.once && w->batches && !batch_more_coming(w);
        for (struct dbatch *bt = w->batches, *next; bt; bt = next) {
            next = bt->next;
            uint64_t end = bt->opened_ms + w->cfg->batch_window_ms;
            if (idle || now >= end)
                batch_send(bt);
            else if (end < due)
                due = end;
        }
    }
    return due;
}

/* The batch's answer is each member's answer; a refused batch goes again file by file. */
static void on_batch_done(void *arg, const struct pd_client_result *r)
{
    struct dbatch *bt = arg;
    struct dwatch *w = bt->w;
    unsigned pos = 0;
    enum pd_delivery_verdict v = pd_delivery_verdict(r->err);

    bt->in_flight = false;
    if (v == PD_DL_ACKED)
        pd_bodylimit_accepted(&w->d->limit, bt->body_len);
    else if (v == PD_DL_RECUT)
        pd_bodylimit_refused(&w->d->limit, bt->body_len);
    if (v == PD_DL_RECUT || r->err == PD_EREJECTED) {
        pd_log(PD_LOG_WARN,
               "event=batch_refused watch=%s request_id=%s files=%u status=%ld "
               "action=\"each file is sent again on its own\"",
               w->cfg->name, bt->id, bt->n, r->api.status);
        for (struct job *j = bt->jobs, *next; j; j = next) {
            next = j->batch_next;
            j->batch = NULL;
            j->busy = false;
            j->in_flight = false;
            if (w->d->stopping)
                job_end(j);
            else
                batch_alone(j);
        }
        batch_free(bt);
        dw_dispatch(w->d);
        return;
    }
    for (struct job *j = bt->jobs, *next; j; j = next) {
        next = j->batch_next;
        j->batch = NULL;
        if (r->err == 0) {
            free(j->batch_id);
            j->batch_id = strdup(bt->id);
            j->batch_files = bt->n;
            j->batch_pos = ++pos;
        }
        /* Members not yet handled stay busy, so a stop cannot free them under us. */
        dw_on_request_done(j, r);
    }
    batch_free(bt);
    dw_dispatch(w->d);
}
