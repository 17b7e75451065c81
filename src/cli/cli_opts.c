/*
 * The command line of every `patchdrop` command, parsed one way: -h/--help everywhere;
 * -c/--config, -q/--quiet and -v/--verbose with the same meaning wherever a command has them;
 * then the command's own options (getopt_long, GNU order: options and operands may mix).
 * Refusals all look alike: "patchdrop CMD: why", the usage line and where --help is, exit 2.
 */
#include "pd_cli.h"

#include <assert.h>
#include <stdarg.h>
#include <string.h>

static const struct option common_opts[] = {
    {"config", required_argument, NULL, 'c'},
    {"help", no_argument, NULL, 'h'},
    {"quiet", no_argument, NULL, 'q'},
    {"verbose", no_argument, NULL, 'v'},
};

/* Which PD_CLI_* flag turns a common option on. */
static unsigned common_flag(int val)
{
    return val == 'c' ? PD_CLI_CONFIG : val == 'q' ? PD_CLI_QUIET : val == 'v' ? PD_CLI_VERBOSE : 0;
}

static void usage_line(const struct pd_cli_spec *spec, FILE *out)
{
    fprintf(out, "usage: patchdrop %s%s%s\n", spec->name, *spec->synopsis ? " " : "",
            spec->synopsis);
}

void pd_cli_help(const struct pd_cli_spec *spec, FILE *out)
{
    usage_line(spec, out);
    fputs(spec->help, out);
}

/* After a refusal: how the command is used, and where to read more. */
static void hint(const struct pd_cli_spec *spec)
{
    usage_line(spec, stderr);
    fprintf(stderr, "'patchdrop %s --help' describes every option.\n", spec->name);
}

int pd_cli_usage_error(const struct pd_cli_spec *spec, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "patchdrop %s: ", spec->name);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    hint(spec);
    return PD_EXIT_USAGE;
}

void pd_cli_begin(struct pd_cli_parser *p, const struct pd_cli_spec *spec, int argc, char **argv)
{
    size_t n = 0;

    memset(p, 0, sizeof(*p));
    p->spec = spec;
    p->argc = argc;
    p->argv = argv;
    snprintf(p->prog, sizeof(p->prog), "patchdrop %s", spec->name);
    snprintf(p->shortopts, sizeof(p->shortopts), "h%s%s%s%s",
             spec->common & PD_CLI_CONFIG ? "c:" : "", spec->common & PD_CLI_QUIET ? "q" : "",
             spec->common & PD_CLI_VERBOSE ? "v" : "", spec->shortopts ? spec->shortopts : "");
    for (size_t i = 0; i < sizeof(common_opts) / sizeof(common_opts[0]); i++)
        if (common_opts[i].val == 'h' || (spec->common & common_flag(common_opts[i].val)))
            p->opts[n++] = common_opts[i];
    for (size_t i = 0; spec->opts && spec->opts[i].name; i++) {
        assert(n + 1 < PD_CLI_MAX_OPTS);
        p->opts[n++] = spec->opts[i];
    }
    /* p->opts[n] stays zero: the end. */
    optind = 0; /* GNU: start afresh, also after an earlier parse in this process */
    opterr = 1; /* getopt says what is wrong, under argv[0], which pd_cli_next() sets */
}

int pd_cli_next(struct pd_cli_parser *p)
{
    char *argv0 = p->argc > 0 ? p->argv[0] : NULL;
    int c;

    for (;;) {
        /* getopt names the program by argv[0]; ours is "run", a user's is "patchdrop run". */
        if (argv0)
            p->argv[0] = p->prog;
        c = getopt_long(p->argc, p->argv, p->shortopts, p->opts, NULL);
        if (argv0)
            p->argv[0] = argv0;
        p->arg = optarg;
        /* A letter the command did not take as common is its own (send's old -v). */
        if (c > 0 && common_flag(c) && !(p->spec->common & common_flag(c)))
            return c;
        switch (c) {
        case 'c':
            p->config = optarg;
            continue;
        case 'q':
            p->quiet = true;
            continue;
        case 'v':
            p->verbose = true;
            continue;
        case 'h':
            pd_cli_help(p->spec, stdout);
            p->status = PD_EXIT_OK;
            return -1;
        case '?': /* getopt said what: unknown, ambiguous, a value missing or one too many */
            hint(p->spec);
            p->status = PD_EXIT_USAGE;
            return -1;
        case -1:
            p->arg = NULL;
            p->args = p->argv + optind;
            p->nargs = p->argc - optind;
            if (p->spec->max_args >= 0 && p->nargs > p->spec->max_args) {
                p->status = pd_cli_usage_error(p->spec, "unexpected argument '%s'",
                                               p->args[p->spec->max_args]);
                return -1;
            }
            return 0;
        default:
            return c;
        }
    }
}

int pd_cli_parse(struct pd_cli_parser *p, const struct pd_cli_spec *spec, int argc, char **argv)
{
    int c;

    pd_cli_begin(p, spec, argc, argv);
    while ((c = pd_cli_next(p)) > 0)
        ; /* the spec has no options of its own */
    return c;
}
