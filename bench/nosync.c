/*
 * A diagnostic for bench/run.sh (section 7), never linked into patchdrop: preloaded with
 * LD_PRELOAD, it turns fsync, fdatasync and syncfs into no-ops, so that one row shows what
 * patchdrop's small-file rate would be if durability cost nothing. The gap between that row and
 * the real one is what the syncs cost on this machine's disk; what is left is everything else.
 */
#include <unistd.h>

int fsync(int fd)
{
    (void)fd;
    return 0;
}

int fdatasync(int fd)
{
    (void)fd;
    return 0;
}

int syncfs(int fd)
{
    (void)fd;
    return 0;
}
