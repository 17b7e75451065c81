/*
 * Charts for the status page: series of counts a step (a minute) each, drawn as one inline SVG
 * that needs no script and no other file. Pure: takes the numbers, returns the markup.
 */
#ifndef PD_STATUS_CHART_H
#define PD_STATUS_CHART_H

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>

enum pd_chart_kind {
    PD_CHART_BARS,  /* a bar a step; bar series are stacked, in their order */
    PD_CHART_LIMIT, /* a dashed line: a ceiling the bars should stay under; 0 means none */
};

struct pd_chart_series {
    const char *name;  /* for the legend and each bar's tooltip, e.g. "delivered" */
    const char *color; /* a CSS colour from the caller's code, never from data: "#2a7" */
    enum pd_chart_kind kind;
    const double *values; /* the chart's N steps, oldest first */
};

struct pd_chart {
    const char *title; /* the chart's heading and accessible name */
    const char *unit;  /* what a count is, for tooltips after the series' name: "files"; or NULL */
    uint64_t start_ms; /* wall time of the first step (labels as HH:MM UTC) */
    uint64_t step_ms;  /* a step's length: 60000 */
    size_t n, min_steps; /* steps given; the width spans at least MIN_STEPS, newest at the right */
    const struct pd_chart_series *series;
    size_t nseries;
};

/* C as "<svg ...>...</svg>": every text escaped, sizes in the viewBox so it scales. NULL only
 * when out of memory. The caller frees it. */
char *pd_status_chart_svg(const struct pd_chart *c);

/* S to F with & < > " ' as entities, control characters as U+FFFD: safe in HTML and SVG text
 * and attribute values. */
void pd_markup_esc(FILE *f, const char *s);

#endif
