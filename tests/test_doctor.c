/* Tests of `patchdrop doctor`'s pure parts: the shape comparison and how checks are said. */
#include "pd_doctor.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testlib.h"

static const char *const token_paths[] = {"token", "access_token", "data.token",
                                          "data.access_token", NULL};
static const char *const list_paths[] = {"data[]", "[]", NULL};
static const char *const status_paths[] = {"status", "attributes.status", "data.status",
                                           "data.attributes.status", NULL};

static int find(const char *body, const char *const *paths, char *seen, size_t len)
{
    return pd_shape_find(body, strlen(body), paths, seen, len);
}

static void shape_found(void **state)
{
    char seen[256];
    assert_int_equal(find("{\"token\":\"t\",\"expires_in\":3600}", token_paths, seen, 256), 0);
    assert_int_equal(find("{\"data\":{\"access_token\":\"t\"}}", token_paths, seen, 256), 3);
    assert_int_equal(find("{\"data\":[],\"meta\":{}}", list_paths, seen, 256), 0);
    assert_int_equal(find("[{\"id\":1}]", list_paths, seen, 256), 1);
    assert_int_equal(find("{\"data\":{\"attributes\":{\"status\":2}}}", status_paths, seen, 256),
                     3);
    /* The first place patchdrop looks wins, as in src/net/api.c. */
    assert_int_equal(find("{\"token\":\"a\",\"data\":{\"token\":\"b\"}}", token_paths, seen, 256),
                     0);
}

static void shape_missing_names_keys_not_values(void **state)
{
    char seen[256];
    assert_int_equal(find("{\"message\":\"hi\",\"jwt\":\"SECRET\",\"expires\":60}", token_paths,
                          seen, sizeof(seen)),
                     -1);
    assert_string_equal(seen, "message, jwt, expires");
    assert_null(strstr(seen, "SECRET"));
    /* "data" that is not a list is not the list; nested keys are named with their path. */
    assert_int_equal(
        find("{\"data\":{\"items\":[1]},\"meta\":{\"total\":1}}", list_paths, seen, sizeof(seen)),
        -1);
    assert_string_equal(seen, "data.items[], meta.total");
    assert_int_equal(find("{\"data\":{\"id\":\"7\",\"attributes\":{\"state\":2}}}", status_paths,
                          seen, sizeof(seen)),
                     -1);
    assert_string_equal(seen, "data.id, data.attributes.state");
    /* A null is not a value. */
    assert_int_equal(find("{\"token\":null}", token_paths, seen, sizeof(seen)), -1);
    assert_string_equal(seen, "token");
    assert_int_equal(find("{}", token_paths, seen, sizeof(seen)), -1);
    assert_string_equal(seen, "no keys");
    assert_int_equal(find("[1,2]", token_paths, seen, sizeof(seen)), -1);
    assert_string_equal(seen, "[] (a list)");
}

static void shape_not_json_and_long_answers(void **state)
{
    char seen[32], big[4096];
    size_t n = 0;
    assert_int_equal(find("<html>", token_paths, seen, sizeof(seen)), -2);
    assert_int_equal(find("\"token\"", token_paths, seen, sizeof(seen)), -2);
    assert_int_equal(pd_shape_find(NULL, 0, token_paths, seen, sizeof(seen)), -2);
    /* Many keys: cut with "...", never past the buffer. */
    n += (size_t)snprintf(big + n, sizeof(big) - n, "{");
    for (int i = 0; i < 100; i++)
        n += (size_t)snprintf(big + n, sizeof(big) - n, "%s\"key%d\":1", i ? "," : "", i);
    snprintf(big + n, sizeof(big) - n, "}");
    assert_int_equal(find(big, token_paths, seen, sizeof(seen)), -1);
    assert_true(strlen(seen) < sizeof(seen));
    assert_non_null(strstr(seen, "..."));
    assert_int_equal(strncmp(seen, "key0, key1", 10), 0);
}

static void shape_paths_as_words(void **state)
{
    char out[128];
    pd_shape_paths(token_paths, out, sizeof(out));
    assert_string_equal(out, "token, access_token, data.token, data.access_token");
    pd_shape_paths(list_paths, out, sizeof(out));
    assert_string_equal(out, "data[], []");
}

/* What pd_checks_print wrote, as a string (free it). */
static char *printed(const struct pd_checks *c)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    pd_checks_print(c, f);
    fclose(f);
    return buf;
}

static void checks_render_text(void **state)
{
    struct pd_checks c = {0};
    char *text;
    assert_int_equal(pd_checks_add(&c, PD_CHECK_OK, "dns login_url", NULL, "%s resolves to %s",
                                   "api.example", "192.0.2.1"),
                     0);
    assert_int_equal(pd_checks_add(&c, PD_CHECK_FAIL, "login", "check the password", "refused (%s)",
                                   "bad\x1b[2Jwords\n"),
                     0);
    assert_int_equal(pd_checks_add(&c, PD_CHECK_WARN, "tls", "renew it", "expires in 3 days"), 0);
    assert_int_equal(pd_checks_add(&c, PD_CHECK_SKIP, "lookups", NULL, "not tried: no login"), 0);
    text = printed(&c);
    assert_string_equal(text, "ok    dns login_url: api.example resolves to 192.0.2.1\n"
                              "FAIL  login: refused (bad\\x1b[2Jwords\\n) -> check the password\n"
                              "warn  tls: expires in 3 days -> renew it\n"
                              "skip  lookups: not tried: no login\n"
                              "1 ok, 1 warnings, 1 failed, 1 skipped\n");
    free(text);
    assert_int_equal(pd_checks_worst(&c), PD_CHECK_FAIL);
    assert_int_equal(pd_checks_exit(&c), 1);
    pd_checks_free(&c);
    assert_int_equal(c.n, 0);
}

static void checks_exit_status(void **state)
{
    struct pd_checks c = {0};
    assert_int_equal(pd_checks_exit(&c), 0);
    pd_checks_add(&c, PD_CHECK_SKIP, "a", NULL, "x");
    assert_int_equal(pd_checks_worst(&c), PD_CHECK_OK);
    pd_checks_add(&c, PD_CHECK_WARN, "b", NULL, "x");
    pd_checks_add(&c, PD_CHECK_OK, "c", NULL, "x");
    /* Warnings are allowed: exit 0. */
    assert_int_equal(pd_checks_worst(&c), PD_CHECK_WARN);
    assert_int_equal(pd_checks_exit(&c), 0);
    pd_checks_free(&c);
    assert_string_equal(pd_check_status_name(PD_CHECK_FAIL), "FAIL");
}

static void checks_render_json(void **state)
{
    struct pd_checks c = {0};
    char *json;
    pd_checks_add(&c, PD_CHECK_OK, "config", NULL, "a \"quoted\" file");
    pd_checks_add(&c, PD_CHECK_FAIL, "login", "check it", "refused");
    json = pd_checks_json(&c);
    assert_non_null(json);
    assert_string_equal(json, "{\"checks\":[{\"name\":\"config\",\"status\":\"ok\",\"detail\":"
                              "\"a \\\"quoted\\\" file\",\"fix\":null},{\"name\":\"login\","
                              "\"status\":\"fail\",\"detail\":\"refused\",\"fix\":\"check it\"}],"
                              "\"status\":\"fail\"}\n");
    free(json);
    pd_checks_free(&c);
    json = pd_checks_json(&c);
    assert_string_equal(json, "{\"checks\":[],\"status\":\"ok\"}\n");
    free(json);
}

int main(void)
{
    return PD_RUN_TESTS(NULL, NULL, shape_found, shape_missing_names_keys_not_values,
                        shape_not_json_and_long_answers, shape_paths_as_words, checks_render_text,
                        checks_exit_status, checks_render_json);
}
