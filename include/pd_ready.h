/*
 * When a file in a drop folder is ready to send: the name passes the include/exclude lists, its
 * size, mtime and inode have stayed unchanged for `settle` as measured by patchdrop itself (a
 * copy that keeps an old mtime still waits), its mtime is older than `min_age`, and its done
 * marker exists when one is configured. Pure: no I/O; time is passed in.
 */
#ifndef PD_READY_H
#define PD_READY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

struct pd_ready_rules {
    char **include; /* NULL-terminated glob lists, owned */
    char **exclude;
    char *done_marker; /* template with {name}, or NULL */
    uint64_t settle_ms;
    uint64_t min_age_ms;
};

/* What patchdrop last saw of one file. Zero it before the first observation. */
struct pd_ready_obs {
    uint64_t size;
    int64_t mtime_ns;
    uint64_t ino, dev;
    uint64_t unchanged_since_ms; /* monotonic time the current size/mtime/inode were first seen */
    bool seen;
};

/* What separates the globs of an include or exclude list. */
#define PD_READY_GLOB_SEPARATORS " \t,;"

/* Builds rules from the config's glob lists (see PD_READY_GLOB_SEPARATORS). Returns 0 or
 * PD_ENOMEM. */
int pd_ready_rules_init(struct pd_ready_rules *r, const char *include, const char *exclude,
                        const char *done_marker, uint64_t settle_ms, uint64_t min_age_ms);
void pd_ready_rules_cleanup(struct pd_ready_rules *r);

/*
 * Whether NAME (a plain file name, no folder) is a candidate: matches include, not exclude, and
 * is not itself a done marker.
 */
bool pd_ready_name_wanted(const struct pd_ready_rules *r, const char *name);

/* The marker's file name for NAME into OUT; false when no marker is configured or it does not fit.
 */
bool pd_ready_marker_name(const struct pd_ready_rules *r, const char *name, char *out, size_t len);

/*
 * Records a fresh stat of the file at monotonic time NOW_MS (wall-clock NOW_WALL_MS for
 * min_age) and says how long to wait: 0 when it is ready now, otherwise the milliseconds after
 * which it is worth looking again. Any change of size, mtime or inode restarts the settle time.
 */
uint64_t pd_ready_observe(const struct pd_ready_rules *r, struct pd_ready_obs *o,
                          const struct stat *st, uint64_t now_ms, uint64_t now_wall_ms);

#endif
