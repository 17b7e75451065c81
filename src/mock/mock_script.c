/*
 * Deterministic faults for patchdrop-mock: the --script list, consumed one entry per start-flow
 * request, and the seeded draws behind --fail-rate, --fail-401-rate and --drop-rate.
 *
 * The draws are a hash of (seed, request number, kind) rather than one shared generator, so
 * the k-th start-flow request meets the same fate in every run with the same seed, whatever
 * other requests (logins, lookups) came in between.
 */
#include "mock.h"

#include "pd_error.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const int allowed_status[] = {401, 403, 404, 408, 413, 422, 429, 500, 502, 503, 504};

static char *format_err(const char *item)
{
    char *msg = NULL;
    if (asprintf(&msg,
                 "script entry '%s' is not one of: ok, drop, hang, truncate, an HTTP status "
                 "(401 403 404 408 413 422 429 500 502 503 504), 429:SECONDS or 503:SECONDS",
                 item) < 0)
        msg = NULL;
    return msg;
}

static int parse_step(const char *item, struct mock_step *st)
{
    memset(st, 0, sizeof(*st));
    st->retry_after = -1;
    static const struct {
        const char *word;
        int kind;
    } words[] = {{"ok", MOCK_STEP_OK},
                 {"drop", MOCK_STEP_DROP},
                 {"hang", MOCK_STEP_HANG},
                 {"truncate", MOCK_STEP_TRUNCATE}};
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (!strcmp(item, words[i].word)) {
            st->kind = words[i].kind;
            return 0;
        }
    }
    char *end;
    errno = 0;
    long status = strtol(item, &end, 10);
    if (end == item || errno)
        return PD_EUSAGE;
    bool known = false;
    for (size_t i = 0; i < sizeof(allowed_status) / sizeof(allowed_status[0]); i++)
        known = known || status == allowed_status[i];
    if (!known)
        return PD_EUSAGE;
    st->kind = MOCK_STEP_STATUS;
    st->status = (int)status;
    if (*end == ':') {
        if (status != 429 && status != 503)
            return PD_EUSAGE;
        const char *num = end + 1;
        errno = 0;
        long secs = strtol(num, &end, 10);
        if (end == num || errno || secs < 0 || secs > 86400)
            return PD_EUSAGE;
        st->retry_after = (int)secs;
    }
    return *end ? PD_EUSAGE : 0;
}

int mock_script_parse(const char *list, struct mock_script *script, char **err)
{
    struct mock_step *steps = NULL;
    size_t n = 0;
    char *copy = NULL;
    int rc = 0;

    if (list && *list) {
        copy = strdup(list);
        size_t cap = 1;
        for (const char *p = list; *p; p++)
            cap += *p == ',';
        steps = calloc(cap, sizeof(*steps));
        if (!copy || !steps) {
            rc = PD_ENOMEM;
            goto out;
        }
        char *save = NULL;
        for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
            while (*item == ' ')
                item++;
            size_t k = strlen(item);
            while (k && item[k - 1] == ' ')
                item[--k] = '\0';
            if (parse_step(item, &steps[n])) {
                rc = PD_EUSAGE;
                if (err)
                    *err = format_err(item);
                goto out;
            }
            n++;
        }
    }
    mock_script_cleanup(script);
    script->steps = steps;
    script->n = n;
    script->next = 0;
    steps = NULL;
out:
    free(copy);
    free(steps);
    return rc;
}

const struct mock_step *mock_script_take(struct mock_script *script)
{
    if (script->next >= script->n)
        return NULL;
    return &script->steps[script->next++];
}

void mock_script_cleanup(struct mock_script *script)
{
    free(script->steps);
    script->steps = NULL;
    script->n = script->next = 0;
}

/* splitmix64's finaliser: every input bit reaches every output bit. */
static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

double mock_draw(uint64_t seed, uint64_t k, unsigned kind)
{
    uint64_t x = mix(seed ^ mix(k * 8 + kind));
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}
