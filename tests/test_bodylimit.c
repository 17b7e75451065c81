/* The one 413 rule: learn the server's limit, cut between the bounds, refuse only what cannot fit.
 */
#include "testlib.h"

#include "pd_bodylimit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NONE UINT64_MAX

static void test_recut_table(void **state)
{
    static const struct {
        uint64_t ok_max, refused_min, refused_len, need;
        int rc;
        uint64_t budget;
        const char *why;
    } t[] = {
        /* Nothing accepted yet: halve what was refused. */
        {0, 8000000, 8000000, 1000, 0, 4000000, "first 413: half"},
        /* Bounds known: cut between them. */
        {150000, 250000, 250000, 1000, 0, 199999, "bisect between accepted and refused"},
        /* Never below a record that may still fit. */
        {0, 250000, 250000, 183000, 0, 183000, "the largest record sets the floor"},
        {150000, 200000, 200000, 195000, 0, 195000, "195 kB record under a 200 kB limit goes"},
        /* A record as large as what was refused can never go. */
        {150000, 200000, 200000, 200000, -1, 0, "record needs the refused size"},
        {0, 120000, 130000, 125000, -1, 0, "record above the smallest refusal"},
        /* The cut is always below the refused body. */
        {0, 300, 300, 299, 0, 299, "just below"},
        /* A stale accepted bound above the refusal is ignored (the server's limit dropped). */
        {900000, 500000, 500000, 1000, 0, 250000, "limit went down"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint64_t b = 0;
        int rc = pd_bodylimit_recut(t[i].ok_max, t[i].refused_min, t[i].refused_len, t[i].need, &b);
        if (rc != t[i].rc || (rc == 0 && b != t[i].budget)) {
            print_error("row %zu (%s): rc %d budget %llu, want rc %d budget %llu\n", i, t[i].why,
                        rc, (unsigned long long)b, t[i].rc, (unsigned long long)t[i].budget);
            fail();
        }
        if (rc == 0) {
            assert_true(b < t[i].refused_len);
            assert_true(b >= t[i].need);
        }
    }
}

/* A server limited to 200,000 bytes behind max_body 8 MB: the cuts converge, never refuse a
 * 183 kB record, and the limit is remembered across a restart. */
static void test_learns_and_remembers(void **state)
{
    char dir[] = "/tmp/pd-test-bodylimit-XXXXXX";
    struct pd_bodylimit l;
    uint64_t server = 200000, need = 183000, body = 8000000, ok, no, refused;
    unsigned refusals = 0;
    (void)state;

    assert_non_null(mkdtemp(dir));
    assert_int_equal(pd_bodylimit_init(&l, 8000000, dir), 0);
    assert_int_equal(pd_bodylimit_budget(&l), 8000000);
    for (int step = 0; step < 64 && body > server; step++) {
        pd_bodylimit_refused(&l, body);
        refusals++;
        pd_bodylimit_bounds(&l, &ok, &no);
        assert_int_equal(pd_bodylimit_recut(ok, no, body, need, &body), 0);
        if (body <= server)
            pd_bodylimit_accepted(&l, body);
    }
    assert_true(body <= server);
    assert_true(body >= need);
    assert_true(refusals <= 8); /* halving: 8 MB -> 4 -> 2 -> 1 -> 0.5 -> 0.25 -> 183 kB */
    assert_int_equal(pd_bodylimit_fits(&l, need, &refused), 0);
    assert_int_equal(pd_bodylimit_fits(&l, 300000, &refused), -1);
    /* New files start just below the smallest refusal, so a record between the bounds is
     * still tried. */
    uint64_t learned = pd_bodylimit_budget(&l);
    pd_bodylimit_bounds(&l, &ok, &no);
    assert_int_equal(learned, no - 1);
    assert_true(learned >= need);
    pd_bodylimit_cleanup(&l);

    /* A restart starts from what was learned, not from max_body. */
    assert_int_equal(pd_bodylimit_init(&l, 8000000, dir), 0);
    assert_int_equal(pd_bodylimit_budget(&l), learned);
    /* The server's limit went up: a larger body passed, the old refusal is forgotten. */
    pd_bodylimit_accepted(&l, 9000000);
    assert_int_equal(pd_bodylimit_budget(&l), 8000000);
    pd_bodylimit_cleanup(&l);

    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, test_recut_table, test_learns_and_remembers);
}
