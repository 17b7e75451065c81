/*
 * `patchdrop status RUN_ID`: asks Patchworks for a flow run and prints its status in words.
 * Exit status: 0 the run was found (whatever its status), 1 Patchworks refused or did not
 * answer usefully, 2 usage or configuration error.
 */
#include "pd_api.h"
#include "pd_cli.h"
#include "pd_cli_net.h"
#include "pd_client.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct status {
    struct pd_cli_net net;
    const char *run_id;
    int rc;
};

static void on_status(void *arg, const struct pd_client_result *r)
{
    struct status *s = arg;
    char *words = NULL, *raw = NULL;
    /* Everything printed below but the run id (checked by pd_api_run_url) comes from
     * Patchworks: escaped for the terminal. */
    char e1[2048], e2[2048];
    if (r->err == PD_ECANCELED)
        return;
    if (r->err) {
        fprintf(stderr, "patchdrop status: flow run %s: %s%s%s%s\n", s->run_id,
                pd_log_escape(r->message ? r->message : pd_strerror(r->err), e1, sizeof(e1)),
                r->api.errors ? " (" : "", pd_log_escape(r->api.errors, e2, sizeof(e2)),
                r->api.errors ? ")" : "");
        s->rc = r->err == PD_EAUTH || r->err == PD_ECONFIG ? PD_EXIT_USAGE : PD_EXIT_FAILED;
        return;
    }
    if (pd_api_parse_run_status(r->body, r->body_len, &words, &raw) != 0) {
        fprintf(stderr, "patchdrop status: flow run %s: the answer has no status: %.300s\n",
                s->run_id, pd_log_escape(r->body, e1, sizeof(e1)));
        s->rc = PD_EXIT_FAILED;
        return;
    }
    if (strcmp(words, raw))
        printf("flow run %s: %s (status %s)\n", s->run_id, pd_log_escape(words, e1, sizeof(e1)),
               pd_log_escape(raw, e2, sizeof(e2)));
    else
        printf("flow run %s: %s\n", s->run_id, pd_log_escape(words, e1, sizeof(e1)));
    free(words);
    free(raw);
    s->rc = PD_EXIT_OK;
}

static const struct pd_cli_spec spec = {
    .name = "status",
    .synopsis = "[-c FILE] RUN_ID",
    .help = "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "Prints the status of a flow run: running, success, failed, stopped or "
            "partial success.\n",
    .common = PD_CLI_CONFIG,
    .max_args = 1,
};

int pd_cli_status(int argc, char **argv)
{
    struct pd_config *cfg = NULL;
    struct pd_cli_parser p;
    struct status s;
    char *url = NULL;

    memset(&s, 0, sizeof(s));
    if (pd_cli_parse(&p, &spec, argc, argv) < 0)
        return p.status;
    if (p.nargs != 1)
        return pd_cli_usage_error(&spec, "give exactly one flow run id");
    s.run_id = p.args[0];
    if (pd_cli_load_config(p.config, &cfg) != 0)
        return PD_EXIT_USAGE;
    s.rc = PD_EXIT_USAGE;
    if (pd_api_run_url(&cfg->pw, s.run_id, &url) != 0) {
        pd_cli_usage_error(&spec, "'%s' is not a flow run id", s.run_id);
        goto out;
    }
    if (pd_cli_net_open(&s.net, cfg, "status") != 0)
        goto out;
    s.rc = PD_EXIT_FAILED;
    struct pd_client_request req = {.method = "GET", .url = url};
    if (pd_client_submit(s.net.client, &req, on_status, &s) != 0)
        s.rc = PD_EXIT_USAGE;
    pd_cli_net_run(&s.net);
    pd_cli_net_close(&s.net);
out:
    free(url);
    pd_config_destroy(&cfg);
    return s.rc;
}
