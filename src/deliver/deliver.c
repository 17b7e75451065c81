/*
 * The delivery engine `run` and `send` share (pd_deliver.h): the splitter opened with a watch's
 * settings, the next chunk, what an answer means, and the one 413 rule.
 */
#include "pd_deliver.h"

#include "deliver_internal.h"

#include "pd_bodylimit.h"
#include "pd_client.h"
#include "pd_config.h"
#include "pd_error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The failure's words and status into DL; the code RC as the expression's value. */
#define WHY(dl, rc, status, ...)                                                                   \
    (snprintf((dl)->why, sizeof((dl)->why), __VA_ARGS__), (dl)->why_status = (status), (rc))

int pd_delivery_open(struct pd_delivery *dl, const struct pd_delivery_opts *o)
{
    const struct pd_watch *w = o->watch;
    struct pd_split_opts so = {
        .format = w ? w->split : PD_SPLIT_AUTO,
        .max_body = o->budget,
        .json_array = w ? w->json_array : NULL,
        .xml_record = w ? w->xml_record : NULL,
        .header_lines = w ? (unsigned)w->header_lines : 1,
        .encoding = w ? w->encoding : NULL,
        .name = o->name,
        .mem = o->mem,
        .mem_len = o->mem_len,
    };
    memset(dl, 0, sizeof(*dl));
    dl->limit = o->limit;
    dl->max_body = o->max_body;
    dl->budget = o->budget;
    dl->why_offset = -1;
    dl->next_index = o->resume_index;
    int rc = dlx_open(dl, o, &so);
    if (rc)
        return rc < 0 ? rc : 0;
    rc = pd_split_create(o->fd, o->fd < 0 ? o->path : NULL, &so, &dl->sp);
    if (rc) {
        (void)WHY(dl, rc, 0, "%s", dl->sp ? pd_split_error(dl->sp) : pd_strerror(rc));
        pd_split_destroy(&dl->sp);
        return rc;
    }
    if (o->resume_offset || o->resume_index) {
        rc = pd_split_seek(dl->sp, o->resume_offset, o->resume_index);
        if (rc) {
            (void)WHY(dl, rc, 0, "cannot resume at byte %" PRIu64 ": %s", o->resume_offset,
                      pd_split_error(dl->sp));
            pd_split_destroy(&dl->sp);
            return rc;
        }
    }
    return 0;
}

void pd_delivery_close(struct pd_delivery *dl)
{
    pd_split_destroy(&dl->sp);
    dlx_close(dl);
}

bool pd_delivery_transient(int rc)
{
    /* Out of memory, or the system's -errno from reading: not the file's contents. */
    return rc == PD_ENOMEM || (rc > -1000 && rc < 0);
}

/* Why the splitter stopped: its words, or, when a record is too big only for what the server was
 * seen to take (not for max_body), that, and not "raise max_body", which would change nothing. */
static int split_failed(struct pd_delivery *dl, int rc)
{
    uint64_t ok_max = 0, refused_min = UINT64_MAX;

    if (dl->limit)
        pd_bodylimit_bounds(dl->limit, &ok_max, &refused_min);
    if (pd_delivery_transient(rc))
        (void)WHY(dl, rc, 0, "%s", pd_split_error(dl->sp));
    else if (rc == PD_ETOOBIG && dl->budget < dl->max_body && refused_min != UINT64_MAX)
        (void)WHY(dl, rc, 413,
                  "%s; that is below max_body because Patchworks refuses requests of %" PRIu64
                  " bytes or more (learned from its HTTP 413 answers; it accepted up to %" PRIu64
                  "), so nothing more was sent: split that record upstream, or have the server's "
                  "limit raised",
                  pd_split_error(dl->sp), refused_min, ok_max);
    else
        (void)WHY(dl, rc, 0, "%s", pd_split_error(dl->sp));
    dl->why_offset = pd_split_error_offset(dl->sp);
    if (dl->cx)
        dlx_name_why(dl);
    return rc;
}

int pd_delivery_next(struct pd_delivery *dl, struct pd_chunk *c, char **body, size_t *body_len)
{
    int rc;

    *body = NULL;
    *body_len = 0;
    dl->why_offset = -1;
    if (dl->recut) {
        dl->recut = false;
        size_t refused_len = dl->refused.body_len;
        if (dl->cx && (rc = dlx_recut_entry(dl, &dl->refused)))
            return rc;
        if ((rc = pd_split_resplit_chunk(dl->sp, &dl->refused, dl->budget)))
            return WHY(dl, rc, 413,
                       "Patchworks refused a %zu-byte request as too large (HTTP 413) and the "
                       "chunk cannot be cut smaller: %s; split the records upstream",
                       refused_len, pd_split_error(dl->sp));
    }
    if (dl->cx && !dl->sp && (rc = dlx_first_entry(dl)))
        return rc;
    rc = pd_split_next(dl->sp, c);
    /* A compressed file's next entry once one is cut to its end. */
    while (rc == 0 && dl->cx && dl->entry + 1 < dl->cx->x.n) {
        if ((rc = dlx_open_entry(dl, dl->entry + 1, 0, dl->next_index)))
            return rc;
        rc = pd_split_next(dl->sp, c);
    }
    if (rc < 0)
        return split_failed(dl, rc);
    if (rc == 0)
        return 0;
    dl->next_index = c->index + 1;
    if (dl->cx && c->last && dl->entry + 1 < dl->cx->x.n)
        c->last = false; /* more entries follow */
    uint64_t refused, need = pd_split_min_body(dl->sp);
    if (c->index == (dl->cx ? dl->cx->first[dl->entry] : 0) && dl->limit &&
        pd_bodylimit_fits(dl->limit, need, &refused))
        return WHY(dl, PD_ETOOBIG, 413,
                   "the file's largest record needs a %" PRIu64 "-byte request, and Patchworks "
                   "refuses requests of %" PRIu64 " bytes or more (learned from its HTTP 413 "
                   "answers), so nothing was sent; split that record upstream, or have the "
                   "server's limit raised",
                   need, refused);
    *body = pd_split_take_body(dl->sp, body_len);
    if (!*body)
        return WHY(dl, PD_ENOMEM, 0, "%s", pd_strerror(PD_ENOMEM));
    c->body = NULL;
    return 1;
}

enum pd_delivery_verdict pd_delivery_verdict(int err)
{
    switch (err) {
    case 0:
        return PD_DL_ACKED;
    case PD_ETOOBIG:
        return PD_DL_RECUT;
    case PD_EAUTH:
    case PD_ECONFIG:
        return PD_DL_STOP;
    case PD_ECANCELED:
    case PD_ENOMEM:
        return PD_DL_LATER;
    default: /* PD_EREJECTED, PD_EAMBIGUOUS, PD_ELIMIT; a caller's own errors */
        return PD_DL_FAILED;
    }
}

int pd_delivery_refused(struct pd_delivery *dl, const struct pd_chunk *c, size_t body_len,
                        unsigned delivered)
{
    uint64_t ok_max = 0, refused_min = body_len, budget;
    uint64_t need = pd_split_min_body(dl->sp);

    if (dl->limit) {
        pd_bodylimit_refused(dl->limit, body_len);
        pd_bodylimit_bounds(dl->limit, &ok_max, &refused_min);
    }
    if (pd_bodylimit_recut(ok_max, refused_min, body_len, need, &budget))
        return WHY(dl, -1, 413,
                   "Patchworks refused a %zu-byte request as too large (HTTP 413); the file's "
                   "largest record needs a %" PRIu64
                   "-byte request, and the server refuses %" PRIu64
                   " bytes or more (it accepted up to %" PRIu64 "); %u earlier chunk(s) were "
                   "delivered; split that record upstream, or have the server's limit raised",
                   body_len, need, refused_min, ok_max, delivered);
    dl->refused = *c;
    dl->refused.body = NULL;
    dl->refused.body_len = body_len;
    dl->budget = budget;
    dl->recut = true;
    return 0;
}

void pd_delivery_accepted(struct pd_delivery *dl, size_t body_len)
{
    if (dl->limit)
        pd_bodylimit_accepted(dl->limit, body_len);
}

void pd_delivery_failure(const struct pd_client_result *r, const struct pd_chunk *c,
                         unsigned delivered, char *buf, size_t len)
{
    unsigned n = c->index + 1;

    switch (r->err) {
    case PD_EREJECTED:
        snprintf(buf, len,
                 "Patchworks refused chunk %u (bytes %" PRIu64 "-%" PRIu64 "): %s; %u earlier "
                 "chunk(s) were delivered; fix the data (or the flow's settings) and drop the "
                 "file again",
                 n, c->start, c->end, r->message ? r->message : "no reason given", delivered);
        break;
    case PD_EAMBIGUOUS:
        snprintf(buf, len,
                 "chunk %u (bytes %" PRIu64 "-%" PRIu64 ") %s; %u earlier chunk(s) were "
                 "delivered",
                 n, c->start, c->end,
                 r->message ? r->message : "was sent several times without an answer", delivered);
        break;
    case PD_ELIMIT:
        snprintf(buf, len,
                 "chunk %u (bytes %" PRIu64 "-%" PRIu64 "): %s; %u earlier chunk(s) were "
                 "delivered; drop the file again when Patchworks is reachable",
                 n, c->start, c->end, r->message ? r->message : "gave up after max_retry_time",
                 delivered);
        break;
    default:
        snprintf(buf, len,
                 "chunk %u (bytes %" PRIu64 "-%" PRIu64 "): %s; %u earlier chunk(s) were "
                 "delivered",
                 n, c->start, c->end, r->message ? r->message : pd_strerror(r->err), delivered);
        break;
    }
}
