/* patchdrop: finds the subcommand and hands it the command line. Nothing else lives here. */
#include "pd_cli.h"

#include <stdio.h>
#include <string.h>

static int completion(int argc, char **argv);

static const struct pd_cli_command commands[] = {
    {"run", pd_cli_run,
     "watch the drop folders and deliver every file (--once: what is there now)"},
    {"send", pd_cli_send, "send files to a process flow now, one line per chunk"},
    {"login", pd_cli_login, "check the credentials and show when the token expires"},
    {"flow-run", pd_cli_flow_run,
     "show a flow run's status, times and logs; --wait for its end; retry it"},
    {"status", pd_cli_status,
     "what the running daemon is doing: watches, files in flight, failures, the account"},
    {"retry", pd_cli_retry, "put failed files back into their drop folders to be sent again"},
    {"lookup", pd_cli_lookup, "manage cross-reference lookups; sync a CSV file into one"},
    {"check-config", pd_cli_check_config, "validate a config file and print it, secrets masked"},
    {"doctor", pd_cli_doctor, "check everything between this host and a working account"},
    {"version", pd_cli_version, "print the version of patchdrop (also --version, -V)"},
    {"completion", completion, NULL}, /* hidden: the shell completion script */
};

static int completion(int argc, char **argv)
{
    return pd_cli_completion(commands, sizeof(commands) / sizeof(commands[0]), argc, argv);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: patchdrop COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (commands[i].summary)
            fprintf(out, "  %-14s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n'patchdrop COMMAND --help' describes a command's options;\n"
                 "'patchdrop --version' (or -V) prints the version.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return PD_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return PD_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
        return pd_cli_version(argc - 1, argv + 1);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "patchdrop: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return PD_EXIT_USAGE;
}
