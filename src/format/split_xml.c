/*
 * The XML record scanner of the splitter: a push tokenizer for the structure of an XML 1.0
 * document (elements, attributes, comments, CDATA, processing instructions, DOCTYPE with an
 * internal subset) that finds where each child element of the root begins and ends.
 *
 * It checks what makes a chunk well formed when cut from a well-formed file: tags close in
 * order (names kept in a bounded stack, no recursion), one root, markup terminated, '<' not
 * in attribute values, no text outside the root. Entities are never expanded or resolved.
 */
#include "split_internal.h"

#include "pd_error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

enum {
    X_TEXT, X_LT, X_PI, X_BANG, X_COMMENT, X_CDATA, X_DOCTYPE, X_STAG, X_ATTRS, X_ANAME,
    X_AEQ, X_AVALQ, X_AVAL, X_AFTER_AVAL, X_SLASH, X_ETAG, X_ETAG_WS,
};

static int is_ws(unsigned c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static inline int name_start(unsigned c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || c >= 0x80;
}

static inline int name_char(unsigned c)
{
    return name_start(c) || (c >= '0' && c <= '9') || c == '-' || c == '.';
}

/* Copies only the used part of the name stack: snapshots are taken often before the area. */
#define XML_STACK_BYTES 65536

struct xscan {
    uint8_t st, quote, bang_len, dashes, brackets, dt_quote, dt_cm, root_done, area;
    uint8_t mark_pending, empty_tag, rec_name_matched;
    char bang[8];
    uint32_t dt_depth, dt_last4;
    uint32_t depth;
    uint32_t name_start; /* offset of the name being read in stack */
    uint32_t stack_len;  /* names, each followed by its 2-byte length */
    uint32_t etag_i;     /* end tag: bytes of the expected name matched so far */
    uint8_t stack[XML_STACK_BYTES];
};

/* Copies the used part of a state: the fixed fields and the names on the stack. */
static void xscan_copy(void *dst, const void *src)
{
    const struct xscan *x = src;
    memcpy(dst, src, offsetof(struct xscan, stack) + x->stack_len);
}

static void xscan_reset(struct scan *sc)
{
    struct xscan *x = sc->u;
    memset(x, 0, offsetof(struct xscan, stack));
    x->st = X_TEXT;
}

/* The name of the innermost open element (or the one being read), and its length. */
static const char *top_name(const struct xscan *x, uint32_t *len)
{
    *len = (uint32_t)x->stack[x->stack_len - 2] | (uint32_t)x->stack[x->stack_len - 1] << 8;
    return (const char *)x->stack + x->stack_len - 2 - *len;
}

/* An element closed at AT (its '>'): text follows. Returns 1 when that ends a record. */
static int element_closed(struct scan *sc, struct xscan *x, uint64_t at)
{
    x->st = X_TEXT;
    if (x->depth == 0) {
        x->root_done = 1;
    } else if (x->depth == 1 && x->area) {
        sc->ev_dec = at + 1;
        return 1;
    }
    return 0;
}

static int record_name_matches(const struct scan *sc, const char *name, uint32_t len)
{
    size_t want = strlen(sc->xml_record);
    if (len == want && !memcmp(name, sc->xml_record, want))
        return 1;
    const char *colon = memchr(name, ':', len);
    if (colon && !strchr(sc->xml_record, ':')) {
        uint32_t local = (uint32_t)(name + len - colon - 1);
        return local == want && !memcmp(colon + 1, sc->xml_record, want);
    }
    return 0;
}

/*
 * Inside a comment or a CDATA section, which ends with two CLOSE bytes and '>' (COUNT: the
 * CLOSE bytes just seen, at most 2). Returns where to go on: other text is skipped up to the
 * next CLOSE byte at once.
 */
static inline size_t skip_to_close(struct xscan *x, uint8_t *count, unsigned char close,
                                   const unsigned char *b, size_t i, size_t n)
{
    unsigned c = b[i];
    if (c == close) {
        if (*count < 2)
            (*count)++;
    } else if (c == '>' && *count >= 2) {
        x->st = X_TEXT;
    } else {
        *count = 0;
        const unsigned char *p = memchr(b + i, close, n - i);
        return p ? (size_t)(p - b) : n;
    }
    return i + 1;
}

/* The byte C (at AT) after "<!": one more of "--", "[CDATA[" or "DOCTYPE". Returns SCAN_MORE
 * or SCAN_ERROR. */
static int bang_byte(struct scan *sc, struct xscan *x, unsigned c, uint64_t at)
{
    /* Their first bytes differ, so the one that matched the first byte is the only
     * candidate, and each later byte is checked as it comes. */
    static const char kinds[3][8] = {"--", "[CDATA[", "DOCTYPE"};
    static const uint8_t klen[3] = {2, 7, 7};
    int prefix = 0;
    x->bang[x->bang_len++] = (char)c;
    for (int k = 0; k < 3; k++) {
        size_t kl = klen[k];
        if (x->bang_len <= kl && kinds[k][0] == x->bang[0] &&
            (unsigned char)kinds[k][x->bang_len - 1] == c) {
            prefix = 1;
            if (x->bang_len == kl) {
                x->st = k == 0 ? X_COMMENT : k == 1 ? X_CDATA : X_DOCTYPE;
                x->dashes = 0, x->brackets = 0, x->dt_quote = 0, x->dt_cm = 0;
                x->dt_depth = 0, x->dt_last4 = 0;
            }
        }
    }
    if (!prefix)
        return scan_fail(sc, at, "'<!' not followed by '--', '[CDATA[' or 'DOCTYPE'");
    if (x->st == X_CDATA && x->depth == 0)
        return scan_fail(sc, at, "CDATA outside the root element");
    if (x->st == X_DOCTYPE && (x->depth > 0 || x->root_done))
        return scan_fail(sc, at, "DOCTYPE after the root element started");
    return SCAN_MORE;
}

static int xscan_feed(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos)
{
    struct xscan *x = sc->u;
    size_t i = *pos;
    int ev = SCAN_MORE;
    while (i < n) {
        unsigned c = b[i];
        uint64_t at = base + i;
        switch (x->st) {
        case X_TEXT:
            if (x->depth > 0) {
                const unsigned char *p = memchr(b + i, '<', n - i);
                if (!p) {
                    i = n;
                    continue;
                }
                i = (size_t)(p - b), c = '<', at = base + i;
            } else if (c != '<') {
                if (!is_ws(c)) {
                    ev = scan_fail(sc, at, x->root_done ? "text after the end of the root element"
                                                   : "text before the root element (is this XML? "
                                                     "XML starts with '<')");
                    goto out;
                }
                i++;
                continue;
            }
            if (x->depth == 1 && sc->xml_record && !x->area && !x->mark_pending) {
                /* A root child may start here: the records begin here if its name matches. */
                xscan_copy(sc->mark, x);
                x->mark_pending = 1;
                sc->ev_dec = at;
                ev = SCAN_MARK;
                goto out;
            }
            x->mark_pending = 0;
            x->st = X_LT;
            i++;
            continue;
        case X_LT:
            if (c == '?') {
                x->st = X_PI, x->dashes = 0;
            } else if (c == '!') {
                x->st = X_BANG, x->bang_len = 0;
            } else if (c == '/') {
                if (x->depth == 0) {
                    ev = scan_fail(sc, at, "an end tag without a start tag");
                    goto out;
                }
                x->st = X_ETAG, x->etag_i = 0;
            } else if (name_start(c)) {
                if (x->depth == 0 && x->root_done) {
                    ev = scan_fail(sc, at, "a second root element (XML has exactly one)");
                    goto out;
                }
                if (x->stack_len + 3 > XML_STACK_BYTES) {
                    ev = scan_fail(sc, at, "elements nested too deeply (over %d bytes of open element names)",
                              XML_STACK_BYTES);
                    goto out;
                }
                x->name_start = x->stack_len;
                x->stack[x->stack_len++] = (uint8_t)c;
                x->st = X_STAG;
            } else {
                ev = scan_fail(sc, at, "'<' not followed by a tag name, '/', '!' or '?'");
                goto out;
            }
            i++;
            continue;
        case X_PI:
            if (c == '>' && x->dashes)
                x->st = X_TEXT;
            x->dashes = c == '?';
            i++;
            continue;
        case X_BANG:
            if ((ev = bang_byte(sc, x, c, at)) != SCAN_MORE)
                goto out;
            i++;
            continue;
        case X_COMMENT:
            i = skip_to_close(x, &x->dashes, '-', b, i, n);
            continue;
        case X_CDATA:
            i = skip_to_close(x, &x->brackets, ']', b, i, n);
            continue;
        case X_DOCTYPE:
            i++;
            if (x->dt_cm) {
                if (c == '-')
                    x->dashes = x->dashes < 2 ? x->dashes + 1 : 2;
                else if (c == '>' && x->dashes >= 2)
                    x->dt_cm = 0, x->dashes = 0;
                else
                    x->dashes = 0;
                continue;
            }
            if (x->dt_quote) {
                if (c == x->dt_quote)
                    x->dt_quote = 0;
                continue;
            }
            x->dt_last4 = x->dt_last4 << 8 | c;
            if (x->dt_last4 == ((uint32_t)'<' << 24 | (uint32_t)'!' << 16 | '-' << 8 | '-')) {
                x->dt_cm = 1, x->dashes = 0;
            } else if (c == '"' || c == '\'') {
                x->dt_quote = (uint8_t)c;
            } else if (c == '[') {
                x->dt_depth++;
            } else if (c == ']') {
                if (x->dt_depth)
                    x->dt_depth--;
            } else if (c == '>' && x->dt_depth == 0) {
                x->st = X_TEXT;
            }
            continue;
        case X_STAG:
            if (name_char(c)) {
                /* The rest of the name at once, its length in a local (stores to the stack
                 * may alias B, which would reload everything). */
                uint32_t len = x->stack_len;
                do {
                    if (len + 3 > XML_STACK_BYTES) {
                        x->stack_len = len;
                        ev = scan_fail(sc, base + i, "element name too long or nesting too deep");
                        goto out;
                    }
                    x->stack[len++] = b[i++];
                } while (i < n && name_char(b[i]));
                x->stack_len = len;
                continue;
            }
            if (!is_ws(c) && c != '/' && c != '>') {
                ev = scan_fail(sc, at, "invalid character '%c' in an element name", c >= 0x20 && c < 0x7f ? c : '?');
                goto out;
            }
            {
                uint32_t len = x->stack_len - x->name_start;
                x->stack[x->stack_len++] = (uint8_t)(len & 255);
                x->stack[x->stack_len++] = (uint8_t)(len >> 8);
                if (x->depth == 1 && sc->xml_record && !x->area &&
                    record_name_matches(sc, (const char *)x->stack + x->name_start, len)) {
                    /* The records start at the mark: the state there is the area's start. */
                    x->area = 1;
                    xscan_copy(sc->snap, sc->mark);
                    ((struct xscan *)sc->snap)->area = 1;
                    sc->have_snap = 1;
                    sc->at_mark = 1;
                    sc->ev_dec = at;
                    x->st = X_ATTRS;
                    ev = SCAN_AREA_START;
                    goto out; /* C is read again in X_ATTRS */
                }
            }
            x->st = X_ATTRS;
            continue;
        case X_AFTER_AVAL:
            if (is_ws(c)) {
                x->st = X_ATTRS, i++;
                continue;
            }
            if (c != '/' && c != '>') {
                ev = scan_fail(sc, at, "missing whitespace between attributes");
                goto out;
            }
            /* '/' and '>' end the tag as they do after whitespace */
            /* fall through */
        case X_ATTRS:
            if (is_ws(c)) {
                i++;
                continue;
            }
            if (c == '/') {
                x->st = X_SLASH, i++;
                continue;
            }
            if (c == '>') {
                i++;
                goto open_element;
            }
            if (!name_start(c)) {
                ev = scan_fail(sc, at, "invalid character '%c' in a start tag", c >= 0x20 && c < 0x7f ? c : '?');
                goto out;
            }
            x->st = X_ANAME, i++;
            continue;
        case X_ANAME:
            while (i < n && name_char(b[i]))
                i++;
            if (i == n)
                continue;
            c = b[i], at = base + i;
            x->st = X_AEQ;
            /* fall through */
        case X_AEQ:
            if (is_ws(c)) {
                i++;
                continue;
            }
            if (c != '=') {
                ev = scan_fail(sc, at, "attribute without '=' and a quoted value");
                goto out;
            }
            x->st = X_AVALQ, i++;
            continue;
        case X_AVALQ:
            if (is_ws(c)) {
                i++;
                continue;
            }
            if (c != '"' && c != '\'') {
                ev = scan_fail(sc, at, "attribute value not in quotes");
                goto out;
            }
            x->quote = (uint8_t)c, x->st = X_AVAL, i++;
            continue;
        case X_AVAL:
            while (i < n && b[i] != x->quote && b[i] != '<')
                i++;
            if (i == n)
                continue;
            if (b[i] == '<') {
                ev = scan_fail(sc, base + i, "'<' inside an attribute value (write &lt;)");
                goto out;
            }
            x->st = X_AFTER_AVAL, i++;
            continue;
        case X_SLASH:
            if (c != '>') {
                ev = scan_fail(sc, at, "'/' in a start tag not followed by '>'");
                goto out;
            }
            i++;
            x->stack_len = x->name_start; /* an empty element opens and closes at once */
            if (element_closed(sc, x, at)) {
                ev = SCAN_REC_END;
                goto out;
            }
            continue;
        case X_ETAG:
        case X_ETAG_WS: {
            uint32_t len;
            const char *top = top_name(x, &len);
            if (x->st == X_ETAG && name_char(c)) {
                do {
                    if (x->etag_i >= len || (unsigned char)top[x->etag_i] != b[i]) {
                        at = base + i;
                        goto mismatch;
                    }
                    x->etag_i++, i++;
                } while (i < n && name_char(b[i]));
                continue;
            }
            if (is_ws(c)) {
                x->st = X_ETAG_WS, i++;
                continue;
            }
            if (c != '>' || x->etag_i != len)
                goto mismatch;
            i++;
            x->stack_len -= len + 2;
            x->depth--;
            if (element_closed(sc, x, at)) {
                ev = SCAN_REC_END;
                goto out;
            }
            continue;
        mismatch:
            ev = scan_fail(sc, at, "an end tag does not match the open element <%.*s>", (int)(len > 200 ? 200 : len), top);
            goto out;
        }
        default:
            i++;
            continue;
        }
    open_element:
        x->depth++;
        x->st = X_TEXT;
        if (x->depth == 1 && !sc->xml_record) {
            x->area = 1;
            sc->ev_dec = base + i;
            sc->at_mark = 0;
            ev = SCAN_AREA_START;
            goto out;
        }
    }
out:
    *pos = i;
    return ev;
}

static int xscan_end(struct scan *sc, uint64_t eof_dec)
{
    struct xscan *x = sc->u;
    if (x->st != X_TEXT)
        return scan_fail(sc, eof_dec, "the file ends inside a tag, comment, CDATA section or declaration");
    if (x->depth > 0) {
        uint32_t len;
        const char *top = top_name(x, &len);
        return scan_fail(sc, eof_dec, "the file ends before element <%.*s> is closed (truncated?)",
                    (int)(len > 200 ? 200 : len), top);
    }
    if (!x->root_done)
        return scan_fail(sc, eof_dec, "the file holds no root element");
    if (sc->xml_record && !x->area) {
        sc->structural = 1; /* well formed, only not splittable as configured: may go whole */
        return scan_fail(sc, eof_dec, "no <%s> element directly inside the root element (xml_record)",
                    sc->xml_record);
    }
    return SCAN_DONE;
}

/*
 * The declaration is read before the decoder is chosen (its encoding names the charset) and
 * again in the decoded text (its encoding value is rewritten to UTF-8), so it takes bytes and
 * looks at ASCII only. Anything that is not plainly a declaration is "none": the scanner then
 * treats it as the processing instruction it looks like, and the file is read as UTF-8.
 */
int xml_decl_parse(const unsigned char *s, size_t n, struct xml_decl *d)
{
    size_t i = 5;
    memset(d, 0, sizeof(*d));
    if (n < 6 || memcmp(s, "<?xml", 5) || !is_ws(s[5]))
        return 0;
    for (;;) {
        size_t before_ws = i;
        while (i < n && is_ws(s[i]))
            i++;
        if (i + 1 < n && s[i] == '?' && s[i + 1] == '>') {
            d->end = i + 2;
            return 1;
        }
        if (i == before_ws) /* pseudo-attributes are separated by whitespace */
            return 0;
        size_t name = i;
        while (i < n && s[i] >= 'a' && s[i] <= 'z')
            i++;
        size_t name_len = i - name;
        while (i < n && is_ws(s[i]))
            i++;
        if (!name_len || i >= n || s[i] != '=')
            return 0;
        i++;
        while (i < n && is_ws(s[i]))
            i++;
        if (i >= n || (s[i] != '"' && s[i] != '\''))
            return 0;
        unsigned char quote = s[i++];
        size_t value = i;
        while (i < n && s[i] != quote && s[i] != '<' && s[i] != '>')
            i++;
        if (i >= n || s[i] != quote)
            return 0;
        if (name_len == 8 && !memcmp(s + name, "encoding", 8)) {
            d->enc_off = value;
            d->enc_len = i - value;
        }
        i++;
    }
}

/* A chunk starts inside the root, in the record area, with no mark to wait for. */
static void xscan_resume(struct scan *sc, int after_record)
{
    struct xscan *x = sc->u;
    (void)after_record;
    x->mark_pending = 0;
    x->area = 1;
}

const struct pd_scan_ops pd_scan_xml = {
    .state_size = sizeof(struct xscan),
    .tiled = 1,
    .reset = xscan_reset,
    .area_at_start = scan_never,
    .feed = xscan_feed,
    .end = xscan_end,
    .copy = xscan_copy,
    .resume = xscan_resume,
};
