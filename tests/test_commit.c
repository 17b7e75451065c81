/*
 * Group commit (pd_commit.h): callers that wait together share one sync, and none returns before
 * a sync that began after its call. The sync is a fake that the test holds and releases, so the
 * rounds are decided by the test, not by timing; threads meet on condition variables, never
 * sleep.
 */
#include "testlib.h"

#include "pd_commit.h"
#include "pd_fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct fake {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    unsigned rounds_begun; /* syncs entered */
    unsigned release;      /* syncs allowed to finish */
    int fail;              /* what the next sync returns */
    unsigned waiting;      /* callers inside pd_commit_sync (counted by the threads) */
    unsigned returned;
};

static int fake_sync(int fd, void *arg)
{
    struct fake *f = arg;
    (void)fd;
    pthread_mutex_lock(&f->lock);
    unsigned mine = ++f->rounds_begun;
    pthread_cond_broadcast(&f->cond);
    while (f->release < mine)
        pthread_cond_wait(&f->cond, &f->lock);
    int rc = f->fail;
    pthread_mutex_unlock(&f->lock);
    return rc;
}

struct caller {
    struct pd_commit *c;
    struct fake *f;
    int fd; /* what it asks to be synced */
    int rc;
    pthread_t t;
};

static void *call(void *arg)
{
    struct caller *k = arg;
    pthread_mutex_lock(&k->f->lock);
    k->f->waiting++;
    pthread_cond_broadcast(&k->f->cond);
    pthread_mutex_unlock(&k->f->lock);
    k->rc = pd_commit_sync(k->c, k->fd);
    pthread_mutex_lock(&k->f->lock);
    k->f->returned++;
    pthread_cond_broadcast(&k->f->cond);
    pthread_mutex_unlock(&k->f->lock);
    return NULL;
}

/* Waits until *FIELD of F (read under its lock) reaches WANT. */
static void await_at_least(struct fake *f, const unsigned *field, unsigned want)
{
    pthread_mutex_lock(&f->lock);
    while (*field < want)
        pthread_cond_wait(&f->cond, &f->lock);
    pthread_mutex_unlock(&f->lock);
}

static struct pd_commit *make(struct fake *f)
{
    struct pd_commit_opts o = {.sync = fake_sync, .arg = f};
    struct pd_commit *c = NULL;
    memset(f, 0, sizeof(*f));
    pthread_mutex_init(&f->lock, NULL);
    pthread_cond_init(&f->cond, NULL);
    assert_int_equal(pd_commit_create(&o, &c), 0);
    return c;
}

/*
 * Eight callers arriving while a round runs are served by one more round, not eight; their
 * folder's file system is synced once in it.
 */
static void test_waiters_share_a_round(void **state)
{
    struct fake f;
    struct pd_commit *c = make(&f);
    int fd = open(pd_test_dir, O_RDONLY | O_DIRECTORY);
    struct caller first = {.c = c, .f = &f, .fd = fd}, rest[8];

    pthread_create(&first.t, NULL, call, &first);
    await_at_least(&f, &f.rounds_begun, 1); /* the first caller leads round 1, held by the test */
    for (int i = 0; i < 8; i++) {
        rest[i] = (struct caller){.c = c, .f = &f, .fd = fd};
        pthread_create(&rest[i].t, NULL, call, &rest[i]);
    }
    await_at_least(&f, &f.waiting, 9);
    while (pd_commit_stats(c).waits < 9) /* each has taken its place (under the commit's lock) */
        sched_yield();
    /* Round 1 began before their calls: it must not count for them. */
    pthread_mutex_lock(&f.lock);
    f.release = 1;
    pthread_cond_broadcast(&f.cond);
    pthread_mutex_unlock(&f.lock);
    pthread_join(first.t, NULL);
    await_at_least(&f, &f.rounds_begun, 2);
    assert_int_equal(f.returned, 1);
    pthread_mutex_lock(&f.lock);
    f.release = 2;
    pthread_cond_broadcast(&f.cond);
    pthread_mutex_unlock(&f.lock);
    for (int i = 0; i < 8; i++) {
        pthread_join(rest[i].t, NULL);
        assert_int_equal(rest[i].rc, 0);
    }
    assert_int_equal(f.rounds_begun, 2); /* one sync in each round: one file system */
    struct pd_commit_stats s = pd_commit_stats(c);
    assert_int_equal(s.waits, 9);
    assert_int_equal(s.rounds, 2);
    assert_int_equal(s.syncs, 2);
    pd_commit_destroy(&c);
    assert_null(c);
    close(fd);
}

/* A failed sync fails every caller it served; the next round starts clean. */
static void test_failed_round_fails_its_callers(void **state)
{
    struct fake f;
    struct pd_commit *c = make(&f);
    struct caller k = {.c = c, .f = &f, .fd = open(pd_test_dir, O_RDONLY | O_DIRECTORY)};

    f.fail = -EIO;
    f.release = 1;
    pthread_create(&k.t, NULL, call, &k);
    pthread_join(k.t, NULL);
    assert_int_equal(k.rc, -EIO);
    f.fail = 0;
    f.release = 2;
    pthread_create(&k.t, NULL, call, &k);
    pthread_join(k.t, NULL);
    assert_int_equal(k.rc, 0);
    pd_commit_destroy(&c);
    close(k.fd);
}

/* The real syncs: durable writes through the group commit, files and folders alike. */
static void test_durable_writes_through_rounds(void **state)
{
    struct pd_commit *c = NULL;
    assert_int_equal(pd_commit_create(NULL, &c), 0);
    int fd = open(pd_test_dir, O_RDONLY | O_DIRECTORY);
    assert_true(fd >= 0);
    assert_int_equal(pd_commit_sync(c, fd), 0);
    close(fd);
    pd_fs_group_commit(c);
    assert_int_equal(pd_fs_write_atomic(pd_test_path(pd_test_dir, "r.json"), "x", 1, 0600), 0);
    assert_int_equal(pd_fs_create_durable(pd_test_path(pd_test_dir, "n.json"), "y", 1, 0600), 0);
    pd_fs_group_commit(NULL);
    struct pd_commit_stats s = pd_commit_stats(c);
    assert_int_equal(s.waits, 5); /* the folder; the temp file and the folder, twice */
    assert_int_equal(s.rounds, 5);
    assert_int_equal(s.syncs, 5);
    char *text = NULL;
    size_t len;
    assert_int_equal(pd_fs_read_all(pd_test_path(pd_test_dir, "r.json"), 16, &text, &len), 0);
    assert_string_equal(text, "x");
    free(text);
    pd_commit_destroy(&c);
}

int main(void)
{
    return PD_RUN_IN_DIR(test_waiters_share_a_round, test_failed_round_fails_its_callers,
                         test_durable_writes_through_rounds);
}
