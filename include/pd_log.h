/*
 * The daemon's log: one line per event, `event=NAME key=value ...`, to stderr (or the stream
 * given to pd_log_set_output). A value with spaces, quotes or control characters is quoted and
 * escaped by pd_log_quote(). Never pass a secret here.
 *
 * Two formats: text (`TIME level=info event=... key=value`) and json (one object per line,
 * words that are not key=value pairs gathered under "msg"). In json a value written without
 * quotes that reads as a JSON number (at most 15 digits, so every reader keeps it exactly) or
 * as true/false is written as one; every other value, and every quoted one, is a string.
 * pd_log_quote() quotes a value that would read as a number or boolean, so a name such as
 * "2024" stays a string: print counts with %d and the like, names through pd_log_quote().
 * Under systemd (JOURNAL_STREAM set) a line starts with a <N> syslog priority and carries no
 * time, since journald adds its own and keeps the level from the prefix. When stderr is the
 * journal's stream (JOURNAL_STREAM names it) and the output is not redirected, each line is
 * sent to journald natively instead, with PRIORITY= and the fields EVENT=, WATCH= and FILE=
 * taken from its event=, watch= and file= (`journalctl -u patchdrop WATCH=orders`).
 *
 * A warning or error that repeats is written once; the copies that follow within the repeat
 * window are counted, and one `event=repeated times=N` line (with the last copy) is written when
 * the window is over. Two lines are copies when they are equal but for their digits, so
 * "retry in 1.2 s" and "retry in 3.4 s" are one line repeated. Safe to call from any thread.
 */
#ifndef PD_LOG_H
#define PD_LOG_H

#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

enum pd_log_level { PD_LOG_DEBUG, PD_LOG_INFO, PD_LOG_WARN, PD_LOG_ERROR };
/*
 * OR'd into a level: this line is never folded into an `event=repeated` summary, because every
 * occurrence matters to a person (a request that may have started a flow run without an answer).
 */
#define PD_LOG_EVERY 0x10
enum pd_log_format { PD_LOG_TEXT, PD_LOG_JSON };

struct pd_clock;

void pd_log_set_level(enum pd_log_level level);
void pd_log_set_format(enum pd_log_format format);
/* Where lines go; NULL: stderr. */
void pd_log_set_output(FILE *out);
/* Time source for timestamps and the repeat window; NULL: the system clock. */
void pd_log_set_clock(const struct pd_clock *clock);
/* How long copies of a warning or error are counted before a summary; 0: never suppress. */
void pd_log_set_repeat_window(uint64_t ms);

void pd_log(enum pd_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Whether a line of LEVEL would be written: traces skip building their words when not. */
bool pd_log_enabled(enum pd_log_level level);

/*
 * Writes the summary of every repeated line whose window is over (ALL: of every one, e.g. at
 * exit) and forgets those lines. The daemon calls it every second.
 */
void pd_log_flush_repeats(int all);

/*
 * VALUE made safe for one key=value field (quoted when needed) into BUF; returns BUF. Escapes
 * as pd_log_escape() does, and '"' and '\\' too. Quoted too when it would read as a number or
 * boolean, so it is a string in JSON lines whatever it holds.
 */
const char *pd_log_quote(const char *value, char *buf, size_t len);

/*
 * The journal fields of MSG, a key=value line: "EVENT=...", "WATCH=..." and "FILE=..." for the
 * first event=, watch= and file= it has, each value unquoted and escaped as pd_log_escape()
 * does (cut to fit). Writes at most MAX into FIELDS, in the order of the line; returns how many.
 */
#define PD_LOG_FIELD_MAX 1024
size_t pd_log_journal_fields(const char *msg, char (*fields)[PD_LOG_FIELD_MAX], size_t max);

/*
 * VALUE made safe to print on a terminal, into BUF (LEN bytes); returns BUF. For every file name
 * and every string from a partner or from Patchworks (server messages, run ids) that goes to
 * stdout or stderr. Control characters (C0, DEL, C1 whether raw or UTF-8 encoded) and bytes that
 * are not valid UTF-8 become \xNN, a newline \n; valid UTF-8 text stays as it is, so names stay
 * readable. A backslash is kept as it is, so escaping twice changes nothing. Cut, never inside a
 * character or an escape, when BUF is too small (4 x strlen + 1 always fits). NULL: "".
 */
/* Length of the valid UTF-8 sequence at S (at most N bytes), or 0 when it is not valid
 * (overlong forms, surrogates and code points over U+10FFFF included). */
size_t pd_utf8_len(const unsigned char *s, size_t n);

const char *pd_log_escape(const char *value, char *buf, size_t len);

#endif
