/*
 * Tests of patchdrop-mock: the emulator runs in-process on a free loopback port and libcurl
 * talks to it as patchdrop would. Each endpoint and each fault is checked by status code and
 * body; expiry and the rate window use an injected clock, so nothing sleeps for them.
 */
#include "pd_error.h"
#include "pd_mock.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <setjmp.h>
#include <stddef.h>
#include "testlib.h"

#define PASSWORD "s3cret-pw"
#define USER "ops@example.com"

/* ---- helpers ------------------------------------------------------------------------------ */

static _Atomic uint64_t fake_now = 1000000;

static uint64_t fake_clock(void *ud)
{
    (void)ud;
    return atomic_load(&fake_now);
}

struct resp {
    CURLcode rc;
    long status;
    char *body;
    size_t len;
    char retry_after[32];
    char rl_remaining[32];
    char content_type[64];
};

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    struct resp *r = ud;
    char *p = realloc(r->body, r->len + size * n + 1);
    if (!p)
        return 0;
    memcpy(p + r->len, data, size * n);
    r->body = p;
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

static void header_value(const char *line, size_t n, const char *name, char *out, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k || strncasecmp(line, name, k) || line[k] != ':')
        return;
    const char *v = line + k + 1;
    while (*v == ' ')
        v++;
    size_t len = (size_t)(line + n - v);
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n'))
        len--;
    if (len >= cap)
        len = cap - 1;
    memcpy(out, v, len);
    out[len] = '\0';
}

static size_t on_header(char *line, size_t size, size_t n, void *ud)
{
    struct resp *r = ud;
    header_value(line, size * n, "Retry-After", r->retry_after, sizeof(r->retry_after));
    header_value(line, size * n, "X-RateLimit-Remaining", r->rl_remaining, sizeof(r->rl_remaining));
    header_value(line, size * n, "Content-Type", r->content_type, sizeof(r->content_type));
    return size * n;
}

struct chunked {
    const char *data;
    size_t len, pos;
};

static size_t on_read(char *buf, size_t size, size_t n, void *ud)
{
    struct chunked *c = ud;
    size_t k = c->len - c->pos;
    if (k > size * n)
        k = size * n;
    if (k > 50)
        k = 50;
    memcpy(buf, c->data + c->pos, k);
    c->pos += k;
    return k;
}

struct req {
    const char *method;
    const char *path;
    const char *auth; /* Authorization value, NULL: none */
    const char *body; /* NULL: none */
    size_t len;       /* 0: strlen(body) */
    long timeout_ms;  /* 0: 5000 */
    bool chunked;
};

static void do_request(uint16_t port, const struct req *q, struct resp *r)
{
    memset(r, 0, sizeof(*r));
    CURL *h = curl_easy_init();
    assert_non_null(h);
    char url[512], auth[512];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)port, q->path);
    struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
    hdr = curl_slist_append(hdr, "Accept: application/json");
    hdr = curl_slist_append(hdr, "Expect:");
    if (q->auth) {
        snprintf(auth, sizeof(auth), "Authorization: %s", q->auth);
        hdr = curl_slist_append(hdr, auth);
    }
    struct chunked ch = {0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, q->method);
    if (q->body) {
        size_t len = q->len ? q->len : strlen(q->body);
        if (q->chunked) {
            ch.data = q->body;
            ch.len = len;
            hdr = curl_slist_append(hdr, "Transfer-Encoding: chunked");
            curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
            curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
            curl_easy_setopt(h, CURLOPT_READDATA, &ch);
        } else {
            curl_easy_setopt(h, CURLOPT_POSTFIELDS, q->body);
            curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
        }
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, q->timeout_ms ? q->timeout_ms : 5000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    r->rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
    curl_easy_cleanup(h);
    curl_slist_free_all(hdr);
}

static void resp_free(struct resp *r)
{
    free(r->body);
    r->body = NULL;
}

/* One request; asserts a complete answer and returns its status. Fills R when not NULL. */
static long call(uint16_t port, const char *method, const char *path, const char *auth,
                 const char *body, struct resp *r)
{
    struct resp tmp;
    struct resp *out = r ? r : &tmp;
    struct req q = {.method = method, .path = path, .auth = auth, .body = body};
    do_request(port, &q, out);
    assert_int_equal(out->rc, CURLE_OK);
    assert_string_equal(out->content_type, "application/json");
    long status = out->status;
    if (!r)
        resp_free(&tmp);
    return status;
}

static cJSON *json_of(const struct resp *r)
{
    cJSON *j = cJSON_Parse(r->body ? r->body : "");
    assert_non_null(j);
    return j;
}

static const char *jstr(const cJSON *o, const char *path)
{
    const cJSON *v = o;
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = cJSON_GetObjectItemCaseSensitive(v, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double jnum(const cJSON *o, const char *path)
{
    const cJSON *v = o;
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = cJSON_GetObjectItemCaseSensitive(v, k);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

static const cJSON *jget(const cJSON *o, const char *path)
{
    const cJSON *v = o;
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *save = NULL, *k = strtok_r(buf, ".", &save); k; k = strtok_r(NULL, ".", &save))
        v = cJSON_GetObjectItemCaseSensitive(v, k);
    return v;
}

static struct pd_mock *start_mock(struct pd_mock_options *o)
{
    struct pd_mock *m = NULL;
    char *err = NULL;
    o->quiet = true;
    o->user = USER;
    o->password = PASSWORD;
    int rc = pd_mock_create(o, &m, &err);
    if (rc)
        fprintf(stderr, "pd_mock_create: %s\n", err ? err : pd_strerror(rc));
    free(err);
    assert_int_equal(rc, 0);
    assert_true(pd_mock_port(m) > 0);
    return m;
}

static struct pd_mock *start_default(void)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    return start_mock(&o);
}

/* Logs in and returns "Bearer <token>" in AUTH. */
static void login(uint16_t port, char *auth, size_t cap)
{
    struct resp r;
    assert_int_equal(call(port, "POST", "/api/v1/login", NULL,
                          "{\"email\":\"" USER "\",\"password\":\"" PASSWORD "\"}", &r),
                     200);
    cJSON *j = json_of(&r);
    assert_non_null(jstr(j, "token"));
    snprintf(auth, cap, "Bearer %s", jstr(j, "token"));
    cJSON_Delete(j);
    resp_free(&r);
}

static long start_flow(uint16_t port, const char *auth, struct resp *r)
{
    return call(port, "POST", "/api/v1/flows/7/start/3", auth, "{\"payload\":\"<a/>\"}", r);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Polls the mock's counters until PRED holds, at most 5 s. */
static bool wait_hangs(struct pd_mock *m, uint64_t want)
{
    for (int i = 0; i < 500; i++) {
        struct pd_mock_stats st;
        pd_mock_stats(m, &st);
        if (st.hangs_active == want)
            return true;
        usleep(10000);
    }
    return false;
}

/* ---- login -------------------------------------------------------------------------------- */

static void test_login_both_forms(void **state)
{
    struct pd_mock *m = start_default();
    uint16_t port = pd_mock_port(m);
    struct resp r;

    assert_int_equal(call(port, "POST", "/api/v1/login", NULL,
                          "{\"email\":\"" USER "\",\"password\":\"" PASSWORD "\"}", &r),
                     200);
    cJSON *j = json_of(&r);
    assert_string_equal(jstr(j, "message"), "You have successfully logged in.");
    assert_true(strlen(jstr(j, "token")) >= 32);
    assert_int_equal((int)jnum(j, "expires_in"), 86400);
    cJSON_Delete(j);
    resp_free(&r);

    assert_int_equal(call(port, "POST", "/fabric/api/login", NULL,
                          "{\"username\":\"" USER "\",\"password\":\"" PASSWORD "\"}", &r),
                     200);
    j = json_of(&r);
    char auth[128];
    snprintf(auth, sizeof(auth), "Bearer %s", jstr(j, "token"));
    cJSON_Delete(j);
    resp_free(&r);
    /* The token of the second form works like the first. */
    assert_int_equal(start_flow(port, auth, NULL), 200);

    struct pd_mock_stats st;
    pd_mock_stats(m, &st);
    assert_int_equal(st.logins, 2);
    pd_mock_destroy(&m);
    assert_null(m);
    pd_mock_destroy(&m); /* NULL is a no-op */
}

static void test_login_refused(void **state)
{
    struct pd_mock *m = start_default();
    uint16_t port = pd_mock_port(m);
    struct resp r;

    assert_int_equal(call(port, "POST", "/api/v1/login", NULL,
                          "{\"email\":\"" USER "\",\"password\":\"wrong\"}", &r),
                     401);
    cJSON *j = json_of(&r);
    assert_non_null(jstr(j, "message"));
    assert_null(jget(j, "token"));
    cJSON_Delete(j);
    resp_free(&r);
    assert_int_equal(call(port, "POST", "/api/v1/login", NULL,
                          "{\"email\":\"other@example.com\",\"password\":\"" PASSWORD "\"}", NULL),
                     401);

    /* Missing password: 422 naming the field. */
    assert_int_equal(call(port, "POST", "/api/v1/login", NULL, "{\"email\":\"" USER "\"}", &r),
                     422);
    j = json_of(&r);
    assert_true(cJSON_IsArray(jget(j, "errors.password")));
    assert_null(jget(j, "errors.email"));
    cJSON_Delete(j);
    resp_free(&r);

    /* The username form on the email endpoint: the email field is missing. */
    assert_int_equal(call(port, "POST", "/api/v1/login", NULL,
                          "{\"username\":\"" USER "\",\"password\":\"" PASSWORD "\"}", &r),
                     422);
    j = json_of(&r);
    assert_true(cJSON_IsArray(jget(j, "errors.email")));
    cJSON_Delete(j);
    resp_free(&r);

    /* Not JSON at all. */
    assert_int_equal(call(port, "POST", "/fabric/api/login", NULL, "email=a&password=b", &r), 422);
    j = json_of(&r);
    assert_non_null(strstr(jstr(j, "message"), "not valid JSON"));
    assert_true(cJSON_IsArray(jget(j, "errors.username")));
    cJSON_Delete(j);
    resp_free(&r);

    /* Wrong method on a known path, unknown paths. */
    assert_int_equal(call(port, "GET", "/api/v1/login", NULL, NULL, NULL), 405);
    assert_int_equal(call(port, "POST", "/api/v1/nothing", NULL, "{}", NULL), 404);
    assert_int_equal(call(port, "POST", "/api/v1/login/", NULL, "{}", NULL), 404);
    pd_mock_destroy(&m);
}

static void test_token_expiry(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.token_ttl_ms = 1500;
    o.clock_ms = fake_clock;
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);
    struct resp r;
    char auth[128];

    assert_int_equal(call(port, "POST", "/api/v1/login", NULL,
                          "{\"email\":\"" USER "\",\"password\":\"" PASSWORD "\"}", &r),
                     200);
    cJSON *j = json_of(&r);
    assert_int_equal((int)jnum(j, "expires_in"), 2); /* rounded up, never 0 */
    snprintf(auth, sizeof(auth), "Bearer %s", jstr(j, "token"));
    cJSON_Delete(j);
    resp_free(&r);

    assert_int_equal(start_flow(port, auth, NULL), 200);
    atomic_fetch_add(&fake_now, 1499);
    assert_int_equal(start_flow(port, auth, NULL), 200);
    atomic_fetch_add(&fake_now, 1);
    assert_int_equal(start_flow(port, auth, &r), 401);
    j = json_of(&r);
    assert_string_equal(jstr(j, "message"), "Unauthenticated.");
    cJSON_Delete(j);
    resp_free(&r);
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, NULL), 401);

    /* A fresh login works again; revoking every token stops it. */
    login(port, auth, sizeof(auth));
    assert_int_equal(start_flow(port, auth, NULL), 200);
    pd_mock_revoke_tokens(m);
    assert_int_equal(start_flow(port, auth, NULL), 401);
    pd_mock_destroy(&m);
}

static void test_api_key(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.api_key = "key-123";
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);

    assert_int_equal(start_flow(port, "key-123", NULL), 200);
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", "key-123", NULL, NULL), 200);
    assert_int_equal(start_flow(port, "Bearer key-123", NULL), 401);
    assert_int_equal(start_flow(port, "key-124", NULL), 401);
    assert_int_equal(start_flow(port, NULL, NULL), 401);
    pd_mock_destroy(&m);

    /* Without --api-key no raw value is accepted. */
    m = start_default();
    port = pd_mock_port(m);
    assert_int_equal(start_flow(port, "key-123", NULL), 401);
    assert_int_equal(start_flow(port, "", NULL), 401);
    pd_mock_destroy(&m);
}

/* ---- start flow -------------------------------------------------------------------------- */

static void test_start_flow_ok(void **state)
{
    struct pd_mock *m = start_default();
    uint16_t port = pd_mock_port(m);
    char auth[128];
    struct resp r;
    login(port, auth, sizeof(auth));

    static const char *paths[] = {"/api/v1/flows/7/start/3", "/api/v1/flows/7/start",
                                  "/api/v1/flows/8/manual/4", "/api/v1/flows/8/manual"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(
            call(port, "POST", paths[i], auth, " {\"payload\": \"{\\\"id\\\": 1}\"} \n", &r), 200);
        cJSON *j = json_of(&r);
        assert_string_equal(jstr(j, "message"), "Flow initialised.");
        assert_int_equal((int)jnum(j, "flow_run_id"), i + 1);
        cJSON_Delete(j);
        resp_free(&r);
    }

    /* The runs it created can be looked up; others cannot. */
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, &r), 200);
    cJSON *j = json_of(&r);
    assert_string_equal(jstr(j, "data.id"), "1");
    assert_string_equal(jstr(j, "data.type"), "flow-runs");
    assert_int_equal((int)jnum(j, "data.attributes.flow_id"), 7);
    assert_int_equal((int)jnum(j, "data.attributes.flow_version_id"), 3);
    assert_int_equal((int)jnum(j, "data.attributes.status"), 2);
    const char *started = jstr(j, "data.attributes.started_at");
    assert_non_null(started);
    assert_true(strlen(started) >= 20 && started[4] == '-' && started[10] == 'T');
    /* --run-duration 0: final at once. */
    assert_string_equal(jstr(j, "data.attributes.finished_at"), started);
    cJSON_Delete(j);
    resp_free(&r);
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/2", auth, NULL, &r), 200);
    j = json_of(&r);
    assert_true(cJSON_IsNull(jget(j, "data.attributes.flow_version_id")));
    cJSON_Delete(j);
    resp_free(&r);
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/5", auth, NULL, NULL), 404);
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/abc", auth, NULL, NULL), 404);
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", NULL, NULL, NULL), 401);
    assert_int_equal(call(port, "GET", "/api/v1/flows/7/start", auth, NULL, NULL), 405);
    pd_mock_destroy(&m);
}

static void test_start_flow_too_large(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.max_body = 100;
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);
    char auth[128];
    login(port, auth, sizeof(auth));

    /* Exactly max_body bytes pass. */
    char body[512];
    memset(body, 0, sizeof(body));
    strcpy(body, "{\"payload\":\"");
    size_t k = strlen(body);
    memset(body + k, 'x', 100 - k - 2);
    strcpy(body + 98, "\"}");
    assert_int_equal(strlen(body), 100);
    struct resp r;
    assert_int_equal(call(port, "POST", "/api/v1/flows/1/start", auth, body, NULL), 200);

    /* One more byte: 413 from Content-Length, before the body is read. */
    memset(body + k, 'x', 101 - k - 2);
    strcpy(body + 99, "\"}");
    assert_int_equal(call(port, "POST", "/api/v1/flows/1/start", auth, body, &r), 413);
    cJSON *j = json_of(&r);
    assert_non_null(strstr(jstr(j, "message"), "splitting"));
    cJSON_Delete(j);
    resp_free(&r);

    /* Chunked, no Content-Length: counted as it arrives. */
    struct req q = {.method = "POST",
                    .path = "/api/v1/flows/1/start",
                    .auth = auth,
                    .body = body,
                    .chunked = true};
    do_request(port, &q, &r);
    assert_int_equal(r.rc, CURLE_OK);
    assert_int_equal(r.status, 413);
    resp_free(&r);
    strcpy(body, "{\"payload\":\"small\"}");
    do_request(port, &q, &r);
    assert_int_equal(r.status, 200);
    resp_free(&r);
    pd_mock_destroy(&m);
}

static void test_start_flow_invalid(void **state)
{
    struct pd_mock *m = start_default();
    uint16_t port = pd_mock_port(m);
    char auth[128];
    login(port, auth, sizeof(auth));
    static const struct {
        const char *body;
        const char *says;
    } cases[] = {
        {"not json", "not valid JSON"},
        {"", "not valid JSON"},
        {"[\"payload\"]", "JSON object"},
        {"\"text\"", "JSON object"},
        {"{}", "payload field is required"},
        {"{\"payload\":1}", "must be a string"},
        {"{\"payload\":null}", "must be a string"},
        {"{\"payload\":{\"a\":1}}", "must be a string"},
        {"{\"payload\":\"\"}", "payload field is required"},
        {"{\"payload\":\"  \\n\\t \"}", "payload field is required"},
        {"{\"payload\":\"x\",\"flow\":1}", "only contain the payload field (found \\\"flow"},
        {"{\"payload\":\"x\",\"payload\":\"y\"}", "only contain"},
        {"{\"payload\":\"\xff\"}", "invalid UTF-8"},
        {"{\"payload\":\"\xc0\xaf\"}", "invalid UTF-8"},
        {"{\"payload\":\"\xed\xa0\x80\"}", "invalid UTF-8"},
        {"{\"payload\":\"a\tb\"}", "control character"},
        {"{\"payload\":\"\\ud800\"}", "surrogate"},
        {"{\"payload\":\"\\udc00x\"}", "surrogate"},
        {"{\"payload\":\"\\x\"}", "unknown escape"},
        {"{\"payload\":\"x\"} x", "text after"},
        {"{\"payload\":\"x\"", "not closed"},
        {"{\"payload\":\"x}", "not closed"},
        {"{\"payload\":01}", "expected , or }"},
        {"{'payload':'x'}", "member name"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct resp r;
        struct req q = {.method = "POST",
                        .path = "/api/v1/flows/1/start/1",
                        .auth = auth,
                        .body = cases[i].body,
                        .len = strlen(cases[i].body)};
        if (!q.len)
            q.body = NULL;
        do_request(port, &q, &r);
        assert_int_equal(r.rc, CURLE_OK);
        if (r.status != 422 || !strstr(r.body, cases[i].says))
            fail_msg("case %zu (%s): %ld %s", i, cases[i].body, r.status, r.body);
        cJSON *j = json_of(&r);
        const cJSON *errs = jget(j, "errors.payload");
        assert_true(cJSON_IsArray(errs) && cJSON_GetArraySize(errs) == 1);
        assert_non_null(jstr(j, "message"));
        cJSON_Delete(j);
        resp_free(&r);
    }
    struct pd_mock_stats st;
    pd_mock_stats(m, &st);
    assert_int_equal(st.runs, 0);
    /* Unicode escapes and raw UTF-8 are fine. */
    assert_int_equal(call(port, "POST", "/api/v1/flows/1/start/1", auth,
                          "{\"payload\":\"caf\\u00e9 \xc3\xa9 \\ud83d\\ude00\"}", NULL),
                     200);
    pd_mock_destroy(&m);
}

/* ---- lookups ----------------------------------------------------------------------------- */

static void test_lookups(void **state)
{
    struct pd_mock *m = start_default();
    uint16_t port = pd_mock_port(m);
    char auth[128], path[256], body[256];
    struct resp r;
    cJSON *j;
    const char *base = "/core-main/api/v1/cross-reference-lookups";
    login(port, auth, sizeof(auth));

    assert_int_equal(call(port, "GET", base, NULL, NULL, NULL), 401);
    assert_int_equal(call(port, "POST", base, auth, "{\"description\":\"no name\"}", &r), 422);
    j = json_of(&r);
    assert_true(cJSON_IsArray(jget(j, "errors.name")));
    cJSON_Delete(j);
    resp_free(&r);

    for (int i = 1; i <= 20; i++) {
        snprintf(body, sizeof(body),
                 "{\"name\":\"map %d\",\"description\":\"d%d\",\"default_value\":null}", i, i);
        assert_int_equal(call(port, "POST", base, auth, body, &r), 201);
        j = json_of(&r);
        assert_int_equal((int)jnum(j, "data.id"), i);
        snprintf(body, sizeof(body), "map %d", i);
        assert_string_equal(jstr(j, "data.name"), body);
        assert_true(cJSON_IsNull(jget(j, "data.default_value")));
        cJSON_Delete(j);
        resp_free(&r);
    }

    /* Pages of 7: 7, 7, 6; next is null on the last. */
    snprintf(path, sizeof(path), "%s?per_page=7", base);
    assert_int_equal(call(port, "GET", path, auth, NULL, &r), 200);
    j = json_of(&r);
    assert_int_equal(cJSON_GetArraySize(jget(j, "data")), 7);
    assert_int_equal((int)jnum(j, "meta.current_page"), 1);
    assert_int_equal((int)jnum(j, "meta.last_page"), 3);
    assert_int_equal((int)jnum(j, "meta.per_page"), 7);
    assert_int_equal((int)jnum(j, "meta.total"), 20);
    assert_non_null(strstr(jstr(j, "links.next"), "page=2"));
    assert_true(cJSON_IsNull(jget(j, "links.prev")));
    cJSON_Delete(j);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s?page=3&per_page=7", base);
    assert_int_equal(call(port, "GET", path, auth, NULL, &r), 200);
    j = json_of(&r);
    assert_int_equal(cJSON_GetArraySize(jget(j, "data")), 6);
    assert_int_equal((int)jnum(cJSON_GetArrayItem(jget(j, "data"), 0), "id"), 15);
    assert_true(cJSON_IsNull(jget(j, "links.next")));
    cJSON_Delete(j);
    resp_free(&r);
    /* Default page size 15; limits on per_page and page. */
    assert_int_equal(call(port, "GET", base, auth, NULL, &r), 200);
    j = json_of(&r);
    assert_int_equal(cJSON_GetArraySize(jget(j, "data")), 15);
    assert_int_equal((int)jnum(j, "meta.last_page"), 2);
    cJSON_Delete(j);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s?per_page=101", base);
    assert_int_equal(call(port, "GET", path, auth, NULL, NULL), 422);
    snprintf(path, sizeof(path), "%s?per_page=100", base);
    assert_int_equal(call(port, "GET", path, auth, NULL, NULL), 200);
    snprintf(path, sizeof(path), "%s?page=0", base);
    assert_int_equal(call(port, "GET", path, auth, NULL, NULL), 422);

    /* One lookup, under both prefixes. */
    snprintf(path, sizeof(path), "%s/4", base);
    assert_int_equal(call(port, "GET", path, auth, NULL, &r), 200);
    j = json_of(&r);
    assert_string_equal(jstr(j, "data.description"), "d4");
    cJSON_Delete(j);
    resp_free(&r);
    assert_int_equal(call(port, "GET", "/api/v1/cross-reference-lookups/4", auth, NULL, NULL), 200);
    snprintf(path, sizeof(path), "%s/99", base);
    assert_int_equal(call(port, "GET", path, auth, NULL, NULL), 404);
    snprintf(path, sizeof(path), "%s/4", base);
    assert_int_equal(call(port, "DELETE", path, auth, NULL, NULL), 405);

    /* Rows: add three, page them, update, delete. */
    snprintf(path, sizeof(path), "%s/4/values", base);
    int ids[3];
    for (int i = 0; i < 3; i++) {
        snprintf(body, sizeof(body), "{\"left_value\":\"L%d\",\"right_value\":\"R%d\"}", i, i);
        assert_int_equal(call(port, "POST", path, auth, body, &r), 201);
        j = json_of(&r);
        ids[i] = (int)jnum(j, "data.id");
        snprintf(body, sizeof(body), "L%d", i);
        assert_string_equal(jstr(j, "data.left_value"), body);
        cJSON_Delete(j);
        resp_free(&r);
    }
    assert_int_equal(call(port, "POST", path, auth, "{\"right_value\":\"R\"}", &r), 422);
    j = json_of(&r);
    assert_true(cJSON_IsArray(jget(j, "errors.left_value")));
    cJSON_Delete(j);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/4/values?per_page=2", base);
    assert_int_equal(call(port, "GET", path, auth, NULL, &r), 200);
    j = json_of(&r);
    assert_int_equal(cJSON_GetArraySize(jget(j, "data")), 2);
    assert_int_equal((int)jnum(j, "meta.total"), 3);
    assert_int_equal((int)jnum(j, "meta.last_page"), 2);
    const cJSON *row = cJSON_GetArrayItem(jget(j, "data"), 1);
    assert_int_equal((int)jnum(row, "id"), ids[1]);
    assert_string_equal(jstr(row, "right_value"), "R1");
    cJSON_Delete(j);
    resp_free(&r);

    snprintf(path, sizeof(path), "%s/4/values/%d", base, ids[1]);
    assert_int_equal(call(port, "PATCH", path, auth, "{\"right_value\":\"R1b\"}", &r), 200);
    j = json_of(&r);
    assert_string_equal(jstr(j, "data.left_value"), "L1");
    assert_string_equal(jstr(j, "data.right_value"), "R1b");
    cJSON_Delete(j);
    resp_free(&r);
    assert_int_equal(call(port, "PUT", path, auth, "{\"left_value\":\"L1b\"}", &r), 200);
    j = json_of(&r);
    assert_string_equal(jstr(j, "data.left_value"), "L1b");
    assert_string_equal(jstr(j, "data.right_value"), "R1b");
    cJSON_Delete(j);
    resp_free(&r);
    assert_int_equal(call(port, "PATCH", path, auth, "{}", &r), 422);
    j = json_of(&r);
    assert_true(cJSON_IsArray(jget(j, "errors.left_value")));
    assert_true(cJSON_IsArray(jget(j, "errors.right_value")));
    cJSON_Delete(j);
    resp_free(&r);
    assert_int_equal(call(port, "PATCH", path, auth, "{\"left_value\":5}", NULL), 422);
    assert_int_equal(call(port, "DELETE", path, auth, NULL, &r), 200);
    resp_free(&r);
    assert_int_equal(call(port, "DELETE", path, auth, NULL, NULL), 404);
    assert_int_equal(call(port, "PATCH", path, auth, "{\"left_value\":\"z\"}", NULL), 404);
    snprintf(path, sizeof(path), "%s/4/values", base);
    assert_int_equal(call(port, "GET", path, auth, NULL, &r), 200);
    j = json_of(&r);
    assert_int_equal((int)jnum(j, "meta.total"), 2);
    cJSON_Delete(j);
    resp_free(&r);
    snprintf(path, sizeof(path), "%s/99/values", base);
    assert_int_equal(call(port, "GET", path, auth, NULL, NULL), 404);
    pd_mock_destroy(&m);
}

/* ---- faults ------------------------------------------------------------------------------ */

static void run_statuses(uint64_t seed, long *out, int n)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.seed = seed;
    o.fail_rate = 0.5;
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);
    char auth[128];
    login(port, auth, sizeof(auth));
    for (int i = 0; i < n; i++) {
        struct resp r;
        out[i] = start_flow(port, auth, &r);
        if (out[i] != 200) {
            cJSON *j = json_of(&r);
            assert_non_null(jstr(j, "message"));
            cJSON_Delete(j);
        }
        resp_free(&r);
    }
    pd_mock_destroy(&m);
}

static void test_fail_rate_reproducible(void **state)
{
    long a[30], b[30], c[30];
    run_statuses(42, a, 30);
    run_statuses(42, b, 30);
    run_statuses(43, c, 30);
    int ok = 0, kinds[3] = {0};
    for (int i = 0; i < 30; i++) {
        assert_int_equal(a[i], b[i]);
        ok += a[i] == 200;
        assert_true(a[i] == 200 || a[i] == 500 || a[i] == 502 || a[i] == 503);
        kinds[0] += a[i] == 500;
        kinds[1] += a[i] == 502;
        kinds[2] += a[i] == 503;
    }
    assert_true(ok > 0 && ok < 30);
    assert_true(kinds[0] + kinds[1] + kinds[2] == 30 - ok);
    assert_memory_not_equal(a, c, sizeof(a));
}

static void test_fail_401_rate(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.fail_401_rate = 1.0;
    o.api_key = "key-1";
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);
    char auth[128];
    login(port, auth, sizeof(auth));
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, NULL), 404);
    assert_int_equal(start_flow(port, auth, NULL), 401);
    /* The token is gone for every endpoint, until the next login. */
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, NULL), 401);
    login(port, auth, sizeof(auth));
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, NULL), 404);
    /* API keys are never revoked. */
    assert_int_equal(start_flow(port, "key-1", NULL), 200);
    pd_mock_destroy(&m);
}

static void test_drop_rate(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.drop_rate = 1.0;
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);
    char auth[128];
    login(port, auth, sizeof(auth));
    struct resp r;
    struct req q = {.method = "POST",
                    .path = "/api/v1/flows/1/start",
                    .auth = auth,
                    .body = "{\"payload\":\"x\"}"};
    do_request(port, &q, &r);
    assert_true(r.rc == CURLE_GOT_NOTHING || r.rc == CURLE_RECV_ERROR);
    assert_int_equal(r.status, 0);
    resp_free(&r);
    /* The server is still there, and the dropped request made no run. */
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, NULL), 404);
    pd_mock_destroy(&m);
}

static void test_latency(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.latency_ms = 80;
    struct pd_mock *m = start_mock(&o);
    uint64_t t0 = now_ms();
    char auth[128];
    login(pd_mock_port(m), auth, sizeof(auth));
    /* A lower bound only: the answer cannot come before the latency. */
    assert_true(now_ms() - t0 >= 80);
    pd_mock_destroy(&m);
}

static void test_script(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.script = "500, 429:7,503:2,429,413,422,403,404,408,502,504,ok,drop,401";
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);
    char auth[128];
    struct resp r;
    login(port, auth, sizeof(auth));

    static const struct {
        long status;
        const char *retry_after;
    } want[] = {{500, ""}, {429, "7"}, {503, "2"}, {429, ""}, {413, ""}, {422, ""},
                {403, ""}, {404, ""},  {408, ""},  {502, ""}, {504, ""}, {200, ""}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        assert_int_equal(start_flow(port, auth, &r), want[i].status);
        assert_string_equal(r.retry_after, want[i].retry_after);
        cJSON *j = json_of(&r);
        assert_non_null(jstr(j, "message"));
        if (want[i].status == 422)
            assert_true(cJSON_IsArray(jget(j, "errors.payload")));
        if (want[i].status == 200)
            assert_int_equal((int)jnum(j, "flow_run_id"), 1);
        cJSON_Delete(j);
        resp_free(&r);
    }
    struct req q = {.method = "POST",
                    .path = "/api/v1/flows/1/start",
                    .auth = auth,
                    .body = "{\"payload\":\"x\"}"};
    do_request(port, &q, &r);
    assert_true(r.rc == CURLE_GOT_NOTHING || r.rc == CURLE_RECV_ERROR);
    resp_free(&r);
    /* A scripted 401 revokes the token like an expiry. */
    assert_int_equal(start_flow(port, auth, NULL), 401);
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, NULL), 401);
    struct pd_mock_stats st;
    pd_mock_stats(m, &st);
    assert_int_equal(st.script_left, 0);
    /* Then normal behaviour. */
    login(port, auth, sizeof(auth));
    assert_int_equal(start_flow(port, auth, &r), 200);
    cJSON *j = json_of(&r);
    assert_int_equal((int)jnum(j, "flow_run_id"), 2);
    cJSON_Delete(j);
    resp_free(&r);

    /* Scripts can be replaced while running; bad entries are refused and change nothing. */
    char *err = NULL;
    static const char *bad[] = {"200", "abc", "500:3", "429:x", "429:", "ok,,x", "5000"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(pd_mock_script_set(m, bad[i], &err), PD_EUSAGE);
        assert_non_null(err);
        free(err);
        err = NULL;
    }
    assert_int_equal(pd_mock_script_set(m, "503:1,ok", &err), 0);
    assert_int_equal(start_flow(port, auth, &r), 503);
    assert_string_equal(r.retry_after, "1");
    resp_free(&r);
    assert_int_equal(start_flow(port, auth, NULL), 200);
    /* Logins and lookups never consume the script. */
    assert_int_equal(pd_mock_script_set(m, "500", NULL), 0);
    login(port, auth, sizeof(auth));
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, NULL), 200);
    assert_int_equal(start_flow(port, auth, NULL), 500);
    pd_mock_destroy(&m);
}

static void test_truncate(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.script = "truncate";
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);
    char auth[128];
    login(port, auth, sizeof(auth));
    struct resp r;
    struct req q = {.method = "POST",
                    .path = "/api/v1/flows/1/start",
                    .auth = auth,
                    .body = "{\"payload\":\"x\"}"};
    do_request(port, &q, &r);
    assert_int_equal(r.rc, CURLE_PARTIAL_FILE);
    assert_int_equal(r.status, 200);
    assert_true(r.len > 0 &&
                r.len < strlen("{\"message\":\"Flow initialised.\",\"flow_run_id\":1}"));
    assert_null(cJSON_Parse(r.body));
    resp_free(&r);
    /* The request was processed: the answer, not the run, was lost. */
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, NULL), 200);
    pd_mock_destroy(&m);
}

struct hang_arg {
    uint16_t port;
    const char *auth;
    long timeout_ms;
    struct resp r;
};

static void *hang_client(void *ud)
{
    struct hang_arg *a = ud;
    struct req q = {.method = "POST",
                    .path = "/api/v1/flows/1/start",
                    .auth = a->auth,
                    .body = "{\"payload\":\"x\"}",
                    .timeout_ms = a->timeout_ms};
    do_request(a->port, &q, &a->r);
    return NULL;
}

static void test_hang(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.script = "hang,hang";
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);
    char auth[128];
    login(port, auth, sizeof(auth));

    struct hang_arg a = {.port = port, .auth = auth, .timeout_ms = 700};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hang_client, &a), 0);
    assert_true(wait_hangs(m, 1));
    /* Other connections are served meanwhile. */
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, NULL), 404);
    pthread_join(th, NULL);
    assert_int_equal(a.r.rc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(a.r.status, 0);
    resp_free(&a.r);
    /* The server lets go once the client gave up. */
    assert_true(wait_hangs(m, 0));

    /* Stopping the server releases a hanging connection at once. */
    a.timeout_ms = 20000;
    assert_int_equal(pthread_create(&th, NULL, hang_client, &a), 0);
    assert_true(wait_hangs(m, 1));
    pd_mock_destroy(&m);
    pthread_join(th, NULL);
    assert_true(a.r.rc == CURLE_GOT_NOTHING || a.r.rc == CURLE_RECV_ERROR);
    resp_free(&a.r);
}

static void test_rate_limit(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.rate_limit = 3;
    o.rate_window_ms = 60000;
    o.clock_ms = fake_clock;
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);
    char auth[128];
    struct resp r;

    login(port, auth, sizeof(auth));
    assert_int_equal(start_flow(port, auth, &r), 200);
    assert_string_equal(r.rl_remaining, "1");
    resp_free(&r);
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", auth, NULL, &r), 200);
    assert_string_equal(r.rl_remaining, "0");
    resp_free(&r);
    assert_int_equal(start_flow(port, auth, &r), 429);
    assert_string_equal(r.retry_after, "60");
    cJSON *j = json_of(&r);
    assert_string_equal(jstr(j, "message"), "Too Many Attempts.");
    cJSON_Delete(j);
    resp_free(&r);
    atomic_fetch_add(&fake_now, 30500);
    assert_int_equal(start_flow(port, auth, &r), 429);
    assert_string_equal(r.retry_after, "30");
    resp_free(&r);
    atomic_fetch_add(&fake_now, 29500);
    assert_int_equal(start_flow(port, auth, &r), 200);
    assert_string_equal(r.rl_remaining, "2");
    resp_free(&r);
    /* Refused requests were not counted: only one run came of the three attempts. */
    struct pd_mock_stats st;
    pd_mock_stats(m, &st);
    assert_int_equal(st.runs, 2);
    pd_mock_destroy(&m);
}

static void *burst_client(void *ud)
{
    uint16_t port = *(uint16_t *)ud;
    char auth[128];
    login(port, auth, sizeof(auth));
    for (int i = 0; i < 25; i++)
        if (start_flow(port, auth, NULL) != 200)
            return (void *)1;
    return NULL;
}

static void test_concurrent_clients(void **state)
{
    struct pd_mock *m = start_default();
    uint16_t port = pd_mock_port(m);
    pthread_t th[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&th[i], NULL, burst_client, &port), 0);
    for (int i = 0; i < 4; i++) {
        void *ret;
        pthread_join(th[i], &ret);
        assert_null(ret);
    }
    struct pd_mock_stats st;
    pd_mock_stats(m, &st);
    assert_int_equal(st.runs, 100);
    assert_int_equal(st.start_flow, 100);
    assert_int_equal(st.requests, 104);
    pd_mock_destroy(&m);
}

/* ---- record ------------------------------------------------------------------------------- */

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 > cap) {
            cap = cap ? cap * 2 : 8192;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (!k)
            break;
    }
    fclose(f);
    buf[n] = '\0';
    *len = n;
    return buf;
}

static void test_record(void **state)
{
    char dir[] = "/tmp/pdmock-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char rec[512], path[600];
    snprintf(rec, sizeof(rec), "%s/rec", dir);

    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.record_dir = rec;
    o.script = "ok,500";
    struct pd_mock *m = start_mock(&o);
    uint16_t port = pd_mock_port(m);
    char auth[128];
    login(port, auth, sizeof(auth));

    /* An escaped NUL, a surrogate pair and raw UTF-8 arrive as exactly their bytes. */
    static const char body1[] = "{\"payload\":\"a\\u0000b \\ud83d\\ude00 \xc3\xa9\\n\\\"q\\\"\"}";
    static const char want1[] = "a\0b \xf0\x9f\x98\x80 \xc3\xa9\n\"q\"";
    assert_int_equal(call(port, "POST", "/api/v1/flows/1/start/2", auth, body1, NULL), 200);
    assert_int_equal(call(port, "POST", "/api/v1/flows/1/start/2", auth, body1, NULL), 500);
    assert_int_equal(call(port, "POST", "/api/v1/flows/1/start/2", auth, "{}", NULL), 422);
    assert_int_equal(
        call(port, "POST", "/api/v1/flows/1/start/2", auth, "{\"payload\":\"<b/>\"}", NULL), 200);

    size_t len;
    snprintf(path, sizeof(path), "%s/payloads/000001", rec);
    char *got = read_all(path, &len);
    assert_non_null(got);
    assert_int_equal(len, sizeof(want1) - 1);
    assert_memory_equal(got, want1, len);
    free(got);
    snprintf(path, sizeof(path), "%s/payloads/000002", rec);
    got = read_all(path, &len);
    assert_non_null(got);
    assert_string_equal(got, "<b/>");
    free(got);
    snprintf(path, sizeof(path), "%s/payloads/000003", rec);
    assert_int_equal(access(path, F_OK), -1);

    /* The log can be read while the server runs: one flushed line per request. */
    snprintf(path, sizeof(path), "%s/requests.jsonl", rec);
    char *log = read_all(path, &len);
    assert_non_null(log);
    assert_null(strstr(log, PASSWORD));
    assert_null(strstr(log, auth + 7)); /* the token */
    static const struct {
        const char *path;
        int status;
        const char *outcome;
        int run;
    } want[] = {{"/api/v1/login", 200, "ok", 0},
                {"/api/v1/flows/1/start/2", 200, "ok", 1},
                {"/api/v1/flows/1/start/2", 500, "scripted", 0},
                {"/api/v1/flows/1/start/2", 422, "ok", 0},
                {"/api/v1/flows/1/start/2", 200, "ok", 2}};
    int n = 0;
    for (char *save = NULL, *line = strtok_r(log, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), n++) {
        assert_true(n < 5);
        cJSON *j = cJSON_Parse(line);
        assert_non_null(j);
        assert_int_equal((int)jnum(j, "seq"), n + 1);
        assert_true(jnum(j, "time_ms") > 1.6e12);
        assert_string_equal(jstr(j, "method"), "POST");
        assert_string_equal(jstr(j, "path"), want[n].path);
        assert_int_equal((int)jnum(j, "status"), want[n].status);
        assert_string_equal(jstr(j, "outcome"), want[n].outcome);
        assert_true(jnum(j, "body_bytes") > 0);
        if (want[n].run) {
            assert_int_equal((int)jnum(j, "flow_run_id"), want[n].run);
            char name[32];
            snprintf(name, sizeof(name), "payloads/%06d", want[n].run);
            assert_string_equal(jstr(j, "payload_file"), name);
        } else {
            assert_null(jget(j, "flow_run_id"));
            assert_null(jget(j, "payload_file"));
        }
        cJSON_Delete(j);
    }
    assert_int_equal(n, 5);
    free(log);
    pd_mock_destroy(&m);
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_record_dir_unusable(void **state)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.record_dir = "/proc/no/such/dir";
    o.quiet = true;
    struct pd_mock *m = NULL;
    char *err = NULL;
    assert_true(pd_mock_create(&o, &m, &err) < 0);
    assert_null(m);
    assert_non_null(err);
    assert_non_null(strstr(err, "--record"));
    free(err);
}

/* ---- flow runs ---------------------------------------------------------------------------- */

/* One request answered STATUS; its body as JSON (the caller frees it). */
static cJSON *call_json(uint16_t port, const char *method, const char *path, const char *auth,
                        const char *body, long status)
{
    struct resp r;
    assert_int_equal(call(port, method, path, auth, body, &r), status);
    cJSON *j = json_of(&r);
    resp_free(&r);
    return j;
}

/* GET /api/v1/flow-runs/ID, answered STATUS. */
static cJSON *get_run(uint16_t port, const char *auth, unsigned id, long status)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/flow-runs/%u", id);
    return call_json(port, "GET", path, auth, NULL, status);
}

static int run_status(uint16_t port, const char *auth, unsigned id)
{
    cJSON *j = get_run(port, auth, id, 200);
    int status = (int)jnum(j, "data.attributes.status");
    cJSON_Delete(j);
    return status;
}

/* The number NAME of J, which is freed. */
static unsigned take_num(cJSON *j, const char *name)
{
    unsigned v = (unsigned)jnum(j, name);
    cJSON_Delete(j);
    return v;
}

/* Starts a run of PAYLOAD; returns its id. */
static unsigned start_payload(uint16_t port, const char *auth, const char *payload)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"payload\":\"%s\"}", payload);
    return take_num(call_json(port, "POST", "/api/v1/flows/7/start/3", auth, body, 200),
                    "flow_run_id");
}

/* POST /api/v1/flow-runs/ID/retry; returns the new run's id. */
static unsigned retry_run(uint16_t port, const char *auth, unsigned id)
{
    char path[64];
    snprintf(path, sizeof(path), "/api/v1/flow-runs/%u/retry", id);
    cJSON *j = call_json(port, "POST", path, auth, NULL, 200);
    assert_string_equal(jstr(j, "message"), "Flow run retried.");
    return take_num(j, "flow_run_id");
}

/* Starts the emulator with O and logs in: AUTH holds the Authorization value. */
static struct pd_mock *start_logged_in(struct pd_mock_options *o, uint16_t *port, char *auth,
                                       size_t cap)
{
    struct pd_mock *m = start_mock(o);
    *port = pd_mock_port(m);
    login(*port, auth, cap);
    return m;
}

/* An emulator on the fake clock whose runs last DURATION_MS, with RUN_SCRIPT, logged in, with
 * N runs started. */
static struct pd_mock *start_runs(uint64_t duration_ms, const char *run_script, unsigned n,
                                  uint16_t *port, char *auth, size_t cap)
{
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.clock_ms = fake_clock;
    o.run_duration_ms = duration_ms;
    o.run_script = run_script;
    struct pd_mock *m = start_logged_in(&o, port, auth, cap);
    for (unsigned i = 1; i <= n; i++)
        assert_int_equal(start_payload(*port, auth, "<a/>"), i);
    return m;
}

static void test_run_life(void **state)
{
    uint16_t port;
    char auth[128];
    struct pd_mock *m = start_runs(10000, "fail,stop,partial", 4, &port, auth, sizeof(auth));

    /* Running until --run-duration has passed on the emulator's clock. */
    cJSON *j = get_run(port, auth, 1, 200);
    assert_int_equal((int)jnum(j, "data.attributes.status"), 1);
    assert_true(cJSON_IsNull(jget(j, "data.attributes.finished_at")));
    cJSON_Delete(j);
    atomic_fetch_add(&fake_now, 9999);
    assert_int_equal(run_status(port, auth, 4), 1);
    atomic_fetch_add(&fake_now, 1);
    static const int want[] = {3, 4, 5, 2}; /* the script's words, then ok */
    for (unsigned i = 1; i <= 4; i++)
        assert_int_equal(run_status(port, auth, i), want[i - 1]);
    j = get_run(port, auth, 1, 200);
    const char *started = jstr(j, "data.attributes.started_at");
    const char *finished = jstr(j, "data.attributes.finished_at");
    assert_non_null(finished);
    assert_true(strlen(finished) == strlen(started) && strcmp(finished, started) > 0);
    assert_int_equal(finished[strlen(finished) - 1], 'Z');
    cJSON_Delete(j);

    j = get_run(port, auth, 5, 404);
    assert_string_equal(jstr(j, "message"), "Flow run not found.");
    cJSON_Delete(j);
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1", NULL, NULL, NULL), 401);
    assert_int_equal(call(port, "POST", "/api/v1/flow-runs/1", auth, NULL, NULL), 405);
    pd_mock_destroy(&m);
}

static void test_run_rates(void **state)
{
    /* Each rate alone at 1 decides every run; the marker beats the rates, the script both. */
    static const struct {
        double fail, stop, partial;
        int status;
    } all[] = {{1, 0, 0, 3}, {0, 1, 0, 4}, {0, 0, 1, 5}, {0, 0, 0, 2}};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        struct pd_mock_options o;
        pd_mock_options_init(&o);
        o.run_fail_rate = all[i].fail;
        o.run_stop_rate = all[i].stop;
        o.run_partial_rate = all[i].partial;
        o.run_fail_marker = "BROKEN";
        o.run_script = "ok";
        uint16_t port;
        char auth[128];
        struct pd_mock *m = start_logged_in(&o, &port, auth, sizeof(auth));
        assert_int_equal(start_payload(port, auth, "<a>BROKEN</a>"), 1);
        assert_int_equal(start_payload(port, auth, "<a/>"), 2);
        assert_int_equal(start_payload(port, auth, "<a>BROKEN</a>"), 3);
        assert_int_equal(run_status(port, auth, 1), 2);
        assert_int_equal(run_status(port, auth, 2), all[i].status);
        assert_int_equal(run_status(port, auth, 3), 3);
        pd_mock_destroy(&m);
    }

    /* Mixed rates: the same seed gives the same outcomes, and all of them show up. */
    int seen[2][30];
    for (int k = 0; k < 2; k++) {
        struct pd_mock_options o;
        pd_mock_options_init(&o);
        o.seed = 42;
        o.run_fail_rate = o.run_stop_rate = o.run_partial_rate = 0.25;
        uint16_t port;
        char auth[128];
        struct pd_mock *m = start_logged_in(&o, &port, auth, sizeof(auth));
        for (unsigned i = 1; i <= 30; i++) {
            assert_int_equal(start_payload(port, auth, "<a/>"), i);
            seen[k][i - 1] = run_status(port, auth, i);
        }
        pd_mock_destroy(&m);
    }
    assert_memory_equal(seen[0], seen[1], sizeof(seen[0]));
    for (int status = 2; status <= 5; status++) {
        bool found = false;
        for (int i = 0; i < 30; i++)
            found |= seen[0][i] == status;
        assert_true(found);
    }
}

/* The log of run ID with QUERY (?page=&per_page=), answered STATUS. */
static cJSON *get_logs(uint16_t port, const char *auth, unsigned id, const char *query, long status)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/flow-runs/%u/flow-run-logs%s", id, query);
    return call_json(port, "GET", path, auth, NULL, status);
}

static void test_run_logs(void **state)
{
    uint16_t port;
    char auth[128];
    struct pd_mock *m = start_runs(1000, "fail,ok,partial", 3, &port, auth, sizeof(auth));

    /* A running run has only started. */
    cJSON *j = get_logs(port, auth, 1, "", 200);
    assert_int_equal(cJSON_GetArraySize(jget(j, "data")), 1);
    assert_string_equal(jstr(cJSON_GetArrayItem(jget(j, "data"), 0), "message"),
                        "Flow run started");
    cJSON_Delete(j);
    atomic_fetch_add(&fake_now, 1000);

    /* A failed run names the failing record, in an error entry. */
    j = get_logs(port, auth, 1, "?page=1&per_page=100", 200);
    const cJSON *data = jget(j, "data");
    int n = cJSON_GetArraySize(data);
    assert_int_equal((int)jnum(j, "meta.total"), n);
    assert_int_equal((int)jnum(j, "meta.last_page"), 1);
    assert_true(cJSON_IsNull(jget(j, "links.next")));
    bool named = false;
    for (int i = 0; i < n; i++) {
        const cJSON *e = cJSON_GetArrayItem(data, i);
        assert_int_equal((int)jnum(e, "flow_run_id"), 1);
        assert_non_null(jstr(e, "created_at"));
        named |= !strcmp(jstr(e, "level"), "error") &&
                 !strncmp(jstr(e, "message"), "Mapping failed: field 'sku' missing in record ", 46);
    }
    assert_true(named);
    cJSON_Delete(j);

    /* Pages of two: a success has five entries, so three pages. */
    j = get_logs(port, auth, 2, "?per_page=2", 200);
    assert_int_equal((int)jnum(j, "meta.total"), 5);
    assert_int_equal((int)jnum(j, "meta.last_page"), 3);
    assert_int_equal((int)jnum(j, "meta.current_page"), 1);
    assert_non_null(jstr(j, "links.next"));
    cJSON_Delete(j);
    j = get_logs(port, auth, 2, "?page=3&per_page=2", 200);
    assert_int_equal(cJSON_GetArraySize(jget(j, "data")), 1);
    assert_string_equal(jstr(cJSON_GetArrayItem(jget(j, "data"), 0), "message"),
                        "Flow run finished: success");
    assert_true(cJSON_IsNull(jget(j, "links.next")));
    cJSON_Delete(j);
    j = get_logs(port, auth, 3, "", 200);
    assert_string_equal(jstr(cJSON_GetArrayItem(jget(j, "data"), 2), "level"), "warning");
    cJSON_Delete(j);

    cJSON_Delete(get_logs(port, auth, 1, "?per_page=101", 422));
    j = get_logs(port, auth, 9, "", 404);
    assert_string_equal(jstr(j, "message"), "Flow run not found.");
    cJSON_Delete(j);
    cJSON_Delete(get_logs(port, auth, 1, "", 200));
    assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1/flow-run-logs", NULL, NULL, NULL), 401);
    pd_mock_destroy(&m);
}

static void test_run_retry(void **state)
{
    for (int succeeds = 0; succeeds < 2; succeeds++) {
        struct pd_mock_options o;
        pd_mock_options_init(&o);
        o.run_fail_marker = "BROKEN";
        o.run_script = "ok,ok,fail";
        o.run_retry_succeeds = succeeds;
        uint16_t port;
        char auth[128];
        struct pd_mock *m = start_logged_in(&o, &port, auth, sizeof(auth));
        /* Runs 1 and 2 are scripted ok; run 3 is scripted to fail; run 4 is marked. */
        start_payload(port, auth, "<a/>");
        start_payload(port, auth, "<a/>");
        assert_int_equal(start_payload(port, auth, "<a/>"), 3);
        assert_int_equal(start_payload(port, auth, "BROKEN"), 4);
        assert_int_equal(run_status(port, auth, 3), 3);
        assert_int_equal(run_status(port, auth, 4), 3);

        /* A retry is a new run: a script failure is past, a marker fails again unless told. */
        assert_int_equal(retry_run(port, auth, 3), 5);
        assert_int_equal(run_status(port, auth, 5), 2);
        assert_int_equal(retry_run(port, auth, 4), 6);
        assert_int_equal(run_status(port, auth, 6), succeeds ? 2 : 3);
        cJSON *j = get_run(port, auth, 6, 200);
        assert_int_equal((int)jnum(j, "data.attributes.flow_id"), 7);
        assert_int_equal((int)jnum(j, "data.attributes.flow_version_id"), 3);
        cJSON_Delete(j);

        struct pd_mock_stats st;
        pd_mock_stats(m, &st);
        assert_int_equal(st.runs, 6);
        assert_int_equal(st.retries, 2);
        assert_int_equal(call(port, "POST", "/api/v1/flow-runs/7/retry", auth, NULL, NULL), 404);
        assert_int_equal(call(port, "POST", "/api/v1/flow-runs/1/retry", NULL, NULL, NULL), 401);
        assert_int_equal(call(port, "GET", "/api/v1/flow-runs/1/retry", auth, NULL, NULL), 405);
        pd_mock_destroy(&m);
    }
}

static void test_record_runs(void **state)
{
    assert_int_equal(pd_test_setup(state), 0);
    char rec[300], path[400];
    snprintf(rec, sizeof(rec), "%s", pd_test_path(pd_test_dir, "rec"));
    struct pd_mock_options o;
    pd_mock_options_init(&o);
    o.record_dir = rec;
    o.run_script = "fail";
    uint16_t port;
    char auth[128];
    struct pd_mock *m = start_logged_in(&o, &port, auth, sizeof(auth));
    start_payload(port, auth, "<a/>");
    assert_int_equal(run_status(port, auth, 1), 3);
    cJSON_Delete(get_logs(port, auth, 1, "", 200));
    assert_int_equal(retry_run(port, auth, 1), 2);
    assert_int_equal(call(port, "GET", "/nowhere", auth, NULL, NULL), 404);

    /* Every request names its route, so a test can count polls. */
    size_t len;
    snprintf(path, sizeof(path), "%s/requests.jsonl", rec);
    char *log = read_all(path, &len);
    assert_non_null(log);
    static const char *const routes[] = {"login", "start", "run", "run_logs", "run_retry", "none"};
    int n = 0;
    for (char *save = NULL, *line = strtok_r(log, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), n++) {
        assert_true(n < 6);
        cJSON *j = cJSON_Parse(line);
        assert_string_equal(jstr(j, "route"), routes[n]);
        if (n == 4) /* the retry names the run it created */
            assert_int_equal((int)jnum(j, "flow_run_id"), 2);
        cJSON_Delete(j);
    }
    assert_int_equal(n, 6);
    free(log);

    /* And the outcome decided for each run, to compare with what the client saw. */
    snprintf(path, sizeof(path), "%s/runs.jsonl", rec);
    log = read_all(path, &len);
    assert_non_null(log);
    char *save = NULL, *line = strtok_r(log, "\n", &save);
    cJSON *j = cJSON_Parse(line);
    assert_int_equal((int)jnum(j, "flow_run_id"), 1);
    assert_int_equal((int)jnum(j, "status"), 3);
    assert_string_equal(jstr(j, "outcome"), "failed");
    assert_string_equal(jstr(j, "cause"), "script");
    assert_string_equal(jstr(j, "payload_file"), "payloads/000001");
    cJSON_Delete(j);
    j = cJSON_Parse(strtok_r(NULL, "\n", &save));
    assert_int_equal((int)jnum(j, "flow_run_id"), 2);
    assert_int_equal((int)jnum(j, "retry_of"), 1);
    assert_string_equal(jstr(j, "outcome"), "success");
    assert_string_equal(jstr(j, "payload_file"), "payloads/000001");
    cJSON_Delete(j);
    assert_null(strtok_r(NULL, "\n", &save));
    free(log);
    pd_mock_destroy(&m);
    pd_test_teardown(state);
}

/* ---- command line ------------------------------------------------------------------------- */

static int parse(struct pd_mock_options *o, struct pd_mock_cli *cli, char **err, ...)
{
    char *argv[64] = {"patchdrop-mock"};
    int argc = 1;
    va_list ap;
    va_start(ap, err);
    for (char *a; (a = va_arg(ap, char *));)
        argv[argc++] = a;
    va_end(ap);
    pd_mock_options_init(o);
    return pd_mock_args_parse(argc, argv, o, cli, stdout, err);
}

static void test_args(void **state)
{
    struct pd_mock_options o;
    struct pd_mock_cli cli;
    char *err = NULL;
    assert_int_equal(
        parse(&o, &cli, &err, "--port", "0", "--port-file", "/tmp/p", "--bind", "127.0.0.1",
              "--user", "a@b", "--password", "pw", "--api-key", "k", "--token-ttl", "250ms",
              "--max-body", "8MB", "--seed", "7", "--fail-rate", "0.25", "--fail-401-rate", "0.5",
              "--latency", "2s", "--drop-rate", "0", "--rate-limit", "240", "--rate-window=1s",
              "--script", "500,429:3,ok", "--record", "/tmp/r", "--exit-after", "5m", "--quiet",
              "--run-duration", "3s", "--run-script", "fail,ok", "--run-fail-marker", "BAD",
              "--run-fail-rate", "0.1", "--run-stop-rate", "0.2", "--run-partial-rate", "0.3",
              "--run-retry-succeeds", (char *)NULL),
        0);
    assert_int_equal(o.run_duration_ms, 3000);
    assert_string_equal(o.run_script, "fail,ok");
    assert_string_equal(o.run_fail_marker, "BAD");
    assert_true(o.run_fail_rate == 0.1 && o.run_stop_rate == 0.2 && o.run_partial_rate == 0.3);
    assert_true(o.run_retry_succeeds);
    assert_int_equal(o.port, 0);
    assert_string_equal(cli.port_file, "/tmp/p");
    assert_string_equal(o.user, "a@b");
    assert_string_equal(o.password, "pw");
    assert_string_equal(o.api_key, "k");
    assert_int_equal(o.token_ttl_ms, 250);
    assert_int_equal(o.max_body, 8000000);
    assert_int_equal(o.seed, 7);
    assert_true(o.fail_rate == 0.25 && o.fail_401_rate == 0.5 && o.drop_rate == 0);
    assert_int_equal(o.latency_ms, 2000);
    assert_int_equal(o.rate_limit, 240);
    assert_int_equal(o.rate_window_ms, 1000);
    assert_string_equal(o.script, "500,429:3,ok");
    assert_string_equal(o.record_dir, "/tmp/r");
    assert_int_equal(cli.exit_after_ms, 300000);
    assert_true(o.quiet);

    /* Defaults. */
    assert_int_equal(parse(&o, &cli, &err, (char *)NULL), 0);
    assert_string_equal(o.bind, "127.0.0.1");
    assert_int_equal(o.token_ttl_ms, 86400000);
    assert_int_equal(o.max_body, 8000000);
    assert_int_equal(o.rate_window_ms, 60000);
    assert_null(cli.port_file);
    assert_int_equal(cli.exit_after_ms, 0);
    assert_int_equal(o.run_duration_ms, 0);
    assert_true(!o.run_script && !o.run_fail_marker && !o.run_retry_succeeds);

    static const struct {
        const char *opt, *val, *says;
    } bad[] = {
        {"--port", "70000", "--port"},
        {"--fail-rate", "1.5", "probability"},
        {"--drop-rate", "x", "--drop-rate"},
        {"--token-ttl", "0", "--token-ttl"},
        {"--latency", "5x", "duration"},
        {"--max-body", "-1", "--max-body"},
        {"--script", "200", "script entry '200'"},
        {"--rate-window", "1.5x", "--rate-window"},
        {"--run-script", "ok,boom", "--run-script: run script word 'boom'"},
        {"--run-fail-rate", "2", "probability"},
        {"--run-duration", "soon", "--run-duration"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&o, &cli, &err, bad[i].opt, bad[i].val, (char *)NULL), PD_EUSAGE);
        assert_non_null(err);
        if (!strstr(err, bad[i].says))
            fail_msg("%s %s: %s", bad[i].opt, bad[i].val, err);
        free(err);
        err = NULL;
    }
    assert_int_equal(parse(&o, &cli, &err, "--nope", (char *)NULL), PD_EUSAGE);
    assert_non_null(strstr(err, "--nope"));
    free(err);
    assert_int_equal(parse(&o, &cli, &err, "--seed", (char *)NULL), PD_EUSAGE);
    assert_non_null(strstr(err, "--seed needs a value"));
    free(err);
    assert_int_equal(parse(&o, &cli, &err, "stray", (char *)NULL), PD_EUSAGE);
    free(err);
}

static void test_value_syntax(void **state)
{
    uint64_t v;
    static const struct {
        const char *s;
        uint64_t ms;
    } durations[] = {{"250ms", 250},   {"2s", 2000}, {"5m", 300000}, {"24h", 86400000},
                     {"1d", 86400000}, {"7", 7000},  {"0", 0},       {" 3 s", 3000}};
    for (size_t i = 0; i < sizeof(durations) / sizeof(durations[0]); i++) {
        assert_int_equal(pd_mock_parse_duration(durations[i].s, &v), 0);
        assert_int_equal(v, durations[i].ms);
    }
    assert_int_equal(pd_mock_parse_duration("1.5s", &v), 0);
    assert_int_equal(v, 1500);
    static const char *bad_durations[] = {"", "s", "-1s", "5x", "10 sec", "1 m s"};
    for (size_t i = 0; i < sizeof(bad_durations) / sizeof(bad_durations[0]); i++)
        assert_int_equal(pd_mock_parse_duration(bad_durations[i], &v), PD_EUSAGE);
    static const struct {
        const char *s;
        uint64_t bytes;
    } sizes[] = {{"100", 100},     {"8MB", 8000000},   {"64kB", 64000},
                 {"64KiB", 65536}, {"8 MiB", 8388608}, {"1GB", 1000000000}};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        assert_int_equal(pd_mock_parse_size(sizes[i].s, &v), 0);
        assert_int_equal(v, sizes[i].bytes);
    }
    assert_int_equal(pd_mock_parse_size("8mb", &v), PD_EUSAGE);
    assert_int_equal(pd_mock_parse_size("99999999999999999999", &v), PD_EUSAGE);
    assert_int_equal(pd_mock_parse_size("18446744073709551615GiB", &v), PD_EUSAGE);
}

static void test_create_errors(void **state)
{
    struct pd_mock_options o;
    struct pd_mock *m = NULL;
    char *err = NULL;
    pd_mock_options_init(&o);
    o.quiet = true;
    o.bind = "localhost";
    assert_int_equal(pd_mock_create(&o, &m, &err), PD_EUSAGE);
    assert_non_null(strstr(err, "--bind"));
    free(err);
    pd_mock_options_init(&o);
    o.quiet = true;
    o.fail_rate = 2;
    assert_int_equal(pd_mock_create(&o, &m, &err), PD_EUSAGE);
    free(err);
    pd_mock_options_init(&o);
    o.quiet = true;
    o.run_partial_rate = -1;
    assert_int_equal(pd_mock_create(&o, &m, &err), PD_EUSAGE);
    free(err);
    pd_mock_options_init(&o);
    o.quiet = true;
    o.run_script = "ok,,fail";
    assert_int_equal(pd_mock_create(&o, &m, &err), PD_EUSAGE);
    assert_non_null(strstr(err, "run script word ''"));
    free(err);
    /* A port already taken is refused with a sentence, not a crash. */
    struct pd_mock *first = start_default();
    pd_mock_options_init(&o);
    o.quiet = true;
    o.port = pd_mock_port(first);
    assert_true(pd_mock_create(&o, &m, &err) < 0);
    assert_non_null(strstr(err, "cannot listen"));
    free(err);
    assert_null(m);
    pd_mock_destroy(&first);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int failed = PD_RUN_TESTS(
        NULL, NULL, test_login_both_forms, test_login_refused, test_token_expiry, test_api_key,
        test_start_flow_ok, test_start_flow_too_large, test_start_flow_invalid, test_lookups,
        test_fail_rate_reproducible, test_fail_401_rate, test_drop_rate, test_latency, test_script,
        test_truncate, test_hang, test_rate_limit, test_concurrent_clients, test_record,
        test_record_dir_unusable, test_run_life, test_run_rates, test_run_logs, test_run_retry,
        test_record_runs, test_args, test_value_syntax, test_create_errors);
    curl_global_cleanup();
    return failed;
}
