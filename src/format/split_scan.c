/*
 * The driver's one interface over every format's record scanner (struct pd_scan_ops, found
 * through the format registry), including the snapshot of the scanner state where the
 * record area starts, which is what lets a later chunk (or a resumed run) start scanning in
 * the middle of the file. Nothing here names a format: a new one needs no change here.
 */
#include "split_internal.h"

#include "pd_error.h"
#include "pd_format.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_segs(struct scan *sc)
{
    for (size_t k = 0; k < sc->nsegs; k++)
        free(sc->segs[k]);
    free(sc->segs);
    sc->segs = NULL;
    sc->nsegs = 0;
}

void scan_reset(struct scan *sc)
{
    sc->started = 0;
    sc->have_snap = 0;
    sc->at_mark = 0;
    sc->msg[0] = '\0';
    sc->structural = 0;
    sc->shape_msg[0] = '\0';
    sc->ops->reset(sc);
}

static void free_states(struct scan *sc)
{
    free(sc->u);
    free(sc->snap);
    free(sc->mark);
    sc->u = sc->snap = sc->mark = NULL;
}

int scan_init(struct scan *sc, int fmt, const char *json_array, const char *xml_record,
              unsigned header_lines, char delim)
{
    const struct pd_format *f = pd_format_get(fmt);
    sc->fmt = fmt;
    sc->ops = f ? f->scan : NULL;
    sc->pointer = json_array && *json_array ? json_array : NULL;
    sc->xml_record = xml_record && *xml_record ? xml_record : NULL;
    sc->header_lines = header_lines;
    sc->delim = delim;
    sc->msg[0] = '\0';
    if (!sc->ops) {
        snprintf(sc->msg, sizeof(sc->msg), "split format %d has no record scanner", fmt);
        return PD_ECONFIG;
    }
    sc->tiled = sc->ops->tiled;
    sc->u = calloc(1, sc->ops->state_size);
    sc->snap = calloc(1, sc->ops->state_size);
    sc->mark = calloc(1, sc->ops->state_size);
    int rc = !sc->u || !sc->snap || !sc->mark ? PD_ENOMEM : 0;
    if (!rc && sc->ops->init)
        rc = sc->ops->init(sc);
    if (rc < 0) {
        char keep[sizeof(sc->msg)];
        memcpy(keep, sc->msg, sizeof(keep));
        free_segs(sc);
        free_states(sc);
        memcpy(sc->msg, keep, sizeof(keep));
        return rc;
    }
    scan_reset(sc);
    return 0;
}

void scan_cleanup(struct scan *sc)
{
    free_segs(sc);
    free_states(sc);
}

int scan_never(const struct scan *sc)
{
    (void)sc;
    return 0;
}

int scan_always(const struct scan *sc)
{
    (void)sc;
    return 1;
}

/* Records a scan error: its words and where it is. Returns SCAN_ERROR. */
int scan_fail(struct scan *sc, uint64_t at, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sc->msg, sizeof(sc->msg), fmt, ap);
    va_end(ap);
    sc->ev_dec = at;
    return SCAN_ERROR;
}

static void copy_state(const struct scan *sc, void *dst, const void *src)
{
    if (sc->ops->copy)
        sc->ops->copy(dst, src);
    else
        memcpy(dst, src, sc->ops->state_size);
}

void scan_snapshot(struct scan *sc)
{
    copy_state(sc, sc->snap, sc->u);
    sc->have_snap = 1;
}

int scan_feed(struct scan *sc, const unsigned char *b, size_t n, uint64_t base, size_t *pos)
{
    int ev;
    if (!sc->started) {
        sc->started = 1;
        if (sc->ops->area_at_start(sc)) {
            sc->at_mark = 0;
            sc->ev_dec = base + *pos;
            scan_snapshot(sc);
            return SCAN_AREA_START;
        }
    }
    sc->at_mark = 0;
    ev = sc->ops->feed(sc, b, n, base, pos);
    if (ev == SCAN_AREA_START && !sc->at_mark)
        scan_snapshot(sc);
    return ev;
}

int scan_end(struct scan *sc, uint64_t eof_dec)
{
    int ev;
    if (!sc->started) {
        size_t pos = 0;
        ev = scan_feed(sc, (const unsigned char *)"", 0, eof_dec, &pos);
        if (ev != SCAN_MORE)
            return ev;
    }
    sc->at_mark = 0;
    ev = sc->ops->end(sc, eof_dec);
    if (ev == SCAN_AREA_START)
        scan_snapshot(sc);
    return ev;
}

void scan_resume(struct scan *sc, int after_record)
{
    sc->started = 1;
    sc->at_mark = 0;
    copy_state(sc, sc->u, sc->snap);
    if (sc->ops->resume)
        sc->ops->resume(sc, after_record);
}
