/*
 * `patchdrop check-config`: validate a config file and print it, secrets masked, then check that
 * the user the service runs as can reach every file and folder it needs (src/app/access.c). Also the
 * config loader every command uses, which first makes the process impossible to dump (it is about
 * to hold the password) and then warns (at every start) about settings that weaken security:
 * tls_verify = no, Patchworks URLs in plain http:// to another machine, and drop folders
 * writable by everyone. check-config also warns about a metrics listener beyond loopback.
 */
#include "pd_access.h"
#include "pd_cli.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_netaddr.h"
#include "pd_zone.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define DEFAULT_CONFIG "/etc/patchdrop/patchdrop.conf"
/* The user the package creates and the unit runs the service as. */
#define SERVICE_USER "patchdrop"

const char *pd_cli_config_path(const char *arg)
{
    const char *env = getenv("PATCHDROP_CONFIG");
    if (arg)
        return arg;
    if (env && *env)
        return env;
    return DEFAULT_CONFIG;
}

/*
 * Every command that loads the config holds the password or API key from then on, and soon a
 * token. A core dump would write them to disk, and a dumpable process lets any process of the
 * same user read its memory (ptrace, /proc/PID/mem) and environment. Not dumpable, the process
 * writes no core and its /proc files belong to root. The unit sets LimitCORE=0 as well. This
 * cannot fail for these arguments; were it to, nothing else would change, so it is not checked.
 */
static void protect_secrets(void)
{
    prctl(PR_SET_DUMPABLE, 0L, 0L, 0L, 0L);
}

/* Each Patchworks URL in use, and what would travel in clear over plain http. */
static void warn_cleartext(const struct pd_config *cfg)
{
    const struct pd_patchworks *pw = &cfg->pw;
    const char *secret = pw->auth == PD_AUTH_PASSWORD ? "the token" : "the API key";
    const struct {
        const char *key, *url, *what;
    } urls[] = {
        {"login_url", pw->auth == PD_AUTH_PASSWORD ? pw->login_url : NULL,
         "the email and password"},
        {"start_url", pw->start_url, "the files"},
        {"core_url", pw->core_url, "flow run details"},
        {"lookups_url", pw->lookups_url, "lookup rows"},
    };
    char host[256];

    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        if (urls[i].url && pd_url_is_cleartext_remote(urls[i].url, host, sizeof(host)))
            fprintf(stderr,
                    "patchdrop: WARNING: %s in %s is plain http:// to %s, not this machine: %s%s%s "
                    "travel in clear, anyone on the path can read them; use https://\n",
                    urls[i].key, cfg->file, host, urls[i].what, i == 0 ? "" : " and ",
                    i == 0 ? "" : secret);
}

const char *pd_cli_metrics_exposed(const struct pd_config *cfg)
{
    struct sockaddr_storage ss;
    unsigned len;

    if (!cfg->metrics.listen || pd_parse_listen(cfg->metrics.listen, &ss, &len) ||
        pd_sockaddr_is_loopback((const struct sockaddr *)&ss))
        return NULL;
    if (cfg->metrics.token_file)
        return "token_file guards /metrics and the status, but the token travels in clear over "
               "http and /healthz stays open: put TLS in front (a reverse proxy) or keep the "
               "port on a trusted network";
    return "/metrics and /healthz have no authentication: anyone who can reach the port reads "
           "them; listen on 127.0.0.1 (scrape through an authenticating proxy), set [metrics] "
           "token_file, or firewall the port";
}

int pd_cli_load_config(const char *file, struct pd_config **out)
{
    char *errors = NULL;
    int rc;

    protect_secrets();
    rc = pd_config_load(pd_cli_config_path(file), out, &errors);

    if (rc) {
        fputs(errors ? errors : "patchdrop: cannot read the config\n", stderr);
        fprintf(stderr, "patchdrop: configuration not loaded; fix the lines above\n");
        free(errors);
        return PD_EXIT_USAGE;
    }
    free(errors);
    if (!(*out)->pw.tls_verify)
        fprintf(stderr, "patchdrop: WARNING: tls_verify = no in %s: certificates are NOT "
                        "checked, anyone on the path can read your data and credentials\n",
                (*out)->file);
    if ((*out)->cluster.redis && !(*out)->cluster.tls_verify)
        fprintf(stderr, "patchdrop: WARNING: tls_verify = no in [cluster] of %s: Redis's "
                        "certificate is NOT checked, anyone on the path can read and change what "
                        "the hosts share (the login token); set ca_file instead\n",
                (*out)->file);
    warn_cleartext(*out);
    /* A folder everyone may write to without the sticky bit lets any local user rename or
     * replace another user's upload before it is sent. */
    for (size_t i = 0; i < (*out)->nwatches; i++) {
        const struct pd_watch *w = &(*out)->watches[i];
        struct stat st;
        if (w->path && stat(w->path, &st) == 0 && (st.st_mode & S_IWOTH) &&
            !(st.st_mode & S_ISVTX))
            fprintf(stderr,
                    "patchdrop: WARNING: [watch:%s] path %s is writable by everyone (mode %04o, "
                    "no sticky bit): any local user can replace or delete a file before it is "
                    "sent; run chmod o-w %s (or chmod +t %s)\n",
                    w->name, w->path, (unsigned)(st.st_mode & 07777), w->path, w->path);
    }
    return PD_EXIT_OK;
}

/*
 * Whose view to check: --user NAME; else, for root, the service's user when it exists (root
 * reads everything, so its own view proves nothing); else our own. *IMPLICIT says the service's
 * user was chosen without being asked for.
 */
static int choose_user(const char *name, struct pd_access_user *u, bool *implicit)
{
    *implicit = false;
    if (name) {
        if (pd_access_user_lookup(name, u) == 0)
            return 0;
        fprintf(stderr, "patchdrop check-config: --user %s: there is no such user\n", name);
        return PD_EXIT_USAGE;
    }
    if (geteuid() == 0 && pd_access_user_lookup(SERVICE_USER, u) == 0) {
        *implicit = true;
        return 0;
    }
    pd_access_user_self(u);
    return 0;
}

/*
 * The trust boundary and the service user's view (docs/architecture.md): every file the daemon
 * reads, every drop folder it claims from and every folder it keeps, checked with that user's
 * credentials. Says each problem and its fix; returns the exit status.
 */
static int check_access(const struct pd_config *cfg, const char *file, const char *user)
{
    struct pd_access_user u;
    bool implicit;
    char *abs = NULL;
    int rc = choose_user(user, &u, &implicit);

    if (rc)
        return rc;
    /* The service is started from another folder, and the user may not even enter ours. */
    if (file[0] != '/') {
        char *cwd = getcwd(NULL, 0);
        if (!cwd || asprintf(&abs, "%s/%s", cwd, file) < 0)
            abs = NULL;
        free(cwd);
    }
    rc = pd_access_check_as(cfg, abs ? abs : file, &u, stderr);
    free(abs);
    if (rc == -EPERM) {
        fprintf(stderr,
                "patchdrop check-config: checking as %s needs root (the checks run with that "
                "user's own credentials); run it with sudo, or leave out --user\n",
                u.name);
        return PD_EXIT_USAGE;
    }
    if (rc < 0) {
        fprintf(stderr, "patchdrop check-config: cannot check as %s: %s\n", u.name,
                pd_strerror(rc));
        return PD_EXIT_USAGE;
    }
    if (rc > 0) {
        fprintf(stderr,
                "patchdrop check-config: checked as %s (uid %u)%s: patchdrop would fail to start "
                "a watch, or leave files behind, until the above is fixed as said\n",
                u.name, (unsigned)u.uid,
                implicit ? ", the user the service runs as (--user NAME checks as another)" : "");
        return PD_EXIT_USAGE;
    }
    return PD_EXIT_OK;
}

static const struct option check_opts[] = {{"user", required_argument, NULL, 'u'},
                                           {NULL, 0, NULL, 0}};

static const struct pd_cli_spec spec = {
    .name = "check-config",
    .synopsis = "[-c FILE] [-q] [-u USER]",
    .help = "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or " DEFAULT_CONFIG ")\n"
            "  -q, --quiet        only validate; print nothing when the file is good\n"
            "  -u, --user USER    check that USER can read and write what patchdrop needs\n"
            "                     (default: " SERVICE_USER " when it exists and we are root, "
            "else ourselves)\n"
            "Exit status: 0 good, 2 anything to fix (each problem is said with its fix).\n",
    .common = PD_CLI_CONFIG | PD_CLI_QUIET,
    .opts = check_opts,
    .shortopts = "u:",
    .max_args = 0,
};

int pd_cli_check_config(int argc, char **argv)
{
    const char *file, *user = NULL;
    struct pd_config *cfg = NULL;
    struct pd_cli_parser p;
    struct pd_access_user u;
    int c, rc;

    pd_cli_begin(&p, &spec, argc, argv);
    while ((c = pd_cli_next(&p)) > 0)
        if (c == 'u')
            user = p.arg;
    if (c < 0)
        return p.status;
    /* A user that does not exist is a mistake on the command line: said before the file. */
    if (user && pd_access_user_lookup(user, &u) != 0)
        return pd_cli_usage_error(&spec, "--user %s: there is no such user", user);
    file = p.config;
    rc = pd_cli_load_config(file, &cfg);
    if (rc)
        return rc;
    if (pd_cli_metrics_exposed(cfg))
        fprintf(stderr,
                "patchdrop: WARNING: [metrics] listen = %s in %s is not a loopback "
                "address: %s\n",
                cfg->metrics.listen, cfg->file, pd_cli_metrics_exposed(cfg));
    if (!p.quiet)
        pd_config_print(cfg, stdout);
    /* Whether a file still open for writing can be told from a finished one (a read lease
     * needs CAP_LEASE or owning the file); the packaged unit grants it. */
    if (!pd_zone_lease_possible())
        fprintf(stderr,
                "patchdrop: note: no CAP_LEASE here: a daemon started like this takes a "
                "partner's file once it stopped changing for settle, even if its writer still "
                "holds it open (the packaged unit grants AmbientCapabilities=CAP_LEASE)\n");
    rc = check_access(cfg, pd_cli_config_path(file), user);
    pd_config_destroy(&cfg);
    return rc ? rc : PD_EXIT_OK;
}
