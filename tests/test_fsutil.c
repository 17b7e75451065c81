/* Durable writes and moves that never overwrite. */
#include "testlib.h"

#include "pd_fsutil.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
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

static char *slurp(const char *path)
{
    char *out = NULL;
    size_t len;
    assert_int_equal(pd_fs_read_all(path, 1 << 20, &out, &len), 0);
    return out;
}

static void test_mkdirs(void **state)
{
    struct stat st;
    assert_int_equal(pd_fs_mkdirs(at("a/b/c"), 0700), 0);
    assert_int_equal(stat(at("a/b/c"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 0777, 0700);
    assert_int_equal(pd_fs_mkdirs(at("a/b/c"), 0700), 0); /* again: fine */
    assert_int_equal(pd_fs_write_atomic(at("file"), "x", 1, 0600), 0);
    assert_int_equal(pd_fs_mkdirs(at("file"), 0700), -ENOTDIR);
    assert_int_equal(pd_fs_mkdirs(at("file/sub"), 0700), -ENOTDIR);
}

static void test_write_atomic_replaces(void **state)
{
    struct stat st;
    assert_int_equal(pd_fs_write_atomic(at("s.json"), "one", 3, 0600), 0);
    assert_int_equal(pd_fs_write_atomic(at("s.json"), "two!", 4, 0600), 0);
    char *text = slurp(at("s.json"));
    assert_string_equal(text, "two!");
    free(text);
    assert_int_equal(stat(at("s.json"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    /* No temp files are left behind. */
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1", dir);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(pd_fs_write_atomic(at("missing/s.json"), "x", 1, 0600), -ENOENT);
}

/* A file in a folder people read is replaced through a temp file in one of our own. */
static void test_replace_from(void **state)
{
    struct stat st;
    char cmd[600];
    assert_int_equal(pd_fs_mkdirs(at("archive"), 0750), 0);
    assert_int_equal(pd_fs_mkdirs(at("state"), 0700), 0);
    assert_int_equal(pd_fs_create_durable(at("archive/r.json"), "one", 3, 0640), 0);
    assert_int_equal(pd_fs_replace_from(at("state"), at("archive/r.json"), "two!", 4, 0640), 0);
    char *text = slurp(at("archive/r.json"));
    assert_string_equal(text, "two!");
    free(text);
    assert_int_equal(stat(at("archive/r.json"), &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    snprintf(cmd, sizeof(cmd), "test $(ls -A '%s' | wc -l) -eq 1 && test -z \"$(ls -A '%s')\"",
             at("archive"), at("state"));
    assert_int_equal(system(cmd), 0);
    /* Without a folder of ours: beside the file, as pd_fs_write_atomic. */
    assert_int_equal(pd_fs_replace_from(NULL, at("archive/r.json"), "3", 1, 0640), 0);
    text = slurp(at("archive/r.json"));
    assert_string_equal(text, "3");
    free(text);
    /* A folder of ours on another file system (here /dev/shm, where it is one): beside it. */
    struct stat shm, here;
    char other[] = "/dev/shm/pd-replace-XXXXXX";
    if (stat("/dev/shm", &shm) == 0 && stat(dir, &here) == 0 && shm.st_dev != here.st_dev &&
        mkdtemp(other)) {
        assert_int_equal(pd_fs_replace_from(other, at("archive/r.json"), "four", 4, 0640), 0);
        text = slurp(at("archive/r.json"));
        assert_string_equal(text, "four");
        free(text);
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s')\"", other);
        assert_int_equal(system(cmd), 0);
        rmdir(other);
    }
    assert_int_equal(pd_fs_replace_from(at("state"), at("missing/r.json"), "x", 1, 0600), -ENOENT);
}

static void test_create_durable_never_replaces(void **state)
{
    assert_int_equal(pd_fs_create_durable(at("r.json"), "first", 5, 0644), 0);
    assert_int_equal(pd_fs_create_durable(at("r.json"), "second", 6, 0644), -EEXIST);
    char *text = slurp(at("r.json"));
    assert_string_equal(text, "first");
    free(text);
}

static void test_rename_noreplace(void **state)
{
    assert_int_equal(pd_fs_write_atomic(at("a"), "A", 1, 0600), 0);
    assert_int_equal(pd_fs_write_atomic(at("b"), "B", 1, 0600), 0);
    assert_int_equal(pd_fs_rename_noreplace(at("a"), at("b")), -EEXIST);
    char *text = slurp(at("b"));
    assert_string_equal(text, "B");
    free(text);
    assert_int_equal(pd_fs_rename_noreplace(at("a"), at("c")), 0);
    assert_int_equal(access(at("a"), F_OK), -1);
    text = slurp(at("c"));
    assert_string_equal(text, "A");
    free(text);
    /* The loser of a claim race finds the file gone. */
    assert_int_equal(pd_fs_rename_noreplace(at("a"), at("d")), -ENOENT);
}

static void test_rename_across_file_systems(void **state)
{
    /* /dev/shm is tmpfs: usually another file system than /tmp. */
    char other[256];
    snprintf(other, sizeof(other), "/dev/shm/pd-test-fs-%d", (int)getpid());
    if (mkdir(other, 0700)) {
        skip();
    }
    char to[300];
    snprintf(to, sizeof(to), "%s/moved", other);
    assert_int_equal(pd_fs_write_atomic(at("big"), "payload", 7, 0640), 0);
    assert_int_equal(pd_fs_rename_noreplace(at("big"), to), 0);
    assert_int_equal(access(at("big"), F_OK), -1);
    char *text = slurp(to);
    assert_string_equal(text, "payload");
    free(text);
    struct stat st;
    assert_int_equal(stat(to, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0640);
    assert_int_equal(pd_fs_write_atomic(at("big2"), "x", 1, 0600), 0);
    assert_int_equal(pd_fs_rename_noreplace(at("big2"), to), -EEXIST);
    unlink(to);
    rmdir(other);
}

/* Legal names of up to 255 bytes still leave room for a number and a .receipt.json. */
static void test_long_names_fit(void **state)
{
    char name[256], out[256], other[256];
    (void)state;
    memset(name, 'a', 251);
    memcpy(name + 251, ".xml", 5); /* 255 bytes */
    assert_int_equal(pd_fs_numbered_name(name, 0, out, 256 - strlen(".receipt.json")), 0);
    assert_true(strlen(out) + strlen(".receipt.json") <= 255);
    assert_int_equal(strcmp(out + strlen(out) - 4, ".xml"), 0); /* the extension stays */
    assert_non_null(strchr(out, '~'));
    assert_int_equal(pd_fs_numbered_name(name, 7, out, 256 - strlen(".receipt.json")), 0);
    assert_true(strlen(out) + strlen(".receipt.json") <= 255);
    /* Two long names that differ only at the end stay apart. */
    name[200] = 'b';
    assert_int_equal(pd_fs_numbered_name(name, 0, other, 243), 0);
    name[200] = 'a';
    assert_int_equal(pd_fs_numbered_name(name, 0, out, 243), 0);
    assert_string_not_equal(out, other);
    /* Never half a UTF-8 character. */
    for (int i = 0; i < 120; i++)
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    memcpy(name + 240, "tail.csv", 9);
    assert_int_equal(pd_fs_fit_name(name, 100, out, sizeof(out)), 0);
    assert_true(strlen(out) <= 100);
    char *tilde = strchr(out, '~');
    assert_non_null(tilde);
    assert_int_equal((tilde - out) % 2, 0);
    /* A short name is itself. */
    assert_int_equal(pd_fs_fit_name("a.csv", 100, out, sizeof(out)), 0);
    assert_string_equal(out, "a.csv");
}

static void test_unique_name(void **state)
{
    char name[256];
    assert_int_equal(pd_fs_unique_name(dir, "orders.xml", ".receipt.json", 0, name, sizeof(name)),
                     0);
    assert_string_equal(name, "orders.xml");
    assert_int_equal(pd_fs_write_atomic(at("orders.xml"), "x", 1, 0600), 0);
    assert_int_equal(pd_fs_unique_name(dir, "orders.xml", ".receipt.json", 0, name, sizeof(name)),
                     0);
    assert_string_equal(name, "orders.1.xml");
    /* A leftover sidecar also blocks a name. */
    assert_int_equal(pd_fs_write_atomic(at("orders.1.xml.receipt.json"), "x", 1, 0600), 0);
    assert_int_equal(pd_fs_unique_name(dir, "orders.xml", ".receipt.json", 0, name, sizeof(name)),
                     0);
    assert_string_equal(name, "orders.2.xml");
    assert_int_equal(pd_fs_write_atomic(at("README"), "x", 1, 0600), 0);
    assert_int_equal(pd_fs_unique_name(dir, "README", NULL, 0, name, sizeof(name)), 0);
    assert_string_equal(name, "README.1");
    assert_int_equal(pd_fs_write_atomic(at(".env"), "x", 1, 0600), 0);
    assert_int_equal(pd_fs_unique_name(dir, ".env", NULL, 0, name, sizeof(name)), 0);
    assert_string_equal(name, ".env.1");
    assert_int_equal(pd_fs_unique_name(dir, "orders.xml", NULL, 0, name, 8), -ENAMETOOLONG);
}

struct writer {
    atomic_bool done;
    int failures;
};

static void *keep_writing(void *arg)
{
    struct writer *w = arg;
    for (int i = 0; i < 3000; i++)
        if (pd_fs_write_replace(at("rec.json"), "{\"n\":1}", 7, 0600))
            w->failures++;
    atomic_store(&w->done, true);
    return NULL;
}

/*
 * A sweep of temps left by a crash asks pd_fs_temp_live before removing one: every temp name a
 * reader finds in the folder is guarded until its writer has renamed it away, so "not live"
 * always means "gone" (a record being written is never swept, however old it looks).
 */
static void test_temp_live_until_renamed(void **state)
{
    struct writer w = {0};
    pthread_t t;
    unsigned seen = 0, unguarded = 0;

    assert_int_equal(pthread_create(&t, NULL, keep_writing, &w), 0);
    while (!atomic_load(&w.done)) {
        DIR *d = opendir(dir);
        struct dirent *de;
        assert_non_null(d);
        while ((de = readdir(d))) {
            struct stat st;
            if (strncmp(de->d_name, PD_FS_TEMP_PREFIX, strlen(PD_FS_TEMP_PREFIX)))
                continue;
            seen++;
            if (!pd_fs_temp_live(de->d_name) && fstatat(dirfd(d), de->d_name, &st, 0) == 0)
                unguarded++;
        }
        closedir(d);
    }
    pthread_join(t, NULL);
    assert_int_equal(w.failures, 0);
    assert_int_equal(unguarded, 0);
    print_message("temp names seen while being written: %u\n", seen);
    /* Once written, nothing is guarded and nothing is left. */
    assert_int_equal(pd_fs_write_atomic(at("s.json"), "x", 1, 0600), 0);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "test -z \"$(ls -A '%s' | grep '^%s')\"", dir, PD_FS_TEMP_PREFIX);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    return PD_RUN_IN_DIR(test_mkdirs, test_long_names_fit, test_write_atomic_replaces,
                         test_replace_from, test_create_durable_never_replaces,
                         test_rename_noreplace, test_rename_across_file_systems, test_unique_name,
                         test_temp_live_until_renamed);
}
