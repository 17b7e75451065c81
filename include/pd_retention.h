/*
 * Retention: how long a watch's archive and failed folders keep what patchdrop put there
 * (README, "Retention"), and the link between a file delivered after failing before and its
 * failed copy (supersede).
 *
 * Three layers, so each can be tested on its own:
 *   - the planner (pd_retention_plan): pure. Given entries (a file with or without its sidecar,
 *     or a sidecar alone), the rules and "now", it says which names go and why. No clock, no
 *     file system, no log.
 *   - the executor (pd_retention_sweep): one folder, read through a directory descriptor
 *     (fstatat and unlinkat, never following a symlink, regular files only), bounded in the
 *     entries it keeps and removes per call; it logs each removal.
 *   - the daemon's object (pd_retention_create/tick/destroy): a sweep of a watch's two folders
 *     on libuv's thread pool at start and every PD_RETENTION_PERIOD_MS, sooner while a bounded
 *     sweep left work; and pd_retention_run for the end of `run --once`.
 *
 * When was a file archived? Not its mtime: a claim keeps the partner's mtime (rename keeps it,
 * and a partner may set any mtime on its file before dropping it). patchdrop writes the
 * sidecar (<name>.receipt.json, <name>.error.json) just before it moves the file in and never
 * changes its mtime afterwards (pd_retention_supersede puts it back after its rewrite), so
 * the sidecar's mtime is the archive time. A file whose sidecar is missing counts from its
 * ctime, which the move into the folder set (rename updates ctime on ext4, xfs, btrfs, tmpfs)
 * and which no process can set back in time. A lone sidecar counts from its own mtime.
 */
#ifndef PD_RETENTION_H
#define PD_RETENTION_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define PD_RETENTION_RECEIPT ".receipt.json"
#define PD_RETENTION_ERROR ".error.json"

/* The daemon sweeps each watch at start and this often. */
#define PD_RETENTION_PERIOD_MS (10ULL * 60 * 1000)
/* ... and again this soon while a sweep stopped at its bound with work left. */
#define PD_RETENTION_AGAIN_MS 1000ULL
/* Entries one sweep keeps in memory (the oldest of the folder) and may remove. */
#define PD_RETENTION_MAX_ENTRIES 10000
/*
 * A sidecar alone is never removed younger than this, whatever the rules: patchdrop writes a
 * sidecar just before it moves the file in, so a young lone sidecar is a file on its way.
 */
#define PD_RETENTION_LONE_GRACE_MS (60ULL * 60 * 1000)

/* What one folder keeps. 0 in any field: that rule is off. */
struct pd_retention_rules {
    uint64_t keep_ms;         /* a file goes once it was archived this long ago */
    uint64_t sidecar_keep_ms; /* its sidecar once this old, and never while its file stays */
    uint64_t max_bytes;       /* the files' total size: over it the oldest go first */
};

enum pd_retention_why {
    PD_RET_KEEP,      /* stays */
    PD_RET_AGE,       /* older than keep_ms */
    PD_RET_SIZE,      /* the folder is over max_bytes: the oldest go first */
    PD_RET_WITH_FILE, /* a sidecar that goes with its file (it is at least sidecar_keep_ms old) */
    PD_RET_LONE_AGE,  /* a sidecar whose file is gone, older than sidecar_keep_ms */
};

struct pd_retention_entry {
    const char *name; /* the file's name, or the sidecar's when it is alone */
    bool has_file;    /* false: a sidecar alone */
    bool has_sidecar; /* name + suffix sits beside the file */
    int64_t time_ms;  /* when it was archived (see the top of this file), ms since 1970 */
    uint64_t bytes;   /* the file's size; 0 for a sidecar alone */
    uint64_t sidecar_bytes;
    size_t id; /* the caller's, left as it is (the planner reorders entries) */
    /* the planner's verdict */
    enum pd_retention_why file_why, sidecar_why;
};

/*
 * Decides what goes. Sorts ENTRIES oldest first (then by name) and sets each one's file_why
 * and sidecar_why. TOTAL_BYTES is the size of every file in the folder, also of files not in
 * ENTRIES (a sweep holds only the oldest PD_RETENTION_MAX_ENTRIES). A sidecar never goes while
 * its file stays; with its file it goes once it is sidecar_keep_ms old (at once when that rule
 * is the same as keep_ms), else it stays alone until then (sidecar_keep_ms 0: forever).
 * Returns how many names go.
 */
size_t pd_retention_plan(struct pd_retention_entry *entries, size_t n, uint64_t total_bytes,
                         const struct pd_retention_rules *rules, int64_t now_ms);

/* How a regular file's NAME pairs in a folder whose sidecars end in SUFFIX. */
enum pd_retention_role {
    PD_RET_ROLE_FILE,         /* a file (its sidecar, if any, is NAME + SUFFIX) */
    PD_RET_ROLE_SIDECAR,      /* the sidecar of the file NAME minus SUFFIX: handled with it */
    PD_RET_ROLE_LONE_SIDECAR, /* a sidecar whose file is gone */
};

/*
 * The role of NAME, given IS_FILE (whether a name is a regular file in the folder: symlinks
 * and other kinds are not, so they never pair). *SIDECAR says whether a FILE has its sidecar.
 * A partner may drop a file named like a sidecar ("x.receipt.json"), so NAME + SUFFIX being a
 * regular file makes NAME a file whose sidecar that is, before NAME's own ending is looked at.
 */
enum pd_retention_role pd_retention_role(const char *name, const char *suffix,
                                         bool (*is_file)(void *arg, const char *name), void *arg,
                                         bool *sidecar);

/* One folder to sweep, and how to name what happens in the log. */
struct pd_retention_folder {
    const char *watch;  /* for the log */
    const char *folder; /* "archive" or "failed", for the log */
    const char *dir;    /* the watch's archive_dir or failed_dir */
    const char *sub;    /* a folder beneath DIR swept instead (failed/history), or NULL */
    const char *suffix; /* PD_RETENTION_RECEIPT or PD_RETENTION_ERROR */
    struct pd_retention_rules rules;
    const char *why_age, *why_size, *why_lone; /* reasons as logged: "archive_keep" ... */
};

struct pd_retention_result {
    size_t removed; /* names removed */
    uint64_t removed_bytes;
    size_t files;   /* files left in the folder (sidecars not counted) */
    uint64_t bytes; /* their total size */
    size_t ignored; /* entries that are not regular files: never touched */
    size_t errors;  /* removals or reads that failed (logged) */
    bool more;      /* stopped at its bound with work left: sweep again soon */
};

/*
 * Sweeps F once: reads it through a descriptor (O_NOFOLLOW; a folder that is not this user's
 * own, or that others may write, is refused with PD_ECONFIG and one log line), plans with
 * pd_retention_plan on its oldest max_entries entries, and removes the chosen names (the
 * file first, then its sidecar, each checked to be still the regular file that was planned
 * on) with one `event=retention_removed` line each. A missing folder is empty. Stops early
 * when *CANCEL (may be NULL) becomes true. Adds to *RES. Returns 0 or a negative code.
 */
int pd_retention_sweep(const struct pd_retention_folder *f, int64_t now_ms, size_t max_entries,
                       const atomic_bool *cancel, struct pd_retention_result *res);

struct pd_watch;
struct pd_clock;

/*
 * Both folders of watch W, swept until nothing is left to do (for `run --once`, at its end),
 * with one summary line. CLOCK NULL: the system's. Returns 0 or the first error.
 */
int pd_retention_run(const struct pd_watch *w, const struct pd_clock *clock);

/*
 * The daemon's retention of one watch. Copies what it needs from W, so the config may go
 * before a sweep under way ends. *OUT is NULL (and every call a no-op) when no rule is on.
 */
struct pd_retention;
int pd_retention_create(uv_loop_t *loop, const struct pd_watch *w, const struct pd_clock *clock,
                        struct pd_retention **out);

/* Called from the daemon's tick (NOW_MS: monotonic): starts a sweep on the thread pool when
 * one is due and none is under way. NULL is a no-op. */
void pd_retention_tick(struct pd_retention *r, uint64_t now_ms);

/* Whether a sweep is under way (for tests). */
bool pd_retention_busy(const struct pd_retention *r);

/*
 * Frees R and NULLs the caller's pointer. A sweep under way is told to stop at its next entry
 * and frees the object when it is back on the loop. NULL is a no-op.
 */
void pd_retention_destroy(struct pd_retention **r);

/*
 * A file was delivered again after failing: ARCHIVED (the path of the file just archived,
 * beside ARCHIVED.receipt.json) is the original file NAME (the name in the drop folder, as in
 * the receipt's "file") of watch WATCH. Every failed copy of NAME in FAILED_DIR (NAME's base,
 * numbered as place() numbers clashes: broken.json, broken.1.json ...) whose error file names
 * NAME and is not marked yet is marked: "superseded_by" (the archived name) and
 * "superseded_at" are added to its error file, which keeps its mtime (retention counts from
 * the failure) and its place, so the names logs and alerts gave stay true. The receipt then
 * says "supersedes": the newest such copy.
 *
 * Why after the move: the archived name is known only once place() has won a name, and the
 * receipt is written before the move (it is what makes a crash resumable), so the link is
 * added afterwards, by one call once the file is safe. The receipt is rewritten first, then
 * the error files, each durably (pd_fs_replace_from, its temp file in TMPDIR, one of the
 * watch's own folders, or beside it when NULL: never half written) with its mtime kept;
 * a crash between them leaves a receipt naming a failed copy whose error file is not marked
 * yet, a link from one side only, and never a mark naming a delivery that did not happen.
 * Logs one `event=superseded` line per copy. *SUPERSEDED (may be NULL) gets the newest copy's
 * name (malloc'd) or NULL. NOW_MS: wall clock. Returns 0 (also when nothing failed before) or
 * a negative code; the delivery stands either way.
 */
int pd_retention_supersede(const char *watch, const char *failed_dir, const char *tmpdir,
                           const char *name, const char *archived, uint64_t now_ms,
                           char **superseded);

#endif
