/*
 * The splitter's record scanners for EDI: ANSI X12 and UN/EDIFACT interchanges. Records are
 * the transaction sets (ST...SE) and the messages (UNH...UNT). The envelope around them (ISA,
 * GS, GE, IEA; UNA, UNB, UNG, UNE, UNZ) is never copied from the file between records: the
 * driver asks env_open and env_close for it per chunk, which render the original ISA/GS or
 * UNA/UNB/UNG segments and trailers whose counts (GE01, IEA01; UNE01, UNZ01) are the chunk's
 * and whose control numbers are the original ones, so every chunk is a valid interchange that
 * can be traced to the file. Delimiters come from each interchange's header (ISA, or UNA, or
 * EDIFACT's defaults), never assumed. Every count and control number pair is checked on the
 * way, so a damaged interchange is refused, whole or split.
 *
 * The state keeps the envelope segments (at most EDI_KEEP bytes each) and no list of records:
 * the driver snapshots it at every record end it may cut at.
 */
#include "split_edi.h"

#include "pd_encode.h"
#include "pd_error.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static const char *const x12_env[] = {"ISA", "IEA", "GS", "GE", "ST", NULL};
static const char *const edf_env[] = {"UNA", "UNB", "UNZ", "UNG", "UNE", "UNH", NULL};

static void edifact_defaults(struct ediscan *e)
{
    e->comp = ':', e->el = '+', e->rel = '?', e->term = '\'';
    e->has_rel = 1;
    e->una_len = 0;
}

static void reset_kind(struct scan *sc, int kind)
{
    struct ediscan *e = sc->u;
    memset(e, 0, sizeof(*e));
    e->kind = (uint8_t)kind;
    sc->drop_esc = 0;
    if (kind == K_EDIFACT)
        edifact_defaults(e);
}

static void x12_reset(struct scan *sc)
{
    reset_kind(sc, K_X12);
}

static void edf_reset(struct scan *sc)
{
    reset_kind(sc, K_EDIFACT);
}

/* A chunk starts: nothing of it is open yet. */
static void edi_resume(struct scan *sc, int after_record)
{
    struct ediscan *e = sc->u;
    (void)after_record;
    e->ch_ic = e->ch_grp = 0;
    e->carry_len = 0;
    memset(&e->cl, 0, sizeof(e->cl));
}

/* Copies only the parts of the state in use (the driver copies it at every record end). */
static void edi_copy(void *dst, const void *src)
{
    const struct ediscan *s = src;
    struct ediscan *d = dst;
    /* Between segments (every record end) nothing of the last one is needed. */
    size_t kept = !s->in_seg ? 0 : s->seg_len < EDI_KEEP ? s->seg_len : EDI_KEEP;
    memcpy(d, s, offsetof(struct ediscan, seg));
    memcpy(d->seg, s->seg, kept);
    memcpy(d->una, s->una, sizeof(d->una));
    memcpy(d->ic, s->ic, s->ic_len);
    memcpy(d->grp, s->grp, s->grp_len);
}

/* ---- elements ------------------------------------------------------------------------- */

/* Element IDX (0: the tag) of the kept segment: *LEN bytes at the result, or NULL. */
static const char *elem(const struct ediscan *e, size_t idx, size_t *len)
{
    size_t kept = e->seg_len < EDI_KEEP ? e->seg_len : EDI_KEEP, k = 0, at = 0;
    int released = 0;
    for (size_t i = 0; i <= kept; i++) {
        int end = i == kept;
        if (!end && released) {
            released = 0;
            continue;
        }
        if (!end && e->has_rel && (unsigned char)e->seg[i] == e->rel) {
            released = 1;
            continue;
        }
        if (end || (unsigned char)e->seg[i] == e->el) {
            if (k == idx) {
                *len = i - at;
                return e->seg + at;
            }
            k++;
            at = i + 1;
        }
    }
    return NULL;
}

static int tag_is(const struct ediscan *e, const char *tag)
{
    return e->tag_len == strlen(tag) && !memcmp(e->seg, tag, e->tag_len);
}

static const char *tag_name(const struct ediscan *e, char *buf, size_t sz)
{
    size_t n = e->tag_len < 3 ? e->tag_len : 3;
    size_t k = 0;
    for (size_t i = 0; i < n && k + 1 < sz; i++)
        buf[k++] = e->seg[i] >= 0x21 && e->seg[i] < 0x7f ? e->seg[i] : '?';
    buf[k] = '\0';
    return k ? buf : "(none)";
}

/* Copies element IDX into OUT (EDI_CTL bytes), spaces trimmed; 0, or -1 when too long. */
static int elem_text(const struct ediscan *e, size_t idx, char *out)
{
    size_t n = 0;
    const char *p = elem(e, idx, &n);
    if (!p)
        p = "", n = 0; /* no such element: empty */
    while (n && p[n - 1] == ' ')
        n--;
    while (n && *p == ' ')
        p++, n--;
    if (n >= EDI_CTL)
        return -1;
    memcpy(out, p, n);
    out[n] = '\0';
    return 0;
}

/* 1 when A and B name the same control number (as numbers when both are digits). */
static int same_ctl(const char *a, const char *b)
{
    if (strspn(a, "0123456789") == strlen(a) && strspn(b, "0123456789") == strlen(b) && *a &&
        *b) {
        while (*a == '0' && a[1])
            a++;
        while (*b == '0' && b[1])
            b++;
    }
    return !strcmp(a, b);
}

/* Element IDX as a count; 0 or -1 when it is not a number. */
static int elem_count(const struct ediscan *e, size_t idx, uint64_t *v)
{
    char t[EDI_CTL];
    if (elem_text(e, idx, t) < 0 || !t[0] || strspn(t, "0123456789") != strlen(t) ||
        strlen(t) > 18)
        return -1;
    *v = 0;
    for (const char *p = t; *p; p++)
        *v = *v * 10 + (uint64_t)(*p - '0');
    return 0;
}

/* ---- checks ---------------------------------------------------------------------------- */

static const char *const FIX =
    "the interchange is damaged or was cut: ask the sender for a corrected file";

static int fail_seg(struct scan *sc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A fault of the segment being read: the words, its number and what to do (the driver adds
 * its byte offset and line). */
static int fail_seg(struct scan *sc, const char *fmt, ...)
{
    struct ediscan *e = sc->u;
    char words[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(words, sizeof(words), fmt, ap);
    va_end(ap);
    return scan_fail(sc, e->seg_dec, "%s (segment %llu of the file); %s", words,
                     (unsigned long long)e->seg_no, FIX);
}

/* Element IDX of the segment (NAME, e.g. "SE01") must count WANT (WHAT: of what, and CTL the
 * set or message, or NULL). Words are made only for a fault: this runs for every set. */
static int check_count(struct scan *sc, size_t idx, const char *name, uint64_t want,
                       const char *what, const char *ctl)
{
    struct ediscan *e = sc->u;
    uint64_t v;
    char got[EDI_CTL], msg[200];
    if (elem_count(e, idx, &v) < 0) {
        if (elem_text(e, idx, got) < 0)
            snprintf(got, sizeof(got), "(too long)");
        return fail_seg(sc, "%s is \"%s\", not a number", name, got);
    }
    if (v == want)
        return SCAN_MORE;
    snprintf(msg, sizeof(msg), "%s says %llu but %llu %s%s%s", name, (unsigned long long)v,
             (unsigned long long)want, what, ctl ? " " : "", ctl ? ctl : "");
    return fail_seg(sc, "%s", msg);
}

/* Element IDX (NAME) must repeat control number CTL of OPENER (e.g. "ST02 0001"). */
static int check_ctl(struct scan *sc, size_t idx, const char *name, const char *ctl,
                     const char *opener, uint64_t at)
{
    struct ediscan *e = sc->u;
    char got[EDI_CTL], msg[240];
    if (elem_text(e, idx, got) < 0)
        snprintf(got, sizeof(got), "(too long)");
    if (same_ctl(got, ctl))
        return SCAN_MORE;
    /* "offset": the first "byte N" of a message is the one the error is at. */
    snprintf(msg, sizeof(msg), "%s is \"%s\" but %s is \"%s\" (its segment is at offset %llu)",
             name, got, opener, ctl, (unsigned long long)at);
    return fail_seg(sc, "%s", msg);
}

/* Keeps element IDX (NAME) as a control number in OUT. */
static int take_ctl(struct scan *sc, size_t idx, const char *name, char *out)
{
    struct ediscan *e = sc->u;
    if (elem_text(e, idx, out) < 0)
        return fail_seg(sc, "%s is longer than %d characters", name, EDI_CTL - 1);
    if (!out[0])
        return fail_seg(sc, "%s (the control number) is empty", name);
    return SCAN_MORE;
}

/* The kept segment as envelope text (without its terminator) in DST. */
static int keep_env(struct scan *sc, char *dst, size_t *len)
{
    struct ediscan *e = sc->u;
    char t[8];
    if (e->seg_len > EDI_KEEP)
        return fail_seg(sc, "the %s segment is longer than %d bytes", tag_name(e, t, sizeof(t)),
                        EDI_KEEP);
    memcpy(dst, e->seg, e->seg_len);
    *len = e->seg_len;
    return SCAN_MORE;
}

/* An envelope segment where a transaction set or message is open, or a segment outside one. */
static int misplaced(struct scan *sc, const char *const *env, const char *expect)
{
    struct ediscan *e = sc->u;
    char t[8], msg[200];
    if (e->where == W_SET) {
        for (const char *const *p = env; *p; p++)
            if (tag_is(e, *p)) {
                tag_name(e, t, sizeof(t));
                snprintf(msg, sizeof(msg), "%s segment before the %s that ends %s %s (opened at "
                         "offset %llu)", t, expect, e->kind == K_X12 ? "transaction set" : "message",
                         e->sctl, (unsigned long long)e->set_dec);
                return fail_seg(sc, "%s", msg);
            }
        e->set_segs++;
        return SCAN_MORE;
    }
    return fail_seg(sc, "a %s segment where %s was expected", tag_name(e, t, sizeof(t)), expect);
}

/* ---- X12 ------------------------------------------------------------------------------- */

/* The ISA segment is complete (its terminator is the last kept byte). */
static int x12_isa(struct scan *sc)
{
    struct ediscan *e = sc->u;
    e->term = (unsigned char)e->seg[e->seg_len - 1];
    e->comp = (unsigned char)e->seg[e->seg_len - 2];
    e->seg_len--;
    char d[4] = {(char)e->el, (char)e->comp, (char)e->term, 0};
    if (e->term == e->el || e->comp == e->el || e->term == e->comp || edi_alnum(e->el) ||
        edi_alnum(e->term))
        return fail_seg(sc, "the ISA segment's delimiters \"%s\" (element, component, segment "
                            "terminator) are not distinct non-alphanumeric characters", d);
    int rc = keep_env(sc, e->ic, &e->ic_len);
    if (rc == SCAN_MORE)
        rc = take_ctl(sc, 13, "ISA13", e->ictl);
    e->ic_dec = e->seg_dec;
    e->ic_count = e->ic_msgs = 0;
    e->ic_serial++;
    e->where = W_IC;
    e->eol_take = 1;
    e->eol[0] = '\0';
    return rc;
}

/* A GS opens a group. In a record of TA1s the GS is the record's own text, not rendered:
 * the chunk's counts follow it here. */
static int x12_gs(struct scan *sc)
{
    struct ediscan *e = sc->u;
    int rc;
    if ((rc = keep_env(sc, e->grp, &e->grp_len)) != SCAN_MORE ||
        (rc = take_ctl(sc, 6, "GS06", e->gctl)) != SCAN_MORE)
        return rc;
    e->grp_dec = e->seg_dec, e->grp_count = 0;
    e->ic_count++, e->grp_serial++;
    e->where = W_GRP;
    if (e->ta1_rec) {
        e->cl.ngroups++, e->cl.grp_open = 1, e->cl.sets = 0;
        memcpy(e->cl.gctl, e->gctl, EDI_CTL);
        e->ch_grp = e->grp_serial;
    }
    return SCAN_MORE;
}

/* The IEA closes the interchange. A record of TA1s no set followed ends with it: the record
 * is then the whole interchange but its ISA, and the chunk has nothing left to close. */
static int x12_iea(struct scan *sc)
{
    struct ediscan *e = sc->u;
    int rc;
    if ((rc = check_count(sc, 1, "IEA01", e->ic_count, "functional groups (GS) are in it",
                          NULL)) != SCAN_MORE ||
        (rc = check_ctl(sc, 2, "IEA02", e->ictl, "ISA13", e->ic_dec)) != SCAN_MORE)
        return rc;
    e->where = W_OUT;
    if (e->ta1_rec) {
        e->ta1_rec = 0, e->bare = 1, e->after_rec = 1;
        e->ch_ic = 0, e->cl.grp_open = 0;
    }
    return SCAN_MORE;
}

/* A TA1 (interchange acknowledgment) anywhere but between the ISA and the first GS. */
static int x12_ta1_misplaced(struct scan *sc)
{
    struct ediscan *e = sc->u;
    char at[120];
    if (e->where == W_SET)
        snprintf(at, sizeof(at), "inside transaction set %s (its ST is at offset %llu)", e->sctl,
                 (unsigned long long)e->set_dec);
    else
        snprintf(at, sizeof(at), "%s functional group %s (its GS is at offset %llu)",
                 e->where == W_GRP ? "inside" : "after", e->gctl, (unsigned long long)e->grp_dec);
    return scan_fail(sc, e->seg_dec, "a TA1 segment %s (segment %llu of the file): a TA1 "
                     "(interchange acknowledgment) belongs right after the ISA, before the "
                     "interchange's first GS; ask the sender for a corrected file", at,
                     (unsigned long long)e->seg_no);
}

static int x12_segment(struct scan *sc)
{
    struct ediscan *e = sc->u;
    int rc = SCAN_MORE;
    if (e->where == W_IC && tag_is(e, "GS")) {
        rc = x12_gs(sc);
    } else if (e->where == W_IC && !e->ic_count && tag_is(e, "TA1")) {
        /* before the first group: the text of the record tag_done opened */
    } else if (e->where == W_IC && tag_is(e, "IEA")) {
        rc = x12_iea(sc);
    } else if (e->where == W_GRP && tag_is(e, "GE")) {
        if ((rc = check_count(sc, 1, "GE01", e->grp_count, "transaction sets (ST) are in it", NULL)) ==
                SCAN_MORE &&
            (rc = check_ctl(sc, 2, "GE02", e->gctl, "GS06", e->grp_dec)) == SCAN_MORE)
            e->where = W_IC, e->cl.grp_open &= !e->ta1_rec;
    } else if (e->where == W_SET && e->set_segs == 0) {
        rc = take_ctl(sc, 2, "ST02", e->sctl);
        e->set_segs = 1;
    } else if (e->where == W_SET && tag_is(e, "SE")) {
        e->set_segs++;
        if ((rc = check_count(sc, 1, "SE01", e->set_segs,
                              "segments (ST to SE) are in transaction set", e->sctl)) == SCAN_MORE &&
            (rc = check_ctl(sc, 2, "SE02", e->sctl, "ST02", e->set_dec)) == SCAN_MORE) {
            e->grp_count++;
            e->where = W_GRP;
            e->after_rec = 1, e->ta1_rec = 0;
        }
    } else if (tag_is(e, "TA1")) {
        rc = x12_ta1_misplaced(sc);
    } else {
        static const char *const expect[] = {"ISA", "", "GS or IEA", "ST or GE", "SE"};
        rc = misplaced(sc, x12_env, expect[e->where]);
    }
    return rc;
}

/* ---- EDIFACT --------------------------------------------------------------------------- */

/* The UNA service string advice is complete: its six characters are the delimiters. */
static int edf_una(struct scan *sc)
{
    struct ediscan *e = sc->u;
    const unsigned char *u = (const unsigned char *)e->seg;
    e->comp = u[3], e->el = u[4], e->rel = u[6], e->term = u[8];
    e->has_rel = u[6] != ' ';
    if (e->comp == e->el || e->term == e->el || e->term == e->comp ||
        (e->has_rel && (e->rel == e->term || e->rel == e->el || e->rel == e->comp)))
        return fail_seg(sc, "the UNA service string advice \"%.9s\" names the same character "
                            "for two delimiters", e->seg);
    memcpy(e->una, e->seg, 9);
    e->una_len = 9;
    e->where = W_UNA;
    return SCAN_MORE;
}

static int edf_unb(struct scan *sc)
{
    struct ediscan *e = sc->u;
    int rc = keep_env(sc, e->ic, &e->ic_len);
    if (rc == SCAN_MORE)
        rc = take_ctl(sc, 5, "UNB05", e->ictl);
    e->ic_dec = e->seg_dec;
    e->ic_count = e->ic_msgs = 0;
    e->groups = 0;
    e->ic_serial++, e->grp_serial++;
    e->where = W_IC;
    e->eol_take = 1;
    e->eol[0] = '\0';
    return rc;
}

static int edf_close(struct scan *sc)
{
    struct ediscan *e = sc->u;
    int rc;
    if (e->where == W_GRP) {
        if ((rc = check_count(sc, 1, "UNE01", e->grp_count, "messages (UNH) are in the group", NULL)) ==
                SCAN_MORE &&
            (rc = check_ctl(sc, 2, "UNE02", e->gctl, "UNG05", e->grp_dec)) == SCAN_MORE)
            e->where = W_IC;
        return rc;
    }
    if ((rc = check_count(sc, 1, "UNZ01", e->groups ? e->ic_count : e->ic_msgs,
                          e->groups ? "groups (UNG) are in the interchange"
                                    : "messages (UNH) are in the interchange",
                          NULL)) == SCAN_MORE &&
        (rc = check_ctl(sc, 2, "UNZ02", e->ictl, "UNB05", e->ic_dec)) == SCAN_MORE) {
        e->where = W_OUT;
        edifact_defaults(e);
    }
    return rc;
}

static int edf_segment(struct scan *sc)
{
    struct ediscan *e = sc->u;
    int rc = SCAN_MORE;
    if ((e->where == W_OUT || e->where == W_UNA) && tag_is(e, "UNB")) {
        rc = edf_unb(sc);
    } else if (e->where == W_IC && tag_is(e, "UNG") && (e->groups || !e->ic_msgs)) {
        if ((rc = keep_env(sc, e->grp, &e->grp_len)) == SCAN_MORE &&
            (rc = take_ctl(sc, 5, "UNG05", e->gctl)) == SCAN_MORE) {
            e->groups = 1;
            e->grp_dec = e->seg_dec, e->grp_count = 0;
            e->ic_count++, e->grp_serial++;
            e->where = W_GRP;
        }
    } else if ((e->where == W_IC && tag_is(e, "UNZ")) || (e->where == W_GRP && tag_is(e, "UNE"))) {
        rc = edf_close(sc);
    } else if (e->where == W_SET && e->set_segs == 0) {
        rc = take_ctl(sc, 1, "UNH01", e->sctl);
        e->set_segs = 1;
    } else if (e->where == W_SET && tag_is(e, "UNT")) {
        e->set_segs++;
        if ((rc = check_count(sc, 1, "UNT01", e->set_segs, "segments (UNH to UNT) are in message",
                              e->sctl)) == SCAN_MORE &&
            (rc = check_ctl(sc, 2, "UNT02", e->sctl, "UNH01", e->set_dec)) == SCAN_MORE) {
            e->grp_count++, e->ic_msgs++;
            e->where = e->groups ? W_GRP : W_IC;
            e->after_rec = 1;
        }
    } else {
        static const char *const expect[] = {"UNA or UNB", "UNB", "UNG, UNH or UNZ",
                                             "UNH or UNE", "UNT"};
        const char *x = expect[e->where];
        if (e->where == W_IC && e->groups)
            x = "UNG or UNZ (this interchange has groups: every message is in one)";
        else if (e->where == W_IC && e->ic_msgs)
            x = "UNH or UNZ (this interchange has messages outside groups)";
        rc = misplaced(sc, edf_env, x);
    }
    return rc;
}

/* ---- the tokenizer --------------------------------------------------------------------- */

static void keep(struct ediscan *e, const unsigned char *s, size_t n)
{
    if (e->seg_len < EDI_KEEP) {
        size_t k = EDI_KEEP - e->seg_len < n ? EDI_KEEP - e->seg_len : n;
        memcpy(e->seg + e->seg_len, s, k);
    }
    e->seg_len += n;
}

/* The tag is complete: a transaction set or message may start here (SCAN_REC_START), or an
 * X12 interchange's TA1s, which open its first record (X12 allows them only before its first
 * GS): that record runs on through the GS and ST after them to the first SE, or to the IEA. */
static int tag_done(struct scan *sc, uint64_t base)
{
    struct ediscan *e = sc->u;
    int x12 = e->kind == K_X12;
    int ta1 = x12 && e->where == W_IC && !e->ic_count && !e->ta1_rec && tag_is(e, "TA1");
    e->tag_done = 1;
    if (!ta1) {
        if (!tag_is(e, x12 ? "ST" : "UNH"))
            return SCAN_MORE;
        if (!(e->where == W_GRP || (!x12 && e->where == W_IC && !e->groups)))
            return SCAN_MORE;
        e->where = W_SET;
        e->set_segs = 0;
        e->set_dec = e->seg_dec;
        e->set_no++;
        if (e->ta1_rec) {
            e->cl.sets++; /* in the TA1s' record, which its GS opened */
            return SCAN_MORE;
        }
    }
    e->ta1_rec = (uint8_t)ta1;
    e->bare = 0;
    /* The tag's first bytes were in an earlier window: env_open hands them over. */
    e->carry_len = (uint8_t)(e->seg_dec < base ? base - e->seg_dec : 0);
    memcpy(e->carry, e->seg, e->carry_len);
    sc->ev_dec = e->seg_dec < base ? base : e->seg_dec;
    return SCAN_REC_START;
}

/* Header segments read raw, before their delimiters are known: ISA (up to ISA16 and the
 * terminator after it) and UNA (nine bytes). Returns 1 when the segment is complete. */
static int raw_header(struct scan *sc, unsigned char ch, int *rc)
{
    struct ediscan *e = sc->u;
    char t[4] = {0};
    keep(e, &ch, 1);
    *rc = SCAN_MORE;
    if (e->seg_len == 3) {
        memcpy(t, e->seg, 3);
        if (e->kind == K_X12 && strcmp(t, "ISA")) {
            *rc = fail_seg(sc, "the interchange starts with \"%s\", not ISA: this is not an X12 "
                           "interchange (or it has text before its ISA segment)", t);
            return 1;
        }
        if (e->kind == K_EDIFACT && strcmp(t, "UNA"))
            return -1; /* a segment with the default delimiters */
    }
    if (e->kind == K_EDIFACT) {
        if (e->seg_len == 9)
            *rc = edf_una(sc);
        return e->seg_len == 9;
    }
    /* ISA has 16 elements: after the 16th separator come ISA16 and the terminator. */
    if (e->seg_len == 4)
        e->el = ch, e->nsep = 1;
    else if (e->seg_len > 4 && e->nsep < 16)
        e->nsep += ch == e->el;
    else if (e->seg_len > 4 && ++e->nsep == 18)
        *rc = x12_isa(sc);
    if (e->seg_len >= EDI_KEEP && e->where == W_OUT && *rc == SCAN_MORE) {
        *rc = fail_seg(sc, "no ISA16 and segment terminator within %d bytes of the ISA "
                       "segment (an ISA segment is 106 bytes)", EDI_KEEP);
        return 1;
    }
    return e->where != W_OUT || *rc != SCAN_MORE;
}

static int end_segment(struct scan *sc)
{
    struct ediscan *e = sc->u;
    e->in_seg = 0;
    if (!e->tag_done)
        e->tag_len = e->seg_len < 4 ? e->seg_len : 4;
    return e->kind == K_X12 ? x12_segment(sc) : edf_segment(sc);
}

/* The N strings of PARTS one after another in OUT (LEN bytes, cut short if need be): this runs
 * for every record, where snprintf showed in profiles. */
void edi_join(char *out, size_t len, const char *const *parts, size_t n)
{
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = strlen(parts[i]);
        if (k > len - 1 - at)
            k = len - 1 - at;
        memcpy(out + at, parts[i], k);
        at += k;
    }
    out[at] = '\0';
}

/* "interchange/group/set" control numbers of the record that just ended. */
void edi_ids_of(const struct ediscan *e, char *out, size_t len)
{
    /* A record of TA1s only has no group and no set. */
    int grp = !e->bare && (e->kind == K_X12 || e->groups);
    const char *parts[] = {e->ictl, "/", grp ? e->gctl : "-", "/", e->bare ? "-" : e->sctl};
    edi_join(out, len, parts, 5);
}

/* A record ends here (SCAN_REC_END at AT). */
static int record_ends(struct scan *sc, uint64_t at)
{
    struct ediscan *e = sc->u;
    e->after_rec = 0;
    if (e->cl.nrec == 1)
        edi_ids_of(e, e->cl.first, sizeof(e->cl.first));
    sc->ev_dec = at;
    return SCAN_REC_END;
}

static int start_segment(struct scan *sc, size_t i, uint64_t base)
{
    struct ediscan *e = sc->u;
    if (e->after_rec)
        return record_ends(sc, base + i);
    e->in_seg = 1;
    e->tag_done = e->rel_pending = 0;
    e->seg_len = e->tag_len = e->nsep = 0;
    e->seg_dec = base + i;
    e->seg_no++;
    return SCAN_MORE;
}

/* The bytes of a segment with known delimiters from I: to its terminator or the window's end.
 * Returns the event (SCAN_MORE: go on) and moves *I. */
static int segment_bytes(struct scan *sc, const unsigned char *b, size_t n, size_t *i,
                         uint64_t base)
{
    struct ediscan *e = sc->u;
    size_t j = *i;
    if (e->rel_pending) {
        e->rel_pending = 0;
        keep(e, b + j, 1);
        *i = j + 1;
        return SCAN_MORE;
    }
    if (!e->has_rel) {
        const unsigned char *t = memchr(b + j, e->term, n - j);
        j = t ? (size_t)(t - b) : n;
    } else {
        while (j < n && b[j] != e->term && b[j] != e->rel)
            j++;
    }
    size_t from = e->seg_len;
    keep(e, b + *i, j - *i);
    *i = j;
    if (!e->tag_done && e->seg_len > from) {
        size_t kept = e->seg_len < 5 ? e->seg_len : 5;
        const char *p = memchr(e->seg, e->el, kept);
        if (p || e->seg_len >= 5) {
            e->tag_len = p ? (size_t)(p - e->seg) : 4;
            int ev = tag_done(sc, base);
            if (ev != SCAN_MORE)
                return ev;
        }
    }
    if (j == n)
        return SCAN_MORE;
    if (e->has_rel && b[j] == e->rel) {
        keep(e, b + j, 1);
        e->rel_pending = 1;
        *i = j + 1;
        return SCAN_MORE;
    }
    *i = j + 1;
    return end_segment(sc);
}

/* After the last interchange, a DOS end-of-file mark (Ctrl-Z) and the blanks after it are
 * left out: a whole file's text is sent without them (sc->drop_esc), and no record holds
 * them. Anything else after the mark is refused. */
static int eof_mark(struct scan *sc, unsigned char c, uint64_t at)
{
    struct ediscan *e = sc->u;
    if (c != EDI_EOF_MARK && !edi_is_gap(c)) {
        char what[24];
        if (c > 0x20 && c < 0x7f)
            snprintf(what, sizeof(what), "'%c'", c);
        else
            snprintf(what, sizeof(what), "the character 0x%02X", c); /* not "byte": an offset */
        return scan_fail(sc, at, "%s after the end-of-file mark (Ctrl-Z, at offset %llu) that "
                         "follows the last interchange: only line breaks and blanks may follow "
                         "the mark; remove what follows it, or ask the sender for a corrected "
                         "file", what, (unsigned long long)e->mark_dec);
    }
    if (!e->eof_mark)
        e->eof_mark = 1, e->mark_dec = at;
    e->mark_esc += pd_encode_escaped_len(&c, 1);
    return SCAN_MORE;
}

static int edi_feed(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos)
{
    struct ediscan *e = sc->u;
    size_t i = *pos;
    int ev = SCAN_MORE;
    while (i < n && ev == SCAN_MORE) {
        if (!e->in_seg) {
            if (e->eof_mark || (b[i] == EDI_EOF_MARK && e->where == W_OUT && e->ic_serial)) {
                if (e->after_rec) {
                    ev = record_ends(sc, base + i); /* a record of TA1s: not the mark */
                    break;
                }
                ev = eof_mark(sc, b[i], base + i);
                i += ev == SCAN_MORE;
                continue;
            }
            if (edi_is_gap(b[i])) {
                size_t k = strlen(e->eol);
                if (e->eol_take && b[i] != ' ' && b[i] != '\t' && k < 2)
                    e->eol[k] = (char)b[i], e->eol[k + 1] = '\0';
                i++;
                continue;
            }
            e->eol_take = 0;
            if ((ev = start_segment(sc, i, base)) != SCAN_MORE)
                break;
        }
        if (e->where == W_OUT && e->seg_len < 9 + (e->kind == K_X12 ? EDI_KEEP : 0)) {
            int rc, done = raw_header(sc, b[i++], &rc);
            if (done > 0) {
                e->in_seg = 0;
                ev = rc;
            } else if (done < 0) {
                e->where = W_UNA; /* UNB with the default delimiters follows */
                edifact_defaults(e);
                e->in_seg = 1;
            }
            continue;
        }
        ev = segment_bytes(sc, b, n, &i, base);
    }
    *pos = i;
    return ev;
}

static int edi_end(struct scan *sc, uint64_t eof_dec)
{
    struct ediscan *e = sc->u;
    char t[8];
    int x12 = e->kind == K_X12;
    sc->drop_esc = e->mark_esc;
    if (e->in_seg)
        return fail_seg(sc, "the file ends inside this %s segment: its terminator is missing",
                        e->seg_len >= 3 ? tag_name(e, t, sizeof(t)) : "last");
    if (e->after_rec)
        return record_ends(sc, eof_dec);
    if (e->where == W_OUT && e->ic_serial)
        return SCAN_DONE;
    static const char *const x12_miss[] = {"an ISA segment", "", "its IEA segment",
                                           "the GE and IEA segments", "the SE, GE and IEA segments"};
    static const char *const edf_miss[] = {"a UNB segment", "a UNB segment after the UNA",
                                           "its UNZ segment", "the UNE and UNZ segments",
                                           "the UNT segment and the interchange's end"};
    const char *miss = (x12 ? x12_miss : edf_miss)[e->where];
    if (!e->ic_serial && e->where == W_OUT)
        return scan_fail(sc, eof_dec, "the file holds no %s interchange: %s is missing; it is not "
                         "%s", x12 ? "X12" : "EDIFACT", miss, x12 ? "X12" : "EDIFACT");
    return scan_fail(sc, e->ic_dec, "the interchange starting here (control number %s) is not "
                     "complete: the file ends without %s; it was cut short: drop the complete "
                     "file again", e->ictl, miss);
}

/* The two standards share everything but their start. */
#define EDI_SCAN_OPS(reset_fn)                                                                     \
    {                                                                                              \
        .state_size = sizeof(struct ediscan), .tiled = 0, .reset = reset_fn,                       \
        .area_at_start = scan_always, .feed = edi_feed, .end = edi_end, .copy = edi_copy,          \
        .resume = edi_resume, .env_open = edi_env_open, .env_close = edi_env_close,                \
        .env_label = edi_env_label,                                                                \
    }

const struct pd_scan_ops pd_scan_x12 = EDI_SCAN_OPS(x12_reset);
const struct pd_scan_ops pd_scan_edifact = EDI_SCAN_OPS(edf_reset);
