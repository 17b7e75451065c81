/* The loop and Patchworks client of the one-shot commands (`send`, `lookup`, `flow-run`,
 * `login`, `doctor`). */
#include "pd_cli_net.h"

#include "pd_cli.h"
#include "pd_client.h"
#include "pd_clock.h"
#include "pd_cluster.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_log.h"

#include <stdio.h>
#include <string.h>

/* A note may quote Patchworks' words: escaped, so they can neither drive the terminal nor
 * forge a line. */
static void note_to_stderr(void *arg, const char *line)
{
    struct pd_cli_net *net = arg;
    char safe[2048];
    if (!net->quiet)
        fprintf(net->notes ? net->notes : stderr, "patchdrop %s: %s\n", net->command,
                pd_log_escape(line, safe, sizeof(safe)));
}

static int net_open(struct pd_cli_net *net, const struct pd_config *cfg, const char *command,
                    bool shared)
{
    int rc;
    memset(net, 0, sizeof(*net));
    net->command = command;
    if ((rc = uv_loop_init(&net->loop)) != 0) {
        fprintf(stderr, "patchdrop %s: cannot start the event loop: %s\n", command,
                uv_strerror(rc));
        return PD_EXIT_USAGE;
    }
    /* [cluster]: the command's requests take their permits from Redis as a daemon's do; the
     * cluster's own handles do not keep the loop running once the command is done. */
    if (shared && cfg->cluster.redis) {
        if ((rc = pd_cluster_create(&net->loop, cfg, pd_clock_system(), NULL, &net->cluster))) {
            fprintf(stderr, "patchdrop %s: cannot set up [cluster]: %s\n", command,
                    pd_strerror(rc));
            uv_run(&net->loop, UV_RUN_DEFAULT);
            uv_loop_close(&net->loop);
            return PD_EXIT_USAGE;
        }
        pd_cluster_background(net->cluster);
    }
    struct pd_client_opts o = {
        .pw = &cfg->pw,
        .state_dir = cfg->state.dir,
        .note = note_to_stderr,
        .note_arg = net,
        .cluster = net->cluster,
    };
    if ((rc = pd_client_create(&net->loop, &o, &net->client)) != 0) {
        fprintf(stderr, "patchdrop %s: cannot set up the Patchworks client: %s\n", command,
                pd_strerror(rc));
        pd_cluster_close(&net->cluster);
        uv_run(&net->loop, UV_RUN_DEFAULT);
        uv_loop_close(&net->loop);
        return PD_EXIT_USAGE;
    }
    return 0;
}

int pd_cli_net_open(struct pd_cli_net *net, const struct pd_config *cfg, const char *command)
{
    return net_open(net, cfg, command, false);
}

int pd_cli_net_open_shared(struct pd_cli_net *net, const struct pd_config *cfg,
                           const char *command)
{
    return net_open(net, cfg, command, true);
}

void pd_cli_net_run(struct pd_cli_net *net)
{
    uv_run(&net->loop, UV_RUN_DEFAULT);
}

int pd_cli_net_close(struct pd_cli_net *net)
{
    pd_client_close(&net->client, NULL, NULL);
    uv_run(&net->loop, UV_RUN_DEFAULT);
    pd_cluster_close(&net->cluster); /* after the client: it gives its permits back */
    uv_run(&net->loop, UV_RUN_DEFAULT);
    int rc = uv_loop_close(&net->loop);
    if (rc)
        fprintf(stderr, "patchdrop %s: internal: the event loop still had open handles\n",
                net->command);
    return rc;
}
