/*
 * A strict JSON reader for the request bodies patchdrop-mock receives.
 *
 * cJSON is lenient where a real server is not (raw control characters in strings, bytes that
 * are not UTF-8) and it stops a decoded string at the first \u0000. The emulator must catch an
 * encoder bug that Patchworks would reject, and record the payload string exactly, so it reads
 * bodies itself: RFC 8259 grammar, UTF-8 checked byte by byte, surrogate pairs joined, lone
 * surrogates refused, nesting bounded.
 */
#include "mock.h"

#include "pd_error.h"
#include "pd_mem.h"

#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 512

struct buf {
    char *data;
    size_t len, cap;
    bool failed;
};

struct reader {
    const unsigned char *s;
    size_t n, pos;
    int depth;
    const char *what; /* why it stopped */
};

static void buf_put(struct buf *b, const void *src, size_t n)
{
    if (!b || b->failed)
        return;
    if (pd_reserve(&b->data, &b->cap, b->len + n + 1, 64, UINT64_MAX)) {
        b->failed = true;
        return;
    }
    memcpy(b->data + b->len, src, n);
    b->len += n;
    b->data[b->len] = '\0';
}

static void put_utf8(struct buf *b, unsigned long cp)
{
    unsigned char out[4];
    size_t n;
    if (cp < 0x80) {
        out[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        out[0] = (unsigned char)(0xC0 | (cp >> 6));
        out[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        out[0] = (unsigned char)(0xE0 | (cp >> 12));
        out[1] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        out[0] = (unsigned char)(0xF0 | (cp >> 18));
        out[1] = (unsigned char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (unsigned char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_put(b, out, n);
}

static int fail(struct reader *r, const char *what)
{
    r->what = what;
    return PD_EPARSE;
}

static void skip_ws(struct reader *r)
{
    while (r->pos < r->n) {
        unsigned char c = r->s[r->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            break;
        r->pos++;
    }
}

/* Length of the valid UTF-8 sequence at P (1..4), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *p, size_t avail)
{
    unsigned char c = p[0];
    size_t n;
    unsigned long cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF) {
        n = 2;
        cp = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        n = 3;
        cp = c & 0x0F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (avail < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

static int hex4(struct reader *r, unsigned long *v)
{
    if (r->n - r->pos < 4)
        return fail(r, "a \\u escape needs four hex digits");
    unsigned long x = 0;
    for (int i = 0; i < 4; i++) {
        unsigned char c = r->s[r->pos + i];
        x <<= 4;
        if (c >= '0' && c <= '9')
            x |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f')
            x |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            x |= (unsigned long)(c - 'A' + 10);
        else
            return fail(r, "a \\u escape needs four hex digits");
    }
    r->pos += 4;
    *v = x;
    return 0;
}

/* Reads a string starting at its opening quote; decodes it into OUT when OUT is not NULL. */
static int read_string(struct reader *r, struct buf *out)
{
    r->pos++; /* the quote */
    while (r->pos < r->n) {
        unsigned char c = r->s[r->pos];
        if (c == '"') {
            r->pos++;
            if (out)
                buf_put(out, "", 0); /* a terminated buffer even for "" */
            return 0;
        }
        if (c < 0x20)
            return fail(r, "a control character must be escaped inside a string");
        if (c == '\\') {
            if (r->pos + 1 >= r->n)
                return fail(r, "the string is not closed");
            unsigned char e = r->s[r->pos + 1];
            r->pos += 2;
            char ch;
            switch (e) {
            case '"':
                ch = '"';
                break;
            case '\\':
                ch = '\\';
                break;
            case '/':
                ch = '/';
                break;
            case 'b':
                ch = '\b';
                break;
            case 'f':
                ch = '\f';
                break;
            case 'n':
                ch = '\n';
                break;
            case 'r':
                ch = '\r';
                break;
            case 't':
                ch = '\t';
                break;
            case 'u': {
                unsigned long cp, lo;
                if (hex4(r, &cp))
                    return PD_EPARSE;
                if (cp >= 0xDC00 && cp <= 0xDFFF)
                    return fail(r, "a low surrogate escape without a high one");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (r->n - r->pos < 2 || r->s[r->pos] != '\\' || r->s[r->pos + 1] != 'u')
                        return fail(r, "a high surrogate escape without a low one");
                    r->pos += 2;
                    if (hex4(r, &lo))
                        return PD_EPARSE;
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        return fail(r, "a high surrogate escape without a low one");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                }
                put_utf8(out, cp);
                continue;
            }
            default:
                r->pos -= 1;
                return fail(r, "unknown escape in a string");
            }
            buf_put(out, &ch, 1);
            continue;
        }
        size_t k = utf8_len(r->s + r->pos, r->n - r->pos);
        if (!k)
            return fail(r, "invalid UTF-8");
        buf_put(out, r->s + r->pos, k);
        r->pos += k;
    }
    return fail(r, "the string is not closed");
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static int read_number(struct reader *r)
{
    if (r->pos < r->n && r->s[r->pos] == '-')
        r->pos++;
    if (r->pos >= r->n || !is_digit(r->s[r->pos]))
        return fail(r, "a number needs digits");
    if (r->s[r->pos] == '0')
        r->pos++;
    else
        while (r->pos < r->n && is_digit(r->s[r->pos]))
            r->pos++;
    if (r->pos < r->n && r->s[r->pos] == '.') {
        r->pos++;
        if (r->pos >= r->n || !is_digit(r->s[r->pos]))
            return fail(r, "a fraction needs digits");
        while (r->pos < r->n && is_digit(r->s[r->pos]))
            r->pos++;
    }
    if (r->pos < r->n && (r->s[r->pos] == 'e' || r->s[r->pos] == 'E')) {
        r->pos++;
        if (r->pos < r->n && (r->s[r->pos] == '+' || r->s[r->pos] == '-'))
            r->pos++;
        if (r->pos >= r->n || !is_digit(r->s[r->pos]))
            return fail(r, "an exponent needs digits");
        while (r->pos < r->n && is_digit(r->s[r->pos]))
            r->pos++;
    }
    return 0;
}

static int read_word(struct reader *r, const char *word)
{
    size_t k = strlen(word);
    if (r->n - r->pos < k || memcmp(r->s + r->pos, word, k))
        return fail(r, "unexpected character");
    r->pos += k;
    return 0;
}

static int read_value(struct reader *r);

/* Past the opening bracket; 1 when CLOSE follows at once (and is read too). */
static int open_container(struct reader *r, char close)
{
    r->pos++;
    skip_ws(r);
    if (r->pos < r->n && r->s[r->pos] == close) {
        r->pos++;
        return 1;
    }
    return 0;
}

/* After an element or member: 1 past CLOSE, 0 past a comma (another one follows), or
 * PD_EPARSE with UNCLOSED or EXPECTED. */
static int next_item(struct reader *r, char close, const char *unclosed, const char *expected)
{
    skip_ws(r);
    if (r->pos >= r->n)
        return fail(r, unclosed);
    if (r->s[r->pos] == close) {
        r->pos++;
        return 1;
    }
    if (r->s[r->pos] != ',')
        return fail(r, expected);
    r->pos++;
    return 0;
}

static int read_array(struct reader *r)
{
    int rc;
    if (open_container(r, ']'))
        return 0;
    for (;;) {
        if (read_value(r))
            return PD_EPARSE;
        if ((rc = next_item(r, ']', "the array is not closed", "expected , or ] in an array")))
            return rc < 0 ? rc : 0;
    }
}

/*
 * Reads an object. At the top level (TOP not NULL) it also looks at the members: the decoded
 * "payload" string goes to top->data, anything else is noted.
 */
struct top {
    struct buf payload;
    int payload_count;
    bool payload_string;
    char extra_key[64];
    int nkeys;
};

static int read_object(struct reader *r, struct top *top)
{
    if (open_container(r, '}'))
        return 0;
    for (;;) {
        skip_ws(r);
        if (r->pos >= r->n || r->s[r->pos] != '"')
            return fail(r, "expected a member name in quotes");
        struct buf key = {0};
        int rc = read_string(r, top ? &key : NULL);
        if (rc || key.failed) {
            free(key.data);
            return rc ? rc : fail(r, "out of memory");
        }
        bool is_payload = top && key.len == 7 && !memcmp(key.data, "payload", 7);
        if (top && !is_payload && !top->extra_key[0]) {
            size_t k = key.len < sizeof(top->extra_key) - 1 ? key.len : sizeof(top->extra_key) - 1;
            memcpy(top->extra_key, key.data ? key.data : "", k);
            top->extra_key[k] = '\0';
            if (!k)
                strcpy(top->extra_key, "\"\"");
        }
        free(key.data);
        if (top)
            top->nkeys++;
        skip_ws(r);
        if (r->pos >= r->n || r->s[r->pos] != ':')
            return fail(r, "expected : after a member name");
        r->pos++;
        skip_ws(r);
        if (is_payload) {
            top->payload_count++;
            if (r->pos < r->n && r->s[r->pos] == '"') {
                top->payload_string = true;
                top->payload.len = 0;
                if (read_string(r, &top->payload))
                    return PD_EPARSE;
                if (top->payload.failed)
                    return fail(r, "out of memory");
            } else {
                top->payload_string = false;
                if (read_value(r))
                    return PD_EPARSE;
            }
        } else if (read_value(r)) {
            return PD_EPARSE;
        }
        rc = next_item(r, '}', "the object is not closed", "expected , or } in an object");
        if (rc)
            return rc < 0 ? rc : 0;
    }
}

static int read_value(struct reader *r)
{
    skip_ws(r);
    if (r->pos >= r->n)
        return fail(r, "a value is missing");
    if (++r->depth > MAX_DEPTH)
        return fail(r, "nested too deeply");
    int rc;
    switch (r->s[r->pos]) {
    case '{':
        rc = read_object(r, NULL);
        break;
    case '[':
        rc = read_array(r);
        break;
    case '"':
        rc = read_string(r, NULL);
        break;
    case 't':
        rc = read_word(r, "true");
        break;
    case 'f':
        rc = read_word(r, "false");
        break;
    case 'n':
        rc = read_word(r, "null");
        break;
    default:
        rc = read_number(r);
        break;
    }
    r->depth--;
    return rc;
}

static int read_text(struct reader *r, struct top *top)
{
    skip_ws(r);
    int rc;
    if (top && r->pos < r->n && r->s[r->pos] == '{') {
        r->depth = 1;
        rc = read_object(r, top);
    } else {
        rc = read_value(r);
    }
    if (rc)
        return rc;
    skip_ws(r);
    if (r->pos != r->n)
        return fail(r, "text after the JSON value");
    return 0;
}

int mock_json_validate(const char *s, size_t n, size_t *err_off, const char **what)
{
    struct reader r = {.s = (const unsigned char *)s, .n = n};
    int rc = read_text(&r, NULL);
    if (err_off)
        *err_off = r.pos;
    if (what)
        *what = rc ? r.what : NULL;
    return rc;
}

/* Blank as Laravel's TrimStrings + required see it: empty or only PHP's trim() characters. */
static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r' && s[i] != '\v' &&
            s[i] != '\0')
            return false;
    return true;
}

int mock_payload_extract(const char *s, size_t n, struct mock_payload *out)
{
    memset(out, 0, sizeof(*out));
    struct reader r = {.s = (const unsigned char *)s, .n = n};
    struct top top = {0};
    skip_ws(&r);
    bool object = r.pos < r.n && r.s[r.pos] == '{';
    r.pos = 0;
    if (read_text(&r, object ? &top : NULL)) {
        out->status = MOCK_PL_NOT_JSON;
        out->err_off = r.pos;
        out->err_what = r.what;
    } else if (!object) {
        out->status = MOCK_PL_NOT_OBJECT;
    } else if (top.nkeys > top.payload_count || top.payload_count > 1) {
        out->status = MOCK_PL_EXTRA_KEY;
        if (top.extra_key[0])
            memcpy(out->extra_key, top.extra_key, sizeof(out->extra_key));
        else
            strcpy(out->extra_key, "payload");
    } else if (!top.payload_count) {
        out->status = MOCK_PL_MISSING;
    } else if (!top.payload_string) {
        out->status = MOCK_PL_NOT_STRING;
    } else if (is_blank(top.payload.data, top.payload.len)) {
        out->status = MOCK_PL_BLANK;
    } else {
        out->status = MOCK_PL_OK;
        out->data = top.payload.data;
        out->len = top.payload.len;
        top.payload.data = NULL;
    }
    free(top.payload.data);
    return out->status;
}

void mock_payload_cleanup(struct mock_payload *p)
{
    if (!p)
        return;
    free(p->data);
    p->data = NULL;
    p->len = 0;
}
