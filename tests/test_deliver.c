/* The delivery engine `run` and `send` share: the verdict on every answer, chunks, the 413 rule. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pd_bodylimit.h"
#include "pd_client.h"
#include "pd_deliver.h"
#include "pd_error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[64];

/* A JSON array of N records, each about WIDTH bytes, the one at BIG (if any) about BIGW. */
static void write_array(unsigned n, unsigned width, unsigned big, unsigned bigw)
{
    strcpy(path, "/tmp/pd-test-deliver.XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputc('[', f);
    for (unsigned i = 0; i < n; i++) {
        unsigned w = i == big ? bigw : width;
        fprintf(f, "%s{\"n\":%u,\"pad\":\"", i ? "," : "", i);
        for (unsigned k = 0; k < w; k++)
            fputc('x', f);
        fputs("\"}", f);
    }
    fputc(']', f);
    fclose(f);
}

static void open_at(struct pd_delivery *dl, struct pd_bodylimit *lim, uint64_t max_body,
                    uint64_t budget)
{
    struct pd_delivery_opts o = {.fd = -1,
                                 .path = path,
                                 .name = "orders.json",
                                 .max_body = max_body,
                                 .budget = budget,
                                 .limit = lim};
    assert_int_equal(pd_delivery_open(dl, &o), 0);
}

/* Cutting to what the server was seen to take, as a new file does. */
static void open_dl(struct pd_delivery *dl, struct pd_bodylimit *lim, uint64_t max_body)
{
    open_at(dl, lim, max_body, pd_bodylimit_budget(lim));
}

/* A file written by write_array, a server limit first at LIMIT, and one delivery's chunk. */
struct fixture {
    struct pd_bodylimit lim;
    struct pd_delivery dl;
    struct pd_chunk c;
    char *body;
    size_t len;
};

static void fx_begin(struct fixture *f, unsigned n, unsigned width, unsigned big, unsigned bigw,
                     uint64_t limit)
{
    write_array(n, width, big, bigw);
    pd_bodylimit_init(&f->lim, limit, NULL);
}

static int fx_next(struct fixture *f)
{
    return pd_delivery_next(&f->dl, &f->c, &f->body, &f->len);
}

static void fx_end(struct fixture *f)
{
    pd_bodylimit_cleanup(&f->lim);
    unlink(path);
}

static void test_verdict_table(void **state)
{
    static const struct {
        int err;
        enum pd_delivery_verdict v;
    } t[] = {
        {0, PD_DL_ACKED},
        {PD_ETOOBIG, PD_DL_RECUT},
        {PD_EREJECTED, PD_DL_FAILED},
        {PD_EAMBIGUOUS, PD_DL_FAILED},
        {PD_ELIMIT, PD_DL_FAILED},
        {PD_EAUTH, PD_DL_STOP},
        {PD_ECONFIG, PD_DL_STOP},
        {PD_ECANCELED, PD_DL_LATER},
        {PD_ENOMEM, PD_DL_LATER},
        {PD_EPARSE, PD_DL_FAILED},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        if (pd_delivery_verdict(t[i].err) != t[i].v)
            fail_msg("%s: verdict %d, want %d", pd_strerror(t[i].err),
                     pd_delivery_verdict(t[i].err), t[i].v);
    }
    assert_true(pd_delivery_transient(-EIO));
    assert_true(pd_delivery_transient(PD_ENOMEM));
    assert_false(pd_delivery_transient(PD_EPARSE));
    assert_false(pd_delivery_transient(PD_ETOOBIG));
}

/* A 413 on the first chunk: the same chunk is cut again below what was refused, and the file's
 * records still all go, once each, in order. */
static void test_refused_chunk_is_cut_again(void **state)
{
    struct fixture f;

    fx_begin(&f, 40, 30, 99, 0, 1000);
    open_dl(&f.dl, &f.lim, 1000);
    assert_int_equal(fx_next(&f), 1);
    assert_int_equal(f.c.index, 0);
    assert_true(f.len <= 1000);
    size_t refused = f.len;
    uint64_t next_start = f.c.start, records = 0; /* where the records start (after the "[") */
    free(f.body);
    assert_int_equal(pd_delivery_refused(&f.dl, &f.c, refused, 0), 0);
    assert_true(f.dl.budget < refused);
    unsigned index = 0;
    int rc;
    while ((rc = fx_next(&f)) == 1) {
        assert_int_equal(f.c.index, index++);
        assert_int_equal(f.c.start, next_start); /* tiles the file: nothing lost, nothing twice */
        assert_true(f.len <= f.dl.budget);
        next_start = f.c.end;
        records += f.c.records;
        pd_delivery_accepted(&f.dl, f.len);
        free(f.body);
    }
    assert_int_equal(rc, 0);
    assert_int_equal(records, 40);
    assert_true(index > 2);
    pd_delivery_close(&f.dl);
    fx_end(&f);
}

/* A record that cannot pass what the server was seen to refuse: nothing is sent at all, and the
 * words say it is the server's limit, not max_body. A new file is cut to the learned budget (the
 * splitter finds the record too big); a file resumed with its old, larger budget is stopped
 * before its first chunk goes. */
static void test_record_too_big_for_learned_limit(void **state)
{
    struct fixture f;

    fx_begin(&f, 10, 20, 4, 600, 100000);
    pd_bodylimit_refused(&f.lim, 500);
    for (int resumed = 0; resumed < 2; resumed++) {
        if (resumed)
            open_at(&f.dl, &f.lim, 100000, 100000);
        else
            open_dl(&f.dl, &f.lim, 100000);
        assert_int_equal(fx_next(&f), PD_ETOOBIG);
        assert_null(f.body);
        assert_int_equal(f.dl.why_status, 413);
        assert_non_null(strstr(f.dl.why, "refuses requests of 500 bytes or more"));
        assert_non_null(strstr(f.dl.why, resumed ? "largest record needs a" : "below max_body"));
        pd_delivery_close(&f.dl);
    }
    fx_end(&f);
}

/* A 413 for a body no smaller than the largest record needs: the file is refused, with words. */
static void test_refusal_when_record_cannot_fit(void **state)
{
    struct fixture f;

    fx_begin(&f, 3, 300, 99, 0, 400);
    open_dl(&f.dl, &f.lim, 400);
    assert_int_equal(fx_next(&f), 1);
    free(f.body);
    assert_int_equal(pd_delivery_refused(&f.dl, &f.c, f.len, 2), -1);
    assert_int_equal(f.dl.why_status, 413);
    assert_non_null(strstr(f.dl.why, "2 earlier chunk(s) were delivered"));
    pd_delivery_close(&f.dl);
    fx_end(&f);
    unlink(path);
}

static void test_failure_words(void **state)
{
    struct pd_chunk c = {.index = 2, .start = 100, .end = 200};
    struct pd_client_result r = {.err = PD_EREJECTED, .message = "HTTP 422: bad field"};
    char buf[512];

    pd_delivery_failure(&r, &c, 2, buf, sizeof(buf));
    assert_string_equal(buf, "Patchworks refused chunk 3 (bytes 100-200): HTTP 422: bad field; 2 "
                             "earlier chunk(s) were delivered; fix the data (or the flow's "
                             "settings) and drop the file again");
    r.err = PD_ELIMIT;
    r.message = NULL;
    pd_delivery_failure(&r, &c, 2, buf, sizeof(buf));
    assert_non_null(strstr(buf, "gave up after max_retry_time"));
    assert_non_null(strstr(buf, "when Patchworks is reachable"));
    r.err = PD_EAMBIGUOUS;
    pd_delivery_failure(&r, &c, 2, buf, sizeof(buf));
    assert_non_null(strstr(buf, "was sent several times without an answer"));
}

/* A small file read into memory once is cut exactly as from the file. */
static void test_memory_cuts_as_the_file(void **state)
{
    struct pd_bodylimit lim;
    struct pd_delivery a, b;
    struct pd_chunk ca, cb;
    char *ba, *bb, mem[4096];
    size_t la, lb;
    int ra, rb;

    write_array(30, 25, 99, 0);
    FILE *f = fopen(path, "rb");
    size_t n = fread(mem, 1, sizeof(mem), f);
    fclose(f);
    pd_bodylimit_init(&lim, 600, NULL);
    struct pd_delivery_opts o = {.fd = -1,
                                 .path = path,
                                 .name = "orders.json",
                                 .max_body = 600,
                                 .budget = 600,
                                 .limit = &lim};
    assert_int_equal(pd_delivery_open(&a, &o), 0);
    o.path = "/nonexistent/never-read.json"; /* memory only: the file is never opened */
    o.mem = mem;
    o.mem_len = n;
    assert_int_equal(pd_delivery_open(&b, &o), 0);
    do {
        ra = pd_delivery_next(&a, &ca, &ba, &la);
        rb = pd_delivery_next(&b, &cb, &bb, &lb);
        assert_int_equal(ra, rb);
        if (ra == 1) {
            assert_int_equal(ca.start, cb.start);
            assert_int_equal(ca.end, cb.end);
            assert_int_equal(la, lb);
            assert_memory_equal(ba, bb, la);
        }
        free(ba);
        free(bb);
    } while (ra == 1);
    assert_int_equal(ra, 0);
    pd_delivery_close(&a);
    pd_delivery_close(&b);
    pd_bodylimit_cleanup(&lim);
    unlink(path);
}

/* A file that cannot be opened says which and why. */
static void test_open_failure_names_the_reason(void **state)
{
    struct pd_bodylimit lim;
    struct pd_delivery dl;
    struct pd_delivery_opts o = {.fd = -1,
                                 .path = "/nonexistent/x.json",
                                 .name = "x.json",
                                 .max_body = 1000,
                                 .budget = 1000,
                                 .limit = &lim};
    pd_bodylimit_init(&lim, 1000, NULL);
    assert_true(pd_delivery_open(&dl, &o) < 0);
    assert_true(dl.why[0] != '\0');
    assert_null(dl.sp);
    pd_bodylimit_cleanup(&lim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verdict_table),
        cmocka_unit_test(test_refused_chunk_is_cut_again),
        cmocka_unit_test(test_record_too_big_for_learned_limit),
        cmocka_unit_test(test_refusal_when_record_cannot_fit),
        cmocka_unit_test(test_failure_words),
        cmocka_unit_test(test_memory_cuts_as_the_file),
        cmocka_unit_test(test_open_failure_names_the_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
