/*
 * The config file's value syntaxes: sizes, durations, booleans, listen addresses, choices and
 * text, each read (and written back, for messages and printing) the way a user writes it, and
 * the one function that stores a key's value or says what is wrong with it.
 */
#include "config_internal.h"
#include "pd_error.h"

#include <arpa/inet.h>
#include <sys/socket.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Splits "12.5 MiB" into a number and a unit; the number may have a fraction. */
static int split_number(const char *s, double *num, const char **unit)
{
    char *end;

    while (isspace((unsigned char)*s))
        s++;
    if (!isdigit((unsigned char)*s))
        return PD_ECONFIG;
    errno = 0;
    *num = strtod(s, &end);
    if (errno || end == s || *num < 0)
        return PD_ECONFIG;
    while (isspace((unsigned char)*end))
        end++;
    *unit = end;
    return 0;
}

static int unit_is(const char *unit, const char *name)
{
    size_t n = strlen(name);
    if (strncmp(unit, name, n))
        return 0;
    for (unit += n; *unit; unit++)
        if (!isspace((unsigned char)*unit))
            return 0;
    return 1;
}

struct unit {
    const char *name;
    double mult;
};

/* "NUMBER UNIT" with one of the N UNITS (a number alone has the unit ""): the number times the
 * unit's multiple, in *V. */
static int scale(const char *s, const struct unit *units, size_t n, double *v)
{
    double num;
    const char *unit;

    if (split_number(s, &num, &unit))
        return PD_ECONFIG;
    for (size_t i = 0; i < n; i++) {
        if (unit_is(unit, units[i].name)) {
            *v = num * units[i].mult;
            return 0;
        }
    }
    return PD_ECONFIG;
}

int pd_parse_duration(const char *s, uint64_t *ms)
{
    static const struct unit units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
                                        {"h", 3600000}, {"d", 86400000}, {"", 1000}};
    double v;

    if (scale(s, units, sizeof(units) / sizeof(units[0]), &v) || v > (double)UINT64_MAX / 2)
        return PD_ECONFIG;
    *ms = (uint64_t)(v + 0.5);
    return 0;
}

int pd_parse_size(const char *s, uint64_t *bytes)
{
    static const struct unit units[] = {{"", 1},         {"B", 1},           {"kB", 1e3},
                                        {"KB", 1e3},     {"MB", 1e6},        {"GB", 1e9},
                                        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    double v;

    if (scale(s, units, sizeof(units) / sizeof(units[0]), &v))
        return PD_ECONFIG;
    if (v > 9.0e18 || v != (double)(uint64_t)v)
        return PD_ECONFIG; /* too big, or a fraction of a byte */
    *bytes = (uint64_t)v;
    return 0;
}

int pd_parse_bool(const char *s, bool *v)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};

    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i])) {
            *v = true;
            return 0;
        }
        if (!strcasecmp(s, no[i])) {
            *v = false;
            return 0;
        }
    }
    return PD_ECONFIG;
}

int pd_parse_listen(const char *s, struct sockaddr_storage *addr, unsigned *len)
{
    struct sockaddr_storage ss;
    char host[64];
    const char *colon, *h = s;
    size_t hlen;
    char *end;
    unsigned long port;

    memset(&ss, 0, sizeof(ss));
    if (*s == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return PD_ECONFIG;
        h = s + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return PD_ECONFIG;
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= sizeof(host) || !isdigit((unsigned char)colon[1]))
        return PD_ECONFIG;
    errno = 0;
    port = strtoul(colon + 1, &end, 10);
    if (errno || *end || port > 65535)
        return PD_ECONFIG;
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    if (!strcmp(host, "localhost"))
        snprintf(host, sizeof(host), "127.0.0.1");
    struct sockaddr_in *v4 = (struct sockaddr_in *)(void *)&ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)(void *)&ss;
    unsigned n;
    if (*s != '[' && inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        n = sizeof(*v4);
    } else if (*s == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        n = sizeof(*v6);
    } else {
        return PD_ECONFIG;
    }
    if (addr)
        *addr = ss;
    if (len)
        *len = n;
    return 0;
}

void cfg_format_duration(uint64_t ms, char *buf, size_t len)
{
    if (ms == 0) {
        snprintf(buf, len, "0");
        return;
    }
    static const struct {
        const char *unit;
        uint64_t ms;
    } units[] = {{"d", 86400000}, {"h", 3600000}, {"m", 60000}, {"s", 1000}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (ms && ms % units[i].ms == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", ms / units[i].ms, units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%" PRIu64 "ms", ms);
}

/* Bytes in the largest unit that holds them exactly (8MB, 1GiB), else in bytes (256B). */
static void format_size(uint64_t bytes, char *buf, size_t len)
{
    static const struct {
        const char *unit;
        uint64_t mult;
    } units[] = {{"GB", 1000000000}, {"GiB", 1073741824}, {"MB", 1000000},
                 {"MiB", 1048576},   {"kB", 1000},        {"KiB", 1024}};
    for (size_t i = 0; bytes && i < sizeof(units) / sizeof(units[0]); i++) {
        if (bytes % units[i].mult == 0) {
            snprintf(buf, len, "%" PRIu64 "%s", bytes / units[i].mult, units[i].unit);
            return;
        }
    }
    snprintf(buf, len, "%" PRIu64 "B", bytes);
}

/* A number of KEY's kind written as a user would write it: 1d, not 86400000ms. */
static void format_value(enum type type, uint64_t v, char *buf, size_t len)
{
    if (type == T_DURATION)
        cfg_format_duration(v, buf, len);
    else if (type == T_SIZE)
        format_size(v, buf, len);
    else
        snprintf(buf, len, "%" PRIu64, v);
}

static int parse_enum(const char *s, const char *const *choices, int *out)
{
    for (int i = 0; choices[i]; i++) {
        if (!strcasecmp(s, choices[i])) {
            *out = i;
            return 0;
        }
    }
    return PD_ECONFIG;
}

static void join_choices(const char *const *choices, char *buf, size_t len)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; choices[i] && used < len; i++)
        used += (size_t)snprintf(buf + used, len - used, "%s%s", i ? ", " : "", choices[i]);
}

/* Relative paths are taken from the config file's folder. */
static char *resolve_path(const struct parser *p, const char *value)
{
    char *out;
    if (value[0] == '/' || !p->dir)
        return strdup(value);
    if (asprintf(&out, "%s/%s", p->dir, value) < 0)
        return NULL;
    return out;
}

/* Whether VALUE suits text key K (STRING, SECRET, URL, ID, LISTEN or PATH); says why not. */
static bool text_ok(struct parser *p, const struct key *k, const char *value, int line)
{
    if (!*value) {
        cfg_add_error(p, line, "%s is empty; give a value or remove the line", k->name);
        return false;
    }
    if (k->type == T_URL && strncmp(value, "https://", 8) && strncmp(value, "http://", 7)) {
        cfg_add_error(p, line, "%s must be an http:// or https:// URL, not '%s'", k->name, value);
        return false;
    }
    if (k->type == T_LISTEN && pd_parse_listen(value, NULL, NULL)) {
        cfg_add_error(p, line,
                      "%s must be an address and port like 127.0.0.1:9465, [::1]:9465 or "
                      "localhost:9465, not '%s'",
                      k->name, value);
        return false;
    }
    if (k->type == T_ID) {
        for (const char *c = value; *c; c++) {
            if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_') {
                cfg_add_error(p, line,
                              "%s '%s' has a character other than letters, digits, '-' and "
                              "'_'; give the id as Patchworks shows it",
                              k->name, value);
                return false;
            }
        }
    }
    return true;
}

/* Stores a copy of text VALUE in FIELD, a char *, freeing (and for a secret wiping) the old. */
static int set_text(struct parser *p, const struct key *k, char *field, const char *value, int line)
{
    char *copy;

    if (!text_ok(p, k, value, line))
        return PD_ECONFIG;
    copy = k->type == T_PATH ? resolve_path(p, value) : strdup(value);
    if (!copy) {
        p->oom = true;
        return PD_ENOMEM;
    }
    if (k->type == T_URL) {
        /* One form for every URL: no trailing slash, so paths join with a single '/'. */
        size_t n = strlen(copy);
        while (n > 8 && copy[n - 1] == '/')
            copy[--n] = '\0';
    }
    char **slot = (char **)(void *)field;
    if (*slot && k->type == T_SECRET)
        explicit_bzero(*slot, strlen(*slot));
    free(*slot);
    *slot = copy;
    return 0;
}

/* Stores a BOOL, ENUM or FORMAT key's VALUE in FIELD (a bool or an int). */
static int set_choice(struct parser *p, const struct key *k, char *field, const char *value,
                      int line)
{
    char choices[256];
    bool b;
    int e = 0;

    if (k->type == T_BOOL) {
        if (pd_parse_bool(value, &b)) {
            cfg_add_error(p, line, "%s must be yes or no, not '%s'", k->name, value);
            return PD_ECONFIG;
        }
        *(bool *)(void *)field = b;
        return 0;
    }
    if (k->type == T_ENUM ? parse_enum(value, k->choices, &e) : pd_format_parse(value, &e)) {
        if (k->type == T_ENUM)
            join_choices(k->choices, choices, sizeof(choices));
        else
            pd_format_join_names(", ", choices, sizeof(choices));
        cfg_add_error(p, line, "%s must be one of %s, not '%s'", k->name, choices, value);
        return PD_ECONFIG;
    }
    *(int *)(void *)field = e;
    return 0;
}

/* A whole number, digits only. */
static int parse_uint(const char *s, uint64_t *u)
{
    char *end;

    errno = 0;
    if (!isdigit((unsigned char)s[0]))
        return PD_ECONFIG;
    *u = strtoull(s, &end, 10);
    return errno || *end ? PD_ECONFIG : 0;
}

/* Reads a UINT, SIZE or DURATION key's VALUE into *U; its bounds are checked by the caller. */
static int parse_number(struct parser *p, const struct key *k, const char *value, int line,
                        uint64_t *u)
{
    int rc = k->type == T_SIZE       ? pd_parse_size(value, u)
             : k->type == T_DURATION ? pd_parse_duration(value, u)
                                     : parse_uint(value, u);

    if (!rc)
        return 0;
    if (k->type == T_SIZE)
        cfg_add_error(p, line,
                      "%s must be a size in bytes, like 8000000, 8MB or 7.5MiB (kB/MB/GB are "
                      "powers of 1000, KiB/MiB/GiB of 1024), not '%s'",
                      k->name, value);
    else if (k->type == T_DURATION)
        cfg_add_error(p, line, "%s must be a duration like 500ms, 2s, 5m, 1h or 7d, not '%s'",
                      k->name, value);
    else
        cfg_add_error(p, line,
                      "%s must be a whole number from %" PRIu64 " to %" PRIu64 ", not '%s'",
                      k->name, k->min, k->max, value);
    return PD_ECONFIG;
}

/* Stores a number key's VALUE in FIELD, a uint64_t, once within the key's bounds. */
static int set_number(struct parser *p, const struct key *k, char *field, const char *value,
                      int line)
{
    uint64_t u = 0;

    if (parse_number(p, k, value, line, &u))
        return PD_ECONFIG;
    /* The bounds are shown in the key's own unit. */
    if (u < k->min || u > k->max) {
        char lo[32], hi[32];
        format_value(k->type, k->min, lo, sizeof(lo));
        format_value(k->type, k->max, hi, sizeof(hi));
        if (k->max >= UINT64_MAX / 2)
            cfg_add_error(p, line, "%s = %s is out of range: at least %s", k->name, value, lo);
        else
            cfg_add_error(p, line, "%s = %s is out of range: from %s to %s", k->name, value, lo,
                          hi);
        return PD_ECONFIG;
    }
    *(uint64_t *)(void *)field = u;
    return 0;
}

int cfg_set_value(struct parser *p, const struct key *k, void *base, const char *value, int line)
{
    char *field = (char *)base + k->offset;

    switch (k->type) {
    case T_STRING:
    case T_SECRET:
    case T_URL:
    case T_ID:
    case T_LISTEN:
    case T_PATH:
        return set_text(p, k, field, value, line);
    case T_BOOL:
    case T_ENUM:
    case T_FORMAT:
        return set_choice(p, k, field, value, line);
    case T_UINT:
    case T_SIZE:
    case T_DURATION:
        break;
    }
    return set_number(p, k, field, value, line);
}
