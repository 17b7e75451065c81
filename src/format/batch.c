/*
 * Several small files in one request body (the contract is in include/pd_batch.h).
 *
 * Each file is cut into three texts: its opening (what every file of the batch must share and
 * what the body carries once: "[" for JSON, the header rows for CSV, everything up to the end
 * of the root start tag for XML), its records (what the body carries for every file), and its
 * closing ("]", the root end tag). The body is built escaped as files are added, so its length
 * is known exactly after every file (escaping is byte-wise: the escaped length of a text is
 * the sum of the escaped lengths of its pieces).
 */
#include "pd_batch.h"

#include "pd_encode.h"
#include "pd_error.h"
#include "pd_format.h"
#include "pd_mem.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define HEAD_LEN (sizeof(PD_ENCODE_BODY_HEAD) - 1)
#define TAIL_LEN (sizeof(PD_ENCODE_BODY_TAIL) - 1)

struct pd_batch {
    struct pd_batch_opts o;
    const struct pd_format *f; /* the format's registry entry: its cutter and separator */
    char *open, *close; /* the first file's opening and closing texts */
    size_t open_len, close_len, close_esc;
    char *body; /* head + escaped opening + escaped records; the closing is added at take */
    size_t body_len, body_cap;
    size_t count;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool all_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_blank(s[i]))
            return false;
    return true;
}

/* The line ending a text uses (its first one), "\n" when it has none. */
static const char *eol_of(const char *s, size_t n)
{
    const char *nl = memchr(s, '\n', n);
    return nl && nl > s && nl[-1] == '\r' ? "\r\n" : "\n";
}

static const char *find(const char *s, size_t n, const char *needle)
{
    return memmem(s, n, needle, strlen(needle));
}

/* JSON: the elements between the outer brackets of a top-level array. */
int pd_cut_json(const char *t, size_t n, unsigned header, struct pd_format_parts *p)
{
    (void)header;
    size_t a = 0, b = n;
    while (a < n && is_blank(t[a]))
        a++;
    while (b > a && is_blank(t[b - 1]))
        b--;
    if (b - a < 2 || t[a] != '[' || t[b - 1] != ']' || all_blank(t + a + 1, b - a - 2))
        return PD_EPARSE;
    p->open = t + a, p->open_len = 1;
    p->recs = t + a + 1, p->recs_len = b - a - 2;
    p->close = t + b - 1, p->close_len = 1;
    return 0;
}

/* NDJSON and lines: the whole text is records. */
int pd_cut_lines(const char *t, size_t n, unsigned header, struct pd_format_parts *p)
{
    (void)header;
    if (all_blank(t, n))
        return PD_EPARSE;
    p->recs = t, p->recs_len = n;
    p->eol = eol_of(t, n);
    return 0;
}

/* CSV: the first HEADER rows (quoted fields may hold line breaks) open, the rest are rows. */
int pd_cut_csv(const char *t, size_t n, unsigned header, struct pd_format_parts *p)
{
    size_t i = 0;
    bool quoted = false;
    unsigned rows = 0;
    for (; i < n && rows < header; i++) {
        if (t[i] == '"')
            quoted = !quoted;
        else if (t[i] == '\n' && !quoted)
            rows++;
    }
    if (rows < header || all_blank(t + i, n - i))
        return PD_EPARSE; /* no rows after the header: nothing to add */
    p->open = t, p->open_len = i;
    p->recs = t + i, p->recs_len = n - i;
    p->eol = i >= 2 && t[i - 2] == '\r' ? "\r\n" : "\n"; /* as the header ends */
    return 0;
}

/* XML helpers: skip what may stand outside the root (blanks, comments, PIs, DOCTYPE). */
static size_t skip_misc(const char *t, size_t n, size_t i, bool doctype)
{
    for (;;) {
        while (i < n && is_blank(t[i]))
            i++;
        if (i + 1 < n && t[i] == '<' && t[i + 1] == '?') {
            const char *e = find(t + i, n - i, "?>");
            if (!e)
                return n + 1;
            i = (size_t)(e - t) + 2;
        } else if (i + 3 < n && !memcmp(t + i, "<!--", 4)) {
            const char *e = find(t + i + 4, n - i - 4, "-->");
            if (!e)
                return n + 1;
            i = (size_t)(e - t) + 3;
        } else if (doctype && i + 8 < n && !memcmp(t + i, "<!DOCTYPE", 9)) {
            /* Up to the '>' outside quotes and outside the internal subset [...]. */
            int depth = 0;
            char q = 0;
            for (i += 9; i < n; i++) {
                char c = t[i];
                if (q) {
                    if (c == q)
                        q = 0;
                } else if (c == '"' || c == '\'') {
                    q = c;
                } else if (c == '[') {
                    depth++;
                } else if (c == ']') {
                    depth--;
                } else if (c == '>' && depth <= 0) {
                    break;
                }
            }
            if (i >= n)
                return n + 1;
            i++;
        } else {
            return i;
        }
    }
}

/* XML: the prolog and root start tag open; the root's content is records; its end tag closes. */
int pd_cut_xml(const char *t, size_t n, unsigned header, struct pd_format_parts *p)
{
    (void)header;
    size_t i = skip_misc(t, n, 0, true), name_start, name_len;
    char q = 0;

    if (i >= n || t[i] != '<')
        return PD_EPARSE;
    name_start = ++i;
    while (i < n && !is_blank(t[i]) && t[i] != '>' && t[i] != '/')
        i++;
    name_len = i - name_start;
    for (; i < n; i++) {
        if (q) {
            if (t[i] == q)
                q = 0;
        } else if (t[i] == '"' || t[i] == '\'') {
            q = t[i];
        } else if (t[i] == '>') {
            break;
        }
    }
    if (i >= n || name_len == 0 || t[i - 1] == '/')
        return PD_EPARSE; /* <root/>: no records */
    size_t open_end = i + 1;
    /* The root's end tag: the last "</name" after which only blanks, comments and PIs follow
     * (a comment after the root may itself hold the text). */
    for (size_t e = n; e > open_end;) {
        const char *hit = NULL;
        for (size_t k = e; k-- > open_end;) {
            if (k + 2 + name_len <= n && t[k] == '<' && t[k + 1] == '/' &&
                !memcmp(t + k + 2, t + name_start, name_len)) {
                hit = t + k;
                break;
            }
        }
        if (!hit)
            break;
        size_t k = (size_t)(hit - t), j = k + 2 + name_len;
        while (j < n && is_blank(t[j]))
            j++;
        if (j < n && t[j] == '>' && skip_misc(t, n, j + 1, false) == n) {
            if (all_blank(t + open_end, k - open_end))
                return PD_EPARSE;
            p->open = t, p->open_len = open_end;
            p->recs = t + open_end, p->recs_len = k - open_end;
            p->close = hit, p->close_len = n - k;
            return 0;
        }
        e = k;
    }
    return PD_EPARSE;
}

/* The format's cutter, from the registry. */
static int cut(const struct pd_format *f, unsigned header_lines, const char *t, size_t n,
               struct pd_format_parts *p)
{
    memset(p, 0, sizeof(*p));
    /* The splitter drops a UTF-8 byte-order mark; so does the batch. */
    if (n >= 3 && !memcmp(t, "\xEF\xBB\xBF", 3))
        t += 3, n -= 3;
    return f->cut(t, n, header_lines, p);
}

int pd_batch_check(const struct pd_batch_opts *opts, const char *text, size_t len)
{
    const struct pd_format *f = pd_format_get(opts->format);
    struct pd_format_parts p;

    if (!f || !f->cut)
        return PD_ECONFIG;
    return cut(f, opts->header_lines, text, len, &p);
}

int pd_batch_create(const struct pd_batch_opts *opts, struct pd_batch **out)
{
    struct pd_batch *b;
    const struct pd_format *f = pd_format_get(opts->format);

    *out = NULL;
    if (!f || !f->cut)
        return PD_ECONFIG;
    if (!(b = calloc(1, sizeof(*b))))
        return PD_ENOMEM;
    b->o = *opts;
    b->f = f;
    if (!b->o.max_files)
        b->o.max_files = 1;
    *out = b;
    return 0;
}

static void reset(struct pd_batch *b)
{
    free(b->open);
    free(b->close);
    b->open = b->close = NULL;
    b->open_len = b->close_len = b->close_esc = 0;
    b->body_len = 0;
    b->count = 0;
}

void pd_batch_destroy(struct pd_batch **bp)
{
    if (!bp || !*bp)
        return;
    reset(*bp);
    free((*bp)->body);
    free(*bp);
    *bp = NULL;
}

static size_t esc(const char *s, size_t n)
{
    return n ? pd_encode_escaped_len(s, n) : 0;
}

static void put(struct pd_batch *b, const char *s, size_t n)
{
    if (n)
        b->body_len += pd_encode_escape(b->body + b->body_len, s, n);
}

int pd_batch_add(struct pd_batch *b, const char *text, size_t len)
{
    struct pd_format_parts p;
    int rc = cut(b->f, b->o.header_lines, text, len, &p);
    if (rc)
        return rc;

    bool first = b->count == 0;
    if (!first) {
        if (b->count >= b->o.max_files)
            return PD_ETOOBIG;
        /* The same opening means the same root, so the same end tag: the batch's closing
         * is the first file's (comments after another file's root are not carried). */
        if (p.open_len != b->open_len || (p.open_len && memcmp(p.open, b->open, p.open_len)))
            return PD_ESTATE;
    }
    /* Records join with the format's separator (',' in JSON); lines and rows each end with a
     * line ending. */
    const char *sep = first ? "" : b->f->batch_sep;
    bool add_eol = p.eol && p.recs_len && p.recs[p.recs_len - 1] != '\n';
    size_t close_esc = first ? esc(p.close, p.close_len) : b->close_esc;
    size_t start = first ? HEAD_LEN + esc(p.open, p.open_len) : b->body_len;
    size_t grown = start + esc(sep, strlen(sep)) + esc(p.recs, p.recs_len) +
                   (add_eol ? esc(p.eol, strlen(p.eol)) : 0);
    if (grown + close_esc + TAIL_LEN > b->o.max_body)
        return first ? PD_EPARSE : PD_ETOOBIG;
    if (pd_reserve(&b->body, &b->body_cap, grown + close_esc + TAIL_LEN, 4096, b->o.max_body))
        return PD_ENOMEM;
    if (first) {
        b->open = malloc(p.open_len + 1);
        b->close = malloc(p.close_len + 1);
        if (!b->open || !b->close) {
            reset(b);
            return PD_ENOMEM;
        }
        if (p.open_len)
            memcpy(b->open, p.open, p.open_len);
        if (p.close_len)
            memcpy(b->close, p.close, p.close_len);
        b->open_len = p.open_len;
        b->close_len = p.close_len;
        b->close_esc = close_esc;
        memcpy(b->body, PD_ENCODE_BODY_HEAD, HEAD_LEN);
        b->body_len = HEAD_LEN;
        put(b, p.open, p.open_len);
    }
    put(b, sep, strlen(sep));
    put(b, p.recs, p.recs_len);
    if (add_eol)
        put(b, p.eol, strlen(p.eol));
    b->count++;
    return 0;
}

size_t pd_batch_count(const struct pd_batch *b)
{
    return b->count;
}

size_t pd_batch_body_len(const struct pd_batch *b)
{
    return b->count ? b->body_len + b->close_esc + TAIL_LEN : 0;
}

char *pd_batch_take_body(struct pd_batch *b, size_t *len)
{
    *len = 0;
    if (!b->count)
        return NULL;
    /* add() reserved room for the closing and the tail. */
    put(b, b->close, b->close_len);
    memcpy(b->body + b->body_len, PD_ENCODE_BODY_TAIL, TAIL_LEN);
    *len = b->body_len + TAIL_LEN;
    char *out = b->body;
    b->body = NULL;
    b->body_cap = 0;
    reset(b);
    return out;
}
