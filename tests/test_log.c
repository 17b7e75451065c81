/* Unit tests of the log: text and JSON lines, journald prefixes, levels, repeat suppression. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pd_clock.h"
#include "pd_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* 2023-11-14T22:13:20.250Z */
#define WALL0 1700000000250ULL

static uint64_t fake_mono, fake_wall;
static uint64_t mono(void *arg)
{
    return fake_mono;
}
static uint64_t wall(void *arg)
{
    return fake_wall;
}
static uint32_t rnd(void *arg)
{
    return 4;
}
static const struct pd_clock fake = {mono, wall, rnd, NULL};

static char *buf;
static size_t buflen;
static FILE *out;

static int setup(void **state)
{
    unsetenv("JOURNAL_STREAM");
    fake_mono = 1000;
    fake_wall = WALL0;
    out = open_memstream(&buf, &buflen);
    pd_log_set_output(out);
    pd_log_set_clock(&fake);
    pd_log_set_format(PD_LOG_TEXT);
    pd_log_set_level(PD_LOG_INFO);
    pd_log_set_repeat_window(60000);
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

static void json_lines_are_objects_of_strings(void **state)
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
        fake_mono += 10; /* 50 s in all: inside one window */
    }
    char *t = taken();
    assert_int_equal(count_lines(t), 1);
    assert_non_null(strstr(t, "event=client retry in 0.000 s: HTTP 503"));

    /* Nothing is summarised before the window is over. */
    pd_log_flush_repeats(0);
    assert_string_equal(taken(), "");
    fake_mono += 10000;
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
    fake_mono += 61000;
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
    fake_mono += 1;
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
    assert_non_null(strstr(t, "\"event\":\"repeated\",\"times\":\"1\",\"seconds\":\"0\","
                              "\"last\":\"event=x reason=boom\"}"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(text_lines_have_time_level_and_fields, setup, teardown),
        cmocka_unit_test_setup_teardown(json_lines_are_objects_of_strings, setup, teardown),
        cmocka_unit_test_setup_teardown(journald_gets_priorities_and_no_time, setup, teardown),
        cmocka_unit_test_setup_teardown(levels_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(repeats_are_counted_not_written, setup, teardown),
        cmocka_unit_test_setup_teardown(a_copy_after_the_window_brings_the_summary, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(different_lines_and_info_lines_are_all_written, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(window_zero_never_suppresses, setup, teardown),
        cmocka_unit_test_setup_teardown(many_keys_evict_with_their_summary, setup, teardown),
        cmocka_unit_test_setup_teardown(json_summary_too, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
