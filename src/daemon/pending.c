/*
 * The daemon's books of what it has seen in a drop folder (loop thread): the candidate table
 * (names waiting to be ready, found by name), the ready heap (ready candidates, oldest first,
 * waiting for a claim) and the names delivered lately, to notice one coming back.
 */
#include "daemon_internal.h"

#include "pd_error.h"
#include "pd_log.h"
#include "pd_metrics.h"

#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- names delivered lately ------------------------------------------------------------------ */

void recent_add(struct dwatch *w, const char *name)
{
    struct recent *r = &w->recent[w->recent_next++ % RECENT_NAMES];
    free(r->name);
    r->name = name ? strdup(name) : NULL;
    r->at_ms = dw_now_ms(w->d);
}

/*
 * A name delivered moments ago shows up again: most likely a writer that was still appending
 * when the file was taken (settle cannot tell a pause from the end), and what it wrote after
 * that arrives as a file of its own. Said once, so a person can check the two flow runs.
 */
void recent_check(struct dwatch *w, const char *name)
{
    uint64_t now = dw_now_ms(w->d), window = w->cfg->settle_ms * 2 + 5000;
    char qb[PATH_MAX + 16];
    for (unsigned i = 0; i < RECENT_NAMES; i++) {
        struct recent *r = &w->recent[i];
        if (!r->name || strcmp(r->name, name) || now - r->at_ms > window)
            continue;
        pd_log(PD_LOG_WARN,
               "event=reappeared watch=%s file=%s delivered_ms_ago=%" PRIu64
               " reason=\"a file of this name was delivered just before; if its writer was "
               "still appending, what it wrote after the delivery is this new file\" "
               "action=\"it is delivered as a file of its own; check both flow runs, and have "
               "the writer upload to a temp name and rename, or use done_marker\"",
               w->cfg->name, dw_q(name, qb, sizeof(qb)), now - r->at_ms);
        free(r->name);
        r->name = NULL;
        return;
    }
}

/* ---- candidate table and ready heap ----------------------------------------------------- */

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

struct cand *cand_find(struct dwatch *w, const char *name)
{
    if (!w->nbuckets)
        return NULL;
    for (struct cand *c = w->buckets[hash_name(name) % w->nbuckets]; c; c = c->next)
        if (!strcmp(c->name, name))
            return c;
    return NULL;
}

static int cand_grow(struct dwatch *w)
{
    size_t n = w->nbuckets ? w->nbuckets * 2 : 1024;
    struct cand **b = calloc(n, sizeof(*b));
    if (!b)
        return PD_ENOMEM;
    for (size_t i = 0; i < w->nbuckets; i++) {
        for (struct cand *c = w->buckets[i], *next; c; c = next) {
            next = c->next;
            size_t k = hash_name(c->name) % n;
            c->next = b[k];
            b[k] = c;
        }
    }
    free(w->buckets);
    w->buckets = b;
    w->nbuckets = n;
    return 0;
}

struct cand *cand_add(struct dwatch *w, const char *name)
{
    struct cand *c;
    if (w->ncands >= w->nbuckets && cand_grow(w))
        return NULL;
    c = calloc(1, sizeof(*c));
    if (!c || !(c->name = strdup(name))) {
        free(c);
        return NULL;
    }
    size_t k = hash_name(name) % w->nbuckets;
    c->next = w->buckets[k];
    w->buckets[k] = c;
    w->ncands++;
    pd_metrics_file_event(w->d->opts.metrics, w->cfg->name, PD_METRICS_DISCOVERED, 0);
    return c;
}

void cand_remove(struct dwatch *w, struct cand *c)
{
    struct cand **pp = &w->buckets[hash_name(c->name) % w->nbuckets];
    while (*pp != c)
        pp = &(*pp)->next;
    *pp = c->next;
    w->ncands--;
    free(c->name);
    free(c);
}

void cand_due(struct dwatch *w, struct cand *c, uint64_t at)
{
    c->due_ms = at;
    if (at < w->next_due)
        w->next_due = at;
    if (at != NEVER)
        dw_wake(w->d, at);
}

/* Oldest first: mtime, then name. */
static bool older(const struct cand *a, const struct cand *b)
{
    if (a->obs.mtime_ns != b->obs.mtime_ns)
        return a->obs.mtime_ns < b->obs.mtime_ns;
    return strcmp(a->name, b->name) < 0;
}

int dw_heap_push(struct dwatch *w, struct cand *c)
{
    if (w->nheap == w->capheap) {
        size_t cap = w->capheap ? w->capheap * 2 : 64;
        struct cand **grown = realloc(w->heap, cap * sizeof(*grown));
        if (!grown)
            return PD_ENOMEM;
        w->heap = grown;
        w->capheap = cap;
    }
    size_t i = w->nheap++;
    while (i > 0 && older(c, w->heap[(i - 1) / 2])) {
        w->heap[i] = w->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    w->heap[i] = c;
    c->queued = true;
    return 0;
}

struct cand *dw_heap_pop(struct dwatch *w)
{
    struct cand *top, *last;
    size_t i = 0;

    if (!w->nheap)
        return NULL;
    top = w->heap[0];
    last = w->heap[--w->nheap];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct cand *mc = last;
        if (l < w->nheap && older(w->heap[l], mc)) {
            m = l;
            mc = w->heap[l];
        }
        if (r < w->nheap && older(w->heap[r], mc))
            m = r;
        if (m == i)
            break;
        w->heap[i] = w->heap[m];
        i = m;
    }
    if (w->nheap)
        w->heap[i] = last;
    top->queued = false;
    return top;
}
