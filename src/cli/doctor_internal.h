/*
 * What the files of `patchdrop doctor` share: cli_doctor.c (the command, the config, access,
 * DNS, TCP and TLS) and doctor_api.c (the login and one read-only call per API family, with the
 * shapes of their answers). Not a public interface.
 */
#ifndef PD_DOCTOR_INTERNAL_H
#define PD_DOCTOR_INTERNAL_H

#include "pd_cli_net.h"
#include "pd_config.h"
#include "pd_doctor.h"

#include <stdbool.h>
#include <stddef.h>

/* The last answer a doctor's request got, copied out of the client's callback. */
struct doctor_answer {
    int err;       /* as pd_client_result.err */
    long status;   /* HTTP status, 0: none */
    char *message; /* words for an error, or NULL */
    char *body;    /* the answer (wiped before it is freed: a login's holds the token) */
    size_t body_len;
    char *run_id;
};

struct doctor {
    struct pd_checks checks;
    struct pd_config *cfg;
    /* The patchworks settings requests use: the config's, retrying for a short while only. */
    struct pd_patchworks pw;
    struct pd_cli_net net;
    bool net_open;
    bool reachable[4];    /* each endpoint (login, start, core, lookups) passed DNS, TCP, TLS */
    bool authorized;      /* the login passed, or an API key is used */
    const char *flow_run; /* --flow-run ID */
    const char *user;     /* --user: whose access is checked; NULL: the service's */
    char *start_flow;     /* --start-test FLOW[:VERSION], split */
    char *start_version;  /* NULL: none given */
    char *started_run;    /* the run --start-test started, read next unless --flow-run */
    struct doctor_answer ans;
};

/* Endpoint indexes of doctor.reachable. */
enum { DOCTOR_LOGIN, DOCTOR_START, DOCTOR_CORE, DOCTOR_LOOKUPS };

/* Adds a check; out of memory is said once at the end (the list stays as it was). */
#define CHECK(d, status, name, fix, ...)                                                           \
    ((void)pd_checks_add(&(d)->checks, (status), (name), (fix), __VA_ARGS__))

/* doctor_api.c: the login (or the API key), the lookups list, --flow-run, --start-test. */
void doctor_login(struct doctor *d);
void doctor_lookups(struct doctor *d);
void doctor_flow_run(struct doctor *d);
void doctor_start_test(struct doctor *d);
void doctor_answer_clear(struct doctor_answer *a);

#endif
