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

enum section { SEC_PATCHWORKS, SEC_STATE, SEC_DAEMON, SEC_METRICS, SEC_CLUSTER, SEC_WATCH };

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

/* One file being read: the config file or one it includes; a stack of them is read in turn. */
struct frame {
    char *path; /* as said in messages */
    FILE *fp;   /* NULL until its turn comes */
    int src;    /* its index in parser.srcs once opened */
    int from;   /* the position of the include line that named it (0: the config file) */
    int line;   /* lines read from it so far */
    bool in_section; /* a [section] header was read in this file */
};

/* Where a position (a line counted across every file read, in reading order) is. */
struct pos {
    int src; /* index into parser.srcs */
    int line;
};

/* Where a value was set: shown by check-config beside the value. */
struct cfg_origin {
    int sec;       /* enum section */
    size_t watch;  /* index into cfg->watches for SEC_WATCH */
    size_t key;    /* index into cfg_keys */
    char *where;   /* "FILE:LINE" */
    char *vars;    /* "${A}, ${B}" when the value came through the environment, else NULL */
};

struct parser {
    const char *file;
    char *dir; /* folder of the config file, for relative paths */
    int lineno; /* the position of the line being read; equal to its line in the config file
                   until an include */
    struct frame *stack; /* files left to read, the one being read last */
    size_t depth;
    char **srcs; /* every file opened, the config file first */
    size_t nsrcs;
    struct pos *pos; /* by position - 1 */
    size_t npos;
    bool in_watch; /* the last section header was a [watch:NAME] */
    const char *secret_key; /* the secret key whose value is being expanded, else NULL */
    struct pd_config *cfg;
    struct seen pw_seen, state_seen, daemon_seen, metrics_seen, cluster_seen;
    struct seen *watch_seen;                            /* parallel to cfg->watches */
    int pw_line, state_line, daemon_line, metrics_line; /* where sections start; 0: absent */
    int cluster_line;
    struct problem *problems;
    size_t nproblems;
    int nerrors;
    bool oom;
};

/* config.c: one problem of the file, at position LINE (0: the config file as a whole). */
void cfg_add_error(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* config_source.c: reads the next line across the config file and those it includes, handling
 * `include = PATTERN` lines. cfg_push_file: PATH to be read next (FP: already open), named by
 * the include line at position FROM. The file and line of a position; "line N" when in the
 * config file, else "FILE line N", in BUF. */
char *cfg_read_line(struct parser *p, char *buf, size_t cap);
int cfg_push_file(struct parser *p, const char *path, int from, FILE *fp);
void cfg_close_files(struct parser *p);
const char *cfg_pos_file(const struct parser *p, int pos);
int cfg_pos_line(const struct parser *p, int pos);
const char *cfg_where(const struct parser *p, int pos, char *buf, size_t len);
/* ${VAR} and ${VAR:-default} in VALUE, read at POS: the result in *OUT (free with
 * cfg_free_value), the names used in *VARS (NULL: none). 0, PD_ECONFIG (said) or PD_ENOMEM. */
int cfg_expand(struct parser *p, const char *value, int pos, char **out, char **vars);
void cfg_free_value(char *value);

/* config.c: the variables key NAME of section SEC (WATCH: its index) was set through, as
 * "${A}, ${B}"; NULL: none, or not set. */
const char *cfg_origin_vars(const struct pd_config *cfg, int sec, size_t watch, const char *name);
/* Where key K of section SEC (WATCH: its index) was set, as "FILE:LINE"; NULL: not set. */
const struct cfg_origin *cfg_origin_of(const struct pd_config *cfg, int sec, size_t watch,
                                       size_t key);

/* config_keys.c: the key NAME of SEC; the one NAME most likely misspells (NULL: none close). */
const struct key *cfg_find_key(enum section sec, const char *name);
/* config_check.c: the first line of secret file FILE (checked like password_file), or NULL
 * with the problem reported at LINE. */
char *cfg_read_secret_file(struct parser *p, const char *file, const char *key, int line);
/* config_check.c: a secret's file ST must not be readable by every user; false, with the error
 * (naming KEY, FILE and the chmod to run), when it is. */
struct stat;
bool cfg_secret_private(struct parser *p, int line, const char *key, const char *file,
                        const struct stat *st);
/* config_cluster.c: [cluster]'s checks and computed defaults (name, key_prefix). */
void cfg_check_cluster(struct parser *p);
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
