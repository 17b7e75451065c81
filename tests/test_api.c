/* Unit tests of the Patchworks contract: the one classify function, ids, login and status, and
 * the answers of the cross-reference lookup operations and of following a flow run. */
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

/* An answer and the run id read from it. */
struct id_case {
    const char *body, *id;
};

/* READ reads the id of every case's body as the case says. */
static void expect_ids(const struct id_case *cases, size_t n, char *(*read)(const char *body))
{
    for (size_t i = 0; i < n; i++) {
        char *id = read(cases[i].body);
        if (!id || strcmp(id, cases[i].id))
            fail_msg("%s: %s, want %s", cases[i].body, id ? id : "no id", cases[i].id);
        free(id);
    }
}

static void run_id_variants(void **state)
{
    static const struct id_case cases[] = {
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
    expect_ids(cases, sizeof(cases) / sizeof(cases[0]), id_of);
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

/* ---- following a flow run ------------------------------------------------------------------- */

static void flow_run_urls(void **state)
{
    struct pd_patchworks pw = pw_fixture();
    static const struct {
        enum pd_api_run_path which;
        const char *tmpl, *id, *want;
    } cases[] = {
        {PD_API_RUN, NULL, "99", "http://127.0.0.1:1/api/v1/flow-runs/99"},
        {PD_API_RUN_LOGS, NULL, "99", "http://127.0.0.1:1/api/v1/flow-runs/99/flow-run-logs"},
        {PD_API_RUN_RETRY, NULL, "a-b_c.1", "http://127.0.0.1:1/api/v1/flow-runs/a-b_c.1/retry"},
        {PD_API_RUN, "/runs/{id}/x/{id}", "7", "http://127.0.0.1:1/api/v1/runs/7/x/7"},
        {PD_API_RUN_LOGS, "/logs?run={id}", "7", "http://127.0.0.1:1/api/v1/logs?run=7"},
        {PD_API_RUN_RETRY, "/retry", "7", "http://127.0.0.1:1/api/v1/retry"},
    };
    char *s;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        pw.flow_run_path = pw.flow_run_logs_path = pw.flow_run_retry_path = (char *)cases[i].tmpl;
        assert_int_equal(pd_api_flow_run_url(&pw, cases[i].which, cases[i].id, &s), 0);
        assert_string_equal(s, cases[i].want);
        free(s);
    }
    pw.flow_run_path = pw.flow_run_logs_path = pw.flow_run_retry_path = NULL;
    /* Ids that would change the URL's meaning, and no core_url: refused. */
    static const char *const bad[] = {"", "9 9", "../x", "1/2", "1?a", "%2e", "{id}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pd_api_flow_run_url(&pw, PD_API_RUN_LOGS, bad[i], &s), PD_ECONFIG);
        assert_null(s);
        assert_int_equal(pd_api_dashboard_url(&pw, bad[i], &s), PD_ECONFIG);
    }
    assert_int_equal(pd_api_flow_run_url(&pw, PD_API_RUN, NULL, &s), PD_ECONFIG);
    pw.core_url = NULL;
    assert_int_equal(pd_api_flow_run_url(&pw, PD_API_RUN, "1", &s), PD_ECONFIG);
    pw = pw_fixture();
    assert_int_equal(pd_api_run_logs_page_url(&pw, "12", 3, &s), 0);
    assert_string_equal(s,
                        "http://127.0.0.1:1/api/v1/flow-runs/12/flow-run-logs?page=3&per_page=100");
    free(s);
    assert_int_equal(pd_api_dashboard_url(&pw, "12", &s), 0);
    assert_string_equal(s, "https://app.wearepatchworks.com/flow-run-logs/12");
    free(s);
    pw.dashboard_url = "http://dash.test/run/{id}?tab=logs";
    assert_int_equal(pd_api_dashboard_url(&pw, "12", &s), 0);
    assert_string_equal(s, "http://dash.test/run/12?tab=logs");
    free(s);
}

static void flow_run_records(void **state)
{
    static const struct {
        const char *body;
        long status;
        const char *started, *finished;
    } cases[] = {
        {"{\"data\":{\"id\":\"7\",\"type\":\"flow-runs\",\"attributes\":{\"status\":2,"
         "\"started_at\":\"2026-01-02T03:04:05Z\",\"finished_at\":\"2026-01-02T03:05:00Z\"}}}",
         2, "2026-01-02T03:04:05Z", "2026-01-02T03:05:00Z"},
        {"{\"id\":7,\"status\":1,\"started_at\":\"s\",\"finished_at\":null}", 1, "s", NULL},
        {"{\"data\":{\"id\":7,\"status\":\"3\"}}", 3, NULL, NULL},
        {"{\"attributes\":{\"status\":4}}", 4, NULL, NULL},
        {"{\"status\":\"partial success\"}", 5, NULL, NULL},
        {"{\"status\":\"stopped\"}", 4, NULL, NULL},
        {"{\"status\":\"queued\"}", 0, NULL, NULL},
        {"{\"status\":9,\"started_at\":1700000000}", 0, "1700000000", NULL},
        {"{\"status\":2.5}", 0, NULL, NULL},
        {"{\"status\":\"2x\"}", 0, NULL, NULL},
        {"{\"status\":1e300}", 0, NULL, NULL},
        {"{\"status\":-777777777777777777777777}", 0, NULL, NULL},
        {"{\"status\":\"99999999999999999999999\"}", 0, NULL, NULL},
        {"{\"status\":true,\"started_at\":\"\"}", 0, NULL, NULL},
        {"{\"id\":1}", 0, NULL, NULL},
        {"{}", 0, NULL, NULL},
    };
    struct pd_api_run r;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(pd_api_parse_run(cases[i].body, strlen(cases[i].body), &r), 0);
        assert_int_equal(r.status, cases[i].status);
        if (cases[i].started)
            assert_string_equal(r.started_at, cases[i].started);
        else
            assert_null(r.started_at);
        if (cases[i].finished)
            assert_string_equal(r.finished_at, cases[i].finished);
        else
            assert_null(r.finished_at);
        pd_api_run_cleanup(&r);
        pd_api_run_cleanup(&r); /* twice is harmless */
    }
    static const char *const garbage[] = {"", "not json", "[1,2]", "\"2\"", "{\"status\":", "2"};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        assert_int_equal(pd_api_parse_run(garbage[i], strlen(garbage[i]), &r), PD_EPROTOCOL);
        assert_int_equal(r.status, 0);
        assert_null(r.started_at);
    }
    assert_int_equal(pd_api_parse_run(NULL, 0, &r), PD_EPROTOCOL);
    static const char *const outcomes[] = {NULL,      "running", "success", "failed",
                                           "stopped", "partial", NULL};
    for (long st = 0; st <= 6; st++)
        if (outcomes[st])
            assert_string_equal(pd_api_run_outcome(st), outcomes[st]);
        else
            assert_null(pd_api_run_outcome(st));
    assert_null(pd_api_run_outcome(-1));
}

/* Parses BODY as a logs page expecting N entries and NEXT; returns them (free with the API). */
static struct pd_api_run_log *logs_ok(const char *body, size_t want_n, unsigned want_next)
{
    struct pd_api_run_log *e = NULL;
    size_t n = 99;
    unsigned next = 99;
    assert_int_equal(pd_api_parse_run_logs(body, strlen(body), &e, &n, &next), 0);
    assert_int_equal(n, want_n);
    assert_int_equal(next, want_next);
    assert_non_null(e);
    return e;
}

static void flow_run_logs(void **state)
{
    (void)state;
    /* JSON:API entries under attributes, with the paging. */
    struct pd_api_run_log *e = logs_ok(
        "{\"data\":[{\"id\":1,\"attributes\":{\"created_at\":\"t1\",\"level\":\"info\","
        "\"message\":\"Flow started\"}},{\"id\":2,\"attributes\":{\"created_at\":\"t2\","
        "\"level\":\"error\",\"message\":\"Mapping failed\"}}],\"meta\":{\"current_page\":1,"
        "\"last_page\":3,\"total\":250},\"links\":{\"next\":\"http://x/?page=2\"}}",
        2, 2);
    assert_string_equal(e[0].time, "t1");
    assert_string_equal(e[0].level, "info");
    assert_string_equal(e[0].message, "Flow started");
    assert_string_equal(e[1].level, "error");
    pd_api_run_logs_free(e, 2);
    /* Flat entries with time; numeric strings in meta; the last page. */
    e = logs_ok("{\"data\":[{\"time\":\"t\",\"level\":200,\"message\":\"m\"},7,{},"
                "{\"other\":1}],\"meta\":{\"current_page\":\"3\",\"last_page\":\"3\"}}",
                1, 0);
    assert_string_equal(e[0].time, "t");
    assert_string_equal(e[0].level, "200");
    pd_api_run_logs_free(e, 1);
    /* A bare list, missing fields: NULL. No paging: the last page. */
    e = logs_ok("[{\"message\":\"only\"}]", 1, 0);
    assert_null(e[0].time);
    assert_null(e[0].level);
    assert_string_equal(e[0].message, "only");
    pd_api_run_logs_free(e, 1);
    /* Only links.next: its page=, forward only. */
    pd_api_run_logs_free(
        logs_ok("{\"data\":[],\"links\":{\"next\":\"/l?per_page=100&page=5\"}}", 0, 5), 0);
    pd_api_run_logs_free(
        logs_ok("{\"data\":[],\"meta\":{\"current_page\":5},\"links\":{\"next\":\"/l?page=5\"}}", 0,
                0),
        0);
    pd_api_run_logs_free(logs_ok("{\"data\":[],\"links\":{\"next\":\"/l?per_page=9\"}}", 0, 0), 0);
    pd_api_run_logs_free(logs_ok("{\"data\":[],\"links\":{\"next\":null}}", 0, 0), 0);
    /* Huge numbers are bounded, never undefined behaviour. */
    pd_api_run_logs_free(
        logs_ok("{\"data\":[],\"meta\":{\"current_page\":1,\"last_page\":1e300}}", 0, 2), 0);
    pd_api_run_logs_free(
        logs_ok("{\"data\":[],\"meta\":{\"current_page\":1e300,\"last_page\":1e300}}", 0, 0), 0);
    pd_api_run_logs_free(
        logs_ok("{\"data\":[],\"links\":{\"next\":\"?page=99999999999999999999\"}}", 0, 0), 0);

    /* At most 100 entries a page; each message at most 1000 bytes, cut at a character. */
    size_t cap = 200 * 40 + 3000;
    char *big = malloc(cap), *o = big;
    o += sprintf(o, "{\"data\":[{\"message\":\"");
    for (int i = 0; i < 1200; i++)
        o += sprintf(o, "\xc3\xa9"); /* é: two bytes */
    o += sprintf(o, "\"}");
    for (int i = 1; i < 200; i++)
        o += sprintf(o, ",{\"message\":\"m%d\"}", i);
    sprintf(o, "]}");
    e = logs_ok(big, 100, 0);
    assert_true(strlen(e[0].message) <= 1000);
    assert_int_equal(strlen(e[0].message) % 2, 0);
    assert_string_equal(e[99].message, "m99");
    pd_api_run_logs_free(e, 100);
    free(big);

    static const char *const garbage[] = {"", "nope", "{}", "{\"data\":{}}", "{\"data\":7}", "3"};
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        size_t n = 9;
        unsigned next = 9;
        e = (struct pd_api_run_log *)1;
        assert_int_equal(pd_api_parse_run_logs(garbage[i], strlen(garbage[i]), &e, &n, &next),
                         PD_EPROTOCOL);
        assert_null(e);
        assert_int_equal(n, 0);
        assert_int_equal(next, 0);
    }
    pd_api_run_logs_free(NULL, 0);
}

static char *retry_id_of(const char *body)
{
    char *id = NULL;
    return pd_api_parse_retry(body, strlen(body), &id) == 0 ? id : NULL;
}

static void flow_run_retry(void **state)
{
    static const struct id_case cases[] = {
        {"{\"message\":\"Flow run retried.\",\"flow_run_id\":8}", "8"},
        {"{\"data\":{\"run_id\":\"r-9\"}}", "r-9"},
        {"{\"id\":\"10\"}", "10"},
        {"{\"flow_run_id\":\"11\",\"id\":\"1\"}", "11"},
        {"{\"flow_run_id\":7.7e110}", "7.6999999999999995e+110"},
    };
    char *id;

    (void)state;
    expect_ids(cases, sizeof(cases) / sizeof(cases[0]), retry_id_of);
    static const char *const none[] = {"",
                                       "{}",
                                       "{\"message\":\"ok\"}",
                                       "[1]",
                                       "junk",
                                       "{\"flow_run_id\":\"\"}",
                                       "{\"data\":{\"id\":null}}"};
    for (size_t i = 0; i < sizeof(none) / sizeof(none[0]); i++) {
        assert_int_equal(pd_api_parse_retry(none[i], strlen(none[i]), &id), PD_EPROTOCOL);
        assert_null(id);
    }
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, classify_table, run_id_variants, no_run_id_keeps_body,
                        reject_carries_message_and_errors, requests, login_answers, run_status,
                        absurd_numbers, lookup_rows_page, lookup_absurd_numbers, lookup_bad_pages,
                        lookups_page, lookup_records, flow_run_urls, flow_run_records,
                        flow_run_logs, flow_run_retry);
}
