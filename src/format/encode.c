/*
 * JSON string escaping for the request body (see include/pd_encode.h for the contract).
 *
 * Speed matters because every byte of every file passes through here. Bytes that need an
 * escape are found 16 at a time with SSE2 (always there on x86-64), else a machine word of 8
 * at a time with the classic "has byte less than / equal to" bit tricks; PD_ENCODE_PORTABLE
 * forces the word path, so it can be tested on x86 too. Debian 12 packages no C library for
 * this (simdutf is only a Rust crate there), so it is written here.
 */
#include "pd_encode.h"

#include "pd_error.h"

#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) && !defined(PD_ENCODE_PORTABLE)
#include <emmintrin.h>
#define PD_ENCODE_SSE2 1
#endif

#define ONES UINT64_C(0x0101010101010101)
#define HIGHS UINT64_C(0x8080808080808080)

/* Extra bytes each input byte costs once escaped: 0 plain, 1 for \n style, 5 for \u00XX. */
static const unsigned char extra[256] = {
    5, 5, 5, 5, 5, 5, 5, 5, 1, 1, 1, 5, 1, 1, 5, 5, /* \b \t \n, \f \r */
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, /**/
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /* '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /**/
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, /**/
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, /* '\\' */
};

/* The letter after the backslash for the two-byte escapes. */
static const char short_form['\\' + 1] = {['"'] = '"', ['\\'] = '\\', ['\b'] = 'b', ['\t'] = 't',
                                          ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'};

static inline unsigned lowest_bit(uint64_t m)
{
#if defined(__GNUC__)
    return (unsigned)__builtin_ctzll(m);
#else
    unsigned n = 0;
    for (; !(m & 1); m >>= 1)
        n++;
    return n;
#endif
}

#ifdef PD_ENCODE_SSE2
#define BLOCK 16

static inline __m128i load16(const unsigned char *p)
{
    return _mm_loadu_si128((const __m128i *)(const void *)p);
}

/* 0xff in each byte that is < 0x20 (unsigned: saturating x - 0x1f is 0 only there). */
static inline __m128i control_bytes(__m128i v)
{
    return _mm_cmpeq_epi8(_mm_subs_epu8(v, _mm_set1_epi8(0x1f)), _mm_setzero_si128());
}

static inline __m128i quote_bytes(__m128i v)
{
    return _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')), _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
}

/* Bit K set when byte K of the 64 at P needs an escape. */
static inline uint64_t special_mask(const unsigned char *p)
{
    uint64_t m = 0;
    for (int k = 0; k < 4; k++) {
        __m128i v = load16(p + 16 * k);
        m |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_or_si128(control_bytes(v), quote_bytes(v))) << (16 * k);
    }
    return m;
}

static inline void copy16(char *d, const unsigned char *p)
{
    _mm_storeu_si128((__m128i *)(void *)d, load16(p));
}

/* extra[] for 16 bytes at once, one count per byte lane. */
static inline __m128i block_extra(const unsigned char *p)
{
    __m128i v = load16(p);
    __m128i ctl = control_bytes(v);
    /* \b \t \n \f \r are 8..13 without 11: their escape is short, the other controls' long */
    __m128i from8 = _mm_sub_epi8(v, _mm_set1_epi8(8));
    __m128i in8to13 = _mm_cmpeq_epi8(_mm_subs_epu8(from8, _mm_set1_epi8(5)), _mm_setzero_si128());
    __m128i shrt = _mm_andnot_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8(11)), in8to13);
    __m128i one = _mm_and_si128(_mm_or_si128(ctl, quote_bytes(v)), _mm_set1_epi8(1));
    __m128i four = _mm_and_si128(_mm_andnot_si128(shrt, ctl), _mm_set1_epi8(4));
    return _mm_or_si128(one, four);
}

size_t pd_encode_escaped_len(const void *src, size_t len)
{
    const unsigned char *s = src;
    size_t total = len, i = 0;
    while (i + BLOCK <= len) {
        /* Counts add up per byte lane; 50 blocks of at most 5 each still fit in a byte. */
        __m128i acc = _mm_setzero_si128();
        for (int r = 0; r < 50 && i + BLOCK <= len; r++, i += BLOCK)
            acc = _mm_add_epi8(acc, block_extra(s + i));
        __m128i sum = _mm_sad_epu8(acc, _mm_setzero_si128());
        total += (size_t)_mm_cvtsi128_si32(sum) + (size_t)_mm_extract_epi16(sum, 4);
    }
    for (; i < len; i++)
        total += extra[s[i]];
    return total;
}
#else
#define BLOCK 8

/* Little-endian whatever the machine, so byte K is always bits 8K..8K+7. */
static inline uint64_t load64(const unsigned char *p)
{
    uint64_t w = 0;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    memcpy(&w, p, sizeof(w));
#else
    for (int k = 7; k >= 0; k--)
        w = w << 8 | p[k];
#endif
    return w;
}

/* High bit of a byte set when it equals zero; exact, no carry runs into the next byte. */
static inline uint64_t zero_bytes(uint64_t w)
{
    return ~(((w & ~HIGHS) + ONES * 0x7f) | w);
}

/* High bit of each byte that is < 0x20, '"' or '\\', exactly (no false positives). */
static inline uint64_t word_special(uint64_t w)
{
    uint64_t lt = ~(((w & ~HIGHS) + ONES * (0x80 - 0x20)) | w);
    return (lt | zero_bytes(w ^ (ONES * '"')) | zero_bytes(w ^ (ONES * '\\'))) & HIGHS;
}

/* Bit K set when byte K of the 64 at P needs an escape. The multiply gathers the eight
 * high bits of a word into its top byte, in byte order (the bits never overlap or carry). */
static inline uint64_t special_mask(const unsigned char *p)
{
    uint64_t m = 0;
    for (int k = 0; k < 8; k++) {
        uint64_t w = word_special(load64(p + 8 * k));
        if (w) /* most words of text have none: skip the multiply */
            m |= ((w >> 7) * UINT64_C(0x0102040810204080) >> 56) << (8 * k);
    }
    return m;
}

static inline void copy16(char *d, const unsigned char *p)
{
    memcpy(d, p, 16);
}

size_t pd_encode_escaped_len(const void *src, size_t len)
{
    const unsigned char *s = src;
    size_t total = len, i = 0;
    for (; i + BLOCK <= len; i += BLOCK) {
        if (word_special(load64(s + i))) {
            for (size_t k = 0; k < BLOCK; k++)
                total += extra[s[i + k]];
        }
    }
    for (; i < len; i++)
        total += extra[s[i]];
    return total;
}
#endif

static inline char *put_escape(char *d, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    d[0] = '\\';
    if (extra[c] == 1) {
        d[1] = short_form[c];
        return d + 2;
    }
    memcpy(d + 1, "u00", 3);
    d[4] = hex[c >> 4];
    d[5] = hex[c & 15];
    return d + 6;
}

/* Copies at least N bytes (and at least 16): whole 16-byte stores, the last one running
 * past N. The caller makes sure the overrun stays inside both buffers. */
static inline void copy_run(char *d, const unsigned char *p, size_t n)
{
    for (size_t k = 0;; k += 16) {
        copy16(d + k, p + k);
        if (k + 16 >= n)
            return;
    }
}

size_t pd_encode_escape(char *dst, const void *src, size_t len)
{
    const unsigned char *s = src;
    char *d = dst;
    size_t i = 0;
    /* Specials are found 64 bytes at a time, then each is escaped in turn with the clean
     * run before it copied in 16-byte stores. A mask that wide keeps the branches
     * predictable on JSON (a quote every few bytes) and on text (a newline every line).
     * The stores may run past what they need, but each covers at most 64 bytes from input I
     * on, and the loop keeps 64 bytes of input after I (so also 64 of output still to come):
     * no load or store leaves SRC or DST. */
    while (i + 128 <= len) {
        size_t base = i;
        for (uint64_t m = special_mask(s + base); m; m &= m - 1) {
            size_t k = base + lowest_bit(m);
            copy_run(d, s + i, k - i);
            d = put_escape(d + (k - i), s[k]);
            i = k + 1;
        }
        copy_run(d, s + i, base + 64 - i);
        d += base + 64 - i;
        i = base + 64;
    }
    for (; i < len; i++) {
        unsigned char c = s[i];
        if (!extra[c])
            *d++ = (char)c;
        else
            d = put_escape(d, c);
    }
    return (size_t)(d - dst);
}

int pd_encode_body(const void *payload, size_t len, char *dst, size_t cap, size_t *out_len)
{
    size_t need = PD_ENCODE_BODY_OVERHEAD + pd_encode_escaped_len(payload, len);
    *out_len = need;
    if (need > cap)
        return PD_ETOOBIG;
    size_t head = sizeof(PD_ENCODE_BODY_HEAD) - 1;
    memcpy(dst, PD_ENCODE_BODY_HEAD, head);
    size_t n = pd_encode_escape(dst + head, payload, len);
    memcpy(dst + head + n, PD_ENCODE_BODY_TAIL, sizeof(PD_ENCODE_BODY_TAIL) - 1);
    return 0;
}
