/*
 * What the network subcommands (send, lookup, flow-run, login, doctor) share: one libuv loop and one Patchworks
 * client built from the config, notes about retries and logins on stderr, and a clean shutdown
 * that proves every handle was closed.
 */
#ifndef PD_CLI_NET_H
#define PD_CLI_NET_H

#include <stdio.h>
#include <uv.h>

struct pd_config;
struct pd_client;
struct pd_cluster;

struct pd_cli_net {
    uv_loop_t loop;
    struct pd_client *client;
    struct pd_cluster *cluster; /* [cluster], for the commands that share the account's rate */
    const char *command; /* "send", for messages */
    int quiet;           /* no notes on stderr */
    FILE *notes;         /* where notes go; NULL: stderr (send: a stream that wipes its bar) */
};

/* Returns 0, or PD_EXIT_USAGE after saying why on stderr. */
int pd_cli_net_open(struct pd_cli_net *net, const struct pd_config *cfg, const char *command);
/* The same for a command that sends many requests (send, lookup, flow-run): with [cluster], its
 * requests take their permits from Redis as a daemon's do. login and doctor check the account
 * on their own and stay out. */
int pd_cli_net_open_shared(struct pd_cli_net *net, const struct pd_config *cfg,
                           const char *command);

/* Runs the loop until nothing is left to do. */
void pd_cli_net_run(struct pd_cli_net *net);

/* Closes the client (canceling what is left), drains the loop and closes it. Returns 0 when
 * the loop closed clean. */
int pd_cli_net_close(struct pd_cli_net *net);

#endif
