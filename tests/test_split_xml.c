/*
 * XML well-formedness in the splitter: every fault class XML 1.0 names is refused with expat's
 * words, the byte and the line; a DOCTYPE with an internal subset is refused and nothing is
 * ever expanded; namespaces declared on the root and a UTF-16 file's declaration survive
 * splitting (each chunk parsed by expat, namespace-aware); text after the last record is never
 * repeated in every chunk.
 */
#include "pd_config.h"
#include "pd_encode.h"
#include "pd_error.h"
#include "pd_split.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <expat.h>
#include "testlib.h"

#define MAX_CHUNKS 64

struct run {
    int rc; /* pd_split_next's last answer: 0 done, or the error */
    char err[1024];
    int64_t err_off;
    size_t n;
    char *payload[MAX_CHUNKS];
    uint64_t start[MAX_CHUNKS], end[MAX_CHUNKS];
    int whole;
};

static void run_free(struct run *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->payload[i]);
    memset(r, 0, sizeof(*r));
}

/* Splits TEXT (LEN bytes, named NAME) with MAX_BODY and XML_RECORD into R's payloads. */
static void split_text(const char *name, const void *text, size_t len, uint64_t max_body,
                       const char *xml_record, struct run *r)
{
    struct pd_split_opts o = {.format = PD_SPLIT_XML, .max_body = max_body,
                              .xml_record = xml_record, .name = name, .mem = text,
                              .mem_len = len};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    memset(r, 0, sizeof(*r));
    assert_int_equal(pd_split_create(-1, NULL, &o, &sp), 0);
    while ((r->rc = pd_split_next(sp, &c)) == 1) {
        assert_true(r->n < MAX_CHUNKS);
        cJSON *j = cJSON_ParseWithLength(c.body, c.body_len);
        assert_non_null(j);
        cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "payload");
        assert_true(cJSON_IsString(p));
        r->start[r->n] = c.start;
        r->end[r->n] = c.end;
        r->payload[r->n++] = strdup(p->valuestring);
        r->whole = c.whole;
        cJSON_Delete(j);
    }
    snprintf(r->err, sizeof(r->err), "%s", pd_split_error(sp));
    r->err_off = pd_split_error_offset(sp);
    pd_split_destroy(&sp);
}

/* Expat's verdict on S, namespace-aware (an unbound prefix is an error); NULL when good. */
static const char *expat_error(const char *s)
{
    XML_Parser p = XML_ParserCreateNS(NULL, '|');
    assert_non_null(p);
    const char *why = NULL;
    if (XML_Parse(p, s, (int)strlen(s), 1) != XML_STATUS_OK)
        why = XML_ErrorString(XML_GetErrorCode(p));
    XML_ParserFree(p);
    return why;
}

static void assert_refused(const char *doc, size_t len, const char *words, int64_t byte)
{
    struct run r;
    split_text("f.xml", doc, len, 1 << 20, NULL, &r);
    if (r.rc != PD_EPARSE || !strstr(r.err, words) || !strstr(r.err, "(line ") ||
        (byte >= 0 && r.err_off != byte)) {
        fprintf(stderr, "doc: %.*s\nrc %d, error: %s (byte %lld), want: %s at byte %lld\n",
                (int)len, doc, r.rc, r.err, (long long)r.err_off, words, (long long)byte);
        fail();
    }
    assert_int_equal(r.n, 0);
    run_free(&r);
}

#define REFUSED(doc, words, byte) assert_refused(doc, sizeof(doc) - 1, words, byte)

/* Each fault class the xmltest suite has, in a small file that would go whole. */
static void test_fault_classes(void **state)
{
    (void)state;
    REFUSED("<r>A & B</r>", "(expat: not well-formed (invalid token))", 6);
    REFUSED("<r>a&nbsp;b</r>", "(expat: undefined entity)", 4);
    REFUSED("<r>&foo;</r>", "undefined entity", 3);
    REFUSED("<r>a\fb</r>", "invalid token", 4);
    REFUSED("<r>a\x1b" "b</r>", "invalid token", 4);
    REFUSED("<r>a\xef\xbf\xbe" "b</r>", "invalid token", 4); /* U+FFFE */
    REFUSED("<r>&#0;</r>", "reference to invalid character number", 3);
    REFUSED("<r>&#xD800;</r>", "reference to invalid character number", 3);
    REFUSED("<r>&#xZZ;</r>", "invalid token", -1);
    REFUSED("<r>a]]>b</r>", "invalid token", 6);
    REFUSED("<r a=\"1\" a=\"2\"/>", "duplicate attribute", 9);
    REFUSED("<r><!-- a -- b --></r>", "invalid token", 12);
    REFUSED("<?xml version=\"1.0\" standalone=\"maybe\"?><r/>", "XML declaration not well-formed", 32);
    REFUSED("<r/>\n<?xml version=\"1.0\"?>", "junk after document element", 5);
    REFUSED("<r><? x?></r>", "invalid token", 5);
    REFUSED("<r><?XmL x?></r>", "invalid token", -1);
    REFUSED("<!DOCTYPE r SYSTEM>\n<r/>", "syntax error", 18);
    REFUSED("<r a=1/>", "invalid token", 5);
    REFUSED("<r><a>x</a>", "no element found", -1);
    REFUSED("<r>\n  <a>x</b>\n</r>", "mismatched tag", -1);
    /* The line and column expat counts are in the words. */
    struct run r;
    const char doc[] = "<r>\n<a>1</a>\n<a>A & B</a>\n</r>\n";
    split_text("f.xml", doc, sizeof(doc) - 1, 1 << 20, NULL, &r);
    assert_int_equal(r.rc, PD_EPARSE);
    assert_non_null(strstr(r.err, "at byte 19 (line 3, column 7)"));
    assert_non_null(strstr(r.err, "correct the file"));
    run_free(&r);
}

/* A DOCTYPE with an internal subset is refused before its declarations are read: entities
 * never expand, recursive ones included; an external DTD is never fetched. */
static void test_doctype(void **state)
{
    (void)state;
    REFUSED("<?xml version=\"1.0\"?>\n<!DOCTYPE r [<!ENTITY x \"expanded!\">]>\n<r>&x;</r>",
            "DOCTYPE with an internal subset", 34);
    REFUSED("<!DOCTYPE r [<!ENTITY a \"&b;\"><!ENTITY b \"&a;\">]><r>&a;</r>", "internal subset", 12);
    REFUSED("<!DOCTYPE r [ <!ELEMENT ]><r/>", "set split = none", 12);
    /* Billion laughs: refused at once, nothing expanded. */
    struct sb {
        char p[4096];
        size_t n;
    } b = {.n = 0};
    b.n += (size_t)snprintf(b.p, sizeof(b.p), "<!DOCTYPE r [<!ENTITY l0 \"lol\">");
    for (int i = 1; i < 10; i++)
        b.n += (size_t)snprintf(b.p + b.n, sizeof(b.p) - b.n,
                                "<!ENTITY l%d \"&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;&l%d;\">",
                                i, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1, i - 1);
    b.n += (size_t)snprintf(b.p + b.n, sizeof(b.p) - b.n, "]><r>&l9;</r>");
    assert_refused(b.p, b.n, "internal subset", 12);

    /* An external DTD only: sent, split, the DOCTYPE in every chunk, the entity unexpanded. */
    char doc[4096];
    size_t n = (size_t)snprintf(doc, sizeof(doc), "<!DOCTYPE r SYSTEM \"http://127.0.0.1:9/r.dtd\">\n<r>");
    for (int i = 0; i < 40; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "<a>%02d &nbsp;</a>", i);
    n += (size_t)snprintf(doc + n, sizeof(doc) - n, "</r>\n");
    struct run r;
    split_text("f.xml", doc, n, 300, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_true(r.n > 2);
    for (size_t i = 0; i < r.n; i++) {
        assert_non_null(strstr(r.payload[i], "<!DOCTYPE r SYSTEM"));
        assert_non_null(strstr(r.payload[i], "&nbsp;"));
    }
    run_free(&r);
}

/* Namespaces declared on the root go with every chunk, and records using their prefixes
 * parse (namespace-aware) on their own. */
static void test_namespaces(void **state)
{
    (void)state;
    char doc[8192];
    size_t n = (size_t)snprintf(doc, sizeof(doc),
                                "<?xml version=\"1.0\"?>\n<p:orders xmlns:p=\"urn:p\" "
                                "xmlns=\"urn:d\" xmlns:q='urn:q'>\n");
    for (int i = 0; i < 60; i++)
        n += (size_t)snprintf(doc + n, sizeof(doc) - n,
                              "  <p:order q:id=\"%d\"><p:line>x</p:line><sku>%d</sku></p:order>\n",
                              i, i);
    n += (size_t)snprintf(doc + n, sizeof(doc) - n, "</p:orders>\n");
    for (int rec = 0; rec < 2; rec++) {
        struct run r;
        split_text("f.xml", doc, n, 700, rec ? "order" : NULL, &r);
        assert_int_equal(r.rc, 0);
        assert_true(r.n > 3);
        int orders = 0;
        for (size_t i = 0; i < r.n; i++) {
            assert_null(expat_error(r.payload[i]));
            assert_non_null(strstr(r.payload[i], "<p:orders xmlns:p=\"urn:p\" xmlns=\"urn:d\" xmlns:q='urn:q'>"));
            for (const char *p = r.payload[i]; (p = strstr(p, "<p:order ")); p++)
                orders++;
        }
        assert_int_equal(orders, 60);
        run_free(&r);
    }
}

/* UTF-16 text, little endian, from ASCII and Latin-1 (enough for the test). */
static size_t utf16le(const char *s, unsigned char *out, int bom)
{
    size_t n = 0;
    if (bom)
        out[n++] = 0xff, out[n++] = 0xfe;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        unsigned c = *p;
        if (c == 0xc3) /* é and the like: two UTF-8 bytes, one Latin-1 character */
            c = 0x40 + *++p;
        out[n++] = (unsigned char)(c & 0xff), out[n++] = (unsigned char)(c >> 8);
    }
    return n;
}

/* TEXT in UTF-16 (with a byte-order mark when BOM) is refused with WORDS, at the byte of the
 * character where AT starts in TEXT. */
static void assert_utf16_fault(const char *text, int bom, const char *words, const char *at)
{
    unsigned char *u = malloc(2 * strlen(text) + 2);
    assert_non_null(u);
    size_t len = utf16le(text, u, bom);
    struct run r;
    split_text("f.xml", u, len, 1 << 20, NULL, &r);
    assert_int_equal(r.rc, PD_EPARSE);
    assert_non_null(strstr(r.err, words));
    assert_int_equal(r.err_off, (int64_t)(bom * 2 + 2 * (strstr(text, at) - text)));
    run_free(&r);
    free(u);
}

/* A UTF-16 file (by its byte-order mark, or by its declaration alone) is sent as UTF-8 with
 * its declaration saying so: every chunk parses with expat reading the declaration. */
static void test_utf16(void **state)
{
    (void)state;
    char text[8192];
    size_t n = (size_t)snprintf(text, sizeof(text),
                                "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<root>\n");
    for (int i = 0; i < 50; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "<r n=\"%d\">caf\xc3\xa9</r>\n", i);
    size_t tail_at = n;
    n += (size_t)snprintf(text + n, sizeof(text) - n, "</root>\n");
    static unsigned char u[20000];
    for (int bom = 0; bom < 2; bom++) {
        size_t len = utf16le(text, u, bom);
        struct run r;
        split_text("f.xml", u, len, 500, NULL, &r);
        assert_int_equal(r.rc, 0);
        assert_true(r.n > 2);
        for (size_t i = 0; i < r.n; i++) {
            const char *decl = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
            assert_memory_equal(r.payload[i], decl, strlen(decl));
            assert_null(expat_error(r.payload[i]));
            assert_non_null(strstr(r.payload[i], "caf\xc3\xa9"));
        }
        run_free(&r);
        /* A long text after the last record goes once; the last chunk ends at the root's end
         * tag, named by its byte in the UTF-16 file. */
        char tailed[9000];
        snprintf(tailed, sizeof(tailed), "%.*s%0300d</root>\n", (int)tail_at, text, 7);
        len = utf16le(tailed, u, bom);
        split_text("f.xml", u, len, 600, NULL, &r);
        assert_int_equal(r.rc, 0);
        assert_true(r.n > 2);
        static unsigned char head[20000];
        tailed[tail_at + 300] = '\0'; /* up to the root's end tag, counted in UTF-16 */
        assert_int_equal(r.end[r.n - 1], utf16le(tailed, head, bom));
        for (size_t i = 0; i < r.n; i++)
            assert_int_equal(strstr(r.payload[i], "0000007</root>") != NULL, i == r.n - 1);
        run_free(&r);
        /* A fault is named at its byte in the UTF-16 file. */
        char bad[] = "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<root><r>A & B</r></root>";
        assert_utf16_fault(bad, bom, "invalid token", " B");
        /* A token left open far before the end is named at its start. */
        char *open = malloc(120000);
        assert_non_null(open);
        int k = sprintf(open, "<?xml version=\"1.0\" encoding=\"UTF-16\"?>\n<root>\n<a b='");
        memset(open + k, 'x', 100000);
        open[k + 100000] = '\0';
        assert_utf16_fault(open, bom, "(expat: unclosed token)", "<a");
        free(open);
    }
}

/* Resuming at any chunk's start gives the same chunks again, the tail still once at the end. */
static void check_resume(const char *doc, size_t n, uint64_t budget, const struct run *want)
{
    struct pd_split_opts o = {.format = PD_SPLIT_XML, .max_body = budget, .name = "f.xml",
                              .mem = doc, .mem_len = n};
    for (size_t k = 1; k < want->n; k++) {
        struct pd_splitter *sp = NULL;
        struct pd_chunk c;
        assert_int_equal(pd_split_create(-1, NULL, &o, &sp), 0);
        assert_int_equal(pd_split_seek(sp, want->start[k], (unsigned)k), 0);
        for (size_t i = k; i < want->n; i++) {
            assert_int_equal(pd_split_next(sp, &c), 1);
            cJSON *j = cJSON_ParseWithLength(c.body, c.body_len);
            assert_string_equal(cJSON_GetObjectItemCaseSensitive(j, "payload")->valuestring,
                                want->payload[i]);
            cJSON_Delete(j);
        }
        assert_int_equal(pd_split_next(sp, &c), 0);
        pd_split_destroy(&sp);
    }
    /* A 413 on the last chunk: cut again smaller, the tail still goes once, at the end. */
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    assert_int_equal(pd_split_create(-1, NULL, &o, &sp), 0);
    for (size_t i = 0; i < want->n; i++)
        assert_int_equal(pd_split_next(sp, &c), 1);
    if (pd_split_resplit(sp, c.body_len - 1) == 0) {
        int rc, tails = 0;
        char *last = NULL;
        while ((rc = pd_split_next(sp, &c)) == 1) {
            cJSON *j = cJSON_ParseWithLength(c.body, c.body_len);
            const char *p = cJSON_GetObjectItemCaseSensitive(j, "payload")->valuestring;
            assert_null(expat_error(p));
            tails += strstr(p, "<r>29</r>") != NULL;
            free(last);
            last = strdup(p);
            cJSON_Delete(j);
        }
        assert_int_equal(rc, 0);
        assert_int_equal(tails, 1);
        assert_non_null(strstr(last, "<r>29</r>"));
        free(last);
    }
    pd_split_destroy(&sp);
}

/* Content after the last record inside the root (text, a comment, CDATA, a PI) goes once,
 * with the last record, never repeated by every chunk's closing; and the last record makes
 * room for it. */
static void test_text_after_last_record(void **state)
{
    (void)state;
    char doc[8192];
    static const char *const tails[] = {"closing words", "<!-- the end </root> -->",
                                        "<![CDATA[x</root>]]> words", "<?pi </root>?>"};
    for (int kind = 0; kind < 4; kind++) {
        size_t n = (size_t)snprintf(doc, sizeof(doc), "<root>\n");
        for (int i = 0; i < 30; i++)
            n += (size_t)snprintf(doc + n, sizeof(doc) - n, "  <r>%02d</r>\n", i);
        n += (size_t)snprintf(doc + n, sizeof(doc) - n, "  %s\n</root>\n<!-- after -->\n",
                              tails[kind]);
        for (uint64_t budget = 60; budget < 400; budget += 7) {
            struct run r;
            split_text("f.xml", doc, n, budget, NULL, &r);
            if (r.rc == PD_ETOOBIG) {
                run_free(&r);
                continue;
            }
            assert_int_equal(r.rc, 0);
            int recs = 0, tails_seen = 0;
            for (size_t i = 0; i < r.n; i++) {
                assert_null(expat_error(r.payload[i]));
                for (const char *p = r.payload[i]; (p = strstr(p, "<r>")); p++)
                    recs++;
                if (strstr(r.payload[i], tails[kind])) {
                    tails_seen++;
                    assert_int_equal(i, r.n - 1);
                    assert_non_null(strstr(r.payload[i], "<r>29</r>"));
                }
                assert_non_null(strstr(r.payload[i], "</root>\n<!-- after -->\n"));
            }
            assert_int_equal(recs, 30);
            assert_int_equal(tails_seen, 1);
            if (budget % 5 == 0)
                check_resume(doc, n, budget, &r);
            run_free(&r);
        }
    }
    /* The last record with the tail is what must fit: the error names it. */
    size_t n = (size_t)snprintf(doc, sizeof(doc), "<root><r>1</r><r>2</r><r>3</r>");
    memset(doc + n, 'w', 150);
    n += 150;
    n += (size_t)snprintf(doc + n, sizeof(doc) - n, "</root>");
    struct run r;
    split_text("f.xml", doc, n, 160, NULL, &r);
    assert_int_equal(r.rc, PD_ETOOBIG);
    assert_non_null(strstr(r.err, "record 3 at byte 22 is 158 bytes encoded (with the content "
                               "after it inside the root, which goes with it)"));
    run_free(&r);
}

/* A comment (or tag) longer than any request can hold is refused as soon as expat has held
 * that much of it, not read to its end into memory. */
static void test_token_longer_than_max_body(void **state)
{
    (void)state;
    size_t n = 300000;
    char *doc = malloc(n + 64);
    assert_non_null(doc);
    size_t k = (size_t)sprintf(doc, "<r><a>1</a><!-- ");
    memset(doc + k, 'x', n), k += n;
    k += (size_t)sprintf(doc + k, " --><a>2</a></r>");
    struct run r;
    split_text("f.xml", doc, k, 10000, NULL, &r);
    assert_int_equal(r.rc, PD_ETOOBIG);
    assert_non_null(strstr(r.err, "longer than max_body 10000 bytes at byte 11 (line 1"));
    run_free(&r);
    /* With room for it, the same file goes. */
    split_text("f.xml", doc, k, 1 << 20, NULL, &r);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.n, 1);
    run_free(&r);
    free(doc);
}

/* Millions of distinct element names would grow expat's tables without bound: it stops at
 * its cap (32 MiB beside twice max_body) with the reason, instead of taking the memory. */
static void test_expat_memory_is_capped(void **state)
{
    (void)state;
    size_t cap = 16u << 20, k = 0;
    char *doc = malloc(cap);
    assert_non_null(doc);
    k += (size_t)sprintf(doc, "<root>\n");
    for (unsigned i = 0; k + 64 < cap; i++)
        k += (size_t)sprintf(doc + k, "<e%u a%u='1'/>\n", i, i);
    k += (size_t)sprintf(doc + k, "</root>\n");
    struct run r;
    split_text("f.xml", doc, k, 100000, NULL, &r);
    assert_int_equal(r.rc, PD_ETOOBIG);
    assert_non_null(strstr(r.err, "checking this XML needs more than 32 MiB"));
    assert_non_null(strstr(r.err, "at byte "));
    run_free(&r);
    free(doc);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, test_fault_classes, test_doctype, test_namespaces,
                        test_utf16, test_text_after_last_record, test_token_longer_than_max_body,
                        test_expat_memory_is_capped);
}
