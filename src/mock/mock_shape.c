/*
 * --shape: answers in another shape than the documented one, one key renamed, so a test can
 * show what `patchdrop doctor` says when a real account answers differently from the public
 * documentation. Off unless asked for.
 *
 *   login    the login's "token" is "jwt" and "expires_in" is "expires"
 *   lookups  the lookups list's "data" is "items"
 *   run      a flow run's "status" is "state" (data.attributes)
 */
#include "mock.h"

#include "pd_error.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct {
    const char *name;
    unsigned bit;
} shapes[] = {
    {"login", MOCK_SHAPE_LOGIN}, {"lookups", MOCK_SHAPE_LOOKUPS}, {"run", MOCK_SHAPE_RUN}};

int mock_shape_parse(const char *list, unsigned *out, char **err)
{
    const char *p = list;
    *out = 0;
    while (p && *p) {
        size_t n = strcspn(p, ",");
        size_t i;
        for (i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++)
            if (strlen(shapes[i].name) == n && !strncmp(p, shapes[i].name, n))
                break;
        if (i == sizeof(shapes) / sizeof(shapes[0])) {
            if (err && asprintf(err, "'%.*s' is not login, lookups or run", (int)n, p) < 0)
                *err = NULL;
            return PD_EUSAGE;
        }
        *out |= shapes[i].bit;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* Renames OBJ's member FROM to TO, when it has one. */
static void rename_key(cJSON *obj, const char *from, const char *to)
{
    cJSON *v = cJSON_IsObject(obj) ? cJSON_DetachItemFromObjectCaseSensitive(obj, from) : NULL;
    if (v)
        cJSON_AddItemToObject(obj, to, v);
}

void mock_shape_apply(struct pd_mock *m, int route, const char *method, struct mock_answer *ans)
{
    bool login = route == MOCK_ROUTE_LOGIN_EMAIL || route == MOCK_ROUTE_LOGIN_USERNAME;
    bool lookups = route == MOCK_ROUTE_LOOKUPS && !strcmp(method, "GET");
    cJSON *r;

    if (ans->action != MOCK_ANSWER || ans->status != 200 || !ans->body ||
        !((login && (m->shape & MOCK_SHAPE_LOGIN)) ||
          (lookups && (m->shape & MOCK_SHAPE_LOOKUPS)) ||
          (route == MOCK_ROUTE_RUN && (m->shape & MOCK_SHAPE_RUN))))
        return;
    if (!(r = cJSON_Parse(ans->body)))
        return;
    if (login) {
        rename_key(r, "token", "jwt");
        rename_key(r, "expires_in", "expires");
    } else if (lookups) {
        rename_key(r, "data", "items");
    } else {
        rename_key(cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "data"),
                                                    "attributes"),
                   "status", "state");
    }
    free(ans->body);
    ans->body = mock_json_print(r);
}
