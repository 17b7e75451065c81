/*
 * Growable byte buffers (see pd_mem.h).
 */
#include "pd_mem.h"

#include "pd_error.h"

#include <stdlib.h>

int pd_reserve(char **buf, size_t *cap, size_t need, size_t first, uint64_t max)
{
    if (need <= *cap)
        return 0;
    size_t grow = *cap ? *cap : first;
    while (grow < need)
        grow *= 2;
    if (grow > max && need <= max)
        grow = (size_t)max;
    return pd_resize(buf, cap, grow);
}

int pd_resize(char **buf, size_t *cap, size_t size)
{
    char *p = realloc(*buf, size);
    if (!p)
        return PD_ENOMEM;
    *buf = p;
    *cap = size;
    return 0;
}
