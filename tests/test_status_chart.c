/*
 * Unit tests of the status page's charts (pd_status_chart_svg, src/app/status_chart.c): the
 * SVG parses as XML (expat), has a bar per count with its tooltip, a dashed limit, escaped text,
 * and says so when there is nothing to draw.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "pd_status_chart.h"

#include <expat.h>

#include <stdbool.h>

#include <stdlib.h>
#include <string.h>

/* What the parser saw. */
struct seen {
    int bars, limits, empties, overs;
    bool in_title, in_text;
    char titles[4096], text[4096];
    const char *root;
};

static const char *attr(const XML_Char **a, const char *name)
{
    for (; a && a[0]; a += 2)
        if (!strcmp(a[0], name))
            return a[1];
    return NULL;
}

static void on_start(void *arg, const XML_Char *el, const XML_Char **a)
{
    struct seen *s = arg;
    const char *cls = attr(a, "class");

    if (!s->root)
        s->root = strcmp(el, "svg") ? "other" : "svg";
    if (!strcmp(el, "rect") && cls && !strcmp(cls, "bar"))
        s->bars++;
    if (!strcmp(el, "path") && cls && !strcmp(cls, "limit")) {
        s->limits++;
        assert_non_null(attr(a, "stroke-dasharray"));
    }
    if (!strcmp(el, "text") && cls && !strcmp(cls, "empty"))
        s->empties++;
    if (!strcmp(el, "text") && cls && !strcmp(cls, "over"))
        s->overs++;
    s->in_title = !strcmp(el, "title");
    s->in_text = !strcmp(el, "text");
}

static void on_end(void *arg, const XML_Char *el)
{
    struct seen *s = arg;
    if (!strcmp(el, "title"))
        strncat(s->titles, "\n", sizeof(s->titles) - strlen(s->titles) - 1);
    if (!strcmp(el, "text"))
        strncat(s->text, "\n", sizeof(s->text) - strlen(s->text) - 1);
    s->in_title = s->in_text = false;
}

static void on_data(void *arg, const XML_Char *d, int len)
{
    struct seen *s = arg;
    char *to = s->in_title ? s->titles : s->in_text ? s->text : NULL;
    size_t have;

    if (!to)
        return;
    have = strlen(to);
    if (have + (size_t)len < 4095)
        memcpy(to + have, d, (size_t)len), to[have + (size_t)len] = 0;
}

/* Parses SVG (asserting it is well-formed XML with an <svg> root) into S; frees SVG. */
static void parse(char *svg, struct seen *s)
{
    XML_Parser p = XML_ParserCreate("UTF-8");

    assert_non_null(svg);
    memset(s, 0, sizeof(*s));
    XML_SetUserData(p, s);
    XML_SetElementHandler(p, on_start, on_end);
    XML_SetCharacterDataHandler(p, on_data);
    if (XML_Parse(p, svg, (int)strlen(svg), 1) != XML_STATUS_OK)
        fail_msg("not XML: %s at line %lu column %lu in %s", XML_ErrorString(XML_GetErrorCode(p)),
                 (unsigned long)XML_GetCurrentLineNumber(p),
                 (unsigned long)XML_GetCurrentColumnNumber(p), svg);
    XML_ParserFree(p);
    assert_string_equal(s->root, "svg");
    assert_non_null(strstr(svg, "viewBox=\"0 0 "));
    assert_null(strstr(svg, "<script"));
    free(svg);
}

/* 2026-11-30T11:58:00Z */
#define START_MS 1796039880000ull

/* Stacked bars: one per nonzero count, each with its minute and count as a tooltip. */
static void bars_and_tooltips(void **state)
{
    (void)state;
    double ok[5] = {0, 3, 0, 1, 2}, bad[5] = {0, 1, 0, 0, 0};
    struct pd_chart_series s[2] = {{"delivered", "#2a7", PD_CHART_BARS, ok},
                                   {"failed", "#c33", PD_CHART_BARS, bad}};
    struct pd_chart c = {.title = "Files a minute",
                         .unit = "files",
                         .start_ms = START_MS,
                         .step_ms = 60000,
                         .n = 5,
                         .min_steps = 60,
                         .series = s,
                         .nseries = 2};
    struct seen v;

    parse(pd_status_chart_svg(&c), &v);
    assert_int_equal(v.bars, 4);
    assert_int_equal(v.limits, 0);
    assert_int_equal(v.empties, 0);
    assert_non_null(strstr(v.titles, "11:59 UTC: 3 delivered files\n"));
    assert_non_null(strstr(v.titles, "11:59 UTC: 1 failed files\n"));
    assert_non_null(strstr(v.titles, "12:02 UTC: 2 delivered files\n"));
    /* Axes: the title, the legend, a count (5 rounds up to 5) and times as HH:MM. */
    assert_non_null(strstr(v.text, "Files a minute\n"));
    assert_non_null(strstr(v.text, "delivered\n"));
    assert_non_null(strstr(v.text, "\n5\n"));
    assert_non_null(strstr(v.text, "12:00\n"));
    assert_non_null(strstr(v.text, "UTC\n"));
}

/* The account's chart of N minutes (spanning MIN at least): requests REQ under LIM, parsed. */
static void account(const double *req, const double *lim, size_t n, size_t min, struct seen *v)
{
    struct pd_chart_series s[2] = {{"requests", "#36c", PD_CHART_BARS, req},
                                   {"limit", "#a00", PD_CHART_LIMIT, lim}};
    struct pd_chart c = {.title = "Account",
                         .start_ms = START_MS,
                         .step_ms = 60000,
                         .n = n,
                         .min_steps = min,
                         .series = s,
                         .nseries = 2};

    parse(pd_status_chart_svg(&c), v);
}

/* The limit is one dashed line; the scale holds it. */
static void limit_line(void **state)
{
    (void)state;
    double req[3] = {100, 0, 7}, lim[3] = {240, 240, 240};
    struct seen v;

    account(req, lim, 3, 0, &v);
    assert_int_equal(v.bars, 2);
    assert_int_equal(v.limits, 1);
    assert_non_null(strstr(v.text, "\n500\n"));
    assert_non_null(strstr(v.titles, "11:58 UTC: 100 requests\n"));
    assert_non_null(strstr(v.titles, "limit: 240 a minute\n"));
}

/* A limit far above the bars is told in words: the bars keep the scale. */
static void limit_far_above(void **state)
{
    (void)state;
    double req[2] = {2, 3}, lim[2] = {240, 240};
    struct seen v;

    account(req, lim, 2, 60, &v);
    assert_int_equal(v.bars, 2);
    assert_int_equal(v.limits, 0);
    assert_int_equal(v.overs, 1);
    assert_non_null(strstr(v.text, "limit 240 a minute, far above\n"));
    assert_non_null(strstr(v.text, "\n5\n"));
    /* Without a single request, the limit is the scale. */
    req[0] = req[1] = 0;
    account(req, lim, 2, 60, &v);
    assert_int_equal(v.limits, 1);
    assert_int_equal(v.empties, 1);
}

/* Markup in any text stays text. */
static void escapes(void **state)
{
    (void)state;
    double one[1] = {1};
    struct pd_chart_series s[1] = {{"x<y>&\"'\x01", "#000\"/><script>", PD_CHART_BARS, one}};
    struct pd_chart c = {.title = "<b>watch</b> & 'co'",
                         .unit = "<u>",
                         .start_ms = START_MS,
                         .step_ms = 60000,
                         .n = 1,
                         .series = s,
                         .nseries = 1};
    char *svg = pd_status_chart_svg(&c);
    struct seen v;

    assert_non_null(svg);
    assert_null(strstr(svg, "<b>"));
    assert_null(strstr(svg, "<u>"));
    assert_null(strstr(svg, "<script>"));
    parse(svg, &v);
    assert_int_equal(v.bars, 1);
    assert_non_null(strstr(v.titles, "<b>watch</b> & 'co'\n"));
    assert_non_null(strstr(v.titles, "1 x<y>&\"'\xef\xbf\xbd <u>\n"));
}

/* No steps, or only zeros: axes and "nothing yet", no bar, no line. */
static void empty(void **state)
{
    (void)state;
    double zero[2] = {0, 0};
    struct pd_chart c = {.title = "Nothing", .start_ms = START_MS};
    struct seen v;

    account(zero, zero, 2, 60, &v);
    assert_int_equal(v.bars + v.limits, 0);
    assert_int_equal(v.empties, 1);
    account(zero, zero, 0, 0, &v);
    assert_int_equal(v.bars + v.limits, 0);
    assert_int_equal(v.empties, 1);
    parse(pd_status_chart_svg(&c), &v); /* no series at all */
    assert_int_equal(v.empties, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(bars_and_tooltips),
        cmocka_unit_test(limit_line),
        cmocka_unit_test(limit_far_above),
        cmocka_unit_test(escapes),
        cmocka_unit_test(empty),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
