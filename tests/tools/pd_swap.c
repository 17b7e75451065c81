/*
 * pd_swap DIR_A DIR_B SECONDS: a test helper playing a hostile partner. It exchanges the two
 * names with renameat2(RENAME_EXCHANGE) in a tight loop for SECONDS seconds (at most
 * MAX_SECONDS), so that another process walking the tree meets a real folder and a symlink under
 * each name in turn. Before exiting (also on SIGINT, SIGTERM or SIGHUP) it leaves the original
 * arrangement: an even number of swaps, checked by comparing both names' inodes with those seen
 * at the start. Prints the number of swaps on stdout.
 *
 * Exit: 0 done and restored; 1 a swap failed or the arrangement could not be restored (said
 * on stderr); 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif
#define MAX_SECONDS 3600.0

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    stop = 1;
}

/* Through syscall(): glibc has the renameat2() wrapper only since 2.28. */
static int exchange(const char *a, const char *b)
{
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool same(const struct stat *x, const struct stat *y)
{
    return x->st_dev == y->st_dev && x->st_ino == y->st_ino;
}

int main(int argc, char **argv)
{
    struct stat a0, b0, a1, b1;
    struct sigaction sa;
    uint64_t swaps = 0;
    double seconds, end;
    char *tail;
    int rc = 0;

    if (argc != 4) {
        fprintf(stderr, "usage: pd_swap DIR_A DIR_B SECONDS\n");
        return 2;
    }
    errno = 0;
    seconds = strtod(argv[3], &tail);
    if (errno || tail == argv[3] || *tail || !(seconds > 0 && seconds <= MAX_SECONDS)) {
        fprintf(stderr, "pd_swap: SECONDS must be a number above 0 and at most %.0f\n",
                MAX_SECONDS);
        return 2;
    }
    for (int i = 1; i <= 2; i++) {
        if (lstat(argv[i], i == 1 ? &a0 : &b0)) {
            fprintf(stderr, "pd_swap: %s: %s\n", argv[i], strerror(errno));
            return 2;
        }
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);

    end = now_s() + seconds;
    while (!stop) {
        if (exchange(argv[1], argv[2])) {
            fprintf(stderr, "pd_swap: swap %llu: renameat2(%s, %s, RENAME_EXCHANGE): %s\n",
                    (unsigned long long)swaps + 1, argv[1], argv[2], strerror(errno));
            rc = 1;
            break;
        }
        swaps++;
        if (now_s() >= end)
            break;
    }
    /* An odd count leaves the names exchanged: one more swap puts them back. */
    if (swaps & 1) {
        if (exchange(argv[1], argv[2]) == 0) {
            swaps++;
        } else {
            fprintf(stderr, "pd_swap: the final swap failed: %s\n", strerror(errno));
            rc = 1;
        }
    }
    if (lstat(argv[1], &a1) || lstat(argv[2], &b1) || !same(&a0, &a1) || !same(&b0, &b1)) {
        fprintf(stderr, "pd_swap: %s and %s are not as they were at the start\n", argv[1], argv[2]);
        rc = 1;
    }
    printf("%llu\n", (unsigned long long)swaps);
    return rc;
}
