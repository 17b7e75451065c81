/*
 * The command line of patchdrop-mock, kept out of main.c so the tests can check it. Durations
 * and sizes use the config file's parsers (include/pd_config.h).
 */
#include "mock.h"

#include "pd_config.h"
#include "pd_error.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The config file's value syntax, so users type the same durations and sizes everywhere. */
int pd_mock_parse_duration(const char *s, uint64_t *ms)
{
    return s && !pd_parse_duration(s, ms) ? 0 : PD_EUSAGE;
}

int pd_mock_parse_size(const char *s, uint64_t *bytes)
{
    return s && !pd_parse_size(s, bytes) ? 0 : PD_EUSAGE;
}

static int parse_rate(const char *s, double *p)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= 0.0 && v <= 1.0))
        return PD_EUSAGE;
    *p = v;
    return 0;
}

static int parse_uint(const char *s, uint64_t max, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return PD_EUSAGE;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || errno || v > max)
        return PD_EUSAGE;
    *out = v;
    return 0;
}

static void usage(FILE *out)
{
    fputs("usage: patchdrop-mock [OPTIONS]\n"
          "Plays the Patchworks API on loopback for demos, tests and benchmarks.\n\n"
          "  --port N             port to listen on; 0 (default) picks a free one\n"
          "  --port-file F        write the port to F once listening\n"
          "  --bind ADDR          address to listen on (default 127.0.0.1)\n"
          "  --user U             login email or username (default demo@example.com)\n"
          "  --password P         login password (default demo)\n"
          "  --api-key KEY        also accept KEY as a raw Authorization header\n"
          "  --token-ttl DUR      bearer token lifetime (default 24h)\n"
          "  --max-body SIZE      largest request body, else 413 (default 8000000)\n"
          "  --seed N             seed of the random faults below (default 0)\n"
          "  --fail-rate P        share of start-flow requests answered 500/502/503\n"
          "  --fail-401-rate P    share of start-flow requests whose token is revoked (401)\n"
          "  --drop-rate P        share of start-flow requests closed without an answer\n"
          "  --latency DUR        delay before every answer\n"
          "  --rate-limit N       requests per window; over it 429 with Retry-After (0: off)\n"
          "  --rate-window DUR    the rate limit's window (default 60s)\n"
          "  --script LIST        outcomes of the next start-flow requests, comma separated:\n"
          "                       ok drop hang truncate 401 403 404 408 413 422 429 500 502\n"
          "                       503 504 429:SECS 503:SECS\n"
          "  --run-duration DUR   how long a flow run stays running (default 0: final at once)\n"
          "  --run-script WORDS   outcomes of the next flow runs created, comma separated:\n"
          "                       ok fail stop partial (then ok)\n"
          "  --run-fail-marker T  a run whose payload holds T fails\n"
          "  --run-fail-rate P    share of flow runs that fail\n"
          "  --run-stop-rate P    share of flow runs that are stopped\n"
          "  --run-partial-rate P share of flow runs that partly succeed\n"
          "  --run-retry-succeeds a retried run of a marker payload succeeds\n"
          "  --shape LIST         answer with a key renamed, comma separated: login (token ->\n"
          "                       jwt, expires_in -> expires), lookups (data -> items), run\n"
          "                       (status -> state)\n"
          "  --record DIR         write payloads to DIR/payloads/, requests to\n"
          "                       DIR/requests.jsonl and flow runs to DIR/runs.jsonl\n"
          "  --exit-after DUR     exit by itself after DUR (a safety net for scripts)\n"
          "  --quiet              no line per request on stderr\n"
          "Durations: 250ms 2s 1.5m 1h 1d (plain number: seconds). Sizes: bytes, kB MB GB\n"
          "(powers of 1000), KiB MiB GiB (powers of 1024).\n"
          "Stops cleanly (exit 0) on SIGTERM or SIGINT.\n",
          out);
}

/* How an option's value is read. */
enum kind {
    K_TEXT,
    K_PORT,
    K_NUMBER,
    K_RATE,
    K_DURATION,
    K_SIZE,
    K_SCRIPT,
    K_RUN_SCRIPT,
    K_SHAPE,
    K_FLAG,
    K_HELP
};

/* One option: its name, its kind, the field it fills and what a bad value should have been. */
struct opt_spec {
    const char *name;
    enum kind kind;
    bool in_cli; /* the field is in struct pd_mock_cli, else in struct pd_mock_options */
    size_t off;
    bool nonzero; /* 0 is refused */
    const char *expect;
};

#define OPT(field) false, offsetof(struct pd_mock_options, field)
#define CLI(field) true, offsetof(struct pd_mock_cli, field)
#define PROBABILITY "a probability from 0 to 1"

static const struct opt_spec specs[] = {
    {"port", K_PORT, OPT(port), false, "a port number from 0 to 65535"},
    {"port-file", K_TEXT, CLI(port_file), false, NULL},
    {"bind", K_TEXT, OPT(bind), false, NULL},
    {"user", K_TEXT, OPT(user), false, NULL},
    {"password", K_TEXT, OPT(password), false, NULL},
    {"api-key", K_TEXT, OPT(api_key), false, NULL},
    {"token-ttl", K_DURATION, OPT(token_ttl_ms), true,
     "a duration above 0 such as 500ms, 30s, 24h"},
    {"max-body", K_SIZE, OPT(max_body), true, "a size above 0 such as 8000000, 8MB, 64KiB"},
    {"seed", K_NUMBER, OPT(seed), false, "a whole number"},
    {"fail-rate", K_RATE, OPT(fail_rate), false, PROBABILITY},
    {"fail-401-rate", K_RATE, OPT(fail_401_rate), false, PROBABILITY},
    {"latency", K_DURATION, OPT(latency_ms), false, "a duration such as 50ms or 1s"},
    {"drop-rate", K_RATE, OPT(drop_rate), false, PROBABILITY},
    {"rate-limit", K_NUMBER, OPT(rate_limit), false, "a number of requests (0: no limit)"},
    {"rate-window", K_DURATION, OPT(rate_window_ms), true, "a duration above 0 such as 1s or 60s"},
    {"script", K_SCRIPT, OPT(script), false, NULL},
    {"run-duration", K_DURATION, OPT(run_duration_ms), false, "a duration such as 0, 2s or 5m"},
    {"run-script", K_RUN_SCRIPT, OPT(run_script), false, NULL},
    {"run-fail-marker", K_TEXT, OPT(run_fail_marker), false, NULL},
    {"run-fail-rate", K_RATE, OPT(run_fail_rate), false, PROBABILITY},
    {"run-stop-rate", K_RATE, OPT(run_stop_rate), false, PROBABILITY},
    {"run-partial-rate", K_RATE, OPT(run_partial_rate), false, PROBABILITY},
    {"run-retry-succeeds", K_FLAG, OPT(run_retry_succeeds), false, NULL},
    {"shape", K_SHAPE, OPT(shape), false, NULL},
    {"record", K_TEXT, OPT(record_dir), false, NULL},
    {"exit-after", K_DURATION, CLI(exit_after_ms), false, "a duration such as 30s or 10m"},
    {"quiet", K_FLAG, OPT(quiet), false, NULL},
    {"help", K_HELP, false, 0, false, NULL},
};

#define NSPECS (sizeof(specs) / sizeof(specs[0]))
#define FIRST_VAL 256 /* getopt_long's value of specs[0]; above every short option */

/* Stores VALUE in the field of S. Returns 0, or 1 when VALUE is not what S expects. */
static int set_value(const struct opt_spec *s, const char *value, struct pd_mock_options *opts,
                     struct pd_mock_cli *cli)
{
    char *field = (s->in_cli ? (char *)cli : (char *)opts) + s->off;
    uint64_t v;
    switch (s->kind) {
    case K_TEXT:
    case K_SCRIPT:
    case K_RUN_SCRIPT:
    case K_SHAPE:
        *(const char **)field = value;
        return 0;
    case K_FLAG:
        *(bool *)field = true;
        return 0;
    case K_PORT:
        if (parse_uint(value, 65535, &v))
            return 1;
        *(uint16_t *)field = (uint16_t)v;
        return 0;
    case K_NUMBER:
        return parse_uint(value, UINT64_MAX, (uint64_t *)field) != 0;
    case K_RATE:
        return parse_rate(value, (double *)field) != 0;
    case K_DURATION:
        return pd_mock_parse_duration(value, (uint64_t *)field) ||
               (s->nonzero && !*(uint64_t *)field);
    case K_SIZE:
        return pd_mock_parse_size(value, (uint64_t *)field) || (s->nonzero && !*(uint64_t *)field);
    default:
        return 0;
    }
}

static int usage_error(char **err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Sets *ERR (when ERR is not NULL) and returns PD_EUSAGE. */
static int usage_error(char **err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    if (err && vasprintf(err, fmt, ap) < 0)
        *err = NULL;
    va_end(ap);
    return PD_EUSAGE;
}

/* Script and shape lists are parsed now, so a mistake stops the program before it listens. */
static int check_script(const struct opt_spec *s, const char *list, char **err)
{
    struct mock_script tmp = {0};
    int *statuses = NULL;
    size_t n;
    char *why = NULL;
    unsigned shape;
    int rc = s->kind == K_SCRIPT   ? mock_script_parse(list, &tmp, &why)
             : s->kind == K_SHAPE ? mock_shape_parse(list, &shape, &why)
                                  : mock_run_script_parse(list, &statuses, &n, &why);
    if (rc)
        usage_error(err, "--%s: %s", s->name, why ? why : "invalid");
    free(why);
    free(statuses);
    mock_script_cleanup(&tmp);
    return rc ? PD_EUSAGE : 0;
}

int pd_mock_args_parse(int argc, char **argv, struct pd_mock_options *opts, struct pd_mock_cli *cli,
                       FILE *out, char **err)
{
    struct option longopts[NSPECS + 1];
    int c, idx = 0;

    for (size_t i = 0; i < NSPECS; i++) {
        int flag = specs[i].kind == K_FLAG || specs[i].kind == K_HELP;
        longopts[i] = (struct option){specs[i].name, flag ? no_argument : required_argument, NULL,
                                      FIRST_VAL + (int)i};
    }
    longopts[NSPECS] = (struct option){NULL, 0, NULL, 0};
    if (err)
        *err = NULL;
    cli->port_file = NULL;
    cli->exit_after_ms = 0;
    optind = 0; /* full re-initialisation (glibc), so the tests can parse several times */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, &idx)) != -1) {
        const struct opt_spec *s =
            c >= FIRST_VAL && c < FIRST_VAL + (int)NSPECS ? &specs[c - FIRST_VAL] : NULL;
        if (c == 'h' || (s && s->kind == K_HELP)) {
            usage(out ? out : stdout);
            return 1;
        }
        if (c == ':') {
            const char *name = "an option";
            for (const struct option *o = longopts; o->name; o++)
                if (o->val == optopt)
                    name = o->name;
            return usage_error(err, "--%s needs a value (see --help)", name);
        }
        if (!s)
            return usage_error(err, "unknown option %s (see --help)", argv[optind - 1]);
        if ((s->kind == K_SCRIPT || s->kind == K_RUN_SCRIPT || s->kind == K_SHAPE) &&
            check_script(s, optarg, err))
            return PD_EUSAGE;
        if (set_value(s, optarg, opts, cli))
            return usage_error(err, "--%s '%s': expected %s", s->name, optarg, s->expect);
    }
    if (optind < argc)
        return usage_error(err, "unexpected argument '%s' (see --help)", argv[optind]);
    return 0;
}
