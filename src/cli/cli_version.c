/* `patchdrop version` (also `patchdrop --version` and `-V`): the program's version, one line. */
#include "pd_cli.h"

static const struct pd_cli_spec spec = {
    .name = "version",
    .synopsis = "",
    .help = "Prints the version of patchdrop, e.g. \"patchdrop 0.1.0\" (also: patchdrop "
            "--version, patchdrop -V).\n",
    .max_args = 0,
};

int pd_cli_version(int argc, char **argv)
{
    struct pd_cli_parser p;

    if (pd_cli_parse(&p, &spec, argc, argv) < 0)
        return p.status;
    printf("patchdrop %s\n", PD_VERSION);
    return PD_EXIT_OK;
}
