/* Unit tests of metrics: the Prometheus page, the health verdict, and the HTTP endpoint. */
#include "testlib.h"

#include "pd_clock.h"
#include "pd_error.h"
#include "pd_metrics.h"
#include "pd_progress.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct pd_metrics *make(uint64_t unhealthy_ms)
{
    struct pd_metrics_opts o = {.unhealthy_after_ms = unhealthy_ms, .clock = &pd_test_clock};
    struct pd_metrics *m = NULL;
    pd_test_mono = 100000;
    pd_test_wall = 1700000000000ULL;
    assert_int_equal(pd_metrics_create(&o, &m), 0);
    return m;
}

static char *render(struct pd_metrics *m)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(pd_metrics_render(m, &text, &len), 0);
    assert_int_equal(strlen(text), len);
    return text;
}

static void has_line(const char *text, const char *line)
{
    char want[512];
    snprintf(want, sizeof(want), "\n%s\n", line);
    if (!strstr(text, want)) {
        print_error("missing line: %s\nin:\n%s\n", line, text);
        fail();
    }
}

static void counts_per_watch_and_status(void **state)
{
    struct pd_metrics *m = make(0);

    for (int i = 0; i < 3; i++)
        pd_metrics_file_event(m, "orders", PD_METRICS_DISCOVERED, 0);
    pd_metrics_file_event(m, "orders", PD_METRICS_CLAIMED, 100);
    pd_metrics_file_event(m, "orders", PD_METRICS_CLAIMED, 50);
    pd_metrics_chunk(m, "orders", 120);
    pd_metrics_chunk(m, "orders", 70);
    pd_test_wall += 5000;
    pd_metrics_file_event(m, "orders", PD_METRICS_DELIVERED, 100);
    pd_metrics_file_event(m, "orders", PD_METRICS_REJECTED, 50);
    pd_metrics_file_event(m, "stock", PD_METRICS_DISCOVERED, 0);
    pd_metrics_response(m, 200);
    pd_metrics_response(m, 200);
    pd_metrics_response(m, 503);
    pd_metrics_response(m, 0);
    pd_metrics_response(m, 999); /* nonsense counts as no answer, never out of bounds */
    pd_metrics_count(m, PD_METRICS_RETRIES);
    pd_metrics_count(m, PD_METRICS_LOGINS);

    char *t = render(m);
    has_line(t, "# TYPE patchdrop_files_discovered_total counter");
    has_line(t, "patchdrop_files_discovered_total{watch=\"orders\"} 3");
    has_line(t, "patchdrop_files_discovered_total{watch=\"stock\"} 1");
    has_line(t, "patchdrop_files_claimed_total{watch=\"orders\"} 2");
    has_line(t, "patchdrop_files_delivered_total{watch=\"orders\"} 1");
    has_line(t, "patchdrop_files_rejected_total{watch=\"orders\"} 1");
    has_line(t, "patchdrop_files_delivered_total{watch=\"stock\"} 0");
    has_line(t, "patchdrop_chunks_sent_total{watch=\"orders\"} 2");
    has_line(t, "patchdrop_bytes_sent_total{watch=\"orders\"} 190");
    has_line(t, "patchdrop_last_delivery_timestamp_seconds{watch=\"orders\"} 1700000005");
    has_line(t, "patchdrop_last_delivery_timestamp_seconds{watch=\"stock\"} 0");
    has_line(t, "patchdrop_http_responses_total{status=\"200\"} 2");
    has_line(t, "patchdrop_http_responses_total{status=\"503\"} 1");
    has_line(t, "patchdrop_http_responses_total{status=\"none\"} 2");
    has_line(t, "patchdrop_retries_total 1");
    has_line(t, "patchdrop_logins_total 1");
    has_line(t, "patchdrop_reauths_total 0");
    has_line(t, "process_start_time_seconds 1700000000");
    /* Every family is announced once with HELP and TYPE, before its samples. */
    assert_null(strstr(strstr(t, "# TYPE patchdrop_retries_total") + 1,
                       "# TYPE patchdrop_retries_total"));
    free(t);

    struct pd_metrics_totals tot = pd_metrics_totals(m);
    assert_int_equal(tot.files[PD_METRICS_DISCOVERED], 4);
    assert_int_equal(tot.claimed_bytes, 150);
    assert_int_equal(tot.finished_bytes, 150);
    assert_int_equal(tot.chunks, 2);
    pd_metrics_destroy(&m);
    assert_null(m);
    pd_metrics_destroy(&m); /* NULL is a no-op */
}

static void gauges_come_from_the_sample(void **state)
{
    struct pd_metrics *m = make(0);
    struct pd_metrics_watch_sample ws[] = {{"orders", 2, 100000 - 42000}, {"stock", 0, 0}};
    struct pd_metrics_sample s = {.requests_waiting = 5, .requests_in_flight = 2,
                                  .watches = ws, .nwatches = 2};
    pd_metrics_sample(m, &s);
    char *t = render(m);
    has_line(t, "patchdrop_files_pending{watch=\"orders\"} 2");
    has_line(t, "patchdrop_oldest_pending_file_age_seconds{watch=\"orders\"} 42");
    has_line(t, "patchdrop_oldest_pending_file_age_seconds{watch=\"stock\"} 0");
    has_line(t, "patchdrop_requests_waiting 5");
    has_line(t, "patchdrop_requests_in_flight 2");
    free(t);
    /* A watch missing from the next sample (removed by a reload) has nothing pending. */
    s.nwatches = 1;
    ws[0].files_pending = 0;
    ws[0].oldest_since_ms = 0;
    ws[0].watch = "stock";
    pd_metrics_sample(m, &s);
    t = render(m);
    has_line(t, "patchdrop_files_pending{watch=\"orders\"} 0");
    has_line(t, "patchdrop_oldest_pending_file_age_seconds{watch=\"orders\"} 0");
    free(t);
    pd_metrics_destroy(&m);
}

static void label_values_are_escaped(void **state)
{
    struct pd_metrics *m = make(0);
    pd_metrics_file_event(m, "a\"b\\c\nd", PD_METRICS_CLAIMED, 1);
    char *t = render(m);
    has_line(t, "patchdrop_files_claimed_total{watch=\"a\\\"b\\\\c\\nd\"} 1");
    free(t);
    pd_metrics_destroy(&m);
}

static void null_metrics_are_off(void **state)
{
    pd_metrics_file_event(NULL, "x", PD_METRICS_CLAIMED, 1);
    pd_metrics_chunk(NULL, "x", 1);
    pd_metrics_response(NULL, 200);
    pd_metrics_count(NULL, PD_METRICS_RETRIES);
    pd_metrics_heartbeat(NULL);
    struct pd_metrics_totals t = pd_metrics_totals(NULL);
    assert_int_equal(t.chunks, 0);
}

/* Runs followed now, runs finished by outcome, and how long they took, per watch. */
static void flow_runs_are_counted_and_timed(void **state)
{
    struct pd_metrics *m = make(0);
    struct pd_metrics_sample s = {.runs_followed = 7};

    pd_metrics_sample(m, &s);
    pd_metrics_flow_run(m, "orders", "success", 4000);   /* le 5 */
    pd_metrics_flow_run(m, "orders", "success", 5000);   /* le 5: the bound is inclusive */
    pd_metrics_flow_run(m, "orders", "failed", 5001);    /* le 15 */
    pd_metrics_flow_run(m, "orders", "partial", 299999); /* le 300 */
    pd_metrics_flow_run(m, "orders", "running", 86400001); /* not final: unknown; +Inf only */
    pd_metrics_flow_run(m, "stock", "stopped", 61000);
    pd_metrics_flow_run(m, "stock", NULL, 0);
    char *t = render(m);
    has_line(t, "# TYPE patchdrop_flow_runs_followed gauge");
    has_line(t, "patchdrop_flow_runs_followed 7");
    has_line(t, "# TYPE patchdrop_flow_runs_finished_total counter");
    has_line(t, "patchdrop_flow_runs_finished_total{watch=\"orders\",outcome=\"success\"} 2");
    has_line(t, "patchdrop_flow_runs_finished_total{watch=\"orders\",outcome=\"failed\"} 1");
    has_line(t, "patchdrop_flow_runs_finished_total{watch=\"orders\",outcome=\"stopped\"} 0");
    has_line(t, "patchdrop_flow_runs_finished_total{watch=\"orders\",outcome=\"partial\"} 1");
    has_line(t, "patchdrop_flow_runs_finished_total{watch=\"orders\",outcome=\"unknown\"} 1");
    has_line(t, "patchdrop_flow_runs_finished_total{watch=\"stock\",outcome=\"stopped\"} 1");
    has_line(t, "patchdrop_flow_runs_finished_total{watch=\"stock\",outcome=\"unknown\"} 1");
    has_line(t, "# TYPE patchdrop_flow_run_seconds histogram");
    static const char *const orders[] = {
        "5\"} 2", "15\"} 3", "30\"} 3", "60\"} 3", "120\"} 3", "300\"} 4", "900\"} 4",
        "3600\"} 4", "21600\"} 4", "86400\"} 4", "+Inf\"} 5"};
    for (size_t i = 0; i < sizeof(orders) / sizeof(orders[0]); i++) {
        char line[128];
        snprintf(line, sizeof(line), "patchdrop_flow_run_seconds_bucket{watch=\"orders\",le=\"%s",
                 orders[i]);
        has_line(t, line);
    }
    has_line(t, "patchdrop_flow_run_seconds_sum{watch=\"orders\"} 86714.001");
    has_line(t, "patchdrop_flow_run_seconds_count{watch=\"orders\"} 5");
    has_line(t, "patchdrop_flow_run_seconds_bucket{watch=\"stock\",le=\"60\"} 1");
    has_line(t, "patchdrop_flow_run_seconds_bucket{watch=\"stock\",le=\"120\"} 2");
    has_line(t, "patchdrop_flow_run_seconds_sum{watch=\"stock\"} 61.000");
    has_line(t, "patchdrop_flow_run_seconds_count{watch=\"stock\"} 2");
    free(t);
    pd_metrics_flow_run(NULL, "orders", "success", 1); /* metrics off */
    pd_metrics_destroy(&m);
}

/*
 * promtool (Debian's package prometheus) checks the page as Prometheus reads it, every family
 * filled. Missing, it is installed when apt-get can; when it still cannot be found the other
 * tests run and the program exits 77 (skipped) rather than pass without it.
 */
static bool promtool_missing;

static bool have_promtool(void)
{
    if (!system("command -v promtool >/dev/null 2>&1"))
        return true;
    print_message("promtool is missing: installing prometheus from Debian's archive\n");
    return !system("command -v apt-get >/dev/null && [ \"$(id -u)\" -eq 0 ] && "
                   "{ export DEBIAN_FRONTEND=noninteractive; "
                   "a() { apt-get -o DPkg::Lock::Timeout=600 -qq \"$@\" >/dev/null 2>&1; }; "
                   "a install -y --no-install-recommends prometheus || "
                   "{ a update && a install -y --no-install-recommends prometheus; }; } ; "
                   "command -v promtool >/dev/null 2>&1");
}

static void exposition_passes_promtool(void **state)
{
    struct pd_metrics *m = make(0);
    struct pd_metrics_watch_sample ws[] = {{"orders", 2, 100000 - 42000}};
    struct pd_metrics_sample s = {.requests_waiting = 1, .failing_since_ms = 99000,
                                  .runs_followed = 3, .watches = ws, .nwatches = 1};
    char path[] = "/tmp/pd-test_metrics-XXXXXX", cmd[128];

    if (!have_promtool()) {
        promtool_missing = true;
        skip();
    }
    for (int e = 0; e < PD_METRICS_FILE_EVENTS; e++)
        pd_metrics_file_event(m, "orders", (enum pd_metrics_file)e, 10);
    pd_metrics_chunk(m, "orders", 10);
    pd_metrics_watch_state(m, "a\"b\\c\nd", "its folder is missing");
    for (int c = 0; c < PD_METRICS_COUNTERS; c++)
        pd_metrics_count(m, (enum pd_metrics_counter)c);
    pd_metrics_response(m, 200);
    pd_metrics_response(m, 0);
    pd_metrics_sample(m, &s);
    pd_metrics_heartbeat(m);
    pd_metrics_flow_run(m, "orders", "success", 12345);
    pd_metrics_flow_run(m, "a\"b\\c\nd", "failed", 90000000);
    char *t = render(m);
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, t, strlen(t)), (ssize_t)strlen(t));
    close(fd);
    snprintf(cmd, sizeof(cmd), "promtool check metrics <%s", path);
    int rc = system(cmd);
    if (rc)
        print_error("promtool check metrics failed (%d) on:\n%s\n", rc, t);
    unlink(path);
    free(t);
    pd_metrics_destroy(&m);
    assert_int_equal(rc, 0);
}

static void health_follows_the_loop_and_failures(void **state)
{
    struct pd_metrics *m = make(10000);
    char why[300];
    struct pd_metrics_sample s = {0};

    assert_int_equal(pd_metrics_health(m, why, sizeof(why)), 503);
    assert_non_null(strstr(why, "starting"));
    pd_metrics_heartbeat(m);
    assert_int_equal(pd_metrics_health(m, why, sizeof(why)), 200);
    assert_string_equal(why, "ok");

    /* The loop stops beating: stalled. */
    pd_test_mono += 16000;
    assert_int_equal(pd_metrics_health(m, why, sizeof(why)), 503);
    assert_non_null(strstr(why, "has not run for 16 s"));
    pd_metrics_heartbeat(m);

    /* A request has been failing for less than unhealthy_after: still healthy. */
    s.failing_since_ms = pd_test_mono - 9000;
    s.last_failure_status = 503;
    pd_metrics_sample(m, &s);
    assert_int_equal(pd_metrics_health(m, why, sizeof(why)), 200);
    pd_test_mono += 1000;
    pd_metrics_heartbeat(m);
    assert_int_equal(pd_metrics_health(m, why, sizeof(why)), 503);
    assert_non_null(strstr(why, "failing for 10 s"));
    assert_non_null(strstr(why, "HTTP 503"));
    char *t = render(m);
    has_line(t, "patchdrop_healthy 0");
    has_line(t, "patchdrop_failing_seconds 10");
    free(t);

    s.last_failure_status = 0;
    pd_metrics_sample(m, &s);
    assert_int_equal(pd_metrics_health(m, why, sizeof(why)), 503);
    assert_non_null(strstr(why, "no answer"));

    /* It got through: healthy again. */
    s.failing_since_ms = 0;
    pd_metrics_sample(m, &s);
    assert_int_equal(pd_metrics_health(m, why, sizeof(why)), 200);
    pd_metrics_destroy(&m);
}

struct body {
    char buf[65536];
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t k = size * n;
    if (b->len + k >= sizeof(b->buf))
        k = sizeof(b->buf) - 1 - b->len;
    memcpy(b->buf + b->len, p, k);
    b->len += k;
    b->buf[b->len] = '\0';
    return size * n;
}

static long get(unsigned port, const char *path, struct body *b)
{
    char url[128];
    long code = 0;
    CURL *c = curl_easy_init();
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", port, path);
    b->len = 0;
    b->buf[0] = '\0';
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(c);
    return code;
}

static void serves_metrics_and_health_over_http(void **state)
{
    static struct body b;
    struct pd_metrics_opts o = {0};
    struct pd_metrics *m = NULL, *other = NULL;
    char err[256], listen[64];

    assert_int_equal(pd_metrics_create(&o, &m), 0);
    assert_int_equal(pd_metrics_listen(m, "127.0.0.1:0", err, sizeof(err)), 0);
    unsigned port = pd_metrics_port(m);
    assert_true(port > 0);
    pd_metrics_file_event(m, "orders", PD_METRICS_DELIVERED, 10);

    assert_int_equal(get(port, "/healthz", &b), 503); /* no heartbeat yet */
    assert_non_null(strstr(b.buf, "unhealthy: starting"));
    pd_metrics_heartbeat(m);
    assert_int_equal(get(port, "/healthz", &b), 200);
    assert_string_equal(b.buf, "ok\n");
    assert_int_equal(get(port, "/metrics", &b), 200);
    assert_non_null(strstr(b.buf, "\npatchdrop_files_delivered_total{watch=\"orders\"} 1\n"));
    assert_int_equal(get(port, "/other", &b), 404);

    /* The same port twice: a clear error, not a crash. */
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    assert_int_equal(pd_metrics_create(&o, &other), 0);
    assert_int_equal(pd_metrics_listen(other, listen, err, sizeof(err)), -EADDRINUSE);
    assert_non_null(strstr(err, "cannot listen on 127.0.0.1:"));
    assert_int_equal(pd_metrics_listen(other, "nowhere", err, sizeof(err)), PD_ECONFIG);
    pd_metrics_destroy(&other);
    pd_metrics_destroy(&m);
}

static void progress_line_shows_files_bytes_rate_eta(void **state)
{
    struct pd_progress p;
    char line[256];
    struct pd_progress_state s = {.files_done = 3, .files_total = 10, .bytes_done = 2000000,
                                  .bytes_total = 8000000};
    pd_progress_init(&p, stderr, true, 1000);
    pd_progress_line(&p, &s, 5000, line, sizeof(line));
    /* 2 MB in 4 s: 500 kB/s; 6 MB left: 12 s. */
    assert_string_equal(line, "[#####---------------] 3/10 files  2.0 MB/8.0 MB  500.0 kB/s  "
                              "ETA 0:12");
    s.files_failed = 1;
    s.bytes_done = 8000000;
    pd_progress_line(&p, &s, 5000, line, sizeof(line));
    assert_non_null(strstr(line, "[####################]"));
    assert_non_null(strstr(line, "ETA 0:00  (some failed)"));
    pd_progress_bytes(999, line, sizeof(line));
    assert_string_equal(line, "999 B");
    pd_progress_bytes(1500000000, line, sizeof(line));
    assert_string_equal(line, "1.5 GB");
    pd_progress_cleanup(&p);
}

/* A connection to the listener that sends HEAD (may be NULL) and then nothing. */
static int connect_idle(unsigned port, const char *head)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    if (head)
        assert_int_equal(send(fd, head, strlen(head), 0), (ssize_t)strlen(head));
    return fd;
}

/* True when the server closed FD (within 5 s). */
static bool closed_by_server(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char c;
    return poll(&p, 1, 5000) == 1 && recv(fd, &c, 1, 0) <= 0;
}

/*
 * The connection guard: far more idle and slowloris connections than the listener takes never
 * keep a scrape out; the oldest idle ones are shut down to make room. The descriptor limit is
 * lowered to 256 so that the listener takes a quarter of it, 64 connections, while this same
 * process holds the 100 client ends too (at 128 both sides together could run out of
 * descriptors before the guard evicts anything, and socket() would fail).
 */
static void idle_connections_never_starve_a_scrape(void **state)
{
    static struct body b;
    struct pd_metrics_opts o = {0};
    struct pd_metrics *m = NULL;
    struct rlimit saved, low;
    char err[256];
    int fds[100];

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved), 0);
    low = saved;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    assert_int_equal(pd_metrics_create(&o, &m), 0);
    assert_int_equal(pd_metrics_listen(m, "127.0.0.1:0", err, sizeof(err)), 0);
    pd_metrics_heartbeat(m);
    unsigned port = pd_metrics_port(m);
    for (int i = 0; i < 100; i++)
        fds[i] = connect_idle(port, i % 10 == 9 ? "GET /healthz HTTP/1.1\r\nX-Slow: a" : NULL);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(get(port, "/healthz", &b), 200);
        assert_string_equal(b.buf, "ok\n");
    }
    assert_int_equal(get(port, "/metrics", &b), 200);
    const char *ev = strstr(b.buf, "\npatchdrop_metrics_connections_evicted_total ");
    assert_non_null(ev);
    assert_true(atoi(ev + strlen("\npatchdrop_metrics_connections_evicted_total ")) >= 100 - 64);
    /* The first connections are the oldest: they went; the last ones are still held. */
    assert_true(closed_by_server(fds[0]));
    assert_true(closed_by_server(fds[9]));
    for (int i = 0; i < 100; i++)
        close(fds[i]);
    pd_metrics_destroy(&m);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &saved), 0);
}

/* Report lines through the escaping stream: values escaped, each flushed line's end kept. */
static void report_lines_are_escaped(void **state)
{
    char *text = NULL;
    size_t len = 0;
    FILE *under = open_memstream(&text, &len);
    FILE *f = pd_progress_escaping(under);

    assert_non_null(f);
    fprintf(f, "%s: delivered in 1 chunk(s)\n", "a\x1b]0;title\a.txt\nlevel=error forged");
    fflush(f);
    fprintf(f, "%s: chunk 1\n", "b\x1b[2J\x9b.txt");
    fflush(f);
    /* Two lines in one flush come out joined, never raw. */
    fprintf(f, "x\ny\n");
    fflush(f);
    /* A line longer than the stream's buffer keeps its own end only. */
    char *big = malloc(200001);
    memset(big, 'z', 200000);
    big[100000] = '\n';
    big[200000] = '\0';
    fprintf(f, "%s\n", big);
    fflush(f);
    fprintf(f, "caf\xc3\xa9\n");
    fclose(f);
    fclose(under);
    const char *want_head =
        "a\\x1b]0;title\\x07.txt\\nlevel=error forged: delivered in 1 chunk(s)\n"
        "b\\x1b[2J\\x9b.txt: chunk 1\n"
        "x\\ny\n";
    assert_int_equal(strncmp(text, want_head, strlen(want_head)), 0);
    const char *rest = text + strlen(want_head);
    /* 199,999 z, the inner newline as \n (2 characters), then the line's own end. */
    assert_non_null(strstr(rest, "zz\\nzz"));
    assert_ptr_equal(strchr(rest, '\n'), rest + 200001);
    assert_string_equal(rest + 200002, "caf\xc3\xa9\n");
    free(big);
    free(text);
}

int main(void)
{
    int rc = PD_RUN_TESTS(NULL, NULL, report_lines_are_escaped,
                          idle_connections_never_starve_a_scrape, counts_per_watch_and_status,
                          gauges_come_from_the_sample, label_values_are_escaped,
                          null_metrics_are_off, flow_runs_are_counted_and_timed,
                          exposition_passes_promtool, health_follows_the_loop_and_failures,
                          serves_metrics_and_health_over_http,
                          progress_line_shows_files_bytes_rate_eta);
    if (!rc && promtool_missing) {
        printf("skipped: promtool cannot be found (Debian's package prometheus)\n");
        return 77; /* ctest reports it skipped, never passed */
    }
    return rc;
}
