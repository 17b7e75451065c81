/*
 * The splitter's record scanners for the line-based formats (csv, lines) and the driver's one
 * interface over every format's scanner (struct pd_scan_ops, found through the format
 * registry), including the snapshot of the scanner state where the record area starts,
 * which is what lets a later chunk (or a resumed run) start scanning in the middle of the
 * file. Nothing here names a format: a new one needs no change in this file.
 */
#include "split_internal.h"

#include "pd_error.h"
#include "pd_format.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { C_FIELD, C_UNQ, C_Q, C_QQ };

static void free_segs(struct scan *sc)
{
    for (size_t k = 0; k < sc->nsegs; k++)
        free(sc->segs[k]);
    free(sc->segs);
    sc->segs = NULL;
    sc->nsegs = 0;
}

/* Splits a JSON pointer (RFC 6901) into unescaped segments. */
int scan_parse_pointer(struct scan *sc)
{
    const char *ptr = sc->pointer;
    if (!ptr || !*ptr)
        return 0;
    if (*ptr != '/') {
        snprintf(sc->msg, sizeof(sc->msg),
                 "json_array '%s' is not a JSON pointer: it must start with '/' (e.g. /orders)", ptr);
        return PD_ECONFIG;
    }
    size_t n = 0;
    for (const char *p = ptr; *p; p++)
        n += *p == '/';
    sc->segs = calloc(n, sizeof(*sc->segs));
    if (!sc->segs)
        return PD_ENOMEM;
    const char *p = ptr + 1;
    for (size_t k = 0; k < n; k++) {
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        char *s = malloc(len + 1), *d = s;
        if (!s)
            return PD_ENOMEM;
        sc->segs[sc->nsegs++] = s;
        for (size_t i = 0; i < len; i++) {
            if (p[i] == '~' && i + 1 < len && (p[i + 1] == '0' || p[i + 1] == '1')) {
                *d++ = p[i + 1] == '0' ? '~' : '/';
                i++;
            } else {
                *d++ = p[i];
            }
        }
        *d = '\0';
        if (d - s >= KEY_MAX) {
            snprintf(sc->msg, sizeof(sc->msg), "json_array: a key longer than %d bytes", KEY_MAX - 1);
            return PD_ECONFIG;
        }
        p += len + 1;
    }
    return 0;
}

void scan_reset(struct scan *sc)
{
    sc->started = 0;
    sc->have_snap = 0;
    sc->at_mark = 0;
    sc->msg[0] = '\0';
    sc->structural = 0;
    sc->shape_msg[0] = '\0';
    sc->ops->reset(sc);
}

static void free_states(struct scan *sc)
{
    free(sc->u);
    free(sc->snap);
    free(sc->mark);
    sc->u = sc->snap = sc->mark = NULL;
}

int scan_init(struct scan *sc, int fmt, const char *json_array, const char *xml_record,
              unsigned header_lines, char delim)
{
    const struct pd_format *f = pd_format_get(fmt);
    sc->fmt = fmt;
    sc->ops = f ? f->scan : NULL;
    sc->pointer = json_array && *json_array ? json_array : NULL;
    sc->xml_record = xml_record && *xml_record ? xml_record : NULL;
    sc->header_lines = header_lines;
    sc->delim = delim;
    sc->msg[0] = '\0';
    if (!sc->ops) {
        snprintf(sc->msg, sizeof(sc->msg), "split format %d has no record scanner", fmt);
        return PD_ECONFIG;
    }
    sc->tiled = sc->ops->tiled;
    sc->u = calloc(1, sc->ops->state_size);
    sc->snap = calloc(1, sc->ops->state_size);
    sc->mark = calloc(1, sc->ops->state_size);
    int rc = !sc->u || !sc->snap || !sc->mark ? PD_ENOMEM : 0;
    if (!rc && sc->ops->init)
        rc = sc->ops->init(sc);
    if (rc < 0) {
        char keep[sizeof(sc->msg)];
        memcpy(keep, sc->msg, sizeof(keep));
        free_segs(sc);
        free_states(sc);
        memcpy(sc->msg, keep, sizeof(keep));
        return rc;
    }
    scan_reset(sc);
    return 0;
}

void scan_cleanup(struct scan *sc)
{
    free_segs(sc);
    free_states(sc);
}

/* Records a scan error: its words and where it is. Returns SCAN_ERROR. */
int scan_fail(struct scan *sc, uint64_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sc->msg, sizeof(sc->msg), fmt, ap);
    va_end(ap);
    sc->ev_dec = at;
    return SCAN_ERROR;
}

/* RFC 4180 rows: a quote opens a quoted field only at the start of a field. */
static int cscan_feed(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos)
{
    struct cscan *c = sc->u;
    size_t i = *pos;
    int ev = SCAN_MORE;
    while (i < n) {
        if (c->st == C_Q) {
            while (i < n && b[i] != '"') {
                c->line += b[i] == '\n';
                i++;
            }
            if (i == n)
                break;
            i++;
            c->st = C_QQ;
            continue;
        }
        if (c->st == C_UNQ) {
            while (i < n && b[i] != (unsigned char)c->delim && b[i] != '\n')
                i++;
            if (i == n)
                break;
        }
        unsigned ch = b[i++];
        if (ch == '\n') {
            c->line++;
            c->pending = 0;
            c->st = C_FIELD;
            sc->ev_dec = base + i;
            if (c->header_left) {
                if (--c->header_left)
                    continue;
                ev = SCAN_AREA_START;
            } else {
                ev = SCAN_REC_END;
            }
            break;
        }
        c->pending = 1;
        if (ch == (unsigned char)c->delim) {
            c->st = C_FIELD;
        } else if (ch == '"' && (c->st == C_FIELD || c->st == C_QQ)) {
            if (c->st == C_FIELD)
                c->quote_line = c->line, c->quote_dec = base + i - 1;
            c->st = C_Q;
        } else {
            c->st = C_UNQ;
        }
    }
    *pos = i;
    return ev;
}

static int cscan_end(struct scan *sc, uint64_t eof_dec)
{
    struct cscan *c = sc->u;
    if (c->st == C_Q)
        return scan_fail(sc, c->quote_dec,
                     "unterminated quoted field starting on line %llu: a '\"' opens a field that "
                     "never closes (a quote inside a quoted field must be doubled: \"\")",
                     (unsigned long long)c->quote_line);
    if (c->header_left) {
        c->header_left = 0;
        c->pending = 0;
        sc->ev_dec = eof_dec;
        return SCAN_AREA_START;
    }
    if (c->pending) {
        c->pending = 0;
        sc->ev_dec = eof_dec;
        return SCAN_REC_END;
    }
    return SCAN_DONE;
}

static int lscan_feed(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos)
{
    struct cscan *c = sc->u;
    size_t i = *pos;
    if (i >= n)
        return SCAN_MORE;
    const unsigned char *p = memchr(b + i, '\n', n - i);
    if (!p) {
        c->pending = 1;
        *pos = n;
        return SCAN_MORE;
    }
    c->pending = 0;
    *pos = (size_t)(p - b) + 1;
    sc->ev_dec = base + *pos;
    return SCAN_REC_END;
}

static int lscan_end(struct scan *sc, uint64_t eof_dec)
{
    struct cscan *c = sc->u;
    if (!c->pending)
        return SCAN_DONE;
    c->pending = 0;
    sc->ev_dec = eof_dec;
    return SCAN_REC_END;
}

static void copy_state(const struct scan *sc, void *dst, const void *src)
{
    if (sc->ops->copy)
        sc->ops->copy(dst, src);
    else
        memcpy(dst, src, sc->ops->state_size);
}

static void take_snapshot(struct scan *sc)
{
    copy_state(sc, sc->snap, sc->u);
    sc->have_snap = 1;
}

int scan_feed(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos)
{
    int ev;
    if (!sc->started) {
        sc->started = 1;
        if (sc->ops->area_at_start(sc)) {
            sc->at_mark = 0;
            sc->ev_dec = base + *pos;
            take_snapshot(sc);
            return SCAN_AREA_START;
        }
    }
    sc->at_mark = 0;
    ev = sc->ops->feed(sc, b, n, base, pos);
    if (ev == SCAN_AREA_START && !sc->at_mark)
        take_snapshot(sc);
    return ev;
}

int scan_end(struct scan *sc, uint64_t eof_dec)
{
    int ev;
    if (!sc->started) {
        size_t pos = 0;
        ev = scan_feed(sc, (const unsigned char *)"", 0, eof_dec, &pos);
        if (ev != SCAN_MORE)
            return ev;
    }
    sc->at_mark = 0;
    ev = sc->ops->end(sc, eof_dec);
    if (ev == SCAN_AREA_START)
        take_snapshot(sc);
    return ev;
}

void scan_resume(struct scan *sc, int after_record)
{
    sc->started = 1;
    sc->at_mark = 0;
    copy_state(sc, sc->u, sc->snap);
    if (sc->ops->resume)
        sc->ops->resume(sc, after_record);
}

/* csv and lines share their state; csv counts header rows down, lines has none. */
static void cscan_reset(struct scan *sc)
{
    struct cscan *c = sc->u;
    memset(c, 0, sizeof(*c));
    c->delim = sc->delim;
    c->header_left = sc->header_lines;
    c->line = 1;
}

static void lscan_reset(struct scan *sc)
{
    cscan_reset(sc);
    ((struct cscan *)sc->u)->header_left = 0;
}

static int cscan_area_at_start(const struct scan *sc)
{
    return sc->header_lines == 0;
}

static int always(const struct scan *sc)
{
    (void)sc;
    return 1;
}

const struct pd_scan_ops pd_scan_csv = {
    .state_size = sizeof(struct cscan),
    .tiled = 1,
    .reset = cscan_reset,
    .area_at_start = cscan_area_at_start,
    .feed = cscan_feed,
    .end = cscan_end,
};

const struct pd_scan_ops pd_scan_lines = {
    .state_size = sizeof(struct cscan),
    .tiled = 1,
    .reset = lscan_reset,
    .area_at_start = always,
    .feed = lscan_feed,
    .end = lscan_end,
};
