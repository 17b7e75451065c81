/*
 * Group commit (see pd_commit.h): a leader/follower round counter under one mutex. `started`
 * and `done` number the rounds; a caller queues its descriptor for round started + 1 (the next
 * to begin), leads it when none is running, and otherwise waits for the running one to end.
 * A round's leader takes the queue as it is when the round begins.
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

/* One caller's request, on its own stack while it waits. */
struct want {
    struct want *next;
    int fd;
    int rc;
    struct stat st;
    bool known; /* st was read: its file system is known */
    bool same;  /* on the file system of an earlier request in the round: synced by it */
};

struct pd_commit {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct want *queue;     /* for the next round */
    uint64_t started, done; /* rounds begun and finished */
    bool running;
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

    *out = NULL;
    if (!c)
        return PD_ENOMEM;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->cond, NULL);
    c->sync = o && o->sync ? o->sync : sync_fs;
    c->arg = o ? o->arg : NULL;
    *out = c;
    return 0;
}

void pd_commit_destroy(struct pd_commit **cp)
{
    struct pd_commit *c = *cp;
    if (!c)
        return;
    pthread_cond_destroy(&c->cond);
    pthread_mutex_destroy(&c->lock);
    free(c);
    *cp = NULL;
}

/*
 * One round, run by its leader without the lock: one syncfs(2) per file system the round's
 * descriptors are on (usually one), through the first descriptor on it. A descriptor fstat
 * cannot read is synced on its own.
 */
static uint64_t run_round(struct pd_commit *c, struct want *round)
{
    uint64_t synced = 0;
    for (struct want *w = round; w; w = w->next) {
        w->known = fstat(w->fd, &w->st) == 0;
        for (struct want *e = round; w->known && e != w && !w->same; e = e->next)
            w->same = e->known && !e->same && e->st.st_dev == w->st.st_dev;
    }
    for (struct want *w = round; w; w = w->next) {
        if (w->same)
            continue;
        w->rc = c->sync(w->fd, c->arg);
        synced++;
        for (struct want *e = w->next; e; e = e->next)
            if (e->same && w->known && e->st.st_dev == w->st.st_dev)
                e->rc = w->rc;
    }
    pd_crashpoint("group_synced");
    return synced;
}

int pd_commit_sync(struct pd_commit *c, int fd)
{
    struct want me = {.fd = fd};

    pthread_mutex_lock(&c->lock);
    c->stats.waits++;
    me.next = c->queue;
    c->queue = &me;
    uint64_t need = c->started + 1;
    while (c->done < need) {
        if (c->running) {
            pthread_cond_wait(&c->cond, &c->lock);
            continue;
        }
        uint64_t round = ++c->started;
        struct want *mine = c->queue;
        c->queue = NULL;
        c->running = true;
        pthread_mutex_unlock(&c->lock);
        uint64_t synced = run_round(c, mine);
        pthread_mutex_lock(&c->lock);
        c->running = false;
        c->done = round;
        c->stats.rounds++;
        c->stats.syncs += synced;
        pthread_cond_broadcast(&c->cond);
    }
    pthread_mutex_unlock(&c->lock);
    return me.rc;
}

struct pd_commit_stats pd_commit_stats(struct pd_commit *c)
{
    pthread_mutex_lock(&c->lock);
    struct pd_commit_stats s = c->stats;
    pthread_mutex_unlock(&c->lock);
    return s;
}
