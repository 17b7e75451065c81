/*
 * patchdrop-mock: parses the command line, starts the emulator (libpdmock), writes the port
 * file and waits for SIGTERM, SIGINT or --exit-after. Exit status: 0 after a clean stop, 1 when
 * it cannot start, 2 for a usage error.
 */
#include "pd_error.h"
#include "pd_mock.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Writes the port through a temporary name so a script polling for the file never reads it
 * empty. */
static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -errno;
    fprintf(f, "%u\n", port);
    if (fclose(f)) {
        int rc = -errno;
        unlink(tmp);
        return rc;
    }
    if (rename(tmp, path)) {
        int rc = -errno;
        unlink(tmp);
        return rc;
    }
    return 0;
}

int main(int argc, char **argv)
{
    struct pd_mock_options opts;
    struct pd_mock_cli cli;
    struct pd_mock *mock = NULL;
    char *err = NULL;
    sigset_t stop_signals;

    pd_mock_options_init(&opts);
    int rc = pd_mock_args_parse(argc, argv, &opts, &cli, stdout, &err);
    if (rc == 1)
        return 0;
    if (rc) {
        fprintf(stderr, "patchdrop-mock: %s\n", err ? err : pd_strerror(rc));
        free(err);
        return 2;
    }

    /* Block the stop signals before any server thread exists, so every thread inherits the
     * mask and only sigtimedwait() below receives them. */
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGTERM);
    sigaddset(&stop_signals, SIGINT);
    pthread_sigmask(SIG_BLOCK, &stop_signals, NULL);
    signal(SIGPIPE, SIG_IGN);

    rc = pd_mock_create(&opts, &mock, &err);
    if (rc) {
        fprintf(stderr, "patchdrop-mock: %s\n", err ? err : pd_strerror(rc));
        free(err);
        return rc == PD_EUSAGE ? 2 : 1;
    }
    unsigned port = pd_mock_port(mock);
    if (cli.port_file && (rc = write_port_file(cli.port_file, port))) {
        fprintf(stderr, "patchdrop-mock: cannot write --port-file %s: %s\n", cli.port_file,
                pd_strerror(rc));
        pd_mock_destroy(&mock);
        return 1;
    }
    if (!opts.quiet)
        fprintf(stderr, "patchdrop-mock: listening on http://%s%s%s:%u\n",
                strchr(opts.bind, ':') ? "[" : "", opts.bind, strchr(opts.bind, ':') ? "]" : "",
                port);

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += (time_t)(cli.exit_after_ms / 1000);
    deadline.tv_nsec += (long)(cli.exit_after_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    for (;;) {
        struct timespec wait = {1, 0};
        if (cli.exit_after_ms) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            long long left_ms = (long long)(deadline.tv_sec - now.tv_sec) * 1000 +
                                (deadline.tv_nsec - now.tv_nsec) / 1000000;
            if (left_ms <= 0) {
                if (!opts.quiet)
                    fprintf(stderr, "patchdrop-mock: --exit-after reached, stopping\n");
                break;
            }
            if (left_ms < 1000) {
                wait.tv_sec = 0;
                wait.tv_nsec = left_ms * 1000000L;
            }
        }
        int sig = sigtimedwait(&stop_signals, NULL, &wait);
        if (sig == SIGTERM || sig == SIGINT) {
            if (!opts.quiet)
                fprintf(stderr, "patchdrop-mock: %s, stopping\n",
                        sig == SIGTERM ? "SIGTERM" : "SIGINT");
            break;
        }
    }
    pd_mock_destroy(&mock);
    return 0;
}
