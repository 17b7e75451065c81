/*
 * `patchdrop flow-run ID` and `patchdrop flow-run retry ID`: a flow run's status in words, its
 * times and dashboard link, with --logs every log entry, with --wait followed to its end.
 * Exit status: 0 found (with --wait: succeeded), 1 Patchworks refused or did not answer
 * usefully (with --wait: the run failed, stopped or partly succeeded), 2 usage or configuration
 * error, 3 (--wait) still running when --timeout ran out. `patchdrop status RUN_ID` is this
 * command under its old name.
 */
#include "pd_api.h"
#include "pd_cli.h"
#include "pd_cli_net.h"
#include "pd_client.h"
#include "pd_config.h"
#include "pd_error.h"
#include "pd_log.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_STILL_RUNNING 3
/* --wait: the first poll after a second, then doubling up to half a minute. */
#define WAIT_FIRST_MS 1000
#define WAIT_CAP_MS 30000
#define WAIT_DEFAULT_MS (10 * 60 * 1000)
/* Everything from Patchworks is escaped; 4 bytes an input byte always fit. */
#define SAFE_MAX (4 * PD_API_RUN_LOG_MESSAGE_MAX + 1)

enum { O_LOGS = 256, O_JSON, O_WAIT, O_TIMEOUT };

struct flow_run {
    struct pd_cli_net net;
    const struct pd_cli_spec *spec;
    const struct pd_config *cfg;
    char *run_id;  /* the run shown: after a retry, the new one */
    char *retried; /* retry: the run that was retried */
    bool logs, json, wait, retry;
    uint64_t timeout_ms, deadline;
    unsigned delay_ms;
    uv_timer_t timer; /* --wait: the next poll, or the deadline while a poll is out */
    bool in_flight, final;
    char *url; /* of the request in flight */
    struct pd_api_run run;
    char *words, *raw;     /* the status as said before (status RUN_ID's first line) */
    unsigned page;         /* of the logs being read */
    cJSON *out, *out_logs; /* --json */
    size_t nlogs;
    int rc;
};

static const char *safe(const char *s, char *buf)
{
    return pd_log_escape(s, buf, SAFE_MAX);
}

static void get_run(struct flow_run *fr);
static void on_timer(uv_timer_t *t);

/* Sends METHOD to URL (taken), DONE with the answer; false when it could not be queued. */
static bool submit(struct flow_run *fr, const char *method, char *url, pd_client_done_fn done)
{
    free(fr->url);
    fr->url = url;
    struct pd_client_request req = {.method = method, .url = url};
    if (!strcmp(method, "POST")) {
        req.body = "{}";
        req.body_len = 2;
    }
    if (!fr->net.client || pd_client_submit(fr->net.client, &req, done, fr) != 0) {
        fprintf(stderr, "patchdrop %s: cannot queue the request\n", fr->spec->name);
        fr->rc = PD_EXIT_USAGE;
        return false;
    }
    fr->in_flight = true;
    /* A poll that keeps being retried must not outlast --timeout by much; the one sent at the
     * deadline gets a moment to be answered. */
    if (fr->wait && !fr->final) {
        uint64_t now = uv_now(&fr->net.loop);
        uv_timer_start(&fr->timer, on_timer,
                       (fr->deadline > now ? fr->deadline - now : 0) + WAIT_FIRST_MS, 0);
    }
    return true;
}

/* A request that failed: said on stderr as `status` always did; false when R went well. */
static bool failed(struct flow_run *fr, const struct pd_client_result *r)
{
    char e1[SAFE_MAX], e2[SAFE_MAX];
    fr->in_flight = false;
    if (r->err == PD_ECANCELED)
        return true;
    if (!r->err)
        return false;
    fprintf(stderr, "patchdrop %s: flow run %s: %s%s%s%s\n", fr->spec->name, fr->run_id,
            safe(r->message ? r->message : pd_strerror(r->err), e1), r->api.errors ? " (" : "",
            safe(r->api.errors, e2), r->api.errors ? ")" : "");
    fr->rc = r->err == PD_EAUTH || r->err == PD_ECONFIG ? PD_EXIT_USAGE : PD_EXIT_FAILED;
    return true;
}

static void json_text(cJSON *obj, const char *key, const char *value)
{
    char e[SAFE_MAX];
    if (value)
        cJSON_AddStringToObject(obj, key, safe(value, e));
    else
        cJSON_AddNullToObject(obj, key);
}

/* The run's lines: status, times, dashboard (or, with --json, the object's fields). */
static void print_run(struct flow_run *fr)
{
    char e1[SAFE_MAX], e2[SAFE_MAX];
    char *dash = NULL;
    pd_api_dashboard_url(&fr->cfg->pw, fr->run_id, &dash);
    if (fr->json) {
        fr->out = cJSON_CreateObject();
        json_text(fr->out, "id", fr->run_id);
        if (fr->retried)
            json_text(fr->out, "retried", fr->retried);
        if (fr->run.status)
            cJSON_AddNumberToObject(fr->out, "status", (double)fr->run.status);
        else
            json_text(fr->out, "status", fr->raw);
        json_text(fr->out, "outcome", pd_api_run_outcome(fr->run.status));
        json_text(fr->out, "started_at", fr->run.started_at);
        json_text(fr->out, "finished_at", fr->run.finished_at);
        json_text(fr->out, "dashboard", dash);
        if (fr->logs)
            fr->out_logs = cJSON_AddArrayToObject(fr->out, "logs");
        free(dash);
        return;
    }
    if (strcmp(fr->words, fr->raw))
        printf("flow run %s: %s (status %s)\n", fr->run_id, safe(fr->words, e1), safe(fr->raw, e2));
    else
        printf("flow run %s: %s\n", fr->run_id, safe(fr->words, e1));
    if (fr->run.started_at)
        printf("  started:   %s\n", safe(fr->run.started_at, e1));
    if (fr->run.finished_at)
        printf("  finished:  %s\n", safe(fr->run.finished_at, e1));
    if (dash)
        printf("  dashboard: %s\n", safe(dash, e1));
    free(dash);
}

/* The end: the exit status from the run's status (with --wait), and the JSON object. */
static void finish(struct flow_run *fr)
{
    uv_timer_stop(&fr->timer);
    if (fr->wait)
        fr->rc = fr->run.status == 2   ? PD_EXIT_OK
                 : fr->run.status >= 3 ? PD_EXIT_FAILED
                                       : EXIT_STILL_RUNNING;
    else
        fr->rc = PD_EXIT_OK;
    if (fr->json && fr->out) {
        char *text = cJSON_PrintUnformatted(fr->out);
        if (text)
            printf("%s\n", text);
        else
            fr->rc = PD_EXIT_FAILED;
        free(text);
    }
    if (!fr->json && fr->logs && !fr->nlogs)
        printf("  (no log entries)\n");
}

static void print_logs(struct flow_run *fr, const struct pd_api_run_log *e, size_t n)
{
    char e1[SAFE_MAX], e2[SAFE_MAX], e3[SAFE_MAX];
    for (size_t i = 0; i < n; i++, fr->nlogs++) {
        if (fr->json) {
            cJSON *o = cJSON_CreateObject();
            json_text(o, "time", e[i].time);
            json_text(o, "level", e[i].level);
            json_text(o, "message", e[i].message);
            if (!cJSON_AddItemToArray(fr->out_logs, o))
                cJSON_Delete(o);
            continue;
        }
        if (!fr->nlogs)
            printf("  logs:\n");
        printf("    %s  %s  %s\n", e[i].time ? safe(e[i].time, e1) : "-",
               e[i].level ? safe(e[i].level, e2) : "-", e[i].message ? safe(e[i].message, e3) : "");
    }
}

static void on_logs(void *arg, const struct pd_client_result *r)
{
    struct flow_run *fr = arg;
    struct pd_api_run_log *e = NULL;
    size_t n = 0;
    unsigned next = 0;
    char e1[SAFE_MAX];

    if (failed(fr, r))
        return;
    if (pd_api_parse_run_logs(r->body, r->body_len, &e, &n, &next) != 0) {
        fprintf(stderr, "patchdrop %s: flow run %s: page %u of the logs is not a list: %.300s\n",
                fr->spec->name, fr->run_id, fr->page, safe(r->body, e1));
        fr->rc = PD_EXIT_FAILED;
        return;
    }
    print_logs(fr, e, n);
    pd_api_run_logs_free(e, n);
    char *url = NULL;
    /* Only forward, and never past the last page a list may have. */
    if (next > fr->page && next <= PD_API_MAX_PAGES) {
        fr->page = next;
        if (pd_api_run_logs_page_url(&fr->cfg->pw, fr->run_id, next, &url) == 0)
            submit(fr, "GET", url, on_logs);
        return;
    }
    finish(fr);
}

/* A final status, or --wait's time is up: the run's lines, then the logs or the end. */
static void show(struct flow_run *fr)
{
    char *url = NULL;
    fr->final = true;
    uv_timer_stop(&fr->timer);
    print_run(fr);
    if (!fr->logs) {
        finish(fr);
        return;
    }
    fr->page = 1;
    if (pd_api_run_logs_page_url(&fr->cfg->pw, fr->run_id, 1, &url) == 0)
        submit(fr, "GET", url, on_logs);
}

static void on_timer(uv_timer_t *t)
{
    struct flow_run *fr = t->data;
    if (!fr->in_flight) {
        get_run(fr);
        return;
    }
    /* The deadline, with a poll still out: what was known last is the answer. */
    fprintf(stderr, "patchdrop %s: flow run %s: no answer within --timeout\n", fr->spec->name,
            fr->run_id);
    fr->in_flight = false;
    pd_client_close(&fr->net.client, NULL, NULL);
    fr->rc = EXIT_STILL_RUNNING;
    if (fr->words) { /* no logs: the client is closed */
        print_run(fr);
        finish(fr);
    }
}

static void on_run(void *arg, const struct pd_client_result *r)
{
    struct flow_run *fr = arg;
    char e1[SAFE_MAX];

    if (failed(fr, r))
        return;
    free(fr->words);
    free(fr->raw);
    pd_api_run_cleanup(&fr->run);
    fr->words = fr->raw = NULL;
    if (pd_api_parse_run_status(r->body, r->body_len, &fr->words, &fr->raw) != 0 ||
        pd_api_parse_run(r->body, r->body_len, &fr->run) != 0) {
        fprintf(stderr, "patchdrop %s: flow run %s: the answer has no status: %.300s\n",
                fr->spec->name, fr->run_id, safe(r->body, e1));
        fr->rc = PD_EXIT_FAILED;
        return;
    }
    uint64_t now = uv_now(&fr->net.loop);
    if (!fr->wait || fr->run.status >= 2 || now >= fr->deadline) {
        show(fr);
        return;
    }
    uint64_t left = fr->deadline - now;
    uv_timer_start(&fr->timer, on_timer, fr->delay_ms < left ? fr->delay_ms : left, 0);
    fr->delay_ms = fr->delay_ms * 2 < WAIT_CAP_MS ? fr->delay_ms * 2 : WAIT_CAP_MS;
}

static void get_run(struct flow_run *fr)
{
    char *url = NULL;
    if (pd_api_flow_run_url(&fr->cfg->pw, PD_API_RUN, fr->run_id, &url) == 0)
        submit(fr, "GET", url, on_run);
}

static void on_retry(void *arg, const struct pd_client_result *r)
{
    struct flow_run *fr = arg;
    char *id = NULL, *check = NULL, *dash = NULL;
    char e1[SAFE_MAX];

    if (failed(fr, r))
        return;
    /* The new id goes into URLs: refused unless it is an id. */
    if (pd_api_parse_retry(r->body, r->body_len, &id) != 0 ||
        pd_api_flow_run_url(&fr->cfg->pw, PD_API_RUN, id, &check) != 0) {
        fprintf(stderr, "patchdrop %s: flow run %s: the retry's answer names no new run: %.300s\n",
                fr->spec->name, fr->run_id, safe(r->body, e1));
        free(id);
        fr->rc = PD_EXIT_FAILED;
        return;
    }
    free(check);
    fr->retried = fr->run_id;
    fr->run_id = id;
    if (fr->wait || fr->logs) {
        if (!fr->json)
            printf("flow run %s retried: flow run %s\n", fr->retried, fr->run_id);
        get_run(fr);
        return;
    }
    pd_api_dashboard_url(&fr->cfg->pw, fr->run_id, &dash);
    if (fr->json) {
        fr->out = cJSON_CreateObject();
        json_text(fr->out, "id", fr->run_id);
        json_text(fr->out, "retried", fr->retried);
        json_text(fr->out, "dashboard", dash);
    } else {
        printf("flow run %s retried: flow run %s\n", fr->retried, safe(fr->run_id, e1));
        if (dash)
            printf("  dashboard: %s\n", safe(dash, e1));
    }
    free(dash);
    finish(fr);
}

static const struct option opts[] = {
    {"logs", no_argument, NULL, O_LOGS},
    {"json", no_argument, NULL, O_JSON},
    {"wait", no_argument, NULL, O_WAIT},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {NULL, 0, NULL, 0},
};

static const struct pd_cli_spec spec = {
    .name = "flow-run",
    .synopsis = "[-c FILE] [--logs] [--json] [--wait [--timeout D]] [retry] ID",
    .help = "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "      --logs         also every log entry of the run (all pages)\n"
            "      --json         one JSON object: id, status, outcome, started_at, "
            "finished_at,\n"
            "                     dashboard (and logs)\n"
            "      --wait         poll until the run is final (after 1s, doubling up to 30s)\n"
            "      --timeout D    how long --wait waits (default 10m, e.g. 90s, 1h)\n"
            "Prints a flow run's status in words (running, success, failed, stopped, partial\n"
            "success), when it started and finished, and its dashboard link.\n"
            "'retry ID' retries the run and prints the new run's id (with --wait or --logs:\n"
            "then shows the new run).\n"
            "Exit status: 0 found (with --wait: succeeded), 1 refused, or with --wait failed,\n"
            "stopped or partly succeeded, 2 usage or configuration, 3 still running at the\n"
            "--timeout.\n",
    .common = PD_CLI_CONFIG,
    .opts = opts,
    .max_args = 2,
};

/* The command line into FR; 0, or the exit status (with the refusal said). */
static int parse(struct flow_run *fr, struct pd_cli_parser *p, const struct pd_cli_spec *sp,
                 int argc, char **argv)
{
    const char *timeout = NULL;
    int c;

    pd_cli_begin(p, sp, argc, argv);
    while ((c = pd_cli_next(p)) > 0) {
        fr->logs |= c == O_LOGS;
        fr->json |= c == O_JSON;
        fr->wait |= c == O_WAIT;
        if (c == O_TIMEOUT)
            timeout = p->arg;
    }
    if (c < 0)
        return p->status ? p->status : -1;
    fr->retry = p->nargs == 2 && !strcmp(p->args[0], "retry");
    if (p->nargs != 1 && !fr->retry)
        return pd_cli_usage_error(sp, sp->max_args > 1 ? "give one flow run id, or retry and one id"
                                                       : "give exactly one flow run id");
    fr->run_id = strdup(p->args[p->nargs - 1]);
    fr->timeout_ms = WAIT_DEFAULT_MS;
    if (timeout && !fr->wait)
        return pd_cli_usage_error(sp, "--timeout goes with --wait");
    if (timeout && (pd_parse_duration(timeout, &fr->timeout_ms) != 0 || !fr->timeout_ms))
        return pd_cli_usage_error(sp, "--timeout %s is not a duration like 90s, 10m or 1h",
                                  timeout);
    if (!fr->run_id) {
        fprintf(stderr, "patchdrop %s: out of memory\n", sp->name);
        return PD_EXIT_USAGE;
    }
    return 0;
}

/* Asks and waits: the run, its retry, its logs. */
static void talk(struct flow_run *fr)
{
    char *url = NULL;
    uv_timer_init(&fr->net.loop, &fr->timer);
    fr->timer.data = fr;
    uv_update_time(&fr->net.loop);
    fr->deadline = uv_now(&fr->net.loop) + fr->timeout_ms;
    fr->delay_ms = WAIT_FIRST_MS;
    fr->rc = PD_EXIT_FAILED;
    if (fr->retry) {
        if (pd_api_flow_run_url(&fr->cfg->pw, PD_API_RUN_RETRY, fr->run_id, &url) == 0)
            submit(fr, "POST", url, on_retry);
    } else {
        get_run(fr);
    }
    pd_cli_net_run(&fr->net);
    uv_close((uv_handle_t *)&fr->timer, NULL);
}

int pd_cli_flow_run_as(const struct pd_cli_spec *sp, int argc, char **argv)
{
    struct pd_config *cfg = NULL;
    struct pd_cli_parser p;
    struct flow_run fr;
    char *url = NULL;
    int rc;

    memset(&fr, 0, sizeof(fr));
    fr.spec = sp;
    if ((rc = parse(&fr, &p, sp, argc, argv)) != 0) {
        free(fr.run_id);
        return rc < 0 ? PD_EXIT_OK : rc;
    }
    if (sp != &spec)
        fprintf(stderr, "patchdrop %s: deprecated: use patchdrop flow-run %s\n", sp->name,
                fr.run_id);
    rc = PD_EXIT_USAGE;
    if (pd_cli_load_config(p.config, &cfg) != 0)
        goto out;
    fr.cfg = cfg;
    if (pd_api_flow_run_url(&cfg->pw, PD_API_RUN, fr.run_id, &url) != 0) {
        pd_cli_usage_error(sp, "'%s' is not a flow run id", fr.run_id);
        goto out;
    }
    if (pd_cli_net_open_shared(&fr.net, cfg, sp->name) != 0)
        goto out;
    talk(&fr);
    pd_cli_net_close(&fr.net);
    rc = fr.rc;
out:
    free(url);
    free(fr.url);
    free(fr.run_id);
    free(fr.retried);
    free(fr.words);
    free(fr.raw);
    pd_api_run_cleanup(&fr.run);
    cJSON_Delete(fr.out);
    pd_config_destroy(&cfg);
    return rc;
}

int pd_cli_flow_run(int argc, char **argv)
{
    return pd_cli_flow_run_as(&spec, argc, argv);
}
