/*
 * Metrics and health (see pd_metrics.h). Counters live in plain fields guarded by one mutex:
 * events come at most a few thousand a second, so a lock costs nothing measurable and keeps the
 * per-watch table (which grows when a reload adds a watch) simple. The HTTP side is
 * libmicrohttpd with its own polling thread; a connection guard (below, "connection guard")
 * keeps /metrics and /healthz answering through a flood of idle or slowloris connections, and
 * a slow scraper can never hold the daemon up.
 *
 * Output follows the Prometheus text exposition format 0.0.4:
 * https://prometheus.io/docs/instrumenting/exposition_formats/
 */
#include "pd_metrics.h"

#include "pd_clock.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_list.h"
#include "pd_log.h"
#include "pd_netaddr.h"

#include <microhttpd.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define STATUS_MAX 600 /* statuses 100..599 counted one by one; index 0: no answer */
#define DEFAULT_UNHEALTHY_MS 600000
#define DEFAULT_STALL_MS 15000

/* The connection guard's numbers; see "connection guard" below for why they are what they are. */
#define CONN_MAX 512      /* connections libmicrohttpd accepts at most... */
#define CONN_MIN 32       /* ...and at least, whatever the file descriptor limit */
#define CONN_FD_SHARE 4   /* ...at most a quarter of RLIMIT_NOFILE: deliveries need the rest */
#define CONN_RESERVE 16   /* slots kept free by eviction, for connections accepted in a burst */
#define CONN_IDLE_MS 5000 /* a connection idle this long without a whole request is stale */
#define CONN_TIMEOUT_S 5  /* libmicrohttpd's own inactivity timeout */

/* The final outcomes of a flow run, as labels; anything else counts as the last, unknown. */
static const char *const run_outcomes[] = {"success", "failed", "stopped", "partial", "unknown"};
#define RUN_OUTCOMES (sizeof(run_outcomes) / sizeof(run_outcomes[0]))
/* patchdrop_flow_run_seconds' bucket bounds (le), seconds: from follow_first's 5 s to a day. */
static const unsigned run_le_s[] = {5, 15, 30, 60, 120, 300, 900, 3600, 21600, 86400};
#define RUN_BUCKETS (sizeof(run_le_s) / sizeof(run_le_s[0]))

/* A connection to the metrics listener; libmicrohttpd's thread only (see "connection guard"). */
struct mconn {
    struct mconn *prev, *next; /* in the idle list, oldest first */
    int fd;
    uint64_t idle_since_ms; /* monotonic: when it connected or its last answer went */
    bool idle;              /* in the idle list: no request being answered */
    bool evicted;           /* shut down by the guard; libmicrohttpd closes it next */
};

struct mwatch {
    char *name;
    uint64_t files[PD_METRICS_FILE_EVENTS];
    uint64_t claimed_bytes, finished_bytes;
    uint64_t chunks, bytes_sent;
    uint64_t last_delivery_wall_ms;
    uint64_t pending, oldest_since_ms;
    uint64_t runs[RUN_OUTCOMES];        /* flow runs finished, by outcome */
    uint64_t run_buckets[RUN_BUCKETS];  /* of them, those that took at most run_le_s[i] (and
                                           more than the bound before): summed when shown */
    uint64_t run_ms_sum;                /* how long they took, added up */
    char *down_why; /* NULL: the watch is set up; else why it is disabled */
};

struct pd_metrics {
    pthread_mutex_t lock;
    const struct pd_clock *clock;
    uint64_t unhealthy_ms, stall_ms;
    uint64_t start_wall_ms;
    struct mwatch *watches;
    size_t nwatches;
    uint64_t counters[PD_METRICS_COUNTERS];
    uint64_t responses[STATUS_MAX];
    uint64_t waiting, in_flight;
    uint64_t failing_since_ms;
    long last_failure_status;
    uint64_t runs_followed;
    uint64_t heartbeat_ms; /* monotonic; 0: the loop never beat */
    uint64_t evicted;      /* connections the guard shut down (under the lock: /metrics shows it) */
    struct MHD_Daemon *httpd;
    unsigned port;
    /* The connection guard's state: libmicrohttpd's thread only, so no lock. */
    struct mconn *idle_head, *idle_tail;
    unsigned live;     /* connections open and not evicted */
    unsigned max_conn; /* libmicrohttpd's connection limit */
    /* The status page: set before the listener starts, read-only afterwards. */
    pd_metrics_status_fn status_fn;
    void *status_arg;
    char *token;   /* bearer token asked for, or NULL */
    bool loopback; /* the listener is on a loopback address */
};

int pd_metrics_create(const struct pd_metrics_opts *opts, struct pd_metrics **out)
{
    struct pd_metrics *m = calloc(1, sizeof(*m));

    *out = NULL;
    if (!m)
        return PD_ENOMEM;
    pthread_mutex_init(&m->lock, NULL);
    m->clock = opts && opts->clock ? opts->clock : pd_clock_system();
    m->unhealthy_ms = opts && opts->unhealthy_after_ms ? opts->unhealthy_after_ms
                                                       : DEFAULT_UNHEALTHY_MS;
    m->stall_ms = opts && opts->stall_ms ? opts->stall_ms : DEFAULT_STALL_MS;
    m->start_wall_ms = m->clock->wall_ms(m->clock->arg);
    *out = m;
    return 0;
}

void pd_metrics_destroy(struct pd_metrics **mp)
{
    struct pd_metrics *m = mp ? *mp : NULL;

    if (!m)
        return;
    /* The HTTP thread goes first: after this no request can touch the counters. */
    if (m->httpd)
        MHD_stop_daemon(m->httpd);
    for (size_t i = 0; i < m->nwatches; i++) {
        free(m->watches[i].name);
        free(m->watches[i].down_why);
    }
    free(m->watches);
    if (m->token) {
        explicit_bzero(m->token, strlen(m->token));
        free(m->token);
    }
    pthread_mutex_destroy(&m->lock);
    free(m);
    *mp = NULL;
}

/* The watch's entry, added on first use. Lock held. NULL only when out of memory. */
static struct mwatch *watch_of(struct pd_metrics *m, const char *name)
{
    struct mwatch *grown;

    for (size_t i = 0; i < m->nwatches; i++)
        if (!strcmp(m->watches[i].name, name))
            return &m->watches[i];
    grown = realloc(m->watches, (m->nwatches + 1) * sizeof(*grown));
    if (!grown)
        return NULL;
    m->watches = grown;
    memset(&grown[m->nwatches], 0, sizeof(*grown));
    if (!(grown[m->nwatches].name = strdup(name)))
        return NULL;
    return &m->watches[m->nwatches++];
}

void pd_metrics_file_event(struct pd_metrics *m, const char *watch, enum pd_metrics_file ev,
                           uint64_t bytes)
{
    struct mwatch *w;

    if (!m || (unsigned)ev >= PD_METRICS_FILE_EVENTS)
        return;
    pthread_mutex_lock(&m->lock);
    if ((w = watch_of(m, watch ? watch : ""))) {
        w->files[ev]++;
        if (ev == PD_METRICS_CLAIMED)
            w->claimed_bytes += bytes;
        else if (ev != PD_METRICS_DISCOVERED)
            w->finished_bytes += bytes;
        if (ev == PD_METRICS_DELIVERED || ev == PD_METRICS_DUPLICATE)
            w->last_delivery_wall_ms = m->clock->wall_ms(m->clock->arg);
    }
    pthread_mutex_unlock(&m->lock);
}

void pd_metrics_watch_state(struct pd_metrics *m, const char *watch, const char *down_why)
{
    struct mwatch *w;

    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    if ((w = watch_of(m, watch ? watch : ""))) {
        free(w->down_why);
        w->down_why = down_why ? strdup(down_why) : NULL;
        if (down_why && !w->down_why)
            w->down_why = strdup("disabled");
    }
    pthread_mutex_unlock(&m->lock);
}

void pd_metrics_chunk(struct pd_metrics *m, const char *watch, uint64_t body_bytes)
{
    struct mwatch *w;

    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    if ((w = watch_of(m, watch ? watch : ""))) {
        w->chunks++;
        w->bytes_sent += body_bytes;
    }
    pthread_mutex_unlock(&m->lock);
}

void pd_metrics_response(struct pd_metrics *m, long status)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->responses[status >= 100 && status < STATUS_MAX ? status : 0]++;
    pthread_mutex_unlock(&m->lock);
}

void pd_metrics_count(struct pd_metrics *m, enum pd_metrics_counter c)
{
    if (!m || (unsigned)c >= PD_METRICS_COUNTERS)
        return;
    pthread_mutex_lock(&m->lock);
    m->counters[c]++;
    pthread_mutex_unlock(&m->lock);
}

void pd_metrics_flow_run(struct pd_metrics *m, const char *watch, const char *outcome,
                         uint64_t took_ms)
{
    struct mwatch *w;
    size_t o = 0, b = 0;

    if (!m)
        return;
    while (o < RUN_OUTCOMES - 1 && (!outcome || strcmp(outcome, run_outcomes[o])))
        o++;
    while (b < RUN_BUCKETS && took_ms > run_le_s[b] * (uint64_t)1000)
        b++;
    pthread_mutex_lock(&m->lock);
    if ((w = watch_of(m, watch ? watch : ""))) {
        w->runs[o]++;
        if (b < RUN_BUCKETS) /* longer than the last bound: in +Inf only, which is the count */
            w->run_buckets[b]++;
        w->run_ms_sum += took_ms;
    }
    pthread_mutex_unlock(&m->lock);
}

void pd_metrics_heartbeat(struct pd_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->heartbeat_ms = m->clock->mono_ms(m->clock->arg);
    if (!m->heartbeat_ms)
        m->heartbeat_ms = 1;
    pthread_mutex_unlock(&m->lock);
}

void pd_metrics_sample(struct pd_metrics *m, const struct pd_metrics_sample *s)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->waiting = s->requests_waiting;
    m->in_flight = s->requests_in_flight;
    m->failing_since_ms = s->failing_since_ms;
    m->last_failure_status = s->last_failure_status;
    m->runs_followed = s->runs_followed;
    for (size_t i = 0; i < m->nwatches; i++)
        m->watches[i].pending = m->watches[i].oldest_since_ms = 0;
    for (size_t i = 0; i < s->nwatches; i++) {
        struct mwatch *w = watch_of(m, s->watches[i].watch);
        if (w) {
            w->pending = s->watches[i].files_pending;
            w->oldest_since_ms = s->watches[i].oldest_since_ms;
        }
    }
    pthread_mutex_unlock(&m->lock);
}

struct pd_metrics_totals pd_metrics_totals(struct pd_metrics *m)
{
    struct pd_metrics_totals t;

    memset(&t, 0, sizeof(t));
    if (!m)
        return t;
    pthread_mutex_lock(&m->lock);
    for (size_t i = 0; i < m->nwatches; i++) {
        const struct mwatch *w = &m->watches[i];
        for (int e = 0; e < PD_METRICS_FILE_EVENTS; e++)
            t.files[e] += w->files[e];
        t.claimed_bytes += w->claimed_bytes;
        t.finished_bytes += w->finished_bytes;
        t.chunks += w->chunks;
        t.bytes_sent += w->bytes_sent;
    }
    pthread_mutex_unlock(&m->lock);
    return t;
}

/* ---- health ------------------------------------------------------------------------------ */

/* Lock held. */
static int health_locked(struct pd_metrics *m, char *reason, size_t len)
{
    uint64_t now = m->clock->mono_ms(m->clock->arg);

    if (!m->heartbeat_ms) {
        snprintf(reason, len, "starting: the event loop has not run yet");
        return 503;
    }
    if (now - m->heartbeat_ms > m->stall_ms) {
        snprintf(reason, len, "the event loop has not run for %" PRIu64 " s (stalled)",
                 (now - m->heartbeat_ms) / 1000);
        return 503;
    }
    if (m->failing_since_ms && now - m->failing_since_ms >= m->unhealthy_ms) {
        char what[64];
        if (m->last_failure_status)
            snprintf(what, sizeof(what), "HTTP %ld", m->last_failure_status);
        else
            snprintf(what, sizeof(what), "no answer (network error or timeout)");
        snprintf(reason, len,
                 "deliveries have been failing for %" PRIu64 " s (unhealthy_after is %" PRIu64
                 " s); last answer: %s",
                 (now - m->failing_since_ms) / 1000, m->unhealthy_ms / 1000, what);
        return 503;
    }
    for (size_t i = 0; i < m->nwatches; i++) {
        if (m->watches[i].down_why) {
            snprintf(reason, len, "watch %s is disabled: %s", m->watches[i].name,
                     m->watches[i].down_why);
            return 503;
        }
    }
    /* Healthy, nothing stops: said so an operator's probe shows it. */
    snprintf(reason, len, "%s",
             m->counters[PD_METRICS_CLUSTER_FALLBACKS] > m->counters[PD_METRICS_CLUSTER_REJOINS]
                 ? "ok; [cluster] Redis is away: this host sends on its own share of the rate "
                   "until it is back (event=cluster_fallback)"
                 : "ok");
    return 200;
}

int pd_metrics_health(struct pd_metrics *m, char *reason, size_t len)
{
    int code;
    pthread_mutex_lock(&m->lock);
    code = health_locked(m, reason, len);
    pthread_mutex_unlock(&m->lock);
    return code;
}

/* ---- rendering ---------------------------------------------------------------------------- */

/* A label value: backslash, quote and newline escaped as the format asks. */
static void put_label(FILE *f, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            fprintf(f, "\\%c", *v);
        else if (*v == '\n')
            fputs("\\n", f);
        else
            fputc(*v, f);
    }
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One line per watch of a per-watch number. */
#define PER_WATCH(f, m, metric, expr)                                                            \
    do {                                                                                       \
        for (size_t i_ = 0; i_ < (m)->nwatches; i_++) {                                        \
            const struct mwatch *w = &(m)->watches[i_];                                        \
            fprintf(f, "%s{watch=\"", metric);                                                   \
            put_label(f, w->name);                                                             \
            fprintf(f, "\"} %" PRIu64 "\n", (uint64_t)(expr));                                 \
        }                                                                                      \
    } while (0)

static void process_memory(uint64_t *rss, uint64_t *vsz)
{
    FILE *f = fopen("/proc/self/statm", "re");
    unsigned long long pages = 0, resident = 0;
    long page = sysconf(_SC_PAGESIZE);

    *rss = *vsz = 0;
    if (!f)
        return;
    if (fscanf(f, "%llu %llu", &pages, &resident) == 2 && page > 0) {
        *vsz = pages * (uint64_t)page;
        *rss = resident * (uint64_t)page;
    }
    fclose(f);
}

/* A family of one number without labels. */
static void single(FILE *f, const char *name, const char *type, const char *help, uint64_t v)
{
    family(f, name, type, help);
    fprintf(f, "%s %" PRIu64 "\n", name, v);
}

/* The per-watch families: files, chunks, bytes, what is pending, whether the watch is up. */
static void render_watches(struct pd_metrics *m, FILE *f, uint64_t now)
{
    static const struct {
        const char *name, *help;
    } files[PD_METRICS_FILE_EVENTS] = {
        {"patchdrop_files_discovered_total", "Files that appeared in the drop folder."},
        {"patchdrop_files_claimed_total", "Files moved into work/ to be delivered."},
        {"patchdrop_files_delivered_total",
         "Files whose every chunk was acknowledged, archived with a receipt."},
        {"patchdrop_files_duplicate_total", "Files archived as duplicates (dedupe), not sent."},
        {"patchdrop_files_rejected_total", "Files moved to the failed folder with the reason."},
    };

    for (int e = 0; e < PD_METRICS_FILE_EVENTS; e++) {
        family(f, files[e].name, "counter", files[e].help);
        PER_WATCH(f, m, files[e].name, w->files[e]);
    }
    family(f, "patchdrop_chunks_sent_total", "counter",
           "Chunks acknowledged by Patchworks (a small file is one chunk).");
    PER_WATCH(f, m, "patchdrop_chunks_sent_total", w->chunks);
    family(f, "patchdrop_bytes_sent_total", "counter",
           "Request body bytes acknowledged by Patchworks, after JSON escaping.");
    PER_WATCH(f, m, "patchdrop_bytes_sent_total", w->bytes_sent);
    family(f, "patchdrop_files_pending", "gauge",
           "Files seen or claimed and not yet delivered or rejected.");
    PER_WATCH(f, m, "patchdrop_files_pending", w->pending);
    family(f, "patchdrop_oldest_pending_file_age_seconds", "gauge",
           "Age of the oldest file not yet delivered (since it was seen ready or claimed); 0: none.");
    PER_WATCH(f, m, "patchdrop_oldest_pending_file_age_seconds",
              w->oldest_since_ms && now > w->oldest_since_ms ? (now - w->oldest_since_ms) / 1000
                                                             : 0);
    family(f, "patchdrop_watch_up", "gauge",
           "1 when the watch's folders are set up; 0: disabled (the log says why), the other "
           "watches go on.");
    PER_WATCH(f, m, "patchdrop_watch_up", w->down_why == NULL);
    family(f, "patchdrop_last_delivery_timestamp_seconds", "gauge",
           "Unix time of the last file delivered; 0: none since the start.");
    PER_WATCH(f, m, "patchdrop_last_delivery_timestamp_seconds", w->last_delivery_wall_ms / 1000);
}

/* The start of a per-watch sample with more labels: NAME{watch="W" (the caller ends it). */
static void watch_sample(FILE *f, const char *name, const struct mwatch *w)
{
    fprintf(f, "%s{watch=\"", name);
    put_label(f, w->name);
    fputc('"', f);
}

/* The flow runs followed: how many now, how they ended, how long they took. */
static void render_runs(struct pd_metrics *m, FILE *f)
{
    single(f, "patchdrop_flow_runs_followed", "gauge",
           "Flow runs being followed to their final status now.", m->runs_followed);
    family(f, "patchdrop_flow_runs_finished_total", "counter",
           "Flow runs followed to their final status, by outcome (unknown: not final after "
           "follow_timeout, or its poll failed); one per file chunk, so files batched into one "
           "request count once each.");
    for (size_t i = 0; i < m->nwatches; i++)
        for (size_t o = 0; o < RUN_OUTCOMES; o++) {
            watch_sample(f, "patchdrop_flow_runs_finished_total", &m->watches[i]);
            fprintf(f, ",outcome=\"%s\"} %" PRIu64 "\n", run_outcomes[o], m->watches[i].runs[o]);
        }
    family(f, "patchdrop_flow_run_seconds", "histogram",
           "Time from a start request's acknowledgement to its flow run's final status, every "
           "outcome (retries included: from the first start).");
    for (size_t i = 0; i < m->nwatches; i++) {
        const struct mwatch *w = &m->watches[i];
        uint64_t count = 0;
        for (size_t b = 0; b < RUN_BUCKETS; b++) {
            count += w->run_buckets[b];
            watch_sample(f, "patchdrop_flow_run_seconds_bucket", w);
            fprintf(f, ",le=\"%u\"} %" PRIu64 "\n", run_le_s[b], count);
        }
        count = 0;
        for (size_t o = 0; o < RUN_OUTCOMES; o++)
            count += w->runs[o];
        watch_sample(f, "patchdrop_flow_run_seconds_bucket", w);
        fprintf(f, ",le=\"+Inf\"} %" PRIu64 "\n", count);
        /* Printed by hand: a locale's decimal comma must never reach the page. */
        watch_sample(f, "patchdrop_flow_run_seconds_sum", w);
        fprintf(f, "} %" PRIu64 ".%03u\n", w->run_ms_sum / 1000, (unsigned)(w->run_ms_sum % 1000));
        watch_sample(f, "patchdrop_flow_run_seconds_count", w);
        fprintf(f, "} %" PRIu64 "\n", count);
    }
}

/* The account-wide counters of pd_metrics_count(), in the order shown. */
static const struct {
    const char *name, *help;
    enum pd_metrics_counter counter;
} counter_families[] = {
    {"patchdrop_retries_total", "Requests retried after 5xx, 429, a network error or a timeout.",
     PD_METRICS_RETRIES},
    {"patchdrop_ambiguous_retries_total",
     "Requests sent again after their whole body went out without an answer: each may have "
     "started a flow run (possible duplicates).",
     PD_METRICS_AMBIGUOUS},
    {"patchdrop_logins_total", "Logins for a bearer token.", PD_METRICS_LOGINS},
    {"patchdrop_reauths_total", "401 answers to data requests.", PD_METRICS_REAUTHS},
    {"patchdrop_polls_total",
     "Requests sent to follow a flow run to its final status, retries included.",
     PD_METRICS_POLLS},
    {"patchdrop_polls_deferred_total",
     "Polls of flow runs held back because polls had used their follow_share of the rate "
     "(each poll counted once).",
     PD_METRICS_POLLS_DEFERRED},
    {"patchdrop_cluster_fallbacks_total",
     "[cluster]: times this host went on its own share (Redis away); minus rejoins: 1 now.",
     PD_METRICS_CLUSTER_FALLBACKS},
    {"patchdrop_cluster_rejoins_total", "[cluster]: times this host went back to Redis.",
     PD_METRICS_CLUSTER_REJOINS},
};

/* The account-wide families: answers, retries, logins, requests, health, this endpoint. */
static void render_requests(struct pd_metrics *m, FILE *f, uint64_t now, int health)
{
    family(f, "patchdrop_http_responses_total", "counter",
           "Answers from Patchworks by HTTP status; status=\"none\": no answer (network error, "
           "timeout).");
    for (int s = 0; s < STATUS_MAX; s++) {
        if (!m->responses[s])
            continue;
        if (s)
            fprintf(f, "patchdrop_http_responses_total{status=\"%d\"} %" PRIu64 "\n", s,
                    m->responses[s]);
        else
            fprintf(f, "patchdrop_http_responses_total{status=\"none\"} %" PRIu64 "\n",
                    m->responses[s]);
    }
    for (size_t i = 0; i < sizeof(counter_families) / sizeof(counter_families[0]); i++)
        single(f, counter_families[i].name, "counter", counter_families[i].help,
               m->counters[counter_families[i].counter]);
    single(f, "patchdrop_requests_waiting", "gauge",
           "Requests waiting for a token, the rate limit, a free slot or their next retry.",
           m->waiting);
    single(f, "patchdrop_requests_in_flight", "gauge", "Requests sent and not yet answered.",
           m->in_flight);
    single(f, "patchdrop_failing_seconds", "gauge",
           "How long the oldest retrying request has been failing; 0: nothing failing.",
           m->failing_since_ms && now > m->failing_since_ms ? (now - m->failing_since_ms) / 1000
                                                            : 0);
    single(f, "patchdrop_healthy", "gauge", "1 when /healthz answers 200, else 0.", health == 200);
    single(f, "patchdrop_metrics_connections_evicted_total", "counter",
           "Connections to this endpoint closed before they sent a whole request, because they "
           "were stale or slots were needed for new ones (a flood shows here).",
           m->evicted);
}

static void render_locked(struct pd_metrics *m, FILE *f)
{
    uint64_t now = m->clock->mono_ms(m->clock->arg);
    uint64_t rss, vsz;
    char reason[256];
    int health = health_locked(m, reason, sizeof(reason));

    family(f, "patchdrop_build_info", "gauge", "Version of the running patchdrop.");
    fprintf(f, "patchdrop_build_info{version=\"%s\"} 1\n", PD_VERSION);
    render_watches(m, f, now);
    render_runs(m, f);
    render_requests(m, f, now, health);
    process_memory(&rss, &vsz);
    single(f, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", rss);
    single(f, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.", vsz);
    single(f, "process_start_time_seconds", "gauge", "Start time of the process, Unix time.",
           m->start_wall_ms / 1000);
}

int pd_metrics_render(struct pd_metrics *m, char **text, size_t *len)
{
    FILE *f = open_memstream(text, len);

    if (!f)
        return PD_ENOMEM;
    pthread_mutex_lock(&m->lock);
    render_locked(m, f);
    pthread_mutex_unlock(&m->lock);
    if (fclose(f)) {
        free(*text);
        *text = NULL;
        return PD_ENOMEM;
    }
    return 0;
}

/* ---- HTTP (libmicrohttpd's thread) ------------------------------------------------------ */

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned code, const char *type,
                             char *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
    enum MHD_Result ret;

    if (!resp) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (code == 401) /* only the token guard answers 401 */
        MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"patchdrop\"");
    ret = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return ret;
}

/*
 * ---- connection guard ----------------------------------------------------------------------
 *
 * A scrape must get through while someone holds thousands of connections open, idle or
 * trickling a header byte every few seconds (slowloris), from 127.0.0.1 like the scraper, so
 * MHD_OPTION_PER_IP_CONNECTION_LIMIT cannot tell them apart. What libmicrohttpd offers alone
 * does not do it:
 *  - MHD_OPTION_CONNECTION_LIMIT: at the limit, libmicrohttpd closes every new connection at
 *    once (or stops accepting, and new ones wait in the kernel's backlog behind the flood), so
 *    the fresh scrape is the one that loses.
 *  - MHD_OPTION_CONNECTION_TIMEOUT counts inactivity: every byte received restarts it, so a
 *    slowloris connection never times out, and an idle flood reconnects as fast as it is cut.
 *  - It has no call to close a connection it holds, and no deadline for a whole request.
 * So patchdrop tracks every connection (MHD_OPTION_NOTIFY_CONNECTION) in a list of "idle" ones,
 * oldest first: connected or done with a request, and not yet with a whole new request (the
 * access handler takes a connection off the list; MHD_OPTION_NOTIFY_COMPLETED puts it back).
 * When a new connection arrives, before it joins the list, the guard shuts down (shutdown(2);
 * libmicrohttpd then reads the end and closes it itself) every idle connection older than
 * CONN_IDLE_MS, and the oldest idle ones while the live connections would exceed the limit
 * less CONN_RESERVE. A stale connection thus costs nothing until a slot is wanted, a new
 * connection always gets one, and a scrape, whose request follows its connect at once, is
 * answered unless hundreds of newer connections arrive before its request does; what a flood
 * loses is its oldest idle connections. CONN_IDLE_MS is short because a scraper sends its
 * request as soon as it is connected, and between scrapes (15 s and more) it may as well
 * connect again. The reserve leaves room for the few connections libmicrohttpd accepts in one
 * go before it reads the shut-down ones' end.
 * The limit is at most a quarter of the file descriptor limit, so a flood can never take the
 * descriptors deliveries need. libmicrohttpd polls with epoll (MHD_USE_AUTO), so descriptors
 * above FD_SETSIZE are fine. Everything here runs on libmicrohttpd's one polling thread (no
 * thread pool, no thread per connection): the connection callbacks, the access handler and
 * the completion callback are never concurrent, and a descriptor in the list is open, because
 * libmicrohttpd reports a connection closed before it closes the descriptor.
 */

static uint64_t guard_now(const struct pd_metrics *m)
{
    return m->clock->mono_ms(m->clock->arg);
}

static void idle_unlink(struct pd_metrics *m, struct mconn *c)
{
    if (!c->idle)
        return;
    PD_LIST_UNLINK_TAIL(m->idle_head, m->idle_tail, c);
    c->prev = c->next = NULL;
    c->idle = false;
}

static void idle_append(struct pd_metrics *m, struct mconn *c, uint64_t now)
{
    idle_unlink(m, c);
    c->idle_since_ms = now;
    PD_LIST_APPEND(m->idle_head, m->idle_tail, c);
    c->idle = true;
}

/* Makes room for one more connection: shuts down stale idle ones and, over the limit, the
 * oldest idle ones. */
static void guard_make_room(struct pd_metrics *m, uint64_t now)
{
    unsigned room = m->max_conn > CONN_RESERVE ? m->max_conn - CONN_RESERVE : 1;
    unsigned n = 0;

    while (m->idle_head && (m->live >= room || now - m->idle_head->idle_since_ms >= CONN_IDLE_MS)) {
        struct mconn *c = m->idle_head;
        idle_unlink(m, c);
        shutdown(c->fd, SHUT_RDWR);
        c->evicted = true;
        m->live--;
        n++;
    }
    if (n) {
        pthread_mutex_lock(&m->lock);
        m->evicted += n;
        pthread_mutex_unlock(&m->lock);
    }
}

static void on_mhd_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                              enum MHD_ConnectionNotificationCode code)
{
    struct pd_metrics *m = cls;
    struct mconn *c = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        uint64_t now = guard_now(m);
        guard_make_room(m, now);
        /* Out of memory: the connection is served, only never evicted. */
        if (!ci || !(c = calloc(1, sizeof(*c))))
            return;
        c->fd = ci->connect_fd;
        idle_append(m, c, now);
        m->live++;
        *socket_context = c;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && c) {
        idle_unlink(m, c);
        if (!c->evicted)
            m->live--;
        free(c);
        *socket_context = NULL;
    }
}

/* The connection's guard record, or NULL when it has none. */
static struct mconn *conn_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* A request was answered (or given up): the connection waits for the next one, idle again. */
static void on_mhd_completed(void *cls, struct MHD_Connection *conn, void **state,
                             enum MHD_RequestTerminationCode toe)
{
    struct pd_metrics *m = cls;
    struct mconn *c = conn_of(conn);

    if (c && !c->evicted)
        idle_append(m, c, guard_now(m));
}

/* How many connections libmicrohttpd may hold: see "connection guard". */
static unsigned connection_limit(void)
{
    struct rlimit rl;
    rlim_t n = CONN_MAX;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
        rl.rlim_cur / CONN_FD_SHARE < n)
        n = rl.rlim_cur / CONN_FD_SHARE;
    return n < CONN_MIN ? CONN_MIN : (unsigned)n;
}

/* ---- requests ------------------------------------------------------------------------------ */

void pd_metrics_set_status(struct pd_metrics *m, pd_metrics_status_fn fn, void *arg)
{
    m->status_fn = fn;
    m->status_arg = arg;
}

int pd_metrics_set_token(struct pd_metrics *m, const char *token)
{
    free(m->token);
    m->token = token ? strdup(token) : NULL;
    return token && !m->token ? PD_ENOMEM : 0;
}

/* Whether the request carries the bearer token; compared in constant time. */
static bool authorized(const struct pd_metrics *m, struct MHD_Connection *conn)
{
    const char *h = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
    size_t n = strlen(m->token), given;
    unsigned char diff = 0;

    if (!h || strncasecmp(h, "Bearer ", 7))
        return false;
    h += 7;
    given = strlen(h);
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)m->token[i] ^ (unsigned char)(i < given ? h[i] : 0);
    return !diff && given == n;
}

static enum MHD_Result text_reply(struct MHD_Connection *conn, unsigned code, const char *text)
{
    char *body = strdup(text);
    return body ? reply(conn, code, "text/plain; charset=utf-8", body, strlen(body)) : MHD_NO;
}

/* /metrics, / and /api/status: behind the token when there is one. */
static enum MHD_Result guarded(struct pd_metrics *m, struct MHD_Connection *conn, const char *url)
{
    char *body = NULL, *json;
    size_t len = 0;
    bool page = !strcmp(url, "/");

    if (m->token && !authorized(m, conn))
        return text_reply(conn, 401, "a bearer token is needed ([metrics] token_file)\n");
    if (!strcmp(url, "/metrics")) {
        if (pd_metrics_render(m, &body, &len))
            return MHD_NO;
        return reply(conn, 200, "text/plain; version=0.0.4; charset=utf-8", body, len);
    }
    if (!m->token && !m->loopback)
        return text_reply(conn, 403,
                          "the status shows file names: set [metrics] token_file to serve it on "
                          "an address that is not loopback\n");
    json = m->status_fn ? m->status_fn(m->status_arg) : NULL;
    if (!page) {
        if (!json)
            return text_reply(conn, 503, "the daemon's status is not available yet\n");
        return reply(conn, 200, "application/json", json, strlen(json));
    }
    if (pd_status_page_render(json, &body, &len)) {
        free(json);
        return MHD_NO;
    }
    free(json);
    return reply(conn, 200, "text/html; charset=utf-8", body, len);
}

static enum MHD_Result on_http_request(void *cls, struct MHD_Connection *conn, const char *url,
                                       const char *method, const char *version,
                                       const char *upload, size_t *upload_len, void **state)
{
    struct pd_metrics *m = cls;
    struct mconn *c = conn_of(conn);
    char *body = NULL;

    /* A whole request: being answered, it is no longer the guard's to evict. */
    if (c)
        idle_unlink(m, c);
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) {
        body = strdup("only GET is served here\n");
        return body ? reply(conn, 405, "text/plain", body, strlen(body)) : MHD_NO;
    }
    if (!strcmp(url, "/healthz")) {
        char reason[300];
        int code = pd_metrics_health(m, reason, sizeof(reason));
        if (asprintf(&body, "%s%s\n", code == 200 ? "" : "unhealthy: ", reason) < 0)
            return MHD_NO;
        return reply(conn, (unsigned)code, "text/plain; charset=utf-8", body, strlen(body));
    }
    if (strcmp(url, "/metrics") && strcmp(url, "/") && strcmp(url, "/api/status")) {
        body = strdup("not found: patchdrop serves /, /api/status, /metrics and /healthz\n");
        return body ? reply(conn, 404, "text/plain", body, strlen(body)) : MHD_NO;
    }
    return guarded(m, conn, url);
}

static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    line[strcspn(line, "\n")] = '\0';
    pd_log(PD_LOG_DEBUG, "event=metrics_http detail=\"%s\"", line);
}

int pd_metrics_listen(struct pd_metrics *m, const char *listen, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    unsigned addrlen = 0;
    unsigned flags = MHD_USE_AUTO_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    const union MHD_DaemonInfo *di;

    if (pd_parse_listen(listen, &addr, &addrlen)) {
        snprintf(err, errlen, "listen = %s is not an address:port", listen);
        return PD_ECONFIG;
    }
    if (addr.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    m->loopback = pd_sockaddr_is_loopback((const struct sockaddr *)&addr);
    m->max_conn = connection_limit();
    m->httpd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_http_request, m, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
        MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, m, MHD_OPTION_CONNECTION_LIMIT, m->max_conn,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONN_TIMEOUT_S, MHD_OPTION_NOTIFY_CONNECTION,
        on_mhd_connection, m, MHD_OPTION_NOTIFY_COMPLETED, on_mhd_completed, m, MHD_OPTION_END);
    if (!m->httpd) {
        snprintf(err, errlen,
                 "cannot listen on %s for metrics (port in use, or not an address of this "
                 "host); change [metrics] listen",
                 listen);
        return -EADDRINUSE;
    }
    di = MHD_get_daemon_info(m->httpd, MHD_DAEMON_INFO_BIND_PORT);
    m->port = di ? di->port : 0;
    return 0;
}

unsigned pd_metrics_port(const struct pd_metrics *m)
{
    return m ? m->port : 0;
}
