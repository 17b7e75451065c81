/* Unit tests of the log: text and JSON lines, journald prefixes, levels, repeat suppression. */
#include "testlib.h"

#include "pd_clock.h"
#include "pd_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2023-11-14T22:13:20.250Z */
#define WALL0 1700000000250ULL

static char *buf;
static size_t buflen;
static FILE *out;

static int setup(void **state)
{
    unsetenv("JOURNAL_STREAM");
    pd_test_mono = 1000;
    pd_test_wall = WALL0;
    out = open_memstream(&buf, &buflen);
    pd_log_set_clock(&pd_test_clock);
    pd_log_set_format(PD_LOG_TEXT);
    pd_test_log_to(out, PD_LOG_INFO, 60000);
    return 0;
}

static int teardown(void **state)
{
    pd_log_set_output(NULL);
    pd_log_set_clock(NULL);
    fclose(out);
    free(buf);
    buf = NULL;
    unsetenv("JOURNAL_STREAM");
    return 0;
}

/* Everything written so far, and forget it. */
static char *taken(void)
{
    static char copy[16384];
    fclose(out);
    snprintf(copy, sizeof(copy), "%s", buf ? buf : "");
    free(buf);
    buf = NULL;
    out = open_memstream(&buf, &buflen);
    pd_log_set_output(out);
    return copy;
}

static int count_lines(const char *s)
{
    int n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void text_lines_have_time_level_and_fields(void **state)
{
    char q[64];
    pd_log(PD_LOG_INFO, "event=claimed watch=orders file=%s bytes=%d",
           pd_log_quote("my file.xml", q, sizeof(q)), 12);
    assert_string_equal(taken(), "2023-11-14T22:13:20.250Z level=info event=claimed watch=orders "
                                 "file=\"my file.xml\" bytes=12\n");
}

static void json_lines_are_objects(void **state)
{
    char q[128];
    pd_log_set_format(PD_LOG_JSON);
    pd_log(PD_LOG_WARN, "event=stuck watch=w file=%s reason=%s",
           pd_log_quote("a \"b\"\\c\nd\x01", q, sizeof(q)), "disk");
    assert_string_equal(taken(), "{\"time\":\"2023-11-14T22:13:20.250Z\",\"level\":\"warn\","
                                 "\"event\":\"stuck\",\"watch\":\"w\",\"file\":\"a \\\"b\\\"\\\\c\\nd"
                                 "\\u0001\",\"reason\":\"disk\"}\n");
    /* Words that are not key=value go to msg; bytes that are not UTF-8 become U+FFFD. */
    pd_log(PD_LOG_INFO, "event=client logged in; expires in 5 s name=caf\xc3\xa9 bad=\xff");
    assert_string_equal(taken(), "{\"time\":\"2023-11-14T22:13:20.250Z\",\"level\":\"info\","
                                 "\"event\":\"client\",\"name\":\"caf\xc3\xa9\",\"bad\":"
                                 "\"\\ufffd\",\"msg\":\"logged in; expires in 5 s\"}\n");
}

/*
 * In JSON lines a value printed without quotes that reads as a number or a boolean is one; a
 * quoted value is a string whatever it holds, and pd_log_quote() quotes names that would read
 * as numbers, so a file called 2024 is never a number.
 */
static void json_values_keep_their_type(void **state)
{
    static const struct {
        const char *fields, *json;
    } table[] = {
        {"n=12", "\"n\":12"},
        {"n=-3", "\"n\":-3"},
        {"n=0", "\"n\":0"},
        {"delay=0.012", "\"delay\":0.012"},
        {"n=1e3 m=2.5E-3", "\"n\":1e3,\"m\":2.5E-3"},
        {"ok=true bad=false", "\"ok\":true,\"bad\":false"},
        {"n=123456789012345", "\"n\":123456789012345"}, /* 15 digits: exact in a double */
        /* Strings: quoted, not JSON's grammar, or too long to keep exactly. */
        {"n=\"12\"", "\"n\":\"12\""},
        {"b=\"true\"", "\"b\":\"true\""},
        {"n=007", "\"n\":\"007\""},
        {"n=1.", "\"n\":\"1.\""},
        {"n=.5", "\"n\":\".5\""},
        {"n=+1", "\"n\":\"+1\""},
        {"n=-", "\"n\":\"-\""},
        {"n=1e", "\"n\":\"1e\""},
        {"n=0x1f", "\"n\":\"0x1f\""},
        {"n=12abc", "\"n\":\"12abc\""},
        {"range=0-34", "\"range\":\"0-34\""},
        {"t=True f=FALSE z=null nan=NaN", "\"t\":\"True\",\"f\":\"FALSE\",\"z\":\"null\","
                                          "\"nan\":\"NaN\""},
        {"ns=1700000000123456789", "\"ns\":\"1700000000123456789\""},
        {"n=1234567890123456", "\"n\":\"1234567890123456\""},
    };
    char line[256], want[512];

    pd_log_set_format(PD_LOG_JSON);
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        pd_log(PD_LOG_INFO, "event=x %s", table[i].fields);
        snprintf(want, sizeof(want),
                 "{\"time\":\"2023-11-14T22:13:20.250Z\",\"level\":\"info\",\"event\":\"x\",%s}\n",
                 table[i].json);
        snprintf(line, sizeof(line), "%s", taken());
        if (strcmp(line, want) != 0)
            fail_msg("event=x %s\n got: %s want: %s", table[i].fields, line, want);
    }

    /* Names go through pd_log_quote: strings in JSON, quoted in text. */
    char q1[32], q2[32], q3[32];
    pd_log(PD_LOG_INFO, "event=x file=%s watch=%s id=%s", pd_log_quote("2024", q1, sizeof(q1)),
           pd_log_quote("true", q2, sizeof(q2)), pd_log_quote("1.5", q3, sizeof(q3)));
    assert_string_equal(taken(), "{\"time\":\"2023-11-14T22:13:20.250Z\",\"level\":\"info\","
                                 "\"event\":\"x\",\"file\":\"2024\",\"watch\":\"true\","
                                 "\"id\":\"1.5\"}\n");
    pd_log_set_format(PD_LOG_TEXT);
    pd_log(PD_LOG_INFO, "event=x file=%s", pd_log_quote("2024", q1, sizeof(q1)));
    assert_string_equal(taken(), "2023-11-14T22:13:20.250Z level=info event=x file=\"2024\"\n");
    /* What is not a number stays plain in text. */
    assert_string_equal(pd_log_quote("2024.csv", q1, sizeof(q1)), "2024.csv");
}

static void journald_gets_priorities_and_no_time(void **state)
{
    setenv("JOURNAL_STREAM", "8:1234", 1);
    pd_log(PD_LOG_ERROR, "event=x a=1");
    assert_string_equal(taken(), "<3>level=error event=x a=1\n");
    pd_log_set_format(PD_LOG_JSON);
    pd_log(PD_LOG_INFO, "event=y");
    assert_string_equal(taken(), "<6>{\"level\":\"info\",\"event\":\"y\"}\n");
}

static void levels_filter(void **state)
{
    pd_log(PD_LOG_DEBUG, "event=step");
    assert_string_equal(taken(), "");
    pd_log_set_level(PD_LOG_DEBUG);
    pd_log(PD_LOG_DEBUG, "event=step");
    assert_non_null(strstr(taken(), "level=debug event=step"));
    pd_log_set_level(PD_LOG_ERROR);
    pd_log(PD_LOG_WARN, "event=w");
    pd_log(PD_LOG_ERROR, "event=e");
    char *t = taken();
    assert_null(strstr(t, "event=w"));
    assert_non_null(strstr(t, "event=e"));
}

/* An error repeating thousands of times is one line, then one summary per window. */
static void repeats_are_counted_not_written(void **state)
{
    for (int i = 0; i < 5000; i++) {
        pd_log(PD_LOG_ERROR, "event=client retry in %d.%03d s: HTTP 503", i % 7, i % 1000);
        pd_test_mono += 10; /* 50 s in all: inside one window */
    }
    char *t = taken();
    assert_int_equal(count_lines(t), 1);
    assert_non_null(strstr(t, "event=client retry in 0.000 s: HTTP 503"));

    /* Nothing is summarised before the window is over. */
    pd_log_flush_repeats(0);
    assert_string_equal(taken(), "");
    pd_test_mono += 10000;
    pd_log_flush_repeats(0);
    t = taken();
    assert_int_equal(count_lines(t), 1);
    assert_non_null(strstr(t, "level=error event=repeated times=4999 seconds=60 last=\"event=client "
                              "retry in 1.999 s: HTTP 503\""));
    /* After the summary the next copy is written again. */
    pd_log(PD_LOG_ERROR, "event=client retry in 1.000 s: HTTP 503");
    assert_int_equal(count_lines(taken()), 1);
}

static void a_copy_after_the_window_brings_the_summary(void **state)
{
    pd_log(PD_LOG_WARN, "event=folder_error watch=a reason=gone");
    pd_log(PD_LOG_WARN, "event=folder_error watch=a reason=gone");
    pd_log(PD_LOG_WARN, "event=folder_error watch=a reason=gone");
    assert_int_equal(count_lines(taken()), 1);
    pd_test_mono += 61000;
    pd_log(PD_LOG_WARN, "event=folder_error watch=a reason=gone");
    char *t = taken();
    assert_int_equal(count_lines(t), 2);
    assert_non_null(strstr(t, "event=repeated times=2 seconds=61"));
    assert_true(strstr(t, "event=repeated") < strstr(t, "\n"));
}

static void different_lines_and_info_lines_are_all_written(void **state)
{
    for (int i = 0; i < 3; i++) {
        pd_log(PD_LOG_ERROR, "event=stuck file=a.xml");
        pd_log(PD_LOG_ERROR, "event=stuck file=b.xml");
        pd_log(PD_LOG_INFO, "event=delivered file=c.xml");
    }
    char *t = taken();
    assert_int_equal(count_lines(t), 2 + 3);
    /* At exit every pending count is written. */
    pd_log_flush_repeats(1);
    t = taken();
    assert_int_equal(count_lines(t), 2);
    assert_non_null(strstr(t, "times=2"));
}

static void window_zero_never_suppresses(void **state)
{
    pd_log_set_repeat_window(0);
    for (int i = 0; i < 10; i++)
        pd_log(PD_LOG_ERROR, "event=same");
    assert_int_equal(count_lines(taken()), 10);
}

static void many_keys_evict_with_their_summary(void **state)
{
    for (int i = 0; i < 3; i++)
        pd_log(PD_LOG_ERROR, "event=first");
    pd_test_mono += 1;
    for (int k = 0; k < 40; k++)
        pd_log(PD_LOG_ERROR, "event=other%c%c", 'a' + k / 26, 'a' + k % 26);
    char *t = taken();
    /* The oldest entry made room, and said how often it had repeated. */
    assert_non_null(strstr(t, "event=repeated times=2 seconds=0 last=\"event=first\""));
}

static void json_summary_too(void **state)
{
    pd_log_set_format(PD_LOG_JSON);
    pd_log(PD_LOG_ERROR, "event=x reason=%s", "boom");
    pd_log(PD_LOG_ERROR, "event=x reason=%s", "boom");
    pd_log_flush_repeats(1);
    char *t = taken();
    assert_non_null(strstr(t, "\"event\":\"repeated\",\"times\":1,\"seconds\":0,"
                              "\"last\":\"event=x reason=boom\"}"));
}

/* ---- escaping names for terminals (pd_log_escape) and for log values (pd_log_quote) ------- */

static const char *esc(const char *s)
{
    static char b[512];
    return pd_log_escape(s, b, sizeof(b));
}

static void names_are_escaped_for_terminals(void **state)
{
    /* The names of the security report: a window title, a screen wipe, a forged log line. */
    assert_string_equal(esc("a\x1b]0;title\a.txt"), "a\\x1b]0;title\\x07.txt");
    assert_string_equal(esc("b\x1b[2J.txt"), "b\\x1b[2J.txt");
    assert_string_equal(esc("c.txt\n2024-01-01T00:00:00Z level=error event=forged"),
                        "c.txt\\n2024-01-01T00:00:00Z level=error event=forged");
    /* Every C0 control and DEL; tab and carriage return too. */
    assert_string_equal(esc("\x01\t\r\x1f\x7f"), "\\x01\\x09\\x0d\\x1f\\x7f");
    /* Valid UTF-8 stays readable, no-break space and all; backslashes and quotes stay. */
    assert_string_equal(esc("caf\xc3\xa9 \xc2\xa0\xe2\x82\xac \xf0\x9f\x93\xa6 a\\b \"q\".xml"),
                        "caf\xc3\xa9 \xc2\xa0\xe2\x82\xac \xf0\x9f\x93\xa6 a\\b \"q\".xml");
    /* C1 controls: raw (not UTF-8 at all) and UTF-8 encoded U+009B (CSI for some terminals).
     * \233 is 0x9b, written in octal so that the 2 after it is not read as a hex digit. */
    assert_string_equal(esc("x\2332Jy"), "x\\x9b2Jy");
    assert_string_equal(esc("x\xc2\2332J\xc2\x80y"), "x\\xc2\\x9b2J\\xc2\\x80y");
    /* Invalid UTF-8: stray bytes, overlong forms, surrogates, a sequence cut short. */
    assert_string_equal(esc("\xff\xfe"), "\\xff\\xfe");
    assert_string_equal(esc("\xc0\xaf"), "\\xc0\\xaf");
    assert_string_equal(esc("\xed\xa0\x80"), "\\xed\\xa0\\x80");
    assert_string_equal(esc("end\xe2\x82"), "end\\xe2\\x82");
    assert_string_equal(esc(""), "");
    assert_string_equal(esc(NULL), "");
}

static void escaping_is_cut_whole_and_idempotent(void **state)
{
    char small[8], again[2048], once[2048], in[256];
    /* Cut before an escape or a character that does not fit, never inside one. */
    assert_string_equal(pd_log_escape("ab\x1b[2J", small, 6), "ab");
    assert_string_equal(pd_log_escape("abcd\xc3\xa9", small, 6), "abcd");
    assert_string_equal(pd_log_escape("abc\xc3\xa9", small, 6), "abc\xc3\xa9");
    /* Random bytes: the result holds no control byte and no invalid UTF-8, and escaping it
     * again changes nothing. */
    uint64_t x = 88172645463325252ULL;
    for (int round = 0; round < 2000; round++) {
        size_t n = (size_t)(round % 200);
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            in[i] = (char)(x % 255 + 1); /* no NUL */
        }
        in[n] = '\0';
        pd_log_escape(in, once, sizeof(once));
        for (const unsigned char *p = (const unsigned char *)once; *p; p++) {
            if (*p < 0x20 || *p == 0x7f)
                fail_msg("control byte 0x%02x left in round %d", *p, round);
            if (*p == 0xc2 && p[1] >= 0x80 && p[1] < 0xa0)
                fail_msg("a C1 control left in round %d", round);
        }
        pd_log_escape(once, again, sizeof(again));
        assert_string_equal(again, once);
    }
}

static void log_values_escape_the_same_way(void **state)
{
    char q[128];
    /* Invalid UTF-8 and C1 are escaped (and quoted) in log values too; UTF-8 text is plain. */
    assert_string_equal(pd_log_quote("x\xff\xc2\x9b", q, sizeof(q)), "\"x\\xff\\xc2\\x9b\"");
    assert_string_equal(pd_log_quote("caf\xc3\xa9.xml", q, sizeof(q)), "caf\xc3\xa9.xml");
    assert_string_equal(pd_log_quote("a\x1b]0;t\a \"\\", q, sizeof(q)),
                        "\"a\\x1b]0;t\\x07 \\\"\\\\\"");
    /* Cut to fit, the closing quote kept. */
    assert_string_equal(pd_log_quote("a b c d e f", q, 8), "\"a b c\"");
}

/* A server's words in a note arrive unquoted: they still cannot forge a line or drive a
 * terminal, in text or in JSON. */
static void unquoted_words_cannot_break_a_line(void **state)
{
    pd_log(PD_LOG_WARN, "event=client retry in 1 s: %s", "boom\x1b[2J\nlevel=error event=forged");
    assert_string_equal(taken(), "2023-11-14T22:13:20.250Z level=warn event=client retry in 1 s: "
                                 "boom\\x1b[2J\\nlevel=error event=forged\n");
    pd_log_set_format(PD_LOG_JSON);
    pd_log(PD_LOG_INFO, "event=x v=a\xc2\233b"); /* U+009B, octal before a hex digit */
    assert_string_equal(taken(), "{\"time\":\"2023-11-14T22:13:20.250Z\",\"level\":\"info\","
                                 "\"event\":\"x\",\"v\":\"a\\u009bb\"}\n");
}

int main(void)
{
    return PD_RUN_TESTS(setup, teardown, text_lines_have_time_level_and_fields,
                        json_lines_are_objects, json_values_keep_their_type,
                        journald_gets_priorities_and_no_time, levels_filter,
                        repeats_are_counted_not_written, a_copy_after_the_window_brings_the_summary,
                        different_lines_and_info_lines_are_all_written,
                        window_zero_never_suppresses, many_keys_evict_with_their_summary,
                        json_summary_too, unquoted_words_cannot_break_a_line) +
           PD_RUN_TESTS(NULL, NULL, names_are_escaped_for_terminals,
                        escaping_is_cut_whole_and_idempotent, log_values_escape_the_same_way);
}
