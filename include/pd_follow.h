/*
 * Following the flow runs patchdrop started to their end (a 200 to the start request only means
 * the run began): the pure plan (when to poll again, what a status means, what a failure leads
 * to), the durable record of each run being followed, and the receipt rewritten as outcomes
 * arrive. The daemon's poller (src/daemon/follow.c) drives it; nothing here uses the loop.
 *
 * A record is one chunk of one claimed file: `<state dir>/follow/<claim_id>-<chunk>.json`, saved
 * durably before the file's delivery record goes, removed once its outcome is in the receipt. The
 * chunks of a batch share their request's run: one poll serves every record naming that run.
 */
#ifndef PD_FOLLOW_H
#define PD_FOLLOW_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pd_run_outcome {
    PD_RUN_RUNNING,
    PD_RUN_SUCCESS,
    PD_RUN_FAILED,
    PD_RUN_STOPPED,
    PD_RUN_PARTIAL,
    PD_RUN_UNKNOWN, /* not final after follow_timeout, or the run could not be read */
};

/* "running", "success", "failed", "stopped", "partial", "unknown". */
const char *pd_run_outcome_name(enum pd_run_outcome o);
/* From Patchworks' status number: 1 running, 2 success, 3 failed, 4 stopped, 5 partial success;
 * any other number is not final (polled again until follow_timeout). */
enum pd_run_outcome pd_run_outcome_of(long status);
bool pd_run_final(enum pd_run_outcome o);

/* The wait before the next poll: FIRST at first (PREV 0), then twice PREV, at most CAP. */
uint64_t pd_follow_delay(uint64_t prev, uint64_t first, uint64_t cap);

/* What a final outcome leads to (on_flow_failure: enum pd_flow_failure of pd_config.h). */
enum pd_follow_step {
    PD_FOLLOW_RECORD, /* success: written into the receipt */
    PD_FOLLOW_REPORT, /* not success: recorded, one warning with the run's last log messages */
    PD_FOLLOW_FAIL,   /* recorded, and the file moves to the failed folder with the run's logs */
    PD_FOLLOW_RETRY,  /* the run is retried and the new run followed */
};
enum pd_follow_step pd_follow_decide(enum pd_run_outcome o, int on_failure, unsigned retries_used,
                                     unsigned max_retries);

/* One followed chunk, as kept in the state dir. */
struct pd_follow_rec {
    char *watch;
    char *file;        /* its name in the drop folder (relative path) */
    char *claim_id;    /* finds its receipt (pd_follow_find_receipt) */
    char *archive_dir; /* where it was archived */
    unsigned chunk;    /* index in the receipt's chunks */
    char **runs;       /* the runs started for it, oldest first (more than one after retries) */
    size_t nruns;
    uint64_t started_ms; /* wall clock: the start request was acknowledged */
    uint64_t next_ms;    /* wall clock: the next poll */
    uint64_t delay_ms;   /* the wait before that poll */
    char *path;          /* where it is kept (set by save and load) */
};

/* The run followed now (the last of runs). */
const char *pd_follow_run(const struct pd_follow_rec *r);
/* Appends a run (a retry's); 0 or PD_ENOMEM. */
int pd_follow_add_run(struct pd_follow_rec *r, const char *run_id);

/* Saves R durably into DIR (made if missing) as <claim_id>-<chunk>.json; sets r->path. */
int pd_follow_save(struct pd_follow_rec *r, const char *dir);
/* Loads PATH; 0, -errno, or PD_ESTATE for a damaged record. */
int pd_follow_load(const char *path, struct pd_follow_rec *r);
void pd_follow_cleanup(struct pd_follow_rec *r);

/*
 * The receipt of the file named BASE archived under CLAIM_ID in DIR, whichever numbered name
 * (NAME, NAME.1 ...) it took: its path (free() it), or NULL when there is none.
 */
char *pd_follow_find_receipt(const char *dir, const char *base, const char *claim_id);
/* The same for any sidecar (".error.json": the error file of a file moved to a failed folder,
 * which holds its receipt). */
char *pd_follow_find_sidecar(const char *dir, const char *base, const char *sidecar,
                             const char *claim_id);

/* What the receipt says of one chunk's run. */
struct pd_follow_result {
    unsigned chunk;
    const char *outcome;     /* pd_run_outcome_name() */
    uint64_t finished_ms;    /* wall clock; 0: not final */
    const char *dashboard;   /* link to the run, or NULL */
    const char *const *runs; /* every run started for the chunk (after retries), or NULL */
    size_t nruns;
};

/*
 * RECEIPT (its text) with the chunk's `outcome`, `finished_at`, `dashboard` and `runs` set, and
 * the receipt's `flow_result` made again: "success" when every chunk with a run succeeded,
 * "running" while one is not final, else the worst outcome (failed, stopped, partial, unknown).
 * NULL when RECEIPT is not a receipt or out of memory.
 */
char *pd_follow_receipt_apply(const char *receipt, const struct pd_follow_result *res);

/*
 * The same on the file at PATH, rewritten atomically through a temp file in TMPDIR (the watch's
 * own state folder: pd_fs_replace_from). 0, -errno, PD_ESTATE or PD_ENOMEM.
 */
int pd_follow_receipt_update(const char *path, const char *tmpdir,
                             const struct pd_follow_result *res);

/*
 * What a receipt already says of CHUNK's run RUN_ID (the run followed now): its final outcome
 * and when it was seen final (wall ms, 0 when the receipt does not say), or PD_RUN_RUNNING when
 * it says nothing final of that run. A restart reads it before polling a run whose outcome a
 * kill may have written but not yet cleared from its record.
 */
enum pd_run_outcome pd_follow_receipt_outcome(const char *receipt, size_t len, unsigned chunk,
                                              const char *run_id, uint64_t *finished_ms);
/* The same on the receipt at PATH: 0 or -errno (then *O is PD_RUN_RUNNING). */
int pd_follow_saved_outcome(const char *path, unsigned chunk, const char *run_id,
                            enum pd_run_outcome *o, uint64_t *finished_ms);

#endif
