/*
 * The splitter's input side: reads a file with pread through fixed buffers and hands out
 * windows of checked UTF-8, either the file's own bytes (strict UTF-8: invalid sequences and
 * NUL rejected with their offset) or the output of iconv for another charset.
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

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)
#define NO_CD ((iconv_t)-1)
#define CK_MAX (DEC_BUF / 8 + 16)

static ssize_t read_at(int fd, void *buf, size_t len, uint64_t off)
{
    size_t got = 0;
    while (got < len) {
        ssize_t r = pread(fd, (char *)buf + got, len - got, (off_t)(off + got));
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

int dec_open(struct split_dec *d, int fd, const char *encoding, char *msg, size_t msgsz)
{
    unsigned char head[4] = {0};
    char sq[64];
    const char *cs = NULL;
    memset(d, 0, sizeof(*d));
    d->fd = fd;
    d->cd = d->cd2 = NO_CD;
    d->raw = malloc(DEC_BUF);
    if (!d->raw)
        return PD_ENOMEM;
    ssize_t hn = read_at(fd, head, sizeof(head), 0);
    if (hn < 0) {
        snprintf(msg, msgsz, "cannot read the file: %s", strerror((int)-hn));
        return (int)hn;
    }
    squash(encoding ? encoding : "", sq, sizeof(sq));
    if (!*sq || !strcmp(sq, "UTF8")) {
        d->charset = "UTF-8";
        d->win = d->raw;
        if (hn >= 3 && head[0] == 0xEF && head[1] == 0xBB && head[2] == 0xBF)
            d->data_start = 3;
        return 0;
    }
    /* Byte-order marks: resolve UTF-16/32 to one byte order so that decoding can restart
     * anywhere without the state the BOM would otherwise leave in iconv. */
    int le4 = hn >= 4 && head[0] == 0xFF && head[1] == 0xFE && !head[2] && !head[3];
    int be4 = hn >= 4 && !head[0] && !head[1] && head[2] == 0xFE && head[3] == 0xFF;
    int le2 = hn >= 2 && head[0] == 0xFF && head[1] == 0xFE;
    int be2 = hn >= 2 && head[0] == 0xFE && head[1] == 0xFF;
    if (!strcmp(sq, "UTF16") || !strcmp(sq, "UCS2")) {
        cs = le2 ? "UTF-16LE" : "UTF-16BE";
        d->data_start = le2 || be2 ? 2 : 0;
    } else if (!strcmp(sq, "UTF32") || !strcmp(sq, "UCS4")) {
        cs = le4 ? "UTF-32LE" : "UTF-32BE";
        d->data_start = le4 || be4 ? 4 : 0;
    } else {
        cs = encoding;
        if ((!strcmp(sq, "UTF16LE") && le2) || (!strcmp(sq, "UTF16BE") && be2))
            d->data_start = 2;
        else if ((!strcmp(sq, "UTF32LE") && le4) || (!strcmp(sq, "UTF32BE") && be4))
            d->data_start = 4;
    }
    d->charset = encoding;
    d->cd = iconv_open("UTF-8", cs);
    d->cd2 = iconv_open("UTF-8", cs);
    if (d->cd == NO_CD || d->cd2 == NO_CD) {
        snprintf(msg, msgsz, "unknown encoding '%s' (run 'iconv -l' for the names this system knows)",
                 encoding);
        return PD_ECONFIG;
    }
    d->win = malloc(DEC_BUF);
    d->ck_orig = malloc(CK_MAX * sizeof(*d->ck_orig));
    d->ck_win = malloc(CK_MAX * sizeof(*d->ck_win));
    if (!d->win || !d->ck_orig || !d->ck_win)
        return PD_ENOMEM;
    return 0;
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
 */
static size_t utf8_prefix(const unsigned char *b, size_t n, int *bad)
{
    size_t i = 0;
    *bad = 0;
    while (i < n) {
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
    ssize_t r = read_at(d->fd, d->raw + d->carry, DEC_BUF - d->carry, off + d->carry);
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
                            "the file starts with a UTF-16 or UTF-32 byte-order mark; set "
                            "encoding = UTF-16 (or UTF-32) for this watch");
        return dec_fail(d, PD_EENCODING, off + ok,
                        "invalid UTF-8 at byte %llu (0x%02x): the file is not UTF-8; set "
                        "encoding to its charset (for example encoding = windows-1252)",
                        (unsigned long long)(off + ok), d->raw[ok]);
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
            ssize_t r = read_at(d->fd, d->raw + keep, DEC_BUF - keep, d->raw_base + keep);
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
    ssize_t n = read_at(d->fd, buf, sizeof(buf), a.orig);
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
