/* Private parts of the expansion (pd_expand.h) shared by expand.c and expand_zip.c. */
#ifndef PD_EXPAND_INTERNAL_H
#define PD_EXPAND_INTERNAL_H

#include "pd_expand.h"

#include <stddef.h>
#include <stdint.h>

#define XBUF (64u << 10)

/* Where the expanded bytes go, held against the limits as they come. */
struct xsink {
    struct pd_expand *x;
    int fd; /* -1: a check pass, the bytes counted and not written */
    const struct pd_expand_limits *lim;
    const char *entry; /* its name, for messages */
    uint64_t written;
    uint64_t space_at; /* the free space is looked at again once written reaches this */
};

/* Writes N bytes, or refuses them when they would pass a limit: 0 or a negative code. */
int xsink_write(struct xsink *s, const void *buf, size_t n);

/* Sets x->why (and the byte it is about, or -1); returns RC. */
int xfail(struct pd_expand *x, int rc, int64_t offset, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* NAME escaped for a message (control characters and bad UTF-8 made visible) into BUF. */
const char *xname(const char *name, char *buf, size_t len);

/* expand_zip.c */
int xzip_list(struct pd_expand *x);
int xzip_entry(struct pd_expand *x, size_t i, struct xsink *s);
int xzip_check(struct pd_expand *x, size_t from, struct xsink *s);

#endif
