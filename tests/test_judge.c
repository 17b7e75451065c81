/* pd_judge: one look at a drop-folder name, each verdict from real files in a temporary folder. */
#include "testlib.h"

#include "pd_judge.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define HOUR_MS 3600000ull

static struct pd_ready_rules rules;
static int rootfd = -1;

static int setup(void **state)
{
    if (pd_test_setup(state))
        return -1;
    rootfd = open(pd_test_dir, O_RDONLY | O_DIRECTORY);
    return pd_ready_rules_init(&rules, "*", ".* *.tmp", NULL, 60000, 0) || rootfd < 0;
}

static int teardown(void **state)
{
    pd_ready_rules_cleanup(&rules);
    close(rootfd);
    return pd_test_teardown(state);
}

/* The verdict on NAME an hour from now (settled), with WHY. */
static enum pd_judgement judge_later(const char *name, bool links, char *why, size_t len)
{
    struct pd_judge_opts o = {.rules = &rules,
                              .allow_hard_links = links,
                              .now_wall_ms = (uint64_t)time(NULL) * 1000 + HOUR_MS};
    struct stat st;
    return pd_judge(rootfd, name, &o, &st, why, len);
}

static void test_take_and_settle(void **state)
{
    (void)state;
    char why[512];
    struct stat st;
    pd_test_write(pd_test_path(pd_test_dir, "a.json"), "[1]");
    assert_int_equal(judge_later("a.json", false, why, sizeof(why)), PD_JUDGE_TAKE);
    assert_string_equal(why, "");
    /* Now: it was written a moment ago, settle is a minute. */
    struct pd_judge_opts o = {.rules = &rules, .now_wall_ms = (uint64_t)time(NULL) * 1000};
    assert_int_equal(pd_judge(rootfd, "a.json", &o, &st, why, sizeof(why)), PD_JUDGE_SETTLING);
    assert_non_null(strstr(why, "settle"));
    assert_int_equal(st.st_size, 3);
}

static void test_skips(void **state)
{
    (void)state;
    char why[512];
    pd_test_write(pd_test_path(pd_test_dir, "x.tmp"), "x");
    assert_int_equal(judge_later("x.tmp", false, why, sizeof(why)), PD_JUDGE_EXCLUDED);
    assert_string_equal(why, "excluded by the glob *.tmp");
    assert_int_equal(symlink("/etc/hostname", pd_test_path(pd_test_dir, "l.txt")), 0);
    assert_int_equal(judge_later("l.txt", false, why, sizeof(why)), PD_JUDGE_NOT_REGULAR);
    assert_non_null(strstr(why, "a symbolic link"));
    assert_int_equal(mkfifo(pd_test_path(pd_test_dir, "p.txt"), 0600), 0);
    assert_int_equal(judge_later("p.txt", false, why, sizeof(why)), PD_JUDGE_NOT_REGULAR);
    assert_non_null(strstr(why, "a fifo"));
    assert_int_equal(judge_later("gone.txt", false, why, sizeof(why)), PD_JUDGE_GONE);
    /* A name reached through a symlinked folder is nothing of the drop folder. */
    assert_int_equal(symlink("/etc", pd_test_path(pd_test_dir, "etc")), 0);
    assert_int_equal(judge_later("etc/hostname", false, why, sizeof(why)), PD_JUDGE_GONE);
    assert_non_null(strstr(why, "symbolic link"));
}

static void test_hard_links(void **state)
{
    (void)state;
    char why[512];
    pd_test_write(pd_test_path(pd_test_dir, "h.csv"), "a\n");
    assert_int_equal(link(pd_test_path(pd_test_dir, "h.csv"), pd_test_path(pd_test_dir, "h2.csv")),
                     0);
    assert_int_equal(judge_later("h.csv", false, why, sizeof(why)), PD_JUDGE_HARD_LINK);
    assert_non_null(strstr(why, "2 names"));
    assert_int_equal(judge_later("h.csv", true, why, sizeof(why)), PD_JUDGE_TAKE);
}

static void test_marker(void **state)
{
    (void)state;
    char why[512];
    pd_ready_rules_cleanup(&rules);
    assert_int_equal(pd_ready_rules_init(&rules, "*", "", "{name}.done", 0, 0), 0);
    assert_int_equal(mkdir(pd_test_path(pd_test_dir, "sub"), 0700), 0);
    pd_test_write(pd_test_path(pd_test_dir, "sub/o.xml"), "<a/>");
    assert_int_equal(judge_later("sub/o.xml", false, why, sizeof(why)), PD_JUDGE_MARKER_MISSING);
    assert_non_null(strstr(why, "sub/o.xml.done"));
    assert_int_equal(judge_later("sub/o.xml.done", false, why, sizeof(why)), PD_JUDGE_EXCLUDED);
    pd_test_write(pd_test_path(pd_test_dir, "sub/o.xml.done"), "");
    assert_int_equal(judge_later("sub/o.xml", false, why, sizeof(why)), PD_JUDGE_TAKE);
    assert_int_equal(judge_later("sub/o.xml.done", false, why, sizeof(why)), PD_JUDGE_EXCLUDED);
    assert_non_null(strstr(why, "done marker"));
    assert_string_equal(pd_judge_word(PD_JUDGE_MARKER_MISSING), "no-marker");
}

static void test_writing(void **state)
{
    (void)state;
    struct stat st;
    const char *path = pd_test_path(pd_test_dir, "up.json");
    pd_test_write(path, "[1]");
    int writer = open(path, O_WRONLY | O_APPEND), fd = open(path, O_RDONLY);
    assert_true(writer >= 0 && fd >= 0);
    assert_int_equal(fstat(fd, &st), 0);
    assert_true(pd_judge_writing(fd, &st));
    close(writer);
    assert_false(pd_judge_writing(fd, &st));
    close(fd);
}

int main(void)
{
    return PD_RUN_TESTS(setup, teardown, test_take_and_settle, test_skips, test_hard_links,
                        test_marker, test_writing);
}
