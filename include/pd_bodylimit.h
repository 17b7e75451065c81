/*
 * What request body the server really accepts, learned from its answers (issue: a server whose
 * limit is below max_body). Patchworks documents 8 MB; a proxy in front of it may allow less.
 * The largest body answered 2xx and the smallest answered 413 bound the real limit; a 413 is
 * answered by cutting between the two (bisection), never below what the file's largest record
 * needs while that may still fit, and a file is refused only when its largest record is at least
 * the smallest body refused. Shared by every file of the account (and `send`), kept in the state
 * dir across restarts. Thread-safe: thread-pool steps read it while the loop records answers.
 */
#ifndef PD_BODYLIMIT_H
#define PD_BODYLIMIT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct pd_bodylimit {
    pthread_mutex_t lock;
    uint64_t configured;  /* max_body */
    uint64_t ok_max;      /* largest body answered 2xx; 0: none yet */
    uint64_t refused_min; /* smallest body answered 413; UINT64_MAX: none */
    char *path;           /* where it is kept; NULL: not kept */
};

/* Starts from max_body and what STATE_DIR remembers (NULL: nothing kept). */
int pd_bodylimit_init(struct pd_bodylimit *l, uint64_t max_body, const char *state_dir);
void pd_bodylimit_cleanup(struct pd_bodylimit *l);

void pd_bodylimit_accepted(struct pd_bodylimit *l, uint64_t body_len);
void pd_bodylimit_refused(struct pd_bodylimit *l, uint64_t body_len);

/* The budget a new file is cut to: max_body, or less once a 413 taught a lower limit. */
uint64_t pd_bodylimit_budget(struct pd_bodylimit *l);

/*
 * The one 413 rule, pure: after a body of REFUSED_LEN bytes was refused, with the bounds OK_MAX
 * and REFUSED_MIN (already holding this refusal) and a file whose largest record needs NEED
 * bytes, *BUDGET is the next cut: between the bounds, at least NEED, below REFUSED_LEN. Returns
 * 0, or -1 when the record cannot fit (NEED >= REFUSED_MIN): the file must be refused.
 */
int pd_bodylimit_recut(uint64_t ok_max, uint64_t refused_min, uint64_t refused_len, uint64_t need,
                       uint64_t *budget);

/*
 * Whether a file whose largest record needs NEED bytes can go at all, by what was learned:
 * 0, or -1 with *REFUSED set to the smallest body the server refused.
 */
int pd_bodylimit_fits(struct pd_bodylimit *l, uint64_t need, uint64_t *refused);

/* The bounds now, for messages. */
void pd_bodylimit_bounds(struct pd_bodylimit *l, uint64_t *ok_max, uint64_t *refused_min);

#endif
