/*
 * The configuration file: one table of keys drives parsing, defaults, validation and printing.
 *
 * The file is INI, read with inih through our own line reader so that we know the line number
 * of every key (the packaged inih does not report it), catch lines longer than inih's buffer,
 * and strip leading blanks (inih would otherwise glue an indented line to the previous value).
 * Every problem is collected, not just the first, as "FILE:LINE: what is wrong and what is
 * expected", so one run of `patchdrop check-config` shows them all.
 */
#include "pd_config.h"
#include "pd_error.h"
#include "pd_ready.h"

#include <ini.h>

#include <arpa/inet.h>
#include <sys/socket.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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

static const char *const login_fields[] = {"email", "username", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const update_methods[] = {"put", "patch", NULL};

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

#define PW(field) offsetof(struct pd_patchworks, field)
#define ST(field) offsetof(struct pd_state_cfg, field)
#define WA(field) offsetof(struct pd_watch, field)
#define DA(field) offsetof(struct pd_daemon_cfg, field)
#define ME(field) offsetof(struct pd_metrics_cfg, field)
#define DAY_MS (86400000ULL)

/* Every key patchdrop reads. Add new keys here and nowhere else. */
static const struct key keys[] = {
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

    {SEC_STATE, "dir", T_PATH, "/var/lib/patchdrop", 0, 0, ST(dir), NULL,
     "token cache and delivery state"},

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
     "rejected files and their .error.json are removed once failed this long (longer than "
     "archive_keep: a failure waits for a person); 0 keeps them forever"},
    {SEC_WATCH, "max_file_size", T_SIZE, "10GB", 1, UINT64_MAX / 2, WA(max_file_size), NULL,
     "a larger file goes to the failed folder unread"},
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
};

#define NKEYS (sizeof(keys) / sizeof(keys[0]))
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
 */
struct seen {
    int line[NKEYS];
    bool bad[NKEYS];
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

static void add_error(struct parser *p, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_error(struct parser *p, int line, const char *fmt, ...)
{
    struct problem *grown;
    va_list ap;

    p->nerrors++;
    if (p->nproblems >= MAX_PROBLEMS)
        return;
    grown = realloc(p->problems, (p->nproblems + 1) * sizeof(*grown));
    if (!grown) {
        p->oom = true;
        return;
    }
    p->problems = grown;
    grown[p->nproblems].line = line;
    grown[p->nproblems].seq = p->nproblems;
    va_start(ap, fmt);
    vsnprintf(grown[p->nproblems].msg, sizeof(grown[p->nproblems].msg), fmt, ap);
    va_end(ap);
    p->nproblems++;
}

static int problem_cmp(const void *a, const void *b)
{
    const struct problem *x = a, *y = b;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->seq < y->seq ? -1 : (x->seq > y->seq);
}

/* All problems, in the order of their lines, one "FILE:LINE: message" per line. */
static char *format_problems(struct parser *p)
{
    char *out = NULL;
    size_t len = 0;
    FILE *mem = open_memstream(&out, &len);

    if (!mem)
        return NULL;
    qsort(p->problems, p->nproblems, sizeof(*p->problems), problem_cmp);
    for (size_t i = 0; i < p->nproblems; i++) {
        if (p->problems[i].line > 0)
            fprintf(mem, "%s:%d: %s\n", p->file, p->problems[i].line, p->problems[i].msg);
        else
            fprintf(mem, "%s: %s\n", p->file, p->problems[i].msg);
    }
    if (p->nerrors > (int)p->nproblems)
        fprintf(mem, "%s: ... and %d more problems\n", p->file, p->nerrors - (int)p->nproblems);
    fclose(mem);
    return out;
}

/* ---- value syntaxes ---------------------------------------------------------------------- */

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

int pd_parse_duration(const char *s, uint64_t *ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"d", 86400000}, {"", 1000}};
    double num;
    const char *unit;

    if (split_number(s, &num, &unit))
        return PD_ECONFIG;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (unit_is(unit, units[i].unit)) {
            double v = num * units[i].ms;
            if (v > (double)UINT64_MAX / 2)
                return PD_ECONFIG;
            *ms = (uint64_t)(v + 0.5);
            return 0;
        }
    }
    return PD_ECONFIG;
}

int pd_parse_size(const char *s, uint64_t *bytes)
{
    static const struct {
        const char *unit;
        double mult;
    } units[] = {{"", 1},         {"B", 1},           {"kB", 1e3},
                 {"KB", 1e3},     {"MB", 1e6},        {"GB", 1e9},
                 {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}};
    double num;
    const char *unit;

    if (split_number(s, &num, &unit))
        return PD_ECONFIG;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (unit_is(unit, units[i].unit)) {
            double v = num * units[i].mult;
            if (v > 9.0e18 || v != (double)(uint64_t)v)
                return PD_ECONFIG; /* too big, or a fraction of a byte */
            *bytes = (uint64_t)v;
            return 0;
        }
    }
    return PD_ECONFIG;
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

static void format_duration(uint64_t ms, char *buf, size_t len)
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
        format_duration(v, buf, len);
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

/* Converts VALUE for KEY and stores it at BASE + key->offset. Returns 0 or PD_ECONFIG. */
static int set_value(struct parser *p, const struct key *k, void *base, const char *value, int line)
{
    char *field = (char *)base + k->offset;
    uint64_t u = 0;
    bool b;
    int e;
    char choices[256];

    switch (k->type) {
    case T_STRING:
    case T_SECRET:
    case T_URL:
    case T_ID:
    case T_LISTEN:
    case T_PATH: {
        char *copy;
        if (!*value) {
            add_error(p, line, "%s is empty; give a value or remove the line", k->name);
            return PD_ECONFIG;
        }
        if (k->type == T_URL && strncmp(value, "https://", 8) && strncmp(value, "http://", 7)) {
            add_error(p, line, "%s must be an http:// or https:// URL, not '%s'", k->name, value);
            return PD_ECONFIG;
        }
        if (k->type == T_LISTEN && pd_parse_listen(value, NULL, NULL)) {
            add_error(p, line,
                      "%s must be an address and port like 127.0.0.1:9465, [::1]:9465 or "
                      "localhost:9465, not '%s'",
                      k->name, value);
            return PD_ECONFIG;
        }
        if (k->type == T_ID) {
            for (const char *c = value; *c; c++) {
                if (!isalnum((unsigned char)*c) && *c != '-' && *c != '_') {
                    add_error(p, line,
                              "%s '%s' has a character other than letters, digits, '-' and '_'; "
                              "give the id as Patchworks shows it",
                              k->name, value);
                    return PD_ECONFIG;
                }
            }
        }
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
    case T_UINT: {
        char *end;
        errno = 0;
        if (!isdigit((unsigned char)value[0]))
            goto bad_number;
        u = strtoull(value, &end, 10);
        if (errno || *end)
            goto bad_number;
        break;
    bad_number:
        add_error(p, line, "%s must be a whole number from %" PRIu64 " to %" PRIu64 ", not '%s'",
                  k->name, k->min, k->max, value);
        return PD_ECONFIG;
    }
    case T_SIZE:
        if (pd_parse_size(value, &u)) {
            add_error(p, line,
                      "%s must be a size in bytes, like 8000000, 8MB or 7.5MiB (kB/MB/GB are "
                      "powers of 1000, KiB/MiB/GiB of 1024), not '%s'",
                      k->name, value);
            return PD_ECONFIG;
        }
        break;
    case T_DURATION:
        if (pd_parse_duration(value, &u)) {
            add_error(p, line, "%s must be a duration like 500ms, 2s, 5m, 1h or 7d, not '%s'",
                      k->name, value);
            return PD_ECONFIG;
        }
        break;
    case T_BOOL:
        if (pd_parse_bool(value, &b)) {
            add_error(p, line, "%s must be yes or no, not '%s'", k->name, value);
            return PD_ECONFIG;
        }
        *(bool *)(void *)field = b;
        return 0;
    case T_ENUM:
        if ((e = 0, parse_enum(value, k->choices, &e))) {
            join_choices(k->choices, choices, sizeof(choices));
            add_error(p, line, "%s must be one of %s, not '%s'", k->name, choices, value);
            return PD_ECONFIG;
        }
        *(int *)(void *)field = e;
        return 0;
    case T_FORMAT:
        if ((e = 0, pd_format_parse(value, &e))) {
            pd_format_join_names(", ", choices, sizeof(choices));
            add_error(p, line, "%s must be one of %s, not '%s'", k->name, choices, value);
            return PD_ECONFIG;
        }
        *(int *)(void *)field = e;
        return 0;
    }
    /* Numbers: check the key's bounds, shown in the key's own unit. */
    if (u < k->min || u > k->max) {
        char lo[32], hi[32];
        format_value(k->type, k->min, lo, sizeof(lo));
        format_value(k->type, k->max, hi, sizeof(hi));
        if (k->max >= UINT64_MAX / 2)
            add_error(p, line, "%s = %s is out of range: at least %s", k->name, value, lo);
        else
            add_error(p, line, "%s = %s is out of range: from %s to %s", k->name, value, lo, hi);
        return PD_ECONFIG;
    }
    *(uint64_t *)(void *)field = u;
    return 0;
}

static const struct key *find_key(enum section sec, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (keys[i].section == sec && !strcmp(keys[i].name, name))
            return &keys[i];
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
static const struct key *closest_key(enum section sec, const char *name)
{
    const struct key *best = NULL, *prefix = NULL;
    size_t best_d = 3, n = strlen(name);

    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
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

static const char *const section_names[] = {"patchworks", "state", "daemon", "metrics", "watch"};

/* Says what is wrong with NAME, a key SEC does not have, and what was probably meant. */
static void unknown_key(struct parser *p, enum section sec, const char *section, const char *name)
{
    const struct key *k;
    char known[256];
    size_t used = 0, count = 0;

    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].section != sec && !strcmp(keys[i].name, name)) {
            add_error(p, p->lineno, "unknown key '%s' in [%s]; %s belongs in [%s%s]", name, section,
                      name, section_names[keys[i].section],
                      keys[i].section == SEC_WATCH ? ":NAME" : "");
            return;
        }
    }
    if ((k = closest_key(sec, name))) {
        add_error(p, p->lineno, "unknown key '%s' in [%s]; did you mean `%s`?", name, section,
                  k->name);
        return;
    }
    known[0] = '\0';
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].section != sec)
            continue;
        if (++count <= 3 && used < sizeof(known))
            used += (size_t)snprintf(known + used, sizeof(known) - used, "%s%s", used ? ", " : "",
                                     keys[i].name);
    }
    if (count <= 3)
        add_error(p, p->lineno, "unknown key '%s' in [%s]; the keys there are %s", name, section,
                  known);
    else
        add_error(p, p->lineno,
                  "unknown key '%s' in [%s]; patchdrop.conf(5) and the sample patchdrop.conf "
                  "list the keys there",
                  name, section);
}

static int section_of(const char *name, const char **watch_name)
{
    if (!strcmp(name, "patchworks"))
        return SEC_PATCHWORKS;
    if (!strcmp(name, "state"))
        return SEC_STATE;
    if (!strcmp(name, "daemon"))
        return SEC_DAEMON;
    if (!strcmp(name, "metrics"))
        return SEC_METRICS;
    if (!strncmp(name, "watch:", 6)) {
        *watch_name = name + 6;
        return SEC_WATCH;
    }
    return -1;
}

static struct pd_watch *add_watch(struct parser *p, const char *name, int line)
{
    struct pd_config *cfg = p->cfg;
    struct pd_watch *w = realloc(cfg->watches, (cfg->nwatches + 1) * sizeof(*w));
    struct seen *s;

    if (!w)
        goto oom;
    cfg->watches = w;
    s = realloc(p->watch_seen, (cfg->nwatches + 1) * sizeof(*s));
    if (!s)
        goto oom;
    p->watch_seen = s;
    w = &cfg->watches[cfg->nwatches];
    memset(w, 0, sizeof(*w));
    memset(&s[cfg->nwatches], 0, sizeof(*s));
    w->line = line;
    w->name = strdup(name);
    if (!w->name)
        goto oom;
    cfg->nwatches++;
    return w;
oom:
    p->oom = true;
    return NULL;
}

/*
 * Our line reader for inih: counts lines, refuses lines longer than inih's buffer, strips
 * leading blanks, and records every section header (inih reports only sections with keys).
 */
static char *read_line(char *buf, int size, void *stream)
{
    struct parser *p = stream;
    int c;
    size_t n = 0, cap = (size_t)size;
    bool too_long = false, leading = true, any = false;

    if (cap > LINE_MAX_INI)
        cap = LINE_MAX_INI;
    while ((c = fgetc(p->fp)) != EOF) {
        any = true;
        if (c == '\n')
            break;
        if (leading && (c == ' ' || c == '\t'))
            continue;
        leading = false;
        if (n + 2 < cap)
            buf[n++] = (char)c;
        else
            too_long = true;
    }
    if (!any)
        return NULL;
    p->lineno++;
    if (n && buf[n - 1] == '\r')
        n--;
    buf[n] = '\0';
    if (too_long) {
        add_error(p, p->lineno,
                  "line is longer than %d characters; shorten it (a long secret can go in "
                  "password_file or api_key_file)",
                  LINE_MAX_INI - 2);
        buf[0] = '\0'; /* skip it */
    } else if (buf[0] == '[') {
        char *end = strchr(buf, ']');
        char name[LINE_MAX_INI];
        const char *wname = NULL;
        int sec;

        if (end) {
            size_t len = (size_t)(end - buf - 1);
            memcpy(name, buf + 1, len);
            name[len] = '\0';
            sec = section_of(name, &wname);
            if (sec < 0) {
                add_error(p, p->lineno,
                          "unknown section [%s]; expected [patchworks], [state], [daemon], "
                          "[metrics] or [watch:NAME]",
                          name);
            } else if (sec != SEC_WATCH) {
                int *first = sec == SEC_PATCHWORKS ? &p->pw_line
                             : sec == SEC_STATE    ? &p->state_line
                             : sec == SEC_METRICS  ? &p->metrics_line
                                                   : &p->daemon_line;
                if (*first)
                    add_error(p, p->lineno,
                              "section [%s] appears again (first at line %d); keep one", name,
                              *first);
                else
                    *first = p->lineno;
            } else if (!*wname) {
                add_error(p, p->lineno, "[watch:] needs a name, like [watch:orders]");
            } else {
                const struct pd_watch *old = pd_config_watch(p->cfg, wname);
                if (old)
                    add_error(p, p->lineno,
                              "section [watch:%s] appears again (first at line %d); give each "
                              "drop folder its own name",
                              wname, old->line);
                else
                    add_watch(p, wname, p->lineno);
            }
        }
    }
    return buf;
}

static int on_ini_value(void *user, const char *section, const char *name, const char *value)
{
    struct parser *p = user;
    const char *wname = NULL;
    int sec = section_of(section, &wname);
    const struct key *k;
    struct seen *seen;
    void *base;

    if (sec < 0) {
        if (!*section)
            add_error(p, p->lineno,
                      "'%s' is outside any section; put it under [patchworks], [state] or "
                      "[watch:NAME]",
                      name);
        return 1; /* unknown sections were reported once, at their header */
    }
    if (sec == SEC_PATCHWORKS) {
        base = &p->cfg->pw;
        seen = &p->pw_seen;
    } else if (sec == SEC_STATE) {
        base = &p->cfg->state;
        seen = &p->state_seen;
    } else if (sec == SEC_DAEMON) {
        base = &p->cfg->daemon;
        seen = &p->daemon_seen;
    } else if (sec == SEC_METRICS) {
        base = &p->cfg->metrics;
        seen = &p->metrics_seen;
    } else {
        struct pd_watch *w = (struct pd_watch *)pd_config_watch(p->cfg, wname);
        if (!w)
            return 1; /* a nameless or repeated section: already reported */
        base = w;
        seen = &p->watch_seen[w - p->cfg->watches];
    }
    k = find_key((enum section)sec, name);
    if (!k) {
        unknown_key(p, (enum section)sec, section, name);
        return 1;
    }
    if (seen->line[k - keys]) {
        add_error(p, p->lineno, "%s is set again (first at line %d); keep one", name,
                  seen->line[k - keys]);
        return 1;
    }
    seen->line[k - keys] = p->lineno;
    if (set_value(p, k, base, value, p->lineno))
        seen->bad[k - keys] = true;
    return 1;
}

/* Applies the table's defaults to every key of SEC that was not set. */
static void apply_defaults(struct parser *p, enum section sec, void *base, struct seen *seen)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].section != sec || seen->line[i] || !keys[i].def)
            continue;
        /* Defaults are absolute or plain values, so no relative-path resolution applies. */
        if (set_value(p, &keys[i], base, keys[i].def, 0))
            abort(); /* a default that does not parse is a bug in the table */
    }
}

static int key_line(const struct seen *seen, enum section sec, const char *name)
{
    const struct key *k = find_key(sec, name);
    return k ? seen->line[k - keys] : 0;
}

/* Whether NAME was set but did not parse: its own message said so, checks across keys skip it. */
static bool key_bad(const struct seen *seen, enum section sec, const char *name)
{
    const struct key *k = find_key(sec, name);
    return k && seen->bad[k - keys];
}

/*
 * Reads a secret from FILE. The file must not be readable by others; its group may read it (the
 * /etc/ssl/private convention: root:patchdrop 0640 lets root write it and the service read it).
 * Its first line is the secret (a trailing newline is normal and removed).
 */
static char *read_secret_file(struct parser *p, const char *file, const char *key, int line)
{
    char buf[4096];
    struct stat st;
    ssize_t n;
    int fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    char *out = NULL;

    if (fd < 0) {
        if (errno == EACCES)
            add_error(p, line,
                      "%s %s cannot be opened: %s; the user patchdrop runs as must read it: "
                      "give the file that user's group and mode 640 (chgrp GROUP %s; chmod 640 "
                      "%s), or run patchdrop check-config as root to see the exact fix",
                      key, file, strerror(errno), file, file);
        else
            add_error(p, line, "%s %s cannot be opened: %s", key, file, strerror(errno));
        return NULL;
    }
    if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
        add_error(p, line, "%s %s is not a regular file", key, file);
        goto done;
    }
    if (st.st_mode & S_IROTH) {
        add_error(p, line,
                  "%s %s can be read by every user (mode %04o); run chmod o-r %s (its group may "
                  "read it: root:patchdrop mode 640 is the usual way)",
                  key, file, (unsigned)(st.st_mode & 07777), file);
        goto done;
    }
    n = read(fd, buf, sizeof(buf) - 1);
    if (n < 0) {
        add_error(p, line, "%s %s cannot be read: %s", key, file, strerror(errno));
        goto done;
    }
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (!buf[0])
        add_error(p, line, "%s %s is empty; its first line must hold the secret", key, file);
    else if (!(out = strdup(buf)))
        p->oom = true;
    explicit_bzero(buf, sizeof(buf));
done:
    close(fd);
    return out;
}

/*
 * Resolves one secret (password or API key) from its three possible sources: inline, a file, or
 * the environment. Exactly one may be used; *source says which, in words safe to print.
 */
static void resolve_secret(struct parser *p, char **inline_value, const char *file,
                           const char *name, const char *env, bool config_readable)
{
    struct pd_patchworks *pw = &p->cfg->pw;
    char file_key[64];
    int inline_line = key_line(&p->pw_seen, SEC_PATCHWORKS, name);
    int file_line;
    const char *envval;

    snprintf(file_key, sizeof(file_key), "%s_file", name);
    file_line = key_line(&p->pw_seen, SEC_PATCHWORKS, file_key);
    if (*inline_value && file) {
        add_error(p, file_line, "both %s (line %d) and %s are set; keep one", name, inline_line,
                  file_key);
        return;
    }
    if (*inline_value) {
        if (config_readable)
            add_error(p, inline_line,
                      "%s is written in this file, which every user can read; run chmod o-r %s "
                      "(or move the secret to %s)",
                      name, p->file, file_key);
        if (asprintf(&pw->secret_source, "%s in %s line %d", name, p->file, inline_line) < 0)
            p->oom = true;
        return;
    }
    if (file) {
        *inline_value = read_secret_file(p, file, file_key, file_line);
        if (*inline_value && asprintf(&pw->secret_source, "%s %s", file_key, file) < 0)
            p->oom = true;
        return;
    }
    envval = getenv(env);
    if (envval && *envval) {
        if (!(*inline_value = strdup(envval)) ||
            asprintf(&pw->secret_source, "the environment variable %s", env) < 0)
            p->oom = true;
    }
}

static void validate_credentials(struct parser *p, bool config_readable)
{
    static const char *const cred_keys[] = {"email", "password", "password_file", "api_key",
                                            "api_key_file"};
    struct pd_patchworks *pw = &p->cfg->pw;
    const char *api_env = getenv("PATCHDROP_API_KEY");
    bool want_key = pw->api_key || pw->api_key_file;

    /* Which way to sign in depends on all of them: one that did not parse was reported, and
     * guessing without it would only add a second message about the same line. */
    for (size_t i = 0; i < sizeof(cred_keys) / sizeof(cred_keys[0]); i++)
        if (key_bad(&p->pw_seen, SEC_PATCHWORKS, cred_keys[i]))
            return;

    if (pw->email && want_key) {
        add_error(p,
                  key_line(&p->pw_seen, SEC_PATCHWORKS, "api_key") +
                      key_line(&p->pw_seen, SEC_PATCHWORKS, "api_key_file"),
                  "both email (line %d) and an API key are set; use one way to sign in: email "
                  "with password, or api_key",
                  key_line(&p->pw_seen, SEC_PATCHWORKS, "email"));
        return;
    }
    if (pw->email) {
        pw->auth = PD_AUTH_PASSWORD;
        resolve_secret(p, &pw->password, pw->password_file, "password", "PATCHDROP_PASSWORD",
                       config_readable);
        if (!pw->password && !pw->password_file)
            add_error(p, key_line(&p->pw_seen, SEC_PATCHWORKS, "email"),
                      "email is set but no password: set password, password_file, or the "
                      "environment variable PATCHDROP_PASSWORD");
        return;
    }
    if (pw->password || pw->password_file) {
        add_error(p,
                  key_line(&p->pw_seen, SEC_PATCHWORKS, "password") +
                      key_line(&p->pw_seen, SEC_PATCHWORKS, "password_file"),
                  "a password is set but no email; add email = (or login name) to [patchworks]");
        return;
    }
    pw->auth = PD_AUTH_API_KEY;
    if (want_key || (api_env && *api_env)) {
        resolve_secret(p, &pw->api_key, pw->api_key_file, "api_key", "PATCHDROP_API_KEY",
                       config_readable);
        return;
    }
    add_error(p, p->pw_line,
              "no credentials: set email and password (or password_file) in [patchworks], or "
              "api_key (or api_key_file), or the environment variable PATCHDROP_PASSWORD or "
              "PATCHDROP_API_KEY");
}

/*
 * PATH made absolute and free of symlinks, "." and "..", also where its tail does not exist
 * yet (the existing head is resolved, the rest appended), so that two spellings of one folder
 * compare equal. NULL when out of memory.
 */
static char *canonical(const char *path)
{
    char *real = realpath(path, NULL), *head, *out = NULL;
    const char *slash;

    if (real || errno != ENOENT)
        return real;
    slash = strrchr(path, '/');
    if (!slash || slash == path)
        return strdup(path);
    if (!(head = strndup(path, (size_t)(slash - path))))
        return NULL;
    char *canon_head = canonical(head);
    free(head);
    if (!canon_head)
        return NULL;
    if (!strcmp(slash + 1, ".") || !slash[1])
        out = canon_head;
    else if (asprintf(&out, "%s%s", strcmp(canon_head, "/") ? canon_head : "", slash) < 0)
        out = NULL;
    if (out != canon_head)
        free(canon_head);
    return out;
}

/* Whether canonical path A is B or lies beneath it. */
static bool within(const char *a, const char *b)
{
    size_t n = strlen(b);
    if (!strcmp(b, "/"))
        return true;
    return !strncmp(a, b, n) && (a[n] == '\0' || a[n] == '/');
}

/* The device of PATH or of its nearest existing ancestor; (dev_t)-1 when none can be seen. */
static dev_t device_of(const char *path)
{
    char *copy = strdup(path);
    struct stat st;
    dev_t dev = (dev_t)-1;

    while (copy && copy[0]) {
        if (stat(copy, &st) == 0) {
            dev = st.st_dev;
            break;
        }
        char *slash = strrchr(copy, '/');
        if (!slash)
            break;
        slash[slash == copy] = '\0';
    }
    free(copy);
    return dev;
}

/*
 * A watch's own folder (work/ and state/, and by default archive/ and failed/) must be where
 * no partner can write or rename it, and on the drop folder's file system so that a claim is
 * one rename. The state dir is such a place when it is on that file system; otherwise the drop
 * folder's parent, when only root or patchdrop's user can write there (an SFTP chroot's
 * root-owned folder is).
 */
static void default_work_dir(struct parser *p, struct pd_watch *w, size_t i)
{
    const char *state = p->cfg->state.dir;
    struct stat st;

    if (state && device_of(state) == device_of(w->path)) {
        if (asprintf(&w->work_dir, "%s/watches/%s", state, w->name) < 0)
            p->oom = true;
        return;
    }
    char *canon = canonical(w->path);
    char *slash = canon ? strrchr(canon, '/') : NULL;
    if (!canon) {
        p->oom = true;
        return;
    }
    if (!slash || slash == canon) {
        add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "path"),
                  "[watch:%s]: the state dir %s is on another file system than %s; set "
                  "work_dir = a folder on that file system that partners cannot write",
                  w->name, state ? state : "", w->path);
        free(canon);
        return;
    }
    *slash = '\0';
    if (stat(canon, &st) == 0 && (st.st_uid == 0 || st.st_uid == geteuid()) &&
        !(st.st_mode & (S_IWGRP | S_IWOTH))) {
        if (asprintf(&w->work_dir, "%s/.patchdrop-%s", canon, slash + 1) < 0)
            p->oom = true;
    } else {
        add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "path"),
                  "[watch:%s]: the state dir %s is on another file system than %s, and %s may "
                  "be written by others, so patchdrop's folder cannot go beside the drop "
                  "folder; set work_dir = a folder on the drop folder's file system that "
                  "partners cannot write (owned by patchdrop's user, mode 700)",
                  w->name, state ? state : "", w->path, canon);
    }
    free(canon);
}

/* Reports that folder KEY of watch I (or the state dir) is, or holds, a drop folder. */
static void check_outside(struct parser *p, const char *what, int line, const char *dir)
{
    struct pd_config *cfg = p->cfg;
    char *c = dir ? canonical(dir) : NULL;

    if (!c)
        return;
    for (size_t j = 0; j < cfg->nwatches; j++) {
        const struct pd_watch *o = &cfg->watches[j];
        char *drop = o->path ? canonical(o->path) : NULL;
        if (!drop)
            continue;
        if (within(c, drop))
            add_error(p, line,
                      "%s %s is %sthe drop folder of [watch:%s]; partners could read, rename "
                      "or replace what patchdrop keeps there, and it would be sent as a new "
                      "file: move it outside every drop folder",
                      what, dir, strcmp(c, drop) ? "inside " : "", o->name);
        else if (within(drop, c))
            add_error(p, line,
                      "%s %s holds the drop folder %s of [watch:%s]; keep patchdrop's folders "
                      "and the drop folders apart",
                      what, dir, o->path, o->name);
        free(drop);
    }
    free(c);
}

/*
 * The trust boundary (docs/architecture.md): everything patchdrop keeps lives outside every
 * drop folder, and no folder is fed to two watches.
 */
static void check_boundaries(struct parser *p)
{
    struct pd_config *cfg = p->cfg;

    size_t before = p->nproblems;
    check_outside(p, "the state dir", key_line(&p->state_seen, SEC_STATE, "dir"), cfg->state.dir);
    /* Folders defaulted from a state dir already refused would only repeat its message. */
    bool state_ok = p->nproblems == before;
    for (size_t i = 0; i < cfg->nwatches; i++) {
        struct pd_watch *w = &cfg->watches[i];
        struct seen *s = &p->watch_seen[i];
        static const char *const own[] = {"work_dir", "archive_dir", "failed_dir"};
        const char *dirs[] = {w->work_dir, w->archive_dir, w->failed_dir};
        for (size_t k = 0; k < 3; k++) {
            int wl = key_line(s, SEC_WATCH, own[k]);
            if (wl || state_ok)
                check_outside(p, own[k], wl ? wl : w->line, dirs[k]);
        }
        char *mine = w->path ? canonical(w->path) : NULL;
        for (size_t j = 0; mine && j < cfg->nwatches; j++) {
            const struct pd_watch *o = &cfg->watches[j];
            char *theirs = j != i && o->path ? canonical(o->path) : NULL;
            if (!theirs)
                continue;
            if (j < i && !strcmp(mine, theirs))
                add_error(p, key_line(s, SEC_WATCH, "path"),
                          "[watch:%s] uses the folder of [watch:%s] (%s); one folder, one watch",
                          w->name, o->name, mine);
            else if (o->recursive && strcmp(mine, theirs) && within(mine, theirs))
                add_error(p, key_line(s, SEC_WATCH, "path"),
                          "[watch:%s]'s folder %s is inside the recursive [watch:%s]'s %s: its "
                          "files would go to two flows; set recursive = no or move it",
                          w->name, w->path, o->name, o->path);
            if (j < i && w->work_dir && o->work_dir) {
                char *a = canonical(w->work_dir), *b = canonical(o->work_dir);
                if (a && b && !strcmp(a, b))
                    add_error(p, key_line(s, SEC_WATCH, "work_dir"),
                              "[watch:%s] shares work_dir %s with [watch:%s]; each watch needs "
                              "its own",
                              w->name, w->work_dir, o->name);
                free(a);
                free(b);
            }
            free(theirs);
        }
        free(mine);
    }
}

/*
 * Receipts follow archive_keep unless receipt_keep says otherwise, and a receipt may outlive
 * its file, never the reverse: receipt_keep shorter than archive_keep is refused, not bent.
 */
static void validate_retention(struct parser *p, struct pd_watch *w, const struct seen *s)
{
    if (key_bad(s, SEC_WATCH, "archive_keep") || key_bad(s, SEC_WATCH, "receipt_keep"))
        return;
    if (!key_line(s, SEC_WATCH, "receipt_keep")) {
        w->receipt_keep_ms = w->archive_keep_ms;
        return;
    }
    if (w->receipt_keep_ms && w->archive_keep_ms && w->receipt_keep_ms < w->archive_keep_ms) {
        char rk[32], ak[32];
        format_duration(w->receipt_keep_ms, rk, sizeof(rk));
        format_duration(w->archive_keep_ms, ak, sizeof(ak));
        add_error(p, key_line(s, SEC_WATCH, "receipt_keep"),
                  "receipt_keep = %s is shorter than archive_keep = %s; a receipt is never "
                  "removed before its file: give at least %s, 0 (forever), or remove the line "
                  "(the same as archive_keep)",
                  rk, ak, ak);
    }
}

static void validate_watches(struct parser *p)
{
    struct pd_config *cfg = p->cfg;

    for (size_t i = 0; i < cfg->nwatches; i++) {
        struct pd_watch *w = &cfg->watches[i];
        const struct seen *s = &p->watch_seen[i];
        struct stat st;

        if (!w->path) {
            if (!key_bad(s, SEC_WATCH, "path"))
                add_error(p, w->line, "[watch:%s] has no path; add path = /the/drop/folder",
                          w->name);
        } else if (stat(w->path, &st)) {
            add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "path"),
                      "path %s: %s; create the folder or fix the path", w->path, strerror(errno));
        } else if (!S_ISDIR(st.st_mode)) {
            add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "path"),
                      "path %s is not a folder; a watch needs the drop folder's path", w->path);
        }
        if (w->done_marker && (!strstr(w->done_marker, "{name}") || strchr(w->done_marker, '/')))
            add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "done_marker"),
                      "done_marker must hold {name} and no '/', like {name}.done or {name}.ok");
        if (!w->flow_id && !w->lookup_id && !key_bad(s, SEC_WATCH, "flow_id") &&
            !key_bad(s, SEC_WATCH, "lookup_id"))
            add_error(p, w->line,
                      "[watch:%s] has no flow_id; add flow_id = the id of the process flow to "
                      "start (or lookup_id = a cross-reference lookup to sync CSV files into)",
                      w->name);
        if (w->flow_id && w->lookup_id)
            add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "lookup_id"),
                      "[watch:%s] has both flow_id and lookup_id; a watch feeds either a flow "
                      "or a lookup: keep one",
                      w->name);
        if (w->lookup_id && w->version_id)
            add_error(p, key_line(&p->watch_seen[i], SEC_WATCH, "version_id"),
                      "[watch:%s]: version_id belongs to a flow; remove it from a lookup watch",
                      w->name);
        if (w->include && !w->include[strspn(w->include, PD_READY_GLOB_SEPARATORS)])
            add_error(p, key_line(s, SEC_WATCH, "include"),
                      "include = %s holds no glob, so no file would ever be sent; give globs "
                      "like *.xml, *.csv (or * for every file)",
                      w->include);
        /* A folder whose key did not parse gets no default: the default would be checked (and
         * complained about) in its place. */
        if (w->path && !w->work_dir && !key_bad(s, SEC_WATCH, "work_dir"))
            default_work_dir(p, w, i);
        if (w->work_dir && !w->archive_dir && !key_bad(s, SEC_WATCH, "archive_dir") &&
            asprintf(&w->archive_dir, "%s/archive", w->work_dir) < 0)
            p->oom = true;
        if (w->work_dir && !w->failed_dir && !key_bad(s, SEC_WATCH, "failed_dir") &&
            asprintf(&w->failed_dir, "%s/failed", w->work_dir) < 0)
            p->oom = true;
        validate_retention(p, w, s);
    }
    check_boundaries(p);
}

/* The lookup path templates: a path under lookups_url, with the placeholders it needs. */
static void validate_lookup_paths(struct parser *p)
{
    const struct pd_patchworks *pw = &p->cfg->pw;
    const struct {
        const char *key, *value;
        bool id, value_id;
    } t[] = {{"lookups_path", pw->lookups_path, false, false},
             {"lookup_rows_path", pw->lookup_rows_path, true, false},
             {"lookup_value_path", pw->lookup_value_path, true, true}};

    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        const char *v = t[i].value;
        if (!v)
            continue;
        if (v[0] != '/' || strpbrk(v, "?# \t") || (!t[i].id && strchr(v, '{')) ||
            (t[i].id && !strstr(v, "{id}")) || (t[i].value_id && !strstr(v, "{value_id}")))
            add_error(p, key_line(&p->pw_seen, SEC_PATCHWORKS, t[i].key),
                      "%s = %s: expected a path starting with / %s, e.g. %s", t[i].key, v,
                      t[i].value_id ? "holding {id} and {value_id}"
                      : t[i].id     ? "holding {id}"
                                    : "without placeholders",
                      t[i].value_id ? "/cross-reference-lookups/{id}/values/{value_id}"
                      : t[i].id     ? "/cross-reference-lookups/{id}/values"
                                    : "/cross-reference-lookups");
    }
}

int pd_config_load(const char *file, struct pd_config **out, char **errors)
{
    struct parser p;
    struct stat st;
    int rc;

    *out = NULL;
    *errors = NULL;
    memset(&p, 0, sizeof(p));
    p.file = file;
    p.fp = fopen(file, "re");
    if (!p.fp) {
        rc = -errno;
        add_error(&p, 0, "cannot open: %s", strerror(errno));
        goto fail;
    }
    if (fstat(fileno(p.fp), &st) || !S_ISREG(st.st_mode)) {
        rc = PD_ECONFIG;
        add_error(&p, 0, "is not a regular file");
        goto fail;
    }
    p.cfg = calloc(1, sizeof(*p.cfg));
    if (!p.cfg || !(p.cfg->file = strdup(file))) {
        rc = PD_ENOMEM;
        goto fail;
    }
    /* Relative paths in the file are resolved against its folder, made absolute so that they
     * keep their meaning whatever the daemon's working directory. */
    {
        const char *slash = strrchr(file, '/');
        char *folder =
            slash ? strndup(file, (size_t)(slash - file) + (slash == file)) : strdup(".");
        p.dir = folder ? realpath(folder, NULL) : NULL;
        free(folder);
        if (!p.dir) {
            rc = -errno;
            add_error(&p, 0, "cannot resolve the folder of the file: %s", strerror(errno));
            goto fail;
        }
    }

    rc = ini_parse_stream(read_line, &p, on_ini_value, &p);
    if (rc > 0)
        add_error(&p, rc,
                  "cannot read this line; expected `key = value`, `[section]` or a comment "
                  "starting with ; or #");
    else if (rc < 0) {
        rc = PD_ENOMEM;
        goto fail;
    }

    apply_defaults(&p, SEC_PATCHWORKS, &p.cfg->pw, &p.pw_seen);
    apply_defaults(&p, SEC_STATE, &p.cfg->state, &p.state_seen);
    apply_defaults(&p, SEC_DAEMON, &p.cfg->daemon, &p.daemon_seen);
    apply_defaults(&p, SEC_METRICS, &p.cfg->metrics, &p.metrics_seen);
    for (size_t i = 0; i < p.cfg->nwatches; i++)
        apply_defaults(&p, SEC_WATCH, &p.cfg->watches[i], &p.watch_seen[i]);

    validate_credentials(&p, (st.st_mode & S_IROTH) != 0);
    validate_watches(&p);
    validate_lookup_paths(&p);
    /* A check between two keys runs only when both parsed: one mistake, one message. */
    if (!key_bad(&p.pw_seen, SEC_PATCHWORKS, "retry_cap") &&
        !key_bad(&p.pw_seen, SEC_PATCHWORKS, "retry_base") &&
        p.cfg->pw.retry_cap_ms < p.cfg->pw.retry_base_ms)
        add_error(&p, key_line(&p.pw_seen, SEC_PATCHWORKS, "retry_cap"),
                  "retry_cap is shorter than retry_base; make it at least as long");

    if (p.oom) {
        rc = PD_ENOMEM;
        goto fail;
    }
    if (p.nerrors) {
        rc = PD_ECONFIG;
        goto fail;
    }
    *out = p.cfg;
    p.cfg = NULL;
    rc = 0;
fail:
    if (rc) {
        *errors = p.oom ? strdup("out of memory while reading the config\n") : format_problems(&p);
    }
    free(p.problems);
    if (p.fp)
        fclose(p.fp);
    pd_config_destroy(&p.cfg);
    free(p.watch_seen);
    free(p.dir);
    return rc;
}

static void free_fields(enum section sec, void *base)
{
    for (size_t i = 0; i < NKEYS; i++) {
        if (keys[i].section != sec)
            continue;
        switch (keys[i].type) {
        case T_STRING:
        case T_SECRET:
        case T_PATH:
        case T_URL:
        case T_LISTEN:
        case T_ID: {
            char **slot = (char **)(void *)((char *)base + keys[i].offset);
            if (*slot && keys[i].type == T_SECRET)
                explicit_bzero(*slot, strlen(*slot));
            free(*slot);
            *slot = NULL;
            break;
        }
        default:
            break;
        }
    }
}

void pd_config_destroy(struct pd_config **cfgp)
{
    struct pd_config *cfg = cfgp ? *cfgp : NULL;

    if (!cfg)
        return;
    free_fields(SEC_PATCHWORKS, &cfg->pw);
    free(cfg->pw.secret_source);
    free_fields(SEC_STATE, &cfg->state);
    free_fields(SEC_DAEMON, &cfg->daemon);
    free_fields(SEC_METRICS, &cfg->metrics);
    for (size_t i = 0; i < cfg->nwatches; i++) {
        free_fields(SEC_WATCH, &cfg->watches[i]);
        free(cfg->watches[i].name);
    }
    free(cfg->watches);
    free(cfg->file);
    free(cfg);
    *cfgp = NULL;
}

const char *pd_config_key_name(size_t i, const char **section)
{
    if (i >= NKEYS)
        return NULL;
    *section = section_names[keys[i].section];
    return keys[i].name;
}

const char *pd_config_key_help(size_t i, const char **def)
{
    if (i >= NKEYS)
        return NULL;
    *def = keys[i].def;
    if (keys[i].type == T_FORMAT) {
        /* The registry's names, so a new format shows in the help and the manual by itself. */
        static char help[256];
        size_t n = (size_t)snprintf(help, sizeof(help), "%s ", keys[i].help);
        if (n < sizeof(help))
            pd_format_join_names(" ", help + n, sizeof(help) - n);
        return help;
    }
    return keys[i].help;
}

const struct pd_watch *pd_config_watch(const struct pd_config *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->nwatches; i++)
        if (!strcmp(cfg->watches[i].name, name))
            return &cfg->watches[i];
    return NULL;
}

static void print_section(enum section sec, const void *base, FILE *out)
{
    for (size_t i = 0; i < NKEYS; i++) {
        const struct key *k = &keys[i];
        const char *field = (const char *)base + k->offset;
        char buf[64];

        if (k->section != sec)
            continue;
        switch (k->type) {
        case T_SECRET: {
            const char *v = *(char *const *)(const void *)field;
            if (v)
                fprintf(out, "%s = ********\n", k->name);
            else
                fprintf(out, "; %s is not set\n", k->name);
            break;
        }
        case T_STRING:
        case T_PATH:
        case T_URL:
        case T_LISTEN:
        case T_ID: {
            const char *v = *(char *const *)(const void *)field;
            if (v)
                fprintf(out, "%s = %s\n", k->name, v);
            else
                fprintf(out, "; %s is not set\n", k->name);
            break;
        }
        case T_UINT:
        case T_SIZE:
            fprintf(out, "%s = %" PRIu64 "\n", k->name, *(const uint64_t *)(const void *)field);
            break;
        case T_DURATION:
            format_duration(*(const uint64_t *)(const void *)field, buf, sizeof(buf));
            fprintf(out, "%s = %s\n", k->name, buf);
            break;
        case T_BOOL:
            fprintf(out, "%s = %s\n", k->name, *(const bool *)(const void *)field ? "yes" : "no");
            break;
        case T_ENUM:
            fprintf(out, "%s = %s\n", k->name, k->choices[*(const int *)(const void *)field]);
            break;
        case T_FORMAT:
            fprintf(out, "%s = %s\n", k->name, pd_format_name(*(const int *)(const void *)field));
            break;
        }
    }
}

void pd_config_print(const struct pd_config *cfg, FILE *out)
{
    fprintf(out, "; effective configuration of %s (defaults included, secrets masked)\n",
            cfg->file);
    fprintf(out, "[patchworks]\n");
    fprintf(out, "; signs in with %s",
            cfg->pw.auth == PD_AUTH_API_KEY ? "an API key" : "email and password");
    if (cfg->pw.secret_source)
        fprintf(out, " (secret from %s)", cfg->pw.secret_source);
    fprintf(out, "\n");
    print_section(SEC_PATCHWORKS, &cfg->pw, out);
    fprintf(out, "\n[state]\n");
    print_section(SEC_STATE, &cfg->state, out);
    fprintf(out, "\n[daemon]\n");
    print_section(SEC_DAEMON, &cfg->daemon, out);
    fprintf(out, "\n[metrics]\n");
    print_section(SEC_METRICS, &cfg->metrics, out);
    for (size_t i = 0; i < cfg->nwatches; i++) {
        fprintf(out, "\n[watch:%s]\n", cfg->watches[i].name);
        print_section(SEC_WATCH, &cfg->watches[i], out);
    }
}
