/*
 * The splitter's driver (the contract is in include/pd_split.h).
 *
 * Pass 1 (split_pass1.c) reads the whole file once: it checks the text and the syntax,
 * measures the encoded size of the file and of every record, and keeps the text to repeat in
 * every chunk (before the records: "pre"; after the last one: "suf"). A file that fits
 * max_body is encoded into the body during this same pass and goes whole. Otherwise pass 2
 * produces chunks one at a time: it restarts the scanner from the snapshot taken where the
 * records begin, escapes records into the body until the next one would not fit, and cuts
 * after the last whole one.
 *
 * Because pass 1 has seen every record, pass 2 cannot fail half way through a file for a
 * reason the file contains; only I/O errors, a file changed under us, or a budget lowered by
 * pd_split_resplit() can still stop it.
 */
#include "pd_split.h"

#include "pd_encode.h"
#include "pd_error.h"
#include "pd_format.h"
#include "pd_mem.h"
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
int split_set_err(struct pd_splitter *sp, int code, const char *fmt, ...)
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
const char *split_size_words(uint64_t n, char *buf, size_t sz)
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

/* split = auto: the name's format, or the one the file's first bytes show (EDI files are
 * often named .edi, .txt or nothing). A file that cannot be read here fails later. */
static int choose_format(struct pd_splitter *sp, const struct pd_split_opts *opts)
{
    unsigned char head[256];
    size_t n = 0;
    if (opts->mem) {
        n = opts->mem_len < sizeof(head) ? opts->mem_len : sizeof(head);
        memcpy(head, opts->mem, n);
    } else {
        ssize_t r = pread(sp->fd, head, sizeof(head), 0);
        n = r > 0 ? (size_t)r : 0;
    }
    return pd_format_of_text(sp->name, head, n);
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
    if (!pd_format_get(sp->fmt)) {
        rc = split_set_err(sp, PD_ECONFIG, "unknown split format %d", opts->format);
        goto fail;
    }
    if (sp->max_body <= PD_ENCODE_BODY_OVERHEAD) {
        rc = split_set_err(sp, PD_ECONFIG, "max_body %llu is too small for any request",
                           (unsigned long long)sp->max_body);
        goto fail;
    }
    if (fd < 0 && !opts->mem) {
        sp->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (sp->fd < 0) {
            rc = -errno;
            split_set_err(sp, rc, "cannot open: %s", strerror(-rc));
            goto fail;
        }
        sp->own_fd = 1;
    }
    if (opts->format == PD_SPLIT_AUTO)
        sp->fmt = choose_format(sp, opts);
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
        split_set_err(sp, rc, "%s", msg);
        goto fail;
    }
    char delim = (ends_with(sp->name, ".tsv")) ? '\t' : ',';
    /* split = none scans nothing, but the driver still reads the file through the lines
     * scanner (a file that fits goes whole either way). */
    rc = scan_init(&sp->sc, pd_format_get(sp->fmt)->scan ? sp->fmt : PD_SPLIT_LINES, sp->json_array,
                   sp->xml_record, opts->header_lines, delim);
    if (rc < 0) {
        split_set_err(sp, rc, "%s", rc == PD_ENOMEM ? "out of memory" : sp->sc.msg);
        goto fail;
    }
    if (file_fault)
        split_set_err(sp, PD_EENCODING, "%s", msg);
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
    xmlwf_free(&sp->wf);
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
    idx_free(sp);
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
    return !sp->err && sp->prepared && sp->dec.cd == (iconv_t)-1 && !sp->decl_rewrite &&
           !sp->sc.drop_esc;
}

/* ---- body buffer ---------------------------------------------------------------------- */

int split_body_reserve(struct pd_splitter *sp, size_t need)
{
    if (need <= sp->body_cap)
        return 0;
    size_t cap = sp->body_cap ? sp->body_cap * 2 : 65536;
    if (cap < need)
        cap = need;
    if (cap > sp->max_body && need <= sp->max_body)
        cap = (size_t)sp->max_body;
    return pd_resize(&sp->body, &sp->body_cap, cap);
}

/* Appends SRC escaped unless the body would pass LIMIT: 0 done, 1 no room, <0 error. */
int split_body_escape(struct pd_splitter *sp, const void *src, size_t n, size_t limit)
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
    if (split_body_reserve(sp, need) < 0)
        return PD_ENOMEM;
    sp->body_len += pd_encode_escape(sp->body + sp->body_len, src, n);
    return 0;
}

int split_body_raw(struct pd_splitter *sp, const char *s, size_t n)
{
    if (split_body_reserve(sp, sp->body_len + n) < 0)
        return PD_ENOMEM;
    memcpy(sp->body + sp->body_len, s, n);
    sp->body_len += n;
    return 0;
}

uint64_t split_exact(struct pd_splitter *sp, struct dec_anchor a, uint64_t dec)
{
    uint64_t orig = a.orig;
    dec_exact(&sp->dec, a, dec, &orig);
    return orig;
}

/* ---- pass 2 ----------------------------------------------------------------------------- */

/* Window bytes [A, B) are passed: escaped onto the body when COPYING, and counted in *CUM
 * (the escaped length of the text before them) either way. */
static int pass_seg(struct pd_splitter *sp, size_t a, size_t b, size_t limit, int copying,
                    uint64_t *cum)
{
    if (b <= a)
        return 0;
    if (!copying) {
        *cum += pd_encode_escaped_len(sp->dec.win + a, b - a);
        return 0;
    }
    size_t before = sp->body_len;
    int rc = split_body_escape(sp, sp->dec.win + a, b - a, limit);
    *cum += sp->body_len - before;
    return rc;
}

static int changed(struct pd_splitter *sp)
{
    return split_set_err(
        sp, PD_ESTATE,
        "the file changed while it was being sent (%s): it was cut short or rewritten "
        "after it was taken; nothing more is sent from it, and the chunks delivered "
        "before stay delivered; drop the complete file again",
        sp->sc.msg[0] ? sp->sc.msg : "records differ");
}

/* Where a chunk can end: after its last whole record. */
struct cut {
    size_t len; /* the body's length there */
    uint64_t dec;
    struct dec_anchor anchor;
    uint64_t nrec;
    int last; /* the file's last record is in */
    uint64_t cum; /* the escaped length of the file's text before DEC, when KNOWN */
    int known;
    char close[SCAN_ENV_MAX]; /* enveloped formats: the text that closes a chunk ending here */
    size_t close_len;
    char control[sizeof(((struct pd_chunk *)0)->control)]; /* ...and its control numbers */
};

/* The file's last record is in the chunk: the XML content after it inside the root goes once,
 * here (pass 1 made room for it), and the chunk ends where the root's end tag starts. */
static void end_at_tail(struct pd_splitter *sp, struct cut *c)
{
    if (!sp->tail_len)
        return;
    c->len = sp->body_len;
    c->dec = sp->tail_end_dec;
    c->anchor = (struct dec_anchor){sp->tail_end_orig, sp->tail_end_dec};
    c->known = 0;
}

/* The same after a jump that reached the last record (it left room for the tail). */
static int add_tail(struct pd_splitter *sp, size_t limit, struct cut *c)
{
    int rc = sp->tail_len ? split_body_escape(sp, sp->suf, sp->tail_len, limit) : 0;
    if (rc == 0)
        end_at_tail(sp, c);
    return rc;
}

/* At the end of a record (C): when the index says that records up to a later end fit, they are
 * copied without a scan and the scanner continues there. Returns 1 after a jump, 0 when
 * none was made, or a negative code. */
static int jump(struct pd_splitter *sp, size_t limit, struct cut *c)
{
    if (!c->known && sp->idx_on) {
        const struct split_idx *at = idx_at(sp, c->dec);
        if (at)
            c->known = 1, c->cum = at->cum;
    }
    /* Room for the tail too, should the jump reach the last record. */
    if (!c->known || !sp->idx_on || sp->body_len + sp->tail_esc > limit)
        return 0;
    const struct split_idx *e =
        idx_reach(sp, c->dec, c->cum, limit - sp->body_len - sp->tail_esc);
    if (!e)
        return 0;
    int rc = idx_copy(sp, c->dec, c->cum, e);
    if (rc != 0)
        return rc < 0 ? rc : 0;
    c->nrec = e->rec - sp->next_record + 1;
    c->len = sp->body_len;
    c->dec = e->off;
    c->anchor = (struct dec_anchor){e->off, e->off};
    c->cum = e->cum;
    c->last = e->rec >= sp->total_records;
    dec_seek(&sp->dec, e->off);
    sp->pos = 0;
    scan_resume(&sp->sc, 1);
    return 1;
}

/* Enveloped formats: the envelope text before the record starting now (the chunk's opening,
 * or the trailers and headers between two groups). 0, 1 when it does not fit, or an error. */
static int env_before(struct pd_splitter *sp, const struct cut *c, size_t limit)
{
    char env[SCAN_ENV_MAX];
    size_t n = sp->sc.ops->env_open(&sp->sc, c->nrec == 0, env);
    return split_body_escape(sp, env, n, limit);
}

/* Enveloped formats: a record ended; the chunk may end here when its closing text fits too.
 * Then C is this place, with that text, and the state is where the next chunk starts. */
static int env_after(struct pd_splitter *sp, struct cut *c, size_t limit)
{
    char close[SCAN_ENV_MAX];
    size_t n = sp->sc.ops->env_close(&sp->sc, close);
    if (sp->body_len > limit || pd_encode_escaped_len(close, n) > limit - sp->body_len)
        return 1;
    c->nrec++;
    c->len = sp->body_len;
    c->dec = sp->sc.ev_dec;
    c->anchor = dec_anchor_of(&sp->dec, c->dec);
    memcpy(c->close, close, n);
    c->close_len = n;
    sp->sc.ops->env_label(&sp->sc, c->control, sizeof(c->control));
    scan_snapshot(&sp->sc);
    return 0;
}

/* Escapes records into the body from where the chunk starts. Returns 0 after the file's last
 * record, 1 when the next one does not fit (C: the last place that fits), or the sticky
 * error. */
static int fill_chunk(struct pd_splitter *sp, size_t limit, struct cut *c)
{
    struct split_dec *d = &sp->dec;
    int rc, copying = sp->sc.tiled;
    size_t acc = sp->pos;
    uint64_t cum = sp->next_cum; /* escaped length of the text before acc */
    memset(c, 0, sizeof(*c));
    c->len = sp->body_len;
    c->dec = d->win_dec + sp->pos;
    c->anchor = (struct dec_anchor){sp->next_start, c->dec};
    c->known = sp->next_cum_known;
    for (;;) {
        int ev;
        size_t evpos;
        if (sp->pos == d->win_len) {
            if ((rc = pass_seg(sp, acc, sp->pos, limit, copying, &cum)) != 0)
                goto overflow;
            rc = dec_fill(d);
            if (rc < 0)
                return split_set_err(sp, rc, "%s", d->err);
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
        if ((rc = pass_seg(sp, acc, evpos, limit, copying, &cum)) != 0)
            goto overflow;
        acc = evpos;
        if (ev == SCAN_REC_START) {
            copying = 1;
            if (sp->sc.ops->env_open && (rc = env_before(sp, c, limit)) != 0)
                goto overflow;
        } else if (ev == SCAN_REC_END && sp->sc.ops->env_open) {
            copying = 0;
            if ((rc = env_after(sp, c, limit)) != 0)
                goto overflow;
            if (sp->next_record + c->nrec - 1 >= sp->total_records) {
                c->last = 1;
                return 0;
            }
        } else if (ev == SCAN_REC_END) {
            /* The last record goes with the tail after it, or in the next chunk. */
            int last = sp->next_record + c->nrec >= sp->total_records;
            if (last && sp->tail_len &&
                (rc = split_body_escape(sp, sp->suf, sp->tail_len, limit)) != 0)
                goto overflow;
            c->nrec++;
            c->len = sp->body_len;
            c->dec = sp->sc.ev_dec;
            c->anchor = dec_anchor_of(d, c->dec);
            c->cum = cum;
            if (last) {
                c->last = 1;
                end_at_tail(sp, c);
                return 0;
            }
            if ((rc = jump(sp, limit, c)) < 0)
                return split_set_err(sp, rc, "%s",
                                     rc == PD_ENOMEM ? "out of memory" : strerror(-rc));
            if (rc == 1 && c->last)
                return add_tail(sp, limit, c) ? changed(sp) : 0;
            if (rc == 1)
                acc = 0;
            cum = c->cum;
        }
    }
overflow:
    return rc < 0 ? split_set_err(sp, rc, "out of memory") : 1;
}

/* The next record did not fit: the chunk ends after the last one that did. */
static int cut_back(struct pd_splitter *sp, const struct cut *c)
{
    struct split_dec *d = &sp->dec;
    if (c->nrec == 0) {
        char a[64];
        return split_set_err(
            sp, PD_ETOOBIG,
            "record %llu at byte %llu does not fit in max_body %llu with the text "
            "repeated in every chunk (%s); raise max_body or split the record upstream",
            (unsigned long long)sp->next_record, (unsigned long long)sp->next_start,
            (unsigned long long)sp->max_body,
            split_size_words(PD_ENCODE_BODY_OVERHEAD + sp->pre_esc + sp->suf_esc, a, sizeof(a)));
    }
    sp->body_len = c->len;
    /* The scanner read past the cut: start the next chunk from the cut again. */
    if (c->dec >= d->win_dec && c->dec <= d->win_dec + d->win_len) {
        sp->pos = (size_t)(c->dec - d->win_dec);
        scan_resume(&sp->sc, 1);
    } else {
        sp->positioned = 0;
    }
    return 0;
}

static int make_chunk(struct pd_splitter *sp, struct pd_chunk *out)
{
    struct cut c;
    int rc;
    if (!sp->positioned) {
        dec_seek(&sp->dec, sp->next_start);
        sp->pos = 0;
        scan_resume(&sp->sc, sp->next_start != sp->area_orig);
        sp->positioned = 1;
    }
    size_t limit = (size_t)(sp->max_body - TAIL_LEN - sp->suf_esc);
    sp->body_len = 0;
    /* A chunk of a file that is cut fills about max_body: room for it at once, instead of
     * doubling from 64 KiB and copying the body at each step. */
    if (split_body_reserve(sp, (size_t)sp->max_body) < 0 ||
        split_body_raw(sp, PD_ENCODE_BODY_HEAD, HEAD_LEN) < 0 ||
        split_body_escape(sp, sp->pre, sp->pre_len, limit) < 0)
        return split_set_err(sp, PD_ENOMEM, "out of memory");
    rc = fill_chunk(sp, limit, &c);
    if (rc == 1)
        rc = cut_back(sp, &c);
    if (rc < 0)
        return rc;
    /* The closing text: an enveloped format's trailers, then what follows the tail (suf may be
     * NULL when empty). */
    if (split_body_escape(sp, c.close, c.close_len, (size_t)sp->max_body - TAIL_LEN) != 0 ||
        split_body_escape(sp, sp->tail_len ? sp->suf + sp->tail_len : sp->suf,
                          sp->suf_len - sp->tail_len, (size_t)sp->max_body - TAIL_LEN) != 0 ||
        split_body_raw(sp, PD_ENCODE_BODY_TAIL, TAIL_LEN) < 0)
        return split_set_err(sp, PD_ENOMEM, "out of memory");
    uint64_t end = split_exact(sp, c.anchor, c.dec);
    memset(out, 0, sizeof(*out));
    out->index = sp->next_index++;
    out->start = sp->next_start;
    out->end = end;
    out->records = c.nrec;
    out->first_record = sp->next_record;
    out->last = c.last;
    memcpy(out->control, c.control, sizeof(out->control));
    out->body = sp->body;
    out->body_len = sp->body_len;
    sp->next_start = end;
    sp->next_record += c.nrec;
    sp->next_cum = c.cum;
    sp->next_cum_known = c.known;
    return 1;
}

int pd_split_next(struct pd_splitter *sp, struct pd_chunk *out)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if (sp->err)
        return sp->err;
    if (!sp->prepared && (rc = split_pass1(sp)) < 0)
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
        return split_set_err(sp, PD_ESTATE, "resplit without a chunk to cut again");
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
        sp->next_cum = sp->area_cum;
        sp->next_cum_known = 1;
        return 0;
    }
    /* An envelope depends on the records before the chunk: read the file again up to it. */
    if (sp->sc.ops->env_open)
        return pd_split_seek(sp, sp->last.start, sp->last.index);
    /* Where that chunk began in escaped text is found again at the first indexed record end. */
    sp->next_cum_known = 0;
    sp->next_start = sp->last.start;
    sp->next_index = sp->last.index;
    sp->next_record = sp->last.first_record;
    return split_check_budget(sp);
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
