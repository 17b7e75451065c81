/*
 * `patchdrop doctor`'s pure parts (include/pd_doctor.h): the checks it made, said one line each
 * or as one JSON document, and where an answer holds what patchdrop reads, so a user with a real
 * account can tell us what the public documentation leaves open.
 */
#include "pd_doctor.h"

#include "pd_error.h"
#include "pd_log.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *pd_check_status_name(enum pd_check_status s)
{
    switch (s) {
    case PD_CHECK_OK:
        return "ok";
    case PD_CHECK_WARN:
        return "warn";
    case PD_CHECK_FAIL:
        return "FAIL";
    default:
        return "skip";
    }
}

int pd_checks_add(struct pd_checks *c, enum pd_check_status status, const char *name,
                  const char *fix, const char *fmt, ...)
{
    struct pd_check k = {.status = status};
    va_list ap;
    int n;

    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        struct pd_check *v = realloc(c->v, cap * sizeof(*v));
        if (!v)
            return PD_ENOMEM;
        c->v = v;
        c->cap = cap;
    }
    va_start(ap, fmt);
    n = vasprintf(&k.detail, fmt, ap);
    va_end(ap);
    k.name = strdup(name);
    k.fix = fix ? strdup(fix) : NULL;
    if (n < 0 || !k.name || (fix && !k.fix)) {
        if (n >= 0)
            free(k.detail);
        free(k.name);
        free(k.fix);
        return PD_ENOMEM;
    }
    c->v[c->n++] = k;
    return 0;
}

void pd_checks_free(struct pd_checks *c)
{
    for (size_t i = 0; i < c->n; i++) {
        free(c->v[i].name);
        free(c->v[i].detail);
        free(c->v[i].fix);
    }
    free(c->v);
    memset(c, 0, sizeof(*c));
}

enum pd_check_status pd_checks_worst(const struct pd_checks *c)
{
    enum pd_check_status w = PD_CHECK_OK;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].status == PD_CHECK_FAIL ||
            (c->v[i].status == PD_CHECK_WARN && w == PD_CHECK_OK))
            w = c->v[i].status;
    return w;
}

int pd_checks_exit(const struct pd_checks *c)
{
    return pd_checks_worst(c) == PD_CHECK_FAIL ? 1 : 0;
}

void pd_checks_print(const struct pd_checks *c, FILE *out)
{
    size_t count[4] = {0};
    for (size_t i = 0; i < c->n; i++) {
        const struct pd_check *k = &c->v[i];
        size_t len = strlen(k->detail) * 4 + 1;
        char *safe = malloc(len);
        count[k->status]++;
        fprintf(out, "%-4s  %s: %s", pd_check_status_name(k->status), k->name,
                safe ? pd_log_escape(k->detail, safe, len) : "(out of memory)");
        free(safe);
        if (k->fix) {
            len = strlen(k->fix) * 4 + 1;
            safe = malloc(len);
            fprintf(out, " -> %s", safe ? pd_log_escape(k->fix, safe, len) : "(out of memory)");
            free(safe);
        }
        fputc('\n', out);
    }
    fprintf(out, "%zu ok, %zu warnings, %zu failed, %zu skipped\n", count[PD_CHECK_OK],
            count[PD_CHECK_WARN], count[PD_CHECK_FAIL], count[PD_CHECK_SKIP]);
}

static const char *json_status(enum pd_check_status s)
{
    return s == PD_CHECK_FAIL ? "fail" : pd_check_status_name(s);
}

char *pd_checks_json(const struct pd_checks *c)
{
    cJSON *root = cJSON_CreateObject(), *list = cJSON_CreateArray();
    char *text = NULL;
    bool ok = root && list && cJSON_AddItemToObject(root, "checks", list);

    if (!ok)
        cJSON_Delete(list);
    ok = ok && cJSON_AddStringToObject(root, "status", json_status(pd_checks_worst(c)));
    for (size_t i = 0; ok && i < c->n; i++) {
        const struct pd_check *k = &c->v[i];
        cJSON *o = cJSON_CreateObject();
        ok = o && cJSON_AddItemToArray(list, o) && cJSON_AddStringToObject(o, "name", k->name) &&
             cJSON_AddStringToObject(o, "status", json_status(k->status)) &&
             cJSON_AddStringToObject(o, "detail", k->detail) &&
             (k->fix ? cJSON_AddStringToObject(o, "fix", k->fix) != NULL
                     : cJSON_AddNullToObject(o, "fix") != NULL);
    }
    if (ok)
        text = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (text) {
        size_t n = strlen(text);
        char *t = realloc(text, n + 2);
        if (!t) {
            free(text);
            return NULL;
        }
        t[n] = '\n';
        t[n + 1] = '\0';
        text = t;
    }
    return text;
}

/* ---- shapes ---------------------------------------------------------------------------- */

/* Whether ROOT holds PATH ("a.b", "a[]", "[]"). */
static bool has_path(const cJSON *root, const char *path)
{
    const cJSON *at = root;
    char part[128];

    if (!strcmp(path, "[]"))
        return cJSON_IsArray(root);
    while (*path) {
        size_t n = strcspn(path, ".");
        bool list = n >= 2 && path[n - 2] == '[' && path[n - 1] == ']';
        if (n - (list ? 2 : 0) >= sizeof(part))
            return false;
        memcpy(part, path, n - (list ? 2 : 0));
        part[n - (list ? 2 : 0)] = '\0';
        at = cJSON_IsObject(at) ? cJSON_GetObjectItemCaseSensitive(at, part) : NULL;
        if (!at || cJSON_IsNull(at) || (list && !cJSON_IsArray(at)))
            return false;
        path += n + (path[n] == '.');
    }
    return true;
}

/* Appends S to OUT (LEN bytes, holding *USED), with ", " between. Room for ", ..." is always
 * kept, so a list that does not fit ends with it. */
static void append(char *out, size_t len, size_t *used, const char *prefix, const char *s)
{
    int n;
    if (*used >= len)
        return; /* already ended with "..." */
    n = snprintf(out + *used, len - *used, "%s%s%s%s", *used ? ", " : "", prefix,
                 *prefix ? "." : "", s);
    if (n >= 0 && (size_t)n + 6 <= len - *used) {
        *used += (size_t)n;
        return;
    }
    snprintf(out + *used, len - *used, "%s...", *used ? ", " : "");
    *used = len;
}

/* The key names of O, three levels deep, never their values. */
static void list_keys(const cJSON *o, const char *prefix, int depth, char *out, size_t len,
                      size_t *used)
{
    for (const cJSON *k = o->child; k; k = k->next) {
        char name[160];
        snprintf(name, sizeof(name), "%s%s", k->string ? k->string : "?",
                 cJSON_IsArray(k) ? "[]" : "");
        if (cJSON_IsObject(k) && k->child && depth < 3) {
            char sub[320];
            snprintf(sub, sizeof(sub), "%s%s%s", prefix, *prefix ? "." : "", name);
            list_keys(k, sub, depth + 1, out, len, used);
        } else {
            append(out, len, used, prefix, name);
        }
    }
}

int pd_shape_find(const char *body, size_t len, const char *const *paths, char *seen,
                  size_t seenlen)
{
    cJSON *root = body && len ? cJSON_ParseWithLength(body, len) : NULL;
    size_t used = 0;
    int found = -1;

    if (seenlen)
        seen[0] = '\0';
    if (!root || !(cJSON_IsObject(root) || cJSON_IsArray(root))) {
        cJSON_Delete(root);
        return -2;
    }
    for (int i = 0; paths[i] && found < 0; i++)
        if (has_path(root, paths[i]))
            found = i;
    if (found < 0 && seenlen) {
        if (cJSON_IsArray(root))
            append(seen, seenlen, &used, "", "[] (a list)");
        else
            list_keys(root, "", 1, seen, seenlen, &used);
        if (!used)
            snprintf(seen, seenlen, "no keys");
    }
    cJSON_Delete(root);
    return found;
}

void pd_shape_paths(const char *const *paths, char *out, size_t outlen)
{
    size_t used = 0;
    if (outlen)
        out[0] = '\0';
    for (int i = 0; paths[i]; i++)
        append(out, outlen, &used, "", paths[i]);
}
