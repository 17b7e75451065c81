/*
 * `patchdrop retry`: failed files back into their drop folders (pd_requeue.h), to be taken
 * again as new files by the daemon (or the next run --once). Their error files are kept in
 * <failed_dir>/history/. Exit status: 0 all moved, 1 some could not be, 2 usage.
 */
#include "pd_cli.h"

#include "pd_clock.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_requeue.h"
#include "pd_retention.h"
#include "pd_zone.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

enum { O_ALL = 256, O_SINCE, O_DRY };
static const struct option retry_opts[] = {{"watch", required_argument, NULL, 'w'},
                                           {"all-failed", no_argument, NULL, O_ALL},
                                           {"since", required_argument, NULL, O_SINCE},
                                           {"dry-run", no_argument, NULL, O_DRY},
                                           {NULL, 0, NULL, 0}};

static const struct pd_cli_spec spec = {
    .name = "retry",
    .synopsis = "[-c FILE] [--watch NAME] [--dry-run] (FILE... | --all-failed [--since D])",
    .help = "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "  -w, --watch NAME   the failed folder of [watch:NAME] (default: every watch's)\n"
            "      --all-failed   every failed file (of the watch, or of every watch)\n"
            "      --since D      with --all-failed: those that failed within D (1h, 2d) or\n"
            "                     since the date D (2026-11-30, 2026-11-30T08:00, local time)\n"
            "      --dry-run      say what would move where; move nothing\n"
            "FILE is a name in the failed folder or a path to it. Each goes back to where it\n"
            "came from in the drop folder (never replacing a file there), its error file to\n"
            "<failed_dir>/history/; the daemon takes it as a new file.\n"
            "exit status: 0 all moved, 1 some could not be, 2 usage or configuration error\n",
    .common = PD_CLI_CONFIG,
    .opts = retry_opts,
    .shortopts = "w:",
    .max_args = -1,
};

int pd_cli_parse_since(const char *s, uint64_t now_ms, uint64_t *since_ms)
{
    static const char *const formats[] = {"%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S",
                                          "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d"};
    uint64_t ms;

    if (pd_parse_duration(s, &ms) == 0) {
        *since_ms = ms < now_ms ? now_ms - ms : 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof(formats) / sizeof(formats[0]); i++) {
        struct tm tm = {.tm_isdst = -1};
        const char *end = strptime(s, formats[i], &tm);
        if (end && !*end) {
            time_t t = mktime(&tm);
            if (t < 0)
                return PD_ECONFIG;
            *since_ms = (uint64_t)t * 1000;
            return 0;
        }
    }
    return PD_ECONFIG;
}

struct retry {
    const struct pd_config *cfg;
    bool dry;
    uint64_t now_ms;
    unsigned moved, refused;
};

/* One item of watch W: said, and moved unless --dry-run. */
static void retry_one(struct retry *r, const struct pd_watch *w, int failedfd, int rootfd,
                      struct pd_requeue_item *it, const char *note)
{
    char qn[4 * NAME_MAX + 8], qr[4 * PATH_MAX + 8], why[1024];
    int rc;

    pd_log_escape(it->name, qn, sizeof(qn));
    pd_log_escape(it->rel, qr, sizeof(qr));
    if (r->dry) {
        rc = pd_requeue_check(rootfd, it);
        printf("%s: %s: would move to %s/%s%s%s%s\n", w->name, qn, w->path, qr,
               it->has_error ? ", its error file to " PD_REQUEUE_HISTORY "/" : "",
               rc == -EEXIST ? "; refused: the drop folder already has that name" : "",
               rc && rc != -EEXIST ? "; refused: its folder cannot be reached" : "");
        if (note && *note)
            printf("%s: %s: note: %s\n", w->name, qn, note);
        rc ? r->refused++ : r->moved++;
        return;
    }
    rc = pd_requeue_move(failedfd, rootfd, it, r->now_ms, why, sizeof(why));
    if (rc && rc != -EIO) {
        fprintf(stderr, "patchdrop retry: [watch:%s] %s: not moved: %s\n", w->name, qn, why);
        r->refused++;
        return;
    }
    printf("%s: %s: moved to %s/%s%s%s\n", w->name, qn, w->path, qr,
           it->history[0] ? ", its error file to " PD_REQUEUE_HISTORY "/" : "", it->history);
    if (rc) {
        fprintf(stderr, "patchdrop retry: [watch:%s] %s: %s\n", w->name, qn, why);
        r->refused++;
        return;
    }
    r->moved++;
}

/* NAME in the failed folder of W: where it goes, then moved (or said why not). */
static void plan_and_retry(struct retry *r, const struct pd_watch *w, int failedfd, int rootfd,
                           const char *name)
{
    char why[512], q[4 * NAME_MAX + 8];
    struct pd_requeue_item it;

    if (pd_requeue_plan(failedfd, name, &it, why, sizeof(why)) == 0) {
        retry_one(r, w, failedfd, rootfd, &it, why);
        return;
    }
    fprintf(stderr, "patchdrop retry: [watch:%s] %s: not moved: %s\n", w->name,
            pd_log_escape(name, q, sizeof(q)), why);
    r->refused++;
}

/* The failed and drop folders of W as descriptors; 0, or -1 after saying why. */
static int open_watch(const struct pd_watch *w, int *failedfd, int *rootfd)
{
    *failedfd = open(w->failed_dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (*failedfd < 0) {
        fprintf(stderr, "patchdrop retry: [watch:%s] failed folder %s: %s\n", w->name,
                w->failed_dir, strerror(errno));
        return -1;
    }
    if ((*rootfd = pd_zone_open_root(w->path)) < 0) {
        fprintf(stderr, "patchdrop retry: [watch:%s] drop folder %s: %s\n", w->name, w->path,
                pd_strerror(*rootfd));
        close(*failedfd);
        return -1;
    }
    return 0;
}

static void retry_all(struct retry *r, const struct pd_watch *w, uint64_t since_ms)
{
    struct pd_requeue_item *items = NULL;
    size_t n = 0;
    int failedfd, rootfd;

    if (open_watch(w, &failedfd, &rootfd)) {
        r->refused++;
        return;
    }
    if (pd_requeue_list(failedfd, since_ms, &items, &n)) {
        fprintf(stderr, "patchdrop retry: [watch:%s] cannot list %s\n", w->name, w->failed_dir);
        r->refused++;
    }
    for (size_t i = 0; i < n; i++)
        plan_and_retry(r, w, failedfd, rootfd, items[i].name);
    free(items);
    close(failedfd);
    close(rootfd);
}

/* Whether the failed folder of W holds the regular file NAME. */
static bool holds(const struct pd_watch *w, const char *name)
{
    char path[PATH_MAX];
    struct stat st;
    return w->failed_dir &&
           (size_t)snprintf(path, sizeof(path), "%s/%s", w->failed_dir, name) < sizeof(path) &&
           lstat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Whether the folder DIR is the failed folder of W (compared as canonical paths). */
static bool is_failed_dir(const struct pd_watch *w, const char *dir)
{
    char *a = realpath(dir, NULL), *b = w->failed_dir ? realpath(w->failed_dir, NULL) : NULL;
    bool same = a && b && !strcmp(a, b);
    free(a);
    free(b);
    return same;
}

/*
 * The watch whose failed folder holds ARG (a name there, or a path to it; its error file's name
 * means the file) among W (or every watch), and the name in *NAME. NULL after saying why.
 */
static const struct pd_watch *find_file(const struct pd_config *cfg, const struct pd_watch *only,
                                        const char *arg, char *name, size_t len)
{
    const char *slash = strrchr(arg, '/');
    const struct pd_watch *found = NULL;
    char dir[PATH_MAX], q[4 * PATH_MAX + 8];
    size_t n, k = strlen(PD_RETENTION_ERROR), matches = 0;

    snprintf(name, len, "%s", slash ? slash + 1 : arg);
    n = strlen(name);
    if (n > k && !strcmp(name + n - k, PD_RETENTION_ERROR))
        name[n - k] = '\0';
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - arg) + (slash == arg) : 0, arg);
    for (size_t i = 0; i < cfg->nwatches; i++) {
        const struct pd_watch *w = &cfg->watches[i];
        if ((only && w != only) || (slash && !is_failed_dir(w, dir)))
            continue;
        if (holds(w, name)) {
            found = w;
            matches++;
        }
    }
    pd_log_escape(arg, q, sizeof(q));
    if (matches > 1)
        fprintf(stderr, "patchdrop retry: %s: in the failed folders of several watches: say which "
                        "with --watch NAME\n", q);
    else if (!found)
        fprintf(stderr, "patchdrop retry: %s: no such failed file in %s%s\n", q,
                only ? "the failed folder " : "any watch's failed folder",
                only ? only->failed_dir : (slash ? " (is the path right?)" : ""));
    return matches == 1 ? found : NULL;
}

static void retry_named(struct retry *r, const struct pd_watch *only, char **args, int nargs)
{
    for (int i = 0; i < nargs; i++) {
        char name[NAME_MAX + 1];
        const struct pd_watch *w = find_file(r->cfg, only, args[i], name, sizeof(name));
        int failedfd, rootfd;
        if (!w || open_watch(w, &failedfd, &rootfd)) {
            r->refused++;
            continue;
        }
        plan_and_retry(r, w, failedfd, rootfd, name);
        close(failedfd);
        close(rootfd);
    }
}

int pd_cli_retry(int argc, char **argv)
{
    const char *watch = NULL, *since = NULL;
    struct retry r = {.now_ms = pd_clock_system()->wall_ms(pd_clock_system()->arg)};
    const struct pd_watch *only = NULL;
    struct pd_config *cfg = NULL;
    struct pd_cli_parser p;
    bool all = false;
    uint64_t since_ms = 0;
    int c;

    pd_cli_begin(&p, &spec, argc, argv);
    while ((c = pd_cli_next(&p)) > 0) {
        if (c == 'w')
            watch = p.arg;
        else if (c == O_ALL)
            all = true;
        else if (c == O_SINCE)
            since = p.arg;
        else if (c == O_DRY)
            r.dry = true;
    }
    if (c < 0)
        return p.status;
    if (all == (p.nargs > 0))
        return pd_cli_usage_error(&spec, "give the failed files to retry, or --all-failed");
    if (since && !all)
        return pd_cli_usage_error(&spec, "--since goes with --all-failed");
    if (since && pd_cli_parse_since(since, r.now_ms, &since_ms))
        return pd_cli_usage_error(&spec, "--since %s: give a duration (1h, 2d) or a date "
                                         "(2026-11-30, 2026-11-30T08:00)", since);
    if (pd_cli_load_config(p.config, &cfg) != 0)
        return PD_EXIT_USAGE;
    r.cfg = cfg;
    if (watch && !(only = pd_config_watch(cfg, watch))) {
        pd_config_destroy(&cfg);
        return pd_cli_usage_error(&spec, "the config has no [watch:%s]", watch);
    }
    if (all) {
        for (size_t i = 0; i < cfg->nwatches; i++)
            if (!only || only == &cfg->watches[i])
                retry_all(&r, &cfg->watches[i], since_ms);
    } else {
        retry_named(&r, only, p.args, p.nargs);
    }
    printf("%s: %u %s, %u %s\n", r.dry ? "dry run" : "retry", r.moved,
           r.dry ? "would move" : "moved", r.refused, r.dry ? "would not" : "not moved");
    pd_config_destroy(&cfg);
    return r.refused ? PD_EXIT_FAILED : PD_EXIT_OK;
}
