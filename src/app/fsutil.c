/*
 * Durable, non-overwriting file system steps (see pd_fsutil.h). The write-temp, fsync, rename,
 * fsync-folder sequence follows Redis's rdb.c; each step's failure is returned as -errno so the
 * caller can say which step failed.
 */
#include "pd_fsutil.h"

#include "pd_commit.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifdef SYS_openat2
#include <linux/openat2.h>
#endif

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif

int pd_fs_mkdirs(const char *path, mode_t mode)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);

    if (len == 0 || len >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, len + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, mode) && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) && errno != EEXIST)
        return -errno;
    struct stat st;
    if (stat(buf, &st))
        return -errno;
    return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

/* The daemon's group commit (pd_fs_group_commit), or NULL: each step fsyncs on its own; and
 * the threads using it this moment, so it is never taken away under one of them. */
static _Atomic(struct pd_commit *) group;
static atomic_int group_users;

void pd_fs_group_commit(struct pd_commit *c)
{
    atomic_store(&group, c);
    while (!c && atomic_load(&group_users))
        sched_yield(); /* a sync under way: at most one round */
}

/* Makes FD's writes durable: in a shared round of the group commit, else by fsync(2). */
static int sync_fd(int fd)
{
    atomic_fetch_add(&group_users, 1);
    struct pd_commit *g = atomic_load(&group);
    int rc = g ? pd_commit_sync(g, fd) : fsync(fd) ? -errno : 0;
    atomic_fetch_sub(&group_users, 1);
    return rc;
}

int pd_fs_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (fd < 0)
        return -errno;
    int rc = sync_fd(fd);
    close(fd);
    /* Some file systems refuse fsync on folders (EINVAL): nothing more can be done there. */
    return rc == -EINVAL ? 0 : rc;
}

static int dir_of(const char *path, char *out, size_t outlen)
{
    const char *slash = strrchr(path, '/');
    size_t n;

    if (!slash) {
        snprintf(out, outlen, ".");
        return 0;
    }
    n = slash == path ? 1 : (size_t)(slash - path);
    if (n >= outlen)
        return -ENAMETOOLONG;
    memcpy(out, path, n);
    out[n] = '\0';
    return 0;
}

/* read(2), again when interrupted: the bytes read, 0 at the end, or -errno. */
static ssize_t read_some(int fd, void *buf, size_t len)
{
    ssize_t n;
    do
        n = read(fd, buf, len);
    while (n < 0 && errno == EINTR);
    return n < 0 ? -errno : n;
}

static int write_full(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/*
 * The temp names this process is writing right now (by their last component: six random
 * characters each). A sweep of stale temps (pd_fs_temp_live) never takes one of them, whatever
 * its age looks like: a file's age is read from the kernel's clock and the daemon's time may be
 * another (an injected clock, or a wall clock that jumped), and a slow fsync may outlast any
 * age limit.
 */
static pthread_mutex_t live_mu = PTHREAD_MUTEX_INITIALIZER;
static char (*live)[NAME_MAX + 1];
static size_t nlive, live_cap;

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* With live_mu held: TMP is ours. */
static int live_add_locked(const char *tmp)
{
    const char *name = base_of(tmp);
    int rc = 0;
    if (nlive == live_cap) {
        size_t cap = live_cap ? 2 * live_cap : 16;
        void *grown = realloc(live, cap * sizeof(*live));
        if (grown) {
            live = grown;
            live_cap = cap;
        }
    }
    if (nlive < live_cap && strlen(name) <= NAME_MAX)
        strcpy(live[nlive++], name);
    else
        rc = -ENOMEM;
    return rc;
}

/* The temp TMP has been renamed, linked or removed: it is no longer ours to guard. */
static void live_del(const char *tmp)
{
    const char *name = base_of(tmp);
    pthread_mutex_lock(&live_mu);
    for (size_t i = 0; i < nlive; i++)
        if (!strcmp(live[i], name)) {
            memmove(live[i], live[nlive - 1], sizeof(*live));
            nlive--;
            break;
        }
    if (!nlive) {
        free(live);
        live = NULL;
        live_cap = 0;
    }
    pthread_mutex_unlock(&live_mu);
}

bool pd_fs_temp_live(const char *name)
{
    bool found = false;
    pthread_mutex_lock(&live_mu);
    for (size_t i = 0; i < nlive && !found; i++)
        found = !strcmp(live[i], name);
    pthread_mutex_unlock(&live_mu);
    return found;
}

/*
 * A named temp file in DIR: PD_FS_TEMP_PREFIX and six random characters, short enough for any
 * folder and unlike anything patchdrop itself would ever be asked to keep there.
 */
static int make_temp(const char *dir, char *tmp, size_t tmplen)
{
    if ((size_t)snprintf(tmp, tmplen, "%s/" PD_FS_TEMP_PREFIX "XXXXXX", dir) >= tmplen)
        return -ENAMETOOLONG;
    /* Created and named ours in one step: a sweep that has read the new name from its folder
     * asks pd_fs_temp_live only once the name is guarded. */
    pthread_mutex_lock(&live_mu);
    int fd = mkostemp(tmp, O_CLOEXEC);
    int rc = fd < 0 ? -errno : live_add_locked(tmp);
    pthread_mutex_unlock(&live_mu);
    if (fd < 0)
        return rc;
    if (rc) {
        close(fd);
        unlink(tmp);
        return rc;
    }
    return fd;
}

/* The temp TMP leaves: renamed into place already (GONE), or removed now. */
static void temp_end(const char *tmp, bool gone)
{
    if (!gone)
        unlink(tmp);
    live_del(tmp);
}

/*
 * An unnamed file in DIR (O_TMPFILE): it gets a name only by pd_fs's link, so a crash leaves
 * nothing behind and no name in an archive can ever be taken for a temp file. -EOPNOTSUPP (or
 * another -errno) where the file system has no O_TMPFILE.
 */
static int open_unnamed(const char *dir, mode_t mode)
{
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, mode);
    return fd < 0 ? -errno : fd;
}

/* Gives the unnamed file FD the name PATH; never replaces (-EEXIST). */
static int link_unnamed(int fd, const char *path)
{
    char proc[64];
    if (linkat(fd, "", AT_FDCWD, path, AT_EMPTY_PATH) == 0)
        return 0;
    if (errno != ENOENT && errno != EPERM)
        return -errno;
    /* Without CAP_DAC_READ_SEARCH: through /proc, as open(2) describes for O_TMPFILE. */
    snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, AT_FDCWD, path, AT_SYMLINK_FOLLOW) ? -errno : 0;
}

/* Writes DATA into a new temp file in DIR, synced when DURABLE; TMP receives its name. */
static int write_temp_in(const char *dir, const void *data, size_t len, mode_t mode, char *tmp,
                         size_t tmplen, bool durable)
{
    int fd, rc;

    fd = make_temp(dir, tmp, tmplen);
    if (fd < 0)
        return fd;
    rc = fchmod(fd, mode) ? -errno : 0;
    if (!rc)
        rc = write_full(fd, data, len);
    if (!rc && durable)
        rc = sync_fd(fd);
    if (close(fd) && !rc)
        rc = -errno;
    if (rc)
        temp_end(tmp, false);
    return rc;
}

/* Writes DATA into a new temp file beside PATH and fsyncs it; TMP receives its name. */
static int write_temp(const char *path, const void *data, size_t len, mode_t mode, char *tmp,
                      size_t tmplen)
{
    char dir[PATH_MAX];
    int rc = dir_of(path, dir, sizeof(dir));
    return rc ? rc : write_temp_in(dir, data, len, mode, tmp, tmplen, true);
}

void pd_crashpoint(const char *name)
{
    static atomic_int state; /* 0 unread, 1 off, 2 armed */
    static char want[64];
    static atomic_long left;
    int s = atomic_load(&state);

    if (s == 0) {
        const char *env = getenv("PATCHDROP_CRASHPOINT");
        const char *colon = env ? strchr(env, ':') : NULL;
        s = 1;
        if (colon && (size_t)(colon - env) < sizeof(want)) {
            memcpy(want, env, (size_t)(colon - env));
            want[colon - env] = '\0';
            atomic_store(&left, atol(colon + 1));
            s = 2;
        }
        atomic_store(&state, s);
    }
    if (s == 2 && !strcmp(name, want) && atomic_fetch_sub(&left, 1) == 1)
        raise(SIGKILL);
}

int pd_fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    int rc = dir_of(path, dir, sizeof(dir));

    if (rc)
        return rc;
    rc = write_temp(path, data, len, mode, tmp, sizeof(tmp));
    if (rc)
        return rc;
    pd_crashpoint("atomic_write");
    if (rename(tmp, path)) {
        rc = -errno;
        temp_end(tmp, false);
        return rc;
    }
    temp_end(tmp, true);
    return pd_fs_fsync_dir(dir);
}

int pd_fs_write_replace(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    int rc = dir_of(path, dir, sizeof(dir));
    if (!rc)
        rc = write_temp_in(dir, data, len, mode, tmp, sizeof(tmp), false);
    if (!rc) {
        rc = rename(tmp, path) ? -errno : 0;
        temp_end(tmp, !rc);
    }
    return rc;
}

int pd_fs_replace_from(const char *tmpdir, const char *path, const void *data, size_t len,
                       mode_t mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    int rc;

    if (!tmpdir)
        return pd_fs_write_atomic(path, data, len, mode);
    if ((rc = dir_of(path, dir, sizeof(dir))) ||
        (rc = write_temp_in(tmpdir, data, len, mode, tmp, sizeof(tmp), true)))
        return rc;
    pd_crashpoint("atomic_write");
    if (rename(tmp, path)) {
        rc = -errno;
        temp_end(tmp, false);
        return rc == -EXDEV ? pd_fs_write_atomic(path, data, len, mode) : rc;
    }
    temp_end(tmp, true);
    return pd_fs_fsync_dir(dir);
}

int pd_fs_create_durable(const char *path, const void *data, size_t len, mode_t mode)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    int rc = dir_of(path, dir, sizeof(dir));

    if (rc)
        return rc;
    int fd = open_unnamed(dir, mode);
    if (fd >= 0) {
        rc = fchmod(fd, mode) ? -errno : 0;
        if (!rc)
            rc = write_full(fd, data, len);
        if (!rc)
            rc = sync_fd(fd);
        /* link never replaces: exactly one creator of PATH wins. */
        if (!rc)
            rc = link_unnamed(fd, path);
        if (close(fd) && !rc)
            rc = -errno;
        return rc ? rc : pd_fs_fsync_dir(dir);
    }
    rc = write_temp(path, data, len, mode, tmp, sizeof(tmp));
    if (rc)
        return rc;
    if (link(tmp, path))
        rc = -errno;
    temp_end(tmp, false);
    if (rc)
        return rc;
    return pd_fs_fsync_dir(dir);
}

static int copy_file(int fromdir, const char *from, int out)
{
    char buf[65536];
    int in = openat(fromdir, from, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
    int rc = 0;

    if (in < 0)
        return -errno;
    for (;;) {
        ssize_t n = read_some(in, buf, sizeof(buf));
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        if ((rc = write_full(out, buf, (size_t)n)))
            break;
    }
    close(in);
    return rc;
}

/*
 * Moves FROM (in the folder FROMDIR) to TO on another file system: copy to a temp beside TO,
 * fsync, link, unlink. The copy gets PD_FS_FILE_MODE, never the original's mode: a partner's
 * setuid program must not become a setuid program owned by patchdrop's user.
 */
static int move_across(int fromdir, const char *from, const char *to)
{
    char tmp[PATH_MAX], dir[PATH_MAX];
    struct stat st;
    int fd, rc;

    if ((rc = dir_of(to, dir, sizeof(dir))))
        return rc;
    if (fstatat(fromdir, from, &st, AT_SYMLINK_NOFOLLOW))
        return -errno;
    if (!S_ISREG(st.st_mode))
        return -EINVAL;
    bool unnamed = true;
    fd = open_unnamed(dir, PD_FS_FILE_MODE);
    if (fd < 0) {
        unnamed = false;
        if ((fd = make_temp(dir, tmp, sizeof(tmp))) < 0)
            return fd;
    }
    rc = copy_file(fromdir, from, fd);
    if (!rc && fchmod(fd, PD_FS_FILE_MODE))
        rc = -errno;
    if (!rc)
        rc = sync_fd(fd);
    if (!rc && unnamed)
        rc = link_unnamed(fd, to);
    if (close(fd) && !rc)
        rc = -errno;
    if (!unnamed) {
        if (!rc && link(tmp, to))
            rc = -errno;
        temp_end(tmp, false);
    }
    if (rc)
        return rc;
    if ((rc = pd_fs_fsync_dir(dir)))
        return rc;
    /* The copy is safe in place; only now may the original go. */
    if (unlinkat(fromdir, from, 0))
        return -errno;
    return 0;
}

int pd_fs_renameat_noreplace(int fromdir, const char *from, const char *to)
{
    if (renameat2(fromdir, from, AT_FDCWD, to, RENAME_NOREPLACE) == 0)
        return 0;
    if (errno == EXDEV)
        return move_across(fromdir, from, to);
    if (errno != EINVAL && errno != ENOSYS && errno != ENOTSUP)
        return -errno;
    /* No RENAME_NOREPLACE here (NFS, old kernels): link never replaces, then drop the old name. */
    if (linkat(fromdir, from, AT_FDCWD, to, 0))
        return errno == EXDEV ? move_across(fromdir, from, to) : -errno;
    if (unlinkat(fromdir, from, 0))
        return -errno;
    return 0;
}

int pd_fs_rename_noreplace(const char *from, const char *to)
{
    return pd_fs_renameat_noreplace(AT_FDCWD, from, to);
}

/* Opens REL beneath ROOTFD one component at a time, never through a symlink or "..". */
int pd_fs_open_beneath_walk(int rootfd, const char *rel, int flags)
{
    char buf[PATH_MAX];
    size_t len = strlen(rel);
    int dirfd = rootfd, fd = -1;
    char *p, *next;

    if (len == 0 || len >= sizeof(buf) || rel[0] == '/')
        return -EINVAL;
    memcpy(buf, rel, len + 1);
    for (p = buf;; p = next) {
        next = strchr(p, '/');
        if (next)
            *next++ = '\0';
        if (!*p || !strcmp(p, ".") || !strcmp(p, "..")) {
            fd = -EXDEV; /* as openat2's RESOLVE_BENEATH says it */
            break;
        }
        int f = next ? O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC : flags | O_NOFOLLOW;
        int got = openat(dirfd, p, f, 0);
        if (dirfd != rootfd)
            close(dirfd);
        dirfd = rootfd;
        if (got < 0) {
            fd = -errno;
            break;
        }
        if (!next) {
            fd = got;
            break;
        }
        dirfd = got;
    }
    if (dirfd != rootfd)
        close(dirfd);
    return fd;
}

int pd_fs_open_beneath(int rootfd, const char *rel, int flags)
{
#ifdef SYS_openat2
    struct open_how how = {
        .flags = (uint64_t)(flags | O_NOFOLLOW | O_CLOEXEC),
        .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof(how));
    if (fd >= 0)
        return (int)fd;
    /* Older kernels (before 5.6) and system-call filters that do not know openat2: walk. */
    if (errno != ENOSYS && errno != EPERM)
        return errno == ELOOP ? -ELOOP : -errno;
#endif
    return pd_fs_open_beneath_walk(rootfd, rel, flags | O_CLOEXEC);
}

int pd_fs_open_parent(int rootfd, const char *rel, const char **base)
{
    const char *slash = strrchr(rel, '/');
    char dir[PATH_MAX];

    *base = slash ? slash + 1 : rel;
    if (!slash) {
        int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
        return fd < 0 ? -errno : fd;
    }
    if ((size_t)(slash - rel) >= sizeof(dir))
        return -ENAMETOOLONG;
    memcpy(dir, rel, (size_t)(slash - rel));
    dir[slash - rel] = '\0';
    return pd_fs_open_beneath(rootfd, dir, O_RDONLY | O_DIRECTORY);
}

int pd_fs_fit_name(const char *name, size_t room, char *out, size_t outlen)
{
    size_t len = strlen(name);
    const char *dot = strrchr(name, '.');
    uint64_t h = 1469598103934665603ULL; /* FNV-1a: short, stable, enough to tell names apart */

    if (len <= room) {
        if (len >= outlen)
            return -ENAMETOOLONG;
        memcpy(out, name, len + 1);
        return 0;
    }
    if (dot == name || (dot && strlen(dot) > 16))
        dot = NULL; /* a hidden name, or no short extension to keep */
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    size_t ext = dot ? strlen(dot) : 0;
    if (room < ext + 9 + 1 || room >= outlen)
        return -ENAMETOOLONG;
    size_t stem = room - ext - 9;
    /* Never cut a UTF-8 character in two. */
    while (stem > 0 && ((unsigned char)name[stem] & 0xC0) == 0x80)
        stem--;
    snprintf(out, outlen, "%.*s~%08x%s", (int)stem, name, (unsigned)(h & 0xffffffffu),
             dot ? dot : "");
    return 0;
}

int pd_fs_numbered_name(const char *name, unsigned k, char *out, size_t outlen)
{
    char fitted[NAME_MAX + 1];
    const char *dot;
    int n;

    /* A name too long for what goes with it (a number, a .receipt.json) is shortened, with a
     * hash of the whole name so that two long names stay apart. */
    if (outlen <= 12 || pd_fs_fit_name(name, outlen - 1 - (k ? 11 : 0), fitted, sizeof(fitted)))
        return -ENAMETOOLONG;
    name = fitted;
    dot = strrchr(name, '.');
    /* A leading dot is a hidden name, not an extension. */
    if (dot == name)
        dot = NULL;
    if (k == 0)
        n = snprintf(out, outlen, "%s", name);
    else if (dot)
        n = snprintf(out, outlen, "%.*s.%u%s", (int)(dot - name), name, k, dot);
    else
        n = snprintf(out, outlen, "%s.%u", name, k);
    return n < 0 || (size_t)n >= outlen ? -ENAMETOOLONG : 0;
}

int pd_fs_unique_name(const char *dir, const char *name, const char *sidecar, unsigned start,
                      char *out, size_t outlen)
{
    char path[PATH_MAX];
    struct stat st;

    for (unsigned i = start; i < 100000; i++) {
        if (pd_fs_numbered_name(name, i, out, outlen))
            return -ENAMETOOLONG;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, out) >= sizeof(path))
            return -ENAMETOOLONG;
        if (lstat(path, &st) == 0 || errno != ENOENT)
            continue;
        if (sidecar) {
            if ((size_t)snprintf(path, sizeof(path), "%s/%s%s", dir, out, sidecar) >= sizeof(path))
                return -ENAMETOOLONG;
            if (lstat(path, &st) == 0 || errno != ENOENT)
                continue;
        }
        return 0;
    }
    return -EEXIST;
}

int pd_fs_read_all(const char *path, size_t max, char **out, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    char *buf;
    size_t used = 0;
    int rc = 0;

    *out = NULL;
    if (fd < 0)
        return -errno;
    buf = malloc(max + 1);
    if (!buf) {
        close(fd);
        return -ENOMEM;
    }
    while (used < max) {
        ssize_t n = read_some(fd, buf + used, max - used);
        if (n <= 0) {
            rc = (int)n;
            break;
        }
        used += (size_t)n;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[used] = '\0';
    *out = buf;
    if (len)
        *len = used;
    return 0;
}
