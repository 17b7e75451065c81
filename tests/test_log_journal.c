/* Unit tests of the journal's fields of a log line (EVENT=, WATCH=, FILE=), and that a line
 * meant for journald is never lost when the journal cannot take it. */
#include "testlib.h"

#include "pd_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char fields[4][PD_LOG_FIELD_MAX];

/* The fields of MSG joined with '|'. */
static const char *fields_of(const char *msg)
{
    static char joined[4 * PD_LOG_FIELD_MAX];
    size_t n = pd_log_journal_fields(msg, fields, 4);

    joined[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        if (i)
            strcat(joined, "|");
        strcat(joined, fields[i]);
    }
    return joined;
}

static void fields_from_a_line(void **state)
{
    char q[256], line[512];

    assert_string_equal(fields_of("event=delivered watch=orders file=a.csv chunks=1 bytes=10"),
                        "EVENT=delivered|WATCH=orders|FILE=a.csv");
    /* Quoted values are unquoted, as `journalctl FILE=...` is typed. */
    snprintf(line, sizeof(line), "event=failed watch=%s file=%s reason=\"x y\"",
             pd_log_quote("2024", q, sizeof(q)), "\"May orders.csv\"");
    assert_string_equal(fields_of(line), "EVENT=failed|WATCH=2024|FILE=May orders.csv");
    /* Only these three keys, whole: not files=, not watch_dir=. */
    assert_string_equal(fields_of("event=sweep files=3 watch_dir=/x"), "EVENT=sweep");
    /* Words that are not key=value, quoted ones with '=' inside too, are skipped. */
    assert_string_equal(fields_of("server said \"watch=evil file=x\" event=note"), "EVENT=note");
    /* The first of a key counts. */
    assert_string_equal(fields_of("event=a event=b watch=w watch=v"), "EVENT=a|WATCH=w");
    assert_string_equal(fields_of("no fields here"), "");
    assert_string_equal(fields_of(""), "");
}

/* A partner's name reaches the journal escaped, as in the line: no newline, no control. */
static void names_stay_escaped(void **state)
{
    char q[256], line[512];

    snprintf(line, sizeof(line), "event=ignored watch=w file=%s",
             pd_log_quote("evil\nname\x1b[31m.csv", q, sizeof(q)));
    assert_string_equal(fields_of(line), "EVENT=ignored|WATCH=w|FILE=evil\\nname\\x1b[31m.csv");
    /* A value too long is cut, never overrun. */
    char big[3000];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    snprintf(line, sizeof(line), "file=%.400s", big);
    assert_int_equal(pd_log_journal_fields(line, fields, 4), 1);
    assert_int_equal(strlen(fields[0]), 5 + 400);
    assert_int_equal(pd_log_journal_fields("event=a watch=b file=c", fields, 2), 2);
}

/* With JOURNAL_STREAM naming stderr but no journal to take the line, it goes to stderr with its
 * priority prefix; naming another stream, the prefix as before. Never lost. */
static void line_falls_back_to_stderr(void **state)
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    struct stat st;
    char env[64], text[512] = "";

    assert_non_null(tmp);
    assert_true(dup2(fileno(tmp), STDERR_FILENO) >= 0);
    assert_int_equal(fstat(STDERR_FILENO, &st), 0);
    pd_log_set_output(NULL);
    pd_log_set_format(PD_LOG_TEXT);
    snprintf(env, sizeof(env), "%ju:%ju", (uintmax_t)st.st_dev, (uintmax_t)st.st_ino);
    setenv("JOURNAL_STREAM", env, 1);
    pd_log(PD_LOG_INFO, "event=journal_test watch=w"); /* a real journal here takes it */
    setenv("JOURNAL_STREAM", "1:2", 1);
    pd_log(PD_LOG_WARN, "event=other_stream");
    unsetenv("JOURNAL_STREAM");
    fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    rewind(tmp);
    size_t n = fread(text, 1, sizeof(text) - 1, tmp);
    text[n] = '\0';
    fclose(tmp);
    if (access("/run/systemd/journal/socket", F_OK) != 0)
        assert_non_null(strstr(text, "<6>level=info event=journal_test watch=w\n"));
    assert_non_null(strstr(text, "<4>level=warn event=other_stream\n"));
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, fields_from_a_line, names_stay_escaped,
                        line_falls_back_to_stderr);
}
