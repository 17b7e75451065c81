/* The trust boundary: our folders checked, names resolved beneath a drop folder, claims. */
#include "testlib.h"

#include "pd_error.h"
#include "pd_fsutil.h"
#include "pd_zone.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *const dir = pd_test_dir;

static const char *at(const char *name)
{
    return pd_test_path(dir, name);
}

static void put(const char *name, const char *text)
{
    pd_test_write(at(name), text);
}

static void rm_rf(const char *name)
{
    pd_test_rm_rf(at(name));
}

static bool exists(const char *name)
{
    struct stat st;
    return lstat(at(name), &st) == 0;
}

static void test_own_dir(void **state)
{
    char *why = NULL;
    struct stat st;
    (void)state;

    /* Created private, then accepted. */
    assert_int_equal(pd_zone_own_dir(at("own/work"), 0700, true, &why), 0);
    assert_int_equal(stat(at("own/work"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* Readable by others: ours, so tightened. */
    chmod(at("own/work"), 0755);
    assert_int_equal(pd_zone_own_dir(at("own/work"), 0700, true, &why), 0);
    assert_int_equal(stat(at("own/work"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0700);
    /* Writable by others: something may have been planted; refused with the fix. */
    /* The group may pass through (the state dir's 0710, for the status socket); no more. */
    chmod(at("own/work"), 0710);
    assert_int_equal(pd_zone_own_dir(at("own/work"), 0700, true, &why), 0);
    assert_int_equal(stat(at("own/work"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0710);
    chmod(at("own/work"), 0777);
    assert_int_equal(pd_zone_own_dir(at("own/work"), 0700, true, &why), PD_ECONFIG);
    assert_non_null(strstr(why, "chmod 700"));
    chmod(at("own/work"), 0700);
    /* For an archive, readable is fine, writable by others is not. */
    assert_int_equal(pd_zone_own_dir(at("own/work"), 0750, false, &why), 0);
    chmod(at("own/work"), 0775);
    assert_int_equal(pd_zone_own_dir(at("own/work"), 0750, false, &why), PD_ECONFIG);
    assert_non_null(strstr(why, "chmod go-w"));
    /* A symlink, even to a good folder of ours, is never trusted. */
    chmod(at("own/work"), 0700);
    assert_int_equal(symlink(at("own/work"), at("link")), 0);
    assert_int_equal(pd_zone_own_dir(at("link"), 0700, true, &why), PD_ECONFIG);
    assert_non_null(strstr(why, "symbolic link"));
    /* Someone else's folder, when we can make one (as root). */
    if (geteuid() == 0) {
        assert_int_equal(mkdir(at("theirs"), 0700), 0);
        assert_int_equal(chown(at("theirs"), 65534, 65534), 0);
        assert_int_equal(pd_zone_own_dir(at("theirs"), 0700, true, &why), PD_ECONFIG);
        assert_non_null(strstr(why, "chown"));
    }
    free(why);
}

static void test_open_beneath(void **state)
{
    (void)state;
    assert_int_equal(mkdir(at("drop"), 0700), 0);
    assert_int_equal(mkdir(at("drop/sub"), 0700), 0);
    assert_int_equal(mkdir(at("outside"), 0700), 0);
    put("drop/sub/a.txt", "a");
    put("outside/secret.txt", "s");
    assert_int_equal(symlink(at("outside"), at("drop/lnk")), 0);
    assert_int_equal(symlink("sub", at("drop/rel")), 0);
    int root = pd_zone_open_root(at("drop"));
    assert_true(root >= 0);
    struct stat st;
    assert_int_equal(pd_zone_stat(root, "sub/a.txt", &st), 0);
    assert_true(S_ISREG(st.st_mode));
    /* Through a symlinked folder, absolute or relative: never. */
    int rc = pd_zone_stat(root, "lnk/secret.txt", &st);
    assert_true(rc == -ELOOP || rc == -ENOTDIR);
    rc = pd_zone_stat(root, "rel/a.txt", &st);
    assert_true(rc == -ELOOP || rc == -ENOTDIR);
    /* The link itself is seen as a link, never followed. */
    assert_int_equal(pd_zone_stat(root, "lnk", &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    /* Out of the folder by "..": never. */
    assert_true(pd_zone_stat(root, "../outside/secret.txt", &st) < 0);
    int fd = pd_fs_open_beneath(root, "sub/../../outside/secret.txt", O_RDONLY);
    assert_true(fd < 0);
    fd = pd_fs_open_beneath(root, "sub/a.txt", O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    /* The walk for kernels without openat2 holds the same line. */
    fd = pd_fs_open_beneath_walk(root, "sub/a.txt", O_RDONLY);
    assert_true(fd >= 0);
    close(fd);
    assert_true(pd_fs_open_beneath_walk(root, "lnk/secret.txt", O_RDONLY) < 0);
    assert_true(pd_fs_open_beneath_walk(root, "rel/a.txt", O_RDONLY) < 0);
    assert_true(pd_fs_open_beneath_walk(root, "lnk", O_RDONLY) < 0);
    assert_true(pd_fs_open_beneath_walk(root, "sub/../../outside/secret.txt", O_RDONLY) < 0);
    assert_true(pd_fs_open_beneath_walk(root, "/etc/hostname", O_RDONLY) < 0);
    close(root);
}

static void test_claim(void **state)
{
    struct stat st, got;
    int fd = -1;
    (void)state;

    assert_int_equal(mkdir(at("drop"), 0700), 0);
    assert_int_equal(mkdir(at("work"), 0700), 0);
    put("drop/a.txt", "hello");
    chmod(at("drop/a.txt"), 04755);
    int root = pd_zone_open_root(at("drop"));
    assert_int_equal(pd_zone_stat(root, "a.txt", &st), 0);
    assert_int_equal(pd_zone_claim(root, "a.txt", &st, 0, at("work/a.txt"), &fd), 0);
    assert_true(fd >= 0);
    close(fd);
    assert_false(exists("drop/a.txt"));
    /* The setuid bit is gone: the claimed file is ours to keep, not a program to run. */
    assert_int_equal(stat(at("work/a.txt"), &got), 0);
    if (geteuid() == 0 || got.st_uid == geteuid())
        assert_int_equal(got.st_mode & 07777, PD_FS_FILE_MODE);

    /* Changed since it was seen ready: not claimed. */
    put("drop/b.txt", "one");
    assert_int_equal(pd_zone_stat(root, "b.txt", &st), 0);
    put("drop/b.txt", "two, longer");
    assert_int_equal(pd_zone_claim(root, "b.txt", &st, 0, at("work/b.txt"), NULL), -EAGAIN);
    assert_true(exists("drop/b.txt"));

    /* Swapped for a symlink: not claimed, and the target untouched. */
    put("secret.txt", "secret");
    put("drop/c.txt", "c");
    assert_int_equal(pd_zone_stat(root, "c.txt", &st), 0);
    unlink(at("drop/c.txt"));
    assert_int_equal(symlink(at("secret.txt"), at("drop/c.txt")), 0);
    assert_int_equal(pd_zone_claim(root, "c.txt", &st, 0, at("work/c.txt"), NULL), -EAGAIN);
    assert_false(exists("work/c.txt"));
    assert_true(exists("secret.txt"));

    /* Another name of the same file: left untouched unless allowed. */
    put("drop/d.txt", "d");
    assert_int_equal(link(at("drop/d.txt"), at("d-elsewhere")), 0);
    assert_int_equal(pd_zone_stat(root, "d.txt", &st), 0);
    assert_int_equal(pd_zone_claim(root, "d.txt", &st, 0, at("work/d.txt"), NULL), -EMLINK);
    assert_true(exists("drop/d.txt"));
    chmod(at("d-elsewhere"), 04755);
    assert_int_equal(pd_zone_stat(root, "d.txt", &st), 0);
    assert_int_equal(pd_zone_claim(root, "d.txt", &st, PD_ZONE_ALLOW_LINKS, at("work/d.txt"), NULL),
                     0);
    /* Allowed, but the other name's mode is never changed through ours. */
    assert_int_equal(stat(at("d-elsewhere"), &got), 0);
    assert_int_equal(got.st_mode & 07777, 04755);

    /* Still open for writing (a stalled upload): not claimed until the writer closes it. */
    put("drop/f.txt", "part");
    int w = open(at("drop/f.txt"), O_WRONLY | O_APPEND);
    assert_true(w >= 0);
    assert_int_equal(pd_zone_stat(root, "f.txt", &st), 0);
    assert_int_equal(pd_zone_claim(root, "f.txt", &st, PD_ZONE_LEASE, at("work/f.txt"), NULL),
                     -EBUSY);
    assert_true(exists("drop/f.txt"));
    close(w);
    assert_int_equal(pd_zone_claim(root, "f.txt", &st, PD_ZONE_LEASE, at("work/f.txt"), NULL), 0);
    assert_true(exists("work/f.txt"));

    /* Never replaces a file in work/. */
    put("drop/e.txt", "e");
    put("work/e.txt", "older");
    assert_int_equal(pd_zone_stat(root, "e.txt", &st), 0);
    assert_int_equal(pd_zone_claim(root, "e.txt", &st, 0, at("work/e.txt"), NULL), -EEXIST);
    close(root);
}

static void test_sparse(void **state)
{
    struct stat st;
    (void)state;
    int fd = open(at("hole"), O_CREAT | O_WRONLY, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, 1LL << 30), 0);
    close(fd);
    assert_int_equal(stat(at("hole"), &st), 0);
    assert_true(pd_zone_sparse(&st));
    /* A small file, and a real one, are not. */
    put("small", "x");
    assert_int_equal(stat(at("small"), &st), 0);
    assert_false(pd_zone_sparse(&st));
    char *buf = calloc(1, 2 << 20);
    fd = open(at("real"), O_CREAT | O_WRONLY, 0600);
    memset(buf, 'x', 2 << 20);
    assert_int_equal(write(fd, buf, 2 << 20), 2 << 20);
    fsync(fd);
    close(fd);
    free(buf);
    assert_int_equal(stat(at("real"), &st), 0);
    assert_false(pd_zone_sparse(&st));
}

static void test_migrate(void **state)
{
    unsigned moved = 0;
    char *why = NULL;
    (void)state;

    assert_int_equal(mkdir(at("drop"), 0755), 0);
    assert_int_equal(mkdir(at("work"), 0700), 0);
    assert_int_equal(mkdir(at("state"), 0700), 0);
    int root = pd_zone_open_root(at("drop"));
    /* None: nothing to do, nothing to say. */
    assert_int_equal(pd_zone_migrate(root, at("work"), at("state"), &moved, &why), 0);
    assert_int_equal(moved, 0);
    assert_null(why);
    /* Ours: the file and its record move. */
    assert_int_equal(mkdir(at("drop/.patchdrop"), 0700), 0);
    assert_int_equal(mkdir(at("drop/.patchdrop/work"), 0700), 0);
    assert_int_equal(mkdir(at("drop/.patchdrop/state"), 0700), 0);
    put("drop/.patchdrop/work/x.txt", "x");
    put("drop/.patchdrop/state/x.txt.json", "{}");
    assert_int_equal(symlink("/etc/hostname", at("drop/.patchdrop/work/link")), 0);
    assert_int_equal(pd_zone_migrate(root, at("work"), at("state"), &moved, &why), 0);
    assert_int_equal(moved, 1);
    assert_true(exists("work/x.txt"));
    assert_true(exists("state/x.txt.json"));
    assert_false(exists("work/link")); /* links are never moved */
    /* A partner's replacement: work is a symlink to someone else's folder. */
    assert_int_equal(mkdir(at("victim"), 0700), 0);
    put("victim/invoice.xml", "<i/>");
    rm_rf("drop/.patchdrop/work");
    assert_int_equal(symlink(at("victim"), at("drop/.patchdrop/work")), 0);
    assert_int_equal(pd_zone_migrate(root, at("work"), at("state"), &moved, &why), 0);
    assert_int_equal(moved, 0);
    assert_non_null(why);
    assert_true(exists("victim/invoice.xml"));
    /* A folder others may write is not ours either. */
    unlink(at("drop/.patchdrop/work"));
    assert_int_equal(mkdir(at("drop/.patchdrop/work"), 0777), 0);
    chmod(at("drop/.patchdrop/work"), 0777);
    put("drop/.patchdrop/work/forged.txt", "f");
    free(why);
    why = NULL;
    assert_int_equal(pd_zone_migrate(root, at("work"), at("state"), &moved, &why), 0);
    assert_int_equal(moved, 0);
    assert_non_null(strstr(why, "not an old folder of patchdrop's"));
    assert_null(strstr(why, "chown")); /* never advise taking a partner's folder over */
    assert_true(exists("drop/.patchdrop/work/forged.txt"));
    /* A plain file named .patchdrop: left alone, said. */
    rm_rf("drop/.patchdrop");
    put("drop/.patchdrop", "not a folder");
    free(why);
    why = NULL;
    assert_int_equal(pd_zone_migrate(root, at("work"), at("state"), &moved, &why), 0);
    assert_non_null(why);
    free(why);
    close(root);
}

int main(void)
{
    return PD_RUN_IN_DIR(test_own_dir, test_open_beneath, test_claim, test_sparse, test_migrate);
}
