/* The shared fixture of the tests that talk to the in-process emulator (net_fixture.h). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "net_fixture.h"

#include "pd_config.h"
#include "pd_log.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t fake_mono(void *arg)
{
    return atomic_load(&((struct net_fixture *)arg)->mono);
}

static uint64_t fake_wall(void *arg)
{
    return atomic_load(&((struct net_fixture *)arg)->wall);
}

static uint32_t fake_random(void *arg)
{
    (void)arg;
    return 0;
}

void nf_setup(struct net_fixture *f, uint64_t max_body)
{
    struct pd_mock_options mo;
    struct timespec ts;
    char *err = NULL;

    memset(f, 0, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/pd-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->rec, sizeof(f->rec), "%s/rec", f->dir);
    snprintf(f->conf, sizeof(f->conf), "%s/c.conf", f->dir);
    assert_int_equal(mkdir(f->rec, 0700), 0);
    pd_mock_options_init(&mo);
    mo.user = NF_USER;
    mo.password = NF_PASSWORD;
    mo.record_dir = f->rec;
    if (max_body)
        mo.max_body = max_body;
    mo.quiet = getenv("PD_TEST_VERBOSE") == NULL;
    if (pd_mock_create(&mo, &f->mock, &err) != 0)
        fail_msg("emulator: %s", err ? err : "?");
    snprintf(f->url, sizeof(f->url), "http://127.0.0.1:%u", (unsigned)pd_mock_port(f->mock));
    /* The wall clock starts at the real time: files' mtimes are real, and min_age compares. */
    clock_gettime(CLOCK_REALTIME, &ts);
    atomic_store(&f->wall, (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u);
    atomic_store(&f->mono, 1000000);
    f->clock = (struct pd_clock){fake_mono, fake_wall, fake_random, f};
    assert_int_equal(uv_loop_init(&f->loop), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->guard), 0);
    assert_int_equal(uv_timer_init(&f->loop, &f->poll), 0);
    f->guard.data = f;
    f->log = tmpfile();
    assert_non_null(f->log);
    pd_log_set_output(f->log);
    pd_log_set_clock(&f->clock);
    pd_log_set_repeat_window(0);
    pd_log_set_level(PD_LOG_DEBUG);
}

void nf_teardown(struct net_fixture *f)
{
    char cmd[128];

    uv_close((uv_handle_t *)&f->guard, NULL);
    uv_close((uv_handle_t *)&f->poll, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    pd_mock_destroy(&f->mock);
    pd_log_set_output(NULL);
    pd_log_set_clock(NULL);
    pd_log_set_level(PD_LOG_INFO);
    if (getenv("PD_TEST_VERBOSE")) {
        char *text = nf_log_text(f);
        fputs(text, stderr);
        free(text);
    }
    fclose(f->log);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    assert_int_equal(system(cmd), 0);
}

void nf_advance(struct net_fixture *f, uint64_t ms)
{
    atomic_fetch_add(&f->mono, ms);
    atomic_fetch_add(&f->wall, ms);
}

static void on_guard(uv_timer_t *t)
{
    ((struct net_fixture *)t->data)->timed_out = true;
}

static void on_poll(uv_timer_t *t)
{
    (void)t; /* only wakes the loop, so the condition is looked at */
}

void nf_run_until(struct net_fixture *f, bool (*done)(void *arg), void *arg)
{
    f->timed_out = false;
    uv_timer_start(&f->guard, on_guard, NF_GUARD_MS, 0);
    uv_timer_start(&f->poll, on_poll, 5, 5);
    while (!done(arg) && !f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->guard);
    uv_timer_stop(&f->poll);
    if (f->timed_out) {
        /* cmocka cuts a failure message short: the log goes out whole first. */
        char *text = nf_log_text(f);
        fprintf(stderr, "not done within %d ms; the log:\n%s\n", NF_GUARD_MS, text);
        free(text);
        fail_msg("not done within %d ms (the log is above)", NF_GUARD_MS);
    }
}

void nf_run_for(struct net_fixture *f, uint64_t ms)
{
    f->timed_out = false;
    uv_timer_start(&f->guard, on_guard, ms, 0);
    while (!f->timed_out)
        uv_run(&f->loop, UV_RUN_ONCE);
}

void nf_script(struct net_fixture *f, const char *list)
{
    char *err = NULL;
    if (pd_mock_script_set(f->mock, list, &err) != 0)
        fail_msg("script %s: %s", list, err ? err : "?");
}

struct pd_mock_stats nf_stats(struct net_fixture *f)
{
    struct pd_mock_stats s;
    pd_mock_stats(f->mock, &s);
    return s;
}

struct pd_config *nf_config(struct net_fixture *f, const char *pw_extra, const char *watch)
{
    struct pd_config *cfg = NULL;
    char *errors = NULL, drop[128];
    FILE *out = fopen(f->conf, "w");

    assert_non_null(out);
    assert_int_equal(fchmod(fileno(out), 0600), 0);
    fprintf(out,
            "[patchworks]\nemail = " NF_USER "\npassword = " NF_PASSWORD "\n"
            "login_url = %s/api/v1/login\nstart_url = %s/api/v1\ncore_url = %s/api/v1\n"
            "lookups_url = %s/core-main/api/v1\nrate_limit = 100000\nconcurrency = 4\n"
            "retry_base = 50ms\nretry_cap = 500ms\ntimeout = 10s\n%s\n[state]\ndir = %s/state\n",
            f->url, f->url, f->url, f->lookups[0] ? f->lookups : f->url, pw_extra ? pw_extra : "",
            f->dir);
    if (watch) {
        snprintf(drop, sizeof(drop), "%s/drop", f->dir);
        if (mkdir(drop, 0755) != 0)
            assert_true(nf_exists(f->dir, "drop"));
        fprintf(out,
                "[watch:drop]\npath = %s\nwork_dir = %s.pd\nflow_id = 42\nversion_id = 7\nfollow = no\n"
                "rescan = 1s\n%s\n",
                drop, drop, watch);
    }
    assert_int_equal(fclose(out), 0);
    if (pd_config_load(f->conf, &cfg, &errors) != 0)
        fail_msg("config: %s", errors ? errors : "?");
    free(errors);
    return cfg;
}

char *nf_read(const char *dir, const char *name, size_t *len)
{
    char path[512];
    struct stat st;
    char *buf;
    int fd;

    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if ((fd = open(path, O_RDONLY)) < 0)
        return NULL;
    if (fstat(fd, &st) || !(buf = malloc((size_t)st.st_size + 1))) {
        close(fd);
        return NULL;
    }
    ssize_t n = read(fd, buf, (size_t)st.st_size);
    close(fd);
    if (n != st.st_size) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    if (len)
        *len = (size_t)n;
    return buf;
}

void nf_write(const char *dir, const char *name, const char *text)
{
    char path[512], tmp[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    snprintf(tmp, sizeof(tmp), "%s.nf-tmp", dir); /* beside DIR, on its file system */
    FILE *out = fopen(tmp, "w");
    assert_non_null(out);
    fputs(text, out);
    assert_int_equal(fclose(out), 0);
    assert_int_equal(rename(tmp, path), 0);
}

bool nf_exists(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    return lstat(path, &st) == 0;
}

size_t nf_count(const char *hay, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

char *nf_log_text(struct net_fixture *f)
{
    struct stat st;
    char *buf;

    fflush(f->log);
    if (fstat(fileno(f->log), &st) || !(buf = calloc(1, (size_t)st.st_size + 1)))
        return strdup("");
    if (pread(fileno(f->log), buf, (size_t)st.st_size, 0) < 0)
        buf[0] = '\0';
    return buf;
}
