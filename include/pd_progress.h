/*
 * A progress bar and a final summary table for people watching `send` or `run --once` on a
 * terminal: files, bytes, rate and time left, redrawn in place on one line of stderr. Callers
 * show it only when stderr is a terminal (pd_progress_init decides), so logs and pipes never see
 * it. Other output to the same terminal goes through pd_progress_wrap(), which wipes the bar
 * first so no line is ever written over it. Time is passed in.
 */
#ifndef PD_PROGRESS_H
#define PD_PROGRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct pd_progress_state {
    uint64_t files_done, files_total; /* done: delivered, duplicate or failed */
    uint64_t files_failed;
    uint64_t bytes_done, bytes_total; /* file bytes */
    uint64_t chunks;                  /* acknowledged chunks */
    const char *total_words;          /* what files_total counts, e.g. "claimed"; NULL: files */
    /* run --once with follow = yes: the flow runs' outcomes (all 0: no rows for them) */
    uint64_t runs_succeeded, runs_failed, runs_unknown;
};

struct pd_progress {
    FILE *tty;   /* where the bar goes; NULL: off */
    bool drawn;  /* the bar is on screen now */
    uint64_t start_ms;
    FILE *wrapped[2];
};

/* On when FORCE, or when OUT is a terminal (and TERM is not "dumb"). */
void pd_progress_init(struct pd_progress *p, FILE *out, bool force, uint64_t now_ms);
bool pd_progress_on(const struct pd_progress *p);

/*
 * Time left, in seconds, at NOW_MS: the bytes still to go at the rate seen since the start.
 * -1 until that rate is measurable: before PD_PROGRESS_ETA_WARMUP_MS have passed, and before
 * PD_PROGRESS_ETA_MIN_PERMILLE of the bytes are done (bytes count when a chunk or file is done,
 * so an early rate is one small file's, and would promise hours for a big one); -1 too without
 * a byte total. 0 when all is done. Never more than PD_PROGRESS_ETA_MAX_S, which the bar shows
 * as ">99:59:59". Pure.
 */
#define PD_PROGRESS_ETA_WARMUP_MS 3000
#define PD_PROGRESS_ETA_MIN_PERMILLE 10
#define PD_PROGRESS_ETA_MAX_S (100 * 3600 - 1)
int64_t pd_progress_eta(const struct pd_progress *p, const struct pd_progress_state *s,
                        uint64_t now_ms);

/* The bar's text for S at NOW_MS into BUF (no control characters). Pure. */
void pd_progress_line(const struct pd_progress *p, const struct pd_progress_state *s,
                      uint64_t now_ms, char *buf, size_t len);
void pd_progress_draw(struct pd_progress *p, const struct pd_progress_state *s, uint64_t now_ms);
/* Wipes the bar off the screen (it comes back at the next draw). */
void pd_progress_clear(struct pd_progress *p);

/*
 * A stream that writes to UNDER, wiping the bar before every write; for the log and report
 * lines that share the terminal. Off: UNDER itself. Closed by pd_progress_cleanup.
 */
FILE *pd_progress_wrap(struct pd_progress *p, FILE *under);

/*
 * A stream for report lines that carry file names and Patchworks' words, which partners and
 * servers choose: each line reaches UNDER with its control characters and invalid UTF-8 escaped
 * (pd_log_escape), but for the newline that ends it. A line is what one fflush() hands over, so
 * the writer must flush after every line (a newline inside a name is then escaped, never taken
 * for the end of the line); lines not flushed one by one only come out joined, never raw.
 * NULL when out of memory. fclose() it (UNDER stays open).
 */
FILE *pd_progress_escaping(FILE *under);

/* The table: one row per outcome, totals, time, rate. Nothing when off. */
void pd_progress_summary(struct pd_progress *p, const struct pd_progress_state *s,
                         uint64_t now_ms);

void pd_progress_cleanup(struct pd_progress *p);

/* "1.2 MB" (powers of 1000, like the config's sizes). */
void pd_progress_bytes(uint64_t n, char *buf, size_t len);

#endif
