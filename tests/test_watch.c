/* The folder watcher on a real loop and real folders: scans, inotify hints, recursion, loss. */
#include "testlib.h"

#include "pd_watch.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static const char *const dir = pd_test_dir;
static char drop[300]; /* DIR/drop, the root of the tests that need an outside */

struct seen {
    char names[64][PATH_MAX];
    int n;
    int scans_done;
    int errors;
    int skipped;         /* PD_WATCH_SKIPPED events */
    int skipped_at_done; /* ... counted when the last PD_WATCH_SCAN_DONE came */
    char skip_msg[PATH_MAX + 256];
    size_t longest; /* the longest name ever reported */
    /* When set: the first name reported under SWAP_WHEN exchanges SWAP_A and SWAP_B. */
    const char *swap_when, *swap_a, *swap_b;
    bool swapped;
};

/* renameat2(RENAME_EXCHANGE) through syscall(): glibc had no wrapper before 2.28. */
static int exchange(const char *a, const char *b)
{
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

static void on_event(void *arg, enum pd_watch_event ev, const char *name)
{
    struct seen *s = arg;
    if (ev == PD_WATCH_SCAN_DONE) {
        s->scans_done++;
        s->skipped_at_done = s->skipped;
        return;
    }
    if (ev == PD_WATCH_ERROR) {
        s->errors++;
        return;
    }
    if (ev == PD_WATCH_SKIPPED) {
        s->skipped++;
        snprintf(s->skip_msg, sizeof(s->skip_msg), "%s", name);
        return;
    }
    assert_int_equal(ev, PD_WATCH_SEEN);
    if (strlen(name) > s->longest)
        s->longest = strlen(name);
    if (s->swap_when && !s->swapped && !strncmp(name, s->swap_when, strlen(s->swap_when))) {
        assert_int_equal(exchange(s->swap_a, s->swap_b), 0);
        s->swapped = true;
    }
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name))
            return;
    if (s->n < 64)
        snprintf(s->names[s->n++], PATH_MAX, "%s", name);
}

static bool has(const struct seen *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (!strcmp(s->names[i], name))
            return true;
    return false;
}

/* Whether any reported name contains PART. */
static bool has_part(const struct seen *s, const char *part)
{
    for (int i = 0; i < s->n; i++)
        if (strstr(s->names[i], part))
            return true;
    return false;
}

/* DIR/REL, in one of four rotating buffers (enough for one call's arguments). */
static const char *at(const char *rel)
{
    return pd_test_path(dir, rel);
}

/* mkdir -p DIR/REL */
static void mkdirs(const char *rel)
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", at(rel));
    assert_int_equal(system(cmd), 0);
}

static void touch(const char *rel)
{
    pd_test_write(at(rel), "x");
}

/* Runs the loop for about N times 10 ms: for "nothing is reported" checks. */
static void spin(uv_loop_t *loop, int n)
{
    for (int i = 0; i < n; i++) {
        uv_run(loop, UV_RUN_NOWAIT);
        usleep(10000);
    }
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
    pd_test_setup(state);
    snprintf(drop, sizeof(drop), "%s/drop", dir);
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

/* Starts a watcher with O on a fresh LOOP, its events into S, and waits for its first scan. */
static void start_watch(uv_loop_t *loop, const struct pd_watch_opts *o, struct seen *s,
                        struct pd_watcher **w)
{
    uv_loop_init(loop);
    assert_int_equal(pd_watcher_create(loop, o, on_event, s, w), 0);
    assert_int_equal(pd_watcher_start(*w), 0);
    RUN_UNTIL(loop, s->scans_done >= 1);
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
    start_watch(&loop, &o, &s, &w);
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

    start_watch(&loop, &o, &s, &w);
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

    start_watch(&loop, &o, &s, &w);
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
    start_watch(&loop, &o, &s, &w);
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

    start_watch(&loop, &o, &s, &w);
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

/* A symlink to a folder outside the root is reported by name but never entered or watched. */
static void test_symlink_to_outside_not_entered(void **state)
{
    uv_loop_t loop;
    struct pd_watcher *w;
    struct seen s = {0};
    struct pd_watch_opts o = {.root = drop, .rescan_ms = 60000, .recursive = true};

    mkdirs("drop/real");
    mkdirs("outside/deeper");
    touch("drop/real/ok.xml");
    touch("outside/secret.xml");
    touch("outside/deeper/also.xml");
    assert_int_equal(symlink("../outside", at("drop/link")), 0);
    start_watch(&loop, &o, &s, &w);
    assert_int_equal(s.scans_done, 1);
    assert_true(has(&s, "real/ok.xml"));
    assert_true(has(&s, "link")); /* the name, for the caller to refuse */
    assert_false(has_part(&s, "link/"));
    assert_false(has_part(&s, "secret"));
    assert_false(has_part(&s, "also"));
    /* No watch went through the link: a file written outside is not reported. */
    touch("outside/new.xml");
    touch("drop/real/later.xml");
    RUN_UNTIL(&loop, has(&s, "real/later.xml"));
    assert_true(has(&s, "real/later.xml"));
    spin(&loop, 20);
    pd_watcher_rescan(w);
    RUN_UNTIL(&loop, s.scans_done >= 2);
    assert_int_equal(s.scans_done, 2);
    assert_false(has_part(&s, "link/"));
    assert_false(has_part(&s, "new.xml"));
    close_and_check(&loop, &w);
}

/*
 * A watched subfolder exchanged with a symlink to the outside between two scans: the rescan
 * does not enter the symlink, finds the real folder under its new name, and the folder's watch
 * reports under that name; events that came before the rescan are not reported under the old
 * name (which now leads outside).
 */
static void test_subfolder_swapped_before_rescan(void **state)
{
    uv_loop_t loop;
    struct pd_watcher *w;
    struct seen s = {0};
    struct pd_watch_opts o = {.root = drop, .rescan_ms = 60000, .recursive = true};

    mkdirs("drop/sub");
    mkdirs("outside");
    touch("drop/sub/a.xml");
    touch("outside/secret.xml");
    assert_int_equal(symlink("../outside", at("drop/evil")), 0);
    start_watch(&loop, &o, &s, &w);
    assert_true(has(&s, "sub/a.xml"));
    assert_true(has(&s, "evil"));
    assert_false(has_part(&s, "secret"));

    /* The swap, and a file written into the real folder before the watcher hears of it. */
    assert_int_equal(exchange(at("drop/sub"), at("drop/evil")), 0);
    touch("drop/evil/b.xml");
    touch("outside/c.xml");
    s.n = 0;
    /* IN_MOVE_SELF and IN_MOVED_TO ask for the rescan; let every scan asked for run. */
    RUN_UNTIL(&loop, s.scans_done >= 2 && has(&s, "evil/b.xml"));
    spin(&loop, 20);
    assert_true(s.scans_done >= 2);
    assert_true(has(&s, "evil/a.xml"));
    assert_true(has(&s, "evil/b.xml"));
    assert_true(has(&s, "sub"));
    assert_false(has_part(&s, "sub/"));
    assert_false(has_part(&s, "secret"));
    assert_false(has_part(&s, "c.xml"));

    /* The folder is still watched, under the name it has now (the rescan is a minute away). */
    int scans = s.scans_done;
    touch("drop/evil/d.xml");
    touch("outside/e.xml");
    RUN_UNTIL(&loop, has(&s, "evil/d.xml"));
    assert_true(has(&s, "evil/d.xml"));
    spin(&loop, 20);
    assert_int_equal(s.scans_done, scans);
    assert_false(has_part(&s, "sub/"));
    assert_false(has_part(&s, "e.xml"));
    close_and_check(&loop, &w);
}

/*
 * The swap in the middle of a scan: as soon as the first name under a/ is reported, a/ is
 * exchanged with a symlink to a tree that has the same subfolder names. Joined paths
 * ("drop/a/b2") would now lead outside; the scan goes on in the folder it opened.
 */
static void test_subfolder_swapped_mid_scan(void **state)
{
    uv_loop_t loop;
    struct pd_watcher *w;
    struct seen s = {0};
    struct pd_watch_opts o = {.root = drop, .rescan_ms = 60000, .recursive = true};
    const char *subs[] = {"b1", "b2", "b3", "b4"};
    char rel[64], a[sizeof(drop) + 8], evil[sizeof(drop) + 8];

    for (size_t i = 0; i < 4; i++) {
        snprintf(rel, sizeof(rel), "drop/a/%s", subs[i]);
        mkdirs(rel);
        snprintf(rel, sizeof(rel), "drop/a/%s/f.xml", subs[i]);
        touch(rel);
        snprintf(rel, sizeof(rel), "outside/%s", subs[i]);
        mkdirs(rel);
        snprintf(rel, sizeof(rel), "outside/%s/secret.xml", subs[i]);
        touch(rel);
    }
    assert_int_equal(symlink("../outside", at("drop/evil")), 0);
    s.swap_when = "a/";
    snprintf(a, sizeof(a), "%s/a", drop);
    snprintf(evil, sizeof(evil), "%s/evil", drop);
    s.swap_a = a;
    s.swap_b = evil;
    start_watch(&loop, &o, &s, &w);
    assert_true(s.swapped);
    assert_false(has_part(&s, "secret"));
    /* Every subfolder of the real a/ was still read, through its descriptor. */
    for (size_t i = 0; i < 4; i++) {
        snprintf(rel, sizeof(rel), "a/%s/f.xml", subs[i]);
        assert_true(has(&s, rel));
    }
    close_and_check(&loop, &w);
}

/*
 * A tree deeper than PATH_MAX: names that do not fit are not reported, and not silently:
 * PD_WATCH_SKIPPED names their folder once per scan. Without report_skipped (a caller that
 * does not know the event) nothing is sent for them.
 */
static void test_long_path_reported_as_skipped(void **state)
{
    uv_loop_t loop;
    struct pd_watcher *w;
    struct seen s = {0};
    struct pd_watch_opts o = {
        .root = dir, .rescan_ms = 60000, .recursive = true, .report_skipped = true};
    static char deep[PATH_MAX], ok[PATH_MAX + 16];
    char comp[251], longf[101], longd[91];
    int fd, next;

    memset(comp, 'd', 250);
    comp[250] = '\0';
    memset(longf, 'f', 100);
    longf[100] = '\0';
    memset(longd, 'e', 90);
    longd[90] = '\0';
    /* 16 folders of 250 bytes: 4015 bytes from the root; mkdirat, as the path is too long. */
    deep[0] = '\0';
    fd = open(dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    for (int i = 0; i < 16; i++) {
        assert_int_equal(mkdirat(fd, comp, 0755), 0);
        next = openat(fd, comp, O_RDONLY | O_DIRECTORY);
        assert_true(next >= 0);
        close(fd);
        fd = next;
        strcat(strcat(deep, i ? "/" : ""), comp);
    }
    assert_int_equal(strlen(deep), 4015);
    /* Fits (4022 bytes); does not (4116); a folder that does not (4106), with a file in it. */
    close(openat(fd, "ok.xml", O_WRONLY | O_CREAT, 0644));
    close(openat(fd, longf, O_WRONLY | O_CREAT, 0644));
    assert_int_equal(mkdirat(fd, longd, 0755), 0);
    next = openat(fd, longd, O_RDONLY | O_DIRECTORY);
    close(openat(next, "x.xml", O_WRONLY | O_CREAT, 0644));
    close(next);
    close(fd);
    snprintf(ok, sizeof(ok), "%s/ok.xml", deep);

    start_watch(&loop, &o, &s, &w);
    assert_int_equal(s.scans_done, 1);
    assert_true(has(&s, ok));
    assert_true(s.longest < PATH_MAX);
    assert_int_equal(s.skipped, 1);
    assert_int_equal(s.skipped_at_done, 1); /* before the scan's end */
    assert_non_null(strstr(s.skip_msg, "skipped 2 names in the folder "));
    assert_non_null(strstr(s.skip_msg, deep));
    assert_non_null(strstr(s.skip_msg, "PATH_MAX"));
    /* Once per scan. */
    pd_watcher_rescan(w);
    RUN_UNTIL(&loop, s.scans_done >= 2);
    assert_int_equal(s.scans_done, 2);
    assert_int_equal(s.skipped, 2);
    close_and_check(&loop, &w);

    memset(&s, 0, sizeof(s));
    o.report_skipped = false;
    start_watch(&loop, &o, &s, &w);
    assert_true(has(&s, ok));
    assert_int_equal(s.skipped, 0);
    assert_true(s.longest < PATH_MAX);
    close_and_check(&loop, &w);
}

/* A watched subfolder moved out of the root: its watch goes, nothing under it is reported. */
static void test_folder_moved_out_is_unwatched(void **state)
{
    uv_loop_t loop;
    struct pd_watcher *w;
    struct seen s = {0};
    struct pd_watch_opts o = {.root = drop, .rescan_ms = 60000, .recursive = true};

    mkdirs("drop/sub");
    touch("drop/sub/a.xml");
    start_watch(&loop, &o, &s, &w);
    assert_true(has(&s, "sub/a.xml"));
    assert_int_equal(rename(at("drop/sub"), at("away")), 0);
    RUN_UNTIL(&loop, s.scans_done >= 2); /* IN_MOVE_SELF asks for one */
    assert_int_equal(s.scans_done, 2);
    s.n = 0;
    touch("away/b.xml");
    touch("drop/c.xml");
    RUN_UNTIL(&loop, has(&s, "c.xml"));
    assert_true(has(&s, "c.xml"));
    spin(&loop, 20);
    assert_false(has_part(&s, "b.xml"));
    close_and_check(&loop, &w);
}

int main(void)
{
    return PD_RUN_TESTS(setup, pd_test_teardown, test_initial_scan_and_inotify,
                        test_poll_mode_uses_rescans, test_recursive_new_subfolder,
                        test_not_recursive_reports_folder_names, test_root_deleted_and_recreated,
                        test_symlink_to_outside_not_entered, test_subfolder_swapped_before_rescan,
                        test_subfolder_swapped_mid_scan, test_long_path_reported_as_skipped,
                        test_folder_moved_out_is_unwatched);
}
