/*
 * `patchdrop send`: sends files now, one line per chunk on stdout with its flow-run id.
 * Exit status: 0 every chunk delivered, 1 anything rejected or given up, 2 usage or config
 * (including credentials Patchworks refused).
 *
 * Files go in parallel up to `concurrency`; the chunks of one file go in order, one at a time,
 * so a rejection stops the rest of that file. Each file goes through the delivery engine the
 * daemon uses (pd_deliver.h): the same splitter settings, the same verdict on every answer and
 * the same 413 rule, with the server's limit learned in the same state dir. Chunks are cut on
 * the libuv thread pool so reading and escaping never stall the requests in flight. While a
 * chunk is in flight the file's next chunk is already being cut, so reading and escaping overlap
 * the network instead of adding to it (a big file goes at the speed of the slower of the two).
 * A 413 drops the chunk cut ahead and cuts the refused chunk again, smaller. At most two chunk
 * bodies per file, so 2 x `concurrency`, are held in memory.
 */
#include "pd_cli.h"
#include "pd_cli_net.h"
#include "pd_api.h"
#include "pd_bodylimit.h"
#include "pd_client.h"
#include "pd_config.h"
#include "pd_deliver.h"
#include "pd_error.h"
#include "pd_log.h"
#include "pd_progress.h"

#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- chunks, from the delivery engine (pd_deliver.h) ---------------------------------- */

struct chunk {
    struct pd_chunk pc;   /* as the splitter made it (body excluded), for a re-cut */
    unsigned index;       /* 1-based */
    bool last;            /* no chunk follows */
    const char *entry;    /* a compressed file: the inner file it is of (held by the delivery) */
    uint64_t offset, len; /* the file bytes it carries */
    char *body;           /* {"payload":"..."}, taken from the splitter */
    size_t body_len;
};

/* Cuts the file's next chunk (on the thread pool): 1 and a chunk, 0 at the end, or a negative
 * code with dl->why. */
static int cut_next(struct pd_delivery *dl, struct chunk *c)
{
    memset(c, 0, sizeof(*c));
    int rc = pd_delivery_next(dl, &c->pc, &c->body, &c->body_len);
    if (rc <= 0)
        return rc;
    c->index = c->pc.index + 1;
    c->last = c->pc.last;
    c->entry = dl->cx ? dl->cx->x.entries[dl->entry].name : NULL;
    c->offset = c->pc.start;
    c->len = c->pc.end - c->pc.start;
    return 1;
}

/*
 * Every line names its file, and partners choose file names; messages and ids come from
 * Patchworks. Each of them goes through pd_log_escape() into a buffer of this size (a whole
 * escaped path fits) before it is printed, so none can drive the terminal or forge a line.
 */
#define SAFE_MAX (4 * PATH_MAX + 1)
#define WHERE_MAX (SAFE_MAX + 64)

enum file_state { F_PENDING, F_ACTIVE, F_DELIVERED, F_FAILED };

/*
 * A file being sent. Two things may be under way at once: a request (`sending`, for `chunk`)
 * and the cutting of the next chunk on the thread pool (`making`, into `ahead`). The delivery
 * is closed, and the file counted as done, only once neither is (settle()), because the
 * thread pool may still be reading through it.
 */
struct file_job {
    struct send *send;
    const char *path;
    enum file_state state;
    struct pd_delivery dl; /* while `open` */
    bool open;
    struct chunk chunk; /* the one in flight */
    struct chunk ahead; /* the next one, cut while `chunk` is in flight */
    int ahead_rc;       /* 1: `ahead` holds a chunk, 0: no chunk follows, < 0: error */
    bool have_ahead;    /* ahead/ahead_rc hold a result not yet acted on */
    bool making;        /* a thread-pool cut into `ahead` is under way */
    bool sending;       /* `chunk` is in flight */
    bool resplit;       /* a 413 came while `making`: cut `refused` again when it is done */
    bool ended;         /* counted as done */
    struct chunk refused;
    size_t refused_len;
    uv_work_t work;
    unsigned chunks_ok;
};

struct send {
    struct pd_cli_net net;
    const struct pd_config *cfg;
    const struct pd_watch *watch; /* NULL with --flow */
    char *url;
    struct pd_bodylimit limit; /* what the server takes, learned as the daemon learns it */
    struct file_job *files;
    size_t nfiles, next_file, active;
    uint64_t bytes_ok, bytes_total, chunks_ok;
    int fatal; /* exit status forced by a configuration error */
    bool progress;
    struct pd_progress bar; /* on a terminal only */
    uv_timer_t progress_timer;
};

static void schedule(struct send *s);

static void clear_progress(struct send *s)
{
    if (s->progress)
        pd_progress_clear(&s->bar);
}

static uint64_t mono_ms(void)
{
    return uv_hrtime() / 1000000;
}

static struct pd_progress_state progress_state(const struct send *s)
{
    struct pd_progress_state ps = {.files_total = s->nfiles,
                                   .bytes_done = s->bytes_ok,
                                   .bytes_total = s->bytes_total,
                                   .chunks = s->chunks_ok};
    for (size_t i = 0; i < s->nfiles; i++) {
        ps.files_done += s->files[i].state == F_DELIVERED || s->files[i].state == F_FAILED;
        ps.files_failed += s->files[i].state == F_FAILED;
    }
    return ps;
}

static void drop_chunk(struct chunk *c)
{
    free(c->body);
    c->body = NULL;
}

/* Once a finished file has nothing under way: close its delivery and start the next file. */
static void settle(struct file_job *f)
{
    if (f->ended || f->making || f->sending || (f->state != F_DELIVERED && f->state != F_FAILED))
        return;
    f->ended = true;
    drop_chunk(&f->ahead);
    f->have_ahead = false;
    if (f->open)
        pd_delivery_close(&f->dl);
    f->open = false;
    f->send->active--;
    schedule(f->send);
}

static void file_fail(struct file_job *f, const char *what)
{
    struct send *s = f->send;
    char name[SAFE_MAX], why[2048];
    clear_progress(s);
    printf("%s: FAILED: %s\n", pd_log_escape(f->path, name, sizeof(name)),
           pd_log_escape(what, why, sizeof(why)));
    fflush(stdout);
    f->state = F_FAILED;
}

static void make_ahead(struct file_job *f);

/* "chunk 2" while more may follow, "chunk 3/3" for the last; the name escaped, and a compressed
 * file's inner file in brackets. */
static void chunk_words(const struct file_job *f, char *out, size_t len)
{
    char name[SAFE_MAX], entry[SAFE_MAX / 2];
    size_t at = strlen(pd_log_escape(f->path, name, sizeof(name)));
    if (f->chunk.entry && at < sizeof(name))
        snprintf(name + at, sizeof(name) - at, " [%s]",
                 pd_log_escape(f->chunk.entry, entry, sizeof(entry)));
    if (f->chunk.last)
        snprintf(out, len, "%s: chunk %u/%u, %llu bytes", name, f->chunk.index, f->chunk.index,
                 (unsigned long long)f->chunk.len);
    else
        snprintf(out, len, "%s: chunk %u, %llu bytes", name, f->chunk.index,
                 (unsigned long long)f->chunk.len);
}

static void on_chunk_done(void *arg, const struct pd_client_result *r);

/* Sends the chunk cut ahead (or acts on the end or error found instead); then cuts the next. */
static void send_ahead(struct file_job *f)
{
    struct send *s = f->send;
    int rc = f->ahead_rc;

    f->have_ahead = false;
    if (rc == 0) {
        f->state = F_DELIVERED;
        settle(f);
        return;
    }
    if (rc < 0) {
        file_fail(f, f->dl.why[0] ? f->dl.why : pd_strerror(rc));
        settle(f);
        return;
    }
    f->chunk = f->ahead;
    f->ahead.body = NULL;
    struct pd_client_request req = {
        .method = "POST", .url = s->url, .body = f->chunk.body, .body_len = f->chunk.body_len};
    if (!s->net.client || (rc = pd_client_submit(s->net.client, &req, on_chunk_done, f)) != 0) {
        drop_chunk(&f->chunk);
        if (!s->fatal)
            file_fail(f, rc ? pd_strerror(rc) : "canceled");
        f->state = F_FAILED;
        settle(f);
        return;
    }
    f->sending = true;
    if (!f->chunk.last)
        make_ahead(f);
}

/* After a 413 (nothing being cut now): cut the refused chunk smaller and send it again. */
static void resplit_now(struct file_job *f)
{
    drop_chunk(&f->ahead);
    f->have_ahead = false;
    char where[WHERE_MAX], why[2048];

    f->resplit = false;
    f->chunk = f->refused; /* its body is gone; for the words only */
    chunk_words(f, where, sizeof(where));
    if (pd_delivery_refused(&f->dl, &f->refused.pc, f->refused_len, f->chunks_ok) != 0) {
        printf("%s, HTTP 413, REJECTED: %s\n", where, pd_log_escape(f->dl.why, why, sizeof(why)));
        fflush(stdout);
        f->state = F_FAILED;
        settle(f);
        return;
    }
    printf("%s, HTTP 413, too large for the server: cutting it smaller\n", where);
    fflush(stdout);
    make_ahead(f);
}

/* The chunk arrived: say so with its flow-run id; send the next one if it is cut already. */
static void chunk_acked(struct file_job *f, const struct pd_client_result *r, const char *where)
{
    struct send *s = f->send;
    char e1[1024];

    if (r->api.run_id)
        printf("%s, HTTP %ld, flow run %s\n", where, r->api.status,
               pd_log_escape(r->api.run_id, e1, sizeof(e1)));
    else
        printf("%s, HTTP %ld, no flow run id in the answer: %s\n", where, r->api.status,
               pd_log_escape(r->api.body ? r->api.body : "(empty)", e1, sizeof(e1)));
    fflush(stdout);
    pd_delivery_accepted(&f->dl, f->chunk.body_len);
    f->chunks_ok++;
    s->chunks_ok++;
    s->bytes_ok += f->chunk.len;
    bool last = f->chunk.last;
    drop_chunk(&f->chunk);
    if (last) {
        f->state = F_DELIVERED;
        settle(f);
    } else if (f->have_ahead) {
        send_ahead(f);
    }
    /* else: the next chunk is still being cut; on_ahead_made sends it. */
}

/* The chunk was refused (or failed for good): say why, with the server's field errors. */
static void chunk_refused(struct file_job *f, const struct pd_client_result *r, const char *where)
{
    char e1[1024], e2[1024];
    /* The answer's words already start with "HTTP 422:" when there was an answer: said once. */
    const char *words = r->message ? r->message : pd_strerror(r->err);
    char status[32] = "";
    if (r->api.status && strncmp(words, "HTTP ", 5))
        snprintf(status, sizeof(status), ", HTTP %ld", r->api.status);
    printf("%s%s, REJECTED: %s%s%s%s\n", where, status, pd_log_escape(words, e1, sizeof(e1)),
           r->api.errors ? " (" : "", pd_log_escape(r->api.errors, e2, sizeof(e2)),
           r->api.errors ? ")" : "");
    fflush(stdout);
    drop_chunk(&f->chunk);
    f->state = F_FAILED;
    settle(f);
}

/* The client's final answer to the file's chunk, judged once by pd_delivery_verdict. */
static void on_chunk_done(void *arg, const struct pd_client_result *r)
{
    struct file_job *f = arg;
    struct send *s = f->send;
    char where[WHERE_MAX], e1[1024];

    f->sending = false;
    chunk_words(f, where, sizeof(where));
    if (r->err == PD_ECANCELED) {
        drop_chunk(&f->chunk);
        f->state = F_FAILED;
        settle(f);
        return;
    }
    clear_progress(s);
    switch (pd_delivery_verdict(r->err)) {
    case PD_DL_ACKED:
        chunk_acked(f, r, where);
        return;
    case PD_DL_STOP:
        /* Nothing else can succeed either: stop everything and say why once. */
        if (!s->fatal)
            fprintf(stderr, "patchdrop send: %s\n",
                    pd_log_escape(r->message ? r->message : pd_strerror(r->err), e1, sizeof(e1)));
        s->fatal = PD_EXIT_USAGE;
        drop_chunk(&f->chunk);
        f->state = F_FAILED;
        pd_client_close(&s->net.client, NULL, NULL);
        settle(f);
        return;
    case PD_DL_RECUT:
        f->refused = f->chunk;
        f->refused.body = NULL;
        f->refused_len = f->chunk.body_len;
        drop_chunk(&f->chunk);
        f->resplit = true;
        if (!f->making)
            resplit_now(f);
        return;
    default: /* refused, or failed for good; out of memory: no second chance in one go */
        chunk_refused(f, r, where);
        return;
    }
}

static void work_make_chunk(uv_work_t *w)
{
    struct file_job *f = w->data;
    f->ahead_rc = cut_next(&f->dl, &f->ahead);
}

/* Back on the loop with the next chunk (or the end, or an error). */
static void on_ahead_made(uv_work_t *w, int status)
{
    struct file_job *f = w->data;

    f->making = false;
    if (status)
        f->ahead_rc = status;
    if (f->state != F_ACTIVE) {
        drop_chunk(&f->ahead);
        settle(f);
        return;
    }
    if (f->resplit) {
        resplit_now(f);
        return;
    }
    f->have_ahead = true;
    if (!f->sending)
        send_ahead(f);
}

/* Cuts the file's next chunk off the loop, so a big file never stalls the other requests. */
static void make_ahead(struct file_job *f)
{
    f->work.data = f;
    int rc = uv_queue_work(&f->send->net.loop, &f->work, work_make_chunk, on_ahead_made);
    if (rc) {
        file_fail(f, uv_strerror(rc));
        settle(f);
        return;
    }
    f->making = true;
}

/* Where a compressed file is expanded: the state dir (a file there with no name) when it is
 * there, else the temp folder. send does not make the state dir: made by another user than
 * the service's, it would stop the daemon at its next start. */
static const char *expand_dir(const struct pd_config *cfg)
{
    const char *tmp = getenv("TMPDIR");
    struct stat st;

    if (cfg->state.dir && stat(cfg->state.dir, &st) == 0 && S_ISDIR(st.st_mode))
        return cfg->state.dir;
    return tmp && *tmp ? tmp : "/tmp";
}

/* Starts files while slots are free: at most 2 x `concurrency` chunk bodies are held at once. */
static void schedule(struct send *s)
{
    while (!s->fatal && s->net.client && s->next_file < s->nfiles &&
           s->active < s->cfg->pw.concurrency) {
        struct file_job *f = &s->files[s->next_file++];
        struct pd_delivery_opts o = {.fd = -1,
                                     .path = f->path,
                                     .name = f->path,
                                     .watch = s->watch,
                                     .max_body = s->cfg->pw.max_body,
                                     .budget = pd_bodylimit_budget(&s->limit),
                                     .limit = &s->limit,
                                     .expand_dir = expand_dir(s->cfg)};
        if (pd_delivery_open(&f->dl, &o) != 0) {
            file_fail(f, f->dl.why);
            f->ended = true;
            continue;
        }
        f->open = true;
        f->state = F_ACTIVE;
        s->active++;
        make_ahead(f);
    }
    if (s->progress && s->active == 0 && (s->next_file >= s->nfiles || s->fatal) &&
        !uv_is_closing((uv_handle_t *)&s->progress_timer)) {
        clear_progress(s);
        uv_close((uv_handle_t *)&s->progress_timer, NULL);
    }
}

static void on_progress_tick(uv_timer_t *t)
{
    struct send *s = t->data;
    struct pd_progress_state ps = progress_state(s);
    pd_progress_draw(&s->bar, &ps, mono_ms());
}

enum { O_FLOW_VERSION = 256, O_OLD_VERSION, O_DRY_RUN };

static const struct option send_opts[] = {
    {"watch", required_argument, NULL, 'w'},
    {"flow", required_argument, NULL, 'f'},
    {"flow-version", required_argument, NULL, O_FLOW_VERSION},
    /* The flow's version was --version/-v: refused with the new name, never taken for
     * --verbose or the program's version (the ID would become a file to send). */
    {"version", optional_argument, NULL, O_OLD_VERSION},
    {"dry-run", no_argument, NULL, O_DRY_RUN},
    {NULL, 0, NULL, 0}};

static const struct pd_cli_spec spec = {
    .name = "send",
    .synopsis = "[-c FILE] [-q] [--dry-run] (--watch NAME | --flow ID [--flow-version ID]) "
                "FILE...",
    .help = "  -c, --config FILE      config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "  -w, --watch NAME       use the flow and settings of [watch:NAME]\n"
            "  -f, --flow ID          start this process flow\n"
            "      --flow-version ID  this version of it (default: the deployed version)\n"
            "  -q, --quiet            no notes about retries and logins on stderr\n"
            "      --dry-run          how each file would be cut; no request\n"
            "Prints one line per chunk with its flow-run id. Exit status: 0 all delivered,\n"
            "1 something rejected, 2 usage or configuration error.\n",
    .common = PD_CLI_CONFIG | PD_CLI_QUIET,
    .opts = send_opts,
    .shortopts = "w:f:v",
    .max_args = -1,
};

/* The flow to start: --flow (and --flow-version) or a watch's; sets s->watch and s->url.
 * 0, or PD_EXIT_USAGE after saying why. */
static int pick_target(struct send *s, const struct pd_config *cfg, const char *watch,
                       const char *flow, const char *version)
{
    if (watch) {
        const struct pd_watch *w = pd_config_watch(cfg, watch);
        if (!w)
            return pd_cli_usage_error(&spec, "%s has no [watch:%s]", cfg->file, watch);
        if (!w->flow_id) {
            fprintf(stderr,
                    "patchdrop send: [watch:%s] feeds lookup %s, not a flow; use "
                    "patchdrop lookup sync %s FILE\n",
                    watch, w->lookup_id, w->lookup_id);
            return PD_EXIT_USAGE;
        }
        flow = w->flow_id;
        version = w->version_id;
        s->watch = w;
    }
    if (pd_api_start_url(&cfg->pw, flow, version, &s->url) != 0)
        return pd_cli_usage_error(&spec, "flow '%s'%s%s is not a valid id (letters, digits, - _ .)",
                                  flow, version ? " version " : "", version ? version : "");
    return 0;
}

/* The files named on the command line, with their total size for the progress bar. */
static int add_files(struct send *s, char **paths, size_t n)
{
    s->files = calloc(n, sizeof(*s->files));
    if (!s->files)
        return PD_ENOMEM;
    s->nfiles = n;
    for (size_t i = 0; i < n; i++) {
        struct stat st;
        s->files[i].send = s;
        s->files[i].path = paths[i];
        if (stat(paths[i], &st) == 0 && S_ISREG(st.st_mode))
            s->bytes_total += (uint64_t)st.st_size;
    }
    return 0;
}

/* Sends every file on the loop; then the summary. Returns the exit status. */
static int send_all(struct send *s, bool quiet)
{
    pd_progress_init(&s->bar, stderr, false, mono_ms());
    s->progress = pd_progress_on(&s->bar) && !quiet;
    if (s->progress) {
        uv_timer_init(&s->net.loop, &s->progress_timer);
        s->progress_timer.data = s;
        uv_timer_start(&s->progress_timer, on_progress_tick, 250, 250);
        s->net.notes = pd_progress_wrap(&s->bar, stderr);
    }
    schedule(s);
    pd_cli_net_run(&s->net);

    size_t delivered = 0, failed = 0;
    for (size_t i = 0; i < s->nfiles; i++) {
        delivered += s->files[i].state == F_DELIVERED;
        failed += s->files[i].state != F_DELIVERED;
    }
    if (s->progress && !uv_is_closing((uv_handle_t *)&s->progress_timer))
        uv_close((uv_handle_t *)&s->progress_timer, NULL);
    if (pd_cli_net_close(&s->net) != 0)
        failed++;
    if (s->progress) {
        struct pd_progress_state ps = progress_state(s);
        pd_progress_summary(&s->bar, &ps, mono_ms());
    }
    s->net.notes = NULL;
    pd_progress_cleanup(&s->bar);
    if (!quiet)
        fprintf(stderr, "patchdrop send: %zu of %zu files delivered (%llu bytes)%s\n", delivered,
                s->nfiles, (unsigned long long)s->bytes_ok,
                failed ? "; see FAILED/REJECTED above" : "");
    return s->fatal ? s->fatal : failed ? PD_EXIT_FAILED : PD_EXIT_OK;
}

int pd_cli_send(int argc, char **argv)
{
    const char *watch = NULL, *flow = NULL, *version = NULL;
    struct pd_config *cfg = NULL;
    struct pd_cli_parser p;
    struct send s;
    int c, rc = PD_EXIT_USAGE;
    bool dry = false;

    memset(&s, 0, sizeof(s));
    pd_cli_begin(&p, &spec, argc, argv);
    while ((c = pd_cli_next(&p)) > 0) {
        if (c == 'w')
            watch = p.arg;
        else if (c == 'f')
            flow = p.arg;
        else if (c == O_FLOW_VERSION)
            version = p.arg;
        else if (c == O_DRY_RUN)
            dry = true;
        else /* -v, --version: the old names of --flow-version */
            return pd_cli_usage_error(&spec,
                                      "%s is not the flow's version any more: use "
                                      "--flow-version ID (%s)",
                                      c == 'v' ? "-v" : "--version",
                                      c == 'v' ? "-v means --verbose wherever it exists"
                                               : "patchdrop --version is the program's");
    }
    if (c < 0)
        return p.status;
    if ((watch && flow) || (!watch && !flow) || (version && !flow) || p.nargs == 0)
        return pd_cli_usage_error(&spec, "give --watch NAME or --flow ID (with --flow-version "
                                         "only alongside --flow), then one or more files");
    if (pd_cli_load_config(p.config, &cfg) != 0)
        return PD_EXIT_USAGE;
    if (pick_target(&s, cfg, watch, flow, version) != 0)
        goto out;
    if (dry) { /* src/cli/cli_dryrun.c */
        rc = pd_cli_dryrun_send(cfg, s.watch, p.args, p.nargs, stdout);
        goto out;
    }
    s.cfg = cfg;
    if (pd_bodylimit_init(&s.limit, cfg->pw.max_body, cfg->state.dir) != 0 ||
        add_files(&s, p.args, (size_t)p.nargs) != 0) {
        fprintf(stderr, "patchdrop send: out of memory\n");
        goto out;
    }
    if (pd_cli_net_open_shared(&s.net, cfg, "send") == 0) {
        s.net.quiet = p.quiet;
        rc = send_all(&s, p.quiet);
    }
out:
    for (size_t i = 0; s.files && i < s.nfiles; i++) {
        if (s.files[i].open)
            pd_delivery_close(&s.files[i].dl);
        free(s.files[i].chunk.body);
        free(s.files[i].ahead.body);
    }
    free(s.files);
    if (s.cfg)
        pd_bodylimit_cleanup(&s.limit);
    free(s.url);
    pd_config_destroy(&cfg);
    return rc;
}
