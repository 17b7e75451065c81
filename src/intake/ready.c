/* Readiness of a dropped file (see pd_ready.h). */
#include "pd_ready.h"
#include "pd_error.h"

#include <fnmatch.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void free_list(char **list)
{
    for (size_t i = 0; list && list[i]; i++)
        free(list[i]);
    free(list);
}

/*
 * Splits a list of globs into a NULL-terminated array; NULL or blank gives an empty one. Spaces,
 * tabs, commas and semicolons all separate: `*.tmp;*.part` and `*.tmp, *.part` are what people
 * write, and a glob holding one of them would never match a file a partner can upload anyway.
 */
static char **split_list(const char *text)
{
    size_t n = 0, cap = 4;
    char **list = calloc(cap + 1, sizeof(*list));

    if (!list)
        return NULL;
    while (text && *text) {
        size_t len;
        text += strspn(text, PD_READY_GLOB_SEPARATORS);
        len = strcspn(text, PD_READY_GLOB_SEPARATORS);
        if (!len)
            break;
        if (n == cap) {
            char **grown = realloc(list, (cap * 2 + 1) * sizeof(*list));
            if (!grown)
                goto oom;
            list = grown;
            cap *= 2;
        }
        if (!(list[n++] = strndup(text, len)))
            goto oom;
        list[n] = NULL;
        text += len;
    }
    list[n] = NULL;
    return list;
oom:
    free_list(list);
    return NULL;
}

int pd_ready_rules_init(struct pd_ready_rules *r, const char *include, const char *exclude,
                        const char *done_marker, uint64_t settle_ms, uint64_t min_age_ms)
{
    memset(r, 0, sizeof(*r));
    r->settle_ms = settle_ms;
    r->min_age_ms = min_age_ms;
    r->include = split_list(include ? include : "*");
    r->exclude = split_list(exclude);
    if (done_marker && !(r->done_marker = strdup(done_marker)))
        goto oom;
    if (!r->include || !r->exclude)
        goto oom;
    return 0;
oom:
    pd_ready_rules_cleanup(r);
    return PD_ENOMEM;
}

void pd_ready_rules_cleanup(struct pd_ready_rules *r)
{
    free_list(r->include);
    free_list(r->exclude);
    free(r->done_marker);
    memset(r, 0, sizeof(*r));
}

static bool matches_any(char **list, const char *name)
{
    for (size_t i = 0; list && list[i]; i++)
        if (fnmatch(list[i], name, FNM_PERIOD) == 0)
            return true;
    return false;
}

/* Whether NAME is the done marker of some file: the template with {name} matching anything. */
static bool is_marker(const struct pd_ready_rules *r, const char *name)
{
    const char *t = r->done_marker, *hole;
    size_t pre, post, len = strlen(name);

    if (!t || !(hole = strstr(t, "{name}")))
        return false;
    pre = (size_t)(hole - t);
    post = strlen(hole + 6);
    return len > pre + post && !strncmp(name, t, pre) && !strcmp(name + len - post, hole + 6);
}

bool pd_ready_name_wanted(const struct pd_ready_rules *r, const char *name)
{
    if (!*name || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    if (is_marker(r, name))
        return false;
    return matches_any(r->include, name) && !matches_any(r->exclude, name);
}

bool pd_ready_marker_name(const struct pd_ready_rules *r, const char *name, char *out, size_t len)
{
    const char *t = r->done_marker, *hole;
    int n;

    if (!t || !(hole = strstr(t, "{name}")))
        return false;
    n = snprintf(out, len, "%.*s%s%s", (int)(hole - t), t, name, hole + 6);
    return n > 0 && (size_t)n < len;
}

uint64_t pd_ready_observe(const struct pd_ready_rules *r, struct pd_ready_obs *o,
                          const struct stat *st, uint64_t now_ms, uint64_t now_wall_ms)
{
    int64_t mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
    uint64_t wait = 0;

    if (!o->seen || o->size != (uint64_t)st->st_size || o->mtime_ns != mtime_ns ||
        o->ino != (uint64_t)st->st_ino || o->dev != (uint64_t)st->st_dev) {
        o->seen = true;
        o->size = (uint64_t)st->st_size;
        o->mtime_ns = mtime_ns;
        o->ino = (uint64_t)st->st_ino;
        o->dev = (uint64_t)st->st_dev;
        o->unchanged_since_ms = now_ms;
    }
    /* Settle is measured on our own clock: only time we watched the file unchanged counts. */
    if (now_ms - o->unchanged_since_ms < r->settle_ms)
        wait = r->settle_ms - (now_ms - o->unchanged_since_ms);
    if (r->min_age_ms) {
        int64_t mtime_ms = mtime_ns / 1000000;
        int64_t age = (int64_t)now_wall_ms - mtime_ms;
        if (age < (int64_t)r->min_age_ms) {
            uint64_t left = (uint64_t)((int64_t)r->min_age_ms - age);
            if (left > wait)
                wait = left;
        }
    }
    return wait;
}
