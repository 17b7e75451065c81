/*
 * `patchdrop status [--watch W] [--json]`: the running daemon's state, asked over its control
 * socket (<state dir>/patchdrop.sock, src/daemon/control.c), as a compact table or the JSON
 * document itself (README, "Status"). With no daemon answering it says so, shows what the
 * folders hold and exits 3.
 *
 * `patchdrop status RUN_ID` (one operand of digits) is the old name of `patchdrop flow-run
 * RUN_ID` (src/cli/cli_flow_run.c), kept working with a note on stderr to use the new name.
 *
 * Exit status: 0 the daemon answered, 1 it refused or answered nonsense, 2 usage or
 * configuration error, 3 the daemon is not running.
 */
#include "pd_cli.h"
#include "pd_config.h"
#include "pd_daemon.h"

#include <cjson/cJSON.h>

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define EXIT_NOT_RUNNING 3
#define ANSWER_MAX (64u << 20) /* the daemon's answer, at most */
#define ANSWER_TIMEOUT_S 10

static const struct pd_cli_spec old_spec = {
    .name = "status",
    .synopsis = "[-c FILE] RUN_ID",
    .help = "Deprecated: use patchdrop flow-run RUN_ID.\n",
    .common = PD_CLI_CONFIG,
    .max_args = 1,
};

enum { O_WATCH = 256, O_JSON, O_CLUSTER };

static const struct option status_opts[] = {{"watch", required_argument, NULL, O_WATCH},
                                            {"json", no_argument, NULL, O_JSON},
                                            {"cluster", no_argument, NULL, O_CLUSTER},
                                            {NULL, 0, NULL, 0}};

static const struct pd_cli_spec spec = {
    .name = "status",
    .synopsis = "[-c FILE] [--watch W] [--cluster] [--json] | RUN_ID",
    .help = "  -c, --config FILE  config file (default $PATCHDROP_CONFIG or "
            "/etc/patchdrop/patchdrop.conf)\n"
            "      --watch W      only the watch W\n"
            "      --json         the daemon's JSON document (fields in README, \"Status\")\n"
            "      --cluster      every host of the [cluster] (from Redis): alive or gone, on "
            "the shared rate or its own share, per watch its backlog and last delivery\n"
            "Shows what the running daemon is doing: per watch the files settling, claimed, "
            "being sent (chunk i of n, bytes), waiting for a retry, failed lately (with the "
            "reason) and delivered lately (with their flow runs); the account's requests in "
            "the current window, a pause after 429/503 and the token's expiry. Asked over "
            "<state dir>/patchdrop.sock: run it as patchdrop's user or a member of its group.\n"
            "When the daemon is not running, says so and counts what the folders hold.\n"
            "status RUN_ID (digits): deprecated name of patchdrop flow-run RUN_ID.\n"
            "Exit status: 0 the daemon answered, 1 it refused, 2 usage or configuration error, "
            "3 the daemon is not running.\n",
    .common = PD_CLI_CONFIG,
    .opts = status_opts,
    .max_args = 0,
};

/* `status RUN_ID`: one operand of digits, and none of the new options. */
static bool is_old_form(int argc, char **argv)
{
    int operands = 0;
    bool digits = false;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "-c") || !strcmp(a, "--config")) {
            i++;
            continue;
        }
        if (!strncmp(a, "--config=", 9))
            continue;
        if (a[0] == '-')
            return false;
        operands++;
        digits = a[strspn(a, "0123456789")] == '\0' && a[0];
    }
    return operands == 1 && digits;
}

/* NAME for a terminal: control characters (a drop folder's names are anyone's) as \xNN. */
static void put_name(FILE *out, const char *name)
{
    for (const unsigned char *p = (const unsigned char *)(name ? name : "?"); *p; p++) {
        if (*p < 0x20 || *p == 0x7f)
            fprintf(out, "\\x%02x", *p);
        else
            fputc(*p, out);
    }
}

/* ---- asking the daemon ---------------------------------------------------------------------- */

/* Connects to PATH: the descriptor, or -1 with errno. */
static int connect_socket(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    struct timeval tv = {.tv_sec = ANSWER_TIMEOUT_S};
    int fd;

    if (strlen(path) >= sizeof(sa.sun_path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    memcpy(sa.sun_path, path, strlen(path) + 1);
    if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa))) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

/* Sends REQUEST and reads the answer to its end into *OUT. 0, or -1 with errno. */
static int exchange(int fd, const char *request, char **out)
{
    size_t len = 0, cap = 0;
    char *buf = NULL;
    ssize_t n;

    /* A refusal may come before the request is read: its answer is read all the same. */
    (void)send(fd, request, strlen(request), MSG_NOSIGNAL);
    for (;;) {
        if (cap - len < 4096) {
            char *grown = cap < ANSWER_MAX ? realloc(buf, cap ? cap * 2 : 65536) : NULL;
            if (!grown) {
                free(buf);
                errno = cap < ANSWER_MAX ? ENOMEM : EFBIG;
                return -1;
            }
            buf = grown;
            cap = cap ? cap * 2 : 65536;
        }
        if ((n = read(fd, buf + len, cap - len - 1)) < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            free(buf);
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    buf[len] = '\0';
    *out = buf;
    return 0;
}

/* ---- the daemon is not running: what the folders hold ------------------------------------- */

/* Entries in DIR (sidecars ending in SKIP left out); 0 when it is not there (yet), -1 when it
 * cannot be read. */
static long count_dir(const char *dir, const char *skip)
{
    DIR *dp = dir ? opendir(dir) : NULL;
    struct dirent *e;
    long n = 0;

    if (!dp)
        return dir && errno == ENOENT ? 0 : -1;
    while ((e = readdir(dp))) {
        size_t l = strlen(e->d_name), s = skip ? strlen(skip) : 0;
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (skip && l > s && !strcmp(e->d_name + l - s, skip))
            continue;
        n++;
    }
    closedir(dp);
    return n;
}

static long count_sub(const char *dir, const char *sub, const char *skip)
{
    char *p = NULL;
    long n;

    if (!dir || asprintf(&p, "%s/%s", dir, sub) < 0)
        return -1;
    n = count_dir(p, skip);
    free(p);
    return n;
}

static void add_count(cJSON *o, const char *key, long n)
{
    if (n < 0)
        cJSON_AddNullToObject(o, key);
    else
        cJSON_AddNumberToObject(o, key, (double)n);
}

static void print_count(const char *what, long n)
{
    if (n < 0)
        printf("  %-10s (cannot be read)", what);
    else
        printf("  %-10s %ld", what, n);
}

static int not_running(const struct pd_config *cfg, const char *path, const char *watch, bool json,
                       int err)
{
    cJSON *root = cJSON_CreateObject(), *ws = cJSON_AddArrayToObject(root, "watches");

    cJSON_AddBoolToObject(root, "running", false);
    cJSON_AddStringToObject(root, "socket", path);
    if (!json)
        printf("patchdrop is not running: nothing answers on %s (%s)\n"
               "what the folders hold:\n",
               path, strerror(err));
    for (size_t i = 0; i < cfg->nwatches; i++) {
        const struct pd_watch *w = &cfg->watches[i];
        long drop = count_dir(w->path, NULL), work = count_sub(w->work_dir, "work", NULL);
        long recs = count_sub(w->work_dir, "state", NULL);
        long failed = count_dir(w->failed_dir, ".error.json");
        cJSON *o = cJSON_CreateObject();
        if (watch && strcmp(watch, w->name)) {
            cJSON_Delete(o);
            continue;
        }
        cJSON_AddStringToObject(o, "name", w->name);
        add_count(o, "drop_folder", drop);
        add_count(o, "work", work);
        add_count(o, "records", recs);
        add_count(o, "failed", failed);
        cJSON_AddItemToArray(ws, o);
        if (json)
            continue;
        printf("[watch:");
        put_name(stdout, w->name);
        printf("]\n");
        print_count("waiting", drop);
        printf(" in %s\n", w->path);
        print_count("work/", work);
        printf(" claimed, not finished (resumed at start)\n");
        print_count("records", recs);
        printf(" delivery records in %s/state\n", w->work_dir);
        print_count("failed", failed);
        printf(" in %s (reasons in NAME.error.json)\n", w->failed_dir);
    }
    if (json) {
        char *t = cJSON_Print(root);
        if (t)
            puts(t);
        free(t);
    }
    cJSON_Delete(root);
    return EXIT_NOT_RUNNING;
}

/* ---- the table --------------------------------------------------------------------------------
 */

static double num(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

static const char *str(const cJSON *o, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void print_account(const cJSON *root)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(root, "account");

    printf("patchdrop %s, pid %.0f, %s at %s\n", str(root, "version") ? str(root, "version") : "?",
           num(root, "pid"), str(root, "state") ? str(root, "state") : "?",
           str(root, "now") ? str(root, "now") : "?");
    if (!cJSON_IsObject(a))
        return;
    printf("account: %.0f requests in the last %.0f s", num(a, "requests_used"),
           num(a, "window_seconds"));
    if (num(a, "requests_limit"))
        printf(" of %.0f allowed", num(a, "requests_limit"));
    printf("; %.0f in flight, %.0f waiting", num(a, "requests_in_flight"),
           num(a, "requests_waiting"));
    if (str(a, "paused_until"))
        printf("; PAUSED until %s (429/503)", str(a, "paused_until"));
    if (str(a, "token_valid_until"))
        printf("; token valid until %s", str(a, "token_valid_until"));
    printf("; flow runs followed: %.0f\n", num(root, "runs_followed"));
}

static void print_file(const cJSON *f)
{
    const char *state = str(f, "state");

    printf("  %-9s ", state ? state : "?");
    put_name(stdout, str(f, "name"));
    printf("  %.0f/%.0f bytes", num(f, "bytes_done"), num(f, "size"));
    if (cJSON_GetObjectItemCaseSensitive(f, "chunk")) {
        printf(", chunk %.0f of ", num(f, "chunk"));
        if (num(f, "chunks"))
            printf("%.0f", num(f, "chunks"));
        else
            printf("?");
    }
    printf(", %.0f attempt(s), %.0f s", num(f, "attempts"), num(f, "age_seconds"));
    if (str(f, "last_error")) {
        printf(", last error: ");
        put_name(stdout, str(f, "last_error"));
    }
    if (str(f, "next_attempt"))
        printf(", next attempt %s", str(f, "next_attempt"));
    printf("\n");
}

static void print_done(const cJSON *e, bool ok)
{
    const cJSON *runs = cJSON_GetObjectItemCaseSensitive(e, "runs"), *r;

    printf("  %-9s ",
           ok ? (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "duplicate")) ? "duplicate"
                                                                                : "delivered")
              : "FAILED");
    put_name(stdout, str(e, "name"));
    printf("  %s", str(e, "at") ? str(e, "at") : "");
    if (!ok) {
        printf(": ");
        put_name(stdout, str(e, "reason"));
    }
    cJSON_ArrayForEach(r, runs)
    {
        printf(" run %s", str(r, "id") ? str(r, "id") : "?");
        if (str(r, "dashboard"))
            printf(" %s", str(r, "dashboard"));
    }
    printf("\n");
}

static void print_watch(const cJSON *w)
{
    const cJSON *x;
    const cJSON *oldest = cJSON_GetObjectItemCaseSensitive(w, "oldest_undelivered_seconds");

    printf("\n[watch:");
    put_name(stdout, str(w, "name"));
    printf("] settling %.0f, ready %.0f, claimed %.0f, sending %.0f, retrying %.0f, parked %.0f",
           num(w, "settling"), num(w, "ready"), num(w, "claimed"), num(w, "in_flight"),
           num(w, "retrying"), num(w, "parked"));
    if (cJSON_IsNumber(oldest))
        printf("; oldest undelivered %.0f s", oldest->valuedouble);
    printf("\n");
    if (str(w, "disabled")) {
        printf("  DISABLED: ");
        put_name(stdout, str(w, "disabled"));
        printf("\n");
    }
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(w, "files")) print_file(x);
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(w, "failed")) print_done(x, false);
    cJSON_ArrayForEach(x, cJSON_GetObjectItemCaseSensitive(w, "delivered")) print_done(x, true);
}

/* Shows the daemon's ANSWER; the exit status. */
static int show(const char *answer, const char *watch, bool json)
{
    cJSON *root = cJSON_Parse(answer), *ws, *w;
    const char *err;
    int rc = PD_EXIT_OK;

    if (!cJSON_IsObject(root)) {
        fprintf(stderr, "patchdrop status: the daemon's answer is not JSON (%zu bytes)\n",
                strlen(answer));
        cJSON_Delete(root);
        return PD_EXIT_FAILED;
    }
    if ((err = str(root, "error"))) {
        fprintf(stderr, "patchdrop status: the daemon says: %s\n", err);
        cJSON_Delete(root);
        return PD_EXIT_FAILED;
    }
    ws = cJSON_GetObjectItemCaseSensitive(root, "watches");
    if (watch && cJSON_GetArraySize(ws) == 0) {
        fprintf(stderr, "patchdrop status: the running daemon has no watch %s\n", watch);
        rc = PD_EXIT_USAGE;
    } else if (json) {
        fputs(answer, stdout);
    } else {
        print_account(root);
        cJSON_ArrayForEach(w, ws) print_watch(w);
    }
    cJSON_Delete(root);
    return rc;
}

int pd_cli_status(int argc, char **argv)
{
    struct pd_config *cfg = NULL;
    struct pd_cli_parser p;
    const char *watch = NULL;
    char *path = NULL, *request = NULL, *answer = NULL;
    bool json = false, cluster = false;
    int c, fd, rc = PD_EXIT_USAGE;

    if (is_old_form(argc, argv))
        return pd_cli_flow_run_as(&old_spec, argc, argv);
    pd_cli_begin(&p, &spec, argc, argv);
    while ((c = pd_cli_next(&p)) > 0) {
        if (c == O_WATCH)
            watch = p.arg;
        else if (c == O_JSON)
            json = true;
        else if (c == O_CLUSTER)
            cluster = true;
    }
    if (c < 0)
        return p.status;
    if (pd_cli_load_config(p.config, &cfg) != 0)
        return PD_EXIT_USAGE;
    if (cluster) {
        rc = pd_cli_status_cluster(cfg, json);
        goto out;
    }
    if (asprintf(&path, "%s/%s", cfg->state.dir, PD_DAEMON_SOCKET) < 0 ||
        asprintf(&request, "status%s%s\n", watch ? " " : "", watch ? watch : "") < 0)
        goto out;
    if (watch && strpbrk(watch, "\r\n")) {
        rc = pd_cli_usage_error(&spec, "--watch takes a watch's name");
        goto out;
    }
    if ((fd = connect_socket(path)) < 0) {
        if (errno == ENOENT || errno == ECONNREFUSED)
            rc = not_running(cfg, path, watch, json, errno);
        else {
            fprintf(stderr, "patchdrop status: cannot connect to %s: %s%s\n", path, strerror(errno),
                    errno == EACCES ? " (run it as patchdrop's user or a member of its group)"
                                    : "");
            rc = PD_EXIT_FAILED;
        }
        goto out;
    }
    if (exchange(fd, request, &answer)) {
        fprintf(stderr, "patchdrop status: no answer on %s: %s\n", path, strerror(errno));
        rc = PD_EXIT_FAILED;
    } else {
        rc = show(answer, watch, json);
    }
    close(fd);
out:
    free(path);
    free(request);
    free(answer);
    pd_config_destroy(&cfg);
    return rc;
}
