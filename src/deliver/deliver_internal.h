/* Private parts of the delivery engine: deliver.c calls deliver_x.c for compressed files. */
#ifndef PD_DELIVER_INTERNAL_H
#define PD_DELIVER_INTERNAL_H

#include "pd_deliver.h"

/* Opens a compressed file's first (or resumed) entry: 1 done, 0 the file is not compressed
 * (split it as it is), or a negative code with dl->why. */
int dlx_open(struct pd_delivery *dl, const struct pd_delivery_opts *o,
             const struct pd_split_opts *so);
/* Expands the entry the delivery starts (or resumes) in, at the first pd_delivery_next(). */
int dlx_first_entry(struct pd_delivery *dl);
/* Expands entry K and opens its splitter at OFFSET, numbering on from INDEX. */
int dlx_open_entry(struct pd_delivery *dl, unsigned k, uint64_t offset, unsigned index);
/* Before a 413 re-cut: back to the entry the refused chunk is of. */
int dlx_recut_entry(struct pd_delivery *dl, const struct pd_chunk *refused);
void dlx_close(struct pd_delivery *dl);
/* dl->why about the entry being split: said to be about it (its bytes, not the file's). */
void dlx_name_why(struct pd_delivery *dl);

#endif
