/*
 * The format registry (the contract is in include/pd_format.h): one line per format. The
 * scanners live in src/split_*.c, the batch cutters in src/format/batch.c (or in the format's own
 * file); this table is the only place that ties a format's name to them.
 */
#include "pd_format.h"

#include "pd_batch.h" /* the cutters */
#include "pd_error.h"
#include "split_internal.h" /* the scanners */

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const json_ext[] = {".json", NULL};
static const char *const ndjson_ext[] = {".ndjson", ".jsonl", NULL};
static const char *const xml_ext[] = {".xml", NULL};
static const char *const csv_ext[] = {".csv", ".tsv", NULL};
/* .edi is either standard: the content decides (pd_format_of_text). */
static const char *const x12_ext[] = {".x12", ".edi", NULL};
static const char *const edifact_ext[] = {".edifact", NULL};

/* Auto-detection tries the extensions in table order; a file no entry claims is lines. */
static const struct pd_format formats[PD_SPLIT_NFORMATS] = {
    [PD_SPLIT_AUTO] = {"auto", NULL, NULL, NULL, "", NULL},
    [PD_SPLIT_JSON] = {"json", json_ext, &pd_scan_json, pd_cut_json, ",", NULL},
    [PD_SPLIT_NDJSON] = {"ndjson", ndjson_ext, &pd_scan_ndjson, pd_cut_lines, "", NULL},
    [PD_SPLIT_XML] = {"xml", xml_ext, &pd_scan_xml, pd_cut_xml, "", NULL},
    [PD_SPLIT_CSV] = {"csv", csv_ext, &pd_scan_csv, pd_cut_csv, "", NULL},
    [PD_SPLIT_LINES] = {"lines", NULL, &pd_scan_lines, pd_cut_lines, "", NULL},
    [PD_SPLIT_NONE] = {"none", NULL, NULL, NULL, "", NULL},
    [PD_SPLIT_X12] = {"x12", x12_ext, &pd_scan_x12, pd_cut_edi, "", pd_sniff_x12},
    [PD_SPLIT_EDIFACT] = {"edifact", edifact_ext, &pd_scan_edifact, pd_cut_edi, "",
                          pd_sniff_edifact},
};

const struct pd_format *pd_format_get(int id)
{
    return id >= 0 && id < PD_SPLIT_NFORMATS && formats[id].name ? &formats[id] : NULL;
}

const char *pd_format_name(int id)
{
    const struct pd_format *f = pd_format_get(id);
    return f ? f->name : "?";
}

int pd_format_parse(const char *name, int *id)
{
    for (int i = 0; i < PD_SPLIT_NFORMATS; i++) {
        if (formats[i].name && !strcasecmp(name, formats[i].name)) {
            *id = i;
            return 0;
        }
    }
    return PD_ECONFIG;
}

static int ends_with(const char *s, const char *ext)
{
    size_t a = strlen(s), b = strlen(ext);
    return a >= b && !strcasecmp(s + a - b, ext);
}

int pd_format_of_name(const char *name)
{
    for (int i = 0; i < PD_SPLIT_NFORMATS; i++)
        for (const char *const *e = formats[i].extensions; e && *e; e++)
            if (ends_with(name, *e))
                return i;
    return PD_SPLIT_LINES;
}

int pd_format_of_text(const char *name, const unsigned char *head, size_t n)
{
    int id = pd_format_of_name(name);
    int (*own)(const unsigned char *, size_t) = formats[id].sniff;
    if ((id != PD_SPLIT_LINES && !own) || (own && own(head, n)))
        return id;
    for (int i = 0; i < PD_SPLIT_NFORMATS; i++)
        if (formats[i].sniff && formats[i].sniff(head, n))
            return i;
    return id;
}

void pd_format_join_names(const char *sep, char *buf, size_t len)
{
    size_t used = 0;
    if (!len)
        return;
    buf[0] = '\0';
    for (int i = 0; i < PD_SPLIT_NFORMATS && used < len; i++)
        if (formats[i].name)
            used +=
                (size_t)snprintf(buf + used, len - used, "%s%s", used ? sep : "", formats[i].name);
}

const char *pd_split_format_name(int format)
{
    return pd_format_name(format);
}

int pd_split_format_parse(const char *s, int *format)
{
    return pd_format_parse(s, format);
}
