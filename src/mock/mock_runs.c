/*
 * Flow runs of patchdrop-mock, played as Patchworks runs them: a run is created by a start (or
 * a retry) as running (status 1) and turns final --run-duration later, as success (2), failed
 * (3), stopped (4) or partial success (5). The outcome is decided when the run is created, so
 * a test can compare what patchdrop saw with runs.jsonl in the --record folder: the Nth run
 * created takes the Nth --run-script word, else a payload holding --run-fail-marker fails,
 * else the seeded rates decide.
 *
 * Time is the emulator's clock (mock_now), so tests step a fake clock instead of sleeping;
 * started_at and finished_at are wall-clock times for the answers.
 */
#include "mock.h"

#include "pd_error.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { RUN_RUNNING = 1, RUN_SUCCESS, RUN_FAILED, RUN_STOPPED, RUN_PARTIAL };

/* mock_draw kinds; those of the start-flow faults are 0..3. */
enum { DRAW_RUN_OUTCOME = 4, DRAW_RUN_RECORD = 5 };

int mock_run_script_parse(const char *list, int **statuses, size_t *n, char **err)
{
    static const struct {
        const char *word;
        int status;
    } words[] = {
        {"ok", RUN_SUCCESS}, {"fail", RUN_FAILED}, {"stop", RUN_STOPPED}, {"partial", RUN_PARTIAL}};
    *statuses = NULL;
    *n = 0;
    if (!list || !*list)
        return 0;
    size_t cap = 1;
    for (const char *p = list; *p; p++)
        cap += *p == ',';
    int *out = calloc(cap, sizeof(*out));
    if (!out)
        return PD_ENOMEM;
    size_t k = 0;
    for (const char *p = list;; p++) {
        size_t len = strcspn(p, ",");
        size_t w = 0;
        while (w < sizeof(words) / sizeof(words[0]) &&
               (strlen(words[w].word) != len || strncmp(words[w].word, p, len)))
            w++;
        if (w == sizeof(words) / sizeof(words[0])) {
            if (err && asprintf(err,
                                "run script word '%.*s' is not one of: ok, fail, stop, "
                                "partial",
                                (int)len, p) < 0)
                *err = NULL;
            free(out);
            return PD_EUSAGE;
        }
        out[k++] = words[w].status;
        p += len;
        if (!*p)
            break;
    }
    *statuses = out;
    *n = k;
    return 0;
}

bool mock_run_marked(struct pd_mock *m, const char *data, size_t len)
{
    const char *mark = m->run_fail_marker;
    return mark && *mark && memmem(data, len, mark, strlen(mark)) != NULL;
}

/* The outcome of run RUN (its id set), from the script, the marker, then the rates. */
static void decide(struct pd_mock *m, struct mock_run *run)
{
    const struct pd_mock_options *o = &m->opt;
    run->final_status = RUN_SUCCESS;
    run->cause = "default";
    if (run->id <= m->run_script_n) {
        run->final_status = m->run_script[run->id - 1];
        run->cause = "script";
    } else if (run->marker) {
        run->final_status = RUN_FAILED;
        run->cause = "marker";
    } else {
        double u = mock_draw(o->seed, run->id, DRAW_RUN_OUTCOME);
        if (u < o->run_fail_rate)
            run->final_status = RUN_FAILED;
        else if (u < o->run_fail_rate + o->run_stop_rate)
            run->final_status = RUN_STOPPED;
        else if (u < o->run_fail_rate + o->run_stop_rate + o->run_partial_rate)
            run->final_status = RUN_PARTIAL;
        if (run->final_status != RUN_SUCCESS)
            run->cause = "rate";
    }
    run->bad_record = 1 + (unsigned)(mock_draw(o->seed, run->id, DRAW_RUN_RECORD) * 10);
}

int mock_run_create(struct pd_mock *m, const char *flow, const char *version, bool marker,
                    uint64_t retry_of, uint64_t *id)
{
    struct mock_run copy;
    pthread_mutex_lock(&m->lock);
    int rc = mock_store_run_add(m->store, flow, version, mock_epoch_ms(), id);
    struct mock_run *run = rc ? NULL : mock_store_run_at(m->store, *id);
    if (run) {
        const struct mock_run *orig = mock_store_run_at(m->store, retry_of);
        run->created_now = mock_now(m);
        run->marker = marker;
        run->retry_of = retry_of;
        if (orig)
            memcpy(run->payload_file, orig->payload_file, sizeof(run->payload_file));
        else
            snprintf(run->payload_file, sizeof(run->payload_file), "payloads/%06" PRIu64, run->id);
        m->retries += retry_of != 0;
        decide(m, run);
        copy = *run;
    }
    pthread_mutex_unlock(&m->lock);
    /* The store's strings outlive the lock: runs are never removed. */
    if (run && m->record)
        mock_record_run(m->record, &copy);
    return rc;
}

/* Run ID as it is now: false when there is none. */
static bool run_now(struct pd_mock *m, uint64_t id, struct mock_run *run, int *status)
{
    pthread_mutex_lock(&m->lock);
    bool found = mock_store_run_get(m->store, id, run);
    uint64_t now = mock_now(m);
    pthread_mutex_unlock(&m->lock);
    if (found)
        *status =
            now >= run->created_now + m->opt.run_duration_ms ? run->final_status : RUN_RUNNING;
    return found;
}

void mock_run_answer(struct pd_mock *m, const struct mock_route_match *rt, struct mock_answer *ans)
{
    struct mock_run run;
    int status;
    if (!run_now(m, rt->id, &run, &status)) {
        mock_answer_message(ans, 404, "Flow run not found.");
        return;
    }
    char id[24];
    snprintf(id, sizeof(id), "%" PRIu64, run.id);
    cJSON *r = cJSON_CreateObject();
    cJSON *d = cJSON_AddObjectToObject(r, "data");
    cJSON_AddStringToObject(d, "id", id);
    cJSON_AddStringToObject(d, "type", "flow-runs");
    cJSON *a = cJSON_AddObjectToObject(d, "attributes");
    cJSON_AddNumberToObject(a, "status", status);
    mock_add_id(a, "flow_id", run.flow_id);
    mock_add_id(a, "flow_version_id", run.version_id);
    mock_add_time(a, "started_at", run.started_ms);
    if (status == RUN_RUNNING)
        cJSON_AddNullToObject(a, "finished_at");
    else
        mock_add_time(a, "finished_at", run.started_ms + m->opt.run_duration_ms);
    mock_set_answer(ans, 200, mock_json_print(r));
}

/* ---- logs ------------------------------------------------------------------------------ */

#define MAX_ENTRIES 6

struct entry {
    const char *level;
    char message[96];
};

static void add_entry(struct entry *e, size_t *n, const char *level, const char *message)
{
    e[*n].level = level;
    snprintf(e[*n].message, sizeof(e[*n].message), "%s", message);
    (*n)++;
}

/* The log of RUN with STATUS: what a three-step flow (receive, map, send) writes. */
static size_t run_log(const struct mock_run *run, int status, struct entry *e)
{
    size_t n = 0;
    char bad[96];
    add_entry(e, &n, "info", "Flow run started");
    if (status == RUN_RUNNING)
        return n;
    add_entry(e, &n, "info", "Step 1 (Receive payload) completed");
    switch (status) {
    case RUN_FAILED:
        snprintf(bad, sizeof(bad), "Mapping failed: field 'sku' missing in record %u",
                 run->bad_record);
        add_entry(e, &n, "error", bad);
        add_entry(e, &n, "error", "Flow run finished: failed");
        break;
    case RUN_STOPPED:
        add_entry(e, &n, "warning", "Flow run stopped by a user");
        add_entry(e, &n, "warning", "Flow run finished: stopped");
        break;
    case RUN_PARTIAL:
        snprintf(bad, sizeof(bad), "Mapping skipped record %u: field 'sku' missing",
                 run->bad_record);
        add_entry(e, &n, "warning", bad);
        add_entry(e, &n, "info", "Step 3 (Send to destination) completed");
        add_entry(e, &n, "warning", "Flow run finished: partial success");
        break;
    default:
        add_entry(e, &n, "info", "Step 2 (Map fields) completed");
        add_entry(e, &n, "info", "Step 3 (Send to destination) completed");
        add_entry(e, &n, "info", "Flow run finished: success");
        break;
    }
    return n;
}

void mock_run_answer_logs(struct pd_mock *m, const struct mock_request *rq,
                          const struct mock_route_match *rt, struct mock_answer *ans)
{
    struct mock_run run;
    struct mock_page pg;
    struct entry e[MAX_ENTRIES];
    int status;
    if (!mock_read_page(rq, &pg, ans))
        return;
    if (!run_now(m, rt->id, &run, &status)) {
        mock_answer_message(ans, 404, "Flow run not found.");
        return;
    }
    size_t n = run_log(&run, status, e);
    cJSON *data = cJSON_CreateArray();
    for (uint64_t i = (pg.page - 1) * pg.per_page; i < n && i < pg.page * pg.per_page; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "id", (double)(run.id * 100 + i + 1));
        cJSON_AddNumberToObject(o, "flow_run_id", (double)run.id);
        cJSON_AddStringToObject(o, "level", e[i].level);
        cJSON_AddStringToObject(o, "message", e[i].message);
        /* Entries spread over the run's life; the last one at its end. */
        uint64_t at = n > 1 ? m->opt.run_duration_ms * i / (n - 1) : 0;
        mock_add_time(o, "created_at", run.started_ms + at);
        cJSON_AddItemToArray(data, o);
    }
    mock_set_answer(ans, 200, mock_paginated(rq, &pg, n, data));
}

/* ---- retry ----------------------------------------------------------------------------- */

void mock_run_answer_retry(struct pd_mock *m, const struct mock_route_match *rt,
                           struct mock_answer *ans)
{
    struct mock_run orig;
    pthread_mutex_lock(&m->lock);
    bool found = mock_store_run_get(m->store, rt->id, &orig);
    pthread_mutex_unlock(&m->lock);
    if (!found) {
        mock_answer_message(ans, 404, "Flow run not found.");
        return;
    }
    /* A payload that broke the flow breaks it again, unless told the cause was fixed. */
    bool marker = orig.marker && !m->opt.run_retry_succeeds;
    uint64_t id = 0;
    if (mock_run_create(m, orig.flow_id, orig.version_id, marker, orig.id, &id)) {
        mock_answer_message(ans, 500, "Server Error");
        return;
    }
    ans->flow_run_id = id;
    cJSON *r = cJSON_CreateObject();
    cJSON_AddStringToObject(r, "message", "Flow run retried.");
    cJSON_AddNumberToObject(r, "flow_run_id", (double)id);
    mock_set_answer(ans, 200, mock_json_print(r));
}
