/*
 * Cross-reference lookups (docs/patchworks-api.md, "Cross-reference lookups"): the API's
 * operations on lookups and their rows, and the sync of a CSV file (left_value,right_value)
 * into a lookup.
 *
 * Every request goes through the Patchworks client (pd_client.h), so lookups get the same
 * authentication, 401 re-login, retry with backoff and account rate limit as the uploader.
 * URLs: <lookups_url><lookups_path> for the list, .../<id> for one lookup, and the row paths
 * of the config (lookup_rows_path, lookup_value_path, with {id} and {value_id}). Lists are
 * read whole: every page (per_page 100), following meta.last_page, or links.next when the
 * answer has no meta (links.next is followed only on the lookups_url host, so the
 * credentials never go elsewhere).
 *
 * The pure half (file reading, diff, URLs, JSON) lives in src/net/lookup_plan.c; the requests in
 * src/net/lookup.c; the answers are read by src/net/api.c (pd_api.h, pd_api_parse_lookups_page and
 * its siblings). Rows are held in memory: a sync needs both sides to compare them, so memory
 * grows with the number of rows (about 100 bytes a row plus the values), never with requests.
 */
#ifndef PD_LOOKUP_H
#define PD_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct pd_client;
struct pd_patchworks;

struct pd_lookup_info {
    char *id;
    char *name;
    char *description;   /* NULL when none */
    char *default_value; /* NULL when none */
};

struct pd_lookup_row {
    char *id; /* the lookup's row id (valueID); NULL for a file's row */
    char *left;
    char *right;
    uint64_t line; /* a file's row: the line it starts on; 0 otherwise */
};

struct pd_lookup_rows {
    struct pd_lookup_row *v;
    size_t n, cap;
};

void pd_lookup_rows_cleanup(struct pd_lookup_rows *rows);
void pd_lookup_info_cleanup(struct pd_lookup_info *info);

/* ---- pure: ids and URLs ------------------------------------------------------------------ */

/* An id that may go into a URL path: 1..64 letters, digits, '-', '_' or '.', not "." or "..". */
bool pd_lookup_id_valid(const char *s);

/*
 * <lookups_url><TMPL> with {id} and {value_id} replaced, plus ?page=N&per_page=100 when
 * PAGE > 0. Returns 0 and *out (malloc'd), PD_ECONFIG for an id that is not valid, PD_ENOMEM.
 */
int pd_lookup_url(const struct pd_patchworks *pw, const char *tmpl, const char *id,
                  const char *value_id, unsigned long page, char **out);

/* ---- pure: the CSV file ------------------------------------------------------------------- */

/*
 * Reads a lookup file: a header row naming the columns left_value and right_value (any
 * order, any case; other columns are allowed and ignored), then one row per mapping. Empty
 * lines and rows whose fields are all empty are skipped. Every row must have as many fields
 * as the header and a non-empty left value; values are kept exactly (no trimming).
 * Reads FD (fd >= 0) or the LEN bytes at BUF. NAME starts every message.
 * Returns 0 with *out filled (line numbers set), or PD_EPARSE / PD_EEMPTY / PD_EENCODING /
 * -errno with *msg (malloc'd) listing the bad rows by line (up to 20 of them, then a count)
 * and what to do.
 */
int pd_lookup_read_csv(int fd, const char *buf, size_t len, const char *name,
                       struct pd_lookup_rows *out, char **msg);

/* Writes ROWS as CSV (header left_value,right_value, CRLF-free, quoted where needed). */
int pd_lookup_write_csv(const struct pd_lookup_rows *rows, char **out, size_t *len);

/* ---- pure: comparing a file with a lookup ------------------------------------------------- */

enum pd_lookup_op { PD_LOOKUP_ADD, PD_LOOKUP_UPDATE, PD_LOOKUP_DELETE };

enum pd_lookup_state {
    PD_LOOKUP_PLANNED, /* not tried (dry run, or stopped before it) */
    PD_LOOKUP_DONE,
    PD_LOOKUP_REFUSED,
};

struct pd_lookup_change {
    enum pd_lookup_op op;
    const struct pd_lookup_row *file;   /* ADD, UPDATE: the file's row (borrowed) */
    const struct pd_lookup_row *remote; /* UPDATE, DELETE: the lookup's row (borrowed) */
    enum pd_lookup_state state;
    long status;   /* HTTP status of the answer, 0 when none */
    char *message; /* REFUSED: the server's words */
    char *new_id;  /* ADD done: the new row's id when the answer named it */
};

struct pd_lookup_plan {
    struct pd_lookup_change *v; /* adds and updates in file order, then deletes */
    size_t n;
    size_t adds, updates, deletes;
    size_t unchanged; /* left and right equal on both sides */
    size_t kept;      /* rows only in the lookup, left alone (no delete_missing) */
};

/*
 * Compares FILE with REMOTE by left value (exact bytes): a left value only in the file is
 * added, one whose right value differs is updated, one only in the lookup is deleted when
 * DELETE_MISSING. When the lookup itself holds a left value twice, the first row is the one
 * compared and the others count as missing from the file. A left value twice in the FILE is
 * an error naming both lines: returns PD_EPARSE with *msg. Returns 0 or PD_ENOMEM otherwise.
 * The plan borrows the rows: keep both sets until pd_lookup_plan_cleanup.
 */
int pd_lookup_diff(const struct pd_lookup_rows *file, const struct pd_lookup_rows *remote,
                   bool delete_missing, const char *name, struct pd_lookup_plan *out, char **msg);
void pd_lookup_plan_cleanup(struct pd_lookup_plan *plan);

/* ---- requests ---------------------------------------------------------------------------- */

struct pd_lookup_result {
    int err;             /* 0, or the client's code (PD_EREJECTED, PD_EAUTH...) / PD_EPROTOCOL */
    const char *message; /* err != 0: words */
    long status;         /* HTTP status of the last answer, 0 when none */
    const char *errors;  /* the server's field errors, or NULL */
    /* list: every lookup; show, create: the one lookup */
    const struct pd_lookup_info *lookups;
    size_t nlookups;
    /* rows: every row; add, update: the one row. The callback may take the rows: move
     * *rows elsewhere and zero it. */
    struct pd_lookup_rows *rows;
};

typedef void (*pd_lookup_done_fn)(void *arg, const struct pd_lookup_result *r);

/*
 * Each starts one operation and returns 0, then DONE runs exactly once (never inside the
 * call), with data valid during the callback. Returns PD_EUSAGE for an invalid id or a missing
 * argument, PD_ENOMEM, or the client's refusal (DONE does not run then).
 */
int pd_lookup_list(struct pd_client *c, const struct pd_patchworks *pw, pd_lookup_done_fn done,
                   void *arg);
int pd_lookup_show(struct pd_client *c, const struct pd_patchworks *pw, const char *id,
                   pd_lookup_done_fn done, void *arg);
/* DESCRIPTION and DEFAULT_VALUE may be NULL: not sent. */
int pd_lookup_create(struct pd_client *c, const struct pd_patchworks *pw, const char *name,
                     const char *description, const char *default_value, pd_lookup_done_fn done,
                     void *arg);
int pd_lookup_rows(struct pd_client *c, const struct pd_patchworks *pw, const char *id,
                   pd_lookup_done_fn done, void *arg);
int pd_lookup_add(struct pd_client *c, const struct pd_patchworks *pw, const char *id,
                  const char *left, const char *right, pd_lookup_done_fn done, void *arg);
/* At least one of LEFT and RIGHT (the API demands it); NULL: unchanged. */
int pd_lookup_update(struct pd_client *c, const struct pd_patchworks *pw, const char *id,
                     const char *value_id, const char *left, const char *right,
                     pd_lookup_done_fn done, void *arg);
int pd_lookup_delete(struct pd_client *c, const struct pd_patchworks *pw, const char *id,
                     const char *value_id, pd_lookup_done_fn done, void *arg);

/* ---- sync: a CSV file into a lookup -------------------------------------------------------- */

struct pd_lookup_sync;

struct pd_lookup_sync_opts {
    bool dry_run;        /* compare and report, change nothing */
    bool delete_missing; /* delete rows whose left value is not in the file */
    unsigned window;     /* changes submitted at once (0: 2 x concurrency) */
    const char *name;    /* the file's name in messages (default: the path) */
};

struct pd_lookup_sync_report {
    /*
     * 0: every planned change done (or planned, on a dry run). PD_EPARSE/PD_EEMPTY/
     * PD_EENCODING/-errno: the file is unusable, nothing was changed. PD_EREJECTED: some
     * changes were refused (the others are done; see the plan). Or the client's code for
     * the rows request or a stop (PD_EAUTH, PD_ECONFIG, PD_ELIMIT, PD_ECANCELED).
     */
    int err;
    const char *message; /* err != 0: words, with lines and what to do */
    const char *lookup_id;
    const char *file;
    bool dry_run, delete_missing;
    size_t file_rows, lookup_rows;     /* lookup_rows: before the sync */
    const struct pd_lookup_plan *plan; /* NULL when it failed before comparing */
    size_t added, updated, deleted, refused;
};

typedef void (*pd_lookup_sync_fn)(void *arg, const struct pd_lookup_sync_report *r);

/*
 * Reads CSV_PATH (on the thread pool), then the lookup's rows, compares them and applies the
 * plan (unless dry_run), WINDOW changes at a time, each one request through the client.
 * DONE runs exactly once, never inside this call; the sync frees itself after DONE returns.
 * *OUT (optional) may be passed to pd_lookup_sync_cancel until DONE has run.
 */
int pd_lookup_sync_start(struct pd_client *c, const struct pd_patchworks *pw, const char *lookup_id,
                         const char *csv_path, const struct pd_lookup_sync_opts *opts,
                         pd_lookup_sync_fn done, void *arg, struct pd_lookup_sync **out);

/* Submits nothing more; DONE runs with PD_ECANCELED once what is under way has ended (close
 * the client to end requests in flight at once). */
void pd_lookup_sync_cancel(struct pd_lookup_sync *s);

/* Changes answered so far and planned in all (0 before the plan exists). */
void pd_lookup_sync_progress(const struct pd_lookup_sync *s, size_t *answered, size_t *total);

/* The report as JSON text (malloc'd): counts and, WITH_CHANGES, every change with its state. */
char *pd_lookup_sync_json(const struct pd_lookup_sync_report *r, bool with_changes);

/* One line in words: "123 added, 4 updated, 0 deleted, 50000 unchanged (...)". */
void pd_lookup_sync_summary(const struct pd_lookup_sync_report *r, char *out, size_t len);

/*
 * A daemon receipt for a file synced into a lookup: RECEIPT_JSON (the delivery receipt of
 * pd_jobstate) with the sync report LOOKUP_JSON added under "lookup", laid out as the receipt
 * is (pd_jsonfmt.h). Returns malloc'd text, or NULL when either is not JSON or memory ran out.
 */
char *pd_lookup_receipt(const char *receipt_json, const char *lookup_json);

#endif
