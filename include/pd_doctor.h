/*
 * `patchdrop doctor`, its pure parts (src/cli/doctor_report.c): the list of checks it made and
 * how they are said (one line each for a person, one JSON document for a script), and the
 * comparison of an answer's shape with what patchdrop expects of it. No I/O but the FILE given.
 */
#ifndef PD_DOCTOR_H
#define PD_DOCTOR_H

#include <stddef.h>
#include <stdio.h>

enum pd_check_status {
    PD_CHECK_OK,
    PD_CHECK_WARN, /* works, but look at it (a certificate running out, an unexpected key) */
    PD_CHECK_FAIL,
    PD_CHECK_SKIP, /* not checked: it depends on a check that failed, or does not apply */
};

struct pd_check {
    enum pd_check_status status;
    char *name;   /* what was checked: "dns login_url", "login", "shape lookups" */
    char *detail; /* what was found, in words */
    char *fix;    /* what to do, or NULL */
};

struct pd_checks {
    struct pd_check *v;
    size_t n, cap;
};

/* "ok", "warn", "FAIL", "skip". */
const char *pd_check_status_name(enum pd_check_status s);

/* Adds a check (its words copied); FIX may be NULL. Returns 0 or PD_ENOMEM. */
int pd_checks_add(struct pd_checks *c, enum pd_check_status status, const char *name,
                  const char *fix, const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void pd_checks_free(struct pd_checks *c);

/* The worst status seen (skip counts as ok). */
enum pd_check_status pd_checks_worst(const struct pd_checks *c);

/* 0 when nothing failed (warnings allowed), 1 when a check failed. */
int pd_checks_exit(const struct pd_checks *c);

/*
 * One line per check: "ok    NAME: DETAIL", and " -> FIX" after it when there is one; then a
 * summary line. Words that came from a server are escaped (no control characters reach the
 * terminal).
 */
void pd_checks_print(const struct pd_checks *c, FILE *out);

/* {"status": worst, "checks": [{"name","status","detail","fix"}...]} with a newline; malloc'd,
 * or NULL when out of memory. Status words are lower case here ("fail"). */
char *pd_checks_json(const struct pd_checks *c);

/*
 * Where an answer holds what patchdrop reads. PATHS (NULL-terminated) are the places patchdrop
 * accepts, in its order: "token", "data.token" (members through objects), "data[]" (a member
 * that is a list), "[]" (the answer itself is a list). Returns the index of the first path
 * present, -1 when none is (SEEN then lists the keys the answer has, comma separated, three
 * levels deep: "message, data.jwt, data.ttl"; never a value), -2 when the answer is not JSON.
 */
int pd_shape_find(const char *body, size_t len, const char *const *paths, char *seen,
                  size_t seenlen);

/* PATHS as words for a message: "token, access_token, data.token". */
void pd_shape_paths(const char *const *paths, char *out, size_t outlen);

#endif
