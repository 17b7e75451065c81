/*
 * `patchdrop doctor`: everything between this host and a working account, checked in one go,
 * one line each: the config (as check-config), access as the service's user, DNS, TCP and TLS to
 * every endpoint, the login and its token, a read-only call per API family, and the shapes of
 * the answers. It starts a flow only when --start-test says so. The calls are in doctor_api.c,
 * the words and the shapes in doctor_report.c.
 */
#include "doctor_internal.h"

#include "pd_access.h"
#include "pd_cli.h"
#include "pd_error.h"
#include "pd_lookup.h"
#include "pd_netaddr.h"
#include "pd_probe.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SERVICE_USER "patchdrop"
/* Each step of a probe; a doctor that waits minutes for a dead host helps nobody. */
#define PROBE_TIMEOUT_MS 10000u
/* A request is retried this long at most (the daemon retries for days). */
#define DOCTOR_RETRY_MS 20000u
/* A certificate closer than this to its end is worth a warning. */
#define CERT_WARN_DAYS 14

/* The service's user sees the config, the secrets and the folders: its own view, as root. */
static void check_access(struct doctor *d, const char *file)
{
    struct pd_access_user u;
    char *abs = NULL, line[2048], name[96];
    FILE *out;
    int rc;

    if (d->user)
        pd_access_user_lookup(d->user, &u); /* checked with the command line */
    else if (geteuid() != 0 || pd_access_user_lookup(SERVICE_USER, &u) != 0)
        pd_access_user_self(&u);
    out = tmpfile();
    snprintf(name, sizeof(name), "access as %s", u.name);
    if (!out) {
        CHECK(d, PD_CHECK_FAIL, name, NULL, "cannot make a temporary file to check with");
        return;
    }
    if (file[0] != '/') {
        char *cwd = getcwd(NULL, 0);
        if (!cwd || asprintf(&abs, "%s/%s", cwd, file) < 0)
            abs = NULL;
        free(cwd);
    }
    /* The check may run in a child with the user's ids: it writes into the file's descriptor. */
    rc = pd_access_check_as(d->cfg, abs ? abs : file, &u, out);
    free(abs);
    fflush(out);
    rewind(out);
    while (fgets(line, sizeof(line), out)) {
        const char *p = line, *pre = "patchdrop check-config: ";
        bool warn;
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(p, pre, strlen(pre)))
            p += strlen(pre);
        warn = !strncmp(p, "WARNING: ", 9);
        CHECK(d, warn ? PD_CHECK_WARN : PD_CHECK_FAIL, name, NULL, "%s", p + (warn ? 9 : 0));
    }
    fclose(out);
    if (rc == 0)
        CHECK(d, PD_CHECK_OK, name, NULL,
              "%s (uid %u) can read, enter and write everything patchdrop needs", u.name,
              (unsigned)u.uid);
    else if (rc < 0)
        CHECK(d, PD_CHECK_FAIL, name, "run patchdrop doctor as root or as that user",
              "cannot check as %s: %s", u.name, pd_strerror(rc));
}

static void check_config(struct doctor *d, const char *file)
{
    const struct pd_config *cfg = d->cfg;
    const char *why = pd_cli_metrics_exposed(cfg);

    CHECK(d, PD_CHECK_OK, "config", NULL, "%s is valid: %zu watch%s, %s", cfg->file, cfg->nwatches,
          cfg->nwatches == 1 ? "" : "es",
          cfg->pw.auth == PD_AUTH_API_KEY ? "an API key" : "a login with email and password");
    if (!cfg->pw.tls_verify)
        CHECK(d, PD_CHECK_WARN, "config tls_verify",
              "remove tls_verify = no; for a private CA "
              "set ca_file",
              "tls_verify = no: certificates are NOT checked, anyone on the path "
              "can read your data and credentials");
    if (why)
        CHECK(d, PD_CHECK_WARN, "config metrics", NULL, "[metrics] listen = %s: %s",
              cfg->metrics.listen, why);
    check_access(d, file);
}

/* The TLS step of one endpoint; returns whether requests can pass it. */
static bool check_tls(struct doctor *d, const char *key, const char *url,
                      const struct pd_probe_url *u)
{
    char name[64], why[512], fix[1024];
    struct pd_probe_cert cert;
    const struct pd_patchworks *pw = &d->pw;
    int rc;

    snprintf(name, sizeof(name), "tls %s", key);
    rc = pd_probe_tls(url, pw->tls_verify, pw->ca_file, PROBE_TIMEOUT_MS, &cert, why, sizeof(why));
    if (rc == PD_ECONFIG) {
        snprintf(fix, sizeof(fix),
                 "if %s is the right server, put the certificate of the CA that signed its "
                 "certificate (PEM) in a file and set ca_file to it%s; if it is not, check the "
                 "URL, DNS and any proxy that intercepts TLS. Never tls_verify = no",
                 u->host, pw->ca_file ? " (the one set does not sign it)" : "");
        if (cert.have)
            CHECK(d, PD_CHECK_FAIL, name, fix,
                  "certificate refused: %s; %s:%s presented subject %s, issued by %s, %s %ld "
                  "days",
                  why, u->host, u->port, cert.subject, cert.issuer,
                  cert.days_left < 0 ? "expired" : "expires in",
                  cert.days_left < 0 ? -cert.days_left : cert.days_left);
        else
            CHECK(d, PD_CHECK_FAIL, name, fix, "certificate refused: %s", why);
        return false;
    }
    if (rc) {
        CHECK(d, PD_CHECK_FAIL, name, "check that the URL's port speaks https (TLS 1.2 or later)",
              "TLS handshake with %s:%s failed: %s", u->host, u->port, why);
        return false;
    }
    if (!pw->tls_verify)
        CHECK(d, PD_CHECK_WARN, name, "remove tls_verify = no; for a private CA set ca_file",
              "TLS handshake with %s:%s passed, the certificate NOT checked (tls_verify = no)%s%s",
              u->host, u->port, cert.have ? ": subject " : "", cert.have ? cert.subject : "");
    else if (!cert.have)
        CHECK(d, PD_CHECK_OK, name, NULL, "TLS handshake with %s:%s passed", u->host, u->port);
    else if (cert.days_left < CERT_WARN_DAYS)
        CHECK(d, PD_CHECK_WARN, name, "the server's operator must renew its certificate soon",
              "certificate of %s (subject %s, issued by %s) %s %ld days", u->host, cert.subject,
              cert.issuer, cert.days_left < 0 ? "expired" : "expires in",
              cert.days_left < 0 ? -cert.days_left : cert.days_left);
    else
        CHECK(d, PD_CHECK_OK, name, NULL,
              "certificate of %s verified: subject %s, issued by %s, expires in %ld days", u->host,
              cert.subject, cert.issuer, cert.days_left);
    return true;
}

/* DNS, TCP and TLS to one endpoint; returns whether requests can reach it. */
static bool check_endpoint(struct doctor *d, const char *key, const char *url)
{
    struct pd_probe_url u;
    struct addrinfo *res = NULL;
    char name[64], why[512], addrs[256], addr[64], host[256];
    bool ok;

    snprintf(name, sizeof(name), "url %s", key);
    if (pd_probe_url_parse(url, &u, why, sizeof(why)) != 0) {
        CHECK(d, PD_CHECK_FAIL, name, "set it to an https:// URL", "%s: %s", url, why);
        return false;
    }
    snprintf(name, sizeof(name), "dns %s", key);
    if (pd_probe_dns(u.host, u.port, &res, addrs, sizeof(addrs), why, sizeof(why)) != 0) {
        CHECK(d, PD_CHECK_FAIL, name,
              "check the host name in the URL and this machine's DNS "
              "(/etc/resolv.conf)",
              "%s does not resolve: %s", u.host, why);
        return false;
    }
    CHECK(d, PD_CHECK_OK, name, NULL, "%s resolves to %s", u.host, addrs);
    snprintf(name, sizeof(name), "tcp %s", key);
    ok = pd_probe_tcp(res, PROBE_TIMEOUT_MS, addr, sizeof(addr), why, sizeof(why)) == 0;
    freeaddrinfo(res);
    if (!ok) {
        CHECK(d, PD_CHECK_FAIL, name,
              "check the port in the URL, and firewalls or proxies "
              "between this machine and the server",
              "cannot connect to %s port %s (%s): %s", u.host, u.port, addr, why);
        return false;
    }
    CHECK(d, PD_CHECK_OK, name, NULL, "connected to %s port %s", addr, u.port);
    if (!strcmp(u.scheme, "https"))
        return check_tls(d, key, url, &u);
    snprintf(name, sizeof(name), "tls %s", key);
    if (pd_url_is_cleartext_remote(url, host, sizeof(host)))
        CHECK(d, PD_CHECK_WARN, name, "use https://",
              "plain http:// to %s, not this machine: credentials and data travel in clear", host);
    else
        CHECK(d, PD_CHECK_SKIP, name, NULL, "plain http:// to this machine: no TLS");
    return true;
}

static void check_endpoints(struct doctor *d)
{
    const struct pd_patchworks *pw = &d->pw;
    const char *keys[] = {"login_url", "start_url", "core_url", "lookups_url"};
    const char *urls[] = {pw->auth == PD_AUTH_PASSWORD ? pw->login_url : NULL, pw->start_url,
                          pw->core_url, pw->lookups_url};

    for (int i = 0; i < 4; i++) {
        int same = -1;
        if (!urls[i])
            continue;
        /* One host and port is probed once; the others say so. */
        for (int j = 0; j < i && same < 0; j++) {
            struct pd_probe_url a, b;
            char why[128];
            if (urls[j] && !pd_probe_url_parse(urls[i], &a, why, sizeof(why)) &&
                !pd_probe_url_parse(urls[j], &b, why, sizeof(why)) && !strcmp(a.scheme, b.scheme) &&
                !strcmp(a.host, b.host) && !strcmp(a.port, b.port))
                same = j;
        }
        if (same >= 0) {
            char name[64];
            snprintf(name, sizeof(name), "endpoint %s", keys[i]);
            d->reachable[i] = d->reachable[same];
            CHECK(d, d->reachable[i] ? PD_CHECK_OK : PD_CHECK_FAIL, name, NULL,
                  "the same host and port as %s, %s above", keys[same],
                  d->reachable[i] ? "checked" : "which failed");
        } else {
            d->reachable[i] = check_endpoint(d, keys[i], urls[i]);
        }
    }
}

static const struct option doctor_opts[] = {{"json", no_argument, NULL, 'j'},
                                            {"user", required_argument, NULL, 'u'},
                                            {"flow-run", required_argument, NULL, 'r'},
                                            {"start-test", required_argument, NULL, 's'},
                                            {NULL, 0, NULL, 0}};

static const struct pd_cli_spec spec = {
    .name = "doctor",
    .synopsis = "[-c FILE] [-u USER] [--json] [--flow-run ID] [--start-test FLOW[:VERSION]]",
    .help = "  -c, --config FILE        config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "  -u, --user USER          check access as USER (default: " SERVICE_USER " when it\n"
            "                           exists and we are root, else ourselves)\n"
            "      --json               one JSON document: status and checks (name, status,\n"
            "                           detail, fix)\n"
            "      --flow-run ID        also read flow run ID (read only)\n"
            "      --start-test FLOW[:VERSION]\n"
            "                           also start FLOW with a tiny test payload and show the\n"
            "                           run's id (nothing is started without it)\n"
            "Checks the config, access as the service's user, DNS, TCP and TLS to every\n"
            "endpoint, the login, one read-only call per API family and the shapes of the\n"
            "answers; one line per check: ok, warn, FAIL or skip, with what to do.\n"
            "Exit status: 0 all ok (warnings allowed), 1 a check failed, 2 usage or config.\n",
    .common = PD_CLI_CONFIG,
    .opts = doctor_opts,
    .shortopts = "u:",
    .max_args = 0,
};

/* Reads the options into D; returns -1 to go on, else the exit status. */
static int parse(struct doctor *d, int argc, char **argv, const char **config, bool *json)
{
    struct pd_cli_parser p;
    const char *start = NULL, *colon;
    int c;

    pd_cli_begin(&p, &spec, argc, argv);
    while ((c = pd_cli_next(&p)) > 0) {
        if (c == 'j')
            *json = true;
        else if (c == 'r')
            d->flow_run = p.arg;
        else if (c == 's')
            start = p.arg;
        else if (c == 'u')
            d->user = p.arg;
    }
    if (c < 0)
        return p.status;
    if (d->user && pd_access_user_lookup(d->user, &(struct pd_access_user){0}) != 0)
        return pd_cli_usage_error(&spec, "--user %s: there is no such user", d->user);
    *config = p.config;
    if (d->flow_run && !pd_lookup_id_valid(d->flow_run))
        return pd_cli_usage_error(&spec, "--flow-run '%s' is not a flow run id", d->flow_run);
    if (!start)
        return -1;
    colon = strchr(start, ':');
    d->start_flow = strndup(start, colon ? (size_t)(colon - start) : strlen(start));
    d->start_version = colon ? strdup(colon + 1) : NULL;
    if (!d->start_flow || (colon && !d->start_version))
        return PD_EXIT_FAILED;
    if (!pd_lookup_id_valid(d->start_flow) || (colon && !pd_lookup_id_valid(colon + 1)))
        return pd_cli_usage_error(&spec,
                                  "--start-test '%s': expected FLOW or FLOW:VERSION, ids of "
                                  "letters, digits, '-', '_' or '.'",
                                  start);
    return -1;
}

static void print_checks(const struct doctor *d, bool json)
{
    if (json) {
        char *text = pd_checks_json(&d->checks);
        fputs(text ? text : "{\"status\":\"fail\",\"checks\":[]}\n", stdout);
        free(text);
    } else {
        pd_checks_print(&d->checks, stdout);
    }
}

static void run_checks(struct doctor *d, const char *config)
{
    struct pd_config net_cfg;

    check_config(d, config);
    /* The token is not kept: a doctor run as root must not leave a root-owned token in the
     * service's state dir; and a request does not retry for days. */
    d->pw = d->cfg->pw;
    if (!d->pw.max_retry_time_ms || d->pw.max_retry_time_ms > DOCTOR_RETRY_MS)
        d->pw.max_retry_time_ms = DOCTOR_RETRY_MS;
    if (!d->pw.timeout_ms || d->pw.timeout_ms > DOCTOR_RETRY_MS)
        d->pw.timeout_ms = DOCTOR_RETRY_MS;
    check_endpoints(d);
    net_cfg = *d->cfg;
    net_cfg.pw = d->pw;
    net_cfg.state.dir = NULL;
    if (pd_cli_net_open(&d->net, &net_cfg, "doctor") != 0) {
        CHECK(d, PD_CHECK_FAIL, "client", NULL, "cannot set up the Patchworks client");
        return;
    }
    /* pd_client keeps a pointer to the settings: ours live as long as the client. */
    d->net.quiet = 1;
    doctor_login(d);
    doctor_lookups(d);
    doctor_start_test(d);
    /* The run just started shows where a run's status is, when no other run was named. */
    if (!d->flow_run)
        d->flow_run = d->started_run;
    doctor_flow_run(d);
    pd_cli_net_close(&d->net);
    doctor_answer_clear(&d->ans);
}

int pd_cli_doctor(int argc, char **argv)
{
    struct doctor d;
    const char *config = NULL;
    bool json = false;
    int rc;

    memset(&d, 0, sizeof(d));
    rc = parse(&d, argc, argv, &config, &json);
    if (rc < 0 && pd_cli_load_config(config, &d.cfg) != 0) {
        CHECK(&d, PD_CHECK_FAIL, "config",
              "fix the lines said on stderr (patchdrop "
              "check-config says the same)",
              "%s cannot be loaded", pd_cli_config_path(config));
        print_checks(&d, json);
        rc = PD_EXIT_USAGE;
    } else if (rc < 0) {
        run_checks(&d, pd_cli_config_path(config));
        print_checks(&d, json);
        rc = d.checks.n ? pd_checks_exit(&d.checks) : PD_EXIT_FAILED;
    }
    free(d.start_flow);
    free(d.started_run);
    free(d.start_version);
    pd_config_destroy(&d.cfg);
    pd_checks_free(&d.checks);
    return rc;
}
