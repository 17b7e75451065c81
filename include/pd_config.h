/*
 * The configuration file: an INI file read with inih and checked against one table of keys
 * (src/app/config.c) that drives parsing, defaults, validation and `patchdrop check-config`.
 *
 * Relative paths in the file are taken relative to the folder of the file itself, so a config
 * can travel with its drop folders. Secrets (password, api_key) come from the file, from a
 * *_file key or from the environment (PATCHDROP_PASSWORD, PATCHDROP_API_KEY); they are held
 * here resolved and are wiped when the config is destroyed. Nothing in this module logs.
 *
 * Values may name environment variables, ${VAR} or ${VAR:-default} ($${ is a literal ${), and
 * `include = PATTERN` before a file's first section reads other files (a glob, sorted) as if
 * their sections were written there.
 */
#ifndef PD_CONFIG_H
#define PD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "pd_format.h" /* enum pd_split_format and its names */

enum pd_login_field { PD_LOGIN_EMAIL, PD_LOGIN_USERNAME };
enum pd_auth_mode { PD_AUTH_PASSWORD, PD_AUTH_API_KEY };
enum pd_update_method { PD_UPDATE_PUT, PD_UPDATE_PATCH };
/* What a watch does when a flow run it started ends other than success. */
enum pd_flow_failure { PD_FLOW_REPORT, PD_FLOW_FAIL, PD_FLOW_RETRY };

struct pd_patchworks {
    enum pd_auth_mode auth;
    char *email;
    char *password;      /* resolved secret, whatever its source */
    char *password_file; /* as configured, or NULL */
    char *api_key;       /* resolved secret, whatever its source */
    char *api_key_file;
    char *secret_source; /* words naming where the secret came from, never the secret */
    char *login_url;
    int login_field; /* enum pd_login_field */
    char *start_url;
    char *core_url;
    char *lookups_url;
    char *lookups_path;      /* the lookups list, under lookups_url */
    char *lookup_rows_path;  /* a lookup's rows: a template with {id} */
    char *lookup_value_path; /* one row: a template with {id} and {value_id} */
    int lookup_update_method; /* enum pd_update_method */
    uint64_t max_body;    /* bytes of one encoded request body */
    uint64_t rate_limit;  /* requests per rate_window (a minute), whole account */
    uint64_t rate_window_ms;
    uint64_t concurrency; /* requests in flight at most */
    uint64_t timeout_ms;  /* whole request */
    char *ca_file;
    bool tls_verify;
    uint64_t retry_base_ms;
    uint64_t retry_cap_ms;
    uint64_t max_retry_time_ms; /* 0: retry forever; default 5 days */
    uint64_t max_ambiguous;     /* sent, no answer: resent at most this often; 0: no limit */
    /* Following flow runs: templates with {id}, the paths appended to core_url. */
    char *flow_run_path;       /* default "/flow-runs/{id}" */
    char *flow_run_logs_path;  /* default "/flow-runs/{id}/flow-run-logs" */
    char *flow_run_retry_path; /* default "/flow-runs/{id}/retry" */
    char *dashboard_url;       /* the run's page for people, a URL with {id} */
    uint64_t follow_share;     /* percent of the account's rate polls may take, 1..100 */
};

struct pd_state_cfg {
    char *dir;
    bool group_commit; /* durable steps share syncfs rounds (pd_commit.h) */
};

struct pd_watch {
    char *name; /* the NAME of [watch:NAME] */
    int line;   /* where its section header is, for messages: a position of the config reader
                   (its line in the config file, counted on through included files) */
    char *path;
    char *flow_id;
    char *lookup_id;  /* instead of flow_id: CSV files are synced into this lookup */
    bool delete_missing; /* lookup_id: the file is the whole lookup; rows not in it go */
    char *version_id; /* NULL: Patchworks uses the deployed version */
    int split;        /* enum pd_split_format */
    char *json_array; /* JSON pointer of the array to split inside a top-level object */
    char *xml_record; /* element name of the records; NULL: the root's children */
    uint64_t header_lines;
    char *encoding; /* iconv name of the files' charset; NULL or "UTF-8": strict UTF-8 */
    uint64_t settle_ms;
    char *work_dir;    /* patchdrop's own folder for the watch: work/ and state/ */
    char *archive_dir;
    char *failed_dir;
    uint64_t archive_keep_ms;  /* delivered files go once archived this long; 0: kept forever */
    uint64_t receipt_keep_ms;  /* receipts, never before their file; 0: forever; default: the
                                  same as archive_keep */
    uint64_t archive_max_size; /* the archived files' total size; oldest go first; 0: no cap */
    uint64_t failed_keep_ms;   /* failed files and error files; 0: kept forever */
    uint64_t max_file_size;
    uint64_t max_expanded_size;   /* a compressed file's expansion, all its entries together */
    uint64_t max_expansion_ratio; /* expanded bytes per compressed byte, beyond 1 MiB */
    bool allow_hard_links;
    bool allow_sparse;
    uint64_t max_jobs; /* 0: automatic */
    uint64_t rescan_ms;  /* full rescan period */
    bool poll;           /* rescans only: for NFS/SMB where inotify sees nothing */
    bool recursive;      /* also watch subfolders */
    uint64_t min_age_ms; /* mtime must be at least this old */
    char *include;       /* space-separated globs of names to send */
    char *exclude;       /* space-separated globs of names never to send */
    char *done_marker;   /* e.g. "{name}.done": send only once the marker exists */
    bool ordered;        /* one file at a time, oldest first */
    uint64_t dedupe_ms;  /* 0: off; else skip content delivered to the flow within this window */
    uint64_t batch;      /* 0 or 1: off; else up to this many small files in one request */
    uint64_t batch_window_ms; /* how long a batch may wait for more files */
    bool follow;              /* poll each started run to its final status; lookups: no */
    uint64_t follow_first_ms; /* the first poll, after the start was acknowledged */
    uint64_t follow_cap_ms;   /* polls back off, doubling, up to this */
    uint64_t follow_timeout_ms; /* then the outcome is unknown */
    int on_flow_failure;        /* enum pd_flow_failure */
    uint64_t flow_retries;      /* on_flow_failure = retry: retries of one run at most */
};

struct pd_daemon_cfg {
    uint64_t shutdown_grace_ms; /* how long requests in flight may finish on SIGTERM */
    uint64_t stuck_warning_ms;  /* how often a file whose request keeps retrying is told */
    int log_format;             /* 0 text (key=value), 1 json: enum pd_log_format */
    int log_level;              /* enum pd_log_level: 0 debug, 1 info, 2 warn, 3 error */
};

struct pd_metrics_cfg {
    char *listen;                /* "127.0.0.1:9465"; NULL: no metrics endpoint */
    uint64_t unhealthy_after_ms; /* /healthz turns 503 once deliveries fail this long */
    char *token_file;            /* bearer token for /, /api/status, /metrics; NULL: none */
};

/* [cluster]: several hosts share one account through Redis (pd_cluster.h). */
struct pd_cluster_cfg {
    char *redis;             /* redis[s]://host:port/db or unix:/path; NULL: no cluster */
    char *password_file;     /* as configured, or NULL */
    char *password;          /* read from password_file (not a key); wiped on destroy */
    char *name;              /* this host; default the hostname */
    char *key_prefix;        /* default "patchdrop:" + the account's fingerprint + ":" */
    uint64_t expected_hosts; /* the fallback's share: rate_limit / expected_hosts */
    char *ca_file;           /* rediss://: the CAs that sign Redis's certificate; NULL: system's */
    char *tls_cert_file;     /* rediss://: this host's certificate (tls-auth-clients), or NULL */
    char *tls_key_file;      /* its private key */
    bool tls_verify;         /* no: Redis's certificate is NOT checked (loud) */
};

/* Wipes and frees the cluster's resolved password (config.c, when the config goes). */
void pd_cluster_cfg_wipe(struct pd_cluster_cfg *c);

struct cfg_origin;

struct pd_config {
    char *file; /* the file it was read from, as given */
    struct pd_patchworks pw;
    struct pd_state_cfg state;
    struct pd_daemon_cfg daemon;
    struct pd_metrics_cfg metrics;
    struct pd_cluster_cfg cluster;
    struct pd_watch *watches;
    size_t nwatches;
    struct cfg_origin *origins; /* where each value set was written (check-config shows it) */
    size_t norigins;
};

/*
 * Reads and validates FILE. On success *out is the config. On failure returns PD_ECONFIG (or
 * -errno when FILE cannot be read) and *errors holds every problem found, one per line, each
 * as "FILE:LINE: what is wrong and what is expected" (free it with free()).
 */
int pd_config_load(const char *file, struct pd_config **out, char **errors);

/* Frees a config and wipes its secrets; NULLs the caller's pointer. NULL is a no-op. */
void pd_config_destroy(struct pd_config **cfg);

/* Writes the effective configuration, defaults included, secrets masked, as a valid INI file. */
void pd_config_print(const struct pd_config *cfg, FILE *out);

/* The I-th key of the table and its section ("patchworks", "state", "daemon", "metrics",
 * "cluster", "watch"); NULL past the end. */
const char *pd_config_key_name(size_t i, const char **section);

/* The I-th key's help text and its default as written in a config (NULL: unset). */
const char *pd_config_key_help(size_t i, const char **def);

/* The watch named NAME, or NULL. */
const struct pd_watch *pd_config_watch(const struct pd_config *cfg, const char *name);

/* Value syntaxes, shared with the command line. Each returns 0 or PD_ECONFIG. */
int pd_parse_duration(const char *s, uint64_t *ms);  /* 500ms 2s 5m 1h 7d; plain number: s */
int pd_parse_size(const char *s, uint64_t *bytes);   /* 100, 8MB, 8 MiB, 64kB, 2GiB */
int pd_parse_bool(const char *s, bool *v);           /* yes/no true/false on/off 1/0 */
/*
 * "127.0.0.1:9465", "[::1]:9465" or "localhost:9465" (port 0: any free port). ADDR and LEN may
 * be NULL to only check the syntax.
 */
struct sockaddr_storage;
int pd_parse_listen(const char *s, struct sockaddr_storage *addr, unsigned *len);

#endif
