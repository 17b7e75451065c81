/*
 * Unit tests of the daemon's status (pd_daemon_status_json and the control socket, src/daemon/
 * status.c and control.c) against the in-process emulator, and of the status page's renderer
 * (pd_status_page_render): names are escaped, only http(s) links are made; the history a minute
 * at a time rolls over as the fake clock moves, and the page draws it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "net_fixture.h"

#include "pd_config.h"
#include "pd_daemon.h"
#include "pd_metrics.h"

#include <cjson/cJSON.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct st {
    struct net_fixture nf;
    struct pd_config *cfg;
    struct pd_daemon *d;
    char drop[128];
    bool stopped, closed;
    /* the client thread's exchange on the control socket */
    char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
    const char *request;
    char answer[65536];
    bool answered;
};

static int st_setup(void **state)
{
    struct st *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    nf_setup(&t->nf, 0);
    snprintf(t->drop, sizeof(t->drop), "%s/drop", t->nf.dir);
    assert_int_equal(mkdir(t->drop, 0755), 0);
    *state = t;
    return 0;
}

static void st_on_stopped(void *arg, const char *fatal)
{
    assert_null(fatal);
    ((struct st *)arg)->stopped = true;
}

static void st_on_closed(void *arg)
{
    ((struct st *)arg)->closed = true;
}

static bool st_is_stopped(void *arg)
{
    return ((struct st *)arg)->stopped;
}

static bool st_is_closed(void *arg)
{
    return ((struct st *)arg)->closed;
}

static int st_teardown(void **state)
{
    struct st *t = *state;
    if (t->d) {
        if (!t->stopped) {
            pd_daemon_stop(t->d, 0);
            nf_run_until(&t->nf, st_is_stopped, t);
        }
        pd_daemon_close(&t->d, st_on_closed, t);
        nf_run_until(&t->nf, st_is_closed, t);
    }
    pd_config_destroy(&t->cfg);
    nf_teardown(&t->nf);
    free(t);
    return 0;
}

/* --once over what the drop folder holds, with a 422 for the first start. */
static void run_once(struct st *t)
{
    struct pd_daemon_opts o = {
        .once = true, .on_stopped = st_on_stopped, .arg = t, .clock = &t->nf.clock};
    t->cfg = nf_config(&t->nf, NULL, "settle = 0\nbatch = 1");
    o.cfg = t->cfg;
    assert_int_equal(pd_daemon_create(&t->nf.loop, &o, &t->d), 0);
    assert_int_equal(pd_daemon_start(t->d), 0);
    nf_run_until(&t->nf, st_is_stopped, t);
}

static const cJSON *item(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    assert_non_null(v);
    return v;
}

/* A refused file is in the failed ring with its reason, a delivered one in the delivered ring
 * with its flow run and dashboard link; nothing is left in flight. */
static void rings(void **state)
{
    struct st *t = *state;
    char *json;
    cJSON *root;
    const cJSON *w, *f, *dl;

    nf_script(&t->nf, "422");
    nf_write(t->drop, "a-bad.json", "[{\"id\":1}]");
    run_once(t);
    nf_write(t->drop, "b-good.json", "[{\"id\":2}]");
    pd_daemon_close(&t->d, st_on_closed, t);
    nf_run_until(&t->nf, st_is_closed, t);
    t->stopped = t->closed = false;
    pd_config_destroy(&t->cfg);
    run_once(t);
    /* The rings are the daemon's own: a new daemon knows only what it did. */
    json = pd_daemon_status_json(t->d, NULL);
    assert_non_null(json);
    root = cJSON_Parse(json);
    assert_non_null(root);
    assert_int_equal(item(root, "schema")->valueint, 1);
    assert_true(cJSON_IsObject(item(root, "account")));
    w = cJSON_GetArrayItem(item(root, "watches"), 0);
    assert_non_null(w);
    assert_string_equal(item(w, "name")->valuestring, "drop");
    assert_int_equal(cJSON_GetArraySize(item(w, "files")), 0);
    assert_true(cJSON_IsNull(item(w, "oldest_undelivered_seconds")));
    assert_int_equal(cJSON_GetArraySize(item(w, "failed")), 0);
    dl = cJSON_GetArrayItem(item(w, "delivered"), 0);
    assert_non_null(dl);
    assert_string_equal(item(dl, "name")->valuestring, "b-good.json");
    f = cJSON_GetArrayItem(item(dl, "runs"), 0);
    assert_non_null(f);
    assert_true(strlen(item(f, "id")->valuestring) > 0);
    assert_non_null(strstr(item(f, "dashboard")->valuestring, item(f, "id")->valuestring));
    cJSON_Delete(root);
    free(json);
}

/* A refused file: the failed ring holds its name, HTTP status and reason. */
static void failed_ring(void **state)
{
    struct st *t = *state;
    char *json;
    cJSON *root;
    const cJSON *f;

    nf_script(&t->nf, "422");
    nf_write(t->drop, "bad.json", "[{\"id\":1}]");
    run_once(t);
    json = pd_daemon_status_json(t->d, "drop");
    root = cJSON_Parse(json);
    assert_non_null(root);
    f = cJSON_GetArrayItem(item(cJSON_GetArrayItem(item(root, "watches"), 0), "failed"), 0);
    assert_non_null(f);
    assert_string_equal(item(f, "name")->valuestring, "bad.json");
    assert_int_equal(item(f, "status")->valueint, 422);
    assert_non_null(strstr(item(f, "reason")->valuestring, "422"));
    cJSON_Delete(root);
    free(json);
    /* Another watch's name: no watch at all. */
    json = pd_daemon_status_json(t->d, "nosuch");
    root = cJSON_Parse(json);
    assert_int_equal(cJSON_GetArraySize(item(root, "watches")), 0);
    cJSON_Delete(root);
    free(json);
}

/* The client side of the control socket, on a thread of its own: the loop runs on the test's. */
static void *client(void *arg)
{
    struct st *t = arg;
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    size_t len = 0;
    ssize_t n;

    memcpy(sa.sun_path, t->sock, sizeof(sa.sun_path));
    if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
        (void)send(fd, t->request, strlen(t->request), MSG_NOSIGNAL);
        shutdown(fd, SHUT_WR); /* the end of the request, newline or not */
        while (len < sizeof(t->answer) - 1 &&
               (n = read(fd, t->answer + len, sizeof(t->answer) - 1 - len)) > 0)
            len += (size_t)n;
    }
    t->answer[len] = '\0';
    if (fd >= 0)
        close(fd);
    __atomic_store_n(&t->answered, true, __ATOMIC_RELEASE);
    return NULL;
}

static bool st_answered(void *arg)
{
    return __atomic_load_n(&((struct st *)arg)->answered, __ATOMIC_ACQUIRE);
}

static void ask(struct st *t, const char *request)
{
    pthread_t th;
    t->request = request;
    t->answered = false;
    assert_int_equal(pthread_create(&th, NULL, client, t), 0);
    nf_run_until(&t->nf, st_answered, t);
    pthread_join(th, NULL);
}

/* The socket answers `status` with the document, anything else with an error, and goes at
 * the daemon's close. */
static void control_socket(void **state)
{
    struct st *t = *state;
    struct stat st;
    struct pd_daemon_opts o = {.on_stopped = st_on_stopped, .arg = t, .clock = &t->nf.clock};

    t->cfg = nf_config(&t->nf, NULL, "settle = 0");
    o.cfg = t->cfg;
    snprintf(t->sock, sizeof(t->sock), "%s/%s", t->cfg->state.dir, PD_DAEMON_SOCKET);
    assert_int_equal(pd_daemon_create(&t->nf.loop, &o, &t->d), 0);
    assert_int_equal(pd_daemon_start(t->d), 0);
    assert_int_equal(lstat(t->sock, &st), 0);
    assert_true(S_ISSOCK(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0660);
    ask(t, "status\n");
    assert_non_null(strstr(t->answer, "\"schema\":1"));
    assert_int_equal(t->answer[strlen(t->answer) - 1], '\n');
    ask(t, "status drop\n");
    assert_non_null(strstr(t->answer, "\"name\":\"drop\""));
    ask(t, "hello\n");
    assert_non_null(strstr(t->answer, "\"error\":\"unknown request"));
    ask(t, "status"); /* no newline, then the end: still one request */
    assert_non_null(strstr(t->answer, "\"schema\":1"));
    pd_daemon_stop(t->d, 0);
    nf_run_until(&t->nf, st_is_stopped, t);
    pd_daemon_close(&t->d, st_on_closed, t);
    nf_run_until(&t->nf, st_is_closed, t);
    assert_int_not_equal(lstat(t->sock, &st), 0);
}

/* Sum of the numbers of array KEY in history object of O (the root or a watch); -1: absent. */
static double hist_sum(const cJSON *o, const char *key, int *len)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(
                     cJSON_GetObjectItemCaseSensitive(o, "history"), key),
                *x;
    double sum = 0;

    if (!cJSON_IsArray(arr))
        return -1;
    cJSON_ArrayForEach(x, arr) sum += x->valuedouble;
    if (len)
        *len = cJSON_GetArraySize(arr);
    return sum;
}

struct want {
    struct st *t;
    double delivered;
    const char *key; /* the history counted: "delivered" unless set */
};

/* The status document says WANT's deliveries in the first watch's history. */
static bool st_delivered(void *arg)
{
    struct want *w = arg;
    char *json = pd_daemon_status_json(w->t->d, NULL);
    cJSON *root = cJSON_Parse(json);
    bool ok = hist_sum(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "watches"), 0),
                       w->key ? w->key : "delivered", NULL) >= w->delivered;
    cJSON_Delete(root);
    free(json);
    return ok;
}

static cJSON *status_doc(struct st *t)
{
    char *json = pd_daemon_status_json(t->d, NULL);
    cJSON *root = cJSON_Parse(json);
    assert_non_null(root);
    free(json);
    return root;
}

/* A file a minute apart: two counts three minutes apart, the account's requests and limit in
 * the same minutes; the page draws them; 7 hours on, the history is 6 hours of nothing; a minute no wake has
 * sampled yet shows the limit now. */
static void history(void **state)
{
    struct st *t = *state;
    struct pd_daemon_opts o = {.on_stopped = st_on_stopped, .arg = t, .clock = &t->nf.clock};
    struct want w = {t, 1, NULL};
    const cJSON *wh, *x;
    cJSON *root;
    char *json, *html;
    double lim = 0;
    int len = 0, i = 0;

    t->cfg = nf_config(&t->nf, "rate_window = 2m", "settle = 0\nbatch = 1");
    o.cfg = t->cfg;
    assert_int_equal(pd_daemon_create(&t->nf.loop, &o, &t->d), 0);
    assert_int_equal(pd_daemon_start(t->d), 0);
    nf_write(t->drop, "one.json", "[{\"id\":1}]");
    nf_run_until(&t->nf, st_delivered, &w);
    nf_run_for(&t->nf, 2500); /* the client's count is read on a wake, about a second apart */
    nf_advance(&t->nf, 3 * 60000);
    nf_script(&t->nf, "422");
    nf_write(t->drop, "two.json", "[{\"id\":2}]");
    nf_write(t->drop, "three.json", "[{\"id\":3}]");
    w.delivered = 2;
    nf_run_until(&t->nf, st_delivered, &w);
    nf_run_for(&t->nf, 2500); /* a wake samples the client and the limit */
    root = status_doc(t);
    wh = cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(item(root, "watches"), 0),
                                          "history");
    assert_int_equal(cJSON_GetArraySize(item(wh, "delivered")), 4);
    assert_int_equal(cJSON_GetArrayItem(item(wh, "delivered"), 0)->valueint, 1);
    assert_int_equal(cJSON_GetArrayItem(item(wh, "delivered"), 1)->valueint, 0);
    assert_int_equal(cJSON_GetArrayItem(item(wh, "delivered"), 3)->valueint, 1);
    assert_int_equal(cJSON_GetArrayItem(item(wh, "failed"), 3)->valueint, 1);
    assert_true(hist_sum(cJSON_GetArrayItem(item(root, "watches"), 0), "failed", NULL) == 1);
    /* A login and three starts at least, in the first and the last minute. */
    assert_true(hist_sum(root, "requests", &len) >= 4 && len == 4);
    assert_true(cJSON_GetArrayItem(item(item(root, "history"), "requests"), 0)->valueint >= 2);
    assert_true(cJSON_GetArrayItem(item(item(root, "history"), "requests"), 3)->valueint >= 2);
    cJSON_ArrayForEach(x, item(item(root, "history"), "limit")) if (i++ == 3) lim = x->valuedouble;
    assert_true(lim == 50000); /* the fixture's 100000 per 2 minutes */
    assert_int_equal(item(item(root, "history"), "minute_seconds")->valueint, 60);
    assert_true(strlen(item(item(root, "history"), "start")->valuestring) == 20);
    json = cJSON_PrintUnformatted(root);
    pd_status_page_render(json, &html, &(size_t){0});
    assert_non_null(strstr(html, "<svg"));
    assert_int_equal(nf_count(html, "<svg"), 2);
    assert_non_null(strstr(html, " UTC: 1 delivered files</title>"));
    assert_non_null(strstr(html, " UTC: 1 failed files</title>"));
    assert_non_null(strstr(html, "limit 50000 a minute, far above"));
    free(html);
    free(json);
    cJSON_Delete(root);
    /* Seven hours on: six hours shown, all of them empty, the old counts rolled out. */
    nf_advance(&t->nf, 7 * 3600000);
    nf_run_for(&t->nf, 2500);
    root = status_doc(t);
    assert_true(hist_sum(cJSON_GetArrayItem(item(root, "watches"), 0), "delivered", &len) == 0);
    assert_int_equal(len, 360);
    assert_true(hist_sum(root, "limit", &len) == 50000 && len == 360);
    cJSON_Delete(root);
    /* A minute begins and no wake has sampled it yet: the newest minute shows the limit now,
     * and every series has the same minutes. */
    nf_advance(&t->nf, 60000);
    root = status_doc(t);
    cJSON_ArrayForEach(x, item(item(root, "history"), "limit")) lim = x->valuedouble;
    assert_true(lim == 50000);
    assert_true(hist_sum(root, "requests", &len) >= 0 && len == 360);
    assert_true(hist_sum(cJSON_GetArrayItem(item(root, "watches"), 0), "delivered", &len) == 0);
    assert_int_equal(len, 360);
    cJSON_Delete(root);
}

/* A daemon (not --once) keeps its rings and history in the state dir when it closes; the next
 * one (a restart or a reload) starts with them, by watch name. */
static void kept_across_restart(void **state)
{
    struct st *t = *state;
    struct pd_daemon_opts o = {.on_stopped = st_on_stopped, .arg = t, .clock = &t->nf.clock};
    struct want w = {t, 1, "failed"};
    const cJSON *wa;
    cJSON *root;

    t->cfg = nf_config(&t->nf, NULL, "settle = 0\nbatch = 1");
    o.cfg = t->cfg;
    assert_int_equal(pd_daemon_create(&t->nf.loop, &o, &t->d), 0);
    assert_int_equal(pd_daemon_start(t->d), 0);
    nf_script(&t->nf, "422");
    nf_write(t->drop, "a-bad.json", "[{\"id\":1}]");
    nf_run_until(&t->nf, st_delivered, &w);
    nf_write(t->drop, "b-good.json", "[{\"id\":2}]");
    w.key = NULL;
    nf_run_until(&t->nf, st_delivered, &w);
    nf_run_for(&t->nf, 1500);
    pd_daemon_stop(t->d, 0);
    nf_run_until(&t->nf, st_is_stopped, t);
    pd_daemon_close(&t->d, st_on_closed, t);
    nf_run_until(&t->nf, st_is_closed, t);
    t->stopped = t->closed = false;

    assert_int_equal(pd_daemon_create(&t->nf.loop, &o, &t->d), 0);
    assert_int_equal(pd_daemon_start(t->d), 0);
    root = status_doc(t);
    wa = cJSON_GetArrayItem(item(root, "watches"), 0);
    assert_string_equal(item(cJSON_GetArrayItem(item(wa, "delivered"), 0), "name")->valuestring,
                        "b-good.json");
    assert_non_null(item(cJSON_GetArrayItem(item(cJSON_GetArrayItem(item(wa, "delivered"), 0),
                                                 "runs"), 0), "dashboard")->valuestring);
    assert_string_equal(item(cJSON_GetArrayItem(item(wa, "failed"), 0), "name")->valuestring,
                        "a-bad.json");
    assert_int_equal(item(cJSON_GetArrayItem(item(wa, "failed"), 0), "status")->valueint, 422);
    assert_true(hist_sum(wa, "delivered", NULL) == 1 && hist_sum(wa, "failed", NULL) == 1);
    assert_true(hist_sum(root, "requests", NULL) >= 2);
    cJSON_Delete(root);
}

/* ---- the page ---------------------------------------------------------------------------- */

static char *page(const char *json)
{
    char *html = NULL;
    size_t len = 0;
    int rc = pd_status_page_render(json, &html, &len);
    /* One whole page, its length told right. */
    assert_true(rc == 0 && html && strlen(html) == len && strstr(html, "</html>\n"));
    return html;
}

static void page_escapes(void **state)
{
    (void)state;
    char *html = page(
        "{\"schema\":1,\"version\":\"1\",\"state\":\"running\",\"account\":{\"requests_used\":3,"
        "\"requests_limit\":240,\"window_seconds\":60,\"paused_until\":\"2026-01-01T00:00:00Z\"},"
        "\"watches\":[{\"name\":\"w<1>\",\"folder\":\"/d\",\"files\":[{\"name\":\"<script>x\","
        "\"state\":\"sending\",\"size\":100,\"bytes_done\":40,\"chunk\":2,\"chunks\":null}],"
        "\"failed\":[{\"name\":\"a\\\"b'&c\",\"reason\":\"bad <row> 3\",\"at\":\"t\"}],"
        "\"delivered\":[{\"name\":\"ok\\u0007.csv\",\"runs\":[{\"id\":\"7\",\"dashboard\":"
        "\"https://x/7?a=1&b=2\"},{\"id\":\"8\",\"dashboard\":\"javascript:alert(1)\"}]}]}]}");

    static const char *const shown[] = {
        "&lt;script&gt;x",   "w&lt;1&gt;",     "a&quot;b&#39;&amp;c",
        "bad &lt;row&gt; 3", "ok&#xFFFD;.csv", "href=\"https://x/7?a=1&amp;b=2\"",
        "chunk 2 of ?",      "paused until",   "http-equiv=\"refresh\"",
    };
    for (size_t i = 0; i < sizeof(shown) / sizeof(shown[0]); i++)
        if (!strstr(html, shown[i]))
            fail_msg("the page lacks %s", shown[i]);
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "javascript:"));
    free(html);
}

static void page_without_status(void **state)
{
    (void)state;
    char *html = page(NULL);
    assert_non_null(strstr(html, "not available yet"));
    free(html);
    html = page("not json");
    assert_non_null(strstr(html, "not available yet"));
    free(html);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(rings, st_setup, st_teardown),
        cmocka_unit_test_setup_teardown(failed_ring, st_setup, st_teardown),
        cmocka_unit_test_setup_teardown(control_socket, st_setup, st_teardown),
        cmocka_unit_test_setup_teardown(history, st_setup, st_teardown),
        cmocka_unit_test_setup_teardown(kept_across_restart, st_setup, st_teardown),
        cmocka_unit_test(page_escapes),
        cmocka_unit_test(page_without_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
