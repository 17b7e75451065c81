/*
 * A streaming CSV reader (RFC 4180) that hands out rows as field values: quoted fields may
 * hold commas, newlines and doubled quotes (""); rows end with LF, CRLF or a lone CR; a UTF-8
 * byte-order mark at the start is dropped. Every row carries the line it starts on, so a
 * person can be told exactly where a bad row is.
 *
 * Why not the splitter's CSV scanner (src/format/split_scan.c)? That one only finds where rows end,
 * so a chunk can be cut between them; it never takes a field apart or unquotes it, and it
 * lets text after a closing quote pass. Lookup rows need the values themselves, checked.
 *
 * Memory: one 64 KiB read buffer and the current row (each field at most max_field bytes).
 * Pure: no logging, no event loop; callers run it on a worker thread for big files.
 */
#ifndef PD_CSV_H
#define PD_CSV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pd_csv;

struct pd_csv_row {
    size_t nfields;      /* 0 for an empty line */
    const char **fields; /* NUL-terminated values, valid until the next pd_csv_next */
    const size_t *lens;
    uint64_t line; /* 1-based line the row starts on */
};

/*
 * Opens a reader over FD (read from its current position, not closed by the reader) or, with
 * fd < 0, over the LEN bytes at BUF (borrowed until destroy). NAME starts every message.
 * MAX_FIELD: the longest field in bytes (0: 64 KiB). Returns 0 or PD_ENOMEM.
 */
int pd_csv_create(int fd, const char *buf, size_t len, const char *name, size_t max_field,
                  struct pd_csv **out);
void pd_csv_destroy(struct pd_csv **r);

/*
 * Reads the next row. Returns 1 with *ROW, 0 at the end, or a negative code with
 * pd_csv_error() saying "NAME: line N: what is wrong; what to do":
 *   PD_EPARSE for a bad row (text after a closing quote; invalid UTF-8): the next call goes on
 *             with the following row, so every bad row can be reported;
 *   anything else (an unterminated quote, a field over max_field, a NUL byte, UTF-16 text,
 *   a read error) ends the file: pd_csv_can_continue() is then false and every call returns
 *   the same code.
 */
int pd_csv_next(struct pd_csv *r, struct pd_csv_row *row);
bool pd_csv_can_continue(const struct pd_csv *r);
const char *pd_csv_error(const struct pd_csv *r);

/* Appends VALUE to OUT as one CSV field, quoted only when needed. Returns 0 or PD_ENOMEM. */
struct pd_csv_buf {
    char *data;
    size_t len, cap;
};
int pd_csv_put_field(struct pd_csv_buf *out, const char *value, bool first);
/* Ends the row with a line feed. Returns 0 or PD_ENOMEM. */
int pd_csv_end_row(struct pd_csv_buf *out);

#endif
