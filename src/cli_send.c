/*
 * `patchdrop send`: sends files now, one line per chunk on stdout with its flow-run id.
 * Exit status: 0 every chunk delivered, 1 anything rejected or given up, 2 usage or config
 * (including credentials Patchworks refused).
 *
 * Files go in parallel up to `concurrency`; the chunks of one file go in order, one at a time,
 * so a rejection stops the rest of that file. Chunks come from one small interface (struct
 * source below): today a file is one chunk and a file too big for one request is refused
 * clearly; the record-aware splitter plugs in behind the same four calls.
 */
#include "pd_cli.h"
#include "pd_cli_net.h"
#include "pd_api.h"
#include "pd_client.h"
#include "pd_config.h"
#include "pd_error.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- chunk source -------------------------------------------------------------------- */

struct chunk {
    unsigned index;       /* 1-based */
    bool last;            /* no chunk follows */
    uint64_t offset, len; /* the file bytes it carries */
    char *body;           /* {"payload":"..."} */
    size_t body_len;
};

struct source {
    int fd;
    uint64_t size;
    uint64_t max_body;
    bool done;
    char message[512];
};

static int source_open(const char *path, const struct pd_watch *w, uint64_t max_body,
                       struct source **out, char *msg, size_t msglen)
{
    (void)w;
    struct stat st;
    struct source *s;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *out = NULL;
    if (fd < 0) {
        int e = errno;
        snprintf(msg, msglen, "cannot open: %s", strerror(e));
        return -e;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        snprintf(msg, msglen, "not a regular file");
        close(fd);
        return -EINVAL;
    }
    if (st.st_size == 0) {
        snprintf(msg, msglen, "the file is empty: Patchworks refuses a blank payload");
        close(fd);
        return PD_EEMPTY;
    }
    /* The body is at least the file plus the envelope: refuse early without reading. */
    if ((uint64_t)st.st_size + 14 > max_body) {
        snprintf(msg, msglen,
                 "%lld bytes do not fit one request (max_body = %llu bytes after JSON escaping) "
                 "and this build cannot split files yet",
                 (long long)st.st_size, (unsigned long long)max_body);
        close(fd);
        return PD_ETOOBIG;
    }
    s = calloc(1, sizeof(*s));
    if (!s) {
        close(fd);
        return PD_ENOMEM;
    }
    s->fd = fd;
    s->size = (uint64_t)st.st_size;
    s->max_body = max_body;
    *out = s;
    return 0;
}

/* Length of the UTF-8 sequence at p (1..4), or 0 when it is not valid UTF-8. */
static size_t utf8_len(const unsigned char *p, size_t left)
{
    unsigned char c = p[0];
    size_t n;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4, cp = c & 0x07;
    else
        return 0;
    if (left < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

/* {"payload":"<text as a JSON string>"}; refuses text that is not UTF-8, naming the offset. */
static int encode_body(const unsigned char *text, size_t len, uint64_t max_body, char **body,
                       size_t *body_len, char *msg, size_t msglen)
{
    static const char head[] = "{\"payload\":\"", tail[] = "\"}";
    size_t cap = len + len / 8 + sizeof(head) + sizeof(tail) + 16, used = 0;
    char *b = malloc(cap);
    if (!b)
        return PD_ENOMEM;
    memcpy(b, head, sizeof(head) - 1);
    used = sizeof(head) - 1;
    for (size_t i = 0; i < len;) {
        if (cap - used < 16) {
            char *nb = realloc(b, cap * 2);
            if (!nb) {
                free(b);
                return PD_ENOMEM;
            }
            b = nb;
            cap *= 2;
        }
        unsigned char c = text[i];
        size_t n = utf8_len(text + i, len - i);
        if (n == 0) {
            snprintf(msg, msglen, "byte %zu is not valid UTF-8 (set encoding = for this file's "
                     "charset)", i);
            free(b);
            return PD_EENCODING;
        }
        if (n > 1) {
            memcpy(b + used, text + i, n);
            used += n;
            i += n;
            continue;
        }
        switch (c) {
        case '"':
            used += (size_t)sprintf(b + used, "\\\"");
            break;
        case '\\':
            used += (size_t)sprintf(b + used, "\\\\");
            break;
        case '\n':
            used += (size_t)sprintf(b + used, "\\n");
            break;
        case '\r':
            used += (size_t)sprintf(b + used, "\\r");
            break;
        case '\t':
            used += (size_t)sprintf(b + used, "\\t");
            break;
        default:
            if (c < 0x20)
                used += (size_t)sprintf(b + used, "\\u%04x", c);
            else
                b[used++] = (char)c;
        }
        i++;
        if (used + sizeof(tail) > max_body) {
            snprintf(msg, msglen,
                     "the encoded body passes max_body (%llu bytes) at byte %zu of the file, and "
                     "this build cannot split files yet",
                     (unsigned long long)max_body, i);
            free(b);
            return PD_ETOOBIG;
        }
    }
    memcpy(b + used, tail, sizeof(tail));
    used += sizeof(tail) - 1;
    *body = b;
    *body_len = used;
    return 0;
}

/* Returns 1 and a chunk, 0 at the end, or a negative code with s->message. */
static int source_next(struct source *s, struct chunk *c)
{
    int rc = 1;
    unsigned char *text = NULL;
    size_t got = 0;
    memset(c, 0, sizeof(*c));
    if (s->done)
        return 0;
    text = malloc(s->size ? s->size : 1);
    if (!text)
        return PD_ENOMEM;
    while (got < s->size) {
        ssize_t n = pread(s->fd, text + got, s->size - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -errno : -EIO;
            snprintf(s->message, sizeof(s->message), "read failed at byte %zu: %s", got,
                     n < 0 ? strerror(errno) : "the file shrank while being sent");
            goto done;
        }
        got += (size_t)n;
    }
    rc = encode_body(text, got, s->max_body, &c->body, &c->body_len, s->message,
                     sizeof(s->message));
    if (rc)
        goto done;
    c->index = 1;
    c->last = true;
    c->offset = 0;
    c->len = got;
    s->done = true;
    rc = 1;
done:
    free(text);
    return rc;
}

/* After a 413: cut the chunk smaller. Without the splitter there is nothing smaller. */
static int source_resplit(struct source *s, const struct chunk *c, size_t refused_len)
{
    (void)refused_len;
    snprintf(s->message, sizeof(s->message),
             "Patchworks refused %llu bytes as too large (413) and this build cannot split files",
             (unsigned long long)c->len);
    return PD_ETOOBIG;
}

static void source_close(struct source **sp)
{
    if (!*sp)
        return;
    close((*sp)->fd);
    free(*sp);
    *sp = NULL;
}

/* ---- sending ------------------------------------------------------------------------- */

enum file_state { F_PENDING, F_ACTIVE, F_DELIVERED, F_FAILED };

struct file_job {
    struct send *send;
    const char *path;
    enum file_state state;
    struct source *src;
    struct chunk chunk; /* the one being made or in flight */
    uv_work_t work;     /* makes the next chunk on the thread pool: reading and escaping */
    int work_rc;
    unsigned chunks_ok;
};

struct send {
    struct pd_cli_net net;
    const struct pd_config *cfg;
    const struct pd_watch *watch; /* NULL with --flow */
    char *url;
    struct file_job *files;
    size_t nfiles, next_file, active;
    uint64_t bytes_ok;
    int fatal; /* exit status forced by a configuration error */
    bool progress;
    uv_timer_t progress_timer;
};

static void schedule(struct send *s);

static void clear_progress(struct send *s)
{
    if (s->progress)
        fprintf(stderr, "\r\033[K");
}

static void file_fail(struct file_job *f, const char *what)
{
    struct send *s = f->send;
    clear_progress(s);
    printf("%s: FAILED: %s\n", f->path, what);
    fflush(stdout);
    f->state = F_FAILED;
    source_close(&f->src);
}

static void file_end(struct file_job *f)
{
    f->send->active--;
    schedule(f->send);
}

static void next_chunk(struct file_job *f);

/* "chunk 2" while more may follow, "chunk 3/3" for the last. */
static void chunk_words(const struct file_job *f, char *out, size_t len)
{
    if (f->chunk.last)
        snprintf(out, len, "%s: chunk %u/%u, %llu bytes", f->path, f->chunk.index,
                 f->chunk.index, (unsigned long long)f->chunk.len);
    else
        snprintf(out, len, "%s: chunk %u, %llu bytes", f->path, f->chunk.index,
                 (unsigned long long)f->chunk.len);
}

static void on_chunk_done(void *arg, const struct pd_client_result *r)
{
    struct file_job *f = arg;
    struct send *s = f->send;
    size_t refused_len = f->chunk.body_len;
    char where[PATH_MAX + 64];

    chunk_words(f, where, sizeof(where));
    free(f->chunk.body);
    f->chunk.body = NULL;
    if (r->err == PD_ECANCELED) {
        f->state = F_FAILED;
        source_close(&f->src);
        return;
    }
    clear_progress(s);
    if (r->err == 0) {
        if (r->api.run_id)
            printf("%s, HTTP %ld, flow run %s\n", where, r->api.status, r->api.run_id);
        else
            printf("%s, HTTP %ld, no flow run id in the answer: %s\n", where, r->api.status,
                   r->api.body ? r->api.body : "(empty)");
        fflush(stdout);
        f->chunks_ok++;
        s->bytes_ok += f->chunk.len;
        next_chunk(f);
        return;
    }
    if (r->err == PD_EAUTH || r->err == PD_ECONFIG) {
        /* Nothing else can succeed either: stop everything and say why once. */
        if (!s->fatal)
            fprintf(stderr, "patchdrop send: %s\n", r->message ? r->message : pd_strerror(r->err));
        s->fatal = PD_EXIT_USAGE;
        f->state = F_FAILED;
        source_close(&f->src);
        pd_client_close(&s->net.client, NULL, NULL);
        return;
    }
    if (r->err == PD_ETOOBIG && source_resplit(f->src, &f->chunk, refused_len) == 0) {
        printf("%s, HTTP 413, too large for the server: cutting it smaller\n", where);
        fflush(stdout);
        next_chunk(f);
        return;
    }
    if (r->err == PD_ETOOBIG)
        printf("%s, HTTP %ld, REJECTED: %s\n", where, r->api.status, f->src->message);
    else
        printf("%s, HTTP %ld, REJECTED: %s%s%s%s\n", where, r->api.status,
               r->message ? r->message : pd_strerror(r->err), r->api.errors ? " (" : "",
               r->api.errors ? r->api.errors : "", r->api.errors ? ")" : "");
    fflush(stdout);
    f->state = F_FAILED;
    source_close(&f->src);
    file_end(f);
}

static void work_make_chunk(uv_work_t *w)
{
    struct file_job *f = w->data;
    f->work_rc = source_next(f->src, &f->chunk);
}

/* Back on the loop with the next chunk (or the end, or an error): send it. */
static void on_chunk_made(uv_work_t *w, int status)
{
    struct file_job *f = w->data;
    struct send *s = f->send;
    int rc = status ? status : f->work_rc;

    if (rc == 0) {
        f->state = F_DELIVERED;
        source_close(&f->src);
        file_end(f);
        return;
    }
    if (rc < 0) {
        free(f->chunk.body);
        f->chunk.body = NULL;
        file_fail(f, f->src && f->src->message[0] ? f->src->message : pd_strerror(rc));
        file_end(f);
        return;
    }
    struct pd_client_request req = {
        .method = "POST", .url = s->url, .body = f->chunk.body, .body_len = f->chunk.body_len};
    if (!s->net.client || (rc = pd_client_submit(s->net.client, &req, on_chunk_done, f)) != 0) {
        free(f->chunk.body);
        f->chunk.body = NULL;
        if (s->fatal) {
            f->state = F_FAILED;
            source_close(&f->src);
            return;
        }
        file_fail(f, rc ? pd_strerror(rc) : "canceled");
        file_end(f);
    }
}

/* Makes the file's next chunk off the loop, so a big file never stalls the other requests. */
static void next_chunk(struct file_job *f)
{
    f->work.data = f;
    int rc = uv_queue_work(&f->send->net.loop, &f->work, work_make_chunk, on_chunk_made);
    if (rc) {
        file_fail(f, uv_strerror(rc));
        file_end(f);
    }
}

/* Starts files while slots are free: at most `concurrency` chunk bodies are held at once. */
static void schedule(struct send *s)
{
    while (!s->fatal && s->net.client && s->next_file < s->nfiles &&
           s->active < s->cfg->pw.concurrency) {
        struct file_job *f = &s->files[s->next_file++];
        char msg[512] = "";
        int rc = source_open(f->path, s->watch, s->cfg->pw.max_body, &f->src, msg, sizeof(msg));
        if (rc) {
            file_fail(f, msg);
            continue;
        }
        f->state = F_ACTIVE;
        s->active++;
        next_chunk(f);
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
    size_t done = 0;
    for (size_t i = 0; i < s->nfiles; i++)
        done += s->files[i].state == F_DELIVERED || s->files[i].state == F_FAILED;
    fprintf(stderr, "\r\033[Ksending: %zu/%zu files done, %zu in progress, %llu bytes delivered",
            done, s->nfiles, s->active, (unsigned long long)s->bytes_ok);
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: patchdrop send [-c FILE] (--watch NAME | --flow ID [--version ID]) FILE...\n"
            "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "  -w, --watch NAME   use the flow and settings of [watch:NAME]\n"
            "  -f, --flow ID      start this process flow\n"
            "  -v, --version ID   this version of it (default: the deployed version)\n"
            "  -q, --quiet        no notes about retries and logins on stderr\n"
            "Prints one line per chunk with its flow-run id. Exit status: 0 all delivered,\n"
            "1 something rejected, 2 usage or configuration error.\n");
}

int pd_cli_send(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"watch", required_argument, NULL, 'w'},
        {"flow", required_argument, NULL, 'f'},   {"version", required_argument, NULL, 'v'},
        {"quiet", no_argument, NULL, 'q'},        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *file = NULL, *watch = NULL, *flow = NULL, *version = NULL;
    struct pd_config *cfg = NULL;
    struct send s;
    int c, rc = PD_EXIT_USAGE, quiet = 0;

    memset(&s, 0, sizeof(s));
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:w:f:v:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            file = optarg;
            break;
        case 'w':
            watch = optarg;
            break;
        case 'f':
            flow = optarg;
            break;
        case 'v':
            version = optarg;
            break;
        case 'q':
            quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return PD_EXIT_OK;
        default:
            usage(stderr);
            return PD_EXIT_USAGE;
        }
    }
    if ((watch && flow) || (!watch && !flow) || (version && !flow) || optind >= argc) {
        fprintf(stderr, "patchdrop send: give --watch NAME or --flow ID (with --version only "
                        "alongside --flow), then one or more files\n");
        usage(stderr);
        return PD_EXIT_USAGE;
    }
    if (pd_cli_load_config(file, &cfg) != 0)
        return PD_EXIT_USAGE;
    if (watch) {
        const struct pd_watch *w = pd_config_watch(cfg, watch);
        if (!w) {
            fprintf(stderr, "patchdrop send: %s has no [watch:%s]\n", cfg->file, watch);
            goto out_cfg;
        }
        flow = w->flow_id;
        version = w->version_id;
        s.watch = w;
    }
    if (pd_api_start_url(&cfg->pw, flow, version, &s.url) != 0) {
        fprintf(stderr, "patchdrop send: flow '%s'%s%s is not a valid id (letters, digits, - _ .)\n",
                flow, version ? " version " : "", version ? version : "");
        goto out_cfg;
    }
    s.cfg = cfg;
    s.nfiles = (size_t)(argc - optind);
    s.files = calloc(s.nfiles, sizeof(*s.files));
    if (!s.files) {
        fprintf(stderr, "patchdrop send: out of memory\n");
        goto out_url;
    }
    for (size_t i = 0; i < s.nfiles; i++) {
        s.files[i].send = &s;
        s.files[i].path = argv[optind + (int)i];
    }
    if (pd_cli_net_open(&s.net, cfg, "send") != 0)
        goto out_files;
    s.net.quiet = quiet;
    s.progress = isatty(STDERR_FILENO) && !quiet;
    if (s.progress) {
        uv_timer_init(&s.net.loop, &s.progress_timer);
        s.progress_timer.data = &s;
        uv_timer_start(&s.progress_timer, on_progress_tick, 500, 500);
    }
    schedule(&s);
    pd_cli_net_run(&s.net);

    size_t delivered = 0, failed = 0;
    for (size_t i = 0; i < s.nfiles; i++) {
        delivered += s.files[i].state == F_DELIVERED;
        failed += s.files[i].state != F_DELIVERED;
    }
    if (s.progress && !uv_is_closing((uv_handle_t *)&s.progress_timer))
        uv_close((uv_handle_t *)&s.progress_timer, NULL);
    if (pd_cli_net_close(&s.net) != 0)
        failed++;
    if (!quiet)
        fprintf(stderr, "patchdrop send: %zu of %zu files delivered (%llu bytes)%s\n", delivered,
                s.nfiles, (unsigned long long)s.bytes_ok, failed ? "; see FAILED/REJECTED above" : "");
    rc = s.fatal ? s.fatal : failed ? PD_EXIT_FAILED : PD_EXIT_OK;
out_files:
    for (size_t i = 0; i < s.nfiles; i++) {
        source_close(&s.files[i].src);
        free(s.files[i].chunk.body);
    }
    free(s.files);
out_url:
    free(s.url);
out_cfg:
    pd_config_destroy(&cfg);
    return rc;
}
