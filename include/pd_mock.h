/*
 * patchdrop-mock: the Patchworks API played on loopback (libmicrohttpd), for the demo, the tests
 * and the benchmarks. It implements the contract written down in docs/patchworks-api.md: both
 * login forms, API keys, start-flow with its 401/413/422 answers, flow-run lookups and the
 * cross-reference lookups with their rows, plus faults a real network and a real server produce
 * (5xx, revoked tokens, dropped connections, hangs, truncated answers, rate limiting), either
 * scripted request by request or drawn from a seeded generator so every run can be repeated.
 *
 * The server runs in its own threads (one per connection), so a test can start it in-process,
 * talk to it with libcurl from the test thread and stop it with pd_mock_destroy().
 */
#ifndef PD_MOCK_H
#define PD_MOCK_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

struct pd_mock;

struct pd_mock_options {
    const char *bind;        /* listening address, default "127.0.0.1" (IPv4 or IPv6 literal) */
    uint16_t port;           /* 0: a free port, see pd_mock_port() */
    const char *user;        /* default "demo@example.com"; matched against email or username */
    const char *password;    /* default "demo" */
    const char *api_key;     /* NULL: API keys are refused */
    uint64_t token_ttl_ms;   /* default 24 h */
    uint64_t max_body;       /* bytes of one request body, default 8000000 */
    uint64_t seed;           /* seeds every random fault */
    double fail_rate;        /* start-flow requests answered 500, 502 or 503 */
    double fail_401_rate;    /* start-flow requests whose bearer token is revoked, answered 401 */
    double drop_rate;        /* start-flow requests whose connection is closed without answer */
    uint64_t latency_ms;     /* added before every answer */
    uint64_t rate_limit;     /* requests per window, 0: unlimited; over it 429 + Retry-After */
    uint64_t rate_window_ms; /* default 60 s */
    const char *script;      /* per start-flow request outcomes, see pd_mock_script_set() */
    /* Flow runs: running for run_duration_ms after they are created (0: final at once), then
     * final with an outcome decided when the run is created: the run_script word of the Nth
     * run created (ok fail stop partial, comma separated; then ok), else failed when the
     * payload holds run_fail_marker, else drawn from the rates (seeded by seed). */
    uint64_t run_duration_ms;
    double run_fail_rate;
    double run_stop_rate;
    double run_partial_rate;
    const char *run_fail_marker; /* NULL: none */
    const char *run_script;      /* NULL: none; checked by pd_mock_create() */
    bool run_retry_succeeds;     /* a retried marker run does not fail again */
    /* Answers with a key renamed, to test clients against an unexpected shape: "login",
     * "lookups", "run", comma separated (docs/mock.md); NULL: as documented. */
    const char *shape;
    const char *record_dir;      /* NULL: record nothing */
    bool quiet;                  /* no request lines on the log stream */
    FILE *log;                   /* request lines and errors, default stderr */
    /* The clock for token expiry and the rate window, in ms; NULL: CLOCK_MONOTONIC. Tests
     * inject one so expiry needs no sleeping. Called from server threads. */
    uint64_t (*clock_ms)(void *ud);
    void *clock_ud;
};

/* Counters a test can poll (all since start). */
struct pd_mock_stats {
    uint64_t requests;     /* every request that reached the handler */
    uint64_t logins;       /* successful logins */
    uint64_t runs;         /* flow runs created, retries included (= last flow_run_id) */
    uint64_t retries;      /* runs created by a retry */
    uint64_t start_flow;   /* start-flow requests, whatever their answer */
    uint64_t hangs_active; /* connections held by a `hang` right now */
    uint64_t script_left;  /* script entries not yet consumed */
};

/* Fills OPTS with the defaults above. */
void pd_mock_options_init(struct pd_mock_options *opts);

/*
 * Creates the emulator and starts listening. On failure returns a negative code and, when ERR
 * is not NULL, *err holds a sentence saying what is wrong (free it with free()).
 */
int pd_mock_create(const struct pd_mock_options *opts, struct pd_mock **out, char **err);

/* Stops listening, releases every hanging connection and frees; NULLs *mock. NULL is a no-op. */
void pd_mock_destroy(struct pd_mock **mock);

/* The port actually listened on. */
uint16_t pd_mock_port(const struct pd_mock *mock);

/*
 * Replaces the outcomes still pending for start-flow requests with LIST (comma separated,
 * consumed one per start-flow request, then normal behaviour): an HTTP status out of 401 403
 * 404 408 413 422 429 500 502 503 504, `429:N` or `503:N` (with Retry-After: N), `drop`, `hang`,
 * `truncate` or `ok`. NULL or "" clears it. Returns 0, or PD_EUSAGE with *err set when ERR is
 * not NULL (the pending script is then left as it was).
 */
int pd_mock_script_set(struct pd_mock *mock, const char *list, char **err);

/* Revokes every bearer token, as if they had all expired. */
void pd_mock_revoke_tokens(struct pd_mock *mock);

void pd_mock_stats(struct pd_mock *mock, struct pd_mock_stats *out);

/*
 * The command line of patchdrop-mock, shared with the tests. Fills OPTS (already initialised)
 * and the program-only settings. Returns 0, 1 when --help was asked (usage printed to OUT), or
 * PD_EUSAGE with *err saying which option is wrong and what it expects.
 */
struct pd_mock_cli {
    const char *port_file;  /* NULL: none */
    uint64_t exit_after_ms; /* 0: run until SIGTERM/SIGINT */
};
int pd_mock_args_parse(int argc, char **argv, struct pd_mock_options *opts, struct pd_mock_cli *cli,
                       FILE *out, char **err);

/* Value syntaxes of the command line, those of the config file (pd_parse_duration/size):
 * 250ms 2s 1.5m 1h 1d (plain number: seconds); bytes, kB/MB/GB (1000s), KiB/MiB/GiB (1024s).
 * Return 0 or PD_EUSAGE. */
int pd_mock_parse_duration(const char *s, uint64_t *ms);
int pd_mock_parse_size(const char *s, uint64_t *bytes);

#endif
