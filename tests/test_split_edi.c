/*
 * Tests of the splitter on EDI files (x12, edifact; src/format/split_edi.c). A property test
 * generates interchanges from a seeded PRNG (several interchanges and groups, delimiters other
 * than ~ and *, one-line files and CRLF, EDIFACT release characters in data, UNA present and
 * absent, X12 TA1 acknowledgments before groups or alone, a Ctrl-Z at the end), splits them at
 * random budgets, and reads every chunk with a small reader written here (not the scanner):
 * each chunk is a valid interchange sequence whose counts and control number pairs are right,
 * and every transaction set, message or TA1 arrives exactly once, in order. Resume
 * (pd_split_seek) and 413 re-cuts (pd_split_resplit) give the same sets. Then every check of
 * the original file, with its message, and choosing the format by content.
 */
#include "pd_batch.h"
#include "pd_encode.h"
#include "pd_error.h"
#include "pd_format.h"
#include "pd_split.h"

#include "edi_reader.h"

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cJSON.h>
#include "testlib.h"

static uint64_t rng = 88172645463325252ull;
static unsigned rn(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return n ? (unsigned)(rng % n) : 0;
}

/* ---- generated interchanges ----------------------------------------------------------- */

struct delims {
    char el, comp, term, rep;
    const char *eol;
};

/* X12 delimiters: the usual ones and others real partners use. */
static const struct delims x12_delims[] = {
    {'*', '>', '~', '^', ""},       {'*', ':', '~', '^', "\r\n"}, {'|', '^', '\n', '{', ""},
    {'+', ':', '\'', '!', "\n"},    {'\x1d', '\x1f', '\x1c', '\x1e', ""},
    {'^', '\\', '"', '}', "\r\n"},
};

static void x12_data(struct sb *f, char el)
{
    static const char *const words[] = {"WIDGET", "PO 4711", "12.50", "EA", "ACME CORP", "A-1"};
    unsigned k = 1 + rn(5);
    for (unsigned i = 0; i < k; i++)
        sb_fmt(f, "%c%s", el, words[rn(6)]);
}

/* An X12 file: ICS interchanges of 1..3 groups of 1..5 sets, some with TA1 acknowledgments
 * before their groups, some of TA1s only; EXPECT gets their ids (a TA1's: "ISA13/TA1/TA101"). */
static void make_x12(struct sb *f, struct sb *expect, unsigned ics, const struct delims *d)
{
    static unsigned ctl = 100;
    for (unsigned i = 0; i < ics; i++) {
        unsigned ictl = ++ctl, groups = rn(6) ? 1 + rn(3) : 0, ta1s = groups ? rn(3) : 1 + rn(2);
        char e = d->el;
        sb_fmt(f, "ISA%c00%c          %c00%c          %cZZ%cSENDER         %cZZ%cRECEIVER       "
                  "%c261130%c1200%c%c%c00501%c%09u%c0%cP%c%c%c%s",
               e, e, e, e, e, e, e, e, e, e, e, d->rep, e, e, ictl, e, e, e, d->comp, d->term,
               d->eol);
        for (unsigned t = 0; t < ta1s; t++) {
            sb_fmt(f, "TA1%c%09u%c261130%c1200%cA%c000%c%s", e, ++ctl, e, e, e, e, d->term, d->eol);
            sb_fmt(expect, "%09u/TA1/%09u\n", ictl, ctl);
        }
        for (unsigned g = 0; g < groups; g++) {
            unsigned gctl = ++ctl, sets = 1 + rn(5);
            sb_fmt(f, "GS%cPO%cSENDER%cRECEIVER%c20261130%c1200%c%u%cX%c005010%c%s", e, e, e, e, e,
                   e, gctl, e, e, d->term, d->eol);
            for (unsigned t = 0; t < sets; t++) {
                unsigned segs = rn(6);
                char sctl[16];
                snprintf(sctl, sizeof(sctl), "%04u", ++ctl % 10000);
                sb_fmt(f, "ST%c850%c%s%c%s", e, e, sctl, d->term, d->eol);
                for (unsigned k = 0; k < segs; k++) {
                    sb_fmt(f, "%s", k % 2 ? "PO1" : "N1");
                    x12_data(f, e);
                    sb_fmt(f, "%c%s", d->term, d->eol);
                }
                sb_fmt(f, "SE%c%u%c%s%c%s", e, segs + 2, e, sctl, d->term, d->eol);
                sb_fmt(expect, "%09u/%u/%s\n", ictl, gctl, sctl);
            }
            sb_fmt(f, "GE%c%u%c%u%c%s", e, sets, e, gctl, d->term, d->eol);
        }
        sb_fmt(f, "IEA%c%u%c%09u%c%s", e, groups, e, ictl, d->term, d->eol);
    }
}

/* EDIFACT delimiters: comp, el, release, term (the UNA's order is comp el decimal rel rep term). */
struct edelims {
    char comp, el, rel, term;
    int una;
    const char *eol;
};

static const struct edelims edf_delims[] = {
    {':', '+', '?', '\'', 0, ""},  {':', '+', '?', '\'', 1, "\n"}, {'|', '^', '!', '~', 1, "\r\n"},
    {':', '+', '?', '\'', 0, "\r\n"}, {'>', '*', '\\', '"', 1, ""},
};

/* Data with every delimiter released at least sometimes. */
static void edf_data(struct sb *f, const struct edelims *d)
{
    unsigned k = 1 + rn(4);
    for (unsigned i = 0; i < k; i++) {
        sb_fmt(f, "%cACME", d->el);
        if (rn(2))
            sb_fmt(f, "%c%c CO%c%c%c%c", d->rel, d->el, d->rel, d->term, d->rel, d->rel);
        if (rn(3) == 0)
            sb_fmt(f, "%c5%c%c", d->comp, d->rel, d->comp);
    }
}

static void make_edifact(struct sb *f, struct sb *expect, unsigned ics, const struct edelims *d)
{
    static unsigned ctl = 500;
    for (unsigned i = 0; i < ics; i++) {
        unsigned ictl = ++ctl, groups = rn(3), n = groups ? groups : 1;
        char e = d->el, t = d->term;
        if (d->una)
            sb_fmt(f, "UNA%c%c.%c %c%s", d->comp, e, d->rel, t, d->eol);
        sb_fmt(f, "UNB%cUNOC%c3%cSENDER%cRECEIVER%c261130%c1200%cIC%u%c%s", e, d->comp, e, e, e,
               d->comp, e, ictl, t, d->eol);
        unsigned total = 0;
        for (unsigned g = 0; g < n; g++) {
            unsigned gctl = ++ctl, msgs = 1 + rn(5);
            char gid[16] = "-";
            if (groups) {
                snprintf(gid, sizeof(gid), "G%u", gctl);
                sb_fmt(f, "UNG%cORDERS%cSENDER%cRECEIVER%c261130%c1200%c%s%cUN%cD%c96A%c%s", e, e,
                       e, e, d->comp, e, gid, e, e, d->comp, t, d->eol);
            }
            for (unsigned m = 0; m < msgs; m++) {
                unsigned segs = rn(5);
                sb_fmt(f, "UNH%cM%u%cORDERS%cD%c96A%cUN%c%s", e, ++ctl, e, d->comp, d->comp,
                       d->comp, t, d->eol);
                for (unsigned k = 0; k < segs; k++) {
                    sb_fmt(f, "%s", k % 2 ? "LIN" : "NAD");
                    edf_data(f, d);
                    sb_fmt(f, "%c%s", t, d->eol);
                }
                sb_fmt(f, "UNT%c%u%cM%u%c%s", e, segs + 2, e, ctl, t, d->eol);
                sb_fmt(expect, "IC%u/%s/M%u\n", ictl, gid, ctl);
            }
            total += msgs;
            if (groups)
                sb_fmt(f, "UNE%c%u%c%s%c%s", e, msgs, e, gid, t, d->eol);
        }
        sb_fmt(f, "UNZ%c%u%cIC%u%c%s", e, groups ? groups : total, e, ictl, t, d->eol);
    }
}

/* ---- splitting ---------------------------------------------------------------------------- */

static char *write_tmp(const char *name, const char *data, size_t len)
{
    const char *path = pd_test_path(pd_test_dir, name);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(data, 1, len, fp), len);
    fclose(fp);
    return strdup(path);
}

static char *payload_of(const char *body, size_t len, size_t *plen)
{
    cJSON *j = cJSON_ParseWithLength(body, len);
    assert_non_null(j);
    cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "payload");
    assert_true(cJSON_IsString(p));
    char *s = strdup(p->valuestring);
    *plen = strlen(s); /* the generated files hold no NUL */
    cJSON_Delete(j);
    return s;
}

/* Reads chunk C's payload into SEEN (failing the test when the reader refuses it). */
static void take_chunk(int fmt, const struct pd_chunk *c, uint64_t budget, struct seen *seen)
{
    size_t plen;
    assert_true(c->body_len <= budget);
    char *p = payload_of(c->body, c->body_len, &plen);
    struct seen one = {0};
    if (read_any(fmt, p, plen, &one) < 0)
        fail_msg("chunk %u (%llu records): %s\n%.300s", c->index, (unsigned long long)c->records,
                 one.err, p);
    if (one.ids.len)
        sb_add(&seen->ids, one.ids.p, one.ids.len);
    seen->interchanges += one.interchanges;
    free(one.ids.p);
    free(p);
}

/* Where each chunk started, and how many sets came before it. */
struct run {
    uint64_t starts[4096];
    size_t before[4096];
    unsigned n;
};

/* Splits PATH at BUDGET; the sets the chunks carry go to SEEN. Returns pd_split_next's end. */
static int split_file(int fmt, const char *path, uint64_t budget, struct seen *seen,
                      struct run *run, struct pd_splitter **keep)
{
    struct pd_split_opts o = {.format = fmt, .max_body = budget};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    int rc;
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    if (run)
        run->n = 0;
    while ((rc = pd_split_next(sp, &c)) == 1) {
        if (run && run->n < 4096) {
            run->before[run->n] = 0;
            for (const char *q = seen->ids.p; q && *q; q = strchr(q, '\n') + 1)
                run->before[run->n]++;
            run->starts[run->n++] = c.start;
        }
        take_chunk(fmt, &c, budget, seen);
    }
    if (rc < 0 && !keep)
        fail_msg("%s at %llu: %s", path, (unsigned long long)budget, pd_split_error(sp));
    if (keep)
        *keep = sp;
    else
        pd_split_destroy(&sp);
    return rc;
}

/* Splits PATH again: SEEK, from chunk K's start (as a restarted daemon would), else refusing
 * chunk K as a 413 would (it is cut again at a smaller budget). The sets must be WANT. */
static void check_again(int fmt, const char *path, uint64_t budget, int seek, uint64_t start,
                        unsigned k, const char *want)
{
    struct pd_split_opts o = {.format = fmt, .max_body = budget};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    struct seen seen = {0};
    int rc;
    unsigned i = 0;
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    if (seek)
        assert_int_equal(pd_split_seek(sp, start, k), 0);
    while ((rc = pd_split_next(sp, &c)) == 1) {
        if (seek)
            assert_int_equal(c.index, k++);
        else if (i++ == k && c.body_len > pd_split_min_body(sp) &&
                 pd_split_resplit(sp, c.body_len - 1) == 0)
            continue; /* refused: not taken */
        take_chunk(fmt, &c, seek ? budget : c.body_len, &seen);
    }
    if (rc != 0)
        fail_msg("%s: %s", seek ? "seek" : "resplit", pd_split_error(sp));
    assert_string_equal(seen.ids.p ? seen.ids.p : "", want);
    free(seen.ids.p);
    pd_split_destroy(&sp);
}

/* Every set's offset in the expected list (to find the tail from a chunk on). */
static const char *nth_line(const char *s, size_t k)
{
    while (k-- && s && *s)
        s = strchr(s, '\n') + 1;
    return s;
}

static void property_round(int fmt, unsigned round)
{
    struct sb file = {0}, expect = {0};
    unsigned ics = 1 + rn(3);
    if (fmt == PD_SPLIT_X12)
        make_x12(&file, &expect, ics, &x12_delims[round % 6]);
    else
        make_edifact(&file, &expect, ics, &edf_delims[round % 5]);
    static const char *const marks[] = {"\x1a", "\r\n\x1a\r\n", " \x1a\x1a\n"};
    if (rn(4) == 0) /* a DOS end-of-file mark: never sent */
        sb_fmt(&file, "%s", marks[rn(3)]);
    char *path = write_tmp(fmt == PD_SPLIT_X12 ? "p.x12" : "p.edifact", file.p, file.len);
    /* Budgets from the smallest that works to above the whole file. */
    struct seen seen = {0};
    struct pd_splitter *sp = NULL;
    struct run run;
    uint64_t whole = PD_ENCODE_BODY_OVERHEAD + pd_encode_escaped_len(file.p, file.len);
    if (split_file(fmt, path, whole, &seen, &run, &sp) != 0)
        fail_msg("round %u: %s", round, pd_split_error(sp));
    assert_string_equal(seen.ids.p, expect.p);
    uint64_t min = pd_split_min_body(sp);
    pd_split_destroy(&sp);
    for (int b = 0; b < 4; b++) {
        uint64_t budget = b == 0 ? min : min + rn((unsigned)(whole - min + 40));
        free(seen.ids.p);
        memset(&seen, 0, sizeof(seen));
        int rc = split_file(fmt, path, budget, &seen, &run, NULL);
        if (rc != 0)
            fail_msg("round %u budget %llu: %d", round, (unsigned long long)budget, rc);
        if (strcmp(seen.ids.p, expect.p))
            fail_msg("round %u budget %llu: sets\n%s\nwant\n%s", round,
                     (unsigned long long)budget, seen.ids.p, expect.p);
        /* Resume at a random chunk: the sets from there on. */
        unsigned k = rn(run.n);
        check_again(fmt, path, budget, 1, run.starts[k], k, nth_line(expect.p, run.before[k]));
        if (run.n > 1)
            check_again(fmt, path, budget, 0, 0, rn(run.n), expect.p);
    }
    free(seen.ids.p);
    unlink(path);
    free(path);
    free(file.p);
    free(expect.p);
}

static void test_x12_properties(void **state)
{
    (void)state;
    for (unsigned r = 0; r < 150; r++)
        property_round(PD_SPLIT_X12, r);
}

static void test_edifact_properties(void **state)
{
    (void)state;
    for (unsigned r = 0; r < 150; r++)
        property_round(PD_SPLIT_EDIFACT, r);
}

/* ---- cases -------------------------------------------------------------------------------- */

#define ISA1 "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261130*1200*^*00501*000000001*0*P*>~"
#define X12_SET(n) "ST*850*000" #n "~BEG*00*SA*PO" #n "**20261130~SE*3*000" #n "~"
#define X12_FILE ISA1 "GS*PO*S*R*20261130*1200*1*X*005010~" X12_SET(1) X12_SET(2) "GE*2*1~IEA*1*000000001~"

/* The chunks of TEXT (named NAME) at BUDGET, their payloads one per line in OUT. */
static int chunks_of(const char *name, const char *text, uint64_t budget, int fmt, struct sb *out,
                     struct pd_splitter **keep)
{
    char *path = write_tmp(name, text, strlen(text));
    struct pd_split_opts o = {.format = fmt, .max_body = budget};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    int rc;
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    while ((rc = pd_split_next(sp, &c)) == 1) {
        size_t plen;
        char *p = payload_of(c.body, c.body_len, &plen);
        assert_true(c.body_len <= budget);
        sb_add(out, p, plen);
        sb_add(out, "|\n", 2);
        free(p);
    }
    free(path);
    if (keep)
        *keep = sp;
    else
        pd_split_destroy(&sp);
    return rc;
}

static void test_x12_chunks_are_interchanges(void **state)
{
    (void)state;
    struct sb out = {0};
    /* Whole when it fits: byte for byte. */
    uint64_t whole = PD_ENCODE_BODY_OVERHEAD + strlen(X12_FILE);
    assert_int_equal(chunks_of("a.x12", X12_FILE, whole, PD_SPLIT_X12, &out, NULL), 0);
    assert_string_equal(out.p, X12_FILE "|\n");
    out.len = 0;
    /* One set per chunk: the original envelope, the chunk's counts. */
    assert_int_equal(chunks_of("a.x12", X12_FILE, whole - 1, PD_SPLIT_X12, &out, NULL), 0);
    assert_string_equal(out.p, ISA1 "GS*PO*S*R*20261130*1200*1*X*005010~" X12_SET(1)
                               "GE*1*1~IEA*1*000000001~|\n" ISA1
                               "GS*PO*S*R*20261130*1200*1*X*005010~" X12_SET(2)
                               "GE*1*1~IEA*1*000000001~|\n");
    free(out.p);
}

#define ISA_CRLF "ISA|00|          |00|          |ZZ|SENDER         |ZZ|RECEIVER       |261130|1200|{|00501|000000007|0|P|:\r\n"

/* Other delimiters, CRLF after every terminator, two groups: a chunk spans both groups. */
static void test_x12_crlf_groups(void **state)
{
    (void)state;
    const char *f = ISA_CRLF "GS|PO|S|R|20261130|1200|11|X|005010\r\n"
                             "ST|850|0001\r\nBEG|00|SA|P*1~||20261130\r\nSE|3|0001\r\n"
                             "GE|1|11\r\n"
                             "GS|IN|S|R|20261130|1200|12|X|005010\r\n"
                             "ST|810|0002\r\nBIG|20261130|INV1\r\nSE|3|0002\r\n"
                             "ST|810|0003\r\nBIG|20261130|INV2\r\nSE|3|0003\r\n"
                             "GE|2|12\r\nIEA|2|000000007\r\n";
    struct sb out = {0};
    const char *first = ISA_CRLF "GS|PO|S|R|20261130|1200|11|X|005010\r\n"
        "ST|850|0001\r\nBEG|00|SA|P*1~||20261130\r\nSE|3|0001\r\nGE|1|11\r\n"
        "GS|IN|S|R|20261130|1200|12|X|005010\r\nST|810|0002\r\nBIG|20261130|INV1\r\n"
        "SE|3|0002\r\nGE|1|12\r\nIEA|2|000000007\r\n";
    /* Exactly room for all but the last set. */
    uint64_t budget = PD_ENCODE_BODY_OVERHEAD + pd_encode_escaped_len(first, strlen(first));
    assert_int_equal(chunks_of("b.edi", f, budget, PD_SPLIT_AUTO, &out, NULL), 0);
    assert_string_equal(out.p,
        ISA_CRLF "GS|PO|S|R|20261130|1200|11|X|005010\r\n"
        "ST|850|0001\r\nBEG|00|SA|P*1~||20261130\r\nSE|3|0001\r\nGE|1|11\r\n"
        "GS|IN|S|R|20261130|1200|12|X|005010\r\nST|810|0002\r\nBIG|20261130|INV1\r\n"
        "SE|3|0002\r\nGE|1|12\r\nIEA|2|000000007\r\n|\n"
        ISA_CRLF "GS|IN|S|R|20261130|1200|12|X|005010\r\nST|810|0003\r\nBIG|20261130|INV2\r\n"
        "SE|3|0003\r\nGE|1|12\r\nIEA|1|000000007\r\n|\n");
    free(out.p);
}

#define UNB1 "UNB+UNOC:3+SENDER+RECEIVER+261130:1200+IC1'"
#define EDF_MSG(n, data) "UNH+M" #n "+ORDERS:D:96A:UN'BGM+220+" data "+9'UNT+3+M" #n "'"

/* Release characters: ?' is no terminator, ?? a literal ?; UNA absent, then present. */
static void test_edifact_release(void **state)
{
    (void)state;
    const char *f = UNB1 EDF_MSG(1, "PO?'1??") EDF_MSG(2, "A?+B?:C") "UNZ+2+IC1'";
    struct sb out = {0};
    uint64_t whole = PD_ENCODE_BODY_OVERHEAD + strlen(f);
    assert_int_equal(chunks_of("c.edifact", f, whole - 1, PD_SPLIT_AUTO, &out, NULL), 0);
    assert_string_equal(out.p, UNB1 EDF_MSG(1, "PO?'1??") "UNZ+1+IC1'|\n"
                               UNB1 EDF_MSG(2, "A?+B?:C") "UNZ+1+IC1'|\n");
    out.len = 0;
    const char *g = "UNA|^.! ~\nUNB^UNOC|3^S^R^261130|1200^77~\nUNG^ORDERS^S^R^261130|1200^G1^UN^D|96A~\n"
                    "UNH^1^ORDERS|D|96A|UN~\nBGM^220^X!~Y!!~\nUNT^3^1~\n"
                    "UNH^2^ORDERS|D|96A|UN~\nBGM^220^Z~\nUNT^3^2~\nUNE^2^G1~\nUNZ^1^77~\n";
    whole = PD_ENCODE_BODY_OVERHEAD + pd_encode_escaped_len(g, strlen(g));
    assert_int_equal(chunks_of("d.edi", g, whole - 1, PD_SPLIT_AUTO, &out, NULL), 0);
    assert_string_equal(out.p,
        "UNA|^.! ~\nUNB^UNOC|3^S^R^261130|1200^77~\nUNG^ORDERS^S^R^261130|1200^G1^UN^D|96A~\n"
        "UNH^1^ORDERS|D|96A|UN~\nBGM^220^X!~Y!!~\nUNT^3^1~\nUNE^1^G1~\nUNZ^1^77~\n|\n"
        "UNA|^.! ~\nUNB^UNOC|3^S^R^261130|1200^77~\nUNG^ORDERS^S^R^261130|1200^G1^UN^D|96A~\n"
        "UNH^2^ORDERS|D|96A|UN~\nBGM^220^Z~\nUNT^3^2~\nUNE^1^G1~\nUNZ^1^77~\n|\n");
    free(out.p);
}

#define EXPECT_EDI(needle, at, name, text)                                                         \
    do {                                                                                           \
        struct sb o_ = {0};                                                                        \
        struct pd_splitter *sp_ = NULL;                                                            \
        int rc_ = chunks_of(name, text, 1 << 20, PD_SPLIT_AUTO, &o_, &sp_);                        \
        if (rc_ != PD_EPARSE || !strstr(pd_split_error(sp_), needle) ||                            \
            pd_split_error_offset(sp_) != (at))                                                    \
            fail_msg("%s: got %d '%s' at %lld, want '%s' at %lld", text, rc_, pd_split_error(sp_), \
                     (long long)pd_split_error_offset(sp_), needle, (long long)(at));              \
        free(o_.p);                                                                                \
        pd_split_destroy(&sp_);                                                                    \
    } while (0)

#define GS1 "GS*PO*S*R*20261130*1200*1*X*005010~"

/* Every check of the original, each naming the segment, its byte and what to do: also for a
 * file that would fit one request. */
static void test_edi_errors(void **state)
{
    (void)state;
    size_t at = strlen(ISA1 GS1 "ST*850*0001~BEG*00*SA*PO1**20261130~");
    EXPECT_EDI("SE01 says 4 but 3 segments (ST to SE) are in transaction set 0001 (segment 5 "
               "of the file); the interchange is damaged",
               (int64_t)at, "e1.x12",
               ISA1 GS1 "ST*850*0001~BEG*00*SA*PO1**20261130~SE*4*0001~GE*1*1~IEA*1*000000001~");
    EXPECT_EDI("SE02 is \"0002\" but ST02 is \"0001\" (its segment is at offset 141)", (int64_t)at, "e2.x12",
               ISA1 GS1 "ST*850*0001~BEG*00*SA*PO1**20261130~SE*3*0002~GE*1*1~IEA*1*000000001~");
    at = strlen(ISA1 GS1 X12_SET(1));
    EXPECT_EDI("GE01 says 2 but 1 transaction sets (ST) are in it", (int64_t)at, "e3.x12",
               ISA1 GS1 X12_SET(1) "GE*2*1~IEA*1*000000001~");
    EXPECT_EDI("GE02 is \"9\" but GS06 is \"1\" (its segment is at offset 106)", (int64_t)at, "e4.x12",
               ISA1 GS1 X12_SET(1) "GE*1*9~IEA*1*000000001~");
    at += strlen("GE*1*1~");
    EXPECT_EDI("IEA01 says 2 but 1 functional groups (GS) are in it", (int64_t)at, "e5.x12",
               ISA1 GS1 X12_SET(1) "GE*1*1~IEA*2*000000001~");
    EXPECT_EDI("IEA02 is \"000000002\" but ISA13 is \"000000001\" (its segment is at offset 0)", (int64_t)at,
               "e6.x12", ISA1 GS1 X12_SET(1) "GE*1*1~IEA*1*000000002~");
    EXPECT_EDI("the file ends without its IEA segment; it was cut short", 0, "e7.x12",
               ISA1 GS1 X12_SET(1) "GE*1*1~");
    EXPECT_EDI("ST segment before the SE that ends transaction set 0001", 141 + 12, "e8.x12",
               ISA1 GS1 "ST*850*0001~ST*850*0002~SE*2*0002~GE*1*1~IEA*1*000000001~");
    EXPECT_EDI("a ST segment where GS or IEA was expected", 106, "e9.x12",
               ISA1 "ST*850*0001~SE*2*0001~IEA*1*000000001~");
    EXPECT_EDI("starts with \"IS \", not ISA", 0, "e10.x12", "IS *00~");
    EXPECT_EDI("the file ends inside this GE segment: its terminator is missing", 141 + 46,
               "e11.x12", ISA1 GS1 X12_SET(1) "GE*1*1");
    EXPECT_EDI("holds no X12 interchange", 2, "e12.x12", "\n\n");
    EXPECT_EDI("ISA segment's delimiters \"**~\" (element, component, segment terminator) are "
               "not distinct", 0, "e13.x12",
               "ISA*00*          *00*          *ZZ*S              *ZZ*R              *261130*"
               "1200*^*00501*000000001*0*P**~" GS1 X12_SET(1) "GE*1*1~IEA*1*000000001~");
    EXPECT_EDI("ST02 (the control number) is empty", 141, "e14.x12",
               ISA1 GS1 "ST*850~SE*2*~GE*1*1~IEA*1*000000001~");
    /* EDIFACT */
    at = strlen(UNB1 "UNH+M1+ORDERS:D:96A:UN'BGM+220+X+9'");
    EXPECT_EDI("UNT01 says 2 but 3 segments (UNH to UNT) are in message M1", (int64_t)at, "f1.edifact",
               UNB1 "UNH+M1+ORDERS:D:96A:UN'BGM+220+X+9'UNT+2+M1'UNZ+1+IC1'");
    EXPECT_EDI("UNT02 is \"M2\" but UNH01 is \"M1\" (its segment is at offset 43)", (int64_t)at, "f2.edifact",
               UNB1 "UNH+M1+ORDERS:D:96A:UN'BGM+220+X+9'UNT+3+M2'UNZ+1+IC1'");
    at = strlen(UNB1 EDF_MSG(1, "X"));
    EXPECT_EDI("UNZ01 says 2 but 1 messages (UNH) are in the interchange", (int64_t)at,
               "f3.edifact", UNB1 EDF_MSG(1, "X") "UNZ+2+IC1'");
    EXPECT_EDI("UNZ02 is \"IC2\" but UNB05 is \"IC1\"", (int64_t)at, "f4.edifact",
               UNB1 EDF_MSG(1, "X") "UNZ+1+IC2'");
    at = strlen(UNB1 "UNG+ORDERS+S+R+261130:1200+G1+UN+D:96A'" EDF_MSG(1, "X"));
    EXPECT_EDI("UNE01 says 3 but 1 messages (UNH) are in the group", (int64_t)at, "f5.edifact",
               UNB1 "UNG+ORDERS+S+R+261130:1200+G1+UN+D:96A'" EDF_MSG(1, "X") "UNE+3+G1'UNZ+1+IC1'");
    EXPECT_EDI("UNE02 is \"G2\" but UNG05 is \"G1\"", (int64_t)at, "f6.edifact",
               UNB1 "UNG+ORDERS+S+R+261130:1200+G1+UN+D:96A'" EDF_MSG(1, "X") "UNE+1+G2'UNZ+1+IC1'");
    EXPECT_EDI("the file ends without its UNZ segment", 0, "f7.edifact", UNB1 EDF_MSG(1, "X"));
    EXPECT_EDI("the file ends inside this BGM segment", 43 + 23, "f8.edifact",
               UNB1 "UNH+M1+ORDERS:D:96A:UN'BGM+220+X?'");
    EXPECT_EDI("names the same character for two delimiters", 0, "f9.edifact",
               "UNA::.? 'UNB+UNOC:3+S+R+1:1+1'UNZ+0+1'");
}

#define ISA2 "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261130*1200*^*00501*000000002*0*P*>~"
#define GS2 "GS*PO*S*R*20261130*1200*2*X*005010~"
#define TA1(n) "TA1*00000090" #n "*261130*1200*A*000~"

/* TEXT cut at BUDGET as X12: the chunks' payloads are CHUNKS (each followed by "|\n") and
 * the receipt's control numbers CONTROLS (each followed by "|"). */
static void expect_x12_cut(const char *text, uint64_t budget, const char *chunks,
                           const char *controls)
{
    struct sb out = {0};
    assert_int_equal(chunks_of("t.x12", text, budget, PD_SPLIT_X12, &out, NULL), 0);
    assert_string_equal(out.p, chunks);
    char *path = write_tmp("ctl.x12", text, strlen(text));
    struct pd_split_opts o = {.format = PD_SPLIT_X12, .max_body = budget};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    int rc;
    out.len = 0;
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    while ((rc = pd_split_next(sp, &c)) == 1)
        sb_fmt(&out, "%s|", c.control);
    assert_int_equal(rc, 0);
    assert_string_equal(out.p ? out.p : "", controls);
    pd_split_destroy(&sp);
    free(path);
    free(out.p);
}

/* TA1 acknowledgments before an interchange's first GS go once, in its first chunk. */
static void test_x12_ta1_before_groups(void **state)
{
    (void)state;
    const char *f = ISA1 TA1(1) TA1(2) GS1 X12_SET(1) X12_SET(2) "GE*2*1~IEA*1*000000001~";
    uint64_t whole = PD_ENCODE_BODY_OVERHEAD + strlen(f);
    expect_x12_cut(f, whole, ISA1 TA1(1) TA1(2) GS1 X12_SET(1) X12_SET(2)
                   "GE*2*1~IEA*1*000000001~|\n", "|"); /* whole: no control numbers */
    expect_x12_cut(f, whole - 1,
                   ISA1 TA1(1) TA1(2) GS1 X12_SET(1) "GE*1*1~IEA*1*000000001~|\n"
                   ISA1 GS1 X12_SET(2) "GE*1*1~IEA*1*000000001~|\n",
                   "ISA13/GS06/ST02 000000001/1/0001|ISA13/GS06/ST02 000000001/1/0002|");
}

/* An interchange of TA1s only is a record of its own: sent whole (ISA to IEA), alone or packed
 * with the next interchange's sets; the receipt names its ISA13. */
static void test_x12_ta1_only(void **state)
{
    (void)state;
    const char *f = ISA1 TA1(1) "IEA*0*000000001~\n" ISA2 GS2 X12_SET(1) X12_SET(2)
                    "GE*2*2~IEA*1*000000002~\n";
    const char *first = ISA1 TA1(1) "IEA*0*000000001~\n" ISA2 GS2 X12_SET(1) "GE*1*2~IEA*1*000000002~";
    const char *one = ISA2 GS2 X12_SET(1) "GE*1*2~IEA*1*000000002~";
    expect_x12_cut(f, PD_ENCODE_BODY_OVERHEAD + pd_encode_escaped_len(first, strlen(first)),
                   ISA1 TA1(1) "IEA*0*000000001~\n" ISA2 GS2 X12_SET(1)
                   "GE*1*2~IEA*1*000000002~|\n" ISA2 GS2 X12_SET(2) "GE*1*2~IEA*1*000000002~|\n",
                   "ISA13/GS06/ST02 000000001/-/- to 000000002/2/0001|"
                   "ISA13/GS06/ST02 000000002/2/0002|");
    expect_x12_cut(f, PD_ENCODE_BODY_OVERHEAD + strlen(one),
                   ISA1 TA1(1) "IEA*0*000000001~\n|\n" ISA2 GS2 X12_SET(1)
                   "GE*1*2~IEA*1*000000002~|\n" ISA2 GS2 X12_SET(2) "GE*1*2~IEA*1*000000002~|\n",
                   "ISA13/GS06/ST02 000000001/-/-|ISA13/GS06/ST02 000000002/2/0001|"
                   "ISA13/GS06/ST02 000000002/2/0002|");
    /* Last in the file, before a Ctrl-Z: the mark stays out of its record. */
    expect_x12_cut(ISA2 GS2 X12_SET(1) "GE*1*2~IEA*1*000000002~" ISA1 TA1(1) TA1(2)
                   "IEA*0*000000001~\r\n\x1a", 260,
                   ISA2 GS2 X12_SET(1) "GE*1*2~IEA*1*000000002~|\n"
                   ISA1 TA1(1) TA1(2) "IEA*0*000000001~\r\n|\n",
                   "ISA13/GS06/ST02 000000002/2/0001|ISA13/GS06/ST02 000000001/-/-|");
    /* TA1s and an empty group: still the whole interchange, its IEA01 as it was. */
    expect_x12_cut(ISA1 TA1(1) GS1 "GE*0*1~IEA*1*000000001~" ISA2 GS2 X12_SET(1) X12_SET(2)
                   "GE*2*2~IEA*1*000000002~", 260,
                   ISA1 TA1(1) GS1 "GE*0*1~IEA*1*000000001~|\n"
                   ISA2 GS2 X12_SET(1) "GE*1*2~IEA*1*000000002~|\n"
                   ISA2 GS2 X12_SET(2) "GE*1*2~IEA*1*000000002~|\n",
                   "ISA13/GS06/ST02 000000001/-/-|ISA13/GS06/ST02 000000002/2/0001|"
                   "ISA13/GS06/ST02 000000002/2/0002|");
}

/* A TA1 anywhere but between the ISA and the first GS is refused, saying where it belongs. */
static void test_x12_ta1_misplaced(void **state)
{
    (void)state;
    EXPECT_EDI("a TA1 segment inside functional group 1 (its GS is at offset 106) (segment 3 of "
               "the file): a TA1 (interchange acknowledgment) belongs right after the ISA, before "
               "the interchange's first GS; ask the sender for a corrected file at byte 141",
               141, "m1.x12", ISA1 GS1 TA1(1) X12_SET(1) "GE*1*1~IEA*1*000000001~");
    size_t at = strlen(ISA1 GS1 X12_SET(1) "GE*1*1~");
    EXPECT_EDI("a TA1 segment after functional group 1 (its GS is at offset 106) (segment 7",
               (int64_t)at, "m2.x12",
               ISA1 GS1 X12_SET(1) "GE*1*1~" TA1(1) "IEA*1*000000001~");
    EXPECT_EDI("a TA1 segment inside transaction set 0001 (its ST is at offset 141) (segment 4",
               141 + 12, "m3.x12",
               ISA1 GS1 "ST*850*0001~" TA1(1) "SE*3*0001~GE*1*1~IEA*1*000000001~");
}

/* A DOS end-of-file mark (Ctrl-Z) after the last interchange is accepted and never sent;
 * anything after it is refused, naming the byte. */
static void test_edi_eof_mark(void **state)
{
    (void)state;
    struct sb out = {0};
    struct pd_splitter *sp = NULL;
    const char *f = X12_FILE "\r\n\x1a";
    uint64_t whole = PD_ENCODE_BODY_OVERHEAD + strlen(X12_FILE);
    assert_int_equal(chunks_of("z.x12", f, 1 << 20, PD_SPLIT_AUTO, &out, &sp), 0);
    assert_string_equal(out.p, X12_FILE "\r\n|\n");
    assert_int_equal(pd_split_verbatim(sp), 0); /* a batch would carry the mark */
    pd_split_destroy(&sp);
    out.len = 0;
    assert_int_equal(chunks_of("z.x12", f, whole - 1, PD_SPLIT_AUTO, &out, NULL), 0);
    assert_string_equal(out.p, ISA1 GS1 X12_SET(1) "GE*1*1~IEA*1*000000001~|\n"
                               ISA1 GS1 X12_SET(2) "GE*1*1~IEA*1*000000001~|\n");
    out.len = 0;
    const char *g = UNB1 EDF_MSG(1, "X") "UNZ+1+IC1'\x1a \r\n\x1a";
    assert_int_equal(chunks_of("z.edifact", g, 1 << 20, PD_SPLIT_AUTO, &out, &sp), 0);
    assert_string_equal(out.p, UNB1 EDF_MSG(1, "X") "UNZ+1+IC1'|\n");
    pd_split_destroy(&sp);
    out.len = 0;
    assert_int_equal(chunks_of("v.x12", X12_FILE "\n", 1 << 20, PD_SPLIT_AUTO, &out, &sp), 0);
    assert_int_equal(pd_split_verbatim(sp), 1);
    pd_split_destroy(&sp);
    free(out.p);
    /* Batches take files as they are: one ending in the mark goes alone. */
    struct pd_batch_opts o = {.format = PD_SPLIT_X12, .max_body = 1 << 20, .max_files = 10};
    assert_int_equal(pd_batch_check(&o, f, strlen(f)), PD_EPARSE);
    assert_int_equal(pd_batch_check(&o, X12_FILE "\r\n", strlen(X12_FILE) + 2), 0);
    size_t at = strlen(X12_FILE);
    EXPECT_EDI("'X' after the end-of-file mark (Ctrl-Z, at offset 256) that follows the last "
               "interchange: only line breaks and blanks may follow the mark; remove what "
               "follows it, or ask the sender for a corrected file at byte 257 (line 1",
               (int64_t)at + 1, "j1.x12", X12_FILE "\x1aX");
    EXPECT_EDI("the character 0x7F after the end-of-file mark", (int64_t)at + 2, "j2.x12",
               X12_FILE "\x1a\n\x7f");
    at = strlen(UNB1 EDF_MSG(1, "X") "UNZ+1+IC1'\x1a\r\n");
    EXPECT_EDI("'U' after the end-of-file mark", (int64_t)at, "j3.edifact",
               UNB1 EDF_MSG(1, "X") "UNZ+1+IC1'\x1a\r\n" UNB1 EDF_MSG(2, "Y") "UNZ+1+IC1'");
}

/* Transaction sets whose first bytes end a 64 KiB read window: the envelope before them is
 * rendered, their first bytes are not lost. */
static void test_edi_tags_across_windows(void **state)
{
    (void)state;
    for (size_t shift = 0; shift < 4; shift++) {
        struct sb f = {0}, filler = {0};
        sb_fmt(&f, ISA1 GS1 "ST*850*0001~N1*");
        size_t pad = 65536 - shift - f.len - strlen("~SE*3*0001~");
        filler.p = malloc(pad + 1);
        assert_non_null(filler.p);
        memset(filler.p, 'x', pad);
        sb_add(&f, filler.p, pad);
        sb_fmt(&f, "~SE*3*0001~");
        assert_int_equal(f.len, 65536 - shift);
        sb_fmt(&f, X12_SET(2) X12_SET(3) "GE*3*1~IEA*1*000000001~");
        char *path = write_tmp("w.x12", f.p, f.len);
        uint64_t budgets[] = {PD_ENCODE_BODY_OVERHEAD + f.len - 20, 66000};
        for (int b = 0; b < 2; b++) {
            struct seen seen = {0};
            assert_int_equal(split_file(PD_SPLIT_X12, path, budgets[b], &seen, NULL, NULL), 0);
            assert_string_equal(seen.ids.p, "000000001/1/0001\n000000001/1/0002\n"
                                            "000000001/1/0003\n");
            free(seen.ids.p);
        }
        free(path);
        free(f.p);
        free(filler.p);
    }
}

/* An EDIFACT release character that ends a read window still releases the terminator that
 * starts the next one. */
static void test_edifact_release_across_windows(void **state)
{
    (void)state;
    for (size_t shift = 0; shift < 3; shift++) {
        struct sb f = {0};
        sb_fmt(&f, UNB1 "UNH+M1+ORDERS:D:96A:UN'FTX+AAA+");
        size_t pad = 65535 - shift - f.len;
        char *filler = malloc(pad);
        assert_non_null(filler);
        memset(filler, 'y', pad);
        sb_add(&f, filler, pad);
        free(filler);
        sb_fmt(&f, "?'?'?''UNT+3+M1'" EDF_MSG(2, "Z?'") "UNZ+2+IC1'");
        char *path = write_tmp("r.edifact", f.p, f.len);
        struct seen seen = {0};
        /* Less than the whole: the second message goes in a chunk of its own. */
        uint64_t budget = PD_ENCODE_BODY_OVERHEAD + pd_encode_escaped_len(f.p, f.len) - 10;
        struct run run;
        assert_int_equal(split_file(PD_SPLIT_EDIFACT, path, budget, &seen, &run, NULL), 0);
        assert_int_equal(run.n, 2);
        assert_string_equal(seen.ids.p, "IC1/-/M1\nIC1/-/M2\n");
        free(seen.ids.p);
        free(path);
        free(f.p);
    }
}

/* One transaction set bigger than the budget fails the file, saying which and what to do. */
static void test_edi_set_too_big(void **state)
{
    (void)state;
    struct sb out = {0};
    struct pd_splitter *sp = NULL;
    const char *f = X12_FILE;
    int rc = chunks_of("big.x12", f, 200, PD_SPLIT_X12, &out, &sp);
    assert_int_equal(rc, PD_ETOOBIG);
    assert_non_null(strstr(pd_split_error(sp), "record 1 at byte 141 is 210 bytes encoded with "
                                               "its interchange and group envelope, larger than "
                                               "the 186 bytes a request can hold"));
    assert_non_null(strstr(pd_split_error(sp), "raise max_body"));
    pd_split_destroy(&sp);
    free(out.p);
}

static void test_edi_chosen_by_content(void **state)
{
    (void)state;
    const unsigned char *x = (const unsigned char *)ISA1;
    const unsigned char *e = (const unsigned char *)"UNA:+.? 'UNB+UNOC:3'";
    const unsigned char *e2 = (const unsigned char *)"\xef\xbb\xbf\r\nUNB+UNOC:3+S'";
    assert_int_equal(pd_format_of_text("a.edi", x, strlen(ISA1)), PD_SPLIT_X12);
    assert_int_equal(pd_format_of_text("a.edi", e, 20), PD_SPLIT_EDIFACT);
    assert_int_equal(pd_format_of_text("a.EDI", e2, 18), PD_SPLIT_EDIFACT);
    assert_int_equal(pd_format_of_text("a.txt", x, strlen(ISA1)), PD_SPLIT_X12);
    assert_int_equal(pd_format_of_text("noname", e, 20), PD_SPLIT_EDIFACT);
    assert_int_equal(pd_format_of_text("a.x12", e, 20), PD_SPLIT_EDIFACT);
    assert_int_equal(pd_format_of_text("a.json", x, strlen(ISA1)), PD_SPLIT_JSON);
    assert_int_equal(pd_format_of_text("a.txt", (const unsigned char *)"ISAAC\n", 6),
                     PD_SPLIT_LINES);
    assert_int_equal(pd_format_of_text("a.edi", (const unsigned char *)"hello", 5), PD_SPLIT_X12);
    /* The splitter says which it used. */
    struct sb out = {0};
    struct pd_splitter *sp = NULL;
    assert_int_equal(chunks_of("orders.txt", X12_FILE, 1 << 20, PD_SPLIT_AUTO, &out, &sp), 0);
    assert_int_equal(pd_split_format(sp), PD_SPLIT_X12);
    pd_split_destroy(&sp);
    free(out.p);
}

/* Each chunk says which control numbers it carries, for the receipt. */
static void test_edi_control_numbers(void **state)
{
    (void)state;
    const char *f = X12_FILE ISA_CRLF "GS|IN|S|R|20261130|1200|12|X|005010\r\n"
                             "ST|810|0009\r\nSE|2|0009\r\nGE|1|12\r\nIEA|1|000000007\r\n";
    char *path = write_tmp("n.x12", f, strlen(f));
    struct pd_split_opts o = {.format = PD_SPLIT_AUTO, .max_body = 330};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    assert_int_equal(pd_split_next(sp, &c), 1);
    assert_int_equal(c.records, 2);
    assert_string_equal(c.control, "ISA13/GS06/ST02 000000001/1/0001 to 000000001/1/0002");
    assert_int_equal(pd_split_next(sp, &c), 1);
    assert_string_equal(c.control, "ISA13/GS06/ST02 000000007/12/0009");
    assert_int_equal(pd_split_next(sp, &c), 0);
    pd_split_destroy(&sp);
    free(path);
    const char *g = UNB1 EDF_MSG(1, "X") EDF_MSG(2, "Y") "UNZ+2+IC1'";
    path = write_tmp("n.edifact", g, strlen(g));
    o.max_body = 120;
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    assert_int_equal(pd_split_next(sp, &c), 1);
    assert_string_equal(c.control, "UNB05/UNG05/UNH01 IC1/-/M1");
    pd_split_destroy(&sp);
    free(path);
}

/* EDIFACT in UNOC (Latin-1) with encoding = ISO-8859-1: transcoded, still cut between
 * messages, and the envelope rendered around each. */
static void test_edifact_latin1(void **state)
{
    (void)state;
    const char *f = UNB1 EDF_MSG(1, "CAF\xc9") EDF_MSG(2, "NO\xcbL") "UNZ+2+IC1'";
    char *path = write_tmp("l.edifact", f, strlen(f));
    struct pd_split_opts o = {.format = PD_SPLIT_AUTO, .max_body = 140, .encoding = "ISO-8859-1"};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    struct sb out = {0};
    uint64_t end = 0;
    assert_int_equal(pd_split_create(-1, path, &o, &sp), 0);
    while (pd_split_next(sp, &c) == 1) {
        size_t plen;
        end = c.end; /* offsets are the file's, not the UTF-8 text's */
        char *p = payload_of(c.body, c.body_len, &plen);
        sb_add(&out, p, plen);
        sb_add(&out, "|", 1);
        free(p);
    }
    assert_string_equal(out.p, UNB1 EDF_MSG(1, "CAF\xc3\x89") "UNZ+1+IC1'|"
                               UNB1 EDF_MSG(2, "NO\xc3\x8bL") "UNZ+1+IC1'|");
    assert_int_equal(end, strlen(f) - strlen("UNZ+2+IC1'"));
    pd_split_destroy(&sp);
    free(out.p);
    free(path);
}

/* Batching: the files' interchanges one after another, each whole. */
static void test_edi_batch(void **state)
{
    (void)state;
    struct pd_batch_opts o = {.format = PD_SPLIT_X12, .max_body = 1 << 20, .max_files = 10};
    struct pd_batch *b = NULL;
    assert_int_equal(pd_batch_create(&o, &b), 0);
    assert_int_equal(pd_batch_add(b, X12_FILE, strlen(X12_FILE)), 0);
    const char *two = ISA_CRLF "GS|PO|S|R|20261130|1200|11|X|005010\r\nST|850|0001\r\n"
                               "SE|2|0001\r\nGE|1|11\r\nIEA|1|000000007\r\n";
    assert_int_equal(pd_batch_add(b, two, strlen(two)), 0);
    assert_int_equal(pd_batch_check(&o, "  \n", 3), PD_EPARSE);
    size_t len, plen;
    char *body = pd_batch_take_body(b, &len);
    char *p = payload_of(body, len, &plen);
    struct seen seen = {0};
    if (read_x12(p, plen, &seen) < 0)
        fail_msg("%s", seen.err);
    assert_int_equal(seen.interchanges, 2);
    assert_string_equal(seen.ids.p, "000000001/1/0001\n000000001/1/0002\n000000007/11/0001\n");
    free(seen.ids.p);
    free(p);
    free(body);
    pd_batch_destroy(&b);
}

int main(void)
{
    return PD_RUN_IN_DIR(test_x12_properties, test_edifact_properties,
                         test_x12_chunks_are_interchanges, test_x12_crlf_groups,
                         test_edifact_release, test_edi_errors, test_x12_ta1_before_groups,
                         test_x12_ta1_only, test_x12_ta1_misplaced, test_edi_eof_mark,
                         test_edi_tags_across_windows,
                         test_edifact_release_across_windows,
                         test_edi_set_too_big, test_edi_chosen_by_content, test_edi_control_numbers,
                         test_edifact_latin1, test_edi_batch);
}
