/*
 * The EDI tests' shared parts (tests/edi_reader.h): a growing text and an independent reader of
 * X12 and EDIFACT interchanges.
 */
#include "edi_reader.h"

#include "pd_format.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

void sb_add(struct sb *s, const void *d, size_t n)
{
    char *grown = realloc(s->p, s->len + n + 1);
    assert_non_null(grown);
    s->p = grown;
    memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = '\0';
}

void sb_fmt(struct sb *s, const char *fmt, ...)
{
    va_list ap, again;
    va_start(ap, fmt);
    va_copy(again, ap);
    size_t n = (size_t)vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    char *grown = realloc(s->p, s->len + n + 1);
    assert_non_null(grown);
    s->p = grown;
    vsnprintf(s->p + s->len, n + 1, fmt, again); /* in place: no size limit */
    va_end(again);
    s->len += n;
}

/* ---- the independent reader --------------------------------------------------------------- */

struct rd {
    const char *p;
    size_t n, i;
    char el, term, rel;
};

/* The next segment's text (without its terminator) in SEG; 0 at the end. */
static int rd_next(struct rd *r, char *seg, size_t cap)
{
    while (r->i < r->n && strchr("\r\n \t", r->p[r->i]) && r->p[r->i] != r->term)
        r->i++;
    if (r->i >= r->n)
        return 0;
    size_t k = 0;
    while (r->i < r->n && r->p[r->i] != r->term) {
        if (r->rel && r->p[r->i] == r->rel && r->i + 1 < r->n)
            seg[k++ % cap] = r->p[r->i++];
        seg[k++ % cap] = r->p[r->i++];
    }
    r->i++;
    seg[k < cap ? k : cap - 1] = '\0';
    return 1;
}

/* Element IDX of SEG (released delimiters are not separators). */
static void rd_elem(const struct rd *r, const char *seg, int idx, char *out, size_t cap)
{
    int k = 0;
    size_t o = 0;
    for (const char *p = seg; *p; p++) {
        if (r->rel && *p == r->rel && p[1]) {
            if (k == idx && o + 2 < cap)
                out[o++] = *p, out[o++] = p[1];
            p++;
        } else if (*p == r->el) {
            k++;
        } else if (k == idx && o + 1 < cap) {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

static int tag(const struct rd *r, const char *seg, const char *t)
{
    size_t n = strlen(t);
    return !strncmp(seg, t, n) && (seg[n] == r->el || !seg[n]);
}

#define RD_FAIL(...) (snprintf(s->err, sizeof(s->err), __VA_ARGS__), -1)

static int want(struct seen *s, const struct rd *r, const char *seg, int idx, const char *exp)
{
    char v[64];
    rd_elem(r, seg, idx, v, sizeof(v));
    return strcmp(v, exp) ? RD_FAIL("%.40s: element %d is '%s', want '%s'", seg, idx, v, exp) : 0;
}

static int want_n(struct seen *s, const struct rd *r, const char *seg, int idx, unsigned n)
{
    char e[24];
    snprintf(e, sizeof(e), "%u", n);
    return want(s, r, seg, idx, e);
}

/* X12 (ISA fixed at 106 bytes: element separator at 3, ISA16 at 104, terminator at 105); TA1
 * acknowledgments between the ISA and the first GS are listed as "ISA13/TA1/TA101". */
int read_x12(const char *p, size_t n, struct seen *s)
{
    struct rd r = {p, n, 0, 0, 0, 0};
    char seg[4096], ictl[64] = "", gctl[64] = "", sctl[64] = "";
    unsigned groups = 0, sets = 0, segs = 0;
    int where = 0; /* 0 out, 1 interchange, 2 group, 3 set */
    for (;;) {
        while (r.i < n && strchr("\r\n \t", p[r.i]))
            r.i++;
        if (where == 0 && r.i < n) {
            if (n - r.i < 106 || strncmp(p + r.i, "ISA", 3))
                return RD_FAIL("no ISA at %zu", r.i);
            r.el = p[r.i + 3], r.term = p[r.i + 105];
        }
        if (!rd_next(&r, seg, sizeof(seg)))
            break;
        if (where == 0 && tag(&r, seg, "ISA")) {
            rd_elem(&r, seg, 13, ictl, sizeof(ictl));
            where = 1, groups = 0, s->interchanges++;
        } else if (where == 1 && !groups && tag(&r, seg, "TA1")) {
            char ack[64];
            rd_elem(&r, seg, 1, ack, sizeof(ack));
            sb_fmt(&s->ids, "%s/TA1/%s\n", ictl, ack);
        } else if (where == 1 && tag(&r, seg, "GS")) {
            rd_elem(&r, seg, 6, gctl, sizeof(gctl));
            where = 2, sets = 0, groups++;
        } else if (where == 2 && tag(&r, seg, "ST")) {
            rd_elem(&r, seg, 2, sctl, sizeof(sctl));
            where = 3, segs = 1;
            sb_fmt(&s->ids, "%s/%s/%s\n", ictl, gctl, sctl);
        } else if (where == 3 && tag(&r, seg, "SE")) {
            if (want_n(s, &r, seg, 1, ++segs) || want(s, &r, seg, 2, sctl))
                return -1;
            where = 2, sets++;
        } else if (where == 3) {
            segs++;
        } else if (where == 2 && tag(&r, seg, "GE")) {
            if (want_n(s, &r, seg, 1, sets) || want(s, &r, seg, 2, gctl))
                return -1;
            where = 1;
        } else if (where == 1 && tag(&r, seg, "IEA")) {
            if (want_n(s, &r, seg, 1, groups) || want(s, &r, seg, 2, ictl))
                return -1;
            where = 0;
        } else {
            return RD_FAIL("segment '%.20s' where %d", seg, where);
        }
    }
    return where ? RD_FAIL("ends inside (%d)", where) : 0;
}

/* EDIFACT: UNA or the defaults, groups optional. */
int read_edifact(const char *p, size_t n, struct seen *s)
{
    struct rd r = {p, n, 0, 0, 0, 0};
    char seg[4096], ictl[64] = "", gctl[64] = "-", sctl[64] = "";
    unsigned groups = 0, msgs = 0, gmsgs = 0, segs = 0;
    int where = 0, has_groups = 0;
    for (;;) {
        while (r.i < n && strchr("\r\n \t", p[r.i]))
            r.i++;
        if (where == 0 && r.i < n) {
            r.el = '+', r.term = '\'', r.rel = '?';
            if (n - r.i >= 9 && !strncmp(p + r.i, "UNA", 3)) {
                r.el = p[r.i + 4], r.rel = p[r.i + 6] == ' ' ? 0 : p[r.i + 6];
                r.term = p[r.i + 8];
                r.i += 9;
            }
        }
        if (!rd_next(&r, seg, sizeof(seg)))
            break;
        if (where == 0 && tag(&r, seg, "UNB")) {
            rd_elem(&r, seg, 5, ictl, sizeof(ictl));
            where = 1, groups = msgs = 0, has_groups = 0, s->interchanges++;
            strcpy(gctl, "-");
        } else if (where == 1 && tag(&r, seg, "UNG")) {
            rd_elem(&r, seg, 5, gctl, sizeof(gctl));
            where = 2, gmsgs = 0, groups++, has_groups = 1;
        } else if ((where == 2 || (where == 1 && !has_groups)) && tag(&r, seg, "UNH")) {
            rd_elem(&r, seg, 1, sctl, sizeof(sctl));
            where = where == 2 ? 4 : 3, segs = 1;
            sb_fmt(&s->ids, "%s/%s/%s\n", ictl, gctl, sctl);
        } else if (where >= 3 && tag(&r, seg, "UNT")) {
            if (want_n(s, &r, seg, 1, ++segs) || want(s, &r, seg, 2, sctl))
                return -1;
            where = where == 4 ? 2 : 1, msgs++, gmsgs++;
        } else if (where >= 3) {
            segs++;
        } else if (where == 2 && tag(&r, seg, "UNE")) {
            if (want_n(s, &r, seg, 1, gmsgs) || want(s, &r, seg, 2, gctl))
                return -1;
            where = 1;
        } else if (where == 1 && tag(&r, seg, "UNZ")) {
            if (want_n(s, &r, seg, 1, has_groups ? groups : msgs) || want(s, &r, seg, 2, ictl))
                return -1;
            where = 0;
        } else {
            return RD_FAIL("segment '%.20s' where %d", seg, where);
        }
    }
    return where ? RD_FAIL("ends inside (%d)", where) : 0;
}

int read_any(int fmt, const char *p, size_t n, struct seen *s)
{
    return fmt == PD_SPLIT_X12 ? read_x12(p, n, s) : read_edifact(p, n, s);
}
