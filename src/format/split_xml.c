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

/*
 * The state functions of xscan_feed: each takes the byte C at W->i in its state, moves W->i
 * past what it read and returns the event that ends the call, or SCAN_MORE to read on.
 */

/* Text (X_TEXT): inside the root, skipped up to the next '<'; outside it, blanks only. */
static inline int x_text(struct scan_win *w, struct xscan *x, unsigned c)
{
    struct scan *sc = w->sc;
    if (x->depth > 0) {
        const unsigned char *p = memchr(w->b + w->i, '<', w->n - w->i);
        if (!p) {
            w->i = w->n;
            return SCAN_MORE;
        }
        w->i = (size_t)(p - w->b);
    } else if (c != '<') {
        if (!is_ws(c))
            return scan_fail(sc, w->base + w->i,
                             x->root_done ? "text after the end of the root element"
                                          : "text before the root element (is this XML? "
                                            "XML starts with '<')");
        w->i++;
        return SCAN_MORE;
    }
    if (x->depth == 1 && sc->xml_record && !x->area && !x->mark_pending) {
        /* A root child may start here: the records begin here if its name matches. */
        xscan_copy(sc->mark, x);
        x->mark_pending = 1;
        sc->ev_dec = w->base + w->i;
        return SCAN_MARK;
    }
    x->mark_pending = 0;
    x->st = X_LT;
    w->i++;
    return SCAN_MORE;
}

/* The byte C after '<' (X_LT). */
static inline int x_lt(struct scan_win *w, struct xscan *x, unsigned c)
{
    uint64_t at = w->base + w->i;
    if (c == '?') {
        x->st = X_PI, x->dashes = 0;
    } else if (c == '!') {
        x->st = X_BANG, x->bang_len = 0;
    } else if (c == '/') {
        if (x->depth == 0)
            return scan_fail(w->sc, at, "an end tag without a start tag");
        x->st = X_ETAG, x->etag_i = 0;
    } else if (name_start(c)) {
        if (x->depth == 0 && x->root_done)
            return scan_fail(w->sc, at, "a second root element (XML has exactly one)");
        if (x->stack_len + 3 > XML_STACK_BYTES)
            return scan_fail(w->sc, at,
                             "elements nested too deeply (over %d bytes of open element names)",
                             XML_STACK_BYTES);
        x->name_start = x->stack_len;
        x->stack[x->stack_len++] = (uint8_t)c;
        x->st = X_STAG;
    } else {
        return scan_fail(w->sc, at, "'<' not followed by a tag name, '/', '!' or '?'");
    }
    w->i++;
    return SCAN_MORE;
}

/* The byte C of a DOCTYPE declaration (X_DOCTYPE): '>' ends it outside the internal subset's
 * brackets, quotes and comments. */
static inline void x_doctype(struct xscan *x, unsigned c)
{
    if (x->dt_cm) {
        if (c == '-')
            x->dashes = x->dashes < 2 ? x->dashes + 1 : 2;
        else if (c == '>' && x->dashes >= 2)
            x->dt_cm = 0, x->dashes = 0;
        else
            x->dashes = 0;
        return;
    }
    if (x->dt_quote) {
        if (c == x->dt_quote)
            x->dt_quote = 0;
        return;
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
}

/* A start tag's name has ended at W->i: its length goes on the stack. At depth 1 it may name
 * the first record (xml_record), which starts the record area at the mark. */
static inline int x_name_end(struct scan_win *w, struct xscan *x)
{
    struct scan *sc = w->sc;
    uint32_t len = x->stack_len - x->name_start;
    x->stack[x->stack_len++] = (uint8_t)(len & 255);
    x->stack[x->stack_len++] = (uint8_t)(len >> 8);
    x->st = X_ATTRS; /* the byte is read again there */
    if (x->depth == 1 && sc->xml_record && !x->area &&
        record_name_matches(sc, (const char *)x->stack + x->name_start, len)) {
        /* The records start at the mark: the state there is the area's start. */
        x->area = 1;
        xscan_copy(sc->snap, sc->mark);
        ((struct xscan *)sc->snap)->area = 1;
        sc->have_snap = 1;
        sc->at_mark = 1;
        sc->ev_dec = w->base + w->i;
        return SCAN_AREA_START;
    }
    return SCAN_MORE;
}

/* A start tag's name (X_STAG), at its byte C or the one after it. */
static inline int x_stag(struct scan_win *w, struct xscan *x, unsigned c)
{
    if (name_char(c)) {
        /* The rest of the name at once, in locals (stores to the stack may alias B, which
         * would reload everything). */
        const unsigned char *b = w->b;
        size_t i = w->i, n = w->n;
        uint32_t len = x->stack_len;
        do {
            if (len + 3 > XML_STACK_BYTES) {
                x->stack_len = len, w->i = i;
                return scan_fail(w->sc, w->base + i, "element name too long or nesting too deep");
            }
            x->stack[len++] = b[i++];
        } while (i < n && name_char(b[i]));
        x->stack_len = len, w->i = i;
        return SCAN_MORE;
    }
    if (!is_ws(c) && c != '/' && c != '>')
        return scan_fail(w->sc, w->base + w->i, "invalid character '%c' in an element name",
                         c >= 0x20 && c < 0x7f ? c : '?');
    return x_name_end(w, x);
}

/* A start tag's '>' has been read: the element is open, text follows. */
static inline int x_open(struct scan_win *w, struct xscan *x)
{
    x->depth++;
    x->st = X_TEXT;
    if (x->depth == 1 && !w->sc->xml_record) {
        x->area = 1;
        w->sc->ev_dec = w->base + w->i;
        w->sc->at_mark = 0;
        return SCAN_AREA_START;
    }
    return SCAN_MORE;
}

/* Between attributes (X_ATTRS), at the byte C: blanks, the tag's end or the next name. */
static inline int x_attrs(struct scan_win *w, struct xscan *x, unsigned c)
{
    if (is_ws(c)) {
        w->i++;
        return SCAN_MORE;
    }
    if (c == '/') {
        x->st = X_SLASH, w->i++;
        return SCAN_MORE;
    }
    if (c == '>') {
        w->i++;
        return x_open(w, x);
    }
    if (!name_start(c))
        return scan_fail(w->sc, w->base + w->i, "invalid character '%c' in a start tag",
                         c >= 0x20 && c < 0x7f ? c : '?');
    x->st = X_ANAME, w->i++;
    return SCAN_MORE;
}

/* Right after an attribute's closing quote (X_AFTER_AVAL), at the byte C. */
static inline int x_after_aval(struct scan_win *w, struct xscan *x, unsigned c)
{
    if (is_ws(c)) {
        x->st = X_ATTRS, w->i++;
        return SCAN_MORE;
    }
    if (c != '/' && c != '>')
        return scan_fail(w->sc, w->base + w->i, "missing whitespace between attributes");
    return x_attrs(w, x, c); /* '/' and '>' end the tag as they do after whitespace */
}

/* Between an attribute's name and its value, at the byte C: blanks, '=' (X_AEQ), blanks and
 * the opening quote (X_AVALQ). */
static inline int x_attr_eq(struct scan_win *w, struct xscan *x, unsigned c)
{
    if (is_ws(c)) {
        w->i++;
        return SCAN_MORE;
    }
    if (x->st == X_AEQ) {
        if (c != '=')
            return scan_fail(w->sc, w->base + w->i, "attribute without '=' and a quoted value");
        x->st = X_AVALQ;
    } else {
        if (c != '"' && c != '\'')
            return scan_fail(w->sc, w->base + w->i, "attribute value not in quotes");
        x->quote = (uint8_t)c, x->st = X_AVAL;
    }
    w->i++;
    return SCAN_MORE;
}

/* An attribute's name (X_ANAME): the rest of it at once, then on to the '='. */
static inline int x_aname(struct scan_win *w, struct xscan *x)
{
    const unsigned char *b = w->b;
    size_t i = w->i, n = w->n;
    while (i < n && name_char(b[i]))
        i++;
    w->i = i;
    if (i == n)
        return SCAN_MORE;
    x->st = X_AEQ;
    return x_attr_eq(w, x, b[i]);
}

/* An attribute's value (X_AVAL): skipped to its closing quote at once. */
static inline int x_aval(struct scan_win *w, struct xscan *x)
{
    const unsigned char *b = w->b;
    size_t i = w->i, n = w->n;
    while (i < n && b[i] != x->quote && b[i] != '<')
        i++;
    w->i = i;
    if (i == n)
        return SCAN_MORE;
    if (b[i] == '<')
        return scan_fail(w->sc, w->base + i, "'<' inside an attribute value (write &lt;)");
    x->st = X_AFTER_AVAL, w->i++;
    return SCAN_MORE;
}

/* The byte C after '/' in a start tag (X_SLASH): an empty element opens and closes at once. */
static inline int x_slash(struct scan_win *w, struct xscan *x, unsigned c)
{
    if (c != '>')
        return scan_fail(w->sc, w->base + w->i, "'/' in a start tag not followed by '>'");
    uint64_t at = w->base + w->i++;
    x->stack_len = x->name_start;
    return element_closed(w->sc, x, at) ? SCAN_REC_END : SCAN_MORE;
}

/* An end tag (X_ETAG, X_ETAG_WS after its name), at the byte C: the open element's name. */
static inline int x_etag(struct scan_win *w, struct xscan *x, unsigned c)
{
    uint32_t len;
    const char *top = top_name(x, &len);
    uint64_t at = w->base + w->i;
    if (x->st == X_ETAG && name_char(c)) {
        do {
            if (x->etag_i >= len || (unsigned char)top[x->etag_i] != w->b[w->i]) {
                at = w->base + w->i;
                goto mismatch;
            }
            x->etag_i++, w->i++;
        } while (w->i < w->n && name_char(w->b[w->i]));
        return SCAN_MORE;
    }
    if (is_ws(c)) {
        x->st = X_ETAG_WS, w->i++;
        return SCAN_MORE;
    }
    if (c != '>' || x->etag_i != len)
        goto mismatch;
    w->i++;
    x->stack_len -= len + 2;
    x->depth--;
    return element_closed(w->sc, x, at) ? SCAN_REC_END : SCAN_MORE;
mismatch:
    return scan_fail(w->sc, at, "an end tag does not match the open element <%.*s>",
                     (int)(len > 200 ? 200 : len), top);
}

/* Runs the state functions above over B[*POS..N) until an event or the window's end. */
static int xscan_feed(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos)
{
    struct xscan *x = sc->u;
    struct scan_win w = {sc, b, n, *pos, base, SCAN_MORE};
    while (w.ev == SCAN_MORE && w.i < n) {
        unsigned c = b[w.i];
        switch (x->st) {
        case X_TEXT: w.ev = x_text(&w, x, c); break;
        case X_LT: w.ev = x_lt(&w, x, c); break;
        case X_PI:
            if (c == '>' && x->dashes)
                x->st = X_TEXT;
            x->dashes = c == '?';
            w.i++;
            break;
        case X_BANG:
            if ((w.ev = bang_byte(sc, x, c, base + w.i)) == SCAN_MORE)
                w.i++;
            break;
        case X_COMMENT: w.i = skip_to_close(x, &x->dashes, '-', b, w.i, n); break;
        case X_CDATA: w.i = skip_to_close(x, &x->brackets, ']', b, w.i, n); break;
        case X_DOCTYPE: x_doctype(x, c), w.i++; break;
        case X_STAG: w.ev = x_stag(&w, x, c); break;
        case X_AFTER_AVAL: w.ev = x_after_aval(&w, x, c); break;
        case X_ATTRS: w.ev = x_attrs(&w, x, c); break;
        case X_ANAME: w.ev = x_aname(&w, x); break;
        case X_AVAL: w.ev = x_aval(&w, x); break;
        case X_AEQ: case X_AVALQ: w.ev = x_attr_eq(&w, x, c); break;
        case X_SLASH: w.ev = x_slash(&w, x, c); break;
        case X_ETAG: case X_ETAG_WS: w.ev = x_etag(&w, x, c); break;
        default: w.i++; break;
        }
    }
    *pos = w.i;
    return w.ev;
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
