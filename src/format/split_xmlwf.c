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
 */
#include "split_internal.h"

#include "pd_error.h"

#include <expat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct xmlwf {
    XML_Parser p;
    uint64_t base; /* decoded offset of the first byte fed */
    uint64_t fed;  /* bytes fed so far */
    int started;
    int subset;        /* the DOCTYPE has an internal subset: refused */
    uint64_t subset_at; /* where that DOCTYPE begins (bytes fed before it) */
};

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

int xmlwf_start(struct xmlwf **wp)
{
    struct xmlwf *w = *wp;
    if (w) {
        if (!XML_ParserReset(w->p, "UTF-8"))
            return PD_ENOMEM;
        return setup(w);
    }
    if (!(w = calloc(1, sizeof(*w))))
        return PD_ENOMEM;
    if (!(w->p = XML_ParserCreate("UTF-8"))) {
        free(w);
        return PD_ENOMEM;
    }
    *wp = w;
    return setup(w);
}

void xmlwf_free(struct xmlwf **wp)
{
    if (!*wp)
        return;
    XML_ParserFree((*wp)->p);
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
        if (XML_Parse(w->p, (const char *)b, (int)part, final && part == n) != XML_STATUS_OK)
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
    snprintf(e->msg, sizeof(e->msg), "not well-formed XML (expat: %s)",
             XML_ErrorString(XML_GetErrorCode(w->p)));
    snprintf(e->fix, sizeof(e->fix),
             "nothing of it was sent: correct the file where it is made and drop it again");
    return 1;
}
