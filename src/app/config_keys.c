/*
 * The config file's keys: one table drives parsing, defaults, validation, printing and the
 * manual (patchdrop.conf(5) is generated from pd_config_key_name() and pd_config_key_help()),
 * and the lookups in it, down to guessing which key a misspelt name meant.
 */
#include "config_internal.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

static const char *const login_fields[] = {"email", "username", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const update_methods[] = {"put", "patch", NULL};
static const char *const flow_failures[] = {"report", "fail", "retry", NULL};

#define PW(field) offsetof(struct pd_patchworks, field)
#define ST(field) offsetof(struct pd_state_cfg, field)
#define WA(field) offsetof(struct pd_watch, field)
#define DA(field) offsetof(struct pd_daemon_cfg, field)
#define ME(field) offsetof(struct pd_metrics_cfg, field)
#define CL(field) offsetof(struct pd_cluster_cfg, field)
#define DAY_MS (86400000ULL)

/* Every key patchdrop reads. Add new keys here and nowhere else. */
const struct key cfg_keys[] = {
    {SEC_PATCHWORKS, "email", T_STRING, NULL, 0, 0, PW(email), NULL,
     "login name; with a password, patchdrop logs in for a bearer token"},
    {SEC_PATCHWORKS, "password", T_SECRET, NULL, 0, 0, PW(password), NULL,
     "or password_file, or the environment variable PATCHDROP_PASSWORD"},
    {SEC_PATCHWORKS, "password_file", T_PATH, NULL, 0, 0, PW(password_file), NULL,
     "file holding the password: readable by patchdrop's user, never by others (e.g. "
     "root:patchdrop mode 640)"},
    {SEC_PATCHWORKS, "api_key", T_SECRET, NULL, 0, 0, PW(api_key), NULL,
     "instead of email: an API key, or api_key_file, or PATCHDROP_API_KEY"},
    {SEC_PATCHWORKS, "api_key_file", T_PATH, NULL, 0, 0, PW(api_key_file), NULL,
     "file holding the API key: readable by patchdrop's user, never by others (e.g. "
     "root:patchdrop mode 640)"},
    {SEC_PATCHWORKS, "login_url", T_URL, "https://svc-fabric.pwks.co/api/v1/login", 0, 0,
     PW(login_url), NULL, "where email and password are exchanged for a token"},
    {SEC_PATCHWORKS, "login_field", T_ENUM, "email", 0, 0, PW(login_field), login_fields,
     "email, or username for the API reference's login form"},
    {SEC_PATCHWORKS, "start_url", T_URL, "https://start.wearepatchworks.com/api/v1", 0, 0,
     PW(start_url), NULL, "flows are started at <start_url>/flows/<flow>/start/<version>"},
    {SEC_PATCHWORKS, "core_url", T_URL, "https://core.wearepatchworks.com/api/v1", 0, 0,
     PW(core_url), NULL, "flow runs are read at <core_url>/flow-runs/<id>"},
    {SEC_PATCHWORKS, "lookups_url", T_URL, "https://app.wearepatchworks.com/core-main/api/v1", 0, 0,
     PW(lookups_url), NULL, "cross-reference lookups"},
    {SEC_PATCHWORKS, "lookups_path", T_STRING, "/cross-reference-lookups", 0, 0, PW(lookups_path),
     NULL, "the lookups list under lookups_url; one lookup is <path>/<id>"},
    {SEC_PATCHWORKS, "lookup_rows_path", T_STRING, "/cross-reference-lookups/{id}/values", 0, 0,
     PW(lookup_rows_path), NULL, "a lookup's rows under lookups_url; {id} is the lookup"},
    {SEC_PATCHWORKS, "lookup_value_path", T_STRING,
     "/cross-reference-lookups/{id}/values/{value_id}", 0, 0, PW(lookup_value_path), NULL,
     "one row of a lookup under lookups_url; {id} and {value_id}"},
    {SEC_PATCHWORKS, "lookup_update_method", T_ENUM, "put", 0, 0, PW(lookup_update_method),
     update_methods, "put or patch: the HTTP method that changes a row"},
    {SEC_PATCHWORKS, "max_body", T_SIZE, "8000000", 256, 1000000000, PW(max_body), NULL,
     "largest request body in bytes, after JSON escaping"},
    {SEC_PATCHWORKS, "rate_limit", T_UINT, "240", 1, 1000000, PW(rate_limit), NULL,
     "requests per rate_window (a minute) for the whole account"},
    {SEC_PATCHWORKS, "rate_window", T_DURATION, "1m", 1000, DAY_MS, PW(rate_window_ms), NULL,
     "the window rate_limit counts over; keep 1m for Patchworks"},
    {SEC_PATCHWORKS, "concurrency", T_UINT, "4", 1, 64, PW(concurrency), NULL,
     "requests in flight at most"},
    {SEC_PATCHWORKS, "timeout", T_DURATION, "60s", 1000, DAY_MS, PW(timeout_ms), NULL,
     "longest time one request may take"},
    {SEC_PATCHWORKS, "ca_file", T_PATH, NULL, 0, 0, PW(ca_file), NULL,
     "PEM file of certificate authorities to trust instead of the system's"},
    {SEC_PATCHWORKS, "tls_verify", T_BOOL, "yes", 0, 0, PW(tls_verify), NULL,
     "no turns off certificate checks: only for a test server you own"},
    {SEC_PATCHWORKS, "retry_base", T_DURATION, "1s", 1, DAY_MS, PW(retry_base_ms), NULL,
     "first retry delay; doubles each attempt, with full jitter"},
    {SEC_PATCHWORKS, "retry_cap", T_DURATION, "5m", 1, DAY_MS, PW(retry_cap_ms), NULL,
     "longest delay between retries"},
    {SEC_PATCHWORKS, "max_retry_time", T_DURATION, "5d", 0, 365 * DAY_MS, PW(max_retry_time_ms),
     NULL, "give a file up (failed folder) after retrying one request this long, as a mail "
           "queue gives up after 5 days; 0 retries forever"},
    {SEC_PATCHWORKS, "max_ambiguous_retries", T_UINT, "3", 0, 1000, PW(max_ambiguous),
     NULL, "a request whose body was sent but got no answer (a timeout) may still have "
           "started a flow run: sent again at most this often, then the file goes to the "
           "failed folder naming the attempts; 0: no limit"},
    {SEC_PATCHWORKS, "flow_run_path", T_STRING, "/flow-runs/{id}", 0, 0, PW(flow_run_path), NULL,
     "a flow run under core_url; {id} is the run"},
    {SEC_PATCHWORKS, "flow_run_logs_path", T_STRING, "/flow-runs/{id}/flow-run-logs", 0, 0,
     PW(flow_run_logs_path), NULL, "a flow run's log entries under core_url, paged; {id}"},
    {SEC_PATCHWORKS, "flow_run_retry_path", T_STRING, "/flow-runs/{id}/retry", 0, 0,
     PW(flow_run_retry_path), NULL, "where a flow run is retried (POST) under core_url; {id}"},
    {SEC_PATCHWORKS, "dashboard_url", T_URL, "https://app.wearepatchworks.com/flow-run-logs/{id}",
     0, 0, PW(dashboard_url), NULL,
     "a flow run's page in the Patchworks dashboard, for receipts and messages; {id}"},
    {SEC_PATCHWORKS, "follow_share", T_UINT, "25", 1, 100, PW(follow_share), NULL,
     "percent of rate_limit that polls of flow runs may take at most; deliveries go first"},

    {SEC_STATE, "dir", T_PATH, "/var/lib/patchdrop", 0, 0, ST(dir), NULL,
     "token cache and delivery state"},
    {SEC_STATE, "group_commit", T_BOOL, "no", 0, 0, ST(group_commit), NULL,
     "durable steps of files handled at once share one syncfs of each file system"},

    {SEC_DAEMON, "stuck_warning", T_DURATION, "1d", 1000, 365 * DAY_MS, DA(stuck_warning_ms),
     NULL, "a file whose request keeps being retried gets a warning line this often"},
    {SEC_DAEMON, "shutdown_grace", T_DURATION, "30s", 0, DAY_MS, DA(shutdown_grace_ms), NULL,
     "on SIGTERM, how long requests in flight may finish before patchdrop exits"},
    {SEC_DAEMON, "log_format", T_ENUM, "text", 0, 0, DA(log_format), log_formats,
     "text (key=value) or json (one object per line)"},
    {SEC_DAEMON, "log_level", T_ENUM, "info", 0, 0, DA(log_level), log_levels,
     "least important level logged: debug info warn error"},

    {SEC_METRICS, "listen", T_LISTEN, NULL, 0, 0, ME(listen), NULL,
     "host:port of the /metrics and /healthz endpoint; unset: off"},
    {SEC_METRICS, "unhealthy_after", T_DURATION, "10m", 1000, 365 * DAY_MS, ME(unhealthy_after_ms),
     NULL, "/healthz answers 503 once deliveries fail this long"},
    {SEC_METRICS, "token_file", T_PATH, NULL, 0, 0, ME(token_file), NULL,
     "file holding a bearer token that /, /api/status and /metrics then ask for (read at "
     "start); needed when listen is not a loopback address"},

    {SEC_CLUSTER, "redis", T_STRING, NULL, 0, 0, CL(redis), NULL,
     "several hosts, one account: redis://HOST:PORT/DB, rediss://HOST:PORT/DB (TLS) or "
     "unix:/PATH of the Redis they share "
     "(rate limit, fallback); unset: this host alone, no Redis"},
    {SEC_CLUSTER, "password_file", T_PATH, NULL, 0, 0, CL(password_file), NULL,
     "file holding the Redis password (AUTH), mode 640 like [patchworks] password_file; with "
     "an ACL user, write USER PASSWORD on its first line"},
    {SEC_CLUSTER, "name", T_STRING, NULL, 0, 0, CL(name), NULL,
     "this host's name among the others; default: the hostname"},
    {SEC_CLUSTER, "key_prefix", T_STRING, NULL, 0, 0, CL(key_prefix), NULL,
     "what every Redis key begins with; default: patchdrop: and a short hash of the account's "
     "login or API key (never the secret)"},
    {SEC_CLUSTER, "expected_hosts", T_UINT, "2", 1, 1000, CL(expected_hosts), NULL,
     "while Redis is away each host sends at most rate_limit / expected_hosts per rate_window"},
    {SEC_CLUSTER, "ca_file", T_PATH, NULL, 0, 0, CL(ca_file), NULL,
     "rediss://: PEM file of the certificate authorities that sign Redis's certificate (its "
     "tls-ca-cert-file); unset: the system's"},
    {SEC_CLUSTER, "tls_cert_file", T_PATH, NULL, 0, 0, CL(tls_cert_file), NULL,
     "rediss://: this host's certificate (PEM) when Redis asks for one (tls-auth-clients)"},
    {SEC_CLUSTER, "tls_key_file", T_PATH, NULL, 0, 0, CL(tls_key_file), NULL,
     "rediss://: the private key (PEM) of tls_cert_file, mode 640 like password_file"},
    {SEC_CLUSTER, "tls_verify", T_BOOL, "yes", 0, 0, CL(tls_verify), NULL,
     "rediss://: no turns off the check of Redis's certificate: only for a test server you own"},

    {SEC_WATCH, "path", T_PATH, NULL, 0, 0, WA(path), NULL, "the drop folder (required)"},
    {SEC_WATCH, "flow_id", T_ID, NULL, 0, 0, WA(flow_id), NULL,
     "the process flow to start (this or lookup_id is required)"},
    {SEC_WATCH, "lookup_id", T_ID, NULL, 0, 0, WA(lookup_id), NULL,
     "instead of flow_id: CSV files (left_value,right_value) are synced into this lookup"},
    {SEC_WATCH, "delete_missing", T_BOOL, "no", 0, 0, WA(delete_missing), NULL,
     "with lookup_id: yes also deletes rows whose left value is not in the file"},
    {SEC_WATCH, "version_id", T_ID, NULL, 0, 0, WA(version_id), NULL,
     "optional: without it Patchworks uses the deployed version"},
    {SEC_WATCH, "split", T_FORMAT, "auto", 0, 0, WA(split), NULL,
     "how to cut big files:" /* the format names follow, see pd_config_key_help() */},
    {SEC_WATCH, "json_array", T_STRING, NULL, 0, 0, WA(json_array), NULL,
     "JSON pointer of the array to split inside a top-level object, e.g. /orders"},
    {SEC_WATCH, "xml_record", T_STRING, NULL, 0, 0, WA(xml_record), NULL,
     "element name of XML records; default: the root's children"},
    {SEC_WATCH, "header_lines", T_UINT, "1", 0, 100, WA(header_lines), NULL,
     "CSV header lines repeated at the top of every chunk"},
    {SEC_WATCH, "encoding", T_STRING, "auto", 0, 0, WA(encoding), NULL,
     "the files' charset: auto (byte-order mark, XML declaration, else UTF-8) or iconv name"},
    {SEC_WATCH, "settle", T_DURATION, "2s", 0, DAY_MS, WA(settle_ms), NULL,
     "a file is ready once unchanged this long"},
    {SEC_WATCH, "work_dir", T_PATH, NULL, 0, 0, WA(work_dir), NULL,
     "patchdrop's own folder for the watch (work/, state/): outside the drop folder, on its "
     "file system, owned by patchdrop's user, mode 700; default <state dir>/watches/<name>, or "
     "<parent of path>/.patchdrop-<folder name> when the state dir is on another file system"},
    {SEC_WATCH, "archive_dir", T_PATH, NULL, 0, 0, WA(archive_dir), NULL,
     "delivered files and receipts, outside the drop folder; default <work_dir>/archive"},
    {SEC_WATCH, "failed_dir", T_PATH, NULL, 0, 0, WA(failed_dir), NULL,
     "rejected files and their reasons, outside the drop folder; default <work_dir>/failed"},
    {SEC_WATCH, "archive_keep", T_DURATION, "30d", 0, 36500 * DAY_MS, WA(archive_keep_ms), NULL,
     "delivered files (and their receipts) are removed once archived this long, counted from "
     "the receipt's time; 0 keeps them forever"},
    {SEC_WATCH, "receipt_keep", T_DURATION, NULL, 0, 36500 * DAY_MS, WA(receipt_keep_ms), NULL,
     "receipts are kept this long, even when archive_max_size removed their file earlier; at "
     "least archive_keep (a receipt may outlive its file, never the reverse); 0 keeps them "
     "forever; unset: the same as archive_keep"},
    {SEC_WATCH, "archive_max_size", T_SIZE, "0", 0, UINT64_MAX / 2, WA(archive_max_size), NULL,
     "the archived files' total size; over it the oldest are removed first (receipts stay "
     "for receipt_keep and are not counted); 0: no cap"},
    {SEC_WATCH, "failed_keep", T_DURATION, "90d", 0, 36500 * DAY_MS, WA(failed_keep_ms), NULL,
     "rejected files and their .error.json (and those retry kept in history/) are removed "
     "once failed this long (longer than "
     "archive_keep: a failure waits for a person); 0 keeps them forever"},
    {SEC_WATCH, "max_file_size", T_SIZE, "10GB", 1, UINT64_MAX / 2, WA(max_file_size), NULL,
     "a larger file goes to the failed folder unread"},
    {SEC_WATCH, "max_expanded_size", T_SIZE, "10GB", 1, UINT64_MAX / 2, WA(max_expanded_size),
     NULL,
     "a compressed file (.gz, .zst, .zip) may expand to at most this many bytes, all its "
     "entries together; past it the expansion stops and the file goes to the failed folder"},
    {SEC_WATCH, "max_expansion_ratio", T_UINT, "100", 1, 1000000, WA(max_expansion_ratio), NULL,
     "a compressed file may expand to at most this many times its own size (checked once 1 MiB "
     "is expanded, so small files always pass); stops zip bombs"},
    {SEC_WATCH, "allow_hard_links", T_BOOL, "no", 0, 0, WA(allow_hard_links), NULL,
     "yes: send files that have other names too (no: they go to the failed folder, since a "
     "partner could link a file it may not read)"},
    {SEC_WATCH, "allow_sparse", T_BOOL, "no", 0, 0, WA(allow_sparse), NULL,
     "yes: send sparse files (no: a file with far fewer blocks on disk than its size goes to "
     "the failed folder unread)"},
    {SEC_WATCH, "max_jobs", T_UINT, "0", 0, 10000, WA(max_jobs), NULL,
     "files of this watch handled at once; 0: concurrency - 1 when there are several "
     "watches, so one partner cannot take every request slot"},
    {SEC_WATCH, "rescan", T_DURATION, "30s", 100, DAY_MS, WA(rescan_ms), NULL,
     "full rescan period; inotify only makes pickup faster"},
    {SEC_WATCH, "poll", T_BOOL, "no", 0, 0, WA(poll), NULL,
     "yes: rescans only, for NFS/SMB mounts where inotify sees nothing"},
    {SEC_WATCH, "recursive", T_BOOL, "no", 0, 0, WA(recursive), NULL, "also watch subfolders"},
    {SEC_WATCH, "min_age", T_DURATION, "0", 0, 365 * DAY_MS, WA(min_age_ms), NULL,
     "a file's mtime must be at least this old"},
    {SEC_WATCH, "include", T_STRING, "*", 0, 0, WA(include), NULL,
     "globs of names to send, separated by spaces, commas or semicolons (*.xml, *.csv); a ; "
     "after a blank starts a comment"},
    {SEC_WATCH, "exclude", T_STRING, "*.part *.filepart *.tmp .* ~*", 0, 0, WA(exclude), NULL,
     "globs of names never to send (uploads in progress), separated like include's"},
    {SEC_WATCH, "done_marker", T_STRING, NULL, 0, 0, WA(done_marker), NULL,
     "send a file only once its marker exists, e.g. {name}.done; removed after delivery"},
    {SEC_WATCH, "ordered", T_BOOL, "no", 0, 0, WA(ordered), NULL,
     "yes: one file at a time, oldest first, for flows that need order"},
    {SEC_WATCH, "dedupe", T_DURATION, "0", 0, 365 * DAY_MS, WA(dedupe_ms), NULL,
     "skip a file whose content was delivered to the same flow within this window; 0: off"},
    {SEC_WATCH, "batch", T_UINT, "0", 0, 1000, WA(batch), NULL,
     "pack up to this many small files into one request where the format allows; 0: off"},
    {SEC_WATCH, "batch_window", T_DURATION, "2s", 0, 3600000, WA(batch_window_ms), NULL,
     "how long a batch waits for more files before it goes"},
    {SEC_WATCH, "follow", T_BOOL, "yes", 0, 0, WA(follow), NULL,
     "poll each flow run a file started until it succeeds or fails, and record the outcome in "
     "the receipt; lookup watches start no runs and ignore it"},
    {SEC_WATCH, "follow_first", T_DURATION, "5s", 100, DAY_MS, WA(follow_first_ms), NULL,
     "the first poll of a run, this long after its start was acknowledged"},
    {SEC_WATCH, "follow_cap", T_DURATION, "5m", 100, DAY_MS, WA(follow_cap_ms), NULL,
     "polls back off, doubling, up to this long apart; at least follow_first"},
    {SEC_WATCH, "follow_timeout", T_DURATION, "24h", 100, 365 * DAY_MS, WA(follow_timeout_ms),
     NULL, "a run still not final this long after its start has the outcome unknown; at least "
           "follow_first"},
    {SEC_WATCH, "on_flow_failure", T_ENUM, "report", 0, 0, WA(on_flow_failure), flow_failures,
     "a run that failed, stopped or partly succeeded: report (a warning line), fail (the file "
     "goes to the failed folder with the run's log) or retry (flow_retries times, then fail)"},
    {SEC_WATCH, "flow_retries", T_UINT, "2", 0, 10, WA(flow_retries), NULL,
     "on_flow_failure = retry: how often one run is retried before the file fails"},
};

const size_t cfg_nkeys = sizeof(cfg_keys) / sizeof(cfg_keys[0]);
_Static_assert(sizeof(cfg_keys) / sizeof(cfg_keys[0]) <= CFG_MAX_KEYS,
               "more keys than struct seen holds: raise CFG_MAX_KEYS in config_internal.h");

const struct key *cfg_find_key(enum section sec, const char *name)
{
    for (size_t i = 0; i < cfg_nkeys; i++)
        if (cfg_keys[i].section == sec && !strcmp(cfg_keys[i].name, name))
            return &cfg_keys[i];
    return NULL;
}

/*
 * Edit distance between A and B counting a swap of two neighbours as one edit (optimal string
 * alignment): "emial" is one edit from "email". Names longer than a config line never match.
 */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t rows[3][LINE_MAX_INI + 1];
    size_t *prev2 = rows[0], *prev = rows[1], *cur = rows[2];

    if (la > LINE_MAX_INI || lb > LINE_MAX_INI)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cost = a[i - 1] != b[j - 1];
            size_t best = prev[j - 1] + cost;
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                prev2[j - 2] + 1 < best)
                best = prev2[j - 2] + 1;
            cur[j] = best;
        }
        size_t *t = prev2;
        prev2 = prev;
        prev = cur;
        cur = t;
    }
    return prev[lb];
}

/*
 * The key of SEC that NAME most likely misspells: at most two edits away (and not a rewrite of
 * a short name), or else one of the two a prefix of the other (timeout_ms, retry). NULL when
 * nothing is that close: a far-fetched guess misleads more than none.
 */
const struct key *cfg_closest_key(enum section sec, const char *name)
{
    const struct key *best = NULL, *prefix = NULL;
    size_t best_d = 3, n = strlen(name);

    for (size_t i = 0; i < cfg_nkeys; i++) {
        const struct key *k = &cfg_keys[i];
        size_t kn = strlen(k->name), shorter = n < kn ? n : kn;
        if (k->section != sec)
            continue;
        size_t d = edit_distance(name, k->name);
        if (d < best_d && d < shorter) {
            best = k;
            best_d = d;
        }
        if (!prefix && shorter >= 4 && !strncmp(name, k->name, shorter))
            prefix = k;
    }
    return best ? best : prefix;
}

const char *const cfg_section_names[] = {"patchworks", "state",   "daemon",
                                         "metrics",    "cluster", "watch"};

const char *pd_config_key_name(size_t i, const char **section)
{
    if (i >= cfg_nkeys)
        return NULL;
    *section = cfg_section_names[cfg_keys[i].section];
    return cfg_keys[i].name;
}

const char *pd_config_key_help(size_t i, const char **def)
{
    if (i >= cfg_nkeys)
        return NULL;
    *def = cfg_keys[i].def;
    if (cfg_keys[i].type == T_FORMAT) {
        /* The registry's names, so a new format shows in the help and the manual by itself. */
        static char help[256];
        size_t n = (size_t)snprintf(help, sizeof(help), "%s ", cfg_keys[i].help);
        if (n < sizeof(help))
            pd_format_join_names(" ", help + n, sizeof(help) - n);
        return help;
    }
    return cfg_keys[i].help;
}
