/*
 * The format registry: the one table that says, for every split format, how config and logs
 * spell it, which file extensions choose it when split = auto, which record scanner the
 * splitter runs over it (src/format/split_scan.c drives it), and how batching cuts a small file of
 * it into its opening, records and closing (src/format/batch.c). It owns the format enum. Adding a
 * format is one new file (its scanner and cutter) plus one constant and one line here and in
 * src/format/format.c; docs/architecture.md ("How to add a format") walks through it.
 * Pure data and lookups: no I/O, no logging.
 */
#ifndef PD_FORMAT_H
#define PD_FORMAT_H

#include <stddef.h>

/*
 * The formats. The values are stored (watch configs, job records), so a new format is added
 * just before PD_SPLIT_NFORMATS and existing values never change.
 */
enum pd_split_format {
    PD_SPLIT_AUTO, /* chosen from the file name (extensions below), then confirmed */
    PD_SPLIT_JSON,
    PD_SPLIT_NDJSON,
    PD_SPLIT_XML,
    PD_SPLIT_CSV,
    PD_SPLIT_LINES,
    PD_SPLIT_NONE, /* never split: the file goes whole */
    PD_SPLIT_X12,
    PD_SPLIT_EDIFACT,
    PD_SPLIT_NFORMATS
};

/*
 * A small file's three texts for batching, as pointers into its text: the opening every file
 * of a batch must share and the body carries once (JSON "[", CSV header rows, XML prolog and
 * root start tag), the records the body carries for every file, and the closing ("]", the
 * root end tag). EOL: the line ending to add after records that lack one, or NULL.
 */
struct pd_format_parts {
    const char *open, *recs, *close;
    size_t open_len, recs_len, close_len;
    const char *eol;
};

/* Cuts a well-formed UTF-8 text (no byte-order mark) into its parts. Returns 0 or PD_EPARSE
 * (the file cannot join a batch: send it alone). HEADER_LINES is the watch's header_lines. */
typedef int (*pd_format_cut_fn)(const char *text, size_t len, unsigned header_lines,
                                struct pd_format_parts *p);

struct pd_scan_ops; /* the splitter's record scanner (src/format/split_internal.h) */

struct pd_format {
    const char *name;               /* as config, logs and messages spell it */
    const char *const *extensions;  /* ".json", ...: chosen by split = auto; NULL-terminated */
    const struct pd_scan_ops *scan; /* record scanner; NULL: never scanned (auto, none) */
    pd_format_cut_fn cut;           /* batch cutter; NULL: never batches */
    const char *batch_sep;          /* text between two files' records in a batch ("," json) */
    /* 1 when a file's first bytes (HEAD, N) are of this format; NULL: never chosen by content.
     * EDI files often have names that say nothing (.edi, .txt, none). */
    int (*sniff)(const unsigned char *head, size_t n);
};

/* The entry of format ID, or NULL when ID is no format. */
const struct pd_format *pd_format_get(int id);

/* The name of format ID ("?" when ID is no format). */
const char *pd_format_name(int id);

/* Parses NAME (any case) into *ID. Returns 0 or PD_ECONFIG. */
int pd_format_parse(const char *name, int *id);

/* The format the extension of file name NAME chooses (any case); PD_SPLIT_LINES for others. */
int pd_format_of_name(const char *name);

/*
 * The format for split = auto from the file's name and its first bytes (HEAD, N; a UTF-8
 * byte-order mark and blanks are skipped): the name's format, except that a file whose name
 * chooses lines (no extension claims it) or a format whose content check fails goes to the
 * first format whose content check accepts it (a .edi file starting with UNB is edifact).
 */
int pd_format_of_text(const char *name, const unsigned char *head, size_t n);

/* Writes the names, separated by SEP, into BUF (always terminated). */
void pd_format_join_names(const char *sep, char *buf, size_t len);

/* The old names of pd_format_name and pd_format_parse, kept for their callers. */
const char *pd_split_format_name(int format);
int pd_split_format_parse(const char *s, int *format);

#endif
