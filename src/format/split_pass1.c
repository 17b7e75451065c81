/*
 * The splitter's first pass (see split.c): reads the whole file once, checks its text and
 * syntax, measures the encoded size of the file and of every record, keeps the text repeated
 * in every chunk, and encodes the file into the body while it still fits whole.
 */
#include "pd_encode.h"
#include "pd_error.h"
#include "pd_format.h"
#include "pd_mem.h"
#include "split_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Appends to a text kept by pass 1, unless it would pass CAP (then *OVER). */
static int grow_append(char **buf, size_t *len, size_t *bufcap, const unsigned char *src,
                       size_t n, uint64_t cap, int *over)
{
    if (*over)
        return 0;
    if (*len + n > cap) {
        *over = 1;
        return 0;
    }
    /* Doubling: the text after each record is collected again and again. */
    if (pd_reserve(buf, bufcap, *len + n + 1, 64, UINT64_MAX) < 0)
        return PD_ENOMEM;
    memcpy(*buf + *len, src, n);
    *len += n;
    return 0;
}

/* Line number of decoded offset DEC, by reading again from the start (errors only). */
static uint64_t line_of(struct pd_splitter *sp, uint64_t dec)
{
    uint64_t line = 1;
    dec_seek(&sp->dec, 0);
    while (dec_fill(&sp->dec) > 0) {
        uint64_t base = sp->dec.win_dec;
        if (base >= dec)
            break;
        size_t n = sp->dec.win_len;
        if (dec - base < n)
            n = (size_t)(dec - base);
        const unsigned char *p = sp->dec.win, *e = p + n;
        while ((p = memchr(p, '\n', (size_t)(e - p))) != NULL)
            line++, p++;
    }
    sp->positioned = 0;
    return line;
}

/* The file offset of decoded offset DEC anywhere before the current window, by reading again
 * from the start (errors only). */
static uint64_t orig_of(struct pd_splitter *sp, uint64_t dec)
{
    uint64_t orig = dec;
    dec_seek(&sp->dec, 0);
    while (dec_fill(&sp->dec) > 0) {
        if (dec < sp->dec.win_dec + sp->dec.win_len) {
            orig = split_exact(sp, dec_anchor_of(&sp->dec, dec), dec);
            break;
        }
    }
    sp->positioned = 0;
    return orig;
}

struct p1 {
    int whole_fits, collecting_pre, collecting_suf;
    /* UTF-8 text: the text after the last record is read again from the file at the end
     * (from suf_from) instead of being copied after every record on the way. */
    int suf_by_tail;
    uint64_t suf_from;
    struct dec_anchor suf_anchor;
    /* the last record so far: its escaped size and where it starts */
    uint64_t last_size, last_dec;
    struct dec_anchor last_anchor;
    int checking; /* expat reads along (split = xml) and has found nothing wrong yet */
    int wf_stopped; /* expat stopped the reading before the text was counted */
    uint64_t esc_total, dec_total, nrec, rec_start_esc, rec_start_dec;
    struct dec_anchor rec_start_anchor;
    uint64_t mark_dec, mark_esc;
    struct dec_anchor mark_anchor;
    size_t mark_pre_len;
    uint64_t target_rec;
    uint64_t rec_env_esc; /* enveloped formats: the record's envelope, opening a chunk */
};

/* Decoded text pass 1 keeps: counted, escaped into the whole body while that fits, and
 * collected as the text to repeat before or after the records. */
static int take(struct pd_splitter *sp, struct p1 *st, const unsigned char *s, size_t n)
{
    int rc;
    st->dec_total += n;
    if (st->whole_fits) {
        size_t before = sp->body_len;
        rc = split_body_escape(sp, s, n, (size_t)sp->max_body - TAIL_LEN);
        if (rc < 0)
            return rc;
        if (rc == 0)
            st->esc_total += sp->body_len - before;
        else
            st->whole_fits = 0;
    }
    if (!st->whole_fits)
        st->esc_total += pd_encode_escaped_len(s, n);
    if (st->collecting_pre &&
        (rc = grow_append(&sp->pre, &sp->pre_len, &sp->pre_cap, s, n, sp->max_body,
                          &sp->pre_over)) < 0)
        return rc;
    if (st->collecting_suf && !st->suf_by_tail &&
        (rc = grow_append(&sp->suf, &sp->suf_len, &sp->suf_cap, s, n, sp->max_body,
                          &sp->suf_over)) < 0)
        return rc;
    return 0;
}

/* Window bytes [A, B) for take(), with the XML declaration's encoding value replaced by
 * "UTF-8" (the value lies in the first window, but any cut through it is handled). */
static int account(struct pd_splitter *sp, struct p1 *st, size_t a, size_t b)
{
    const unsigned char *w = sp->dec.win;
    uint64_t base = sp->dec.win_dec, from = base + a, to = base + b;
    uint64_t lo = sp->decl_dec, hi = sp->decl_dec + sp->decl_len;
    int rc;
    if (b <= a)
        return 0;
    if (!sp->decl_rewrite || to <= lo || from >= hi)
        return take(sp, st, w + a, b - a);
    if (from < lo && (rc = take(sp, st, w + a, (size_t)(lo - from))) < 0)
        return rc;
    if (from <= lo && (rc = take(sp, st, (const unsigned char *)"UTF-8", 5)) < 0)
        return rc;
    if (to > hi)
        return take(sp, st, w + (size_t)(hi - base), (size_t)(to - hi));
    return 0;
}

/* Finds the XML declaration at the start of the first window and whether its encoding must
 * become UTF-8 (it names another charset, whether or not the file was transcoded: the text
 * sent is UTF-8 either way, and a declaration that says otherwise makes parsers misread it). */
static void find_declaration(struct pd_splitter *sp)
{
    struct split_dec *d = &sp->dec;
    struct xml_decl x;
    size_t n = d->win_len < XML_DECL_MAX ? d->win_len : XML_DECL_MAX;
    if (xml_decl_parse(d->win, n, &x) && x.enc_len &&
        !dec_is_utf8_name((const char *)d->win + x.enc_off, x.enc_len)) {
        sp->decl_rewrite = 1;
        sp->decl_dec = d->win_dec + x.enc_off;
        sp->decl_len = x.enc_len;
    }
}

/* A scanner error: kept for the case the file turns out to need splitting. */
static void note_scan_error(struct pd_splitter *sp, struct p1 *st)
{
    uint64_t dec = sp->sc.ev_dec, orig = dec;
    int known = 1;
    if (sp->dec.cd != (iconv_t)-1) {
        if (dec >= sp->dec.win_dec && dec <= sp->dec.win_dec + sp->dec.win_len)
            orig = split_exact(sp, dec_anchor_of(&sp->dec, dec), dec);
        else
            known = 0;
    }
    char rec[64] = "";
    if (!st->collecting_pre)
        snprintf(rec, sizeof(rec), ", in record %llu", (unsigned long long)(st->nrec + 1));
    const char *hint = "";
    if (sp->fmt_cfg == PD_SPLIT_AUTO && st->collecting_pre)
        hint = " (the split format was chosen from the file name; set split for this watch if "
               "the file is of another kind)";
    if (known)
        snprintf(sp->split_msg, sizeof(sp->split_msg), "%s at byte %llu", sp->sc.msg,
                 (unsigned long long)orig);
    else
        snprintf(sp->split_msg, sizeof(sp->split_msg), "%s", sp->sc.msg);
    snprintf(sp->split_tail, sizeof(sp->split_tail), "%s)%s", rec, hint);
    sp->split_err = PD_EPARSE;
    sp->split_structural = sp->sc.structural;
    sp->split_err_dec = dec;
    sp->split_err_line_wanted = 1;
}

/* A record ends: its size, the index, and whether the chunk asked for by a seek starts here. */
static int record_end(struct pd_splitter *sp, struct p1 *st)
{
    struct scan *sc = &sp->sc;
    int rc;
    uint64_t size = st->esc_total - st->rec_start_esc;
    if (sc->ops->env_close) {
        /* Alone in a chunk, a record carries its envelope. */
        char env[SCAN_ENV_MAX];
        size += st->rec_env_esc + pd_encode_escaped_len(env, sc->ops->env_close(sc, env));
    }
    st->nrec++;
    st->last_size = size;
    st->last_dec = st->rec_start_dec;
    st->last_anchor = st->rec_start_anchor;
    if (size > sp->big_size) {
        sp->big_size = size;
        sp->big_num = st->nrec;
        sp->big_off = split_exact(sp, st->rec_start_anchor, st->rec_start_dec);
    }
    if (PD_ENCODE_BODY_OVERHEAD + sp->pre_esc + size > sp->max_body)
        sp->over_count++;
    sp->suf_len = 0;
    sp->suf_over = 0;
    st->suf_from = sc->ev_dec;
    if ((rc = idx_note(sp, sc->ev_dec, st->esc_total, st->nrec)) < 0)
        return rc;
    struct dec_anchor a = dec_anchor_of(&sp->dec, sc->ev_dec);
    st->suf_anchor = a;
    if (sp->sc.tiled) {
        st->rec_start_esc = st->esc_total;
        st->rec_start_dec = sc->ev_dec;
        st->rec_start_anchor = a;
    }
    if (!st->target_rec && sp->seek_target && sp->seek_target >= a.orig &&
        sp->seek_target <= a.orig + 8 * DEC_SLICE &&
        split_exact(sp, a, sc->ev_dec) == sp->seek_target) {
        st->target_rec = st->nrec + 1;
        sp->seek_cum = st->esc_total;
        if (sc->ops->env_open)
            scan_snapshot(sc); /* the chunk asked for starts in this envelope */
    }
    return 0;
}

static int handle_p1_event(struct pd_splitter *sp, struct p1 *st, int ev)
{
    struct scan *sc = &sp->sc;
    int rc;
    switch (ev) {
    case SCAN_MARK:
        st->mark_dec = sc->ev_dec;
        st->mark_anchor = dec_anchor_of(&sp->dec, sc->ev_dec);
        st->mark_pre_len = sp->pre_len;
        st->mark_esc = st->esc_total;
        break;
    case SCAN_AREA_START: {
        uint64_t dec = sc->ev_dec;
        struct dec_anchor a;
        st->collecting_pre = 0;
        st->collecting_suf = 1;
        sp->suf_len = 0;
        sp->suf_over = 0;
        if (sc->at_mark) {
            /* The records began at the mark: what was read since is record text, not pre. */
            dec = st->mark_dec;
            a = st->mark_anchor;
            st->rec_start_esc = st->mark_esc;
            if (sp->pre_len >= st->mark_pre_len && !sp->pre_over) {
                rc = st->suf_by_tail ? 0 : grow_append(&sp->suf, &sp->suf_len, &sp->suf_cap,
                                 (unsigned char *)sp->pre + st->mark_pre_len,
                                 sp->pre_len - st->mark_pre_len, sp->max_body, &sp->suf_over);
                if (rc < 0)
                    return rc;
                sp->pre_len = st->mark_pre_len;
            }
        } else {
            a = dec_anchor_of(&sp->dec, dec);
            st->rec_start_esc = st->esc_total;
        }
        st->rec_start_dec = dec;
        st->rec_start_anchor = a;
        st->suf_from = dec;
        st->suf_anchor = a;
        sp->area_orig = split_exact(sp, a, dec);
        sp->area_cum = st->rec_start_esc;
        sp->pre_esc = pd_encode_escaped_len(sp->pre, sp->pre_len); /* final from here on */
        if (sp->seek_target == sp->area_orig)
            st->target_rec = 1;
        break;
    }
    case SCAN_REC_START:
        if (sc->ops->env_open) {
            char env[SCAN_ENV_MAX];
            st->rec_env_esc = pd_encode_escaped_len(env, sc->ops->env_open(sc, 1, env));
        }
        st->rec_start_esc = st->esc_total;
        st->rec_start_dec = sc->ev_dec;
        st->rec_start_anchor = dec_anchor_of(&sp->dec, sc->ev_dec);
        break;
    case SCAN_REC_END:
        return record_end(sp, st);
    default:
        break;
    }
    return 0;
}

int split_check_budget(struct pd_splitter *sp)
{
    char a[64], b[64];
    uint64_t fixed = PD_ENCODE_BODY_OVERHEAD + sp->pre_esc + sp->suf_esc;
    if (fixed >= sp->max_body)
        return split_set_err(
            sp, PD_ETOOBIG,
            "the text repeated in every chunk (before and after the records) is %s "
            "encoded, which leaves no room for records under max_body %llu; raise "
            "max_body",
            split_size_words(fixed, a, sizeof(a)), (unsigned long long)sp->max_body);
    if (sp->big_size > sp->max_body - fixed) {
        char others[96] = "";
        if (sp->over_count > 1)
            snprintf(others, sizeof(others), " (%llu records are too large; this is the largest)",
                     (unsigned long long)sp->over_count);
        /* EDI: a transaction set goes with the envelope a chunk gives it. */
        int env = sp->sc.ops->env_open != NULL;
        return split_set_err(
            sp, PD_ETOOBIG,
            "record %llu at byte %llu is %s encoded%s, larger than the %s a request "
            "can hold (max_body %llu less %s)%s; raise max_body or split the record upstream",
            (unsigned long long)sp->big_num, (unsigned long long)sp->big_off,
            split_size_words(sp->big_size, a, sizeof(a)),
            env ? " with its interchange and group envelope"
            : sp->tail_len && sp->big_num == sp->total_records
                ? " (with the content after it inside the root, which goes with it)"
                : "",
            split_size_words(sp->max_body - fixed, b, sizeof(b)), (unsigned long long)sp->max_body,
            env ? "the request's own text" : "the text repeated in every chunk", others);
    }
    return 0;
}

/* A syntax error the first pass found, with its line number, as the splitter's error. */
static int syntax_error(struct pd_splitter *sp)
{
    if (sp->split_err_line_wanted) {
        char m[sizeof(sp->split_msg) + sizeof(sp->split_tail) + 32];
        snprintf(m, sizeof(m), "%s (line %llu%s", sp->split_msg,
                 (unsigned long long)line_of(sp, sp->split_err_dec), sp->split_tail);
        memcpy(sp->split_msg, m, sizeof(sp->split_msg) - 1);
        sp->split_err_line_wanted = 0;
    }
    return split_set_err(sp, sp->split_err, "%s", sp->split_msg);
}

/* Everything pass 1 found that stops splitting; 0 when the file can be split. */
int split_ready(struct pd_splitter *sp)
{
    if (sp->fmt == PD_SPLIT_NONE) {
        char a[64];
        return split_set_err(
            sp, PD_ETOOBIG,
            "the file is %s once encoded, larger than max_body %llu, and this watch "
            "has split = none; choose a split format or raise max_body",
            split_size_words(sp->whole_len, a, sizeof(a)), (unsigned long long)sp->max_body);
    }
    if (sp->split_err)
        return syntax_error(sp);
    if (sp->total_records == 0)
        return split_set_err(
            sp, PD_EEMPTY,
            "the file is too big for one request but holds no %s records to split it by",
            pd_format_name(sp->fmt));
    if (sp->pre_over)
        return split_set_err(sp, PD_ETOOBIG,
                             "the text before the first record (repeated in every chunk) is larger "
                             "than max_body %llu",
                             (unsigned long long)sp->max_body);
    if (sp->suf_over)
        return split_set_err(sp, PD_ETOOBIG,
                             "the text after the last record (repeated in every chunk) is larger "
                             "than max_body %llu",
                             (unsigned long long)sp->max_body);
    return split_check_budget(sp);
}

/* Where the root's end tag starts in S (the text after the last record of a well-formed
 * file: only content, comments, CDATA and PIs can come first), or N. */
static size_t closing_tag_at(const char *s, size_t n)
{
    static const char *const skip[][2] = {{"<!--", "-->"}, {"<![CDATA[", "]]>"}, {"<?", "?>"}};
    size_t i = 0;
    for (;;) {
        const char *lt = memchr(s + i, '<', n - i);
        if (!lt)
            return n;
        i = (size_t)(lt - s);
        if (i + 1 < n && s[i + 1] == '/')
            return i;
        size_t k = 0, ol = 0;
        while (k < 3 && !(n - i >= (ol = strlen(skip[k][0])) && !memcmp(s + i, skip[k][0], ol)))
            k++;
        if (k == 3)
            return n; /* an element: cannot follow the last record */
        size_t cl = strlen(skip[k][1]);
        const char *end = memmem(s + i + ol, n - i - ol, skip[k][1], cl);
        if (!end)
            return n;
        i = (size_t)(end - s) + cl;
    }
}

/* XML: content other than whitespace between the last record and the root's end tag would be
 * repeated by every chunk's closing: it becomes the tail that goes once, after the last
 * record, which then needs room for it. */
static void find_tail(struct pd_splitter *sp, struct p1 *st)
{
    sp->tail_len = 0;
    sp->tail_esc = 0;
    if (sp->fmt != PD_SPLIT_XML || sp->suf_over || !st->nrec || sp->split_err)
        return;
    size_t k = closing_tag_at(sp->suf, sp->suf_len), ws = 0;
    while (ws < k && strchr(" \t\r\n", sp->suf[ws]))
        ws++;
    if (k == sp->suf_len || ws == k)
        return;
    sp->tail_len = k;
    sp->tail_esc = pd_encode_escaped_len(sp->suf, k);
    sp->tail_end_dec = st->suf_from + k;
    /* A transcoded tail may be long: its end is found by reading again (once per file). */
    sp->tail_end_orig =
        sp->dec.cd == (iconv_t)-1 ? sp->tail_end_dec : orig_of(sp, sp->tail_end_dec);
    uint64_t size = st->last_size + sp->tail_esc;
    if (PD_ENCODE_BODY_OVERHEAD + sp->pre_esc + st->last_size <= sp->max_body &&
        PD_ENCODE_BODY_OVERHEAD + sp->pre_esc + size > sp->max_body)
        sp->over_count++;
    if (size > sp->big_size) {
        sp->big_size = size;
        sp->big_num = st->nrec;
        sp->big_off = split_exact(sp, st->last_anchor, st->last_dec);
    }
}

/* Back to the file's start, with nothing found yet. */
static void p1_start(struct pd_splitter *sp, struct p1 *st)
{
    memset(st, 0, sizeof(*st));
    st->whole_fits = 1;
    st->collecting_pre = 1;
    st->suf_by_tail = sp->dec.cd == (iconv_t)-1;
    st->target_rec = sp->seek_target == 0;
    sp->pre_len = sp->suf_len = 0;
    sp->pre_over = sp->suf_over = 0;
    sp->big_num = sp->big_off = sp->big_size = sp->over_count = 0;
    sp->split_err = 0;
    sp->split_err_line_wanted = 0;
    sp->area_orig = 0;
    sp->whole = sp->whole_sent = 0;
    sp->positioned = 0;
    sp->decl_rewrite = 0;
    scan_reset(&sp->sc);
    dec_seek(&sp->dec, 0);
    sp->body_len = 0;
    idx_start(sp);
}

/* Expat reads the current window (FINAL: the file ended). Returns 1 when it found the file
 * not well formed: that is the file's fault, unless the scanner found one before. */
static int wf_feed(struct pd_splitter *sp, struct p1 *st, int final)
{
    struct split_dec *d = &sp->dec;
    struct xmlwf_err e;
    if (sp->split_err && !sp->split_structural) {
        st->checking = 0; /* the scanner refused the file already: no need to read on */
        return 0;
    }
    if (!xmlwf_feed(sp->wf, d->win, final ? 0 : d->win_len, d->win_dec, final, sp->max_body, &e))
        return 0;
    st->checking = 0;
    if (sp->split_err && !sp->split_structural)
        return 1;
    /* (The reading stops here: the decoder may be moved to find the byte.) */
    uint64_t orig = e.dec;
    if (d->cd != (iconv_t)-1)
        orig = e.dec >= d->win_dec && e.dec <= d->win_dec + d->win_len
                   ? split_exact(sp, dec_anchor_of(d, e.dec), e.dec)
                   : orig_of(sp, e.dec);
    char at[48];
    snprintf(at, sizeof(at), " at byte %llu", (unsigned long long)orig);
    snprintf(sp->split_msg, sizeof(sp->split_msg), "%s%s (line %llu, column %llu); %s", e.msg,
             at, (unsigned long long)e.line, (unsigned long long)e.column, e.fix);
    sp->split_err = e.code;
    sp->split_structural = 0;
    sp->split_err_line_wanted = 0;
    return 1;
}

/* Reads the file to its end, or to a scan error when the file cannot go whole either. Returns
 * 0 or the sticky error. */
static int p1_read(struct pd_splitter *sp, struct p1 *st)
{
    struct split_dec *d = &sp->dec;
    int rc;
    int scanning = sp->fmt != PD_SPLIT_NONE;
    size_t pos = 0, acc = 0;
    for (;;) {
        if (pos == d->win_len) {
            if ((rc = account(sp, st, acc, pos)) < 0)
                return split_set_err(sp, rc, "out of memory");
            rc = dec_fill(d);
            if (rc < 0)
                return split_set_err(sp, rc, "%s", d->err);
            if (rc == 0)
                break;
            if (sp->is_xml && d->win_dec == d->data_start)
                find_declaration(sp);
            pos = acc = 0;
            if (st->checking && wf_feed(sp, st, 0)) {
                st->wf_stopped = 1;
                return 0; /* not well formed: the file goes neither whole nor split */
            }
        }
        int ev = SCAN_MORE;
        size_t evpos;
        if (scanning)
            ev = scan_feed(&sp->sc, d->win, d->win_len, d->win_dec, &pos);
        else
            pos = d->win_len;
        evpos = ev == SCAN_MORE || ev == SCAN_ERROR ? pos : (size_t)(sp->sc.ev_dec - d->win_dec);
        if (ev == SCAN_AREA_START && sp->sc.at_mark)
            evpos = pos;
        if ((rc = account(sp, st, acc, evpos)) < 0)
            return split_set_err(sp, rc, "out of memory");
        acc = evpos;
        if (ev == SCAN_ERROR) {
            note_scan_error(sp, st);
            scanning = 0;
            if (!st->whole_fits)
                break; /* no need to read on: the file can go neither whole nor split */
        } else if ((rc = handle_p1_event(sp, st, ev)) < 0) {
            return split_set_err(sp, rc, "out of memory");
        }
    }
    uint64_t eof_dec = d->win_dec + d->win_len;
    if (st->checking && wf_feed(sp, st, 1))
        return 0;
    while (scanning) {
        int ev = scan_end(&sp->sc, eof_dec);
        if (ev == SCAN_DONE)
            break;
        if (ev == SCAN_ERROR) {
            note_scan_error(sp, st);
            break;
        }
        if ((rc = handle_p1_event(sp, st, ev)) < 0)
            return split_set_err(sp, rc, "out of memory");
    }
    return 0;
}

/* What the whole file read says: it goes whole, or it is cut from the chunk asked for. */
static int p1_verdict(struct pd_splitter *sp, const struct p1 *st)
{
    int rc;
    /* A file of a structured kind goes only when it is well formed, even when it fits whole:
     * a flow that expects JSON must never get half an array. (split = lines or none sends
     * any text as it is.) */
    if (sp->split_err && !sp->split_structural)
        return syntax_error(sp);
    sp->body_len -= st->whole_fits ? sp->sc.drop_esc : 0; /* it was escaped into the body */
    if (st->whole_fits && sp->body_len + TAIL_LEN <= sp->max_body) {
        split_body_raw(sp, PD_ENCODE_BODY_TAIL, TAIL_LEN);
        sp->whole = 1;
        if (sp->seek_target != 0 && sp->seek_target != sp->file_end)
            return split_set_err(sp, PD_ESTATE,
                                 "byte %llu is not a chunk boundary: the file now goes whole; it "
                                 "changed since, or max_body differs from when it was recorded",
                                 (unsigned long long)sp->seek_target);
        sp->whole_sent = sp->seek_target != 0;
        return 0;
    }
    sp->whole_len = st->esc_total + PD_ENCODE_BODY_OVERHEAD;
    if ((rc = split_ready(sp)) < 0)
        return rc;
    if (!st->target_rec)
        return split_set_err(sp, PD_ESTATE,
                             "byte %llu is not a chunk boundary of this file; it changed since, "
                             "or max_body differs from when the chunk was recorded",
                             (unsigned long long)sp->seek_target);
    sp->next_start = sp->seek_target ? sp->seek_target : sp->area_orig;
    sp->next_record = st->target_rec;
    sp->next_cum = sp->next_start == sp->area_orig ? sp->area_cum : sp->seek_cum;
    sp->next_cum_known = 1;
    return 0;
}

/* The text after the last record (or after the area's start when none ended), read again
 * from the file when it was not collected on the way. */
static int read_tail(struct pd_splitter *sp, const struct p1 *st, uint64_t eof_dec)
{
    if (!st->suf_by_tail || !st->collecting_suf || sp->suf_over)
        return 0;
    uint64_t n = eof_dec > st->suf_from ? eof_dec - st->suf_from : 0;
    sp->suf_len = 0;
    if (n > sp->max_body) {
        sp->suf_over = 1;
        return 0;
    }
    if (pd_reserve(&sp->suf, &sp->suf_cap, (size_t)n + 1, 64, UINT64_MAX) < 0)
        return split_set_err(sp, PD_ENOMEM, "out of memory");
    long r = dec_read(&sp->dec, sp->suf, (size_t)n, st->suf_from);
    if (r < 0)
        return split_set_err(sp, (int)r, "cannot read the file: %s", strerror((int)-r));
    if ((uint64_t)r != n)
        return split_set_err(sp, PD_ESTATE, "the file changed while it was read (it is shorter "
                                            "than a moment ago); drop the complete file again");
    sp->suf_len = (size_t)n;
    return 0;
}

int split_pass1(struct pd_splitter *sp)
{
    struct p1 st;
    struct split_dec *d = &sp->dec;
    int rc;
    p1_start(sp, &st);
    if (sp->fmt == PD_SPLIT_XML) {
        /* Room for a token of max_body (the buffer doubles) and ordinary name tables. */
        if (xmlwf_start(&sp->wf, 2 * sp->max_body + (32u << 20)) < 0)
            return split_set_err(sp, PD_ENOMEM, "out of memory");
        st.checking = 1;
    }
    if ((rc = split_body_raw(sp, PD_ENCODE_BODY_HEAD, HEAD_LEN)) < 0)
        return split_set_err(sp, rc, "out of memory");
    if ((rc = p1_read(sp, &st)) < 0)
        return rc;
    uint64_t eof_dec = d->win_dec + d->win_len;
    if ((rc = read_tail(sp, &st, eof_dec)) < 0)
        return rc;
    if (sp->sc.ops->env_open)
        sp->suf_len = 0, sp->suf_over = 0; /* the trailers are rendered per chunk */
    if (st.dec_total == 0 && !st.wf_stopped)
        return split_set_err(sp, PD_EEMPTY, "the file is empty; there is nothing to send");
    sp->file_end = split_exact(sp, dec_anchor_of(d, eof_dec), eof_dec);
    sp->total_records = st.nrec;
    sp->pre_esc = pd_encode_escaped_len(sp->pre, sp->pre_len);
    find_tail(sp, &st);
    sp->suf_esc = pd_encode_escaped_len(sp->suf, sp->suf_len) - sp->tail_esc;
    sp->prepared = 1;
    return p1_verdict(sp, &st);
}
