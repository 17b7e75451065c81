/* The durable delivery record: round trip, damage detection, receipts and error files. */
#include "testlib.h"
#include <stdbool.h>

#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_jobstate.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const dir = pd_test_dir;
static char path[300];

static int setup(void **state)
{
    pd_test_setup(state);
    snprintf(path, sizeof(path), "%s/orders.xml.json", dir);
    return 0;
}


static void fill(struct pd_jobstate *js)
{
    char id[33];
    memset(js, 0, sizeof(*js));
    assert_int_equal(pd_jobstate_new_claim_id(id), 0);
    assert_int_equal(strlen(id), 32);
    js->claim_id = strdup(id);
    js->watch = strdup("orders");
    js->name = strdup("in/orders \"big\".xml");
    js->work_name = strdup("orders.xml");
    js->flow_id = strdup("123");
    js->size = 20000000;
    js->mtime_ns = 1700000000123456789LL;
    js->claimed_ms = 1764000000000ULL;
    js->max_body = 8000000;
    struct pd_chunk_rec c = {.index = 0, .start = 120, .end = 7000000, .records = 5000,
                             .body_bytes = 7999000, .status = 200, .run_id = "9001",
                             .time_ms = 1764000001000ULL, .attempts = 2,
                             .batch_id = "0123456789abcdef0123456789abcdef", .batch_files = 7,
                             .batch_pos = 3};
    assert_int_equal(pd_jobstate_add_chunk(js, &c), 0);
    struct pd_chunk_rec d = {.index = 1, .start = 7000000, .end = 14000000, .records = 4000,
                             .body_bytes = 7900000, .status = 201, .answer = "{\"ok\":1}",
                             .time_ms = 1764000002000ULL, .attempts = 1};
    assert_int_equal(pd_jobstate_add_chunk(js, &d), 0);
    js->attempts = 3;
}

/* Whether TEXT is valid UTF-8 (what any JSON reader insists on). */
static bool valid_utf8(const char *text)
{
    const unsigned char *p = (const unsigned char *)text;
    while (*p) {
        int n = *p < 0x80 ? 1 : (*p & 0xE0) == 0xC0 ? 2 : (*p & 0xF0) == 0xE0 ? 3
                : (*p & 0xF8) == 0xF0                ? 4
                                                     : 0;
        if (!n || (n == 2 && *p < 0xC2))
            return false;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xC0) != 0x80)
                return false;
        p += n;
    }
    return true;
}

/* A name from a Latin-1 system: every file written is valid JSON, and the record is exact. */
static void test_non_utf8_names(void **state)
{
    struct pd_jobstate js, back;
    char *why = NULL;
    (void)state;

    fill(&js);
    free(js.name);
    free(js.work_name);
    js.name = strdup("caf\xe9 \xff.csv");
    js.work_name = strdup("caf\xe9 \xff.csv");
    assert_int_equal(pd_jobstate_save(&js, path), 0);
    char *text = NULL;
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    text = calloc(1, 1 << 16);
    assert_true(fread(text, 1, (1 << 16) - 1, f) > 0);
    fclose(f);
    assert_true(valid_utf8(text));
    assert_non_null(strstr(text, "caf\xc3\xa9 \xc3\xbf.csv")); /* read as Latin-1 */
    assert_non_null(strstr(text, "\"file_hex\""));
    free(text);
    assert_int_equal(pd_jobstate_load(path, &back, &why), 0);
    assert_string_equal(back.name, "caf\xe9 \xff.csv"); /* byte for byte */
    assert_string_equal(back.work_name, "caf\xe9 \xff.csv");
    pd_jobstate_cleanup(&back);
    text = pd_jobstate_receipt(&js, 1764000002000ULL);
    assert_non_null(text);
    assert_true(valid_utf8(text));
    assert_non_null(strstr(text, "\"file_hex\": \"636166e920ff2e637376\"") ||
                    strstr(text, "\"file_hex\":\t\"636166e920ff2e637376\"") ||
                    strstr(text, "636166e920ff2e637376"));
    free(text);
    struct pd_failure fl = {.reason = "caf\xe9 \xff.csv is broken", .chunk = -1, .offset = -1};
    text = pd_jobstate_error_report(&js, &fl, 1764000002000ULL);
    assert_non_null(text);
    assert_true(valid_utf8(text));
    free(text);
    pd_jobstate_cleanup(&js);
}

static void test_round_trip(void **state)
{
    struct pd_jobstate js, back;
    char *why = NULL;
    struct stat st;

    fill(&js);
    assert_int_equal(js.next_offset, 14000000);
    assert_int_equal(js.next_index, 2);
    assert_int_equal(pd_jobstate_save(&js, path), 0);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(pd_jobstate_load(path, &back, &why), 0);
    assert_null(why);
    assert_string_equal(back.claim_id, js.claim_id);
    assert_string_equal(back.name, "in/orders \"big\".xml");
    assert_null(back.version_id);
    assert_null(back.sha256);
    assert_int_equal(back.size, 20000000);
    assert_true(back.mtime_ns == 1700000000123456789LL); /* exact to the nanosecond */
    assert_int_equal(back.next_offset, 14000000);
    assert_int_equal(back.next_index, 2);
    assert_int_equal(back.attempts, 3);
    assert_false(back.finished);
    assert_int_equal(back.nchunks, 2);
    assert_string_equal(back.chunks[0].run_id, "9001");
    assert_int_equal(back.chunks[0].start, 120);
    /* batch = N: the request the file went in survives a restart, and only where it applies. */
    assert_string_equal(back.chunks[0].batch_id, "0123456789abcdef0123456789abcdef");
    assert_int_equal(back.chunks[0].batch_files, 7);
    assert_int_equal(back.chunks[0].batch_pos, 3);
    assert_null(back.chunks[1].batch_id);
    assert_int_equal(back.chunks[1].batch_files, 0);
    assert_int_equal(back.chunks[1].status, 201);
    assert_null(back.chunks[1].run_id);
    assert_string_equal(back.chunks[1].answer, "{\"ok\":1}");
    assert_null(back.fail.reason);
    assert_int_equal(back.fail.chunk, -1);
    pd_jobstate_cleanup(&back);

    /* A judged failure survives a restart, so the file is not sent again. */
    js.fail.reason = strdup("refused: bad data");
    js.fail.status = 422;
    js.fail.message = strdup("The payload is invalid.");
    js.fail.chunk = 1;
    js.fail.offset = 7000000;
    assert_int_equal(pd_jobstate_save(&js, path), 0);
    assert_int_equal(pd_jobstate_load(path, &back, &why), 0);
    assert_string_equal(back.fail.reason, "refused: bad data");
    assert_int_equal(back.fail.status, 422);
    assert_string_equal(back.fail.message, "The payload is invalid.");
    assert_null(back.fail.errors);
    assert_int_equal(back.fail.chunk, 1);
    assert_int_equal(back.fail.offset, 7000000);
    pd_jobstate_cleanup(&back);
    pd_jobstate_cleanup(&js);
}

/* A compressed file's record: its entries and the entry to go on in survive a restart (the
 * resume expands that entry again), and the receipt lists each entry with its chunks. */
static void test_compressed_entries(void **state)
{
    struct pd_jobstate js, back;
    char *why = NULL;
    (void)state;

    fill(&js);
    js.chunks[1].entry = 1; /* chunk 1 is of the second file in the zip */
    js.next_entry = 1;
    js.compression = strdup("zip");
    js.entries = calloc(3, sizeof(*js.entries));
    js.nentries = 3;
    js.entries[0] = (struct pd_entry_rec){strdup("a.csv"), 7000000, strdup("csv")};
    js.entries[1] = (struct pd_entry_rec){strdup("../b\ncaf\xe9.csv"), 9000000, strdup("csv")};
    js.entries[2] = (struct pd_entry_rec){strdup("c.csv"), 0, NULL}; /* not expanded yet */
    assert_int_equal(pd_jobstate_save(&js, path), 0);
    assert_int_equal(pd_jobstate_load(path, &back, &why), 0);
    assert_string_equal(back.compression, "zip");
    assert_int_equal(back.next_entry, 1);
    assert_int_equal(back.chunks[0].entry, 0);
    assert_int_equal(back.chunks[1].entry, 1);
    assert_int_equal(back.nentries, 3);
    assert_string_equal(back.entries[1].name, "../b\ncaf\xe9.csv"); /* byte for byte */
    assert_int_equal(back.entries[1].size, 9000000);
    assert_null(back.entries[2].format);
    pd_jobstate_cleanup(&back);

    char *r = pd_jobstate_receipt(&js, 1764000003000ULL);
    cJSON *o = cJSON_Parse(r), *e = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "entries"), 1);
    assert_non_null(e);
    assert_string_equal(cJSON_GetObjectItem(e, "format")->valuestring, "csv");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(e, "chunks")), 1);
    assert_int_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(e, "chunks"), 0)->valueint, 1);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(e, "flow_run_ids")), 0);
    assert_non_null(cJSON_GetObjectItem(e, "name_hex")); /* not UTF-8: exact bytes beside */
    assert_true(valid_utf8(r));
    cJSON_Delete(o);
    free(r);
    pd_jobstate_cleanup(&js);
}

static void test_damaged_records_are_named(void **state)
{
    struct pd_jobstate js;
    char *why = NULL;
    const char *cases[] = {"{\"version\":1", "[]", "{\"version\":99}",
                           "{\"version\":1,\"claim_id\":\"x\"}"};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(pd_fs_write_atomic(path, cases[i], strlen(cases[i]), 0600), 0);
        assert_int_equal(pd_jobstate_load(path, &js, &why), PD_ESTATE);
        assert_non_null(why);
        assert_non_null(strstr(why, path));
        free(why);
    }
    assert_true(pd_jobstate_load("/nonexistent/x.json", &js, &why) < 0);
}

/* A claim's record is saved without waiting for the disk; a power cut may leave it empty,
 * which is no record at all (the file is sent from its start), never a damaged one. */
static void test_claim_record_and_empty_record(void **state)
{
    struct pd_jobstate js, back;
    char *why = NULL;
    fill(&js);
    assert_int_equal(pd_jobstate_save_claim(&js, path), 0);
    assert_int_equal(pd_jobstate_load(path, &back, &why), 0);
    assert_string_equal(back.claim_id, js.claim_id);
    pd_jobstate_cleanup(&back);
    pd_jobstate_cleanup(&js);
    assert_int_equal(pd_fs_write_atomic(path, "", 0, 0600), 0);
    assert_int_equal(pd_jobstate_load(path, &back, &why), -ENOENT);
    assert_null(why);
}

static void test_receipt_and_error_file(void **state)
{
    struct pd_jobstate js;
    fill(&js);
    js.sha256 = strdup("ab12");
    js.version_id = strdup("456");
    char *r = pd_jobstate_receipt(&js, 1764000003000ULL);
    assert_non_null(r);
    cJSON *o = cJSON_Parse(r);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "file")->valuestring, "in/orders \"big\".xml");
    assert_string_equal(cJSON_GetObjectItem(o, "sha256")->valuestring, "ab12");
    assert_string_equal(cJSON_GetObjectItem(o, "flow_id")->valuestring, "123");
    assert_string_equal(cJSON_GetObjectItem(o, "version_id")->valuestring, "456");
    assert_string_equal(cJSON_GetObjectItem(o, "result")->valuestring, "delivered");
    assert_string_equal(cJSON_GetObjectItem(o, "delivered_at")->valuestring,
                        "2025-11-24T16:00:03.000Z");
    cJSON *chunks = cJSON_GetObjectItem(o, "chunks");
    assert_int_equal(cJSON_GetArraySize(chunks), 2);
    cJSON *c0 = cJSON_GetArrayItem(chunks, 0);
    assert_string_equal(cJSON_GetObjectItem(c0, "flow_run_id")->valuestring, "9001");
    assert_int_equal(cJSON_GetObjectItem(c0, "status")->valueint, 200);
    assert_int_equal((long)cJSON_GetObjectItem(c0, "end")->valuedouble, 7000000);
    assert_string_equal(cJSON_GetObjectItem(c0, "time")->valuestring, "2025-11-24T16:00:01.000Z");
    cJSON_Delete(o);
    free(r);

    struct pd_failure f = {.reason = "rejected by Patchworks: fix the data and drop it again",
                           .status = 422, .message = "The payload field is required.",
                           .errors = "payload: required", .chunk = 2, .offset = 14000000};
    r = pd_jobstate_error_report(&js, &f, 1764000004000ULL);
    o = cJSON_Parse(r);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "result")->valuestring, "failed");
    assert_int_equal(cJSON_GetObjectItem(o, "http_status")->valueint, 422);
    assert_string_equal(cJSON_GetObjectItem(o, "server_message")->valuestring,
                        "The payload field is required.");
    assert_int_equal(cJSON_GetObjectItem(o, "chunk")->valueint, 2);
    assert_int_equal((long)cJSON_GetObjectItem(o, "byte_offset")->valuedouble, 14000000);
    assert_int_equal(cJSON_GetObjectItem(o, "attempts")->valueint, 3);
    assert_int_equal(cJSON_GetObjectItem(o, "chunks_delivered")->valueint, 2);
    cJSON_Delete(o);
    free(r);

    struct pd_failure g = {.reason = "empty file", .chunk = -1, .offset = -1};
    r = pd_jobstate_error_report(&js, &g, 1764000004000ULL);
    o = cJSON_Parse(r);
    assert_null(cJSON_GetObjectItem(o, "http_status"));
    assert_null(cJSON_GetObjectItem(o, "chunk"));
    assert_null(cJSON_GetObjectItem(o, "byte_offset"));
    cJSON_Delete(o);
    free(r);
    pd_jobstate_cleanup(&js);
}

/* TEXT (made, then freed here) equals the golden file tests/data/jobstate/NAME byte for byte. */
static void assert_golden(char *text, const char *name)
{
    char gpath[600], *golden = NULL;
    size_t len = 0;
    assert_non_null(text);
    snprintf(gpath, sizeof(gpath), "%s/jobstate/%s", PD_TEST_DATA, name);
    assert_int_equal(pd_fs_read_all(gpath, 1 << 20, &golden, &len), 0);
    if (strcmp(text, golden) != 0)
        fail_msg("%s differs; got:\n%s", gpath, text);
    free(golden);
    free(text);
}

/*
 * Receipts and error files are read by people and diffed by tools: two spaces of indent, keys
 * always in the same order (the order they are added in), one element per line, a newline at
 * the end. Compared whole against golden files.
 */
static void test_receipt_and_error_file_layout(void **state)
{
    struct pd_jobstate js;
    (void)state;

    fill(&js);
    free(js.claim_id);
    js.claim_id = strdup("00112233445566778899aabbccddeeff");
    js.sha256 = strdup("9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08");
    js.version_id = strdup("7");
    assert_golden(pd_jobstate_receipt(&js, 1764000003000ULL), "receipt.json");

    struct pd_failure f = {.reason = "Patchworks refused chunk 3 (bytes 14000000-20000000): HTTP "
                                     "422: The payload field is required.; 2 earlier chunk(s) "
                                     "were delivered; fix the data and drop the file again",
                           .status = 422,
                           .message = "HTTP 422: The payload field is required.",
                           .errors = "payload: The payload field is required.",
                           .chunk = 2,
                           .offset = 14000000};
    assert_golden(pd_jobstate_error_report(&js, &f, 1764000004000ULL), "error.json");

    /* Refused here, before anything was sent: no status, no server words, no chunks. */
    pd_jobstate_cleanup(&js);
    fill(&js);
    free(js.claim_id);
    js.claim_id = strdup("00112233445566778899aabbccddeeff");
    free(js.name);
    js.name = strdup("latin1.txt");
    js.size = 13;
    js.attempts = 0;
    for (size_t i = 0; i < js.nchunks; i++) {
        free(js.chunks[i].run_id);
        free(js.chunks[i].answer);
        free(js.chunks[i].batch_id);
    }
    js.nchunks = 0;
    struct pd_failure g = {.reason = "invalid UTF-8 at byte 3 (0xe9): the file is not UTF-8; "
                                     "set encoding to its charset",
                           .chunk = 0,
                           .offset = 3};
    assert_golden(pd_jobstate_error_report(&js, &g, 1764000004000ULL), "error-local.json");
    pd_jobstate_cleanup(&js);
}

int main(void)
{
    return PD_RUN_TESTS(setup, pd_test_teardown, test_round_trip, test_non_utf8_names,
                        test_compressed_entries, test_damaged_records_are_named,
                        test_claim_record_and_empty_record, test_receipt_and_error_file) +
           PD_RUN_TESTS(NULL, NULL, test_receipt_and_error_file_layout);
}
