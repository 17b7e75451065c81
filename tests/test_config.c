/* Unit tests of the config file: every value syntax and every error path. */
#include "testlib.h"

#include "pd_config.h"
#include "pd_error.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const tmpdir = pd_test_dir;

/* A temporary folder with drop/ in it; no secrets from the environment. */
static int setup(void **state)
{
    pd_test_setup(state);
    assert_int_equal(mkdir(pd_test_path(tmpdir, "drop"), 0700), 0);
    unsetenv("PATCHDROP_PASSWORD");
    unsetenv("PATCHDROP_API_KEY");
    return 0;
}

/* Writes TEXT to NAME in the temp folder with MODE; returns the path (static buffer). */
static const char *write_file(const char *name, const char *text, mode_t mode)
{
    static char path[400];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    pd_test_write(path, text);
    chmod(path, mode);
    return path;
}

#define GOOD_PW "[patchworks]\nemail = ops@example.com\npassword = s3cret\n"
#define GOOD_WATCH "[watch:orders]\npath = drop\nflow_id = 123\n"

/* Loads TEXT and expects failure with an error containing NEEDLE at LINE (0: any line). */
static void expect_error(const char *text, int line, const char *needle)
{
    const char *path = write_file("c.conf", text, 0600);
    struct pd_config *cfg = NULL;
    char *errors = NULL;
    char want[600];
    int rc = pd_config_load(path, &cfg, &errors);

    assert_int_equal(rc, PD_ECONFIG);
    assert_null(cfg);
    assert_non_null(errors);
    if (line)
        snprintf(want, sizeof(want), "%s:%d: ", path, line);
    else
        snprintf(want, sizeof(want), "%s", path);
    if (!strstr(errors, want) || !strstr(errors, needle)) {
        print_error("expected '%s' and '%s' in:\n%s\n", want, needle, errors);
        fail();
    }
    /* Never the secret, whatever went wrong. */
    assert_null(strstr(errors, "s3cret"));
    free(errors);
}

/*
 * Loads TEXT and expects exactly one problem, at LINE, containing NEEDLE and not AVOID (when
 * not NULL): one mistake, one message.
 */
static void expect_one_error(const char *text, int line, const char *needle, const char *avoid)
{
    const char *path = write_file("c.conf", text, 0600);
    struct pd_config *cfg = NULL;
    char *errors = NULL;
    char want[600];
    size_t lines = 0;

    assert_int_equal(pd_config_load(path, &cfg, &errors), PD_ECONFIG);
    assert_non_null(errors);
    for (const char *c = errors; *c; c++)
        lines += *c == '\n';
    snprintf(want, sizeof(want), "%s:%d: ", path, line);
    if (lines != 1 || !strstr(errors, want) || !strstr(errors, needle) ||
        (avoid && strstr(errors, avoid))) {
        print_error("expected one problem at '%s' with '%s'%s%s, got:\n%s\n", want, needle,
                    avoid ? " and without " : "", avoid ? avoid : "", errors);
        fail();
    }
    free(errors);
}

static struct pd_config *expect_ok(const char *text)
{
    const char *path = write_file("c.conf", text, 0600);
    struct pd_config *cfg = NULL;
    char *errors = NULL;
    int rc = pd_config_load(path, &cfg, &errors);
    if (rc) {
        print_error("unexpected errors:\n%s\n", errors ? errors : "(none)");
        fail();
    }
    assert_null(errors);
    return cfg;
}

static void test_durations(void **state)
{
    uint64_t ms;
    assert_int_equal(pd_parse_duration("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(pd_parse_duration("2s", &ms), 0);
    assert_int_equal(ms, 2000);
    assert_int_equal(pd_parse_duration("5m", &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(pd_parse_duration("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(pd_parse_duration("7d", &ms), 0);
    assert_int_equal(ms, 604800000);
    assert_int_equal(pd_parse_duration("30", &ms), 0);
    assert_int_equal(ms, 30000);
    assert_int_equal(pd_parse_duration("1.5s", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(pd_parse_duration("2 s", &ms), 0);
    assert_int_equal(ms, 2000);
    assert_int_equal(pd_parse_duration("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(pd_parse_duration("", &ms), PD_ECONFIG);
    assert_int_equal(pd_parse_duration("s", &ms), PD_ECONFIG);
    assert_int_equal(pd_parse_duration("-1s", &ms), PD_ECONFIG);
    assert_int_equal(pd_parse_duration("5 parsecs", &ms), PD_ECONFIG);
    assert_int_equal(pd_parse_duration("5sm", &ms), PD_ECONFIG);
    assert_int_equal(pd_parse_duration("1e400", &ms), PD_ECONFIG);
}

static void test_sizes(void **state)
{
    uint64_t b;
    assert_int_equal(pd_parse_size("8000000", &b), 0);
    assert_int_equal(b, 8000000);
    assert_int_equal(pd_parse_size("8MB", &b), 0);
    assert_int_equal(b, 8000000);
    assert_int_equal(pd_parse_size("64kB", &b), 0);
    assert_int_equal(b, 64000);
    assert_int_equal(pd_parse_size("64KB", &b), 0);
    assert_int_equal(b, 64000);
    assert_int_equal(pd_parse_size("8 MiB", &b), 0);
    assert_int_equal(b, 8388608);
    assert_int_equal(pd_parse_size("1KiB", &b), 0);
    assert_int_equal(b, 1024);
    assert_int_equal(pd_parse_size("2GiB", &b), 0);
    assert_int_equal(b, 2147483648ULL);
    assert_int_equal(pd_parse_size("1GB", &b), 0);
    assert_int_equal(b, 1000000000);
    assert_int_equal(pd_parse_size("7.5MiB", &b), 0);
    assert_int_equal(b, 7864320);
    assert_int_equal(pd_parse_size("100B", &b), 0);
    assert_int_equal(b, 100);
    assert_int_equal(pd_parse_size("1.5", &b), PD_ECONFIG); /* a fraction of a byte */
    assert_int_equal(pd_parse_size("8mb", &b), PD_ECONFIG); /* millibits are not a thing */
    assert_int_equal(pd_parse_size("MB", &b), PD_ECONFIG);
    assert_int_equal(pd_parse_size("-5", &b), PD_ECONFIG);
    assert_int_equal(pd_parse_size("99999999999GiB", &b), PD_ECONFIG);
}

static void test_bools(void **state)
{
    bool v;
    const char *yes[] = {"yes", "YES", "true", "on", "1"};
    const char *no[] = {"no", "False", "off", "0"};
    for (size_t i = 0; i < 5; i++) {
        v = false;
        assert_int_equal(pd_parse_bool(yes[i], &v), 0);
        assert_true(v);
    }
    for (size_t i = 0; i < 4; i++) {
        v = true;
        assert_int_equal(pd_parse_bool(no[i], &v), 0);
        assert_false(v);
    }
    assert_int_equal(pd_parse_bool("maybe", &v), PD_ECONFIG);
    assert_int_equal(pd_parse_bool("", &v), PD_ECONFIG);
}

static void test_defaults_and_values(void **state)
{
    struct pd_config *cfg = expect_ok(GOOD_PW GOOD_WATCH);
    char want[400];

    assert_int_equal(cfg->pw.auth, PD_AUTH_PASSWORD);
    assert_string_equal(cfg->pw.password, "s3cret");
    assert_string_equal(cfg->pw.login_url, "https://svc-fabric.pwks.co/api/v1/login");
    assert_int_equal(cfg->pw.login_field, PD_LOGIN_EMAIL);
    assert_string_equal(cfg->pw.start_url, "https://start.wearepatchworks.com/api/v1");
    assert_int_equal(cfg->pw.max_body, 8000000);
    assert_int_equal(cfg->pw.rate_limit, 240);
    assert_int_equal(cfg->pw.concurrency, 4);
    assert_int_equal(cfg->pw.timeout_ms, 60000);
    assert_true(cfg->pw.tls_verify);
    assert_int_equal(cfg->pw.retry_base_ms, 1000);
    assert_int_equal(cfg->pw.retry_cap_ms, 300000);
    assert_int_equal(cfg->pw.max_retry_time_ms, 5 * 86400000ULL); /* as a mail queue: 5 days */
    assert_string_equal(cfg->state.dir, "/var/lib/patchdrop");
    assert_int_equal(cfg->nwatches, 1);
    const struct pd_watch *w = pd_config_watch(cfg, "orders");
    assert_non_null(w);
    assert_null(pd_config_watch(cfg, "other"));
    /* Relative paths are taken from the config file's folder. */
    snprintf(want, sizeof(want), "%s/drop", tmpdir);
    assert_string_equal(w->path, want);
    /* patchdrop's own folder is outside the drop folder: in the state dir when that is on the
     * drop folder's file system, else beside the drop folder. */
    struct stat a, b;
    char own[300];
    if (stat("/var/lib/patchdrop", &a) && stat("/var/lib", &a))
        a.st_dev = (dev_t)-2;
    assert_int_equal(stat(w->path, &b), 0);
    if (a.st_dev == b.st_dev)
        snprintf(own, sizeof(own), "/var/lib/patchdrop/watches/orders");
    else
        snprintf(own, sizeof(own), "%s/.patchdrop-drop", tmpdir);
    assert_string_equal(w->work_dir, own);
    snprintf(want, sizeof(want), "%s/archive", own);
    assert_string_equal(w->archive_dir, want);
    snprintf(want, sizeof(want), "%s/failed", own);
    assert_string_equal(w->failed_dir, want);
    assert_string_equal(w->flow_id, "123");
    assert_null(w->version_id);
    assert_int_equal(w->split, PD_SPLIT_AUTO);
    assert_int_equal(w->settle_ms, 2000);
    assert_int_equal(w->header_lines, 1);
    assert_int_equal(w->rescan_ms, 30000);
    assert_false(w->poll);
    assert_false(w->recursive);
    assert_int_equal(w->min_age_ms, 0);
    assert_string_equal(w->include, "*");
    assert_string_equal(w->exclude, "*.part *.filepart *.tmp .* ~*");
    assert_null(w->done_marker);
    assert_false(w->ordered);
    assert_int_equal(w->dedupe_ms, 0);
    assert_int_equal(cfg->daemon.shutdown_grace_ms, 30000);
    pd_config_destroy(&cfg);
    assert_null(cfg);
    pd_config_destroy(&cfg); /* NULL is a no-op */
}

static void test_every_key_set(void **state)
{
    struct pd_config *cfg =
        expect_ok("; a comment\n# another\n"
                  "[patchworks]\n"
                  "  email = ops@example.com   ; indented keys are fine\n"
                  "password = s3cret\n"
                  "login_url = http://127.0.0.1:8080/fabric/api/login/\n"
                  "login_field = username\n"
                  "start_url = http://127.0.0.1:8080/api/v1\n"
                  "core_url = http://127.0.0.1:8080/api/v1\n"
                  "lookups_url = http://127.0.0.1:8080/core-main/api/v1\n"
                  "max_body = 7.5MiB\n"
                  "rate_limit = 120\n"
                  "concurrency = 8\n"
                  "timeout = 90s\n"
                  "ca_file = /etc/ssl/certs/ca-certificates.crt\n"
                  "tls_verify = no\n"
                  "retry_base = 250ms\n"
                  "retry_cap = 1m\n"
                  "max_retry_time = 2h\n"
                  "[state]\n"
                  "dir = state\n"
                  "[watch:orders]\n"
                  "path = drop\n"
                  "flow_id = 123\n"
                  "version_id = 456\n"
                  "split = XML\n"
                  "xml_record = Order\n"
                  "json_array = /orders\n"
                  "header_lines = 2\n"
                  "encoding = windows-1252\n"
                  "settle = 500ms\n"
                  "archive_dir = /tmp/arch\n"
                  "failed_dir = failed\r\n"
                  "rescan = 5s\npoll = yes\nrecursive = on\nmin_age = 1m\ninclude = *.xml *.csv\n"
                  "exclude = *.part\ndone_marker = {name}.ok\nordered = yes\ndedupe = 7d\n"
                  "[daemon]\nshutdown_grace = 10s\n");
    char want[400];

    assert_string_equal(cfg->pw.email, "ops@example.com");
    assert_string_equal(cfg->pw.login_url, "http://127.0.0.1:8080/fabric/api/login");
    assert_int_equal(cfg->pw.login_field, PD_LOGIN_USERNAME);
    assert_int_equal(cfg->pw.max_body, 7864320);
    assert_int_equal(cfg->pw.rate_limit, 120);
    assert_int_equal(cfg->pw.concurrency, 8);
    assert_int_equal(cfg->pw.timeout_ms, 90000);
    assert_false(cfg->pw.tls_verify);
    assert_int_equal(cfg->pw.retry_base_ms, 250);
    assert_int_equal(cfg->pw.retry_cap_ms, 60000);
    assert_int_equal(cfg->pw.max_retry_time_ms, 7200000);
    snprintf(want, sizeof(want), "%s/state", tmpdir);
    assert_string_equal(cfg->state.dir, want);
    const struct pd_watch *w = &cfg->watches[0];
    assert_string_equal(w->version_id, "456");
    assert_int_equal(w->split, PD_SPLIT_XML);
    assert_string_equal(w->xml_record, "Order");
    assert_string_equal(w->json_array, "/orders");
    assert_int_equal(w->header_lines, 2);
    assert_string_equal(w->encoding, "windows-1252");
    assert_int_equal(w->settle_ms, 500);
    assert_string_equal(w->archive_dir, "/tmp/arch");
    snprintf(want, sizeof(want), "%s/failed", tmpdir);
    assert_string_equal(w->failed_dir, want); /* CRLF line endings are fine */
    assert_int_equal(w->rescan_ms, 5000);
    assert_true(w->poll);
    assert_true(w->recursive);
    assert_int_equal(w->min_age_ms, 60000);
    assert_string_equal(w->include, "*.xml *.csv");
    assert_string_equal(w->done_marker, "{name}.ok");
    assert_true(w->ordered);
    assert_int_equal(w->dedupe_ms, 7 * 86400000ULL);
    assert_int_equal(cfg->daemon.shutdown_grace_ms, 10000);
    pd_config_destroy(&cfg);
}

static void test_syntax_errors(void **state)
{
    expect_error(GOOD_PW GOOD_WATCH "this is not ini\n", 7, "expected `key = value`");
    expect_error(GOOD_PW "[watch:orders\npath = drop\n", 4, "expected `key = value`");
    expect_error("email = x\n" GOOD_PW GOOD_WATCH, 1, "outside any section");
    char longline[400];
    snprintf(longline, sizeof(longline), GOOD_PW GOOD_WATCH "path = /%0250d\n", 0);
    expect_error(longline, 7, "longer than");
}

static void test_unknown_and_repeated(void **state)
{
    expect_error(GOOD_PW GOOD_WATCH "flowid = 1\n", 7, "unknown key 'flowid'");
    expect_error(GOOD_PW "emial = x\n" GOOD_WATCH, 4, "unknown key 'emial'");
    expect_error(GOOD_PW GOOD_WATCH "[watch]\npath = drop\n", 7, "unknown section [watch]");
    expect_error(GOOD_PW GOOD_WATCH "[metrix]\n", 7, "unknown section [metrix]");
    expect_error(GOOD_PW GOOD_WATCH "[watch:]\n", 7, "needs a name");
    expect_error(GOOD_PW "[daemon]\n[daemon]\n" GOOD_WATCH, 5, "appears again (first at line 4)");
    expect_error(GOOD_PW GOOD_WATCH "flow_id = 9\n", 7, "set again (first at line 6)");
    expect_error(GOOD_PW GOOD_WATCH GOOD_WATCH, 7, "appears again (first at line 4)");
    expect_error(GOOD_PW "[patchworks]\n" GOOD_WATCH, 4, "appears again (first at line 1)");
}

static void test_bad_values(void **state)
{
    expect_error(GOOD_PW "timeout = 5 parsecs\n" GOOD_WATCH, 4, "duration like");
    expect_error(GOOD_PW "timeout = 100ms\n" GOOD_WATCH, 4, "out of range");
    expect_error(GOOD_PW "max_body = lots\n" GOOD_WATCH, 4, "size in bytes");
    expect_error(GOOD_PW "max_body = 10\n" GOOD_WATCH, 4, "out of range");
    expect_error(GOOD_PW "rate_limit = 0\n" GOOD_WATCH, 4, "out of range");
    expect_error(GOOD_PW "rate_limit = 12x\n" GOOD_WATCH, 4, "whole number");
    expect_error(GOOD_PW "rate_limit = -1\n" GOOD_WATCH, 4, "whole number");
    expect_error(GOOD_PW "concurrency = 1000\n" GOOD_WATCH, 4, "out of range");
    expect_error(GOOD_PW "tls_verify = maybe\n" GOOD_WATCH, 4, "yes or no");
    expect_error(GOOD_PW "login_field = mail\n" GOOD_WATCH, 4, "one of email, username");
    expect_error(GOOD_PW "login_url = ftp://x\n" GOOD_WATCH, 4, "http:// or https://");
    expect_error(GOOD_PW "start_url =\n" GOOD_WATCH, 4, "is empty");
    expect_error(GOOD_PW GOOD_WATCH "split = zip\n", 7, "one of auto, json");
    expect_error(GOOD_PW GOOD_WATCH "done_marker = .done\n", 7, "must hold {name}");
    expect_one_error(GOOD_PW GOOD_WATCH "include = ,\n", 7, "holds no glob", NULL);
    expect_error(GOOD_PW GOOD_WATCH "rescan = 1ms\n", 7, "out of range");
    expect_error(GOOD_PW GOOD_WATCH "version_id = 4 5\n", 7, "letters, digits");
    expect_error(GOOD_PW "[watch:orders]\npath = drop\nflow_id = ../x\n", 6, "letters, digits");
    expect_error(GOOD_PW "retry_base = 10s\nretry_cap = 1s\n" GOOD_WATCH, 5, "retry_cap");
}

/* A key that does not parse is reported once; no check between keys repeats it. */
static void test_one_mistake_one_message(void **state)
{
    expect_one_error(GOOD_PW "retry_cap = soon\n" GOOD_WATCH, 4, "retry_cap must be a duration",
                     "shorter than retry_base");
    expect_one_error(GOOD_PW "retry_base = 10 parsecs\nretry_cap = 1s\n" GOOD_WATCH, 4,
                     "retry_base must be a duration", "shorter than retry_base");
    expect_one_error(GOOD_PW "retry_cap = 0\n" GOOD_WATCH, 4, "out of range", "shorter");
    expect_one_error(GOOD_PW "[watch:orders]\npath = drop\nflow_id = ../x\n", 6, "letters, digits",
                     "has no flow_id");
    expect_one_error(GOOD_PW "[watch:orders]\npath = drop\nlookup_id = a b\n", 6, "letters, digits",
                     "has no flow_id");
    expect_one_error(GOOD_PW "[watch:orders]\npath =\nflow_id = 1\n", 5, "path is empty",
                     "has no path");
    expect_one_error(GOOD_PW GOOD_WATCH "work_dir =\n", 7, "work_dir is empty", NULL);
    expect_one_error("[patchworks]\nemail =\npassword = s3cret\n" GOOD_WATCH, 2, "email is empty",
                     "no email");
    expect_one_error("[patchworks]\nemail = a@b\npassword_file =\n" GOOD_WATCH, 3,
                     "password_file is empty", "no password");
    /* Both parsed and disagree: then the check between them speaks. */
    expect_one_error(GOOD_PW "retry_base = 10s\nretry_cap = 1s\n" GOOD_WATCH, 5,
                     "retry_cap is shorter than retry_base", NULL);
}

/* Ranges are written as a user writes the key: 1d, not 86400000ms; 1GB, not 1000000000. */
static void test_ranges_in_natural_units(void **state)
{
    expect_one_error(GOOD_PW "timeout = 100ms\n" GOOD_WATCH, 4, "from 1s to 1d", "ms to");
    expect_one_error(GOOD_PW GOOD_WATCH "rescan = 1ms\n", 7,
                     "rescan = 1ms is out of range: "
                     "from 100ms to 1d",
                     NULL);
    expect_one_error(GOOD_PW "max_retry_time = 400d\n" GOOD_WATCH, 4, "from 0 to 365d", NULL);
    expect_one_error(GOOD_PW GOOD_WATCH "batch_window = 2h\n", 7, "from 0 to 1h", NULL);
    expect_one_error(GOOD_PW "rate_window = 10ms\n" GOOD_WATCH, 4, "from 1s to 1d", NULL);
    expect_one_error(GOOD_PW "max_body = 10\n" GOOD_WATCH, 4, "from 256B to 1GB", NULL);
    expect_one_error(GOOD_PW "max_body = 2GiB\n" GOOD_WATCH, 4, "from 256B to 1GB", NULL);
    expect_one_error(GOOD_PW GOOD_WATCH "max_file_size = 0\n", 7, "out of range: at least 1B",
                     NULL);
    expect_one_error(GOOD_PW "rate_limit = 0\n" GOOD_WATCH, 4, "from 1 to 1000000", NULL);
}

/* An unknown key names the key it most likely misspells, not the whole table. */
static void test_did_you_mean(void **state)
{
    expect_one_error(GOOD_PW GOOD_WATCH "flowid = 1\n", 7,
                     "unknown key 'flowid' in [watch:orders]; did you mean `flow_id`?",
                     "version_id");
    expect_one_error(GOOD_PW "emial = x\n" GOOD_WATCH, 4, "did you mean `email`?", "login_url");
    expect_one_error(GOOD_PW "timout = 5s\n" GOOD_WATCH, 4, "did you mean `timeout`?", NULL);
    expect_one_error(GOOD_PW "timeout_ms = 5000\n" GOOD_WATCH, 4, "did you mean `timeout`?", NULL);
    expect_one_error(GOOD_PW GOOD_WATCH "exclued = *.tmp\n", 7, "did you mean `exclude`?", NULL);
    expect_one_error(GOOD_PW GOOD_WATCH "setle = 1s\n", 7, "did you mean `settle`?", NULL);
    expect_one_error(GOOD_PW "[daemon]\nlog_levle = info\n" GOOD_WATCH, 5,
                     "did you mean `log_level`?", NULL);
    /* A key of another section says where it belongs. */
    expect_one_error(GOOD_PW "flow_id = 1\n" GOOD_WATCH, 4, "flow_id belongs in [watch:NAME]",
                     "did you mean");
    expect_one_error(GOOD_PW GOOD_WATCH "email = a@b\n", 7, "email belongs in [patchworks]", NULL);
    /* Nothing close: no far-fetched guess, and no list of forty keys either. */
    expect_one_error(GOOD_PW GOOD_WATCH "xyzzy = 1\n", 7, "patchdrop.conf(5)", "did you mean");
    expect_one_error(GOOD_PW GOOD_WATCH "ab = 1\n", 7, "unknown key 'ab'", "did you mean");
    /* A section of few keys names them. */
    expect_one_error(GOOD_PW "[state]\nfolder = /x\n" GOOD_WATCH, 5,
                     "unknown key 'folder' in [state]; the keys there are dir", NULL);
}

/* The service keys: [metrics] is off unless listen is set; log settings are enums. */
static void test_service_keys(void **state)
{
    struct pd_config *cfg = NULL;
    char *errors = NULL;
    const char *path = write_file("c.conf", GOOD_PW GOOD_WATCH, 0600);

    assert_int_equal(pd_config_load(path, &cfg, &errors), 0);
    assert_null(cfg->metrics.listen);
    assert_int_equal(cfg->metrics.unhealthy_after_ms, 600000);
    assert_int_equal(cfg->daemon.log_format, 0);
    assert_int_equal(cfg->daemon.log_level, 1);
    pd_config_destroy(&cfg);
    free(errors);

    path = write_file("c.conf",
                      GOOD_PW "[daemon]\nlog_format = json\nlog_level = warn\n[metrics]\n"
                              "listen = [::1]:9465\nunhealthy_after = 30s\n" GOOD_WATCH,
                      0600);
    assert_int_equal(pd_config_load(path, &cfg, &errors), 0);
    assert_string_equal(cfg->metrics.listen, "[::1]:9465");
    assert_int_equal(cfg->metrics.unhealthy_after_ms, 30000);
    assert_int_equal(cfg->daemon.log_format, 1);
    assert_int_equal(cfg->daemon.log_level, 2);
    pd_config_destroy(&cfg);
    free(errors);

    expect_error(GOOD_PW "[metrics]\nlisten = 9465\n" GOOD_WATCH, 5, "address and port like");
    expect_error(GOOD_PW "[metrics]\nlisten = 127.0.0.1:99999\n" GOOD_WATCH, 5,
                 "address and port like");
    expect_error(GOOD_PW "[metrics]\nlisten = example.com:80\n" GOOD_WATCH, 5,
                 "address and port like");
    expect_error(GOOD_PW "[metrics]\nunhealthy_after = 10ms\n" GOOD_WATCH, 5, "out of range");
    expect_error(GOOD_PW "[daemon]\nlog_format = xml\n" GOOD_WATCH, 5, "one of text, json");
    expect_error(GOOD_PW "[daemon]\nlog_level = loud\n" GOOD_WATCH, 5, "one of debug, info");
    expect_error(GOOD_PW "[metrics]\n[metrics]\n" GOOD_WATCH, 5, "appears again");

    assert_int_equal(pd_parse_listen("localhost:0", NULL, NULL), 0);
    assert_int_equal(pd_parse_listen("0.0.0.0:9465", NULL, NULL), 0);
    assert_int_equal(pd_parse_listen("[::1]9465", NULL, NULL), PD_ECONFIG);
    assert_int_equal(pd_parse_listen("127.0.0.1:", NULL, NULL), PD_ECONFIG);
    assert_int_equal(pd_parse_listen(":9465", NULL, NULL), PD_ECONFIG);
}

static void test_watch_errors(void **state)
{
    expect_error(GOOD_PW "[watch:orders]\nflow_id = 1\n", 4, "has no path");
    expect_error(GOOD_PW "[watch:orders]\npath = drop\n", 4, "has no flow_id");
    expect_error(GOOD_PW "[watch:orders]\npath = missing\nflow_id = 1\n", 5,
                 "No such file or directory");
    write_file("afile", "x", 0600);
    expect_error(GOOD_PW "[watch:orders]\npath = afile\nflow_id = 1\n", 5, "is not a folder");
    expect_error(GOOD_PW GOOD_WATCH "[watch:again]\npath = drop\nflow_id = 2\n", 8,
                 "uses the folder of [watch:orders]");
    /* One folder written two ways is still one folder. */
    expect_error(GOOD_PW GOOD_WATCH "[watch:again]\npath = ./drop/\nflow_id = 2\n", 8,
                 "uses the folder of [watch:orders]");
    symlink("drop", strcat(strcpy((char[400]){0}, tmpdir), "/droplink"));
    expect_error(GOOD_PW GOOD_WATCH "[watch:again]\npath = droplink\nflow_id = 2\n", 8,
                 "uses the folder of [watch:orders]");
    /* A folder inside a recursive watch's folder would feed two flows. */
    mkdir(strcat(strcpy((char[400]){0}, tmpdir), "/drop/sub"), 0700);
    expect_error(GOOD_PW GOOD_WATCH "recursive = yes\n[watch:sub]\npath = drop/sub\nflow_id = 2\n",
                 9, "inside the recursive [watch:orders]");
    /* A watch section with no keys at all is still seen. */
    expect_error(GOOD_PW GOOD_WATCH "[watch:empty]\n", 7, "has no path");
}

/* Nothing patchdrop keeps may live where a partner writes (docs/architecture.md). */
static void test_trust_boundary(void **state)
{
    (void)state;
    expect_error(GOOD_PW "[state]\ndir = drop/state\n" GOOD_WATCH, 5, "the state dir");
    expect_error(GOOD_PW "[state]\ndir = .\n" GOOD_WATCH, 5, "holds the drop folder");
    expect_error(GOOD_PW GOOD_WATCH "work_dir = drop/.own\n", 7, "inside the drop folder");
    expect_error(GOOD_PW GOOD_WATCH "archive_dir = drop\n", 7, "is the drop folder");
    expect_error(GOOD_PW GOOD_WATCH "failed_dir = drop/failed\n", 7, "inside the drop folder");
    mkdir(strcat(strcpy((char[400]){0}, tmpdir), "/drop2"), 0700);
    expect_error(GOOD_PW GOOD_WATCH "work_dir = own\n[watch:two]\npath = drop2\nflow_id = 2\n"
                                    "work_dir = own/\n",
                 11, "shares work_dir");
}

static void test_credentials(void **state)
{
    struct pd_config *cfg;

    expect_error(GOOD_WATCH, 0, "no credentials");
    expect_error("[patchworks]\nrate_limit = 10\n" GOOD_WATCH, 1, "no credentials");
    expect_error("[patchworks]\nemail = a@b\n" GOOD_WATCH, 2, "no password");
    expect_error("[patchworks]\npassword = s3cret\n" GOOD_WATCH, 2, "no email");
    expect_error(GOOD_PW "api_key = k\n" GOOD_WATCH, 4, "both email (line 2) and an API key");
    expect_error(GOOD_PW "password_file = pw\n" GOOD_WATCH, 4, "both password (line 3)");
    expect_error("[patchworks]\nemail = a@b\npassword_file = nope\n" GOOD_WATCH, 3,
                 "cannot be opened");

    /* Secret files must not be readable by others, nor empty, and their first line is the
     * secret. Their group may read them: root:patchdrop 0640 is how the service reads a file
     * root writes (the /etc/ssl/private convention). */
    write_file("pw", "s3cret\n", 0644);
    expect_error("[patchworks]\nemail = a@b\npassword_file = pw\n" GOOD_WATCH, 3,
                 "can be read by every user (mode 0644); run chmod o-r");
    write_file("pw", "s3cret\n", 0604);
    expect_error("[patchworks]\nemail = a@b\npassword_file = pw\n" GOOD_WATCH, 3, "chmod o-r");
    write_file("pw", "s3cret\n", 0640);
    cfg = expect_ok("[patchworks]\nemail = a@b\npassword_file = pw\n" GOOD_WATCH);
    assert_string_equal(cfg->pw.password, "s3cret");
    pd_config_destroy(&cfg);
    write_file("key", "k-123\n", 0440);
    cfg = expect_ok("[patchworks]\napi_key_file = key\n" GOOD_WATCH);
    pd_config_destroy(&cfg);
    write_file("pw", "\n", 0600);
    expect_error("[patchworks]\nemail = a@b\npassword_file = pw\n" GOOD_WATCH, 3, "is empty");
    write_file("pw", "s3cret\nignored\n", 0600);
    cfg = expect_ok("[patchworks]\nemail = a@b\npassword_file = pw\n" GOOD_WATCH);
    assert_string_equal(cfg->pw.password, "s3cret");
    assert_non_null(strstr(cfg->pw.secret_source, "password_file"));
    pd_config_destroy(&cfg);

    write_file("key", "k-123\n", 0400);
    cfg = expect_ok("[patchworks]\napi_key_file = key\n" GOOD_WATCH);
    assert_int_equal(cfg->pw.auth, PD_AUTH_API_KEY);
    assert_string_equal(cfg->pw.api_key, "k-123");
    pd_config_destroy(&cfg);

    cfg = expect_ok("[patchworks]\napi_key = inline-key\n" GOOD_WATCH);
    assert_int_equal(cfg->pw.auth, PD_AUTH_API_KEY);
    assert_string_equal(cfg->pw.api_key, "inline-key");
    pd_config_destroy(&cfg);
}

static void test_environment_secrets(void **state)
{
    setenv("PATCHDROP_PASSWORD", "from-env", 1);
    struct pd_config *cfg = expect_ok("[patchworks]\nemail = a@b\n" GOOD_WATCH);
    assert_string_equal(cfg->pw.password, "from-env");
    assert_non_null(strstr(cfg->pw.secret_source, "PATCHDROP_PASSWORD"));
    pd_config_destroy(&cfg);
    /* The file wins over the environment. */
    cfg = expect_ok(GOOD_PW GOOD_WATCH);
    assert_string_equal(cfg->pw.password, "s3cret");
    pd_config_destroy(&cfg);
    unsetenv("PATCHDROP_PASSWORD");

    setenv("PATCHDROP_API_KEY", "env-key", 1);
    cfg = expect_ok("[patchworks]\n" GOOD_WATCH);
    assert_int_equal(cfg->pw.auth, PD_AUTH_API_KEY);
    assert_string_equal(cfg->pw.api_key, "env-key");
    pd_config_destroy(&cfg);
    /* With email configured, the API key in the environment is not used. */
    expect_error("[patchworks]\nemail = a@b\n" GOOD_WATCH, 2, "no password");
    unsetenv("PATCHDROP_API_KEY");
}

static void test_inline_secret_needs_private_file(void **state)
{
    const char *path = write_file("c.conf", GOOD_PW GOOD_WATCH, 0644);
    struct pd_config *cfg = NULL;
    char *errors = NULL;

    assert_int_equal(pd_config_load(path, &cfg, &errors), PD_ECONFIG);
    assert_non_null(strstr(errors, ":3: password is written in this file"));
    assert_non_null(strstr(errors, "chmod o-r"));
    assert_null(strstr(errors, "s3cret"));
    free(errors);

    /* Readable by its group only (root:patchdrop 0640, as the package installs it): fine. */
    path = write_file("c.conf", GOOD_PW GOOD_WATCH, 0640);
    assert_int_equal(pd_config_load(path, &cfg, &errors), 0);
    pd_config_destroy(&cfg);

    /* Without an inline secret, a readable config is fine. */
    write_file("pw", "s3cret\n", 0600);
    path = write_file("c.conf", "[patchworks]\nemail = a@b\npassword_file = pw\n" GOOD_WATCH, 0644);
    assert_int_equal(pd_config_load(path, &cfg, &errors), 0);
    pd_config_destroy(&cfg);
}

static void test_missing_file(void **state)
{
    struct pd_config *cfg = NULL;
    char *errors = NULL;
    char path[400];
    snprintf(path, sizeof(path), "%s/none.conf", tmpdir);
    assert_int_equal(pd_config_load(path, &cfg, &errors), -ENOENT);
    assert_non_null(strstr(errors, "cannot open"));
    free(errors);
    assert_int_equal(pd_config_load(tmpdir, &cfg, &errors), PD_ECONFIG);
    assert_non_null(strstr(errors, "not a regular file"));
    free(errors);
}

static void test_all_errors_reported_in_line_order(void **state)
{
    const char *path = write_file("c.conf",
                                  "[patchworks]\n"
                                  "email = a@b\n"
                                  "timeout = x\n"
                                  "[watch:w]\n"
                                  "path = missing\n"
                                  "bogus = 1\n",
                                  0600);
    struct pd_config *cfg = NULL;
    char *errors = NULL;
    assert_int_equal(pd_config_load(path, &cfg, &errors), PD_ECONFIG);
    const char *l2 = strstr(errors, ":2: ");
    const char *l3 = strstr(errors, ":3: ");
    const char *l4 = strstr(errors, ":4: ");
    const char *l5 = strstr(errors, ":5: ");
    const char *l6 = strstr(errors, ":6: ");
    assert_non_null(l2);
    assert_non_null(l3);
    assert_non_null(l4);
    assert_non_null(l5);
    assert_non_null(l6);
    assert_true(l2 < l3 && l3 < l4 && l4 < l5 && l5 < l6);
    free(errors);
}

static void test_print_masks_secrets(void **state)
{
    struct pd_config *cfg = expect_ok(GOOD_PW GOOD_WATCH "version_id = 7\n");
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    pd_config_print(cfg, mem);
    fclose(mem);
    assert_null(strstr(text, "s3cret"));
    assert_non_null(strstr(text, "password = ********"));
    assert_non_null(strstr(text, "rate_limit = 240"));
    assert_non_null(strstr(text, "timeout = 1m"));
    assert_non_null(strstr(text, "[watch:orders]"));
    assert_non_null(strstr(text, "version_id = 7"));
    assert_non_null(strstr(text, "settle = 2s"));

    /* What check-config prints is itself a valid config (secret re-added). */
    FILE *f = fopen(write_file("printed.conf", "", 0600), "w");
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n"))
        fprintf(f, "%s\n", strstr(line, "password = ") == line ? "password = s3cret" : line);
    fclose(f);
    struct pd_config *again = NULL;
    char *errors = NULL;
    char p2[400];
    snprintf(p2, sizeof(p2), "%s/printed.conf", tmpdir);
    if (pd_config_load(p2, &again, &errors)) {
        print_error("%s\n", errors);
        fail();
    }
    assert_int_equal(again->pw.rate_limit, cfg->pw.rate_limit);
    assert_string_equal(again->watches[0].path, cfg->watches[0].path);
    pd_config_destroy(&again);
    free(text);
    pd_config_destroy(&cfg);
}

static void test_split_format_names(void **state)
{
    int f;
    assert_int_equal(pd_split_format_parse("ndjson", &f), 0);
    assert_int_equal(f, PD_SPLIT_NDJSON);
    assert_string_equal(pd_split_format_name(PD_SPLIT_CSV), "csv");
    assert_int_equal(pd_split_format_parse("yaml", &f), PD_ECONFIG);
}

/* Retention: bounded by default; receipts follow archive_keep; never shorter than their file. */
static void test_retention_keys(void **state)
{
    (void)state;
    struct pd_config *cfg = expect_ok(GOOD_PW GOOD_WATCH);
    const struct pd_watch *w = pd_config_watch(cfg, "orders");
    assert_int_equal(w->archive_keep_ms, 30 * 86400000ULL);
    assert_int_equal(w->receipt_keep_ms, 30 * 86400000ULL); /* the same as archive_keep */
    assert_int_equal(w->archive_max_size, 0);
    assert_int_equal(w->failed_keep_ms, 90 * 86400000ULL);
    pd_config_destroy(&cfg);

    cfg = expect_ok(GOOD_PW GOOD_WATCH "archive_keep = 7d\narchive_max_size = 2GiB\n"
                                       "failed_keep = 0\n");
    w = pd_config_watch(cfg, "orders");
    assert_int_equal(w->archive_keep_ms, 7 * 86400000ULL);
    assert_int_equal(w->receipt_keep_ms, 7 * 86400000ULL); /* follows archive_keep */
    assert_int_equal(w->archive_max_size, 2147483648ULL);
    assert_int_equal(w->failed_keep_ms, 0);
    pd_config_destroy(&cfg);

    cfg = expect_ok(GOOD_PW GOOD_WATCH "receipt_keep = 365d\n");
    assert_int_equal(pd_config_watch(cfg, "orders")->receipt_keep_ms, 365 * 86400000ULL);
    pd_config_destroy(&cfg);
    cfg = expect_ok(GOOD_PW GOOD_WATCH "archive_keep = 0\nreceipt_keep = 1d\n");
    pd_config_destroy(&cfg);

    /* A receipt removed before its file: refused with the fix, once. */
    expect_one_error(GOOD_PW GOOD_WATCH "archive_keep = 30d\nreceipt_keep = 7d\n", 8,
                     "receipt_keep = 7d is shorter than archive_keep = 30d", NULL);
    /* An unparseable receipt_keep is one message, not also a comparison. */
    expect_one_error(GOOD_PW GOOD_WATCH "receipt_keep = soon\n", 7, "must be a duration",
                     "shorter");
}

/* What the follow keys of CFG and its watch "orders" should be. */
struct follow_want {
    const char *run, *logs, *retry, *dashboard;
    uint64_t share;
    bool follow;
    uint64_t first, cap, timeout;
    int on_failure;
    uint64_t retries;
};

static void check_follow(const struct pd_config *cfg, const struct follow_want *f)
{
    const struct pd_watch *w = pd_config_watch(cfg, "orders");
    assert_string_equal(cfg->pw.flow_run_path, f->run);
    assert_string_equal(cfg->pw.flow_run_logs_path, f->logs);
    assert_string_equal(cfg->pw.flow_run_retry_path, f->retry);
    assert_string_equal(cfg->pw.dashboard_url, f->dashboard);
    assert_int_equal(cfg->pw.follow_share, f->share);
    assert_int_equal(w->follow, f->follow);
    assert_int_equal(w->follow_first_ms, f->first);
    assert_int_equal(w->follow_cap_ms, f->cap);
    assert_int_equal(w->follow_timeout_ms, f->timeout);
    assert_int_equal(w->on_flow_failure, f->on_failure);
    assert_int_equal(w->flow_retries, f->retries);
}

/* Following flow runs: defaults, every key, and each bound refused once, at its line. */
static void test_follow_keys(void **state)
{
    (void)state;
    assert_int_equal(mkdir(pd_test_path(tmpdir, "table"), 0700), 0);
    struct pd_config *cfg = expect_ok(GOOD_PW GOOD_WATCH);
    check_follow(cfg, &(struct follow_want){"/flow-runs/{id}", "/flow-runs/{id}/flow-run-logs",
                                            "/flow-runs/{id}/retry",
                                            "https://app.wearepatchworks.com/flow-run-logs/{id}",
                                            25, true, 5000, 300000, 86400000, PD_FLOW_REPORT, 2});
    pd_config_destroy(&cfg);

    cfg =
        expect_ok(GOOD_PW "flow_run_path = /v2/runs/{id}\nflow_run_logs_path = /logs/{id}\n"
                          "flow_run_retry_path = /runs/{id}/again\n"
                          "dashboard_url = http://dash.test/r/{id}\nfollow_share = 100\n" GOOD_WATCH
                          "follow = no\nfollow_first = 100ms\nfollow_cap = 100ms\n"
                          "follow_timeout = 1h\non_flow_failure = retry\nflow_retries = 10\n"
                          "[watch:table]\npath = table\nlookup_id = 5\nfollow = yes\n");
    check_follow(cfg, &(struct follow_want){"/v2/runs/{id}", "/logs/{id}", "/runs/{id}/again",
                                            "http://dash.test/r/{id}", 100, false, 100, 100,
                                            3600000, PD_FLOW_RETRY, 10});
    /* A lookup watch starts no runs: nothing to follow. */
    assert_false(pd_config_watch(cfg, "table")->follow);
    pd_config_destroy(&cfg);
    cfg = expect_ok(GOOD_PW GOOD_WATCH "on_flow_failure = fail\nflow_retries = 0\n");
    assert_int_equal(pd_config_watch(cfg, "orders")->on_flow_failure, PD_FLOW_FAIL);
    pd_config_destroy(&cfg);

    expect_one_error(GOOD_PW "follow_share = 0\n" GOOD_WATCH, 4, "from 1 to 100", NULL);
    expect_one_error(GOOD_PW "follow_share = 101\n" GOOD_WATCH, 4, "from 1 to 100", NULL);
    expect_one_error(GOOD_PW GOOD_WATCH "flow_retries = 11\n", 7, "from 0 to 10", NULL);
    expect_one_error(GOOD_PW GOOD_WATCH "follow_first = 50ms\n", 7, "out of range", "shorter");
    expect_one_error(GOOD_PW GOOD_WATCH "on_flow_failure = ignore\n", 7, "report", NULL);
    expect_one_error(GOOD_PW GOOD_WATCH "follow = maybe\n", 7, "yes or no", NULL);
    /* Between keys: one message naming both, at the later key's line when it was set. */
    expect_one_error(GOOD_PW GOOD_WATCH "follow_first = 1m\nfollow_cap = 30s\n", 8,
                     "follow_cap = 30s is shorter than follow_first = 1m", NULL);
    expect_one_error(GOOD_PW GOOD_WATCH "follow_first = 10m\n", 7,
                     "follow_cap = 5m is shorter than follow_first = 10m", NULL);
    expect_one_error(GOOD_PW GOOD_WATCH "follow_cap = 1m\nfollow_timeout = 1s\n", 8,
                     "follow_timeout = 1s is shorter than follow_first = 5s", NULL);
    expect_one_error(GOOD_PW GOOD_WATCH "follow_first = soon\nfollow_cap = 1s\n", 7,
                     "must be a duration", "shorter");
    /* Templates: a path starting with / holding {id}; the dashboard an http(s) URL with {id}. */
    expect_one_error(GOOD_PW "flow_run_path = flow-runs/{id}\n" GOOD_WATCH, 4,
                     "flow_run_path = flow-runs/{id}: expected a path starting with / holding "
                     "{id}, e.g. /flow-runs/{id}",
                     NULL);
    expect_one_error(GOOD_PW "flow_run_logs_path = /flow-runs/logs\n" GOOD_WATCH, 4,
                     "e.g. /flow-runs/{id}/flow-run-logs", NULL);
    expect_one_error(GOOD_PW "flow_run_retry_path = /r/{id}?x=1\n" GOOD_WATCH, 4,
                     "flow_run_retry_path", NULL);
    expect_one_error(GOOD_PW "dashboard_url = ftp://dash/{id}\n" GOOD_WATCH, 4,
                     "http:// or https://", NULL);
    expect_one_error(GOOD_PW "dashboard_url = https://dash/runs\n" GOOD_WATCH, 4,
                     "dashboard_url = https://dash/runs: expected an http(s) URL holding {id}",
                     NULL);
}

/* The sample config documents every key of the table, so users can find them all. */
static void test_sample_config_documents_every_key(void **state)
{
    char path[512], line[512];
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    snprintf(path, sizeof(path), "%s/conf/patchdrop.conf", PD_SOURCE_DIR);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f))
        fputs(line, mem);
    fclose(f);
    fclose(mem);
    const char *section;
    for (size_t i = 0; pd_config_key_name(i, &section); i++) {
        char want[128], want_commented[128];
        const char *name = pd_config_key_name(i, &section);
        snprintf(want, sizeof(want), "\n%s = ", name);
        snprintf(want_commented, sizeof(want_commented), "\n;%s = ", name);
        if (!strstr(text, want) && !strstr(text, want_commented)) {
            print_error("conf/patchdrop.conf does not document [%s] %s\n", section, name);
            fail();
        }
    }
    free(text);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, test_durations, test_sizes, test_bools, test_split_format_names,
                        test_sample_config_documents_every_key) +
           PD_RUN_TESTS(
               setup, pd_test_teardown, test_defaults_and_values, test_every_key_set,
               test_syntax_errors, test_unknown_and_repeated, test_bad_values, test_watch_errors,
               test_trust_boundary, test_one_mistake_one_message, test_ranges_in_natural_units,
               test_did_you_mean, test_retention_keys, test_follow_keys, test_service_keys,
               test_credentials, test_environment_secrets, test_inline_secret_needs_private_file,
               test_missing_file, test_all_errors_reported_in_line_order, test_print_masks_secrets);
}
