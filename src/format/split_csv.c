/*
 * The splitter's record scanners for the line-based formats: csv (RFC 4180 rows, the first
 * header_lines rows being the opening repeated in every chunk) and lines (whole lines, line
 * endings kept). Both share one state.
 */
#include "split_internal.h"

#include <string.h>

enum { C_FIELD, C_UNQ, C_Q, C_QQ };

struct cscan {
    uint8_t st, started, pending;
    char delim;
    unsigned header_left;
    uint64_t line, quote_line, quote_dec;
};

/* RFC 4180 rows: a quote opens a quoted field only at the start of a field. */
static int cscan_feed(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos)
{
    struct cscan *c = sc->u;
    size_t i = *pos;
    int ev = SCAN_MORE;
    while (i < n) {
        if (c->st == C_Q) {
            /* memchr to the closing quote, then the newlines before it in a local count:
             * adding to c->line byte by byte went through memory (b may alias it). */
            const unsigned char *q = memchr(b + i, '"', n - i);
            size_t e = q ? (size_t)(q - b) : n;
            uint64_t nl = 0;
            for (; i < e; i++)
                nl += b[i] == '\n';
            c->line += nl;
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
        return scan_fail(
            sc, c->quote_dec,
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
    .area_at_start = scan_always,
    .feed = lscan_feed,
    .end = lscan_end,
};
