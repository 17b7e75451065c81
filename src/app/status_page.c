/*
 * The status page the metrics listener serves at /: the daemon's status document (README,
 * "Status") as one HTML page, made here from the JSON alone so the metrics module needs nothing
 * of the daemon. No script, no external asset: it reads the same with JavaScript off, and a
 * <meta http-equiv="refresh"> reloads it. The history a minute at a time is drawn as inline SVG
 * (status_chart.c): a chart per watch and one for the account. Every string from the document (file names come from
 * anyone who may write to a drop folder) is HTML-escaped; links go only to http(s) addresses.
 */
#include "pd_metrics.h"

#include "pd_error.h"
#include "pd_status_chart.h"

#include <cjson/cJSON.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REFRESH_S 5

static const char style[] =
    "body{font-family:sans-serif;margin:1em;color:#222}"
    "table{border-collapse:collapse;margin:.3em 0 1em}"
    "td,th{border:1px solid #ccc;padding:.2em .5em;text-align:left;vertical-align:top}"
    "th{background:#eee}.bad{color:#a00}.muted{color:#777}h2{margin-bottom:.2em}"
    "progress{width:10em}svg.chart{display:block;margin:.3em 0 1em}";

#define esc pd_markup_esc

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* OPEN, S escaped, CLOSE. */
static void tagged(FILE *f, const char *open, const char *s, const char *close)
{
    fputs(open, f);
    esc(f, s);
    fputs(close, f);
}

/* A table cell holding S escaped, "-" when absent. */
static void cell(FILE *f, const char *cls, const char *s)
{
    fprintf(f, "<td class=\"%s\">", cls);
    if (s)
        tagged(f, "", s, "</td>");
    else
        fputs("<span class=\"muted\">-</span></td>", f);
}

/* The history's first minute, "2026-11-30T11:45:00Z", as wall ms; 0 when absent. */
static uint64_t history_start(const cJSON *root)
{
    const char *s = str(cJSON_GetObjectItemCaseSensitive(root, "history"), "start");
    struct tm tm = {0};
    time_t t;

    if (!s || sscanf(s, "%d-%d-%dT%d:%d:%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                     &tm.tm_min, &tm.tm_sec) != 6)
        return 0;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    t = timegm(&tm);
    return t > 0 ? (uint64_t)t * 1000 : 0;
}

/* The numbers of the array KEY of O, N of them (missing ones 0); NULL: out of memory. */
static double *series(const cJSON *o, const char *key, size_t n)
{
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(o, key), *x;
    double *v = calloc(n ? n : 1, sizeof(*v));
    size_t i = 0;

    cJSON_ArrayForEach(x, arr)
    {
        if (!v || i >= n)
            break;
        v[i++] = cJSON_IsNumber(x) ? x->valuedouble : 0;
    }
    return v;
}

/* A chart of the two arrays A and B of history object H (the steps: the length of the root's
 * requests), as bars or as bars and a limit. */
static void page_chart(FILE *f, const cJSON *root, const cJSON *h, const char *title,
                       const char *unit, const struct pd_chart_series kinds[2])
{
    const cJSON *rh = cJSON_GetObjectItemCaseSensitive(root, "history");
    size_t n = (size_t)cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(rh, "requests"));
    struct pd_chart_series s[2] = {kinds[0], kinds[1]};
    struct pd_chart c = {.title = title, .unit = unit, .start_ms = history_start(root),
                         .step_ms = (uint64_t)(num(rh, "minute_seconds") * 1000), .n = n,
                         .min_steps = 60, .series = s, .nseries = 2};
    double *a = series(h, s[0].name, n), *b = series(h, s[1].name, n);
    char *svg = NULL;

    s[0].values = a;
    s[1].values = b;
    if (a && b && (svg = pd_status_chart_svg(&c)))
        fputs(svg, f);
    free(svg);
    free(a);
    free(b);
}

static void page_account(FILE *f, const cJSON *root)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "account");

    tagged(f, "<h1>patchdrop ", str(root, "version"), "</h1>");
    tagged(f, "<p id=\"daemon\">", str(root, "state"), "");
    fprintf(f, ", pid %.0f, at ", num(root, "pid"));
    esc(f, str(root, "now"));
    fprintf(f, "; flow runs followed: %.0f</p>", num(root, "runs_followed"));
    if (!cJSON_IsObject(a))
        return;
    fprintf(f, "<p id=\"account\">Account: %.0f requests in the last %.0f s",
            num(a, "requests_used"), num(a, "window_seconds"));
    if (num(a, "requests_limit") > 0)
        fprintf(f, " of %.0f allowed <meter min=\"0\" max=\"%.0f\" value=\"%.0f\"></meter>",
                num(a, "requests_limit"), num(a, "requests_limit"), num(a, "requests_used"));
    fprintf(f, "; %.0f in flight, %.0f waiting", num(a, "requests_in_flight"),
            num(a, "requests_waiting"));
    if (str(a, "paused_until"))
        tagged(f, "; <span class=\"bad\">paused until ", str(a, "paused_until"),
               " (429/503)</span>");
    if (str(a, "token_valid_until"))
        tagged(f, "; token valid until ", str(a, "token_valid_until"), "");
    fputs("</p>", f);
    page_chart(f, root, cJSON_GetObjectItemCaseSensitive(root, "history"),
               "Account: requests a minute", NULL,
               (const struct pd_chart_series[2]){
                   {.name = "requests", .color = "#36c", .kind = PD_CHART_BARS},
                   {.name = "limit", .color = "#a00", .kind = PD_CHART_LIMIT}});
}

static void page_files(FILE *f, const cJSON *files)
{
    const cJSON *x;

    if (!cJSON_GetArraySize(files))
        return;
    fputs("<h3>In progress</h3><table class=\"files\"><tr><th>File</th><th>State</th>"
          "<th>Progress</th><th>Attempts</th><th>Last error</th><th>Next attempt</th></tr>",
          f);
    cJSON_ArrayForEach(x, files)
    {
        double size = num(x, "size"), done = num(x, "bytes_done");
        fputs("<tr class=\"file\">", f);
        cell(f, "name", str(x, "name"));
        cell(f, "state", str(x, "state"));
        fprintf(f,
                "<td class=\"progress\"><progress max=\"%.0f\" value=\"%.0f\"></progress> "
                "%.0f of %.0f bytes",
                size > 0 ? size : 1, done, done, size);
        if (cJSON_GetObjectItemCaseSensitive(x, "chunk")) {
            fprintf(f, ", chunk %.0f of ", num(x, "chunk"));
            if (num(x, "chunks") > 0)
                fprintf(f, "%.0f", num(x, "chunks"));
            else
                fputs("?", f);
        }
        fprintf(f, "</td><td>%.0f</td>", num(x, "attempts"));
        cell(f, "error", str(x, "last_error"));
        cell(f, "next", str(x, "next_attempt"));
        fputs("</tr>", f);
    }
    fputs("</table>", f);
}

/* Only an http(s) address becomes a link. */
static void run_link(FILE *f, const cJSON *run)
{
    const char *id = str(run, "id"), *url = str(run, "dashboard");

    if (url && (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7))) {
        tagged(f, "<a class=\"run\" href=\"", url, "\">");
        tagged(f, "", id, "</a> ");
    } else {
        tagged(f, "", id, " ");
    }
}

static void page_done(FILE *f, const cJSON *list, bool ok)
{
    const cJSON *x, *r;

    if (!cJSON_GetArraySize(list))
        return;
    fprintf(f, "<h3>%s</h3><table class=\"%s\"><tr><th>File</th><th>When</th><th>%s</th></tr>",
            ok ? "Delivered lately" : "Failed lately", ok ? "delivered" : "failed",
            ok ? "Flow runs" : "Reason");
    cJSON_ArrayForEach(x, list)
    {
        fprintf(f, "<tr class=\"%s\">", ok ? "delivery" : "failure");
        cell(f, "name", str(x, "name"));
        cell(f, "at", str(x, "at"));
        if (!ok) {
            cell(f, "reason bad", str(x, "reason"));
        } else {
            fputs("<td class=\"runs\">", f);
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(x, "duplicate")))
                fputs("duplicate, not sent ", f);
            cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(x, "runs")) run_link(f, r);
            fputs("</td>", f);
        }
        fputs("</tr>", f);
    }
    fputs("</table>", f);
}

static void page_watch(FILE *f, const cJSON *root, const cJSON *w)
{
    const cJSON *oldest = cJSON_GetObjectItemCaseSensitive(w, "oldest_undelivered_seconds");

    tagged(f, "<section class=\"watch\"><h2>Watch ", str(w, "name"), "</h2>");
    tagged(f, "<p class=\"muted\">", str(w, "folder"), "</p>");
    if (str(w, "disabled"))
        tagged(f, "<p class=\"bad\">Disabled: ", str(w, "disabled"), "</p>");
    fprintf(f,
            "<table class=\"counts\"><tr><th>Settling</th><th>Ready</th><th>Claimed</th>"
            "<th>Sending</th><th>Retrying</th><th>Parked</th><th>Oldest undelivered</th></tr>"
            "<tr><td>%.0f</td><td>%.0f</td><td>%.0f</td><td>%.0f</td><td>%.0f</td><td>%.0f</td>",
            num(w, "settling"), num(w, "ready"), num(w, "claimed"), num(w, "in_flight"),
            num(w, "retrying"), num(w, "parked"));
    if (cJSON_IsNumber(oldest))
        fprintf(f, "<td>%.0f s</td></tr></table>", oldest->valuedouble);
    else
        fputs("<td>-</td></tr></table>", f);
    page_chart(f, root, cJSON_GetObjectItemCaseSensitive(w, "history"),
               "Files a minute", "files",
               (const struct pd_chart_series[2]){
                   {.name = "delivered", .color = "#2a7", .kind = PD_CHART_BARS},
                   {.name = "failed", .color = "#c33", .kind = PD_CHART_BARS}});
    page_files(f, cJSON_GetObjectItemCaseSensitive(w, "files"));
    page_done(f, cJSON_GetObjectItemCaseSensitive(w, "failed"), false);
    page_done(f, cJSON_GetObjectItemCaseSensitive(w, "delivered"), true);
    fputs("</section>", f);
}

int pd_status_page_render(const char *json, char **html, size_t *len)
{
    cJSON *root = json ? cJSON_Parse(json) : NULL, *w;
    FILE *f = open_memstream(html, len);

    if (!f) {
        cJSON_Delete(root);
        return PD_ENOMEM;
    }
    fprintf(f,
            "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            "<meta http-equiv=\"refresh\" content=\"%d\"><title>patchdrop status</title>"
            "<style>%s</style></head><body>",
            REFRESH_S, style);
    if (!cJSON_IsObject(root)) {
        fputs("<h1>patchdrop</h1><p class=\"bad\">The daemon's status is not available yet "
              "(starting, or between two configurations).</p>",
              f);
    } else {
        page_account(f, root);
        cJSON_ArrayForEach(w, cJSON_GetObjectItemCaseSensitive(root, "watches")) page_watch(f, root, w);
    }
    fputs("</body></html>\n", f);
    cJSON_Delete(root);
    if (fclose(f)) {
        free(*html);
        *html = NULL;
        return PD_ENOMEM;
    }
    return 0;
}
