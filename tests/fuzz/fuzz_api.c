/*
 * libFuzzer target for reading Patchworks answers: the classifier, the login answer, the
 * flow-run record, its log pages and the retry answer, and the lookup answers (pages of lookups and
 * rows, one-record answers) must cope with any body (the server, a proxy or a captive portal may
 * send anything) without crashing or leaking.
 */
#include "pd_api.h"
#include "pd_error.h"
#include "pd_lookup.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* api.c is built alone here, without the lookup module's cleanup functions. */
static void row_free(struct pd_lookup_row *row)
{
    free(row->id);
    free(row->left);
    free(row->right);
}

static void info_free(struct pd_lookup_info *info)
{
    free(info->id);
    free(info->name);
    free(info->description);
    free(info->default_value);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {0, 200, 201, 204, 301, 400, 401, 403, 404, 408,
                                    413, 422, 429, 500, 502, 503, 504, 599};
    struct pd_api_result r;
    char *token = NULL, *words = NULL, *raw = NULL;
    uint64_t ttl = 0;

    if (size < 2)
        return 0;
    long status = statuses[data[0] % (sizeof(statuses) / sizeof(statuses[0]))];
    int curl_code = data[1] % 4 == 0 ? (int)(data[1] / 4) : 0;
    const char *body = (const char *)data + 2;
    size_t len = size - 2;

    memset(&r, 0, sizeof(r));
    if (pd_api_classify(status, curl_code, body, len, &r) == 0) {
        if (r.verdict > PD_API_FATAL)
            abort();
        if (status >= 200 && status < 300 && curl_code == 0 && r.verdict != PD_API_OK)
            abort();
        pd_api_result_cleanup(&r);
    }
    if (pd_api_parse_login(body, len, 86400, &token, &ttl) == 0 && !token)
        abort();
    free(token);
    if (pd_api_parse_run_status(body, len, &words, &raw) == 0 && !words)
        abort();
    free(words);
    free(raw);

    struct pd_api_run run;
    if (pd_api_parse_run(body, len, &run) == 0) {
        if (run.status < 0 || run.status > 5 || (run.status && !pd_api_run_outcome(run.status)))
            abort();
        pd_api_run_cleanup(&run);
    } else if (run.status || run.started_at || run.finished_at) {
        abort();
    }
    struct pd_api_run_log *logs = NULL;
    size_t nlogs = 0;
    unsigned next = 0;
    if (pd_api_parse_run_logs(body, len, &logs, &nlogs, &next) == 0) {
        if (nlogs > PD_API_RUN_LOGS_MAX || next > PD_API_MAX_PAGES)
            abort();
        for (size_t i = 0; i < nlogs; i++)
            if ((!logs[i].time && !logs[i].level && !logs[i].message) ||
                (logs[i].message && strlen(logs[i].message) > PD_API_RUN_LOG_MESSAGE_MAX))
                abort();
        pd_api_run_logs_free(logs, nlogs);
    } else if (logs || nlogs || next) {
        abort();
    }
    char *new_id = NULL;
    if (pd_api_parse_retry(body, len, &new_id) == 0 && (!new_id || !new_id[0]))
        abort();
    free(new_id);

    struct pd_lookup_info *infos = NULL, info;
    struct pd_lookup_rows rows;
    struct pd_lookup_row row;
    struct pd_api_page pg;
    size_t n = 0;
    char why[200];
    if (pd_api_parse_lookups_page(body, len, 1, &infos, &n, &pg, why, sizeof(why)) == 0) {
        if (pg.last_page > PD_API_MAX_PAGES || n != pg.items)
            abort();
        for (size_t i = 0; i < n; i++) {
            if (!infos[i].id || !infos[i].name)
                abort();
            info_free(&infos[i]);
        }
        pd_api_page_cleanup(&pg);
    } else if (infos || n) {
        abort();
    }
    free(infos);
    if (pd_api_parse_rows_page(body, len, 1, &rows, &pg, why, sizeof(why)) == 0) {
        if (rows.n != pg.items)
            abort();
        for (size_t i = 0; i < rows.n; i++) {
            if (!rows.v[i].id || !rows.v[i].left || !rows.v[i].right)
                abort();
            row_free(&rows.v[i]);
        }
        pd_api_page_cleanup(&pg);
    }
    free(rows.v);
    if (pd_api_parse_lookup(body, len, &info, why, sizeof(why)) == 0 && !info.id)
        abort();
    info_free(&info);
    if (pd_api_parse_lookup_row(body, len, &row, why, sizeof(why)) == 0) {
        if (!row.id || !row.left || !row.right)
            abort();
        row_free(&row);
    }
    return 0;
}
