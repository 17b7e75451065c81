/*
 * What patchdrop-mock remembers: bearer tokens with their expiry, the flow runs it created and
 * the cross-reference lookups with their rows. Plain data; the caller (the server) holds the
 * mock's lock around every call.
 *
 * Live tokens are capped: a client that logs in per request (which Patchworks asks clients not
 * to do) makes the oldest tokens disappear instead of growing memory without end.
 */
#include "mock.h"

#include "pd_error.h"

#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#define MAX_TOKENS 4096
#define TOKEN_BYTES 24

struct token {
    char value[2 * TOKEN_BYTES + 1];
    uint64_t expires_ms;
};

struct mock_store {
    struct token *tokens;
    size_t ntokens;

    struct mock_run *runs;
    size_t nruns, capruns;

    struct mock_lookup **lookups;
    size_t nlookups, caplookups;
    uint64_t next_lookup_id;
    uint64_t next_row_id;
};

int mock_store_create(struct mock_store **out)
{
    struct mock_store *st = calloc(1, sizeof(*st));
    if (!st)
        return PD_ENOMEM;
    st->tokens = calloc(MAX_TOKENS, sizeof(*st->tokens));
    if (!st->tokens) {
        free(st);
        return PD_ENOMEM;
    }
    st->next_lookup_id = 1;
    st->next_row_id = 1;
    *out = st;
    return 0;
}

static void lookup_free(struct mock_lookup *lk)
{
    if (!lk)
        return;
    for (size_t i = 0; i < lk->nrows; i++) {
        free(lk->rows[i].left);
        free(lk->rows[i].right);
    }
    free(lk->rows);
    free(lk->name);
    free(lk->description);
    free(lk->default_value);
    free(lk);
}

void mock_store_destroy(struct mock_store **store)
{
    if (!store || !*store)
        return;
    struct mock_store *st = *store;
    for (size_t i = 0; i < st->nruns; i++) {
        free(st->runs[i].flow_id);
        free(st->runs[i].version_id);
    }
    free(st->runs);
    for (size_t i = 0; i < st->nlookups; i++)
        lookup_free(st->lookups[i]);
    free(st->lookups);
    free(st->tokens);
    free(st);
    *store = NULL;
}

static void drop_token(struct mock_store *st, size_t i)
{
    memmove(&st->tokens[i], &st->tokens[i + 1], (st->ntokens - i - 1) * sizeof(*st->tokens));
    st->ntokens--;
}

int mock_store_token_issue(struct mock_store *st, uint64_t now_ms, uint64_t ttl_ms, char *value,
                           size_t cap)
{
    unsigned char raw[TOKEN_BYTES];
    if (cap < sizeof(st->tokens[0].value))
        return PD_ELIMIT;
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return PD_EPROTOCOL;
    for (size_t i = st->ntokens; i-- > 0;)
        if (st->tokens[i].expires_ms <= now_ms)
            drop_token(st, i);
    if (st->ntokens == MAX_TOKENS)
        drop_token(st, 0);
    struct token *t = &st->tokens[st->ntokens++];
    for (size_t i = 0; i < sizeof(raw); i++)
        snprintf(t->value + 2 * i, 3, "%02x", raw[i]);
    t->expires_ms = now_ms + ttl_ms;
    memcpy(value, t->value, sizeof(t->value));
    return 0;
}

bool mock_store_token_valid(struct mock_store *st, const char *value, uint64_t now_ms)
{
    for (size_t i = 0; i < st->ntokens; i++)
        if (!strcmp(st->tokens[i].value, value))
            return st->tokens[i].expires_ms > now_ms;
    return false;
}

void mock_store_token_revoke(struct mock_store *st, const char *value)
{
    for (size_t i = 0; i < st->ntokens; i++)
        if (!strcmp(st->tokens[i].value, value)) {
            drop_token(st, i);
            return;
        }
}

void mock_store_token_revoke_all(struct mock_store *st)
{
    st->ntokens = 0;
}

static bool grow(void **arr, size_t *cap, size_t need, size_t size)
{
    if (need <= *cap)
        return true;
    size_t ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *p = realloc(*arr, ncap * size);
    if (!p)
        return false;
    *arr = p;
    *cap = ncap;
    return true;
}

int mock_store_run_add(struct mock_store *st, const char *flow, const char *version,
                       uint64_t epoch_ms, uint64_t *id)
{
    if (!grow((void **)&st->runs, &st->capruns, st->nruns + 1, sizeof(*st->runs)))
        return PD_ENOMEM;
    struct mock_run *run = &st->runs[st->nruns];
    run->flow_id = strdup(flow);
    run->version_id = version && *version ? strdup(version) : NULL;
    if (!run->flow_id || (version && *version && !run->version_id)) {
        free(run->flow_id);
        free(run->version_id);
        return PD_ENOMEM;
    }
    memset(&run->created_now, 0, sizeof(*run) - offsetof(struct mock_run, created_now));
    run->id = ++st->nruns;
    run->started_ms = epoch_ms;
    *id = run->id;
    return 0;
}

uint64_t mock_store_run_count(struct mock_store *st)
{
    return st->nruns;
}

bool mock_store_run_get(struct mock_store *st, uint64_t id, struct mock_run *out)
{
    if (id == 0 || id > st->nruns)
        return false;
    *out = st->runs[id - 1];
    return true;
}

struct mock_run *mock_store_run_at(struct mock_store *st, uint64_t id)
{
    return id == 0 || id > st->nruns ? NULL : &st->runs[id - 1];
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

struct mock_lookup *mock_store_lookup_add(struct mock_store *st, const char *name,
                                          const char *description, const char *default_value,
                                          uint64_t epoch_ms)
{
    if (!grow((void **)&st->lookups, &st->caplookups, st->nlookups + 1, sizeof(*st->lookups)))
        return NULL;
    struct mock_lookup *lk = calloc(1, sizeof(*lk));
    if (!lk)
        return NULL;
    lk->name = strdup(name);
    lk->description = dup_or_null(description);
    lk->default_value = dup_or_null(default_value);
    if (!lk->name || (description && !lk->description) || (default_value && !lk->default_value)) {
        lookup_free(lk);
        return NULL;
    }
    lk->id = st->next_lookup_id++;
    lk->created_ms = lk->updated_ms = epoch_ms;
    st->lookups[st->nlookups++] = lk;
    return lk;
}

struct mock_lookup *mock_store_lookup_get(struct mock_store *st, uint64_t id)
{
    for (size_t i = 0; i < st->nlookups; i++)
        if (st->lookups[i]->id == id)
            return st->lookups[i];
    return NULL;
}

size_t mock_store_lookup_count(struct mock_store *st)
{
    return st->nlookups;
}

struct mock_lookup *mock_store_lookup_at(struct mock_store *st, size_t index)
{
    return index < st->nlookups ? st->lookups[index] : NULL;
}

struct mock_row *mock_store_row_add(struct mock_store *st, struct mock_lookup *lk, const char *left,
                                    const char *right, uint64_t epoch_ms)
{
    if (!grow((void **)&lk->rows, &lk->caprows, lk->nrows + 1, sizeof(*lk->rows)))
        return NULL;
    struct mock_row *row = &lk->rows[lk->nrows];
    row->left = strdup(left);
    row->right = strdup(right);
    if (!row->left || !row->right) {
        free(row->left);
        free(row->right);
        return NULL;
    }
    row->id = st->next_row_id++;
    lk->nrows++;
    lk->updated_ms = epoch_ms;
    return row;
}

/* Rows are appended with ids from one rising counter and deletes keep their order, so a
 * lookup's rows are always sorted by id: binary search keeps 50,000-row syncs fast. */
static size_t row_index(const struct mock_lookup *lk, uint64_t id)
{
    size_t lo = 0, hi = lk->nrows;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (lk->rows[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < lk->nrows && lk->rows[lo].id == id ? lo : SIZE_MAX;
}

struct mock_row *mock_store_row_get(struct mock_lookup *lk, uint64_t id)
{
    size_t i = row_index(lk, id);
    return i == SIZE_MAX ? NULL : &lk->rows[i];
}

int mock_store_row_set(struct mock_row *row, const char *left, const char *right)
{
    char *l = left ? strdup(left) : NULL;
    char *r = right ? strdup(right) : NULL;
    if ((left && !l) || (right && !r)) {
        free(l);
        free(r);
        return PD_ENOMEM;
    }
    if (l) {
        free(row->left);
        row->left = l;
    }
    if (r) {
        free(row->right);
        row->right = r;
    }
    return 0;
}

bool mock_store_row_delete(struct mock_lookup *lk, uint64_t id)
{
    size_t i = row_index(lk, id);
    if (i == SIZE_MAX)
        return false;
    free(lk->rows[i].left);
    free(lk->rows[i].right);
    memmove(&lk->rows[i], &lk->rows[i + 1], (lk->nrows - i - 1) * sizeof(*lk->rows));
    lk->nrows--;
    return true;
}
