/*
 * pd_exchange A B SECONDS: swaps the names A and B (a folder and a symlink, say) with
 * renameat2(RENAME_EXCHANGE) in a tight loop for SECONDS, as a hostile partner would between a
 * daemon's check and its use of a path. Ends with an even number of swaps, so A and B are what
 * they were. Prints the number of swaps; exits 0 when at least one swap was made.
 * Built by the e2e tests themselves (cc -O2 -o pd_exchange pd_exchange.c).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int exchange(const char *a, const char *b)
{
    return (int)syscall(SYS_renameat2, AT_FDCWD, a, AT_FDCWD, b, RENAME_EXCHANGE);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: %s A B SECONDS\n", argv[0]);
        return 2;
    }
    double end = now() + strtod(argv[3], NULL);
    unsigned long swaps = 0;

    while (now() < end) {
        for (int i = 0; i < 1000; i++) {
            if (exchange(argv[1], argv[2])) {
                fprintf(stderr, "pd_exchange: %s <-> %s: %s\n", argv[1], argv[2],
                        strerror(errno));
                return 1;
            }
            swaps++;
        }
    }
    if (swaps % 2 && exchange(argv[1], argv[2]) == 0)
        swaps++;
    printf("%lu\n", swaps);
    return swaps ? 0 : 1;
}
