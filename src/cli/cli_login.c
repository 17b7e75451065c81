/*
 * `patchdrop login`: checks the credentials against Patchworks now and tells when the token
 * expires. Password mode logs in afresh (replacing the kept token, so a changed password is
 * really checked); API-key mode asks for one flow run page to see whether the key is accepted.
 * Never prints the token, password or key.
 */
#include "pd_auth.h"
#include "pd_cli.h"
#include "pd_cli_net.h"
#include "pd_client.h"
#include "pd_clock.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct login {
    struct pd_cli_net net;
    const struct pd_config *cfg;
    struct pd_auth_wait wait;
    int rc;
};

static void on_logged_in(void *arg, int err, const char *message)
{
    struct login *l = arg;
    char safe[2048];
    if (err) {
        /* The message may quote Patchworks: escaped for the terminal. */
        fprintf(stderr, "patchdrop login: %s\n",
                pd_log_escape(message ? message : pd_strerror(err), safe, sizeof(safe)));
        l->rc = err == PD_EAUTH || err == PD_ECONFIG ? PD_EXIT_USAGE : PD_EXIT_FAILED;
        return;
    }
    struct pd_auth *a = pd_client_auth(l->net.client);
    uint64_t exp = pd_auth_expires_at(a);
    uint64_t now = pd_clock_system()->wall_ms(NULL);
    time_t t = (time_t)(exp / 1000);
    struct tm tm;
    char when[64] = "?";
    if (localtime_r(&t, &tm))
        strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S %Z", &tm);
    uint64_t left = exp > now ? (exp - now) / 1000 : 0;
    printf("logged in as %s at %s; the token expires %s (in %lluh %02llum)%s\n",
           l->cfg->pw.email, l->cfg->pw.login_url, when, (unsigned long long)(left / 3600),
           (unsigned long long)(left % 3600 / 60),
           l->cfg->state.dir ? "; kept in the state dir" : "");
    l->rc = PD_EXIT_OK;
}

/* Any answer but 401 means the key passed authentication, even when the page is missing. */
static void on_key_checked(void *arg, const struct pd_client_result *r)
{
    struct login *l = arg;
    char safe[2048];
    if (r->err == 0 || r->err == PD_EREJECTED) {
        printf("the API key was not refused (HTTP %ld from %s); API keys do not expire\n",
               r->api.status, l->cfg->pw.core_url);
        l->rc = PD_EXIT_OK;
    } else if (r->err == PD_EAUTH || r->err == PD_ECONFIG) {
        fprintf(stderr, "patchdrop login: %s\n", pd_log_escape(r->message, safe, sizeof(safe)));
        l->rc = PD_EXIT_USAGE;
    } else if (r->err != PD_ECANCELED) {
        fprintf(stderr, "patchdrop login: could not check the API key: %s\n",
                pd_log_escape(r->message ? r->message : pd_strerror(r->err), safe, sizeof(safe)));
        l->rc = PD_EXIT_FAILED;
    }
}

static const struct pd_cli_spec spec = {
    .name = "login",
    .synopsis = "[-c FILE]",
    .help = "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "Checks the credentials with Patchworks and prints when the token expires.\n",
    .common = PD_CLI_CONFIG,
    .max_args = 0,
};

int pd_cli_login(int argc, char **argv)
{
    struct pd_config *cfg = NULL;
    struct pd_cli_parser p;
    struct login l;
    char *url = NULL;

    memset(&l, 0, sizeof(l));
    if (pd_cli_parse(&p, &spec, argc, argv) < 0)
        return p.status;
    if (pd_cli_load_config(p.config, &cfg) != 0)
        return PD_EXIT_USAGE;
    l.cfg = cfg;
    l.rc = PD_EXIT_FAILED;
    if (pd_cli_net_open(&l.net, cfg, "login") != 0) {
        l.rc = PD_EXIT_USAGE;
        goto out;
    }
    if (cfg->pw.auth == PD_AUTH_PASSWORD) {
        struct pd_auth *a = pd_client_auth(l.net.client);
        pd_auth_forget(a);
        pd_auth_wait(a, &l.wait, on_logged_in, &l);
    } else if (asprintf(&url, "%s/flow-runs?per_page=1", cfg->pw.core_url) >= 0) {
        struct pd_client_request req = {.method = "GET", .url = url};
        if (pd_client_submit(l.net.client, &req, on_key_checked, &l) != 0)
            l.rc = PD_EXIT_USAGE;
    }
    pd_cli_net_run(&l.net);
    pd_cli_net_close(&l.net);
out:
    free(url);
    pd_config_destroy(&cfg);
    return l.rc;
}
