/*
 * The splitter's driver (the contract is in include/pd_split.h).
 *
 * Pass 1 reads the whole file once: it checks the text and the syntax, measures the encoded
 * size of the file and of every record, and keeps the text to repeat in every chunk (before
 * the records: "pre"; after the last one: "suf"). A file that fits max_body is encoded into
 * the body during this same pass and goes whole. Otherwise pass 2 produces chunks one at a
 * time: it restarts the scanner from the snapshot taken where the records begin, escapes
 * records into the body until the next one would not fit, and cuts after the last whole one.
 *
 * Because pass 1 has seen every record, pass 2 cannot fail half way through a file for a
 * reason the file contains; only I/O errors, a file changed under us, or a budget lowered by
 * pd_split_resplit() can still stop it.
 */
#include "pd_split.h"

#include "pd_encode.h"
#include "pd_error.h"
#include "pd_format.h"
#include "split_internal.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define HEAD_LEN (sizeof(PD_ENCODE_BODY_HEAD) - 1)
#define TAIL_LEN (sizeof(PD_ENCODE_BODY_TAIL) - 1)

struct pd_splitter {
    int fd, own_fd;
    char *name, *json_array, *xml_record, *encoding;
    int fmt_cfg, fmt;
    int is_xml; /* XML by format, or by name with split = none: its declaration matters */
    uint64_t max_body;
    struct split_dec dec;
    int dec_ok;
    /* The XML declaration's encoding value (decoded offsets), rewritten to UTF-8 in what is
     * sent when it names another charset: the text sent is UTF-8 whatever the file was. */
    int decl_rewrite;
    uint64_t decl_dec, decl_len;
    struct scan sc;
    size_t pos; /* read position in dec.win */

    int err; /* sticky error */
    char msg[1024];
    int64_t err_offset; /* the byte msg names, or -1 */

    /* pass 1 results */
    int prepared, whole, whole_sent;
    int split_err;        /* problem found by the first pass */
    int split_structural; /* ...that only matters when the file must be split */
    char split_msg[1024];
    char split_tail[400];
    uint64_t split_err_dec;
    int split_err_line_wanted;
    uint64_t area_orig, file_end, whole_len, total_records;
    char *pre, *suf;
    size_t pre_len, suf_len, pre_esc, suf_esc;
    int pre_over, suf_over;
    uint64_t big_num, big_off, big_size, over_count;

    /* iteration */
    uint64_t seek_target;
    uint64_t next_start, next_record;
    unsigned next_index;
    int positioned;

    char *body;
    size_t body_len, body_cap;
    struct pd_chunk last;
    int have_last;
};

static int set_err(struct pd_splitter *sp, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/*
 * The first byte offset MSG names ("at byte 3", "byte 5 is not..."), or -1. Read from the
 * words themselves, so the offset a caller records can never disagree with the reason it
 * shows.
 */
static int64_t named_byte(const char *msg)
{
    for (const char *p = strstr(msg, "byte "); p; p = strstr(p + 1, "byte ")) {
        const char *d = p + 5;
        if ((p == msg || !isalnum((unsigned char)p[-1])) && isdigit((unsigned char)*d)) {
            errno = 0;
            unsigned long long v = strtoull(d, NULL, 10);
            return errno || v > INT64_MAX ? -1 : (int64_t)v;
        }
    }
    return -1;
}

/* The splitter's error: what is wrong and where, without the file's name, which every
 * caller shows once beside it. */
static int set_err(struct pd_splitter *sp, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sp->msg, sizeof(sp->msg), fmt, ap);
    va_end(ap);
    sp->err_offset = named_byte(sp->msg);
    sp->err = code;
    return code;
}

/* "9123456 bytes (9.1 MB)": exact for the record, readable for the person. */
static const char *size_words(uint64_t n, char *buf, size_t sz)
{
    if (n >= 1000000)
        snprintf(buf, sz, "%llu bytes (%.1f MB)", (unsigned long long)n, (double)n / 1e6);
    else if (n >= 10000)
        snprintf(buf, sz, "%llu bytes (%.1f kB)", (unsigned long long)n, (double)n / 1e3);
    else
        snprintf(buf, sz, "%llu bytes", (unsigned long long)n);
    return buf;
}

static int ends_with(const char *s, const char *ext)
{
    size_t a = strlen(s), b = strlen(ext);
    return a >= b && !strcasecmp(s + a - b, ext);
}

static char *dup_or_null(const char *s)
{
    return s && *s ? strdup(s) : NULL;
}

int pd_split_create(int fd, const char *path, const struct pd_split_opts *opts,
                    struct pd_splitter **out)
{
    int rc = 0;
    struct pd_splitter *sp = calloc(1, sizeof(*sp));
    *out = NULL;
    if (!sp)
        return PD_ENOMEM;
    *out = sp;
    sp->fd = fd;
    sp->own_fd = 0;
    sp->name = strdup(opts->name ? opts->name : path ? path : "(file)");
    sp->json_array = dup_or_null(opts->json_array);
    sp->xml_record = dup_or_null(opts->xml_record);
    sp->encoding = dup_or_null(opts->encoding);
    if (!sp->name || (opts->json_array && *opts->json_array && !sp->json_array) ||
        (opts->xml_record && *opts->xml_record && !sp->xml_record) ||
        (opts->encoding && *opts->encoding && !sp->encoding)) {
        rc = PD_ENOMEM;
        goto fail;
    }
    sp->max_body = opts->max_body;
    sp->fmt_cfg = opts->format;
    sp->fmt = opts->format == PD_SPLIT_AUTO ? pd_format_of_name(sp->name) : opts->format;
    if (sp->fmt == PD_SPLIT_AUTO || !pd_format_get(sp->fmt)) {
        rc = set_err(sp, PD_ECONFIG, "unknown split format %d", opts->format);
        goto fail;
    }
    if (sp->max_body <= PD_ENCODE_BODY_OVERHEAD) {
        rc = set_err(sp, PD_ECONFIG, "max_body %llu is too small for any request",
                     (unsigned long long)sp->max_body);
        goto fail;
    }
    if (fd < 0 && !opts->mem) {
        sp->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (sp->fd < 0) {
            rc = -errno;
            set_err(sp, rc, "cannot open: %s", strerror(-rc));
            goto fail;
        }
        sp->own_fd = 1;
    }
    sp->is_xml = sp->fmt == PD_SPLIT_XML ||
                 (sp->fmt == PD_SPLIT_NONE && pd_format_of_name(sp->name) == PD_SPLIT_XML);
    char msg[400];
    rc = dec_open(&sp->dec, sp->fd, opts->mem, opts->mem_len, sp->encoding, sp->is_xml, msg,
                  sizeof(msg));
    sp->dec_ok = 1;
    /* A charset the file names but this system cannot read is the file's fault, not the
     * configuration's: pd_split_next() reports it like any other fault in the text. */
    int file_fault = rc == PD_EENCODING;
    if (rc < 0 && !file_fault) {
        set_err(sp, rc, "%s", msg);
        goto fail;
    }
    char delim = (ends_with(sp->name, ".tsv")) ? '\t' : ',';
    /* split = none scans nothing, but the driver still reads the file through the lines
     * scanner (a file that fits goes whole either way). */
    rc = scan_init(&sp->sc, pd_format_get(sp->fmt)->scan ? sp->fmt : PD_SPLIT_LINES, sp->json_array,
                   sp->xml_record, opts->header_lines, delim);
    if (rc < 0) {
        set_err(sp, rc, "%s", rc == PD_ENOMEM ? "out of memory" : sp->sc.msg);
        goto fail;
    }
    if (file_fault)
        set_err(sp, PD_EENCODING, "%s", msg);
    return 0;
fail:
    sp->err = rc;
    return rc;
}

void pd_split_destroy(struct pd_splitter **spp)
{
    if (!spp || !*spp)
        return;
    struct pd_splitter *sp = *spp;
    scan_cleanup(&sp->sc);
    if (sp->dec_ok)
        dec_close(&sp->dec);
    if (sp->own_fd && sp->fd >= 0)
        close(sp->fd);
    free(sp->name);
    free(sp->json_array);
    free(sp->xml_record);
    free(sp->encoding);
    free(sp->pre);
    free(sp->suf);
    free(sp->body);
    free(sp);
    *spp = NULL;
}

const char *pd_split_error(const struct pd_splitter *sp)
{
    return sp && sp->msg[0] ? sp->msg : "no error";
}

int64_t pd_split_error_offset(const struct pd_splitter *sp)
{
    return sp && sp->msg[0] ? sp->err_offset : -1;
}

uint64_t pd_split_max_body(const struct pd_splitter *sp)
{
    return sp->max_body;
}

int pd_split_format(const struct pd_splitter *sp)
{
    return sp->fmt;
}

int pd_split_verbatim(const struct pd_splitter *sp)
{
    return !sp->err && sp->prepared && sp->dec.cd == (iconv_t)-1 && !sp->decl_rewrite;
}

/* ---- body buffer ---------------------------------------------------------------------- */

static int body_reserve(struct pd_splitter *sp, size_t need)
{
    if (need <= sp->body_cap)
        return 0;
    size_t cap = sp->body_cap ? sp->body_cap * 2 : 65536;
    if (cap < need)
        cap = need;
    if (cap > sp->max_body && need <= sp->max_body)
        cap = (size_t)sp->max_body;
    char *b = realloc(sp->body, cap);
    if (!b)
        return PD_ENOMEM;
    sp->body = b;
    sp->body_cap = cap;
    return 0;
}

/* Appends SRC escaped unless the body would pass LIMIT: 0 done, 1 no room, <0 error. */
static int body_escape(struct pd_splitter *sp, const void *src, size_t n, size_t limit)
{
    size_t need;
    if (n == 0)
        return 0;
    if (sp->body_len > limit)
        return 1;
    if (n <= (limit - sp->body_len) / 6) {
        need = sp->body_len + n * 6;
    } else {
        size_t e = pd_encode_escaped_len(src, n);
        if (sp->body_len + e > limit)
            return 1;
        need = sp->body_len + e;
    }
    if (body_reserve(sp, need) < 0)
        return PD_ENOMEM;
    sp->body_len += pd_encode_escape(sp->body + sp->body_len, src, n);
    return 0;
}

static int body_raw(struct pd_splitter *sp, const char *s, size_t n)
{
    if (body_reserve(sp, sp->body_len + n) < 0)
        return PD_ENOMEM;
    memcpy(sp->body + sp->body_len, s, n);
    sp->body_len += n;
    return 0;
}

/* ---- pass 1 ----------------------------------------------------------------------------- */

static int grow_append(char **buf, size_t *len, const unsigned char *src, size_t n, uint64_t cap,
                       int *over)
{
    if (*over)
        return 0;
    if (*len + n > cap) {
        *over = 1;
        return 0;
    }
    char *b = realloc(*buf, *len + n + 1);
    if (!b)
        return PD_ENOMEM;
    memcpy(b + *len, src, n);
    *buf = b;
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

struct p1 {
    int whole_fits, collecting_pre, collecting_suf;
    uint64_t esc_total, dec_total, nrec, rec_start_esc, rec_start_dec;
    struct dec_anchor rec_start_anchor;
    uint64_t mark_dec, mark_esc;
    struct dec_anchor mark_anchor;
    size_t mark_pre_len;
    uint64_t target_rec;
};

/* Decoded text pass 1 keeps: counted, escaped into the whole body while that fits, and
 * collected as the text to repeat before or after the records. */
static int take(struct pd_splitter *sp, struct p1 *st, const unsigned char *s, size_t n)
{
    int rc;
    st->dec_total += n;
    if (st->whole_fits) {
        size_t before = sp->body_len;
        rc = body_escape(sp, s, n, (size_t)sp->max_body - TAIL_LEN);
        if (rc < 0)
            return rc;
        if (rc == 0)
            st->esc_total += sp->body_len - before;
        else
            st->whole_fits = 0;
    }
    if (!st->whole_fits)
        st->esc_total += pd_encode_escaped_len(s, n);
    if (st->collecting_pre && (rc = grow_append(&sp->pre, &sp->pre_len, s, n, sp->max_body, &sp->pre_over)) < 0)
        return rc;
    if (st->collecting_suf && (rc = grow_append(&sp->suf, &sp->suf_len, s, n, sp->max_body, &sp->suf_over)) < 0)
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

static uint64_t exact(struct pd_splitter *sp, struct dec_anchor a, uint64_t dec)
{
    uint64_t orig = a.orig;
    dec_exact(&sp->dec, a, dec, &orig);
    return orig;
}

/* A scanner error: kept for the case the file turns out to need splitting. */
static void note_scan_error(struct pd_splitter *sp, struct p1 *st)
{
    uint64_t dec = sp->sc.ev_dec, orig = dec;
    int known = 1;
    if (sp->dec.cd != (iconv_t)-1) {
        if (dec >= sp->dec.win_dec && dec <= sp->dec.win_dec + sp->dec.win_len)
            orig = exact(sp, dec_anchor_of(&sp->dec, dec), dec);
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
                rc = grow_append(&sp->suf, &sp->suf_len, (unsigned char *)sp->pre + st->mark_pre_len,
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
        sp->area_orig = exact(sp, a, dec);
        if (sp->seek_target == sp->area_orig)
            st->target_rec = 1;
        break;
    }
    case SCAN_REC_START:
        st->rec_start_esc = st->esc_total;
        st->rec_start_dec = sc->ev_dec;
        st->rec_start_anchor = dec_anchor_of(&sp->dec, sc->ev_dec);
        break;
    case SCAN_REC_END: {
        uint64_t size = st->esc_total - st->rec_start_esc;
        st->nrec++;
        if (size > sp->big_size) {
            sp->big_size = size;
            sp->big_num = st->nrec;
            sp->big_off = exact(sp, st->rec_start_anchor, st->rec_start_dec);
        }
        uint64_t pre_esc = pd_encode_escaped_len(sp->pre, sp->pre_len);
        if (PD_ENCODE_BODY_OVERHEAD + pre_esc + size > sp->max_body)
            sp->over_count++;
        sp->suf_len = 0;
        sp->suf_over = 0;
        struct dec_anchor a = dec_anchor_of(&sp->dec, sc->ev_dec);
        if (sp->sc.tiled) {
            st->rec_start_esc = st->esc_total;
            st->rec_start_dec = sc->ev_dec;
            st->rec_start_anchor = a;
        }
        if (!st->target_rec && sp->seek_target &&
            sp->seek_target >= a.orig && sp->seek_target <= a.orig + 8 * DEC_SLICE &&
            exact(sp, a, sc->ev_dec) == sp->seek_target)
            st->target_rec = st->nrec + 1;
        break;
    }
    default:
        break;
    }
    return 0;
}

/* Can the file be split with the current budget? Sets the sticky error when not. */
static int check_budget(struct pd_splitter *sp)
{
    char a[64], b[64];
    uint64_t fixed = PD_ENCODE_BODY_OVERHEAD + sp->pre_esc + sp->suf_esc;
    if (fixed >= sp->max_body)
        return set_err(sp, PD_ETOOBIG,
                       "the text repeated in every chunk (before and after the records) is %s "
                       "encoded, which leaves no room for records under max_body %llu; raise "
                       "max_body",
                       size_words(fixed, a, sizeof(a)), (unsigned long long)sp->max_body);
    if (sp->big_size > sp->max_body - fixed) {
        char others[96] = "";
        if (sp->over_count > 1)
            snprintf(others, sizeof(others), " (%llu records are too large; this is the largest)",
                     (unsigned long long)sp->over_count);
        return set_err(sp, PD_ETOOBIG,
                       "record %llu at byte %llu is %s encoded, larger than the %s a request "
                       "can hold (max_body %llu less the text repeated in every chunk)%s; raise "
                       "max_body or split the record upstream",
                       (unsigned long long)sp->big_num, (unsigned long long)sp->big_off,
                       size_words(sp->big_size, a, sizeof(a)),
                       size_words(sp->max_body - fixed, b, sizeof(b)),
                       (unsigned long long)sp->max_body, others);
    }
    return 0;
}

/* Everything pass 1 found that stops splitting; 0 when the file can be split. */
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
    return set_err(sp, sp->split_err, "%s", sp->split_msg);
}

static int split_ready(struct pd_splitter *sp)
{
    if (sp->fmt == PD_SPLIT_NONE) {
        char a[64];
        return set_err(sp, PD_ETOOBIG,
                       "the file is %s once encoded, larger than max_body %llu, and this watch "
                       "has split = none; choose a split format or raise max_body",
                       size_words(sp->whole_len, a, sizeof(a)), (unsigned long long)sp->max_body);
    }
    if (sp->split_err)
        return syntax_error(sp);
    if (sp->total_records == 0)
        return set_err(sp, PD_EEMPTY,
                       "the file is too big for one request but holds no %s records to split it by",
                       pd_format_name(sp->fmt));
    if (sp->pre_over)
        return set_err(sp, PD_ETOOBIG,
                       "the text before the first record (repeated in every chunk) is larger "
                       "than max_body %llu", (unsigned long long)sp->max_body);
    if (sp->suf_over)
        return set_err(sp, PD_ETOOBIG,
                       "the text after the last record (repeated in every chunk) is larger "
                       "than max_body %llu", (unsigned long long)sp->max_body);
    return check_budget(sp);
}

static int pass1(struct pd_splitter *sp)
{
    struct p1 st;
    struct split_dec *d = &sp->dec;
    int rc;
    memset(&st, 0, sizeof(st));
    st.whole_fits = 1;
    st.collecting_pre = 1;
    st.target_rec = sp->seek_target == 0;
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
    dec_seek(d, 0);
    sp->body_len = 0;
    if ((rc = body_raw(sp, PD_ENCODE_BODY_HEAD, HEAD_LEN)) < 0)
        return set_err(sp, rc, "out of memory");
    int scanning = sp->fmt != PD_SPLIT_NONE;
    size_t pos = 0, acc = 0;
    for (;;) {
        if (pos == d->win_len) {
            if ((rc = account(sp, &st, acc, pos)) < 0)
                return set_err(sp, rc, "out of memory");
            rc = dec_fill(d);
            if (rc < 0)
                return set_err(sp, rc, "%s", d->err);
            if (rc == 0)
                break;
            if (sp->is_xml && d->win_dec == d->data_start)
                find_declaration(sp);
            pos = acc = 0;
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
        if ((rc = account(sp, &st, acc, evpos)) < 0)
            return set_err(sp, rc, "out of memory");
        acc = evpos;
        if (ev == SCAN_ERROR) {
            note_scan_error(sp, &st);
            scanning = 0;
            if (!st.whole_fits)
                break; /* no need to read on: the file can go neither whole nor split */
        } else if ((rc = handle_p1_event(sp, &st, ev)) < 0) {
            return set_err(sp, rc, "out of memory");
        }
    }
    uint64_t eof_dec = d->win_dec + d->win_len;
    while (scanning) {
        int ev = scan_end(&sp->sc, eof_dec);
        if (ev == SCAN_DONE)
            break;
        if (ev == SCAN_ERROR) {
            note_scan_error(sp, &st);
            break;
        }
        if ((rc = handle_p1_event(sp, &st, ev)) < 0)
            return set_err(sp, rc, "out of memory");
    }
    if (st.dec_total == 0)
        return set_err(sp, PD_EEMPTY, "the file is empty; there is nothing to send");
    sp->file_end = exact(sp, dec_anchor_of(d, eof_dec), eof_dec);
    sp->total_records = st.nrec;
    sp->pre_esc = pd_encode_escaped_len(sp->pre, sp->pre_len);
    sp->suf_esc = pd_encode_escaped_len(sp->suf, sp->suf_len);
    sp->prepared = 1;
    /* A file of a structured kind goes only when it is well formed, even when it fits whole:
     * a flow that expects JSON must never get half an array. (split = lines or none sends
     * any text as it is.) */
    if (sp->split_err && !sp->split_structural)
        return syntax_error(sp);
    if (st.whole_fits && sp->body_len + TAIL_LEN <= sp->max_body) {
        body_raw(sp, PD_ENCODE_BODY_TAIL, TAIL_LEN);
        sp->whole = 1;
        if (sp->seek_target != 0 && sp->seek_target != sp->file_end)
            return set_err(sp, PD_ESTATE,
                           "byte %llu is not a chunk boundary: the file now goes whole; it "
                           "changed since, or max_body differs from when it was recorded",
                           (unsigned long long)sp->seek_target);
        sp->whole_sent = sp->seek_target != 0;
        return 0;
    }
    sp->whole_len = st.esc_total + PD_ENCODE_BODY_OVERHEAD;
    if ((rc = split_ready(sp)) < 0)
        return rc;
    if (!st.target_rec)
        return set_err(sp, PD_ESTATE,
                       "byte %llu is not a chunk boundary of this file; it changed since, or "
                       "max_body differs from when the chunk was recorded",
                       (unsigned long long)sp->seek_target);
    sp->next_start = sp->seek_target ? sp->seek_target : sp->area_orig;
    sp->next_record = st.target_rec;
    return 0;
}

/* ---- pass 2 ----------------------------------------------------------------------------- */

static int copy_seg(struct pd_splitter *sp, size_t a, size_t b, size_t limit)
{
    if (b <= a)
        return 0;
    return body_escape(sp, sp->dec.win + a, b - a, limit);
}

static int changed(struct pd_splitter *sp)
{
    return set_err(sp, PD_ESTATE,
                   "the file changed while it was being sent (%s): it was cut short or rewritten "
                   "after it was taken; nothing more is sent from it, and the chunks delivered "
                   "before stay delivered; drop the complete file again",
                   sp->sc.msg[0] ? sp->sc.msg : "records differ");
}

static int make_chunk(struct pd_splitter *sp, struct pd_chunk *out)
{
    struct split_dec *d = &sp->dec;
    int rc;
    if (!sp->positioned) {
        dec_seek(d, sp->next_start);
        sp->pos = 0;
        scan_resume(&sp->sc, sp->next_start != sp->area_orig);
        sp->positioned = 1;
    }
    size_t limit = (size_t)(sp->max_body - TAIL_LEN - sp->suf_esc);
    sp->body_len = 0;
    if (body_raw(sp, PD_ENCODE_BODY_HEAD, HEAD_LEN) < 0 ||
        body_escape(sp, sp->pre, sp->pre_len, limit) < 0)
        return set_err(sp, PD_ENOMEM, "out of memory");
    int copying = sp->sc.tiled;
    uint64_t nrec = 0;
    size_t commit_len = sp->body_len;
    uint64_t commit_dec = d->win_dec + sp->pos;
    struct dec_anchor commit_anchor = {sp->next_start, commit_dec};
    int last = 0;
    size_t acc = sp->pos;
    for (;;) {
        int ev;
        size_t evpos;
        if (sp->pos == d->win_len) {
            if (copying && (rc = copy_seg(sp, acc, sp->pos, limit)) != 0)
                goto overflow;
            rc = dec_fill(d);
            if (rc < 0)
                return set_err(sp, rc, "%s", d->err);
            if (rc > 0) {
                sp->pos = acc = 0;
                continue;
            }
            ev = scan_end(&sp->sc, d->win_dec + d->win_len);
            evpos = acc = 0;
        } else {
            ev = scan_feed(&sp->sc, d->win, d->win_len, d->win_dec, &sp->pos);
            evpos = ev == SCAN_MORE || ev == SCAN_ERROR ? sp->pos
                                                        : (size_t)(sp->sc.ev_dec - d->win_dec);
        }
        if (ev == SCAN_ERROR || ev == SCAN_DONE)
            return changed(sp);
        if (copying && (rc = copy_seg(sp, acc, evpos, limit)) != 0)
            goto overflow;
        acc = evpos;
        if (ev == SCAN_REC_START) {
            copying = 1;
        } else if (ev == SCAN_REC_END) {
            nrec++;
            commit_len = sp->body_len;
            commit_dec = sp->sc.ev_dec;
            commit_anchor = dec_anchor_of(d, commit_dec);
            if (sp->next_record + nrec - 1 >= sp->total_records) {
                last = 1;
                break;
            }
        }
    }
    goto finish;
overflow:
    if (rc < 0)
        return set_err(sp, rc, "out of memory");
    if (nrec == 0) {
        char a[64];
        return set_err(sp, PD_ETOOBIG,
                       "record %llu at byte %llu does not fit in max_body %llu with the text "
                       "repeated in every chunk (%s); raise max_body or split the record upstream",
                       (unsigned long long)sp->next_record, (unsigned long long)sp->next_start,
                       (unsigned long long)sp->max_body,
                       size_words(PD_ENCODE_BODY_OVERHEAD + sp->pre_esc + sp->suf_esc, a, sizeof(a)));
    }
    sp->body_len = commit_len;
    /* The scanner read past the cut: start the next chunk from the cut again. */
    if (commit_dec >= d->win_dec && commit_dec <= d->win_dec + d->win_len) {
        sp->pos = (size_t)(commit_dec - d->win_dec);
        scan_resume(&sp->sc, 1);
    } else {
        sp->positioned = 0;
    }
finish:
    if (body_escape(sp, sp->suf, sp->suf_len, (size_t)sp->max_body - TAIL_LEN) != 0 ||
        body_raw(sp, PD_ENCODE_BODY_TAIL, TAIL_LEN) < 0)
        return set_err(sp, PD_ENOMEM, "out of memory");
    uint64_t end = exact(sp, commit_anchor, commit_dec);
    memset(out, 0, sizeof(*out));
    out->index = sp->next_index++;
    out->start = sp->next_start;
    out->end = end;
    out->records = nrec;
    out->first_record = sp->next_record;
    out->last = last;
    out->body = sp->body;
    out->body_len = sp->body_len;
    sp->next_start = end;
    sp->next_record += nrec;
    return 1;
}

int pd_split_next(struct pd_splitter *sp, struct pd_chunk *out)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if (sp->err)
        return sp->err;
    if (!sp->prepared && (rc = pass1(sp)) < 0)
        return rc;
    if (sp->whole) {
        if (sp->whole_sent)
            return 0;
        sp->whole_sent = 1;
        out->index = sp->next_index;
        out->start = 0;
        out->end = sp->file_end;
        out->records = 0;
        out->first_record = 1;
        out->whole = 1;
        out->last = 1;
        out->body = sp->body;
        out->body_len = sp->body_len;
    } else {
        if (sp->next_record > sp->total_records)
            return 0;
        if ((rc = make_chunk(sp, out)) < 0)
            return rc;
    }
    sp->last = *out;
    sp->have_last = 1;
    return 1;
}

char *pd_split_take_body(struct pd_splitter *sp, size_t *len)
{
    char *b = sp->body;
    *len = sp->body_len;
    sp->body = NULL;
    sp->body_len = sp->body_cap = 0;
    sp->last.body = NULL;
    return b;
}

int pd_split_seek(struct pd_splitter *sp, uint64_t start, unsigned next_index)
{
    if (sp->err)
        return sp->err;
    sp->seek_target = start;
    sp->next_index = next_index;
    sp->prepared = 0;
    sp->have_last = 0;
    return 0;
}

int pd_split_resplit(struct pd_splitter *sp, uint64_t new_max_body)
{
    if (sp->err)
        return sp->err;
    if (!sp->have_last)
        return set_err(sp, PD_ESTATE, "resplit without a chunk to cut again");
    if (new_max_body >= sp->last.body_len || new_max_body <= PD_ENCODE_BODY_OVERHEAD) {
        snprintf(sp->msg, sizeof(sp->msg),
                 "resplit needs a max_body below the refused body's %zu bytes (got %llu)",
                 sp->last.body_len, (unsigned long long)new_max_body);
        sp->err_offset = -1;
        return PD_ELIMIT;
    }
    sp->max_body = new_max_body;
    sp->positioned = 0;
    sp->have_last = 0;
    if (sp->last.whole) {
        sp->whole = 0;
        sp->whole_len = sp->last.body_len;
        int rc = split_ready(sp);
        if (rc < 0)
            return rc;
        sp->next_start = sp->area_orig;
        sp->next_record = 1;
        sp->next_index = sp->last.index;
        return 0;
    }
    sp->next_start = sp->last.start;
    sp->next_index = sp->last.index;
    sp->next_record = sp->last.first_record;
    return check_budget(sp);
}

int pd_split_resplit_chunk(struct pd_splitter *sp, const struct pd_chunk *refused,
                           uint64_t new_max_body)
{
    if (sp->err)
        return sp->err;
    sp->last = *refused;
    sp->last.body = NULL;
    sp->have_last = 1;
    return pd_split_resplit(sp, new_max_body);
}

uint64_t pd_split_min_body(const struct pd_splitter *sp)
{
    /* Nothing to cut by: the file goes whole or not at all. */
    if (sp->fmt == PD_SPLIT_NONE || sp->total_records == 0)
        return sp->whole_len;
    return PD_ENCODE_BODY_OVERHEAD + sp->pre_esc + sp->suf_esc + sp->big_size;
}
