/*
 * `patchdrop run`: the daemon. Runs until SIGTERM/SIGINT (requests in flight finish within
 * shutdown_grace, progress is saved, exit 0); SIGHUP re-reads the config and applies it once the
 * files in flight are done, or keeps the old one and says why. With --once it handles what is
 * there (resumed work included) and exits: 0 all delivered, 1 anything failed or stuck,
 * 2 configuration error (credentials refused included).
 *
 * Around the daemon: the metrics endpoint ([metrics] listen), a one-second heartbeat that proves
 * the loop is alive (to /healthz and to systemd's watchdog) and hands the metrics what waits,
 * systemd notifications (READY, RELOADING, STOPPING, WATCHDOG) when run as a Type=notify
 * service, and with --once on a terminal a progress bar and a summary table.
 */
#include "pd_cli.h"
#include "pd_config.h"
#include "pd_daemon.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_metrics.h"
#include "pd_progress.h"
#include "pd_retention.h"

#ifdef PD_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#define BEAT_MS 1000
#define PROGRESS_MS 250

struct run {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    uv_timer_t beat, progress_timer;
    struct pd_metrics *metrics;
    struct pd_progress progress;
    FILE *report;  /* --once: a line per chunk and file */
    FILE *escaped; /* the stream under report that escapes names (pd_progress_escaping) */
    bool verbose;
    bool watchdog;
    uint64_t beat_ms;
    const char *file;
    struct pd_config *cfg, *next_cfg;
    struct pd_daemon *daemon;
    bool once;
    bool no_follow; /* --once --no-follow */
    bool quitting;
    int interrupts;
    char *fatal;
    struct pd_daemon_summary total;
    bool started; /* the first daemon started: later ones are reloads */
    /* The daemon's status document as of the last beat, for the metrics thread's / and
     * /api/status (the daemon itself is the loop's alone). */
    pthread_mutex_t status_lock;
    char *status_json;
};

static void add_summary(struct pd_daemon_summary *t, const struct pd_daemon_summary *s)
{
    t->delivered += s->delivered;
    t->duplicates += s->duplicates;
    t->rejected += s->rejected;
    t->chunks += s->chunks;
    t->bytes += s->bytes;
    t->stuck += s->stuck;
    t->disabled = s->disabled; /* a state, not a count of events: the latest daemon's */
    t->skipped += s->skipped;
    t->runs_succeeded += s->runs_succeeded;
    t->runs_failed += s->runs_failed;
    t->runs_unknown += s->runs_unknown;
}

static int start_daemon(struct run *r);

/* Tells systemd (NOTIFY_SOCKET) about the service's state; nothing when not under systemd. */
static void notify(const char *state)
{
#ifdef PD_HAVE_SYSTEMD
    sd_notify(0, state);
#else
    (void)state;
#endif
}

static void apply_log_settings(const struct run *r, const struct pd_config *cfg)
{
    pd_log_set_format(cfg->daemon.log_format ? PD_LOG_JSON : PD_LOG_TEXT);
    pd_log_set_level(r->verbose ? PD_LOG_DEBUG : (enum pd_log_level)cfg->daemon.log_level);
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000;
}

static struct pd_progress_state progress_state(struct run *r)
{
    struct pd_metrics_totals t = pd_metrics_totals(r->metrics);
    struct pd_progress_state s = {
        .files_done = t.files[PD_METRICS_DELIVERED] + t.files[PD_METRICS_DUPLICATE] +
                      t.files[PD_METRICS_REJECTED],
        .files_total = t.files[PD_METRICS_CLAIMED],
        .files_failed = t.files[PD_METRICS_REJECTED],
        .bytes_done = t.finished_bytes,
        .bytes_total = t.claimed_bytes,
        .chunks = t.chunks,
        .total_words = "claimed files",
        .runs_succeeded = r->total.runs_succeeded,
        .runs_failed = r->total.runs_failed,
        .runs_unknown = r->total.runs_unknown,
    };
    return s;
}

static void on_progress_tick(uv_timer_t *t)
{
    struct run *r = t->data;
    struct pd_progress_state s = progress_state(r);
    pd_progress_draw(&r->progress, &s, mono_ms());
}

/* The loop is alive: tell /healthz and the watchdog, hand over the gauges, flush repeats. */
static void on_beat(uv_timer_t *t)
{
    struct run *r = t->data;

    pd_metrics_heartbeat(r->metrics);
    if (r->daemon)
        pd_daemon_sample(r->daemon, r->metrics);
    if (r->daemon && r->cfg->metrics.listen) {
        char *json = pd_daemon_status_json(r->daemon, NULL), *old;
        pthread_mutex_lock(&r->status_lock);
        old = r->status_json;
        r->status_json = json;
        pthread_mutex_unlock(&r->status_lock);
        free(old);
    }
    pd_log_flush_repeats(0);
    if (r->watchdog)
        notify("WATCHDOG=1");
    /* On a whole multiple of beat_ms of the loop's clock, where an idle daemon's capped sleep
     * ends too (daemon.c, dw_wake): both come in one wakeup, not two a second. */
    uv_timer_start(&r->beat, on_beat, r->beat_ms - uv_now(&r->loop) % r->beat_ms, 0);
}

static void close_signals(struct run *r)
{
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sighup, NULL);
    uv_close((uv_handle_t *)&r->beat, NULL);
    uv_close((uv_handle_t *)&r->progress_timer, NULL);
}

static void on_daemon_stopped(void *arg, const char *fatal)
{
    struct run *r = arg;
    struct pd_daemon_summary s = pd_daemon_summary(r->daemon);

    add_summary(&r->total, &s);
    if (fatal && !r->fatal)
        r->fatal = strdup(fatal);
    pd_daemon_close(&r->daemon, NULL, NULL);
    if (!fatal && !r->quitting && r->next_cfg) {
        /* A reload: the old daemon drained; the new config takes over. */
        const char *old_listen = r->cfg->metrics.listen ? r->cfg->metrics.listen : "";
        const char *new_listen = r->next_cfg->metrics.listen ? r->next_cfg->metrics.listen : "";
        if (strcmp(old_listen, new_listen))
            pd_log(PD_LOG_WARN, "event=reload_partial key=listen action=\"the metrics endpoint "
                                "keeps its address until patchdrop restarts\"");
        pd_config_destroy(&r->cfg);
        r->cfg = r->next_cfg;
        r->next_cfg = NULL;
        apply_log_settings(r, r->cfg);
        pd_log(PD_LOG_INFO, "event=reloaded config=%s watches=%zu", r->cfg->file,
               r->cfg->nwatches);
        if (start_daemon(r) == 0) {
            notify("READY=1\nSTATUS=configuration reloaded; watching the drop folders");
            return;
        }
    }
    notify("STOPPING=1");
    close_signals(r);
}

static int start_daemon(struct run *r)
{
    struct pd_daemon_opts o = {.cfg = r->cfg,
                               .once = r->once,
                               .no_follow = r->no_follow,
                               .report = r->report,
                               .on_stopped = on_daemon_stopped,
                               .arg = r,
                               .metrics = r->metrics};
    int rc = pd_daemon_create(&r->loop, &o, &r->daemon);
    if (rc) {
        if (!r->fatal && asprintf(&r->fatal, "cannot start: %s", pd_strerror(rc)) < 0)
            r->fatal = NULL;
        return rc;
    }
    /* A service with not one watch it can set up has nothing to do: exit 2 with the reasons
     * logged (systemd keeps it failed instead of restarting it). A watch that fails among
     * others is disabled and tried again, and --once reports it in its summary. */
    if (!r->once && !r->started && r->cfg->nwatches &&
        pd_daemon_summary(r->daemon).disabled == r->cfg->nwatches) {
        if (!r->fatal &&
            asprintf(&r->fatal, "cannot start: no watch could be set up (each reason is logged "
                                "as event=watch_disabled); fix the folders, then start again") < 0)
            r->fatal = NULL;
        pd_daemon_close(&r->daemon, NULL, NULL);
        return PD_ECONFIG;
    }
    pd_daemon_start(r->daemon);
    if (!r->started) /* a reload says event=reloaded instead */
        pd_log(PD_LOG_INFO, "event=started config=%s watches=%zu once=%s", r->cfg->file,
               r->cfg->nwatches, r->once ? "yes" : "no");
    r->started = true;
    return 0;
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct run *r = h->data;

    r->quitting = true;
    if (!r->daemon)
        return;
    notify("STOPPING=1");
    if (++r->interrupts > 1) {
        pd_log(PD_LOG_WARN, "event=stopping signal=%d grace=0 reason=\"second signal\"", signum);
        pd_daemon_stop(r->daemon, 0);
        return;
    }
    pd_log(PD_LOG_INFO, "event=stopping signal=%d grace_ms=%" PRIu64, signum,
           r->cfg->daemon.shutdown_grace_ms);
    pd_daemon_stop(r->daemon, r->cfg->daemon.shutdown_grace_ms);
}

static void on_hup(uv_signal_t *h, int signum)
{
    struct run *r = h->data;
    struct pd_config *cfg = NULL;
    char *errors = NULL;

    if (r->quitting || !r->daemon)
        return;
    if (pd_config_load(r->file, &cfg, &errors)) {
        for (char *line = strtok(errors ? errors : "", "\n"); line; line = strtok(NULL, "\n"))
            pd_log(PD_LOG_ERROR, "event=reload_refused problem=\"%s\"", line);
        pd_log(PD_LOG_ERROR, "event=reload_refused action=\"keeping the running configuration\"");
        free(errors);
        return;
    }
    free(errors);
    if (cfg->nwatches == 0) {
        pd_log(PD_LOG_ERROR, "event=reload_refused reason=\"no [watch:NAME] section\" "
                             "action=\"keeping the running configuration\"");
        pd_config_destroy(&cfg);
        return;
    }
    /* A config that parses but cannot start (a folder it cannot make or may not trust) must
     * not stop a running daemon: everything it needs is set up before the old one stops. */
    char *why = NULL;
    if (pd_daemon_preflight(cfg, &why)) {
        pd_log(PD_LOG_ERROR, "event=reload_refused reason=\"%s\" action=\"keeping the running "
                             "configuration\"",
               why ? why : "its folders cannot be set up");
        free(why);
        pd_config_destroy(&cfg);
        return;
    }
    pd_config_destroy(&r->next_cfg);
    r->next_cfg = cfg;
    notify("RELOADING=1\nSTATUS=reloading the configuration");
    pd_log(PD_LOG_INFO, "event=reloading action=\"finishing files in flight, then applying\"");
    pd_daemon_stop(r->daemon, r->cfg->daemon.shutdown_grace_ms);
}

enum { O_NO_FOLLOW = 256, O_DRY_RUN };
static const struct option run_opts[] = {{"once", no_argument, NULL, 'o'},
                                         {"no-follow", no_argument, NULL, O_NO_FOLLOW},
                                         {"dry-run", no_argument, NULL, O_DRY_RUN},
                                         {NULL, 0, NULL, 0}};

static const struct pd_cli_spec spec = {
    .name = "run",
    .synopsis = "[-c FILE] [--once [--no-follow | --dry-run]] [-v]",
    .help = "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "      --once         handle every file present, then exit (for cron); waits for\n"
            "                     the flow runs it started to end (watches with follow = yes)\n"
            "      --no-follow    with --once: do not wait for them (the service follows them)\n"
            "      --dry-run      with --once: say what would be taken or skipped and why, and\n"
            "                     how each file would be cut; send nothing, move nothing\n"
            "  -v, --verbose      log every step of every file\n"
            "exit status: 0 all delivered (the daemon: a clean stop), 1 a file failed or is stuck,\n"
            "a flow run did not succeed, or a watch could not be set up (--once), 2 configuration\n"
            "error\n",
    .common = PD_CLI_CONFIG | PD_CLI_VERBOSE,
    .opts = run_opts,
    .max_args = 0,
};

/* The metrics thread's copy of the status document (see struct run). */
static char *status_copy(void *arg)
{
    struct run *r = arg;
    char *json;
    pthread_mutex_lock(&r->status_lock);
    json = r->status_json ? strdup(r->status_json) : NULL;
    pthread_mutex_unlock(&r->status_lock);
    return json;
}

/* [metrics] token_file: its first line, the bearer token. 0, or the exit status (said). */
static int metrics_token(struct run *r)
{
    const char *path = r->cfg->metrics.token_file;
    char buf[1024];
    FILE *f;
    size_t n;
    int rc;

    if (!path)
        return 0;
    if (!(f = fopen(path, "re"))) {
        fprintf(stderr, "patchdrop run: %s: [metrics] token_file %s cannot be read: %s\n",
                r->file, path, strerror(errno));
        return PD_EXIT_USAGE;
    }
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0] || strpbrk(buf, " \t")) {
        fprintf(stderr, "patchdrop run: %s: [metrics] token_file %s must hold the token on its "
                        "first line, without spaces\n", r->file, path);
        explicit_bzero(buf, sizeof(buf));
        return PD_EXIT_USAGE;
    }
    rc = pd_metrics_set_token(r->metrics, buf);
    explicit_bzero(buf, sizeof(buf));
    return rc ? PD_EXIT_FAILED : 0;
}

/* The metrics, and their endpoint when [metrics] listen is set. Returns 0 or the exit status. */
static int start_metrics(struct run *r)
{
    struct pd_metrics_opts mo = {.unhealthy_after_ms = r->cfg->metrics.unhealthy_after_ms};
    char err[256];
    int rc;

    if (pd_metrics_create(&mo, &r->metrics)) {
        fprintf(stderr, "patchdrop run: out of memory\n");
        return PD_EXIT_FAILED;
    }
    if (!r->cfg->metrics.listen)
        return 0;
    pd_metrics_set_status(r->metrics, status_copy, r);
    if ((rc = metrics_token(r)))
        return rc;
    if (pd_cli_metrics_exposed(r->cfg))
        pd_log(PD_LOG_WARN,
               "event=metrics_exposed listen=%s reason=\"not a loopback address\" "
               "risk=\"%s\"",
               r->cfg->metrics.listen, pd_cli_metrics_exposed(r->cfg));
    if (pd_metrics_listen(r->metrics, r->cfg->metrics.listen, err, sizeof(err))) {
        fprintf(stderr, "patchdrop run: %s: %s\n", r->file, err);
        return PD_EXIT_USAGE;
    }
    pd_log(PD_LOG_INFO,
           "event=metrics_listening listen=%s port=%u paths=\"/ /api/status /metrics /healthz\" "
           "token=%s",
           r->cfg->metrics.listen, pd_metrics_port(r->metrics),
           r->cfg->metrics.token_file ? "yes" : "no");
    return 0;
}

/* The loop with its heartbeat, progress bar (--once on a terminal), report and signals. */
static void setup_loop(struct run *r)
{
    signal(SIGPIPE, SIG_IGN);
    /* A durable step waits on the thread pool for a shared sync (group commit): room for every
     * file handled at once besides hashing and cutting, so they wait together. libuv reads it
     * at its first use; the user's UV_THREADPOOL_SIZE wins. */
    char threads[16];
    snprintf(threads, sizeof(threads), "%" PRIu64, r->cfg->pw.concurrency * 2 + 4);
    setenv("UV_THREADPOOL_SIZE", threads, 0);
    uv_loop_init(&r->loop);
#ifdef PD_HAVE_SYSTEMD
    uint64_t watchdog_usec = 0;
    r->watchdog = sd_watchdog_enabled(0, &watchdog_usec) > 0;
    uint64_t beat_ms =
        r->watchdog && watchdog_usec / 2000 < BEAT_MS ? watchdog_usec / 2000 : BEAT_MS;
#else
    uint64_t beat_ms = BEAT_MS;
#endif
    uv_timer_init(&r->loop, &r->beat);
    uv_timer_init(&r->loop, &r->progress_timer);
    r->beat.data = r->progress_timer.data = r;
    r->beat_ms = beat_ms ? beat_ms : 1;
    uv_timer_start(&r->beat, on_beat, 0, 0);
    pd_progress_init(&r->progress, stderr, false, mono_ms());
    if (!r->once)
        r->progress.tty = NULL; /* a service's stderr is its log: no bar there */
    r->report = r->once ? stdout : NULL;
    if (pd_progress_on(&r->progress)) {
        /* Log and report lines wipe the bar first, so it never garbles them. */
        pd_log_set_output(pd_progress_wrap(&r->progress, stderr));
        r->report = pd_progress_wrap(&r->progress, stdout);
        uv_timer_start(&r->progress_timer, on_progress_tick, PROGRESS_MS, PROGRESS_MS);
    }
    /* Report lines name files (a partner picks the names) and quote Patchworks: never raw to a
     * terminal. Without memory for the escaping, no report rather than a raw one: the log
     * (quoted) says it all too. */
    if (r->report && !(r->report = r->escaped = pd_progress_escaping(r->report)))
        fprintf(stderr, "patchdrop run: out of memory: no report lines, see the log\n");
    uv_signal_init(&r->loop, &r->sigterm);
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sighup);
    r->sigterm.data = r->sigint.data = r->sighup.data = r;
    uv_signal_start(&r->sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&r->sigint, on_stop_signal, SIGINT);
    uv_signal_start(&r->sighup, on_hup, SIGHUP);
}

/* The exit status once the loop ended; a fatal reason is said on stderr. */
static int exit_status(const struct run *r)
{
    if (r->fatal) {
        char safe[2048];
        fprintf(stderr, "patchdrop run: %s\n", pd_log_escape(r->fatal, safe, sizeof(safe)));
        return PD_EXIT_USAGE;
    }
    /* --once reports on the files it handled; a daemon that drained and stopped cleanly
     * exits 0 whatever happened to files before (systemd would mark it failed). */
    if (r->once && (r->total.rejected || r->total.stuck || r->total.disabled || r->total.skipped ||
                    r->total.runs_failed || r->total.runs_unknown))
        return PD_EXIT_FAILED;
    return PD_EXIT_OK;
}

/* --once: the last line, on stdout. */
static void print_summary(const struct pd_daemon_summary *t)
{
    printf("summary: %" PRIu64 " delivered, %" PRIu64 " duplicate(s), %" PRIu64 " failed, %" PRIu64
           " stuck in work/; %" PRIu64 " chunk(s), %" PRIu64 " bytes%s\n",
           t->delivered, t->duplicates, t->rejected, t->stuck, t->chunks, t->bytes,
           t->disabled  ? "; some watches could not be set up (see the log)"
           : t->skipped ? "; some files were out of reach (path too long, see the log)"
                        : "");
    if (t->runs_succeeded || t->runs_failed || t->runs_unknown)
        printf("flow runs: %" PRIu64 " succeeded, %" PRIu64 " failed, stopped or partial, %" PRIu64
               " unknown\n",
               t->runs_succeeded, t->runs_failed, t->runs_unknown);
}

int pd_cli_run(int argc, char **argv)
{
    struct pd_cli_parser p;
    struct run r;
    int c, rc, status;
    bool dry = false;

    memset(&r, 0, sizeof(r));
    pthread_mutex_init(&r.status_lock, NULL);
    pd_cli_begin(&p, &spec, argc, argv);
    while ((c = pd_cli_next(&p)) > 0) {
        if (c == 'o')
            r.once = true;
        else if (c == O_NO_FOLLOW)
            r.no_follow = true;
        else if (c == O_DRY_RUN)
            dry = true;
    }
    if (c < 0)
        return p.status;
    if (dry && !r.once)
        return pd_cli_usage_error(&spec, "--dry-run goes with --once (what one run would do now)");
    if (r.no_follow && !r.once)
        return pd_cli_usage_error(&spec, "--no-follow goes with --once (the daemon always "
                                         "follows the runs of watches with follow = yes)");
    r.verbose = p.verbose;
    r.file = pd_cli_config_path(p.config);
    if ((rc = pd_cli_load_config(r.file, &r.cfg)))
        return rc;
    if (r.cfg->nwatches == 0) {
        fprintf(stderr, "%s: no [watch:NAME] section: patchdrop run needs at least one drop "
                        "folder (see conf/patchdrop.conf)\n", r.file);
        pd_config_destroy(&r.cfg);
        return PD_EXIT_USAGE;
    }
    if (dry) {
        rc = pd_cli_dryrun_run(r.cfg, stdout);
        pd_config_destroy(&r.cfg);
        return rc;
    }
    apply_log_settings(&r, r.cfg);
    if ((rc = start_metrics(&r))) {
        pd_metrics_destroy(&r.metrics);
        pd_config_destroy(&r.cfg);
        return rc;
    }
    setup_loop(&r);
    if (start_daemon(&r))
        close_signals(&r);
    else
        notify("READY=1\nSTATUS=watching the drop folders");
    uv_run(&r.loop, UV_RUN_DEFAULT);
    /* --once enforces retention (archive_keep...) at its end, once every file has landed (not
     * after a start that failed, nor when told to stop). */
    for (size_t i = 0; r.once && !r.fatal && !r.quitting && i < r.cfg->nwatches; i++)
        pd_retention_run(&r.cfg->watches[i], NULL);
    pd_log_flush_repeats(1);
    if (uv_loop_close(&r.loop))
        pd_log(PD_LOG_WARN, "event=exit reason=\"a loop handle was left open\"");

    status = exit_status(&r);
    if (r.escaped)
        fclose(r.escaped);
    if (pd_progress_on(&r.progress)) {
        struct pd_progress_state ps = progress_state(&r);
        pd_log_set_output(NULL);
        pd_progress_summary(&r.progress, &ps, mono_ms());
        pd_progress_cleanup(&r.progress);
    }
    pd_metrics_destroy(&r.metrics); /* the HTTP thread first: then the copy is ours */
    free(r.status_json);
    pthread_mutex_destroy(&r.status_lock);
    if (r.once)
        print_summary(&r.total);
    free(r.fatal);
    pd_config_destroy(&r.cfg);
    pd_config_destroy(&r.next_cfg);
    return status;
}
