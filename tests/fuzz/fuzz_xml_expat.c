/*
 * Differential libFuzzer target: the splitter's verdict on an XML file against expat's on the
 * whole document, and every chunk the splitter cuts parsed by expat on its own. The first
 * input byte picks the budget, the second whether records are named and whether the file is
 * read as UTF-8 or as ISO-8859-1 (which expat reads too); the rest is the file. Chunks are
 * parsed with the charset their declaration names, so a declaration left unrewritten fails.
 *
 * Must hold: a file expat refuses is never sent (not whole, not in chunks); a file expat
 * accepts goes whole when it fits, unless its text is not strict UTF-8 or its DOCTYPE has an
 * internal subset (patchdrop's own refusals, checked here by their words); each chunk parses.
 */
#include "pd_config.h"
#include "pd_error.h"
#include "pd_split.h"

#include <cJSON.h>
#include <expat.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int subset;

static void XMLCALL on_doctype(void *ud, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
    (void)name, (void)sysid, (void)pubid;
    if (has_internal_subset) {
        subset = 1;
        XML_StopParser((XML_Parser)ud, XML_FALSE);
    }
}

/* Expat's verdict on S read in ENC (NULL: as its declaration says), stopping at an internal
 * subset (never expanded here either). */
static int expat_ok(const char *s, size_t n, const char *enc)
{
    XML_Parser p = XML_ParserCreate(enc);
    if (!p)
        abort();
    subset = 0;
    XML_SetUserData(p, p);
    XML_SetStartDoctypeDeclHandler(p, on_doctype);
    int ok = XML_Parse(p, s, (int)n, 1) == XML_STATUS_OK;
    XML_ParserFree(p);
    return ok;
}

/* Runs the splitter over the file; 0 with every chunk well formed, or its error code. */
static int split(const uint8_t *d, size_t n, uint64_t max_body, const char *rec,
                 const char *enc, size_t *chunks, char *why, size_t whysz)
{
    struct pd_split_opts o = {.format = PD_SPLIT_XML, .max_body = max_body, .xml_record = rec,
                              .encoding = enc, .name = "f.xml", .mem = d, .mem_len = n};
    struct pd_splitter *sp = NULL;
    struct pd_chunk c;
    int rc = pd_split_create(-1, NULL, &o, &sp);
    *chunks = 0;
    while (rc == 0 && (rc = pd_split_next(sp, &c)) == 1) {
        cJSON *j = cJSON_ParseWithLength(c.body, c.body_len);
        cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "payload");
        if (!cJSON_IsString(p))
            abort();
        if (!expat_ok(p->valuestring, strlen(p->valuestring), NULL)) {
            fprintf(stderr, "chunk %u does not parse:\n%s\n", c.index, p->valuestring);
            abort();
        }
        cJSON_Delete(j);
        (*chunks)++;
        rc = 0;
    }
    snprintf(why, whysz, "%s", pd_split_error(sp));
    pd_split_destroy(&sp);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    const uint8_t *f = data + 2;
    size_t n = size - 2;
    const char *rec = data[1] & 1 ? "r" : NULL;
    const char *enc = data[1] & 2 ? "ISO-8859-1" : "UTF-8";
    char why[1024];
    size_t chunks;
    int good = expat_ok((const char *)f, n, enc) && !subset;
    int had_subset = subset;

    /* With room for the whole file: the verdicts agree. */
    int rc = split(f, n, 1u << 24, rec, enc, &chunks, why, sizeof(why));
    if (!good && rc == 0) {
        fprintf(stderr, "expat refuses, patchdrop sent it\n");
        abort();
    }
    if (good && rc != 0 && rc != PD_EENCODING && rc != PD_EEMPTY) {
        fprintf(stderr, "expat accepts, patchdrop refused: %s\n", why);
        abort();
    }
    if (had_subset && rc != 0 && !strstr(why, "internal subset") && !strstr(why, "expat:") &&
        rc != PD_EENCODING) {
        fprintf(stderr, "an internal subset refused for another reason: %s\n", why);
        abort();
    }
    /* Cut small: each chunk parses (checked in split()), and nothing goes that expat refuses. */
    rc = split(f, n, 40 + (uint64_t)data[0] * 4, rec, enc, &chunks, why, sizeof(why));
    if (!good && chunks > 0)
        abort();
    return 0;
}
