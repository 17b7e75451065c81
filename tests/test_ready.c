/* Readiness: filters, done markers, settle measured on our clock, min_age. */
#include "testlib.h"

#include "pd_ready.h"

#include <string.h>

static struct stat make_stat(off_t size, time_t mtime, ino_t ino)
{
    struct stat st;
    memset(&st, 0, sizeof(st));
    st.st_size = size;
    st.st_mtim.tv_sec = mtime;
    st.st_ino = ino;
    st.st_dev = 1;
    return st;
}

static void test_default_filters(void **state)
{
    struct pd_ready_rules r;
    assert_int_equal(pd_ready_rules_init(&r, "*", "*.part *.filepart *.tmp .* ~*", NULL, 2000, 0),
                     0);
    assert_true(pd_ready_name_wanted(&r, "order.xml"));
    assert_true(pd_ready_name_wanted(&r, "name with spaces.csv"));
    assert_false(pd_ready_name_wanted(&r, "order.xml.part"));
    assert_false(pd_ready_name_wanted(&r, "order.xml.filepart"));
    assert_false(pd_ready_name_wanted(&r, "x.tmp"));
    assert_false(pd_ready_name_wanted(&r, ".hidden"));
    assert_false(pd_ready_name_wanted(&r, ".patchdrop"));
    assert_false(pd_ready_name_wanted(&r, "~lock"));
    assert_false(pd_ready_name_wanted(&r, "."));
    assert_false(pd_ready_name_wanted(&r, ""));
    pd_ready_rules_cleanup(&r);
}

static void test_include_lists_and_markers(void **state)
{
    struct pd_ready_rules r;
    char marker[64];
    assert_int_equal(pd_ready_rules_init(&r, "*.xml, *.csv", "", "{name}.done", 0, 0), 0);
    assert_true(pd_ready_name_wanted(&r, "a.xml"));
    assert_true(pd_ready_name_wanted(&r, "b.csv"));
    assert_false(pd_ready_name_wanted(&r, "c.json"));
    /* The marker itself is never a candidate, even when include would match it. */
    assert_false(pd_ready_name_wanted(&r, "a.xml.done"));
    assert_true(pd_ready_marker_name(&r, "a.xml", marker, sizeof(marker)));
    assert_string_equal(marker, "a.xml.done");
    assert_false(pd_ready_marker_name(&r, "a.xml", marker, 5));
    pd_ready_rules_cleanup(&r);

    assert_int_equal(pd_ready_rules_init(&r, NULL, NULL, "ok-{name}", 0, 0), 0);
    assert_false(pd_ready_name_wanted(&r, "ok-a.xml"));
    assert_true(pd_ready_name_wanted(&r, "a.xml"));
    assert_true(pd_ready_marker_name(&r, "a.xml", marker, sizeof(marker)));
    assert_string_equal(marker, "ok-a.xml");
    pd_ready_rules_cleanup(&r);

    assert_int_equal(pd_ready_rules_init(&r, NULL, NULL, NULL, 0, 0), 0);
    assert_false(pd_ready_marker_name(&r, "a", marker, sizeof(marker)));
    pd_ready_rules_cleanup(&r);
}

/* `*.tmp;*.part` and `*.tmp, *.part` are two globs each, as their writers meant, never one glob
 * that matches nothing. */
static void test_glob_separators(void **state)
{
    static const char *const lists[] = {"*.tmp;*.part", "*.tmp, *.part", "*.tmp ;*.part",
                                        "*.tmp\t*.part", " ;*.tmp,,; *.part; "};
    struct pd_ready_rules r;

    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        assert_int_equal(pd_ready_rules_init(&r, "*.xml;*.csv", lists[i], NULL, 0, 0), 0);
        assert_non_null(r.exclude[0]);
        assert_string_equal(r.exclude[0], "*.tmp");
        assert_non_null(r.exclude[1]);
        assert_string_equal(r.exclude[1], "*.part");
        assert_null(r.exclude[2]);
        assert_true(pd_ready_name_wanted(&r, "a.xml"));
        assert_true(pd_ready_name_wanted(&r, "b.csv"));
        assert_false(pd_ready_name_wanted(&r, "c.json"));
        assert_false(pd_ready_name_wanted(&r, "a.xml.part"));
        assert_false(pd_ready_name_wanted(&r, "a.csv.tmp"));
        pd_ready_rules_cleanup(&r);
    }
}

static void test_settle_on_our_clock(void **state)
{
    struct pd_ready_rules r;
    struct pd_ready_obs o;
    memset(&o, 0, sizeof(o));
    assert_int_equal(pd_ready_rules_init(&r, NULL, NULL, NULL, 2000, 0), 0);

    /* An old mtime (cp --preserve=timestamps) does not make the file ready early. */
    struct stat st = make_stat(100, 1000, 7);
    assert_int_equal(pd_ready_observe(&r, &o, &st, 50000, 1e12), 2000);
    assert_int_equal(pd_ready_observe(&r, &o, &st, 51000, 1e12), 1000);
    /* A growing file restarts the settle time. */
    st = make_stat(101, 1000, 7);
    assert_int_equal(pd_ready_observe(&r, &o, &st, 51500, 1e12), 2000);
    assert_int_equal(pd_ready_observe(&r, &o, &st, 53499, 1e12), 1);
    assert_int_equal(pd_ready_observe(&r, &o, &st, 53500, 1e12), 0);
    /* A new inode under the same name (replaced file) restarts it too. */
    st = make_stat(101, 1000, 8);
    assert_int_equal(pd_ready_observe(&r, &o, &st, 60000, 1e12), 2000);
    /* So does a touched mtime. */
    assert_int_equal(pd_ready_observe(&r, &o, &st, 62000, 1e12), 0);
    st.st_mtim.tv_nsec = 5;
    assert_int_equal(pd_ready_observe(&r, &o, &st, 62001, 1e12), 2000);
    pd_ready_rules_cleanup(&r);
}

static void test_min_age_and_zero_settle(void **state)
{
    struct pd_ready_rules r;
    struct pd_ready_obs o;
    memset(&o, 0, sizeof(o));
    assert_int_equal(pd_ready_rules_init(&r, NULL, NULL, NULL, 0, 60000), 0);
    struct stat st = make_stat(1, 1000, 1); /* mtime 1000 s = 1,000,000 ms */
    assert_int_equal(pd_ready_observe(&r, &o, &st, 5, 1000000 + 10000), 50000);
    assert_int_equal(pd_ready_observe(&r, &o, &st, 6, 1000000 + 60000), 0);
    /* A future mtime (clock skew on a share) waits until it is old enough, not forever. */
    assert_int_equal(pd_ready_observe(&r, &o, &st, 7, 1000000 - 1000), 61000);
    pd_ready_rules_cleanup(&r);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, test_default_filters, test_include_lists_and_markers,
                        test_glob_separators, test_settle_on_our_clock,
                        test_min_age_and_zero_settle);
}
