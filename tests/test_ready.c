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

/* Checks that each of NAMES (up to NULL) is wanted when WANT, and is not when not. */
static void expect_wanted(const struct pd_ready_rules *r, bool want, const char *const names[])
{
    for (size_t i = 0; names[i]; i++)
        if (pd_ready_name_wanted(r, names[i]) != want)
            fail_msg("'%s' %s", names[i], want ? "not wanted" : "wanted");
}

static void test_default_filters(void **state)
{
    struct pd_ready_rules r;
    assert_int_equal(pd_ready_rules_init(&r, "*", "*.part *.filepart *.tmp .* ~*", NULL, 2000, 0),
                     0);
    expect_wanted(&r, true, (const char *const[]){"order.xml", "name with spaces.csv", NULL});
    expect_wanted(&r, false,
                  (const char *const[]){"order.xml.part", "order.xml.filepart", "x.tmp", ".hidden",
                                        ".patchdrop", "~lock", ".", "", NULL});
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
        expect_wanted(&r, true, (const char *const[]){"a.xml", "b.csv", NULL});
        expect_wanted(&r, false, (const char *const[]){"c.json", "a.xml.part", "a.csv.tmp", NULL});
        pd_ready_rules_cleanup(&r);
    }
}

/* One look at the file: what stat() says, our clock, the wall clock, and the wait expected. */
struct look {
    off_t size;
    time_t mtime;
    long mtime_ns;
    ino_t ino;
    uint64_t now_ms, wall_ms, want_wait;
};

/* Observes one file look by look with SETTLE_MS and MIN_AGE_MS, checking each wait. */
static void check_looks(uint64_t settle_ms, uint64_t min_age_ms, const struct look *looks, size_t n)
{
    struct pd_ready_rules r;
    struct pd_ready_obs o;
    memset(&o, 0, sizeof(o));
    assert_int_equal(pd_ready_rules_init(&r, NULL, NULL, NULL, settle_ms, min_age_ms), 0);
    for (size_t i = 0; i < n; i++) {
        struct stat st = make_stat(looks[i].size, looks[i].mtime, looks[i].ino);
        st.st_mtim.tv_nsec = looks[i].mtime_ns;
        assert_int_equal(pd_ready_observe(&r, &o, &st, looks[i].now_ms, looks[i].wall_ms),
                         looks[i].want_wait);
    }
    pd_ready_rules_cleanup(&r);
}

static void test_settle_on_our_clock(void **state)
{
    static const struct look looks[] = {
        /* An old mtime (cp --preserve=timestamps) does not make the file ready early. */
        {100, 1000, 0, 7, 50000, 1e12, 2000},
        {100, 1000, 0, 7, 51000, 1e12, 1000},
        /* A growing file restarts the settle time. */
        {101, 1000, 0, 7, 51500, 1e12, 2000},
        {101, 1000, 0, 7, 53499, 1e12, 1},
        {101, 1000, 0, 7, 53500, 1e12, 0},
        /* A new inode under the same name (replaced file) restarts it too. */
        {101, 1000, 0, 8, 60000, 1e12, 2000},
        /* So does a touched mtime. */
        {101, 1000, 0, 8, 62000, 1e12, 0},
        {101, 1000, 5, 8, 62001, 1e12, 2000},
    };
    check_looks(2000, 0, looks, sizeof(looks) / sizeof(looks[0]));
}

static void test_min_age_and_zero_settle(void **state)
{
    static const struct look looks[] = {
        /* mtime 1000 s = 1,000,000 ms */
        {1, 1000, 0, 1, 5, 1000000 + 10000, 50000},
        {1, 1000, 0, 1, 6, 1000000 + 60000, 0},
        /* A future mtime (clock skew on a share) waits until it is old enough, not forever. */
        {1, 1000, 0, 1, 7, 1000000 - 1000, 61000},
    };
    check_looks(0, 60000, looks, sizeof(looks) / sizeof(looks[0]));
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, test_default_filters, test_include_lists_and_markers,
                        test_glob_separators, test_settle_on_our_clock,
                        test_min_age_and_zero_settle);
}
