/*
 * Group commit (see pd_commit.h): a leader/follower round counter under one mutex. `started`
 * and `done` number the rounds; a caller needs round started + 1 (one that begins after its
 * writes), leads it when none is running, and otherwise waits for the running one to end.
 */
#include "pd_commit.h"

#include "pd_error.h"
#include "pd_fsutil.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FS 16

struct pd_commit {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int fds[MAX_FS];
    dev_t devs[MAX_FS];
    size_t nfs;
    uint64_t started, done; /* rounds begun and finished */
    bool running;
    int err;            /* of the last failed round */
    uint64_t err_round; /* which one; 0: none failed */
    struct pd_commit_stats stats;
    int (*sync)(int fd, void *arg);
    void *arg;
};

static int sync_fs(int fd, void *arg)
{
    (void)arg;
    return syncfs(fd) ? -errno : 0;
}

int pd_commit_create(const struct pd_commit_opts *o, struct pd_commit **out)
{
    struct pd_commit *c = calloc(1, sizeof(*c));
    int rc = 0;

    *out = NULL;
    if (!c)
        return PD_ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->sync = o->sync ? o->sync : sync_fs;
    c->arg = o->arg;
    for (size_t i = 0; i < o->ndirs && !rc; i++) {
        struct stat st;
        int fd = open(o->dirs[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st)) {
            /* Not there (yet): writes there are not covered and fsync on their own. */
        } else if (pd_commit_covers(c, fd)) {
            close(fd);
            fd = -1;
        } else if (c->nfs == (size_t)MAX_FS) {
            rc = -EMFILE;
        } else {
            c->fds[c->nfs] = fd;
            c->devs[c->nfs++] = st.st_dev;
            fd = -1;
        }
        if (fd >= 0)
            close(fd);
    }
    if (rc) {
        pd_commit_destroy(&c);
        return rc;
    }
    *out = c;
    return 0;
}

void pd_commit_destroy(struct pd_commit **cp)
{
    struct pd_commit *c = *cp;
    if (!c)
        return;
    for (size_t i = 0; i < c->nfs; i++)
        close(c->fds[i]);
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
    *cp = NULL;
}

bool pd_commit_covers(struct pd_commit *c, int fd)
{
    struct stat st;
    if (!c || fstat(fd, &st))
        return false;
    for (size_t i = 0; i < c->nfs; i++)
        if (c->devs[i] == st.st_dev)
            return true;
    return false;
}

/* One round, run by its leader without the lock: every file system once. */
static int run_round(struct pd_commit *c)
{
    int rc = 0;
    for (size_t i = 0; i < c->nfs; i++) {
        int r = c->sync(c->fds[i], c->arg);
        if (r && !rc)
            rc = r;
    }
    pd_crashpoint("group_synced");
    return rc;
}

int pd_commit_sync(struct pd_commit *c)
{
    pthread_mutex_lock(&c->lock);
    c->stats.waits++;
    uint64_t need = c->started + 1;
    while (c->done < need) {
        if (c->running) {
            pthread_cond_wait(&c->cond, &c->lock);
            continue;
        }
        uint64_t round = ++c->started;
        c->running = true;
        pthread_mutex_unlock(&c->lock);
        int rc = run_round(c);
        pthread_mutex_lock(&c->lock);
        c->running = false;
        c->done = round;
        c->stats.rounds++;
        if (rc) {
            c->err = rc;
            c->err_round = round;
        }
        pthread_cond_broadcast(&c->cond);
    }
    /* A failed round at or after ours: what we wrote may not be on disk. */
    int rc = c->err_round >= need ? c->err : 0;
    pthread_mutex_unlock(&c->lock);
    return rc;
}

struct pd_commit_stats pd_commit_stats(struct pd_commit *c)
{
    pthread_mutex_lock(&c->lock);
    struct pd_commit_stats s = c->stats;
    pthread_mutex_unlock(&c->lock);
    return s;
}
