/*
 * What the EDI splitter tests share (tests/test_split_edi.c): a growing text, and a small reader
 * of X12 and EDIFACT interchanges written for the tests, independent of the scanner it checks:
 * it takes the delimiters from the ISA at its fixed width and from the UNA's six characters,
 * checks every count and control number pair itself, and lists the sets and messages it read.
 */
#ifndef PD_TEST_EDI_READER_H
#define PD_TEST_EDI_READER_H

#include <stddef.h>

/* A growing text (the files here are small: one realloc per piece is fine). */
struct sb {
    char *p;
    size_t len;
};

void sb_add(struct sb *s, const void *d, size_t n);
void sb_fmt(struct sb *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What a reader found: the sets or messages as "interchange/group/set" control numbers (X12
 * TA1s as "interchange/TA1/TA101"), one line each, or the first fault. */
struct seen {
    struct sb ids;
    char err[200];
    unsigned interchanges;
};

/* Reads P (N bytes) as X12 or EDIFACT interchanges into S. Returns 0, or -1 with S->err. */
int read_x12(const char *p, size_t n, struct seen *s);
int read_edifact(const char *p, size_t n, struct seen *s);
/* By format (enum pd_split_format). */
int read_any(int fmt, const char *p, size_t n, struct seen *s);

#endif
