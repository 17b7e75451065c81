/* Following flow runs: the plan, the records, the receipts. */
#include "testlib.h"

#include "pd_config.h"
#include "pd_error.h"
#include "pd_follow.h"
#include "pd_fsutil.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static void test_outcomes(void **state)
{
    static const struct {
        long status;
        enum pd_run_outcome o;
        const char *name;
        bool final;
    } t[] = {
        {1, PD_RUN_RUNNING, "running", false}, {2, PD_RUN_SUCCESS, "success", true},
        {3, PD_RUN_FAILED, "failed", true},    {4, PD_RUN_STOPPED, "stopped", true},
        {5, PD_RUN_PARTIAL, "partial", true},  {0, PD_RUN_RUNNING, "running", false},
        {77, PD_RUN_RUNNING, "running", false},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        enum pd_run_outcome o = pd_run_outcome_of(t[i].status);
        if (o != t[i].o || strcmp(pd_run_outcome_name(o), t[i].name) || pd_run_final(o) != t[i].final)
            fail_msg("status %ld: outcome %s", t[i].status, pd_run_outcome_name(o));
    }
    assert_string_equal(pd_run_outcome_name(PD_RUN_UNKNOWN), "unknown");
    assert_true(pd_run_final(PD_RUN_UNKNOWN));
}

/* First after follow_first, then doubling, never over follow_cap. */
static void test_delays(void **state)
{
    static const struct {
        uint64_t prev, first, cap, next;
    } t[] = {
        {0, 5000, 300000, 5000},           {5000, 5000, 300000, 10000},
        {160000, 5000, 300000, 300000},    {300000, 5000, 300000, 300000},
        {0, 5000, 3000, 3000},             {UINT64_MAX / 2 + 1, 5000, UINT64_MAX, UINT64_MAX},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        uint64_t next = pd_follow_delay(t[i].prev, t[i].first, t[i].cap);
        if (next != t[i].next)
            fail_msg("row %zu: %llu, want %llu", i, (unsigned long long)next,
                     (unsigned long long)t[i].next);
    }
}

static void test_decisions(void **state)
{
    static const struct {
        enum pd_run_outcome o;
        int on_failure;
        unsigned used, max;
        enum pd_follow_step step;
    } t[] = {
        {PD_RUN_SUCCESS, PD_FLOW_FAIL, 0, 2, PD_FOLLOW_RECORD},
        {PD_RUN_FAILED, PD_FLOW_REPORT, 0, 2, PD_FOLLOW_REPORT},
        {PD_RUN_FAILED, PD_FLOW_FAIL, 0, 2, PD_FOLLOW_FAIL},
        {PD_RUN_STOPPED, PD_FLOW_FAIL, 0, 2, PD_FOLLOW_FAIL},
        {PD_RUN_PARTIAL, PD_FLOW_FAIL, 0, 2, PD_FOLLOW_FAIL},
        {PD_RUN_FAILED, PD_FLOW_RETRY, 0, 2, PD_FOLLOW_RETRY},
        {PD_RUN_FAILED, PD_FLOW_RETRY, 1, 2, PD_FOLLOW_RETRY},
        {PD_RUN_FAILED, PD_FLOW_RETRY, 2, 2, PD_FOLLOW_FAIL},
        {PD_RUN_FAILED, PD_FLOW_RETRY, 0, 0, PD_FOLLOW_FAIL},
        {PD_RUN_UNKNOWN, PD_FLOW_FAIL, 0, 2, PD_FOLLOW_REPORT},
        {PD_RUN_UNKNOWN, PD_FLOW_RETRY, 0, 2, PD_FOLLOW_REPORT},
    };
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        if (pd_follow_decide(t[i].o, t[i].on_failure, t[i].used, t[i].max) != t[i].step)
            fail_msg("row %zu", i);
}

static void test_record_round_trip(void **state)
{
    struct pd_follow_rec r = {.watch = strdup("orders"),
                              .file = strdup("in/a b.json"),
                              .claim_id = strdup("0123abcd"),
                              .archive_dir = strdup("/srv/archive"),
                              .chunk = 2,
                              .started_ms = 1764000000000ULL,
                              .next_ms = 1764000005000ULL,
                              .delay_ms = 5000};
    struct pd_follow_rec back;

    assert_int_equal(pd_follow_add_run(&r, "41"), 0);
    assert_int_equal(pd_follow_add_run(&r, "57"), 0);
    assert_int_equal(pd_follow_save(&r, pd_test_path(pd_test_dir, "follow")), 0);
    assert_string_equal(r.path, pd_test_path(pd_test_dir, "follow/0123abcd-2.json"));
    assert_int_equal(pd_follow_load(r.path, &back), 0);
    assert_string_equal(back.watch, "orders");
    assert_string_equal(back.file, "in/a b.json");
    assert_string_equal(back.archive_dir, "/srv/archive");
    assert_int_equal(back.chunk, 2);
    assert_int_equal(back.nruns, 2);
    assert_string_equal(pd_follow_run(&back), "57");
    assert_int_equal(back.next_ms, 1764000005000ULL);
    assert_int_equal(back.delay_ms, 5000);
    pd_follow_cleanup(&back);
    pd_test_write(r.path, "{\"watch\": \"orders\"}");
    assert_int_equal(pd_follow_load(r.path, &back), PD_ESTATE);
    pd_follow_cleanup(&r);
}

#define RECEIPT(claim)                                                                             \
    "{\n  \"file\": \"a.json\",\n  \"claim_id\": \"" claim "\",\n  \"chunks\": [\n"             \
    "    {\"index\": 1, \"flow_run_id\": \"41\"},\n    {\"index\": 2, \"flow_run_id\": \"42\"}\n" \
    "  ],\n  \"result\": \"delivered\"\n}\n"

/* The receipt of a claim is found under whichever numbered name the file took. */
static void test_find_receipt(void **state)
{
    pd_test_write(pd_test_path(pd_test_dir, "a.json"), "[]");
    pd_test_write(pd_test_path(pd_test_dir, "a.json.receipt.json"), RECEIPT("older"));
    pd_test_write(pd_test_path(pd_test_dir, "a.1.json"), "[]");
    pd_test_write(pd_test_path(pd_test_dir, "a.1.json.receipt.json"), RECEIPT("mine"));
    char *p = pd_follow_find_receipt(pd_test_dir, "a.json", "mine");
    assert_non_null(p);
    assert_string_equal(p, pd_test_path(pd_test_dir, "a.1.json.receipt.json"));
    free(p);
    assert_null(pd_follow_find_receipt(pd_test_dir, "a.json", "nobody"));
    assert_null(pd_follow_find_receipt(pd_test_dir, "b.json", "mine"));
}

/* Outcomes go into their chunks; flow_result is success only when every run succeeded. */
static void test_receipt_outcomes(void **state)
{
    const char *path = pd_test_path(pd_test_dir, "a.json.receipt.json");
    const char *runs[] = {"42", "43"};
    struct pd_follow_result one = {.chunk = 0, .outcome = "success", .finished_ms = 1764000000123ULL,
                                   .dashboard = "https://app.example/flow-run-logs/41"};
    struct pd_follow_result two = {.chunk = 1, .outcome = "running"};
    char *text = NULL;
    size_t len;

    pd_test_write(path, RECEIPT("c1"));
    assert_int_equal(pd_follow_receipt_update(path, NULL, &two), 0);
    assert_int_equal(pd_follow_receipt_update(path, NULL, &one), 0);
    assert_int_equal(pd_fs_read_all(path, 1 << 20, &text, &len), 0);
    assert_non_null(strstr(text, "\"flow_result\": \"running\""));
    assert_non_null(strstr(text, "\"finished_at\": \"2025-11-24T16:00:00.123Z\""));
    assert_non_null(strstr(text, "\"dashboard\": \"https://app.example/flow-run-logs/41\""));
    free(text);

    two.outcome = "success";
    two.finished_ms = 1764000001000ULL;
    two.runs = runs;
    two.nruns = 2;
    assert_int_equal(pd_follow_receipt_update(path, NULL, &two), 0);
    assert_int_equal(pd_fs_read_all(path, 1 << 20, &text, &len), 0);
    assert_non_null(strstr(text, "\"flow_result\": \"success\""));
    assert_non_null(strstr(text, "\"runs\": [\n        \"42\",\n        \"43\"\n      ]"));
    /* The receipt keeps its other members, in their order. */
    assert_true(strstr(text, "\"claim_id\"") < strstr(text, "\"chunks\""));
    assert_non_null(strstr(text, "\"result\": \"delivered\""));
    free(text);

    two.outcome = "failed";
    assert_int_equal(pd_follow_receipt_update(path, NULL, &two), 0);
    assert_int_equal(pd_fs_read_all(path, 1 << 20, &text, &len), 0);
    assert_non_null(strstr(text, "\"flow_result\": \"failed\""));
    free(text);

    pd_test_write(path, "not json");
    assert_int_equal(pd_follow_receipt_update(path, NULL, &two), PD_ESTATE);
    one.chunk = 9; /* no such chunk */
    pd_test_write(path, RECEIPT("c1"));
    assert_int_equal(pd_follow_receipt_update(path, NULL, &one), PD_ESTATE);
}

/* What a receipt already says of a run: read back before a restart polls it again. */
static void test_saved_outcome(void **state)
{
    const char *path = pd_test_path(pd_test_dir, "b.json.receipt.json");
    const char *runs[] = {"42", "43"};
    struct pd_follow_result one = {.chunk = 0, .outcome = "failed", .finished_ms = 1764000000123ULL};
    struct pd_follow_result two = {.chunk = 1, .outcome = "running"};
    enum pd_run_outcome o;
    uint64_t ms = 1;

    (void)state;
    pd_test_write(path, RECEIPT("c1"));
    /* Nothing final yet (no outcome at all, then running). */
    assert_int_equal(pd_follow_saved_outcome(path, 0, "41", &o, &ms), 0);
    assert_int_equal(o, PD_RUN_RUNNING);
    assert_int_equal(ms, 0);
    assert_int_equal(pd_follow_receipt_update(path, NULL, &two), 0);
    assert_int_equal(pd_follow_saved_outcome(path, 1, "42", &o, &ms), 0);
    assert_int_equal(o, PD_RUN_RUNNING);
    /* Final, with the time it was seen final. */
    assert_int_equal(pd_follow_receipt_update(path, NULL, &one), 0);
    assert_int_equal(pd_follow_saved_outcome(path, 0, "41", &o, &ms), 0);
    assert_int_equal(o, PD_RUN_FAILED);
    assert_int_equal(ms, 1764000000123ULL);
    /* Another run's outcome is not this run's: after a retry, the last run counts. */
    assert_int_equal(pd_follow_saved_outcome(path, 0, "99", &o, &ms), 0);
    assert_int_equal(o, PD_RUN_RUNNING);
    two.outcome = "success";
    two.runs = runs;
    two.nruns = 2;
    assert_int_equal(pd_follow_receipt_update(path, NULL, &two), 0);
    assert_int_equal(pd_follow_saved_outcome(path, 1, "43", &o, &ms), 0);
    assert_int_equal(o, PD_RUN_SUCCESS);
    assert_int_equal(ms, 0); /* no finished_at given */
    assert_int_equal(pd_follow_saved_outcome(path, 1, "42", &o, &ms), 0);
    assert_int_equal(o, PD_RUN_RUNNING);
    /* No such chunk, not a receipt, no file. */
    assert_int_equal(pd_follow_saved_outcome(path, 7, "41", &o, &ms), 0);
    assert_int_equal(o, PD_RUN_RUNNING);
    pd_test_write(path, "not json");
    assert_int_equal(pd_follow_saved_outcome(path, 0, "41", &o, &ms), 0);
    assert_int_equal(o, PD_RUN_RUNNING);
    assert_int_equal(pd_follow_saved_outcome(pd_test_path(pd_test_dir, "none"), 0, "41", &o, &ms),
                     -ENOENT);
    assert_int_equal(o, PD_RUN_RUNNING);
}

int main(void)
{
    return PD_RUN_IN_DIR(test_outcomes, test_delays, test_decisions, test_record_round_trip,
                         test_find_receipt, test_receipt_outcomes, test_saved_outcome);
}
