/*
 * A file's content: its sha256 (thread pool), the dedupe records of contents delivered lately
 * (dedupe = ...), and the contents being delivered now, so that identical files arriving
 * together are sent once.
 */
#include "daemon_internal.h"

#include "pd_cluster.h"
#include "pd_error.h"
#include "pd_fsutil.h"

#include <openssl/evp.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- dedupe of files in flight ----------------------------------------------------------------
 */

/*
 * The contents (flow + sha256) being delivered now, so that identical files arriving together
 * are not all sent: the dedupe record is written only once a file is archived. Read and written
 * from thread-pool steps, hence the lock.
 */
struct holder {
    char key[160];
    const struct job *j;
};

bool dedupe_hold(struct job *j)
{
    struct pd_daemon *d = j->d;
    char key[160];
    bool mine = true;

    snprintf(key, sizeof(key), "%s/%s", j->js.flow_id ? j->js.flow_id : "", j->js.sha256);
    uv_mutex_lock(&d->holders_lock);
    for (size_t i = 0; i < d->nholders; i++)
        if (!strcmp(d->holders[i].key, key))
            mine = d->holders[i].j == j;
    if (mine && !j->holds_dedupe) {
        struct holder *grown = realloc(d->holders, (d->nholders + 1) * sizeof(*grown));
        if (grown) {
            d->holders = grown;
            memcpy(d->holders[d->nholders].key, key, sizeof(key));
            d->holders[d->nholders++].j = j;
            j->holds_dedupe = true;
        }
    }
    uv_mutex_unlock(&d->holders_lock);
    return mine;
}

void dedupe_release(struct job *j)
{
    struct pd_daemon *d = j->d;
    if (!j->holds_dedupe)
        return;
    uv_mutex_lock(&d->holders_lock);
    for (size_t i = 0; i < d->nholders; i++)
        if (d->holders[i].j == j)
            d->holders[i--] = d->holders[--d->nholders];
    uv_mutex_unlock(&d->holders_lock);
    j->holds_dedupe = false;
}

/* Feeds N bytes to the digest; *BLANK stays true while they hold nothing but whitespace. */
static void sha256_feed(EVP_MD_CTX *ctx, const unsigned char *buf, size_t n, bool *blank)
{
    for (size_t i = 0; *blank && i < n; i++)
        if (buf[i] != ' ' && buf[i] != '\t' && buf[i] != '\n' && buf[i] != '\r')
            *blank = false;
    EVP_DigestUpdate(ctx, buf, n);
}

/* The hex digest, and the context freed. */
static int sha256_end(EVP_MD_CTX *ctx, int rc, char out[65])
{
    unsigned char md[32];
    unsigned int mdlen = 0;

    if (!rc && !EVP_DigestFinal_ex(ctx, md, &mdlen))
        rc = PD_ENOMEM;
    EVP_MD_CTX_free(ctx);
    for (unsigned i = 0; !rc && i < mdlen; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
    return rc;
}

static EVP_MD_CTX *sha256_begin(void)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx && !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    return ctx;
}

/* Hashes the file; *BLANK tells whether it holds nothing but whitespace. */
int dw_sha256_file(int fd, char out[65], bool *blank)
{
    unsigned char buf[65536];
    EVP_MD_CTX *ctx = sha256_begin();
    off_t off = 0;
    int rc = 0;

    if (!ctx)
        return PD_ENOMEM;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), off);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -errno;
            break;
        }
        if (n == 0)
            break;
        sha256_feed(ctx, buf, (size_t)n, blank);
        off += n;
    }
    return sha256_end(ctx, rc, out);
}

/* The same for a file read into memory already. */
int dw_sha256_mem(const void *buf, size_t n, char out[65], bool *blank)
{
    EVP_MD_CTX *ctx = sha256_begin();

    if (!ctx)
        return PD_ENOMEM;
    sha256_feed(ctx, buf, n, blank);
    return sha256_end(ctx, 0, out);
}

/* The dedupe record of a content for a flow: <state dir>/dedupe/<flow>-<sha256>. */
static char *dedupe_path(const struct job *j)
{
    char *out;
    if (asprintf(&out, "%s/dedupe/%s-%s", j->d->cfg->state.dir, j->js.flow_id, j->js.sha256) < 0)
        return NULL;
    return out;
}

void dedupe_check(struct job *j)
{
    char *path = dedupe_path(j), *text = NULL;
    struct stat st;

    if (!path)
        return;
    if (stat(path, &st) == 0 &&
        dw_wall_ms(j->d) - (uint64_t)st.st_mtim.tv_sec * 1000 < j->w->cfg->dedupe_ms &&
        pd_fs_read_all(path, 4096, &text, NULL) == 0) {
        text[strcspn(text, "\n")] = '\0';
        j->js.duplicate_of = text;
        text = NULL;
    }
    free(text);
    free(path);
}

void dedupe_record(struct job *j)
{
    char *path = dedupe_path(j), *dir = NULL;
    if (!path || !j->final_path)
        goto done;
    if (asprintf(&dir, "%s/dedupe", j->d->cfg->state.dir) < 0)
        goto done;
    if (pd_fs_mkdirs(dir, 0700) == 0) {
        char line[PATH_MAX + 32];
        int n = snprintf(line, sizeof(line), "%s.receipt.json\n", j->final_path);
        pd_fs_write_atomic(path, line, (size_t)n, 0600);
    }
done:
    free(dir);
    free(path);
}

/* ---- dedupe shared by the hosts of a cluster ---------------------------------------------- */

/* Redis's answer, on the loop thread: the job goes on as the local dedupe would have it. */
static void on_shared_claim(void *arg, enum pd_cluster_dedupe what, const char *where)
{
    struct job *j = arg;
    char *dup = NULL;

    j->busy = false;
    if (what == PD_CLUSTER_DUPLICATE && (dup = strdup(where))) {
        j->js.duplicate_of = dup; /* "HOST:RECEIPT": delivered there within the window */
        j->after = AFTER_FINISH;
        job_continue(j);
        return;
    }
    if (what != PD_CLUSTER_SEND) {
        /* Another host sends it now (or no memory): look again in a second, as for a twin. */
        j->after = AFTER_LOCKED;
        j->dedupe_wait = true;
        job_continue(j);
        return;
    }
    j->shared_claim = true;
    job_run(j, work_open);
}

void dedupe_shared_ask(struct job *j)
{
    j->busy = true; /* the job outlives the answer: a stop waits for it */
    pd_cluster_dedupe_claim(j->d->cluster, j->js.flow_id, j->js.sha256, j->w->cfg->dedupe_ms,
                            on_shared_claim, j);
}

void dedupe_shared_end(struct job *j, bool delivered)
{
    if (!j->shared_claim || !j->d->cluster)
        return;
    if (delivered && j->final_path) {
        char receipt[PATH_MAX + 16];
        snprintf(receipt, sizeof(receipt), "%s.receipt.json", j->final_path);
        pd_cluster_dedupe_done(j->d->cluster, j->js.flow_id, j->js.sha256, j->w->cfg->dedupe_ms,
                               receipt);
    } else if (!delivered) {
        pd_cluster_dedupe_drop(j->d->cluster, j->js.flow_id, j->js.sha256);
    }
    j->shared_claim = false;
}
