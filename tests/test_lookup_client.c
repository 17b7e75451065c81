/*
 * Unit tests of the lookups over the client (pd_lookup.h, src/net/lookup.c): list (every
 * page), create, row operations and a sync, against the emulator running in-process (pdmock)
 * with a fake clock whose random source is 0, so every backoff is 0 ms and nothing sleeps.
 * The emulator scripts faults for start-flow requests only, so lookup requests go through a
 * small front in this file: it answers 503 to as many requests as it is told, then passes every
 * request on to the emulator. A 401 comes from the emulator itself (its tokens revoked).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "net_fixture.h"
#include "testlib.h"

#include "pd_client.h"
#include "pd_config.h"
#include "pd_lookup.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the front: 503 on demand, else the emulator's answer ------------------------------- */

struct front {
    struct MHD_Daemon *mhd;
    char target[64]; /* the emulator's base URL */
    pthread_mutex_t lock;
    unsigned fail_next; /* requests still to answer 503 */
    unsigned failed;
    char seen[8192]; /* "METHOD /path?query" lines, in arrival order */
    size_t seen_len;
};

/* A request's body as it arrives (MHD hands it over in pieces), and then whole. */
struct upload {
    FILE *f;
    char *data;
    size_t len;
};

static enum MHD_Result add_arg(void *arg, enum MHD_ValueKind kind, const char *key,
                               const char *value)
{
    char *q = arg;
    size_t n = strlen(q);
    (void)kind;
    snprintf(q + n, 512 - n, "%c%s=%s", n ? '&' : '?', key, value ? value : "");
    return MHD_YES;
}

/* Sends the request on to the emulator; its status and body into STATUS and OUT. */
static void forward(struct front *fr, struct MHD_Connection *c, const char *url, const char *method,
                    const struct upload *up, long *status, FILE *out)
{
    static const char *const pass[] = {"Authorization", "Content-Type", "Accept"};
    struct curl_slist *headers = NULL;
    char full[1200], header[1024];
    CURL *e = curl_easy_init();

    assert_non_null(e);
    snprintf(full, sizeof(full), "%s%s", fr->target, url);
    for (size_t i = 0; i < sizeof(pass) / sizeof(pass[0]); i++) {
        const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, pass[i]);
        if (v) {
            snprintf(header, sizeof(header), "%s: %s", pass[i], v);
            headers = curl_slist_append(headers, header);
        }
    }
    curl_easy_setopt(e, CURLOPT_URL, full);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    if (up->len) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, up->data);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)up->len);
    }
    curl_easy_setopt(e, CURLOPT_WRITEDATA, out); /* curl's own writer: fwrite */
    *status = curl_easy_perform(e) == CURLE_OK ? 0 : 502;
    if (!*status)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(headers);
    curl_easy_cleanup(e);
}

static enum MHD_Result on_front(void *cls, struct MHD_Connection *c, const char *url,
                                const char *method, const char *version, const char *data,
                                size_t *data_len, void **state)
{
    struct front *fr = cls;
    struct upload *up = *state;
    char path[1024], query[512] = "", *body = NULL;
    size_t body_len = 0;
    long status;
    bool fail;
    (void)version;

    if (!up) {
        *state = up = calloc(1, sizeof(*up));
        return up && (up->f = open_memstream(&up->data, &up->len)) ? MHD_YES : MHD_NO;
    }
    if (*data_len) {
        fwrite(data, 1, *data_len, up->f);
        *data_len = 0;
        return MHD_YES;
    }
    fclose(up->f);
    up->f = NULL;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, add_arg, query);
    snprintf(path, sizeof(path), "%s%s", url, query);
    pthread_mutex_lock(&fr->lock);
    fail = fr->fail_next > 0;
    if (fail) {
        fr->fail_next--;
        fr->failed++;
    }
    int n = snprintf(fr->seen + fr->seen_len, sizeof(fr->seen) - fr->seen_len, "%s %s%s\n", method,
                     path, fail ? " 503" : "");
    if (n > 0 && (size_t)n < sizeof(fr->seen) - fr->seen_len)
        fr->seen_len += (size_t)n;
    pthread_mutex_unlock(&fr->lock);
    FILE *out = open_memstream(&body, &body_len);
    assert_non_null(out);
    if (fail) {
        status = 503;
        fputs("{\"message\":\"Service Unavailable\"}", out);
    } else {
        forward(fr, c, path, method, up, &status, out);
    }
    fclose(out);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(body_len, body, MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(resp, "Content-Type", "application/json");
    if (fail)
        MHD_add_response_header(resp, "Retry-After", "0");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)status, resp);
    MHD_destroy_response(resp);
    free(body);
    return ret;
}

static void on_front_done(void *cls, struct MHD_Connection *c, void **state,
                          enum MHD_RequestTerminationCode code)
{
    struct upload *up = *state;
    (void)cls;
    (void)c;
    (void)code;
    if (up && up->f)
        fclose(up->f);
    if (up)
        free(up->data);
    free(up);
    *state = NULL;
}

/* Starts the front on a free loopback port; its base URL into URL. */
static void front_start(struct front *fr, const char *target, char *url, size_t len)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = 0};

    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(fr->target, sizeof(fr->target), "%s", target);
    pthread_mutex_init(&fr->lock, NULL);
    fr->mhd =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, on_front, fr, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                         MHD_OPTION_NOTIFY_COMPLETED, on_front_done, fr, MHD_OPTION_END);
    assert_non_null(fr->mhd);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(fr->mhd, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(url, len, "http://127.0.0.1:%u", (unsigned)info->port);
}

static void front_fail(struct front *fr, unsigned n)
{
    pthread_mutex_lock(&fr->lock);
    fr->fail_next = n;
    pthread_mutex_unlock(&fr->lock);
}

/* ---- the fixture -------------------------------------------------------------------------- */

struct lt {
    struct net_fixture nf;
    struct front front;
    struct pd_config *cfg;
    struct pd_client *client;
    char events[16384];
    size_t events_len;
    unsigned pending; /* operations not answered yet */
    int err;          /* the first failure of them */
    char message[512];
    /* The last answer: */
    size_t nlookups;
    char id[72], first[72];
    unsigned listed[130]; /* list: how often each lk-NNN came */
    struct pd_lookup_rows rows;
    struct pd_lookup_sync_report sync;
};

static void on_event(void *arg, enum pd_log_level level, const char *line)
{
    struct lt *t = arg;
    (void)level;
    pd_test_add_line(t->events, sizeof(t->events), &t->events_len, line);
}

static int setup(void **state)
{
    struct lt *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    nf_setup(&t->nf, 0);
    front_start(&t->front, t->nf.url, t->nf.lookups, sizeof(t->nf.lookups));
    t->cfg = nf_config(&t->nf, NULL, NULL);
    struct pd_client_opts o = {
        .pw = &t->cfg->pw, .clock = &t->nf.clock, .event = on_event, .note_arg = t};
    assert_int_equal(pd_client_create(&t->nf.loop, &o, &t->client), 0);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    struct lt *t = *state;
    pd_client_close(&t->client, NULL, NULL);
    pd_lookup_rows_cleanup(&t->rows);
    nf_teardown(&t->nf);
    MHD_stop_daemon(t->front.mhd);
    pthread_mutex_destroy(&t->front.lock);
    pd_config_destroy(&t->cfg);
    free(t);
    return 0;
}

static void on_done(void *arg, const struct pd_lookup_result *r)
{
    struct lt *t = arg;
    t->pending--;
    if (r->err && !t->err) {
        t->err = r->err;
        snprintf(t->message, sizeof(t->message), "%s", r->message ? r->message : "");
    }
    if (r->nlookups) {
        t->nlookups = r->nlookups;
        snprintf(t->id, sizeof(t->id), "%s", r->lookups[0].id);
        snprintf(t->first, sizeof(t->first), "%s", r->lookups[0].name);
        for (size_t i = 0; i < r->nlookups; i++) {
            unsigned k;
            if (sscanf(r->lookups[i].name, "lk-%u", &k) == 1 && k < 130)
                t->listed[k]++;
        }
    }
    if (r->rows) {
        pd_lookup_rows_cleanup(&t->rows);
        t->rows = *r->rows;
        memset(r->rows, 0, sizeof(*r->rows));
    }
}

static bool all_answered(void *arg)
{
    return ((struct lt *)arg)->pending == 0;
}

/* Runs the loop until every operation started has its answer; none may have failed. */
static void answered(struct lt *t)
{
    nf_run_until(&t->nf, all_answered, t);
    if (t->err)
        fail_msg("failed (%d): %s\nevents:\n%s", t->err, t->message, t->events);
}

/* Makes a lookup named NAME; its id into t->id. */
static void create(struct lt *t, const char *name)
{
    t->pending++;
    assert_int_equal(pd_lookup_create(t->client, &t->cfg->pw, name, NULL, NULL, on_done, t), 0);
    answered(t);
}

static void read_rows(struct lt *t, const char *id)
{
    t->pending++;
    assert_int_equal(pd_lookup_rows(t->client, &t->cfg->pw, id, on_done, t), 0);
    answered(t);
}

/* The right value of LEFT in the rows read last, or NULL. */
static const char *right_of(struct lt *t, const char *left)
{
    for (size_t i = 0; i < t->rows.n; i++)
        if (!strcmp(t->rows.v[i].left, left))
            return t->rows.v[i].right;
    return NULL;
}

/* ---- tests ----------------------------------------------------------------------------- */

/* A list of 130 lookups is read whole (two pages of 100), each once, its first page after a
 * 503. */
static void list_every_page(void **state)
{
    struct lt *t = *state;
    char name[32];

    for (int i = 0; i < 130; i++) {
        snprintf(name, sizeof(name), "lk-%03d", i);
        t->pending++;
        assert_int_equal(pd_lookup_create(t->client, &t->cfg->pw, name, "test", NULL, on_done, t),
                         0);
    }
    answered(t);
    memset(t->listed, 0, sizeof(t->listed)); /* each create counted its own */
    front_fail(&t->front, 1);
    t->pending++;
    assert_int_equal(pd_lookup_list(t->client, &t->cfg->pw, on_done, t), 0);
    answered(t);
    assert_int_equal(t->nlookups, 130);
    for (unsigned k = 0; k < 130; k++)
        if (t->listed[k] != 1)
            fail_msg("lk-%03u listed %u times", k, t->listed[k]);
    assert_int_equal(t->front.failed, 1);
    assert_non_null(strstr(t->front.seen, "?page=1&per_page=100 503\n"));
    assert_non_null(strstr(t->front.seen, "?page=1&per_page=100\n"));
    assert_non_null(strstr(t->front.seen, "?page=2&per_page=100\n"));
    assert_null(strstr(t->front.seen, "page=3"));
    assert_non_null(strstr(t->events, "attempt=1 delay_ms=0 retry_after=true status=503"));
    assert_int_equal(pd_client_stats(t->client).retries, 1);
}

/* Rows added, updated, deleted and read back; a revoked token is replaced by a new login. */
static void row_operations(void **state)
{
    struct lt *t = *state;
    char sku1[72];

    create(t, "bins");
    assert_int_equal(t->nlookups, 1);
    assert_string_equal(t->first, "bins");
    char id[72];
    snprintf(id, sizeof(id), "%s", t->id);
    t->pending++;
    assert_int_equal(pd_lookup_add(t->client, &t->cfg->pw, id, "SKU-1", "BIN-1", on_done, t), 0);
    answered(t);
    assert_int_equal(t->rows.n, 1);
    snprintf(sku1, sizeof(sku1), "%s", t->rows.v[0].id);
    t->pending++;
    assert_int_equal(pd_lookup_add(t->client, &t->cfg->pw, id, "SKU-2", "BIN-2", on_done, t), 0);
    answered(t);
    char sku2[72];
    snprintf(sku2, sizeof(sku2), "%s", t->rows.v[0].id);
    t->pending++;
    assert_int_equal(pd_lookup_update(t->client, &t->cfg->pw, id, sku1, NULL, "BIN-9", on_done, t),
                     0);
    answered(t);
    t->pending++;
    assert_int_equal(pd_lookup_delete(t->client, &t->cfg->pw, id, sku2, on_done, t), 0);
    answered(t);

    pd_mock_revoke_tokens(t->nf.mock);
    read_rows(t, id);
    assert_int_equal(t->rows.n, 1);
    assert_string_equal(right_of(t, "SKU-1"), "BIN-9");
    assert_null(right_of(t, "SKU-2"));
    struct pd_client_stats cs = pd_client_stats(t->client);
    assert_int_equal(cs.reauths, 1);
    assert_int_equal(cs.logins, 2);
    assert_int_equal(nf_stats(&t->nf).logins, 2);
}

static void on_synced(void *arg, const struct pd_lookup_sync_report *r)
{
    struct lt *t = arg;
    t->pending--;
    t->sync = *r;
    t->sync.plan = NULL; /* freed with the sync */
    t->sync.message = NULL;
    if (r->err && !t->err) {
        t->err = r->err;
        snprintf(t->message, sizeof(t->message), "%s", r->message ? r->message : "");
    }
}

static void sync_file(struct lt *t, const char *id, const char *csv, bool delete_missing)
{
    char path[160];
    struct pd_lookup_sync_opts so = {.delete_missing = delete_missing};
    snprintf(path, sizeof(path), "%s/rows.csv", t->nf.dir);
    nf_write(t->nf.dir, "rows.csv", csv);
    t->pending++;
    assert_int_equal(
        pd_lookup_sync_start(t->client, &t->cfg->pw, id, path, &so, on_synced, t, NULL), 0);
    answered(t);
}

/* A file synced into a lookup: every row added; then a changed file updates and deletes, its
 * reading of the rows answered 503 once. */
static void sync_into_lookup(void **state)
{
    struct lt *t = *state;
    char csv[8192] = "left_value,right_value\n", id[72];

    create(t, "skus");
    snprintf(id, sizeof(id), "%s", t->id);
    for (int i = 1; i <= 150; i++) {
        size_t n = strlen(csv);
        snprintf(csv + n, sizeof(csv) - n, "SKU-%03d,BIN-%d\n", i, i);
    }
    sync_file(t, id, csv, false);
    assert_int_equal(t->sync.added, 150);
    assert_int_equal(t->sync.updated + t->sync.deleted + t->sync.refused, 0);
    read_rows(t, id);
    assert_int_equal(t->rows.n, 150);
    assert_string_equal(right_of(t, "SKU-150"), "BIN-150");

    /* SKU-005 changes, SKU-150 is gone. */
    char *p = strstr(csv, "SKU-005,BIN-5\n");
    memcpy(p, "SKU-005,BIN-X\n", 14);
    *strstr(csv, "SKU-150,") = '\0';
    front_fail(&t->front, 1);
    sync_file(t, id, csv, true);
    assert_int_equal(t->sync.added, 0);
    assert_int_equal(t->sync.updated, 1);
    assert_int_equal(t->sync.deleted, 1);
    assert_int_equal(t->sync.lookup_rows, 150);
    assert_int_equal(t->front.failed, 1);
    assert_non_null(strstr(t->events, "status=503"));
    read_rows(t, id);
    assert_int_equal(t->rows.n, 149);
    assert_string_equal(right_of(t, "SKU-005"), "BIN-X");
    assert_null(right_of(t, "SKU-150"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(list_every_page, setup, teardown),
        cmocka_unit_test_setup_teardown(row_operations, setup, teardown),
        cmocka_unit_test_setup_teardown(sync_into_lookup, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
