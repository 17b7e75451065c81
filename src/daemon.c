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
 * the usual ACK and FINISH steps (see "batching" below).
 */
#include "pd_daemon.h"

#include "pd_api.h"
#include "pd_batch.h"
#include "pd_bodylimit.h"
#include "pd_client.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_jobstate.h"
#include "pd_log.h"
#include "pd_metrics.h"
#include "pd_lookup.h"
#include "pd_ready.h"
#include "pd_retention.h"
#include "pd_split.h"
#include "pd_watch.h"
#include "pd_zone.h"

#include <openssl/evp.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <dirent.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#define NEVER UINT64_MAX
#define TICK_MS 50
#define PARK_RETRY_MS 10000
#define MIN_BUDGET 256
#define MAX_OPEN_BATCHES 8
#define REHASH_MAX (64u << 20) /* files up to this size are compared again before archiving */
#define RECENT_NAMES 64 /* per watch: names delivered lately, to notice one coming back */ /* per watch: formats, CSV headers and XML roots gathering at once */

/* ---- candidates: names seen in a drop folder, waiting to be ready ----------------------- */

struct cand {
    struct cand *next; /* hash chain */
    char *name;        /* relative to the watch's root */
    struct pd_ready_obs obs;
    uint64_t due_ms; /* when to look again; NEVER: only on an event or rescan */
    uint64_t gen;    /* scan generation that last saw it */
    bool warned;     /* said once that it is not a regular file */
    bool unreadable; /* said once that it cannot be read */
    bool linked;     /* said once that it has other names (hard links) */
    bool busy_said;  /* said once that a writer still holds it open */
    bool queued;     /* in the ready heap */
};

struct job;

struct dwatch {
    struct pd_daemon *d;
    const struct pd_watch *cfg;
    struct pd_ready_rules rules;
    struct pd_watcher *watcher;
    char *work_dir, *state_dir;
    int root_fd;           /* the drop folder, opened once per scan: names resolve beneath it */
    bool disabled;         /* its folders could not be set up: the others go on without it */
    char *disabled_why;
    uint64_t setup_due;    /* when to try setting it up again */
    unsigned max_jobs;     /* claimed files handled at once */
    bool no_lease;         /* its file system takes no leases: settle alone judges */
    char **odd;            /* items in work/ that are not files, said once each */
    size_t nodd;
    struct recent {        /* names delivered lately: a writer still appending shows up */
        char *name;
        uint64_t at_ms;
    } recent[RECENT_NAMES];
    unsigned recent_next;
    struct cand **buckets;
    size_t nbuckets, ncands;
    struct cand **heap; /* ready candidates, oldest first */
    size_t nheap, capheap;
    uint64_t gen;
    uint64_t next_due;
    bool watching; /* its watcher runs */
    bool scanned; /* a full scan finished at least once */
    unsigned active;
    struct dbatch *batches; /* batch = N: the open batches (one per format and header) */
    struct pd_retention *retention; /* archive_keep...: sweeps of its archive and failed folders */
};

enum job_step {
    STEP_PREPARE,
    STEP_CHUNK_READY, /* a body waits to be sent */
    STEP_SENDING,
    STEP_ACK,
    STEP_RESPLIT,
    STEP_FINISH_OK,
    STEP_FINISH_FAIL,
    STEP_PARKED, /* could not be moved out of work/: retried later */
    STEP_ENDED,
    STEP_BATCHED, /* waits in its watch's open batch */
};

/* What a thread-pool step asks the loop thread to do next. */
enum after {
    AFTER_SEND,     /* a chunk body is ready */
    AFTER_FINISH,   /* every chunk acknowledged (or a duplicate): archive it */
    AFTER_FAIL,     /* reject the file: failed folder */
    AFTER_DONE,     /* moved out of work/: the job is over */
    AFTER_LOCKED,   /* another daemon holds the file */
    AFTER_PARK,     /* a disk step failed: keep the file in work/ and try again later */
    AFTER_RELEASE,  /* leave the file in work/ for later (shutdown, transient error) */
    AFTER_LOOKUP,   /* a lookup watch's file: sync it into the lookup */
};

struct job {
    struct job *next, *prev;
    struct pd_daemon *d;
    struct dwatch *w;
    enum job_step step;
    bool resume;     /* found in work/, not claimed now */
    bool busy;       /* a thread-pool step or a request is under way */
    bool in_flight;  /* a request is under way */
    bool counted;    /* holds one of the daemon's active slots */
    int fd;
    char *work_path, *state_path;
    struct pd_jobstate js;
    struct pd_splitter *sp;
    struct pd_chunk chunk; /* the chunk being sent (body below) */
    char *body;
    size_t body_len;
    uint64_t new_budget;
    struct pd_chunk_rec ack; /* the acknowledgement to record */
    /* batch = N: the file's text while it joins a batch, the batch, and its place in it */
    char *raw;
    size_t raw_len;
    int format;
    struct dbatch *batch;
    struct job *batch_next;
    char *batch_id;
    unsigned batch_files, batch_pos;
    char *reason;            /* FAIL: words */
    long fail_status;
    char *fail_message, *fail_errors;
    int fail_chunk;
    int64_t fail_offset;
    char *final_path; /* where the file went */
    char *park_why;
    uint64_t park_until;
    bool finish_failed; /* a parked finish goes to the failed folder */
    bool reprepare;     /* parked until its twin (another name of the file) is done */
    bool dedupe_wait;   /* parked until the same content, in flight, is archived */
    bool holds_dedupe;  /* registered as the one delivering its content (dedupe) */
    ino_t ino;          /* the claimed file, once opened */
    dev_t dev;
    uv_work_t work;
    enum after after;
    uint64_t since_ms; /* monotonic: claimed or found in work/, for the metrics */
    uint64_t sent_ms;  /* monotonic: when its current chunk was first handed to the client */
    unsigned warned;   /* stuck_warning lines said about the current chunk */
    struct pd_lookup_sync *sync; /* a lookup watch's sync under way */
    char *lookup_json;           /* its report, for the receipt */
    char *lookup_words;          /* its summary, for the log */
};

struct pd_daemon {
    uv_loop_t *loop;
    const struct pd_config *cfg;
    struct pd_daemon_opts opts;
    struct pd_client *client;
    struct dwatch *watches;
    size_t nwatches;
    size_t rr; /* round-robin start for dispatch */
    struct job *jobs;
    unsigned active, max_active;
    uv_timer_t tick;
    uv_timer_t grace;
    bool stopping, stopped_told, closing;
    bool started; /* pd_daemon_start ran: watches set up later begin at once */
    bool lease;   /* may take read leases on partners' files (root or CAP_LEASE) */
    struct pd_bodylimit limit; /* the body the server really accepts, learned from 413s */
    bool limit_ready;
    uv_mutex_t holders_lock; /* dedupe: contents being delivered now */
    struct holder *holders;
    size_t nholders;
    char *fatal;
    struct pd_daemon_summary sum;
    int pending_closes;
    void (*on_closed)(void *);
    void *closed_arg;
};

static void dispatch(struct pd_daemon *d);
static void watch_try_setup(struct dwatch *w);
static void job_run(struct job *j, void (*fn)(uv_work_t *));
static void check_stopped(struct pd_daemon *d);
static void stop_when_idle(struct pd_daemon *d);
static void warn_stuck(struct pd_daemon *d, uint64_t now);
static void work_next(uv_work_t *w);
static void work_prepare(uv_work_t *w);
static void work_finish(uv_work_t *w);
static void job_set(struct job *j, enum job_step s);
static bool batching(const struct dwatch *w);
static void batch_read(struct job *j);
static bool batch_join(struct job *j);
static void batch_tick(struct pd_daemon *d, uint64_t now);
static void batch_dissolve(struct dbatch *bt);

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static char *join(const char *a, const char *b)
{
    char *out;
    return asprintf(&out, "%s/%s", a, b) < 0 ? NULL : out;
}

static const char *q(const char *v, char *buf, size_t len)
{
    return pd_log_quote(v ? v : "", buf, len);
}

/* ---- names delivered lately ------------------------------------------------------------------ */

static void recent_add(struct dwatch *w, const char *name)
{
    struct recent *r = &w->recent[w->recent_next++ % RECENT_NAMES];
    free(r->name);
    r->name = name ? strdup(name) : NULL;
    r->at_ms = now_ms();
}

/*
 * A name delivered moments ago shows up again: most likely a writer that was still appending
 * when the file was taken (settle cannot tell a pause from the end), and what it wrote after
 * that arrives as a file of its own. Said once, so a person can check the two flow runs.
 */
static void recent_check(struct dwatch *w, const char *name)
{
    uint64_t now = now_ms(), window = w->cfg->settle_ms * 2 + 5000;
    char qb[PATH_MAX + 16];
    for (unsigned i = 0; i < RECENT_NAMES; i++) {
        struct recent *r = &w->recent[i];
        if (!r->name || strcmp(r->name, name) || now - r->at_ms > window)
            continue;
        pd_log(PD_LOG_WARN,
               "event=reappeared watch=%s file=%s delivered_ms_ago=%" PRIu64
               " reason=\"a file of this name was delivered just before; if its writer was "
               "still appending, what it wrote after the delivery is this new file\" "
               "action=\"it is delivered as a file of its own; check both flow runs, and have "
               "the writer upload to a temp name and rename, or use done_marker\"",
               w->cfg->name, q(name, qb, sizeof(qb)), now - r->at_ms);
        free(r->name);
        r->name = NULL;
        return;
    }
}

/* ---- candidate table and ready heap ----------------------------------------------------- */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct cand *cand_find(struct dwatch *w, const char *name)
{
    if (!w->nbuckets)
        return NULL;
    for (struct cand *c = w->buckets[hash_name(name) % w->nbuckets]; c; c = c->next)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

static int cand_grow(struct dwatch *w)
{
    size_t n = w->nbuckets ? w->nbuckets * 2 : 1024;
    struct cand **b = calloc(n, sizeof(*b));
    if (!b)
        return PD_ENOMEM;
    for (size_t i = 0; i < w->nbuckets; i++) {
        for (struct cand *c = w->buckets[i], *next; c; c = next) {
            next = c->next;
            size_t k = hash_name(c->name) % n;
            c->next = b[k];
            b[k] = c;
        }
    }
    free(w->buckets);
    w->buckets = b;
    w->nbuckets = n;
    return 0;
}

static struct cand *cand_add(struct dwatch *w, const char *name)
{
    struct cand *c;
    if (w->ncands >= w->nbuckets && cand_grow(w))
        return NULL;
    c = calloc(1, sizeof(*c));
    if (!c || !(c->name = strdup(name))) {
        free(c);
        return NULL;
    }
    size_t k = hash_name(name) % w->nbuckets;
    c->next = w->buckets[k];
    w->buckets[k] = c;
    w->ncands++;
    pd_metrics_file_event(w->d->opts.metrics, w->cfg->name, PD_METRICS_DISCOVERED, 0);
    return c;
}

static void cand_remove(struct dwatch *w, struct cand *c)
{
    struct cand **pp = &w->buckets[hash_name(c->name) % w->nbuckets];
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    w->ncands--;
    free(c->name);
    free(c);
}

/* Oldest first: mtime, then name. */
static bool older(const struct cand *a, const struct cand *b)
{
    if (a->obs.mtime_ns != b->obs.mtime_ns)
        return a->obs.mtime_ns < b->obs.mtime_ns;
    return strcmp(a->name, b->name) < 0;
}

static int heap_push(struct dwatch *w, struct cand *c)
{
    if (w->nheap == w->capheap) {
        size_t cap = w->capheap ? w->capheap * 2 : 64;
        struct cand **grown = realloc(w->heap, cap * sizeof(*grown));
        if (!grown)
            return PD_ENOMEM;
        w->heap = grown;
        w->capheap = cap;
    }
    size_t i = w->nheap++;
    while (i > 0 && older(c, w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = c;
    c->queued = true;
    return 0;
}

static struct cand *heap_pop(struct dwatch *w)
{
    struct cand *top, *last;
    size_t i = 0;

    if (!w->nheap)
        return NULL;
    top = w->heap[0];
    last = w->heap[--w->nheap];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct cand *mc = last;
        if (l < w->nheap && older(w->heap[l], mc)) {
            m = l;
            mc = w->heap[l];
        }
        if (r < w->nheap && older(w->heap[r], mc))
            m = r;
        if (m == i)
            break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->nheap)
        w->heap[i] = last;
    top->queued = false;
    return top;
}

/* ---- noticing and readiness (loop thread) ------------------------------------------------ */

static const char *kind_of(mode_t m)
{
    if (S_ISLNK(m))
        return "a symbolic link";
    if (S_ISFIFO(m))
        return "a fifo";
    if (S_ISDIR(m))
        return "a folder";
    if (S_ISCHR(m) || S_ISBLK(m))
        return "a device";
    if (S_ISSOCK(m))
        return "a socket";
    return "not a regular file";
}

/* Looks at one candidate now: gone, not a file, still settling, or ready. */
static void cand_check(struct dwatch *w, struct cand *c, uint64_t now)
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
                   w->cfg->name, q(c->name, qb, sizeof(qb)), kind_of(st.st_mode));
        c->warned = true;
        return;
    }
    c->warned = false;
    uint64_t wait = pd_ready_observe(&w->rules, &c->obs, &st, now, wall_ms());
    if (wait) {
        c->due_ms = now + wait;
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
    if (heap_push(w, c) == 0)
        dispatch(w->d);
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

static bool is_once_idle(struct pd_daemon *d);
static void resume_orphans(struct dwatch *w);

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

static void on_watch_event(void *arg, enum pd_watch_event ev, const char *name)
{
    struct dwatch *w = arg;
    struct pd_daemon *d = w->d;

    if (d->stopping)
        return;
    if (ev == PD_WATCH_ERROR) {
        pd_log(PD_LOG_ERROR, "event=folder_error watch=%s reason=\"%s\"", w->cfg->name, name);
        w->scanned = true; /* nothing to wait for in --once */
        if (d->opts.once && is_once_idle(d))
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
        resume_orphans(w);
        dispatch(d);
        return;
    }
    const char *slash = strrchr(name, '/');
    const char *base = slash ? slash + 1 : name;
    if (!pd_ready_name_wanted(&w->rules, base)) {
        struct cand *owner = marker_owner(w, name);
        if (owner && !owner->queued)
            owner->due_ms = 0;
        return;
    }
    struct cand *c = cand_find(w, name);
    if (!c && !(c = cand_add(w, name)))
        return;
    c->gen = w->gen;
    if (!c->queued && c->due_ms == NEVER) {
        c->due_ms = 0;
        w->next_due = 0;
    } else if (!c->queued && c->due_ms == 0) {
        w->next_due = 0;
    }
}

static void on_tick(uv_timer_t *t)
{
    struct pd_daemon *d = t->data;
    uint64_t now = now_ms();

    if (d->stopping) {
        stop_when_idle(d); /* the last request on the wire may have just been answered */
        return;
    }
    for (size_t i = 0; i < d->nwatches && !d->stopping; i++) {
        struct dwatch *w = &d->watches[i];
        uint64_t next = NEVER;
        if (w->disabled && w->setup_due <= now)
            watch_try_setup(w);
        if (!w->disabled)
            pd_retention_tick(w->retention, now); /* at start, then every 10 minutes */
        if (w->next_due > now)
            continue;
        for (size_t b = 0; b < w->nbuckets; b++) {
            for (struct cand *c = w->buckets[b], *nx; c; c = nx) {
                nx = c->next;
                if (c->queued)
                    continue;
                if (c->due_ms <= now)
                    cand_check(w, c, now); /* may remove c */
                else if (c->due_ms < next)
                    next = c->due_ms;
            }
        }
        /* Candidates checked just now may be due again soon; look again next tick. */
        w->next_due = next == NEVER ? NEVER : next;
        for (size_t b = 0; b < w->nbuckets && w->next_due != 0; b++)
            for (struct cand *c = w->buckets[b]; c; c = c->next)
                if (!c->queued && c->due_ms < w->next_due)
                    w->next_due = c->due_ms;
    }
    batch_tick(d, now);
    warn_stuck(d, now);
    /* Parked jobs (could not be moved out of work/) are retried now and then. */
    for (struct job *j = d->jobs; j && !d->stopping; j = j->next) {
        if (j->step == STEP_PARKED && !j->busy && j->park_until <= now) {
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
    }
    if (d->opts.once && is_once_idle(d))
        pd_daemon_stop(d, 0);
}

/* ---- dedupe of files in flight ---------------------------------------------------------------- */

/*
 * The contents (flow + sha256) being delivered now, so that identical files arriving together
 * are not all sent: the dedupe record is written only once a file is archived. Read and written
 * from thread-pool steps, hence the lock.
 */
struct holder {
    char key[160];
    const struct job *j;
};

static bool dedupe_hold(struct job *j)
{
    struct pd_daemon *d = j->d;
    char key[160];
    bool mine = true;

    snprintf(key, sizeof(key), "%s/%s", j->js.flow_id ? j->js.flow_id : "", j->js.sha256);
    uv_mutex_lock(&d->holders_lock);
    for (size_t i = 0; i < d->nholders; i++)
        if (!strcmp(d->holders[i].key, key))
            mine = d->holders[i].j == j;
    if (mine && !j->holds_dedupe) {
        struct holder *grown = realloc(d->holders, (d->nholders + 1) * sizeof(*grown));
        if (grown) {
            d->holders = grown;
            memcpy(d->holders[d->nholders].key, key, sizeof(key));
            d->holders[d->nholders++].j = j;
            j->holds_dedupe = true;
        }
    }
    uv_mutex_unlock(&d->holders_lock);
    return mine;
}

static void dedupe_release(struct job *j)
{
    struct pd_daemon *d = j->d;
    if (!j->holds_dedupe)
        return;
    uv_mutex_lock(&d->holders_lock);
    for (size_t i = 0; i < d->nholders; i++)
        if (d->holders[i].j == j)
            d->holders[i--] = d->holders[--d->nholders];
    uv_mutex_unlock(&d->holders_lock);
    j->holds_dedupe = false;
}

/* ---- jobs: thread-pool steps -------------------------------------------------------------- */

static void job_fail(struct job *j, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Marks the job for the failed folder with a reason in words (thread-pool or loop thread). */
static void job_fail(struct job *j, const char *fmt, ...)
{
    va_list ap;
    free(j->reason);
    va_start(ap, fmt);
    if (vasprintf(&j->reason, fmt, ap) < 0)
        j->reason = NULL;
    va_end(ap);
    j->after = AFTER_FAIL;
}

static void job_park(struct job *j, const char *step, int rc)
{
    free(j->park_why);
    if (asprintf(&j->park_why, "%s: %s", step, pd_strerror(rc)) < 0)
        j->park_why = NULL;
    j->after = AFTER_PARK;
}

/* Hashes the file; *BLANK tells whether it holds nothing but whitespace. */
static int sha256_file(int fd, char out[65], bool *blank)
{
    unsigned char buf[65536], md[32];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    off_t off = 0;
    int rc = 0;

    if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        return PD_ENOMEM;
    }
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t i = 0; *blank && i < n; i++)
            if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r')
                *blank = false;
        EVP_DigestUpdate(ctx, buf, (size_t)n);
        off += n;
    }
    if (!rc && !EVP_DigestFinal_ex(ctx, md, &mdlen))
        rc = PD_ENOMEM;
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; !rc && i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return rc;
}

/* The dedupe record of a content for a flow: <state dir>/dedupe/<flow>-<sha256>. */
static char *dedupe_path(const struct job *j)
{
    char *out;
    if (asprintf(&out, "%s/dedupe/%s-%s", j->d->cfg->state.dir, j->js.flow_id, j->js.sha256) < 0)
        return NULL;
    return out;
}

static void dedupe_check(struct job *j)
{
    char *path = dedupe_path(j), *text = NULL;
    struct stat st;

    if (!path)
        return;
    if (stat(path, &st) == 0 &&
        wall_ms() - (uint64_t)st.st_mtim.tv_sec * 1000 < j->w->cfg->dedupe_ms &&
        pd_fs_read_all(path, 4096, &text, NULL) == 0) {
        text[strcspn(text, "\n")] = '\0';
        j->js.duplicate_of = text;
        text = NULL;
    }
    free(text);
    free(path);
}

static void dedupe_record(struct job *j)
{
    char *path = dedupe_path(j), *dir = NULL;
    if (!path || !j->final_path)
        goto done;
    if (asprintf(&dir, "%s/dedupe", j->d->cfg->state.dir) < 0)
        goto done;
    if (pd_fs_mkdirs(dir, 0700) == 0) {
        char line[PATH_MAX + 32];
        int n = snprintf(line, sizeof(line), "%s.receipt.json\n", j->final_path);
        pd_fs_write_atomic(path, line, (size_t)n, 0600);
    }
done:
    free(dir);
    free(path);
}

static int open_splitter(struct job *j)
{
    const struct pd_watch *wc = j->w->cfg;
    struct pd_split_opts o = {
        .format = wc->split,
        .max_body = j->js.max_body,
        .json_array = wc->json_array,
        .xml_record = wc->xml_record,
        .header_lines = (unsigned)wc->header_lines,
        .encoding = wc->encoding,
        .name = j->js.name,
    };
    int rc = pd_split_create(j->fd, NULL, &o, &j->sp);
    if (rc) {
        job_fail(j, "%s", j->sp ? pd_split_error(j->sp) : pd_strerror(rc));
        return rc;
    }
    if (j->js.next_offset || j->js.next_index) {
        rc = pd_split_seek(j->sp, j->js.next_offset, j->js.next_index);
        if (rc) {
            job_fail(j, "cannot resume at byte %" PRIu64 ": %s", j->js.next_offset,
                     pd_split_error(j->sp));
            return rc;
        }
    }
    return 0;
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

/* Lock, check, hash, record the claim, open the splitter; then cut the first chunk. */
static void work_prepare(uv_work_t *wk)
{
    struct job *j = wk->data;
    struct stat st;
    char *why = NULL;
    int rc;

    if (j->fd >= 0)
        close(j->fd); /* a job waiting for its twin (below) comes back here */
    j->fd = open(j->work_path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (j->fd < 0) {
        /* Gone: another daemon finished it, or it was never ours. */
        j->after = errno == ENOENT ? AFTER_LOCKED : AFTER_RELEASE;
        if (j->after == AFTER_RELEASE)
            job_park(j, "open the claimed file", -errno);
        return;
    }
    if (flock(j->fd, LOCK_EX | LOCK_NB)) {
        /* Held: by another daemon, or by our own job on another name of the same file (hard
         * links, allow_hard_links = yes): that one is a file of its own and waits its turn. */
        j->after = fstat(j->fd, &st) == 0 ? AFTER_LOCKED : AFTER_RELEASE;
        j->ino = st.st_ino;
        j->dev = st.st_dev;
        return;
    }
    if (fstat(j->fd, &st) == 0) {
        j->ino = st.st_ino;
        j->dev = st.st_dev;
    }
    /* Still there after we locked it? A daemon that finished it moved it away first. */
    if (fstat(j->fd, &st) || st.st_nlink == 0 || !S_ISREG(st.st_mode)) {
        j->after = AFTER_LOCKED;
        return;
    }
    if (j->resume) {
        rc = pd_jobstate_load(j->state_path, &j->js, &why);
        if (rc == -ENOENT) {
            j->resume = false; /* claimed, then a crash before its record was written */
        } else if (rc) {
            /* Without its record nobody knows which chunks arrived: a person must decide. */
            struct pd_jobstate fresh = {0};
            j->js = fresh;
            j->js.name = strdup(strrchr(j->work_path, '/') + 1);
            j->js.work_name = strdup(j->js.name);
            j->js.watch = strdup(j->w->cfg->name);
            j->js.flow_id = target_id(j->w->cfg);
            j->js.size = (uint64_t)st.st_size;
            job_fail(j,
                     "its delivery record %s is unreadable (%s), so which chunks already "
                     "arrived is unknown; check the flow runs in Patchworks, then drop the "
                     "file again if needed",
                     j->state_path, why ? why : pd_strerror(rc));
            free(why);
            return;
        }
    }
    if (!j->resume) {
        char id[33];
        const char *name = j->js.name;
        j->js.name = NULL;
        pd_jobstate_cleanup(&j->js);
        if (pd_jobstate_new_claim_id(id)) {
            job_park(j, "make a claim id", -errno);
            free((char *)name);
            return;
        }
        j->js.claim_id = strdup(id);
        j->js.name = name ? (char *)name : strdup(strrchr(j->work_path, '/') + 1);
        j->js.work_name = strdup(strrchr(j->work_path, '/') + 1);
        j->js.watch = strdup(j->w->cfg->name);
        j->js.flow_id = target_id(j->w->cfg);
        j->js.version_id = j->w->cfg->version_id ? strdup(j->w->cfg->version_id) : NULL;
        j->js.size = (uint64_t)st.st_size;
        j->js.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
        j->js.claimed_ms = wall_ms();
        j->js.max_body = pd_bodylimit_budget(&j->d->limit);
    } else if ((uint64_t)st.st_size != j->js.size) {
        job_fail(j,
                 "the file changed size while being delivered (%" PRIu64 " bytes when claimed, "
                 "%lld now); %u chunk(s) were delivered; drop a complete file again",
                 j->js.size, (long long)st.st_size, j->js.next_index);
        return;
    }
    /* Shapes that cost everyone else's turn are refused before a byte is read. */
    if (!j->js.fail_reason && !j->js.finished && j->js.nchunks == 0 && refuse_shape(j, &st))
        return;
    bool blank = true;
    if (!j->js.sha256 || st.st_size < 65536) {
        char hex[65];
        if ((rc = sha256_file(j->fd, hex, &blank))) {
            job_park(j, "read the file to hash it", rc);
            return;
        }
        if (!j->js.sha256)
            j->js.sha256 = strdup(hex);
    } else {
        blank = false; /* a resumed big file: checked when it was claimed */
    }
    if (!j->resume && (rc = pd_jobstate_save(&j->js, j->state_path))) {
        job_park(j, "save the delivery record", rc);
        return;
    }
    if (j->js.fail_reason) {
        free(j->reason);
        j->reason = strdup(j->js.fail_reason);
        j->fail_status = j->js.fail_status;
        j->fail_message = j->js.fail_message ? strdup(j->js.fail_message) : NULL;
        j->fail_errors = j->js.fail_errors ? strdup(j->js.fail_errors) : NULL;
        j->fail_chunk = j->js.fail_chunk;
        j->fail_offset = j->js.fail_offset;
        j->after = AFTER_FAIL;
        return;
    }
    if (j->js.finished) {
        j->after = AFTER_FINISH;
        return;
    }
    if (j->w->cfg->lookup_id) {
        /* A sync compares the file with the lookup, so repeating it after a crash is safe. */
        j->after = AFTER_LOOKUP;
        return;
    }
    if (st.st_size == 0) {
        job_fail(j, "the file is empty; Patchworks refuses a blank payload, so nothing was sent");
        return;
    }
    if (blank) {
        job_fail(j, "the file holds only whitespace (%lld bytes); Patchworks refuses a blank "
                    "payload, so nothing was sent",
                 (long long)st.st_size);
        return;
    }
    if (j->w->cfg->dedupe_ms && j->js.nchunks == 0) {
        dedupe_check(j);
        if (j->js.duplicate_of) {
            j->after = AFTER_FINISH;
            return;
        }
        /* The same content already on its way to the same flow (identical files dropped
         * together): wait for it, then this one is its duplicate. */
        if (!dedupe_hold(j)) {
            j->after = AFTER_LOCKED;
            j->dedupe_wait = true;
            return;
        }
    }
    if (open_splitter(j))
        return;
    work_next(wk);
}

/* Cuts the next chunk: AFTER_SEND with a body, AFTER_FINISH at the end, or a failure. */
static void work_next(uv_work_t *wk)
{
    struct job *j = wk->data;
    int rc = pd_split_next(j->sp, &j->chunk);

    if (rc > 0 && j->js.nchunks == 0 && j->chunk.index == j->js.next_index && !j->js.next_index) {
        /* Before a file's first chunk goes: can its largest record pass at all, by what the
         * server taught? Then never half a file for want of one record. */
        uint64_t refused, need = pd_split_min_body(j->sp);
        if (pd_bodylimit_fits(&j->d->limit, need, &refused)) {
            job_fail(j,
                     "the file's largest record needs a %" PRIu64 "-byte request, and Patchworks "
                     "refuses requests of %" PRIu64 " bytes or more (learned from its HTTP 413 "
                     "answers), so nothing was sent; split that record upstream, or have the "
                     "server's limit raised",
                     need, refused);
            j->fail_status = 413;
            return;
        }
    }
    if (rc > 0) {
        free(j->body);
        j->body = pd_split_take_body(j->sp, &j->body_len);
        j->after = j->body ? AFTER_SEND : AFTER_PARK;
        /* A batch takes the file's bytes: only when they are what the splitter sends (not
         * transcoded, by configuration or encoding = auto; no XML declaration rewritten). */
        if (j->body && j->chunk.whole && batching(j->w) && pd_split_verbatim(j->sp))
            batch_read(j);
        return;
    }
    if (rc == 0) {
        j->js.finished = true;
        if ((rc = pd_jobstate_save(&j->js, j->state_path))) {
            job_park(j, "save the delivery record", rc);
            return;
        }
        j->after = AFTER_FINISH;
        return;
    }
    if (rc == PD_ENOMEM || (rc > -1000 && rc < 0)) {
        job_park(j, "read the file", rc);
        return;
    }
    uint64_t ok_max, refused_min;
    pd_bodylimit_bounds(&j->d->limit, &ok_max, &refused_min);
    if (rc == PD_ETOOBIG && j->js.max_body < j->d->cfg->pw.max_body &&
        refused_min != UINT64_MAX) {
        /* Too big for what the server was seen to take, not for max_body: say that, and not
         * "raise max_body", which would change nothing. */
        job_fail(j,
                 "%s; that is below max_body because Patchworks refuses requests of %" PRIu64
                 " bytes or more (learned from its HTTP 413 answers; it accepted up to %" PRIu64
                 "), so nothing more was sent: split that record upstream, or have the "
                 "server's limit raised",
                 pd_split_error(j->sp), refused_min, ok_max);
        j->fail_status = 413;
    } else {
        job_fail(j, "%s", pd_split_error(j->sp));
    }
    j->fail_chunk = (int)j->js.next_index;
    /* The byte the reason names, where it names one; else where the unsent part starts. */
    j->fail_offset = pd_split_error_offset(j->sp) >= 0 ? pd_split_error_offset(j->sp)
                                                       : (int64_t)j->js.next_offset;
}

/* Records an acknowledged chunk durably, then cuts the next one. */
static void work_ack(uv_work_t *wk)
{
    struct job *j = wk->data;
    int rc = pd_jobstate_add_chunk(&j->js, &j->ack);

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
        j->after = AFTER_FINISH;
        return;
    }
    work_next(wk);
}

static void work_resplit(uv_work_t *wk)
{
    struct job *j = wk->data;
    int rc = pd_split_resplit(j->sp, j->new_budget);

    if (rc) {
        job_fail(j,
                 "Patchworks refused a %zu-byte request as too large (HTTP 413) and the chunk "
                 "cannot be cut smaller: %s; split the records upstream",
                 j->body_len, pd_split_error(j->sp));
        j->fail_status = 413;
        return;
    }
    j->js.max_body = j->new_budget;
    work_next(wk);
}

/*
 * Moves the work file into DIR under a name no other file or SIDECAR uses, after writing the
 * sidecar TEXT beside it. Nothing is ever overwritten: a clash takes the next suffix.
 */
static int place(struct job *j, const char *dir, const char *sidecar, const char *text)
{
    const char *slash = strrchr(j->js.name, '/');
    const char *base = slash ? slash + 1 : j->js.name;
    char name[NAME_MAX + 1], *side = NULL, *dest = NULL;
    int rc;

    if ((rc = pd_fs_mkdirs(dir, 0750)))
        return rc;
    /* A crash between writing the sidecar and moving the file leaves our own sidecar behind:
     * finish that move instead of starting a second name. */
    if (j->js.claim_id) {
        for (unsigned k = 0; k < 100000; k++) {
            char *text_there = NULL;
            struct stat st;
            bool ours;
            if (pd_fs_numbered_name(base, k, name, sizeof(name) - strlen(sidecar)))
                break;
            dest = join(dir, name);
            if (!dest || asprintf(&side, "%s%s", dest, sidecar) < 0) {
                side = NULL;
                break;
            }
            bool dest_there = lstat(dest, &st) == 0;
            if (!dest_there && lstat(side, &st) != 0) {
                free(side);
                free(dest);
                side = dest = NULL;
                break; /* the first free name: no leftover of ours beyond it */
            }
            ours = !dest_there && pd_fs_read_all(side, 1 << 20, &text_there, NULL) == 0 &&
                   strstr(text_there, j->js.claim_id) != NULL;
            free(text_there);
            if (ours && pd_fs_rename_noreplace(j->work_path, dest) == 0) {
                free(side);
                rc = pd_fs_fsync_dir(dir);
                free(j->final_path);
                j->final_path = dest;
                return rc;
            }
            free(side);
            free(dest);
            side = dest = NULL;
        }
    }
    for (unsigned start = 0;; start++) {
        rc = pd_fs_unique_name(dir, base, sidecar, start, name, sizeof(name) - strlen(sidecar));
        if (rc)
            return rc;
        free(side);
        free(dest);
        dest = join(dir, name);
        if (!dest || asprintf(&side, "%s%s", dest, sidecar) < 0) {
            side = NULL;
            rc = PD_ENOMEM;
            break;
        }
        rc = pd_fs_create_durable(side, text, strlen(text), PD_FS_FILE_MODE);
        if (rc == -EEXIST)
            continue; /* another daemon took the name just now */
        if (rc)
            break;
        pd_crashpoint("receipt_written");
        rc = pd_fs_rename_noreplace(j->work_path, dest);
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
        free(j->final_path);
        j->final_path = dest;
        dest = NULL;
    }
    free(side);
    free(dest);
    return rc;
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

static void work_finish(uv_work_t *wk)
{
    struct job *j = wk->data;
    bool failed = j->step == STEP_FINISH_FAIL;
    char *text;
    int rc;
    struct stat st;

    /* Someone wrote to the file in work/ while it was being sent: what arrived may not be
     * what is archived. Say so instead of writing a receipt that does not match the file. */
    if (!failed && !j->js.duplicate_of && j->fd >= 0 && fstat(j->fd, &st) == 0 &&
        ((uint64_t)st.st_size != j->js.size ||
         (j->js.mtime_ns &&
          (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != j->js.mtime_ns))) {
        job_fail(j,
                 "the file changed while it was being delivered (%" PRIu64 " bytes when "
                 "claimed, %lld now); %zu chunk(s) were delivered from the file as it was; "
                 "check the flow runs in Patchworks and drop a complete file again",
                 j->js.size, (long long)st.st_size, j->js.nchunks);
        j->step = STEP_FINISH_FAIL;
        failed = true;
    }

    /* Same size and mtime is not the same content (a writer may keep both): a file small
     * enough to read again cheaply is compared with what was claimed, byte for byte. */
    char again[65];
    bool blank = false;
    if (!failed && !j->js.duplicate_of && j->fd >= 0 && j->js.sha256 && j->js.size < REHASH_MAX &&
        sha256_file(j->fd, again, &blank) == 0 && strcmp(again, j->js.sha256)) {
        job_fail(j,
                 "the file changed while it was being delivered (same size, other content "
                 "than when it was claimed); %zu chunk(s) were delivered from the file as it "
                 "was; check the flow runs in Patchworks and drop a complete file again",
                 j->js.nchunks);
        j->step = STEP_FINISH_FAIL;
        failed = true;
    }
    if (failed && !j->js.fail_reason && j->reason) {
        /* Record the verdict first: after a crash the file goes to the failed folder, it is
         * not sent again. */
        j->js.fail_reason = strdup(j->reason);
        j->js.fail_status = j->fail_status;
        j->js.fail_message = j->fail_message ? strdup(j->fail_message) : NULL;
        j->js.fail_errors = j->fail_errors ? strdup(j->fail_errors) : NULL;
        j->js.fail_chunk = j->fail_chunk;
        j->js.fail_offset = j->fail_offset;
        if (j->js.claim_id && (rc = pd_jobstate_save(&j->js, j->state_path))) {
            job_park(j, "save the delivery record", rc);
            return;
        }
    }
    if (failed) {
        struct pd_failure f = {
            .reason = j->reason ? j->reason : "rejected",
            .status = j->fail_status,
            .message = j->fail_message,
            .errors = j->fail_errors,
            .chunk = j->fail_chunk,
            .offset = j->fail_offset,
        };
        text = pd_jobstate_error_report(&j->js, &f, wall_ms());
    } else {
        text = pd_jobstate_receipt(&j->js, wall_ms());
    }
    if (text && j->lookup_json) {
        char *merged = pd_lookup_receipt(text, j->lookup_json);
        free(text);
        text = merged;
    }
    if (!text) {
        job_park(j, "write the receipt", PD_ENOMEM);
        return;
    }
    rc = place(j, failed ? j->w->cfg->failed_dir : j->w->cfg->archive_dir,
               failed ? ".error.json" : ".receipt.json", text);
    free(text);
    if (rc) {
        job_park(j, failed ? "move the file to the failed folder"
                           : "move the file to the archive folder",
                 rc);
        return;
    }
    remove_marker(j);
    if (!failed) /* a failed copy of the same file: the receipt and its error file say so */
        pd_retention_supersede(j->w->cfg->name, j->w->cfg->failed_dir, j->js.name, j->final_path,
                               wall_ms(), NULL);
    if (!failed && j->w->cfg->dedupe_ms && !j->js.duplicate_of)
        dedupe_record(j);
    /* The file is safe in its new home: its record may go. */
    pd_crashpoint("archived");
    unlink(j->state_path);
    pd_fs_fsync_dir(j->w->state_dir);
    j->after = AFTER_DONE;
}

/* ---- jobs: loop thread -------------------------------------------------------------------- */

static const char *step_name(enum job_step s)
{
    static const char *const names[] = {"prepare", "chunk_ready", "sending", "ack",
                                        "resplit", "finish_ok",   "finish_fail", "parked",
                                        "ended", "batched"};
    return names[s];
}

/* The one place a job's step changes, so every transition can be traced. */
static void job_set(struct job *j, enum job_step s)
{
    char qb[PATH_MAX + 16];
    pd_log(PD_LOG_DEBUG, "event=job_step watch=%s file=%s from=%s to=%s", j->w->cfg->name,
           q(j->js.name ? j->js.name : j->work_path, qb, sizeof(qb)), step_name(j->step),
           step_name(s));
    j->step = s;
}

static void job_free(struct job *j)
{
    struct pd_daemon *d = j->d;

    if (j->prev)
        j->prev->next = j->next;
    else
        d->jobs = j->next;
    if (j->next)
        j->next->prev = j->prev;
    if (j->counted) {
        d->active--;
        j->w->active--;
    }
    dedupe_release(j);
    if (j->fd >= 0)
        close(j->fd); /* releases the flock */
    if (j->batch)
        batch_dissolve(j->batch);
    pd_split_destroy(&j->sp);
    pd_jobstate_cleanup(&j->js);
    free(j->ack.run_id);
    free(j->ack.answer);
    free(j->ack.batch_id);
    free(j->batch_id);
    free(j->raw);
    free(j->body);
    free(j->work_path);
    free(j->state_path);
    free(j->reason);
    free(j->fail_message);
    free(j->fail_errors);
    free(j->final_path);
    free(j->park_why);
    free(j->lookup_json);
    free(j->lookup_words);
    free(j);
}

static void job_end(struct job *j)
{
    struct pd_daemon *d = j->d;
    job_set(j, STEP_ENDED);
    job_free(j);
    if (!d->stopping)
        dispatch(d);
    check_stopped(d);
}

static void on_request_done(void *arg, const struct pd_client_result *r);

static void send_chunk(struct job *j)
{
    struct pd_client_request req = {.method = "POST", .body = j->body, .body_len = j->body_len};
    char *url = NULL, qb[PATH_MAX + 16], context[PATH_MAX + 300];
    int rc = pd_api_start_url(&j->d->cfg->pw, j->js.flow_id, j->js.version_id, &url);

    snprintf(context, sizeof(context), "watch=%s file=%s chunk=%u", j->w->cfg->name,
             q(j->js.name, qb, sizeof(qb)), j->chunk.index + 1);
    req.context = context;

    if (!rc) {
        req.url = url;
        rc = pd_client_submit(j->d->client, &req, on_request_done, j);
    }
    free(url);
    if (rc) {
        /* Closing, or out of memory: the file stays in work/ for later. */
        job_end(j);
        return;
    }
    job_set(j, STEP_SENDING);
    j->busy = true;
    j->in_flight = true;
    j->sent_ms = now_ms();
    j->warned = 0;
}

/* A file whose request keeps being retried is told every stuck_warning, never silently. */
static void warn_stuck(struct pd_daemon *d, uint64_t now)
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
               j->w->cfg->name, q(j->js.name, qb, sizeof(qb)), j->js.next_index,
               (now - j->sent_ms) / 1000, d->cfg->pw.max_retry_time_ms / 1000);
    }
}

/* ---- batching (batch = N) ----------------------------------------------------------------- */

/*
 * A whole small file's chunk, instead of going at once, joins its watch's open batch: the
 * file's text is added to one combined body (pd_batch.h) and the job gives up its active slot
 * so that more files are claimed meanwhile. The batch goes as one request when it holds
 * `batch` files, when the next file does not fit (max_body) or has another CSV header or XML
 * root, when `batch_window` has passed since it opened, or (run --once) when nothing else of
 * its watch is on the way. Its answer is then every member's answer: each takes the usual ACK
 * step (its receipt names the batch's request id and flow run) and FINISH. A refused batch
 * (422, 413) is sent again file by file, each with its own body, so one bad file cannot sink
 * the others. A batch of one goes as a plain request.
 */
struct dbatch {
    struct dbatch *next; /* the watch's open batches */
    struct dwatch *w;
    struct pd_batch *b;
    struct job *jobs, *last; /* members in the order added */
    unsigned n;
    int format;
    uint64_t opened_ms;
    bool in_flight;
    char *body;
    size_t body_len;
    char id[33];
};

static bool batching(const struct dwatch *w)
{
    /* Ordered watches go one at a time; transcoded files are left out one by one in work_next. */
    return w->cfg->batch > 1 && !w->cfg->ordered && w->cfg->flow_id;
}

/* Thread pool: keeps the text of a file that goes whole, for the batch (else: it goes alone). */
static void batch_read(struct job *j)
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
        return;
    }
    free(j->raw);
    j->raw = buf;
    j->raw_len = n;
    j->format = pd_split_format(j->sp);
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
    batch_unlink(bt);
    pd_batch_destroy(&bt->b);
    free(bt->body);
    free(bt);
}

/* An open batch is given up (shutdown, or a member freed): its files stay in work/. */
static void batch_dissolve(struct dbatch *bt)
{
    if (bt->in_flight)
        return; /* its members are busy: never freed before the answer */
    for (struct job *j = bt->jobs; j; j = j->batch_next)
        j->batch = NULL;
    batch_free(bt);
}

static struct dbatch *batch_open(struct dwatch *w, int format)
{
    struct dbatch *bt = calloc(1, sizeof(*bt));
    struct pd_batch_opts o = {.format = format,
                              .max_body = pd_bodylimit_budget(&w->d->limit),
                              .header_lines = (unsigned)w->cfg->header_lines,
                              .max_files = (unsigned)w->cfg->batch};
    if (!bt || pd_batch_create(&o, &bt->b)) {
        free(bt);
        return NULL;
    }
    bt->w = w;
    bt->format = format;
    bt->opened_ms = now_ms();
    bt->next = w->batches;
    w->batches = bt;
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
        send_chunk(j);
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
    char qb[PATH_MAX + 16];
    pd_log(PD_LOG_INFO, "event=batch_sent watch=%s request_id=%s files=%u bytes=%zu first=%s",
           w->cfg->name, bt->id, bt->n, bt->body_len, q(bt->jobs->js.name, qb, sizeof(qb)));
    for (struct job *j = bt->jobs; j; j = j->batch_next) {
        job_set(j, STEP_SENDING);
        j->busy = true;
        j->in_flight = true;
    }
}

/* Loop thread: the job's whole chunk joins its watch's batch. False: send it alone. */
static bool batch_join(struct job *j)
{
    struct dwatch *w = j->w;
    struct pd_daemon *d = j->d;
    char *text = j->raw;
    size_t len = j->raw_len;
    int rc = PD_ENOMEM;

    j->raw = NULL;
    if (j->format < 0 || j->format > PD_SPLIT_NONE) {
        free(text);
        return false;
    }
    /* The open batch of its format and header (CSV) or root (XML); a full one goes now and
     * this file opens the next; a file that fits none opens its own. */
    struct dbatch *bt = NULL;
    unsigned open = 0;
    rc = PD_ESTATE;
    for (struct dbatch *o = w->batches, *next; o && rc == PD_ESTATE; o = next) {
        next = o->next;
        open++;
        if (o->format != j->format)
            continue;
        rc = pd_batch_add(o->b, text, len);
        if (rc == 0)
            bt = o;
        else if (rc == PD_ETOOBIG)
            batch_send(o);
    }
    if (rc == PD_ESTATE || rc == PD_ETOOBIG) {
        if (open >= MAX_OPEN_BATCHES && rc == PD_ESTATE) {
            struct dbatch *oldest = w->batches;
            while (oldest && oldest->next)
                oldest = oldest->next;
            batch_send(oldest);
        }
        bt = batch_open(w, j->format);
        rc = bt ? pd_batch_add(bt->b, text, len) : PD_ENOMEM;
        if (rc && bt) {
            batch_free(bt);
            bt = NULL;
        }
    }
    free(text);
    if (rc)
        return false;
    if (bt->last)
        bt->last->batch_next = j;
    else
        bt->jobs = j;
    bt->last = j;
    bt->n++;
    j->batch = bt;
    j->batch_next = NULL;
    job_set(j, STEP_BATCHED);
    if (j->counted) {
        /* Waiting in a batch holds no slot: more files are claimed to join it. */
        j->counted = false;
        d->active--;
        w->active--;
    }
    if (bt->n >= w->cfg->batch)
        batch_send(bt);
    dispatch(d);
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

static void batch_tick(struct pd_daemon *d, uint64_t now)
{
    for (size_t i = 0; i < d->nwatches && !d->stopping; i++) {
        struct dwatch *w = &d->watches[i];
        bool idle = d->opts.once && w->batches && !batch_more_coming(w);
        for (struct dbatch *bt = w->batches, *next; bt; bt = next) {
            next = bt->next;
            if (idle || now - bt->opened_ms >= w->cfg->batch_window_ms)
                batch_send(bt);
        }
    }
}

/* The batch's answer is each member's answer; a refused batch goes again file by file. */
static void on_batch_done(void *arg, const struct pd_client_result *r)
{
    struct dbatch *bt = arg;
    struct dwatch *w = bt->w;
    unsigned pos = 0;

    bt->in_flight = false;
    if (r->err == 0)
        pd_bodylimit_accepted(&w->d->limit, bt->body_len);
    else if (r->err == PD_ETOOBIG)
        pd_bodylimit_refused(&w->d->limit, bt->body_len);
    if (r->err == PD_EREJECTED || r->err == PD_ETOOBIG) {
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
                send_chunk(j);
        }
        batch_free(bt);
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
        on_request_done(j, r);
    }
    batch_free(bt);
}

static void report_file(struct job *j, bool ok)
{
    struct pd_daemon *d = j->d;
    char qb[PATH_MAX + 16], qp[PATH_MAX + 16], qr[2048];

    if (ok && j->js.duplicate_of) {
        d->sum.duplicates++;
        pd_log(PD_LOG_INFO, "event=duplicate watch=%s file=%s archived=%s duplicate_of=%s",
               j->w->cfg->name, q(j->js.name, qb, sizeof(qb)), q(j->final_path, qp, sizeof(qp)),
               q(j->js.duplicate_of, qr, sizeof(qr)));
        if (d->opts.report)
            fprintf(d->opts.report, "%s: duplicate of %s, not sent; archived as %s\n",
                    j->js.name, j->js.duplicate_of, j->final_path);
    } else if (ok && j->lookup_words) {
        d->sum.delivered++;
        pd_log(PD_LOG_INFO, "event=lookup_synced watch=%s file=%s lookup_id=%s archived=%s "
                            "result=%s",
               j->w->cfg->name, q(j->js.name, qb, sizeof(qb)), j->w->cfg->lookup_id,
               q(j->final_path, qp, sizeof(qp)), q(j->lookup_words, qr, sizeof(qr)));
        if (d->opts.report)
            fprintf(d->opts.report, "%s: synced into lookup %s: %s; archived as %s\n",
                    j->js.name, j->w->cfg->lookup_id, j->lookup_words, j->final_path);
    } else if (ok) {
        d->sum.delivered++;
        recent_add(j->w, j->js.name);
        pd_log(PD_LOG_INFO, "event=delivered watch=%s file=%s chunks=%zu bytes=%" PRIu64
                            " archived=%s",
               j->w->cfg->name, q(j->js.name, qb, sizeof(qb)), j->js.nchunks, j->js.size,
               q(j->final_path, qp, sizeof(qp)));
        if (d->opts.report)
            fprintf(d->opts.report, "%s: delivered in %zu chunk(s); archived as %s\n",
                    j->js.name, j->js.nchunks, j->final_path);
    } else {
        d->sum.rejected++;
        char status[32] = ""; /* none when nothing was sent: the file was refused here */
        if (j->fail_status)
            snprintf(status, sizeof(status), " status=%ld", j->fail_status);
        pd_log(PD_LOG_ERROR, "event=rejected watch=%s file=%s%s moved=%s reason=%s",
               j->w->cfg->name, q(j->js.name, qb, sizeof(qb)), status,
               q(j->final_path, qp, sizeof(qp)), q(j->reason, qr, sizeof(qr)));
        if (d->opts.report)
            fprintf(d->opts.report, "%s: FAILED: %s; moved to %s (reason in %s.error.json)\n",
                    j->js.name, j->reason ? j->reason : "rejected", j->final_path,
                    j->final_path);
    }
    if (d->opts.report)
        fflush(d->opts.report);
    pd_metrics_file_event(d->opts.metrics, j->w->cfg->name,
                          !ok ? PD_METRICS_REJECTED
                          : j->js.duplicate_of ? PD_METRICS_DUPLICATE : PD_METRICS_DELIVERED,
                          j->js.size);
}

/* ---- lookup watches: a dropped CSV file is synced into the lookup (pd_lookup.h) ---------- */

static void on_lookup_synced(void *arg, const struct pd_lookup_sync_report *r)
{
    struct job *j = arg;
    struct pd_daemon *d = j->d;
    char words[400];

    j->sync = NULL;
    j->busy = false;
    j->in_flight = false;
    if (r->err == PD_ECANCELED || r->err == PD_EAUTH || r->err == PD_ECONFIG ||
        r->err == PD_ENOMEM) {
        /* Not this file's fault: it stays in work/ and is synced again later. */
        if ((r->err == PD_EAUTH || r->err == PD_ECONFIG) && !d->fatal)
            d->fatal = strdup(r->message ? r->message : pd_strerror(r->err));
        bool fatal = r->err == PD_EAUTH || r->err == PD_ECONFIG;
        job_end(j);
        if (fatal && !d->stopping)
            pd_daemon_stop(d, 0);
        return;
    }
    pd_lookup_sync_summary(r, words, sizeof(words));
    free(j->lookup_words);
    free(j->lookup_json);
    j->lookup_words = strdup(words);
    j->lookup_json = pd_lookup_sync_json(r, true);
    if (r->err) {
        job_fail(j, "%s", r->message ? r->message : pd_strerror(r->err));
        job_set(j, STEP_FINISH_FAIL);
    } else {
        job_set(j, STEP_FINISH_OK);
    }
    job_run(j, work_finish);
}

static void lookup_start(struct job *j)
{
    const struct pd_watch *wc = j->w->cfg;
    struct pd_lookup_sync_opts o = {.delete_missing = wc->delete_missing, .name = j->js.name};
    int rc = pd_lookup_sync_start(j->d->client, &j->d->cfg->pw, wc->lookup_id, j->work_path, &o,
                                  on_lookup_synced, j, &j->sync);
    if (rc) {
        job_end(j); /* closing, or out of memory: the file stays in work/ for later */
        return;
    }
    job_set(j, STEP_SENDING);
    j->busy = true;
    j->in_flight = true;
    j->sent_ms = now_ms();
    j->warned = 0;
}

/* Whether another job of ours holds the same file (another hard link to it). */
static bool twin_of(const struct job *j)
{
    for (const struct job *o = j->d->jobs; o; o = o->next)
        if (o != j && o->fd >= 0 && o->ino == j->ino && o->dev == j->dev && !o->reprepare)
            return true;
    return false;
}

static void on_work_done(uv_work_t *wk, int status)
{
    struct job *j = wk->data;
    struct pd_daemon *d = j->d;
    char qb[PATH_MAX + 16], qr[1024];

    j->busy = false;
    if (status == UV_ECANCELED) {
        job_end(j);
        return;
    }
    switch (j->after) {
    case AFTER_SEND:
        if (d->stopping) {
            job_end(j); /* progress is saved; the chunk goes after the restart */
            return;
        }
        if (j->raw && batch_join(j))
            return;
        send_chunk(j);
        return;
    case AFTER_FINISH:
        job_set(j, STEP_FINISH_OK);
        job_run(j, work_finish);
        return;
    case AFTER_FAIL:
        job_set(j, STEP_FINISH_FAIL);
        job_run(j, work_finish);
        return;
    case AFTER_DONE:
        report_file(j, j->step == STEP_FINISH_OK);
        job_end(j);
        return;
    case AFTER_LOCKED:
        if (j->dedupe_wait || twin_of(j)) {
            /* Another name of a file our own job holds: its turn comes when that one ends. */
            job_set(j, STEP_PARKED);
            j->reprepare = true;
            j->park_until = now_ms() + 1000;
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
        lookup_start(j);
        return;
    case AFTER_PARK:
        if (j->step != STEP_PARKED)
            pd_log(PD_LOG_ERROR,
                   "event=stuck watch=%s file=%s reason=%s action=\"the file stays in %s and is "
                   "tried again every %ds\"",
                   j->w->cfg->name, q(j->js.name ? j->js.name : j->work_path, qb, sizeof(qb)),
                   q(j->park_why ? j->park_why : "disk error", qr, sizeof(qr)), j->w->work_dir,
                   PARK_RETRY_MS / 1000);
        if (j->step == STEP_FINISH_OK || j->step == STEP_FINISH_FAIL) {
            /* A finish waits for the disk: keep the job but free its slot. */
            j->finish_failed = j->step == STEP_FINISH_FAIL;
            job_set(j, STEP_PARKED);
            if (j->counted) {
                j->counted = false;
                d->active--;
                j->w->active--;
            }
            j->park_until = now_ms() + PARK_RETRY_MS;
            if (d->opts.once) {
                d->sum.stuck++;
                job_end(j);
                return;
            }
            dispatch(d);
            return;
        }
        /* Any other step: the file stays in work/ and is resumed by a later rescan. */
        d->sum.stuck += d->opts.once ? 1 : 0;
        job_end(j);
        return;
    }
}

static void job_run(struct job *j, void (*fn)(uv_work_t *))
{
    j->busy = true;
    j->work.data = j;
    if (uv_queue_work(j->d->loop, &j->work, fn, on_work_done)) {
        j->busy = false;
        job_end(j);
    }
}

static void on_request_done(void *arg, const struct pd_client_result *r)
{
    struct job *j = arg;
    struct pd_daemon *d = j->d;
    char qb[PATH_MAX + 16], qr[256];

    j->busy = false;
    j->in_flight = false;
    j->js.attempts += r->attempts;
    j->js.possible_duplicates += r->ambiguous;
    if (r->err == 0) {
        memset(&j->ack, 0, sizeof(j->ack));
        j->ack.index = j->chunk.index;
        j->ack.start = j->chunk.start;
        j->ack.end = j->chunk.end;
        j->ack.records = j->chunk.records;
        j->ack.body_bytes = j->body_len;
        j->ack.status = r->api.status;
        j->ack.run_id = r->api.run_id ? strdup(r->api.run_id) : NULL;
        j->ack.answer = !r->api.run_id && r->api.body ? strdup(r->api.body) : NULL;
        j->ack.time_ms = wall_ms();
        j->ack.attempts = r->attempts;
        j->ack.batch_id = j->batch_id; /* NULL unless it went in a batch */
        j->batch_id = NULL;
        j->ack.batch_files = j->batch_files;
        j->ack.batch_pos = j->batch_pos;
        d->sum.chunks++;
        d->sum.bytes += j->body_len;
        pd_metrics_chunk(d->opts.metrics, j->w->cfg->name, j->body_len);
        pd_log(PD_LOG_INFO,
               "event=chunk_delivered watch=%s file=%s chunk=%u range=%" PRIu64 "-%" PRIu64
               " bytes=%zu status=%ld flow_run_id=%s attempts=%u",
               j->w->cfg->name, q(j->js.name, qb, sizeof(qb)), j->chunk.index + 1,
               j->chunk.start, j->chunk.end, j->body_len, r->api.status,
               q(r->api.run_id ? r->api.run_id : "none", qr, sizeof(qr)), r->attempts);
        if (d->opts.report) {
            fprintf(d->opts.report, "%s: chunk %u (bytes %" PRIu64 "-%" PRIu64 ") -> HTTP %ld, flow run %s\n",
                    j->js.name, j->chunk.index + 1, j->chunk.start, j->chunk.end,
                    r->api.status, r->api.run_id ? r->api.run_id : "(no id in the answer)");
            fflush(d->opts.report);
        }
        pd_bodylimit_accepted(&d->limit, j->body_len);
        free(j->body);
        j->body = NULL;
        job_set(j, STEP_ACK);
        job_run(j, work_ack);
        return;
    }
    free(j->body);
    j->body = NULL;
    switch (r->err) {
    case PD_ETOOBIG: {
        /* The one 413 rule (pd_bodylimit.h): learn the server's limit, cut between what it
         * took and what it refused, never below what the largest record needs. */
        uint64_t ok_max, refused_min, budget, need = pd_split_min_body(j->sp);
        pd_bodylimit_refused(&d->limit, j->body_len);
        pd_bodylimit_bounds(&d->limit, &ok_max, &refused_min);
        if (pd_bodylimit_recut(ok_max, refused_min, j->body_len, need, &budget)) {
            job_fail(j,
                     "Patchworks refused a %zu-byte request as too large (HTTP 413); the "
                     "file's largest record needs a %" PRIu64 "-byte request, and the server "
                     "refuses %" PRIu64 " bytes or more (it accepted up to %" PRIu64 "); %u "
                     "earlier chunk(s) were delivered; split that record upstream, or have the "
                     "server's limit raised",
                     j->body_len, need, refused_min, ok_max, j->chunk.index);
            j->fail_status = 413;
            j->fail_chunk = (int)j->chunk.index;
            j->fail_offset = (int64_t)j->chunk.start;
            job_set(j, STEP_FINISH_FAIL);
            job_run(j, work_finish);
            return;
        }
        j->new_budget = budget;
        pd_log(PD_LOG_WARN,
               "event=resplit watch=%s file=%s chunk=%u refused_bytes=%zu accepted_max=%" PRIu64
               " new_max_body=%" PRIu64,
               j->w->cfg->name, q(j->js.name, qb, sizeof(qb)), j->chunk.index + 1, j->body_len,
               ok_max, j->new_budget);
        job_set(j, STEP_RESPLIT);
        job_run(j, work_resplit);
        return;
    }
    case PD_EREJECTED:
        job_fail(j,
                 "Patchworks refused chunk %u (bytes %" PRIu64 "-%" PRIu64 "): %s; %u earlier "
                 "chunk(s) were delivered; fix the data (or the flow's settings) and drop the "
                 "file again",
                 j->chunk.index + 1, j->chunk.start, j->chunk.end,
                 r->message ? r->message : "no reason given", j->chunk.index);
        j->fail_status = r->api.status;
        j->fail_message = r->api.message ? strdup(r->api.message) : NULL;
        j->fail_errors = r->api.errors ? strdup(r->api.errors) : NULL;
        j->fail_chunk = (int)j->chunk.index;
        j->fail_offset = (int64_t)j->chunk.start;
        job_set(j, STEP_FINISH_FAIL);
        job_run(j, work_finish);
        return;
    case PD_EAMBIGUOUS:
        job_fail(j,
                 "chunk %u (bytes %" PRIu64 "-%" PRIu64 ") %s; %u earlier chunk(s) were "
                 "delivered",
                 j->chunk.index + 1, j->chunk.start, j->chunk.end,
                 r->message ? r->message : "was sent several times without an answer",
                 j->chunk.index);
        j->fail_chunk = (int)j->chunk.index;
        j->fail_offset = (int64_t)j->chunk.start;
        job_set(j, STEP_FINISH_FAIL);
        job_run(j, work_finish);
        return;
    case PD_ELIMIT:
        job_fail(j,
                 "chunk %u (bytes %" PRIu64 "-%" PRIu64 "): %s; %u earlier chunk(s) were "
                 "delivered; drop the file again when Patchworks is reachable",
                 j->chunk.index + 1, j->chunk.start, j->chunk.end,
                 r->message ? r->message : "gave up after max_retry_time", j->chunk.index);
        j->fail_status = r->api.status;
        j->fail_chunk = (int)j->chunk.index;
        j->fail_offset = (int64_t)j->chunk.start;
        job_set(j, STEP_FINISH_FAIL);
        job_run(j, work_finish);
        return;
    case PD_EAUTH:
    case PD_ECONFIG:
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

static struct job *job_new(struct dwatch *w, const char *work_name, const char *name, bool resume)
{
    struct job *j = calloc(1, sizeof(*j));
    char *state_name = NULL;

    if (!j)
        return NULL;
    j->d = w->d;
    j->w = w;
    j->since_ms = now_ms();
    j->fd = -1;
    j->resume = resume;
    j->fail_chunk = -1;
    j->fail_offset = -1;
    j->work_path = join(w->work_dir, work_name);
    if (asprintf(&state_name, "%s.json", work_name) >= 0)
        j->state_path = join(w->state_dir, state_name);
    free(state_name);
    j->js.name = name ? strdup(name) : NULL;
    if (!j->work_path || !j->state_path || (name && !j->js.name)) {
        free(j->work_path);
        free(j->state_path);
        free(j->js.name);
        free(j);
        return NULL;
    }
    j->next = w->d->jobs;
    if (j->next)
        j->next->prev = j;
    w->d->jobs = j;
    return j;
}

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

static void sweep_temps(const char *path)
{
    DIR *dir = opendir(path);
    struct dirent *de;
    time_t now = time(NULL);

    if (!dir)
        return;
    while ((de = readdir(dir))) {
        struct stat st;
        if (!is_temp_name(de->d_name))
            continue;
        /* A writer links or renames its temp within moments; an old one is a crash's. */
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode) && now - st.st_mtime > 60)
            unlinkat(dirfd(dir), de->d_name, 0);
    }
    closedir(dir);
}

static void sweep_state_dir(struct dwatch *w)
{
    DIR *dir = opendir(w->state_dir);
    struct dirent *de;

    sweep_temps(w->state_dir);
    sweep_temps(w->work_dir);
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
           w->cfg->name, q(name, qb, sizeof(qb)), q(w->work_dir, qd, sizeof(qd)), kind_of(mode));
}

/* Picks up files left in work/ by a stopped or crashed daemon (ours or another's). */
static void resume_orphans(struct dwatch *w)
{
    DIR *dir = opendir(w->work_dir);
    struct dirent *de;

    sweep_state_dir(w);
    if (!dir)
        return;
    while ((de = readdir(dir))) {
        struct stat st;
        /* Every name a partner can give a file is resumed; only our own temp files are not. */
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") || is_temp_name(de->d_name))
            continue;
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW))
            continue;
        if (!S_ISREG(st.st_mode)) {
            odd_item(w, de->d_name, st.st_mode);
            continue;
        }
        if (job_holds(w, de->d_name))
            continue;
        struct job *j = job_new(w, de->d_name, NULL, true);
        if (!j)
            break;
        job_set(j, STEP_PREPARE);
        job_run(j, work_prepare);
    }
    closedir(dir);
}

/* Says once per candidate why it stays in the drop folder, and looks again at the next rescan. */
static void leave_in_place(struct dwatch *w, struct cand *c, bool *said, const char *event,
                           const char *why, const char *action)
{
    char qb[PATH_MAX + 16];
    if (!*said)
        pd_log(PD_LOG_ERROR, "event=%s watch=%s file=%s reason=\"%s\" action=\"%s\"", event,
               w->cfg->name, q(c->name, qb, sizeof(qb)), why, action);
    if (w->d->opts.once) {
        /* --once does not wait for a person: the file counts as not delivered (exit 1). */
        if (!*said)
            w->d->sum.stuck++;
        *said = true;
        c->due_ms = NEVER;
        return;
    }
    *said = true;
    c->due_ms = now_ms() + w->cfg->rescan_ms;
}

/*
 * Claims one ready candidate by renaming it into work/, then starts its job. The name is
 * resolved beneath the drop folder's descriptor and the file checked again through its own
 * descriptor, so a partner swapping a folder or the file for a symlink gains nothing.
 */
static void claim(struct dwatch *w, struct cand *c)
{
    const char *slash = strrchr(c->name, '/');
    const char *base = slash ? slash + 1 : c->name;
    char work_name[NAME_MAX + 1], to[PATH_MAX], qb[PATH_MAX + 16];
    struct stat st;
    int rc;

    /* Changed since it was found ready? Then it was not done after all. */
    if (w->root_fd < 0 || pd_zone_stat(w->root_fd, c->name, &st) || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size != c->obs.size || (uint64_t)st.st_ino != c->obs.ino ||
        (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec != c->obs.mtime_ns) {
        c->due_ms = 0;
        w->next_due = 0;
        return;
    }
    for (unsigned start = 0, remade = 0;; start++) {
        rc = pd_fs_unique_name(w->work_dir, base, NULL, start, work_name, sizeof(work_name) - 8);
        if (rc)
            break;
        snprintf(to, sizeof(to), "%s/%s", w->work_dir, work_name);
        unsigned flags = (w->cfg->allow_hard_links ? PD_ZONE_ALLOW_LINKS : 0) |
                         (w->d->lease && !w->no_lease ? PD_ZONE_LEASE : 0);
        rc = pd_zone_claim(w->root_fd, c->name, &st, flags, to, NULL);
        if (rc == -ENOLCK) {
            /* No leases on this file system (NFS, FUSE): settle alone judges, said once. */
            pd_log(PD_LOG_WARN,
                   "event=lease_unavailable watch=%s reason=\"the file system of %s takes no "
                   "leases\" action=\"a file still open for writing is judged by settle "
                   "alone; make uploads rename a finished temp file, or use done_marker\"",
                   w->cfg->name, q(w->cfg->path, qb, sizeof(qb)));
            w->no_lease = true;
            start--;
            continue;
        }
        if (rc == -ENOENT && !remade++ && pd_zone_stat(w->root_fd, c->name, &st) == 0) {
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
    if (rc == -EBUSY) {
        /* A writer still holds it open (a stalled upload): not done, whatever settle says. */
        if (!c->busy_said)
            pd_log(PD_LOG_INFO,
                   "event=still_open watch=%s file=%s reason=\"a process still has the file "
                   "open for writing\" action=\"claimed once the writer closes it\"",
                   w->cfg->name, q(c->name, qb, sizeof(qb)));
        c->busy_said = true;
        c->due_ms = now_ms() + (w->cfg->settle_ms > 500 ? w->cfg->settle_ms : 500);
        if (c->due_ms < w->next_due)
            w->next_due = c->due_ms;
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
        c->due_ms = 0; /* changed, or swapped for something else: look again */
        w->next_due = 0;
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
               w->cfg->name, q(c->name, qb, sizeof(qb)), pd_strerror(rc));
        c->due_ms = now_ms() + w->cfg->rescan_ms;
        return;
    }
    recent_check(w, c->name);
    pd_log(PD_LOG_INFO, "event=claimed watch=%s file=%s bytes=%" PRIu64, w->cfg->name,
           q(c->name, qb, sizeof(qb)), c->obs.size);
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

static void dispatch(struct pd_daemon *d)
{
    if (d->stopping)
        return;
    for (size_t tries = 0; tries < d->nwatches && d->active < d->max_active;) {
        struct dwatch *w = &d->watches[d->rr++ % d->nwatches];
        if (!w->nheap || (w->cfg->ordered && w->active) || w->active >= w->max_jobs) {
            tries++;
            continue;
        }
        tries = 0;
        claim(w, heap_pop(w));
    }
}

/* ---- stopping -------------------------------------------------------------------------- */

static bool is_once_idle(struct pd_daemon *d)
{
    if (d->stopping || d->jobs)
        return false;
    for (size_t i = 0; i < d->nwatches; i++) {
        struct dwatch *w = &d->watches[i];
        if (w->disabled)
            continue; /* nothing of it can be handled now; the summary says so */
        if (!w->scanned || w->nheap)
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
        if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            S_ISREG(st.st_mode))
            n++;
    }
    closedir(dir);
    return n;
}

static void check_stopped(struct pd_daemon *d)
{
    if (!d->stopping || d->stopped_told)
        return;
    for (struct job *j = d->jobs; j; j = j->next)
        if (j->busy)
            return;
    size_t left = 0;
    for (size_t i = 0; i < d->nwatches; i++)
        left += count_files(d->watches[i].work_dir);
    /* --once never calls a run done while files sit in work/, whatever held them there. */
    if (d->opts.once && left > d->sum.stuck)
        d->sum.stuck = left;
    pd_log(PD_LOG_INFO, "event=stopped files_left_in_work=%zu%s", left,
           left ? " action=\"resumed at the next start\"" : "");
    /* Parked jobs keep their files in work/; nothing else holds them. */
    while (d->jobs)
        job_free(d->jobs);
    d->stopped_told = true;
    uv_timer_stop(&d->grace);
    uv_timer_stop(&d->tick);
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
    check_stopped(d);
}

/* ---- life cycle ---------------------------------------------------------------------------- */

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
        if (asprintf(why, "cannot open the drop folder %s: %s; patchdrop's user (uid %u) needs "
                          "read and search permission on it",
                     wc->path, pd_strerror(fd), (unsigned)geteuid()) < 0)
            *why = NULL;
        return fd;
    }
    if (access(wc->path, W_OK | X_OK)) {
        rc = -errno;
        if (asprintf(why, "patchdrop's user (uid %u) cannot take files out of %s (%s): it "
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
               wc->name, q(wc->work_dir, qb, sizeof(qb)));
    unsigned moved = 0;
    char *mwhy = NULL;
    rc = pd_zone_migrate(fd, w->work_dir, w->state_dir, &moved, &mwhy);
    if (moved || rc)
        pd_log(rc ? PD_LOG_ERROR : PD_LOG_INFO,
               "event=migrated watch=%s files=%u to=%s reason=\"%s\"", wc->name, moved,
               q(w->work_dir, qb, sizeof(qb)),
               rc ? pd_strerror(rc) : "files an older patchdrop left in .patchdrop/work are "
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
        char *work = join(wc->work_dir, "work"), *state = join(wc->work_dir, "state");
        int fd = pd_zone_open_root(wc->path);
        if (fd < 0) {
            rc = fd;
            if (asprintf(why, "[watch:%s]: cannot open the drop folder %s: %s", wc->name,
                         wc->path, pd_strerror(fd)) < 0)
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
static void watch_begin(struct dwatch *w)
{
    if (w->disabled || !w->d->started || w->watching)
        return;
    w->watching = true;
    resume_orphans(w);
    pd_watcher_start(w->watcher);
}

/*
 * One watch whose folders cannot be set up is disabled, never the others: said once per
 * reason, shown in the metrics and /healthz, and tried again every rescan period.
 */
static void watch_try_setup(struct dwatch *w)
{
    char *why = NULL;
    int rc = watch_setup(w, &why);

    w->setup_due = now_ms() + w->cfg->rescan_ms;
    if (rc == 0) {
        if (w->disabled)
            pd_log(PD_LOG_INFO, "event=watch_enabled watch=%s", w->cfg->name);
        w->disabled = false;
        free(w->disabled_why);
        w->disabled_why = NULL;
        free(why);
        pd_metrics_watch_state(w->d->opts.metrics, w->cfg->name, NULL);
        watch_begin(w);
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

static void on_client_note(void *arg, enum pd_log_level level, const char *line)
{
    pd_log(level, "%s", line);
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
    uv_timer_init(loop, &d->tick);
    uv_timer_init(loop, &d->grace);
    d->tick.data = d;
    d->grace.data = d;
    for (size_t i = 0; i < cfg->nwatches; i++) {
        struct dwatch *w = &d->watches[i];
        const struct pd_watch *wc = &cfg->watches[i];
        w->d = d;
        w->root_fd = -1;
        w->cfg = wc;
        w->next_due = NEVER;
        d->nwatches++;
        if (pd_ready_rules_init(&w->rules, wc->include, wc->exclude, wc->done_marker,
                                wc->settle_ms, wc->min_age_ms))
            goto fail;
        w->work_dir = join(wc->work_dir, "work");
        w->state_dir = join(wc->work_dir, "state");
        if (!w->work_dir || !w->state_dir)
            goto fail;
        /* With several watches, one watch's files may hold at most concurrency - 1 requests
         * (its jobs each hold one while sending): a request slot always stays for the others,
         * even when every request of one partner hangs until its timeout. */
        unsigned share = cfg->pw.concurrency > 1 ? (unsigned)cfg->pw.concurrency - 1 : 1;
        w->max_jobs = wc->max_jobs ? (unsigned)wc->max_jobs
                      : cfg->nwatches > 1 ? share
                                          : d->max_active;
        struct pd_watch_opts wo = {.root = wc->path,
                                   .rescan_ms = wc->rescan_ms,
                                   .poll = wc->poll,
                                   .recursive = wc->recursive,
                                   .skip = ".patchdrop",
                                   .report_skipped = true};
        if ((rc = pd_watcher_create(loop, &wo, on_watch_event, w, &w->watcher)))
            goto fail;
        /* --once sweeps once at its end instead (cli_run.c) */
        if (!opts->once && (rc = pd_retention_create(loop, wc, NULL, &w->retention)))
            goto fail;
        watch_try_setup(w);
    }
    {
        /* The token and the dedupe records live here: only patchdrop's, like work/. */
        char *why = NULL;
        if ((rc = pd_zone_own_dir(cfg->state.dir, 0700, true, &why))) {
            pd_log(PD_LOG_ERROR, "event=setup_failed folder=%s reason=\"%s\"", cfg->state.dir,
                   why ? why : pd_strerror(rc));
            free(why);
            goto fail;
        }
    }
    if ((rc = pd_bodylimit_init(&d->limit, cfg->pw.max_body, cfg->state.dir)))
        goto fail;
    d->limit_ready = true;
    struct pd_client_opts co = {.pw = &cfg->pw, .state_dir = cfg->state.dir,
                                .event = on_client_note, .note_arg = d, .metrics = opts->metrics};
    if ((rc = pd_client_create(loop, &co, &d->client)))
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
        watch_begin(&d->watches[i]);
    uv_timer_start(&d->tick, on_tick, TICK_MS, TICK_MS);
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
    on_closed_one((uv_handle_t *)&d->tick);
}

void pd_daemon_close(struct pd_daemon **dp, void (*on_closed)(void *arg), void *arg)
{
    struct pd_daemon *d = dp ? (struct pd_daemon *)*dp : NULL;

    if (!d)
        return;
    *dp = NULL;
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
    uv_close((uv_handle_t *)&d->tick, on_closed_one);
    uv_close((uv_handle_t *)&d->grace, on_closed_one);
}

/* ---- metrics ------------------------------------------------------------------------------ */

void pd_daemon_sample(const struct pd_daemon *d, struct pd_metrics *m)
{
    struct pd_metrics_watch_sample *ws = calloc(d->nwatches ? d->nwatches : 1, sizeof(*ws));
    struct pd_metrics_sample s = {.watches = ws};
    struct pd_client_stats cs;

    if (!m || !ws) {
        free(ws);
        return;
    }
    if (d->client) {
        cs = pd_client_stats(d->client);
        s.requests_waiting = cs.waiting;
        s.requests_in_flight = cs.in_flight;
        s.failing_since_ms = cs.failing_since_ms;
        s.last_failure_status = cs.last_failure_status;
    }
    /* A candidate's age counts from when its content last changed, so a file still being
     * uploaded looks young; names never observed (not regular files) do not count. */
    for (size_t i = 0; i < d->nwatches; i++) {
        const struct dwatch *w = &d->watches[i];
        struct pd_metrics_watch_sample *o = &ws[s.nwatches++];
        o->watch = w->cfg->name;
        for (size_t b = 0; b < w->nbuckets; b++) {
            for (const struct cand *c = w->buckets[b]; c; c = c->next) {
                if (!c->obs.seen)
                    continue;
                o->files_pending++;
                if (!o->oldest_since_ms || c->obs.unchanged_since_ms < o->oldest_since_ms)
                    o->oldest_since_ms = c->obs.unchanged_since_ms;
            }
        }
        for (const struct job *j = d->jobs; j; j = j->next) {
            if (j->w != w)
                continue;
            o->files_pending++;
            if (!o->oldest_since_ms || j->since_ms < o->oldest_since_ms)
                o->oldest_since_ms = j->since_ms;
        }
    }
    pd_metrics_sample(m, &s);
    free(ws);
}
