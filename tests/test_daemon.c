/*
 * Unit tests of the daemon (pd_daemon.h) as `patchdrop run` drives it, on temp drop folders,
 * against the emulator running in-process (pdmock, recording what it receives) and with a fake
 * clock: settle, batch windows and backoff are judged by the clock the test moves, so nothing
 * sleeps. The loop's own timers (the daemon's wake, rescans) still fire on real time: the daemon
 * sleeps until its next deadline, a second at most, so a move of the clock is seen within a
 * second. A wait for something to happen is bounded by a guard, and a check that something
 * does NOT happen runs the loop for longer than the daemon's longest sleep.
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

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

/* Longer than the daemon's longest sleep (a second): anything due has happened by then. */
#define LONGEST_SLEEP_MS 1100

struct dt {
    struct net_fixture nf;
    struct pd_config *cfg;
    struct pd_metrics *metrics;
    struct pd_daemon *d;
    char drop[128], archive[160], failed[160], work[160];
    uv_timer_t window; /* count_wakes() */
    bool stopped, closed;
    struct pd_daemon_summary sum;
    unsigned want;    /* files the condition waits for */
    const char *line; /* what logged() waits for */
};

static int setup(void **state)
{
    struct dt *t = calloc(1, sizeof(*t));
    assert_non_null(t);
    nf_setup(&t->nf, 0);
    snprintf(t->drop, sizeof(t->drop), "%s/drop", t->nf.dir);
    snprintf(t->archive, sizeof(t->archive), "%s/drop.pd/archive", t->nf.dir);
    snprintf(t->failed, sizeof(t->failed), "%s/drop.pd/failed", t->nf.dir);
    snprintf(t->work, sizeof(t->work), "%s/drop.pd/work", t->nf.dir);
    assert_int_equal(mkdir(t->drop, 0755), 0);
    *state = t;
    return 0;
}

static void on_stopped(void *arg, const char *fatal)
{
    struct dt *t = arg;
    if (fatal)
        fail_msg("the daemon stopped: %s", fatal);
    t->sum = pd_daemon_summary(t->d);
    t->stopped = true;
}

static void on_closed(void *arg)
{
    ((struct dt *)arg)->closed = true;
}

static bool is_stopped(void *arg)
{
    return ((struct dt *)arg)->stopped;
}

static bool is_closed(void *arg)
{
    return ((struct dt *)arg)->closed;
}

static int teardown(void **state)
{
    struct dt *t = *state;
    if (t->d && !t->stopped) {
        pd_daemon_stop(t->d, 0);
        nf_run_until(&t->nf, is_stopped, t);
    }
    if (t->d) {
        pd_daemon_close(&t->d, on_closed, t);
        nf_run_until(&t->nf, is_closed, t);
    }
    pd_config_destroy(&t->cfg);
    pd_metrics_destroy(&t->metrics);
    nf_teardown(&t->nf);
    free(t);
    return 0;
}

/* Starts the daemon on t->cfg. */
static void begin(struct dt *t, bool once)
{
    struct pd_metrics_opts mo = {.clock = &t->nf.clock};
    assert_int_equal(pd_metrics_create(&mo, &t->metrics), 0);
    struct pd_daemon_opts o = {.cfg = t->cfg,
                               .once = once,
                               .on_stopped = on_stopped,
                               .arg = t,
                               .metrics = t->metrics,
                               .clock = &t->nf.clock};
    assert_int_equal(pd_daemon_create(&t->nf.loop, &o, &t->d), 0);
    assert_int_equal(pd_daemon_start(t->d), 0);
}

/* Loads a config with WATCH's keys for [watch:drop] and starts the daemon on it. */
static void start(struct dt *t, const char *pw_extra, const char *watch, bool once)
{
    t->cfg = nf_config(&t->nf, pw_extra, watch);
    begin(t, once);
}

/* start(), with the watcher's rescans (every second in these tests) out of the way: they wake
 * the loop on their own timer, not the daemon's. */
static void start_no_rescan(struct dt *t, const char *watch)
{
    t->cfg = nf_config(&t->nf, NULL, watch);
    t->cfg->watches[0].rescan_ms = 3600000;
    begin(t, false);
}

static uint64_t files(struct dt *t, enum pd_metrics_file ev)
{
    return pd_metrics_totals(t->metrics).files[ev];
}

/* Every candidate has been looked at (stat'd and judged) at least once: the metrics count a
 * file as pending from then on. */
static bool observed(void *arg)
{
    struct dt *t = arg;
    char *text = NULL, want[96];
    size_t len;
    pd_daemon_sample(t->d, t->metrics);
    assert_int_equal(pd_metrics_render(t->metrics, &text, &len), 0);
    snprintf(want, sizeof(want), "patchdrop_files_pending{watch=\"drop\"} %u\n", t->want);
    bool yes = strstr(text, want) != NULL;
    free(text);
    return yes;
}

/* The log holds t->line. */
static bool logged(void *arg)
{
    struct dt *t = arg;
    char *text = nf_log_text(&t->nf);
    bool yes = strstr(text, t->line) != NULL;
    free(text);
    return yes;
}

/* Receipts in the archive folder. */
static unsigned receipts(struct dt *t)
{
    DIR *dir = opendir(t->archive);
    struct dirent *de;
    unsigned n = 0;
    if (!dir)
        return 0;
    while ((de = readdir(dir)))
        n += strstr(de->d_name, ".receipt.json") != NULL;
    closedir(dir);
    return n;
}

static bool archived(void *arg)
{
    struct dt *t = arg;
    return receipts(t) >= t->want;
}

/* The payload the emulator recorded for flow run ID (they are numbered from 1). */
static char *payload(struct dt *t, uint64_t id)
{
    char name[64];
    snprintf(name, sizeof(name), "payloads/%06llu", (unsigned long long)id);
    char *text = nf_read(t->nf.rec, name, NULL);
    if (!text)
        fail_msg("no payload %s", name);
    return text;
}

/* Every payload received, in order, into one text. */
static char *all_payloads(struct dt *t)
{
    uint64_t runs = nf_stats(&t->nf).runs;
    size_t len = 0;
    char *all = strdup("");
    for (uint64_t id = 1; id <= runs; id++) {
        char *p = payload(t, id);
        all = realloc(all, len + strlen(p) + 1);
        assert_non_null(all);
        memcpy(all + len, p, strlen(p) + 1);
        len += strlen(p);
        free(p);
    }
    return all;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!hay || !strstr(hay, needle))
        fail_msg("\"%s\" not found in:\n%s", needle, hay ? hay : "(nothing)");
}

static void find_wake(uv_handle_t *h, void *arg)
{
    struct dt *t = ((void **)arg)[0];
    if (h->type == UV_TIMER && h->data == t->d && uv_is_active(h))
        ((void **)arg)[1] = h;
}

/* The daemon's one timer: the active timer whose data is the daemon. */
static uv_timer_t *wake_timer(struct dt *t)
{
    void *arg[2] = {t, NULL};
    uv_walk(&t->nf.loop, find_wake, arg);
    if (!arg[1])
        fail_msg("the daemon has no timer armed");
    return arg[1];
}

static void on_window(uv_timer_t *timer)
{
    (void)timer;
}

/* How often the loop woke up (returned from waiting) in MS of real time, its end excluded. */
static unsigned count_wakes(struct dt *t, uint64_t ms)
{
    unsigned n = 0;
    uv_timer_init(&t->nf.loop, &t->window);
    uv_timer_start(&t->window, on_window, ms, 0);
    while (uv_is_active((uv_handle_t *)&t->window)) {
        uv_run(&t->nf.loop, UV_RUN_ONCE);
        n++;
    }
    uv_close((uv_handle_t *)&t->window, NULL);
    return n - 1;
}

/* An idle daemon (an empty drop folder) has no tick: its one timer never repeats, is due within
 * its longest sleep, and the loop wakes about once a second (it woke every 50 ms before). */
static void idle_sleeps(void **state)
{
    struct dt *t = *state;

    start_no_rescan(t, "settle = 0");
    nf_run_for(&t->nf, 300); /* its first scan */
    uv_timer_t *wake = wake_timer(t);
    assert_int_equal(uv_timer_get_repeat(wake), 0);
    assert_true(uv_timer_get_due_in(wake) <= 1000);
    unsigned n = count_wakes(t, 2500);
    if (n > 4)
        fail_msg("an idle daemon woke %u times in 2.5 s", n);
}

/* A settling file wakes the daemon when its settle ends, as the injected clock tells: the timer
 * is armed for that moment, nothing wakes in between, and the file goes once the clock gets
 * there. */
static void wakes_when_settled(void **state)
{
    struct dt *t = *state;

    nf_write(t->drop, "a.json", "[{\"id\":1}]");
    start_no_rescan(t, "settle = 700ms");
    t->want = 1;
    nf_run_until(&t->nf, observed, t);
    uint64_t due = uv_timer_get_due_in(wake_timer(t));
    if (due < 300 || due > 700)
        fail_msg("the daemon wakes in %llu ms, not when settle ends (700 ms)",
                 (unsigned long long)due);
    unsigned n = count_wakes(t, 200);
    if (n > 1)
        fail_msg("the daemon woke %u times in 200 ms with nothing due", n);
    assert_int_equal(files(t, PD_METRICS_CLAIMED), 0);
    nf_advance(&t->nf, 700);
    t->want = 1;
    nf_run_until(&t->nf, archived, t);
    assert_int_equal(files(t, PD_METRICS_CLAIMED), 1);
}

/* A file written again while it settles: the event says so at once, and settle counts from
 * that change (not from a look at settle's end, which would find the change and start again). */
static void settle_from_last_change(void **state)
{
    struct dt *t = *state;
    const char *text = "[{\"id\":1},{\"id\":2}]";

    start_no_rescan(t, "settle = 700ms");
    nf_write(t->drop, "a.json", "[{\"id\":1}");
    t->want = 1;
    nf_run_until(&t->nf, observed, t);
    nf_advance(&t->nf, 600);
    char path[256];
    snprintf(path, sizeof(path), "%s/a.json", t->drop);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    fputs(text, out);
    assert_int_equal(fclose(out), 0); /* IN_CLOSE_WRITE */
    nf_run_for(&t->nf, 200);
    nf_advance(&t->nf, 700); /* 1300 ms after the first look, 700 after the change */
    t->want = 1;
    nf_run_until(&t->nf, archived, t);
    char *got = payload(t, 1);
    assert_string_equal(got, text);
    free(got);
}

/* A file is claimed only once it stayed unchanged for settle, as the injected clock tells (an
 * hour here: on the real clock it would never be claimed within the guard). */
static void claimed_after_settle(void **state)
{
    struct dt *t = *state;
    const char *text = "id,name\n1,Ann\n2,Bob\n";

    nf_write(t->drop, "a.csv", text);
    start(t, NULL, "settle = 1h", true);
    t->want = 1;
    nf_run_until(&t->nf, observed, t);
    assert_int_equal(files(t, PD_METRICS_CLAIMED), 0);
    nf_advance(&t->nf, 3600000 - 1);
    nf_run_for(&t->nf, LONGEST_SLEEP_MS);
    assert_int_equal(files(t, PD_METRICS_CLAIMED), 0);
    assert_true(nf_exists(t->drop, "a.csv"));
    assert_int_equal(nf_stats(&t->nf).start_flow, 0);

    nf_advance(&t->nf, 1);
    nf_run_until(&t->nf, is_stopped, t);
    assert_int_equal(t->sum.delivered, 1);
    assert_int_equal(t->sum.chunks, 1);
    assert_false(nf_exists(t->drop, "a.csv"));
    char *got = payload(t, 1);
    assert_string_equal(got, text);
    free(got);
    char *arch = nf_read(t->archive, "a.csv", NULL);
    assert_non_null(arch);
    assert_string_equal(arch, text);
    free(arch);
    char *receipt = nf_read(t->archive, "a.csv.receipt.json", NULL);
    assert_contains(receipt, "\"flow_run_id\": \"1\"");
    free(receipt);
    /* Every request's state change was traced, through set_state. */
    char *log = nf_log_text(&t->nf);
    assert_contains(log, "event=request_state");
    assert_contains(log, "from=in-flight to=done url=");
    assert_contains(log, "event=job_step watch=drop file=a.csv from=prepare");
    free(log);
}

/* A file bigger than max_body goes in several chunks, in order, each acknowledged. */
static void big_file_in_chunks(void **state)
{
    struct dt *t = *state;
    char text[8192] = "id,name\n", rows[8192] = "";
    size_t len = strlen(text), rlen = 0;

    for (int i = 1; i <= 200; i++) {
        len += (size_t)snprintf(text + len, sizeof(text) - len, "%d,name-%03d\n", i, i);
        rlen += (size_t)snprintf(rows + rlen, sizeof(rows) - rlen, "%d,name-%03d\n", i, i);
    }
    nf_write(t->drop, "big.csv", text);
    start(t, "max_body = 600", "settle = 0\nsplit = csv", true);
    nf_run_until(&t->nf, is_stopped, t);
    assert_int_equal(t->sum.delivered, 1);
    uint64_t runs = nf_stats(&t->nf).runs;
    assert_true(runs >= 5);
    assert_int_equal(t->sum.chunks, runs);
    /* Each chunk is the header and the rows that follow the previous chunk's. */
    char *all = all_payloads(t), joined[8192] = "";
    size_t jlen = 0;
    assert_int_equal(nf_count(all, "id,name\n"), runs);
    for (char *p = all, *h; (h = strstr(p, "id,name\n")); p = h + 8) {
        char *next = strstr(h + 8, "id,name\n");
        size_t n = next ? (size_t)(next - h - 8) : strlen(h + 8);
        memcpy(joined + jlen, h + 8, n);
        jlen += n;
    }
    joined[jlen] = '\0';
    assert_string_equal(joined, rows);
    free(all);
    char *receipt = nf_read(t->archive, "big.csv.receipt.json", NULL);
    assert_int_equal(nf_count(receipt, "\"flow_run_id\""), runs);
    free(receipt);
}

/* A 422 puts the file in the failed folder with an error file saying why. */
static void refused_to_failed(void **state)
{
    struct dt *t = *state;

    nf_script(&t->nf, "422");
    nf_write(t->drop, "bad.json", "[{\"id\":1}]");
    start(t, NULL, "settle = 0", true);
    nf_run_until(&t->nf, is_stopped, t);
    assert_int_equal(t->sum.rejected, 1);
    assert_int_equal(t->sum.delivered, 0);
    assert_true(nf_exists(t->failed, "bad.json"));
    assert_false(nf_exists(t->archive, "bad.json"));
    char *error = nf_read(t->failed, "bad.json.error.json", NULL);
    assert_contains(error, "422");
    free(error);
    assert_int_equal(nf_stats(&t->nf).start_flow, 1);
    assert_int_equal(files(t, PD_METRICS_REJECTED), 1);
}

/* A 413 cuts the file smaller and sends it again: every row arrives once, in order. */
static void too_big_recut(void **state)
{
    struct dt *t = *state;
    char text[4096] = "[", want[4096] = "";

    for (int i = 1; i <= 40; i++) {
        size_t n = strlen(text);
        snprintf(text + n, sizeof(text) - n, "%s{\"id\":%d,\"pad\":\"%040d\"}", i > 1 ? "," : "", i,
                 i);
    }
    strcat(text, "]");
    nf_script(&t->nf, "413");
    nf_write(t->drop, "orders.json", text);
    start(t, NULL, "settle = 0\nsplit = json", true);
    nf_run_until(&t->nf, is_stopped, t);
    assert_int_equal(t->sum.delivered, 1);
    struct pd_mock_stats s = nf_stats(&t->nf);
    assert_int_equal(s.start_flow, s.runs + 1); /* the refused one, then the smaller ones */
    assert_true(s.runs >= 2);
    char *all = all_payloads(t);
    /* The ids in the order they arrived. */
    char got[4096] = "";
    for (const char *p = strstr(all, "\"id\":"); p; p = strstr(p + 1, "\"id\":")) {
        size_t n = strlen(got);
        snprintf(got + n, sizeof(got) - n, "%d,", atoi(p + 5));
    }
    for (int i = 1; i <= 40; i++) {
        size_t n = strlen(want);
        snprintf(want + n, sizeof(want) - n, "%d,", i);
    }
    assert_string_equal(got, want);
    free(all);
    char *log = nf_log_text(&t->nf);
    assert_contains(log, "new_max_body=");
    free(log);
}

/* batch = 3: three small files go in one request; a fourth waits for the batch window, which
 * the injected clock measures. */
static void batching(void **state)
{
    struct dt *t = *state;

    start(t, NULL, "settle = 0\nbatch = 3\nbatch_window = 1h", false);
    for (int i = 1; i <= 3; i++) {
        char name[32], text[64];
        snprintf(name, sizeof(name), "a%d.json", i);
        snprintf(text, sizeof(text), "[{\"id\":%d}]", i);
        nf_write(t->drop, name, text);
    }
    t->want = 3;
    nf_run_until(&t->nf, archived, t);
    assert_int_equal(nf_stats(&t->nf).start_flow, 1);
    char *p = payload(t, 1);
    for (int i = 1; i <= 3; i++) {
        char id[32];
        snprintf(id, sizeof(id), "\"id\":%d", i);
        assert_contains(p, id);
    }
    assert_int_equal(p[0], '[');
    free(p);
    char *receipt = nf_read(t->archive, "a2.json.receipt.json", NULL);
    assert_contains(receipt, "\"request_id\"");
    free(receipt);

    /* Alone in its batch: it waits for the window, however often the daemon wakes. */
    nf_write(t->drop, "a4.json", "[{\"id\":4}]");
    t->line = "file=a4.json from=prepare to=batched";
    nf_run_until(&t->nf, logged, t);
    nf_run_for(&t->nf, LONGEST_SLEEP_MS);
    t->want = 4;
    assert_int_equal(nf_stats(&t->nf).start_flow, 1);
    assert_int_equal(receipts(t), 3);
    nf_advance(&t->nf, 3600000);
    nf_run_until(&t->nf, archived, t);
    assert_int_equal(nf_stats(&t->nf).start_flow, 2);
}

/* --once: everything present is handled, then the daemon stops by itself. */
static void once_drains(void **state)
{
    struct dt *t = *state;

    for (int i = 1; i <= 5; i++) {
        char name[32], text[64];
        snprintf(name, sizeof(name), "f%d.xml", i);
        snprintf(text, sizeof(text), "<orders><order id=\"%d\"/></orders>\n", i);
        nf_write(t->drop, name, text);
    }
    nf_script(&t->nf, "503:0,500");
    start(t, NULL, "settle = 0", true);
    nf_run_until(&t->nf, is_stopped, t);
    assert_int_equal(t->sum.delivered, 5);
    assert_int_equal(t->sum.rejected + t->sum.stuck + t->sum.duplicates, 0);
    assert_int_equal(t->sum.chunks, 5);
    struct pd_mock_stats s = nf_stats(&t->nf);
    assert_int_equal(s.runs, 5);
    assert_int_equal(s.start_flow, 7); /* two were retried */
    t->want = 5;
    assert_true(archived(t));
    DIR *dir = opendir(t->work);
    struct dirent *de;
    assert_non_null(dir);
    while ((de = readdir(dir)))
        if (de->d_name[0] != '.')
            fail_msg("left in work/: %s", de->d_name);
    closedir(dir);
}

/*
 * Files left in work/ by a crash are resumed as slots free, before any new claim: a restart
 * holds no more files at once than a running daemon (2 x concurrency, or the watch's
 * max_jobs), so no more chunks can be acknowledged and not yet recorded at the next kill.
 */
static void orphans_resume_within_slots(void **state)
{
    struct dt *t = *state;
    char pd[160];

    snprintf(pd, sizeof(pd), "%s/drop.pd", t->nf.dir);
    assert_int_equal(mkdir(pd, 0700), 0);
    assert_int_equal(mkdir(t->work, 0700), 0);
    for (int i = 0; i < 10; i++) {
        char name[32], text[64];
        snprintf(name, sizeof(name), "left%d.xml", i);
        snprintf(text, sizeof(text), "<orders><order id=\"L%d\"/></orders>\n", i);
        nf_write(t->work, name, text);
    }
    for (int i = 0; i < 3; i++) {
        char name[32], text[64];
        snprintf(name, sizeof(name), "new%d.xml", i);
        snprintf(text, sizeof(text), "<orders><order id=\"N%d\"/></orders>\n", i);
        nf_write(t->drop, name, text);
    }
    start(t, NULL, "settle = 0\nmax_jobs = 2", true);
    nf_run_until(&t->nf, is_stopped, t);
    assert_int_equal(t->sum.delivered, 13);
    assert_int_equal(nf_stats(&t->nf).runs, 13);
    /* Slots held at once, from the traced steps: a job takes one at its first step and gives
     * it back when it ends or, its last acknowledgement on disk, starts archiving. */
    char *log = nf_log_text(&t->nf);
    int now = 0, most = 0, started_before_claim = -1;
    for (char *line = strtok(log, "\n"); line; line = strtok(NULL, "\n")) {
        if (strstr(line, "event=claimed") && started_before_claim < 0)
            started_before_claim = now;
        if (strstr(line, "event=job_step") && strstr(line, "from=prepare to=prepare"))
            now++;
        if (strstr(line, "event=job_step") && strstr(line, " to=finish_ok"))
            now--;
        if (strstr(line, "event=job_step") && strstr(line, " to=ended") &&
            !strstr(line, "from=finish_ok"))
            now--;
        most = now > most ? now : most;
    }
    free(log);
    assert_int_equal(now, 0);
    assert_true(most >= 1);
    if (most > 2)
        fail_msg("%d files held a slot at once; max_jobs = 2", most);
    /* The files found in work/ went first: the drop folder's waited for their slots. */
    assert_true(started_before_claim >= 0 && started_before_claim <= 2);
}

/* A JSON array of N elements DIGIT, written with an mtime SECONDS after the epoch's (the
 * claim order: oldest first). */
static void write_digits(struct dt *t, const char *name, int n, char digit, time_t seconds)
{
    char text[1024], path[256];
    size_t len = 0;
    text[len++] = '[';
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(text + len, sizeof(text) - len, i ? ",%c" : "%c", digit);
    snprintf(text + len, sizeof(text) - len, "]");
    nf_write(t->drop, name, text);
    snprintf(path, sizeof(path), "%s/%s", t->drop, name);
    struct timespec ts[2] = {{.tv_sec = seconds}, {.tv_sec = seconds}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

/* Flow run RUN's payload: a JSON array of `large` 2s then `small` 1s. */
static void expect_large_then_small(struct dt *t, uint64_t run, size_t large, size_t small)
{
    char *p = payload(t, run);
    size_t len = strlen(p), twos = 0, ones = 0;
    for (size_t i = 0; i < len; i++) {
        twos += p[i] == '2';
        ones += p[i] == '1';
    }
    assert_int_equal(p[0], '[');
    assert_int_equal(p[len - 1], ']');
    assert_null(strstr(p, "]["));
    assert_int_equal(twos, large);
    assert_int_equal(ones, small);
    assert_true(!small || !large || strchr(p, '2') < strchr(p, '1'));
    free(p);
}

/* batch = N packs first fit: a file that does not fit one open body goes into another of its
 * kind. Two large files and two small ones, one at a time in that order, where a body holds
 * one large and one small: next fit sends 3 bodies ([L1] [L2 S1] [S2]), first fit 2. */
static void batching_first_fit(void **state)
{
    struct dt *t = *state;

    /* Bodies: {"payload":"[" + elements + "]"}: L+S 1,015 bytes, L+L 1,215, S+S+L 1,416. */
    start(t, "max_body = 1100", "settle = 0\nmax_jobs = 1\nbatch = 10\nbatch_window = 1h", false);
    write_digits(t, "l1.json", 300, '2', 1);
    write_digits(t, "l2.json", 300, '2', 2);
    write_digits(t, "s1.json", 200, '1', 3);
    write_digits(t, "s2.json", 200, '1', 4);
    t->line = "file=s2.json from=prepare to=batched";
    nf_run_until(&t->nf, logged, t);
    assert_int_equal(nf_stats(&t->nf).start_flow, 0);
    nf_advance(&t->nf, 3600000);
    t->want = 4;
    nf_run_until(&t->nf, archived, t);
    assert_int_equal(nf_stats(&t->nf).start_flow, 2);
    /* One large and one small file in each body, each whole, in one array. */
    expect_large_then_small(t, 1, 300, 200);
    expect_large_then_small(t, 2, 300, 200);
}

/* Files ready together are packed larger first: two small files and two large ones, all four
 * prepared at once, whatever order they come in: two bodies, each a large file then a small
 * one (first fit in the order S S L L would send 3: [S S] [L] [L]). */
static void batching_larger_first(void **state)
{
    struct dt *t = *state;

    write_digits(t, "s1.json", 200, '1', 1);
    write_digits(t, "s2.json", 200, '1', 2);
    write_digits(t, "l1.json", 300, '2', 3);
    write_digits(t, "l2.json", 300, '2', 4);
    start(t, "max_body = 1100", "settle = 0\nmax_jobs = 4\nbatch = 10\nbatch_window = 1h", true);
    nf_run_until(&t->nf, is_stopped, t);
    assert_int_equal(t->sum.delivered, 4);
    assert_int_equal(nf_stats(&t->nf).start_flow, 2);
    expect_large_then_small(t, 1, 300, 200);
    expect_large_then_small(t, 2, 300, 200);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(claimed_after_settle, setup, teardown),
        cmocka_unit_test_setup_teardown(big_file_in_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(refused_to_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(too_big_recut, setup, teardown),
        cmocka_unit_test_setup_teardown(batching, setup, teardown),
        cmocka_unit_test_setup_teardown(once_drains, setup, teardown),
        cmocka_unit_test_setup_teardown(orphans_resume_within_slots, setup, teardown),
        cmocka_unit_test_setup_teardown(idle_sleeps, setup, teardown),
        cmocka_unit_test_setup_teardown(wakes_when_settled, setup, teardown),
        cmocka_unit_test_setup_teardown(settle_from_last_change, setup, teardown),
        cmocka_unit_test_setup_teardown(batching_first_fit, setup, teardown),
        cmocka_unit_test_setup_teardown(batching_larger_first, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
