/* Unit tests of the shared command-line parser (src/cli/cli_opts.c): what each command gets, and
 * what a user reads when the command line is refused. */
#include "testlib.h"

#include "pd_cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { O_FLOW_VERSION = 256 };

static const struct option send_like_opts[] = {
    {"watch", required_argument, NULL, 'w'},
    {"flow-version", required_argument, NULL, O_FLOW_VERSION},
    {NULL, 0, NULL, 0}};

/* Like send: -c and -q, its own options, a -v of its own, any number of operands. */
static const struct pd_cli_spec send_like = {
    .name = "send",
    .synopsis = "[-c FILE] [-q] --watch NAME FILE...",
    .help = "  -w, --watch NAME\n",
    .common = PD_CLI_CONFIG | PD_CLI_QUIET,
    .opts = send_like_opts,
    .shortopts = "w:v",
    .max_args = -1,
};

/* Like run: -c and -v (verbose), no operand. */
static const struct pd_cli_spec run_like = {
    .name = "run",
    .synopsis = "[-c FILE] [-v]",
    .help = "  -v, --verbose\n",
    .common = PD_CLI_CONFIG | PD_CLI_VERBOSE,
    .max_args = 0,
};

/* What a parse wrote to one of the standard streams (fd 1 or 2), caught in a file. */
struct capture {
    int fd, saved;
    FILE *stream;
    char path[64];
    char text[4096];
};

static void capture_begin(struct capture *c, FILE *stream)
{
    c->stream = stream;
    c->fd = fileno(stream);
    snprintf(c->path, sizeof(c->path), "/tmp/pd-test-cli.XXXXXX");
    int tmp = mkstemp(c->path);
    assert_true(tmp >= 0);
    fflush(stream);
    c->saved = dup(c->fd);
    dup2(tmp, c->fd);
    close(tmp);
}

static const char *capture_end(struct capture *c)
{
    fflush(c->stream);
    dup2(c->saved, c->fd);
    close(c->saved);
    FILE *f = fopen(c->path, "r");
    size_t n = f ? fread(c->text, 1, sizeof(c->text) - 1, f) : 0;
    c->text[n] = '\0';
    if (f)
        fclose(f);
    unlink(c->path);
    return c->text;
}

/* Parses ARGV with SPEC to its end; returns what pd_cli_next() returned last. */
static int parse_all(struct pd_cli_parser *p, const struct pd_cli_spec *spec, char **argv)
{
    int argc = 0, c;
    while (argv[argc])
        argc++;
    pd_cli_begin(p, spec, argc, argv);
    while ((c = pd_cli_next(p)) > 0)
        ;
    return c;
}

/* Parses ARGV with SPEC, which must end in -1; returns what it wrote to STREAM meanwhile. */
static const char *parse_ends(struct pd_cli_parser *p, const struct pd_cli_spec *spec, char **argv,
                              FILE *stream)
{
    static struct capture cap;
    capture_begin(&cap, stream);
    int c = parse_all(p, spec, argv);
    const char *text = capture_end(&cap);
    assert_int_equal(c, -1);
    return text;
}

static void test_common_own_options_and_operands(void **state)
{
    char *argv[] = {"send",  "a.json",         "-c", "x.conf", "--watch", "w1", "-q",
                    "b.csv", "--flow-version", "3",  NULL};
    struct pd_cli_parser p;
    int c;

    pd_cli_begin(&p, &send_like, 10, argv);
    c = pd_cli_next(&p);
    assert_int_equal(c, 'w');
    assert_string_equal(p.arg, "w1");
    c = pd_cli_next(&p);
    assert_int_equal(c, O_FLOW_VERSION);
    assert_string_equal(p.arg, "3");
    assert_int_equal(pd_cli_next(&p), 0);
    assert_string_equal(p.config, "x.conf");
    assert_true(p.quiet);
    assert_false(p.verbose);
    /* Options and operands may mix; the operands come out in their order. */
    assert_int_equal(p.nargs, 2);
    assert_string_equal(p.args[0], "a.json");
    assert_string_equal(p.args[1], "b.csv");
    assert_string_equal(argv[0], "send");
}

static void test_verbose_is_common_only_where_taken(void **state)
{
    char *run_argv[] = {"run", "-v", NULL};
    char *send_argv[] = {"send", "-v", "f", NULL};
    struct pd_cli_parser p;

    assert_int_equal(parse_all(&p, &run_like, run_argv), 0);
    assert_true(p.verbose);
    /* send has no --verbose: its -v is its own (an old name it refuses with advice). */
    pd_cli_begin(&p, &send_like, 3, send_argv);
    assert_int_equal(pd_cli_next(&p), 'v');
    assert_false(p.verbose);
}

static void test_unknown_option_is_refused_as_patchdrop_cmd(void **state)
{
    char *argv[] = {"run", "--bogus", NULL};
    struct pd_cli_parser p;

    const char *text = parse_ends(&p, &run_like, argv, stderr);
    assert_int_equal(p.status, PD_EXIT_USAGE);
    assert_string_equal(text, "patchdrop run: unrecognized option '--bogus'\n"
                              "usage: patchdrop run [-c FILE] [-v]\n"
                              "'patchdrop run --help' describes every option.\n");
    assert_string_equal(argv[0], "run");
}

static void test_missing_value_and_common_option_not_taken(void **state)
{
    char *missing[] = {"run", "-c", NULL};
    char *long_missing[] = {"run", "--config", NULL};
    char *quiet[] = {"run", "-q", NULL};
    struct pd_cli_parser p;

    assert_non_null(strstr(parse_ends(&p, &run_like, missing, stderr),
                           "patchdrop run: option requires an argument -- 'c'\n"
                           "usage: patchdrop run "));
    assert_int_equal(p.status, PD_EXIT_USAGE);
    assert_non_null(strstr(parse_ends(&p, &run_like, long_missing, stderr),
                           "patchdrop run: option '--config' requires an argument\n"));
    /* run takes no -q: unknown to it. */
    assert_non_null(
        strstr(parse_ends(&p, &run_like, quiet, stderr), "patchdrop run: invalid option -- 'q'\n"));
    assert_int_equal(p.status, PD_EXIT_USAGE);
}

static void test_too_many_operands(void **state)
{
    char *argv[] = {"run", "-v", "extra", NULL};
    struct pd_cli_parser p;

    assert_string_equal(parse_ends(&p, &run_like, argv, stderr),
                        "patchdrop run: unexpected argument 'extra'\n"
                        "usage: patchdrop run [-c FILE] [-v]\n"
                        "'patchdrop run --help' describes every option.\n");
    assert_int_equal(p.status, PD_EXIT_USAGE);
}

static void test_help_exits_0_on_stdout(void **state)
{
    char *argv[] = {"send", "--help", "--bogus", NULL};
    struct pd_cli_parser p;

    const char *text = parse_ends(&p, &send_like, argv, stdout);
    assert_int_equal(p.status, PD_EXIT_OK);
    assert_string_equal(text, "usage: patchdrop send [-c FILE] [-q] --watch NAME FILE...\n"
                              "  -w, --watch NAME\n");
}

static void test_usage_error_says_command_and_hint(void **state)
{
    struct capture err;

    capture_begin(&err, stderr);
    assert_int_equal(pd_cli_usage_error(&send_like, "give %s", "--watch NAME"), PD_EXIT_USAGE);
    assert_string_equal(capture_end(&err),
                        "patchdrop send: give --watch NAME\n"
                        "usage: patchdrop send [-c FILE] [-q] --watch NAME FILE...\n"
                        "'patchdrop send --help' describes every option.\n");
}

/* A second parse in the same process starts from the beginning (getopt keeps state). */
static void test_parses_twice(void **state)
{
    char *a1[] = {"send", "-qw", "x", "f1", NULL};
    char *a2[] = {"send", "-c", "y.conf", "f2", NULL};
    struct pd_cli_parser p;

    assert_int_equal(parse_all(&p, &send_like, a1), 0);
    assert_true(p.quiet);
    assert_int_equal(parse_all(&p, &send_like, a2), 0);
    assert_false(p.quiet);
    assert_string_equal(p.config, "y.conf");
    assert_int_equal(p.nargs, 1);
    assert_string_equal(p.args[0], "f2");
}

int main(void)
{
    return PD_RUN_TESTS(
        NULL, NULL, test_common_own_options_and_operands, test_verbose_is_common_only_where_taken,
        test_unknown_option_is_refused_as_patchdrop_cmd,
        test_missing_value_and_common_option_not_taken, test_too_many_operands,
        test_help_exits_0_on_stdout, test_usage_error_says_command_and_hint, test_parses_twice);
}
