/*
 * Unit tests of the format registry: walks every entry and checks that the rest of patchdrop
 * agrees with it. Every format has a name that round-trips through the parser (any case) and
 * shows in the help of the `split` key; every extension chooses its format; the splitter
 * accepts every format (a format with a scanner also cuts a file into several chunks that
 * tile it); batching accepts exactly the formats with a cutter. A format added to the
 * registry without a sample below fails here, so every new format is exercised.
 */
#include "testlib.h"

#include "pd_batch.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_format.h"
#include "pd_split.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A small well-formed file of each format: RECORD is repeated to make files of any size. */
struct sample {
    const char *format, *open, *record, *close;
};

static const struct sample samples[] = {
    {"auto", "[", "{\"id\":1},", "{\"id\":2}]"}, /* auto: the file is named sample.json */
    {"json", "[", "{\"id\":1},", "{\"id\":2}]"},
    {"ndjson", "", "{\"id\":1}\n", ""},
    {"xml", "<?xml version=\"1.0\"?>\n<orders>", "<order id=\"1\"/>", "</orders>\n"},
    {"csv", "id,name\n", "1,\"a, b\"\n", ""},
    {"lines", "", "a line\n", ""},
    {"none", "", "anything at all\n", ""},
    /* EDI: interchanges of one transaction set or message each (the counts stay right). */
    {"x12",
     "ISA*00*          *00*          *ZZ*S              *ZZ*R              *261130*1200*^*00501*"
     "000000001*0*P*>~GS*PO*S*R*20261130*1200*1*X*005010~ST*850*1~SE*2*1~",
     "GE*1*1~IEA*1*000000001~\n"
     "ISA*00*          *00*          *ZZ*S              *ZZ*R              *261130*1200*^*00501*"
     "000000001*0*P*>~GS*PO*S*R*20261130*1200*1*X*005010~ST*850*1~SE*2*1~",
     "GE*1*1~IEA*1*000000001~\n"},
    {"edifact", "UNA:+.? 'UNB+UNOC:3+S+R+261130:1200+1'UNH+1+ORDERS:D:96A:UN'UNT+2+1'",
     "UNZ+1+1'UNB+UNOC:3+S+R+261130:1200+1'UNH+1+ORDERS:D:96A:UN'UNT+2+1'", "UNZ+1+1'"},
};

static const struct sample *sample_of(const char *name)
{
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
        if (!strcmp(samples[i].format, name))
            return &samples[i];
    return NULL;
}

/* The sample's text with N records (free it). */
static char *sample_text(const struct sample *s, unsigned n, size_t *len)
{
    size_t rl = strlen(s->record);
    *len = strlen(s->open) + n * rl + strlen(s->close);
    char *t = malloc(*len + 1), *p = t;
    assert_non_null(t);
    p += sprintf(p, "%s", s->open);
    for (unsigned i = 0; i < n; i++)
        p += sprintf(p, "%s", s->record);
    sprintf(p, "%s", s->close);
    return t;
}

static void upper(char *dst, const char *src, size_t len)
{
    size_t i = 0;
    for (; src[i] && i + 1 < len; i++)
        dst[i] = (char)toupper((unsigned char)src[i]);
    dst[i] = '\0';
}

static void every_format_has_a_name_that_parses_back(void **state)
{
    (void)state;
    for (int id = 0; id < PD_SPLIT_NFORMATS; id++) {
        const struct pd_format *f = pd_format_get(id);
        assert_non_null(f);
        assert_non_null(f->name);
        assert_true(f->name[0] != '\0');
        assert_string_equal(pd_format_name(id), f->name);
        assert_string_equal(pd_split_format_name(id), f->name);
        int got = -1;
        assert_int_equal(pd_format_parse(f->name, &got), 0);
        assert_int_equal(got, id);
        char up[64];
        upper(up, f->name, sizeof(up));
        got = -1;
        assert_int_equal(pd_split_format_parse(up, &got), 0);
        assert_int_equal(got, id);
        /* Names are unique. */
        for (int other = 0; other < id; other++)
            assert_string_not_equal(pd_format_name(other), f->name);
    }
    int got = 7;
    assert_int_equal(pd_format_parse("yaml", &got), PD_ECONFIG);
    assert_int_equal(got, 7);
    assert_null(pd_format_get(-1));
    assert_null(pd_format_get(PD_SPLIT_NFORMATS));
    assert_string_equal(pd_format_name(PD_SPLIT_NFORMATS), "?");
}

static void extensions_choose_their_format(void **state)
{
    (void)state;
    for (int id = 0; id < PD_SPLIT_NFORMATS; id++) {
        const struct pd_format *f = pd_format_get(id);
        for (const char *const *e = f->extensions; e && *e; e++) {
            char name[128], up[128];
            assert_int_equal((*e)[0], '.');
            snprintf(name, sizeof(name), "/in/orders%s", *e);
            assert_int_equal(pd_format_of_name(name), id);
            upper(up, name, sizeof(up));
            assert_int_equal(pd_format_of_name(up), id);
        }
    }
    /* What no entry claims is lines; auto and none are chosen, never detected. */
    assert_int_equal(pd_format_of_name("orders.txt"), PD_SPLIT_LINES);
    assert_int_equal(pd_format_of_name("orders"), PD_SPLIT_LINES);
    assert_int_equal(pd_format_of_name("json"), PD_SPLIT_LINES);
    assert_null(pd_format_get(PD_SPLIT_AUTO)->extensions);
    assert_null(pd_format_get(PD_SPLIT_NONE)->extensions);
}

static void the_split_key_lists_every_format(void **state)
{
    (void)state;
    const char *section, *def = NULL, *help = NULL;
    for (size_t i = 0; pd_config_key_name(i, &section); i++)
        if (!strcmp(section, "watch") && !strcmp(pd_config_key_name(i, &section), "split"))
            help = pd_config_key_help(i, &def);
    assert_non_null(help);
    assert_string_equal(def, "auto");
    assert_string_equal(help, "how to cut big files: auto json ndjson xml csv lines none x12 edifact");
    for (int id = 0; id < PD_SPLIT_NFORMATS; id++)
        assert_non_null(strstr(help, pd_format_name(id)));
}

/* Writes TEXT to a temporary file named NAME; returns its path (free it, unlink it). */
static char *write_temp(const char *name, const char *text, size_t len)
{
    const char *dir = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/pd_format_XXXXXX", dir);
    assert_non_null(mkdtemp(tmpl));
    char *path = malloc(strlen(tmpl) + strlen(name) + 2);
    assert_non_null(path);
    sprintf(path, "%s/%s", tmpl, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void remove_temp(char *path)
{
    unlink(path);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    rmdir(path);
    free(path);
}

/*
 * Splits PATH (LEN bytes) as format ID with MAX_BODY; returns the chunks, checking that they
 * tile the record area, which ends at most CLOSE bytes before the end (json's "]" is not in
 * any chunk's range: it is the repeated closing).
 */
static unsigned split_all(int id, const char *path, uint64_t max_body, size_t len, size_t close)
{
    struct pd_split_opts o = {.format = id, .max_body = max_body, .header_lines = 1};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    unsigned n = 0;
    uint64_t at = 0;
    int rc;

    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    while ((rc = pd_split_next(sp, &c)) == 1) {
        assert_int_equal(c.index, n);
        assert_true(c.body_len <= max_body);
        if (n > 0)
            assert_int_equal(c.start, at);
        at = c.end;
        n++;
        if (c.last)
            break;
    }
    if (rc < 0)
        fail_msg("%s: %s", pd_format_name(id), pd_split_error(sp));
    if (at > len || at + close < len)
        fail_msg("%s (max_body %llu): the chunks end at %llu of %zu bytes", pd_format_name(id),
                 (unsigned long long)max_body, (unsigned long long)at, len);
    assert_int_equal(pd_split_format(sp), id == PD_SPLIT_AUTO ? PD_SPLIT_JSON : id);
    pd_split_destroy(&sp);
    return n;
}

static void the_splitter_accepts_every_format(void **state)
{
    (void)state;
    for (int id = 0; id < PD_SPLIT_NFORMATS; id++) {
        const struct pd_format *f = pd_format_get(id);
        const struct sample *s = sample_of(f->name);
        if (!s)
            fail_msg("format %s has no sample in tests/test_format.c: add one", f->name);
        size_t len;
        char *text = sample_text(s, 40, &len);
        char name[64];
        snprintf(name, sizeof(name), "sample%s",
                 f->extensions         ? f->extensions[0]
                 : id == PD_SPLIT_AUTO ? ".json"
                                       : ".txt");
        char *path = write_temp(name, text, len);
        /* Fits: one chunk, the whole file. */
        assert_int_equal(split_all(id, path, 1000000, len, 0), 1);
        /* A format with a scanner cuts between records; none never splits. */
        if (f->scan)
            assert_true(split_all(id, path, 200, len, strlen(s->close)) > 1);
        remove_temp(path);
        free(text);
    }
}

static void batching_accepts_the_formats_with_a_cutter(void **state)
{
    (void)state;
    for (int id = 0; id < PD_SPLIT_NFORMATS; id++) {
        const struct pd_format *f = pd_format_get(id);
        struct pd_batch_opts o = {
            .format = id, .max_body = 1000000, .header_lines = 1, .max_files = 10};
        struct pd_batch *b = NULL;
        if (!f->cut) {
            assert_int_equal(pd_batch_create(&o, &b), PD_ECONFIG);
            assert_null(b);
            continue;
        }
        assert_non_null(f->batch_sep);
        assert_int_equal(pd_batch_create(&o, &b), 0);
        size_t len;
        char *text = sample_text(sample_of(f->name), 3, &len);
        assert_int_equal(pd_batch_add(b, text, len), 0);
        assert_int_equal(pd_batch_add(b, text, len), 0);
        assert_int_equal(pd_batch_count(b), 2);
        size_t body_len;
        free(pd_batch_take_body(b, &body_len));
        assert_true(body_len > len);
        free(text);
        pd_batch_destroy(&b);
    }
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, every_format_has_a_name_that_parses_back,
                        extensions_choose_their_format, the_split_key_lists_every_format,
                        the_splitter_accepts_every_format,
                        batching_accepts_the_formats_with_a_cutter);
}
