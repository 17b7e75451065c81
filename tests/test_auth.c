/*
 * Unit tests of the credentials module without a network: the token kept in the state dir is
 * reused only for the same account and login URL and only until shortly before it expires (on
 * an injected clock); a 401 drops a token once however many requests report it; API-key mode
 * sends the raw key and turns a 401 into a configuration error naming the key's source.
 */
#include "testlib.h"

#include "pd_auth.h"
#include "pd_clock.h"
#include "pd_config.h"
#include "pd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t now_ms;
static uint64_t fake_wall(void *arg)
{
    return now_ms;
}
static uint32_t fake_random(void *arg)
{
    return 0;
}
static const struct pd_clock clock_ = {.mono_ms = fake_wall, .wall_ms = fake_wall,
                                       .random = fake_random};

static const char *const dir = pd_test_dir;

static struct pd_patchworks pw_password(void)
{
    struct pd_patchworks pw;
    memset(&pw, 0, sizeof(pw));
    pw.auth = PD_AUTH_PASSWORD;
    pw.email = "demo@example.com";
    pw.password = "secret";
    pw.login_url = "http://127.0.0.1:9/api/v1/login";
    return pw;
}

static void write_token(const char *json)
{
    pd_test_write(pd_test_path(dir, "token"), json);
}

/* A kept token of USER from LOGIN_URL: tok-1, expiring at 2,000,000 ms, renewed from 1,900,000. */
static void keep_token(const char *user, const char *login_url)
{
    char json[300];
    snprintf(json, sizeof(json),
             "{\"version\":1,\"login_url\":\"%s\",\"user\":\"%s\",\"token\":\"tok-1\","
             "\"expires_at_ms\":2000000,\"renew_at_ms\":1900000}",
             login_url, user);
    write_token(json);
}

static struct pd_auth *create(const struct pd_patchworks *pw)
{
    struct pd_auth *a;
    assert_int_equal(pd_auth_create(NULL, pw, dir, &clock_, &a), 0);
    return a;
}

/* With what is kept now, the credentials module starts without a token. */
static void expect_no_token(const struct pd_patchworks *pw)
{
    struct pd_auth *a = create(pw);
    unsigned gen;
    assert_null(pd_auth_header(a, &gen));
    pd_auth_destroy(&a);
}

static int setup(void **state)
{
    now_ms = 1000000;
    return pd_test_setup(state);
}

static void kept_token_is_reused_until_renewal(void **state)
{
    struct pd_patchworks pw = pw_password();
    struct pd_auth *a;
    unsigned gen;
    keep_token("demo@example.com", "http://127.0.0.1:9/api/v1/login");
    a = create(&pw);
    assert_true(pd_auth_from_cache(a));
    assert_string_equal(pd_auth_header(a, &gen), "Bearer tok-1");
    assert_int_equal(pd_auth_expires_at(a), 2000000);
    now_ms = 1899999;
    assert_non_null(pd_auth_header(a, &gen));
    now_ms = 1900000;
    assert_null(pd_auth_header(a, &gen));
    pd_auth_destroy(&a);
    assert_null(a);
}

static void kept_token_of_another_account_or_expired_is_ignored(void **state)
{
    struct pd_patchworks pw = pw_password();
    keep_token("other@example.com", "http://127.0.0.1:9/api/v1/login");
    expect_no_token(&pw);

    keep_token("demo@example.com", "http://elsewhere/login");
    expect_no_token(&pw);

    now_ms = 1950000;
    keep_token("demo@example.com", "http://127.0.0.1:9/api/v1/login");
    expect_no_token(&pw);

    write_token("garbage{");
    expect_no_token(&pw);
}

static void many_401s_drop_the_token_once(void **state)
{
    struct pd_patchworks pw = pw_password();
    struct pd_auth *a;
    unsigned gen, gen2;
    const char *msg;
    unsigned suspect;
    keep_token("demo@example.com", "http://127.0.0.1:9/api/v1/login");
    a = create(&pw);
    assert_non_null(pd_auth_header(a, &gen));
    pd_auth_proven(a, gen);
    for (int i = 0; i < 50; i++) {
        assert_int_equal(pd_auth_refused(a, gen, &msg, &suspect), 0);
        /* The token had worked: no reason to wait before logging in again. */
        assert_int_equal(suspect, 0);
    }
    assert_null(pd_auth_header(a, &gen2));
    assert_int_equal(gen2, gen);
    pd_auth_destroy(&a);

    /* A token refused before any request succeeded with it is suspect: back off first. */
    a = create(&pw);
    assert_non_null(pd_auth_header(a, &gen));
    assert_int_equal(pd_auth_refused(a, gen, &msg, &suspect), 0);
    assert_int_equal(suspect, 1);
    pd_auth_destroy(&a);
}

static void api_key_is_raw_and_401_is_a_config_error(void **state)
{
    struct pd_patchworks pw;
    struct pd_auth *a;
    unsigned gen, suspect;
    const char *msg;
    memset(&pw, 0, sizeof(pw));
    pw.auth = PD_AUTH_API_KEY;
    pw.api_key = "k-123";
    pw.secret_source = "api_key_file /etc/patchdrop/key";
    a = create(&pw);
    assert_string_equal(pd_auth_header(a, &gen), "k-123");
    now_ms += 365ull * 24 * 3600 * 1000;
    assert_string_equal(pd_auth_header(a, &gen), "k-123");
    assert_int_equal(pd_auth_refused(a, gen, &msg, &suspect), PD_EAUTH);
    assert_non_null(strstr(msg, "api_key_file /etc/patchdrop/key"));
    assert_null(strstr(msg, "k-123"));
    assert_int_equal(pd_auth_expires_at(a), 0);
    pd_auth_destroy(&a);
}

int main(void)
{
    return PD_RUN_TESTS(setup, pd_test_teardown, kept_token_is_reused_until_renewal,
                        kept_token_of_another_account_or_expired_is_ignored,
                        many_401s_drop_the_token_once, api_key_is_raw_and_401_is_a_config_error);
}
