/*
 * Well-formedness of an XML file by expat, run by the splitter's first pass over the same
 * decoded UTF-8 windows the record scanner reads. The scanner finds where records begin and
 * end; expat decides whether the document is XML at all (references, characters, comments,
 * declarations, duplicate attributes: everything XML 1.0 requires of a well-formed document).
 *
 * Nothing is ever expanded or fetched: a DOCTYPE with an internal subset is refused before
 * its declarations are read (so no entity is ever defined, and only the five predefined ones
 * and character references exist), parameter entities are never parsed and no external
 * entity handler is set. What is sent is always the file's own text, never expat's output.
 *
 * Expat's memory is capped (a file of millions of distinct element names would otherwise
 * grow its name tables without bound): its allocations go through counting functions.
 */
#include "split_internal.h"

#include "pd_error.h"

#include <expat.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct xmlwf {
    XML_Parser p;
    uint64_t mem, mem_cap; /* bytes expat holds, and the most it may */
    int over_cap;          /* an allocation was refused for the cap */
    uint64_t base; /* decoded offset of the first byte fed */
    uint64_t fed;  /* bytes fed so far */
    int started;
    int subset;        /* the DOCTYPE has an internal subset: refused */
    uint64_t subset_at; /* where its '[' is (bytes fed before it) */
};

/* Expat's allocations, each with a header naming the parser it counts against: the parser
 * calls them from its own functions, which run with CUR set to it (one per thread). */
static _Thread_local struct xmlwf *cur;

struct mem_head {
    struct xmlwf *owner;
    size_t size;
    max_align_t align[];
};

static void *wf_malloc(size_t n)
{
    struct xmlwf *w = cur;
    if (w && w->mem + n > w->mem_cap) {
        w->over_cap = 1;
        return NULL;
    }
    struct mem_head *h = malloc(sizeof(*h) + n);
    if (!h)
        return NULL;
    h->owner = w;
    h->size = n;
    if (w)
        w->mem += n;
    return h + 1;
}

static void wf_free(void *p)
{
    if (!p)
        return;
    struct mem_head *h = (struct mem_head *)p - 1;
    if (h->owner)
        h->owner->mem -= h->size;
    free(h);
}

static void *wf_realloc(void *p, size_t n)
{
    if (!p)
        return wf_malloc(n);
    struct mem_head *h = (struct mem_head *)p - 1;
    struct xmlwf *w = h->owner;
    if (w && n > h->size && w->mem + (n - h->size) > w->mem_cap) {
        w->over_cap = 1;
        return NULL;
    }
    size_t old = h->size;
    struct mem_head *g = realloc(h, sizeof(*g) + n);
    if (!g)
        return NULL;
    g->size = n;
    if (w)
        w->mem = w->mem - old + n;
    return g + 1;
}

static const XML_Memory_Handling_Suite wf_mem = {wf_malloc, wf_realloc, wf_free};

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    struct xmlwf *w = ud;
    (void)name, (void)sysid, (void)pubid;
    if (!has_internal_subset)
        return;
    /* Stopped before the subset's first declaration is read: nothing gets defined. */
    w->subset = 1;
    w->subset_at = (uint64_t)XML_GetCurrentByteIndex(w->p);
    XML_StopParser(w->p, XML_FALSE);
}

/* The text is UTF-8 whatever the file's declaration says (the decoder transcoded it): the
 * encoding given here overrides the declaration's. */
static int setup(struct xmlwf *w)
{
    XML_SetUserData(w->p, w);
    XML_SetStartDoctypeDeclHandler(w->p, on_doctype);
    if (!XML_SetParamEntityParsing(w->p, XML_PARAM_ENTITY_PARSING_NEVER))
        return PD_ENOMEM;
    w->base = 0;
    w->fed = 0;
    w->started = 0;
    w->subset = 0;
    w->subset_at = 0;
    return 0;
}

int xmlwf_start(struct xmlwf **wp, uint64_t mem_cap)
{
    struct xmlwf *w = *wp;
    int ok;
    if (!w) {
        if (!(w = calloc(1, sizeof(*w))))
            return PD_ENOMEM;
        w->mem_cap = UINT64_MAX; /* the parser itself is always made */
        cur = w;
        w->p = XML_ParserCreate_MM("UTF-8", &wf_mem, NULL);
        cur = NULL;
        if (!w->p) {
            free(w);
            return PD_ENOMEM;
        }
        *wp = w;
    } else {
        cur = w;
        ok = XML_ParserReset(w->p, "UTF-8");
        cur = NULL;
        if (!ok)
            return PD_ENOMEM;
    }
    w->mem_cap = mem_cap;
    w->over_cap = 0;
    return setup(w);
}

void xmlwf_free(struct xmlwf **wp)
{
    if (!*wp)
        return;
    cur = *wp;
    XML_ParserFree((*wp)->p);
    cur = NULL;
    free(*wp);
    *wp = NULL;
}

/* Expat keeps an unfinished token (a tag, comment, PI or declaration) whole in memory: one
 * longer than MAX could never be sent in any request anyway, so it is refused before it grows. */
static int too_long(struct xmlwf *w, uint64_t max, struct xmlwf_err *e)
{
    XML_Index at = XML_GetCurrentByteIndex(w->p);
    uint64_t from = at > 0 ? (uint64_t)at : 0;
    if (w->fed - from <= max)
        return 0;
    memset(e, 0, sizeof(*e));
    e->code = PD_ETOOBIG;
    e->dec = w->base + from;
    e->line = (uint64_t)XML_GetCurrentLineNumber(w->p);
    e->column = (uint64_t)XML_GetCurrentColumnNumber(w->p) + 1;
    snprintf(e->msg, sizeof(e->msg),
             "a single tag, comment, processing instruction or declaration longer than "
             "max_body %llu bytes", (unsigned long long)max);
    snprintf(e->fix, sizeof(e->fix),
             "no request could hold it; raise max_body or shorten it where the file is made");
    return 1;
}

int xmlwf_feed(struct xmlwf *w, const unsigned char *b, size_t n, uint64_t dec, int final,
               uint64_t max_token, struct xmlwf_err *e)
{
    if (!w->started)
        w->base = dec, w->started = 1;
    for (;;) {
        /* XML_Parse takes an int length. */
        size_t part = n > (1u << 30) ? (1u << 30) : n;
        cur = w;
        enum XML_Status st = XML_Parse(w->p, (const char *)b, (int)part, final && part == n);
        cur = NULL;
        if (st != XML_STATUS_OK)
            break;
        b += part, n -= part;
        w->fed += part;
        if (too_long(w, max_token, e))
            return 1;
        if (n == 0)
            return 0;
    }
    memset(e, 0, sizeof(*e));
    e->code = PD_EPARSE;
    e->line = (uint64_t)XML_GetCurrentLineNumber(w->p);
    e->column = (uint64_t)XML_GetCurrentColumnNumber(w->p) + 1;
    if (w->subset) {
        e->dec = w->base + w->subset_at;
        snprintf(e->msg, sizeof(e->msg), "a DOCTYPE with an internal subset ([...] declarations)");
        snprintf(e->fix, sizeof(e->fix),
                 "patchdrop refuses it: its entities would have to be expanded to check the "
                 "file, and could expand without bound where it is read; remove the internal "
                 "subset (write the entities' text instead), or set split = none for this watch "
                 "to send such files unchecked");
        return 1;
    }
    XML_Index at = XML_GetCurrentByteIndex(w->p);
    e->dec = w->base + (at > 0 ? (uint64_t)at : 0);
    if (w->over_cap && XML_GetErrorCode(w->p) == XML_ERROR_NO_MEMORY) {
        e->code = PD_ETOOBIG;
        snprintf(e->msg, sizeof(e->msg),
                 "checking this XML needs more than %llu MiB (millions of distinct element or "
                 "attribute names, or nesting that deep)",
                 (unsigned long long)(w->mem_cap >> 20));
        snprintf(e->fix, sizeof(e->fix),
                 "patchdrop stops there; raise max_body (the limit grows with it) or send "
                 "such files with split = none");
        return 1;
    }
    snprintf(e->msg, sizeof(e->msg), "not well-formed XML (expat: %s)",
             XML_ErrorString(XML_GetErrorCode(w->p)));
    snprintf(e->fix, sizeof(e->fix),
             "nothing of it was sent: correct the file where it is made and drop it again");
    return 1;
}
