/*
 * Packs several small files of one watch into one request body (config key `batch`), where
 * the format allows it, so that a backlog of small files costs few of the account's requests:
 *   json    top-level arrays: their elements merged into one array, in the order added
 *   ndjson  the files' lines one after another (a missing final newline is added)
 *   lines   the same
 *   csv     the rows of files whose header (the first header_lines rows) is byte for byte the
 *           same, under that header once
 *   xml     the records of files whose opening (declaration, comments, DOCTYPE, root start
 *           tag with its attributes) is byte for byte the same, under that root once (the
 *           closing is the first file's: comments after another file's root are not carried)
 *   x12     whole interchanges one after another (both standards allow several in one
 *   edifact file), each file's envelope and control numbers kept as they are
 * The body is {"payload":"<combined text>"} and never longer than max_body.
 *
 * Each file's text must be a well-formed document of the format (the splitter checked it when
 * it found the file fits one request) in UTF-8; it is copied, so the caller may free it at once.
 * Pure: no I/O, no logging, no event loop; memory is the body (at most max_body) and the
 * batch's repeated opening and closing texts.
 */
#ifndef PD_BATCH_H
#define PD_BATCH_H

#include "pd_format.h"

#include <stddef.h>
#include <stdint.h>

struct pd_batch_opts {
    int format;            /* enum pd_split_format, resolved: one with a cutter (pd_format.h) */
    uint64_t max_body;     /* bytes of the whole encoded body */
    unsigned header_lines; /* csv: rows of the header */
    unsigned max_files;    /* at most this many files in one body (>= 1) */
};

struct pd_batch;

/* Returns 0 and *out, PD_ENOMEM, or PD_ECONFIG for a format that never batches (its registry
 * entry has no cutter). */
int pd_batch_create(const struct pd_batch_opts *opts, struct pd_batch **out);

/* Frees the batch and NULLs *B; NULL is a no-op. */
void pd_batch_destroy(struct pd_batch **b);

/*
 * Adds the text of one file. Returns
 *   0           added
 *   PD_ETOOBIG  it would take the body over max_body, or the batch holds max_files already:
 *               send this batch, then add the file to the next one
 *   PD_ESTATE   the file has another CSV header or XML root than the batch's files: the same
 *   PD_EPARSE   the file can never join a batch (a JSON object rather than an array, an empty
 *               array, a CSV file without rows, an XML root without content, nothing but
 *               blanks, or too big on its own): send it alone
 *   PD_ENOMEM
 * On any error the batch is unchanged.
 */
int pd_batch_add(struct pd_batch *b, const char *text, size_t len);

/* 0 when TEXT may join a batch of OPTS's format, or what pd_batch_add() would say of it
 * whatever the batch: PD_EPARSE (it can never join: see above), PD_ECONFIG (a format that never
 * batches). Reads TEXT only. */
int pd_batch_check(const struct pd_batch_opts *opts, const char *text, size_t len);

/* Files in the batch now. */
size_t pd_batch_count(const struct pd_batch *b);

/* The body's length if the batch were taken now (0 when empty). */
size_t pd_batch_body_len(const struct pd_batch *b);

/*
 * Hands over the body {"payload":"..."} (free() it) and empties the batch, which can then take
 * files of another header or root. Returns NULL when empty (or out of memory: *LEN is then 0
 * and the batch is unchanged).
 */
char *pd_batch_take_body(struct pd_batch *b, size_t *len);

/* The built-in formats' cutters (pd_format_cut_fn), which the format registry names. */
int pd_cut_json(const char *t, size_t n, unsigned header_lines, struct pd_format_parts *p);
int pd_cut_lines(const char *t, size_t n, unsigned header_lines, struct pd_format_parts *p);
int pd_cut_csv(const char *t, size_t n, unsigned header_lines, struct pd_format_parts *p);
int pd_cut_xml(const char *t, size_t n, unsigned header_lines, struct pd_format_parts *p);
/* x12 and edifact (src/format/split_edi.c): a batch is the interchanges one after another. */
int pd_cut_edi(const char *t, size_t n, unsigned header_lines, struct pd_format_parts *p);

#endif
