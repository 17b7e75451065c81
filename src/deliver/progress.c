/* The terminal progress bar and summary table (see pd_progress.h). */
#include "pd_progress.h"

#include "pd_log.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BAR_WIDTH 20

void pd_progress_init(struct pd_progress *p, FILE *out, bool force, uint64_t now_ms)
{
    const char *term = getenv("TERM");

    memset(p, 0, sizeof(*p));
    p->start_ms = now_ms;
    if (force || (isatty(fileno(out)) && !(term && !strcmp(term, "dumb"))))
        p->tty = out;
}

bool pd_progress_on(const struct pd_progress *p)
{
    return p->tty != NULL;
}

void pd_progress_bytes(uint64_t n, char *buf, size_t len)
{
    static const char *const units[] = {"B", "kB", "MB", "GB", "TB"};
    double v = (double)n;
    size_t u = 0;

    while (v >= 1000 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1000;
        u++;
    }
    if (u == 0)
        snprintf(buf, len, "%" PRIu64 " B", n);
    else
        snprintf(buf, len, "%.1f %s", v, units[u]);
}

static void duration(uint64_t s, char *buf, size_t len)
{
    if (s >= 3600)
        snprintf(buf, len, "%" PRIu64 ":%02u:%02u", s / 3600, (unsigned)(s / 60 % 60),
                 (unsigned)(s % 60));
    else
        snprintf(buf, len, "%u:%02u", (unsigned)(s / 60), (unsigned)(s % 60));
}

int64_t pd_progress_eta(const struct pd_progress *p, const struct pd_progress_state *s,
                        uint64_t now_ms)
{
    uint64_t elapsed = now_ms > p->start_ms ? now_ms - p->start_ms : 0;
    double left;

    if (!s->bytes_total)
        return -1;
    if (s->bytes_done >= s->bytes_total)
        return 0;
    if (elapsed < PD_PROGRESS_ETA_WARMUP_MS || !s->bytes_done ||
        (double)s->bytes_done * 1000 < (double)s->bytes_total * PD_PROGRESS_ETA_MIN_PERMILLE)
        return -1;
    /* remaining / rate, with the rate done / elapsed */
    left = (double)(s->bytes_total - s->bytes_done) * ((double)elapsed / 1000.0) /
           (double)s->bytes_done;
    if (left >= PD_PROGRESS_ETA_MAX_S)
        return PD_PROGRESS_ETA_MAX_S;
    return (int64_t)(left + 0.5);
}

void pd_progress_line(const struct pd_progress *p, const struct pd_progress_state *s,
                      uint64_t now_ms, char *buf, size_t len)
{
    char bar[BAR_WIDTH + 1], done[32], total[32], rate[32], eta[32];
    uint64_t elapsed = now_ms > p->start_ms ? now_ms - p->start_ms : 0;
    double frac = 0, bps = elapsed ? (double)s->bytes_done * 1000.0 / (double)elapsed : 0;
    int64_t left = pd_progress_eta(p, s, now_ms);

    if (s->bytes_total)
        frac = (double)s->bytes_done / (double)s->bytes_total;
    else if (s->files_total)
        frac = (double)s->files_done / (double)s->files_total;
    if (frac > 1)
        frac = 1;
    for (int i = 0; i < BAR_WIDTH; i++)
        bar[i] = i < (int)(frac * BAR_WIDTH + 0.5) ? '#' : '-';
    bar[BAR_WIDTH] = '\0';
    pd_progress_bytes(s->bytes_done, done, sizeof(done));
    pd_progress_bytes(s->bytes_total, total, sizeof(total));
    pd_progress_bytes((uint64_t)bps, rate, sizeof(rate));
    if (left < 0) {
        snprintf(eta, sizeof(eta), "--:--");
    } else if (left >= PD_PROGRESS_ETA_MAX_S) {
        eta[0] = '>';
        duration((uint64_t)left, eta + 1, sizeof(eta) - 1);
    } else {
        duration((uint64_t)left, eta, sizeof(eta));
    }
    snprintf(buf, len, "[%s] %" PRIu64 "/%" PRIu64 " %s  %s/%s  %s/s  ETA %s%s", bar,
             s->files_done, s->files_total, s->total_words ? s->total_words : "files", done,
             total, rate, eta, s->files_failed ? "  (some failed)" : "");
}

void pd_progress_draw(struct pd_progress *p, const struct pd_progress_state *s, uint64_t now_ms)
{
    char line[256];

    if (!p->tty)
        return;
    pd_progress_line(p, s, now_ms, line, sizeof(line));
    fprintf(p->tty, "\r\033[K%s", line);
    fflush(p->tty);
    p->drawn = true;
}

void pd_progress_clear(struct pd_progress *p)
{
    if (!p->tty || !p->drawn)
        return;
    fputs("\r\033[K", p->tty);
    fflush(p->tty);
    p->drawn = false;
}

struct wrap {
    struct pd_progress *p;
    FILE *under;
};

static ssize_t wrap_write(void *cookie, const char *buf, size_t size)
{
    struct wrap *w = cookie;
    size_t n;

    pd_progress_clear(w->p);
    n = fwrite(buf, 1, size, w->under);
    fflush(w->under);
    return n == size ? (ssize_t)size : -1;
}

static int wrap_close(void *cookie)
{
    free(cookie);
    return 0;
}

FILE *pd_progress_wrap(struct pd_progress *p, FILE *under)
{
    cookie_io_functions_t io = {.write = wrap_write, .close = wrap_close};
    struct wrap *w;
    FILE *f;
    size_t slot;

    if (!p->tty)
        return under;
    for (slot = 0; slot < 2 && p->wrapped[slot]; slot++)
        ;
    if (slot == 2 || !(w = calloc(1, sizeof(*w))))
        return under;
    w->p = p;
    w->under = under;
    if (!(f = fopencookie(w, "w", io))) {
        free(w);
        return under;
    }
    setvbuf(f, NULL, _IOLBF, 0);
    p->wrapped[slot] = f;
    return f;
}

/*
 * The escaping stream. Its buffer is its own and large, so what one fflush() hands over is the
 * one line written since the last: the writer's newline is its last byte, and any other newline
 * or control character came from a value in it. A write of a whole buffer is part of a line
 * longer than the buffer, where no byte is the end of the line.
 */
#define RECORD_MAX 65536

struct escaping {
    FILE *under;
    char stream_buf[RECORD_MAX];
    char in[RECORD_MAX + 1];
    char out[4 * RECORD_MAX + 1];
};

static ssize_t escaping_write(void *cookie, const char *buf, size_t size)
{
    struct escaping *e = cookie;
    bool ends = size > 0 && size < RECORD_MAX && buf[size - 1] == '\n';
    size_t left = ends ? size - 1 : size;

    while (left) {
        size_t n = left < RECORD_MAX ? left : RECORD_MAX;
        /* A NUL (never printed by %s, but a writer could) must not end the text early. */
        for (size_t i = 0; i < n; i++)
            e->in[i] = buf[i] ? buf[i] : '\x01';
        e->in[n] = '\0';
        fputs(pd_log_escape(e->in, e->out, sizeof(e->out)), e->under);
        buf += n;
        left -= n;
    }
    if (ends)
        fputc('\n', e->under);
    fflush(e->under);
    return (ssize_t)size;
}

static int escaping_close(void *cookie)
{
    free(cookie);
    return 0;
}

FILE *pd_progress_escaping(FILE *under)
{
    cookie_io_functions_t io = {.write = escaping_write, .close = escaping_close};
    struct escaping *e = calloc(1, sizeof(*e));
    FILE *f;

    if (!e)
        return NULL;
    e->under = under;
    if (!(f = fopencookie(e, "w", io))) {
        free(e);
        return NULL;
    }
    setvbuf(f, e->stream_buf, _IOFBF, sizeof(e->stream_buf));
    return f;
}

void pd_progress_summary(struct pd_progress *p, const struct pd_progress_state *s,
                         uint64_t now_ms)
{
    char b1[32], b2[32], rate[32], took[32];
    uint64_t elapsed = now_ms > p->start_ms ? now_ms - p->start_ms : 0;
    uint64_t ok = s->files_done - (s->files_failed < s->files_done ? s->files_failed : s->files_done);

    if (!p->tty)
        return;
    pd_progress_clear(p);
    pd_progress_bytes(s->bytes_done, b1, sizeof(b1));
    pd_progress_bytes(elapsed ? s->bytes_done * 1000 / elapsed : 0, rate, sizeof(rate));
    duration(elapsed / 1000, took, sizeof(took));
    fprintf(p->tty, "\n  %-12s %8s\n", "result", "files");
    fprintf(p->tty, "  %-12s %8" PRIu64 "\n", "delivered", ok);
    fprintf(p->tty, "  %-12s %8" PRIu64 "\n", "failed", s->files_failed);
    if (s->files_total > s->files_done)
        fprintf(p->tty, "  %-12s %8" PRIu64 "\n", "not done", s->files_total - s->files_done);
    pd_progress_bytes(s->bytes_total, b2, sizeof(b2));
    fprintf(p->tty, "  %-12s %8" PRIu64 "\n", "total", s->files_total);
    if (s->runs_succeeded || s->runs_failed || s->runs_unknown) {
        fprintf(p->tty, "  %-12s %8s\n", "flow runs", "chunks");
        fprintf(p->tty, "  %-12s %8" PRIu64 "\n", "succeeded", s->runs_succeeded);
        fprintf(p->tty, "  %-12s %8" PRIu64 "\n", "not success", s->runs_failed);
        fprintf(p->tty, "  %-12s %8" PRIu64 "\n", "unknown", s->runs_unknown);
    }
    fprintf(p->tty, "  %" PRIu64 " chunk(s), %s of %s in %s, %s/s\n", s->chunks, b1, b2, took,
            rate);
    fflush(p->tty);
}

void pd_progress_cleanup(struct pd_progress *p)
{
    pd_progress_clear(p);
    for (size_t i = 0; i < 2; i++) {
        if (p->wrapped[i])
            fclose(p->wrapped[i]);
        p->wrapped[i] = NULL;
    }
}
