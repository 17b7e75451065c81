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
          "  --record DIR         write payloads to DIR/payloads/ and requests to\n"
          "                       DIR/requests.jsonl\n"
          "  --exit-after DUR     exit by itself after DUR (a safety net for scripts)\n"
          "  --quiet              no line per request on stderr\n"
          "Durations: 250ms 2s 1.5m 1h 1d (plain number: seconds). Sizes: bytes, kB MB GB\n"
          "(powers of 1000), KiB MiB GiB (powers of 1024).\n"
          "Stops cleanly (exit 0) on SIGTERM or SIGINT.\n",
          out);
}

int pd_mock_args_parse(int argc, char **argv, struct pd_mock_options *opts, struct pd_mock_cli *cli,
                       FILE *out, char **err)
{
    enum {
        O_PORT = 256,
        O_PORT_FILE,
        O_BIND,
        O_USER,
        O_PASSWORD,
        O_API_KEY,
        O_TTL,
        O_MAX_BODY,
        O_SEED,
        O_FAIL,
        O_FAIL401,
        O_LATENCY,
        O_DROP,
        O_RATE,
        O_WINDOW,
        O_SCRIPT,
        O_RECORD,
        O_EXIT_AFTER,
        O_QUIET,
        O_HELP,
    };
    static const struct option longopts[] = {
        {"port", required_argument, NULL, O_PORT},
        {"port-file", required_argument, NULL, O_PORT_FILE},
        {"bind", required_argument, NULL, O_BIND},
        {"user", required_argument, NULL, O_USER},
        {"password", required_argument, NULL, O_PASSWORD},
        {"api-key", required_argument, NULL, O_API_KEY},
        {"token-ttl", required_argument, NULL, O_TTL},
        {"max-body", required_argument, NULL, O_MAX_BODY},
        {"seed", required_argument, NULL, O_SEED},
        {"fail-rate", required_argument, NULL, O_FAIL},
        {"fail-401-rate", required_argument, NULL, O_FAIL401},
        {"latency", required_argument, NULL, O_LATENCY},
        {"drop-rate", required_argument, NULL, O_DROP},
        {"rate-limit", required_argument, NULL, O_RATE},
        {"rate-window", required_argument, NULL, O_WINDOW},
        {"script", required_argument, NULL, O_SCRIPT},
        {"record", required_argument, NULL, O_RECORD},
        {"exit-after", required_argument, NULL, O_EXIT_AFTER},
        {"quiet", no_argument, NULL, O_QUIET},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *expect = NULL;
    uint64_t v = 0;
    int c, idx = 0;

    if (err)
        *err = NULL;
    cli->port_file = NULL;
    cli->exit_after_ms = 0;
    optind = 0; /* full re-initialisation (glibc), so the tests can parse several times */
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, &idx)) != -1) {
        switch (c) {
        case O_PORT:
            if (parse_uint(optarg, 65535, &v))
                expect = "a port number from 0 to 65535";
            opts->port = (uint16_t)v;
            break;
        case O_PORT_FILE:
            cli->port_file = optarg;
            break;
        case O_BIND:
            opts->bind = optarg;
            break;
        case O_USER:
            opts->user = optarg;
            break;
        case O_PASSWORD:
            opts->password = optarg;
            break;
        case O_API_KEY:
            opts->api_key = optarg;
            break;
        case O_TTL:
            if (pd_mock_parse_duration(optarg, &opts->token_ttl_ms) || !opts->token_ttl_ms)
                expect = "a duration above 0 such as 500ms, 30s, 24h";
            break;
        case O_MAX_BODY:
            if (pd_mock_parse_size(optarg, &opts->max_body) || !opts->max_body)
                expect = "a size above 0 such as 8000000, 8MB, 64KiB";
            break;
        case O_SEED:
            if (parse_uint(optarg, UINT64_MAX, &opts->seed))
                expect = "a whole number";
            break;
        case O_FAIL:
            if (parse_rate(optarg, &opts->fail_rate))
                expect = "a probability from 0 to 1";
            break;
        case O_FAIL401:
            if (parse_rate(optarg, &opts->fail_401_rate))
                expect = "a probability from 0 to 1";
            break;
        case O_DROP:
            if (parse_rate(optarg, &opts->drop_rate))
                expect = "a probability from 0 to 1";
            break;
        case O_LATENCY:
            if (pd_mock_parse_duration(optarg, &opts->latency_ms))
                expect = "a duration such as 50ms or 1s";
            break;
        case O_RATE:
            if (parse_uint(optarg, UINT64_MAX, &opts->rate_limit))
                expect = "a number of requests (0: no limit)";
            break;
        case O_WINDOW:
            if (pd_mock_parse_duration(optarg, &opts->rate_window_ms) || !opts->rate_window_ms)
                expect = "a duration above 0 such as 1s or 60s";
            break;
        case O_SCRIPT: {
            struct mock_script tmp = {0};
            char *why = NULL;
            if (mock_script_parse(optarg, &tmp, &why)) {
                if (err && asprintf(err, "--script: %s", why ? why : "invalid") < 0)
                    *err = NULL;
                free(why);
                return PD_EUSAGE;
            }
            mock_script_cleanup(&tmp);
            opts->script = optarg;
            break;
        }
        case O_RECORD:
            opts->record_dir = optarg;
            break;
        case O_EXIT_AFTER:
            if (pd_mock_parse_duration(optarg, &cli->exit_after_ms))
                expect = "a duration such as 30s or 10m";
            break;
        case O_QUIET:
            opts->quiet = true;
            break;
        case 'h':
        case O_HELP:
            usage(out ? out : stdout);
            return 1;
        case ':': {
            const char *name = "an option";
            for (const struct option *o = longopts; o->name; o++)
                if (o->val == optopt)
                    name = o->name;
            if (err && asprintf(err, "--%s needs a value (see --help)", name) < 0)
                *err = NULL;
            return PD_EUSAGE;
        }
        default:
            if (err && asprintf(err, "unknown option %s (see --help)", argv[optind - 1]) < 0)
                *err = NULL;
            return PD_EUSAGE;
        }
        if (expect) {
            if (err &&
                asprintf(err, "--%s '%s': expected %s", longopts[idx].name, optarg, expect) < 0)
                *err = NULL;
            return PD_EUSAGE;
        }
    }
    if (optind < argc) {
        if (err && asprintf(err, "unexpected argument '%s' (see --help)", argv[optind]) < 0)
            *err = NULL;
        return PD_EUSAGE;
    }
    return 0;
}
