/*
 * The status page's charts (pd_status_chart.h): counts a minute as stacked bars, a limit as a
 * dashed line, axes with a few labels, a <title> on each bar for its tooltip. Inline SVG: no
 * script, no other file; the text takes the page's font, the viewBox makes it scale.
 */
#include "pd_status_chart.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* The drawing, in viewBox units: the plot sits in [L, R] x [T, B]. */
#define W 720
#define H 170
#define L 44.0
#define R 712.0
#define T 26.0
#define B 140.0
#define XTICKS 6 /* time labels at most */
#define OVER 4   /* a limit over OVER times the tallest bar is told, not drawn: bars stay seen */

void pd_markup_esc(FILE *f, const char *s)
{
    static const char *const ent[] = {
        ['&'] = "&amp;", ['<'] = "&lt;", ['>'] = "&gt;", ['"'] = "&quot;", ['\''] = "&#39;"};

    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p < sizeof(ent) / sizeof(ent[0]) && ent[*p])
            fputs(ent[*p], f);
        else if (*p < 0x20 || *p == 0x7f)
            fputs("&#xFFFD;", f);
        else
            fputc(*p, f);
    }
}

/* "HH:MM" of wall time MS, UTC. */
static void hhmm(char *buf, size_t len, uint64_t ms)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;

    if (!gmtime_r(&t, &tm) || !strftime(buf, len, "%H:%M", &tm))
        snprintf(buf, len, "?");
}

/* The tallest stack of bars and the highest limit; 0 when there is none. */
static void tops(const struct pd_chart *c, double *bars, double *limit)
{
    *bars = *limit = 0;
    for (size_t i = 0; i < c->n; i++) {
        double stack = 0;
        for (size_t k = 0; k < c->nseries; k++) {
            double v = c->series[k].values[i];
            if (v <= 0)
                continue;
            if (c->series[k].kind == PD_CHART_BARS)
                stack += v;
            else if (v > *limit)
                *limit = v;
        }
        if (stack > *bars)
            *bars = stack;
    }
}

/* The smallest 1, 2 or 5 times a power of ten at or over V (1 at least). */
static double nice_ceil(double v)
{
    double p = 1;

    while (p * 10 < v)
        p *= 10;
    return p >= v ? p : p * 2 >= v ? p * 2 : p * 5 >= v ? p * 5 : p * 10;
}

static void y_axis(FILE *f, double ymax)
{
    fprintf(f,
            "<g stroke=\"#999\" stroke-width=\"1\"><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" "
            "y2=\"%.0f\"/><line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\"/>"
            "<line x1=\"%.0f\" y1=\"%.0f\" x2=\"%.0f\" y2=\"%.0f\" stroke=\"#ddd\"/></g>",
            L, T, L, B, L, B, R, B, L, T, R, T);
    fprintf(f,
            "<g font-size=\"11\" fill=\"#555\" text-anchor=\"end\"><text x=\"%.0f\" y=\"%.0f\">"
            "0</text><text x=\"%.0f\" y=\"%.0f\">%g</text>",
            L - 4, B + 4, L - 4, T + 4, ymax);
    if (ymax >= 2 && (long long)ymax % 2 == 0)
        fprintf(f, "<text x=\"%.0f\" y=\"%.1f\">%g</text>", L - 4, (T + B) / 2 + 4, ymax / 2);
    fputs("</g>", f);
}

/* Time labels on whole multiples of a round number of steps. */
static void x_axis(FILE *f, const struct pd_chart *c, size_t slots, uint64_t first_ms)
{
    static const unsigned every[] = {1, 2, 5, 10, 15, 30, 60, 120, 240, 480};
    uint64_t step = c->step_ms ? c->step_ms : 60000, k = 1;
    double bw = (R - L) / (double)slots;
    char buf[16];

    for (size_t i = 0; i < sizeof(every) / sizeof(every[0]); i++) {
        k = every[i];
        if ((slots + k - 1) / k <= XTICKS)
            break;
    }
    fputs("<g font-size=\"11\" fill=\"#555\" text-anchor=\"middle\">", f);
    for (size_t s = 0; s < slots; s++) {
        uint64_t at = first_ms + s * step;
        if ((at / step) % k)
            continue;
        hhmm(buf, sizeof(buf), at);
        fprintf(f, "<text x=\"%.1f\" y=\"%.0f\">%s</text>", L + s * bw, B + 15, buf);
    }
    fputs("<text x=\"712\" y=\"168\" text-anchor=\"end\">UTC</text></g>", f);
}

static void bars(FILE *f, const struct pd_chart *c, size_t slots, double ymax)
{
    double bw = (R - L) / (double)slots, gap = bw > 3 ? bw * 0.15 : 0;
    uint64_t step = c->step_ms ? c->step_ms : 60000;
    char buf[16];

    for (size_t i = 0; i < c->n; i++) {
        double x = L + (double)(slots - c->n + i) * bw, y = B;
        hhmm(buf, sizeof(buf), c->start_ms + i * step);
        for (size_t k = 0; k < c->nseries; k++) {
            const struct pd_chart_series *s = &c->series[k];
            double v = s->values[i], h = v / ymax * (B - T);
            if (s->kind != PD_CHART_BARS || v <= 0)
                continue;
            y -= h;
            fprintf(f,
                    "<rect class=\"bar\" x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"%.2f\" "
                    "fill=\"",
                    x + gap / 2, y, bw - gap, h);
            pd_markup_esc(f, s->color);
            fprintf(f, "\"><title>%s UTC: %g ", buf, v);
            pd_markup_esc(f, s->name);
            if (c->unit && *c->unit) {
                fputs(" ", f);
                pd_markup_esc(f, c->unit);
            }
            fputs("</title></rect>", f);
        }
    }
}

/* A limit as a dashed step line, broken where it is 0 (none). */
static void limit(FILE *f, const struct pd_chart *c, const struct pd_chart_series *s, size_t slots,
                  double ymax)
{
    double bw = (R - L) / (double)slots, last = 0;
    bool open = false, any = false;

    for (size_t i = 0; i < c->n; i++) {
        double v = s->values[i], x = L + (double)(slots - c->n + i) * bw,
               y = B - v / ymax * (B - T);
        if (v <= 0) {
            open = false;
            continue;
        }
        if (!any) {
            fputs("<path class=\"limit\" fill=\"none\" stroke-width=\"1.5\" "
                  "stroke-dasharray=\"6 4\" stroke=\"",
                  f);
            pd_markup_esc(f, s->color);
            fputs("\" d=\"", f);
        }
        fprintf(f, "%s%.2f %.2f L%.2f %.2f ", open ? "L" : "M", x, y, x + bw, y);
        open = any = true;
        last = v;
    }
    if (!any)
        return;
    fputs("\"><title>", f);
    pd_markup_esc(f, s->name);
    fprintf(f, ": %g a minute</title></path>", last);
}

static void legend(FILE *f, const struct pd_chart *c)
{
    double x = R;

    /* Right-aligned, last series rightmost: about 7 units a character. */
    fputs("<g font-size=\"11\" fill=\"#555\">", f);
    for (size_t k = c->nseries; k-- > 0;) {
        const struct pd_chart_series *s = &c->series[k];
        size_t len = 0;
        for (const char *p = s->name ? s->name : ""; *p; p++)
            len++;
        x -= 7.0 * (double)len + 22;
        fprintf(f, "<rect x=\"%.0f\" y=\"8\" width=\"12\" height=\"%s\" fill=\"", x,
                s->kind == PD_CHART_BARS ? "10" : "2");
        pd_markup_esc(f, s->color);
        fprintf(f, "\"/><text x=\"%.0f\" y=\"17\">", x + 16);
        pd_markup_esc(f, s->name);
        fputs("</text>", f);
    }
    fputs("</g>", f);
}

char *pd_status_chart_svg(const struct pd_chart *c)
{
    size_t slots = c->n > c->min_steps ? c->n : c->min_steps, len;
    uint64_t step = c->step_ms ? c->step_ms : 60000;
    double top, lim, ymax;
    char *out = NULL;
    FILE *f = open_memstream(&out, &len);

    if (!f)
        return NULL;
    if (!slots)
        slots = 1;
    tops(c, &top, &lim);
    if (lim > top * OVER && top > 0)
        lim = -lim; /* off the scale */
    ymax = nice_ceil(lim > top ? lim : top);
    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"chart\" viewBox=\"0 0 %d %d\" "
            "width=\"100%%\" style=\"max-width:%dpx\" role=\"img\" aria-label=\"",
            W, H, W);
    pd_markup_esc(f, c->title);
    fputs("\"><title>", f);
    pd_markup_esc(f, c->title);
    fprintf(f,
            "</title><text x=\"%.0f\" y=\"17\" font-size=\"12\" font-weight=\"bold\" "
            "fill=\"#222\">",
            L);
    pd_markup_esc(f, c->title);
    fputs("</text>", f);
    legend(f, c);
    y_axis(f, ymax);
    x_axis(f, c, slots, c->start_ms - (uint64_t)(slots - c->n) * step);
    if (lim < 0)
        fprintf(f,
                "<text class=\"over\" x=\"%.0f\" y=\"%.0f\" font-size=\"11\" fill=\"#a00\" "
                "text-anchor=\"end\">limit %g a minute, far above</text>",
                R - 4, T + 12, -lim);
    if (top > 0)
        bars(f, c, slots, ymax);
    else
        fprintf(f,
                "<text class=\"empty\" x=\"%.0f\" y=\"%.0f\" font-size=\"12\" fill=\"#777\" "
                "text-anchor=\"middle\">nothing yet</text>",
                (L + R) / 2, (T + B) / 2);
    for (size_t k = 0; lim > 0 && k < c->nseries; k++)
        if (c->series[k].kind == PD_CHART_LIMIT)
            limit(f, c, &c->series[k], slots, ymax);
    fputs("</svg>", f);
    if (fclose(f)) {
        free(out);
        return NULL;
    }
    return out;
}
