/* Unit tests of the CSV reader: quoting, line endings, BOM, and bad rows named by line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include "testlib.h"

#include "pd_csv.h"
#include "pd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Reads TEXT whole; returns the rows as "a|b;c|d" with each row's line as "@N". */
static char *read_all(const char *text, size_t len, int *last_rc, char *err, size_t errlen)
{
    struct pd_csv *r;
    struct pd_csv_row row;
    char *out = calloc(1, 8192);
    int rc;
    assert_int_equal(pd_csv_create(-1, text, len, "t.csv", 0, &r), 0);
    while ((rc = pd_csv_next(r, &row)) != 0) {
        if (rc < 0) {
            snprintf(err, errlen, "%s", pd_csv_error(r));
            strcat(out, "!");
            if (!pd_csv_can_continue(r))
                break;
            continue;
        }
        char line[32];
        snprintf(line, sizeof(line), "@%llu:", (unsigned long long)row.line);
        strcat(out, line);
        for (size_t i = 0; i < row.nfields; i++) {
            if (i)
                strcat(out, "|");
            strcat(out, row.fields[i]);
            assert_int_equal(strlen(row.fields[i]), row.lens[i]);
        }
        strcat(out, ";");
    }
    *last_rc = rc;
    pd_csv_destroy(&r);
    assert_null(r);
    return out;
}

static void expect_rows(const char *text, const char *want)
{
    char err[600] = "";
    int rc;
    char *got = read_all(text, strlen(text), &rc, err, sizeof(err));
    assert_string_equal(got, want);
    assert_int_equal(rc, 0);
    free(got);
}

static void test_plain_and_quoted(void **state)
{
    (void)state;
    expect_rows("a,b\n1,2\n", "@1:a|b;@2:1|2;");
    /* no final newline */
    expect_rows("a,b\n1,2", "@1:a|b;@2:1|2;");
    /* embedded comma, doubled quotes, empty fields */
    expect_rows("\"x, y\",\"say \"\"hi\"\"\"\n,\n\"\",z\n", "@1:x, y|say \"hi\";@2:|;@3:|z;");
    /* a quote inside an unquoted field is kept as it is */
    expect_rows("12\" pipe,a\n", "@1:12\" pipe|a;");
}

static void test_newlines_in_fields(void **state)
{
    (void)state;
    /* A field spanning lines: the next row's line number counts them. */
    expect_rows("\"one\ntwo\nthree\",x\nnext,y\n", "@1:one\ntwo\nthree|x;@4:next|y;");
    /* CRLF rows; a CRLF inside quotes is kept */
    expect_rows("a,b\r\n\"p\r\nq\",r\r\nlast,z\r\n", "@1:a|b;@2:p\r\nq|r;@4:last|z;");
    /* a lone CR ends a row too (old Mac files) */
    expect_rows("a,b\rc,d\r", "@1:a|b;@2:c|d;");
}

static void test_bom_and_empty_lines(void **state)
{
    (void)state;
    expect_rows("\xEF\xBB\xBF"
                "left_value,right_value\n\nA,1\n",
                "@1:left_value|right_value;@2:;@3:A|1;");
    expect_rows("", "");
    expect_rows("\xEF\xBB\xBF", "");
}

static void test_bad_rows_reported_by_line(void **state)
{
    char err[600] = "";
    int rc;
    (void)state;
    /* text after a closing quote: that row is bad, reading goes on */
    const char *t = "a,b\n\"x\"y,1\nc,d\n";
    char *got = read_all(t, strlen(t), &rc, err, sizeof(err));
    assert_string_equal(got, "@1:a|b;!@3:c|d;");
    assert_non_null(strstr(err, "t.csv: line 2: text after the closing quote"));
    free(got);

    /* an unterminated quote: fatal, named by the line where the quote opened */
    t = "a,b\nc,d\ne,\"never\nends\n";
    got = read_all(t, strlen(t), &rc, err, sizeof(err));
    assert_string_equal(got, "@1:a|b;@2:c|d;!");
    assert_int_equal(rc, PD_EPARSE);
    assert_non_null(strstr(err, "line 3: a quoted field starts here and never ends"));
    free(got);

    /* invalid UTF-8 */
    t = "a,b\nc\xff,d\nok,1\n";
    got = read_all(t, strlen(t), &rc, err, sizeof(err));
    assert_string_equal(got, "@1:a|b;!@3:ok|1;");
    assert_non_null(strstr(err, "line 2: field 1 is not UTF-8"));
    free(got);

    /* UTF-16 */
    t = "\xFF\xFE"
        "a\0,\0";
    got = read_all(t, 6, &rc, err, sizeof(err));
    assert_int_equal(rc, PD_EENCODING);
    assert_non_null(strstr(err, "UTF-16"));
    free(got);

    /* NUL byte */
    t = "a,b\nc\0d,e\n";
    got = read_all(t, 10, &rc, err, sizeof(err));
    assert_int_equal(rc, PD_EENCODING);
    assert_non_null(strstr(err, "line 2: a NUL byte"));
    free(got);
}

static void test_field_limit(void **state)
{
    struct pd_csv *r;
    struct pd_csv_row row;
    (void)state;
    const char *t = "\"0123456789abcdef\n";
    assert_int_equal(pd_csv_create(-1, t, strlen(t), "t.csv", 8, &r), 0);
    assert_int_equal(pd_csv_next(r, &row), PD_ELIMIT);
    assert_false(pd_csv_can_continue(r));
    assert_non_null(strstr(pd_csv_error(r), "longer than 8 bytes"));
    assert_int_equal(pd_csv_next(r, &row), PD_ELIMIT);
    pd_csv_destroy(&r);
}

/* The file path: rows cut across the 64 KiB read buffer come out whole. */
static void test_reads_from_fd_across_buffers(void **state)
{
    char path[] = "/tmp/pd-test-csv-XXXXXX";
    int fd = mkstemp(path);
    struct pd_csv *r;
    struct pd_csv_row row;
    (void)state;
    assert_true(fd >= 0);
    FILE *f = fdopen(dup(fd), "w");
    fputs("\xEF\xBB\xBFleft_value,right_value\r\n", f);
    for (int i = 0; i < 20000; i++)
        fprintf(f, "key-%d,\"value, %d\nsecond line\"\r\n", i, i);
    fclose(f);
    lseek(fd, 0, SEEK_SET);
    assert_int_equal(pd_csv_create(fd, NULL, 0, path, 0, &r), 0);
    assert_int_equal(pd_csv_next(r, &row), 1);
    assert_string_equal(row.fields[0], "left_value");
    for (int i = 0; i < 20000; i++) {
        char want[64];
        assert_int_equal(pd_csv_next(r, &row), 1);
        assert_int_equal(row.nfields, 2);
        snprintf(want, sizeof(want), "key-%d", i);
        assert_string_equal(row.fields[0], want);
        snprintf(want, sizeof(want), "value, %d\nsecond line", i);
        assert_string_equal(row.fields[1], want);
        assert_int_equal(row.line, 2 + 2 * (uint64_t)i);
    }
    assert_int_equal(pd_csv_next(r, &row), 0);
    pd_csv_destroy(&r);
    close(fd);
    unlink(path);
}

static void test_writer_quotes_only_when_needed(void **state)
{
    struct pd_csv_buf b = {0};
    (void)state;
    assert_int_equal(pd_csv_put_field(&b, "plain", true), 0);
    assert_int_equal(pd_csv_put_field(&b, "a,b", false), 0);
    assert_int_equal(pd_csv_put_field(&b, "say \"x\"", false), 0);
    assert_int_equal(pd_csv_put_field(&b, "two\nlines", false), 0);
    assert_int_equal(pd_csv_put_field(&b, " padded ", false), 0);
    assert_int_equal(pd_csv_put_field(&b, "", false), 0);
    assert_int_equal(pd_csv_end_row(&b), 0);
    assert_string_equal(b.data, "plain,\"a,b\",\"say \"\"x\"\"\",\"two\nlines\",\" padded \",\n");
    /* and it reads back the same */
    char err[600];
    int rc;
    char *got = read_all(b.data, b.len, &rc, err, sizeof(err));
    assert_string_equal(got, "@1:plain|a,b|say \"x\"|two\nlines| padded |;");
    free(got);
    free(b.data);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, test_plain_and_quoted, test_newlines_in_fields,
                        test_bom_and_empty_lines, test_bad_rows_reported_by_line, test_field_limit,
                        test_reads_from_fd_across_buffers, test_writer_quotes_only_when_needed);
}
