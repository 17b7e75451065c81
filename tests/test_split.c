/*
 * Tests of the record-aware splitter. Property tests generate files of every format from a
 * seeded PRNG (random records, multi-byte characters at record edges, quotes, newlines in
 * fields, comments and CDATA in XML), split them with budgets around the interesting sizes,
 * and check for every chunk: the body is {"payload": string} and within the budget, the
 * payload is a valid document of its kind, it holds exactly the expected whole records with
 * the repeated text around them, chunks are packed greedily, and ranges tile the file.
 * Then: resume with pd_split_seek, pd_split_resplit, transcoding, deep nesting, and every
 * error with its message.
 */
#include "pd_config.h"
#include "pd_encode.h"
#include "pd_error.h"
#include "pd_split.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <errno.h>
#include <iconv.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cJSON.h>
#include "testlib.h"

/* ---- helpers ---------------------------------------------------------------------------- */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}
static unsigned rn(unsigned n)
{
    return n ? (unsigned)(rnd() % n) : 0;
}

struct sb {
    char *p;
    size_t len, cap;
};
static void sb_add(struct sb *s, const void *d, size_t n)
{
    if (s->len + n + 1 > s->cap) {
        s->cap = (s->len + n + 1) * 2;
        s->p = realloc(s->p, s->cap);
        assert_non_null(s->p);
    }
    if (n)
        memcpy(s->p + s->len, d, n);
    s->len += n;
    s->p[s->len] = '\0';
}
static void sb_str(struct sb *s, const char *str)
{
    sb_add(s, str, strlen(str));
}
static void sb_fmt(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_fmt(struct sb *s, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    sb_add(s, buf, (size_t)n);
}

static char tmpdir[256];

static char *write_file(const char *name, const void *data, size_t len)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
    return path;
}

/* Writes the file NAME and opens a splitter on it with O, which must succeed. Returns the
 * file's path (write_file's buffer). */
static const char *create_on(const char *name, const void *data, size_t len,
                             struct pd_split_opts *o, struct pd_splitter **sp)
{
    const char *path = write_file(name, data, len);
    *sp = NULL;
    assert_int_equal(pd_split_create(-1, path, o, sp), 0);
    return path;
}

/* A generated file: [bom] pre lead rec0 sep0 rec1 ... rec(n-1) suf. */
struct gen {
    int fmt;
    const char *ext, *json_array, *xml_record;
    unsigned header_lines;
    struct sb bom, pre, lead, suf;
    struct sb *recs, *seps;
    size_t n, cap;
    struct sb file;
    uint64_t *rec_end; /* file offset after each record */
    uint64_t area_start;
};

/* An empty generated file of format FMT, named *.EXT. */
static void gen_begin(struct gen *g, int fmt, const char *ext)
{
    memset(g, 0, sizeof(*g));
    g->fmt = fmt;
    g->ext = ext;
}

static struct sb *gen_rec(struct gen *g)
{
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 16;
        g->recs = realloc(g->recs, g->cap * sizeof(*g->recs));
        g->seps = realloc(g->seps, g->cap * sizeof(*g->seps));
    }
    memset(&g->recs[g->n], 0, sizeof(struct sb));
    memset(&g->seps[g->n], 0, sizeof(struct sb));
    return &g->recs[g->n++];
}

static void gen_finish(struct gen *g)
{
    struct sb *f = &g->file;
    f->len = 0;
    sb_add(f, g->bom.p, g->bom.len);
    sb_add(f, g->pre.p, g->pre.len);
    g->area_start = f->len;
    sb_add(f, g->lead.p, g->lead.len);
    g->rec_end = realloc(g->rec_end, (g->n + 1) * sizeof(*g->rec_end));
    for (size_t i = 0; i < g->n; i++) {
        sb_add(f, g->recs[i].p, g->recs[i].len);
        g->rec_end[i] = f->len;
        if (i + 1 < g->n)
            sb_add(f, g->seps[i].p, g->seps[i].len);
    }
    sb_add(f, g->suf.p, g->suf.len);
}

static void gen_free(struct gen *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->recs[i].p);
        free(g->seps[i].p);
    }
    free(g->recs);
    free(g->seps);
    free(g->bom.p);
    free(g->pre.p);
    free(g->lead.p);
    free(g->suf.p);
    free(g->file.p);
    free(g->rec_end);
    memset(g, 0, sizeof(*g));
}

static size_t esc(const struct sb *s)
{
    return pd_encode_escaped_len(s->p, s->len);
}

/* Body length of a chunk holding records [i, j). */
static size_t body_len_for(const struct gen *g, size_t i, size_t j)
{
    size_t n = PD_ENCODE_BODY_OVERHEAD + esc(&g->pre) + esc(&g->suf);
    for (size_t k = i; k < j; k++) {
        n += esc(&g->recs[k]);
        if (k + 1 < j)
            n += esc(&g->seps[k]);
    }
    return n;
}

static size_t min_budget(const struct gen *g)
{
    size_t m = 0;
    for (size_t k = 0; k < g->n; k++) {
        size_t b = body_len_for(g, k, k + 1);
        if (b > m)
            m = b;
    }
    return m;
}

static size_t whole_budget(const struct gen *g)
{
    return PD_ENCODE_BODY_OVERHEAD + pd_encode_escaped_len(g->file.p + g->bom.len, g->file.len - g->bom.len);
}

/* Pieces of text: multi-byte characters are frequent and often sit at the edges. */
static const char *const mb[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9d\x84\x9e", "\xe4\xb8\xad"};

static void rand_text(struct sb *s, unsigned maxlen, const char *extra)
{
    unsigned n = rn(maxlen + 1);
    if (rn(2))
        sb_str(s, mb[rn(4)]);
    for (unsigned i = 0; i < n; i++) {
        unsigned r = rn(20);
        if (r < 3)
            sb_str(s, mb[rn(4)]);
        else if (r < 5 && extra && *extra)
            sb_add(s, &extra[rn((unsigned)strlen(extra))], 1);
        else if (r < 6)
            sb_str(s, " ");
        else
            sb_fmt(s, "%c", 'a' + rn(26));
    }
    if (rn(2))
        sb_str(s, mb[rn(4)]);
}

static void json_ws(struct sb *s, int newlines)
{
    static const char *const ws[] = {"", " ", "\t", "\n", "\r\n", "  "};
    unsigned n = rn(3);
    for (unsigned i = 0; i < n; i++)
        sb_str(s, ws[rn(newlines ? 6 : 3)]);
}

static void json_string(struct sb *s)
{
    sb_str(s, "\"");
    unsigned n = rn(12);
    if (rn(2))
        sb_str(s, mb[rn(4)]);
    for (unsigned i = 0; i < n; i++) {
        static const char *const p[] = {"a", "Z", " ", "\\\"", "\\\\", "\\n", "\\u00e9", "\\ud834\\udd1e",
                                        "/", "\\t", "'", "<", "]", "}", ",", "\xc3\xa9", "\xe2\x82\xac",
                                        "\xf0\x9d\x84\x9e"};
        sb_str(s, p[rn(sizeof(p) / sizeof(p[0]))]);
    }
    if (rn(2))
        sb_str(s, mb[rn(4)]);
    sb_str(s, "\"");
}

static void json_value(struct sb *s, int depth, int newlines)
{
    unsigned r = rn(depth > 2 ? 5 : 8);
    switch (r) {
    case 0: json_string(s); break;
    case 1: sb_fmt(s, "%d", (int)rn(100000) - 500); break;
    case 2: sb_fmt(s, "%d.%de-%d", (int)rn(100), (int)rn(100), (int)rn(5)); break;
    case 3: sb_str(s, rn(2) ? "true" : "null"); break;
    case 4: sb_str(s, "false"); break;
    case 5: case 6: {
        unsigned n = rn(4);
        sb_str(s, "{");
        for (unsigned i = 0; i < n; i++) {
            json_ws(s, newlines);
            sb_fmt(s, "%s\"k%u\"", i ? "," : "", i);
            json_ws(s, newlines);
            sb_str(s, ":");
            json_ws(s, newlines);
            json_value(s, depth + 1, newlines);
        }
        json_ws(s, newlines);
        sb_str(s, "}");
        break;
    }
    default: {
        unsigned n = rn(4);
        sb_str(s, "[");
        for (unsigned i = 0; i < n; i++) {
            if (i)
                sb_str(s, ",");
            json_ws(s, newlines);
            json_value(s, depth + 1, newlines);
        }
        sb_str(s, "]");
        break;
    }
    }
}

static void make_json(struct gen *g, unsigned n, int with_pointer)
{
    gen_begin(g, PD_SPLIT_JSON, "json");
    if (rn(4) == 0)
        sb_str(&g->bom, "\xef\xbb\xbf");
    json_ws(&g->pre, 1);
    if (with_pointer) {
        g->json_array = "/data/orders";
        sb_str(&g->pre, "{\"meta\": {\"orders\": [1, 2], \"n\": \"\xc3\xa9\"}, \"data\": {\"x\": [], \"orders\":");
        json_ws(&g->pre, 1);
    }
    sb_str(&g->pre, "[");
    json_ws(&g->lead, 1);
    for (unsigned i = 0; i < n; i++) {
        json_value(gen_rec(g), 0, 1);
        json_ws(&g->seps[i], 1);
        sb_str(&g->seps[i], ",");
        json_ws(&g->seps[i], 1);
    }
    json_ws(&g->suf, 1);
    sb_str(&g->suf, "]");
    if (with_pointer)
        sb_str(&g->suf, ", \"tail\": \"\\\"\xe2\x82\xac\"}, \"z\": [[{}]]}");
    json_ws(&g->suf, 1);
    gen_finish(g);
}

static void make_ndjson(struct gen *g, unsigned n)
{
    gen_begin(g, PD_SPLIT_NDJSON, "ndjson");
    for (unsigned i = 0; i < n; i++) {
        struct sb *r = gen_rec(g);
        if (rn(8)) {
            json_ws(r, 0);
            json_value(r, 0, 0);
            json_ws(r, 0);
        }
        if (i + 1 < n || rn(2) || r->len == 0)
            sb_str(r, rn(3) ? "\n" : "\r\n");
    }
    gen_finish(g);
}

static void xml_element(struct sb *s, const char *name)
{
    sb_fmt(s, "<%s", name);
    if (rn(2))
        sb_fmt(s, " id=\"%u\"", rn(1000));
    if (rn(3) == 0)
        sb_str(s, " note='a > b \"q\" \xc3\xa9'");
    if (rn(5) == 0) {
        sb_str(s, rn(2) ? "/>" : " />");
        return;
    }
    sb_str(s, ">");
    unsigned parts = rn(4);
    for (unsigned i = 0; i < parts; i++) {
        switch (rn(6)) {
        case 0: sb_str(s, "<![CDATA[ </o> <x> ]] ]]>"); break;
        case 1: sb_str(s, "<!-- <o> - not a tag -->"); break;
        case 2: sb_str(s, "<b k=\"v\">in &amp; \xe2\x82\xac</b>"); break;
        case 3: sb_str(s, "<?pi data > here?>"); break;
        default: rand_text(s, 10, "&\n\t\"'"); break;
        }
    }
    /* '&' alone is not well formed: replace stray ones in generated text */
    for (size_t k = 0; k < s->len; k++)
        if (s->p[k] == '&' && strncmp(s->p + k, "&amp;", 5))
            s->p[k] = '+';
    sb_fmt(s, "</%s>", name);
}

static void make_xml(struct gen *g, unsigned n, int with_record)
{
    gen_begin(g, PD_SPLIT_XML, "xml");
    if (rn(4) == 0)
        sb_str(&g->bom, "\xef\xbb\xbf");
    sb_str(&g->pre, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    if (rn(2))
        /* An internal subset is refused (split_xmlwf.c): a quoted '>' in an external id. */
        sb_str(&g->pre, "<!DOCTYPE root SYSTEM\n \"x > y.dtd\">\n");
    sb_str(&g->pre, "<!-- head -->\n<a:root xmlns:a=\"urn:x\" q='1 > 0'>");
    if (with_record) {
        g->xml_record = "o";
        sb_str(&g->pre, "\n  <header><o>not a record: inside header</o></header>\n  ");
    }
    for (unsigned i = 0; i < n; i++) {
        struct sb *r = gen_rec(g);
        if (!with_record || i > 0) {
            static const char *const gaps[] = {"\n  ", "", " ", "\r\n\t", "\n  <!-- c -->\n  ", "<?p?>"};
            sb_str(r, gaps[rn(6)]);
        }
        xml_element(r, with_record && rn(4) == 0 && i > 0 ? "other" : with_record ? "o" : rn(2) ? "a:o" : "o");
    }
    sb_str(&g->suf, "\n</a:root>\n");
    if (rn(2))
        sb_str(&g->suf, "<!-- tail -->\n");
    gen_finish(g);
}

static void make_csv(struct gen *g, unsigned n, int tsv)
{
    gen_begin(g, PD_SPLIT_CSV, tsv ? "tsv" : "csv");
    g->header_lines = 1 + rn(2);
    const char *d = tsv ? "\t" : ",";
    const char *eol = rn(2) ? "\r\n" : "\n";
    for (unsigned h = 0; h < g->header_lines; h++)
        sb_fmt(&g->pre, "id%sname \xc3\xa9%snote%s", d, d, eol);
    for (unsigned i = 0; i < n; i++) {
        struct sb *r = gen_rec(g);
        for (unsigned f = 0; f < 3; f++) {
            if (f)
                sb_str(r, d);
            if (rn(2)) {
                sb_str(r, "\"");
                rand_text(r, 8, tsv ? "\t\n," : ",\n\t");
                if (rn(2))
                    sb_str(r, "\"\"");
                if (rn(3) == 0)
                    sb_str(r, "\r\n");
                sb_str(r, "\"");
            } else {
                rand_text(r, 8, tsv ? "'," : "'\t");
            }
        }
        if (i + 1 < n || rn(2))
            sb_str(r, eol);
    }
    gen_finish(g);
}

static void make_lines(struct gen *g, unsigned n)
{
    gen_begin(g, PD_SPLIT_LINES, "txt");
    for (unsigned i = 0; i < n; i++) {
        struct sb *r = gen_rec(g);
        rand_text(r, 30, "\"\\\t\x01\x1f\r{[<");
        if (i + 1 < n || rn(2))
            sb_str(r, rn(3) ? "\n" : "\r\n");
    }
    gen_finish(g);
}

/* A small well-formedness checker for the XML the generator makes. */
static int xml_well_formed(const char *s, size_t n)
{
    const char *names[256];
    size_t lens[256], depth = 0;
    int roots = 0;
    size_t i = 0;
    if (n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3))
        i = 3;
    while (i < n) {
        if (s[i] != '<') {
            if (depth == 0 && !strchr(" \t\r\n", s[i]))
                return 0;
            i++;
            continue;
        }
        const char *end;
        if (!strncmp(s + i, "<?", 2)) {
            end = strstr(s + i, "?>");
            if (!end) return 0;
            i = (size_t)(end - s) + 2;
        } else if (!strncmp(s + i, "<!--", 4)) {
            end = strstr(s + i + 4, "-->");
            if (!end) return 0;
            i = (size_t)(end - s) + 3;
        } else if (!strncmp(s + i, "<![CDATA[", 9)) {
            if (!depth) return 0;
            end = strstr(s + i, "]]>");
            if (!end) return 0;
            i = (size_t)(end - s) + 3;
        } else if (!strncmp(s + i, "<!DOCTYPE", 9)) {
            end = strstr(s + i, "\">"); /* the generator's ends with a quoted id */
            if (!end) return 0;
            i = (size_t)(end - s) + 2;
        } else if (s[i + 1] == '/') {
            size_t k = i + 2;
            while (k < n && s[k] != '>' && s[k] != ' ')
                k++;
            if (!depth || lens[depth - 1] != k - i - 2 || memcmp(names[depth - 1], s + i + 2, k - i - 2))
                return 0;
            depth--;
            end = memchr(s + k, '>', n - k);
            if (!end) return 0;
            i = (size_t)(end - s) + 1;
        } else {
            size_t k = i + 1;
            while (k < n && !strchr(" />\t\r\n", s[k]))
                k++;
            if (depth == 0 && roots++)
                return 0;
            if (depth == 256) return 0;
            names[depth] = s + i + 1;
            lens[depth] = k - i - 1;
            char q = 0;
            while (k < n && (q || s[k] != '>')) {
                if (q && s[k] == q) q = 0;
                else if (!q && (s[k] == '"' || s[k] == '\'')) q = s[k];
                k++;
            }
            if (k >= n) return 0;
            if (s[k - 1] != '/')
                depth++;
            i = k + 1;
        }
    }
    return depth == 0 && roots == 1;
}

static int payload_valid(int fmt, const struct gen *g, const char *p, size_t n)
{
    switch (fmt) {
    case PD_SPLIT_JSON: {
        cJSON *j = cJSON_ParseWithLength(p, n);
        cJSON_Delete(j);
        return j != NULL;
    }
    case PD_SPLIT_NDJSON: {
        const char *q = p, *e = p + n;
        while (q < e) {
            const char *nl = memchr(q, '\n', (size_t)(e - q));
            size_t len = nl ? (size_t)(nl - q) : (size_t)(e - q);
            size_t k = 0;
            while (k < len && strchr(" \t\r", q[k]))
                k++;
            if (k < len) {
                cJSON *j = cJSON_ParseWithLength(q, len);
                if (!j)
                    return 0;
                cJSON_Delete(j);
            }
            q += len + (nl != NULL);
        }
        return 1;
    }
    case PD_SPLIT_XML:
        return xml_well_formed(p, n);
    case PD_SPLIT_CSV:
        return n >= g->pre.len && !memcmp(p, g->pre.p, g->pre.len);
    default:
        return 1;
    }
}

/* Takes the payload string out of a body; the body must be exactly {"payload": "<string>"}. */
static char *body_payload(const char *body, size_t len, size_t *plen)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    assert_non_null(j);
    assert_true(cJSON_IsObject(j));
    assert_non_null(j->child);
    assert_null(j->child->next);
    cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "payload");
    assert_true(cJSON_IsString(p));
    char *s = strdup(p->valuestring);
    *plen = strlen(s);
    cJSON_Delete(j);
    return s;
}

struct chunk_copy {
    struct pd_chunk c;
    char *body;
};

static struct pd_splitter *open_gen(const struct gen *g, uint64_t budget, const char *path)
{
    struct pd_split_opts o = {0};
    o.format = PD_SPLIT_AUTO;
    o.max_body = budget;
    o.json_array = g->json_array;
    o.xml_record = g->xml_record;
    o.header_lines = g->header_lines;
    struct pd_splitter *sp = NULL;
    int rc = pd_split_create(-1, path, &o, &sp);
    if (rc)
        fail_msg("create: %s", pd_split_error(sp));
    return sp;
}

/* Splits G's file with BUDGET and checks every property. Returns the chunks (caller frees). */
static size_t check_split(const struct gen *g, uint64_t budget, struct chunk_copy **out)
{
    char name[64];
    snprintf(name, sizeof(name), "gen.%s", g->ext);
    const char *path = write_file(name, g->file.p, g->file.len);
    struct pd_splitter *sp = open_gen(g, budget, path);
    size_t whole = whole_budget(g), minb = min_budget(g);
    struct pd_chunk c;
    size_t nch = 0, rec = 0;
    struct chunk_copy *list = NULL;
    int rc;
    while ((rc = pd_split_next(sp, &c)) == 1) {
        list = realloc(list, (nch + 1) * sizeof(*list));
        list[nch].c = c;
        list[nch].body = malloc(c.body_len);
        memcpy(list[nch].body, c.body, c.body_len);
        list[nch].c.body = list[nch].body;
        assert_true(c.body_len <= budget);
        assert_int_equal(c.index, nch);
        size_t plen;
        char *p = body_payload(c.body, c.body_len, &plen);
        if (c.whole) {
            assert_true(budget >= whole);
            assert_int_equal(plen, g->file.len - g->bom.len);
            assert_memory_equal(p, g->file.p + g->bom.len, plen);
            assert_int_equal(c.start, 0);
            assert_int_equal(c.end, g->file.len);
            rec = g->n;
        } else {
            assert_true(budget < whole);
            assert_true(c.records > 0);
            assert_int_equal(c.first_record, rec + 1);
            size_t i = rec, j = rec + c.records;
            assert_true(j <= g->n);
            /* exactly the expected records with the repeated text around them */
            struct sb want = {0};
            sb_add(&want, g->pre.p, g->pre.len);
            for (size_t k = i; k < j; k++) {
                sb_add(&want, g->recs[k].p, g->recs[k].len);
                if (k + 1 < j)
                    sb_add(&want, g->seps[k].p, g->seps[k].len);
            }
            sb_add(&want, g->suf.p, g->suf.len);
            if (plen != want.len || memcmp(p, want.p, plen))
                fail_msg("chunk %zu payload differs:\n got  [%s]\n want [%s]", nch, p, want.p);
            free(want.p);
            assert_int_equal(c.body_len, body_len_for(g, i, j));
            /* greedy: one more record would not have fitted */
            if (j < g->n)
                assert_true(body_len_for(g, i, j + 1) > budget);
            assert_true(payload_valid(g->fmt, g, p, plen));
            assert_int_equal(c.start, i == 0 ? g->area_start : g->rec_end[i - 1]);
            assert_int_equal(c.end, g->rec_end[j - 1]);
            assert_int_equal(c.last, j == g->n);
            rec = j;
        }
        free(p);
        nch++;
    }
    if (budget < whole && budget < minb) {
        if (rc != PD_ETOOBIG)
            fail_msg("budget %llu < min %zu: expected PD_ETOOBIG, got %d (%s)",
                     (unsigned long long)budget, minb, rc, pd_split_error(sp));
        assert_int_equal(nch, 0);
        assert_non_null(strstr(pd_split_error(sp), "max_body"));
    } else {
        if (rc != 0)
            fail_msg("budget %llu: %s", (unsigned long long)budget, pd_split_error(sp));
        assert_int_equal(rec, g->n);
    }
    pd_split_destroy(&sp);
    assert_null(sp);
    if (out)
        *out = list;
    else {
        for (size_t k = 0; k < nch; k++)
            free(list[k].body);
        free(list);
    }
    return nch;
}

static void free_chunks(struct chunk_copy *l, size_t n)
{
    for (size_t k = 0; k < n; k++)
        free(l[k].body);
    free(l);
}

/* C is the chunk WANT was: the same place, records and body. */
static void expect_chunk(const struct pd_chunk *c, const struct chunk_copy *want)
{
    assert_int_equal(c->index, want->c.index);
    assert_int_equal(c->start, want->c.start);
    assert_int_equal(c->end, want->c.end);
    assert_int_equal(c->first_record, want->c.first_record);
    assert_int_equal(c->body_len, want->c.body_len);
    assert_memory_equal(c->body, want->body, c->body_len);
}

/* Resume at chunk K of a run: the same chunks must follow. */
static void check_seek(const struct gen *g, uint64_t budget, struct chunk_copy *l, size_t n, size_t k)
{
    char name[64];
    snprintf(name, sizeof(name), "gen.%s", g->ext);
    const char *path = write_file(name, g->file.p, g->file.len);
    struct pd_splitter *sp = open_gen(g, budget, path);
    assert_int_equal(pd_split_seek(sp, l[k].c.start, (unsigned)k), 0);
    struct pd_chunk c;
    for (size_t i = k; i < n; i++) {
        int rc = pd_split_next(sp, &c);
        if (rc != 1)
            fail_msg("seek: %d %s", rc, pd_split_error(sp));
        expect_chunk(&c, &l[i]);
    }
    assert_int_equal(pd_split_next(sp, &c), 0);
    pd_split_destroy(&sp);
}

/* After chunk K, the server says 413: cut again with a smaller budget from chunk K's start. */
static void check_resplit(const struct gen *g, uint64_t budget, struct chunk_copy *l, size_t n, size_t k)
{
    char name[64];
    snprintf(name, sizeof(name), "gen.%s", g->ext);
    const char *path = write_file(name, g->file.p, g->file.len);
    size_t minb = min_budget(g);
    if (l[k].c.body_len - 1 < minb)
        return;
    uint64_t nb = minb + rn((unsigned)(l[k].c.body_len - minb));
    struct pd_splitter *sp = open_gen(g, budget, path);
    struct pd_chunk c;
    for (size_t i = 0; i <= k; i++)
        assert_int_equal(pd_split_next(sp, &c), 1);
    assert_int_equal(pd_split_resplit(sp, nb), 0);
    assert_int_equal(pd_split_max_body(sp), nb);
    uint64_t rec = l[k].c.first_record - 1, start = l[k].c.whole ? g->area_start : l[k].c.start;
    unsigned idx = (unsigned)k;
    int rc;
    struct chunk_copy *after = NULL;
    size_t na = 0;
    while ((rc = pd_split_next(sp, &c)) == 1) {
        assert_true(c.body_len <= nb);
        assert_int_equal(c.index, idx++);
        assert_int_equal(c.start, start);
        assert_int_equal(c.first_record, rec + 1);
        assert_false(c.whole);
        after = realloc(after, (na + 1) * sizeof(*after));
        after[na].c = c;
        after[na].body = malloc(c.body_len);
        memcpy(after[na].body, c.body, c.body_len);
        na++;
        start = c.end;
        rec += c.records;
    }
    if (rc != 0)
        fail_msg("resplit: %s", pd_split_error(sp));
    assert_int_equal(rec, g->n);
    pd_split_destroy(&sp);
    /* A restart with the new budget resumes at any chunk cut after the resplit. */
    if (na > 1) {
        sp = open_gen(g, nb, path);
        assert_int_equal(pd_split_seek(sp, after[1].c.start, after[1].c.index), 0);
        for (size_t i = 1; i < na; i++) {
            assert_int_equal(pd_split_next(sp, &c), 1);
            assert_int_equal(c.start, after[i].c.start);
            assert_int_equal(c.body_len, after[i].c.body_len);
            assert_memory_equal(c.body, after[i].body, c.body_len);
        }
        pd_split_destroy(&sp);
    }
    free_chunks(after, na);
}

static void run_properties(struct gen *g)
{
    size_t minb = min_budget(g), whole = whole_budget(g);
    uint64_t budgets[16];
    size_t nb = 0;
    budgets[nb++] = minb - 1;
    budgets[nb++] = minb;
    budgets[nb++] = minb + 1;
    budgets[nb++] = minb + 7;
    budgets[nb++] = minb * 2;
    if (whole > minb)
        budgets[nb++] = minb + rn((unsigned)(whole - minb));
    budgets[nb++] = whole - 1;
    budgets[nb++] = whole;
    budgets[nb++] = whole + 1;
    for (size_t b = 0; b < nb; b++) {
        if (budgets[b] <= PD_ENCODE_BODY_OVERHEAD)
            continue;
        struct chunk_copy *l;
        size_t n = check_split(g, budgets[b], &l);
        if (n >= 1 && budgets[b] >= minb) {
            size_t k = rn((unsigned)n);
            if (!l[k].c.whole)
                check_seek(g, budgets[b], l, n, k);
            check_resplit(g, budgets[b], l, n, k);
        }
        free_chunks(l, n);
    }
}

/* ---- property tests per format ------------------------------------------------------------ */

enum gen_format { G_JSON, G_NDJSON, G_XML, G_CSV, G_LINES };

/* A generated file of format F with N records; VARIANT: JSON under a pointer, XML with a record
 * name, CSV as TSV (the other formats have none). */
static void make(struct gen *g, enum gen_format f, unsigned n, int variant)
{
    switch (f) {
    case G_JSON: make_json(g, n, variant); break;
    case G_NDJSON: make_ndjson(g, n); break;
    case G_XML: make_xml(g, n, variant); break;
    case G_CSV: make_csv(g, n, variant); break;
    case G_LINES: make_lines(g, n); break;
    }
}

/* 25 rounds of the properties on generated files of format F, the random numbers from SEED;
 * every EVERY-th round (0: none) is the format's variant. */
static void property_rounds(enum gen_format f, uint64_t seed, int every)
{
    rng_state = seed;
    for (int round = 0; round < 25; round++) {
        struct gen g;
        make(&g, f, 1 + rn(round < 5 ? 3 : 30), every && round % every == every - 1);
        run_properties(&g);
        gen_free(&g);
    }
}

static void test_properties_per_format(void **state)
{
    (void)state;
    property_rounds(G_JSON, 0x1234567ull, 3);
    property_rounds(G_NDJSON, 0x2345678ull, 0);
    property_rounds(G_XML, 0x3456789ull, 3);
    property_rounds(G_CSV, 0x456789aull, 4);
    property_rounds(G_LINES, 0x56789abull, 0);
}

/* Files bigger than the 64 KiB read window: records cross window edges. */
static void test_big_files_cross_windows(void **state)
{
    (void)state;
    static const struct {
        enum gen_format format;
        unsigned n;
        int variant;
    } big[] = {{G_JSON, 6000, 1}, {G_NDJSON, 8000, 0}, {G_XML, 4000, 0}, {G_CSV, 6000, 0},
               {G_LINES, 8000, 0}};
    rng_state = 0x6789abcull;
    for (size_t f = 0; f < sizeof(big) / sizeof(big[0]); f++) {
        struct gen g;
        make(&g, big[f].format, big[f].n, big[f].variant);
        assert_true(g.file.len > 3 * 65536 / 2);
        size_t minb = min_budget(&g);
        uint64_t budgets[] = {minb, 20000, 70001, whole_budget(&g) - 1};
        for (size_t b = 0; b < 4; b++) {
            if (budgets[b] < minb)
                continue;
            struct chunk_copy *l;
            size_t n = check_split(&g, budgets[b], &l);
            if (n > 2) {
                check_seek(&g, budgets[b], l, n, n / 2);
                /* Cut again from a chunk the record index knows nothing of the start of. */
                check_resplit(&g, budgets[b], l, n, n / 2);
            }
            free_chunks(l, n);
        }
        gen_free(&g);
    }
}

/* ---- specific behaviour ------------------------------------------------------------------ */

/* A file touched after the first pass: pass 2 no longer copies records by the index but scans
 * them, and cuts the same chunks. */
static void test_touched_file_is_scanned_again(void **state)
{
    (void)state;
    rng_state = 0x789abcdull;
    struct gen g;
    make(&g, G_JSON, 6000, 0);
    struct chunk_copy *l;
    size_t n = check_split(&g, 30000, &l);
    assert_true(n > 4);
    const char *path = write_file("gen.json", g.file.p, g.file.len);
    struct pd_splitter *sp = open_gen(&g, 30000, path);
    struct pd_chunk c;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(pd_split_next(sp, &c), 1);
        if (i == 1) {
            struct timespec ts[2] = {{0, UTIME_OMIT}, {12345, 0}};
            assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
        }
        expect_chunk(&c, &l[i]);
    }
    assert_int_equal(pd_split_next(sp, &c), 0);
    pd_split_destroy(&sp);
    free_chunks(l, n);
    gen_free(&g);
}

static int split_all(const char *name, const void *data, size_t len, struct pd_split_opts *o,
                     struct pd_splitter **spp, size_t *nchunks)
{
    const char *path = write_file(name, data, len);
    if (!o->name)
        o->name = name;
    int rc = pd_split_create(-1, path, o, spp);
    if (rc)
        return rc;
    struct pd_chunk c;
    size_t n = 0;
    while ((rc = pd_split_next(*spp, &c)) == 1)
        n++;
    if (nchunks)
        *nchunks = n;
    return rc;
}

#define EXPECT_ERR(code, needle, name, text, ...)                                                  \
    do {                                                                                           \
        struct pd_split_opts o_ = {__VA_ARGS__};                                                   \
        struct pd_splitter *sp_ = NULL;                                                            \
        int rc_ = split_all(name, text, strlen(text), &o_, &sp_, NULL);                            \
        if (rc_ != (code) || !strstr(pd_split_error(sp_), needle))                                 \
            fail_msg("%s: got %d '%s', want %d with '%s'", name, rc_, pd_split_error(sp_), code,   \
                     needle);                                                                      \
        /* The caller names the file once, beside the message: the message never does. */          \
        if (strstr(pd_split_error(sp_), name))                                                     \
            fail_msg("%s: the message names the file: '%s'", name, pd_split_error(sp_));           \
        pd_split_destroy(&sp_);                                                                    \
    } while (0)

/* The error's byte offset is the byte its message names, and -1 when it names none. */
#define EXPECT_AT(offset, needle, name, text, len, ...)                                            \
    do {                                                                                           \
        struct pd_split_opts o_ = {__VA_ARGS__};                                                   \
        struct pd_splitter *sp_ = NULL;                                                            \
        int rc_ = split_all(name, text, len, &o_, &sp_, NULL);                                     \
        if (rc_ >= 0 || !strstr(pd_split_error(sp_), needle) ||                                    \
            pd_split_error_offset(sp_) != (offset))                                                \
            fail_msg("%s: got %d '%s' at %lld, want '%s' at %lld", name, rc_, pd_split_error(sp_), \
                     (long long)pd_split_error_offset(sp_), needle, (long long)(offset));          \
        pd_split_destroy(&sp_);                                                                    \
    } while (0)

static void test_error_offset_is_the_named_byte(void **state)
{
    (void)state;
    EXPECT_AT(5, "invalid UTF-8 at byte 5", "a.txt", "abcd\n\xff\n", 7, .max_body = 1000);
    EXPECT_AT(5, "a NUL byte at byte 5", "bin.txt", "ab\ncd\0ef", 8, .max_body = 1000);
    EXPECT_AT(8, "after a value at byte 8", "orders.json", "[1,\n2,3 4,5,6,7,8,9,10,11,12,13]", 32,
              .max_body = 30);
    EXPECT_AT(12, "unterminated quoted field starting on line 3", "c.csv",
              "h1,h2\nx,y\n1,\"abc\n2,3\n4,5\n6,7\n", 29, .max_body = 30, .header_lines = 1);
    EXPECT_AT(10, "record 3 at byte 10 is 26 bytes", "big.txt",
              "aaaa\nbbbb\n\"\"\"\"\"\"\"\"\"\"\"\"\ncc\n", 26, .max_body = 24);
    /* Messages that name no byte: no offset. */
    EXPECT_AT(-1, "empty", "e.json", "", 0, .max_body = 1000);
    EXPECT_AT(-1, "split = none", "n.txt", "aaaa\nbbbb\ncccc\n", 15, .max_body = 20,
              .format = PD_SPLIT_NONE);
}

static void test_error_messages(void **state)
{
    (void)state;
    /* encoding */
    EXPECT_ERR(PD_EENCODING, "invalid UTF-8 at byte 5", "a.txt", "abcd\n\xff\n", .max_body = 1000);
    EXPECT_ERR(PD_EENCODING, "invalid UTF-8 at byte 2", "a.txt", "ab\xc3(", .max_body = 1000);
    EXPECT_ERR(PD_EENCODING, "invalid UTF-8 at byte 0", "a.txt", "\xed\xa0\x80", .max_body = 1000);
    EXPECT_ERR(PD_EENCODING, "invalid UTF-8 at byte 3", "a.txt", "abc\xc3", .max_body = 1000);
    EXPECT_ERR(PD_EENCODING, "encoding = auto (or UTF-16", "a.csv",
               "\xff\xfe"
               "a\0b\0",
               .max_body = 1000, .encoding = "UTF-8");
    {
        struct pd_split_opts o = {.max_body = 1000};
        struct pd_splitter *sp = NULL;
        assert_int_equal(split_all("bin.txt", "ab\ncd\0ef", 8, &o, &sp, NULL), PD_EENCODING);
        assert_non_null(strstr(pd_split_error(sp), "NUL byte at byte 5"));
        assert_null(strstr(pd_split_error(sp), "bin.txt"));
        pd_split_destroy(&sp);
    }
    EXPECT_ERR(PD_EEMPTY, "empty", "e.json", "", .max_body = 1000);
    EXPECT_ERR(PD_EEMPTY, "empty", "e.json", "\xef\xbb\xbf", .max_body = 1000);
    /* json: errors only matter when the file must be split */
    EXPECT_ERR(PD_EPARSE, "expected ',' or ']' after a value at byte 8 (line 2, in record 4)",
               "orders.json", "[1,\n2,3 4,5,6,7,8,9,10,11,12,13]", .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "set json_array", "o.json", "{\"a\": [1,2,3,4,5,6,7,8,9,10,11,12]}", .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "json_array /b: no such array", "o.json", "{\"a\": [1,2,3,4,5,6,7,8,9,10,11,12]}",
               .max_body = 30, .json_array = "/b");
    EXPECT_ERR(PD_EPARSE, "json_array /a points to a string", "o.json", "{\"a\": \"1234567890123456789012345\"}",
               .max_body = 30, .json_array = "/a");
    EXPECT_ERR(PD_EPARSE, "ends inside the JSON document", "t.json", "[1,2,3,4,5,6,7,8,9,10,11,12,13,14",
               .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "control character", "t.json", "[\"a\tb\",2,3,4,5,6,7,8,9,10,11,12,13,14]",
               .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "chosen from the file name", "really.json", "<a><b/><b/><b/><b/><b/><b/></a>",
               .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "NDJSON does not allow", "a.ndjson", "{\"a\":\n1}\n{}\n{}\n{}\n{}\n{}\n{}\n",
               .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "more than one JSON value on one line", "a.jsonl", "1 2\n3\n4\n5\n6\n7\n8\n9\n",
               .max_body = 20);
    /* xml */
    /* expat's words for what is not well formed; the scanner's for the shape */
    EXPECT_ERR(PD_EPARSE, "(expat: mismatched tag) at byte 8", "x.xml", "<a><b></c></a>                   ",
               .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "syntax error", "x.xml", "hello <a><b/><b/><b/><b/><b/></a>",
               .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "junk after document element", "x.xml", "<a><b/><b/><b/><b/></a><a><b/></a>",
               .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "no element found", "x.xml", "<a><b/><b/><b/><b/><b/><b/><b/><b/>", .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "not well-formed (invalid token)) at byte 9", "x.xml", "<a><b c=\"<\"/><b/><b/><b/><b/></a>",
               .max_body = 30);
    EXPECT_ERR(PD_EPARSE, "no <rec> element directly inside the root", "x.xml",
               "<a><b/><b/><b/><b/><b/><b/></a>", .max_body = 30, .xml_record = "rec");
    /* csv */
    EXPECT_ERR(PD_EPARSE, "unterminated quoted field starting on line 3", "c.csv",
               "h1,h2\nx,y\n1,\"abc\n2,3\n4,5\n6,7\n", .max_body = 30, .header_lines = 1);
    /* sizes */
    EXPECT_ERR(PD_ETOOBIG, "record 3 at byte 10 is 26 bytes encoded", "big.txt",
               "aaaa\nbbbb\n\"\"\"\"\"\"\"\"\"\"\"\"\ncc\n", .max_body = 24);
    EXPECT_ERR(PD_ETOOBIG, "split = none", "n.txt", "aaaa\nbbbb\ncccc\n", .max_body = 20, .format = PD_SPLIT_NONE);
    EXPECT_ERR(PD_EEMPTY, "holds no json records", "z.json", "[                                    ]",
               .max_body = 20);
    /* configuration */
    {
        struct pd_split_opts o = {.max_body = 1000, .encoding = "NO-SUCH-CHARSET"};
        struct pd_splitter *sp = NULL;
        const char *path = write_file("x.txt", "a\n", 2);
        assert_int_equal(pd_split_create(-1, path, &o, &sp), PD_ECONFIG);
        assert_non_null(strstr(pd_split_error(sp), "unknown encoding 'NO-SUCH-CHARSET'"));
        pd_split_destroy(&sp);
        o.encoding = NULL;
        o.format = PD_SPLIT_JSON;
        o.json_array = "orders";
        assert_int_equal(pd_split_create(-1, path, &o, &sp), PD_ECONFIG);
        assert_non_null(strstr(pd_split_error(sp), "must start with '/'"));
        pd_split_destroy(&sp);
        o.json_array = NULL;
        o.max_body = 10;
        assert_int_equal(pd_split_create(-1, path, &o, &sp), PD_ECONFIG);
        pd_split_destroy(&sp);
        o.max_body = 100;
        assert_int_equal(pd_split_create(-1, "/nonexistent/x.json", &o, &sp), -ENOENT);
        assert_non_null(strstr(pd_split_error(sp), "cannot open"));
        pd_split_destroy(&sp);
        pd_split_destroy(&sp); /* NULL is a no-op */
        pd_split_destroy(NULL);
    }
}

static void test_small_files_go_whole_unparsed(void **state)
{
    (void)state;
    /* A well-formed file that fits goes whole, byte for byte: nothing is reformatted. */
    const char *good = "\xef\xbb\xbf{ \"ok\": [1, 2,\t3] }\r\n";
    struct pd_split_opts o = {.max_body = 1000};
    struct pd_splitter *sp;
    const char *path = create_on("g.json", good, strlen(good), &o, &sp);
    struct pd_chunk c;
    assert_int_equal(pd_split_next(sp, &c), 1);
    assert_true(c.whole && c.last);
    size_t plen;
    char *p = body_payload(c.body, c.body_len, &plen);
    assert_string_equal(p, good + 3);
    free(p);
    size_t len;
    char *body = pd_split_take_body(sp, &len);
    assert_int_equal(len, c.body_len);
    assert_int_equal(pd_split_next(sp, &c), 0);
    free(body);
    pd_split_destroy(&sp);

    /* Broken JSON is refused even when it fits: a flow must never get half a document. */
    const char *text = "\xef\xbb\xbf{ \"broken\": [1,2,, }\r\n";
    path = create_on("w.json", text, strlen(text), &o, &sp);
    assert_int_equal(pd_split_next(sp, &c), PD_EPARSE);
    assert_null(strstr(pd_split_error(sp), "w.json"));
    assert_non_null(strstr(pd_split_error(sp), "line 1"));
    pd_split_destroy(&sp);

    /* split = lines sends any text as it is. */
    o.format = PD_SPLIT_LINES;
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    assert_int_equal(pd_split_next(sp, &c), 1);
    assert_true(c.whole && c.last);
    p = body_payload(c.body, c.body_len, &plen);
    assert_string_equal(p, text + 3);
    free(p);
    pd_split_destroy(&sp);
}

static void test_seek_checks_boundaries(void **state)
{
    (void)state;
    const char *text = "[10, 20, 30, 40, 50, 60, 70, 80, 90]";
    struct pd_split_opts o = {.max_body = 30};
    struct pd_splitter *sp;
    const char *path = create_on("s.json", text, strlen(text), &o, &sp);
    struct pd_chunk c;
    assert_int_equal(pd_split_next(sp, &c), 1);
    assert_int_equal(c.start, 1);
    assert_int_equal(pd_split_seek(sp, 3, 1), 0); /* after "10" */
    assert_int_equal(pd_split_next(sp, &c), 1);
    assert_int_equal(c.index, 1);
    assert_int_equal(c.first_record, 2);
    assert_int_equal(c.start, 3);
    pd_split_destroy(&sp);
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    assert_int_equal(pd_split_seek(sp, 5, 1), 0);
    assert_int_equal(pd_split_next(sp, &c), PD_ESTATE);
    assert_non_null(strstr(pd_split_error(sp), "byte 5 is not a chunk boundary"));
    assert_int_equal(pd_split_error_offset(sp), 5);
    pd_split_destroy(&sp);
    /* resplit needs a smaller budget than the refused body */
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    assert_int_equal(pd_split_resplit(sp, 20), PD_ESTATE);
    pd_split_destroy(&sp);
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    assert_int_equal(pd_split_next(sp, &c), 1);
    assert_int_equal(pd_split_resplit(sp, c.body_len), PD_ELIMIT);
    assert_int_equal(pd_split_resplit(sp, 17), PD_ETOOBIG); /* no record fits any more */
    assert_non_null(strstr(pd_split_error(sp), "raise max_body"));
    pd_split_destroy(&sp);
}

static void test_deep_nesting(void **state)
{
    (void)state;
    enum { D = 5000 };
    struct sb s = {0};
    sb_str(&s, "[1, ");
    for (int i = 0; i < D; i++)
        sb_str(&s, "[{\"k\":");
    sb_str(&s, "0");
    for (int i = 0; i < D; i++)
        sb_str(&s, "}]");
    sb_str(&s, ", 2]");
    /* too big to go whole, big enough for the deep record alone */
    struct pd_split_opts o = {.max_body = PD_ENCODE_BODY_OVERHEAD + pd_encode_escaped_len(s.p, s.len) - 4};
    struct pd_splitter *sp = NULL;
    size_t n;
    assert_int_equal(split_all("deep.json", s.p, s.len, &o, &sp, &n), 0);
    assert_int_equal(n, 3);
    pd_split_destroy(&sp);
    /* far deeper than the limit: a clear error, no stack overflow */
    s.len = 0;
    sb_str(&s, "[");
    for (int i = 0; i < 200000; i++)
        sb_str(&s, "[");
    o.max_body = 100;
    o.name = NULL;
    assert_int_equal(split_all("deeper.json", s.p, s.len, &o, &sp, NULL), PD_EPARSE);
    assert_non_null(strstr(pd_split_error(sp), "nested deeper than"));
    pd_split_destroy(&sp);
    /* xml */
    s.len = 0;
    sb_str(&s, "<r><a/>");
    for (int i = 0; i < D; i++)
        sb_str(&s, "<e>");
    for (int i = 0; i < D; i++)
        sb_str(&s, "</e>");
    sb_str(&s, "<a/></r>");
    o.max_body = s.len + PD_ENCODE_BODY_OVERHEAD - 1;
    o.name = NULL;
    assert_int_equal(split_all("deep.xml", s.p, s.len, &o, &sp, &n), 0);
    assert_int_equal(n, 2);
    pd_split_destroy(&sp);
    free(s.p);
}

static size_t iconv_to_utf8(const char *cs, const char *in, size_t n, char *out, size_t cap)
{
    iconv_t cd = iconv_open("UTF-8", cs);
    assert_true(cd != (iconv_t)-1);
    char *ip = (char *)in, *op = out;
    size_t il = n, ol = cap;
    assert_true(iconv(cd, &ip, &il, &op, &ol) != (size_t)-1);
    iconv_close(cd);
    return cap - ol;
}

/* Transcoded input: payloads are UTF-8, ranges are offsets of the original bytes. */
static void check_transcoded_lines(const char *cs, const char *file, size_t len, size_t bom,
                                   uint64_t budget, const char *enc_opt)
{
    struct pd_split_opts o = {.max_body = budget, .encoding = enc_opt, .format = PD_SPLIT_LINES};
    struct pd_splitter *sp;
    create_on("t.txt", file, len, &o, &sp);
    struct pd_chunk c;
    int rc;
    uint64_t expect_start = bom;
    size_t total = 0;
    char *conv = malloc(len * 4 + 16);
    while ((rc = pd_split_next(sp, &c)) == 1) {
        assert_true(c.body_len <= budget);
        assert_int_equal(c.start, expect_start);
        size_t plen, n = iconv_to_utf8(cs, file + c.start, c.end - c.start, conv, len * 4 + 16);
        char *p = body_payload(c.body, c.body_len, &plen);
        assert_int_equal(plen, n);
        assert_memory_equal(p, conv, n);
        free(p);
        expect_start = c.end;
        total++;
    }
    if (rc)
        fail_msg("%s", pd_split_error(sp));
    assert_int_equal(expect_start, len);
    assert_true(total > 1);
    free(conv);
    pd_split_destroy(&sp);
}

static void test_transcoding(void **state)
{
    (void)state;
    rng_state = 0x789abcdull;
    /* windows-1252: euro sign 0x80, e acute 0xE9, and a big file to cross windows */
    struct sb s = {0};
    for (int i = 0; i < 30000; i++) {
        unsigned n = rn(12);
        for (unsigned k = 0; k < n; k++) {
            static const char set[] = "ab \x80\xe9\"\\\t";
            sb_add(&s, &set[rn(sizeof(set) - 1)], 1);
        }
        sb_str(&s, rn(4) ? "\n" : "\r\n");
    }
    check_transcoded_lines("WINDOWS-1252", s.p, s.len, 0, 5000, "windows-1252");
    check_transcoded_lines("WINDOWS-1252", s.p, s.len, 0, 70000, "cp1252");
    /* UTF-16 with a byte-order mark, including surrogate pairs */
    struct sb u = {0};
    sb_add(&u, "\xff\xfe", 2);
    for (int i = 0; i < 4000; i++) {
        unsigned n = rn(8);
        for (unsigned k = 0; k < n; k++) {
            switch (rn(4)) {
            case 0: sb_add(&u, "a\0", 2); break;
            case 1: sb_add(&u, "\xe9\0", 2); break;
            case 2: sb_add(&u, "\x34\xd8\x1e\xdd", 4); break; /* U+1D11E */
            default: sb_add(&u, "\"\0", 2); break;
            }
        }
        sb_add(&u, "\n\0", 2);
    }
    check_transcoded_lines("UTF-16LE", u.p + 2, u.len - 2, 0, 3000, "UTF-16LE"); /* no BOM */
    {
        /* with the BOM and the generic name: offsets still count the BOM bytes */
        struct pd_split_opts o = {.max_body = 3000, .encoding = "utf-16", .format = PD_SPLIT_LINES};
        struct pd_splitter *sp = NULL;
        size_t n;
        assert_int_equal(split_all("u16.txt", u.p, u.len, &o, &sp, &n), 0);
        assert_true(n > 1);
        pd_split_destroy(&sp);
        create_on("u16.txt", u.p, u.len, &o, &sp);
        struct pd_chunk c;
        assert_int_equal(pd_split_next(sp, &c), 1);
        assert_int_equal(c.start, 2);
        assert_int_equal(c.end % 2, 0);
        pd_split_destroy(&sp);
    }
    /* invalid in the charset: offset of the byte */
    {
        struct pd_split_opts o = {.max_body = 3000, .encoding = "windows-1252"};
        struct pd_splitter *sp = NULL;
        assert_int_equal(split_all("bad.txt", "abc\n\x81\n", 6, &o, &sp, NULL), PD_EENCODING);
        assert_non_null(strstr(pd_split_error(sp), "byte 4 (0x81) is not valid windows-1252"));
        pd_split_destroy(&sp);
        o.encoding = "UTF-16LE";
        assert_int_equal(split_all("bad16.txt", "a\0\0\0", 4, &o, &sp, NULL), PD_EENCODING);
        assert_non_null(strstr(pd_split_error(sp), "NUL character at byte 2"));
        pd_split_destroy(&sp);
    }
    free(s.p);
    free(u.p);
}

/* ---- charsets: the file says, or the configuration does; what is sent is UTF-8 ---------- */

/* IN (N bytes of FROM) in the charset TO; the result is NUL-terminated, its length in *LEN. */
static char *convert(const char *to, const char *from, const char *in, size_t n, size_t *len)
{
    size_t cap = n * 4 + 16;
    char *out = malloc(cap), *ip = (char *)in, *op = out;
    size_t il = n, ol = cap - 1;
    iconv_t cd = iconv_open(to, from);
    assert_true(cd != (iconv_t)-1);
    assert_true(iconv(cd, &ip, &il, &op, &ol) != (size_t)-1);
    iconv_close(cd);
    *len = (size_t)(op - out);
    out[*len] = '\0';
    return out;
}

static int utf8_valid(const char *s, size_t n)
{
    char *ip = (char *)s, *out = malloc(n * 4 + 4), *op = out;
    size_t il = n, ol = n * 4 + 4;
    iconv_t cd = iconv_open("UTF-32LE", "UTF-8");
    assert_true(cd != (iconv_t)-1);
    int ok = iconv(cd, &ip, &il, &op, &ol) != (size_t)-1 && il == 0;
    iconv_close(cd);
    free(out);
    return ok;
}

/*
 * An order file as UTF-8 text whose declaration (DECL, with %s where ENC goes) names ENC:
 * accented letters in a comment and the root's attribute (both repeated in every chunk) and
 * in every record. HEADER adds an element before the records (for xml_record = order).
 */
static void orders_xml(struct sb *s, const char *decl, const char *enc, unsigned n, int header)
{
    const char *slot = strstr(decl, "%s");
    s->len = 0;
    sb_add(s, decl, (size_t)(slot - decl));
    sb_str(s, enc);
    sb_str(s, slot + 2);
    sb_str(s, "\n<!-- caf\xc3\xa9 -->\n<orders note=\"\xc3\xa9t\xc3\xa9\">");
    if (header)
        sb_str(s, "\n  <header>r\xc3\xa9sum\xc3\xa9</header>");
    for (unsigned i = 0; i < n; i++)
        sb_fmt(s,
               "\n  <order id=\"%u\"><name>Ren\xc3\xa9 %u</name><city>G\xc3\xa9nes</city></order>",
               i, i * 7);
    sb_str(s, "\n</orders>\n");
}

struct xml_run {
    size_t n;
    struct chunk_copy *c;
};

static void xml_run_free(struct xml_run *r)
{
    free_chunks(r->c, r->n);
    memset(r, 0, sizeof(*r));
}

/* Opens FILE (LEN bytes) as NAME with ENCODING, XML_RECORD and BUDGET. */
static struct pd_splitter *open_text(const char *name, const void *file, size_t len,
                                     const char *encoding, const char *xml_record, uint64_t budget)
{
    struct pd_split_opts o = {.max_body = budget, .encoding = encoding, .xml_record = xml_record};
    struct pd_splitter *sp = NULL;
    if (pd_split_create(-1, write_file(name, file, len), &o, &sp))
        fail_msg("create: %s", pd_split_error(sp));
    return sp;
}

/* The payload's XML declaration says UTF-8, or names no encoding (which means UTF-8). */
static int declares_utf8(const char *p, size_t n)
{
    const char *end = memmem(p, n, "?>", 2);
    if (n < 6 || memcmp(p, "<?xml", 5) || !end)
        return 0;
    const char *e = memmem(p, (size_t)(end - p), "encoding", 8);
    if (!e)
        return 1;
    e += strcspn(e, "\"'");
    return !strncasecmp(e + 1, "UTF-8", 5) && e[6] == e[0];
}

/*
 * Checks one chunk's payload against WANT, the UTF-8 document that must arrive: it is valid
 * UTF-8, well-formed XML, opens with WANT's first PRE bytes (declaration saying UTF-8, comment,
 * root start tag: "é" intact in each) and closes with WANT's last SUF bytes; what is between
 * is appended to MID (the records).
 */
static void check_xml_payload(const char *p, size_t plen, const char *want, size_t want_len,
                              size_t pre, size_t suf, struct sb *mid)
{
    assert_true(utf8_valid(p, plen));
    assert_true(xml_well_formed(p, plen));
    assert_true(plen >= pre + suf);
    if (memcmp(p, want, pre) || memcmp(p + plen - suf, want + want_len - suf, suf))
        fail_msg("payload does not open and close as wanted:\n got  [%s]\n want [%s]", p, want);
    assert_true(declares_utf8(p, plen));
    assert_non_null(strstr(p, "\xc3\xa9"));     /* é */
    assert_null(strstr(p, "\xc3\x83\xc2\xa9")); /* Ã©: é read as Latin-1 twice */
    sb_add(mid, p + pre, plen - pre - suf);
}

/*
 * Splits FILE with ENCODING and BUDGET into several chunks, checks each against WANT (PRE, SUF
 * as for check_xml_payload), that the records of all chunks are WANT's, that ranges tile the
 * file, and that resuming at a middle chunk gives the same bodies. Returns the chunks.
 */
static struct xml_run split_xml_to_utf8(const char *name, const char *file, size_t len,
                                        const char *encoding, const char *xml_record,
                                        uint64_t budget, const char *want, size_t want_len,
                                        size_t pre, size_t suf)
{
    struct xml_run r = {0};
    struct sb mid = {0};
    struct pd_splitter *sp = open_text(name, file, len, encoding, xml_record, budget);
    struct pd_chunk c;
    int rc;
    uint64_t prev_end = 0;
    while ((rc = pd_split_next(sp, &c)) == 1) {
        assert_true(c.body_len <= budget);
        assert_false(c.whole);
        if (r.n)
            assert_int_equal(c.start, prev_end);
        prev_end = c.end;
        size_t plen;
        char *p = body_payload(c.body, c.body_len, &plen);
        check_xml_payload(p, plen, want, want_len, pre, suf, &mid);
        free(p);
        r.c = realloc(r.c, (r.n + 1) * sizeof(*r.c));
        r.c[r.n].c = c;
        r.c[r.n].body = malloc(c.body_len);
        memcpy(r.c[r.n].body, c.body, c.body_len);
        r.n++;
    }
    if (rc)
        fail_msg("%s: %s", name, pd_split_error(sp));
    assert_true(r.n > 2);
    assert_int_equal(pd_split_verbatim(sp), 0);
    if (mid.len != want_len - pre - suf || memcmp(mid.p, want + pre, mid.len))
        fail_msg("the records differ:\n got  [%s]\n want [%.*s]", mid.p,
                 (int)(want_len - pre - suf), want + pre);
    pd_split_destroy(&sp);
    /* A restart resumes at a chunk boundary with the same bodies (the declaration found again). */
    size_t k = r.n / 2;
    sp = open_text(name, file, len, encoding, xml_record, budget);
    assert_int_equal(pd_split_seek(sp, r.c[k].c.start, (unsigned)k), 0);
    for (size_t i = k; i < r.n; i++) {
        assert_int_equal(pd_split_next(sp, &c), 1);
        assert_int_equal(c.start, r.c[i].c.start);
        assert_int_equal(c.body_len, r.c[i].c.body_len);
        assert_memory_equal(c.body, r.c[i].body, c.body_len);
    }
    assert_int_equal(pd_split_next(sp, &c), 0);
    pd_split_destroy(&sp);
    free(mid.p);
    return r;
}

/* PRE: WANT up to the end of the root start tag, or with xml_record (HEADER) up to the first
 * record (the header and the whitespace after it are repeated too); SUF: the root end tag. */
static size_t want_pre(const char *want, int header)
{
    if (header)
        return (size_t)(strstr(want, "<order id=") - want);
    return (size_t)(strchr(strstr(want, "<orders"), '>') + 1 - want);
}
#define WANT_SUF (sizeof("\n</orders>\n") - 1)

static void expect_same_runs(const struct xml_run *a, const struct xml_run *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->c[i].c.start, b->c[i].c.start);
        assert_int_equal(a->c[i].c.end, b->c[i].c.end);
        assert_int_equal(a->c[i].c.body_len, b->c[i].c.body_len);
        assert_memory_equal(a->c[i].body, b->c[i].body, a->c[i].c.body_len);
    }
}

/* Issue 13: a Latin-1 XML file arrived transcoded but still declaring ISO-8859-1. */
static void test_latin1_xml(void **state)
{
    (void)state;
    const char *decl = "<?xml version=\"1.0\" encoding=\"%s\"?>";
    struct sb u = {0}, want = {0};
    size_t len;
    orders_xml(&u, decl, "ISO-8859-1", 40, 0);
    orders_xml(&want, decl, "UTF-8", 40, 0);
    char *latin1 = convert("ISO-8859-1", "UTF-8", u.p, u.len, &len);
    size_t pre = want_pre(want.p, 0);

    /* encoding = ISO-8859-1: every chunk's declaration says UTF-8, "é" arrives as é. */
    struct xml_run conf = split_xml_to_utf8("l1.xml", latin1, len, "ISO-8859-1", NULL, 400, want.p,
                                            want.len, pre, WANT_SUF);
    /* Without encoding (auto, the default), the declaration is read: the same chunks. */
    struct xml_run autod =
        split_xml_to_utf8("l1.xml", latin1, len, NULL, NULL, 400, want.p, want.len, pre, WANT_SUF);
    expect_same_runs(&conf, &autod);
    xml_run_free(&autod);
    autod = split_xml_to_utf8("l1.xml", latin1, len, "auto", NULL, 400, want.p, want.len, pre,
                              WANT_SUF);
    expect_same_runs(&conf, &autod);
    xml_run_free(&autod);
    xml_run_free(&conf);

    /* A file that goes whole is rewritten the same way; cut after a 413, its chunks too. */
    struct pd_splitter *sp = open_text("l1.xml", latin1, len, NULL, NULL, 100000);
    struct pd_chunk c;
    assert_int_equal(pd_split_next(sp, &c), 1);
    assert_true(c.whole);
    assert_int_equal(c.end, len);
    size_t plen;
    char *p = body_payload(c.body, c.body_len, &plen);
    assert_int_equal(plen, want.len);
    assert_memory_equal(p, want.p, plen);
    free(p);
    assert_int_equal(pd_split_verbatim(sp), 0);
    assert_int_equal(pd_split_resplit(sp, 400), 0);
    struct sb mid = {0};
    size_t n = 0;
    while (pd_split_next(sp, &c) == 1) {
        p = body_payload(c.body, c.body_len, &plen);
        check_xml_payload(p, plen, want.p, want.len, pre, WANT_SUF, &mid);
        free(p);
        n++;
    }
    assert_true(n > 2);
    assert_int_equal(mid.len, want.len - pre - WANT_SUF);
    assert_memory_equal(mid.p, want.p + pre, mid.len);
    free(mid.p);
    pd_split_destroy(&sp);

    /* With xml_record the repeated opening reaches the header: declaration rewritten in it. */
    orders_xml(&u, decl, "ISO-8859-1", 40, 1);
    orders_xml(&want, decl, "UTF-8", 40, 1);
    free(latin1);
    latin1 = convert("ISO-8859-1", "UTF-8", u.p, u.len, &len);
    struct xml_run rec = split_xml_to_utf8("h.xml", latin1, len, NULL, "order", 400, want.p,
                                           want.len, want_pre(want.p, 1), WANT_SUF);
    xml_run_free(&rec);

    /* Single quotes, whitespace around '=', lower case: found, and only the value changes. */
    decl = "<?xml version='1.0'  encoding = '%s' ?>";
    orders_xml(&u, decl, "iso-8859-1", 40, 0);
    orders_xml(&want, decl, "UTF-8", 40, 0);
    free(latin1);
    latin1 = convert("ISO-8859-1", "UTF-8", u.p, u.len, &len);
    struct xml_run q = split_xml_to_utf8("q.xml", latin1, len, NULL, NULL, 400, want.p, want.len,
                                         want_pre(want.p, 0), WANT_SUF);
    xml_run_free(&q);

    /* The configured charset wins over the declaration's (0x80 is the euro sign in 1252). */
    decl = "<?xml version=\"1.0\" encoding=\"%s\"?>";
    const char euro[] = "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r><a>\x80\xe9</a><a/></r>";
    sp = open_text("e.xml", euro, sizeof(euro) - 1, "windows-1252", NULL, 1000);
    assert_int_equal(pd_split_next(sp, &c), 1);
    p = body_payload(c.body, c.body_len, &plen);
    assert_string_equal(
        p, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><r><a>\xe2\x82\xac\xc3\xa9</a><a/></r>");
    free(p);
    pd_split_destroy(&sp);
    free(latin1);
    free(u.p);
    free(want.p);
}

/* UTF-16 and UTF-32 XML: the byte-order mark (or the width of "<?") decides, in any case. */
static void test_xml_wide_charsets(void **state)
{
    (void)state;
    static const struct {
        const char *cs, *bom, *declared;
        size_t bom_len;
    } forms[] = {
        {"UTF-16LE", "\xff\xfe", "UTF-16", 2},
        {"UTF-16BE", "\xfe\xff", "UTF-16", 2},
        {"UTF-32LE", "\xff\xfe\0\0", "UTF-32", 4},
        {"UTF-16LE", "", "UTF-16", 0}, /* no mark: "<\0?\0" says it */
        {"UTF-16BE", "", "utf-16", 0},
    };
    const char *decl = "<?xml version=\"1.0\" encoding=\"%s\"?>";
    struct sb u = {0}, want = {0}, file = {0};
    orders_xml(&want, decl, "UTF-8", 30, 0);
    for (size_t f = 0; f < sizeof(forms) / sizeof(forms[0]); f++) {
        size_t len;
        orders_xml(&u, decl, forms[f].declared, 30, 0);
        char *wide = convert(forms[f].cs, "UTF-8", u.p, u.len, &len);
        file.len = 0;
        sb_add(&file, forms[f].bom, forms[f].bom_len);
        sb_add(&file, wide, len);
        struct xml_run r = split_xml_to_utf8("w.xml", file.p, file.len, NULL, NULL, 500, want.p,
                                             want.len, want_pre(want.p, 0), WANT_SUF);
        assert_int_equal(r.c[0].c.start % 2, 0);
        size_t width = strstr(forms[f].cs, "32") ? 4 : 2;
        assert_int_equal(r.c[r.n - 1].c.end, file.len - WANT_SUF * width);
        xml_run_free(&r);
        free(wide);
    }
    /* A declaration without encoding: UTF-16 by its mark, and the declaration left as it is. */
    const char doc[] = "<?xml version=\"1.0\"?><r>\xc3\xa9</r>";
    size_t len;
    char *wide = convert("UTF-16BE", "UTF-8", doc, sizeof(doc) - 1, &len);
    file.len = 0;
    sb_add(&file, "\xfe\xff", 2);
    sb_add(&file, wide, len);
    struct pd_splitter *sp = open_text("n.xml", file.p, file.len, NULL, NULL, 1000);
    struct pd_chunk c;
    assert_int_equal(pd_split_next(sp, &c), 1);
    size_t plen;
    char *p = body_payload(c.body, c.body_len, &plen);
    assert_string_equal(p, doc);
    free(p);
    pd_split_destroy(&sp);
    free(wide);
    free(u.p);
    free(want.p);
    free(file.p);
}

/* A UTF-8 byte-order mark: dropped; it outranks a declaration that names another charset. */
static void test_utf8_bom(void **state)
{
    (void)state;
    const char *decl = "<?xml version=\"1.0\" encoding=\"%s\"?>";
    struct sb u = {0}, want = {0};
    orders_xml(&want, decl, "UTF-8", 30, 0);
    sb_str(&u, "\xef\xbb\xbf");
    sb_add(&u, want.p, want.len);
    /* BOM + "UTF-8": the file's own bytes after the mark, so a batch may reuse them. */
    struct xml_run r = {0};
    struct pd_splitter *sp = open_text("b.xml", u.p, u.len, NULL, NULL, 100000);
    struct pd_chunk c;
    assert_int_equal(pd_split_next(sp, &c), 1);
    assert_true(c.whole);
    size_t plen;
    char *p = body_payload(c.body, c.body_len, &plen);
    assert_int_equal(plen, want.len);
    assert_memory_equal(p, want.p, plen);
    free(p);
    assert_int_equal(pd_split_verbatim(sp), 1);
    pd_split_destroy(&sp);
    /* BOM + a declaration that says windows-1252: the mark wins, the declaration is made true. */
    struct sb lying = {0};
    orders_xml(&lying, decl, "windows-1252", 30, 0);
    u.len = 0;
    sb_str(&u, "\xef\xbb\xbf");
    sb_add(&u, lying.p, lying.len);
    r = split_xml_to_utf8("b.xml", u.p, u.len, NULL, NULL, 400, want.p, want.len,
                          want_pre(want.p, 0), WANT_SUF);
    assert_int_equal(r.c[0].c.start, 3 + want_pre(lying.p, 0));
    xml_run_free(&r);
    /* encoding = UTF-8 configured and a declaration that says otherwise: also made true. */
    r = split_xml_to_utf8("c.xml", lying.p, lying.len, "UTF-8", NULL, 400, want.p, want.len,
                          want_pre(want.p, 0), WANT_SUF);
    xml_run_free(&r);
    /* Not XML: the mark is dropped and the text sent as it is. */
    const char text[] = "\xef\xbb\xbfl\xc3\xa9gume\n";
    sp = open_text("v.txt", text, sizeof(text) - 1, NULL, NULL, 1000);
    assert_int_equal(pd_split_next(sp, &c), 1);
    p = body_payload(c.body, c.body_len, &plen);
    assert_string_equal(p, text + 3);
    free(p);
    assert_int_equal(pd_split_verbatim(sp), 1);
    pd_split_destroy(&sp);
    free(u.p);
    free(want.p);
    free(lying.p);
}

/* Other formats with encoding = auto: a UTF-16/32 mark is read, no mark means strict UTF-8. */
static void test_auto_other_formats(void **state)
{
    (void)state;
    struct sb lines = {0};
    for (int i = 0; i < 300; i++)
        sb_fmt(&lines, "ligne %d \xc3\xa9t\xc3\xa9 \xe2\x82\xac\n", i);
    size_t len;
    char *be = convert("UTF-16BE", "UTF-8", lines.p, lines.len, &len);
    struct sb file = {0};
    sb_add(&file, "\xfe\xff", 2);
    sb_add(&file, be, len);
    check_transcoded_lines("UTF-16BE", file.p, file.len, 2, 1000, NULL);
    check_transcoded_lines("UTF-16BE", file.p, file.len, 2, 1000, "auto");
    free(be);
    char *le32 = convert("UTF-32LE", "UTF-8", lines.p, lines.len, &len);
    file.len = 0;
    sb_add(&file, "\xff\xfe\0\0", 4);
    sb_add(&file, le32, len);
    check_transcoded_lines("UTF-32LE", file.p, file.len, 4, 1000, NULL);
    free(le32);
    /* A declaration in a file that is not XML (split = lines) names no charset. */
    EXPECT_ERR(PD_EENCODING, "invalid UTF-8 at byte 43", "d.txt",
               "<?xml version=\"1.0\" encoding=\"latin1\"?>\nhi \xe9\n", .max_body = 1000);
    /* encoding = UTF-8 set on purpose still refuses UTF-16, saying what to set. */
    EXPECT_ERR(PD_EENCODING, "set encoding = auto", "u.csv",
               "\xff\xfe"
               "a\0b\0",
               .max_body = 1000, .encoding = "UTF-8");
    free(file.p);
    free(lines.p);
}

/* What the declaration names must be a charset this system reads, or the file fails clearly. */
static void test_xml_declared_charset_errors(void **state)
{
    (void)state;
    EXPECT_ERR(PD_EENCODING, "the XML declaration names encoding \"X-NO-SUCH\" at byte 30", "u.xml",
               "<?xml version=\"1.0\" encoding=\"X-NO-SUCH\"?><r><a/><a/></r>", .max_body = 1000);
    EXPECT_ERR(PD_EENCODING, "set encoding =", "u.xml",
               "<?xml version=\"1.0\" encoding=\"X-NO-SUCH\"?><r><a/><a/></r>", .max_body = 1000);
    EXPECT_ERR(PD_EENCODING, "encoding \"latin1//IGNORE\" at byte 32 is not a charset name",
               "i.xml", "<?xml version='1.0' encoding = 'latin1//IGNORE'?><r/>", .max_body = 1000);
    EXPECT_ERR(PD_EENCODING,
               "says encoding \"UTF-16\" at byte 30, but the file has no byte-order mark", "s.xml",
               "<?xml version=\"1.0\" encoding=\"UTF-16\"?><r/>", .max_body = 1000);
    /* The file's fault, found when it is read: create succeeds, the first chunk fails. */
    struct pd_split_opts o = {.max_body = 1000};
    struct pd_splitter *sp = NULL;
    const char bad[] = "<?xml version=\"1.0\" encoding=\"X-NO-SUCH\"?><r/>";
    create_on("u.xml", bad, sizeof(bad) - 1, &o, &sp);
    struct pd_chunk c;
    assert_int_equal(pd_split_next(sp, &c), PD_EENCODING);
    pd_split_destroy(&sp);
    /* A configured charset wins: the declaration's unknown name does not matter. */
    sp = NULL;
    o.encoding = "ISO-8859-1";
    create_on("u.xml", bad, sizeof(bad) - 1, &o, &sp);
    assert_int_equal(pd_split_next(sp, &c), 1);
    size_t plen;
    char *p = body_payload(c.body, c.body_len, &plen);
    assert_string_equal(p, "<?xml version=\"1.0\" encoding=\"UTF-8\"?><r/>");
    free(p);
    pd_split_destroy(&sp);
    /* A byte the declared charset does not have: its offset, and the charset's origin. */
    EXPECT_ERR(PD_EENCODING,
               "byte 48 (0x81) is not valid windows-1252 (named by the XML declaration)", "w.xml",
               "<?xml version=\"1.0\" encoding=\"windows-1252\"?><r>\x81</r>", .max_body = 1000);
    /* encoding = UTF-8 (an old config's default) and a Latin-1 file that declares it. */
    EXPECT_ERR(PD_EENCODING,
               "invalid UTF-8 at byte 49 (0xe9): the file is not UTF-8; its XML declaration says "
               "encoding \"ISO-8859-1\": set encoding = auto",
               "o.xml", "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><r>caf\xe9</r>",
               .max_body = 1000, .encoding = "UTF-8");
    /* Not a declaration ("<?xml-stylesheet", no space): UTF-8 as before. */
    EXPECT_ERR(PD_EENCODING, "invalid UTF-8 at byte", "p.xml",
               "<?xml-stylesheet encoding=\"latin1\"?><r>\xe9</r>", .max_body = 1000);
}

/* Inputs that once crashed or misbehaved (fuzzing finds) run through every format. */
static void test_regression_inputs(void **state)
{
    (void)state;
    char dir[600];
    snprintf(dir, sizeof(dir), "%s/split", PD_TEST_DATA);
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char path[1200];
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        for (int fmt = PD_SPLIT_JSON; fmt < PD_SPLIT_NFORMATS; fmt++) {
            uint64_t budgets[] = {15, 40, 200, 5000};
            for (size_t b = 0; b < 4; b++) {
                struct pd_split_opts o = {.format = fmt, .max_body = budgets[b], .header_lines = 1};
                struct pd_splitter *sp = NULL;
                if (pd_split_create(-1, path, &o, &sp) == 0) {
                    struct pd_chunk c;
                    int rc;
                    while ((rc = pd_split_next(sp, &c)) == 1) {
                        assert_true(c.body_len <= budgets[b]);
                        size_t plen;
                        free(body_payload(c.body, c.body_len, &plen));
                    }
                    assert_true(rc <= 0);
                    if (rc < 0)
                        assert_true(strlen(pd_split_error(sp)) > 0);
                }
                pd_split_destroy(&sp);
            }
        }
    }
    closedir(d);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "%s/pd_split_XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    return PD_RUN_GROUP(
        setup, teardown, test_properties_per_format, test_big_files_cross_windows,
        test_touched_file_is_scanned_again,
        test_error_messages, test_error_offset_is_the_named_byte,
        test_small_files_go_whole_unparsed, test_seek_checks_boundaries, test_deep_nesting,
        test_transcoding, test_latin1_xml, test_xml_wide_charsets, test_utf8_bom,
        test_auto_other_formats, test_xml_declared_charset_errors, test_regression_inputs);
}
