/* Unit tests of the Patchworks contract: the one classify function, ids, login and status, and
 * the answers of the cross-reference lookup operations. */
#include "testlib.h"

#include "pd_api.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_lookup.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

struct row {
    long status;
    int curl;
    const char *body;
    enum pd_api_verdict verdict;
};

/* Every status the API documents, the neighbours that matter, and every transport failure. */
static const struct row rows[] = {
    {200, CURLE_OK, "{\"message\":\"Flow initialised.\",\"flow_run_id\":7}", PD_API_OK},
    {201, CURLE_OK, "{}", PD_API_OK},
    {204, CURLE_OK, NULL, PD_API_OK},
    {401, CURLE_OK, "{\"message\":\"Unauthenticated.\"}", PD_API_REAUTH},
    {413, CURLE_OK, "<html>too large</html>", PD_API_RESPLIT},
    {408, CURLE_OK, "", PD_API_RETRY},
    {429, CURLE_OK, "{\"message\":\"Too Many Attempts.\"}", PD_API_RETRY},
    {500, CURLE_OK, "{\"message\":\"Server Error\"}", PD_API_RETRY},
    {502, CURLE_OK, "bad gateway", PD_API_RETRY},
    {503, CURLE_OK, "", PD_API_RETRY},
    {504, CURLE_OK, "", PD_API_RETRY},
    {599, CURLE_OK, "", PD_API_RETRY},
    {422, CURLE_OK, "{\"message\":\"The payload field is required.\"}", PD_API_REJECT},
    {400, CURLE_OK, "", PD_API_REJECT},
    {403, CURLE_OK, "{\"message\":\"Forbidden\"}", PD_API_REJECT},
    {404, CURLE_OK, "", PD_API_REJECT},
    {405, CURLE_OK, "", PD_API_REJECT},
    {409, CURLE_OK, "", PD_API_REJECT},
    {302, CURLE_OK, "", PD_API_REJECT},
    {0, CURLE_COULDNT_CONNECT, NULL, PD_API_RETRY},
    {0, CURLE_OPERATION_TIMEDOUT, NULL, PD_API_RETRY},
    {0, CURLE_RECV_ERROR, NULL, PD_API_RETRY},
    {0, CURLE_SEND_ERROR, NULL, PD_API_RETRY},
    {0, CURLE_GOT_NOTHING, NULL, PD_API_RETRY},
    {0, CURLE_PARTIAL_FILE, NULL, PD_API_RETRY},
    {0, CURLE_COULDNT_RESOLVE_HOST, NULL, PD_API_RETRY},
    {0, CURLE_SSL_CONNECT_ERROR, NULL, PD_API_RETRY},
    {0, CURLE_PEER_FAILED_VERIFICATION, NULL, PD_API_FATAL},
    {0, CURLE_URL_MALFORMAT, NULL, PD_API_FATAL},
    {0, CURLE_UNSUPPORTED_PROTOCOL, NULL, PD_API_FATAL},
    /* A status that arrived decides even when the body was cut off afterwards. */
    {503, CURLE_PARTIAL_FILE, "{\"mess", PD_API_RETRY},
    {200, CURLE_PARTIAL_FILE, "{\"flow_run_id\":1", PD_API_OK},
};

static void classify_table(void **state)
{
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        struct pd_api_result r;
        const struct row *w = &rows[i];
        assert_int_equal(
            pd_api_classify(w->status, w->curl, w->body, w->body ? strlen(w->body) : 0, &r), 0);
        if (r.verdict != w->verdict)
            fail_msg("status %ld curl %d: got %s, want %s", w->status, w->curl,
                     pd_api_verdict_name(r.verdict), pd_api_verdict_name(w->verdict));
        assert_int_equal(r.status, w->status);
        if (r.verdict != PD_API_OK)
            assert_non_null(r.message);
        pd_api_result_cleanup(&r);
    }
}

static char *id_of(const char *body)
{
    struct pd_api_result r;
    assert_int_equal(pd_api_classify(200, CURLE_OK, body, strlen(body), &r), 0);
    char *id = r.run_id ? strdup(r.run_id) : NULL;
    pd_api_result_cleanup(&r);
    return id;
}

static void run_id_variants(void **state)
{
    static const struct {
        const char *body, *id;
    } cases[] = {
        {"{\"message\":\"Flow initialised.\",\"flow_run_id\":123}", "123"},
        {"{\"flow_run_id\":\"abc-9\"}", "abc-9"},
        {"{\"run_id\":456}", "456"},
        {"{\"id\":789}", "789"},
        {"{\"data\":{\"flow_run_id\":11}}", "11"},
        {"{\"data\":{\"run_id\":\"r12\"}}", "r12"},
        {"{\"data\":{\"id\":13}}", "13"},
        {"{\"flow_run_id\":1,\"run_id\":2,\"id\":3}", "1"},
        {"{\"run_id\":2,\"data\":{\"flow_run_id\":1}}", "2"},
        {"{\"flow_run_id\":12345678901}", "12345678901"},
        {"{\"flow_run_id\":null,\"id\":5}", "5"},
        {"{\"flow_run_id\":\"\",\"run_id\":6}", "6"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *id = id_of(cases[i].body);
        assert_non_null(id);
        assert_string_equal(id, cases[i].id);
        free(id);
    }
}

static void no_run_id_keeps_body(void **state)
{
    static const char *const bodies[] = {"{\"message\":\"Flow initialised.\"}", "[1,2]",
                                         "not json at all", "{\"data\":[{\"id\":1}]}"};
    for (size_t i = 0; i < 4; i++) {
        struct pd_api_result r;
        assert_int_equal(pd_api_classify(200, CURLE_OK, bodies[i], strlen(bodies[i]), &r), 0);
        assert_int_equal(r.verdict, PD_API_OK);
        assert_null(r.run_id);
        assert_string_equal(r.body, bodies[i]);
        pd_api_result_cleanup(&r);
    }
}

static void reject_carries_message_and_errors(void **state)
{
    const char *body = "{\"message\":\"The given data was invalid.\",\"errors\":{\"payload\":"
                       "[\"The payload field is required.\",\"Must be a string.\"],"
                       "\"flow\":[\"Unknown flow.\"]}}";
    struct pd_api_result r;
    assert_int_equal(pd_api_classify(422, CURLE_OK, body, strlen(body), &r), 0);
    assert_int_equal(r.verdict, PD_API_REJECT);
    assert_string_equal(r.message, "HTTP 422: The given data was invalid.");
    assert_string_equal(r.errors,
                        "payload: The payload field is required., Must be a string.; flow: "
                        "Unknown flow.");
    pd_api_result_cleanup(&r);

    assert_int_equal(pd_api_classify(404, CURLE_OK, "Not Found", 9, &r), 0);
    assert_string_equal(r.message, "HTTP 404: Not Found");
    assert_null(r.errors);
    pd_api_result_cleanup(&r);

    assert_int_equal(pd_api_classify(0, CURLE_COULDNT_CONNECT, NULL, 0, &r), 0);
    assert_non_null(strstr(r.message, "connect"));
    pd_api_result_cleanup(&r);
}

static struct pd_patchworks pw_fixture(void)
{
    struct pd_patchworks pw;
    memset(&pw, 0, sizeof(pw));
    pw.email = "a\"b@example.com";
    pw.password = "p\\w";
    pw.start_url = "http://127.0.0.1:1/api/v1/";
    pw.core_url = "http://127.0.0.1:1/api/v1";
    return pw;
}

static void requests(void **state)
{
    struct pd_patchworks pw = pw_fixture();
    char *s;
    assert_int_equal(pd_api_login_body(&pw, &s), 0);
    assert_string_equal(s, "{\"email\":\"a\\\"b@example.com\",\"password\":\"p\\\\w\"}");
    free(s);
    pw.login_field = PD_LOGIN_USERNAME;
    assert_int_equal(pd_api_login_body(&pw, &s), 0);
    assert_non_null(strstr(s, "\"username\":"));
    free(s);
    assert_int_equal(pd_api_start_url(&pw, "12", "34", &s), 0);
    assert_string_equal(s, "http://127.0.0.1:1/api/v1/flows/12/start/34");
    free(s);
    assert_int_equal(pd_api_start_url(&pw, "12", NULL, &s), 0);
    assert_string_equal(s, "http://127.0.0.1:1/api/v1/flows/12/start");
    free(s);
    assert_int_equal(pd_api_start_url(&pw, "12/../x", NULL, &s), PD_ECONFIG);
    assert_int_equal(pd_api_run_url(&pw, "99", &s), 0);
    assert_string_equal(s, "http://127.0.0.1:1/api/v1/flow-runs/99");
    free(s);
    assert_int_equal(pd_api_run_url(&pw, "9 9", &s), PD_ECONFIG);
}

static void login_answers(void **state)
{
    char *tok;
    uint64_t ttl;
    const char *b1 = "{\"message\":\"You have successfully logged in.\",\"token\":\"eyJ1\","
                     "\"expires_in\":86400}";
    assert_int_equal(pd_api_parse_login(b1, strlen(b1), 10, &tok, &ttl), 0);
    assert_string_equal(tok, "eyJ1");
    assert_int_equal(ttl, 86400);
    free(tok);
    const char *b2 = "{\"data\":{\"access_token\":\"t2\",\"expires_in\":\"60\"}}";
    assert_int_equal(pd_api_parse_login(b2, strlen(b2), 10, &tok, &ttl), 0);
    assert_string_equal(tok, "t2");
    assert_int_equal(ttl, 60);
    free(tok);
    const char *b3 = "{\"access_token\":\"t3\"}";
    assert_int_equal(pd_api_parse_login(b3, strlen(b3), 10, &tok, &ttl), 0);
    assert_int_equal(ttl, 10);
    free(tok);
    const char *b4 = "{\"message\":\"ok\"}";
    assert_int_equal(pd_api_parse_login(b4, strlen(b4), 10, &tok, &ttl), PD_EPROTOCOL);
    assert_null(tok);
}

static void run_status(void **state)
{
    static const struct {
        const char *body, *words, *raw;
    } cases[] = {
        {"{\"id\":1,\"status\":1}", "running", "1"},
        {"{\"data\":{\"id\":1,\"status\":2}}", "success", "2"},
        {"{\"data\":{\"id\":1,\"attributes\":{\"status\":3}}}", "failed", "3"},
        {"{\"attributes\":{\"status\":4}}", "stopped", "4"},
        {"{\"status\":5}", "partial success", "5"},
        {"{\"status\":\"2\"}", "success", "2"},
        {"{\"status\":\"queued\"}", "queued", "queued"},
        {"{\"status\":9}", "9", "9"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *w, *r;
        assert_int_equal(pd_api_parse_run_status(cases[i].body, strlen(cases[i].body), &w, &r), 0);
        assert_string_equal(w, cases[i].words);
        assert_string_equal(r, cases[i].raw);
        free(w);
        free(r);
    }
    char *w, *r;
    assert_int_equal(pd_api_parse_run_status("{\"id\":1}", 8, &w, &r), PD_EPROTOCOL);
}

/* Found by fuzz_api: numbers beyond long long, and empty status strings, must not be undefined
 * behaviour or a crash. */
static void absurd_numbers(void **state)
{
    struct pd_api_result r;
    char *words = NULL, *raw = NULL, *token = NULL;
    uint64_t ttl = 0;
    const char *big = "{\"flow_run_id\": 7.7e110}";

    (void)state;
    assert_int_equal(pd_api_classify(200, 0, big, strlen(big), &r), 0);
    assert_int_equal(r.verdict, PD_API_OK);
    assert_non_null(r.run_id);
    pd_api_result_cleanup(&r);
    const char *st = "{\"status\": 777777777777777777777777777777}";
    assert_int_equal(pd_api_parse_run_status(st, strlen(st), &words, &raw), 0);
    assert_string_equal(words, raw);
    free(words);
    free(raw);
    const char *empty = "{\"status\": \"\"}";
    assert_int_equal(pd_api_parse_run_status(empty, strlen(empty), &words, &raw), PD_EPROTOCOL);
    const char *login = "{\"token\": \"t\", \"expires_in\": 1e300}";
    assert_int_equal(pd_api_parse_login(login, strlen(login), 86400, &token, &ttl), 0);
    assert_int_equal(ttl, 31536000);
    free(token);
}

/* ---- lookups -------------------------------------------------------------------------------- */

/* ROW holds ID, LEFT and RIGHT. */
static void expect_row(const struct pd_lookup_row *row, const char *id, const char *left,
                       const char *right)
{
    assert_string_equal(row->id, id);
    assert_string_equal(row->left, left);
    assert_string_equal(row->right, right);
}

/* INFO holds these strings; a NULL one must be missing (NULL) too. */
static void expect_info(const struct pd_lookup_info *info, const char *id, const char *name,
                        const char *description, const char *default_value)
{
    const char *got[] = {info->id, info->name, info->description, info->default_value};
    const char *want[] = {id, name, description, default_value};
    for (int i = 0; i < 4; i++) {
        if (want[i])
            assert_string_equal(got[i], want[i]);
        else
            assert_null(got[i]);
    }
}

static int rows_page(const char *body, unsigned long page, struct pd_lookup_rows *lrows,
                     struct pd_api_page *pg, char *why)
{
    return pd_api_parse_rows_page(body, body ? strlen(body) : 0, page, lrows, pg, why, 200);
}

/* Reads BODY as page 1, which must hold N rows. */
static void read_rows(const char *body, size_t n, struct pd_lookup_rows *lrows,
                      struct pd_api_page *pg)
{
    char why[200] = "";
    assert_int_equal(rows_page(body, 1, lrows, pg, why), 0);
    assert_int_equal(lrows->n, n);
}

static void rows_cleanup(struct pd_api_page *pg, struct pd_lookup_rows *lrows)
{
    pd_api_page_cleanup(pg);
    pd_lookup_rows_cleanup(lrows);
}

/* Ids and values: strings as sent (empty too), numbers without a fraction, booleans in words,
 * fields flat or under attributes, a null or missing right value as "". */
static void lookup_rows_page(void **state)
{
    struct pd_lookup_rows lrows;
    struct pd_api_page pg;
    const char *body =
        "{\"data\":[{\"id\":12,\"left_value\":\"A\",\"right_value\":\"1\"},"
        "{\"id\":\"r-2\",\"attributes\":{\"left_value\":7,\"right_value\":null}},"
        "{\"id\":-5,\"left_value\":\"\",\"right_value\":true},"
        "{\"id\":3,\"left_value\":2.5}],"
        "\"meta\":{\"current_page\":1,\"last_page\":4},\"links\":{\"next\":\"http://x/?page=2\"}}";

    (void)state;
    read_rows(body, 4, &lrows, &pg);
    expect_row(&lrows.v[0], "12", "A", "1");
    expect_row(&lrows.v[1], "r-2", "7", "");
    expect_row(&lrows.v[2], "-5", "", "true");
    expect_row(&lrows.v[3], "3", "2.5", "");
    assert_int_equal(lrows.v[0].line, 0);
    assert_int_equal(pg.last_page, 4);
    assert_string_equal(pg.next, "http://x/?page=2");
    assert_int_equal(pg.items, 4);
    rows_cleanup(&pg, &lrows);

    /* A bare list: no pagination at all. */
    read_rows("[]", 0, &lrows, &pg);
    assert_int_equal(pg.last_page, 0);
    assert_null(pg.next);
    assert_int_equal(pg.items, 0);
    rows_cleanup(&pg, &lrows);
}

/* Numbers beyond long long are never converted (the range guard), a page count beyond reason is
 * capped, and a last_page below one or of the wrong kind is no page count. */
static void lookup_absurd_numbers(void **state)
{
    struct pd_lookup_rows lrows;
    struct pd_api_page pg;
    const char *body = "{\"data\":[{\"id\":1e300,\"left_value\":-1e300,\"right_value\":1e400},"
                       "{\"id\":9007199254740993,\"left_value\":-0,\"right_value\":1e15}],"
                       "\"meta\":{\"last_page\":1e300}}";

    (void)state;
    read_rows(body, 2, &lrows, &pg);
    expect_row(&lrows.v[0], "1.0000000000000001e+300", "-1.0000000000000001e+300", "inf");
    assert_false(pd_lookup_id_valid(lrows.v[0].id));
    expect_row(&lrows.v[1], "9007199254740992", "0", "1000000000000000");
    assert_int_equal(pg.last_page, PD_API_MAX_PAGES);
    rows_cleanup(&pg, &lrows);

    static const char *const no_count[] = {
        "{\"data\":[],\"meta\":{\"last_page\":0}}",
        "{\"data\":[],\"meta\":{\"last_page\":-3}}",
        "{\"data\":[],\"meta\":{\"last_page\":-1e300}}",
        "{\"data\":[],\"meta\":{\"last_page\":\"4\"}}",
        "{\"data\":[],\"meta\":7,\"links\":{\"next\":\"\"}}",
    };
    char why[200] = "";
    for (size_t i = 0; i < sizeof(no_count) / sizeof(no_count[0]); i++) {
        assert_int_equal(rows_page(no_count[i], 1, &lrows, &pg, why), 0);
        assert_int_equal(pg.last_page, 0);
        assert_null(pg.next);
        rows_cleanup(&pg, &lrows);
    }
}

/* A page that cannot be read says which page and which item, and hands back nothing. */
static void lookup_bad_pages(void **state)
{
    static const struct {
        const char *body;
        const char *why;
    } bad[] = {
        {NULL, "page 3 of the list is not JSON"},
        {"<html>", "page 3 of the list is not JSON"},
        {"{\"data\":{}}", "page 3 of the list has no \"data\" list"},
        {"{\"lrows\":[]}", "page 3 of the list has no \"data\" list"},
        {"{\"data\":[{\"id\":1,\"left_value\":\"a\"},{\"left_value\":\"b\"}]}",
         "item 2 of page 3 has no id, left_value and right_value"},
        {"{\"data\":[{\"id\":1,\"right_value\":\"a\"}]}",
         "item 1 of page 3 has no id, left_value and right_value"},
        {"{\"data\":[{\"id\":{},\"left_value\":\"a\"}]}",
         "item 1 of page 3 has no id, left_value and right_value"},
        {"{\"data\":[{\"id\":1,\"left_value\":[\"a\"]}]}",
         "item 1 of page 3 has no id, left_value and right_value"},
        {"{\"data\":[{\"id\":1,\"left_value\":\"a\",\"right_value\":{}}]}",
         "item 1 of page 3 has no id, left_value and right_value"},
        {"{\"data\":[7]}", "item 1 of page 3 has no id, left_value and right_value"},
    };
    struct pd_lookup_rows lrows;
    struct pd_api_page pg;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char why[200] = "";
        assert_int_equal(rows_page(bad[i].body, 3, &lrows, &pg, why), PD_EPROTOCOL);
        assert_string_equal(why, bad[i].why);
        assert_null(lrows.v);
        assert_int_equal(lrows.n, 0);
        assert_null(pg.next);
    }
}

static void lookups_page(void **state)
{
    struct pd_lookup_info *infos;
    size_t n;
    struct pd_api_page pg;
    char why[200] = "";
    const char *body = "{\"data\":[{\"id\":3,\"name\":\"Countries\",\"description\":\"ISO\","
                       "\"default_value\":\"??\"},{\"id\":\"x\",\"attributes\":{\"name\":\"B\"}},"
                       "{\"id\":-1e300}],\"links\":{\"next\":\"http://h/next\"}}";

    (void)state;
    assert_int_equal(pd_api_parse_lookups_page(body, strlen(body), 1, &infos, &n, &pg, why, 200),
                     0);
    assert_int_equal(n, 3);
    expect_info(&infos[0], "3", "Countries", "ISO", "??");
    expect_info(&infos[1], "x", "B", NULL, NULL);
    expect_info(&infos[2], "-1.0000000000000001e+300", "", NULL, NULL);
    assert_int_equal(pg.last_page, 0);
    assert_string_equal(pg.next, "http://h/next");
    for (size_t i = 0; i < n; i++)
        pd_lookup_info_cleanup(&infos[i]);
    free(infos);
    pd_api_page_cleanup(&pg);

    const char *no_id = "[{\"id\":1,\"name\":\"a\"},{\"name\":\"b\"}]";
    assert_int_equal(
        pd_api_parse_lookups_page(no_id, strlen(no_id), 2, &infos, &n, &pg, why, sizeof(why)),
        PD_EPROTOCOL);
    assert_string_equal(why, "item 2 of page 2 has no id");
    assert_null(infos);
    assert_int_equal(n, 0);
}

/* One-record answers (show, create, add, update): under data or flat. */
static void lookup_records(void **state)
{
    struct pd_lookup_info info;
    struct pd_lookup_row row;
    char why[200] = "";
    const char *created = "{\"data\":{\"id\":44,\"name\":\"N\",\"default_value\":0}}";
    const char *added = "{\"id\":\"v9\",\"left_value\":\"L\",\"right_value\":\"R\"}";

    (void)state;
    assert_int_equal(pd_api_parse_lookup(created, strlen(created), &info, why, 200), 0);
    expect_info(&info, "44", "N", NULL, "0");
    pd_lookup_info_cleanup(&info);
    assert_int_equal(pd_api_parse_lookup_row(added, strlen(added), &row, why, 200), 0);
    expect_row(&row, "v9", "L", "R");
    free(row.id);
    free(row.left);
    free(row.right);

    const char *nested = "{\"data\":{\"id\":-7,\"attributes\":{\"left_value\":1e300}}}";
    assert_int_equal(pd_api_parse_lookup_row(nested, strlen(nested), &row, why, 200), 0);
    expect_row(&row, "-7", "1.0000000000000001e+300", "");
    free(row.id);
    free(row.left);
    free(row.right);

    assert_int_equal(pd_api_parse_lookup("", 0, &info, why, sizeof(why)), PD_EPROTOCOL);
    assert_string_equal(why, "the answer is not JSON");
    assert_null(info.id);
    static const char *const no_record[] = {"{}", "{\"data\":{\"name\":\"N\"}}", "[1]", "3",
                                            "{\"data\":{\"id\":null}}"};
    for (size_t i = 0; i < sizeof(no_record) / sizeof(no_record[0]); i++) {
        why[0] = '\0';
        assert_int_equal(pd_api_parse_lookup(no_record[i], strlen(no_record[i]), &info, why, 200),
                         PD_EPROTOCOL);
        assert_string_equal(why, "the answer does not hold the record (no id)");
        why[0] = '\0';
        assert_int_equal(
            pd_api_parse_lookup_row(no_record[i], strlen(no_record[i]), &row, why, 200),
            PD_EPROTOCOL);
        assert_string_equal(why, "the answer does not hold the record (no id)");
        assert_null(row.id);
    }
    const char *no_left = "{\"data\":{\"id\":5,\"right_value\":\"R\"}}";
    assert_int_equal(pd_api_parse_lookup_row(no_left, strlen(no_left), &row, why, 200),
                     PD_EPROTOCOL);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, classify_table, run_id_variants, no_run_id_keeps_body,
                        reject_carries_message_and_errors, requests, login_answers, run_status,
                        absurd_numbers, lookup_rows_page, lookup_absurd_numbers, lookup_bad_pages,
                        lookups_page, lookup_records);
}
