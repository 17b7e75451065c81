/*
 * Private parts of the config reader shared by src/app/config*.c: the key table, the parser's
 * state and the functions the files call in one another. Not a public interface (that is
 * pd_config.h).
 *
 * config_keys.c holds the table and what is looked up in it, config_parse.c the value
 * syntaxes, config.c reads the file and owns the result, config_check.c checks keys against
 * one another and the file system, config_print.c prints the effective configuration.
 */
#ifndef PD_CONFIG_INTERNAL_H
#define PD_CONFIG_INTERNAL_H

#include "pd_config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum section { SEC_PATCHWORKS, SEC_STATE, SEC_DAEMON, SEC_METRICS, SEC_WATCH };

enum type {
    T_STRING,   /* free text */
    T_SECRET,   /* free text, never printed */
    T_PATH,     /* file system path, relative to the config file's folder */
    T_URL,      /* http:// or https:// */
    T_ID,       /* letters, digits, '-' and '_': safe inside a URL path */
    T_UINT,     /* plain integer */
    T_SIZE,     /* bytes with optional kB/MB/GB/KiB/MiB/GiB */
    T_DURATION, /* milliseconds, written with ms/s/m/h/d */
    T_BOOL,
    T_ENUM,
    T_FORMAT, /* a split format: names from the format registry (pd_format.h) */
    T_LISTEN, /* host:port to listen on, see pd_parse_listen() */
};

struct key {
    enum section section;
    const char *name;
    enum type type;
    const char *def; /* default, written as a user would; NULL: unset */
    uint64_t min, max;
    size_t offset; /* into struct pd_patchworks, pd_state_cfg or pd_watch */
    const char *const *choices;
    const char *help;
};

/* Every key patchdrop reads (config_keys.c), in the order they are printed. */
extern const struct key cfg_keys[];
extern const size_t cfg_nkeys;
extern const char *const cfg_section_names[]; /* by enum section */

/* Room for every key in struct seen; config_keys.c does not build with more keys. */
#define CFG_MAX_KEYS 128
#define MAX_PROBLEMS 200
/* inih's line buffer (INI_MAX_LINE in the packaged build). */
#define LINE_MAX_INI 200

struct problem {
    int line;
    size_t seq;
    char msg[1024];
};

/*
 * One section instance being filled: which keys it set, on which line, and which of them did
 * not parse (already reported: checks between keys skip them, so one mistake is one message).
 * Indexed like cfg_keys.
 */
struct seen {
    int line[CFG_MAX_KEYS];
    bool bad[CFG_MAX_KEYS];
};

struct parser {
    const char *file;
    char *dir; /* folder of the config file, for relative paths */
    FILE *fp;
    int lineno;
    struct pd_config *cfg;
    struct seen pw_seen, state_seen, daemon_seen, metrics_seen;
    struct seen *watch_seen;                            /* parallel to cfg->watches */
    int pw_line, state_line, daemon_line, metrics_line; /* where sections start; 0: absent */
    struct problem *problems;
    size_t nproblems;
    int nerrors;
    bool oom;
};

/* config.c: one problem of the file, at LINE (0: the file as a whole). */
void cfg_add_error(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* config_keys.c: the key NAME of SEC; the one NAME most likely misspells (NULL: none close). */
const struct key *cfg_find_key(enum section sec, const char *name);
const struct key *cfg_closest_key(enum section sec, const char *name);

/* config_parse.c: converts VALUE for KEY and stores it at BASE + key->offset, reporting what
 * is wrong. Returns 0, PD_ECONFIG or PD_ENOMEM. */
int cfg_set_value(struct parser *p, const struct key *k, void *base, const char *value, int line);
/* A duration as a user would write it: 1d, not 86400000ms. */
void cfg_format_duration(uint64_t ms, char *buf, size_t len);

/* config_check.c: the checks across keys and against the file system, once every key of the
 * file is read and the defaults are in; also reads the secret the credentials name. */
void cfg_check(struct parser *p, bool config_readable);

#endif
