/*
 * The splitter's input side: reads a file with pread through fixed buffers and hands out
 * windows of checked UTF-8, either the file's own bytes (strict UTF-8: invalid sequences and
 * NUL rejected with their offset) or the output of iconv for another charset.
 *
 * Which of the two, and which charset, is decided once when the file is opened: the
 * configured encoding, or with encoding = auto the file's first bytes (a byte-order mark, and
 * for XML the declaration, as XML 1.0 appendix F describes). Only the first XML_DECL_MAX
 * bytes are looked at for that.
 *
 * For iconv the input goes in slices of at most DEC_SLICE bytes and the file offset of each
 * slice's start is kept with the window, so any decoded offset can be mapped back to the
 * exact file offset by converting that one slice again one character at a time. That is
 * what keeps chunk ranges in file offsets for transcoded files.
 */
#include "split_internal.h"

#include "pd_error.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
#define NO_CD ((iconv_t)-1)
#define CK_MAX (DEC_BUF / 8 + 16)

/* LEN bytes at OFF of the file (fewer at its end): from memory when the caller read it already. */
static ssize_t read_at(const struct split_dec *d, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    if (d->mem) {
        got = off < d->mem_len ? d->mem_len - (size_t)off : 0;
        got = got < len ? got : len;
        memcpy(buf, d->mem + off, got);
        return (ssize_t)got;
    }
    while (got < len) {
        ssize_t r = pread(d->fd, (char *)buf + got, len - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -errno;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Upper-case letters and digits only: "utf-16le" and "UTF16LE" compare equal. */
static void squash(const char *s, char *out, size_t outsz)
{
    size_t k = 0;
    for (; *s && k + 1 < outsz; s++)
        if (isalnum((unsigned char)*s))
            out[k++] = (char)toupper((unsigned char)*s);
    out[k] = '\0';
}

int dec_is_utf8_name(const char *name, size_t len)
{
    char buf[64], sq[64];
    if (len >= sizeof(buf))
        return 0;
    memcpy(buf, name, len);
    buf[len] = '\0';
    squash(buf, sq, sizeof(sq));
    return !strcmp(sq, "UTF8");
}

static int open_utf8(struct split_dec *d, uint64_t data_start)
{
    d->charset = "UTF-8";
    d->win = d->raw;
    d->data_start = data_start;
    return 0;
}

/* iconv mode for CS, a stateless charset of one byte order; the text starts at DATA_START.
 * PD_ECONFIG when iconv does not know CS (the caller says why in its own words). */
static int open_iconv(struct split_dec *d, const char *cs, uint64_t data_start)
{
    d->data_start = data_start;
    d->cd = iconv_open("UTF-8", cs);
    d->cd2 = iconv_open("UTF-8", cs);
    if (d->cd == NO_CD || d->cd2 == NO_CD)
        return PD_ECONFIG;
    d->win = malloc(DEC_BUF);
    d->ck_orig = malloc(CK_MAX * sizeof(*d->ck_orig));
    d->ck_win = malloc(CK_MAX * sizeof(*d->ck_win));
    if (!d->win || !d->ck_orig || !d->ck_win)
        return PD_ENOMEM;
    return 0;
}

/* A UTF-16/32 form found from the file's first bytes: the name is also the one for messages. */
static int open_found(struct split_dec *d, const char *cs, uint64_t data_start)
{
    d->charset = cs;
    return open_iconv(d, cs, data_start);
}

/* An encoding name as XML 1.0 allows it: [A-Za-z] ([A-Za-z0-9._] | '-')*. It also keeps
 * iconv's "//IGNORE" and "//TRANSLIT" suffixes, which would drop or alter text, out. */
static int xml_enc_name(const unsigned char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int letter = (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z');
        int other = (s[i] >= '0' && s[i] <= '9') || s[i] == '.' || s[i] == '_' || s[i] == '-';
        if (!letter && (i == 0 || !other))
            return 0;
    }
    return n > 0;
}

/* The first bytes that say a charset: SKIP of them are not text (a mark); NULL: UTF-8. */
struct sig {
    const char *bytes;
    size_t len;
    const char *charset;
    uint64_t skip;
};

/* UTF-32LE's mark begins like UTF-16LE's, so the 4-byte marks are tried first. */
static const struct sig byte_order_marks[] = {
    {"\xEF\xBB\xBF", 3, NULL, 3}, /* UTF-8: the mark is dropped */
    {"\xFF\xFE\0\0", 4, "UTF-32LE", 4},
    {"\0\0\xFE\xFF", 4, "UTF-32BE", 4},
    {"\xFF\xFE", 2, "UTF-16LE", 2},
    {"\xFE\xFF", 2, "UTF-16BE", 2},
};
/* Without a mark an XML file starts with '<' (most often "<?"), whatever its width. */
static const struct sig xml_starts[] = {
    {"\0\0\0<", 4, "UTF-32BE", 0},
    {"<\0\0\0", 4, "UTF-32LE", 0},
    {"\0<\0?", 4, "UTF-16BE", 0},
    {"<\0?\0", 4, "UTF-16LE", 0},
};
#define NMARKS (sizeof(byte_order_marks) / sizeof(byte_order_marks[0]))
#define NSTARTS (sizeof(xml_starts) / sizeof(xml_starts[0]))

static const struct sig *find_sig(const struct sig *sigs, size_t n, const unsigned char *h,
                                  size_t hn)
{
    for (size_t i = 0; i < n; i++)
        if (hn >= sigs[i].len && !memcmp(h, sigs[i].bytes, sigs[i].len))
            return &sigs[i];
    return NULL;
}

/*
 * encoding = auto: a byte-order mark, then for XML the first characters and the declaration
 * (XML 1.0 appendix F), else strict UTF-8. H holds the file's first HN bytes.
 */
static int open_auto(struct split_dec *d, const unsigned char *h, size_t hn, int xml, char *msg,
                     size_t msgsz)
{
    const struct sig *sg = find_sig(byte_order_marks, NMARKS, h, hn);
    if (!sg && xml)
        sg = find_sig(xml_starts, NSTARTS, h, hn);
    if (sg)
        return sg->charset ? open_found(d, sg->charset, sg->skip) : open_utf8(d, sg->skip);
    if (!xml)
        return open_utf8(d, 0);
    struct xml_decl x;
    if (!xml_decl_parse(h, hn, &x) || !x.enc_len ||
        dec_is_utf8_name((const char *)h + x.enc_off, x.enc_len))
        return open_utf8(d, 0);
    /* An 8-bit declaration names the file's charset. */
    const unsigned char *v = h + x.enc_off;
    int shown = x.enc_len > 60 ? 60 : (int)x.enc_len;
    char name[64], sq[64];
    if (!xml_enc_name(v, x.enc_len) || x.enc_len >= sizeof(name)) {
        snprintf(msg, msgsz,
                 "the XML declaration's encoding \"%.*s\" at byte %zu is not a charset name; set "
                 "encoding = to the file's charset for this watch",
                 shown, (const char *)v, x.enc_off);
        return PD_EENCODING;
    }
    memcpy(name, v, x.enc_len);
    name[x.enc_len] = '\0';
    squash(name, sq, sizeof(sq));
    if (!strncmp(sq, "UTF16", 5) || !strncmp(sq, "UTF32", 5) || !strncmp(sq, "UCS2", 4) ||
        !strncmp(sq, "UCS4", 4)) {
        snprintf(msg, msgsz,
                 "the XML declaration says encoding \"%s\" at byte %zu, but the file has no "
                 "byte-order mark and the declaration itself is 8-bit text; correct the "
                 "declaration, or set encoding = to the file's charset for this watch",
                 name, x.enc_off);
        return PD_EENCODING;
    }
    int rc = open_iconv(d, name, 0);
    if (rc == PD_ECONFIG) {
        snprintf(msg, msgsz,
                 "the XML declaration names encoding \"%s\" at byte %zu, a charset this system "
                 "does not know; set encoding = to the file's charset for this watch (iconv -l "
                 "lists the names it knows)",
                 name, x.enc_off);
        return PD_EENCODING;
    }
    snprintf(d->charset_buf, sizeof(d->charset_buf), "%s (named by the XML declaration)", name);
    d->charset = d->charset_buf;
    return rc;
}

int dec_open(struct split_dec *d, int fd, const void *mem, size_t mem_len, const char *encoding,
             int xml, char *msg, size_t msgsz)
{
    char sq[64];
    const char *cs = NULL;
    memset(d, 0, sizeof(*d));
    d->fd = fd;
    d->mem = mem;
    d->mem_len = mem_len;
    d->cd = d->cd2 = NO_CD;
    d->raw = malloc(DEC_BUF);
    if (!d->raw)
        return PD_ENOMEM;
    /* The head goes into the read buffer, which the first dec_fill() overwrites. */
    unsigned char *head = d->raw;
    ssize_t hn = read_at(d, head, XML_DECL_MAX, 0);
    if (hn < 0) {
        snprintf(msg, msgsz, "cannot read the file: %s", strerror((int)-hn));
        return (int)hn;
    }
    squash(encoding ? encoding : "", sq, sizeof(sq));
    if (!*sq || !strcmp(sq, "AUTO"))
        return open_auto(d, head, (size_t)hn, xml, msg, msgsz);
    if (!strcmp(sq, "UTF8")) {
        /* A config that still says UTF-8 (the default before auto) meets a declared charset:
         * should the file not be UTF-8, the error says what to set. */
        struct xml_decl x;
        size_t bom = hn >= 3 && !memcmp(head, "\xEF\xBB\xBF", 3) ? 3 : 0;
        if (xml && xml_decl_parse(head + bom, (size_t)hn - bom, &x) && x.enc_len &&
            xml_enc_name(head + bom + x.enc_off, x.enc_len) &&
            !dec_is_utf8_name((const char *)head + bom + x.enc_off, x.enc_len))
            snprintf(d->fix, sizeof(d->fix),
                     "its XML declaration says encoding \"%.*s\": set encoding = auto for this "
                     "watch to read the charset it declares",
                     x.enc_len > 60 ? 60 : (int)x.enc_len, (const char *)head + bom + x.enc_off);
        return open_utf8(d, bom);
    }
    /* Byte-order marks: resolve UTF-16/32 to one byte order so that decoding can restart
     * anywhere without the state the BOM would otherwise leave in iconv. */
    int le4 = hn >= 4 && head[0] == 0xFF && head[1] == 0xFE && !head[2] && !head[3];
    int be4 = hn >= 4 && !head[0] && !head[1] && head[2] == 0xFE && head[3] == 0xFF;
    int le2 = hn >= 2 && head[0] == 0xFF && head[1] == 0xFE;
    int be2 = hn >= 2 && head[0] == 0xFE && head[1] == 0xFF;
    uint64_t start = 0;
    if (!strcmp(sq, "UTF16") || !strcmp(sq, "UCS2")) {
        cs = le2 ? "UTF-16LE" : "UTF-16BE";
        start = le2 || be2 ? 2 : 0;
    } else if (!strcmp(sq, "UTF32") || !strcmp(sq, "UCS4")) {
        cs = le4 ? "UTF-32LE" : "UTF-32BE";
        start = le4 || be4 ? 4 : 0;
    } else {
        cs = encoding;
        if ((!strcmp(sq, "UTF16LE") && le2) || (!strcmp(sq, "UTF16BE") && be2))
            start = 2;
        else if ((!strcmp(sq, "UTF32LE") && le4) || (!strcmp(sq, "UTF32BE") && be4))
            start = 4;
    }
    d->charset = encoding;
    int rc = open_iconv(d, cs, start);
    if (rc == PD_ECONFIG)
        snprintf(msg, msgsz, "unknown encoding '%s' (run 'iconv -l' for the names this system knows)",
                 encoding);
    return rc;
}

void dec_close(struct split_dec *d)
{
    if (d->cd != NO_CD)
        iconv_close(d->cd);
    if (d->cd2 != NO_CD)
        iconv_close(d->cd2);
    if (d->win != d->raw)
        free(d->win);
    free(d->raw);
    free(d->ck_orig);
    free(d->ck_win);
    memset(d, 0, sizeof(*d));
    d->cd = d->cd2 = NO_CD;
}

long dec_read(const struct split_dec *d, void *buf, size_t len, uint64_t orig)
{
    return (long)read_at(d, buf, len, orig);
}

void dec_seek(struct split_dec *d, uint64_t orig)
{
    if (orig < d->data_start)
        orig = d->data_start;
    d->raw_base = orig;
    d->raw_len = d->raw_pos = 0;
    d->raw_eof = 0;
    d->carry = 0;
    d->win_len = 0;
    d->win_dec = d->next_dec = orig;
    d->nck = 0;
    if (d->cd != NO_CD)
        iconv(d->cd, NULL, NULL, NULL, NULL);
}

static int dec_fail(struct split_dec *d, int code, uint64_t off, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int dec_fail(struct split_dec *d, int code, uint64_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(d->err, sizeof(d->err), fmt, ap);
    va_end(ap);
    d->err_off = off;
    return code;
}

/*
 * Checks B[0..n) as UTF-8. Returns the length of the complete, valid prefix; *bad is 1 when
 * it stops at an invalid sequence, 2 at a NUL, 0 when only an incomplete sequence follows.
 * Written here: Debian 12 packages no C UTF-8 validator of this speed (simdutf is not
 * packaged; only a Rust crate is, and simdjson's validator is C++). ASCII, most of the text,
 * is skipped 16 or 8 bytes at a time; other sequences are checked one by one.
 */
static size_t utf8_prefix(const unsigned char *b, size_t n, int *bad)
{
    size_t i = 0;
    *bad = 0;
    while (i < n) {
#ifdef __SSE2__
        /* ASCII without NUL, sixteen bytes at a time (SSE2 is always there on x86-64). */
        if (i + 16 <= n) {
            __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
            if (!_mm_movemask_epi8(_mm_or_si128(v, _mm_cmpeq_epi8(v, _mm_setzero_si128())))) {
                i += 16;
                continue;
            }
        }
#endif
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, b + i, 8);
            if (!((w | ((w - ONES) & ~w)) & HIGHS)) {
                i += 8;
                continue;
            }
        }
        unsigned c = b[i];
        if (c < 0x80) {
            if (!c) {
                *bad = 2;
                return i;
            }
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF)
            len = 2;
        else if (c >= 0xE0 && c <= 0xEF)
            len = 3, lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
        else if (c >= 0xF0 && c <= 0xF4)
            len = 4, lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
        else {
            *bad = 1;
            return i;
        }
        for (size_t k = 1; k < len; k++) {
            if (i + k >= n)
                return i; /* incomplete: maybe more follows */
            unsigned cc = b[i + k];
            if (cc < (k == 1 ? lo : 0x80) || cc > (k == 1 ? hi : 0xBF)) {
                *bad = 1;
                return i;
            }
        }
        i += len;
    }
    return i;
}

static int fill_utf8(struct split_dec *d)
{
    /* The window is the raw buffer itself; bytes of a split sequence move to its front. */
    uint64_t off = d->win_dec + d->win_len;
    if (d->carry)
        memmove(d->raw, d->raw + d->win_len, d->carry);
    ssize_t r = read_at(d, d->raw + d->carry, DEC_BUF - d->carry, off + d->carry);
    if (r < 0)
        return dec_fail(d, (int)r, off, "cannot read the file: %s", strerror((int)-r));
    size_t n = d->carry + (size_t)r;
    d->win_dec = off;
    if (n == 0) {
        d->win_len = 0;
        return 0;
    }
    int bad;
    size_t ok = utf8_prefix(d->raw, n, &bad);
    if (bad == 2)
        return dec_fail(d, PD_EENCODING, off + ok,
                        "a NUL byte at byte %llu: this is a binary file, not text",
                        (unsigned long long)(off + ok));
    if (bad || (ok < n && r == 0) || (ok == 0 && n > 0 && r == 0)) {
        if (off == 0 && n >= 2 &&
            ((d->raw[0] == 0xFF && d->raw[1] == 0xFE) || (d->raw[0] == 0xFE && d->raw[1] == 0xFF)))
            return dec_fail(d, PD_EENCODING, 0,
                            "the file starts with a UTF-16 or UTF-32 byte-order mark, but "
                            "this watch reads UTF-8; set encoding = auto (or UTF-16, UTF-32) "
                            "for this watch");
        return dec_fail(d, PD_EENCODING, off + ok,
                        "invalid UTF-8 at byte %llu (0x%02x): the file is not UTF-8; %s",
                        (unsigned long long)(off + ok), d->raw[ok],
                        d->fix[0] ? d->fix
                                  : "set encoding to its charset (for example encoding = "
                                    "windows-1252)");
    }
    if (ok == 0 && r > 0) /* cannot happen with DEC_BUF > 4, kept for safety */
        return dec_fail(d, PD_EENCODING, off, "invalid UTF-8 at byte %llu", (unsigned long long)off);
    d->win_len = ok;
    d->carry = n - ok;
    d->next_dec = off + ok;
    return 1;
}

static int fill_iconv(struct split_dec *d)
{
    d->win_len = 0;
    d->nck = 0;
    d->win_dec = d->next_dec;
    while (d->nck < CK_MAX && d->win_len + DEC_SLICE * 4 + 16 <= DEC_BUF) {
        if (d->raw_len - d->raw_pos < DEC_SLICE && !d->raw_eof) {
            size_t keep = d->raw_len - d->raw_pos;
            memmove(d->raw, d->raw + d->raw_pos, keep);
            d->raw_base += d->raw_pos;
            d->raw_pos = 0;
            ssize_t r = read_at(d, d->raw + keep, DEC_BUF - keep, d->raw_base + keep);
            if (r < 0)
                return dec_fail(d, (int)r, d->raw_base, "cannot read the file: %s", strerror((int)-r));
            d->raw_len = keep + (size_t)r;
            d->raw_eof = (size_t)r < DEC_BUF - keep;
        }
        size_t avail = d->raw_len - d->raw_pos;
        if (!avail)
            break;
        size_t slice = avail < DEC_SLICE ? avail : DEC_SLICE;
        uint64_t at = d->raw_base + d->raw_pos;
        char *in, *out;
        size_t inleft, outleft, r;
        for (;;) {
            in = (char *)d->raw + d->raw_pos;
            inleft = slice;
            out = (char *)d->win + d->win_len;
            outleft = DEC_BUF - d->win_len;
            r = iconv(d->cd, &in, &inleft, &out, &outleft);
            if (r == (size_t)-1 && errno == EINVAL && inleft == slice && slice < avail) {
                slice = avail < slice + 8 ? avail : slice + 8; /* a character cut by the slice */
                continue;
            }
            break;
        }
        size_t used = slice - inleft;
        size_t made = (size_t)(out - (char *)d->win) - d->win_len;
        if (used) {
            d->ck_orig[d->nck] = at;
            d->ck_win[d->nck] = (uint32_t)d->win_len;
            d->nck++;
        }
        d->raw_pos += used;
        d->win_len += made;
        if (r == (size_t)-1 && errno == EILSEQ)
            return dec_fail(d, PD_EENCODING, at + used,
                            "byte %llu (0x%02x) is not valid %s; check the encoding setting",
                            (unsigned long long)(at + used), d->raw[d->raw_pos], d->charset);
        if (r == (size_t)-1 && errno == EINVAL && !used) {
            if (!d->raw_eof && avail < DEC_SLICE)
                continue; /* the refill above brings the rest of the character */
            return dec_fail(d, PD_EENCODING, at,
                            d->raw_eof ? "the file ends in the middle of a %s character at byte %llu"
                                       : "bytes that are not valid %s at byte %llu",
                            d->charset, (unsigned long long)at);
        }
        if (r == (size_t)-1 && errno == E2BIG)
            break;
    }
    d->next_dec = d->win_dec + d->win_len;
    const unsigned char *z = memchr(d->win, 0, d->win_len);
    if (z) {
        uint64_t orig = 0, dec = d->win_dec + (uint64_t)(z - d->win);
        dec_exact(d, dec_anchor_of(d, dec), dec, &orig);
        return dec_fail(d, PD_EENCODING, orig,
                        "a NUL character at byte %llu: this is a binary file, not text",
                        (unsigned long long)orig);
    }
    return d->win_len > 0;
}

int dec_fill(struct split_dec *d)
{
    return d->cd == NO_CD ? fill_utf8(d) : fill_iconv(d);
}

struct dec_anchor dec_anchor_of(const struct split_dec *d, uint64_t dec)
{
    struct dec_anchor a = {dec, dec};
    if (d->cd == NO_CD)
        return a;
    if (dec == d->win_dec + d->win_len) {
        /* Just past the window: the next slice starts exactly there. */
        a.orig = d->raw_base + d->raw_pos;
        return a;
    }
    size_t lo = 0, hi = d->nck;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (d->win_dec + d->ck_win[mid] <= dec)
            lo = mid;
        else
            hi = mid;
    }
    if (d->nck) {
        a.orig = d->ck_orig[lo];
        a.dec = d->win_dec + d->ck_win[lo];
    }
    return a;
}

int dec_exact(struct split_dec *d, struct dec_anchor a, uint64_t dec, uint64_t *orig)
{
    *orig = a.orig;
    if (d->cd == NO_CD) {
        *orig = dec;
        return 0;
    }
    if (dec == a.dec)
        return 0;
    unsigned char buf[DEC_SLICE * 2 + 16];
    char out[64];
    ssize_t n = read_at(d, buf, sizeof(buf), a.orig);
    if (n < 0)
        return (int)n;
    iconv(d->cd2, NULL, NULL, NULL, NULL);
    size_t p = 0;
    uint64_t made = 0;
    while (made < dec - a.dec && p < (size_t)n) {
        size_t len = 1, r;
        char *in, *o;
        size_t inleft, outleft;
        for (;;) {
            in = (char *)buf + p;
            inleft = len;
            o = out;
            outleft = sizeof(out);
            r = iconv(d->cd2, &in, &inleft, &o, &outleft);
            if (r == (size_t)-1 && errno == EINVAL && p + len < (size_t)n && len < 8) {
                len++;
                continue;
            }
            break;
        }
        if (inleft == len)
            return PD_EENCODING;
        p += len - inleft;
        made += (uint64_t)(o - out);
    }
    *orig = a.orig + p;
    return 0;
}
