/* pd_requeue: failed files back into a drop folder, error files into history/, and the link a
 * later delivery makes to them (pd_retention_supersede); --since's words (pd_cli_parse_since). */
#include "testlib.h"

#include "pd_cli.h"
#include "pd_error.h"
#include "pd_requeue.h"
#include "pd_retention.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int failedfd = -1, rootfd = -1;
static char failed[512], drop[512];

static int setup(void **state)
{
    if (pd_test_setup(state))
        return -1;
    snprintf(failed, sizeof(failed), "%s/failed", pd_test_dir);
    snprintf(drop, sizeof(drop), "%s/drop", pd_test_dir);
    if (mkdir(failed, 0700) || mkdir(drop, 0700))
        return -1;
    failedfd = open(failed, O_RDONLY | O_DIRECTORY);
    rootfd = open(drop, O_RDONLY | O_DIRECTORY);
    return failedfd < 0 || rootfd < 0;
}

static int teardown(void **state)
{
    close(failedfd);
    close(rootfd);
    return pd_test_teardown(state);
}

/* A failed copy NAME of the drop folder's ORIGIN, with its error file. */
static void fail_file(const char *name, const char *origin)
{
    char text[512];
    pd_test_write(pd_test_path(failed, name), "content");
    snprintf(text, sizeof(text), "{\n  \"file\": \"%s\",\n  \"result\": \"failed\"\n}\n", origin);
    char side[300];
    snprintf(side, sizeof(side), "%s.error.json", name);
    pd_test_write(pd_test_path(failed, side), text);
}

static char *slurp(const char *path)
{
    static char buf[4096];
    int fd = open(path, O_RDONLY);
    ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof(buf) - 1);
    if (fd >= 0)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return n < 0 ? NULL : buf;
}

static void test_move_back_to_subfolder(void **state)
{
    (void)state;
    struct pd_requeue_item it;
    char why[512];
    struct stat st;

    assert_int_equal(mkdir(pd_test_path(drop, "sub"), 0700), 0);
    fail_file("x.1.json", "sub/x.json"); /* a numbered copy: back under its own name */
    assert_int_equal(pd_requeue_plan(failedfd, "x.1.json", &it, why, sizeof(why)), 0);
    assert_string_equal(it.rel, "sub/x.json");
    assert_true(it.has_error);
    assert_int_equal(pd_requeue_check(rootfd, &it), 0);
    assert_int_equal(pd_requeue_move(failedfd, rootfd, &it, 1000, why, sizeof(why)), 0);
    assert_string_equal(slurp(pd_test_path(drop, "sub/x.json")), "content");
    assert_int_equal(lstat(pd_test_path(failed, "x.1.json"), &st), -1);
    assert_int_equal(lstat(pd_test_path(failed, "x.1.json.error.json"), &st), -1);
    assert_string_equal(it.history, "x.json.error.json");
    const char *h = slurp(pd_test_path(failed, "history/x.json.error.json"));
    assert_non_null(h);
    assert_non_null(strstr(h, "\"retried_as\": \"sub/x.json\""));
    assert_non_null(strstr(h, "\"retried_at\": \"1970-01-01T00:00:01.000Z\""));
    /* Failed again and retried again: history numbers the second. */
    fail_file("x.json", "sub/x.json");
    assert_int_equal(unlink(pd_test_path(drop, "sub/x.json")), 0);
    assert_int_equal(pd_requeue_plan(failedfd, "x.json", &it, why, sizeof(why)), 0);
    assert_int_equal(pd_requeue_move(failedfd, rootfd, &it, 2000, why, sizeof(why)), 0);
    assert_string_equal(it.history, "x.1.json.error.json");
}

static void test_never_replaces_never_follows(void **state)
{
    (void)state;
    struct pd_requeue_item it;
    char why[512];

    fail_file("a.json", "a.json");
    pd_test_write(pd_test_path(drop, "a.json"), "the partner's");
    assert_int_equal(pd_requeue_plan(failedfd, "a.json", &it, why, sizeof(why)), 0);
    assert_int_equal(pd_requeue_check(rootfd, &it), -EEXIST);
    assert_int_equal(pd_requeue_move(failedfd, rootfd, &it, 1000, why, sizeof(why)), -EEXIST);
    assert_non_null(strstr(why, "already has a file of that name"));
    assert_string_equal(slurp(pd_test_path(drop, "a.json")), "the partner's");
    assert_string_equal(slurp(pd_test_path(failed, "a.json")), "content");
    /* A partner made the subfolder a symlink to elsewhere: never followed. */
    char elsewhere[600];
    snprintf(elsewhere, sizeof(elsewhere), "%s/elsewhere", pd_test_dir);
    assert_int_equal(mkdir(elsewhere, 0700), 0);
    assert_int_equal(symlink(elsewhere, pd_test_path(drop, "sub")), 0);
    fail_file("b.json", "sub/b.json");
    assert_int_equal(pd_requeue_plan(failedfd, "b.json", &it, why, sizeof(why)), 0);
    int rc = pd_requeue_move(failedfd, rootfd, &it, 1000, why, sizeof(why));
    assert_true(rc == -ELOOP || rc == -ENOTDIR);
    assert_non_null(strstr(why, "symbolic link"));
    assert_string_equal(slurp(pd_test_path(failed, "b.json")), "content");
    assert_null(slurp(pd_test_path(elsewhere, "b.json")));
    /* An error file naming a way out of the drop folder is refused before anything moves. */
    fail_file("c.json", "../c.json");
    assert_int_equal(pd_requeue_plan(failedfd, "c.json", &it, why, sizeof(why)), PD_EPARSE);
    assert_int_equal(pd_requeue_plan(failedfd, "nosuch", &it, why, sizeof(why)), -ENOENT);
    assert_int_equal(pd_requeue_plan(failedfd, "c.json.error.json", &it, why, sizeof(why)),
                     -ENOENT);
}

static void test_list_since(void **state)
{
    (void)state;
    struct pd_requeue_item *items;
    size_t n;
    struct timespec old[2] = {{.tv_sec = 1000}, {.tv_sec = 1000}};

    fail_file("new.json", "new.json");
    fail_file("old.json", "old.json");
    pd_test_write(pd_test_path(failed, "bare.txt"), "no error file");
    assert_int_equal(utimensat(AT_FDCWD, pd_test_path(failed, "old.json.error.json"), old, 0), 0);
    assert_int_equal(pd_requeue_list(failedfd, 0, &items, &n), 0);
    assert_int_equal(n, 3);
    assert_string_equal(items[0].name, "bare.txt");
    assert_string_equal(items[0].rel, "bare.txt");
    assert_false(items[0].has_error);
    assert_string_equal(items[2].name, "old.json");
    free(items);
    assert_int_equal(pd_requeue_list(failedfd, 2000000, &items, &n), 0);
    assert_int_equal(n, 2);
    assert_string_equal(items[1].name, "new.json");
    free(items);
}

static void test_delivery_links_history(void **state)
{
    (void)state;
    struct pd_requeue_item it;
    char why[512], *sup = NULL;
    char archived[600];

    fail_file("d.json", "d.json");
    assert_int_equal(pd_requeue_plan(failedfd, "d.json", &it, why, sizeof(why)), 0);
    assert_int_equal(pd_requeue_move(failedfd, rootfd, &it, 1000, why, sizeof(why)), 0);
    /* The daemon delivered it: archived with a receipt, then the link. */
    snprintf(archived, sizeof(archived), "%s/d.json", pd_test_dir);
    pd_test_write(archived, "content");
    pd_test_write(pd_test_path(pd_test_dir, "d.json.receipt.json"), "{\n  \"file\": \"d.json\"\n}\n");
    assert_int_equal(pd_retention_supersede("w", failed, NULL, "d.json", archived, 5000, &sup), 0);
    assert_string_equal(sup, "history/d.json");
    free(sup);
    assert_non_null(strstr(slurp(pd_test_path(pd_test_dir, "d.json.receipt.json")),
                           "\"supersedes\": \"history/d.json\""));
    assert_non_null(strstr(slurp(pd_test_path(failed, "history/d.json.error.json")),
                           "\"superseded_by\": \"d.json\""));
}

static void test_since_words(void **state)
{
    (void)state;
    uint64_t since;
    assert_int_equal(pd_cli_parse_since("2h", 10 * 3600000ull, &since), 0);
    assert_int_equal(since, 8 * 3600000ull);
    assert_int_equal(pd_cli_parse_since("2d", 1000, &since), 0);
    assert_int_equal(since, 0);
    setenv("TZ", "UTC", 1);
    tzset();
    assert_int_equal(pd_cli_parse_since("2026-11-30", 0, &since), 0);
    assert_int_equal(since, 1795996800000ull);
    assert_int_equal(pd_cli_parse_since("2026-11-30T08:30", 0, &since), 0);
    assert_int_equal(since, 1795996800000ull + 8 * 3600000ull + 30 * 60000ull);
    assert_int_equal(pd_cli_parse_since("yesterday", 0, &since), PD_ECONFIG);
    assert_int_equal(pd_cli_parse_since("2026-11-30x", 0, &since), PD_ECONFIG);
}

int main(void)
{
    return PD_RUN_TESTS(setup, teardown, test_move_back_to_subfolder,
                        test_never_replaces_never_follows, test_list_since,
                        test_delivery_links_history, test_since_words);
}
