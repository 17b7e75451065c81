/* Unit tests of the cluster's pure parts: the Redis address, the account's fingerprint, key
 * names, the fallback's share, the permit table, and the [cluster] section of the config. */
#include "testlib.h"

#include "pd_cluster.h"
#include "pd_config.h"
#include "pd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void test_parse_url(void **state)
{
    struct pd_redis_addr a;
    char why[512];

    assert_int_equal(pd_cluster_parse_url("redis://10.0.0.5:6380/2", &a, why, sizeof(why)), 0);
    assert_string_equal(a.host, "10.0.0.5");
    assert_int_equal(a.port, 6380);
    assert_int_equal(a.db, 2);
    assert_string_equal(a.path, "");
    assert_int_equal(pd_cluster_parse_url("redis://redis.internal", &a, why, sizeof(why)), 0);
    assert_string_equal(a.host, "redis.internal");
    assert_int_equal(a.port, 6379);
    assert_int_equal(a.db, 0);
    assert_int_equal(pd_cluster_parse_url("redis://[::1]:7000/", &a, why, sizeof(why)), 0);
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 7000);
    assert_int_equal(pd_cluster_parse_url("unix:/run/redis/redis.sock", &a, why, sizeof(why)), 0);
    assert_string_equal(a.path, "/run/redis/redis.sock");
    assert_int_equal(pd_cluster_parse_url("unix:/run/r.sock?db=3", &a, why, sizeof(why)), 0);
    assert_int_equal(a.db, 3);
    assert_false(a.tls);
    /* rediss://: the same address, through the TLS bridge */
    assert_int_equal(pd_cluster_parse_url("rediss://10.0.0.5:6380/2", &a, why, sizeof(why)), 0);
    assert_true(a.tls);
    assert_string_equal(a.host, "10.0.0.5");
    assert_int_equal(a.port, 6380);
    assert_int_equal(a.db, 2);
    assert_string_equal(a.path, "");
    assert_int_equal(pd_cluster_parse_url("rediss://redis.internal", &a, why, sizeof(why)), 0);
    assert_true(a.tls);
    assert_string_equal(a.host, "redis.internal");
    assert_int_equal(a.port, 6379);
    assert_int_equal(pd_cluster_parse_url("redis://r:6379/0", &a, why, sizeof(why)), 0);
    assert_false(a.tls);
}

/* Each refusal says what is wrong and what to write instead. */
static void test_parse_url_refused(void **state)
{
    static const struct {
        const char *url, *says;
    } cases[] = {
        {"rediss://:pw@r:6380/0", "password_file"},
        {"rediss://r:6380/x", "database"},
        {"rediss://", "redis://HOST:PORT/DB"},
        {"redisss://r", "rediss://HOST:PORT/DB (TLS)"},
        {"redis://:pw@r:6379/0", "password_file"},
        {"redis://r:0/0", "port"},
        {"redis://r:99999/0", "port"},
        {"redis://r:6379/x", "database"},
        {"redis://", "redis://HOST:PORT/DB"},
        {"http://r:6379", "expected redis://"},
        {"unix:run/r.sock", "absolute"},
        {"unix:/r.sock?x=1", "?db=N"},
        {"redis://[::1:6379", "]"},
    };
    struct pd_redis_addr a;
    char why[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        why[0] = '\0';
        assert_int_equal(pd_cluster_parse_url(cases[i].url, &a, why, sizeof(why)), PD_ECONFIG);
        if (!strstr(why, cases[i].says) || !strstr(why, cases[i].url)) {
            print_error("%s: expected '%s' in: %s\n", cases[i].url, cases[i].says, why);
            fail();
        }
    }
}

static void test_fingerprint(void **state)
{
    struct pd_patchworks a = {
        .auth = PD_AUTH_PASSWORD, .email = "ops@example.com", .password = "s3cret"};
    struct pd_patchworks b = a, k = {.auth = PD_AUTH_API_KEY, .api_key = "ops@example.com"};
    char fa[13], fa2[13], fb[13], fk[13];

    b.password = "other";
    pd_cluster_fingerprint(&a, fa);
    pd_cluster_fingerprint(&a, fa2);
    pd_cluster_fingerprint(&b, fb);
    pd_cluster_fingerprint(&k, fk);
    assert_int_equal(strlen(fa), 12);
    assert_int_equal(strspn(fa, "0123456789abcdef"), 12);
    assert_string_equal(fa, fa2);
    /* The login names the account, not its password: a changed password keeps the keys. */
    assert_string_equal(fa, fb);
    /* A key and a login of the same text are different accounts. */
    assert_string_not_equal(fa, fk);
    b.email = "other@example.com";
    pd_cluster_fingerprint(&b, fb);
    assert_string_not_equal(fa, fb);
}

static void test_fallback_share_and_keys(void **state)
{
    char buf[32];
    assert_int_equal(pd_cluster_fallback_share(240, 3), 80);
    assert_int_equal(pd_cluster_fallback_share(240, 7), 34); /* rounded down: never above */
    assert_int_equal(pd_cluster_fallback_share(2, 3), 1);    /* a host never stops */
    assert_int_equal(pd_cluster_fallback_share(240, 0), 240);
    assert_string_equal(pd_cluster_key("patchdrop:ab:", "rate:pause", buf, sizeof(buf)),
                        "patchdrop:ab:rate:pause");
    assert_null(pd_cluster_key("patchdrop:0123456789abcdef:", "rate:permits", buf, sizeof(buf)));
}

static void test_permits(void **state)
{
    struct pd_cluster_permits t = {0};
    for (uint64_t id = 1; id <= 40; id++)
        assert_int_equal(pd_cluster_permits_add(&t, id, id % 2), 0);
    assert_int_equal(pd_cluster_permits_expire(&t, 1000), 40); /* in flight: they count */
    assert_int_equal(pd_cluster_permits_next_end(&t), UINT64_MAX);
    assert_true(pd_cluster_permits_answer(&t, 7, 1000, 2000));
    assert_false(pd_cluster_permits_answer(&t, 7, 1500, 2000)); /* answered once */
    assert_false(pd_cluster_permits_answer(&t, 99, 1500, 2000));
    assert_true(pd_cluster_permits_answer(&t, 8, 1500, 2000));
    assert_int_equal(pd_cluster_permits_next_end(&t), 3000);
    assert_int_equal(pd_cluster_permits_expire(&t, 2999), 40);
    assert_int_equal(pd_cluster_permits_expire(&t, 3000), 39); /* a window after its answer */
    assert_int_equal(pd_cluster_permits_next_end(&t), 3500);
    assert_int_equal(pd_cluster_permits_expire(&t, 4000), 38);
    pd_cluster_permits_free(&t);
    assert_int_equal(t.n, 0);
}

/* ---- the local share while Redis is away --------------------------------------------------- */

struct asked {
    struct pd_cluster_ask ask;
    int64_t wait;
    uint64_t permit;
    int answers;
};

static void on_answer(struct pd_cluster_ask *a, int64_t wait_ms, uint64_t permit)
{
    struct asked *k = (struct asked *)a;
    k->wait = wait_ms;
    k->permit = permit;
    k->answers++;
}

static struct asked ask(struct pd_cluster *c)
{
    struct asked k = {.ask.answer = on_answer};
    pd_cluster_gate_ask(c, &k.ask);
    assert_int_equal(k.answers, 1); /* the share answers at once */
    return k;
}

/*
 * Redis cannot be reached: the host waits one window (the permits every host took before still
 * count at the server), then takes at most rate / expected_hosts per window, each permit
 * counting from its start until a window after its answer.
 */
static void test_fallback_share(void **state)
{
    uv_loop_t loop;
    struct pd_config cfg = {.pw = {.rate_limit = 30, .rate_window_ms = 2000, .timeout_ms = 1000},
                            .cluster = {.redis = "unix:/nonexistent/patchdrop-test.sock",
                                        .name = "h1",
                                        .key_prefix = "t:",
                                        .expected_hosts = 3}};
    struct pd_cluster *c = NULL;
    uint64_t permits[10];

    pd_test_log_to(NULL, PD_LOG_ERROR, 0);
    pd_test_mono = 1000000;
    assert_int_equal(uv_loop_init(&loop), 0);
    assert_int_equal(pd_cluster_create(&loop, &cfg, &pd_test_clock, NULL, &c), 0);
    struct pd_cluster_stats st = pd_cluster_stats(c);
    assert_true(st.fallback); /* the socket is not there: at once */
    assert_false(st.connected);
    assert_int_equal(st.share, 10);
    assert_int_equal(ask(c).wait, 2000); /* a window first */
    pd_test_mono += 1999;
    assert_int_equal(ask(c).wait, 1);
    pd_test_mono += 1;
    for (int i = 0; i < 10; i++) {
        struct asked k = ask(c);
        assert_int_equal(k.wait, 0);
        assert_true(k.permit != 0);
        permits[i] = k.permit;
    }
    /* All ten in flight: asked again shortly, for they count until answered. */
    assert_true(ask(c).wait > 0);
    pd_test_mono += 500;
    pd_cluster_gate_done(c, permits[3]);
    pd_test_mono += 100;
    pd_cluster_gate_done(c, permits[0]);
    assert_int_equal(ask(c).wait, 1900); /* the first answer is a window old then */
    pd_test_mono += 1900;
    assert_int_equal(ask(c).wait, 0);
    assert_int_equal(ask(c).wait, 100); /* the second answer's window */
    st = pd_cluster_stats(c);
    assert_int_equal(st.granted_local, 11);
    assert_int_equal(st.granted, 0);
    assert_int_equal(st.fallbacks, 1);
    pd_cluster_close(&c);
    assert_null(c);
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0); /* nothing left open */
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* ---- [cluster] in the config -------------------------------------------------------------- */

#define PW_SECTION "[patchworks]\nemail = ops@example.com\npassword = s3cret\n"
#define WATCH_SECTION "[watch:orders]\npath = drop\nflow_id = 123\n"

static int setup(void **state)
{
    pd_test_setup(state);
    assert_int_equal(mkdir(pd_test_path(pd_test_dir, "drop"), 0700), 0);
    unsetenv("PATCHDROP_PASSWORD");
    unsetenv("PATCHDROP_API_KEY");
    return 0;
}

/* Loads TEXT; returns the config, or NULL with *ERRORS set. */
static struct pd_config *load(const char *text, char **errors)
{
    const char *path = pd_test_path(pd_test_dir, "c.conf");
    struct pd_config *cfg = NULL;
    pd_test_write(path, text);
    chmod(path, 0600);
    *errors = NULL;
    pd_config_load(path, &cfg, errors);
    return cfg;
}

static void expect_error(const char *text, const char *needle)
{
    char *errors;
    struct pd_config *cfg = load(text, &errors);
    assert_null(cfg);
    if (!errors || !strstr(errors, needle)) {
        print_error("expected '%s' in:\n%s\n", needle, errors ? errors : "(none)");
        fail();
    }
    assert_null(strstr(errors, "redis-pw-9"));
    free(errors);
}

static void test_config_defaults(void **state)
{
    char *errors, host[256] = "", fp[13], want[64];
    struct pd_config *cfg = load(PW_SECTION WATCH_SECTION, &errors);
    assert_non_null(cfg);
    assert_null(cfg->cluster.redis); /* no [cluster]: this host alone */
    pd_config_destroy(&cfg);

    cfg = load(PW_SECTION "[cluster]\nredis = redis://127.0.0.1:6379/0\n" WATCH_SECTION, &errors);
    if (!cfg)
        fail_msg("%s", errors);
    gethostname(host, sizeof(host));
    assert_string_equal(cfg->cluster.name, host);
    assert_int_equal(cfg->cluster.expected_hosts, 2);
    pd_cluster_fingerprint(&cfg->pw, fp);
    snprintf(want, sizeof(want), "patchdrop:%s:", fp);
    assert_string_equal(cfg->cluster.key_prefix, want);
    assert_null(strstr(cfg->cluster.key_prefix, "ops@example.com"));
    assert_null(cfg->cluster.password);
    pd_config_destroy(&cfg);
}

static void test_config_values_and_print(void **state)
{
    char *errors, *out = NULL, text[1024];
    size_t len = 0;
    const char *pwfile = pd_test_path(pd_test_dir, "redis.pw");

    pd_test_write(pwfile, "patchdrop redis-pw-9\n");
    chmod(pwfile, 0640);
    snprintf(text, sizeof(text),
             PW_SECTION "[cluster]\nredis = unix:/run/redis.sock\npassword_file = %s\n"
                        "name = east-1\nkey_prefix = pd:prod:\nexpected_hosts = 3\n" WATCH_SECTION,
             pwfile);
    struct pd_config *cfg = load(text, &errors);
    if (!cfg)
        fail_msg("%s", errors);
    assert_string_equal(cfg->cluster.password, "patchdrop redis-pw-9");
    assert_string_equal(cfg->cluster.name, "east-1");
    assert_string_equal(cfg->cluster.key_prefix, "pd:prod:");
    assert_int_equal(cfg->cluster.expected_hosts, 3);
    FILE *f = open_memstream(&out, &len);
    pd_config_print(cfg, f);
    fclose(f);
    assert_non_null(strstr(out, "\n[cluster]\n"));
    assert_non_null(strstr(strstr(out, "\n[cluster]\n"), "\nredis = unix:/run/redis.sock\n"));
    assert_null(strstr(out, "redis-pw-9"));
    free(out);
    pd_config_destroy(&cfg);
}

static void test_config_errors(void **state)
{
    char text[1024];
    const char *pwfile = pd_test_path(pd_test_dir, "open.pw");

    expect_error(PW_SECTION "[cluster]\nname = east\n" WATCH_SECTION, "needs redis =");
    expect_error(PW_SECTION "[cluster]\nredis = redis://r\nname = two words\n" WATCH_SECTION,
                 "expected one word");
    expect_error(PW_SECTION "[cluster]\nredis = redis://r\nexpected_hosts = 0\n" WATCH_SECTION,
                 "expected_hosts");
    expect_error(PW_SECTION "[cluster]\nredis = redis://r\nttl = 3\n" WATCH_SECTION,
                 "unknown key 'ttl' in [cluster]");
    pd_test_write(pwfile, "redis-pw-9\n");
    chmod(pwfile, 0644);
    snprintf(text, sizeof(text),
             PW_SECTION "[cluster]\nredis = redis://r\npassword_file = %s\n" WATCH_SECTION, pwfile);
    expect_error(text, "can be read by every user");
}

/* rediss://'s keys: accepted with TLS, each file checked, refused (with words) elsewhere. */
static void test_config_tls(void **state)
{
    char text[1024], *errors;
    const char *ca = pd_test_path(pd_test_dir, "ca.pem");
    struct pd_config *cfg = load(PW_SECTION "[cluster]\nredis = rediss://127.0.0.1:6380/1\n"
                                            "tls_verify = no\n" WATCH_SECTION,
                                 &errors);
    if (!cfg)
        fail_msg("%s", errors);
    assert_false(cfg->cluster.tls_verify);
    pd_config_destroy(&cfg);
    cfg = load(PW_SECTION "[cluster]\nredis = rediss://r\n" WATCH_SECTION, &errors);
    if (!cfg)
        fail_msg("%s", errors);
    assert_true(cfg->cluster.tls_verify); /* checked unless said otherwise */
    assert_null(cfg->cluster.ca_file);    /* the system's CAs */
    pd_config_destroy(&cfg);

    pd_test_write(ca, "not a certificate\n");
    snprintf(text, sizeof(text),
             PW_SECTION "[cluster]\nredis = rediss://r\nca_file = %s\n" WATCH_SECTION, ca);
    expect_error(text, "ca_file = ");
    snprintf(text, sizeof(text),
             PW_SECTION "[cluster]\nredis = redis://r\nca_file = %s\n" WATCH_SECTION, ca);
    expect_error(text, "c.conf:6: ca_file is only for TLS: write redis = rediss://");
    expect_error(PW_SECTION
                 "[cluster]\nredis = rediss://r\nca_file = /nonexistent/ca.pem\n" WATCH_SECTION,
                 "ca_file = /nonexistent/ca.pem cannot be read");
    snprintf(text, sizeof(text),
             PW_SECTION "[cluster]\nredis = rediss://r\ntls_cert_file = %s\n" WATCH_SECTION, ca);
    expect_error(text, "tls_cert_file and tls_key_file go together");
    chmod(ca, 0644);
    snprintf(text, sizeof(text),
             PW_SECTION "[cluster]\nredis = rediss://r\ntls_key_file = %s\n" WATCH_SECTION, ca);
    expect_error(text, "can be read by every user");
    expect_error(PW_SECTION "[cluster]\nredis = redis://r\ntls_verify = no\n" WATCH_SECTION,
                 "tls_verify is only for TLS");
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, test_parse_url, test_parse_url_refused, test_fingerprint,
                        test_fallback_share_and_keys, test_permits, test_fallback_share) +
           PD_RUN_TESTS(setup, pd_test_teardown, test_config_defaults, test_config_values_and_print,
                        test_config_errors, test_config_tls);
}
