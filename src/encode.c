/*
 * JSON string escaping for the request body (see include/pd_encode.h for the contract).
 *
 * Speed matters because every byte of every file passes through here. Clean runs are found
 * a machine word at a time with the classic "has byte less than / equal to" bit tricks, and
 * then copied with one memcpy; only the rare special bytes go through the lookup table.
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

/* Length of the run of plain bytes at the start of S[0..n). */
static size_t clean_run(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i + 8 <= n && !word_special(load64(s + i)))
        i += 8;
    while (i < n && !extra[s[i]])
        i++;
    return i;
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

size_t pd_encode_escape(char *dst, const void *src, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *s = src;
    char *d = dst;
    size_t i = 0;
    while (i < len) {
        size_t run = clean_run(s + i, len - i);
        memcpy(d, s + i, run);
        d += run;
        i += run;
        if (i == len)
            break;
        unsigned char c = s[i++];
        *d++ = '\\';
        switch (c) {
        case '"': *d++ = '"'; break;
        case '\\': *d++ = '\\'; break;
        case '\n': *d++ = 'n'; break;
        case '\r': *d++ = 'r'; break;
        case '\t': *d++ = 't'; break;
        case '\b': *d++ = 'b'; break;
        case '\f': *d++ = 'f'; break;
        default:
            *d++ = 'u';
            *d++ = '0';
            *d++ = '0';
            *d++ = hex[c >> 4];
            *d++ = hex[c & 15];
            break;
        }
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
