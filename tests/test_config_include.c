/* Unit tests of the config's conveniences: ${VAR} in values and `include = PATTERN` lines,
 * with every problem said at the right file and line, and where each value came from. */
#include "testlib.h"

#include "pd_config.h"
#include "pd_error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const tmpdir = pd_test_dir;

static int setup(void **state)
{
    pd_test_setup(state);
    assert_int_equal(mkdir(pd_test_path(tmpdir, "drop"), 0700), 0);
    assert_int_equal(mkdir(pd_test_path(tmpdir, "conf.d"), 0700), 0);
    assert_int_equal(mkdir(pd_test_path(tmpdir, "drop2"), 0700), 0);
    unsetenv("PATCHDROP_PASSWORD");
    unsetenv("PATCHDROP_API_KEY");
    unsetenv("PD_T_FLOW");
    unsetenv("PD_T_PW");
    return 0;
}

/* Writes TEXT to NAME under the temp folder, private; returns its path (own copy). */
static char *put(const char *name, const char *text)
{
    char *path;
    assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
    pd_test_write(path, text);
    chmod(path, 0600);
    return path;
}

#define PW "[patchworks]\nemail = ops@example.com\npassword = s3cret\n"
#define WATCH "[watch:orders]\npath = drop\nflow_id = 123\n"

/* Loads FILE expecting failure; the errors must hold each of the NULL-ended NEEDLES. */
static void expect_errors(const char *file, ...)
{
    struct pd_config *cfg = NULL;
    char *errors = NULL;
    va_list ap;

    assert_int_not_equal(pd_config_load(file, &cfg, &errors), 0);
    assert_null(cfg);
    assert_non_null(errors);
    va_start(ap, file);
    for (const char *n; (n = va_arg(ap, const char *));) {
        if (!strstr(errors, n)) {
            print_error("expected '%s' in:\n%s\n", n, errors);
            fail();
        }
    }
    va_end(ap);
    assert_null(strstr(errors, "s3cret"));
    assert_null(strstr(errors, "${PD_T_PW}")); /* in a secret: words of it */
    free(errors);
}

static struct pd_config *load_ok(const char *file)
{
    struct pd_config *cfg = NULL;
    char *errors = NULL;
    if (pd_config_load(file, &cfg, &errors)) {
        print_error("%s\n", errors);
        fail();
    }
    free(errors);
    return cfg;
}

/* What check-config prints for CFG (free it). */
static char *printed(const struct pd_config *cfg)
{
    char *text = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&text, &len);
    pd_config_print(cfg, mem);
    fclose(mem);
    return text;
}

static void test_env_values(void **state)
{
    setenv("PD_T_FLOW", "flow-7", 1);
    setenv("PD_T_PW", "hunter2-secret", 1);
    char *c = put("c.conf", "[patchworks]\nemail = ops@example.com\npassword = ${PD_T_PW}\n"
                            "[watch:orders]\npath = ${PD_T_NONE:-drop}\nflow_id = ${PD_T_FLOW}\n"
                            "include = a$${b}c\n");
    struct pd_config *cfg = load_ok(c);
    char *text = printed(cfg);

    assert_string_equal(cfg->watches[0].flow_id, "flow-7");
    assert_string_equal(cfg->pw.password, "hunter2-secret");
    assert_string_equal(cfg->watches[0].include, "a${b}c");
    assert_non_null(strstr(cfg->watches[0].path, "/drop"));
    /* Where each value came from, the variable's name, never a secret's value. */
    assert_non_null(strstr(text, "c.conf:6, through ${PD_T_FLOW}\nflow_id = flow-7\n"));
    assert_non_null(strstr(text, "c.conf:3, through ${PD_T_PW}\npassword = ********\n"));
    assert_non_null(strstr(text, "c.conf:2\nemail = ops@example.com\n"));
    assert_null(strstr(text, "hunter2"));
    assert_non_null(strstr(cfg->pw.secret_source, "${PD_T_PW}"));
    free(text);
    pd_config_destroy(&cfg);
    free(c);
}

static void test_env_errors(void **state)
{
    char *c = put("c.conf", PW "[watch:orders]\npath = drop\nflow_id = ${PD_T_FLOW}\n"
                               "version_id = ${oops\n");
    expect_errors(c, "c.conf:6: ${PD_T_FLOW} is not set", "${PD_T_FLOW:-value}",
                  "c.conf:7: ${ must be followed by a variable name", NULL);
    /* A literal secret that looks like a reference: said without its words. */
    char *s = put("s.conf", "[patchworks]\nemail = ops@example.com\npassword = s3cret${PD_T_PW}x\n"
                            WATCH);
    expect_errors(s, "s.conf:3: password names a variable that is not set", "$${", NULL);
    free(s);
    /* Empty is not unset: the key says it is empty; with :- the default is used. */
    setenv("PD_T_FLOW", "", 1);
    expect_errors(c, "c.conf:6: flow_id is empty", NULL);
    free(c);
}

static void test_include_merges_sections(void **state)
{
    char *a = put("conf.d/20-b.conf", "[watch:b]\npath = drop2\nflow_id = 2\n");
    char *b = put("conf.d/10-a.conf", "\n[watch:a]\npath = drop\nflow_id = 1\n");
    char *skip = put("conf.d/notes.txt", "not a config\n");
    char *c = put("c.conf", "; top\ninclude = conf.d/*.conf\n" PW);
    struct pd_config *cfg = load_ok(c);
    char *text = printed(cfg);

    assert_int_equal(cfg->nwatches, 2);
    assert_string_equal(cfg->watches[0].name, "a"); /* sorted */
    assert_string_equal(cfg->watches[1].name, "b");
    assert_string_equal(cfg->watches[1].flow_id, "2");
    assert_non_null(strstr(text, "conf.d/10-a.conf:4\nflow_id = 1\n"));
    assert_non_null(strstr(text, "c.conf:5\npassword = ********\n"));
    free(text);
    pd_config_destroy(&cfg);
    free(a), free(b), free(skip), free(c);
}

static void test_include_errors_name_their_file(void **state)
{
    char *a = put("conf.d/a.conf", "[watch:a]\npath = drop\nflow_id = 1\nbogus = 1\n");
    char *b = put("conf.d/b.conf", "stray = 1\n[watch:a]\npath = drop\n");
    char *c = put("c.conf", "include = conf.d/*.conf\ninclude = nowhere.conf\n"
                            "include = none.d/*.conf\n" PW);

    expect_errors(c, "conf.d/a.conf:4: unknown key 'bogus'",
                  "conf.d/b.conf:1: 'stray' is outside any section",
                  "conf.d/b.conf:2: section [watch:a] appears again (first at ",
                  "conf.d/a.conf line 1)", "c.conf:2: include: cannot open ",
                  "nowhere.conf: No such file", NULL);
    free(a), free(b), free(c);
}

static void test_include_loops_and_placement(void **state)
{
    char *a = put("conf.d/a.conf", "include = ../c.conf\n[watch:a]\npath = drop\nflow_id = 1\n");
    char *c = put("c.conf", "include = conf.d/a.conf\n" PW "include = x.conf\n");

    expect_errors(c, "conf.d/a.conf:1: include: ", "already being read: an include loop",
                  "c.conf:5: include = goes before the file's first [section]", NULL);
    free(a), free(c);
}

static void test_include_names_unset_variable(void **state)
{
    char *c = put("c.conf", "include = ${PD_T_NONE}/x.conf\n" PW WATCH);
    expect_errors(c, "c.conf:1: ${PD_T_NONE} is not set", NULL);
    free(c);
}

int main(void)
{
    return PD_RUN_TESTS(setup, pd_test_teardown, test_env_values, test_env_errors,
                        test_include_merges_sections, test_include_errors_name_their_file,
                        test_include_loops_and_placement, test_include_names_unset_variable);
}
