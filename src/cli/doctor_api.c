/*
 * `patchdrop doctor`'s calls to Patchworks: the login (its token and expiry), one read-only call
 * per API family (the lookups list; a flow run when --flow-run is given), a start only when
 * --start-test asks for it; and for each answer, where it holds what patchdrop reads. The keys an
 * answer had are said when they are not the expected ones, never their values.
 */
#include "doctor_internal.h"

#include "pd_api.h"
#include "pd_client.h"
#include "pd_error.h"
#include "pd_lookup.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Where patchdrop looks (src/net/api.c, src/net/api_run.c), in its order. */
static const char *const token_paths[] = {"token", "access_token", "data.token",
                                          "data.access_token", NULL};
static const char *const expiry_paths[] = {"expires_in", "data.expires_in", NULL};
static const char *const list_paths[] = {"data[]", "[]", NULL};
static const char *const status_paths[] = {"status", "attributes.status", "data.status",
                                           "data.attributes.status", NULL};
static const char *const run_id_paths[] = {"flow_run_id", "run_id",  "id", "data.flow_run_id",
                                           "data.run_id", "data.id", NULL};

#define SHAPE_FIX                                                                                  \
    "patchdrop reads this answer where the public documentation says; please report this "         \
    "line (it names keys only, never values) so patchdrop can read what your account answers"

#define SEE_SHAPE "see the shape line below"

static void wipe_free(char *s, size_t len)
{
    if (s)
        memset(s, 0, len);
    free(s);
}

void doctor_answer_clear(struct doctor_answer *a)
{
    wipe_free(a->body, a->body_len);
    free(a->message);
    free(a->run_id);
    memset(a, 0, sizeof(*a));
}

static void on_done(void *arg, const struct pd_client_result *r)
{
    struct doctor_answer *a = arg;
    const char *msg = r->message ? r->message : r->api.message;

    a->err = r->err;
    a->status = r->api.status;
    a->message = msg ? strdup(msg) : NULL;
    a->run_id = r->api.run_id ? strdup(r->api.run_id) : NULL;
    if (r->body && r->body_len && (a->body = malloc(r->body_len + 1))) {
        memcpy(a->body, r->body, r->body_len);
        a->body[r->body_len] = '\0';
        a->body_len = r->body_len;
    }
}

/* One request through the client, waited for; the answer is in d->ans. */
static int request(struct doctor *d, const char *method, const char *url, const char *body,
                   bool no_auth)
{
    struct pd_client_request req = {.method = method,
                                    .url = url,
                                    .body = body,
                                    .body_len = body ? strlen(body) : 0,
                                    .no_auth = no_auth};
    int rc;

    doctor_answer_clear(&d->ans);
    d->ans.err = PD_ECANCELED;
    if ((rc = pd_client_submit(d->net.client, &req, on_done, &d->ans)) != 0)
        return d->ans.err = rc;
    pd_cli_net_run(&d->net);
    return d->ans.err;
}

/* Says where the answer holds WHAT; MISSING is the status when it is not where expected. */
static bool shape(struct doctor *d, const char *name, const char *what, const char *const *paths,
                  enum pd_check_status missing)
{
    char seen[512], want[256];
    int i = pd_shape_find(d->ans.body, d->ans.body_len, paths, seen, sizeof(seen));

    if (i >= 0) {
        CHECK(d, PD_CHECK_OK, name, NULL, "%s in \"%s\", as expected", what, paths[i]);
        return true;
    }
    pd_shape_paths(paths, want, sizeof(want));
    if (i == -2)
        CHECK(d, missing, name, SHAPE_FIX, "%s: expected in %s, but the answer is not JSON", what,
              want);
    else
        CHECK(d, missing, name, SHAPE_FIX, "%s: expected in %s; the answer has: %s", what, want,
              seen);
    return false;
}

/* A call that did not succeed: the refusal in words, with FIX unless the credentials were. */
static void call_failed(struct doctor *d, const char *name, const char *url, const char *fix)
{
    const char *msg = d->ans.message ? d->ans.message : pd_strerror(d->ans.err);

    if (d->ans.err == PD_EAUTH)
        CHECK(d, PD_CHECK_FAIL, name,
              d->pw.auth == PD_AUTH_API_KEY
                  ? "check the API key (api_key or api_key_file) and that it may use this API"
                  : "the token from login_url was refused here: login_url and this URL must "
                    "belong to the same Patchworks account and region",
              "%s refused the credentials: %s", url, msg);
    else if (d->ans.status && strncmp(msg, "HTTP ", 5))
        CHECK(d, PD_CHECK_FAIL, name, fix, "%s answered HTTP %ld: %s", url, d->ans.status, msg);
    else
        CHECK(d, PD_CHECK_FAIL, name, fix, "%s: %s", url, msg);
}

/* Whether a call can be made: credentials and the endpoint; else one skip line. */
static bool can_call(struct doctor *d, const char *name, int endpoint, const char *key)
{
    if (!d->authorized)
        CHECK(d, PD_CHECK_SKIP, name, NULL, "not tried: no login");
    else if (!d->reachable[endpoint])
        CHECK(d, PD_CHECK_SKIP, name, NULL, "not tried: %s cannot be reached (above)", key);
    else
        return true;
    return false;
}

/* The login succeeded: the token's expiry, and where the answer held both. */
static void login_answered(struct doctor *d)
{
    char *token = NULL;
    uint64_t ttl = 0;

    if (pd_api_parse_login(d->ans.body, d->ans.body_len, 0, &token, &ttl) != 0) {
        CHECK(d, PD_CHECK_FAIL, "login", SEE_SHAPE,
              "%s answered HTTP %ld without a token patchdrop can read", d->pw.login_url,
              d->ans.status);
        shape(d, "shape login token", "the token", token_paths, PD_CHECK_FAIL);
        return;
    }
    wipe_free(token, strlen(token));
    d->authorized = true;
    if (ttl) {
        time_t t = time(NULL) + (time_t)ttl;
        struct tm tm;
        char when[64] = "?";
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M UTC", &tm);
        CHECK(d, PD_CHECK_OK, "login", NULL,
              "logged in as %s at %s; the token expires in %lluh %02llum (%s)", d->pw.email,
              d->pw.login_url, (unsigned long long)(ttl / 3600),
              (unsigned long long)(ttl % 3600 / 60), when);
    } else {
        CHECK(d, PD_CHECK_OK, "login", NULL,
              "logged in as %s at %s; the answer gives no lifetime: patchdrop assumes 24 h "
              "and logs in again whenever a request gets 401",
              d->pw.email, d->pw.login_url);
    }
    shape(d, "shape login token", "the token", token_paths, PD_CHECK_FAIL);
    shape(d, "shape login expiry", "the token's lifetime", expiry_paths, PD_CHECK_WARN);
}

void doctor_login(struct doctor *d)
{
    const struct pd_patchworks *pw = &d->pw;
    char *body = NULL;

    if (pw->auth == PD_AUTH_API_KEY) {
        d->authorized = true;
        CHECK(d, PD_CHECK_SKIP, "login", NULL,
              "an API key is configured (%s): no login, and keys do not expire; the calls "
              "below check it",
              pw->secret_source ? pw->secret_source : "in the config");
        return;
    }
    if (!d->reachable[DOCTOR_LOGIN]) {
        CHECK(d, PD_CHECK_SKIP, "login", NULL, "not tried: login_url cannot be reached (above)");
        return;
    }
    if (pd_api_login_body(pw, &body) != 0) {
        CHECK(d, PD_CHECK_FAIL, "login", "set email and password (or password_file)",
              "no email or password to log in with");
        return;
    }
    request(d, "POST", pw->login_url, body, true);
    wipe_free(body, strlen(body));
    if (d->ans.err == 0)
        login_answered(d);
    else if (d->ans.err == PD_EAUTH || (d->ans.err == PD_EREJECTED && d->ans.status == 422)) {
        char fix[1024];
        snprintf(fix, sizeof(fix),
                 "check %s \"%s\" and the password from %s; `patchdrop login` tries again",
                 pw->login_field == PD_LOGIN_USERNAME ? "the username" : "the email", pw->email,
                 pw->secret_source ? pw->secret_source : "the configuration");
        /* The message starts "HTTP 401: " and goes on with the server's words. */
        CHECK(d, PD_CHECK_FAIL, "login", fix, "Patchworks refused the login at %s (%s)",
              pw->login_url, d->ans.message ? d->ans.message : "refused");
    } else
        call_failed(d, "login", pw->login_url,
                    "check login_url (the checks above say whether "
                    "it is reachable)");
}

void doctor_lookups(struct doctor *d)
{
    char *url = NULL, why[512];
    struct pd_lookup_info *infos = NULL;
    struct pd_api_page pg = {0};
    size_t n = 0;

    if (!can_call(d, "lookups", DOCTOR_LOOKUPS, "lookups_url"))
        return;
    if (pd_lookup_url(&d->pw, d->pw.lookups_path, NULL, NULL, 1, &url) != 0) {
        CHECK(d, PD_CHECK_FAIL, "lookups", "check lookups_url and lookups_path",
              "cannot make the lookups list's URL");
        return;
    }
    if (request(d, "GET", url, NULL, false) != 0) {
        call_failed(d, "lookups", url,
                    "check lookups_url and lookups_path "
                    "(docs/patchworks-api.md)");
    } else if (pd_api_parse_lookups_page(d->ans.body, d->ans.body_len, 1, &infos, &n, &pg, why,
                                         sizeof(why)) == 0) {
        CHECK(d, PD_CHECK_OK, "lookups", NULL,
              "listed the lookups at %s: HTTP %ld, %zu on the "
              "first page",
              url, d->ans.status, n);
        shape(d, "shape lookups", "the list", list_paths, PD_CHECK_FAIL);
    } else {
        CHECK(d, PD_CHECK_FAIL, "lookups", SEE_SHAPE, "%s answered HTTP %ld, but %s", url,
              d->ans.status, why);
        shape(d, "shape lookups", "the list", list_paths, PD_CHECK_FAIL);
    }
    for (size_t i = 0; i < n; i++)
        pd_lookup_info_cleanup(&infos[i]);
    free(infos);
    pd_api_page_cleanup(&pg);
    free(url);
}

void doctor_flow_run(struct doctor *d)
{
    char *url = NULL;
    struct pd_api_run run = {0};

    if (!d->flow_run || !can_call(d, "flow-run", DOCTOR_CORE, "core_url"))
        return;
    if (pd_api_run_url(&d->pw, d->flow_run, &url) != 0) {
        CHECK(d, PD_CHECK_FAIL, "flow-run", "check core_url and flow_run_path",
              "cannot make the flow run's URL");
        return;
    }
    if (request(d, "GET", url, NULL, false) != 0) {
        call_failed(d, "flow-run", url,
                    "check the run's id (its dashboard page shows it), "
                    "core_url and flow_run_path");
    } else {
        pd_api_parse_run(d->ans.body, d->ans.body_len, &run);
        if (run.status)
            CHECK(d, PD_CHECK_OK, "flow-run", NULL, "flow run %s at %s: %s (status %ld)",
                  d->flow_run, url,
                  pd_api_run_outcome(run.status) ? pd_api_run_outcome(run.status) : "unknown",
                  run.status);
        else
            CHECK(d, PD_CHECK_FAIL, "flow-run", SEE_SHAPE,
                  "%s answered HTTP %ld without a status patchdrop can read", url, d->ans.status);
        shape(d, "shape flow-run", "the run's status", status_paths, PD_CHECK_FAIL);
        pd_api_run_cleanup(&run);
    }
    free(url);
}

/* A tiny payload that says what it is, so whoever looks at the flow run knows. */
static char *test_body(void)
{
    char payload[160], when[32];
    time_t t = time(NULL);
    struct tm tm;
    cJSON *o = cJSON_CreateObject();
    char *body;

    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tm) ? &tm : NULL);
    snprintf(payload, sizeof(payload),
             "{\"patchdrop_doctor\":\"a test sent by patchdrop doctor --start-test\","
             "\"sent_at\":\"%s\"}",
             when);
    body = o && cJSON_AddStringToObject(o, "payload", payload) ? cJSON_PrintUnformatted(o) : NULL;
    cJSON_Delete(o);
    return body;
}

void doctor_start_test(struct doctor *d)
{
    char *url = NULL, *body = NULL;

    if (!d->start_flow || !can_call(d, "start-test", DOCTOR_START, "start_url"))
        return;
    if (pd_api_start_url(&d->pw, d->start_flow, d->start_version, &url) != 0 ||
        !(body = test_body())) {
        CHECK(d, PD_CHECK_FAIL, "start-test", "check start_url", "cannot make the start URL");
        free(url);
        return;
    }
    if (request(d, "POST", url, body, false) != 0) {
        call_failed(d, "start-test", url,
                    "check the flow's id and version (the flow's page "
                    "shows them) and start_url");
    } else {
        if (d->ans.run_id && !d->started_run)
            d->started_run = strdup(d->ans.run_id);
        if (d->ans.run_id)
            CHECK(d, PD_CHECK_OK, "start-test", NULL, "started flow %s%s%s at %s: flow run %s",
                  d->start_flow, d->start_version ? " version " : "",
                  d->start_version ? d->start_version : "", url, d->ans.run_id);
        else
            CHECK(d, PD_CHECK_WARN, "start-test", SEE_SHAPE,
                  "started flow %s at %s (HTTP %ld), but the answer names no flow run: "
                  "patchdrop delivers, but cannot follow the runs it starts",
                  d->start_flow, url, d->ans.status);
        shape(d, "shape start", "the flow run's id", run_id_paths, PD_CHECK_WARN);
    }
    free(body);
    free(url);
}
