/*
 * Unit tests of the batch builder: what several files become in one body, per format, and
 * that a file that cannot join (another header or root, another shape, no room) is said so
 * without changing the batch. Every body is checked to be {"payload": "<string>"} whose string
 * is exactly the combined document, and no longer than max_body.
 */
#include "testlib.h"

#include "pd_batch.h"
#include "pd_config.h"
#include "pd_error.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static struct pd_batch *make(int format, uint64_t max_body, unsigned max_files)
{
    struct pd_batch_opts o = {.format = format, .max_body = max_body, .header_lines = 1,
                              .max_files = max_files};
    struct pd_batch *b = NULL;
    assert_int_equal(pd_batch_create(&o, &b), 0);
    return b;
}

static int add(struct pd_batch *b, const char *text)
{
    return pd_batch_add(b, text, strlen(text));
}

/* Takes the body, checks its envelope and length, and returns the payload string (free it). */
static char *payload_of(struct pd_batch *b)
{
    size_t want = pd_batch_body_len(b), len = 0;
    char *body = pd_batch_take_body(b, &len);
    assert_non_null(body);
    assert_int_equal(len, want);
    cJSON *j = cJSON_ParseWithLength(body, len);
    assert_non_null(j);
    assert_int_equal(cJSON_GetArraySize(j), 1);
    cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "payload");
    assert_true(cJSON_IsString(p));
    char *out = strdup(p->valuestring);
    cJSON_Delete(j);
    free(body);
    assert_int_equal(pd_batch_count(b), 0);
    return out;
}

/* Takes the payload, which must be WANT. */
static void expect_payload(struct pd_batch *b, const char *want)
{
    char *p = payload_of(b);
    assert_string_equal(p, want);
    free(p);
}

/* Files ONE and TWO of FORMAT go into one batch, whose payload is WANT. */
static void expect_joined(int format, const char *one, const char *two, const char *want)
{
    struct pd_batch *b = make(format, 8000000, 100);
    assert_int_equal(add(b, one), 0);
    assert_int_equal(add(b, two), 0);
    expect_payload(b, want);
    pd_batch_destroy(&b);
}

static void json_arrays_merge_into_one_array(void **state)
{
    struct pd_batch *b = make(PD_SPLIT_JSON, 8000000, 100);
    assert_int_equal(add(b, "[{\"id\":1,\"note\":\"say \\\"hi\\\"\"},{\"id\":2}]"), 0);
    assert_int_equal(add(b, "\xEF\xBB\xBF  [\n  {\"id\": 3}\n]\n"), 0);
    assert_int_equal(add(b, "[4]"), 0);
    assert_int_equal(pd_batch_count(b), 3);
    char *p = payload_of(b);
    assert_string_equal(p, "[{\"id\":1,\"note\":\"say \\\"hi\\\"\"},{\"id\":2},\n  {\"id\": 3}\n,4]");
    cJSON *arr = cJSON_Parse(p);
    assert_true(cJSON_IsArray(arr));
    assert_int_equal(cJSON_GetArraySize(arr), 4);
    cJSON_Delete(arr);
    free(p);
    pd_batch_destroy(&b);
    assert_null(b);
}

static void json_that_cannot_join(void **state)
{
    struct pd_batch *b = make(PD_SPLIT_JSON, 8000000, 100);
    assert_int_equal(add(b, "{\"orders\":[1,2]}"), PD_EPARSE);
    assert_int_equal(add(b, "[ ]"), PD_EPARSE);
    assert_int_equal(add(b, "  \n"), PD_EPARSE);
    assert_int_equal(pd_batch_count(b), 0);
    size_t len = 1;
    assert_null(pd_batch_take_body(b, &len));
    assert_int_equal(len, 0);
    pd_batch_destroy(&b);
}

/* pd_batch_check says beforehand what adding the file to any batch would say of its shape. */
static void check_before_adding(void **state)
{
    struct pd_batch_opts o = {.format = PD_SPLIT_JSON, .max_body = 8000000, .max_files = 10};
    const char *no[] = {"{\"orders\":[1,2]}", "[ ]", "  \n", "[1"};
    for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++)
        assert_int_equal(pd_batch_check(&o, no[i], strlen(no[i])), PD_EPARSE);
    assert_int_equal(pd_batch_check(&o, "\xEF\xBB\xBF[1]\n", 7), 0);
    o.format = PD_SPLIT_CSV;
    o.header_lines = 1;
    assert_int_equal(pd_batch_check(&o, "id\n", 3), PD_EPARSE);
    assert_int_equal(pd_batch_check(&o, "id\n1\n", 5), 0);
    o.format = PD_SPLIT_NONE;
    assert_int_equal(pd_batch_check(&o, "[1]", 3), PD_ECONFIG);
}

static void ndjson_and_lines_concatenate_with_line_ends(void **state)
{
    /* No final newline: one is added. */
    expect_joined(PD_SPLIT_NDJSON, "{\"a\":1}\n{\"a\":2}", "{\"a\":3}\n",
                  "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n");
    /* CRLF file: CRLF added. */
    expect_joined(PD_SPLIT_LINES, "one\r\ntwo", "three\n", "one\r\ntwo\r\nthree\n");
}

static void csv_rows_go_under_one_header(void **state)
{
    struct pd_batch *b = make(PD_SPLIT_CSV, 8000000, 100);
    assert_int_equal(add(b, "id,name\n1,\"Ann\nLee\"\n2,Bob\n"), 0);
    assert_int_equal(add(b, "id,name\n3,Cy"), 0);
    /* Another header: not in this batch, and the batch is unchanged. */
    size_t before = pd_batch_body_len(b);
    assert_int_equal(add(b, "id,name,extra\n4,Di,x\n"), PD_ESTATE);
    assert_int_equal(pd_batch_body_len(b), before);
    /* A header without rows adds nothing: it goes alone. */
    assert_int_equal(add(b, "id,name\n"), PD_EPARSE);
    expect_payload(b, "id,name\n1,\"Ann\nLee\"\n2,Bob\n3,Cy\n");
    /* Emptied, the batch takes the other header now. */
    assert_int_equal(add(b, "id,name,extra\n4,Di,x\n"), 0);
    expect_payload(b, "id,name,extra\n4,Di,x\n");
    pd_batch_destroy(&b);

    /* A quoted line break inside a header field stays in the header. */
    expect_joined(PD_SPLIT_CSV, "\"a\nb\",c\r\n1,2\r\n", "\"a\nb\",c\r\n3,4",
                  "\"a\nb\",c\r\n1,2\r\n3,4\r\n");
}

static void xml_records_go_under_one_root(void **state)
{
    const char *a = "<?xml version=\"1.0\"?>\n<!-- export -->\n<orders xmlns=\"urn:x\" note=\"a>b\">\n"
                    "  <order id=\"1\"/>\n</orders>\n";
    const char *b2 = "<?xml version=\"1.0\"?>\n<!-- export -->\n<orders xmlns=\"urn:x\" note=\"a>b\">\n"
                     "  <order id=\"2\"><n>&lt;/orders&gt;</n></order>\n</orders ><!-- </orders> -->";
    struct pd_batch *b = make(PD_SPLIT_XML, 8000000, 100);
    assert_int_equal(add(b, a), 0);
    assert_int_equal(add(b, b2), 0);
    /* Another root, or the same root with other attributes: another batch. */
    assert_int_equal(add(b, "<?xml version=\"1.0\"?>\n<!-- export -->\n<invoices><i/></invoices>"),
                     PD_ESTATE);
    assert_int_equal(add(b, "<?xml version=\"1.0\"?>\n<!-- export -->\n<orders xmlns=\"urn:y\" "
                            "note=\"a>b\"><order/></orders>"),
                     PD_ESTATE);
    /* No records: alone. */
    assert_int_equal(add(b, "<orders/>"), PD_EPARSE);
    assert_int_equal(add(b, "<orders>\n</orders>"), PD_EPARSE);
    expect_payload(b, "<?xml version=\"1.0\"?>\n<!-- export -->\n<orders xmlns=\"urn:x\" "
                      "note=\"a>b\">\n  <order id=\"1\"/>\n\n  <order id=\"2\"><n>&lt;/orders&gt;"
                      "</n></order>\n</orders>\n");
    pd_batch_destroy(&b);

    /* A DOCTYPE with an internal subset is part of the opening. */
    const char *d = "<!DOCTYPE r [ <!ENTITY e \"x>y\"> ]>\n<r><i>1</i></r>";
    expect_joined(PD_SPLIT_XML, d, d,
                  "<!DOCTYPE r [ <!ENTITY e \"x>y\"> ]>\n<r><i>1</i><i>1</i></r>");
}

static void never_over_max_body_or_max_files(void **state)
{
    /* Each file adds 10 bytes of records ("{\"k\":123}," escaped is 12); max_body 100. */
    struct pd_batch *b = make(PD_SPLIT_JSON, 100, 1000);
    unsigned added = 0;
    int rc;
    while ((rc = add(b, "[{\"k\":123}]")) == 0) {
        added++;
        assert_true(pd_batch_body_len(b) <= 100);
    }
    assert_int_equal(rc, PD_ETOOBIG);
    assert_true(added >= 5);
    assert_int_equal(pd_batch_count(b), added);
    char *p = payload_of(b);
    cJSON *arr = cJSON_Parse(p);
    assert_int_equal(cJSON_GetArraySize(arr), (int)added);
    cJSON_Delete(arr);
    free(p);
    /* A file too big for any body of its own goes alone. */
    char big[200];
    memset(big, 'x', sizeof(big));
    big[0] = '[', big[1] = '"', big[197] = '"', big[198] = ']', big[199] = '\0';
    assert_int_equal(add(b, big), PD_EPARSE);
    pd_batch_destroy(&b);

    b = make(PD_SPLIT_NDJSON, 8000000, 2);
    assert_int_equal(add(b, "1\n"), 0);
    assert_int_equal(add(b, "2\n"), 0);
    assert_int_equal(add(b, "3\n"), PD_ETOOBIG);
    pd_batch_destroy(&b);
}

static void formats_that_never_batch(void **state)
{
    struct pd_batch_opts o = {.format = PD_SPLIT_NONE, .max_body = 1000, .max_files = 10};
    struct pd_batch *b = NULL;
    assert_int_equal(pd_batch_create(&o, &b), PD_ECONFIG);
    assert_null(b);
    pd_batch_destroy(&b);
    pd_batch_destroy(NULL);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, json_arrays_merge_into_one_array, json_that_cannot_join,
                        ndjson_and_lines_concatenate_with_line_ends, csv_rows_go_under_one_header,
                        xml_records_go_under_one_root, never_over_max_body_or_max_files,
                        formats_that_never_batch, check_before_adding);
}
