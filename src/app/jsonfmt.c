/* JSON for people: two-space indent, keys in insertion order (see pd_jsonfmt.h). */
#include "pd_jsonfmt.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#define INDENT 2

/* A leaf (string, number, boolean, null) as cJSON writes it (a leaf's print never follows its
 * siblings); false when out of memory. */
static bool put_leaf(FILE *f, const cJSON *item)
{
    char *text = cJSON_PrintUnformatted(item);

    if (!text)
        return false;
    fputs(text, f);
    free(text);
    return true;
}

static bool put_key(FILE *f, const char *key)
{
    cJSON *s = cJSON_CreateString(key ? key : "");
    bool ok = s && put_leaf(f, s);

    cJSON_Delete(s);
    if (ok)
        fputs(": ", f);
    return ok;
}

static bool put_value(FILE *f, const cJSON *item, int depth)
{
    bool object = cJSON_IsObject(item);
    const cJSON *child;

    if (!object && !cJSON_IsArray(item))
        return put_leaf(f, item);
    if (!item->child) {
        fputs(object ? "{}" : "[]", f);
        return true;
    }
    fputc(object ? '{' : '[', f);
    for (child = item->child; child; child = child->next) {
        fprintf(f, "\n%*s", (depth + 1) * INDENT, "");
        if (object && !put_key(f, child->string))
            return false;
        if (!put_value(f, child, depth + 1))
            return false;
        if (child->next)
            fputc(',', f);
    }
    fprintf(f, "\n%*s%c", depth * INDENT, "", object ? '}' : ']');
    return true;
}

char *pd_jsonfmt_print(const cJSON *item)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    bool ok;

    if (!f)
        return NULL;
    ok = put_value(f, item, 0);
    fputc('\n', f);
    ok = !ferror(f) && ok;
    if (fclose(f) != 0 || !ok) {
        free(text);
        return NULL;
    }
    return text;
}
