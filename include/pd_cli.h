/*
 * The subcommands of `patchdrop`. main.c only finds the command and calls it; each command
 * parses its own options and returns the process exit status:
 *   0 everything done, 1 something was rejected or failed, 2 usage or configuration error.
 */
#ifndef PD_CLI_H
#define PD_CLI_H

#define PD_EXIT_OK 0
#define PD_EXIT_FAILED 1
#define PD_EXIT_USAGE 2

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

int pd_cli_check_config(int argc, char **argv);
int pd_cli_doctor(int argc, char **argv);
int pd_cli_run(int argc, char **argv);
int pd_cli_send(int argc, char **argv);
int pd_cli_login(int argc, char **argv);
int pd_cli_status(int argc, char **argv);
/* `status --cluster` (cli_status_cluster.c): every host of CFG's [cluster]. */
struct pd_config;
int pd_cli_status_cluster(const struct pd_config *cfg, bool json);
int pd_cli_flow_run(int argc, char **argv);
int pd_cli_lookup(int argc, char **argv);
int pd_cli_version(int argc, char **argv);
int pd_cli_retry(int argc, char **argv);

/* --since of retry: a duration back from NOW_MS (1h, 2d) or a local date (2026-11-30,
 * 2026-11-30T08:00[:00]) into *SINCE_MS (wall clock). 0 or PD_ECONFIG. */
#include <stdint.h>
int pd_cli_parse_since(const char *s, uint64_t now_ms, uint64_t *since_ms);

/*
 * --dry-run (src/cli/cli_dryrun.c): one line per file to OUT, what would be taken (and how it
 * would be cut: format, chunks, request bytes, records) or skipped and why, then a summary;
 * no request, nothing claimed, moved or changed. Exit status: 0, or 1 when a file would fail.
 * _run: every flow watch's drop folder (and work/) as run --once finds them; _send: the files
 * PATHS as send would cut them with W's settings (NULL: --flow, split = auto).
 */
struct pd_config;
struct pd_watch;
int pd_cli_dryrun_run(const struct pd_config *cfg, FILE *out);
int pd_cli_dryrun_send(const struct pd_config *cfg, const struct pd_watch *w, char **paths,
                       int n, FILE *out);

/* A line of the command table (src/cli/main.c); a command without a summary is hidden. */
struct pd_cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};
/* `patchdrop completion bash|zsh`: the script for the N commands of CMDS (cli_completion.c). */
int pd_cli_completion(const struct pd_cli_command *cmds, size_t n, int argc, char **argv);

/*
 * The command line of one command (src/cli/cli_opts.c), parsed the same way for all: -h/--help
 * always; -c/--config FILE, -q/--quiet and -v/--verbose, each with one meaning, where the
 * command says it has them; then its own options. Every refusal is "patchdrop CMD: why" (getopt's
 * words, for options), the usage line and where --help is, on stderr, with exit status 2.
 */
#define PD_CLI_CONFIG 1u  /* -c, --config FILE */
#define PD_CLI_QUIET 2u   /* -q, --quiet */
#define PD_CLI_VERBOSE 4u /* -v, --verbose */

struct pd_cli_spec {
    const char *name;          /* "run": messages start "patchdrop run: " */
    const char *synopsis;      /* after "usage: patchdrop run ": "[-c FILE] [--once] [-v]" */
    const char *help;          /* what --help prints after the usage line: options, notes */
    unsigned common;           /* PD_CLI_CONFIG | PD_CLI_QUIET ...: the common options it takes */
    const struct option *opts; /* its own options, a {NULL} entry last; NULL: none */
    const char *shortopts;     /* their short letters for getopt ("w:f:"); NULL: none */
    int max_args;              /* operands at most (more are refused); -1: any number */
};

#define PD_CLI_MAX_OPTS 24

struct pd_cli_parser {
    const struct pd_cli_spec *spec;
    int argc;
    char **argv;
    char prog[64]; /* "patchdrop run": argv[0] while parsing, so getopt's words say it */
    char shortopts[64];
    struct option opts[PD_CLI_MAX_OPTS];
    /* The common options, as given. */
    const char *config;
    bool quiet, verbose;
    const char *arg; /* the value of the option pd_cli_next() returned, or NULL */
    int status;      /* when pd_cli_next() returned -1: the exit status */
    char **args;     /* when it returned 0: the operands */
    int nargs;
};

void pd_cli_begin(struct pd_cli_parser *p, const struct pd_cli_spec *spec, int argc, char **argv);

/*
 * The next of the command's own options (its `val`, p->arg its value); 0 once every option was
 * read (p->args, p->nargs: the operands); -1 when the command must exit with p->status: --help
 * was printed (0) or the command line was refused (2, said on stderr).
 */
int pd_cli_next(struct pd_cli_parser *p);

/* pd_cli_begin() and pd_cli_next() for a command with only the common options: 0 once all were
 * read, -1 when the command must exit with p->status. */
int pd_cli_parse(struct pd_cli_parser *p, const struct pd_cli_spec *spec, int argc, char **argv);

/* Prints --help of the command. */
void pd_cli_help(const struct pd_cli_spec *spec, FILE *out);

/* Refuses the command line: "patchdrop CMD: " and the message, the usage line and where
 * --help is, on stderr. Returns PD_EXIT_USAGE. */
int pd_cli_usage_error(const struct pd_cli_spec *spec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/*
 * Loads the config named by -c/--config (or $PATCHDROP_CONFIG, or /etc/patchdrop/patchdrop.conf),
 * printing every error to stderr. Returns 0 and *out, or PD_EXIT_USAGE. Every command that
 * holds a secret calls it first: it makes the process non-dumpable (no core file, /proc/PID
 * closed to the user) before the password is read, and warns on stderr about settings that
 * weaken security (tls_verify = no, plain http:// to another machine, world-writable folders).
 */
struct pd_config;
int pd_cli_load_config(const char *file, struct pd_config **out);

/* Why [metrics] listen is a risk (words for a warning), or NULL when it is off or loopback. */
const char *pd_cli_metrics_exposed(const struct pd_config *cfg);

/* `patchdrop flow-run` under the name and usage of SPEC (`status RUN_ID`, its old name): ID
 * only, no options of its own; a note on stderr says to use flow-run. */
int pd_cli_flow_run_as(const struct pd_cli_spec *spec, int argc, char **argv);

/* The config file the user meant: the argument, $PATCHDROP_CONFIG or the system default. */
const char *pd_cli_config_path(const char *arg);

#endif
