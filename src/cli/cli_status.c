/*
 * `patchdrop status RUN_ID`: the old name of `patchdrop flow-run RUN_ID` (src/cli/cli_flow_run.c),
 * kept working with its own usage line and a note on stderr to use the new name. Exit status as
 * flow-run's: 0 the run was found (whatever its status), 1 Patchworks refused or did not answer
 * usefully, 2 usage or configuration error.
 */
#include "pd_cli.h"

static const struct pd_cli_spec spec = {
    .name = "status",
    .synopsis = "[-c FILE] RUN_ID",
    .help = "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "Prints the status of a flow run: running, success, failed, stopped or "
            "partial success.\n"
            "Deprecated: use patchdrop flow-run RUN_ID, which can also show the run's logs and "
            "wait for its end.\n",
    .common = PD_CLI_CONFIG,
    .max_args = 1,
};

int pd_cli_status(int argc, char **argv)
{
    return pd_cli_flow_run_as(&spec, argc, argv);
}
