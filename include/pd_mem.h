/*
 * Growable byte buffers: the one place that decides how a buffer grows, so that every body,
 * row and answer buffer grows the same way.
 */
#ifndef PD_MEM_H
#define PD_MEM_H

#include <stddef.h>
#include <stdint.h>

/*
 * Makes *BUF (of *CAP bytes) hold at least NEED bytes: the capacity doubles, starting from FIRST
 * for an empty buffer, but stops at MAX when NEED fits under it (UINT64_MAX: no limit).
 * Returns 0, or PD_ENOMEM with *BUF and *CAP untouched.
 */
int pd_reserve(char **buf, size_t *cap, size_t need, size_t first, uint64_t max);

/* Reallocates *BUF to exactly SIZE bytes and sets *CAP. Returns 0, or PD_ENOMEM with both
 * untouched. */
int pd_resize(char **buf, size_t *cap, size_t size);

#endif
