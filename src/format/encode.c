/*
 * JSON string escaping for the request body (see include/pd_encode.h for the contract).
 *
 * Speed matters because every byte of every file passes through here. Clean runs are found
 * a machine word at a time with the classic "has byte less than / equal to" bit tricks and
 * copied a word at a time; only words holding a special byte go through the lookup table.
 */
#include "pd_encode.h"

#include "pd_error.h"

#include <stdint.h>
#include <string.h>

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

/* Nonzero when any byte of W is < 0x20, '"' or '\\'. Exact as a yes/no answer. */
static inline uint64_t word_special(uint64_t w)
{
    uint64_t lt = (w - ONES * 0x20) & ~w;
    uint64_t q = w ^ (ONES * '"');
    uint64_t b = w ^ (ONES * '\\');
    q = (q - ONES) & ~q;
    b = (b - ONES) & ~b;
    return (lt | q | b) & HIGHS;
}

static inline uint64_t load64(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

size_t pd_encode_escaped_len(const void *src, size_t len)
{
    const unsigned char *s = src;
    size_t total = len, i = 0;
    while (i + 8 <= len) {
        if (word_special(load64(s + i))) {
            for (size_t k = 0; k < 8; k++)
                total += extra[s[i + k]];
        }
        i += 8;
    }
    for (; i < len; i++)
        total += extra[s[i]];
    return total;
}

static inline char *put_escape(char *d, unsigned char c)
{
    static const char hex[] = "0123456789abcdef";
    static const char short_form[32] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f', ['\r'] = 'r'};
    *d++ = '\\';
    if (c == '"' || c == '\\') {
        *d++ = (char)c;
    } else if (short_form[c]) {
        *d++ = short_form[c];
    } else {
        memcpy(d, "u00", 3);
        d[3] = hex[c >> 4];
        d[4] = hex[c & 15];
        d += 5;
    }
    return d;
}

size_t pd_encode_escape(char *dst, const void *src, size_t len)
{
    const unsigned char *s = src;
    char *d = dst;
    size_t i = 0;
    /* Clean words are stored whole (one 8-byte store); a word with a special byte goes
     * byte by byte. This stays fast both on long plain runs and on JSON, where quotes
     * come every few bytes and per-run memcpy calls would cost more than they save. */
    while (i + 8 <= len) {
        uint64_t w = load64(s + i);
        if (!word_special(w)) {
            memcpy(d, &w, 8);
            d += 8;
            i += 8;
            continue;
        }
#if defined(__GNUC__) && defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* The lowest flagged byte is exact (false positives only sit above a true one).
         * Storing the whole word is safe: this word alone yields more than 8 output bytes. */
        size_t k = (size_t)__builtin_ctzll(word_special(w)) / 8, end = i + 8;
        memcpy(d, &w, 8);
        d += k;
        i += k;
        d = put_escape(d, s[i++]);
        /* the rest of the word byte by byte: dense JSON has more specials close by */
        for (; i < end; i++) {
            unsigned char c = s[i];
            if (!extra[c])
                *d++ = (char)c;
            else
                d = put_escape(d, c);
        }
#else
        for (size_t end = i + 8; i < end; i++) {
            unsigned char c = s[i];
            if (!extra[c])
                *d++ = (char)c;
            else
                d = put_escape(d, c);
        }
#endif
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
