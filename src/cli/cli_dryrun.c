/*
 * --dry-run of `run --once` and `send`: what would be taken and how each file would be cut,
 * without a request, a claim or a change to any file. Readiness is pd_judge (the daemon's
 * rules, one look); the cut is the delivery engine's (pd_delivery_open over the file, at the
 * body limit the server was seen to take), counted and thrown away.
 */
#include "pd_cli.h"

#include "pd_bodylimit.h"
#include "pd_clock.h"
#include "pd_config.h"
#include "pd_deliver.h"
#include "pd_error.h"
#include "pd_expand.h"
#include "pd_format.h"
#include "pd_fsutil.h"
#include "pd_judge.h"
#include "pd_log.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_DEPTH 32 /* as deep as the watcher goes */
#define DRY_EXPAND_MAX (1u << 20) /* compressed files up to this are expanded for a look */
#define DRY_NAMES 5               /* the names of a zip's first files said */

struct dry {
    const struct pd_config *cfg;
    const struct pd_watch *w; /* NULL: send --flow (auto) */
    struct pd_bodylimit limit;
    struct pd_ready_rules rules;
    FILE *out;
    uint64_t now_ms;
    unsigned take, skip, fail;
    uint64_t chunks, bytes;
};

/*
 * A compressed file (pd_expand.h): "gzip of orders.json", "zip of 3 files: a.csv, ..." into
 * WHAT. 0: not compressed; 1: compressed and small enough to expand for a look (into a file with
 * no name in the state dir); 2: said already (too big to expand for a look, or refused).
 */
static int dry_compressed(struct dry *d, int fd, const char *name, uint64_t size, char *what,
                          size_t len)
{
    struct pd_expand x;
    char q[4 * PATH_MAX + 8], qw[8192];
    int rc = pd_expand_open(&x, fd, name);
    size_t at = 0;

    if (!rc && x.kind == PD_Z_NONE) {
        pd_expand_close(&x);
        return 0;
    }
    pd_log_escape(name, q, sizeof(q));
    if (rc) {
        fprintf(d->out, "%s: %s: would fail: %s\n", d->w ? d->w->name : "send", q,
                pd_log_escape(x.why, qw, sizeof(qw)));
        d->fail++;
        pd_expand_close(&x);
        return 2;
    }
    if (x.kind == PD_Z_ZIP)
        at = (size_t)snprintf(what, len, "zip of %zu file(s): ", x.n);
    else
        at = (size_t)snprintf(what, len, "%s of ", pd_expand_kind_name(x.kind));
    for (size_t i = 0; i < x.n && i < DRY_NAMES && at < len; i++)
        at += (size_t)snprintf(what + at, len - at, "%s%s", i ? ", " : "",
                               pd_log_escape(x.entries[i].name, qw, 1024));
    if (x.n > DRY_NAMES && at < len)
        snprintf(what + at, len - at, ", ...");
    pd_expand_close(&x);
    if (size <= DRY_EXPAND_MAX && d->cfg->state.dir && access(d->cfg->state.dir, W_OK) == 0)
        return 1;
    fprintf(d->out,
            "%s: %s: take: %" PRIu64 " bytes, %s; expanded and cut when sent (too big "
            "to expand for a dry run)\n",
            d->w ? d->w->name : "send", q, size, what);
    d->take++;
    d->bytes += size;
    return 2;
}

/* How FD (NAME) would be cut: one line, counted. */
static void cut_file(struct dry *d, int fd, const char *name, uint64_t size)
{
    char what[2048] = "";
    int zc = dry_compressed(d, fd, name, size, what, sizeof(what));
    if (zc == 2)
        return;
    struct pd_delivery_opts o = {.fd = fd,
                                 .name = name,
                                 .watch = d->w,
                                 .max_body = d->cfg->pw.max_body,
                                 .budget = pd_bodylimit_budget(&d->limit),
                                 .limit = &d->limit,
                                 .expand_dir = zc ? d->cfg->state.dir : NULL};
    struct pd_delivery dl;
    struct pd_chunk c;
    uint64_t chunks = 0, bodies = 0, records = 0;
    char *body, q[4 * PATH_MAX + 8], qw[8192];
    size_t len;
    int rc = pd_delivery_open(&dl, &o);
    bool whole = false;

    pd_log_escape(name, q, sizeof(q));
    while (rc == 0 && (rc = pd_delivery_next(&dl, &c, &body, &len)) == 1) {
        chunks++;
        bodies += len;
        records += c.records;
        whole = c.whole;
        free(body);
        rc = 0;
    }
    if (rc < 0) {
        fprintf(d->out, "%s: %s: would fail: %s\n", d->w ? d->w->name : "send", q,
                pd_log_escape(dl.why, qw, sizeof(qw)));
        d->fail++;
    } else {
        fprintf(d->out,
                "%s: %s: take: %" PRIu64 " bytes, %s%s%s, %" PRIu64 " chunk(s) of %" PRIu64
                " request bytes, %s%" PRIu64 " record(s)\n",
                d->w ? d->w->name : "send", q, size, what, zc ? ", expanded: " : "",
                pd_format_name(pd_split_format(dl.sp)), chunks, bodies, whole ? "sent whole, " : "",
                records);
        d->take++;
        d->chunks += chunks;
        d->bytes += size;
    }
    pd_delivery_close(&dl); /* a compressed file's expansion too, also after a failure */
}

/* REL beneath ROOTFD: its verdict, and for a file that would be taken, its cut. */
static void dry_one(struct dry *d, int rootfd, const char *rel)
{
    struct pd_judge_opts jo = {.rules = &d->rules,
                               .allow_hard_links = d->w->allow_hard_links,
                               .now_wall_ms = d->now_ms};
    char why[PATH_MAX + 256], q[4 * PATH_MAX + 8], qw[4 * sizeof(why)];
    struct stat st, now;
    enum pd_judgement j = pd_judge(rootfd, rel, &jo, &st, why, sizeof(why));
    int fd;

    pd_log_escape(rel, q, sizeof(q));
    if (j != PD_JUDGE_TAKE) {
        fprintf(d->out, "%s: %s: skip (%s): %s\n", d->w->name, q, pd_judge_word(j),
                pd_log_escape(why, qw, sizeof(qw)));
        d->skip++;
        return;
    }
    /* Read it as the claim would find it: no link followed, still the file judged. */
    fd = pd_fs_open_beneath(rootfd, rel, O_RDONLY | O_NONBLOCK | O_NOCTTY);
    if (fd < 0 || fstat(fd, &now) || now.st_ino != st.st_ino || !S_ISREG(now.st_mode)) {
        fprintf(d->out, "%s: %s: skip (gone): changed while looked at\n", d->w->name, q);
        d->skip++;
    } else if (pd_judge_writing(fd, &st)) {
        fprintf(d->out, "%s: %s: skip (%s): a process holds it open for writing (an upload "
                "under way?)\n", d->w->name, q, pd_judge_word(PD_JUDGE_WRITING));
        d->skip++;
    } else {
        cut_file(d, fd, rel, (uint64_t)st.st_size);
    }
    if (fd >= 0)
        close(fd);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every entry of the folder FD (taken: closed here), named REL[0..LEN) from the root. */
static void dry_dir(struct dry *d, int rootfd, int fd, char *rel, size_t len, int depth)
{
    DIR *dir = fdopendir(fd);
    struct dirent *de;
    char **names = NULL;
    size_t n = 0;

    if (!dir) {
        close(fd);
        return;
    }
    while ((de = readdir(dir))) {
        char **g;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        if (!(g = realloc(names, (n + 1) * sizeof(*g))) || !(g[n] = strdup(de->d_name))) {
            names = g ? g : names;
            break;
        }
        names = g;
        n++;
    }
    if (n)
        qsort(names, n, sizeof(*names), by_name);
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        int cfd;
        snprintf(rel + len, PATH_MAX - len, "%s%s", len ? "/" : "", names[i]);
        if (d->w->recursive && depth < MAX_DEPTH &&
            fstatat(dirfd(dir), names[i], &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISDIR(st.st_mode) &&
            (cfd = openat(dirfd(dir), names[i], O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)) >=
                0)
            dry_dir(d, rootfd, cfd, rel, strlen(rel), depth + 1);
        else
            dry_one(d, rootfd, rel);
        rel[len] = '\0';
        free(names[i]);
    }
    free(names);
    closedir(dir);
}

/* Files an earlier run left in the watch's work/: run --once resumes them first. */
static void dry_work(struct dry *d)
{
    char path[PATH_MAX], q[4 * NAME_MAX + 8];
    DIR *dir;
    struct dirent *de;

    if (!d->w->work_dir ||
        (size_t)snprintf(path, sizeof(path), "%s/work", d->w->work_dir) >= sizeof(path) ||
        !(dir = opendir(path)))
        return;
    while ((de = readdir(dir))) {
        struct stat st;
        if (de->d_name[0] == '.' || fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) ||
            !S_ISREG(st.st_mode))
            continue;
        fprintf(d->out, "%s: %s: resume: left in work/ by an earlier run; %jd bytes\n",
                d->w->name, pd_log_escape(de->d_name, q, sizeof(q)), (intmax_t)st.st_size);
        d->take++;
    }
    closedir(dir);
}

static int dry_init(struct dry *d, const struct pd_config *cfg, const struct pd_watch *w,
                    FILE *out)
{
    memset(d, 0, sizeof(*d));
    d->cfg = cfg;
    d->w = w;
    d->out = out;
    d->now_ms = pd_clock_system()->wall_ms(pd_clock_system()->arg);
    /* Read only: the limit learned from 413s is loaded, never written. */
    if (pd_bodylimit_init(&d->limit, cfg->pw.max_body, cfg->state.dir))
        return PD_ENOMEM;
    if (w && pd_ready_rules_init(&d->rules, w->include, w->exclude, w->done_marker, w->settle_ms,
                                 w->min_age_ms)) {
        pd_bodylimit_cleanup(&d->limit);
        return PD_ENOMEM;
    }
    return 0;
}

static void dry_cleanup(struct dry *d)
{
    pd_bodylimit_cleanup(&d->limit);
    pd_ready_rules_cleanup(&d->rules);
}

static void dry_summary(const struct dry *d, const char *what)
{
    fprintf(d->out,
            "dry run: %u file(s) would be %s (%" PRIu64 " chunk(s), %" PRIu64 " bytes), %u "
            "skipped, %u would fail; nothing was sent, moved or changed\n",
            d->take, what, d->chunks, d->bytes, d->skip, d->fail);
}

int pd_cli_dryrun_run(const struct pd_config *cfg, FILE *out)
{
    struct dry total = {0};

    for (size_t i = 0; i < cfg->nwatches; i++) {
        const struct pd_watch *w = &cfg->watches[i];
        char rel[PATH_MAX] = "";
        struct dry d;
        if (!w->flow_id) /* lookup watches sync rows, not flows: out of scope here */
            continue;
        if (dry_init(&d, cfg, w, out)) {
            fprintf(stderr, "patchdrop run: out of memory\n");
            return PD_EXIT_FAILED;
        }
        dry_work(&d);
        int fd = open(w->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        int rootfd = open(w->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || rootfd < 0) {
            fprintf(out, "%s: drop folder %s cannot be read: %s\n", w->name, w->path,
                    strerror(errno));
            d.fail++;
            if (fd >= 0)
                close(fd);
        } else {
            dry_dir(&d, rootfd, fd, rel, 0, 0);
        }
        if (rootfd >= 0)
            close(rootfd);
        total.take += d.take;
        total.skip += d.skip;
        total.fail += d.fail;
        total.chunks += d.chunks;
        total.bytes += d.bytes;
        dry_cleanup(&d);
    }
    total.out = out;
    dry_summary(&total, "taken");
    return total.fail ? PD_EXIT_FAILED : PD_EXIT_OK;
}

int pd_cli_dryrun_send(const struct pd_config *cfg, const struct pd_watch *w, char **paths,
                       int n, FILE *out)
{
    struct dry d;

    if (dry_init(&d, cfg, NULL, out)) {
        fprintf(stderr, "patchdrop send: out of memory\n");
        return PD_EXIT_FAILED;
    }
    d.w = w; /* its split settings; readiness is not asked: send takes what it is given */
    for (int i = 0; i < n; i++) {
        char q[4 * PATH_MAX + 8];
        struct stat st;
        int fd = open(paths[i], O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
            fprintf(out, "send: %s: would fail: %s\n", pd_log_escape(paths[i], q, sizeof(q)),
                    fd < 0 ? strerror(errno) : "not a regular file");
            d.fail++;
        } else {
            cut_file(&d, fd, paths[i], (uint64_t)st.st_size);
        }
        if (fd >= 0)
            close(fd);
    }
    dry_summary(&d, "sent");
    dry_cleanup(&d);
    return d.fail ? PD_EXIT_FAILED : PD_EXIT_OK;
}
