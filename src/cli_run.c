/*
 * `patchdrop run`: the daemon. Runs until SIGTERM/SIGINT (requests in flight finish within
 * shutdown_grace, progress is saved, exit 0); SIGHUP re-reads the config and applies it once the
 * files in flight are done, or keeps the old one and says why. With --once it handles what is
 * there (resumed work included) and exits: 0 all delivered, 1 anything failed or stuck,
 * 2 configuration error (credentials refused included).
 */
#include "pd_cli.h"
#include "pd_config.h"
#include "pd_daemon.h"
#include "pd_error.h"
#include "pd_log.h"

#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

struct run {
    uv_loop_t loop;
    uv_signal_t sigterm, sigint, sighup;
    const char *file;
    struct pd_config *cfg, *next_cfg;
    struct pd_daemon *daemon;
    bool once;
    bool quitting;
    int interrupts;
    char *fatal;
    struct pd_daemon_summary total;
};

static void add_summary(struct pd_daemon_summary *t, const struct pd_daemon_summary *s)
{
    t->delivered += s->delivered;
    t->duplicates += s->duplicates;
    t->rejected += s->rejected;
    t->chunks += s->chunks;
    t->bytes += s->bytes;
    t->stuck += s->stuck;
}

static int start_daemon(struct run *r);

static void close_signals(struct run *r)
{
    uv_close((uv_handle_t *)&r->sigterm, NULL);
    uv_close((uv_handle_t *)&r->sigint, NULL);
    uv_close((uv_handle_t *)&r->sighup, NULL);
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
        pd_config_destroy(&r->cfg);
        r->cfg = r->next_cfg;
        r->next_cfg = NULL;
        pd_log(PD_LOG_INFO, "event=reloaded config=%s watches=%zu", r->cfg->file,
               r->cfg->nwatches);
        if (start_daemon(r) == 0)
            return;
    }
    close_signals(r);
}

static int start_daemon(struct run *r)
{
    struct pd_daemon_opts o = {.cfg = r->cfg,
                               .once = r->once,
                               .report = r->once ? stdout : NULL,
                               .on_stopped = on_daemon_stopped,
                               .arg = r};
    int rc = pd_daemon_create(&r->loop, &o, &r->daemon);
    if (rc) {
        if (!r->fatal && asprintf(&r->fatal, "cannot start: %s", pd_strerror(rc)) < 0)
            r->fatal = NULL;
        return rc;
    }
    pd_daemon_start(r->daemon);
    pd_log(PD_LOG_INFO, "event=started config=%s watches=%zu once=%s", r->cfg->file,
           r->cfg->nwatches, r->once ? "yes" : "no");
    return 0;
}

static void on_stop_signal(uv_signal_t *h, int signum)
{
    struct run *r = h->data;

    r->quitting = true;
    if (!r->daemon)
        return;
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
    pd_config_destroy(&r->next_cfg);
    r->next_cfg = cfg;
    pd_log(PD_LOG_INFO, "event=reloading action=\"finishing files in flight, then applying\"");
    pd_daemon_stop(r->daemon, r->cfg->daemon.shutdown_grace_ms);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: patchdrop run [-c FILE] [--once] [-v]\n"
            "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "      --once         handle every file present, then exit (for cron)\n"
            "  -v, --verbose      log every step of every file\n"
            "exit status: 0 all delivered, 1 a file failed or is stuck, 2 configuration error\n");
}

int pd_cli_run(int argc, char **argv)
{
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"once", no_argument, NULL, 'o'},
                                         {"verbose", no_argument, NULL, 'v'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    struct run r;
    int c, rc, status;

    memset(&r, 0, sizeof(r));
    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            r.file = optarg;
            break;
        case 'o':
            r.once = true;
            break;
        case 'v':
            pd_log_set_level(PD_LOG_DEBUG);
            break;
        case 'h':
            usage(stdout);
            return PD_EXIT_OK;
        default:
            usage(stderr);
            return PD_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "patchdrop run: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return PD_EXIT_USAGE;
    }
    r.file = pd_cli_config_path(r.file);
    if ((rc = pd_cli_load_config(r.file, &r.cfg)))
        return rc;
    if (r.cfg->nwatches == 0) {
        fprintf(stderr, "%s: no [watch:NAME] section: patchdrop run needs at least one drop "
                        "folder (see conf/patchdrop.conf)\n", r.file);
        pd_config_destroy(&r.cfg);
        return PD_EXIT_USAGE;
    }
    signal(SIGPIPE, SIG_IGN);
    uv_loop_init(&r.loop);
    uv_signal_init(&r.loop, &r.sigterm);
    uv_signal_init(&r.loop, &r.sigint);
    uv_signal_init(&r.loop, &r.sighup);
    r.sigterm.data = r.sigint.data = r.sighup.data = &r;
    uv_signal_start(&r.sigterm, on_stop_signal, SIGTERM);
    uv_signal_start(&r.sigint, on_stop_signal, SIGINT);
    uv_signal_start(&r.sighup, on_hup, SIGHUP);
    if (start_daemon(&r))
        close_signals(&r);
    uv_run(&r.loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&r.loop))
        pd_log(PD_LOG_WARN, "event=exit reason=\"a loop handle was left open\"");

    if (r.fatal) {
        fprintf(stderr, "patchdrop run: %s\n", r.fatal);
        status = PD_EXIT_USAGE;
    } else if (r.total.rejected || r.total.stuck) {
        status = PD_EXIT_FAILED;
    } else {
        status = PD_EXIT_OK;
    }
    if (r.once)
        printf("summary: %" PRIu64 " delivered, %" PRIu64 " duplicate(s), %" PRIu64
               " failed, %" PRIu64 " stuck in work/; %" PRIu64 " chunk(s), %" PRIu64 " bytes\n",
               r.total.delivered, r.total.duplicates, r.total.rejected, r.total.stuck,
               r.total.chunks, r.total.bytes);
    free(r.fatal);
    pd_config_destroy(&r.cfg);
    pd_config_destroy(&r.next_cfg);
    return status;
}
