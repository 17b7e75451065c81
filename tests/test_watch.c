/* The folder watcher on a real loop and real folders: scans, inotify hints, recursion, loss. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pd_watch.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

struct seen {
    char names[64][256];
    int n;
    int scans_done;
    int errors;
};

static void on_event(void *arg, enum pd_watch_event ev, const char *name)
{
    struct seen *s = arg;
    if (ev == PD_WATCH_SCAN_DONE) {
        s->scans_done++;
        return;
    }
    if (ev == PD_WATCH_ERROR) {
        s->errors++;
        return;
    }
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name))
            return;
    if (s->n < 64)
        snprintf(s->names[s->n++], 256, "%s", name);
}

static bool has(const struct seen *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name))
            return true;
    return false;
}

static void touch(const char *rel)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, rel);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("x", f);
    fclose(f);
}

/* Runs the loop until COND holds or about 3 s passed (bounded, never asserts a time). */
#define RUN_UNTIL(loop, cond)                                                                      \
    do {                                                                                           \
        for (int i_ = 0; i_ < 300 && !(cond); i_++) {                                              \
            uv_run(loop, UV_RUN_NOWAIT);                                                           \
            usleep(10000);                                                                         \
        }                                                                                          \
    } while (0)

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/pd-test-watch-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    return 0;
}

static int closed;
static void on_closed(void *arg)
{
    closed++;
}

static void close_and_check(uv_loop_t *loop, struct pd_watcher **w)
{
    closed = 0;
    pd_watcher_close(w, on_closed, NULL);
    assert_null(*w);
    uv_run(loop, UV_RUN_DEFAULT);
    assert_int_equal(closed, 1);
    assert_int_equal(uv_loop_close(loop), 0); /* no handle left behind */
}

static void test_initial_scan_and_inotify(void **state)
{
    uv_loop_t loop;
    struct pd_watcher *w;
    struct seen s = {0};
    struct pd_watch_opts o = {.root = dir, .rescan_ms = 60000, .skip = ".patchdrop"};

    touch("before.xml");
    mkdir(strcat(strcpy((char[300]){0}, dir), "/.patchdrop"), 0700);
    touch(".patchdrop/inside");
    uv_loop_init(&loop);
    assert_int_equal(pd_watcher_create(&loop, &o, on_event, &s, &w), 0);
    assert_int_equal(pd_watcher_start(w), 0);
    RUN_UNTIL(&loop, s.scans_done >= 1);
    assert_int_equal(s.scans_done, 1);
    assert_true(has(&s, "before.xml"));
    assert_false(has(&s, ".patchdrop/inside"));
    /* The rescan is a minute away: only inotify can report this one. */
    touch("after.json");
    RUN_UNTIL(&loop, has(&s, "after.json"));
    assert_true(has(&s, "after.json"));
    assert_int_equal(pd_watcher_scans(w), 1);
    close_and_check(&loop, &w);
}

static void test_poll_mode_uses_rescans(void **state)
{
    uv_loop_t loop;
    struct pd_watcher *w;
    struct seen s = {0};
    struct pd_watch_opts o = {.root = dir, .rescan_ms = 100, .poll = true};

    uv_loop_init(&loop);
    assert_int_equal(pd_watcher_create(&loop, &o, on_event, &s, &w), 0);
    assert_int_equal(pd_watcher_start(w), 0);
    RUN_UNTIL(&loop, s.scans_done >= 1);
    touch("late.csv");
    RUN_UNTIL(&loop, has(&s, "late.csv"));
    assert_true(has(&s, "late.csv"));
    assert_true(pd_watcher_scans(w) >= 2);
    close_and_check(&loop, &w);
}

static void test_recursive_new_subfolder(void **state)
{
    uv_loop_t loop;
    struct pd_watcher *w;
    struct seen s = {0};
    struct pd_watch_opts o = {.root = dir, .rescan_ms = 60000, .recursive = true};
    char sub[300];

    uv_loop_init(&loop);
    assert_int_equal(pd_watcher_create(&loop, &o, on_event, &s, &w), 0);
    assert_int_equal(pd_watcher_start(w), 0);
    RUN_UNTIL(&loop, s.scans_done >= 1);
    snprintf(sub, sizeof(sub), "%s/partner-a", dir);
    mkdir(sub, 0755);
    touch("partner-a/one.xml");
    RUN_UNTIL(&loop, has(&s, "partner-a/one.xml"));
    assert_true(has(&s, "partner-a/one.xml"));
    /* Once watched, a second file is reported by inotify. */
    touch("partner-a/two.xml");
    RUN_UNTIL(&loop, has(&s, "partner-a/two.xml"));
    assert_true(has(&s, "partner-a/two.xml"));
    close_and_check(&loop, &w);
}

static void test_not_recursive_reports_folder_names(void **state)
{
    uv_loop_t loop;
    struct pd_watcher *w;
    struct seen s = {0};
    struct pd_watch_opts o = {.root = dir, .rescan_ms = 60000};
    char sub[300];

    snprintf(sub, sizeof(sub), "%s/sub", dir);
    mkdir(sub, 0755);
    touch("sub/deep.xml");
    uv_loop_init(&loop);
    assert_int_equal(pd_watcher_create(&loop, &o, on_event, &s, &w), 0);
    assert_int_equal(pd_watcher_start(w), 0);
    RUN_UNTIL(&loop, s.scans_done >= 1);
    /* The folder is reported (the daemon says it is not a file); its contents are not. */
    assert_true(has(&s, "sub"));
    assert_false(has(&s, "sub/deep.xml"));
    close_and_check(&loop, &w);
}

static void test_root_deleted_and_recreated(void **state)
{
    uv_loop_t loop;
    struct pd_watcher *w;
    struct seen s = {0};
    char root[300];
    snprintf(root, sizeof(root), "%s/drop", dir);
    mkdir(root, 0755);
    struct pd_watch_opts o = {.root = root, .rescan_ms = 100};

    uv_loop_init(&loop);
    assert_int_equal(pd_watcher_create(&loop, &o, on_event, &s, &w), 0);
    assert_int_equal(pd_watcher_start(w), 0);
    RUN_UNTIL(&loop, s.scans_done >= 1);
    assert_int_equal(rmdir(root), 0);
    RUN_UNTIL(&loop, s.errors >= 1);
    assert_int_equal(s.errors, 1);
    /* Reported once, not at every rescan. */
    for (int i = 0; i < 30; i++) {
        uv_run(&loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
    assert_int_equal(s.errors, 1);
    mkdir(root, 0755);
    touch("drop/back.xml");
    RUN_UNTIL(&loop, has(&s, "back.xml"));
    assert_true(has(&s, "back.xml"));
    close_and_check(&loop, &w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_initial_scan_and_inotify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poll_mode_uses_rescans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recursive_new_subfolder, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_recursive_reports_folder_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_root_deleted_and_recreated, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
