/*
 * What the unit tests share: one way to run a file's tests, a fresh temporary folder per test,
 * paths and files in it, the log sent to a file, a fake clock. Built into every tests/test_*.c
 * executable.
 */
#ifndef PD_TESTLIB_H
#define PD_TESTLIB_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pd_clock.h"
#include "pd_log.h"

#include <stdio.h>

/*
 * Runs the test functions listed after SETUP and TEARDOWN (either may be NULL), each between
 * them, as cmocka's group "tests"; returns how many failed (main's exit status).
 */
#define PD_RUN_TESTS(setup, teardown, ...) PD_RUN_(setup, teardown, NULL, NULL, __VA_ARGS__)
/* The same, each test in a fresh pd_test_dir. */
#define PD_RUN_IN_DIR(...) PD_RUN_TESTS(pd_test_setup, pd_test_teardown, __VA_ARGS__)
/* The same, SETUP before the first test and TEARDOWN after the last. */
#define PD_RUN_GROUP(setup, teardown, ...) PD_RUN_(NULL, NULL, setup, teardown, __VA_ARGS__)

#define PD_RUN_(setup, teardown, group_setup, group_teardown, ...)                                 \
    pd_run_tests(#__VA_ARGS__, (const CMUnitTestFunction[]){__VA_ARGS__},                          \
                 sizeof((const CMUnitTestFunction[]){__VA_ARGS__}) / sizeof(CMUnitTestFunction),   \
                 (CMFixtureFunction[]){setup, teardown, group_setup, group_teardown})

/*
 * What the PD_RUN macros call: NAMES is the list of N functions FNS as written, "a, b, c";
 * FIXTURES: each test's setup and teardown, then the group's.
 */
int pd_run_tests(const char *names, const CMUnitTestFunction *fns, size_t n,
                 const CMFixtureFunction fixtures[4]);

/* The running test's temporary folder, /tmp/pd-<program>-XXXXXX. */
extern char pd_test_dir[256];

/* Makes pd_test_dir. A file's own setup() may call it first. */
int pd_test_setup(void **state);
/* Removes pd_test_dir and all below it. */
int pd_test_teardown(void **state);

/* rm -rf PATH; fails the test if that fails. */
void pd_test_rm_rf(const char *path);
/* DIR/NAME in one of eight rotating buffers (enough for one call's arguments). */
const char *pd_test_path(const char *dir, const char *name);
/* Writes TEXT to PATH, replacing what was there; fails the test if it cannot. */
void pd_test_write(const char *path, const char *text);

/* Appends LINE and a line feed to BUF (SIZE bytes, *LEN of them used) when they fit: the log
 * lines a test collects to read back. */
void pd_test_add_line(char *buf, size_t size, size_t *len, const char *line);

/* Sends the log to OUT at LEVEL, repeats suppressed for WINDOW_MS (0: never). */
void pd_test_log_to(FILE *out, enum pd_log_level level, uint64_t window_ms);

/* A clock that says what the test sets: pd_test_mono and pd_test_wall; random() is 4. */
extern uint64_t pd_test_mono, pd_test_wall;
extern const struct pd_clock pd_test_clock;

#endif
