/*
 * The envelope of each chunk of an EDI file (see split_edi.c): the original ISA and GS (UNA,
 * UNB, UNG) before its records and trailers with the chunk's own counts after them, rendered
 * from what the scanner kept; an X12 interchange's TA1 segments are not kept but travel as
 * the text of its first record, so they go once, in the first chunk of their interchange.
 * Then the registry's parts for EDI: the content checks and the batch cutter.
 */
#include "split_edi.h"

#include "pd_batch.h"
#include "pd_error.h"

#include <stddef.h>
#include <string.h>

/* ---- the envelope of a chunk ------------------------------------------------------------ */

static size_t put(char *o, size_t at, const void *s, size_t n)
{
    memcpy(o + at, s, n);
    return at + n;
}

/* TEXT, its terminator and line break (as the interchange's header has them). */
static size_t put_seg(char *o, size_t at, const char *text, size_t n, unsigned char term,
                      const char *eol)
{
    at = put(o, at, text, n);
    o[at++] = (char)term;
    return put(o, at, eol, strlen(eol));
}

/* A trailer: TAG, a count and a control number. */
static size_t put_trailer(char *o, size_t at, const char *tag, uint64_t count, const char *ctl,
                          const struct edi_close *cl)
{
    char num[24];
    size_t k = sizeof(num);
    do
        num[--k] = (char)('0' + count % 10);
    while (count /= 10);
    at = put(o, at, tag, strlen(tag));
    o[at++] = (char)cl->el;
    at = put(o, at, num + k, sizeof(num) - k);
    o[at++] = (char)cl->el;
    return put_seg(o, at, ctl, strlen(ctl), cl->term, cl->eol);
}

static size_t close_group(const struct ediscan *e, char *o, size_t at)
{
    if (!e->cl.grp_open)
        return at;
    return put_trailer(o, at, e->kind == K_X12 ? "GE" : "UNE", e->cl.sets, e->cl.gctl, &e->cl);
}

static size_t close_interchange(const struct ediscan *e, char *o, size_t at)
{
    if (e->kind == K_X12)
        return put_trailer(o, at, "IEA", e->cl.ngroups, e->cl.ictl, &e->cl);
    return put_trailer(o, at, "UNZ", e->cl.groups ? e->cl.ngroups : e->cl.msgs, e->cl.ictl,
                       &e->cl);
}

static size_t open_interchange(struct ediscan *e, char *o, size_t at)
{
    if (e->una_len) {
        at = put(o, at, e->una, e->una_len);
        at = put(o, at, e->eol, strlen(e->eol));
    }
    at = put_seg(o, at, e->ic, e->ic_len, e->term, e->eol);
    memcpy(e->cl.ictl, e->ictl, EDI_CTL);
    memcpy(e->cl.eol, e->eol, sizeof(e->cl.eol));
    e->cl.el = e->el, e->cl.term = e->term, e->cl.groups = e->groups;
    e->cl.ngroups = e->cl.msgs = 0;
    e->ch_ic = e->ic_serial;
    return at;
}

/* The text before the record starting now; FIRST: the chunk starts with it. A record of TA1s
 * carries the group headers that follow them in its own text: the scanner counts those. */
size_t edi_env_open(struct scan *sc, int first, char *o)
{
    struct ediscan *e = sc->u;
    size_t at = 0;
    int new_ic = first || !e->ch_ic || e->ch_ic != e->ic_serial;
    int new_grp = new_ic || e->ch_grp != e->grp_serial;
    if (!first && new_grp)
        at = close_group(e, o, at);
    if (!first && new_ic && e->ch_ic)
        at = close_interchange(e, o, at);
    if (new_ic)
        at = open_interchange(e, o, at);
    if (new_grp && !e->ta1_rec) {
        e->cl.grp_open = e->kind == K_X12 || e->groups;
        if (e->cl.grp_open) {
            at = put_seg(o, at, e->grp, e->grp_len, e->term, e->eol);
            e->cl.ngroups++;
        }
        memcpy(e->cl.gctl, e->gctl, EDI_CTL);
        e->cl.sets = 0;
        e->ch_grp = e->grp_serial;
    } else if (new_grp) {
        e->cl.grp_open = 0;
    }
    if (first)
        e->cl.nrec = 0;
    e->cl.nrec++;
    if (!e->ta1_rec)
        e->cl.sets++, e->cl.msgs++;
    at = put(o, at, e->carry, e->carry_len);
    e->carry_len = 0;
    return at;
}

/* The text closing a chunk whose last record ended now. */
size_t edi_env_close(const struct scan *sc, char *o)
{
    const struct ediscan *e = sc->u;
    if (!e->ch_ic)
        return 0;
    return close_interchange(e, o, close_group(e, o, 0));
}

void edi_env_label(const struct scan *sc, char *label, size_t len)
{
    const struct ediscan *e = sc->u;
    char last[3 * EDI_CTL];
    edi_ids_of(e, last, sizeof(last));
    const char *names = e->kind == K_X12 ? "ISA13/GS06/ST02" : "UNB05/UNG05/UNH01";
    const char *parts[] = {names, " ", e->cl.first, " to ", last};
    edi_join(label, len, parts, strcmp(last, e->cl.first) ? 5 : 3);
}

/* ---- the registry's other parts --------------------------------------------------------- */

static const unsigned char *skip_lead(const unsigned char *h, size_t *n)
{
    if (*n >= 3 && h[0] == 0xEF && h[1] == 0xBB && h[2] == 0xBF)
        h += 3, *n -= 3;
    while (*n && edi_is_gap(*h))
        h++, (*n)--;
    return h;
}

int pd_sniff_x12(const unsigned char *h, size_t n)
{
    h = skip_lead(h, &n);
    if (n < 4 || memcmp(h, "ISA", 3) || edi_is_gap(h[3]) || edi_alnum(h[3]))
        return 0;
    size_t seps = 0;
    for (size_t i = 3; i < n && i < 128; i++)
        seps += h[i] == h[3];
    return seps >= 16 || (n < 128 && seps >= 3);
}

int pd_sniff_edifact(const unsigned char *h, size_t n)
{
    h = skip_lead(h, &n);
    if (n >= 9 && !memcmp(h, "UNA", 3)) {
        h += 9, n -= 9;
        while (n && edi_is_gap(*h))
            h++, n--;
        return n >= 4 && !memcmp(h, "UNB", 3);
    }
    return n >= 4 && !memcmp(h, "UNB+", 4);
}

/* Batching: an interchange is whole on its own, so a batch is the files one after another. A
 * file that ends in a Ctrl-Z goes alone: a batch would carry the mark, which is never sent. */
int pd_cut_edi(const char *t, size_t n, unsigned header_lines, struct pd_format_parts *p)
{
    (void)header_lines;
    size_t k = n, end = n;
    skip_lead((const unsigned char *)t, &k);
    if (!k)
        return PD_EPARSE;
    while (edi_is_gap((unsigned char)t[end - 1]))
        end--; /* stops at the byte skip_lead stopped at, at the latest */
    if ((unsigned char)t[end - 1] == EDI_EOF_MARK)
        return PD_EPARSE;
    p->open = p->close = "";
    p->open_len = p->close_len = 0;
    p->recs = t, p->recs_len = n;
    p->eol = NULL;
    return 0;
}
