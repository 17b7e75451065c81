/* What the unit tests share (see testlib.h). */
#include "testlib.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int pd_run_tests(const char *names, const CMUnitTestFunction *fns, size_t n,
                 const CMFixtureFunction fixtures[4])
{
    struct CMUnitTest *tests = calloc(n, sizeof(*tests));
    char *copy = strdup(names), *save = NULL;
    size_t i = 0;

    if (!tests || !copy) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    for (char *name = strtok_r(copy, ", ", &save); name && i < n;
         name = strtok_r(NULL, ", ", &save), i++)
        tests[i] = (struct CMUnitTest){name, fns[i], fixtures[0], fixtures[1], NULL};
    int failed = 1;
    if (i == n)
        failed = _cmocka_run_group_tests("tests", tests, n, fixtures[2], fixtures[3]);
    else
        fprintf(stderr, "%zu test names for %zu tests\n", i, n);
    free(tests);
    free(copy);
    return failed;
}

char pd_test_dir[256];

int pd_test_setup(void **state)
{
    (void)state;
    snprintf(pd_test_dir, sizeof(pd_test_dir), "/tmp/pd-%s-XXXXXX", program_invocation_short_name);
    assert_non_null(mkdtemp(pd_test_dir));
    return 0;
}

int pd_test_teardown(void **state)
{
    (void)state;
    pd_test_rm_rf(pd_test_dir);
    return 0;
}

void pd_test_rm_rf(const char *path)
{
    char cmd[700];
    assert_true(snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path) < (int)sizeof(cmd));
    assert_int_equal(system(cmd), 0);
}

const char *pd_test_path(const char *dir, const char *name)
{
    static char bufs[8][600];
    static int i;
    char *b = bufs[i++ % 8];
    snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
    return b;
}

void pd_test_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

void pd_test_add_line(char *buf, size_t size, size_t *len, const char *line)
{
    int n = snprintf(buf + *len, size - *len, "%s\n", line);
    if (n > 0 && (size_t)n < size - *len)
        *len += (size_t)n;
}

void pd_test_log_to(FILE *out, enum pd_log_level level, uint64_t window_ms)
{
    pd_log_set_output(out);
    pd_log_set_level(level);
    pd_log_set_repeat_window(window_ms);
}

uint64_t pd_test_mono, pd_test_wall;

static uint64_t mono(void *arg)
{
    (void)arg;
    return pd_test_mono;
}

static uint64_t wall(void *arg)
{
    (void)arg;
    return pd_test_wall;
}

static uint32_t rnd(void *arg)
{
    (void)arg;
    return 4;
}

const struct pd_clock pd_test_clock = {mono, wall, rnd, NULL};
