/*
 * The landing zone's trust boundary (see pd_zone.h): patchdrop's own folders are checked
 * before they are trusted, and every step inside a drop folder goes through directory
 * descriptors, never through a name a partner could have swapped for a symlink.
 */
#include "pd_zone.h"

#include "pd_error.h"
#include "pd_fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int say(char **why, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int say(char **why, const char *fmt, ...)
{
    va_list ap;
    if (why) {
        free(*why);
        va_start(ap, fmt);
        if (vasprintf(why, fmt, ap) < 0)
            *why = NULL;
        va_end(ap);
    }
    return PD_ECONFIG;
}

/* Whether the open folder FD is this process's and nobody else may write in it. */
static int check_owned(int fd, const char *path, bool private_, bool fix, char **why)
{
    struct stat st;
    uid_t me = geteuid();

    if (fstat(fd, &st))
        return -errno;
    if (st.st_uid != me)
        return say(why,
                   "%s is owned by uid %u, not by patchdrop's user (uid %u), so someone else "
                   "could change what patchdrop keeps there; run: chown %u %s",
                   path, (unsigned)st.st_uid, (unsigned)me, (unsigned)me, path);
    /* Private: nobody else may list, read or change it; the group may pass through it (the
     * state dir, 0710, so the service's group reaches the status socket by its name). */
    mode_t bad = private_ ? 067 : 022;
    /* Our own private folder (work/, state/, the state dir) that others may only read, e.g.
     * made by a plain mkdir: ours to tighten, no person needed. One others could write is
     * refused: something may have been planted in it. */
    if ((st.st_mode & bad) && private_ && !(st.st_mode & 022)) {
        /* The group's pass-through stays only where it was alone (0710), not from a 0755. */
        if (!fix || fchmod(fd, st.st_mode & (st.st_mode & 040 ? 0700 : 0710)) == 0)
            return 0; /* (check-config: tightened at start) */
    }
    if (st.st_mode & bad)
        return say(why, "%s has mode %04o: others could %s it; run: chmod %s %s", path,
                   (unsigned)(st.st_mode & 07777), private_ ? "read or change" : "change",
                   private_ ? "700" : "go-w", path);
    return 0;
}

int pd_zone_own_dir(const char *path, mode_t mode, bool private_, char **why)
{
    struct stat st;
    int rc, fd;

    if (lstat(path, &st) == 0 && S_ISLNK(st.st_mode))
        return say(why,
                   "%s is a symbolic link; patchdrop keeps its files only in a real folder it "
                   "owns: replace the link with a folder (mkdir -m 700 %s)",
                   path, path);
    if ((rc = pd_fs_mkdirs(path, mode))) {
        say(why,
            "cannot create the folder %s: %s; create it (mkdir -m 700 %s) and give it to "
            "patchdrop's user (uid %u)",
            path, pd_strerror(rc), path, (unsigned)geteuid());
        return rc;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = -errno;
        if (rc == -ELOOP || rc == -ENOTDIR)
            return say(why,
                       "%s is not a folder (or is a symbolic link): replace it with a "
                       "folder owned by patchdrop's user",
                       path);
        say(why, "cannot open the folder %s: %s", path, pd_strerror(rc));
        return rc;
    }
    rc = check_owned(fd, path, private_, true, why);
    close(fd);
    return rc;
}

int pd_zone_check_dir(const char *path, bool private_, char **why)
{
    struct stat st;
    int fd, rc;

    if (lstat(path, &st))
        return errno == ENOENT ? 0 : -errno; /* made at the first start */
    if (S_ISLNK(st.st_mode))
        return say(why,
                   "%s is a symbolic link; patchdrop keeps its files only in a real folder it "
                   "owns: replace the link with a folder (mkdir -m 700 %s)",
                   path, path);
    if (!S_ISDIR(st.st_mode))
        return say(why, "%s is not a folder; remove it or choose another path", path);
    fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    rc = check_owned(fd, path, private_, false, why);
    close(fd);
    return rc;
}

int pd_zone_open_root(const char *root)
{
    int fd = open(root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    return fd < 0 ? -errno : fd;
}

int pd_zone_stat(int rootfd, const char *rel, struct stat *st)
{
    const char *base;
    int dfd = pd_fs_open_parent(rootfd, rel, &base);
    int rc = 0;

    if (dfd < 0)
        return dfd;
    if (fstatat(dfd, base, st, AT_SYMLINK_NOFOLLOW))
        rc = -errno;
    close(dfd);
    return rc;
}

static bool same_file(const struct stat *a, const struct stat *b)
{
    return a->st_ino == b->st_ino && a->st_size == b->st_size &&
           a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

/*
 * Whether the file open as FD may be claimed: still the regular file EXPECT saw (its *ST), with
 * no other names unless allowed, and with PD_ZONE_LEASE open for writing nowhere (*LEASED: the
 * read lease that says so is held).
 */
static int claimable(int fd, const struct stat *expect, unsigned flags, struct stat *st,
                     bool *leased)
{
    if (fstat(fd, st) || !S_ISREG(st->st_mode) || !same_file(st, expect))
        return -EAGAIN;
    /* Another name of the same file may be one the partner could never read (a hard link
     * to someone else's file): such a file is not touched at all. */
    if (st->st_nlink > 1 && !(flags & PD_ZONE_ALLOW_LINKS))
        return -EMLINK;
    /* A read lease is refused while any process holds the file open for writing: a writer
     * that paused longer than settle (a stalled upload) has not finished. Held only across
     * the rename, so a writer opening it meanwhile waits microseconds, not the break time. */
    if (flags & PD_ZONE_LEASE) {
        if (fcntl(fd, F_SETLEASE, F_RDLCK) == 0)
            *leased = true;
        else if (errno == EAGAIN)
            return -EBUSY;
        else
            return -ENOLCK; /* no lease here (NFS, no CAP_LEASE): the caller decides */
    }
    return 0;
}

/*
 * Between the open and the rename the name may have been swapped for something else: what
 * now sits in work/ as TO must be the file checked (ST), never a link or another file.
 * Returns 0 when it is, or when it is the partner's own file (then *FD is that file), else
 * -EAGAIN (or -errno).
 */
static int check_moved(int dfd, const char *base, const char *to, const struct stat *st,
                       unsigned flags, int *fd)
{
    struct stat moved;

    if (lstat(to, &moved) || (moved.st_ino == st->st_ino && moved.st_dev == st->st_dev))
        return 0;
    /* Not what was checked: give it back under its name, to be looked at like any new
     * file. */
    if (renameat2(AT_FDCWD, to, dfd, base, RENAME_NOREPLACE) == 0)
        return -EAGAIN;
    /* The name is taken again. A mere link, or another name of a file (a hard link: maybe
     * to a file the partner could never read), is dropped: only that name, never what it
     * points at or the file's other names. */
    if (S_ISLNK(moved.st_mode) ||
        (S_ISREG(moved.st_mode) && moved.st_nlink > 1 && !(flags & PD_ZONE_ALLOW_LINKS))) {
        unlink(to);
        return -EAGAIN;
    }
    if (S_ISREG(moved.st_mode)) {
        /* The partner's own file, which it swapped in and then reused the name: claimed
         * as itself (its delivery checks it again from its own descriptor). */
        close(*fd);
        *fd = open(to, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
        return *fd < 0 ? -errno : 0;
    }
    return -EAGAIN; /* a folder or fifo that cannot go back stays in work/: logged there */
}

int pd_zone_claim(int rootfd, const char *rel, const struct stat *expect, unsigned flags,
                  const char *to, int *out)
{
    bool leased = false;
    const char *base;
    struct stat st;
    int dfd = pd_fs_open_parent(rootfd, rel, &base);
    int fd, rc;

    if (out)
        *out = -1;
    if (dfd < 0)
        return dfd;
    fd = openat(dfd, base, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        rc = errno == ELOOP ? -EAGAIN : -errno;
        close(dfd);
        return rc;
    }
    if ((rc = claimable(fd, expect, flags, &st, &leased)))
        goto done;
    rc = pd_fs_renameat_noreplace(dfd, base, to);
    if (leased)
        (void)fcntl(fd, F_SETLEASE, F_UNLCK);
    leased = false;
    if (!rc)
        rc = check_moved(dfd, base, to, &st, flags, &fd);
    /* A partner's setuid program must not keep its bits anywhere patchdrop puts it. Without
     * root or ownership this fails, and then the bits are the owner's own, gaining nothing. */
    if (!rc && fd >= 0 && fstat(fd, &st) == 0 && st.st_nlink == 1)
        (void)fchmod(fd, PD_FS_FILE_MODE); /* never through another name: only ours changes */
done:
    if (leased)
        (void)fcntl(fd, F_SETLEASE, F_UNLCK);
    if (out && !rc) {
        *out = fd;
        fd = -1;
    }
    if (fd >= 0)
        close(fd);
    close(dfd);
    return rc;
}

int pd_zone_unlink(int rootfd, const char *rel)
{
    const char *base;
    int dfd = pd_fs_open_parent(rootfd, rel, &base);
    int rc = 0;

    if (dfd < 0)
        return dfd;
    if (unlinkat(dfd, base, 0))
        rc = -errno;
    close(dfd);
    return rc;
}

bool pd_zone_lease_possible(void)
{
    FILE *f = fopen("/proc/self/status", "re");
    char line[256];
    unsigned long long eff = 0;
    bool found = false;

    if (!f)
        return geteuid() == 0;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "CapEff: %llx", &eff) == 1) {
            found = true;
            break;
        }
    fclose(f);
    /* CAP_LEASE is capability 28 (linux/capability.h). */
    return found ? (eff >> 28) & 1 : geteuid() == 0;
}

bool pd_zone_sparse(const struct stat *st)
{
    uint64_t size = (uint64_t)st->st_size, on_disk = (uint64_t)st->st_blocks * 512;
    return size >= (1u << 20) && on_disk * 64 < size;
}

/*
 * Opens NAME in DIRFD as an old folder of ours, or says why not. Never advises taking a folder
 * over: one that is not ours may be a partner's, and its contents must never be trusted.
 */
static int open_ours(int dirfd, const char *name, const char *shown, char **why)
{
    struct stat st;
    int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        if (e == ELOOP || e == ENOTDIR)
            say(why, "%s is not a folder of patchdrop's (a symbolic link or a file)", shown);
        else if (e != ENOENT)
            say(why, "%s cannot be opened (%s), so it is not a folder of patchdrop's", shown,
                strerror(e));
        return -e;
    }
    if (fstat(fd, &st) || st.st_uid != geteuid() || (st.st_mode & 022)) {
        say(why,
            "%s belongs to uid %u with mode %04o, not to patchdrop's user (uid %u) alone, so it "
            "is not an old folder of patchdrop's (a partner may have made it); remove it if it "
            "is not wanted",
            shown, (unsigned)st.st_uid, (unsigned)(st.st_mode & 07777), (unsigned)geteuid());
        close(fd);
        return PD_ECONFIG;
    }
    return fd;
}

static int move_one(int wfd, int sfd, const char *name, const char *work_dir, const char *state_dir)
{
    char to[PATH_MAX], rec[NAME_MAX + 1];
    struct stat st;
    int rc;

    if (fstatat(wfd, name, &st, AT_SYMLINK_NOFOLLOW) || !S_ISREG(st.st_mode))
        return 1; /* not a file: left where it is */
    if ((size_t)snprintf(to, sizeof(to), "%s/%s", work_dir, name) >= sizeof(to))
        return -ENAMETOOLONG;
    if ((rc = pd_fs_renameat_noreplace(wfd, name, to)))
        return rc;
    /* Its delivery record follows it, so the resume knows which chunks arrived. */
    if (sfd >= 0 && (size_t)snprintf(rec, sizeof(rec), "%s.json", name) < sizeof(rec) &&
        (size_t)snprintf(to, sizeof(to), "%s/%s", state_dir, rec) < sizeof(to))
        (void)pd_fs_renameat_noreplace(sfd, rec, to);
    return 0;
}

int pd_zone_migrate(int rootfd, const char *work_dir, const char *state_dir, unsigned *moved,
                    char **why)
{
    int pfd, wfd, sfd = -1, rc = 0;
    DIR *dir;
    struct dirent *de;

    *moved = 0;
    pfd = open_ours(rootfd, ".patchdrop", "the old folder .patchdrop", why);
    if (pfd < 0)
        return 0; /* none, or not ours: *WHY says which */
    wfd = open_ours(pfd, "work", "the old folder .patchdrop/work", why);
    if (wfd < 0) {
        close(pfd);
        return 0;
    }
    sfd = open_ours(pfd, "state", "the old folder .patchdrop/state", why);
    if (sfd < 0 && sfd != -ENOENT) {
        /* Records nobody can vouch for are not followed: the files stay for a person. */
        close(wfd);
        close(pfd);
        return 0;
    }
    if (!(dir = fdopendir(wfd))) {
        rc = -errno;
        close(wfd);
        goto out;
    }
    while ((de = readdir(dir))) {
        if (de->d_name[0] == '.')
            continue;
        int r = move_one(dirfd(dir), sfd, de->d_name, work_dir, state_dir);
        if (r == 0)
            (*moved)++;
        else if (r < 0 && !rc)
            rc = r;
    }
    closedir(dir);
    if (*moved)
        (void)pd_fs_fsync_dir(work_dir);
out:
    if (sfd >= 0)
        close(sfd);
    close(pfd);
    return rc;
}
